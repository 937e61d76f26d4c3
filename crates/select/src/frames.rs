//! `--frames`: frame numbers as Wireshark counts them (from 1), in ranges `1-100,250,300-`.

/// Sorted, merged, inclusive ranges; `u64::MAX` as the end of an open range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames {
    ranges: Vec<(u64, u64)>,
}

impl Frames {
    /// Parses `N`, `N-M` and `N-` items separated by commas; the error gives the 1-based
    /// character position of the bad item.
    pub fn parse(s: &str) -> Result<Frames, (usize, String)> {
        let mut ranges = Vec::new();
        let mut pos = 0;
        for item in s.split(',') {
            let at = pos + 1 + (item.len() - item.trim_start().len());
            pos += item.len() + 1;
            let t = item.trim();
            let num = |v: &str| -> Result<u64, (usize, String)> {
                match v.trim().parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err((
                        at,
                        format!("{t:?}: frame numbers start at 1 (N, N-M or N-)"),
                    )),
                }
            };
            let (lo, hi) = match t.split_once('-') {
                Some((a, "")) => (num(a)?, u64::MAX),
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(t)?;
                    (n, n)
                }
            };
            if hi < lo {
                return Err((at, format!("{t:?}: the range ends before it starts")));
            }
            ranges.push((lo, hi));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ok(Frames { ranges: merged })
    }

    #[must_use]
    pub fn contains(&self, frame: u64) -> bool {
        let n = self.ranges.partition_point(|&(lo, _)| lo <= frame);
        n > 0 && frame <= self.ranges[n - 1].1
    }

    /// The last frame selected (`u64::MAX` when a range is open): nothing after it can match.
    #[must_use]
    pub fn last(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_like_wireshark() {
        let f = Frames::parse("300-, 1-100,250,99-120").unwrap();
        assert!(f.contains(1) && f.contains(120) && !f.contains(121) && f.contains(250));
        assert!(!f.contains(299) && f.contains(300) && f.contains(u64::MAX - 1));
        assert_eq!(f.last(), u64::MAX);
        assert_eq!(Frames::parse("5").unwrap().last(), 5);
    }

    #[test]
    fn bad_items_say_where() {
        assert_eq!(Frames::parse("1-3,x").unwrap_err().0, 5);
        assert_eq!(Frames::parse("1, 0").unwrap_err().0, 4);
        assert!(Frames::parse("9-3").is_err());
        assert!(Frames::parse("").is_err());
    }
}
