//! A conversation's row: the fields `tracekit flows` prints (JSON keys, CSV columns) and
//! `tracekit index` stores (Parquet columns), in that order.

use serde::{Deserialize, Serialize};
use tracekit_capture::Timestamp;
use tracekit_split::flows::FlowSummary;

/// One conversation's row; `Files` is a list in JSON, a `;`-joined string in CSV.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row<Files> {
    pub proto: String,
    /// The IP protocol number (null for frames without IP).
    pub ip_proto: Option<u8>,
    /// Wireshark's tcp.stream / udp.stream; absent for other protocols.
    pub stream: Option<u32>,
    pub client: String,
    pub client_port: Option<u16>,
    pub server: String,
    pub server_port: Option<u16>,
    pub first_ts: String,
    pub last_ts: String,
    /// Seconds, to the nanosecond.
    pub duration: f64,
    pub packets_c2s: u64,
    pub packets_s2c: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub community_id: Option<String>,
    /// Zeek's conn_state: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH.
    pub state: String,
    /// Zeek's history letters: client upper case, server lower case; S SYN, H SYN-ACK, A pure
    /// ACK, D data, F FIN, R RST, each once per side, in the order first seen.
    pub history: String,
    /// Who sent the first FIN or RST: client, server, or nobody (null).
    pub closed_by: Option<String>,
    /// The input files holding its packets, in order of first appearance.
    pub files: Files,
    pub first_frame: u64,
    pub last_frame: u64,
}

/// The columns of a stored row `--top` ranks by.
#[derive(Debug, Deserialize)]
pub struct Rank {
    pub first_ts: String,
    pub last_ts: String,
    pub duration: f64,
    pub packets_c2s: u64,
    pub packets_s2c: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
}

impl Rank {
    /// What `--top` ranks a stored row by (as `Flow` ranks it: duration in nanoseconds).
    #[must_use]
    pub fn key(&self, by: &str) -> i128 {
        match by {
            "packets" => i128::from(self.packets_c2s + self.packets_s2c),
            "duration" => Timestamp::parse_rfc3339(&self.last_ts)
                .zip(Timestamp::parse_rfc3339(&self.first_ts))
                .map_or((self.duration * 1e9) as i128, |(l, f)| {
                    i128::from(l.0.saturating_sub(f.0))
                }),
            _ => i128::from(self.bytes_c2s + self.bytes_s2c),
        }
    }
}

/// The printed row of a flow: times in RFC 3339, inputs by name.
#[must_use]
pub fn row(f: &FlowSummary, names: &[String]) -> Row<Vec<String>> {
    row_with(f, named(&f.files, names))
}

/// The names of the files numbered `files` among `names`. Every number must be below
/// `names.len()`: a table's own, or a reduce result's once checked (`step finish` refuses
/// one that names a file its plan does not have).
#[must_use]
pub fn named(files: &[u32], names: &[String]) -> Vec<String> {
    files.iter().map(|&i| names[i as usize].clone()).collect()
}

/// The row of a flow with its inputs by number (their places among the inputs): what a
/// distributed `flows` passes from its reduce tasks to its finish, where [`Row::map_files`]
/// names them (on the 4 GB bench set the names were 64% of the rows' bytes).
#[must_use]
pub fn numbered_row(f: &FlowSummary) -> Row<Vec<u32>> {
    row_with(f, f.files.clone())
}

/// The row of a flow with `files` as its file list.
fn row_with<Files>(f: &FlowSummary, files: Files) -> Row<Files> {
    Row {
        proto: f.proto.clone(),
        ip_proto: f.ip_proto,
        stream: f.stream,
        client: f.client.clone(),
        client_port: f.client_port,
        server: f.server.clone(),
        server_port: f.server_port,
        first_ts: Timestamp(f.first_ts).rfc3339(),
        last_ts: Timestamp(f.last_ts).rfc3339(),
        duration: (f.last_ts - f.first_ts) as f64 / 1e9,
        packets_c2s: f.packets[0],
        packets_s2c: f.packets[1],
        bytes_c2s: f.bytes[0],
        bytes_s2c: f.bytes[1],
        community_id: f.community_id.clone(),
        state: f.state.to_string(),
        history: f.history.clone(),
        closed_by: f.closed_by.map(str::to_string),
        files,
        first_frame: f.first_frame,
        last_frame: f.last_frame,
    }
}

impl<Files> Row<Files> {
    /// What `--top` ranks the row by (as [`Rank::key`]).
    #[must_use]
    pub fn rank(&self, by: &str) -> i128 {
        Rank {
            first_ts: self.first_ts.clone(),
            last_ts: self.last_ts.clone(),
            duration: self.duration,
            packets_c2s: self.packets_c2s,
            packets_s2c: self.packets_s2c,
            bytes_c2s: self.bytes_c2s,
            bytes_s2c: self.bytes_s2c,
        }
        .key(by)
    }

    /// The row with its file list made by `f` from this one's (file numbers to names).
    pub fn map_files<G>(self, f: impl FnOnce(Files) -> G) -> Row<G> {
        Row {
            proto: self.proto,
            ip_proto: self.ip_proto,
            stream: self.stream,
            client: self.client,
            client_port: self.client_port,
            server: self.server,
            server_port: self.server_port,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            duration: self.duration,
            packets_c2s: self.packets_c2s,
            packets_s2c: self.packets_s2c,
            bytes_c2s: self.bytes_c2s,
            bytes_s2c: self.bytes_s2c,
            community_id: self.community_id,
            state: self.state,
            history: self.history,
            closed_by: self.closed_by,
            files: f(self.files),
            first_frame: self.first_frame,
            last_frame: self.last_frame,
        }
    }
}

impl Row<Vec<String>> {
    /// The CSV form: the file list joined with `;`.
    #[must_use]
    pub fn for_csv(self) -> Row<String> {
        self.map_files(|f| f.join(";"))
    }
}
