//! End-to-end tests of the `tracekit` binaries: one test binary, a module per command.

#![allow(
    clippy::must_use_candidate,
    clippy::case_sensitive_file_extension_comparisons
)]

mod analyze;
mod analyze_sets;
mod analyze_snapshots;
mod anonymize;
mod docs;
mod extract;
mod flows;
mod index;
mod info;
mod merge;
mod report;
mod split;
mod steps;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The lab pairs of testdata/ recorded by testdata/lab/record_pairs.sh and
/// record_router_pair.sh (client side, server side), by the name both files start with.
pub const LAB_PAIRS: [&str; 11] = [
    "firewall",
    "nat",
    "clamp",
    "strip",
    "router",
    "reset",
    "scramble",
    "intercept",
    "close",
    "closenat",
    "synproxy",
];

pub fn tracekit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracekit"))
}

pub fn testdata(name: &str) -> PathBuf {
    tracekit_testutil::testdata_dir().join(name)
}

pub fn corpus(name: &str) -> PathBuf {
    tracekit_testutil::corpus_dir().join(name)
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("the binary runs")
}

/// Runs a command that must succeed (exit 0), showing its stderr when it does not.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// (time, bytes) of every record of a capture, in file order.
pub fn records_of(path: &std::path::Path) -> Vec<(i64, Vec<u8>)> {
    let c = tracekit_capture::Capture::open(path).unwrap();
    c.records()
        .map_while(Result::ok)
        .map(|r| (r.ts.0, r.data.to_vec()))
        .collect()
}
