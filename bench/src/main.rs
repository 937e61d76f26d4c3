//! Benchmark helper: a deterministic generator of realistic captures (Ethernet, IPv4/IPv6,
//! TCP connections with handshakes, data and teardown, UDP request/response), and a
//! dissection micro-benchmark against etherparse on the same packets.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracekit_capture::writer::{PcapWriter, Precision};
use tracekit_capture::{Capture, LinkType, Timestamp};
use tracekit_wire::checksum;

#[derive(Parser)]
#[command(about = "tracekit benchmark helper")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a classic pcap (nanosecond) of about SIZE bytes with FLOWS concurrent flows.
    Gen {
        #[arg(long, default_value_t = 2_000_000_000)]
        size: u64,
        #[arg(long, default_value_t = 100_000)]
        flows: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// TCP payloads as TLS: a Client Hello and a Server Hello (with random values) first,
        /// then application-data records, as most real traffic is (otherwise random bytes).
        #[arg(long)]
        tls: bool,
        /// Every flow a single unanswered SYN, as in a capture of a port scan or a SYN flood
        /// (one connection per packet).
        #[arg(long, conflicts_with = "tls")]
        scan: bool,
        /// Every flow a SYN answered by a RST/ACK, as in a capture of a scan of closed ports
        /// (one connection per two packets).
        #[arg(long, conflicts_with_all = ["tls", "scan"])]
        scan_closed: bool,
        /// The largest gap between packets, in nanoseconds (each gap uniform from 1 to it):
        /// the capture's span. The default, 20,000, gives about 100,000 packets a second; a
        /// day of a 4 GB set needs about 29,000,000.
        #[arg(long, default_value_t = 20_000)]
        max_gap_ns: u64,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Time `tracekit_wire::dissect` and etherparse's lax slicing over every packet of FILE.
    Dissect { file: PathBuf },
    /// What an index's parts hold, by kind of key: keys, postings and bytes (the size
    /// breakdown bench/index.sh prints).
    PartStats { index: PathBuf },
    /// Time analyze's reading of FILE in memory (page cache warm), step by step: dissection
    /// alone, the connection table, its finish, the clock-alignment signatures (best of 3).
    Table { file: PathBuf },
    /// Time analyze's comparison of two traces already read into tables (everything after the
    /// reading: clock estimate, pairing and comparing the connections, the text report), on
    /// one thread, best of 3.
    Compare { a: PathBuf, b: PathBuf },
    /// What reading two traces costs before any comparison, step by step, both at once (one
    /// thread each, each file mapped anew per round, as `tracekit info A B` and `tracekit
    /// analyze A B` read them), best of 3: the record walk alone (info's work), plus
    /// dissection, plus each TCP packet's connection found in a plain hash map (packets and
    /// bytes counted per connection: the least any per-connection analysis does), and analyze's
    /// own reading (connection table with its packet log, finished; no clock signatures).
    Floor { a: PathBuf, b: PathBuf },
    /// Time a full record walk over FILE (page cache warm): tracekit's reader against
    /// pcap-file 3.0's slice parsers over the same bytes.
    Read { file: PathBuf },
    /// The floor of one file per stream: create, in a fresh directory OUT, a file of the same
    /// size for every file in LIKE (a split's output), from a buffer already in memory, on
    /// THREADS threads, and time it. No reading, no dissection: what the kernel alone costs.
    Files {
        #[arg(long)]
        like: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Write fuzzing seeds for the dissector: the first packets of every capture under the
    /// given paths, each as its link type (2 bytes, little endian) followed by the packet.
    Seeds {
        #[arg(short, long)]
        out: PathBuf,
        paths: Vec<PathBuf>,
    },
    /// Write fuzzing seeds for analyze: every pair NAME-client.pcapng and NAME-server.pcapng in
    /// DIR as the two traces the `analyze` fuzz target reads (see fuzz/fuzz_targets/analyze.rs).
    PairSeeds {
        #[arg(short, long)]
        out: PathBuf,
        dir: PathBuf,
    },
}

/// Huge pages for large blocks (see `HugePageAlloc`).
#[global_allocator]
static ALLOC: tracekit_capture::HugePageAlloc = tracekit_capture::HugePageAlloc;

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Gen {
            size,
            flows,
            seed,
            tls,
            scan,
            scan_closed,
            max_gap_ns,
            out,
        } => generate(
            size,
            flows,
            seed,
            (tls, scan, scan_closed),
            max_gap_ns,
            &out,
        ),
        Command::Dissect { file } => dissect_bench(&file),
        Command::PartStats { index } => part_stats(&index),
        Command::Seeds { out, paths } => seeds(&out, &paths),
        Command::PairSeeds { out, dir } => pair_seeds(&out, &dir),
        Command::Read { file } => read_bench(&file),
        Command::Floor { a, b } => floor_bench(&a, &b),
        Command::Table { file } => table_bench(&file),
        Command::Compare { a, b } => compare_bench(&a, &b),
        Command::Files { like, threads, out } => files_floor(&like, threads, &out),
    }
}

fn part_stats(index: &std::path::Path) -> Result<()> {
    let mut totals = std::collections::BTreeMap::<u8, [u64; 4]>::new();
    let (mut files, mut bytes, mut blocks) = (0u64, 0u64, 0u64);
    for e in std::fs::read_dir(index.join("parts"))? {
        let data = std::fs::read(e?.path())?;
        bytes += data.len() as u64;
        files += 1;
        let part = tracekit_index::Part::decode(&data).map_err(anyhow::Error::msg)?;
        blocks += part.blocks.len() as u64;
        for (kind, figures) in part.stats() {
            let t = totals.entry(kind).or_default();
            for (t, f) in t.iter_mut().zip(figures) {
                *t += f;
            }
        }
    }
    let names = [
        "",
        "ipv4",
        "ipv6",
        "port",
        "proto",
        "vlan",
        "any-vlan",
        "version",
        "arp",
        "community",
        "fragment-rest",
        "opaque",
    ];
    println!(
        "{files} parts, {bytes} bytes, {blocks} blocks ({} bytes of block table)",
        blocks * 40
    );
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>12} {:>6}",
        "key kind", "keys", "postings", "records", "bytes", "%"
    );
    for (kind, [k, p, r, b]) in totals {
        let name = names.get(usize::from(kind)).copied().unwrap_or("?");
        println!(
            "{name:<14} {k:>12} {p:>12} {r:>12} {b:>12} {:>5.1}%",
            100.0 * b as f64 / bytes as f64
        );
    }
    Ok(())
}

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One conversation's state.
struct Flow {
    v6: bool,
    udp: bool,
    client: [u8; 16],
    server: [u8; 16],
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    /// 0 SYN, 1 SYN-ACK, 2 ACK, 3.. data, then FIN, FIN, ACK; UDP: request/response pairs.
    step: u32,
    data_packets: u32,
    /// A closed port: the SYN is answered by a RST/ACK, which ends the flow.
    closed: bool,
}

impl Flow {
    fn new(rng: &mut Rng, id: u32) -> Flow {
        let v6 = rng.below(5) == 0;
        let udp = rng.below(4) == 0;
        let mut client = [0u8; 16];
        let mut server = [0u8; 16];
        if v6 {
            client[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            server[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            client[8..16].copy_from_slice(&rng.next().to_be_bytes());
            server[15] = (id % 200) as u8 + 1;
        } else {
            // Documentation ranges: clients in 192.0.2.0/24 and 198.51.100.0/24, servers in 203.0.113.0/24.
            let net: [u8; 3] = if id.is_multiple_of(2) {
                [192, 0, 2]
            } else {
                [198, 51, 100]
            };
            client[..4].copy_from_slice(&[net[0], net[1], net[2], (id % 250) as u8 + 1]);
            server[..4].copy_from_slice(&[203, 0, 113, (rng.below(250) + 1) as u8]);
        }
        Flow {
            v6,
            udp,
            client,
            server,
            cport: 1024 + (rng.below(60000) as u16),
            sport: [443, 80, 53, 22, 8080, 5061][rng.below(6) as usize],
            cseq: rng.next() as u32,
            sseq: rng.next() as u32,
            step: 0,
            data_packets: 2 + rng.below(60) as u32,
            closed: false,
        }
    }
}

fn generate(
    size: u64,
    flow_count: u32,
    seed: u64,
    (tls, scan, closed): (bool, bool, bool),
    max_gap_ns: u64,
    out: &PathBuf,
) -> Result<()> {
    let mut rng = Rng(seed);
    let mut pool = vec![0u8; 1 << 16];
    for chunk in pool.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 22, file),
        LinkType::ETHERNET,
        Precision::Nano,
        262_144,
    )?;
    let mut flows: Vec<Flow> = (0..flow_count).map(|i| Flow::new(&mut rng, i)).collect();
    let mut next_id = flow_count;
    let mut ts: i64 = 1_700_000_000 * 1_000_000_000;
    let mut written = 24u64;
    let mut frame = Vec::with_capacity(2048);
    let mut packets = 0u64;
    let started = Instant::now();
    while written < size {
        let i = rng.below(u64::from(flow_count)) as usize;
        let f = &mut flows[i];
        f.udp &= !(scan || closed);
        f.closed = closed;
        frame.clear();
        let done = build_packet(f, &mut rng, &pool, tls, &mut frame) || scan;
        ts += 1 + rng.below(max_gap_ns.max(1)) as i64;
        w.write(Timestamp(ts), &frame, frame.len() as u32)?;
        written += 16 + frame.len() as u64;
        packets += 1;
        if done {
            flows[i] = Flow::new(&mut rng, next_id);
            next_id += 1;
        }
    }
    w.into_inner()?.flush()?;
    eprintln!(
        "wrote {} ({written} bytes, {packets} packets, {next_id} flows) in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const RST: u8 = 0x04;

/// Appends the flow's next packet to `frame`; returns true when the flow is finished.
#[allow(clippy::too_many_lines)] // one packet, layer by layer, reads best in one place
fn build_packet(f: &mut Flow, rng: &mut Rng, pool: &[u8], tls: bool, frame: &mut Vec<u8>) -> bool {
    let step = f.step;
    f.step += 1;
    let from_client;
    let mut payload_len = 0usize;
    let mut flags = ACK;
    let mut options: &[u8] = &[];
    if f.udp {
        from_client = step.is_multiple_of(2);
        payload_len = if from_client {
            30 + rng.below(60) as usize
        } else {
            60 + rng.below(400) as usize
        };
    } else {
        let data_end = 3 + f.data_packets;
        from_client = match step {
            0 | 2 => true,
            1 => false,
            s if s < data_end => s % 3 == 0,
            s => s == data_end + 1,
        };
        if step == 0 {
            flags = SYN;
            options = &[
                2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
            ];
        } else if step == 1 && f.closed {
            flags = RST | ACK;
        } else if step == 1 {
            flags = SYN | ACK;
            options = &[
                2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1, 1, 3, 3, 7,
            ];
        } else if step < data_end && step > 2 {
            flags = PSH | ACK;
            payload_len = if tls && step == 3 {
                // A Client Hello of the size most browsers and OpenSSL send.
                517
            } else if from_client {
                40 + rng.below(500) as usize
            } else {
                [1448, 1448, 1448, 600, 100][rng.below(5) as usize]
            };
        } else if step >= data_end && step < data_end + 2 {
            flags = FIN | ACK;
        }
    }
    let (src, dst, sport, dport) = if from_client {
        (f.client, f.server, f.cport, f.sport)
    } else {
        (f.server, f.client, f.sport, f.cport)
    };
    let l4_len = if f.udp { 8 } else { 20 + options.len() } + payload_len;
    // Ethernet
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, if from_client { 2 } else { 1 }]);
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, if from_client { 1 } else { 2 }]);
    frame.extend_from_slice(if f.v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let ip_at = frame.len();
    let proto = if f.udp { 17 } else { 6 };
    if f.v6 {
        frame.extend_from_slice(&[0x60, 0, 0, 0]);
        frame.extend_from_slice(&(l4_len as u16).to_be_bytes());
        frame.extend_from_slice(&[proto, 64]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
    } else {
        let id = rng.next() as u16;
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&[0x40, 0, if from_client { 64 } else { 57 }, proto, 0, 0]);
        frame.extend_from_slice(&src[..4]);
        frame.extend_from_slice(&dst[..4]);
        let c = checksum::checksum(&frame[ip_at..ip_at + 20]);
        frame[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
    }
    let l4_at = frame.len();
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    if f.udp {
        frame.extend_from_slice(&(l4_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
    } else {
        let (seq, ack) = if from_client {
            (f.cseq, f.sseq)
        } else {
            (f.sseq, f.cseq)
        };
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&(if flags == SYN { 0 } else { ack }).to_be_bytes());
        frame.push((((20 + options.len()) / 4) << 4) as u8);
        frame.push(flags);
        frame.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        frame.extend_from_slice(options);
        let advance = payload_len as u32 + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            f.cseq = f.cseq.wrapping_add(advance);
        } else {
            f.sseq = f.sseq.wrapping_add(advance);
        }
    }
    let start = rng.below((pool.len() - payload_len) as u64) as usize;
    let payload_at = frame.len();
    frame.extend_from_slice(&pool[start..start + payload_len]);
    if tls && !f.udp && payload_len > 0 {
        tls_header(&mut frame[payload_at..], step, rng);
    }
    let pseudo = if f.v6 {
        checksum::pseudo_header_v6(&src, &dst, proto, l4_len as u32)
    } else {
        checksum::pseudo_header_v4(
            src[..4].try_into().unwrap(),
            dst[..4].try_into().unwrap(),
            proto,
            l4_len as u16,
        )
    };
    let c = !checksum::fold(checksum::combine(&[pseudo, checksum::sum(&frame[l4_at..])]));
    let at = l4_at + if f.udp { 6 } else { 16 };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    if f.udp {
        step >= 5
    } else if f.closed {
        step >= 1
    } else {
        step >= 3 + f.data_packets + 2
    }
}

/// Writes a TLS record header over the start of a TCP payload: at step 3 (the client's first
/// data) a Client Hello, at step 4 (the server's first) a Server Hello, each with a random value;
/// afterwards application data. Each record fills its segment.
fn tls_header(payload: &mut [u8], step: u32, rng: &mut Rng) {
    let record = (payload.len() - 5) as u16;
    let hello = match step {
        3 => Some((0x01, 0x0301)),
        4 => Some((0x02, 0x0303)),
        _ => None,
    };
    let Some((kind, version)) = hello.filter(|_| payload.len() >= 43) else {
        payload[..5].copy_from_slice(&[0x17, 0x03, 0x03, (record >> 8) as u8, record as u8]);
        return;
    };
    let body = (payload.len() - 9) as u32;
    payload[..5].copy_from_slice(&[
        0x16,
        (version >> 8) as u8,
        version as u8,
        (record >> 8) as u8,
        record as u8,
    ]);
    payload[5..11].copy_from_slice(&[
        kind,
        (body >> 16) as u8,
        (body >> 8) as u8,
        body as u8,
        3,
        3,
    ]);
    for chunk in payload[11..43].chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
}

fn dissect_bench(path: &PathBuf) -> Result<()> {
    let capture = Capture::open(path)?;
    let records: Vec<_> = capture.records().map_while(Result::ok).collect();
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    for round in 0..2 {
        let t = Instant::now();
        let mut ports = 0u64;
        for r in &records {
            let l = tracekit_wire::dissect(r.link.0, r.data);
            if let Some((s, d)) = l.transport().and_then(|t| t.ports(r.data)) {
                ports = ports.wrapping_add(u64::from(s ^ d));
            }
        }
        let ours = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut ports2 = 0u64;
        for r in &records {
            if let Ok(p) = etherparse::LaxSlicedPacket::from_ethernet(r.data) {
                let sd = match p.transport {
                    Some(etherparse::TransportSlice::Tcp(t)) => {
                        Some((t.source_port(), t.destination_port()))
                    }
                    Some(etherparse::TransportSlice::Udp(u)) => {
                        Some((u.source_port(), u.destination_port()))
                    }
                    _ => None,
                };
                if let Some((s, d)) = sd {
                    ports2 = ports2.wrapping_add(u64::from(s ^ d));
                }
            }
        }
        let theirs = t.elapsed().as_secs_f64();
        if round == 1 {
            println!(
                "dissect: {} packets, {:.0} MB: tracekit-wire {:.1} ns/packet, etherparse {:.1} ns/packet, ratio {:.2}× (same ports: {})",
                records.len(),
                bytes as f64 / 1e6,
                ours * 1e9 / records.len() as f64,
                theirs * 1e9 / records.len() as f64,
                theirs / ours,
                ports == ports2
            );
        }
    }
    Ok(())
}

fn files_floor(like: &std::path::Path, threads: usize, out: &std::path::Path) -> Result<()> {
    let mut sizes = Vec::new();
    for e in std::fs::read_dir(like).with_context(|| like.display().to_string())? {
        let e = e?;
        if e.file_type()?.is_file() {
            sizes.push(usize::try_from(e.metadata()?.len())?);
        }
    }
    sizes.sort_unstable();
    let largest = sizes.last().copied().unwrap_or(0);
    let buffer = vec![0xa5u8; largest];
    std::fs::create_dir(out).with_context(|| out.display().to_string())?;
    let threads = threads.max(1);
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (sizes, buffer) = (&sizes, &buffer);
                scope.spawn(move || -> Result<()> {
                    for (i, &n) in sizes.iter().enumerate().skip(t).step_by(threads) {
                        std::fs::write(out.join(format!("{i:07}")), &buffer[..n])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a writer thread panicked")?;
        }
        Ok(())
    })?;
    let took = start.elapsed().as_secs_f64();
    let total: usize = sizes.iter().sum();
    println!(
        "{} files, {:.2} GB, {threads} threads: {took:.2} s",
        sizes.len(),
        total as f64 / 1e9
    );
    Ok(())
}

fn seeds(out: &std::path::Path, paths: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            for e in std::fs::read_dir(p)? {
                files.push(e?.path());
            }
        } else {
            files.push(p.clone());
        }
    }
    files.sort();
    let mut n = 0;
    for f in files {
        let Ok(capture) = Capture::open(&f) else {
            continue;
        };
        for (i, r) in capture.records().map_while(Result::ok).take(8).enumerate() {
            let mut seed = r.link.0.to_le_bytes().to_vec();
            seed.extend_from_slice(r.data);
            let name = format!(
                "{}-{i}",
                f.file_name().unwrap_or_default().to_string_lossy()
            );
            std::fs::write(out.join(name), seed)?;
            n += 1;
        }
    }
    eprintln!("wrote {n} seeds to {}", out.display());
    Ok(())
}

fn pair_seeds(out: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    /// Bytes kept of each packet: the headers and the start of a TLS hello with its random.
    const KEEP: usize = 256;
    std::fs::create_dir_all(out)?;
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let client = e?.path();
        let name = client.file_name().unwrap_or_default().to_string_lossy();
        let Some(stem) = name.strip_suffix("-client.pcapng") else {
            continue;
        };
        let server = dir.join(format!("{stem}-server.pcapng"));
        let mut packets = Vec::new();
        for (side, path) in [(1u8, &client), (2u8, &server)] {
            let capture = Capture::open(path)?;
            for r in capture.records().map_while(Result::ok) {
                if r.link.0 == 1 {
                    packets.push((r.ts.0, side, r.data[..r.data.len().min(KEEP)].to_vec()));
                }
            }
        }
        packets.sort_by_key(|p| (p.0, p.1));
        let mut seed = Vec::new();
        let mut last = packets.first().map_or(0, |p| p.0);
        for (ts, side, data) in packets {
            let step = ((ts - last) / 100_000).clamp(0, 63) as u8;
            last = ts;
            seed.push(step << 2 | side);
            seed.extend_from_slice(&(data.len() as u16).to_le_bytes());
            seed.extend_from_slice(&data);
        }
        std::fs::write(out.join(stem), seed)?;
        n += 1;
    }
    eprintln!("wrote {n} seeds to {}", out.display());
    Ok(())
}

/// Best of three runs of `f`, in seconds.
fn best_of_3(mut f: impl FnMut() -> u64) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut check = 0;
    for _ in 0..3 {
        let t = Instant::now();
        check = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, check)
}

fn read_bench(path: &PathBuf) -> Result<()> {
    let capture = Capture::open(path)?;
    let data = capture.data();
    let (ours, n1) = best_of_3(|| {
        capture
            .records()
            .map_while(Result::ok)
            .fold(0u64, |acc, r| {
                acc.wrapping_add(r.data.len() as u64 ^ r.ts.0 as u64)
            })
    });
    let (theirs, n2) = best_of_3(|| {
        let mut acc = 0u64;
        if capture.format().name() == "pcap" {
            let (mut rest, parser) = pcap_file::pcap::PcapParser::new(data).expect("pcap header");
            while !rest.is_empty() {
                let Ok((next, p)) = parser.next_packet(rest) else {
                    break;
                };
                acc = acc.wrapping_add(p.data.len() as u64 ^ p.timestamp.as_nanos() as u64);
                rest = next;
            }
        } else {
            let (mut rest, mut parser) =
                pcap_file::pcapng::PcapNgParser::new(data).expect("pcapng header");
            while !rest.is_empty() {
                let Ok((next, block)) = parser.next_block(rest) else {
                    break;
                };
                if let pcap_file::pcapng::Block::EnhancedPacket(p) = block {
                    acc = acc.wrapping_add(p.data.len() as u64 ^ p.timestamp.as_nanos() as u64);
                }
                rest = next;
            }
        }
        acc
    });
    let gb = data.len() as f64 / 1e9;
    println!(
        "read {}: tracekit-capture {ours:.3} s ({:.1} GB/s), pcap-file 3.0 {theirs:.3} s ({:.1} GB/s), ratio {:.1}x (same result: {})",
        path.display(),
        gb / ours,
        gb / theirs,
        theirs / ours,
        n1 == n2
    );
    Ok(())
}

/// Hands the packets of `capture` to `each` as analyze does: in batches of dissected packets,
/// each batch overwritten in place.
fn batches(capture: &Capture, each: &mut dyn FnMut(&[tracekit_analyze::Packet])) {
    let mut batch = tracekit_analyze::Batch::default();
    for (n, r) in capture.records().map_while(Result::ok).enumerate() {
        if let Some(full) = batch.push(n as u64 + 1, r.ts.0, r.link.0, r.data) {
            each(full);
        }
    }
    each(batch.rest());
}

#[allow(clippy::many_single_char_names)]
fn floor_bench(a: &Path, b: &Path) -> Result<()> {
    use rustc_hash::FxHashMap;
    use tracekit_wire::TransportKind;
    type Step = dyn Fn(&Capture) -> u64 + Sync;
    // Each round maps both files anew (the mapping's page faults are part of every reading).
    let both = |step: &Step| -> Result<(f64, u64)> {
        let mut best = f64::MAX;
        let mut check = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let (x, y) = rayon::join(
                || Capture::open(a).map(|c| step(&c)),
                || Capture::open(b).map(|c| step(&c)),
            );
            check = x? ^ y?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok((best, check))
    };
    let walk: &Step = &|c| {
        c.records()
            .map_while(Result::ok)
            .fold(0u64, |acc, r| acc.wrapping_add(r.data.len() as u64))
    };
    let dissect: &Step = &|c| {
        let mut tcp = 0u64;
        batches(c, &mut |b| {
            tcp += b
                .iter()
                .filter(|p| {
                    p.layers
                        .transport()
                        .is_some_and(|t| t.kind == TransportKind::Tcp)
                })
                .count() as u64;
        });
        tcp
    };
    let flows: &Step = &|c| {
        let mut conns: FxHashMap<tracekit_wire::FlowKey, (u64, u64)> = FxHashMap::default();
        batches(c, &mut |b| {
            for p in b {
                if let Some(ip) = p.layers.inner_ip()
                    && let Some(t) = ip.transport.filter(|t| t.kind == TransportKind::Tcp)
                {
                    let e = conns.entry(ip.flow(p.data).0).or_default();
                    e.0 += 1;
                    e.1 += t.payload.len() as u64;
                }
            }
        });
        conns.len() as u64
    };
    let table: &Step = &|c| {
        let mut table = tracekit_analyze::TableBuilder::new(None);
        batches(c, &mut |b| table.add_batch(b));
        table.finish().len() as u64
    };
    let steps = [
        ("record walk (tracekit info's work)", walk),
        ("+ dissection", dissect),
        ("+ each TCP packet's connection in a hash map", flows),
        ("analyze's reading (table, packet log, finish)", table),
    ];
    let mut first = None;
    println!(
        "{:<48} {:>8} {:>8}",
        "both traces at once, best of 3", "seconds", "vs walk"
    );
    for (name, step) in steps {
        let (t, _) = both(step)?;
        let base = *first.get_or_insert(t);
        println!("{name:<48} {t:8.3} {:7.2}x", t / base);
    }
    Ok(())
}

fn compare_bench(a: &PathBuf, b: &PathBuf) -> Result<()> {
    use tracekit_analyze::{Input, TableBuilder};
    let read = |path: &PathBuf| -> Result<_> {
        let capture = Capture::open(path)?;
        let mut table = TableBuilder::new(None);
        let mut align = tracekit_merge::align::Trace::new(100_000);
        batches(&capture, &mut |packets| {
            table.add_batch(packets);
            for p in packets {
                align.add_dissected(p.frame, p.ts, &p.layers, p.data);
            }
        });
        align.finish();
        Ok((table.finish(), align))
    };
    let ((ta, mut la), (tb, mut lb)) = (read(a)?, read(b)?);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(f64::MAX, f64::min);
    let mut pairs = 0;
    let estimate = best(&mut || {
        let t = Instant::now();
        std::hint::black_box(tracekit_merge::align::estimate(&mut la, &mut lb));
        t.elapsed().as_secs_f64()
    });
    let alignment = tracekit_merge::align::estimate(&mut la, &mut lb);
    // As `tracekit analyze` without --json or --all: the first connections in full.
    let analyze = || {
        tracekit_analyze::analyze_scoped(
            Input {
                name: "a",
                table: &ta,
            },
            Input {
                name: "b",
                table: &tb,
            },
            alignment.as_ref(),
            tracekit_analyze::Scope {
                full: tracekit_report::DETAILED,
                filter: None,
            },
        )
    };
    let compare = best(&mut || {
        let t = Instant::now();
        let analysis = one.install(analyze);
        let took = t.elapsed().as_secs_f64();
        pairs = analysis.rows.len();
        took
    });
    let analysis = one.install(analyze);
    let text = best(&mut || {
        let t = Instant::now();
        let text = one.install(|| tracekit_report::text(&analysis, false));
        std::hint::black_box(text);
        t.elapsed().as_secs_f64()
    });
    println!(
        "compare: {} and {} connections, {pairs} pairs; clock estimate {estimate:.3} s, compare {compare:.3} s ({:.1} µs/pair), text {text:.3} s (one thread)",
        ta.len(),
        tb.len(),
        compare * 1e6 / pairs.max(1) as f64,
    );
    Ok(())
}

fn table_bench(path: &PathBuf) -> Result<()> {
    use tracekit_analyze::{Packet, TableBuilder};
    let capture = Capture::open(path)?;
    let count = capture.records().map_while(Result::ok).count();
    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(f64::MAX, f64::min);
    // Each round walks the file as analyze does (the reader prefetches ahead of the walk).
    let walk = |each: &mut dyn FnMut(&[Packet])| batches(&capture, each);
    let dissect = best(&mut || {
        let t = Instant::now();
        let mut n = 0usize;
        walk(&mut |b| n += b.len());
        assert_eq!(n, count);
        t.elapsed().as_secs_f64()
    });
    let mut finish = f64::MAX;
    let mut conns = 0;
    let build = best(&mut || {
        let t = Instant::now();
        let mut table = TableBuilder::new(None);
        walk(&mut |b| table.add_batch(b));
        let built = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let table = table.finish();
        finish = finish.min(t.elapsed().as_secs_f64());
        conns = table.len();
        built
    });
    let align = best(&mut || {
        let t = Instant::now();
        // As many packets as analyze takes for its clock estimate.
        let mut trace = tracekit_merge::align::Trace::new(100_000);
        walk(&mut |b| {
            for p in b {
                trace.add_dissected(p.frame, p.ts, &p.layers, p.data);
            }
        });
        trace.finish();
        t.elapsed().as_secs_f64()
    });
    let per = |s: f64| s * 1e9 / count as f64;
    println!(
        "table: {count} packets, {conns} connections; walk and dissect {dissect:.3} s ({:.0} ns/packet), table {build:.3} s (+{:.0} ns/packet), finish {finish:.3} s, align (100k packets) {align:.3} s (+{:.0} ns/packet)",
        per(dissect),
        per(build - dissect),
        per(align - dissect),
    );
    Ok(())
}
