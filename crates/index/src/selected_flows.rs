//! The flow table of a selection, from the index: what `tracekit flows SELECTION` counts over
//! the indexed files, from the records the selection can match alone, each numbered with its
//! frame of the full scan.

use tracekit_capture::Capture;
use tracekit_flows::Table;
use tracekit_merge::{Item, Merger, Order, set};
use tracekit_select::Spec;
use tracekit_split::flows::{FlowTable, Packet};

use crate::{Error, FrameNumbers, Index};

/// The table of a selection from the index: only the blocks it can match are read, their
/// records matched and merged by time as the full scan merges them, each numbered with its
/// frame of the full scan. `None` when the index cannot answer alone (see [`Index::gather`]).
/// A set with a file out of time order is read by time (a tie in file order), as the full
/// scan then reads it.
pub(crate) fn of_selection(
    ix: &Index,
    captures: &[Capture],
    spec: &Spec,
) -> Result<Option<Table>, Error> {
    let Some(frames) = ix.frame_numbers(captures) else {
        return Ok(None);
    };
    let shifts = vec![0i64; captures.len()];
    let surveys = ix.surveys();
    let in_order = surveys.is_some();
    let chosen = if in_order {
        set::choose_surveyed(captures, &shifts, spec, true, surveys)
    } else {
        // No survey needed: no time window (see [`Index::gather_any_order`]).
        if spec.after.is_some() || spec.before.is_some() {
            return Ok(None);
        }
        set::choose_surveyed(captures, &shifts, spec, false, None)
    };
    let gathered = if in_order {
        ix.gather(&chosen.captures, &chosen.kept, spec)?
    } else {
        ix.gather_any_order(&chosen.captures, &chosen.kept, spec)?
    };
    let Some(mut p) = gathered.as_ref().and_then(|g| g.selected(spec)) else {
        return if in_order {
            skipping(ix, chosen, spec, &frames)
        } else {
            Ok(None)
        };
    };
    for (list, &k) in p.selected.iter_mut().zip(&chosen.kept) {
        if !ix.manifest.files[k].summary.in_order {
            list.sort_by_key(|r| (r.ts.0, r.index));
        }
    }
    let names: Vec<String> = chosen
        .captures
        .iter()
        .map(|c| c.path().display().to_string())
        .collect();
    let mut flows = FlowTable::default();
    let mut selected = 0u64;
    for (input, record, _) in set::ByTime::new(p.selected, &[]) {
        let frame = frames.frame(chosen.kept[input], record.index, record.ts.0);
        selected += 1;
        flows.add(&Packet::dissect(record, frame, input as u32));
    }
    Ok(Some(Table {
        flows,
        names,
        selected,
        read: p.records,
        frames: 0,
        passed: chosen.passed,
        trouble: Vec::new(),
    }))
}

/// [`of_selection`] for a set with pcapng files: every file walked with jumps over the records
/// the selection cannot match ([`Index::skips`]), the rest matched as the full scan matches
/// them, each numbered with its frame of the full scan.
fn skipping(
    ix: &Index,
    chosen: set::Chosen<'_>,
    spec: &Spec,
    frames: &FrameNumbers,
) -> Result<Option<Table>, Error> {
    let Some(skips) = ix.skips(&chosen.captures, &chosen.kept, spec)? else {
        return Ok(None);
    };
    let (Some(surveys), Some(mut matcher)) = (chosen.surveys, chosen.matcher) else {
        return Ok(None);
    };
    let inputs = chosen
        .captures
        .iter()
        .zip(skips)
        .map(|(c, s)| tracekit_merge::Input {
            records: c.records_skipping(s),
            shift: 0,
        })
        .collect();
    let merger = Merger::new(inputs, Order::Time(surveys));
    let mut flows = FlowTable::default();
    let (mut selected, mut read) = (0u64, 0u64);
    for item in merger {
        match item {
            Item::Record { input, record, .. } => {
                read += 1;
                match matcher.matches(0, &record) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    // The full scan reports it.
                    Err(_) => return Ok(None),
                }
                let frame = frames.frame(chosen.kept[input], record.index, record.ts.0);
                selected += 1;
                flows.add(&Packet::dissect(record, frame, input as u32));
            }
            // Damage: the full scan reports it.
            Item::Damaged { .. } => return Ok(None),
            Item::Side { .. } => {}
        }
    }
    Ok(Some(Table {
        flows,
        names: chosen
            .captures
            .iter()
            .map(|c| c.path().display().to_string())
            .collect(),
        selected,
        read,
        frames: 0,
        passed: chosen.passed,
        trouble: Vec::new(),
    }))
}
