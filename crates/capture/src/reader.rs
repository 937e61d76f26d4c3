//! Opening a capture and walking its records.
//!
//! Why a hand-written slice walk rather than `pcap-file` 3.0 for reading: pcap-file rejects a
//! whole file for one bad SHB/IDB option, has no modified-pcap support, returns FCS bits as an
//! unknown link type, keeps timestamps as `Duration` (binary resolutions drift), and cannot
//! prefetch, which made the header walk 3.5–4× faster here (NOTES-dependencies.md). pcap-file
//! stays as the second reader in this crate's tests.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::OpenError;
use crate::pcapng::{self, Options, OwnedOptions, opt};
use crate::probe::{Compression, FileKind, probe};
use crate::source::{Bytes, DropBehind, map_or_read};
use crate::{LinkType, Problem, ReadError, Record, Timestamp, TsResolution, pcap};

/// The container format of an opened capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap(pcap::Header),
    Pcapng,
}

impl Format {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Format::Pcap(_) => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// A capture interface: the one of a pcap file, or a pcapng Interface Description Block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// pcapng section number (0 for pcap).
    pub section: u32,
    pub link: LinkType,
    /// 0 means "not set".
    pub snaplen: u32,
    pub resolution: TsResolution,
    /// `if_tsoffset`: seconds added to every timestamp.
    pub tsoffset: i64,
    pub name: Option<String>,
    pub description: Option<String>,
    pub os: Option<String>,
    pub hardware: Option<String>,
    pub fcs_len: Option<u8>,
    /// From the last Interface Statistics Block, when there is one.
    pub received: Option<u64>,
    pub dropped: Option<u64>,
    /// Every option as found, for writers that preserve them.
    pub options: OwnedOptions,
}

impl Interface {
    pub(crate) fn from_pcapng(
        section: u32,
        link: LinkType,
        snaplen: u32,
        options: Options<'_>,
    ) -> Self {
        let text = |code| {
            options
                .get(code)
                .map(|v| String::from_utf8_lossy(v).trim_end_matches('\0').to_owned())
        };
        Interface {
            section,
            link,
            snaplen,
            resolution: options
                .get(opt::IF_TSRESOL)
                .and_then(|v| v.first())
                .map_or(TsResolution::MICRO, |&b| TsResolution::from_option(b)),
            tsoffset: options.u64_value(opt::IF_TSOFFSET).map_or(0, |v| v as i64),
            name: text(opt::IF_NAME),
            description: text(opt::IF_DESCRIPTION),
            os: text(opt::IF_OS),
            hardware: text(opt::IF_HARDWARE),
            fcs_len: options.get(opt::IF_FCSLEN).and_then(|v| v.first().copied()),
            received: None,
            dropped: None,
            options: OwnedOptions {
                bytes: options.bytes.to_vec(),
                big_endian: options.big_endian,
            },
        }
    }

    fn from_pcap(header: &pcap::Header) -> Self {
        Interface {
            section: 0,
            link: header.link,
            snaplen: header.snaplen,
            resolution: if header.nanos {
                TsResolution::NANO
            } else {
                TsResolution::MICRO
            },
            tsoffset: 0,
            name: None,
            description: None,
            os: None,
            hardware: None,
            fcs_len: header.fcs_len,
            received: None,
            dropped: None,
            options: pcap_interface_options(header),
        }
    }
}

/// The options a pcapng interface needs to describe a pcap file's packets exactly: its
/// resolution (when not µs) and FCS length, so copying the interface keeps raw timestamps right.
fn pcap_interface_options(header: &pcap::Header) -> OwnedOptions {
    let mut b = pcapng::OptionsBuilder::new();
    if header.nanos {
        b.add(opt::IF_TSRESOL, &[TsResolution::NANO.to_option()]);
    }
    if let Some(fcs) = header.fcs_len {
        b.add(opt::IF_FCSLEN, &[fcs]);
    }
    OwnedOptions {
        bytes: b.finish(),
        big_endian: false,
    }
}

/// An opened capture: its bytes (mapped, or decompressed into an unlinked temporary file and
/// mapped) and its format. Records borrow from it.
#[derive(Debug)]
pub struct Capture {
    path: PathBuf,
    bytes: Bytes,
    format: Format,
    compression: Option<Compression>,
    /// Size of the file as stored (compressed size for compressed input).
    stored_len: u64,
}

impl Capture {
    /// Opens a file, or standard input for `-`, and checks its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Capture, OpenError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let (bytes, stored_len) = if path.as_os_str() == "-" {
            let bytes = spool(&mut io::stdin().lock()).map_err(io)?;
            let len = bytes.len() as u64;
            (bytes, len)
        } else {
            let mut file = File::open(&path).map_err(io)?;
            let meta = file.metadata().map_err(io)?;
            if meta.is_dir() {
                return Err(io(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory",
                )));
            }
            let bytes = if meta.is_file() {
                map_or_read(&mut file, meta.len())
            } else {
                spool(&mut file)
            }
            .map_err(io)?;
            let len = if meta.is_file() {
                meta.len()
            } else {
                bytes.len() as u64
            };
            (bytes, len)
        };
        Self::from_bytes(path, bytes, stored_len)
    }

    /// Reads a capture held in memory (tests, fuzzing).
    pub fn from_vec(path: impl Into<PathBuf>, data: Vec<u8>) -> Result<Capture, OpenError> {
        let len = data.len() as u64;
        Self::from_bytes(path.into(), Bytes::Owned(data), len)
    }

    fn from_bytes(path: PathBuf, mut bytes: Bytes, stored_len: u64) -> Result<Capture, OpenError> {
        let mut compression = None;
        let mut kind = probe(&bytes[..bytes.len().min(512)]);
        if let FileKind::Compressed(c) = kind {
            bytes = decompress(&bytes, c).map_err(|source| OpenError::Decompress {
                path: path.clone(),
                compression: c.name(),
                source,
            })?;
            compression = Some(c);
            kind = probe(&bytes[..bytes.len().min(512)]);
        }
        let unsupported = |what: String| OpenError::UnsupportedFormat {
            path: path.clone(),
            what,
        };
        let format = match kind {
            FileKind::Pcap {
                big_endian,
                nanos,
                modified,
            } => {
                let header = pcap::Header::parse(&bytes, big_endian, nanos, modified).map_err(
                    |message| OpenError::BadHeader {
                        path: path.clone(),
                        offset: 0,
                        message,
                    },
                )?;
                Format::Pcap(header)
            }
            FileKind::Pcapng => Format::Pcapng,
            FileKind::Empty => return Err(unsupported("the file is empty".into())),
            FileKind::Other(name) => {
                return Err(unsupported(format!(
                    "this is {name}, not a pcap or pcapng capture"
                )));
            }
            FileKind::Compressed(c) => {
                return Err(unsupported(format!(
                    "{} data inside {} data is not supported",
                    c.name(),
                    compression.map_or("", Compression::name)
                )));
            }
            FileKind::Unknown => {
                let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
                return Err(unsupported(format!(
                    "unknown format (first bytes: {})",
                    head.join(" ")
                )));
            }
        };
        Ok(Capture {
            path,
            bytes,
            format,
            compression,
            stored_len,
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[must_use]
    pub fn format(&self) -> Format {
        self.format
    }

    #[must_use]
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Size as stored on disk; [`Capture::data`] has the decompressed length.
    #[must_use]
    pub fn stored_len(&self) -> u64 {
        self.stored_len
    }

    /// The whole (decompressed) file.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.bytes
    }

    /// For a classic pcap capture (version 2.4), up to `n` pieces `[start, end)` cut at guessed
    /// record boundaries (`pcap::guess_boundary`), to be walked in parallel. A guess is only
    /// confirmed when the walk of the piece before it ends exactly at its start; the caller
    /// must check that, and read the capture whole otherwise.
    #[must_use]
    pub fn pcap_pieces(&self, n: usize) -> Option<Vec<(usize, usize)>> {
        let Format::Pcap(header) = self.format else {
            return None;
        };
        if header.version != (2, 4) {
            return None;
        }
        let data: &[u8] = &self.bytes;
        let first = self.records().next()?.ok()?;
        let first_secs = u32::try_from(first.ts.0.div_euclid(Timestamp::NANOS_PER_SEC)).ok()?;
        let mut starts = vec![pcap::HEADER_LEN];
        for i in 1..n {
            let from = data.len() / n * i;
            if let Some(b) = pcap::guess_boundary(data, &header, from, first_secs)
                && b > *starts.last().unwrap_or(&0)
            {
                starts.push(b);
            }
        }
        let mut pieces: Vec<(usize, usize)> = starts.windows(2).map(|w| (w[0], w[1])).collect();
        pieces.push((*starts.last().unwrap_or(&pcap::HEADER_LEN), data.len()));
        Some(pieces)
    }

    /// A walk over the records from the start that makes the jumps `skips` say (ascending by
    /// [`Skip::from`]), passing over records a selection cannot match without reading them;
    /// every other block (pcapng's section headers, interfaces, statistics…) is read as
    /// [`Capture::records`] reads it, and records keep their indexes. A jump the file does not
    /// bear out (a record that is not where the skip says) ends the walk with an error.
    #[must_use]
    pub fn records_skipping(&self, skips: Vec<Skip>) -> Records<'_> {
        match self.records() {
            Records::Pcap(r, i) => Records::Pcap(r.with_skips(skips), i),
            Records::Pcapng(r) => Records::Pcapng(r.with_skips(skips)),
        }
    }

    /// [`Capture::pcap_records_from`] for a few records read here and there (an index's
    /// query): nothing requested ahead, nothing given back behind.
    #[must_use]
    pub fn pcap_records_at(&self, pos: usize, index: u64) -> Option<Records<'_>> {
        let Format::Pcap(header) = self.format else {
            return None;
        };
        Some(Records::Pcap(
            pcap::Reader::starting_at(&self.bytes, header, pos, index).without_prefetch(),
            [Interface::from_pcap(&header)],
        ))
    }

    /// A walk over a classic pcap capture from byte `pos` (a confirmed or guessed record
    /// boundary), numbering records from `index`; `None` for pcapng.
    #[must_use]
    pub fn pcap_records_from(&self, pos: usize, index: u64) -> Option<Records<'_>> {
        let Format::Pcap(header) = self.format else {
            return None;
        };
        let drop_behind = DropBehind::new(&self.bytes).starting_at(pos);
        Some(Records::Pcap(
            pcap::Reader::starting_at(&self.bytes, header, pos, index)
                .with_drop_behind(drop_behind),
            [Interface::from_pcap(&header)],
        ))
    }

    /// A fresh walk over the records from the start.
    #[must_use]
    pub fn records(&self) -> Records<'_> {
        let drop_behind = DropBehind::new(&self.bytes);
        match self.format {
            Format::Pcap(header) => Records::Pcap(
                pcap::Reader::new(&self.bytes, header).with_drop_behind(drop_behind),
                [Interface::from_pcap(&header)],
            ),
            Format::Pcapng => {
                Records::Pcapng(pcapng::Reader::new(&self.bytes).with_drop_behind(drop_behind))
            }
        }
    }
}

/// A jump over records: when the next record to read would be record `from` (0-based), go to
/// byte `to_pos` (the start of record `to`; `None`: stay), then pass over `walk` records by
/// their lengths alone. (Made by an index, which knows where records start.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub from: u64,
    pub to_pos: Option<u64>,
    pub to: u64,
    pub walk: u32,
}

/// A walk over the packet records of either format. After an `Err` it ends: what follows
/// the damage cannot be located.
#[derive(Debug, Clone)]
pub enum Records<'a> {
    Pcap(pcap::Reader<'a>, [Interface; 1]),
    Pcapng(pcapng::Reader<'a>),
}

impl Records<'_> {
    /// Interfaces seen so far (pcapng interfaces appear as the walk meets them).
    #[must_use]
    pub fn interfaces(&self) -> &[Interface] {
        match self {
            Records::Pcap(_, iface) => iface,
            Records::Pcapng(r) => r.interfaces(),
        }
    }

    /// Non-fatal problems: the first hundred, and the total count.
    #[must_use]
    pub fn problems(&self) -> (&[Problem], u64) {
        match self {
            Records::Pcap(r, _) => r.problems(),
            Records::Pcapng(r) => r.problems(),
        }
    }

    /// Byte offset the walk has reached.
    #[must_use]
    pub fn position(&self) -> u64 {
        match self {
            Records::Pcap(r, _) => r.position(),
            Records::Pcapng(r) => r.position(),
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, ReadError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Records::Pcap(r, _) => r.next(),
            Records::Pcapng(r) => r.next(),
        }
    }
}

/// Copies a stream into an unlinked temporary file and maps it: memory stays bounded
/// whatever the size of the pipe or of the decompressed capture.
fn spool(reader: &mut dyn Read) -> io::Result<Bytes> {
    let mut file = tempfile::tempfile()?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 20, &mut file);
        io::copy(reader, &mut out)?;
        out.flush()?;
    }
    file.seek(SeekFrom::Start(0))?;
    let len = file.metadata()?.len();
    map_or_read(&mut file, len)
}

fn decompress(data: &[u8], compression: Compression) -> io::Result<Bytes> {
    match compression {
        Compression::Gzip => spool(&mut flate2::read::MultiGzDecoder::new(data)),
        Compression::Zstd => spool(&mut zstd::stream::read::Decoder::new(data)?),
    }
}
