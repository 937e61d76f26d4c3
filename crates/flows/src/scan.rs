//! Counting a capture set into a flow table: every input read as one capture in time order,
//! each record numbered with its frame of the set, the selection applied, the packets
//! dissected on this thread and counted on another.

use indicatif::ProgressBar;
use tracekit_capture::Capture;
use tracekit_merge::set;
use tracekit_merge::{Item, Merger, Order};
use tracekit_select::Spec;
use tracekit_split::flows::{FlowTable, Packet};

/// The flows of a set, once counted.
#[derive(Debug)]
pub struct Table {
    pub flows: FlowTable,
    /// The inputs by number (a flow's files), as given.
    pub names: Vec<String>,
    /// Packets counted (those the selection matched).
    pub selected: u64,
    /// Records read (from an index: those the selection can match).
    pub read: u64,
    /// The frame number of the set's last record (its records numbered so far).
    pub frames: u64,
    pub passed: set::Passed,
    /// What the reading reported (a damaged input), as the scan prints it.
    pub trouble: Vec<String>,
}

/// A table counted over earlier inputs, to carry on over inputs that come after all of theirs
/// in time ([`resume`]).
#[derive(Debug)]
pub struct Prior {
    pub table: FlowTable,
    /// The earlier inputs, as [`Table::names`].
    pub names: Vec<String>,
    /// Their records (the frame number of their last one).
    pub frames: u64,
    pub trouble: Vec<String>,
}

/// The table of a full scan: first a pass that reads each input in its own order, then, if
/// one is not in time order, a pass in time order from a survey (as merge does).
///
/// # Errors
/// The selection's matcher failing on a record.
pub fn compute(captures: &[Capture], spec: &Spec, bar: &ProgressBar) -> Result<Table, String> {
    let windowed = spec.after.is_some() || spec.before.is_some();
    if !windowed && let Some(t) = table(captures, spec, (true, bar), None)? {
        return Ok(t);
    }
    table(captures, spec, (false, bar), None)?.ok_or_else(|| "a surveyed pass finishes".into())
}

/// The table of all inputs, from `prior` (the table of the inputs before `captures`) and a
/// pass over `captures` alone: what [`compute`] gives for the earlier inputs followed by
/// `captures` when every record of `captures` is at or after every record of the earlier
/// inputs (the caller's to know: then a scan of them all reads the earlier ones first).
///
/// # Errors
/// As [`compute`].
pub fn resume(prior: Prior, captures: &[Capture], bar: &ProgressBar) -> Result<Table, String> {
    table(captures, &Spec::default(), (false, bar), Some(prior))?
        .ok_or_else(|| "a surveyed pass finishes".into())
}

/// One pass over the inputs, carrying on from `prior` if any; `None` when `speculative` and
/// an input is not in time order.
fn table(
    captures: &[Capture],
    spec: &Spec,
    (speculative, bar): (bool, &ProgressBar),
    prior: Option<Prior>,
) -> Result<Option<Table>, String> {
    let shifts = vec![0i64; captures.len()];
    let chosen = set::choose(captures, &shifts, spec, !speculative);
    let (start, mut names, frames, trouble) = match prior {
        Some(p) => (p.table, p.names, p.frames, p.trouble),
        None => (FlowTable::default(), Vec::new(), 0, Vec::new()),
    };
    let first_input = names.len();
    names.extend(
        chosen
            .captures
            .iter()
            .map(|c| c.path().display().to_string()),
    );
    let total: u64 = chosen.captures.iter().map(|c| c.data().len() as u64).sum();
    bar.set_length(total);
    let inputs = chosen.inputs();
    let order = match chosen.surveys {
        Some(s) if !speculative => Order::Time(s),
        _ => Order::KeepInputOrder,
    };
    let mut reading = Reading {
        merger: Merger::new(inputs, order),
        matcher: chosen.matcher,
        names: &names,
        first_input,
        speculative,
        frame: frames + chosen.passed.frames_before,
        selected: 0,
        trouble,
    };
    // Two threads: this one reads, selects and dissects; the other numbers streams and counts
    // (the half bound by the flow table's cache misses), a batch at a time.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Packet<'_>>>(4);
    let (read, counter) = std::thread::scope(|scope| {
        let counting = scope.spawn(move || {
            let mut counter = start;
            for batch in rx {
                for d in &batch {
                    counter.add(d);
                }
            }
            counter
        });
        let read = reading.run(&tx, bar);
        drop(tx);
        (
            read,
            counting.join().expect("the counting thread does not panic"),
        )
    });
    let (selected, frame, trouble) = (reading.selected, reading.frame, reading.trouble);
    if !read? {
        return Ok(None);
    }
    bar.finish_and_clear();
    Ok(Some(Table {
        flows: counter,
        names,
        selected,
        read: 0,
        frames: frame,
        passed: chosen.passed,
        trouble,
    }))
}

/// The reading side of `table`: the inputs merged, frames numbered, the selection applied,
/// packets dissected and handed over in batches.
struct Reading<'a, 'n> {
    merger: Merger<'a>,
    matcher: Option<tracekit_select::Matcher>,
    /// Every input's name: those of a prior table, then those read.
    names: &'n [String],
    /// The number of the first input read (after those of a prior table).
    first_input: usize,
    speculative: bool,
    frame: u64,
    selected: u64,
    trouble: Vec<String>,
}

impl<'a> Reading<'a, '_> {
    /// `Ok(false)` when reading speculatively and an input turns out not to be in time order.
    fn run(
        &mut self,
        tx: &std::sync::mpsc::SyncSender<Vec<Packet<'a>>>,
        bar: &ProgressBar,
    ) -> Result<bool, String> {
        let mut latest = vec![i64::MIN; self.names.len() - self.first_input];
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(item) = self.merger.next() {
            let (input, record, ts) = match item {
                Item::Record { input, record, ts } => (input, record, ts),
                Item::Side { .. } => continue,
                Item::Damaged { input, error } => {
                    self.trouble.push(format!(
                        "{}: {error}; its records before the damage were read",
                        self.names[self.first_input + input]
                    ));
                    continue;
                }
            };
            self.frame += 1;
            if self.speculative {
                if ts < latest[input] {
                    return Ok(false);
                }
                latest[input] = ts;
            }
            if let Some(m) = &mut self.matcher
                && !m
                    .matches(self.frame, &record)
                    .map_err(|e| format!("{}: {e}", self.names[self.first_input + input]))?
            {
                if !self.speculative && m.done_after(self.frame) {
                    break;
                }
                continue;
            }
            self.selected += 1;
            let number = (self.first_input + input) as u32;
            batch.push(Packet::dissect(record, self.frame, number));
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(full).is_err() {
                    break;
                }
                bar.set_position(self.merger.position());
            }
        }
        let _ = tx.send(batch);
        Ok(true)
    }
}

/// Packets handed from the reading thread to the counting one at a time.
const BATCH: usize = 1024;
