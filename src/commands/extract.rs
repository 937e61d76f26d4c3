//! `tracekit extract`: the packets a selection picks, from files or directories of rotated
//! files read as one capture in time order, copied byte for byte into one capture. It is the
//! time-ordered merge with a selection, no clock change and no duplicate removal.

use crate::Outcome;
use crate::cli::{ExtractArgs, MergeArgs};

pub fn run(args: &ExtractArgs) -> anyhow::Result<Outcome> {
    let merge = MergeArgs {
        output: args.output.clone(),
        format: args.format.clone(),
        align: "none".into(),
        shift: Vec::new(),
        append: false,
        keep_order: false,
        dedup: None,
        select: args.select.clone(),
        quiet: args.quiet,
        inputs: args.inputs.clone(),
    };
    super::merge::write(&merge, "extract", "auto")
}
