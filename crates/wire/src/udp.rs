//! UDP (RFC 768).

use crate::checksum;
use crate::field::{WireError, be16, set_be16};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

pub const HEADER_LEN: usize = field::HEADER_LEN;

#[derive(Debug, Clone, Copy)]
pub struct Udp<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Udp<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < field::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Udp { buf })
    }
    #[must_use]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }
    #[must_use]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }
    #[must_use]
    pub fn len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LENGTH)
    }
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() <= 8
    }
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }
    /// Payload present: up to the UDP length, or fewer when cut.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        let end = usize::from(self.len()).clamp(field::HEADER_LEN, b.len());
        &b[field::HEADER_LEN..end]
    }
    /// Zero means "no checksum" for IPv4.
    #[must_use]
    pub fn verify_checksum(&self, pseudo_header: u32) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = self.buf.as_ref();
        let end = usize::from(self.len()).min(b.len());
        checksum::fold(checksum::combine(&[
            pseudo_header,
            checksum::sum(&b[..end]),
        ])) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Udp<T> {
    pub fn set_src_port(&mut self, p: u16) {
        set_be16(self.buf.as_mut(), field::SRC_PORT, p);
    }
    pub fn set_dst_port(&mut self, p: u16) {
        set_be16(self.buf.as_mut(), field::DST_PORT, p);
    }
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Head of the DNS query in testdata/mixed.pcapng frame 1 (ports 40000 → 53, length 37).
    const DATAGRAM: [u8; 12] = [
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x25, 0x00, 0x00, 0x12, 0x34, 0x01, 0x00,
    ];

    #[test]
    fn parse_and_truncation_sweep() {
        let u = Udp::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (40000, 53, 37));
        assert_eq!(u.payload().len(), 4, "cut at the bytes present");
        for n in 0..HEADER_LEN {
            assert_eq!(
                Udp::new_checked(&DATAGRAM[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
    }
}
