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

pub use build::{BATCH, Batch, Packet, PortFilter, TableBuilder};
use log::{GATHER_AHEAD, Kept};

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
    use super::log::Logged;
    use super::*;
    use std::net::IpAddr;
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
        c.hellos_mut().client_hello = Some(4);
        c.sent[0].app_data = Some(8);
        c.sent[1].app_data = Some(9);
        c.sent[0].bytes = 600;
        c.sent[1].bytes = 3000;
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
        c.sent[End::Client].first_fin = Some(close(20, false));
        c.sent[End::Client].first_rst = Some(close(22, true));
        c.sent[End::Server].first_fin = Some(close(23, false));
        assert_eq!(c.failure(), None);
        assert_eq!(c.abortive_close(), Some(End::Client));
        // The nearest miss: the RST before that end's FIN (or without one) cut the exchange.
        c.sent[End::Client].first_rst = Some(close(19, true));
        assert_eq!(c.failure(), Some(Failure::Reset));
        assert_eq!(c.abortive_close(), None);
        c.sent[End::Client].first_fin = None;
        assert_eq!(c.failure(), Some(Failure::Reset));
    }

    #[test]
    fn each_way_to_fail_and_its_nearest_miss() {
        let mut c = served();
        assert_eq!(c.failure(), None);
        c.syn_ack = None;
        assert_eq!(c.failure(), Some(Failure::TcpHandshake));
        let mut c = served();
        c.sent[0].app_data = None;
        c.sent[1].app_data = None;
        assert_eq!(c.failure(), Some(Failure::TlsHandshake));
        c.sent[0].app_data = None;
        c.sent[1].app_data = Some(9);
        assert_eq!(
            c.failure(),
            None,
            "application data one way: the handshake completed"
        );
        let mut c = served();
        c.hellos_mut().client_hello = None;
        c.sent[0].bytes = 600;
        c.sent[1].bytes = 0;
        assert_eq!(c.failure(), Some(Failure::NoAnswer));
        c.sent[0].bytes = 0;
        c.sent[1].bytes = 0;
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
        assert_eq!(t.conns[0].sent[End::Client].packets, 2);
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
        assert_eq!(t.conns[0].sent[End::Client].packets, 2);
        assert_eq!(t.conns[1].syn.unwrap().isn, 5000);
        assert_eq!(t.conns[1].sent[End::Client].packets, 2);
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
            assert_eq!(t.conns[0].sent[End::of(!back)].packets, 1);
            // Both ends on port 443: the lower address is taken for the server.
            let mut b = TableBuilder::new(None);
            b.add(1, 0, 1, &segment(443, back, 64, 0, 7, 0x10));
            let t = b.finish();
            assert_eq!(
                ends(&t),
                ("198.51.100.20:443".into(), "192.0.2.10:443".into())
            );
            assert_eq!(t.conns[0].sent[End::of(back)].packets, 1);
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
        let ttls: Vec<_> = c
            .ttls(End::Client)
            .iter()
            .map(|s| (s.ttl, s.count, s.first_frame))
            .collect();
        assert_eq!(ttls, [(64, 1, 1), (60, 3, 2), (59, 1, 4), (58, 1, 6)]);
        assert_eq!(c.ttls(End::Server).len(), 1);
        assert_eq!(c.sent[End::Client].ecn_codepoints, [4, 1, 2, 1]);
        assert_eq!([c.sent[0].packets, c.sent[1].packets], [8, 1]);
        assert_eq!(c.ip_ids(End::Client).as_slice(), [40000; 8]);
        assert_eq!(c.sent[End::Server].src_mac, Some([0, 0x1c, 0x7f, 0, 0, 1]));
        assert_eq!(c.pkts.len(), 9);
        assert_eq!((c.first_ts, c.last_ts), (1, 9));
        for (n, c) in t.conns[1..].iter().enumerate() {
            assert_eq!(c.client.port, 1000 + n as u16);
            assert_eq!([c.sent[0].packets, c.sent[1].packets], [1, 1]);
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
        for dir in End::BOTH {
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
        assert_eq!(c.ip_ids(End::Client).as_slice(), &third_ids[..KEPT_IP_IDS]);
        assert!(c.ip_ids(End::Server).is_empty());
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
            let sender = if hello { End::Client } else { End::Server };
            let other = sender.other();
            assert_eq!(c.client.port, if hello { 400 } else { 443 });
            assert_eq!(c.sent[sender].packets, 1);
            assert_eq!(c.sent[other].packets, 3);
            assert_eq!(c.sent[sender].bytes, 50);
            assert_eq!(c.ttls(sender)[0].ttl, 64);
            assert_eq!(c.ttls(other)[0].ttl, 60);
            assert_eq!(c.sent[sender].ecn_codepoints, [0, 0, 1, 0]);
            assert_eq!(c.sent[sender].src_mac, Some([0, 0x1c, 0x7f, 0, 0, 0]));
            assert_eq!(c.sent[other].first_fin.map(|f| f.frame), Some(4));
            assert!(c.sent[sender].first_fin.is_none());
            let dirs: Vec<End> = c.pkts.iter().map(Pkt::dir).collect();
            assert_eq!(dirs, [other, sender, other, other]);
            if hello {
                assert_eq!(c.client_hello(), Some(2));
                assert_eq!(c.client_random(), Some([7; 32]));
                assert_eq!(c.first_client_payload, c.pkts[1].payload);
                assert_ne!(c.first_client_payload, 0);
            } else {
                assert_eq!(c.client_hello(), None);
                assert_eq!(c.first_client_payload, 0);
            }
        }
    }
}
