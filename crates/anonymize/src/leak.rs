//! The leak check: every IPv4/IPv6 address and MAC address of the original packets (headers,
//! tunnels, quoted packets, ARP, neighbour discovery, DNS answers and DHCP fields wherever the
//! message travels: UDP, TCP streams, ICMP quotes, fragments), searched for in every byte of the anonymized file. Addresses
//! the mapping keeps on purpose (loopback, multicast, broadcast, unspecified; group MACs) are
//! left out, and so are placeholders that name nothing and match runs of zeros (0.0.0.0/8,
//! MACs with at most one non-zero byte); a MAC is searched whole, so a kept OUI alone is no hit.

use std::net::{Ipv4Addr, Ipv6Addr};

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashSet;
use tracekit_wire::dissect;

use crate::map::Mapper;
use crate::reassembly::{Kind, Reassembled};

/// The addresses found in the original.
#[derive(Debug, Default)]
pub struct Secrets {
    found: FxHashSet<Vec<u8>>,
}

/// The outcome of [`Secrets::check`].
#[derive(Debug, Clone, Default)]
pub struct Check {
    pub leaks: u64,
    /// Addresses produced by the rewriting itself (see [`Secrets::check`]).
    pub coincidences: u64,
    /// The first leaks, in file order.
    pub hits: Vec<Hit>,
}

/// One address found in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub offset: usize,
    pub what: String,
}

fn repeated(b: &[u8]) -> bool {
    b.windows(2).all(|w| w[0] == w[1])
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

    /// The addresses of a whole capture: each packet's, and those of the messages that cross
    /// packets. `packets` gives (0-based index, link type, bytes) in file order.
    pub fn of_packets<'a>(packets: impl IntoIterator<Item = (u64, u16, &'a [u8])>) -> Self {
        let mut s = Self::new();
        let mut carried = crate::reassembly::Reassembler::new();
        for (index, link, data) in packets {
            s.add_packet(link, data);
            carried.add(index, link, data);
        }
        s.add_reassembled(&carried.finish());
        s
    }

    /// Collects the addresses of one original packet.
    pub fn add_packet(&mut self, link: u16, data: &[u8]) {
        let layers = dissect(link, data);
        for at in crate::app::link_macs(link, &layers, data) {
            self.mac(&data[at..at + 6]);
        }
        if let Some(a) = crate::rewrite::arp_at(link, &layers)
            && let Some(b) = data.get(a..a + 28)
            && b[4] == 6
            && b[5] == 4
        {
            self.mac(&b[8..14]);
            self.v4(&b[14..18]);
            self.mac(&b[18..24]);
            self.v4(&b[24..28]);
        }
        for f in crate::app::udp_fields(&layers, data) {
            let (kind, r) = f.split();
            self.field(kind, &data[r]);
        }
        if let Some(ip) = layers.inner_ip()
            && let Some(t) = ip.transport
            && t.kind == tracekit_wire::TransportKind::Icmpv6
            && t.complete
        {
            for f in crate::rewrite::neighbour_discovery_fields(data, t) {
                let (kind, r) = f.split();
                self.field(kind, &data[r]);
            }
        }
        for ip in layers.ips().iter().chain(layers.quoted.iter()) {
            let h = ip.header.start as usize;
            if ip.version == 4 {
                if let Some(b) = data.get(h + 12..h + 20) {
                    self.v4(&b[..4]);
                    self.v4(&b[4..]);
                }
                for r in crate::rewrite::ipv4_option_addresses(data, ip) {
                    self.v4(&data[r]);
                }
            } else if let Some(b) = data.get(h + 8..h + 40) {
                self.v6(&b[..16]);
                self.v6(&b[16..]);
                for r in crate::rewrite::ipv6_extension_addresses(data, ip).addresses {
                    self.v6(&data[r]);
                }
            }
        }
    }

    /// Collects the addresses of the messages that crossed packets (DNS over TCP, DNS in
    /// fragmented datagrams), read whole.
    pub fn add_reassembled(&mut self, carried: &Reassembled) {
        for w in carried.wholes() {
            self.field(w.kind, &w.original);
        }
    }

    /// An address-bearing field's original bytes; names and zeroed bytes are not searched.
    fn field(&mut self, kind: Kind, bytes: &[u8]) {
        match kind {
            Kind::V4 => self.v4(bytes),
            Kind::V6 => self.v6(bytes),
            Kind::Mac => self.mac(bytes),
            Kind::Name | Kind::Zero | Kind::Unparsed => {}
        }
    }

    fn mac(&mut self, m: &[u8]) {
        let m: [u8; 6] = m.try_into().expect("six bytes");
        // Placeholders like 00:00:00:00:00:01 or aa:aa:aa:aa:aa:aa name no device and match
        // runs of filler bytes.
        let placeholder = m.iter().filter(|&&b| b != 0).count() <= 1 || repeated(&m);
        if !Mapper::keeps_mac(m) && !placeholder {
            self.found.insert(m.to_vec());
        }
    }
    fn v4(&mut self, a: &[u8]) {
        let v = u32::from_be_bytes(a.try_into().expect("four bytes"));
        // 0.0.0.0/8 ("this network") names no host and matches runs of zeros; one byte
        // repeated (170.170.170.170) is filler.
        if !Mapper::keeps_v4(v) && v >> 24 != 0 && !repeated(a) {
            self.found.insert(a.to_vec());
        }
    }
    fn v6(&mut self, a: &[u8]) {
        let v = u128::from_be_bytes(a.try_into().expect("sixteen bytes"));
        if !Mapper::keeps_v6(v) && !repeated(a) {
            self.found.insert(a.to_vec());
        }
    }

    /// Leaves out the addresses the mapping sends to themselves: a keyed permutation has fixed
    /// points (one on average over a block), and finding one in the output says nothing the
    /// key does not.
    pub fn forget_fixed_points(&mut self, mapper: &mut Mapper) {
        self.found.retain(|a| match a.len() {
            4 => {
                let v = u32::from_be_bytes(a[..].try_into().expect("four bytes"));
                mapper.v4(v) != v
            }
            16 => {
                let v = u128::from_be_bytes(a[..].try_into().expect("sixteen bytes"));
                mapper.v6(v) != v
            }
            _ => {
                let m: [u8; 6] = a[..].try_into().expect("six bytes");
                mapper.mac(m) != m
            }
        });
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.found.len()
    }
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Searches a whole output file. `packets` gives, in file order, where each packet's bytes
    /// lie in the file and the original packet it was made from. An address found inside a
    /// packet where the original packet had other bytes was produced by the rewriting (a
    /// recomputed checksum next to a zero, a mapped address that happens to equal another
    /// host's original one): it carries nothing of the original and is counted apart as a
    /// coincidence. Anywhere else (copied bytes, headers, options) it is a leak.
    #[must_use]
    pub fn check(
        &self,
        file: &[u8],
        packets: &[(std::ops::Range<usize>, &[u8])],
        keep: usize,
    ) -> Check {
        let mut out = Check::default();
        let mut patterns: Vec<&Vec<u8>> = self.found.iter().collect();
        patterns.sort();
        let Ok(ac) = AhoCorasick::new(&patterns) else {
            return out;
        };
        for m in ac.find_overlapping_iter(file) {
            let pattern = patterns[m.pattern().as_usize()];
            let i = packets.partition_point(|(r, _)| r.start <= m.start());
            let copied = match i.checked_sub(1).map(|i| &packets[i]) {
                // Starting inside a packet: copied only if the original had these bytes there
                // (a run crossing into the next record header was not in the original).
                Some((r, original)) if m.start() < r.end => {
                    let at = m.start() - r.start;
                    original.get(at..at + pattern.len()) == Some(pattern.as_slice())
                }
                _ => true,
            };
            if copied {
                out.leaks += 1;
                if out.hits.len() < keep {
                    out.hits.push(Hit {
                        offset: m.start(),
                        what: describe(pattern),
                    });
                }
            } else {
                out.coincidences += 1;
            }
        }
        out
    }

    /// Searches `haystack` for every address, wherever it is; returns the number of hits and
    /// the first `keep` of them in file order.
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
