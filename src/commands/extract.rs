//! `tracekit extract`: the packets a selection picks, from files or directories of rotated
//! files read as one capture in time order, copied byte for byte into one capture. It is the
//! time-ordered merge with a selection, no clock change and no duplicate removal.

use crate::Outcome;
use crate::cli::{ExtractArgs, MergeArgs};

pub fn run(args: &ExtractArgs) -> anyhow::Result<Outcome> {
    let output_name = args.output.to_string_lossy();
    let format = args.format.clone().unwrap_or_else(|| {
        if output_name.ends_with(".pcapng") {
            "pcapng".into()
        } else if output_name.ends_with(".pcap") {
            "pcap".into()
        } else {
            "auto".into()
        }
    });
    let merge = MergeArgs {
        output: args.output.clone(),
        format,
        align: "none".into(),
        shift: Vec::new(),
        append: false,
        keep_order: false,
        dedup: None,
        select: args.select.clone(),
        quiet: args.quiet,
        inputs: args.inputs.clone(),
    };
    super::merge::write(&merge, "extract")
}
