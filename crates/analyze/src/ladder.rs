//! The packets of one connection at both capture points on one time axis (side b shifted by
//! the clock offset), each joined to the same packet at the other point when there is one,
//! with what changed on the way and what exists at one point only: the data behind the
//! ladder drawing of the HTML report. Long runs of plain data/ACK packets are folded into one
//! row with a count, so a connection of 100,000 packets still draws a readable page.

use rustc_hash::FxHashMap;
use serde::Serialize;
use tracekit_wire::tcp::{flag_names, flags};

use crate::model::Point;
use crate::trace::{Conn, ConnRef, End, Pkt};

/// Ordinary rows (no flag but ACK/PSH, no TLS handshake, nothing odd) drawn per side at the
/// start of a connection before folding begins.
const ORDINARY_SHOWN: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct LadderRow {
    /// The capture point, serialized as `a` (the client side) or `b` (the server side).
    pub side: Point,
    pub frame: u64,
    /// Milliseconds since the connection's first packet, on side a's clock.
    pub t_ms: f64,
    pub from_client: bool,
    /// TCP flags as Wireshark names them (`SYN, ACK`).
    pub flags: String,
    /// TLS message or payload size (`Server Hello`, `517 bytes`), empty for a bare segment.
    pub what: String,
    pub ttl: u8,
    /// The frame of the same packet at the other capture point.
    pub peer_frame: Option<u64>,
    /// `dropped` (never reached the other point) or `injected` (the end it names never sent it).
    pub only_here: Option<&'static str>,
    /// What differs from the same packet at the other point (`TTL 128 → 255`).
    pub changed: Vec<String>,
    /// For a folded band: how many packets it stands for (the row's other fields describe the
    /// first of them).
    pub folded: u64,
}

fn describe(p: &Pkt) -> String {
    match p.tls {
        Some(t) => t.describe().to_string(),
        None if p.len > 0 => format!("{} bytes", p.len),
        None => String::new(),
    }
}

/// Key of a packet that can be found at the other point.
fn key(p: &Pkt, isn: [Option<u32>; 2]) -> Option<(bool, u16, u64)> {
    let control = p.flags & (flags::SYN | flags::FIN | flags::RST);
    if p.payload != 0 {
        return Some((p.from_client, 0, p.payload));
    }
    if control == 0 {
        return None;
    }
    // SYN and SYN/ACK match whatever their sequence numbers (they are what a proxy rewrites);
    // FIN/RST by relative sequence number.
    if control & flags::SYN != 0 {
        return Some((p.from_client, control, 0));
    }
    let rel = p.seq.wrapping_sub(isn[p.dir()]?);
    Some((p.from_client, control, u64::from(rel)))
}

/// The rows of one connection; `offset` puts side b on side a's clock, `dropped` and
/// `injected` name (point, frame) pairs found by the path comparison.
#[must_use]
pub fn ladder(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    offset: i64,
    only_here: &[(Point, u64, &'static str)],
) -> Vec<LadderRow> {
    let isn = |x: &Conn| [x.isn(End::Client), x.isn(End::Server)];
    let t0 = c.first_ts.min(s.first_ts + offset);
    let mut peers: FxHashMap<(bool, u16, u64), Vec<&Pkt>> = FxHashMap::default();
    for p in s.pkts {
        if let Some(k) = key(p, isn(s)) {
            peers.entry(k).or_default().push(p);
        }
    }
    let mut taken: FxHashMap<u64, u64> = FxHashMap::default();
    let mut rows: Vec<(i64, LadderRow)> = Vec::new();
    let row = |side: Point, p: &Pkt, t: i64, peer: Option<&Pkt>| {
        let frame = p.frame;
        let tag = only_here
            .iter()
            .find(|(at, f, _)| *at == side && *f == frame)
            .map(|x| x.2);
        (
            t,
            LadderRow {
                side,
                frame,
                t_ms: (t - t0) as f64 / 1e6,
                from_client: p.from_client,
                flags: flag_names(p.flags & 0x1ff),
                what: describe(p),
                ttl: p.ttl,
                peer_frame: peer.map(|q| q.frame),
                only_here: tag,
                changed: Vec::new(),
                folded: 0,
            },
        )
    };
    for p in c.pkts {
        let peer = key(p, isn(c)).and_then(|k| {
            let q = peers
                .get(&k)?
                .iter()
                .find(|q| !taken.contains_key(&q.frame))?;
            taken.insert(q.frame, p.frame);
            Some(*q)
        });
        rows.push(row(Point::ClientSide, p, p.ts, peer));
    }
    let by_frame: FxHashMap<u64, &Pkt> = c.pkts.iter().map(|p| (p.frame, p)).collect();
    for q in s.pkts {
        let peer = taken.get(&q.frame).and_then(|f| by_frame.get(f).copied());
        let (t, mut r) = row(Point::ServerSide, q, q.ts + offset, peer);
        // Changes are told once, on the server side's row, from the client side's values.
        if let Some(p) = peer {
            r.changed = changes((c, s), p, q);
        }
        rows.push((t, r));
    }
    rows.sort_by_key(|(t, r)| (*t, r.side, r.frame));
    fold(rows.into_iter().map(|(_, r)| r).collect())
}

/// What changed of packet `p` of the client side `c` on its way to (or from) its peer `q` of
/// the server side `s`, in words: its TTL's origin, IP ID, sequence numbers, ECN, and for the
/// SYN and the SYN/ACK the options (each as the signal of that name compares it).
fn changes((c, s): (&ConnRef<'_>, &ConnRef<'_>), p: &Pkt, q: &Pkt) -> Vec<String> {
    let mut changed = Vec::new();
    // As sent, then as received: client side first for the client's packets. Routers
    // lower the TTL on the way; only a TTL from another initial value is a change.
    if crate::trace::initial_ttl(p.ttl) != crate::trace::initial_ttl(q.ttl) {
        let (sent, got) = if q.from_client {
            (p.ttl, q.ttl)
        } else {
            (q.ttl, p.ttl)
        };
        changed.push(format!("TTL {sent} → {got}"));
    }
    if p.ip_id.is_some() && q.ip_id.is_some() && p.ip_id != q.ip_id {
        changed.push("IP ID".to_string());
    }
    if p.seq != q.seq {
        changed.push("sequence numbers".to_string());
    }
    if crate::signals::ecn_differs(p, q) {
        changed.push("ECN".to_string());
    }
    // The handshake options, for the SYN and the SYN/ACK.
    let pair = if s.syn.is_some_and(|h| h.frame == q.frame) {
        c.syn.zip(s.syn)
    } else if s.syn_ack.is_some_and(|h| h.frame == q.frame) {
        c.syn_ack.zip(s.syn_ack)
    } else {
        None
    };
    if let Some((x, y)) = pair {
        let (sent, got) = if q.from_client { (x, y) } else { (y, x) };
        let show = |v: Option<u16>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
        if sent.options.mss != got.options.mss {
            changed.push(format!(
                "MSS {} → {}",
                show(sent.options.mss),
                show(got.options.mss)
            ));
        }
        if sent.options.window_scale != got.options.window_scale {
            let ws = |v: Option<u8>| show(v.map(u16::from));
            changed.push(format!(
                "window scale {} → {}",
                ws(sent.options.window_scale),
                ws(got.options.window_scale)
            ));
        }
        if sent.options.layout() != got.options.layout() {
            changed.push("option layout".to_string());
        }
    }
    changed
}

fn ordinary(r: &LadderRow) -> bool {
    r.only_here.is_none()
        && r.changed.is_empty()
        && !r.flags.contains("SYN")
        && !r.flags.contains("FIN")
        && !r.flags.contains("RST")
        && (r.what.is_empty() || r.what.ends_with("bytes") || r.what == "Application Data")
}

/// Folds runs of ordinary rows after the first few of each side into counted bands.
fn fold(rows: Vec<LadderRow>) -> Vec<LadderRow> {
    let mut shown = [0usize; 2];
    let mut out: Vec<LadderRow> = Vec::with_capacity(rows.len().min(256));
    for r in rows {
        if ordinary(&r) {
            shown[r.side] += 1;
            if shown[r.side] > ORDINARY_SHOWN {
                match out.last_mut() {
                    Some(band) if band.folded > 0 => band.folded += 1,
                    _ => out.push(LadderRow {
                        folded: 1,
                        peer_frame: None,
                        ..r
                    }),
                }
                continue;
            }
        }
        out.push(r);
    }
    out
}
