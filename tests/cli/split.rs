use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use tracekit_capture::Capture;

use crate::{corpus, records_of, run, stderr, testdata, tracekit};

/// Runs `tracekit split` with `args` into a fresh directory; returns the directory and index.
fn split(input: &Path, args: &[&str]) -> (tempfile::TempDir, Value, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.json");
    let out = run(tracekit()
        .arg("split")
        .args(args)
        .arg("-q")
        .arg("-o")
        .arg(dir.path().join("out"))
        .arg("--index")
        .arg(&index)
        .arg(input));
    let v: Value =
        serde_json::from_slice(&std::fs::read(&index).unwrap_or_else(|_| b"{}".to_vec())).unwrap();
    (dir, v, out)
}

/// Which TCP/UDP header of a frame counts: the outermost (default keying) or the innermost.
#[derive(Clone, Copy, PartialEq)]
enum Layer {
    Outer,
    Inner,
}

/// Per-stream packet counts as tshark numbers them: (protocol, stream) → packets. Reassembly
/// is off so each fragment stands alone, and ICMP errors are left out unless `icmp` (by
/// default ICMP errors go to their address pair's output, not to the stream they quote).
fn tshark_streams(path: &Path, layer: Layer, icmp: bool) -> BTreeMap<(String, u64), u64> {
    let filter = if icmp {
        "frame.encap_type"
    } else {
        "frame.encap_type && !(icmp.type == 3 || icmp.type == 4 || icmp.type == 5 || icmp.type == 11 || icmp.type == 12) && !(icmpv6.type < 128)"
    };
    let out = std::process::Command::new("tshark")
        .args([
            "-n",
            "-o",
            "ip.defragment:FALSE",
            "-o",
            "ipv6.defragment:FALSE",
            "-r",
        ])
        .arg(path)
        .args([
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            "frame.protocols",
            "-e",
            "tcp.stream",
            "-e",
            "udp.stream",
        ])
        .output()
        .unwrap();
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let protocols: Vec<&str> = cols[0]
            .split(':')
            .filter(|p| *p == "tcp" || *p == "udp")
            .collect();
        let proto = match layer {
            Layer::Outer => protocols.first(),
            Layer::Inner => protocols.last(),
        };
        let Some(&proto) = proto else { continue };
        let values: Vec<&str> = cols[if proto == "tcp" { 1 } else { 2 }]
            .split(',')
            .filter(|v| !v.is_empty())
            .collect();
        let value = match layer {
            Layer::Outer => values.first(),
            Layer::Inner => values.last(),
        };
        if let Some(v) = value {
            *counts
                .entry((proto.to_string(), v.parse::<u64>().unwrap()))
                .or_default() += 1;
        }
    }
    counts
}

/// Our per-stream counts from the index, leaving out non-first IP fragments (which we keep
/// with their datagram and tshark, reading each fragment alone, cannot place).
fn our_streams(dir: &Path, index: &Value, inner: bool) -> BTreeMap<(String, u64), u64> {
    let mut counts = BTreeMap::new();
    for o in index["outputs"].as_array().unwrap() {
        let proto = o["protocol"].as_str().unwrap();
        if proto != "tcp" && proto != "udp" {
            continue;
        }
        let file = dir.join("out").join(o["file"].as_str().unwrap());
        let capture = Capture::open(&file).unwrap();
        let whole = capture
            .records()
            .map(Result::unwrap)
            .filter(|r| {
                let l = tracekit_wire::dissect(r.link.0, r.data);
                let ip = if inner { l.inner_ip() } else { l.outer_ip() };
                ip.is_none_or(tracekit_wire::IpLayer::is_first_fragment_or_whole)
            })
            .count() as u64;
        counts.insert((proto.to_string(), o["id"].as_u64().unwrap()), whole);
    }
    counts
}

/// Files where we do not compare, and why.
const NOT_COMPARED: &[(&str, &str)] = &[
    (
        "tcpdump_ipoib_be.pcap",
        "IP over InfiniBand: a link layer we do not dissect",
    ),
    (
        "zeek_radiotap.pcap",
        "802.11 radiotap: a link layer we do not dissect",
    ),
    (
        "libpcap_http_PPI.pcap",
        "PPI/802.11: a link layer we do not dissect",
    ),
    (
        "libpcap_wpa-Induction.pcap",
        "802.11: a link layer we do not dissect",
    ),
    ("zeek_llc_fddi.pcap", "FDDI: a link layer we do not dissect"),
    (
        "ndpi_fuzz-2006-06-26-2594_be.pcap",
        "fuzzed packet contents that tshark's heuristics read differently",
    ),
    (
        "zeek_ipv6-mobility-dst-opts.pcap",
        "tshark stops at a Home Address option; we read the UDP after it",
    ),
];

/// Tunnel files: compared on the innermost conversation with `--inner`.
const TUNNELS: &[&str] = &[
    "zeek_gre-within-gre.pcap",
    "zeek_4in4.pcap",
    "zeek_6in4.pcap",
    "zeek_6in6in6.pcap",
    "tcpdump_various_gre.pcap",
];

#[test]
fn stream_numbers_and_counts_equal_wiresharks() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let manifest =
        std::fs::read_to_string(tracekit_testutil::corpus_dir().join("MANIFEST.tsv")).unwrap();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let name = cols[0];
        if cols[11] != "OK"
            || name.ends_with(".snoop")
            || NOT_COMPARED.iter().any(|(f, _)| *f == name)
        {
            continue;
        }
        let path = corpus(name);
        let inner = TUNNELS.contains(&name);
        for icmp in [false, true] {
            let mut args = Vec::new();
            if inner {
                args.push("--inner");
            }
            if icmp {
                args.push("--icmp-with-flow");
            }
            let (dir, index, out) = split(&path, &args);
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "{name}: {}",
                stderr(&out)
            );
            let ours = our_streams(dir.path(), &index, inner);
            let theirs =
                tshark_streams(&path, if inner { Layer::Inner } else { Layer::Outer }, icmp);
            if ours == theirs {
                compared += 1;
                continue;
            }
            let diff: Vec<String> = theirs
                .keys()
                .chain(ours.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| ours.get(k) != theirs.get(k))
                .take(4)
                .map(|k| {
                    format!(
                        "{}.stream {}: ours {:?} tshark {:?}",
                        k.0,
                        k.1,
                        ours.get(k),
                        theirs.get(k)
                    )
                })
                .collect();
            mismatches.push(format!(
                "{name} (icmp-with-flow {icmp}): {}",
                diff.join("; ")
            ));
        }
    }
    eprintln!("{compared} runs with per-stream counts identical to tshark's");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared > 180, "{compared}");
}

/// Every record of `input`, as (timestamp, bytes), in order.
/// Checks that the outputs hold every input record `copies` times in all, byte-identical with
/// the same timestamp, each output in input order; returns the number of output files.
/// Identical records (same time and bytes) are told apart only by count.
fn assert_conserved(input: &Path, out_dir: &Path, copies: usize) -> usize {
    let original = records_of(input);
    let mut positions: HashMap<&(i64, Vec<u8>), Vec<usize>> = HashMap::new();
    for (i, r) in original.iter().enumerate() {
        positions.entry(r).or_default().push(i);
    }
    let mut found: HashMap<(i64, Vec<u8>), usize> = HashMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(out_dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            !path.file_name().unwrap().to_string_lossy().starts_with('.'),
            "temporary file left: {}",
            path.display()
        );
        files += 1;
        let mut last: Option<usize> = None;
        for r in records_of(&path) {
            let list = positions
                .get(&r)
                .unwrap_or_else(|| panic!("{}: a record not in the input", path.display()));
            // The earliest input position after the previous record of this output.
            let pos = list.iter().copied().find(|&p| last.is_none_or(|l| p > l));
            assert!(pos.is_some(), "{}: out of input order", path.display());
            last = pos;
            *found.entry(r).or_default() += 1;
        }
    }
    for (r, list) in &positions {
        let n = found.get(*r).copied().unwrap_or(0);
        assert_eq!(
            n,
            copies * list.len(),
            "{}: record at input position {} found {n} times",
            input.display(),
            list[0]
        );
    }
    files
}

#[test]
fn every_record_lands_in_exactly_one_output_in_input_order() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for name in [
        "ndpi_KakaoTalk_chat_portreuse.pcap",
        "ppp_ip-frag.pcap",
        "ppp_pcapng-example.pcapng",
        "pcapng-gen_test202_mixed-endian-sections.pcapng",
        "tcpreplay_test.pcap",
        "zeek_vxlan-encapsulated-http.pcap",
        "ppp_many_interfaces-1.pcapng",
    ] {
        for mode in [
            "stream",
            "host-pair",
            "port",
            "count=7",
            "size=2K",
            "time=100ms",
        ] {
            let (dir, index, out) = split(&corpus(name), &["--by", mode]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {mode}: {}",
                stderr(&out)
            );
            let files = assert_conserved(&corpus(name), &dir.path().join("out"), 1);
            assert_eq!(
                files,
                index["outputs"].as_array().unwrap().len(),
                "{name} {mode}"
            );
            assert_eq!(
                index["input_packets"].as_u64().unwrap() as usize,
                records_of(&corpus(name)).len()
            );
        }
    }
}

#[test]
fn host_mode_puts_each_packet_in_both_hosts_outputs() {
    let input = testdata("handshake.pcap");
    let (dir, index, out) = split(&input, &["--by", "host"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_conserved(&input, &dir.path().join("out"), 2);
    let files: Vec<&str> = index["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["host-192.0.2.10.pcap", "host-198.51.100.20.pcap"]);
}

#[test]
fn fragments_follow_their_first_fragment() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let input = corpus("ppp_ip-frag.pcap");
    let (dir, _, out) = split(&input, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // (src, dst, ident) of every fragment → the files it appears in.
    let mut homes: HashMap<(String, String, u32), std::collections::BTreeSet<String>> =
        HashMap::new();
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        for (_, data) in records_of(&path) {
            let l = tracekit_wire::dissect(1, &data);
            let Some(ip) = l.outer_ip() else { continue };
            if let Some(f) = ip.fragment {
                let key = (
                    ip.src(&data).to_string(),
                    ip.dst(&data).to_string(),
                    f.ident,
                );
                homes
                    .entry(key)
                    .or_default()
                    .insert(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(homes.len() > 100, "{} datagrams", homes.len());
    let split_up: Vec<_> = homes.iter().filter(|(_, files)| files.len() > 1).collect();
    assert!(
        split_up.is_empty(),
        "fragments of one datagram in several files: {split_up:?}"
    );
}

#[test]
fn outputs_open_in_tshark_and_keep_pcapng_comments() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let input = corpus("ppp_pcapng-example.pcapng");
    let (dir, index, out) = split(&input, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut comments = 0;
    for o in index["outputs"].as_array().unwrap() {
        let path = dir.path().join("out").join(o["file"].as_str().unwrap());
        let lines = tracekit_testutil::tshark_fields(&path, &["frame.number", "frame.comment"]);
        assert_eq!(
            lines.len() as u64,
            o["packets"].as_u64().unwrap(),
            "{}",
            path.display()
        );
        comments += lines
            .iter()
            .filter(|l| l.split('\t').nth(1).is_some_and(|c| !c.is_empty()))
            .count();
    }
    let original = tracekit_testutil::tshark_fields(&input, &["frame.comment"])
        .iter()
        .filter(|l| !l.is_empty())
        .count();
    assert!(original > 50);
    assert_eq!(comments, original, "packet comments survive");
}

#[test]
fn pcap_output_from_pcapng_keeps_nanoseconds_and_refuses_mixed_link_types() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let input = corpus("ppp_many_interfaces-1.pcapng"); // link types 0, 1 and 12
    let (_, _, out) = split(&input, &["--by", "count=1000", "--format", "pcap"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one pcap cannot hold three link types"
    );
    assert!(stderr(&out).contains("link type"), "{}", stderr(&out));

    let input = testdata("mixed.pcapng");
    let (dir, index, out) = split(&input, &["--by", "stream", "--format", "pcap"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let udp = index["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["file"].as_str().unwrap().contains("5000"))
        .unwrap();
    let file = dir.path().join("out").join(udp["file"].as_str().unwrap());
    let theirs = tracekit_testutil::tshark_fields(&file, &["frame.time_epoch"]);
    assert_eq!(theirs, ["1700000002.500000123"]);
}

#[test]
fn a_million_streams_do_not_need_a_million_open_files() {
    // 3000 UDP streams with at most 16 open files and a 1 MiB buffer: every stream's file is
    // closed and reopened to append.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.pcap");
    udp_pcap(
        &input,
        (0..3u16).flat_map(|round| {
            (0..3000u16).map(move |port| {
                let ts = i64::from(round) * 1_000_000_000 + i64::from(port) * 1000;
                (ts, 10_000 + port, 0, vec![round as u8; 20])
            })
        }),
    );
    let (out_dir, index, out) = split(&input, &["--max-open-files", "16", "--buffer", "16K"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(index["outputs"].as_array().unwrap().len(), 3000);
    assert_conserved(&input, &out_dir.path().join("out"), 1);
}

/// A raw-IP pcap (microseconds) of UDP datagrams 192.0.2.1:SPORT → 198.51.100.2:53, each
/// given as (time in ns, source port, IP identification, payload).
fn udp_pcap(path: &Path, packets: impl IntoIterator<Item = (i64, u16, u8, Vec<u8>)>) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut w = tracekit_capture::writer::PcapWriter::new(
        &mut f,
        tracekit_capture::LinkType::RAW,
        tracekit_capture::writer::Precision::Micro,
        65535,
    )
    .unwrap();
    for (ts, sport, id, payload) in packets {
        let total = (28 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend(total.to_be_bytes());
        p.extend([0, id, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2]);
        p.extend(sport.to_be_bytes());
        p.extend(53u16.to_be_bytes());
        p.extend((total - 20).to_be_bytes());
        p.extend([0, 0]);
        p.extend(&payload);
        w.write(tracekit_capture::Timestamp(ts), &p, p.len() as u32)
            .unwrap();
    }
    w.into_inner().unwrap();
}

/// Every file of a directory: name → bytes.
pub(crate) fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn outputs_are_identical_for_any_thread_count_and_buffer_size() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    // A small buffer makes many flushes, so outputs are created and then appended to.
    for name in [
        "ndpi_KakaoTalk_chat_portreuse.pcap",
        "ppp_many_interfaces-1.pcapng",
        "pcapng-gen_test202_mixed-endian-sections.pcapng",
    ] {
        let runs: Vec<BTreeMap<String, Vec<u8>>> = [
            &["--threads", "1"][..],
            &["--threads", "2", "--buffer", "16K"][..],
            &["--threads", "5", "--buffer", "16K", "--max-open-files", "3"][..],
        ]
        .iter()
        .map(|args| {
            let (dir, _, out) = split(&corpus(name), args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {args:?}: {}",
                stderr(&out)
            );
            files_of(&dir.path().join("out"))
        })
        .collect();
        assert!(runs[0].len() > 1, "{name}");
        assert!(
            runs[1] == runs[0],
            "{name}: --threads 2 differs from --threads 1"
        );
        assert!(
            runs[2] == runs[0],
            "{name}: --threads 5 differs from --threads 1"
        );
    }
}

#[test]
fn damaged_input_is_reported_and_the_rest_still_split() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let input = corpus("suri_tls_DER-incomplete-header.pcap");
    let (_dir, index, out) = split(&input, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("byte offset 5035"),
        "{}",
        stderr(&out)
    );
    assert_eq!(index["input_packets"], 6);
    let packets: u64 = index["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(packets, 6);
}

#[test]
fn rotated_files_are_one_capture_and_a_stream_spans_them() {
    // The handshake cut in two files, given in the wrong order.
    let dir = tempfile::tempdir().unwrap();
    let all = Capture::open(testdata("handshake.pcap")).unwrap();
    let recs: Vec<_> = all.records().map(Result::unwrap).collect();
    for (name, part) in [("b.pcap", &recs[4..]), ("a.pcap", &recs[..4])] {
        let mut f = std::fs::File::create(dir.path().join(name)).unwrap();
        let mut w = tracekit_capture::writer::PcapWriter::new(
            &mut f,
            tracekit_capture::LinkType::ETHERNET,
            tracekit_capture::writer::Precision::Micro,
            65535,
        )
        .unwrap();
        for r in part {
            w.write_record(r).unwrap();
        }
    }
    let out_dir = tempfile::tempdir().unwrap();
    let csv = out_dir.path().join("index.csv");
    let out = run(tracekit()
        .args(["split", "-q", "-o"])
        .arg(out_dir.path().join("out"))
        .arg("--index")
        .arg(&csv)
        .arg(dir.path().join("b.pcap"))
        .arg(dir.path().join("a.pcap")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files: Vec<_> = std::fs::read_dir(out_dir.path().join("out"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        records_of(&files[0].as_ref().unwrap().path()),
        records_of(&testdata("handshake.pcap"))
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with(
            "id,output,protocol,endpoint_a,endpoint_b,key,file,packets,bytes,first_ts,last_ts\n"
        ),
        "{text}"
    );
    assert!(text.contains(",7,519,"), "{text}");
}

#[test]
fn name_templates_and_bad_arguments() {
    let (dir, index, out) = split(
        &testdata("handshake.pcap"),
        &["--name", "{proto}-{n}-{a}-{bport}"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        index["outputs"][0]["file"],
        "tcp-000000-192.0.2.10-443.pcap"
    );
    assert!(
        dir.path()
            .join("out/tcp-000000-192.0.2.10-443.pcap")
            .exists()
    );
    for bad in [
        &["--by", "count=0"][..],
        &["--by", "time=fast"],
        &["--name", "fixed"],
        &["--by", "count=5", "--inner"],
    ] {
        let (_, _, out) = split(&testdata("handshake.pcap"), bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// `--compress` (issue 29): every output gains `.gz` or `.zst` and decompresses (gzip, zstd) to
/// the plain split's bytes, also when outputs are appended to window after window (a member
/// or frame per write), and capinfos reads the gzip ones as they are.
#[test]
fn compressed_outputs_decompress_to_the_plain_split() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let input = corpus("ppp_many-protocols.pcap");
    let (plain, _, o) = split(&input, &["--by", "stream"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_dir(plain.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() > 20, "{}", names.len());
    for (how, suffix, tool) in [("gzip", ".gz", "gzip"), ("zstd", ".zst", "zstd")] {
        // A small buffer and few open files: outputs appended to again and again.
        let (dir, _, o) = split(
            &input,
            &[
                "--by",
                "stream",
                "--compress",
                how,
                "--buffer",
                "4k",
                "--max-open-files",
                "2",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        for name in &names {
            let packed = dir.path().join("out").join(format!("{name}{suffix}"));
            let d = run(std::process::Command::new(tool).arg("-dc").arg(&packed));
            assert!(d.status.success(), "{}: {}", packed.display(), stderr(&d));
            let want = std::fs::read(plain.path().join("out").join(name)).unwrap();
            assert!(d.stdout == want, "{}", packed.display());
            if how == "gzip" {
                let info = run(std::process::Command::new("capinfos")
                    .arg("-c")
                    .arg(&packed));
                assert!(info.status.success(), "{}", stderr(&info));
            }
        }
    }
}

/// `{start}` and `{end}` (issue 29): chunks are named by their earliest and latest packet in
/// UTC, as capinfos reports those times; the default names sort in time order even when the
/// input's packets come out of order (a chunk created later holds earlier packets); and a
/// template whose names collide is refused with nothing written.
#[test]
fn chunks_are_named_by_their_times_and_sort_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("times.pcap");
    // 2024-05-01T14:05:00Z, then packets each 7 s apart, and two from a minute before the
    // first (out of order) at the end.
    let t0 = 1_714_572_300i64;
    let mut times: Vec<i64> = (0..12).map(|i| t0 + 7 * i).collect();
    times.extend([t0 - 60, t0 - 55]);
    udp_pcap(
        &input,
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| (t * 1_000_000_000 + 250_000_000, 1000, i as u8, Vec::new())),
    );

    // By time: the default names, sorted, are the chunks in time order.
    let (out_dir, index, out) = split(&input, &["--by", "time=30s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<String> = files_of(&out_dir.path().join("out")).into_keys().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names[0], "chunk-20240501T140400Z-000003.pcap", "{names:?}");
    assert_eq!(names[1], "chunk-20240501T140500Z-000000.pcap", "{names:?}");
    let firsts: Vec<i64> = names
        .iter()
        .map(|n| records_of(&out_dir.path().join("out").join(n))[0].0)
        .collect();
    assert!(firsts.is_sorted(), "{names:?} {firsts:?}");
    let files: Vec<&str> = index["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["file"].as_str().unwrap())
        .collect();
    assert!(
        files.iter().all(|f| names.contains(&f.to_string())),
        "{files:?}"
    );

    // By count, with both times in a template: what capinfos says of each output.
    let (out_dir, _, out) = split(&input, &["--by", "count=5", "--name", "{start}_{end}_{n}"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<String> = files_of(&out_dir.path().join("out")).into_keys().collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in &names {
        let info = crate::succeed(
            std::process::Command::new("capinfos")
                .args(["-T", "-r", "-a", "-e", "-S"])
                .arg(out_dir.path().join("out").join(name)),
        );
        let fields: Vec<String> = crate::stdout(&info)
            .trim()
            .split('\t')
            .map(str::to_string)
            .collect();
        let utc = |s: &str| {
            let secs: f64 = s.parse().unwrap();
            let t = time::OffsetDateTime::from_unix_timestamp(secs.floor() as i64).unwrap();
            t.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap()
        };
        let (start, end) = (utc(&fields[1]), utc(&fields[2]));
        assert!(
            name.starts_with(&format!("{start}_{end}_")),
            "{name}: capinfos says {fields:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("20240501T140400Z_20240501T140617Z_")),
        "{names:?}"
    );

    // Names that collide: refused, nothing left behind.
    let (out_dir, _, out) = split(&input, &["--by", "count=5", "--name", "{proto}"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("both be named"), "{}", stderr(&out));
    let left = out_dir.path().join("out");
    assert!(
        !left.exists() || files_of(&left).is_empty(),
        "{:?}",
        files_of(&left)
    );
}
