//! IPv4 (RFC 791): header with options, fragments, checksum.

use crate::checksum;
use crate::field::{Field, WireError, be16, set_be16};

/// An IP protocol number. Open: unknown values pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOPOPT: Self = Self(0);
    pub const ICMP: Self = Self(1);
    pub const IPIP: Self = Self(4);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const IPV6: Self = Self(41);
    pub const IPV6_ROUTE: Self = Self(43);
    pub const IPV6_FRAG: Self = Self(44);
    pub const GRE: Self = Self(47);
    pub const ESP: Self = Self(50);
    pub const AH: Self = Self(51);
    pub const ICMPV6: Self = Self(58);
    pub const IPV6_NONXT: Self = Self(59);
    pub const IPV6_OPTS: Self = Self(60);
    pub const SCTP: Self = Self(132);
    pub const MOBILITY: Self = Self(135);

    /// Short name as Wireshark shows it in the Protocol column, if common.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "icmp",
            2 => "igmp",
            4 => "ipip",
            6 => "tcp",
            17 => "udp",
            41 => "ipv6",
            47 => "gre",
            50 => "esp",
            51 => "ah",
            58 => "icmpv6",
            89 => "ospf",
            103 => "pim",
            112 => "vrrp",
            132 => "sctp",
            _ => return None,
        })
    }
}

impl Default for IpProtocol {
    /// "No next header": what a layer that has not been read carries.
    fn default() -> Self {
        IpProtocol::IPV6_NONXT
    }
}

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
    pub const MIN_HEADER: usize = 20;
}

pub const MIN_HEADER_LEN: usize = field::MIN_HEADER;

/// An IPv4 header view. Validates the header (version, IHL within the bytes present), not the
/// total length: captures are cut at the snap length.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < field::MIN_HEADER {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < field::MIN_HEADER {
            return Err(WireError::Malformed);
        }
        if b.len() < ihl {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4 { buf })
    }

    /// A view of a header that dissection has checked (its fields only are read).
    pub(crate) fn checked_before(buf: T) -> Self {
        Ipv4 { buf }
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    #[must_use]
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }
    #[must_use]
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[field::TOS]
    }
    /// The ECN codepoint (RFC 3168): 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE.
    #[must_use]
    pub fn ecn(&self) -> u8 {
        self.b()[field::TOS] & 0x03
    }
    #[must_use]
    pub fn total_len(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }
    #[must_use]
    pub fn ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }
    #[must_use]
    pub fn dont_frag(&self) -> bool {
        be16(self.b(), field::FLAGS_FRAG) & 0x4000 != 0
    }
    #[must_use]
    pub fn more_frags(&self) -> bool {
        be16(self.b(), field::FLAGS_FRAG) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    #[must_use]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.b(), field::FLAGS_FRAG) & 0x1fff) * 8
    }
    #[must_use]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    #[must_use]
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    #[must_use]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.b()[field::PROTOCOL])
    }
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }
    #[must_use]
    pub fn src(&self) -> [u8; 4] {
        self.b()[field::SRC].try_into().unwrap()
    }
    #[must_use]
    pub fn dst(&self) -> [u8; 4] {
        self.b()[field::DST].try_into().unwrap()
    }
    /// The option bytes between the fixed header and the payload.
    #[must_use]
    pub fn options(&self) -> &[u8] {
        &self.b()[field::MIN_HEADER..self.header_len()]
    }
    #[must_use]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len()]) == 0
    }
    /// Payload bytes present: up to the total length, or fewer when the capture was cut.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        let end = usize::from(self.total_len()).clamp(self.header_len(), b.len());
        &b[self.header_len()..end]
    }
    /// Fewer bytes captured than the total length says.
    #[must_use]
    pub fn is_truncated(&self) -> bool {
        self.b().len() < usize::from(self.total_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4<T> {
    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a);
    }
    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a);
    }
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buf.as_mut()[field::TTL] = ttl;
    }
    pub fn set_ident(&mut self, id: u16) {
        set_be16(self.buf.as_mut(), field::IDENT, id);
    }
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buf.as_mut()[field::TOS] = v;
    }
    /// Recomputes the header checksum (the header is always whole once validated).
    pub fn fill_checksum(&mut self) {
        let len = self.header_len();
        set_be16(self.buf.as_mut(), field::CHECKSUM, 0);
        let c = checksum::checksum(&self.buf.as_ref()[..len]);
        set_be16(self.buf.as_mut(), field::CHECKSUM, c);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IPv4/TCP SYN from testdata/handshake.pcap frame 1; tshark: IP checksum 0x4e06 and TCP checksum 0x5579 correct.
    pub(crate) const SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x64, 0x40, 0x00, 0x40, 0x06, 0x4e, 0x06, 0xc0, 0x00, 0x02,
        0x0a, 0xc6, 0x33, 0x64, 0x14, 0xc7, 0x38, 0x01, 0xbb, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x00,
        0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x55, 0x79, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04,
        0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parse_build_checksum() {
        let ip = Ipv4::new_checked(&SYN[..]).unwrap();
        assert_eq!(
            (ip.header_len(), ip.total_len(), ip.ident(), ip.ttl()),
            (20, 60, 100, 64)
        );
        assert_eq!(ip.protocol(), IpProtocol::TCP);
        assert_eq!((ip.src(), ip.dst()), ([192, 0, 2, 10], [198, 51, 100, 20]));
        assert!(ip.dont_frag() && !ip.is_fragment());
        assert!(ip.verify_checksum());
        assert_eq!(ip.payload().len(), 40);

        let mut copy = SYN;
        let mut ip = Ipv4::new_checked(&mut copy[..]).unwrap();
        ip.set_ttl(63);
        assert!(!ip.verify_checksum());
        ip.fill_checksum();
        assert!(ip.verify_checksum());
        assert_eq!(
            ip.checksum(),
            0x4f06,
            "TTL one lower: checksum 0x0100 higher"
        );
    }

    #[test]
    fn truncation_sweep() {
        for n in 0..MIN_HEADER_LEN {
            assert_eq!(
                Ipv4::new_checked(&SYN[..n]).unwrap_err(),
                WireError::Truncated,
                "{n}"
            );
        }
        let cut = Ipv4::new_checked(&SYN[..30]).unwrap();
        assert!(cut.is_truncated());
        assert_eq!(cut.payload().len(), 10);
        let mut bad = SYN;
        bad[0] = 0x44;
        assert_eq!(
            Ipv4::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
