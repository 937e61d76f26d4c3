//! One file's part of the index: its blocks of records, and the postings from keys to the
//! records that hold them, in a small binary file (docs/index-format.md) that a query reads a
//! page at a time, each page checked against its blake3.
//! (Hand-written: sorted arrays and varints, a page decoded in microseconds; a key-value store
//! or bitmap crate would add a dependency for what a binary search does here, and the bytes
//! are part of the documented format.)

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracekit_capture::{Capture, Format};

use crate::keys;

/// A block closes once its records reach this many bytes, or this many records (at most
/// [`BLOCK_RECORDS`], the default; `tracekit index --block-records` says fewer).
pub const BLOCK_BYTES: u64 = 1 << 20;
pub const BLOCK_RECORDS: u32 = 8192;
/// The offset of every `SAMPLE`th record of a block is kept: a listed record is reached by
/// walking at most `SAMPLE - 1` record headers from the nearest one.
pub const SAMPLE: u32 = 8;
/// A key's records in a block are listed when they are at most one in `DENSE` of the block's
/// records; otherwise the posting names the whole block (reading it whole costs about what
/// finding that many records one by one costs, and the list would cost its bytes).
pub const DENSE: usize = 8;
/// A key's records are listed only when it is in at least this many blocks of the file: a key
/// in fewer (a flow's ports, the address of a host of one flow) costs a query only those few
/// blocks, read whole, while listing its records would cost most of the index's bytes.
pub const LISTED_FROM_BLOCKS: usize = 8;
/// A page of postings closes after this many bytes (at a key's end).
pub const PAGE_BYTES: usize = 8 << 10;

pub const MAGIC: &[u8; 8] = b"TKXPART\x03";

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
    /// Byte offset just after its last record. A block holds no block but records: a pcapng
    /// side block (statistics, name resolution, another section…) closes it, so it lies
    /// between this end and the next block's offset (or the file's end).
    pub end: u64,
}

/// Which records of a block hold a key: any of them (read the whole block), or these (their
/// 0-based places in the block, ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hits {
    Block,
    Records(Vec<u16>),
}

impl Hits {
    fn union(self, other: Hits) -> Hits {
        match (self, other) {
            (Hits::Records(mut a), Hits::Records(b)) => {
                // (Short lists: a sort is as quick as a merge here.)
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                Hits::Records(a)
            }
            _ => Hits::Block,
        }
    }

    /// The records in both (`None`: none).
    fn intersect(&self, other: &Hits) -> Option<Hits> {
        let out = match (self, other) {
            (Hits::Block, h) | (h, Hits::Block) => h.clone(),
            (Hits::Records(a), Hits::Records(b)) => Hits::Records(
                a.iter()
                    .copied()
                    .filter(|x| b.binary_search(x).is_ok())
                    .collect(),
            ),
        };
        (out != Hits::Records(Vec::new())).then_some(out)
    }
}

/// A key's postings: the blocks holding it, ascending, each with the records that do.
pub type Postings = Vec<(u32, Hits)>;

/// The postings of either.
#[must_use]
pub fn union(a: Postings, b: Postings) -> Postings {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                let (Some((id, x)), Some((_, y))) = (a.next(), b.next()) else {
                    break;
                };
                out.push((id, x.union(y)));
                continue;
            }
            (Some(x), Some(y)) => x.0 < y.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

/// The postings of both.
#[must_use]
pub fn intersect(a: &Postings, b: &Postings) -> Postings {
    a.iter()
        .filter_map(|(id, x)| {
            let j = b.binary_search_by_key(id, |p| p.0).ok()?;
            Some((*id, x.intersect(&b[j].1)?))
        })
        .collect()
}

/// A part while its file is walked: the blocks closed so far with their postings, and the
/// block being filled with its (key, record) pairs.
#[derive(Default)]
struct Blocks {
    part: Part,
    pairs: Vec<(u64, u32, Hits)>,
    current: Option<Block>,
    current_bytes: u64,
    samples_here: Vec<u32>,
    keys_here: Vec<(u64, u16)>,
}

impl Blocks {
    /// Closes the block being filled (if any): its keys become postings, each listing its
    /// records unless they are more than one in [`DENSE`].
    fn close(&mut self) {
        let Some(b) = self.current.take() else {
            return;
        };
        let id = self.part.blocks.len() as u32;
        self.keys_here.sort_unstable();
        self.keys_here.dedup();
        for group in self.keys_here.chunk_by(|x, y| x.0 == y.0) {
            let hits = if group.len() * DENSE <= b.records as usize {
                Hits::Records(group.iter().map(|p| p.1).collect())
            } else {
                Hits::Block
            };
            self.pairs.push((group[0].0, id, hits));
        }
        self.keys_here.clear();
        self.part.blocks.push(b);
        self.part
            .samples
            .push(std::mem::take(&mut self.samples_here));
        self.current_bytes = 0;
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

/// A file's blocks and postings, whole (as built, or as [`Part::decode`] reads every page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub blocks: Vec<Block>,
    /// Per block: the offsets of its records 0, `SAMPLE`, 2 × `SAMPLE`… from the block's.
    pub samples: Vec<Vec<u32>>,
    /// Sorted keys; the postings of `keys[i]` are `postings[starts[i]..starts[i + 1]]`.
    keys: Vec<u64>,
    starts: Vec<u32>,
    postings: Vec<(u32, Hits)>,
}

impl Part {
    /// The postings of `key`: blocks ascending.
    #[must_use]
    pub fn postings_of(&self, key: u64) -> &[(u32, Hits)] {
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

    /// What the postings cost, by kind of key (its top byte): (kind, keys, postings, records
    /// listed, encoded bytes), for the benchmark's breakdown of the index's size.
    #[must_use]
    pub fn stats(&self) -> Vec<(u8, [u64; 4])> {
        let mut out: Vec<(u8, [u64; 4])> = Vec::new();
        let mut scratch = Vec::new();
        for (i, &k) in self.keys.iter().enumerate() {
            let list = &self.postings[self.starts[i] as usize..self.starts[i + 1] as usize];
            scratch.clear();
            encode_key(
                &mut scratch,
                k,
                if i == 0 { k } else { self.keys[i - 1] },
                list,
            );
            let kind = (k >> 56) as u8;
            if out.last().is_none_or(|o| o.0 != kind) {
                out.push((kind, [0; 4]));
            }
            let o = &mut out.last_mut().expect("pushed").1;
            o[0] += 1;
            o[1] += list.len() as u64;
            o[2] += list
                .iter()
                .map(|(_, h)| match h {
                    Hits::Block => 0,
                    Hits::Records(r) => r.len() as u64,
                })
                .sum::<u64>();
            o[3] += scratch.len() as u64;
        }
        out
    }

    /// Walks `capture` once: its blocks (of at most `block_records` records, itself at most
    /// [`BLOCK_RECORDS`]), postings and summary.
    #[must_use]
    pub fn build(capture: &Capture, block_records: u32) -> (Part, Summary) {
        let block_records = block_records.clamp(1, BLOCK_RECORDS);
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
        let mut last_end = 0u64;
        while let Some(r) = records.next() {
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
            let full = |b: &Block| {
                r.offset != last_end
                    || b.records >= block_records
                    || blocks.current_bytes >= BLOCK_BYTES
                    || r.offset - b.offset > u64::from(u32::MAX)
            };
            if blocks.current.as_ref().is_some_and(full) {
                blocks.close();
            }
            last_end = records.position();
            let b = blocks.current.get_or_insert(Block {
                offset: r.offset,
                first: r.index,
                records: 0,
                min_ts: ts,
                max_ts: ts,
                end: 0,
            });
            b.end = last_end;
            let ord = b.records;
            if ord % SAMPLE == 0 {
                // In range: a block closes before its records' offsets leave a u32.
                blocks.samples_here.push((r.offset - b.offset) as u32);
            }
            b.records += 1;
            b.min_ts = b.min_ts.min(ts);
            b.max_ts = b.max_ts.max(ts);
            blocks.current_bytes += r.data.len() as u64 + 16;
            tracekit_wire::dissect_into(r.link.0, r.data, &mut layers);
            keys_buf.clear();
            if !keys::of(&layers, r.data, &mut keys_buf) {
                keys_buf.push(keys::OPAQUE);
            }
            // `ord` < BLOCK_RECORDS, which fits a u16.
            let ord = ord as u16;
            blocks.keys_here.extend(keys_buf.iter().map(|&k| (k, ord)));
        }
        blocks.close();
        s.problems = records.problems().1;
        let Blocks {
            mut part,
            mut pairs,
            ..
        } = blocks;
        pairs.sort_unstable_by_key(|p| (p.0, p.1));
        for key in pairs.chunk_by_mut(|x, y| x.0 == y.0) {
            if key.len() < LISTED_FROM_BLOCKS {
                for p in key {
                    p.2 = Hits::Block;
                }
            }
        }
        for (k, id, hits) in pairs {
            if part.keys.last() != Some(&k) {
                part.keys.push(k);
                part.starts.push(part.postings.len() as u32);
            }
            part.postings.push((id, hits));
        }
        part.starts.push(part.postings.len() as u32);
        (part, s)
    }

    /// The part as stored: magic, its sieve and its head (each as length, blake3, bytes),
    /// then its pages of postings (see docs/index-format.md).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut pages: Vec<u8> = Vec::new();
        let mut directory: Vec<(u64, u64, u64, [u8; 32])> = Vec::new();
        let mut page = Vec::new();
        let mut first = None;
        let close =
            |page: &mut Vec<u8>, first: &mut Option<u64>, pages: &mut Vec<u8>, dir: &mut Vec<_>| {
                if let Some(k) = first.take() {
                    dir.push((
                        k,
                        pages.len() as u64,
                        page.len() as u64,
                        *blake3::hash(page).as_bytes(),
                    ));
                    pages.append(page);
                }
            };
        for (i, &k) in self.keys.iter().enumerate() {
            let list = &self.postings[self.starts[i] as usize..self.starts[i + 1] as usize];
            // The page's first key is written as 0 (the directory holds it).
            let prev = if first.is_none() { k } else { self.keys[i - 1] };
            first.get_or_insert(k);
            encode_key(&mut page, k, prev, list);
            if page.len() >= PAGE_BYTES {
                close(&mut page, &mut first, &mut pages, &mut directory);
            }
        }
        close(&mut page, &mut first, &mut pages, &mut directory);
        let opaque = self.keys.binary_search(&keys::OPAQUE).is_ok();
        let (chunk_words, words) = sieve_words(&self.keys);
        let chunks: Vec<&[u64]> = words.chunks(chunk_words).collect();
        let mut sieve = Vec::with_capacity(24 + 32 * chunks.len());
        for v in [u64::from(opaque), chunks.len() as u64, chunk_words as u64] {
            sieve.extend_from_slice(&v.to_le_bytes());
        }
        for c in &chunks {
            sieve.extend_from_slice(blake3::hash(&words_bytes(c)).as_bytes());
        }
        let mut head = Vec::new();
        let put = |head: &mut Vec<u8>, v: u64| head.extend_from_slice(&v.to_le_bytes());
        put(&mut head, self.blocks.len() as u64);
        for b in &self.blocks {
            put(&mut head, b.offset);
            put(&mut head, b.first);
            put(&mut head, u64::from(b.records));
            put(&mut head, b.min_ts as u64);
            put(&mut head, b.max_ts as u64);
            put(&mut head, b.end);
        }
        for samples in &self.samples {
            let mut prev = 0u32;
            for &s in samples {
                varint(&mut head, u64::from(s - prev));
                prev = s;
            }
        }
        put(&mut head, directory.len() as u64);
        for (k, offset, len, hash) in &directory {
            put(&mut head, *k);
            put(&mut head, *offset);
            put(&mut head, *len);
            head.extend_from_slice(hash);
        }
        head.extend_from_slice(blake3::hash(&sieve).as_bytes());
        let mut out =
            Vec::with_capacity(sieve.len() + head.len() + words.len() * 8 + pages.len() + 88);
        out.extend_from_slice(MAGIC);
        for section in [&sieve, &head] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(blake3::hash(section).as_bytes());
            out.extend_from_slice(section);
        }
        out.extend_from_slice(&words_bytes(&words));
        out.extend_from_slice(&pages);
        out
    }

    /// Reads a whole part, checking its magic, lengths and checksums, and that every number
    /// in it is in range (a damaged part is refused, never half read).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Part, String> {
        let mut sieve = Sieve::of_source(Source::Bytes(bytes.to_vec()))?;
        for c in 0..sieve.hashes.len() {
            sieve.chunk(c)?;
        }
        let mut file = sieve.into_part(None)?;
        let mut part = Part {
            blocks: file.blocks.clone(),
            samples: file.samples.clone(),
            ..Part::default()
        };
        for i in 0..file.pages.len() {
            for (k, list) in file.page(i, None)? {
                part.keys.push(k);
                part.starts.push(part.postings.len() as u32);
                part.postings.extend(list);
            }
        }
        part.starts.push(part.postings.len() as u32);
        Ok(part)
    }
}

/// The blake3 (hex) of the head of an encoded part, as stored in it (the manifest keeps it).
#[must_use]
pub fn head_blake3(bytes: &[u8]) -> Option<String> {
    let sieve_len = usize::try_from(u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?)).ok()?;
    let at = 48usize.checked_add(sieve_len)?.checked_add(8)?;
    let hash: [u8; 32] = bytes.get(at..at + 32)?.try_into().ok()?;
    Some(blake3::Hash::from(hash).to_hex().to_string())
}

/// Appends a key and its postings to a page: the key's difference from the one before (the
/// page's first key: from itself, so 0; the directory holds it), the number of its blocks, and per block
/// its id's difference from the one before (the first: the id) shifted left by one, the low
/// bit set when its records are listed: then their number less one and their places, as
/// differences (the first: the place).
fn encode_key(page: &mut Vec<u8>, key: u64, prev: u64, list: &[(u32, Hits)]) {
    varint(page, key - prev);
    varint(page, list.len() as u64);
    let mut last = 0u32;
    for (j, (b, hits)) in list.iter().enumerate() {
        let d = u64::from(if j == 0 { *b } else { b - last });
        last = *b;
        match hits {
            Hits::Block => varint(page, d << 1),
            Hits::Records(r) => {
                varint(page, (d << 1) | 1);
                varint(page, r.len() as u64 - 1);
                let mut prev = 0u16;
                for (i, &o) in r.iter().enumerate() {
                    varint(page, u64::from(if i == 0 { o } else { o - prev }));
                    prev = o;
                }
            }
        }
    }
}

/// Where a part's bytes come from: its file (read a piece at a time) or memory.
#[derive(Debug)]
enum Source {
    File(std::fs::File, u64),
    Bytes(Vec<u8>),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::File(_, len) => *len,
            Source::Bytes(b) => b.len() as u64,
        }
    }

    /// `len` bytes at `at`, checked against the size first (never allocate what a length
    /// claims).
    fn read(&self, at: u64, len: u64) -> Result<Vec<u8>, String> {
        if at.checked_add(len).is_none_or(|end| end > self.len()) {
            return Err("truncated part: the index is damaged".into());
        }
        match self {
            Source::File(f, _) => {
                use std::os::unix::fs::FileExt as _;
                let mut buf = vec![0; len as usize];
                f.read_exact_at(&mut buf, at)
                    .map_err(|e| format!("{e}: the index is damaged"))?;
                Ok(buf)
            }
            Source::Bytes(b) => Ok(b[at as usize..(at + len) as usize].to_vec()),
        }
    }
}

/// A page of the directory: its first key, where its bytes are (from the pages' start) and
/// their blake3.
#[derive(Debug, Clone)]
struct Page {
    first: u64,
    offset: u64,
    len: u64,
    blake3: [u8; 32],
}

/// A decoded page: its keys, ascending, each with its postings.
type Decoded = Vec<(u64, Postings)>;

/// A part opened for queries: its head (blocks, samples, page directory) read and checked;
/// pages read when a key asks for them, each checked against its blake3 once.
#[derive(Debug)]
pub struct PartFile {
    source: Source,
    pub blocks: Vec<Block>,
    /// Per block: the offsets of its records 0, `SAMPLE`, 2 × `SAMPLE`… from the block's.
    pub samples: Vec<Vec<u32>>,
    pages: Vec<Page>,
    pages_at: u64,
    /// Pages read so far, checked.
    read: FxHashMap<usize, Vec<u8>>,
    /// The head's blake3 as stored (hex): the manifest holds it too.
    pub head_blake3: String,
    /// The part has records no key describes (its sieve says so).
    pub opaque: bool,
}

impl PartFile {
    /// Opens the part file at `path`; `head_blake3`: the manifest's checksum of its head.
    ///
    /// # Errors
    /// A part that cannot be read, is damaged, or is not the one the manifest names.
    pub fn open(path: &std::path::Path, head_blake3: Option<&str>) -> Result<PartFile, String> {
        Sieve::open(path)?.into_part(head_blake3)
    }

    /// A part held in memory.
    ///
    /// # Errors
    /// As [`PartFile::open`].
    pub fn from_bytes(bytes: Vec<u8>, head_blake3: Option<&str>) -> Result<PartFile, String> {
        Sieve::of_source(Source::Bytes(bytes))?.into_part(head_blake3)
    }

    /// Reads the head of the part whose sieve is `sieve`.
    fn new(sieve: Sieve, expected: Option<&str>) -> Result<PartFile, String> {
        let Sieve {
            source,
            prefix,
            opaque,
            table_blake3,
            head_at,
            head_len,
            head_hash,
            hashes,
            chunk_words,
            chunks_at,
            ..
        } = sieve;
        let head = match prefix.get(to_usize(head_at + 40)?..to_usize(head_at + 40 + head_len)?) {
            Some(h) => h.to_vec(),
            None => source.read(head_at + 40, head_len)?,
        };
        drop(prefix);
        if blake3::hash(&head).as_bytes() != &head_hash {
            return Err("checksum mismatch: the index is damaged".into());
        }
        let head_blake3 = blake3::Hash::from(head_hash).to_hex().to_string();
        if expected.is_some_and(|e| e != head_blake3) {
            return Err("checksum mismatch with the manifest: the index is damaged".into());
        }
        let chunks_bytes = (hashes.len() as u64)
            .checked_mul(chunk_words)
            .and_then(|w| w.checked_mul(8))
            .ok_or("inconsistent part: the index is damaged")?;
        let pages_at = chunks_at
            .checked_add(chunks_bytes)
            .ok_or("inconsistent part: the index is damaged")?;
        let mut r = Reader { b: &head, at: 0 };
        let n = r.count(48)?;
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            blocks.push(Block {
                offset: r.u64()?,
                first: r.u64()?,
                records: u32::try_from(r.u64()?)
                    .ok()
                    .filter(|&n| (1..=BLOCK_RECORDS).contains(&n))
                    .ok_or("inconsistent part: the index is damaged")?,
                min_ts: r.u64()? as i64,
                max_ts: r.u64()? as i64,
                end: r.u64()?,
            });
        }
        let mut samples = Vec::with_capacity(blocks.len());
        for b in &blocks {
            let n = b.records.div_ceil(SAMPLE) as usize;
            if n > head.len() - r.at {
                return Err("inconsistent part: the index is damaged".into());
            }
            let mut at = 0u32;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                let step = u32::try_from(r.varint()?).map_err(|_| "sample out of range")?;
                at = at.checked_add(step).ok_or("sample out of range")?;
                if u64::from(at) >= b.end.saturating_sub(b.offset) {
                    return Err("inconsistent part: the index is damaged".into());
                }
                list.push(at);
            }
            samples.push(list);
        }
        let np = r.count(56)?;
        let mut pages = Vec::with_capacity(np);
        let mut end = 0u64;
        for _ in 0..np {
            let p = Page {
                first: r.u64()?,
                offset: r.u64()?,
                len: r.u64()?,
                blake3: r.take(32)?.try_into().map_err(|_| "hash")?,
            };
            let ascending = pages.last().is_none_or(|q: &Page| q.first < p.first);
            if p.offset != end || p.len == 0 || !ascending {
                return Err("inconsistent part: the index is damaged".into());
            }
            end = p.offset.saturating_add(p.len);
            pages.push(p);
        }
        let sieve_checked = r.take(32)? == table_blake3;
        if !sieve_checked || r.at != head.len() || pages_at.checked_add(end) != Some(source.len()) {
            return Err("inconsistent part: the index is damaged".into());
        }
        Ok(PartFile {
            source,
            blocks,
            samples,
            pages,
            pages_at,
            read: FxHashMap::default(),
            head_blake3,
            opaque,
        })
    }

    /// The postings of `key`: blocks ascending (empty: no record holds it).
    ///
    /// # Errors
    /// A damaged page.
    pub fn postings(&mut self, key: u64) -> Result<Postings, String> {
        let i = self.pages.partition_point(|p| p.first <= key);
        if i == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .page(i - 1, Some(key))?
            .pop()
            .map(|(_, list)| list)
            .unwrap_or_default())
    }

    /// The keys of page `i` with their postings (`want`: only that key's), the page read and
    /// checked once.
    fn page(&mut self, i: usize, want: Option<u64>) -> Result<Decoded, String> {
        if !self.read.contains_key(&i) {
            let p = &self.pages[i];
            let bytes = self.source.read(self.pages_at + p.offset, p.len)?;
            if blake3::hash(&bytes).as_bytes() != &p.blake3 {
                return Err("checksum mismatch: the index is damaged".into());
            }
            self.read.insert(i, bytes);
        }
        let bytes = self.read.get(&i).ok_or_else(|| "page".to_string())?;
        let limit = self.pages.get(i + 1).map_or(u64::MAX, |q| q.first);
        decode_page(bytes, (self.pages[i].first, limit), &self.blocks, want)
    }
}

/// Reads a page whose first key is `first` and whose keys stay below `limit`, checking every
/// number against the blocks: the keys with their postings, or only `want`'s (the others
/// are walked past without a list made, and the walk stops after it).
fn decode_page(
    bytes: &[u8],
    (first, limit): (u64, u64),
    blocks: &[Block],
    want: Option<u64>,
) -> Result<Decoded, String> {
    let bad = || "inconsistent part: the index is damaged".to_string();
    let mut r = Reader { b: bytes, at: 0 };
    let mut out: Decoded = Vec::new();
    let mut key = first;
    let mut keys = 0usize;
    while r.at < bytes.len() {
        let delta = r.varint()?;
        if (keys == 0) != (delta == 0) {
            return Err(bad());
        }
        keys += 1;
        key = key
            .checked_add(delta)
            .filter(|&k| k < limit)
            .ok_or_else(bad)?;
        if want.is_some_and(|w| key > w) {
            break;
        }
        let keep = want.is_none_or(|w| w == key);
        let count = r.varint()?;
        if count == 0 || count > (bytes.len() - r.at) as u64 {
            return Err(bad());
        }
        let mut list = Vec::with_capacity(if keep { count as usize } else { 0 });
        let mut id = 0u32;
        for j in 0..count {
            let word = r.varint()?;
            let step = u32::try_from(word >> 1).map_err(|_| bad())?;
            if j > 0 && step == 0 {
                return Err(bad());
            }
            id = id.checked_add(step).ok_or_else(bad)?;
            let block = blocks.get(id as usize).ok_or_else(bad)?;
            let hits = if word & 1 == 0 {
                Hits::Block
            } else {
                let c = r.varint()?.checked_add(1).ok_or_else(bad)?;
                if c > u64::from(block.records) {
                    return Err(bad());
                }
                let mut at = 0u16;
                let mut records = Vec::with_capacity(if keep { c as usize } else { 0 });
                for i in 0..c {
                    let gap = u16::try_from(r.varint()?).map_err(|_| bad())?;
                    if i > 0 && gap == 0 {
                        return Err(bad());
                    }
                    at = at.checked_add(gap).ok_or_else(bad)?;
                    if u32::from(at) >= block.records {
                        return Err(bad());
                    }
                    if keep {
                        records.push(at);
                    }
                }
                Hits::Records(records)
            };
            if keep {
                list.push((id, hits));
            }
        }
        if keep {
            out.push((key, list));
            if want.is_some() {
                break;
            }
        }
    }
    if keys == 0 {
        return Err(bad());
    }
    Ok(out)
}

/// `v` as a `usize`, or the part is damaged.
fn to_usize(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| "inconsistent part: the index is damaged".to_string())
}

/// The words of a Bloom filter as stored: little-endian.
fn words_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Words of a sieve's chunk at most (4 KiB): what a query reads of a part's sieve for a key.
const CHUNK_WORDS: usize = 512;

const SIEVE_HASHES: u64 = 4;

/// Bytes read first of a part: its magic, the sieve's table, and often its head.
const PREFIX: u64 = 8 << 10;

/// The sieve of a part's keys (10 bits a key): (words a chunk, the words).
fn sieve_words(keys: &[u64]) -> (usize, Vec<u64>) {
    let words = (keys.len() * 10).max(64).div_ceil(64);
    let (chunks, chunk_words) = if words <= CHUNK_WORDS {
        (1, words)
    } else {
        (words.div_ceil(CHUNK_WORDS), CHUNK_WORDS)
    };
    let mut out = vec![0u64; chunks * chunk_words];
    for &k in keys {
        let (c, bits) = sieve_bits(k, chunks as u64, chunk_words as u64);
        for bit in bits {
            out[c as usize * chunk_words + (bit / 64) as usize] |= 1 << (bit % 64);
        }
    }
    (chunk_words, out)
}

/// splitmix64's finalizer.
fn finalize(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The chunk of a sieve of `chunks` chunks of `chunk_words` words that `key` is in, and its
/// bits there.
fn sieve_bits(key: u64, chunks: u64, chunk_words: u64) -> (u64, impl Iterator<Item = u64>) {
    let h = finalize(key.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let chunk = ((finalize(h) >> 32) * chunks) >> 32;
    let m = chunk_words * 64;
    let (h1, h2) = (h, h.rotate_left(32) | 1);
    (
        chunk,
        (0..SIEVE_HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m),
    )
}

/// The keys of a part as a Bloom filter (about 1% false positives, 10 bits a key), so that a
/// query tells which files can hold what it asks from a few kilobytes of each, and reads
/// those parts only. The filter is cut in chunks of 4 KiB, each with its blake3 in a table
/// at the front of the file: a key's bits all lie in one chunk, so a query reads the table
/// and one chunk a key, not the whole filter (on the bench set, 104 KB a part). Opened, a
/// sieve reads the head of its part on request ([`Sieve::into_part`]), from the same file.
/// (Hand-written: twenty lines, and the bits are part of the documented format, which a
/// crate's own hashing could change.)
#[derive(Debug)]
pub struct Sieve {
    /// The part has opaque blocks: every query reads it.
    pub opaque: bool,
    chunk_words: u64,
    hashes: Vec<[u8; 32]>,
    chunks: Vec<Option<Vec<u64>>>,
    source: Source,
    /// The file's first bytes, read at once.
    prefix: Vec<u8>,
    table_blake3: [u8; 32],
    head_at: u64,
    head_len: u64,
    head_hash: [u8; 32],
    chunks_at: u64,
}

impl Sieve {
    /// Opens the part at `path` and reads its sieve's table.
    ///
    /// # Errors
    /// A part that cannot be read, or is damaged.
    pub fn open(path: &std::path::Path) -> Result<Sieve, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{e}: the index is damaged"))?;
        // No read-ahead: a query reads a few pieces of a part (on the bench set, cold, the
        // kernel's read-ahead read 135 MB of the parts for a query that needs 16 MB).
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Random);
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        Sieve::of_source(Source::File(f, len))
    }

    fn of_source(source: Source) -> Result<Sieve, String> {
        let mut prefix = source.read(0, PREFIX.min(source.len()))?;
        let at = |prefix: &mut Vec<u8>, at: u64, len: u64| -> Result<Vec<u8>, String> {
            let end = at
                .checked_add(len)
                .ok_or("truncated part: the index is damaged")?;
            if end > prefix.len() as u64 {
                let more = source.read(prefix.len() as u64, end - prefix.len() as u64)?;
                prefix.extend_from_slice(&more);
            }
            Ok(prefix[to_usize(at)?..to_usize(end)?].to_vec())
        };
        if at(&mut prefix, 0, 8)? != MAGIC {
            return Err("not a tracekit index part (or of another format version)".into());
        }
        let stored = |prefix: &mut Vec<u8>, from: u64| -> Result<(u64, [u8; 32]), String> {
            let b = at(prefix, from, 40)?;
            let len = u64::from_le_bytes(b[..8].try_into().map_err(|_| "length")?);
            Ok((len, b[8..40].try_into().map_err(|_| "hash")?))
        };
        let (table_len, table_blake3) = stored(&mut prefix, 8)?;
        if table_len > source.len() {
            return Err("truncated part: the index is damaged".into());
        }
        let table = at(&mut prefix, 48, table_len)?;
        if blake3::hash(&table).as_bytes() != &table_blake3 {
            return Err("checksum mismatch: the index is damaged".into());
        }
        let mut r = Reader { b: &table, at: 0 };
        let opaque = r.u64()? != 0;
        let n = r.u64()?;
        let chunk_words = r.u64()?;
        let inconsistent = || "inconsistent sieve: the index is damaged".to_string();
        if n == 0
            || n.checked_mul(32) != Some((table.len() - r.at) as u64)
            || !(1..=CHUNK_WORDS as u64).contains(&chunk_words)
            || (n > 1 && chunk_words != CHUNK_WORDS as u64)
        {
            return Err(inconsistent());
        }
        let hashes = table[r.at..]
            .chunks_exact(32)
            .map(|h| h.try_into().expect("32 bytes"))
            .collect::<Vec<[u8; 32]>>();
        let head_at = 48 + table_len;
        let (head_len, head_hash) = stored(&mut prefix, head_at)?;
        let chunks_at = (head_at + 40)
            .checked_add(head_len)
            .filter(|&a| a <= source.len())
            .ok_or("truncated part: the index is damaged")?;
        Ok(Sieve {
            opaque,
            chunk_words,
            chunks: vec![None; hashes.len()],
            hashes,
            source,
            prefix,
            table_blake3,
            head_at,
            head_len,
            head_hash,
            chunks_at,
        })
    }

    /// Chunk `c`, read and checked once.
    fn chunk(&mut self, c: usize) -> Result<&[u64], String> {
        if self.chunks[c].is_none() {
            let bytes = self.chunk_words * 8;
            let b = self.source.read(self.chunks_at + c as u64 * bytes, bytes)?;
            if blake3::hash(&b).as_bytes() != &self.hashes[c] {
                return Err("checksum mismatch: the index is damaged".into());
            }
            self.chunks[c] = Some(
                b.chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().expect("eight bytes")))
                    .collect(),
            );
        }
        Ok(self.chunks[c].as_deref().unwrap_or_default())
    }

    /// Whether the part may hold `key` (false: it does not).
    ///
    /// # Errors
    /// The chunk of `key` damaged.
    pub fn may_hold(&mut self, key: u64) -> Result<bool, String> {
        let (c, bits) = sieve_bits(key, self.hashes.len() as u64, self.chunk_words);
        let words = self.chunk(to_usize(c)?)?;
        Ok(bits
            .into_iter()
            .all(|bit| words[(bit / 64) as usize] & (1 << (bit % 64)) != 0))
    }

    /// The part, its head read and checked; `head_blake3`: the manifest's checksum of it.
    ///
    /// # Errors
    /// As [`PartFile::open`].
    pub fn into_part(self, head_blake3: Option<&str>) -> Result<PartFile, String> {
        PartFile::new(self, head_blake3)
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
                    records: 40,
                    min_ts: 5,
                    max_ts: 9,
                    end: 3900,
                },
                Block {
                    offset: 4000,
                    first: 40,
                    records: 1,
                    min_ts: 9,
                    max_ts: 9,
                    end: 4100,
                },
            ],
            samples: vec![
                (0..40u32.div_ceil(SAMPLE)).map(|s| s * 100).collect(),
                vec![0],
            ],
            keys: vec![keys::port(80), keys::proto(6), keys::OPAQUE],
            starts: vec![0, 2, 3, 4],
            postings: vec![
                (0, Hits::Records(vec![1, 7, 39])),
                (1, Hits::Block),
                (1, Hits::Block),
                (0, Hits::Records(vec![3])),
            ],
        }
    }

    #[test]
    fn a_part_reads_back_as_written_whole_or_a_page_at_a_time() {
        let p = sample();
        let bytes = p.encode();
        let back = Part::decode(&bytes).unwrap();
        assert_eq!(back, p);
        let mut file = PartFile::from_bytes(bytes, None).unwrap();
        assert_eq!(
            file.postings(keys::port(80)).unwrap(),
            p.postings_of(keys::port(80))
        );
        assert_eq!(
            file.postings(keys::proto(6)).unwrap(),
            vec![(1, Hits::Block)]
        );
        assert!(file.postings(keys::port(81)).unwrap().is_empty());
        assert!(file.postings(0).unwrap().is_empty());
    }

    #[test]
    fn many_keys_make_many_pages_each_found() {
        let mut p = sample();
        p.keys = (0..5000u64).map(|i| keys::port(i as u16)).collect();
        p.starts = (0..=5000).collect();
        p.postings = (0..5000u16)
            .map(|i| (0, Hits::Records(vec![i % 40])))
            .collect();
        let mut file = PartFile::from_bytes(p.encode(), None).unwrap();
        assert!(file.pages.len() > 1);
        for i in (0..5000u16).step_by(97) {
            assert_eq!(
                file.postings(keys::port(i)).unwrap(),
                vec![(0, Hits::Records(vec![i % 40]))]
            );
        }
        assert_eq!(Part::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn a_sieve_in_chunks_holds_every_key_and_few_others() {
        // 50,000 keys: 16 chunks of 4 KiB.
        let mut p = sample();
        p.keys = (0..50_000u64).map(|i| keys::port(i as u16) + i).collect();
        p.starts = (0..=50_000).collect();
        p.postings = vec![(0, Hits::Block); 50_000];
        let bytes = p.encode();
        let mut sieve = Sieve::of_source(Source::Bytes(bytes.clone())).unwrap();
        assert_eq!(sieve.hashes.len(), 16);
        assert!(!sieve.opaque);
        for &k in &p.keys {
            assert!(sieve.may_hold(k).unwrap(), "{k:#x}");
        }
        let others = (0..20_000u64)
            .filter(|i| sieve.may_hold(keys::proto(6) + i).unwrap())
            .count();
        assert!(others < 400, "{others} of 20,000 absent keys pass");
        // A query reads only the chunks of the keys it asks.
        let mut one = Sieve::of_source(Source::Bytes(bytes.clone())).unwrap();
        one.may_hold(p.keys[7]).unwrap();
        assert_eq!(one.chunks.iter().filter(|c| c.is_some()).count(), 1);
        // A chunk's damage is found when it is read.
        let chunks_at = usize::try_from(sieve.chunks_at).unwrap();
        let mut b = bytes;
        b[chunks_at + 5] ^= 1;
        let mut damaged = Sieve::of_source(Source::Bytes(b)).unwrap();
        let first = (0..50_000u64)
            .map(|i| keys::port(i as u16) + i)
            .find(|&k| sieve_bits(k, 16, 512).0 == 0)
            .unwrap();
        assert!(damaged.may_hold(first).unwrap_err().contains("damaged"));
    }

    #[test]
    fn postings_meet_and_join_record_by_record() {
        let a = vec![(0, Hits::Records(vec![1, 5])), (2, Hits::Block)];
        let b = vec![
            (0, Hits::Records(vec![5, 6])),
            (1, Hits::Block),
            (2, Hits::Records(vec![4])),
        ];
        assert_eq!(
            intersect(&a, &b),
            vec![(0, Hits::Records(vec![5])), (2, Hits::Records(vec![4]))]
        );
        assert_eq!(
            union(a.clone(), b),
            vec![
                (0, Hits::Records(vec![1, 5, 6])),
                (1, Hits::Block),
                (2, Hits::Block)
            ]
        );
        assert!(intersect(&a, &vec![(0, Hits::Records(vec![2]))]).is_empty());
    }

    #[test]
    fn a_damaged_part_is_refused_whatever_byte_is_wrong() {
        let bytes = sample().encode();
        let read_all = |b: &[u8]| -> Result<(), String> {
            let mut f = PartFile::from_bytes(b.to_vec(), None)?;
            for k in [keys::port(80), keys::proto(6), keys::OPAQUE] {
                f.postings(k)?;
            }
            Part::decode(b).map(|_| ())
        };
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(read_all(&b).is_err(), "byte {i} flipped");
        }
        for n in 0..bytes.len() {
            assert!(read_all(&bytes[..n]).is_err(), "cut at {n}");
        }
        let other = PartFile::from_bytes(bytes.clone(), None)
            .unwrap()
            .head_blake3;
        assert!(PartFile::from_bytes(bytes.clone(), Some(&other)).is_ok());
        assert!(PartFile::from_bytes(bytes, Some(&"0".repeat(64))).is_err());
    }
}
