//! `index` as steps (see `steps`): map tasks index their files (each file's part, written
//! into the index as the single run writes it, or the old part kept when the file has not
//! changed) and send each packet's place to a partition for the flow table; reduce tasks
//! build a partition's flows (`flows_steps`); the finish keeps or writes the flow table,
//! removes the parts of files gone, writes the manifest, and reports as `index` reports.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tracekit_index::Indexed;
use tracekit_split::shuffle;

use crate::Outcome;
use crate::cli::IndexArgs;
use crate::commands::{flows_steps, index};

/// What a plan of `index` decides besides the inputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexPlan {
    /// Each input's absolute path, as the index records it.
    pub absolute: Vec<PathBuf>,
    pub partitions: u32,
    /// [`shuffle::PARTITION_HASH`] of the tracekit that planned.
    pub partition_hash: String,
    /// What the single run says of directories that could not be read.
    pub trouble: Vec<String>,
}

/// The inputs of `index` (as it finds them), and what the plan decides.
pub fn plan(args: &IndexArgs, partitions: usize) -> anyhow::Result<(Vec<PathBuf>, IndexPlan)> {
    if args.inputs.iter().any(|p| p.as_os_str() == "-") {
        bail!("step plan: standard input cannot be shared with tasks on other machines");
    }
    // An index that cannot be read is refused now, as the single run refuses it.
    if args.output.join(tracekit_index::MANIFEST).exists() && !args.rebuild {
        tracekit_index::read_manifest(&args.output)?;
    }
    let (found, trouble) = index::found(args)?;
    Ok((
        found.files.clone(),
        IndexPlan {
            absolute: tracekit_index::absolute(&found.files),
            partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
            partition_hash: shuffle::PARTITION_HASH.into(),
            trouble,
        },
    ))
}

/// What a map task commits: each of its files indexed (or why not), and the flows map of them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mapped {
    pub indexed: Vec<(PathBuf, Result<Indexed, String>)>,
    pub flows: flows_steps::Mapped,
}

/// Map task `n`: inputs `from..to` (`given`: as named) indexed, and their packets' places sent
/// to the partitions of the flow table.
pub fn map(
    args: &IndexArgs,
    ip: &IndexPlan,
    given: &[PathBuf],
    (from, to): (usize, usize),
    work: &Path,
    n: usize,
) -> anyhow::Result<Mapped> {
    let old = tracekit_index::prepare(&args.output, args.rebuild)?;
    let inputs: Vec<&Path> = ip.absolute.iter().map(PathBuf::as_path).collect();
    let indexed = (from..to)
        .map(|i| {
            let r = tracekit_index::index_file(
                &args.output,
                (&ip.absolute[i], &given[i]),
                (old.as_ref(), args.block_records),
                &inputs,
                &index::describe,
            );
            (ip.absolute[i].clone(), r)
        })
        .collect();
    let fp = flows_plan(ip);
    let flows = flows_steps::map(&fp, &ip.absolute, (from, to), work, n)?;
    Ok(Mapped { indexed, flows })
}

/// The flows side of an index plan.
fn flows_plan(ip: &IndexPlan) -> flows_steps::FlowsPlan {
    flows_steps::FlowsPlan {
        partitions: ip.partitions,
        partition_hash: ip.partition_hash.clone(),
        trouble: Vec::new(),
    }
}

/// The finish: the flow table kept or made from the reduces, the manifest written, the report.
pub fn finish(
    args: &IndexArgs,
    ip: &IndexPlan,
    maps: Vec<Mapped>,
    reduces: Vec<flows_steps::Reduced>,
    work: &Path,
) -> anyhow::Result<Outcome> {
    let old = tracekit_index::prepare(&args.output, args.rebuild)?;
    let map_count = maps.len();
    let results: Vec<(PathBuf, Result<Indexed, String>)> =
        maps.into_iter().flat_map(|m| m.indexed).collect();
    let all_indexed = results.iter().all(|(_, r)| r.is_ok());
    let count = ip.absolute.len();
    // The flow table of the files indexed, made from the partitions only when it is needed
    // (the set changed): then the partitions must answer exactly.
    let refused: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let pending = Mutex::new(Some(reduces));
    let make = |paths: &[PathBuf],
                out: &mut (dyn std::io::Write + Send)|
     -> Result<tracekit_index::FlowsMade, String> {
        let reduces = pending
            .lock()
            .map(|mut p| p.take().unwrap_or_default())
            .unwrap_or_default();
        let made = if all_indexed && paths.len() == count {
            flows_steps::collect(&[], &ip.absolute, map_count, reduces, work)
        } else {
            Err(shuffle::NotExact(
                "a file could not be indexed, so the flow table covers other files than the partitions counted".into(),
            )
            .into())
        };
        match made {
            Ok(c) => {
                let names = flows_steps::names(&ip.absolute);
                let rows = tracekit_flows::stored::store_rows(
                    c.rows
                        .into_iter()
                        .map(|r| r.map_files(|files| tracekit_flows::named(&files, &names))),
                    out,
                )?;
                Ok(tracekit_index::FlowsMade {
                    rows,
                    trouble: c.trouble,
                })
            }
            Err(e) => {
                let said = format!("{e:#}");
                if let Ok(mut r) = refused.lock() {
                    *r = Some(e);
                }
                Err(said)
            }
        }
    };
    let inputs: Vec<&Path> = ip.absolute.iter().map(PathBuf::as_path).collect();
    let updated = tracekit_index::conclude(
        &args.output,
        old.as_ref(),
        results,
        args.block_records,
        &inputs,
        Some(tracekit_index::FlowsBy::Caller(&make)),
    );
    if let Some(e) = refused.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(index::report(args, &updated?, ip.trouble.clone()))
}
