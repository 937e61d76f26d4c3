//! `tracekit split`: one output per stream (or host, host pair, port, count, size, time).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use tracekit_capture::{Capture, Format};
use tracekit_split::assign::{Assigner, KeyOptions, OutputKey};
use tracekit_split::mode::{Mode, parse_size};
use tracekit_split::outputs::{OutputFormat, OutputSet, OutputStats, Source};

use crate::cli::SplitArgs;
use crate::{Outcome, progress, timefmt};
use tracekit_capture::inputs;
use tracekit_select::Spec;

/// The validated options of a split.
#[derive(Debug)]
pub struct SplitOptions {
    pub mode: Mode,
    pub keys: KeyOptions,
    pub format: Option<String>,
    pub compression: tracekit_capture::output::Compression,
    pub template: Option<String>,
    pub max_open: usize,
    pub budget: usize,
    pub threads: usize,
}

impl TryFrom<&SplitArgs> for SplitOptions {
    type Error = anyhow::Error;

    fn try_from(a: &SplitArgs) -> anyhow::Result<Self> {
        let mode: Mode = a.by.parse().map_err(|e| anyhow::anyhow!("--by: {e}"))?;
        if a.max_open_files == 0 {
            bail!("--max-open-files must be at least 1");
        }
        if a.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        if let Some(t) = &a.name {
            if t.contains('/') {
                bail!("--name {t:?}: a name template cannot contain '/'");
            }
            if !t.contains('{') {
                bail!(
                    "--name {t:?}: the template needs a placeholder such as {{id}} or {{n}}, or every output would get the same name"
                );
            }
        }
        let flow_options = a.icmp_with_flow || a.inner || a.vlan;
        if flow_options
            && !matches!(
                mode,
                Mode::Stream | Mode::Host | Mode::HostPair | Mode::Port
            )
        {
            bail!(
                "--icmp-with-flow, --inner and --vlan apply to --by stream/host/host-pair/port, not {mode}"
            );
        }
        Ok(SplitOptions {
            mode,
            keys: KeyOptions {
                icmp_with_flow: a.icmp_with_flow,
                inner: a.inner,
                vlan: a.vlan,
            },
            format: a.format.clone(),
            compression: a
                .compress
                .as_deref()
                .and_then(tracekit_capture::output::Compression::parse)
                .unwrap_or(tracekit_capture::output::Compression::None),
            template: a.name.clone(),
            max_open: a.max_open_files,
            budget: usize::try_from(
                parse_size(&a.buffer).map_err(|e| anyhow::anyhow!("--buffer: {e}"))?,
            )
            .unwrap_or(usize::MAX)
            .max(1),
            threads: a
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        })
    }
}

/// One row of the flow index.
#[derive(Debug, Serialize)]
pub(crate) struct IndexRow {
    /// Wireshark's stream number for TCP/UDP, else the pair/chunk number or the port.
    id: u64,
    /// Position of the output in order of first appearance.
    output: u32,
    protocol: String,
    endpoint_a: Option<String>,
    endpoint_b: Option<String>,
    key: String,
    file: String,
    packets: u64,
    bytes: u64,
    first_ts: Option<String>,
    last_ts: Option<String>,
}

#[derive(Debug, Serialize)]
struct JsonIndex<'a> {
    outputs: &'a [IndexRow],
    input_packets: u64,
    mode: String,
}

/// Why packets or files were skipped, with the first place it happened.
#[derive(Debug, Default)]
pub(crate) struct Skipped {
    pub(crate) reasons: BTreeMap<String, (u64, String)>,
}

impl Skipped {
    pub(crate) fn add(&mut self, reason: String, place: impl FnOnce() -> String) {
        self.reasons.entry(reason).or_insert_with(|| (0, place())).0 += 1;
    }
    pub(crate) fn total(&self) -> u64 {
        self.reasons.values().map(|(n, _)| n).sum()
    }
}

#[allow(clippy::too_many_lines)] // inputs, the record loop and the report read best in one place
pub fn run(args: &SplitArgs) -> anyhow::Result<Outcome> {
    let opts = SplitOptions::try_from(args)?;
    let spec = Spec::try_from(&args.select)?;
    let found = inputs::expand(&args.inputs);
    let mut skipped = Skipped::default();
    for (path, e) in &found.unreadable {
        skipped.add(format!("unreadable: {e}"), || path.display().to_string());
    }

    let captures = ordered(&found.files, &mut skipped);
    let input_paths: Vec<PathBuf> = found.files.clone();
    // Frame numbers count records in the order split reads them (files by first packet, each
    // in its own order): the time order of a rotated set.
    let mut matcher = (!spec.is_everything())
        .then(|| spec.matcher(captures.first().map_or(0, |(first, _)| *first)));
    let mut frame = 0u64;
    let mut selected = 0u64;
    let mut select_error = None;

    let format = output_format(opts.format.as_deref(), &captures);
    let mut outputs = OutputSet::new(
        &args.output,
        format,
        opts.threads.min(opts.max_open),
        opts.budget,
    )?
    .compressed(opts.compression);
    let mut assigner = Assigner::new(opts.mode, opts.keys);
    let total: u64 = captures.iter().map(|(_, c)| c.data().len() as u64).sum();
    let bar = progress::bytes(total, args.quiet);
    let mut input_packets = 0u64;
    let mut done_bytes = 0u64;
    let mut problems = 0u64;

    // The inputs stay mapped for the whole run: queued records point into them.
    let sources: Vec<&[u8]> = captures.iter().map(|(_, c)| c.data()).collect();
    let read = std::thread::scope(|scope| {
        let mut flushing = None;
        let mut failed = Ok(());
        'inputs: for (index, (_, capture)) in captures.iter().enumerate() {
            let source = Source {
                index: index as u32,
                bytes: capture.data(),
            };
            let mut records = capture.records();
            // Interface numbers of this file → global numbers in the output set.
            let mut global: Vec<u32> = Vec::new();
            let mut n = 0u64;
            while let Some(item) = records.next() {
                let r = match item {
                    Ok(r) => r,
                    Err(e) => {
                        skipped.add(
                            "damaged input: the rest of the file cannot be read".into(),
                            || format!("{}: {e}", capture.path().display()),
                        );
                        break;
                    }
                };
                input_packets += 1;
                frame += 1;
                if let Some(m) = &mut matcher {
                    match m.matches(frame, &r) {
                        Ok(true) => selected += 1,
                        Ok(false) => continue,
                        Err(e) => {
                            select_error = Some(format!("{}: {e}", capture.path().display()));
                            break 'inputs;
                        }
                    }
                }
                while global.len() <= r.interface as usize {
                    let iface = &records.interfaces()[global.len()];
                    global.push(outputs.add_interface(iface));
                }
                let (encoded, header) = outputs.sizes(&r);
                let targets =
                    assigner.assign_with(r.link.0, r.data, r.ts.0, encoded, header, &mut |visit| {
                        for next in records.clone().map_while(Result::ok) {
                            if visit(next.link.0, next.data, next.ts.0) {
                                break;
                            }
                        }
                    });
                for out in std::iter::once(targets.first).chain(targets.second) {
                    let key = &assigner.outputs()[out as usize];
                    outputs.ensure(out, || match &opts.template {
                        Some(t) => key.render(t, out),
                        None => key.stem(),
                    });
                    match outputs.write(out, &r, global[r.interface as usize], source) {
                        Ok(false) => {}
                        Ok(true) => {
                            // The window is written on the worker threads while the next one
                            // is read; the one before must be out first.
                            if let Some(previous) = flushing.take()
                                && let Err(e) = outputs.wait(previous)
                            {
                                failed = Err(e);
                                break 'inputs;
                            }
                            flushing = outputs.flush_behind(scope, &sources);
                        }
                        Err(e) => skipped.add(e.to_string(), || {
                            format!(
                                "{} record {} at byte offset {}",
                                capture.path().display(),
                                r.index,
                                r.offset
                            )
                        }),
                    }
                }
                n += 1;
                if n.is_multiple_of(65_536) {
                    bar.set_position(done_bytes + records.position());
                }
            }
            problems += records.problems().1;
            done_bytes += capture.data().len() as u64;
            bar.set_position(done_bytes);
        }
        // A flush in flight ends before anything else happens to the outputs, even after an
        // error.
        let last = flushing.map_or(Ok(()), |f| outputs.wait(f));
        failed.and(last)
    });
    if let Err(e) = read {
        outputs.abandon();
        return Err(e).context("writing the outputs");
    }
    if let Some(e) = select_error {
        outputs.abandon();
        bail!(e);
    }
    bar.finish_and_clear();

    let keys = assigner.outputs().to_vec();
    let finished = outputs
        .finish(&sources, &input_paths)
        .context("finishing the outputs")?;
    let rows = index_rows(&keys, &finished);
    if let Some(index) = &args.index {
        write_index(index, &rows, input_packets, opts.mode, &input_paths)?;
    }
    if matcher.is_some() {
        eprintln!("tracekit split: {selected} packet(s) selected of {input_packets} read");
    }
    report(
        captures.len(),
        input_packets,
        rows.len(),
        &skipped,
        problems,
        assigner.unmatched_fragments,
        &args.output,
    );
    Ok(if skipped.total() > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// Opens every input and orders them by their first packet (rotated files are one capture):
/// the order split reads them in. Inputs that cannot be opened are counted in `skipped`.
pub(crate) fn ordered(files: &[PathBuf], skipped: &mut Skipped) -> Vec<(i64, Capture)> {
    let mut captures = Vec::new();
    for path in files {
        match Capture::open(path) {
            Ok(c) => {
                let first = c
                    .records()
                    .find_map(|r| r.ok().filter(|r| r.has_ts).map(|r| r.ts.0));
                captures.push((first.unwrap_or(i64::MAX), c));
            }
            Err(e) => skipped.add("input could not be opened".into(), || e.to_string()),
        }
    }
    captures.sort_by_key(|(first, _)| *first);
    captures
}

/// The output format: as asked; else the inputs' own when they agree; else pcapng.
pub(crate) fn output_format(asked: Option<&str>, captures: &[(i64, Capture)]) -> OutputFormat {
    let any_ns = captures.iter().any(|(_, c)| match c.format() {
        Format::Pcap(h) => h.nanos,
        Format::Pcapng => true,
    });
    let all_pcap = !captures.is_empty()
        && captures
            .iter()
            .all(|(_, c)| matches!(c.format(), Format::Pcap(_)));
    match asked {
        Some("pcap") => OutputFormat::Pcap { nanos: any_ns },
        None if all_pcap => OutputFormat::Pcap { nanos: any_ns },
        _ => OutputFormat::Pcapng,
    }
}

pub(crate) fn index_rows(
    keys: &[OutputKey],
    finished: &[(u32, String, OutputStats)],
) -> Vec<IndexRow> {
    finished
        .iter()
        .map(|(out, file, s)| {
            let key = &keys[*out as usize];
            let (a, b) = key.endpoints();
            IndexRow {
                id: key.id(),
                output: *out,
                protocol: key.protocol(),
                endpoint_a: a,
                endpoint_b: b,
                key: key.describe(),
                file: file.clone(),
                packets: s.packets,
                bytes: s.bytes,
                first_ts: s
                    .first_ts
                    .map(|t| timefmt::rfc3339(tracekit_capture::Timestamp(t))),
                last_ts: s
                    .last_ts
                    .map(|t| timefmt::rfc3339(tracekit_capture::Timestamp(t))),
            }
        })
        .collect()
}

pub(crate) fn write_index(
    path: &Path,
    rows: &[IndexRow],
    input_packets: u64,
    mode: Mode,
    inputs: &[PathBuf],
) -> anyhow::Result<()> {
    let input_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut out = tracekit_capture::output::AtomicFile::create(path, &input_refs)?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        serde_json::to_writer_pretty(
            &mut out,
            &JsonIndex {
                outputs: rows,
                input_packets,
                mode: mode.to_string(),
            },
        )?;
        writeln!(out)?;
    } else {
        let mut w = csv::Writer::from_writer(&mut out);
        for row in rows {
            w.serialize(row)?;
        }
        w.flush()?;
    }
    out.commit(false)?;
    Ok(())
}

pub(crate) fn report(
    inputs: usize,
    packets: u64,
    outputs: usize,
    skipped: &Skipped,
    problems: u64,
    unmatched_fragments: u64,
    dir: &Path,
) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "tracekit split: {inputs} input(s), {packets} packets, {outputs} outputs in {}, {} skipped",
        dir.display(),
        skipped.total()
    );
    for (reason, (n, first)) in &skipped.reasons {
        let _ = writeln!(e, "  skipped {n}: {reason} (first: {first})");
    }
    if problems > 0 {
        let _ = writeln!(
            e,
            "  {problems} oddities read past in the inputs (see tracekit info)"
        );
    }
    if unmatched_fragments > 0 {
        let _ = writeln!(
            e,
            "  {unmatched_fragments} IP fragments arrived without their first fragment; they went to their address pair's output"
        );
    }
}
