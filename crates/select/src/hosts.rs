//! `--hosts-file`: a set of IPv4 and IPv6 addresses and prefixes, matched in time independent of
//! its size. Prefixes become merged, sorted intervals; IPv4 lookups start from a table of the
//! first interval of each /16, so a million entries cost a few comparisons, not a million (and
//! not libpcap's quadratic compilation of `host a or host b or …`).

use std::net::IpAddr;

/// A parsed hosts file.
#[derive(Debug, Clone, Default)]
pub struct HostSet {
    v4: Intervals<u32>,
    /// `bucket[h]` = the number of IPv4 intervals starting before `h << 16` (65,537 entries).
    bucket: Vec<u32>,
    v6: Intervals<u128>,
    /// Entries read (lines with an address or prefix).
    pub entries: usize,
}

#[derive(Debug, Clone, Default)]
struct Intervals<T> {
    start: Vec<T>,
    end: Vec<T>,
}

impl<T: Copy + Ord> Intervals<T> {
    fn from(mut v: Vec<(T, T)>) -> Self {
        v.sort_unstable();
        let mut out = Intervals {
            start: Vec::with_capacity(v.len()),
            end: Vec::with_capacity(v.len()),
        };
        for (s, e) in v {
            if let Some(last) = out.end.last_mut()
                && s <= *last
            {
                *last = (*last).max(e);
                continue;
            }
            out.start.push(s);
            out.end.push(e);
        }
        out
    }

    /// Whether `a` lies in an interval among `lo..hi`.
    #[inline]
    fn contains_in(&self, a: T, lo: usize, hi: usize) -> bool {
        let starts = &self.start[lo..hi];
        let n = starts.partition_point(|&s| s <= a);
        n > 0 && a <= self.end[lo + n - 1]
    }
}

/// A line that is not an address or prefix: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl HostSet {
    /// Every address the set holds, when there are at most `max` (an index looks each up);
    /// `None` for more (a wide prefix).
    #[must_use]
    pub fn addresses(&self, max: usize) -> Option<Vec<std::net::IpAddr>> {
        let count = |i: &Intervals<u128>| {
            i.start
                .iter()
                .zip(&i.end)
                .try_fold(0u128, |n, (s, e)| n.checked_add((e - s).checked_add(1)?))
        };
        let v4 = Intervals {
            start: self.v4.start.iter().map(|&a| u128::from(a)).collect(),
            end: self.v4.end.iter().map(|&a| u128::from(a)).collect(),
        };
        if count(&v4)?.checked_add(count(&self.v6)?)? > max as u128 {
            return None;
        }
        let mut out = Vec::new();
        for (s, e) in v4.start.iter().zip(&v4.end) {
            out.extend((*s..=*e).map(|a| std::net::IpAddr::V4((a as u32).into())));
        }
        for (s, e) in self.v6.start.iter().zip(&self.v6.end) {
            out.extend((*s..=*e).map(|a| std::net::IpAddr::V6(a.into())));
        }
        Some(out)
    }

    /// Parses one address or CIDR prefix a line; `#` starts a comment; blank lines are skipped.
    pub fn parse(text: &str) -> Result<HostSet, HostsError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let mut entries = 0;
        for (n, raw) in text.lines().enumerate() {
            let body = raw.split('#').next().unwrap_or("");
            let entry = body.trim();
            if entry.is_empty() {
                continue;
            }
            let column = body.find(entry).unwrap_or(0) + 1;
            let err = |message: String| HostsError {
                line: n + 1,
                column,
                message,
            };
            let (addr, len) = match entry.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| {
                err(format!(
                    "{entry:?} is not an IPv4 or IPv6 address or prefix"
                ))
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len: u32 = match len {
                None => max,
                Some(l) => match l.parse::<u32>() {
                    Ok(l) if l <= max => l,
                    _ => return Err(err(format!("{entry:?}: prefix length must be 0 to {max}"))),
                },
            };
            match addr {
                IpAddr::V4(a) => {
                    let a = u32::from(a);
                    let host = if len == 0 {
                        u32::MAX
                    } else {
                        (1u32 << (32 - len)).wrapping_sub(1)
                    };
                    let host = if len == 32 { 0 } else { host };
                    if a & host != 0 {
                        return Err(err(format!(
                            "{entry:?} has bits set past the prefix length"
                        )));
                    }
                    v4.push((a, a | host));
                }
                IpAddr::V6(a) => {
                    let a = u128::from(a);
                    let host = if len == 128 { 0 } else { u128::MAX >> len };
                    if a & host != 0 {
                        return Err(err(format!(
                            "{entry:?} has bits set past the prefix length"
                        )));
                    }
                    v6.push((a, a | host));
                }
            }
            entries += 1;
        }
        let v4 = Intervals::from(v4);
        let mut bucket = vec![0u32; 65_537];
        let mut i = 0usize;
        for (h, slot) in bucket.iter_mut().enumerate() {
            let at = (h as u64) << 16;
            while i < v4.start.len() && u64::from(v4.start[i]) < at {
                i += 1;
            }
            *slot = i as u32;
        }
        Ok(HostSet {
            v4,
            bucket,
            v6: Intervals::from(v6),
            entries,
        })
    }

    #[inline]
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let h = (a >> 16) as usize;
                // The interval holding `a` starts in its /16 or is the last one before it.
                let lo = (self.bucket[h] as usize).saturating_sub(1);
                let hi = self.bucket[h + 1] as usize;
                self.v4.contains_in(a, lo, hi)
            }
            IpAddr::V6(a) => self.v6.contains_in(u128::from(a), 0, self.v6.start.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    #[test]
    fn a_small_set_lists_its_addresses_and_a_wide_one_does_not() {
        let set = HostSet::parse("192.0.2.1\n192.0.2.0/31\n2001:db8::/127\n").unwrap();
        let all: Vec<String> = set
            .addresses(10)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(all, ["192.0.2.0", "192.0.2.1", "2001:db8::", "2001:db8::1"]);
        assert!(set.addresses(3).is_none());
        assert!(
            HostSet::parse("10.0.0.0/8\n")
                .unwrap()
                .addresses(4096)
                .is_none()
        );
        assert!(HostSet::parse("::/0\n").unwrap().addresses(4096).is_none());
    }

    fn set(text: &str) -> HostSet {
        HostSet::parse(text).unwrap()
    }

    #[test]
    fn matches_addresses_and_prefixes_of_both_families() {
        let s = set(
            "# lab\n192.0.2.7\n198.51.100.0/24  # a net\n\n2001:db8::/32\n10.0.0.0/8\n0.0.0.0/32\n",
        );
        for yes in [
            "192.0.2.7",
            "198.51.100.0",
            "198.51.100.255",
            "2001:db8::1",
            "10.255.255.255",
            "0.0.0.0",
        ] {
            assert!(s.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in [
            "192.0.2.6",
            "192.0.2.8",
            "198.51.101.0",
            "2001:db9::",
            "11.0.0.0",
            "0.0.0.1",
        ] {
            assert!(!s.contains(no.parse().unwrap()), "{no}");
        }
        assert_eq!(s.entries, 5);
    }

    #[test]
    fn a_prefix_reaching_across_many_slash16s_is_found_from_each() {
        let s = set("0.0.0.0/0\n");
        assert!(s.contains("255.255.255.255".parse().unwrap()));
        assert!(s.contains("1.2.3.4".parse().unwrap()));
        let s = set("::/0\n");
        assert!(s.contains("::1".parse().unwrap()));
        assert!(!s.contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn bad_lines_say_where() {
        let e = HostSet::parse("192.0.2.1\n  192.0.2.300\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(HostSet::parse("192.0.2.1/33").is_err());
        assert!(HostSet::parse("192.0.2.1/24").is_err());
        assert!(HostSet::parse("2001:db8::1/x").is_err());
    }

    #[test]
    fn agrees_with_a_linear_scan_on_random_prefixes() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut text = String::new();
        let mut nets = Vec::new();
        for _ in 0..2000 {
            let len = (rnd() % 33) as u32;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let a = rnd() as u32 & mask;
            nets.push((a, mask));
            writeln!(text, "{}/{len}", std::net::Ipv4Addr::from(a)).unwrap();
        }
        let s = set(&text);
        for _ in 0..20_000 {
            let a = rnd() as u32;
            let want = nets.iter().any(|&(n, m)| a & m == n);
            assert_eq!(s.contains(IpAddr::from(std::net::Ipv4Addr::from(a))), want);
        }
    }
}
