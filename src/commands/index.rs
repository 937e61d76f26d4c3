//! `tracekit index`: indexes a capture set (see `tracekit_index`), or brings its index up to
//! date: new and changed files are indexed, vanished ones dropped.

use anyhow::bail;

use crate::cli::IndexArgs;
use crate::{Outcome, progress};
use tracekit_capture::inputs;

/// The inputs found, and what is said of directories that could not be read.
pub(crate) fn found(args: &IndexArgs) -> anyhow::Result<(inputs::Inputs, Vec<String>)> {
    let found = inputs::expand(&args.inputs);
    let trouble: Vec<String> = found
        .unreadable
        .iter()
        .map(|(p, e)| format!("{}: unreadable: {e}", p.display()))
        .collect();
    if found.files.is_empty() {
        bail!("no capture file among the inputs");
    }
    Ok((found, trouble))
}

/// What `tracekit info --index` prints of each file: `info`'s own summary, as text and as its
/// JSON line, made once when the file is indexed.
pub(crate) fn describe(path: &std::path::Path) -> serde_json::Value {
    let s = super::info::summarize(path);
    serde_json::json!({
        "json": super::info::json_line(&s),
        "text": super::info::text(&s),
    })
}

pub fn run(args: &IndexArgs) -> anyhow::Result<Outcome> {
    let (found, trouble) = found(args)?;
    let total: u64 = found
        .files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress::bytes(total, args.quiet);
    let done = |n: u64| bar.inc(n);
    let updated = tracekit_index::update(
        &args.output,
        &found.files,
        (args.rebuild, args.block_records),
        &done,
        &describe,
        Some(tracekit_index::FlowsBy::Scan {
            keep_state: args.flow_state,
        }),
    )?;
    bar.finish_and_clear();
    Ok(report(args, &updated, trouble))
}

/// What `index` says once the index is written: the files indexed, kept, dropped, the flow
/// table, the size; then each file that could not be read or indexed.
pub(crate) fn report(
    args: &IndexArgs,
    updated: &tracekit_index::Updated,
    mut trouble: Vec<String>,
) -> Outcome {
    for (p, e) in &updated.failed {
        trouble.push(format!("{}: not indexed: {e}", p.display()));
    }
    let m = updated.manifest.as_ref();
    let (files, bytes, packets) = m.map_or((0, 0, 0), |m| {
        (
            m.files.len(),
            m.files.iter().map(|e| e.size).sum::<u64>(),
            m.files.iter().map(|e| e.summary.packets).sum::<u64>(),
        )
    });
    let index_bytes: u64 = std::fs::read_dir(args.output.join("parts"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>()
        + [
            tracekit_index::MANIFEST,
            tracekit_index::FLOWS,
            tracekit_index::STATE,
        ]
        .iter()
        .filter_map(|f| std::fs::metadata(args.output.join(f)).ok())
        .map(|m| m.len())
        .sum::<u64>();
    eprintln!(
        "tracekit index: {files} files ({bytes} bytes, {packets} packets): {} indexed ({} changed since), {} unchanged, {} dropped; flow table {}; index {index_bytes} bytes ({:.3}% of the captures) in {}",
        updated.indexed.len(),
        updated.changed.len(),
        updated.kept,
        updated.dropped.len(),
        match (updated.flows_made, m.and_then(|m| m.flows.as_ref())) {
            (true, Some(f)) => match updated.flows_carried {
                Some(n) => format!(
                    "carried on over the {n} new file(s) from the table saved last time ({} flows)",
                    f.rows
                ),
                None => format!("made ({} flows)", f.rows),
            },
            (false, Some(f)) => format!("unchanged ({} flows)", f.rows),
            _ => "none".to_string(),
        },
        index_bytes as f64 * 100.0 / bytes.max(1) as f64,
        args.output.display()
    );
    for t in &trouble {
        eprintln!("tracekit index: {t}");
    }
    if trouble.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    }
}
