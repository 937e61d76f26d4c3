//! One capture's TCP connections, with the facts the cross-trace comparison rests on: the
//! handshake as this point saw it, TTLs, IP IDs, ECN, close events, TLS progress, oversize
//! segments, and the first packets of each connection (for packet-level comparison).
//!
//! Memory grows with the number of connections, not with the trace: each connection keeps at
//! most [`KEPT_PACKETS`] packet summaries (all SYN/FIN/RST and TLS handshake packets among
//! them), and counts the rest.

use std::hash::{Hash, Hasher};

use arrayvec::ArrayVec;
use rustc_hash::{FxHashMap, FxHasher};
use tracekit_wire::tcp::{OptionSummary, Tcp, flags};
use tracekit_wire::tls::{self, Records as TlsRecords};
use tracekit_wire::{Endpoint, FlowKey, IpLayer, Layers, TransportKind, dissect};

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

/// Cache lines of a connection record loaded ahead (the fields a packet updates lie within).
const PREFETCH_LINES: usize = 16;

/// One TCP connection in one trace.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: Endpoint,
    pub server: Endpoint,
    /// Whether `client` is known from a SYN (or SYN/ACK); otherwise guessed from the ports.
    pub roles_known: bool,
    pub syn: Option<Handshake>,
    pub syn_ack: Option<Handshake>,
    /// The client's first ACK after the SYN/ACK (the third packet of the handshake).
    pub ack3: Option<(u64, i64)>,
    pub first_ts: i64,
    pub last_ts: i64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub pkts: Vec<Pkt>,
    pub folded: u64,
    pub client_random: Option<[u8; 32]>,
    pub server_random: Option<[u8; 32]>,
    pub client_hello: Option<u64>,
    pub server_hello: Option<u64>,
    /// First application-data record per direction.
    pub app_data: [Option<u64>; 2],
    pub alerts: Vec<AlertSeen>,
    pub first_fin: [Option<Close>; 2],
    pub first_rst: [Option<Close>; 2],
    /// Segments longer than the MSS the receiver announced, per sending direction.
    pub over_mss: [Frames; 2],
    pub largest_segment: [u32; 2],
    pub ttls: [ArrayVec<TtlSeen, KEPT_TTLS>; 2],
    pub src_mac: [Option<[u8; 6]>; 2],
    /// IP IDs of the first packets per direction (IPv4), for telling their behaviour.
    pub ip_ids: [ArrayVec<u16, KEPT_IP_IDS>; 2],
    /// ECN codepoints seen per direction: counts of not-ECT, ECT(1), ECT(0), CE.
    pub ecn_codepoints: [[u64; 4]; 2],
    /// Hash of the client's first payload (to recognise the connection at the other point).
    pub first_client_payload: u64,
    ordinary_kept: usize,
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
            pkts: Vec::new(),
            folded: 0,
            client_random: None,
            server_random: None,
            client_hello: None,
            server_hello: None,
            app_data: [None; 2],
            alerts: Vec::new(),
            first_fin: [None; 2],
            first_rst: [None; 2],
            over_mss: [Frames::default(), Frames::default()],
            largest_segment: [0; 2],
            ttls: [ArrayVec::new(), ArrayVec::new()],
            src_mac: [None; 2],
            ip_ids: [ArrayVec::new(), ArrayVec::new()],
            ecn_codepoints: [[0; 4]; 2],
            first_client_payload: 0,
            ordinary_kept: 0,
        }
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
    /// Whether the server sent application data (the connection did what it was for).
    #[must_use]
    pub fn failed(&self) -> bool {
        let reset = self.first_rst[0].is_some() || self.first_rst[1].is_some();
        let server_data = if self.client_hello.is_some() {
            self.app_data[FROM_SERVER].is_some() || self.app_data[FROM_CLIENT].is_some()
        } else {
            self.bytes[FROM_SERVER] > 0
        };
        reset || !server_data
    }
}

/// The connections of one trace.
#[derive(Debug, Default)]
pub struct ConnTable {
    pub conns: Vec<Conn>,
    /// Flow hash → the newest connection with that hash. The map holds no keys: the ends are
    /// checked on the connection itself, which is read next anyway (one cache miss per packet
    /// instead of two on big traces).
    index: FxHashMap<u64, usize>,
    /// Keys whose hash an other flow's key had taken first (rare).
    collided: FxHashMap<FlowKey, usize>,
    pub packets: u64,
    pub tcp_packets: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Ordinary packets kept so far, over all connections.
    kept_ordinary: u64,
    filter: Option<PortFilter>,
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

impl ConnTable {
    #[must_use]
    pub fn new(filter: Option<PortFilter>) -> Self {
        ConnTable {
            filter,
            ..ConnTable::default()
        }
    }

    /// Adds packet number `frame` (1-based) seen at `ts` nanoseconds.
    pub fn add(&mut self, frame: u64, ts: i64, link: u16, data: &[u8]) {
        self.add_dissected(frame, ts, &dissect(link, data), data);
    }

    /// Starts loading the connection record a packet will update, so that by the time
    /// [`ConnTable::add_dissected`] runs (one packet later) it is in the cache: with tens of
    /// thousands of interleaved connections each packet's record is otherwise a cache miss.
    pub fn prefetch(&self, layers: &Layers, data: &[u8]) {
        let Some(ip) = tcp_layer(layers) else {
            return;
        };
        let (key, _) = ip.flow(data);
        if let Some(&i) = self.index.get(&hash_of(&key)) {
            tracekit_capture::prefetch_value(&self.conns[i], PREFETCH_LINES);
        }
    }

    /// [`ConnTable::add`] for a packet the caller has dissected already (the same dissection
    /// then feeds the clock alignment too).
    pub fn add_dissected(&mut self, frame: u64, ts: i64, layers: &Layers, data: &[u8]) {
        self.packets += 1;
        self.first_ts = Some(self.first_ts.map_or(ts, |t| t.min(ts)));
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        let Some(ip) = tcp_layer(layers) else {
            return;
        };
        let t = ip.transport.expect("checked above");
        let Ok(tcp) = Tcp::new_checked(&data[t.header.range()]) else {
            return;
        };
        self.tcp_packets += 1;
        let (key, _) = ip.flow(data);
        if let Some(PortFilter(p)) = self.filter
            && key.lo.port != p
            && key.hi.port != p
        {
            return;
        }
        let src = Endpoint {
            addr: ip.src(data),
            port: tcp.src_port(),
        };
        let dst = Endpoint {
            addr: ip.dst(data),
            port: tcp.dst_port(),
        };
        let f = tcp.flags();
        let syn_only = f & (flags::SYN | flags::ACK) == flags::SYN;
        let hash = hash_of(&key);
        let found = match self.index.get(&hash) {
            Some(&i) if self.conns[i].has_ends(src, dst) => Some(i),
            Some(_) => self.collided.get(&key).copied(),
            None => None,
        };
        let slot = match found {
            Some(i) => {
                // A new SYN on a used tuple starts a new connection (Wireshark's tcp.stream),
                // unless it repeats the SYN we have (a retransmission).
                let repeated = self.conns[i].syn.is_some_and(|s| s.isn == tcp.seq());
                if syn_only && !repeated {
                    self.open(key, hash, src, dst, true, ts)
                } else {
                    i
                }
            }
            None => {
                let synack = f & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK;
                if syn_only {
                    self.open(key, hash, src, dst, true, ts)
                } else if synack {
                    self.open(key, hash, dst, src, true, ts)
                } else if src.port < dst.port || (src.port == dst.port && src < dst) {
                    // Mid-connection: the lower port is most likely the server's.
                    self.open(key, hash, dst, src, false, ts)
                } else {
                    self.open(key, hash, src, dst, false, ts)
                }
            }
        };
        let conn = &mut self.conns[slot];
        let room = self.kept_ordinary < KEPT_ORDINARY_TOTAL;
        if record(
            conn,
            frame,
            ts,
            layers,
            ip,
            data,
            &tcp,
            src == conn.client,
            room,
        ) {
            self.kept_ordinary += 1;
        }
    }

    fn open(
        &mut self,
        key: FlowKey,
        hash: u64,
        client: Endpoint,
        server: Endpoint,
        known: bool,
        ts: i64,
    ) -> usize {
        self.conns.push(Conn::new(client, server, known, ts));
        let i = self.conns.len() - 1;
        match self.index.get(&hash) {
            Some(&j) if !self.conns[j].has_ends(client, server) => {
                self.collided.insert(key, i);
            }
            _ => {
                self.index.insert(hash, i);
                self.collided.remove(&key);
            }
        }
        i
    }
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn hash_of<T: Hash>(v: &T) -> u64 {
    let mut h = FxHasher::default();
    v.hash(&mut h);
    h.finish().max(1)
}

#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
fn record(
    conn: &mut Conn,
    frame: u64,
    ts: i64,
    layers: &Layers,
    ip: &IpLayer,
    data: &[u8],
    tcp: &Tcp<&[u8]>,
    from_client: bool,
    room: bool,
) -> bool {
    let dir = if from_client {
        FROM_CLIENT
    } else {
        FROM_SERVER
    };
    let h = ip.header.start as usize;
    let t = ip.transport.expect("a TCP layer");
    let (ip_id, ecn, df, announced) = if ip.version == 4 {
        let total = usize::from(be16(data, h + 2));
        (
            Some(be16(data, h + 4)),
            data[h + 1] & 3,
            data[h + 6] & 0x40 != 0,
            total.saturating_sub(ip.header.len()),
        )
    } else {
        let plen = usize::from(be16(data, h + 4)) + 40;
        (
            None,
            ((data[h] & 0x0f) << 4 | data[h + 1] >> 4) & 3,
            false,
            plen.saturating_sub(ip.header.len()),
        )
    };
    let len = announced.saturating_sub(t.header.len()) as u32;
    let payload = &data[t.payload.range()];
    let ttl = ip.ttl(data);
    let f = tcp.flags();
    let src_mac = layers.ethernet.and_then(|e| {
        let e = &data[e.range()];
        e.get(6..12).and_then(|m| <[u8; 6]>::try_from(m).ok())
    });

    conn.last_ts = conn.last_ts.max(ts);
    conn.first_ts = conn.first_ts.min(ts);
    conn.packets[dir] += 1;
    conn.bytes[dir] += u64::from(len);
    conn.largest_segment[dir] = conn.largest_segment[dir].max(len);
    if conn.src_mac[dir].is_none() {
        conn.src_mac[dir] = src_mac;
    }
    conn.ecn_codepoints[dir][usize::from(ecn)] += 1;
    let ttls = &mut conn.ttls[dir];
    if let Some(s) = ttls.iter_mut().find(|s| s.ttl == ttl) {
        s.count = s.count.saturating_add(1);
    } else if !ttls.is_full() {
        ttls.push(TtlSeen {
            ttl,
            first_frame: frame,
            count: 1,
        });
    }
    if let Some(id) = ip_id
        && !conn.ip_ids[dir].is_full()
    {
        conn.ip_ids[dir].push(id);
    }

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
        src_mac,
    };
    if f & flags::SYN != 0 {
        if f & flags::ACK == 0 {
            if from_client && conn.syn.is_none() {
                conn.syn = Some(handshake());
            }
        } else if !from_client && conn.syn_ack.is_none() {
            conn.syn_ack = Some(handshake());
        }
    } else if from_client
        && f & flags::ACK != 0
        && conn.ack3.is_none()
        && conn
            .syn_ack
            .is_some_and(|s| tcp.ack() == s.isn.wrapping_add(1))
    {
        conn.ack3 = Some((frame, ts));
    }
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
    if let Some(mss) = conn.mss_for(dir)
        && len > u32::from(mss)
    {
        conn.over_mss[dir].push(frame);
    }

    let mut mark = None;
    if len > 0 {
        for (i, (_, rec)) in TlsRecords::new(payload).enumerate() {
            let m = TlsMark {
                content: rec.content_type,
                handshake: rec.handshake_type,
                alert: rec.alert,
            };
            if i == 0 {
                mark = Some(m);
            }
            match (rec.content_type, rec.handshake_type) {
                (tls::content::HANDSHAKE, Some(tls::handshake::CLIENT_HELLO))
                    if from_client && conn.client_hello.is_none() =>
                {
                    conn.client_hello = Some(frame);
                    conn.client_random = rec.random(payload).copied();
                }
                (tls::content::HANDSHAKE, Some(tls::handshake::SERVER_HELLO))
                    if !from_client && conn.server_hello.is_none() =>
                {
                    conn.server_hello = Some(frame);
                    conn.server_random = rec.random(payload).copied();
                }
                (tls::content::APPLICATION_DATA, _) if conn.app_data[dir].is_none() => {
                    conn.app_data[dir] = Some(frame);
                }
                (tls::content::ALERT, _) if conn.alerts.len() < KEPT_FRAMES => {
                    conn.alerts.push((frame, from_client, rec.alert));
                }
                _ => {}
            }
            // Records are followed within one segment only; across segments, reassembly would
            // be needed (a ClientHello or ServerHello starts a segment in practice).
            if i >= 8 {
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
    if from_client && conn.first_client_payload == 0 && payload_hash != 0 {
        conn.first_client_payload = payload_hash;
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
    let ordinary = !notable && room && conn.ordinary_kept < KEPT_ORDINARY;
    let keep = conn.pkts.len() < KEPT_PACKETS && (notable || ordinary);
    if keep {
        conn.ordinary_kept += usize::from(ordinary);
        if conn.pkts.capacity() == 0 {
            conn.pkts.reserve_exact(16);
        }
        conn.pkts.push(pkt);
    } else {
        conn.folded += 1;
    }
    keep && ordinary
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

    #[test]
    fn a_new_syn_on_a_used_tuple_starts_a_new_connection_and_a_repeated_one_does_not() {
        // Ethernet + IPv4 + TCP SYN from 192.0.2.10:40000 to 198.51.100.20:443.
        fn syn(isn: u32, flags: u8) -> Vec<u8> {
            let mut p = vec![0u8; 14 + 20 + 20];
            p[12] = 0x08;
            p[14] = 0x45;
            p[16..18].copy_from_slice(&40u16.to_be_bytes());
            p[22] = 64;
            p[23] = 6;
            p[26..30].copy_from_slice(&[192, 0, 2, 10]);
            p[30..34].copy_from_slice(&[198, 51, 100, 20]);
            p[34..36].copy_from_slice(&40000u16.to_be_bytes());
            p[36..38].copy_from_slice(&443u16.to_be_bytes());
            p[38..42].copy_from_slice(&isn.to_be_bytes());
            p[46] = 0x50;
            p[47] = flags;
            p
        }
        let mut t = ConnTable::new(None);
        t.add(1, 0, 1, &syn(1000, 0x02));
        t.add(2, 1, 1, &syn(1000, 0x02)); // retransmitted SYN
        t.add(3, 2, 1, &syn(5000, 0x02)); // port reuse
        t.add(4, 3, 1, &syn(5000, 0x10)); // an ACK of the second
        assert_eq!(t.conns.len(), 2);
        assert_eq!(t.conns[0].packets[FROM_CLIENT], 2);
        assert_eq!(t.conns[1].syn.unwrap().isn, 5000);
        assert_eq!(t.conns[1].packets[FROM_CLIENT], 2);
        // Truncated and garbage packets are counted, never a panic.
        for n in 0..54 {
            t.add(10 + n as u64, 4, 1, &syn(1, 0x02)[..n]);
        }
        t.add(100, 5, 1, &[0xff; 60]);
        assert_eq!(t.packets, 4 + 54 + 1);
    }
}
