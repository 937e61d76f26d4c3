use std::fmt;

/// Nanoseconds since the Unix epoch. Readers apply resolution and offset, so merge and analyze
/// compare plain integers. `i64` reaches the year 2262, past every 32-bit pcap timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    #[must_use]
    pub fn secs(self) -> i64 {
        self.0.div_euclid(Self::NANOS_PER_SEC)
    }

    #[must_use]
    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(Self::NANOS_PER_SEC) as u32
    }

    /// RFC 3339 in UTC with all nine digits of the fraction, e.g.
    /// `2014-12-09T17:16:09.999999000Z` (the `seconds.nanoseconds` form past year 9999).
    #[must_use]
    pub fn rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .ok()
            .and_then(|t| t.format(RFC3339).ok())
            .unwrap_or_else(|| self.to_string())
    }

    /// The time [`Timestamp::rfc3339`] printed; `None` for anything else.
    #[must_use]
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t = time::PrimitiveDateTime::parse(s, RFC3339)
            .ok()?
            .assume_utc();
        i64::try_from(t.unix_timestamp_nanos()).ok().map(Timestamp)
    }
}

/// RFC 3339 in UTC with all nine digits of the fraction.
const RFC3339: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
);

impl fmt::Display for Timestamp {
    /// `seconds.nanoseconds` since the epoch, as tshark's `frame.time_epoch` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs(), self.subsec_nanos())
    }
}

/// How many timestamp units make one second (pcapng `if_tsresol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResolution {
    /// 10^-n seconds.
    Decimal(u8),
    /// 2^-n seconds.
    Binary(u8),
}

impl TsResolution {
    pub const MICRO: Self = Self::Decimal(6);
    pub const NANO: Self = Self::Decimal(9);

    /// Decodes the `if_tsresol` option byte: most significant bit set means a power of two.
    #[must_use]
    pub fn from_option(byte: u8) -> Self {
        if byte & 0x80 == 0 {
            Self::Decimal(byte)
        } else {
            Self::Binary(byte & 0x7f)
        }
    }

    #[must_use]
    pub fn to_option(self) -> u8 {
        match self {
            Self::Decimal(n) => n,
            Self::Binary(n) => n | 0x80,
        }
    }

    /// Units per second, when it fits in a `u64` (decimal up to 10^19, binary up to 2^63).
    #[must_use]
    pub fn units_per_sec(self) -> Option<u64> {
        match self {
            Self::Decimal(n) => 10u64.checked_pow(u32::from(n)),
            Self::Binary(n) => 1u64.checked_shl(u32::from(n)),
        }
    }

    /// Converts a count of units to nanoseconds; `None` when it leaves the `i64` range.
    #[must_use]
    pub fn to_nanos(self, units: u64) -> Option<i128> {
        let units = i128::from(units);
        let ns = match self {
            Self::Decimal(n) if n <= 9 => units * 10i128.pow(9 - u32::from(n)),
            Self::Decimal(n) => units / 10i128.checked_pow(u32::from(n) - 9)?,
            Self::Binary(n) => (units * 1_000_000_000) >> n.min(127),
        };
        Some(ns)
    }

    /// Converts nanoseconds to units, rounding toward zero; the second value says whether the
    /// conversion was exact.
    #[must_use]
    pub fn from_nanos(self, ns: u64) -> (u64, bool) {
        let ns = u128::from(ns);
        let (units, exact) = match self {
            Self::Decimal(n) if n <= 9 => {
                let div = 10u128.pow(9 - u32::from(n));
                (ns / div, ns % div == 0)
            }
            Self::Decimal(n) => (
                ns.saturating_mul(10u128.saturating_pow(u32::from(n) - 9)),
                true,
            ),
            Self::Binary(n) => {
                let scaled = ns << n.min(64);
                (scaled / 1_000_000_000, scaled % 1_000_000_000 == 0)
            }
        };
        (u64::try_from(units).unwrap_or(u64::MAX), exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_binary_resolutions_convert_both_ways() {
        assert_eq!(TsResolution::MICRO.to_nanos(1_500_000), Some(1_500_000_000));
        assert_eq!(TsResolution::NANO.to_nanos(7), Some(7));
        assert_eq!(TsResolution::Decimal(12).to_nanos(5_000), Some(5));
        assert_eq!(TsResolution::Binary(10).to_nanos(1024), Some(1_000_000_000));
        assert_eq!(TsResolution::Binary(1).to_nanos(3), Some(1_500_000_000));
        assert_eq!(
            TsResolution::MICRO.from_nanos(1_500_000_123),
            (1_500_000, false)
        );
        assert_eq!(TsResolution::Binary(1).from_nanos(1_500_000_000), (3, true));
        assert_eq!(TsResolution::from_option(0x8a), TsResolution::Binary(10));
        assert_eq!(TsResolution::Binary(10).to_option(), 0x8a);
    }

    #[test]
    fn timestamp_display_is_epoch_seconds_with_nanoseconds() {
        assert_eq!(Timestamp(1_500_000_001).to_string(), "1.500000001");
        assert_eq!(Timestamp(-1).to_string(), "-1.999999999");
    }
}
