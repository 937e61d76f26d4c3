//! TCP (RFC 9293): header, flags, every option (MSS, window scale, SACK-permitted, SACK,
//! timestamps; unknown kinds kept with their bytes), checksum.

use std::fmt::Write as _;

use crate::checksum;
use crate::field::{Field, WireError, be16, be32, set_be16, set_be32};

mod field {
    use super::Field;
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const PORTS: Field = 0..4;
    pub const MIN_HEADER: usize = 20;
}

pub const MIN_HEADER_LEN: usize = field::MIN_HEADER;

/// TCP flag bits (the low 9 bits of the offset/flags word).
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const AE: u16 = 0x100;
}

/// A TCP header view.
#[derive(Debug, Clone, Copy)]
pub struct Tcp<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Tcp<T> {
    /// Checks the fixed header and that the data offset is sane and present.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < field::MIN_HEADER {
            return Err(WireError::Truncated);
        }
        let off = usize::from(b[field::OFF_FLAGS] >> 4) * 4;
        if off < field::MIN_HEADER {
            return Err(WireError::Malformed);
        }
        if b.len() < off {
            return Err(WireError::Truncated);
        }
        Ok(Tcp { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    #[must_use]
    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }
    #[must_use]
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }
    #[must_use]
    pub fn seq(&self) -> u32 {
        be32(self.b(), field::SEQ)
    }
    #[must_use]
    pub fn ack(&self) -> u32 {
        be32(self.b(), field::ACK)
    }
    #[must_use]
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::OFF_FLAGS] >> 4) * 4
    }
    #[must_use]
    pub fn flags(&self) -> u16 {
        be16(self.b(), field::OFF_FLAGS) & 0x01ff
    }
    #[must_use]
    pub fn has(&self, flag: u16) -> bool {
        self.flags() & flag != 0
    }
    #[must_use]
    pub fn window(&self) -> u16 {
        be16(self.b(), field::WINDOW)
    }
    #[must_use]
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }
    #[must_use]
    pub fn urgent(&self) -> u16 {
        be16(self.b(), field::URGENT)
    }
    #[must_use]
    pub fn option_bytes(&self) -> &[u8] {
        &self.b()[field::MIN_HEADER..self.header_len()]
    }
    #[must_use]
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions {
            b: self.option_bytes(),
            at: 0,
        }
    }
    /// The payload bytes present after the header.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
    /// Flags as Wireshark's Info column shows them, e.g. `SYN, ACK`.
    #[must_use]
    pub fn flag_names(&self) -> String {
        flag_names(self.flags())
    }
    /// Verifies the checksum over `self` (header and whole payload) with a pseudo-header sum.
    #[must_use]
    pub fn verify_checksum(&self, pseudo_header: u32) -> bool {
        checksum::fold(checksum::combine(&[pseudo_header, checksum::sum(self.b())])) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tcp<T> {
    pub fn set_src_port(&mut self, p: u16) {
        set_be16(self.buf.as_mut(), field::SRC_PORT, p);
    }
    pub fn set_dst_port(&mut self, p: u16) {
        set_be16(self.buf.as_mut(), field::DST_PORT, p);
    }
    pub fn set_seq(&mut self, v: u32) {
        set_be32(self.buf.as_mut(), field::SEQ, v);
    }
    pub fn set_ack(&mut self, v: u32) {
        set_be32(self.buf.as_mut(), field::ACK, v);
    }
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, c);
    }
    /// Recomputes the checksum; only valid when the whole segment is present.
    pub fn fill_checksum(&mut self, pseudo_header: u32) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::combine(&[
            pseudo_header,
            checksum::sum(self.buf.as_ref()),
        ]));
        self.set_checksum(c);
    }
    /// The port bytes, for incremental checksum updates.
    #[must_use]
    pub fn ports(&self) -> [u8; 4] {
        self.buf.as_ref()[field::PORTS].try_into().unwrap()
    }
}

/// Names of the set flags in bit order, as Wireshark's Info column lists them (`FIN, ACK`).
#[must_use]
pub fn flag_names(f: u16) -> String {
    const NAMES: [(u16, &str); 9] = [
        (flags::FIN, "FIN"),
        (flags::SYN, "SYN"),
        (flags::RST, "RST"),
        (flags::PSH, "PSH"),
        (flags::ACK, "ACK"),
        (flags::URG, "URG"),
        (flags::ECE, "ECE"),
        (flags::CWR, "CWR"),
        (flags::AE, "AE"),
    ];
    let mut out = String::new();
    for (bit, name) in NAMES {
        if f & bit != 0 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(name);
        }
    }
    out
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// Up to four (left, right) edges.
    Sack {
        blocks: [(u32, u32); 4],
        count: u8,
    },
    Timestamps {
        value: u32,
        echo: u32,
    },
    /// Any other kind (or a known kind with a wrong length), with its data bytes.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl TcpOption<'_> {
    #[must_use]
    pub fn kind(&self) -> u8 {
        match self {
            TcpOption::EndOfList => 0,
            TcpOption::Nop => 1,
            TcpOption::Mss(_) => 2,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 4,
            TcpOption::Sack { .. } => 5,
            TcpOption::Timestamps { .. } => 8,
            TcpOption::Unknown { kind, .. } => *kind,
        }
    }
}

/// Iterates the options; a length that runs past the header yields one `Err` and ends.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.b;
        let kind = *b.get(self.at)?;
        match kind {
            0 => {
                self.at = b.len();
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.at += 1;
                return Some(Ok(TcpOption::Nop));
            }
            _ => {}
        }
        let Some(&len) = b.get(self.at + 1) else {
            self.at = b.len();
            return Some(Err(WireError::Truncated));
        };
        let len = usize::from(len);
        if len < 2 || self.at + len > b.len() {
            self.at = b.len();
            return Some(Err(WireError::Malformed));
        }
        let data = &b[self.at + 2..self.at + len];
        self.at += len;
        Some(Ok(match (kind, data.len()) {
            (2, 2) => TcpOption::Mss(be16(data, 0)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 && n <= 32 && n > 0 => {
                let mut blocks = [(0, 0); 4];
                for (i, chunk) in data.chunks_exact(8).enumerate() {
                    blocks[i] = (be32(chunk, 0), be32(chunk, 4));
                }
                TcpOption::Sack {
                    blocks,
                    count: (n / 8) as u8,
                }
            }
            (8, 8) => TcpOption::Timestamps {
                value: be32(data, 0),
                echo: be32(data, 4),
            },
            _ => TcpOption::Unknown { kind, data },
        }))
    }
}

/// The handshake-relevant options of a segment, gathered in one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptionSummary {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: Option<(u32, u32)>,
    /// Option kinds in order (p0f-style layout), up to 16.
    pub layout: [u8; 16],
    pub layout_len: u8,
    pub malformed: bool,
}

impl OptionSummary {
    #[must_use]
    pub fn of<T: AsRef<[u8]>>(tcp: &Tcp<T>) -> Self {
        let mut s = OptionSummary::default();
        for opt in tcp.options() {
            let Ok(opt) = opt else {
                s.malformed = true;
                break;
            };
            if (s.layout_len as usize) < s.layout.len() {
                s.layout[s.layout_len as usize] = opt.kind();
                s.layout_len += 1;
            }
            match opt {
                TcpOption::Mss(v) => s.mss = Some(v),
                TcpOption::WindowScale(v) => s.window_scale = Some(v),
                TcpOption::SackPermitted => s.sack_permitted = true,
                TcpOption::Timestamps { value, echo } => s.timestamps = Some((value, echo)),
                _ => {}
            }
        }
        s
    }

    /// The option kinds in order: two summaries have the same [`OptionSummary::layout_string`]
    /// exactly when they have the same layout (compare this, and write the strings only when
    /// they differ).
    #[must_use]
    pub fn layout(&self) -> &[u8] {
        &self.layout[..usize::from(self.layout_len)]
    }

    /// The option layout as p0f writes it, e.g. `mss,sok,ts,nop,ws`.
    #[must_use]
    pub fn layout_string(&self) -> String {
        let mut out = String::with_capacity(4 * usize::from(self.layout_len));
        for (i, &k) in self.layout[..self.layout_len as usize].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match k {
                0 => out.push_str("eol"),
                1 => out.push_str("nop"),
                2 => out.push_str("mss"),
                3 => out.push_str("ws"),
                4 => out.push_str("sok"),
                5 => out.push_str("sack"),
                8 => out.push_str("ts"),
                k => {
                    let _ = write!(out, "?{k}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::{Ipv4, tests::SYN};

    #[test]
    fn parse_options_and_checksum() {
        let ip = Ipv4::new_checked(&SYN[..]).unwrap();
        let tcp = Tcp::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (tcp.src_port(), tcp.dst_port(), tcp.seq(), tcp.ack()),
            (51000, 443, 1_000_000, 0)
        );
        assert_eq!(tcp.flag_names(), "SYN");
        assert_eq!(tcp.header_len(), 40);
        let opts: Vec<_> = tcp.options().map(Result::unwrap).collect();
        assert_eq!(
            opts,
            [
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps { value: 1, echo: 0 },
                TcpOption::Nop,
                TcpOption::WindowScale(7)
            ]
        );
        let s = OptionSummary::of(&tcp);
        assert_eq!(s.layout_string(), "mss,sok,ts,nop,ws");
        assert_eq!(s.layout(), [2, 4, 8, 1, 3]);
        assert_eq!(
            (s.mss, s.window_scale, s.sack_permitted),
            (Some(1460), Some(7), true)
        );
        let pseudo =
            crate::checksum::pseudo_header_v4(&ip.src(), &ip.dst(), 6, ip.payload().len() as u16);
        assert!(tcp.verify_checksum(pseudo));

        let mut seg = ip.payload().to_vec();
        let mut t = Tcp::new_checked(&mut seg[..]).unwrap();
        t.set_src_port(40000);
        assert!(!t.verify_checksum(pseudo));
        t.fill_checksum(pseudo);
        assert!(t.verify_checksum(pseudo));
    }

    #[test]
    fn sack_unknown_and_bad_lengths() {
        let opts = [5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 30, 4, 0xaa, 0xbb, 2, 9];
        let mut seg = vec![0u8; 20];
        seg[12] = 0x90; // 36-byte header
        seg.extend(opts);
        seg.extend([0, 0, 0, 0]);
        let t = Tcp::new_checked(&seg[..]).unwrap();
        let got: Vec<_> = t.options().collect();
        assert_eq!(
            got[0],
            Ok(TcpOption::Sack {
                blocks: [(1, 2), (0, 0), (0, 0), (0, 0)],
                count: 1
            })
        );
        assert_eq!(
            got[1],
            Ok(TcpOption::Unknown {
                kind: 30,
                data: &[0xaa, 0xbb]
            })
        );
        assert_eq!(got[2], Err(WireError::Malformed), "MSS claiming 9 bytes");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn truncation_sweep() {
        let ip = Ipv4::new_checked(&SYN[..]).unwrap();
        let seg = ip.payload();
        for n in 0..MIN_HEADER_LEN {
            assert_eq!(
                Tcp::new_checked(&seg[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        for n in MIN_HEADER_LEN..40 {
            assert_eq!(
                Tcp::new_checked(&seg[..n]).unwrap_err(),
                WireError::Truncated,
                "options cut at {n}"
            );
        }
    }
}
