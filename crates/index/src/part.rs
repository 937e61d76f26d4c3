//! One file's part of the index: its blocks of records and the postings from keys to blocks,
//! in a small binary file (docs/index-format.md) with a blake3 checksum of its body.
//! (Hand-written: a few sorted arrays, read in full in microseconds; a key-value store or
//! bitmap crate would add a dependency for what a binary search does here.)

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use tracekit_capture::{Capture, Format};

use crate::keys;

/// A block closes once its records reach this many bytes (or [`BLOCK_RECORDS`]): on the bench
/// a one-host query reads a block per packet of the host it finds, so smaller blocks read less
/// and cost postings (see the benchmark's figures in docs/index-format.md).
pub const BLOCK_BYTES: u64 = 1 << 20;
pub const BLOCK_RECORDS: u32 = 8192;

pub const MAGIC: &[u8; 8] = b"TKXPART\x01";

/// A contiguous run of records of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Byte offset of its first record (pcap: of the record header) in the (decompressed) file.
    pub offset: u64,
    /// 0-based index of its first record in the file.
    pub first: u64,
    pub records: u32,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// A part while its file is walked: the blocks closed so far, with their (key, block)
/// pairs, and the block being filled.
#[derive(Default)]
struct Blocks {
    part: Part,
    pairs: Vec<(u64, u32)>,
    current: Option<Block>,
    current_bytes: u64,
    keys_here: FxHashSet<u64>,
    opaque_here: bool,
}

impl Blocks {
    /// Closes the block being filled (if any): its keys become postings.
    fn close(&mut self) {
        if let Some(b) = self.current.take() {
            let id = self.part.blocks.len() as u32;
            self.pairs.extend(self.keys_here.drain().map(|k| (k, id)));
            if std::mem::take(&mut self.opaque_here) {
                self.part.opaque.push(id);
            }
            self.part.blocks.push(b);
            self.current_bytes = 0;
        }
    }
}

/// What the walk of a file found, kept in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub format: String,
    pub packets: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    /// Every record's time is at or after the one before.
    pub in_order: bool,
    /// Oddities read past, and whether the walk stopped at damage (the query then reads the
    /// file itself, which reports them as a full scan does).
    pub problems: u64,
    pub damaged: bool,
    pub link_types: Vec<u16>,
}

/// A file's blocks and postings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub blocks: Vec<Block>,
    /// Sorted keys; the blocks of `keys[i]` are `postings[starts[i]..starts[i + 1]]`.
    keys: Vec<u64>,
    starts: Vec<u32>,
    postings: Vec<u32>,
    /// Blocks with a packet the postings cannot describe (see `keys`): read by every query.
    pub opaque: Vec<u32>,
}

impl Part {
    /// The blocks holding `key`, ascending.
    #[must_use]
    pub fn blocks_of(&self, key: u64) -> &[u32] {
        match self.keys.binary_search(&key) {
            Ok(i) => &self.postings[self.starts[i] as usize..self.starts[i + 1] as usize],
            Err(_) => &[],
        }
    }

    /// Keys held.
    #[must_use]
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// What the postings cost, by kind of key (its top byte): (kind, keys, postings, encoded
    /// bytes), for the benchmark's breakdown of the index's size.
    #[must_use]
    pub fn stats(&self) -> Vec<(u8, u64, u64, u64)> {
        let mut out: Vec<(u8, u64, u64, u64)> = Vec::new();
        let mut prev = 0u64;
        let mut scratch = Vec::new();
        for (i, &k) in self.keys.iter().enumerate() {
            let list = &self.postings[self.starts[i] as usize..self.starts[i + 1] as usize];
            scratch.clear();
            varint(&mut scratch, k - prev);
            varint(&mut scratch, list.len() as u64);
            let mut last = 0u32;
            for (j, &b) in list.iter().enumerate() {
                varint(&mut scratch, u64::from(if j == 0 { b } else { b - last }));
                last = b;
            }
            prev = k;
            let kind = (k >> 56) as u8;
            if out.last().is_none_or(|o| o.0 != kind) {
                out.push((kind, 0, 0, 0));
            }
            let o = out.last_mut().expect("pushed");
            o.1 += 1;
            o.2 += list.len() as u64;
            o.3 += scratch.len() as u64;
        }
        out
    }

    /// Walks `capture` once: its blocks, postings and summary.
    #[must_use]
    pub fn build(capture: &Capture) -> (Part, Summary) {
        let mut s = Summary {
            format: match capture.format() {
                Format::Pcap(_) => "pcap".into(),
                Format::Pcapng => "pcapng".into(),
            },
            in_order: true,
            ..Summary::default()
        };
        let mut blocks = Blocks::default();
        let mut keys_buf = Vec::with_capacity(16);
        let mut layers = tracekit_wire::Layers::default();
        let mut last_ts = i64::MIN;
        let mut records = capture.records();
        for r in records.by_ref() {
            let Ok(r) = r else {
                s.damaged = true;
                break;
            };
            let ts = r.ts.0;
            if s.packets > 0 && ts < last_ts {
                s.in_order = false;
            }
            last_ts = ts;
            s.packets += 1;
            s.first_ns = Some(s.first_ns.map_or(ts, |f| f.min(ts)));
            s.last_ns = Some(s.last_ns.map_or(ts, |l| l.max(ts)));
            if !s.link_types.contains(&r.link.0) {
                s.link_types.push(r.link.0);
            }
            if blocks
                .current
                .as_ref()
                .is_some_and(|b| b.records >= BLOCK_RECORDS || blocks.current_bytes >= BLOCK_BYTES)
            {
                blocks.close();
            }
            let b = blocks.current.get_or_insert(Block {
                offset: r.offset,
                first: r.index,
                records: 0,
                min_ts: ts,
                max_ts: ts,
            });
            b.records += 1;
            b.min_ts = b.min_ts.min(ts);
            b.max_ts = b.max_ts.max(ts);
            blocks.current_bytes += r.data.len() as u64 + 16;
            tracekit_wire::dissect_into(r.link.0, r.data, &mut layers);
            keys_buf.clear();
            if !keys::of(&layers, r.data, &mut keys_buf) {
                blocks.opaque_here = true;
            }
            blocks.keys_here.extend(keys_buf.iter().copied());
        }
        blocks.close();
        s.problems = records.problems().1;
        let Blocks {
            mut part,
            mut pairs,
            ..
        } = blocks;
        pairs.sort_unstable();
        for (k, id) in pairs {
            if part.keys.last() != Some(&k) {
                part.keys.push(k);
                part.starts.push(part.postings.len() as u32);
            }
            part.postings.push(id);
        }
        part.starts.push(part.postings.len() as u32);
        (part, s)
    }

    /// The part as stored: magic, then its sieve and its body, each as length, blake3,
    /// bytes (see docs/index-format.md).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let put = |body: &mut Vec<u8>, v: u64| body.extend_from_slice(&v.to_le_bytes());
        put(&mut body, self.blocks.len() as u64);
        for b in &self.blocks {
            put(&mut body, b.offset);
            put(&mut body, b.first);
            put(&mut body, u64::from(b.records));
            put(&mut body, b.min_ts as u64);
            put(&mut body, b.max_ts as u64);
        }
        // Keys and postings as LEB128 varints of their differences: keys ascend, each key's
        // blocks ascend (on the bench this took the index from 3.0% to under 2% of the set).
        put(&mut body, self.keys.len() as u64);
        let mut prev = 0u64;
        for (i, &k) in self.keys.iter().enumerate() {
            varint(&mut body, k - prev);
            prev = k;
            let list = &self.postings[self.starts[i] as usize..self.starts[i + 1] as usize];
            varint(&mut body, list.len() as u64);
            let mut last = 0u32;
            for (j, &b) in list.iter().enumerate() {
                varint(&mut body, u64::from(if j == 0 { b } else { b - last }));
                last = b;
            }
        }
        put(&mut body, self.opaque.len() as u64);
        for &p in &self.opaque {
            body.extend_from_slice(&p.to_le_bytes());
        }
        let sieve = Sieve::of(&self.keys, !self.opaque.is_empty()).encode();
        let mut out = Vec::with_capacity(body.len() + sieve.len() + 88);
        out.extend_from_slice(MAGIC);
        for section in [&sieve, &body] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(blake3::hash(section).as_bytes());
            out.extend_from_slice(section);
        }
        out
    }

    /// Reads a part, checking its magic, lengths and checksums, and that every number in it
    /// is in range (a damaged part is refused, never half read).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Part, String> {
        let (sieve, rest) = section(bytes, true)?;
        Sieve::decode(sieve)?;
        let (body, rest) = section(rest, false)?;
        if !rest.is_empty() {
            return Err("bytes after the part: the index is damaged".into());
        }
        let mut r = Reader { b: body, at: 0 };
        let n = r.count(40)?;
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            blocks.push(Block {
                offset: r.u64()?,
                first: r.u64()?,
                records: u32::try_from(r.u64()?).map_err(|_| "block size")?,
                min_ts: r.u64()? as i64,
                max_ts: r.u64()? as i64,
            });
        }
        let nk = r.count(3)?;
        let (mut keys, mut starts, mut postings) = (
            Vec::with_capacity(nk),
            Vec::with_capacity(nk + 1),
            Vec::new(),
        );
        let mut prev = 0u64;
        for i in 0..nk {
            let d = r.varint()?;
            if i > 0 && d == 0 {
                return Err("inconsistent part: the index is damaged".into());
            }
            prev = prev.checked_add(d).ok_or("key out of range")?;
            keys.push(prev);
            starts.push(u32::try_from(postings.len()).map_err(|_| "too many postings")?);
            let n = r.varint()?;
            if n == 0 || n > (body.len() - r.at) as u64 {
                return Err("inconsistent part: the index is damaged".into());
            }
            let mut last = 0u32;
            for j in 0..n {
                let d = u32::try_from(r.varint()?).map_err(|_| "block id out of range")?;
                if j > 0 && d == 0 {
                    return Err("inconsistent part: the index is damaged".into());
                }
                last = if j == 0 {
                    d
                } else {
                    last.checked_add(d).ok_or("block id")?
                };
                postings.push(last);
            }
        }
        starts.push(u32::try_from(postings.len()).map_err(|_| "too many postings")?);
        let no = r.count(4)?;
        let opaque = (0..no).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
        let sorted = keys.windows(2).all(|w| w[0] < w[1])
            && starts.windows(2).all(|w| w[0] <= w[1])
            && starts.last().is_some_and(|&s| s as usize == postings.len())
            && postings
                .iter()
                .chain(&opaque)
                .all(|&p| (p as usize) < blocks.len());
        if !sorted || r.at != body.len() {
            return Err("inconsistent part: the index is damaged".into());
        }
        Ok(Part {
            blocks,
            keys,
            starts,
            postings,
            opaque,
        })
    }
}

/// One section of a part: (its bytes, checked against its blake3; what follows). `first`:
/// the magic comes before it.
fn section(bytes: &[u8], first: bool) -> Result<(&[u8], &[u8]), String> {
    let bytes = if first {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err("not a tracekit index part (or of another format version)".into());
        }
        &bytes[8..]
    } else {
        bytes
    };
    if bytes.len() < 40 {
        return Err("truncated part: the index is damaged".into());
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "length")?);
    let rest = &bytes[40..];
    if len > rest.len() as u64 {
        return Err("truncated part: the index is damaged".into());
    }
    let (data, after) = rest.split_at(len as usize);
    if blake3::hash(data).as_bytes() != &bytes[8..40] {
        return Err("checksum mismatch: the index is damaged".into());
    }
    Ok((data, after))
}

/// The keys of a part as a Bloom filter at the front of its file (about 1% false positives,
/// 10 bits a key), so that a query tells which files can hold what it asks from a few
/// kilobytes of each, and reads those parts only. (Hand-written: twenty lines, and the bits
/// are part of the documented format, which a crate's own hashing could change.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sieve {
    /// The part has opaque blocks: every query reads it.
    pub opaque: bool,
    words: Vec<u64>,
}

const SIEVE_HASHES: u64 = 4;

impl Sieve {
    fn of(keys: &[u64], opaque: bool) -> Sieve {
        let bits = (keys.len() as u64 * 10).max(64).div_ceil(64) * 64;
        let mut s = Sieve {
            opaque,
            words: vec![0; (bits / 64) as usize],
        };
        for &k in keys {
            let bits: Vec<u64> = s.bits(k).collect();
            for bit in bits {
                s.words[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        s
    }

    fn bits(&self, key: u64) -> impl Iterator<Item = u64> + use<> {
        // splitmix64's finalizer, then double hashing.
        let mut h = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let m = self.words.len() as u64 * 64;
        let (h1, h2) = (h, h.rotate_left(32) | 1);
        (0..SIEVE_HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }

    /// Whether the part may hold `key` (false: it does not).
    #[must_use]
    pub fn may_hold(&self, key: u64) -> bool {
        self.bits(key)
            .all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.words.len() * 8);
        out.extend_from_slice(&u64::from(self.opaque).to_le_bytes());
        out.extend_from_slice(&(self.words.len() as u64).to_le_bytes());
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Sieve, String> {
        let mut r = Reader { b: bytes, at: 0 };
        let opaque = r.u64()? != 0;
        let n = r.count(8)?;
        let words = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        if words.is_empty() || r.at != bytes.len() {
            return Err("inconsistent sieve: the index is damaged".into());
        }
        Ok(Sieve { opaque, words })
    }

    /// Reads the sieve at the front of the part file `path` (its first kilobytes only),
    /// checked against its checksum.
    ///
    /// # Errors
    /// A part that cannot be read, or is damaged.
    pub fn read(path: &std::path::Path) -> Result<Sieve, String> {
        use std::io::Read as _;
        let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut head = [0u8; 48];
        f.read_exact(&mut head)
            .map_err(|_| "truncated part: the index is damaged".to_string())?;
        let len = u64::from_le_bytes(head[8..16].try_into().map_err(|_| "length")?);
        let size = f.metadata().map_err(|e| e.to_string())?.len();
        if len > size {
            return Err("truncated part: the index is damaged".into());
        }
        let mut bytes = head.to_vec();
        bytes.resize(48 + len as usize, 0);
        f.read_exact(&mut bytes[48..])
            .map_err(|_| "truncated part: the index is damaged".to_string())?;
        let (sieve, _) = section(&bytes, true)?;
        Sieve::decode(sieve)
    }
}

/// Appends `v` as a LEB128 varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or("truncated part: the index is damaged")?;
        self.at += n;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "u64")?,
        ))
    }
    /// A LEB128 varint (at most 10 bytes).
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint too long: the index is damaged".into())
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "u32")?,
        ))
    }
    /// A count of items of at least `each` bytes, checked against what is left (never
    /// allocate what a length claims).
    fn count(&mut self, each: usize) -> Result<usize, String> {
        let n = self.u64()?;
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(each as u64) > left {
            return Err("a count larger than the part: the index is damaged".into());
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Part {
        Part {
            blocks: vec![
                Block {
                    offset: 24,
                    first: 0,
                    records: 3,
                    min_ts: 5,
                    max_ts: 9,
                },
                Block {
                    offset: 400,
                    first: 3,
                    records: 1,
                    min_ts: 9,
                    max_ts: 9,
                },
            ],
            keys: vec![keys::port(80), keys::proto(6)],
            starts: vec![0, 2, 3],
            postings: vec![0, 1, 1],
            opaque: vec![1],
        }
    }

    #[test]
    fn a_part_reads_back_as_written() {
        let p = sample();
        let back = Part::decode(&p.encode()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.blocks_of(keys::port(80)), &[0, 1]);
        assert_eq!(back.blocks_of(keys::proto(6)), &[1]);
        assert!(back.blocks_of(keys::port(81)).is_empty());
    }

    #[test]
    fn a_damaged_part_is_refused_whatever_byte_is_wrong() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Part::decode(&b).is_err(), "byte {i} flipped");
        }
        for n in 0..bytes.len() {
            assert!(Part::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
    }
}
