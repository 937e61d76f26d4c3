//! Pairing one trace's connections with the other's: the same tuple, else the same TLS client
//! random, first payload or ISNs, else the nearest in time (a NAT rewrites tuples); and which
//! trace is the client side.

use std::hash::{Hash, Hasher};

use rustc_hash::{FxBuildHasher, FxHashMap};
use tracekit_wire::Endpoint;

use crate::compare::{Offsets, isns_in};
use crate::model::MatchedBy;
use crate::trace::{Conn, ConnTable, hops};

/// Values (connections of b) under keys, each at a time, for finding the unused value of a
/// key nearest to a time: the entries sorted by key, then time and value, with skip pointers
/// past used entries (union-find style, paths halved). A key shared by tens of thousands of
/// connections (one 4-tuple reused, one request repeated) then costs a binary search per
/// lookup instead of a scan of all of them (20,000 connections on one tuple took 4.8 s).
/// Positions and values are `u32` (connections stop below 2^32): for a port scan's million
/// connections these indices took about 340 MB with `usize` and the tuples as keys.
pub(crate) struct Nearest<K> {
    groups: FxHashMap<K, (u32, u32)>,
    /// (time, value), by key, then time and value.
    entries: Vec<(i64, u32)>,
    /// `right[e]`: an entry at or after `e` with no unused entry between (`e` itself when
    /// unused); `entries.len()` is the end.
    right: Vec<u32>,
    /// The same leftwards, shifted by one: `left[e + 1]` for entry `e`, 0 for none.
    left: Vec<u32>,
    /// Each value's entries (a value may be under two keys; `u32::MAX` for none).
    at: Vec<[u32; 2]>,
}

/// An index as `u32` (every index here is of a connection or an entry: below 2^32).
fn small(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<K: std::hash::Hash + Eq + Ord + Copy> Nearest<K> {
    /// `items`: (key, time, value) with values below `values`.
    fn new(mut items: Vec<(K, i64, u32)>, values: usize) -> Self {
        items.sort_unstable();
        let mut groups = FxHashMap::with_capacity_and_hasher(items.len(), FxBuildHasher);
        let mut at = vec![[u32::MAX; 2]; values];
        let mut entries = Vec::with_capacity(items.len());
        let mut start = 0;
        for (e, &(key, time, value)) in items.iter().enumerate() {
            entries.push((time, value));
            let slot = &mut at[value as usize];
            slot[usize::from(slot[0] != u32::MAX)] = small(e);
            if items.get(e + 1).is_none_or(|next| next.0 != key) {
                groups.insert(key, (small(start), small(e + 1)));
                start = e + 1;
            }
        }
        let n = entries.len();
        Nearest {
            groups,
            entries,
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
        for e in self.at[value] {
            if e != u32::MAX {
                self.right[e as usize] = e + 1;
                self.left[e as usize + 1] = e;
            }
        }
    }
    /// The key's unused value whose time is nearest `t` (the lowest value on a tie).
    fn nearest(&mut self, key: &K, t: i64) -> Option<usize> {
        let (start, end) = self.group(key)?;
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
        Some(self.entries[best].1 as usize)
    }
    /// [`Nearest::nearest`] among the values `is_match` accepts, for keys that stand for
    /// others (hashes): the nearest of the key's values is the answer when it matches (it is
    /// then the nearest of those that match); otherwise, two keys having one hash, the key's
    /// unused values are searched one by one.
    fn nearest_matching(
        &mut self,
        key: &K,
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
            .filter(|&(_, value)| is_match(value as usize))
            .min_by_key(|&(time, value)| (time.abs_diff(t), value))
            .map(|(_, value)| value as usize)
    }
    fn group(&self, key: &K) -> Option<(usize, usize)> {
        let &(start, end) = self.groups.get(key)?;
        Some((start as usize, end as usize))
    }
}

/// A tuple of ends as the pairing's key: a hash of it (a tuple is 40 bytes, and a port scan
/// has two keys a connection), every hit checked against the tuple itself.
fn tuple_key(a: Endpoint, b: Endpoint) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    (a, b).hash(&mut h);
    h.finish()
}

/// How near in time two handshakes must be to pair their connections by timing alone.
pub(crate) const WINDOW: i64 = 1_000_000_000;

/// Pairs connections of a and b: (index in a, index in b, how).
pub(crate) fn pair_connections(
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
        let v = small(i);
        tuples.push((tuple_key(c.client, c.server), at_a(c), v));
        tuples.push((tuple_key(c.server, c.client), at_a(c), v));
        if let Some(r) = c.client_random() {
            by_random.insert(r, i);
        }
        if c.first_client_payload != 0 {
            payloads.push((c.first_client_payload, at_a(c), v));
        }
        if let Some(both) = isns_in(b, i, &mut buf) {
            isn_pairs.push((both, at_a(c), v));
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
            .nearest_matching(&tuple_key(c.client, c.server), c.first_ts, |i| {
                b.conns[i].has_ends(c.client, c.server)
            })
            .map(|i| (i, MatchedBy::Tuple))
            .or_else(|| {
                c.client_random()
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
pub(crate) fn b_is_client_side(
    a: &ConnTable,
    b: &ConnTable,
    pairs: &[(usize, usize, MatchedBy)],
) -> bool {
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
            // values are under two keys, as a connection is under both orders of its ends.
            let mut items: Vec<(u64, i64, u32)> = Vec::new();
            for v in 0..values as u32 {
                let time = next(20) as i64 * 10;
                items.push((next(4), time, v));
                if next(2) == 0 {
                    items.push((4 + next(2), time, v));
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
                    index.nearest(&key, t),
                    scan,
                    "key {key} at {t}: {items:?} {used:?}"
                );
                let under_key =
                    |v: usize| items.iter().any(|&(k, _, x)| k == key && x as usize == v);
                assert_eq!(
                    by_coarse.nearest_matching(&coarse(key), t, under_key),
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
