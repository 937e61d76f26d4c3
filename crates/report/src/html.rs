//! The analysis as one self-contained HTML page (inline CSS and SVG, a few lines of plain
//! JavaScript for the copy buttons), and the ladder alone as SVG for slides. Text is escaped
//! by maud's compile-time templates. Readable without colour: every mark has a label.

use std::fmt::Write;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use tracekit_analyze::Analysis;
use tracekit_analyze::model::{ClosedBy, Connection, Kind, Point, kinds_text};

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#fff}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px}
.banner{border:2px solid #333;border-left:10px solid #b00020;padding:14px 18px;margin:18px 0;background:#fff7f7}
.banner.ok{border-left-color:#2e7d32;background:#f6fbf6}
.banner .verdict{font-size:18px;font-weight:600}
.banner .tags span{display:inline-block;border:1px solid #999;border-radius:3px;padding:0 6px;margin:6px 6px 0 0;font-size:12px}
.topology{display:flex;align-items:center;gap:8px;flex-wrap:wrap;margin:8px 0}
.node{border:2px solid #333;border-radius:6px;padding:8px 12px;text-align:center;min-width:120px;background:#fafafa}
.node.mb{border-style:dashed;background:#fff3e0}
.link{flex:1;min-width:80px;text-align:center;font-size:12px;color:#333;border-top:2px solid #333;padding-top:4px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #ccc;padding:5px 7px;vertical-align:top;text-align:left}
th{background:#f0f0f0}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f4f4f4;padding:1px 3px}
button.copy{font-size:11px;margin-left:4px;cursor:pointer}
.caveats li{margin:3px 0}
.simple{display:flex;align-items:center;gap:0;margin:10px 0}
.simple .box{border:3px solid #333;border-radius:8px;padding:16px 22px;font-size:16px;font-weight:600;background:#fff}
.simple .wire{flex:1;height:0;border-top:3px solid #333;position:relative;min-width:60px}
.simple .wire.cut{border-top-style:dashed}
.simple .wire.cut::after{content:"✗";position:absolute;left:45%;top:-22px;font-size:28px;color:#b00020}
svg text{font-family:ui-monospace,Menlo,Consolas,monospace}
@media print{button.copy{display:none}.banner{break-inside:avoid}svg{break-inside:avoid}}
"#;

/// Connections drawn in full on one page.
const PAGES_DETAILED: usize = crate::DETAILED;

const SCRIPT: &str = r"
document.querySelectorAll('button.copy').forEach(function(b){b.addEventListener('click',function(){
navigator.clipboard.writeText(b.dataset.filter).then(function(){b.textContent='copied';});});});
";

fn ms(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// The whole page for an analysis: every connection in report order (failed ones first).
#[must_use]
pub fn page(a: &Analysis) -> String {
    let title = a.connections.first().map_or_else(
        || "tracekit analysis".to_string(),
        |c| format!("tracekit: {} → {}", c.client, c.server),
    );
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    h1 { "What sits between the two captures" }
                    p.meta {
                        "Client side: " code { (a.traces.a.name) } " (" (a.traces.a.packets) " packets) · server side: "
                        code { (a.traces.b.name) } " (" (a.traces.b.packets) " packets)"
                        @if let Some(c) = &a.clock {
                            " · clock of the server side " (ms(c.offset_ns as f64 / 1e6))
                            @if let (Some(lo), Some(hi)) = (c.lo_ns, c.hi_ns) {
                                " (feasible " (ms(lo as f64 / 1e6)) " … " (ms(hi as f64 / 1e6)) ")"
                            }
                            ", from " (c.matches) " matched packets"
                        } @else {
                            " · clocks not aligned (no packet seen at both points)"
                        }
                    }
                    @if a.connections.is_empty() {
                        p { "No connection was found in both captures." }
                    }
                    @if a.rows.len() > 1 {
                        (summary(a))
                    }
                    @for (i, c) in a.connections.iter().enumerate().take(PAGES_DETAILED) {
                        (connection(a, i, c))
                    }
                    @if a.rows.len() > PAGES_DETAILED {
                        p.meta {
                            "The first " (PAGES_DETAILED) " connections (failed and odd ones first) are shown in full; the table above lists "
                            @if a.rows.len() > crate::ROWS_SHOWN { "the first " (crate::ROWS_SHOWN) " of " }
                            @else { "all " }
                            (a.rows.len()) ", and --conn ADDR:PORT picks any one."
                        }
                    }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    markup.into_string()
}

fn summary(a: &Analysis) -> Markup {
    let groups = crate::verdict_groups(a);
    let rest = groups.get(crate::TALLY_SHOWN..).unwrap_or_default();
    html! {
        @if a.rows.len() > PAGES_DETAILED {
            h2 { "By verdict" }
            table {
                tr { th { "connections" } th { "result" } th { "middlebox" } th { "closed by" } }
                @for g in groups.iter().take(crate::TALLY_SHOWN) {
                    tr {
                        td { (g.count) }
                        td { @if g.failed { "failed" } @else { "ok" } }
                        td { (kinds_text(g.kinds, ", ")) }
                        td { (g.closed_by) }
                    }
                }
                @if !rest.is_empty() {
                    tr { td { (rest.iter().map(|g| g.count).sum::<usize>()) } td colspan="3" { "in " (rest.len()) " other groups" } }
                }
            }
        }
        h2 { "Connections found in both captures" }
        table {
            tr { th { "#" } th { "client" } th { "server" } th { "result" } th { "middlebox" } th { "closed by" } th { "confidence" } }
            @for (i, c) in a.rows.iter().enumerate().take(crate::ROWS_SHOWN) {
                tr {
                    td { @if i < a.connections.len().min(PAGES_DETAILED) { a href=(format!("#conn{}", i + 1)) { (i + 1) } } @else { (i + 1) } }
                    td { (c.client) } td { (c.server) }
                    td { @if c.failed { "failed" } @else { "ok" } }
                    td { (kinds_text(&c.kinds, ", ")) }
                    td { (c.closed_by) } td { (c.confidence) }
                }
            }
        }
    }
}

fn connection(a: &Analysis, i: usize, c: &Connection) -> Markup {
    let middlebox = c.middlebox.kind != [Kind::None];
    html! {
        section id=(format!("conn{}", i + 1)) {
            h2 { "Connection " (i + 1) ": " (c.client) " → " (c.server) @if c.failed { " (failed)" } }
            div class=(if c.failed { "banner" } else { "banner ok" }) {
                div.verdict { (c.verdict) }
                div.tags {
                    span { "middlebox: " (kinds_text(&c.middlebox.kind, ", ")) }
                    span { "closed by: " (c.closed_by) }
                    span { "confidence: " (c.confidence) }
                    span { "matched by: " (c.matched_by) }
                }
                p.meta { "Why closed by " (c.closed_by) ": " (c.close_proof) }
            }
            h3 { "Topology" }
            (topology(c, middlebox))
            h3 { "Both captures on one time axis" }
            p.meta { "Time runs down, in milliseconds since the connection's first packet, the server side shifted by the estimated clock offset. Dashed lines join the same packet at both points; “✗ dropped” never reached the other point, “✗ injected” was not sent by the end whose name it carries; changes on the way are listed under the arrow." }
            (PreEscaped(ladder_svg(a, c)))
            h3 { "Evidence" }
            table {
                tr { th { "signal" } th { "what it shows" } th { "client side" } th { "server side" } }
                tr.conn-filter {
                    td { "this connection" }
                    td { "all its packets, as each capture point saw them (addresses and ports)" }
                    @for f in [&c.sides.a.wireshark_filter, &c.sides.b.wireshark_filter] {
                        td { code { (f) } button.copy type="button" data-filter=(f) { "copy" } }
                    }
                }
                @for e in &c.evidence {
                    tr {
                        td { code { (e.signal) } @if !e.middlebox_evidence { br; "(not middlebox evidence)" } }
                        td { (e.detail) }
                        @for (groups, filter) in [(&e.files_a, &e.filter_a), (&e.files_b, &e.filter_b)] {
                            td {
                                @if groups.is_empty() {
                                    @if let Some(f) = filter { code { (f) } button.copy type="button" data-filter=(f) { "copy" } }
                                } @else {
                                    // A side read as a set: each file with the filter for it.
                                    @for g in groups {
                                        div { (g.file) ": " code { (g.filter) } button.copy type="button" data-filter=(g.filter) { "copy" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "For a non-technical audience" }
            (simple(c, middlebox))
            @if !c.caveats.is_empty() {
                h3 { "Caveats" }
                ul.caveats { @for k in &c.caveats { li { (k) } } }
            }
        }
    }
}

fn topology(c: &Connection, middlebox: bool) -> Markup {
    let hops =
        |h: Option<u8>| h.map_or_else(|| "routers: ?".to_string(), |n| format!("{n} router(s)"));
    html! {
        div.topology {
            div.node { "client" br; code { (c.client) } }
            @if middlebox {
                div.link { (hops(c.hops.client_side)) br; "RTT " (c.sides.a.towards_server_ms.map_or("?".to_string(), ms)) }
                div.node.mb {
                    "middlebox" br;
                    (kinds_text(&c.middlebox.kind, ", "))
                    @if let Some(v) = &c.middlebox.vendor { br; (v) }
                    @if let Some(m) = &c.middlebox.mac { br; code { (m) } }
                    br;
                    @match c.middlebox.transparent { Some(true) => "transparent", Some(false) => "not transparent", None => "" }
                }
                div.link { (hops(c.hops.server_side)) br; "RTT " (c.sides.b.towards_client_ms.map_or("?".to_string(), ms)) }
            } @else {
                div.link { (hops(c.hops.path)) br; "RTT " (c.rtt_ms.a.map_or("?".to_string(), ms)) }
            }
            div.node { "server" br; code { (c.server) } }
        }
    }
}

fn simple(c: &Connection, middlebox: bool) -> Markup {
    let cut = c.closed_by == ClosedBy::Middlebox;
    html! {
        div.simple {
            div.box { "Client" }
            div class=(if cut { "wire cut" } else { "wire" }) {}
            @if middlebox {
                div.box { (short_vendor(c.middlebox.vendor.as_deref())) }
                div.wire {}
            }
            div.box { "Server" }
        }
        p {
            @if cut {
                "The box in the middle ended the conversation on both sides; the server and the client each believe the other one hung up."
            } @else if c.closed_by == ClosedBy::Client {
                "The client ended the conversation." @if middlebox { " The box in the middle relayed it." }
            } @else if c.closed_by == ClosedBy::Server {
                "The server ended the conversation."
            } @else {
                "Nobody ended the conversation within the captures."
            }
        }
    }
}

/// "Check Point box" for "Check Point Software Technologies"; "Middlebox" without a vendor.
fn short_vendor(v: Option<&str>) -> String {
    v.map_or_else(
        || "Middlebox".to_string(),
        |v| {
            let words: Vec<&str> = v
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| !w.is_empty())
                .take(2)
                .collect();
            format!("{} box", words.join(" "))
        },
    )
}

/// The ladder of the first connection of an analysis, alone (for `--svg`).
#[must_use]
pub fn svg(a: &Analysis) -> String {
    a.connections.first().map_or_else(
        || r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">no connection found in both captures</text></svg>"#.to_string(),
        |c| ladder_svg(a, c),
    )
}

fn esc(s: &str) -> String {
    html! { (s) }.into_string()
}

/// The ladder as SVG: client | client-side capture | middlebox lane | server-side capture |
/// server, one arrow per packet, time running down.
#[allow(clippy::too_many_lines, clippy::many_single_char_names)] // one drawing, top to bottom
fn ladder_svg(a: &Analysis, c: &Connection) -> String {
    const W: f64 = 1060.0;
    const CLIENT: f64 = 150.0;
    const LANE_L: f64 = 470.0;
    const LANE_R: f64 = 590.0;
    const SERVER: f64 = 910.0;
    const TOP: f64 = 86.0;
    const ROW: f64 = 30.0;
    let rows = &c.ladder;
    let height = TOP + ROW * rows.len() as f64 + 30.0;
    let y = |i: usize| TOP + ROW * i as f64 + 16.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="ladder diagram"><defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#222"/></marker><marker id="arrx" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#b00020"/></marker></defs>"##
    );
    let lane = if c.middlebox.kind == [Kind::None] {
        "network".to_string()
    } else {
        format!("middlebox: {}", kinds_text(&c.middlebox.kind, ", "))
    };
    let _ = write!(
        s,
        r##"<rect x="{LANE_L}" y="40" width="{}" height="{}" fill="#fff3e0" stroke="#999" stroke-dasharray="4 3"/><text x="{}" y="32" text-anchor="middle" font-size="12">{}</text>"##,
        LANE_R - LANE_L,
        height - 50.0,
        f64::midpoint(LANE_L, LANE_R),
        esc(&lane)
    );
    for (x, label, sub) in [
        (
            CLIENT,
            format!("client {}", c.client),
            format!("capture A: {}", a.traces.a.name),
        ),
        (
            SERVER,
            format!("server {}", c.server),
            format!("capture B: {}", a.traces.b.name),
        ),
    ] {
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="46" x2="{x}" y2="{}" stroke="#222" stroke-width="2"/><text x="{x}" y="20" text-anchor="middle" font-size="13" font-weight="bold">{}</text><text x="{x}" y="36" text-anchor="middle" font-size="11">{}</text>"##,
            height - 10.0,
            esc(&label),
            esc(&sub)
        );
    }
    let index: std::collections::HashMap<(Point, u64), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.side, r.frame), i))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let yy = y(i);
        let _ = write!(
            s,
            r##"<text x="8" y="{}" font-size="11" fill="#555">{:.3}</text>"##,
            yy + 4.0,
            r.t_ms
        );
        let (left, right) = if r.side == Point::ClientSide {
            (CLIENT, LANE_L)
        } else {
            (LANE_R, SERVER)
        };
        if r.folded > 0 {
            let _ = write!(
                s,
                r##"<rect x="{left}" y="{}" width="{}" height="18" fill="#eee" stroke="#bbb"/><text x="{}" y="{}" text-anchor="middle" font-size="11">… {} data/ACK packets folded …</text>"##,
                yy - 9.0,
                right - left,
                f64::midpoint(left, right),
                yy + 4.0,
                r.folded
            );
            continue;
        }
        let (x1, x2) = if r.from_client {
            (left, right)
        } else {
            (right, left)
        };
        let odd = r.only_here.is_some();
        let (stroke, marker, width) = if odd {
            ("#b00020", "arrx", 2.5)
        } else {
            ("#222", "arr", 1.4)
        };
        let class = match r.only_here {
            Some(k) => format!("arrow {k}"),
            None => "arrow".to_string(),
        };
        let _ = write!(
            s,
            r#"<line class="{class}" data-side="{}" data-frame="{}" x1="{x1}" y1="{yy}" x2="{x2}" y2="{yy}" stroke="{stroke}" stroke-width="{width}" marker-end="url(#{marker})"/>"#,
            r.side.letter(),
            r.frame
        );
        // A side read as a set: the file and the frame within it.
        let located = a.sets.as_ref().and_then(|sets| {
            let side = [&sets.a, &sets.b][r.side];
            side.as_ref()?.locate(r.frame)
        });
        let mut label = match located {
            Some((file, local)) => format!("{file} #{local} {}", r.flags),
            None => format!("#{} {}", r.frame, r.flags),
        };
        if !r.what.is_empty() {
            let _ = write!(label, " · {}", r.what);
        }
        if let Some(k) = r.only_here {
            let _ = write!(label, " ✗ {k}");
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="{}">{}</text>"#,
            f64::midpoint(left, right),
            yy - 4.0,
            if odd { "#b00020" } else { "#111" },
            esc(&label)
        );
        if !r.changed.is_empty() {
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" text-anchor="middle" font-size="10" fill="#6a1b9a">changed: {}</text>"##,
                f64::midpoint(left, right),
                yy + 11.0,
                esc(&r.changed.join(", "))
            );
        }
        if r.side == Point::ServerSide
            && let Some(j) = r
                .peer_frame
                .and_then(|f| index.get(&(Point::ClientSide, f)))
        {
            let _ = write!(
                s,
                r##"<line class="join" x1="{LANE_L}" y1="{}" x2="{LANE_R}" y2="{yy}" stroke="#777" stroke-dasharray="3 3"/>"##,
                y(*j)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One pair of the batch index.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub a: String,
    pub b: String,
    /// The pair's page, relative to the index.
    pub page: String,
    pub connections: usize,
    pub failed: usize,
    pub middlebox: String,
    pub closed_by: String,
    pub verdict: String,
    /// How the two files were paired, and the clock offset found.
    pub paired: String,
}

const SORT_SCRIPT: &str = r"
document.querySelectorAll('th[data-col]').forEach(function(th){th.addEventListener('click',function(){
var t=th.closest('table'),i=+th.dataset.col,rows=[].slice.call(t.querySelectorAll('tr')).slice(1);
var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
rows.sort(function(x,y){var a=x.children[i].textContent,b=y.children[i].textContent;return asc?a.localeCompare(b,undefined,{numeric:true}):b.localeCompare(a,undefined,{numeric:true});});
rows.forEach(function(r){t.appendChild(r);});});});
";

/// The batch index: one row per pair, linking its page; columns sort on click.
#[must_use]
/// The batch's index page: a row per pair, then the files left without a partner (file,
/// reason).
pub fn index(rows: &[IndexRow], unpaired: &[(String, String)]) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "tracekit analyze: " (rows.len()) " pairs" }
                style { (PreEscaped(CSS)) "th[data-col]{cursor:pointer}" }
            }
            body {
                main {
                    h1 { "tracekit analyze: " (rows.len()) " capture pairs" }
                    p.meta { "Click a column to sort (by verdict, middlebox, failures…)." }
                    table {
                        tr {
                            th data-col="0" { "client side" } th data-col="1" { "server side" }
                            th data-col="2" { "connections" } th data-col="3" { "failed" }
                            th data-col="4" { "middlebox" } th data-col="5" { "closed by" } th data-col="6" { "verdict" }
                            th data-col="7" { "paired by" }
                        }
                        @for r in rows {
                            tr {
                                td { a href=(r.page) { (r.a) } } td { (r.b) }
                                td { (r.connections) } td { (r.failed) }
                                td { (r.middlebox) } td { (r.closed_by) } td { (r.verdict) }
                                td { (r.paired) }
                            }
                        }
                    }
                    @if !unpaired.is_empty() {
                        h2 { "Files without a partner (" (unpaired.len()) ")" }
                        table {
                            tr { th { "file" } th { "why" } }
                            @for (file, why) in unpaired { tr { td { (file) } td { (why) } } }
                        }
                    }
                }
                script { (PreEscaped(SORT_SCRIPT)) }
            }
        }
    }
    .into_string()
}
