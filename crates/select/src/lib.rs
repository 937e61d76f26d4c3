//! One selection for every command: a time window, a tcpdump filter, an address list, frame
//! ranges and a Community ID, parsed here once and matched here once. Cheap checks run first
//! (frame number, time), then the BPF program over the raw bytes, then the checks that need
//! the packet dissected.

pub mod bpf;
pub mod frames;
pub mod hosts;
mod libpcap;
pub mod window;

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use tracekit_capture::Record;
use tracekit_wire::community::FlowTuple;
use tracekit_wire::{Layers, dissect_into};

pub use frames::Frames;
pub use hosts::HostSet;
pub use window::{TimeSpec, Window};

/// What was asked, parsed and checked, before any input is read.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub after: Option<TimeSpec>,
    pub before: Option<TimeSpec>,
    pub filter: Option<Arc<Filter>>,
    pub hosts: Option<Arc<HostSet>>,
    pub frames: Option<Frames>,
    pub community_id: Option<(String, u16)>,
}

impl Spec {
    /// Nothing is selected out: every packet passes.
    #[must_use]
    pub fn is_everything(&self) -> bool {
        self.after.is_none()
            && self.before.is_none()
            && self.filter.is_none()
            && self.hosts.is_none()
            && self.frames.is_none()
            && self.community_id.is_none()
    }

    /// The window needs the first packet's time (`+90s`).
    #[must_use]
    pub fn is_relative(&self) -> bool {
        matches!(self.after, Some(TimeSpec::FromFirst(_)))
            || matches!(self.before, Some(TimeSpec::FromFirst(_)))
    }

    /// The window, given the first packet's time of the inputs read as one capture.
    #[must_use]
    pub fn window(&self, first: i64) -> Window {
        Window {
            after: self.after.map(|t| t.resolve(first)),
            before: self.before.map(|t| t.resolve(first)),
        }
    }

    /// A matcher for one thread, with the window resolved.
    #[must_use]
    pub fn matcher(&self, first: i64) -> Matcher {
        Matcher {
            window: self.window(first),
            filter: self.filter.clone(),
            programs: Vec::new(),
            hosts: self.hosts.clone(),
            frames: self.frames.clone(),
            community: self.community_id.clone().map(|(id, seed)| Community {
                id,
                seed,
                flows: FxHashMap::default(),
                fragments: FxHashSet::default(),
            }),
            layers: Layers::default(),
            scratch: Vec::new(),
        }
    }
}

/// A tcpdump expression, with libpcap loaded to compile it per link type.
#[derive(Debug)]
pub struct Filter {
    pub expr: String,
    lib: libpcap::Libpcap,
    /// Compiled programs by link type: libpcap compiles against a file it opens, which costs
    /// about a millisecond, once per link type rather than once per input.
    compiled: std::sync::Mutex<FxHashMap<u16, Result<Vec<bpf::Insn>, String>>>,
}

/// A filter that does not compile: libpcap's message, and where in the expression (0-based
/// byte offset) when it can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    pub at: Option<usize>,
}

impl Filter {
    /// Loads libpcap and checks the expression on Ethernet, which every tcpdump primitive that
    /// is not link-specific compiles on. A syntax error is located by finding the first word at
    /// which no completion of the expression so far compiles.
    pub fn new(expr: &str) -> Result<Filter, FilterError> {
        let lib = libpcap::Libpcap::load().map_err(|message| FilterError { message, at: None })?;
        let ethernet = lib.compile(1, expr);
        if let Err(message) = &ethernet
            && (message.contains("syntax error")
                || message.contains("unknown")
                || message.contains("illegal"))
        {
            return Err(FilterError {
                at: Some(locate(&lib, expr, message)),
                message: message.clone(),
            });
        }
        let compiled = FxHashMap::from_iter([(1, ethernet)]);
        Ok(Filter {
            expr: expr.to_string(),
            lib,
            compiled: std::sync::Mutex::new(compiled),
        })
    }

    /// The program for link type `link` (LINKTYPE_ value).
    pub fn program(&self, link: u16) -> Result<bpf::Program, String> {
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let insns = compiled
            .entry(link)
            .or_insert_with(|| self.lib.compile(link, &self.expr))
            .clone()?;
        drop(compiled);
        bpf::Program::new(&insns)
    }
}

/// Where a bad expression goes wrong: a quoted name from libpcap's message, else the start of
/// the first word after which no completion compiles.
fn locate(lib: &libpcap::Libpcap, expr: &str, message: &str) -> usize {
    const COMPLETIONS: &[&str] = &[
        "",
        " ip",
        " 1",
        " 192.0.2.1",
        " host 192.0.2.1",
        " port 1",
        " 1 = 1",
        " and ip",
        " tcp",
        " 0]",
    ];
    if let Some(q) = message.split('\'').nth(1).filter(|q| !q.is_empty())
        && let Some(at) = expr.find(q)
    {
        return at;
    }
    let words: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, c) in expr.char_indices() {
            let sep = c.is_whitespace() || c == '(' || c == ')';
            match (sep, start) {
                (true, Some(s)) => {
                    v.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
            if c == '(' || c == ')' {
                v.push((i, i + 1));
            }
        }
        if let Some(s) = start {
            v.push((s, expr.len()));
        }
        v
    };
    for &(start, end) in &words {
        let prefix = &expr[..end];
        let open = prefix
            .matches('(')
            .count()
            .saturating_sub(prefix.matches(')').count());
        let viable = COMPLETIONS.iter().any(|c| {
            let candidate = format!("{prefix}{c}{}", ")".repeat(open));
            lib.compile(1, &candidate).is_ok()
        });
        if !viable {
            return start;
        }
    }
    expr.len()
}

struct Community {
    id: String,
    seed: u16,
    flows: FxHashMap<FlowTuple, bool>,
    /// Datagrams (source, destination, protocol, identification) whose first fragment matched.
    fragments: FxHashSet<(IpAddr, IpAddr, u8, u32)>,
}

impl std::fmt::Debug for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Community({})", self.id)
    }
}

/// The matcher of one thread: the spec plus per-link-type programs and per-flow caches.
#[derive(Debug)]
pub struct Matcher {
    pub window: Window,
    filter: Option<Arc<Filter>>,
    programs: Vec<(u16, bpf::Program)>,
    hosts: Option<Arc<HostSet>>,
    frames: Option<Frames>,
    community: Option<Community>,
    layers: Layers,
    scratch: Vec<u8>,
}

/// Flows cached for `--community-id` before the cache is cleared (bounds memory on scans).
const FLOW_CACHE: usize = 1 << 20;

impl Matcher {
    /// Whether record `r`, frame number `frame` (from 1, over the inputs read as one capture),
    /// is selected. `Err` when the filter does not compile for the record's link type.
    pub fn matches(&mut self, frame: u64, r: &Record<'_>) -> Result<bool, String> {
        if let Some(f) = &self.frames
            && !f.contains(frame)
        {
            return Ok(false);
        }
        if !(self.window.is_open() || r.has_ts && self.window.contains(r.ts.0)) {
            return Ok(false);
        }
        if let Some(filter) = &self.filter {
            let link = r.link.0;
            let program = match self.programs.iter().position(|(l, _)| *l == link) {
                Some(i) => &self.programs[i].1,
                None => {
                    let p = filter.program(link).map_err(|e| {
                        format!("--filter {:?} on link type {}: {e}", filter.expr, r.link)
                    })?;
                    self.programs.push((link, p));
                    &self.programs[self.programs.len() - 1].1
                }
            };
            let data = match link {
                // BSD loopback: the address family is in the writer's byte order, and libpcap
                // compiles it for the file's order; a big-endian word is read as ours here.
                0 | 109 if r.data.len() >= 4 && r.data[..2] == [0, 0] && r.data[2..4] != [0, 0] => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(r.data);
                    self.scratch[..4].reverse();
                    &self.scratch[..]
                }
                _ => r.data,
            };
            if !program.matches(data, r.orig_len) {
                return Ok(false);
            }
        }
        if self.hosts.is_none() && self.community.is_none() {
            return Ok(true);
        }
        dissect_into(r.link.0, r.data, &mut self.layers);
        if let Some(hosts) = &self.hosts
            && !host_match(hosts, &self.layers, r.data)
        {
            return Ok(false);
        }
        if let Some(c) = &mut self.community
            && !community_match(c, &self.layers, r.data)
        {
            return Ok(false);
        }
        Ok(true)
    }

    /// No frame after `frame` can be selected (`--frames` ended): a reader may stop.
    #[must_use]
    pub fn done_after(&self, frame: u64) -> bool {
        self.frames.as_ref().is_some_and(|f| frame >= f.last())
    }
}

/// Either end of the outermost IP header, or of an ARP packet (as tcpdump's `host` matches).
fn host_match(hosts: &HostSet, l: &Layers, data: &[u8]) -> bool {
    if let Some(ip) = l.outer_ip() {
        return hosts.contains(ip.src(data)) || hosts.contains(ip.dst(data));
    }
    if let Some(arp) = l.arp {
        let a = &data[arp.range()];
        // Ethernet/IPv4 ARP: hardware length 6, protocol length 4.
        if a.len() >= 28 && a[4] == 6 && a[5] == 4 {
            let spa = IpAddr::from([a[14], a[15], a[16], a[17]]);
            let tpa = IpAddr::from([a[24], a[25], a[26], a[27]]);
            return hosts.contains(spa) || hosts.contains(tpa);
        }
    }
    false
}

fn community_match(c: &mut Community, l: &Layers, data: &[u8]) -> bool {
    let Some(ip) = l.outer_ip() else { return false };
    if let Some(f) = ip.fragment.filter(|f| f.offset != 0) {
        return c
            .fragments
            .contains(&(ip.src(data), ip.dst(data), ip.protocol.0, f.ident));
    }
    let tuple = FlowTuple::of(ip, data);
    if c.flows.len() >= FLOW_CACHE {
        c.flows.clear();
    }
    let (id, seed) = (&c.id, c.seed);
    let hit = *c
        .flows
        .entry(tuple)
        .or_insert_with(|| tuple.community_id(seed) == *id);
    if hit && let Some(f) = ip.fragment {
        c.fragments
            .insert((tuple.src, tuple.dst, tuple.protocol, f.ident));
    }
    hit
}
