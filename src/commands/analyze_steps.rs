//! `analyze --batch DIR_A DIR_B -o OUT` as steps (see `steps`): `sketch` tasks sketch a shard
//! of the two directories' files each; `pairs` tasks each pair the files again from every
//! sketch (the pairing is a pure function of the sketches, quick next to an analysis) and
//! analyze their share of the pairs, writing each pair's reports as the single run does; the
//! finish writes the summary and prints what the single run prints.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tracekit_analyze::batch::{self, Sketch, SummaryRow, UnpairedFile};

use crate::Outcome;
use crate::cli::AnalyzeArgs;
use crate::commands::analyze;
use tracekit_capture::inputs;

/// What a plan of `analyze --batch` decides besides the inputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchPlan {
    /// The first `a_files` inputs are DIR_A's, the others DIR_B's.
    pub a_files: usize,
}

/// The two directories' files (DIR_A's first), and what the plan decides.
pub fn plan(a: &AnalyzeArgs) -> anyhow::Result<(inputs::Inputs, BatchPlan)> {
    let Some(dirs) = &a.batch else {
        bail!(
            "step plan: analyze of one pair is one task; distribute `analyze --batch DIR_A DIR_B -o OUT`"
        );
    };
    if a.output.is_none() {
        bail!("--batch needs -o OUTDIR");
    }
    analyze::selection(a)?;
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
    }
    let a_files = inputs::expand(&dirs[..1]).files.len();
    Ok((inputs::expand(dirs), BatchPlan { a_files }))
}

/// A sketch task: each of its files sketched, or why it could not be opened.
#[must_use]
pub fn sketch(files: &[PathBuf]) -> Vec<Result<Sketch, String>> {
    files.iter().map(|p| batch::sketch_file(p)).collect()
}

/// The sketched files of each side, from every sketch task's result in input order; the
/// files that could not be opened, and the unreadable directories, go to `unpaired`.
type Side = Vec<(PathBuf, Sketch)>;

fn sides(
    paths: &[PathBuf],
    bp: &BatchPlan,
    sketches: Vec<Result<Sketch, String>>,
    unreadable: &[(PathBuf, String)],
    unpaired: &mut Vec<UnpairedFile>,
) -> anyhow::Result<(Side, Side)> {
    if sketches.len() != paths.len() {
        bail!(
            "the sketch tasks hold {} sketches for {} inputs",
            sketches.len(),
            paths.len()
        );
    }
    for (path, e) in unreadable {
        unpaired.push(UnpairedFile {
            file: path.display().to_string(),
            reason: format!("unreadable: {e}"),
        });
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, (path, s)) in paths.iter().zip(sketches).enumerate() {
        match s {
            Ok(s) if i < bp.a_files => a.push((path.clone(), s)),
            Ok(s) => b.push((path.clone(), s)),
            Err(e) => unpaired.push(UnpairedFile {
                file: path.display().to_string(),
                reason: format!("could not be opened: {e}"),
            }),
        }
    }
    Ok((a, b))
}

/// Pairs task `n` of `tasks`: its contiguous share of the pairs analyzed, their reports
/// written into the output directory, their summary rows returned.
pub fn pairs(
    a: &AnalyzeArgs,
    paths: &[PathBuf],
    bp: &BatchPlan,
    sketches: Vec<Result<Sketch, String>>,
    (n, tasks): (usize, usize),
) -> anyhow::Result<Vec<SummaryRow>> {
    let out = a.output.as_deref().context("--batch needs -o OUTDIR")?;
    let select = analyze::selection(a)?;
    let mut unpaired = Vec::new();
    let (files_a, files_b) = sides(paths, bp, sketches, &[], &mut unpaired)?;
    let pairs = batch::pair_files(&files_a, &files_b, &mut unpaired);
    let share = pairs.len() * n / tasks..pairs.len() * (n + 1) / tasks;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let quiet = AnalyzeArgs {
        quiet: true,
        ..a.clone()
    };
    Ok(pairs[share]
        .iter()
        .map(|p| {
            analyze::batch_one(
                &files_a[p.a].0,
                &files_b[p.b].0,
                p.shared,
                out,
                &quiet,
                select.as_ref(),
            )
        })
        .collect())
}

/// The finish: the summary and the messages of the single run, from every task's result.
pub fn finish(
    a: &AnalyzeArgs,
    paths: &[PathBuf],
    bp: &BatchPlan,
    sketches: Vec<Result<Sketch, String>>,
    rows: &[SummaryRow],
    unreadable: &[(PathBuf, String)],
) -> anyhow::Result<Outcome> {
    let out = a.output.as_deref().context("--batch needs -o OUTDIR")?;
    let mut unpaired = Vec::new();
    let (files_a, files_b) = sides(paths, bp, sketches, unreadable, &mut unpaired)?;
    let pairs = batch::pair_files(&files_a, &files_b, &mut unpaired);
    if pairs.len() != rows.len() {
        bail!(
            "the pairs tasks analyzed {} pairs of {}: a task ran on other sketches",
            rows.len(),
            pairs.len()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    analyze::batch_end(out, rows, &unpaired)
}
