//! Output files created atomically: written under a temporary name in the target directory,
//! renamed into place on [`AtomicFile::commit`], removed if dropped uncommitted. An output that
//! would replace one of the inputs is refused. The target `-` is standard output, written as a
//! stream (refused when it is a terminal).
//!
//! The bytes are written behind: full buffers go to a thread of the output's own that makes
//! the `write` calls, so the kernel's copy into the page cache (most of the time of a merge)
//! runs on the other core while the caller encodes the next buffer.
//!
//! Past its first [`DIRECT_AFTER`] bytes an output is written with `O_DIRECT` where the file
//! system allows it (not tmpfs): the kernel's copy into fresh page-cache pages was 59% of the
//! samples of `anonymize` on a 2 GB capture here, and its time moved between 0.4 and 2.2 s per
//! GB from run to run (pages the hypervisor had to back anew), while direct writes of the same
//! GB took 0.7 s with 0.2 s of system time every time. Small outputs stay in the page cache,
//! where a program that reads them next finds them.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{target}: refusing to overwrite an input file")]
    WouldOverwriteInput { target: PathBuf },
    #[error(
        "-o -: standard output is a terminal; redirect it to a file or a pipe (e.g. `| tshark -r -`)"
    )]
    StdoutIsTerminal,
    #[error("{target}: {source}")]
    Io {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An output being written. Implements `Write` with a large buffer, written behind.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    out: Layer,
}

/// How an output's bytes are compressed on their way to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// gzip (level 6, gzip's default), as Wireshark's tools write `.gz`: on every core, a
    /// member per 4 MiB of input (see [`ParallelGzip`]).
    Gzip,
    /// Zstandard (level 3), on every core.
    Zstd,
}

impl Compression {
    /// By the output's name: `.gz` gzip, `.zst` (or `.zstd`) Zstandard, else none.
    #[must_use]
    pub fn by_name(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// `gzip`, `zstd` or `none`, as `--compress` takes them.
    #[must_use]
    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "gzip" | "gz" => Some(Compression::Gzip),
            "zstd" | "zst" => Some(Compression::Zstd),
            "none" => Some(Compression::None),
            _ => None,
        }
    }

    /// The file-name suffix it adds (`.gz`, `.zst`, or nothing).
    #[must_use]
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }
}

/// The output, compressed or not, on its way to [`Out`].
enum Layer {
    Plain(Out),
    Gzip(ParallelGzip),
    Zstd(zstd::stream::write::Encoder<'static, Out>),
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Plain(_) => "Plain",
            Layer::Gzip(_) => "Gzip",
            Layer::Zstd(_) => "Zstd",
        })
    }
}

/// Where an output's bytes go: a temporary file renamed into place, or standard output (the
/// target `-`, as `mergecap -w -` and `tcpdump -w -` write), as a stream.
#[derive(Debug)]
enum Out {
    File(WriteBehind),
    /// A duplicate of file descriptor 1, written without `Stdout`'s line buffering.
    Stdout(io::BufWriter<fs::File>),
    /// Only while the compression layer is being changed.
    Empty,
}

/// Bytes gathered before a buffer is handed to the writing thread. Small enough to stay in the
/// cache between the two threads: with 4 MiB buffers the kernel's copy on ext4 took twice the
/// system time, and a merge of 2×1 GB was slower than with no thread at all.
const CHUNK: usize = 1 << 20;

/// Bytes written through the page cache before the rest goes direct (where allowed); small in
/// the unit tests, so that they reach the direct path.
const DIRECT_AFTER: u64 = if cfg!(test) { 1 << 16 } else { 64 << 20 };
/// Direct writes are whole multiples of this, from addresses and at offsets aligned to it.
const ALIGN: usize = 4096;
/// Bytes gathered for one direct write.
const STAGE: usize = 4 << 20;

/// The output file and how it is written: through the page cache, then (past
/// [`DIRECT_AFTER`]) direct, from an aligned staging buffer. Every write comes in file order.
#[derive(Debug)]
struct Sink {
    file: tempfile::NamedTempFile,
    written: u64,
    direct: Direct,
}

#[derive(Debug)]
enum Direct {
    /// Not yet, or not allowed here (the file system refused the flag or a direct write).
    Off { tried: bool },
    /// `O_DIRECT` is set; `stage[at..at + STAGE]` is aligned and holds `fill` bytes.
    On {
        stage: Vec<u8>,
        at: usize,
        fill: usize,
    },
}

impl Sink {
    fn new(file: tempfile::NamedTempFile) -> Self {
        Sink {
            file,
            written: 0,
            direct: Direct::Off { tried: false },
        }
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.direct {
                Direct::Off { tried } => {
                    // Through the page cache, up to an aligned offset past DIRECT_AFTER.
                    let mut n = data.len();
                    if !*tried && self.written + n as u64 >= DIRECT_AFTER {
                        let past = (DIRECT_AFTER.max(self.written)).next_multiple_of(ALIGN as u64);
                        n = n.min((past - self.written) as usize);
                    }
                    self.file.as_file().write_all(&data[..n])?;
                    self.written += n as u64;
                    data = &data[n..];
                    if !*tried
                        && self.written >= DIRECT_AFTER
                        && self.written.is_multiple_of(ALIGN as u64)
                    {
                        self.go_direct();
                    }
                }
                Direct::On { stage, at, fill } => {
                    let n = data.len().min(STAGE - *fill);
                    stage[*at + *fill..*at + *fill + n].copy_from_slice(&data[..n]);
                    *fill += n;
                    data = &data[n..];
                    if *fill == STAGE {
                        self.flush_stage(false)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets `O_DIRECT`; where the file system refuses it, the output stays buffered.
    fn go_direct(&mut self) {
        let set = rustix::fs::fcntl_getfl(&self.file).and_then(|flags| {
            rustix::fs::fcntl_setfl(&self.file, flags | rustix::fs::OFlags::DIRECT)
        });
        self.direct = match set {
            Ok(()) => {
                // An aligned window inside a plain vector (no allocator of its own needed).
                let stage = vec![0u8; STAGE + ALIGN];
                let at = stage.as_ptr().align_offset(ALIGN);
                Direct::On { stage, at, fill: 0 }
            }
            Err(_) => Direct::Off { tried: true },
        };
    }

    /// Writes the staged bytes: the aligned part direct, and, at the `end`, the rest (less than
    /// one block) after taking `O_DIRECT` off again. A file system that takes the flag but
    /// refuses a direct write gets the bytes buffered, and the rest of the output too.
    fn flush_stage(&mut self, end: bool) -> io::Result<()> {
        let Direct::On { stage, at, fill } = &mut self.direct else {
            return Ok(());
        };
        let aligned = *fill - *fill % ALIGN;
        let window = &stage[*at..*at + *fill];
        let direct_ok = aligned == 0 || self.file.as_file().write_all(&window[..aligned]).is_ok();
        let (done, rest) = if direct_ok {
            (aligned, &window[aligned..])
        } else {
            (0, window)
        };
        self.written += done as u64;
        if !direct_ok {
            // A failed write may have moved the offset part way.
            use std::io::Seek;
            self.file
                .as_file()
                .seek(io::SeekFrom::Start(self.written))?;
        }
        if !direct_ok || end {
            let rest = rest.to_vec();
            let flags = rustix::fs::fcntl_getfl(&self.file)?;
            rustix::fs::fcntl_setfl(&self.file, flags - rustix::fs::OFlags::DIRECT)?;
            self.direct = Direct::Off { tried: true };
            self.file.as_file().write_all(&rest)?;
            self.written += rest.len() as u64;
        } else {
            let left = *fill - aligned;
            stage.copy_within(*at + aligned..*at + *fill, *at);
            *fill = left;
        }
        Ok(())
    }

    /// Everything written; the file back.
    fn finish(mut self) -> io::Result<tempfile::NamedTempFile> {
        self.flush_stage(true)?;
        Ok(self.file)
    }
}

/// A buffered writer whose `write` calls happen on a thread of its own. At most one full
/// buffer waits while another is written, so memory stays at three buffers. Writes of a
/// [`CHUNK`] or more are made from the caller's thread once the queue is empty (no copy).
#[derive(Debug)]
struct WriteBehind {
    /// Shared with the writing thread; taken by [`WriteBehind::finish`].
    file: Option<Arc<Mutex<Sink>>>,
    buf: Vec<u8>,
    queue: Option<SyncSender<Vec<u8>>>,
    /// Written buffers come back here, emptied, for reuse.
    done: Receiver<Vec<u8>>,
    /// Buffers sent and not yet back.
    in_flight: usize,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl WriteBehind {
    fn new(file: tempfile::NamedTempFile) -> io::Result<Self> {
        let file = Arc::new(Mutex::new(Sink::new(file)));
        let (queue, jobs) = sync_channel::<Vec<u8>>(1);
        let (back, done) = sync_channel(3);
        let target = Arc::clone(&file);
        let writer = std::thread::Builder::new()
            .name("output-writer".into())
            .spawn(move || -> io::Result<()> {
                for mut buf in jobs {
                    lock(&target).write_all(&buf)?;
                    buf.clear();
                    // The owner may be gone (dropped after an error): then nobody wants it.
                    let _ = back.send(buf);
                }
                Ok(())
            })?;
        Ok(WriteBehind {
            file: Some(file),
            buf: Vec::with_capacity(CHUNK),
            queue: Some(queue),
            done,
            in_flight: 0,
            writer: Some(writer),
        })
    }

    /// Hands the current buffer to the writing thread and takes an empty one.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.done.try_recv() {
            Ok(b) => {
                self.in_flight -= 1;
                b
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.queue.as_ref().map(|q| q.send(full));
        match sent {
            Some(Ok(())) => {
                self.in_flight += 1;
                Ok(())
            }
            _ => Err(self.failure()),
        }
    }

    /// Waits until every buffer sent has been written.
    fn drain(&mut self) -> io::Result<()> {
        self.send()?;
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(b) => {
                    self.in_flight -= 1;
                    if self.buf.capacity() < b.capacity() {
                        self.buf = b;
                    }
                }
                Err(_) => return Err(self.failure()),
            }
        }
        Ok(())
    }

    /// Why the writing thread stopped early (its channel closed): its error.
    fn failure(&mut self) -> io::Error {
        self.stop()
            .err()
            .unwrap_or_else(|| io::Error::other("output writer gone"))
    }

    /// Ends the writing thread (after what was queued) and returns its first error.
    fn stop(&mut self) -> io::Result<()> {
        self.queue = None;
        match self.writer.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }

    /// Everything written; the file back.
    fn finish(mut self) -> io::Result<tempfile::NamedTempFile> {
        self.send()?;
        self.stop()?;
        self.file
            .take()
            .and_then(|f| Arc::try_unwrap(f).ok())
            .ok_or_else(|| io::Error::other("output file still shared"))?
            .into_inner()
            .map_err(|_| io::Error::other("output writer panicked"))?
            .finish()
    }
}

/// The sink, also after a panic elsewhere (its state is a file offset and bytes: still whole).
fn lock(sink: &Mutex<Sink>) -> std::sync::MutexGuard<'_, Sink> {
    sink.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() >= CHUNK {
            // Large writes (anonymize hands over whole batches) go straight to the file, in
            // order after what is queued.
            self.drain()?;
            let file = self.file.as_ref().expect("taken only by finish");
            return lock(file).write_all(data);
        }
        if self.buf.len() + data.len() > CHUNK {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // The thread holds the file: let it end before the temporary file is removed.
        let _ = self.stop();
    }
}

impl AtomicFile {
    /// Starts writing `target`, unless it is one of `inputs` (compared as files, so another
    /// path to the same file is caught too).
    pub fn create(target: impl AsRef<Path>, inputs: &[&Path]) -> Result<AtomicFile, OutputError> {
        let how = Compression::by_name(target.as_ref());
        Self::create_with_mode(target.as_ref(), inputs, 0o666)?.compressed(how)
    }

    /// As [`AtomicFile::create`], compressed as `how` whatever the name says (`--compress`).
    pub fn create_compressed(
        target: impl AsRef<Path>,
        inputs: &[&Path],
        how: Compression,
    ) -> Result<AtomicFile, OutputError> {
        Self::create_with_mode(target.as_ref(), inputs, 0o666)?.compressed(how)
    }

    /// As [`AtomicFile::create`], for a file only its owner may read (mode 0600): a secret,
    /// such as the map from original to anonymized addresses.
    pub fn create_private(
        target: impl AsRef<Path>,
        inputs: &[&Path],
    ) -> Result<AtomicFile, OutputError> {
        Self::create_with_mode(target.as_ref(), inputs, 0o600)
    }

    fn create_with_mode(
        target: &Path,
        inputs: &[&Path],
        mode: u32,
    ) -> Result<AtomicFile, OutputError> {
        let target = target.to_path_buf();
        if target.as_os_str() == "-" {
            if io::stdout().is_terminal() {
                return Err(OutputError::StdoutIsTerminal);
            }
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| OutputError::Io {
                    target: target.clone(),
                    source,
                })?;
            return Ok(AtomicFile {
                out: Layer::Plain(Out::Stdout(io::BufWriter::with_capacity(
                    CHUNK,
                    fs::File::from(fd),
                ))),
                target,
            });
        }
        if inputs.iter().any(|input| same_file(input, &target)) {
            return Err(OutputError::WouldOverwriteInput { target });
        }
        // A symbolic link is followed: the file it names is the one replaced (a file renamed
        // over the link would replace the link, and `-o /dev/stdout` would replace
        // /dev/stdout). A device or a pipe (`-o /dev/null`, a FIFO, /dev/stdout on a pipe) is
        // written in place, as a stream: a file renamed over it would replace the device.
        let target = match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(&target) {
                Ok(real) if real.is_file() => real,
                _ => target,
            },
            _ => target,
        };
        let io = |source| OutputError::Io {
            target: target.clone(),
            source,
        };
        if fs::metadata(&target).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(io)?;
            return Ok(AtomicFile {
                out: Layer::Plain(Out::Stdout(io::BufWriter::with_capacity(CHUNK, f))),
                target,
            });
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut builder = tempfile::Builder::new();
        let prefix = format!(".{name}.");
        builder.prefix(&prefix).suffix(".tmp");
        // Less the umask: 0666 gives the mode any program's new file gets, as editcap's and
        // mergecap's outputs do (a temporary file is otherwise 0600, and a report or capture
        // made for a colleague could be read by its owner only).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
        #[cfg(not(unix))]
        let _ = mode;
        let tmp = builder.tempfile_in(&dir).map_err(io)?;
        Ok(AtomicFile {
            out: Layer::Plain(Out::File(WriteBehind::new(tmp).map_err(io)?)),
            target,
        })
    }

    /// The new, plain output compressed as `how`.
    fn compressed(mut self, how: Compression) -> Result<AtomicFile, OutputError> {
        let io = |source| OutputError::Io {
            target: self.target.clone(),
            source,
        };
        self.out = match std::mem::replace(&mut self.out, Layer::Plain(Out::Empty)) {
            Layer::Plain(plain) => match how {
                Compression::None => Layer::Plain(plain),
                Compression::Gzip => Layer::Gzip(ParallelGzip::new(plain)),
                Compression::Zstd => {
                    let mut e = zstd::stream::write::Encoder::new(plain, 3).map_err(io)?;
                    let workers =
                        std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
                    e.multithread(workers).map_err(io)?;
                    Layer::Zstd(e)
                }
            },
            // Only ever called on a new output (plain); one already compressed stays so.
            other => other,
        };
        Ok(self)
    }

    #[must_use]
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes and renames the temporary file to the target name. Without `sync`, the data
    /// reaches the disk when the kernel decides; readers never see a partial file either way.
    pub fn commit(self, sync: bool) -> Result<PathBuf, OutputError> {
        let target = self.target;
        let io = |source| OutputError::Io {
            target: target.clone(),
            source,
        };
        let out = match self.out {
            Layer::Plain(o) => o,
            Layer::Gzip(e) => e.finish().map_err(io)?,
            Layer::Zstd(e) => e.finish().map_err(io)?,
        };
        let tmp = match out {
            Out::File(out) => out.finish().map_err(io)?,
            Out::Stdout(mut out) => {
                out.flush().map_err(io)?;
                return Ok(target);
            }
            Out::Empty => return Ok(target),
        };
        if sync {
            tmp.as_file().sync_all().map_err(io)?;
        }
        tmp.persist(&target).map_err(|e| io(e.error))?;
        Ok(target)
    }
}

impl Write for AtomicFile {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Layer::Plain(o) => o.write(buf),
            Layer::Gzip(e) => e.write(buf),
            Layer::Zstd(e) => e.write(buf),
        }
    }
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Layer::Plain(o) => o.write_all(buf),
            Layer::Gzip(e) => e.write_all(buf),
            Layer::Zstd(e) => e.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Layer::Plain(o) => o.flush(),
            Layer::Gzip(e) => e.flush(),
            Layer::Zstd(e) => e.flush(),
        }
    }
}

impl Write for Out {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::File(o) => o.write(buf),
            Out::Stdout(o) => o.write(buf),
            Out::Empty => Ok(buf.len()),
        }
    }
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Out::File(o) => o.write_all(buf),
            Out::Stdout(o) => o.write_all(buf),
            Out::Empty => Ok(()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::File(o) => o.flush(),
            Out::Stdout(o) => o.flush(),
            Out::Empty => Ok(()),
        }
    }
}

/// gzip on every core, as `pigz --independent` writes it: the input cut into 4 MiB pieces,
/// each compressed on its own into a gzip member (the pieces of a batch, one a core, side by
/// side), the members written in order. A file of several members is one gzip file to every
/// reader (RFC 1952; zlib, gzip, Wireshark); the ratio differs from one member's by the
/// dictionary each piece starts without (0.3% larger on the bench). Hand-written: the crates
/// that do this (gzp) add a thread pool and a channel layer for what a scoped thread does here.
#[derive(Debug)]
struct ParallelGzip {
    out: Out,
    pieces: Vec<Vec<u8>>,
    workers: usize,
}

/// Bytes of input a gzip member holds.
const GZIP_PIECE: usize = 4 << 20;

impl ParallelGzip {
    fn new(out: Out) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        ParallelGzip {
            out,
            pieces: vec![Vec::with_capacity(GZIP_PIECE)],
            workers,
        }
    }

    /// Compresses the pieces gathered (side by side) and writes their members in order.
    fn drain(&mut self) -> io::Result<()> {
        let pieces = std::mem::take(&mut self.pieces);
        let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pieces
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| scope.spawn(move || gzip_member(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("a gzip worker failed")))
                })
                .collect()
        });
        for m in members {
            self.out.write_all(&m?)?;
        }
        self.pieces = vec![Vec::with_capacity(GZIP_PIECE)];
        Ok(())
    }

    fn finish(mut self) -> io::Result<Out> {
        self.drain()?;
        Ok(self.out)
    }
}

/// One gzip member of `data`, at gzip's default level.
fn gzip_member(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::default(),
    );
    e.write_all(data)?;
    e.finish()
}

impl Write for ParallelGzip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.pieces.is_empty() {
                self.pieces.push(Vec::with_capacity(GZIP_PIECE));
            }
            let last = self.pieces.len() - 1;
            let piece = &mut self.pieces[last];
            let n = (GZIP_PIECE - piece.len()).min(rest.len());
            piece.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if piece.len() == GZIP_PIECE {
                if self.pieces.len() == self.workers {
                    self.drain()?;
                } else {
                    self.pieces.push(Vec::with_capacity(GZIP_PIECE));
                }
            }
        }
        Ok(buf.len())
    }
    /// Flushing writes nothing early: a member ends where its piece does.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether two paths name the same file (device and inode; canonical paths elsewhere).
#[must_use]
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(ca), Ok(cb)) => ca == cb,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.gz` output larger than a piece a core is several gzip members, read back as one
    /// stream by a reader of concatenated members (as zlib, gzip and Wireshark read them).
    #[test]
    fn gzip_output_is_members_on_every_core_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin.gz");
        let mut data = Vec::with_capacity(3 * GZIP_PIECE + 12_345);
        let mut x = 1u64;
        while data.len() < 3 * GZIP_PIECE + 12_345 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            data.extend_from_slice(&(x >> 60).to_le_bytes());
        }
        let mut f = AtomicFile::create(&target, &[]).unwrap();
        for chunk in data.chunks(100_003) {
            f.write_all(chunk).unwrap();
        }
        f.commit(false).unwrap();
        let bytes = std::fs::read(&target).unwrap();
        let members = bytes.windows(3).filter(|w| *w == [0x1f, 0x8b, 8]).count();
        assert!(members >= 4, "{members} members");
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(bytes.as_slice()),
            &mut back,
        )
        .unwrap();
        assert!(back == data);
    }

    /// `-o /dev/null` (or a FIFO) is written in place: the device stays a device (a file
    /// renamed over it once replaced this machine's /dev/null with a regular file).
    #[cfg(unix)]
    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut out = AtomicFile::create(&fifo, &[]).unwrap();
        out.write_all(b"through the pipe").unwrap();
        out.commit(false).unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file"
        );
        let mut null = AtomicFile::create("/dev/null", &[]).unwrap();
        null.write_all(b"gone").unwrap();
        null.commit(false).unwrap();
        assert!(
            fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        // A link to a file: the file is replaced, the link stays.
        let file = dir.path().join("real.txt");
        fs::write(&file, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let mut out = AtomicFile::create(&link, &[]).unwrap();
        out.write_all(b"new").unwrap();
        out.commit(false).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&file).unwrap(), b"new");
    }

    /// Writes of every size (small ones gathered, large ones handed straight over, unaligned
    /// tails) past the point where the output goes direct come out byte for byte, on the disk
    /// the tests run on (tmpfs refuses O_DIRECT: then all of it is buffered) and on /dev/shm.
    #[test]
    fn an_output_that_goes_direct_holds_every_byte_in_order() {
        let data: Vec<u8> = (0..12_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let here =
            std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dirs = [
            Some(here),
            Some(PathBuf::from("/dev/shm")).filter(|d| d.is_dir()),
        ];
        for base in dirs.into_iter().flatten() {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let target = dir.path().join("out.pcap");
            let mut f = AtomicFile::create(&target, &[]).unwrap();
            let sizes = [
                1,
                7,
                4095,
                4097,
                100_000,
                CHUNK,
                3 * CHUNK + 5,
                513,
                STAGE + 1,
            ];
            let (mut at, mut k) = (0, 0);
            while at < data.len() {
                let n = sizes[k % sizes.len()].min(data.len() - at);
                f.write_all(&data[at..at + n]).unwrap();
                at += n;
                k += 1;
            }
            f.commit(false).unwrap();
            assert!(fs::read(&target).unwrap() == data, "{}", base.display());
        }
    }

    #[test]
    fn commit_renames_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.pcap");
        let mut f = AtomicFile::create(&target, &[]).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!target.exists(), "nothing at the target name before commit");
        f.commit(false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"abc");
        #[cfg(unix)]
        {
            // The mode a plain new file gets here (the umask's), not a temporary file's 0600.
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let plain = dir.path().join("plain");
            fs::File::create(&plain).unwrap();
            assert_eq!(mode(&target), mode(&plain));
            fs::remove_file(&plain).unwrap();
            let secret = dir.path().join("secret.csv");
            let f = AtomicFile::create_private(&secret, &[]).unwrap();
            f.commit(false).unwrap();
            assert_eq!(mode(&secret), 0o600);
            fs::remove_file(&secret).unwrap();
        }

        let other = dir.path().join("other.pcap");
        let mut f = AtomicFile::create(&other, &[]).unwrap();
        f.write_all(b"x").unwrap();
        drop(f);
        assert!(!other.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary file removed"
        );
    }

    #[test]
    fn bytes_written_behind_keep_their_order_across_small_and_large_writes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut f = AtomicFile::create(&target, &[]).unwrap();
        let mut want = Vec::new();
        let mut byte = 0u8;
        // Small writes filling several buffers, then writes of a buffer or more (written
        // directly once the queue is empty), then small ones again.
        for len in (0..3000)
            .map(|i| 1 + i * 7 % 4093)
            .chain([CHUNK, CHUNK * 2 + 5, 3, 17])
        {
            let part: Vec<u8> = (0..len)
                .map(|_| {
                    byte = byte.wrapping_add(13);
                    byte
                })
                .collect();
            f.write_all(&part).unwrap();
            want.extend_from_slice(&part);
        }
        f.flush().unwrap();
        f.write_all(b"tail").unwrap();
        want.extend_from_slice(b"tail");
        f.commit(false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), want);
    }

    #[test]
    fn refuses_to_overwrite_an_input_by_any_path() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        fs::write(&input, b"data").unwrap();
        let other_path = dir.path().join(".").join("in.pcap");
        let err = AtomicFile::create(&other_path, &[input.as_path()]).unwrap_err();
        assert!(matches!(err, OutputError::WouldOverwriteInput { .. }));
        assert_eq!(fs::read(&input).unwrap(), b"data");
    }
}
