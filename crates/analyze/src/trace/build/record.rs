//! Recording a packet in its connection: what every packet updates, its handshake, close and
//! TLS news, and the packet itself, kept in the trace's log (or, for a connection held as its
//! few control packets, made on demand: `Singles::materialize`).

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;
use tracekit_wire::tcp::{OptionSummary, flags};
use tracekit_wire::tls::{self, Records as TlsRecords};
use tracekit_wire::{Endpoint, Layers, dissect};

use super::super::log::{LogChunk, log_push};
use super::super::{
    Close, Conn, End, Handshake, KEPT_FRAMES, KEPT_IP_IDS, KEPT_ORDINARY, KEPT_ORDINARY_TOTAL,
    KEPT_PACKETS, PAYLOAD_PREFIX, Pkt, TlsMark,
};
use super::{
    APP_SEEN, HAS_MAC, HAS_MSS, Hot, HotDir, Packet, SENT_CLIENT_HELLO, SENT_SERVER_HELLO, Single,
    Singles, Staged, Tuple, WANT_ACK3, ends, parse, settle,
};

impl Single<'_> {
    /// Its packet, dissected again.
    pub(super) fn packet(&self) -> Packet<'_> {
        Packet {
            frame: self.frame,
            ts: self.ts,
            layers: dissect(self.link, self.data),
            data: self.data,
        }
    }

    /// Its flow, read from its bytes where its parse found the headers (without dissecting
    /// it again: every packet that hits a single's slot asks).
    pub(super) fn key(&self) -> Tuple {
        let (ip_at, tcp_at) = (usize::from(self.ip_at), usize::from(self.tcp_at));
        let port = |at: usize| u16::from_be_bytes([self.data[at], self.data[at + 1]]);
        Tuple::at(self.data, ip_at, self.v6, (port(tcp_at), port(tcp_at + 2))).0
    }

    fn parsed<'p, 'a>(p: &'p Packet<'a>) -> Staged<'p, 'a> {
        // Its bytes are those that were parsed when it was kept.
        parse(p).expect("a single's packet parses as when it was kept")
    }
}

impl Singles {
    /// The connection the single at `first` stands for, as the table would hold it in full,
    /// and its packets as kept: made by the code that records every packet, and settled as
    /// `finish` settles.
    pub(in crate::trace) fn materialize(&self, first: u32) -> (Conn, Vec<Pkt>) {
        let (mut conn, mut pkts) = (None, Vec::new());
        self.materialize_into(first, &mut conn, &mut pkts);
        (conn.expect("made"), pkts)
    }

    /// [`Singles::materialize`] into `conn` and `pkts` (a caller's, used again: a `Conn` is
    /// 600 bytes, and moving it cost as much as making it).
    pub(in crate::trace) fn materialize_into(
        &self,
        first: u32,
        conn: &mut Option<Conn>,
        pkts: &mut Vec<Pkt>,
    ) {
        pkts.clear();
        let mut into = Into(pkts);
        let mut made: Option<Hot> = None;
        for (_, single) in self.chain(first) {
            let p = single.packet();
            let s = Single::parsed(&p);
            let hot = made.get_or_insert_with(|| {
                let (client, server, client_is_lo) = ends(&s, single.client_is_src);
                *conn = Some(Conn::new(client, server, single.roles_known, s.p.ts));
                Hot::new(s.key, client_is_lo, s.p.ts)
            });
            let c = conn.as_mut().expect("made with its Hot");
            let from_client = s.forward == hot.client_is_lo;
            record((hot, c), &s, from_client, (&mut into, 0));
        }
        if let (Some(c), Some(hot)) = (conn.as_mut(), &made) {
            settle(c, hot);
        }
    }

    /// The client and the server of the connection the single at `first` stands for, from
    /// its first packet (without making it: a connection's ends are set by its first packet,
    /// and only `finish` turns a connection round, for its TLS hellos, which a single has not).
    pub(in crate::trace) fn ends(&self, first: u32) -> (Endpoint, Endpoint) {
        let single = self.get(first);
        let p = single.packet();
        let (client, server, _) = ends(&Single::parsed(&p), single.client_is_src);
        (client, server)
    }

    /// The time of the first packet of the single at `first` (the earliest: a capture's
    /// packets may be out of time order).
    pub(in crate::trace) fn first_ts(&self, first: u32) -> i64 {
        self.chain(first)
            .map(|(_, s)| s.ts)
            .min()
            .expect("a chain has its first packet")
    }
}

/// Where `record` keeps packets.
pub(super) trait Keep {
    /// Whether ordinary (not control, not TLS handshake) packets may still be kept.
    fn room(&self) -> bool;
    /// Keeps `pkt`, a packet of connection `conn` (`ordinary`: see `room`); false when there
    /// is no room.
    fn keep(&mut self, pkt: &Pkt, conn: u32, ordinary: bool) -> bool;
    /// Notes the IP ID of an IPv4 packet among the first of its direction that was not kept.
    fn not_kept(&mut self, conn: u32, frame: u64, from_client: bool, id: u16);
}

/// The trace's packet log, and what it did not keep.
#[derive(Debug, Default)]
pub(in crate::trace) struct Logs {
    pub(super) log: Vec<LogChunk>,
    /// Ordinary packets kept so far, over all connections.
    pub(in crate::trace) kept_ordinary: u64,
    /// IPv4 packets among the first of their direction that were not kept: (connection,
    /// frame, sent by the client, IP ID).
    pub(super) ip_ids_not_kept: Vec<(u32, u64, bool, u16)>,
}

impl Keep for Logs {
    fn room(&self) -> bool {
        self.kept_ordinary < KEPT_ORDINARY_TOTAL
    }
    #[allow(clippy::inline_always)] // one pipeline with add_batch: see there
    #[inline(always)]
    fn keep(&mut self, pkt: &Pkt, conn: u32, ordinary: bool) -> bool {
        let kept = log_push(&mut self.log, pkt, conn);
        if kept && ordinary {
            self.kept_ordinary += 1;
        }
        kept
    }
    fn not_kept(&mut self, conn: u32, frame: u64, from_client: bool, id: u16) {
        self.ip_ids_not_kept.push((conn, frame, from_client, id));
    }
}

/// The packets of a single (control packets: always kept).
struct Into<'v>(&'v mut Vec<Pkt>);

impl Keep for Into<'_> {
    fn room(&self) -> bool {
        false
    }
    fn keep(&mut self, pkt: &Pkt, _: u32, _: bool) -> bool {
        self.0.push(*pkt);
        true
    }
    fn not_kept(&mut self, _: u32, _: u64, _: bool, _: u16) {}
}

/// Records a packet in a connection (its `Hot` and its `Conn`): what every packet updates,
/// its control and TLS news, and the packet itself, kept by `keep` as packet `conn_index`'s.
#[allow(clippy::too_many_lines)]
#[allow(clippy::inline_always)] // one pipeline with add_batch: see there
#[inline(always)]
pub(super) fn record(
    (hot, conn): (&mut Hot, &mut Conn),
    staged: &Staged,
    from_client: bool,
    (keep, conn_index): (&mut impl Keep, u32),
) {
    let Packet {
        frame,
        ts,
        ref layers,
        data,
    } = *staged.p;
    let (ip, tcp) = (staged.ip, &staged.tcp);
    let dir = End::of(from_client);
    let t = ip.transport.expect("a TCP layer");
    let tracekit_wire::IpFields {
        ttl,
        ecn,
        ident: ip_id,
        dont_fragment: df,
        announced_payload,
    } = ip.fields(data);
    let len = announced_payload.saturating_sub(t.header.len()) as u32;
    let payload = &data[t.payload.range()];
    let f = tcp.flags();

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
    let room = keep.room();
    let ordinary = !notable && room && usize::from(hot.ordinary_kept) < KEPT_ORDINARY;
    let kept = usize::from(hot.kept) < KEPT_PACKETS
        && (notable || ordinary)
        && keep.keep(&pkt, conn_index, ordinary);
    if kept {
        hot.kept += 1;
        if ordinary {
            hot.ordinary_kept += 1;
        }
    } else if log_ip_id && let Some(id) = ip_id {
        keep.not_kept(conn_index, frame, from_client, id);
    }
}

/// The handshake packets (the client's SYN, the server's SYN/ACK, the client's ACK that
/// completes it) and the first FIN and RST each way, noted on the connection; `ip`: the
/// packet's TTL, IP ID, ECN codepoint and don't-fragment flag.
#[allow(clippy::inline_always)] // one pipeline with add_batch: see there
#[inline(always)]
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
pub(super) fn add_ttl_run(conn: &mut Conn, dir: End, d: &HotDir) {
    conn.add_ttls(dir, (d.ttl, d.ttl_run, d.ttl_run_start));
}

fn hash_of<T: Hash>(v: &T) -> u64 {
    let mut h = FxHasher::default();
    v.hash(&mut h);
    h.finish().max(1)
}
