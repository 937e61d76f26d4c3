//! The k-way merge: a binary heap of each input's next record, keyed by (time, input number).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use tracekit_capture::pcapng::Block;
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
    /// A pcapng block of input `input` other than a packet or section header (interface
    /// description, name resolution, decryption secrets, statistics, custom…), yielded after
    /// the input's records before it and before the ones after it.
    Side { input: usize, block: Block<'a> },
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
    /// Damage met while filling a head, reported before anything but side blocks.
    pending: Vec<(usize, ReadError)>,
    /// Side blocks met while filling a head, yielded first.
    side: VecDeque<(usize, Block<'a>)>,
    /// Inputs read to their end (or their damage).
    done: Vec<bool>,
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
            side: VecDeque::new(),
            done: vec![false; n],
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

    /// Input `i`'s next record; the side blocks before it are queued.
    fn next_record(&mut self, i: usize) -> Option<Result<Record<'a>, ReadError>> {
        match &mut self.inputs[i].records {
            Records::Pcapng(r) => loop {
                match r.next_block()? {
                    Ok(Block::Packet(record)) => return Some(Ok(record)),
                    Ok(Block::Section(_)) => {}
                    Ok(block) => self.side.push_back((i, block)),
                    Err(e) => return Some(Err(e)),
                }
            },
            records @ Records::Pcap(..) => records.next(),
        }
    }

    /// Reads input `i`'s next record into its head slot.
    fn advance(&mut self, i: usize) {
        match self.next_record(i) {
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
                self.done[i] = true;
                self.pending.push((i, e));
            }
            None => {
                self.heads[i] = None;
                self.done[i] = true;
            }
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
            if self.append {
                let i = self.current;
                if i >= self.inputs.len() {
                    return None;
                }
                if self.heads[i].is_none() {
                    // Read ahead; what it queues goes out before the record.
                    if self.done[i] {
                        self.current += 1;
                    } else {
                        self.advance(i);
                    }
                    continue;
                }
                let (record, ts) = self.heads[i].take().expect("checked");
                return Some(Item::Record {
                    input: i,
                    record,
                    ts,
                });
            }
            let Reverse((_, input)) = self.heap.pop()?;
            let (record, ts) = self.heads[input].take().expect("a queued input has a head");
            // Side blocks met now follow this record in its input: they go out next.
            self.advance(input);
            return Some(Item::Record { input, record, ts });
        }
    }
}
