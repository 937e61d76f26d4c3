//! Read → write → read over the corpus and testdata: pcap→pcap, pcapng→pcapng and pcapng→pcap
//! (one link type) keep every record's bytes and timestamp; tshark, as an outside reader, sees
//! the same times and lengths in the output as in the input.
#![allow(clippy::case_sensitive_file_extension_comparisons)]

use std::path::{Path, PathBuf};

use tracekit_capture::output::AtomicFile;
use tracekit_capture::pcapng::{self, Block, OptionsBuilder};
use tracekit_capture::writer::{PcapWriter, PcapngWriter, Precision, WriteError};
use tracekit_capture::{Capture, Format, LinkType, TsResolution};
use tracekit_testutil::{corpus_dir, manifest, testdata_dir, tshark_fields};

#[derive(Debug, PartialEq)]
struct Rec {
    ts: Option<i64>,
    orig_len: u32,
    data: Vec<u8>,
    comments: Vec<String>,
}

fn read(path: &Path) -> (Vec<Rec>, bool) {
    let capture = Capture::open(path).unwrap();
    let mut records = capture.records();
    let recs = records
        .by_ref()
        .map_while(Result::ok)
        .map(|r| Rec {
            ts: r.has_ts.then_some(r.ts.0),
            orig_len: r.orig_len,
            data: r.data.to_vec(),
            comments: r
                .options
                .comments()
                .map(std::borrow::Cow::into_owned)
                .collect(),
        })
        .collect();
    let clean = records.problems().1 == 0;
    (recs, clean)
}

/// Copies a pcapng capture block by block, keeping section and interface options.
fn pcapng_to_pcapng(input: &Path, output: &Path) {
    let capture = Capture::open(input).unwrap();
    let mut reader = pcapng::Reader::new(capture.data());
    let mut out = AtomicFile::create(output, &[input]).unwrap();
    let mut writer: Option<PcapngWriter<&mut AtomicFile>> = None;
    while let Some(Ok(block)) = reader.next_block() {
        match block {
            // Later sections' interfaces join the first section's, numbered globally.
            Block::Section(n) if writer.is_none() => {
                let shb = &reader.sections()[n];
                let opts = OptionsBuilder::new()
                    .copy_from(shb.options.view(), pcapng::shb_numeric)
                    .finish();
                writer = Some(PcapngWriter::new(&mut out, &opts).unwrap());
            }
            Block::Interface(i) => {
                let id = writer
                    .as_mut()
                    .unwrap()
                    .add_interface_like(&reader.interfaces()[i as usize])
                    .unwrap();
                assert_eq!(id, i, "global interface numbers are kept");
            }
            Block::Packet(r) => writer
                .as_mut()
                .unwrap()
                .write_record(r.interface, &r, true)
                .unwrap(),
            _ => {}
        }
    }
    if let Some(w) = writer {
        w.into_inner().unwrap();
    }
    out.commit(false).unwrap();
}

fn to_pcap(
    input: &Path,
    output: &Path,
    link: LinkType,
    precision: Precision,
) -> Result<(), WriteError> {
    let capture = Capture::open(input).unwrap();
    let mut out = AtomicFile::create(output, &[input]).unwrap();
    let mut writer = PcapWriter::new(&mut out, link, precision, 262_144).unwrap();
    for r in capture.records().map_while(Result::ok) {
        writer.write_record(&r)?;
    }
    writer.into_inner().unwrap();
    out.commit(false).unwrap();
    Ok(())
}

fn inputs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = manifest()
        .into_iter()
        .filter(|e| e.capinfos_ok && !e.file.ends_with(".snoop"))
        .map(|e| corpus_dir().join(e.file))
        .collect();
    for name in [
        "handshake.pcap",
        "handshake-ns.pcap",
        "mixed.pcapng",
        "handshake.pcap.gz",
    ] {
        files.push(testdata_dir().join(name));
    }
    files
}

/// Times and lengths as tshark sees them, with non-packet records left out.
fn tshark_view(path: &Path) -> Vec<String> {
    tshark_fields(path, &["frame.time_epoch", "frame.cap_len", "frame.len"])
}

#[test]
fn round_trips_keep_bytes_and_timestamps() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<(usize, PathBuf)> = inputs().into_iter().enumerate().collect();
    // tshark dominates the time: two workers, one per core of the CI machine.
    let results: Vec<([u32; 3], u32)> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .chunks(inputs.len().div_ceil(2))
            .map(|chunk| {
                let dir = dir.path();
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(n, input)| round_trip_one(*n, input, dir))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut done = [0u32; 3];
    let mut tshark_checked = 0;
    for (d, t) in results {
        for k in 0..3 {
            done[k] += d[k];
        }
        tshark_checked += t;
    }
    eprintln!(
        "round trips: {} pcap→pcap, {} pcapng→pcapng, {} pcapng→pcap; {tshark_checked} outputs checked by tshark",
        done[0], done[1], done[2]
    );
    assert!(done.iter().all(|&d| d >= 10), "{done:?}");
}

fn round_trip_one(n: usize, input: &Path, dir: &Path) -> ([u32; 3], u32) {
    let mut done = [0u32; 3];
    let mut tshark_checked = 0;
    let capture = Capture::open(input).unwrap();
    let (original, clean) = read(input);
    let links: Vec<LinkType> = {
        let mut r = capture.records();
        r.by_ref().for_each(drop);
        let mut l: Vec<LinkType> = r.interfaces().iter().map(|i| i.link).collect();
        l.sort();
        l.dedup();
        l
    };
    let fine = {
        let mut r = capture.records();
        r.by_ref().for_each(drop);
        r.interfaces()
            .iter()
            .any(|i| i.resolution != TsResolution::MICRO)
    };
    let name = input.file_name().unwrap().to_string_lossy().into_owned();
    let mut outputs = Vec::new();
    match capture.format() {
        Format::Pcap(h) => {
            let out = dir.join(format!("{n}-pcap.pcap"));
            to_pcap(
                input,
                &out,
                h.link,
                if h.nanos {
                    Precision::Nano
                } else {
                    Precision::Micro
                },
            )
            .unwrap();
            outputs.push((out, false));
            done[0] += 1;
        }
        Format::Pcapng => {
            let out = dir.join(format!("{n}-ng.pcapng"));
            pcapng_to_pcapng(input, &out);
            outputs.push((out, true));
            done[1] += 1;
            let has_spb = original.iter().any(|r| r.ts.is_none());
            if links.len() == 1 && clean && !has_spb {
                let out = dir.join(format!("{n}-ng.pcap"));
                let precision = if fine {
                    Precision::Nano
                } else {
                    Precision::Micro
                };
                let pcap_range = 0..(1i64 << 32) * 1_000_000_000;
                if original
                    .iter()
                    .all(|r| r.ts.is_some_and(|t| pcap_range.contains(&t)))
                {
                    to_pcap(input, &out, links[0], precision).unwrap();
                    outputs.push((out, false));
                    done[2] += 1;
                } else {
                    let err = to_pcap(input, &out, links[0], precision).unwrap_err();
                    assert!(
                        matches!(err, WriteError::TimestampOutOfRange(_)),
                        "{name}: {err}"
                    );
                    assert!(!out.exists(), "no partial output is left behind");
                }
            }
        }
    }
    let mut input_view = None;
    for (out, keeps_options) in outputs {
        let (copy, _) = read(&out);
        assert_eq!(copy.len(), original.len(), "{name} → {}", out.display());
        for (i, (a, b)) in original.iter().zip(&copy).enumerate() {
            assert_eq!(a.data, b.data, "{name} record {i}: bytes");
            assert_eq!(a.orig_len, b.orig_len, "{name} record {i}: original length");
            if let Some(ts) = a.ts {
                assert_eq!(Some(ts), b.ts, "{name} record {i}: timestamp");
            }
            if keeps_options {
                assert_eq!(a.comments, b.comments, "{name} record {i}: comments");
            }
        }
        if !original.is_empty() && original.iter().all(|r| r.ts.is_some()) && clean {
            let theirs = input_view.get_or_insert_with(|| tshark_view(input));
            assert_eq!(
                *theirs,
                tshark_view(&out),
                "{name}: tshark sees a different {}",
                out.display()
            );
            tshark_checked += 1;
        }
    }
    (done, tshark_checked)
}

#[test]
fn microsecond_pcap_refuses_to_drop_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let input = testdata_dir().join("handshake-ns.pcap");
    let capture = Capture::open(&input).unwrap();
    let out = dir.path().join("x.pcap");
    let mut file = AtomicFile::create(&out, &[&input]).unwrap();
    let mut w = PcapWriter::new(&mut file, LinkType::ETHERNET, Precision::Micro, 65535).unwrap();
    let second = capture.records().nth(1).unwrap().unwrap();
    let err = w.write_record(&second).unwrap_err();
    assert!(err.to_string().contains("finer resolution"), "{err}");
}

#[test]
fn outputs_never_replace_an_input() {
    let input = testdata_dir().join("handshake.pcap");
    let before = std::fs::read(&input).unwrap();
    assert!(AtomicFile::create(&input, &[&input]).is_err());
    assert_eq!(std::fs::read(&input).unwrap(), before);
}
