//! pcapng: sections with their own byte order, interfaces with `if_tsresol`/`if_tsoffset`,
//! EPB, SPB, the obsolete Packet Block, NRB, ISB, DSB, custom and unknown blocks, options.
//!
//! Lenient where Wireshark is strict without need: an option whose length runs past its block
//! is reported as a [`Problem`] and the rest of that block's options are skipped, but the
//! packets are still read. Block lengths are never trusted beyond the bytes that exist.

use crate::bytes::{pad4, u16_at, u32_at, u64_at};
use crate::error::{Problem, ReadError, ReadErrorKind};
use crate::pcap::MAX_KEPT_PROBLEMS;
use crate::source::{DropBehind, prefetch_window};
use crate::{Interface, LinkType, Record, Timestamp, TsResolution};

pub mod block {
    pub const SECTION_HEADER: u32 = 0x0A0D_0D0A;
    pub const INTERFACE_DESCRIPTION: u32 = 1;
    pub const PACKET_OBSOLETE: u32 = 2;
    pub const SIMPLE_PACKET: u32 = 3;
    pub const NAME_RESOLUTION: u32 = 4;
    pub const INTERFACE_STATISTICS: u32 = 5;
    pub const ENHANCED_PACKET: u32 = 6;
    pub const SYSTEMD_JOURNAL: u32 = 9;
    pub const DECRYPTION_SECRETS: u32 = 10;
    pub const CUSTOM: u32 = 0x0000_0BAD;
    pub const CUSTOM_NO_COPY: u32 = 0x4000_0BAD;
}

pub mod opt {
    pub const END: u16 = 0;
    pub const COMMENT: u16 = 1;
    pub const SHB_HARDWARE: u16 = 2;
    pub const SHB_OS: u16 = 3;
    pub const SHB_USERAPPL: u16 = 4;
    pub const IF_NAME: u16 = 2;
    pub const IF_DESCRIPTION: u16 = 3;
    pub const IF_IPV4ADDR: u16 = 4;
    pub const IF_IPV6ADDR: u16 = 5;
    pub const IF_MACADDR: u16 = 6;
    pub const IF_EUIADDR: u16 = 7;
    pub const IF_SPEED: u16 = 8;
    pub const IF_TSRESOL: u16 = 9;
    pub const IF_TZONE: u16 = 10;
    pub const IF_FILTER: u16 = 11;
    pub const IF_OS: u16 = 12;
    pub const IF_FCSLEN: u16 = 13;
    pub const IF_TSOFFSET: u16 = 14;
    pub const IF_HARDWARE: u16 = 15;
    pub const EPB_FLAGS: u16 = 2;
    pub const EPB_HASH: u16 = 3;
    pub const EPB_DROPCOUNT: u16 = 4;
    pub const EPB_PACKETID: u16 = 5;
    pub const EPB_QUEUE: u16 = 6;
    pub const EPB_VERDICT: u16 = 7;
    pub const ISB_IFRECV: u16 = 4;
    pub const ISB_IFDROP: u16 = 5;
    pub const CUSTOM_STR: u16 = 2988;
    pub const CUSTOM_BYTES: u16 = 2989;
    pub const CUSTOM_STR_NO_COPY: u16 = 19372;
    pub const CUSTOM_BYTES_NO_COPY: u16 = 19373;
}

/// The option area of a block, in the byte order of its section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    pub bytes: &'a [u8],
    pub big_endian: bool,
}

/// An option whose declared length runs past the end of its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOption {
    pub code: u16,
    pub length: u16,
    /// Offset of the option within the option area.
    pub at: usize,
}

impl std::fmt::Display for BadOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "option {} claims {} bytes, more than remain in its block; the block's remaining options were skipped",
            self.code, self.length
        )
    }
}

impl<'a> IntoIterator for &Options<'a> {
    type Item = Result<(u16, &'a [u8]), BadOption>;
    type IntoIter = OptionIter<'a>;
    fn into_iter(self) -> OptionIter<'a> {
        self.iter()
    }
}

impl<'a> Options<'a> {
    pub const EMPTY: Options<'static> = Options {
        bytes: &[],
        big_endian: false,
    };

    #[must_use]
    pub fn iter(&self) -> OptionIter<'a> {
        OptionIter {
            opts: *self,
            pos: 0,
            done: false,
        }
    }

    /// The first value of option `code`, ignoring malformed tails.
    #[must_use]
    pub fn get(&self, code: u16) -> Option<&'a [u8]> {
        self.iter()
            .map_while(Result::ok)
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v)
    }

    /// Every `opt_comment`, as text (invalid UTF-8 replaced).
    pub fn comments(&self) -> impl Iterator<Item = std::borrow::Cow<'a, str>> + 'a {
        self.iter()
            .map_while(Result::ok)
            .filter(|(c, _)| *c == opt::COMMENT)
            .map(|(_, v)| String::from_utf8_lossy(v))
    }

    #[must_use]
    pub fn u32_value(&self, code: u16) -> Option<u32> {
        self.get(code)
            .filter(|v| v.len() >= 4)
            .map(|v| u32_at(v, 0, self.big_endian))
    }

    #[must_use]
    pub fn u64_value(&self, code: u16) -> Option<u64> {
        self.get(code)
            .filter(|v| v.len() >= 8)
            .map(|v| u64_at(v, 0, self.big_endian))
    }

    /// The first malformed option, if any.
    #[must_use]
    pub fn check(&self) -> Option<BadOption> {
        self.iter().find_map(Result::err)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Iterates `(code, value)` pairs up to `opt_endofopt`; yields one `Err` and stops at a bad length.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    opts: Options<'a>,
    pos: usize,
    done: bool,
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<(u16, &'a [u8]), BadOption>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.opts.bytes;
        if self.done || b.len().saturating_sub(self.pos) < 4 {
            return None;
        }
        let be = self.opts.big_endian;
        let code = u16_at(b, self.pos, be);
        let length = u16_at(b, self.pos + 2, be);
        if code == opt::END {
            self.done = true;
            return None;
        }
        let start = self.pos + 4;
        if start + usize::from(length) > b.len() {
            self.done = true;
            return Some(Err(BadOption {
                code,
                length,
                at: self.pos,
            }));
        }
        self.pos = start + pad4(usize::from(length));
        Some(Ok((code, &b[start..start + usize::from(length)])))
    }
}

/// Options copied out of the file, for interfaces and sections that outlive a block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedOptions {
    pub bytes: Vec<u8>,
    pub big_endian: bool,
}

impl OwnedOptions {
    #[must_use]
    pub fn view(&self) -> Options<'_> {
        Options {
            bytes: &self.bytes,
            big_endian: self.big_endian,
        }
    }
}

/// One section header.
#[derive(Debug, Clone)]
pub struct Section {
    pub offset: u64,
    pub big_endian: bool,
    pub version: (u16, u16),
    /// Global number of this section's first interface.
    pub first_interface: u32,
    pub options: OwnedOptions,
}

impl Section {
    fn text(&self, code: u16) -> Option<String> {
        self.options
            .view()
            .get(code)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
    #[must_use]
    pub fn hardware(&self) -> Option<String> {
        self.text(opt::SHB_HARDWARE)
    }
    #[must_use]
    pub fn os(&self) -> Option<String> {
        self.text(opt::SHB_OS)
    }
    #[must_use]
    pub fn user_application(&self) -> Option<String> {
        self.text(opt::SHB_USERAPPL)
    }
}

/// Every block type the walk can meet, for callers that keep more than packets
/// (merge copies name-resolution and decryption-secrets blocks, anonymize scrubs them).
#[derive(Debug, Clone, Copy)]
pub enum Block<'a> {
    /// A new section; its number in [`Reader::sections`].
    Section(usize),
    /// A new interface; its global number in [`Reader::interfaces`].
    Interface(u32),
    Packet(Record<'a>),
    NameResolution {
        body: &'a [u8],
        big_endian: bool,
    },
    Statistics {
        interface: u32,
        body: &'a [u8],
        big_endian: bool,
    },
    DecryptionSecrets {
        body: &'a [u8],
        big_endian: bool,
    },
    /// Custom blocks (0xBAD / 0x40000BAD), systemd journal entries and unknown types, verbatim.
    Other {
        block_type: u32,
        body: &'a [u8],
        big_endian: bool,
    },
}

impl Block<'_> {
    /// A block another file may carry — name resolution, decryption secrets, or a custom
    /// block that allows copying — as (block type, body in little endian), ready for
    /// [`crate::writer::PcapngWriter::write_raw_block`]. `None` for packets, section,
    /// interface and statistics blocks (which refer to the file's own interfaces), custom
    /// blocks marked not to be copied, other types, and bodies whose fields do not fit.
    #[must_use]
    pub fn portable(&self) -> Option<(u32, Vec<u8>)> {
        match *self {
            Block::NameResolution { body, big_endian } => {
                if !big_endian {
                    return Some((block::NAME_RESOLUTION, body.to_vec()));
                }
                // Records (type, length, value) up to the end record, then options.
                let mut out = Vec::with_capacity(body.len());
                let mut pos = 0;
                loop {
                    if pos + 4 > body.len() {
                        return None;
                    }
                    let (kind, len) = (u16_at(body, pos, true), u16_at(body, pos + 2, true));
                    let value = body.get(pos + 4..pos + 4 + pad4(usize::from(len)))?;
                    out.extend_from_slice(&kind.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(value);
                    pos += 4 + value.len();
                    if kind == 0 {
                        break;
                    }
                }
                let options = Options {
                    bytes: &body[pos..],
                    big_endian,
                };
                out.extend(
                    OptionsBuilder::new()
                        .copy_from(options, custom_or_bytes)
                        .finish(),
                );
                Some((block::NAME_RESOLUTION, out))
            }
            Block::DecryptionSecrets { body, big_endian } => {
                if !big_endian {
                    return Some((block::DECRYPTION_SECRETS, body.to_vec()));
                }
                if body.len() < 8 {
                    return None;
                }
                let (kind, len) = (u32_at(body, 0, true), u32_at(body, 4, true));
                let data = body.get(8..8 + pad4(usize::try_from(len).ok()?))?;
                let mut out = Vec::with_capacity(body.len());
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(data);
                let options = Options {
                    bytes: &body[8 + data.len()..],
                    big_endian,
                };
                out.extend(
                    OptionsBuilder::new()
                        .copy_from(options, custom_or_bytes)
                        .finish(),
                );
                Some((block::DECRYPTION_SECRETS, out))
            }
            Block::Other {
                block_type: block::CUSTOM,
                body,
                big_endian,
            } => {
                // The enterprise number is in the section's byte order; what follows is the
                // vendor's own and is copied as it is.
                if body.len() < 4 {
                    return None;
                }
                let mut out = body.to_vec();
                if big_endian {
                    out[..4].reverse();
                }
                Some((block::CUSTOM, out))
            }
            _ => None,
        }
    }
}

/// How many blocks of each kind the walk has met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCounts {
    pub section: u64,
    pub interface: u64,
    pub enhanced_packet: u64,
    pub simple_packet: u64,
    pub obsolete_packet: u64,
    pub name_resolution: u64,
    pub statistics: u64,
    pub decryption_secrets: u64,
    pub custom: u64,
    pub other: u64,
}

/// Walks the blocks of a pcapng file.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Prefetched up to here.
    ahead: usize,
    drop_behind: DropBehind<'a>,
    index: u64,
    done: bool,
    big_endian: bool,
    sections: Vec<Section>,
    interfaces: Vec<Interface>,
    /// Per interface: resolution, offset in ns, and whether an out-of-range time was reported.
    clocks: Vec<(TsResolution, i128, bool)>,
    counts: BlockCounts,
    problems: Vec<Problem>,
    problem_count: u64,
    /// Jumps still to make (see `Capture::records_skipping`), the next one first.
    skips: std::collections::VecDeque<crate::Skip>,
}

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            ahead: 0,
            drop_behind: DropBehind::NONE,
            index: 0,
            done: false,
            big_endian: false,
            sections: Vec::new(),
            interfaces: Vec::new(),
            clocks: Vec::new(),
            counts: BlockCounts::default(),
            problems: Vec::new(),
            problem_count: 0,
            skips: std::collections::VecDeque::new(),
        }
    }

    pub(crate) fn with_skips(mut self, skips: Vec<crate::Skip>) -> Self {
        self.skips = skips.into();
        self
    }

    /// The length of the packet block at `pos` (enhanced, simple or obsolete), checked
    /// against the data; `Err` for anything else.
    fn packet_block_len(&self, pos: usize) -> Result<usize, ReadErrorKind> {
        let rest = self.data.len().saturating_sub(pos);
        if rest < 12 {
            return Err(ReadErrorKind::TruncatedHeader {
                needed: 12,
                available: rest as u64,
            });
        }
        let be = self.big_endian;
        let block_type = u32_at(self.data, pos, be);
        let length = u32_at(self.data, pos + 4, be);
        let packet = matches!(
            block_type,
            block::ENHANCED_PACKET | block::SIMPLE_PACKET | block::PACKET_OBSOLETE
        );
        if !packet || length < 12 || !length.is_multiple_of(4) || length as usize > rest {
            return Err(ReadErrorKind::BadBlockLength {
                block_type,
                length: length.into(),
                why: "not the packet block the index says is here",
            });
        }
        Ok(length as usize)
    }

    /// Makes the jump due before record `self.index` when a packet block is next (side
    /// blocks before it are read first); `Err` when the file does not bear it out.
    fn skip(&mut self) -> Result<(), ReadErrorKind> {
        let due = self.skips.front().is_some_and(|s| s.from == self.index);
        if !due || self.packet_block_len(self.pos).is_err() {
            return Ok(());
        }
        let Some(s) = self.skips.pop_front() else {
            return Ok(());
        };
        if let Some(pos) = s.to_pos {
            let pos = usize::try_from(pos).unwrap_or(usize::MAX);
            if pos > self.data.len() {
                return Err(ReadErrorKind::TruncatedData {
                    claimed: pos as u64,
                    available: self.data.len() as u64,
                });
            }
            self.pos = pos;
            self.index = s.to;
            if pos < self.data.len() {
                self.packet_block_len(pos)?;
            }
        }
        for _ in 0..s.walk {
            self.pos += self.packet_block_len(self.pos)?;
            self.index += 1;
        }
        Ok(())
    }

    pub(crate) fn with_drop_behind(mut self, drop_behind: DropBehind<'a>) -> Self {
        self.drop_behind = drop_behind;
        self
    }

    #[must_use]
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    #[must_use]
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    #[must_use]
    pub fn counts(&self) -> &BlockCounts {
        &self.counts
    }

    #[must_use]
    pub fn problems(&self) -> (&[Problem], u64) {
        (&self.problems, self.problem_count)
    }

    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    fn error(&mut self, kind: ReadErrorKind) -> ReadError {
        self.done = true;
        ReadError {
            record: self.index,
            offset: self.pos as u64,
            kind,
        }
    }

    fn note(&mut self, message: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_KEPT_PROBLEMS {
            self.problems.push(Problem {
                record: self.index,
                offset: self.pos as u64,
                message,
            });
        }
    }

    fn check_options(&mut self, what: &str, options: Options<'_>) {
        if let Some(bad) = options.check() {
            self.note(format!("{what}: {bad}"));
        }
    }

    /// The next block, or `None` at the end of the data or after an error.
    #[allow(clippy::too_many_lines)] // one match over the block types reads best in one place
    pub fn next_block(&mut self) -> Option<Result<Block<'a>, ReadError>> {
        if self.done {
            return None;
        }
        if !self.skips.is_empty()
            && let Err(kind) = self.skip()
        {
            return Some(Err(self.error(kind)));
        }
        let data = self.data;
        let rest = data.len() - self.pos;
        if rest == 0 {
            self.done = true;
            self.drop_behind.finish(data.len());
            return None;
        }
        if rest < 12 {
            return Some(Err(self.error(ReadErrorKind::TruncatedHeader {
                needed: 12,
                available: rest as u64,
            })));
        }
        prefetch_window(data, self.pos, &mut self.ahead);
        self.drop_behind.advance(self.pos);
        let block_type = u32_at(data, self.pos, self.big_endian);
        if block_type == block::SECTION_HEADER {
            // The byte-order magic decides how to read this block's own length.
            match u32_at(data, self.pos + 8, false) {
                0x1A2B_3C4D => self.big_endian = false,
                0x4D3C_2B1A => self.big_endian = true,
                other => {
                    let message = format!(
                        "byte-order magic {other:#010x} is neither 0x1a2b3c4d nor its swap"
                    );
                    return Some(Err(self.error(ReadErrorKind::BadSectionHeader(message))));
                }
            }
        } else if self.sections.is_empty() {
            return Some(Err(
                self.error(ReadErrorKind::MissingSectionHeader(block_type))
            ));
        }
        let be = self.big_endian;
        let length = u32_at(data, self.pos + 4, be);
        let bad = |why| ReadErrorKind::BadBlockLength {
            block_type,
            length: length.into(),
            why,
        };
        if length < 12 {
            return Some(Err(self.error(bad("below the 12-byte minimum"))));
        }
        if !length.is_multiple_of(4) {
            return Some(Err(self.error(bad("not a multiple of 4"))));
        }
        if length as usize > rest {
            let kind = ReadErrorKind::TruncatedData {
                claimed: length.into(),
                available: rest as u64,
            };
            return Some(Err(self.error(kind)));
        }
        let end = self.pos + length as usize;
        let trailer = u32_at(data, end - 4, be);
        if trailer != length {
            return Some(Err(self.error(ReadErrorKind::BlockLengthMismatch {
                block_type,
                length,
                trailer,
            })));
        }
        let body = &data[self.pos + 8..end - 4];
        let short = ReadErrorKind::ShortBlock { block_type, length };
        let block = match block_type {
            block::SECTION_HEADER => {
                if body.len() < 16 {
                    return Some(Err(self.error(short)));
                }
                let version = (u16_at(body, 4, be), u16_at(body, 6, be));
                if version.0 != 1 || !(version.1 == 0 || version.1 == 2) {
                    let message = format!(
                        "unknown version {}.{} (1.0 and 1.2 exist)",
                        version.0, version.1
                    );
                    return Some(Err(self.error(ReadErrorKind::BadSectionHeader(message))));
                }
                let options = Options {
                    bytes: &body[16..],
                    big_endian: be,
                };
                self.check_options("section header", options);
                self.counts.section += 1;
                self.sections.push(Section {
                    offset: self.pos as u64,
                    big_endian: be,
                    version,
                    first_interface: self.interfaces.len() as u32,
                    options: OwnedOptions {
                        bytes: options.bytes.to_vec(),
                        big_endian: be,
                    },
                });
                Block::Section(self.sections.len() - 1)
            }
            block::INTERFACE_DESCRIPTION => {
                if body.len() < 8 {
                    return Some(Err(self.error(short)));
                }
                let options = Options {
                    bytes: &body[8..],
                    big_endian: be,
                };
                self.check_options("interface description", options);
                let iface = Interface::from_pcapng(
                    (self.sections.len() - 1) as u32,
                    LinkType(u16_at(body, 0, be)),
                    u32_at(body, 4, be),
                    options,
                );
                let offset_ns = i128::from(iface.tsoffset) * i128::from(Timestamp::NANOS_PER_SEC);
                self.clocks.push((iface.resolution, offset_ns, false));
                self.interfaces.push(iface);
                self.counts.interface += 1;
                Block::Interface((self.interfaces.len() - 1) as u32)
            }
            block::ENHANCED_PACKET | block::PACKET_OBSOLETE => {
                if body.len() < 20 {
                    return Some(Err(self.error(short)));
                }
                let (local, ts_hi, ts_lo) = if block_type == block::ENHANCED_PACKET {
                    (
                        u32_at(body, 0, be),
                        u32_at(body, 4, be),
                        u32_at(body, 8, be),
                    )
                } else {
                    (
                        u32::from(u16_at(body, 0, be)),
                        u32_at(body, 4, be),
                        u32_at(body, 8, be),
                    )
                };
                let caplen = u32_at(body, 12, be);
                let orig_len = u32_at(body, 16, be);
                if caplen as usize > body.len() - 20 {
                    let kind = ReadErrorKind::TruncatedData {
                        claimed: caplen.into(),
                        available: (body.len() - 20) as u64,
                    };
                    return Some(Err(self.error(kind)));
                }
                let interface = match self.global_interface(local) {
                    Ok(i) => i,
                    Err(kind) => return Some(Err(self.error(kind))),
                };
                let options_at = (20 + pad4(caplen as usize)).min(body.len());
                let options = Options {
                    bytes: &body[options_at..],
                    big_endian: be,
                };
                if block_type == block::ENHANCED_PACKET {
                    self.counts.enhanced_packet += 1;
                } else {
                    self.counts.obsolete_packet += 1;
                }
                let raw_ts = (u64::from(ts_hi) << 32) | u64::from(ts_lo);
                Block::Packet(Record {
                    index: self.index,
                    offset: self.pos as u64,
                    ts: self.decode_ts(interface, raw_ts),
                    raw_ts,
                    interface,
                    link: self.interfaces[interface as usize].link,
                    orig_len,
                    data: &body[20..20 + caplen as usize],
                    options,
                    has_ts: true,
                })
            }
            block::SIMPLE_PACKET => {
                if body.len() < 4 {
                    return Some(Err(self.error(short)));
                }
                let interface = match self.global_interface(0) {
                    Ok(i) => i,
                    Err(kind) => return Some(Err(self.error(kind))),
                };
                let orig_len = u32_at(body, 0, be);
                let snaplen = self.interfaces[interface as usize].snaplen;
                let mut caplen = (orig_len as usize).min(body.len() - 4);
                if snaplen != 0 {
                    caplen = caplen.min(snaplen as usize);
                }
                self.counts.simple_packet += 1;
                Block::Packet(Record {
                    index: self.index,
                    offset: self.pos as u64,
                    ts: Timestamp(0),
                    raw_ts: 0,
                    interface,
                    link: self.interfaces[interface as usize].link,
                    orig_len,
                    data: &body[4..4 + caplen],
                    options: Options::EMPTY,
                    has_ts: false,
                })
            }
            block::NAME_RESOLUTION => {
                self.counts.name_resolution += 1;
                Block::NameResolution {
                    body,
                    big_endian: be,
                }
            }
            block::INTERFACE_STATISTICS => {
                if body.len() < 12 {
                    return Some(Err(self.error(short)));
                }
                let interface = match self.global_interface(u32_at(body, 0, be)) {
                    Ok(i) => i,
                    Err(kind) => return Some(Err(self.error(kind))),
                };
                let options = Options {
                    bytes: &body[12..],
                    big_endian: be,
                };
                self.check_options("interface statistics", options);
                let stats = &mut self.interfaces[interface as usize];
                stats.received = options.u64_value(opt::ISB_IFRECV).or(stats.received);
                stats.dropped = options.u64_value(opt::ISB_IFDROP).or(stats.dropped);
                self.counts.statistics += 1;
                Block::Statistics {
                    interface,
                    body,
                    big_endian: be,
                }
            }
            block::DECRYPTION_SECRETS => {
                self.counts.decryption_secrets += 1;
                Block::DecryptionSecrets {
                    body,
                    big_endian: be,
                }
            }
            block::CUSTOM | block::CUSTOM_NO_COPY => {
                self.counts.custom += 1;
                Block::Other {
                    block_type,
                    body,
                    big_endian: be,
                }
            }
            _ => {
                self.counts.other += 1;
                Block::Other {
                    block_type,
                    body,
                    big_endian: be,
                }
            }
        };
        self.pos = end;
        if matches!(block, Block::Packet(_)) {
            self.index += 1;
        }
        Some(Ok(block))
    }

    fn global_interface(&self, local: u32) -> Result<u32, ReadErrorKind> {
        let section = self
            .sections
            .last()
            .expect("a section precedes every other block");
        let defined = self.interfaces.len() as u32 - section.first_interface;
        if local < defined {
            Ok(section.first_interface + local)
        } else {
            Err(ReadErrorKind::UnknownInterface {
                interface: local,
                defined,
            })
        }
    }

    fn decode_ts(&mut self, interface: u32, raw: u64) -> Timestamp {
        let (resolution, offset, reported) = self.clocks[interface as usize];
        let ns = resolution.to_nanos(raw).map(|ns| ns + offset);
        if let Some(ns) = ns.and_then(|ns| i64::try_from(ns).ok()) {
            return Timestamp(ns);
        }
        // Once per interface: a clock that is off is usually off for every packet.
        if !reported {
            self.clocks[interface as usize].2 = true;
            self.note(format!(
                "timestamp {raw} of interface {interface} (resolution {resolution:?}) lies outside the years \
                 1677-2262; such times are read as the nearest representable time (reported once per interface)"
            ));
        }
        Timestamp(if ns.is_some_and(|n| n < 0) {
            i64::MIN
        } else {
            i64::MAX
        })
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, ReadError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let block = self.next_block()?;
            if let Ok(Block::Packet(record)) = block {
                return Some(Ok(record));
            }
            if let Err(e) = block {
                return Some(Err(e));
            }
        }
    }
}

/// Builds an option area in little-endian order, for writers.
#[derive(Debug, Default, Clone)]
pub struct OptionsBuilder {
    bytes: Vec<u8>,
}

impl OptionsBuilder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one option; values longer than 65535 bytes are cut to fit the length field.
    pub fn add(&mut self, code: u16, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        self.bytes.extend_from_slice(&code.to_le_bytes());
        self.bytes
            .extend_from_slice(&(value.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(pad4(self.bytes.len()), 0);
        self
    }

    /// Re-encodes options read from a section of either byte order into little endian:
    /// numeric options are swapped, text and byte strings are copied.
    pub fn copy_from(&mut self, options: Options<'_>, numeric: fn(u16) -> Numeric) -> &mut Self {
        self.copy_except(options, numeric, &[])
    }

    /// Like [`OptionsBuilder::copy_from`], leaving out the options with a code in `skip`.
    pub fn copy_except(
        &mut self,
        options: Options<'_>,
        numeric: fn(u16) -> Numeric,
        skip: &[u16],
    ) -> &mut Self {
        for (code, value) in options.iter().map_while(Result::ok) {
            if skip.contains(&code) {
                continue;
            }
            let mut value = value.to_vec();
            if options.big_endian {
                match numeric(code) {
                    Numeric::Whole(n) if value.len() == n => value.reverse(),
                    Numeric::Pen if value.len() >= 4 => value[..4].reverse(),
                    _ => {}
                }
            }
            self.add(code, &value);
        }
        self
    }

    /// The option area with its end-of-options marker, or nothing when no option was added.
    #[must_use]
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        if !out.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        out
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// How an option's value depends on byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numeric {
    /// Text or bytes: copied as they are.
    Bytes,
    /// One integer of this many bytes.
    Whole(usize),
    /// A custom option: a private enterprise number first, then bytes.
    Pen,
}

fn custom_or_bytes(code: u16) -> Numeric {
    match code {
        opt::CUSTOM_STR
        | opt::CUSTOM_BYTES
        | opt::CUSTOM_STR_NO_COPY
        | opt::CUSTOM_BYTES_NO_COPY => Numeric::Pen,
        _ => Numeric::Bytes,
    }
}

/// Byte-order dependence of section header options.
#[must_use]
pub fn shb_numeric(code: u16) -> Numeric {
    custom_or_bytes(code)
}

/// Byte-order dependence of interface description options.
#[must_use]
pub fn idb_numeric(code: u16) -> Numeric {
    match code {
        opt::IF_SPEED | opt::IF_TSOFFSET | 16 | 17 => Numeric::Whole(8),
        opt::IF_TZONE => Numeric::Whole(4),
        _ => custom_or_bytes(code),
    }
}

/// Byte-order dependence of enhanced packet options.
#[must_use]
pub fn epb_numeric(code: u16) -> Numeric {
    match code {
        opt::EPB_FLAGS | opt::EPB_QUEUE => Numeric::Whole(4),
        opt::EPB_DROPCOUNT | opt::EPB_PACKETID => Numeric::Whole(8),
        _ => custom_or_bytes(code),
    }
}
