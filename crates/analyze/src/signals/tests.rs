//! Unit tests of the signals: each fires on its case and not on the near miss.

use super::*;
use crate::trace::{ConnTable, Gathered, TableBuilder};
use tracekit_testutil::packets::{segment, with_payload};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// One connection as a capture point sees it: a handshake (the client's SYN with `syn`
/// flags, the ISNs `isns`) and a data segment each way; `edit` changes each frame's bytes
/// (from the server?, the frame).
fn point(syn: u8, isns: [u32; 2], edit: &dyn Fn(bool, &mut Vec<u8>)) -> ConnTable {
    point_at(syn, isns, edit, 1_000_000)
}

/// [`point`] with `step` nanoseconds between its packets; the client's ACKs acknowledge
/// the server's SYN/ACK (so the point sees the handshake complete).
fn point_at(syn: u8, isns: [u32; 2], edit: &dyn Fn(bool, &mut Vec<u8>), step: i64) -> ConnTable {
    let [ci, si] = isns;
    let steps = [
        (false, syn, ci, &b""[..]),
        (true, SYN | ACK, si, &b""[..]),
        (false, ACK, ci + 1, &b""[..]),
        (false, PSH | ACK, ci + 1, &b"hello"[..]),
        (true, PSH | ACK, si + 1, &b"world"[..]),
    ];
    let mut t = TableBuilder::new(None);
    for (i, &(back, fl, seq, data)) in steps.iter().enumerate() {
        let mut p = with_payload(segment(40_000, back, 64, 0, seq, fl), data);
        if !back && fl & ACK != 0 {
            p[42..46].copy_from_slice(&(si + 1).to_be_bytes());
        }
        edit(back, &mut p);
        let frame = i as u64 + 1;
        t.add(frame, frame as i64 * step, 1, &p);
    }
    t.finish()
}

const PLAIN: &dyn Fn(bool, &mut Vec<u8>) = &|_, _| {};

/// The signals `run` finds between the client side and the server side.
fn found(
    client_side: &ConnTable,
    server_side: &ConnTable,
    run: &dyn Fn(&ConnRef<'_>, &ConnRef<'_>, &mut Found),
) -> Vec<Signal> {
    let (mut buf_a, mut buf_b) = (Gathered::default(), Gathered::default());
    let here = client_side.with_packets(0, &mut buf_a);
    let there = server_side.with_packets(0, &mut buf_b);
    let mut found = Found::default();
    run(&here, &there, &mut found);
    found.evidence.iter().map(|e| e.signal).collect()
}

#[test]
fn translated_fires_on_a_changed_address_not_on_the_same_one() {
    let a = point(SYN, [1000, 5000], PLAIN);
    // The client's address as the server side sees it (source of its packets, destination
    // of the server's).
    let nat = |back: bool, p: &mut Vec<u8>| {
        let at = if back { 30 } else { 26 };
        p[at..at + 4].copy_from_slice(&[203, 0, 113, 7]);
    };
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| translated(c, s, f);
    assert_eq!(
        found(&a, &point(SYN, [1000, 5000], &nat), &run),
        [Signal::AddressesTranslated]
    );
    assert!(found(&a, &point(SYN, [1000, 5000], PLAIN), &run).is_empty());
}

#[test]
fn isn_rewritten_fires_on_a_changed_isn_not_on_the_same_one() {
    let a = point(SYN, [1000, 5000], PLAIN);
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| {
        isn_rewritten(c, s, None, f);
    };
    assert_eq!(
        found(&a, &point(SYN, [77_000, 5000], PLAIN), &run),
        [Signal::IsnRewritten]
    );
    assert!(found(&a, &point(SYN, [1000, 5000], PLAIN), &run).is_empty());
}

#[test]
fn ipid_rewritten_fires_when_every_packet_seen_twice_has_another_id() {
    let a = point(SYN, [1000, 5000], PLAIN);
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| {
        let same = crate::path::same_packets(c, s);
        ipid_rewritten(c, s, &same, f);
    };
    let renumbered = |_: bool, p: &mut Vec<u8>| p[18] ^= 0x5a;
    assert_eq!(
        found(&a, &point(SYN, [1000, 5000], &renumbered), &run),
        [Signal::IpidRewritten]
    );
    // The near miss: one packet keeps its ID.
    let one_kept = |back: bool, p: &mut Vec<u8>| {
        if back {
            p[18] ^= 0x5a;
        }
    };
    assert!(found(&a, &point(SYN, [1000, 5000], &one_kept), &run).is_empty());
}

#[test]
fn ecn_stripped_fires_when_the_syns_ecn_request_is_lost_not_when_it_passes() {
    let a = point(SYN | ECE | CWR, [1000, 5000], PLAIN);
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| {
        let same = crate::path::same_packets(c, s);
        ecn_stripped(c, s, &same, f);
    };
    assert_eq!(
        found(&a, &point(SYN, [1000, 5000], PLAIN), &run),
        [Signal::EcnStripped]
    );
    assert!(found(&a, &point(SYN | ECE | CWR, [1000, 5000], PLAIN), &run).is_empty());
}

#[test]
fn ttl_origin_fires_on_a_ttl_of_another_sender_not_on_one_hops_lowered() {
    let a = point(SYN, [1000, 5000], PLAIN);
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| {
        ttl_origin(c, s, f);
    };
    // In the client's name at the server side: sent with 255, the client sends with 64.
    let rebuilt = |back: bool, p: &mut Vec<u8>| {
        if !back {
            p[22] = 250;
        }
    };
    assert_eq!(
        found(&a, &point(SYN, [1000, 5000], &rebuilt), &run),
        [Signal::TtlOriginMismatch]
    );
    // The near miss: four routers on the way lower it, from the same initial TTL.
    let routed = |back: bool, p: &mut Vec<u8>| {
        if !back {
            p[22] = 60;
        }
    };
    assert!(found(&a, &point(SYN, [1000, 5000], &routed), &run).is_empty());
}

#[test]
fn split_handshake_fires_when_one_point_waits_far_longer_for_its_handshake() {
    let a = point_at(SYN, [1000, 5000], PLAIN, 1_000_000);
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| {
        split_handshake(c, s, (None, None), f);
    };
    let slow = point_at(SYN, [1000, 5000], PLAIN, 40_000_000);
    assert_eq!(found(&a, &slow, &run), [Signal::SplitHandshake]);
    // The near miss: a little slower (jitter), not three times.
    let near = point_at(SYN, [1000, 5000], PLAIN, 2_000_000);
    assert!(found(&a, &near, &run).is_empty());
}

#[test]
fn dropped_and_injected_fire_on_packets_seen_at_one_point_only() {
    let diff = PathDiff {
        dropped: vec![(Point::ClientSide, 7, "the client's FIN".to_string())],
        injected: vec![(
            Point::ServerSide,
            9,
            "a RST in the server's name".to_string(),
            0x04,
            250,
        )],
        not_captured: Vec::new(),
    };
    let mut f = Found::default();
    dropped_or_injected(&diff, &mut f);
    let got: Vec<Signal> = f.evidence.iter().map(|e| e.signal).collect();
    assert_eq!(got, [Signal::DroppedInPath, Signal::InjectedInPath]);
    assert_eq!(f.evidence[0].frames_a, [7]);
    assert_eq!(f.evidence[1].frames_b, [9]);
    // Nothing seen at one point only: nothing said.
    let mut f = Found::default();
    dropped_or_injected(&PathDiff::default(), &mut f);
    assert!(f.evidence.is_empty());
}

/// A SYN or SYN/ACK frame given an MSS option (the TCP header grows by its 4 bytes).
fn with_mss(p: &mut Vec<u8>, mss: u16) {
    let [hi, lo] = mss.to_be_bytes();
    with_options(p, &[2, 4, hi, lo]);
}

/// A frame whose TCP header gains `options` (a multiple of 4 bytes) after the ones it has.
fn with_options(p: &mut Vec<u8>, options: &[u8]) {
    let end = 34 + usize::from(p[46] >> 4) * 4;
    p.splice(end..end, options.iter().copied());
    p[46] += (options.len() as u8 / 4) << 4;
    let total = u16::from_be_bytes([p[16], p[17]]) + options.len() as u16;
    p[16..18].copy_from_slice(&total.to_be_bytes());
}

#[test]
fn mss_rewritten_fires_on_a_clamped_mss_not_on_the_same_one() {
    let syn_mss = |mss: u16| {
        move |back: bool, p: &mut Vec<u8>| {
            if p[47] & SYN != 0 {
                with_mss(p, if back { 1460 } else { mss });
            }
        }
    };
    let a = point(SYN, [1000, 5000], &syn_mss(1460));
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| options_rewritten(c, s, f);
    assert_eq!(
        found(&a, &point(SYN, [1000, 5000], &syn_mss(1380)), &run),
        [Signal::MssRewritten]
    );
    assert!(found(&a, &point(SYN, [1000, 5000], &syn_mss(1460)), &run).is_empty());
}
#[test]
fn ports_translated_fires_on_a_changed_port_not_on_the_same_one() {
    let a = point(SYN, [1000, 5000], PLAIN);
    // The client's port as the server side sees it.
    let napt = |back: bool, p: &mut Vec<u8>| {
        let at = if back { 36 } else { 34 };
        p[at..at + 2].copy_from_slice(&50_000u16.to_be_bytes());
    };
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| translated(c, s, f);
    assert_eq!(
        found(&a, &point(SYN, [1000, 5000], &napt), &run),
        [Signal::PortsTranslated]
    );
    assert!(found(&a, &point(SYN, [1000, 5000], PLAIN), &run).is_empty());
}

/// Gives the client's SYN `options` (the SYN/ACK keeps none).
fn syn_options(options: &'static [u8]) -> impl Fn(bool, &mut Vec<u8>) {
    move |back, p| {
        if !back && p[47] & SYN != 0 {
            with_options(p, options);
        }
    }
}

#[test]
fn wscale_rewritten_fires_on_another_window_scale_not_on_the_same_one() {
    let a = point(SYN, [1000, 5000], &syn_options(&[1, 3, 3, 7]));
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| options_rewritten(c, s, f);
    // The same layout (nop,ws) with another shift: the value, not the layout.
    assert_eq!(
        found(
            &a,
            &point(SYN, [1000, 5000], &syn_options(&[1, 3, 3, 2])),
            &run
        ),
        [Signal::WscaleRewritten]
    );
    assert!(
        found(
            &a,
            &point(SYN, [1000, 5000], &syn_options(&[1, 3, 3, 7])),
            &run
        )
        .is_empty()
    );
}

#[test]
fn options_rewritten_fires_on_another_layout_of_the_same_values() {
    let here = point(SYN, [1000, 5000], &syn_options(&[2, 4, 5, 180, 1, 3, 3, 7]));
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| options_rewritten(c, s, f);
    // MSS 1460 and window scale 7 both times; the padding moved (mss,nop,ws → mss,ws,nop).
    let moved = point(SYN, [1000, 5000], &syn_options(&[2, 4, 5, 180, 3, 3, 7, 1]));
    assert_eq!(found(&here, &moved, &run), [Signal::OptionsRewritten]);
    let (mut buf_a, mut buf_b) = (Gathered::default(), Gathered::default());
    let mut found_there = Found::default();
    options_rewritten(
        &here.with_packets(0, &mut buf_a),
        &moved.with_packets(0, &mut buf_b),
        &mut found_there,
    );
    let detail = &found_there.evidence[0].detail;
    assert!(
        detail.contains("mss,nop,ws at the client side and mss,ws,nop at the server side"),
        "{detail}"
    );
    let same = point(SYN, [1000, 5000], &syn_options(&[2, 4, 5, 180, 1, 3, 3, 7]));
    assert!(found(&here, &same, &run).is_empty());
}

/// A capture of one connection: (from the server?, flags, sequence number, acknowledgement
/// number, payload length, microseconds), TTL 64.
fn capture(steps: &[(bool, u8, u32, u32, usize, i64)]) -> ConnTable {
    let mut t = TableBuilder::new(None);
    for (i, &(back, fl, seq, ack, len, us)) in steps.iter().enumerate() {
        let mut p = with_payload(segment(40_000, back, 64, 0, seq, fl), &vec![b'x'; len]);
        p[42..46].copy_from_slice(&ack.to_be_bytes());
        t.add(i as u64 + 1, us * 1000, 1, &p);
    }
    t.finish()
}

#[test]
fn fin_faster_than_rtt_fires_on_a_fin_sooner_than_the_far_end_could_answer() {
    const FIN: u8 = 0x01;
    // The server side: the client is 20 ms away (SYN/ACK to the third packet); the server
    // sends no FIN.
    let s = capture(&[
        (false, SYN, 1000, 0, 0, 0),
        (true, SYN | ACK, 5000, 1001, 0, 100),
        (false, ACK, 1001, 5001, 0, 20_100),
        (false, PSH | ACK, 1001, 5001, 5, 20_200),
    ]);
    // The client side: a FIN in the server's name `after` µs after the client's data.
    let c = |after: i64| {
        capture(&[
            (false, SYN, 1000, 0, 0, 0),
            (true, SYN | ACK, 5000, 1001, 0, 20_000),
            (false, ACK, 1001, 5001, 0, 20_010),
            (false, PSH | ACK, 1001, 5001, 5, 20_020),
            (true, FIN | ACK, 5001, 1006, 0, 20_020 + after),
        ])
    };
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| {
        fin_faster_than_rtt(c, s, (None, None), f);
    };
    assert_eq!(found(&c(500), &s, &run), [Signal::FinFasterThanRtt]);
    // The near miss: 15 ms, more than half the round trip (jitter leaves room).
    assert!(found(&c(15_000), &s, &run).is_empty());
}

#[test]
fn tso_oversize_fires_on_a_segment_over_the_mss_and_is_no_middlebox_evidence() {
    // Both ends announce MSS 1460; the client sends `len` bytes in one segment.
    let point = |len: usize| {
        let mut t = TableBuilder::new(None);
        let steps: [(bool, u8, u32, u32, usize); 4] = [
            (false, SYN, 1000, 0, 0),
            (true, SYN | ACK, 5000, 1001, 0),
            (false, ACK, 1001, 5001, 0),
            (false, PSH | ACK, 1001, 5001, len),
        ];
        for (i, &(back, fl, seq, ack, len)) in steps.iter().enumerate() {
            let mut p = with_payload(segment(40_000, back, 64, 0, seq, fl), &vec![0; len]);
            p[42..46].copy_from_slice(&ack.to_be_bytes());
            if fl & SYN != 0 {
                with_mss(&mut p, 1460);
            }
            t.add(i as u64 + 1, i as i64 * 1_000_000, 1, &p);
        }
        t.finish()
    };
    let run = |c: &ConnRef<'_>, s: &ConnRef<'_>, f: &mut Found| offload(c, s, f);
    let (oversize, within) = (point(2920), point(1460));
    assert_eq!(found(&oversize, &within, &run), [Signal::TsoOversize]);
    let mut said = Found::default();
    let (mut buf_a, mut buf_b) = (Gathered::default(), Gathered::default());
    offload(
        &oversize.with_packets(0, &mut buf_a),
        &within.with_packets(0, &mut buf_b),
        &mut said,
    );
    // TTL 64 where it was captured: the capturing host sent it (send offload).
    let e = &said.evidence[0];
    assert!(!e.middlebox_evidence);
    assert!(e.detail.contains("send offload"), "{}", e.detail);
    assert_eq!(e.frames_a, [4]);
    assert!(found(&within, &within, &run).is_empty());
}
