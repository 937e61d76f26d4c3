//! `tracekit anonymize`, `tracekit keygen`, `tracekit leakcheck`.
//!
//! pcapng metadata: the section header keeps only `shb_userappl` ("tracekit anonymize");
//! interface blocks keep link type, snap length, `if_tsresol`, `if_tsoffset` and `if_fcslen`
//! (names, descriptions, addresses, MACs, filters, OS and hardware are removed); packets keep
//! `epb_flags`, `epb_dropcount` and `epb_queue` (comments, hashes, packet IDs and verdicts are
//! removed). Name-resolution, decryption-secrets, statistics, systemd-journal and custom
//! blocks are not written. pcap stays pcap with the same link type, precision and snap length.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rayon::prelude::*;
use tracekit_anonymize::{
    Key, Mapper, Payload, Policy, Reassembled, Reassembler, Rewriter, Secrets,
};
use tracekit_capture::output::{AtomicFile, Compression};
use tracekit_capture::pcapng::{OptionsBuilder, epb_numeric, idb_numeric, opt};
use tracekit_capture::writer::{PacketTime, PcapWriter, PcapngWriter, Precision};
use tracekit_capture::{Capture, Format, Interface, Record, Timestamp, TsResolution};

use crate::cli::{AnonymizeArgs, KeygenArgs, LeakcheckArgs};
use crate::timefmt::parse_signed_duration;
use crate::{Outcome, progress};
use tracekit_capture::inputs;
use tracekit_select::Spec;

/// Records rewritten in parallel at a time.
const BATCH: usize = 16_384;
/// Leak-check hits listed per file.
const HITS_SHOWN: usize = 10;

fn read_key(args: &AnonymizeArgs) -> anyhow::Result<Key> {
    if let Some(f) = &args.key_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Key::from_hex(&text).with_context(|| format!("{}", f.display()));
    }
    let f = args
        .passphrase_file
        .as_ref()
        .expect("clap requires one of the two");
    let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    Key::from_passphrase(line).with_context(|| format!("{}", f.display()))
}

/// What every input of one `anonymize` run shares: the key's rewriter and the options.
#[derive(Debug)]
pub struct Setup {
    pub key: Key,
    pub policy: Policy,
    rewriter: Rewriter,
    shift: i64,
    spec: Spec,
    compress: Option<Compression>,
    pool: rayon::ThreadPool,
}

impl Setup {
    pub fn new(args: &AnonymizeArgs) -> anyhow::Result<Setup> {
        let spec = Spec::try_from(&args.select)?;
        let key = read_key(args)?;
        let payload = match args.payload.as_str() {
            "keep" => Payload::Keep,
            "truncate" => Payload::Truncate,
            "tls-headers" => Payload::TlsHeaders,
            _ => Payload::Zero,
        };
        let policy = Policy {
            keep_private: args.private == "keep-private",
            mac_full: args.mac == "full",
            keep_names: args.names == "keep",
        };
        let shift = args
            .shift
            .as_deref()
            .map(parse_signed_duration)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--shift {e}"))?
            .unwrap_or(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads.unwrap_or(0))
            .build()?;
        Ok(Setup {
            rewriter: Rewriter::new(Mapper::new(&key, policy), payload),
            key,
            policy,
            shift,
            spec,
            compress: args.compress.as_deref().and_then(Compression::parse),
            pool,
        })
    }
}

/// Where each input goes (in input order): its output, or why it is left out (another input
/// has its name); with several inputs, the output directory is made.
pub fn targets(
    args: &AnonymizeArgs,
    files: &[PathBuf],
) -> anyhow::Result<Vec<Result<PathBuf, String>>> {
    if files.is_empty() {
        bail!("no capture among the inputs");
    }
    let many = writes_a_directory(args, files.len())?;
    if many {
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
    }
    let compress = args.compress.as_deref().and_then(Compression::parse);
    let mut names = std::collections::BTreeSet::new();
    Ok(files
        .iter()
        .map(|input| {
            if !many {
                return Ok(args.output.clone());
            }
            let name = input
                .file_name()
                .map_or_else(|| "capture".into(), std::ffi::OsStr::to_os_string);
            if names.insert(name.clone()) {
                Ok(with_compression(args.output.join(name), compress))
            } else {
                Err(format!(
                    "tracekit anonymize: {}: another input has the name {}; left out",
                    input.display(),
                    name.to_string_lossy()
                ))
            }
        })
        .collect())
}

/// What `anonymize` says of one input on stderr, and whether the run is partial because of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Said {
    pub lines: Vec<String>,
    pub partial: bool,
}

/// Anonymizes one input into `target` (or says why it was left out).
pub fn anonymize_one(
    input: &Path,
    target: &Result<PathBuf, String>,
    setup: &Setup,
    args: &AnonymizeArgs,
) -> anyhow::Result<Said> {
    let target = match target {
        Ok(t) => t,
        Err(why) => {
            return Ok(Said {
                lines: vec![why.clone()],
                partial: true,
            });
        }
    };
    let mut said = Said {
        lines: Vec::new(),
        partial: false,
    };
    let to = (target.as_path(), setup.compress);
    let spec = (setup.shift, &setup.spec);
    match setup
        .pool
        .install(|| one(input, to, &setup.rewriter, spec, args.quiet))
    {
        Ok(report) => {
            said.partial |= !report.problems.is_empty();
            for p in report.problems.iter().chain(&report.notes) {
                said.lines
                    .push(format!("tracekit anonymize: {}: {p}", input.display()));
            }
            if args.verify {
                let mut mapper = setup.rewriter.mapper.clone();
                let c = check(input, target, Some(&mut mapper))?;
                said.partial |= c.leaks > 0;
                let mut text = Vec::new();
                say_leaks(target, &c, &mut text)?;
                said.lines
                    .extend(String::from_utf8_lossy(&text).lines().map(str::to_string));
            }
            said.lines.push(format!(
                "{} -> {}: {} packets anonymized",
                input.display(),
                target.display(),
                report.packets
            ));
        }
        Err(e) => {
            said.lines
                .push(format!("tracekit anonymize: {}: {e:#}", input.display()));
            said.partial = true;
        }
    }
    Ok(said)
}

/// Prints what was said of the unreadable directories, then `said` (in input order, as each
/// comes), writes `--mapping-out` from `rows`, and gives the run's outcome. The single run and
/// a distributed one (`tracekit step finish`) both report through here.
pub fn report(
    args: &AnonymizeArgs,
    unreadable: &[(PathBuf, String)],
    said: impl IntoIterator<Item = anyhow::Result<Said>>,
    rows: impl FnOnce() -> anyhow::Result<std::collections::BTreeSet<String>>,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Success;
    for (path, e) in unreadable {
        eprintln!("tracekit anonymize: {}: unreadable: {e}", path.display());
        outcome = Outcome::Partial;
    }
    for s in said {
        let s = s?;
        let mut err = std::io::stderr().lock();
        for line in &s.lines {
            let _ = writeln!(err, "{line}");
        }
        if s.partial {
            outcome = Outcome::Partial;
        }
    }
    if let Some(out) = &args.mapping_out {
        write_mapping(out, &rows()?)?;
        eprintln!(
            "tracekit anonymize: warning: {} undoes the anonymization; do not publish it",
            out.display()
        );
    }
    Ok(outcome)
}

pub fn run(args: &AnonymizeArgs) -> anyhow::Result<Outcome> {
    let setup = Setup::new(args)?;
    let found = inputs::expand(&args.inputs);
    let targets = targets(args, &found.files)?;
    let unreadable: Vec<(PathBuf, String)> = found
        .unreadable
        .iter()
        .map(|(p, e)| (p.clone(), e.to_string()))
        .collect();
    let said = found
        .files
        .iter()
        .zip(&targets)
        .map(|(input, target)| anonymize_one(input, target, &setup, args));
    report(args, &unreadable, said, || {
        Ok(mapping_rows(&found.files, &setup.key, setup.policy))
    })
}

/// Whether `-o` names a directory of outputs (several inputs, or an existing directory); `-`
/// (standard output) takes one input and no `--verify`, which reads the output back.
fn writes_a_directory(args: &AnonymizeArgs, inputs: usize) -> anyhow::Result<bool> {
    if args.output.as_os_str() == "-" {
        if inputs > 1 {
            bail!("-o - (standard output) takes one input; give a directory for several");
        }
        if args.verify {
            bail!("--verify reads the output back: give a file, not -o -");
        }
        return Ok(false);
    }
    Ok(inputs > 1 || args.output.is_dir())
}

struct Report {
    packets: u64,
    problems: Vec<String>,
    /// What was done on purpose and is worth knowing (not a problem: the exit code stays 0).
    notes: Vec<String>,
}

enum Sink<'f> {
    Pcap(PcapWriter<&'f mut AtomicFile>),
    Pcapng {
        writer: PcapngWriter<&'f mut AtomicFile>,
        interfaces: Vec<Option<u32>>,
    },
}

/// Options of `opts` not in `keep`: what to skip when copying.
fn all_but(opts: tracekit_capture::pcapng::Options<'_>, keep: &[u16]) -> Vec<u16> {
    opts.iter()
        .map_while(Result::ok)
        .map(|(code, _)| code)
        .filter(|c| !keep.contains(c))
        .collect()
}

fn add_interface(
    writer: &mut PcapngWriter<&mut AtomicFile>,
    iface: &Interface,
    shift: i64,
) -> anyhow::Result<u32> {
    let mut b = OptionsBuilder::new();
    let keep: &[u16] = if shift == 0 {
        &[opt::IF_TSRESOL, opt::IF_TSOFFSET, opt::IF_FCSLEN]
    } else {
        b.add(opt::IF_TSRESOL, &[TsResolution::NANO.to_option()]);
        &[opt::IF_FCSLEN]
    };
    let view = iface.options.view();
    b.copy_except(view, idb_numeric, &all_but(view, keep));
    Ok(writer.add_interface(iface.link, iface.snaplen, &b.finish())?)
}

/// Writes one anonymized packet to a pcapng output, adding its interface on first use.
fn write_pcapng(
    writer: &mut PcapngWriter<&mut AtomicFile>,
    interfaces: &mut Vec<Option<u32>>,
    known: &[Interface],
    r: &Record<'_>,
    data: &[u8],
    shift: i64,
) -> anyhow::Result<Result<(), tracekit_capture::writer::WriteError>> {
    let k = r.interface as usize;
    if interfaces.len() <= k {
        interfaces.resize(k + 1, None);
    }
    let out = match interfaces[k] {
        Some(o) => o,
        None => {
            let o = add_interface(writer, &known[k], shift)?;
            interfaces[k] = Some(o);
            o
        }
    };
    let view = r.options;
    let options = if view.bytes.is_empty() {
        Vec::new()
    } else {
        let keep = [opt::EPB_FLAGS, opt::EPB_DROPCOUNT, opt::EPB_QUEUE];
        OptionsBuilder::new()
            .copy_except(view, epb_numeric, &all_but(view, &keep))
            .finish()
    };
    let time = if !r.has_ts {
        PacketTime::Raw(0)
    } else if shift == 0 {
        PacketTime::Raw(r.raw_ts)
    } else {
        PacketTime::Nanos(Timestamp(r.ts.0 + shift))
    };
    Ok(writer.write_packet(out, time, data, r.orig_len, &options))
}

/// One worker's share of a batch: the rewritten packets one after another, and where each
/// lies and how long it is. For a pcap output the share holds whole pcap records instead
/// (header and data), ready to be written at once.
#[derive(Default)]
struct Share {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// pcap records encoded: how many, and the packets that could not be (why).
    encoded: Option<(u64, Vec<String>)>,
}

impl Share {
    fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(at, n)| &self.bytes[at..at + n])
    }
}

/// Rewrites a batch: one rewriter (with its address caches) per worker, kept across batches,
/// each taking a contiguous share. The mapping is a pure function of the key, so the output
/// does not depend on the number of workers. The shares are written into `spare`'s buffers
/// (those of a batch already written): fresh buffers every batch cost a page fault per 4 KiB.
fn rewrite_batch(
    batch: &[Record<'_>],
    workers: &mut [Rewriter],
    pcap: Option<(bool, i64)>,
    carried: Option<&Reassembled>,
    spare: Vec<Share>,
) -> Vec<Share> {
    let share = batch.len().div_ceil(workers.len()).max(1);
    let mut shares = spare;
    shares.resize_with(batch.len().div_ceil(share), Share::default);
    batch
        .par_chunks(share)
        .zip(workers.par_iter_mut())
        .zip(shares.par_iter_mut())
        .for_each(|((chunk, rw), out)| {
            out.bytes.clear();
            out.bytes
                .reserve(chunk.iter().map(|r| r.data.len() + 16).sum());
            out.spans.clear();
            out.encoded = pcap.map(|_| (0, Vec::new()));
            for r in chunk {
                let at = out.bytes.len();
                let Some((nanos, shift)) = pcap else {
                    let keep = rw.rewrite_carried(
                        r.link.0,
                        r.data,
                        carried.map(|c| (c, r.index)),
                        &mut out.bytes,
                    );
                    out.bytes.truncate(at + keep);
                    out.spans.push((at, keep));
                    continue;
                };
                // A pcap record: its header, then the rewritten packet.
                let ts = Timestamp(r.ts.0 + shift);
                let (done, problems) = out.encoded.as_mut().expect("pcap share");
                match tracekit_capture::writer::encode::pcap_time(nanos, ts) {
                    Ok((secs, frac)) => {
                        out.bytes.extend_from_slice(&[0; 16]);
                        let keep = rw.rewrite_carried(
                            r.link.0,
                            r.data,
                            carried.map(|c| (c, r.index)),
                            &mut out.bytes,
                        );
                        out.bytes.truncate(at + 16 + keep);
                        let h = &mut out.bytes[at..at + 16];
                        h[0..4].copy_from_slice(&secs.to_le_bytes());
                        h[4..8].copy_from_slice(&frac.to_le_bytes());
                        h[8..12].copy_from_slice(&(keep as u32).to_le_bytes());
                        h[12..16].copy_from_slice(&r.orig_len.to_le_bytes());
                        *done += 1;
                    }
                    Err(e) => problems.push(format!(
                        "packet {} (offset {}) left out: {e}",
                        r.index + 1,
                        r.offset
                    )),
                }
            }
        });
    shares
}

/// Up to [`BATCH`] records, and the damage that ended the file early, if any.
fn read_batch<'a>(
    records: &mut tracekit_capture::Records<'a>,
    mut select: Option<&mut Selecting>,
) -> (Vec<Record<'a>>, Option<tracekit_capture::ReadError>) {
    let mut batch = Vec::with_capacity(BATCH);
    for r in records.by_ref() {
        match r {
            Ok(r) => {
                if let Some(s) = select.as_deref_mut() {
                    s.frame += 1;
                    match s.matcher.matches(s.frame, &r) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            s.error = Some(e);
                            break;
                        }
                    }
                }
                batch.push(r);
                if batch.len() == BATCH {
                    break;
                }
            }
            Err(e) => return (batch, Some(e)),
        }
    }
    (batch, None)
}

/// The selection over one input: its matcher, the frame number reached, a filter that would
/// not compile.
struct Selecting {
    matcher: tracekit_select::Matcher,
    frame: u64,
    error: Option<String>,
}

impl Selecting {
    /// The selection over `capture` on its own (`+TIME` from its first packet), if any.
    fn of(capture: &Capture, spec: &Spec) -> Option<Selecting> {
        (!spec.is_everything()).then(|| {
            let first = capture
                .records()
                .find_map(|r| r.ok().filter(|r| r.has_ts).map(|r| r.ts.0));
            Selecting {
                matcher: spec.matcher(first.unwrap_or(0)),
                frame: 0,
                error: None,
            }
        })
    }
}

/// Writes a rewritten batch in input order.
fn write_batch(
    sink: &mut Sink<'_>,
    records: &tracekit_capture::Records<'_>,
    batch: &[Record<'_>],
    shares: &[Share],
    shift: i64,
    target: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    if let Sink::Pcap(w) = sink
        && shares.iter().all(|s| s.encoded.is_some())
    {
        for share in shares {
            let (count, problems) = share.encoded.as_ref().expect("checked");
            w.write_encoded(&share.bytes, *count)
                .with_context(|| format!("writing {}", target.display()))?;
            report.packets += count;
            report.problems.extend(problems.iter().cloned());
        }
        return Ok(());
    }
    let rewritten = shares.iter().flat_map(Share::packets);
    for (r, data) in batch.iter().zip(rewritten) {
        let ts = Timestamp(r.ts.0 + shift);
        let written = match sink {
            Sink::Pcap(w) => w.write(ts, data, r.orig_len),
            Sink::Pcapng { writer, interfaces } => {
                write_pcapng(writer, interfaces, records.interfaces(), r, data, shift)?
            }
        };
        match written {
            Ok(()) => report.packets += 1,
            Err(tracekit_capture::writer::WriteError::Io(e)) => {
                return Err(e).with_context(|| format!("writing {}", target.display()));
            }
            Err(e) => report.problems.push(format!(
                "packet {} (offset {}) left out: {e}",
                r.index + 1,
                r.offset
            )),
        }
    }
    Ok(())
}

/// A directory output's name (its input's) with the suffix of `--compress`: `.gz` or `.zst`
/// added, or a compression's suffix taken off for `none`.
fn with_compression(target: PathBuf, compress: Option<Compression>) -> PathBuf {
    let Some(how) = compress else {
        return target;
    };
    let had = Compression::by_name(&target);
    if had == how {
        return target;
    }
    let name = target.to_string_lossy();
    let bare = name.strip_suffix(had.suffix()).unwrap_or(&name);
    PathBuf::from(format!("{bare}{}", how.suffix()))
}

/// Anonymizes one file into `target` (compressed as asked, else as its name says).
fn one(
    input: &Path,
    (target, compress): (&Path, Option<Compression>),
    rewriter: &Rewriter,
    (shift, spec): (i64, &Spec),
    quiet: bool,
) -> anyhow::Result<Report> {
    let capture = Capture::open(input)?;
    let mut file = match compress {
        Some(how) => AtomicFile::create_compressed(target, &[input], how)?,
        None => AtomicFile::create(target, &[input])?,
    };
    let mut sink = match capture.format() {
        Format::Pcap(h) => {
            let precision = if h.nanos || shift % 1000 != 0 {
                Precision::Nano
            } else {
                Precision::Micro
            };
            Sink::Pcap(PcapWriter::new(
                &mut file,
                h.link,
                precision,
                h.snaplen.max(1),
            )?)
        }
        Format::Pcapng => {
            let mut shb = OptionsBuilder::new();
            shb.add(opt::SHB_USERAPPL, b"tracekit anonymize");
            Sink::Pcapng {
                writer: PcapngWriter::new(&mut file, &shb.finish())?,
                interfaces: Vec::new(),
            }
        }
    };
    let bar = progress::bytes(capture.data().len() as u64, quiet);
    let mut records = capture.records();
    let mut selecting = Selecting::of(&capture, spec);
    let mut report = Report {
        packets: 0,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    // With payloads kept, the messages that cross packets (DNS over TCP, DNS in fragments)
    // are read whole first: a walk over the file in order.
    let carried = (rewriter.payload == Payload::Keep).then(|| carried_messages(&capture));
    let mut workers: Vec<Rewriter> = vec![rewriter.clone(); rayon::current_num_threads()];
    // pcap outputs get whole records from the workers.
    let pcap = match &sink {
        Sink::Pcap(w) => Some((w.nanos(), shift)),
        Sink::Pcapng { .. } => None,
    };
    // A pipeline: batch N is written while batch N+1 is rewritten.
    let mut pending: Option<(Vec<Record<'_>>, Vec<Share>)> = None;
    let mut spare: Vec<Share> = Vec::new();
    loop {
        let (batch, damage) = read_batch(&mut records, selecting.as_mut());
        if let Some(e) = selecting.as_mut().and_then(|s| s.error.take()) {
            bail!(e);
        }
        let last = batch.is_empty() || damage.is_some();
        let previous = pending.take();
        let (written, shares) = rayon::join(
            || match &previous {
                Some((b, s)) => write_batch(&mut sink, &records, b, s, shift, target, &mut report),
                None => Ok(()),
            },
            || {
                rewrite_batch(
                    &batch,
                    &mut workers,
                    pcap,
                    carried.as_ref(),
                    std::mem::take(&mut spare),
                )
            },
        );
        written?;
        if let Some((_, written)) = previous {
            spare = written;
        }
        if let Some(r) = batch.last() {
            bar.set_position(r.offset);
        }
        if let Some(e) = damage {
            report.problems.push(format!(
                "{e}; the packets before the damage were anonymized"
            ));
        }
        if last {
            write_batch(
                &mut sink,
                &records,
                &batch,
                &shares,
                shift,
                target,
                &mut report,
            )?;
            break;
        }
        pending = Some((batch, shares));
    }
    bar.finish_and_clear();
    drop(sink);
    file.commit(false)?;
    report.notes = zeroed_on_purpose(carried.as_ref(), &workers);
    Ok(report)
}

/// The messages of `capture` that cross packets, read whole: the packets that may carry them
/// are sifted on every thread, a batch at a time, and added in file order.
fn carried_messages(capture: &Capture) -> Reassembled {
    let mut r = Reassembler::new();
    let mut records = capture.records();
    loop {
        let (batch, damage) = read_batch(&mut records, None);
        let wanted: Vec<bool> = batch
            .par_iter()
            .map(|rec| Reassembler::wants(rec.link.0, rec.data))
            .collect();
        for (rec, _) in batch.iter().zip(wanted).filter(|(_, w)| *w) {
            r.add(rec.index, rec.link.0, rec.data);
        }
        if batch.is_empty() || damage.is_some() {
            return r.finish();
        }
    }
}

/// What was zeroed because it could not be read (fail closed), said in a line each.
fn zeroed_on_purpose(carried: Option<&Reassembled>, workers: &[Rewriter]) -> Vec<String> {
    let mut notes = Vec::new();
    let opaque: u64 = workers.iter().map(|w| w.opaque_frames).sum();
    if opaque > 0 {
        notes.push(format!(
            "{opaque} frame(s) zeroed after their capture header: tracekit finds no IP, ARP or link-layer body it can read in them (802.11, an unknown link type), so their addresses could not be mapped"
        ));
    }
    let unparsed = carried.map_or(0, |c| c.unparsed_bytes)
        + workers.iter().map(|w| w.unparsed_bytes).sum::<u64>();
    if unparsed > 0 {
        notes.push(format!(
            "{unparsed} byte(s) of DNS/DHCP messages zeroed: they could not be read through (cut by the snap length or an ICMP quote, a gap in a TCP stream, a fragment missing, malformed), so addresses in them could not be mapped"
        ));
    }
    notes
}

/// The leak check of `anonymized` against `original`.
fn check(
    original: &Path,
    anonymized: &Path,
    mapper: Option<&mut Mapper>,
) -> anyhow::Result<tracekit_anonymize::Check> {
    let capture = Capture::open(original)?;
    let originals: Vec<Record<'_>> = capture.records().map_while(Result::ok).collect();
    let mut secrets = Secrets::of_packets(originals.iter().map(|r| (r.index, r.link.0, r.data)));
    if let Some(m) = mapper {
        secrets.forget_fixed_points(m);
    }
    let output = Capture::open(anonymized)?;
    // Where each output packet lies in the file (they are written one per original, in order).
    let base = output.data().as_ptr() as usize;
    let packets: Vec<(std::ops::Range<usize>, &[u8])> = output
        .records()
        .map_while(Result::ok)
        .zip(&originals)
        .map(|(r, o)| {
            let start = r.data.as_ptr() as usize - base;
            (start..start + r.data.len(), o.data)
        })
        .collect();
    Ok(secrets.check(output.data(), &packets, HITS_SHOWN))
}

fn say_leaks(
    file: &Path,
    c: &tracekit_anonymize::Check,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if c.leaks == 0 {
        return writeln!(
            out,
            "{}: leak check passed ({} address-like byte run(s) made by the rewriting itself)",
            file.display(),
            c.coincidences
        );
    }
    writeln!(
        out,
        "{}: LEAK: {} original address(es) found",
        file.display(),
        c.leaks
    )?;
    for h in &c.hits {
        writeln!(out, "  offset {}: {}", h.offset, h.what)?;
    }
    Ok(())
}

pub fn leakcheck(args: &LeakcheckArgs) -> anyhow::Result<Outcome> {
    let c = check(&args.original, &args.anonymized, None)?;
    say_leaks(&args.anonymized, &c, &mut std::io::stdout().lock())?;
    Ok(if c.leaks == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<Outcome> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = Key::generate()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.output)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never replaced)",
                args.output.display()
            )
        })?;
    writeln!(f, "{}", key.to_hex())?;
    f.sync_all()?;
    eprintln!("{}: new key written (mode 0600)", args.output.display());
    Ok(Outcome::Success)
}

/// `--mapping-out`'s rows: every address of `files` with its image (`original,anonymized`).
pub fn mapping_rows(
    files: &[PathBuf],
    key: &Key,
    policy: Policy,
) -> std::collections::BTreeSet<String> {
    let mut mapper = Mapper::new(key, policy);
    let mut rows = std::collections::BTreeSet::new();
    for f in files {
        let Ok(c) = Capture::open(f) else { continue };
        let secrets = Secrets::of_packets(
            c.records()
                .map_while(Result::ok)
                .map(|r| (r.index, r.link.0, r.data)),
        );
        for bytes in secrets.addresses() {
            rows.insert(mapping_row(&mut mapper, &bytes));
        }
    }
    rows
}

/// `--mapping-out`: the rows as CSV, readable by its owner only.
fn write_mapping(out: &Path, rows: &std::collections::BTreeSet<String>) -> anyhow::Result<()> {
    let mut text = String::from("original,anonymized\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    // The originals, next to their images: as secret as the key.
    let mut file = AtomicFile::create_private(out, &[])?;
    file.write_all(text.as_bytes())?;
    file.commit(true)?;
    Ok(())
}

fn mapping_row(mapper: &mut Mapper, b: &[u8]) -> String {
    match b.len() {
        4 => {
            let v = u32::from_be_bytes(b.try_into().expect("four bytes"));
            format!(
                "{},{}",
                std::net::Ipv4Addr::from(v),
                std::net::Ipv4Addr::from(mapper.v4(v))
            )
        }
        16 => {
            let v = u128::from_be_bytes(b.try_into().expect("sixteen bytes"));
            format!(
                "{},{}",
                std::net::Ipv6Addr::from(v),
                std::net::Ipv6Addr::from(mapper.v6(v))
            )
        }
        _ => {
            let m: [u8; 6] = b.try_into().expect("six bytes");
            let hex = tracekit_analyze::mac_string;
            format!("{},{}", hex(&m), hex(&mapper.mac(m)))
        }
    }
}
