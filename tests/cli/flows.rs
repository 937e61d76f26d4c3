//! `tracekit flows`: packets and bytes per direction against tshark's TCP/UDP conversations
//! (per tcp.stream / udp.stream), Community IDs against the reference implementation, and a
//! rotated set against the file it was cut from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{corpus, run, stderr, stdout, succeed, tracekit};

fn flows(inputs: &[&Path], extra: &[&str]) -> Vec<serde_json::Value> {
    let o = run(tracekit().args(["flows", "-q"]).args(extra).args(inputs));
    assert!(o.status.code() != Some(2), "{inputs:?}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (proto, stream) → sending endpoint → (packets, frame bytes).
type Conversations = BTreeMap<(String, u64), BTreeMap<String, (u64, u64)>>;

/// tshark's view: every packet with one IP header and a tcp.stream or udp.stream, counted per
/// stream and sending endpoint. Streams with a packet tshark sees through two IP headers (a
/// tunnel, an ICMP error quoting the flow) are left out: tshark counts those in the inner
/// conversation, tracekit (like split) keys them on the outer header.
fn tshark_conversations(file: &Path) -> Conversations {
    let lines = tracekit_testutil::tshark_fields(
        file,
        &[
            "tcp.stream",
            "udp.stream",
            "ip.src",
            "ipv6.src",
            "tcp.srcport",
            "udp.srcport",
            "frame.len",
            "ip.fragment",
            "ipv6.fragment",
        ],
    );
    let mut conv = Conversations::new();
    let mut tainted = std::collections::BTreeSet::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        let (proto, stream, port) = match (f[0], f[1]) {
            ("", "") => continue,
            (s, "") => ("tcp", s, f[4]),
            ("", s) => ("udp", s, f[5]),
            _ => continue,
        };
        let addr = if f[2].is_empty() { f[3] } else { f[2] };
        let Ok(stream) = stream.parse::<u64>() else {
            // Several values: a packet with a flow inside a flow.
            for s in stream.split(',') {
                tainted.insert((proto.to_string(), s.parse::<u64>().unwrap()));
            }
            continue;
        };
        let key = (proto.to_string(), stream);
        // Reassembled from fragments: tshark counts the datagram once, in its last fragment;
        // tracekit counts every fragment in the flow (as split puts them there).
        let reassembled = !f[7].is_empty() || !f[8].is_empty();
        if reassembled
            || addr.contains(',')
            || (!f[2].is_empty() && !f[3].is_empty())
            || port.contains(',')
        {
            tainted.insert(key);
            continue;
        }
        let e = conv
            .entry(key)
            .or_default()
            .entry(format!("{addr}/{port}"))
            .or_default();
        e.0 += 1;
        e.1 += f[6].parse::<u64>().unwrap();
    }
    conv.retain(|k, _| !tainted.contains(k));
    conv
}

fn ours(rows: &[serde_json::Value]) -> Conversations {
    let mut conv = Conversations::new();
    for r in rows {
        let Some(stream) = r["stream"].as_u64() else {
            continue;
        };
        let m = conv
            .entry((r["proto"].as_str().unwrap().to_string(), stream))
            .or_default();
        for (end, port, packets, bytes) in [
            ("client", "client_port", "packets_c2s", "bytes_c2s"),
            ("server", "server_port", "packets_s2c", "bytes_s2c"),
        ] {
            let n = r[packets].as_u64().unwrap();
            if n > 0 {
                let port = r[port].as_u64().map_or(String::new(), |p| p.to_string());
                m.insert(
                    format!("{}/{port}", r[end].as_str().unwrap()),
                    (n, r[bytes].as_u64().unwrap()),
                );
            }
        }
    }
    conv
}

/// Where the two dissectors read a packet differently on purpose: tshark stops at a
/// destination-options header it calls malformed (a Home Address option), tracekit reads the
/// UDP header behind it.
const DISSECTED_DIFFERENTLY: [&str; 1] = ["zeek_ipv6-mobility-dst-opts.pcap"];

/// The corpus files capinfos reads and tracekit opens.
fn readable_corpus() -> Vec<PathBuf> {
    tracekit_testutil::manifest()
        .into_iter()
        .filter(|e| e.capinfos_ok && !e.malformed)
        .map(|e| corpus(&e.file))
        .filter(|f| tracekit_capture::Capture::open(f).is_ok())
        .collect()
}

/// Per stream number, per direction: the packets and frame bytes tshark counts (what
/// `tshark -z conv,tcp -z conv,udp` prints, read exactly from the fields it adds up).
#[test]
fn packets_and_bytes_per_direction_equal_tsharks_conversations() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let files = readable_corpus();
    let compared = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (files, compared) = (&files, &compared);
            scope.spawn(move || {
                for file in files.iter().skip(worker).step_by(2) {
                    if DISSECTED_DIFFERENTLY.iter().any(|n| file.ends_with(n)) {
                        continue;
                    }
                    let theirs = tshark_conversations(file);
                    if theirs.is_empty() {
                        continue;
                    }
                    let mine = ours(&flows(&[file], &[]));
                    if mine.is_empty() {
                        // A link type tracekit's dissector does not read (802.11 behind
                        // radiotap, IP over InfiniBand): its packets are rows without IP.
                        eprintln!("{}: no TCP/UDP read by tracekit", file.display());
                        continue;
                    }
                    for (key, ends) in &theirs {
                        assert_eq!(mine.get(key), Some(ends), "{} {key:?}", file.display());
                    }
                    compared.fetch_add(theirs.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let compared = compared.into_inner();
    eprintln!("{compared} conversations compared");
    assert!(compared > 2000, "only {compared} conversations compared");
}

/// Every Community ID equals the `communityid` package's (scripts/test installs it in a venv
/// and sets TRACEKIT_PYTHON).
#[test]
fn community_ids_equal_the_reference_implementation() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let python = std::env::var("TRACEKIT_PYTHON").unwrap_or_else(|_| {
        tracekit_testutil::repo_dir()
            .join("target/pyenv/bin/python")
            .display()
            .to_string()
    });
    let mut rows = String::new();
    for file in readable_corpus() {
        for r in flows(&[&file], &[]) {
            rows.push_str(&r.to_string());
            rows.push('\n');
        }
    }
    let mut check = Command::new(&python)
        .arg(tracekit_testutil::repo_dir().join("tests/py/communityid_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} (run scripts/test, which installs communityid): {e}"));
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), rows.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: usize = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("checked "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(checked > 2500, "{text}");
}

/// `extract --community-id` pulls out exactly the packets of the flow with that ID.
#[test]
fn a_community_id_selects_its_flows_packets() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_many-protocols.pcap");
    let rows = flows(&[&file], &["--top", "3", "--by", "packets"]);
    assert_eq!(rows.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    for r in rows {
        let out = dir.path().join("flow.pcap");
        succeed(
            tracekit()
                .args(["extract", "-q", "--community-id"])
                .arg(r["community_id"].as_str().unwrap())
                .arg("-o")
                .arg(&out)
                .arg(&file),
        );
        let n = tracekit_capture::Capture::open(&out)
            .unwrap()
            .records()
            .count() as u64;
        assert_eq!(
            n,
            r["packets_c2s"].as_u64().unwrap() + r["packets_s2c"].as_u64().unwrap()
        );
    }
}

/// A rotated set gives the rows of the file it was cut from (only `files` differs), and a
/// conversation that spans chunks is one row naming each chunk.
#[test]
fn a_rotated_set_gives_the_flows_of_the_whole_file() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_tls2.pcap");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    succeed(
        tracekit()
            .args(["split", "-q", "--by", "count=200", "-o"])
            .arg(&set)
            .arg(&file),
    );
    let strip = |mut rows: Vec<serde_json::Value>| {
        for r in &mut rows {
            r.as_object_mut().unwrap().remove("files");
        }
        rows
    };
    let whole = flows(&[&file], &[]);
    let from_set = flows(&[&set], &[]);
    assert!(
        from_set
            .iter()
            .any(|r| r["files"].as_array().unwrap().len() > 1)
    );
    assert_eq!(strip(whole), strip(from_set));
}

/// Zeek's states on the lab pairs: a completed TLS exchange closed by FIN, and a connection
/// the firewall reset.
#[test]
fn states_histories_and_closers_read_as_zeeks() {
    let rows = flows(
        &[&crate::testdata("reset-client.pcapng")],
        &["--format", "jsonl"],
    );
    let tcp: Vec<&serde_json::Value> = rows.iter().filter(|r| r["proto"] == "tcp").collect();
    assert!(!tcp.is_empty());
    for r in &tcp {
        let state = r["state"].as_str().unwrap();
        assert!(
            ["SF", "RSTO", "RSTR", "S1", "S2", "S3", "REJ"].contains(&state),
            "{r}"
        );
        assert!(r["history"].as_str().unwrap().starts_with("Sh"), "{r}");
    }
    let csv = run(tracekit()
        .args(["flows", "-q", "--format", "csv", "--top", "1"])
        .arg(crate::testdata("firewall-client.pcapng")));
    let text = stdout(&csv);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("proto,ip_proto,stream,client,")
    );
    assert_eq!(lines.count(), 1);
}

/// Regression: `flows --format csv | head -1` ended with "Broken pipe", exit 2 (the CSV
/// writer's error hid the I/O error the quiet exit looks for).
#[test]
fn a_closed_pipe_ends_flows_quietly() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for format in ["csv", "jsonl"] {
        let mut child = tracekit()
            .args(["flows", "-q", "--format", format])
            .arg(tracekit_testutil::corpus_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(2), "{format}: {err}");
        assert!(!err.contains("Broken pipe"), "{format}: {err}");
    }
}

#[test]
fn the_output_file_is_written_whole_then_renamed_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flows.csv");
    std::fs::write(&out, "an older table\n").unwrap();
    let to_stdout = crate::succeed(
        crate::tracekit()
            .args(["flows", "--format", "csv"])
            .arg(crate::testdata("rotated")),
    );
    crate::succeed(
        crate::tracekit()
            .args(["flows", "--format", "csv", "-o"])
            .arg(&out)
            .arg(crate::testdata("rotated")),
    );
    assert_eq!(std::fs::read(&out).unwrap(), to_stdout.stdout);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left beside it");
}
