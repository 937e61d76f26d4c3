//! Capture writers: classic pcap (µs or ns) and pcapng (SHB/IDB options kept, EPB options).
//!
//! Hand-written rather than `pcap-file`'s writers: those rejected packets larger than the header
//! snap length, hold timestamps as `Duration` (binary resolutions drift on rewrite) and ran at
//! ~1.5 GB/s against ~2.8 GB/s for copying record bytes straight from the map. Writers never
//! lose precision silently: a timestamp that a resolution cannot hold exactly is an error.

use std::io::{self, Write};

use crate::pcapng::{OptionsBuilder, opt};
use crate::{Interface, LinkType, Record, Timestamp, TsResolution, pcap};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(
        "timestamp {ts} needs finer resolution than the output's {resolution:?}; write nanoseconds instead"
    )]
    PrecisionLoss {
        ts: Timestamp,
        resolution: TsResolution,
    },
    #[error("timestamp {0} cannot be stored in this format (before 1970 or after 2106 for pcap)")]
    TimestampOutOfRange(Timestamp),
    #[error(
        "packet of link type {got} cannot go into a pcap file of link type {expected}; write pcapng"
    )]
    LinkTypeMismatch { expected: LinkType, got: LinkType },
    #[error("packet refers to interface {0}, which was not added to the writer")]
    UnknownInterface(u32),
    #[error("packet of {0} bytes is too large for a pcapng block")]
    TooLarge(usize),
}

/// Timestamp resolution of a classic pcap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Micro,
    Nano,
}

/// Writes a little-endian, version 2.4 classic pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    link: LinkType,
    nanos: bool,
    written: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W, link: LinkType, precision: Precision, snaplen: u32) -> io::Result<Self> {
        let nanos = precision == Precision::Nano;
        let header = pcap::Header::new_le(link, nanos, snaplen);
        out.write_all(&header.to_bytes())?;
        Ok(PcapWriter {
            out,
            link,
            nanos,
            written: 0,
        })
    }

    /// Writes one packet; refuses a timestamp the file's resolution would round.
    #[inline]
    pub fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> Result<(), WriteError> {
        encode::pcap_record(&mut self.out, self.nanos, ts, data, orig_len)?;
        self.written += 1;
        Ok(())
    }

    /// Writes `count` records already encoded with [`encode::pcap_record`] (for this file's
    /// resolution), in one write: workers can encode in parallel and the writer copies once.
    pub fn write_encoded(&mut self, records: &[u8], count: u64) -> io::Result<()> {
        self.out.write_all(records)?;
        self.written += count;
        Ok(())
    }

    /// Whether the file stores nanoseconds.
    #[must_use]
    pub fn nanos(&self) -> bool {
        self.nanos
    }

    /// Writes a record read from any capture, checking its link type.
    pub fn write_record(&mut self, record: &Record<'_>) -> Result<(), WriteError> {
        if record.link != self.link {
            return Err(WriteError::LinkTypeMismatch {
                expected: self.link,
                got: record.link,
            });
        }
        self.write(record.ts, record.data, record.orig_len)
    }

    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// How a packet's time is given to the pcapng writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketTime {
    /// Nanoseconds since the epoch; converted to the interface's resolution, exactly or not at all.
    Nanos(Timestamp),
    /// Already in the interface's units (copied from a reader with the same resolution/offset).
    Raw(u64),
}

/// Writes a little-endian pcapng file with one section.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    /// Per interface: resolution and `if_tsoffset` in seconds.
    clocks: Vec<(TsResolution, i64)>,
    written: u64,
}

const PAD: [u8; 4] = [0; 4];

impl<W: Write> PcapngWriter<W> {
    /// Starts a section. `shb_options` is an option area from [`OptionsBuilder::finish`].
    pub fn new(mut out: W, shb_options: &[u8]) -> io::Result<Self> {
        encode::section_header(&mut out, shb_options)?;
        Ok(PcapngWriter {
            out,
            clocks: Vec::new(),
            written: 0,
        })
    }

    /// Adds an interface; `options` is a finished option area (it may hold `if_tsresol` and
    /// `if_tsoffset`, which then govern [`PacketTime::Nanos`] conversion). Returns its number.
    pub fn add_interface(
        &mut self,
        link: LinkType,
        snaplen: u32,
        options: &[u8],
    ) -> io::Result<u32> {
        let view = crate::pcapng::Options {
            bytes: options,
            big_endian: false,
        };
        let resolution = view
            .get(opt::IF_TSRESOL)
            .and_then(|v| v.first())
            .map_or(TsResolution::MICRO, |&b| TsResolution::from_option(b));
        let tsoffset = view.u64_value(opt::IF_TSOFFSET).map_or(0, |v| v as i64);
        encode::interface_description(&mut self.out, link, snaplen, options)?;
        self.clocks.push((resolution, tsoffset));
        Ok(self.clocks.len() as u32 - 1)
    }

    /// Adds an interface like one read from a capture, keeping all of its options (converted to
    /// little endian), so names, descriptions, filters and resolution survive.
    pub fn add_interface_like(&mut self, iface: &Interface) -> io::Result<u32> {
        let options = OptionsBuilder::new()
            .copy_from(iface.options.view(), crate::pcapng::idb_numeric)
            .finish();
        self.add_interface(iface.link, iface.snaplen, &options)
    }

    /// Writes an Enhanced Packet Block. `options` is a finished option area or empty.
    #[inline]
    pub fn write_packet(
        &mut self,
        interface: u32,
        time: PacketTime,
        data: &[u8],
        orig_len: u32,
        options: &[u8],
    ) -> Result<(), WriteError> {
        let &(resolution, tsoffset) = self
            .clocks
            .get(interface as usize)
            .ok_or(WriteError::UnknownInterface(interface))?;
        let units = match time {
            PacketTime::Raw(units) => units,
            PacketTime::Nanos(ts) => {
                let ns =
                    i128::from(ts.0) - i128::from(tsoffset) * i128::from(Timestamp::NANOS_PER_SEC);
                let ns = u64::try_from(ns).map_err(|_| WriteError::TimestampOutOfRange(ts))?;
                let (units, exact) = resolution.from_nanos(ns);
                if !exact {
                    return Err(WriteError::PrecisionLoss { ts, resolution });
                }
                units
            }
        };
        encode::enhanced_packet(&mut self.out, interface, units, data, orig_len, options)?;
        self.written += 1;
        Ok(())
    }

    /// Writes a record read from a capture on interface `interface` of this writer, keeping its
    /// options (comments, flags, hashes…). Raw timestamps are copied when `same_clock` says the
    /// writer's interface has the reader's resolution and offset.
    pub fn write_record(
        &mut self,
        interface: u32,
        record: &Record<'_>,
        same_clock: bool,
    ) -> Result<(), WriteError> {
        // A simple packet block has no time; an enhanced one must have one: zero units.
        let time = if !record.has_ts {
            PacketTime::Raw(0)
        } else if same_clock {
            PacketTime::Raw(record.raw_ts)
        } else {
            PacketTime::Nanos(record.ts)
        };
        if record.options.bytes.is_empty() {
            return self.write_packet(interface, time, record.data, record.orig_len, &[]);
        }
        if !record.options.big_endian {
            // Same byte order: the option area can be copied as it is, end marker included.
            return self.write_packet(
                interface,
                time,
                record.data,
                record.orig_len,
                record.options.bytes,
            );
        }
        let options = OptionsBuilder::new()
            .copy_from(record.options, crate::pcapng::epb_numeric)
            .finish();
        self.write_packet(interface, time, record.data, record.orig_len, &options)
    }

    /// Writes any other block verbatim; `body` must already be little endian.
    pub fn write_raw_block(&mut self, block_type: u32, body: &[u8]) -> io::Result<()> {
        encode::block(&mut self.out, block_type, &[], body, &[])
    }

    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Interface options for a new interface: a name and a resolution.
#[must_use]
pub fn interface_options(name: Option<&str>, resolution: TsResolution) -> Vec<u8> {
    let mut b = OptionsBuilder::new();
    if let Some(name) = name {
        b.add(opt::IF_NAME, name.as_bytes());
    }
    if resolution != TsResolution::MICRO {
        b.add(opt::IF_TSRESOL, &[resolution.to_option()]);
    }
    b.finish()
}

/// Stateless encoders of pcap records and pcapng blocks (little endian), for writers that keep
/// their own buffers (split keeps one per output).
pub mod encode {
    use std::io::{self, Write};

    use super::{PAD, WriteError};
    use crate::pcapng::block;
    use crate::{LinkType, Timestamp, TsResolution};

    /// A classic pcap record header and data.
    #[inline]
    pub fn pcap_record<W: Write>(
        out: &mut W,
        nanos: bool,
        ts: Timestamp,
        data: &[u8],
        orig_len: u32,
    ) -> Result<(), WriteError> {
        let (secs, frac) = pcap_time(nanos, ts)?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        out.write_all(&h)?;
        out.write_all(data)?;
        Ok(())
    }

    /// The seconds and fraction a pcap record header stores for `ts`, or why it cannot.
    pub fn pcap_time(nanos: bool, ts: Timestamp) -> Result<(u32, u32), WriteError> {
        let secs = u32::try_from(ts.secs()).map_err(|_| WriteError::TimestampOutOfRange(ts))?;
        let ns = ts.subsec_nanos();
        if nanos {
            return Ok((secs, ns));
        }
        if !ns.is_multiple_of(1000) {
            return Err(WriteError::PrecisionLoss {
                ts,
                resolution: TsResolution::MICRO,
            });
        }
        Ok((secs, ns / 1000))
    }

    /// Whether an enhanced packet block can hold `data_len` bytes with these options.
    pub fn check_enhanced_packet(data_len: usize, options_len: usize) -> Result<(), WriteError> {
        if data_len > (u32::MAX as usize) - 64 - options_len {
            return Err(WriteError::TooLarge(data_len));
        }
        Ok(())
    }

    /// Bytes a pcap record takes.
    #[must_use]
    pub fn pcap_record_len(data_len: usize) -> u64 {
        16 + data_len as u64
    }

    /// A section header block (version 1.0, unknown section length).
    pub fn section_header<W: Write>(out: &mut W, options: &[u8]) -> io::Result<()> {
        let mut fixed = [0u8; 16];
        fixed[0..4].copy_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        fixed[4..6].copy_from_slice(&1u16.to_le_bytes());
        fixed[8..16].copy_from_slice(&(-1i64).to_le_bytes());
        block(out, block::SECTION_HEADER, &fixed, &[], options)
    }

    /// An interface description block.
    pub fn interface_description<W: Write>(
        out: &mut W,
        link: LinkType,
        snaplen: u32,
        options: &[u8],
    ) -> io::Result<()> {
        let mut fixed = [0u8; 8];
        fixed[0..2].copy_from_slice(&link.0.to_le_bytes());
        fixed[4..8].copy_from_slice(&snaplen.to_le_bytes());
        block(out, block::INTERFACE_DESCRIPTION, &fixed, &[], options)
    }

    /// An enhanced packet block with a timestamp already in the interface's units.
    #[inline]
    pub fn enhanced_packet<W: Write>(
        out: &mut W,
        interface: u32,
        units: u64,
        data: &[u8],
        orig_len: u32,
        options: &[u8],
    ) -> Result<(), WriteError> {
        check_enhanced_packet(data.len(), options.len())?;
        let mut fixed = [0u8; 20];
        fixed[0..4].copy_from_slice(&interface.to_le_bytes());
        fixed[4..8].copy_from_slice(&((units >> 32) as u32).to_le_bytes());
        fixed[8..12].copy_from_slice(&(units as u32).to_le_bytes());
        fixed[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        fixed[16..20].copy_from_slice(&orig_len.to_le_bytes());
        block(out, block::ENHANCED_PACKET, &fixed, data, options)?;
        Ok(())
    }

    /// Bytes an enhanced packet block takes.
    #[must_use]
    pub fn enhanced_packet_len(data_len: usize, options_len: usize) -> u64 {
        (32 + crate::bytes::pad4(data_len) + options_len) as u64
    }

    /// Any block: fixed fields, padded data, options, lengths around.
    #[inline]
    pub fn block<W: Write>(
        out: &mut W,
        block_type: u32,
        fixed: &[u8],
        data: &[u8],
        options: &[u8],
    ) -> io::Result<()> {
        let padded = crate::bytes::pad4(data.len());
        let len = (12 + fixed.len() + padded + options.len()) as u32;
        let mut head = [0u8; 8];
        head[0..4].copy_from_slice(&block_type.to_le_bytes());
        head[4..8].copy_from_slice(&len.to_le_bytes());
        out.write_all(&head)?;
        out.write_all(fixed)?;
        out.write_all(data)?;
        out.write_all(&PAD[..padded - data.len()])?;
        out.write_all(options)?;
        out.write_all(&len.to_le_bytes())
    }
}
