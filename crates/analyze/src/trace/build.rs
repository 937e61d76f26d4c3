//! Building a capture's connection table: packets staged and run through as a pipeline, their
//! connection found through a flow index it can prefetch, what every packet updates kept in a
//! small record apart (`Hot`), and the kept packets appended to the packet log.

use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;
use rustc_hash::FxHasher;
use tracekit_wire::tcp::{Tcp, flags};
use tracekit_wire::{Endpoint, IpLayer, Layers, TransportKind, dissect};

use super::log::{LOG_CHUNK, regrow};
use super::single::{HELD, PLACES, SINGLE_BYTES, Single, Singles};

mod record;

use super::{Conn, ConnTable, End, Kept};
use record::{Logs, add_ttl_run, record};

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
        let ports = (tcp.src_port(), tcp.dst_port());
        Tuple::at(data, ip.header.start as usize, ip.version != 4, ports)
    }

    /// [`Tuple::of`] a packet whose IP header starts at `at` (IPv6 or not), its ports given.
    #[allow(clippy::inline_always)] // one pipeline with add_batch: see there
    #[inline(always)]
    fn at(data: &[u8], at: usize, v6: bool, (sport, dport): (u16, u16)) -> (Tuple, bool) {
        let (src, dst) = if v6 {
            (be128(data, at + 8), be128(data, at + 24))
        } else {
            (
                u128::from(be32(data, at + 12)),
                u128::from(be32(data, at + 16)),
            )
        };
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
    /// The connections in full, in the order they became full (see `at`).
    pub(super) conns: Vec<Conn>,
    hot: Vec<Hot>,
    /// By position (the order of first packets): a connection in full (its index in `conns`)
    /// or, with the [`SINGLE`] bit, the place of a single (see single.rs; one that became a
    /// connection in full is looked up by `finish`).
    at: Vec<u32>,
    singles: Singles,
    /// Power-of-two length, at most three quarters full (half full, the slots of a port scan's
    /// million connections took 33 MB a trace, not 17).
    slots: Vec<Slot>,
    slot_shift: u32,
    used_slots: usize,
    pub(super) logs: Logs,
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
    /// Whether the packet can open a connection kept as a single (see single.rs): a SYN, FIN
    /// or RST without payload, short enough.
    fn fits_a_single(&self) -> bool {
        let Some(t) = self.ip.transport else {
            return false;
        };
        self.tcp.flags() & (flags::SYN | flags::FIN | flags::RST) != 0
            && t.payload.is_empty()
            && self.ip.announced_payload(self.p.data) <= t.header.len()
            && self.p.data.len() <= SINGLE_BYTES
    }

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
            at: Vec::new(),
            singles: Singles::default(),
            slots: vec![Slot::default(); 1024],
            slot_shift: 32 - 10,
            used_slots: 0,
            logs: Logs::default(),
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
        t.expect(conns);
        t
    }

    /// Connections so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.at.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Makes room for `conns` connections in all, when the tables hold less: for a reader
    /// that extrapolates the count from the part of the trace read so far. (Grown by doubling,
    /// the tables of a port scan, one connection per packet, were copied into fresh memory
    /// again and again: most of their time.)
    /// When the room cannot be had (address space), the tables grow as before.
    pub fn expect(&mut self, conns: usize) {
        if conns > self.at.capacity() {
            regrow(&mut self.conns, conns);
            regrow(&mut self.hot, conns);
            regrow(&mut self.at, conns);
            self.singles.expect(conns.saturating_mul(EXPECTED_SINGLE));
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
    // What a packet goes through here (`parse`, `probe`, `record_at`, `record`, `control`,
    // `Logs::keep`, `log_push`, `Tuple::at`) is inlined by hand: once the table's code was
    // split into them (this redesign) the compiler kept most of them calls, and
    // reading the bench's TLS pair ran 20% more instructions here than before (callgrind);
    // inlined, with the IP fields read at once (`IpLayer::fields`), analyze of the pair took
    // 0.97-1.0x the time of the build before the split (bench/ab.sh), 1.016x without.
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
                        self.prefetch_conn(slot.conn, s);
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
        let s = parse(p)?;
        self.tcp_packets += 1;
        if let Some(PortFilter(port)) = self.filter
            && !s.key.has_port(port)
        {
            return None;
        }
        Some(s)
    }

    /// Starts loading what taking a packet of connection `conn` (a slot's value) will touch.
    fn prefetch_conn(&self, conn: u32, s: &Staged) {
        if conn & SINGLE != 0 {
            self.singles.prefetch(conn & !SINGLE);
        } else {
            tracekit_capture::prefetch_value(&self.hot[conn as usize], 3);
            if s.has_news() {
                tracekit_capture::prefetch_value(&self.conns[conn as usize], 16);
            }
        }
    }

    /// The first slot to probe for a hash (its high bits: FxHash's low bits are weak).
    fn slot_of(&self, hash: u32) -> usize {
        (hash >> self.slot_shift) as usize
    }

    /// The slot that holds a flow, or the free slot where it would go (linear probing).
    #[allow(clippy::inline_always)] // one pipeline with add_batch: see there
    #[inline(always)]
    fn probe(&self, hash: u32, key: &Tuple) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(hash);
        loop {
            let s = self.slots[at];
            if s.hash == 0 || (s.hash == hash && self.is_flow(s.conn, key)) {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// Whether connection `conn` (a slot's value) is the flow `key`.
    fn is_flow(&self, conn: u32, key: &Tuple) -> bool {
        if conn & SINGLE == 0 {
            return self.hot[conn as usize].key == *key;
        }
        self.singles.get(conn & !SINGLE).key() == *key
    }

    /// The newest connection of a flow (a slot's value), and its slot.
    fn find(&self, hash: u32, key: &Tuple) -> Option<(usize, u32)> {
        let at = self.probe(hash, key);
        let s = self.slots[at];
        (s.hash != 0).then_some((at, s.conn))
    }

    /// Points a flow's slot at connection `conn` (a slot's value), taking a free slot for a
    /// new flow.
    fn index(&mut self, hash: u32, key: &Tuple, conn: u32) {
        // (At 2^32 slots the hash has no bit left to spread them: the index fills past three quarters,
        // never whole, since connections stop below 2^32.)
        if (self.used_slots + 1) * 4 > self.slots.len() * 3 && self.slot_shift > 0 {
            self.grow();
        }
        let at = self.probe(hash, key);
        if self.slots[at].hash == 0 {
            self.used_slots += 1;
        }
        self.slots[at] = Slot { hash, conn };
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.slot_shift -= 1;
        let mask = self.slots.len() - 1;
        // Every flow once: each goes to the first free slot from its own.
        for s in old.into_iter().filter(|s| s.hash != 0) {
            let mut at = self.slot_of(s.hash);
            while self.slots[at].hash != 0 {
                at = (at + 1) & mask;
            }
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
            Some((_, c)) if syn_only && self.syn_isn(c).is_none_or(|isn| isn != tcp.seq()) => {
                self.open(s, true, true)
            }
            // A single takes a control packet more, up to what it holds.
            Some((_, c))
                if c & SINGLE != 0
                    && s.fits_a_single()
                    && self.singles.add(c & !SINGLE, &single_of(s, false, false)) =>
            {
                None
            }
            Some((slot, c)) => self.in_full(slot, c),
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
        if let Some(j) = conn {
            let from_client = s.forward == self.hot[j].client_is_lo;
            self.record_at(j, s, from_client);
        }
    }

    /// The ISN of the SYN of connection `conn` (a slot's value), if it has one.
    fn syn_isn(&self, conn: u32) -> Option<u32> {
        if conn & SINGLE == 0 {
            return self.conns[conn as usize].syn.map(|h| h.isn);
        }
        let (c, _) = self.singles.materialize(conn & !SINGLE);
        c.syn.map(|h| h.isn)
    }

    /// A new connection whose client is the packet's source (else its destination), its
    /// roles known or guessed: kept as a single when its packet can be (see single.rs), else
    /// in full, its index in `conns` returned for the packet to be recorded. `None` past 2^32
    /// connections, or 2^31 of either kind (which would take terabytes first).
    fn open(&mut self, s: &Staged, client_is_src: bool, known: bool) -> Option<usize> {
        u32::try_from(self.at.len())
            .ok()
            .filter(|&i| i < u32::MAX)?;
        if s.fits_a_single()
            && self.singles.admits(s.p.ts)
            && let Some(place) = self.singles.push(&single_of(s, client_is_src, known))
        {
            self.at.push(SINGLE | place);
            self.index(s.hash, &s.key, SINGLE | place);
            return None;
        }
        let j = self.new_full(s, client_is_src, known)?;
        self.at.push(j);
        self.index(s.hash, &s.key, j);
        Some(j as usize)
    }

    /// Pushes a new connection in full (see [`new_conn`]); its index.
    fn new_full(&mut self, s: &Staged, client_is_src: bool, known: bool) -> Option<u32> {
        let j = u32::try_from(self.conns.len())
            .ok()
            .filter(|&j| j < SINGLE)?;
        let (conn, hot) = new_conn(s, client_is_src, known);
        self.conns.push(conn);
        self.hot.push(hot);
        Some(j)
    }

    /// Connection `conn` (the value of slot `slot`) in full: a single is made a connection
    /// in full by recording its packets, and takes its place in the slot.
    fn in_full(&mut self, slot: usize, conn: u32) -> Option<usize> {
        if conn & SINGLE == 0 {
            return Some(conn as usize);
        }
        let first = conn & !SINGLE;
        let places: ArrayVec<u32, HELD> = self.singles.chain(first).map(|(p, _)| p).collect();
        let mut made = None;
        for place in places {
            let single = self.singles.get(place);
            let roles = (single.client_is_src, single.roles_known);
            // The packet is copied out of the singles, which stay as they are (see single.rs).
            let data = ArrayVec::<u8, SINGLE_BYTES>::try_from(single.data).ok()?;
            let p = Packet {
                data: &data,
                ..single.packet()
            };
            let s = parse(&p)?;
            let j = match made {
                Some(j) => j,
                None => *made.insert(self.new_full(&s, roles.0, roles.1)?),
            };
            let from_client = s.forward == self.hot[j as usize].client_is_lo;
            self.record_at(j as usize, &s, from_client);
        }
        let j = made?;
        self.slots[slot].conn = j;
        // Its position in `at` is set at the end (see `finish`).
        self.singles.promote(first, j);
        Some(j as usize)
    }

    /// Records a packet in connection `j` (in full), keeping it in the trace's log.
    #[allow(clippy::inline_always)] // one pipeline with add_batch: see there
    #[inline(always)]
    fn record_at(&mut self, j: usize, s: &Staged, from_client: bool) {
        record(
            (&mut self.hot[j], &mut self.conns[j]),
            s,
            from_client,
            (&mut self.logs, j as u32),
        );
    }
    /// The table: the per-packet counts moved into the connections, and the log indexed by
    /// connection.
    #[must_use]
    pub fn finish(self) -> ConnTable {
        let TableBuilder {
            mut conns,
            hot,
            at,
            singles,
            logs:
                Logs {
                    log,
                    ip_ids_not_kept,
                    ..
                },
            packets,
            tcp_packets,
            first_ts,
            last_ts,
            ..
        } = self;
        // Singles that became connections in full: their positions point at them.
        let mut at = at;
        for x in &mut at {
            if *x & SINGLE != 0
                && let Some(j) = singles.promoted(*x & !SINGLE)
            {
                *x = j;
            }
        }
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
            settle(c, h);
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
            at,
            singles,
            packets,
            tcp_packets,
            first_ts,
            last_ts,
            kept,
        }
    }
}

/// Moves what `hot` counted into its connection, as the table ends (also for a single made a
/// connection on demand).
fn settle(c: &mut Conn, h: &Hot) {
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

/// A new connection's record and its per-packet part, from its first packet: its client the
/// packet's source (else its destination), its roles known or guessed.
fn new_conn(s: &Staged, client_is_src: bool, known: bool) -> (Conn, Hot) {
    let (client, server, client_is_lo) = ends(s, client_is_src);
    (
        Conn::new(client, server, known, s.p.ts),
        Hot::new(s.key, client_is_lo, s.p.ts),
    )
}

/// The client and the server of a connection whose first packet is `s`, its client the
/// packet's source (else its destination), and whether the client is the lower end.
fn ends(s: &Staged, client_is_src: bool) -> (Endpoint, Endpoint, bool) {
    // The ends are made only here, for a new connection.
    let (lo, hi) = s.key.ends();
    let (src, dst) = if s.forward { (lo, hi) } else { (hi, lo) };
    let (client, server) = if client_is_src {
        (src, dst)
    } else {
        (dst, src)
    };
    (client, server, client == lo)
}

/// A packet's TCP layer and flow, when it has one.
#[allow(clippy::inline_always)] // one pipeline with add_batch: see there
#[inline(always)]
fn parse<'p, 'a>(p: &'p Packet<'a>) -> Option<Staged<'p, 'a>> {
    let ip = tcp_layer(&p.layers)?;
    let t = ip.transport?;
    let tcp = Tcp::new_checked(&p.data[t.header.range()]).ok()?;
    let (key, forward) = Tuple::of(ip, &tcp, p.data);
    Some(Staged {
        p,
        ip,
        tcp,
        key,
        forward,
        hash: key.hash(),
    })
}

/// Packet `s` as a single's (see single.rs), of a connection whose client is its source or
/// not, its roles known or not.
fn single_of<'a>(s: &Staged<'_, 'a>, client_is_src: bool, roles_known: bool) -> Single<'a> {
    Single {
        frame: s.p.frame,
        ts: s.p.ts,
        link: s.p.layers.link,
        ip_at: u8::try_from(s.ip.header.start).unwrap_or(u8::MAX),
        tcp_at: u8::try_from(s.ip.transport.map_or(0, |t| t.header.start)).unwrap_or(u8::MAX),
        v6: s.ip.version != 4,
        client_is_src,
        roles_known,
        data: s.p.data,
    }
}

/// The tag of a single among connections (`TableBuilder::at`, slots, `ConnTable::at`): the
/// rest of the value is its place.
pub(super) const SINGLE: u32 = PLACES;

/// Bytes of singles expected per connection, for `TableBuilder::expect` (a SYN on Ethernet
/// with its options takes 104).
const EXPECTED_SINGLE: usize = 104;

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().expect("four bytes"))
}

fn be128(d: &[u8], at: usize) -> u128 {
    u128::from_be_bytes(d[at..at + 16].try_into().expect("sixteen bytes"))
}
