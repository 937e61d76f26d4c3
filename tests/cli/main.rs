//! End-to-end tests of the `tracekit` binaries: one test binary, a module per command.

#![allow(clippy::must_use_candidate)]

mod info;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn tracekit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracekit"))
}

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

pub fn corpus(name: &str) -> PathBuf {
    let dir = std::env::var("TRACEKIT_CORPUS").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "corpus file {} missing; set TRACEKIT_CORPUS",
        path.display()
    );
    path
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("the binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}
