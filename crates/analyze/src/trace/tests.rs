//! Unit tests of the connection table: what a trace's packets make of its connections.

use super::log::Logged;
use super::*;
use std::net::IpAddr;
use tracekit_testutil::packets::{segment, with_payload};

/// A connection that completed its handshake and carried a TLS exchange both ways.
fn served() -> Conn {
    let end = |a: [u8; 4], port| Endpoint {
        addr: IpAddr::from(a),
        port,
    };
    let mut c = Conn::new(
        end([192, 0, 2, 10], 53695),
        end([198, 51, 100, 20], 443),
        true,
        0,
    );
    let hs = Handshake {
        frame: 1,
        ts: 0,
        ttl: 64,
        ip_id: None,
        dont_fragment: true,
        ecn_flags: 0,
        ecn_ip: 0,
        window: 0,
        options: tracekit_wire::tcp::OptionSummary::default(),
        isn: 0,
        src_mac: None,
    };
    c.syn = Some(hs);
    c.syn_ack = Some(Handshake { frame: 2, ..hs });
    c.hellos_mut().client_hello = Some(4);
    c.sent[0].app_data = Some(8);
    c.sent[1].app_data = Some(9);
    c.sent[0].bytes = 600;
    c.sent[1].bytes = 3000;
    c
}

fn close(frame: u64, rst: bool) -> Close {
    Close {
        frame,
        ts: 0,
        rst,
        ttl: 64,
        seq: 0,
    }
}

#[test]
fn a_rst_after_the_same_ends_fin_is_an_abortive_close_not_a_failure() {
    let mut c = served();
    c.sent[End::Client].first_fin = Some(close(20, false));
    c.sent[End::Client].first_rst = Some(close(22, true));
    c.sent[End::Server].first_fin = Some(close(23, false));
    assert_eq!(c.failure(), None);
    assert_eq!(c.abortive_close(), Some(End::Client));
    // The nearest miss: the RST before that end's FIN (or without one) cut the exchange.
    c.sent[End::Client].first_rst = Some(close(19, true));
    assert_eq!(c.failure(), Some(Failure::Reset));
    assert_eq!(c.abortive_close(), None);
    c.sent[End::Client].first_fin = None;
    assert_eq!(c.failure(), Some(Failure::Reset));
}

#[test]
fn each_way_to_fail_and_its_nearest_miss() {
    let mut c = served();
    assert_eq!(c.failure(), None);
    c.syn_ack = None;
    assert_eq!(c.failure(), Some(Failure::TcpHandshake));
    let mut c = served();
    c.sent[0].app_data = None;
    c.sent[1].app_data = None;
    assert_eq!(c.failure(), Some(Failure::TlsHandshake));
    c.sent[0].app_data = None;
    c.sent[1].app_data = Some(9);
    assert_eq!(
        c.failure(),
        None,
        "application data one way: the handshake completed"
    );
    let mut c = served();
    c.hellos_mut().client_hello = None;
    c.sent[0].bytes = 600;
    c.sent[1].bytes = 0;
    assert_eq!(c.failure(), Some(Failure::NoAnswer));
    c.sent[0].bytes = 0;
    c.sent[1].bytes = 0;
    assert_eq!(
        c.failure(),
        None,
        "no data either way and no reset: nothing failed"
    );
}

#[test]
fn initial_ttl_is_the_nearest_common_value_at_or_above() {
    for (ttl, init, h) in [
        (1, 32, 31),
        (32, 32, 0),
        (33, 64, 31),
        (61, 64, 3),
        (64, 64, 0),
        (125, 128, 3),
        (128, 128, 0),
        (129, 255, 126),
        (247, 255, 8),
        (255, 255, 0),
    ] {
        assert_eq!(initial_ttl(ttl), init, "{ttl}");
        assert_eq!(hops(ttl), h, "{ttl}");
    }
}

/// A Client Hello record of 50 bytes whose random value is 32 bytes of `fill`.
fn client_hello(fill: u8) -> Vec<u8> {
    let mut r = vec![0x16, 3, 1, 0, 45, 1, 0, 0, 41, 3, 3];
    r.extend_from_slice(&[fill; 32]);
    r.resize(50, 0);
    r
}

fn syn(isn: u32, flags: u8) -> Vec<u8> {
    segment(40000, false, 64, 0, isn, flags)
}

#[test]
fn room_that_cannot_be_had_is_not_taken_and_room_that_can_changes_nothing() {
    let mut b = TableBuilder::new(None);
    b.add(1, 0, 1, &syn(1000, 0x02));
    b.expect(usize::MAX / 2);
    b.expect(100_000);
    assert!(b.conns.capacity() >= 100_000);
    b.add(2, 1, 1, &syn(1000, 0x10));
    b.add(3, 2, 1, &syn(5000, 0x02));
    assert_eq!(b.len(), 2);
    let t = b.finish();
    assert_eq!(t.len(), 2);
    assert_eq!(t.conn(0).sent[End::Client].packets, 2);
}

#[test]
fn a_new_syn_on_a_used_tuple_starts_a_new_connection_and_a_repeated_one_does_not() {
    let mut b = TableBuilder::new(None);
    b.add(1, 0, 1, &syn(1000, 0x02));
    b.add(2, 1, 1, &syn(1000, 0x02)); // retransmitted SYN
    b.add(3, 2, 1, &syn(5000, 0x02)); // port reuse
    b.add(4, 3, 1, &syn(5000, 0x10)); // an ACK of the second
    // Truncated and garbage packets are counted, never a panic.
    for n in 0..54 {
        b.add(10 + n as u64, 4, 1, &syn(1, 0x02)[..n]);
    }
    b.add(100, 5, 1, &[0xff; 60]);
    let t = b.finish();
    assert_eq!(t.len(), 2);
    assert_eq!(t.conn(0).sent[End::Client].packets, 2);
    assert_eq!(t.conn(1).syn.unwrap().isn, 5000);
    assert_eq!(t.conn(1).sent[End::Client].packets, 2);
    assert_eq!(t.packets, 4 + 54 + 1);
}

#[test]
fn mid_connection_roles_take_the_lower_port_and_on_equal_ports_the_lower_end_for_the_server() {
    use tracekit_testutil::packets::segment;
    let ends = |t: &ConnTable| (t.conn(0).client.to_string(), t.conn(0).server.to_string());
    for back in [false, true] {
        // 192.0.2.10:51000 <-> 198.51.100.20:443, first seen either way, no handshake.
        let mut b = TableBuilder::new(None);
        b.add(1, 0, 1, &segment(51000, back, 64, 0, 7, 0x10));
        let t = b.finish();
        assert_eq!(
            ends(&t),
            ("192.0.2.10:51000".into(), "198.51.100.20:443".into())
        );
        assert_eq!(t.conn(0).sent[End::of(!back)].packets, 1);
        // Both ends on port 443: the lower address is taken for the server.
        let mut b = TableBuilder::new(None);
        b.add(1, 0, 1, &segment(443, back, 64, 0, 7, 0x10));
        let t = b.finish();
        assert_eq!(
            ends(&t),
            ("198.51.100.20:443".into(), "192.0.2.10:443".into())
        );
        assert_eq!(t.conn(0).sent[End::of(back)].packets, 1);
    }
}

#[test]
fn per_packet_counts_kept_apart_reach_the_connection_in_full() {
    let mut b = TableBuilder::new(None);
    let mut frame = 0;
    let mut add = |b: &mut TableBuilder, pkt: Vec<u8>| {
        frame += 1;
        b.add(frame, frame as i64, 1, &pkt);
    };
    // TTL runs A A B A C D E (frames 2..8): four fit, in order of first appearance, with
    // the frame each was first seen in; E finds no room.
    add(&mut b, segment(40000, false, 64, 0, 1000, 0x02));
    for (ttl, ecn) in [
        (60, 0),
        (60, 2),
        (59, 2),
        (60, 3),
        (58, 1),
        (57, 0),
        (56, 0),
    ] {
        add(&mut b, segment(40000, false, ttl, ecn, 1001, 0x10));
    }
    add(&mut b, segment(40000, true, 128, 0, 7000, 0x12));
    // Several thousand flows (the flow index grows many times), each found again.
    for port in 1000..6000 {
        add(&mut b, segment(port, false, 64, 0, 1, 0x02));
    }
    for port in 1000..6000 {
        add(&mut b, segment(port, true, 64, 0, 9, 0x12));
    }
    let t = b.finish();
    assert_eq!(t.len(), 1 + 5000);
    let mut buf = Gathered::default();
    let c = &t.with_packets(0, &mut buf);
    let ttls: Vec<_> = c
        .ttls(End::Client)
        .iter()
        .map(|s| (s.ttl, s.count, s.first_frame))
        .collect();
    assert_eq!(ttls, [(64, 1, 1), (60, 3, 2), (59, 1, 4), (58, 1, 6)]);
    assert_eq!(c.ttls(End::Server).len(), 1);
    assert_eq!(c.sent[End::Client].ecn_codepoints, [4, 1, 2, 1]);
    assert_eq!([c.sent[0].packets, c.sent[1].packets], [8, 1]);
    assert_eq!(c.ip_ids(End::Client).as_slice(), [40000; 8]);
    assert_eq!(c.sent[End::Server].src_mac, Some([0, 0x1c, 0x7f, 0, 0, 1]));
    assert_eq!(c.pkts.len(), 9);
    assert_eq!((c.first_ts, c.last_ts), (1, 9));
    for n in 0..5000 {
        let c = t.conn(1 + n);
        assert_eq!(c.client.port, 1000 + n as u16);
        assert_eq!([c.sent[0].packets, c.sent[1].packets], [1, 1]);
        assert_eq!(c.syn_ack.unwrap().isn, 9);
    }
}

/// A segment of the connection from port 40000 with IP ID `id` and sequence number `seq`.
fn with_id(back: bool, id: u16, seq: u32, flags: u8) -> Vec<u8> {
    let mut p = segment(40000, back, 64, 0, seq, flags);
    p[18..20].copy_from_slice(&id.to_be_bytes());
    p
}

/// The log's 48-byte entries give back every field of a packet, all options set or not.
#[test]
fn logged_packets_come_back_as_they_went_in() {
    let base = 7_000_000_000;
    let plain = Pkt {
        frame: base,
        ts: -5,
        from_client: false,
        flags: 0x1ff,
        seq: u32::MAX,
        ack: 1,
        len: 65_535,
        ttl: 255,
        ip_id: None,
        ecn: 0,
        window: u16::MAX,
        tls: None,
        payload: 0,
    };
    let full = Pkt {
        frame: base + u64::from(u32::MAX),
        ts: i64::MAX,
        from_client: true,
        ip_id: Some(0),
        ecn: 3,
        tls: Some(TlsMark {
            content: 21,
            handshake: Some(0),
            alert: Some((2, 40)),
        }),
        payload: u64::MAX,
        ..plain
    };
    let partial = Pkt {
        ecn: 2,
        tls: Some(TlsMark {
            content: 22,
            handshake: Some(2),
            alert: None,
        }),
        ..plain
    };
    for p in [plain, full, partial] {
        let back = Logged::new(&p, 3, base).pkt(base);
        assert_eq!(format!("{back:?}"), format!("{p:?}"));
    }
}

/// Frames further apart than a chunk's `u32` offsets reach, or going back before a chunk's
/// first (a caller out of order), start a new chunk: every packet comes back with its own
/// frame number.
#[test]
fn frames_past_a_chunks_reach_start_a_new_chunk() {
    let mut b = TableBuilder::new(None);
    let frames = [
        1,
        2,
        1 + (1 << 33),
        3 + (1 << 33),
        u64::from(u32::MAX) << 4,
        5,
    ];
    for (n, &frame) in frames.iter().enumerate() {
        let flags = if n == 0 { 0x02 } else { 0x10 };
        b.add(frame, n as i64, 1, &segment(40000, false, 64, 0, 1, flags));
    }
    let t = b.finish();
    assert_eq!(t.kept.log.len(), 4);
    let got: Vec<u64> = t.packets_of(0).iter().map(|p| p.frame).collect();
    assert_eq!(got, frames);
}

/// Connections interleaved, one of them past `KEPT_ORDINARY` ordinary packets: each keeps
/// its own packets in trace order, and its first `KEPT_IP_IDS` IP IDs per direction, also
/// those of packets not kept because the trace's room for ordinary packets had run out.
#[test]
fn kept_packets_and_first_ip_ids_come_back_in_trace_order() {
    let mut b = TableBuilder::new(None);
    let mut frame = 0;
    let mut add = |b: &mut TableBuilder, pkt: &[u8]| {
        frame += 1;
        b.add(frame, frame as i64, 1, pkt);
        frame
    };
    let mut long = vec![add(&mut b, &with_id(false, 1, 100, 0x02))];
    let other = [add(&mut b, &segment(5000, false, 64, 0, 7, 0x02))];
    long.push(add(&mut b, &with_id(true, 2, 900, 0x12)));
    for n in 0..600u16 {
        let f = add(
            &mut b,
            &with_id(n % 3 == 0, 10 + n, 101 + u32::from(n), 0x10),
        );
        if long.len() < KEPT_ORDINARY + 2 {
            long.push(f);
        }
    }
    // Past the trace's room for ordinary packets, only control packets are kept; the first
    // IP IDs of the next connection are still taken.
    b.logs.kept_ordinary = KEPT_ORDINARY_TOTAL;
    let third = add(&mut b, &segment(6000, false, 64, 0, 1, 0x02));
    let mut third_ids = vec![6000];
    for n in 0..40u16 {
        let mut p = segment(6000, false, 64, 0, 2, 0x10);
        p[18..20].copy_from_slice(&(500 + n).to_be_bytes());
        add(&mut b, &p);
        third_ids.push(500 + n);
    }
    let t = b.finish();
    assert_eq!(t.len(), 3);
    let frames = |i: usize| t.packets_of(i).iter().map(|p| p.frame).collect::<Vec<_>>();
    let mut buf = Gathered::default();
    let c = &t.with_packets(0, &mut buf);
    assert_eq!(frames(0), long);
    assert_eq!(c.folded, 602 - long.len() as u64);
    for dir in End::BOTH {
        let kept_ids: Vec<u16> = c
            .pkts
            .iter()
            .filter(|p| p.dir() == dir)
            .filter_map(|p| p.ip_id)
            .take(KEPT_IP_IDS)
            .collect();
        assert_eq!(c.ip_ids(dir).as_slice(), kept_ids);
        assert_eq!(c.ip_ids(dir).len(), KEPT_IP_IDS);
    }
    assert_eq!(frames(1), other);
    let c = &t.with_packets(2, &mut buf);
    assert_eq!(frames(2), [third]);
    assert_eq!(c.ip_ids(End::Client).as_slice(), &third_ids[..KEPT_IP_IDS]);
    assert!(c.ip_ids(End::Server).is_empty());
}

/// A connection caught mid-stream whose client port (400) is below the server's (443): the
/// ports make the client the server, the Client Hello turns it round, and every
/// per-direction fact follows. Without a hello the guess stands.
#[test]
fn a_client_hello_from_the_side_taken_for_the_server_turns_the_connection_round() {
    for hello in [true, false] {
        let mut b = TableBuilder::new(None);
        let payload = if hello { client_hello(7) } else { vec![1; 50] };
        let packets = [
            segment(400, true, 60, 0, 9000, 0x10),
            with_payload(segment(400, false, 64, 2, 1000, 0x18), &payload),
            segment(400, true, 60, 0, 9000, 0x10),
            segment(400, true, 60, 0, 9000, 0x11),
        ];
        for (n, p) in packets.iter().enumerate() {
            b.add(n as u64 + 1, n as i64, 1, p);
        }
        let t = b.finish();
        assert_eq!(t.len(), 1);
        let mut buf = Gathered::default();
        let c = &t.with_packets(0, &mut buf);
        assert_eq!(c.roles_known, hello);
        let sender = if hello { End::Client } else { End::Server };
        let other = sender.other();
        assert_eq!(c.client.port, if hello { 400 } else { 443 });
        assert_eq!(c.sent[sender].packets, 1);
        assert_eq!(c.sent[other].packets, 3);
        assert_eq!(c.sent[sender].bytes, 50);
        assert_eq!(c.ttls(sender)[0].ttl, 64);
        assert_eq!(c.ttls(other)[0].ttl, 60);
        assert_eq!(c.sent[sender].ecn_codepoints, [0, 0, 1, 0]);
        assert_eq!(c.sent[sender].src_mac, Some([0, 0x1c, 0x7f, 0, 0, 0]));
        assert_eq!(c.sent[other].first_fin.map(|f| f.frame), Some(4));
        assert!(c.sent[sender].first_fin.is_none());
        let dirs: Vec<End> = c.pkts.iter().map(Pkt::dir).collect();
        assert_eq!(dirs, [other, sender, other, other]);
        if hello {
            assert_eq!(c.client_hello(), Some(2));
            assert_eq!(c.client_random(), Some([7; 32]));
            assert_eq!(c.first_client_payload, c.pkts[1].payload);
            assert_ne!(c.first_client_payload, 0);
        } else {
            assert_eq!(c.client_hello(), None);
            assert_eq!(c.first_client_payload, 0);
        }
    }
}

#[test]
fn a_connection_held_as_its_control_packets_is_the_connection_held_in_full() {
    // The same packets, each once short enough to be held as a single and once with an
    // Ethernet trailer that makes it too long (a trailer changes nothing else): every
    // connection of the one table is the other's, and so are its packets.
    let rst_ack = |port: u16| segment(port, true, 61, 0, 0, 0x14);
    let packets = [
        syn(1000, 0x02),                          // 0: a SYN
        segment(41000, true, 57, 0, 9, 0x12),     // 1: a SYN/ACK
        segment(42000, false, 64, 0x3, 77, 0x14), // 2: a RST/ACK, ECN CE
        segment(443, true, 128, 0x1, 5, 0x11),    // 3: a FIN/ACK, roles guessed...
        syn(2000, 0x02),                          // 4: a SYN on 0's ports, answered below
        segment(40000, true, 60, 0, 9000, 0x12),  // 4: its SYN/ACK
        segment(43000, false, 64, 0, 500, 0x02),  // 5: a closed port: a SYN,
        rst_ack(43000),                           // 5: and its RST/ACK
        segment(44000, false, 64, 0, 700, 0x02),  // 6: an open port: a SYN,
        segment(44000, true, 60, 0, 900, 0x12),   // 6: its SYN/ACK,
        segment(44000, false, 64, 0, 701, 0x04),  // 6: the scanner's RST
        segment(443, false, 64, 0, 6, 0x04),      // 3: ...and a RST back
        segment(45000, false, 64, 0, 800, 0x02),  // 7: a SYN sent four times,
        segment(45000, false, 64, 0, 800, 0x02),
        segment(45000, false, 64, 0, 800, 0x02),
        segment(45000, false, 64, 0, 800, 0x02),
        rst_ack(45000), // 7: its fifth control packet: in full
        with_payload(segment(40000, false, 64, 0, 2001, 0x18), b"hello"), // 4: data: in full
    ];
    let table = |trailer: usize| {
        let mut b = TableBuilder::new(None);
        for (n, p) in packets.iter().enumerate() {
            let mut p = p.clone();
            p.resize(p.len() + trailer, 0xee);
            b.add(n as u64 + 1, 10 * n as i64, 1, &p);
        }
        b.finish()
    };
    let (singles, full) = (table(0), table(300));
    assert_eq!(singles.len(), 8);
    assert_eq!(full.len(), 8);
    assert!(singles.singles.get(0).data.len() <= single::SINGLE_BYTES);
    for i in 0..8 {
        assert!(full.in_full(i).is_some());
        assert_eq!(
            format!("{:?}", singles.conn(i)),
            format!("{:?}", full.conn(i)),
            "connection {i}"
        );
        assert_eq!(
            format!("{:?}", singles.packets_of(i)),
            format!("{:?}", full.packets_of(i)),
            "connection {i}"
        );
        assert_eq!(singles.ends(i), (full.conn(i).client, full.conn(i).server));
        assert_eq!(singles.first_ts(i), full.conn(i).first_ts);
    }
    // The one answered with data and the one of five control packets became connections in
    // full; the others are held as their packets.
    let held: Vec<Option<usize>> = (0..8)
        .map(|i| match singles.held(i) {
            Held::Full(_) => None,
            Held::Single(place) => Some(singles.singles.chain(place).count()),
        })
        .collect();
    assert_eq!(
        held,
        [
            Some(1),
            Some(1),
            Some(1),
            Some(2),
            None,
            Some(2),
            Some(3),
            None
        ]
    );
}
