//! `tracekit anonymize`, `keygen`, `leakcheck`: the published Crypto-PAn vectors through the
//! CLI, analyze's verdict on redacted lab pairs, leak check on the whole corpus, checksums as
//! tshark sees them, thread-count independence, metadata removal, payload policies.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tracekit_capture::output::AtomicFile;
use tracekit_capture::writer::{PcapWriter, Precision};
use tracekit_capture::{LinkType, Timestamp};
use tracekit_testutil::tshark_fields;

use crate::{corpus, run, stderr, stdout, testdata, tracekit};

/// The key of the Crypto-PAn reference distribution's sample trace (bytes 21, 34, 23, 141, …,
/// 132, 34, 2), as a key file holds it.
const SAMPLE_KEY: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

fn key_file(dir: &Path) -> PathBuf {
    let k = dir.join("key");
    std::fs::write(&k, SAMPLE_KEY).unwrap();
    k
}

fn anonymize(dir: &Path, extra: &[&str], inputs: &[&Path], out: &Path) -> std::process::Output {
    run(tracekit()
        .arg("anonymize")
        .arg("--key-file")
        .arg(key_file(dir))
        .arg("-o")
        .arg(out)
        .args(extra)
        .args(inputs))
}

/// A pcap of UDP packets between the given IPv4 addresses.
fn udp_pcap(path: &Path, pairs: &[([u8; 4], [u8; 4])]) {
    let mut f = AtomicFile::create(path, &[]).unwrap();
    {
        let mut w = PcapWriter::new(&mut f, LinkType::ETHERNET, Precision::Micro, 65535).unwrap();
        for (i, (src, dst)) in pairs.iter().enumerate() {
            let mut p = vec![0x00, 0x1c, 0x7f, 1, 2, 3, 0x00, 0x1c, 0x7f, 4, 5, 6, 8, 0];
            let mut ip = vec![0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0];
            ip.extend(src);
            ip.extend(dst);
            let c = tracekit_wire::checksum::checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend(ip);
            p.extend([0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0]);
            p.extend(b"datadata");
            w.write(
                Timestamp(1_700_000_000_000_000_000 + i as i64 * 1000),
                &p,
                p.len() as u32,
            )
            .unwrap();
        }
    }
    f.commit(false).unwrap();
}

#[test]
fn keygen_writes_a_private_key_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("k");
    let o = run(tracekit().args(["keygen", "-o"]).arg(&k));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&k).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = run(tracekit().args(["keygen", "-o"]).arg(&k));
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&k).unwrap(), text, "never replaced");
}

#[test]
fn the_published_crypto_pan_vectors_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let raw = [
        ([128, 11, 68, 132], [129, 118, 74, 4]),
        ([130, 132, 252, 244], [141, 223, 7, 43]),
        ([24, 5, 0, 80], [4, 3, 88, 225]),
    ];
    udp_pcap(&input, &raw);
    let out = dir.path().join("out.pcap");
    let o = anonymize(dir.path(), &["--private", "map"], &[&input], &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = tshark_fields(&out, &["ip.src", "ip.dst"]);
    assert_eq!(
        got,
        [
            "135.242.180.132\t134.136.186.123",
            "133.68.164.234\t141.167.8.160",
            "100.9.15.210\t124.60.155.63"
        ]
    );
}

fn analysis(client: &Path, server: &Path) -> Value {
    let o = run(tracekit()
        .args(["analyze", "--json"])
        .arg(client)
        .arg(server));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What must not change: per connection (in report order) the verdict's parts.
fn verdicts(v: &Value) -> Vec<Value> {
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let signals: Vec<&Value> = c["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["signal"])
                .collect();
            serde_json::json!({
                "ports": [c["client_port"], c["server_port"]],
                "failed": c["failed"],
                "kind": c["middlebox"]["kind"],
                "transparent": c["middlebox"]["transparent"],
                "vendor": c["middlebox"]["vendor"],
                "hops": c["hops"],
                "closed_by": c["closed_by"],
                "confidence": c["confidence"],
                "signals": signals,
                "matched_by": c["matched_by"],
            })
        })
        .collect()
}

#[test]
fn analyze_gives_the_same_verdicts_after_both_sides_are_anonymized_with_one_key() {
    let dir = tempfile::tempdir().unwrap();
    for scenario in [
        "firewall",
        "nat",
        "clamp",
        "reset",
        "intercept",
        "scramble",
        "strip",
        "close",
        "closenat",
        "synproxy",
    ] {
        let client = testdata(&format!("{scenario}-client.pcapng"));
        let server = testdata(&format!("{scenario}-server.pcapng"));
        let before = verdicts(&analysis(&client, &server));
        for policy in ["zero", "tls-headers"] {
            // Each side on its own, as two teams would.
            let (ac, as_) = (
                dir.path().join(format!("{scenario}-{policy}-c.pcapng")),
                dir.path().join(format!("{scenario}-{policy}-s.pcapng")),
            );
            for (input, out) in [(&client, &ac), (&server, &as_)] {
                let o = anonymize(
                    dir.path(),
                    &["--payload", policy, "--verify"],
                    &[input],
                    out,
                );
                assert_eq!(o.status.code(), Some(0), "{scenario}: {}", stderr(&o));
                assert!(stderr(&o).contains("leak check passed"));
            }
            let after = analysis(&ac, &as_);
            let mut want = before.clone();
            if policy == "zero" {
                // Zeroed payloads carry no TLS random: a NAT'd connection is paired by its
                // (zeroed) first payload instead, and a TLS interceptor can no longer be told
                // from a TCP proxy (that takes --payload tls-headers, checked below).
                if scenario == "intercept" {
                    let got = verdicts(&after);
                    for c in &got {
                        assert_eq!(c["kind"], serde_json::json!(["tcp-proxy"]));
                        assert_eq!(c["closed_by"], "middlebox");
                    }
                    continue;
                }
                for (w, got) in want.iter_mut().zip(verdicts(&after)) {
                    w["matched_by"] = got["matched_by"].clone();
                }
            }
            assert_eq!(verdicts(&after), want, "{scenario} with --payload {policy}");
            if policy == "tls-headers" && scenario == "firewall" {
                // The TLS story survives too: the Server Hello is still named.
                let v = after["connections"][0]["verdict"].as_str().unwrap();
                assert!(v.contains("after the server's Server Hello"), "{v}");
            }
        }
    }
}

/// With only the client side anonymized and its payloads zeroed, the NAT'd connections share
/// neither addresses, random values nor first bytes across the points; the NAT kept their
/// initial sequence numbers, and they are paired by those.
#[test]
fn connections_a_nat_kept_the_sequence_numbers_of_are_paired_by_them() {
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("nat-client-anon.pcapng");
    let o = anonymize(
        dir.path(),
        &["--payload", "zero"],
        &[&testdata("nat-client.pcapng")],
        &client,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let server = testdata("nat-server.pcapng");
    let v = analysis(&client, &server);
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{v:#}");
    for c in conns {
        assert_eq!(c["matched_by"], "isn", "{c:#}");
        let (a, b) = (&c["sides"]["a"], &c["sides"]["b"]);
        assert_eq!(a["isn_client"], b["isn_client"]);
        assert_eq!(a["isn_server"], b["isn_server"]);
        // Each to its own: the server side's port is the one the client asked for.
        let port = c["server_port"].as_u64().unwrap();
        assert!(
            b["server"].as_str().unwrap().ends_with(&format!(":{port}")),
            "{c:#}"
        );
        assert_eq!(c["middlebox"]["kind"][0], "nat", "{c:#}");
    }
}

/// With only the server side anonymized, a TLS interceptor's connection shares nothing across
/// the points (addresses, random values, first bytes): it is paired by timing, the one
/// connection to its server port within a second once the clocks are aligned.
#[test]
fn a_connection_that_shares_nothing_but_timing_is_paired_by_it() {
    let dir = tempfile::tempdir().unwrap();
    // The server side without the pair's second connection (both go to port 443, and two
    // candidates are one too many for timing), cut by tshark as the outside reference; the
    // lab's UDP control packets stay, the clock is aligned on them.
    let one = dir.path().join("intercept-server-one.pcapng");
    let o = run(std::process::Command::new("tshark")
        .arg("-r")
        .arg(testdata("intercept-server.pcapng"))
        .args(["-Y", "!(tcp.port == 53700)", "-w"])
        .arg(&one));
    assert!(o.status.success(), "{}", stderr(&o));
    let server = dir.path().join("intercept-server-anon.pcapng");
    let o = anonymize(dir.path(), &["--payload", "keep"], &[&one], &server);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = analysis(&testdata("intercept-client.pcapng"), &server);
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{v:#}");
    let c = &conns[0];
    assert_eq!(c["matched_by"], "timing", "{c:#}");
    assert_eq!(c["client_port"], 53695);
    assert!(
        c["sides"]["b"]["client"]
            .as_str()
            .unwrap()
            .ends_with(":53695")
    );
    assert_ne!(c["sides"]["a"]["client"], c["sides"]["b"]["client"]);
    assert_eq!(c["middlebox"]["kind"][0], "tcp-proxy", "{c:#}");
}

#[test]
fn every_corpus_file_anonymizes_without_a_leak() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for e in tracekit_testutil::manifest() {
        let input = corpus(&e.file);
        let out = dir.path().join(format!("anon-{}", e.file));
        let o = anonymize(dir.path(), &["--verify"], &[&input], &out);
        let err = stderr(&o);
        assert!(!err.contains("LEAK"), "{}: {err}", e.file);
        match o.status.code() {
            Some(0) => assert!(err.contains("leak check passed"), "{}: {err}", e.file),
            // Damaged or unreadable files: said, with the file's name.
            Some(1) => assert!(err.contains(&e.file), "{}: {err}", e.file),
            other => panic!("{}: exit {other:?}: {err}", e.file),
        }
        if out.exists() {
            // tshark reads every output.
            let t = run(std::process::Command::new("tshark")
                .arg("-r")
                .arg(&out)
                .arg("-c")
                .arg("1"));
            assert!(t.status.success(), "{}: {}", e.file, stderr(&t));
        }
    }
}

/// Per frame: the IP/TCP/UDP/ICMP checksum statuses tshark gives.
fn checksum_statuses(path: &Path) -> Vec<String> {
    let o = run(std::process::Command::new("tshark")
        .args([
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(["-o", "udp.check_checksum:TRUE", "-T", "fields"])
        .args([
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-e",
            "udp.checksum.status",
        ])
        .args(["-e", "icmp.checksum.status", "-r"])
        .arg(path));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(str::to_string).collect()
}

#[test]
fn checksums_that_were_right_stay_right_and_wrong_ones_stay_wrong() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "firewall-client.pcapng",
        "firewall-server.pcapng",
        "handshake.pcap",
        "mixed.pcapng",
    ] {
        let input = testdata(name);
        let out = dir.path().join(name);
        let o = anonymize(dir.path(), &[], &[&input], &out);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let (before, after) = (checksum_statuses(&input), checksum_statuses(&out));
        assert_eq!(before, after, "{name}");
        assert!(
            before.iter().any(|l| l.contains('1')),
            "{name} has verified checksums"
        );
    }
}

#[test]
fn the_output_is_the_same_for_any_thread_count_and_files_share_the_mapping() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("nat-client.pcapng");
    let (one, two) = (dir.path().join("1.pcapng"), dir.path().join("2.pcapng"));
    assert!(
        anonymize(dir.path(), &["--threads", "1"], &[&input], &one)
            .status
            .success()
    );
    assert!(
        anonymize(dir.path(), &["--threads", "2"], &[&input], &two)
            .status
            .success()
    );
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
    // pcap outputs are encoded by the workers: the same for any number of them too.
    let pcap = corpus("ppp_many-protocols.pcap");
    let (p1, p2) = (dir.path().join("1.pcap"), dir.path().join("2.pcap"));
    assert!(
        anonymize(dir.path(), &["--threads", "1"], &[&pcap], &p1)
            .status
            .success()
    );
    assert!(
        anonymize(dir.path(), &["--threads", "2"], &[&pcap], &p2)
            .status
            .success()
    );
    assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
    assert_eq!(
        tshark_fields(&p1, &["frame.len"]),
        tshark_fields(&pcap, &["frame.len"])
    );
    // Two files in one run into a directory, and one of them alone: the client's address maps
    // the same everywhere.
    let outdir = dir.path().join("both");
    let inputs = [
        testdata("nat-client.pcapng"),
        testdata("clamp-client.pcapng"),
    ];
    let o = anonymize(dir.path(), &[], &[&inputs[0], &inputs[1]], &outdir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let src = |p: &Path| {
        tshark_fields(p, &["ip.src"])
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap()
    };
    let a = src(&outdir.join("nat-client.pcapng"));
    assert_eq!(a, src(&outdir.join("clamp-client.pcapng")));
    assert_eq!(a, src(&one));
    assert_ne!(a, "192.0.2.10");
}

#[test]
fn pcapng_metadata_is_removed_and_payload_policies_apply() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("mixed.pcapng");
    let out = dir.path().join("mixed.pcapng");
    assert!(anonymize(dir.path(), &[], &[&input], &out).status.success());
    let has = |p: &Path, field: &str| tshark_fields(p, &[field]).iter().any(|s| !s.is_empty());
    assert!(has(&input, "frame.comment") || has(&input, "frame.interface_name"));
    assert!(!has(&out, "frame.comment"));
    // No interface names or descriptions left (tshark says "unknown" then).
    for field in ["frame.interface_name", "frame.interface_description"] {
        assert!(
            tshark_fields(&out, &[field])
                .iter()
                .all(|s| s.is_empty() || s == "unknown"),
            "{field}"
        );
    }
    let info = stdout(&run(std::process::Command::new("capinfos").arg(&out)));
    assert!(info.contains("tracekit anonymize"), "{info}");
    // Times unchanged, lengths unchanged.
    assert_eq!(
        tshark_fields(
            &input,
            &[
                "frame.time_epoch",
                "frame.len",
                "frame.cap_len",
                "ip.ttl",
                "ip.id"
            ]
        ),
        tshark_fields(
            &out,
            &[
                "frame.time_epoch",
                "frame.len",
                "frame.cap_len",
                "ip.ttl",
                "ip.id"
            ]
        )
    );
}

#[test]
fn payload_policies_zero_truncate_and_keep_tls_headers() {
    // zero: payload bytes are zeros; truncate: cut after the headers, frame.len kept;
    // tls-headers: the ClientHello random is kept, the SNI is gone.
    let dir = tempfile::tempdir().unwrap();
    let client = testdata("firewall-client.pcapng");
    let zero = dir.path().join("zero.pcapng");
    assert!(
        anonymize(dir.path(), &[], &[&client], &zero)
            .status
            .success()
    );
    for p in tshark_fields(&zero, &["tcp.payload"])
        .iter()
        .filter(|s| !s.is_empty())
    {
        assert!(p.chars().all(|c| c == '0' || c == ':'), "{p}");
    }
    let cut = dir.path().join("cut.pcapng");
    assert!(
        anonymize(dir.path(), &["--payload", "truncate"], &[&client], &cut)
            .status
            .success()
    );
    let lens = tshark_fields(&cut, &["frame.len", "frame.cap_len", "tcp.len"]);
    assert!(lens.iter().any(|l| {
        let v: Vec<&str> = l.split('\t').collect();
        v[0] != v[1] && v.get(2).is_some_and(|t| !t.is_empty() && *t != "0")
    }));
    assert_eq!(
        tshark_fields(&cut, &["frame.len"]),
        tshark_fields(&client, &["frame.len"])
    );
    let tls = dir.path().join("tls.pcapng");
    assert!(
        anonymize(dir.path(), &["--payload", "tls-headers"], &[&client], &tls)
            .status
            .success()
    );
    let random = |p: &Path| {
        tshark_fields(p, &["tls.handshake.random"])
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    assert!(!random(&client).is_empty());
    assert_eq!(random(&client), random(&tls));
    assert!(
        tshark_fields(&client, &["tls.handshake.extensions_server_name"])
            .iter()
            .any(|s| s == "server.example")
    );
    assert!(
        tshark_fields(&tls, &["tls.handshake.extensions_server_name"])
            .iter()
            .all(String::is_empty)
    );
}

#[test]
fn leakcheck_finds_addresses_in_an_output_that_kept_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("nat-client.pcapng");
    // The original against itself: everything leaks.
    let o = run(tracekit().arg("leakcheck").arg(&input).arg(&input));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("LEAK: "), "{}", stdout(&o));
    assert!(stdout(&o).contains("offset "), "{}", stdout(&o));
    let out = dir.path().join("a.pcapng");
    assert!(anonymize(dir.path(), &[], &[&input], &out).status.success());
    let o = run(tracekit().arg("leakcheck").arg(&input).arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // An input is never overwritten.
    let o = anonymize(dir.path(), &[], &[&out], &out);
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn shift_passphrase_and_mapping_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("nat-client.pcapng");
    let shifted = dir.path().join("shifted.pcapng");
    let o = anonymize(dir.path(), &["--shift", "-3600s"], &[&input], &shifted);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let times = |p: &Path| -> Vec<f64> {
        tshark_fields(p, &["frame.time_epoch"])
            .iter()
            .map(|t| t.parse().unwrap())
            .collect()
    };
    for (a, b) in times(&input).iter().zip(times(&shifted)) {
        assert!((a - 3600.0 - b).abs() < 1e-6, "{a} {b}");
    }
    // A passphrase gives a key of its own, the same every time.
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let with_pass = |out: &Path| {
        run(tracekit()
            .args(["anonymize", "--passphrase-file"])
            .arg(&pass)
            .arg("-o")
            .arg(out)
            .arg(&input))
    };
    let (p1, p2, k) = (
        dir.path().join("p1.pcapng"),
        dir.path().join("p2.pcapng"),
        dir.path().join("k.pcapng"),
    );
    assert!(with_pass(&p1).status.success());
    assert!(with_pass(&p2).status.success());
    assert!(anonymize(dir.path(), &[], &[&input], &k).status.success());
    assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
    assert_ne!(std::fs::read(&p1).unwrap(), std::fs::read(&k).unwrap());
    // The mapping table, with a warning: it says where 192.0.2.10 went.
    let table = dir.path().join("map.csv");
    let out = dir.path().join("m.pcapng");
    let o = run(tracekit()
        .arg("anonymize")
        .arg("--key-file")
        .arg(key_file(dir.path()))
        .arg("--mapping-out")
        .arg(&table)
        .arg("-o")
        .arg(&out)
        .arg(&input));
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    // The table undoes the anonymization: its owner only may read it, as the key.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&table).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let csv = std::fs::read_to_string(&table).unwrap();
    let row = csv.lines().find(|l| l.starts_with("192.0.2.10,")).unwrap();
    let mapped = row.split(',').nth(1).unwrap();
    assert!(
        tshark_fields(&out, &["ip.src"]).iter().any(|s| s == mapped),
        "{row}"
    );
    // MAC addresses are listed too, written as Wireshark writes them.
    let is_mac = |s: &str| s.len() == 17 && s.split(':').all(|p| p.len() == 2);
    let row = csv
        .lines()
        .find(|l| l.split(',').next().is_some_and(is_mac))
        .unwrap_or_else(|| panic!("no MAC row in {csv}"));
    let mapped = row.split(',').nth(1).unwrap();
    assert!(is_mac(mapped), "{row}");
    assert!(
        tshark_fields(&out, &["eth.src"])
            .iter()
            .any(|s| s == mapped),
        "{row}"
    );
}

#[test]
fn kept_payloads_have_dns_and_dhcp_addresses_and_names_mapped() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dns = corpus("ppp_DnsPackets.pcap");
    let out = dir.path().join("dns.pcap");
    let o = anonymize(
        dir.path(),
        &["--payload", "keep", "--verify"],
        &[&dns],
        &out,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("leak check passed"), "{}", stderr(&o));
    let fields = ["dns.qry.name", "dns.a"];
    let (before, after) = (tshark_fields(&dns, &fields), tshark_fields(&out, &fields));
    assert_eq!(before.len(), after.len());
    let answered: Vec<(&String, &String)> = before
        .iter()
        .zip(&after)
        .filter(|(b, _)| b.contains('\t') && !b.ends_with('\t'))
        .collect();
    assert!(!answered.is_empty());
    for (b, a) in answered {
        let (bn, ba) = b.split_once('\t').unwrap();
        let (an, aa) = a.split_once('\t').unwrap();
        assert_eq!(bn.len(), an.len(), "names keep their length: {bn} {an}");
        assert_eq!(
            bn.rsplit('.').next(),
            an.rsplit('.').next(),
            "the TLD stays"
        );
        if !bn.is_empty() && bn.contains('.') {
            assert_ne!(bn, an);
        }
        assert_ne!(ba, aa, "answers mapped");
    }
    // Valid UDP checksums stay valid.
    assert_eq!(checksum_statuses(&dns), checksum_statuses(&out));
    // --names keep: names as they were, answers still mapped.
    let kept = dir.path().join("dns-names.pcap");
    let o = anonymize(
        dir.path(),
        &["--payload", "keep", "--names", "keep"],
        &[&dns],
        &kept,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = |p: &Path| tshark_fields(p, &["dns.qry.name"]);
    assert_eq!(names(&dns), names(&kept));
    assert_eq!(
        tshark_fields(&kept, &["dns.a"]),
        tshark_fields(&out, &["dns.a"])
    );

    let dhcp = corpus("zeek_dhcp.pcap");
    let out = dir.path().join("dhcp.pcap");
    let o = anonymize(
        dir.path(),
        &["--payload", "keep", "--verify"],
        &[&dhcp],
        &out,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let f = [
        "dhcp.ip.your",
        "dhcp.option.dhcp_server_id",
        "dhcp.hw.mac_addr",
        "dhcp.option.hostname",
    ];
    for (b, a) in tshark_fields(&dhcp, &f).iter().zip(tshark_fields(&out, &f)) {
        for (x, y) in b.split('\t').zip(a.split('\t')) {
            if !x.is_empty() && x != "0.0.0.0" {
                assert_ne!(x, y, "{b} / {a}");
            }
        }
    }
}

/// Regression (outside checks): with payloads kept, DNS answers stayed as they were when the
/// message travelled over TCP, inside an ICMP error's quote, or across IP fragments, and the
/// leak check did not look for them.
#[test]
fn kept_dns_is_mapped_over_tcp_in_icmp_quotes_and_across_fragments() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (file, an answer address the message carries, whether bytes must be zeroed)
    let cases = [
        ("tcpdump_dns_tcp.pcap", "192.139.46.66", false),
        ("zeek_icmp-destunreach-udp.pcap", "208.94.20.14", true),
        // Frame 4 is a fragment whose first fragment was never captured.
        ("zeek_ipv6-fragmented-dns.pcap", "192.150.187.31", true),
    ];
    for (name, answer, zeroed) in cases {
        let input = corpus(name);
        let out = dir.path().join(name);
        let o = anonymize(
            dir.path(),
            &["--payload", "keep", "--verify"],
            &[&input],
            &out,
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("leak check passed"),
            "{name}: {}",
            stderr(&o)
        );
        assert_eq!(
            stderr(&o).contains("of DNS/DHCP messages zeroed"),
            zeroed,
            "{name}: {}",
            stderr(&o)
        );
        let octets: Vec<u8> = answer.split('.').map(|b| b.parse().unwrap()).collect();
        let original = std::fs::read(&input).unwrap();
        let mut bytes = std::fs::read(&out).unwrap();
        assert!(
            !bytes.windows(4).any(|w| w == octets.as_slice()),
            "{name}: {answer} left"
        );
        // The leak check finds the answer where it was left: the output with the answer's
        // original bytes put back (pcap in, pcap out: every record at the same offset).
        let at = original
            .windows(4)
            .position(|w| w == octets.as_slice())
            .unwrap();
        bytes[at..at + 4].copy_from_slice(&octets);
        let leaky = dir.path().join(format!("leaky-{name}"));
        std::fs::write(&leaky, &bytes).unwrap();
        let o = run(tracekit().arg("leakcheck").arg(&input).arg(&leaky));
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        assert!(
            stdout(&o).contains(&format!(
                "LEAK: 1 original address(es) found\n  offset {at}: {answer}"
            )),
            "{name}: {}",
            stdout(&o)
        );
    }

    // Over TCP: the answers are mapped as the headers are: the server answers with its own
    // address (209.87.249.18, an additional A record), which must become its mapped address.
    let out = dir.path().join("tcpdump_dns_tcp.pcap");
    let answers = tshark_fields(&out, &["dns.a"]).concat();
    let server = tshark_fields(&out, &["ip.src"])[1].clone();
    assert!(
        answers.split(',').any(|a| a == server),
        "{answers} / {server}"
    );
    assert_eq!(
        tshark_fields(&out, &["dns.a", "dns.aaaa"]).len(),
        tshark_fields(&corpus("tcpdump_dns_tcp.pcap"), &["dns.a", "dns.aaaa"]).len()
    );
    // Across fragments: the reassembled answer is mapped as the same answer in a whole
    // datagram (frames 2 and 8 carry the same A record).
    let out = dir.path().join("zeek_ipv6-fragmented-dns.pcap");
    let a = tshark_fields(&out, &["dns.a"]);
    assert!(!a[1].is_empty() && a[1] != "192.150.187.31", "{a:?}");
    assert_eq!(a[1], a[7], "{a:?}");
}

/// Every corpus file with DNS answers, payloads kept: each answer tshark decodes is mapped
/// (other kept payloads may hold addresses tracekit does not parse: `keep` keeps them).
#[test]
fn every_dns_answer_of_the_corpus_is_mapped_with_payloads_kept() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kept_as_is = |a: &str| match a.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v)) => {
            v.is_loopback() || v.is_multicast() || v.is_broadcast() || v.octets()[0] == 0
        }
        Ok(std::net::IpAddr::V6(v)) => v.is_loopback() || v.is_multicast() || v.is_unspecified(),
        Err(_) => true,
    };
    let mut files = 0;
    for e in tracekit_testutil::manifest()
        .iter()
        .filter(|e| e.capinfos_ok)
    {
        let input = corpus(&e.file);
        let fields = ["dns.a", "dns.aaaa"];
        let before = tshark_fields(&input, &fields);
        if before.iter().all(|l| l.trim().is_empty()) {
            continue;
        }
        files += 1;
        let out = dir.path().join(format!("keep-{}", e.file));
        let o = anonymize(dir.path(), &["--payload", "keep"], &[&input], &out);
        assert!(
            o.status.code().is_some_and(|c| c <= 1),
            "{}: {}",
            e.file,
            stderr(&o)
        );
        let after = tshark_fields(&out, &fields);
        assert_eq!(before.len(), after.len(), "{}", e.file);
        for (b, a) in before.iter().zip(&after) {
            let split = |l: &str| -> Vec<String> {
                l.split(['\t', ','])
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            };
            for (x, y) in split(b).iter().zip(split(a)) {
                assert!(
                    x != &y || kept_as_is(x),
                    "{}: answer {x} left: {b} / {a}",
                    e.file
                );
            }
        }
    }
    assert!(files >= 5, "{files} corpus files with DNS answers");
}

/// Regression: 802.11 frames behind radiotap (a link layer tracekit does not read) went out
/// as they came, IP addresses and DNS answers included, under every payload policy, and the
/// leak check, which finds addresses only where it can read, passed them. They are zeroed
/// after the radiotap header now, and counted.
#[test]
fn frames_of_a_link_layer_tracekit_cannot_read_are_zeroed_not_passed_through() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("zeek_radiotap.pcap");
    let original = std::fs::read(&input).unwrap();
    let secrets: [[u8; 4]; 2] = [[172, 17, 156, 76], [23, 196, 236, 203]];
    for s in &secrets {
        assert!(original.windows(4).any(|w| w == s));
    }
    for policy in ["zero", "keep"] {
        let out = dir.path().join(format!("{policy}.pcap"));
        let o = anonymize(dir.path(), &["--payload", policy], &[&input], &out);
        assert_eq!(o.status.code(), Some(0), "{policy}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("3 frame(s) zeroed after their capture header"),
            "{policy}: {}",
            stderr(&o)
        );
        let bytes = std::fs::read(&out).unwrap();
        for s in &secrets {
            assert!(!bytes.windows(4).any(|w| w == s), "{policy}: {s:?} left");
        }
        // The radiotap headers stay: Wireshark still reads every frame as 802.11.
        let protocols = tshark_fields(&out, &["frame.protocols"]);
        assert_eq!(protocols.len(), 3);
        assert!(
            protocols
                .iter()
                .all(|p| p.starts_with("radiotap:wlan_radio:wlan")),
            "{protocols:?}"
        );
    }
}

/// `-o -` writes one input's anonymized capture to standard output; several inputs, or
/// `--verify` (which reads the output back), are refused with a clear error.
#[test]
fn dash_writes_one_anonymized_capture_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata("nat-client.pcapng");
    let file = dir.path().join("named.pcapng");
    assert!(
        anonymize(dir.path(), &[], &[&input], &file)
            .status
            .success()
    );
    let piped = anonymize(dir.path(), &[], &[&input], Path::new("-"));
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    assert_eq!(piped.stdout, std::fs::read(&file).unwrap());
    let two = anonymize(dir.path(), &[], &[&input, &input], Path::new("-"));
    assert_eq!(two.status.code(), Some(2));
    assert!(stderr(&two).contains("takes one input"), "{}", stderr(&two));
    let verify = anonymize(dir.path(), &["--verify"], &[&input], Path::new("-"));
    assert_eq!(verify.status.code(), Some(2));
    assert!(stderr(&verify).contains("--verify"), "{}", stderr(&verify));
}
