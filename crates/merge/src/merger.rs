//! The k-way merge: a binary heap of each input's next record, keyed by (time, input number).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tracekit_capture::{ReadError, Record, Records};

/// One input of a merge: its records and the shift added to its clock.
#[derive(Debug)]
pub struct Input<'a> {
    pub records: Records<'a>,
    /// Nanoseconds added to every timestamp of this input.
    pub shift: i64,
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
    /// Input `input` is damaged here; its records before the damage have been yielded and it
    /// yields nothing more.
    Damaged { input: usize, error: ReadError },
}

/// Merges inputs by time. Ties go in input order; within one input, records keep their file
/// order even when its clock steps back (a record is never moved past one of its own input).
/// With `append`, inputs are concatenated in order instead.
#[derive(Debug)]
pub struct Merger<'a> {
    inputs: Vec<Input<'a>>,
    heads: Vec<Option<(Record<'a>, i64)>>,
    /// (time, input) of every input's head record.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// Damage met while filling a head, reported before anything else.
    pending: Vec<(usize, ReadError)>,
    /// Last time of each input: records without a timestamp (pcapng simple packet blocks)
    /// take their predecessor's.
    last: Vec<i64>,
    append: bool,
    current: usize,
}

impl<'a> Merger<'a> {
    #[must_use]
    pub fn new(inputs: Vec<Input<'a>>, append: bool) -> Self {
        let n = inputs.len();
        let mut m = Merger {
            inputs,
            heads: (0..n).map(|_| None).collect(),
            heap: BinaryHeap::with_capacity(n),
            pending: Vec::new(),
            last: vec![i64::MIN; n],
            append,
            current: 0,
        };
        if !append {
            for i in 0..n {
                m.advance(i);
            }
        }
        m
    }

    /// The records of input `i` (its interfaces as read so far, problems, position).
    #[must_use]
    pub fn records(&self, i: usize) -> &Records<'a> {
        &self.inputs[i].records
    }

    /// Reads input `i`'s next record into its head slot.
    fn advance(&mut self, i: usize) {
        match self.inputs[i].records.next() {
            Some(Ok(r)) => {
                let ts = if r.has_ts {
                    r.ts.0.saturating_add(self.inputs[i].shift)
                } else {
                    self.last[i]
                };
                self.last[i] = ts;
                self.heads[i] = Some((r, ts));
                if !self.append {
                    self.heap.push(Reverse((ts, i)));
                }
            }
            Some(Err(e)) => {
                self.heads[i] = None;
                self.pending.push((i, e));
            }
            None => self.heads[i] = None,
        }
    }
}

impl<'a> Iterator for Merger<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if let Some((input, error)) = self.pending.pop() {
            return Some(Item::Damaged { input, error });
        }
        let input = if self.append {
            loop {
                if self.current >= self.inputs.len() {
                    return None;
                }
                self.advance(self.current);
                if let Some((input, error)) = self.pending.pop() {
                    self.current += 1;
                    return Some(Item::Damaged { input, error });
                }
                if self.heads[self.current].is_some() {
                    break self.current;
                }
                self.current += 1;
            }
        } else {
            let Reverse((_, i)) = self.heap.pop()?;
            i
        };
        let (record, ts) = self.heads[input].take().expect("a queued input has a head");
        if !self.append {
            self.advance(input);
        }
        Some(Item::Record { input, record, ts })
    }
}
