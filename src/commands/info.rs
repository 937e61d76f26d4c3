//! `tracekit info`: what capinfos tells, for many files at once, with damage located.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;
use tracekit_capture::pcapng::opt;
use tracekit_capture::{Capture, Format, LinkType, Timestamp, TsResolution};
use tracekit_merge::set;
use tracekit_merge::{Item, Merger, Order};
use tracekit_select::Spec;

use crate::cli::InfoArgs;
use crate::{Outcome, progress, timefmt};
use tracekit_capture::inputs;

/// The summary of one file; serialized as one JSON line.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub path: PathBuf,
    /// "pcap" or "pcapng"; absent when the file could not be opened.
    pub format: Option<&'static str>,
    /// "gzip" or "zstd" when the file was compressed.
    pub compression: Option<&'static str>,
    pub file_size: u64,
    /// "little-endian", "big-endian" or "mixed" (pcapng sections may differ).
    pub byte_order: Option<&'static str>,
    /// pcap header version or the first pcapng section's version, e.g. "2.4".
    pub version: Option<String>,
    /// pcap: "modified (Kuznetzov)" for magic a1b2cd34.
    pub variant: Option<&'static str>,
    pub timestamp_resolutions: Vec<String>,
    pub link_types: Vec<u16>,
    pub link_type_names: Vec<String>,
    pub interfaces: Vec<InterfaceSummary>,
    pub sections: u64,
    pub packets: u64,
    pub bytes_captured: u64,
    pub bytes_original: u64,
    /// Earliest and latest packet time (like capinfos), RFC 3339 with nanoseconds.
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    pub first_ts_epoch: Option<String>,
    pub last_ts_epoch: Option<String>,
    pub duration: Option<String>,
    /// Every packet is at or after the one before it.
    pub time_ordered: bool,
    pub out_of_order_packets: u64,
    pub packets_without_timestamp: u64,
    /// Largest snap length of any interface (0: not set).
    pub snaplen: u32,
    pub truncated_packets: u64,
    pub largest_packet: u64,
    pub smallest_packet: Option<u64>,
    pub average_packet_size: Option<f64>,
    pub data_rate_bytes_per_sec: Option<f64>,
    pub data_rate_bits_per_sec: Option<f64>,
    pub packet_rate_per_sec: Option<f64>,
    pub blocks: Option<BlockSummary>,
    /// pcapng: each section header's hardware, operating system, application and comments
    /// (capinfos' "Capture hardware/oper-sys/application/comment").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub section_headers: Vec<SectionSummary>,
    /// pcapng: packets that carry at least one comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_with_comments: Option<u64>,
    /// Problems found: damage that stopped the walk (`fatal`), or oddities read past.
    pub errors: Vec<ErrorEntry>,
    /// Problems beyond those listed (only the first hundred are kept).
    pub errors_not_listed: u64,
    /// `--hash`: the file's digests (lower-case hex) by algorithm, as sha256sum and b3sum
    /// print them: of the file as stored, compressed or not.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hashes: BTreeMap<&'static str, String>,
}

#[derive(Debug, Serialize)]
pub struct InterfaceSummary {
    pub id: u32,
    pub section: u32,
    pub link_type: u16,
    pub link_type_name: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub os: Option<String>,
    pub hardware: Option<String>,
    pub snaplen: u32,
    pub timestamp_resolution: String,
    pub tsoffset: i64,
    pub fcs_len: Option<u8>,
    pub packets: u64,
    pub received: Option<u64>,
    pub dropped: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct SectionSummary {
    pub hardware: Option<String>,
    pub os: Option<String>,
    pub application: Option<String>,
    pub comments: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BlockSummary {
    pub section_header: u64,
    pub interface_description: u64,
    pub enhanced_packet: u64,
    pub simple_packet: u64,
    pub obsolete_packet: u64,
    pub name_resolution: u64,
    pub interface_statistics: u64,
    pub decryption_secrets: u64,
    pub custom: u64,
    pub other: u64,
}

#[derive(Debug, Serialize)]
pub struct ErrorEntry {
    pub record: Option<u64>,
    pub offset: Option<u64>,
    pub fatal: bool,
    pub message: String,
}

impl Summary {
    fn failed(path: &Path, message: String) -> Summary {
        let mut s = Summary::empty(path);
        s.errors.push(ErrorEntry {
            record: None,
            offset: None,
            fatal: true,
            message,
        });
        s
    }

    fn empty(path: &Path) -> Summary {
        Summary {
            path: path.to_path_buf(),
            format: None,
            compression: None,
            file_size: std::fs::metadata(path).map_or(0, |m| m.len()),
            byte_order: None,
            version: None,
            variant: None,
            timestamp_resolutions: Vec::new(),
            link_types: Vec::new(),
            link_type_names: Vec::new(),
            interfaces: Vec::new(),
            sections: 0,
            packets: 0,
            bytes_captured: 0,
            bytes_original: 0,
            first_ts: None,
            last_ts: None,
            first_ts_epoch: None,
            last_ts_epoch: None,
            duration: None,
            time_ordered: true,
            out_of_order_packets: 0,
            packets_without_timestamp: 0,
            snaplen: 0,
            truncated_packets: 0,
            largest_packet: 0,
            smallest_packet: None,
            average_packet_size: None,
            data_rate_bytes_per_sec: None,
            data_rate_bits_per_sec: None,
            packet_rate_per_sec: None,
            blocks: None,
            section_headers: Vec::new(),
            packets_with_comments: None,
            errors: Vec::new(),
            errors_not_listed: 0,
            hashes: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Reads a whole capture and summarizes it. Never fails: problems go into `errors`.
#[must_use]
pub fn summarize(path: &Path) -> Summary {
    let capture = match Capture::open(path) {
        Ok(c) => c,
        Err(e) => return Summary::failed(path, e.to_string()),
    };
    let mut s = Summary::empty(path);
    s.file_size = capture.stored_len();
    s.format = Some(capture.format().name());
    s.compression = capture
        .compression()
        .map(tracekit_capture::Compression::name);

    let mut records = capture.records();
    let mut per_iface: Vec<u64> = Vec::new();
    let (mut first, mut last, mut prev) = (i64::MAX, i64::MIN, i64::MIN);
    let mut smallest = u64::MAX;
    let mut commented = 0u64;
    // The hot loop: header fields only, no allocation.
    for item in records.by_ref() {
        let r = match item {
            Ok(r) => r,
            Err(e) => {
                s.errors.push(ErrorEntry {
                    record: Some(e.record),
                    offset: Some(e.offset),
                    fatal: true,
                    message: e.to_string(),
                });
                break;
            }
        };
        let caplen = r.data.len() as u64;
        s.packets += 1;
        s.bytes_captured += caplen;
        s.bytes_original += u64::from(r.orig_len);
        s.largest_packet = s.largest_packet.max(caplen);
        smallest = smallest.min(caplen);
        s.truncated_packets += u64::from(caplen < u64::from(r.orig_len));
        commented += u64::from(!r.options.is_empty() && r.options.get(opt::COMMENT).is_some());
        let i = r.interface as usize;
        if i >= per_iface.len() {
            per_iface.resize(i + 1, 0);
        }
        per_iface[i] += 1;
        if !r.has_ts {
            s.packets_without_timestamp += 1;
            continue;
        }
        let ts = r.ts.0;
        first = first.min(ts);
        last = last.max(ts);
        if ts < prev {
            s.out_of_order_packets += 1;
        }
        prev = ts;
    }
    let (problems, total) = records.problems();
    for p in problems {
        s.errors.push(ErrorEntry {
            record: Some(p.record),
            offset: Some(p.offset),
            fatal: false,
            message: p.message.clone(),
        });
    }
    s.errors_not_listed = total - problems.len() as u64;
    s.errors.sort_by_key(|e| (e.offset, e.fatal));
    s.time_ordered = s.out_of_order_packets == 0;
    s.smallest_packet = (s.packets > 0).then_some(smallest);

    describe_container(&capture, &records, &mut s, &per_iface);
    if s.format == Some("pcapng") {
        s.packets_with_comments = Some(commented);
    }
    if first <= last {
        s.first_ts = Some(timefmt::rfc3339(Timestamp(first)));
        s.last_ts = Some(timefmt::rfc3339(Timestamp(last)));
        s.first_ts_epoch = Some(Timestamp(first).to_string());
        s.last_ts_epoch = Some(Timestamp(last).to_string());
        let duration = last.saturating_sub(first);
        s.duration = Some(timefmt::seconds(duration));
        if duration > 0 {
            let secs = duration as f64 / 1e9;
            s.data_rate_bytes_per_sec = Some(s.bytes_captured as f64 / secs);
            s.data_rate_bits_per_sec = Some(s.bytes_captured as f64 * 8.0 / secs);
            s.packet_rate_per_sec = Some(s.packets as f64 / secs);
        }
    }
    if s.packets > 0 {
        s.average_packet_size = Some(s.bytes_captured as f64 / s.packets as f64);
    }
    s
}

fn describe_container(
    capture: &Capture,
    records: &tracekit_capture::Records<'_>,
    s: &mut Summary,
    per_iface: &[u64],
) {
    match (capture.format(), records) {
        (Format::Pcap(h), _) => {
            s.byte_order = Some(if h.big_endian {
                "big-endian"
            } else {
                "little-endian"
            });
            s.version = Some(format!("{}.{}", h.version.0, h.version.1));
            s.variant = h.modified.then_some("modified (Kuznetzov)");
            s.sections = 0;
        }
        (Format::Pcapng, tracekit_capture::Records::Pcapng(r)) => {
            let sections = r.sections();
            s.sections = sections.len() as u64;
            let orders: BTreeSet<bool> = sections.iter().map(|x| x.big_endian).collect();
            s.byte_order = match (orders.contains(&false), orders.contains(&true)) {
                (true, true) => Some("mixed"),
                (false, true) => Some("big-endian"),
                (true, false) => Some("little-endian"),
                (false, false) => None,
            };
            s.version = sections
                .first()
                .map(|x| format!("{}.{}", x.version.0, x.version.1));
            s.section_headers = sections
                .iter()
                .map(|x| SectionSummary {
                    hardware: x.hardware(),
                    os: x.os(),
                    application: x.user_application(),
                    comments: x
                        .options
                        .view()
                        .comments()
                        .map(std::borrow::Cow::into_owned)
                        .collect(),
                })
                .collect();
            let c = r.counts();
            s.blocks = Some(BlockSummary {
                section_header: c.section,
                interface_description: c.interface,
                enhanced_packet: c.enhanced_packet,
                simple_packet: c.simple_packet,
                obsolete_packet: c.obsolete_packet,
                name_resolution: c.name_resolution,
                interface_statistics: c.statistics,
                decryption_secrets: c.decryption_secrets,
                custom: c.custom,
                other: c.other,
            });
        }
        (Format::Pcapng, _) => {}
    }
    let mut links = BTreeSet::new();
    let mut resolutions = Vec::new();
    for (id, iface) in records.interfaces().iter().enumerate() {
        links.insert(iface.link);
        let res = resolution_name(iface.resolution);
        if !resolutions.contains(&res) {
            resolutions.push(res.clone());
        }
        s.snaplen = s.snaplen.max(iface.snaplen);
        s.interfaces.push(InterfaceSummary {
            id: id as u32,
            section: iface.section,
            link_type: iface.link.0,
            link_type_name: iface.link.to_string(),
            name: iface.name.clone(),
            description: iface.description.clone(),
            os: iface.os.clone(),
            hardware: iface.hardware.clone(),
            snaplen: iface.snaplen,
            timestamp_resolution: res,
            tsoffset: iface.tsoffset,
            fcs_len: iface.fcs_len,
            packets: per_iface.get(id).copied().unwrap_or(0),
            received: iface.received,
            dropped: iface.dropped,
        });
    }
    s.link_types = links.iter().map(|l| l.0).collect();
    s.link_type_names = links.iter().map(ToString::to_string).collect();
    s.timestamp_resolutions = resolutions;
}

fn resolution_name(r: TsResolution) -> String {
    match r {
        TsResolution::Decimal(6) => "microseconds".into(),
        TsResolution::Decimal(9) => "nanoseconds".into(),
        TsResolution::Decimal(3) => "milliseconds".into(),
        TsResolution::Decimal(0) => "seconds".into(),
        TsResolution::Decimal(n) => format!("10^-{n} seconds"),
        TsResolution::Binary(n) => format!("2^-{n} seconds"),
    }
}

pub fn run(args: &InfoArgs) -> anyhow::Result<Outcome> {
    if let Some(dir) = &args.index {
        return run_indexed(args, dir);
    }
    let spec = Spec::try_from(&args.select)?;
    if !args.hash.is_empty() && args.files.iter().any(|f| f.as_os_str() == "-") {
        anyhow::bail!("--hash reads each file again from disk: it cannot hash standard input");
    }
    if !spec.is_everything() {
        return run_selection(args, &spec);
    }
    let found = inputs::expand(&args.files);
    let summaries = summaries_of(&found.files, args)?;
    let rendered: Vec<Rendered> = summaries.iter().map(|s| render(s, args.json)).collect();
    let unreadable: Vec<(PathBuf, String)> = found
        .unreadable
        .iter()
        .map(|(p, e)| (p.clone(), e.to_string()))
        .collect();
    emit(&found.not_captures, &unreadable, &rendered, args.json)
}

/// One file's summary as printed, and whether it was read whole.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rendered {
    pub text: String,
    pub ok: bool,
}

/// `s` as `info` prints it (text, or a JSON line).
#[must_use]
pub fn render(s: &Summary, json: bool) -> Rendered {
    let mut v = Vec::new();
    let _ = print_one(&mut v, s, json);
    Rendered {
        text: String::from_utf8_lossy(&v).into_owned(),
        ok: s.ok(),
    }
}

/// The summaries of `files`, read on `args.threads` threads, in the order given.
pub fn summaries_of(files: &[PathBuf], args: &InfoArgs) -> anyhow::Result<Vec<Summary>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    let bar = progress::items(files.len() as u64, "files", args.quiet);
    let summaries: Vec<Summary> = pool.install(|| {
        files
            .par_iter()
            .map(|p| {
                let mut s = summarize(p);
                if let Err(e) = digests(p, &args.hash, &mut s.hashes) {
                    s.errors.push(ErrorEntry {
                        record: None,
                        offset: None,
                        fatal: true,
                        message: format!("--hash: {e}"),
                    });
                }
                bar.inc(1);
                s
            })
            .collect()
    });
    bar.finish_and_clear();
    Ok(summaries)
}

/// What `info` prints of a set of files: the files passed over (on stderr), the directories
/// that could not be read, then each file's summary (`rendered`, in input order; text ones
/// apart by a blank line). The single run and a distributed one (`tracekit step finish`) both
/// print through here.
pub fn emit(
    not_captures: &[PathBuf],
    unreadable: &[(PathBuf, String)],
    rendered: &[Rendered],
    json: bool,
) -> anyhow::Result<Outcome> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut outcome = Outcome::Success;
    if !not_captures.is_empty() {
        eprintln!(
            "tracekit: passed over {} file(s) in the directories given that are not captures (first: {})",
            not_captures.len(),
            not_captures[0].display()
        );
    }
    for (path, e) in unreadable {
        let s = Summary::failed(path, format!("{}: {e}", path.display()));
        print_one(&mut out, &s, json)?;
        outcome = Outcome::Partial;
    }
    for (n, r) in rendered.iter().enumerate() {
        if n > 0 && !json {
            writeln!(out)?;
        }
        out.write_all(r.text.as_bytes())?;
        if !r.ok {
            outcome = Outcome::Partial;
        }
    }
    out.flush()?;
    Ok(outcome)
}

/// A summary as `info --json` prints it (one line, with its newline).
#[must_use]
pub fn json_line(s: &Summary) -> String {
    let mut v = Vec::new();
    let _ = print_one(&mut v, s, true);
    String::from_utf8_lossy(&v).into_owned()
}

/// A summary as `info` prints it.
#[must_use]
pub fn text(s: &Summary) -> String {
    let mut v = Vec::new();
    let _ = print_one(&mut v, s, false);
    String::from_utf8_lossy(&v).into_owned()
}

/// `info --index`: the summaries the index recorded of its files, as `info` prints them of
/// the files (checked unchanged since); with `--hash` or a selection, the files are read.
fn run_indexed(args: &InfoArgs, dir: &Path) -> anyhow::Result<Outcome> {
    let index = tracekit_index::Index::open(dir)?;
    let spec = Spec::try_from(&args.select)?;
    if !args.hash.is_empty() || !spec.is_everything() {
        let files = index
            .manifest
            .files
            .iter()
            .map(|e| {
                if e.given.as_os_str().is_empty() {
                    e.path.clone()
                } else {
                    e.given.clone()
                }
            })
            .collect();
        let args = InfoArgs {
            index: None,
            files,
            ..args.clone()
        };
        return run(&args);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let key = if args.json { "json" } else { "text" };
    let mut outcome = Outcome::Success;
    for (n, e) in index.manifest.files.iter().enumerate() {
        let Some(stored) = e.info[key].as_str() else {
            anyhow::bail!(
                "{}: the index holds no summary of {} (made by an older tracekit): run tracekit index --rebuild",
                dir.display(),
                e.path.display()
            );
        };
        if n > 0 && !args.json {
            writeln!(out)?;
        }
        out.write_all(stored.as_bytes())?;
        if e.summary.damaged || e.summary.problems > 0 {
            outcome = Outcome::Partial;
        }
    }
    out.flush()?;
    Ok(outcome)
}

fn print_one(out: &mut impl Write, s: &Summary, json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, s)?;
        return writeln!(out);
    }
    print_text(out, s)
}

#[allow(clippy::too_many_lines)] // one line of output per field reads best in one place
fn print_text(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "n/a".into());
    writeln!(out, "File name:            {}", s.path.display())?;
    for (algo, hex) in &s.hashes {
        writeln!(out, "{:<22}{hex}", format!("{}:", algo.to_uppercase()))?;
    }
    let Some(format) = s.format else {
        for e in &s.errors {
            writeln!(out, "Error:                {}", e.message)?;
        }
        return Ok(());
    };
    let compressed = s
        .compression
        .map(|c| format!(" ({c} compressed)"))
        .unwrap_or_default();
    let variant = s.variant.map(|v| format!(", {v}")).unwrap_or_default();
    writeln!(
        out,
        "File type:            {format}{compressed}, {}, version {}{variant}",
        s.byte_order.unwrap_or("?"),
        opt(&s.version)
    )?;
    writeln!(out, "File size:            {} bytes", s.file_size)?;
    writeln!(
        out,
        "Link types:           {}",
        s.link_type_names.join(", ")
    )?;
    writeln!(
        out,
        "Timestamp resolution: {}",
        s.timestamp_resolutions.join(", ")
    )?;
    writeln!(
        out,
        "Snap length:          {}",
        if s.snaplen == 0 {
            "not set".into()
        } else {
            s.snaplen.to_string()
        }
    )?;
    writeln!(out, "Packets:              {}", s.packets)?;
    writeln!(out, "Captured bytes:       {}", s.bytes_captured)?;
    writeln!(out, "Original bytes:       {}", s.bytes_original)?;
    writeln!(
        out,
        "Truncated packets:    {} (cut by the snap length)",
        s.truncated_packets
    )?;
    writeln!(out, "First packet time:    {}", opt(&s.first_ts))?;
    writeln!(out, "Last packet time:     {}", opt(&s.last_ts))?;
    writeln!(out, "Duration:             {} s", opt(&s.duration))?;
    writeln!(
        out,
        "Time ordered:         {}",
        if s.time_ordered {
            "yes".to_string()
        } else {
            format!(
                "no ({} packets earlier than the one before)",
                s.out_of_order_packets
            )
        }
    )?;
    if s.packets_without_timestamp > 0 {
        writeln!(
            out,
            "Without timestamp:    {} (simple packet blocks)",
            s.packets_without_timestamp
        )?;
    }
    let rate =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2} {unit}"));
    writeln!(
        out,
        "Data rate:            {}, {}",
        rate(s.data_rate_bytes_per_sec, "bytes/s"),
        rate(s.data_rate_bits_per_sec, "bits/s")
    )?;
    writeln!(
        out,
        "Packet rate:          {}",
        rate(s.packet_rate_per_sec, "packets/s")
    )?;
    writeln!(
        out,
        "Average packet size:  {}",
        rate(s.average_packet_size, "bytes")
    )?;
    if let Some(b) = &s.blocks {
        writeln!(
            out,
            "Blocks:               {} SHB, {} IDB, {} EPB, {} SPB, {} PB, {} NRB, {} ISB, {} DSB, {} custom, {} other",
            b.section_header,
            b.interface_description,
            b.enhanced_packet,
            b.simple_packet,
            b.obsolete_packet,
            b.name_resolution,
            b.interface_statistics,
            b.decryption_secrets,
            b.custom,
            b.other
        )?;
    }
    for h in &s.section_headers {
        for (label, v) in [
            ("Capture hardware:", &h.hardware),
            ("Capture oper-sys:", &h.os),
            ("Capture application:", &h.application),
        ] {
            if let Some(v) = v {
                writeln!(out, "{label:<22}{v}")?;
            }
        }
        for c in &h.comments {
            writeln!(out, "Capture comment:      {c}")?;
        }
    }
    if let Some(n) = s.packets_with_comments {
        writeln!(out, "Packets with comments: {n}")?;
    }
    writeln!(out, "Interfaces:           {}", s.interfaces.len())?;
    for i in &s.interfaces {
        let name = i
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let descr = i
            .description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        writeln!(
            out,
            "  #{:<3}{name}{descr} {}, snaplen {}, {}, {} packets{}",
            i.id,
            i.link_type_name,
            i.snaplen,
            i.timestamp_resolution,
            i.packets,
            i.dropped
                .map(|d| format!(", {d} dropped"))
                .unwrap_or_default()
        )?;
    }
    if s.errors.is_empty() {
        writeln!(out, "Problems:             none")?;
    } else {
        writeln!(
            out,
            "Problems:             {}",
            s.errors.len() as u64 + s.errors_not_listed
        )?;
        for e in &s.errors {
            let kind = if e.fatal {
                "reading stopped"
            } else {
                "read past"
            };
            writeln!(out, "  {kind}: {}", e.message)?;
        }
    }
    Ok(())
}

/// The digests `algos` asks for of the file at `path`, read once in 1 MiB pieces.
fn digests(
    path: &Path,
    algos: &[String],
    out: &mut BTreeMap<&'static str, String>,
) -> io::Result<()> {
    use sha2::Digest;
    if algos.is_empty() {
        return Ok(());
    }
    let (want_sha, want_b3) = (
        algos.iter().any(|a| a == "sha256"),
        algos.iter().any(|a| a == "blake3"),
    );
    let mut sha = sha2::Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        if want_sha {
            sha.update(&buf[..n]);
        }
        if want_b3 {
            b3.update(&buf[..n]);
        }
    }
    if want_sha {
        out.insert("sha256", hex::encode(sha.finalize()));
    }
    if want_b3 {
        out.insert("blake3", b3.finalize().to_hex().to_string());
    }
    Ok(())
}

/// What `info` says of a selection: the selected packets of all inputs read as one capture.
#[derive(Debug, Serialize)]
struct SelectionSummary {
    inputs: usize,
    files_passed_over: u64,
    bytes_passed_over: u64,
    packets_read: u64,
    packets_selected: u64,
    bytes_captured: u64,
    bytes_original: u64,
    first_ts: Option<String>,
    last_ts: Option<String>,
    duration: Option<String>,
    link_types: Vec<String>,
    /// The inputs that hold selected packets, with how many, in input order.
    files: Vec<FileCount>,
}

#[derive(Debug, Serialize)]
struct FileCount {
    file: String,
    packets: u64,
}

/// `info` with a selection.
fn run_selection(args: &InfoArgs, spec: &Spec) -> anyhow::Result<Outcome> {
    let opened = inputs::open(&args.files)?;
    let captures = opened.captures;
    let mut outcome = Outcome::Success;
    for t in &opened.trouble {
        eprintln!("tracekit info: {t}");
        outcome = Outcome::Partial;
    }
    let shifts = vec![0; captures.len()];
    let chosen = set::choose(&captures, &shifts, spec, true);
    let inputs = chosen.inputs();
    let mut matcher = chosen.matcher.expect("a selection was given");
    let merger = Merger::new(inputs, Order::Time(chosen.surveys.unwrap_or_default()));
    let mut s = SelectionSummary {
        inputs: captures.len(),
        files_passed_over: chosen.passed.files,
        bytes_passed_over: chosen.passed.bytes,
        packets_read: 0,
        packets_selected: 0,
        bytes_captured: 0,
        bytes_original: 0,
        first_ts: None,
        last_ts: None,
        duration: None,
        link_types: Vec::new(),
        files: Vec::new(),
    };
    let mut per_file = vec![0u64; chosen.captures.len()];
    let mut links: Vec<LinkType> = Vec::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut frame = chosen.passed.frames_before;
    for item in merger {
        let (input, r) = match item {
            Item::Record { input, record, .. } => (input, record),
            Item::Side { .. } => continue,
            Item::Damaged { input, error } => {
                eprintln!(
                    "tracekit info: {}: {error}; the records before the damage were read",
                    chosen.captures[input].path().display()
                );
                outcome = Outcome::Partial;
                continue;
            }
        };
        frame += 1;
        s.packets_read += 1;
        let hit = matcher
            .matches(frame, &r)
            .map_err(|e| anyhow::anyhow!("{}: {e}", chosen.captures[input].path().display()))?;
        if !hit {
            if matcher.done_after(frame) {
                break;
            }
            continue;
        }
        s.packets_selected += 1;
        s.bytes_captured += r.data.len() as u64;
        s.bytes_original += u64::from(r.orig_len);
        per_file[input] += 1;
        if !links.contains(&r.link) {
            links.push(r.link);
        }
        if r.has_ts {
            first = first.min(r.ts.0);
            last = last.max(r.ts.0);
        }
    }
    if first <= last {
        s.first_ts = Some(timefmt::rfc3339(Timestamp(first)));
        s.last_ts = Some(timefmt::rfc3339(Timestamp(last)));
        s.duration = Some(timefmt::seconds(last - first));
    }
    s.link_types = links.iter().map(ToString::to_string).collect();
    s.files = chosen
        .captures
        .iter()
        .zip(&per_file)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| FileCount {
            file: c.path().display().to_string(),
            packets: *n,
        })
        .collect();
    print_selection(&s, args.json)?;
    Ok(outcome)
}

fn print_selection(s: &SelectionSummary, json: bool) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    if json {
        serde_json::to_writer(&mut out, s)?;
        writeln!(out)?;
    } else {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "n/a".into());
        writeln!(out, "Inputs:               {}", s.inputs)?;
        writeln!(
            out,
            "Passed over:          {} file(s), {} bytes (outside the time window)",
            s.files_passed_over, s.bytes_passed_over
        )?;
        writeln!(
            out,
            "Packets selected:     {} of {} read",
            s.packets_selected, s.packets_read
        )?;
        writeln!(out, "Captured bytes:       {}", s.bytes_captured)?;
        writeln!(out, "Original bytes:       {}", s.bytes_original)?;
        writeln!(out, "First packet time:    {}", opt(&s.first_ts))?;
        writeln!(out, "Last packet time:     {}", opt(&s.last_ts))?;
        writeln!(out, "Duration:             {} s", opt(&s.duration))?;
        writeln!(out, "Link types:           {}", s.link_types.join(", "))?;
        writeln!(out, "Files with packets:   {}", s.files.len())?;
        for f in &s.files {
            writeln!(out, "  {:>10}  {}", f.packets, f.file)?;
        }
    }
    out.flush()
}
