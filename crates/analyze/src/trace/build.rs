//! Building a capture's connection table: packets staged and run through as a pipeline, their
//! connection found through a flow index it can prefetch, what every packet updates kept in a
//! small record apart (`Hot`), and the kept packets appended to the packet log.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;
use rustc_hash::FxHasher;
use tracekit_wire::tcp::{OptionSummary, Tcp, flags};
use tracekit_wire::tls::{self, Records as TlsRecords};
use tracekit_wire::{Endpoint, IpLayer, Layers, TransportKind, dissect};

use super::log::{LOG_CHUNK, LogChunk, log_push, regrow};
use super::{
    Close, Conn, ConnTable, End, Handshake, KEPT_FRAMES, KEPT_IP_IDS, KEPT_ORDINARY,
    KEPT_ORDINARY_TOTAL, KEPT_PACKETS, Kept, PAYLOAD_PREFIX, Pkt, TlsMark,
};

/// Keep only connections with this port on either side.
#[derive(Debug, Clone, Copy)]
pub struct PortFilter(pub u16);

/// The innermost IP layer that carries a whole TCP header: tunnels may differ between the
/// points.
fn tcp_layer(layers: &Layers) -> Option<&tracekit_wire::IpLayer> {
    layers.ips().iter().rev().find(|ip| {
        ip.transport
            .is_some_and(|t| t.kind == TransportKind::Tcp && t.complete)
            && ip.is_first_fragment_or_whole()
    })
}

/// One packet for [`TableBuilder::add_batch`], dissected once by the caller (the same
/// dissection feeds the clock alignment).
#[derive(Debug, Clone, Copy, Default)]
pub struct Packet<'a> {
    /// Packet number in the trace, 1-based.
    pub frame: u64,
    /// Nanoseconds.
    pub ts: i64,
    pub layers: Layers,
    pub data: &'a [u8],
}

/// Packets a caller hands to [`TableBuilder::add_batch`] at once: 64 of them (22 KB) stay in
/// the first-level cache between being dissected and being recorded; 256 did not.
pub const BATCH: usize = 64;
/// Packets gathered for [`TableBuilder::add_batch`], each dissected where it sits in the
/// batch (see `tracekit_wire::dissect_into`): its layers are a few hundred bytes, and
/// returning them and moving them into a batch cost more than dissecting a plain TCP packet.
#[derive(Debug)]
pub struct Batch<'a> {
    packets: Vec<Packet<'a>>,
    filled: usize,
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch {
            packets: vec![Packet::default(); BATCH],
            filled: 0,
        }
    }
}

impl<'a> Batch<'a> {
    /// Dissects packet number `frame` into the batch; the whole batch once it is full (the
    /// next packet starts a new one).
    pub fn push(
        &mut self,
        frame: u64,
        ts: i64,
        link: u16,
        data: &'a [u8],
    ) -> Option<&[Packet<'a>]> {
        let p = &mut self.packets[self.filled];
        p.frame = frame;
        p.ts = ts;
        p.data = data;
        tracekit_wire::dissect_into(link, data, &mut p.layers);
        self.filled += 1;
        if self.filled < BATCH {
            return None;
        }
        self.filled = 0;
        Some(&self.packets)
    }
    /// The packets of a batch not yet full, taken out of it.
    pub fn rest(&mut self) -> &[Packet<'a>] {
        let n = std::mem::take(&mut self.filled);
        &self.packets[..n]
    }
}

/// How many packets ahead the flow slot and then the connection are prefetched: with tens of
/// thousands of interleaved connections, each is a cache (and TLB) miss that must be in
/// flight well before the packet is recorded.
const SLOT_AHEAD: usize = 16;
const CONN_AHEAD: usize = 8;

/// The part of a connection every packet updates. [`Conn`] is a kilobyte, and with tens of
/// thousands of interleaved connections each packet touched several missed lines of it; this
/// record is three lines (a packet touches the shared one and its direction's), a fifth of the
/// memory, and `Conn` is touched only by packets with news (handshake, close, TLS records, a
/// change of TTL); the first packets' IP IDs go through the log. Copied into `Conn` by
/// [`TableBuilder::finish`].
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Hot {
    key: Tuple,
    /// Packets kept (in the log), and of them ordinary ones.
    kept: u16,
    ordinary_kept: u16,
    client_is_lo: bool,
    first_payload_done: bool,
    first_ts: i64,
    last_ts: i64,
    dirs: [HotDir; 2],
}

/// One direction's line of [`Hot`] (63 bytes: plain fields and a flag byte, since options
/// would not fit).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct HotDir {
    packets: u64,
    bytes: u64,
    /// The TTL of the latest packets, the frame that started their run and its length
    /// (`Conn::ttls` is updated when the TTL changes, and by `finish`).
    ttl_run_start: u64,
    /// ECN codepoint counts, added to `Conn::ecn_codepoints` (also whenever one would wrap).
    ecn: [u32; 4],
    largest: u32,
    ttl_run: u32,
    /// Client direction only (with `WANT_ACK3`): the acknowledgement number of the third
    /// handshake packet.
    ack3: u32,
    /// The receiver's MSS (with `HAS_MSS`).
    mss: u16,
    /// The first source MAC address (with `HAS_MAC`).
    mac: [u8; 6],
    ttl: u8,
    /// IPv4 packets counted towards `Conn::ip_ids` (at most `KEPT_IP_IDS`).
    ip_ids: u8,
    bits: u8,
}

const HAS_MAC: u8 = 1;
const HAS_MSS: u8 = 2;
const WANT_ACK3: u8 = 4;
const APP_SEEN: u8 = 8;
/// The direction sent a Client Hello, or a Server Hello (for `TableBuilder::finish` to tell
/// the roles of a connection whose handshake this point did not see).
const SENT_CLIENT_HELLO: u8 = 16;
const SENT_SERVER_HELLO: u8 = 32;

impl HotDir {
    fn set_mss(&mut self, mss: Option<u16>) {
        if let Some(m) = mss {
            self.mss = m;
            self.bits |= HAS_MSS;
        }
    }
}

impl Hot {
    fn new(key: Tuple, client_is_lo: bool, ts: i64) -> Self {
        Hot {
            key,
            kept: 0,
            ordinary_kept: 0,
            client_is_lo,
            first_payload_done: false,
            first_ts: ts,
            last_ts: ts,
            dirs: [HotDir::default(); 2],
        }
    }
}

/// A TCP flow's two ends as integers, the lower end first (the order of [`FlowKey`](tracekit_wire::FlowKey): within
/// one address family, (address, port) compared as numbers). Hand-written for the hot path:
/// a `FlowKey` is built of `IpAddr`s, which the packet's bytes reach through byte stores on
/// the stack, read back in wider loads the processor cannot forward (a stall on every packet,
/// the hottest instruction of the table); these are loaded into registers straight from the
/// header. A `FlowKey` is made only for a new connection's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tuple {
    /// Addresses as big-endian numbers (IPv4 zero-extended), each split into high and low
    /// halves so that [`Hot`] keeps 8-byte alignment and its three lines.
    lo: [u64; 2],
    hi: [u64; 2],
    /// The lower end's port in the high half.
    ports: u32,
    v6: bool,
}

impl Tuple {
    /// The tuple of a TCP segment over `ip`, and whether it goes from the lower end to the
    /// upper one.
    #[inline]
    fn of(ip: &IpLayer, tcp: &Tcp<&[u8]>, data: &[u8]) -> (Tuple, bool) {
        let at = ip.header.start as usize;
        let v6 = ip.version != 4;
        let (src, dst) = if v6 {
            (be128(data, at + 8), be128(data, at + 24))
        } else {
            (
                u128::from(be32(data, at + 12)),
                u128::from(be32(data, at + 16)),
            )
        };
        let (sport, dport) = (tcp.src_port(), tcp.dst_port());
        let forward = (src, sport) <= (dst, dport);
        let ((lo, lo_port), (hi, hi_port)) = if forward {
            ((src, sport), (dst, dport))
        } else {
            ((dst, dport), (src, sport))
        };
        let halves = |a: u128| [(a >> 64) as u64, a as u64];
        (
            Tuple {
                lo: halves(lo),
                hi: halves(hi),
                ports: u32::from(lo_port) << 16 | u32::from(hi_port),
                v6,
            },
            forward,
        )
    }

    fn has_port(&self, port: u16) -> bool {
        (self.ports >> 16) as u16 == port || self.ports as u16 == port
    }

    /// The high half of the FxHash of the words (its low bits are weak), never 0: that marks
    /// an empty slot. (32 bits, so that a slot is 8 bytes: a port scan's flow index took 63
    /// bytes a connection with 64-bit hashes. The slot is found by the high bits of these;
    /// a tag shared by two flows costs a key comparison.)
    fn hash(&self) -> u32 {
        let mut h = FxHasher::default();
        for w in [self.lo[0], self.lo[1], self.hi[0], self.hi[1]] {
            h.write_u64(w);
        }
        h.write_u64(u64::from(self.ports) << 1 | u64::from(self.v6));
        ((h.finish() >> 32) as u32).max(1)
    }

    /// The lower and the upper end.
    fn ends(&self) -> (Endpoint, Endpoint) {
        let addr = |a: [u64; 2]| {
            let n = u128::from(a[0]) << 64 | u128::from(a[1]);
            if self.v6 {
                IpAddr::V6(Ipv6Addr::from(n))
            } else {
                IpAddr::V4(Ipv4Addr::from(n as u32))
            }
        };
        (
            Endpoint {
                addr: addr(self.lo),
                port: (self.ports >> 16) as u16,
            },
            Endpoint {
                addr: addr(self.hi),
                port: self.ports as u16,
            },
        )
    }
}

/// A slot of the flow index: the hash of a flow key (0: empty) and its newest connection.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u32,
    conn: u32,
}

/// Reads one trace's packets into a [`ConnTable`].
///
/// The flow index is a hand-written open-addressing table rather than a `HashMap`: its slots
/// can be prefetched by hash a batch ahead, which is where the time of a trace with many
/// connections went (one dependent cache miss per packet).
#[derive(Debug)]
pub struct TableBuilder {
    pub(super) conns: Vec<Conn>,
    hot: Vec<Hot>,
    /// Power-of-two length, at most half full.
    slots: Vec<Slot>,
    slot_shift: u32,
    used_slots: usize,
    log: Vec<LogChunk>,
    /// IPv4 packets among the first of their direction that were not kept: (connection,
    /// frame, sent by the client, IP ID).
    ip_ids_not_kept: Vec<(u32, u64, bool, u16)>,
    /// Ordinary packets kept so far, over all connections.
    pub(super) kept_ordinary: u64,
    packets: u64,
    tcp_packets: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    filter: Option<PortFilter>,
}

/// A packet through the first step of a batch.
struct Staged<'p, 'a> {
    p: &'p Packet<'a>,
    ip: &'p IpLayer,
    tcp: Tcp<&'a [u8]>,
    key: Tuple,
    forward: bool,
    hash: u32,
}

impl Staged<'_, '_> {
    /// Whether recording the packet will likely touch its `Conn` (not only its `Hot`): a SYN,
    /// FIN or RST, or a payload that starts like a TLS alert or handshake record. (Not
    /// application data, most packets of a TLS trace: only the first of each direction touches
    /// `Conn`, and prefetching its 16 lines for every one of them took the memory bandwidth and
    /// the fill buffers the other prefetches needed.)
    fn has_news(&self) -> bool {
        let payload = self
            .ip
            .transport
            .and_then(|t| self.p.data.get(t.payload.range()))
            .unwrap_or_default();
        self.tcp.flags() & (flags::SYN | flags::FIN | flags::RST) != 0
            || matches!(payload, [21..=22, 3, ..])
    }
}

impl TableBuilder {
    #[must_use]
    pub fn new(filter: Option<PortFilter>) -> Self {
        TableBuilder {
            conns: Vec::new(),
            hot: Vec::new(),
            slots: vec![Slot::default(); 1024],
            slot_shift: 32 - 10,
            used_slots: 0,
            log: Vec::new(),
            ip_ids_not_kept: Vec::new(),
            kept_ordinary: 0,
            packets: 0,
            tcp_packets: 0,
            first_ts: None,
            last_ts: None,
            filter,
        }
    }

    /// A builder with room for `conns` connections from the start (the tables then grow
    /// without copying; room not used costs address space only).
    #[must_use]
    pub fn with_capacity(filter: Option<PortFilter>, conns: usize) -> Self {
        let mut t = TableBuilder::new(filter);
        t.conns.reserve(conns);
        t.hot.reserve(conns);
        t
    }

    /// Connections so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Makes room for `conns` connections in all, when the tables hold less: for a reader
    /// that extrapolates the count from the part of the trace read so far. (Grown by doubling,
    /// the tables of a port scan, one connection per packet, were copied into fresh memory
    /// again and again: most of their time.)
    /// When the room cannot be had (address space), the tables grow as before.
    pub fn expect(&mut self, conns: usize) {
        if conns > self.conns.capacity() {
            regrow(&mut self.conns, conns);
            regrow(&mut self.hot, conns);
        }
    }

    /// Adds packet number `frame` (1-based) seen at `ts` nanoseconds.
    pub fn add(&mut self, frame: u64, ts: i64, link: u16, data: &[u8]) {
        self.add_batch(&[Packet {
            frame,
            ts,
            layers: dissect(link, data),
            data,
        }]);
    }

    /// Adds packets in trace order, as a pipeline: packet `k` is recorded while the
    /// connection of packet `k + CONN_AHEAD` and the flow slot of packet `k + SLOT_AHEAD` are
    /// being loaded.
    pub fn add_batch(&mut self, packets: &[Packet<'_>]) {
        for chunk in packets.chunks(BATCH) {
            let mut staged = ArrayVec::<Option<Staged>, BATCH>::new();
            for k in 0..chunk.len() + SLOT_AHEAD {
                if let Some(p) = chunk.get(k) {
                    let s = self.stage(p);
                    if let Some(s) = &s {
                        tracekit_capture::prefetch_value(&self.slots[self.slot_of(s.hash)], 1);
                    }
                    staged.push(s);
                }
                if let Some(j) = (k + CONN_AHEAD).checked_sub(SLOT_AHEAD)
                    && let Some(Some(s)) = staged.get(j)
                {
                    // The first slot only: a hint, checked again when the packet is taken.
                    let slot = self.slots[self.slot_of(s.hash)];
                    if slot.hash == s.hash {
                        tracekit_capture::prefetch_value(&self.hot[slot.conn as usize], 3);
                        if s.has_news() {
                            tracekit_capture::prefetch_value(&self.conns[slot.conn as usize], 16);
                        }
                    }
                }
                if let Some(j) = k.checked_sub(SLOT_AHEAD)
                    && let Some(Some(s)) = staged.get(j)
                {
                    self.take(s);
                }
            }
        }
    }

    /// Counts the packet; its TCP layer and flow when it has one (and passes the filter).
    fn stage<'p, 'a>(&mut self, p: &'p Packet<'a>) -> Option<Staged<'p, 'a>> {
        self.packets += 1;
        self.first_ts = Some(self.first_ts.map_or(p.ts, |t| t.min(p.ts)));
        self.last_ts = Some(self.last_ts.map_or(p.ts, |t| t.max(p.ts)));
        let ip = tcp_layer(&p.layers)?;
        let t = ip.transport?;
        let tcp = Tcp::new_checked(&p.data[t.header.range()]).ok()?;
        self.tcp_packets += 1;
        let (key, forward) = Tuple::of(ip, &tcp, p.data);
        if let Some(PortFilter(port)) = self.filter
            && !key.has_port(port)
        {
            return None;
        }
        Some(Staged {
            p,
            ip,
            tcp,
            key,
            forward,
            hash: key.hash(),
        })
    }

    /// The first slot to probe for a hash (its high bits: FxHash's low bits are weak).
    fn slot_of(&self, hash: u32) -> usize {
        (hash >> self.slot_shift) as usize
    }

    /// The slot that holds a flow, or the free slot where it would go (linear probing).
    fn probe(&self, hash: u32, key: &Tuple) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(hash);
        loop {
            let s = self.slots[at];
            if s.hash == 0 || (s.hash == hash && self.hot[s.conn as usize].key == *key) {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// The newest connection of a flow.
    fn find(&self, hash: u32, key: &Tuple) -> Option<usize> {
        let s = self.slots[self.probe(hash, key)];
        (s.hash != 0).then_some(s.conn as usize)
    }

    /// Points a flow's slot at connection `conn`, taking a free slot for a new flow.
    fn index(&mut self, hash: u32, conn: u32) {
        // (At 2^32 slots the hash has no bit left to spread them: the index fills past half,
        // never whole, since connections stop below 2^32.)
        if (self.used_slots + 1) * 2 > self.slots.len() && self.slot_shift > 0 {
            self.grow();
        }
        let at = self.probe(hash, &self.hot[conn as usize].key);
        if self.slots[at].hash == 0 {
            self.used_slots += 1;
        }
        self.slots[at] = Slot { hash, conn };
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.slot_shift -= 1;
        for s in old.into_iter().filter(|s| s.hash != 0) {
            let at = self.probe(s.hash, &self.hot[s.conn as usize].key);
            self.slots[at] = s;
        }
    }

    /// Finds or opens the packet's connection and records the packet in it.
    fn take(&mut self, s: &Staged) {
        let tcp = &s.tcp;
        let f = tcp.flags();
        let syn_only = f & (flags::SYN | flags::ACK) == flags::SYN;
        let conn = match self.find(s.hash, &s.key) {
            // A new SYN on a used tuple starts a new connection (Wireshark's tcp.stream),
            // unless it repeats the SYN we have (a retransmission).
            Some(i) if syn_only && self.conns[i].syn.is_none_or(|h| h.isn != tcp.seq()) => {
                self.open(s, true, true)
            }
            Some(i) => Some(i),
            None => {
                let synack = f & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK;
                let (sport, dport) = (tcp.src_port(), tcp.dst_port());
                if syn_only {
                    self.open(s, true, true)
                } else if synack {
                    self.open(s, false, true)
                } else {
                    // Mid-connection: the lower port is most likely the server's (on equal
                    // ports, the lower end: the source is lower when the packet goes forward
                    // and its ends differ).
                    let src_lower =
                        sport < dport || (sport == dport && s.forward && s.key.lo != s.key.hi);
                    self.open(s, !src_lower, false)
                }
            }
        };
        if let Some(i) = conn {
            let from_client = s.forward == self.hot[i].client_is_lo;
            self.record(i, s, from_client);
        }
    }

    /// A new connection whose client is the packet's source (else its destination), its
    /// roles known or guessed; `None` past 4 billion of them (which would take terabytes first).
    fn open(&mut self, s: &Staged, client_is_src: bool, known: bool) -> Option<usize> {
        let i = u32::try_from(self.conns.len())
            .ok()
            .filter(|&i| i < u32::MAX)?;
        // The ends are made only here, for a new connection.
        let (lo, hi) = s.key.ends();
        let (src, dst) = if s.forward { (lo, hi) } else { (hi, lo) };
        let (client, server) = if client_is_src {
            (src, dst)
        } else {
            (dst, src)
        };
        self.conns.push(Conn::new(client, server, known, s.p.ts));
        self.hot.push(Hot::new(s.key, client == lo, s.p.ts));
        self.index(s.hash, i);
        Some(i as usize)
    }

    #[allow(clippy::too_many_lines)]
    fn record(&mut self, conn_index: usize, staged: &Staged, from_client: bool) {
        let Packet {
            frame,
            ts,
            ref layers,
            data,
        } = *staged.p;
        let (ip, tcp) = (staged.ip, &staged.tcp);
        let dir = End::of(from_client);
        let t = ip.transport.expect("a TCP layer");
        let (ip_id, ecn, df) = (ip.ident(data), ip.ecn(data), ip.dont_fragment(data));
        let len = ip.announced_payload(data).saturating_sub(t.header.len()) as u32;
        let payload = &data[t.payload.range()];
        let ttl = ip.ttl(data);
        let f = tcp.flags();

        let hot = &mut self.hot[conn_index];
        let conn = &mut self.conns[conn_index];
        hot.last_ts = hot.last_ts.max(ts);
        hot.first_ts = hot.first_ts.min(ts);
        let d = &mut hot.dirs[dir];
        d.packets += 1;
        d.bytes += u64::from(len);
        d.largest = d.largest.max(len);
        let codepoint = usize::from(ecn);
        if d.ecn[codepoint] == u32::MAX {
            conn.sent[dir].ecn_codepoints[codepoint] += u64::from(u32::MAX);
            d.ecn[codepoint] = 0;
        }
        d.ecn[codepoint] += 1;
        if d.bits & HAS_MAC == 0
            && let Some(mac) = src_mac(layers, data)
        {
            d.mac = mac;
            d.bits |= HAS_MAC;
        }
        if d.ttl_run > 0 && d.ttl == ttl {
            d.ttl_run = d.ttl_run.saturating_add(1);
        } else {
            if d.ttl_run > 0 {
                add_ttl_run(conn, dir, d);
            }
            d.ttl = ttl;
            d.ttl_run = 1;
            d.ttl_run_start = frame;
        }
        let log_ip_id = ip_id.is_some() && usize::from(d.ip_ids) < KEPT_IP_IDS;
        d.ip_ids += u8::from(log_ip_id);

        control(conn, hot, staged, (ttl, ip_id, ecn, df), from_client);
        let d = &mut hot.dirs[dir];
        if d.bits & HAS_MSS != 0 && len > u32::from(d.mss) {
            conn.rare_mut().over_mss[dir].push(frame);
        }

        let mark = if len > 0 {
            tls_records(conn, d, payload, (frame, from_client))
        } else {
            None
        };
        let payload_hash = payload_hash(payload, len);
        if from_client && !hot.first_payload_done && payload_hash != 0 {
            conn.first_client_payload = payload_hash;
            hot.first_payload_done = true;
        }
        let pkt = Pkt {
            frame,
            ts,
            from_client,
            flags: f,
            seq: tcp.seq(),
            ack: tcp.ack(),
            len,
            ttl,
            ip_id,
            ecn,
            window: tcp.window(),
            tls: mark,
            payload: payload_hash,
        };
        let notable =
            pkt.is_control() || mark.is_some_and(|m| m.content != tls::content::APPLICATION_DATA);
        let room = self.kept_ordinary < KEPT_ORDINARY_TOTAL;
        let ordinary = !notable && room && usize::from(hot.ordinary_kept) < KEPT_ORDINARY;
        let keep = usize::from(hot.kept) < KEPT_PACKETS
            && (notable || ordinary)
            && log_push(&mut self.log, &pkt, conn_index as u32);
        if keep {
            hot.kept += 1;
            if ordinary {
                hot.ordinary_kept += 1;
                self.kept_ordinary += 1;
            }
        } else if log_ip_id && let Some(id) = ip_id {
            self.ip_ids_not_kept
                .push((conn_index as u32, frame, from_client, id));
        }
    }

    /// The table: the per-packet counts moved into the connections, and the log indexed by
    /// connection.
    #[must_use]
    pub fn finish(self) -> ConnTable {
        let TableBuilder {
            mut conns,
            hot,
            log,
            ip_ids_not_kept,
            packets,
            tcp_packets,
            first_ts,
            last_ts,
            ..
        } = self;
        // Connections whose roles, guessed from the ports, the TLS hellos contradict.
        let mut wrong_roles = Vec::new();
        for (i, (c, h)) in conns.iter_mut().zip(&hot).enumerate() {
            if !c.roles_known && c.syn.is_none() && c.syn_ack.is_none() {
                let sent = |dir: End, hello: u8| h.dirs[dir].bits & hello != 0;
                let reversed =
                    sent(End::Server, SENT_CLIENT_HELLO) || sent(End::Client, SENT_SERVER_HELLO);
                let straight =
                    sent(End::Client, SENT_CLIENT_HELLO) || sent(End::Server, SENT_SERVER_HELLO);
                if reversed != straight {
                    c.roles_known = true;
                    if reversed {
                        wrong_roles.push(i);
                    }
                }
            }
            c.first_ts = h.first_ts;
            c.last_ts = h.last_ts;
            for dir in End::BOTH {
                let d = &h.dirs[dir];
                c.sent[dir].packets = d.packets;
                c.sent[dir].bytes = d.bytes;
                c.sent[dir].largest_segment = d.largest;
                for (sum, &n) in c.sent[dir].ecn_codepoints.iter_mut().zip(&d.ecn) {
                    *sum += u64::from(n);
                }
                if d.ttl_run > 0 {
                    add_ttl_run(c, dir, d);
                }
                if d.bits & HAS_MAC != 0 {
                    c.sent[dir].src_mac = Some(d.mac);
                }
            }
            c.folded = c.sent[0].packets + c.sent[1].packets - u64::from(h.kept);
        }
        // Each connection's places in the log: counted by `Hot::kept`, then one pass over the
        // log in trace order.
        let mut starts = Vec::with_capacity(hot.len() + 1);
        let mut total = 0u32;
        for h in &hot {
            starts.push(total);
            total += u32::from(h.kept);
        }
        starts.push(total);
        drop(hot);
        let mut next: Vec<u32> = starts[..starts.len() - 1].to_vec();
        let mut order = vec![0u32; total as usize];
        for (c, chunk) in log.iter().enumerate() {
            for (k, e) in chunk.entries.iter().enumerate() {
                let at = &mut next[e.conn as usize];
                order[*at as usize] = (c * LOG_CHUNK + k) as u32;
                *at += 1;
            }
        }
        let mut kept = Kept { log, order, starts };
        for (conn, frame, from_client, id) in ip_ids_not_kept {
            conns[conn as usize]
                .rare_mut()
                .ip_ids_not_kept
                .push((frame, from_client, id));
        }
        for i in wrong_roles {
            // The same hash `record` takes (the client's first payload is kept: the first
            // packets of a connection are, and a Client Hello always is).
            let first_client_payload = kept.turn_round(i);
            conns[i].turn_round(first_client_payload);
        }
        ConnTable {
            conns,
            packets,
            tcp_packets,
            first_ts,
            last_ts,
            kept,
        }
    }
}

/// The handshake packets (the client's SYN, the server's SYN/ACK, the client's ACK that
/// completes it) and the first FIN and RST each way, noted on the connection; `ip`: the
/// packet's TTL, IP ID, ECN codepoint and don't-fragment flag.
fn control(
    conn: &mut Conn,
    hot: &mut Hot,
    staged: &Staged,
    (ttl, ip_id, ecn, df): (u8, Option<u16>, u8, bool),
    from_client: bool,
) {
    let Packet {
        frame,
        ts,
        ref layers,
        data,
    } = *staged.p;
    let tcp = &staged.tcp;
    let f = tcp.flags();
    let dir = End::of(from_client);
    let handshake = || Handshake {
        frame,
        ts,
        ttl,
        ip_id,
        dont_fragment: df,
        ecn_flags: f & (flags::ECE | flags::CWR),
        ecn_ip: ecn,
        window: tcp.window(),
        options: OptionSummary::of(tcp),
        isn: tcp.seq(),
        src_mac: src_mac(layers, data),
    };
    if f & flags::SYN != 0 {
        if f & flags::ACK == 0 {
            if from_client && conn.syn.is_none() {
                let hs = handshake();
                conn.syn = Some(hs);
                hot.dirs[End::Server].set_mss(hs.options.mss);
            }
        } else if !from_client && conn.syn_ack.is_none() {
            let hs = handshake();
            conn.syn_ack = Some(hs);
            let c = &mut hot.dirs[End::Client];
            c.set_mss(hs.options.mss);
            if conn.ack3.is_none() {
                c.ack3 = hs.isn.wrapping_add(1);
                c.bits |= WANT_ACK3;
            }
        }
    } else if from_client
        && f & flags::ACK != 0
        && hot.dirs[End::Client].bits & WANT_ACK3 != 0
        && hot.dirs[End::Client].ack3 == tcp.ack()
    {
        conn.ack3 = Some((frame, ts));
        hot.dirs[End::Client].bits &= !WANT_ACK3;
    }
    if f & (flags::FIN | flags::RST) != 0 {
        let close = Close {
            frame,
            ts,
            rst: f & flags::RST != 0,
            ttl,
            seq: tcp.seq(),
        };
        if f & flags::FIN != 0 && conn.sent[dir].first_fin.is_none() {
            conn.sent[dir].first_fin = Some(close);
        }
        if f & flags::RST != 0 && conn.sent[dir].first_rst.is_none() {
            conn.sent[dir].first_rst = Some(close);
        }
    }
}

/// What recognises a segment at the other point: a hash of its payload's first bytes and its
/// length (0: no payload, or fewer bytes captured than the prefix needs).
fn payload_hash(payload: &[u8], len: u32) -> u64 {
    let prefix = &payload[..payload.len().min(PAYLOAD_PREFIX)];
    if len > 0 && prefix.len() == (len as usize).min(PAYLOAD_PREFIX) {
        hash_of(&(len, prefix))
    } else {
        0
    }
}

/// Follows the TLS records that start a payload (at most nine, within this segment only:
/// across segments reassembly would be needed, and a ClientHello or ServerHello starts a
/// segment in practice), noting hellos, the first application data and alerts on the
/// connection; the first record's mark.
// Inlined by hand: left to the compiler it stayed a call per data packet, and analyze of the
// bench pair took 1.27x as long (bench/ab.sh, this function's first version against the
// code it came from); inlined, 1.0x.
#[allow(clippy::inline_always)] // measured, see above
#[inline(always)]
fn tls_records(
    conn: &mut Conn,
    d: &mut HotDir,
    payload: &[u8],
    (frame, from_client): (u64, bool),
) -> Option<TlsMark> {
    let dir = End::of(from_client);
    let mut mark = None;
    for (n, (_, rec)) in TlsRecords::new(payload).enumerate() {
        let m = TlsMark {
            content: rec.content_type,
            handshake: rec.handshake_type,
            alert: rec.alert,
        };
        if n == 0 {
            mark = Some(m);
        }
        // Where the roles are guessed from the ports, a hello from either side is taken:
        // `finish` turns the connection round if the guess was wrong. (`roles_known` is
        // read in the hello arms only: application data must not touch `Conn`.)
        match (rec.content_type, rec.handshake_type) {
            (tls::content::HANDSHAKE, Some(tls::handshake::CLIENT_HELLO))
                if (from_client || !conn.roles_known) && conn.client_hello().is_none() =>
            {
                let hellos = conn.hellos_mut();
                hellos.client_hello = Some(frame);
                hellos.client_random = rec.random(payload).copied();
                d.bits |= SENT_CLIENT_HELLO;
            }
            (tls::content::HANDSHAKE, Some(tls::handshake::SERVER_HELLO))
                if (!from_client || !conn.roles_known) && conn.server_hello().is_none() =>
            {
                let hellos = conn.hellos_mut();
                hellos.server_hello = Some(frame);
                hellos.server_random = rec.random(payload).copied();
                d.bits |= SENT_SERVER_HELLO;
            }
            (tls::content::APPLICATION_DATA, _) if d.bits & APP_SEEN == 0 => {
                conn.sent[dir].app_data = Some(frame);
                d.bits |= APP_SEEN;
            }
            (tls::content::ALERT, _) if conn.alerts().len() < KEPT_FRAMES => {
                conn.rare_mut().alerts.push((frame, from_client, rec.alert));
            }
            _ => {}
        }
        // Records are followed within one segment only; across segments, reassembly
        // would be needed (a ClientHello or ServerHello starts a segment in practice).
        if n >= 8 {
            break;
        }
    }
    mark
}

fn src_mac(layers: &Layers, data: &[u8]) -> Option<[u8; 6]> {
    layers
        .ethernet
        .and_then(|e| data[e.range()].get(6..12)?.try_into().ok())
}

/// Adds a direction's current run of one TTL to its count, or as a new TTL with the run's
/// first frame (runs come in trace order, so TTLs are listed in order of first appearance;
/// one that finds no room is not counted).
/// Adds direction `dir`'s run of one TTL (kept in `d`) to the connection's TTLs.
fn add_ttl_run(conn: &mut Conn, dir: End, d: &HotDir) {
    conn.add_ttls(dir, (d.ttl, d.ttl_run, d.ttl_run_start));
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().expect("four bytes"))
}

fn be128(d: &[u8], at: usize) -> u128 {
    u128::from_be_bytes(d[at..at + 16].try_into().expect("sixteen bytes"))
}

fn hash_of<T: Hash>(v: &T) -> u64 {
    let mut h = FxHasher::default();
    v.hash(&mut h);
    h.finish().max(1)
}
