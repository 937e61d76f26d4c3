//! Any packets, each seen by one capture point or both, as two traces: building the connection
//! tables, aligning the clocks, comparing the traces and writing the reports never panic.
//!
//! Input: records of a control byte, a length (2 bytes, little endian) and the packet (Ethernet).
//! Control bit 0: the packet is in trace a; bit 1: in trace b (neither: in both); bits 2-7:
//! tenths of a millisecond since the previous packet. Trace b's clock runs 1.5 s behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracekit_analyze::{Input, TableBuilder};
use tracekit_merge::align::{self, Trace};

fuzz_target!(|input: &[u8]| {
    let (mut ta, mut tb) = (TableBuilder::new(None), TableBuilder::new(None));
    let (mut aa, mut ab) = (Trace::new(1000), Trace::new(1000));
    let (mut na, mut nb) = (0u64, 0u64);
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut rest = input;
    while let [ctl, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (packet, after) = tail.split_at(len);
        rest = after;
        ts += i64::from(ctl >> 2) * 100_000;
        let layers = tracekit_wire::dissect(1, packet);
        if ctl & 3 != 2 {
            na += 1;
            ta.add(na, ts, 1, packet);
            aa.add_dissected(na, ts, &layers, packet);
        }
        if ctl & 3 != 1 {
            nb += 1;
            tb.add(nb, ts - 1_500_000_000, 1, packet);
            ab.add_dissected(nb, ts - 1_500_000_000, &layers, packet);
        }
    }
    let (a, b) = (ta.finish(), tb.finish());
    aa.finish();
    ab.finish();
    let alignment = align::estimate(&mut aa, &mut ab);
    for al in [alignment.as_ref(), None] {
        let analysis = tracekit_analyze::analyze(
            Input {
                name: "a",
                table: &a,
            },
            Input {
                name: "b",
                table: &b,
            },
            al,
        );
        let _ = tracekit_report::text(&analysis, true);
        tracekit_report::write_json(&analysis, std::io::sink()).unwrap();
        let _ = tracekit_report::html::page(&analysis);
    }
});
