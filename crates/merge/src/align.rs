//! Clock offset between two captures of the same traffic taken at different points.
//!
//! A packet seen at both points is found by what the path does not change: its transport
//! payload (also across a proxy that terminates TCP, since the application bytes are the same),
//! the TCP timestamp option of a bare segment, or the IPv4 identification with the protocol,
//! length and flags — never TTL, checksums, addresses or ports, which routers, NATs and
//! firewalls rewrite. Only signatures seen exactly once in each capture count, and a pair of
//! flows must agree (most of an A flow's matches point at one B flow) for its matches to count.
//!
//! One-way delay is never negative. With `d = t_A − t_B` for a matched packet, and `off` the
//! offset to add to B's clock: a packet that went from A's point to B's has `t_A ≤ t_B + off`,
//! so `off ≥ d`; one that went the other way has `off ≤ d`. In each flow the direction with the
//! smaller `d` is the one from A to B. So every match bounds the offset, and the feasible
//! interval is `[max d over A→B, min d over B→A]`; its midpoint is the estimate.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;
use std::hash::{Hash, Hasher};
use tracekit_wire::{IpLayer, Layers, TransportKind, dissect};

/// What a match rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The transport payload (its first bytes and its length on the wire).
    Payload,
    /// A TCP segment without payload: flags and the timestamp option's two values.
    TcpTimestamps,
    /// IPv4 identification, protocol, payload length and TCP flags.
    Ipv4Id,
}

impl Kind {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Payload => "payload",
            Kind::TcpTimestamps => "tcp-timestamps",
            Kind::Ipv4Id => "ipv4-id",
        }
    }
    /// Strong kinds are unlikely to collide by chance; a weak one alone does not pair flows.
    fn strong(self) -> bool {
        !matches!(self, Kind::Ipv4Id)
    }
}

/// Payload bytes hashed for a signature (with the length on the wire).
const PAYLOAD_PREFIX: usize = 64;

/// One capture's signatures.
#[derive(Debug, Default)]
pub struct Trace {
    entries: FxHashMap<(Kind, u64), Entry>,
    /// Flow hash and whether the packet goes lo → hi, per flow, for reporting.
    packets: u64,
    limit: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ts: i64,
    frame: u64,
    flow: u64,
    forward: bool,
    count: u32,
}

impl Trace {
    /// Signatures of at most `limit` packets are kept (the offset is found near the start).
    #[must_use]
    pub fn new(limit: u64) -> Self {
        Trace {
            limit,
            ..Trace::default()
        }
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
        let (key, forward) = ip.flow(data);
        let flow = hash_of(&key);
        for sig in signatures(ip, data).into_iter().flatten() {
            self.entries
                .entry(sig)
                .and_modify(|e| e.count += 1)
                .or_insert(Entry {
                    ts,
                    frame,
                    flow,
                    forward,
                    count: 1,
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

/// The signatures of one packet (up to one of each kind).
fn signatures(ip: &IpLayer, data: &[u8]) -> [Option<(Kind, u64)>; 3] {
    let mut out = [None; 3];
    let Some(t) = ip.transport else {
        return out;
    };
    let h = ip.header.start as usize;
    // Payload length the IP header announces (not what was captured).
    let announced = if ip.version == 4 {
        usize::from(be16(data, h + 2)).saturating_sub(ip.header.len())
    } else {
        (usize::from(be16(data, h + 4)) + 40).saturating_sub(ip.header.len())
    };
    let transport_header = t.header.len();
    let wire_payload = announced.saturating_sub(transport_header);
    let captured = &data[t.payload.range()];
    let tcp_flags = if t.kind == TransportKind::Tcp && t.complete {
        be16(data, t.header.start as usize + 12) & 0x0fff
    } else {
        0
    };
    if wire_payload > 0 && t.complete {
        let prefix = &captured[..captured.len().min(PAYLOAD_PREFIX)];
        if prefix.len() == wire_payload.min(PAYLOAD_PREFIX) {
            out[0] = Some((
                Kind::Payload,
                hash_of(&(t.kind as u8, wire_payload, prefix)),
            ));
        }
    } else if t.kind == TransportKind::Tcp && t.complete {
        let header = &data[t.header.range()];
        if let Ok(tcp) = tracekit_wire::tcp::Tcp::new_checked(header) {
            let ts = tcp.options().find_map(|o| match o {
                Ok(tracekit_wire::tcp::TcpOption::Timestamps { value, echo }) => {
                    Some((value, echo))
                }
                _ => None,
            });
            if let Some((value, echo)) = ts {
                out[1] = Some((Kind::TcpTimestamps, hash_of(&(tcp_flags, value, echo))));
            }
        }
    }
    if ip.version == 4 {
        let id = be16(data, h + 4);
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
#[must_use]
pub fn estimate(a: &Trace, b: &Trace) -> Option<Alignment> {
    let (pairs, flows) = matched(a, b)?;
    let mut by_kind = BTreeMap::new();
    for m in &pairs {
        *by_kind.entry(m.kind.name()).or_insert(0) += 1;
    }
    let (offset, lo, hi, outliers) = bounds(&pairs);
    Some(Alignment {
        offset,
        lo,
        hi,
        matches: pairs.len(),
        by_kind,
        outliers,
        flows,
        pairs,
    })
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The packets seen in both traces, directions told, in A's order; and the number of flow pairs.
fn matched(a: &Trace, b: &Trace) -> Option<(Vec<Match>, usize)> {
    // Signatures seen once on each side.
    let mut raw: Vec<(Match, u64, bool, u64)> = Vec::new();
    for (sig, ea) in &a.entries {
        if ea.count != 1 {
            continue;
        }
        let Some(eb) = b.entries.get(sig) else {
            continue;
        };
        if eb.count != 1 {
            continue;
        }
        raw.push((
            Match {
                kind: sig.0,
                a_frame: ea.frame,
                b_frame: eb.frame,
                a_ts: ea.ts,
                b_ts: eb.ts,
                a_to_b: None,
            },
            ea.flow,
            ea.forward,
            eb.flow,
        ));
    }
    // Flow pairs: an A flow's matches must mostly point at one B flow, and a pair must rest
    // on a strong signature or on at least three weak ones.
    let mut votes: FxHashMap<(u64, u64), (usize, bool)> = FxHashMap::default();
    for (m, fa, _, fb) in &raw {
        let v = votes.entry((*fa, *fb)).or_default();
        v.0 += 1;
        v.1 |= m.kind.strong();
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
    raw.retain(|(_, fa, _, fb)| best.get(fa).is_some_and(|&(b, _)| b == *fb));
    if raw.is_empty() {
        return None;
    }
    let flows = best.len();
    // Direction: in each A flow, the side with the smaller median t_A − t_B goes A → B.
    let mut per_flow: FxHashMap<u64, [Vec<i64>; 2]> = FxHashMap::default();
    for (m, fa, fwd, _) in &raw {
        per_flow.entry(*fa).or_default()[usize::from(*fwd)].push(m.delta());
    }
    let mut forward_is_a_to_b: FxHashMap<u64, bool> = FxHashMap::default();
    for (flow, [back, fwd]) in &mut per_flow {
        if !back.is_empty() && !fwd.is_empty() {
            forward_is_a_to_b.insert(*flow, median(fwd) < median(back));
        }
    }
    let mut pairs: Vec<Match> = raw
        .into_iter()
        .map(|(mut m, fa, fwd, _)| {
            m.a_to_b = forward_is_a_to_b.get(&fa).map(|&f| f == fwd);
            m
        })
        .collect();
    pairs.sort_unstable_by_key(|m| m.a_frame);
    Some((pairs, flows))
}

/// (estimate, feasible interval, matches left out as contradicting) from the matched packets.
fn bounds(pairs: &[Match]) -> (i64, Option<i64>, Option<i64>, usize) {
    let mut down: Vec<i64> = pairs
        .iter()
        .filter(|m| m.a_to_b == Some(true))
        .map(Match::delta)
        .collect();
    let mut up: Vec<i64> = pairs
        .iter()
        .filter(|m| m.a_to_b == Some(false))
        .map(Match::delta)
        .collect();
    let mut outliers = 0;
    let (offset, lo, hi) = if down.is_empty() || up.is_empty() {
        // One way only: the delay cannot be told from the offset; take the median.
        let mut all: Vec<i64> = pairs.iter().map(Match::delta).collect();
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
