//! `tracekit merge`: inputs merged by time (or appended), with optional clock shifts, automatic
//! clock alignment and duplicate removal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rayon::prelude::*;
use tracekit_capture::output::{AtomicFile, Compression};
use tracekit_capture::pcapng::{Block, OptionsBuilder, block, idb_numeric, opt};
use tracekit_capture::writer::{PcapWriter, PcapngWriter, Precision, WriteError};
use tracekit_capture::{Capture, Format, Interface, LinkType, Record, Timestamp, TsResolution};
use tracekit_merge::align::{self, Alignment, Trace};
use tracekit_merge::dedup::Dedup;
use tracekit_merge::set;
use tracekit_merge::{Input, Item, Merger, Order};
use tracekit_select::Spec;

use crate::cli::MergeArgs;
use crate::timefmt::{parse_signed_duration, signed_seconds};
use crate::{Outcome, progress};
use tracekit_capture::inputs;

/// Packets per input whose signatures are used to estimate a clock offset.
const ALIGN_PACKETS: u64 = 2_000_000;

/// The output, pcap or pcapng.
enum Sink<'f> {
    Pcap {
        writer: PcapWriter<&'f mut AtomicFile>,
        link: LinkType,
    },
    Pcapng {
        writer: PcapngWriter<&'f mut AtomicFile>,
        /// Per input, per interface of that input: the output interface.
        interfaces: Vec<Vec<Option<u32>>>,
    },
}

pub fn run(args: &MergeArgs) -> anyhow::Result<Outcome> {
    write(args, "merge", "pcapng")
}

/// The output format: `--format`, else the output's name (`.pcap`, `.pcapng`, also under
/// `.gz` or `.zst`), else
/// `default`; refused when `--format` contradicts the name.
fn output_format(asked: Option<&str>, output: &Path, default: &str) -> anyhow::Result<String> {
    // Under a compression's suffix: `all.pcapng.gz` is pcapng.
    let bare = match Compression::by_name(output) {
        Compression::None => output.to_path_buf(),
        _ => output.with_extension(""),
    };
    let by_name = match bare.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("pcapng") => Some("pcapng"),
        Some(e) if e.eq_ignore_ascii_case("pcap") => Some("pcap"),
        _ => None,
    };
    match (asked, by_name) {
        (Some(a), Some(n)) if a != n => bail!(
            "--format {a} contradicts the output's name {} (a {n} name); change one of them",
            output.display()
        ),
        (Some(a), _) => Ok(a.to_string()),
        (None, Some(n)) => Ok(n.to_string()),
        (None, None) => Ok(default.to_string()),
    }
}

/// The merge, also behind `tracekit extract` (`command` names it in the summary);
/// `default_format` applies when neither `--format` nor the output's name says, and `auto`
/// means pcap when every input is pcap with one link type, else pcapng.
#[allow(clippy::too_many_lines)] // inputs, alignment, the record loop and the report in one place
pub fn write(args: &MergeArgs, command: &str, default_format: &str) -> anyhow::Result<Outcome> {
    write_indexed(args, command, default_format, None)
}

/// The records a selection picked in each input, found elsewhere (by the tasks of a
/// distributed extract): per input its records' (index, byte offset), in file order; the
/// records read in all; the oddities read past per input. What [`set::prefilter`] finds.
#[derive(Debug)]
pub struct Given {
    pub selected: Vec<Vec<(u64, u64)>>,
    pub records: u64,
    pub problems: Vec<u64>,
}

impl Given {
    /// The records themselves, read at their offsets; `None` if one is not there.
    fn read<'a>(&self, captures: &[&'a Capture]) -> Option<set::Prefiltered<'a>> {
        let mut selected = Vec::with_capacity(captures.len());
        for (c, list) in captures.iter().zip(&self.selected) {
            let mut records = Vec::with_capacity(list.len());
            for &(index, offset) in list {
                let at = usize::try_from(offset).ok()?;
                records.push(c.pcap_records_at(at, index)?.next()?.ok()?);
            }
            selected.push(records);
        }
        (selected.len() == captures.len()).then(|| set::Prefiltered {
            selected,
            records: self.records,
            problems: self.problems.clone(),
        })
    }
}

/// [`write_indexed`] with the selected records given (see [`Given`]), as the single run's
/// parallel selection would have found them: the same output and report.
pub fn write_given(
    args: &MergeArgs,
    command: &str,
    default_format: &str,
    given: &Given,
) -> anyhow::Result<Outcome> {
    write_with(args, command, default_format, None, Some(given))
}

/// [`write`], answering the selection from `index` (of `args.inputs`, in its order) where it
/// can: only the records the selection can match are read.
pub fn write_indexed(
    args: &MergeArgs,
    command: &str,
    default_format: &str,
    index: Option<&tracekit_index::Index>,
) -> anyhow::Result<Outcome> {
    write_with(args, command, default_format, index, None)
}

fn write_with(
    args: &MergeArgs,
    command: &str,
    default_format: &str,
    index: Option<&tracekit_index::Index>,
    given: Option<&Given>,
) -> anyhow::Result<Outcome> {
    let spec = Spec::try_from(&args.select)?;
    let format = output_format(args.format.as_deref(), &args.output, default_format)?;
    let inputs::Opened {
        captures,
        trouble,
        files,
    } = inputs::open(&args.inputs)?;
    let names: Vec<String> = captures
        .iter()
        .map(|c| {
            c.path().file_name().map_or_else(
                || c.path().display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();

    // Clock shifts given by hand, then the estimated ones.
    let mut shifts = vec![0i64; captures.len()];
    for spec in &args.shift {
        let (file, duration) = spec
            .rsplit_once('=')
            .with_context(|| format!("--shift {spec:?}: expected FILE=DURATION"))?;
        let ns = parse_signed_duration(duration).map_err(|e| anyhow::anyhow!("--shift {e}"))?;
        let mut hit = false;
        for (i, c) in captures.iter().enumerate() {
            if c.path() == Path::new(file) || names[i] == file {
                shifts[i] += ns;
                hit = true;
            }
        }
        if !hit {
            bail!("--shift {spec:?}: no input is {file:?}");
        }
    }
    let dedup_window = match &args.dedup {
        Some(w) => Some(parse_signed_duration(w).map_err(|e| anyhow::anyhow!("--dedup {e}"))?),
        None => None,
    };
    if dedup_window.is_some_and(|w| w < 0) {
        bail!("--dedup: the window cannot be negative");
    }

    let mut notes: Vec<String> = Vec::new();
    let mut unaligned = false;
    if args.align == "auto" && captures.len() > 1 {
        let mut traces: Vec<Trace> = captures
            .par_iter()
            .zip(&shifts)
            .map(|(c, &shift)| trace_of(c, shift))
            .collect();
        for i in 1..captures.len() {
            let (first, rest) = traces.split_at_mut(1);
            match align::estimate(&mut first[0], &mut rest[i - 1]) {
                Some(a) => {
                    notes.push(describe(&a, &names[i], &names[0]));
                    shifts[i] += a.offset;
                }
                None => {
                    unaligned = true;
                    notes.push(format!(
                        "{}: no packet was seen in both it and {}; merged unaligned",
                        names[i], names[0]
                    ));
                }
            }
        }
    }
    for (i, &s) in shifts.iter().enumerate() {
        if s != 0 {
            notes.push(format!(
                "clock of {} shifted by {} s",
                names[i],
                signed_seconds(s)
            ));
        }
    }

    let set = Prepared {
        args,
        command,
        format,
        spec: &spec,
        paths: files.iter().map(PathBuf::as_path).collect(),
        captures: &captures,
        names,
        shifts,
        notes,
        unaligned,
        dedup_window,
        index: index.filter(|ix| ix.manifest.files.len() == captures.len()),
        given,
    };
    // Without a time window, the inputs are first read as if each were in time order (one walk
    // instead of a survey and a walk); the first record found out of order stops that pass,
    // and the merge starts again from a survey. Standard output cannot be taken back, so it is
    // always surveyed first.
    let time_ordered = !args.append && !args.keep_order;
    if time_ordered
        && (spec.after.is_none() && spec.before.is_none())
        && args.output.as_os_str() != "-"
        && let Some(outcome) = pass(&set, trouble.clone(), true)?
    {
        return Ok(outcome);
    }
    pass(&set, trouble, false).map(|o| o.expect("a surveyed pass always finishes"))
}

/// A merge's inputs, clocks and options, ready for a pass.
struct Prepared<'a> {
    args: &'a MergeArgs,
    command: &'a str,
    format: String,
    spec: &'a Spec,
    paths: Vec<&'a Path>,
    captures: &'a [Capture],
    names: Vec<String>,
    shifts: Vec<i64>,
    notes: Vec<String>,
    unaligned: bool,
    dedup_window: Option<i64>,
    /// An index of the captures (in their order), to answer the selection from.
    index: Option<&'a tracekit_index::Index>,
    /// The selected records, found by the tasks of a distributed run.
    given: Option<&'a Given>,
}

/// One pass over the inputs, writing the output. `speculative`: each input is read in its own
/// order, merged by time; `None` when one turns out not to be in time order (nothing is
/// committed then).
#[allow(clippy::too_many_lines)] // the record loop and the report in one place
fn pass(
    set: &Prepared<'_>,
    mut trouble: Vec<String>,
    speculative: bool,
) -> anyhow::Result<Option<Outcome>> {
    let Prepared {
        args,
        command,
        spec,
        captures,
        ref names,
        ref shifts,
        ref notes,
        unaligned,
        dedup_window,
        ..
    } = *set;
    let time_ordered = !args.append && !args.keep_order;
    // An index knows each file's time order and span: no survey walks them.
    let known = set.index.and_then(tracekit_index::Index::surveys);
    let chosen = set::choose_surveyed(captures, shifts, spec, time_ordered && !speculative, known);
    let kept = chosen.kept.clone();
    let (passed, mut matcher, mut surveys) = (chosen.passed, chosen.matcher, chosen.surveys);
    let names: Vec<String> = chosen.kept.iter().map(|&i| names[i].clone()).collect();
    let shifts: Vec<i64> = chosen.kept.iter().map(|&i| shifts[i]).collect();
    let captures = chosen.captures;
    if captures.is_empty() {
        trouble.push("no input holds a packet of the time window".to_string());
    }

    // Every input named, read or passed over, is protected from being overwritten.
    let mut file = match args.compress.as_deref().and_then(Compression::parse) {
        Some(how) => AtomicFile::create_compressed(&args.output, &set.paths, how)?,
        None => AtomicFile::create(&args.output, &set.paths)?,
    };
    let pcap = match set.format.as_str() {
        "pcap" => true,
        "auto" => {
            let mut links = captures.iter().map(|c| match c.format() {
                Format::Pcap(h) => Some(h.link),
                Format::Pcapng => None,
            });
            let first = links.next().flatten();
            first.is_some() && links.all(|l| l == first) || captures.is_empty()
        }
        _ => false,
    };
    let mut sink = if pcap {
        // The first packet's link type (pcapng interfaces are known once a packet is read).
        let link = captures
            .iter()
            .find_map(|c| c.records().map_while(Result::ok).next().map(|r| r.link))
            .unwrap_or(LinkType::ETHERNET);
        // Nanoseconds when any input has them or a shift is finer than a microsecond.
        let nanos = captures.iter().any(|c| match c.format() {
            Format::Pcap(h) => h.nanos,
            Format::Pcapng => {
                let mut records = c.records();
                let _ = records.next();
                records
                    .interfaces()
                    .iter()
                    .any(|i| i.resolution != TsResolution::MICRO)
            }
        }) || shifts.iter().any(|s| s % 1000 != 0);
        let precision = if nanos {
            Precision::Nano
        } else {
            Precision::Micro
        };
        Sink::Pcap {
            writer: PcapWriter::new(&mut file, link, precision, 262_144)?,
            link,
        }
    } else {
        let mut shb = OptionsBuilder::new();
        shb.add(opt::SHB_USERAPPL, format!("tracekit {command}").as_bytes());
        for note in notes {
            shb.add(opt::COMMENT, note.as_bytes());
        }
        Sink::Pcapng {
            writer: PcapngWriter::new(&mut file, &shb.finish())?,
            interfaces: vec![Vec::new(); captures.len()],
        }
    };

    let total: u64 = captures.iter().map(|c| c.data().len() as u64).sum();
    let bar = progress::bytes(total, args.quiet);
    let order = if args.append {
        Order::Append
    } else if args.keep_order || speculative {
        Order::KeepInputOrder
    } else {
        Order::Time(surveys.take().unwrap_or_default())
    };
    let disordered: Vec<usize> = match &order {
        Order::Time(surveys) => (0..surveys.len())
            .filter(|&i| !surveys[i].in_order())
            .collect(),
        _ => Vec::new(),
    };
    // A selection that needs no order, over pcap inputs: selected on all cores first.
    // Or from the index: only the records the selection can match.
    let gathered = match set.index {
        Some(ix) if matcher.is_some() && time_ordered => ix.gather(&captures, &kept, spec)?,
        _ => None,
    };
    let from_index = gathered.as_ref().and_then(|g| g.selected(spec));
    // A set with pcapng files: each file walked in full but for the runs of records the
    // selection cannot match, jumped over (side blocks are met where the full scan meets them).
    let mut skipping = match set.index {
        Some(ix) if from_index.is_none() && matcher.is_some() && time_ordered => {
            ix.skips(&captures, &kept, spec)?
        }
        _ => None,
    };
    let indexed = from_index.is_some() || skipping.is_some();
    let inputs: Vec<Input<'_>> = captures
        .iter()
        .zip(&shifts)
        .enumerate()
        .map(|(i, (c, &shift))| Input {
            records: match skipping.as_mut() {
                Some(s) => c.records_skipping(std::mem::take(&mut s[i])),
                None => c.records(),
            },
            shift,
        })
        .collect();
    let prefiltered = from_index.or_else(|| {
        (speculative && matcher.is_some())
            .then(|| match set.given {
                Some(g) => g.read(&captures),
                None => set::prefilter(&captures, spec),
            })
            .flatten()
    });
    let read_in_advance = prefiltered.as_ref().map(|p| p.records);
    let mut merger = match prefiltered {
        Some(p) => Feed::selected(p, &captures, &shifts),
        None => Feed::Merged(Merger::new(inputs, order)),
    };
    if read_in_advance.is_some() {
        matcher = None;
    }
    let mut dedup = dedup_window.map(Dedup::new);
    let mut written = 0u64;
    let mut skipped: Vec<(String, u64, String)> = Vec::new();
    let mut side = SideBlocks::default();
    let mut frame = passed.frames_before;
    let mut latest = vec![i64::MIN; captures.len()];
    let mut selected = 0u64;
    while let Some(item) = merger.next() {
        let (input, record, ts) = match item {
            Item::Record { input, record, ts } => (input, record, ts),
            Item::Side { input, block } => {
                // Every interface of every input gets its output interface, used or not.
                if let Block::Interface(k) = block {
                    if let Sink::Pcapng { writer, interfaces } = &mut sink {
                        output_interface(
                            writer,
                            &mut interfaces[input],
                            merger.interfaces(input),
                            k as usize,
                            (&names[input], shifts[input]),
                        )?;
                    }
                    continue;
                }
                let kind = side_kind(&block);
                let result = match &mut sink {
                    Sink::Pcap { .. } => Err("a pcap file cannot hold them"),
                    Sink::Pcapng { writer, interfaces } => carry_side_block(
                        writer,
                        &mut interfaces[input],
                        merger.interfaces(input),
                        &block,
                        (&names[input], shifts[input]),
                    )
                    .with_context(|| format!("writing {}", args.output.display()))?,
                };
                match result {
                    Ok(()) => *side.carried.entry(kind).or_default() += 1,
                    Err(why) => *side.left_out.entry((kind, why)).or_default() += 1,
                }
                continue;
            }
            Item::Damaged { input, error } => {
                trouble.push(format!(
                    "{}: {error}; its records before the damage were merged",
                    captures[input].path().display()
                ));
                continue;
            }
        };
        frame += 1;
        if speculative {
            if ts < latest[input] {
                return Ok(None);
            }
            latest[input] = ts;
        }
        if let Some(m) = &mut matcher {
            let at = Record {
                ts: Timestamp(ts),
                ..record
            };
            if !m
                .matches(frame, &at)
                .map_err(|e| anyhow::anyhow!("{}: {e}", captures[input].path().display()))?
            {
                // (A speculative pass reads on: a later record out of order would renumber.)
                if !speculative && m.done_after(frame) {
                    break;
                }
                continue;
            }
            selected += 1;
        }
        if let Some(d) = &mut dedup
            && d.is_duplicate(ts, record.link.0, record.orig_len, record.data)
        {
            continue;
        }
        let result = match &mut sink {
            Sink::Pcap { writer, link } => {
                if record.link == *link {
                    writer.write(Timestamp(ts), record.data, record.orig_len)
                } else {
                    Err(WriteError::LinkTypeMismatch {
                        expected: *link,
                        got: record.link,
                    })
                }
            }
            Sink::Pcapng { writer, interfaces } => {
                let out = output_interface(
                    writer,
                    &mut interfaces[input],
                    merger.interfaces(input),
                    record.interface as usize,
                    (&names[input], shifts[input]),
                )?;
                let shifted = Record {
                    ts: Timestamp(ts),
                    ..record
                };
                writer.write_record(out, &shifted, shifts[input] == 0)
            }
        };
        match result {
            Ok(()) => written += 1,
            Err(WriteError::Io(e)) => {
                return Err(e).with_context(|| format!("writing {}", args.output.display()));
            }
            Err(WriteError::LinkTypeMismatch { expected, got }) => bail!(
                "{}: link type {got} differs from the first input's {expected}; a pcap file holds one link type (merge to pcapng instead)",
                captures[input].path().display()
            ),
            Err(e) => {
                let reason = e.to_string();
                match skipped.iter_mut().find(|(r, _, _)| *r == reason) {
                    Some(s) => s.1 += 1,
                    None => skipped.push((
                        reason,
                        1,
                        format!(
                            "{} record {} at byte offset {}",
                            captures[input].path().display(),
                            record.index,
                            record.offset
                        ),
                    )),
                }
            }
        }
        if written.is_multiple_of(65_536) {
            bar.set_position(merger.position());
        }
    }
    bar.finish_and_clear();
    match sink {
        Sink::Pcap { writer, .. } => drop(writer.into_inner()?),
        Sink::Pcapng { writer, .. } => drop(writer.into_inner()?),
    }
    file.commit(false)?;

    let problems: u64 = (0..captures.len()).map(|i| merger.problems(i)).sum();
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "tracekit {command}: {} input(s), {written} packets written to {}",
        captures.len(),
        args.output.display()
    );
    if matcher.is_some() {
        let _ = writeln!(
            e,
            "  {} packet(s) selected of {} read{}",
            selected,
            frame - passed.frames_before,
            if indexed {
                " (from the index: the records the selection can match, and the one before each run of side blocks)"
            } else {
                ""
            }
        );
    } else if let Some(read) = read_in_advance {
        let _ = writeln!(
            e,
            "  {written} packet(s) selected of {read} read{}",
            if indexed {
                " (from the index: the records the selection can match)"
            } else {
                ""
            }
        );
    }
    if passed.files > 0 {
        let _ = writeln!(
            e,
            "  {} file(s) ({} bytes) outside the time window passed over after the header walk; {} file(s) ({} bytes) read",
            passed.files, passed.bytes, passed.read_files, passed.read_bytes
        );
    }
    for note in notes {
        let _ = writeln!(e, "  {note}");
    }
    if !disordered.is_empty() {
        let names: Vec<&str> = disordered.iter().map(|&i| names[i].as_str()).collect();
        let _ = writeln!(
            e,
            "  {} packet(s) moved into time order ({} not in time order: {}; --keep-order keeps each input's own order)",
            merger.moved(),
            if names.len() == 1 { "input" } else { "inputs" },
            names.join(", ")
        );
    }
    if let Some(d) = &dedup {
        let _ = writeln!(e, "  {} exact duplicates dropped", d.dropped);
    }
    side.report(&mut e);
    for (reason, n, first) in &skipped {
        let _ = writeln!(e, "  skipped {n}: {reason} (first: {first})");
    }
    for t in &trouble {
        let _ = writeln!(e, "  {t}");
    }
    if problems > 0 {
        let _ = writeln!(
            e,
            "  {problems} oddities read past in the inputs (see tracekit info)"
        );
    }
    Ok(Some(
        if trouble.is_empty() && skipped.is_empty() && !unaligned {
            Outcome::Success
        } else {
            Outcome::Partial
        },
    ))
}

/// Where the records of a pass come from: the merger over whole inputs, or the records a
/// selection picked in advance (`set::prefilter`), merged by time here.
enum Feed<'a> {
    Merged(Merger<'a>),
    Selected {
        records: set::ByTime<'a>,
        interfaces: Vec<Vec<Interface>>,
        problems: Vec<u64>,
        bytes: u64,
    },
}

impl<'a> Feed<'a> {
    fn selected(p: set::Prefiltered<'a>, captures: &[&'a Capture], shifts: &[i64]) -> Self {
        Feed::Selected {
            records: set::ByTime::new(p.selected, shifts),
            interfaces: captures
                .iter()
                .map(|c| c.records().interfaces().to_vec())
                .collect(),
            problems: p.problems,
            bytes: captures.iter().map(|c| c.data().len() as u64).sum(),
        }
    }

    fn next(&mut self) -> Option<Item<'a>> {
        match self {
            Feed::Merged(m) => m.next(),
            Feed::Selected { records, .. } => records
                .next()
                .map(|(input, record, ts)| Item::Record { input, record, ts }),
        }
    }

    fn interfaces(&self, i: usize) -> &[Interface] {
        match self {
            Feed::Merged(m) => m.interfaces(i),
            Feed::Selected { interfaces, .. } => &interfaces[i],
        }
    }

    fn position(&self) -> u64 {
        match self {
            Feed::Merged(m) => m.position(),
            Feed::Selected { bytes, .. } => *bytes,
        }
    }

    fn problems(&self, i: usize) -> u64 {
        match self {
            Feed::Merged(m) => m.problems(i),
            Feed::Selected { problems, .. } => problems[i],
        }
    }

    fn moved(&self) -> u64 {
        match self {
            Feed::Merged(m) => m.moved(),
            Feed::Selected { .. } => 0,
        }
    }
}

/// The alignment signatures of one input, its shift applied.
fn trace_of(capture: &Capture, shift: i64) -> Trace {
    let mut trace = Trace::new(ALIGN_PACKETS);
    for (n, r) in capture.records().map_while(Result::ok).enumerate() {
        if trace.is_full() {
            break;
        }
        if r.has_ts {
            trace.add(n as u64 + 1, r.ts.0 + shift, r.link.0, r.data);
        }
    }
    trace.finish();
    trace
}

/// One line on an estimated offset.
fn describe(a: &Alignment, name: &str, reference: &str) -> String {
    let kinds: Vec<String> = a.by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let interval = match (a.lo, a.hi) {
        (Some(lo), Some(hi)) => format!(
            "feasible interval [{}, {}] s",
            signed_seconds(lo),
            signed_seconds(hi)
        ),
        _ => "packets matched in one direction only: the offset includes the one-way delay"
            .to_string(),
    };
    let outliers = if a.outliers > 0 {
        format!(", {} contradicting matches left out", a.outliers)
    } else {
        String::new()
    };
    let sample = a.sampled_from.map_or_else(String::new, |n| {
        format!(" (a sample of the flows: {n} packets matched in all)")
    });
    format!(
        "{name}: clock offset to {reference} estimated {} s, {interval}, from {} matched packets ({}) in {} flow(s){sample}{outliers}",
        signed_seconds(a.offset),
        a.matches,
        kinds.join(", "),
        a.flows
    )
}

/// Adds input interface `k` of the input named `name` to the output: named after the input
/// file (`file`, or `file#k` for its later interfaces) so Wireshark can filter on
/// `frame.interface_name`, the original name and description kept as the description, other
/// options copied. A shifted input gets nanosecond resolution and no offset, since its
/// timestamps are rewritten.
/// What became of the inputs' blocks other than packets, sections and interfaces.
#[derive(Debug, Default)]
struct SideBlocks {
    carried: BTreeMap<&'static str, u64>,
    left_out: BTreeMap<(&'static str, &'static str), u64>,
}

impl SideBlocks {
    fn report(&self, e: &mut impl Write) {
        let list = |m: Vec<String>| m.join(", ");
        if !self.carried.is_empty() {
            let _ = writeln!(
                e,
                "  carried {} block(s) of the inputs: {}",
                self.carried.values().sum::<u64>(),
                list(
                    self.carried
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect()
                )
            );
        }
        if !self.left_out.is_empty() {
            let _ = writeln!(
                e,
                "  left out {} block(s) of the inputs: {}",
                self.left_out.values().sum::<u64>(),
                list(
                    self.left_out
                        .iter()
                        .map(|((k, why), n)| format!("{n} {k} ({why})"))
                        .collect()
                )
            );
        }
    }
}

fn side_kind(b: &Block<'_>) -> &'static str {
    match b {
        Block::NameResolution { .. } => "name-resolution",
        Block::DecryptionSecrets { .. } => "decryption-secrets",
        Block::Statistics { .. } => "interface-statistics",
        Block::Other {
            block_type: block::CUSTOM | block::CUSTOM_NO_COPY,
            ..
        } => "custom",
        _ => "other",
    }
}

/// Writes one side block of an input into the pcapng output: name resolution, decryption
/// secrets and copyable custom blocks as they are (re-encoded little endian); interface
/// statistics with the output's interface number, when the input's byte order and clock
/// are kept. `Err(why)` when it cannot be carried; the outer error is a write failure.
fn carry_side_block<W: Write>(
    writer: &mut PcapngWriter<W>,
    map: &mut Vec<Option<u32>>,
    ifaces: &[Interface],
    b: &Block<'_>,
    input: (&str, i64),
) -> anyhow::Result<Result<(), &'static str>> {
    if let Block::Statistics {
        interface,
        body,
        big_endian,
    } = *b
    {
        if big_endian || input.1 != 0 {
            return Ok(Err("its times and counters would need re-encoding"));
        }
        if body.len() < 12 || interface as usize >= ifaces.len() {
            return Ok(Err("it names an unknown interface"));
        }
        let out = output_interface(writer, map, ifaces, interface as usize, input)?;
        let mut body = body.to_vec();
        body[..4].copy_from_slice(&out.to_le_bytes());
        writer.write_raw_block(block::INTERFACE_STATISTICS, &body)?;
        return Ok(Ok(()));
    }
    match b.portable() {
        Some((block_type, body)) => {
            writer.write_raw_block(block_type, &body)?;
            Ok(Ok(()))
        }
        None if matches!(
            b,
            Block::Other {
                block_type: block::CUSTOM_NO_COPY,
                ..
            }
        ) =>
        {
            Ok(Err("marked not to be copied"))
        }
        None => Ok(Err("not a block another file can carry")),
    }
}

/// The output interface of input interface `k`, written when first needed.
fn output_interface<W: Write>(
    writer: &mut PcapngWriter<W>,
    map: &mut Vec<Option<u32>>,
    ifaces: &[Interface],
    k: usize,
    (name, shift): (&str, i64),
) -> anyhow::Result<u32> {
    if map.len() <= k {
        map.resize(k + 1, None);
    }
    if let Some(o) = map[k] {
        return Ok(o);
    }
    let o = add_interface(writer, &ifaces[k], name, k, shift)?;
    map[k] = Some(o);
    Ok(o)
}

fn add_interface<W: Write>(
    writer: &mut PcapngWriter<W>,
    iface: &Interface,
    name: &str,
    k: usize,
    shift: i64,
) -> anyhow::Result<u32> {
    let mut skip = vec![opt::IF_NAME, opt::IF_DESCRIPTION];
    if shift != 0 {
        skip.extend([opt::IF_TSRESOL, opt::IF_TSOFFSET]);
    }
    let mut b = OptionsBuilder::new();
    let out_name = if k == 0 {
        name.to_string()
    } else {
        format!("{name}#{k}")
    };
    b.add(opt::IF_NAME, out_name.as_bytes());
    let description = match (&iface.name, &iface.description) {
        (Some(n), Some(d)) => Some(format!("{n} ({d})")),
        (Some(n), None) => Some(n.clone()),
        (None, Some(d)) => Some(d.clone()),
        (None, None) => None,
    };
    if let Some(d) = description {
        b.add(opt::IF_DESCRIPTION, d.as_bytes());
    }
    if shift != 0 {
        b.add(opt::IF_TSRESOL, &[TsResolution::NANO.to_option()]);
    }
    b.copy_except(iface.options.view(), idb_numeric, &skip);
    Ok(writer.add_interface(iface.link, iface.snaplen, &b.finish())?)
}
