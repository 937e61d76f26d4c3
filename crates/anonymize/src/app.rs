//! Application fields that carry addresses and names, rewritten when payloads are kept: DNS
//! (and mDNS, LLMNR) answers and names, DHCP/BOOTP addresses, client identifiers and names.
//! Lengths never change, so compression pointers, option lengths and checksums stay coherent.

use std::ops::Range;

/// What the rewriter is asked to change: an address or a name at a place in the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    V4(Range<usize>),
    V6(Range<usize>),
    Mac(Range<usize>),
    /// Name characters (a DNS label's bytes, a host name option).
    Name(Range<usize>),
    /// Bytes that name something and carry no structure worth keeping.
    Zero(Range<usize>),
    /// Bytes of a message that could not be read through (cut by the snap length or an ICMP
    /// quote, a gap in a TCP stream, a fragment missing, malformed): zeroed and counted, since
    /// they may hold an address that cannot be found to be mapped (fail closed).
    Unparsed(Range<usize>),
}

/// What a field is, whatever packet or message it lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    V4,
    V6,
    Mac,
    Name,
    /// Zeroed: data that may name hosts, with no structure kept.
    Zero,
    /// Zeroed and counted: a part of a message that could not be read through.
    Unparsed,
}

impl Field {
    /// What the field is, and where.
    #[must_use]
    pub fn split(self) -> (Kind, Range<usize>) {
        match self {
            Field::V4(r) => (Kind::V4, r),
            Field::V6(r) => (Kind::V6, r),
            Field::Mac(r) => (Kind::Mac, r),
            Field::Name(r) => (Kind::Name, r),
            Field::Zero(r) => (Kind::Zero, r),
            Field::Unparsed(r) => (Kind::Unparsed, r),
        }
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Labels of a DNS name at `at` in `msg` (pointers are followed for length only, not
/// rewritten: the name they point to is rewritten where it stands). Returns where the name
/// ends in place.
fn dns_name(msg: &[u8], mut at: usize, base: usize, out: &mut Vec<Field>) -> Option<usize> {
    for _ in 0..128 {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 == 0 => {
                let l = usize::from(l);
                if at + 1 + l > msg.len() {
                    return None;
                }
                // The last label before the root (the TLD, `arpa`) stays readable.
                let next = msg.get(at + 1 + l).copied();
                if next != Some(0) {
                    out.push(Field::Name(base + at + 1..base + at + 1 + l));
                }
                at += 1 + l;
            }
            _ => return None,
        }
    }
    None
}

/// Questions and records a DNS message may have for tracekit to read it through; a message
/// claiming more is read as far as this and the rest zeroed.
const DNS_QUESTIONS: u16 = 64;
const DNS_RECORDS: u32 = 4096;

/// A DNS message at `base` in the packet (or in a reassembled stream): the addresses and names
/// to map, and, where the message cannot be read to its end (cut, malformed, more records than
/// tracekit reads), the rest of it as [`Field::Unparsed`].
#[must_use]
pub fn dns(msg: &[u8], base: usize) -> Vec<Field> {
    let mut out = Vec::new();
    let unparsed = |out: &mut Vec<Field>, at: usize| {
        let at = at.min(msg.len());
        if at < msg.len() {
            out.push(Field::Unparsed(base + at..base + msg.len()));
        }
    };
    let (Some(qd), Some(an), Some(ns), Some(ar)) =
        (be16(msg, 4), be16(msg, 6), be16(msg, 8), be16(msg, 10))
    else {
        // Not even a header: what there is after the ID and flags may still be anything.
        unparsed(&mut out, 4);
        return out;
    };
    let records = u32::from(an) + u32::from(ns) + u32::from(ar);
    let mut at = 12;
    for _ in 0..qd.min(DNS_QUESTIONS) {
        let Some(end) = dns_name(msg, at, base, &mut out).filter(|e| e + 4 <= msg.len()) else {
            unparsed(&mut out, at);
            return out;
        };
        at = end + 4;
    }
    if qd > DNS_QUESTIONS {
        unparsed(&mut out, at);
        return out;
    }
    for _ in 0..records.min(DNS_RECORDS) {
        let Some(end) = dns_name(msg, at, base, &mut out) else {
            unparsed(&mut out, at);
            return out;
        };
        let (Some(kind), Some(rdlen)) = (be16(msg, end), be16(msg, end + 8)) else {
            unparsed(&mut out, at);
            return out;
        };
        let rd = end + 10;
        let rdlen = usize::from(rdlen);
        if rd + rdlen > msg.len() {
            // The record's data is cut: its name was found, the rest cannot be.
            unparsed(&mut out, rd);
            return out;
        }
        match (kind, rdlen) {
            (1, 4) => out.push(Field::V4(base + rd..base + rd + 4)),
            (28, 16) => out.push(Field::V6(base + rd..base + rd + 16)),
            // CNAME, NS, PTR, DNAME: a name; MX: preference then a name; SOA: two names.
            (5 | 2 | 12 | 39, _) => {
                let _ = dns_name(msg, rd, base, &mut out);
            }
            (15, _) => {
                let _ = dns_name(msg, rd + 2, base, &mut out);
            }
            (6, _) => {
                if let Some(e) = dns_name(msg, rd, base, &mut out) {
                    let _ = dns_name(msg, e, base, &mut out);
                }
            }
            // TXT, HINFO, EDNS options (client subnet, owner MAC, cookies) and anything else
            // that is not an address or a name: data that may name hosts.
            _ => out.push(Field::Zero(base + rd..base + rd + rdlen)),
        }
        at = rd + rdlen;
    }
    if records > DNS_RECORDS {
        unparsed(&mut out, at);
    }
    out
}

/// DNS (53), mDNS (5353) and LLMNR (5355): the ports whose messages are read for addresses
/// and names, over UDP and over TCP.
#[must_use]
pub fn is_dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
}

/// The fields of a packet's UDP payload when it is DNS (53, mDNS 5353, LLMNR 5355) or
/// DHCP/BOOTP (67, 68), and of the UDP datagram an ICMP error quotes (as far as it is
/// quoted: the cut rest of a quoted message is [`Field::Unparsed`]). A fragment is left to
/// [`crate::reassembly`], which reads the datagram whole.
#[must_use]
pub fn udp_fields(layers: &tracekit_wire::Layers, data: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    if let Some(ip) = layers.inner_ip()
        && ip.fragment.is_none()
        && let Some(udp) = ip.transport
    {
        udp_message(udp, data, &mut out);
    }
    if let Some(udp) = layers.quoted.and_then(|q| q.transport) {
        udp_message(udp, data, &mut out);
    }
    out
}

/// The fields of one UDP datagram's message.
fn udp_message(udp: tracekit_wire::Transport, data: &[u8], out: &mut Vec<Field>) {
    if !udp.complete || udp.kind != tracekit_wire::TransportKind::Udp {
        return;
    }
    let Some((sport, dport)) = udp.ports(data) else {
        return;
    };
    let payload = udp.payload.start as usize..(udp.payload.end as usize).min(data.len());
    let msg = &data[payload.clone()];
    if is_dns_port(sport) || is_dns_port(dport) {
        out.extend(dns(msg, payload.start));
    } else if [sport, dport].iter().any(|p| matches!(p, 67 | 68)) {
        out.extend(dhcp(msg, payload.start));
    }
}

/// Where the link layer holds MAC addresses: outer and tunnelled Ethernet, Linux cooked
/// headers.
#[must_use]
pub fn link_macs(link: u16, layers: &tracekit_wire::Layers, data: &[u8]) -> Vec<usize> {
    let mut at: Vec<usize> = [layers.ethernet, layers.inner_ethernet]
        .into_iter()
        .flatten()
        .flat_map(|eth| [eth.start as usize, eth.start as usize + 6])
        .filter(|&a| a + 6 <= data.len())
        .collect();
    at.extend(crate::rewrite::sll_address(link, data));
    at
}

/// A DHCP/BOOTP message (UDP payload) at `base` in the packet.
#[must_use]
pub fn dhcp(msg: &[u8], base: usize) -> Vec<Field> {
    let mut out = Vec::new();
    if msg.len() < 240 {
        // Cut before the options (snap length, an ICMP quote): addresses and the client's
        // MAC may be in what there is.
        if !msg.is_empty() {
            out.push(Field::Unparsed(base..base + msg.len()));
        }
        return out;
    }
    for at in [12, 16, 20, 24] {
        out.push(Field::V4(base + at..base + at + 4));
    }
    if msg[1] == 1 && msg[2] == 6 {
        out.push(Field::Mac(base + 28..base + 34));
    }
    // Server name and boot file name.
    out.push(Field::Zero(base + 44..base + 236));
    if msg[236..240] != [99, 130, 83, 99] {
        return out;
    }
    let mut at = 240;
    while at < msg.len() {
        let code = msg[at];
        if code == 255 {
            break;
        }
        if code == 0 {
            at += 1;
            continue;
        }
        let Some(&len) = msg.get(at + 1) else {
            out.push(Field::Unparsed(base + at..base + msg.len()));
            break;
        };
        let (v, len) = (at + 2, usize::from(len));
        if v + len > msg.len() {
            out.push(Field::Unparsed(base + at..base + msg.len()));
            break;
        }
        match code {
            // Requested address, server identifier, and address lists (routers, DNS, NTP…).
            50 | 54 | 3 | 4 | 5 | 6 | 7 | 9 | 28 | 42 | 44 | 69 | 70 | 118 if len % 4 == 0 => {
                for i in (0..len).step_by(4) {
                    out.push(Field::V4(base + v + i..base + v + i + 4));
                }
            }
            // Client identifier: hardware type 1 and a MAC.
            61 if len == 7 && msg[v] == 1 => out.push(Field::Mac(base + v + 1..base + v + 7)),
            // Host name, domain name, client FQDN (after its flags and rcodes).
            12 | 15 => out.push(Field::Name(base + v..base + v + len)),
            81 if len > 3 => out.push(Field::Name(base + v + 3..base + v + len)),
            // Vendor class and parameter lists say nothing of the host; others may.
            55 | 53 | 51 | 58 | 59 | 57 | 60 | 1 => {}
            _ => out.push(Field::Zero(base + v..base + v + len)),
        }
        at = v + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_answers_and_names_are_found() {
        // Response: www.example.com A 192.0.2.1, with a compressed answer name.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend(b"\x03www\x07example\x03com\x00");
        m.extend([0, 1, 0, 1]);
        m.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let f = dns(&m, 100);
        assert!(f.contains(&Field::Name(113..116)));
        assert!(f.contains(&Field::Name(117..124)));
        assert!(!f.contains(&Field::Name(125..128)), "the TLD stays");
        assert!(f.contains(&Field::V4(100 + m.len() - 4..100 + m.len())));
        // Truncated messages give what they can, never a panic, and what is cut off from its
        // structure is zeroed: no prefix leaves an original answer byte outside a field.
        for n in 0..m.len() {
            let f = dns(&m[..n], 0);
            let covered = |at: usize| {
                f.iter().any(|f| match f {
                    Field::V4(r) | Field::Unparsed(r) => r.contains(&at),
                    _ => false,
                })
            };
            for at in m.len() - 4..n {
                assert!(
                    covered(at),
                    "prefix {n}: answer byte {at} neither mapped nor zeroed"
                );
            }
        }
        // A message claiming more records than it has: its end is zeroed, nothing else.
        let mut more = m.clone();
        more[7] = 3;
        let f = dns(&more, 0);
        assert!(f.contains(&Field::V4(m.len() - 4..m.len())));
        assert!(!f.iter().any(|f| matches!(f, Field::Unparsed(_))), "{f:?}");
        more.extend([0xc0, 12, 0, 1]);
        assert!(dns(&more, 0).contains(&Field::Unparsed(m.len()..m.len() + 4)));
    }

    #[test]
    fn dhcp_addresses_mac_and_names() {
        let mut m = vec![0u8; 240];
        m[0] = 2;
        m[1] = 1;
        m[2] = 6;
        m[16..20].copy_from_slice(&[192, 0, 2, 50]);
        m[236..240].copy_from_slice(&[99, 130, 83, 99]);
        m.extend([
            53, 1, 5, 54, 4, 192, 0, 2, 1, 12, 4, b'h', b'o', b's', b't', 61, 7, 1, 2, 3, 4, 5, 6,
            7, 255,
        ]);
        let f = dhcp(&m, 0);
        assert!(f.contains(&Field::V4(16..20)));
        assert!(f.contains(&Field::Mac(28..34)));
        assert!(f.contains(&Field::V4(245..249)));
        assert!(f.contains(&Field::Name(251..255)));
        assert!(f.contains(&Field::Mac(258..264)));
        for n in 0..m.len() {
            let _ = dhcp(&m[..n], 0);
        }
    }
}
