use tracekit_capture::Timestamp;

/// RFC 3339 in UTC with all nine digits of the fraction, e.g. `2014-12-09T17:16:09.999999000Z`.
pub fn rfc3339(ts: Timestamp) -> String {
    ts.rfc3339()
}

/// A duration in seconds with nanoseconds, e.g. `1.000001000`.
pub fn seconds(ns: i64) -> String {
    Timestamp(ns).to_string()
}

/// A signed duration in seconds with nine decimals, e.g. `+1.250000000` or `-0.000381000`.
pub fn signed_seconds(ns: i64) -> String {
    let sign = if ns < 0 { '-' } else { '+' };
    let a = ns.unsigned_abs();
    format!("{sign}{}.{:09}", a / 1_000_000_000, a % 1_000_000_000)
}

/// Parses a signed duration exactly: `-1.25s`, `+250ms`, `3us`, `-0.5` (seconds when no unit),
/// units ns, us/µs, ms, s, m, h, d (the selection's `+TIME` parser, with a sign).
pub fn parse_signed_duration(v: &str) -> Result<i64, String> {
    let t = v.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let ns = tracekit_select::window::parse_duration(body).map_err(|e| format!("{v:?}: {e}"))?;
    Ok(if negative { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_durations_parse_exactly() {
        assert_eq!(parse_signed_duration("-1.25s"), Ok(-1_250_000_000));
        assert_eq!(parse_signed_duration("+250ms"), Ok(250_000_000));
        assert_eq!(parse_signed_duration("3us"), Ok(3_000));
        assert_eq!(parse_signed_duration("0.1"), Ok(100_000_000));
        assert_eq!(parse_signed_duration("1.000000001s"), Ok(1_000_000_001));
        assert_eq!(parse_signed_duration("2m"), Ok(120_000_000_000));
        assert!(parse_signed_duration("1.5ns").is_err());
        assert!(parse_signed_duration("fast").is_err());
        assert!(parse_signed_duration("1x").is_err());
        assert!(parse_signed_duration("").is_err());
        assert_eq!(signed_seconds(-381_000), "-0.000381000");
        assert_eq!(signed_seconds(1_250_000_000), "+1.250000000");
    }
}
