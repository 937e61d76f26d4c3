//! Format detection by magic number, in one table.

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
    },
    Pcapng,
    Compressed(Compression),
    /// A known format that is not a capture we read (named for the error message).
    Other(&'static str),
    Empty,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

const PCAP_MAGICS: [(u32, bool, bool); 3] = [
    // (magic as written in the file's own byte order, nanosecond, modified)
    (0xa1b2_c3d4, false, false),
    (0xa1b2_3c4d, true, false),
    (0xa1b2_cd34, false, true),
];

const OTHER_MAGICS: [(&[u8], &str); 11] = [
    (b"snoop\0\0\0", "a Solaris snoop capture"),
    (b"RTSS", "a Microsoft Network Monitor 1.x capture"),
    (b"GMBU", "a Microsoft Network Monitor 2.x capture"),
    (b"btsnoop\0", "a btsnoop (Bluetooth HCI) capture"),
    (b"XCP\0", "a NetXray / Sniffer capture"),
    (
        b"\x04\x22\x4d\x18",
        "an lz4-compressed file (decompress it first)",
    ),
    (b"\xfd7zXZ\0", "an xz-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"PK\x03\x04", "a zip archive (extract it first)"),
    (b"\x7fELF", "an ELF executable"),
    (b"%PDF", "a PDF document"),
];

impl FileKind {
    /// pcap, pcapng, or a compressed file that may hold one.
    #[must_use]
    pub fn may_be_capture(self) -> bool {
        matches!(
            self,
            FileKind::Pcap { .. } | FileKind::Pcapng | FileKind::Compressed(_)
        )
    }
}

/// Classifies a file on disk by its first bytes.
pub fn probe_file(path: &std::path::Path) -> std::io::Result<FileKind> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(probe(&head[..n]))
}

/// Classifies a file by its first bytes.
#[must_use]
pub fn probe(head: &[u8]) -> FileKind {
    if head.is_empty() {
        return FileKind::Empty;
    }
    if head.len() >= 4 {
        let le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        for (magic, nanos, modified) in PCAP_MAGICS {
            if le == magic {
                return FileKind::Pcap {
                    big_endian: false,
                    nanos,
                    modified,
                };
            }
            if be == magic {
                return FileKind::Pcap {
                    big_endian: true,
                    nanos,
                    modified,
                };
            }
        }
        if be == 0x0a0d_0d0a {
            return FileKind::Pcapng;
        }
        if be == 0x28b5_2ffd {
            return FileKind::Compressed(Compression::Zstd);
        }
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return FileKind::Compressed(Compression::Gzip);
    }
    for (magic, name) in OTHER_MAGICS {
        if head.starts_with(magic) {
            return FileKind::Other(name);
        }
    }
    if head
        .iter()
        .take(512)
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return FileKind::Other("a text file");
    }
    FileKind::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pcap_magic_in_both_byte_orders() {
        for (magic, nanos, modified) in PCAP_MAGICS {
            assert_eq!(
                probe(&magic.to_le_bytes()),
                FileKind::Pcap {
                    big_endian: false,
                    nanos,
                    modified
                }
            );
            assert_eq!(
                probe(&magic.to_be_bytes()),
                FileKind::Pcap {
                    big_endian: true,
                    nanos,
                    modified
                }
            );
        }
        assert_eq!(probe(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]), FileKind::Pcapng);
        assert_eq!(
            probe(&[0x1f, 0x8b, 8]),
            FileKind::Compressed(Compression::Gzip)
        );
        assert_eq!(
            probe(&[0x28, 0xb5, 0x2f, 0xfd]),
            FileKind::Compressed(Compression::Zstd)
        );
        assert_eq!(
            probe(b"snoop\0\0\0\0\0\0\x02"),
            FileKind::Other("a Solaris snoop capture")
        );
        assert_eq!(probe(b""), FileKind::Empty);
        assert_eq!(probe(&[0xde, 0xad, 0xbe, 0xef, 0]), FileKind::Unknown);
    }
}
