//! The `Analysis` model: what `tracekit analyze` found, serialized as its JSON output and
//! rendered as text and HTML by `tracekit-report`. Documented field by field in
//! docs/analyze-json.md. Side `a` is always the trace nearer the client, `b` the one nearer
//! the server, whatever order the traces were given in.

use std::collections::BTreeMap;

use serde::Serialize;
use tracekit_wire::Endpoint;

use crate::trace::End;

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub traces: Traces,
    /// The second trace given was found to be the client side.
    pub swapped: bool,
    /// Clock of side b relative to side a, when packets could be matched.
    pub clock: Option<Clock>,
    /// Connections seen in both traces, failed and odd ones first: all of them, or the first
    /// ones only when the analysis was scoped (`analyze_scoped`); `rows` has every one.
    pub connections: Vec<Connection>,
    /// Every connection seen in both traces in the same order, as a row of the summary table.
    #[serde(skip)]
    pub rows: Vec<Row>,
    /// Connections seen in one trace only.
    pub unmatched: Unmatched,
    /// For a side read as a set of files: which file each frame number comes from (absent
    /// when both sides are single captures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sets: Option<Sets>,
}

/// The sides read as sets of files (`None`: that side is one capture, whose frames are its
/// own).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sets {
    pub a: Option<SetFrames>,
    pub b: Option<SetFrames>,
}

/// How a side's frame numbers (counted over the side read as one capture) map to its files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetFrames {
    /// The files, in the order read.
    pub files: Vec<String>,
    /// Runs of consecutive frames from one file: (first frame over the side, position of
    /// the file in `files`, its frame number within that file). Frame `f` of the side is in
    /// the last run whose first frame is at most `f`.
    pub runs: Vec<(u64, usize, u64)>,
}

impl SetFrames {
    /// Frame `frame` of the side as (file name, frame within it).
    #[must_use]
    pub fn locate(&self, frame: u64) -> Option<(&str, u64)> {
        let i = self.runs.partition_point(|r| r.0 <= frame).checked_sub(1)?;
        let (first, file, local) = self.runs[i];
        Some((self.files.get(file)?.as_str(), local + (frame - first)))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Traces {
    pub a: TraceSummary,
    pub b: TraceSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    pub name: String,
    pub packets: u64,
    pub tcp_packets: u64,
    pub connections: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Clock {
    /// Nanoseconds to add to side b's timestamps to put them on side a's clock.
    pub offset_ns: i64,
    /// The feasible interval for the offset (one-way delays are never negative); absent when
    /// packets were matched in one direction only.
    pub lo_ns: Option<i64>,
    pub hi_ns: Option<i64>,
    pub matches: usize,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// When the clocks drift apart over the traces: the offset per window, each connection
    /// compared at its window's (absent when one offset fits them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<ClockDrift>,
}

/// The clocks' drift, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClockDrift {
    /// Parts per million side b's clock gains on side a's.
    pub ppm: f64,
    /// The width of a window, nanoseconds.
    pub window_ns: i64,
    /// Per window (start on side a's clock): the offset to add to side b's times, its feasible
    /// interval, and the matched packets it rests on.
    pub windows: Vec<tracekit_merge::align::WindowEstimate>,
}

impl ClockDrift {
    /// `drift` as the report's sides see it (`swapped`: the sides were exchanged).
    #[must_use]
    pub fn of(drift: &crate::compare::Drift, swapped: bool) -> ClockDrift {
        let windows = if swapped {
            drift
                .windows
                .iter()
                .map(|w| tracekit_merge::align::WindowEstimate {
                    from_ns: w.from_ns.saturating_add(w.offset_ns),
                    offset_ns: -w.offset_ns,
                    lo_ns: w.hi_ns.map(|h| -h),
                    hi_ns: w.lo_ns.map(|l| -l),
                    matches: w.matches,
                })
                .collect()
        } else {
            drift.windows.clone()
        };
        ClockDrift {
            ppm: if swapped { -drift.ppm } else { drift.ppm },
            window_ns: drift.width_ns,
            windows,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Unmatched {
    pub a: usize,
    pub b: usize,
    /// Up to ten of them, as `side client -> server`.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// Client and server as the client side saw them.
    pub client: String,
    pub server: String,
    pub client_port: u16,
    pub server_port: u16,
    /// How the two views were paired.
    pub matched_by: MatchedBy,
    /// No application data came back, or a reset ended it.
    pub failed: bool,
    /// One sentence.
    pub verdict: String,
    pub middlebox: Middlebox,
    pub hops: Hops,
    pub closed_by: ClosedBy,
    pub close_proof: String,
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
    pub caveats: Vec<String>,
    pub tls: Tls,
    pub rtt_ms: Rtt,
    pub sides: Sides,
    /// Both captures' packets of the connection on one time axis (see the ladder module).
    pub ladder: Vec<crate::ladder::LadderRow>,
}

/// A connection as one row of the summary table: what a report of millions of connections
/// keeps of each (a [`Connection`] in full takes a few kilobytes).
#[derive(Debug, Clone)]
pub struct Row {
    /// Client and server as the client side saw them.
    pub client: Endpoint,
    pub server: Endpoint,
    pub matched_by: MatchedBy,
    pub failed: bool,
    /// Inline, not on the heap: a scan's million rows took 32 bytes more each.
    pub kinds: Kinds,
    pub closed_by: ClosedBy,
    pub confidence: Confidence,
}

/// The most kinds a connection is given (`verdict`): a NAT, a sequence randomizer, an MSS
/// clamp, ECN bleaching, an option stripper and an RST injector at once.
pub const KINDS_MAX: usize = 6;
/// The kinds of middlebox of a connection, in the verdict's order.
pub type Kinds = arrayvec::ArrayVec<Kind, KINDS_MAX>;

/// `kinds` as [`Kinds`] (the verdict gives at most [`KINDS_MAX`]).
#[must_use]
pub fn kinds_of(kinds: &[Kind]) -> Kinds {
    kinds.iter().copied().take(KINDS_MAX).collect()
}

impl Connection {
    /// Failed, or with a middlebox: shown first, and in full.
    #[must_use]
    pub fn notable(&self) -> bool {
        notable(self.failed, &self.middlebox.kind)
    }
}

impl Row {
    /// Failed, or with a middlebox: shown first, and in full.
    #[must_use]
    pub fn notable(&self) -> bool {
        notable(self.failed, &self.kinds)
    }
}

/// Whether a connection is failed or odd (the report shows those first, and in full).
fn notable(failed: bool, kinds: &[Kind]) -> bool {
    failed || kinds != [Kind::None]
}

#[derive(Debug, Clone, Serialize)]
pub struct Middlebox {
    /// `none`, `nat`, `seq-randomizer`, `mss-clamp`, `ecn-bleach`, `option-stripper`,
    /// `tcp-proxy`, `tls-interceptor`, `rst-injector`: every kind that holds.
    pub kind: Vec<Kind>,
    /// Whether the server side still sees the client's own address (`None`: no middlebox).
    pub transparent: Option<bool>,
    /// Vendor of the middlebox's MAC address (IEEE registry), when it is adjacent to a capture.
    pub vendor: Option<String>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hops {
    /// Routers between the client and the middlebox.
    pub client_side: Option<u8>,
    /// Routers between the middlebox and the server.
    pub server_side: Option<u8>,
    /// Routers between the client and the server capture points (when nothing terminates TCP).
    pub path: Option<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub signal: Signal,
    /// Plain language, with the values on both sides.
    pub detail: String,
    pub frames_a: Vec<u64>,
    pub frames_b: Vec<u64>,
    /// Wireshark display filters that show the frames in each trace (for a side read as a
    /// set: the filter of the one file that holds them all, else none; see `files_a`).
    pub filter_a: Option<String>,
    pub filter_b: Option<String>,
    /// For a side read as a set: its frames grouped by file, numbered as in that file, with
    /// a display filter for that file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_a: Vec<FileFrames>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_b: Vec<FileFrames>,
    /// False for artefacts of the capturing host (offload), which say nothing of a middlebox.
    pub middlebox_evidence: bool,
}

/// Frames of one file of a set.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FileFrames {
    pub file: String,
    /// Frame numbers within the file, as Wireshark shows them when it opens that file.
    pub frames: Vec<u64>,
    /// A display filter for those frames, in that file.
    pub filter: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Tls {
    pub client_hello: SideFrames,
    pub server_hello: SideFrames,
    pub application_data: SideFrames,
    pub alerts: SideFrames,
    /// Hex, as the client side saw them.
    pub client_random: Option<String>,
    pub server_random: Option<String>,
    /// Whether both sides saw the same random values (`None`: not seen on both).
    pub client_random_same: Option<bool>,
    pub server_random_same: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SideFrames {
    pub a: Vec<u64>,
    pub b: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rtt {
    pub a: Option<f64>,
    pub b: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sides {
    pub a: Side,
    pub b: Side,
}

/// One connection as one capture point saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub trace: String,
    /// A Wireshark display filter that isolates the connection in this capture (addresses and
    /// ports as this point saw them).
    pub wireshark_filter: String,
    pub client: String,
    pub server: String,
    pub packets: u64,
    pub first_frame: Option<u64>,
    pub syn: Option<HandshakeView>,
    pub syn_ack: Option<HandshakeView>,
    pub ack_frame: Option<u64>,
    pub rtt_ms: Option<f64>,
    /// SYN to SYN/ACK and SYN/ACK to ACK: which part of the round trip lies on which side.
    pub towards_server_ms: Option<f64>,
    pub towards_client_ms: Option<f64>,
    pub isn_client: Option<u32>,
    pub isn_server: Option<u32>,
    /// IP ID behaviour per sender: `zero`, `constant`, `incremental`, `increasing`, `random`,
    /// `ipv6` or `unknown`.
    pub ip_id_client: &'static str,
    pub ip_id_server: &'static str,
    /// The first FIN or RST of each sender.
    pub client_close: Option<CloseView>,
    pub server_close: Option<CloseView>,
    pub tls_progress: Vec<TlsStep>,
    pub over_mss_sent_by_client: FrameCount,
    pub over_mss_sent_by_server: FrameCount,
    /// Source MACs of the packets of each sender, as they reached this point.
    pub client_mac: Option<MacView>,
    pub server_mac: Option<MacView>,
    /// Packets of the connection not kept for packet-level comparison.
    pub folded_packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandshakeView {
    pub frame: u64,
    pub ttl: u8,
    pub initial_ttl: u8,
    pub hops: u8,
    pub ip_id: Option<u16>,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
    /// ECE/CWR flags as Wireshark names them, empty when none.
    pub ecn: String,
    /// p0f-style option layout, e.g. `mss,sok,ts,nop,ws`.
    pub options: String,
    pub window: u16,
    pub isn: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloseView {
    pub frame: u64,
    /// `FIN` or `RST`.
    pub kind: &'static str,
    pub ttl: u8,
    /// Milliseconds after this side's first packet of the connection.
    pub at_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsStep {
    pub frame: u64,
    /// `client` or `server` (the claimed sender).
    pub from: &'static str,
    pub message: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FrameCount {
    pub count: u64,
    pub frames: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MacView {
    pub mac: String,
    pub vendor: Option<String>,
}

/// Writes a value's name, padded as asked (`{:<10}`).
macro_rules! named {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

/// Who closed the connection (`closed_by` in docs/analyze-json.md). Declared in the order of
/// the names, the order reports sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClosedBy {
    Client,
    Middlebox,
    /// No FIN or RST was seen.
    None,
    Server,
}

impl ClosedBy {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Client => "client",
            ClosedBy::Middlebox => "middlebox",
            ClosedBy::None => "none",
            ClosedBy::Server => "server",
        }
    }
}
named!(ClosedBy);

impl From<End> for ClosedBy {
    /// The end itself closed it.
    fn from(end: End) -> ClosedBy {
        match end {
            End::Client => ClosedBy::Client,
            End::Server => ClosedBy::Server,
        }
    }
}

/// A capture point: side a, the one nearer the client (the client side), or side b, nearer
/// the server (the server side). Serialized as `a` and `b`; indexes what is kept per point
/// (`[T; 2]`), side a's first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Point {
    #[serde(rename = "a")]
    ClientSide,
    #[serde(rename = "b")]
    ServerSide,
}

impl Point {
    /// Both points, the client side first.
    pub const BOTH: [Point; 2] = [Point::ClientSide, Point::ServerSide];

    /// The end this point is nearer.
    #[must_use]
    pub fn near(self) -> End {
        match self {
            Point::ClientSide => End::Client,
            Point::ServerSide => End::Server,
        }
    }

    /// The point nearer `end`.
    #[must_use]
    pub fn near_to(end: End) -> Point {
        match end {
            End::Client => Point::ClientSide,
            End::Server => Point::ServerSide,
        }
    }

    /// The other point.
    #[must_use]
    pub fn other(self) -> Point {
        Point::near_to(self.near().other())
    }

    /// `client` or `server`, as in "the client side".
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.near().name()
    }

    /// `a` or `b`, as the JSON names the point.
    #[must_use]
    pub fn letter(self) -> &'static str {
        match self {
            Point::ClientSide => "a",
            Point::ServerSide => "b",
        }
    }
}
named!(Point);

impl<T> std::ops::Index<Point> for [T; 2] {
    type Output = T;
    #[inline]
    fn index(&self, point: Point) -> &T {
        &self[point as usize]
    }
}

impl<T> std::ops::IndexMut<Point> for [T; 2] {
    #[inline]
    fn index_mut(&mut self, point: Point) -> &mut T {
        &mut self[point as usize]
    }
}

/// How sure a connection's verdict is (`confidence` in docs/analyze-json.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    High,
    Low,
    Medium,
}

impl Confidence {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Low => "low",
            Confidence::Medium => "medium",
        }
    }
}
named!(Confidence);

/// How the two views of a connection were paired (`matched_by` in docs/analyze-json.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// The same addresses and ports at both points.
    Tuple,
    /// The same TLS client random.
    TlsRandom,
    /// The same first payload bytes.
    Payload,
    /// The same initial sequence numbers.
    Isn,
    /// Their times, when nothing else tells them apart.
    Timing,
}

impl MatchedBy {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Tuple => "tuple",
            MatchedBy::TlsRandom => "tls-random",
            MatchedBy::Payload => "payload",
            MatchedBy::Isn => "isn",
            MatchedBy::Timing => "timing",
        }
    }
}
named!(MatchedBy);

/// A signal of the comparison (`evidence[].signal` in docs/analyze-json.md), each decided in
/// one function of `signals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// An end's address differs between the two points (NAT).
    AddressesTranslated,
    /// Packets seen at the sending side only.
    DroppedInPath,
    /// The handshake's ECN negotiation or the packets' ECT codepoints lost between the points.
    EcnStripped,
    /// A FIN or RST in an end's name sooner than that end could have answered.
    FinFasterThanRtt,
    /// Packets seen at the receiving side only.
    InjectedInPath,
    /// The packets seen at both points carry other IP IDs.
    IpidRewritten,
    /// An end's initial sequence number differs between the points.
    IsnRewritten,
    /// The handshake's MSS differs between the points.
    MssRewritten,
    /// The layout of the handshake's options differs between the points.
    OptionsRewritten,
    /// An end's port differs between the points.
    PortsTranslated,
    /// Each end made its handshake with something else.
    SplitHandshake,
    /// Segments larger than the MSS, from offload on the capturing host (not middlebox evidence).
    TsoOversize,
    /// Packets in an end's name left another sender than the end.
    TtlOriginMismatch,
    /// The handshake's window scale differs between the points.
    WscaleRewritten,
}

impl Signal {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::AddressesTranslated => "addresses-translated",
            Signal::DroppedInPath => "dropped-in-path",
            Signal::EcnStripped => "ecn-stripped",
            Signal::FinFasterThanRtt => "fin-faster-than-rtt",
            Signal::InjectedInPath => "injected-in-path",
            Signal::IpidRewritten => "ipid-rewritten",
            Signal::IsnRewritten => "isn-rewritten",
            Signal::MssRewritten => "mss-rewritten",
            Signal::OptionsRewritten => "options-rewritten",
            Signal::PortsTranslated => "ports-translated",
            Signal::SplitHandshake => "split-handshake",
            Signal::TsoOversize => "tso-oversize",
            Signal::TtlOriginMismatch => "ttl-origin-mismatch",
            Signal::WscaleRewritten => "wscale-rewritten",
        }
    }
}
named!(Signal);

/// A kind of middlebox (`middlebox.kind[]` in docs/analyze-json.md), decided in `verdict`.
/// Declared in the order of the names, the order reports sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Removes the ECN setup flags or codepoints.
    EcnBleach,
    /// Rewrites the handshake's MSS.
    MssClamp,
    /// Translates addresses or ports.
    Nat,
    /// No middlebox found.
    None,
    /// Rewrites or removes TCP options.
    OptionStripper,
    /// Injects a FIN or RST in an end's name.
    RstInjector,
    /// Rewrites sequence numbers, forwarding the segments one for one.
    SeqRandomizer,
    /// Answers the handshake itself, then forwards one for one.
    SynProxy,
    /// Terminates TCP on both sides.
    TcpProxy,
    /// Terminates TLS too.
    TlsInterceptor,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EcnBleach => "ecn-bleach",
            Kind::MssClamp => "mss-clamp",
            Kind::Nat => "nat",
            Kind::None => "none",
            Kind::OptionStripper => "option-stripper",
            Kind::RstInjector => "rst-injector",
            Kind::SeqRandomizer => "seq-randomizer",
            Kind::SynProxy => "syn-proxy",
            Kind::TcpProxy => "tcp-proxy",
            Kind::TlsInterceptor => "tls-interceptor",
        }
    }
}
named!(Kind);

/// The kinds' names joined by `sep`.
#[must_use]
pub fn kinds_text(kinds: &[Kind], sep: &str) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(sep)
}
