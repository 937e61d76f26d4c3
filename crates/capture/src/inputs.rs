//! Expanding the input arguments: files as given; directories searched recursively in name
//! order, keeping the files whose first bytes say capture (pcap, pcapng, gzip, zstd), so a
//! README or a checksum file beside thousands of captures is passed over, and counted.

use std::path::{Path, PathBuf};

use crate::{Capture, probe_file};

/// The inputs found, directories that could not be read, and files passed over.
#[derive(Debug, Default)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
    pub not_captures: Vec<PathBuf>,
}

/// The files `args` name, directories searched (see the module's note).
#[must_use]
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

/// The inputs expanded and opened, in input order.
#[derive(Debug)]
pub struct Opened {
    pub captures: Vec<Capture>,
    /// Directories and files that could not be read or opened, one line each.
    pub trouble: Vec<String>,
    /// Every capture file named or found, opened or not (none may be overwritten).
    pub files: Vec<PathBuf>,
}

/// No input could be opened: why, for each that was tried.
#[derive(Debug, thiserror::Error)]
#[error("no input could be opened: {}", .0.join("; "))]
pub struct NothingOpened(pub Vec<String>);

/// Expands `args` and opens every capture; an error when none could be opened.
pub fn open(args: &[PathBuf]) -> Result<Opened, NothingOpened> {
    let found = expand(args);
    let mut trouble: Vec<String> = found
        .unreadable
        .iter()
        .map(|(path, e)| format!("{}: unreadable: {e}", path.display()))
        .collect();
    let mut captures = Vec::new();
    for path in &found.files {
        match Capture::open(path) {
            Ok(c) => captures.push(c),
            Err(e) => trouble.push(format!("{e} (input left out)")),
        }
    }
    if captures.is_empty() {
        return Err(NothingOpened(trouble));
    }
    Ok(Opened {
        captures,
        trouble,
        files: found.files,
    })
}
