//! The flow table of a capture set: one row per conversation, as Zeek's conn.log or
//! `tshark -z conv` give them. TCP and UDP conversations are the streams of [`Assigner`]
//! (Wireshark's `tcp.stream` / `udp.stream`, the numbers `split` uses); other IP traffic gets
//! a row per protocol and address pair (ICMP per type pair, as Zeek and the Community ID pair
//! them), frames without IP one per EtherType and MAC pair.

use std::net::IpAddr;

use rustc_hash::FxHashMap;
use tracekit_capture::Record;
use tracekit_wire::community::{FlowTuple, icmp_counterpart};
use tracekit_wire::tcp::flags;
use tracekit_wire::{IpProtocol, Layers, TransportKind, dissect_into};

use crate::assign::{Assigner, KeyOptions, OutputKey};
use crate::mode::Mode;

/// A conversation being counted. Direction 0 is client → server.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Flow {
    proto: u8,
    tcp: bool,
    stream: Option<u32>,
    /// (address, port) of the client and server; ports 0 when the protocol has none.
    ends: [(Addr, u16); 2],
    has_ports: bool,
    first_ts: i64,
    last_ts: i64,
    packets: [u64; 2],
    bytes: [u64; 2],
    /// Per side: SYN (without ACK), SYN-ACK, FIN, RST seen.
    syn: [bool; 2],
    synack: [bool; 2],
    fin: [bool; 2],
    rst: [bool; 2],
    first_close: Option<u8>,
    first_rst: Option<u8>,
    history: History,
    /// The first input holding the flow, then any others (rare: kept apart so that a flow
    /// stays small, which is what keeps the per-packet update in cache).
    first_file: u32,
    #[allow(clippy::box_collection)] // 8 bytes in the flow instead of a Vec's 24
    more_files: Option<Box<Vec<u32>>>,
    first_frame: u64,
    last_frame: u64,
}

/// Zeek's history letters, each at most once: 12 of them at most.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct History {
    letters: [u8; 12],
    len: u8,
}

impl History {
    fn mark(&mut self, c: u8) {
        let seen = &self.letters[..usize::from(self.len)];
        if !seen.contains(&c) && usize::from(self.len) < self.letters.len() {
            self.letters[usize::from(self.len)] = c;
            self.len += 1;
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.letters[..usize::from(self.len)]).into_owned()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
enum Addr {
    Ip(IpAddr),
    Mac([u8; 6]),
    None,
}

impl Addr {
    fn text(self) -> String {
        match self {
            Addr::Ip(a) => a.to_string(),
            Addr::Mac(m) => m
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            Addr::None => String::new(),
        }
    }
}

/// A packet's ends and what kind of row it belongs to.
#[derive(Debug)]
struct Seen {
    src: (Addr, u16),
    dst: (Addr, u16),
    proto: u8,
    has_ports: bool,
    tcp_flags: Option<u16>,
    payload: bool,
    /// The ports were read (a later fragment has none: its direction is by address).
    ports_read: bool,
}

/// ICMP's "ports" as Zeek and the Community ID take them: (type, code).
fn icmp_ports(t: Option<tracekit_wire::Transport>, data: &[u8]) -> Option<(u16, u16)> {
    let t = t?;
    (matches!(t.kind, TransportKind::Icmp | TransportKind::Icmpv6) && t.header.len() >= 2).then(
        || {
            let at = t.header.start as usize;
            (u16::from(data[at]), u16::from(data[at + 1]))
        },
    )
}

fn seen(l: &Layers, data: &[u8]) -> Seen {
    if let Some(ip) = l.outer_ip() {
        let t = ip.transport;
        let ports = t
            .and_then(|t| t.ports(data))
            .or_else(|| icmp_ports(t, data));
        let tcp_flags = l.tcp(data).map(|t| t.flags());
        return Seen {
            src: (Addr::Ip(ip.src(data)), ports.map_or(0, |p| p.0)),
            dst: (Addr::Ip(ip.dst(data)), ports.map_or(0, |p| p.1)),
            proto: ip.protocol.0,
            has_ports: ports.is_some(),
            ports_read: ports.is_some(),
            tcp_flags,
            payload: t.is_some_and(|t| !t.payload.is_empty()),
        };
    }
    let macs = l.ethernet.map(|e| {
        let e = &data[e.range()];
        (
            Addr::Mac(e[6..12].try_into().unwrap_or([0; 6])),
            Addr::Mac(e[0..6].try_into().unwrap_or([0; 6])),
        )
    });
    let (src, dst) = macs.unwrap_or((Addr::None, Addr::None));
    Seen {
        src: (src, 0),
        dst: (dst, 0),
        proto: 0,
        has_ports: false,
        tcp_flags: None,
        payload: false,
        ports_read: false,
    }
}

/// The ICMP (type, code) of a packet made the same for a request and its reply.
fn icmp_pair(icmp_type: u16, code: u16, proto: u8) -> (u16, u16) {
    match icmp_counterpart(icmp_type as u8, proto == IpProtocol::ICMPV6.0) {
        Some(other) => {
            let other = u16::from(other);
            (icmp_type.min(other), icmp_type.max(other))
        }
        None => (icmp_type, code),
    }
}

/// Key of a row that is not a TCP/UDP stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
struct OtherKey {
    proto: u8,
    /// ICMP: the type and its counterpart (echo and reply together), or type and code.
    icmp: (u16, u16),
    ethertype: u16,
    lo: Addr,
    hi: Addr,
}

/// The flow table being built: split's stream numbering for TCP and UDP, a map for the rest.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FlowTable {
    assigner: Assigner,
    flows: Vec<Flow>,
    /// Per assigner output: the row of its TCP/UDP stream.
    by_output: Vec<u32>,
    #[serde(serialize_with = "crate::sorted::map")]
    others: FxHashMap<OtherKey, u32>,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            assigner: Assigner::new(Mode::Stream, KeyOptions::default()),
            flows: Vec::new(),
            by_output: Vec::new(),
            others: FxHashMap::default(),
        }
    }
}

/// A packet read and dissected, ready for [`FlowTable::add`]: dissection may run on another
/// thread than the counting.
#[derive(Debug)]
pub struct Packet<'a> {
    record: Record<'a>,
    frame: u64,
    input: u32,
    layers: Layers,
    seen: Seen,
}

impl<'a> Packet<'a> {
    /// Packet `record`, frame number `frame` of the set, from input `input`.
    #[must_use]
    pub fn dissect(record: Record<'a>, frame: u64, input: u32) -> Self {
        let mut layers = Layers::default();
        dissect_into(record.link.0, record.data, &mut layers);
        let seen = seen(&layers, record.data);
        Packet {
            record,
            frame,
            input,
            layers,
            seen,
        }
    }
}

impl FlowTable {
    /// Counts one packet in its flow.
    pub fn add(&mut self, d: &Packet<'_>) {
        let (record, frame, input, s) = (&d.record, d.frame, d.input, &d.seen);
        let targets = self
            .assigner
            .assign_dissected(&d.layers, record.data, record.ts.0);
        let o = targets.first as usize;
        // The row of a stream is looked up without reading the assigner's output key, which
        // is a cache miss per packet on a large capture (it is read once per new output).
        if self.by_output.len() <= o {
            self.by_output.resize(o + 1, UNSEEN);
        }
        let row = match self.by_output[o] {
            UNSEEN => match self.assigner.outputs()[o] {
                OutputKey::Tcp { stream, .. } | OutputKey::Udp { stream, .. } => {
                    let tcp = matches!(self.assigner.outputs()[o], OutputKey::Tcp { .. });
                    let r = new_flow(
                        &mut self.flows,
                        s,
                        (tcp, Some(stream)),
                        (frame, input),
                        record.ts.0,
                    );
                    self.by_output[o] = r as u32;
                    r
                }
                _ => {
                    self.by_output[o] = NOT_A_STREAM;
                    self.other_row(&d.layers, s, (frame, input), record.ts.0)
                }
            },
            NOT_A_STREAM => self.other_row(&d.layers, s, (frame, input), record.ts.0),
            r => r as usize,
        };
        count(&mut self.flows[row], s, record, frame, input);
    }
}

/// `FlowTable::by_output` for an output not seen yet, and for one that is not a TCP/UDP stream.
const UNSEEN: u32 = u32::MAX;
const NOT_A_STREAM: u32 = u32::MAX - 1;

impl FlowTable {
    /// From now on, log what the stream numbering numbers (see
    /// [`Assigner::record_numbering`]): a partition's table of a distributed run.
    pub fn record_numbering(&mut self) {
        self.assigner.record_numbering();
    }

    /// What was numbered since the last call, in order (empty unless recording).
    pub fn take_numbered(&mut self) -> Vec<crate::assign::Numbered> {
        self.assigner.take_numbered()
    }

    /// The flows, in order of first appearance.
    #[must_use]
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// The table's whole state (stream numbering, conversations, pending fragments, every
    /// flow), so that counting can go on later from where it stopped ([`FlowTable::restore`]):
    /// what `tracekit index` keeps so that a set that grew by later files is counted from
    /// there. A compact binary form (postcard) compressed with zstd, after [`STATE_MAGIC`].
    ///
    /// # Errors
    /// The writer's.
    pub fn save(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let bytes = postcard::to_stdvec(self).map_err(std::io::Error::other)?;
        w.write_all(STATE_MAGIC)?;
        let mut z = zstd::Encoder::new(w, 3)?;
        // The flow table of a large set is hundreds of MB before compression.
        z.multithread(2)?;
        z.write_all(&bytes)?;
        z.finish()?;
        Ok(())
    }

    /// A table saved by [`FlowTable::save`] of this same version of the code.
    ///
    /// # Errors
    /// Another magic (another layout of the state), or bytes that do not decode.
    pub fn restore(bytes: &[u8]) -> Result<FlowTable, String> {
        let rest = bytes
            .strip_prefix(STATE_MAGIC.as_slice())
            .ok_or("not a flow table state of this version")?;
        let raw = zstd::decode_all(rest).map_err(|e| e.to_string())?;
        postcard::from_bytes(&raw).map_err(|e| e.to_string())
    }
}

/// What a saved flow table starts with: its layout's version. Any change to the fields of
/// the table, the assigner or a flow must change it, so that an old state is never decoded
/// as a new one (a state of another version is not restored: the table is counted again).
pub const STATE_MAGIC: &[u8; 8] = b"TKFLOW01";

impl FlowTable {
    /// The row of a packet that is not part of a TCP/UDP stream: per protocol and address
    /// pair (ICMP per type pair), frames without IP per EtherType and MAC pair.
    fn other_row(
        &mut self,
        layers: &Layers,
        s: &Seen,
        (frame, input): (u64, u32),
        ts: i64,
    ) -> usize {
        let (lo, hi) = if s.src <= s.dst {
            (s.src.0, s.dst.0)
        } else {
            (s.dst.0, s.src.0)
        };
        let key = OtherKey {
            proto: s.proto,
            icmp: if s.has_ports {
                icmp_pair(s.src.1, s.dst.1, s.proto)
            } else {
                (0, 0)
            },
            ethertype: if layers.outer_ip().is_some() {
                0
            } else {
                layers.non_ip.unwrap_or(0)
            },
            lo,
            hi,
        };
        if let Some(&r) = self.others.get(&key) {
            r as usize
        } else {
            let r = new_flow(&mut self.flows, s, (false, None), (frame, input), ts);
            self.others.insert(key, r as u32);
            r
        }
    }
}

fn new_flow(
    flows: &mut Vec<Flow>,
    s: &Seen,
    (tcp, stream): (bool, Option<u32>),
    (frame, input): (u64, u32),
    ts: i64,
) -> usize {
    // The client is the SYN sender; a first packet that is a SYN-ACK comes from the server.
    let syn_ack = s
        .tcp_flags
        .is_some_and(|f| f & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK);
    let ends = if syn_ack {
        [s.dst, s.src]
    } else {
        [s.src, s.dst]
    };
    flows.push(Flow {
        proto: s.proto,
        tcp,
        stream,
        ends,
        has_ports: s.has_ports,
        first_ts: ts,
        last_ts: ts,
        packets: [0; 2],
        bytes: [0; 2],
        syn: [false; 2],
        synack: [false; 2],
        fin: [false; 2],
        rst: [false; 2],
        first_close: None,
        first_rst: None,
        history: History::default(),
        first_file: input,
        more_files: None,
        first_frame: frame,
        last_frame: frame,
    });
    flows.len() - 1
}

fn count(f: &mut Flow, seen: &Seen, record: &Record<'_>, frame: u64, input: u32) {
    // ICMP's "ports" are type and code: its direction is by address alone.
    let icmp = f.proto == IpProtocol::ICMP.0 || f.proto == IpProtocol::ICMPV6.0;
    let dir = usize::from(
        !(seen.src.0 == f.ends[0].0
            && (!f.has_ports || icmp || !seen.ports_read || seen.src.1 == f.ends[0].1)),
    );
    f.packets[dir] += 1;
    f.bytes[dir] += u64::from(record.orig_len);
    if record.has_ts {
        f.first_ts = f.first_ts.min(record.ts.0);
        f.last_ts = f.last_ts.max(record.ts.0);
    }
    f.last_frame = frame;
    if input != f.first_file {
        let more = f.more_files.get_or_insert_with(Box::default);
        if !more.contains(&input) {
            more.push(input);
        }
    }
    if f.tcp
        && let Some(fl) = seen.tcp_flags
    {
        let mut mark = |c: u8| {
            f.history
                .mark(if dir == 0 { c } else { c.to_ascii_lowercase() });
        };
        let (syn, ack) = (fl & flags::SYN != 0, fl & flags::ACK != 0);
        if syn && !ack {
            f.syn[dir] = true;
            mark(b'S');
        } else if syn {
            f.synack[dir] = true;
            mark(b'H');
        }
        if fl & flags::FIN != 0 {
            f.fin[dir] = true;
            f.first_close.get_or_insert(dir as u8);
            mark(b'F');
        }
        if fl & flags::RST != 0 {
            f.rst[dir] = true;
            f.first_close.get_or_insert(dir as u8);
            f.first_rst.get_or_insert(dir as u8);
            mark(b'R');
        }
        if seen.payload {
            mark(b'D');
        } else if ack && !syn && fl & (flags::FIN | flags::RST) == 0 {
            mark(b'A');
        }
    }
}

/// Zeek's conn_state, from the flags each side sent (0 = client, the originator).
fn state(f: &Flow) -> &'static str {
    if !f.tcp {
        return match (f.packets[0] > 0, f.packets[1] > 0) {
            (true, true) => "SF",
            (true, false) => "S0",
            _ => "OTH",
        };
    }
    let (orig_syn, resp_synack) = (f.syn[0], f.synack[1]);
    if orig_syn && resp_synack {
        return match f.first_rst {
            Some(0) => "RSTO",
            Some(_) => "RSTR",
            None => match (f.fin[0], f.fin[1]) {
                (true, true) => "SF",
                (true, false) => "S2",
                (false, true) => "S3",
                (false, false) => "S1",
            },
        };
    }
    if orig_syn {
        if f.packets[1] > 0 && f.rst[1] {
            return "REJ";
        }
        if f.rst[0] {
            return "RSTOS0";
        }
        if f.fin[0] {
            return "SH";
        }
        return "S0";
    }
    if resp_synack {
        if f.rst[1] {
            return "RSTRH";
        }
        if f.fin[1] {
            return "SHR";
        }
    }
    "OTH"
}

/// What a flow amounts to, for printing or storing.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSummary {
    /// `tcp`, `udp`, `icmp`…, or `non-ip`.
    pub proto: String,
    /// The IP protocol number (none for frames without IP).
    pub ip_proto: Option<u8>,
    /// Wireshark's tcp.stream / udp.stream.
    pub stream: Option<u32>,
    pub client: String,
    pub client_port: Option<u16>,
    pub server: String,
    pub server_port: Option<u16>,
    /// Nanoseconds since the epoch.
    pub first_ts: i64,
    pub last_ts: i64,
    /// Client → server, server → client.
    pub packets: [u64; 2],
    /// Frame bytes (lengths on the wire), client → server, server → client.
    pub bytes: [u64; 2],
    pub community_id: Option<String>,
    /// Zeek's conn_state.
    pub state: &'static str,
    /// Zeek's history letters.
    pub history: String,
    /// Who sent the first FIN or RST.
    pub closed_by: Option<&'static str>,
    /// The inputs holding the flow, by input number, in order of first appearance.
    pub files: Vec<u32>,
    pub first_frame: u64,
    pub last_frame: u64,
}

impl Flow {
    #[must_use]
    pub fn packets(&self) -> u64 {
        self.packets[0] + self.packets[1]
    }

    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }

    /// Nanoseconds from the first packet to the last.
    #[must_use]
    pub fn duration(&self) -> i64 {
        self.last_ts.saturating_sub(self.first_ts)
    }

    #[must_use]
    pub fn summary(&self) -> FlowSummary {
        let f = self;
        let proto = match (f.ends[0].0, f.proto) {
            (Addr::Ip(_), p) => IpProtocol(p)
                .name()
                .map_or_else(|| p.to_string(), str::to_ascii_lowercase),
            _ => "non-ip".to_string(),
        };
        // A protocol with ports whose ports were not captured has no Community ID.
        let port_protocol = matches!(f.proto, 1 | 6 | 17 | 58 | 132);
        let community_id = match (f.ends[0].0, f.ends[1].0) {
            (Addr::Ip(src), Addr::Ip(dst)) if f.has_ports || !port_protocol => Some(
                FlowTuple {
                    src,
                    dst,
                    protocol: f.proto,
                    ports: f.has_ports.then_some((f.ends[0].1, f.ends[1].1)),
                }
                .community_id(0),
            ),
            _ => None,
        };
        let port = |p: u16| f.has_ports.then_some(p);
        FlowSummary {
            proto,
            ip_proto: matches!(f.ends[0].0, Addr::Ip(_)).then_some(f.proto),
            stream: f.stream,
            client: f.ends[0].0.text(),
            client_port: port(f.ends[0].1),
            server: f.ends[1].0.text(),
            server_port: port(f.ends[1].1),
            first_ts: f.first_ts,
            last_ts: f.last_ts,
            packets: f.packets,
            bytes: f.bytes,
            community_id,
            state: state(f),
            history: f.history.text(),
            closed_by: f
                .first_close
                .map(|d| if d == 0 { "client" } else { "server" }),
            files: std::iter::once(f.first_file)
                .chain(f.more_files.iter().flat_map(|m| m.iter().copied()))
                .collect(),
            first_frame: f.first_frame,
            last_frame: f.last_frame,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracekit_capture::{LinkType, Timestamp, pcapng};
    use tracekit_testutil::packets::{segment, with_payload};

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;

    /// The summary of one TCP conversation made of (from the server?, flags, payload?).
    fn conversation(steps: &[(bool, u8, bool)]) -> FlowSummary {
        let frames: Vec<Vec<u8>> = steps
            .iter()
            .map(|&(back, flags, data)| {
                let p = segment(40_000, back, 64, 0, 1000, flags);
                if data { with_payload(p, b"hello") } else { p }
            })
            .collect();
        let mut table = FlowTable::default();
        count_into(&mut table, &frames, 0);
        assert_eq!(table.flows().len(), 1);
        table.flows()[0].summary()
    }

    const OPEN: [(bool, u8, bool); 3] = [
        (false, SYN, false),
        (true, SYN | ACK, false),
        (false, ACK, false),
    ];

    #[test]
    fn a_closed_exchange_is_sf_and_its_history_reads_as_zeeks() {
        let mut steps = OPEN.to_vec();
        steps.extend([
            (false, ACK, true),
            (true, ACK, false),
            (true, ACK, true),
            (false, FIN | ACK, false),
            (true, FIN | ACK, false),
            (false, ACK, false),
        ]);
        let s = conversation(&steps);
        assert_eq!(
            (s.state, s.history.as_str(), s.closed_by),
            ("SF", "ShADadFf", Some("client"))
        );
        assert_eq!(
            (s.client.as_str(), s.client_port, s.server_port),
            ("192.0.2.10", Some(40_000), Some(443))
        );
        assert_eq!(s.packets, [5, 4]);
    }

    #[test]
    fn one_fin_is_s2_or_s3_not_sf() {
        let mut steps = OPEN.to_vec();
        steps.push((true, FIN | ACK, false));
        assert_eq!(conversation(&steps).state, "S3");
        steps.pop();
        steps.push((false, FIN | ACK, false));
        assert_eq!(conversation(&steps).state, "S2");
        steps.pop();
        assert_eq!(conversation(&steps).state, "S1");
    }

    #[test]
    fn resets_say_who_aborted() {
        let mut steps = OPEN.to_vec();
        steps.push((true, RST, false));
        assert_eq!(
            (conversation(&steps).state, conversation(&steps).closed_by),
            ("RSTR", Some("server"))
        );
        steps.pop();
        steps.push((false, RST | ACK, false));
        assert_eq!(conversation(&steps).state, "RSTO");
    }

    #[test]
    fn attempts_are_s0_rej_or_sh() {
        assert_eq!(conversation(&[(false, SYN, false)]).state, "S0");
        assert_eq!(
            conversation(&[(false, SYN, false), (true, RST | ACK, false)]).state,
            "REJ"
        );
        assert_eq!(
            conversation(&[(false, SYN, false), (false, FIN, false)]).state,
            "SH"
        );
        assert_eq!(
            conversation(&[(false, SYN, false), (false, RST, false)]).state,
            "RSTOS0"
        );
    }

    #[test]
    fn midstream_traffic_is_oth_and_a_syn_ack_first_names_the_server() {
        assert_eq!(
            conversation(&[(false, ACK, true), (true, ACK, true)]).state,
            "OTH"
        );
        let s = conversation(&[(true, SYN | ACK, false), (false, ACK, false)]);
        assert_eq!((s.client.as_str(), s.state), ("192.0.2.10", "OTH"));
        assert_eq!(
            conversation(&[(true, SYN | ACK, false), (true, RST, false)]).state,
            "RSTRH"
        );
    }

    /// Conversations on several ports, some reusing a port with a new SYN (a new stream),
    /// as frames.
    fn traffic() -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for round in 0..3u32 {
            for port in [40_000u16, 40_001, 40_002] {
                let isn = 1000 + round * 100_000 + u32::from(port);
                frames.push(segment(port, false, 64, 0, isn, SYN));
                frames.push(segment(port, true, 64, 0, isn + 7, SYN | ACK));
                frames.push(with_payload(segment(port, false, 64, 0, isn, ACK), b"hi"));
                if port != 40_001 {
                    frames.push(segment(port, true, 64, 0, isn, FIN | ACK));
                }
            }
        }
        frames
    }

    /// Counts `frames` as the set's records `from`… (the eleventh on from a second input).
    fn count_into(table: &mut FlowTable, frames: &[Vec<u8>], from: usize) {
        for (i, data) in frames.iter().enumerate() {
            let n = from + i;
            let record = Record {
                index: n as u64,
                offset: 0,
                ts: Timestamp(n as i64 * 1000),
                raw_ts: 0,
                interface: 0,
                link: LinkType::ETHERNET,
                orig_len: data.len() as u32,
                data,
                options: pcapng::Options::EMPTY,
                has_ts: true,
            };
            table.add(&Packet::dissect(record, n as u64 + 1, u32::from(n >= 10)));
        }
    }

    fn saved(table: &FlowTable) -> Vec<u8> {
        let mut bytes = Vec::new();
        table.save(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_saved_table_carries_on_as_if_counted_in_one_go() {
        let frames = traffic();
        let mut whole = FlowTable::default();
        count_into(&mut whole, &frames, 0);
        for cut in [1, 10, 17, frames.len() - 1] {
            let mut first = FlowTable::default();
            count_into(&mut first, &frames[..cut], 0);
            let mut carried = FlowTable::restore(&saved(&first)).unwrap();
            count_into(&mut carried, &frames[cut..], cut);
            let summaries = |t: &FlowTable| t.flows().iter().map(Flow::summary).collect::<Vec<_>>();
            assert_eq!(summaries(&carried), summaries(&whole), "cut at {cut}");
            assert!(
                saved(&carried) == saved(&whole),
                "cut at {cut}: other bytes saved"
            );
        }
        assert!(
            whole.flows().len() >= 9,
            "new SYNs on reused ports make new streams"
        );
        assert!(FlowTable::restore(b"TKFLOW00 not a state").is_err());
        let mut cut = saved(&whole);
        cut.truncate(cut.len() / 2);
        assert!(FlowTable::restore(&cut).is_err());
    }

    /// The layout of a saved table: a change to the fields of the table, the assigner or a
    /// flow changes these bytes. Then change `STATE_MAGIC` (so that no older state is read
    /// as a newer one) and this pin with it.
    #[test]
    fn the_saved_layout_is_pinned_to_its_magic() {
        let mut table = FlowTable::default();
        count_into(&mut table, &traffic(), 0);
        let raw = postcard::to_stdvec(&table).unwrap();
        assert_eq!(
            (STATE_MAGIC, fnv1a(&raw)),
            (b"TKFLOW01", 11_191_495_615_931_058_314),
            "the saved layout changed: bump STATE_MAGIC and this pin"
        );
    }

    /// FNV-1a of the bytes.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}
