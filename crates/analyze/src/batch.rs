//! `analyze --batch`: which file of one directory goes with which of the other, by what they
//! hold, not by their names or raw times. Each file is sketched once (the signatures the clock
//! alignment uses: SYN and SYN/ACK sequence numbers, TLS random values, payloads, stream
//! blocks — what a path does not change, and no clock), and files are paired by the most
//! signatures they share, one partner each. Raw times play no part, so clocks any distance
//! apart and names that do not match pair as well as the same names.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracekit_capture::{Capture, inputs};
use tracekit_merge::align::Trace;

use crate::Analysis;

/// Packets of a file whose signatures are compared: a few seconds of traffic on a busy link,
/// all of an incident's file. The keys of a sketch take about 8 bytes a packet.
pub const SKETCH_PACKETS: u64 = 20_000;

/// What pairing needs of a file: its signatures.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Sketch {
    /// Strong signatures seen once, sorted (see `Trace::strong_keys`).
    keys: Vec<u64>,
    /// Packets read.
    pub packets: u64,
    /// Why the file could not be read through (damage), if it could not.
    pub damage: Option<String>,
}

impl Sketch {
    /// Sketches the first [`SKETCH_PACKETS`] packets of `capture`.
    #[must_use]
    pub fn of(capture: &Capture) -> Sketch {
        let mut trace = Trace::new(SKETCH_PACKETS);
        let mut sketch = Sketch::default();
        for (n, r) in capture.records().enumerate() {
            match r {
                Ok(r) => trace.add(n as u64 + 1, r.ts.0, r.link.0, r.data),
                Err(e) => {
                    sketch.damage = Some(e.to_string());
                    break;
                }
            }
            sketch.packets += 1;
            if trace.is_full() {
                break;
            }
        }
        sketch.keys = trace.strong_keys();
        sketch
    }

    /// Signatures that can pair this file.
    #[must_use]
    pub fn signatures(&self) -> usize {
        self.keys.len()
    }
}

/// A pair of files (positions in each list) and the signatures they share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paired {
    pub a: usize,
    pub b: usize,
    pub shared: usize,
}

/// A file left without a partner, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpaired {
    /// `a` or `b`.
    pub side: &'static str,
    pub file: usize,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Nothing in it that a path leaves unchanged (no TCP handshake, payload or TLS hello in
    /// its first packets).
    NoSignatures,
    /// None of its signatures is in any file of the other side.
    SharesNothing,
    /// Every file it shares signatures with went to a file that shares more with it: (the
    /// other side's file it shares most with, how many).
    PartnerTaken { best: usize, shared: usize },
}

/// Pairs the files of two sides by the signatures they share: the pair that shares the most
/// first, then the next among files still free, and so on (ties in file order). A signature
/// found in more than one file of side b pairs nothing (a retransmission across a rotation,
/// a file copied twice).
#[must_use]
pub fn pair(a: &[&Sketch], b: &[&Sketch]) -> (Vec<Paired>, Vec<Unpaired>) {
    // Which file of b holds each signature (`u32::MAX`: more than one).
    let mut holder: FxHashMap<u64, u32> = FxHashMap::default();
    for (i, s) in b.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        for &k in &s.keys {
            holder
                .entry(k)
                .and_modify(|h| {
                    if *h != i {
                        *h = u32::MAX;
                    }
                })
                .or_insert(i);
        }
    }
    // Shared signatures of every (a, b) that shares any.
    let mut candidates: Vec<Paired> = Vec::new();
    for (ia, s) in a.iter().enumerate() {
        let mut counts: FxHashMap<u32, usize> = FxHashMap::default();
        for k in &s.keys {
            if let Some(&h) = holder.get(k)
                && h != u32::MAX
            {
                *counts.entry(h).or_default() += 1;
            }
        }
        candidates.extend(counts.into_iter().map(|(ib, shared)| Paired {
            a: ia,
            b: ib as usize,
            shared,
        }));
    }
    candidates.sort_unstable_by_key(|p| (std::cmp::Reverse(p.shared), p.a, p.b));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut pairs = Vec::new();
    for p in &candidates {
        if !used_a[p.a] && !used_b[p.b] {
            used_a[p.a] = true;
            used_b[p.b] = true;
            pairs.push(*p);
        }
    }
    pairs.sort_unstable_by_key(|p| (p.a, p.b));
    let mut unpaired = Vec::new();
    for (side, sketches, used) in [("a", a, &used_a), ("b", b, &used_b)] {
        for (file, s) in sketches.iter().enumerate() {
            if used[file] {
                continue;
            }
            // The candidate that shares most with this file (the list is sorted).
            let best = candidates.iter().find(|p| {
                if side == "a" {
                    p.a == file
                } else {
                    p.b == file
                }
            });
            let reason = match best {
                _ if s.keys.is_empty() => Reason::NoSignatures,
                None => Reason::SharesNothing,
                Some(p) => Reason::PartnerTaken {
                    best: if side == "a" { p.b } else { p.a },
                    shared: p.shared,
                },
            };
            unpaired.push(Unpaired { side, file, reason });
        }
    }
    (pairs, unpaired)
}

/// A file of a batch left without a partner, and why, in words (a row of the summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpairedFile {
    pub file: String,
    pub reason: String,
}

/// The file at `path` sketched, or why it could not be opened.
///
/// # Errors
/// The file could not be opened as a capture.
pub fn sketch_file(path: &Path) -> Result<Sketch, String> {
    Capture::open(path)
        .map(|c| Sketch::of(&c))
        .map_err(|e| e.to_string())
}

/// A directory's captures (searched as `tracekit_capture::inputs` does), sketched in
/// parallel; those that could not be read or opened go to `unpaired` with the reason.
///
/// # Errors
/// `dir` is not a directory.
pub fn sketch_dir(
    dir: &Path,
    unpaired: &mut Vec<UnpairedFile>,
) -> Result<Vec<(PathBuf, Sketch)>, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let found = inputs::expand(&[dir.to_path_buf()]);
    for (path, e) in &found.unreadable {
        unpaired.push(UnpairedFile {
            file: path.display().to_string(),
            reason: format!("unreadable: {e}"),
        });
    }
    let sketched: Vec<(PathBuf, Result<Sketch, String>)> = found
        .files
        .into_par_iter()
        .map(|p| {
            let s = sketch_file(&p);
            (p, s)
        })
        .collect();
    let mut out = Vec::new();
    for (path, s) in sketched {
        match s {
            Ok(s) => out.push((path, s)),
            Err(e) => unpaired.push(UnpairedFile {
                file: path.display().to_string(),
                reason: format!("could not be opened: {e}"),
            }),
        }
    }
    Ok(out)
}

/// The pairs of a batch (see [`pair`]), and in `unpaired` (then sorted by file) the files left
/// without a partner with the reason in words.
pub fn pair_files(
    files_a: &[(PathBuf, Sketch)],
    files_b: &[(PathBuf, Sketch)],
    unpaired: &mut Vec<UnpairedFile>,
) -> Vec<Paired> {
    let (sa, sb): (Vec<&Sketch>, Vec<&Sketch>) = (
        files_a.iter().map(|(_, s)| s).collect(),
        files_b.iter().map(|(_, s)| s).collect(),
    );
    let (pairs, left) = pair(&sa, &sb);
    for u in left {
        let (files, other) = if u.side == "a" {
            (files_a, files_b)
        } else {
            (files_b, files_a)
        };
        let (path, sketch) = &files[u.file];
        let reason = match u.reason {
            Reason::NoSignatures => format!(
                "nothing to pair it by: no TCP handshake, payload or TLS hello in its first {} packets",
                sketch.packets
            ),
            Reason::SharesNothing => format!(
                "shares no connection with any file of the other directory ({} signatures compared)",
                sketch.signatures()
            ),
            Reason::PartnerTaken { best, shared } => format!(
                "shares {shared} signatures with {}, which was paired with a file that shares more",
                other[best].0.display()
            ),
        };
        unpaired.push(UnpairedFile {
            file: path.display().to_string(),
            reason,
        });
    }
    unpaired.sort_by(|x, y| x.file.cmp(&y.file));
    pairs
}

/// One pair of a batch, as its summary (CSV, JSON, index page) shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryRow {
    pub a: String,
    pub b: String,
    /// `content`: by the signatures both files hold.
    pub paired_by: String,
    /// Signatures found in both files.
    pub shared_signatures: usize,
    /// Nanoseconds to add to b's times to put them on a's clock, as the pair's analysis found
    /// it (empty when no packet matched).
    pub clock_offset_ns: Option<i64>,
    /// The text report's path.
    pub report: String,
    pub connections: usize,
    pub failed: usize,
    /// Of the first connection in report order (the most notable).
    pub middlebox: String,
    pub closed_by: String,
    pub verdict: String,
    /// Why the pair could not be analyzed (empty when it was).
    pub error: String,
}

impl SummaryRow {
    /// The row of files `a` and `b`, paired by `shared` signatures, before their analysis.
    #[must_use]
    pub fn new(a: &Path, b: &Path, shared: usize) -> SummaryRow {
        SummaryRow {
            a: a.display().to_string(),
            b: b.display().to_string(),
            paired_by: "content".into(),
            shared_signatures: shared,
            clock_offset_ns: None,
            report: String::new(),
            connections: 0,
            failed: 0,
            middlebox: String::new(),
            closed_by: String::new(),
            verdict: String::new(),
            error: String::new(),
        }
    }

    /// What the pair's `analysis` found, its text report at `report`.
    pub fn found(&mut self, analysis: &Analysis, report: &Path) {
        self.report = report.display().to_string();
        // (Side b of the row is the file given as b: undo a swap of the analysis.)
        self.clock_offset_ns = analysis.clock.as_ref().map(|c| {
            if analysis.swapped {
                -c.offset_ns
            } else {
                c.offset_ns
            }
        });
        self.connections = analysis.connections.len();
        self.failed = analysis.connections.iter().filter(|c| c.failed).count();
        if let Some(c) = analysis.connections.first() {
            self.middlebox = crate::model::kinds_text(&c.middlebox.kind, ",");
            self.closed_by = c.closed_by.to_string();
            self.verdict.clone_from(&c.verdict);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(s: &[Sketch]) -> Vec<&Sketch> {
        s.iter().collect()
    }

    fn sketch(keys: &[u64]) -> Sketch {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        Sketch {
            keys,
            packets: 1,
            damage: None,
        }
    }

    #[test]
    fn files_pair_by_the_most_shared_signatures_one_partner_each() {
        // a0 shares 3 with b1 and 1 with b0; a1 shares 2 with b0; a2 shares 1 with b1 only.
        let a = [sketch(&[1, 2, 3, 10]), sketch(&[11, 12]), sketch(&[4])];
        let b = [sketch(&[10, 11, 12]), sketch(&[1, 2, 3, 4])];
        let (pairs, unpaired) = pair(&refs(&a), &refs(&b));
        assert_eq!(
            pairs,
            [
                Paired {
                    a: 0,
                    b: 1,
                    shared: 3
                },
                Paired {
                    a: 1,
                    b: 0,
                    shared: 2
                }
            ]
        );
        assert_eq!(
            unpaired,
            [Unpaired {
                side: "a",
                file: 2,
                reason: Reason::PartnerTaken { best: 1, shared: 1 }
            }]
        );
    }

    #[test]
    fn a_file_without_signatures_or_shared_ones_says_which() {
        let a = [sketch(&[]), sketch(&[7])];
        let b = [sketch(&[8])];
        let (pairs, unpaired) = pair(&refs(&a), &refs(&b));
        assert!(pairs.is_empty());
        let reasons: Vec<_> = unpaired
            .iter()
            .map(|u| (u.side, u.file, &u.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("a", 0, &Reason::NoSignatures),
                ("a", 1, &Reason::SharesNothing),
                ("b", 0, &Reason::SharesNothing)
            ]
        );
    }

    #[test]
    fn a_signature_in_two_files_of_b_pairs_nothing() {
        let a = [sketch(&[5, 6])];
        let b = [sketch(&[5]), sketch(&[5, 6])];
        let (pairs, _) = pair(&refs(&a), &refs(&b));
        assert_eq!(
            pairs,
            [Paired {
                a: 0,
                b: 1,
                shared: 1
            }]
        );
    }
}
