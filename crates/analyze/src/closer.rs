//! Who closed the connection: the first FIN or RST on the aligned timeline of the two
//! captures, who built it (an end, or the middlebox in an end's name), and what may make that
//! uncertain (a FIN a capture lost, numbers a capture lacks before the close it shows).
//!
//! A close in an end's name was built by the middlebox when its initial TTL is not that end's,
//! or when the end never sent it (the path comparison found it injected).

use std::fmt::Write;

use tracekit_wire::tcp::flags;

use crate::compare::{Offset, isn_seen, ms_text};
use crate::model::{ClosedBy, Point};
use crate::path::PathDiff;
use crate::trace::{Close, ConnRef, End, Pkt, initial_ttl};

/// A close faster than the far end's round trip (`fin-faster-than-rtt`): its direction, the
/// close, what it answered, how soon after it, and whether it was seen at the server side.
pub(crate) type FastClose = (End, Close, Option<&'static str>, i64, bool);

/// What the closer is decided from.
pub(crate) struct Closing<'a, 'p> {
    pub c: &'a ConnRef<'p>,
    pub s: &'a ConnRef<'p>,
    pub off: Option<Offset>,
    /// The initial TTLs the client and the server send with, where known.
    pub inits: [Option<u8>; 2],
    pub diff: &'a PathDiff,
    pub fast_close: Option<FastClose>,
    /// The middlebox rewrites the payload: the two points carry different streams.
    pub rewritten_stream: bool,
}

/// Who closed it, and why that is said.
pub(crate) struct Closed {
    pub by: ClosedBy,
    pub proof: String,
    /// The first close seen may answer one a capture lost.
    pub doubt: bool,
    pub caveats: Vec<String>,
}

impl Closing<'_, '_> {
    /// Side b's clock on side a's.
    fn shift(&self) -> i64 {
        self.off.map_or(0, |o| o.mid)
    }

    /// The initial TTL of the end `named`.
    fn init_of(&self, named: End) -> Option<u8> {
        self.inits[named]
    }
}

/// Whether a packet with `ttl` left another sender than one with initial TTL `init`.
fn foreign(init: Option<u8>, ttl: u8) -> bool {
    init.is_some_and(|i| initial_ttl(ttl) != i)
}

/// Who closed the connection (see the module's note).
pub(crate) fn closed(k: &Closing<'_, '_>) -> Closed {
    let events = events(k);
    // (A FIN a capture lacks passed before the packet that times it, which may be the other
    // end's close: on a tie it came first.)
    let first = events
        .iter()
        .min_by_key(|e| (e.at, !e.by_middlebox, e.lost.is_none()));
    let relayed = relayed(k, &events, first);
    let (by, mut proof) = proof(k, first, relayed);
    let mut caveats = Vec::new();
    abortive(k, &mut proof);
    if let Some(e) = relayed.map(|r| r.1).or(first.filter(|e| e.lost.is_some())) {
        caveats.push(format!(
            "the {}'s FIN is missing from the {}-side capture, but {}: the first close is timed by that frame, the latest it can have passed",
            e.named,
            e.side,
            e.shown()
        ));
    }
    let doubt = first.filter(|_| relayed.is_none()).is_some_and(|e| {
        lost_before(k, &events, e, (&mut proof, &mut caveats))
            || (e.lost.is_none() && unacknowledged_before(k, e, (&mut proof, &mut caveats)))
    });
    Closed {
        by,
        proof,
        doubt,
        caveats,
    }
}

/// The first FIN or RST each capture shows in each end's name, and the FINs a capture lacks
/// though its packets show they passed.
fn events(k: &Closing<'_, '_>) -> Vec<CloseEvent> {
    let (c, s, shift, diff) = (k.c, k.s, k.shift(), k.diff);
    let [client_init, server_init] = k.inits;
    let injected_at =
        |side: Point, frame: u64| diff.injected.iter().any(|d| d.0 == side && d.1 == frame);
    let (client, server) = (End::Client, End::Server);
    let (client_side, server_side) = (Point::ClientSide, Point::ServerSide);
    let mut events: Vec<CloseEvent> = [
        c.first_close(client)
            .map(|x| CloseEvent::new(x, x.ts, client, client_side, false)),
        c.first_close(server).map(|x| {
            let mb = foreign(server_init, x.ttl) || injected_at(client_side, x.frame);
            CloseEvent::new(x, x.ts, server, client_side, mb)
        }),
        s.first_close(client).map(|x| {
            let mb = foreign(client_init, x.ttl) || injected_at(server_side, x.frame);
            CloseEvent::new(x, x.ts + shift, client, server_side, mb)
        }),
        s.first_close(server)
            .map(|x| CloseEvent::new(x, x.ts + shift, server, server_side, false)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A FIN one capture lacks though its packets show it passed (see `lost_fin`), when the
    // other capture has a FIN in that direction or shows one passed too (a lost one-byte
    // segment would show the same at one point): timed by the packet that shows it (the
    // latest it can have passed), built by whoever built the sender's packets around it.
    let lost_at = [c, s].map(|x| End::BOTH.map(|dir| lost_fin(x, dir)));
    for (side, other) in [(client_side, s), (server_side, c)] {
        let lost_there = &lost_at[side.other()];
        for named in End::BOTH {
            if other.sent[named].first_fin.is_none() && lost_there[named].is_none() {
                continue;
            }
            let Some(lost) = lost_at[side][named] else {
                continue;
            };
            let own_point = side.near() == named;
            let ttl = lost.ttl.unwrap_or(0);
            events.push(CloseEvent {
                at: lost.ts + if side == server_side { shift } else { 0 },
                named,
                side,
                frame: lost.proof,
                rst: false,
                ttl,
                by_middlebox: !own_point && lost.ttl.is_some() && foreign(k.init_of(named), ttl),
                lost: Some(lost),
            });
        }
    }
    // (A FIN a capture lacks passed before the packet that times it, which may be the other
    // end's close: on a tie it came first.)
    events
}

/// A middlebox's FIN in an end's name can be the end's own FIN passed on, where the end's
/// capture lacks it: the path comparison found its counterpart missing there though the end's
/// later packets show it was sent, and no close of the other end came there before it. Then
/// (the middlebox's FIN, the end's own lost FIN).
fn relayed<'e>(
    k: &Closing<'_, '_>,
    events: &'e [CloseEvent],
    first: Option<&'e CloseEvent>,
) -> Option<(&'e CloseEvent, &'e CloseEvent)> {
    first
        .filter(|e| e.by_middlebox && e.lost.is_none())
        .and_then(|e| {
            // The end's own point is the capture side of its name.
            let near = Point::near_to(e.named);
            let own = events
                .iter()
                .find(|o| o.lost.is_some() && o.named == e.named && o.side == near)?;
            k.diff
                .not_captured
                .iter()
                .any(|n| n.0 == near && n.1 == e.frame && n.2 == e.named)
                .then_some(())?;
            events
                .iter()
                .filter(|o| o.lost.is_none() && o.named != e.named && o.side == near)
                .all(|o| o.at >= own.at)
                .then_some((e, own))
        })
}

/// The closer and the sentence that proves it.
fn proof(
    k: &Closing<'_, '_>,
    first: Option<&CloseEvent>,
    relayed: Option<(&CloseEvent, &CloseEvent)>,
) -> (ClosedBy, String) {
    match (first, relayed) {
        (None, _) => (
            ClosedBy::None,
            "no FIN or RST was seen from either end".to_string(),
        ),
        (Some(_), Some((e, own))) => (
            ClosedBy::from(e.named),
            format!(
                "the {} sent the first FIN: the {}-side capture lacks it, but {}; the FIN in the {}'s name at the {} side (frame {}, TTL {}) is the middlebox passing it on",
                e.named,
                own.side,
                own.shown(),
                e.named,
                e.side,
                e.frame,
                e.ttl
            ),
        ),
        (Some(e), None) if e.by_middlebox => {
            let mut proof = format!(
                "the first close is a {} in the {}'s name ({}) that the {} did not send{}",
                e.kind(),
                e.named,
                e.where_seen(),
                e.named,
                if foreign(k.init_of(e.named), e.ttl) {
                    format!(
                        ": it left a sender with initial TTL {}, the {} sends with {}",
                        initial_ttl(e.ttl),
                        e.named,
                        k.init_of(e.named).unwrap_or(0)
                    )
                } else {
                    ": the other capture shows no such packet from it".to_string()
                }
            );
            if let Some((_, close, answered, dt, at_server_side)) = k.fast_close
                && e.lost.is_none()
                && close.frame == e.frame
                && at_server_side == (e.side == Point::ServerSide)
            {
                let _ = write!(
                    proof,
                    "; it came {} after {}, faster than the {}'s round trip",
                    ms_text(dt),
                    answered.map_or("the packet before it".to_string(), |m| format!("the {m}")),
                    e.named
                );
            }
            (ClosedBy::Middlebox, proof)
        }
        (Some(e), None) => (
            ClosedBy::from(e.named),
            format!(
                "the {} sent the first {} ({}){}",
                e.named,
                e.kind(),
                if e.lost.is_some() {
                    e.where_seen()
                } else {
                    format!("frame {} in the {}-side capture", e.frame, e.side)
                },
                if k.off.is_some() {
                    ", before any other FIN or RST on the aligned timeline"
                } else {
                    ""
                }
            ),
        ),
    }
}

/// A RST after the same end's FIN, in the capture near that end: a normal close, said so.
fn abortive(k: &Closing<'_, '_>, proof: &mut String) {
    let (c, s) = (k.c, k.s);
    for (x, side) in [(c, Point::ClientSide), (s, Point::ServerSide)] {
        let dir = side.near();
        if x.abortive_close() == Some(dir)
            && let (Some(fin), Some(rst)) = (x.sent[dir].first_fin, x.sent[dir].first_rst)
        {
            let _ = write!(
                *proof,
                "; the {dir} reset the connection after its own FIN (frame {} after frame {} in the {side}-side capture), answering what the other end sent after that FIN: a normal (abortive) close, not a failure",
                rst.frame, fin.frame
            );
            break;
        }
    }
}

/// The first close seen may answer one a capture lost: a FIN a capture lacks is timed by the
/// packet that shows it passed, the latest it can have; where it can have passed before the
/// first close `e`, the order is not known (named: the one that can have passed earliest).
fn lost_before(
    k: &Closing<'_, '_>,
    events: &[CloseEvent],
    e: &CloseEvent,
    (proof, caveats): (&mut String, &mut Vec<String>),
) -> bool {
    let shift = k.shift();
    let Some((_, o, lost)) = events
        .iter()
        .filter(|o| o.closer() != e.closer())
        .filter_map(|o| {
            let l = o.lost?;
            let earliest = l.earliest
                + if o.side == Point::ServerSide {
                    shift
                } else {
                    0
                };
            (earliest < e.at).then_some((earliest, o, l))
        })
        .min_by_key(|(earliest, ..)| *earliest)
    else {
        return false;
    };
    let _ = write!(
        *proof,
        "; but the {} that the {}-side capture lacks can have passed before it (it passed {}before frame {} there)",
        o.what(),
        o.side,
        lost.after
            .map_or(String::new(), |f| format!("after frame {f} and ")),
        lost.proof
    );
    caveats.push(format!(
        "the {} is missing from the {}-side capture, and it can have passed before the first close seen: who closed first rests on packets that capture lost",
        o.what(),
        o.side
    ));
    true
}

/// The sender of the first close `e` may have acknowledged numbers of the other end that its
/// capture lacks (data, or data and a FIN: the numbers cannot tell).
fn unacknowledged_before(
    k: &Closing<'_, '_>,
    e: &CloseEvent,
    (proof, caveats): (&mut String, &mut Vec<String>),
) -> bool {
    let (x, far) = match e.side {
        Point::ClientSide => (k.c, k.s),
        Point::ServerSide => (k.s, k.c),
    };
    let dir = e.named;
    let far = (!k.rewritten_stream).then_some(far);
    let Some((n, frame)) = unseen_end(x, far, dir, e.frame) else {
        return false;
    };
    let other = dir.other();
    let _ = write!(
        *proof,
        "; but before it, frame {frame} there acknowledges {n} sequence number(s) of the {other}'s that the {}-side capture lacks: a FIN in the {other}'s name among them would have come first",
        e.side
    );
    caveats.push(format!(
            "the {}-side capture lacks the end of the {other}'s stream before the first close it shows ({n} sequence number(s), acknowledged by frame {frame}): who closed first rests on packets that capture lost",
            e.side
        ));
    true
}

/// A first FIN/RST in one end's name, at one capture point.
struct CloseEvent {
    /// Time on side a's clock.
    at: i64,
    /// The end in whose name it was sent, and the capture point that saw it.
    named: End,
    side: Point,
    frame: u64,
    rst: bool,
    ttl: u8,
    by_middlebox: bool,
    /// A FIN the capture lacks: `frame` is the packet that shows it passed, `ttl` that of the
    /// sender's packets around it.
    lost: Option<LostFin>,
}

impl CloseEvent {
    fn new(x: crate::trace::Close, at: i64, named: End, side: Point, by_middlebox: bool) -> Self {
        CloseEvent {
            at,
            named,
            side,
            frame: x.frame,
            rst: x.rst,
            ttl: x.ttl,
            by_middlebox,
            lost: None,
        }
    }
    fn kind(&self) -> &'static str {
        if self.rst { "RST" } else { "FIN" }
    }
    /// Who this close makes the closer.
    fn closer(&self) -> ClosedBy {
        if self.by_middlebox {
            ClosedBy::Middlebox
        } else {
            ClosedBy::from(self.named)
        }
    }
    /// The close in words: "client's FIN", "FIN in the server's name that the middlebox built".
    fn what(&self) -> String {
        if self.by_middlebox {
            format!(
                "{} in the {}'s name that the middlebox built",
                self.kind(),
                self.named
            )
        } else {
            format!("{}'s {}", self.named, self.kind())
        }
    }
    /// Where the close was seen, or for one the capture lacks, what shows it.
    fn where_seen(&self) -> String {
        match self.lost {
            None => format!(
                "frame {} at the {} side, TTL {}",
                self.frame, self.side, self.ttl
            ),
            Some(l) => format!(
                "not captured at the {} side, but {}{}",
                self.side,
                self.shown(),
                l.ttl.map_or(String::new(), |t| format!(
                    "; the {}'s packets around it came with TTL {t}",
                    self.named
                ))
            ),
        }
    }
    /// For a FIN the capture lacks: the packet that shows it passed.
    fn shown(&self) -> String {
        match self.lost {
            Some(l) if l.acknowledged => format!("frame {} there acknowledges it", l.proof),
            Some(l) => format!(
                "frame {} there follows it with the {}'s next number and no data",
                l.proof, self.named
            ),
            None => String::new(),
        }
    }
}

/// A FIN of one sender that a capture lacks though the packets captured there show it passed:
/// the sender's stream ends at one number, and then its next packet starts one past that
/// number without data, or the receiver acknowledges one past it (as for `sent_past` and
/// `acknowledged` of the path comparison, but from one capture alone).
#[derive(Debug, Clone, Copy)]
struct LostFin {
    /// The first packet that shows it, and when it passed (the FIN passed before it).
    proof: u64,
    ts: i64,
    /// The earliest it can have passed: the sender's packet whose data (or SYN) ends where
    /// the FIN goes, and when it passed (the proof's, when that packet was lost too).
    after: Option<u64>,
    earliest: i64,
    /// Sent by the FIN's receiver (an acknowledgement), not by its sender.
    acknowledged: bool,
    /// The TTL of the sender's packet nearest before it there (after it, when none is).
    ttl: Option<u8>,
}

/// The FIN of `dir` that `x`'s capture lacks, if its packets show one passed (see
/// [`LostFin`]). Only where every packet of the connection was kept and none of them is a FIN
/// of that sender; nothing is inferred when data or acknowledgements reach past the FIN's
/// number (more than one packet was lost, or it was not a FIN).
fn lost_fin(x: &ConnRef<'_>, dir: End) -> Option<LostFin> {
    if x.folded > 0 || x.sent[dir].first_fin.is_some() {
        return None;
    }
    let isn = isn_seen(x, dir)?;
    let rel = |p: &Pkt| p.seq.wrapping_sub(isn);
    // The sender's next number after its SYN and data: where its FIN goes.
    let fin = stream_end(x, dir, isn, false);
    let after = fin.wrapping_add(1);
    // Its number as the packet shows it: the sender's sequence number, the receiver's ack.
    let reach = |p: &Pkt| {
        if p.dir() == dir {
            (p.len == 0).then(|| rel(p))
        } else {
            (p.flags & flags::ACK != 0).then(|| p.ack.wrapping_sub(isn))
        }
    };
    // Exactly one number past the data: further, the lost packets may as well have been data
    // only (a lost Server Hello acknowledged by a proxy that then closes looks the same).
    if x.pkts
        .iter()
        .any(|p| reach(p).is_some_and(|r| r.wrapping_sub(after).cast_signed() > 0))
    {
        return None;
    }
    let proof = x.pkts.iter().find(|p| reach(p) == Some(after))?;
    let before = x.pkts.iter().rev().find(|p| {
        p.dir() == dir
            && p.frame < proof.frame
            && (p.len > 0 || p.flags & flags::SYN != 0)
            && end_of(p, isn, flags::SYN) == fin
    });
    let sent = |p: &&Pkt| p.dir() == dir;
    let ttl = x
        .pkts
        .iter()
        .filter(sent)
        .take_while(|p| p.frame < proof.frame)
        .last()
        .or_else(|| x.pkts.iter().filter(sent).find(|p| p.frame > proof.frame))
        .map(|p| p.ttl);
    Some(LostFin {
        proof: proof.frame,
        ts: proof.ts,
        after: before.map(|p| p.frame),
        earliest: before.map_or(proof.ts, |p| p.ts.min(proof.ts)),
        acknowledged: proof.dir() != dir,
        ttl,
    })
}

/// How far the packets of `dir` captured in `x` reach into its stream, relative to its ISN
/// `isn` (the SYN is number 0): its SYN and data, and with `fin` its FIN. (A bare packet's
/// sequence number is where the stream stands, not a number seen.)
fn stream_end(x: &ConnRef<'_>, dir: End, isn: u32, fin: bool) -> u32 {
    let counted = flags::SYN | if fin { flags::FIN } else { 0 };
    x.pkts
        .iter()
        .filter(|p| p.dir() == dir && (p.len > 0 || p.flags & counted != 0))
        .map(|p| end_of(p, isn, counted))
        .fold(1, u32::max)
}

/// The number after packet `p`, relative to its sender's ISN `isn`: its data, and one for a
/// SYN or FIN among the `counted` flags.
fn end_of(p: &Pkt, isn: u32, counted: u16) -> u32 {
    p.seq
        .wrapping_sub(isn)
        .wrapping_add(p.len)
        .wrapping_add(u32::from(p.flags & counted != 0))
}

/// Numbers at the end of one end's stream that `x`'s capture lacks though the other end
/// (`closer`) acknowledged them by frame `by`, and that the capture at the other point, `far`
/// (where the bytes are carried as they are), does not show to be data: (how many, the first
/// packet acknowledging them). A FIN of the end among them would have been a close before the
/// closer's. Only where every packet of the connection was kept.
fn unseen_end(
    x: &ConnRef<'_>,
    far: Option<&ConnRef<'_>>,
    closer: End,
    by: u64,
) -> Option<(u32, u64)> {
    let other = closer.other();
    if x.folded > 0 {
        return None;
    }
    let isn = isn_seen(x, other)?;
    let seen = stream_end(x, other, isn, true);
    let ack = x.pkts.iter().take_while(|p| p.frame <= by).find(|p| {
        p.dir() == closer
            && p.flags & flags::ACK != 0
            && p.ack.wrapping_sub(isn).wrapping_sub(seen).cast_signed() > 0
    })?;
    let reached = ack.ack.wrapping_sub(isn);
    // Data the other point shows up to there (each point's numbers from its own ISN: a box
    // that forwards the bytes keeps their count) explains them without a FIN.
    if let Some(far) = far
        && let Some(far_isn) = isn_seen(far, other)
        && stream_end(far, other, far_isn, false) >= reached
    {
        return None;
    }
    Some((reached.wrapping_sub(seen), ack.frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{ConnTable, Gathered, TableBuilder};
    use tracekit_testutil::packets::{segment, with_payload};

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;
    const PSH: u8 = 0x08;
    /// The client's and the server's packets where they were sent (TTL 64), and after the
    /// four hops between the two capture points (60).
    const NEAR: u8 = 64;
    const FAR: u8 = 60;

    /// The ISNs of the client and of the server.
    const ISNS: [u32; 2] = [1000, 5000];

    /// One connection's capture: (from the server?, TTL, flags), a millisecond apart, each
    /// end's numbers one past its ISN after its SYN, acknowledging nothing.
    fn capture(steps: &[(bool, u8, u8)]) -> ConnTable {
        let numbered: Vec<Numbered> = steps
            .iter()
            .map(|&(back, ttl, fl)| (back, ttl, fl, u32::from(fl & SYN == 0), None, 0))
            .collect();
        capture_numbered(&numbered)
    }

    /// A packet with its numbers: (from the server?, TTL, flags, sequence number relative to
    /// the sender's ISN, acknowledgement number relative to the receiver's (`None`: 0),
    /// payload length).
    type Numbered = (bool, u8, u8, u32, Option<u32>, usize);

    /// [`capture`] of packets given with their numbers.
    fn capture_numbered(steps: &[Numbered]) -> ConnTable {
        let mut t = TableBuilder::new(None);
        for (i, &(back, ttl, fl, seq, ack, len)) in steps.iter().enumerate() {
            let (own, peer) = if back { (1, 0) } else { (0, 1) };
            let mut p = with_payload(
                segment(40_000, back, ttl, 0, ISNS[own] + seq, fl),
                &vec![0; len],
            );
            let ack = ack.map_or(0, |a| ISNS[peer] + a);
            p[42..46].copy_from_slice(&ack.to_be_bytes());
            let frame = i as u64 + 1;
            t.add(frame, frame as i64 * 1_000_000, 1, &p);
        }
        t.finish()
    }

    /// The handshake as each point sees it: at the client side the client's packets are near.
    fn handshake(client_side: bool) -> Vec<(bool, u8, u8)> {
        let (mine, theirs) = if client_side {
            (NEAR, FAR)
        } else {
            (FAR, NEAR)
        };
        vec![
            (false, mine, SYN),
            (true, theirs, SYN | ACK),
            (false, mine, ACK),
        ]
    }

    /// Who closed the connection whose captures at the client side and at the server side
    /// are the handshake followed by `client_side` and `server_side` (the clocks aligned).
    fn who(client_side: &[(bool, u8, u8)], server_side: &[(bool, u8, u8)]) -> Closed {
        let mut a = handshake(true);
        a.extend_from_slice(client_side);
        let mut b = handshake(false);
        b.extend_from_slice(server_side);
        judged(&capture(&a), &capture(&b))
    }

    /// [`who`] of packets given with their numbers (the handshake included).
    fn who_numbered(client_side: &[Numbered], server_side: &[Numbered]) -> Closed {
        judged(
            &capture_numbered(client_side),
            &capture_numbered(server_side),
        )
    }

    /// The handshake with its numbers, at the client side or at the server side.
    fn handshake_numbered(client_side: bool) -> Vec<Numbered> {
        let (mine, theirs) = if client_side {
            (NEAR, FAR)
        } else {
            (FAR, NEAR)
        };
        vec![
            (false, mine, SYN, 0, None, 0),
            (true, theirs, SYN | ACK, 0, Some(1), 0),
            (false, mine, ACK, 1, Some(1), 0),
        ]
    }

    /// Who closed the connection captured as `a` at the client side and `b` at the server
    /// side, the clocks aligned.
    fn judged(a: &ConnTable, b: &ConnTable) -> Closed {
        let (mut buf_a, mut buf_b) = (Gathered::default(), Gathered::default());
        let (c, s) = (a.with_packets(0, &mut buf_a), b.with_packets(0, &mut buf_b));
        let diff = PathDiff::default();
        closed(&Closing {
            c: &c,
            s: &s,
            off: Some(Offset {
                mid: 0,
                lo: None,
                hi: None,
            }),
            inits: [Some(NEAR), Some(NEAR)],
            diff: &diff,
            fast_close: None,
            rewritten_stream: false,
        })
    }

    #[test]
    fn the_first_fin_on_the_timeline_names_the_closer() {
        let fins = |client_side: bool| {
            let (mine, theirs) = if client_side {
                (NEAR, FAR)
            } else {
                (FAR, NEAR)
            };
            vec![(false, mine, FIN | ACK), (true, theirs, FIN | ACK)]
        };
        let c = who(&fins(true), &fins(false));
        assert_eq!(c.by, ClosedBy::Client);
        assert!(
            c.proof.starts_with("the client sent the first FIN"),
            "{}",
            c.proof
        );
        assert!(!c.doubt && c.caveats.is_empty());
        // The server first.
        let rev = |v: Vec<(bool, u8, u8)>| v.into_iter().rev().collect::<Vec<_>>();
        assert_eq!(
            who(&rev(fins(true)), &rev(fins(false))).by,
            ClosedBy::Server
        );
        // Nothing closed.
        let c = who(&[], &[]);
        assert_eq!(c.by, ClosedBy::None);
        assert_eq!(c.proof, "no FIN or RST was seen from either end");
    }

    #[test]
    fn a_reset_in_an_ends_name_from_another_sender_is_the_middleboxs() {
        // At the client side a RST in the server's name left a sender with initial TTL 255;
        // the server's own capture shows it sent none.
        let c = who(&[(true, 250, RST | ACK)], &[]);
        assert_eq!(c.by, ClosedBy::Middlebox);
        assert!(
            c.proof.contains("that the server did not send")
                && c.proof
                    .contains("initial TTL 255, the server sends with 64"),
            "{}",
            c.proof
        );
        // The near miss: the server's own RST, seen at both points with its TTL.
        let c = who(&[(true, FAR, RST | ACK)], &[(true, NEAR, RST | ACK)]);
        assert_eq!(c.by, ClosedBy::Server, "{}", c.proof);
    }

    #[test]
    fn a_reset_after_the_same_ends_fin_is_a_normal_close() {
        let near = [(true, NEAR, FIN | ACK), (true, NEAR, RST | ACK)];
        let far = [(true, FAR, FIN | ACK), (true, FAR, RST | ACK)];
        let c = who(&far, &near);
        assert_eq!(c.by, ClosedBy::Server);
        assert!(c.proof.contains("a normal (abortive) close"), "{}", c.proof);
        // The near miss: a RST alone.
        let c = who(&far[1..], &near[1..]);
        assert_eq!(c.by, ClosedBy::Server);
        assert!(!c.proof.contains("abortive"), "{}", c.proof);
    }
    #[test]
    fn a_fin_both_captures_lost_can_have_passed_before_the_first_close_seen() {
        // The server's FIN comes first; then the client's ACK stands one past the client's
        // stream (2: after its SYN and a FIN): the client's FIN passed, and both captures lack
        // it. It can have passed as early as the SYN, before the server's FIN.
        let after = |client_side: bool, client_seq: u32| {
            let (mine, theirs) = if client_side {
                (NEAR, FAR)
            } else {
                (FAR, NEAR)
            };
            let mut v = handshake_numbered(client_side);
            v.push((true, theirs, FIN | ACK, 1, Some(1), 0));
            v.push((false, mine, ACK, client_seq, Some(2), 0));
            v
        };
        let c = who_numbered(&after(true, 2), &after(false, 2));
        assert_eq!(c.by, ClosedBy::Server);
        assert!(c.doubt);
        assert!(
            c.proof.contains(
                "but the client's FIN that the client-side capture lacks can have passed before it"
            ),
            "{}",
            c.proof
        );
        assert_eq!(c.caveats.len(), 1, "{:?}", c.caveats);
        assert!(c.caveats[0].contains("who closed first rests on packets that capture lost"));
        // The near miss: the client's ACK stands where its stream ends (no FIN in between).
        let c = who_numbered(&after(true, 1), &after(false, 1));
        assert_eq!(c.by, ClosedBy::Server);
        assert!(
            !c.doubt && c.caveats.is_empty(),
            "{} {:?}",
            c.proof,
            c.caveats
        );
    }

    #[test]
    fn a_close_after_acknowledging_numbers_its_capture_lacks_is_in_doubt() {
        // At the client side the client acknowledges 100 numbers of the server's that this
        // capture lacks, then sends the first FIN.
        let client_side = |acked: u32| {
            let mut v = handshake_numbered(true);
            v.push((false, NEAR, ACK, 1, Some(1 + acked), 0));
            v.push((false, NEAR, FIN | ACK, 1, Some(1 + acked), 0));
            v
        };
        // The server side: `data` bytes the server sent (none: a bare ACK), the client's ACK
        // and its FIN (after the client side's, on the aligned clocks).
        let server_side = |data: usize| {
            let mut v = handshake_numbered(false);
            let flags = if data > 0 { PSH | ACK } else { ACK };
            v.push((true, NEAR, flags, 1, Some(1), data));
            v.push((false, FAR, ACK, 1, Some(1 + data as u32), 0));
            v.push((false, FAR, FIN | ACK, 1, Some(1 + data as u32), 0));
            v
        };
        let c = who_numbered(&client_side(100), &server_side(0));
        assert_eq!(c.by, ClosedBy::Client);
        assert!(c.doubt, "{} {:?}", c.proof, c.caveats);
        assert!(
            c.proof.contains(
                "frame 4 there acknowledges 100 sequence number(s) of the server's that the client-side capture lacks"
            ),
            "{}",
            c.proof
        );
        assert_eq!(c.caveats.len(), 1, "{:?}", c.caveats);
        // Near misses: nothing unseen acknowledged; or the server side shows the numbers to
        // be data.
        for (acked, data) in [(0, 0), (100, 100)] {
            let c = who_numbered(&client_side(acked), &server_side(data));
            assert_eq!(c.by, ClosedBy::Client);
            assert!(
                !c.doubt && c.caveats.is_empty(),
                "{} {:?}",
                c.proof,
                c.caveats
            );
        }
    }
}
