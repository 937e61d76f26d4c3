//! `tracekit-analyze`: the same as `tracekit analyze`, for people used to single tools.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tracekit-analyze",
    version,
    about = "Compare two captures of the same connections: what sits between them, who closed them"
)]
struct Cli {
    #[command(flatten)]
    args: tracekit::cli::AnalyzeArgs,
}

/// Huge pages for large blocks (see `HugePageAlloc`).
#[global_allocator]
static ALLOC: tracekit_capture::HugePageAlloc = tracekit_capture::HugePageAlloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracekit::finish(tracekit::commands::analyze::run(&cli.args))
}
