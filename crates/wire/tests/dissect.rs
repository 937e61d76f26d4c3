//! Dissection checked against tshark on every readable corpus file: per packet, the IPv4 and
//! IPv6 addresses of every IP layer (outer to inner, then the one quoted by an ICMP error)
//! and the TCP and UDP ports, as tshark lists them.
#![allow(clippy::case_sensitive_file_extension_comparisons)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use tracekit_capture::Capture;
use tracekit_testutil::{corpus_dir, testdata_dir};
use tracekit_wire::{IpLayer, TransportKind, dissect};

const FIELDS: [&str; 8] = [
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
];

fn tshark(path: &Path) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    // No reassembly: each frame is dissected on its own, as `dissect` does.
    cmd.args([
        "-n",
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-o",
        "tcp.desegment_tcp_streams:FALSE",
    ]);
    cmd.arg("-r").arg(path).args([
        "-Y",
        "frame.encap_type",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ours(link: u16, data: &[u8]) -> String {
    let l = dissect(link, data);
    let mut layers: Vec<&IpLayer> = l.ips().iter().collect();
    if let Some(q) = &l.quoted {
        layers.push(q);
    }
    let mut cols: [Vec<String>; 8] = Default::default();
    for ip in &layers {
        let (s, d) = (ip.src(data).to_string(), ip.dst(data).to_string());
        let base = if ip.version == 4 { 0 } else { 2 };
        cols[base].push(s);
        cols[base + 1].push(d);
        if let Some(t) = ip.transport {
            let base = match t.kind {
                TransportKind::Tcp => 4,
                TransportKind::Udp => 6,
                _ => continue,
            };
            if let Some((sp, dp)) = t.ports(data) {
                cols[base].push(sp.to_string());
                cols[base + 1].push(dp.to_string());
            }
        }
    }
    cols.iter()
        .map(|c| c.join(","))
        .collect::<Vec<_>>()
        .join("\t")
}

/// Files whose link layer or tunnels we do not dissect (802.11, PPI, InfiniBand, FDDI, netlink)
/// or where tshark applies a heuristic we do not (noted per file).
const NOT_COMPARED: &[&str] = &[
    "libpcap_http_PPI.pcap",
    "libpcap_wpa-Induction.pcap",
    "scapy_bad_rsn_radiotap.pcap",
    "zeek_radiotap.pcap",
    "tcpdump_ipoib_be.pcap",
    "zeek_llc_fddi.pcap",
    "ppp_microsecs_big_endian_netlink.pcap",
];

/// Single frames where tshark and we differ on purpose.
const FRAME_DIFFERENCES: &[(&str, usize, &str)] = &[(
    "zeek_ipv6-mobility-dst-opts.pcap",
    1,
    "a destination-options header with a Home Address option before UDP: tshark stops after \
     the options, we read the UDP header that follows them (RFC 6275 allows it)",
)];

#[test]
fn addresses_and_ports_agree_with_tshark() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .expect("corpus present; set TRACEKIT_CORPUS");
    let (mut packets, mut agree, mut files) = (0u64, 0u64, 0);
    let mut report = String::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let name = cols[0];
        if cols[11] != "OK" || name.ends_with(".snoop") || NOT_COMPARED.contains(&name) {
            continue;
        }
        let path = dir.join(name);
        let capture = Capture::open(&path).unwrap();
        let mine: Vec<String> = capture
            .records()
            .map_while(Result::ok)
            .map(|r| ours(r.link.0, r.data))
            .collect();
        let theirs = tshark(&path);
        assert_eq!(mine.len(), theirs.len(), "{name}");
        files += 1;
        let mut shown = 0;
        for (n, (a, b)) in mine.iter().zip(&theirs).enumerate() {
            packets += 1;
            if a == b
                || FRAME_DIFFERENCES
                    .iter()
                    .any(|(f, k, _)| *f == name && *k == n + 1)
            {
                agree += 1;
            } else if shown < 3 {
                shown += 1;
                writeln!(
                    report,
                    "{name} frame {}:\n  ours   {a:?}\n  tshark {b:?}",
                    n + 1
                )
                .unwrap();
            }
        }
    }
    eprintln!("{report}");
    eprintln!("dissection agrees with tshark on {agree}/{packets} packets in {files} files");
    assert!(files > 90);
    assert_eq!(agree, packets, "differences listed above");
}

/// Every prefix of the first packets of every corpus file: no panic, every range inside the
/// bytes given, and never more layers than the whole packet has. Each is also dissected into
/// one `Layers` reused from packet to packet (tunnels, quoted ICMP and VLANs before plain
/// packets), which must come out as a fresh dissection does; every IP layer's fields read at
/// once (`IpLayer::fields`) are those read one by one.
#[test]
fn truncation_sweep_over_corpus_packets() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .expect("corpus present; set TRACEKIT_CORPUS");
    let mut prefixes = 0u64;
    let mut reused = tracekit_wire::Layers::default();
    for line in manifest.lines().skip(1) {
        let name = line.split('\t').next().unwrap();
        let Ok(capture) = Capture::open(dir.join(name)) else {
            continue;
        };
        for r in capture.records().map_while(Result::ok).take(20) {
            let whole = dissect(r.link.0, r.data);
            for n in 0..=r.data.len().min(256) {
                let cut = &r.data[..n];
                let l = dissect(r.link.0, cut);
                tracekit_wire::dissect_into(r.link.0, cut, &mut reused);
                assert_eq!(reused, l, "{name}: reused layers, cut at {n}");
                prefixes += 1;
                assert!(
                    l.ips().len() <= whole.ips().len().max(1),
                    "{name}: more layers when cut at {n}"
                );
                for ip in l.ips().iter().chain(l.quoted.iter()) {
                    assert!(
                        ip.header.end as usize <= n && ip.payload.end as usize <= n,
                        "{name} cut at {n}"
                    );
                    let _ = (ip.src(cut), ip.dst(cut), ip.flow(cut));
                    let f = ip.fields(cut);
                    assert_eq!(
                        (f.ttl, f.ecn, f.ident, f.dont_fragment, f.announced_payload),
                        (
                            ip.ttl(cut),
                            ip.ecn(cut),
                            ip.ident(cut),
                            ip.dont_fragment(cut),
                            ip.announced_payload(cut)
                        ),
                        "{name} cut at {n}: the fields at once"
                    );
                    if let Some(t) = ip.transport {
                        assert!(
                            t.header.end as usize <= n && t.payload.end as usize <= n,
                            "{name} cut at {n}"
                        );
                    }
                }
                if let Some(tcp) = l.tcp(cut) {
                    let _ = tracekit_wire::tcp::OptionSummary::of(&tcp);
                    let _ = tracekit_wire::tls::TlsRecord::sniff(tcp.payload());
                }
            }
        }
    }
    assert!(prefixes > 100_000, "{prefixes}");
}

fn testdata(name: &str) -> Capture {
    Capture::open(testdata_dir().join(name)).unwrap()
}

#[test]
fn handshake_flows_options_and_tls_randoms() {
    let capture = testdata("handshake.pcap");
    let packets: Vec<_> = capture.records().map(Result::unwrap).collect();
    let layers: Vec<_> = packets.iter().map(|r| dissect(r.link.0, r.data)).collect();
    let keys: Vec<_> = layers
        .iter()
        .zip(&packets)
        .map(|(l, r)| l.inner_ip().unwrap().flow(r.data))
        .collect();
    assert!(
        keys.iter().all(|(k, _)| *k == keys[0].0),
        "one conversation"
    );
    assert_eq!(
        keys.iter().map(|(_, fwd)| *fwd).collect::<Vec<_>>(),
        [true, false, true, true, false, false, true]
    );
    assert_eq!(
        keys[0].0.to_string(),
        "tcp 192.0.2.10:51000 <-> 198.51.100.20:443"
    );

    let syn = layers[0].tcp(packets[0].data).unwrap();
    let opts = tracekit_wire::tcp::OptionSummary::of(&syn);
    assert_eq!(
        (opts.mss, opts.window_scale, opts.layout_string().as_str()),
        (Some(1460), Some(7), "mss,sok,ts,nop,ws")
    );
    assert_eq!(layers[0].outer_ip().unwrap().ttl(packets[0].data), 64);
    assert_eq!(layers[1].outer_ip().unwrap().ttl(packets[1].data), 56);

    let hello = |i: usize| {
        let tcp = layers[i].tcp(packets[i].data).unwrap();
        let rec = tracekit_wire::tls::TlsRecord::sniff(tcp.payload()).unwrap();
        (rec.describe(), rec.random(tcp.payload()).unwrap()[0])
    };
    assert_eq!(hello(3), ("Client Hello", 0));
    assert_eq!(hello(4), ("Server Hello", 32));
    assert_eq!(
        layers[5].tcp(packets[5].data).unwrap().flag_names(),
        "FIN, ACK"
    );
}

#[test]
fn vlan_arp_ipv6_and_snaplen_cut_packets() {
    let capture = testdata("mixed.pcapng");
    let packets: Vec<_> = capture.records().map(Result::unwrap).collect();
    let l: Vec<_> = packets.iter().map(|r| dissect(r.link.0, r.data)).collect();
    assert_eq!(l[0].inner_ip().unwrap().version, 6);
    assert_eq!(
        l[0].transport().unwrap().ports(packets[0].data),
        Some((40000, 53))
    );
    assert_eq!((l[1].vlan_count, l[1].vlan_ids[0]), (1, 42));
    assert_eq!(l[1].transport().unwrap().kind, TransportKind::Icmp);
    assert!(l[2].arp.is_some() && l[2].ips().is_empty());
    assert_eq!(l[2].non_ip, Some(0x0806));
    // Raw IP, cut at 96 bytes of 228: the layers are there, the payload is what was captured.
    let ip = l[3].inner_ip().unwrap();
    assert_eq!((l[3].link, ip.payload.end), (101, 96));
    assert!(packets[3].is_truncated());
}
