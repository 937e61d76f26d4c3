//! Test helpers shared by the tracekit crates' tests: where the third-party corpus and the
//! project's testdata are, the corpus manifest, and tshark as an outside reader.
#![allow(clippy::must_use_candidate, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::process::Command;

/// The third-party corpus: `TRACEKIT_CORPUS`, else `../shared/corpus` beside the repository,
/// else `/work/shared/corpus` (where this workplace keeps it, whatever the clone's location).
pub fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRACEKIT_CORPUS") {
        return PathBuf::from(dir);
    }
    let candidates = [
        repo_dir().join("../shared/corpus"),
        PathBuf::from("/work/shared/corpus"),
    ];
    for dir in &candidates {
        if dir.join("MANIFEST.tsv").exists() {
            return dir.clone();
        }
    }
    panic!("corpus not found at {candidates:?}; set TRACEKIT_CORPUS");
}

/// The repository root.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn testdata_dir() -> PathBuf {
    repo_dir().join("testdata")
}

/// One row of MANIFEST.tsv.
#[derive(Debug, Clone)]
pub struct Entry {
    pub file: String,
    /// capinfos's packet count when it read the file, or how many it read before failing.
    pub packets: u64,
    pub capinfos_ok: bool,
    pub malformed: bool,
    pub strict_time_order: bool,
}

pub fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, packets, status, malformed, order) = (
        col("file"),
        col("packets"),
        col("capinfos_status"),
        col("malformed_on_purpose"),
        col("strict_time_order"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let packets = f[packets]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Entry {
                file: f[file].to_string(),
                packets,
                capinfos_ok: f[status] == "OK",
                malformed: f[malformed] == "yes",
                strict_time_order: f[order] == "True",
            }
        })
        .collect()
}

/// `tshark -T fields` output for a file: one line per packet.
pub fn tshark_fields(path: &std::path::Path, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    // Custom and other non-packet pcapng blocks show as frames of protocol "pcapng": skip them.
    cmd.arg("-n")
        .arg("-r")
        .arg(path)
        .args(["-Y", "frame.encap_type", "-T", "fields"]);
    for f in fields {
        cmd.arg("-e").arg(f);
    }
    let out = cmd
        .output()
        .expect("tshark is installed (scripts/test installs it)");
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
