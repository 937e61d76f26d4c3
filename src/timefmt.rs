use time::OffsetDateTime;
use time::macros::format_description;
use tracekit_capture::Timestamp;

/// RFC 3339 in UTC with all nine digits of the fraction, e.g. `2014-12-09T17:16:09.999999000Z`.
pub fn rfc3339(ts: Timestamp) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.0))
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| ts.to_string())
}

/// A duration in seconds with nanoseconds, e.g. `1.000001000`.
pub fn seconds(ns: i64) -> String {
    Timestamp(ns).to_string()
}
