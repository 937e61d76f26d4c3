//! `split --by stream` as steps (see `steps` and `tracekit_split::shuffle`): map tasks send
//! each packet's place to the partition of its address pair, reduce tasks run the single
//! run's assigner and writer over a partition, the finish gives streams, pairs and outputs the
//! single run's numbers and names and places the files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tracekit_capture::Capture;
use tracekit_split::mode::Mode;
use tracekit_split::outputs::{self, OutputFormat};
use tracekit_split::shuffle::{self, Located, Position, Reduced, Skipped};

use crate::Outcome;
use crate::cli::SplitArgs;
use crate::commands::split::{self, SplitOptions};
use tracekit_capture::inputs;

/// What a plan of `split` decides besides the inputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct SplitPlan {
    pub format: OutputFormat,
    pub partitions: u32,
    /// [`shuffle::PARTITION_HASH`] of the tracekit that planned.
    pub partition_hash: String,
    /// How many inputs opened (the others are in `skipped`).
    pub opened: usize,
    /// What the single run counts as skipped before reading a packet (unreadable
    /// directories, inputs that do not open): reason, count, first place.
    pub skipped: Vec<(String, u64, String)>,
}

/// The inputs of a split in the order it reads them, and what the plan decides.
pub fn plan(s: &SplitArgs, partitions: usize) -> anyhow::Result<(Vec<PathBuf>, SplitPlan)> {
    let opts = SplitOptions::try_from(s)?;
    if opts.mode != Mode::Stream {
        bail!(
            "step plan: split --by {} cannot be distributed yet (so far: --by stream); run it on one machine",
            opts.mode
        );
    }
    if !tracekit_select::Spec::try_from(&s.select)?.is_everything() {
        bail!(
            "step plan: split with a selection cannot be distributed yet (frame numbers span the set); run it on one machine"
        );
    }
    if opts.compression != tracekit_capture::output::Compression::None {
        bail!(
            "step plan: split --compress cannot be distributed yet (its outputs are compressed a write window at a time, and the windows are the single run's); run it on one machine"
        );
    }
    if s.inputs.iter().any(|f| f.as_os_str() == "-") {
        bail!("step plan: standard input cannot be shared with tasks on other machines");
    }
    let found = inputs::expand(&s.inputs);
    let mut skipped = split::Skipped::default();
    for (path, e) in &found.unreadable {
        skipped.add(format!("unreadable: {e}"), || path.display().to_string());
    }
    let captures = split::ordered(&found.files, &mut skipped);
    let format = split::output_format(opts.format.as_deref(), &captures);
    let paths = captures
        .iter()
        .map(|(_, c)| c.path().to_path_buf())
        .collect();
    Ok((
        paths,
        SplitPlan {
            format,
            partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
            partition_hash: shuffle::PARTITION_HASH.into(),
            opened: captures.len(),
            skipped: skipped
                .reasons
                .into_iter()
                .map(|(reason, (n, first))| (reason, n, first))
                .collect(),
        },
    ))
}

/// What a map task commits (its packets' places are in its parts file, `shuffle::parts_file`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Mapped {
    pub packets: u64,
    pub problems: u64,
    pub skipped: Vec<Skipped>,
    /// Why the set cannot be split exactly in partitions, if a packet showed it.
    pub not_exact: Option<String>,
}

/// Map task `n`: inputs `from..to` (of `paths`, the run's order) read, each packet's place
/// sent to its partition.
pub fn map(
    s: &SplitArgs,
    sp: &SplitPlan,
    paths: &[PathBuf],
    (from, to): (usize, usize),
    work: &Path,
    n: usize,
) -> anyhow::Result<Mapped> {
    let opts = SplitOptions::try_from(s)?;
    let mut parts: Vec<Vec<Located>> = vec![Vec::new(); sp.partitions as usize];
    let mut mapped = Mapped {
        packets: 0,
        problems: 0,
        skipped: Vec::new(),
        not_exact: None,
    };
    for (file, path) in paths.iter().enumerate().take(to).skip(from) {
        let capture = Capture::open(path).with_context(|| format!("{}", path.display()))?;
        let mut records = capture.records();
        for (index, item) in records.by_ref().enumerate() {
            let at = Position {
                file: file as u32,
                record: index as u64,
            };
            let r = match item {
                Ok(r) => r,
                Err(e) => {
                    shuffle::skip(
                        &mut mapped.skipped,
                        "damaged input: the rest of the file cannot be read".into(),
                        at,
                        || format!("{}: {e}", capture.path().display()),
                    );
                    break;
                }
            };
            mapped.packets += 1;
            let p = match shuffle::route(r.link.0, r.data, opts.keys, sp.partitions) {
                Ok(p) => p,
                Err(e) => {
                    mapped.not_exact.get_or_insert_with(|| {
                        format!(
                            "{} (record {} of {})",
                            e.0,
                            r.index,
                            capture.path().display()
                        )
                    });
                    0
                }
            };
            parts[p as usize].push(Located {
                file: file as u32,
                record: r.index,
                offset: r.offset,
            });
        }
        mapped.problems += records.problems().1;
    }
    shuffle::commit_parts(&shuffle::parts_file(work, n), &parts).map_err(anyhow::Error::msg)?;
    Ok(mapped)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// What a reduce task commits: its outputs' directory (under the work directory) and what
/// it did.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReducedPart {
    pub dir: String,
    pub reduced: Reduced,
}

/// Reduce task `p`: the partition's packets from every map task, through the single run's
/// assigner and writer.
pub fn reduce(
    s: &SplitArgs,
    sp: &SplitPlan,
    paths: &[PathBuf],
    maps: usize,
    work: &Path,
    p: usize,
) -> anyhow::Result<ReducedPart> {
    let opts = SplitOptions::try_from(s)?;
    let mut located = Vec::new();
    for m in 0..maps {
        if !work.join(format!("map-{m:06}.json")).exists() {
            bail!("map task {m} has not committed: run the map stage first");
        }
        located.extend(
            shuffle::read_part(&shuffle::parts_file(work, m), p as u32)
                .map_err(anyhow::Error::msg)?,
        );
    }
    // A directory of this attempt's own: a repeated task never writes into another's.
    let name = format!("reduce-{p:06}.out-{}-{}", std::process::id(), nanos());
    let reduced = shuffle::reduce(paths, &located, opts.keys, sp.format, &work.join(&name))
        .map_err(anyhow::Error::msg)?;
    Ok(ReducedPart { dir: name, reduced })
}

/// The finish: every output numbered, named and placed as the single run does it, the index
/// and the report as it writes them.
pub fn finish(
    s: &SplitArgs,
    sp: &SplitPlan,
    paths: &[PathBuf],
    maps: &[Mapped],
    reduces: &[ReducedPart],
    work: &Path,
) -> anyhow::Result<Outcome> {
    let opts = SplitOptions::try_from(s)?;
    let refuse = |why: &str| {
        anyhow::Error::new(shuffle::NotExact(format!(
            "this set cannot be split in partitions with the single run's result: {why}; run `tracekit split` on one machine"
        )))
    };
    if let Some(why) = maps.iter().find_map(|m| m.not_exact.as_deref()) {
        return Err(refuse(why));
    }
    let logs: Vec<_> = reduces.iter().map(|r| r.reduced.numbered.clone()).collect();
    let ren = shuffle::renumber(&logs).map_err(|e| refuse(&e.0))?;
    let total: usize = reduces.iter().map(|r| r.reduced.outputs.len()).sum();
    let mut keys = vec![tracekit_split::assign::OutputKey::NonIp; total];
    let mut written = Vec::new();
    for (p, r) in reduces.iter().enumerate() {
        for (local, key) in r.reduced.outputs.iter().enumerate() {
            let g = ren.output[p]
                .get(&(local as u32))
                .copied()
                .context("an output without its numbering")?;
            keys[g as usize] = ren.key(p, key);
        }
        for (local, file, stats) in &r.reduced.written {
            let g = ren.output[p][local];
            let key = &keys[g as usize];
            let stem = match &opts.template {
                Some(t) => key.render(t, g),
                None => key.stem(),
            };
            let name = outputs::file_name(&stem, sp.format, opts.compression, stats);
            written.push((g, work.join(&r.dir).join(file), name, stats.clone()));
        }
    }
    written.sort_by_key(|w| w.0);
    let moves: Vec<(PathBuf, String)> = written
        .iter()
        .map(|(_, from, name, _)| (from.clone(), name.clone()))
        .collect();
    outputs::place(&s.output, &moves, paths).context("placing the outputs")?;
    for r in reduces {
        let _ = std::fs::remove_dir(work.join(&r.dir));
    }
    let finished: Vec<_> = written
        .into_iter()
        .map(|(g, _, name, stats)| (g, name, stats))
        .collect();
    let rows = split::index_rows(&keys, &finished);
    let packets: u64 = maps.iter().map(|m| m.packets).sum();
    if let Some(index) = &s.index {
        split::write_index(index, &rows, packets, opts.mode, paths)?;
    }
    let mut skipped = split::Skipped::default();
    for (reason, n, first) in &sp.skipped {
        skipped.reasons.insert(reason.clone(), (*n, first.clone()));
    }
    let mut later: Vec<Skipped> = Vec::new();
    for s in maps
        .iter()
        .flat_map(|m| &m.skipped)
        .chain(reduces.iter().flat_map(|r| &r.reduced.skipped))
    {
        match later.iter_mut().find(|l| l.reason == s.reason) {
            Some(l) => {
                l.count += s.count;
                if s.first_at < l.first_at {
                    l.first_at = s.first_at;
                    l.first.clone_from(&s.first);
                }
            }
            None => later.push(s.clone()),
        }
    }
    for l in later {
        let e = skipped.reasons.entry(l.reason).or_insert((0, l.first));
        e.0 += l.count;
    }
    split::report(
        sp.opened,
        packets,
        rows.len(),
        &skipped,
        maps.iter().map(|m| m.problems).sum(),
        reduces.iter().map(|r| r.reduced.unmatched_fragments).sum(),
        &s.output,
    );
    Ok(if skipped.total() > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}
