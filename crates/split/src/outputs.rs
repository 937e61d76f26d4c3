//! Writing any number of outputs with a bounded number of open files and bounded memory.
//!
//! Records are not copied when they are assigned: an output keeps a small entry per record
//! pointing into the mapped input (the inputs stay mapped for the whole run). When the input
//! bytes referenced this way pass a budget, and at the end, every output with pending records
//! is written in one go: the outputs are shared out among the worker threads, each of which
//! encodes one output at a time into a reused buffer, opens its file (created the first time,
//! appended to later), writes and closes it. So a million outputs need a handful of open files,
//! and each output's content (its records in input order) does not depend on the thread count.
//! With [`OutputSet::flush_behind`] a window is written while the reader queues the next one
//! (one window in flight at most, so writes to an output stay in order).
//! Every output is written under a hidden temporary name (or into a hidden staging directory)
//! and moved into place by [`OutputSet::finish`].

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use tracekit_capture::output::Compression;
use tracekit_capture::pcapng::{Options, OptionsBuilder, epb_numeric, idb_numeric};
use tracekit_capture::writer::{WriteError, encode};
use tracekit_capture::{Interface, LinkType, Record, Timestamp};

/// The container of the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OutputFormat {
    /// Classic pcap, one link type per file; nanosecond timestamps when `nanos`.
    Pcap { nanos: bool },
    /// pcapng, with the interface blocks each output needs and the packet options.
    Pcapng,
}

impl OutputFormat {
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Pcap { .. } => "pcap",
            OutputFormat::Pcapng => "pcapng",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: refusing to overwrite an input file")]
    WouldOverwriteInput { path: PathBuf },
    #[error(
        "two outputs would both be named {name:?}: add {{n}} (or {{id}}) to the --name template"
    )]
    SameName { name: String },
}

/// Why one record could not go into its output (counted as skipped, with a reason).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "link type {got} differs from the output's {expected}; a pcap file holds one (use --format pcapng)"
    )]
    LinkType { expected: LinkType, got: LinkType },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What was written to one output.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct OutputStats {
    pub packets: u64,
    /// Captured packet bytes (not counting headers).
    pub bytes: u64,
    /// Size of the output file.
    pub file_bytes: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

#[derive(Debug, Default)]
struct Out {
    name: String,
    /// The file exists (created by a first write); later writes append.
    created: bool,
    link: Option<LinkType>,
    /// pcapng: (global interface, interface number in this output).
    interfaces: Vec<(u32, u32)>,
    stats: OutputStats,
}

/// Where a pending record's bytes are: an input's mapped bytes, or [`OutputSet::spill`].
const SPILL: u32 = u32::MAX;

/// A record waiting to be written: where its bytes are, and what its header needs.
#[derive(Debug, Clone, Copy)]
struct Pending {
    out: u32,
    source: u32,
    data: u64,
    data_len: u32,
    orig_len: u32,
    options: u64,
    options_len: u32,
    /// pcapng: the output's number for the record's interface.
    local: u32,
    /// pcapng: the global interface whose block goes before this record (`u32::MAX`: none).
    new_interface: u32,
    /// pcap: nanoseconds since the epoch; pcapng: the raw timestamp in interface units.
    ts: u64,
    options_big_endian: bool,
}

/// Bytes of memory a pending record costs besides its data.
const PENDING_COST: usize = std::mem::size_of::<Pending>();

/// A worker's encoded bytes are written out when they pass this size (one output can be large).
const WRITE_CHUNK: usize = 1 << 20;

/// The input a record was read from, for [`OutputSet::write`].
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The input's number among the `sources` later given to [`OutputSet::flush`].
    pub index: u32,
    /// The input's whole mapped bytes (what [`tracekit_capture::Capture::data`] returns).
    pub bytes: &'a [u8],
}

/// Writes many outputs into one directory.
#[derive(Debug)]
pub struct OutputSet {
    /// Where the outputs are wanted.
    dir: PathBuf,
    /// Where they are written: a hidden sibling directory renamed over `dir` at the end when
    /// `dir` is new or empty (one rename for the whole set), else `dir` itself with hidden
    /// temporary names renamed one by one.
    staging: Option<PathBuf>,
    format: OutputFormat,
    outs: Vec<Out>,
    pending: Vec<Pending>,
    /// Record bytes that were not inside their input's map (kept by copy).
    spill: Vec<u8>,
    /// Memory and input bytes the pending records stand for.
    held: usize,
    budget: usize,
    /// The worker threads of a flush.
    pool: Arc<rayon::ThreadPool>,
    /// pcapng: the interface description block of every global interface, encoded once
    /// (shared with a flush in flight; a new interface copies the list then).
    idbs: Arc<Vec<Vec<u8>>>,
    section: Arc<[u8]>,
    /// The buffers of the last finished flush, for the next window.
    recycled: Option<Batch>,
    /// How every output is compressed (each write to it a gzip member or zstd frame).
    compression: Compression,
}

/// The records of one window, taken out of the set to be written (possibly on other threads
/// while the next window is queued), and given back afterwards to reuse their memory.
#[derive(Debug, Default)]
struct Batch {
    pending: Vec<Pending>,
    spill: Vec<u8>,
    order: Vec<u32>,
}

/// A flush running on the worker threads while the caller goes on reading and queueing: see
/// [`OutputSet::flush_behind`]. Hand it to [`OutputSet::wait`].
#[derive(Debug)]
#[must_use = "a flush in flight must be waited for"]
pub struct Flushing<'scope> {
    handle: std::thread::ScopedJoinHandle<'scope, Result<Batch, OutputError>>,
}

impl OutputSet {
    /// `threads` worker threads write the outputs, each with one file open at a time; records
    /// standing for `budget` bytes at most wait before the outputs are written.
    pub fn new(
        dir: &Path,
        format: OutputFormat,
        threads: usize,
        budget: usize,
    ) -> Result<Self, OutputError> {
        let io = |source| OutputError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let fresh = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(e)),
        };
        let staging = if fresh {
            Some(staging_dir(dir).map_err(io)?)
        } else {
            None
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("split-writer-{i}"))
            .build()
            .map_err(|e| io(io::Error::other(e)))?;
        let pool = Arc::new(pool);
        let mut section = Vec::new();
        let shb_options = OptionsBuilder::new()
            .add(
                tracekit_capture::pcapng::opt::SHB_USERAPPL,
                b"tracekit split",
            )
            .finish();
        encode::section_header(&mut section, &shb_options).expect("writing to a Vec");
        Ok(OutputSet {
            dir: dir.to_path_buf(),
            staging,
            format,
            outs: Vec::new(),
            pending: Vec::new(),
            spill: Vec::new(),
            held: 0,
            budget,
            pool,
            idbs: Arc::new(Vec::new()),
            section: section.into(),
            recycled: None,
            compression: Compression::None,
        })
    }

    /// Registers an interface of an input; returns its global number for [`OutputSet::write`].
    pub fn add_interface(&mut self, iface: &Interface) -> u32 {
        let mut idb = Vec::new();
        let options = OptionsBuilder::new()
            .copy_from(iface.options.view(), idb_numeric)
            .finish();
        encode::interface_description(&mut idb, iface.link, iface.snaplen, &options)
            .expect("writing to a Vec");
        Arc::make_mut(&mut self.idbs).push(idb);
        (self.idbs.len() - 1) as u32
    }

    /// Every output compressed as `how` (its name gains `.gz` or `.zst`); before any output
    /// is created.
    #[must_use]
    pub fn compressed(mut self, how: Compression) -> Self {
        self.compression = how;
        self
    }

    /// Creates output `out`, named `stem()` plus the extension, unless it exists. Outputs are
    /// numbered densely in the order they appear, as the assigner creates them.
    pub fn ensure(&mut self, out: u32, stem: impl FnOnce() -> String) {
        if (out as usize) < self.outs.len() {
            return;
        }
        assert_eq!(
            out as usize,
            self.outs.len(),
            "outputs are created in order"
        );
        let name = format!(
            "{}.{}{}",
            stem_safe(&stem()),
            self.format.extension(),
            self.compression.suffix()
        );
        self.outs.push(Out {
            name,
            ..Out::default()
        });
    }

    /// What a record will add to an output (for `--by size`), and what a new output starts with.
    #[must_use]
    pub fn sizes(&self, record: &Record<'_>) -> (u64, u64) {
        match self.format {
            OutputFormat::Pcap { .. } => (encode::pcap_record_len(record.data.len()), 24),
            OutputFormat::Pcapng => (
                encode::enhanced_packet_len(record.data.len(), record.options.bytes.len()),
                self.section.len() as u64 + 32,
            ),
        }
    }

    /// Queues one record for output `out`; `interface` is the global number from
    /// [`OutputSet::add_interface`] of the interface the record was read on (its raw timestamp
    /// is in that interface's units, which the copied interface block keeps). Returns whether
    /// the queued records have reached the budget: then call [`OutputSet::flush`].
    pub fn write(
        &mut self,
        out: u32,
        record: &Record<'_>,
        interface: u32,
        source: Source<'_>,
    ) -> Result<bool, RecordError> {
        let o = &mut self.outs[out as usize];
        let mut entry = Pending {
            out,
            source: source.index,
            data: 0,
            data_len: record.data.len() as u32,
            orig_len: record.orig_len,
            options: 0,
            options_len: 0,
            local: 0,
            new_interface: u32::MAX,
            ts: 0,
            options_big_endian: record.options.big_endian,
        };
        let mut header = 0;
        let encoded = match self.format {
            OutputFormat::Pcap { nanos } => {
                let expected = *o.link.get_or_insert(record.link);
                if expected != record.link {
                    return Err(RecordError::LinkType {
                        expected,
                        got: record.link,
                    });
                }
                let ts = if record.has_ts {
                    record.ts
                } else {
                    Timestamp(0)
                };
                encode::pcap_time(nanos, ts)?;
                entry.ts = ts.0 as u64;
                if o.stats.file_bytes == 0 {
                    header = 24;
                }
                encode::pcap_record_len(record.data.len())
            }
            OutputFormat::Pcapng => {
                // Big-endian options are re-encoded little-endian at write time, same length.
                let options_len = record.options.bytes.len();
                encode::check_enhanced_packet(record.data.len(), options_len)?;
                if o.stats.file_bytes == 0 {
                    header = self.section.len() as u64;
                }
                entry.local = match o.interfaces.iter().find(|(g, _)| *g == interface) {
                    Some(&(_, l)) => l,
                    None => {
                        let l = o.interfaces.len() as u32;
                        o.interfaces.push((interface, l));
                        entry.new_interface = interface;
                        header += self.idbs[interface as usize].len() as u64;
                        l
                    }
                };
                entry.ts = if record.has_ts { record.raw_ts } else { 0 };
                encode::enhanced_packet_len(record.data.len(), options_len)
            }
        };
        // The record's bytes stay in the mapped input; anything else is copied aside.
        match (
            offset_in(source.bytes, record.data),
            offset_in(source.bytes, record.options.bytes),
        ) {
            (Some(data), Some(options)) => {
                entry.data = data as u64;
                entry.options = options as u64;
            }
            _ => {
                entry.source = SPILL;
                entry.data = self.spill.len() as u64;
                self.spill.extend_from_slice(record.data);
                entry.options = self.spill.len() as u64;
                self.spill.extend_from_slice(record.options.bytes);
                self.held += record.data.len() + record.options.bytes.len();
            }
        }
        entry.options_len = record.options.bytes.len() as u32;
        let s = &mut o.stats;
        s.packets += 1;
        s.bytes += record.data.len() as u64;
        s.file_bytes += header + encoded;
        if record.has_ts {
            s.first_ts = Some(s.first_ts.map_or(record.ts.0, |t| t.min(record.ts.0)));
            s.last_ts = Some(s.last_ts.map_or(record.ts.0, |t| t.max(record.ts.0)));
        }
        self.pending.push(entry);
        self.held += record.data.len() + PENDING_COST;
        Ok(self.held >= self.budget)
    }

    /// Writes every queued record into its output. `sources` are the inputs' mapped bytes,
    /// indexed by [`Source::index`].
    pub fn flush(&mut self, sources: &[&[u8]]) -> Result<(), OutputError> {
        std::thread::scope(|scope| match self.flush_behind(scope, sources) {
            Some(flushing) => self.wait(flushing),
            None => Ok(()),
        })
    }

    /// Like [`OutputSet::flush`], but the writing runs on the worker threads inside `scope`
    /// while the caller reads on and queues the next window (so reading and writing overlap).
    /// The records queued meanwhile may stand for another `budget` bytes. At most one flush is
    /// in flight: wait for the previous one first. Returns `None` when nothing was queued.
    pub fn flush_behind<'scope, 'env>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        sources: &'env [&'env [u8]],
    ) -> Option<Flushing<'scope>> {
        let (batch, jobs) = self.take_batch()?;
        let (pool, how) = (Arc::clone(&self.pool), (self.format, self.compression));
        let (idbs, section) = (Arc::clone(&self.idbs), Arc::clone(&self.section));
        let handle =
            scope.spawn(move || write_batch(&pool, how, sources, &idbs, &section, batch, &jobs));
        Some(Flushing { handle })
    }

    /// Waits for a flush started by [`OutputSet::flush_behind`]; its error, if any, is this
    /// call's.
    pub fn wait(&mut self, flushing: Flushing<'_>) -> Result<(), OutputError> {
        let batch = flushing
            .handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        self.recycled = Some(batch);
        Ok(())
    }

    /// Takes the queued records out as a batch, grouped by output, with one job per output
    /// that has records. Outputs count as created from here on: a later batch appends, and it
    /// is only written after this one.
    fn take_batch(&mut self) -> Option<(Batch, Vec<Job>)> {
        if self.pending.is_empty() {
            return None;
        }
        let mut next = self.recycled.take().unwrap_or_default();
        next.pending.clear();
        next.spill.clear();
        let mut batch = Batch {
            pending: std::mem::replace(&mut self.pending, next.pending),
            spill: std::mem::replace(&mut self.spill, next.spill),
            order: next.order,
        };
        self.held = 0;
        // Group the queued records by output, keeping input order within each (a counting
        // sort: no allocation per output).
        let mut starts = vec![0u32; self.outs.len() + 1];
        for p in &batch.pending {
            starts[p.out as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        batch.order.clear();
        batch.order.resize(batch.pending.len(), 0);
        for (i, p) in batch.pending.iter().enumerate() {
            let slot = &mut fill[p.out as usize];
            batch.order[*slot as usize] = i as u32;
            *slot += 1;
        }
        let jobs: Vec<Job> = (0..self.outs.len())
            .filter(|&o| starts[o + 1] > starts[o])
            .map(|o| Job {
                out: o as u32,
                records: starts[o] as usize..starts[o + 1] as usize,
                create: !self.outs[o].created,
                link: self.outs[o].link,
                path: self.temp_path(o as u32),
            })
            .collect();
        for job in &jobs {
            self.outs[job.out as usize].created = true;
        }
        Some((batch, jobs))
    }

    /// Where output `out` is written until [`OutputSet::finish`].
    fn temp_path(&self, out: u32) -> PathBuf {
        let name = &self.outs[out as usize].name;
        match &self.staging {
            Some(staging) => staging.join(name),
            None => self.dir.join(format!(".{name}.part")),
        }
    }

    /// Writes everything out and moves every output into place. `inputs` are never replaced.
    /// Returns (output number, file name, what it holds) for every output written.
    pub fn finish(
        mut self,
        sources: &[&[u8]],
        inputs: &[PathBuf],
    ) -> Result<Vec<(u32, String, OutputStats)>, OutputError> {
        if let Err(e) = self.flush(sources) {
            self.abandon();
            return Err(e);
        }
        let done: Vec<(u32, String, OutputStats)> = self
            .outs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.created)
            .map(|(i, o)| (i as u32, with_times(&o.name, &o.stats), o.stats.clone()))
            .collect();
        let io = |path: &Path, source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut names: Vec<&str> = done.iter().map(|(_, n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            let name = w[0].to_string();
            self.abandon();
            return Err(OutputError::SameName { name });
        }
        // Names with a time are known now that the outputs are written.
        for (out, name, _) in &done {
            if *name != self.outs[*out as usize].name
                && let Some(staging) = &self.staging
            {
                let (from, to) = (self.temp_path(*out), staging.join(name));
                if let Err(e) = std::fs::rename(&from, &to) {
                    self.abandon();
                    return Err(io(&to, e));
                }
            }
        }
        if let Some(staging) = &self.staging {
            // The target was new or empty: no input can be in it. One rename moves everything
            // (rename replaces an empty directory).
            match std::fs::rename(staging, &self.dir) {
                Ok(()) => return Ok(done),
                // Something appeared in the target meanwhile: move the files one by one.
                Err(_) => std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?,
            }
        }
        let forbidden = input_names_in(&self.dir, inputs);
        for (out, name, _) in &done {
            let target = self.dir.join(name);
            if forbidden.iter().any(|f| f == name) {
                return Err(OutputError::WouldOverwriteInput { path: target });
            }
            let tmp = match &self.staging {
                Some(staging) => staging.join(name),
                None => self.temp_path(*out),
            };
            std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        }
        if let Some(staging) = &self.staging {
            let _ = std::fs::remove_dir(staging);
        }
        Ok(done)
    }

    /// Removes every temporary file (after an error).
    pub fn abandon(&self) {
        if let Some(staging) = &self.staging {
            let _ = std::fs::remove_dir_all(staging);
            return;
        }
        for out in 0..self.outs.len() as u32 {
            let _ = std::fs::remove_file(self.temp_path(out));
        }
    }
}

/// One output's share of a flush.
#[derive(Debug)]
struct Job {
    out: u32,
    /// Its records: a range of [`Writer::order`].
    records: std::ops::Range<usize>,
    /// The file does not exist yet: create it and start with the file header.
    create: bool,
    /// pcap: the link type of the file header.
    link: Option<LinkType>,
    path: PathBuf,
}

/// Writes one batch: the outputs are shared out among the pool's threads, each taking runs of
/// jobs in order. Returns the batch for its buffers to be reused.
fn write_batch(
    pool: &rayon::ThreadPool,
    (format, compression): (OutputFormat, Compression),
    sources: &[&[u8]],
    idbs: &[Vec<u8>],
    section: &[u8],
    batch: Batch,
    jobs: &[Job],
) -> Result<Batch, OutputError> {
    let writer = Writer {
        format,
        compression,
        pending: &batch.pending,
        order: &batch.order,
        sources,
        spill: &batch.spill,
        idbs,
        section,
    };
    // Jobs are shared out in runs of 16 (small writes), one by one when compressing (each
    // job is then mostly the compressor's work).
    let run = if compression == Compression::None {
        16
    } else {
        1
    };
    pool.install(|| {
        jobs.par_iter()
            .with_min_len(run)
            .try_for_each(|job| WRITE_BUFFER.with_borrow_mut(|buf| writer.write(job, buf)))
    })?;
    Ok(batch)
}

thread_local! {
    /// A worker's encoding buffer, kept from output to output and from flush to flush.
    static WRITE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What the worker threads share during a flush (all read-only).
struct Writer<'a> {
    format: OutputFormat,
    compression: Compression,
    pending: &'a [Pending],
    order: &'a [u32],
    sources: &'a [&'a [u8]],
    spill: &'a [u8],
    idbs: &'a [Vec<u8>],
    section: &'a [u8],
}

impl Writer<'_> {
    /// Encodes one output's records into `buf` and writes them to its file.
    fn write(&self, job: &Job, buf: &mut Vec<u8>) -> Result<(), OutputError> {
        let io = |source| OutputError::Io {
            path: job.path.clone(),
            source,
        };
        let file = if job.create {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&job.path)
        } else {
            OpenOptions::new().append(true).open(&job.path)
        }
        .map_err(io)?;
        let mut file = Compressed::new(file, self.compression).map_err(io)?;
        buf.clear();
        if job.create {
            match (self.format, job.link) {
                (OutputFormat::Pcap { nanos }, Some(link)) => {
                    let header = tracekit_capture::pcap::Header::new_le(link, nanos, 262_144);
                    buf.extend_from_slice(&header.to_bytes());
                }
                _ => buf.extend_from_slice(self.section),
            }
        }
        for &i in &self.order[job.records.clone()] {
            let p = &self.pending[i as usize];
            let bytes = if p.source == SPILL {
                self.spill
            } else {
                self.sources[p.source as usize]
            };
            let data = &bytes[p.data as usize..][..p.data_len as usize];
            let options = &bytes[p.options as usize..][..p.options_len as usize];
            match self.format {
                OutputFormat::Pcap { nanos } => {
                    encode::pcap_record(buf, nanos, Timestamp(p.ts as i64), data, p.orig_len)
                        .expect("checked when queued");
                }
                OutputFormat::Pcapng => {
                    if p.new_interface != u32::MAX {
                        buf.extend_from_slice(&self.idbs[p.new_interface as usize]);
                    }
                    let options: std::borrow::Cow<'_, [u8]> =
                        if options.is_empty() || !p.options_big_endian {
                            options.into()
                        } else {
                            OptionsBuilder::new()
                                .copy_from(
                                    Options {
                                        bytes: options,
                                        big_endian: true,
                                    },
                                    epb_numeric,
                                )
                                .finish()
                                .into()
                        };
                    encode::enhanced_packet(buf, p.local, p.ts, data, p.orig_len, &options)
                        .expect("checked when queued");
                }
            }
            if buf.len() >= WRITE_CHUNK {
                file.write_all(buf).map_err(io)?;
                buf.clear();
            }
        }
        file.write_all(buf).map_err(io)?;
        file.finish().map_err(io)
    }
}

/// An output file as one write to it sees it: plain, or a gzip member or zstd frame of its
/// own (the members of the writes in turn make one gzip or zstd stream).
enum Compressed {
    Plain(std::fs::File),
    Gzip(flate2::write::GzEncoder<std::fs::File>),
    Zstd(zstd::stream::write::Encoder<'static, std::fs::File>),
}

impl Compressed {
    fn new(file: std::fs::File, how: Compression) -> io::Result<Self> {
        Ok(match how {
            Compression::None => Compressed::Plain(file),
            Compression::Gzip => Compressed::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Compressed::Zstd(zstd::stream::write::Encoder::new(file, 3)?),
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressed::Plain(f) => f.write_all(buf),
            Compressed::Gzip(e) => e.write_all(buf),
            Compressed::Zstd(e) => e.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Compressed::Plain(_) => Ok(()),
            Compressed::Gzip(e) => e.finish().map(drop),
            Compressed::Zstd(e) => e.finish().map(drop),
        }
    }
}

/// The file name an output with this stem gets once written, as [`OutputSet::finish`] names it
/// (for outputs written elsewhere and placed with [`place`]).
#[must_use]
pub fn file_name(
    stem: &str,
    format: OutputFormat,
    compression: Compression,
    stats: &OutputStats,
) -> String {
    with_times(
        &format!(
            "{}.{}{}",
            stem_safe(stem),
            format.extension(),
            compression.suffix()
        ),
        stats,
    )
}

/// Moves finished files (where each is, the name it gets) into `dir` as [`OutputSet::finish`]
/// moves its outputs: into a new or empty `dir` by one rename of a staging directory, else one
/// by one, never over an input. Two files with one name are refused before anything moves.
pub fn place(
    dir: &Path,
    files: &[(PathBuf, String)],
    inputs: &[PathBuf],
) -> Result<(), OutputError> {
    let io = |path: &Path, source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut names: Vec<&str> = files.iter().map(|(_, n)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(OutputError::SameName {
            name: w[0].to_string(),
        });
    }
    let fresh = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(io(dir, e)),
    };
    let mut files: Vec<(PathBuf, String)> = files.to_vec();
    let mut staged = None;
    if fresh {
        let staging = staging_dir(dir).map_err(|e| io(dir, e))?;
        // Renamed on every core: a distributed split places hundreds of thousands of files.
        files.par_iter_mut().try_for_each(|(from, name)| {
            let to = staging.join(&*name);
            move_file(from, &to).map_err(|e| io(&to, e))?;
            *from = to;
            Ok(())
        })?;
        if std::fs::rename(&staging, dir).is_ok() {
            return Ok(());
        }
        // Something appeared in the target meanwhile: move the files one by one.
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        staged = Some(staging);
    }
    let forbidden = input_names_in(dir, inputs);
    for (from, name) in &files {
        let target = dir.join(name);
        if forbidden.iter().any(|f| f == name) {
            return Err(OutputError::WouldOverwriteInput { path: target });
        }
        move_file(from, &target).map_err(|e| io(&target, e))?;
    }
    if let Some(staging) = staged {
        let _ = std::fs::remove_dir(staging);
    }
    Ok(())
}

/// A new, empty hidden sibling of `dir` where outputs are written before one rename moves
/// them all into place.
fn staging_dir(dir: &Path) -> io::Result<PathBuf> {
    let name = dir
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".{name}.tracekit-split-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir(&staging)?;
    Ok(staging)
}

/// A rename, or a copy and a removal across file systems.
fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// Where `part` starts inside `whole`, if it lies inside it (an empty part always does).
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    if part.is_empty() {
        return Some(0);
    }
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

/// Names of the inputs that live directly in `dir` (checked once, not per output).
fn input_names_in(dir: &Path, inputs: &[PathBuf]) -> Vec<String> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    inputs
        .iter()
        .filter_map(|i| std::fs::canonicalize(i).ok())
        .filter(|i| i.parent() == Some(dir.as_path()))
        .filter_map(|i| i.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// File names from keys: no path separators or control characters.
/// `name` with `{start}` and `{end}` replaced by the times of its earliest and latest packets
/// (UTC, to the second, e.g. `20240501T140500Z`: names sort in time order).
fn with_times(name: &str, stats: &OutputStats) -> String {
    if !name.contains("{start}") && !name.contains("{end}") {
        return name.to_string();
    }
    let utc = |ns: Option<i64>| {
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        time::OffsetDateTime::from_unix_timestamp(ns.unwrap_or(0).div_euclid(1_000_000_000))
            .ok()
            .and_then(|t| t.format(format).ok())
            .unwrap_or_else(|| "time-unknown".to_string())
    };
    name.replace("{start}", &utc(stats.first_ts))
        .replace("{end}", &utc(stats.last_ts))
}

fn stem_safe(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}
