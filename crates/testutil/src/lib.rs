//! Test helpers shared by the tracekit crates' tests: where the third-party corpus and the
//! project's testdata are, the corpus manifest, and tshark as an outside reader.
#![allow(clippy::must_use_candidate, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::process::Command;

/// The third-party corpus, when this machine has it: the directory `TRACEKIT_CORPUS` names;
/// else `target/corpus` of this repository, where `scripts/fetch-corpus` puts it; else a
/// directory named `corpus` holding the manifest and its captures beside the repository or
/// beside one of its three nearest ancestors (a copy shared by several clones), the nearest
/// first.
pub fn find_corpus() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TRACEKIT_CORPUS") {
        let dir = PathBuf::from(dir);
        return holds_corpus(&dir).then_some(dir);
    }
    let repo = repo_dir().canonicalize().ok()?;
    let fetched = repo.join("target/corpus");
    if holds_corpus(&fetched) {
        return Some(fetched);
    }
    for up in repo.ancestors().skip(1).take(4) {
        let mut beside: Vec<PathBuf> = std::fs::read_dir(up)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("corpus"))
            .filter(|d| holds_corpus(d))
            .collect();
        beside.sort();
        if let Some(dir) = beside.into_iter().next() {
            return Some(dir);
        }
    }
    None
}

/// A manifest and the first capture it lists (not a clone's `corpus/`, which has only the
/// manifest).
fn holds_corpus(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("MANIFEST.tsv")).is_ok_and(|text| {
        text.lines()
            .nth(1)
            .and_then(|row| row.split('\t').next())
            .is_some_and(|file| dir.join(file).is_file())
    })
}

/// The third-party corpus; panics when there is none (tests call [`corpus_or_skip`] first).
pub fn corpus_dir() -> PathBuf {
    find_corpus().unwrap_or_else(|| {
        panic!("no corpus: run scripts/fetch-corpus, or set TRACEKIT_CORPUS to its directory")
    })
}

/// For a test that reads the corpus, called first: `true` when the corpus is here. When it is
/// not, the test is to return at once: it is counted (its name appended to
/// `target/corpus-skipped`, which `scripts/test` counts in one line), unless
/// `TRACEKIT_REQUIRE_CORPUS=1` (CI), which makes a missing corpus a failure.
pub fn has_corpus() -> bool {
    if find_corpus().is_some() {
        return true;
    }
    assert!(
        std::env::var("TRACEKIT_REQUIRE_CORPUS").as_deref() != Ok("1"),
        "TRACEKIT_REQUIRE_CORPUS=1 and no corpus: run scripts/fetch-corpus, or set TRACEKIT_CORPUS"
    );
    let name = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let log = repo_dir().join("target/corpus-skipped");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "{name}");
    }
    false
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

/// Packets for tests, written byte by byte.
pub mod packets {
    /// Ethernet + IPv4 + TCP from 192.0.2.10:`port` to 198.51.100.20:443, or back; the IPv4 ID
    /// is the client port, the acknowledgement number 0, no options.
    pub fn segment(port: u16, back: bool, ttl: u8, ecn: u8, isn: u32, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 14 + 20 + 20];
        p[6..12].copy_from_slice(&[0, 0x1c, 0x7f, 0, 0, u8::from(back)]);
        p[12] = 0x08;
        p[14] = 0x45;
        p[15] = ecn;
        p[16..18].copy_from_slice(&40u16.to_be_bytes());
        p[18..20].copy_from_slice(&port.to_be_bytes());
        p[22] = ttl;
        p[23] = 6;
        let (mut src, mut dst) = ([192, 0, 2, 10], [198, 51, 100, 20]);
        let (mut sport, mut dport) = (port, 443u16);
        if back {
            (src, dst, sport, dport) = (dst, src, dport, sport);
        }
        p[26..30].copy_from_slice(&src);
        p[30..34].copy_from_slice(&dst);
        p[34..36].copy_from_slice(&sport.to_be_bytes());
        p[36..38].copy_from_slice(&dport.to_be_bytes());
        p[38..42].copy_from_slice(&isn.to_be_bytes());
        p[46] = 0x50;
        p[47] = flags;
        p
    }

    /// `segment` carrying `payload`.
    pub fn with_payload(mut p: Vec<u8>, payload: &[u8]) -> Vec<u8> {
        p.extend_from_slice(payload);
        let total = (40 + payload.len()) as u16;
        p[16..18].copy_from_slice(&total.to_be_bytes());
        p
    }
}
