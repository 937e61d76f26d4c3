//! Cross-trace comparison: pairs the connections of the two traces, decides which trace is
//! nearer the client, and turns the differences into evidence, a middlebox verdict and who
//! closed the connection.

use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashMap};
use tracekit_merge::align::Alignment;
use tracekit_wire::tcp::flags;

use crate::closer;
use crate::model::{
    Analysis, Clock, ClosedBy, Confidence, Connection, Evidence, Hops, Kind, MatchedBy, Middlebox,
    Row, Rtt, Signal, TraceSummary, Traces, Unmatched,
};
use crate::sides::{mac_string, ms, side_view, tls_view};
use crate::signals;
use crate::trace::{Conn, ConnRef, ConnTable, FROM_CLIENT, FROM_SERVER, Pkt, hops, initial_ttl};
use crate::verdict;

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
struct Offsets {
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
    fn at_b(&self, t: i64) -> Offset {
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
    let ends = |&(ia, ib, _): &(usize, usize, MatchedBy)| {
        if swapped { (ib, ia) } else { (ia, ib) }
    };
    let chosen: Vec<(usize, usize, MatchedBy)> = pairs
        .iter()
        .filter(|p| {
            let (ic, is) = ends(p);
            scope
                .filter
                .is_none_or(|f| f(&ca.table.conns[ic], &cb.table.conns[is]))
        })
        .copied()
        .collect();
    // Each side's packets are gathered into buffers of the thread's, used again pair after pair.
    let judge = |bufs: &mut Buffers, p: &(usize, usize, MatchedBy), want: Want| {
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
    let in_full = |bufs: &mut Buffers, p: &(usize, usize, MatchedBy)| {
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
    let order = report_order(&rows, |i| ca.table.conns[ends(&chosen[i]).0].first_ts);
    permute(&mut rows, &order);
    if keep_all {
        permute(&mut connections, &order);
        permute(&mut views, &order);
    } else {
        // The first in report order, compared again, in full.
        let mut bufs = Buffers::default();
        for &i in order.iter().take(scope.full) {
            let (conn, (view, _)) = in_full(&mut bufs, &chosen[i]);
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
        connections: i.table.conns.len(),
    };
    Analysis {
        traces: Traces {
            a: summary(ca),
            b: summary(cb),
        },
        swapped,
        clock: alignment.zip(offset).map(|(al, o)| Clock {
            drift: drift
                .filter(|_| offsets.is_some_and(|o| o.windows.len() > 1))
                .map(|d| crate::model::ClockDrift::of(d, swapped)),
            offset_ns: o.mid,
            lo_ns: o.lo,
            hi_ns: o.hi,
            matches: al.matches,
            by_kind: al.by_kind.clone(),
        }),
        connections,
        rows,
        unmatched,
        sets: None,
    }
}

/// The offset the report gives and the one each connection is compared at: the estimate's
/// for all, or with drifting clocks each window's, the report giving the first window's (the
/// estimate over all the first packets mixes windows, and its interval may be empty).
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
type Buffers = (Vec<Pkt>, Vec<Pkt>);

/// The report's order of `rows` (indices): failed and odd connections first, then in time
/// order (`first_ts` of the row at an index).
fn report_order(rows: &[Row], first_ts: impl Fn(usize) -> i64) -> Vec<usize> {
    let mut order: Vec<(bool, bool, i64, u32)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let odd = r.kinds != [Kind::None];
            (!r.failed, !odd, first_ts(i), i as u32)
        })
        .collect();
    order.sort_unstable();
    order.iter().map(|o| o.3 as usize).collect()
}

/// The connections of each trace that no pair holds (counts and a few examples).
fn unmatched(
    a: Input<'_>,
    b: Input<'_>,
    pairs: &[(usize, usize, MatchedBy)],
    swapped: bool,
) -> Unmatched {
    let mut used = [
        vec![false; a.table.conns.len()],
        vec![false; b.table.conns.len()],
    ];
    for &(ia, ib, _) in pairs {
        used[0][ia] = true;
        used[1][ib] = true;
    }
    let mut unmatched = Unmatched::default();
    for (side, t, used) in [("a", a.table, &used[0]), ("b", b.table, &used[1])] {
        for (c, _) in t.conns.iter().zip(used).filter(|(_, used)| !**used) {
            if side == "a" {
                unmatched.a += 1;
            } else {
                unmatched.b += 1;
            }
            if unmatched.examples.len() < 10 {
                let name = if side == "a" { a.name } else { b.name };
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
fn permute<T>(v: &mut [T], order: &[usize]) {
    let mut placed = vec![false; v.len()];
    for start in 0..v.len() {
        let mut k = start;
        while !placed[k] {
            placed[k] = true;
            let from = order[k];
            if from == start {
                break;
            }
            v.swap(k, from);
            k = from;
        }
    }
}

/// Values (connections of b) under keys, each at a time, for finding the unused value of a
/// key nearest to a time: the entries sorted by key, then time and value, with skip pointers
/// past used entries (union-find style, paths halved). A key shared by tens of thousands of
/// connections (one 4-tuple reused, one request repeated) then costs a binary search per
/// lookup instead of a scan of all of them (20,000 connections on one tuple took 4.8 s).
struct Nearest<K> {
    groups: FxHashMap<K, (usize, usize)>,
    /// (time, value), by key, then time and value.
    entries: Vec<(i64, usize)>,
    /// `right[e]`: an entry at or after `e` with no unused entry between (`e` itself when
    /// unused); `entries.len()` is the end.
    right: Vec<usize>,
    /// The same leftwards, shifted by one: `left[e + 1]` for entry `e`, 0 for none.
    left: Vec<usize>,
    /// Each value's entries (a value may be under two keys; `usize::MAX` for none).
    at: Vec<[usize; 2]>,
}

impl<K: std::hash::Hash + Eq + Ord + Copy> Nearest<K> {
    /// `items`: (key, time, value) with values below `values`.
    fn new(mut items: Vec<(K, i64, usize)>, values: usize) -> Self {
        items.sort_unstable();
        let mut groups = FxHashMap::with_capacity_and_hasher(items.len(), FxBuildHasher);
        let mut at = vec![[usize::MAX; 2]; values];
        let mut entries = Vec::with_capacity(items.len());
        let mut start = 0;
        for (e, &(key, time, value)) in items.iter().enumerate() {
            entries.push((time, value));
            let slot = &mut at[value];
            slot[usize::from(slot[0] != usize::MAX)] = e;
            if items.get(e + 1).is_none_or(|next| next.0 != key) {
                groups.insert(key, (start, e + 1));
                start = e + 1;
            }
        }
        let n = entries.len();
        Nearest {
            groups,
            entries,
            right: (0..=n).collect(),
            left: (0..=n).collect(),
            at,
        }
    }
    /// The first unused entry at or after `e`, before `end`.
    fn unused_from(&mut self, mut e: usize, end: usize) -> Option<usize> {
        while self.right[e] != e {
            self.right[e] = self.right[self.right[e]];
            e = self.right[e];
        }
        (e < end).then_some(e)
    }
    /// The last unused entry at or before `e`, from `start` on.
    fn unused_to(&mut self, e: usize, start: usize) -> Option<usize> {
        let mut x = e + 1;
        while self.left[x] != x {
            self.left[x] = self.left[self.left[x]];
            x = self.left[x];
        }
        (x > start).then(|| x - 1)
    }
    fn mark_used(&mut self, value: usize) {
        for e in self.at[value] {
            if e != usize::MAX {
                self.right[e] = e + 1;
                self.left[e + 1] = e;
            }
        }
    }
    /// The key's unused value whose time is nearest `t` (the lowest value on a tie).
    fn nearest(&mut self, key: &K, t: i64) -> Option<usize> {
        let &(start, end) = self.groups.get(key)?;
        let pos = start + self.entries[start..end].partition_point(|&(x, _)| x < t);
        let after = self.unused_from(pos, end);
        // The nearest unused time before `t`, and of its values the lowest unused one.
        let before = match pos.checked_sub(1).filter(|&p| p >= start) {
            Some(p) => self.unused_to(p, start).and_then(|e| {
                let time = self.entries[e].0;
                let first = start + self.entries[start..end].partition_point(|&(x, _)| x < time);
                self.unused_from(first, end)
            }),
            None => None,
        };
        let best = [before, after].into_iter().flatten().min_by_key(|&e| {
            let (time, value) = self.entries[e];
            (time.abs_diff(t), value)
        })?;
        Some(self.entries[best].1)
    }
}

/// How near in time two handshakes must be to pair their connections by timing alone.
const WINDOW: i64 = 1_000_000_000;

/// Pairs connections of a and b: (index in a, index in b, how).
fn pair_connections(
    a: &ConnTable,
    b: &ConnTable,
    offsets: Option<&Offsets>,
) -> Vec<(usize, usize, MatchedBy)> {
    let n = b.conns.len();
    // Times on a's clock.
    let at_a = |c: &Conn| {
        c.first_ts
            .saturating_add(offsets.map_or(0, |o| o.at_b(c.first_ts).mid))
    };
    let mut tuples = Vec::with_capacity(2 * n);
    let mut payloads = Vec::with_capacity(n);
    let mut isn_pairs = Vec::with_capacity(n);
    let mut by_random: FxHashMap<[u8; 32], usize> = FxHashMap::default();
    let mut buf = Vec::new();
    for (i, c) in b.conns.iter().enumerate() {
        tuples.push(((c.client, c.server), at_a(c), i));
        tuples.push(((c.server, c.client), at_a(c), i));
        if let Some(r) = c.client_random {
            by_random.insert(r, i);
        }
        if c.first_client_payload != 0 {
            payloads.push((c.first_client_payload, at_a(c), i));
        }
        if let Some(both) = isns_in(b, i, &mut buf) {
            isn_pairs.push((both, at_a(c), i));
        }
    }
    // The three indices are built at once (sorting 2 entries per connection of b is most of
    // the pairing's time).
    let ((mut by_tuple, mut by_payload), mut by_isn) = rayon::join(
        || rayon::join(|| Nearest::new(tuples, n), || Nearest::new(payloads, n)),
        || Nearest::new(isn_pairs, n),
    );
    let mut used = vec![false; n];
    let mut pairs = Vec::new();
    // The nearest unused candidate in time (the first in b's order on a tie).
    for (ia, c) in a.conns.iter().enumerate() {
        let found = by_tuple
            .nearest(&(c.client, c.server), c.first_ts)
            .map(|i| (i, MatchedBy::Tuple))
            .or_else(|| {
                c.client_random
                    .and_then(|r| by_random.get(&r).copied())
                    .filter(|&i| !used[i])
                    .map(|i| (i, MatchedBy::TlsRandom))
            })
            .or_else(|| {
                (c.first_client_payload != 0)
                    .then(|| by_payload.nearest(&c.first_client_payload, c.first_ts))
                    .flatten()
                    .map(|i| (i, MatchedBy::Payload))
            })
            .or_else(|| {
                // Both initial sequence numbers (a NAT keeps them; 64 bits rarely repeat).
                isns_in(a, ia, &mut buf)
                    .and_then(|both| by_isn.nearest(&both, c.first_ts))
                    .map(|i| (i, MatchedBy::Isn))
            });
        if let Some((ib, how)) = found {
            used[ib] = true;
            by_tuple.mark_used(ib);
            by_payload.mark_used(ib);
            by_isn.mark_used(ib);
            pairs.push((ia, ib, how));
        }
    }
    // Timing: a connection left over on each side, same server port, handshakes within 1 s
    // (`WINDOW`) of each other once the clocks are aligned, and no other candidate. (b's left-over
    // connections by port and time: a scan of all of b per connection of a was quadratic.)
    if offsets.is_some() {
        let mut paired = vec![false; a.conns.len()];
        for p in &pairs {
            paired[p.0] = true;
        }
        let mut by_port: FxHashMap<u16, Vec<(i64, usize)>> = FxHashMap::default();
        for (i, c) in b.conns.iter().enumerate().filter(|(i, _)| !used[*i]) {
            by_port.entry(c.server.port).or_default().push((at_a(c), i));
        }
        for list in by_port.values_mut() {
            list.sort_unstable();
        }
        for (ia, c) in a.conns.iter().enumerate().filter(|(ia, _)| !paired[*ia]) {
            let Some(list) = by_port.get(&c.server.port) else {
                continue;
            };
            let from = list.partition_point(|&(t, _)| t <= c.first_ts.saturating_sub(WINDOW));
            let mut cands = list[from..]
                .iter()
                .take_while(|&&(t, _)| t < c.first_ts.saturating_add(WINDOW))
                .filter(|&&(_, i)| !used[i]);
            if let (Some(&(_, ib)), None) = (cands.next(), cands.next()) {
                used[ib] = true;
                pairs.push((ia, ib, MatchedBy::Timing));
            }
        }
    }
    pairs
}

/// Whether b is nearer the client: at the client's point the SYN/ACK is answered at once
/// (SYN/ACK → ACK is a small part of the handshake), at the server's point the SYN is.
fn b_is_client_side(a: &ConnTable, b: &ConnTable, pairs: &[(usize, usize, MatchedBy)]) -> bool {
    let mut votes = 0i64;
    for &(ia, ib, _) in pairs {
        let (ca, cb) = (&a.conns[ia], &b.conns[ib]);
        let share = |c: &Conn| Some(c.towards_client()? as f64 / c.rtt()?.max(1) as f64);
        if let (Some(sa), Some(sb)) = (share(ca), share(cb)) {
            votes += if sb < sa {
                1
            } else if sa < sb {
                -1
            } else {
                0
            };
        } else if let (Some(ha), Some(hb)) = (ca.syn, cb.syn) {
            // No complete handshake: the client's SYN crossed fewer routers at its own point.
            votes +=
                i64::from(hops(hb.ttl) < hops(ha.ttl)) - i64::from(hops(ha.ttl) < hops(hb.ttl));
        }
    }
    votes > 0
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

/// One point's kept packets of a connection by sequence number relative to each sender's
/// ISN, for finding the other point's packet that carries the same bytes (or the same control
/// flag at the same number). Indexed once per connection: a scan per packet was quadratic in
/// the packets kept (400 per connection, 4 scans each).
struct SeqSpace<'a> {
    conn: ConnRef<'a>,
    isn: [u32; 2],
    /// Per direction: the byte ranges of packets with payload.
    data: [Ranges; 2],
    /// Per direction: the FIN/RST flags and relative sequence number of each control packet.
    controls: [Vec<(u16, u32)>; 2],
    /// Per direction: the highest relative sequence number kept (comparison stops there).
    until: [Option<u32>; 2],
    /// Per direction: the furthest relative sequence number a packet starts at.
    furthest_start: [Option<u32>; 2],
    /// Per direction: the highest acknowledgement sent, relative to the other side's ISN.
    acked: [Option<u32>; 2],
}

impl<'a> SeqSpace<'a> {
    fn new(conn: ConnRef<'a>, isn: [u32; 2]) -> Self {
        // (Room for every packet in each direction: one allocation each, not a doubling.)
        let ranges = || Ranges {
            by_start: Vec::with_capacity(conn.pkts.len()),
        };
        let mut s = SeqSpace {
            conn,
            isn,
            data: [ranges(), ranges()],
            controls: [Vec::new(), Vec::new()],
            until: [None; 2],
            furthest_start: [None; 2],
            acked: [None; 2],
        };
        let raise = |v: &mut Option<u32>, x: u32| *v = Some(v.map_or(x, |v| v.max(x)));
        for p in conn.pkts {
            let (d, r) = (p.dir(), s.rel(p));
            let end = r.wrapping_add(p.len);
            raise(&mut s.until[d], end);
            raise(&mut s.furthest_start[d], r);
            if p.flags & flags::ACK != 0 {
                raise(&mut s.acked[d], p.ack.wrapping_sub(isn[1 - d]));
            }
            if p.len > 0 {
                s.data[d].push(r, end);
            }
            if p.flags & (flags::FIN | flags::RST) != 0 {
                s.controls[d].push((p.flags & (flags::FIN | flags::RST), r));
            }
        }
        for ranges in &mut s.data {
            ranges.index();
        }
        s
    }
    fn rel(&self, p: &Pkt) -> u32 {
        p.seq.wrapping_sub(self.isn[p.dir()])
    }
    /// Whether any kept packet of `dir` carries a byte of [start, end).
    fn covers(&self, dir: usize, start: u32, end: u32) -> bool {
        self.data[dir].covers(start, end)
    }
    /// Whether this point's own packets show that the sender of `dir` sent `p` (numbered `r`
    /// here) although it is not among them: a later packet of the sender starts past its data,
    /// or, for a FIN, right after it with no data of the sender's at its number. (A RST takes
    /// no sequence number: nothing shows it was sent.)
    fn sent_past(&self, dir: usize, p: &Pkt, r: u32) -> bool {
        let furthest = self.furthest_start[dir];
        if p.len > 0 {
            furthest.is_some_and(|f| f >= r.wrapping_add(p.len))
        } else if p.flags & (flags::FIN | flags::RST) == flags::FIN {
            furthest.is_some_and(|f| f > r) && !self.covers(dir, r, r.wrapping_add(1))
        } else {
            false
        }
    }
    /// Whether this point's packets show that the receiver of `dir` acknowledged `p`
    /// (numbered `r` here): its data, or for a FIN its sequence number.
    fn acknowledged(&self, dir: usize, p: &Pkt, r: u32) -> bool {
        let taken = if p.len > 0 {
            p.len
        } else if p.flags & (flags::FIN | flags::RST) == flags::FIN {
            1
        } else {
            return false;
        };
        self.acked[1 - dir].is_some_and(|a| a >= r.wrapping_add(taken))
    }
    /// Whether a FIN/RST of `dir` (one of the flags in `flag`) was kept with this relative
    /// sequence number.
    fn has_control(&self, dir: usize, flag: u16, rel: u32) -> bool {
        self.controls[dir]
            .iter()
            .any(|&(f, r)| f & flag != 0 && r == rel)
    }
}

/// Byte ranges `[start, end)` of relative sequence numbers (`end` as `start + len` wraps),
/// indexed by [`Ranges::index`] so that [`Ranges::covers`] is a binary search.
#[derive(Default)]
struct Ranges {
    /// (start, end), then after `index`: (start, the furthest end among the ranges up to this
    /// one), by start.
    by_start: Vec<(u32, u32)>,
}

impl Ranges {
    fn push(&mut self, start: u32, end: u32) {
        self.by_start.push((start, end));
    }
    fn index(&mut self) {
        self.by_start.sort_unstable();
        let mut furthest = 0;
        for (k, (_, end)) in self.by_start.iter_mut().enumerate() {
            furthest = if k == 0 { *end } else { furthest.max(*end) };
            *end = furthest;
        }
    }
    /// Whether a range has a byte of [start, end) (`r < end && r_end > start`): of the ranges
    /// that start before `end`, one reaches past `start`.
    fn covers(&self, start: u32, end: u32) -> bool {
        let before = self.by_start.partition_point(|&(r, _)| r < end);
        before > 0 && self.by_start[before - 1].1 > start
    }
}

#[derive(Default)]
pub(crate) struct PathDiff {
    /// (frame at the sending side, description)
    pub(crate) dropped: Vec<(usize, u64, String)>,
    /// (side index 0 = a / 1 = b, frame, description)
    pub(crate) injected: Vec<(usize, u64, String, u16, u8)>,
    /// Packets one capture lacks though the ends' own packets there show they passed its
    /// point (capture loss): (side index of the capture that lacks it, frame at the other
    /// side, sent by the client).
    pub(crate) not_captured: Vec<(usize, u64, bool)>,
}

pub(crate) fn describe_pkt(p: &Pkt) -> String {
    let who = if p.from_client { "client" } else { "server" };
    if let Some(t) = p.tls {
        format!("the {who}'s {} ({} bytes)", t.describe(), p.len)
    } else if p.flags & flags::RST != 0 {
        format!("a RST in the {who}'s name")
    } else if p.flags & flags::FIN != 0 {
        format!("a FIN in the {who}'s name")
    } else {
        format!("{} bytes of the {who}'s data", p.len)
    }
}

/// A packet the path comparison found at its sender's point only, in words.
pub(crate) fn dropped_text(d: &(usize, u64, String)) -> String {
    format!(
        "{} (frame {} at the {} side) never reached the other point",
        d.2,
        d.1,
        if d.0 == 0 { "client" } else { "server" }
    )
}

/// A packet the path comparison found at its receiver's point only, in words.
pub(crate) fn injected_text(d: &(usize, u64, String, u16, u8)) -> String {
    format!(
        "{} reached the {} side (frame {}, TTL {}) but the {} never sent it",
        d.2,
        if d.0 == 0 { "client" } else { "server" },
        d.1,
        d.4,
        if d.0 == 0 { "server" } else { "client" }
    )
}

/// Packets one point saw and the other did not: data by relative sequence range, FIN/RST by
/// flag and relative sequence number. Only over the time both captures cover. `inits`: the
/// initial TTLs of the client and the server, as their own points show them.
fn path_diff(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    off: Option<Offset>,
    windows: [(i64, i64); 2],
    inits: [Option<u8>; 2],
) -> PathDiff {
    let mut out = PathDiff {
        dropped: Vec::new(),
        injected: Vec::new(),
        not_captured: Vec::new(),
    };
    // Only with a clock offset and both ISNs at both points.
    let (Some(off), Some(ic), Some(is)) = (off, isns(c), isns(s)) else {
        return out;
    };
    let views = [SeqSpace::new(*c, ic), SeqSpace::new(*s, is)];
    // Times on a's clock; each side's window of observation.
    let on_a = |side: usize, ts: i64| if side == 0 { ts } else { ts + off.mid };
    let window = [windows[0], (windows[1].0 + off.mid, windows[1].1 + off.mid)];
    for (sender_side, dir) in [(0usize, FROM_CLIENT), (1usize, FROM_SERVER)] {
        let receiver_side = 1 - sender_side;
        let (snd, rcv) = (&views[sender_side], &views[receiver_side]);
        let limit = [snd.until[dir], rcv.until[dir]];
        let folded = snd.conn.folded > 0 || rcv.conn.folded > 0;
        // Sent at the sender's point, never at the receiver's.
        for p in snd.conn.pkts.iter().filter(|p| p.dir() == dir) {
            let t = on_a(sender_side, p.ts);
            if t > window[receiver_side].1 {
                continue;
            }
            let r = snd.rel(p);
            if folded && limit[1].is_none_or(|l| r >= l) {
                continue;
            }
            let missing = if p.len > 0 {
                !rcv.covers(dir, r, r.wrapping_add(p.len))
            } else if p.flags & (flags::FIN | flags::RST) != 0 {
                let flag = p.flags & (flags::FIN | flags::RST);
                // A RST may carry the sequence number after the FIN's.
                let seen = rcv.has_control(dir, flag, r)
                    || (p.flags & flags::RST != 0
                        && rcv.has_control(dir, flags::RST, r.wrapping_add(1)));
                !seen
            } else {
                false
            };
            if missing && rcv.acknowledged(dir, p, r) {
                out.not_captured
                    .push((receiver_side, p.frame, p.from_client));
            } else if missing {
                out.dropped.push((sender_side, p.frame, describe_pkt(p)));
            }
        }
        // Seen at the receiver's point in the sender's name, never sent at the sender's point.
        for p in rcv.conn.pkts.iter().filter(|p| p.dir() == dir) {
            let t = on_a(receiver_side, p.ts);
            if t < window[sender_side].0 || t > window[sender_side].1 {
                continue;
            }
            let r = rcv.rel(p);
            if folded && limit[0].is_none_or(|l| r >= l) {
                continue;
            }
            let foreign = if p.len > 0 {
                !snd.covers(dir, r, r.wrapping_add(p.len))
            } else if p.flags & (flags::FIN | flags::RST) != 0 {
                let flag = p.flags & (flags::FIN | flags::RST);
                !snd.has_control(dir, flag, r)
            } else {
                false
            };
            // A FIN that left the sender (its initial TTL) and that the sender's later packets
            // at this point step past was the sender's own, though its capture lost it and all
            // that followed (an injected one leaves the sender's numbers where they were; a
            // proxy's comes with the proxy's TTL).
            let fin_stepped_past = p.flags & (flags::FIN | flags::RST) == flags::FIN
                && p.len == 0
                && inits[dir].is_some_and(|i| initial_ttl(p.ttl) == i)
                && rcv.sent_past(dir, p, r);
            if foreign && (snd.sent_past(dir, p, r) || fin_stepped_past) {
                out.not_captured.push((sender_side, p.frame, p.from_client));
            } else if foreign {
                out.injected
                    .push((receiver_side, p.frame, describe_pkt(p), p.flags, p.ttl));
            }
        }
    }
    out
}

/// Packets kept at both points that carry the same payload, in the same direction:
/// (client-side packet, server-side packet).
pub(crate) fn same_packets<'a>(c: &ConnRef<'a>, s: &ConnRef<'a>) -> Vec<(&'a Pkt, &'a Pkt)> {
    let with_payload = |x: &ConnRef<'a>| x.pkts.iter().filter(|p| p.payload != 0);
    if c.pkts.len() * s.pkts.len() <= 1024 {
        // A few dozen packets (most connections): a scan costs less than building a map.
        return with_payload(c)
            .filter_map(|p| {
                let q = with_payload(s)
                    .find(|q| q.from_client == p.from_client && q.payload == p.payload)?;
                Some((p, q))
            })
            .collect();
    }
    let mut by_payload: FxHashMap<(bool, u64), &Pkt> = FxHashMap::default();
    for p in s.pkts.iter().filter(|p| p.payload != 0) {
        by_payload.entry((p.from_client, p.payload)).or_insert(p);
    }
    c.pkts
        .iter()
        .filter(|p| p.payload != 0)
        .filter_map(|p| Some((p, *by_payload.get(&(p.from_client, p.payload))?)))
        .collect()
}

/// [`isns`] of connection `i` of `t`, its packets gathered into `buf` only when its handshake
/// does not give both.
fn isns_in(t: &ConnTable, i: usize, buf: &mut Vec<Pkt>) -> Option<[u32; 2]> {
    let c = &t.conns[i];
    if let (Some(client), Some(server)) = (c.isn(FROM_CLIENT), c.isn(FROM_SERVER)) {
        return Some([client, server]);
    }
    isns(&t.with_packets(i, buf))
}

/// The initial sequence numbers of the client and the server at one point (see
/// [`isn_seen`]).
pub(crate) fn isns(x: &ConnRef<'_>) -> Option<[u32; 2]> {
    Some([isn_seen(x, FROM_CLIENT)?, isn_seen(x, FROM_SERVER)?])
}

/// One end's initial sequence number at one point: from the handshake, or where its SYN or
/// SYN/ACK was not captured there, from what acknowledges it: the SYN/ACK acknowledges the
/// client's ISN + 1, and the client's first packet after its SYN the server's, when the
/// server's first packet there starts at the number it acknowledges (the third handshake
/// packet, or the client's first data when that was lost too; not a later ACK of server data
/// whose packets were lost as well), or, with no packet of the server there after the SYN, when
/// it is a bare ACK.
pub(crate) fn isn_seen(x: &ConnRef<'_>, dir: usize) -> Option<u32> {
    if let Some(isn) = x.isn(dir) {
        return Some(isn);
    }
    let acknowledging = if dir == FROM_CLIENT {
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

/// Which point (0 the client side, 1 the server side) took a later packet of the client for
/// the third packet of the handshake, if they differ: its capture missed the client's ACK (or
/// the ACK never reached it). The packets are compared by how far they reach into the client's
/// stream and what they acknowledge, relative to each point's ISNs.
fn late_third_packet(c: &ConnRef<'_>, s: &ConnRef<'_>) -> Option<usize> {
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
        std::cmp::Ordering::Less => Some(1),
        std::cmp::Ordering::Greater => Some(0),
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
        kinds: kinds.clone(),
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
fn late_third(c: &ConnRef<'_>, s: &ConnRef<'_>, caveats: &mut Vec<String>) -> Option<usize> {
    let late = late_third_packet(c, s);
    if let Some(side) = late {
        let (x, name) = if side == 0 {
            (c, "client")
        } else {
            (s, "server")
        };
        caveats.push(format!(
            "the {name}-side capture has no packet like the client's third handshake packet at the other point (its frame {} is a later one): the handshake times there are not compared",
            x.ack3.map_or(0, |a| a.0)
        ));
    }
    late
}

/// The path comparison of one connection's packets at the two points (see [`path_diff`]), and
/// whether the middlebox rewrites the payload (then the packets are not compared one by one:
/// the two points carry different streams); with its caveats.
fn compared_path(
    c: &ConnRef<'_>,
    s: &ConnRef<'_>,
    (off, windows): (Option<Offset>, [(i64, i64); 2]),
    inits: [Option<u8>; 2],
    caveats: &mut Vec<String>,
) -> (PathDiff, bool) {
    // Packets seen at one point only. Only when the middlebox forwards the bytes as they are:
    // a TLS interceptor (or anything that rewrites payloads) makes two different streams.
    let rewritten_stream = c.first_client_payload != 0
        && s.first_client_payload != 0
        && c.first_client_payload != s.first_client_payload;
    let diff = if rewritten_stream {
        caveats.push("the client's first bytes differ at the two points (the middlebox rewrites the payload, e.g. terminates TLS): packets were not compared one by one".to_string());
        PathDiff::default()
    } else {
        path_diff(c, s, off, windows, inits)
    };
    for (lacking, from_client) in [(0, true), (0, false), (1, true), (1, false)] {
        let mut lost = diff
            .not_captured
            .iter()
            .filter(|x| x.0 == lacking && x.2 == from_client);
        if let Some(first) = lost.next() {
            let (side, other) = if lacking == 0 {
                ("client", "server")
            } else {
                ("server", "client")
            };
            caveats.push(format!(
                "{} packet(s) of the {} are missing from the {side}-side capture, though the packets captured there show they passed that point (later packets of their sender, or acknowledgements of them): capture loss, not counted as dropped or injected (first: frame {} at the {other} side)",
                1 + lost.count(),
                if from_client { "client" } else { "server" },
                first.1
            ));
        }
    }
    (diff, rewritten_stream)
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

/// Packets seen at one point only: (side index, frame, `dropped` or `injected`).
type OnlyHere = Vec<(usize, u64, &'static str)>;

/// A pair's connections (client side, server side) and its packets seen at one point only.
type View = (usize, usize, OnlyHere);

struct VerdictInput<'a> {
    kinds: &'a [Kind],
    transparent: Option<bool>,
    vendor: Option<&'a str>,
    client_side: Option<u8>,
    server_side: Option<u8>,
    closed_by: ClosedBy,
    /// The first close seen may answer one a capture lost (see `unseen_end`).
    close_doubt: bool,
    fast_close: Option<(Option<&'static str>, i64)>,
    c: &'a Conn,
    s: &'a Conn,
    failed: bool,
    /// The first packet seen at one point only, in words, and how many more there are.
    one_point_only: Option<(String, usize)>,
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

fn verdict_sentence(v: &VerdictInput<'_>) -> String {
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
            if v.c.client_hello.is_some() {
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

/// Whether the sender's own capture (`there`) shows its first close leaving before the packet
/// that preceded the close at the other point (`prev`, seen at `here`) reached the sender: then
/// the close answered nothing and crossed that packet on the wire, as when a server's FIN
/// follows its close_notify while the client's RST to that record is under way. When `there`
/// saw `prev` too, its own clock says; otherwise the close must have left before `prev` could
/// arrive over the whole feasible clock-offset interval (the estimate when there is none).
/// `here_is_client_side` says which capture `here` is; offsets are the server side's, relative
/// to the client side.
pub(crate) fn left_before_it_could_answer(
    here: &ConnRef<'_>,
    there: &ConnRef<'_>,
    dir: usize,
    prev: &Pkt,
    here_is_client_side: bool,
    off: Option<Offset>,
) -> bool {
    let Some(own) = there.first_close(dir) else {
        return false;
    };
    if let Some(arrived) = seen_at(prev, here, there) {
        return own.ts < arrived.ts;
    }
    let Some(o) = off else { return false };
    // The earliest time `prev` can be at `there`, in `there`'s clock.
    let earliest = if here_is_client_side {
        // client time = server time + offset: the largest offset gives the earliest.
        prev.ts - o.hi.unwrap_or(o.mid)
    } else {
        prev.ts + o.lo.unwrap_or(o.mid)
    };
    own.ts < earliest
}

/// The same packet as `p` (of `here`) at the other point: the same payload, or for a segment
/// without one the same flags and sequence and acknowledgement numbers relative to each side's
/// ISNs.
fn seen_at<'a>(p: &Pkt, here: &ConnRef<'_>, there: &ConnRef<'a>) -> Option<&'a Pkt> {
    if p.payload != 0 {
        return there
            .pkts
            .iter()
            .find(|q| q.from_client == p.from_client && q.payload == p.payload);
    }
    let (h, t) = (isns(here)?, isns(there)?);
    let (own, peer) = if p.from_client { (0, 1) } else { (1, 0) };
    let rel = |x: &Pkt, isn: [u32; 2]| {
        (
            x.seq.wrapping_sub(isn[own]),
            x.ack.wrapping_sub(isn[peer]),
            x.flags & 0x17,
        )
    };
    let want = rel(p, h);
    there
        .pkts
        .iter()
        .find(|q| q.from_client == p.from_client && rel(q, t) == want)
}

#[cfg(test)]
mod tests {
    use super::{Input, Nearest, Ranges, Scope, analyze, analyze_scoped, permute};
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
            assert_eq!((&r.kinds, r.closed_by), (&c.middlebox.kind, c.closed_by));
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

    /// A small LCG: numbers below the bound asked for, the same cases every run.
    fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |bound| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) % bound
        }
    }

    #[test]
    fn the_nearest_unused_value_is_the_one_a_scan_finds() {
        let mut next = numbers(11);
        for _ in 0..200 {
            let values = 1 + next(60) as usize;
            // Few keys and few distinct times: shared keys and tied times are the point. Some
            // values are under two keys, as a connection is under both orders of its ends.
            let mut items = Vec::new();
            for v in 0..values {
                let time = next(20) as i64 * 10;
                items.push((next(4), time, v));
                if next(2) == 0 {
                    items.push((4 + next(2), time, v));
                }
            }
            let mut index = Nearest::new(items.clone(), values);
            let mut used = vec![false; values];
            for _ in 0..values {
                let (key, t) = (next(6), next(220) as i64 - 10);
                let scan = items
                    .iter()
                    .filter(|&&(k, _, v)| k == key && !used[v])
                    .min_by_key(|&&(_, time, v)| (time.abs_diff(t), v))
                    .map(|&(_, _, v)| v);
                assert_eq!(
                    index.nearest(&key, t),
                    scan,
                    "key {key} at {t}: {items:?} {used:?}"
                );
                // Use what was found, or now and then another value (paired another way).
                let take = if next(3) == 0 {
                    Some(next(values as u64) as usize)
                } else {
                    scan
                };
                if let Some(v) = take.filter(|&v| !used[v]) {
                    used[v] = true;
                    index.mark_used(v);
                }
            }
        }
    }

    #[test]
    fn indexed_ranges_cover_what_a_scan_finds() {
        // Starts near the wrap of u32 included.
        let mut next = numbers(7);
        for case in 0..300 {
            let base = if case % 3 == 0 { u32::MAX - 3000 } else { 0 };
            let mut ranges = Ranges::default();
            let mut plain = Vec::new();
            for _ in 0..next(40) {
                let start = base.wrapping_add(next(6000) as u32);
                let end = start.wrapping_add(1 + next(1500) as u32);
                ranges.push(start, end);
                plain.push((start, end));
            }
            ranges.index();
            for _ in 0..200 {
                let start = base.wrapping_add(next(8000) as u32);
                let end = start.wrapping_add(1 + next(1500) as u32);
                let scan = plain.iter().any(|&(r, e)| r < end && e > start);
                assert_eq!(
                    ranges.covers(start, end),
                    scan,
                    "{plain:?} [{start}, {end})"
                );
            }
        }
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
                permute(&mut got, &order);
                assert_eq!(got, expected, "order {order:?}");
            }
        }
    }
}
