//! `tracekit analyze` across two capture sets (directories of rotated files read as one
//! capture each) and `--batch` pairing by content: the lab pairs and generated traffic rotated
//! with editcap at other boundaries on each side, the server side's clock shifted by more than
//! a file's span and its files renamed. Each set's analysis must be the analysis of the two
//! whole captures, frame for frame, with every cited frame found in its file by tshark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tracekit_testutil::packets::{segment, with_payload};
use tracekit_testutil::tshark_fields;

use crate::{LAB_PAIRS, run, stderr, succeed, testdata, tracekit};

fn editcap(args: &[&str], input: &Path, output: &Path) {
    let o = run(std::process::Command::new("editcap")
        .args(args)
        .arg(input)
        .arg(output));
    assert!(o.status.success(), "editcap {args:?}: {}", stderr(&o));
}

/// Splits `input` into `dir` with editcap (`split`: `-c N` or `-i SECONDS`), then renames
/// the pieces `{prefix}{k}.{ext}` with k counting down, so that name order is the reverse of
/// time order. The pieces in time order.
pub fn rotate(input: &Path, dir: &Path, split: &[&str], prefix: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let ext = input.extension().unwrap().to_str().unwrap();
    let staging = dir.join(format!("staging.{ext}"));
    editcap(split, input, &staging);
    std::fs::remove_file(&staging).ok();
    let mut pieces: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // editcap's names carry the piece's number first: their order is time order.
    pieces.sort();
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            let to = dir.join(format!("{prefix}{:03}.{ext}", n - k));
            std::fs::rename(&p, &to).unwrap();
            to
        })
        .collect()
}

/// `tracekit analyze --json ARGS…`, which must succeed.
fn analysis(args: &[&Path]) -> Value {
    let o = succeed(tracekit().args(["analyze", "--json"]).args(args));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The analysis without what names files: trace names, each side's trace, the frames' files
/// and per-file filters, the sets' frame maps.
fn without_files(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("sets");
    for side in ["a", "b"] {
        v["traces"][side].as_object_mut().unwrap().remove("name");
    }
    for c in v["connections"].as_array_mut().unwrap() {
        for side in ["a", "b"] {
            c["sides"][side].as_object_mut().unwrap().remove("trace");
        }
        for e in c["evidence"].as_array_mut().unwrap() {
            let e = e.as_object_mut().unwrap();
            for k in ["files_a", "files_b", "filter_a", "filter_b"] {
                e.remove(k);
            }
        }
    }
    v
}

/// `frame.time_epoch` of every frame of `path`, as tshark prints it.
fn times(path: &Path) -> Vec<String> {
    tshark_fields(path, &["frame.time_epoch"])
}

/// Checks that every frame an evidence of side `side` cites, by file and frame within it,
/// is the frame of the whole capture `whole` it cites by number (same time, per tshark).
fn cited_frames_are_in_their_files(v: &Value, side: &str, whole: &Path, dir: &Path) -> usize {
    let whole_times = times(whole);
    let mut file_times: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for c in v["connections"].as_array().unwrap() {
        for e in c["evidence"].as_array().unwrap() {
            let global: Vec<u64> = e[format!("frames_{side}")]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_u64().unwrap())
                .collect();
            let mut local = Vec::new();
            for g in e[format!("files_{side}")].as_array().into_iter().flatten() {
                let file = g["file"].as_str().unwrap().to_string();
                let frames: Vec<u64> = g["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_u64().unwrap())
                    .collect();
                let filter = g["filter"].as_str().unwrap();
                assert!(
                    filter.starts_with("frame.number"),
                    "a filter for the file: {filter}"
                );
                let t = file_times
                    .entry(file.clone())
                    .or_insert_with(|| times(&dir.join(&file)));
                for f in frames {
                    local.push(t[f as usize - 1].clone());
                }
            }
            let mut want: Vec<String> = global
                .iter()
                .map(|&g| whole_times[g as usize - 1].clone())
                .collect();
            want.sort();
            local.sort();
            assert_eq!(local, want, "{}: {e:#}", e["signal"]);
            checked += global.len();
        }
    }
    checked
}

#[test]
fn lab_pairs_rotated_at_other_boundaries_and_shifted_give_the_pairs_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let mut cited = 0;
    for (n, name) in LAB_PAIRS.iter().enumerate() {
        let base = dir.path().join(name);
        let client = testdata(&format!("{name}-client.pcapng"));
        let server = testdata(&format!("{name}-server.pcapng"));
        // The server side's clock 100 s ahead: more than any lab pair's span.
        let shifted = base.join("server-shifted.pcapng");
        std::fs::create_dir_all(&base).unwrap();
        editcap(&["-t", "100"], &server, &shifted);
        let (a, b) = (base.join("client-side"), base.join("server-side"));
        rotate(&client, &a, &["-c", "10"], "cli-");
        rotate(&shifted, &b, &["-c", "7"], "host-b-");
        let whole = analysis(&[&client, &shifted]);
        let sets = analysis(&[&a, &b]);
        assert!(
            whole["connections"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "{name}"
        );
        let offset = sets["clock"]["offset_ns"].as_i64().unwrap();
        assert!(
            (offset + 100_000_000_000).abs() < 50_000_000,
            "{name}: offset recovered: {offset}"
        );
        assert_eq!(without_files(sets.clone()), without_files(whole), "{name}");
        assert!(sets["sets"]["a"]["files"].as_array().unwrap().len() > 1);
        // Every cited frame is where the set says, for a few pairs (tshark per file is slow).
        if n < 3 {
            cited += cited_frames_are_in_their_files(&sets, "a", &client, &a);
            cited += cited_frames_are_in_their_files(&sets, "b", &shifted, &b);
        }
    }
    assert!(cited > 20, "{cited} frames checked");
}

#[test]
fn several_files_a_side_are_given_around_double_dash() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = (
        testdata("firewall-client.pcapng"),
        testdata("firewall-server.pcapng"),
    );
    let a = rotate(&client, &dir.path().join("a"), &["-c", "20"], "c");
    let b = rotate(&server, &dir.path().join("b"), &["-c", "20"], "s");
    let o = succeed(
        tracekit()
            .args(["analyze", "--json"])
            .args(&a)
            .arg("--")
            .args(&b),
    );
    let sets: Value = serde_json::from_slice(&o.stdout).unwrap();
    let whole = analysis(&[&client, &server]);
    assert_eq!(without_files(sets), without_files(whole));
    // The text report names files where it names frames.
    let o = succeed(tracekit().args(["analyze"]).args(&a).arg("--").args(&b));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains(&format!("({} files, 66 packets)", a.len())),
        "{text}"
    );
    assert!(text.contains("client side c0"), "{text}");
    // So does the page, in the evidence table and on the ladder.
    let page = dir.path().join("report.html");
    succeed(
        tracekit()
            .args(["analyze", "-q", "--html"])
            .arg(&page)
            .args(&a)
            .arg("--")
            .args(&b),
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(".pcapng: <code>frame.number"),
        "evidence by file"
    );
    assert!(html.contains(".pcapng #"), "ladder labels by file");
    // Three paths without `--` are refused.
    let o = run(tracekit().arg("analyze").args(&a[..3]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("give two sides"), "{}", stderr(&o));
    // So are frames: of which side?
    let o = run(tracekit()
        .args(["analyze", "--frames", "1-5"])
        .arg(&client)
        .arg(&server));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Connections of generated traffic: `n` connections 150 ms apart, each a handshake, a request
/// of 100 bytes, a response of 300, and a FIN each way (8 packets, 10 ms apart), seen at a
/// client-side point and at a server-side point whose clock is `ahead` ns ahead, 0.3 ms of
/// path between them. The same bytes at both points: nothing in between. Classic pcaps, µs.
pub fn generated(n: u32, ahead: i64) -> (Vec<u8>, Vec<u8>) {
    generated_drifting(n, ahead, 0)
}

/// [`generated_drifting`] written as `client.pcap` and `server.pcap` in `dir`.
fn generated_files(dir: &Path, n: u32, ahead: i64, ppm: i64) -> (PathBuf, PathBuf) {
    let (a, b) = generated_drifting(n, ahead, ppm);
    let (client, server) = (dir.join("client.pcap"), dir.join("server.pcap"));
    std::fs::write(&client, a).unwrap();
    std::fs::write(&server, b).unwrap();
    (client, server)
}

/// [`generated`] with the server side's clock gaining `ppm` parts per million.
fn generated_drifting(n: u32, ahead: i64, ppm: i64) -> (Vec<u8>, Vec<u8>) {
    const MS: i64 = 1_000_000;
    let header = |out: &mut Vec<u8>| {
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    header(&mut a);
    header(&mut b);
    let record = |out: &mut Vec<u8>, ns: i64, p: &[u8]| {
        let us = ns / 1000;
        out.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    };
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let start = 1_700_000_000 * 1_000 * MS;
    for i in 0..n {
        let port = 20_000 + i as u16;
        let (isn_c, isn_s) = (next() as u32, next() as u32);
        let request: Vec<u8> = (0..100).map(|_| next() as u8).collect();
        let response: Vec<u8> = (0..300).map(|_| next() as u8).collect();
        // (from the server, flags, seq, ack, payload)
        let steps: [(bool, u8, u32, u32, &[u8]); 8] = [
            (false, 0x02, isn_c, 0, &[]),
            (true, 0x12, isn_s, isn_c + 1, &[]),
            (false, 0x10, isn_c + 1, isn_s + 1, &[]),
            (false, 0x18, isn_c + 1, isn_s + 1, &request),
            (true, 0x18, isn_s + 1, isn_c + 101, &response),
            (false, 0x11, isn_c + 101, isn_s + 301, &[]),
            (true, 0x11, isn_s + 301, isn_c + 102, &[]),
            (false, 0x10, isn_c + 102, isn_s + 302, &[]),
        ];
        for (k, (back, flags, seq, ack, payload)) in steps.into_iter().enumerate() {
            let ttl = if back { 58 } else { 64 };
            let mut p = with_payload(segment(port, back, ttl, 0, seq, flags), payload);
            p[42..46].copy_from_slice(&ack.to_be_bytes());
            let t_a = start + i64::from(i) * 150 * MS + k as i64 * 10 * MS;
            let path = MS * 3 / 10;
            let t_b = if back { t_a - path } else { t_a + path }
                + ahead
                + (t_a - start) * ppm / 1_000_000;
            record(&mut a, t_a, &p);
            record(&mut b, t_b, &p);
        }
    }
    (a, b)
}

#[test]
fn generated_traffic_rotated_differently_on_each_side_is_analyzed_as_two_whole_captures() {
    let dir = tempfile::tempdir().unwrap();
    let ahead = 2_500_000_000;
    let (client, server) = generated_files(dir.path(), 400, ahead, 0);
    // Client side by count (about 1.9 s a file), server side by time, 3 s a file: other
    // boundaries, and the clock offset is more than a client file's span.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let files_a = rotate(&client, &a, &["-c", "100"], "client-");
    rotate(&server, &b, &["-i", "3"], "sensor2-");
    let whole = analysis(&[&client, &server]);
    let sets = analysis(&[&a, &b]);
    assert_eq!(whole["connections"].as_array().unwrap().len(), 400);
    assert_eq!(without_files(sets.clone()), without_files(whole));
    let offset = sets["clock"]["offset_ns"].as_i64().unwrap();
    assert!(
        (offset + ahead).abs() < 300_000,
        "offset recovered: {offset}"
    );
    for c in sets["connections"].as_array().unwrap() {
        assert_eq!(c["middlebox"]["kind"], serde_json::json!(["none"]), "{c:#}");
        assert_eq!(c["failed"], false);
    }
    // Connections that cross a file boundary of side a are whole: their SYN and their last
    // FIN in different files.
    let map = &sets["sets"]["a"];
    let file_of = |frame: u64| {
        let runs = map["runs"].as_array().unwrap();
        let run = runs
            .iter()
            .rev()
            .find(|r| r[0].as_u64().unwrap() <= frame)
            .unwrap();
        run[1].as_u64().unwrap()
    };
    let crossing = sets["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let side = &c["sides"]["a"];
            let syn = side["syn"]["frame"].as_u64().unwrap();
            let fin = side["server_close"]["frame"].as_u64().unwrap();
            file_of(syn) != file_of(fin)
        })
        .count();
    assert!(crossing >= 10, "{crossing} connections cross a boundary");
    assert_eq!(map["files"].as_array().unwrap().len(), files_a.len());
}

#[test]
fn batch_pairs_rotated_files_by_content_when_the_clock_offset_exceeds_their_span() {
    let dir = tempfile::tempdir().unwrap();
    let ahead = 2_500_000_000;
    let (client, server) = generated_files(dir.path(), 240, ahead, 0);
    // The same packets in each pair of files (100 a file: about 1.9 s, less than the offset),
    // names that do not match, in the opposite order.
    let (a, b, out) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("out"),
    );
    let files_a = rotate(&client, &a, &["-c", "100"], "cap-");
    let files_b = rotate(&server, &b, &["-c", "100"], "other-");
    // And a file in b that shares nothing with a.
    std::fs::copy(testdata("handshake.pcap"), b.join("unrelated.pcap")).unwrap();
    let o = run(tracekit()
        .args(["analyze", "--batch"])
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(&out));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a file without a partner: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("unrelated.pcap: no partner: shares no connection"),
        "{}",
        stderr(&o)
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let rows = summary["pairs"].as_array().unwrap();
    assert_eq!(rows.len(), files_a.len());
    for r in rows {
        let ra = PathBuf::from(r["a"].as_str().unwrap());
        let k = files_a.iter().position(|f| *f == ra).unwrap();
        assert_eq!(
            r["b"].as_str().unwrap(),
            files_b[k].to_str().unwrap(),
            "{r:#}"
        );
        assert_eq!(r["paired_by"], "content");
        assert!(r["shared_signatures"].as_u64().unwrap() > 10, "{r:#}");
        let offset = r["clock_offset_ns"].as_i64().unwrap();
        assert!((offset + ahead).abs() < 300_000, "{r:#}");
        assert_eq!(r["middlebox"], "none", "{r:#}");
    }
    let unpaired = summary["unpaired"].as_array().unwrap();
    assert_eq!(unpaired.len(), 1, "{unpaired:#?}");
    assert!(
        unpaired[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("unrelated.pcap")
    );
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        index.contains("Files without a partner (1)"),
        "the index lists it"
    );
}

#[test]
fn clocks_that_drift_over_a_long_set_get_an_offset_per_window_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Three minutes of traffic; the server side's clock gains 200 ppm (36 ms by the end,
    // over a hundred times the path's 0.3 ms).
    let (client, server) = generated_files(dir.path(), 1200, 2_500_000_000, 200);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    rotate(&client, &a, &["-i", "20"], "a-");
    rotate(&server, &b, &["-i", "30"], "b-");
    let v = analysis(&[&a, &b]);
    let drift = &v["clock"]["drift"];
    let ppm = drift["ppm"]
        .as_f64()
        .unwrap_or_else(|| panic!("{:#}", v["clock"]));
    assert!((ppm - 200.0).abs() < 20.0, "{ppm}");
    let windows = drift["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3, "{drift:#}");
    // Each window's offset is the true one at some time inside the window.
    let start = 1_700_000_000_000_000_000i64;
    for w in windows {
        let from = w["from_ns"].as_i64().unwrap() - start;
        let offset = w["offset_ns"].as_i64().unwrap();
        let at = |t: i64| -(2_500_000_000 + t * 200 / 1_000_000);
        assert!(
            offset <= at(from) + 300_000 && offset >= at(from + 60_000_000_000) - 300_000,
            "{w:#}"
        );
    }
    assert_eq!(v["connections"].as_array().unwrap().len(), 1200);
    for c in v["connections"].as_array().unwrap() {
        assert_eq!(c["middlebox"]["kind"], serde_json::json!(["none"]), "{c:#}");
    }
    let text =
        String::from_utf8(succeed(tracekit().arg("analyze").arg(&a).arg(&b)).stdout).unwrap();
    assert!(
        text.contains("clock drift: the server side's clock gains 19")
            && text.contains("60 s window (3 windows"),
        "{text}"
    );
    // Clocks that keep time have no drift.
    let (client, server) = generated_files(dir.path(), 1200, 2_500_000_000, 0);
    let v = analysis(&[&client, &server]);
    assert!(v["clock"].get("drift").is_none(), "{:#}", v["clock"]);
}

#[test]
fn the_selection_narrows_both_sets() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = generated_files(dir.path(), 400, 2_500_000_000, 0);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    rotate(&client, &a, &["-c", "100"], "a-");
    rotate(&server, &b, &["-i", "3"], "b-");
    // One connection by its port.
    let v = analysis(&[Path::new("--filter"), Path::new("port 20007"), &a, &b]);
    let rows = v["connections"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["client_port"], 20007);
    assert_eq!(v["traces"]["a"]["packets"], 8);
    assert_eq!(v["traces"]["b"]["packets"], 8);
    // The second half of the minute, from each side's first packet (connections start every
    // 150 ms: 200 of them from +30 s on, each whole inside the window on both sides).
    let v = analysis(&[
        Path::new("--after"),
        Path::new("+30s"),
        Path::new("--before"),
        Path::new("+60s"),
        &a,
        &b,
    ]);
    assert_eq!(v["connections"].as_array().unwrap().len(), 200);
    assert_eq!(v["unmatched"]["a"], 0);
    assert_eq!(v["unmatched"]["b"], 0);
    // Cited frames keep their numbers over the whole set (and in their files).
    let first_syn = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sides"]["a"]["syn"]["frame"].as_u64().unwrap())
        .min()
        .unwrap();
    assert_eq!(first_syn, 200 * 8 + 1);
}
