//! Format cases built byte by byte, truncation and corruption sweeps, and `pcap-file` as a
//! second reader of what our writers produce.
#![allow(
    clippy::case_sensitive_file_extension_comparisons,
    clippy::too_many_lines,
    clippy::many_single_char_names
)]

use tracekit_capture::pcapng::{self, OptionsBuilder, opt};
use tracekit_capture::writer::{PacketTime, PcapWriter, PcapngWriter, Precision};
use tracekit_capture::{Capture, LinkType, OpenError, ReadErrorKind, Timestamp, TsResolution};
use tracekit_testutil::testdata_dir;

fn u16b(v: u16, be: bool) -> [u8; 2] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}
fn u32b(v: u32, be: bool) -> [u8; 4] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

/// A classic pcap file with the given magic, byte order and version, and records (secs, frac, data).
fn pcap_file(
    magic: u32,
    be: bool,
    version: (u16, u16),
    link: u32,
    records: &[(u32, u32, &[u8], u32)],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(u32b(magic, be));
    f.extend(u16b(version.0, be));
    f.extend(u16b(version.1, be));
    f.extend([0u8; 8]);
    f.extend(u32b(65535, be));
    f.extend(u32b(link, be));
    let modified = magic == 0xa1b2_cd34;
    for (secs, frac, data, orig) in records {
        f.extend(u32b(*secs, be));
        f.extend(u32b(*frac, be));
        f.extend(u32b(data.len() as u32, be));
        f.extend(u32b(*orig, be));
        if modified {
            f.extend([0u8; 8]);
        }
        f.extend_from_slice(data);
    }
    f
}

fn read_ts(data: Vec<u8>) -> Vec<(i64, usize, u32)> {
    let c = Capture::from_vec("mem", data).unwrap();
    c.records()
        .map(|r| r.unwrap())
        .map(|r| (r.ts.0, r.data.len(), r.orig_len))
        .collect()
}

#[test]
fn pcap_all_magics_and_byte_orders() {
    for be in [false, true] {
        let us = pcap_file(0xa1b2_c3d4, be, (2, 4), 1, &[(10, 999_999, b"abcd", 60)]);
        assert_eq!(read_ts(us), [(10_999_999_000, 4, 60)]);
        let ns = pcap_file(
            0xa1b2_3c4d,
            be,
            (2, 4),
            1,
            &[(10, 999_999_999, b"abcd", 60)],
        );
        assert_eq!(read_ts(ns), [(10_999_999_999, 4, 60)]);
        let modified = pcap_file(
            0xa1b2_cd34,
            be,
            (2, 4),
            1,
            &[(1, 5, b"xy", 2), (2, 6, b"z", 1)],
        );
        assert_eq!(
            read_ts(modified),
            [(1_000_005_000, 2, 2), (2_000_006_000, 1, 1)]
        );
    }
}

#[test]
fn pcap_before_2_3_has_the_lengths_swapped() {
    // Written as (len, caplen): 4 bytes captured of 60.
    let mut f = pcap_file(0xa1b2_c3d4, false, (2, 2), 1, &[(1, 0, b"abcd", 4)]);
    f[24 + 8..24 + 12].copy_from_slice(&60u32.to_le_bytes());
    f[24 + 12..24 + 16].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(read_ts(f), [(1_000_000_000, 4, 60)]);
}

#[test]
fn pcap_fcs_bits_and_reserved_bits_in_the_link_type() {
    let f = pcap_file(0xa1b2_c3d4, false, (2, 4), 1 | 0x0400_0000 | (2 << 28), &[]);
    let c = Capture::from_vec("mem", f).unwrap();
    let tracekit_capture::Format::Pcap(h) = c.format() else {
        panic!()
    };
    assert_eq!((h.link, h.fcs_len), (LinkType::ETHERNET, Some(4)));

    let bad = pcap_file(0xa1b2_c3d4, false, (2, 4), 1 | 0x0030_0000, &[]);
    let err = Capture::from_vec("mem", bad).unwrap_err();
    assert!(matches!(err, OpenError::BadHeader { .. }), "{err}");
    let v1 = pcap_file(0xa1b2_c3d4, false, (1, 4), 1, &[]);
    assert!(
        Capture::from_vec("mem", v1)
            .unwrap_err()
            .to_string()
            .contains("version 1.4")
    );
}

#[test]
fn pcap_lying_length_is_an_error_at_its_offset() {
    let mut f = pcap_file(
        0xa1b2_c3d4,
        false,
        (2, 4),
        1,
        &[(1, 0, b"abcd", 4), (2, 0, b"efgh", 4)],
    );
    let second = 24 + 16 + 4;
    f[second + 8..second + 12].copy_from_slice(&0x00ff_0000u32.to_le_bytes());
    let c = Capture::from_vec("mem", f).unwrap();
    let items: Vec<_> = c.records().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    let e = items[1].as_ref().unwrap_err();
    assert_eq!((e.record, e.offset), (1, second as u64));
    assert!(matches!(e.kind, ReadErrorKind::OversizedRecord { .. }));
}

/// Builds a pcapng block in either byte order.
fn block(btype: u32, body: &[u8], be: bool) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = 12 + body.len() as u32;
    let mut b = u32b(btype, be).to_vec();
    b.extend(u32b(len, be));
    b.extend(body);
    b.extend(u32b(len, be));
    b
}

fn option(code: u16, value: &[u8], be: bool) -> Vec<u8> {
    let mut o = u16b(code, be).to_vec();
    o.extend(u16b(value.len() as u16, be));
    o.extend_from_slice(value);
    o.resize(o.len().div_ceil(4) * 4, 0);
    o
}

fn shb(be: bool, options: &[u8]) -> Vec<u8> {
    let mut body = u32b(0x1A2B_3C4D, be).to_vec();
    body.extend(u16b(1, be));
    body.extend(u16b(0, be));
    body.extend([0xff; 8]);
    body.extend_from_slice(options);
    block(0x0A0D_0D0A, &body, be)
}

fn idb(link: u16, snaplen: u32, options: &[u8], be: bool) -> Vec<u8> {
    let mut body = u16b(link, be).to_vec();
    body.extend([0, 0]);
    body.extend(u32b(snaplen, be));
    body.extend_from_slice(options);
    block(1, &body, be)
}

fn epb(iface: u32, ts: u64, data: &[u8], orig: u32, options: &[u8], be: bool) -> Vec<u8> {
    let mut body = u32b(iface, be).to_vec();
    body.extend(u32b((ts >> 32) as u32, be));
    body.extend(u32b(ts as u32, be));
    body.extend(u32b(data.len() as u32, be));
    body.extend(u32b(orig, be));
    body.extend_from_slice(data);
    body.resize(body.len().div_ceil(4) * 4, 0);
    body.extend_from_slice(options);
    block(6, &body, be)
}

#[test]
fn pcapng_sections_of_both_byte_orders_resolutions_and_offsets() {
    let end = [0u8; 4];
    let mut f = Vec::new();
    // Section 0, big endian: a binary-resolution interface with a comment on its packet.
    f.extend(shb(
        true,
        &[option(opt::SHB_OS, b"BE host", true), end.to_vec()].concat(),
    ));
    f.extend(idb(
        1,
        0,
        &[
            option(opt::IF_TSRESOL, &[0x8a], true),
            option(opt::IF_NAME, b"be0", true),
            end.to_vec(),
        ]
        .concat(),
        true,
    ));
    let flags = u32b(0x0000_0001, true);
    f.extend(epb(
        0,
        3 * 1024 + 512,
        b"pkt0",
        4,
        &[
            option(1, b"hello", true),
            option(opt::EPB_FLAGS, &flags, true),
            end.to_vec(),
        ]
        .concat(),
        true,
    ));
    // Section 1, little endian: decimal 10^-9 with an offset of 100 s, an SPB, an obsolete PB, an ISB.
    f.extend(shb(false, &[]));
    f.extend(idb(
        101,
        3,
        &[
            option(opt::IF_TSRESOL, &[9], false),
            option(opt::IF_TSOFFSET, &100u64.to_le_bytes(), false),
            end.to_vec(),
        ]
        .concat(),
        false,
    ));
    f.extend(epb(0, 5, b"pkt1", 4, &[], false));
    f.extend(block(
        3,
        &[&10u32.to_le_bytes()[..], b"abcdefghij"].concat(),
        false,
    ));
    let mut pb = 0u16.to_le_bytes().to_vec();
    pb.extend(0u16.to_le_bytes());
    pb.extend(0u32.to_le_bytes());
    pb.extend(7u32.to_le_bytes());
    pb.extend(2u32.to_le_bytes());
    pb.extend(2u32.to_le_bytes());
    pb.extend(b"pb");
    f.extend(block(2, &pb, false));
    let mut isb = 0u32.to_le_bytes().to_vec();
    isb.extend([0u8; 8]);
    isb.extend(option(opt::ISB_IFDROP, &9u64.to_le_bytes(), false));
    isb.extend(end);
    f.extend(block(5, &isb, false));

    let c = Capture::from_vec("mem", f).unwrap();
    let mut records = c.records();
    let recs: Vec<_> = records.by_ref().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0].ts, Timestamp(3_500_000_000), "3.5 s in 2^-10 units");
    assert_eq!(recs[0].options.comments().collect::<Vec<_>>(), ["hello"]);
    assert_eq!(
        recs[0].options.u32_value(opt::EPB_FLAGS),
        Some(1),
        "read in the section's byte order"
    );
    assert_eq!(
        (recs[1].interface, recs[1].ts),
        (1, Timestamp(100_000_000_005))
    );
    assert_eq!(
        (recs[2].data, recs[2].orig_len, recs[2].has_ts),
        (&b"abc"[..], 10, false),
        "SPB cut to the snaplen"
    );
    assert_eq!(
        (recs[3].data, recs[3].ts),
        (&b"pb"[..], Timestamp(100_000_000_007))
    );
    let ifaces = records.interfaces();
    assert_eq!(ifaces[0].name.as_deref(), Some("be0"));
    assert_eq!(ifaces[0].resolution, TsResolution::Binary(10));
    assert_eq!(
        (ifaces[1].section, ifaces[1].tsoffset, ifaces[1].dropped),
        (1, 100, Some(9))
    );
    assert_eq!(records.problems().1, 0);

    // Rewritten as one little-endian section, with the comments and flags converted.
    let mut out = Vec::new();
    let mut w = PcapngWriter::new(&mut out, &[]).unwrap();
    for i in ifaces {
        w.add_interface_like(i).unwrap();
    }
    for r in &recs {
        w.write_record(r.interface, r, true).unwrap();
    }
    w.into_inner().unwrap();
    let again = Capture::from_vec("mem", out).unwrap();
    let back: Vec<_> = again.records().map(Result::unwrap).collect();
    assert_eq!(back[0].ts, recs[0].ts);
    assert_eq!(back[0].options.u32_value(opt::EPB_FLAGS), Some(1));
    assert_eq!(back[0].options.comments().collect::<Vec<_>>(), ["hello"]);
    assert_eq!(back[1].ts, recs[1].ts);
}

#[test]
fn pcapng_damage_is_located_and_earlier_packets_kept() {
    let end = [0u8; 4];
    let good = [
        shb(false, &[]),
        idb(1, 0, &[], false),
        epb(0, 1, b"ok", 2, &[], false),
    ]
    .concat();

    let unknown_iface = [good.clone(), epb(5, 2, b"bad", 3, &[], false)].concat();
    let c = Capture::from_vec("mem", unknown_iface).unwrap();
    let items: Vec<_> = c.records().collect();
    let e = items[1].as_ref().unwrap_err();
    assert_eq!((e.record, e.offset), (1, good.len() as u64));
    assert!(matches!(
        e.kind,
        ReadErrorKind::UnknownInterface {
            interface: 5,
            defined: 1
        }
    ));

    // A block claiming more bytes than the file has.
    let mut lying = [good.clone(), epb(0, 2, b"next", 4, &[], false)].concat();
    let at = good.len() + 4;
    lying[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let c = Capture::from_vec("mem", lying).unwrap();
    let items: Vec<_> = c.records().collect();
    assert_eq!(items.len(), 2);
    assert!(matches!(
        items[1].as_ref().unwrap_err().kind,
        ReadErrorKind::TruncatedData { .. }
    ));

    // An option running past its block: reported, and the packets still read.
    let mut bad_opt = option(opt::IF_NAME, b"eth0", false);
    bad_opt[2..4].copy_from_slice(&200u16.to_le_bytes());
    let f = [
        shb(false, &[]),
        idb(1, 0, &[bad_opt, end.to_vec()].concat(), false),
        epb(0, 1, b"ok", 2, &[], false),
    ]
    .concat();
    let c = Capture::from_vec("mem", f).unwrap();
    let mut r = c.records();
    assert_eq!(r.by_ref().flatten().count(), 1);
    let (problems, n) = r.problems();
    assert_eq!(n, 1);
    assert!(
        problems[0].message.contains("option 2 claims 200 bytes"),
        "{}",
        problems[0]
    );
}

/// Every prefix of every testdata capture: no panic; a cut inside a record is an error, and
/// the records before it are delivered unchanged.
#[test]
fn truncation_sweep_over_testdata() {
    for name in ["handshake.pcap", "handshake-ns.pcap", "mixed.pcapng"] {
        let full = std::fs::read(testdata_dir().join(name)).unwrap();
        let whole: Vec<(i64, Vec<u8>)> = {
            let c = Capture::from_vec("mem", full.clone()).unwrap();
            c.records()
                .map(Result::unwrap)
                .map(|r| (r.ts.0, r.data.to_vec()))
                .collect()
        };
        // Where a cut leaves a valid file: after the pcap header or a whole record or block.
        let ends: Vec<u64> = {
            let c = Capture::from_vec("mem", full.clone()).unwrap();
            if name.ends_with(".pcapng") {
                let mut r = pcapng::Reader::new(c.data());
                let mut ends = vec![0];
                while r.next_block().is_some() {
                    ends.push(r.position());
                }
                ends
            } else {
                let mut r = c.records();
                let mut ends = vec![r.position()];
                while r.next().is_some() {
                    ends.push(r.position());
                }
                ends
            }
        };
        for len in 0..full.len() {
            let Ok(c) = Capture::from_vec("mem", full[..len].to_vec()) else {
                continue;
            };
            let items: Vec<_> = c.records().collect();
            let good: Vec<(i64, Vec<u8>)> = items
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|r| (r.ts.0, r.data.to_vec()))
                .collect();
            assert_eq!(good[..], whole[..good.len()], "{name} cut at {len}");
            let at_boundary = ends.contains(&(len as u64));
            assert_eq!(
                items.last().is_some_and(Result::is_err),
                !at_boundary && len > ends[0] as usize,
                "{name} cut at {len}"
            );
        }
    }
}

/// Every 32-bit field of every testdata capture overwritten with extreme values: no panic,
/// and no record larger than the file.
#[test]
fn corruption_sweep_over_testdata() {
    for name in ["handshake.pcap", "mixed.pcapng"] {
        let full = std::fs::read(testdata_dir().join(name)).unwrap();
        for at in (0..full.len() - 4).step_by(2) {
            for value in [0u32, 1, 0x7fff_ffff, 0xffff_ffff, 0x0000_ffff, 12] {
                let mut f = full.clone();
                f[at..at + 4].copy_from_slice(&value.to_le_bytes());
                let Ok(c) = Capture::from_vec("mem", f) else {
                    continue;
                };
                let mut n = 0;
                for r in c.records() {
                    match r {
                        Ok(r) => assert!(r.data.len() <= full.len()),
                        Err(e) => assert!(!e.to_string().is_empty()),
                    }
                    n += 1;
                    assert!(n < 10_000, "{name}: runaway walk with {value:#x} at {at}");
                }
            }
        }
    }
}

/// `pcap-file` 3.0, an independent reader, reads our writers' output identically.
#[test]
fn pcap_file_reads_what_we_write() {
    let packets: [(i64, &[u8]); 3] = [
        (1_700_000_000_123_456_789, b"first"),
        (1_700_000_001_000_000_001, b"second!"),
        (1_700_000_002_500_000_000, b"3"),
    ];
    let mut pcap = Vec::new();
    let mut w = PcapWriter::new(&mut pcap, LinkType::ETHERNET, Precision::Nano, 65535).unwrap();
    for (ts, data) in packets {
        w.write(Timestamp(ts), data, data.len() as u32 + 10)
            .unwrap();
    }
    w.into_inner().unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(&pcap[..]).unwrap();
    for (ts, data) in packets {
        let p = reader.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp.as_nanos() as i64, ts);
        assert_eq!((&p.data[..], p.orig_len), (data, data.len() as u32 + 10));
    }
    assert!(reader.next_packet().is_none());

    let mut ng = Vec::new();
    let shb_opts = OptionsBuilder::new()
        .add(opt::SHB_USERAPPL, b"tracekit test")
        .finish();
    let mut w = PcapngWriter::new(&mut ng, &shb_opts).unwrap();
    let iface = w
        .add_interface(
            LinkType::ETHERNET,
            0,
            &tracekit_capture::writer::interface_options(Some("eth0"), TsResolution::NANO),
        )
        .unwrap();
    let comment = OptionsBuilder::new()
        .add(pcapng::opt::COMMENT, b"a comment")
        .finish();
    for (ts, data) in packets {
        w.write_packet(
            iface,
            PacketTime::Nanos(Timestamp(ts)),
            data,
            data.len() as u32,
            &comment,
        )
        .unwrap();
    }
    w.into_inner().unwrap();
    let mut reader = pcap_file::pcapng::PcapNgReader::new(&ng[..]).unwrap();
    let mut seen = Vec::new();
    while let Some(block) = reader.next_block() {
        if let Some(epb) = block.unwrap().into_enhanced_packet() {
            seen.push((
                epb.timestamp.as_nanos() as i64,
                epb.data.to_vec(),
                epb.options.len(),
            ));
        }
    }
    let expected: Vec<_> = packets.iter().map(|(ts, d)| (*ts, d.to_vec(), 1)).collect();
    assert_eq!(seen, expected);
}
