//! Every file of the third-party corpus: same packet count as capinfos where it reads the
#![allow(clippy::case_sensitive_file_extension_comparisons)]
//! file; a clear error where it does not; never a panic.

use tracekit_capture::Capture;
use tracekit_testutil::{corpus_dir, manifest};

/// Files where our count of packets before the damage differs from capinfos's, and why.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "suri_bug-6875_fuzz.pcap",
        "Wireshark guesses a 24-byte-header pcap variant after record 1 looks corrupt and reads a \
         1-byte packet of 1 MB original length; we stop at record 1 with its corrupt length field",
    ),
    (
        "libpcap_shb-option-too-long.pcapng",
        "capinfos rejects the whole file for one bad SHB option; we report the option and read on",
    ),
];

#[test]
fn every_corpus_file_matches_capinfos_or_fails_clearly() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = corpus_dir();
    let mut readable_matched = 0;
    let mut rejected_clear = 0;
    let mut failures = Vec::new();
    let entries = manifest();
    assert!(
        entries.len() >= 100,
        "manifest lists {} files",
        entries.len()
    );
    for e in &entries {
        let path = dir.join(&e.file);
        let outcome = std::panic::catch_unwind(|| read_all(&path));
        let Ok((packets, errors)) = outcome else {
            failures.push(format!("{}: panicked", e.file));
            continue;
        };
        let known = KNOWN_DIFFERENCES.iter().any(|(f, _)| *f == e.file);
        if e.file.ends_with(".snoop") {
            // Readable to capinfos, but not a pcap: it must be refused by name.
            if !errors.iter().any(|m| m.contains("Solaris snoop")) {
                failures.push(format!("{}: not refused by name: {errors:?}", e.file));
            }
        } else if e.capinfos_ok {
            if packets == e.packets {
                readable_matched += 1;
            } else if !known {
                failures.push(format!(
                    "{}: {packets} packets, capinfos {} ({errors:?})",
                    e.file, e.packets
                ));
            }
        } else {
            if errors.is_empty() {
                failures.push(format!(
                    "{}: capinfos rejects it, we report nothing",
                    e.file
                ));
            } else if errors.iter().all(|m| m.len() < 20) {
                failures.push(format!("{}: error message not clear: {errors:?}", e.file));
            } else if packets == e.packets || known {
                rejected_clear += 1;
            } else {
                failures.push(format!(
                    "{}: {packets} packets before the damage, capinfos {}: {errors:?}",
                    e.file, e.packets
                ));
            }
        }
    }
    let readable = entries
        .iter()
        .filter(|e| e.capinfos_ok && !e.file.ends_with(".snoop"))
        .count();
    let rejected = entries.iter().filter(|e| !e.capinfos_ok).count();
    eprintln!(
        "corpus: {readable_matched}/{readable} readable files match capinfos, {rejected_clear}/{rejected} rejected files give clear errors"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(readable_matched, readable);
    assert_eq!(rejected_clear, rejected);
}

#[test]
fn non_pcap_formats_are_refused_by_name() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let err = Capture::open(corpus_dir().join("ppp_solaris.snoop")).unwrap_err();
    assert!(err.to_string().contains("Solaris snoop"), "{err}");
}

/// Packets read and every message (open errors, fatal read errors, problems).
fn read_all(path: &std::path::Path) -> (u64, Vec<String>) {
    let capture = match Capture::open(path) {
        Ok(c) => c,
        Err(e) => return (0, vec![e.to_string()]),
    };
    let mut records = capture.records();
    let mut packets = 0;
    let mut errors = Vec::new();
    for r in records.by_ref() {
        match r {
            Ok(r) => {
                assert!(r.data.len() <= capture.data().len());
                packets += 1;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors.extend(records.problems().0.iter().map(ToString::to_string));
    (packets, errors)
}

#[test]
fn timestamps_and_lengths_match_tshark_on_every_readable_file() {
    use std::io::Write;
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = corpus_dir();
    let mut checked = 0;
    for e in manifest()
        .iter()
        .filter(|e| e.capinfos_ok && !e.file.ends_with(".snoop"))
    {
        let path = dir.join(&e.file);
        let capture = Capture::open(&path).unwrap();
        let mut records = capture.records();
        let ours: Vec<String> = records
            .by_ref()
            .map_while(Result::ok)
            .map(|r| {
                let ts = if r.has_ts {
                    r.ts.0.to_string()
                } else {
                    String::new()
                };
                format!("{ts}\t{}\t{}", r.data.len(), r.orig_len)
            })
            .collect();
        // Records we flagged (a µs field of 2^31: Wireshark's 32-bit multiply wraps to 0) are
        // read differently on purpose.
        let flagged: Vec<u64> = records.problems().0.iter().map(|p| p.record).collect();
        let theirs = tracekit_testutil::tshark_fields(
            &path,
            &["frame.time_epoch", "frame.cap_len", "frame.len"],
        );
        assert_eq!(ours.len(), theirs.len(), "{}", e.file);
        for (n, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            // tshark prints times outside i64 nanoseconds in full; we saturate and report it.
            if b.split('.').next().is_some_and(|s| s.len() > 11) || flagged.contains(&(n as u64)) {
                continue;
            }
            let b = match b.split_once('\t') {
                Some((ts, rest)) => format!("{}\t{rest}", epoch_to_nanos(ts)),
                None => b.clone(),
            };
            assert_eq!(*a, b, "{} frame {}", e.file, n + 1);
        }
        checked += 1;
    }
    writeln!(
        std::io::stderr(),
        "timestamps and lengths identical to tshark in {checked} files"
    )
    .unwrap();
    assert!(checked > 100);
}

/// tshark prints `seconds.nanoseconds` with the nanoseconds as `%09d`, so an unnormalized
/// fraction (a pcap µs field of 1000000) shows as ten digits: read the fraction as a count.
fn epoch_to_nanos(text: &str) -> String {
    let Some((secs, frac)) = text.split_once('.') else {
        return text.to_string();
    };
    let secs: i64 = secs.parse().unwrap();
    let frac: i64 = if frac.len() >= 9 {
        frac.parse().unwrap()
    } else {
        format!("{frac:0<9}").parse().unwrap()
    };
    (secs * 1_000_000_000 + frac).to_string()
}
