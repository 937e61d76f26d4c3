//! Cross-trace comparison: pairs the connections of the two traces, decides which trace is
//! nearer the client, and turns the differences into evidence, a middlebox verdict and who
//! closed the connection.

use rayon::prelude::*;
use tracekit_merge::align::Alignment;
use tracekit_wire::tcp::flags;

use crate::closer;
use crate::model::{
    Analysis, Clock, Confidence, Connection, Evidence, Hops, Kind, MatchedBy, Middlebox, Point,
    Row, Rtt, Signal, TraceSummary, Traces, Unmatched,
};
use crate::pairing::{Pair, b_is_client_side, pair_connections};
use crate::path::{PathDiff, compared_path, dropped_text, injected_text, same_packets};
use crate::sentence::{VerdictInput, verdict_sentence};
use crate::sides::{mac_string, ms, side_view, tls_view};
use crate::signals;
use crate::trace::{Conn, ConnRef, ConnTable, End, Gathered};
use crate::verdict;
use std::borrow::Cow;

/// Connections (in report order) that keep their ladder.
pub const LADDERS_KEPT: usize = 50;

/// One trace's connection table and its name.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub name: &'a str,
    pub table: &'a ConnTable,
}

/// Side b's clock relative to side a's (`t_a = t_b + offset`), with its feasible interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offset {
    pub mid: i64,
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl Offset {
    fn flipped(self) -> Offset {
        Offset {
            mid: -self.mid,
            lo: self.hi.map(|h| -h),
            hi: self.lo.map(|l| -l),
        }
    }
}

/// Side b's clock relative to a's over time: one [`Offset`], or one per window when the
/// clocks drift (each connection is compared at the offset of the window its handshake falls
/// in). Windows are kept by their start on both clocks, so that the model turns round with
/// the sides.
#[derive(Debug, Clone)]
pub(crate) struct Offsets {
    /// (start on a's clock, start on b's clock, offset), in time order; the first starts at
    /// `i64::MIN`.
    windows: Vec<(i64, i64, Offset)>,
}

impl Offsets {
    fn one(o: Offset) -> Offsets {
        Offsets {
            windows: vec![(i64::MIN, i64::MIN, o)],
        }
    }

    /// One offset per window of `drift` (the first from the start of time).
    fn windows(drift: &Drift) -> Option<Offsets> {
        let mut windows: Vec<(i64, i64, Offset)> = drift
            .windows
            .iter()
            .map(|w| {
                let o = Offset {
                    mid: w.offset_ns,
                    lo: w.lo_ns,
                    hi: w.hi_ns,
                };
                (w.from_ns, w.from_ns.saturating_sub(w.offset_ns), o)
            })
            .collect();
        let first = windows.first_mut()?;
        (first.0, first.1) = (i64::MIN, i64::MIN);
        Some(Offsets { windows })
    }

    /// The offset at time `t` of b's clock.
    pub(crate) fn at_b(&self, t: i64) -> Offset {
        let i = self.windows.partition_point(|w| w.1 <= t).max(1) - 1;
        self.windows[i].2
    }

    /// The model with the sides exchanged.
    fn flipped(self) -> Offsets {
        Offsets {
            windows: self
                .windows
                .into_iter()
                .map(|(a, b, o)| (b, a, o.flipped()))
                .collect(),
        }
    }
}

/// Clocks that drift apart: the offset estimated per window of a's time (from
/// `tracekit_merge::align::per_window`), and the drift it shows.
#[derive(Debug, Clone)]
pub struct Drift {
    pub windows: Vec<tracekit_merge::align::WindowEstimate>,
    /// Parts per million b's clock gains on a's (a least-squares line through the windows).
    pub ppm: f64,
    /// The windows' width, nanoseconds.
    pub width_ns: i64,
}

/// What [`analyze_scoped`] compares and keeps.
#[derive(Clone, Copy)]
pub struct Scope<'f> {
    /// Connections kept in full: the first ones in report order (every connection has its
    /// [`Row`]). Below the number of connections, the others are compared for their row and
    /// dropped at once, so memory follows the rows (a port scan has millions of connections,
    /// of a few kilobytes each in full).
    pub full: usize,
    /// Only the pairs (client-side connection, server-side connection) this accepts.
    pub filter: Option<PairFilter<'f>>,
}

/// Accepts or refuses a pair: (client-side connection, server-side connection).
pub type PairFilter<'f> = &'f (dyn Fn(&Conn, &Conn) -> bool + Sync);

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("full", &self.full)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

/// Compares two traces of the same traffic, `alignment` being b's clock offset relative to a's
/// (from `tracekit_merge::align::estimate`): every connection in full.
#[must_use]
pub fn analyze(a: Input<'_>, b: Input<'_>, alignment: Option<&Alignment>) -> Analysis {
    let scope = Scope {
        full: usize::MAX,
        filter: None,
    };
    analyze_scoped(a, b, alignment, scope)
}

/// [`analyze`] within a [`Scope`].
#[must_use]
pub fn analyze_scoped(
    a: Input<'_>,
    b: Input<'_>,
    alignment: Option<&Alignment>,
    scope: Scope<'_>,
) -> Analysis {
    analyze_drifting(a, b, alignment, None, scope)
}

/// [`analyze_scoped`] with clocks that drift: each connection compared at the offset of its
/// window (`drift`), the first window's being `alignment`'s.
#[must_use]
pub fn analyze_drifting(
    a: Input<'_>,
    b: Input<'_>,
    alignment: Option<&Alignment>,
    drift: Option<&Drift>,
    scope: Scope<'_>,
) -> Analysis {
    let (mut offset, mut offsets) = clock_model(alignment, drift);
    let pairs = pair_connections(a.table, b.table, offsets.as_ref());
    let swapped = b_is_client_side(a.table, b.table, &pairs);
    let (ca, cb) = if swapped { (b, a) } else { (a, b) };
    if swapped {
        offset = offset.map(Offset::flipped);
        offsets = offsets.map(Offsets::flipped);
    }
    let offsets = offsets.as_ref();
    let at = |s: &Conn| offsets.map(|o| o.at_b(s.first_ts));
    // The time each capture covers (packets outside it cannot be missing from it).
    let span = |t: &ConnTable| (t.first_ts.unwrap_or(0), t.last_ts.unwrap_or(0));
    let windows = [span(ca.table), span(cb.table)];
    let ends = |&(ia, ib, _): &Pair| {
        let (ia, ib) = (ia as usize, ib as usize);
        if swapped { (ib, ia) } else { (ia, ib) }
    };
    let chosen: Cow<[Pair]> = match scope.filter {
        None => Cow::Borrowed(&pairs),
        Some(f) => Cow::Owned(
            pairs
                .iter()
                .filter(|p| {
                    let (ic, is) = ends(p);
                    f(&ca.table.conn(ic), &cb.table.conn(is))
                })
                .copied()
                .collect(),
        ),
    };
    // Each side's packets are gathered into buffers of the thread's, used again pair after pair.
    let judge = |bufs: &mut Buffers, p: &Pair, want: Want| {
        let (ic, is) = ends(p);
        let (buf_c, buf_s) = bufs;
        let c = &ca.table.with_packets(ic, buf_c);
        let s = &cb.table.with_packets(is, buf_s);
        let judged = compare((c, ca.name), (s, cb.name), p.2, at(s), windows, want);
        (
            judged.row,
            judged
                .full
                .map(|(conn, only_here)| (conn, (ic, is, only_here))),
        )
    };
    let in_full = |bufs: &mut Buffers, p: &Pair| {
        let (row, full) = judge(bufs, p, Want::Full);
        let (conn, view) = full.expect("a connection asked for in full is given in full");
        (conn, (view, row))
    };
    // Each pair on its own, on every core (the order of `chosen` is kept).
    let keep_all = scope.full >= chosen.len();
    let tables = [ca.table, cb.table];
    let (mut connections, mut views, mut rows): (Vec<Connection>, Vec<View>, Vec<Row>) = if keep_all
    {
        let (connections, (views, rows)) = judge_all(&chosen, ends, tables, in_full).unzip();
        (connections, views, rows)
    } else {
        let rows =
            judge_all(&chosen, ends, tables, |bufs, p| judge(bufs, p, Want::Row).0).collect();
        (Vec::new(), Vec::new(), rows)
    };
    let order = report_order(&rows, |i| ca.table.first_ts(ends(&chosen[i]).0));
    permute(&mut rows, &order);
    if keep_all {
        permute(&mut connections, &order);
        permute(&mut views, &order);
    } else {
        // The first in report order, compared again, in full.
        let mut bufs = Buffers::default();
        for &i in order.iter().take(scope.full) {
            let (conn, (view, _)) = in_full(&mut bufs, &chosen[i as usize]);
            connections.push(conn);
            views.push(view);
        }
    }
    add_ladders(&mut connections, &views, ca.table, cb.table, offsets);
    let unmatched = unmatched(a, b, &pairs, swapped);
    let summary = |i: Input<'_>| TraceSummary {
        name: i.name.to_string(),
        packets: i.table.packets,
        tcp_packets: i.table.tcp_packets,
        connections: i.table.len(),
    };
    Analysis {
        traces: Traces {
            a: summary(ca),
            b: summary(cb),
        },
        swapped,
        clock: clock(alignment, (offset, offsets), drift, swapped),
        connections,
        rows,
        unmatched,
        sets: None,
    }
}

/// The offset the report gives and the one each connection is compared at: the estimate's
/// for all, or with drifting clocks each window's, the report giving the first window's (the
/// estimate over all the first packets mixes windows, and its interval may be empty).
/// The clock model as the report gives it: the offset of side b (after any swap) and, when it
/// drifts, its windows.
fn clock(
    alignment: Option<&Alignment>,
    (offset, offsets): (Option<Offset>, Option<&Offsets>),
    drift: Option<&Drift>,
    swapped: bool,
) -> Option<Clock> {
    alignment.zip(offset).map(|(al, o)| Clock {
        drift: drift
            .filter(|_| offsets.is_some_and(|o| o.windows.len() > 1))
            .map(|d| crate::model::ClockDrift::of(d, swapped)),
        offset_ns: o.mid,
        lo_ns: o.lo,
        hi_ns: o.hi,
        matches: al.matches,
        by_kind: al.by_kind.clone(),
    })
}

fn clock_model(
    alignment: Option<&Alignment>,
    drift: Option<&Drift>,
) -> (Option<Offset>, Option<Offsets>) {
    let offset = alignment.map(|al| Offset {
        mid: al.offset,
        lo: al.lo,
        hi: al.hi,
    });
    match (offset, drift.and_then(Offsets::windows)) {
        (Some(_), Some(windows)) if windows.windows.len() > 1 => {
            (Some(windows.windows[0].2), Some(windows))
        }
        (o, _) => (o, o.map(Offsets::one)),
    }
}

/// Ladders are for reading: the first connections in report order get one, so a trace of
/// 100,000 connections does not make a JSON of gigabytes (or the time to build it).
fn add_ladders(
    connections: &mut [Connection],
    views: &[View],
    ct: &ConnTable,
    st: &ConnTable,
    offsets: Option<&Offsets>,
) {
    let (buf_c, buf_s) = &mut Buffers::default();
    for (conn, (ic, is, only_here)) in connections.iter_mut().zip(views).take(LADDERS_KEPT) {
        let s = st.with_packets(*is, buf_s);
        let shift = offsets.map_or(0, |o| o.at_b(s.first_ts).mid);
        conn.ladder = crate::ladder::ladder(&ct.with_packets(*ic, buf_c), &s, shift, only_here);
    }
}

/// `judge` of every pair, on every core, in the pairs' order; `ends` gives a pair's connections
/// in `tables`. The next pair's first packets load while a pair is judged (each is a cache
/// miss). (Indexed, so that the results are collected in place: a collection in runs copied
/// the connections in full of `--json`, hundreds of megabytes, into fresh memory.)
fn judge_all<'p, P: Sync, T: Send>(
    pairs: &'p [P],
    ends: impl Fn(&P) -> (usize, usize) + Sync + Send + 'p,
    tables: [&'p ConnTable; 2],
    judge: impl Fn(&mut Buffers, &P) -> T + Sync + Send + 'p,
) -> impl IndexedParallelIterator<Item = T> + 'p {
    pairs
        .par_iter()
        .enumerate()
        .map_init(Buffers::default, move |bufs, (k, p)| {
            if let Some(next) = pairs.get(k + 1) {
                let (ic, is) = ends(next);
                tables[0].prefetch_packets(ic);
                tables[1].prefetch_packets(is);
            }
            judge(bufs, p)
        })
}

/// Two buffers for a pair's packets (see [`ConnTable::with_packets`]).
type Buffers = (Gathered, Gathered);

/// The report's order of `rows` (indices): failed and odd connections first, then in time
/// order (`first_ts` of the row at an index).
fn report_order(rows: &[Row], first_ts: impl Fn(usize) -> i64) -> Vec<u32> {
    // (Not failed, not odd) as one byte: 16 bytes a row to sort, not 24.
    let mut order: Vec<(u8, i64, u32)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let odd = r.kinds[..] != [Kind::None];
            (
                u8::from(!r.failed) << 1 | u8::from(!odd),
                first_ts(i),
                i as u32,
            )
        })
        .collect();
    order.sort_unstable();
    order.iter().map(|o| o.2).collect()
}

/// The connections of each trace that no pair holds (counts and a few examples).
fn unmatched(a: Input<'_>, b: Input<'_>, pairs: &[Pair], swapped: bool) -> Unmatched {
    let mut used = [vec![false; a.table.len()], vec![false; b.table.len()]];
    for &(ia, ib, _) in pairs {
        used[0][ia as usize] = true;
        used[1][ib as usize] = true;
    }
    let mut unmatched = Unmatched::default();
    for (side, t, used) in [("a", a.table, &used[0]), ("b", b.table, &used[1])] {
        for (i, _) in used.iter().enumerate().filter(|(_, used)| !**used) {
            if side == "a" {
                unmatched.a += 1;
            } else {
                unmatched.b += 1;
            }
            if unmatched.examples.len() < 10 {
                let name = if side == "a" { a.name } else { b.name };
                let c = t.conn(i);
                unmatched
                    .examples
                    .push(format!("{name}: {} -> {}", c.client, c.server));
            }
        }
    }
    if swapped {
        std::mem::swap(&mut unmatched.a, &mut unmatched.b);
    }
    unmatched
}

/// Puts `v` in the order `order` gives (`v[k]` becomes the old `v[order[k]]`, `order` a
/// permutation) by following its cycles: each element moves once, and no second vector is
/// filled (tens of thousands of connections take over a hundred megabytes, and fresh memory
/// costs its first touch).
fn permute<T>(v: &mut [T], order: &[u32]) {
    let mut placed = vec![false; v.len()];
    for start in 0..v.len() {
        let mut k = start;
        while !placed[k] {
            placed[k] = true;
            let from = order[k] as usize;
            if from == start {
                break;
            }
            v.swap(k, from);
            k = from;
        }
    }
}

pub(crate) fn ms_text(ns: i64) -> String {
    let v = ns as f64 / 1e6;
    if v.abs() < 1.0 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A display filter selecting these frames.
pub(crate) fn frame_filter(frames: &[u64]) -> Option<String> {
    if frames.is_empty() {
        return None;
    }
    let list: Vec<String> = frames.iter().map(u64::to_string).collect();
    Some(if frames.len() == 1 {
        format!("frame.number == {}", list[0])
    } else {
        format!("frame.number in {{{}}}", list.join(" "))
    })
}

pub(crate) fn evidence(
    signal: Signal,
    detail: String,
    frames_a: Vec<u64>,
    frames_b: Vec<u64>,
) -> Evidence {
    Evidence {
        signal,
        detail,
        filter_a: frame_filter(&frames_a),
        filter_b: frame_filter(&frames_b),
        frames_a,
        frames_b,
        files_a: Vec::new(),
        files_b: Vec::new(),
        middlebox_evidence: true,
    }
}

pub(crate) fn opt_frames(x: Option<u64>) -> Vec<u64> {
    x.into_iter().collect()
}

/// [`isns`] of connection `i` of `t`, its packets gathered into `buf` only when its handshake
/// does not give both.
pub(crate) fn isns_in(t: &ConnTable, i: usize, buf: &mut Gathered) -> Option<[u32; 2]> {
    if let Some(c) = t.in_full(i)
        && let (Some(client), Some(server)) = (c.isn(End::Client), c.isn(End::Server))
    {
        return Some([client, server]);
    }
    isns(&t.with_packets(i, buf))
}

/// The initial sequence numbers of the client and the server at one point (see
/// [`isn_seen`]).
pub(crate) fn isns(x: &ConnRef<'_>) -> Option<[u32; 2]> {
    Some([isn_seen(x, End::Client)?, isn_seen(x, End::Server)?])
}

/// One end's initial sequence number at one point: from the handshake, or where its SYN or
/// SYN/ACK was not captured there, from what acknowledges it: the SYN/ACK acknowledges the
/// client's ISN + 1, and the client's first packet after its SYN the server's, when the
/// server's first packet there starts at the number it acknowledges (the third handshake
/// packet, or the client's first data when that was lost too; not a later ACK of server data
/// whose packets were lost as well), or, with no packet of the server there after the SYN, when
/// it is a bare ACK.
pub(crate) fn isn_seen(x: &ConnRef<'_>, dir: End) -> Option<u32> {
    if let Some(isn) = x.isn(dir) {
        return Some(isn);
    }
    let acknowledging = if dir == End::Client {
        let frame = x.syn_ack?.frame;
        x.pkts.iter().find(|p| p.frame == frame)?
    } else {
        let syn = x.syn?.frame;
        let after = |client: bool| {
            x.pkts
                .iter()
                .find(move |p| p.from_client == client && p.frame > syn)
        };
        let p = after(true)?;
        let plain_ack = p.flags & (flags::SYN | flags::FIN | flags::RST | flags::ACK) == flags::ACK;
        let fits = match after(false) {
            Some(q) => q.seq == p.ack,
            // Nothing of the server's there to check it against: a bare ACK is taken for the
            // third handshake packet.
            None => p.len == 0,
        };
        (plain_ack && fits).then_some(p)?
    };
    Some(acknowledging.ack.wrapping_sub(1))
}

/// Which point took a later packet of the client for the third packet of the handshake, if they differ: its capture missed the client's ACK (or
/// the ACK never reached it). The packets are compared by how far they reach into the client's
/// stream and what they acknowledge, relative to each point's ISNs.
fn late_third_packet(c: &ConnRef<'_>, s: &ConnRef<'_>) -> Option<Point> {
    let third = |x: &ConnRef<'_>| {
        let (frame, _) = x.ack3?;
        let p = x.pkts.iter().find(|p| p.frame == frame)?;
        let [client, server] = isns(x)?;
        Some((
            p.seq.wrapping_sub(client).wrapping_add(p.len),
            p.ack.wrapping_sub(server),
        ))
    };
    match third(c)?.cmp(&third(s)?) {
        std::cmp::Ordering::Less => Some(Point::ServerSide),
        std::cmp::Ordering::Greater => Some(Point::ClientSide),
        std::cmp::Ordering::Equal => None,
    }
}

#[derive(Default)]
pub(crate) struct Found {
    pub(crate) evidence: Vec<Evidence>,
    pub(crate) proxy_proof: bool,
}

impl Found {
    pub(crate) fn has(&self, signal: Signal) -> bool {
        self.evidence.iter().any(|e| e.signal == signal)
    }
    pub(crate) fn push(&mut self, e: Evidence) {
        self.evidence.push(e);
    }
}

/// What [`compare`] is asked for: a pair's row only (the table of a report that shows most
/// connections as rows), or its connection in full as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Row,
    Full,
}

/// What [`compare`] makes of a pair: always its row; with [`Want::Full`], its connection in
/// full and its packets seen at one point only.
struct Judged {
    row: Row,
    full: Option<(Connection, OnlyHere)>,
}

#[allow(clippy::too_many_lines, clippy::many_single_char_names)]
fn compare(
    (c, a_name): (&ConnRef<'_>, &str),
    (s, b_name): (&ConnRef<'_>, &str),
    how: MatchedBy,
    off: Option<Offset>,
    windows: [(i64, i64); 2],
    want: Want,
) -> Judged {
    let mut f = Found::default();
    let mut caveats = Vec::new();

    signals::translated(c, s, &mut f);
    let forwarded = signals::isn_rewritten(c, s, off, &mut f);
    let same = same_packets(c, s);
    signals::ipid_rewritten(c, s, &same, &mut f);
    signals::ecn_stripped(c, s, &same, &mut f);
    signals::options_rewritten(c, s, &mut f);
    let signals::Ttls {
        client_init,
        server_init,
        foreign: foreign_ttl,
    } = signals::ttl_origin(c, s, &mut f);
    let late = late_third(c, s, &mut caveats);
    signals::split_handshake(c, s, (off, late), &mut f);
    let fast_close = signals::fin_faster_than_rtt(c, s, (off, late), &mut f);
    let (diff, rewritten_stream) = compared_path(
        c,
        s,
        (off, windows),
        [client_init, server_init],
        &mut caveats,
    );
    signals::dropped_or_injected(&diff, &mut f);
    signals::offload(c, s, &mut f);

    // The verdict: what kind of box, and where.
    let verdict::Made {
        kinds,
        proxy,
        syn_proxy,
        injected_close,
    } = verdict::kinds(c, s, (&f, forwarded), &diff);
    let middlebox_present = kinds != [Kind::None];
    let place = verdict::place(
        c,
        s,
        (&kinds, proxy || syn_proxy),
        (&injected_close, &foreign_ttl),
    );

    let mut closed = closer::closed(&closer::Closing {
        c,
        s,
        off,
        inits: [client_init, server_init],
        diff: &diff,
        fast_close,
        rewritten_stream,
    });
    caveats.append(&mut closed.caveats);
    let confidence = verdict::confidence(c, s, &f, middlebox_present, off);
    // docs/analyze-json.md, `failed`: as either capture saw it.
    let failed = c.failed() || s.failed();
    let row = Row {
        client: c.client,
        server: c.server,
        matched_by: how,
        failed,
        kinds: crate::model::kinds_of(&kinds),
        closed_by: closed.by,
        confidence,
    };
    // The rest is for the connection in full: caveats, verdict sentence, both sides' views
    // (a third of the comparison's time, which a pair shown as a row need not spend).
    if want == Want::Row {
        return Judged { row, full: None };
    }

    verdict::caveats(c, s, &f, off, &mut caveats);

    let full = connection(
        (c, a_name),
        (s, b_name),
        Judgement {
            how,
            failed,
            kinds,
            place,
            closed,
            fast_close,
            confidence,
            evidence: f.evidence,
            caveats,
        },
        &diff,
    );
    Judged {
        row,
        full: Some(full),
    }
}

/// Which point took a later packet of the client for the third handshake packet (see
/// [`late_third_packet`]), with its caveat: handshake times are compared only where the third
/// handshake packet is the same packet at both points (a capture that missed the client's ACK
/// takes the client's next packet for it, as Wireshark's iRTT does, and its handshake looks
/// slow).
fn late_third(c: &ConnRef<'_>, s: &ConnRef<'_>, caveats: &mut Vec<String>) -> Option<Point> {
    let late = late_third_packet(c, s);
    if let Some(side) = late {
        let x = [c, s][side];
        caveats.push(format!(
            "the {side}-side capture has no packet like the client's third handshake packet at the other point (its frame {} is a later one): the handshake times there are not compared",
            x.ack3.map_or(0, |a| a.0)
        ));
    }
    late
}

/// What the stages judged of a connection, for [`connection`].
struct Judgement {
    how: MatchedBy,
    failed: bool,
    kinds: Vec<Kind>,
    place: verdict::Place,
    /// Who closed it (its caveats already among `caveats`).
    closed: closer::Closed,
    fast_close: Option<closer::FastClose>,
    confidence: Confidence,
    evidence: Vec<Evidence>,
    caveats: Vec<String>,
}

/// The connection in full: the judgement in one sentence, both sides' views, TLS, and the
/// packets seen at one point only.
fn connection(
    (c, a_name): (&ConnRef<'_>, &str),
    (s, b_name): (&ConnRef<'_>, &str),
    j: Judgement,
    diff: &PathDiff,
) -> (Connection, OnlyHere) {
    let Judgement {
        how,
        failed,
        kinds,
        place:
            verdict::Place {
                path,
                client_side,
                server_side,
                mac,
                vendor: vendor_name,
            },
        closed:
            closer::Closed {
                by: closed_by,
                proof: close_proof,
                doubt: close_doubt,
                ..
            },
        fast_close,
        confidence,
        evidence,
        caveats,
    } = j;
    let transparent = (kinds != [Kind::None]).then_some(c.client.addr == s.client.addr);
    let verdict = verdict_sentence(&VerdictInput {
        kinds: &kinds,
        transparent,
        vendor: vendor_name.as_deref(),
        client_side,
        server_side,
        closed_by,
        close_doubt,
        fast_close: fast_close.map(|x| (x.2, x.3)),
        c,
        s,
        failed,
        one_point_only: diff
            .dropped
            .first()
            .map(dropped_text)
            .or_else(|| diff.injected.first().map(injected_text))
            .map(|first| (first, diff.dropped.len() + diff.injected.len() - 1)),
    });
    let (tls, client_random_same, server_random_same) = tls_view(c, s);
    let mut tls = tls;
    tls.client_random_same = client_random_same;
    tls.server_random_same = server_random_same;
    let sides = crate::model::Sides {
        a: side_view(c, a_name),
        b: side_view(s, b_name),
    };
    let connection = Connection {
        client: sides.a.client.clone(),
        server: sides.a.server.clone(),
        client_port: c.client.port,
        server_port: c.server.port,
        matched_by: how,
        failed,
        verdict,
        middlebox: Middlebox {
            kind: kinds,
            transparent,
            vendor: vendor_name,
            mac: mac.map(|m| mac_string(&m)),
        },
        hops: Hops {
            client_side,
            server_side,
            path,
        },
        closed_by,
        close_proof,
        confidence,
        evidence,
        caveats,
        tls,
        rtt_ms: Rtt {
            a: c.rtt().map(ms),
            b: s.rtt().map(ms),
        },
        sides,
        // Filled in for the first connections in report order only (see `analyze`).
        ladder: Vec::new(),
    };
    let only_here = diff
        .dropped
        .iter()
        .map(|d| (d.0, d.1, "dropped"))
        .chain(diff.injected.iter().map(|d| (d.0, d.1, "injected")))
        .collect();
    (connection, only_here)
}

/// Packets seen at one point only: (the point, frame, `dropped` or `injected`).
type OnlyHere = Vec<(Point, u64, &'static str)>;

/// A pair's connections (client side, server side) and its packets seen at one point only.
type View = (usize, usize, OnlyHere);

#[cfg(test)]
mod tests {
    use super::{Input, Scope, analyze, analyze_scoped, permute};
    use crate::trace::{Conn, ConnTable, TableBuilder};
    use tracekit_testutil::packets::{segment, with_payload};

    /// A trace of `n` connections from ports 1000.., each a SYN; every third answered and
    /// served (ok), the others failed; side b (`back_ttl` on the server's packets) a copy.
    fn many(n: u16, back_ttl: u8) -> ConnTable {
        let mut t = TableBuilder::new(None);
        let mut frame = 0;
        let mut add = |t: &mut TableBuilder, p: Vec<u8>| {
            frame += 1;
            t.add(frame, i64::from(frame as u32) * 1_000_000, 1, &p);
        };
        for k in 0..n {
            let port = 1000 + k;
            add(&mut t, segment(port, false, 64, 0, u32::from(k) * 7, 0x02));
            if k % 3 == 0 {
                add(&mut t, segment(port, true, back_ttl, 0, 5, 0x12));
                add(
                    &mut t,
                    with_payload(segment(port, true, back_ttl, 0, 6, 0x18), b"hello"),
                );
            }
        }
        t.finish()
    }

    #[test]
    fn a_scoped_analysis_has_every_row_and_the_first_connections_as_in_full() {
        let (a, b) = (many(60, 60), many(60, 50));
        let input = |name, table| Input { name, table };
        let full = analyze(input("a", &a), input("b", &b), None);
        assert_eq!(full.rows.len(), 60);
        assert_eq!(full.connections.len(), 60);
        let debug = |x: &dyn std::fmt::Debug| format!("{x:?}");
        // Each row says what its connection in full says (the row is made before the rest).
        for (r, c) in full.rows.iter().zip(&full.connections) {
            assert_eq!(
                (r.client.port, r.server.port, r.matched_by, r.failed),
                (c.client_port, c.server_port, c.matched_by, c.failed)
            );
            assert_eq!(
                (&r.kinds[..], r.closed_by),
                (&c.middlebox.kind[..], c.closed_by)
            );
            assert_eq!(r.confidence, c.confidence);
        }
        // Failed first: 40 of them, then the 20 that worked.
        assert!(full.rows[..40].iter().all(|r| r.failed));
        assert!(full.rows[40..].iter().all(|r| !r.failed));
        for keep in [0, 1, 20, 59, 60, usize::MAX] {
            let scope = Scope {
                full: keep,
                filter: None,
            };
            let scoped = analyze_scoped(input("a", &a), input("b", &b), None, scope);
            assert_eq!(debug(&scoped.rows), debug(&full.rows), "keep {keep}");
            assert_eq!(scoped.connections.len(), keep.min(60));
            assert_eq!(
                debug(&scoped.connections),
                debug(&full.connections[..keep.min(60)].to_vec()),
                "keep {keep}"
            );
            assert_eq!(debug(&scoped.unmatched), debug(&full.unmatched));
        }
        // A filter picks pairs before they are compared; what is left is as in full.
        let even = |c: &Conn, _: &Conn| c.client.port.is_multiple_of(2);
        let scope = Scope {
            full: 5,
            filter: Some(&even),
        };
        let scoped = analyze_scoped(input("a", &a), input("b", &b), None, scope);
        let rows: Vec<_> = full
            .rows
            .iter()
            .filter(|r| r.client.port.is_multiple_of(2))
            .collect();
        assert_eq!(rows.len(), 30);
        assert_eq!(debug(&scoped.rows.iter().collect::<Vec<_>>()), debug(&rows));
        let kept: Vec<_> = full
            .connections
            .iter()
            .filter(|c| c.client_port.is_multiple_of(2))
            .take(5)
            .collect();
        assert_eq!(
            debug(&scoped.connections.iter().collect::<Vec<_>>()),
            debug(&kept)
        );
        assert_eq!(scoped.unmatched.a, 0);
    }

    /// Every permutation of `0..n`, in lexicographic order.
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for rest in permutations(n - 1) {
            for at in 0..n {
                let mut p: Vec<usize> = rest.clone();
                p.insert(at, n - 1);
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn permuting_in_place_gives_what_collecting_in_order_gives() {
        for n in 0..=6 {
            for order in permutations(n) {
                let v: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                let expected: Vec<String> = order.iter().map(|&i| v[i].clone()).collect();
                let mut got = v.clone();
                let order32: Vec<u32> = order.iter().map(|&i| i as u32).collect();
                permute(&mut got, &order32);
                assert_eq!(got, expected, "order {order:?}");
            }
        }
    }
}
