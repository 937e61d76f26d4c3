//! `tracekit flows`: one row per conversation over all inputs read as one capture in time
//! order. TCP and UDP conversations are split's streams (Wireshark's `tcp.stream` /
//! `udp.stream` numbers, from the same `Assigner`); other IP traffic gets a row per protocol and
//! address pair, frames without IP one per EtherType and MAC pair.

use std::io::Write;

use anyhow::{Context, bail};
use tracekit_flows::{Row, row, scan, stored};
use tracekit_select::Spec;
use tracekit_split::flows::Flow;

use crate::cli::FlowsArgs;
use crate::{Outcome, progress};
use tracekit_capture::inputs;

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
        Some(ix) => ix.flow_table(&captures, &spec)?,
        None => None,
    };
    let indexed = from_index.is_some();
    let table = match from_index {
        Some(t) => t,
        None => scan::compute(&captures, &spec, &progress::bytes(0, args.quiet))
            .map_err(anyhow::Error::msg)?,
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
        None => print(
            args,
            stored::rows(bytes, None)
                .map_err(anyhow::Error::msg)
                .context(damaged)?
                .map(|r| r.map_err(anyhow::Error::msg)),
        )?,
        // Ranked from the ranking's columns alone; then only the rows kept are read.
        Some(n) => {
            let order = stored::top(bytes.clone(), n, &args.by)
                .map_err(anyhow::Error::msg)
                .context(damaged)?;
            let mut sorted = order.clone();
            sorted.sort_unstable();
            let mut rows: Vec<Option<Row<Vec<String>>>> = Vec::with_capacity(n);
            let stored = stored::rows(bytes, Some(&sorted))
                .map_err(anyhow::Error::msg)
                .context(damaged)?;
            for r in stored {
                rows.push(Some(r.map_err(anyhow::Error::msg)?));
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
