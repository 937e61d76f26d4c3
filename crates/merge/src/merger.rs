//! The k-way merge: a binary heap of each source's next record, keyed by (time, source number).
//!
//! In time order (the default), an input whose clock steps back is first surveyed (`survey`): a
//! walk over its record headers finds its runs of non-decreasing time. A few runs (an NTP step,
//! a file appended to another) become one source each, read by a cursor over the mapped file
//! where the run starts, so memory stays a cursor per run however long the runs are. Many runs
//! (jitter between NICs, ERSPAN) make one source that holds records in a reorder buffer until
//! nothing still unread in the input can come before them, known from the minimum time of each
//! block of records the survey noted; the buffer holds only the records the disorder actually
//! overlaps. Records are borrowed from the map either way: nothing is copied.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use tracekit_capture::pcapng::Block;
use tracekit_capture::{Interface, ReadError, Record, Records};

/// One input of a merge: its records and the shift added to its clock.
#[derive(Debug)]
pub struct Input<'a> {
    pub records: Records<'a>,
    /// Nanoseconds added to every timestamp of this input.
    pub shift: i64,
}

/// How the merge orders its output.
#[derive(Debug)]
pub enum Order<'a> {
    /// Strictly by time, ties in input order then file order, whatever each input's own order;
    /// one survey per input (`survey`), in input order.
    Time(Vec<Survey<'a>>),
    /// By time between inputs, each input in its own file order even where its clock steps
    /// back (a record is never moved past one of its own input).
    KeepInputOrder,
    /// The inputs one after the other, in the order given.
    Append,
}

/// What the merge yields, in output order.
#[derive(Debug)]
pub enum Item<'a> {
    /// The next record, from input `input`, at time `ts` (shift applied).
    Record {
        input: usize,
        record: Record<'a>,
        ts: i64,
    },
    /// Input `input` is damaged here: it yields no record from past the damage.
    Damaged { input: usize, error: ReadError },
    /// A pcapng block of input `input` other than a packet or section header (interface
    /// description, name resolution, decryption secrets, statistics, custom…), yielded after
    /// the records its reader passed before it and before the ones after it.
    Side { input: usize, block: Block<'a> },
}

/// More runs than this in one input are read through a reorder buffer instead of a cursor each.
pub const MAX_RUNS: usize = 256;
/// The survey notes the minimum time of every block of this many records.
const BLOCK: u64 = 1024;

/// One input's time order, from a walk over its record headers.
#[derive(Debug, Clone)]
pub struct Survey<'a> {
    /// Records read.
    pub records: u64,
    /// Records earlier in time than one before them in the file: the ones a time-ordered
    /// merge moves.
    pub late: u64,
    /// Runs of non-decreasing time (0 for an input without records).
    pub runs: u64,
    /// The earliest and latest timestamps (records without one left out), no shift applied.
    pub span: Option<(i64, i64)>,
    /// With at most `MAX_RUNS` runs: a cursor after each later run's first record, with that
    /// record and its time (`has_ts` applied, no shift).
    starts: Vec<(Records<'a>, Record<'a>, i64)>,
    /// With more runs: `suffix_min[b]` is the earliest time of blocks `b..` (of `BLOCK` records).
    suffix_min: Vec<i64>,
}

impl Survey<'_> {
    /// The survey of an input known to be in time order (from an index), without a walk.
    #[must_use]
    pub fn known_in_order(records: u64, span: Option<(i64, i64)>) -> Self {
        Survey {
            records,
            late: 0,
            runs: u64::from(records > 0),
            span,
            starts: Vec::new(),
            suffix_min: Vec::new(),
        }
    }

    /// The input is in time order: merged as it is.
    #[must_use]
    pub fn in_order(&self) -> bool {
        self.late == 0
    }
}

/// Walks `records` (a fresh walk of one input) to find how its records are ordered in time.
/// Pure: surveys of several inputs may run in parallel.
#[must_use]
pub fn survey<'a>(records: &Records<'a>) -> Survey<'a> {
    let mut it = records.clone();
    let mut s = Survey {
        records: 0,
        late: 0,
        runs: 0,
        span: None,
        starts: Vec::new(),
        suffix_min: Vec::new(),
    };
    let (mut last, mut max) = (i64::MIN, i64::MIN);
    let mut block_min: Vec<i64> = Vec::new();
    while let Some(Ok(r)) = next_record(&mut it, &mut |_| {}) {
        let ts = if r.has_ts { r.ts.0 } else { last };
        if r.has_ts {
            s.span = Some(s.span.map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))));
        }
        if s.records == 0 || ts < last {
            s.runs += 1;
            if s.records > 0 && s.starts.len() < MAX_RUNS {
                s.starts.push((it.clone(), r, ts));
            }
        }
        if ts < max {
            s.late += 1;
        }
        max = max.max(ts);
        let b = (s.records / BLOCK) as usize;
        if b == block_min.len() {
            block_min.push(ts);
        } else {
            block_min[b] = block_min[b].min(ts);
        }
        last = ts;
        s.records += 1;
    }
    if s.runs as usize > MAX_RUNS + 1 {
        s.starts = Vec::new();
        for b in (0..block_min.len().saturating_sub(1)).rev() {
            block_min[b] = block_min[b].min(block_min[b + 1]);
        }
        s.suffix_min = block_min;
    }
    s
}

/// The next record of a walk; the blocks before it other than sections go to `side`.
fn next_record<'a>(
    records: &mut Records<'a>,
    side: &mut impl FnMut(Block<'a>),
) -> Option<Result<Record<'a>, ReadError>> {
    match records {
        Records::Pcapng(r) => loop {
            match r.next_block()? {
                Ok(Block::Packet(record)) => return Some(Ok(record)),
                Ok(Block::Section(_)) => {}
                Ok(block) => side(block),
                Err(e) => return Some(Err(e)),
            }
        },
        records @ Records::Pcap(..) => records.next(),
    }
}

/// A record waiting in a reorder buffer, ordered by (time, position in its file).
#[derive(Debug)]
struct Waiting<'a>(i64, Record<'a>);

impl PartialEq for Waiting<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiting<'_> {}
impl PartialOrd for Waiting<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0, self.1.index).cmp(&(other.0, other.1.index))
    }
}

/// Records of one input that arrive out of order, held until nothing unread can precede them.
#[derive(Debug)]
struct Reorder<'a> {
    waiting: BinaryHeap<Reverse<Waiting<'a>>>,
    suffix_min: Vec<i64>,
    /// Index of the next record the walk will read.
    next_index: u64,
    /// The walk has ended (end of data or damage).
    ended: bool,
    /// Most records held at once.
    peak: usize,
}

/// Where a source's records come from.
#[derive(Debug)]
enum Feed<'a> {
    /// The walk as it is, up to (not including) the record of index `end`.
    Walk { end: Option<u64> },
    /// The walk through a reorder buffer.
    Reorder(Box<Reorder<'a>>),
}

/// One sorted stream of records of one input.
#[derive(Debug)]
struct Source<'a> {
    input: usize,
    records: Records<'a>,
    feed: Feed<'a>,
    head: Option<(Record<'a>, i64)>,
    done: bool,
    /// Last time read in file order (no shift): records without a timestamp (pcapng simple
    /// packet blocks) take their predecessor's.
    last: i64,
}

/// Merges inputs in the chosen `Order`.
#[derive(Debug)]
pub struct Merger<'a> {
    /// Sources in (input, file position) order, so that the heap's ties go in that order.
    sources: Vec<Source<'a>>,
    /// Input `i`'s sources are `sources[first[i]..first[i + 1]]`.
    first: Vec<usize>,
    shifts: Vec<i64>,
    /// (time, source) of every source's head record.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// Damage met while filling a head, reported before anything but side blocks.
    pending: Vec<(usize, ReadError)>,
    /// Side blocks met while filling a head, yielded first.
    side: VecDeque<(usize, Block<'a>)>,
    append: bool,
    current: usize,
    /// Records yielded in another place than their input's file order would give them.
    moved: u64,
}

impl<'a> Merger<'a> {
    #[must_use]
    pub fn new(inputs: Vec<Input<'a>>, order: Order<'a>) -> Self {
        let n = inputs.len();
        let append = matches!(order, Order::Append);
        let mut surveys: Vec<Option<Survey<'a>>> = match order {
            Order::Time(s) => {
                assert_eq!(s.len(), n, "one survey per input");
                s.into_iter().map(Some).collect()
            }
            _ => (0..n).map(|_| None).collect(),
        };
        let mut m = Merger {
            sources: Vec::with_capacity(n),
            first: Vec::with_capacity(n + 1),
            shifts: inputs.iter().map(|i| i.shift).collect(),
            heap: BinaryHeap::with_capacity(n),
            pending: Vec::new(),
            side: VecDeque::new(),
            append,
            current: 0,
            moved: 0,
        };
        for (input, (inp, survey)) in inputs.into_iter().zip(&mut surveys).enumerate() {
            m.first.push(m.sources.len());
            let source = |records, feed, head| Source {
                input,
                records,
                feed,
                head,
                done: false,
                last: i64::MIN,
            };
            match survey.take().filter(|s| !s.in_order()) {
                None => m
                    .sources
                    .push(source(inp.records, Feed::Walk { end: None }, None)),
                Some(s) if s.suffix_min.is_empty() => {
                    m.moved += s.late;
                    let ends: Vec<Option<u64>> = s
                        .starts
                        .iter()
                        .map(|(_, r, _)| Some(r.index))
                        .chain([None])
                        .collect();
                    m.sources
                        .push(source(inp.records, Feed::Walk { end: ends[0] }, None));
                    for ((walk, first, ts), end) in s.starts.into_iter().zip(&ends[1..]) {
                        let mut src = source(walk, Feed::Walk { end: *end }, None);
                        src.last = ts;
                        src.head = Some((first, ts));
                        m.sources.push(src);
                    }
                }
                Some(s) => {
                    m.moved += s.late;
                    let reorder = Reorder {
                        waiting: BinaryHeap::new(),
                        suffix_min: s.suffix_min,
                        next_index: 0,
                        ended: false,
                        peak: 0,
                    };
                    m.sources
                        .push(source(inp.records, Feed::Reorder(Box::new(reorder)), None));
                }
            }
        }
        m.first.push(m.sources.len());
        if !append {
            for i in 0..m.sources.len() {
                match m.sources[i].head.take() {
                    // A run's first record, read by the survey.
                    Some((r, ts)) => m.queue(i, r, ts),
                    None => m.advance(i),
                }
            }
        }
        m
    }

    /// The interfaces of input `i` read so far (pcapng interfaces appear as the walk meets
    /// them; their numbers only grow, so the longest list among its sources holds them all).
    #[must_use]
    pub fn interfaces(&self, i: usize) -> &[Interface] {
        self.sources_of(i)
            .iter()
            .map(|s| s.records.interfaces())
            .max_by_key(|l| l.len())
            .unwrap_or(&[])
    }

    /// Oddities read past in input `i` (the count, as its furthest walk has it).
    #[must_use]
    pub fn problems(&self, i: usize) -> u64 {
        self.sources_of(i)
            .iter()
            .map(|s| s.records.problems().1)
            .max()
            .unwrap_or(0)
    }

    fn sources_of(&self, i: usize) -> &[Source<'a>] {
        &self.sources[self.first[i]..self.first[i + 1]]
    }

    /// Bytes read so far, over all inputs (for progress).
    #[must_use]
    pub fn position(&self) -> u64 {
        let mut total = 0;
        let mut furthest = 0;
        for (k, s) in self.sources.iter().enumerate() {
            furthest = furthest.max(s.records.position());
            if self.sources.get(k + 1).is_none_or(|n| n.input != s.input) {
                total += furthest;
                furthest = 0;
            }
        }
        total
    }

    /// Records yielded out of their input's file order, to put the output in time order.
    #[must_use]
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// The most records any reorder buffer held at once.
    #[must_use]
    pub fn reorder_peak(&self) -> usize {
        self.sources
            .iter()
            .filter_map(|s| match &s.feed {
                Feed::Reorder(r) => Some(r.peak),
                Feed::Walk { .. } => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Source `i`'s next record in file order, with its time (no shift); `None` at its end.
    fn read(&mut self, i: usize) -> Option<(Record<'a>, i64)> {
        let side = &mut self.side;
        let s = &mut self.sources[i];
        let input = s.input;
        match next_record(&mut s.records, &mut |b| side.push_back((input, b))) {
            Some(Ok(r)) => {
                let ts = if r.has_ts { r.ts.0 } else { s.last };
                s.last = ts;
                Some((r, ts))
            }
            Some(Err(e)) => {
                self.pending.push((input, e));
                None
            }
            None => None,
        }
    }

    /// Source `i`'s next record in its order, or `None` at its end.
    fn next_of(&mut self, i: usize) -> Option<(Record<'a>, i64)> {
        if self.sources[i].done {
            return None;
        }
        if let Feed::Walk { end } = self.sources[i].feed {
            let next = self
                .read(i)
                .filter(|(r, _)| end.is_none_or(|e| r.index < e));
            if next.is_none() {
                self.sources[i].done = true;
            }
            return next;
        }
        loop {
            let Feed::Reorder(q) = &mut self.sources[i].feed else {
                unreachable!("a walk returned above")
            };
            // Nothing unread comes before the earliest time of the blocks not read whole.
            let horizon = if q.ended {
                i64::MAX
            } else {
                q.suffix_min
                    .get((q.next_index / BLOCK) as usize)
                    .copied()
                    .unwrap_or(i64::MAX)
            };
            if q.waiting.peek().is_some_and(|w| w.0.0 <= horizon) {
                let Reverse(Waiting(ts, r)) = q.waiting.pop().expect("peeked");
                return Some((r, ts));
            }
            if q.ended {
                self.sources[i].done = true;
                return None;
            }
            let next = self.read(i);
            let Feed::Reorder(q) = &mut self.sources[i].feed else {
                unreachable!("the feed does not change")
            };
            match next {
                Some((r, ts)) => {
                    q.next_index = r.index + 1;
                    q.waiting.push(Reverse(Waiting(ts, r)));
                    q.peak = q.peak.max(q.waiting.len());
                }
                None => q.ended = true,
            }
        }
    }

    fn queue(&mut self, i: usize, r: Record<'a>, ts: i64) {
        let shifted = ts.saturating_add(self.shifts[self.sources[i].input]);
        self.sources[i].head = Some((r, shifted));
        if !self.append {
            self.heap.push(Reverse((shifted, i)));
        }
    }

    /// Reads source `i`'s next record into its head slot.
    fn advance(&mut self, i: usize) {
        match self.next_of(i) {
            Some((r, ts)) => self.queue(i, r, ts),
            None => self.sources[i].head = None,
        }
    }
}

impl<'a> Iterator for Merger<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            if let Some((input, block)) = self.side.pop_front() {
                return Some(Item::Side { input, block });
            }
            if let Some((input, error)) = self.pending.pop() {
                return Some(Item::Damaged { input, error });
            }
            let i = if self.append {
                let i = self.current;
                if i >= self.sources.len() {
                    return None;
                }
                if self.sources[i].head.is_none() {
                    // Read ahead; what it queues goes out before the record.
                    if self.sources[i].done {
                        self.current += 1;
                    } else {
                        self.advance(i);
                    }
                    continue;
                }
                i
            } else {
                let Reverse((_, i)) = self.heap.pop()?;
                i
            };
            let (record, ts) = self.sources[i]
                .head
                .take()
                .expect("a queued source has a head");
            if !self.append {
                // Side blocks met now follow this record in its input: they go out next.
                self.advance(i);
            }
            let input = self.sources[i].input;
            return Some(Item::Record { input, record, ts });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracekit_capture::writer::{PcapWriter, Precision};
    use tracekit_capture::{Capture, LinkType, Timestamp};

    /// A pcap whose records carry their position in the file, at the given times (ns).
    fn capture(times: &[i64]) -> Capture {
        let mut bytes = Vec::new();
        let mut w = PcapWriter::new(&mut bytes, LinkType::ETHERNET, Precision::Nano, 65535)
            .expect("header");
        for (i, &t) in times.iter().enumerate() {
            let mut frame = vec![0xffu8; 12];
            frame.extend([0x88, 0xb5]);
            frame.extend((i as u32).to_be_bytes());
            w.write(Timestamp(t), &frame, frame.len() as u32)
                .expect("record");
        }
        w.into_inner().expect("flushed");
        Capture::from_vec("t.pcap", bytes).expect("a pcap")
    }

    /// (input, position in its file, time) of every record the merge yields.
    fn merged(captures: &[Capture], time_order: bool) -> (Vec<(usize, u32, i64)>, u64) {
        let inputs = captures
            .iter()
            .map(|c| Input {
                records: c.records(),
                shift: 0,
            })
            .collect();
        let order = if time_order {
            Order::Time(captures.iter().map(|c| survey(&c.records())).collect())
        } else {
            Order::KeepInputOrder
        };
        let mut m = Merger::new(inputs, order);
        let mut out = Vec::new();
        for item in m.by_ref() {
            if let Item::Record { input, record, ts } = item {
                let pos = u32::from_be_bytes(record.data[14..18].try_into().expect("4 bytes"));
                out.push((input, pos, ts));
            }
        }
        (out, m.moved())
    }

    /// The expected output: every record once, by (time, input, position).
    fn sorted_by_time(inputs: &[&[i64]]) -> Vec<(usize, u32, i64)> {
        let mut all: Vec<(usize, u32, i64)> = inputs
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.iter().enumerate().map(move |(p, &t)| (i, p as u32, t)))
            .collect();
        all.sort_by_key(|&(i, p, t)| (t, i, p));
        all
    }

    fn check(inputs: &[&[i64]]) -> u64 {
        let captures: Vec<Capture> = inputs.iter().map(|t| capture(t)).collect();
        let (out, moved) = merged(&captures, true);
        assert_eq!(out, sorted_by_time(inputs), "{inputs:?}");
        moved
    }

    #[test]
    fn an_input_in_order_is_merged_as_it_is_and_nothing_moves() {
        assert_eq!(check(&[&[1, 2, 2, 5], &[0, 2, 3]]), 0);
    }

    #[test]
    fn a_clock_step_back_is_merged_from_its_runs() {
        // Two runs: an NTP step back in the middle, ties with the other input.
        let a: Vec<i64> = (0..5000).chain(2000..7000).collect();
        let b: Vec<i64> = (0..7000).step_by(3).collect();
        let late = check(&[&a, &b]);
        assert_eq!(
            late, 2999,
            "the second run's records before the first run's last time"
        );
        let c = capture(&a);
        let s = survey(&c.records());
        assert_eq!((s.runs, s.starts.len(), s.suffix_min.len()), (2, 1, 0));
    }

    #[test]
    fn jitter_with_more_runs_than_cursors_goes_through_the_reorder_buffer() {
        // Every pair swapped: thousands of runs, each record one place off.
        let a: Vec<i64> = (0..20_000).map(|i| i ^ 1).collect();
        // And a block of late records far behind, across block boundaries.
        let mut b: Vec<i64> = (0..6000).map(|i| i * 2 + 1).collect();
        b.extend((0..3000).map(|i| i * 2));
        let b: Vec<i64> = b
            .iter()
            .enumerate()
            .map(|(i, &t)| t + (i as i64 % 2))
            .collect();
        let captures = [capture(&a), capture(&b)];
        let s = survey(&captures[0].records());
        assert!(s.runs as usize > MAX_RUNS + 1 && !s.suffix_min.is_empty());
        let (out, moved) = merged(&captures, true);
        assert_eq!(out, sorted_by_time(&[&a, &b]));
        assert_eq!(moved, 10_000 + survey(&captures[1].records()).late);
    }

    #[test]
    fn the_reorder_buffer_holds_only_what_the_disorder_overlaps() {
        // Sorted but for one record every 5000 that is 10 places late.
        let a: Vec<i64> = (0..100_000i64)
            .map(|i| if i % 5000 == 4999 { i - 10 } else { i })
            .collect();
        let mut jitter: Vec<i64> = (0..3000).map(|i| i ^ 1).collect();
        jitter.extend(&a);
        let jitter: Vec<i64> = jitter
            .iter()
            .enumerate()
            .map(|(k, &t)| if k < 3000 { t } else { t + 3000 })
            .collect();
        let c = capture(&jitter);
        let inputs = vec![Input {
            records: c.records(),
            shift: 0,
        }];
        let mut m = Merger::new(inputs, Order::Time(vec![survey(&c.records())]));
        let mut last = i64::MIN;
        for item in m.by_ref() {
            if let Item::Record { ts, .. } = item {
                assert!(ts >= last);
                last = ts;
            }
        }
        // Bounded by a block of the survey and the overlap, not by the input's 103,000.
        assert!(
            m.reorder_peak() <= 2 * BLOCK as usize,
            "{}",
            m.reorder_peak()
        );
    }

    #[test]
    fn keep_input_order_leaves_a_stepped_back_clock_as_it_is() {
        let a = [5, 6, 1, 2];
        let c = [capture(&a), capture(&[3])];
        let (out, moved) = merged(&c, false);
        let times: Vec<i64> = out.iter().map(|r| r.2).collect();
        assert_eq!(times, [3, 5, 6, 1, 2]);
        assert_eq!(moved, 0);
    }

    #[test]
    fn an_empty_input_and_equal_times_everywhere() {
        assert_eq!(check(&[&[], &[7, 7, 7], &[7, 3, 7]]), 1);
    }
}
