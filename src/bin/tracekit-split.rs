//! `tracekit-split`: the same as `tracekit split`, for people used to single tools.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tracekit-split",
    version,
    about = "Split captures by stream, host, port, count, size or time"
)]
struct Cli {
    #[command(flatten)]
    args: tracekit::cli::SplitArgs,
}

/// Huge pages for large blocks (see `HugePageAlloc`).
#[global_allocator]
static ALLOC: tracekit_capture::HugePageAlloc = tracekit_capture::HugePageAlloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracekit::finish(tracekit::commands::split::run(&cli.args))
}
