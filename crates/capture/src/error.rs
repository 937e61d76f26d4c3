use std::path::PathBuf;

/// A capture that cannot be read at all: missing, unreadable, or not a capture format we read.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}; tracekit reads pcap and pcapng (plain, gzip or zstd)")]
    UnsupportedFormat { path: PathBuf, what: String },
    #[error("{path}: bad file header at byte offset {offset}: {message}")]
    BadHeader {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("{path}: decompressing {compression} input: {source}")]
    Decompress {
        path: PathBuf,
        compression: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Damage that stops the walk through a capture: records after it cannot be located.
/// Every record before it was delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {record} at byte offset {offset}: {kind}")]
pub struct ReadError {
    /// Index of the record that could not be read (= number of records delivered before it).
    pub record: u64,
    pub offset: u64,
    pub kind: ReadErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadErrorKind {
    #[error("file cut short: the record header needs {needed} bytes, {available} remain")]
    TruncatedHeader { needed: u64, available: u64 },
    #[error("file cut short: the record claims {claimed} bytes of data, {available} remain")]
    TruncatedData { claimed: u64, available: u64 },
    #[error(
        "the record claims {claimed} bytes of data, more than the limit of {limit} bytes \
         (snap length or 256 KiB): the length field is corrupt"
    )]
    OversizedRecord { claimed: u64, limit: u64 },
    #[error("pcapng block of type {block_type:#010x} has an invalid length {length}: {why}")]
    BadBlockLength {
        block_type: u32,
        length: u64,
        why: &'static str,
    },
    #[error(
        "pcapng block of type {block_type:#010x}: the trailing length {trailer} differs from the leading length {length}"
    )]
    BlockLengthMismatch {
        block_type: u32,
        length: u32,
        trailer: u32,
    },
    #[error("pcapng section header: {0}")]
    BadSectionHeader(String),
    #[error("packet refers to interface {interface}, but the section defines only {defined}")]
    UnknownInterface { interface: u32, defined: u32 },
    #[error(
        "pcapng block of type {block_type:#010x} is too short for its fixed fields ({length} bytes)"
    )]
    ShortBlock { block_type: u32, length: u32 },
    #[error("the first block is not a pcapng section header (type {0:#010x})")]
    MissingSectionHeader(u32),
}

/// Something odd that does not stop reading: a bad option, an out-of-range timestamp fraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Index of the record concerned, or of the next record for a problem between records.
    pub record: u64,
    pub offset: u64,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record {} at byte offset {}: {}",
            self.record, self.offset, self.message
        )
    }
}
