//! Classic pcap: the four magics (µs/ns, both byte orders), the modified (Kuznetzov) variant,
//! FCS bits in the link-type field. A hand-written slice walk over the map: see the crate docs
//! of `reader` for why not `pcap-file`.

use crate::bytes::{u16_at, u32_at};
use crate::error::{Problem, ReadError, ReadErrorKind};
use crate::source::{DropBehind, PREFETCH_DISTANCE, prefetch_window};
use crate::{LinkType, Record, Timestamp, pcapng};

pub const HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;
pub const MODIFIED_RECORD_HEADER_LEN: usize = 24;

/// Wireshark's limit for one record of an ordinary link type. A larger length field is taken
/// for corruption unless the file's snap length says packets really are that large.
pub const DEFAULT_MAX_RECORD: u32 = 262_144;
/// The largest snap length we believe as a record limit (Wireshark's largest, for D-Bus).
pub const MAX_SNAPLEN_LIMIT: u32 = 128 * 1024 * 1024;

/// Bits of the link-type field that libpcap reserves (must be zero) and that carry the FCS length.
const LT_RESERVED: u32 = 0x03FF_0000;
const LT_FCS_PRESENT: u32 = 0x0400_0000;

/// The 24-byte file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub big_endian: bool,
    pub nanos: bool,
    /// Kuznetzov's modified format (magic a1b2cd34) with 24-byte record headers.
    pub modified: bool,
    pub version: (u16, u16),
    pub thiszone: i32,
    pub sigfigs: u32,
    pub snaplen: u32,
    pub link: LinkType,
    /// Bytes of frame check sequence at the end of each packet, when the header says.
    pub fcs_len: Option<u8>,
}

impl Header {
    /// Parses and validates the file header; the error is a message for `OpenError::BadHeader`.
    pub fn parse(
        data: &[u8],
        big_endian: bool,
        nanos: bool,
        modified: bool,
    ) -> Result<Self, String> {
        if data.len() < HEADER_LEN {
            return Err(format!(
                "file cut short: the pcap file header needs {HEADER_LEN} bytes, the file has {}",
                data.len()
            ));
        }
        let version = (u16_at(data, 4, big_endian), u16_at(data, 6, big_endian));
        if version.0 != 2 {
            return Err(format!(
                "pcap version {}.{} is not supported (only 2.x exists)",
                version.0, version.1
            ));
        }
        let link_field = u32_at(data, 20, big_endian);
        if link_field & LT_RESERVED != 0 {
            return Err(format!(
                "the reserved bits of the link-type field are not zero ({:#010x}): the header is corrupt",
                link_field & LT_RESERVED
            ));
        }
        let fcs_len = (link_field & LT_FCS_PRESENT != 0).then(|| ((link_field >> 28) * 2) as u8);
        Ok(Header {
            big_endian,
            nanos,
            modified,
            version,
            thiszone: u32_at(data, 8, big_endian) as i32,
            sigfigs: u32_at(data, 12, big_endian),
            snaplen: u32_at(data, 16, big_endian),
            link: LinkType(link_field as u16),
            fcs_len,
        })
    }

    /// The header libpcap writes today: little endian, version 2.4.
    #[must_use]
    pub fn new_le(link: LinkType, nanos: bool, snaplen: u32) -> Self {
        Header {
            big_endian: false,
            nanos,
            modified: false,
            version: (2, 4),
            thiszone: 0,
            sigfigs: 0,
            snaplen,
            link,
            fcs_len: None,
        }
    }

    #[must_use]
    pub fn record_header_len(&self) -> usize {
        if self.modified {
            MODIFIED_RECORD_HEADER_LEN
        } else {
            RECORD_HEADER_LEN
        }
    }

    /// The largest record length we believe.
    #[must_use]
    pub fn max_record(&self) -> u32 {
        DEFAULT_MAX_RECORD.max(self.snaplen.min(MAX_SNAPLEN_LIMIT))
    }

    /// The version-2.4 header written by libpcap for these settings.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let magic: u32 = match (self.nanos, self.modified) {
            (_, true) => 0xa1b2_cd34,
            (true, false) => 0xa1b2_3c4d,
            (false, false) => 0xa1b2_c3d4,
        };
        let mut link = u32::from(self.link.0);
        if let Some(fcs) = self.fcs_len {
            link |= LT_FCS_PRESENT | ((u32::from(fcs) / 2) << 28);
        }
        let mut out = [0u8; HEADER_LEN];
        let fields: [(usize, u32, usize); 7] = [
            (0, magic, 4),
            (4, u32::from(self.version.0), 2),
            (6, u32::from(self.version.1), 2),
            (8, self.thiszone as u32, 4),
            (12, self.sigfigs, 4),
            (16, self.snaplen, 4),
            (20, link, 4),
        ];
        for (at, value, width) in fields {
            let bytes = if self.big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            };
            let bytes = if width == 2 {
                if self.big_endian {
                    &bytes[2..]
                } else {
                    &bytes[..2]
                }
            } else {
                &bytes[..]
            };
            out[at..at + width].copy_from_slice(bytes);
        }
        out
    }
}

/// Walks the records of a classic pcap file.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Prefetched up to here.
    ahead: usize,
    drop_behind: DropBehind<'a>,
    index: u64,
    header: Header,
    done: bool,
    problems: Vec<Problem>,
    problem_count: u64,
    /// Jumps still to make (see `Capture::records_skipping`), the next one first.
    skips: std::collections::VecDeque<crate::Skip>,
    /// Whether the walk requests the bytes ahead of it (not for a few records read here and
    /// there, where it would cost more than it saves).
    prefetch: bool,
}

/// Problems kept in full; later ones are only counted, so a damaged file cannot fill memory.
pub(crate) const MAX_KEPT_PROBLEMS: usize = 100;

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(data: &'a [u8], header: Header) -> Self {
        Reader {
            data,
            pos: HEADER_LEN,
            ahead: 0,
            drop_behind: DropBehind::NONE,
            index: 0,
            header,
            done: false,
            problems: Vec::new(),
            problem_count: 0,
            skips: std::collections::VecDeque::new(),
            prefetch: true,
        }
    }

    pub(crate) fn without_prefetch(mut self) -> Self {
        self.prefetch = false;
        self
    }

    pub(crate) fn with_skips(mut self, skips: Vec<crate::Skip>) -> Self {
        self.skips = skips.into();
        self
    }

    /// The captured length of the record whose header is `h` (versions before 2.3 wrote the
    /// two lengths the other way round; for 2.3 itself files of both kinds exist, and only
    /// the captured length can be the smaller one), and its length on the wire.
    fn lengths(&self, h: &[u8]) -> (u32, u32) {
        let be = self.header.big_endian;
        let (mut caplen, mut orig_len) = (u32_at(h, 8, be), u32_at(h, 12, be));
        let (major, minor) = self.header.version;
        if major == 2 && (minor < 3 || (minor == 3 && caplen > orig_len)) {
            std::mem::swap(&mut caplen, &mut orig_len);
        }
        (caplen, orig_len)
    }

    /// Makes the jump due before record `self.index`, if one is; `Err` when the file does not
    /// bear it out.
    fn skip(&mut self) -> Result<(), ReadErrorKind> {
        let Some(s) = self.skips.front().copied().filter(|s| s.from == self.index) else {
            return Ok(());
        };
        self.skips.pop_front();
        let hlen = self.header.record_header_len();
        if let Some(pos) = s.to_pos {
            self.pos = usize::try_from(pos)
                .ok()
                .filter(|&p| p >= HEADER_LEN && p <= self.data.len())
                .ok_or(ReadErrorKind::TruncatedData {
                    claimed: pos,
                    available: self.data.len() as u64,
                })?;
            self.index = s.to;
            // Nothing is requested ahead of a jump's target until the walk goes on from it:
            // a sparse walk (a partition's records, a query's) jumps again within a record or
            // two, and the whole window requested after every jump was every line of the file
            // (a split reduce task of twelve read twelve times the bytes it used).
            self.ahead = self.pos.saturating_add(PREFETCH_DISTANCE);
        }
        for _ in 0..s.walk {
            let rest = self.data.len() - self.pos;
            let h =
                self.data
                    .get(self.pos..self.pos + hlen)
                    .ok_or(ReadErrorKind::TruncatedHeader {
                        needed: hlen as u64,
                        available: rest as u64,
                    })?;
            let (caplen, _) = self.lengths(h);
            if caplen as usize > rest - hlen {
                return Err(ReadErrorKind::TruncatedData {
                    claimed: caplen.into(),
                    available: (rest - hlen) as u64,
                });
            }
            self.pos += hlen + caplen as usize;
            self.index += 1;
        }
        Ok(())
    }

    /// A walk that starts at byte `pos` (a record boundary, e.g. one `guess_boundary` found),
    /// numbering records from `index`.
    #[must_use]
    pub fn starting_at(data: &'a [u8], header: Header, pos: usize, index: u64) -> Self {
        let mut r = Reader::new(data, header);
        r.pos = pos.clamp(HEADER_LEN, data.len());
        r.index = index;
        r
    }

    pub(crate) fn with_drop_behind(mut self, drop_behind: DropBehind<'a>) -> Self {
        self.drop_behind = drop_behind;
        self
    }

    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Non-fatal problems seen so far (the first hundred) and how many there were in all.
    #[must_use]
    pub fn problems(&self) -> (&[Problem], u64) {
        (&self.problems, self.problem_count)
    }

    /// Byte offset of the next record.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    fn fail(&mut self, kind: ReadErrorKind) -> Result<Record<'a>, ReadError> {
        self.done = true;
        Err(ReadError {
            record: self.index,
            offset: self.pos as u64,
            kind,
        })
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
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, ReadError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.skips.is_empty()
            && let Err(kind) = self.skip()
        {
            return Some(self.fail(kind));
        }
        let data = self.data;
        let rest = data.len() - self.pos;
        if rest == 0 {
            self.done = true;
            self.drop_behind.finish(data.len());
            return None;
        }
        let hlen = self.header.record_header_len();
        if rest < hlen {
            return Some(self.fail(ReadErrorKind::TruncatedHeader {
                needed: hlen as u64,
                available: rest as u64,
            }));
        }
        if self.prefetch {
            prefetch_window(data, self.pos, &mut self.ahead);
        }
        self.drop_behind.advance(self.pos);
        let be = self.header.big_endian;
        let h = &data[self.pos..self.pos + hlen];
        let secs = u32_at(h, 0, be);
        let frac = u32_at(h, 4, be);
        let (caplen, orig_len) = self.lengths(h);
        let limit = self.header.max_record();
        if caplen > limit {
            return Some(self.fail(ReadErrorKind::OversizedRecord {
                claimed: caplen.into(),
                limit: limit.into(),
            }));
        }
        let available = rest - hlen;
        if caplen as usize > available {
            return Some(self.fail(ReadErrorKind::TruncatedData {
                claimed: caplen.into(),
                available: available as u64,
            }));
        }
        let (units, scale) = if self.header.nanos {
            (1_000_000_000u32, 1)
        } else {
            (1_000_000u32, 1000)
        };
        if frac >= units {
            self.note(format!(
                "timestamp fraction {frac} is not below {units}; read as {} seconds",
                f64::from(frac) / f64::from(units)
            ));
        }
        let start = self.pos + hlen;
        let record = Record {
            index: self.index,
            offset: self.pos as u64,
            ts: Timestamp(i64::from(secs) * Timestamp::NANOS_PER_SEC + i64::from(frac) * scale),
            raw_ts: u64::from(secs) * u64::from(units) + u64::from(frac),
            interface: 0,
            link: self.header.link,
            orig_len,
            data: &data[start..start + caplen as usize],
            options: pcapng::Options::EMPTY,
            has_ts: true,
        };
        self.pos = start + caplen as usize;
        self.index += 1;
        Some(Ok(record))
    }
}

/// Headers in a row that must look right before a position is taken for a record boundary.
const RESYNC_CHAIN: usize = 16;

/// The first position at or after `from` where `RESYNC_CHAIN` record headers in a row look
/// right (lengths within the limits, the captured length not above the wire length, seconds
/// within ten years after `first_secs` or a day before, fractions in range) and chain to one
/// another inside the file. A guess: a reader that walks up to it from an earlier boundary
/// confirms it by landing on it exactly, and nothing may rely on an unconfirmed guess.
#[must_use]
pub fn guess_boundary(data: &[u8], header: &Header, from: usize, first_secs: u32) -> Option<usize> {
    let hlen = header.record_header_len();
    let be = header.big_endian;
    let units = if header.nanos {
        1_000_000_000
    } else {
        1_000_000
    };
    let limit = header.max_record();
    let plausible = |at: usize| -> Option<usize> {
        let h = data.get(at..at + hlen)?;
        let (secs, frac) = (u32_at(h, 0, be), u32_at(h, 4, be));
        let (caplen, orig_len) = (u32_at(h, 8, be), u32_at(h, 12, be));
        let ok = frac < units
            && caplen <= limit
            && caplen <= orig_len
            && orig_len <= limit.max(262_144)
            && secs.wrapping_sub(first_secs.saturating_sub(86_400)) <= 86_400 + 10 * 366 * 86_400;
        let next = at + hlen + caplen as usize;
        (ok && next <= data.len()).then_some(next)
    };
    (from.max(HEADER_LEN)..data.len().saturating_sub(hlen)).find(|&start| {
        let mut at = start;
        for _ in 0..RESYNC_CHAIN {
            match plausible(at) {
                Some(next) if next == data.len() => return true,
                Some(next) => at = next,
                None => return false,
            }
        }
        true
    })
}

/// The fields the modified format adds to each record header (interface index, protocol,
/// packet type); exposed for completeness, the reader itself does not need them.
#[must_use]
pub fn modified_fields(record_header: &[u8], big_endian: bool) -> Option<(u32, u16, u8)> {
    (record_header.len() >= MODIFIED_RECORD_HEADER_LEN).then(|| {
        (
            u32_at(record_header, 16, big_endian),
            u16_at(record_header, 20, big_endian),
            record_header[22],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap of `n` records whose payloads are full of bytes that look like record headers.
    fn deceptive(n: u32) -> (Vec<u8>, Vec<usize>, Header) {
        let header = Header::new_le(LinkType::ETHERNET, false, 65_535);
        let mut data = header.to_bytes().to_vec();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(data.len());
            let len = 40 + (i * 7919) % 200;
            let mut payload = Vec::new();
            // A fake header inside the payload: plausible time and lengths.
            while payload.len() + 16 <= len as usize {
                payload.extend_from_slice(&1_700_000_000u32.to_le_bytes());
                payload.extend_from_slice(&5u32.to_le_bytes());
                payload.extend_from_slice(&16u32.to_le_bytes());
                payload.extend_from_slice(&16u32.to_le_bytes());
            }
            payload.resize(len as usize, 0);
            data.extend_from_slice(&(1_700_000_000 + i).to_le_bytes());
            data.extend_from_slice(&0u32.to_le_bytes());
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(&payload);
        }
        (data, starts, header)
    }

    #[test]
    fn a_guessed_boundary_is_confirmed_only_by_a_walk_that_lands_on_it() {
        let (data, starts, header) = deceptive(2000);
        for from in (HEADER_LEN..data.len()).step_by(997) {
            let Some(guess) = guess_boundary(&data, &header, from, 1_700_000_000) else {
                continue;
            };
            // A walk from the start lands on the guess exactly when it is a record boundary.
            let mut walk = Reader::new(&data, header);
            while walk.position() < guess as u64 {
                walk.next().unwrap().unwrap();
            }
            assert_eq!(walk.position() == guess as u64, starts.contains(&guess));
        }
    }

    #[test]
    fn a_walk_from_a_boundary_reads_the_records_after_it() {
        let (data, starts, header) = deceptive(100);
        let from: Vec<u64> = Reader::starting_at(&data, header, starts[60], 60)
            .map(|r| r.unwrap().index)
            .collect();
        assert_eq!(from, (60..100).collect::<Vec<u64>>());
    }
}
