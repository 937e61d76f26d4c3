//! One capture's TCP connections, with the facts the cross-trace comparison rests on: the
//! handshake as this point saw it, TTLs, IP IDs, ECN, close events, TLS progress, oversize
//! segments, and the first packets of each connection (for packet-level comparison).
//!
//! Memory grows with the number of connections, not with the trace: each connection keeps at
//! most [`KEPT_PACKETS`] packet summaries (all SYN/FIN/RST and TLS handshake packets among
//! them), and counts the rest.
//!
//! Speed: with tens of thousands of interleaved connections, every packet's connection is a
//! cache miss. [`TableBuilder`] keeps what every packet updates in a small record apart from
//! the connection (`Hot`), finds it through a flow index it can prefetch, and runs packets
//! through as a pipeline so those misses overlap; kept packets are appended to one log, which
//! is indexed by connection at the end and stays their only copy ([`ConnTable::with_packets`]
//! gathers one connection's).

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;
use rustc_hash::FxHasher;
use tracekit_wire::tcp::{OptionSummary, Tcp, flags};
use tracekit_wire::tls::{self, Records as TlsRecords};
use tracekit_wire::{Endpoint, IpLayer, Layers, TransportKind, dissect};

/// Packet summaries kept per connection; further packets are counted.
pub const KEPT_PACKETS: usize = 400;
/// Of which, ordinary data/ACK packets (the rest is reserved for control and TLS handshake).
const KEPT_ORDINARY: usize = 256;
/// Ordinary packets kept over the whole trace (about 56 bytes each): past it, only control and
/// TLS handshake packets are kept, so memory follows the number of connections.
const KEPT_ORDINARY_TOTAL: u64 = 8_000_000;
/// First frames kept per noteworthy fact (oversize segments, odd TTLs).
const KEPT_FRAMES: usize = 8;
/// Distinct TTLs and first IP IDs kept per direction, inline: these are touched for every
/// packet, and a heap vector each would cost a cache miss per packet on big traces.
const KEPT_TTLS: usize = 4;
const KEPT_IP_IDS: usize = 32;
/// Payload bytes hashed to recognise a segment at the other point.
const PAYLOAD_PREFIX: usize = 64;

/// Direction index: 0 = sent by the client, 1 = sent by the server.
pub const FROM_CLIENT: usize = 0;
pub const FROM_SERVER: usize = 1;

/// One packet of a connection, as this point saw it.
#[derive(Debug, Clone, Copy)]
pub struct Pkt {
    pub frame: u64,
    pub ts: i64,
    pub from_client: bool,
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    /// TCP payload length announced by the IP header (not what was captured).
    pub len: u32,
    pub ttl: u8,
    pub ip_id: Option<u16>,
    /// ECN codepoint of the IP header (0 not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    pub ecn: u8,
    pub window: u16,
    /// The first TLS record that starts the payload.
    pub tls: Option<TlsMark>,
    /// Hash of the payload's first bytes and its length (0: no payload).
    pub payload: u64,
}

impl Pkt {
    #[must_use]
    pub fn dir(&self) -> usize {
        if self.from_client {
            FROM_CLIENT
        } else {
            FROM_SERVER
        }
    }
    #[must_use]
    pub fn is_control(&self) -> bool {
        self.flags & (flags::SYN | flags::FIN | flags::RST) != 0
    }
}

/// A TLS record seen at the start of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsMark {
    pub content: u8,
    pub handshake: Option<u8>,
    pub alert: Option<(u8, u8)>,
}

impl TlsMark {
    #[must_use]
    pub fn describe(&self) -> &'static str {
        tls::TlsRecord {
            content_type: self.content,
            version: 0x0303,
            length: 1,
            handshake_type: self.handshake,
            random_at: None,
            alert: self.alert,
        }
        .describe()
    }
}

/// A SYN or SYN/ACK as this point saw it.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    pub frame: u64,
    pub ts: i64,
    pub ttl: u8,
    pub ip_id: Option<u16>,
    pub dont_fragment: bool,
    /// ECE and CWR bits of the TCP header.
    pub ecn_flags: u16,
    pub ecn_ip: u8,
    pub window: u16,
    pub options: OptionSummary,
    pub isn: u32,
    pub src_mac: Option<[u8; 6]>,
}

/// The first FIN or RST one side sent (as seen here).
#[derive(Debug, Clone, Copy)]
pub struct Close {
    pub frame: u64,
    pub ts: i64,
    pub rst: bool,
    pub ttl: u8,
    pub seq: u32,
}

/// Frames kept for a fact, and how many there were.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    pub count: u64,
    pub first: Vec<u64>,
}

impl Frames {
    fn push(&mut self, frame: u64) {
        self.count += 1;
        if self.first.len() < KEPT_FRAMES {
            self.first.push(frame);
        }
    }
}

/// A TTL value seen in one direction, with its first frame and count.
#[derive(Debug, Clone, Copy)]
pub struct TtlSeen {
    pub ttl: u8,
    pub count: u32,
    pub first_frame: u64,
}

/// A TLS alert record: frame, sent by the client, level and description when readable.
pub type AlertSeen = (u64, bool, Option<(u8, u8)>);

/// The facts of a connection that few connections have, out of line: `Conn` is written for
/// every connection (a scan's too), and its fresh memory costs its first touch (these took 112
/// of its 864 bytes).
#[derive(Debug, Clone, Default)]
struct Rare {
    alerts: Vec<AlertSeen>,
    /// Segments longer than the MSS the receiver announced, per sending direction.
    over_mss: [Frames; 2],
    /// Among the first [`KEPT_IP_IDS`] IPv4 packets of a direction, those not kept: (frame,
    /// sent by the client, IP ID). Empty unless the trace's room for ordinary packets ran out;
    /// the kept packets give the rest (see [`ConnRef::ip_ids`]). (Held inline, the IP IDs took
    /// 136 of `Conn`'s 1,000 bytes, for every connection of a scan too.)
    ip_ids_not_kept: Vec<(u64, bool, u16)>,
}

static NO_FRAMES: Frames = Frames {
    count: 0,
    first: Vec::new(),
};

/// One TCP connection in one trace.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: Endpoint,
    pub server: Endpoint,
    /// Whether `client` is known from a SYN, a SYN/ACK or the side that sent a TLS hello;
    /// otherwise guessed from the ports.
    pub roles_known: bool,
    pub syn: Option<Handshake>,
    pub syn_ack: Option<Handshake>,
    /// The client's first ACK after the SYN/ACK (the third packet of the handshake).
    pub ack3: Option<(u64, i64)>,
    pub first_ts: i64,
    pub last_ts: i64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// Packets seen but not kept (the kept ones are the table's: [`ConnTable::with_packets`]).
    pub folded: u64,
    pub client_random: Option<[u8; 32]>,
    pub server_random: Option<[u8; 32]>,
    pub client_hello: Option<u64>,
    pub server_hello: Option<u64>,
    /// First application-data record per direction.
    pub app_data: [Option<u64>; 2],
    pub first_fin: [Option<Close>; 2],
    pub first_rst: [Option<Close>; 2],
    pub largest_segment: [u32; 2],
    pub ttls: [ArrayVec<TtlSeen, KEPT_TTLS>; 2],
    pub src_mac: [Option<[u8; 6]>; 2],
    /// What few connections have (see [`Rare`]).
    rare: Option<Box<Rare>>,
    /// ECN codepoints seen per direction: counts of not-ECT, ECT(1), ECT(0), CE.
    pub ecn_codepoints: [[u64; 4]; 2],
    /// Hash of the client's first payload (to recognise the connection at the other point).
    pub first_client_payload: u64,
}

impl Conn {
    fn new(client: Endpoint, server: Endpoint, roles_known: bool, ts: i64) -> Self {
        Conn {
            client,
            server,
            roles_known,
            syn: None,
            syn_ack: None,
            ack3: None,
            first_ts: ts,
            last_ts: ts,
            packets: [0; 2],
            bytes: [0; 2],
            folded: 0,
            client_random: None,
            server_random: None,
            client_hello: None,
            server_hello: None,
            app_data: [None; 2],
            first_fin: [None; 2],
            first_rst: [None; 2],
            largest_segment: [0; 2],
            ttls: [ArrayVec::new(), ArrayVec::new()],
            src_mac: [None; 2],
            rare: None,
            ecn_codepoints: [[0; 4]; 2],
            first_client_payload: 0,
        }
    }

    /// Swaps the roles of the two ends, for a connection whose roles were guessed wrongly:
    /// every per-direction fact changes sides; `first_client_payload` is the hash of the
    /// client's first payload after that (its kept packets, turned round by
    /// [`Kept::turn_round`], give it). (Only for connections without SYN or SYN/ACK, whose
    /// facts are the ones that follow the direction.)
    fn turn_round(&mut self, first_client_payload: u64) {
        std::mem::swap(&mut self.client, &mut self.server);
        self.packets.swap(0, 1);
        self.bytes.swap(0, 1);
        self.app_data.swap(0, 1);
        self.first_fin.swap(0, 1);
        self.first_rst.swap(0, 1);
        self.largest_segment.swap(0, 1);
        self.ttls.swap(0, 1);
        self.src_mac.swap(0, 1);
        self.ecn_codepoints.swap(0, 1);
        if let Some(rare) = &mut self.rare {
            rare.over_mss.swap(0, 1);
            for a in &mut rare.alerts {
                a.1 = !a.1;
            }
            for id in &mut rare.ip_ids_not_kept {
                id.1 = !id.1;
            }
        }
        self.first_client_payload = first_client_payload;
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    /// TLS alert records, the first [`KEPT_FRAMES`].
    #[must_use]
    pub fn alerts(&self) -> &[AlertSeen] {
        self.rare.as_ref().map_or(&[], |r| &r.alerts)
    }

    /// Segments longer than the MSS the receiver announced, sent in direction `dir`.
    #[must_use]
    pub fn over_mss(&self, dir: usize) -> &Frames {
        self.rare.as_ref().map_or(&NO_FRAMES, |r| &r.over_mss[dir])
    }

    /// Whether a packet between these two ends belongs to this connection's tuple.
    #[must_use]
    pub fn has_ends(&self, a: Endpoint, b: Endpoint) -> bool {
        (self.client == a && self.server == b) || (self.client == b && self.server == a)
    }

    /// Handshake RTT as this point saw it: SYN to the third packet (Wireshark's iRTT).
    #[must_use]
    pub fn rtt(&self) -> Option<i64> {
        Some(self.ack3?.1 - self.syn?.ts)
    }
    /// SYN to SYN/ACK: the time towards the server from this point.
    #[must_use]
    pub fn towards_server(&self) -> Option<i64> {
        Some(self.syn_ack?.ts - self.syn?.ts)
    }
    /// SYN/ACK to the third packet: the time towards the client from this point.
    #[must_use]
    pub fn towards_client(&self) -> Option<i64> {
        Some(self.ack3?.1 - self.syn_ack?.ts)
    }
    /// The first FIN or RST sent by one side.
    #[must_use]
    pub fn first_close(&self, dir: usize) -> Option<Close> {
        match (self.first_fin[dir], self.first_rst[dir]) {
            (Some(f), Some(r)) => Some(if r.frame < f.frame { r } else { f }),
            (f, r) => f.or(r),
        }
    }
    /// The MSS the receiver of direction `dir` announced.
    #[must_use]
    pub fn mss_for(&self, dir: usize) -> Option<u16> {
        let receiver = if dir == FROM_CLIENT {
            self.syn_ack
        } else {
            self.syn
        };
        receiver?.options.mss
    }
    /// The initial sequence number of one side.
    #[must_use]
    pub fn isn(&self, dir: usize) -> Option<u32> {
        if dir == FROM_CLIENT {
            self.syn.map(|h| h.isn)
        } else {
            self.syn_ack.map(|h| h.isn)
        }
    }
    /// Whether the connection failed as this capture saw it (see [`Conn::failure`]).
    #[must_use]
    pub fn failed(&self) -> bool {
        self.failure().is_some()
    }

    /// Why the connection failed as this capture saw it, or `None` (docs/analyze-json.md,
    /// `failed`). A RST from an end that had sent its FIN before it is a normal, abortive close
    /// (its socket is gone and it answers what arrived after its FIN, such as the peer's
    /// close_notify), not a failure.
    #[must_use]
    pub fn failure(&self) -> Option<Failure> {
        if self.syn.is_some() && self.syn_ack.is_none() {
            return Some(Failure::TcpHandshake);
        }
        if self.client_hello.is_some()
            && self.app_data[FROM_SERVER].is_none()
            && self.app_data[FROM_CLIENT].is_none()
        {
            return Some(Failure::TlsHandshake);
        }
        let cut = (0..2).any(|d| {
            self.first_rst[d]
                .is_some_and(|rst| self.first_fin[d].is_none_or(|fin| fin.frame > rst.frame))
        });
        if cut {
            return Some(Failure::Reset);
        }
        if self.client_hello.is_none()
            && self.bytes[FROM_CLIENT] > 0
            && self.bytes[FROM_SERVER] == 0
        {
            return Some(Failure::NoAnswer);
        }
        None
    }

    /// The end that reset the connection after its own FIN (a normal, abortive close), if any.
    #[must_use]
    pub fn abortive_close(&self) -> Option<usize> {
        (0..2).find(|&d| {
            matches!((self.first_fin[d], self.first_rst[d]), (Some(fin), Some(rst)) if fin.frame < rst.frame)
        })
    }
}

/// Why a connection failed, as one capture saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A SYN without a SYN/ACK.
    TcpHandshake,
    /// A TLS ClientHello, and no application data either way.
    TlsHandshake,
    /// A RST from an end that had not closed (sent its FIN) before it.
    Reset,
    /// Not TLS: the client sent data and the server none.
    NoAnswer,
}

/// A connection with its kept packets (in trace order), as the comparison reads it: the
/// packets are gathered from the table's log into a buffer of the caller's, so that each
/// connection's are one slice (the comparison walks them dozens of times) without the table
/// holding a second copy of every packet.
#[derive(Debug, Clone, Copy)]
pub struct ConnRef<'a> {
    pub conn: &'a Conn,
    pub pkts: &'a [Pkt],
}

impl std::ops::Deref for ConnRef<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl ConnRef<'_> {
    /// The IP IDs of the first [`KEPT_IP_IDS`] IPv4 packets of a direction, in trace order,
    /// for telling their behaviour: those of the packets kept, merged with those not kept.
    #[must_use]
    pub fn ip_ids(&self, dir: usize) -> ArrayVec<u16, KEPT_IP_IDS> {
        let from_client = dir == FROM_CLIENT;
        let mut kept = self
            .pkts
            .iter()
            .filter(|p| p.from_client == from_client)
            .filter_map(|p| Some((p.frame, p.ip_id?)))
            .peekable();
        let mut not_kept = self
            .conn
            .rare
            .iter()
            .flat_map(|r| &r.ip_ids_not_kept)
            .filter(|&&(_, c, _)| c == from_client)
            .map(|&(frame, _, id)| (frame, id))
            .peekable();
        let mut ids = ArrayVec::new();
        while !ids.is_full() {
            let next = match (kept.peek(), not_kept.peek()) {
                (Some(k), Some(n)) if n.0 < k.0 => not_kept.next(),
                (Some(_), _) => kept.next(),
                (None, _) => not_kept.next(),
            };
            let Some((_, id)) = next else { break };
            ids.push(id);
        }
        ids
    }
}

/// The connections of one trace, read by a [`TableBuilder`].
#[derive(Debug, Default)]
pub struct ConnTable {
    pub conns: Vec<Conn>,
    pub packets: u64,
    pub tcp_packets: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    kept: Kept,
}

/// The kept packets of all connections: the log, in trace order, and each connection's places
/// in it. (Sorted into a vector per connection, every packet took memory twice, and fresh
/// memory costs its first touch: 2 ms per MB on this project's machines, as the host backs it.)
#[derive(Default)]
struct Kept {
    log: Vec<LogChunk>,
    /// Log places by connection, each connection's in trace order: connection `i`'s are
    /// `order[starts[i]..starts[i + 1]]`.
    order: Vec<u32>,
    starts: Vec<u32>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("packets", &self.order.len())
            .finish_non_exhaustive()
    }
}

/// Log places ahead whose packet is prefetched while a connection's are gathered.
const GATHER_AHEAD: usize = 16;

impl Kept {
    fn places(&self, conn: usize) -> &[u32] {
        match (self.starts.get(conn), self.starts.get(conn + 1)) {
            (Some(&a), Some(&b)) => &self.order[a as usize..b as usize],
            _ => &[],
        }
    }
    /// The chunk of a place, and the entry's index in it.
    fn chunk(&self, place: u32) -> (&LogChunk, usize) {
        let place = place as usize;
        (&self.log[place / LOG_CHUNK], place % LOG_CHUNK)
    }
    fn entry(&self, place: u32) -> &Logged {
        let (chunk, k) = self.chunk(place);
        &chunk.entries[k]
    }
    fn pkt(&self, place: u32) -> Pkt {
        let (chunk, k) = self.chunk(place);
        chunk.entries[k].pkt(chunk.base)
    }
    /// Connection `conn`'s kept packets, each gathered into `buf` (emptied first).
    fn gather(&self, conn: usize, buf: &mut Vec<Pkt>) {
        buf.clear();
        let places = self.places(conn);
        buf.reserve(places.len());
        for (k, &place) in places.iter().enumerate() {
            if let Some(&ahead) = places.get(k + GATHER_AHEAD) {
                // An entry may span two lines.
                tracekit_capture::prefetch_value(self.entry(ahead), 2);
            }
            buf.push(self.pkt(place));
        }
    }
    /// Turns connection `conn`'s kept packets round (client for server); the hash of the
    /// client's first payload among them after that (0: none).
    fn turn_round(&mut self, conn: usize) -> u64 {
        let Kept { log, order, starts } = self;
        let (Some(&from), Some(&to)) = (starts.get(conn), starts.get(conn + 1)) else {
            return 0;
        };
        let mut first_client_payload = 0;
        for &place in &order[from as usize..to as usize] {
            let place = place as usize;
            let p = &mut log[place / LOG_CHUNK].entries[place % LOG_CHUNK];
            p.bits ^= LOGGED_FROM_CLIENT;
            if p.bits & LOGGED_FROM_CLIENT != 0 && p.payload != 0 && first_client_payload == 0 {
                first_client_payload = p.payload;
            }
        }
        first_client_payload
    }
}

impl ConnTable {
    /// Connection `i` with its kept packets, gathered into `buf` (its earlier contents are
    /// dropped; a buffer used again costs no fresh memory).
    #[must_use]
    pub fn with_packets<'a>(&'a self, i: usize, buf: &'a mut Vec<Pkt>) -> ConnRef<'a> {
        self.kept.gather(i, buf);
        ConnRef {
            conn: &self.conns[i],
            pkts: buf,
        }
    }

    /// Starts loading the first packets [`ConnTable::with_packets`] will gather for connection
    /// `i` (each is a cache miss, and within a connection only the later ones are prefetched).
    pub fn prefetch_packets(&self, i: usize) {
        for &place in self.kept.places(i).iter().take(GATHER_AHEAD) {
            tracekit_capture::prefetch_value(self.kept.entry(place), 2);
        }
    }

    /// Connection `i`'s kept packets, in trace order.
    #[must_use]
    pub fn packets_of(&self, i: usize) -> Vec<Pkt> {
        let mut buf = Vec::new();
        self.kept.gather(i, &mut buf);
        buf
    }
}

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

    /// FxHash of the words (never 0: that marks an empty slot).
    fn hash(&self) -> u64 {
        let mut h = FxHasher::default();
        for w in [self.lo[0], self.lo[1], self.hi[0], self.hi[1]] {
            h.write_u64(w);
        }
        h.write_u64(u64::from(self.ports) << 1 | u64::from(self.v6));
        h.finish().max(1)
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
    hash: u64,
    conn: u32,
}

/// A kept packet, in trace order, with its connection; indexed by connection by
/// [`TableBuilder::finish`]. (Appending costs no cache miss, pushing to each connection's own
/// vector cost one per packet.) A [`Pkt`] in 48 bytes instead of 64: the frame as an offset
/// from its chunk's first, the options and the direction as bits. The log is most of analyze's
/// memory, and fresh memory costs its first touch.
#[derive(Debug, Clone, Copy)]
struct Logged {
    ts: i64,
    payload: u64,
    conn: u32,
    /// The frame, less its chunk's `base`.
    frame: u32,
    seq: u32,
    ack: u32,
    len: u32,
    flags: u16,
    window: u16,
    ip_id: u16,
    ttl: u8,
    /// `LOGGED_*` bits, and the ECN codepoint at `LOGGED_ECN_SHIFT`.
    bits: u8,
    /// TLS content type, handshake type, alert level and description.
    tls: [u8; 4],
}

const LOGGED_FROM_CLIENT: u8 = 1;
const LOGGED_IP_ID: u8 = 2;
const LOGGED_ECN_SHIFT: u8 = 2;
const LOGGED_TLS: u8 = 16;
const LOGGED_HANDSHAKE: u8 = 32;
const LOGGED_ALERT: u8 = 64;

impl Logged {
    /// `pkt` of connection `conn`, in a chunk whose frames start at `base` (at most
    /// `u32::MAX` below `pkt.frame`).
    fn new(pkt: &Pkt, conn: u32, base: u64) -> Self {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        let tls = pkt.tls.unwrap_or(TlsMark {
            content: 0,
            handshake: None,
            alert: None,
        });
        let (level, description) = tls.alert.unwrap_or_default();
        Logged {
            ts: pkt.ts,
            payload: pkt.payload,
            conn,
            frame: (pkt.frame - base) as u32,
            seq: pkt.seq,
            ack: pkt.ack,
            len: pkt.len,
            flags: pkt.flags,
            window: pkt.window,
            ip_id: pkt.ip_id.unwrap_or(0),
            ttl: pkt.ttl,
            bits: bit(pkt.from_client, LOGGED_FROM_CLIENT)
                | bit(pkt.ip_id.is_some(), LOGGED_IP_ID)
                | (pkt.ecn & 3) << LOGGED_ECN_SHIFT
                | bit(pkt.tls.is_some(), LOGGED_TLS)
                | bit(tls.handshake.is_some(), LOGGED_HANDSHAKE)
                | bit(tls.alert.is_some(), LOGGED_ALERT),
            tls: [tls.content, tls.handshake.unwrap_or(0), level, description],
        }
    }

    /// The packet, in a chunk whose frames start at `base`.
    fn pkt(&self, base: u64) -> Pkt {
        let has = |b: u8| self.bits & b != 0;
        Pkt {
            frame: base + u64::from(self.frame),
            ts: self.ts,
            from_client: has(LOGGED_FROM_CLIENT),
            flags: self.flags,
            seq: self.seq,
            ack: self.ack,
            len: self.len,
            ttl: self.ttl,
            ip_id: has(LOGGED_IP_ID).then_some(self.ip_id),
            ecn: (self.bits >> LOGGED_ECN_SHIFT) & 3,
            window: self.window,
            tls: has(LOGGED_TLS).then_some(TlsMark {
                content: self.tls[0],
                handshake: has(LOGGED_HANDSHAKE).then_some(self.tls[1]),
                alert: has(LOGGED_ALERT).then_some((self.tls[2], self.tls[3])),
            }),
            payload: self.payload,
        }
    }
}

/// Log entries whose frames lie within `u32::MAX` of the chunk's first.
#[derive(Debug)]
struct LogChunk {
    base: u64,
    entries: Vec<Logged>,
}

/// Log entries per chunk (the log grows without copying; a chunk may hold fewer, when frames
/// run past its `base` + `u32::MAX`).
const LOG_CHUNK: usize = 1 << 16;
/// Chunks at most: places are `u32`. Packets past them are counted, not kept.
const LOG_CHUNKS: usize = (u32::MAX as usize + 1) / LOG_CHUNK;

/// Appends packet `pkt` of connection `conn` to the log, in a new chunk when the last is full
/// or its frames would run past its `u32` offsets (or back before its first); false when the
/// log has no room left.
fn log_push(log: &mut Vec<LogChunk>, pkt: &Pkt, conn: u32) -> bool {
    let fits = |c: &LogChunk| {
        c.entries.len() < LOG_CHUNK
            && pkt
                .frame
                .checked_sub(c.base)
                .is_some_and(|d| u32::try_from(d).is_ok())
    };
    if !log.last().is_some_and(fits) {
        if log.len() == LOG_CHUNKS {
            return false;
        }
        log.push(LogChunk {
            base: pkt.frame,
            entries: Vec::with_capacity(LOG_CHUNK),
        });
    }
    let chunk = log.last_mut().expect("pushed above");
    chunk.entries.push(Logged::new(pkt, conn, chunk.base));
    true
}

/// Gives `v` room for `cap` elements in a fresh block, when it can be had, and moves the
/// elements over. (Not `Vec::try_reserve`: a reallocation copies the whole old block, its unused
/// room included, and a generous earlier reservation, never touched until then, was copied into
/// fresh pages of the new one: 145 MB per trace of the bench's 1 GB pair, a fifth of its time.)
fn regrow<T>(v: &mut Vec<T>, cap: usize) {
    let mut fresh = Vec::new();
    if fresh.try_reserve_exact(cap).is_ok() {
        fresh.append(v);
        *v = fresh;
    }
}

/// Reads one trace's packets into a [`ConnTable`].
///
/// The flow index is a hand-written open-addressing table rather than a `HashMap`: its slots
/// can be prefetched by hash a batch ahead, which is where the time of a trace with many
/// connections went (one dependent cache miss per packet).
#[derive(Debug)]
pub struct TableBuilder {
    conns: Vec<Conn>,
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
    kept_ordinary: u64,
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
    hash: u64,
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
            slot_shift: 64 - 10,
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
    fn slot_of(&self, hash: u64) -> usize {
        (hash >> self.slot_shift) as usize
    }

    /// The slot that holds a flow, or the free slot where it would go (linear probing).
    fn probe(&self, hash: u64, key: &Tuple) -> usize {
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
    fn find(&self, hash: u64, key: &Tuple) -> Option<usize> {
        let s = self.slots[self.probe(hash, key)];
        (s.hash != 0).then_some(s.conn as usize)
    }

    /// Points a flow's slot at connection `conn`, taking a free slot for a new flow.
    fn index(&mut self, hash: u64, conn: u32) {
        if (self.used_slots + 1) * 2 > self.slots.len() {
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
        let dir = if from_client {
            FROM_CLIENT
        } else {
            FROM_SERVER
        };
        let at = ip.header.start as usize;
        let t = ip.transport.expect("a TCP layer");
        let (ip_id, ecn, df, announced) = if ip.version == 4 {
            let total = usize::from(be16(data, at + 2));
            (
                Some(be16(data, at + 4)),
                data[at + 1] & 3,
                data[at + 6] & 0x40 != 0,
                total.saturating_sub(ip.header.len()),
            )
        } else {
            let plen = usize::from(be16(data, at + 4)) + 40;
            (
                None,
                ((data[at] & 0x0f) << 4 | data[at + 1] >> 4) & 3,
                false,
                plen.saturating_sub(ip.header.len()),
            )
        };
        let len = announced.saturating_sub(t.header.len()) as u32;
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
            conn.ecn_codepoints[dir][codepoint] += u64::from(u32::MAX);
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
                add_ttl_run(&mut conn.ttls[dir], d);
            }
            d.ttl = ttl;
            d.ttl_run = 1;
            d.ttl_run_start = frame;
        }
        let log_ip_id = ip_id.is_some() && usize::from(d.ip_ids) < KEPT_IP_IDS;
        d.ip_ids += u8::from(log_ip_id);

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
                    hot.dirs[FROM_SERVER].set_mss(hs.options.mss);
                }
            } else if !from_client && conn.syn_ack.is_none() {
                let hs = handshake();
                conn.syn_ack = Some(hs);
                let c = &mut hot.dirs[FROM_CLIENT];
                c.set_mss(hs.options.mss);
                if conn.ack3.is_none() {
                    c.ack3 = hs.isn.wrapping_add(1);
                    c.bits |= WANT_ACK3;
                }
            }
        } else if from_client
            && f & flags::ACK != 0
            && hot.dirs[FROM_CLIENT].bits & WANT_ACK3 != 0
            && hot.dirs[FROM_CLIENT].ack3 == tcp.ack()
        {
            conn.ack3 = Some((frame, ts));
            hot.dirs[FROM_CLIENT].bits &= !WANT_ACK3;
        }
        if f & (flags::FIN | flags::RST) != 0 {
            let close = Close {
                frame,
                ts,
                rst: f & flags::RST != 0,
                ttl,
                seq: tcp.seq(),
            };
            if f & flags::FIN != 0 && conn.first_fin[dir].is_none() {
                conn.first_fin[dir] = Some(close);
            }
            if f & flags::RST != 0 && conn.first_rst[dir].is_none() {
                conn.first_rst[dir] = Some(close);
            }
        }
        let d = &mut hot.dirs[dir];
        if d.bits & HAS_MSS != 0 && len > u32::from(d.mss) {
            conn.rare_mut().over_mss[dir].push(frame);
        }

        let mut mark = None;
        if len > 0 {
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
                        if (from_client || !conn.roles_known) && conn.client_hello.is_none() =>
                    {
                        conn.client_hello = Some(frame);
                        conn.client_random = rec.random(payload).copied();
                        d.bits |= SENT_CLIENT_HELLO;
                    }
                    (tls::content::HANDSHAKE, Some(tls::handshake::SERVER_HELLO))
                        if (!from_client || !conn.roles_known) && conn.server_hello.is_none() =>
                    {
                        conn.server_hello = Some(frame);
                        conn.server_random = rec.random(payload).copied();
                        d.bits |= SENT_SERVER_HELLO;
                    }
                    (tls::content::APPLICATION_DATA, _) if d.bits & APP_SEEN == 0 => {
                        conn.app_data[dir] = Some(frame);
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
        }
        let prefix = &payload[..payload.len().min(PAYLOAD_PREFIX)];
        let payload_hash = if len > 0 && prefix.len() == (len as usize).min(PAYLOAD_PREFIX) {
            hash_of(&(len, prefix))
        } else {
            0
        };
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
                let sent = |dir: usize, hello: u8| h.dirs[dir].bits & hello != 0;
                let reversed =
                    sent(FROM_SERVER, SENT_CLIENT_HELLO) || sent(FROM_CLIENT, SENT_SERVER_HELLO);
                let straight =
                    sent(FROM_CLIENT, SENT_CLIENT_HELLO) || sent(FROM_SERVER, SENT_SERVER_HELLO);
                if reversed != straight {
                    c.roles_known = true;
                    if reversed {
                        wrong_roles.push(i);
                    }
                }
            }
            c.first_ts = h.first_ts;
            c.last_ts = h.last_ts;
            for (dir, d) in h.dirs.iter().enumerate() {
                c.packets[dir] = d.packets;
                c.bytes[dir] = d.bytes;
                c.largest_segment[dir] = d.largest;
                for (sum, &n) in c.ecn_codepoints[dir].iter_mut().zip(&d.ecn) {
                    *sum += u64::from(n);
                }
                if d.ttl_run > 0 {
                    add_ttl_run(&mut c.ttls[dir], d);
                }
                if d.bits & HAS_MAC != 0 {
                    c.src_mac[dir] = Some(d.mac);
                }
            }
            c.folded = c.packets[0] + c.packets[1] - u64::from(h.kept);
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

fn src_mac(layers: &Layers, data: &[u8]) -> Option<[u8; 6]> {
    layers
        .ethernet
        .and_then(|e| data[e.range()].get(6..12)?.try_into().ok())
}

/// Adds a direction's current run of one TTL to its count, or as a new TTL with the run's
/// first frame (runs come in trace order, so TTLs are listed in order of first appearance;
/// one that finds no room is not counted).
fn add_ttl_run(ttls: &mut ArrayVec<TtlSeen, KEPT_TTLS>, d: &HotDir) {
    if let Some(s) = ttls.iter_mut().find(|s| s.ttl == d.ttl) {
        s.count = s.count.saturating_add(d.ttl_run);
    } else if !ttls.is_full() {
        ttls.push(TtlSeen {
            ttl: d.ttl,
            count: d.ttl_run,
            first_frame: d.ttl_run_start,
        });
    }
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
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

/// Initial TTL guess: the nearest of 32, 64, 128, 255 at or above the observed value.
#[must_use]
pub fn initial_ttl(ttl: u8) -> u8 {
    [32, 64, 128, 255]
        .into_iter()
        .find(|&i| ttl <= i)
        .unwrap_or(255)
}

/// Routers between the sender and the capture point, from the initial TTL guess.
#[must_use]
pub fn hops(ttl: u8) -> u8 {
    initial_ttl(ttl) - ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracekit_testutil::packets::{segment, with_payload};

    /// A connection that completed its handshake and carried a TLS exchange both ways.
    fn served() -> Conn {
        let end = |a: [u8; 4], port| Endpoint {
            addr: IpAddr::from(a),
            port,
        };
        let mut c = Conn::new(
            end([192, 0, 2, 10], 53695),
            end([198, 51, 100, 20], 443),
            true,
            0,
        );
        let hs = Handshake {
            frame: 1,
            ts: 0,
            ttl: 64,
            ip_id: None,
            dont_fragment: true,
            ecn_flags: 0,
            ecn_ip: 0,
            window: 0,
            options: tracekit_wire::tcp::OptionSummary::default(),
            isn: 0,
            src_mac: None,
        };
        c.syn = Some(hs);
        c.syn_ack = Some(Handshake { frame: 2, ..hs });
        c.client_hello = Some(4);
        c.app_data = [Some(8), Some(9)];
        c.bytes = [600, 3000];
        c
    }

    fn close(frame: u64, rst: bool) -> Close {
        Close {
            frame,
            ts: 0,
            rst,
            ttl: 64,
            seq: 0,
        }
    }

    #[test]
    fn a_rst_after_the_same_ends_fin_is_an_abortive_close_not_a_failure() {
        let mut c = served();
        c.first_fin[FROM_CLIENT] = Some(close(20, false));
        c.first_rst[FROM_CLIENT] = Some(close(22, true));
        c.first_fin[FROM_SERVER] = Some(close(23, false));
        assert_eq!(c.failure(), None);
        assert_eq!(c.abortive_close(), Some(FROM_CLIENT));
        // The nearest miss: the RST before that end's FIN (or without one) cut the exchange.
        c.first_rst[FROM_CLIENT] = Some(close(19, true));
        assert_eq!(c.failure(), Some(Failure::Reset));
        assert_eq!(c.abortive_close(), None);
        c.first_fin[FROM_CLIENT] = None;
        assert_eq!(c.failure(), Some(Failure::Reset));
    }

    #[test]
    fn each_way_to_fail_and_its_nearest_miss() {
        let mut c = served();
        assert_eq!(c.failure(), None);
        c.syn_ack = None;
        assert_eq!(c.failure(), Some(Failure::TcpHandshake));
        let mut c = served();
        c.app_data = [None, None];
        assert_eq!(c.failure(), Some(Failure::TlsHandshake));
        c.app_data = [None, Some(9)];
        assert_eq!(
            c.failure(),
            None,
            "application data one way: the handshake completed"
        );
        let mut c = served();
        c.client_hello = None;
        c.bytes = [600, 0];
        assert_eq!(c.failure(), Some(Failure::NoAnswer));
        c.bytes = [0, 0];
        assert_eq!(
            c.failure(),
            None,
            "no data either way and no reset: nothing failed"
        );
    }

    #[test]
    fn initial_ttl_is_the_nearest_common_value_at_or_above() {
        for (ttl, init, h) in [
            (1, 32, 31),
            (32, 32, 0),
            (33, 64, 31),
            (61, 64, 3),
            (64, 64, 0),
            (125, 128, 3),
            (128, 128, 0),
            (129, 255, 126),
            (247, 255, 8),
            (255, 255, 0),
        ] {
            assert_eq!(initial_ttl(ttl), init, "{ttl}");
            assert_eq!(hops(ttl), h, "{ttl}");
        }
    }

    /// A Client Hello record of 50 bytes whose random value is 32 bytes of `fill`.
    fn client_hello(fill: u8) -> Vec<u8> {
        let mut r = vec![0x16, 3, 1, 0, 45, 1, 0, 0, 41, 3, 3];
        r.extend_from_slice(&[fill; 32]);
        r.resize(50, 0);
        r
    }

    fn syn(isn: u32, flags: u8) -> Vec<u8> {
        segment(40000, false, 64, 0, isn, flags)
    }

    #[test]
    fn room_that_cannot_be_had_is_not_taken_and_room_that_can_changes_nothing() {
        let mut b = TableBuilder::new(None);
        b.add(1, 0, 1, &syn(1000, 0x02));
        b.expect(usize::MAX / 2);
        b.expect(100_000);
        assert!(b.conns.capacity() >= 100_000);
        b.add(2, 1, 1, &syn(1000, 0x10));
        b.add(3, 2, 1, &syn(5000, 0x02));
        assert_eq!(b.len(), 2);
        let t = b.finish();
        assert_eq!(t.conns.len(), 2);
        assert_eq!(t.conns[0].packets[FROM_CLIENT], 2);
    }

    #[test]
    fn a_new_syn_on_a_used_tuple_starts_a_new_connection_and_a_repeated_one_does_not() {
        let mut b = TableBuilder::new(None);
        b.add(1, 0, 1, &syn(1000, 0x02));
        b.add(2, 1, 1, &syn(1000, 0x02)); // retransmitted SYN
        b.add(3, 2, 1, &syn(5000, 0x02)); // port reuse
        b.add(4, 3, 1, &syn(5000, 0x10)); // an ACK of the second
        // Truncated and garbage packets are counted, never a panic.
        for n in 0..54 {
            b.add(10 + n as u64, 4, 1, &syn(1, 0x02)[..n]);
        }
        b.add(100, 5, 1, &[0xff; 60]);
        let t = b.finish();
        assert_eq!(t.conns.len(), 2);
        assert_eq!(t.conns[0].packets[FROM_CLIENT], 2);
        assert_eq!(t.conns[1].syn.unwrap().isn, 5000);
        assert_eq!(t.conns[1].packets[FROM_CLIENT], 2);
        assert_eq!(t.packets, 4 + 54 + 1);
    }

    #[test]
    fn mid_connection_roles_take_the_lower_port_and_on_equal_ports_the_lower_end_for_the_server() {
        use tracekit_testutil::packets::segment;
        let ends = |t: &ConnTable| (t.conns[0].client.to_string(), t.conns[0].server.to_string());
        for back in [false, true] {
            // 192.0.2.10:51000 <-> 198.51.100.20:443, first seen either way, no handshake.
            let mut b = TableBuilder::new(None);
            b.add(1, 0, 1, &segment(51000, back, 64, 0, 7, 0x10));
            let t = b.finish();
            assert_eq!(
                ends(&t),
                ("192.0.2.10:51000".into(), "198.51.100.20:443".into())
            );
            assert_eq!(t.conns[0].packets[usize::from(back)], 1);
            // Both ends on port 443: the lower address is taken for the server.
            let mut b = TableBuilder::new(None);
            b.add(1, 0, 1, &segment(443, back, 64, 0, 7, 0x10));
            let t = b.finish();
            assert_eq!(
                ends(&t),
                ("198.51.100.20:443".into(), "192.0.2.10:443".into())
            );
            assert_eq!(t.conns[0].packets[usize::from(!back)], 1);
        }
    }

    #[test]
    fn per_packet_counts_kept_apart_reach_the_connection_in_full() {
        let mut b = TableBuilder::new(None);
        let mut frame = 0;
        let mut add = |b: &mut TableBuilder, pkt: Vec<u8>| {
            frame += 1;
            b.add(frame, frame as i64, 1, &pkt);
        };
        // TTL runs A A B A C D E (frames 2..8): four fit, in order of first appearance, with
        // the frame each was first seen in; E finds no room.
        add(&mut b, segment(40000, false, 64, 0, 1000, 0x02));
        for (ttl, ecn) in [
            (60, 0),
            (60, 2),
            (59, 2),
            (60, 3),
            (58, 1),
            (57, 0),
            (56, 0),
        ] {
            add(&mut b, segment(40000, false, ttl, ecn, 1001, 0x10));
        }
        add(&mut b, segment(40000, true, 128, 0, 7000, 0x12));
        // Several thousand flows (the flow index grows many times), each found again.
        for port in 1000..6000 {
            add(&mut b, segment(port, false, 64, 0, 1, 0x02));
        }
        for port in 1000..6000 {
            add(&mut b, segment(port, true, 64, 0, 9, 0x12));
        }
        let t = b.finish();
        assert_eq!(t.conns.len(), 1 + 5000);
        let mut buf = Vec::new();
        let c = &t.with_packets(0, &mut buf);
        let ttls: Vec<_> = c.ttls[FROM_CLIENT]
            .iter()
            .map(|s| (s.ttl, s.count, s.first_frame))
            .collect();
        assert_eq!(ttls, [(64, 1, 1), (60, 3, 2), (59, 1, 4), (58, 1, 6)]);
        assert_eq!(c.ttls[FROM_SERVER].as_slice().len(), 1);
        assert_eq!(c.ecn_codepoints[FROM_CLIENT], [4, 1, 2, 1]);
        assert_eq!(c.packets, [8, 1]);
        assert_eq!(c.ip_ids(FROM_CLIENT).as_slice(), [40000; 8]);
        assert_eq!(c.src_mac[FROM_SERVER], Some([0, 0x1c, 0x7f, 0, 0, 1]));
        assert_eq!(c.pkts.len(), 9);
        assert_eq!((c.first_ts, c.last_ts), (1, 9));
        for (n, c) in t.conns[1..].iter().enumerate() {
            assert_eq!(c.client.port, 1000 + n as u16);
            assert_eq!(c.packets, [1, 1]);
            assert_eq!(c.syn_ack.unwrap().isn, 9);
        }
    }

    /// A segment of the connection from port 40000 with IP ID `id` and sequence number `seq`.
    fn with_id(back: bool, id: u16, seq: u32, flags: u8) -> Vec<u8> {
        let mut p = segment(40000, back, 64, 0, seq, flags);
        p[18..20].copy_from_slice(&id.to_be_bytes());
        p
    }

    /// The log's 48-byte entries give back every field of a packet, all options set or not.
    #[test]
    fn logged_packets_come_back_as_they_went_in() {
        let base = 7_000_000_000;
        let plain = Pkt {
            frame: base,
            ts: -5,
            from_client: false,
            flags: 0x1ff,
            seq: u32::MAX,
            ack: 1,
            len: 65_535,
            ttl: 255,
            ip_id: None,
            ecn: 0,
            window: u16::MAX,
            tls: None,
            payload: 0,
        };
        let full = Pkt {
            frame: base + u64::from(u32::MAX),
            ts: i64::MAX,
            from_client: true,
            ip_id: Some(0),
            ecn: 3,
            tls: Some(TlsMark {
                content: 21,
                handshake: Some(0),
                alert: Some((2, 40)),
            }),
            payload: u64::MAX,
            ..plain
        };
        let partial = Pkt {
            ecn: 2,
            tls: Some(TlsMark {
                content: 22,
                handshake: Some(2),
                alert: None,
            }),
            ..plain
        };
        for p in [plain, full, partial] {
            let back = Logged::new(&p, 3, base).pkt(base);
            assert_eq!(format!("{back:?}"), format!("{p:?}"));
        }
    }

    /// Frames further apart than a chunk's `u32` offsets reach, or going back before a chunk's
    /// first (a caller out of order), start a new chunk: every packet comes back with its own
    /// frame number.
    #[test]
    fn frames_past_a_chunks_reach_start_a_new_chunk() {
        let mut b = TableBuilder::new(None);
        let frames = [
            1,
            2,
            1 + (1 << 33),
            3 + (1 << 33),
            u64::from(u32::MAX) << 4,
            5,
        ];
        for (n, &frame) in frames.iter().enumerate() {
            let flags = if n == 0 { 0x02 } else { 0x10 };
            b.add(frame, n as i64, 1, &segment(40000, false, 64, 0, 1, flags));
        }
        let t = b.finish();
        assert_eq!(t.kept.log.len(), 4);
        let got: Vec<u64> = t.packets_of(0).iter().map(|p| p.frame).collect();
        assert_eq!(got, frames);
    }

    /// Connections interleaved, one of them past `KEPT_ORDINARY` ordinary packets: each keeps
    /// its own packets in trace order, and its first `KEPT_IP_IDS` IP IDs per direction, also
    /// those of packets not kept because the trace's room for ordinary packets had run out.
    #[test]
    fn kept_packets_and_first_ip_ids_come_back_in_trace_order() {
        let mut b = TableBuilder::new(None);
        let mut frame = 0;
        let mut add = |b: &mut TableBuilder, pkt: &[u8]| {
            frame += 1;
            b.add(frame, frame as i64, 1, pkt);
            frame
        };
        let mut long = vec![add(&mut b, &with_id(false, 1, 100, 0x02))];
        let other = [add(&mut b, &segment(5000, false, 64, 0, 7, 0x02))];
        long.push(add(&mut b, &with_id(true, 2, 900, 0x12)));
        for n in 0..600u16 {
            let f = add(
                &mut b,
                &with_id(n % 3 == 0, 10 + n, 101 + u32::from(n), 0x10),
            );
            if long.len() < KEPT_ORDINARY + 2 {
                long.push(f);
            }
        }
        // Past the trace's room for ordinary packets, only control packets are kept; the first
        // IP IDs of the next connection are still taken.
        b.kept_ordinary = KEPT_ORDINARY_TOTAL;
        let third = add(&mut b, &segment(6000, false, 64, 0, 1, 0x02));
        let mut third_ids = vec![6000];
        for n in 0..40u16 {
            let mut p = segment(6000, false, 64, 0, 2, 0x10);
            p[18..20].copy_from_slice(&(500 + n).to_be_bytes());
            add(&mut b, &p);
            third_ids.push(500 + n);
        }
        let t = b.finish();
        assert_eq!(t.conns.len(), 3);
        let frames = |i: usize| t.packets_of(i).iter().map(|p| p.frame).collect::<Vec<_>>();
        let mut buf = Vec::new();
        let c = &t.with_packets(0, &mut buf);
        assert_eq!(frames(0), long);
        assert_eq!(c.folded, 602 - long.len() as u64);
        for dir in [FROM_CLIENT, FROM_SERVER] {
            let kept_ids: Vec<u16> = c
                .pkts
                .iter()
                .filter(|p| p.dir() == dir)
                .filter_map(|p| p.ip_id)
                .take(KEPT_IP_IDS)
                .collect();
            assert_eq!(c.ip_ids(dir).as_slice(), kept_ids);
            assert_eq!(c.ip_ids(dir).len(), KEPT_IP_IDS);
        }
        assert_eq!(frames(1), other);
        let c = &t.with_packets(2, &mut buf);
        assert_eq!(frames(2), [third]);
        assert_eq!(c.ip_ids(FROM_CLIENT).as_slice(), &third_ids[..KEPT_IP_IDS]);
        assert!(c.ip_ids(FROM_SERVER).is_empty());
    }

    /// A connection caught mid-stream whose client port (400) is below the server's (443): the
    /// ports make the client the server, the Client Hello turns it round, and every
    /// per-direction fact follows. Without a hello the guess stands.
    #[test]
    fn a_client_hello_from_the_side_taken_for_the_server_turns_the_connection_round() {
        for hello in [true, false] {
            let mut b = TableBuilder::new(None);
            let payload = if hello { client_hello(7) } else { vec![1; 50] };
            let packets = [
                segment(400, true, 60, 0, 9000, 0x10),
                with_payload(segment(400, false, 64, 2, 1000, 0x18), &payload),
                segment(400, true, 60, 0, 9000, 0x10),
                segment(400, true, 60, 0, 9000, 0x11),
            ];
            for (n, p) in packets.iter().enumerate() {
                b.add(n as u64 + 1, n as i64, 1, p);
            }
            let t = b.finish();
            assert_eq!(t.conns.len(), 1);
            let mut buf = Vec::new();
            let c = &t.with_packets(0, &mut buf);
            assert_eq!(c.roles_known, hello);
            let sender = if hello { FROM_CLIENT } else { FROM_SERVER };
            let other = 1 - sender;
            assert_eq!(c.client.port, if hello { 400 } else { 443 });
            assert_eq!(c.packets[sender], 1);
            assert_eq!(c.packets[other], 3);
            assert_eq!(c.bytes[sender], 50);
            assert_eq!(c.ttls[sender][0].ttl, 64);
            assert_eq!(c.ttls[other][0].ttl, 60);
            assert_eq!(c.ecn_codepoints[sender], [0, 0, 1, 0]);
            assert_eq!(c.src_mac[sender], Some([0, 0x1c, 0x7f, 0, 0, 0]));
            assert_eq!(c.first_fin[other].map(|f| f.frame), Some(4));
            assert!(c.first_fin[sender].is_none());
            let dirs: Vec<usize> = c.pkts.iter().map(Pkt::dir).collect();
            assert_eq!(dirs, [other, sender, other, other]);
            if hello {
                assert_eq!(c.client_hello, Some(2));
                assert_eq!(c.client_random, Some([7; 32]));
                assert_eq!(c.first_client_payload, c.pkts[1].payload);
                assert_ne!(c.first_client_payload, 0);
            } else {
                assert_eq!(c.client_hello, None);
                assert_eq!(c.first_client_payload, 0);
            }
        }
    }
}
