//! The signals of a middlebox that compare one connection's packets at the two capture points
//! (the client side `c`, the server side `s`), each with its rule and its evidence text, each
//! pushed as evidence when it fires (names as in docs/analyze-json.md).

use std::fmt::Write;

use rustc_hash::FxHashMap;
use tracekit_wire::tcp::flags;

use crate::closer::FastClose;
use crate::compare::{Found, Offset, evidence, isn_seen, isns, ms_text, opt_frames};
use crate::model::{Point, Signal};
use crate::path::{PathDiff, describe_pkt, dropped_text, injected_text};
use crate::sentence::option_change;
use crate::trace::{Close, Conn, ConnRef, End, Pkt, hops, initial_ttl};

/// The frame of the connection's SYN, if any.
fn syn_frames(x: &Conn) -> Vec<u64> {
    opt_frames(x.syn.map(|h| h.frame))
}

/// The frame of the connection's SYN/ACK, if any.
fn synack_frames(x: &Conn) -> Vec<u64> {
    opt_frames(x.syn_ack.map(|h| h.frame))
}

/// `addresses-translated`, `ports-translated`: the ends' addresses or ports differ between the
/// two points (NAT).
pub(crate) fn translated(c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found) {
    if c.client.addr != s.client.addr || c.server.addr != s.server.addr {
        let mut parts = Vec::new();
        if c.client.addr != s.client.addr {
            parts.push(format!(
                "the client {} appears at the server side as {}",
                c.client.addr, s.client.addr
            ));
        }
        if c.server.addr != s.server.addr {
            parts.push(format!(
                "the server {} appears at the client side as {}",
                s.server.addr, c.server.addr
            ));
        }
        f.push(evidence(
            Signal::AddressesTranslated,
            parts.join("; "),
            syn_frames(c),
            syn_frames(s),
        ));
    }
    if c.client.port != s.client.port || c.server.port != s.server.port {
        f.push(evidence(
            Signal::PortsTranslated,
            format!(
                "ports {} → {} at the client side are {} → {} at the server side",
                c.client.port, c.server.port, s.client.port, s.server.port
            ),
            syn_frames(c),
            syn_frames(s),
        ));
    }
}

/// `isn-rewritten`: an end's initial sequence number differs between the two points. Also
/// whether the client side's bare segments reappear one to one at the server side with the
/// same flags, window and relative numbers (forwarded with their numbers rewritten, not
/// re-sent by a proxy): asked only of rewritten numbers, the verdict reads it with
/// `isn-rewritten`.
pub(crate) fn isn_rewritten(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    off: Option<Offset>,
    f: &mut Found,
) -> bool {
    let mut isn_parts = Vec::new();
    for who in End::BOTH {
        if let (Some(x), Some(y)) = (isn_seen(c, who), isn_seen(s, who))
            && x != y
        {
            isn_parts.push(format!(
                "the {who}'s initial sequence number is {x} at the client side and {y} at the server side (difference {})",
                y.wrapping_sub(x)
            ));
        }
    }
    // Forwarded one to one, numbers rewritten (not a proxy's own segments)? Asked only of
    // rewritten numbers: the verdict reads it together with `isn-rewritten`.
    let mut forwarded = false;
    if !isn_parts.is_empty() {
        let (kept, bare_total, kept_a, kept_b) = forwarded_bare(c, s, off);
        forwarded = kept >= 3 && 2 * kept >= bare_total;
        let mut fa = syn_frames(c);
        fa.extend(synack_frames(c));
        let mut fb = syn_frames(s);
        fb.extend(synack_frames(s));
        if forwarded {
            isn_parts.push(format!(
                "{kept} of the client side's {bare_total} bare segments reappear at the server side with the same flags, window and relative numbers, in causal order: the packets were forwarded with their numbers rewritten, not re-sent by a proxy"
            ));
            fa.extend(kept_a.iter().take(4));
            fb.extend(kept_b.iter().take(4));
        }
        f.push(evidence(Signal::IsnRewritten, isn_parts.join("; "), fa, fb));
    }
    forwarded
}

/// `ipid-rewritten`: the packets seen at both points (`same`) carry other IP IDs at each, and
/// none the same (a router leaves the IP ID alone).
pub(crate) fn ipid_rewritten(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    same: &[(&Pkt, &Pkt)],
    f: &mut Found,
) {
    let (same_ids, differing_ids) = ipid_pairs(c, s, same);
    if !differing_ids.is_empty() && same_ids == 0 {
        let (_, _, ia, ib) = differing_ids[0];
        f.push(evidence(
            Signal::IpidRewritten,
            format!(
                "the same packets carry other IP IDs at the two points (e.g. 0x{ia:04x} at the client side, 0x{ib:04x} at the server side); a router leaves the IP ID alone",
            ),
            differing_ids.iter().map(|d| d.0).collect(),
            differing_ids.iter().map(|d| d.1).collect(),
        ));
    }
}

/// `ecn-stripped`: the handshake's ECN negotiation, or the ECT codepoints of packets seen at
/// both points (`same`: a dropped packet says nothing of ECN), lost between the points.
pub(crate) fn ecn_stripped(c: &ConnRef<'_>, s: &ConnRef<'_>, same: &[(&Pkt, &Pkt)], f: &mut Found) {
    let mut ecn_parts = Vec::new();
    let (mut ecn_a, mut ecn_b) = (Vec::new(), Vec::new());
    if let (Some(x), Some(y)) = (c.syn, s.syn)
        && x.ecn_flags & !y.ecn_flags != 0
    {
        ecn_parts.push(format!(
            "the client's SYN asks for ECN ({}) at the client side, but not at the server side",
            ecn_names(x.ecn_flags)
        ));
        ecn_a.push(x.frame);
        ecn_b.push(y.frame);
    }
    if let (Some(x), Some(y)) = (c.syn_ack, s.syn_ack)
        && y.ecn_flags & !x.ecn_flags & flags::ECE != 0
    {
        ecn_parts.push(
            "the server's SYN/ACK accepts ECN (ECE) at the server side, but not at the client side"
                .to_string(),
        );
        ecn_a.push(x.frame);
        ecn_b.push(y.frame);
    }
    // ECT codepoints on packets seen at both points (a dropped packet says nothing of ECN).
    for who in End::BOTH {
        let from_client = who == End::Client;
        let bleached: Vec<&(&Pkt, &Pkt)> = same
            .iter()
            .filter(|(p, q)| {
                p.from_client == from_client && {
                    let (sent, got) = if from_client { (p, q) } else { (q, p) };
                    sent.ecn != 0 && got.ecn == 0
                }
            })
            .collect();
        if let Some((p, q)) = bleached.first() {
            ecn_parts.push(format!(
                "{} packet(s) the {who} sent ECN-capable (ECT) arrive not ECN-capable",
                bleached.len()
            ));
            ecn_a.push(p.frame);
            ecn_b.push(q.frame);
        }
    }
    if !ecn_parts.is_empty() {
        f.push(evidence(
            Signal::EcnStripped,
            ecn_parts.join("; "),
            ecn_a,
            ecn_b,
        ));
    }
}

/// Whether the ECN bits of one packet differ between the points (its ECE/CWR flags or its IP
/// ECN codepoint, `p` at one point, `q` at the other): what the ladder marks on the packet.
/// [`ecn_stripped`] asks more of the connection: ECN asked for or marked by the sender and
/// gone on the way.
pub(crate) fn ecn_differs(p: &Pkt, q: &Pkt) -> bool {
    (p.flags ^ q.flags) & (flags::ECE | flags::CWR) != 0 || p.ecn != q.ecn
}

/// `wscale-rewritten`, `mss-rewritten`, `options-rewritten`: the handshake's window scale,
/// MSS, or the layout of its options differ between the points.
pub(crate) fn options_rewritten(c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found) {
    for (name, get) in [
        (
            Signal::WscaleRewritten,
            (|h: &crate::trace::Handshake| h.options.window_scale.map(u32::from))
                as fn(&crate::trace::Handshake) -> Option<u32>,
        ),
        (Signal::MssRewritten, |h| h.options.mss.map(u32::from)),
    ] {
        let mut parts = Vec::new();
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        for (who, x, y) in [
            ("client's SYN", c.syn, s.syn),
            ("server's SYN/ACK", c.syn_ack, s.syn_ack),
        ] {
            if let (Some(x), Some(y)) = (x, y)
                && get(&x) != get(&y)
            {
                let show = |v: Option<u32>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
                let what = if name == Signal::MssRewritten {
                    "MSS"
                } else {
                    "window scale"
                };
                parts.push(format!(
                    "the {who} has {what} {} at the client side and {} at the server side",
                    show(get(&x)),
                    show(get(&y))
                ));
                fa.push(x.frame);
                fb.push(y.frame);
            }
        }
        if !parts.is_empty() {
            f.push(evidence(name, parts.join("; "), fa, fb));
        }
    }
    {
        let mut parts = Vec::new();
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        for (who, x, y) in [
            ("client's SYN", c.syn, s.syn),
            ("server's SYN/ACK", c.syn_ack, s.syn_ack),
        ] {
            if let (Some(x), Some(y)) = (x, y)
                && x.options.layout() != y.options.layout()
            {
                let (lx, ly) = (x.options.layout_string(), y.options.layout_string());
                parts.push(format!(
                    "the {who} has options {lx} at the client side and {ly} at the server side{}",
                    option_change(&lx, &ly).map_or(String::new(), |c| format!(" ({c})"))
                ));
                fa.push(x.frame);
                fb.push(y.frame);
            }
        }
        if !parts.is_empty() {
            f.push(evidence(Signal::OptionsRewritten, parts.join("; "), fa, fb));
        }
    }
}

/// Bare segments (no payload, no SYN/FIN/RST) kept at the client side and how many of them
/// reappear at the server side with the same flags and window and the same sequence and
/// acknowledgement numbers relative to each side's ISNs, in an order the clock allows (sent
/// before received over the whole feasible offset interval): (reappearing, of, frames at the
/// client side, frames at the server side). A box that forwards segments one to one while
/// rewriting their numbers keeps nearly all of them; a proxy acknowledges on its own terms,
/// and one of its ACKs that reappears out of causal order rules forwarding out.
fn forwarded_bare(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    off: Option<Offset>,
) -> (usize, usize, Vec<u64>, Vec<u64>) {
    let (Some(ic), Some(is)) = (isns(c), isns(s)) else {
        return (0, 0, Vec::new(), Vec::new());
    };
    let bare = |p: &&Pkt| p.len == 0 && !p.is_control();
    let key = |p: &Pkt, isn: [u32; 2]| {
        let d = p.dir();
        (
            p.from_client,
            p.flags,
            p.window,
            p.seq.wrapping_sub(isn[d]),
            p.ack.wrapping_sub(isn[d.other()]),
        )
    };
    let mut at_server: FxHashMap<(bool, u16, u16, u32, u32), &Pkt> = FxHashMap::default();
    for q in s.pkts.iter().filter(bare) {
        at_server.entry(key(q, is)).or_insert(q);
    }
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    let mut total = 0;
    for p in c.pkts.iter().filter(bare) {
        total += 1;
        let Some(q) = at_server.get(&key(p, ic)) else {
            continue;
        };
        let causal = match off {
            None => true,
            // Client → server: seen at the client side first; server → client: the other way.
            Some(o) if p.from_client => o.hi.is_none_or(|hi| p.ts <= q.ts + hi),
            Some(o) => o.lo.is_none_or(|lo| q.ts + lo <= p.ts),
        };
        if !causal {
            return (0, total, Vec::new(), Vec::new());
        }
        fa.push(p.frame);
        fb.push(q.frame);
    }
    (fa.len(), total, fa, fb)
}

/// IP IDs of the packets seen at both points (handshake and same payload): how many agree,
/// and up to four that differ as (frame a, frame b, id a, id b).
fn ipid_pairs(c: &Conn, s: &Conn, same: &[(&Pkt, &Pkt)]) -> (u32, Vec<(u64, u64, u16, u16)>) {
    let mut agree = 0;
    let mut differ = Vec::new();
    let mut check = |a: Option<(u64, Option<u16>)>, b: Option<(u64, Option<u16>)>| {
        if let (Some((fa, Some(ia))), Some((fb, Some(ib)))) = (a, b) {
            if ia == 0 && ib == 0 {
                return;
            }
            if ia == ib {
                agree += 1;
            } else if differ.len() < 4 {
                differ.push((fa, fb, ia, ib));
            }
        }
    };
    check(
        c.syn.map(|h| (h.frame, h.ip_id)),
        s.syn.map(|h| (h.frame, h.ip_id)),
    );
    check(
        c.syn_ack.map(|h| (h.frame, h.ip_id)),
        s.syn_ack.map(|h| (h.frame, h.ip_id)),
    );
    for (p, q) in same {
        check(Some((p.frame, p.ip_id)), Some((q.frame, q.ip_id)));
    }
    (agree, differ)
}

fn ecn_names(f: u16) -> String {
    tracekit_wire::tcp::flag_names(f & (flags::ECE | flags::CWR))
}

/// The initial TTLs the ends send with (where known), and the TTLs of packets in each end's
/// name that left another sender (by direction).
pub(crate) struct Ttls {
    pub client_init: Option<u8>,
    pub server_init: Option<u8>,
    pub foreign: [Vec<u8>; 2],
}

/// `ttl-origin-mismatch`: packets in an end's name reach the other point with a TTL that left
/// another sender than the end (whose initial TTL its own packets show).
pub(crate) fn ttl_origin(c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found) -> Ttls {
    let client_init = c
        .syn
        .map(|h| initial_ttl(h.ttl))
        .or_else(|| c.ttls(End::Client).first().map(|t| initial_ttl(t.ttl)));
    let server_own = s
        .syn_ack
        .map(|h| initial_ttl(h.ttl))
        .or_else(|| s.ttls(End::Server).first().map(|t| initial_ttl(t.ttl)));
    // With no packet of the server at its own point, its SYN/ACK at the client side stands
    // for it (a proxy's SYN/ACK there would only hide a mismatch, never make one up).
    let server_init = server_own.or_else(|| c.syn_ack.map(|h| initial_ttl(h.ttl)));
    let mut ttl_parts = Vec::new();
    // Frames cited per point: the client's packets as the server side saw them, the server's
    // as the client side saw them.
    let mut frames: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut foreign_ttl: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (end, init, far) in [(End::Client, client_init, s), (End::Server, server_init, c)] {
        let Some(init) = init else { continue };
        let far_point = Point::near_to(end.other());
        let by_syn_ack = if end == End::Server && server_own.is_none() {
            " (its SYN/ACK there: the server-side capture has no packet of the server)"
        } else {
            ""
        };
        for t in far
            .ttls(end)
            .into_iter()
            .filter(|t| initial_ttl(t.ttl) != init)
        {
            ttl_parts.push(format!(
                "{} packet(s) in the {end}'s name reach the {far_point} side with TTL {} (sent with {}, {} hop(s) away), while the {end} sends with {init}{by_syn_ack}",
                t.count, t.ttl, initial_ttl(t.ttl), hops(t.ttl)
            ));
            frames[far_point].push(t.first_frame);
            foreign_ttl[end].push(t.ttl);
        }
    }
    let [ttl_a, ttl_b] = frames;
    if !ttl_parts.is_empty() {
        f.push(evidence(
            Signal::TtlOriginMismatch,
            ttl_parts.join("; "),
            ttl_a,
            ttl_b,
        ));
    }
    Ttls {
        client_init,
        server_init,
        foreign: foreign_ttl,
    }
}

/// `split-handshake`: the handshake takes far longer at one point than at the other, or the
/// SYN reaches the server side after the client completed its handshake (a box answered the
/// client itself). `late`: the point whose third handshake packet is a later one (its
/// handshake time is not compared).
pub(crate) fn split_handshake(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    (off, late): (Option<Offset>, Option<Point>),
    f: &mut Found,
) {
    let rtt = |x: &Conn, side: Point| x.rtt().filter(|_| late != Some(side));
    let mut split_parts = Vec::new();
    if let (Some(rc), Some(rs)) = (rtt(c, Point::ClientSide), rtt(s, Point::ServerSide)) {
        let (lo, hi) = (rc.min(rs), rc.max(rs));
        if hi > 3 * lo.max(1) && hi - lo > 200_000 {
            split_parts.push(format!(
                "the handshake takes {} at the client side and {} at the server side",
                ms_text(rc),
                ms_text(rs)
            ));
        }
    }
    if let (Some(o), Some(ack), Some(ssyn), true) =
        (off, c.ack3, s.syn, late != Some(Point::ClientSide))
    {
        // The SYN reached the server side after the client's handshake was complete: over the
        // whole feasible interval when known, else at the estimate.
        let lo = o.lo.unwrap_or(o.mid);
        if ssyn.ts + lo > ack.1 {
            split_parts.push(format!(
                "the SYN reaches the server side {} after the client completed its handshake{}",
                ms_text(ssyn.ts + lo - ack.1),
                if o.lo.is_some() {
                    " (at the earliest clock offset that fits the matched packets)"
                } else {
                    " (at the estimated clock offset)"
                }
            ));
        }
    }
    if !split_parts.is_empty() {
        let mut fa = syn_frames(c);
        fa.extend(c.ack3.map(|x| x.0));
        f.push(evidence(
            Signal::SplitHandshake,
            split_parts.join("; "),
            fa,
            syn_frames(s),
        ));
        f.proxy_proof = true;
    }
}

/// `fin-faster-than-rtt`: a FIN or RST in an end's name comes sooner after the packet before
/// it than that end's round trip allows (it cannot have answered it); the last such close.
pub(crate) fn fin_faster_than_rtt(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    (off, late): (Option<Offset>, Option<Point>),
    f: &mut Found,
) -> Option<FastClose> {
    let mut fast_close = None;
    for (here, there, who, near_rtt) in [
        (s, c, End::Client, c.towards_server()),
        (
            c,
            s,
            End::Server,
            s.towards_client()
                .filter(|_| late != Some(Point::ServerSide)),
        ),
    ] {
        let far = who.other();
        let (Some(close), Some(rtt)) = (here.first_close(who), near_rtt) else {
            continue;
        };
        let Some(prev) = here
            .pkts
            .iter()
            .rev()
            .find(|p| p.dir() != who && p.frame < close.frame)
        else {
            continue;
        };
        let dt = close.ts - prev.ts;
        // An answer takes a full round trip; half of one leaves room for jitter, and a far side
        // under 0.5 ms away is too close to tell from timestamping noise.
        if dt >= rtt / 2 || rtt < 500_000 {
            continue;
        }
        if left_before_it_could_answer(here, there, who, prev, std::ptr::eq(here, c), off) {
            continue;
        }
        let mut detail = format!(
            "at the {far} side, the {} in the {who}'s name comes {} after {}; the {who} is {} away (its handshake round trip), so it cannot have answered",
            if close.rst { "RST" } else { "FIN" },
            ms_text(dt),
            describe_pkt(prev),
            ms_text(rtt)
        );
        let own = there.first_close(who);
        if let Some(o) = off {
            own_close_later(&mut detail, (here, s), (close, own), o, who);
        }
        let (fa, fb) = if std::ptr::eq(here, c) {
            (
                vec![prev.frame, close.frame],
                opt_frames(own.map(|x| x.frame)),
            )
        } else {
            (
                opt_frames(own.map(|x| x.frame)),
                vec![prev.frame, close.frame],
            )
        };
        f.push(evidence(Signal::FinFasterThanRtt, detail, fa, fb));
        fast_close = Some((
            who,
            close,
            prev.tls.map(|t| t.describe()),
            dt,
            std::ptr::eq(here, s),
        ));
        f.proxy_proof = true;
    }
    fast_close
}

/// Adds to a fast close's `detail` how much later the end's own close (`own`, in its own
/// capture) left than the close in its name at `here` (on side a's clock, at the offset `o`;
/// `s`: the server side), or that its capture shows none.
fn own_close_later(
    detail: &mut String,
    (here, s): (&ConnRef<'_>, &ConnRef<'_>),
    (close, own): (Close, Option<Close>),
    o: Offset,
    who: End,
) {
    let to_a = |ts: i64| {
        if std::ptr::eq(here, s) {
            ts + o.hi.unwrap_or(o.mid)
        } else {
            ts
        }
    };
    match own {
        None => {
            let _ = write!(
                detail,
                "; the {who}'s own capture shows no FIN or RST from it at all"
            );
        }
        Some(own_close) => {
            let own_a = if std::ptr::eq(here, s) {
                own_close.ts
            } else {
                own_close.ts + o.lo.unwrap_or(o.mid)
            };
            if own_a > to_a(close.ts) {
                let _ = write!(
                    detail,
                    "; the {who}'s own {} (its frame {}) left only {} later{}",
                    if own_close.rst { "RST" } else { "FIN" },
                    own_close.frame,
                    ms_text(own_a - to_a(close.ts)),
                    if o.lo.is_some() {
                        ", over the whole feasible clock-offset interval"
                    } else {
                        ", at the estimated clock offset"
                    }
                );
            }
        }
    }
}

/// `dropped-in-path`, `injected-in-path`: packets seen at one point only (the path comparison).
pub(crate) fn dropped_or_injected(diff: &PathDiff, f: &mut Found) {
    let dropped = diff.dropped.iter().map(|d| (d.0, d.1));
    let dropped_texts = diff.dropped.iter().map(dropped_text);
    seen_at_one_point(Signal::DroppedInPath, dropped, dropped_texts, f);
    let injected = diff.injected.iter().map(|d| (d.0, d.1));
    let injected_texts = diff.injected.iter().map(injected_text);
    seen_at_one_point(Signal::InjectedInPath, injected, injected_texts, f);
}

/// The evidence of packets seen at one point only, when there are any: (point, frame) of each,
/// and their descriptions (the first four are told, the first eight frames of each point cited).
fn seen_at_one_point(
    signal: Signal,
    at: impl Iterator<Item = (Point, u64)>,
    texts: impl Iterator<Item = String>,
    f: &mut Found,
) {
    let text: Vec<String> = texts.take(4).collect();
    if text.is_empty() {
        return;
    }
    let (fa, fb): (Vec<_>, Vec<_>) = at.partition(|d| d.0 == Point::ClientSide);
    f.push(evidence(
        signal,
        text.join("; "),
        fa.iter().map(|d| d.1).take(8).collect(),
        fb.iter().map(|d| d.1).take(8).collect(),
    ));
}

/// `tso-oversize`: segments larger than the MSS, from offload on the capturing host (said, but
/// not middlebox evidence).
pub(crate) fn offload(c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found) {
    for (x, side) in [(c, Point::ClientSide), (s, Point::ServerSide)] {
        let is_a = side == Point::ClientSide;
        for who in End::BOTH {
            let over = x.over_mss(who);
            if over.count == 0 {
                continue;
            }
            let own_host = x.ttls(who).first().is_some_and(|t| hops(t.ttl) == 0);
            let what = if own_host {
                "send offload (TSO/GSO) on the capturing host: the NIC cuts them after the capture point"
            } else {
                "receive offload (GRO/LRO) on the capturing host: segments were merged before the capture point"
            };
            let mss = x.mss_for(who).unwrap_or(0);
            let mut e = evidence(
                Signal::TsoOversize,
                format!(
                    "{} segment(s) from the {who} at the {side} side are larger than the MSS of {mss} (largest {} bytes): {what}",
                    over.count, x.sent[who].largest_segment
                ),
                if is_a { over.first.clone() } else { Vec::new() },
                if is_a { Vec::new() } else { over.first.clone() },
            );
            e.middlebox_evidence = false;
            f.push(e);
        }
    }
}

/// Whether the sender's own capture (`there`) shows its first close leaving before the packet
/// that preceded the close at the other point (`prev`, seen at `here`) reached the sender: then
/// the close answered nothing and crossed that packet on the wire, as when a server's FIN
/// follows its close_notify while the client's RST to that record is under way. When `there`
/// saw `prev` too, its own clock says; otherwise the close must have left before `prev` could
/// arrive over the whole feasible clock-offset interval (the estimate when there is none).
/// `here_is_client_side` says which capture `here` is; offsets are the server side's, relative
/// to the client side.
fn left_before_it_could_answer(
    here: &ConnRef<'_>,
    there: &ConnRef<'_>,
    dir: End,
    prev: &Pkt,
    here_is_client_side: bool,
    off: Option<Offset>,
) -> bool {
    let Some(own) = there.first_close(dir) else {
        return false;
    };
    if let Some(arrived) = seen_at(prev, here, there) {
        return own.ts < arrived.ts;
    }
    let Some(o) = off else { return false };
    // The earliest time `prev` can be at `there`, in `there`'s clock.
    let earliest = if here_is_client_side {
        // client time = server time + offset: the largest offset gives the earliest.
        prev.ts - o.hi.unwrap_or(o.mid)
    } else {
        prev.ts + o.lo.unwrap_or(o.mid)
    };
    own.ts < earliest
}

/// The same packet as `p` (of `here`) at the other point: the same payload, or for a segment
/// without one the same flags and sequence and acknowledgement numbers relative to each side's
/// ISNs.
fn seen_at<'a>(p: &Pkt, here: &ConnRef<'_>, there: &ConnRef<'a>) -> Option<&'a Pkt> {
    if p.payload != 0 {
        return there
            .pkts
            .iter()
            .find(|q| q.from_client == p.from_client && q.payload == p.payload);
    }
    let (h, t) = (isns(here)?, isns(there)?);
    let (own, peer) = if p.from_client { (0, 1) } else { (1, 0) };
    let rel = |x: &Pkt, isn: [u32; 2]| {
        (
            x.seq.wrapping_sub(isn[own]),
            x.ack.wrapping_sub(isn[peer]),
            x.flags & 0x17,
        )
    };
    let want = rel(p, h);
    there
        .pkts
        .iter()
        .find(|q| q.from_client == p.from_client && rel(q, t) == want)
}

#[cfg(test)]
mod tests;
