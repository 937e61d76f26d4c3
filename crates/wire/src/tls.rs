//! TLS record and handshake sniffing: enough to see ClientHello, ServerHello, alerts and
//! application data, and to read the 32-byte random values that tie the two sides of a
//! connection together across a middlebox. Reassembly across segments is the caller's job.

use crate::field::be16;

pub mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

pub mod handshake {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
}

/// The largest record length allowed (2^14 plus the expansion TLS 1.2 allows).
pub const MAX_RECORD_LEN: u16 = (1 << 14) + 2048;

/// What the first bytes of a TCP payload say, when they look like a TLS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsRecord {
    pub content_type: u8,
    /// Record-layer version, e.g. 0x0303.
    pub version: u16,
    pub length: u16,
    /// Handshake message type, when the record is a handshake and its first byte is present.
    pub handshake_type: Option<u8>,
    /// Offset of the 32-byte random in the payload (ClientHello/ServerHello), when present.
    pub random_at: Option<usize>,
    /// Alert level and description, for an unencrypted alert.
    pub alert: Option<(u8, u8)>,
}

impl TlsRecord {
    /// Reads the record header at the start of `payload`; `None` if it does not look like TLS.
    #[must_use]
    pub fn sniff(payload: &[u8]) -> Option<TlsRecord> {
        if payload.len() < 5 {
            return None;
        }
        let content_type = payload[0];
        let version = be16(payload, 1);
        let length = be16(payload, 3);
        if !(content::CHANGE_CIPHER_SPEC..=content::HEARTBEAT).contains(&content_type)
            || !(0x0300..=0x0304).contains(&version)
            || length == 0
            || length > MAX_RECORD_LEN
        {
            return None;
        }
        let mut rec = TlsRecord {
            content_type,
            version,
            length,
            handshake_type: None,
            random_at: None,
            alert: None,
        };
        if content_type == content::HANDSHAKE {
            rec.handshake_type = payload.get(5).copied();
            let is_hello = matches!(
                rec.handshake_type,
                Some(handshake::CLIENT_HELLO | handshake::SERVER_HELLO)
            );
            // type(1) length(3) version(2) then the random.
            if is_hello && payload.len() >= 11 + 32 {
                rec.random_at = Some(11);
            }
        }
        if content_type == content::ALERT && length == 2 && payload.len() >= 7 {
            rec.alert = Some((payload[5], payload[6]));
        }
        Some(rec)
    }

    /// The ClientHello/ServerHello random, if present.
    #[must_use]
    pub fn random<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8; 32]> {
        self.random_at
            .and_then(|at| payload.get(at..at + 32))
            .and_then(|s| s.try_into().ok())
    }

    /// A short name as Wireshark's Info column shows it: "Client Hello", "Alert", …
    #[must_use]
    pub fn describe(&self) -> &'static str {
        match (self.content_type, self.handshake_type) {
            (content::HANDSHAKE, Some(handshake::CLIENT_HELLO)) => "Client Hello",
            (content::HANDSHAKE, Some(handshake::SERVER_HELLO)) => "Server Hello",
            (content::HANDSHAKE, Some(handshake::CERTIFICATE)) => "Certificate",
            (content::HANDSHAKE, Some(handshake::NEW_SESSION_TICKET)) => "New Session Ticket",
            (content::HANDSHAKE, _) => "Handshake",
            (content::CHANGE_CIPHER_SPEC, _) => "Change Cipher Spec",
            (content::ALERT, _) => "Alert",
            (content::APPLICATION_DATA, _) => "Application Data",
            _ => "Heartbeat",
        }
    }
}

/// Walks the records laid one after another in a payload, as far as their headers are present.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    payload: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    #[must_use]
    pub fn new(payload: &'a [u8]) -> Self {
        Records { payload, at: 0 }
    }
}

impl Iterator for Records<'_> {
    /// (offset in the payload, record)
    type Item = (usize, TlsRecord);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.payload.get(self.at..)?;
        let mut rec = TlsRecord::sniff(rest)?;
        rec.random_at = rec.random_at.map(|r| r + self.at);
        let at = self.at;
        self.at += 5 + usize::from(rec.length);
        Some((at, rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello() -> Vec<u8> {
        let mut body = vec![1, 0, 0, 0x2a, 0x03, 0x03];
        body.extend(0u8..32);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        let mut rec = vec![22, 3, 1, 0, body.len() as u8];
        rec.extend(body);
        rec
    }

    #[test]
    fn sniff_hello_alert_and_non_tls() {
        let ch = client_hello();
        let r = TlsRecord::sniff(&ch).unwrap();
        assert_eq!(
            (r.content_type, r.version, r.handshake_type),
            (22, 0x0301, Some(1))
        );
        assert_eq!(r.describe(), "Client Hello");
        assert_eq!(r.random(&ch).unwrap()[..4], [0, 1, 2, 3]);
        let alert = [21, 3, 3, 0, 2, 2, 40];
        assert_eq!(TlsRecord::sniff(&alert).unwrap().alert, Some((2, 40)));
        assert_eq!(TlsRecord::sniff(b"GET / HTTP/1.1\r\n"), None);
        let mut two = alert.to_vec();
        two.extend(&ch);
        let recs: Vec<_> = Records::new(&two).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].1.random(&two).unwrap()[..2], [0, 1]);
    }

    #[test]
    fn truncation_sweep() {
        let ch = client_hello();
        for n in 0..ch.len() {
            let r = TlsRecord::sniff(&ch[..n]);
            assert_eq!(r.is_some(), n >= 5, "{n}");
            if let Some(r) = r {
                assert_eq!(r.random(&ch[..n]).is_some(), n >= 43, "{n}");
            }
        }
    }
}
