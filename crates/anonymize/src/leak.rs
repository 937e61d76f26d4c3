//! The leak check: every IPv4/IPv6 address and MAC address of the original packets (headers,
//! tunnels, quoted packets, ARP), searched for in every byte of the anonymized file. Addresses
//! the mapping keeps on purpose (loopback, multicast, broadcast, unspecified; group MACs) are
//! left out; a MAC is searched whole, so a kept OUI alone is no hit.

use std::net::{Ipv4Addr, Ipv6Addr};

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashSet;
use tracekit_wire::dissect;

use crate::map::Mapper;

/// The addresses found in the original.
#[derive(Debug, Default)]
pub struct Secrets {
    found: FxHashSet<Vec<u8>>,
}

/// One address found in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub offset: usize,
    pub what: String,
}

fn describe(p: &[u8]) -> String {
    match p.len() {
        4 => Ipv4Addr::from(<[u8; 4]>::try_from(p).expect("four bytes")).to_string(),
        16 => Ipv6Addr::from(<[u8; 16]>::try_from(p).expect("sixteen bytes")).to_string(),
        _ => p
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

impl Secrets {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Collects the addresses of one original packet.
    pub fn add_packet(&mut self, link: u16, data: &[u8]) {
        let layers = dissect(link, data);
        for eth in [layers.ethernet, layers.inner_ethernet]
            .into_iter()
            .flatten()
        {
            let s = eth.start as usize;
            for at in [s, s + 6] {
                if let Some(m) = data.get(at..at + 6) {
                    self.mac(m);
                }
            }
        }
        if let Some(arp) = layers.arp {
            let a = arp.start as usize;
            if let Some(b) = data.get(a..a + 28)
                && b[4] == 6
                && b[5] == 4
            {
                self.mac(&b[8..14]);
                self.v4(&b[14..18]);
                self.mac(&b[18..24]);
                self.v4(&b[24..28]);
            }
        }
        for ip in layers.ips().iter().chain(layers.quoted.iter()) {
            let h = ip.header.start as usize;
            if ip.version == 4 {
                if let Some(b) = data.get(h + 12..h + 20) {
                    self.v4(&b[..4]);
                    self.v4(&b[4..]);
                }
            } else if let Some(b) = data.get(h + 8..h + 40) {
                self.v6(&b[..16]);
                self.v6(&b[16..]);
            }
        }
    }

    fn mac(&mut self, m: &[u8]) {
        let m: [u8; 6] = m.try_into().expect("six bytes");
        if !Mapper::keeps_mac(m) {
            self.found.insert(m.to_vec());
        }
    }
    fn v4(&mut self, a: &[u8]) {
        let v = u32::from_be_bytes(a.try_into().expect("four bytes"));
        if !Mapper::keeps_v4(v) {
            self.found.insert(a.to_vec());
        }
    }
    fn v6(&mut self, a: &[u8]) {
        let v = u128::from_be_bytes(a.try_into().expect("sixteen bytes"));
        if !Mapper::keeps_v6(v) {
            self.found.insert(a.to_vec());
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.found.len()
    }
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Searches `haystack` (a whole output file); returns the number of hits and the first
    /// `keep` of them in file order.
    #[must_use]
    pub fn search(&self, haystack: &[u8], keep: usize) -> (u64, Vec<Hit>) {
        let mut patterns: Vec<&Vec<u8>> = self.found.iter().collect();
        patterns.sort();
        let Ok(ac) = AhoCorasick::new(&patterns) else {
            return (0, Vec::new());
        };
        let mut count = 0;
        let mut hits = Vec::new();
        for m in ac.find_overlapping_iter(haystack) {
            count += 1;
            if hits.len() < keep {
                hits.push(Hit {
                    offset: m.start(),
                    what: describe(patterns[m.pattern().as_usize()]),
                });
            }
        }
        (count, hits)
    }
}

impl Secrets {
    /// The addresses found, as their bytes (4: IPv4, 16: IPv6, 6: MAC), in byte order.
    #[must_use]
    pub fn addresses(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self.found.iter().cloned().collect();
        v.sort();
        v
    }
}
