//! One connection as one point saw it, for the report: handshake fields, RTT, IP ID
//! behaviour, close, TLS progress, offload, MAC addresses and their vendors.

use crate::model::{CloseView, FrameCount, HandshakeView, MacView, Side, SideFrames, Tls, TlsStep};
use crate::trace::{Close, Conn, ConnRef, End, Handshake, hops, initial_ttl};
use tracekit_wire::Endpoint;

/// `00:1c:7f:3a:00:02` (by hand: it is written for every side of every connection).
#[must_use]
pub fn mac_string(m: &[u8; 6]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(17);
    for (i, &b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// The organization the IEEE registry (MA-L, MA-M, MA-S) lists for a MAC address; locally
/// administered and multicast addresses have none.
#[must_use]
pub fn vendor(m: &[u8; 6]) -> Option<String> {
    vendor_of(*m, &mac_string(m))
}

/// [`vendor`] for an address already written out.
fn vendor_of(m: [u8; 6], text: &str) -> Option<String> {
    if m[0] & 0x03 != 0 {
        return None;
    }
    oui_data::lookup(text).map(|r| r.organization().to_string())
}

/// Nanoseconds as milliseconds rounded to 10 µs, as the model reports times.
pub(crate) fn ms(ns: i64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

fn handshake_view(h: &Handshake) -> HandshakeView {
    HandshakeView {
        frame: h.frame,
        ttl: h.ttl,
        initial_ttl: initial_ttl(h.ttl),
        hops: hops(h.ttl),
        ip_id: h.ip_id,
        mss: h.options.mss,
        window_scale: h.options.window_scale,
        sack_permitted: h.options.sack_permitted,
        timestamps: h.options.timestamps.is_some(),
        ecn: tracekit_wire::tcp::flag_names(h.ecn_flags),
        options: h.options.layout_string(),
        window: h.window,
        isn: h.isn,
    }
}

/// How a sender numbers its IP IDs, from the first packets of one direction.
#[must_use]
pub fn ip_id_behaviour(ids: &[u16], ipv6: bool) -> &'static str {
    if ipv6 {
        return "ipv6";
    }
    // The SYN/ACK of many stacks carries 0 with DF set; judge the rest, the first 64 of them
    // (a table keeps fewer; no allocation: this runs four times per connection).
    let ids: arrayvec::ArrayVec<u16, 64> =
        ids.iter().copied().filter(|&i| i != 0).take(64).collect();
    if ids.is_empty() {
        return "zero";
    }
    if ids.len() < 3 {
        return "unknown";
    }
    if ids.windows(2).all(|w| w[0] == w[1]) {
        return "constant";
    }
    // Zeros were left out (SYN/ACKs and resets often carry 0), so a counter crossing 0 steps by 2.
    let step_one = |w: &[u16]| {
        let step = w[1].wrapping_sub(w[0]);
        step == 1 || (step == 2 && w[1] < w[0])
    };
    if ids.windows(2).all(step_one) {
        "incremental"
    } else if ids.windows(2).all(|w| {
        let s = w[1].wrapping_sub(w[0]);
        s > 0 && s < 2048
    }) {
        "increasing"
    } else {
        "random"
    }
}

fn close_view(c: &Conn, x: Option<Close>) -> Option<CloseView> {
    x.map(|x| CloseView {
        frame: x.frame,
        kind: if x.rst { "RST" } else { "FIN" },
        ttl: x.ttl,
        at_ms: ms(x.ts - c.first_ts),
    })
}

fn frames(f: &crate::trace::Frames) -> FrameCount {
    FrameCount {
        count: f.count,
        frames: f.first.clone(),
    }
}

/// A Wireshark display filter that isolates one connection as one capture saw it: both
/// addresses and both ports (behind a NAT each side has its own).
#[must_use]
pub fn conn_filter(client: Endpoint, server: Endpoint) -> String {
    let field = if client.addr.is_ipv6() {
        "ipv6.addr"
    } else {
        "ip.addr"
    };
    format!(
        "{field} == {} && tcp.port == {} && {field} == {} && tcp.port == {}",
        client.addr, client.port, server.addr, server.port
    )
}

#[must_use]
pub fn side_view(c: &ConnRef<'_>, trace: &str) -> Side {
    let ipv6 = c.client.addr.is_ipv6();
    let tls_progress = c
        .pkts
        .iter()
        .filter_map(|p| {
            let t = p.tls?;
            // Application data repeats; show the first of each direction only.
            if t.content == tracekit_wire::tls::content::APPLICATION_DATA
                && c.sent[p.dir()].app_data != Some(p.frame)
            {
                return None;
            }
            Some(TlsStep {
                frame: p.frame,
                from: p.dir().name(),
                message: t.describe(),
            })
        })
        .take(32)
        .collect();
    let mac = |dir: End| {
        c.sent[dir].src_mac.map(|m| {
            let mac = mac_string(&m);
            MacView {
                vendor: vendor_of(m, &mac),
                mac,
            }
        })
    };
    Side {
        wireshark_filter: conn_filter(c.client, c.server),
        trace: trace.to_string(),
        client: c.client.to_string(),
        server: c.server.to_string(),
        packets: c.sent[0].packets + c.sent[1].packets,
        first_frame: c.pkts.first().map(|p| p.frame),
        syn: c.syn.as_ref().map(handshake_view),
        syn_ack: c.syn_ack.as_ref().map(handshake_view),
        ack_frame: c.ack3.map(|x| x.0),
        rtt_ms: c.rtt().map(ms),
        towards_server_ms: c.towards_server().map(ms),
        towards_client_ms: c.towards_client().map(ms),
        isn_client: c.isn(End::Client),
        isn_server: c.isn(End::Server),
        ip_id_client: ip_id_behaviour(&c.ip_ids(End::Client), ipv6),
        ip_id_server: ip_id_behaviour(&c.ip_ids(End::Server), ipv6),
        client_close: close_view(c, c.first_close(End::Client)),
        server_close: close_view(c, c.first_close(End::Server)),
        tls_progress,
        over_mss_sent_by_client: frames(c.over_mss(End::Client)),
        over_mss_sent_by_server: frames(c.over_mss(End::Server)),
        client_mac: mac(End::Client),
        server_mac: mac(End::Server),
        folded_packets: c.folded,
    }
}

/// TLS progress at both points, and whether the random values survived the path.
#[must_use]
pub fn tls_view(c: &Conn, s: &Conn) -> (Tls, Option<bool>, Option<bool>) {
    let alerts = |x: &Conn| x.alerts().iter().map(|a| a.0).collect::<Vec<_>>();
    let app = |x: &Conn| x.sent.iter().filter_map(|w| w.app_data).collect::<Vec<_>>();
    let same = |a: Option<[u8; 32]>, b: Option<[u8; 32]>| Some(a? == b?);
    (
        Tls {
            client_hello: SideFrames {
                a: c.client_hello().into_iter().collect(),
                b: s.client_hello().into_iter().collect(),
            },
            server_hello: SideFrames {
                a: c.server_hello().into_iter().collect(),
                b: s.server_hello().into_iter().collect(),
            },
            application_data: SideFrames {
                a: app(c),
                b: app(s),
            },
            alerts: SideFrames {
                a: alerts(c),
                b: alerts(s),
            },
            client_random: c.client_random().or(s.client_random()).map(hex::encode),
            server_random: c.server_random().or(s.server_random()).map(hex::encode),
            client_random_same: None,
            server_random_same: None,
        },
        same(c.client_random(), s.client_random()),
        same(c.server_random(), s.server_random()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_id_behaviour_is_told_from_the_first_ids() {
        assert_eq!(ip_id_behaviour(&[0, 0, 0], false), "zero");
        assert_eq!(ip_id_behaviour(&[7, 7, 7, 7], false), "constant");
        assert_eq!(
            ip_id_behaviour(&[0, 0xfffe, 0xffff, 0, 1], false),
            "incremental"
        );
        assert_eq!(ip_id_behaviour(&[10, 12, 19, 40], false), "increasing");
        assert_eq!(ip_id_behaviour(&[10, 40000, 19, 33333], false), "random");
        assert_eq!(ip_id_behaviour(&[5, 6], false), "unknown");
        assert_eq!(ip_id_behaviour(&[], true), "ipv6");
    }

    #[test]
    fn vendors_come_from_the_ieee_registry() {
        assert!(
            vendor(&[0x00, 0x1c, 0x7f, 1, 2, 3])
                .unwrap()
                .contains("Check Point")
        );
        // Locally administered (veth) and multicast addresses have no vendor.
        assert_eq!(vendor(&[0xa6, 0x52, 0x9c, 0xaf, 0xa3, 0x86]), None);
        assert_eq!(vendor(&[0x01, 0x00, 0x5e, 0, 0, 1]), None);
    }
}
