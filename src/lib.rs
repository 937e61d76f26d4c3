//! The `tracekit` command line: argument definitions and one module per command. The
//! libraries under `crates/` do the work; this crate parses, reports and picks exit codes.

pub mod cli;
pub mod commands;
mod progress;
mod selection;
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
        cli::Command::Extract(args) => commands::extract::run(&args),
        cli::Command::Flows(args) => commands::flows::run(&args),
        cli::Command::Index(args) => commands::index::run(&args),
        cli::Command::Keygen(args) => commands::anonymize::keygen(&args),
        cli::Command::Leakcheck(args) => commands::anonymize::leakcheck(&args),
        cli::Command::Completions(args) => commands::docs::completions(&args),
        cli::Command::Manpages(args) => commands::docs::manpages(&args),
        cli::Command::Step(cli::StepCommand::Plan(args)) => commands::steps::plan(&args),
        cli::Command::Step(cli::StepCommand::Task(args)) => commands::steps::task(&args),
        cli::Command::Step(cli::StepCommand::Tasks(args)) => commands::steps::tasks(&args),
        cli::Command::Step(cli::StepCommand::Finish(args)) => commands::steps::finish(&args),
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message before
/// it already ends with (our errors name their path and include the I/O error they wrap).
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The exit status of a `step finish` that refuses because the set cannot be cut into
/// partitions with the single run's answer (see `tracekit_split::shuffle::NotExact`).
pub const NOT_EXACT: u8 = 3;

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
        // `step finish` of a set its partitions cannot answer exactly: the command run on one
        // machine can (the Ray driver does that on status 3).
        Err(e)
            if e.chain()
                .any(<dyn std::error::Error>::is::<tracekit_split::shuffle::NotExact>) =>
        {
            eprintln!("tracekit: error: {}", chain_text(&e));
            std::process::ExitCode::from(NOT_EXACT)
        }
        Err(e) => {
            eprintln!("tracekit: error: {}", chain_text(&e));
            std::process::ExitCode::from(Outcome::Fatal as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chain_text;
    use std::io;

    /// An error that names its path and includes its cause, as ours do.
    #[derive(Debug)]
    struct Named(io::Error);

    impl std::fmt::Display for Named {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "out/x.pcap: {}", self.0)
        }
    }

    impl std::error::Error for Named {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_its_message_is_printed_once() {
        let named = Named(io::Error::other("No space left on device"));
        let e = anyhow::Error::new(named).context("writing the outputs");
        assert_eq!(
            chain_text(&e),
            "writing the outputs: out/x.pcap: No space left on device"
        );
        let plain = anyhow::Error::new(io::Error::other("disk on fire")).context("reading a.pcap");
        assert_eq!(chain_text(&plain), "reading a.pcap: disk on fire");
    }
}
