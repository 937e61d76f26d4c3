//! Renders an [`Analysis`] for people: text for the terminal (verdict first, a few evidence
//! bullets, the handshake side by side, caveats, a Wireshark filter for every claim) and JSON.
//! No analysis happens here.

use std::fmt::Write;

use rayon::prelude::*;

pub mod html;

use tracekit_analyze::Analysis;
use tracekit_analyze::model::{Connection, HandshakeView, Side};

/// The analysis as pretty JSON (the documented `--json` output).
#[must_use]
pub fn json(a: &Analysis) -> String {
    serde_json::to_string_pretty(a).expect("the model serializes")
}

/// [`json`] streamed to a writer (big analyses are not built in memory first).
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
    }
    let shell = serde_json::to_string_pretty(&Shell {
        traces: &a.traces,
        swapped: a.swapped,
        clock: &a.clock,
        connections: [],
        unmatched: &a.unmatched,
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

/// The text report: a summary table when several connections were found, then each
/// connection (all of them with `all`, else the failed or odd ones and the first one).
#[must_use]
pub fn text(a: &Analysis, all: bool) -> String {
    text_chunked(a, all, TEXT_CHUNK)
}

fn text_chunked(a: &Analysis, all: bool, chunk: usize) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "client side: {} ({} packets)\nserver side: {} ({} packets){}",
        a.traces.a.name,
        a.traces.a.packets,
        a.traces.b.name,
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
        }
        None => {
            let _ = writeln!(
                w,
                "clock: no packet matched between the traces; times are not aligned"
            );
        }
    }
    let failed = a.connections.iter().filter(|c| c.failed).count();
    let _ = writeln!(
        w,
        "connections in both traces: {} ({failed} failed); in one trace only: {} client side, {} server side",
        a.connections.len(),
        a.unmatched.a,
        a.unmatched.b
    );
    if a.connections.is_empty() {
        let _ = writeln!(w, "\nNo connection was found in both traces.");
        return out;
    }
    if a.connections.len() > 1 {
        let _ = writeln!(w);
        // The middlebox column is as wide as its longest list of kinds.
        let kinds: Vec<String> = a
            .connections
            .iter()
            .map(|c| c.middlebox.kind.join(","))
            .collect();
        let width = kinds.iter().map(String::len).max().unwrap_or(0).max(24);
        let _ = writeln!(
            w,
            "  #  {:<24} {:<24} {:<10} {:<7} {:<width$} {:<10} confidence",
            "client", "server", "matched", "result", "middlebox", "closed by"
        );
        out.push_str(&rows(a, &kinds, width, chunk));
    }
    out.push_str(&details(a, all, chunk));
    out
}

/// The summary table's rows, written on every core a chunk of connections at a time (for
/// tens of thousands of connections, the rows and details were most of the report's time).
fn rows(a: &Analysis, kinds: &[String], width: usize, chunk: usize) -> String {
    let parts: Vec<String> = a
        .connections
        .par_chunks(chunk)
        .zip(kinds.par_chunks(chunk))
        .enumerate()
        .map(|(n, (cs, ks))| {
            let mut w = String::with_capacity(cs.len() * 128);
            for (k, (c, kind)) in cs.iter().zip(ks).enumerate() {
                let _ = writeln!(
                    w,
                    "{:>3}  {:<24} {:<24} {:<10} {:<7} {kind:<width$} {:<10} {}",
                    n * chunk + k + 1,
                    c.client,
                    c.server,
                    c.matched_by,
                    if c.failed { "failed" } else { "ok" },
                    c.closed_by,
                    c.confidence
                );
            }
            w
        })
        .collect();
    parts.concat()
}

/// Each connection in full (all of them with `all`, else the failed or odd ones and the
/// first one), on every core like [`rows`].
fn details(a: &Analysis, all: bool, chunk: usize) -> String {
    let parts: Vec<String> = a
        .connections
        .par_chunks(chunk)
        .enumerate()
        .map(|(n, cs)| {
            let mut w = String::new();
            for (k, c) in cs.iter().enumerate() {
                let i = n * chunk + k;
                let notable = c.failed || c.middlebox.kind != ["none"];
                if all || i == 0 || notable {
                    connection(&mut w, i + 1, c);
                }
            }
            w
        })
        .collect();
    parts.concat()
}

fn connection(w: &mut String, n: usize, c: &Connection) {
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
        c.middlebox.kind.join(", "),
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
    table(w, &c.sides.a, &c.sides.b);
    if !c.caveats.is_empty() {
        let _ = writeln!(w, "\nCaveats:");
        for k in &c.caveats {
            let _ = writeln!(w, "  - {k}");
        }
    }
    let _ = writeln!(
        w,
        "\nWireshark: client side `tcp.port == {}`{}",
        c.client_port,
        if c.sides.b.client == c.sides.a.client {
            String::new()
        } else {
            format!(
                ", server side `tcp.port == {}`",
                c.sides.b.client.rsplit(':').next().unwrap_or("")
            )
        }
    );
}

/// How decisive a signal is for the verdict, lowest first (presentation order only).
fn weight(signal: &str) -> u8 {
    match signal {
        "fin-faster-than-rtt" => 0,
        "split-handshake" => 1,
        "injected-in-path" => 2,
        "ttl-origin-mismatch" => 3,
        "dropped-in-path" => 4,
        "addresses-translated" | "ports-translated" => 5,
        "isn-rewritten" => 6,
        "ipid-rewritten" => 7,
        "mss-rewritten" | "ecn-stripped" => 8,
        _ => 9,
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

#[allow(clippy::too_many_lines)] // one row per line: a table, not logic
fn table(w: &mut String, a: &Side, b: &Side) {
    let rows: Vec<(&str, String, String)> = vec![
        (
            "connection",
            format!("{} → {}", a.client, a.server),
            format!("{} → {}", b.client, b.server),
        ),
        (
            "SYN frame",
            hs(a.syn.as_ref(), |h| h.frame.to_string()),
            hs(b.syn.as_ref(), |h| h.frame.to_string()),
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
            hs(a.syn_ack.as_ref(), |h| h.frame.to_string()),
            hs(b.syn_ack.as_ref(), |h| h.frame.to_string()),
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
            close(a.client_close.as_ref()),
            close(b.client_close.as_ref()),
        ),
        (
            "first close by server",
            close(a.server_close.as_ref()),
            close(b.server_close.as_ref()),
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
fn close(c: Option<&tracekit_analyze::model::CloseView>) -> String {
    c.map_or_else(
        || "–".to_string(),
        |c| format!("{} frame {} TTL {}", c.kind, c.frame, c.ttl),
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

    #[test]
    fn text_written_in_chunks_is_the_text_written_at_once() {
        let mut analysis = firewall_analysis();
        // 300 connections, some of them notable (shown in full) on either side of the chunk
        // boundaries.
        let base = analysis.connections.clone();
        analysis.connections = (0..300)
            .map(|i| {
                let mut c = base[i % base.len()].clone();
                c.failed = i % 7 == 0;
                c
            })
            .collect();
        let want = text_chunked(&analysis, false, usize::MAX);
        assert_eq!(
            want.matches("\n── ").count(),
            1 + (1..300)
                .filter(|i| i % 7 == 0 || {
                    let c = &analysis.connections[*i];
                    c.middlebox.kind != ["none"]
                })
                .count()
        );
        assert!(want.contains("\n300  "), "rows numbered to the end");
        for chunk in [1, 7, 64, 299] {
            assert_eq!(text_chunked(&analysis, false, chunk), want, "chunk {chunk}");
            assert_eq!(
                text_chunked(&analysis, true, chunk),
                text_chunked(&analysis, true, usize::MAX),
                "chunk {chunk}, all"
            );
        }
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
