//! The time window `[after, before)`: RFC 3339 times, epoch seconds, or offsets from the first
//! packet.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One end of the window, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// Nanoseconds since the epoch.
    Absolute(i64),
    /// Nanoseconds after the first packet of the inputs read as one capture.
    FromFirst(i64),
}

impl TimeSpec {
    /// Parses `2024-05-01T14:05:00.123456789Z` (any RFC 3339 offset), `1714572300.5` (epoch
    /// seconds), or `+90s` / `+2m` / `+1.5h` / `+250ms` (after the first packet).
    pub fn parse(s: &str) -> Result<TimeSpec, String> {
        let t = s.trim();
        if let Some(rel) = t.strip_prefix('+') {
            return parse_duration(rel)
                .map(TimeSpec::FromFirst)
                .map_err(|e| format!("{s:?}: {e}"));
        }
        if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !t.is_empty() {
            return parse_decimal(t, 1_000_000_000)
                .map(TimeSpec::Absolute)
                .map_err(|e| format!("{s:?}: {e}"));
        }
        match OffsetDateTime::parse(t, &Rfc3339) {
            Ok(dt) => i64::try_from(dt.unix_timestamp_nanos())
                .map(TimeSpec::Absolute)
                .map_err(|_| format!("{s:?}: out of range")),
            Err(e) => Err(format!(
                "{s:?}: not a time ({e}); expected RFC 3339 such as 2024-05-01T14:05:00Z or 2024-05-01T16:05:00.5+02:00, epoch seconds such as 1714572300.5, or an offset from the first packet such as +90s"
            )),
        }
    }

    /// Nanoseconds since the epoch, given the first packet's time.
    #[must_use]
    pub fn resolve(self, first: i64) -> i64 {
        match self {
            TimeSpec::Absolute(t) => t,
            TimeSpec::FromFirst(d) => first.saturating_add(d),
        }
    }
}

/// Parses a non-negative duration exactly: `90s`, `2m`, `1.5h`, `250ms`, `10us`, `5ns`, `3`
/// (seconds).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale: i64 = match unit.trim() {
        "" | "s" => 1_000_000_000,
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        other => return Err(format!("unknown unit {other:?} (ns, us, ms, s, m, h, d)")),
    };
    parse_decimal(num, scale)
}

/// `digits[.digits]` times `scale`, exactly, refusing what would round.
fn parse_decimal(num: &str, scale: i64) -> Result<i64, String> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err("expected a number".into());
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| "too large".to_string())?
    };
    let mut ns = whole.checked_mul(scale).ok_or("too large")?;
    let mut unit = scale;
    for d in frac.bytes() {
        if unit % 10 != 0 {
            return Err("finer than a nanosecond".into());
        }
        unit /= 10;
        ns = ns
            .checked_add(i64::from(d - b'0') * unit)
            .ok_or("too large")?;
    }
    Ok(ns)
}

/// The half-open window `[after, before)` once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub after: Option<i64>,
    pub before: Option<i64>,
}

impl Window {
    #[must_use]
    pub fn contains(&self, ts: i64) -> bool {
        self.after.is_none_or(|a| ts >= a) && self.before.is_none_or(|b| ts < b)
    }

    /// Whether a file whose records lie in `[lo, hi]` can hold a record of the window.
    #[must_use]
    pub fn overlaps(&self, lo: i64, hi: i64) -> bool {
        self.after.is_none_or(|a| hi >= a) && self.before.is_none_or(|b| lo < b)
    }

    #[must_use]
    pub fn is_open(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_exactly() {
        assert_eq!(
            TimeSpec::parse("2024-05-01T14:05:00Z"),
            Ok(TimeSpec::Absolute(1_714_572_300_000_000_000))
        );
        assert_eq!(
            TimeSpec::parse("2024-05-01T16:05:00.000000001+02:00"),
            Ok(TimeSpec::Absolute(1_714_572_300_000_000_001))
        );
        assert_eq!(
            TimeSpec::parse("1714572300.25"),
            Ok(TimeSpec::Absolute(1_714_572_300_250_000_000))
        );
        assert_eq!(
            TimeSpec::parse("+90s"),
            Ok(TimeSpec::FromFirst(90_000_000_000))
        );
        assert_eq!(
            TimeSpec::parse("+2m"),
            Ok(TimeSpec::FromFirst(120_000_000_000))
        );
        assert_eq!(
            TimeSpec::parse("+1.5ms"),
            Ok(TimeSpec::FromFirst(1_500_000))
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2024-05-01 14:05",
            "2024-13-01T00:00:00Z",
            "+5x",
            "+.",
            "1.0000000001",
            "+99999999999h",
        ] {
            assert!(TimeSpec::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_window_is_half_open() {
        let w = Window {
            after: Some(10),
            before: Some(20),
        };
        assert!(!w.contains(9) && w.contains(10) && w.contains(19) && !w.contains(20));
        assert!(
            w.overlaps(0, 10) && !w.overlaps(0, 9) && !w.overlaps(20, 30) && w.overlaps(19, 30)
        );
    }
}
