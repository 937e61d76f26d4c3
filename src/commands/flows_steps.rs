//! `flows` as steps (see `steps` and `tracekit_split::shuffle`): the shuffle of a distributed
//! split, keyed as `flows` keys streams (the outer address pair). Map tasks send each packet's
//! place to its partition and count each file's packets and time span; reduce tasks build
//! the flow table of a partition with the single run's frame numbers; the finish gives the
//! streams their single-run numbers and prints the rows in order of first appearance.
//!
//! `flows` reads its inputs as one capture in time order. A set whose files each run forward
//! in time and follow one another (a rotated set) reads in the same order file after file,
//! and frame numbers are then counts of packets before: that is what this distributes. A set
//! whose files overlap in time is refused at the finish with the reason.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tracekit_capture::Capture;
use tracekit_split::assign::{KeyOptions, Numbered};
use tracekit_split::flows::{FlowTable, Packet};
use tracekit_split::shuffle::{self, Located, Position};

use crate::cli::FlowsArgs;
use tracekit_flows::Row;

use crate::Outcome;
use crate::commands::flows;
use tracekit_capture::inputs;

/// What a plan of `flows` decides besides the inputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct FlowsPlan {
    pub partitions: u32,
    /// [`shuffle::PARTITION_HASH`] of the tracekit that planned.
    pub partition_hash: String,
    /// The lines the single run prints about inputs that could not be read or opened.
    pub trouble: Vec<String>,
}

/// The inputs `flows` reads, in its order, and what the plan decides.
pub fn plan(f: &FlowsArgs, partitions: usize) -> anyhow::Result<(Vec<PathBuf>, FlowsPlan)> {
    if f.index.is_some() {
        bail!("step plan: flows --index reads the index, not the captures; run it on one machine");
    }
    if !tracekit_select::Spec::try_from(&f.select)?.is_everything() {
        bail!(
            "step plan: flows with a selection cannot be distributed yet (frame numbers and time windows span the set); run it on one machine"
        );
    }
    if f.top == Some(0) {
        bail!("--top must be at least 1");
    }
    if f.inputs.iter().any(|p| p.as_os_str() == "-") {
        bail!("step plan: standard input cannot be shared with tasks on other machines");
    }
    let opened = inputs::open(&f.inputs)?;
    let paths = opened
        .captures
        .iter()
        .map(|c| c.path().to_path_buf())
        .collect();
    Ok((
        paths,
        FlowsPlan {
            partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
            partition_hash: shuffle::PARTITION_HASH.into(),
            trouble: opened.trouble,
        },
    ))
}

/// One file as a map task read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSpan {
    pub packets: u64,
    /// The earliest and latest packet times (none without packets).
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Every packet no earlier than the one before.
    pub in_order: bool,
    /// Why the rest of the file could not be read, as the single run says it.
    pub damage: Option<String>,
}

/// What a map task commits (the places are in its parts file).
#[derive(Debug, Serialize, Deserialize)]
pub struct Mapped {
    pub files: Vec<FileSpan>,
}

/// Map task `n`: inputs `from..to` read in order, each packet's place sent to its partition.
pub fn map(
    fp: &FlowsPlan,
    paths: &[PathBuf],
    (from, to): (usize, usize),
    work: &Path,
    n: usize,
) -> anyhow::Result<Mapped> {
    let mut parts: Vec<Vec<Located>> = vec![Vec::new(); fp.partitions as usize];
    let mut files = Vec::new();
    for (file, path) in paths.iter().enumerate().take(to).skip(from) {
        let capture = Capture::open(path).with_context(|| format!("{}", path.display()))?;
        let mut span = FileSpan {
            packets: 0,
            first_ts: None,
            last_ts: None,
            in_order: true,
            damage: None,
        };
        let mut latest = i64::MIN;
        for item in capture.records() {
            let r = match item {
                Ok(r) => r,
                Err(e) => {
                    span.damage = Some(format!(
                        "{}: {e}; its records before the damage were read",
                        capture.path().display()
                    ));
                    break;
                }
            };
            span.packets += 1;
            let ts = r.ts.0;
            span.in_order &= ts >= latest;
            latest = latest.max(ts);
            span.first_ts = Some(span.first_ts.map_or(ts, |t| t.min(ts)));
            span.last_ts = Some(span.last_ts.map_or(ts, |t| t.max(ts)));
            // `flows` keys streams as split does by default: the outer address pair. (The
            // one case `route` refuses needs --icmp-with-flow, which flows does not use.)
            let p =
                shuffle::route(r.link.0, r.data, KeyOptions::default(), fp.partitions).unwrap_or(0);
            parts[p as usize].push(Located {
                file: file as u32,
                record: r.index,
                offset: r.offset,
            });
        }
        files.push(span);
    }
    shuffle::commit_parts(&shuffle::parts_file(work, n), &parts).map_err(anyhow::Error::msg)?;
    Ok(Mapped { files })
}

/// Every map task's files, in input order; an error names a task not committed.
fn spans(work: &Path, maps: usize) -> anyhow::Result<Vec<FileSpan>> {
    let mut out = Vec::new();
    for m in 0..maps {
        let path = work.join(format!("map-{m:06}.json"));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("map task {m} has not committed: run the map stage first"))?;
        let part: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a task's result", path.display()))?;
        // A map task of `flows`, or of `index` (which makes the flow table too).
        let found = match &part["IndexMap"] {
            serde_json::Value::Null => &part["FlowsMap"],
            index => &index["flows"],
        };
        let mapped: Mapped = serde_json::from_value(found.clone())
            .with_context(|| format!("{}: not a flows map task's result", path.display()))?;
        out.extend(mapped.files);
    }
    Ok(out)
}

/// Why the set does not read file after file in time order, if it does not: `flows` would
/// interleave its files.
fn overlap(spans: &[FileSpan], paths: &[PathBuf]) -> Option<String> {
    let mut latest: Option<(i64, usize)> = None;
    for (i, s) in spans.iter().enumerate() {
        if !s.in_order {
            return Some(format!("{} is not in time order", paths[i].display()));
        }
        if let (Some((t, j)), Some(first)) = (latest, s.first_ts)
            && first < t
        {
            return Some(format!(
                "{} starts before {} ends",
                paths[i].display(),
                paths[j].display()
            ));
        }
        if let Some(last) = s.last_ts
            && latest.is_none_or(|(t, _)| last >= t)
        {
            latest = Some((last, i));
        }
    }
    None
}

/// What a reduce task commits.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reduced {
    /// Its flows, numbered as its own table numbered them, their files by place among the
    /// inputs (named at the finish).
    pub rows: Vec<Row<Vec<u32>>>,
    pub numbered: Vec<(Position, Numbered)>,
}

/// Reduce task `p`: the flow table of the partition's packets, with the single run's frame
/// numbers (the packets of every file before, then the packet's place in its file).
pub fn reduce(paths: &[PathBuf], maps: usize, work: &Path, p: usize) -> anyhow::Result<Reduced> {
    let spans = spans(work, maps)?;
    let mut frames_before = Vec::with_capacity(spans.len());
    let mut total = 0u64;
    for s in &spans {
        frames_before.push(total);
        total += s.packets;
    }
    let mut located = Vec::new();
    for m in 0..maps {
        located.extend(
            shuffle::read_part(&shuffle::parts_file(work, m), p as u32)
                .map_err(anyhow::Error::msg)?,
        );
    }
    let (by_file, captures) =
        shuffle::open_partition(paths, &located).map_err(anyhow::Error::msg)?;
    let mut table = FlowTable::default();
    table.record_numbering();
    let mut numbered = Vec::new();
    for ((file, mine), capture) in by_file.iter().zip(&captures) {
        let mut walk = shuffle::Mine::new(capture, mine);
        while let Some(r) = walk.next_mine().map_err(anyhow::Error::msg)? {
            let frame = frames_before[*file as usize] + r.index + 1;
            table.add(&Packet::dissect(r, frame, *file));
            let at = Position {
                file: *file,
                record: r.index,
            };
            numbered.extend(table.take_numbered().into_iter().map(|n| (at, n)));
        }
    }
    let rows = table
        .flows()
        .iter()
        .map(|f| tracekit_flows::numbered_row(&f.summary()))
        .collect();
    Ok(Reduced { rows, numbered })
}

/// The finish: the streams numbered as one run numbers them, the rows in order of first
/// appearance, printed as `flows` prints them.
pub fn finish(
    f: &FlowsArgs,
    fp: &FlowsPlan,
    paths: &[PathBuf],
    maps: usize,
    reduces: Vec<Reduced>,
    work: &Path,
) -> anyhow::Result<Outcome> {
    let Collected {
        rows,
        trouble,
        packets,
    } = collect(&fp.trouble, paths, maps, reduces, work)?;
    let total = rows.len();
    let mut rows = rows;
    if let Some(n) = f.top {
        let keys: Vec<i128> = rows.iter().map(|r| r.rank(&f.by)).collect();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(a.cmp(&b)));
        order.truncate(n);
        let mut slots: Vec<Option<Row<Vec<u32>>>> = rows.into_iter().map(Some).collect();
        rows = order.iter().filter_map(|&i| slots[i].take()).collect();
    }
    let names = names(paths);
    flows::print(
        f,
        rows.into_iter()
            .map(|r| Ok(r.map_files(|files| tracekit_flows::named(&files, &names)))),
    )?;
    eprintln!(
        "tracekit flows: {total} flow(s) from {packets} packet(s) of {} input(s)",
        paths.len()
    );
    for t in &trouble {
        eprintln!("  {t}");
    }
    Ok(if trouble.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// The rows of the whole set in order of first appearance, with the single run's stream
/// numbers; the trouble lines (`opened`: those of inputs that did not open, then each damaged
/// file's); the packets read. An error [`shuffle::NotExact`] when partitions cannot give the
/// single run's table.
pub fn collect(
    opened: &[String],
    paths: &[PathBuf],
    maps: usize,
    mut reduces: Vec<Reduced>,
    work: &Path,
) -> anyhow::Result<Collected> {
    let spans = spans(work, maps)?;
    if let Some(why) = overlap(&spans, paths) {
        return Err(shuffle::NotExact(format!(
            "flows reads a set as one capture in time order, and this set's files do not follow one another ({why}); run `tracekit flows` on one machine"
        ))
        .into());
    }
    // Rows name their files by number: a result naming a file the plan does not have is not
    // this plan's (or was damaged), and is refused rather than named wrong.
    if let Some(p) = reduces.iter().position(|r| {
        r.rows
            .iter()
            .any(|row| row.files.iter().any(|&f| f as usize >= paths.len()))
    }) {
        bail!(
            "reduce task {p}'s result names a file the plan does not have: run its reduce stage again"
        );
    }
    // Taken, not copied: the rows are all that is used of the results after this.
    let logs: Vec<_> = reduces
        .iter_mut()
        .map(|r| std::mem::take(&mut r.numbered))
        .collect();
    let ren = shuffle::renumber(&logs)
        .map_err(|e| shuffle::NotExact(format!("{e}; run `tracekit flows` on one machine")))?;
    let mut rows = Vec::with_capacity(reduces.iter().map(|r| r.rows.len()).sum());
    for (p, r) in reduces.into_iter().enumerate() {
        for mut row in r.rows {
            let map = match row.proto.as_str() {
                "tcp" => &ren.tcp[p],
                "udp" => &ren.udp[p],
                _ => {
                    rows.push(row);
                    continue;
                }
            };
            row.stream = row.stream.map(|s| map.get(&s).copied().unwrap_or(s));
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| r.first_frame);
    let mut trouble = opened.to_vec();
    trouble.extend(spans.iter().filter_map(|s| s.damage.clone()));
    let packets: u64 = spans.iter().map(|s| s.packets).sum();
    Ok(Collected {
        rows,
        trouble,
        packets,
    })
}

/// The inputs' names as `flows` prints them, in input order.
#[must_use]
pub fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// The flow table of a set from its partitions (see [`collect`]).
#[derive(Debug)]
pub struct Collected {
    /// In order of first appearance, with the single run's stream numbers; files by place
    /// among the inputs (see [`names`]).
    pub rows: Vec<Row<Vec<u32>>>,
    /// What the single run says of inputs that did not open or were damaged.
    pub trouble: Vec<String>,
    /// Packets read.
    pub packets: u64,
}
