//! The path comparison: the packets of one connection seen at one point only (dropped or
//! injected between the points), or missing from one capture though its own packets show
//! they passed (capture loss); and the packets seen at both points.

use rustc_hash::FxHashMap;
use tracekit_wire::tcp::flags;

use crate::compare::{Offset, isns};
use crate::model::Point;
use crate::trace::{ConnRef, End, Pkt, initial_ttl};

/// One point's kept packets of a connection by sequence number relative to each sender's
/// ISN, for finding the other point's packet that carries the same bytes (or the same control
/// flag at the same number). Indexed once per connection: a scan per packet was quadratic in
/// the packets kept (400 per connection, 4 scans each).
pub(crate) struct SeqSpace<'a> {
    conn: ConnRef<'a>,
    isn: [u32; 2],
    /// Per direction: the byte ranges of packets with payload.
    data: [Ranges; 2],
    /// Per direction: the FIN/RST flags and relative sequence number of each control packet.
    controls: [Vec<(u16, u32)>; 2],
    /// Per direction: the highest relative sequence number kept (comparison stops there).
    until: [Option<u32>; 2],
    /// Per direction: the furthest relative sequence number a packet starts at.
    furthest_start: [Option<u32>; 2],
    /// Per direction: the highest acknowledgement sent, relative to the other side's ISN.
    acked: [Option<u32>; 2],
}

impl<'a> SeqSpace<'a> {
    fn new(conn: ConnRef<'a>, isn: [u32; 2]) -> Self {
        // (Room for every packet in each direction: one allocation each, not a doubling.)
        let ranges = || Ranges {
            by_start: Vec::with_capacity(conn.pkts.len()),
        };
        let mut s = SeqSpace {
            conn,
            isn,
            data: [ranges(), ranges()],
            controls: [Vec::new(), Vec::new()],
            until: [None; 2],
            furthest_start: [None; 2],
            acked: [None; 2],
        };
        let raise = |v: &mut Option<u32>, x: u32| *v = Some(v.map_or(x, |v| v.max(x)));
        for p in conn.pkts {
            let (d, r) = (p.dir(), s.rel(p));
            let end = r.wrapping_add(p.len);
            raise(&mut s.until[d], end);
            raise(&mut s.furthest_start[d], r);
            if p.flags & flags::ACK != 0 {
                raise(&mut s.acked[d], p.ack.wrapping_sub(isn[d.other()]));
            }
            if p.len > 0 {
                s.data[d].push(r, end);
            }
            if p.flags & (flags::FIN | flags::RST) != 0 {
                s.controls[d].push((p.flags & (flags::FIN | flags::RST), r));
            }
        }
        for ranges in &mut s.data {
            ranges.index();
        }
        s
    }
    fn rel(&self, p: &Pkt) -> u32 {
        p.seq.wrapping_sub(self.isn[p.dir()])
    }
    /// Whether any kept packet of `dir` carries a byte of [start, end).
    fn covers(&self, dir: End, start: u32, end: u32) -> bool {
        self.data[dir].covers(start, end)
    }
    /// Whether this point's own packets show that the sender of `dir` sent `p` (numbered `r`
    /// here) although it is not among them: a later packet of the sender starts past its data,
    /// or, for a FIN, right after it with no data of the sender's at its number. (A RST takes
    /// no sequence number: nothing shows it was sent.)
    fn sent_past(&self, dir: End, p: &Pkt, r: u32) -> bool {
        let furthest = self.furthest_start[dir];
        if p.len > 0 {
            furthest.is_some_and(|f| f >= r.wrapping_add(p.len))
        } else if p.flags & (flags::FIN | flags::RST) == flags::FIN {
            furthest.is_some_and(|f| f > r) && !self.covers(dir, r, r.wrapping_add(1))
        } else {
            false
        }
    }
    /// Whether this point's packets show that the receiver of `dir` acknowledged `p`
    /// (numbered `r` here): its data, or for a FIN its sequence number.
    fn acknowledged(&self, dir: End, p: &Pkt, r: u32) -> bool {
        let taken = if p.len > 0 {
            p.len
        } else if p.flags & (flags::FIN | flags::RST) == flags::FIN {
            1
        } else {
            return false;
        };
        self.acked[dir.other()].is_some_and(|a| a >= r.wrapping_add(taken))
    }
    /// Whether a FIN/RST of `dir` (one of the flags in `flag`) was kept with this relative
    /// sequence number.
    fn has_control(&self, dir: End, flag: u16, rel: u32) -> bool {
        self.controls[dir]
            .iter()
            .any(|&(f, r)| f & flag != 0 && r == rel)
    }
}

/// Byte ranges `[start, end)` of relative sequence numbers (`end` as `start + len` wraps),
/// indexed by [`Ranges::index`] so that [`Ranges::covers`] is a binary search.
#[derive(Default)]
pub(crate) struct Ranges {
    /// (start, end), then after `index`: (start, the furthest end among the ranges up to this
    /// one), by start.
    by_start: Vec<(u32, u32)>,
}

impl Ranges {
    fn push(&mut self, start: u32, end: u32) {
        self.by_start.push((start, end));
    }
    fn index(&mut self) {
        self.by_start.sort_unstable();
        let mut furthest = 0;
        for (k, (_, end)) in self.by_start.iter_mut().enumerate() {
            furthest = if k == 0 { *end } else { furthest.max(*end) };
            *end = furthest;
        }
    }
    /// Whether a range has a byte of [start, end) (`r < end && r_end > start`): of the ranges
    /// that start before `end`, one reaches past `start`.
    fn covers(&self, start: u32, end: u32) -> bool {
        let before = self.by_start.partition_point(|&(r, _)| r < end);
        before > 0 && self.by_start[before - 1].1 > start
    }
}

#[derive(Default)]
pub(crate) struct PathDiff {
    /// Packets sent and never received: (the sender's point, frame there, description).
    pub(crate) dropped: Vec<(Point, u64, String)>,
    /// Packets received in an end's name that it never sent: (the receiver's point, frame
    /// there, description, TCP flags, TTL).
    pub(crate) injected: Vec<(Point, u64, String, u16, u8)>,
    /// Packets one capture lacks though the ends' own packets there show they passed its
    /// point (capture loss): (the point that lacks it, frame at the other point, sender).
    pub(crate) not_captured: Vec<(Point, u64, End)>,
}

pub(crate) fn describe_pkt(p: &Pkt) -> String {
    let who = p.dir();
    if let Some(t) = p.tls {
        format!("the {who}'s {} ({} bytes)", t.describe(), p.len)
    } else if p.flags & flags::RST != 0 {
        format!("a RST in the {who}'s name")
    } else if p.flags & flags::FIN != 0 {
        format!("a FIN in the {who}'s name")
    } else {
        format!("{} bytes of the {who}'s data", p.len)
    }
}

/// A packet the path comparison found at its sender's point only, in words.
pub(crate) fn dropped_text(d: &(Point, u64, String)) -> String {
    format!(
        "{} (frame {} at the {} side) never reached the other point",
        d.2, d.1, d.0
    )
}

/// A packet the path comparison found at its receiver's point only, in words.
pub(crate) fn injected_text(d: &(Point, u64, String, u16, u8)) -> String {
    format!(
        "{} reached the {} side (frame {}, TTL {}) but the {} never sent it",
        d.2,
        d.0,
        d.1,
        d.4,
        d.0.near().other()
    )
}

/// Packets one point saw and the other did not: data by relative sequence range, FIN/RST by
/// flag and relative sequence number. Only over the time both captures cover. `inits`: the
/// initial TTLs of the client and the server, as their own points show them.
pub(crate) fn path_diff(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    off: Option<Offset>,
    windows: [(i64, i64); 2],
    inits: [Option<u8>; 2],
) -> PathDiff {
    let mut out = PathDiff {
        dropped: Vec::new(),
        injected: Vec::new(),
        not_captured: Vec::new(),
    };
    // Only with a clock offset and both ISNs at both points.
    let (Some(off), Some(ic), Some(is)) = (off, isns(c), isns(s)) else {
        return out;
    };
    let views = [SeqSpace::new(*c, ic), SeqSpace::new(*s, is)];
    // Times on a's clock; each side's window of observation.
    let on_a = |side: Point, ts: i64| match side {
        Point::ClientSide => ts,
        Point::ServerSide => ts + off.mid,
    };
    let window = [windows[0], (windows[1].0 + off.mid, windows[1].1 + off.mid)];
    for dir in End::BOTH {
        let sender_side = Point::near_to(dir);
        let receiver_side = sender_side.other();
        let (snd, rcv) = (&views[sender_side], &views[receiver_side]);
        let limit = [snd.until[dir], rcv.until[dir]];
        let folded = snd.conn.folded > 0 || rcv.conn.folded > 0;
        // Sent at the sender's point, never at the receiver's.
        for p in snd.conn.pkts.iter().filter(|p| p.dir() == dir) {
            let t = on_a(sender_side, p.ts);
            if t > window[receiver_side].1 {
                continue;
            }
            let r = snd.rel(p);
            if folded && limit[1].is_none_or(|l| r >= l) {
                continue;
            }
            let missing = if p.len > 0 {
                !rcv.covers(dir, r, r.wrapping_add(p.len))
            } else if p.flags & (flags::FIN | flags::RST) != 0 {
                let flag = p.flags & (flags::FIN | flags::RST);
                // A RST may carry the sequence number after the FIN's.
                let seen = rcv.has_control(dir, flag, r)
                    || (p.flags & flags::RST != 0
                        && rcv.has_control(dir, flags::RST, r.wrapping_add(1)));
                !seen
            } else {
                false
            };
            if missing && rcv.acknowledged(dir, p, r) {
                out.not_captured.push((receiver_side, p.frame, dir));
            } else if missing {
                out.dropped.push((sender_side, p.frame, describe_pkt(p)));
            }
        }
        // Seen at the receiver's point in the sender's name, never sent at the sender's point.
        for p in rcv.conn.pkts.iter().filter(|p| p.dir() == dir) {
            let t = on_a(receiver_side, p.ts);
            if t < window[sender_side].0 || t > window[sender_side].1 {
                continue;
            }
            let r = rcv.rel(p);
            if folded && limit[0].is_none_or(|l| r >= l) {
                continue;
            }
            let foreign = if p.len > 0 {
                !snd.covers(dir, r, r.wrapping_add(p.len))
            } else if p.flags & (flags::FIN | flags::RST) != 0 {
                let flag = p.flags & (flags::FIN | flags::RST);
                !snd.has_control(dir, flag, r)
            } else {
                false
            };
            // A FIN that left the sender (its initial TTL) and that the sender's later packets
            // at this point step past was the sender's own, though its capture lost it and all
            // that followed (an injected one leaves the sender's numbers where they were; a
            // proxy's comes with the proxy's TTL).
            let fin_stepped_past = p.flags & (flags::FIN | flags::RST) == flags::FIN
                && p.len == 0
                && inits[dir].is_some_and(|i| initial_ttl(p.ttl) == i)
                && rcv.sent_past(dir, p, r);
            if foreign && (snd.sent_past(dir, p, r) || fin_stepped_past) {
                out.not_captured.push((sender_side, p.frame, dir));
            } else if foreign {
                out.injected
                    .push((receiver_side, p.frame, describe_pkt(p), p.flags, p.ttl));
            }
        }
    }
    out
}

/// Packets kept at both points that carry the same payload, in the same direction:
/// (client-side packet, server-side packet).
pub(crate) fn same_packets<'a>(c: &ConnRef<'a>, s: &ConnRef<'a>) -> Vec<(&'a Pkt, &'a Pkt)> {
    let with_payload = |x: &ConnRef<'a>| x.pkts.iter().filter(|p| p.payload != 0);
    if c.pkts.len() * s.pkts.len() <= 1024 {
        // A few dozen packets (most connections): a scan costs less than building a map.
        return with_payload(c)
            .filter_map(|p| {
                let q = with_payload(s)
                    .find(|q| q.from_client == p.from_client && q.payload == p.payload)?;
                Some((p, q))
            })
            .collect();
    }
    let mut by_payload: FxHashMap<(bool, u64), &Pkt> = FxHashMap::default();
    for p in s.pkts.iter().filter(|p| p.payload != 0) {
        by_payload.entry((p.from_client, p.payload)).or_insert(p);
    }
    c.pkts
        .iter()
        .filter(|p| p.payload != 0)
        .filter_map(|p| Some((p, *by_payload.get(&(p.from_client, p.payload))?)))
        .collect()
}

/// The path comparison of one connection's packets at the two points (see [`path_diff`]), and
/// whether the middlebox rewrites the payload (then the packets are not compared one by one:
/// the two points carry different streams); with its caveats.
pub(crate) fn compared_path(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    (off, windows): (Option<Offset>, [(i64, i64); 2]),
    inits: [Option<u8>; 2],
    caveats: &mut Vec<String>,
) -> (PathDiff, bool) {
    // Packets seen at one point only. Only when the middlebox forwards the bytes as they are:
    // a TLS interceptor (or anything that rewrites payloads) makes two different streams.
    let rewritten_stream = c.first_client_payload != 0
        && s.first_client_payload != 0
        && c.first_client_payload != s.first_client_payload;
    let diff = if rewritten_stream {
        caveats.push("the client's first bytes differ at the two points (the middlebox rewrites the payload, e.g. terminates TLS): packets were not compared one by one".to_string());
        PathDiff::default()
    } else {
        path_diff(c, s, off, windows, inits)
    };
    for side in Point::BOTH {
        for sender in End::BOTH {
            let mut lost = diff
                .not_captured
                .iter()
                .filter(|x| x.0 == side && x.2 == sender);
            if let Some(first) = lost.next() {
                caveats.push(format!(
                    "{} packet(s) of the {sender} are missing from the {side}-side capture, though the packets captured there show they passed that point (later packets of their sender, or acknowledgements of them): capture loss, not counted as dropped or injected (first: frame {} at the {} side)",
                    1 + lost.count(),
                    first.1,
                    side.other()
                ));
            }
        }
    }
    (diff, rewritten_stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::numbers;

    #[test]
    fn indexed_ranges_cover_what_a_scan_finds() {
        // Starts near the wrap of u32 included.
        let mut next = numbers(7);
        for case in 0..300 {
            let base = if case % 3 == 0 { u32::MAX - 3000 } else { 0 };
            let mut ranges = Ranges::default();
            let mut plain = Vec::new();
            for _ in 0..next(40) {
                let start = base.wrapping_add(next(6000) as u32);
                let end = start.wrapping_add(1 + next(1500) as u32);
                ranges.push(start, end);
                plain.push((start, end));
            }
            ranges.index();
            for _ in 0..200 {
                let start = base.wrapping_add(next(8000) as u32);
                let end = start.wrapping_add(1 + next(1500) as u32);
                let scan = plain.iter().any(|&(r, e)| r < end && e > start);
                assert_eq!(
                    ranges.covers(start, end),
                    scan,
                    "{plain:?} [{start}, {end})"
                );
            }
        }
    }
}
