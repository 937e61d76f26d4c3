//! `tracekit-info`: the same as `tracekit info`, for people used to capinfos-style single tools.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tracekit-info",
    version,
    about = "Summarize pcap/pcapng captures (like capinfos)"
)]
struct Cli {
    #[command(flatten)]
    args: tracekit::cli::InfoArgs,
}

/// Huge pages for large blocks (see `HugePageAlloc`).
#[global_allocator]
static ALLOC: tracekit_capture::HugePageAlloc = tracekit_capture::HugePageAlloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracekit::finish(tracekit::commands::info::run(&cli.args))
}
