//! Ethernet II, 802.1Q/802.1ad tags, and the EtherType registry.

use crate::field::{Field, WireError, be16, set_be16};

/// An EtherType. Open: unknown values survive a rewrite and still `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: Self = Self(0x0800);
    pub const ARP: Self = Self(0x0806);
    pub const TRANSPARENT_ETHERNET: Self = Self(0x6558);
    pub const VLAN: Self = Self(0x8100);
    pub const IPV6: Self = Self(0x86DD);
    pub const MPLS: Self = Self(0x8847);
    pub const MPLS_MULTICAST: Self = Self(0x8848);
    pub const PPPOE_DISCOVERY: Self = Self(0x8863);
    pub const PPPOE_SESSION: Self = Self(0x8864);
    pub const QINQ: Self = Self(0x88A8);
    pub const ERSPAN_II: Self = Self(0x88BE);
    pub const ERSPAN_III: Self = Self(0x22EB);
    pub const QINQ_OLD: Self = Self(0x9100);

    /// A VLAN tag protocol identifier (802.1Q, 802.1ad, the pre-standard 0x9100).
    #[must_use]
    pub fn is_vlan(self) -> bool {
        matches!(self, Self::VLAN | Self::QINQ | Self::QINQ_OLD)
    }
}

mod field {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;
}

pub const HEADER_LEN: usize = field::HEADER_LEN;

/// An Ethernet II frame header.
#[derive(Debug, Clone, Copy)]
pub struct Ethernet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ethernet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < field::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Ethernet { buf })
    }

    #[must_use]
    pub fn dst(&self) -> [u8; 6] {
        self.buf.as_ref()[field::DST].try_into().unwrap()
    }

    #[must_use]
    pub fn src(&self) -> [u8; 6] {
        self.buf.as_ref()[field::SRC].try_into().unwrap()
    }

    /// The EtherType, or an 802.3 length when below 0x0600.
    #[must_use]
    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buf.as_ref(), field::ETHERTYPE))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ethernet<T> {
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buf.as_mut()[field::DST].copy_from_slice(&mac);
    }
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&mac);
    }
    pub fn set_ethertype(&mut self, t: EtherType) {
        set_be16(self.buf.as_mut(), field::ETHERTYPE, t.0);
    }
}

/// One 802.1Q tag (4 bytes after the TPID: TCI, then the inner EtherType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub pcp: u8,
    pub dei: bool,
    pub id: u16,
}

impl VlanTag {
    /// Reads the tag control information and inner EtherType from the 4 bytes after a TPID.
    pub fn parse(b: &[u8]) -> Result<(VlanTag, EtherType), WireError> {
        if b.len() < 4 {
            return Err(WireError::Truncated);
        }
        let tci = be16(b, 0);
        Ok((
            VlanTag {
                pcp: (tci >> 13) as u8,
                dei: tci & 0x1000 != 0,
                id: tci & 0x0fff,
            },
            EtherType(be16(b, 2)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QinQ frame head as Wireshark shows it: 802.1ad tag 100, 802.1Q tag 200, IPv4.
    const FRAME: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x1c, 0x7f, 0x01, 0x02, 0x03, 0x88, 0xa8, 0x00,
        0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00,
    ];

    #[test]
    fn parse_and_rewrite() {
        let e = Ethernet::new_checked(&FRAME[..]).unwrap();
        assert_eq!(e.src(), [0x00, 0x1c, 0x7f, 1, 2, 3]);
        assert_eq!(e.ethertype(), EtherType::QINQ);
        let (outer, next) = VlanTag::parse(&FRAME[14..]).unwrap();
        assert_eq!((outer.id, next), (100, EtherType::VLAN));
        let (inner, next) = VlanTag::parse(&FRAME[18..]).unwrap();
        assert_eq!((inner.id, next), (200, EtherType::IPV4));
        let mut copy = FRAME;
        let mut e = Ethernet::new_checked(&mut copy[..]).unwrap();
        e.set_src([2, 0, 0, 0, 0, 1]);
        assert_eq!(&copy[6..12], &[2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn truncation_sweep() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Ethernet::new_checked(&FRAME[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        for n in 0..4 {
            assert!(VlanTag::parse(&FRAME[14..14 + n]).is_err());
        }
    }
}
