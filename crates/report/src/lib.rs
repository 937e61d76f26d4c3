//! Renders an [`Analysis`] for people: text for the terminal (verdict first, a few evidence
//! bullets, the handshake side by side, caveats, a Wireshark filter for every claim) and JSON.
//! No analysis happens here.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use rayon::prelude::*;

pub mod html;

use tracekit_analyze::Analysis;
use tracekit_analyze::model::{
    ClosedBy, Connection, HandshakeView, Kind, Row, SetFrames, Sets, Side, Signal, kinds_text,
};

/// The analysis as pretty JSON (the documented `--json` output), streamed to a writer (big
/// analyses are not built in memory first).
pub fn write_json<W: std::io::Write>(a: &Analysis, out: W) -> std::io::Result<()> {
    write_json_chunked(a, out, 2048)
}

fn write_json_chunked<W: std::io::Write>(
    a: &Analysis,
    mut out: W,
    chunk_len: usize,
) -> std::io::Result<()> {
    // The same bytes as `serde_json::to_writer_pretty(out, a)`, but the connections (nearly
    // all of it: 350 MB for 66,693 connections) are serialized on every core, a chunk at a
    // time, each re-indented to its depth in the document.
    #[derive(serde::Serialize)]
    struct Shell<'a> {
        traces: &'a tracekit_analyze::model::Traces,
        swapped: bool,
        clock: &'a Option<tracekit_analyze::model::Clock>,
        connections: [(); 0],
        unmatched: &'a tracekit_analyze::model::Unmatched,
        #[serde(skip_serializing_if = "Option::is_none")]
        sets: &'a Option<Sets>,
    }
    let shell = serde_json::to_string_pretty(&Shell {
        traces: &a.traces,
        swapped: a.swapped,
        clock: &a.clock,
        connections: [],
        unmatched: &a.unmatched,
        sets: &a.sets,
    })?;
    let marker = "\"connections\": []";
    let at = shell.find(marker).expect("the shell has the field") + marker.len() - 1;
    if a.connections.is_empty() {
        return out.write_all(shell.as_bytes());
    }
    out.write_all(&shell.as_bytes()[..at])?;
    for (i, chunk) in a.connections.chunks(chunk_len).enumerate() {
        let parts: Vec<Result<Vec<u8>, serde_json::Error>> = chunk
            .par_iter()
            .map(|c| {
                let text = serde_json::to_vec_pretty(c)?;
                let mut v = Vec::with_capacity(text.len() + text.len() / 8);
                v.extend_from_slice(b"\n    ");
                for (k, line) in text.split(|&b| b == b'\n').enumerate() {
                    if k > 0 {
                        v.extend_from_slice(b"\n    ");
                    }
                    v.extend_from_slice(line);
                }
                Ok(v)
            })
            .collect();
        for (k, part) in parts.into_iter().enumerate() {
            if i > 0 || k > 0 {
                out.write_all(b",")?;
            }
            out.write_all(&part?)?;
        }
    }
    out.write_all(b"\n  ")?;
    out.write_all(&shell.as_bytes()[at..])
}

fn seconds(ns: i64) -> String {
    let v = ns as f64 / 1e9;
    if v.abs() < 1e-3 {
        format!("{:.1} µs", v * 1e6)
    } else if v.abs() < 1.0 {
        format!("{:.3} ms", v * 1e3)
    } else {
        format!("{v:.6} s")
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

/// Connections per chunk of the text report written on one core.
const TEXT_CHUNK: usize = 1024;

/// Chunks written on every core between two writes to the output, so the report of a trace
/// with millions of connections is never all in memory at once.
const CHUNKS_PER_WRITE: usize = 64;

/// Rows of the summary table without `all`: a person does not read more, and the tally above
/// the table counts every connection.
pub const ROWS_SHOWN: usize = 1000;

/// Connections shown in full without `all`: the first failed or odd ones (the report's
/// order puts them first), or the first connection when none is.
pub const DETAILED: usize = 20;

/// Groups of the verdict tally shown (the largest; the rest are counted on one line).
pub const TALLY_SHOWN: usize = 12;

/// The text report: a verdict tally when more than [`DETAILED`] connections were found, a
/// summary table when several were, then connections in full: every one with `all`, else the first [`DETAILED`] failed or odd
/// ones (or the first connection when none is), and at most [`ROWS_SHOWN`] table rows.
#[must_use]
pub fn text(a: &Analysis, all: bool) -> String {
    text_chunked(a, all, TEXT_CHUNK)
}

fn text_chunked(a: &Analysis, all: bool, chunk: usize) -> String {
    let mut out = Vec::new();
    write_text_chunked(a, all, &mut out, chunk).expect("writing to memory does not fail");
    String::from_utf8(out).expect("the report is UTF-8")
}

/// [`text`] streamed to a writer, a few thousand connections at a time.
pub fn write_text<W: std::io::Write>(a: &Analysis, all: bool, out: W) -> std::io::Result<()> {
    write_text_chunked(a, all, out, TEXT_CHUNK)
}

fn write_text_chunked<W: std::io::Write>(
    a: &Analysis,
    all: bool,
    mut out: W,
    chunk: usize,
) -> std::io::Result<()> {
    out.write_all(head(a).as_bytes())?;
    let n = a.rows.len();
    if n == 0 {
        return out.write_all(b"\nNo connection was found in both traces.\n");
    }
    if n > DETAILED {
        out.write_all(tally(a).as_bytes())?;
    }
    if n > 1 {
        // The middlebox column is as wide as its longest list of kinds.
        let shown = if all { n } else { n.min(ROWS_SHOWN) };
        let width = a.rows[..shown]
            .iter()
            .map(|r| kinds_len(&r.kinds))
            .max()
            .unwrap_or(0)
            .max(24);
        writeln!(
            out,
            "\n  #  {:<24} {:<24} {:<10} {:<7} {:<width$} {:<10} confidence",
            "client", "server", "matched", "result", "middlebox", "closed by"
        )?;
        in_parallel(&a.rows[..shown], chunk, &mut out, |w, first, rs| {
            for (k, r) in rs.iter().enumerate() {
                row(w, first + k + 1, r, width);
            }
        })?;
        if shown < n {
            writeln!(
                out,
                "… and {} more (--all lists every connection; --json has them all)",
                n - shown
            )?;
        }
    }
    // (The analysis keeps every connection in full for `all`, else at least the first ones in
    // report order, where the failed and odd ones come first.)
    if all {
        return in_parallel(&a.connections, chunk, &mut out, |w, first, cs| {
            for (k, c) in cs.iter().enumerate() {
                connection(w, first + k + 1, c, a.sets.as_ref());
            }
        });
    }
    let notable = a.rows.iter().filter(|r| r.notable()).count();
    let mut shown: Vec<(usize, &Connection)> = a
        .connections
        .iter()
        .enumerate()
        .filter(|(_, c)| c.notable())
        .take(DETAILED)
        .collect();
    let more = notable.saturating_sub(shown.len());
    if shown.is_empty()
        && let Some(c) = a.connections.first()
    {
        shown.push((0, c));
    }
    let mut w = String::new();
    for (i, c) in shown {
        connection(&mut w, i + 1, c, a.sets.as_ref());
    }
    out.write_all(w.as_bytes())?;
    if more > 0 {
        writeln!(
            out,
            "\n… and {more} more failed or odd connections not shown in full (--all shows every connection in full, --conn ADDR:PORT one of them)"
        )?;
    }
    Ok(())
}

/// The lines about the two traces, the clock and the counts.
fn head(a: &Analysis) -> String {
    let mut out = String::new();
    let w = &mut out;
    // A side read as a set says how many files it is.
    let files = |side: Option<&SetFrames>| match side {
        Some(s) if s.files.len() == 1 => "1 file, ".to_string(),
        Some(s) => format!("{} files, ", s.files.len()),
        None => String::new(),
    };
    let sets = a.sets.as_ref();
    let _ = writeln!(
        w,
        "client side: {} ({}{} packets)\nserver side: {} ({}{} packets){}",
        a.traces.a.name,
        files(sets.and_then(|s| s.a.as_ref())),
        a.traces.a.packets,
        a.traces.b.name,
        files(sets.and_then(|s| s.b.as_ref())),
        a.traces.b.packets,
        if a.swapped {
            "  [the second trace is the client side]"
        } else {
            ""
        }
    );
    match &a.clock {
        Some(c) => {
            let interval = match (c.lo_ns, c.hi_ns) {
                (Some(lo), Some(hi)) => format!(", feasible [{}, {}]", seconds(lo), seconds(hi)),
                _ => " (matched one way only: no interval)".to_string(),
            };
            let kinds: Vec<String> = c.by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let _ = writeln!(
                w,
                "clock: server side {} relative to client side{interval}, from {} matched packets ({})",
                seconds(c.offset_ns),
                c.matches,
                kinds.join(", ")
            );
            if let (Some(d), Some(first), Some(last)) = (
                &c.drift,
                c.drift.as_ref().and_then(|d| d.windows.first()),
                c.drift.as_ref().and_then(|d| d.windows.last()),
            ) {
                let _ = writeln!(
                    w,
                    "clock drift: the server side's clock gains {:.1} ppm on the client side's; no single offset fits, so each connection is compared at the offset of its {} s window ({} windows, from {} to {})",
                    d.ppm,
                    d.window_ns as f64 / 1e9,
                    d.windows.len(),
                    seconds(first.offset_ns),
                    seconds(last.offset_ns)
                );
            }
        }
        None => {
            let _ = writeln!(
                w,
                "clock: no packet matched between the traces; times are not aligned"
            );
        }
    }
    let failed = a.rows.iter().filter(|r| r.failed).count();
    let _ = writeln!(
        w,
        "connections in both traces: {} ({failed} failed); in one trace only: {} client side, {} server side",
        a.rows.len(),
        a.unmatched.a,
        a.unmatched.b
    );
    out
}

/// Connections with the same result, middlebox kinds and closer.
#[derive(Debug)]
pub struct VerdictGroup<'a> {
    pub failed: bool,
    pub kinds: &'a [Kind],
    pub closed_by: ClosedBy,
    pub count: usize,
}

/// The connections counted by result, middlebox and closer, the largest groups first (failed
/// before ok among equals).
#[must_use]
pub fn verdict_groups(a: &Analysis) -> Vec<VerdictGroup<'_>> {
    let mut groups: FxHashMap<(bool, &[Kind], ClosedBy), usize> = FxHashMap::default();
    for r in &a.rows {
        *groups
            .entry((r.failed, &r.kinds[..], r.closed_by))
            .or_default() += 1;
    }
    let mut groups: Vec<VerdictGroup> = groups
        .into_iter()
        .map(|((failed, kinds, closed_by), count)| VerdictGroup {
            failed,
            kinds,
            closed_by,
            count,
        })
        .collect();
    groups.sort_unstable_by(|x, y| {
        (y.count.cmp(&x.count))
            .then(y.failed.cmp(&x.failed))
            .then(x.kinds.cmp(y.kinds))
            .then(x.closed_by.cmp(&y.closed_by))
    });
    groups
}

/// The verdict tally: [`TALLY_SHOWN`] groups, the rest counted on one line.
fn tally(a: &Analysis) -> String {
    let groups = verdict_groups(a);
    let width = groups
        .iter()
        .take(TALLY_SHOWN)
        .map(|g| kinds_len(g.kinds))
        .max()
        .unwrap_or(0)
        .max(24);
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "\nBy verdict:\n  {:>9}  {:<7} {:<width$} closed by",
        "count", "result", "middlebox"
    );
    for g in groups.iter().take(TALLY_SHOWN) {
        let _ = writeln!(
            w,
            "  {:>9}  {:<7} {:<width$} {}",
            g.count,
            if g.failed { "failed" } else { "ok" },
            kinds_text(g.kinds, ","),
            g.closed_by
        );
    }
    if groups.len() > TALLY_SHOWN {
        let rest = &groups[TALLY_SHOWN..];
        let _ = writeln!(
            w,
            "  {:>9}  in {} other groups",
            rest.iter().map(|g| g.count).sum::<usize>(),
            rest.len()
        );
    }
    out
}

/// The length of `kinds` joined by commas, without joining them.
fn kinds_len(kinds: &[Kind]) -> usize {
    kinds
        .iter()
        .map(|k| k.as_str().len() + 1)
        .sum::<usize>()
        .saturating_sub(1)
}

/// One row of the summary table.
fn row(w: &mut String, n: usize, c: &Row, width: usize) {
    // (Endpoints are padded as strings: their `Display` writes the pieces.)
    let _ = writeln!(
        w,
        "{n:>3}  {:<24} {:<24} {:<10} {:<7} {:<width$} {:<10} {}",
        c.client.to_string(),
        c.server.to_string(),
        c.matched_by,
        if c.failed { "failed" } else { "ok" },
        kinds_text(&c.kinds, ","),
        c.closed_by,
        c.confidence
    );
}

/// Writes `items` (rows or connections) to `out` through `each(text, number of the first -
/// 1, chunk)`, run on every core a chunk at a time (for tens of thousands of connections, the rows and
/// details were most of the report's time), [`CHUNKS_PER_WRITE`] chunks between writes.
fn in_parallel<W: std::io::Write, T: Sync>(
    items: &[T],
    chunk: usize,
    out: &mut W,
    each: impl Fn(&mut String, usize, &[T]) + Sync,
) -> std::io::Result<()> {
    let group = chunk.saturating_mul(CHUNKS_PER_WRITE);
    for (g, cs) in items.chunks(group).enumerate() {
        let parts: Vec<String> = cs
            .par_chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                let mut w = String::new();
                each(&mut w, g * group + n * chunk, part);
                w
            })
            .collect();
        for p in parts {
            out.write_all(p.as_bytes())?;
        }
    }
    Ok(())
}

fn connection(w: &mut String, n: usize, c: &Connection, sets: Option<&Sets>) {
    let _ = writeln!(
        w,
        "\n── {n}. {} → {} ({}) ──",
        c.client,
        c.server,
        if c.failed { "failed" } else { "ok" }
    );
    let _ = writeln!(w, "{}", c.verdict);
    let _ = writeln!(
        w,
        "middlebox: {}{}{}; closed by: {}; confidence: {}; matched by {}",
        kinds_text(&c.middlebox.kind, ", "),
        match c.middlebox.transparent {
            Some(true) => " (transparent)",
            Some(false) => " (not transparent)",
            None => "",
        },
        match (&c.middlebox.vendor, &c.middlebox.mac) {
            (Some(vendor), Some(mac)) => format!(", MAC {mac} ({vendor})"),
            (None, Some(mac)) => format!(", MAC {mac}"),
            _ => String::new(),
        },
        c.closed_by,
        c.confidence,
        c.matched_by
    );
    let _ = writeln!(w, "why closed by {}: {}", c.closed_by, c.close_proof);
    if !c.evidence.is_empty() {
        // The most decisive evidence first, at most five bullets; the rest on one line each.
        let mut ev: Vec<_> = c.evidence.iter().collect();
        ev.sort_by_key(|e| (!e.middlebox_evidence, weight(e.signal)));
        let (main, rest) = ev.split_at(ev.len().min(5));
        let _ = writeln!(w, "\nEvidence:");
        for e in main {
            let _ = writeln!(w, "  • {}", sentence(&e.detail));
            filters(w, e, "      ");
        }
        if !rest.is_empty() {
            let _ = writeln!(w, "\nAlso:");
            for e in rest {
                let _ = writeln!(w, "  - [{}] {}", e.signal, sentence(&e.detail));
                filters(w, e, "      ");
            }
        }
    }
    let _ = writeln!(w, "\nAs each capture point saw it:");
    let at = |side: fn(&Sets) -> Option<&SetFrames>| At(sets.and_then(side));
    table(
        w,
        (&c.sides.a, at(|s| s.a.as_ref())),
        (&c.sides.b, at(|s| s.b.as_ref())),
    );
    if !c.caveats.is_empty() {
        let _ = writeln!(w, "\nCaveats:");
        for k in &c.caveats {
            let _ = writeln!(w, "  - {k}");
        }
    }
    let _ = writeln!(
        w,
        "\nWireshark, this connection:\n  client side `{}`\n  server side `{}`",
        c.sides.a.wireshark_filter, c.sides.b.wireshark_filter
    );
}

/// How decisive a signal is for the verdict, lowest first (presentation order only).
fn weight(signal: Signal) -> u8 {
    match signal {
        Signal::FinFasterThanRtt => 0,
        Signal::SplitHandshake => 1,
        Signal::InjectedInPath => 2,
        Signal::TtlOriginMismatch => 3,
        Signal::DroppedInPath => 4,
        Signal::AddressesTranslated | Signal::PortsTranslated => 5,
        Signal::IsnRewritten => 6,
        Signal::IpidRewritten => 7,
        Signal::MssRewritten | Signal::EcnStripped => 8,
        Signal::OptionsRewritten | Signal::WscaleRewritten | Signal::TsoOversize => 9,
    }
}

/// A detail as a sentence: capital first letter, full stop.
fn sentence(detail: &str) -> String {
    let mut chars = detail.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn filters(w: &mut String, e: &tracekit_analyze::Evidence, indent: &str) {
    let frames = |f: &[u64]| f.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let noun = |f: &[u64]| if f.len() == 1 { "frame" } else { "frames" };
    // A side read as a set: each file with its own frames and filter.
    if !e.files_a.is_empty() || !e.files_b.is_empty() {
        for (side, groups) in [("client", &e.files_a), ("server", &e.files_b)] {
            for g in groups {
                let (n, f) = (noun(&g.frames), frames(&g.frames));
                let _ = writeln!(w, "{indent}{side} side {} {n} {f}: `{}`", g.file, g.filter);
            }
        }
        if e.files_a.is_empty()
            && let Some(fa) = &e.filter_a
        {
            let (n, f) = (noun(&e.frames_a), frames(&e.frames_a));
            let _ = writeln!(w, "{indent}client side {n} {f}: `{fa}`");
        }
        if e.files_b.is_empty()
            && let Some(fb) = &e.filter_b
        {
            let (n, f) = (noun(&e.frames_b), frames(&e.frames_b));
            let _ = writeln!(w, "{indent}server side {n} {f}: `{fb}`");
        }
        return;
    }
    if let Some(fa) = &e.filter_a {
        let (n, f) = (noun(&e.frames_a), frames(&e.frames_a));
        let _ = writeln!(w, "{indent}client side {n} {f}: `{fa}`");
    }
    if let Some(fb) = &e.filter_b {
        let (n, f) = (noun(&e.frames_b), frames(&e.frames_b));
        let _ = writeln!(w, "{indent}server side {n} {f}: `{fb}`");
    }
}

fn hs<F: Fn(&HandshakeView) -> String>(h: Option<&HandshakeView>, f: F) -> String {
    h.map_or_else(|| "–".to_string(), f)
}

/// How a side's frames are named: their number, or for a side read as a set the file and the
/// frame within it.
#[derive(Clone, Copy)]
struct At<'a>(Option<&'a SetFrames>);

impl At<'_> {
    fn frame(self, f: u64) -> String {
        match self.0.and_then(|s| s.locate(f)) {
            Some((file, local)) => format!("{file} #{local}"),
            None => f.to_string(),
        }
    }
}

#[allow(clippy::too_many_lines)] // one row per line: a table, not logic
fn table(w: &mut String, (a, at_a): (&Side, At<'_>), (b, at_b): (&Side, At<'_>)) {
    let rows: Vec<(&str, String, String)> = vec![
        (
            "connection",
            format!("{} → {}", a.client, a.server),
            format!("{} → {}", b.client, b.server),
        ),
        (
            "SYN frame",
            hs(a.syn.as_ref(), |h| at_a.frame(h.frame)),
            hs(b.syn.as_ref(), |h| at_b.frame(h.frame)),
        ),
        (
            "SYN TTL (initial, hops)",
            hs(a.syn.as_ref(), ttl),
            hs(b.syn.as_ref(), ttl),
        ),
        (
            "SYN IP ID",
            hs(a.syn.as_ref(), ipid),
            hs(b.syn.as_ref(), ipid),
        ),
        (
            "SYN ISN (raw)",
            hs(a.syn.as_ref(), |h| h.isn.to_string()),
            hs(b.syn.as_ref(), |h| h.isn.to_string()),
        ),
        (
            "SYN MSS / wscale",
            hs(a.syn.as_ref(), mss_ws),
            hs(b.syn.as_ref(), mss_ws),
        ),
        (
            "SYN SACK / TS",
            hs(a.syn.as_ref(), sack_ts),
            hs(b.syn.as_ref(), sack_ts),
        ),
        ("SYN ECN", hs(a.syn.as_ref(), ecn), hs(b.syn.as_ref(), ecn)),
        (
            "SYN options",
            hs(a.syn.as_ref(), |h| h.options.clone()),
            hs(b.syn.as_ref(), |h| h.options.clone()),
        ),
        (
            "SYN/ACK frame",
            hs(a.syn_ack.as_ref(), |h| at_a.frame(h.frame)),
            hs(b.syn_ack.as_ref(), |h| at_b.frame(h.frame)),
        ),
        (
            "SYN/ACK TTL (initial, hops)",
            hs(a.syn_ack.as_ref(), ttl),
            hs(b.syn_ack.as_ref(), ttl),
        ),
        (
            "SYN/ACK ISN (raw)",
            hs(a.syn_ack.as_ref(), |h| h.isn.to_string()),
            hs(b.syn_ack.as_ref(), |h| h.isn.to_string()),
        ),
        (
            "SYN/ACK MSS / wscale",
            hs(a.syn_ack.as_ref(), mss_ws),
            hs(b.syn_ack.as_ref(), mss_ws),
        ),
        (
            "SYN/ACK ECN",
            hs(a.syn_ack.as_ref(), ecn),
            hs(b.syn_ack.as_ref(), ecn),
        ),
        ("handshake RTT", rtt(a), rtt(b)),
        (
            "IP ID client / server",
            format!("{} / {}", a.ip_id_client, a.ip_id_server),
            format!("{} / {}", b.ip_id_client, b.ip_id_server),
        ),
        (
            "client's MAC",
            mac(a.client_mac.as_ref()),
            mac(b.client_mac.as_ref()),
        ),
        (
            "server's MAC",
            mac(a.server_mac.as_ref()),
            mac(b.server_mac.as_ref()),
        ),
        (
            "first close by client",
            close(a.client_close.as_ref(), at_a),
            close(b.client_close.as_ref(), at_b),
        ),
        (
            "first close by server",
            close(a.server_close.as_ref(), at_a),
            close(b.server_close.as_ref(), at_b),
        ),
        ("TLS", tls(a), tls(b)),
        (
            "segments > MSS (client/server)",
            format!(
                "{} / {}",
                a.over_mss_sent_by_client.count, a.over_mss_sent_by_server.count
            ),
            format!(
                "{} / {}",
                b.over_mss_sent_by_client.count, b.over_mss_sent_by_server.count
            ),
        ),
    ];
    let width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(11);
    let _ = writeln!(w, "  {:<30} {:<width$}  server side", "", "client side");
    for (name, x, y) in rows {
        let mark = if x != y && name != "connection" {
            "≠"
        } else {
            " "
        };
        let _ = writeln!(w, "  {name:<30} {x:<width$} {mark} {y}");
    }
}

fn ttl(h: &HandshakeView) -> String {
    format!("{} ({}, {})", h.ttl, h.initial_ttl, h.hops)
}
fn ipid(h: &HandshakeView) -> String {
    opt(h.ip_id.map(|i| format!("0x{i:04x}")))
}
fn mss_ws(h: &HandshakeView) -> String {
    format!("{} / {}", opt(h.mss), opt(h.window_scale))
}
fn sack_ts(h: &HandshakeView) -> String {
    format!(
        "{} / {}",
        if h.sack_permitted { "yes" } else { "no" },
        if h.timestamps { "yes" } else { "no" }
    )
}
fn ecn(h: &HandshakeView) -> String {
    if h.ecn.is_empty() {
        "none".to_string()
    } else {
        h.ecn.clone()
    }
}
fn rtt(s: &Side) -> String {
    match (s.rtt_ms, s.towards_server_ms, s.towards_client_ms) {
        (Some(r), Some(a), Some(b)) => format!("{r:.3} ms ({a:.3} + {b:.3})"),
        (r, _, _) => opt(r.map(|r| format!("{r:.3} ms"))),
    }
}
fn mac(m: Option<&tracekit_analyze::model::MacView>) -> String {
    m.map_or_else(
        || "–".to_string(),
        |m| match &m.vendor {
            Some(v) => format!("{} ({})", m.mac, short(v)),
            None => m.mac.clone(),
        },
    )
}
fn short(v: &str) -> String {
    v.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}
fn close(c: Option<&tracekit_analyze::model::CloseView>, at: At<'_>) -> String {
    c.map_or_else(
        || "–".to_string(),
        |c| format!("{} frame {} TTL {}", c.kind, at.frame(c.frame), c.ttl),
    )
}
fn tls(s: &Side) -> String {
    if s.tls_progress.is_empty() {
        return "–".to_string();
    }
    let steps: Vec<String> = s
        .tls_progress
        .iter()
        .take(4)
        .map(|t| {
            format!(
                "{}{}",
                if t.from == "client" { "C:" } else { "S:" },
                t.message.replace(' ', "")
            )
        })
        .collect();
    steps.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracekit_analyze::{ConnTable, Input};

    fn table(name: &str) -> ConnTable {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata")
            .join(name);
        let capture = tracekit_capture::Capture::open(&path).unwrap();
        let mut t = tracekit_analyze::TableBuilder::new(None);
        for (n, r) in capture.records().map_while(Result::ok).enumerate() {
            t.add(n as u64 + 1, r.ts.0, r.link.0, r.data);
        }
        t.finish()
    }

    /// The bundled demo pair (three connections), without clock alignment.
    fn firewall_analysis() -> Analysis {
        let (a, b) = (
            table("firewall-client.pcapng"),
            table("firewall-server.pcapng"),
        );
        tracekit_analyze::analyze(
            Input {
                name: "a",
                table: &a,
            },
            Input {
                name: "b",
                table: &b,
            },
            None,
        )
    }

    /// The demo's connections repeated `n` times, connection `i` failed when `failed(i)` and
    /// with no middlebox when `plain(i)`.
    fn many(n: usize, failed: impl Fn(usize) -> bool, plain: impl Fn(usize) -> bool) -> Analysis {
        let mut analysis = firewall_analysis();
        let base = analysis.connections.clone();
        analysis.connections = (0..n)
            .map(|i| {
                let mut c = base[i % base.len()].clone();
                c.failed = failed(i);
                if plain(i) {
                    c.middlebox.kind = vec![Kind::None];
                }
                c
            })
            .collect();
        let endpoint = |e: &str| {
            let sa: std::net::SocketAddr = e.parse().unwrap();
            tracekit_wire::Endpoint {
                addr: sa.ip(),
                port: sa.port(),
            }
        };
        analysis.rows = analysis
            .connections
            .iter()
            .map(|c| Row {
                client: endpoint(&c.client),
                server: endpoint(&c.server),
                matched_by: c.matched_by,
                failed: c.failed,
                kinds: tracekit_analyze::model::kinds_of(&c.middlebox.kind),
                closed_by: c.closed_by,
                confidence: c.confidence,
            })
            .collect();
        analysis
    }

    #[test]
    fn text_written_in_chunks_is_the_text_written_at_once() {
        // 300 connections, notable ones (shown in full) on either side of the chunk
        // boundaries.
        let analysis = many(300, |i| i % 7 == 0, |i| i % 2 == 0);
        let want = text_chunked(&analysis, false, usize::MAX);
        assert!(want.contains("\n300  "), "rows numbered to the end");
        let all = text_chunked(&analysis, true, usize::MAX);
        assert_eq!(all.matches("\n── ").count(), 300);
        for chunk in [1, 7, 64, 299] {
            assert_eq!(text_chunked(&analysis, false, chunk), want, "chunk {chunk}");
            assert_eq!(
                text_chunked(&analysis, true, chunk),
                all,
                "chunk {chunk}, all"
            );
        }
    }

    #[test]
    fn a_report_of_many_connections_stays_short_and_counts_them_all() {
        let n = ROWS_SHOWN + 500;
        // Failed: every 5th; odd (a middlebox): the odd-numbered ones.
        let analysis = many(n, |i| i % 5 == 0, |i| i % 2 == 0);
        let notable = (0..n).filter(|i| i % 5 == 0 || i % 2 == 1).count();
        let text = text(&analysis, false);
        let lines: Vec<&str> = text.lines().collect();
        // The tally counts every connection, in groups that add up.
        let at = lines.iter().position(|l| *l == "By verdict:").unwrap();
        let counted: usize = lines[at + 2..]
            .iter()
            .take_while(|l| !l.is_empty())
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert_eq!(counted, n);
        let failed_plain: usize = lines[at + 2..]
            .iter()
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| w[1..3] == ["failed", "none"])
            .map(|w| w[0].parse::<usize>().unwrap())
            .sum();
        assert_eq!(
            failed_plain,
            (0..n).filter(|i| i % 5 == 0 && i % 2 == 0).count()
        );
        // The table stops after ROWS_SHOWN rows and says how many it left out.
        let row = |k: usize| format!("{k:>3}  ");
        assert!(lines.iter().any(|l| l.starts_with(&row(ROWS_SHOWN))));
        assert!(!lines.iter().any(|l| l.starts_with(&row(ROWS_SHOWN + 1))));
        assert!(text.contains(&format!(
            "… and {} more (--all lists every connection",
            n - ROWS_SHOWN
        )));
        // The first DETAILED notable connections in full, then a count of the others.
        assert_eq!(text.matches("\n── ").count(), DETAILED);
        assert!(text.contains(&format!(
            "… and {} more failed or odd connections not shown in full",
            notable - DETAILED
        )));
        let numbers: Vec<usize> = text
            .lines()
            .filter_map(|l| l.strip_prefix("── ")?.split('.').next()?.parse().ok())
            .collect();
        let want: Vec<usize> = (0..n)
            .filter(|i| i % 5 == 0 || i % 2 == 1)
            .take(DETAILED)
            .map(|i| i + 1)
            .collect();
        assert_eq!(numbers, want);
        // The HTML page likewise.
        let page = html::page(&analysis);
        assert!(page.contains("<h2>By verdict</h2>"));
        assert!(page.contains(&format!("the first {ROWS_SHOWN} of {n}")));
        assert!(page.contains(&format!("<td>{ROWS_SHOWN}</td>")));
        assert!(!page.contains(&format!("<td>{}</td>", ROWS_SHOWN + 1)));
        // With `all`, everything and no note of what was left out.
        let all = super::text(&analysis, true);
        assert_eq!(all.matches("\n── ").count(), n);
        assert!(all.contains(&format!("\n{n}  ")));
        assert!(!all.contains("… and "));
        // Nothing notable: the first connection in full, and no note.
        let plain = super::text(&many(n, |_| false, |_| true), false);
        let numbers: Vec<&str> = plain.lines().filter(|l| l.starts_with("── ")).collect();
        assert_eq!(numbers.len(), 1);
        assert!(numbers[0].starts_with("── 1. "), "{numbers:?}");
        assert!(!plain.contains("not shown in full"));
        // A few connections: no tally, every row.
        let few = super::text(&many(DETAILED, |i| i % 5 == 0, |_| true), false);
        assert!(!few.contains("By verdict:"));
        assert!(!few.contains("… and "));
    }

    #[test]
    fn parallel_json_is_byte_for_byte_serde_json_pretty() {
        let analysis = firewall_analysis();
        assert_eq!(analysis.connections.len(), 3);
        let want = serde_json::to_vec_pretty(&analysis).unwrap();
        for chunk in [1, 2, 3, 2048] {
            let mut got = Vec::new();
            write_json_chunked(&analysis, &mut got, chunk).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want.clone()).unwrap()
            );
        }
        // And with a side read as a set.
        let mut set = analysis.clone();
        set.sets = Some(Sets {
            a: Some(SetFrames {
                files: vec!["x.pcap".into(), "y.pcap".into()],
                runs: vec![(1, 0, 1), (40, 1, 1)],
            }),
            b: None,
        });
        let mut got = Vec::new();
        write_json_chunked(&set, &mut got, 2).unwrap();
        assert_eq!(got, serde_json::to_vec_pretty(&set).unwrap());
        // And with no connection at all.
        let empty = tracekit_analyze::analyze(
            Input {
                name: "a",
                table: &table("firewall-client.pcapng"),
            },
            Input {
                name: "c",
                table: &table("handshake.pcap"),
            },
            None,
        );
        assert!(empty.connections.is_empty());
        let mut got = Vec::new();
        write_json(&empty, &mut got).unwrap();
        assert_eq!(got, serde_json::to_vec_pretty(&empty).unwrap());
    }
}
