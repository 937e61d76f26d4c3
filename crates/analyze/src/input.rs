//! What an analysis is given: each side opened from the paths naming it (one capture, or a set
//! of files read as one), and the `--conn` filter on the pairs.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use tracekit_capture::inputs::{self, NothingOpened};
use tracekit_capture::{Capture, OpenError};
use tracekit_wire::Endpoint;

use crate::reading::{Reading, Side, Tables, display_name, read_pair};
use crate::trace::Conn;
use crate::{Analysis, Scope};

/// One side, opened: a capture, or a set (a directory searched for captures, or several
/// files).
#[derive(Debug)]
pub struct SideInput {
    /// What the report calls it: the file's name, `DIR/`, or `FIRST and N more`.
    pub name: String,
    pub captures: Vec<Capture>,
    pub set: bool,
    /// Files of a set that could not be read or opened, a line each (the set goes on
    /// without them).
    pub trouble: Vec<String>,
    /// Every capture file named or found, opened or not (none may be overwritten).
    pub files: Vec<PathBuf>,
}

/// Why a side could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    NothingOpened(#[from] NothingOpened),
    #[error("no capture given")]
    Empty,
}

impl SideInput {
    /// The side `paths` name: one file is one capture; a directory, or several paths, a set.
    ///
    /// # Errors
    /// The one capture could not be opened, or no file of the set could.
    pub fn open(paths: &[PathBuf]) -> Result<SideInput, SideError> {
        if let [one] = paths
            && !one.is_dir()
        {
            let capture = Capture::open(one)?;
            return Ok(SideInput {
                name: display_name(one),
                captures: vec![capture],
                set: false,
                trouble: Vec::new(),
                files: vec![one.clone()],
            });
        }
        let name = match paths {
            [dir] => format!("{}/", display_name(dir)),
            [first, ..] => format!("{} and {} more", display_name(first), paths.len() - 1),
            [] => return Err(SideError::Empty),
        };
        let opened = inputs::open(paths)?;
        Ok(SideInput {
            name,
            captures: opened.captures,
            set: true,
            trouble: opened.trouble,
            files: opened.files,
        })
    }

    /// The side as [`read_pair`] reads it.
    #[must_use]
    pub fn side(&self) -> Side<'_> {
        Side {
            name: &self.name,
            captures: &self.captures,
            set: self.set,
        }
    }

    /// The bytes its captures take where they are stored (for a progress bar).
    #[must_use]
    pub fn stored_len(&self) -> u64 {
        self.captures.iter().map(Capture::stored_len).sum()
    }
}

/// Reads both sides and compares them within `scope` (see [`read_pair`]); the problems met
/// include each side's files left out.
///
/// # Errors
/// A side could not be read (see [`read_pair`]).
pub fn analyze_sides(
    a: &SideInput,
    b: &SideInput,
    how: &Reading<'_>,
    scope: Scope<'_>,
) -> Result<(Analysis, Vec<String>, Tables), String> {
    let (analysis, mut problems, tables) = read_pair(&a.side(), &b.side(), how, scope)?;
    let mut trouble: Vec<String> = a.trouble.iter().chain(&b.trouble).cloned().collect();
    trouble.append(&mut problems);
    Ok((analysis, trouble, tables))
}

/// `--conn`: the pairs with an end (at either point) at an address, a port, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFilter {
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
}

impl FromStr for ConnFilter {
    type Err = String;

    /// `ADDR`, `ADDR:PORT`, `[IPv6]:PORT` or `:PORT`.
    fn from_str(s: &str) -> Result<ConnFilter, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ConnFilter {
                addr: Some(ip),
                port: None,
            });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(ConnFilter {
                addr: Some(sa.ip()),
                port: Some(sa.port()),
            });
        }
        if let Some(port) = s.strip_prefix(':')
            && let Ok(p) = port.parse::<u16>()
        {
            return Ok(ConnFilter {
                addr: None,
                port: Some(p),
            });
        }
        Err(format!(
            "--conn {s}: expected ADDR, ADDR:PORT, [IPv6]:PORT or :PORT"
        ))
    }
}

impl ConnFilter {
    /// Whether an end of the client-side connection `c` or of the server-side one `s`
    /// matches.
    #[must_use]
    pub fn keeps(&self, c: &Conn, s: &Conn) -> bool {
        [c.client, c.server, s.client, s.server]
            .into_iter()
            .any(|e| self.matches(e))
    }

    fn matches(&self, e: Endpoint) -> bool {
        self.addr.is_none_or(|ip| ip == e.addr) && self.port.is_none_or(|p| p == e.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_filters_parse_each_form_and_refuse_the_rest() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            "192.0.2.1".parse(),
            Ok(ConnFilter {
                addr: Some(v4),
                port: None
            })
        );
        assert_eq!(
            "192.0.2.1:443".parse(),
            Ok(ConnFilter {
                addr: Some(v4),
                port: Some(443)
            })
        );
        assert_eq!(
            "[2001:db8::1]:80".parse(),
            Ok(ConnFilter {
                addr: Some(v6),
                port: Some(80)
            })
        );
        assert_eq!(
            ":8443".parse(),
            Ok(ConnFilter {
                addr: None,
                port: Some(8443)
            })
        );
        for bad in ["host", ":", ":99999", "192.0.2.1:x", ""] {
            assert!(bad.parse::<ConnFilter>().is_err(), "{bad}");
        }
    }
}
