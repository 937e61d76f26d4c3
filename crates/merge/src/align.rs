//! Clock offset between two captures of the same traffic taken at different points.
//!
//! A packet seen at both points is found by what the path does not change: its transport
//! payload (also across a proxy that terminates TCP, since the application bytes are the same),
//! the random value of a TLS hello, the bytes of a TCP stream however the path cut them into
//! segments, the TCP timestamp option of a bare segment, the initial sequence number of a SYN
//! or SYN/ACK, the IPv4 identification with the protocol, length and flags, and — once
//! two flows are paired — the sequence numbers of bare TCP segments after removing each
//! direction's offset (what a sequence-number rewriting box adds). Never TTL, checksums,
//! addresses or ports, which routers, NATs and firewalls rewrite. Only signatures seen exactly
//! once in each capture count, and a pair of flows must agree (most of an A flow's matches
//! point at one B flow) for its matches to count.
//!
//! One-way delay is never negative. With `d = t_A − t_B` for a matched packet, and `off` the
//! offset to add to B's clock: a packet that went from A's point to B's has `t_A ≤ t_B + off`,
//! so `off ≥ d`; one that went the other way has `off ≤ d`. In each flow the direction with the
//! smaller `d` is the one from A to B. So every match bounds the offset, and the feasible
//! interval is `[max d over A→B, min d over B→A]`; its midpoint is the estimate.
//!
//! A stream block is dated by the segment that completed it: on the far side it cannot be
//! complete before its last byte passed the near side, so those bounds hold across a proxy
//! too. A bare segment, on the other hand, is only the same packet when the box in between
//! forwards segments one to one; a proxy makes its own acknowledgements, which can carry the
//! same numbers. So a flow's sequence-number matches are used only when none of them
//! contradicts the interval the other matches give.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde::Serialize;
use std::hash::{Hash, Hasher};
use tracekit_wire::tcp::{Tcp, TcpOption, flags};
use tracekit_wire::tls::TlsRecord;
use tracekit_wire::{IpLayer, Layers, TransportKind, dissect};

/// What a match rests on (in order of strength: a packet pair matched twice counts as the
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The transport payload (its first bytes and its length on the wire).
    Payload,
    /// The random value of a TLS ClientHello or ServerHello starting a TCP segment: also
    /// across a box that rewrites the hello's other fields (extensions, cipher list).
    TlsRandom,
    /// A block of a TCP stream (its bytes at the same offset from the ISN), dated by the
    /// segment that completed it: also across a proxy that cuts the stream differently.
    Stream,
    /// A TCP segment without payload: flags and the timestamp option's two values.
    TcpTimestamps,
    /// A SYN's initial sequence number (32 random bits), or a SYN/ACK's with the number it
    /// acknowledges: the only signature of a SYN scan or flood, whose SYNs carry no payload
    /// and often the same options, timestamps and IP IDs. Missing across a box that rewrites
    /// sequence numbers.
    Isn,
    /// A TCP segment without payload: flags, window, and sequence and acknowledgement numbers
    /// once each direction's offset is removed (in flows paired by the other kinds).
    TcpSequence,
    /// IPv4 identification, protocol, payload length and TCP flags.
    Ipv4Id,
}

impl Kind {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Payload => "payload",
            Kind::TlsRandom => "tls-random",
            Kind::Stream => "stream",
            Kind::TcpTimestamps => "tcp-timestamps",
            Kind::Isn => "isn",
            Kind::TcpSequence => "tcp-sequence",
            Kind::Ipv4Id => "ipv4-id",
        }
    }
    /// Strong kinds are unlikely to collide by chance; a weak one alone does not pair flows.
    fn strong(self) -> bool {
        !matches!(self, Kind::Ipv4Id | Kind::TcpSequence)
    }
}

/// Payload bytes hashed for a signature (with the length on the wire).
const PAYLOAD_PREFIX: usize = 64;
/// Stream blocks: their size, and how many per direction of a flow are hashed (the offset is
/// found near the start; this bounds the bytes hashed).
const BLOCK: u32 = 256;
const BLOCKS_PER_DIRECTION: u32 = 16;
/// Bare segments kept per direction of a TCP flow, for the same reason.
const BARE_PER_DIRECTION: u16 = 32;

/// One capture's signatures.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// Appended in packet order, sorted by signature before matching (a sorted vector takes
    /// half the memory of a hash map of millions of entries, and appending costs no cache
    /// miss per packet).
    entries: Vec<Entry>,
    sorted: bool,
    /// Per TCP flow hash and direction (lo → hi or not).
    halves: FxHashMap<(u64, bool), Half>,
    /// TCP segments without payload, for matching by sequence numbers.
    bare: Vec<Segment>,
    packets: u64,
    limit: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: Kind,
    sig: u64,
    ts: i64,
    flow: u64,
    /// (u32 keeps an entry at 40 bytes: a trace takes a few million packets at most.)
    frame: u32,
    /// TCP sequence number, for a payload signature of a TCP segment (see `tcp`).
    seq: u32,
    tcp: bool,
    /// The packet goes lo → hi in its flow.
    forward: bool,
}

impl Entry {
    fn key(&self) -> (Kind, u64) {
        (self.kind, self.sig)
    }
    /// (kind, signature, frame) as one number, in that order: the sort's key. (Compared as a
    /// tuple with the enum first, the sort took about 1,800 instructions an entry, more than
    /// taking the signatures; a `u128` compares in a few.)
    fn order(&self) -> u128 {
        u128::from(self.kind as u8) << 96 | u128::from(self.sig) << 32 | u128::from(self.frame)
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    flow: u64,
    ts: i64,
    frame: u32,
    seq: u32,
    ack: u32,
    window: u16,
    flags: u16,
    forward: bool,
}

/// One direction of a TCP flow: its ISN and the stream block being hashed.
#[derive(Debug, Default, Clone)]
struct Half {
    isn: Option<u32>,
    /// Stream offset of the next byte expected (0 is the byte after the SYN).
    next: u32,
    /// The bytes since the current block's start have all been seen.
    synced: bool,
    hash: StreamHash,
    /// Bare segments kept so far.
    bare: u16,
}

impl Half {
    /// Takes `bytes` at sequence number `seq`; `done(block index, hash)` for each block
    /// completed. Only new bytes in stream order count: a retransmission adds nothing, and
    /// after a gap hashing resumes at the next block boundary.
    fn take(&mut self, seq: u32, bytes: &[u8], mut done: impl FnMut(u32, u64)) {
        let Some(isn) = self.isn else { return };
        let start = seq.wrapping_sub(isn).wrapping_sub(1);
        let limit = BLOCK * BLOCKS_PER_DIRECTION;
        // (Bytes before the ISN wrap to a huge offset and stop here too.)
        if start >= limit {
            return;
        }
        let end = start
            .saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX))
            .min(limit);
        if end <= self.next {
            return;
        }
        if start > self.next {
            self.synced = false;
            self.hash = StreamHash::default();
        }
        let mut pos = start.max(self.next);
        while pos < end {
            let block_end = (pos / BLOCK + 1) * BLOCK;
            let to = end.min(block_end);
            if !self.synced && pos % BLOCK == 0 {
                self.synced = true;
            }
            if self.synced {
                self.hash
                    .feed(&bytes[(pos - start) as usize..(to - start) as usize]);
                if to == block_end {
                    done(pos / BLOCK, self.hash.h);
                    self.hash = StreamHash::default();
                }
            }
            pos = to;
        }
        self.next = end;
    }
}

/// A hash of stream bytes that does not depend on how they were cut: 8-byte words at
/// stream-aligned positions, FxHash's mixing step (hand-written: a general hasher's result
/// depends on the lengths of the slices it is given).
#[derive(Debug, Default, Clone, Copy)]
struct StreamHash {
    h: u64,
    word: u64,
    n: u32,
}

impl StreamHash {
    fn feed(&mut self, mut bytes: &[u8]) {
        while self.n != 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.byte(b);
            bytes = rest;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        for &b in words.remainder() {
            self.byte(b);
        }
    }
    fn byte(&mut self, b: u8) {
        self.word |= u64::from(b) << (8 * self.n);
        self.n += 1;
        if self.n == 8 {
            self.mix(self.word);
            self.word = 0;
            self.n = 0;
        }
    }
    fn mix(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Trace {
    /// Sorts the signatures for matching, once. [`estimate`] does it when needed; calling it
    /// where traces are built lets it run in parallel.
    pub fn finish(&mut self) {
        if !self.sorted {
            // In place (a stable sort would allocate); the frame keeps the order of equal
            // signatures deterministic.
            self.entries.sort_unstable_by_key(Entry::order);
            self.entries.shrink_to_fit();
            self.bare.shrink_to_fit();
            self.sorted = true;
        }
    }

    /// The signatures seen exactly once, in signature order.
    fn unique(&self) -> impl Iterator<Item = &Entry> {
        debug_assert!(self.sorted);
        self.entries
            .chunk_by(|x, y| x.key() == y.key())
            .filter(|run| run.len() == 1)
            .map(|run| &run[0])
    }

    /// The strong signatures seen once (kind and signature as one number), sorted: what
    /// pairing files by their content compares (`analyze --batch`).
    #[must_use]
    pub fn strong_keys(&mut self) -> Vec<u64> {
        self.finish();
        let mut keys: Vec<u64> = self
            .unique()
            .filter(|e| e.kind.strong())
            .map(|e| (e.kind as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ e.sig)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Signatures of at most `limit` packets are kept (the offset is found near the start).
    #[must_use]
    pub fn new(limit: u64) -> Self {
        Trace {
            limit,
            ..Trace::default()
        }
    }

    /// Packets taken so far.
    #[must_use]
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Whether the trace has taken all the packets it will.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.packets >= self.limit
    }

    /// Adds packet number `frame` (1-based) seen at `ts` nanoseconds.
    pub fn add(&mut self, frame: u64, ts: i64, link: u16, data: &[u8]) {
        if self.is_full() {
            return;
        }
        self.add_dissected(frame, ts, &dissect(link, data), data);
    }

    /// [`Trace::add`] for a packet the caller has dissected already.
    pub fn add_dissected(&mut self, frame: u64, ts: i64, layers: &Layers, data: &[u8]) {
        if self.is_full() {
            return;
        }
        let Ok(frame) = u32::try_from(frame) else {
            return;
        };
        self.packets += 1;
        // The innermost IP layer with a transport header: tunnels may differ between points.
        let Some(ip) = layers
            .ips()
            .iter()
            .rev()
            .find(|ip| ip.transport.is_some() && ip.is_first_fragment_or_whole())
        else {
            return;
        };
        let Some(t) = ip.transport else { return };
        let (key, forward) = ip.flow(data);
        let flow = hash_of(&key);
        let tcp = if t.kind == TransportKind::Tcp && t.complete {
            Tcp::new_checked(&data[t.header.range()]).ok()
        } else {
            None
        };
        let wire_payload = wire_payload(ip, data);
        let entry = |(kind, sig): (Kind, u64)| Entry {
            kind,
            sig,
            ts,
            flow,
            frame,
            seq: tcp.map_or(0, |t| t.seq()),
            tcp: tcp.is_some(),
            forward,
        };
        self.sorted = false;
        let Trace {
            entries,
            halves,
            bare,
            ..
        } = self;
        let mut insert = |sig: (Kind, u64)| entries.push(entry(sig));
        for sig in signatures(ip, data, tcp.as_ref(), wire_payload)
            .into_iter()
            .flatten()
        {
            insert(sig);
        }
        let Some(tcp) = tcp else { return };
        let f = tcp.flags() & 0x0fff;
        let half = halves.entry((flow, forward)).or_default();
        if f & flags::SYN != 0 {
            *half = Half {
                isn: Some(tcp.seq()),
                synced: true,
                ..Half::default()
            };
        }
        if wire_payload == 0 {
            if half.bare >= BARE_PER_DIRECTION {
                return;
            }
            half.bare += 1;
            bare.push(Segment {
                flow,
                ts,
                frame,
                seq: tcp.seq(),
                ack: tcp.ack(),
                window: tcp.window(),
                flags: f,
                forward,
            });
        } else {
            let captured = &data[t.payload.range()];
            let bytes = &captured[..captured.len().min(wire_payload)];
            let seq = tcp.seq().wrapping_add(u32::from(f & flags::SYN != 0));
            half.take(seq, bytes, |block, h| {
                insert((Kind::Stream, hash_of(&(block, h))));
            });
        }
    }
}

fn hash_of<T: Hash>(v: &T) -> u64 {
    let mut h = FxHasher::default();
    v.hash(&mut h);
    h.finish()
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// The transport payload length the IP header announces (not what was captured).
fn wire_payload(ip: &IpLayer, data: &[u8]) -> usize {
    let h = ip.header.start as usize;
    let announced = if ip.version == 4 {
        usize::from(be16(data, h + 2)).saturating_sub(ip.header.len())
    } else {
        (usize::from(be16(data, h + 4)) + 40).saturating_sub(ip.header.len())
    };
    let transport_header = ip.transport.map_or(0, |t| t.header.len());
    announced.saturating_sub(transport_header)
}

/// The signatures of one packet (up to one of each kind but the stream's).
fn signatures(
    ip: &IpLayer,
    data: &[u8],
    tcp: Option<&Tcp<&[u8]>>,
    wire_payload: usize,
) -> [Option<(Kind, u64)>; 4] {
    let mut out = [None; 4];
    let Some(t) = ip.transport else {
        return out;
    };
    let captured = &data[t.payload.range()];
    let tcp_flags = tcp.map_or(0, |t| t.flags() & 0x0fff);
    if wire_payload > 0 && t.complete {
        let prefix = &captured[..captured.len().min(PAYLOAD_PREFIX)];
        if prefix.len() == wire_payload.min(PAYLOAD_PREFIX) {
            out[0] = Some((
                Kind::Payload,
                hash_of(&(t.kind as u8, wire_payload, prefix)),
            ));
        }
        if tcp.is_some()
            && let Some(rec) = TlsRecord::sniff(captured)
            && let Some(random) = rec.random(captured)
        {
            out[3] = Some((Kind::TlsRandom, hash_of(&(rec.handshake_type, random))));
        }
    } else if let Some(tcp) = tcp {
        let ts = tcp.options().find_map(|o| match o {
            Ok(TcpOption::Timestamps { value, echo }) => Some((value, echo)),
            _ => None,
        });
        if let Some((value, echo)) = ts {
            out[1] = Some((Kind::TcpTimestamps, hash_of(&(tcp_flags, value, echo))));
        }
        // SYN and ACK only: a box that bleaches ECN clears ECE and CWR of a SYN.
        let syn = tcp_flags & (flags::SYN | flags::ACK);
        if syn & flags::SYN != 0 {
            let ack = if syn & flags::ACK != 0 { tcp.ack() } else { 0 };
            out[0] = Some((Kind::Isn, hash_of(&(syn, tcp.seq(), ack))));
        }
    }
    if ip.version == 4 {
        let id = be16(data, ip.header.start as usize + 4);
        if id != 0 {
            out[2] = Some((
                Kind::Ipv4Id,
                hash_of(&(id, ip.protocol.0, wire_payload, tcp_flags)),
            ));
        }
    }
    out
}

/// A packet seen in both captures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Match {
    pub kind: Kind,
    pub a_frame: u64,
    pub b_frame: u64,
    pub a_ts: i64,
    pub b_ts: i64,
    /// It went from A's capture point to B's (`None`: its flow was seen one way only).
    pub a_to_b: Option<bool>,
}

impl Match {
    /// `t_A − t_B`.
    #[must_use]
    pub fn delta(&self) -> i64 {
        self.a_ts.saturating_sub(self.b_ts)
    }
}

/// The estimated offset of B's clock relative to A's.
#[derive(Debug, Clone, Serialize)]
pub struct Alignment {
    /// Nanoseconds to add to B's timestamps to put them on A's clock.
    pub offset: i64,
    /// The feasible interval for `offset`, when packets were matched in both directions.
    pub lo: Option<i64>,
    pub hi: Option<i64>,
    /// Matched packets used, by kind.
    pub matches: usize,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Matches left out because they contradicted the others (mismatches or jitter).
    pub outliers: usize,
    /// Pairs of flows (A, B) the matches come from.
    pub flows: usize,
    /// When more packets matched than [`MATCHES_USED`]: how many, of which a sample of the
    /// flows was used.
    pub sampled_from: Option<usize>,
    /// The matched packets, A's order.
    pub pairs: Vec<Match>,
}

impl Alignment {
    /// Width of the feasible interval (the offset's uncertainty), when known.
    #[must_use]
    pub fn width(&self) -> Option<i64> {
        Some(self.hi?.saturating_sub(self.lo?))
    }
}

/// Estimates the offset of `b`'s clock relative to `a`'s; `None` when nothing matches.
/// (Mutable only to sort each trace's signatures, once.)
#[must_use]
pub fn estimate(a: &mut Trace, b: &mut Trace) -> Option<Alignment> {
    estimate_using(a, b, MATCHES_USED)
}

/// [`estimate`] with a sample of the flows past `cap` matches.
fn estimate_using(a: &mut Trace, b: &mut Trace, cap: usize) -> Option<Alignment> {
    a.finish();
    b.finish();
    let (pairs, flows, sampled_from) = matched(a, b, cap)?;
    let mut by_kind = BTreeMap::new();
    for m in &pairs {
        *by_kind.entry(m.kind.name()).or_insert(0) += 1;
    }
    let (offset, lo, hi, outliers) = bounds(pairs.iter());
    Some(Alignment {
        offset,
        lo,
        hi,
        matches: pairs.len(),
        by_kind,
        outliers,
        flows,
        sampled_from,
        pairs,
    })
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// A match with the flows it belongs to.
#[derive(Debug, Clone, Copy)]
struct Raw {
    m: Match,
    /// A's flow and direction, B's flow and direction.
    fa: u64,
    fwd_a: bool,
    fb: u64,
    fwd_b: bool,
    /// TCP sequence numbers on both sides (payload matches of TCP segments).
    seqs: Option<(u32, u32)>,
}

/// Signature matches past which only a sample of the flows is used. The offset is one number:
/// on two captures of a SYN scan (a million flows, each matched by its SYN), the per-flow
/// tables below took six seconds, each match a cache miss in several of them.
pub const MATCHES_USED: usize = 1 << 18;

/// The packets seen in both traces, directions told, in A's order; the number of flow pairs;
/// and the matches found when only a sample of them was used.
fn matched(a: &Trace, b: &Trace, cap: usize) -> Option<(Vec<Match>, usize, Option<usize>)> {
    // Signatures seen once on each side (a merge of the two sorted lists).
    let mut raw: Vec<Raw> = Vec::new();
    let mut bs = b.unique().peekable();
    for ea in a.unique() {
        while bs.next_if(|eb| eb.key() < ea.key()).is_some() {}
        let Some(eb) = bs.next_if(|eb| eb.key() == ea.key()) else {
            continue;
        };
        raw.push(Raw {
            m: Match {
                kind: ea.kind,
                a_frame: ea.frame.into(),
                b_frame: eb.frame.into(),
                a_ts: ea.ts,
                b_ts: eb.ts,
                a_to_b: None,
            },
            fa: ea.flow,
            fwd_a: ea.forward,
            fb: eb.flow,
            fwd_b: eb.forward,
            seqs: (ea.kind == Kind::Payload && ea.tcp && eb.tcp).then_some((ea.seq, eb.seq)),
        });
    }
    // Past `cap` matches, only the A flows whose hash falls in one class of `stride`, each
    // with all of its matches (the pairing below judges whole flows).
    let found = raw.len();
    let sampled_from = (found > cap).then(|| {
        let stride = found.div_ceil(cap) as u64;
        // (The flow hash's high bits, mixed: FxHash's low bits are its weakest.)
        raw.retain(|r| (r.fa.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % stride == 0);
        found
    });
    // Flow pairs: an A flow's matches must mostly point at one B flow, and a pair must rest
    // on a strong signature or on at least three weak ones.
    let mut votes: FxHashMap<(u64, u64), (usize, bool)> = FxHashMap::default();
    for r in &raw {
        let v = votes.entry((r.fa, r.fb)).or_default();
        v.0 += 1;
        v.1 |= r.m.kind.strong();
    }
    let mut best: FxHashMap<u64, (u64, usize)> = FxHashMap::default();
    for (&(fa, fb), &(n, strong)) in &votes {
        if !strong && n < 3 {
            continue;
        }
        let e = best.entry(fa).or_insert((fb, 0));
        if n > e.1 || (n == e.1 && fb < e.0) {
            *e = (fb, n);
        }
    }
    raw.retain(|r| best.get(&r.fa).is_some_and(|&(b, _)| b == r.fb));
    if raw.is_empty() {
        return None;
    }
    let flows = best.len();
    raw.extend(by_sequence(a, b, &raw));
    // One match per packet pair, the strongest kind.
    raw.sort_unstable_by_key(|r| (r.m.a_frame, r.m.b_frame, r.m.kind));
    raw.dedup_by_key(|r| (r.m.a_frame, r.m.b_frame));
    // Direction: in each A flow, the side with the smaller median t_A − t_B goes A → B; told
    // from the other kinds when they go both ways (sequence-number matches are not trusted
    // yet), else from all.
    let mut per_flow: FxHashMap<u64, [[Vec<i64>; 2]; 2]> = FxHashMap::default();
    for r in &raw {
        let e = per_flow.entry(r.fa).or_default();
        let d = usize::from(r.fwd_a);
        e[1][d].push(r.m.delta());
        if r.m.kind != Kind::TcpSequence {
            e[0][d].push(r.m.delta());
        }
    }
    let mut forward_is_a_to_b: FxHashMap<u64, bool> = FxHashMap::default();
    for (flow, [other, all]) in &mut per_flow {
        for [back, fwd] in [other, all] {
            if !back.is_empty() && !fwd.is_empty() {
                forward_is_a_to_b.insert(*flow, median(fwd) < median(back));
                break;
            }
        }
    }
    for r in &mut raw {
        r.m.a_to_b = forward_is_a_to_b.get(&r.fa).map(|&f| f == r.fwd_a);
    }
    // A flow's sequence-number matches count only if none contradicts the other matches.
    let (lo, hi) = limits(
        raw.iter()
            .filter(|r| r.m.kind != Kind::TcpSequence)
            .map(|r| &r.m),
    );
    let contradicted: FxHashSet<u64> = raw
        .iter()
        .filter(|r| {
            r.m.kind == Kind::TcpSequence
                && match r.m.a_to_b {
                    Some(true) => hi.is_some_and(|hi| r.m.delta() > hi),
                    Some(false) => lo.is_some_and(|lo| r.m.delta() < lo),
                    None => false,
                }
        })
        .map(|r| r.fa)
        .collect();
    raw.retain(|r| r.m.kind != Kind::TcpSequence || !contradicted.contains(&r.fa));
    let mut pairs: Vec<Match> = raw.into_iter().map(|r| r.m).collect();
    pairs.sort_unstable_by_key(|m| (m.a_frame, m.b_frame));
    Some((pairs, flows, sampled_from))
}

/// The bounds the matches give, each when they go that way (contradicting ones trimmed as
/// in [`bounds`] when they go both ways).
fn limits<'a>(pairs: impl Iterator<Item = &'a Match> + Clone) -> (Option<i64>, Option<i64>) {
    let down = pairs.clone().filter(|m| m.a_to_b == Some(true));
    let up = pairs.clone().filter(|m| m.a_to_b == Some(false));
    match (down.clone().next(), up.clone().next()) {
        (Some(_), Some(_)) => {
            let (_, lo, hi, _) = bounds(pairs);
            (lo, hi)
        }
        _ => (down.map(Match::delta).max(), up.map(Match::delta).min()),
    }
}

/// A bare segment in A's numbers: A flow, direction, flags, sequence and acknowledgement
/// numbers, window.
type SeqKey = (u64, bool, u16, u32, u32, u16);
/// B flow → (A flow, directions agree); `None` when several A flows claim it.
type BToA = FxHashMap<u64, Option<(u64, bool)>>;

/// B's paired flows (to A's flow, and whether their directions agree), and each paired
/// direction's sequence-number offset (B's minus A's, per A flow and direction): the most
/// common difference among its payload matches and its SYNs.
fn sequence_offsets(a: &Trace, b: &Trace, raw: &[Raw]) -> (BToA, FxHashMap<(u64, bool), u32>) {
    // Per flow pair: do A's and B's directions agree (lo → hi on both), by majority.
    let mut orient: FxHashMap<(u64, u64), i64> = FxHashMap::default();
    for r in raw {
        *orient.entry((r.fa, r.fb)).or_default() += if r.fwd_a == r.fwd_b { 1 } else { -1 };
    }
    let mut b_to_a = BToA::default();
    for (&(fa, fb), &votes) in &orient {
        if votes == 0 {
            continue;
        }
        b_to_a
            .entry(fb)
            .and_modify(|e| *e = None)
            .or_insert(Some((fa, votes > 0)));
    }
    // Offset candidates per (A flow, A direction): B's sequence number minus A's.
    let mut candidates: FxHashMap<(u64, bool), Vec<u32>> = FxHashMap::default();
    for r in raw {
        if let Some((sa, sb)) = r.seqs {
            candidates
                .entry((r.fa, r.fwd_a))
                .or_default()
                .push(sb.wrapping_sub(sa));
        }
    }
    for (&fb, &pair) in &b_to_a {
        let Some((fa, same)) = pair else { continue };
        for fwd_a in [false, true] {
            let isn_a = a.halves.get(&(fa, fwd_a)).and_then(|h| h.isn);
            let isn_b = b.halves.get(&(fb, fwd_a == same)).and_then(|h| h.isn);
            if let (Some(x), Some(y)) = (isn_a, isn_b) {
                candidates
                    .entry((fa, fwd_a))
                    .or_default()
                    .push(y.wrapping_sub(x));
            }
        }
    }
    let offsets: FxHashMap<(u64, bool), u32> = candidates
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            let mut best = (0, v[0]);
            for run in v.chunk_by(|x, y| x == y) {
                if run.len() > best.0 {
                    best = (run.len(), run[0]);
                }
            }
            (k, best.1)
        })
        .collect();
    (b_to_a, offsets)
}

/// Matches of bare TCP segments in the paired flows of `raw`: same flags and window, same
/// sequence and acknowledgement numbers once each direction's offset is removed.
fn by_sequence(a: &Trace, b: &Trace, raw: &[Raw]) -> Vec<Raw> {
    let (b_to_a, offsets) = sequence_offsets(a, b, raw);
    // A's bare segments of paired flows by their numbers; B's translated into A's numbers.
    let key_a = |s: &Segment| -> SeqKey {
        let ack = if s.flags & flags::ACK != 0 { s.ack } else { 0 };
        (s.flow, s.forward, s.flags, s.seq, ack, s.window)
    };
    let key_b = |s: &Segment| -> Option<SeqKey> {
        let (fa, same) = (*b_to_a.get(&s.flow)?)?;
        let fwd_a = s.forward == same;
        let seq = s.seq.wrapping_sub(*offsets.get(&(fa, fwd_a))?);
        let ack = if s.flags & flags::ACK != 0 {
            s.ack.wrapping_sub(*offsets.get(&(fa, !fwd_a))?)
        } else {
            0
        };
        Some((fa, fwd_a, s.flags, seq, ack, s.window))
    };
    let paired: FxHashSet<u64> = raw.iter().map(|r| r.fa).collect();
    let mut in_a: FxHashMap<SeqKey, (u32, &Segment)> = FxHashMap::default();
    for s in a.bare.iter().filter(|s| paired.contains(&s.flow)) {
        in_a.entry(key_a(s)).or_insert((0, s)).0 += 1;
    }
    let mut in_b: FxHashMap<SeqKey, (u32, &Segment)> = FxHashMap::default();
    for s in &b.bare {
        if let Some(k) = key_b(s)
            && in_a.contains_key(&k)
        {
            in_b.entry(k).or_insert((0, s)).0 += 1;
        }
    }
    let mut out = Vec::new();
    for (k, (n, sb)) in in_b {
        let (m, sa) = in_a[&k];
        if n != 1 || m != 1 {
            continue;
        }
        out.push(Raw {
            m: Match {
                kind: Kind::TcpSequence,
                a_frame: sa.frame.into(),
                b_frame: sb.frame.into(),
                a_ts: sa.ts,
                b_ts: sb.ts,
                a_to_b: None,
            },
            fa: sa.flow,
            fwd_a: sa.forward,
            fb: sb.flow,
            fwd_b: sb.forward,
            seqs: None,
        });
    }
    out
}

/// (estimate, feasible interval, matches left out as contradicting) from the matched packets.
fn bounds<'a>(
    pairs: impl Iterator<Item = &'a Match> + Clone,
) -> (i64, Option<i64>, Option<i64>, usize) {
    let mut down: Vec<i64> = pairs
        .clone()
        .filter(|m| m.a_to_b == Some(true))
        .map(Match::delta)
        .collect();
    let mut up: Vec<i64> = pairs
        .clone()
        .filter(|m| m.a_to_b == Some(false))
        .map(Match::delta)
        .collect();
    let mut outliers = 0;
    let (offset, lo, hi) = if down.is_empty() || up.is_empty() {
        // One way only: the delay cannot be told from the offset; take the median.
        let mut all: Vec<i64> = pairs.map(Match::delta).collect();
        (median(&mut all), None, None)
    } else {
        down.sort_unstable();
        up.sort_unstable();
        let mut all: Vec<i64> = down.iter().chain(&up).copied().collect();
        let center = median(&mut all);
        // Drop the most extreme contradicting matches, at most 5% of them.
        let budget = (down.len() + up.len()) / 20;
        while down.last() > up.first() && outliers < budget && down.len() > 1 && up.len() > 1 {
            let d = down[down.len() - 1].abs_diff(center);
            let u = up[0].abs_diff(center);
            if d >= u {
                down.pop();
            } else {
                up.remove(0);
            }
            outliers += 1;
        }
        let lo = *down.last().expect("not empty");
        let hi = up[0];
        (lo + (hi - lo) / 2, Some(lo), Some(hi))
    };
    (offset, lo, hi, outliers)
}

/// The offset estimated over one window of A's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowEstimate {
    /// Where the window starts, on A's clock (nanoseconds).
    pub from_ns: i64,
    /// The estimate over the matches whose A time falls in the window, as [`Alignment`]'s.
    pub offset_ns: i64,
    pub lo_ns: Option<i64>,
    pub hi_ns: Option<i64>,
    pub matches: usize,
}

/// The offset per window of `width` nanoseconds of A's time from `start`, over the windows
/// holding at least `min_matches` of `pairs`, in time order. (Clocks that drift have no single
/// offset: each window's is its own.)
#[must_use]
pub fn per_window(
    pairs: &[Match],
    start: i64,
    width: i64,
    min_matches: usize,
) -> Vec<WindowEstimate> {
    let width = width.max(1);
    let mut by_window: BTreeMap<i64, Vec<Match>> = BTreeMap::new();
    for m in pairs {
        let w = (m.a_ts.saturating_sub(start)).div_euclid(width);
        by_window.entry(w).or_default().push(*m);
    }
    by_window
        .into_iter()
        .filter(|(_, ms)| ms.len() >= min_matches.max(1))
        .map(|(w, ms)| {
            let (offset, lo, hi, _) = bounds(ms.iter());
            WindowEstimate {
                from_ns: start.saturating_add(w.saturating_mul(width)),
                offset_ns: offset,
                lo_ns: lo,
                hi_ns: hi,
                matches: ms.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_per_window_follows_a_clock_that_drifts() {
        // B's clock gains 1 ms a second; each second a packet each way, 0.1 ms of path.
        const MS: i64 = 1_000_000;
        let mut pairs = Vec::new();
        for s in 0..10i64 {
            let t = s * 1000 * MS;
            let off = -s * MS; // t_a − t_b
            for (k, a_to_b) in [(0, true), (1, false)] {
                let a_ts = t + k * 10 * MS;
                let path = if a_to_b { MS / 10 } else { -MS / 10 };
                pairs.push(Match {
                    kind: Kind::Payload,
                    a_frame: 0,
                    b_frame: 0,
                    a_ts,
                    b_ts: a_ts - off + path,
                    a_to_b: Some(a_to_b),
                });
            }
        }
        let w = per_window(&pairs, 0, 5000 * MS, 2);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].from_ns, w[1].from_ns), (0, 5000 * MS));
        assert_eq!(w[0].matches, 10);
        // Within a window the drift (4 ms) exceeds the path: the interval is empty (lo > hi)
        // and the estimate lies between the window's ends.
        assert!(w[0].offset_ns <= 0 && w[0].offset_ns >= -4 * MS, "{w:?}");
        assert!(
            w[1].offset_ns <= -5 * MS && w[1].offset_ns >= -9 * MS,
            "{w:?}"
        );
        // Too few matches: no window.
        assert!(per_window(&pairs, 0, 5000 * MS, 11).is_empty());
    }

    fn blocks_of(isn: u32, segments: &[(u32, &[u8])]) -> Vec<(u32, u64)> {
        let mut half = Half {
            isn: Some(isn),
            synced: true,
            ..Half::default()
        };
        let mut out = Vec::new();
        for &(offset, bytes) in segments {
            half.take(isn.wrapping_add(1).wrapping_add(offset), bytes, |i, h| {
                out.push((i, h));
            });
        }
        out
    }

    #[test]
    fn the_sort_key_orders_as_kind_signature_frame() {
        let kinds = [
            Kind::Payload,
            Kind::TlsRandom,
            Kind::Stream,
            Kind::TcpTimestamps,
            Kind::Isn,
            Kind::TcpSequence,
            Kind::Ipv4Id,
        ];
        let mut entries = Vec::new();
        for (i, &kind) in kinds.iter().rev().enumerate() {
            for sig in [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
                for frame in [0, 1, u32::MAX] {
                    entries.push(Entry {
                        kind,
                        sig: sig ^ i as u64,
                        ts: 0,
                        flow: 0,
                        frame,
                        seq: 0,
                        tcp: false,
                        forward: false,
                    });
                }
            }
        }
        let mut by_tuple = entries.clone();
        by_tuple.sort_by_key(|e| (e.kind, e.sig, e.frame));
        entries.sort_unstable_by_key(Entry::order);
        let keys = |v: &[Entry]| {
            v.iter()
                .map(|e| (e.kind, e.sig, e.frame))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&entries), keys(&by_tuple));
    }

    #[test]
    fn stream_blocks_do_not_depend_on_how_the_bytes_were_cut() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = blocks_of(7, &[(0, &data)]);
        assert_eq!(
            whole.iter().map(|b| b.0).collect::<Vec<_>>(),
            [0, 1, 2],
            "three complete 256-byte blocks in 1000 bytes"
        );
        // Other cuts, odd sizes, a retransmission and an overlap; another ISN near the wrap.
        let cut = blocks_of(
            u32::MAX - 3,
            &[
                (0, &data[..3]),
                (3, &data[3..300]),
                (3, &data[3..300]),
                (250, &data[250..517]),
                (517, &data[517..1000]),
            ],
        );
        assert_eq!(whole, cut);
        // Different bytes, different hash.
        let mut other = data.clone();
        other[100] ^= 1;
        assert_ne!(blocks_of(7, &[(0, &other)])[0], whole[0]);
        assert_eq!(blocks_of(7, &[(0, &other)])[1], whole[1]);
    }

    /// A SYN (or SYN/ACK with `ack`) of a scan: IP ID 1, no options.
    fn syn(port: u16, isn: u32, ack: Option<u32>, tcp_flags: u8) -> Vec<u8> {
        let mut p = tracekit_testutil::packets::segment(port, ack.is_some(), 64, 0, isn, tcp_flags);
        p[18..20].copy_from_slice(&1u16.to_be_bytes());
        p[42..46].copy_from_slice(&ack.unwrap_or(0).to_be_bytes());
        p
    }

    #[test]
    fn a_syn_scan_is_aligned_by_its_initial_sequence_numbers() {
        const MS: i64 = 1_000_000;
        // 500 SYNs 1 ms apart, alike but for port and ISN, and a SYN/ACK for every tenth;
        // B saw them 1.5 s later on its clock and 2 ms further on the path (the SYN/ACKs 2 ms
        // earlier), with ECE and CWR cleared and, in `rewritten`, every ISN moved.
        let isn = |i: u32| i.wrapping_mul(2_654_435_761);
        let trace = |shift: i64, delay: i64, syn_flags: u8, moved: u32| {
            let mut t = Trace::new(u64::MAX);
            let mut frame = 0;
            for i in 0..500u16 {
                let ts = i64::from(i) * MS;
                frame += 1;
                let s = isn(i.into()).wrapping_add(moved);
                t.add(
                    frame,
                    ts + shift + delay,
                    1,
                    &syn(1024 + i, s, None, syn_flags),
                );
                if i % 10 == 0 {
                    frame += 1;
                    let p = syn(1024 + i, !s, Some(s.wrapping_add(1)), 0x12);
                    t.add(frame, ts + MS / 2 + shift - delay, 1, &p);
                }
            }
            t
        };
        let mut a = trace(0, 0, 0xc2, 0);
        let mut b = trace(1500 * MS, 2 * MS, 0x02, 0);
        let al = estimate(&mut a, &mut b).expect("the ISNs match");
        assert_eq!(al.by_kind.get("isn"), Some(&550), "{:?}", al.by_kind);
        assert_eq!(al.by_kind.len(), 1, "{:?}", al.by_kind);
        // Both ways in each tenth flow: the interval holds the true offset, -1.5 s.
        assert_eq!((al.lo, al.hi), (Some(-1502 * MS), Some(-1498 * MS)));
        assert_eq!(al.offset, -1500 * MS);
        assert_eq!(al.sampled_from, None);
        // Past a cap, a sample of the flows, whole: the same offset and interval.
        let sample = estimate_using(&mut a, &mut b, 100).expect("a sample matches");
        assert_eq!(sample.sampled_from, Some(550));
        assert!(
            (1..=200).contains(&sample.matches) && sample.flows < 500,
            "{} matches in {} flows",
            sample.matches,
            sample.flows
        );
        assert_eq!(
            (sample.offset, sample.lo, sample.hi),
            (al.offset, al.lo, al.hi)
        );
        // A box that rewrites sequence numbers leaves nothing to match (the IP IDs repeat).
        let mut rewritten = trace(1500 * MS, 2 * MS, 0x02, 12_345);
        assert!(estimate(&mut a, &mut rewritten).is_none());
    }

    #[test]
    fn after_a_gap_hashing_resumes_at_the_next_block() {
        let data: Vec<u8> = (0..1024u32).map(|i| (i % 256) as u8).collect();
        let whole = blocks_of(0, &[(0, &data)]);
        // Bytes 100..110 never seen: block 0 is lost, blocks 1.. are the same.
        let gap = blocks_of(0, &[(0, &data[..100]), (110, &data[110..])]);
        assert_eq!(gap, whole[1..]);
        // Bytes before the ISN or past the hashed part are ignored.
        assert!(blocks_of(1000, &[(u32::MAX - 9, &data[..5])]).is_empty());
        let far = BLOCK * BLOCKS_PER_DIRECTION;
        assert!(blocks_of(0, &[(far, &data)]).is_empty());
        // Without a SYN, no offset: nothing.
        let mut half = Half::default();
        half.take(1, &data, |_, _| panic!("no ISN, no block"));
    }
}
