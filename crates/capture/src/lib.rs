//! Reading and writing packet captures: classic pcap (all byte orders and resolutions, the
//! modified/Kuznetzov variant) and pcapng (several sections, every standard block), plain,
//! gzip or zstd compressed, from a file, a pipe or stdin.
//!
//! The reader is a slice parser over a memory map: a [`Record`] borrows its bytes from the map,
//! timestamps are decoded to integer nanoseconds here so nothing downstream needs interface
//! state, and damage is reported as a [`ReadError`] that names the record index and byte offset.

mod bytes;
mod error;
pub mod inputs;
mod linktype;
pub mod output;
pub mod pcap;
pub mod pcapng;
mod probe;
mod reader;
mod source;
mod timestamp;
pub mod writer;

pub use error::{OpenError, Problem, ReadError, ReadErrorKind};
pub use linktype::LinkType;
pub use probe::{Compression, FileKind, probe, probe_file};
pub use reader::{Capture, Format, Interface, Records, Skip};
pub use source::{HUGE_FROM, HugePageAlloc, map_large_blocks, prefetch_value};
pub use timestamp::{Timestamp, TsResolution};

/// One packet record, borrowed from the capture's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// 0-based position among the packets of the file.
    pub index: u64,
    /// Byte offset of the record header (pcap) or block (pcapng) in the (decompressed) file.
    pub offset: u64,
    pub ts: Timestamp,
    /// The timestamp as stored, in units of the interface's resolution (pcap: µs or ns), so a
    /// writer with the same resolution can copy it without any rounding.
    pub raw_ts: u64,
    /// Global interface number: pcapng interfaces of later sections follow those of earlier ones.
    pub interface: u32,
    pub link: LinkType,
    pub orig_len: u32,
    pub data: &'a [u8],
    /// pcapng packet options (comments, flags, hashes, …), empty for pcap.
    pub options: pcapng::Options<'a>,
    /// `false` for pcapng Simple Packet Blocks, which carry no timestamp (`ts` is then 0).
    pub has_ts: bool,
}

impl Record<'_> {
    /// The record was cut by the snap length: fewer bytes captured than were on the wire.
    #[must_use]
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.orig_len)
    }
}
