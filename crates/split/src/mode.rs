//! What decides which output a packet goes to.

use std::fmt;
use std::str::FromStr;

/// How packets are grouped into outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// One output per TCP/UDP stream (Wireshark's `tcp.stream`/`udp.stream`), per address pair
    /// for other IP protocols, one file for non-IP frames.
    Stream,
    /// One output per IP address; a packet goes to the outputs of both its hosts.
    Host,
    /// One output per pair of IP addresses.
    HostPair,
    /// One output per (transport protocol, server port).
    Port,
    /// Consecutive chunks of this many packets.
    Count(u64),
    /// Consecutive chunks of at most this many bytes of output file.
    Size(u64),
    /// Consecutive intervals of this many nanoseconds, counted from the first packet.
    Time(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModeError(String);

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(s: &str) -> Result<Mode, ModeError> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let need = |what: &str| {
            value.ok_or_else(|| ModeError(format!("--by {name} needs a value: {name}={what}")))
        };
        let mode = match name {
            "stream" | "session" | "flow" => Mode::Stream,
            "host" => Mode::Host,
            "host-pair" => Mode::HostPair,
            "port" => Mode::Port,
            "count" => Mode::Count(parse_positive(need("N")?, "count")?),
            "size" => Mode::Size(parse_size(need("BYTES")?)?),
            "time" => Mode::Time(parse_duration(need("DURATION")?)?),
            _ => {
                return Err(ModeError(format!(
                    "unknown split mode {name:?}; use stream, host, host-pair, port, count=N, size=BYTES or time=DURATION"
                )));
            }
        };
        if value.is_some()
            && matches!(
                mode,
                Mode::Stream | Mode::Host | Mode::HostPair | Mode::Port
            )
        {
            return Err(ModeError(format!("--by {name} takes no value")));
        }
        Ok(mode)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Stream => f.write_str("stream"),
            Mode::Host => f.write_str("host"),
            Mode::HostPair => f.write_str("host-pair"),
            Mode::Port => f.write_str("port"),
            Mode::Count(n) => write!(f, "count={n}"),
            Mode::Size(n) => write!(f, "size={n}"),
            Mode::Time(ns) => write!(f, "time={}s", *ns as f64 / 1e9),
        }
    }
}

fn parse_positive(v: &str, what: &str) -> Result<u64, ModeError> {
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ModeError(format!(
            "{what} must be a whole number above 0, not {v:?}"
        ))),
    }
}

/// `1000`, `64K`, `100M`, `2G` (powers of 1024; `KB`/`MB`/`GB`/`KiB`… accepted too).
pub fn parse_size(v: &str) -> Result<u64, ModeError> {
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => {
            return Err(ModeError(format!(
                "size {v:?}: unknown unit {unit:?} (use K, M, G or T)"
            )));
        }
    };
    let n = parse_positive(num, "size")?;
    n.checked_mul(mult)
        .ok_or_else(|| ModeError(format!("size {v:?} is too large")))
}

/// `500ms`, `30s`, `5m`, `2h`, `1d`, or plain seconds (`1.5`).
pub fn parse_duration(v: &str) -> Result<i64, ModeError> {
    let t = v.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let secs: f64 = num.parse().map_err(|_| {
        ModeError(format!(
            "duration {v:?}: expected a number and a unit, e.g. 30s"
        ))
    })?;
    let scale = match unit {
        "" | "s" => 1e9,
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        _ => {
            return Err(ModeError(format!(
                "duration {v:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            )));
        }
    };
    let ns = secs * scale;
    if !(1.0..9.2e18).contains(&ns) {
        return Err(ModeError(format!("duration {v:?} must be above zero")));
    }
    Ok(ns as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode_and_rejects_nonsense() {
        assert_eq!("stream".parse(), Ok(Mode::Stream));
        assert_eq!("host-pair".parse(), Ok(Mode::HostPair));
        assert_eq!("count=1000".parse(), Ok(Mode::Count(1000)));
        assert_eq!("size=100M".parse(), Ok(Mode::Size(100 << 20)));
        assert_eq!("size=2GiB".parse(), Ok(Mode::Size(2 << 30)));
        assert_eq!("time=30s".parse(), Ok(Mode::Time(30_000_000_000)));
        assert_eq!("time=5m".parse(), Ok(Mode::Time(300_000_000_000)));
        assert_eq!("time=1.5".parse(), Ok(Mode::Time(1_500_000_000)));
        assert_eq!("time=250ms".parse(), Ok(Mode::Time(250_000_000)));
        for bad in [
            "count=0",
            "count",
            "size=10X",
            "time=-1s",
            "time=0",
            "bogus",
            "stream=1",
            "count=abc",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
    }
}
