//! IPv6 (RFC 8200): fixed header and the extension-header chain, fragments included.

use crate::field::{Field, WireError, be16, be32, set_be32};
use crate::ipv4::IpProtocol;

mod field {
    use super::Field;
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
    pub const HEADER_LEN: usize = 40;
}

pub const HEADER_LEN: usize = field::HEADER_LEN;

/// At most this many extension headers are followed (a DoS trace in the corpus chains many).
pub const MAX_EXTENSIONS: usize = 16;

/// An IPv6 fixed-header view.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv6 { buf })
    }

    /// A view of a header that dissection has checked (its fields only are read).
    pub(crate) fn checked_before(buf: T) -> Self {
        Ipv6 { buf }
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    #[must_use]
    pub fn traffic_class(&self) -> u8 {
        ((be32(self.b(), field::VER_TC_FLOW) >> 20) & 0xff) as u8
    }
    #[must_use]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }
    #[must_use]
    pub fn flow_label(&self) -> u32 {
        be32(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    #[must_use]
    pub fn payload_len(&self) -> u16 {
        be16(self.b(), field::PAYLOAD_LEN)
    }
    #[must_use]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.b()[field::NEXT_HEADER])
    }
    #[must_use]
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }
    #[must_use]
    pub fn src(&self) -> [u8; 16] {
        self.b()[field::SRC].try_into().unwrap()
    }
    #[must_use]
    pub fn dst(&self) -> [u8; 16] {
        self.b()[field::DST].try_into().unwrap()
    }
    /// Fewer bytes captured than the payload length says.
    #[must_use]
    pub fn is_truncated(&self) -> bool {
        self.b().len() < field::HEADER_LEN + usize::from(self.payload_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6<T> {
    pub fn set_src(&mut self, a: [u8; 16]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a);
    }
    pub fn set_dst(&mut self, a: [u8; 16]) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a);
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = v;
    }
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buf.as_mut();
        let v = (be32(b, 0) & !(0xff << 20)) | (u32::from(tc) << 20);
        set_be32(b, 0, v);
    }
}

/// The fragment header of a fragmented packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// What the extension-header walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extensions {
    /// Offset (from the start of the IPv6 header) of the upper-layer header.
    pub upper_offset: usize,
    /// The upper-layer protocol (or the header where the walk stopped).
    pub protocol: IpProtocol,
    pub fragment: Option<Fragment>,
    /// Offset of a routing header, if any (addresses hide there: anonymize needs it).
    pub routing_offset: Option<usize>,
    pub count: u8,
    /// The walk stopped early: a header cut by the snap length, or too many headers.
    pub incomplete: bool,
}

/// Walks the extension headers of the IPv6 packet in `packet` (starting at its fixed header).
/// Stops at the first upper-layer protocol, at ESP (encrypted), at "no next header", and at
/// a non-first fragment (what follows is the middle of the upper-layer data).
#[must_use]
pub fn walk_extensions(packet: &[u8]) -> Extensions {
    let mut next = IpProtocol(packet.get(field::NEXT_HEADER).copied().unwrap_or(59));
    let mut at = field::HEADER_LEN;
    let mut ext = Extensions {
        upper_offset: at,
        protocol: next,
        fragment: None,
        routing_offset: None,
        count: 0,
        incomplete: false,
    };
    loop {
        let len = match next {
            IpProtocol::HOPOPT
            | IpProtocol::IPV6_ROUTE
            | IpProtocol::IPV6_OPTS
            | IpProtocol::MOBILITY => {
                let Some(&l) = packet.get(at + 1) else {
                    ext.incomplete = true;
                    break;
                };
                if next == IpProtocol::IPV6_ROUTE {
                    ext.routing_offset = Some(at);
                }
                if next == IpProtocol::MOBILITY {
                    // The mobility header is the last header (RFC 6275): an upper layer of its own.
                    break;
                }
                (usize::from(l) + 1) * 8
            }
            IpProtocol::IPV6_FRAG => {
                if packet.len() < at + 8 {
                    ext.incomplete = true;
                    break;
                }
                let off_flags = be16(packet, at + 2);
                let frag = Fragment {
                    offset: off_flags & 0xfff8,
                    more: off_flags & 1 != 0,
                    ident: be32(packet, at + 4),
                };
                ext.fragment = Some(frag);
                if frag.offset != 0 {
                    ext.protocol = IpProtocol(packet[at]);
                    ext.upper_offset = at + 8;
                    ext.count += 1;
                    return ext;
                }
                8
            }
            IpProtocol::AH => {
                let Some(&l) = packet.get(at + 1) else {
                    ext.incomplete = true;
                    break;
                };
                (usize::from(l) + 2) * 4
            }
            _ => break,
        };
        if ext.count as usize >= MAX_EXTENSIONS || packet.len() < at + len {
            ext.incomplete = true;
            break;
        }
        next = IpProtocol(packet[at]);
        at += len;
        ext.count += 1;
    }
    ext.upper_offset = at;
    ext.protocol = next;
    ext
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 with hop-by-hop (8 bytes), fragment header (first fragment), then UDP, as Wireshark
    /// decodes the DoS trace suri_ipv6-dos-ext-headers-6.pcap.
    fn packet() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 24, 0, 64];
        p.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
        p.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[2]));
        p.extend([44, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, next: fragment
        p.extend([17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]); // fragment 0, more, id
        p.extend([0x9c, 0x40, 0x00, 0x35, 0, 8, 0, 0]); // UDP
        p
    }

    #[test]
    fn parse_and_walk() {
        let p = packet();
        let ip = Ipv6::new_checked(&p[..]).unwrap();
        assert_eq!(
            (ip.payload_len(), ip.next_header(), ip.hop_limit()),
            (24, IpProtocol::HOPOPT, 64)
        );
        assert_eq!(ip.src()[15], 1);
        let ext = walk_extensions(&p);
        assert_eq!(
            (ext.upper_offset, ext.protocol, ext.count),
            (56, IpProtocol::UDP, 2)
        );
        assert_eq!(
            ext.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert!(!ext.incomplete);

        let mut q = p.clone();
        q[48 + 2..48 + 4].copy_from_slice(&0x0010u16.to_be_bytes()); // offset 16, last
        let ext = walk_extensions(&q);
        assert_eq!((ext.upper_offset, ext.fragment.unwrap().offset), (56, 16));

        let mut t = p.clone();
        let mut v = Ipv6::new_checked(&mut t[..]).unwrap();
        v.set_traffic_class(0x03);
        assert_eq!(v.ecn(), 3);
        assert_eq!(v.flow_label(), 0);
    }

    #[test]
    fn truncation_sweep() {
        let p = packet();
        for n in 0..HEADER_LEN {
            assert_eq!(
                Ipv6::new_checked(&p[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        for n in HEADER_LEN..p.len() {
            let ext = walk_extensions(&p[..n]);
            assert!(ext.upper_offset <= n || ext.incomplete, "{n}");
        }
        assert!(walk_extensions(&p[..45]).incomplete);
    }
}
