//! `tracekit index`: an index beside a capture set, so that selections answer without reading
//! every packet. A directory holds a manifest (`tracekit-index.json`: the files, each with its
//! identity, summary and part) and one part per file (`parts/*.tkx`: blocks of records with
//! their byte offsets and time ranges, and postings from keys to blocks and records; see
//! [`part`]). Documented in docs/index-format.md.
//!
//! A query reads only the records its selection can match ([`plan`], the time window, and
//! every record the postings cannot describe), matches them exactly as a full scan does, and
//! hands them to the same merge: the answer is the full scan's, byte for byte. A set of pcap
//! files gives the merge the records read ([`Index::gather`]); a set with pcapng files is
//! walked with jumps over what cannot match, its side blocks read where they are
//! ([`Index::skips`]). Whatever the index cannot narrow (frames, Community IDs of another seed,
//! files out of time order or damaged) is read in full, still correct.
//!
//! Each file is indexed on its own (in parallel), and again only when it changed: a re-run on
//! a directory that gained rotated files indexes those. Parts and the manifest are written
//! under a temporary name and renamed, so two runs at once never leave a torn index.

mod gather;
pub mod keys;
pub mod part;
pub mod plan;
mod selected_flows;
mod state;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tracekit_capture::output::AtomicFile;
use tracekit_capture::{Capture, Skip, pcap};
use tracekit_merge::Survey;
use tracekit_select::Spec;
use tracekit_wire::community::FlowTuple;

pub use gather::Gathered;
use part::{Block, Hits, Postings};
pub use part::{Part, PartFile, Summary};
pub use plan::Plan;
pub use state::STATE;

pub const FORMAT: &str = "tracekit-index";
/// 5: the sieve in checksummed chunks, read a chunk at a time (4: postings name records, not
/// only blocks, and parts are read a page at a time; 3: the flow table `flows.parquet` and the
/// mark of fragments after the first; 2, briefly: the table as zstd-compressed JSON lines).
pub const VERSION: u32 = 5;
pub const MANIFEST: &str = "tracekit-index.json";
/// The set's flow table: `tracekit flows`'s rows as Parquet (made by the caller).
pub const FLOWS: &str = "flows.parquet";
/// Bytes at each end of a file hashed for its identity (with its size and mtime).
const ENDS: u64 = 64 << 10;

/// The index's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The tracekit that wrote it.
    pub tool: String,
    pub block_bytes: u64,
    /// Records after which a block closes (`tracekit index --block-records`).
    pub block_records: u32,
    /// The indexed files, in the order a full scan reads them.
    pub files: Vec<Entry>,
    /// The flow table of all the files, when one was made.
    pub flows: Option<Flows>,
    /// blake3 of `files` and `flows` as compact JSON: a manifest edited or cut is refused.
    pub checksum: String,
}

/// The flow table of the whole set: what `tracekit flows` prints of the indexed files (as
/// Parquet, one column per field of its rows), so that it is answered without reading a
/// packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flows {
    /// Relative to the index directory ([`FLOWS`]), and the blake3 of its bytes.
    pub file: String,
    pub blake3: String,
    /// The identity of the files it was made from ([`Manifest::set_identity`]).
    pub set: String,
    pub rows: u64,
    /// What the reading reported (damaged inputs), as `tracekit flows` reports it.
    pub trouble: Vec<String>,
}

/// What a flow-table maker made (the rows themselves written to the writer it was given).
#[derive(Debug, Clone, Default)]
pub struct FlowsMade {
    pub rows: u64,
    pub trouble: Vec<String>,
}

/// Writes the flow table of the files (absolute paths, in the index's order) to the writer.
pub type MakeFlows<'a> =
    &'a (dyn Fn(&[PathBuf], &mut (dyn std::io::Write + Send)) -> Result<FlowsMade, String> + Sync);

/// Who makes the flow table when the set changed.
#[derive(Clone, Copy)]
pub enum FlowsBy<'a> {
    /// This run, counting every file, or, when the set only grew by files that come after all
    /// of its own in time, only the new ones on top of the table saved last time ([`STATE`]).
    /// The table's state is saved for the next run when `keep_state`, or when the last run
    /// saved one.
    Scan { keep_state: bool },
    /// The caller (a distributed run, from its partitions). No table is saved: the next run
    /// counts every file.
    Caller(MakeFlows<'a>),
}

impl std::fmt::Debug for FlowsBy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlowsBy::Scan { .. } => "Scan",
            FlowsBy::Caller(_) => "Caller",
        })
    }
}

impl Manifest {
    /// The identity of the indexed set: every file's path, size, mtime and ends, in order.
    #[must_use]
    pub fn set_identity(&self) -> String {
        set_identity(&self.files)
    }
}

fn set_identity(files: &[Entry]) -> String {
    let mut h = blake3::Hasher::new();
    for e in files {
        h.update(
            format!(
                "{}\0{}\0{}\0{}\n",
                e.path.display(),
                e.size,
                e.mtime_ns,
                e.ends_blake3
            )
            .as_bytes(),
        );
    }
    h.finalize().to_hex().to_string()
}

/// One indexed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Absolute.
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// blake3 of its first and last 64 KiB (with size and mtime: whether it changed).
    pub ends_blake3: String,
    /// blake3 of the whole file as stored (as `b3sum` prints it).
    pub blake3: String,
    /// The part, relative to the index directory, and the blake3 of its bytes.
    pub part: String,
    pub part_blake3: String,
    /// The blake3 of the part's head as stored in it: a query checks the head it reads
    /// against it, and each page it reads against the head.
    pub part_head: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// The path as it was given to `tracekit index` (a directory's files as found in it),
    /// and what the caller recorded of the file then (`tracekit info`'s summary of it).
    #[serde(default)]
    pub given: PathBuf,
    #[serde(default)]
    pub info: serde_json::Value,
}

/// What the caller records of each file it indexes (see [`Entry::info`]).
pub type Describe<'a> = &'a (dyn Fn(&Path) -> serde_json::Value + Sync);

/// What went wrong with an index.
#[derive(Debug)]
pub enum Error {
    /// Not an index, another format version, or damaged: never answered from.
    Damaged(String),
    /// A file changed or vanished since it was indexed.
    Stale(String),
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Damaged(m) | Error::Io(m) => write!(f, "{m}"),
            Error::Stale(m) => write!(f, "stale index: {m}; run tracekit index again"),
        }
    }
}

impl std::error::Error for Error {}

/// A file's identity: size, mtime, and a hash of its ends.
fn identity(path: &Path) -> std::io::Result<(u64, i64, String)> {
    let meta = std::fs::metadata(path)?;
    let size = meta.len();
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let mut f = std::fs::File::open(path)?;
    // Only the ends are read: no read-ahead past them.
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Random);
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; ENDS as usize];
    let n = (&mut f).take(ENDS).read(&mut buf)?;
    h.update(&buf[..n]);
    if size > ENDS {
        use std::io::Seek as _;
        f.seek(std::io::SeekFrom::Start(
            size.saturating_sub(ENDS).max(ENDS),
        ))?;
        let mut rest = Vec::new();
        f.take(ENDS).read_to_end(&mut rest)?;
        h.update(&rest);
    }
    Ok((size, mtime, h.finalize().to_hex().to_string()))
}

fn whole_blake3(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

fn checksum(files: &[Entry], flows: Option<&Flows>) -> String {
    let json = serde_json::to_vec(&(files, flows)).unwrap_or_default();
    blake3::hash(&json).to_hex().to_string()
}

/// Reads and checks the manifest of the index at `dir`.
///
/// # Errors
/// A missing, foreign, other-version or damaged manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path)
        .map_err(|e| Error::Io(format!("{}: {e} (not a tracekit index?)", path.display())))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Damaged(format!(
            "{}: not a tracekit index manifest: {e}",
            path.display()
        ))
    })?;
    if m.format != FORMAT {
        return Err(Error::Damaged(format!(
            "{}: format {:?}, not {FORMAT}",
            path.display(),
            m.format
        )));
    }
    if m.version != VERSION {
        return Err(Error::Damaged(format!(
            "{}: index format version {} (this tracekit reads version {VERSION}); run tracekit index --rebuild",
            path.display(),
            m.version
        )));
    }
    if checksum(&m.files, m.flows.as_ref()) != m.checksum {
        return Err(Error::Damaged(format!(
            "{}: checksum mismatch: the manifest is damaged; run tracekit index --rebuild",
            path.display()
        )));
    }
    Ok(m)
}

/// What an `index` run did.
#[derive(Debug, Default)]
pub struct Updated {
    pub indexed: Vec<PathBuf>,
    pub kept: usize,
    /// Files of the old manifest no longer given or found.
    pub dropped: Vec<PathBuf>,
    /// Files that changed since they were indexed (re-indexed).
    pub changed: Vec<PathBuf>,
    /// Files that could not be indexed, and why.
    pub failed: Vec<(PathBuf, String)>,
    pub manifest: Option<Manifest>,
    /// Whether the flow table was made anew (the set changed, or it had none).
    pub flows_made: bool,
    /// When it was made from the table saved last time: the files counted on top of it.
    pub flows_carried: Option<usize>,
}

/// Indexes `files` (in the order a full scan reads them) into `dir`, re-using the parts of
/// files that have not changed since an earlier run; `rebuild` starts afresh (an index that
/// cannot be read is refused otherwise). `progress` is told of each file done (bytes).
///
/// # Errors
/// An index that exists but cannot be read (without `rebuild`), or one that cannot be written.
pub fn update(
    dir: &Path,
    files: &[PathBuf],
    (rebuild, block_records): (bool, u32),
    progress: &(dyn Fn(u64) + Sync),
    describe: Describe<'_>,
    make_flows: Option<FlowsBy<'_>>,
) -> Result<Updated, Error> {
    let old = prepare(dir, rebuild)?;
    let abs = absolute(files);
    let inputs: Vec<&Path> = abs.iter().map(PathBuf::as_path).collect();
    let results: Vec<(PathBuf, Result<Indexed, String>)> = abs
        .par_iter()
        .zip(files.par_iter())
        .map(|(path, given)| {
            let r = index_file(
                dir,
                (path, given),
                (old.as_ref(), block_records),
                &inputs,
                describe,
            );
            if let Ok((e, _, _)) = &r {
                progress(e.size);
            }
            (path.clone(), r)
        })
        .collect();
    conclude(
        dir,
        old.as_ref(),
        results,
        block_records,
        &inputs,
        make_flows,
    )
}

/// The first step of an update: the index's manifest as it is (none when there is none, or
/// with `rebuild`), and its parts directory made.
///
/// # Errors
/// An index that exists but cannot be read (without `rebuild`), or a directory that cannot be
/// made.
pub fn prepare(dir: &Path, rebuild: bool) -> Result<Option<Manifest>, Error> {
    let old = if dir.join(MANIFEST).exists() && !rebuild {
        Some(read_manifest(dir)?)
    } else {
        None
    };
    if rebuild {
        state::remove(dir);
    }
    std::fs::create_dir_all(dir.join("parts"))
        .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    Ok(old)
}

/// The paths an index records: each file's canonical path (as given when it has none).
#[must_use]
pub fn absolute(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect()
}

/// Indexes one file (`path`: its absolute path; `given`: as named), or re-uses its part of
/// the `old` manifest when the file has not changed; `inputs`: every file of the set (none may
/// be overwritten).
///
/// # Errors
/// Why the file could not be indexed.
pub fn index_file(
    dir: &Path,
    (path, given): (&Path, &Path),
    (old, block_records): (Option<&Manifest>, u32),
    inputs: &[&Path],
    describe: Describe<'_>,
) -> Result<Indexed, String> {
    let block_records = block_records.clamp(1, part::BLOCK_RECORDS);
    // Parts of blocks of another size are made again.
    let reusable =
        old.filter(|m| m.block_records == block_records && m.block_bytes == part::BLOCK_BYTES);
    index_one(
        dir,
        (path, given),
        (reusable, block_records),
        inputs,
        describe,
    )
}

/// The last step of an update: the parts of files dropped or changed removed, the flow table
/// kept when the set is the one it was made of, else made by `make_flows`, and the manifest
/// written. `results`: each file's [`index_file`], in the set's order.
///
/// # Errors
/// A flow table or manifest that cannot be written.
pub fn conclude(
    dir: &Path,
    old: Option<&Manifest>,
    results: Vec<(PathBuf, Result<Indexed, String>)>,
    block_records: u32,
    inputs: &[&Path],
    make_flows: Option<FlowsBy<'_>>,
) -> Result<Updated, Error> {
    let block_records = block_records.clamp(1, part::BLOCK_RECORDS);
    let mut out = Updated::default();
    let mut entries = Vec::new();
    for (path, r) in results {
        match r {
            Ok((entry, reused, changed)) => {
                if reused {
                    out.kept += 1;
                } else {
                    out.indexed.push(path.clone());
                }
                if changed {
                    out.changed.push(path);
                }
                entries.push(entry);
            }
            Err(e) => out.failed.push((path, e)),
        }
    }
    if let Some(old) = old {
        for e in &old.files {
            if !entries.iter().any(|n| n.path == e.path) {
                out.dropped.push(e.path.clone());
            }
            // The part of a file dropped or changed is no one's any more.
            if !entries.iter().any(|n| n.part == e.part) {
                let _ = std::fs::remove_file(dir.join(&e.part));
            }
        }
    }
    let set = set_identity(&entries);
    // Asked to keep a state it has not saved yet: the table is counted again to save one.
    let stated = dir.join(STATE).exists();
    let counting_for_state =
        matches!(make_flows, Some(FlowsBy::Scan { keep_state: true })) && !stated;
    let kept_flows = old.and_then(|m| m.flows.clone()).filter(|f| {
        !counting_for_state
            && f.set == set
            && f.file == FLOWS
            && std::fs::read(dir.join(&f.file))
                .is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == f.blake3)
    });
    let flows = match (kept_flows, make_flows) {
        (Some(f), _) => Some(f),
        (None, Some(FlowsBy::Scan { keep_state })) => {
            out.flows_made = true;
            let keep = keep_state || stated;
            let (flows, carried) = scan_flows(dir, (old, keep), &entries, set, inputs)?;
            out.flows_carried = carried;
            Some(flows)
        }
        (None, Some(FlowsBy::Caller(make))) => {
            let paths: Vec<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
            out.flows_made = true;
            state::remove(dir);
            Some(write_flows(dir, &paths, set, make, inputs)?)
        }
        (None, None) => None,
    };
    if flows.is_none() {
        let _ = std::fs::remove_file(dir.join(FLOWS));
        state::remove(dir);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        tool: format!("tracekit {}", env!("CARGO_PKG_VERSION")),
        block_bytes: part::BLOCK_BYTES,
        block_records,
        checksum: checksum(&entries, flows.as_ref()),
        files: entries,
        flows,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Io(e.to_string()))?;
    write_atomic(&dir.join(MANIFEST), &json, inputs)?;
    out.manifest = Some(manifest);
    Ok(out)
}

/// Counts the flow table of the set `entries` into [`FLOWS`], and, when `keep`, saves its
/// state ([`STATE`]): from the state the last run saved when the set only grew since (the
/// number of files counted on top of it returned), else from every file.
fn scan_flows(
    dir: &Path,
    (old, keep): (Option<&Manifest>, bool),
    entries: &[Entry],
    set: String,
    inputs: &[&Path],
) -> Result<(Flows, Option<usize>), Error> {
    let hidden = indicatif::ProgressBar::hidden();
    let carried = old.filter(|_| keep).and_then(|old| {
        let prior = carried_from(dir, old, entries)?;
        let added = &entries[prior.names.len()..];
        let captures: Vec<Capture> = added
            .iter()
            .map(|e| Capture::open(&e.path))
            .collect::<Result<_, _>>()
            .ok()?;
        Some((
            tracekit_flows::scan::resume(prior, &captures, &hidden),
            added.len(),
        ))
    });
    let (table, trouble, carried) = match carried {
        Some((table, added)) => (table, Vec::new(), Some(added)),
        None => {
            let mut trouble = Vec::new();
            let mut captures = Vec::new();
            for e in entries {
                match Capture::open(&e.path) {
                    Ok(c) => captures.push(c),
                    Err(err) => trouble.push(format!("{err} (input left out)")),
                }
            }
            let table = if captures.is_empty() {
                Err(format!("no input could be opened: {}", trouble.join("; ")))
            } else {
                tracekit_flows::scan::compute(&captures, &Spec::default(), &hidden)
            };
            (table, trouble, None)
        }
    };
    let target = dir.join(FLOWS);
    let io = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", target.display()));
    let table = table.map_err(|e| io(&e))?;
    let mut trouble = trouble;
    trouble.extend(table.trouble.iter().cloned());
    let rows = table
        .flows
        .flows()
        .iter()
        .map(|f| tracekit_flows::row(&f.summary(), &table.names));
    let (n, blake3) = write_hashed(&target, inputs, |w| {
        tracekit_flows::stored::store_rows(rows, w)
    })?;
    // A table of inputs left out is not carried on (the next run counts them all again).
    if keep && table.names.len() == entries.len() {
        state::save(
            dir,
            (&set, &table.names, table.frames),
            &trouble,
            &table.flows,
            inputs,
        )
        .map_err(|e| Error::Io(format!("{}: {e}", dir.join(STATE).display())))?;
    } else {
        state::remove(dir);
    }
    Ok((
        Flows {
            file: FLOWS.into(),
            blake3,
            set,
            rows: n,
            trouble,
        },
        carried,
    ))
}

/// The table saved by the run that made `old`, when `entries` is `old`'s set followed by files
/// whose records all come at or after every record of it (so a scan of `entries` reads all of
/// `old`'s first): then counting the new files on top of it gives a scan's table.
fn carried_from(dir: &Path, old: &Manifest, entries: &[Entry]) -> Option<tracekit_flows::Prior> {
    let flows = old.flows.as_ref()?;
    let k = old.files.len();
    if k == 0 || entries.len() <= k || set_identity(&entries[..k]) != flows.set {
        return None;
    }
    // In time order within each file, so that a file's first and last times are its extremes.
    if !entries.iter().all(|e| e.summary.in_order) {
        return None;
    }
    let old_last = entries[..k].iter().filter_map(|e| e.summary.last_ns).max();
    let new_first = entries[k..].iter().filter_map(|e| e.summary.first_ns).min();
    if let (Some(last), Some(first)) = (old_last, new_first)
        && first < last
    {
        return None;
    }
    let prior = state::load(dir, &flows.set)?;
    let names_match = prior.names.len() == k
        && prior
            .names
            .iter()
            .zip(&entries[..k])
            .all(|(n, e)| *n == e.path.display().to_string());
    names_match.then_some(prior)
}

/// Makes the flow table of `paths` into [`FLOWS`] (written atomically).
fn write_flows(
    dir: &Path,
    paths: &[PathBuf],
    set: String,
    make: MakeFlows<'_>,
    inputs: &[&Path],
) -> Result<Flows, Error> {
    let (made, blake3) = write_hashed(&dir.join(FLOWS), inputs, |w| make(paths, w))?;
    Ok(Flows {
        file: FLOWS.into(),
        blake3,
        set,
        rows: made.rows,
        trouble: made.trouble,
    })
}

/// Writes `target` atomically through `write` (buffered), hashing what it writes: what `write`
/// returned, and the blake3 (hex) of the bytes.
fn write_hashed<T>(
    target: &Path,
    inputs: &[&Path],
    write: impl FnOnce(&mut (dyn std::io::Write + Send)) -> Result<T, String>,
) -> Result<(T, String), Error> {
    let io = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", target.display()));
    let mut file = AtomicFile::create(target, inputs).map_err(|e| io(&e))?;
    let mut hashed = Hashed {
        inner: &mut file,
        hash: blake3::Hasher::new(),
    };
    let made = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut hashed);
        let made = write(&mut w).map_err(|e| io(&e))?;
        std::io::Write::flush(&mut w).map_err(|e| io(&e))?;
        made
    };
    let blake3 = hashed.hash.finalize().to_hex().to_string();
    file.commit(false).map_err(|e| io(&e))?;
    Ok((made, blake3))
}

/// A writer that hashes what passes through it.
struct Hashed<W> {
    inner: W,
    hash: blake3::Hasher,
}

impl<W: std::io::Write> std::io::Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_atomic(target: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<(), Error> {
    use std::io::Write as _;
    let io = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", target.display()));
    let mut f = AtomicFile::create(target, inputs).map_err(|e| io(&e))?;
    f.write_all(bytes).map_err(|e| io(&e))?;
    f.commit(false).map_err(|e| io(&e))?;
    Ok(())
}

/// A file's entry, whether its part was re-used, and whether it changed since indexed.
pub type Indexed = (Entry, bool, bool);

/// Indexes one file, or re-uses its part.
fn index_one(
    dir: &Path,
    (path, given): (&Path, &Path),
    (old, block_records): (Option<&Manifest>, u32),
    inputs: &[&Path],
    describe: Describe<'_>,
) -> Result<Indexed, String> {
    let (size, mtime_ns, ends) = identity(path).map_err(|e| e.to_string())?;
    let before = old.and_then(|m| m.files.iter().find(|e| e.path == path));
    if let Some(e) = before
        && e.size == size
        && e.mtime_ns == mtime_ns
        && e.ends_blake3 == ends
        && e.given == given
        && std::fs::read(dir.join(&e.part))
            .is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == e.part_blake3)
    {
        return Ok((e.clone(), true, false));
    }
    let capture = Capture::open(path).map_err(|e| e.to_string())?;
    // Three walks of the file, side by side: its part, its hash, the caller's summary.
    let ((built, summary), (whole, info)) = rayon::join(
        || Part::build(&capture, block_records),
        || rayon::join(|| whole_blake3(path), || describe(given)),
    );
    let bytes = built.encode();
    let id = blake3::hash(format!("{}\0{size}\0{mtime_ns}\0{ends}", path.display()).as_bytes())
        .to_hex()
        .to_string();
    let part = format!("parts/{}.tkx", &id[..32]);
    write_atomic(&dir.join(&part), &bytes, inputs).map_err(|e| e.to_string())?;
    Ok((
        Entry {
            path: path.to_path_buf(),
            size,
            mtime_ns,
            ends_blake3: ends,
            blake3: whole.map_err(|e| e.to_string())?,
            part,
            part_blake3: blake3::hash(&bytes).to_hex().to_string(),
            part_head: part::head_blake3(&bytes).unwrap_or_default(),
            summary,
            given: given.to_path_buf(),
            info,
        },
        false,
        before.is_some(),
    ))
}

/// An index opened for queries: its manifest, every file checked unchanged. Parts are read
/// when a query needs them: first each part's sieve (a few kilobytes), then the parts that
/// may hold what the query asks.
#[derive(Debug)]
pub struct Index {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Index {
    /// Opens the index at `dir`, checking the manifest and that every file is as it was
    /// indexed (size, mtime and both ends).
    ///
    /// # Errors
    /// A damaged or foreign manifest, or a file changed or vanished since (stale).
    pub fn open(dir: &Path) -> Result<Index, Error> {
        let manifest = read_manifest(dir)?;
        // Each file's ends are read: from the disk, on threads of their own (on the bench set
        // with the page cache dropped, a query had its 200 files checked 135-229 ms after it
        // started on the two threads of the global pool, 79-88 ms on 32; four runs each).
        let files: Vec<(&Path, u64)> = manifest
            .files
            .iter()
            .map(|e| (e.path.as_path(), e.size))
            .collect();
        let cached = looks_cached(&files, |len| vec![0, len.saturating_sub(1)]);
        on_io_threads(cached, || {
            manifest.files.par_iter().try_for_each(|e| {
                let (size, mtime, ends) = identity(&e.path)
                    .map_err(|err| Error::Stale(format!("{}: {err}", e.path.display())))?;
                if size != e.size {
                    return Err(Error::Stale(format!(
                        "{} is {size} bytes, {} when indexed",
                        e.path.display(),
                        e.size
                    )));
                }
                if mtime != e.mtime_ns || ends != e.ends_blake3 {
                    return Err(Error::Stale(format!(
                        "{} was modified since it was indexed",
                        e.path.display()
                    )));
                }
                Ok(())
            })
        })?;
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Whether file `i`'s time span overlaps `window`.
    fn spans(&self, i: usize, window: tracekit_select::Window) -> bool {
        let s = &self.manifest.files[i].summary;
        s.first_ns
            .zip(s.last_ns)
            .is_some_and(|(lo, hi)| window.overlaps(lo, hi))
    }

    /// The sieve of file `i`'s part, and whether the file may hold what `plan` asks: it is in
    /// the time window (`in_window`) and its sieve says so.
    fn sieve(&self, i: usize, plan: &Plan, in_window: bool) -> Result<(part::Sieve, bool), Error> {
        let e = &self.manifest.files[i];
        let damaged = |m: String| self.damaged(i, &m);
        let mut sieve = part::Sieve::open(&self.dir.join(&e.part)).map_err(damaged)?;
        let may = in_window
            && (*plan == Plan::All
                || sieve.opaque
                || sieve_may(&mut sieve, plan).map_err(damaged)?);
        Ok((sieve, may))
    }

    /// The part of file `i` whose sieve is `sieve`, its head checked against the manifest's
    /// checksum.
    fn part(&self, i: usize, sieve: part::Sieve) -> Result<PartFile, Error> {
        sieve
            .into_part(Some(&self.manifest.files[i].part_head))
            .map_err(|m| self.damaged(i, &m))
    }

    /// The part of file `i` found damaged: `what` is wrong with it.
    fn damaged(&self, i: usize, what: &str) -> Error {
        let e = &self.manifest.files[i];
        Error::Damaged(format!("{}: {what}; run tracekit index --rebuild", e.part))
    }

    /// The set's flow table (the bytes of [`FLOWS`]) and what its reading reported, checked
    /// against its checksum; `None` when the index has none.
    ///
    /// # Errors
    /// A flow table missing or damaged.
    pub fn flows(&self) -> Result<Option<(Vec<u8>, &Flows)>, Error> {
        let Some(f) = &self.manifest.flows else {
            return Ok(None);
        };
        if f.set != self.manifest.set_identity() {
            return Ok(None);
        }
        let bytes = std::fs::read(self.dir.join(&f.file))
            .map_err(|err| Error::Damaged(format!("{}: {err}: the index is damaged", f.file)))?;
        if blake3::hash(&bytes).to_hex().as_str() != f.blake3 {
            return Err(Error::Damaged(format!(
                "{}: checksum mismatch: the index is damaged; run tracekit index --rebuild",
                f.file
            )));
        }
        Ok(Some((bytes, f)))
    }

    /// The flows of the stored flow table whose Community ID (seed 0) is `id`, as the tuples
    /// of their addresses, protocol and ports, each checked by computing its ID again. `None`
    /// when there is no flow table or no TCP, UDP or SCTP flow has that ID (the packets of
    /// the ID, if any, are then found by reading every block).
    ///
    /// # Errors
    /// A flow table found damaged.
    pub fn community_flows(&self, id: &str) -> Result<Option<Vec<FlowTuple>>, Error> {
        let Some((bytes, f)) = self.flows()? else {
            return Ok(None);
        };
        let damaged = |e: &dyn std::fmt::Display| {
            Error::Damaged(format!("{}: {e}: the index is damaged", f.file))
        };
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .map_err(|e| damaged(&e))?;
        let columns = [
            "ip_proto",
            "client",
            "client_port",
            "server",
            "server_port",
            "community_id",
        ];
        let mask = parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            columns.iter().copied(),
        );
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| damaged(&e))?;
        let mut found = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| damaged(&e))?;
            let Some(ids) = batch.column_by_name("community_id") else {
                return Err(damaged(&"no community_id column"));
            };
            for row in strings_equal(ids.as_ref(), id) {
                let rows: Vec<Flow5> = serde_arrow::from_record_batch(&batch.slice(row, 1))
                    .map_err(|e| damaged(&e))?;
                for r in rows {
                    let tuple = match (r.client.parse(), r.server.parse(), r.ip_proto) {
                        (Ok(src), Ok(dst), Some(protocol)) => FlowTuple {
                            src,
                            dst,
                            protocol,
                            ports: r.client_port.zip(r.server_port),
                        },
                        _ => continue,
                    };
                    if tuple.ports.is_some()
                        && tuple.community_id(0) == id
                        && !found.contains(&tuple)
                    {
                        found.push(tuple);
                    }
                }
            }
        }
        Ok((!found.is_empty()).then_some(found))
    }

    /// The full scan's frame numbers of the indexed files' records (`captures`: the files,
    /// in the index's order), or `None` when a file is out of time order or damaged (the
    /// merge's order then needs a walk of its own).
    #[must_use]
    pub fn frame_numbers(&self, captures: &[Capture]) -> Option<FrameNumbers> {
        FrameNumbers::new(&self.manifest.files, captures)
    }

    /// The flow table `tracekit flows` counts for `spec` over the indexed files (`captures`,
    /// opened in the index's order), from the records the selection can match alone; `None`
    /// when the index cannot answer alone (frames asked for, damage, oddities read past, a
    /// file out of time order with a time window or a Community ID, a pcapng set out of time
    /// order): the caller then scans the files.
    ///
    /// # Errors
    /// A part found damaged.
    pub fn flow_table(
        &self,
        captures: &[Capture],
        spec: &Spec,
    ) -> Result<Option<tracekit_flows::Table>, Error> {
        selected_flows::of_selection(self, captures, spec)
    }

    /// The indexed files, in the order a full scan reads them.
    #[must_use]
    pub fn paths(&self) -> Vec<PathBuf> {
        self.manifest.files.iter().map(|e| e.path.clone()).collect()
    }

    /// Surveys of the files without a walk, when every one is in time order and undamaged
    /// (what a time-ordered merge needs to know of them); `None` otherwise.
    #[must_use]
    pub fn surveys<'a>(&self) -> Option<Vec<Survey<'a>>> {
        self.manifest
            .files
            .iter()
            .map(|e| {
                let s = &e.summary;
                (s.in_order && !s.damaged)
                    .then(|| Survey::known_in_order(s.packets, s.first_ns.zip(s.last_ns)))
            })
            .collect()
    }

    /// What `spec` asks of the index, and the set's first packet time (which relative times
    /// of the window count from, as the full scan has it).
    fn plan(&self, spec: &Spec) -> Result<(Plan, i64), Error> {
        let plan = plan::and(
            plan::and(
                spec.filter
                    .as_ref()
                    .map_or(Plan::All, |f| plan::of_filter(&f.expr)),
                spec.hosts.as_ref().map_or(Plan::All, |h| plan::of_hosts(h)),
            ),
            match &spec.community_id {
                Some((id, 0)) => self
                    .community_flows(id)?
                    .map_or(Plan::All, |flows| plan::of_flows(&flows)),
                _ => Plan::All,
            },
        );
        let first = self
            .manifest
            .files
            .iter()
            .filter_map(|e| e.summary.first_ns)
            .min()
            .unwrap_or(0);
        Ok((plan, first))
    }

    /// The records of file `i` (`capture`, pcap with `header`) that `plan` and `window` can
    /// match, matched (unless a Community ID is asked: see [`Index::gather`]).
    fn gather_file<'a>(
        &self,
        i: usize,
        (capture, header): (&'a Capture, pcap::Header),
        (plan, window, first): (&Plan, tracekit_select::Window, i64),
        spec: &Spec,
    ) -> Result<Walked<'a>, Error> {
        let ordered = spec.community_id.is_some();
        // A file outside the window: its part is not opened.
        if !self.spans(i, window) {
            return Ok(Some((Vec::new(), gather::Copied::new(), 0)));
        }
        let (sieve, may) = self.sieve(i, plan, true)?;
        if !may {
            return Ok(Some((Vec::new(), gather::Copied::new(), 0)));
        }
        let mut part = self.part(i, sieve)?;
        let mut matcher = spec.matcher(first);
        let mut keep = |r: &tracekit_capture::Record<'_>| -> Option<bool> {
            if ordered {
                return Some(true);
            }
            matcher.matches(0, r).ok()
        };
        let file = gather::file_of(capture);
        let len = capture.data().len() as u64;
        let mut selected = Vec::new();
        let mut copied = gather::Copied::new();
        let mut read = 0u64;
        let found = candidates(&mut part, plan).map_err(|m| self.damaged(i, &m))?;
        for (b, hits) in in_window(&part, found, window) {
            let block = part.blocks[b as usize];
            let samples = &part.samples[b as usize];
            if let (Hits::Records(ords), Some(f)) = (&hits, &file) {
                let Some(n) = gather::read_listed(
                    (f, header, len),
                    (&block, samples),
                    ords,
                    &mut keep,
                    &mut copied,
                ) else {
                    return Ok(None);
                };
                read += n;
                continue;
            }
            let Some(records) = block_records(capture, &block, samples, &hits) else {
                return Ok(None);
            };
            for r in records {
                read += 1;
                match keep(&r) {
                    Some(true) => selected.push(r),
                    Some(false) => {}
                    None => return Ok(None),
                }
            }
        }
        Ok(Some((selected, copied, read)))
    }

    /// For a walk of every chosen file (`kept`: their positions in the index) that reads all
    /// their blocks but the runs of records the selection cannot match
    /// (`Capture::records_skipping`): the jumps, per file. What a set with pcapng files needs,
    /// whose side blocks (interfaces, statistics, name resolution…) the full scan carries in
    /// the merge's order: the record just before each run of side blocks is read too (the
    /// merge's matcher turns it down unless it matches), so the merge meets them where the
    /// full scan does. A file out of time order, damaged or with oddities read past is read
    /// whole. `Ok(None)` when the index cannot answer alone (frames asked for).
    ///
    /// # Errors
    /// A part found damaged.
    pub fn skips(
        &self,
        captures: &[&Capture],
        kept: &[usize],
        spec: &Spec,
    ) -> Result<Option<Vec<Vec<Skip>>>, Error> {
        if spec.frames.is_some() || spec.is_everything() || captures.len() != kept.len() {
            return Ok(None);
        }
        let (plan, first) = self.plan(spec)?;
        let window = spec.window(first);
        kept.par_iter()
            .zip(captures.par_iter())
            .map(|(&i, &capture)| {
                let e = &self.manifest.files[i];
                let s = &e.summary;
                if !s.in_order || s.damaged || s.problems > 0 {
                    // Read whole, as the full scan reads it (its runs, its damage).
                    return Ok(Vec::new());
                }
                let (sieve, may) = self.sieve(i, &plan, self.spans(i, window))?;
                let mut part = self.part(i, sieve)?;
                let found = if may {
                    candidates(&mut part, &plan)
                } else if part.opaque {
                    part.postings(keys::OPAQUE)
                } else {
                    Ok(Vec::new())
                };
                let found = found.map_err(|m| self.damaged(i, &m))?;
                let found = in_window(&part, found, window);
                Ok(skips_of(
                    &part,
                    &found,
                    capture.data().len() as u64,
                    e.summary.packets,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()
            .map(Some)
    }

    /// What a query reads of the chosen files (`kept`: their positions in the index), only
    /// the parts, blocks and records the selection can match; [`Gathered::selected`] gives
    /// what `set::prefilter` gives from a full walk. `Ok(None)` when the index cannot answer
    /// alone this way (frames asked for, a file not classic pcap, out of time order, damaged
    /// or with oddities read past); the caller then reads the files, or walks them with
    /// [`Index::skips`].
    ///
    /// # Errors
    /// A part found damaged.
    pub fn gather<'a>(
        &self,
        captures: &[&'a Capture],
        kept: &[usize],
        spec: &Spec,
    ) -> Result<Option<Gathered<'a>>, Error> {
        self.gather_in(captures, kept, spec, false)
    }

    /// [`Index::gather`], also over files whose records are not in time order, for a filter or
    /// hosts file alone (no time window, Community ID or frames): each file's records come in
    /// its own order, and the caller orders them as its merge does.
    ///
    /// # Errors
    /// As [`Index::gather`].
    pub fn gather_any_order<'a>(
        &self,
        captures: &[&'a Capture],
        kept: &[usize],
        spec: &Spec,
    ) -> Result<Option<Gathered<'a>>, Error> {
        if spec.after.is_some() || spec.before.is_some() || spec.community_id.is_some() {
            return Ok(None);
        }
        self.gather_in(captures, kept, spec, true)
    }

    fn gather_in<'a>(
        &self,
        captures: &[&'a Capture],
        kept: &[usize],
        spec: &Spec,
        any_order: bool,
    ) -> Result<Option<Gathered<'a>>, Error> {
        if spec.frames.is_some() || spec.is_everything() || captures.len() != kept.len() {
            return Ok(None);
        }
        let plain = kept.iter().all(|&i| {
            let s = &self.manifest.files[i].summary;
            s.format == "pcap" && (s.in_order || any_order) && !s.damaged && s.problems == 0
        });
        let headers: Option<Vec<pcap::Header>> = captures
            .iter()
            .map(|c| match c.format() {
                tracekit_capture::Format::Pcap(h) => Some(h),
                tracekit_capture::Format::Pcapng => None,
            })
            .collect();
        let (true, Some(headers)) = (plain, headers) else {
            return Ok(None);
        };
        let (plan, first) = self.plan(spec)?;
        // A Community ID matches a fragment by its first fragment, which may lie in another
        // file: its candidates are matched by one matcher in the merge's order, as the full
        // scan matches them; the rest, each file on its own.
        let ordered = spec.community_id.is_some();
        let window = spec.window(first);
        let gather = || -> Vec<Result<Walked<'a>, Error>> {
            kept.par_iter()
                .zip(captures.par_iter())
                .zip(headers.par_iter())
                .map(|((&i, &capture), &header)| {
                    self.gather_file(i, (capture, header), (&plan, window, first), spec)
                })
                .collect()
        };
        // Reads of records one by one wait on the disk when the set is not in the page cache:
        // more of them in flight than there are cores. On the bench set, cold, 32 threads
        // answered in 0.75 s where the two of the global pool took 1.83 s. Warm, the threads
        // only cost their making and their waking: the set's pages looking cached, the
        // global pool reads.
        let files: Vec<(&Path, u64)> = captures
            .iter()
            .filter(|c| c.compression().is_none() && c.path().as_os_str() != "-")
            .map(|c| (c.path(), c.data().len() as u64))
            .collect();
        let probed = files.len() == captures.len()
            && looks_cached(&files, |len| {
                (0..4).map(|k| len * (2 * k + 1) / 8).collect()
            });
        let walked = on_io_threads(probed, gather);
        let mut out = Gathered {
            mapped: Vec::with_capacity(kept.len()),
            copied: Vec::with_capacity(kept.len()),
            headers,
            records: 0,
            ordered,
            first,
        };
        for w in walked {
            let Some((selected, copied, read)) = w? else {
                return Ok(None);
            };
            out.mapped.push(selected);
            out.copied.push(copied);
            out.records += read;
        }
        Ok(Some(out))
    }
}

/// Threads reading files whose pages do not look cached (see `Index::gather`).
const IO_THREADS: usize = 32;

/// Runs `work` on the global pool when `cached`, else on [`IO_THREADS`] threads of its own
/// (reads that wait on the disk: more of them in flight than there are cores).
fn on_io_threads<T: Send>(cached: bool, work: impl FnOnce() -> T + Send) -> T {
    if cached {
        return work();
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(IO_THREADS)
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

/// Whether the pages of a set of files (path, length) look cached: a read of one byte that
/// may not wait for the disk (`RWF_NOWAIT`) at the places `at` gives for a file's length, in
/// each of up to sixteen of the files spread over the set, found every one in memory. A file
/// system that cannot tell, or a file that does not open, counts as not cached; a guess
/// either way costs only speed.
fn looks_cached(files: &[(&Path, u64)], at: impl Fn(u64) -> Vec<u64>) -> bool {
    const FILES: usize = 16;
    let step = files.len().div_ceil(FILES).max(1);
    files.iter().step_by(step).all(|&(path, len)| {
        let Ok(file) = std::fs::File::open(path) else {
            return false;
        };
        // No read-ahead on this descriptor: a probe that misses reads no more than it asks.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random);
        at(len).into_iter().all(|place| {
            let mut byte = [0u8; 1];
            matches!(
                rustix::io::preadv2(
                    &file,
                    &mut [std::io::IoSliceMut::new(&mut byte)],
                    place,
                    rustix::io::ReadWriteFlags::NOWAIT,
                ),
                Ok(1)
            )
        })
    })
}

/// The records of `lists` (one per file, each in its order) the selection picks, matched by
/// one matcher in the order the time-ordered merge reads them (by time, a tie by the earlier
/// file); `None` when the matcher fails (the full scan then reports it).
pub(crate) fn match_in_order<'a>(
    lists: Vec<Vec<tracekit_capture::Record<'a>>>,
    spec: &Spec,
    first: i64,
) -> Option<Vec<Vec<tracekit_capture::Record<'a>>>> {
    let mut out = vec![Vec::new(); lists.len()];
    let mut matcher = spec.matcher(first);
    for (i, r, _) in tracekit_merge::set::ByTime::new(lists, &[]) {
        if matcher.matches(0, &r).ok()? {
            out[i].push(r);
        }
    }
    Some(out)
}

/// The columns of a flow table's row that give its tuple and Community ID.
#[derive(Deserialize)]
struct Flow5 {
    ip_proto: Option<u8>,
    client: String,
    client_port: Option<u16>,
    server: String,
    server_port: Option<u16>,
}

/// The rows of a string column equal to `value`.
fn strings_equal(column: &dyn arrow_array::Array, value: &str) -> Vec<usize> {
    use arrow_array::cast::AsArray as _;
    let rows = |it: &mut dyn Iterator<Item = Option<&str>>| -> Vec<usize> {
        it.enumerate()
            .filter_map(|(i, v)| (v == Some(value)).then_some(i))
            .collect()
    };
    if let Some(a) = column.as_string_opt::<i64>() {
        rows(&mut a.iter())
    } else if let Some(a) = column.as_string_opt::<i32>() {
        rows(&mut a.iter())
    } else {
        Vec::new()
    }
}

/// A file's selected records, read in blocks and copied, and the records read (`None`: the
/// index cannot answer).
type Walked<'a> = Option<(Vec<tracekit_capture::Record<'a>>, gather::Copied, u64)>;

/// Whether a part whose sieve is `sieve` may hold what `plan` asks (its chunks read as the
/// keys ask them).
fn sieve_may(sieve: &mut part::Sieve, plan: &Plan) -> Result<bool, String> {
    Ok(match plan {
        Plan::All => true,
        Plan::Key(k) => sieve.may_hold(*k)?,
        Plan::And(ps) => {
            for p in ps {
                if !sieve_may(sieve, p)? {
                    return Ok(false);
                }
            }
            true
        }
        Plan::Or(ps) => {
            for p in ps {
                if sieve_may(sieve, p)? {
                    return Ok(true);
                }
            }
            false
        }
    })
}

/// The blocks of `part` that `plan` can match, ascending, each with the records that can
/// (with the records no key describes, which every query reads).
fn candidates(part: &mut PartFile, plan: &Plan) -> Result<Postings, String> {
    let found = match eval(part, plan)? {
        Some(p) => p,
        None => (0..part.blocks.len() as u32)
            .map(|b| (b, Hits::Block))
            .collect(),
    };
    if !part.opaque {
        return Ok(found);
    }
    Ok(part::union(found, part.postings(keys::OPAQUE)?))
}

/// The postings of a plan (`None`: every record).
fn eval(part: &mut PartFile, plan: &Plan) -> Result<Option<Postings>, String> {
    Ok(match plan {
        Plan::All => None,
        Plan::Key(k) => Some(part.postings(*k)?),
        Plan::Or(ps) => {
            let mut out = Vec::new();
            for p in ps {
                let Some(v) = eval(part, p)? else {
                    return Ok(None);
                };
                out = part::union(out, v);
            }
            Some(out)
        }
        Plan::And(ps) => {
            let mut acc: Option<Postings> = None;
            for p in ps {
                if acc.as_ref().is_some_and(Vec::is_empty) {
                    break;
                }
                if let Some(v) = eval(part, p)? {
                    acc = Some(match acc {
                        None => v,
                        Some(a) => part::intersect(&a, &v),
                    });
                }
            }
            acc
        }
    })
}

/// The records of `block` that `hits` names, reached from the nearest sampled offset
/// (`samples`: the block's); `None` when the file does not hold them as the part says.
fn block_records<'a>(
    capture: &'a Capture,
    block: &Block,
    samples: &[u32],
    hits: &Hits,
) -> Option<Vec<tracekit_capture::Record<'a>>> {
    // A whole block is walked with the bytes ahead requested; a few records, without.
    let at = |ord: u32, few: bool| {
        let s = ord / part::SAMPLE;
        let offset = usize::try_from(block.offset + u64::from(*samples.get(s as usize)?)).ok()?;
        let first = block.first + u64::from(s * part::SAMPLE);
        let records = if few {
            capture.pcap_records_at(offset, first)
        } else {
            capture.pcap_records_from(offset, first)
        }?;
        Some((records, s * part::SAMPLE))
    };
    match hits {
        Hits::Block => {
            let (records, _) = at(0, false)?;
            records
                .take(block.records as usize)
                .map(Result::ok)
                .collect::<Option<Vec<_>>>()
                .filter(|v| v.len() == block.records as usize)
        }
        Hits::Records(ords) => {
            let mut out = Vec::with_capacity(ords.len());
            // The walk so far and the place of the record it reads next.
            let mut walk: Option<(tracekit_capture::Records<'a>, u32)> = None;
            for &ord in ords {
                let ord = u32::from(ord);
                let sample = ord - ord % part::SAMPLE;
                if walk.as_ref().is_none_or(|w| w.1 > ord || w.1 < sample) {
                    walk = Some(at(ord, true)?);
                }
                let (records, next) = walk.as_mut()?;
                while *next < ord {
                    records.next()?.ok()?;
                    *next += 1;
                }
                out.push(records.next()?.ok()?);
                *next += 1;
            }
            Some(out)
        }
    }
}

/// The postings of `found` whose blocks overlap `window`.
fn in_window(part: &PartFile, found: Postings, window: tracekit_select::Window) -> Postings {
    found
        .into_iter()
        .filter(|(b, _)| {
            let b = &part.blocks[*b as usize];
            window.overlaps(b.min_ts, b.max_ts)
        })
        .collect()
}

/// The jumps of a walk of a file of `total` records and `len` bytes whose part is `part` that
/// reads the records `found` names, the last record of every block that side blocks follow,
/// and every block but records.
fn skips_of(part: &PartFile, found: &Postings, len: u64, total: u64) -> Vec<Skip> {
    // The records to read, as ranges of their indexes, ascending, each with its block.
    let mut wanted: Vec<(u64, u64, usize)> = Vec::new();
    let mut push = |start: u64, end: u64, b: usize| match wanted.last_mut() {
        Some(last) if last.1 >= start => last.1 = last.1.max(end),
        _ => wanted.push((start, end, b)),
    };
    let mut found = found.iter().peekable();
    for (b, block) in part.blocks.iter().enumerate() {
        let first = block.first;
        match found.next_if(|(id, _)| *id as usize == b).map(|f| &f.1) {
            Some(Hits::Block) => push(first, first + u64::from(block.records), b),
            Some(Hits::Records(ords)) => {
                for &o in ords {
                    push(first + u64::from(o), first + u64::from(o) + 1, b);
                }
            }
            None => {}
        }
        let next = part.blocks.get(b + 1).map_or(len, |n| n.offset);
        if next != block.end {
            let last = first + u64::from(block.records) - 1;
            push(last, last + 1, b);
        }
    }
    let mut out = Vec::new();
    let mut next = 0u64;
    for (start, end, b) in wanted {
        if start > next {
            let block = &part.blocks[b];
            let sample = (start - block.first) as u32 / part::SAMPLE;
            let sample_first = block.first + u64::from(sample * part::SAMPLE);
            let offset = part.samples[b].get(sample as usize).copied().unwrap_or(0);
            out.push(if sample_first >= next {
                Skip {
                    from: next,
                    to_pos: Some(block.offset + u64::from(offset)),
                    to: sample_first,
                    walk: (start - sample_first) as u32,
                }
            } else {
                Skip {
                    from: next,
                    to_pos: None,
                    to: next,
                    walk: (start - next) as u32,
                }
            });
        }
        next = end;
    }
    if next < total {
        out.push(Skip {
            from: next,
            to_pos: Some(len),
            to: total,
            walk: 0,
        });
    }
    out
}

/// Frame numbers of a set's records as the full scan numbers them: the time-ordered merge
/// takes records by time, a tie by the earlier file, each file in its own order. A record's
/// frame is its place in its file plus, for every other file, the records the merge takes
/// from it first: all or none for a file whose span lies wholly before or after this file's
/// (the only case in a set of rotated files), else counted from that file's record times,
/// read once (a header walk) for the files that overlap another.
#[derive(Debug)]
pub struct FrameNumbers {
    /// Per file: records of the files wholly before it, and the files overlapping it.
    base: Vec<u64>,
    overlapping: Vec<Vec<usize>>,
    /// Record times, ascending, of the files that overlap another (empty for the rest).
    times: Vec<Vec<i64>>,
    /// Per file not in time order: (time, index) of its records, ascending (empty for the
    /// rest): the merge reads its records by time, a tie in file order.
    own: Vec<Vec<(i64, u64)>>,
}

impl FrameNumbers {
    fn new(files: &[Entry], captures: &[Capture]) -> Option<FrameNumbers> {
        if files.len() != captures.len()
            || files
                .iter()
                .any(|e| e.summary.damaged || e.summary.problems > 0)
        {
            return None;
        }
        // A file out of time order has no span to compare: it overlaps every other.
        let span = |e: &Entry| -> Option<(i64, i64)> {
            if e.summary.in_order {
                e.summary.first_ns.zip(e.summary.last_ns)
            } else {
                (e.summary.packets > 0).then_some((i64::MIN, i64::MAX))
            }
        };
        let mut base = vec![0u64; files.len()];
        let mut overlapping = vec![Vec::new(); files.len()];
        for (i, ei) in files.iter().enumerate() {
            let Some((lo, hi)) = span(ei) else { continue };
            for (j, ej) in files.iter().enumerate() {
                let Some((lo_j, hi_j)) = span(ej) else {
                    continue;
                };
                if j == i {
                    continue;
                }
                let wholly_before = hi_j < lo || (hi_j == lo && j < i);
                let wholly_after = lo_j > hi || (lo_j == hi && j > i);
                if wholly_before {
                    base[i] += ej.summary.packets;
                } else if !wholly_after {
                    overlapping[i].push(j);
                }
            }
        }
        let walked: Vec<bool> = (0..files.len())
            .map(|j| overlapping.iter().any(|o| o.contains(&j)))
            .collect();
        let (times, own): (Vec<_>, Vec<_>) = captures
            .par_iter()
            .zip(&walked)
            .zip(files)
            .map(|((c, &w), e)| {
                if !e.summary.in_order {
                    let mut own: Vec<(i64, u64)> = c
                        .records()
                        .map_while(Result::ok)
                        .map(|r| (r.ts.0, r.index))
                        .collect();
                    own.sort_unstable();
                    let times = if w {
                        own.iter().map(|p| p.0).collect()
                    } else {
                        Vec::new()
                    };
                    (times, own)
                } else if w {
                    let times = c.records().map_while(Result::ok).map(|r| r.ts.0).collect();
                    (times, Vec::new())
                } else {
                    (Vec::new(), Vec::new())
                }
            })
            .unzip();
        // A walk that disagrees with the summary (the file changed under us): no answer.
        let agree = (0..files.len()).all(|i| {
            let n = files[i].summary.packets;
            (!walked[i] || times[i].len() as u64 == n)
                && (files[i].summary.in_order || own[i].len() as u64 == n)
        });
        agree.then_some(FrameNumbers {
            base,
            overlapping,
            times,
            own,
        })
    }

    /// The frame number (from 1) of record `index` (from 0) of file `file`, at time `ts`.
    #[must_use]
    pub fn frame(&self, file: usize, index: u64, ts: i64) -> u64 {
        let mut before = self.base[file];
        for &j in &self.overlapping[file] {
            let t = &self.times[j];
            // The merge takes an earlier file's records of the same time first.
            before += if j < file {
                t.partition_point(|&x| x <= ts)
            } else {
                t.partition_point(|&x| x < ts)
            } as u64;
        }
        // Its own records before it: those of its file before it, unless the file is out of
        // time order (then those earlier, or as early and before it in the file).
        let own = &self.own[file];
        before
            + if own.is_empty() {
                index
            } else {
                own.partition_point(|&p| p < (ts, index)) as u64
            }
            + 1
    }
}
