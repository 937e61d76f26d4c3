//! The verdict in one sentence, for a firewall team or a manager: what the middlebox did, and
//! who closed the connection.

use crate::compare::ms_text;
use crate::model::{ClosedBy, Kind};
use crate::trace::Conn;

pub(crate) struct VerdictInput<'a> {
    pub(crate) kinds: &'a [Kind],
    pub(crate) transparent: Option<bool>,
    pub(crate) vendor: Option<&'a str>,
    pub(crate) client_side: Option<u8>,
    pub(crate) server_side: Option<u8>,
    pub(crate) closed_by: ClosedBy,
    /// The first close seen may answer one a capture lost (see `unseen_end`).
    pub(crate) close_doubt: bool,
    pub(crate) fast_close: Option<(Option<&'static str>, i64)>,
    pub(crate) c: &'a Conn,
    pub(crate) s: &'a Conn,
    pub(crate) failed: bool,
    /// The first packet seen at one point only, in words, and how many more there are.
    pub(crate) one_point_only: Option<(String, usize)>,
}

fn plural(n: u8, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// What changed between two option layouts ("mss,sok,ts,nop,ws"), in words: the options
/// that went or came, and whether the gap was filled with NOPs. `None` for a mere reordering.
pub(crate) fn option_change(from: &str, to: &str) -> Option<String> {
    let names = |l: &str| -> Vec<String> {
        l.split(',')
            .filter(|o| !o.is_empty() && *o != "nop" && *o != "eol")
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (names(from), names(to));
    let removed: Vec<&str> = a
        .iter()
        .filter(|o| !b.contains(o))
        .map(String::as_str)
        .collect();
    let added: Vec<&str> = b
        .iter()
        .filter(|o| !a.contains(o))
        .map(String::as_str)
        .collect();
    let nops = |l: &str| l.split(',').filter(|o| *o == "nop").count();
    let mut out = Vec::new();
    if !removed.is_empty() {
        out.push(format!(
            "{} removed{}",
            removed.join(", "),
            if nops(to) > nops(from) {
                ", overwritten with NOPs"
            } else {
                ""
            }
        ));
    }
    if !added.is_empty() {
        out.push(format!("{} added", added.join(", ")));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// The verdict when no kind of middlebox holds.
fn no_middlebox_sentence(v: &VerdictInput<'_>, outcome: &str) -> String {
    // Packets lost or added on the way are no kind of middlebox, but "nothing changed"
    // must not hide them.
    let path = v.one_point_only.as_ref().map(|(first, more)| {
        if *more > 0 {
            format!("{first} (and {more} more packet(s) were seen at one point only)")
        } else {
            first.clone()
        }
    });
    let whole = |x: &Conn| x.syn.is_some() && x.syn_ack.is_some();
    if !whole(v.c) || !whole(v.s) {
        // The handshake carries most of what a box rewrites: without it at both points,
        // "nothing changed" would claim more than was seen.
        return format!(
            "Nothing was seen to change this connection between the two capture points, but its handshake was not captured whole at both, so its options could not be compared{}{}; {outcome}.",
            path.map_or(String::new(), |p| format!(", and {p}")),
            if v.failed { "; it failed" } else { "" }
        );
    }
    if let Some(p) = path {
        return format!(
            "Nothing between the two capture points rewrote this connection, but {p}{}; {outcome}.",
            if v.failed { "; it failed" } else { "" }
        );
    }
    format!(
        "Nothing between the two capture points changed this connection{}; {outcome}.",
        if v.failed { ", yet it failed" } else { "" }
    )
}

/// What a SYN proxy did, in the verdict.
const SYN_PROXY_DID: &str = "answered the client's handshake itself as a SYN proxy, opened the server side only after the client's ACK and forwarded the segments one for one with the server's sequence numbers translated (it terminated nothing after the handshake)";

pub(crate) fn verdict_sentence(v: &VerdictInput<'_>) -> String {
    let who = match v.vendor {
        Some(name) => format!("A {name} device"),
        None => "A device".to_string(),
    };
    let place = match (v.client_side, v.server_side) {
        (Some(a), Some(b)) => format!(
            " {} from the client and {} from the server",
            plural(a, "hop"),
            plural(b, "hop")
        ),
        (Some(a), None) => format!(" {} from the client", plural(a, "hop")),
        _ => String::new(),
    };
    let doubt = if v.close_doubt {
        " (as far as the captures show: one of them lost packets around that close)"
    } else {
        ""
    };
    let outcome = match v.closed_by {
        ClosedBy::Client => "the client closed the connection",
        ClosedBy::Server => "the server closed the connection",
        ClosedBy::None => "nobody closed the connection within the captures",
        ClosedBy::Middlebox => "the middlebox closed it",
    }
    .to_string()
        + doubt;
    if v.kinds.contains(&Kind::TcpProxy) {
        let kind = if v.kinds.contains(&Kind::TlsInterceptor) {
            "intercepted TLS and terminated TCP"
        } else {
            "terminated TCP"
        };
        let transparent = if v.transparent == Some(true) {
            " transparently (the server still sees the client's address)"
        } else {
            ""
        };
        if v.closed_by == ClosedBy::Middlebox {
            let when = match v.fast_close {
                Some((Some(msg), dt)) => format!(" {} after the server's {msg}", ms_text(dt)),
                Some((None, dt)) => format!(" {} after the last packet it answered", ms_text(dt)),
                None => String::new(),
            };
            return format!("{who}{place} {kind}{transparent} and closed both sides{when}{doubt}.");
        }
        return format!("{who}{place} {kind}{transparent}; {outcome}.");
    }
    if v.kinds.contains(&Kind::SynProxy) {
        return format!("{who}{place} {SYN_PROXY_DID}; {outcome}.");
    }
    if v.kinds.contains(&Kind::RstInjector) {
        return format!(
            "{who}{place} injected a TCP reset in the server's name and kept the client's data from the server{}.",
            if v.c.client_hello().is_some() {
                " (its Client Hello)"
            } else {
                ""
            }
        );
    }
    if v.kinds == [Kind::None] {
        return no_middlebox_sentence(v, &outcome);
    }
    let mut what = Vec::new();
    for k in v.kinds {
        what.push(match *k {
            Kind::Nat => format!("translated {} to {}", v.c.client, v.s.client),
            Kind::SeqRandomizer => "rewrote the sequence numbers".to_string(),
            Kind::MssClamp => format!(
                "clamped the MSS from {} to {}",
                v.c.syn
                    .and_then(|h| h.options.mss)
                    .map_or("?".into(), |m| m.to_string()),
                v.s.syn
                    .and_then(|h| h.options.mss)
                    .map_or("?".into(), |m| m.to_string())
            ),
            Kind::EcnBleach => "removed the ECN setup flags".to_string(),
            Kind::OptionStripper => match v.c.syn.zip(v.s.syn).and_then(|(x, y)| {
                option_change(&x.options.layout_string(), &y.options.layout_string())
            }) {
                Some(change) => format!("rewrote the TCP options of the SYN ({change})"),
                None => "rewrote the TCP options".to_string(),
            },
            _ => (*k).to_string(),
        });
    }
    let list = match what.len() {
        1 => what[0].clone(),
        n => format!("{} and {}", what[..n - 1].join(", "), what[n - 1]),
    };
    format!(
        "A device on the path {list} without terminating TCP; {}{outcome}.",
        if v.failed {
            "the connection failed and "
        } else {
            ""
        }
    )
}
