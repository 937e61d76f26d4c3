use clap::Parser;

/// Huge pages for large blocks (see `HugePageAlloc`).
#[global_allocator]
static ALLOC: tracekit_capture::HugePageAlloc = tracekit_capture::HugePageAlloc;

fn main() -> std::process::ExitCode {
    let cli = tracekit::cli::Cli::parse();
    tracekit::finish(tracekit::run(cli))
}
