//! Pairing one trace's connections with the other's: the same tuple, else the same TLS client
//! random, first payload or ISNs, else the nearest in time (a NAT rewrites tuples); and which
//! trace is the client side.

use std::hash::{Hash, Hasher};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use tracekit_wire::Endpoint;

use crate::compare::{Offsets, isns, isns_in};
use crate::model::MatchedBy;
use crate::trace::{Conn, ConnTable, Gathered, hops};

/// Values (connections of b) under keys, each at a time, for finding the unused value of a
/// key nearest to a time: the entries sorted by key, then time and value, with skip pointers
/// past used entries (union-find style, paths halved). A key shared by tens of thousands of
/// connections (one 4-tuple reused, one request repeated) then costs a binary search per
/// lookup instead of a scan of all of them (20,000 connections on one tuple took 4.8 s).
/// Keys are 64-bit hashes, spread evenly, and a key's entries are found through a directory
/// by their top bits rather than a hash map; positions and values are `u32` (connections stop
/// below 2^32). For a port scan's million connections, these indices took about 340 MB with
/// `usize`, the tuples as keys and a hash map, and take 42 MB.
pub(crate) struct Nearest {
    /// (key, time, value), by key, then time and value.
    entries: Vec<(u64, i64, u32)>,
    /// `first[k]`: the first entry whose key's top bits are `k` or more; one past the last
    /// for `k` = `first.len() - 1`.
    first: Vec<u32>,
    /// What moves a key's top bits down.
    shift: u32,
    /// `right[e]`: an entry at or after `e` with no unused entry between (`e` itself when
    /// unused); `entries.len()` is the end.
    right: Vec<u32>,
    /// The same leftwards, shifted by one: `left[e + 1]` for entry `e`, 0 for none.
    left: Vec<u32>,
    /// Each value's entry (`u32::MAX` for none): a value is under one key at most.
    at: Vec<u32>,
}

/// An index as `u32` (every index here is of a connection or an entry: below 2^32).
fn small(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Nearest {
    /// `items`: (key, time, value) with values below `values`, each value once at most.
    fn new(mut items: Vec<(u64, i64, u32)>, values: usize) -> Self {
        for item in &mut items {
            item.0 = spread(item.0);
        }
        items.sort_unstable();
        let n = items.len();
        // A directory slot for every entry or so.
        let bits = (usize::BITS - n.leading_zeros()).clamp(1, 32);
        let shift = 64 - bits;
        let mut first = Vec::with_capacity((1 << bits) + 1);
        let mut e = 0;
        for top in 0..=(1u64 << bits) {
            while e < n && items[e].0 >> shift < top {
                e += 1;
            }
            first.push(small(e));
        }
        let mut at = vec![u32::MAX; values];
        for (e, &(_, _, value)) in items.iter().enumerate() {
            at[value as usize] = small(e);
        }
        Nearest {
            entries: items,
            first,
            shift,
            right: (0..=small(n)).collect(),
            left: (0..=small(n)).collect(),
            at,
        }
    }
    /// The first unused entry at or after `e`, before `end`.
    fn unused_from(&mut self, mut e: usize, end: usize) -> Option<usize> {
        while self.right[e] as usize != e {
            self.right[e] = self.right[self.right[e] as usize];
            e = self.right[e] as usize;
        }
        (e < end).then_some(e)
    }
    /// The last unused entry at or before `e`, from `start` on.
    fn unused_to(&mut self, e: usize, start: usize) -> Option<usize> {
        let mut x = e + 1;
        while self.left[x] as usize != x {
            self.left[x] = self.left[self.left[x] as usize];
            x = self.left[x] as usize;
        }
        (x > start).then(|| x - 1)
    }
    fn mark_used(&mut self, value: usize) {
        let e = self.at[value];
        if e != u32::MAX {
            self.right[e as usize] = e + 1;
            self.left[e as usize + 1] = e;
        }
    }
    /// The key's unused value whose time is nearest `t` (the lowest value on a tie).
    fn nearest(&mut self, key: u64, t: i64) -> Option<usize> {
        let (start, end) = self.group(key)?;
        let pos = start + self.entries[start..end].partition_point(|&(_, x, _)| x < t);
        let after = self.unused_from(pos, end);
        // The nearest unused time before `t`, and of its values the lowest unused one.
        let before = match pos.checked_sub(1).filter(|&p| p >= start) {
            Some(p) => self.unused_to(p, start).and_then(|e| {
                let time = self.entries[e].1;
                let first = start + self.entries[start..end].partition_point(|&(_, x, _)| x < time);
                self.unused_from(first, end)
            }),
            None => None,
        };
        let best = [before, after].into_iter().flatten().min_by_key(|&e| {
            let (_, time, value) = self.entries[e];
            (time.abs_diff(t), value)
        })?;
        Some(self.entries[best].2 as usize)
    }
    /// [`Nearest::nearest`] among the values `is_match` accepts, for keys that stand for
    /// others (hashes): the nearest of the key's values is the answer when it matches (it is
    /// then the nearest of those that match); otherwise, two keys having one hash, the key's
    /// unused values are searched one by one.
    fn nearest_matching(
        &mut self,
        key: u64,
        t: i64,
        is_match: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let found = self.nearest(key, t)?;
        if is_match(found) {
            return Some(found);
        }
        let (start, end) = self.group(key)?;
        (start..end)
            .filter(|&e| self.right[e] as usize == e)
            .map(|e| self.entries[e])
            .filter(|&(_, _, value)| is_match(value as usize))
            .min_by_key(|&(_, time, value)| (time.abs_diff(t), value))
            .map(|(_, _, value)| value as usize)
    }
    /// The entries of a key, if any.
    fn group(&self, key: u64) -> Option<(usize, usize)> {
        let key = spread(key);
        let top = (key >> self.shift) as usize;
        let (lo, hi) = (self.first[top] as usize, self.first[top + 1] as usize);
        let bucket = &self.entries[lo..hi];
        let start = lo + bucket.partition_point(|e| e.0 < key);
        let end = lo + bucket.partition_point(|e| e.0 <= key);
        (start < end).then_some((start, end))
    }
}

/// The tuple of a connection's ends, in either order, as the pairing's key: a hash of it (a
/// tuple is 40 bytes), every hit checked against the ends themselves.
fn tuple_key(a: Endpoint, b: Endpoint) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    (a.min(b), a.max(b)).hash(&mut h);
    h.finish()
}

/// Both initial sequence numbers as a key.
fn isn_key([client, server]: [u32; 2]) -> u64 {
    u64::from(client) << 32 | u64::from(server)
}

/// A key spread evenly over 64 bits, one for one (the finalizer of SplitMix64, a bijection:
/// distinct keys stay distinct), for [`Nearest`]'s directory of top bits.
fn spread(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How near in time two handshakes must be to pair their connections by timing alone.
pub(crate) const WINDOW: i64 = 1_000_000_000;

/// A connection of a and one of b, and how they were paired (indices as `u32`: a port
/// scan's million pairs are held through the comparison).
pub(crate) type Pair = (u32, u32, MatchedBy);

/// Pairs connections of a and b.
pub(crate) fn pair_connections(
    a: &ConnTable,
    b: &ConnTable,
    offsets: Option<&Offsets>,
) -> Vec<Pair> {
    let n = b.len();
    // Times on a's clock.
    let at_a = |c: &Conn| {
        c.first_ts
            .saturating_add(offsets.map_or(0, |o| o.at_b(c.first_ts).mid))
    };
    let mut tuples = Vec::with_capacity(n);
    let mut payloads = Vec::new();
    let mut isn_pairs = Vec::new();
    let mut by_random: FxHashMap<[u8; 32], usize> = FxHashMap::default();
    let mut buf = Gathered::default();
    for i in 0..n {
        let c = b.for_pairing(i, &mut buf);
        let value = small(i);
        tuples.push((tuple_key(c.client, c.server), at_a(&c), value));
        if let Some(r) = c.client_random() {
            by_random.insert(r, i);
        }
        if c.first_client_payload != 0 {
            payloads.push((c.first_client_payload, at_a(&c), value));
        }
        if let Some(both) = isns(&c) {
            isn_pairs.push((isn_key(both), at_a(&c), value));
        }
    }
    // The three indices are built at once (sorting an entry per connection of b is most of
    // the pairing's time).
    let ((mut by_tuple, mut by_payload), mut by_isn) = rayon::join(
        || rayon::join(|| Nearest::new(tuples, n), || Nearest::new(payloads, n)),
        || Nearest::new(isn_pairs, n),
    );
    let mut used = vec![false; n];
    let mut pairs = Vec::new();
    // The nearest unused candidate in time (the first in b's order on a tie).
    let mut isn_buf = Gathered::default();
    for ia in 0..a.len() {
        // The tuple first, from the ends alone (most connections pair by it, and a connection
        // held as its control packets is then not made).
        let ((client, server), first_ts) = (a.ends(ia), a.first_ts(ia));
        let found = by_tuple
            .nearest_matching(tuple_key(client, server), first_ts, |i| {
                b.has_ends(i, client, server)
            })
            .map(|i| (i, MatchedBy::Tuple))
            .or_else(|| {
                let c = a.lean(ia, &mut buf);
                c.client_random()
                    .and_then(|r| by_random.get(&r).copied())
                    .filter(|&i| !used[i])
                    .map(|i| (i, MatchedBy::TlsRandom))
                    .or_else(|| {
                        (c.first_client_payload != 0)
                            .then(|| by_payload.nearest(c.first_client_payload, first_ts))
                            .flatten()
                            .map(|i| (i, MatchedBy::Payload))
                    })
            })
            .or_else(|| {
                // Both initial sequence numbers (a NAT keeps them; 64 bits rarely repeat).
                isns_in(a, ia, &mut isn_buf)
                    .and_then(|both| by_isn.nearest(isn_key(both), first_ts))
                    .map(|i| (i, MatchedBy::Isn))
            });
        if let Some((ib, how)) = found {
            used[ib] = true;
            by_tuple.mark_used(ib);
            by_payload.mark_used(ib);
            by_isn.mark_used(ib);
            pairs.push((small(ia), small(ib), how));
        }
    }
    if offsets.is_some() {
        pair_by_timing(a, b, &at_a, &mut used, &mut pairs);
    }
    pairs
}

// Timing: a connection left over on each side, same server port, handshakes within 1 s
// (`WINDOW`) of each other once the clocks are aligned, and no other candidate. (b's left-over
// connections by port and time: a scan of all of b per connection of a was quadratic.)
fn pair_by_timing(
    a: &ConnTable,
    b: &ConnTable,
    at_a: &impl Fn(&Conn) -> i64,
    used: &mut [bool],
    pairs: &mut Vec<Pair>,
) {
    let mut paired = vec![false; a.len()];
    for p in pairs.iter() {
        paired[p.0 as usize] = true;
    }
    let mut by_port: FxHashMap<u16, Vec<(i64, usize)>> = FxHashMap::default();
    for (i, c) in (0..b.len()).filter(|&i| !used[i]).map(|i| (i, b.conn(i))) {
        by_port
            .entry(c.server.port)
            .or_default()
            .push((at_a(&c), i));
    }
    for list in by_port.values_mut() {
        list.sort_unstable();
    }
    for (ia, c) in (0..a.len())
        .filter(|&ia| !paired[ia])
        .map(|ia| (ia, a.conn(ia)))
    {
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
            pairs.push((small(ia), small(ib), MatchedBy::Timing));
        }
    }
}

/// Whether b is nearer the client: at the client's point the SYN/ACK is answered at once
/// (SYN/ACK → ACK is a small part of the handshake), at the server's point the SYN is.
pub(crate) fn b_is_client_side(a: &ConnTable, b: &ConnTable, pairs: &[Pair]) -> bool {
    // Each pair's vote: 1 for b, -1 for a. (On every core: a connection held as its one
    // packet is made for its vote.)
    let vote = |(buf_a, buf_b): &mut (Gathered, Gathered), &(ia, ib, _): &Pair| {
        let (ca, cb) = (a.lean(ia as usize, buf_a), b.lean(ib as usize, buf_b));
        let share = |c: &Conn| Some(c.towards_client()? as f64 / c.rtt()?.max(1) as f64);
        if let (Some(sa), Some(sb)) = (share(ca), share(cb)) {
            if sb < sa {
                1
            } else if sa < sb {
                -1
            } else {
                0
            }
        } else if let (Some(ha), Some(hb)) = (ca.syn, cb.syn) {
            // No complete handshake: the client's SYN crossed fewer routers at its own point.
            i64::from(hops(hb.ttl) < hops(ha.ttl)) - i64::from(hops(ha.ttl) < hops(hb.ttl))
        } else {
            0
        }
    };
    let votes: i64 = pairs.par_iter().map_init(Default::default, vote).sum();
    votes > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::numbers;

    #[test]
    fn the_nearest_unused_value_is_the_one_a_scan_finds_also_under_colliding_keys() {
        let mut next = numbers(11);
        for _ in 0..200 {
            let values = 1 + next(60) as usize;
            // Few keys and few distinct times: shared keys and tied times are the point. Some
            // values are under no key (a connection without payload or ISNs).
            let mut items: Vec<(u64, i64, u32)> = Vec::new();
            for v in 0..values as u32 {
                if next(5) != 0 {
                    items.push((next(6), next(20) as i64 * 10, v));
                }
            }
            let mut index = Nearest::new(items.clone(), values);
            // The same under keys that stand for two each (hashes that collide): answered
            // through `nearest_matching`, checked against each value's own keys.
            let coarse = |k: u64| k / 2;
            let coarse_items = items.iter().map(|&(k, t, v)| (coarse(k), t, v)).collect();
            let mut by_coarse = Nearest::new(coarse_items, values);
            let mut used = vec![false; values];
            for _ in 0..values {
                let (key, t) = (next(6), next(220) as i64 - 10);
                let scan = items
                    .iter()
                    .filter(|&&(k, _, v)| k == key && !used[v as usize])
                    .min_by_key(|&&(_, time, v)| (time.abs_diff(t), v))
                    .map(|&(_, _, v)| v as usize);
                assert_eq!(
                    index.nearest(key, t),
                    scan,
                    "key {key} at {t}: {items:?} {used:?}"
                );
                let under_key =
                    |v: usize| items.iter().any(|&(k, _, x)| k == key && x as usize == v);
                assert_eq!(
                    by_coarse.nearest_matching(coarse(key), t, under_key),
                    scan,
                    "key {key} (coarse {}) at {t}: {items:?} {used:?}",
                    coarse(key)
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
                    by_coarse.mark_used(v);
                }
            }
        }
    }
}
