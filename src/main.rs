use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tracekit::cli::Cli::parse();
    tracekit::finish(tracekit::run(cli))
}
