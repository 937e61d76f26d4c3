//! Rewrites one packet in a scratch buffer: MAC addresses (outer and tunnelled Ethernet), ARP,
//! the addresses of every IP header (tunnels included) and of the packet quoted by an ICMP
//! error, IPv6 neighbour discovery targets and link-layer options, and the payload by policy.
//!
//! Every checksum that covers a changed byte is updated incrementally (RFC 1624), nested ones
//! included (a quoted header's checksum inside an ICMP message; an inner TCP checksum inside a
//! VXLAN UDP datagram), so a correct checksum stays correct and a wrong one stays wrong, also
//! on packets cut by the snap length. Nothing else changes: TTL, IP ID, ports, sequence
//! numbers, flags, window, options, ECN/DSCP and lengths stay as captured, so an analysis of the
//! redacted traces gives the same answers.

use std::ops::Range;

use arrayvec::ArrayVec;

use tracekit_wire::checksum;
use tracekit_wire::icmp::{v4_quotes_packet, v6_quotes_packet};
use tracekit_wire::tls::{self, Records as TlsRecords};
use tracekit_wire::{IpLayer, Layers, Transport, TransportKind, dissect};

use crate::map::Mapper;
use crate::reassembly::{Kind, Reassembled};

/// What happens to transport payloads (and to the bodies of frames that carry no IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// As captured.
    Keep,
    /// Zeroed, lengths kept (the default).
    #[default]
    Zero,
    /// Cut after the transport header; the original length is kept in the record.
    Truncate,
    /// TLS record headers, handshake types and lengths, hello versions and random values,
    /// alert codes kept; the rest (SNI, certificates, data) zeroed.
    TlsHeaders,
}

/// A checksum field and the bytes it covers.
#[derive(Debug, Clone)]
struct Cover {
    field: usize,
    /// Covered ranges, each aligned to 16-bit words from its start (the segment, and the
    /// pseudo-header's addresses).
    ranges: [Range<usize>; 3],
    /// UDP: a computed 0 is sent as 0xffff.
    udp: bool,
}

/// One packet being rewritten.
struct Packet<'b> {
    bytes: &'b mut [u8],
    covers: ArrayVec<Cover, MAX_COVERS>,
}

impl Packet<'_> {
    /// Replaces `range` with `new`, updating every checksum that covers it.
    fn set(&mut self, range: Range<usize>, new: &[u8]) {
        self.set_except(range, new, usize::MAX, true);
    }

    fn set_except(&mut self, range: Range<usize>, new: &[u8], skip_field: usize, compare: bool) {
        /// Byte by byte: these are 2–16-byte fields, and a slice `==` calls libc's memcmp,
        /// which took 6% of anonymize's time (hand-written for that reason).
        #[inline]
        fn same(a: &[u8], b: &[u8]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
        }
        if range.end > self.bytes.len()
            || new.len() != range.len()
            || (compare && same(&self.bytes[range.clone()], new))
        {
            return;
        }
        let updates = self.updates(&range, &self.bytes[range.clone()], Some(new), |f| {
            f == skip_field
        });
        self.bytes[range].copy_from_slice(new);
        self.apply(updates);
    }

    /// `range` is already zero in the output and held `old`: the checksums that cover it
    /// learn the change.
    fn zeroed_from(&mut self, range: Range<usize>, old: &[u8]) {
        let updates = self.updates(&range, old, None, |f| range.contains(&f));
        self.apply(updates);
    }

    /// The new value of every checksum covering `range` when its bytes go from `old` to `new`
    /// (zeros when `None`). At most one update per checksum; no allocation (this runs for every
    /// field of every packet).
    fn updates(
        &self,
        range: &Range<usize>,
        old: &[u8],
        new: Option<&[u8]>,
        skip: impl Fn(usize) -> bool,
    ) -> ArrayVec<(usize, u16), MAX_COVERS> {
        let mut out = ArrayVec::new();
        for cover in &self.covers {
            if skip(cover.field) || cover.field + 2 > self.bytes.len() {
                continue;
            }
            let Some(base) = cover
                .ranges
                .iter()
                .find(|r| r.start <= range.start && range.end <= r.end)
            else {
                continue;
            };
            // Only the changed bytes enter the sums, each in its half of a 16-bit word
            // counted from the covered range's start; the unchanged neighbours cancel out.
            let high_first = (range.start - base.start).is_multiple_of(2);
            let old = word_sum(old, high_first);
            let newer = new.map_or(0, |n| word_sum(n, high_first));
            let current =
                u16::from_be_bytes([self.bytes[cover.field], self.bytes[cover.field + 1]]);
            // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
            let s = u32::from(!current)
                + u32::from(!checksum::fold(old))
                + u32::from(checksum::fold(newer));
            let mut updated = !checksum::fold(s);
            if cover.udp && updated == 0 {
                updated = 0xffff;
            }
            out.push((cover.field, updated));
        }
        out
    }

    /// Writes updated checksums (each a change the other checksums may cover).
    fn apply(&mut self, updates: ArrayVec<(usize, u16), MAX_COVERS>) {
        for (field, value) in updates {
            self.set_except(field..field + 2, &value.to_be_bytes(), field, true);
        }
    }

    /// Zeroes a range (any length), like [`Packet::set`]. No comparison first: zeroing bytes
    /// that are zero already changes no checksum (RFC 1624 adds a negative zero).
    fn zero(&mut self, range: Range<usize>) {
        let mut at = range.start;
        while at < range.end {
            let n = (range.end - at).min(ZEROS.len());
            self.set_except(at..at + n, &ZEROS[..n], usize::MAX, false);
            at += n;
        }
    }
}

/// Zero bytes to copy from.
static ZEROS: [u8; 4096] = [0; 4096];
/// Checksums one packet can have (IP headers, transports, a quoted packet).
const MAX_COVERS: usize = 12;

/// The one's-complement sum of `b` as 16-bit big-endian words, its first byte being the high
/// half of a word when `high_first`. Hand-written for speed (it runs over every zeroed
/// payload): eight bytes at a time as two 32-bit words, which folds to the same 16-bit sum.
fn word_sum(b: &[u8], high_first: bool) -> u32 {
    let mut s: u64 = 0;
    let rest = if high_first || b.is_empty() {
        b
    } else {
        s += u64::from(b[0]);
        &b[1..]
    };
    let mut chunks = rest.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes(c.try_into().expect("eight bytes"));
        s += (v >> 32) + (v & 0xffff_ffff);
    }
    let mut pairs = chunks.remainder().chunks_exact(2);
    for w in &mut pairs {
        s += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [x] = pairs.remainder() {
        s += u64::from(*x) << 8;
    }
    // Fold 64 → 32 bits (end-around carry), keeping the one's-complement value.
    while s > 0xffff_ffff {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s as u32
}

/// Rewrites packets with one mapping and one payload policy.
#[derive(Debug, Clone)]
pub struct Rewriter {
    pub mapper: Mapper,
    pub payload: Payload,
    /// Bytes of kept application messages zeroed because they could not be read through
    /// (cut by the snap length or an ICMP quote, malformed), over the packets rewritten.
    pub unparsed_bytes: u64,
    /// Frames whose link layer tracekit cannot read (no IP, ARP or known body found), zeroed
    /// after their capture header.
    pub opaque_frames: u64,
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Where an IP packet ends by its length field.
fn ip_end(ip: &IpLayer, d: &[u8]) -> Option<usize> {
    let h = ip.header.start as usize;
    let n = if ip.version == 4 {
        usize::from(be16(d.get(h..h + 4)?, 2))
    } else {
        let plen = usize::from(be16(d.get(h..h + 6)?, 4));
        if plen == 0 {
            return None; // jumbogram
        }
        40 + plen
    };
    (n > 0).then_some(h + n)
}

/// The address ranges of an IP header, when present in full.
fn address_ranges(ip: &IpLayer, len: usize) -> Option<(Range<usize>, Range<usize>)> {
    let h = ip.header.start as usize;
    let (src, dst) = if ip.version == 4 {
        (h + 12..h + 16, h + 16..h + 20)
    } else {
        (h + 8..h + 24, h + 24..h + 40)
    };
    (dst.end <= len).then_some((src, dst))
}

/// The checksum of a transport header, and whether addresses enter it (pseudo-header).
fn transport_checksum(t: &Transport, d: &[u8]) -> Option<(usize, bool, bool)> {
    let h = t.header.start as usize;
    let (at, pseudo, udp) = match t.kind {
        TransportKind::Tcp => (h + 16, true, false),
        TransportKind::Udp => (h + 6, true, true),
        TransportKind::Icmpv6 => (h + 2, true, false),
        TransportKind::Icmp => (h + 2, false, false),
        _ => return None,
    };
    if at + 2 > d.len() || (udp && be16(d, at) == 0) {
        return None;
    }
    Some((at, pseudo, udp))
}

impl Rewriter {
    #[must_use]
    pub fn new(mapper: Mapper, payload: Payload) -> Self {
        Rewriter {
            mapper,
            payload,
            unparsed_bytes: 0,
            opaque_frames: 0,
        }
    }

    /// Rewrites `data` (of link type `link`) into `out`; returns how many bytes to keep (less
    /// than `out.len()` when the payload policy truncates).
    pub fn rewrite(&mut self, link: u16, data: &[u8], out: &mut Vec<u8>) -> usize {
        out.clear();
        self.rewrite_append(link, data, out)
    }

    /// [`Rewriter::rewrite`] appending to `out` (many packets into one buffer, no copy in
    /// between); returns how many of the appended bytes to keep.
    pub fn rewrite_append(&mut self, link: u16, data: &[u8], out: &mut Vec<u8>) -> usize {
        self.rewrite_carried(link, data, None, out)
    }

    /// [`Rewriter::rewrite_append`] for packet `packet` of a file whose messages across
    /// packets were reassembled into `carried` (with `--payload keep`: DNS over TCP, DNS in
    /// fragments), whose parts in this packet are mapped too.
    pub fn rewrite_carried(
        &mut self,
        link: u16,
        data: &[u8],
        carried: Option<(&Reassembled, u64)>,
        out: &mut Vec<u8>,
    ) -> usize {
        let start = out.len();
        let layers = dissect(link, data);
        // The payload to zero, when it is known at once: it is not copied, only summed for the
        // checksums (the hot path of the default policy).
        let zeroed = (self.payload == Payload::Zero)
            .then(|| plain_payload(&layers, data))
            .flatten();
        match &zeroed {
            Some(r) => {
                out.extend_from_slice(&data[..r.start]);
                out.resize(start + r.end, 0);
                out.extend_from_slice(&data[r.end..]);
            }
            None => out.extend_from_slice(data),
        }
        let mut p = Packet {
            bytes: &mut out[start..],
            covers: covers(&layers, data),
        };
        if let Some(r) = &zeroed {
            p.zeroed_from(r.clone(), &data[r.clone()]);
        }
        for at in crate::app::link_macs(link, &layers, data) {
            let m: [u8; 6] = data[at..at + 6].try_into().expect("six bytes");
            let x = self.mapper.mac(m);
            p.set(at..at + 6, &x);
        }
        if let Some(arp) = arp_at(link, &layers) {
            self.arp(&mut p, data, arp);
        }
        for ip in layers.ips().iter().chain(layers.quoted.iter()) {
            self.addresses(&mut p, data, ip);
        }
        if let Some(header) = opaque_frame(link, &layers, data) {
            // Nothing in it can be found to be mapped (802.11 behind radiotap, a link type
            // tracekit does not read): zeroed after the capture header, whatever the policy.
            self.opaque_frames += 1;
            p.zero(header.min(data.len())..data.len());
            return data.len();
        }
        let keep = self.payload_policy(&mut p, data, &layers);
        if self.payload == Payload::Keep
            && let Some((plan, packet)) = carried
        {
            self.carried(&mut p, data, plan, packet);
        }
        // Bytes after the outer IP packet (Ethernet padding, trailers) may hold old buffer
        // contents; they go like payload.
        if self.payload != Payload::Keep
            && let Some(end) = layers.outer_ip().and_then(|ip| ip_end(ip, data))
            && end < keep.min(data.len())
        {
            p.zero(end..keep.min(data.len()));
        }
        if let Some(ip) = layers.inner_ip()
            && let Some(t) = ip.transport
            && t.kind == TransportKind::Icmpv6
            && t.complete
        {
            self.neighbour_discovery(&mut p, data, t);
        }
        keep.min(data.len())
    }

    fn arp(&mut self, p: &mut Packet<'_>, data: &[u8], at: usize) {
        // 6-byte hardware and 4-byte protocol addresses, whatever the type fields say (a
        // fuzzed or odd hardware type still carries the same addresses).
        if data.len() < at + 28 || data[at + 4] != 6 || data[at + 5] != 4 {
            return;
        }
        for (mac_at, ip_at) in [(at + 8, at + 14), (at + 18, at + 24)] {
            let mac: [u8; 6] = data[mac_at..mac_at + 6].try_into().expect("six bytes");
            let mapped = self.mapper.mac(mac);
            p.set(mac_at..mac_at + 6, &mapped);
            let v4 = u32::from_be_bytes(data[ip_at..ip_at + 4].try_into().expect("four bytes"));
            p.set(ip_at..ip_at + 4, &self.mapper.v4(v4).to_be_bytes());
        }
    }

    fn address(&mut self, p: &mut Packet<'_>, data: &[u8], r: Range<usize>) {
        if r.len() == 4 {
            let v = u32::from_be_bytes(data[r.clone()].try_into().expect("four bytes"));
            p.set(r, &self.mapper.v4(v).to_be_bytes());
        } else {
            let v = u128::from_be_bytes(data[r.clone()].try_into().expect("sixteen bytes"));
            p.set(r, &self.mapper.v6(v).to_be_bytes());
        }
    }

    fn addresses(&mut self, p: &mut Packet<'_>, data: &[u8], ip: &IpLayer) {
        if let Some((src, dst)) = address_ranges(ip, data.len()) {
            self.address(p, data, src);
            self.address(p, data, dst);
        }
        if ip.version == 4 {
            for r in ipv4_option_addresses(data, ip) {
                self.address(p, data, r);
            }
        }
        if ip.version == 6 {
            let ext = ipv6_extension_addresses(data, ip);
            for r in ext.addresses {
                self.address(p, data, r);
            }
            // Options nobody here knows may carry anything (addresses included).
            if self.payload != Payload::Keep {
                for r in ext.opaque {
                    p.zero(r);
                }
            }
        }
    }

    /// IPv6 neighbour discovery: target (and redirect destination) addresses, link-layer
    /// address options, prefix options.
    fn neighbour_discovery(&mut self, p: &mut Packet<'_>, data: &[u8], icmp: Transport) {
        for f in neighbour_discovery_fields(data, icmp) {
            let (kind, r) = f.split();
            self.map_field(p, kind, &data[r.clone()], r, 0);
        }
    }

    /// Applies the payload policy; returns the number of bytes to keep.
    fn payload_policy(&mut self, p: &mut Packet<'_>, data: &[u8], layers: &Layers) -> usize {
        if self.payload == Payload::Keep {
            self.application(p, data, layers);
            return data.len();
        }
        let Some(ip) = layers.inner_ip() else {
            // No IP: ARP is rewritten field by field; any other frame's body (LLDP, CDP,
            // NetBIOS…) names hosts, so it goes like a payload.
            if arp_at(layers.link, layers).is_some() {
                return data.len();
            }
            let Some(body) = link_body(layers.link, layers) else {
                return data.len();
            };
            return self.clear(p, body.min(data.len())..data.len());
        };
        let Some(t) = ip.transport.filter(|t| t.complete) else {
            // Non-first fragments and unknown protocols: the bytes after the IP header.
            let body = ip.header.end as usize;
            return self.clear(p, body.min(data.len())..data.len());
        };
        let payload = t.payload.start as usize..(t.payload.end as usize).min(data.len());
        match t.kind {
            TransportKind::Icmp | TransportKind::Icmpv6 => {
                let kind = data[t.header.start as usize];
                let error = if t.kind == TransportKind::Icmp {
                    v4_quotes_packet(kind)
                } else {
                    v6_quotes_packet(kind)
                };
                let nd = t.kind == TransportKind::Icmpv6 && (133..=137).contains(&kind);
                if nd {
                    return data.len();
                }
                if error {
                    // The quoted headers were anonymized; what follows them is payload.
                    let keep_to = layers
                        .quoted
                        .and_then(|q| q.transport)
                        .map_or(payload.start, |qt| {
                            (qt.header.start as usize + 8).min(data.len())
                        });
                    return self.clear(p, keep_to.max(payload.start)..payload.end);
                }
                self.clear(p, payload)
            }
            TransportKind::Tcp if self.payload == Payload::TlsHeaders => {
                let keep = tls_kept(&data[payload.clone()]);
                let mut from = payload.start;
                for r in keep {
                    let r = r.start + payload.start..r.end + payload.start;
                    p.zero(from..r.start);
                    from = r.end;
                }
                p.zero(from..payload.end);
                data.len()
            }
            // Zeroed already, before the copy (see `plain_payload`).
            _ if self.payload == Payload::Zero => data.len(),
            _ => self.clear(p, payload),
        }
    }

    /// Kept payloads: the addresses and names DNS and DHCP carry.
    fn application(&mut self, p: &mut Packet<'_>, data: &[u8], layers: &Layers) {
        for f in crate::app::udp_fields(layers, data) {
            let (kind, r) = f.split();
            if kind == Kind::Unparsed {
                self.unparsed_bytes += r.len() as u64;
            }
            self.map_field(p, kind, &data[r.clone()], r, 0);
        }
    }

    /// The parts of reassembled fields that lie in packet `packet`: each whole field is mapped
    /// as one value, and this packet gets its part of the result.
    fn carried(&mut self, p: &mut Packet<'_>, data: &[u8], plan: &Reassembled, packet: u64) {
        for patch in plan.patches(packet) {
            if patch.at.end <= data.len() {
                let whole = plan.whole(patch.whole);
                self.map_field(p, whole.kind, &whole.original, patch.at.clone(), patch.from);
            }
        }
    }

    /// Writes field `kind`, whose whole original value is `original`, at `at`: the bytes
    /// `from..from + at.len()` of its mapped value (all of it unless the field crosses packets).
    /// The one place a field's kind decides what it becomes.
    fn map_field(
        &mut self,
        p: &mut Packet<'_>,
        kind: Kind,
        original: &[u8],
        at: Range<usize>,
        from: usize,
    ) {
        let mut fixed = [0u8; 16];
        let name;
        let mapped: &[u8] = match kind {
            Kind::V4 => {
                let v = u32::from_be_bytes(original.try_into().expect("four bytes"));
                fixed[..4].copy_from_slice(&self.mapper.v4(v).to_be_bytes());
                &fixed[..4]
            }
            Kind::V6 => {
                let v = u128::from_be_bytes(original.try_into().expect("sixteen bytes"));
                fixed = self.mapper.v6(v).to_be_bytes();
                &fixed
            }
            Kind::Mac => {
                fixed[..6]
                    .copy_from_slice(&self.mapper.mac(original.try_into().expect("six bytes")));
                &fixed[..6]
            }
            Kind::Name if self.mapper.policy().keep_names => return,
            Kind::Name => {
                name = self.mapper.name(original);
                &name
            }
            Kind::Zero | Kind::Unparsed => {
                p.zero(at);
                return;
            }
        };
        if let Some(part) = mapped.get(from..from + at.len()) {
            p.set(at, part);
        }
    }

    /// Zeroes (or, truncating, cuts) `range` through the end of the packet's payload.
    fn clear(&self, p: &mut Packet<'_>, range: Range<usize>) -> usize {
        if range.start >= range.end {
            return p.bytes.len();
        }
        if self.payload == Payload::Truncate {
            return range.start;
        }
        p.zero(range);
        p.bytes.len()
    }
}

/// The transport payload the default policy zeroes whole (TCP, UDP and other non-ICMP
/// transports of the innermost IP layer), as far as it was captured.
fn plain_payload(layers: &Layers, data: &[u8]) -> Option<Range<usize>> {
    let t = layers.inner_ip()?.transport.filter(|t| t.complete)?;
    if matches!(t.kind, TransportKind::Icmp | TransportKind::Icmpv6) {
        return None;
    }
    let r = t.payload.start as usize..(t.payload.end as usize).min(data.len());
    (r.start < r.end).then_some(r)
}

/// Addresses in IPv4 options: record route (7), loose and strict source routes (131, 137),
/// and timestamps with addresses (68, flags 1 and 3).
pub(crate) fn ipv4_option_addresses(d: &[u8], ip: &IpLayer) -> Vec<Range<usize>> {
    let (start, end) = (
        ip.header.start as usize + 20,
        (ip.header.end as usize).min(d.len()),
    );
    let mut out = Vec::new();
    let mut o = start;
    while o < end {
        let kind = d[o];
        if kind == 0 {
            break;
        }
        if kind == 1 {
            o += 1;
            continue;
        }
        let Some(&len) = d.get(o + 1) else { break };
        let len = usize::from(len);
        if len < 2 || o + len > end {
            break;
        }
        let (first, step) = match kind {
            7 | 131 | 137 => (o + 3, 4),
            68 if len >= 4 && matches!(d[o + 3] & 0x0f, 1 | 3) => (o + 4, 8),
            _ => (o + len, 4),
        };
        let mut a = first;
        while a + 4 <= o + len {
            out.push(a..a + 4);
            a += step;
        }
        o += len;
    }
    out
}

/// What IPv6 extension headers carry.
#[derive(Debug, Default)]
pub(crate) struct Ipv6Extensions {
    /// Addresses: routing headers types 0, 2 and 4 (SRH), the home-address option.
    pub addresses: Vec<Range<usize>>,
    /// The destination the upper-layer checksum uses when a routing header still has segments
    /// left (RFC 8200 8.1).
    pub final_dst: Option<Range<usize>>,
    /// The data of hop-by-hop and destination options of unknown types.
    pub opaque: Vec<Range<usize>>,
}

#[allow(clippy::many_single_char_names)] // header walking: d(ata), h(eader), o(ption), t, l
pub(crate) fn ipv6_extension_addresses(d: &[u8], ip: &IpLayer) -> Ipv6Extensions {
    let h = ip.header.start as usize;
    let mut x = Ipv6Extensions::default();
    let (Some(&first), mut at) = (d.get(h + 6), h + 40) else {
        return x;
    };
    let mut next = first;
    for _ in 0..8 {
        let Some(&[nh, len]) = d
            .get(at..at + 2)
            .map(|b| <&[u8; 2]>::try_from(b).expect("two"))
        else {
            break;
        };
        let size = if next == 44 {
            8
        } else {
            (usize::from(len) + 1) * 8
        };
        let end = (at + size).min(d.len());
        match next {
            43 if end >= at + 8 => {
                let (kind, left) = (d[at + 2], d[at + 3]);
                let addrs: Vec<Range<usize>> = match kind {
                    0 | 2 => (0..usize::from(len) / 2)
                        .map(|i| at + 8 + 16 * i..at + 24 + 16 * i)
                        .collect(),
                    // SRH: last entry at +4; the segment list at +8, final destination first.
                    4 => (0..=usize::from(d[at + 4]))
                        .map(|i| at + 8 + 16 * i..at + 24 + 16 * i)
                        .collect(),
                    _ => Vec::new(),
                };
                let addrs: Vec<_> = addrs.into_iter().filter(|r| r.end <= end).collect();
                if left > 0 {
                    x.final_dst = if kind == 4 {
                        addrs.first().cloned()
                    } else {
                        addrs.last().cloned()
                    };
                }
                x.addresses.extend(addrs);
            }
            0 | 60 => {
                // Options: the home address option (201, 16 bytes) is an address; padding,
                // router alert (5), jumbo payload (0xc2) and tunnel limit (4) are harmless.
                let mut o = at + 2;
                while o + 2 <= end {
                    let (t, l) = (d[o], usize::from(d[o + 1]));
                    if t == 0 {
                        o += 1;
                        continue;
                    }
                    let data = o + 2..(o + 2 + l).min(end);
                    match t {
                        201 if l == 16 && data.end == o + 18 => x.addresses.push(data),
                        1 | 4 | 5 | 0xc2 => {}
                        _ => x.opaque.push(data),
                    }
                    o += 2 + l;
                }
            }
            44 | 51 => {}
            _ => break,
        }
        next = nh;
        at += size;
    }
    x
}

/// Where the frame's body starts after the link header (Ethernet with its VLAN tags, Linux
/// cooked captures), for frames that carry no IP.
#[must_use]
pub fn link_body(link: u16, layers: &Layers) -> Option<usize> {
    match (layers.ethernet, link) {
        (Some(eth), _) => Some(eth.end as usize + 4 * usize::from(layers.vlan_count)),
        (None, 113) => Some(16),
        (None, 276) => Some(20),
        _ => None,
    }
}

/// A frame in which tracekit finds no IP layer, no ARP and no link-layer body it knows (so
/// none of its addresses can be mapped): where its capture pseudo-header ends (radiotap, PPI,
/// Prism, AVS: what the capturing host added, no address of the traffic), after which all of
/// it is to be zeroed.
#[must_use]
pub fn opaque_frame(link: u16, layers: &Layers, data: &[u8]) -> Option<usize> {
    if layers.outer_ip().is_some()
        || arp_at(link, layers).is_some()
        || link_body(link, layers).is_some()
    {
        return None;
    }
    let le16 = |at: usize| {
        data.get(at..at + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let header = match link {
        // Radiotap and PPI: a little-endian length at bytes 2..4.
        127 | 192 => le16(2).unwrap_or(0),
        // Prism: a fixed 144-byte header.
        119 => 144,
        // AVS: a big-endian length at bytes 4..8.
        163 => data
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize),
        _ => 0,
    };
    Some(header.min(data.len()))
}

/// Where an ARP or RARP body starts.
#[must_use]
pub fn arp_at(link: u16, layers: &Layers) -> Option<usize> {
    if let Some(arp) = layers.arp {
        return Some(arp.start as usize);
    }
    // RARP (0x8035) has ARP's layout.
    (layers.non_ip == Some(0x8035))
        .then(|| link_body(link, layers))
        .flatten()
}

/// Where a Linux cooked capture header (SLL, SLL2) holds a 6-byte link-layer address.
#[must_use]
pub fn sll_address(link: u16, data: &[u8]) -> Option<usize> {
    let (len_at, at) = match link {
        113 => (5, 6),
        276 => (11, 12),
        _ => return None,
    };
    (data.len() >= at + 6 && data[len_at] == 6 && (link != 113 || data[4] == 0)).then_some(at)
}

/// The checksums of a packet and what each covers.
fn covers(layers: &Layers, d: &[u8]) -> ArrayVec<Cover, MAX_COVERS> {
    let mut out = ArrayVec::new();
    let empty = 0..0;
    for ip in layers.ips().iter().chain(layers.quoted.iter()) {
        let h = ip.header.start as usize;
        if ip.version == 4 && ip.header.end as usize <= d.len() && !out.is_full() {
            out.push(Cover {
                field: h + 10,
                ranges: [h..ip.header.end as usize, empty.clone(), empty.clone()],
                udp: false,
            });
        }
        let Some(t) = ip.transport.filter(|_| ip.is_first_fragment_or_whole()) else {
            continue;
        };
        let Some((field, pseudo, udp)) = transport_checksum(&t, d) else {
            continue;
        };
        // The segment as far as it goes (beyond the capture, bytes count as unchanged).
        let segment = t.header.start as usize..(ip.payload.end as usize).max(t.header.end as usize);
        let (src, mut dst) = match (pseudo, address_ranges(ip, d.len())) {
            (true, Some((s, t))) => (s, t),
            _ => (empty.clone(), empty.clone()),
        };
        if pseudo
            && ip.version == 6
            && let Some(final_dst) = ipv6_extension_addresses(d, ip).final_dst
        {
            dst = final_dst;
        }
        if !out.is_full() {
            out.push(Cover {
                field,
                ranges: [segment, src, dst],
                udp,
            });
        }
    }
    out
}

/// The byte ranges of a TCP payload kept by the `tls-headers` policy.
fn tls_kept(payload: &[u8]) -> Vec<Range<usize>> {
    let mut keep = Vec::new();
    for (at, rec) in TlsRecords::new(payload) {
        keep.push(at..at + 5);
        match (rec.content_type, rec.handshake_type) {
            (tls::content::HANDSHAKE, Some(kind)) => {
                // Handshake type and length; for hellos also the version and the random.
                let end = if matches!(
                    kind,
                    tls::handshake::CLIENT_HELLO | tls::handshake::SERVER_HELLO
                ) {
                    at + 5 + 4 + 2 + 32
                } else {
                    at + 5 + 4
                };
                keep.push(at + 5..end.min(payload.len()));
            }
            (tls::content::ALERT | tls::content::CHANGE_CIPHER_SPEC, _) => {
                keep.push(at + 5..(at + 5 + usize::from(rec.length)).min(payload.len()));
            }
            _ => {}
        }
    }
    keep.retain(|r| r.start < r.end && r.end <= payload.len());
    keep
}

/// The addresses of an IPv6 neighbour discovery message: target (and redirect destination)
/// addresses, link-layer address options, prefix options.
pub(crate) fn neighbour_discovery_fields(data: &[u8], icmp: Transport) -> Vec<crate::app::Field> {
    use crate::app::Field;
    let mut out = Vec::new();
    let at = icmp.header.start as usize;
    let Some(&kind) = data.get(at) else {
        return out;
    };
    let (addresses, options_at): (&[usize], usize) = match kind {
        133 => (&[], at + 8),
        134 => (&[], at + 16),
        135 | 136 => (&[at + 8], at + 24),
        137 => (&[at + 8, at + 24], at + 40),
        _ => return out,
    };
    for &a in addresses {
        if a + 16 <= data.len() {
            out.push(Field::V6(a..a + 16));
        }
    }
    let mut opt = options_at;
    while opt + 2 <= data.len() {
        let (kind, len) = (data[opt], usize::from(data[opt + 1]) * 8);
        if len == 0 || opt + len > data.len() {
            break;
        }
        match (kind, len) {
            (1 | 2, 8) => out.push(Field::Mac(opt + 2..opt + 8)),
            (3, 32) => out.push(Field::V6(opt + 16..opt + 32)),
            _ => {}
        }
        opt += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Key, Policy};
    use tracekit_wire::checksum::{
        checksum as full, combine, fold, pseudo_header_v4, pseudo_header_v6, sum,
    };

    const ETH: u16 = 1;
    const CLIENT: [u8; 4] = [192, 0, 2, 10];
    const SERVER: [u8; 4] = [198, 51, 100, 20];

    fn rewriter(payload: Payload) -> Rewriter {
        Rewriter::new(Mapper::new(&Key([5; 32]), Policy::default()), payload)
    }

    fn ethernet(ethertype: u16) -> Vec<u8> {
        let mut p = vec![
            0x00, 0x1c, 0x7f, 1, 2, 3, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02,
        ];
        p.extend_from_slice(&ethertype.to_be_bytes());
        p
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, protocol, 0, 0];
        h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = full(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn transport_checksum_ok(segment: &[u8], pseudo: u32) -> bool {
        fold(combine(&[pseudo, sum(segment)])) == 0xffff
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut t = vec![
            0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0, 0, 0, 0, 0,
        ];
        t.extend_from_slice(payload);
        let p = pseudo_header_v4(&src, &dst, 6, t.len() as u16);
        let c = !fold(combine(&[p, sum(&t)]));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    fn mapped_v4(a: [u8; 4]) -> [u8; 4] {
        Mapper::new(&Key([5; 32]), Policy::default())
            .v4(u32::from_be_bytes(a))
            .to_be_bytes()
    }

    #[test]
    fn tcp_addresses_mapped_checksums_still_valid_payload_zeroed() {
        let mut pkt = ethernet(0x0800);
        pkt.extend(ipv4(
            CLIENT,
            SERVER,
            6,
            &tcp(
                CLIENT,
                SERVER,
                b"GET / HTTP/1.1\r\nHost: secret.example\r\n\r\n!",
            ),
        ));
        let mut out = Vec::new();
        let keep = rewriter(Payload::Zero).rewrite(ETH, &pkt, &mut out);
        assert_eq!(keep, pkt.len());
        assert_eq!(&out[0..3], &pkt[0..3], "OUI kept");
        assert_ne!(&out[0..6], &pkt[0..6]);
        let ip = &out[14..34];
        assert_eq!(full(ip), 0, "IPv4 header checksum valid");
        let (src, dst): ([u8; 4], [u8; 4]) = (
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
        );
        assert_eq!((src, dst), (mapped_v4(CLIENT), mapped_v4(SERVER)));
        let seg = &out[34..];
        assert!(transport_checksum_ok(
            seg,
            pseudo_header_v4(&src, &dst, 6, seg.len() as u16)
        ));
        assert!(
            seg[20..].iter().all(|&b| b == 0),
            "payload zeroed, odd length included"
        );
        // TTL, IP ID, ports, sequence numbers, flags and window as they were.
        assert_eq!(out[14 + 8], 64);
        assert_eq!(&out[18..20], &pkt[18..20]);
        assert_eq!(&out[34..50], &pkt[34..50]);
        // A wrong checksum stays wrong; truncate keeps the headers only.
        let mut bad = pkt.clone();
        bad[34 + 17] ^= 0xff;
        rewriter(Payload::Keep).rewrite(ETH, &bad, &mut out);
        assert!(!transport_checksum_ok(
            &out[34..],
            pseudo_header_v4(&src, &dst, 6, (out.len() - 34) as u16)
        ));
        assert_eq!(
            rewriter(Payload::Truncate).rewrite(ETH, &pkt, &mut out),
            14 + 20 + 20
        );
    }

    #[test]
    fn an_icmp_error_quotes_the_same_mapped_addresses_with_valid_checksums() {
        // Port unreachable from the server about a UDP datagram from the client.
        let mut udp = vec![0x9c, 0x40, 0x00, 0x35, 0, 20, 0, 0];
        udp.extend_from_slice(b"query-one.example");
        let p = pseudo_header_v4(&CLIENT, &SERVER, 17, udp.len() as u16);
        let c = !fold(combine(&[p, sum(&udp)]));
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let quoted = ipv4(CLIENT, SERVER, 17, &udp);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted[..28]);
        let c = full(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut pkt = ethernet(0x0800);
        pkt.extend(ipv4(SERVER, CLIENT, 1, &icmp));
        let mut out = Vec::new();
        rewriter(Payload::Zero).rewrite(ETH, &pkt, &mut out);
        let icmp_out = &out[34..];
        assert_eq!(full(icmp_out), 0, "ICMP checksum valid");
        let q = &icmp_out[8..];
        assert_eq!(full(&q[..20]), 0, "quoted IPv4 header checksum valid");
        assert_eq!(&q[12..16], &mapped_v4(CLIENT));
        assert_eq!(&q[16..20], &mapped_v4(SERVER));
        assert_eq!(&out[14 + 12..14 + 16], &mapped_v4(SERVER));
    }

    #[test]
    fn arp_and_neighbour_discovery_are_mapped_like_the_rest() {
        let mut arp = ethernet(0x0806);
        arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        arp.extend(CLIENT);
        arp.extend([0; 6]);
        arp.extend(SERVER);
        let mut out = Vec::new();
        rewriter(Payload::Zero).rewrite(ETH, &arp, &mut out);
        assert_eq!(&out[28..32], &mapped_v4(CLIENT));
        assert_eq!(&out[38..42], &mapped_v4(SERVER));
        assert_eq!(
            &out[22..28],
            &out[6..12],
            "sender MAC mapped like the Ethernet source"
        );

        // Neighbour solicitation for 2001:db8::20 with a source link-layer option.
        let (src, dst): ([u8; 16], [u8; 16]) = (
            "2001:db8::10"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            "ff02::1:ff00:20"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let target = "2001:db8::20"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend(target);
        ns.extend([1, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        let c = !fold(combine(&[
            pseudo_header_v6(&src, &dst, 58, ns.len() as u32),
            sum(&ns),
        ]));
        ns[2..4].copy_from_slice(&c.to_be_bytes());
        let mut pkt = ethernet(0x86dd);
        pkt.extend([0x60, 0, 0, 0]);
        pkt.extend((ns.len() as u16).to_be_bytes());
        pkt.extend([58, 255]);
        pkt.extend(src);
        pkt.extend(dst);
        pkt.extend(&ns);
        rewriter(Payload::Zero).rewrite(ETH, &pkt, &mut out);
        let (s2, d2): ([u8; 16], [u8; 16]) = (
            out[22..38].try_into().unwrap(),
            out[38..54].try_into().unwrap(),
        );
        assert_ne!(s2, src);
        assert_eq!(d2, dst, "multicast kept");
        let icmp = &out[54..];
        assert!(transport_checksum_ok(
            icmp,
            pseudo_header_v6(&s2, &d2, 58, icmp.len() as u32)
        ));
        assert_ne!(&icmp[8..24], &target);
        assert_eq!(
            &icmp[26..32],
            &out[6..12],
            "link-layer option mapped like the source MAC"
        );
    }

    #[test]
    fn tls_headers_keeps_the_hello_random_and_zeroes_the_rest() {
        let mut hello = vec![22, 3, 1, 0, 60, 1, 0, 0, 56, 3, 3];
        hello.extend([0xab; 32]);
        hello.extend(b"\x00\x00\x02\x13\x01\x01\x00sni:secret.example");
        let mut pkt = ethernet(0x0800);
        pkt.extend(ipv4(CLIENT, SERVER, 6, &tcp(CLIENT, SERVER, &hello)));
        let mut out = Vec::new();
        rewriter(Payload::TlsHeaders).rewrite(ETH, &pkt, &mut out);
        let payload = &out[54..];
        assert_eq!(
            &payload[..43],
            &hello[..43],
            "record header, handshake header, version, random"
        );
        assert!(payload[43..].iter().all(|&b| b == 0));
        let ip = &out[14..34];
        let seg = &out[34..];
        let (s, d): ([u8; 4], [u8; 4]) = (
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
        );
        assert!(transport_checksum_ok(
            seg,
            pseudo_header_v4(&s, &d, 6, seg.len() as u16)
        ));
    }

    #[test]
    fn a_vxlan_inner_packet_is_mapped_and_every_nested_checksum_stays_valid() {
        // Inner: Ethernet + IPv4/TCP between the lab hosts.
        let mut inner = ethernet(0x0800);
        inner.extend(ipv4(CLIENT, SERVER, 6, &tcp(CLIENT, SERVER, b"inner data")));
        // Outer: Ethernet + IPv4/UDP 4789 with a checksum over the whole datagram.
        let (vtep_a, vtep_b) = ([203, 0, 113, 1], [203, 0, 113, 2]);
        let mut udp = vec![0xc0, 0x00, 0x12, 0xb5, 0, 0, 0, 0];
        udp.extend([0x08, 0, 0, 0, 0, 0, 0x2a, 0]);
        udp.extend(&inner);
        let ulen = udp.len() as u16;
        udp[4..6].copy_from_slice(&ulen.to_be_bytes());
        let c = !fold(combine(&[
            pseudo_header_v4(&vtep_a, &vtep_b, 17, ulen),
            sum(&udp),
        ]));
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let mut pkt = ethernet(0x0800);
        pkt.extend(ipv4(vtep_a, vtep_b, 17, &udp));
        let mut out = Vec::new();
        rewriter(Payload::Zero).rewrite(ETH, &pkt, &mut out);
        let outer_ip = &out[14..34];
        assert_eq!(full(outer_ip), 0);
        let (oa, ob): ([u8; 4], [u8; 4]) = (
            outer_ip[12..16].try_into().unwrap(),
            outer_ip[16..20].try_into().unwrap(),
        );
        assert_eq!((oa, ob), (mapped_v4(vtep_a), mapped_v4(vtep_b)));
        let outer_udp = &out[34..];
        assert!(transport_checksum_ok(
            outer_udp,
            pseudo_header_v4(&oa, &ob, 17, outer_udp.len() as u16)
        ));
        let inner_out = &outer_udp[16..];
        assert_eq!(&inner_out[0..3], &inner[0..3]);
        assert_ne!(&inner_out[0..6], &inner[0..6], "inner MAC mapped");
        let iip = &inner_out[14..34];
        assert_eq!(full(iip), 0);
        let (ia, ib): ([u8; 4], [u8; 4]) = (
            iip[12..16].try_into().unwrap(),
            iip[16..20].try_into().unwrap(),
        );
        assert_eq!((ia, ib), (mapped_v4(CLIENT), mapped_v4(SERVER)));
        let itcp = &inner_out[34..];
        assert!(transport_checksum_ok(
            itcp,
            pseudo_header_v4(&ia, &ib, 6, itcp.len() as u16)
        ));
        assert!(
            itcp[20..].iter().all(|&b| b == 0),
            "the inner payload is the payload"
        );
    }

    #[test]
    fn word_sum_folds_like_the_plain_sum() {
        let data: Vec<u8> = (0..1501u32).map(|i| (i * 37 + 11) as u8).collect();
        for start in 0..9 {
            for high_first in [true, false] {
                let b = &data[start..];
                let mut plain = 0u64;
                for (i, &x) in b.iter().enumerate() {
                    let high = (i % 2 == 0) == high_first;
                    plain += if high {
                        u64::from(x) << 8
                    } else {
                        u64::from(x)
                    };
                }
                assert_eq!(fold(word_sum(b, high_first)), fold(fold64(plain)));
            }
        }
    }

    fn fold64(mut s: u64) -> u32 {
        while s > 0xffff_ffff {
            s = (s & 0xffff_ffff) + (s >> 32);
        }
        s as u32
    }

    #[test]
    fn no_prefix_of_any_packet_panics() {
        let mut pkt = ethernet(0x0800);
        pkt.extend(ipv4(CLIENT, SERVER, 6, &tcp(CLIENT, SERVER, b"hello")));
        let mut out = Vec::new();
        let mut rw = rewriter(Payload::Zero);
        for n in 0..pkt.len() {
            let keep = rw.rewrite(ETH, &pkt[..n], &mut out);
            assert!(keep <= n);
        }
        rw.rewrite(ETH, &[0xff; 80], &mut out);
    }
}
