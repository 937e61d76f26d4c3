//! What a selection can ask of a packet, as 64-bit keys: its addresses (every IP header, outer
//! and inner, the ICMP-quoted one, ARP's), ports, IP protocols, IP versions, VLAN IDs, and the
//! mark of a fragment after the first (which carries no ports: `--community-id` matches it by
//! its first). A Community ID is looked up in the index's flow table, then asked as its flow's
//! addresses, ports and protocol (see [`crate::Index::gather`]). The
//! top byte says what a key is; IPv4 addresses, ports, protocols and VLANs are kept whole,
//! IPv6 addresses folded to 56 bits (two that fold alike only make a query read a block more:
//! the records are matched exactly after).
//!
//! A packet the dissector cannot take apart to its IP header or ARP (an unknown link type, a
//! truncated header, something other than IP) may still match a filter that libpcap applies
//! at its own offsets: it is then posted under [`OPAQUE`], which every query reads.

use tracekit_wire::{IpLayer, Layers};

pub const IPV4: u64 = 1 << 56;
pub const IPV6: u64 = 2 << 56;
pub const PORT: u64 = 3 << 56;
pub const PROTO: u64 = 4 << 56;
pub const VLAN: u64 = 5 << 56;
pub const ANY_VLAN: u64 = 6 << 56;
pub const VERSION: u64 = 7 << 56;
pub const ARP: u64 = 8 << 56;
/// A fragment after the first: `--community-id` matches it by its first fragment.
pub const FRAGMENT_REST: u64 = 10 << 56;
/// A packet the keys cannot describe (see the module's note): every query reads it.
pub const OPAQUE: u64 = 11 << 56;

/// The key of a TCP, UDP or SCTP port.
#[must_use]
pub fn port(p: u16) -> u64 {
    PORT | u64::from(p)
}

/// The key of an IP protocol number.
#[must_use]
pub fn proto(p: u8) -> u64 {
    PROTO | u64::from(p)
}

/// The key of an IPv4 address.
#[must_use]
pub fn ipv4(a: std::net::Ipv4Addr) -> u64 {
    IPV4 | u64::from(u32::from(a))
}

/// The key of an IPv6 address: its 128 bits folded to 56 (fixed: the format depends on it).
#[must_use]
pub fn ipv6(a: std::net::Ipv6Addr) -> u64 {
    let v = u128::from(a);
    let folded = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
    let mixed = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    IPV6 | (mixed >> 8)
}

#[must_use]
pub fn addr(a: std::net::IpAddr) -> u64 {
    match a {
        std::net::IpAddr::V4(a) => ipv4(a),
        std::net::IpAddr::V6(a) => ipv6(a),
    }
}

fn ip_keys(ip: &IpLayer, data: &[u8], out: &mut Vec<u64>) {
    out.push(addr(ip.src(data)));
    out.push(addr(ip.dst(data)));
    out.push(proto(ip.protocol.0));
    out.push(VERSION | u64::from(ip.version));
    if let Some((s, d)) = ip.transport.and_then(|t| t.ports(data)) {
        out.push(port(s));
        out.push(port(d));
    }
}

/// Appends the keys of a packet (dissected as `layers`) to `out`; `false` when the packet is
/// opaque (see the module's note).
pub fn of(layers: &Layers, data: &[u8], out: &mut Vec<u64>) -> bool {
    for &v in &layers.vlan_ids[..usize::from(layers.vlan_count).min(2)] {
        out.push(VLAN | u64::from(v));
        out.push(ANY_VLAN);
    }
    if layers
        .outer_ip()
        .is_some_and(|ip| ip.fragment.is_some_and(|f| f.offset != 0))
    {
        out.push(FRAGMENT_REST);
    }
    let mut known = false;
    for ip in layers.ips() {
        ip_keys(ip, data, out);
        known = true;
    }
    if let Some(q) = &layers.quoted {
        ip_keys(q, data, out);
    }
    if let Some(arp) = layers.arp {
        out.push(ARP);
        // Ethernet/IPv4 ARP: sender and target protocol addresses.
        let a = arp.range();
        if let Some(b) = data.get(a.start..a.end)
            && b.len() >= 28
            && b[4] == 6
            && b[5] == 4
        {
            let at = |i: usize| std::net::Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
            out.push(ipv4(at(14)));
            out.push(ipv4(at(24)));
        }
        known = true;
    }
    known && layers.stop.is_none()
}
