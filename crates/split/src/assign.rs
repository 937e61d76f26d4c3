//! Which output each packet goes to. Pure bookkeeping over dissected packets: no I/O.
//!
//! Stream numbering follows Wireshark: TCP and UDP conversations are numbered separately, in
//! order of first appearance; a TCP SYN (without ACK) whose sequence number differs from the
//! first one seen in that direction starts a new stream on the same 5-tuple, as
//! `packet-tcp.c` does, so stream N here is `tcp.stream == N` in Wireshark.

use std::net::IpAddr;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracekit_wire::tcp::flags;
use tracekit_wire::{FlowKey, IpLayer, Layers, TransportKind, dissect};

use crate::mode::Mode;

/// What an output holds; the index of an output is its position in [`Assigner::outputs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputKey {
    Tcp {
        stream: u32,
        flow: FlowKey,
    },
    Udp {
        stream: u32,
        flow: FlowKey,
    },
    /// Other IP protocols (ICMP, GRE, ESP, …), per address pair (lower address first).
    IpPair {
        id: u32,
        lo: IpAddr,
        hi: IpAddr,
    },
    /// Frames without IP (ARP, STP, LLDP, …).
    NonIp,
    Host(IpAddr),
    HostPair {
        lo: IpAddr,
        hi: IpAddr,
    },
    Port {
        protocol: u8,
        port: u16,
    },
    /// IP packets without ports, in `--by port`.
    Protocol(u8),
    Chunk {
        index: u64,
        start_ns: Option<i64>,
    },
}

/// The output(s) of one packet: one, or two for `--by host` (both hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub first: u32,
    pub second: Option<u32>,
}

impl Targets {
    fn one(o: u32) -> Targets {
        Targets {
            first: o,
            second: None,
        }
    }
}

/// Options that change the keys (all off by default, as in Wireshark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyOptions {
    /// ICMP errors go with the TCP/UDP stream of the packet they quote.
    pub icmp_with_flow: bool,
    /// Key tunnelled packets (GRE, VXLAN, Geneve, IP-in-IP, Teredo, GTP) on the inner packet.
    pub inner: bool,
    /// Include the outermost VLAN ID in the key (Wireshark does not by default).
    pub vlan: bool,
}

/// A TCP or UDP conversation's tuple (and VLAN, with `--vlan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConvKey {
    pub flow: FlowKey,
    pub vlan: u16,
}

/// What the assigner numbered while placing one packet, in the order it did (see
/// [`Assigner::record_numbering`]): what a distributed split needs to give every stream, pair
/// and output the number a single run gives it (`crate::shuffle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Numbered {
    /// A TCP stream: `fresh` when its tuple had none yet (else a new SYN on a reused tuple);
    /// `quoted` when the packet quoted by an ICMP error numbered it.
    Tcp {
        key: ConvKey,
        stream: u32,
        fresh: bool,
        quoted: bool,
    },
    /// A TCP conversation numbered from a quoted packet first, now met in a packet's own
    /// headers (its sequence numbers start to count).
    TcpOwn {
        key: ConvKey,
    },
    Udp {
        key: ConvKey,
        stream: u32,
    },
    /// An address-pair output (`id`) for other IP protocols and orphan fragments.
    Pair {
        key: (IpAddr, IpAddr, u16),
        id: u32,
    },
    Output {
        out: u32,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct TcpConv {
    stream: u32,
    /// Created when a packet is keyed on this conversation (an inner or quoted conversation is
    /// numbered, as Wireshark numbers it, but may never get an output of its own).
    output: Option<u32>,
    /// First sequence number seen in each direction (lo→hi, hi→lo).
    base_seq: [Option<u32>; 2],
    /// Met in a packet's own headers, not only quoted by ICMP errors.
    own: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct UdpConv {
    stream: u32,
    output: Option<u32>,
}

/// A numbered TCP or UDP conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConvRef {
    tcp: bool,
    key: ConvKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ident: u32,
}

/// A look at the following packets: called with a visitor that gets each packet's link type,
/// bytes and time, and returns true to stop.
pub type Ahead<'x> = dyn FnMut(&mut dyn FnMut(u16, &[u8], i64) -> bool) + 'x;

/// Where a packet stands among the fragments of its datagram.
enum Fragment {
    /// Not fragmented, or the first fragment (it carries the transport header).
    WholeOrFirst,
    /// A later fragment, whose datagram's first fragment went to this output.
    Follows(u32),
    /// A later fragment whose first fragment was never seen.
    Orphan,
}

impl FragKey {
    fn of(ip: &IpLayer, data: &[u8], ident: u32) -> FragKey {
        FragKey {
            src: ip.src(data),
            dst: ip.dst(data),
            protocol: ip.protocol.0,
            ident,
        }
    }
}

/// How many following packets are searched for the first fragment of a datagram.
pub(crate) const LOOKAHEAD_PACKETS: usize = 1024;

/// Fragments whose first fragment was seen this long ago are forgotten (Linux's ipfrag_time).
const FRAGMENT_TIMEOUT_NS: i64 = 30_000_000_000;

/// Assigns packets to outputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Assigner {
    mode: Mode,
    opts: KeyOptions,
    outputs: Vec<OutputKey>,
    #[serde(serialize_with = "crate::sorted::map")]
    tcp: FxHashMap<ConvKey, TcpConv>,
    #[serde(serialize_with = "crate::sorted::map")]
    udp: FxHashMap<ConvKey, UdpConv>,
    #[serde(serialize_with = "crate::sorted::map")]
    pairs: FxHashMap<(IpAddr, IpAddr, u16), u32>,
    #[serde(serialize_with = "crate::sorted::map")]
    hosts: FxHashMap<IpAddr, u32>,
    #[serde(serialize_with = "crate::sorted::map")]
    server_ports: FxHashMap<ConvKey, u16>,
    #[serde(serialize_with = "crate::sorted::map")]
    ports: FxHashMap<(u8, u16), u32>,
    #[serde(serialize_with = "crate::sorted::map")]
    protocols: FxHashMap<u8, u32>,
    #[serde(serialize_with = "crate::sorted::map")]
    frags: FxHashMap<FragKey, (u32, i64)>,
    /// Datagrams whose first fragment the look-ahead did not find (so it is not repeated for
    /// each of their fragments), with when that was.
    #[serde(serialize_with = "crate::sorted::map")]
    orphans: FxHashMap<FragKey, i64>,
    frag_purge_at: i64,
    #[serde(serialize_with = "crate::sorted::map")]
    chunks: FxHashMap<i64, u32>,
    chunk: Option<(u32, u64)>,
    first_ts: Option<i64>,
    non_ip: Option<u32>,
    next_tcp: u32,
    next_udp: u32,
    next_pair: u32,
    /// Non-first fragments whose first fragment was never seen (they go per address pair).
    pub unmatched_fragments: u64,
    /// What was numbered since the last [`Assigner::take_numbered`], when recorded.
    numbered: Option<Vec<Numbered>>,
}

impl Assigner {
    #[must_use]
    pub fn new(mode: Mode, opts: KeyOptions) -> Self {
        Assigner {
            mode,
            opts,
            outputs: Vec::new(),
            tcp: FxHashMap::default(),
            udp: FxHashMap::default(),
            pairs: FxHashMap::default(),
            hosts: FxHashMap::default(),
            server_ports: FxHashMap::default(),
            ports: FxHashMap::default(),
            protocols: FxHashMap::default(),
            frags: FxHashMap::default(),
            orphans: FxHashMap::default(),
            frag_purge_at: i64::MIN,
            chunks: FxHashMap::default(),
            chunk: None,
            first_ts: None,
            non_ip: None,
            next_tcp: 0,
            next_udp: 0,
            next_pair: 0,
            unmatched_fragments: 0,
            numbered: None,
        }
    }

    /// From now on, keep a log of what is numbered (streams, pairs, outputs), in order, for
    /// [`Assigner::take_numbered`].
    pub fn record_numbering(&mut self) {
        self.numbered.get_or_insert_with(Vec::new);
    }

    /// What was numbered since the last call (empty unless recording).
    pub fn take_numbered(&mut self) -> Vec<Numbered> {
        self.numbered
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn log(&mut self, n: Numbered) {
        if let Some(log) = &mut self.numbered {
            log.push(n);
        }
    }

    /// Every output created so far, indexed by output number.
    #[must_use]
    pub fn outputs(&self) -> &[OutputKey] {
        &self.outputs
    }

    fn new_output(&mut self, key: OutputKey) -> u32 {
        self.outputs.push(key);
        let out = (self.outputs.len() - 1) as u32;
        self.log(Numbered::Output { out });
        out
    }

    /// The output(s) for one packet. `encoded_len` is what the packet adds to an output file
    /// (used by `--by size`); `header_len` what a new output file starts with.
    pub fn assign(
        &mut self,
        link: u16,
        data: &[u8],
        ts: i64,
        encoded_len: u64,
        header_len: u64,
    ) -> Targets {
        self.assign_with(link, data, ts, encoded_len, header_len, &mut |_| {})
    }

    /// Like [`Assigner::assign`], with a look at the packets that follow: `ahead` calls its
    /// argument with each following packet (link type, bytes, time) until it returns true.
    /// A fragment that arrives before the first fragment of its datagram (senders often send
    /// the last one first) is placed by finding that first fragment ahead.
    pub fn assign_with(
        &mut self,
        link: u16,
        data: &[u8],
        ts: i64,
        encoded_len: u64,
        header_len: u64,
        ahead: &mut Ahead<'_>,
    ) -> Targets {
        let first_ts = *self.first_ts.get_or_insert(ts);
        match self.mode {
            Mode::Count(n) => self.chunk_by(|index, _| index >= n, 1, 0),
            Mode::Size(limit) => self.chunk_by(|_, bytes| bytes > limit, encoded_len, header_len),
            Mode::Time(interval) => {
                let slot =
                    (i128::from(ts) - i128::from(first_ts)).div_euclid(i128::from(interval)) as i64;
                if let Some(&o) = self.chunks.get(&slot) {
                    return Targets::one(o);
                }
                let start = first_ts.saturating_add(slot.saturating_mul(interval));
                let o = self.new_output(OutputKey::Chunk {
                    index: self.chunks.len() as u64,
                    start_ns: Some(start),
                });
                self.chunks.insert(slot, o);
                Targets::one(o)
            }
            Mode::Stream | Mode::Host | Mode::HostPair | Mode::Port => {
                let layers = dissect(link, data);
                if matches!(self.mode, Mode::Stream | Mode::Port) {
                    self.find_first_fragment(&layers, data, ts, ahead);
                }
                self.by_key(&layers, data, ts)
            }
        }
    }

    /// [`Assigner::assign`] for a packet its caller has dissected already (`layers` of
    /// `data`), in the modes that key on the packet (stream, host, host-pair, port); nothing
    /// looks ahead for a first fragment.
    pub fn assign_dissected(&mut self, layers: &Layers, data: &[u8], ts: i64) -> Targets {
        debug_assert!(matches!(
            self.mode,
            Mode::Stream | Mode::Host | Mode::HostPair | Mode::Port
        ));
        self.first_ts.get_or_insert(ts);
        if matches!(self.mode, Mode::Stream | Mode::Port) {
            self.find_first_fragment(layers, data, ts, &mut |_| {});
        }
        self.by_key(layers, data, ts)
    }

    /// Chunks in input order: a new chunk when `full(used, used_after)` says so, `used` being
    /// packets (count) or bytes with the header (size).
    fn chunk_by(&mut self, full: impl Fn(u64, u64) -> bool, add: u64, header: u64) -> Targets {
        match self.chunk {
            Some((o, used)) if !full(used, used + add) => {
                self.chunk = Some((o, used + add));
                Targets::one(o)
            }
            _ => {
                let index = self.chunks.len() as u64;
                let o = self.new_output(OutputKey::Chunk {
                    index,
                    start_ns: None,
                });
                self.chunks.insert(index as i64, o);
                self.chunk = Some((o, header + add));
                Targets::one(o)
            }
        }
    }

    /// When `layers` is a non-first fragment of a datagram whose first fragment has not been
    /// seen, looks for that first fragment among the next packets and assigns it now, so its
    /// flow is known (its conversation is numbered a few packets early; Wireshark numbers it
    /// at the first fragment, which only differs if another conversation starts in between).
    fn find_first_fragment(
        &mut self,
        layers: &Layers,
        data: &[u8],
        now: i64,
        ahead: &mut Ahead<'_>,
    ) {
        let ip = if self.opts.inner {
            layers.inner_ip()
        } else {
            layers.outer_ip()
        };
        let Some(ip) = ip else { return };
        let Some(frag) = ip.fragment.filter(|f| f.offset != 0) else {
            return;
        };
        let key = FragKey::of(ip, data, frag.ident);
        let known = self
            .frags
            .get(&key)
            .is_some_and(|&(_, seen)| fresh(seen, now))
            || self.orphans.get(&key).is_some_and(|&seen| fresh(seen, now));
        if known {
            return;
        }
        let inner = self.opts.inner;
        let mut found: Option<(u16, Vec<u8>, i64)> = None;
        let mut looked = 0;
        ahead(&mut |link, bytes, ts| {
            looked += 1;
            let l = dissect(link, bytes);
            let candidate = if inner { l.inner_ip() } else { l.outer_ip() };
            if let Some(c) = candidate
                && c.fragment
                    .is_some_and(|f| f.offset == 0 && f.ident == key.ident)
                && c.protocol.0 == key.protocol
                && c.src(bytes) == key.src
                && c.dst(bytes) == key.dst
            {
                found = Some((link, bytes.to_vec(), ts));
                return true;
            }
            looked >= LOOKAHEAD_PACKETS
        });
        match found {
            Some((link, bytes, ts)) => {
                let l = dissect(link, &bytes);
                self.by_key(&l, &bytes, ts);
            }
            None => {
                self.orphans.insert(key, now);
            }
        }
    }

    fn by_key(&mut self, layers: &Layers, data: &[u8], ts: i64) -> Targets {
        let ip = if self.opts.inner {
            layers.inner_ip()
        } else {
            layers.outer_ip()
        };
        let Some(ip) = ip.copied() else {
            let o = match self.non_ip {
                Some(o) => o,
                None => {
                    let o = self.new_output(OutputKey::NonIp);
                    self.non_ip = Some(o);
                    o
                }
            };
            return Targets::one(o);
        };
        let vlan = if self.opts.vlan && layers.vlan_count > 0 {
            layers.vlan_ids[0]
        } else {
            0
        };
        match self.mode {
            Mode::Host => {
                let (src, dst) = (ip.src(data), ip.dst(data));
                let a = self.host(src);
                let b = self.host(dst);
                Targets {
                    first: a,
                    second: (a != b).then_some(b),
                }
            }
            Mode::HostPair => {
                let (lo, hi) = ordered(ip.src(data), ip.dst(data));
                Targets::one(self.pair_output(lo, hi, vlan, true))
            }
            Mode::Port => self.port(&ip, data, vlan, ts),
            _ => self.stream(layers, &ip, data, vlan, ts),
        }
    }

    fn host(&mut self, addr: IpAddr) -> u32 {
        if let Some(&o) = self.hosts.get(&addr) {
            return o;
        }
        let o = self.new_output(OutputKey::Host(addr));
        self.hosts.insert(addr, o);
        o
    }

    fn pair_output(&mut self, lo: IpAddr, hi: IpAddr, vlan: u16, host_pair: bool) -> u32 {
        if let Some(&o) = self.pairs.get(&(lo, hi, vlan)) {
            return o;
        }
        let key = if host_pair {
            OutputKey::HostPair { lo, hi }
        } else {
            self.next_pair += 1;
            let id = self.next_pair - 1;
            self.log(Numbered::Pair {
                key: (lo, hi, vlan),
                id,
            });
            OutputKey::IpPair { id, lo, hi }
        };
        let o = self.new_output(key);
        self.pairs.insert((lo, hi, vlan), o);
        o
    }

    /// Where a fragment goes when it carries no transport header of its own. A first fragment
    /// seen [`FRAGMENT_TIMEOUT_NS`] or more before counts as never seen, whenever the table
    /// was last purged (so the answer depends on the datagram alone, not on other traffic).
    fn fragment(&mut self, ip: &IpLayer, data: &[u8], ts: i64) -> Fragment {
        let Some(frag) = ip.fragment.filter(|f| f.offset != 0) else {
            return Fragment::WholeOrFirst;
        };
        let key = FragKey::of(ip, data, frag.ident);
        // Kept after the last fragment: duplicated and retransmitted fragments still follow
        // (entries expire with time, and a new first fragment with the same ID replaces them).
        match self.frags.get(&key) {
            Some(&(o, seen)) if fresh(seen, ts) => Fragment::Follows(o),
            _ => {
                self.unmatched_fragments += 1;
                Fragment::Orphan
            }
        }
    }

    fn remember_first_fragment(&mut self, ip: &IpLayer, data: &[u8], output: u32, ts: i64) {
        let Some(frag) = ip.fragment.filter(|f| f.offset == 0 && f.more) else {
            return;
        };
        if ts > self.frag_purge_at {
            // Bounded memory: forget first fragments whose datagram never completed.
            self.frags
                .retain(|_, (_, seen)| ts.saturating_sub(*seen) < FRAGMENT_TIMEOUT_NS);
            self.orphans
                .retain(|_, seen| ts.saturating_sub(*seen) < FRAGMENT_TIMEOUT_NS);
            self.frag_purge_at = ts.saturating_add(FRAGMENT_TIMEOUT_NS / 4);
        }
        let key = FragKey::of(ip, data, frag.ident);
        self.frags.insert(key, (output, ts));
    }

    fn stream(
        &mut self,
        layers: &Layers,
        ip: &IpLayer,
        data: &[u8],
        vlan: u16,
        ts: i64,
    ) -> Targets {
        // Number every TCP/UDP conversation the packet carries, outer to inner and then the one
        // an ICMP error quotes, as Wireshark does, so stream numbers match its numbering.
        let keyed_layer = if self.opts.inner {
            layers.ips().len() - 1
        } else {
            0
        };
        let mut keyed = None;
        for (i, layer) in layers.ips().iter().enumerate() {
            let conv = self.conversation(layer, data, vlan, false);
            if i == keyed_layer {
                keyed = conv;
            }
        }
        let quoted = layers
            .quoted
            .and_then(|q| self.conversation(&q, data, vlan, true));

        match self.fragment(ip, data, ts) {
            Fragment::Follows(o) => return Targets::one(o),
            Fragment::Orphan => {
                let (lo, hi) = ordered(ip.src(data), ip.dst(data));
                return Targets::one(self.pair_output(lo, hi, vlan, false));
            }
            Fragment::WholeOrFirst => {}
        }
        let is_icmp = matches!(
            ip.transport.map(|t| t.kind),
            Some(TransportKind::Icmp | TransportKind::Icmpv6)
        );
        let o = match (keyed, quoted) {
            (Some(c), _) => self.conversation_output(c),
            (None, Some(q)) if is_icmp && self.opts.icmp_with_flow => self.conversation_output(q),
            _ => {
                let (lo, hi) = ordered(ip.src(data), ip.dst(data));
                self.pair_output(lo, hi, vlan, false)
            }
        };
        self.remember_first_fragment(ip, data, o, ts);
        Targets::one(o)
    }

    /// Finds or numbers the TCP/UDP conversation of one IP layer. A quoted packet (inside an
    /// ICMP error) joins or numbers a conversation but never starts a new one on a reused tuple.
    fn conversation(
        &mut self,
        ip: &IpLayer,
        data: &[u8],
        vlan: u16,
        quoted: bool,
    ) -> Option<ConvRef> {
        let t = ip.transport?;
        t.ports(data)?;
        let (flow, forward) = ip.flow(data);
        let key = ConvKey { flow, vlan };
        match t.kind {
            TransportKind::Udp => {
                if !self.udp.contains_key(&key) {
                    self.next_udp += 1;
                    let stream = self.next_udp - 1;
                    self.udp.insert(
                        key,
                        UdpConv {
                            stream,
                            output: None,
                        },
                    );
                    self.log(Numbered::Udp { key, stream });
                }
                Some(ConvRef { tcp: false, key })
            }
            TransportKind::Tcp => {
                // seq and flags need 14 header bytes; a shorter cut keeps the stream.
                let at = t.header.start as usize;
                let seq_flags = (t.header.len() >= 14 && !quoted).then(|| {
                    let seq = u32::from_be_bytes([
                        data[at + 4],
                        data[at + 5],
                        data[at + 6],
                        data[at + 7],
                    ]);
                    (
                        seq,
                        u16::from_be_bytes([data[at + 12], data[at + 13]]) & 0x01ff,
                    )
                });
                let dir = usize::from(!forward);
                let mut fresh = true;
                if let Some(conv) = self.tcp.get_mut(&key) {
                    fresh = false;
                    let first_own = !quoted && !conv.own;
                    conv.own |= !quoted;
                    if first_own {
                        self.log(Numbered::TcpOwn { key });
                    }
                    let conv = self.tcp.get_mut(&key).expect("found above");
                    let Some((seq, fl)) = seq_flags else {
                        return Some(ConvRef { tcp: true, key });
                    };
                    let syn_only = fl & (flags::SYN | flags::ACK) == flags::SYN;
                    match conv.base_seq[dir] {
                        Some(base) if syn_only && base != seq => {}
                        Some(_) => return Some(ConvRef { tcp: true, key }),
                        None => {
                            conv.base_seq[dir] = Some(seq);
                            return Some(ConvRef { tcp: true, key });
                        }
                    }
                }
                self.next_tcp += 1;
                let stream = self.next_tcp - 1;
                let mut base_seq = [None, None];
                base_seq[dir] = seq_flags.map(|(s, _)| s);
                self.tcp.insert(
                    key,
                    TcpConv {
                        stream,
                        output: None,
                        base_seq,
                        own: !quoted,
                    },
                );
                self.log(Numbered::Tcp {
                    key,
                    stream,
                    fresh,
                    quoted,
                });
                Some(ConvRef { tcp: true, key })
            }
            _ => None,
        }
    }

    /// The output of a numbered conversation, created on first use.
    fn conversation_output(&mut self, c: ConvRef) -> u32 {
        let (stream, existing) = if c.tcp {
            let conv = &self.tcp[&c.key];
            (conv.stream, conv.output)
        } else {
            let conv = &self.udp[&c.key];
            (conv.stream, conv.output)
        };
        if let Some(o) = existing {
            return o;
        }
        let flow = c.key.flow;
        let key = if c.tcp {
            OutputKey::Tcp { stream, flow }
        } else {
            OutputKey::Udp { stream, flow }
        };
        let o = self.new_output(key);
        if c.tcp {
            self.tcp.get_mut(&c.key).expect("numbered above").output = Some(o);
        } else {
            self.udp.get_mut(&c.key).expect("numbered above").output = Some(o);
        }
        o
    }

    fn port(&mut self, ip: &IpLayer, data: &[u8], vlan: u16, ts: i64) -> Targets {
        if let Fragment::Follows(o) = self.fragment(ip, data, ts) {
            return Targets::one(o);
        }
        let ports = ip.transport.and_then(|t| t.ports(data));
        let o = match (ip.transport.map(|t| t.kind), ports) {
            (Some(kind @ (TransportKind::Tcp | TransportKind::Udp)), Some((sport, dport))) => {
                let (flow, _) = ip.flow(data);
                let key = ConvKey { flow, vlan };
                let syn_only = kind == TransportKind::Tcp && {
                    let at = ip.transport.unwrap().header.start as usize;
                    data.get(at + 13)
                        .is_some_and(|&f| u16::from(f) & (flags::SYN | flags::ACK) == flags::SYN)
                };
                let server = if syn_only {
                    self.server_ports.insert(key, dport);
                    dport
                } else {
                    *self
                        .server_ports
                        .entry(key)
                        .or_insert_with(|| guess_server_port(sport, dport))
                };
                let protocol = ip.protocol.0;
                if let Some(&o) = self.ports.get(&(protocol, server)) {
                    o
                } else {
                    let o = self.new_output(OutputKey::Port {
                        protocol,
                        port: server,
                    });
                    self.ports.insert((protocol, server), o);
                    o
                }
            }
            _ => {
                let protocol = ip.protocol.0;
                if let Some(&o) = self.protocols.get(&protocol) {
                    o
                } else {
                    let o = self.new_output(OutputKey::Protocol(protocol));
                    self.protocols.insert(protocol, o);
                    o
                }
            }
        };
        self.remember_first_fragment(ip, data, o, ts);
        Targets::one(o)
    }
}

/// Whether something seen at `seen` still counts at `now` (less than the fragment timeout ago).
fn fresh(seen: i64, now: i64) -> bool {
    now.saturating_sub(seen) < FRAGMENT_TIMEOUT_NS
}

fn ordered(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Without a SYN to tell: a well-known port over an ephemeral one, else the lower number.
fn guess_server_port(a: u16, b: u16) -> u16 {
    match (a < 1024, b < 1024) {
        (true, false) => a,
        (false, true) => b,
        _ => a.min(b),
    }
}

impl OutputKey {
    /// Protocol name for file names and the index: tcp, udp, ip, non-ip, host, …
    #[must_use]
    pub fn protocol(&self) -> String {
        match self {
            OutputKey::Tcp { .. } => "tcp".into(),
            OutputKey::Udp { .. } => "udp".into(),
            OutputKey::IpPair { .. } | OutputKey::Host(_) | OutputKey::HostPair { .. } => {
                "ip".into()
            }
            OutputKey::NonIp => "non-ip".into(),
            OutputKey::Port { protocol, .. } | OutputKey::Protocol(protocol) => {
                protocol_name(*protocol)
            }
            OutputKey::Chunk { .. } => "all".into(),
        }
    }

    /// The number shown first in the file name: the stream number for TCP/UDP (Wireshark's),
    /// the pair number, the chunk number, or the port.
    #[must_use]
    pub fn id(&self) -> u64 {
        match self {
            OutputKey::Tcp { stream, .. } | OutputKey::Udp { stream, .. } => u64::from(*stream),
            OutputKey::IpPair { id, .. } => u64::from(*id),
            OutputKey::Port { port, .. } => u64::from(*port),
            OutputKey::Protocol(p) => u64::from(*p),
            OutputKey::Chunk { index, .. } => *index,
            OutputKey::NonIp | OutputKey::Host(_) | OutputKey::HostPair { .. } => 0,
        }
    }

    /// The two endpoints (address, or address and port), when the key has them.
    #[must_use]
    pub fn endpoints(&self) -> (Option<String>, Option<String>) {
        match self {
            OutputKey::Tcp { flow, .. } | OutputKey::Udp { flow, .. } => {
                (Some(flow.lo.to_string()), Some(flow.hi.to_string()))
            }
            OutputKey::IpPair { lo, hi, .. } | OutputKey::HostPair { lo, hi } => {
                (Some(lo.to_string()), Some(hi.to_string()))
            }
            OutputKey::Host(a) => (Some(a.to_string()), None),
            _ => (None, None),
        }
    }

    /// A readable description, e.g. `tcp 192.0.2.1:51000 <-> 198.51.100.7:443`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            OutputKey::Tcp { flow, .. } | OutputKey::Udp { flow, .. } => flow.to_string(),
            OutputKey::IpPair { lo, hi, .. } | OutputKey::HostPair { lo, hi } => {
                format!("ip {lo} <-> {hi}")
            }
            OutputKey::NonIp => "frames without IP".into(),
            OutputKey::Host(a) => format!("host {a}"),
            OutputKey::Port { protocol, port } => {
                format!("{} port {port}", protocol_name(*protocol))
            }
            OutputKey::Protocol(p) => format!("{} (no ports)", protocol_name(*p)),
            OutputKey::Chunk {
                index,
                start_ns: Some(s),
            } => format!("chunk {index} from {s} ns"),
            OutputKey::Chunk {
                index,
                start_ns: None,
            } => format!("chunk {index}"),
        }
    }

    /// The default file name without extension: sortable, and showing the key, e.g.
    /// `000042-tcp-192.0.2.1_51000-198.51.100.7_443`.
    #[must_use]
    pub fn stem(&self) -> String {
        match self {
            OutputKey::Tcp { stream, flow } | OutputKey::Udp { stream, flow } => format!(
                "{stream:06}-{}-{}_{}-{}_{}",
                self.protocol(),
                addr_for_name(flow.lo.addr),
                flow.lo.port,
                addr_for_name(flow.hi.addr),
                flow.hi.port
            ),
            OutputKey::IpPair { id, lo, hi } => {
                format!("{id:06}-ip-{}-{}", addr_for_name(*lo), addr_for_name(*hi))
            }
            OutputKey::NonIp => "non-ip".into(),
            OutputKey::Host(a) => format!("host-{}", addr_for_name(*a)),
            OutputKey::HostPair { lo, hi } => {
                format!("hosts-{}-{}", addr_for_name(*lo), addr_for_name(*hi))
            }
            OutputKey::Port { protocol, port } => {
                format!("port-{}-{port:05}", protocol_name(*protocol))
            }
            OutputKey::Protocol(p) => format!("proto-{}", protocol_name(*p)),
            // `{start}` is filled in when the chunk is written (its earliest packet's time):
            // the names sort in time order, also when packets come out of order.
            OutputKey::Chunk { index, .. } => format!("chunk-{{start}}-{index:06}"),
        }
    }

    /// Fills a `--name` template: `{id}` (6 digits), `{proto}`, `{a}`, `{aport}`, `{b}`,
    /// `{bport}`, `{key}` (the default name) and `{n}` (output number, 6 digits). `{start}`
    /// and `{end}` are left for the output set, which knows the times once it is written.
    #[must_use]
    pub fn render(&self, template: &str, n: u32) -> String {
        let (a, aport, b, bport) = match self {
            OutputKey::Tcp { flow, .. } | OutputKey::Udp { flow, .. } => (
                addr_for_name(flow.lo.addr),
                flow.lo.port.to_string(),
                addr_for_name(flow.hi.addr),
                flow.hi.port.to_string(),
            ),
            OutputKey::IpPair { lo, hi, .. } | OutputKey::HostPair { lo, hi } => (
                addr_for_name(*lo),
                String::new(),
                addr_for_name(*hi),
                String::new(),
            ),
            OutputKey::Host(x) => (
                addr_for_name(*x),
                String::new(),
                String::new(),
                String::new(),
            ),
            _ => Default::default(),
        };
        template
            .replace("{id}", &format!("{:06}", self.id()))
            .replace("{n}", &format!("{n:06}"))
            .replace("{proto}", &self.protocol())
            .replace("{aport}", &aport)
            .replace("{bport}", &bport)
            .replace("{a}", &a)
            .replace("{b}", &b)
            .replace("{key}", &self.stem())
    }
}

fn protocol_name(p: u8) -> String {
    tracekit_wire::IpProtocol(p)
        .name()
        .map_or_else(|| format!("ip{p}"), str::to_string)
}

/// IPv6 colons become dots in file names (colons upset Windows shares and some tools).
fn addr_for_name(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6.to_string().replace(':', "."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, fl: u8) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
        p.extend(src);
        p.extend(dst);
        p.extend(sport.to_be_bytes());
        p.extend(dport.to_be_bytes());
        p.extend(seq.to_be_bytes());
        p.extend([0, 0, 0, 0, 0x50, fl, 0xff, 0xff, 0, 0, 0, 0]);
        p
    }

    const RAW: u16 = 101;

    #[test]
    fn tcp_streams_split_on_a_new_isn_like_wireshark() {
        let mut a = Assigner::new(Mode::Stream, KeyOptions::default());
        let (c, s) = ([192, 0, 2, 1], [198, 51, 100, 7]);
        let mut assign = |p: Vec<u8>| a.assign(RAW, &p, 0, 0, 0).first;
        let syn = assign(tcp_packet(c, s, 5000, 443, 100, 0x02));
        let synack = assign(tcp_packet(s, c, 443, 5000, 900, 0x12));
        let syn_again = assign(tcp_packet(c, s, 5000, 443, 100, 0x02));
        let new_isn = assign(tcp_packet(c, s, 5000, 443, 7777, 0x02));
        let data = assign(tcp_packet(s, c, 443, 5000, 901, 0x10));
        let other = assign(tcp_packet(c, s, 5001, 443, 1, 0x02));
        assert_eq!(
            (syn, synack, syn_again),
            (0, 0, 0),
            "retransmitted SYN stays"
        );
        assert_eq!(
            (new_isn, data),
            (1, 1),
            "new ISN: new stream, and the reply follows it"
        );
        assert_eq!(other, 2);
        assert!(matches!(a.outputs()[1], OutputKey::Tcp { stream: 1, .. }));
    }

    #[test]
    fn chunks_by_count_size_and_time() {
        let mut a = Assigner::new(Mode::Count(2), KeyOptions::default());
        let got: Vec<u32> = (0..5)
            .map(|i| a.assign(RAW, &[], i, 10, 24).first)
            .collect();
        assert_eq!(got, [0, 0, 1, 1, 2]);
        let mut a = Assigner::new(Mode::Size(100), KeyOptions::default());
        let got: Vec<u32> = [30u64, 30, 30, 80, 200, 10]
            .iter()
            .map(|&n| a.assign(RAW, &[], 0, n, 24).first)
            .collect();
        assert_eq!(
            got,
            [0, 0, 1, 2, 3, 4],
            "24-byte header + 30 + 30 fits in 100, the third does not"
        );
        let mut a = Assigner::new(Mode::Time(10), KeyOptions::default());
        let got: Vec<u32> = [100i64, 105, 110, 95, 131]
            .iter()
            .map(|&t| a.assign(RAW, &[], t, 0, 0).first)
            .collect();
        assert_eq!(
            got,
            [0, 0, 1, 2, 3],
            "an earlier packet gets its own interval"
        );
    }

    #[test]
    fn orphan_fragments_are_looked_ahead_for_once_per_datagram() {
        let mut a = Assigner::new(Mode::Stream, KeyOptions::default());
        let frag = |ident: u16, offset8: u16| {
            let mut p = vec![0x45, 0, 0, 28];
            p.extend(ident.to_be_bytes());
            p.extend((0x2000 | offset8).to_be_bytes());
            p.extend([64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2]);
            p.extend([0u8; 8]);
            p
        };
        let mut searches = 0;
        for offset in 1..=50 {
            let p = frag(7, offset);
            a.assign_with(RAW, &p, 0, 0, 0, &mut |_| searches += 1);
        }
        assert_eq!(
            searches, 1,
            "one look-ahead for the datagram, not one per fragment"
        );
        assert_eq!(a.unmatched_fragments, 50);
        assert_eq!(a.outputs().len(), 1, "all in the address pair's output");
    }
}
