//! ICMP and ICMPv6 headers, and which messages quote the packet that caused them.

use crate::field::{WireError, be16};

pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct Icmp<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmp<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < 4 {
            return Err(WireError::Truncated);
        }
        Ok(Icmp { buf })
    }
    #[must_use]
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    #[must_use]
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }
    /// Echo identifier and sequence, when the 8-byte header is present.
    #[must_use]
    pub fn echo_id_seq(&self) -> Option<(u16, u16)> {
        let b = self.buf.as_ref();
        (b.len() >= 8).then(|| (be16(b, 4), be16(b, 6)))
    }
}

/// ICMPv4 messages that carry the offending IP header and 8+ bytes after it (RFC 792).
#[must_use]
pub fn v4_quotes_packet(msg_type: u8) -> bool {
    matches!(msg_type, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 error messages (types below 128) quote the offending packet (RFC 4443).
#[must_use]
pub fn v6_quotes_packet(msg_type: u8) -> bool {
    matches!(msg_type, 1..=4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_truncation_sweep() {
        let echo = [8u8, 0, 0x12, 0x34, 0, 7, 0, 1];
        let i = Icmp::new_checked(&echo[..]).unwrap();
        assert_eq!(
            (i.msg_type(), i.code(), i.echo_id_seq()),
            (8, 0, Some((7, 1)))
        );
        assert!(
            !v4_quotes_packet(8)
                && v4_quotes_packet(11)
                && v6_quotes_packet(1)
                && !v6_quotes_packet(128)
        );
        for n in 0..4 {
            assert_eq!(
                Icmp::new_checked(&echo[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        assert_eq!(Icmp::new_checked(&echo[..6]).unwrap().echo_id_seq(), None);
    }
}
