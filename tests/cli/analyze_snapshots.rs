//! Snapshots of everything `tracekit analyze` prints for every lab pair and a few corpus pairs:
//! the text report, `--all`, `--json` and the HTML page. They pin the whole output so that a
//! change to analyze shows, as a reviewable diff (`cargo insta review`), exactly which result it
//! changed; a change meant to alter nothing must leave them all as they are.

use std::path::{Path, PathBuf};

use crate::{LAB_PAIRS, corpus, run, stderr, stdout, testdata, tracekit};

/// Corpus pairs: two real captures of one exchange taken at its two ends, and single captures
/// against themselves (a pair whose two points are one: nothing may be found between them).
const CORPUS_PAIRS: [(&str, &str, &str); 4] = [
    (
        "tls12_dirsplit",
        "ndpi_tls12_dirsplit_client.pcapng",
        "ndpi_tls12_dirsplit_server.pcapng",
    ),
    (
        "ssh_half_duplex",
        "zeek_ssh.client-side-half-duplex.pcap",
        "zeek_ssh.server-side-half-duplex.pcap",
    ),
    (
        "tls12_handshake_failure_self",
        "zeek_tls-1.2-handshake-failure.pcap",
        "zeek_tls-1.2-handshake-failure.pcap",
    ),
    (
        "tls_early_alert_self",
        "zeek_tls-early-alert.pcap",
        "zeek_tls-early-alert.pcap",
    ),
];

fn analyze(flags: &[&str], a: &Path, b: &Path) -> String {
    let o = run(tracekit().arg("analyze").args(flags).arg(a).arg(b));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

fn html(a: &Path, b: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let o = run(tracekit()
        .args(["analyze", "--quiet", "--html"])
        .arg(&page)
        .arg(a)
        .arg(b));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read_to_string(page).unwrap()
}

/// Every output of one pair, each under its own snapshot name.
fn snapshot_pair(name: &str, a: &Path, b: &Path) {
    insta::assert_snapshot!(format!("{name}_text"), analyze(&[], a, b));
    insta::assert_snapshot!(format!("{name}_all"), analyze(&["--all"], a, b));
    insta::assert_snapshot!(format!("{name}_json"), analyze(&["--json"], a, b));
    insta::assert_snapshot!(format!("{name}_html"), html(a, b));
}

fn lab(name: &str) -> (PathBuf, PathBuf) {
    (
        testdata(&format!("{name}-client.pcapng")),
        testdata(&format!("{name}-server.pcapng")),
    )
}

#[test]
fn every_lab_pair_reports_as_its_snapshots() {
    for name in LAB_PAIRS {
        let (a, b) = lab(name);
        snapshot_pair(&format!("lab_{name}"), &a, &b);
    }
}

#[test]
fn the_corpus_pairs_report_as_their_snapshots() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for (name, a, b) in CORPUS_PAIRS {
        snapshot_pair(&format!("corpus_{name}"), &corpus(a), &corpus(b));
    }
}
