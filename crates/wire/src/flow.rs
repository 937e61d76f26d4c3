//! The canonical bidirectional flow key: both directions of a conversation map to one key.

use std::fmt;
use std::net::IpAddr;

/// An address and port (port 0 for protocols without ports).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            // The numbers go through `itoa` rather than `Display` each: analyze writes both
            // ends of every connection at both points, and formatting each octet through the
            // machinery took a fifth of its comparison.
            IpAddr::V4(a) => {
                let mut digits = itoa::Buffer::new();
                let [o1, o2, o3, o4] = a.octets();
                for (i, octet) in [o1, o2, o3, o4].into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(digits.format(octet))?;
                }
                f.write_str(":")?;
                f.write_str(digits.format(self.port))
            }
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// (protocol, lower endpoint, upper endpoint): the same for both directions.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FlowKey {
    pub protocol: u8,
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and whether that direction is lo → hi.
    /// (Inline: called apart, it read back the endpoints its caller had just written, field by
    /// field, in wider loads the processor cannot forward from those stores: a stall on every
    /// packet, 8% of analyze's user time.)
    #[must_use]
    #[inline]
    pub fn new(protocol: u8, src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        if src <= dst {
            (
                FlowKey {
                    protocol,
                    lo: src,
                    hi: dst,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    protocol,
                    lo: dst,
                    hi: src,
                },
                false,
            )
        }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = crate::IpProtocol(self.protocol)
            .name()
            .map_or_else(|| self.protocol.to_string(), str::to_string);
        write!(f, "{proto} {} <-> {}", self.lo, self.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_written_as_socket_addresses_are() {
        for (addr, port) in [
            ("0.0.0.0", 0),
            ("192.0.2.1", 443),
            ("255.255.255.255", 65535),
            ("10.20.30.4", 9),
            ("2001:db8::1", 8080),
            ("::ffff:192.0.2.7", 1),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let e = Endpoint { addr: ip, port };
            assert_eq!(
                e.to_string(),
                std::net::SocketAddr::new(ip, port).to_string()
            );
        }
    }

    #[test]
    fn both_directions_give_one_key() {
        let a = Endpoint {
            addr: "192.0.2.10".parse().unwrap(),
            port: 51000,
        };
        let b = Endpoint {
            addr: "198.51.100.20".parse().unwrap(),
            port: 443,
        };
        let (k1, fwd1) = FlowKey::new(6, a, b);
        let (k2, fwd2) = FlowKey::new(6, b, a);
        assert_eq!(k1, k2);
        assert_ne!(fwd1, fwd2);
        assert_eq!(k1.to_string(), "tcp 192.0.2.10:51000 <-> 198.51.100.20:443");
        let c = Endpoint {
            addr: "192.0.2.10".parse().unwrap(),
            port: 51001,
        };
        assert_ne!(FlowKey::new(6, c, b).0, k1);
        assert_ne!(FlowKey::new(17, a, b).0, k1, "protocol is part of the key");
    }
}
