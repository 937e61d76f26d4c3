//! `tracekit extract` and the selection flags, checked against tcpdump (filters), editcap
//! (time windows) and tshark (frame numbers, reading from a pipe).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{corpus, run, stderr, succeed, tracekit};

/// (time, length on the wire, bytes) of every record, in file order.
fn packets(path: &Path) -> Vec<(i64, u32, Vec<u8>)> {
    let c = tracekit_capture::Capture::open(path).unwrap();
    c.records()
        .map_while(Result::ok)
        .map(|r| (r.ts.0, r.orig_len, r.data.to_vec()))
        .collect()
}

/// tcpdump expressions over the primitives the issue names: host, net, port, portrange, proto,
/// tcp flags, icmp types, vlan, mpls, len, byte offsets, and/or/not.
const EXPRESSIONS: [&str; 26] = [
    "tcp",
    "udp",
    "icmp or icmp6",
    "ip6",
    "arp",
    "not ip and not ip6",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16 or dst port 8080",
    "port 53",
    "tcp port 80 or tcp port 443",
    "portrange 1-1023",
    "udp portrange 1024-65535",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "tcp[tcpflags] & tcp-rst != 0",
    "icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply",
    "vlan",
    "vlan and udp",
    "mpls",
    "len > 1000",
    "less 100",
    "greater 500 and tcp",
    "ip proto 47",
    "ip[8] < 64",
    "ip[6:2] & 0x3fff != 0",
    "ether broadcast or ip multicast",
    "pppoes",
];

/// Every corpus file that tcpdump reads, every expression: the packets tracekit selects are
/// tcpdump's, byte for byte (tcpdump keeps file order, tracekit time order: tcpdump's output
/// is sorted by time, stably, before comparing).
#[test]
fn filters_select_what_tcpdump_selects_on_the_corpus() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let files: Vec<PathBuf> = tracekit_testutil::manifest()
        .into_iter()
        .filter(|e| !e.malformed)
        .map(|e| corpus(&e.file))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let compared = std::sync::atomic::AtomicUsize::new(0);
    let matched = std::sync::atomic::AtomicUsize::new(0);
    let expressions_compared = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let work: Vec<(usize, &PathBuf)> = files.iter().enumerate().collect();
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (work, dir, compared, matched, seen) = (
                &work,
                dir.path(),
                &compared,
                &matched,
                &expressions_compared,
            );
            scope.spawn(move || {
                for &(i, file) in work.iter().skip(worker).step_by(2) {
                    for (k, expr) in EXPRESSIONS.iter().enumerate() {
                        let theirs = dir.join(format!("tcpdump-{i}-{k}.pcap"));
                        let o = run(Command::new("tcpdump")
                            .args(["--time-stamp-precision=nano", "-r"])
                            .arg(file)
                            .arg("-w")
                            .arg(&theirs)
                            .arg(expr));
                        if !o.status.success() {
                            continue; // a file or link type tcpdump cannot read or filter
                        }
                        let ours = dir.join(format!("tracekit-{i}-{k}.pcapng"));
                        let o = run(tracekit()
                            .args(["extract", "-q", "--filter", expr, "-o"])
                            .arg(&ours)
                            .arg(file));
                        assert!(
                            o.status.code() != Some(2),
                            "{} {expr:?}: {}",
                            file.display(),
                            stderr(&o)
                        );
                        // As multisets: records without a timestamp (pcapng simple packet
                        // blocks) are time 0 to tcpdump and keep their place in ours.
                        // Times modulo 2^32 s: tcpdump writes classic pcap, whose seconds
                        // wrap in 2106 (the corpus has a file past that).
                        let wrap = |mut v: Vec<(i64, u32, Vec<u8>)>| {
                            for p in &mut v {
                                p.0 = p.0.rem_euclid((1i64 << 32) * 1_000_000_000);
                            }
                            v.sort();
                            v
                        };
                        let want = wrap(packets(&theirs));
                        let got = wrap(packets(&ours));
                        assert_eq!(
                            got.len(),
                            want.len(),
                            "{} {expr:?}: packet count",
                            file.display()
                        );
                        assert!(got == want, "{} {expr:?}: packets differ", file.display());
                        compared.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if !want.is_empty() {
                            matched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            seen.lock().unwrap().insert(k);
                        }
                    }
                }
            });
        }
    });
    let compared = compared.into_inner();
    let matched = matched.into_inner();
    let nonempty = expressions_compared.into_inner().unwrap().len();
    eprintln!("{compared} (file, expression) pairs compared, {matched} selecting something");
    assert!(compared > 1500, "only {compared} comparisons");
    assert!(
        nonempty >= 24,
        "only {nonempty} expressions selected anything"
    );
}

/// The corpus files in strict time order that capinfos reads, with at least 30 packets.
fn ordered_corpus() -> Vec<PathBuf> {
    tracekit_testutil::manifest()
        .into_iter()
        .filter(|e| e.capinfos_ok && !e.malformed && e.strict_time_order && e.packets >= 30)
        .map(|e| corpus(&e.file))
        .filter(|f| tracekit_capture::Capture::open(f).is_ok())
        .collect()
}

fn epoch(ns: i64) -> String {
    format!(
        "{}.{:09}",
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000)
    )
}

/// `--after A --before B` keeps what `editcap -A A -B B` keeps (a half-open window), on the
/// middle third of every time-ordered corpus file.
#[test]
fn time_windows_equal_editcaps() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for file in ordered_corpus() {
        let all = packets(&file);
        let (a, b) = (all[all.len() / 3].0, all[2 * all.len() / 3].0);
        if a == b {
            continue;
        }
        let theirs = dir.path().join("editcap.pcapng");
        let o = run(Command::new("editcap")
            .env("TZ", "UTC")
            .args(["-A", &epoch(a), "-B", &epoch(b)])
            .arg(&file)
            .arg(&theirs));
        assert!(
            o.status.success(),
            "editcap {}: {}",
            file.display(),
            stderr(&o)
        );
        let ours = dir.path().join("ours.pcapng");
        let o = run(tracekit()
            .args([
                "extract",
                "-q",
                "--after",
                &epoch(a),
                "--before",
                &epoch(b),
                "-o",
            ])
            .arg(&ours)
            .arg(&file));
        assert!(o.status.success(), "{}: {}", file.display(), stderr(&o));
        let want = packets(&theirs);
        assert!(!want.is_empty());
        assert!(
            packets(&ours) == want,
            "{}: the windows differ",
            file.display()
        );
        compared += 1;
    }
    assert!(compared >= 25, "only {compared} files compared");
}

/// RFC 3339 with an offset and the relative form select the same window as epoch seconds.
#[test]
fn every_time_form_means_the_same_instant() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_tls2.pcap");
    let all = packets(&file);
    let (first, a, b) = (all[0].0, all[10].0, all[40].0);
    let dir = tempfile::tempdir().unwrap();
    let rfc = |ns: i64| {
        // 2 hours east of UTC, nanoseconds.
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let forms = [
        (epoch(a), epoch(b)),
        (rfc(a), rfc(b)),
        (format!("+{}ns", a - first), format!("+{}ns", b - first)),
    ];
    let mut outputs = Vec::new();
    for (i, (after, before)) in forms.iter().enumerate() {
        let out = dir.path().join(format!("{i}.pcap"));
        let o = run(tracekit()
            .args(["extract", "-q", "--after", after, "--before", before, "-o"])
            .arg(&out)
            .arg(&file));
        assert!(o.status.success(), "{after} {before}: {}", stderr(&o));
        outputs.push(packets(&out));
    }
    assert_eq!(outputs[0].len(), 30);
    assert!(outputs[0] == outputs[1] && outputs[1] == outputs[2]);
}

/// `--frames` pulls out the frames Wireshark numbers so (tshark's frame.number).
#[test]
fn frame_ranges_are_wiresharks_frame_numbers() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_many-protocols.pcap");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames.pcap");
    succeed(
        tracekit()
            .args(["extract", "-q", "--frames", "5-9,100,4700-", "-o"])
            .arg(&out)
            .arg(&file),
    );
    let want =
        tracekit_testutil::tshark_fields(&file, &["frame.number", "frame.len", "frame.time_epoch"])
            .into_iter()
            .filter(|l| {
                let n: u64 = l.split('\t').next().unwrap().parse().unwrap();
                (5..=9).contains(&n) || n == 100 || n >= 4700
            })
            .map(|l| l.split('\t').nth(1).unwrap().to_string())
            .collect::<Vec<_>>();
    let got: Vec<String> = packets(&out).iter().map(|p| p.1.to_string()).collect();
    // This file is in time order, so frame order is time order.
    assert_eq!(got, want);
    assert_eq!(got.len(), 5 + 1 + 10);
}

/// A directory of rotated files is read as one capture: a window reads only the files it
/// overlaps (the summary says how many were passed over) and selects what editcap selects
/// from the unsplit file; frame numbers still count the files passed over.
#[test]
fn a_rotated_set_is_one_capture_and_files_outside_the_window_are_passed_over() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_tls2.pcap");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    succeed(
        tracekit()
            .args(["split", "-q", "--by", "count=100", "-o"])
            .arg(&set)
            .arg(&file),
    );
    let files = std::fs::read_dir(&set).unwrap().count();
    assert!(files >= 10, "{files} chunks");
    let all = packets(&file);
    let (a, b) = (all[420].0, all[610].0);
    let ours = dir.path().join("window.pcap");
    let o = succeed(
        tracekit()
            .args(["extract", "--after", &epoch(a), "--before", &epoch(b), "-o"])
            .arg(&ours)
            .arg(&set),
    );
    let summary = stderr(&o);
    assert!(
        summary.contains(&format!("{} file(s)", files - 3)) && summary.contains("passed over"),
        "{summary}"
    );
    let want: Vec<_> = all
        .iter()
        .filter(|p| p.0 >= a && p.0 < b)
        .cloned()
        .collect();
    assert!(packets(&ours) == want);
    // Frames 501-510 of the set are frames 501-510 of the unsplit file, though the window
    // passed over the files before them.
    let framed = dir.path().join("framed.pcap");
    succeed(
        tracekit()
            .args([
                "extract",
                "-q",
                "--after",
                &epoch(a),
                "--frames",
                "501-510",
                "-o",
            ])
            .arg(&framed)
            .arg(&set),
    );
    assert!(packets(&framed) == all[500..510].to_vec());
}

/// `-o -` streams into `tshark -r -`.
#[test]
fn extract_streams_into_tshark() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_many-protocols.pcap");
    let mut ours = tracekit()
        .args(["extract", "-q", "--filter", "udp port 53", "-o", "-"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shark = Command::new("tshark")
        .args(["-n", "-r", "-", "-T", "fields", "-e", "udp.port"])
        .stdin(ours.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(ours.wait().unwrap().success());
    let lines: Vec<String> = String::from_utf8(shark.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines.len() > 10, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.split(',').any(|p| p == "53")),
        "{lines:?}"
    );
}

/// A hosts file selects what the same addresses and prefixes written as a tcpdump expression
/// select, where `host` and the hosts file read the same header; inside MPLS or VLAN tags
/// tcpdump's `host` needs `mpls and` / `vlan and`, the hosts file does not (the file's first 20
/// frames are ICMP inside MPLS).
#[test]
fn a_hosts_file_selects_what_the_equivalent_filter_selects() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_many-protocols.pcap");
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts,
        "# suspects\n10.0.0.99\n  212.199.202.0/24  # a CDN\n2001:db8::/32\n173.194.78.104\n",
    )
    .unwrap();
    let by_list = dir.path().join("list.pcap");
    succeed(
        tracekit()
            .args(["extract", "-q", "--hosts-file"])
            .arg(&hosts)
            .arg("-o")
            .arg(&by_list)
            .arg(&file),
    );
    let by_filter = dir.path().join("filter.pcap");
    succeed(tracekit()
        .args([
            "extract",
            "-q",
            "--filter",
            "host 10.0.0.99 or net 212.199.202.0/24 or net 2001:db8::/32 or host 173.194.78.104",
            "-o",
        ])
        .arg(&by_filter)
        .arg(&file));
    let got = packets(&by_list);
    assert!(got.len() > 100);
    assert!(got == packets(&by_filter));
    // Inside MPLS: the hosts file finds the ICMP exchange, `host` alone does not.
    std::fs::write(&hosts, "10.118.10.2\n").unwrap();
    succeed(
        tracekit()
            .args(["extract", "-q", "--hosts-file"])
            .arg(&hosts)
            .arg("-o")
            .arg(&by_list)
            .arg(&file),
    );
    assert_eq!(packets(&by_list).len(), 10);
}

/// Bad input is a usage error naming the position; nothing is written.
#[test]
fn bad_selections_are_refused_with_the_position_and_nothing_written() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_many-protocols.pcap");
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "192.0.2.1\n# fine\n198.51.100.0/33\n").unwrap();
    let out = dir.path().join("out.pcap");
    let cases: [(&[&str], &str); 6] = [
        (&["--filter", "tcp and (port 80 or"], "at character 20"),
        (&["--filter", "tcp prot 80"], "at character 5"),
        (&["--after", "2024-05-01 14:05"], "RFC 3339"),
        (&["--before", "+5 minutes"], "unknown unit"),
        (&["--frames", "1-5,x"], "at character 5"),
        (
            &["--community-id", "wCb3OG7yAFWelaUydu0D+125CLM="],
            "starts with \"1:\"",
        ),
    ];
    for (args, want) in cases {
        let o = run(tracekit()
            .arg("extract")
            .args(args)
            .arg("-o")
            .arg(&out)
            .arg(&file));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!out.exists());
    }
    let o = run(tracekit()
        .args(["extract", "--hosts-file"])
        .arg(&hosts)
        .arg("-o")
        .arg(&out)
        .arg(&file));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 3 column 1"), "{}", stderr(&o));
    assert!(!out.exists());
}

/// split, merge, anonymize and info take the same selection and select the same packets.
#[test]
fn every_command_takes_the_same_selection() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let file = corpus("ppp_many-protocols.pcap");
    let dir = tempfile::tempdir().unwrap();
    let select = ["--filter", "tcp port 443 or udp port 53", "--after", "+1s"];
    let extracted = dir.path().join("extract.pcap");
    succeed(
        tracekit()
            .args(["extract", "-q"])
            .args(select)
            .arg("-o")
            .arg(&extracted)
            .arg(&file),
    );
    let mut want = packets(&extracted);
    assert!(want.len() > 1000);

    let merged = dir.path().join("merge.pcap");
    succeed(
        tracekit()
            .args(["merge", "-q", "--format", "pcap"])
            .args(select)
            .arg("-o")
            .arg(&merged)
            .arg(&file),
    );
    assert!(packets(&merged) == want);

    let o = succeed(tracekit().args(["info", "--json"]).args(select).arg(&file));
    let info: serde_json::Value = serde_json::from_str(&crate::stdout(&o)).unwrap();
    assert_eq!(info["packets_selected"].as_u64(), Some(want.len() as u64));

    let parts = dir.path().join("split");
    succeed(
        tracekit()
            .args(["split", "-q"])
            .args(select)
            .arg("-o")
            .arg(&parts)
            .arg(&file),
    );
    let mut got: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .flat_map(|e| packets(&e.unwrap().path()))
        .collect();
    got.sort();
    want.sort();
    assert!(got == want);

    let key = dir.path().join("k.key");
    assert!(
        run(tracekit().args(["keygen", "-o"]).arg(&key))
            .status
            .success()
    );
    let anon = dir.path().join("anon.pcap");
    succeed(
        tracekit()
            .args(["anonymize", "-q", "--key-file"])
            .arg(&key)
            .args(select)
            .arg("-o")
            .arg(&anon)
            .arg(&file),
    );
    let anonymized = packets(&anon);
    assert_eq!(anonymized.len(), want.len());
    // Lengths and times are kept by anonymize.
    let mut lens: Vec<(i64, u32)> = anonymized.iter().map(|p| (p.0, p.1)).collect();
    lens.sort_unstable();
    assert_eq!(lens, want.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
}
