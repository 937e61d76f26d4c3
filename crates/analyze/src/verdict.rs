//! The verdict on one connection: what kind of middlebox the signals make (each kind's rule
//! once, here), where it sits (hops from each capture point, its MAC address and vendor), how
//! sure that is, and the caveats that bound it.

use tracekit_wire::tcp::flags;

use crate::compare::{Found, Offset, isns};
use crate::model::{Confidence, Kind, Point, Signal};
use crate::path::PathDiff;
use crate::sides::vendor;
use crate::trace::{ConnRef, End, hops, initial_ttl};

/// A packet seen at one point only that the path comparison found injected: (side index,
/// frame, description, TCP flags, TTL).
pub(crate) type Injected = (Point, u64, String, u16, u8);

/// The kinds of middlebox the signals make (`none` alone when none).
pub(crate) struct Made<'d> {
    pub kinds: Vec<Kind>,
    /// A TCP proxy (it terminates TCP on both sides).
    pub proxy: bool,
    /// A SYN proxy (it answered the handshake, then forwarded one for one).
    pub syn_proxy: bool,
    /// The FINs and RSTs seen at one point only.
    pub injected_close: Vec<&'d Injected>,
}

/// The kinds of middlebox that the signals found (`f`) make, with `forwarded` (the client
/// side's bare segments reappear one to one, see `signals::isn_rewritten`).
pub(crate) fn kinds<'d>(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    (f, forwarded): (&Found, bool),
    diff: &'d PathDiff,
) -> Made<'d> {
    let injected_close: Vec<&Injected> = diff
        .injected
        .iter()
        .filter(|d| d.3 & (flags::FIN | flags::RST) != 0)
        .collect();
    // A proxy makes its own segments: new sequence numbers with new IP IDs, or with its own
    // TTL and options; a box whose bare segments reappear one to one only rewrote them.
    // New IP IDs count only where the forwarding could be checked (both ISNs known at both
    // points): a rewriter gives new IP IDs too.
    let checked = isns(c).is_some() && isns(s).is_some();
    // A split handshake whose later segments are forwarded one for one (bare ones with their
    // numbers, the ones with data with their IP IDs): the box answered the handshake itself
    // (a SYN cookie), opened the server side after the client's ACK and then spliced the two,
    // translating one side's numbers. It terminated nothing after the handshake, so it is not
    // a TCP proxy (whose own segments never reappear one for one).
    let syn_proxy = f.has(Signal::SplitHandshake) && forwarded && !f.has(Signal::IpidRewritten);
    // Segments forwarded one for one rule a terminating proxy out, whatever else holds: the
    // verdict may not contradict that evidence.
    let proxy = !forwarded
        && (f.has(Signal::SplitHandshake)
            || (f.has(Signal::IsnRewritten)
                && ((checked && f.has(Signal::IpidRewritten))
                    || (f.has(Signal::TtlOriginMismatch)
                        && (f.has(Signal::WscaleRewritten) || f.has(Signal::OptionsRewritten))))));
    let mut kinds: Vec<Kind> = Vec::new();
    if syn_proxy {
        // The handshake it made explains the new ISN, options, window scale and ECN.
        if f.has(Signal::AddressesTranslated) || f.has(Signal::PortsTranslated) {
            kinds.push(Kind::Nat);
        }
        kinds.push(Kind::SynProxy);
    } else if proxy {
        kinds.push(Kind::TcpProxy);
        if let (Some(x), Some(y)) = (c.client_random(), s.client_random())
            && x != y
        {
            kinds.push(Kind::TlsInterceptor);
        } else if let (Some(x), Some(y)) = (c.server_random(), s.server_random())
            && x != y
        {
            kinds.push(Kind::TlsInterceptor);
        }
    } else {
        if f.has(Signal::AddressesTranslated) || f.has(Signal::PortsTranslated) {
            kinds.push(Kind::Nat);
        }
        if f.has(Signal::IsnRewritten) {
            kinds.push(Kind::SeqRandomizer);
        }
        if f.has(Signal::MssRewritten) {
            kinds.push(Kind::MssClamp);
        }
        if f.has(Signal::EcnStripped) {
            kinds.push(Kind::EcnBleach);
        }
        if f.has(Signal::OptionsRewritten) || f.has(Signal::WscaleRewritten) {
            kinds.push(Kind::OptionStripper);
        }
        if !injected_close.is_empty() && (f.has(Signal::TtlOriginMismatch) || f.proxy_proof) {
            kinds.push(Kind::RstInjector);
        }
    }
    if kinds.is_empty() {
        kinds.push(Kind::None);
    }

    Made {
        kinds,
        proxy,
        syn_proxy,
        injected_close,
    }
}

/// Where the middlebox sits.
pub(crate) struct Place {
    /// Hops between the two capture points.
    pub path: Option<u8>,
    /// Hops from each capture point to the middlebox.
    pub client_side: Option<u8>,
    pub server_side: Option<u8>,
    /// Its MAC address (the source of what it sends to a capture point next to it), and the
    /// vendor of that address.
    pub mac: Option<[u8; 6]>,
    pub vendor: Option<String>,
}

/// Where the middlebox of `kinds` sits: from the handshake's TTLs, those of the packets in an
/// end's name another sender built (`foreign_ttl`, by direction) and of the closes it injected;
/// `proxy`: a TCP or SYN proxy made the handshake packets each end saw.
pub(crate) fn place(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    (kinds, proxy): (&[Kind], bool),
    (injected_close, foreign_ttl): (&[&Injected], &[Vec<u8>; 2]),
) -> Place {
    let path = match (c.syn, s.syn) {
        (Some(x), Some(y)) if !proxy && initial_ttl(x.ttl) == initial_ttl(y.ttl) => {
            Some(hops(y.ttl).saturating_sub(hops(x.ttl)))
        }
        _ => None,
    };
    // A proxy, or a SYN proxy, made the handshake packets each end saw: their TTLs place it.
    let (client_side, server_side) = if proxy {
        (
            c.syn_ack
                .map(|h| hops(h.ttl))
                .or_else(|| foreign_ttl[End::Server].first().map(|&t| hops(t))),
            s.syn
                .map(|h| hops(h.ttl))
                .or_else(|| foreign_ttl[End::Client].first().map(|&t| hops(t))),
        )
    } else if kinds.contains(&Kind::RstInjector) {
        let near = injected_close
            .iter()
            .find(|d| d.0 == Point::ClientSide)
            .map(|d| hops(d.4));
        (near, near.zip(path).map(|(n, p)| p.saturating_sub(n + 1)))
    } else {
        (None, None)
    };

    // Middlebox MAC: the source MAC of what it sends to an adjacent capture point.
    let (mac, vendor) = if kinds == [Kind::None] {
        (None, None)
    } else if server_side == Some(0) {
        (
            s.sent[End::Client].src_mac,
            s.sent[End::Client].src_mac.and_then(|m| vendor(&m)),
        )
    } else if client_side == Some(0) {
        (
            c.sent[End::Server].src_mac,
            c.sent[End::Server].src_mac.and_then(|m| vendor(&m)),
        )
    } else {
        (None, None)
    };

    Place {
        path,
        client_side,
        server_side,
        mac,
        vendor,
    }
}

/// How sure the verdict is: `high` with a proof (a split handshake, a close faster than the
/// round trip) or three strong signals (two with a proven clock interval), `medium` with one,
/// or with no middlebox and both handshakes seen; `low` otherwise.
pub(crate) fn confidence(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    f: &Found,
    middlebox_present: bool,
    off: Option<Offset>,
) -> Confidence {
    let strong = f.evidence.iter().filter(|e| e.middlebox_evidence).count();
    if f.proxy_proof
        || strong >= 3
        || (middlebox_present && off.is_some_and(|o| o.lo.is_some()) && strong >= 2)
    {
        Confidence::High
    } else if strong >= 1 || (!middlebox_present && c.syn.is_some() && s.syn.is_some()) {
        Confidence::Medium
    } else {
        Confidence::Low
    }
}

/// The caveats that bound what the comparison says: clocks, incomplete handshakes, packets
/// counted but not compared, constant IP IDs, offload.
pub(crate) fn caveats(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    f: &Found,
    off: Option<Offset>,
    caveats: &mut Vec<String>,
) {
    if off.is_none() {
        caveats.push("no packet could be matched between the traces: times across them are not comparable, and time-based proofs were skipped".to_string());
    } else if off.is_some_and(|o| o.lo.is_none()) {
        caveats.push("the clock offset rests on packets matched in one direction only; time-based statements use the estimate, not a proven interval".to_string());
    }
    for (x, side) in [(c, Point::ClientSide), (s, Point::ServerSide)] {
        if x.syn.is_none() || x.syn_ack.is_none() {
            caveats.push(format!("the handshake is not complete in the {side}-side capture; facts drawn from it are missing"));
        }
        if x.folded > 0 {
            caveats.push(format!(
                "{} later packets at the {side} side were counted but not compared one by one",
                x.folded
            ));
        }
    }
    for (x, side) in [(c, Point::ClientSide), (s, Point::ServerSide)] {
        for who in End::BOTH {
            let ids = x.ip_ids(who);
            if ids.len() > 2 && ids.iter().skip(1).all(|&i| i == ids[1]) {
                caveats.push(format!("the {who}'s IP IDs are constant at the {side} side: IP ID comparisons there say little"));
            }
        }
    }
    if f.evidence.iter().any(|e| e.signal == Signal::TsoOversize) {
        caveats.push("segments larger than the MSS come from offload on the capturing host; they were not dropped for their size if they were acknowledged".to_string());
    }
}
