//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a flow's one name across
//! tools (Zeek, Suricata, Arkime, Wireshark's `communityid` field). SHA-1 over the seed, both
//! addresses, the protocol and the ports (ICMP: type and its counterpart), in the canonical
//! direction, base64-encoded after the version prefix `1:`.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::{IpLayer, IpProtocol, TransportKind};

/// The tuple a Community ID is computed from, in the direction the packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// Ports (TCP, UDP, SCTP) or ICMP/ICMPv6 (type, code); `None` for other protocols.
    pub ports: Option<(u16, u16)>,
}

/// The ICMP (`v6`: ICMPv6) type that answers `icmp_type` or is answered by it (echo and
/// echo reply…), as the reference implementation pairs them.
#[must_use]
pub fn icmp_counterpart(icmp_type: u8, v6: bool) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        &[
            (128, 129),
            (130, 131),
            (133, 134),
            (135, 136),
            (139, 140),
            (144, 145),
        ]
    } else {
        &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)]
    };
    pairs.iter().find_map(|&(a, b)| {
        if a == icmp_type {
            Some(b)
        } else if b == icmp_type {
            Some(a)
        } else {
            None
        }
    })
}

impl FlowTuple {
    /// The tuple of the packet an IP layer carries: ports for TCP, UDP and SCTP, type and code
    /// for ICMP and ICMPv6 (when their bytes are present).
    #[must_use]
    pub fn of(ip: &IpLayer, data: &[u8]) -> FlowTuple {
        let ports = ip.transport.and_then(|t| match t.kind {
            TransportKind::Icmp | TransportKind::Icmpv6 if t.header.len() >= 2 => {
                let at = t.header.start as usize;
                Some((u16::from(data[at]), u16::from(data[at + 1])))
            }
            _ => t.ports(data),
        });
        FlowTuple {
            src: ip.src(data),
            dst: ip.dst(data),
            protocol: ip.protocol.0,
            ports,
        }
    }

    /// The Community ID v1 string (`1:` and 28 base64 characters).
    #[must_use]
    pub fn community_id(&self, seed: u16) -> String {
        let mut id = String::with_capacity(30);
        id.push_str("1:");
        base64::engine::general_purpose::STANDARD.encode_string(self.digest(seed), &mut id);
        id
    }

    /// The SHA-1 digest the Community ID v1 string encodes.
    #[must_use]
    pub fn digest(&self, seed: u16) -> [u8; 20] {
        let v6 = self.src.is_ipv6();
        let icmp = self.protocol == IpProtocol::ICMP.0 && !v6
            || self.protocol == IpProtocol::ICMPV6.0 && v6;
        let (mut sport, mut dport, one_way) = match self.ports {
            Some((t, c)) if icmp => match icmp_counterpart(t as u8, v6) {
                Some(other) => (t, u16::from(other), false),
                None => (t, c, true),
            },
            Some((s, d)) => (s, d, false),
            None => (0, 0, false),
        };
        let (mut src, mut dst) = (self.src, self.dst);
        let ordered = (octets(src), sport) < (octets(dst), dport);
        if !one_way && !ordered {
            std::mem::swap(&mut src, &mut dst);
            std::mem::swap(&mut sport, &mut dport);
        }
        let mut h = Sha1::new();
        h.update(seed.to_be_bytes());
        h.update(octets(src).as_slice());
        h.update(octets(dst).as_slice());
        h.update([self.protocol, 0]);
        if self.ports.is_some() {
            h.update(sport.to_be_bytes());
            h.update(dport.to_be_bytes());
        }
        h.finalize().into()
    }
}

/// Network-order bytes of an address (4 or 16), comparable as the reference compares them.
fn octets(a: IpAddr) -> arrayvec::ArrayVec<u8, 16> {
    match a {
        IpAddr::V4(a) => a.octets().into_iter().collect(),
        IpAddr::V6(a) => a.octets().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(src: &str, dst: &str, protocol: u8, ports: Option<(u16, u16)>) -> String {
        FlowTuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol,
            ports,
        }
        .community_id(0)
    }

    // Values from the spec's baseline (community-id-spec/baseline/baseline_deflt.json).
    #[test]
    fn matches_the_spec_baseline() {
        assert_eq!(
            id("1.2.3.4", "5.6.7.8", 6, Some((1122, 3344))),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            id("5.6.7.8", "1.2.3.4", 6, Some((3344, 1122))),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            id("1.2.3.4", "5.6.7.8", 17, Some((1122, 3344))),
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="
        );
    }

    #[test]
    fn icmp_echo_and_reply_share_an_id_and_errors_are_one_way() {
        let request = id("1.2.3.4", "5.6.7.8", 1, Some((8, 0)));
        let reply = id("5.6.7.8", "1.2.3.4", 1, Some((0, 0)));
        assert_eq!(request, reply);
        let unreachable = id("5.6.7.8", "1.2.3.4", 1, Some((3, 1)));
        let back = id("1.2.3.4", "5.6.7.8", 1, Some((3, 1)));
        assert_ne!(unreachable, back);
    }
}
