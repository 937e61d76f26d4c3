use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracekit_capture::writer::{PcapWriter, Precision};
use tracekit_capture::{Capture, LinkType, Timestamp};
use tracekit_testutil::tshark_fields;

use crate::{corpus, records_of, run, stderr, testdata, tracekit};

/// Runs `tracekit merge ARGS -o DIR/OUT INPUTS`; returns the output path and the process output.
fn merge(
    dir: &Path,
    out: &str,
    args: &[&str],
    inputs: &[PathBuf],
) -> (PathBuf, std::process::Output) {
    let path = dir.join(out);
    let o = run(tracekit()
        .arg("merge")
        .arg("-q")
        .args(args)
        .arg("-o")
        .arg(&path)
        .args(inputs));
    (path, o)
}

fn multiset(records: Vec<(i64, Vec<u8>)>) -> BTreeMap<(i64, Vec<u8>), usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

/// A pcap of Ethernet frames whose last byte is `tag`, at the given times (ns).
fn tagged(path: &Path, tag: u8, times: &[i64]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(&mut f, LinkType::ETHERNET, Precision::Nano, 65535).unwrap();
    for (i, &t) in times.iter().enumerate() {
        let mut frame = vec![0xffu8; 12];
        frame.extend([0x88, 0xb5]); // local experimental EtherType
        frame.extend([i as u8, tag]);
        w.write(Timestamp(t), &frame, frame.len() as u32).unwrap();
    }
}

#[test]
fn merging_split_outputs_gives_back_the_original_records() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for name in [
        "ndpi_KakaoTalk_chat_portreuse.pcap",
        "ppp_many_interfaces-1.pcapng",
        "pcapng-gen_test202_mixed-endian-sections.pcapng",
        "zeek_vxlan-encapsulated-http.pcap",
        // Not in time order: 4 packets earlier than one before them.
        "ppp_tls2.pcap",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("parts");
        let o = run(tracekit()
            .args(["split", "-q", "-o"])
            .arg(&parts)
            .arg(corpus(name)));
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let (out, o) = merge(dir.path(), "merged.pcapng", &[], &[parts]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let original = records_of(&corpus(name));
        let merged = records_of(&out);
        // In time order even where the original's clock steps back (as Wireshark needs).
        assert!(
            merged.windows(2).all(|w| w[0].0 <= w[1].0),
            "{name}: merged output is not in time order"
        );
        assert_eq!(merged.len(), original.len(), "{name}");
        assert_eq!(multiset(merged), multiset(original.clone()), "{name}");
        // tshark reads every packet of it.
        assert_eq!(tshark_fields(&out, &["frame.number"]).len(), original.len());
    }
}

#[test]
fn ties_go_in_input_order_and_append_concatenates() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    tagged(&a, 0xa, &[100, 200, 200, 300]);
    tagged(&b, 0xb, &[200, 250, 300]);
    let tags = |p: &Path| -> Vec<(i64, u8)> {
        records_of(p)
            .into_iter()
            .map(|(t, d)| (t, *d.last().unwrap()))
            .collect()
    };
    let (ab, o) = merge(dir.path(), "ab.pcapng", &[], &[a.clone(), b.clone()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        tags(&ab),
        [
            (100, 0xa),
            (200, 0xa),
            (200, 0xa),
            (200, 0xb),
            (250, 0xb),
            (300, 0xa),
            (300, 0xb)
        ]
    );
    let (ba, _) = merge(dir.path(), "ba.pcapng", &[], &[b.clone(), a.clone()]);
    assert_eq!(
        tags(&ba),
        [
            (100, 0xa),
            (200, 0xb),
            (200, 0xa),
            (200, 0xa),
            (250, 0xb),
            (300, 0xb),
            (300, 0xa)
        ]
    );
    let (cat, _) = merge(
        dir.path(),
        "cat.pcap",
        &["--append", "--format", "pcap"],
        &[b, a],
    );
    assert_eq!(
        tags(&cat),
        [
            (200, 0xb),
            (250, 0xb),
            (300, 0xb),
            (100, 0xa),
            (200, 0xa),
            (200, 0xa),
            (300, 0xa)
        ]
    );
}

#[test]
fn mixed_link_types_and_resolutions_go_into_pcapng_that_tshark_reads() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        testdata("handshake.pcap"),                  // Ethernet, µs
        testdata("handshake-ns.pcap"),               // Ethernet, ns
        corpus("ppp_many_interfaces-1.pcapng"),      // Ethernet and loopback interfaces
        corpus("zeek_vxlan-encapsulated-http.pcap"), // another file, µs
    ];
    let (out, o) = merge(dir.path(), "mixed.pcapng", &[], &inputs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut expected: Vec<(String, String)> = Vec::new();
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        for line in tshark_fields(input, &["frame.time_epoch", "frame.len"]) {
            expected.push((name.clone(), line));
        }
    }
    expected.sort();
    let mut got: Vec<(String, String)> = tshark_fields(
        &out,
        &["frame.interface_name", "frame.time_epoch", "frame.len"],
    )
    .into_iter()
    .map(|l| {
        let (iface, rest) = l.split_once('\t').unwrap();
        // Later interfaces of a file are named file#N.
        let file = iface.split('#').next().unwrap().to_string();
        (file, rest.to_string())
    })
    .collect();
    got.sort();
    assert_eq!(
        got, expected,
        "same packets, same times to the ns, per input"
    );
    let encaps = tshark_fields(&out, &["frame.encap_type"]);
    assert!(encaps.iter().any(|e| e == "1") && encaps.iter().any(|e| e == "15"));
    // pcap output needs one link type.
    let (bad, o) = merge(dir.path(), "mixed.pcap", &["--format", "pcap"], &inputs);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("link type"), "{}", stderr(&o));
    assert!(!bad.exists(), "no partial output");
}

#[test]
fn shift_moves_one_input_exactly_and_pcap_keeps_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("handshake.pcap");
    let (out, o) = merge(
        dir.path(),
        "shifted.pcap",
        &[
            "--format",
            "pcap",
            "--shift",
            "handshake.pcap=-1.250000001s",
        ],
        std::slice::from_ref(&input),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = records_of(&input);
    let after = records_of(&out);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.0, b.0 - 1_250_000_001);
        assert_eq!(a.1, b.1);
    }
    // A nanosecond pcapng (the lab capture) into pcap: nanoseconds kept, nothing skipped.
    let ng = testdata("router-server.pcapng");
    let (out, o) = merge(
        dir.path(),
        "from-ng.pcap",
        &["--format", "pcap"],
        std::slice::from_ref(&ng),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(records_of(&out), records_of(&ng));
    let o = run(tracekit()
        .args(["merge", "-q", "--shift", "nosuch.pcap=1s", "-o"])
        .arg(dir.path().join("x.pcapng"))
        .arg(&input));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no input is"), "{}", stderr(&o));
}

#[test]
fn dedup_drops_exact_copies_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("handshake.pcap");
    let twice = [input.clone(), input.clone()];
    let (all, _) = merge(dir.path(), "all.pcapng", &[], &twice);
    let n = records_of(&input).len();
    assert_eq!(records_of(&all).len(), 2 * n);
    let (once, o) = merge(dir.path(), "once.pcapng", &["--dedup"], &twice);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(records_of(&once), records_of(&input));
    assert!(
        stderr(&o).contains(&format!("{n} exact duplicates dropped")),
        "{}",
        stderr(&o)
    );
    // A copy 2 s later is outside a 1 s window.
    let (later, o) = merge(
        dir.path(),
        "later.pcapng",
        &["--dedup=1s", "--shift", &format!("{}=2s", input.display())],
        &[input.clone(), testdata("handshake.pcap.gz")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(records_of(&later).len(), 2 * n);
}

#[test]
fn a_damaged_input_is_reported_and_the_rest_merged() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let damaged = corpus("suri_tls_DER-incomplete-header.pcap");
    let good = testdata("handshake.pcap");
    let (out, o) = merge(
        dir.path(),
        "m.pcapng",
        &[],
        &[damaged.clone(), good.clone()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("byte offset 5035"), "{}", stderr(&o));
    assert_eq!(
        records_of(&out).len(),
        records_of(&damaged).len() + records_of(&good).len()
    );
    // Never over an input.
    let before = std::fs::read(&good).unwrap();
    let o = run(tracekit().args(["merge", "-q", "-o"]).arg(&good).arg(&good));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("overwrite"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&good).unwrap(), before);
}

/// The estimate line for `name`: (estimate, lo, hi) in ns.
fn estimate_of(err: &str, name: &str) -> (i64, i64, i64) {
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}: clock offset")))
        .unwrap_or_else(|| panic!("no estimate for {name}: {err}"));
    let ns = |s: &str| -> i64 {
        let s = s.trim().trim_end_matches(" s").trim();
        let (sign, rest) = s.split_at(1);
        let (whole, frac) = rest.split_once('.').unwrap();
        let v = whole.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap();
        if sign == "-" { -v } else { v }
    };
    let est = line.split("estimated ").nth(1).unwrap();
    let est = est.split(',').next().unwrap();
    let interval = line.split('[').nth(1).unwrap().split(']').next().unwrap();
    let (lo, hi) = interval.split_once(',').unwrap();
    (ns(est), ns(lo), ns(hi))
}

#[test]
fn automatic_alignment_recovers_a_known_offset_across_a_router() {
    // Recorded by testdata/lab/record_router_pair.sh: both captures share one clock, so the
    // true offset is the shift we add.
    let client = testdata("router-client.pcapng");
    let server = testdata("router-server.pcapng");
    let dir = tempfile::tempdir().unwrap();
    for shift in ["+3.7s", "-1.25s", "+0.000381s"] {
        let shift_ns = crate::merge::parse_ns(shift);
        let (out, o) = merge(
            dir.path(),
            "aligned.pcapng",
            &[
                "--align",
                "auto",
                "--shift",
                &format!("router-server.pcapng={shift}"),
            ],
            &[client.clone(), server.clone()],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let (est, lo, hi) = estimate_of(&stderr(&o), "router-server.pcapng");
        assert!(
            lo <= -shift_ns && -shift_ns <= hi,
            "{shift}: true offset {} outside [{lo}, {hi}]",
            -shift_ns
        );
        assert!(lo <= est && est <= hi);
        assert!(hi - lo < 1_000_000, "the interval is narrow: {}", hi - lo);
        // The comment in the section header says so too.
        let info = run(std::process::Command::new("capinfos").arg(&out));
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(text.contains("clock offset"), "{text}");
        // After alignment the client's request is sent before the server receives it, and the
        // server's response sent before the client receives it.
        let lines = tshark_fields(
            &out,
            &[
                "frame.interface_name",
                "tcp.len",
                "ip.src",
                "frame.time_epoch",
            ],
        );
        let payloads: Vec<Vec<&str>> = lines
            .iter()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|f| f[1].parse::<u32>().is_ok_and(|n| n > 0))
            .collect();
        assert!(payloads.len() >= 20, "{lines:?}");
        for seg in payloads.chunks(2) {
            // Each data segment appears twice in a row: at the sender's point, then the other.
            assert_eq!(seg[0][1], seg[1][1], "{seg:?}");
            let first_at_sender = if seg[0][2] == "192.0.2.10" {
                seg[0][0] == "router-client.pcapng"
            } else {
                seg[0][0] == "router-server.pcapng"
            };
            assert!(first_at_sender, "{seg:?}");
        }
    }
    // Two captures with nothing in common: merged unaligned, exit code 1.
    let (_, o) = merge(
        dir.path(),
        "unrelated.pcapng",
        &["--align", "auto"],
        &[client, testdata("handshake.pcap")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("merged unaligned"), "{}", stderr(&o));
}

/// "+3.7s" → ns (the test's own small parser, independent of the binary's).
pub fn parse_ns(s: &str) -> i64 {
    let (sign, rest) = s.split_at(1);
    let rest = rest.trim_end_matches('s');
    let (whole, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let frac = format!("{frac:0<9}");
    let v = whole.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap();
    if sign == "-" { -v } else { v }
}

#[test]
fn the_whole_corpus_merges_into_one_pcapng_that_tshark_reads() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let entries = tracekit_testutil::manifest();
    let inputs: Vec<PathBuf> = entries.iter().map(|e| corpus(&e.file)).collect();
    let (out, o) = merge(dir.path(), "corpus.pcapng", &[], &inputs);
    // Files capinfos rejects are reported and left out; damaged ones merged up to the damage.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let mut expected = 0;
    for e in &entries {
        if let Ok(c) = Capture::open(corpus(&e.file)) {
            expected += c.records().map_while(Result::ok).count();
        } else {
            assert!(
                stderr(&o).contains(&e.file),
                "{} is not mentioned: {}",
                e.file,
                stderr(&o)
            );
        }
    }
    assert_eq!(records_of(&out).len(), expected);
    assert_eq!(tshark_fields(&out, &["frame.number"]).len(), expected);
}

#[test]
fn automatic_alignment_works_across_a_tcp_terminating_firewall() {
    // Recorded by testdata/lab/record_pairs.sh (firewall): the proxy rewrites sequence
    // numbers, IP IDs and TTLs of the TCP connections; the ClientHello bytes and the routed
    // UDP queries still match. True offset: the shift.
    let dir = tempfile::tempdir().unwrap();
    let (out, o) = merge(
        dir.path(),
        "fw.pcapng",
        &["--align", "auto", "--shift", "firewall-server.pcapng=+2.5s"],
        &[
            testdata("firewall-client.pcapng"),
            testdata("firewall-server.pcapng"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (est, lo, hi) = estimate_of(&stderr(&o), "firewall-server.pcapng");
    assert!(lo <= -2_500_000_000 && -2_500_000_000 <= hi, "[{lo}, {hi}]");
    assert!(lo <= est && est <= hi);
    assert!(stderr(&o).contains("payload"), "{}", stderr(&o));
    // Stream blocks match across the proxy's other segmentation; its own ACKs must not
    // (they carry other windows, and would contradict the interval).
    assert!(stderr(&o).contains(" stream"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("tcp-sequence"), "{}", stderr(&o));
    assert_eq!(tshark_fields(&out, &["frame.number"]).len(), 66 + 54);
}

/// The count of `kind` in the estimate line for `name`.
fn matches_of(err: &str, name: &str, kind: &str) -> usize {
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}: clock offset")))
        .unwrap_or_else(|| panic!("no estimate for {name}: {err}"));
    let kinds = line
        .split("packets (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    kinds
        .split(", ")
        .find_map(|k| k.strip_suffix(&format!(" {kind}"))?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn automatic_alignment_matches_bare_segments_across_a_sequence_number_rewriter() {
    // Recorded by testdata/lab/record_pairs.sh (scramble): a transparent box adds a constant
    // to the client's sequence numbers, gives new IP IDs and removes TCP timestamps, so a
    // bare ACK matches only by its numbers once the offset is removed. True offset: the shift.
    let dir = tempfile::tempdir().unwrap();
    for shift in ["-0.75s", "+1.000003s"] {
        let shift_ns = crate::merge::parse_ns(shift);
        let (out, o) = merge(
            dir.path(),
            "scrambled.pcapng",
            &[
                "--align",
                "auto",
                "--shift",
                &format!("scramble-server.pcapng={shift}"),
            ],
            &[
                testdata("scramble-client.pcapng"),
                testdata("scramble-server.pcapng"),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let err = stderr(&o);
        let (est, lo, hi) = estimate_of(&err, "scramble-server.pcapng");
        assert!(lo <= -shift_ns && -shift_ns <= hi, "{shift}: [{lo}, {hi}]");
        assert!(lo <= est && est <= hi);
        // The interval is the path's round trip between the points (2 ms each way), no wider.
        assert!(hi - lo < 4_500_000, "{}", hi - lo);
        assert!(
            matches_of(&err, "scramble-server.pcapng", "tcp-sequence") >= 20,
            "{err}"
        );
        // The server's TSO segments are cut differently at the client side: stream blocks.
        assert!(
            matches_of(&err, "scramble-server.pcapng", "stream") >= 5,
            "{err}"
        );
        assert_eq!(
            matches_of(&err, "scramble-server.pcapng", "ipv4-id"),
            0,
            "{err}"
        );
        // The Server Hello's segment too (its length differs, its random does not).
        assert!(
            matches_of(&err, "scramble-server.pcapng", "tls-random") >= 1,
            "{err}"
        );
        // After alignment every pure ACK from the client is seen at the client side before
        // the server side. The lab's box adds 0x5EC0FF5E to the client's sequence numbers.
        let lines = tshark_fields(
            &out,
            &[
                "frame.interface_name",
                "ip.src",
                "tcp.srcport",
                "tcp.seq_raw",
                "tcp.ack_raw",
                "tcp.len",
                "tcp.flags.syn",
                "tcp.window_size_value",
            ],
        );
        // Where each (port, seq, ack, window) first appears at each point, in merged order.
        let mut first: BTreeMap<(String, Vec<String>), usize> = BTreeMap::new();
        for (i, l) in lines.iter().enumerate() {
            let f: Vec<&str> = l.split('\t').collect();
            if f[1] != "192.0.2.10" || f[5] != "0" || f[6] != "0" {
                continue;
            }
            let mut seq: u32 = f[3].parse().unwrap();
            if f[0] == "scramble-server.pcapng" {
                seq = seq.wrapping_sub(0x5EC0_FF5E);
            }
            let key = vec![
                f[2].to_string(),
                seq.to_string(),
                f[4].to_string(),
                f[7].to_string(),
            ];
            first.entry((f[0].to_string(), key)).or_insert(i);
        }
        let mut checked = 0;
        for ((point, key), &at_server) in &first {
            if point == "scramble-server.pcapng" {
                let at_client = first[&("scramble-client.pcapng".to_string(), key.clone())];
                assert!(at_client < at_server, "{key:?}");
                checked += 1;
            }
        }
        assert!(checked >= 10, "{checked}: {lines:?}");
    }
}

/// The side blocks of a pcapng file, by type, re-encoded little endian (our reader).
fn side_blocks(path: &Path) -> BTreeMap<u32, Vec<Vec<u8>>> {
    let data = std::fs::read(path).unwrap();
    let mut r = tracekit_capture::pcapng::Reader::new(&data);
    let mut out: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    while let Some(Ok(b)) = r.next_block() {
        if let Some((t, body)) = b.portable() {
            out.entry(t).or_default().push(body);
        }
    }
    out
}

/// `tshark -z hosts`: the names a file's name-resolution blocks give, sorted.
fn hosts(path: &Path) -> Vec<String> {
    let o = run(std::process::Command::new("tshark")
        .args(["-q", "-z", "hosts", "-r"])
        .arg(path));
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn name_resolution_decryption_secrets_and_custom_blocks_are_carried() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = testdata("handshake.pcap");
    for (file, carried, left_out) in [
        ("ndpi_dtls_dsb.pcapng", "1 decryption-secrets", None),
        (
            "pcapng-gen_le_test102_allblocks.pcapng",
            "1 custom, 6 interface-statistics, 3 name-resolution",
            Some("2 custom (marked not to be copied)"),
        ),
        // Big-endian sections: records and options re-encoded little endian.
        (
            "pcapng-gen_test202_mixed-endian-sections.pcapng",
            "1 custom, 3 interface-statistics, 5 name-resolution",
            Some("1 interface-statistics (its times and counters would need re-encoding)"),
        ),
        (
            "zeek_ldap_gap-data-missing_126ifaces.pcapng",
            "5 name-resolution",
            None,
        ),
    ] {
        let input = corpus(file);
        let (out, o) = merge(
            dir.path(),
            "side.pcapng",
            &[],
            &[input.clone(), extra.clone()],
        );
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("of the inputs: {carried}")),
            "{file}: {err}"
        );
        if let Some(l) = left_out {
            assert!(err.contains(l), "{file}: {err}");
        }
        // The same blocks, byte for byte once little endian; never a no-copy custom block.
        let (a, b) = (side_blocks(&input), side_blocks(&out));
        assert_eq!(a, b, "{file}");
        assert!(
            !std::fs::read(&out)
                .unwrap()
                .windows(4)
                .any(|w| w == [0xAD, 0x0B, 0, 0x40])
        );
        // One output interface per input interface, used or not (capinfos counts them).
        let interfaces = |p: &Path| -> usize {
            let o = run(std::process::Command::new("capinfos").arg(p));
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Number of interfaces in file:"))
                .unwrap_or_else(|| panic!("capinfos on {}", p.display()))
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(interfaces(&out), interfaces(&input) + 1, "{file}");
        // Wireshark gets the same names from them, and reads every packet.
        let names = hosts(&input);
        assert_eq!(hosts(&out), names, "{file}");
        assert_eq!(
            tshark_fields(&out, &["frame.number"]).len(),
            records_of(&input).len() + records_of(&extra).len()
        );
        // mergecap carries decryption secrets too: the same bytes.
        if file == "ndpi_dtls_dsb.pcapng" {
            let mc = dir.path().join("mergecap.pcapng");
            let o = run(std::process::Command::new("mergecap")
                .arg("-w")
                .arg(&mc)
                .arg(&input)
                .arg(&extra));
            assert!(o.status.success());
            assert_eq!(side_blocks(&mc)[&10], b[&10]);
        }
    }
    // A pcap output cannot hold them: said, not silently dropped.
    let (_, o) = merge(
        dir.path(),
        "side.pcap",
        &["--format", "pcap"],
        &[corpus("ndpi_dtls_dsb.pcapng")],
    );
    assert!(
        stderr(&o).contains(
            "left out 1 block(s) of the inputs: 1 decryption-secrets (a pcap file cannot hold them)"
        ),
        "{}",
        stderr(&o)
    );
}

/// Corpus files not in time order that reordercap sorts (it fails on two others of the corpus
/// with an internal error, and reads the invalid µs fields of tcpdump_timestamp_invalid_micro.pcap
/// otherwise than tracekit, which reports them as read past).
const UNSORTED: [&str; 4] = [
    "ppp_tls2.pcap",
    "ppp_many_interfaces-1.pcapng",
    "zeek_vxlan-encapsulated-http.pcap",
    "zeek_echo-connections.pcap.gz",
];

#[test]
fn merging_one_unsorted_file_sorts_it_as_reordercap_does() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for name in UNSORTED {
        let dir = tempfile::tempdir().unwrap();
        let ext = if name.contains(".pcapng") {
            "pcapng"
        } else {
            "pcap"
        };
        let reference = dir.path().join(format!("reordercap.{ext}"));
        let o = run(std::process::Command::new("reordercap")
            .arg(corpus(name))
            .arg(&reference));
        assert!(o.status.success(), "reordercap {name}: {}", stderr(&o));
        let (out, o) = merge(dir.path(), "sorted.pcapng", &[], &[corpus(name)]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let original = records_of(&corpus(name));
        let max_before = |i: usize| original[..i].iter().map(|r| r.0).max();
        let late = (0..original.len())
            .filter(|&i| max_before(i).is_some_and(|m| original[i].0 < m))
            .count();
        assert!(late > 0, "{name} is in time order");
        assert!(
            stderr(&o).contains(&format!("{late} packet(s) moved into time order")),
            "{name}: {}",
            stderr(&o)
        );
        assert_eq!(records_of(&out), records_of(&reference), "{name}");
    }
}

#[test]
fn keep_order_keeps_each_inputs_own_order_and_the_default_sorts() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    // a's clock steps back by 250 ns after its third packet.
    tagged(&a, 0xa, &[100, 300, 400, 150, 350]);
    tagged(&b, 0xb, &[150, 200]);
    let times = |p: &Path| -> Vec<(i64, u8)> {
        records_of(p)
            .into_iter()
            .map(|(t, d)| (t, *d.last().unwrap()))
            .collect()
    };
    let (sorted, o) = merge(
        dir.path(),
        "sorted.pcap",
        &["--format", "pcap"],
        &[a.clone(), b.clone()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 packet(s) moved into time order (input not in time order: a.pcap;"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        times(&sorted),
        [
            (100, 0xa),
            (150, 0xa),
            (150, 0xb),
            (200, 0xb),
            (300, 0xa),
            (350, 0xa),
            (400, 0xa)
        ]
    );
    let (kept, o) = merge(
        dir.path(),
        "kept.pcap",
        &["--format", "pcap", "--keep-order"],
        &[a, b],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("moved"), "{}", stderr(&o));
    assert_eq!(
        times(&kept),
        [
            (100, 0xa),
            (150, 0xb),
            (200, 0xb),
            (300, 0xa),
            (400, 0xa),
            (150, 0xa),
            (350, 0xa)
        ]
    );
    // tshark reads the sorted output without complaint and in the same order.
    let epochs = tshark_fields(&sorted, &["frame.time_epoch"]);
    assert_eq!(epochs.len(), 7);
}

/// `-o -` streams the output to standard output, as `mergecap -w -` does: tshark reads it from
/// a pipe; nothing named `-` is created; a terminal is refused (under `script`, which gives the
/// command one).
#[test]
fn dash_writes_to_standard_output_and_a_terminal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (testdata("nat-client.pcapng"), testdata("nat-server.pcapng"));
    for format in ["pcapng", "pcap"] {
        let cmd = format!(
            "{} merge -q --format {format} -o - {} {} | tshark -r - -T fields -e frame.number",
            env!("CARGO_BIN_EXE_tracekit"),
            a.display(),
            b.display()
        );
        let o = run(std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(dir.path()));
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let merged = records_of(&a).len() + records_of(&b).len();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            merged,
            "{format}"
        );
    }
    // The same bytes as a file written by name.
    let (file, _) = merge(dir.path(), "named.pcapng", &[], &[a.clone(), b.clone()]);
    let piped = run(tracekit()
        .args(["merge", "-q", "-o", "-"])
        .arg(&a)
        .arg(&b)
        .current_dir(dir.path()));
    assert_eq!(piped.stdout, std::fs::read(&file).unwrap());
    assert!(!dir.path().join("-").exists());
    let tty = run(std::process::Command::new("script")
        .arg("-qec")
        .arg(format!(
            "{} merge -q -o - {}",
            env!("CARGO_BIN_EXE_tracekit"),
            a.display()
        ))
        .arg("/dev/null")
        .current_dir(dir.path()));
    let said = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(tty.status.code(), Some(2), "{said}");
    assert!(said.contains("standard output is a terminal"), "{said}");
    assert!(!dir.path().join("-").exists());
}

/// The output format follows the output's name (issue 29): `-o out.pcap` writes pcap (it used
/// to write pcapng under a .pcap name), and a `--format` that contradicts the name is refused
/// before anything is written.
#[test]
fn the_format_follows_the_name_and_a_contradiction_is_refused() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("ppp_tls2.pcap");
    for (name, want) in [("out.pcap", "pcap"), ("out.pcapng", "pcapng")] {
        let (path, o) = merge(dir.path(), name, &[], std::slice::from_ref(&input));
        assert!(o.status.success(), "{}", stderr(&o));
        let c = tracekit_capture::Capture::open(&path).unwrap();
        assert_eq!(c.format().name(), want, "{name}");
    }
    for (name, format) in [("x.pcapng", "pcap"), ("x.pcap", "pcapng")] {
        let (path, o) = merge(
            dir.path(),
            name,
            &["--format", format],
            std::slice::from_ref(&input),
        );
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(stderr(&o).contains("contradicts"), "{}", stderr(&o));
        assert!(!path.exists());
    }
    let (path, o) = merge(
        dir.path(),
        "no-extension",
        &[],
        std::slice::from_ref(&input),
    );
    assert!(o.status.success());
    assert_eq!(
        tracekit_capture::Capture::open(&path)
            .unwrap()
            .format()
            .name(),
        "pcapng"
    );
}

/// Decompresses `path` with the outside tool for its suffix (`gzip -dc`, `zstd -dc`).
fn decompressed(path: &Path) -> Vec<u8> {
    let tool = if path.extension().is_some_and(|e| e == "gz") {
        "gzip"
    } else {
        "zstd"
    };
    let o = run(std::process::Command::new(tool).arg("-dc").arg(path));
    assert!(
        o.status.success(),
        "{tool} -dc {}: {}",
        path.display(),
        stderr(&o)
    );
    o.stdout
}

/// Compressed output (issue 29): `.gz` and `.zst` by the name, and `--compress` to say it (also
/// for `-`); the format follows the name under the suffix; gzip and zstd decompress it to the
/// plain output's bytes, and capinfos reads the gzip one as it is.
#[test]
fn outputs_are_compressed_by_name_or_by_compress() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inputs = [corpus("ppp_tls2.pcap"), corpus("ppp_DnsPackets.pcap")];
    for plain_name in ["plain.pcapng", "plain.pcap"] {
        let (plain, o) = merge(dir.path(), plain_name, &[], &inputs[..1]);
        assert!(o.status.success(), "{}", stderr(&o));
        let plain = std::fs::read(plain).unwrap();
        for suffix in [".gz", ".zst"] {
            let name = format!("{plain_name}{suffix}");
            let (path, o) = merge(dir.path(), &name, &[], &inputs[..1]);
            assert!(o.status.success(), "{}", stderr(&o));
            let bytes = std::fs::read(&path).unwrap();
            let magic: &[u8] = if suffix == ".gz" {
                &[0x1f, 0x8b]
            } else {
                &[0x28, 0xb5, 0x2f, 0xfd]
            };
            assert!(bytes.starts_with(magic), "{name}");
            assert!(bytes.len() < plain.len(), "{name}");
            assert!(decompressed(&path) == plain, "{name}");
            // Read back as it is: by tracekit, and (gzip) by capinfos.
            let c = tracekit_capture::Capture::open(&path).unwrap();
            assert_eq!(c.format().name(), plain_name.split('.').nth(1).unwrap());
            if suffix == ".gz" {
                let info = run(std::process::Command::new("capinfos").arg("-c").arg(&path));
                assert!(info.status.success(), "{}", stderr(&info));
            }
        }
    }
    // --compress says it for a name that does not, for standard output, and `none` for a name
    // that says gzip.
    let (plain, _) = merge(dir.path(), "two.pcapng", &[], &inputs);
    let plain = std::fs::read(plain).unwrap();
    let (path, o) = merge(dir.path(), "two.out", &["--compress", "zstd"], &inputs);
    assert!(o.status.success(), "{}", stderr(&o));
    let named = dir.path().join("two.out.zst");
    std::fs::copy(&path, &named).unwrap();
    assert!(decompressed(&named) == plain);
    let piped = run(tracekit()
        .args(["merge", "-q", "--compress", "gzip", "-o", "-"])
        .args(&inputs));
    assert!(piped.status.success(), "{}", stderr(&piped));
    let gz = dir.path().join("piped.gz");
    std::fs::write(&gz, &piped.stdout).unwrap();
    assert!(decompressed(&gz) == plain);
    let (path, _) = merge(
        dir.path(),
        "two.pcapng.gz",
        &["--compress", "none"],
        &inputs,
    );
    assert!(std::fs::read(path).unwrap() == plain);
    // extract and anonymize too.
    let out = dir.path().join("x.pcap.gz");
    let o = run(tracekit()
        .args(["extract", "-q", "--filter", "tcp", "-o"])
        .arg(&out)
        .arg(&inputs[0]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(decompressed(&out).starts_with(&[0xd4, 0xc3, 0xb2, 0xa1]));
    let key = dir.path().join("key");
    std::fs::write(&key, "00".repeat(32)).unwrap();
    let anon = dir.path().join("anon");
    let o = run(tracekit()
        .args(["anonymize", "-q", "--compress", "zstd", "--key-file"])
        .arg(&key)
        .arg("-o")
        .arg(&anon)
        .args(&inputs));
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["ppp_tls2.pcap.zst", "ppp_DnsPackets.pcap.zst"] {
        let bytes = decompressed(&anon.join(name));
        assert!(bytes.len() > 1000, "{name}");
    }
}
