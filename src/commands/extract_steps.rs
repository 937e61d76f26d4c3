//! `extract` with a filter or hosts file as steps (see `steps`): map tasks match their files'
//! packets (each alone: the selection needs no order) and commit the selected records' places;
//! the finish reads those records and writes them through the single run's own pass, merged
//! by time, as its parallel selection does on one machine (`set::prefilter`): the same file,
//! the same report.
//!
//! That parallel selection applies to classic pcap inputs each in time order; a set of another
//! kind is answered by the finish with status 3 (run the command on one machine).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tracekit_capture::Capture;
use tracekit_merge::set;
use tracekit_select::Spec;
use tracekit_split::shuffle::NotExact;

use crate::Outcome;
use crate::cli::{ExtractArgs, MergeArgs};
use crate::commands::merge::{self, Given};
use tracekit_capture::inputs;

/// The inputs `extract` reads, in its order.
pub fn plan(e: &ExtractArgs) -> anyhow::Result<Vec<PathBuf>> {
    if e.index.is_some() {
        bail!(
            "step plan: extract --index reads what the index points to; run it on one machine (it reads only the records the selection can match)"
        );
    }
    if e.output.as_os_str() == "-" {
        bail!("step plan: tasks cannot share standard output: give a file");
    }
    if e.inputs.iter().any(|p| p.as_os_str() == "-") {
        bail!("step plan: standard input cannot be shared with tasks on other machines");
    }
    let spec = Spec::try_from(&e.select)?;
    if !set::stateless(&spec) {
        bail!(
            "step plan: extract can be distributed with a filter or hosts file, each packet matched alone; frames, Community IDs and time windows span the set (a time window: use tracekit index, then extract --index)"
        );
    }
    Ok(inputs::open(&e.inputs)?
        .captures
        .iter()
        .map(|c| c.path().to_path_buf())
        .collect())
}

/// What a map task commits: per file, its selected records' (index, offset), the records read
/// and the oddities read past; or why the parallel selection does not apply to it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mapped {
    pub files: Vec<Result<set::FileSelection, String>>,
}

/// Map task: inputs `from..to` matched.
pub fn map(
    e: &ExtractArgs,
    paths: &[PathBuf],
    (from, to): (usize, usize),
) -> anyhow::Result<Mapped> {
    let spec = Spec::try_from(&e.select)?;
    let files = paths[from..to]
        .iter()
        .map(|p| {
            let c = Capture::open(p).with_context(|| format!("{}", p.display()))?;
            Ok(set::select_file(&c, &spec).ok_or_else(|| {
                format!(
                    "{} is not a classic pcap file read whole in time order (empty, damaged, out of order, of another format, or with more than a million packets selected)",
                    p.display()
                )
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Mapped { files })
}

/// The finish: the selected records written as the single run writes them.
pub fn finish(e: &ExtractArgs, maps: Vec<Mapped>) -> anyhow::Result<Outcome> {
    let mut given = Given {
        selected: Vec::new(),
        records: 0,
        problems: Vec::new(),
    };
    for f in maps.into_iter().flat_map(|m| m.files) {
        let (selected, records, problems) = f.map_err(|why| {
            NotExact(format!(
                "{why}: the tasks cannot select its packets as one machine does; run `tracekit extract` on one machine"
            ))
        })?;
        given.selected.push(selected);
        given.records += records;
        given.problems.push(problems);
    }
    let merge_args = MergeArgs {
        output: e.output.clone(),
        format: e.format.clone(),
        compress: e.compress.clone(),
        align: "none".into(),
        shift: Vec::new(),
        append: false,
        keep_order: false,
        dedup: None,
        select: e.select.clone(),
        quiet: true,
        inputs: e.inputs.clone(),
    };
    merge::write_given(&merge_args, "extract", "auto", &given)
}
