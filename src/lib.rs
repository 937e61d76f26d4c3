//! The `tracekit` command line: argument definitions and one module per command. The
//! libraries under `crates/` do the work; this crate parses, reports and picks exit codes.

pub mod cli;
pub mod commands;
mod inputs;
mod progress;
mod timefmt;

use std::io;

/// How a run ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was read and written.
    Success = 0,
    /// The run finished but something was skipped or damaged; the output says what.
    Partial = 1,
    /// Nothing useful was done: bad usage or a fatal error.
    Fatal = 2,
}

impl Outcome {
    #[must_use]
    pub fn worst(self, other: Outcome) -> Outcome {
        if (other as u8) > (self as u8) {
            other
        } else {
            self
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        cli::Command::Info(args) => commands::info::run(&args),
        cli::Command::Split(args) => commands::split::run(&args),
        cli::Command::Merge(args) => commands::merge::run(&args),
        cli::Command::Analyze(args) => commands::analyze::run(&args),
        cli::Command::Anonymize(args) => commands::anonymize::run(&args),
        cli::Command::Keygen(args) => commands::anonymize::keygen(&args),
        cli::Command::Leakcheck(args) => commands::anonymize::leakcheck(&args),
    }
}

/// Prints the error chain and maps it to an exit code; a closed stdout (`| head`) is quiet.
#[must_use]
pub fn finish(result: anyhow::Result<Outcome>) -> std::process::ExitCode {
    match result {
        Ok(outcome) => std::process::ExitCode::from(outcome as u8),
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tracekit: error: {e:#}");
            std::process::ExitCode::from(Outcome::Fatal as u8)
        }
    }
}
