//! `tracekit completions SHELL` and `tracekit manpages DIR`: shell completions (clap_complete)
//! and a man page per command (clap_mangen), made from the same definitions as the parser.

use std::io::Write as _;

use anyhow::Context as _;
use clap::CommandFactory as _;
use tracekit_capture::output::AtomicFile;

use crate::Outcome;
use crate::cli::{Cli, CompletionsArgs, ManpagesArgs};

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "tracekit", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(Outcome::Success)
}

pub fn manpages(args: &ManpagesArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let cmd = Cli::command();
    let mut pages = vec![("tracekit".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        // `tracekit-merge(1)`, as git names its pages.
        let name = format!("tracekit-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in &pages {
        let mut text = Vec::new();
        clap_mangen::Man::new(page.clone()).render(&mut text)?;
        let path = args.dir.join(format!("{name}.1"));
        let mut file = AtomicFile::create(&path, &[])?;
        file.write_all(&text)?;
        file.commit(false)?;
    }
    eprintln!(
        "tracekit manpages: {} pages written to {} (man -l {}/tracekit.1)",
        pages.len(),
        args.dir.display(),
        args.dir.display()
    );
    Ok(Outcome::Success)
}
