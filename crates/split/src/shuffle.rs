//! `split --by stream` over many machines, with the outputs of one run on one machine, byte for
//! byte (issue 27).
//!
//! - **Map** (one task per shard of the inputs, in the single run's order): each packet goes to
//!   the partition of its address pair, [`route`]. Everything the assigner keeps for a
//!   conversation (stream numbers, a reused tuple's new SYN, the first fragment of a datagram
//!   and its later fragments, the ICMP errors `--icmp-with-flow` puts with their flow) is keyed
//!   by one address pair, so each conversation's packets all reach one partition. What moves
//!   is the packet's place (file, record, byte offset: 20 bytes), never its bytes, in one
//!   file per map task ([`write_parts`]).
//! - **Reduce** (one task per partition): [`reduce`] reads the partition's packets from the
//!   inputs in the single run's order and runs the unchanged assigner and output writer over
//!   them, logging what it numbers and where ([`Numbered`]).
//! - **Finish**: [`renumber`] ranks what every partition numbered by where the single run
//!   meets it, which gives each stream, pair and output its single-run number; the files are
//!   then named and placed as the single run places them.
//!
//! What a partition cannot decide alone is refused, never guessed ([`NotExact`]): a TCP
//! conversation carried by tunnels between several address pairs, or a fragmented ICMP error
//! that `--icmp-with-flow` would route by the packet it quotes.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracekit_capture::{Capture, Format, Skip};
use tracekit_wire::{TransportKind, dissect};

use crate::assign::{Assigner, ConvKey, KeyOptions, LOOKAHEAD_PACKETS, Numbered, OutputKey};
use crate::mode::Mode;
use crate::outputs::{OutputFormat, OutputSet, OutputStats, Source};

/// Names the partition function: a plan records it, and a change of [`route`] changes it.
pub const PARTITION_HASH: &str = "tracekit-split-pair-fnv1a64-v1";

/// Where one packet stands in the single run: its file (in the run's order) and its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub file: u32,
    pub record: u64,
}

/// A packet a map task sends to a partition: its place, and where its record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub file: u32,
    pub record: u64,
    pub offset: u64,
}

/// Why a split cannot be cut into partitions and give the single run's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct NotExact(pub String);

/// The partition (of `partitions`) of a packet, from the address pair the assigner keys it by.
/// Frames without IP all go to partition 0.
pub fn route(link: u16, data: &[u8], opts: KeyOptions, partitions: u32) -> Result<u32, NotExact> {
    let layers = dissect(link, data);
    let ip = if opts.inner {
        layers.inner_ip()
    } else {
        layers.outer_ip()
    };
    let Some(ip) = ip else { return Ok(0) };
    let is_icmp = matches!(
        ip.transport.map(|t| t.kind),
        Some(TransportKind::Icmp | TransportKind::Icmpv6)
    );
    // An ICMP error that `--icmp-with-flow` puts with the TCP/UDP flow it quotes goes where
    // that flow goes: the quoted pair is the flow's.
    let quoted = layers.quoted.filter(|q| {
        opts.icmp_with_flow
            && is_icmp
            && q.transport.is_some_and(|t| {
                matches!(t.kind, TransportKind::Tcp | TransportKind::Udp) && t.ports(data).is_some()
            })
    });
    let (a, b) = match quoted {
        Some(q) => {
            if ip.fragment.is_some() {
                return Err(NotExact(
                    "a fragmented ICMP error, which --icmp-with-flow puts with the flow it quotes, while its later fragments carry no quote".into(),
                ));
            }
            (q.src(data), q.dst(data))
        }
        None => (ip.src(data), ip.dst(data)),
    };
    Ok(pair_partition(a, b, partitions))
}

/// FNV-1a (64 bits) over the lower address then the higher one (4 or 16 bytes, after a
/// version byte), reduced modulo `partitions`: fixed, with no per-process seed, so every
/// machine and every run agrees. Written here rather than taken from a hashing crate because
/// its result is part of the plan format: it must never change under us.
#[must_use]
pub fn pair_partition(a: IpAddr, b: IpAddr, partitions: u32) -> u32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |byte: u8| {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for addr in [lo, hi] {
        match addr {
            IpAddr::V4(v4) => {
                eat(4);
                v4.octets().into_iter().for_each(&mut eat);
            }
            IpAddr::V6(v6) => {
                eat(6);
                v6.octets().into_iter().for_each(&mut eat);
            }
        }
    }
    (h % u64::from(partitions.max(1))) as u32
}

const PARTS_MAGIC: &[u8; 8] = b"TKPARTS1";

/// Bytes of one packet's place in a parts file.
const LOCATED_LEN: usize = 20;

/// Writes what a map task sends every partition, as one file: a magic, the partition count
/// P (u64), P + 1 byte offsets (u64) where each partition's list starts (the last: the file's
/// length), then the lists, (file u32, record u64, offset u64) per packet, all little-endian.
/// One file per map task, whatever the partition count, and a reduce task reads only its
/// list.
pub fn write_parts(out: &mut impl Write, parts: &[Vec<Located>]) -> std::io::Result<()> {
    let head = 16 + 8 * (parts.len() as u64 + 1);
    out.write_all(PARTS_MAGIC)?;
    out.write_all(&(parts.len() as u64).to_le_bytes())?;
    let mut at = head;
    out.write_all(&at.to_le_bytes())?;
    for part in parts {
        at += (part.len() * LOCATED_LEN) as u64;
        out.write_all(&at.to_le_bytes())?;
    }
    let mut buf = Vec::with_capacity(1 << 16);
    for l in parts.iter().flatten() {
        buf.extend_from_slice(&l.file.to_le_bytes());
        buf.extend_from_slice(&l.record.to_le_bytes());
        buf.extend_from_slice(&l.offset.to_le_bytes());
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// Where map task `n` of a plan whose work directory is `work` keeps what it sends the
/// partitions.
#[must_use]
pub fn parts_file(work: &Path, n: usize) -> PathBuf {
    work.join(format!("map-{n:06}.parts"))
}

/// Writes `parts` ([`write_parts`]) to `target` under a temporary name, then renames it: a
/// repeated map task writes the same file.
///
/// # Errors
/// The file could not be written.
pub fn commit_parts(target: &Path, parts: &[Vec<Located>]) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("writing {}: {e}", target.display());
    let mut out =
        tracekit_capture::output::AtomicFile::create(target, &[]).map_err(|e| failed(&e))?;
    let mut w = std::io::BufWriter::new(&mut out);
    write_parts(&mut w, parts)
        .and_then(|()| w.flush())
        .map_err(|e| failed(&e))?;
    drop(w);
    out.commit(false).map_err(|e| failed(&e))?;
    Ok(())
}

/// Reads partition `p`'s list from a file [`write_parts`] wrote; a file of another kind or
/// length is an error.
pub fn read_part(path: &Path, p: u32) -> Result<Vec<Located>, String> {
    use std::io::{Seek, SeekFrom};
    let damaged = || format!("{}: not a complete map task's parts file", path.display());
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = [0u8; 16];
    f.read_exact(&mut head).map_err(|_| damaged())?;
    if &head[..8] != PARTS_MAGIC {
        return Err(damaged());
    }
    let count = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    // The count is checked against the file before it is used (garbage must not overflow).
    let table_end = count
        .checked_add(1)
        .and_then(|n| n.checked_mul(8))
        .and_then(|n| n.checked_add(16));
    if u64::from(p) >= count || table_end.is_none_or(|end| end > len) {
        return Err(damaged());
    }
    let mut offsets = [0u8; 16];
    f.seek(SeekFrom::Start(16 + 8 * u64::from(p))).map_err(io)?;
    f.read_exact(&mut offsets).map_err(|_| damaged())?;
    let (from, to) = (
        u64::from_le_bytes(offsets[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(offsets[8..].try_into().expect("8 bytes")),
    );
    let mut last = [0u8; 8];
    f.seek(SeekFrom::Start(16 + 8 * count)).map_err(io)?;
    f.read_exact(&mut last).map_err(|_| damaged())?;
    if u64::from_le_bytes(last) != len || from > to || to > len || (to - from) % 20 != 0 {
        return Err(damaged());
    }
    let mut body = vec![0u8; usize::try_from(to - from).map_err(|_| damaged())?];
    f.seek(SeekFrom::Start(from)).map_err(io)?;
    f.read_exact(&mut body).map_err(|_| damaged())?;
    Ok(body
        .chunks_exact(LOCATED_LEN)
        .map(|c| Located {
            file: u32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
            record: u64::from_le_bytes(c[4..12].try_into().expect("8 bytes")),
            offset: u64::from_le_bytes(c[12..20].try_into().expect("8 bytes")),
        })
        .collect())
}

/// A reason packets were skipped: how many, and the first place (in the single run's order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub reason: String,
    pub count: u64,
    pub first: String,
    pub first_at: Position,
}

/// Adds one skipped packet to `list`.
pub fn skip(list: &mut Vec<Skipped>, reason: String, at: Position, place: impl FnOnce() -> String) {
    match list.iter_mut().find(|s| s.reason == reason) {
        Some(s) => {
            s.count += 1;
            if at < s.first_at {
                s.first_at = at;
                s.first = place();
            }
        }
        None => list.push(Skipped {
            reason,
            count: 1,
            first: place(),
            first_at: at,
        }),
    }
}

/// What one partition's reduce did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reduced {
    /// What the assigner numbered, where, in order.
    pub numbered: Vec<(Position, Numbered)>,
    /// Every output the assigner made, by its number here.
    pub outputs: Vec<OutputKey>,
    /// The outputs written: number here, file name in `dir`, what it holds.
    pub written: Vec<(u32, String, OutputStats)>,
    pub skipped: Vec<Skipped>,
    pub unmatched_fragments: u64,
}

/// Runs the single run's assigner and writer over one partition's packets (`located`, in the
/// single run's order) of `inputs`, writing the outputs into the new directory `dir` under
/// names of their own; [`renumber`] then names them.
pub fn reduce(
    inputs: &[PathBuf],
    located: &[Located],
    keys: KeyOptions,
    format: OutputFormat,
    dir: &Path,
) -> Result<Reduced, String> {
    let (by_file, captures) = open_partition(inputs, located)?;
    let sources: Vec<&[u8]> = captures.iter().map(Capture::data).collect();
    let mut outputs = OutputSet::new(dir, format, 1, 64 << 20).map_err(|e| e.to_string())?;
    let mut assigner = Assigner::new(Mode::Stream, keys);
    assigner.record_numbering();
    let mut numbered = Vec::new();
    let mut skipped = Vec::new();
    for (i, ((file, mine), capture)) in by_file.iter().zip(&captures).enumerate() {
        let source = Source {
            index: i as u32,
            bytes: capture.data(),
        };
        let is_mine = |record: u64| is_mine(mine, record);
        let mut walk = Mine::new(capture, mine);
        let mut global: Vec<u32> = Vec::new();
        while let Some(r) = walk.next_mine()? {
            let records = &walk.records;
            while global.len() <= r.interface as usize {
                let iface = &records.interfaces()[global.len()];
                global.push(outputs.add_interface(iface));
            }
            let (encoded, header) = outputs.sizes(&r);
            let now = r.index;
            let targets =
                assigner.assign_with(r.link.0, r.data, r.ts.0, encoded, header, &mut |visit| {
                    // The single run looks at the next LOOKAHEAD_PACKETS records of the file;
                    // a first fragment it can find there is in this partition.
                    for next in records.clone().map_while(Result::ok) {
                        if next.index > now + LOOKAHEAD_PACKETS as u64 {
                            break;
                        }
                        if is_mine(next.index) && visit(next.link.0, next.data, next.ts.0) {
                            break;
                        }
                    }
                });
            let at = Position {
                file: *file,
                record: r.index,
            };
            numbered.extend(assigner.take_numbered().into_iter().map(|n| (at, n)));
            for out in std::iter::once(targets.first).chain(targets.second) {
                outputs.ensure(out, || format!("o{out:08}"));
                match outputs.write(out, &r, global[r.interface as usize], source) {
                    Ok(false) => {}
                    Ok(true) => outputs.flush(&sources).map_err(|e| e.to_string())?,
                    Err(e) => skip(&mut skipped, e.to_string(), at, || {
                        format!(
                            "{} record {} at byte offset {}",
                            capture.path().display(),
                            r.index,
                            r.offset
                        )
                    }),
                }
            }
        }
    }
    let written = outputs
        .finish(&sources, inputs)
        .map_err(|e| e.to_string())?;
    Ok(Reduced {
        numbered,
        outputs: assigner.outputs().to_vec(),
        written,
        skipped,
        unmatched_fragments: assigner.unmatched_fragments,
    })
}

/// A partition's packets grouped by file (in the run's order), and those files opened.
pub type Partition<'l> = (Vec<(u32, &'l [Located])>, Vec<Capture>);

/// Groups a partition's packets by file and opens those files (`inputs`: the plan's, in the
/// run's order).
pub fn open_partition<'l>(
    inputs: &[PathBuf],
    located: &'l [Located],
) -> Result<Partition<'l>, String> {
    let mut by_file: Vec<(u32, &[Located])> = Vec::new();
    for run in located.chunk_by(|a, b| a.file == b.file) {
        if run.windows(2).any(|w| w[0].record >= w[1].record)
            || by_file.last().is_some_and(|(f, _)| *f >= run[0].file)
        {
            return Err("the partition's packets are not in the run's order".into());
        }
        by_file.push((run[0].file, run));
    }
    let mut captures = Vec::with_capacity(by_file.len());
    for (file, _) in &by_file {
        let path = inputs
            .get(*file as usize)
            .ok_or_else(|| format!("input {file} is not in the plan"))?;
        captures.push(Capture::open(path).map_err(|e| e.to_string())?);
    }
    Ok((by_file, captures))
}

/// Whether record `record` of a file is one of `mine` (that file's, in order).
#[must_use]
pub fn is_mine(mine: &[Located], record: u64) -> bool {
    mine.binary_search_by_key(&record, |l| l.record).is_ok()
}

/// A walk over one file that yields a partition's packets of it, in order: jumping from one to
/// the next in a pcap file, reading past the others in a pcapng file (whose interface blocks
/// may stand anywhere between packets).
#[derive(Debug)]
pub struct Mine<'c, 'l> {
    /// The walk itself (for a look ahead, or the interfaces met so far).
    pub records: tracekit_capture::Records<'c>,
    wanted: &'l [Located],
    left: usize,
    path: &'c Path,
}

impl<'c, 'l> Mine<'c, 'l> {
    #[must_use]
    pub fn new(capture: &'c Capture, mine: &'l [Located]) -> Self {
        Mine {
            records: match capture.format() {
                Format::Pcap(_) => capture.records_skipping(jumps(mine)),
                Format::Pcapng => capture.records(),
            },
            wanted: mine,
            left: mine.len(),
            path: capture.path(),
        }
    }

    /// The next of the partition's packets; an error when the file no longer holds them.
    pub fn next_mine(&mut self) -> Result<Option<tracekit_capture::Record<'c>>, String> {
        while self.left > 0 {
            let Some(Ok(r)) = self.records.next() else {
                return Err(format!(
                    "{}: {} packet(s) of the partition could not be read again: the file changed since the plan",
                    self.path.display(),
                    self.left
                ));
            };
            if is_mine(self.wanted, r.index) {
                self.left -= 1;
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

/// The jumps that take a pcap walk from one of `mine` to the next (records in order).
fn jumps(mine: &[Located]) -> Vec<Skip> {
    let mut out = Vec::new();
    let mut next = 0u64;
    for l in mine {
        if l.record != next {
            out.push(Skip {
                from: next,
                to_pos: Some(l.offset),
                to: l.record,
                walk: 0,
            });
        }
        next = l.record + 1;
    }
    out
}

/// Single-run numbers for what each partition numbered: per partition, its own number →
/// the single run's.
#[derive(Debug, Default)]
pub struct Renumbering {
    pub tcp: Vec<FxHashMap<u32, u32>>,
    pub udp: Vec<FxHashMap<u32, u32>>,
    pub pair: Vec<FxHashMap<u32, u32>>,
    pub output: Vec<FxHashMap<u32, u32>>,
}

/// Where something was numbered: the packet, then the order within the packet.
type At = (Position, u32);

/// Something a partition numbered: where, which partition, its number there.
type Met = (At, usize, u32);

/// Ranks what the partitions numbered (`logs[p]`: partition p's, in its order) the way one
/// assigner over every packet would have numbered it.
///
/// A conversation is numbered where it is first met. Its own packets all reach one partition,
/// but a tunnel's outer UDP conversation, or a TCP/UDP conversation quoted by an ICMP error
/// routed by its outer pair, may be met in others too: each partition that meets a tuple
/// first numbers it, and the earliest of these is the single run's number (the others are the
/// same conversation). New streams on a reused TCP tuple happen only where its packets are.
pub fn renumber(logs: &[Vec<(Position, Numbered)>]) -> Result<Renumbering, NotExact> {
    let n = logs.len();
    let mut ren = Renumbering {
        tcp: vec![FxHashMap::default(); n],
        udp: vec![FxHashMap::default(); n],
        pair: vec![FxHashMap::default(); n],
        output: vec![FxHashMap::default(); n],
    };
    // The first numbering of each tuple (where, partition, number), the later TCP ones, and
    // the partitions where a TCP conversation's own packets are.
    let mut first_tcp: FxHashMap<ConvKey, Vec<Met>> = FxHashMap::default();
    let mut first_udp: FxHashMap<ConvKey, Vec<Met>> = FxHashMap::default();
    let mut reused: Vec<Met> = Vec::new();
    let mut own: FxHashMap<ConvKey, usize> = FxHashMap::default();
    let mut pairs: Vec<Met> = Vec::new();
    let mut pair_home: FxHashMap<(IpAddr, IpAddr, u16), usize> = FxHashMap::default();
    let mut outputs: Vec<Met> = Vec::new();
    for (p, log) in logs.iter().enumerate() {
        let mut sub = 0u32;
        let mut last = None;
        for (at, what) in log {
            sub = if last == Some(*at) { sub + 1 } else { 0 };
            last = Some(*at);
            let here = (*at, sub);
            let mut owned = |key: &ConvKey| match own.insert(*key, p) {
                Some(q) if q != p => Err(NotExact(format!(
                    "TCP conversation {} is carried between more than one address pair (tunnels), so no one partition holds all of it",
                    key.flow
                ))),
                _ => Ok(()),
            };
            match what {
                Numbered::Tcp {
                    key,
                    stream,
                    fresh,
                    quoted,
                } => {
                    if !quoted {
                        owned(key)?;
                    }
                    if *fresh {
                        first_tcp.entry(*key).or_default().push((here, p, *stream));
                    } else {
                        reused.push((here, p, *stream));
                    }
                }
                Numbered::TcpOwn { key } => owned(key)?,
                Numbered::Udp { key, stream } => {
                    first_udp.entry(*key).or_default().push((here, p, *stream));
                }
                Numbered::Pair { key, id } => {
                    if pair_home.insert(*key, p).is_some_and(|q| q != p) {
                        return Err(NotExact(format!(
                            "the address pair {} <-> {} has packets in more than one partition",
                            key.0, key.1
                        )));
                    }
                    pairs.push((here, p, *id));
                }
                Numbered::Output { out } => outputs.push((here, p, *out)),
            }
        }
    }
    // TCP: the earliest first numbering of each tuple, and every new stream on a reused one.
    let mut tcp: Vec<(At, usize, u32, Option<ConvKey>)> = reused
        .into_iter()
        .map(|(at, p, s)| (at, p, s, None))
        .collect();
    for (key, firsts) in &first_tcp {
        let &(at, p, s) = firsts.iter().min_by_key(|f| f.0).expect("not empty");
        tcp.push((at, p, s, Some(*key)));
    }
    tcp.sort_unstable_by_key(|t| t.0);
    for (global, (_, p, s, key)) in tcp.into_iter().enumerate() {
        let global = global as u32;
        ren.tcp[p].insert(s, global);
        // The other partitions that met the tuple first met this same conversation.
        for &(_, q, t) in key.map(|k| &first_tcp[&k]).into_iter().flatten() {
            ren.tcp[q].insert(t, global);
        }
    }
    let mut udp: Vec<(At, &Vec<Met>)> = first_udp
        .values()
        .map(|firsts| (firsts.iter().map(|f| f.0).min().expect("not empty"), firsts))
        .collect();
    udp.sort_unstable_by_key(|u| u.0);
    for (global, (_, firsts)) in udp.into_iter().enumerate() {
        for &(_, p, s) in firsts {
            ren.udp[p].insert(s, global as u32);
        }
    }
    for (list, map) in [(pairs, &mut ren.pair), (outputs, &mut ren.output)] {
        let mut list = list;
        list.sort_unstable_by_key(|t| t.0);
        for (global, (_, p, local)) in list.into_iter().enumerate() {
            map[p].insert(local, global as u32);
        }
    }
    Ok(ren)
}

impl Renumbering {
    /// Partition `p`'s output key with the single run's numbers.
    #[must_use]
    pub fn key(&self, p: usize, key: &OutputKey) -> OutputKey {
        let number = |map: &FxHashMap<u32, u32>, n: &u32| map.get(n).copied().unwrap_or(*n);
        match key {
            OutputKey::Tcp { stream, flow } => OutputKey::Tcp {
                stream: number(&self.tcp[p], stream),
                flow: *flow,
            },
            OutputKey::Udp { stream, flow } => OutputKey::Udp {
                stream: number(&self.udp[p], stream),
                flow: *flow,
            },
            OutputKey::IpPair { id, lo, hi } => OutputKey::IpPair {
                id: number(&self.pair[p], id),
                lo: *lo,
                hi: *hi,
            },
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tracekit_wire::{Endpoint, FlowKey};

    const RAW: u16 = 101;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    /// An IPv4 header (no checksum needed here) before `payload`.
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, flags_frag: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0];
        p.extend((20 + payload.len() as u16).to_be_bytes());
        p.extend([0, 7]);
        p.extend(flags_frag.to_be_bytes());
        p.extend([64, proto, 0, 0]);
        p.extend(src);
        p.extend(dst);
        p.extend(payload);
        p
    }

    /// A port-unreachable error from `router` to `client`, quoting a UDP packet to `server`.
    fn icmp_error(router: [u8; 4], client: [u8; 4], server: [u8; 4], frag: u16) -> Vec<u8> {
        let udp = [0x9c, 0x40, 0x27, 0x0f, 0, 8, 0, 0];
        let quoted = ipv4(client, server, 17, 0, &udp);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(quoted);
        ipv4(router, client, 1, frag, &icmp)
    }

    const R: [u8; 4] = [203, 0, 113, 1];
    const C: [u8; 4] = [192, 0, 2, 1];
    const S: [u8; 4] = [198, 51, 100, 7];

    #[test]
    fn the_partition_of_a_pair_is_fixed_and_the_same_both_ways() {
        for n in [1, 2, 7, 1000] {
            assert_eq!(
                pair_partition(v4(C), v4(S), n),
                pair_partition(v4(S), v4(C), n)
            );
        }
        // Part of the plan format (PARTITION_HASH): these must never change (the values were
        // checked against an independent FNV-1a in Python).
        assert_eq!(pair_partition(v4(C), v4(S), 1000), 80);
        assert_eq!(pair_partition(v4(R), v4(C), 1000), 47);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(pair_partition(v6, v4(S), 1000), 952);
        assert_eq!(pair_partition(v4(C), v4(S), 0), 0, "no partitions: one");
    }

    #[test]
    fn icmp_errors_go_with_the_flow_they_quote_only_with_icmp_with_flow() {
        let n = 1000;
        let error = icmp_error(R, C, S, 0);
        let by_flow = KeyOptions {
            icmp_with_flow: true,
            ..KeyOptions::default()
        };
        assert_eq!(
            route(RAW, &error, KeyOptions::default(), n),
            Ok(pair_partition(v4(R), v4(C), n))
        );
        assert_eq!(
            route(RAW, &error, by_flow, n),
            Ok(pair_partition(v4(C), v4(S), n))
        );
        // Its later fragments carry no quote: no partition can hold the whole datagram.
        let first_fragment = icmp_error(R, C, S, 0x2000);
        assert!(route(RAW, &first_fragment, by_flow, n).is_err());
        assert!(route(RAW, &first_fragment, KeyOptions::default(), n).is_ok());
        assert_eq!(route(RAW, &[0x00, 0x01], by_flow, n), Ok(0), "not IP");
    }

    fn conv(port: u16, proto: u8) -> ConvKey {
        let end = |a, port| Endpoint { addr: v4(a), port };
        ConvKey {
            flow: FlowKey::new(proto, end(C, port), end(S, 443)).0,
            vlan: 0,
        }
    }

    fn at(record: u64) -> Position {
        Position { file: 0, record }
    }

    #[test]
    fn a_conversation_first_met_quoted_elsewhere_keeps_that_number() {
        let (k1, k2) = (conv(1000, 6), conv(2000, 6));
        let tcp = |key, stream, fresh, quoted| Numbered::Tcp {
            key,
            stream,
            fresh,
            quoted,
        };
        let logs = vec![
            // The conversation's own partition: its first packet, then a new SYN on the tuple.
            vec![
                (at(5), tcp(k1, 0, true, false)),
                (at(5), Numbered::Output { out: 0 }),
                (at(9), tcp(k1, 1, false, false)),
                (at(9), Numbered::Output { out: 1 }),
            ],
            // An ICMP error quoting it, earlier, routed by its own pair; another conversation.
            vec![
                (at(1), tcp(k1, 0, true, true)),
                (
                    at(1),
                    Numbered::Pair {
                        key: (v4(C), v4(R), 0),
                        id: 0,
                    },
                ),
                (at(1), Numbered::Output { out: 0 }),
                (at(3), tcp(k2, 1, true, false)),
                (at(3), Numbered::Output { out: 1 }),
            ],
        ];
        let ren = renumber(&logs).unwrap();
        assert_eq!(ren.tcp[0][&0], 0, "numbered where the error quoted it");
        assert_eq!(ren.tcp[1][&0], 0);
        assert_eq!(ren.tcp[1][&1], 1);
        assert_eq!(ren.tcp[0][&1], 2, "the reused tuple's new stream");
        assert_eq!(
            [
                ren.output[1][&0],
                ren.output[1][&1],
                ren.output[0][&0],
                ren.output[0][&1]
            ],
            [0, 1, 2, 3]
        );
        assert_eq!(ren.pair[1][&0], 0);
    }

    #[test]
    fn a_udp_conversation_met_in_several_partitions_is_one_stream() {
        let k = conv(53, 17);
        let other = conv(54, 17);
        let logs = vec![
            vec![(at(4), Numbered::Udp { key: k, stream: 0 })],
            vec![
                (at(2), Numbered::Udp { key: k, stream: 0 }),
                (
                    at(3),
                    Numbered::Udp {
                        key: other,
                        stream: 1,
                    },
                ),
            ],
        ];
        let ren = renumber(&logs).unwrap();
        assert_eq!((ren.udp[0][&0], ren.udp[1][&0], ren.udp[1][&1]), (0, 0, 1));
    }

    #[test]
    fn a_tcp_conversation_with_packets_in_two_partitions_is_refused() {
        let k = conv(1000, 6);
        let logs = vec![
            vec![(
                at(1),
                Numbered::Tcp {
                    key: k,
                    stream: 0,
                    fresh: true,
                    quoted: true,
                },
            )],
            vec![(
                at(2),
                Numbered::Tcp {
                    key: k,
                    stream: 0,
                    fresh: true,
                    quoted: false,
                },
            )],
        ];
        assert!(
            renumber(&logs).is_ok(),
            "quoted in one, its own in the other"
        );
        let mut logs = logs;
        logs[0].push((at(3), Numbered::TcpOwn { key: k }));
        let e = renumber(&logs).unwrap_err();
        assert!(e.0.contains("more than one address pair"), "{e}");
    }

    #[test]
    fn parts_are_read_back_as_written_and_a_cut_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.parts");
        let located = |n: u32| -> Vec<Located> {
            (0..n)
                .map(|i| Located {
                    file: i,
                    record: u64::from(i) * 3,
                    offset: 24 + u64::from(i) * 100,
                })
                .collect()
        };
        let parts = vec![located(5), Vec::new(), located(2)];
        let mut bytes = Vec::new();
        write_parts(&mut bytes, &parts).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        for (p, part) in parts.iter().enumerate() {
            assert_eq!(&read_part(&path, p as u32).unwrap(), part);
        }
        assert!(read_part(&path, 3).is_err(), "no such partition");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_part(&path, 0).unwrap_err().contains("not a complete"));
        let mut other = bytes.clone();
        other[7] = b'2';
        std::fs::write(&path, &other).unwrap();
        assert!(read_part(&path, 0).is_err(), "another version");
    }
}
