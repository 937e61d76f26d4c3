//! ARP (RFC 826) for Ethernet/IPv4, the case that carries addresses worth reading.

use crate::field::{WireError, be16};

pub const ETHERNET_IPV4_LEN: usize = 28;

#[derive(Debug, Clone, Copy)]
pub struct Arp<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Arp<T> {
    /// Checks the fixed part and that the address fields announced are present.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < 8 {
            return Err(WireError::Truncated);
        }
        let need = 8 + 2 * (usize::from(b[4]) + usize::from(b[5]));
        if b.len() < need {
            return Err(WireError::Truncated);
        }
        Ok(Arp { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    #[must_use]
    pub fn hardware_type(&self) -> u16 {
        be16(self.b(), 0)
    }
    #[must_use]
    pub fn protocol_type(&self) -> u16 {
        be16(self.b(), 2)
    }
    #[must_use]
    pub fn operation(&self) -> u16 {
        be16(self.b(), 6)
    }
    fn hlen(&self) -> usize {
        usize::from(self.b()[4])
    }
    fn plen(&self) -> usize {
        usize::from(self.b()[5])
    }
    /// Byte ranges of sender hardware, sender protocol, target hardware, target protocol.
    #[must_use]
    pub fn address_ranges(&self) -> [core::ops::Range<usize>; 4] {
        let (h, p) = (self.hlen(), self.plen());
        [
            8..8 + h,
            8 + h..8 + h + p,
            8 + h + p..8 + 2 * h + p,
            8 + 2 * h + p..8 + 2 * (h + p),
        ]
    }
    #[must_use]
    pub fn sender_hardware(&self) -> &[u8] {
        &self.b()[self.address_ranges()[0].clone()]
    }
    #[must_use]
    pub fn sender_protocol(&self) -> &[u8] {
        &self.b()[self.address_ranges()[1].clone()]
    }
    #[must_use]
    pub fn target_hardware(&self) -> &[u8] {
        &self.b()[self.address_ranges()[2].clone()]
    }
    #[must_use]
    pub fn target_protocol(&self) -> &[u8] {
        &self.b()[self.address_ranges()[3].clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who has 198.51.100.20? Tell 192.0.2.10 (testdata/mixed.pcapng frame 3, as tshark shows).
    const REQUEST: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 198, 51, 100, 20,
    ];

    #[test]
    fn parse_and_truncation_sweep() {
        let a = Arp::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(
            (a.hardware_type(), a.protocol_type(), a.operation()),
            (1, 0x0800, 1)
        );
        assert_eq!(a.sender_protocol(), [192, 0, 2, 10]);
        assert_eq!(a.target_protocol(), [198, 51, 100, 20]);
        assert_eq!(a.sender_hardware(), [2, 0, 0, 0, 0, 1]);
        for n in 0..ETHERNET_IPV4_LEN {
            assert_eq!(
                Arp::new_checked(&REQUEST[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
    }
}
