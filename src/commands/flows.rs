//! `tracekit flows`: one row per conversation over all inputs read as one capture in time
//! order. TCP and UDP conversations are split's streams (Wireshark's `tcp.stream` /
//! `udp.stream` numbers, from the same `Assigner`); other IP traffic gets a row per protocol and
//! address pair, frames without IP one per EtherType and MAC pair.

use std::io::Write;

use anyhow::{Context, bail};
use serde::Serialize;
use tracekit_capture::Capture;
use tracekit_merge::set;
use tracekit_merge::{Item, Merger, Order};
use tracekit_select::Spec;
use tracekit_split::flows::{Flow, FlowSummary, FlowTable, Packet};

use crate::cli::FlowsArgs;
use crate::{Outcome, inputs, progress, timefmt};

/// One conversation's row; `Files` is a list in JSON, a `;`-joined string in CSV.
#[derive(Debug, Serialize)]
struct Row<Files> {
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
    files: Files,
    first_frame: u64,
    last_frame: u64,
}

pub fn run(args: &FlowsArgs) -> anyhow::Result<Outcome> {
    let spec = Spec::try_from(&args.select)?;
    if args.top == Some(0) {
        bail!("--top must be at least 1");
    }
    let inputs::Opened {
        captures,
        mut trouble,
        ..
    } = inputs::open(&args.inputs)?;
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
    let flows = table.flows.flows();
    let mut order: Vec<usize> = (0..flows.len()).collect();
    if let Some(n) = args.top {
        let key = |f: &Flow| -> i128 {
            match args.by.as_str() {
                "packets" => i128::from(f.packets()),
                "duration" => i128::from(f.duration()),
                _ => i128::from(f.bytes()),
            }
        };
        // Largest first; ties in order of first appearance.
        order.sort_by(|&a, &b| key(&flows[b]).cmp(&key(&flows[a])).then(a.cmp(&b)));
        order.truncate(n);
    }
    let rows = order
        .iter()
        .map(|&i| row(&flows[i].summary(), &table.names));
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if args.format == "csv" {
        let mut w = csv::Writer::from_writer(out);
        for r in rows {
            w.serialize(r.for_csv()).map_err(csv_error)?;
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
    flows: FlowTable,
    names: Vec<String>,
    selected: u64,
    passed: set::Passed,
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
    let chosen = set::choose(captures, &shifts, spec, !speculative);
    let names: Vec<String> = chosen
        .captures
        .iter()
        .map(|c| c.path().display().to_string())
        .collect();
    let total: u64 = chosen.captures.iter().map(|c| c.data().len() as u64).sum();
    let bar = progress::bytes(total, quiet);
    let inputs = chosen.inputs();
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
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Packet<'_>>>(4);
    let (read, counter) = std::thread::scope(|scope| {
        let counting = scope.spawn(move || {
            let mut counter = FlowTable::default();
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
        flows: counter,
        names,
        selected,
        passed: chosen.passed,
        trouble,
    }))
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
        tx: &std::sync::mpsc::SyncSender<Vec<Packet<'a>>>,
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
            batch.push(Packet::dissect(record, self.frame, input as u32));
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

/// The printed row of a flow: times in RFC 3339, inputs by name.
fn row(f: &FlowSummary, names: &[String]) -> Row<Vec<String>> {
    Row {
        proto: f.proto.clone(),
        ip_proto: f.ip_proto,
        stream: f.stream,
        client: f.client.clone(),
        client_port: f.client_port,
        server: f.server.clone(),
        server_port: f.server_port,
        first_ts: timefmt::rfc3339(tracekit_capture::Timestamp(f.first_ts)),
        last_ts: timefmt::rfc3339(tracekit_capture::Timestamp(f.last_ts)),
        duration: (f.last_ts - f.first_ts) as f64 / 1e9,
        packets_c2s: f.packets[0],
        packets_s2c: f.packets[1],
        bytes_c2s: f.bytes[0],
        bytes_s2c: f.bytes[1],
        community_id: f.community_id.clone(),
        state: f.state.to_string(),
        history: f.history.clone(),
        closed_by: f.closed_by,
        files: f.files.iter().map(|&i| names[i as usize].clone()).collect(),
        first_frame: f.first_frame,
        last_frame: f.last_frame,
    }
}

impl Row<Vec<String>> {
    /// The CSV form: the file list joined with `;`.
    fn for_csv(self) -> Row<String> {
        Row {
            proto: self.proto,
            ip_proto: self.ip_proto,
            stream: self.stream,
            client: self.client,
            client_port: self.client_port,
            server: self.server,
            server_port: self.server_port,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            duration: self.duration,
            packets_c2s: self.packets_c2s,
            packets_s2c: self.packets_s2c,
            bytes_c2s: self.bytes_c2s,
            bytes_s2c: self.bytes_s2c,
            community_id: self.community_id,
            state: self.state,
            history: self.history,
            closed_by: self.closed_by,
            files: self.files.join(";"),
            first_frame: self.first_frame,
            last_frame: self.last_frame,
        }
    }
}
