//! Reading the two sides of an analysis: each a capture, or a set of captures read as one
//! (rotated files, in time order), into a [`ConnTable`], while the clock offset between the
//! sides is estimated on a thread of its own from the first packets. Frames are numbered over
//! the side as read; a [`FrameMap`] turns a number back into a file and the frame Wireshark
//! shows in that file.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tracekit_capture::{Capture, Record, Records};
use tracekit_merge::align::{self, Trace};
use tracekit_merge::{Input as MergeInput, Item, Merger, Order};
use tracekit_select::Spec;

use crate::model::{Analysis, FileFrames};
use crate::trace::{Batch, ConnTable, Packet, PortFilter, TableBuilder};
use crate::{Input, Scope};

/// Packets per trace whose signatures feed the clock alignment. The offset is one number for
/// the whole trace, so the first packets suffice (merge takes more, for the same reason the
/// traces may overlap late); more only costs time on traces of millions of packets. (On the
/// bench's 1 GB pair, 100,000 give 56,133 matched packets and the exact offset; 250,000 gave the
/// same offset for about half a second more CPU time.)
pub const ALIGN_PACKETS: u64 = 100_000;
/// The estimate is tried first on this many packets of each trace, while the readers go on
/// (on the bench's 1 GB pair, 25,000 give 24,990 matched packets and the same exact offset as
/// 100,000; the estimate on 100,000 took 0.15–0.2 s of a core that both readers needed, an
/// eighth of the wall time). It settles there when [`settles`] says so; otherwise it is made
/// again on [`ALIGN_PACKETS`].
pub const ALIGN_FIRST: u64 = 25_000;
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
    /// Signatures of the first packets of every later window, for finding drift.
    later: Later,
}

/// Packets taken from each window of a side's own time after the first (for the offset per
/// window, when clocks drift), and at most this many in all (about 40 bytes of signatures a
/// packet: 500 windows, eight hours of one-minute windows).
const PER_WINDOW: u32 = 1_000;
const LATER_PACKETS: u64 = 500_000;
/// Matched packets a window needs for its own offset.
const WINDOW_MATCHES: usize = 20;

/// The signatures of the first [`PER_WINDOW`] packets of each window of `width` after the
/// first (the first's are the estimate's own).
#[derive(Debug)]
struct Later {
    trace: Trace,
    width: i64,
    start: Option<i64>,
    window: i64,
    taken: u32,
}

impl Later {
    fn new(width: i64) -> Self {
        Later {
            trace: Trace::new(LATER_PACKETS),
            width: width.max(1),
            start: None,
            window: 0,
            taken: 0,
        }
    }

    fn take(&mut self, packets: &[Packet]) {
        if self.trace.is_full() {
            return;
        }
        for p in packets {
            let start = *self.start.get_or_insert(p.ts);
            let w = p.ts.saturating_sub(start).div_euclid(self.width);
            if w < 1 {
                continue;
            }
            if w != self.window {
                self.window = w;
                self.taken = 0;
            }
            if self.taken < PER_WINDOW {
                self.trace.add_dissected(p.frame, p.ts, &p.layers, p.data);
                self.taken += 1;
            }
        }
    }
}

impl<'s> ForEstimate<'s> {
    fn new(to: &'s mpsc::SyncSender<Signatures>, verdict: &'s Verdict, window: i64) -> Self {
        ForEstimate {
            trace: Some(Trace::new(ALIGN_PACKETS)),
            sent_first: false,
            to,
            verdict,
            later: Later::new(window),
        }
    }

    /// Takes a batch's packets (in trace order), and hands over what is due.
    fn take(&mut self, packets: &[Packet]) {
        self.later.take(packets);
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

/// One side of an analysis: one capture, or several read as one.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// What the report calls it: the file's name, or the directory's.
    pub name: &'a str,
    pub captures: &'a [Capture],
    /// Cite frames as file and frame within it (a set), rather than as frames of one file.
    pub set: bool,
}

impl Side<'_> {
    fn stored_len(&self) -> u64 {
        self.captures.iter().map(Capture::stored_len).sum()
    }
}

/// Where the frames of a side read as one capture come from: runs of consecutive frames of
/// one file. A set of rotated files is one run per file; files that overlap in time interleave
/// into more runs (a run per packet at worst: 24 bytes each).
#[derive(Debug, Clone, Default)]
pub struct FrameMap {
    /// File names (as the report shows them), in input order.
    pub files: Vec<String>,
    runs: Vec<Run>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    /// The first frame of the run, over the side.
    frame: u64,
    file: u32,
    /// Its frame number within the file (1-based, as Wireshark counts).
    local: u64,
}

impl FrameMap {
    fn push(&mut self, frame: u64, file: usize, local: u64) {
        if let Some(last) = self.runs.last()
            && last.file as usize == file
            && local.checked_sub(last.local) == frame.checked_sub(last.frame)
        {
            return;
        }
        self.runs.push(Run {
            frame,
            file: u32::try_from(file).unwrap_or(u32::MAX),
            local,
        });
    }

    /// Frame `frame` of the side: (its file's position in [`FrameMap::files`], its frame
    /// number within that file).
    #[must_use]
    pub fn locate(&self, frame: u64) -> Option<(usize, u64)> {
        let i = self
            .runs
            .partition_point(|r| r.frame <= frame)
            .checked_sub(1)?;
        let r = self.runs[i];
        Some((r.file as usize, r.local + (frame - r.frame)))
    }

    /// The runs as (first frame over the side, file, first frame within the file), for the
    /// JSON.
    #[must_use]
    pub fn runs(&self) -> Vec<(u64, usize, u64)> {
        self.runs
            .iter()
            .map(|r| (r.frame, r.file as usize, r.local))
            .collect()
    }

    /// Frames of the side grouped by file, each group with its frames within that file and a
    /// display filter for them, in file order.
    #[must_use]
    pub fn group(&self, frames: &[u64]) -> Vec<FileFrames> {
        let mut by_file: BTreeMap<usize, Vec<u64>> = BTreeMap::default();
        for &f in frames {
            if let Some((file, local)) = self.locate(f) {
                by_file.entry(file).or_default().push(local);
            }
        }
        by_file
            .into_iter()
            .map(|(file, frames)| FileFrames {
                file: self.files[file].clone(),
                filter: crate::compare::frame_filter(&frames).unwrap_or_default(),
                frames,
            })
            .collect()
    }
}

/// A side's records in the order it is read: one capture in file order (as Wireshark numbers
/// its frames), or a set merged by time between files, each file in its own order (rotated
/// files are in time order; a file whose clock steps back is read as Wireshark reads it, so
/// its frame numbers stay its own).
#[allow(clippy::large_enum_variant)] // one a side, on the stack of its reader
enum Walk<'a> {
    One(Records<'a>),
    Set(Box<Merger<'a>>),
}

/// What stopped or was read past on a side.
enum Damage {
    /// The file's walk stopped here: nothing more of it.
    Stopped(usize, tracekit_capture::ReadError),
}

impl<'a> Walk<'a> {
    fn new(side: &Side<'a>) -> Self {
        if side.captures.len() == 1 && !side.set {
            return Walk::One(side.captures[0].records());
        }
        let inputs = side
            .captures
            .iter()
            .map(|c| MergeInput {
                records: c.records(),
                shift: 0,
            })
            .collect();
        Walk::Set(Box::new(Merger::new(inputs, Order::KeepInputOrder)))
    }

    /// The next record and the file it is from; damage that stops a file.
    fn next(&mut self) -> Option<Result<(usize, Record<'a>), Damage>> {
        match self {
            Walk::One(records) => Some(match records.next()? {
                Ok(r) => Ok((0, r)),
                Err(e) => Err(Damage::Stopped(0, e)),
            }),
            Walk::Set(merger) => loop {
                match merger.next()? {
                    Item::Record { input, record, .. } => return Some(Ok((input, record))),
                    Item::Damaged { input, error } => {
                        return Some(Err(Damage::Stopped(input, error)));
                    }
                    Item::Side { .. } => {}
                }
            },
        }
    }

    /// Bytes read so far.
    fn position(&self, last: &Record<'_>) -> u64 {
        match self {
            Walk::One(_) => last.offset,
            Walk::Set(m) => Merger::position(m),
        }
    }

    /// Oddities read past in file `i`: (count, first description).
    fn problems(&self, i: usize) -> (u64, Option<String>) {
        match self {
            Walk::One(records) => {
                let (kept, count) = records.problems();
                (count, kept.first().map(ToString::to_string))
            }
            Walk::Set(m) => (m.problems(i), None),
        }
    }
}

/// One side read once: its connections (its alignment signatures went to the estimate).
#[derive(Debug)]
pub struct Read {
    pub name: String,
    pub table: ConnTable,
    /// Damage read past or that stopped the walk, a line each.
    pub problems: Vec<String>,
    /// For a set: where each frame comes from.
    pub frames: Option<FrameMap>,
    /// Signatures of the first packets of each later window of time (see [`Later`]).
    later: Trace,
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

/// How a pair is read, and who is told how it goes.
#[derive(Clone, Copy)]
pub struct Reading<'a> {
    /// Only connections with this TCP port.
    pub port: Option<u16>,
    /// Only the packets this selects, on each side (each on its own clock).
    pub select: Option<&'a Spec>,
    /// Bytes read (both sides), as they are read.
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// When each step ended (see `analyze --timings`).
    pub mark: &'a (dyn Fn(fmt::Arguments<'_>) + Sync),
    /// The windows of time (nanoseconds) over which clocks that drift get an offset each.
    pub clock_window: i64,
}

impl fmt::Debug for Reading<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reading")
            .field("port", &self.port)
            .field("select", &self.select.is_some())
            .finish_non_exhaustive()
    }
}

/// The first time of a side (the earliest first record of its files), for selections that
/// count from the first packet.
fn first_time(side: &Side<'_>) -> i64 {
    side.captures
        .iter()
        .filter_map(|c| c.records().find_map(Result::ok).map(|r| r.ts.0))
        .min()
        .unwrap_or(0)
}

/// Reads one side. Its alignment signatures go to `signatures` as [`ForEstimate`] says, so
/// that the clock estimate runs while the rest is read. An error only for a selection that
/// cannot be applied.
fn read(
    side: &Side<'_>,
    how: &Reading<'_>,
    signatures: &mpsc::SyncSender<Signatures>,
    verdict: &Verdict,
) -> Result<Read, String> {
    let len = side.stored_len();
    let mut table = TableBuilder::with_capacity(how.port.map(PortFilter), expected_conns(len));
    let mut align = ForEstimate::new(signatures, verdict, how.clock_window);
    let mut matcher = how.select.map(|s| s.matcher(first_time(side)));
    let mut problems = Vec::new();
    let mut walk = Walk::new(side);
    let mut frames = matches!(walk, Walk::Set(_)).then(|| FrameMap {
        files: side
            .captures
            .iter()
            .map(|c| display_name(c.path()))
            .collect(),
        runs: Vec::new(),
    });
    let mut last_pos = 0u64;
    // Packets go to the table in batches (see `TableBuilder::add_batch`); one dissection
    // feeds both the table and the clock alignment.
    let mut batch = Batch::default();
    let feed = |table: &mut TableBuilder, align: &mut ForEstimate, packets: &[Packet]| {
        table.add_batch(packets);
        align.take(packets);
    };
    let mut frame = 0u64;
    while let Some(next) = walk.next() {
        let (file, r) = match next {
            Ok(r) => r,
            Err(Damage::Stopped(i, e)) => {
                let path = side.captures[i].path().display();
                problems.push(if frames.is_some() {
                    format!("{path}: {e}; its records before the damage were read")
                } else {
                    format!("{path}: {e}; the rest of the file was not read")
                });
                if frames.is_some() {
                    continue;
                }
                break;
            }
        };
        frame += 1;
        if let Some(map) = &mut frames {
            map.push(frame, file, r.index + 1);
        }
        if frame.is_multiple_of(65_536) {
            let pos = walk.position(&r);
            (how.progress)(pos.saturating_sub(last_pos));
            last_pos = pos;
            // The connections to expect, from those so far and the part of the side read
            // (an eighth more, so the estimate rarely has to grow again), at most one per
            // smallest TCP packet record (70 bytes).
            let expected = (u128::from(table.len() as u64) * u128::from(len) * 9
                / (u128::from(pos.max(1)) * 8))
                .min(u128::from(len / 70));
            table.expect(usize::try_from(expected).unwrap_or(usize::MAX));
        }
        if let Some(m) = &mut matcher
            && !m
                .matches(frame, &r)
                .map_err(|e| format!("{}: {e}", side.captures[file].path().display()))?
        {
            continue;
        }
        if let Some(full) = batch.push(frame, r.ts.0, r.link.0, r.data) {
            feed(&mut table, &mut align, full);
        }
    }
    feed(&mut table, &mut align, batch.rest());
    for (i, c) in side.captures.iter().enumerate() {
        let (count, first) = walk.problems(i);
        if count > 0 {
            let first = first.map_or_else(String::new, |p| format!(", first: {p}"));
            problems.push(format!(
                "{}: {count} oddities read past{first}",
                c.path().display()
            ));
        }
    }
    align.end();
    let mut later = std::mem::take(&mut align.later.trace);
    later.finish();
    Ok(Read {
        name: side.name.to_string(),
        // Finished here, so each trace's table is finished on the core that read it.
        table: table.finish(),
        problems,
        frames,
        later,
    })
}

/// A path's last component, as reports name files.
#[must_use]
pub fn display_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What a pair's analysis was built from, handed back so that a caller about to exit can
/// leave freeing it (tens of thousands of connections: a tenth of a second or more) to a
/// thread the exit does not wait for, rather than have it compete with writing the report.
#[derive(Debug)]
pub struct Tables(pub Read, pub Read);

/// Reads both sides (in parallel, the clock estimate on a third thread) and compares them
/// within `scope`: the analysis, the damage met (a line each) and the tables. For a side read
/// as a set, the evidence also names each frame's file ([`locate`]).
///
/// # Errors
/// A selection that cannot be applied to a side's packets.
pub fn read_pair(
    a: &Side<'_>,
    b: &Side<'_>,
    how: &Reading<'_>,
    scope: Scope<'_>,
) -> Result<(Analysis, Vec<String>, Tables), String> {
    // The clock estimate needs the first packets of each trace only: it runs on a thread of
    // its own while the rest is read, rather than after the reading with one core idle (on the
    // bench's 1 GB pair it took 0.15 s of the 0.9 s, alone).
    // (Room for both of a reader's hand-overs: a reader never waits for the estimate.)
    let (to_estimate_a, signatures_a) = mpsc::sync_channel(2);
    let (to_estimate_b, signatures_b) = mpsc::sync_channel(2);
    let verdict = Arc::new(Verdict::default());
    let (ra, rb, alignment) = std::thread::scope(|s| {
        let verdict_for_estimate = Arc::clone(&verdict);
        let estimate = s.spawn(move || {
            let (alignment, took) =
                estimate_clock(&signatures_a, &signatures_b, &verdict_for_estimate);
            (how.mark)(format_args!(
                "clock estimate done (it took {:.3} s)",
                took.as_secs_f64()
            ));
            alignment
        });
        let read_one = |side: &Side<'_>, signatures: mpsc::SyncSender<Signatures>| {
            let read = read(side, how, &signatures, &verdict);
            (how.mark)(format_args!("{} read", side.name));
            // A reader that failed before handing its signatures over leaves the estimate
            // waiting: without the sender it ends with `None`.
            drop(signatures);
            read
        };
        let (ra, rb) = rayon::join(|| read_one(a, to_estimate_a), || read_one(b, to_estimate_b));
        let alignment = estimate
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (ra, rb, alignment)
    });
    let (mut ra, mut rb) = (ra?, rb?);
    let drift = alignment
        .as_ref()
        .and_then(|al| drift(al, &mut ra, &mut rb, how.clock_window));
    if let Some(d) = &drift {
        (how.mark)(format_args!(
            "clocks drift {:.1} ppm: offset per window ({} windows)",
            d.ppm,
            d.windows.len()
        ));
    }
    let mut analysis = crate::analyze_drifting(
        Input {
            name: &ra.name,
            table: &ra.table,
        },
        Input {
            name: &rb.name,
            table: &rb.table,
        },
        alignment.as_ref(),
        drift.as_ref(),
        scope,
    );
    (how.mark)(format_args!(
        "{} connection pairs compared",
        analysis.rows.len()
    ));
    locate(&mut analysis, ra.frames.as_ref(), rb.frames.as_ref());
    let mut problems = std::mem::take(&mut ra.problems);
    problems.append(&mut rb.problems);
    Ok((analysis, problems, Tables(ra, rb)))
}

/// Whether the clocks drift apart: the offset per window of `width` (the first packets'
/// matches in `first`, the later windows' from each side's samples), when no single offset
/// fits every window's feasible interval. `None` when one does, or when fewer than two
/// windows could be estimated.
fn drift(first: &align::Alignment, a: &mut Read, b: &mut Read, width: i64) -> Option<crate::Drift> {
    if a.later.packets() == 0 || b.later.packets() == 0 {
        return None;
    }
    let later = align::estimate(&mut a.later, &mut b.later)?;
    let mut pairs = first.pairs.clone();
    pairs.extend_from_slice(&later.pairs);
    let start = a.table.first_ts?;
    let windows = align::per_window(&pairs, start, width, WINDOW_MATCHES);
    let bounded: Vec<_> = windows
        .iter()
        .filter_map(|w| Some((w.lo_ns?, w.hi_ns?)))
        .collect();
    let lo = bounded.iter().map(|b| b.0).max()?;
    let hi = bounded.iter().map(|b| b.1).min()?;
    if windows.len() < 2 || lo <= hi {
        return None;
    }
    // b gains on a: b's times run ahead more and more, the offset (t_a − t_b) falls.
    let points: Vec<(f64, f64)> = windows
        .iter()
        .map(|w| {
            (
                (w.from_ns - start) as f64 + width as f64 / 2.0,
                w.offset_ns as f64,
            )
        })
        .collect();
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    Some(crate::Drift {
        windows,
        ppm: -slope * 1e6,
        width_ns: width,
    })
}

/// Names the file of every frame of a side read as a set: each evidence's frames grouped by
/// file with a display filter for that file (`filter_a`/`filter_b` then hold that filter when
/// all the frames are in one file, none otherwise: frame numbers over a set mean nothing to
/// Wireshark), and the side's map of frames to files. `a` and `b` in the order the sides were
/// given (the analysis may have swapped them).
pub fn locate(analysis: &mut Analysis, a: Option<&FrameMap>, b: Option<&FrameMap>) {
    let (a, b) = if analysis.swapped { (b, a) } else { (a, b) };
    if a.is_none() && b.is_none() {
        return;
    }
    for c in &mut analysis.connections {
        for e in &mut c.evidence {
            if let Some(map) = a {
                e.files_a = map.group(&e.frames_a);
                e.filter_a = one_filter(&e.files_a);
            }
            if let Some(map) = b {
                e.files_b = map.group(&e.frames_b);
                e.filter_b = one_filter(&e.files_b);
            }
        }
    }
    let view = |m: &FrameMap| crate::model::SetFrames {
        files: m.files.clone(),
        runs: m.runs(),
    };
    analysis.sets = Some(crate::model::Sets {
        a: a.map(view),
        b: b.map(view),
    });
}

fn one_filter(groups: &[FileFrames]) -> Option<String> {
    match groups {
        [one] => Some(one.filter.clone()),
        _ => None,
    }
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

    /// Channels as `read_pair` makes them, loaded with what the readers would send.
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
        for batch in packets.chunks(crate::trace::BATCH) {
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
            let mut reader = ForEstimate::new(&tx, &verdict, 60_000_000_000);
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
        let mut reader = ForEstimate::new(&tx, &verdict, 60_000_000_000);
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

    #[test]
    fn a_frame_map_finds_the_file_and_frame_of_runs_and_interleaving() {
        let mut m = FrameMap {
            files: vec!["x".into(), "y".into()],
            runs: Vec::new(),
        };
        // x frames 1-3, then y 1-2, then x 4, then y 3.
        for (frame, (file, local)) in
            (1..).zip([(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (0, 4), (1, 3)])
        {
            m.push(frame, file, local);
        }
        assert_eq!(m.runs().len(), 4);
        let located: Vec<_> = (1..=7).map(|f| m.locate(f).unwrap()).collect();
        assert_eq!(
            located,
            [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (0, 4), (1, 3)]
        );
        assert_eq!(m.locate(0), None);
        let g = m.group(&[2, 6, 5]);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].file.as_str(), g[0].frames.clone()), ("x", vec![2, 4]));
        assert_eq!(g[0].filter, "frame.number in {2 4}");
        assert_eq!((g[1].file.as_str(), g[1].frames.clone()), ("y", vec![2]));
        assert_eq!(g[1].filter, "frame.number == 2");
    }
}
