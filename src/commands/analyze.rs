//! `tracekit analyze`: two captures of the same connections, what sits between them, and who
//! closed each connection. Also `--batch DIR_A DIR_B -o OUTDIR` over many pairs.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde::Serialize;
use tracekit_analyze::trace::Conn;
use tracekit_analyze::{
    Analysis, Batch, ConnTable, Input, Packet, PortFilter, Scope, TableBuilder,
};
use tracekit_capture::Capture;
use tracekit_capture::output::AtomicFile;
use tracekit_merge::align::{self, Trace};
use tracekit_wire::Endpoint;

use crate::cli::AnalyzeArgs;
use crate::{Outcome, inputs, progress};

/// Packets per trace whose signatures feed the clock alignment. The offset is one number for
/// the whole trace, so the first packets suffice (merge takes more, for the same reason the
/// traces may overlap late); more only costs time on traces of millions of packets. (On the
/// bench's 1 GB pair, 100,000 give 56,133 matched packets and the exact offset; 250,000 gave the
/// same offset for about half a second more CPU time.)
const ALIGN_PACKETS: u64 = 100_000;
/// The estimate is tried first on this many packets of each trace, while the readers go on
/// (on the bench's 1 GB pair, 25,000 give 24,990 matched packets and the same exact offset as
/// 100,000; the estimate on 100,000 took 0.15–0.2 s of a core that both readers needed, an
/// eighth of the wall time). It settles there when [`settles`] says so; otherwise it is made
/// again on [`ALIGN_PACKETS`].
const ALIGN_FIRST: u64 = 25_000;
/// Matched packets an estimate on the first packets needs to settle.
const ALIGN_SETTLED_MATCHES: usize = 1_000;

/// Whether an estimate on the first [`ALIGN_FIRST`] packets of each trace stands: bounded on
/// both sides (packets matched in both directions) by enough matched packets. Otherwise
/// (traces that overlap later, little traffic in common, one direction only), more packets may
/// bound it.
fn settles(alignment: &align::Alignment) -> bool {
    alignment.width().is_some() && alignment.matches >= ALIGN_SETTLED_MATCHES
}

/// What a reader hands the clock estimate: its signatures so far, and whether they are all it
/// will take (the trace ended, or [`ALIGN_PACKETS`] were taken).
type Signatures = (Trace, bool);

/// What the clock estimate made of the first packets, for the readers: nothing yet, it stands
/// (they stop taking signatures), or it needs all they take.
#[derive(Debug, Default)]
struct Verdict(AtomicU8);

impl Verdict {
    const PENDING: u8 = 0;
    const SETTLED: u8 = 1;
    const MORE: u8 = 2;

    fn set(&self, settled: bool) {
        let v = if settled { Self::SETTLED } else { Self::MORE };
        self.0.store(v, Ordering::Relaxed);
    }
    /// `None` while pending; whether the estimate settled.
    fn get(&self) -> Option<bool> {
        match self.0.load(Ordering::Relaxed) {
            Self::PENDING => None,
            v => Some(v == Self::SETTLED),
        }
    }
}

/// A reader's signatures for the clock estimate: a copy of the first [`ALIGN_FIRST`]
/// packets' is handed over as soon as they are in; all of them (up to [`ALIGN_PACKETS`]) only
/// once the estimate asks for more, or at the end of the trace unless it settled. (Sorting
/// 100,000 signatures costs a core tens of milliseconds; the estimate usually settles on the
/// first.)
struct ForEstimate<'s> {
    trace: Option<Trace>,
    sent_first: bool,
    to: &'s mpsc::SyncSender<Signatures>,
    verdict: &'s Verdict,
}

impl<'s> ForEstimate<'s> {
    fn new(to: &'s mpsc::SyncSender<Signatures>, verdict: &'s Verdict) -> Self {
        ForEstimate {
            trace: Some(Trace::new(ALIGN_PACKETS)),
            sent_first: false,
            to,
            verdict,
        }
    }

    /// Takes a batch's packets (in trace order), and hands over what is due.
    fn take(&mut self, packets: &[Packet]) {
        let Some(trace) = &mut self.trace else {
            return;
        };
        if !trace.is_full() {
            for p in packets {
                trace.add_dissected(p.frame, p.ts, &p.layers, p.data);
            }
        }
        if !self.sent_first {
            if trace.packets() >= ALIGN_FIRST {
                let mut first = trace.clone();
                first.finish();
                // (Sends fail only once the estimate needs no more, or its thread has
                // panicked, which `join` passes on.)
                let _ = self.to.send((first, false));
                self.sent_first = true;
            }
            return;
        }
        match self.verdict.get() {
            Some(true) => self.trace = None,
            Some(false) if trace.is_full() => self.send_all(),
            // Pending: go on taking, or hold a full trace (unsorted) until the verdict.
            _ => {}
        }
    }

    /// At the end of the trace (or where reading stopped): all its signatures, unless the
    /// estimate settled without them.
    fn end(&mut self) {
        if self.verdict.get() != Some(true) {
            self.send_all();
        }
    }

    fn send_all(&mut self) {
        if let Some(mut trace) = self.trace.take() {
            trace.finish();
            let _ = self.to.send((trace, true));
        }
    }
}

/// The clock estimate, on its own thread while the traces are read: first on the first
/// [`ALIGN_FIRST`] packets of each trace, then, unless that [`settles`], on all the readers
/// send; `verdict` tells the readers which. Also the time spent estimating (not waiting).
fn estimate_clock(
    a: &mpsc::Receiver<Signatures>,
    b: &mpsc::Receiver<Signatures>,
    verdict: &Verdict,
) -> (Option<align::Alignment>, Duration) {
    let (Ok((mut ta, a_all)), Ok((mut tb, b_all))) = (a.recv(), b.recv()) else {
        return (None, Duration::ZERO);
    };
    let start = Instant::now();
    let first = align::estimate(&mut ta, &mut tb);
    let mut took = start.elapsed();
    if (a_all && b_all) || first.as_ref().is_some_and(settles) {
        verdict.set(true);
        return (first, took);
    }
    verdict.set(false);
    // A reader that stops early (damage that ends its file) still sends what it took; one that
    // failed sends nothing more, and what it sent first stands.
    let more = |rx: &mpsc::Receiver<Signatures>, done: bool| {
        if done {
            None
        } else {
            rx.recv().ok().map(|(t, _)| t)
        }
    };
    let (mut ta, mut tb) = match (more(a, a_all), more(b, b_all)) {
        // Nothing new: the first estimate is all there is.
        (None, None) => return (first, took),
        (new_a, new_b) => (new_a.unwrap_or(ta), new_b.unwrap_or(tb)),
    };
    let start = Instant::now();
    let alignment = align::estimate(&mut ta, &mut tb);
    took += start.elapsed();
    (alignment, took)
}

/// One trace read once: its connections (its alignment signatures went to the estimate).
struct Read {
    name: String,
    table: ConnTable,
    /// Damage read past or that stopped the walk: (count, first description).
    problems: Vec<String>,
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Room to reserve for the connections of a trace of `len` bytes: one per 8 KiB (the bench's
/// traces hold one per 15 KiB), at most 256 Ki. Growing the table past a few tens of thousands
/// of connections copied it each time it doubled; reserved room that is not used costs address
/// space only.
fn expected_conns(len: u64) -> usize {
    usize::try_from(len / 8192)
        .unwrap_or(usize::MAX)
        .min(256 << 10)
}

/// Reads the trace at `path`, `len` bytes long. Its alignment signatures go to `signatures`
/// as [`ForEstimate`] says, so that the clock estimate runs while the rest is read.
fn read(
    path: &Path,
    len: u64,
    port: Option<u16>,
    bar: &indicatif::ProgressBar,
    signatures: &mpsc::SyncSender<Signatures>,
    verdict: &Verdict,
) -> anyhow::Result<Read> {
    let capture = Capture::open(path)?;
    let mut table = TableBuilder::with_capacity(port.map(PortFilter), expected_conns(len));
    let mut align = ForEstimate::new(signatures, verdict);
    let mut problems = Vec::new();
    let mut records = capture.records();
    let mut last_pos = 0u64;
    // Packets go to the table in batches (see `TableBuilder::add_batch`); one dissection
    // feeds both the table and the clock alignment.
    let mut batch = Batch::default();
    let feed = |table: &mut TableBuilder, align: &mut ForEstimate, packets: &[Packet]| {
        table.add_batch(packets);
        align.take(packets);
    };
    for (n, r) in records.by_ref().enumerate() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!(
                    "{}: {e}; the rest of the file was not read",
                    path.display()
                ));
                break;
            }
        };
        let frame = n as u64 + 1;
        if let Some(full) = batch.push(frame, r.ts.0, r.link.0, r.data) {
            feed(&mut table, &mut align, full);
        }
        if frame.is_multiple_of(65_536) {
            bar.inc(r.offset - last_pos);
            last_pos = r.offset;
            // The connections to expect, from those so far and the part of the file read
            // (an eighth more, so the estimate rarely has to grow again), at most one per
            // smallest TCP packet record (70 bytes).
            let expected = (u128::from(table.len() as u64) * u128::from(len) * 9
                / (u128::from(r.offset.max(1)) * 8))
                .min(u128::from(len / 70));
            table.expect(usize::try_from(expected).unwrap_or(usize::MAX));
        }
    }
    feed(&mut table, &mut align, batch.rest());
    let (kept, count) = records.problems();
    if count > 0 {
        let first = kept
            .first()
            .map_or_else(String::new, |p| format!(", first: {p}"));
        problems.push(format!(
            "{}: {count} oddities read past{first}",
            path.display()
        ));
    }
    align.end();
    Ok(Read {
        name: display_name(path),
        // Finished here, so each trace's table is finished on the core that read it.
        table: table.finish(),
        problems,
    })
}

/// `--timings`: when each step of the analysis ended, and how long the clock estimate took on
/// its own thread, on stderr (for finding where the time of a large pair goes).
#[derive(Debug, Clone, Copy)]
struct Timings(Option<Instant>);

impl Timings {
    /// (Arguments, not a string: without `--timings` no step is formatted.)
    fn mark(self, step: std::fmt::Arguments<'_>) {
        if let Some(start) = self.0 {
            eprintln!(
                "tracekit analyze: {:8.3} s  {step}",
                start.elapsed().as_secs_f64()
            );
        }
    }
}

/// Reads both traces (in parallel) and compares them within `scope`.
fn analyze_pair(
    a: &Path,
    b: &Path,
    port: Option<u16>,
    quiet: bool,
    scope: Scope<'_>,
    timings: Timings,
) -> anyhow::Result<(Analysis, Vec<String>, Tables)> {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let (len_a, len_b) = (len(a), len(b));
    let bar = progress::bytes(len_a + len_b, quiet);
    // The clock estimate needs the first packets of each trace only: it runs on a thread of
    // its own while the rest is read, rather than after the reading with one core idle (on the
    // bench's 1 GB pair it took 0.15 s of the 0.9 s, alone).
    // (Room for both of a reader's hand-overs: a reader never waits for the estimate.)
    let (to_estimate_a, signatures_a) = mpsc::sync_channel(2);
    let (to_estimate_b, signatures_b) = mpsc::sync_channel(2);
    let verdict = Arc::new(Verdict::default());
    let estimate = std::thread::Builder::new()
        .name("clock estimate".into())
        .spawn({
            let verdict = Arc::clone(&verdict);
            move || {
                let (alignment, took) = estimate_clock(&signatures_a, &signatures_b, &verdict);
                timings.mark(format_args!(
                    "clock estimate done (it took {:.3} s)",
                    took.as_secs_f64()
                ));
                alignment
            }
        })
        .context("starting the clock estimate's thread")?;
    let read_one = |path: &Path, len: u64, signatures: &mpsc::SyncSender<Signatures>| {
        let read = read(path, len, port, &bar, signatures, &verdict);
        timings.mark(format_args!("{} read", display_name(path)));
        read
    };
    let (ra, rb) = rayon::join(
        || read_one(a, len_a, &to_estimate_a),
        || read_one(b, len_b, &to_estimate_b),
    );
    bar.finish_and_clear();
    // A reader that failed before handing its signatures over leaves the estimate waiting:
    // without the senders it ends with `None` (and the reader's error is returned below).
    drop((to_estimate_a, to_estimate_b));
    let alignment = estimate
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let (mut ra, mut rb) = (ra?, rb?);
    let analysis = tracekit_analyze::analyze_scoped(
        Input {
            name: &ra.name,
            table: &ra.table,
        },
        Input {
            name: &rb.name,
            table: &rb.table,
        },
        alignment.as_ref(),
        scope,
    );
    timings.mark(format_args!(
        "{} connection pairs compared",
        analysis.rows.len()
    ));
    let mut problems = std::mem::take(&mut ra.problems);
    problems.append(&mut rb.problems);
    Ok((analysis, problems, Tables(ra, rb)))
}

/// What a pair's analysis was built from, handed back so that a caller about to exit can
/// leave freeing it (tens of thousands of connections: a tenth of a second or more) to a
/// thread the exit does not wait for, rather than have it compete with writing the report.
#[expect(dead_code, reason = "held only to be freed later")]
struct Tables(Read, Read);

/// `--conn`: ADDR, ADDR:PORT, [V6]:PORT or :PORT.
fn parse_conn_filter(s: &str) -> anyhow::Result<(Option<IpAddr>, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((Some(ip), None));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((Some(sa.ip()), Some(sa.port())));
    }
    if let Some(port) = s.strip_prefix(':')
        && let Ok(p) = port.parse::<u16>()
    {
        return Ok((None, Some(p)));
    }
    bail!("--conn {s}: expected ADDR, ADDR:PORT, [IPv6]:PORT or :PORT")
}

fn endpoint_matches(e: Endpoint, (ip, port): (Option<IpAddr>, Option<u16>)) -> bool {
    ip.is_none_or(|ip| ip == e.addr) && port.is_none_or(|p| p == e.port)
}

pub fn run(args: &AnalyzeArgs) -> anyhow::Result<Outcome> {
    if let Some(dirs) = &args.batch {
        let Some(out) = &args.output else {
            bail!("--batch needs -o OUTDIR");
        };
        return batch(&dirs[0], &dirs[1], out, args);
    }
    let timings = Timings(args.timings.then(Instant::now));
    let filter = args.conn.as_deref().map(parse_conn_filter).transpose()?;
    let keep = filter.map(|f| {
        move |c: &Conn, s: &Conn| {
            [c.client, c.server, s.client, s.server]
                .iter()
                .any(|e| endpoint_matches(*e, f))
        }
    });
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
    let (analysis, problems, tables) = analyze_pair(
        &args.traces[0],
        &args.traces[1],
        args.port,
        args.quiet,
        scope,
        timings,
    )?;
    let inputs = [args.traces[0].as_path(), args.traces[1].as_path()];
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

/// One row of the batch summary.
#[derive(Debug, Serialize)]
struct SummaryRow {
    a: String,
    b: String,
    paired_by: &'static str,
    report: String,
    connections: usize,
    failed: usize,
    middlebox: String,
    closed_by: String,
    verdict: String,
    error: String,
}

fn batch(dir_a: &Path, dir_b: &Path, out: &Path, args: &AnalyzeArgs) -> anyhow::Result<Outcome> {
    let list = |d: &Path| -> anyhow::Result<Vec<PathBuf>> {
        if !d.is_dir() {
            bail!("{}: not a directory", d.display());
        }
        Ok(inputs::expand(&[d.to_path_buf()]).files)
    };
    let (files_a, files_b) = (list(dir_a)?, list(dir_b)?);
    let pairs = pair_files(dir_a, &files_a, dir_b, &files_b);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = progress::items(pairs.len() as u64, "pairs", args.quiet);
    let rows: Vec<SummaryRow> = pairs
        .par_iter()
        .map(|(a, b, how)| {
            let row = batch_one(a, b, how, out, args.port);
            bar.inc(1);
            row
        })
        .collect();
    bar.finish_and_clear();
    let csv_path = out.join("summary.csv");
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &rows {
        w.serialize(r)?;
    }
    let csv_bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&csv_path, &csv_bytes, &[])?;
    let json_path = out.join("summary.json");
    let json = serde_json::to_string_pretty(&serde_json::json!({ "pairs": rows }))?;
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
        })
        .collect();
    write_atomic(
        &out.join("index.html"),
        tracekit_report::html::index(&index).as_bytes(),
        &[],
    )?;
    let failed_pairs = rows.iter().filter(|r| !r.error.is_empty()).count();
    let unpaired = files_a.len() + files_b.len() - 2 * pairs.len();
    println!(
        "{} pair(s) analyzed, {} with failed connections, {failed_pairs} could not be read, {unpaired} file(s) without a partner; summary in {}",
        rows.len(),
        rows.iter().filter(|r| r.failed > 0).count(),
        csv_path.display()
    );
    Ok(if failed_pairs > 0 || unpaired > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

fn batch_one(a: &Path, b: &Path, how: &'static str, out: &Path, port: Option<u16>) -> SummaryRow {
    let stem = format!("{}--{}", display_name(a), display_name(b));
    let mut row = SummaryRow {
        a: a.display().to_string(),
        b: b.display().to_string(),
        paired_by: how,
        report: String::new(),
        connections: 0,
        failed: 0,
        middlebox: String::new(),
        closed_by: String::new(),
        verdict: String::new(),
        error: String::new(),
    };
    let scope = Scope {
        full: usize::MAX,
        filter: None,
    };
    let result = analyze_pair(a, b, port, true, scope, Timings(None)).and_then(|(analysis, ..)| {
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
        Ok((analysis, txt)) => {
            row.report = txt.display().to_string();
            row.connections = analysis.connections.len();
            row.failed = analysis.connections.iter().filter(|c| c.failed).count();
            if let Some(c) = analysis.connections.first() {
                row.middlebox = c.middlebox.kind.join(",");
                row.closed_by = c.closed_by.to_string();
                row.verdict.clone_from(&c.verdict);
            }
        }
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

/// What pairing by content needs of a file: its time span and the TCP connections it opens.
#[derive(Debug)]
struct Sketch {
    first: i64,
    last: i64,
    /// (server port, client port) of the SYNs in the first packets.
    conns: std::collections::BTreeSet<(u16, u16)>,
}

fn sketch(path: &Path) -> Option<Sketch> {
    const SYNS_FROM: u64 = 200_000;
    let c = Capture::open(path).ok()?;
    let mut s = Sketch {
        first: i64::MAX,
        last: i64::MIN,
        conns: std::collections::BTreeSet::new(),
    };
    for (n, r) in c.records().map_while(Result::ok).enumerate() {
        s.first = s.first.min(r.ts.0);
        s.last = s.last.max(r.ts.0);
        if (n as u64) < SYNS_FROM
            && let Some(tcp) = tracekit_wire::dissect(r.link.0, r.data).tcp(r.data)
            && tcp.flags() & 0x12 == 0x02
        {
            s.conns.insert((tcp.dst_port(), tcp.src_port()));
        }
    }
    (s.first <= s.last).then_some(s)
}

/// Pairs files by their path under each directory; the rest by shared connections and
/// overlapping time.
fn pair_files(
    dir_a: &Path,
    a: &[PathBuf],
    dir_b: &Path,
    b: &[PathBuf],
) -> Vec<(PathBuf, PathBuf, &'static str)> {
    let rel = |d: &Path, p: &Path| {
        p.strip_prefix(d)
            .map_or_else(|_| p.to_path_buf(), Path::to_path_buf)
    };
    let mut used_b = vec![false; b.len()];
    let mut pairs = Vec::new();
    let mut left_a = Vec::new();
    for pa in a {
        let ra = rel(dir_a, pa);
        match b.iter().position(|pb| rel(dir_b, pb) == ra) {
            Some(i) if !used_b[i] => {
                used_b[i] = true;
                pairs.push((pa.clone(), b[i].clone(), "name"));
            }
            _ => left_a.push(pa.clone()),
        }
    }
    let spans_b: Vec<Option<Sketch>> = b.par_iter().map(|p| sketch(p)).collect();
    let sketches_a: Vec<(PathBuf, Option<Sketch>)> = left_a
        .into_par_iter()
        .map(|p| {
            let s = sketch(&p);
            (p, s)
        })
        .collect();
    for (pa, sa) in sketches_a {
        let Some(sa) = sa else { continue };
        // Most shared connections first (server port with client port: kept by routers,
        // firewalls and transparent proxies), then the longest time overlap.
        let best = (0..b.len())
            .filter(|&i| !used_b[i])
            .filter_map(|i| {
                let sb = spans_b[i].as_ref()?;
                let overlap = sa.last.min(sb.last) - sa.first.max(sb.first);
                let shared = sa.conns.intersection(&sb.conns).count();
                (overlap > 0).then_some((shared, overlap, i))
            })
            .max();
        if let Some((shared, _, i)) = best {
            used_b[i] = true;
            pairs.push((
                pa,
                b[i].clone(),
                if shared > 0 {
                    "time+connections"
                } else {
                    "time"
                },
            ));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracekit_testutil::packets::segment;

    const MS: i64 = 1_000_000;
    /// B's clock runs this far ahead of A's.
    const B_AHEAD: i64 = 250 * MS;

    /// The signatures of `n` handshakes seen at a client-side point A and a server-side point B:
    /// each SYN reaches B 1 ms after A saw it, each SYN/ACK reaches A 1 ms after B sent it.
    fn handshakes(n: u16) -> (Trace, Trace) {
        let (mut a, mut b) = (Trace::new(ALIGN_PACKETS), Trace::new(ALIGN_PACKETS));
        for i in 0..n {
            let t = i64::from(i) * 10 * MS;
            let (port, isn) = (10_000 + i, 7_000_000 + u32::from(i) * 3);
            let syn = segment(port, false, 64, 0, isn, 0x02);
            let syn_ack = segment(port, true, 64, 0, isn ^ 0x5555_5555, 0x12);
            let frame = 2 * u64::from(i) + 1;
            a.add(frame, t, 1, &syn);
            b.add(frame, t + MS + B_AHEAD, 1, &syn);
            b.add(frame + 1, t + 2 * MS + B_AHEAD, 1, &syn_ack);
            a.add(frame + 1, t + 3 * MS, 1, &syn_ack);
        }
        a.finish();
        b.finish();
        (a, b)
    }

    /// Channels as `analyze_pair` makes them, loaded with what the readers would send.
    fn sent(
        a: Vec<Signatures>,
        b: Vec<Signatures>,
    ) -> (mpsc::Receiver<Signatures>, mpsc::Receiver<Signatures>) {
        let load = |msgs: Vec<Signatures>| {
            let (tx, rx) = mpsc::sync_channel(2);
            for m in msgs {
                tx.send(m).unwrap();
            }
            rx
        };
        (load(a), load(b))
    }

    #[test]
    fn an_estimate_on_the_first_packets_that_settles_stops_the_readers() {
        let (first_a, first_b) = handshakes(600);
        let (rx_a, rx_b) = sent(vec![(first_a, false)], vec![(first_b, false)]);
        let verdict = Verdict::default();
        let (alignment, _) = estimate_clock(&rx_a, &rx_b, &verdict);
        let alignment = alignment.expect("matched");
        assert_eq!(verdict.get(), Some(true));
        assert_eq!(alignment.matches, 1200);
        // B − A for the SYN is 251 ms, for the SYN/ACK 249 ms: the offset lies between.
        assert_eq!(
            (alignment.lo, alignment.hi),
            (Some(-B_AHEAD - MS), Some(-B_AHEAD + MS))
        );
    }

    #[test]
    fn an_estimate_that_does_not_settle_on_the_first_packets_is_made_on_all() {
        let (first_a, first_b) = handshakes(20);
        let (all_a, all_b) = handshakes(700);
        let (rx_a, rx_b) = sent(
            vec![(first_a, false), (all_a, true)],
            vec![(first_b, false), (all_b, true)],
        );
        let verdict = Verdict::default();
        let (alignment, _) = estimate_clock(&rx_a, &rx_b, &verdict);
        assert_eq!(verdict.get(), Some(false));
        assert_eq!(alignment.expect("matched").matches, 1400);
    }

    #[test]
    fn a_reader_that_sends_nothing_more_leaves_its_first_signatures() {
        // A ended before the first hand-over (all it has); B sent its first packets, then
        // failed: what B sent first stands.
        let (all_a, first_b) = handshakes(20);
        let (rx_a, rx_b) = sent(vec![(all_a, true)], vec![(first_b, false)]);
        let (alignment, _) = estimate_clock(&rx_a, &rx_b, &Verdict::default());
        assert_eq!(alignment.expect("matched").matches, 40);
    }

    /// `n` SYNs from distinct ports, dissected.
    fn syns(n: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| segment(1024 + (i % 60_000) as u16, false, 64, 0, i, 0x02))
            .collect()
    }

    fn feed(to: &mut ForEstimate, frames: &[Vec<u8>], first_frame: u64) {
        let packets: Vec<Packet> = frames
            .iter()
            .zip(first_frame..)
            .map(|(data, frame)| Packet {
                frame,
                ts: frame as i64 * MS,
                layers: tracekit_wire::dissect(1, data),
                data,
            })
            .collect();
        for batch in packets.chunks(tracekit_analyze::trace::BATCH) {
            to.take(batch);
        }
    }

    #[test]
    fn signatures_go_first_in_part_then_in_full_only_when_the_estimate_asks() {
        let packets = syns(ALIGN_PACKETS as u32 + 100);
        let first = ALIGN_FIRST as usize;
        for settled in [None, Some(true), Some(false)] {
            let (tx, rx) = mpsc::sync_channel(2);
            let verdict = Verdict::default();
            let mut reader = ForEstimate::new(&tx, &verdict);
            feed(&mut reader, &packets[..first - 1], 1);
            assert!(
                rx.try_recv().is_err(),
                "nothing before the first packets are in"
            );
            feed(&mut reader, &packets[first - 1..first + 63], first as u64);
            let (part, all) = rx.try_recv().expect("the first packets' signatures");
            assert!(!all);
            assert!((ALIGN_FIRST..ALIGN_FIRST + 64).contains(&part.packets()));
            // Past the limit, with no verdict yet, the full signatures are held.
            feed(&mut reader, &packets[first + 63..], first as u64 + 64);
            assert!(rx.try_recv().is_err());
            if let Some(s) = settled {
                verdict.set(s);
            }
            feed(&mut reader, &packets[..1], ALIGN_PACKETS + 101);
            reader.end();
            match settled {
                Some(true) => assert!(rx.try_recv().is_err(), "settled: nothing more"),
                _ => {
                    let (full, all) = rx.try_recv().expect("all signatures");
                    assert!(all);
                    assert_eq!(full.packets(), ALIGN_PACKETS);
                }
            }
            assert!(rx.try_recv().is_err(), "each hand-over once");
        }
    }

    #[test]
    fn a_short_trace_hands_over_all_it_has_at_its_end() {
        let (tx, rx) = mpsc::sync_channel(2);
        let verdict = Verdict::default();
        let mut reader = ForEstimate::new(&tx, &verdict);
        feed(&mut reader, &syns(500), 1);
        assert!(rx.try_recv().is_err());
        reader.end();
        let (t, all) = rx.try_recv().expect("all signatures");
        assert!(all);
        assert_eq!(t.packets(), 500);
    }

    #[test]
    fn no_signatures_give_no_estimate() {
        let (rx_a, rx_b) = sent(vec![], vec![]);
        let (alignment, took) = estimate_clock(&rx_a, &rx_b, &Verdict::default());
        assert!(alignment.is_none());
        assert_eq!(took, Duration::ZERO);
    }
}
