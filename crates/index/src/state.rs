//! `flows.state`: the flow table's whole state at the end of the set it was counted from
//! (see `FlowTable::save`), so that a set that grew by files that come later in time is
//! counted from there, reading only the new files, and gives the table a scan of every file
//! gives. The file: [`MAGIC`], a little-endian u32 length and that many bytes of JSON (the
//! [`Header`]), then the saved table. The header names the set the table was counted from; a
//! state of another set, or whose bytes do not hash to the header's, is not used (the table
//! is then counted from every file), never half used.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracekit_capture::output::AtomicFile;
use tracekit_flows::Prior;
use tracekit_split::flows::FlowTable;

/// The state's file in the index directory.
pub const STATE: &str = "flows.state";
const MAGIC: &[u8; 8] = b"TKFSTATE";

/// What a state was counted from.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// The identity of the set (as the manifest's `flows.set`).
    set: String,
    /// Its inputs as the table numbers them.
    names: Vec<String>,
    /// The frame number of its last record.
    frames: u64,
    /// What the reading reported, as the manifest's `flows.trouble`.
    trouble: Vec<String>,
    /// blake3 of the saved table's bytes.
    blake3: String,
}

/// Saves `table` (of the set `set`, inputs `names`, `frames` records) into `dir`, atomically.
///
/// # Errors
/// The file cannot be written.
pub fn save(
    dir: &Path,
    (set, names, frames): (&str, &[String], u64),
    trouble: &[String],
    table: &FlowTable,
    inputs: &[&Path],
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut bytes = Vec::new();
    table.save(&mut bytes)?;
    let header = Header {
        set: set.to_string(),
        names: names.to_vec(),
        frames,
        trouble: trouble.to_vec(),
        blake3: blake3::hash(&bytes).to_hex().to_string(),
    };
    let json = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(std::io::Error::other)?;
    let mut f = AtomicFile::create(dir.join(STATE), inputs).map_err(std::io::Error::other)?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
        w.write_all(MAGIC)?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&json)?;
        w.write_all(&bytes)?;
        w.flush()?;
    }
    f.commit(false).map_err(std::io::Error::other)?;
    Ok(())
}

/// The state saved in `dir` for the set `set`, ready to carry on from; `None` when there is
/// none, it is of another set, or it is damaged.
#[must_use]
pub fn load(dir: &Path, set: &str) -> Option<Prior> {
    let bytes = std::fs::read(dir.join(STATE)).ok()?;
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if len > rest.len() {
        return None;
    }
    let (json, table) = rest.split_at(len);
    let header: Header = serde_json::from_slice(json).ok()?;
    if header.set != set || blake3::hash(table).to_hex().as_str() != header.blake3 {
        return None;
    }
    Some(Prior {
        table: FlowTable::restore(table).ok()?,
        names: header.names,
        frames: header.frames,
        trouble: header.trouble,
    })
}

/// Removes the state of `dir` (a table made without one: the next run counts every file).
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(STATE));
}
