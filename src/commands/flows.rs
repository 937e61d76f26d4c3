//! `tracekit flows`: one row per conversation over all inputs read as one capture in time
//! order. TCP and UDP conversations are split's streams (Wireshark's `tcp.stream` /
//! `udp.stream` numbers, from the same `Assigner`); other IP traffic gets a row per protocol and
//! address pair, frames without IP one per EtherType and MAC pair.

use std::io::Write;
use std::net::IpAddr;

use anyhow::{Context, bail};
use rustc_hash::FxHashMap;
use serde::Serialize;
use tracekit_capture::Capture;
use tracekit_merge::{Input, Item, Merger, Order};
use tracekit_select::Spec;
use tracekit_split::assign::{Assigner, KeyOptions, OutputKey};
use tracekit_split::mode::Mode;
use tracekit_wire::community::FlowTuple;
use tracekit_wire::tcp::flags;
use tracekit_wire::{IpProtocol, Layers, TransportKind, dissect_into};

use crate::cli::FlowsArgs;
use crate::{Outcome, capset, inputs, progress, timefmt};

/// One conversation's row.
#[derive(Debug, Serialize)]
struct Row {
    proto: String,
    /// The IP protocol number (null for frames without IP).
    ip_proto: Option<u8>,
    /// Wireshark's tcp.stream / udp.stream; absent for other protocols.
    stream: Option<u32>,
    client: String,
    client_port: Option<u16>,
    server: String,
    server_port: Option<u16>,
    first_ts: String,
    last_ts: String,
    /// Seconds, to the nanosecond.
    duration: f64,
    packets_c2s: u64,
    packets_s2c: u64,
    bytes_c2s: u64,
    bytes_s2c: u64,
    community_id: Option<String>,
    /// Zeek's conn_state: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH.
    state: String,
    /// Zeek's history letters: client upper case, server lower case; S SYN, H SYN-ACK, A pure
    /// ACK, D data, F FIN, R RST, each once per side, in the order first seen.
    history: String,
    /// Who sent the first FIN or RST: client, server, or nobody (null).
    closed_by: Option<&'static str>,
    /// The input files holding its packets, in order of first appearance.
    files: Vec<String>,
    first_frame: u64,
    last_frame: u64,
}

/// A conversation being counted. Direction 0 is client → server.
#[derive(Debug)]
struct Flow {
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
#[derive(Debug, Default)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    let counterpart: &[(u16, u16)] = if proto == IpProtocol::ICMPV6.0 {
        &[
            (128, 129),
            (130, 131),
            (133, 134),
            (135, 136),
            (139, 140),
            (144, 145),
        ]
    } else {
        &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)]
    };
    for &(a, b) in counterpart {
        if icmp_type == a || icmp_type == b {
            return (a, b);
        }
    }
    (icmp_type, code)
}

/// Key of a row that is not a TCP/UDP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OtherKey {
    proto: u8,
    /// ICMP: the type and its counterpart (echo and reply together), or type and code.
    icmp: (u16, u16),
    ethertype: u16,
    lo: Addr,
    hi: Addr,
}

pub fn run(args: &FlowsArgs) -> anyhow::Result<Outcome> {
    let spec = Spec::try_from(&args.select)?;
    if args.top == Some(0) {
        bail!("--top must be at least 1");
    }
    let found = inputs::expand(&args.inputs);
    let mut trouble: Vec<String> = Vec::new();
    for (path, e) in &found.unreadable {
        trouble.push(format!("{}: unreadable: {e}", path.display()));
    }
    let mut captures: Vec<Capture> = Vec::new();
    for path in &found.files {
        match Capture::open(path) {
            Ok(c) => captures.push(c),
            Err(e) => trouble.push(format!("{e} (input left out)")),
        }
    }
    if captures.is_empty() {
        bail!("no input could be opened: {}", trouble.join("; "));
    }
    // As merge does: first a pass that reads each input in its own order, then, if one is not
    // in time order, a pass in time order from a survey.
    let windowed = spec.after.is_some() || spec.before.is_some();
    let table = match (!windowed)
        .then(|| table(&captures, &spec, true, args.quiet))
        .transpose()?
        .flatten()
    {
        Some(t) => t,
        None => table(&captures, &spec, false, args.quiet)?.expect("a surveyed pass finishes"),
    };
    trouble.extend(table.trouble.iter().cloned());
    let flows = &table.flows;
    let mut order: Vec<usize> = (0..flows.len()).collect();
    if let Some(n) = args.top {
        let key = |f: &Flow| -> i128 {
            match args.by.as_str() {
                "packets" => i128::from(f.packets[0] + f.packets[1]),
                "duration" => i128::from(f.last_ts) - i128::from(f.first_ts),
                _ => i128::from(f.bytes[0] + f.bytes[1]),
            }
        };
        // Largest first; ties in order of first appearance.
        order.sort_by(|&a, &b| key(&flows[b]).cmp(&key(&flows[a])).then(a.cmp(&b)));
        order.truncate(n);
    }
    let rows = order
        .iter()
        .map(|&i| row(&flows[i], &layers_names(&flows[i], &table.names)));
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if args.format == "csv" {
        let mut w = csv::Writer::from_writer(out);
        for r in rows {
            w.serialize(CsvRow::from(r)).map_err(csv_error)?;
        }
        w.flush()?;
    } else {
        for r in rows {
            // Serialized apart so that a closed pipe (`| head`) is an I/O error, ended quietly.
            let mut line = serde_json::to_vec(&r)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
        out.flush()?;
    }
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "tracekit flows: {} flow(s) from {} packet(s) of {} input(s)",
        flows.len(),
        table.selected,
        table.names.len()
    );
    let p = &table.passed;
    if p.files > 0 {
        let _ = writeln!(
            e,
            "  {} file(s) ({} bytes) outside the time window passed over after the header walk; {} file(s) ({} bytes) read",
            p.files, p.bytes, p.read_files, p.read_bytes
        );
    }
    for t in &trouble {
        let _ = writeln!(e, "  {t}");
    }
    Ok(if trouble.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// A CSV error, its I/O error unwrapped so that a closed pipe (`| head`) ends quietly.
fn csv_error(e: csv::Error) -> anyhow::Error {
    if !e.is_io_error() {
        return e.into();
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io.into(),
        other => anyhow::anyhow!("{other:?}"),
    }
}

/// The flows of a set, once counted.
struct Table {
    flows: Vec<Flow>,
    names: Vec<String>,
    selected: u64,
    passed: capset::Passed,
    trouble: Vec<String>,
}

/// One pass over the inputs; `None` when `speculative` and an input is not in time order.
fn table(
    captures: &[Capture],
    spec: &Spec,
    speculative: bool,
    quiet: bool,
) -> anyhow::Result<Option<Table>> {
    let shifts = vec![0i64; captures.len()];
    let chosen = capset::choose(captures, &shifts, spec, !speculative);
    let names: Vec<String> = chosen
        .captures
        .iter()
        .map(|c| c.path().display().to_string())
        .collect();
    let total: u64 = chosen.captures.iter().map(|c| c.data().len() as u64).sum();
    let bar = progress::bytes(total, quiet);
    let inputs: Vec<Input<'_>> = chosen
        .captures
        .iter()
        .map(|c| Input {
            records: c.records(),
            shift: 0,
        })
        .collect();
    let order = match chosen.surveys {
        Some(s) if !speculative => Order::Time(s),
        _ => Order::KeepInputOrder,
    };
    let mut reading = Reading {
        merger: Merger::new(inputs, order),
        matcher: chosen.matcher,
        names: &names,
        speculative,
        frame: chosen.passed.frames_before,
        selected: 0,
        trouble: Vec::new(),
    };
    // Two threads: this one reads, selects and dissects; the other numbers streams and counts
    // (the half bound by the flow table's cache misses), a batch at a time.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Dissected<'_>>>(4);
    let (read, counter) = std::thread::scope(|scope| {
        let counting = scope.spawn(move || {
            let mut counter = Counter::default();
            for batch in rx {
                for d in &batch {
                    counter.add(d);
                }
            }
            counter
        });
        let read = reading.run(&tx, &bar);
        drop(tx);
        (
            read,
            counting.join().expect("the counting thread does not panic"),
        )
    });
    let (selected, trouble) = (reading.selected, reading.trouble);
    if !read? {
        return Ok(None);
    }
    bar.finish_and_clear();
    Ok(Some(Table {
        flows: counter.flows,
        names,
        selected,
        passed: chosen.passed,
        trouble,
    }))
}

/// The flow table being built: split's stream numbering for TCP and UDP, a map for the rest.
struct Counter {
    assigner: Assigner,
    flows: Vec<Flow>,
    /// Per assigner output: the row of its TCP/UDP stream.
    by_output: Vec<u32>,
    others: FxHashMap<OtherKey, u32>,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            assigner: Assigner::new(Mode::Stream, KeyOptions::default()),
            flows: Vec::new(),
            by_output: Vec::new(),
            others: FxHashMap::default(),
        }
    }
}

/// The reading side of `table`: the inputs merged, frames numbered, the selection applied,
/// packets dissected and handed over in batches.
struct Reading<'a, 'n> {
    merger: Merger<'a>,
    matcher: Option<tracekit_select::Matcher>,
    names: &'n [String],
    speculative: bool,
    frame: u64,
    selected: u64,
    trouble: Vec<String>,
}

impl<'a> Reading<'a, '_> {
    /// `Ok(false)` when reading speculatively and an input turns out not to be in time order.
    fn run(
        &mut self,
        tx: &std::sync::mpsc::SyncSender<Vec<Dissected<'a>>>,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<bool> {
        let mut latest = vec![i64::MIN; self.names.len()];
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(item) = self.merger.next() {
            let (input, record, ts) = match item {
                Item::Record { input, record, ts } => (input, record, ts),
                Item::Side { .. } => continue,
                Item::Damaged { input, error } => {
                    self.trouble.push(format!(
                        "{}: {error}; its records before the damage were read",
                        self.names[input]
                    ));
                    continue;
                }
            };
            self.frame += 1;
            if self.speculative {
                if ts < latest[input] {
                    return Ok(false);
                }
                latest[input] = ts;
            }
            if let Some(m) = &mut self.matcher
                && !m
                    .matches(self.frame, &record)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", self.names[input]))?
            {
                if !self.speculative && m.done_after(self.frame) {
                    break;
                }
                continue;
            }
            self.selected += 1;
            let mut layers = Layers::default();
            dissect_into(record.link.0, record.data, &mut layers);
            let seen = seen(&layers, record.data);
            batch.push(Dissected {
                record,
                frame: self.frame,
                input: input as u32,
                layers,
                seen,
            });
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(full).is_err() {
                    break;
                }
                bar.set_position(self.merger.position());
            }
        }
        let _ = tx.send(batch);
        Ok(true)
    }
}

/// Packets handed from the reading thread to the counting one at a time.
const BATCH: usize = 1024;

/// A packet read, selected and dissected.
struct Dissected<'a> {
    record: tracekit_capture::Record<'a>,
    frame: u64,
    input: u32,
    layers: Layers,
    seen: Seen,
}

impl Counter {
    fn add(&mut self, d: &Dissected<'_>) {
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

/// `Counter::by_output` for an output not seen yet, and for one that is not a TCP/UDP stream.
const UNSEEN: u32 = u32::MAX;
const NOT_A_STREAM: u32 = u32::MAX - 1;

impl Counter {
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

fn layers_names(f: &Flow, names: &[String]) -> Vec<String> {
    std::iter::once(&f.first_file)
        .chain(f.more_files.iter().flat_map(|m| m.iter()))
        .map(|&i| names[i as usize].clone())
        .collect()
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

fn count(f: &mut Flow, seen: &Seen, record: &tracekit_capture::Record<'_>, frame: u64, input: u32) {
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

fn row(f: &Flow, files: &[String]) -> Row {
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
    Row {
        proto,
        ip_proto: matches!(f.ends[0].0, Addr::Ip(_)).then_some(f.proto),
        stream: f.stream,
        client: f.ends[0].0.text(),
        client_port: port(f.ends[0].1),
        server: f.ends[1].0.text(),
        server_port: port(f.ends[1].1),
        first_ts: timefmt::rfc3339(tracekit_capture::Timestamp(f.first_ts)),
        last_ts: timefmt::rfc3339(tracekit_capture::Timestamp(f.last_ts)),
        duration: (f.last_ts - f.first_ts) as f64 / 1e9,
        packets_c2s: f.packets[0],
        packets_s2c: f.packets[1],
        bytes_c2s: f.bytes[0],
        bytes_s2c: f.bytes[1],
        community_id,
        state: state(f).to_string(),
        history: f.history.text(),
        closed_by: f
            .first_close
            .map(|d| if d == 0 { "client" } else { "server" }),
        files: files.to_vec(),
        first_frame: f.first_frame,
        last_frame: f.last_frame,
    }
}

/// The CSV form: the file list joined with `;`.
#[derive(Debug, Serialize)]
struct CsvRow {
    proto: String,
    ip_proto: Option<u8>,
    stream: Option<u32>,
    client: String,
    client_port: Option<u16>,
    server: String,
    server_port: Option<u16>,
    first_ts: String,
    last_ts: String,
    duration: f64,
    packets_c2s: u64,
    packets_s2c: u64,
    bytes_c2s: u64,
    bytes_s2c: u64,
    community_id: Option<String>,
    state: String,
    history: String,
    closed_by: Option<&'static str>,
    files: String,
    first_frame: u64,
    last_frame: u64,
}

impl From<Row> for CsvRow {
    fn from(r: Row) -> CsvRow {
        CsvRow {
            proto: r.proto,
            ip_proto: r.ip_proto,
            stream: r.stream,
            client: r.client,
            client_port: r.client_port,
            server: r.server,
            server_port: r.server_port,
            first_ts: r.first_ts,
            last_ts: r.last_ts,
            duration: r.duration,
            packets_c2s: r.packets_c2s,
            packets_s2c: r.packets_s2c,
            bytes_c2s: r.bytes_c2s,
            bytes_s2c: r.bytes_s2c,
            community_id: r.community_id,
            state: r.state,
            history: r.history,
            closed_by: r.closed_by,
            files: r.files.join(";"),
            first_frame: r.first_frame,
            last_frame: r.last_frame,
        }
    }
}
