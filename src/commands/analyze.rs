//! `tracekit analyze`: two captures of the same connections, what sits between them, and who
//! closed each connection. Also `--batch DIR_A DIR_B -o OUTDIR` over many pairs.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use rayon::prelude::*;
use tracekit_analyze::batch::{self, SummaryRow, UnpairedFile};
use tracekit_analyze::reading::display_name;
use tracekit_analyze::trace::Conn;
use tracekit_analyze::{Analysis, ConnFilter, Reading, Scope, SideInput, Tables, analyze_sides};
use tracekit_capture::output::AtomicFile;
use tracekit_select::Spec;

use crate::cli::AnalyzeArgs;
use crate::{Outcome, progress};

/// `--timings`: when each step of the analysis ended, and how long the clock estimate took on
/// its own thread, on stderr (for finding where the time of a large pair goes).
#[derive(Debug, Clone, Copy)]
struct Timings(Option<Instant>);

impl Timings {
    /// (Arguments, not a string: without `--timings` no step is formatted.)
    fn mark(self, step: std::fmt::Arguments<'_>) {
        if let Some(start) = self.0 {
            // The time is read holding stderr's lock, so that steps marked on several threads
            // are printed in the order of their times.
            let mut e = io::stderr().lock();
            let _ = writeln!(
                e,
                "tracekit analyze: {:8.3} s  {step}",
                start.elapsed().as_secs_f64()
            );
        }
    }
}

/// Reads both sides and compares them within `scope`, with a progress bar unless `quiet`.
fn analyze_pair(
    a: &SideInput,
    b: &SideInput,
    args: &AnalyzeArgs,
    select: Option<&Spec>,
    scope: Scope<'_>,
    timings: Timings,
) -> anyhow::Result<(Analysis, Vec<String>, Tables)> {
    let bar = progress::bytes(a.stored_len() + b.stored_len(), args.quiet);
    let progress = |n: u64| bar.inc(n);
    let mark = |step: std::fmt::Arguments<'_>| timings.mark(step);
    let how = Reading {
        port: args.port,
        select,
        progress: &progress,
        mark: &mark,
        clock_window: args.clock_window,
    };
    let result = analyze_sides(a, b, &how, scope);
    bar.finish_and_clear();
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// The two sides' paths: `A B`, or `A1 A2 … -- B1 B2 …`.
fn sides(args: &AnalyzeArgs) -> anyhow::Result<(&[PathBuf], &[PathBuf])> {
    match (args.traces.as_slice(), args.side_b.as_slice()) {
        ([a, b], []) => Ok((std::slice::from_ref(a), std::slice::from_ref(b))),
        (a, []) => bail!(
            "{} paths given: give two sides, A B (each a capture or a directory), or A1 A2 … -- B1 B2 …",
            a.len()
        ),
        ([], _) => bail!("nothing before --: give side A's captures, then -- and side B's"),
        (a, b) => Ok((a, b)),
    }
}

/// The selection, applied to each side on its own clock; frames are refused (they would
/// name frames of which side?).
pub(crate) fn selection(args: &AnalyzeArgs) -> anyhow::Result<Option<Spec>> {
    if args.select.frames.is_some() {
        bail!(
            "--frames names frames of one capture; analyze reads two (narrow with --after/--before, --filter, --conn or --port)"
        );
    }
    let spec = Spec::try_from(&args.select)?;
    Ok((!spec.is_everything()).then_some(spec))
}

pub fn run(args: &AnalyzeArgs) -> anyhow::Result<Outcome> {
    // Blocks of a megabyte or more are the tables, built and dropped phase by phase: mapped
    // each on its own, what one phase freed is not resident in the next (see
    // `map_large_blocks`; a port scan's pair peaked 60 MB lower).
    tracekit_capture::map_large_blocks(1 << 20);
    if let Some(dirs) = &args.batch {
        let Some(out) = &args.output else {
            bail!("--batch needs -o OUTDIR");
        };
        let select = selection(args)?;
        return batch(&dirs[0], &dirs[1], out, args, select.as_ref());
    }
    let select = selection(args)?;
    let (paths_a, paths_b) = sides(args)?;
    let timings = Timings(args.timings.then(Instant::now));
    let filter: Option<ConnFilter> = args
        .conn
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let keep = filter.map(|f| move |c: &Conn, s: &Conn| f.keeps(c, s));
    let scope = Scope {
        // The text report and the page show the first connections in full, the others as
        // rows; the JSON and `--all` need every one.
        full: if args.json || args.all {
            usize::MAX
        } else {
            tracekit_report::DETAILED
        },
        filter: keep.as_ref().map(|k| k as tracekit_analyze::PairFilter),
    };
    let (a, b) = (SideInput::open(paths_a)?, SideInput::open(paths_b)?);
    let (analysis, problems, tables) = analyze_pair(&a, &b, args, select.as_ref(), scope, timings)?;
    let inputs: Vec<&Path> = a
        .files
        .iter()
        .chain(&b.files)
        .map(PathBuf::as_path)
        .collect();
    if let Some(f) = &args.html {
        write_atomic(
            f,
            tracekit_report::html::page(&analysis).as_bytes(),
            &inputs,
        )?;
    }
    if let Some(f) = &args.svg {
        write_atomic(f, tracekit_report::html::svg(&analysis).as_bytes(), &inputs)?;
    }
    let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    if args.json {
        tracekit_report::write_json(&analysis, &mut out)?;
        writeln!(out)?;
    } else {
        tracekit_report::write_text(&analysis, args.all, &mut out)?;
    }
    out.flush()?;
    timings.mark(format_args!("report written"));
    for p in &problems {
        eprintln!("tracekit analyze: {p}");
    }
    let found = !analysis.rows.is_empty();
    // The process exits next: freeing the report and the tables need not hold it up.
    std::thread::spawn(move || drop((analysis, tables)));
    if !found {
        eprintln!("tracekit analyze: no connection was found in both traces");
        return Ok(Outcome::Partial);
    }
    Ok(if problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

fn batch(
    dir_a: &Path,
    dir_b: &Path,
    out: &Path,
    args: &AnalyzeArgs,
    select: Option<&Spec>,
) -> anyhow::Result<Outcome> {
    let mut unpaired = Vec::new();
    let files_a = batch::sketch_dir(dir_a, &mut unpaired).map_err(|e| anyhow::anyhow!(e))?;
    let files_b = batch::sketch_dir(dir_b, &mut unpaired).map_err(|e| anyhow::anyhow!(e))?;
    let pairs = batch::pair_files(&files_a, &files_b, &mut unpaired);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = progress::items(pairs.len() as u64, "pairs", args.quiet);
    let rows: Vec<SummaryRow> = pairs
        .par_iter()
        .map(|p| {
            let row = batch_one(
                &files_a[p.a].0,
                &files_b[p.b].0,
                p.shared,
                out,
                args,
                select,
            );
            bar.inc(1);
            row
        })
        .collect();
    bar.finish_and_clear();
    batch_end(out, &rows, &unpaired)
}

/// The end of a batch: the summary written, the count printed, the files without a partner
/// named.
pub(crate) fn batch_end(
    out: &Path,
    rows: &[SummaryRow],
    unpaired: &[UnpairedFile],
) -> anyhow::Result<Outcome> {
    let csv_path = write_summary(out, rows, unpaired)?;
    let failed_pairs = rows.iter().filter(|r| !r.error.is_empty()).count();
    println!(
        "{} pair(s) analyzed, {} with failed connections, {failed_pairs} could not be read, {} file(s) without a partner; summary in {}",
        rows.len(),
        rows.iter().filter(|r| r.failed > 0).count(),
        unpaired.len(),
        csv_path.display()
    );
    for u in unpaired {
        eprintln!("tracekit analyze: {}: no partner: {}", u.file, u.reason);
    }
    Ok(if failed_pairs > 0 || !unpaired.is_empty() {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// The batch's summary (CSV, JSON) and index page; the CSV's path.
fn write_summary(
    out: &Path,
    rows: &[SummaryRow],
    unpaired: &[UnpairedFile],
) -> anyhow::Result<PathBuf> {
    let csv_path = out.join("summary.csv");
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    let csv_bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&csv_path, &csv_bytes, &[])?;
    let json_path = out.join("summary.json");
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "pairs": rows, "unpaired": unpaired }))?;
    write_atomic(&json_path, json.as_bytes(), &[])?;
    let index: Vec<tracekit_report::html::IndexRow> = rows
        .iter()
        .map(|r| tracekit_report::html::IndexRow {
            a: r.a.clone(),
            b: r.b.clone(),
            page: Path::new(&r.report)
                .with_extension("html")
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            connections: r.connections,
            failed: r.failed,
            middlebox: r.middlebox.clone(),
            closed_by: r.closed_by.clone(),
            verdict: if r.error.is_empty() {
                r.verdict.clone()
            } else {
                r.error.clone()
            },
            paired: format!(
                "{} shared signatures; clock offset {}",
                r.shared_signatures,
                r.clock_offset_ns.map_or_else(
                    || "not found".to_string(),
                    |ns| format!("{:.6} s", ns as f64 / 1e9)
                )
            ),
        })
        .collect();
    let unpaired_page: Vec<(String, String)> = unpaired
        .iter()
        .map(|u| (u.file.clone(), u.reason.clone()))
        .collect();
    write_atomic(
        &out.join("index.html"),
        tracekit_report::html::index(&index, &unpaired_page).as_bytes(),
        &[],
    )?;
    Ok(csv_path)
}

pub(crate) fn batch_one(
    a: &Path,
    b: &Path,
    shared: usize,
    out: &Path,
    args: &AnalyzeArgs,
    select: Option<&Spec>,
) -> SummaryRow {
    let stem = format!("{}--{}", display_name(a), display_name(b));
    let mut row = SummaryRow::new(a, b, shared);
    let scope = Scope {
        full: usize::MAX,
        filter: None,
    };
    let quiet = AnalyzeArgs {
        quiet: true,
        ..args.clone()
    };
    let result = SideInput::open(&[a.to_path_buf()])
        .and_then(|sa| Ok((sa, SideInput::open(&[b.to_path_buf()])?)))
        .map_err(anyhow::Error::from)
        .and_then(|(sa, sb)| analyze_pair(&sa, &sb, &quiet, select, scope, Timings(None)))
        .and_then(|(analysis, ..)| {
            let txt = out.join(format!("{stem}.txt"));
            write_atomic(
                &txt,
                tracekit_report::text(&analysis, false).as_bytes(),
                &[a, b],
            )?;
            let json = out.join(format!("{stem}.json"));
            write_atomic_with(&json, &[a, b], |w| {
                tracekit_report::write_json(&analysis, w)
            })?;
            let page = out.join(format!("{stem}.html"));
            write_atomic(
                &page,
                tracekit_report::html::page(&analysis).as_bytes(),
                &[a, b],
            )?;
            Ok((analysis, txt))
        });
    match result {
        Ok((analysis, txt)) => row.found(&analysis, &txt),
        Err(e) => row.error = format!("{e:#}"),
    }
    row
}

/// Writes a whole file under a temporary name, then renames it into place.
fn write_atomic(target: &Path, bytes: &[u8], inputs: &[&Path]) -> anyhow::Result<()> {
    write_atomic_with(target, inputs, |w| w.write_all(bytes))
}

/// [`write_atomic`] with the bytes streamed by `write` (through a buffer).
fn write_atomic_with(
    target: &Path,
    inputs: &[&Path],
    write: impl FnOnce(&mut io::BufWriter<&mut AtomicFile>) -> io::Result<()>,
) -> anyhow::Result<()> {
    let mut f = AtomicFile::create(target, inputs)?;
    let mut buffered = io::BufWriter::with_capacity(1 << 20, &mut f);
    write(&mut buffered)
        .and_then(|()| buffered.flush())
        .with_context(|| format!("writing {}", target.display()))?;
    drop(buffered);
    f.commit(false)?;
    Ok(())
}
