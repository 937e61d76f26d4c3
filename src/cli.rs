//! clap definitions, shared by `tracekit` and the standalone `tracekit-*` binaries.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tracekit",
    version,
    about = "Split, merge, anonymize and analyze packet captures"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarize captures: format, interfaces, packets, bytes, times, damage (like capinfos).
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON object per input file, each on its own line.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Worker threads for summarizing several files (default: one per core).
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Capture files (pcap, pcapng, gzip or zstd compressed), directories (searched
    /// recursively), or `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}
