//! clap definitions, shared by `tracekit` and the standalone `tracekit-*` binaries.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tracekit",
    version,
    about = "Split, merge, anonymize and analyze packet captures"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarize captures: format, interfaces, packets, bytes, times, damage (like capinfos).
    Info(InfoArgs),
    /// Split captures into one file per stream, host, host pair, port, or per count/size/time.
    Split(SplitArgs),
    /// Merge captures in time order (like mergecap), optionally aligning the clocks of
    /// captures taken at different points of the same traffic.
    Merge(MergeArgs),
    /// Compare two captures of the same connections taken at different points: find what sits
    /// between them (NAT, TCP proxy, MSS clamp, ECN bleaching, injected resets) and who closed
    /// each connection, with the frames every claim rests on.
    Analyze(AnalyzeArgs),
    /// Redact captures with a key: prefix-preserving Crypto-PAn addresses, keyed MACs (vendor
    /// kept), payloads zeroed by default, pcapng metadata removed; timing, TTL, IP ID,
    /// sequence numbers and TCP options kept, so analyze gives the same verdict.
    Anonymize(AnonymizeArgs),
    /// Copy the packets a selection picks out of captures or whole directories of rotated
    /// files (read as one capture, in time order) into one capture, byte for byte: a time
    /// window, a tcpdump filter, address lists, frame numbers, a Community ID.
    Extract(ExtractArgs),
    /// One row per conversation (TCP/UDP stream, or address pair and protocol) over all inputs
    /// read as one capture, like Zeek's conn.log or `tshark -z conv`, without writing packets.
    Flows(FlowsArgs),
    /// Index a capture set once (a directory of rotated files, thousands of them, pcap or
    /// pcapng), so that `extract --index` and `flows --index` answer a selection reading only
    /// the records it can match, byte for byte what a full scan gives; the set's flow table is stored as Parquet
    /// (INDEX/flows.parquet, for `flows --index` and your own tools). Re-running indexes only
    /// new or changed files (the flow table is made again when the set changed).
    Index(IndexArgs),
    /// Write a new random key (64 hex characters: the Crypto-PAn AES key, then the pad
    /// secret), readable by its owner only.
    Keygen(KeygenArgs),
    /// Search an anonymized capture for every address of the original (IPv4, IPv6, MAC).
    Leakcheck(LeakcheckArgs),
    /// Print a shell completion script: `source <(tracekit completions bash)`, or save it where
    /// your shell looks (bash: ~/.local/share/bash-completion/completions/tracekit).
    Completions(CompletionsArgs),
    /// Write a man page per command into DIR (tracekit.1, tracekit-merge.1, …): `man -l
    /// DIR/tracekit-merge.1`, or put DIR in MANPATH.
    Manpages(ManpagesArgs),
    /// A command cut into steps any engine can schedule (a plan, tasks, a finish) with the
    /// same result as the command on one machine; `tracekit-dist` runs them on a Ray cluster,
    /// and `xargs -P`, Slurm job arrays or Kubernetes Indexed Jobs can too (docs/distributed.md).
    #[command(subcommand)]
    Step(StepCommand),
}

#[derive(Debug, Subcommand)]
pub enum StepCommand {
    /// Decide once what a distributed run of COMMAND needs: its inputs in the order the
    /// command reads them, the shards, the stages and their tasks.
    Plan(StepPlanArgs),
    /// Run task N of a stage of a plan; its result is committed atomically beside the plan,
    /// and a task already committed does nothing (retries and duplicates are harmless).
    Task(StepTaskArgs),
    /// Print how many tasks a stage of a plan has (without STAGE: each stage, `NAME COUNT` a
    /// line), for a scheduler's array size: `--array=0-$(( $(tracekit step tasks PLAN map) - 1 ))`.
    Tasks(StepTasksArgs),
    /// Check that every task committed, then write what `tracekit COMMAND ARGS…` writes.
    Finish(StepFinishArgs),
}

#[derive(Debug, Args)]
pub struct StepTasksArgs {
    /// The plan `tracekit step plan` wrote.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The stage (`map`, `reduce`, …).
    #[arg(value_name = "STAGE")]
    pub stage: Option<String>,
}

#[derive(Debug, Args)]
pub struct StepPlanArgs {
    /// The plan (JSON); tasks commit into PLAN.d beside it.
    #[arg(short, long, value_name = "PLAN")]
    pub output: PathBuf,
    /// Shards: contiguous ranges of the inputs of about equal bytes (default: one per input).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub shards: usize,
    /// Partitions of a shuffle (`split --by stream`): reduce tasks, each the conversations of
    /// some address pairs (default: as many as shards).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub partitions: usize,
    /// The command and its arguments, as `tracekit COMMAND ARGS…` takes them.
    #[arg(
        value_name = "COMMAND ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StepTaskArgs {
    /// The plan `tracekit step plan` wrote.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The stage (the plan names them: `map`, …).
    #[arg(value_name = "STAGE")]
    pub stage: String,
    /// The task's number in its stage, from 0.
    #[arg(value_name = "N")]
    pub task: usize,
}

#[derive(Debug, Args)]
pub struct StepFinishArgs {
    /// The plan `tracekit step plan` wrote.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// The directory (created).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["key_file", "passphrase_file"])))]
#[command(after_help = "\
Kept as they are: timestamps (unless --shift), TTL/hop limit, IP ID, ports, TCP sequence and \
acknowledgment numbers, flags, window, all TCP options, ECN/DSCP, lengths; loopback, multicast, \
broadcast and unspecified addresses; group MAC addresses. Checksums are updated incrementally: \
right ones stay right, wrong ones stay wrong.

Mapped with the key: IPv4/IPv6 addresses everywhere they were found (IP headers, tunnels, \
ICMP-quoted packets, ARP/RARP, IPv6 neighbour discovery, IPv4 route options, IPv6 routing \
headers and home-address option, IPv4 embedded in IPv6, EUI-64 interface identifiers); MAC \
addresses (Ethernet, inner Ethernet, Linux cooked headers, ARP, ND options).

pcapng metadata: removed: section hardware/OS/comments, interface names, descriptions, \
addresses, MACs, filters, OS and hardware, packet comments, hashes, packet IDs and verdicts, \
name-resolution, decryption-secrets, interface-statistics, systemd-journal and custom blocks. \
Kept: link types, snap lengths, if_tsresol, if_tsoffset, if_fcslen, epb_flags, epb_dropcount, \
epb_queue; shb_userappl says \"tracekit anonymize\".

With --payload keep, DNS/mDNS/LLMNR answers (A, AAAA) are mapped and names hashed label by \
label (same length, top-level label kept), other record data zeroed; DHCP/BOOTP addresses, \
client MAC and identifier mapped, host and domain names hashed, server/file names and unknown \
options zeroed. DNS is read wherever the message travels: UDP, TCP (length-prefixed messages \
reassembled across segments, retransmissions and reordering), ICMP/ICMPv6 error quotes, \
tunnels and IP fragments (datagrams reassembled). What cannot be read through (a message cut \
by the snap length or a quote, a gap in a TCP stream, a stream whose start was not captured, a \
datagram with a fragment missing) is zeroed and counted: fail closed. Frames in which tracekit \
finds no IP, ARP or link-layer body it can read (802.11 behind radiotap, unknown link types) \
are zeroed after their capture header under every policy, and counted. Other application \
payloads are kept as they are: the leak check (--verify, tracekit leakcheck) finds any \
original address left in the output, DNS answers and DHCP fields included wherever they \
travel. A keyed permutation has fixed points (addresses that map to themselves); --verify \
knows them from the key.

Selection: each input is anonymized on its own, so --frames counts within each file and +TIME \
counts from each file's first packet.")]
pub struct AnonymizeArgs {
    /// The key: 64 hex characters (see `tracekit keygen`). Same key, same mapping, everywhere.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// A passphrase (first line of the file), turned into a key with blake3's key derivation.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The output file; with several inputs, a directory (each file keeps its name); `-`
    /// writes one input's output to standard output (a pipe or a file, not a terminal).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Compress the output: gzip or zstd (Zstandard, on every core), or none. Default: by the
    /// output's name (.gz, .zst).
    #[arg(long, value_name = "HOW", value_parser = ["gzip", "zstd", "none"])]
    pub compress: Option<String>,
    /// Payloads: keep, zero (lengths kept), truncate (cut after the transport header, original
    /// length kept), tls-headers (TLS record headers, handshake types, hello randoms and
    /// alerts kept, the rest zeroed). Bodies of non-IP frames (LLDP, CDP…) go the same way.
    #[arg(long, value_name = "POLICY", default_value = "zero", value_parser = ["keep", "zero", "truncate", "tls-headers"])]
    pub payload: String,
    /// MAC addresses: `oui` keeps the vendor half (a Check Point box stays recognisable),
    /// `full` maps it too; group/local bits are kept either way.
    #[arg(long, value_name = "MODE", default_value = "oui", value_parser = ["oui", "full"])]
    pub mac: String,
    /// Private addresses (10/8, 172.16/12, 192.168/16, fc00::/7): `keep-private` maps them
    /// inside their block, `map` maps them like any other.
    #[arg(long, value_name = "MODE", default_value = "keep-private", value_parser = ["keep-private", "map"])]
    pub private: String,
    /// With --payload keep: DNS and DHCP names are `hash`ed label by label (same length, the
    /// top-level label kept) or kept as they are (`keep`).
    #[arg(long, value_name = "MODE", default_value = "hash", value_parser = ["hash", "keep"])]
    pub names: String,
    /// Shift every timestamp of every input by this much (e.g. `-3600s`, `+1.5s`).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub shift: Option<String>,
    /// Run the leak check on each output; exit 1 when an original address is found.
    #[arg(long)]
    pub verify: bool,
    /// Also write the address mapping (original,anonymized) as CSV. It undoes the redaction:
    /// keep it away from what you publish.
    #[arg(long, value_name = "FILE")]
    pub mapping_out: Option<PathBuf>,
    /// Worker threads (default: one per core); the output is the same for any number.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    // Each input is anonymized on its own: with a selection, frame numbers count within each
    // file and `+TIME` counts from each file's first packet (said in the after_help).
    #[command(flatten)]
    pub select: SelectArgs,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Capture files or directories.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (created with mode 0600; an existing file is not replaced).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct LeakcheckArgs {
    /// The original capture.
    #[arg(value_name = "ORIGINAL")]
    pub original: PathBuf,
    /// The anonymized capture.
    #[arg(value_name = "ANONYMIZED")]
    pub anonymized: PathBuf,
}

#[derive(Debug, Args, Clone)]
#[allow(clippy::struct_excessive_bools)] // command-line switches
pub struct AnalyzeArgs {
    /// Print the analysis as JSON (documented in docs/analyze-json.md).
    #[arg(long)]
    pub json: bool,
    /// Only connections with this TCP port on either end, in either trace.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only connections with this endpoint: ADDR, ADDR:PORT or :PORT (either end, either trace).
    #[arg(long, value_name = "FILTER")]
    pub conn: Option<String>,
    /// Show every connection in full (by default: the failed or odd ones, and the first).
    #[arg(long)]
    pub all: bool,
    /// Also write the report as one self-contained HTML page (ladder, topology, evidence).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the ladder of the first connection alone as SVG (for slides).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Many incidents, one pair of files each: pair the files of two directories by what they
    /// share (SYN/SYN-ACK sequence numbers, TLS randoms, payloads; not names or raw times, so
    /// any clock offset) and analyze every pair; needs -o. (One long observation in rotated
    /// files: give the two directories without --batch.)
    #[arg(long, num_args = 2, value_names = ["DIR_A", "DIR_B"], conflicts_with = "traces")]
    pub batch: Option<Vec<PathBuf>>,
    /// Batch mode: the directory for one report per pair and the summary (CSV and JSON).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUTDIR",
        requires = "batch"
    )]
    pub output: Option<PathBuf>,
    /// Clocks that drift apart over a long observation get an offset per window of this much
    /// time (each connection is compared at its window's); when one offset fits every window,
    /// it is used throughout.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub clock_window: i64,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print when each step ended (reading each trace, the clock estimate, the comparison,
    /// the report) on stderr.
    #[arg(long, conflicts_with = "batch")]
    pub timings: bool,
    /// The two sides, in either order: `A B`, each a capture or a directory of captures
    /// (rotated files, read as one capture in time order); or several files a side, as
    /// `A1 A2 … -- B1 B2 …`.
    #[arg(value_name = "A", num_args = 1.., required_unless_present = "batch")]
    pub traces: Vec<PathBuf>,
    /// Side B's files, after `--`.
    #[arg(value_name = "B", last = true, conflicts_with = "batch")]
    pub side_b: Vec<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// The selection every command accepts; all given parts must hold (AND).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Selection (all given must hold)")]
pub struct SelectArgs {
    /// Packets at or after TIME: RFC 3339 (2024-05-01T14:05:00Z, 2024-05-01T16:05:00.5+02:00,
    /// up to nanoseconds), epoch seconds (1714572300.25), or after the first packet (+90s, +2m).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub after: Option<String>,
    /// Packets before TIME (the window is half-open: [after, before)); same forms as --after.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub before: Option<String>,
    /// A tcpdump expression (`host 192.0.2.1 and port 443`, `tcp[tcpflags] & tcp-syn != 0`,
    /// `vlan 10 and udp`…), compiled by libpcap, tcpdump's library, so it means exactly what
    /// it means to `tcpdump -r FILE EXPR`.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// A file of IPv4/IPv6 addresses and CIDR prefixes, one a line (`#` comments): packets
    /// whose source or destination (outermost IP header, or ARP) is in it. Any size: a
    /// million entries cost what one does.
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// Frame numbers as Wireshark counts them over the inputs read as one capture, in time
    /// order (the frames analyze cites): `1-100,250,300-`.
    #[arg(long, value_name = "RANGES")]
    pub frames: Option<String>,
    /// The packets of the flow with this Community ID (v1, e.g. 1:wCb3OG7yAFWelaUydu0D+125CLM=).
    #[arg(long, value_name = "ID")]
    pub community_id: Option<String>,
    /// The Community ID seed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u16,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The output capture; `-` writes it to standard output as a stream (`| tshark -r -`).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Output format. Default: by the output's name (.pcap, .pcapng), else pcap when every
    /// input is pcap with one link type, else pcapng; a format that contradicts the name is
    /// refused.
    #[arg(long, value_name = "FORMAT", value_parser = ["pcap", "pcapng"])]
    pub format: Option<String>,
    /// Compress the output: gzip or zstd (Zstandard, on every core), or none. Default: by the
    /// output's name (.gz, .zst).
    #[arg(long, value_name = "HOW", value_parser = ["gzip", "zstd", "none"])]
    pub compress: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Answer from this index (`tracekit index`) of the inputs: only the blocks the selection
    /// can match are read; the output is the full scan's, byte for byte. A stale or damaged
    /// index is refused.
    #[arg(long, value_name = "INDEX", conflicts_with = "inputs")]
    pub index: Option<PathBuf>,
    /// Capture files or directories of rotated files (searched recursively), read as one
    /// capture in time order.
    #[arg(required_unless_present = "index", value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The index directory (created; an index already there is brought up to date).
    #[arg(short = 'o', long = "output", value_name = "INDEX")]
    pub output: PathBuf,
    /// Start afresh: an index that cannot be read (damaged, another version) is replaced.
    #[arg(long)]
    pub rebuild: bool,
    /// Records after which a block of the index closes (it also closes at 1 MiB): fewer make
    /// a larger index that reads fewer records for a frequent key. Changing it re-indexes
    /// every file.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..=8192))]
    pub block_records: u32,
    /// Keep the flow table's counting state beside it (flows.state), so that when the set
    /// grows by files that come after it in time the next run counts only those, not every
    /// file again. It costs about what the flow table costs (0.8% of the captures on the
    /// bench). Once kept, later runs keep it up to date; --rebuild without it drops it.
    #[arg(long)]
    pub flow_state: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Capture files or directories of rotated files (searched recursively).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Row format: jsonl (one JSON object a line) or csv (a header row).
    #[arg(long, value_name = "FORMAT", value_parser = ["jsonl", "csv"], default_value = "jsonl")]
    pub format: String,
    /// Write the rows here instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only the N largest flows, by --by.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// What --top ranks by.
    #[arg(long, value_name = "WHAT", value_parser = ["bytes", "packets", "duration"], default_value = "bytes")]
    pub by: String,
    #[command(flatten)]
    pub select: SelectArgs,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Answer from this index (`tracekit index`) of the inputs: without a selection, the
    /// flow table it stored (no packet read); with one, only the blocks the selection can
    /// match are read. The rows are the full scan's, byte for byte. A stale or damaged index
    /// is refused.
    #[arg(long, value_name = "INDEX", conflicts_with = "inputs")]
    pub index: Option<PathBuf>,
    /// Capture files or directories of rotated files, read as one capture in time order.
    #[arg(required_unless_present = "index", value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The merged capture; `-` writes it to standard output as a stream (`| tshark -r -`;
    /// refused when standard output is a terminal). Progress and summary go to stderr.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Output format: pcapng (one interface per input and interface, named after the input
    /// file; name-resolution, decryption-secrets, copyable custom and interface-statistics
    /// blocks carried) or pcap (all inputs must share one link type; those blocks are left
    /// out and counted). Default: by the output's name (.pcap, .pcapng), else pcapng; a
    /// format that contradicts the name is refused.
    #[arg(long, value_name = "FORMAT", value_parser = ["pcap", "pcapng"])]
    pub format: Option<String>,
    /// Compress the output: gzip or zstd (Zstandard, on every core), or none. Default: by the
    /// output's name (.gz, .zst).
    #[arg(long, value_name = "HOW", value_parser = ["gzip", "zstd", "none"])]
    pub compress: Option<String>,
    /// auto: estimate every input's clock offset relative to the first input from the packets
    /// both saw (same payload, TLS hello random, TCP stream bytes, TCP timestamps, SYN initial
    /// sequence number, IPv4 ID, or sequence numbers once each direction's offset is removed),
    /// and apply it. none: merge
    /// the timestamps as they are.
    #[arg(long, value_name = "HOW", value_parser = ["auto", "none"], default_value = "none")]
    pub align: String,
    /// Shift one input's clock, e.g. server.pcap=-1.25s (by path or file name; may repeat).
    #[arg(long, value_name = "FILE=DURATION")]
    pub shift: Vec<String>,
    /// Concatenate the inputs in the order given instead of merging by time.
    #[arg(short = 'a', long, conflicts_with = "keep_order")]
    pub append: bool,
    /// Keep each input's own record order where its clock steps back (merge by time between
    /// inputs only). By default the output is strictly in time order, ties in input order, as
    /// reordercap makes it: `tracekit merge -o sorted.pcapng unsorted.pcap` sorts one file.
    #[arg(long)]
    pub keep_order: bool,
    /// Drop exact duplicates (same bytes and length) seen within WINDOW of each other.
    #[arg(long, value_name = "WINDOW", num_args = 0..=1, default_missing_value = "1ms", require_equals = true)]
    pub dedup: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Capture files or directories (searched recursively), in any number.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct InfoArgs {
    /// Print one JSON object per input file, each on its own line.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Worker threads for summarizing several files (default: one per core).
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Also print each file's digest (chain of custody): sha256 and/or blake3, as sha256sum and
    /// b3sum print them, of the file as stored. May repeat, or take a list: --hash sha256,blake3.
    #[arg(long = "hash", value_name = "ALGO", value_parser = ["sha256", "blake3"], value_delimiter = ',')]
    pub hash: Vec<String>,
    // With a selection, one summary of the selected packets of all inputs read as one
    // capture, instead of one per file.
    #[command(flatten)]
    pub select: SelectArgs,
    /// The summaries an index (`tracekit index`) recorded of its files, checked unchanged,
    /// without reading them: what `tracekit info` of the indexed inputs prints.
    #[arg(long, value_name = "INDEX", conflicts_with = "files")]
    pub index: Option<PathBuf>,
    /// Capture files (pcap, pcapng, gzip or zstd compressed), directories (searched
    /// recursively), or `-` for standard input.
    #[arg(required_unless_present = "index", value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // command-line switches
pub struct SplitArgs {
    /// What makes an output: stream (Wireshark's tcp.stream/udp.stream), host, host-pair,
    /// port (server port), count=N, size=BYTES (K/M/G), time=DURATION (e.g. 30s, 5m).
    #[arg(long = "by", value_name = "MODE", default_value = "stream")]
    pub by: String,
    /// Directory for the outputs (created when missing).
    #[arg(short = 'o', long = "output", value_name = "OUTDIR")]
    pub output: PathBuf,
    /// Write a flow index: CSV or JSON, by the file's extension.
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,
    /// Output format (default: the input's; pcapng when inputs differ).
    #[arg(long, value_name = "FORMAT", value_parser = ["pcap", "pcapng"])]
    pub format: Option<String>,
    /// Compress every output: gzip or zstd (its name gains .gz or .zst), or none (default).
    /// Each write to an output is a gzip member or zstd frame of its own: one stream to
    /// every reader. --by size counts the bytes before compression.
    #[arg(long, value_name = "HOW", value_parser = ["gzip", "zstd", "none"])]
    pub compress: Option<String>,
    /// Output file names: {id} {proto} {a} {aport} {b} {bport} {key} {n}, and {start} {end}
    /// (earliest and latest packet, UTC, e.g. 20240501T140500Z); the extension is added.
    #[arg(long, value_name = "TEMPLATE")]
    pub name: Option<String>,
    /// ICMP errors go with the TCP/UDP stream of the packet they quote.
    #[arg(long)]
    pub icmp_with_flow: bool,
    /// Key tunnelled packets (GRE, VXLAN, Geneve, IP-in-IP, Teredo, GTP-U) on the inner packet.
    #[arg(long)]
    pub inner: bool,
    /// Include the VLAN ID in the key (Wireshark does not).
    #[arg(long)]
    pub vlan: bool,
    /// Files open at once at most: each writer thread holds one (outputs are created once and
    /// reopened to append when a stream outlasts the buffer).
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_open_files: usize,
    /// Input bytes whose records wait before the outputs are written (K/M/G suffixes). Records
    /// are not copied: they stay in the mapped input, and each waiting record costs about 50
    /// bytes of memory; a larger buffer means fewer appends to long streams. A full buffer is
    /// written by the writer threads while the next one fills, so two can be held at once.
    #[arg(long, value_name = "BYTES", default_value = "1G")]
    pub buffer: String,
    /// Writer threads (default: one per core). The outputs are the same for any number.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Capture files or directories (searched recursively), read as one capture in time order.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// A duration above zero (`60s`, `5m`, `500ms`), in nanoseconds.
fn positive_duration(v: &str) -> Result<i64, String> {
    match tracekit_select::window::parse_duration(v)? {
        0 => Err("must be more than zero".to_string()),
        ns => Ok(ns),
    }
}
