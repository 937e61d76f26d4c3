//! `dissect(link, bytes) -> Layers`: the byte ranges of every layer, outermost first, with no
//! allocation. Ranges, not borrows, so the caller can reopen a packet mutably to rewrite it.
//! Truncated packets dissect as far as the bytes go; `Layers::stop` says where and why it ended.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::ethernet::{EtherType, Ethernet, VlanTag};
use crate::field::{WireError, be16, be32};
use crate::flow::{Endpoint, FlowKey};
use crate::icmp;
use crate::ipv4::{IpProtocol, Ipv4};
use crate::ipv6::{Ipv6, walk_extensions};
use crate::tcp::Tcp;
use crate::udp::Udp;

/// IP layers followed at most (outer, tunnels, inner).
pub const MAX_IP: usize = 4;

/// A byte range in the packet, compact so `Layers` stays small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end.max(start) as u32,
        }
    }
    #[must_use]
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    #[must_use]
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// How an IP layer was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encap {
    /// Directly from the link layer (possibly after VLAN tags, MPLS, PPPoE).
    #[default]
    Link,
    Gre,
    Vxlan,
    Geneve,
    /// IPv4 or IPv6 inside IP (protocols 4 and 41).
    IpInIp,
    /// IPv6 in UDP port 3544 (RFC 4380).
    Teredo,
    /// GTP-U, UDP port 2152 (mobile core user plane).
    Gtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Sctp,
    Gre,
    #[default]
    Other,
}

/// The layer after an IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transport {
    pub kind: TransportKind,
    /// The header as far as it is present.
    pub header: Span,
    pub payload: Span,
    /// The whole header is present (a cut TCP header may still hold the ports).
    pub complete: bool,
}

impl Transport {
    /// Source and destination ports, when the protocol has them and their 4 bytes are present.
    #[must_use]
    pub fn ports(&self, data: &[u8]) -> Option<(u16, u16)> {
        match self.kind {
            TransportKind::Tcp | TransportKind::Udp | TransportKind::Sctp
                if self.header.len() >= 4 =>
            {
                let at = self.header.start as usize;
                Some((be16(data, at), be16(data, at + 2)))
            }
            _ => None,
        }
    }
}

/// The fragment fields of a fragmented IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    pub offset: u16,
    pub more: bool,
    /// IPv4 identification, or the IPv6 fragment header's identification.
    pub ident: u32,
}

/// The fixed header's fields that analyze reads for every TCP packet, read at once (see
/// [`IpLayer::fields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFields {
    /// TTL or hop limit.
    pub ttl: u8,
    /// The ECN codepoint (0 not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    pub ecn: u8,
    /// The IPv4 identification (IPv6 has none outside a fragment header).
    pub ident: Option<u16>,
    /// IPv4's don't-fragment flag (false for IPv6).
    pub dont_fragment: bool,
    /// As [`IpLayer::announced_payload`].
    pub announced_payload: usize,
}

/// One IP header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpLayer {
    pub version: u8,
    /// Fixed header plus IPv4 options or IPv6 extension headers.
    pub header: Span,
    /// Upper-layer protocol.
    pub protocol: IpProtocol,
    /// Up to the length the header announces, or fewer bytes when cut.
    pub payload: Span,
    pub fragment: Option<FragmentInfo>,
    pub encap: Encap,
    pub transport: Option<Transport>,
}

impl IpLayer {
    #[must_use]
    pub fn src(&self, data: &[u8]) -> IpAddr {
        let at = self.header.start as usize;
        if self.version == 4 {
            IpAddr::V4(Ipv4Addr::from(be32(data, at + 12)))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(&data[at + 8..at + 24]).unwrap(),
            ))
        }
    }
    #[must_use]
    pub fn dst(&self, data: &[u8]) -> IpAddr {
        let at = self.header.start as usize;
        if self.version == 4 {
            IpAddr::V4(Ipv4Addr::from(be32(data, at + 16)))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(&data[at + 24..at + 40]).unwrap(),
            ))
        }
    }
    /// TTL or hop limit.
    #[must_use]
    pub fn ttl(&self, data: &[u8]) -> u8 {
        let at = self.header.start as usize;
        data[at + if self.version == 4 { 8 } else { 7 }]
    }
    /// The ECN codepoint (0 not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    #[must_use]
    #[inline]
    pub fn ecn(&self, data: &[u8]) -> u8 {
        let at = self.header.start as usize;
        if self.version == 4 {
            data[at + 1] & 3
        } else {
            ((data[at] & 0x0f) << 4 | data[at + 1] >> 4) & 3
        }
    }
    /// The IPv4 identification (IPv6 has none outside a fragment header).
    #[must_use]
    #[inline]
    pub fn ident(&self, data: &[u8]) -> Option<u16> {
        let at = self.header.start as usize;
        (self.version == 4).then(|| u16::from_be_bytes([data[at + 4], data[at + 5]]))
    }
    /// IPv4's don't-fragment flag (false for IPv6).
    #[must_use]
    #[inline]
    pub fn dont_fragment(&self, data: &[u8]) -> bool {
        self.version == 4 && data[self.header.start as usize + 6] & 0x40 != 0
    }
    /// The bytes after this layer's headers (extension headers included) that its length
    /// field announces: what was sent, whatever the capture kept.
    #[must_use]
    #[inline]
    pub fn announced_payload(&self, data: &[u8]) -> usize {
        let at = self.header.start as usize;
        let whole = if self.version == 4 {
            usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]))
        } else {
            usize::from(u16::from_be_bytes([data[at + 4], data[at + 5]])) + 40
        };
        whole.saturating_sub(self.header.len())
    }
    /// [`IpLayer::ttl`], [`IpLayer::ecn`], [`IpLayer::ident`], [`IpLayer::dont_fragment`] and
    /// [`IpLayer::announced_payload`] at once, through the header's view: one test of the
    /// version and one bounds check for all, where one by one each tests both (analyze reads
    /// them for every TCP packet; see `TableBuilder::add_batch` there).
    #[must_use]
    #[inline]
    pub fn fields(&self, data: &[u8]) -> IpFields {
        let at = self.header.start as usize;
        let headers = self.header.len();
        if self.version == 4 {
            let h = <&[u8; 20]>::try_from(&data[at..at + 20]).expect("twenty bytes");
            let v = Ipv4::checked_before(h);
            IpFields {
                ttl: v.ttl(),
                ecn: v.ecn(),
                ident: Some(v.ident()),
                dont_fragment: v.dont_frag(),
                announced_payload: usize::from(v.total_len()).saturating_sub(headers),
            }
        } else {
            let h = <&[u8; 40]>::try_from(&data[at..at + 40]).expect("forty bytes");
            let v = Ipv6::checked_before(h);
            IpFields {
                ttl: v.hop_limit(),
                ecn: v.ecn(),
                ident: None,
                dont_fragment: false,
                announced_payload: (usize::from(v.payload_len()) + 40).saturating_sub(headers),
            }
        }
    }
    /// Not a fragment, or the first one (the one that carries the transport header).
    #[must_use]
    pub fn is_first_fragment_or_whole(&self) -> bool {
        self.fragment.is_none_or(|f| f.offset == 0)
    }
    /// The flow key of this layer's packet: addresses, protocol, ports when present.
    #[must_use]
    #[inline]
    pub fn flow(&self, data: &[u8]) -> (FlowKey, bool) {
        let (sport, dport) = self.transport.and_then(|t| t.ports(data)).unwrap_or((0, 0));
        FlowKey::new(
            self.protocol.0,
            Endpoint {
                addr: self.src(data),
                port: sport,
            },
            Endpoint {
                addr: self.dst(data),
                port: dport,
            },
        )
    }
}

/// Where and why dissection ended before the bytes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub at: u32,
    pub layer: &'static str,
    pub error: WireError,
}

/// The layers of one packet, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layers {
    pub link: u16,
    /// The outermost Ethernet header (14 bytes), on Ethernet links.
    pub ethernet: Option<Span>,
    /// The inner Ethernet header of a VXLAN/Geneve/GRE-bridged/ERSPAN/pseudowire packet.
    pub inner_ethernet: Option<Span>,
    /// VLAN IDs of the outermost tags (outer first), and how many tags there were.
    pub vlan_ids: [u16; 2],
    pub vlan_count: u8,
    pub mpls_labels: u8,
    pub pppoe: bool,
    pub arp: Option<Span>,
    ips: [IpLayer; MAX_IP],
    ip_count: u8,
    /// The packet quoted by an ICMP/ICMPv6 error, dissected leniently (it is usually cut).
    pub quoted: Option<IpLayer>,
    pub stop: Option<Stop>,
    /// The EtherType (or PPP/SLL protocol) of a frame that carries no IP, for naming it.
    pub non_ip: Option<u16>,
}

impl Layers {
    /// IP layers, outermost first.
    #[must_use]
    pub fn ips(&self) -> &[IpLayer] {
        &self.ips[..self.ip_count as usize]
    }
    #[must_use]
    pub fn outer_ip(&self) -> Option<&IpLayer> {
        self.ips().first()
    }
    #[must_use]
    pub fn inner_ip(&self) -> Option<&IpLayer> {
        self.ips().last()
    }
    /// The transport of the innermost IP layer.
    #[must_use]
    pub fn transport(&self) -> Option<Transport> {
        self.inner_ip().and_then(|ip| ip.transport)
    }
    /// The innermost TCP segment's range (header and payload present), if any.
    #[must_use]
    pub fn tcp_range(&self) -> Option<Range<usize>> {
        let t = self.transport()?;
        (t.kind == TransportKind::Tcp && t.complete)
            .then_some(t.header.start as usize..t.payload.end as usize)
    }
    /// A TCP view over the innermost segment.
    #[must_use]
    pub fn tcp<'a>(&self, data: &'a [u8]) -> Option<Tcp<&'a [u8]>> {
        Tcp::new_checked(&data[self.tcp_range()?]).ok()
    }

    /// Back to `Layers::default()` with `link`, writing only what a packet can have set (IP
    /// layers past `ip_count` are kept at their default, so they need no writing).
    fn reset(&mut self, link: u16) {
        // Every field by name: a new one fails to compile here until it is reset too.
        let Layers {
            link: l,
            ethernet,
            inner_ethernet,
            vlan_ids,
            vlan_count,
            mpls_labels,
            pppoe,
            arp,
            ips,
            ip_count,
            quoted,
            stop,
            non_ip,
        } = self;
        *l = link;
        *ethernet = None;
        *inner_ethernet = None;
        *vlan_ids = [0; 2];
        *vlan_count = 0;
        *mpls_labels = 0;
        *pppoe = false;
        *arp = None;
        ips[..usize::from(*ip_count)].fill(IpLayer::default());
        *ip_count = 0;
        *quoted = None;
        *stop = None;
        *non_ip = None;
    }

    fn push_ip(&mut self, ip: IpLayer) -> Option<&mut IpLayer> {
        let n = self.ip_count as usize;
        if n == MAX_IP {
            return None;
        }
        self.ips[n] = ip;
        self.ip_count += 1;
        Some(&mut self.ips[n])
    }

    fn stop(&mut self, at: usize, layer: &'static str, error: WireError) {
        self.stop = Some(Stop {
            at: at as u32,
            layer,
            error,
        });
    }
}

enum Next {
    Ethernet(usize),
    EtherType(u16, usize),
    Ppp(u16, usize),
    Mpls(usize),
    Ip(usize, Encap),
    Done,
}

/// Dissects one packet of link type `link`.
#[must_use]
pub fn dissect(link: u16, data: &[u8]) -> Layers {
    let mut l = Layers::default();
    dissect_into(link, data, &mut l);
    l
}

/// [`dissect`] into layers already in place (e.g. a batch's), overwriting them: `Layers` is a
/// few hundred bytes, and returning it and moving it into a batch cost more per packet than
/// finding the layers of a plain TCP packet.
pub fn dissect_into(link: u16, data: &[u8], l: &mut Layers) {
    l.reset(link);
    let mut next = first_layer(link, data, l);
    // Each step moves forward through the packet, and the number of IP layers is bounded,
    // so the walk ends; the step cap guards against a loop of VLAN/MPLS/tunnel headers.
    for _ in 0..64 {
        next = match next {
            Next::Done => break,
            Next::Ethernet(at) => ethernet(data, at, l),
            Next::EtherType(t, at) => ethertype(data, t, at, l),
            Next::Ppp(proto, at) => ppp(proto, at, l),
            Next::Mpls(at) => mpls(data, at, l),
            Next::Ip(at, encap) => ip(data, at, encap, l),
        };
    }
}

fn first_layer(link: u16, data: &[u8], l: &mut Layers) -> Next {
    match link {
        1 => Next::Ethernet(0),
        // Raw IP: DLT_RAW values of several systems, and the explicit IPv4/IPv6 types.
        12 | 14 | 101 | 228 | 229 => Next::Ip(0, Encap::Link),
        // BSD loopback: a 4-byte address family, host byte order (0) or network order (108).
        0 | 108 => {
            if data.len() < 4 {
                l.stop(0, "loopback", WireError::Truncated);
                return Next::Done;
            }
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let family = if link == 108 || le > 0xffff {
                be32(data, 0)
            } else {
                le
            };
            match family {
                2 | 10 | 24 | 28 | 30 => Next::Ip(4, Encap::Link),
                // Some writers put an EtherType in the low half, as Wireshark's heuristic knows.
                _ if matches!(be16(data, 2), 0x0800 | 0x86DD) => Next::Ip(4, Encap::Link),
                _ => {
                    l.non_ip = Some(family as u16);
                    Next::Done
                }
            }
        }
        113 => {
            if data.len() < 16 {
                l.stop(0, "linux-sll", WireError::Truncated);
                return Next::Done;
            }
            Next::EtherType(be16(data, 14), 16)
        }
        276 => {
            if data.len() < 20 {
                l.stop(0, "linux-sll2", WireError::Truncated);
                return Next::Done;
            }
            Next::EtherType(be16(data, 0), 20)
        }
        9 | 50 => {
            // PPP, with or without the HDLC address/control bytes.
            let at = if data.starts_with(&[0xff, 0x03]) {
                2
            } else {
                0
            };
            match data.get(at..at + 2) {
                Some(p) => Next::Ppp(u16::from_be_bytes([p[0], p[1]]), at + 2),
                None => {
                    l.stop(at, "ppp", WireError::Truncated);
                    Next::Done
                }
            }
        }
        51 => pppoe(data, 0, l),
        104 => {
            if data.len() < 4 {
                l.stop(0, "c-hdlc", WireError::Truncated);
                return Next::Done;
            }
            Next::EtherType(be16(data, 2), 4)
        }
        239 => nflog(data, l),
        _ => Next::Done,
    }
}

fn ethernet(data: &[u8], at: usize, l: &mut Layers) -> Next {
    let Some(frame) = data.get(at..) else {
        return Next::Done;
    };
    match Ethernet::new_checked(frame) {
        Ok(e) => {
            let span = Span::new(at, at + crate::ethernet::HEADER_LEN);
            if l.ethernet.is_none() {
                l.ethernet = Some(span);
            } else if l.inner_ethernet.is_none() {
                l.inner_ethernet = Some(span);
            }
            Next::EtherType(e.ethertype().0, at + crate::ethernet::HEADER_LEN)
        }
        Err(e) => {
            l.stop(at, "ethernet", e);
            Next::Done
        }
    }
}

fn ethertype(data: &[u8], t: u16, at: usize, l: &mut Layers) -> Next {
    let t = EtherType(t);
    match t {
        EtherType::IPV4 | EtherType::IPV6 => Next::Ip(at, Encap::Link),
        _ if t.is_vlan() => match VlanTag::parse(data.get(at..).unwrap_or_default()) {
            Ok((tag, inner)) => {
                if l.inner_ethernet.is_none() && (l.vlan_count as usize) < l.vlan_ids.len() {
                    l.vlan_ids[l.vlan_count as usize] = tag.id;
                }
                l.vlan_count = l.vlan_count.saturating_add(1);
                Next::EtherType(inner.0, at + 4)
            }
            Err(e) => {
                l.stop(at, "vlan", e);
                Next::Done
            }
        },
        EtherType::ARP => {
            match crate::arp::Arp::new_checked(data.get(at..).unwrap_or_default()) {
                Ok(_) => l.arp = Some(Span::new(at, data.len())),
                Err(e) => l.stop(at, "arp", e),
            }
            l.non_ip = Some(t.0);
            Next::Done
        }
        EtherType::MPLS | EtherType::MPLS_MULTICAST => Next::Mpls(at),
        EtherType::PPPOE_SESSION => pppoe(data, at, l),
        EtherType::TRANSPARENT_ETHERNET => Next::Ethernet(at),
        EtherType::ERSPAN_II => Next::Ethernet(at + 8),
        EtherType::ERSPAN_III => {
            // 12-byte header, plus an 8-byte platform sub-header when the O flag is set.
            let o_flag = data.get(at + 11).is_some_and(|b| b & 0x01 != 0);
            Next::Ethernet(at + if o_flag { 20 } else { 12 })
        }
        _ => {
            l.non_ip = Some(t.0);
            Next::Done
        }
    }
}

fn pppoe(data: &[u8], at: usize, l: &mut Layers) -> Next {
    if data.len() < at + 8 {
        l.stop(at, "pppoe", WireError::Truncated);
        return Next::Done;
    }
    l.pppoe = true;
    Next::Ppp(be16(data, at + 6), at + 8)
}

fn ppp(proto: u16, at: usize, l: &mut Layers) -> Next {
    match proto {
        0x0021 | 0x0057 => Next::Ip(at, Encap::Link),
        0x0281 => Next::Mpls(at),
        _ => {
            l.non_ip = Some(proto);
            Next::Done
        }
    }
}

fn mpls(data: &[u8], mut at: usize, l: &mut Layers) -> Next {
    loop {
        let Some(entry) = data.get(at..at + 4) else {
            l.stop(at, "mpls", WireError::Truncated);
            return Next::Done;
        };
        l.mpls_labels = l.mpls_labels.saturating_add(1);
        at += 4;
        if entry[2] & 0x01 != 0 {
            break;
        }
    }
    // No protocol field after the stack: guess from the first nibble, as Wireshark does.
    match data.get(at).map(|b| b >> 4) {
        Some(4 | 6) => Next::Ip(at, Encap::Link),
        // A zero nibble: the pseudowire control word, then an Ethernet frame.
        Some(0) => Next::Ethernet(at + 4),
        _ => Next::Done,
    }
}

fn nflog(data: &[u8], l: &mut Layers) -> Next {
    // Header: family(1) version(1) resource id(2); then TLVs with little-endian length/type.
    let mut at = 4;
    while data.len() >= at + 4 {
        let len = usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
        let kind = u16::from_le_bytes([data[at + 2], data[at + 3]]);
        if len < 4 {
            break;
        }
        if kind == 9 {
            return Next::Ip(at + 4, Encap::Link);
        }
        at += (len + 3) & !3;
    }
    l.stop(at.min(data.len()), "nflog", WireError::Truncated);
    Next::Done
}

fn ip(data: &[u8], at: usize, encap: Encap, l: &mut Layers) -> Next {
    let Some(bytes) = data.get(at..) else {
        return Next::Done;
    };
    let version = bytes.first().map_or(0, |b| b >> 4);
    let layer = match version {
        4 => ipv4_layer(bytes, at, encap),
        6 => ipv6_layer(bytes, at, encap),
        _ => Err(if bytes.is_empty() {
            WireError::Truncated
        } else {
            WireError::Malformed
        }),
    };
    let mut layer = match layer {
        Ok(layer) => layer,
        Err(e) => {
            l.stop(at, if version == 6 { "ipv6" } else { "ipv4" }, e);
            return Next::Done;
        }
    };
    if !layer.is_first_fragment_or_whole() {
        l.push_ip(layer);
        return Next::Done;
    }
    let payload_at = layer.payload.start as usize;
    let end = layer.payload.end as usize;
    let payload = &data[payload_at..end];
    let mut follow = Next::Done;
    let proto = layer.protocol;
    let transport = match proto {
        IpProtocol::TCP => Some(tcp_transport(payload, payload_at)),
        IpProtocol::UDP => {
            let t = fixed_transport(
                TransportKind::Udp,
                payload,
                payload_at,
                crate::udp::HEADER_LEN,
            );
            if t.complete && layer.fragment.is_none() {
                follow = udp_tunnel(data, payload, payload_at);
            }
            Some(t)
        }
        IpProtocol::SCTP => Some(fixed_transport(
            TransportKind::Sctp,
            payload,
            payload_at,
            12,
        )),
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            let kind = if proto == IpProtocol::ICMP {
                TransportKind::Icmp
            } else {
                TransportKind::Icmpv6
            };
            let t = fixed_transport(kind, payload, payload_at, icmp::HEADER_LEN);
            let quotes = payload.first().is_some_and(|&ty| {
                if kind == TransportKind::Icmp {
                    icmp::v4_quotes_packet(ty)
                } else {
                    icmp::v6_quotes_packet(ty)
                }
            });
            if t.complete && quotes && l.quoted.is_none() {
                l.quoted = quoted_packet(data, payload_at + icmp::HEADER_LEN);
            }
            Some(t)
        }
        IpProtocol::GRE => {
            let (t, f) = gre(data, payload, payload_at);
            follow = f;
            Some(t)
        }
        IpProtocol::IPIP | IpProtocol::IPV6 => {
            follow = Next::Ip(payload_at, Encap::IpInIp);
            None
        }
        _ => Some(Transport {
            kind: TransportKind::Other,
            header: Span::new(payload_at, payload_at),
            payload: Span::new(payload_at, end),
            complete: true,
        }),
    };
    layer.transport = transport;
    if l.push_ip(layer).is_none() {
        l.stop(at, "ip", WireError::Malformed);
        return Next::Done;
    }
    if let Some(t) = transport.filter(|t| !t.complete) {
        l.stop(t.header.start as usize, "transport", WireError::Truncated);
    }
    follow
}

fn ipv4_layer(bytes: &[u8], at: usize, encap: Encap) -> Result<IpLayer, WireError> {
    let v = Ipv4::new_checked(bytes)?;
    let hl = v.header_len();
    // A total length below the header (TSO captures write 0) means "up to the end".
    let total = usize::from(v.total_len());
    let end = if total < hl {
        bytes.len()
    } else {
        total.min(bytes.len())
    };
    Ok(IpLayer {
        version: 4,
        header: Span::new(at, at + hl),
        protocol: v.protocol(),
        payload: Span::new(at + hl, at + end),
        fragment: v.is_fragment().then(|| FragmentInfo {
            offset: v.frag_offset(),
            more: v.more_frags(),
            ident: u32::from(v.ident()),
        }),
        encap,
        transport: None,
    })
}

fn ipv6_layer(bytes: &[u8], at: usize, encap: Encap) -> Result<IpLayer, WireError> {
    let v = Ipv6::new_checked(bytes)?;
    let ext = walk_extensions(bytes);
    let plen = usize::from(v.payload_len());
    // Payload length 0 is a jumbogram or a TSO capture: up to the end.
    let end = if plen == 0 {
        bytes.len()
    } else {
        (crate::ipv6::HEADER_LEN + plen).min(bytes.len())
    };
    let upper = ext.upper_offset.min(end.max(crate::ipv6::HEADER_LEN));
    Ok(IpLayer {
        version: 6,
        header: Span::new(at, at + upper),
        protocol: ext.protocol,
        payload: Span::new(at + upper, at + end.max(upper)),
        fragment: ext.fragment.map(|f| FragmentInfo {
            offset: f.offset,
            more: f.more,
            ident: f.ident,
        }),
        encap,
        transport: None,
    })
}

fn tcp_transport(payload: &[u8], at: usize) -> Transport {
    match Tcp::new_checked(payload) {
        Ok(t) => {
            let hl = t.header_len();
            Transport {
                kind: TransportKind::Tcp,
                header: Span::new(at, at + hl),
                payload: Span::new(at + hl, at + payload.len()),
                complete: true,
            }
        }
        Err(_) => {
            let present = payload.len().min(crate::tcp::MIN_HEADER_LEN);
            Transport {
                kind: TransportKind::Tcp,
                header: Span::new(at, at + present),
                payload: Span::new(at + present, at + present),
                complete: false,
            }
        }
    }
}

fn fixed_transport(kind: TransportKind, payload: &[u8], at: usize, header_len: usize) -> Transport {
    let present = payload.len().min(header_len);
    Transport {
        kind,
        header: Span::new(at, at + present),
        payload: Span::new(at + present, at + payload.len()),
        complete: present == header_len,
    }
}

const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;
const TEREDO_PORT: u16 = 3544;
const GTP_U_PORT: u16 = 2152;

fn udp_tunnel(data: &[u8], payload: &[u8], at: usize) -> Next {
    let Ok(u) = Udp::new_checked(payload) else {
        return Next::Done;
    };
    let inner = at + crate::udp::HEADER_LEN;
    let body = u.payload();
    if u.dst_port() == VXLAN_PORT && body.len() >= 8 && body[0] & 0x08 != 0 {
        return Next::Ethernet(inner + 8);
    }
    if u.dst_port() == GENEVE_PORT && body.len() >= 8 && body[0] >> 6 == 0 {
        let options = usize::from(body[0] & 0x3f) * 4;
        if inner + 8 + options <= data.len() {
            return Next::EtherType(be16(body, 2), inner + 8 + options);
        }
    }
    if u.src_port() == TEREDO_PORT || u.dst_port() == TEREDO_PORT {
        return teredo(data, inner);
    }
    if (u.src_port() == GTP_U_PORT || u.dst_port() == GTP_U_PORT) && body.len() >= 8 {
        return gtp_u(data, body, inner);
    }
    Next::Done
}

/// Teredo: optional authentication and origin-indication headers, then an IPv6 packet.
fn teredo(data: &[u8], mut at: usize) -> Next {
    if data.get(at..at + 2) == Some(&[0, 1]) {
        // Authentication: id length, auth length, then id, auth, nonce (8) and confirmation (1).
        let (Some(&id), Some(&auth)) = (data.get(at + 2), data.get(at + 3)) else {
            return Next::Done;
        };
        at += 4 + usize::from(id) + usize::from(auth) + 9;
    }
    if data.get(at..at + 2) == Some(&[0, 0]) {
        at += 8; // origin indication
    }
    match data.get(at) {
        Some(b) if b >> 4 == 6 && data.len() >= at + crate::ipv6::HEADER_LEN => {
            Next::Ip(at, Encap::Teredo)
        }
        _ => Next::Done,
    }
}

/// GTPv1-U G-PDU (message type 255): an 8-byte header, 4 more when E, S or PN is set, then
/// extension headers when E is set, then the user's IP packet.
fn gtp_u(data: &[u8], body: &[u8], inner: usize) -> Next {
    let flags = body[0];
    if flags >> 5 != 1 || body[1] != 0xff {
        return Next::Done;
    }
    let mut at = inner + 8;
    if flags & 0x07 != 0 {
        at += 4;
        let mut next_ext = data.get(at - 1).copied().unwrap_or(0);
        if flags & 0x04 == 0 {
            next_ext = 0;
        }
        while next_ext != 0 {
            let Some(&units) = data.get(at) else {
                return Next::Done;
            };
            if units == 0 {
                return Next::Done;
            }
            at += usize::from(units) * 4;
            next_ext = data.get(at - 1).copied().unwrap_or(0);
        }
    }
    match data.get(at).map(|b| b >> 4) {
        Some(4 | 6) => Next::Ip(at, Encap::Gtp),
        _ => Next::Done,
    }
}

fn gre(data: &[u8], payload: &[u8], at: usize) -> (Transport, Next) {
    if payload.len() < 4 {
        return (
            fixed_transport(TransportKind::Gre, payload, at, 4),
            Next::Done,
        );
    }
    let flags = be16(payload, 0);
    let proto = be16(payload, 2);
    let version = flags & 0x7;
    let has = |bit: u16| usize::from(flags & bit != 0) * 4;
    let len = if version == 1 {
        // Enhanced GRE (PPTP): the key is always there; sequence and acknowledgment optional.
        8 + has(0x1000) + has(0x0080)
    } else {
        4 + (has(0x8000) | has(0x4000)) + has(0x2000) + has(0x1000)
    };
    let t = fixed_transport(TransportKind::Gre, payload, at, len);
    if !t.complete {
        return (t, Next::Done);
    }
    let inner = at + len;
    let next = match proto {
        0x880B => {
            // PPP inside enhanced GRE, with or without address/control bytes.
            let p = inner
                + if data.get(inner..inner + 2) == Some(&[0xff, 0x03]) {
                    2
                } else {
                    0
                };
            match data.get(p..p + 2) {
                Some(b) if b[0] & 1 == 1 => Next::Ppp(u16::from(b[0]), p + 1),
                Some(b) => Next::Ppp(u16::from_be_bytes([b[0], b[1]]), p + 2),
                None => Next::Done,
            }
        }
        0x0800 | 0x86DD => Next::Ip(inner, Encap::Gre),
        // Cisco keepalives carry an IP packet with protocol type 0.
        0x0000 if data.get(inner).is_some_and(|b| b >> 4 == 4) => Next::Ip(inner, Encap::Gre),
        // Cisco MetaData: the EtherType of what follows, then version, length, type and SGT.
        0x8909 if data.len() >= inner + 8 => Next::EtherType(be16(data, inner), inner + 8),
        _ => Next::EtherType(proto, inner),
    };
    (t, next)
}

/// The IP header (and the first transport bytes) quoted by an ICMP error: often cut, and
/// its length fields describe the original packet, not the quote.
fn quoted_packet(data: &[u8], at: usize) -> Option<IpLayer> {
    let bytes = data.get(at..)?;
    let mut layer = match bytes.first()? >> 4 {
        4 => ipv4_layer(bytes, at, Encap::Link).ok()?,
        6 => ipv6_layer(bytes, at, Encap::Link).ok()?,
        _ => return None,
    };
    // The quote runs to the end of the ICMP message, whatever the quoted length says.
    layer.payload.end = data.len() as u32;
    let payload_at = layer.payload.start as usize;
    let payload = &data[payload_at..];
    if layer.is_first_fragment_or_whole() {
        layer.transport = match layer.protocol {
            IpProtocol::TCP => Some(tcp_transport(payload, payload_at)),
            IpProtocol::UDP => Some(fixed_transport(TransportKind::Udp, payload, payload_at, 8)),
            IpProtocol::SCTP => Some(fixed_transport(
                TransportKind::Sctp,
                payload,
                payload_at,
                12,
            )),
            IpProtocol::ICMP => Some(fixed_transport(TransportKind::Icmp, payload, payload_at, 8)),
            IpProtocol::ICMPV6 => Some(fixed_transport(
                TransportKind::Icmpv6,
                payload,
                payload_at,
                8,
            )),
            _ => None,
        };
    }
    Some(layer)
}
