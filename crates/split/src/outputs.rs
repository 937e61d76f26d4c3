//! Writing any number of outputs with a bounded number of open files.
//!
//! Each output collects encoded records in its own buffer; a buffer is written out when it
//! grows past a threshold, or, when all buffers together pass a memory budget, the largest
//! ones are. Files are opened for one write and kept in a small FIFO of open handles, so a
//! million outputs work under the default limit of 1024 open files. Every output is written
//! under a hidden temporary name and renamed into place by [`OutputSet::finish`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use tracekit_capture::pcapng::{OptionsBuilder, epb_numeric, idb_numeric};
use tracekit_capture::writer::{WriteError, encode};
use tracekit_capture::{Interface, LinkType, Record, Timestamp};

/// The container of the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Writing the output itself failed: fatal for the run.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What was written to one output.
#[derive(Debug, Clone, Default)]
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
    buf: Vec<u8>,
    /// The file exists (created by a first write); later writes append.
    created: bool,
    link: Option<LinkType>,
    /// pcapng: (global interface, interface number in this output).
    interfaces: Vec<(u32, u32)>,
    /// When it was last written to, counted in writes to any output.
    last_write: u64,
    stats: OutputStats,
}

/// Bytes an output may hold in memory before it is written out.
const OUTPUT_FLUSH: usize = 256 << 10;

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
    open: FxHashMap<u32, File>,
    open_order: VecDeque<u32>,
    max_open: usize,
    pending: usize,
    budget: usize,
    writes: u64,
    /// pcapng: the interface description block of every global interface, encoded once.
    idbs: Vec<Vec<u8>>,
    section: Vec<u8>,
}

impl OutputSet {
    /// `max_open` files at most are open at once; `budget` bytes at most wait in buffers.
    pub fn new(
        dir: &Path,
        format: OutputFormat,
        max_open: usize,
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
            let name = dir
                .file_name()
                .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(io)?;
            let staging = parent.join(format!(".{name}.tracekit-split-{}", std::process::id()));
            if staging.exists() {
                std::fs::remove_dir_all(&staging).map_err(io)?;
            }
            std::fs::create_dir(&staging).map_err(io)?;
            Some(staging)
        } else {
            None
        };
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
            open: FxHashMap::default(),
            open_order: VecDeque::new(),
            max_open: max_open.max(1),
            pending: 0,
            budget,
            writes: 0,
            idbs: Vec::new(),
            section,
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
        self.idbs.push(idb);
        (self.idbs.len() - 1) as u32
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
        let name = format!("{}.{}", stem_safe(&stem()), self.format.extension());
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

    /// Appends one record to output `out`; `interface` is the global number from
    /// [`OutputSet::add_interface`] of the interface the record was read on (its raw timestamp
    /// is in that interface's units, which the copied interface block keeps).
    pub fn write(
        &mut self,
        out: u32,
        record: &Record<'_>,
        interface: u32,
    ) -> Result<(), RecordError> {
        let o = &mut self.outs[out as usize];
        let before = o.buf.len();
        match self.format {
            OutputFormat::Pcap { nanos } => {
                if o.stats.file_bytes == 0 && before == 0 {
                    let header =
                        tracekit_capture::pcap::Header::new_le(record.link, nanos, 262_144);
                    o.buf.extend_from_slice(&header.to_bytes());
                    o.link = Some(record.link);
                }
                let expected = o.link.unwrap_or(record.link);
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
                if let Err(e) =
                    encode::pcap_record(&mut o.buf, nanos, ts, record.data, record.orig_len)
                {
                    o.buf.truncate(before);
                    return Err(e.into());
                }
            }
            OutputFormat::Pcapng => {
                if o.stats.file_bytes == 0 && before == 0 {
                    o.buf.extend_from_slice(&self.section);
                }
                let local = match o.interfaces.iter().find(|(g, _)| *g == interface) {
                    Some(&(_, l)) => l,
                    None => {
                        let l = o.interfaces.len() as u32;
                        o.interfaces.push((interface, l));
                        o.buf.extend_from_slice(&self.idbs[interface as usize]);
                        l
                    }
                };
                let units = if record.has_ts { record.raw_ts } else { 0 };
                // Options of a little-endian section are copied as they are; others re-encoded.
                let options: std::borrow::Cow<'_, [u8]> =
                    if record.options.bytes.is_empty() || !record.options.big_endian {
                        record.options.bytes.into()
                    } else {
                        OptionsBuilder::new()
                            .copy_from(record.options, epb_numeric)
                            .finish()
                            .into()
                    };
                let result = encode::enhanced_packet(
                    &mut o.buf,
                    local,
                    units,
                    record.data,
                    record.orig_len,
                    &options,
                );
                if let Err(e) = result {
                    o.buf.truncate(before);
                    return Err(e.into());
                }
            }
        }
        let added = o.buf.len() - before;
        let s = &mut o.stats;
        s.packets += 1;
        s.bytes += record.data.len() as u64;
        s.file_bytes += added as u64;
        if record.has_ts {
            s.first_ts = Some(s.first_ts.map_or(record.ts.0, |t| t.min(record.ts.0)));
            s.last_ts = Some(s.last_ts.map_or(record.ts.0, |t| t.max(record.ts.0)));
        }
        self.pending += added;
        o.last_write = self.writes;
        self.writes += 1;
        if o.buf.len() >= OUTPUT_FLUSH {
            self.flush(out, true)?;
        }
        if self.pending > self.budget {
            self.relieve()?;
        }
        Ok(())
    }

    /// Writes out the buffers of the outputs written to least recently until half the budget
    /// is free: streams that have ended are written once and closed, never reopened.
    fn relieve(&mut self) -> Result<(), OutputError> {
        let mut idle: Vec<(u64, u32)> = self
            .outs
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.buf.is_empty())
            .map(|(i, o)| (o.last_write, i as u32))
            .collect();
        idle.sort_unstable();
        for (_, out) in idle {
            if self.pending <= self.budget / 2 {
                break;
            }
            self.flush(out, false)?;
        }
        Ok(())
    }

    /// Where output `out` is written until [`OutputSet::finish`].
    fn temp_path(&self, out: u32) -> PathBuf {
        let name = &self.outs[out as usize].name;
        match &self.staging {
            Some(staging) => staging.join(name),
            None => self.dir.join(format!(".{name}.part")),
        }
    }

    /// Writes out an output's buffer. `keep_open` keeps the file in the FIFO of open handles
    /// (a busy stream that fills its buffer will be back soon); otherwise the file is closed
    /// and the buffer's memory freed (an idle stream is probably finished).
    fn flush(&mut self, out: u32, keep_open: bool) -> Result<(), OutputError> {
        if self.outs[out as usize].buf.is_empty() {
            return Ok(());
        }
        let path = self.temp_path(out);
        let io = |source| OutputError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match self.open.remove(&out) {
            Some(f) => f,
            None => {
                let created = self.outs[out as usize].created;
                let file = if created {
                    OpenOptions::new().append(true).open(&path)
                } else {
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)
                }
                .map_err(io)?;
                self.outs[out as usize].created = true;
                file
            }
        };
        let o = &mut self.outs[out as usize];
        file.write_all(&o.buf).map_err(io)?;
        self.pending -= o.buf.len();
        if keep_open {
            o.buf.clear();
            if self.open.len() >= self.max_open {
                while let Some(old) = self.open_order.pop_front() {
                    if self.open.remove(&old).is_some() {
                        break;
                    }
                }
            }
            self.open.insert(out, file);
            self.open_order.push_back(out);
        } else {
            o.buf = Vec::new();
        }
        Ok(())
    }

    /// Writes everything out and moves every output into place. `inputs` are never replaced.
    /// Returns (output number, file name, what it holds) for every output written.
    pub fn finish(
        mut self,
        inputs: &[PathBuf],
    ) -> Result<Vec<(u32, String, OutputStats)>, OutputError> {
        for out in 0..self.outs.len() as u32 {
            self.flush(out, false)?;
            // Close as we go, so the handles do not pile up until the end.
            self.open.remove(&out);
        }
        self.open.clear();
        self.open_order.clear();
        let done: Vec<(u32, String, OutputStats)> = self
            .outs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.created)
            .map(|(i, o)| (i as u32, o.name.clone(), o.stats.clone()))
            .collect();
        let io = |path: &Path, source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
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
            let tmp = self.temp_path(*out);
            std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        }
        if let Some(staging) = &self.staging {
            let _ = std::fs::remove_dir(staging);
        }
        Ok(done)
    }

    /// Removes every temporary file (after an error).
    pub fn abandon(self) {
        if let Some(staging) = &self.staging {
            let _ = std::fs::remove_dir_all(staging);
            return;
        }
        for out in 0..self.outs.len() as u32 {
            if self.outs[out as usize].created {
                let _ = std::fs::remove_file(self.temp_path(out));
            }
        }
    }
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
