//! Application messages that travel across packets: DNS over TCP (length-prefixed messages,
//! also spanning segments, retransmitted or out of order) and DNS in fragmented IP datagrams.
//! A walk over the original packets in file order reassembles them and reads each message
//! whole; the result is a list of patches, each the part of one field that lies in one packet,
//! so the rewriter (which sees one packet at a time, on any thread) maps every copy of every
//! field alike. What cannot be read through (a gap, a message cut by the snap length, a
//! datagram with a fragment missing, a stream whose start was not captured) is zeroed and
//! counted: fail closed, never an original address left.

use std::ops::Range;

use rustc_hash::FxHashMap;
use tracekit_wire::{IpLayer, TransportKind, dissect};

pub use crate::app::Kind;
use crate::app::{Field, dns, is_dns_port};

/// One field as the message holds it, before it was cut into packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whole {
    pub kind: Kind,
    /// The original bytes (empty for `Zero` and `Unparsed`).
    pub original: Vec<u8>,
}

/// The part of field `whole` that lies in packet `packet` at `at`, starting `from` bytes into
/// the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub packet: u64,
    pub at: Range<usize>,
    pub whole: u32,
    pub from: usize,
}

/// The fields of the messages that cross packets, for every packet they lie in.
#[derive(Debug, Default)]
pub struct Reassembled {
    /// Sorted by packet.
    patches: Vec<Patch>,
    wholes: Vec<Whole>,
    /// Bytes zeroed because they could not be read through, over all packets.
    pub unparsed_bytes: u64,
}

impl Reassembled {
    /// The patches of packet `packet` (its 0-based index in the file).
    #[must_use]
    pub fn patches(&self, packet: u64) -> &[Patch] {
        let from = self.patches.partition_point(|p| p.packet < packet);
        let n = self.patches[from..]
            .iter()
            .take_while(|p| p.packet == packet)
            .count();
        &self.patches[from..from + n]
    }

    #[must_use]
    pub fn whole(&self, i: u32) -> &Whole {
        &self.wholes[i as usize]
    }

    /// Every whole field (for the leak check: the addresses they held).
    #[must_use]
    pub fn wholes(&self) -> &[Whole] {
        &self.wholes
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty()
    }
}

/// Bytes of one packet that belong at `pos` in a stream or datagram.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    packet: u64,
    /// Where the bytes start in the packet.
    at: usize,
    bytes: &'a [u8],
}

/// One direction of a TCP connection to or from a DNS port.
#[derive(Debug, Default)]
struct Direction<'a> {
    /// The sequence number of the first byte of the stream (after the SYN), when it was seen.
    start: Option<u32>,
    /// Segments: (sequence number, bytes).
    pieces: Vec<(u32, Piece<'a>)>,
}

/// One fragmented datagram.
#[derive(Debug, Default)]
struct Datagram<'a> {
    /// (offset in the datagram's payload, bytes).
    pieces: Vec<(usize, Piece<'a>)>,
    /// The payload's length, from the last fragment.
    len: Option<usize>,
    /// The first fragment's UDP ports, when it was seen.
    ports: Option<(u16, u16)>,
    protocol: u8,
}

/// A direction or datagram key: version, source, destination (16 bytes each, IPv4 in the
/// first 4), and ports or the fragment identification.
type Key = (u8, [u8; 16], [u8; 16], u32, u32);

fn addresses(ip: &IpLayer, data: &[u8]) -> Option<([u8; 16], [u8; 16])> {
    let h = ip.header.start as usize;
    let (s, d, n) = if ip.version == 4 {
        (h + 12, h + 16, 4)
    } else {
        (h + 8, h + 24, 16)
    };
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    src[..n].copy_from_slice(data.get(s..s + n)?);
    dst[..n].copy_from_slice(data.get(d..d + n)?);
    Some((src, dst))
}

/// Streams longer than this are not read (their DNS bytes are zeroed).
const MAX_STREAM: usize = 64 << 20;

/// Reassembles what crosses packets, from the original packets in file order:
/// (0-based index, link type, bytes).
#[derive(Debug, Default)]
pub struct Reassembler<'a> {
    streams: FxHashMap<Key, Direction<'a>>,
    datagrams: FxHashMap<Key, Datagram<'a>>,
}

impl<'a> Reassembler<'a> {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a packet may carry part of a message that crosses packets (a fragment, or a TCP
    /// segment to or from a DNS port): the packets [`Reassembler::add`] needs. Pure, so callers
    /// may sift packets on several threads and add the few that pass in file order.
    #[must_use]
    pub fn wants(link: u16, data: &[u8]) -> bool {
        let layers = dissect(link, data);
        let Some(ip) = layers.inner_ip() else {
            return false;
        };
        ip.fragment.is_some()
            || ip
                .transport
                .filter(|t| t.kind == TransportKind::Tcp)
                .and_then(|t| t.ports(data))
                .is_some_and(|(s, d)| is_dns_port(s) || is_dns_port(d))
    }

    /// Takes one original packet (any packet: those [`Reassembler::wants`] refuses are passed
    /// over).
    pub fn add(&mut self, packet: u64, link: u16, data: &'a [u8]) {
        let layers = dissect(link, data);
        let Some(ip) = layers.inner_ip() else { return };
        let Some((src, dst)) = addresses(ip, data) else {
            return;
        };
        let payload = ip.payload.start as usize..(ip.payload.end as usize).min(data.len());
        if let Some(f) = ip.fragment {
            let d = self
                .datagrams
                .entry((ip.version, src, dst, f.ident, u32::from(ip.protocol.0)))
                .or_default();
            d.protocol = ip.protocol.0;
            let mut bytes = &data[payload.clone()];
            let mut at = payload.start;
            if f.offset == 0 {
                // The first fragment: its transport header is part of the datagram's payload.
                if let Some(t) = ip.transport {
                    at = t.header.start as usize;
                    bytes = &data[at.min(payload.end)..payload.end];
                    d.ports = t.ports(data);
                }
            }
            if !f.more {
                // The IP header's length says where the datagram ends, also when cut.
                d.len = Some(usize::from(f.offset) + ip.payload.len());
            }
            d.pieces
                .push((usize::from(f.offset), Piece { packet, at, bytes }));
            return;
        }
        let Some(t) = ip
            .transport
            .filter(|t| t.kind == TransportKind::Tcp && t.complete)
        else {
            return;
        };
        let Some((sport, dport)) = t.ports(data) else {
            return;
        };
        if !is_dns_port(sport) && !is_dns_port(dport) {
            return;
        }
        let h = t.header.start as usize;
        let seq = u32::from_be_bytes(data[h + 4..h + 8].try_into().expect("a TCP header"));
        let syn = data[h + 13] & 0x02 != 0;
        let dir = self
            .streams
            .entry((
                ip.version,
                src,
                dst,
                u32::from(sport) << 16 | u32::from(dport),
                0,
            ))
            .or_default();
        if syn {
            dir.start = Some(seq.wrapping_add(1));
        }
        let body = t.payload.start as usize..(t.payload.end as usize).min(data.len());
        if !body.is_empty() {
            let seq = if syn { seq.wrapping_add(1) } else { seq };
            dir.pieces.push((
                seq,
                Piece {
                    packet,
                    at: body.start,
                    bytes: &data[body],
                },
            ));
        }
    }

    /// Reads every stream and datagram and returns the patches.
    #[must_use]
    pub fn finish(self) -> Reassembled {
        let mut out = Reassembled::default();
        for dir in self.streams.into_values() {
            read_stream(&dir, &mut out);
        }
        for d in self.datagrams.into_values() {
            read_datagram(&d, &mut out);
        }
        out.patches.sort_by_key(|p| (p.packet, p.at.start));
        out
    }
}

/// Bytes at positions (relative to a stream or datagram start) and which are present.
struct Assembled {
    bytes: Vec<u8>,
    present: Vec<bool>,
}

impl Assembled {
    /// Lays `pieces` out; `None` when they would need more than `MAX_STREAM` bytes.
    fn of(pieces: &[(usize, Piece<'_>)]) -> Option<Assembled> {
        let len = pieces
            .iter()
            .map(|(pos, p)| pos + p.bytes.len())
            .max()
            .unwrap_or(0);
        if len > MAX_STREAM {
            return None;
        }
        let mut a = Assembled {
            bytes: vec![0; len],
            present: vec![false; len],
        };
        // The first copy of a byte wins (what a receiver that keeps the first copy reads).
        for (pos, p) in pieces {
            let r = *pos..pos + p.bytes.len();
            if !a.present[r.clone()].contains(&true) {
                // Nothing there yet (the usual case): one copy.
                a.bytes[r.clone()].copy_from_slice(p.bytes);
                a.present[r].fill(true);
                continue;
            }
            for (k, &b) in p.bytes.iter().enumerate() {
                if !a.present[pos + k] {
                    a.present[pos + k] = true;
                    a.bytes[pos + k] = b;
                }
            }
        }
        Some(a)
    }

    /// The whole range is present.
    fn has(&self, r: Range<usize>) -> bool {
        r.end <= self.present.len() && self.present[r].iter().all(|&p| p)
    }
}

/// Adds field `kind` at `range` of the stream, with a patch for every piece holding a part of
/// it.
fn emit(
    out: &mut Reassembled,
    pieces: &[(usize, Piece<'_>)],
    a: &Assembled,
    kind: Kind,
    range: Range<usize>,
) {
    if range.is_empty() {
        return;
    }
    let original = match kind {
        Kind::Zero | Kind::Unparsed => Vec::new(),
        _ => a.bytes[range.clone()].to_vec(),
    };
    let whole = out.wholes.len() as u32;
    out.wholes.push(Whole { kind, original });
    for (pos, p) in pieces {
        let (start, end) = (range.start.max(*pos), range.end.min(pos + p.bytes.len()));
        if start < end {
            if kind == Kind::Unparsed {
                out.unparsed_bytes += (end - start) as u64;
            }
            out.patches.push(Patch {
                packet: p.packet,
                at: p.at + start - pos..p.at + end - pos,
                whole,
                from: start - range.start,
            });
        }
    }
}

/// Maps the fields `dns` found in a message (its ranges relative to the stream) to patches.
fn emit_fields(
    out: &mut Reassembled,
    pieces: &[(usize, Piece<'_>)],
    a: &Assembled,
    fields: Vec<Field>,
) {
    for f in fields {
        let (kind, r) = f.split();
        emit(out, pieces, a, kind, r);
    }
}

/// One direction of a DNS-over-TCP connection: two-byte lengths, then messages (RFC 1035
/// 4.2.2). Without its SYN the framing is unknown and every byte is zeroed.
fn read_stream(dir: &Direction<'_>, out: &mut Reassembled) {
    let Some(start) = dir.start else {
        for (_, p) in &dir.pieces {
            emit_piece_unparsed(out, p);
        }
        return;
    };
    // Positions relative to the stream's start; a segment before it (a SYN retransmitted
    // with data, nonsense) is zeroed.
    let mut pieces: Vec<(usize, Piece<'_>)> = Vec::with_capacity(dir.pieces.len());
    for &(seq, p) in &dir.pieces {
        match usize::try_from(seq.wrapping_sub(start) as i32) {
            Ok(pos) => pieces.push((pos, p)),
            Err(_) => emit_piece_unparsed(out, &p),
        }
    }
    let Some(a) = Assembled::of(&pieces) else {
        for (_, p) in &pieces {
            emit_piece_unparsed(out, p);
        }
        return;
    };
    let end = a.bytes.len();
    let mut pos = 0;
    while pos < end {
        if !a.has(pos..pos + 2) {
            // The framing is lost from here on.
            emit(out, &pieces, &a, Kind::Unparsed, pos..end);
            return;
        }
        let len = usize::from(u16::from_be_bytes([a.bytes[pos], a.bytes[pos + 1]]));
        let msg = pos + 2..pos + 2 + len;
        if a.has(msg.clone()) {
            let fields = dns(&a.bytes[msg.clone()], msg.start);
            emit_fields(out, &pieces, &a, fields);
        } else {
            emit(
                out,
                &pieces,
                &a,
                Kind::Unparsed,
                msg.start..msg.end.min(end),
            );
        }
        pos = msg.end;
    }
}

/// A fragmented datagram: a UDP DNS message is read whole when every fragment is there, as far
/// as its bytes run without a gap otherwise (the rest zeroed). A datagram whose first fragment
/// is missing cannot be told to be DNS or not: its bytes are zeroed. Other datagrams stay.
fn read_datagram(d: &Datagram<'_>, out: &mut Reassembled) {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    if d.protocol != UDP && d.protocol != TCP {
        return;
    }
    let dns_ports = d.ports.map(|(s, t)| is_dns_port(s) || is_dns_port(t));
    match dns_ports {
        Some(false) => return,
        // UDP DNS is read below. Unknown ports (the first fragment missing), or DNS in a
        // fragmented TCP segment (which would need the stream too): zeroed.
        Some(true) if d.protocol == UDP => {}
        _ => {
            for (_, p) in &d.pieces {
                emit_piece_unparsed(out, p);
            }
            return;
        }
    }
    let Some(a) = Assembled::of(&d.pieces) else {
        for (_, p) in &d.pieces {
            emit_piece_unparsed(out, p);
        }
        return;
    };
    // The message runs from after the UDP header to the end of the datagram (as far as the
    // bytes run without a gap).
    let whole = d.len.unwrap_or(usize::MAX).min(a.bytes.len());
    let run = a.present.iter().take(whole).take_while(|&&p| p).count();
    if run < 8 {
        emit(
            out,
            &d.pieces,
            &a,
            Kind::Unparsed,
            8.min(run)..a.bytes.len(),
        );
        return;
    }
    let fields = dns(&a.bytes[8..run], 8);
    emit_fields(out, &d.pieces, &a, fields);
    emit(out, &d.pieces, &a, Kind::Unparsed, run..a.bytes.len());
}

/// Zeroes (and counts) all of one piece.
fn emit_piece_unparsed(out: &mut Reassembled, p: &Piece<'_>) {
    emit(
        out,
        &[(0, *p)],
        &Assembled {
            bytes: Vec::new(),
            present: Vec::new(),
        },
        Kind::Unparsed,
        0..p.bytes.len(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETHERNET: u16 = 1;

    /// An Ethernet/IPv4 packet from 192.0.2.1 to 192.0.2.53 carrying `l4` (protocol `proto`),
    /// with fragment fields `frag` (offset in bytes, more fragments).
    fn ipv4(proto: u8, ident: u16, frag: (u16, bool), l4: &[u8]) -> Vec<u8> {
        let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        let total = (20 + l4.len()) as u16;
        let ff = (frag.0 / 8) | if frag.1 { 0x2000 } else { 0 };
        p.extend([0x45, 0]);
        p.extend(total.to_be_bytes());
        p.extend(ident.to_be_bytes());
        p.extend(ff.to_be_bytes());
        p.extend([64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 53]);
        p.extend(l4);
        p
    }

    fn tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = vec![0xc0, 0x00, 0, 53];
        t.extend(seq.to_be_bytes());
        t.extend([0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend(payload);
        ipv4(6, 1, (0, false), &t)
    }

    /// A DNS response for a.example with one A record, 198.51.100.7.
    fn response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend(b"\x01a\x07example\x00\x00\x01\x00\x01");
        m.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 7]);
        m
    }

    const TCP_PAYLOAD_AT: usize = 14 + 20 + 20;

    /// (kind, original, the packets and places its patches cover) of one whole field.
    type Found = (Kind, Vec<u8>, Vec<(u64, Range<usize>)>);

    fn fields(r: &Reassembled, packets: u64) -> Vec<Found> {
        r.wholes()
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let at = (0..packets)
                    .flat_map(|p| r.patches(p).iter())
                    .filter(|p| p.whole as usize == i)
                    .map(|p| (p.packet, p.at.clone()))
                    .collect();
                (w.kind, w.original.clone(), at)
            })
            .collect()
    }

    #[test]
    fn a_message_cut_across_segments_out_of_order_and_retransmitted_is_read_whole() {
        let mut stream = (response().len() as u16).to_be_bytes().to_vec();
        stream.extend(response());
        // The address's 4 bytes are the stream's last: cut 2 into the last segment.
        let cut = stream.len() - 2;
        let isn = 1000u32;
        let packets = [
            tcp(isn, 0x02, &[]),
            tcp(isn + 1 + 10, 0x18, &stream[10..cut]),
            tcp(isn + 1 + cut as u32, 0x18, &stream[cut..]),
            tcp(isn + 1, 0x18, &stream[..10]),
            tcp(isn + 1 + cut as u32, 0x18, &stream[cut..]),
        ];
        let mut r = Reassembler::new();
        for (i, p) in packets.iter().enumerate() {
            r.add(i as u64, ETHERNET, p);
        }
        let out = r.finish();
        assert_eq!(out.unparsed_bytes, 0);
        let address = fields(&out, 5)
            .into_iter()
            .find(|f| f.0 == Kind::V4)
            .expect("the A record");
        assert_eq!(address.1, [198, 51, 100, 7]);
        let end1 = TCP_PAYLOAD_AT + cut - 10;
        assert_eq!(
            address.2,
            [
                (1, end1 - 2..end1),
                (2, TCP_PAYLOAD_AT..TCP_PAYLOAD_AT + 2),
                (4, TCP_PAYLOAD_AT..TCP_PAYLOAD_AT + 2)
            ]
        );
        let p2 = &out.patches(2)[0];
        assert_eq!(p2.from, 2, "the second half of the address");
    }

    #[test]
    fn a_gap_zeroes_its_message_and_the_next_message_is_still_read() {
        let mut stream = Vec::new();
        for _ in 0..2 {
            stream.extend((response().len() as u16).to_be_bytes());
            stream.extend(response());
        }
        let isn = 7u32;
        let one = response().len() + 2;
        // The first message's bytes 20..30 were never captured.
        let packets = [
            tcp(isn, 0x02, &[]),
            tcp(isn + 1, 0x18, &stream[..20]),
            tcp(isn + 1 + 30, 0x18, &stream[30..one + 5]),
            tcp(isn + 1 + one as u32 + 5, 0x18, &stream[one + 5..]),
        ];
        let mut r = Reassembler::new();
        for (i, p) in packets.iter().enumerate() {
            r.add(i as u64, ETHERNET, p);
        }
        let out = r.finish();
        let f = fields(&out, 4);
        // The first message, but for its length, is zeroed where it was captured.
        assert_eq!(out.unparsed_bytes as usize, one - 2 - 10);
        assert!(
            f.iter()
                .any(|(k, _, at)| *k == Kind::Unparsed && at.len() == 2)
        );
        // The second one's address is found.
        assert_eq!(
            f.iter()
                .filter(|(k, o, _)| *k == Kind::V4 && o == &[198, 51, 100, 7])
                .count(),
            1
        );
    }

    #[test]
    fn a_stream_whose_start_was_not_captured_is_zeroed_whole() {
        let mut stream = (response().len() as u16).to_be_bytes().to_vec();
        stream.extend(response());
        let packet = tcp(5000, 0x18, &stream);
        let mut r = Reassembler::new();
        r.add(0, ETHERNET, &packet);
        let out = r.finish();
        assert_eq!(out.unparsed_bytes as usize, stream.len());
        assert!(out.wholes().iter().all(|w| w.original.is_empty()));
    }

    #[test]
    fn dns_in_fragments_is_read_when_whole_and_zeroed_when_not() {
        let mut udp = vec![0, 53, 0xc0, 0, 0, 0, 0, 0];
        udp.extend(response());
        let len = udp.len() as u16;
        udp[4..6].copy_from_slice(&len.to_be_bytes());
        // Fragments of 24 bytes (a multiple of 8): the address lies in the last one.
        let frags: Vec<Vec<u8>> = udp
            .chunks(24)
            .enumerate()
            .map(|(i, c)| ipv4(17, 9, ((i * 24) as u16, (i + 1) * 24 < udp.len()), c))
            .collect();
        let mut r = Reassembler::new();
        for (i, p) in frags.iter().enumerate().rev() {
            r.add(i as u64, ETHERNET, p);
        }
        let out = r.finish();
        assert_eq!(out.unparsed_bytes, 0);
        assert!(
            out.wholes()
                .iter()
                .any(|w| w.kind == Kind::V4 && w.original == [198, 51, 100, 7])
        );
        // Without its first fragment, the datagram cannot be told to be DNS: zeroed.
        let mut r = Reassembler::new();
        for (i, p) in frags.iter().enumerate().skip(1) {
            r.add(i as u64, ETHERNET, p);
        }
        let out = r.finish();
        assert_eq!(out.unparsed_bytes as usize, udp.len() - 24);
        // Without a middle one: read as far as the bytes run, the rest zeroed.
        let mut r = Reassembler::new();
        for (i, p) in frags.iter().enumerate().filter(|(i, _)| *i != 1) {
            r.add(i as u64, ETHERNET, p);
        }
        let out = r.finish();
        assert!(out.unparsed_bytes > 0);
        assert!(out.wholes().iter().all(|w| w.kind != Kind::V4));
    }
}
