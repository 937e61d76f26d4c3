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

use arrayvec::ArrayVec;
use tracekit_wire::Endpoint;
use tracekit_wire::tcp::{OptionSummary, flags};
use tracekit_wire::tls;

mod build;
mod log;
mod single;

use std::borrow::Cow;

use build::SINGLE;
pub use build::{BATCH, Batch, Packet, PortFilter, TableBuilder};
use log::{GATHER_AHEAD, Kept};
use single::Singles;

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

/// An end of a connection, the client or the server; as a direction, the end that sent.
/// Indexes what is kept per end (`[T; 2]`), the client's first, so that turning a connection
/// round is one swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    Client,
    Server,
}

impl End {
    /// Both ends, the client first.
    pub const BOTH: [End; 2] = [End::Client, End::Server];

    /// The sender of a packet sent by the client (`true`) or the server.
    #[must_use]
    #[inline]
    pub fn of(from_client: bool) -> End {
        if from_client {
            End::Client
        } else {
            End::Server
        }
    }

    /// The other end.
    #[must_use]
    pub fn other(self) -> End {
        match self {
            End::Client => End::Server,
            End::Server => End::Client,
        }
    }

    /// `client` or `server`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            End::Client => "client",
            End::Server => "server",
        }
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl<T> std::ops::Index<End> for [T; 2] {
    type Output = T;
    #[inline]
    fn index(&self, end: End) -> &T {
        &self[end as usize]
    }
}

impl<T> std::ops::IndexMut<End> for [T; 2] {
    #[inline]
    fn index_mut(&mut self, end: End) -> &mut T {
        &mut self[end as usize]
    }
}

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
    pub fn dir(&self) -> End {
        End::of(self.from_client)
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
    /// Per sending direction, the TTLs seen after the first (see [`Conn::ttls`]).
    more_ttls: [ArrayVec<TtlSeen, { KEPT_TTLS - 1 }>; 2],
}

static NO_FRAMES: Frames = Frames {
    count: 0,
    first: Vec::new(),
};

/// A connection's TLS hellos, out of line: a scan's connections have none, and inline they
/// took 98 of `Conn`'s 768 bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hellos {
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    /// The frames of the Client Hello and the Server Hello.
    client_hello: Option<u64>,
    server_hello: Option<u64>,
}

/// What one end of a connection sent, as this point saw it.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    pub packets: u64,
    pub bytes: u64,
    /// The first application-data record.
    pub app_data: Option<u64>,
    pub first_fin: Option<Close>,
    pub first_rst: Option<Close>,
    pub largest_segment: u32,
    /// The first TTL seen (every one: [`Conn::ttls`]; the others are out of line, since a
    /// direction rarely has more than one, and four inline took 144 of `Conn`'s bytes).
    first_ttl: Option<TtlSeen>,
    pub src_mac: Option<[u8; 6]>,
    /// ECN codepoints seen: counts of not-ECT, ECT(1), ECT(0), CE.
    pub ecn_codepoints: [u64; 4],
}

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
    /// What each end sent (by [`End::Client`], [`End::Server`]): turning the connection round
    /// swaps the two.
    pub sent: [Sent; 2],
    /// Packets seen but not kept (the kept ones are the table's: [`ConnTable::with_packets`]).
    pub folded: u64,
    /// The TLS hellos (see [`Hellos`]).
    hellos: Option<Box<Hellos>>,
    /// What few connections have (see [`Rare`]).
    rare: Option<Box<Rare>>,
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
            sent: [Sent::default(), Sent::default()],
            folded: 0,
            hellos: None,
            rare: None,
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
        self.sent.swap(0, 1);
        if let Some(rare) = &mut self.rare {
            rare.over_mss.swap(0, 1);
            rare.more_ttls.swap(0, 1);
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

    pub(super) fn hellos_mut(&mut self) -> &mut Hellos {
        self.hellos.get_or_insert_default()
    }

    /// The TTLs seen in direction `dir`, each with its count and first frame, in order of
    /// first appearance (the first [`KEPT_TTLS`]).
    #[must_use]
    pub fn ttls(&self, dir: End) -> ArrayVec<TtlSeen, KEPT_TTLS> {
        let more = self.rare.iter().flat_map(|r| &r.more_ttls[dir]);
        self.sent[dir]
            .first_ttl
            .iter()
            .chain(more)
            .copied()
            .collect()
    }

    /// Adds `run` packets of TTL `ttl`, the first of them frame `frame`, to direction `dir`'s
    /// TTLs (a TTL not seen before is kept while there is room).
    pub(super) fn add_ttls(&mut self, dir: End, (ttl, run, frame): (u8, u32, u64)) {
        let seen = TtlSeen {
            ttl,
            count: run,
            first_frame: frame,
        };
        match &mut self.sent[dir].first_ttl {
            None => {
                self.sent[dir].first_ttl = Some(seen);
                return;
            }
            Some(t) if t.ttl == ttl => {
                t.count = t.count.saturating_add(run);
                return;
            }
            Some(_) => {}
        }
        let more = &mut self.rare_mut().more_ttls[dir];
        if let Some(t) = more.iter_mut().find(|t| t.ttl == ttl) {
            t.count = t.count.saturating_add(run);
        } else if !more.is_full() {
            more.push(seen);
        }
    }

    /// The random value of the client's TLS Client Hello.
    #[must_use]
    pub fn client_random(&self) -> Option<[u8; 32]> {
        self.hellos.as_ref()?.client_random
    }

    /// The random value of the server's TLS Server Hello.
    #[must_use]
    pub fn server_random(&self) -> Option<[u8; 32]> {
        self.hellos.as_ref()?.server_random
    }

    /// The frame of the TLS Client Hello.
    #[must_use]
    pub fn client_hello(&self) -> Option<u64> {
        self.hellos.as_ref()?.client_hello
    }

    /// The frame of the TLS Server Hello.
    #[must_use]
    pub fn server_hello(&self) -> Option<u64> {
        self.hellos.as_ref()?.server_hello
    }

    /// TLS alert records, the first [`KEPT_FRAMES`].
    #[must_use]
    pub fn alerts(&self) -> &[AlertSeen] {
        self.rare.as_ref().map_or(&[], |r| &r.alerts)
    }

    /// Segments longer than the MSS the receiver announced, sent in direction `dir`.
    #[must_use]
    pub fn over_mss(&self, dir: End) -> &Frames {
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
    pub fn first_close(&self, dir: End) -> Option<Close> {
        match (self.sent[dir].first_fin, self.sent[dir].first_rst) {
            (Some(f), Some(r)) => Some(if r.frame < f.frame { r } else { f }),
            (f, r) => f.or(r),
        }
    }
    /// The MSS the receiver of direction `dir` announced.
    #[must_use]
    pub fn mss_for(&self, dir: End) -> Option<u16> {
        let receiver = if dir == End::Client {
            self.syn_ack
        } else {
            self.syn
        };
        receiver?.options.mss
    }
    /// The initial sequence number of one side.
    #[must_use]
    pub fn isn(&self, dir: End) -> Option<u32> {
        if dir == End::Client {
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
        if self.client_hello().is_some()
            && self.sent[End::Server].app_data.is_none()
            && self.sent[End::Client].app_data.is_none()
        {
            return Some(Failure::TlsHandshake);
        }
        let cut = End::BOTH.into_iter().any(|d| {
            self.sent[d].first_rst.is_some_and(|rst| {
                self.sent[d]
                    .first_fin
                    .is_none_or(|fin| fin.frame > rst.frame)
            })
        });
        if cut {
            return Some(Failure::Reset);
        }
        if self.client_hello().is_none()
            && self.sent[End::Client].bytes > 0
            && self.sent[End::Server].bytes == 0
        {
            return Some(Failure::NoAnswer);
        }
        None
    }

    /// The end that reset the connection after its own FIN (a normal, abortive close), if any.
    #[must_use]
    pub fn abortive_close(&self) -> Option<End> {
        End::BOTH.into_iter().find(|&d| {
            matches!((self.sent[d].first_fin, self.sent[d].first_rst), (Some(fin), Some(rst)) if fin.frame < rst.frame)
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
/// packets are gathered from the table's log into a buffer of the caller's ([`Gathered`]),
/// so that each connection's are one slice (the comparison walks them dozens of times)
/// without the table holding a second copy of every packet.
#[derive(Debug, Clone, Copy)]
pub struct ConnRef<'a> {
    pub conn: &'a Conn,
    pub pkts: &'a [Pkt],
}

/// A caller's buffer for [`ConnTable::with_packets`]: a connection's packets, and the
/// connection itself when the table holds it as its control packets (see single.rs). Used again,
/// it costs no fresh memory.
#[derive(Debug, Default)]
pub struct Gathered {
    pkts: Vec<Pkt>,
    conn: Option<Conn>,
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
    pub fn ip_ids(&self, dir: End) -> ArrayVec<u16, KEPT_IP_IDS> {
        let from_client = dir == End::Client;
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

/// The connections of one trace, read by a [`TableBuilder`], in the order of their first
/// packets: each in full, or as its control packets (see single.rs), which gives the same `Conn`
/// on demand.
#[derive(Debug, Default)]
pub struct ConnTable {
    /// The connections in full, in the order they became full (see `at`).
    conns: Vec<Conn>,
    /// By position: an index in `conns`, or with the `SINGLE` bit the place of a single.
    at: Vec<u32>,
    singles: Singles,
    pub packets: u64,
    pub tcp_packets: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// The kept packets of the connections in full (by their index in `conns`).
    kept: Kept,
}

/// Where a table holds a connection.
enum Held {
    Full(usize),
    Single(u32),
}

impl ConnTable {
    /// Connections.
    #[must_use]
    pub fn len(&self) -> usize {
        self.at.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn held(&self, i: usize) -> Held {
        let at = self.at[i];
        if at & SINGLE == 0 {
            Held::Full(at as usize)
        } else {
            Held::Single(at & !SINGLE)
        }
    }

    /// Connection `i` (made on demand when the table holds it as its control packets: for many
    /// connections, [`ConnTable::with_packets`] with a buffer used again costs less).
    #[must_use]
    pub fn conn(&self, i: usize) -> Cow<'_, Conn> {
        match self.held(i) {
            Held::Full(j) => Cow::Borrowed(&self.conns[j]),
            Held::Single(place) => Cow::Owned(self.singles.materialize(place).0),
        }
    }

    /// Connection `i` when the table holds it in full (not as its control packets).
    #[must_use]
    pub fn in_full(&self, i: usize) -> Option<&Conn> {
        match self.held(i) {
            Held::Full(j) => Some(&self.conns[j]),
            Held::Single(_) => None,
        }
    }

    /// The client and the server of connection `i`, without making it.
    #[must_use]
    pub fn ends(&self, i: usize) -> (Endpoint, Endpoint) {
        match self.held(i) {
            Held::Full(j) => (self.conns[j].client, self.conns[j].server),
            Held::Single(place) => self.singles.ends(place),
        }
    }

    /// Whether connection `i` is between `a` and `b` (see [`Conn::has_ends`]), without
    /// making it.
    #[must_use]
    pub fn has_ends(&self, i: usize, a: Endpoint, b: Endpoint) -> bool {
        let (client, server) = self.ends(i);
        (client == a && server == b) || (client == b && server == a)
    }

    /// Connection `i` as the pairing reads it: without its packets when its handshake gives
    /// both initial sequence numbers (all the pairing asks them for), else as
    /// [`ConnTable::with_packets`] gives it.
    #[must_use]
    pub fn for_pairing<'a>(&'a self, i: usize, buf: &'a mut Gathered) -> ConnRef<'a> {
        match self.in_full(i) {
            Some(c) if c.isn(End::Client).is_some() && c.isn(End::Server).is_some() => {
                ConnRef { conn: c, pkts: &[] }
            }
            _ => self.with_packets(i, buf),
        }
    }

    /// Connection `i` without its packets: the table's, or made in `buf` when the table holds
    /// it as its control packets.
    #[must_use]
    pub fn lean<'a>(&'a self, i: usize, buf: &'a mut Gathered) -> &'a Conn {
        match self.held(i) {
            Held::Full(j) => &self.conns[j],
            Held::Single(_) => self.with_packets(i, buf).conn,
        }
    }

    /// The time of connection `i`'s first packet (`Conn::first_ts`), without making it.
    #[must_use]
    pub fn first_ts(&self, i: usize) -> i64 {
        match self.held(i) {
            Held::Full(j) => self.conns[j].first_ts,
            Held::Single(place) => self.singles.first_ts(place),
        }
    }

    /// Connection `i` with its kept packets, gathered into `buf` (its earlier contents are
    /// dropped).
    #[must_use]
    pub fn with_packets<'a>(&'a self, i: usize, buf: &'a mut Gathered) -> ConnRef<'a> {
        match self.held(i) {
            Held::Full(j) => {
                self.kept.gather(j, &mut buf.pkts);
                ConnRef {
                    conn: &self.conns[j],
                    pkts: &buf.pkts,
                }
            }
            Held::Single(place) => {
                self.singles
                    .materialize_into(place, &mut buf.conn, &mut buf.pkts);
                ConnRef {
                    conn: buf.conn.as_ref().expect("made above"),
                    pkts: &buf.pkts,
                }
            }
        }
    }

    /// Starts loading the first packets [`ConnTable::with_packets`] will gather for connection
    /// `i` (each is a cache miss, and within a connection only the later ones are prefetched).
    pub fn prefetch_packets(&self, i: usize) {
        match self.held(i) {
            Held::Full(j) => {
                for &place in self.kept.places(j).iter().take(GATHER_AHEAD) {
                    tracekit_capture::prefetch_value(self.kept.entry(place), 2);
                }
            }
            Held::Single(place) => self.singles.prefetch(place),
        }
    }

    /// Connection `i`'s kept packets, in trace order.
    #[must_use]
    pub fn packets_of(&self, i: usize) -> Vec<Pkt> {
        let mut buf = Gathered::default();
        let _ = self.with_packets(i, &mut buf);
        buf.pkts
    }
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
mod tests;
