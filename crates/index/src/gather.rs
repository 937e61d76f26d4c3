//! What a query over a set of classic pcap files reads, before the merge: the records of the
//! blocks it reads whole, borrowed from the files' maps, and the records it reads one by one,
//! copied out of their files with a positioned read each. (On the bench set a positioned read
//! of a record costs about half what touching it through the map costs: no page fault, no
//! page-table entries made and dropped; see docs/index-format.md.)

use std::os::unix::fs::FileExt as _;

use tracekit_capture::pcap::{self, Header};
use tracekit_capture::{Capture, Record};
use tracekit_merge::set::Prefiltered;
use tracekit_select::Spec;

use crate::part::{self, Block};

/// Room for a pcap file header before copied records, so a reader takes them as a file's.
const ROOM: usize = pcap::HEADER_LEN;

/// The records of a file read one by one: their bytes as the file has them (after [`ROOM`]),
/// and each one's index and byte offset in the file.
#[derive(Debug)]
pub(crate) struct Copied {
    bytes: Vec<u8>,
    places: Vec<(u64, u64)>,
    /// Where pieces of the file are read into, kept from one piece to the next rather than
    /// allocated and zeroed anew for each (the 0.1%-host query of the bench set: 0.97x).
    scratch: Vec<u8>,
}

impl Copied {
    pub(crate) fn new() -> Copied {
        Copied {
            bytes: vec![0; ROOM],
            places: Vec::new(),
            scratch: vec![0; ROOM],
        }
    }
}

/// What a query read of a set of pcap files, file by file: see the module's note.
#[derive(Debug)]
pub struct Gathered<'a> {
    pub(crate) mapped: Vec<Vec<Record<'a>>>,
    pub(crate) copied: Vec<Copied>,
    pub(crate) headers: Vec<Header>,
    /// Records read in all.
    pub(crate) records: u64,
    /// Matched here in the merge's order (a Community ID), not as they were read.
    pub(crate) ordered: bool,
    /// The set's first packet time.
    pub(crate) first: i64,
}

impl<'a> Gathered<'a> {
    /// The selected records of each file in its order, borrowing from the files and from
    /// here: what `set::prefilter` gives from a full walk. `None` when the matcher fails (the
    /// full scan then reports it) or the copies do not read back.
    #[must_use]
    pub fn selected<'s>(&'s self, spec: &Spec) -> Option<Prefiltered<'s>>
    where
        'a: 's,
    {
        let mut lists = Vec::with_capacity(self.mapped.len());
        for ((mapped, copied), header) in self.mapped.iter().zip(&self.copied).zip(&self.headers) {
            let mut from_copies = Vec::with_capacity(copied.places.len());
            let reader = pcap::Reader::starting_at(&copied.bytes, *header, ROOM, 0);
            for (r, &(index, offset)) in reader.zip(&copied.places) {
                let mut r = r.ok()?;
                r.index = index;
                r.offset = offset;
                from_copies.push(r);
            }
            if from_copies.len() != copied.places.len() {
                return None;
            }
            // Both in file order: merged by index.
            let mut list: Vec<Record<'s>> = Vec::with_capacity(mapped.len() + from_copies.len());
            let mut a = mapped.iter().copied().peekable();
            let mut b = from_copies.into_iter().peekable();
            loop {
                let from_a = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) => x.index < y.index,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                list.extend(if from_a { a.next() } else { b.next() });
            }
            lists.push(list);
        }
        let selected = if self.ordered {
            crate::match_in_order(lists, spec, self.first)?
        } else {
            lists
        };
        Some(Prefiltered {
            problems: vec![0; selected.len()],
            selected,
            records: self.records,
        })
    }
}

/// The file of `capture` for positioned reads: when it is mapped from a plain file of the
/// same length (not compressed, not standard input).
pub(crate) fn file_of(capture: &Capture) -> Option<std::fs::File> {
    if capture.compression().is_some() || capture.path().as_os_str() == "-" {
        return None;
    }
    let f = std::fs::File::open(capture.path()).ok()?;
    // No read-ahead on this descriptor (the map keeps its own): a record read from a file not
    // in the page cache then costs the pages it spans, not the kernel's read-ahead window.
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Random);
    (f.metadata().ok()?.len() == capture.data().len() as u64).then_some(f)
}

/// Reads the records `ords` of `block` (places in it, ascending) from `file` (of `len`
/// bytes, pcap with `header`), a run of `SAMPLE` records from a sampled offset (`samples`:
/// the block's) at a time, and keeps in `out` those `keep` says; the number read, or `None` when the file
/// does not hold them as the part says.
pub(crate) fn read_listed(
    (file, header, len): (&std::fs::File, Header, u64),
    (block, samples): (&Block, &[u32]),
    ords: &[u16],
    keep: &mut dyn FnMut(&Record<'_>) -> Option<bool>,
    out: &mut Copied,
) -> Option<u64> {
    let hlen = header.record_header_len();
    let mut buf = std::mem::take(&mut out.scratch);
    let mut i = 0;
    while i < ords.len() {
        let s = u32::from(ords[i]) / part::SAMPLE;
        let end = ords[i..]
            .iter()
            .position(|&o| u32::from(o) / part::SAMPLE != s)
            .map_or(ords.len(), |p| i + p);
        let group = &ords[i..end];
        // The window from this sample to the next (or the block's end): read through the
        // group's last record.
        let start = block.offset + u64::from(*samples.get(s as usize)?);
        let stop = samples
            .get(s as usize + 1)
            .map_or(block.end, |&n| block.offset + u64::from(n));
        if stop > len {
            return None;
        }
        let first = block.first + u64::from(s * part::SAMPLE);
        let in_window = block
            .records
            .saturating_sub(s * part::SAMPLE)
            .min(part::SAMPLE);
        let have = reach(
            (file, header),
            (start, stop.checked_sub(start)?),
            in_window,
            u32::from(*group.last()?) - s * part::SAMPLE,
            &mut buf,
        )?;
        let piece = &buf[..ROOM + have];
        let records = walk(piece, header, first, s * part::SAMPLE, group)?;
        for r in records {
            if keep(&r)? {
                let at = usize::try_from(r.offset).ok()?;
                out.bytes
                    .extend_from_slice(piece.get(at..at + hlen + r.data.len())?);
                out.places.push((r.index, start + r.offset - ROOM as u64));
            }
        }
        i = end;
    }
    out.scratch = buf;
    Some(ords.len() as u64)
}

/// Reads into `buf` (after [`ROOM`]; its bytes past what this gives are stale) the bytes of a
/// window of `window.1` bytes at `window.0` holding `records` records, from its start through
/// the end of its record `last` (0-based), and no further: a record header at a time decides
/// what more to read, and the first read guesses from the window's mean record size. On the
/// bench set's host query this read 121 MB where whole windows read 170 MB. (Warm, the number
/// of reads matters more than their bytes: 30,000 reads at random places of the set took 22-29
/// ms on two threads at 700 bytes each, 28-33 ms at 3,400.) Gives the number of bytes read;
/// `None` when the window does not hold the record.
fn reach(
    (file, header): (&std::fs::File, Header),
    (start, len): (u64, u64),
    records: u32,
    last: u32,
    buf: &mut Vec<u8>,
) -> Option<usize> {
    let len = usize::try_from(len).ok()?;
    let hlen = header.record_header_len();
    let mean = len / records.max(1) as usize;
    // A guess of one record more than the mean says: fewer second reads (on the bench set, a
    // fifth fewer than no slack), for a tenth more bytes.
    let slack = mean;
    let mut have = 0usize;
    let more = |buf: &mut Vec<u8>, have: &mut usize, need: usize, guess: usize| -> Option<()> {
        if need <= *have {
            return Some(());
        }
        if need > len {
            return None;
        }
        let to = need.max(guess).min(len);
        // Grown, never shrunk: only new room is zeroed.
        if buf.len() < ROOM + to {
            buf.resize(ROOM + to, 0);
        }
        file.read_exact_at(&mut buf[ROOM + *have..ROOM + to], start + *have as u64)
            .ok()?;
        *have = to;
        Some(())
    };
    if buf.len() < ROOM {
        buf.resize(ROOM, 0);
    }
    let mut pos = 0usize;
    for ord in 0..=last {
        let guess = pos + (last - ord + 1) as usize * mean + hlen + slack;
        more(buf, &mut have, pos + hlen, guess)?;
        let at = ROOM + pos + 8;
        let field: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        let incl = if header.big_endian {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        };
        pos += hlen + usize::try_from(incl).ok()?;
        let guess = if ord == last {
            pos
        } else {
            pos + (last - ord) as usize * mean + hlen + slack
        };
        more(buf, &mut have, pos, guess)?;
    }
    Some(have)
}

/// The records `group` (places in their block, all from `from` on) of a piece of a file read
/// into `buf` (after [`ROOM`]) from the record of index `first` (place `from`); `None` when
/// the piece does not hold them.
fn walk<'b>(
    buf: &'b [u8],
    header: Header,
    first: u64,
    from: u32,
    group: &[u16],
) -> Option<Vec<Record<'b>>> {
    let mut reader = pcap::Reader::starting_at(buf, header, ROOM, first);
    let mut next = from;
    let mut out = Vec::with_capacity(group.len());
    for &o in group {
        while next < u32::from(o) {
            reader.next()?.ok()?;
            next += 1;
        }
        out.push(reader.next()?.ok()?);
        next += 1;
    }
    Some(out)
}
