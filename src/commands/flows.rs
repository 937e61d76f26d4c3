//! `tracekit flows`: one row per conversation over all inputs read as one capture in time
//! order. TCP and UDP conversations are split's streams (Wireshark's `tcp.stream` /
//! `udp.stream` numbers, from the same `Assigner`); other IP traffic gets a row per protocol and
//! address pair, frames without IP one per EtherType and MAC pair.

use std::io::Write;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tracekit_capture::Capture;
use tracekit_merge::set;
use tracekit_merge::{Item, Merger, Order};
use tracekit_select::Spec;
use tracekit_split::flows::{Flow, FlowSummary, FlowTable, Packet};

use crate::cli::FlowsArgs;
use crate::{Outcome, inputs, progress, timefmt};

/// One conversation's row; `Files` is a list in JSON, a `;`-joined string in CSV.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row<Files> {
    pub(crate) proto: String,
    /// The IP protocol number (null for frames without IP).
    ip_proto: Option<u8>,
    /// Wireshark's tcp.stream / udp.stream; absent for other protocols.
    pub(crate) stream: Option<u32>,
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
    closed_by: Option<String>,
    /// The input files holding its packets, in order of first appearance.
    files: Files,
    pub(crate) first_frame: u64,
    last_frame: u64,
}

pub fn run(args: &FlowsArgs) -> anyhow::Result<Outcome> {
    let spec = Spec::try_from(&args.select)?;
    if args.top == Some(0) {
        bail!("--top must be at least 1");
    }
    let index = args
        .index
        .as_deref()
        .map(tracekit_index::Index::open)
        .transpose()?;
    // The whole set's table, stored by `tracekit index`: no packet read.
    if let Some(ix) = &index
        && spec.is_everything()
        && let Some((rows, stored)) = ix.flows()?
    {
        return print_stored(args, ix, rows, stored);
    }
    let paths = index
        .as_ref()
        .map_or_else(|| args.inputs.clone(), tracekit_index::Index::paths);
    let inputs::Opened {
        captures,
        mut trouble,
        ..
    } = inputs::open(&paths)?;
    let from_index = match &index {
        Some(ix) => indexed(ix, &captures, &spec)?,
        None => None,
    };
    let indexed = from_index.is_some();
    let table = match from_index {
        Some(t) => t,
        None => compute(&captures, &spec, args.quiet)?,
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
    print(
        args,
        order
            .iter()
            .map(|&i| Ok(row(&flows[i].summary(), &table.names))),
    )?;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "tracekit flows: {} flow(s) from {} packet(s) of {} input(s){}",
        flows.len(),
        table.selected,
        table.names.len(),
        if indexed {
            format!(
                " ({} record(s) read: those the index says the selection can match)",
                table.read
            )
        } else {
            String::new()
        }
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

/// Prints the flow table `tracekit index` stored (`rows`: its Parquet file) as the full scan
/// prints it.
fn print_stored(
    args: &FlowsArgs,
    ix: &tracekit_index::Index,
    rows: Vec<u8>,
    stored: &tracekit_index::Flows,
) -> anyhow::Result<Outcome> {
    let bytes = bytes::Bytes::from(rows);
    let damaged = "the index's flow table: damaged";
    match args.top {
        // Streamed, a row group at a time.
        None => print(args, stored_rows(bytes, None).context(damaged)?)?,
        // Ranked from the ranking's columns alone; then only the rows kept are read.
        Some(n) => {
            let order = stored_top(bytes.clone(), n, &args.by).context(damaged)?;
            let mut sorted = order.clone();
            sorted.sort_unstable();
            let mut rows: Vec<Option<Row<Vec<String>>>> = Vec::with_capacity(n);
            for r in stored_rows(bytes, Some(&sorted)).context(damaged)? {
                rows.push(Some(r?));
            }
            let at = |i: usize| sorted.binary_search(&i).ok();
            let picked = order
                .iter()
                .filter_map(|&i| at(i).and_then(|k| rows.get_mut(k)?.take()))
                .map(Ok);
            print(args, picked)?;
        }
    }
    let files = &ix.manifest.files;
    let packets: u64 = files.iter().map(|e| e.summary.packets).sum();
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "tracekit flows: {} flow(s) from {packets} packet(s) of {} input(s) (from the index's flow table)",
        stored.rows,
        files.len()
    );
    for t in &stored.trouble {
        let _ = writeln!(e, "  {t}");
    }
    Ok(if stored.trouble.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// The flow table of all of `paths`, as `flows` prints it with no selection: what `tracekit
/// index` stores, as Parquet (one column per field of a row, in row groups of
/// [`ROW_GROUP`] rows, zstd), which DuckDB, Polars or Spark read as they are.
pub fn store(
    paths: &[std::path::PathBuf],
    out: &mut (dyn Write + Send),
) -> Result<tracekit_index::FlowsMade, String> {
    let inputs::Opened {
        captures,
        mut trouble,
        ..
    } = inputs::open(paths).map_err(|e| format!("{e:#}"))?;
    let table = compute(&captures, &Spec::default(), true).map_err(|e| format!("{e:#}"))?;
    trouble.extend(table.trouble.iter().cloned());
    let flows = table.flows.flows();
    let rows = flows.iter().map(|f| row(&f.summary(), &table.names));
    let n = store_rows(rows, out)?;
    Ok(tracekit_index::FlowsMade { rows: n, trouble })
}

/// Writes flow rows as `store` stores them (Parquet); returns how many.
pub(crate) fn store_rows(
    rows: impl Iterator<Item = Row<Vec<String>>>,
    out: &mut (dyn Write + Send),
) -> Result<u64, String> {
    let fields = parquet_fields().map_err(|e| e.to_string())?;
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields.clone()));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::default(),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP));
    // Counters, ports and frame numbers as deltas, the times (RFC 3339 strings sharing their
    // front) by shared prefix: 17% smaller than dictionaries on the bench (docs/index-format.md).
    let delta_ints = [
        "stream",
        "client_port",
        "server_port",
        "packets_c2s",
        "packets_s2c",
        "bytes_c2s",
        "bytes_s2c",
        "first_frame",
        "last_frame",
    ];
    let props = delta_ints
        .iter()
        .map(|c| (c, parquet::basic::Encoding::DELTA_BINARY_PACKED))
        .chain(
            ["first_ts", "last_ts"]
                .iter()
                .map(|c| (c, parquet::basic::Encoding::DELTA_BYTE_ARRAY)),
        )
        .fold(props, |p, (c, e)| {
            let c = parquet::schema::types::ColumnPath::from(*c);
            p.set_column_dictionary_enabled(c.clone(), false)
                .set_column_encoding(c, e)
        })
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(out, schema, Some(props))
        .map_err(|e| e.to_string())?;
    let mut rows = rows.peekable();
    let mut n = 0u64;
    while rows.peek().is_some() {
        let chunk: Vec<Row<Vec<String>>> = rows.by_ref().take(ROW_GROUP).collect();
        n += chunk.len() as u64;
        let batch = serde_arrow::to_record_batch(&fields, &chunk).map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok(n)
}

/// Rows a row group of the stored flow table holds.
const ROW_GROUP: usize = 65_536;

/// The Parquet columns of a row: its fields, in order, with their types.
fn parquet_fields() -> Result<Vec<arrow_schema::FieldRef>, serde_arrow::Error> {
    use serde_arrow::schema::{SchemaLike, TracingOptions};
    Vec::<arrow_schema::FieldRef>::from_type::<Row<Vec<String>>>(TracingOptions::default())
}

/// The rows of a flow table `store` wrote, read a row group at a time; `only`: the rows
/// to read (ascending positions), the others not decoded.
fn stored_rows(
    bytes: bytes::Bytes,
    only: Option<&[usize]>,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Row<Vec<String>>>>> {
    use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    if let Some(rows) = only {
        let total = usize::try_from(builder.metadata().file_metadata().num_rows())?;
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
            rows.iter().map(|&i| i..i + 1),
            total,
        ));
    }
    let reader = builder.build()?;
    Ok(reader.flat_map(|batch| {
        let rows: anyhow::Result<Vec<Row<Vec<String>>>> = batch
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_arrow::from_record_batch(&b).map_err(anyhow::Error::from));
        match rows {
            Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    }))
}

/// The columns of a stored row `--top` ranks by.
#[derive(Deserialize)]
pub(crate) struct Rank {
    first_ts: String,
    last_ts: String,
    duration: f64,
    packets_c2s: u64,
    packets_s2c: u64,
    bytes_c2s: u64,
    bytes_s2c: u64,
}

impl Rank {
    /// What `--top` ranks a stored row by (as `Flow` ranks it: duration in nanoseconds).
    pub(crate) fn key(&self, by: &str) -> i128 {
        match by {
            "packets" => i128::from(self.packets_c2s + self.packets_s2c),
            "duration" => timefmt::parse_rfc3339(&self.last_ts)
                .zip(timefmt::parse_rfc3339(&self.first_ts))
                .map_or((self.duration * 1e9) as i128, |(l, f)| {
                    i128::from(l.saturating_sub(f))
                }),
            _ => i128::from(self.bytes_c2s + self.bytes_s2c),
        }
    }
}

/// The positions of the `n` stored rows `--top` keeps, largest first (ties in order of first
/// appearance, as for a scan), from the ranking's columns alone.
fn stored_top(bytes: bytes::Bytes, n: usize, by: &str) -> anyhow::Result<Vec<usize>> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let columns = [
        "first_ts",
        "last_ts",
        "duration",
        "packets_c2s",
        "packets_s2c",
        "bytes_c2s",
        "bytes_s2c",
    ];
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns);
    let mut keys: Vec<i128> = Vec::new();
    for batch in builder.with_projection(mask).build()? {
        let ranks: Vec<Rank> = serde_arrow::from_record_batch(&batch?)?;
        keys.extend(ranks.iter().map(|r| r.key(by)));
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(a.cmp(&b)));
    order.truncate(n);
    Ok(order)
}

/// Prints the rows in the asked format to the output or standard output.
pub(crate) fn print(
    args: &FlowsArgs,
    rows: impl Iterator<Item = anyhow::Result<Row<Vec<String>>>>,
) -> anyhow::Result<()> {
    match &args.output {
        // Written under a temporary name and renamed into place once complete.
        Some(path) => {
            let mut file = tracekit_capture::output::AtomicFile::create(path, &[])?;
            write_rows(args, rows, std::io::BufWriter::new(&mut file))?;
            file.commit(false)?;
        }
        None => write_rows(
            args,
            rows,
            std::io::BufWriter::new(std::io::stdout().lock()),
        )?,
    }
    Ok(())
}

/// The rows, as JSON lines or CSV, into `out`.
fn write_rows(
    args: &FlowsArgs,
    rows: impl Iterator<Item = anyhow::Result<Row<Vec<String>>>>,
    mut out: impl Write,
) -> anyhow::Result<()> {
    if args.format == "csv" {
        let mut w = csv::Writer::from_writer(out);
        for r in rows {
            w.serialize(r?.for_csv()).map_err(csv_error)?;
        }
        w.flush()?;
    } else {
        for r in rows {
            // Serialized apart so that a closed pipe (`| head`) is an I/O error, ended quietly.
            let mut line = serde_json::to_vec(&r?)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
        out.flush()?;
    }
    Ok(())
}

/// The table of a full scan: first a pass that reads each input in its own order, then, if
/// one is not in time order, a pass in time order from a survey (as merge does).
fn compute(captures: &[Capture], spec: &Spec, quiet: bool) -> anyhow::Result<Table> {
    let windowed = spec.after.is_some() || spec.before.is_some();
    Ok(
        match (!windowed)
            .then(|| table(captures, spec, true, quiet))
            .transpose()?
            .flatten()
        {
            Some(t) => t,
            None => table(captures, spec, false, quiet)?.expect("a surveyed pass finishes"),
        },
    )
}

/// The table of a selection from the index: only the blocks it can match are read, their
/// records matched and merged by time as the full scan merges them, each numbered with its
/// frame of the full scan. `None` when the index cannot answer alone (see `Index::gather`).
fn indexed(
    ix: &tracekit_index::Index,
    captures: &[Capture],
    spec: &Spec,
) -> anyhow::Result<Option<Table>> {
    let Some(frames) = ix.frame_numbers(captures) else {
        return Ok(None);
    };
    let shifts = vec![0i64; captures.len()];
    let chosen = set::choose_surveyed(captures, &shifts, spec, true, ix.surveys());
    let gathered = ix.gather(&chosen.captures, &chosen.kept, spec)?;
    let Some(p) = gathered.as_ref().and_then(|g| g.selected(spec)) else {
        return skipping(ix, chosen, spec, &frames);
    };
    let names: Vec<String> = chosen
        .captures
        .iter()
        .map(|c| c.path().display().to_string())
        .collect();
    let mut flows = FlowTable::default();
    let mut selected = 0u64;
    for (input, record, _) in set::ByTime::new(p.selected, &[]) {
        let frame = frames.frame(chosen.kept[input], record.index, record.ts.0);
        selected += 1;
        flows.add(&Packet::dissect(record, frame, input as u32));
    }
    Ok(Some(Table {
        flows,
        names,
        selected,
        read: p.records,
        passed: chosen.passed,
        trouble: Vec::new(),
    }))
}

/// [`indexed`] for a set with pcapng files: every file walked with jumps over the records
/// the selection cannot match (`Index::skips`), the rest matched as the full scan matches
/// them, each numbered with its frame of the full scan.
fn skipping(
    ix: &tracekit_index::Index,
    chosen: set::Chosen<'_>,
    spec: &Spec,
    frames: &tracekit_index::FrameNumbers,
) -> anyhow::Result<Option<Table>> {
    let Some(skips) = ix.skips(&chosen.captures, &chosen.kept, spec)? else {
        return Ok(None);
    };
    let (Some(surveys), Some(mut matcher)) = (chosen.surveys, chosen.matcher) else {
        return Ok(None);
    };
    let inputs = chosen
        .captures
        .iter()
        .zip(skips)
        .map(|(c, s)| tracekit_merge::Input {
            records: c.records_skipping(s),
            shift: 0,
        })
        .collect();
    let merger = Merger::new(inputs, Order::Time(surveys));
    let mut flows = FlowTable::default();
    let (mut selected, mut read) = (0u64, 0u64);
    for item in merger {
        match item {
            Item::Record { input, record, .. } => {
                read += 1;
                match matcher.matches(0, &record) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    // The full scan reports it.
                    Err(_) => return Ok(None),
                }
                let frame = frames.frame(chosen.kept[input], record.index, record.ts.0);
                selected += 1;
                flows.add(&Packet::dissect(record, frame, input as u32));
            }
            // Damage: the full scan reports it.
            Item::Damaged { .. } => return Ok(None),
            Item::Side { .. } => {}
        }
    }
    Ok(Some(Table {
        flows,
        names: chosen
            .captures
            .iter()
            .map(|c| c.path().display().to_string())
            .collect(),
        selected,
        read,
        passed: chosen.passed,
        trouble: Vec::new(),
    }))
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
    /// Records read (from the index: those the selection can match).
    read: u64,
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
        read: 0,
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
pub(crate) fn row(f: &FlowSummary, names: &[String]) -> Row<Vec<String>> {
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
        closed_by: f.closed_by.map(str::to_string),
        files: f.files.iter().map(|&i| names[i as usize].clone()).collect(),
        first_frame: f.first_frame,
        last_frame: f.last_frame,
    }
}

impl Row<Vec<String>> {
    /// What `--top` ranks the row by (as [`Rank::key`]).
    pub(crate) fn rank(&self, by: &str) -> i128 {
        Rank {
            first_ts: self.first_ts.clone(),
            last_ts: self.last_ts.clone(),
            duration: self.duration,
            packets_c2s: self.packets_c2s,
            packets_s2c: self.packets_s2c,
            bytes_c2s: self.bytes_c2s,
            bytes_s2c: self.bytes_s2c,
        }
        .key(by)
    }

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
