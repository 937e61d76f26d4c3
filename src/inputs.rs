//! Expanding the input arguments: files as given; directories searched recursively in name
//! order, keeping the files whose first bytes say capture (pcap, pcapng, gzip, zstd), so a
//! README or a checksum file beside thousands of captures is passed over, and counted.

use std::path::{Path, PathBuf};

use tracekit_capture::probe_file;

/// The inputs found, directories that could not be read, and files passed over.
#[derive(Debug, Default)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
    pub not_captures: Vec<PathBuf>,
}

pub fn expand(args: &[PathBuf]) -> Inputs {
    let mut found = Inputs::default();
    for arg in args {
        if arg.is_dir() {
            walk(arg, &mut found);
        } else {
            found.files.push(arg.clone());
        }
    }
    found
}

fn walk(dir: &Path, found: &mut Inputs) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.unreadable.push((dir.to_path_buf(), e));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, found);
        } else if path.is_file() && !is_hidden(&path) {
            match probe_file(&path) {
                Ok(kind) if kind.may_be_capture() => found.files.push(path),
                Ok(_) => found.not_captures.push(path),
                Err(e) => found.unreadable.push((path, e)),
            }
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}
