//! A capture set read as one capture: the inputs opened, surveyed (time order and span), and
//! narrowed by the selection's time window before any packet is read; and the parallel
//! selection of pcap inputs. What `merge`, `extract`, `flows` and `info` read a set with.

use crate::{Input, Survey, survey};
use rayon::prelude::*;
use tracekit_capture::{Capture, Record};
use tracekit_select::{Matcher, Spec};

/// What the selection passed over, for the summary.
#[derive(Debug, Default)]
pub struct Passed {
    pub files: u64,
    pub bytes: u64,
    pub read_files: u64,
    pub read_bytes: u64,
    /// Records of inputs passed over that come before the window: frame numbers count them.
    pub frames_before: u64,
}

/// The inputs to read, with their surveys and the selection's matcher.
#[derive(Debug)]
pub struct Chosen<'a> {
    pub captures: Vec<&'a Capture>,
    /// The position of each chosen capture among all of them.
    pub kept: Vec<usize>,
    /// One per chosen capture, when `time_ordered` or a selection asked for them.
    pub surveys: Option<Vec<Survey<'a>>>,
    pub passed: Passed,
    pub matcher: Option<Matcher>,
}

impl<'a> Chosen<'a> {
    /// The chosen captures as merge inputs, each from its first record, clocks unshifted.
    #[must_use]
    pub fn inputs(&self) -> Vec<Input<'a>> {
        self.captures
            .iter()
            .map(|c| Input {
                records: c.records(),
                shift: 0,
            })
            .collect()
    }
}

/// Surveys the inputs (one walk over each one's record headers, in parallel) when they are to
/// be read in time order (`time_ordered`) or the selection has a time window, and leaves out
/// those wholly outside the window (`shifts` added to each input's times). Inputs are only
/// left out in time order, where frame numbers can still be counted past them.
#[must_use]
pub fn choose<'a>(
    captures: &'a [Capture],
    shifts: &[i64],
    spec: &Spec,
    time_ordered: bool,
) -> Chosen<'a> {
    choose_surveyed(captures, shifts, spec, time_ordered, None)
}

/// [`choose`] with the inputs' surveys already known (`known`, one per capture: from an
/// index), so that none is walked.
#[must_use]
pub fn choose_surveyed<'a>(
    captures: &'a [Capture],
    shifts: &[i64],
    spec: &Spec,
    time_ordered: bool,
    known: Option<Vec<Survey<'a>>>,
) -> Chosen<'a> {
    let selecting = !spec.is_everything();
    let windowed = spec.after.is_some() || spec.before.is_some();
    let mut surveys: Option<Vec<Survey>> = match known {
        Some(k) => Some(k),
        None => (time_ordered || windowed)
            .then(|| captures.par_iter().map(|c| survey(&c.records())).collect()),
    };
    let mut chosen = Chosen {
        captures: captures.iter().collect(),
        kept: (0..captures.len()).collect(),
        surveys: None,
        passed: Passed::default(),
        matcher: None,
    };
    if !selecting {
        chosen.surveys = surveys;
        return chosen;
    }
    // Without a window the first packet's time is not needed.
    chosen.matcher = Some(spec.matcher(0));
    if let (true, Some(all)) = (windowed, &mut surveys) {
        let first = all
            .iter()
            .zip(shifts)
            .filter_map(|(s, &shift)| s.span.map(|(lo, _)| lo + shift))
            .min()
            .unwrap_or(0);
        let window = spec.window(first);
        if !window.is_open() && time_ordered {
            let keep: Vec<bool> = all
                .iter()
                .zip(shifts)
                .map(|(s, &shift)| {
                    s.span
                        .is_some_and(|(lo, hi)| window.overlaps(lo + shift, hi + shift))
                })
                .collect();
            let p = &mut chosen.passed;
            for (i, c) in captures.iter().enumerate() {
                if keep[i] {
                    p.read_files += 1;
                    p.read_bytes += c.stored_len();
                } else {
                    p.files += 1;
                    p.bytes += c.stored_len();
                    let before = all[i]
                        .span
                        .is_some_and(|(_, hi)| window.after.is_some_and(|a| hi + shifts[i] < a));
                    if before {
                        p.frames_before += all[i].records;
                    }
                }
            }
            chosen.kept.retain(|&i| keep[i]);
            chosen.captures = chosen.kept.iter().map(|&i| &captures[i]).collect();
            let mut k = keep.iter();
            all.retain(|_| *k.next().unwrap_or(&false));
        }
        chosen.matcher = Some(spec.matcher(first));
    }
    chosen.surveys = surveys;
    chosen
}

/// Each input's selected records, found by walking pieces of the inputs on every core.
#[derive(Debug)]
pub struct Prefiltered<'a> {
    /// Per input, its selected records in file order (which is its time order).
    pub selected: Vec<Vec<Record<'a>>>,
    /// Records read in all.
    pub records: u64,
    /// Oddities read past (see `Records::problems`), per input.
    pub problems: Vec<u64>,
}

/// Lists of records (each in its own time order, e.g. the selected records of each input) in
/// the order the time-ordered merge reads them: by time plus the list's shift, a tie going to
/// the earlier list. Yields (list, record, shifted time).
#[derive(Debug)]
pub struct ByTime<'a> {
    lists: Vec<std::vec::IntoIter<Record<'a>>>,
    next: Vec<Option<Record<'a>>>,
    heads: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>>,
    shifts: Vec<i64>,
}

impl<'a> ByTime<'a> {
    /// `shifts`: one per list (missing ones count as 0).
    #[must_use]
    pub fn new(lists: Vec<Vec<Record<'a>>>, shifts: &[i64]) -> Self {
        let shifts: Vec<i64> = (0..lists.len())
            .map(|i| shifts.get(i).copied().unwrap_or(0))
            .collect();
        let mut lists: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
        let next: Vec<_> = lists.iter_mut().map(Iterator::next).collect();
        let heads = next
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.as_ref()
                    .map(|r| std::cmp::Reverse((r.ts.0 + shifts[i], i)))
            })
            .collect();
        ByTime {
            lists,
            next,
            heads,
            shifts,
        }
    }
}

impl<'a> Iterator for ByTime<'a> {
    type Item = (usize, Record<'a>, i64);

    fn next(&mut self) -> Option<Self::Item> {
        let std::cmp::Reverse((ts, i)) = self.heads.pop()?;
        let record = self.next[i].take()?;
        self.next[i] = self.lists[i].next();
        if let Some(r) = &self.next[i] {
            self.heads
                .push(std::cmp::Reverse((r.ts.0 + self.shifts[i], i)));
        }
        Some((i, record, ts))
    }
}

/// Selected records a piece may hold before the parallel path gives way to the ordinary one
/// (whose memory does not grow with the selection).
const MAX_HELD: usize = 1 << 20;

/// The parallel path of a selection that needs no order (a filter or hosts file, without
/// frames, Community ID or time window) over inputs that are all classic pcap: each input is
/// cut into pieces at guessed record boundaries and the pieces are walked on all cores.
/// `None` when it does not apply or does not hold: a guessed boundary the walk before it did
/// not land on, an input out of time order, damage, or a selection too large to hold; the
/// caller then reads the inputs the ordinary way, which reports all of that.
#[must_use]
pub fn prefilter<'a>(captures: &[&'a Capture], spec: &Spec) -> Option<Prefiltered<'a>> {
    if !stateless(spec) {
        return None;
    }
    let threads = rayon::current_num_threads().max(1);
    let per_input = if captures.len() >= threads {
        1
    } else {
        threads
    };
    let mut jobs = Vec::new();
    for (input, c) in captures.iter().enumerate() {
        for (piece, &(start, end)) in c.pcap_pieces(per_input)?.iter().enumerate() {
            jobs.push((input, piece, start, end));
        }
    }
    let walked: Vec<Option<Piece<'a>>> = jobs
        .par_iter()
        .map(|&(input, _, start, end)| walk(captures[input], spec, start, end))
        .collect();
    let mut out = Prefiltered {
        selected: vec![Vec::new(); captures.len()],
        records: 0,
        problems: vec![0; captures.len()],
    };
    let mut last_ts = vec![i64::MIN; captures.len()];
    let mut index = vec![0u64; captures.len()];
    for (&(input, _, _, end), piece) in jobs.iter().zip(walked) {
        let piece = piece?;
        // The piece ended on the next one's guessed start: the guess is a record boundary.
        if piece.end != end as u64 || piece.first_ts.is_some_and(|t| t < last_ts[input]) {
            return None;
        }
        last_ts[input] = piece.last_ts.unwrap_or(last_ts[input]);
        for mut r in piece.selected {
            r.index += index[input];
            out.selected[input].push(r);
        }
        index[input] += piece.records;
        out.records += piece.records;
        out.problems[input] += piece.problems;
    }
    Some(out)
}

/// A selection that needs no order: each record is matched alone (a filter or hosts file,
/// without frames, Community ID or time window).
#[must_use]
pub fn stateless(spec: &Spec) -> bool {
    spec.frames.is_none()
        && spec.community_id.is_none()
        && spec.after.is_none()
        && spec.before.is_none()
        && !spec.is_everything()
}

/// A file's selected records' (index, byte offset), the records read, the oddities read past.
pub type FileSelection = (Vec<(u64, u64)>, u64, u64);

/// One classic pcap file walked whole as [`prefilter`] walks a piece: its selected records'
/// (index, byte offset), the records read, the oddities read past. `None` where [`prefilter`]
/// gives way: not pcap, out of time order, damaged, or too many selected records to hold.
#[must_use]
pub fn select_file(capture: &Capture, spec: &Spec) -> Option<FileSelection> {
    let &(start, end) = capture.pcap_pieces(1)?.first()?;
    let p = walk(capture, spec, start, end)?;
    (p.end == end as u64).then(|| {
        (
            p.selected.iter().map(|r| (r.index, r.offset)).collect(),
            p.records,
            p.problems,
        )
    })
}

/// What the walk of one piece found.
struct Piece<'a> {
    selected: Vec<Record<'a>>,
    records: u64,
    problems: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    /// Where the walk stopped.
    end: u64,
}

fn walk<'a>(capture: &'a Capture, spec: &Spec, start: usize, end: usize) -> Option<Piece<'a>> {
    let mut records = capture.pcap_records_from(start, 0)?;
    let mut matcher = spec.matcher(0);
    let mut p = Piece {
        selected: Vec::new(),
        records: 0,
        problems: 0,
        first_ts: None,
        last_ts: None,
        end: start as u64,
    };
    while records.position() < end as u64 {
        let r = records.next()?.ok()?;
        if p.last_ts.is_some_and(|t| r.ts.0 < t) {
            return None;
        }
        p.first_ts.get_or_insert(r.ts.0);
        p.last_ts = Some(r.ts.0);
        p.records += 1;
        if matcher.matches(0, &r).ok()? {
            if p.selected.len() == MAX_HELD {
                return None;
            }
            p.selected.push(r);
        }
    }
    p.end = records.position();
    p.problems = records.problems().1;
    Some(p)
}
