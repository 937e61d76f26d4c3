//! `tracekit extract`: the packets a selection picks, from files or directories of rotated
//! files read as one capture in time order, copied byte for byte into one capture. It is the
//! time-ordered merge with a selection, no clock change and no duplicate removal.

use crate::Outcome;
use crate::cli::{ExtractArgs, MergeArgs};

pub fn run(args: &ExtractArgs) -> anyhow::Result<Outcome> {
    // From an index: its files, checked unchanged since they were indexed.
    let index = args
        .index
        .as_deref()
        .map(tracekit_index::Index::open)
        .transpose()?;
    let inputs = index
        .as_ref()
        .map_or_else(|| args.inputs.clone(), tracekit_index::Index::paths);
    let merge = MergeArgs {
        output: args.output.clone(),
        format: args.format.clone(),
        compress: args.compress.clone(),
        align: "none".into(),
        shift: Vec::new(),
        append: false,
        keep_order: false,
        dedup: None,
        select: args.select.clone(),
        quiet: args.quiet,
        inputs,
    };
    super::merge::write_indexed(&merge, "extract", "auto", index.as_ref())
}
