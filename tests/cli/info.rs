use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::{corpus, run, stderr, stdout, testdata, tracekit};

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn json_has_the_documented_keys_and_values() {
    let out = run(tracekit()
        .args(["info", "--json"])
        .arg(testdata("handshake.pcap")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    assert_eq!(v["format"], "pcap");
    assert_eq!(v["packets"], 7);
    assert_eq!(v["bytes_captured"], 74 + 74 + 54 + 106 + 103 + 54 + 54);
    assert_eq!(v["link_types"], serde_json::json!([1]));
    assert_eq!(v["first_ts"], "2023-11-14T22:13:20.000000000Z");
    assert_eq!(v["last_ts"], "2023-11-14T22:13:20.008500000Z");
    assert_eq!(v["time_ordered"], true);
    assert_eq!(v["errors"], serde_json::json!([]));
    assert!(v["path"].as_str().unwrap().ends_with("handshake.pcap"));
}

#[test]
fn pcapng_interfaces_resolutions_and_truncation() {
    let out = run(tracekit()
        .args(["info", "--json"])
        .arg(testdata("mixed.pcapng")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = &json_lines(&out)[0];
    assert_eq!(v["format"], "pcapng");
    assert_eq!(v["link_types"], serde_json::json!([1, 101]));
    assert_eq!(v["interfaces"][0]["name"], "eth0");
    assert_eq!(v["interfaces"][0]["description"], "client LAN");
    assert_eq!(v["interfaces"][1]["name"], "tun0");
    assert_eq!(v["interfaces"][1]["timestamp_resolution"], "nanoseconds");
    assert_eq!(v["interfaces"][0]["packets"], 3);
    assert_eq!(v["truncated_packets"], 1);
    assert_eq!(v["last_ts"], "2023-11-14T22:13:22.500000123Z");
    assert_eq!(v["blocks"]["name_resolution"], 1);
    assert_eq!(v["blocks"]["interface_statistics"], 1);
}

#[test]
fn compressed_and_stdin_inputs_read_like_the_plain_file() {
    let plain = json_lines(&run(tracekit()
        .args(["info", "--json"])
        .arg(testdata("handshake.pcap"))))[0]
        .clone();
    let gz = run(tracekit()
        .args(["info", "--json"])
        .arg(testdata("handshake.pcap.gz")));
    let gz = &json_lines(&gz)[0];
    assert_eq!(gz["compression"], "gzip");
    assert_eq!(gz["packets"], plain["packets"]);
    assert_eq!(gz["last_ts"], plain["last_ts"]);

    let mut child = tracekit()
        .args(["info", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(testdata("handshake.pcap")).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = &json_lines(&out)[0];
    assert_eq!(v["packets"], 7);
    assert_eq!(v["path"], "-");
}

#[test]
fn damaged_file_reports_offset_keeps_earlier_packets_and_exits_1() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let out = run(tracekit()
        .args(["info", "--json"])
        .arg(corpus("dpkt_truncated_dns_2.pcap")));
    assert_eq!(out.status.code(), Some(1));
    let v = &json_lines(&out)[0];
    assert_eq!(v["packets"], 1);
    let e = &v["errors"][0];
    assert_eq!(e["fatal"], true);
    assert_eq!(e["offset"], 240);
    assert!(e["message"].as_str().unwrap().contains("cut short"), "{e}");
}

#[test]
fn other_files_are_still_reported_after_a_failing_one() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let out = run(tracekit()
        .args(["info", "--json"])
        .arg(corpus("ppp_solaris.snoop"))
        .arg(testdata("does-not-exist.pcap"))
        .arg(testdata("handshake.pcap")));
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Solaris snoop")
    );
    assert!(
        lines[1]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("No such file")
    );
    assert_eq!(lines[2]["packets"], 7);
}

#[test]
fn directories_are_searched_recursively_in_name_order() {
    let out = run(tracekit().args(["info", "--json"]).arg(testdata("")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("passed over 10 file"),
        "make_testdata.py, make_rotated.py, README.md and the lab scripts are not captures: {}",
        stderr(&out)
    );
    let paths: Vec<String> = json_lines(&out)
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect();
    let names: Vec<&str> = paths
        .iter()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "clamp-client.pcapng",
            "clamp-server.pcapng",
            "close-client.pcapng",
            "close-server.pcapng",
            "closenat-client.pcapng",
            "closenat-server.pcapng",
            "firewall-client.pcapng",
            "firewall-server.pcapng",
            "handshake-ns.pcap",
            "handshake.pcap",
            "handshake.pcap.gz",
            "intercept-client.pcapng",
            "intercept-server.pcapng",
            "mixed.pcapng",
            "nat-client.pcapng",
            "nat-server.pcapng",
            "reset-client.pcapng",
            "reset-server.pcapng",
            "rot-000.pcap",
            "rot-001.pcap",
            "rot-002.pcap",
            "rot-003.pcap",
            "rot-004.pcap",
            "rot-005.pcap",
            "rot-006.pcap",
            "rot-007.pcap",
            "rot-008.pcap",
            "router-client.pcapng",
            "router-server.pcapng",
            "scramble-client.pcapng",
            "scramble-server.pcapng",
            "strip-client.pcapng",
            "strip-server.pcapng",
            "synproxy-client.pcapng",
            "synproxy-server.pcapng"
        ]
    );
}

#[test]
fn text_output_reads_like_capinfos() {
    let out = run(tracekit().arg("info").arg(testdata("handshake-ns.pcap")));
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for line in [
        "File type:            pcap, little-endian, version 2.4",
        "Timestamp resolution: nanoseconds",
        "Packets:              7",
        "Last packet time:     2023-11-14T22:13:20.008500738Z",
        "Problems:             none",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = run(tracekit().arg("info"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("FILE"));
}

#[test]
fn standalone_binary_takes_the_same_arguments() {
    let out = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_tracekit-info"))
            .arg("--json")
            .arg(testdata("handshake.pcap")),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_lines(&out)[0]["packets"], 7);
}

#[test]
fn packet_counts_agree_with_capinfos_on_testdata() {
    for name in [
        "handshake.pcap",
        "handshake-ns.pcap",
        "handshake.pcap.gz",
        "mixed.pcapng",
    ] {
        let out = std::process::Command::new("capinfos")
            .args(["-c", "-M"])
            .arg(testdata(name))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let theirs: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Number of packets:"))
            .map(|n| n.trim().parse().unwrap())
            .unwrap();
        let ours = &json_lines(&run(tracekit()
            .args(["info", "--json"])
            .arg(testdata(name))))[0];
        assert_eq!(ours["packets"], theirs, "{name}");
    }
}

/// The text report, exit code and stderr, with the checkout's path taken out.
fn snapshot_of(args: &[&str], files: &[&str]) -> String {
    let mut cmd = tracekit();
    cmd.args(args);
    for f in files {
        cmd.arg(testdata(f));
    }
    let out = run(&mut cmd);
    let dir = testdata("").display().to_string();
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    )
    .replace(&dir, "[testdata]/")
}

#[test]
fn snapshot_text_report() {
    insta::assert_snapshot!(snapshot_of(&["info"], &["handshake.pcap", "mixed.pcapng"]));
}

#[test]
fn snapshot_json_report() {
    insta::assert_snapshot!(snapshot_of(&["info", "--json"], &["mixed.pcapng"]));
}

/// `--hash` prints the digests sha256sum and b3sum print (chain of custody), of the file as
/// stored (a gzip file's own bytes), in text and JSON; standard input is refused (issue 29).
#[test]
fn hashes_equal_sha256sum_and_b3sum() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let files = [
        crate::corpus("ppp_tls2.pcap"),
        crate::testdata("handshake.pcap.gz"),
        crate::testdata("firewall-client.pcapng"),
    ];
    let o = crate::run(
        crate::tracekit()
            .args(["info", "--json", "--hash", "sha256", "--hash", "blake3"])
            .args(&files),
    );
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let rows: Vec<serde_json::Value> = crate::stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (file, row) in files.iter().zip(&rows) {
        for (tool, algo) in [("sha256sum", "sha256"), ("b3sum", "blake3")] {
            let out = std::process::Command::new(tool)
                .arg(file)
                .output()
                .unwrap_or_else(|e| panic!("{tool} (scripts/test installs it): {e}"));
            let want = String::from_utf8(out.stdout).unwrap();
            let want = want.split_whitespace().next().unwrap();
            assert_eq!(
                row["hashes"][algo].as_str(),
                Some(want),
                "{} {algo}",
                file.display()
            );
        }
    }
    let text = crate::run(
        crate::tracekit()
            .args(["info", "--hash", "sha256,blake3"])
            .arg(&files[0]),
    );
    let text = crate::stdout(&text);
    assert!(
        text.contains("SHA256:") && text.contains("BLAKE3:"),
        "{text}"
    );
    let piped = crate::run(crate::tracekit().args(["info", "--hash", "sha256", "-"]));
    assert_eq!(piped.status.code(), Some(2));
}

/// The section headers' hardware, OS, application and comments, as capinfos prints them
/// (every section of a file of several), and the packets with comments, as tshark counts them.
#[test]
fn section_headers_and_comments_agree_with_capinfos_and_tshark() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for name in [
        "pcapng-gen_test202_mixed-endian-sections.pcapng",
        "ppp_pcapng-example.pcapng",
        "pcap-parser_wireshark_samples-test.pcapng",
        "pcapng-gen_le_test102_allblocks.pcapng",
    ] {
        let path = corpus(name);
        let ours = stdout(&run(tracekit().arg("info").arg(&path)));
        let theirs = stdout(&run(std::process::Command::new("capinfos").arg(&path)));
        let lines = |text: &str| -> Vec<(String, String)> {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| {
                    [
                        "Capture hardware",
                        "Capture oper-sys",
                        "Capture application",
                        "Capture comment",
                    ]
                    .contains(&k.trim())
                })
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        };
        let (a, b) = (lines(&ours), lines(&theirs));
        assert!(!a.is_empty() && a == b, "{name}: {a:?} vs {b:?}");
        let commented = stdout(&run(std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-Y", "frame.comment", "-T", "fields", "-e", "frame.number"])))
        .lines()
        .count();
        let json = json_lines(&run(tracekit().args(["info", "--json"]).arg(&path)));
        assert_eq!(json[0]["packets_with_comments"], commented as u64, "{name}");
        assert!(
            ours.contains(&format!("Packets with comments: {commented}")),
            "{ours}"
        );
    }
}
