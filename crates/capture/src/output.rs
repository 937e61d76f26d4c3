//! Output files created atomically: written under a temporary name in the target directory,
//! renamed into place on [`AtomicFile::commit`], removed if dropped uncommitted. An output that
//! would replace one of the inputs is refused.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{target}: refusing to overwrite an input file")]
    WouldOverwriteInput { target: PathBuf },
    #[error("{target}: {source}")]
    Io {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An output being written. Implements `Write` with a large buffer.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    out: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `target`, unless it is one of `inputs` (compared as files, so another
    /// path to the same file is caught too).
    pub fn create(target: impl AsRef<Path>, inputs: &[&Path]) -> Result<AtomicFile, OutputError> {
        let target = target.as_ref().to_path_buf();
        if inputs.iter().any(|input| same_file(input, &target)) {
            return Err(OutputError::WouldOverwriteInput { target });
        }
        let io = |source| OutputError::Io {
            target: target.clone(),
            source,
        };
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io)?;
        Ok(AtomicFile {
            target,
            out: BufWriter::with_capacity(1 << 20, tmp),
        })
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
        let tmp = self.out.into_inner().map_err(|e| io(e.into_error()))?;
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
        self.out.write(buf)
    }
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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

    #[test]
    fn commit_renames_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.pcap");
        let mut f = AtomicFile::create(&target, &[]).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!target.exists(), "nothing at the target name before commit");
        f.commit(false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"abc");

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
