//! A capture set read as one capture: the inputs opened, surveyed (time order and span), and
//! narrowed by the selection's time window before any packet is read. Shared by `merge`,
//! `extract` and `flows`.

use rayon::prelude::*;
use tracekit_capture::Capture;
use tracekit_merge::{Survey, survey};
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

/// Surveys the inputs (one walk over each one's record headers, in parallel) when they are to
/// be read in time order (`time_ordered`) or the selection has a time window, and leaves out
/// those wholly outside the window (`shifts` added to each input's times). Inputs are only
/// left out in time order, where frame numbers can still be counted past them.
pub fn choose<'a>(
    captures: &'a [Capture],
    shifts: &[i64],
    spec: &Spec,
    time_ordered: bool,
) -> Chosen<'a> {
    let selecting = !spec.is_everything();
    let windowed = spec.after.is_some() || spec.before.is_some();
    let mut surveys: Option<Vec<Survey>> = (time_ordered || windowed)
        .then(|| captures.par_iter().map(|c| survey(&c.records())).collect());
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
