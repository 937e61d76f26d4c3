//! `tracekit-merge`: the same as `tracekit merge`, for people used to single tools.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tracekit-merge",
    version,
    about = "Merge captures in time order, with clock alignment and duplicate removal"
)]
struct Cli {
    #[command(flatten)]
    args: tracekit::cli::MergeArgs,
}

/// Huge pages for large blocks (see `HugePageAlloc`).
#[global_allocator]
static ALLOC: tracekit_capture::HugePageAlloc = tracekit_capture::HugePageAlloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracekit::finish(tracekit::commands::merge::run(&cli.args))
}
