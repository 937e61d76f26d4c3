//! Which blocks a tcpdump expression can match, from the postings: a conservative reading of
//! the expression (every block a matching packet can be in is kept; the records are then
//! matched exactly by libpcap's program). Understood: `host`, `port`, `tcp`, `udp`, `icmp`,
//! `icmp6`, `sctp`, `ip`, `ip6`, `arp`, `vlan [ID]`, `proto N` and bare addresses or numbers
//! after `and`/`or` (libpcap's inherited qualifier: `host a or b`, `port 80 or 443`), with
//! `src`/`dst` and protocol qualifiers, `and`, `or`, parentheses. Anything else (`not`, `net`,
//! `portrange`, byte offsets…) reads every block for that part.

use crate::keys;

/// Blocks to read, as a tree over the postings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Every block.
    All,
    /// The blocks holding this key.
    Key(u64),
    /// Blocks in every part.
    And(Vec<Plan>),
    /// Blocks in any part.
    Or(Vec<Plan>),
}

/// The plan of a tcpdump expression (`All` when it cannot be narrowed).
#[must_use]
pub fn of_filter(expr: &str) -> Plan {
    let tokens = tokenize(expr);
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        last: Kind::Host,
    };
    match p.or() {
        Some(plan) if p.at == tokens.len() => plan,
        _ => Plan::All,
    }
}

/// Addresses of a hosts file the index looks up one by one, at most.
const HOSTS_LOOKED_UP: usize = 4096;

/// The plan of a hosts file: its addresses, when it holds at most [`HOSTS_LOOKED_UP`] (a
/// wide prefix reads every block).
#[must_use]
pub fn of_hosts(hosts: &tracekit_select::HostSet) -> Plan {
    hosts.addresses(HOSTS_LOOKED_UP).map_or(Plan::All, |a| {
        Plan::Or(a.into_iter().map(|a| Plan::Key(keys::addr(a))).collect())
    })
}

/// The plan of `--community-id`, given the flows that have its ID (their outer IP headers'
/// tuples, from the flow table): the blocks holding all of a flow's addresses, ports and
/// protocol, and those holding fragments after the first (matched by their first fragment).
#[must_use]
pub fn of_flows(flows: &[tracekit_wire::community::FlowTuple]) -> Plan {
    let mut any: Vec<Plan> = flows
        .iter()
        .map(|t| {
            let mut all = vec![
                Plan::Key(keys::addr(t.src)),
                Plan::Key(keys::addr(t.dst)),
                Plan::Key(keys::proto(t.protocol)),
            ];
            if let Some((a, b)) = t.ports {
                all.extend([Plan::Key(keys::port(a)), Plan::Key(keys::port(b))]);
            }
            Plan::And(all)
        })
        .collect();
    any.push(Plan::Key(keys::FRAGMENT_REST));
    Plan::Or(any)
}

/// Both plans must hold.
#[must_use]
pub fn and(a: Plan, b: Plan) -> Plan {
    match (a, b) {
        (Plan::All, p) | (p, Plan::All) => p,
        (a, b) => Plan::And(vec![a, b]),
    }
}

fn tokenize(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | ')' | '!' => {
                flush(&mut word, &mut out);
                out.push(c.to_string());
            }
            '&' | '|' if chars.peek() == Some(&c) => {
                chars.next();
                flush(&mut word, &mut out);
                out.push(if c == '&' { "and" } else { "or" }.to_string());
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// What a bare value after `and`/`or` inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Port,
    Other,
}

struct Parser<'t> {
    tokens: &'t [String],
    at: usize,
    last: Kind,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }
    fn next(&mut self) -> Option<&str> {
        let t = self.tokens.get(self.at)?;
        self.at += 1;
        Some(t.as_str())
    }

    fn or(&mut self) -> Option<Plan> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else if parts.contains(&Plan::All) {
            Plan::All
        } else {
            Plan::Or(parts)
        })
    }

    fn and(&mut self) -> Option<Plan> {
        let mut parts = vec![self.factor()?];
        while self.peek() == Some("and") {
            self.at += 1;
            parts.push(self.factor()?);
        }
        parts.retain(|p| *p != Plan::All);
        Some(match parts.len() {
            0 => Plan::All,
            1 => parts.pop()?,
            _ => Plan::And(parts),
        })
    }

    fn factor(&mut self) -> Option<Plan> {
        match self.peek()? {
            "(" => {
                self.at += 1;
                let p = self.or()?;
                (self.next()? == ")").then_some(p)
            }
            "not" | "!" => {
                self.at += 1;
                // Its blocks cannot be told from the postings: all of them (still parsed, so
                // that what follows is read right).
                self.factor()?;
                Some(Plan::All)
            }
            _ => self.primitive(),
        }
    }

    /// A primitive: qualifiers, then an ID where the primitive takes one. Unknown words make
    /// the primitive `All` as long as the parse can go on.
    fn primitive(&mut self) -> Option<Plan> {
        let mut proto: Option<Plan> = None;
        loop {
            let w = self.peek()?.to_ascii_lowercase();
            match w.as_str() {
                "src" | "dst" => {
                    self.at += 1;
                    // `src or dst`, `src and dst` as one qualifier.
                    if matches!(self.peek(), Some("or" | "and"))
                        && matches!(
                            self.tokens.get(self.at + 1).map(String::as_str),
                            Some("src" | "dst")
                        )
                    {
                        self.at += 2;
                    }
                }
                "tcp" | "udp" | "icmp" | "icmp6" | "sctp" | "ip" | "ip6" | "arp" => {
                    self.at += 1;
                    proto = Some(match w.as_str() {
                        "tcp" => Plan::Key(keys::proto(6)),
                        "udp" => Plan::Key(keys::proto(17)),
                        "icmp" => Plan::Key(keys::proto(1)),
                        "icmp6" => Plan::Key(keys::proto(58)),
                        "sctp" => Plan::Key(keys::proto(132)),
                        "ip" => Plan::Key(keys::VERSION | 4),
                        "ip6" => Plan::Key(keys::VERSION | 6),
                        _ => Plan::Key(keys::ARP),
                    });
                    // A protocol alone is a primitive.
                    if !matches!(self.peek(), Some("host" | "port" | "src" | "dst")) {
                        self.last = Kind::Other;
                        return proto;
                    }
                }
                "host" => {
                    self.at += 1;
                    let key = address(self.next()?);
                    self.last = Kind::Host;
                    return Some(both(proto, key));
                }
                "port" => {
                    self.at += 1;
                    let key = self.next()?.parse::<u16>().ok().map(keys::port);
                    self.last = Kind::Port;
                    return Some(both(proto, key));
                }
                "vlan" => {
                    self.at += 1;
                    let id = self.peek().and_then(|t| t.parse::<u16>().ok());
                    if id.is_some() {
                        self.at += 1;
                    }
                    self.last = Kind::Other;
                    return Some(Plan::Key(
                        id.map_or(keys::ANY_VLAN, |v| keys::VLAN | u64::from(v)),
                    ));
                }
                "proto" => {
                    self.at += 1;
                    let n = self.next()?.parse::<u8>().ok();
                    self.last = Kind::Other;
                    return Some(n.map_or(Plan::All, |n| Plan::Key(keys::PROTO | u64::from(n))));
                }
                ")" | "and" | "or" => return None,
                _ => {
                    // A bare ID inherits the last primitive's kind; other words (net, ether,
                    // portrange, less, greater, gateway, byte offsets…) are not narrowed.
                    self.at += 1;
                    return Some(match self.last {
                        Kind::Host if address(&w).is_some() => both(proto, address(&w)),
                        Kind::Port if w.parse::<u16>().is_ok() => {
                            both(proto, w.parse::<u16>().ok().map(keys::port))
                        }
                        _ => self.skip_rest(),
                    });
                }
            }
        }
    }

    /// Passes over the rest of a primitive not understood (up to `and`, `or` or `)`).
    fn skip_rest(&mut self) -> Plan {
        while let Some(t) = self.peek() {
            if matches!(t, "and" | "or" | ")") {
                break;
            }
            if t == "(" {
                // Parentheses inside a primitive (`tcp[13] & (2|16)`): skip to the match.
                let mut depth = 0;
                while let Some(t) = self.next() {
                    match t {
                        "(" => depth += 1,
                        ")" => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                continue;
            }
            self.at += 1;
        }
        self.last = Kind::Other;
        Plan::All
    }
}

fn address(s: &str) -> Option<u64> {
    s.parse::<std::net::IpAddr>().ok().map(keys::addr)
}

/// A protocol qualifier with a host or port: both must hold (an unparsed ID: the protocol
/// alone, or every block).
fn both(proto: Option<Plan>, key: Option<u64>) -> Plan {
    match (proto, key) {
        (Some(p), Some(k)) => Plan::And(vec![p, Plan::Key(k)]),
        (None, Some(k)) => Plan::Key(k),
        (Some(p), None) => p,
        (None, None) => Plan::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Plan {
        Plan::Key(address(s).unwrap())
    }

    #[test]
    fn a_community_id_asks_its_flows_tuples_or_a_later_fragment() {
        let tuple = tracekit_wire::community::FlowTuple {
            src: "192.0.2.1".parse().unwrap(),
            dst: "2001:db8::1".parse().unwrap(),
            protocol: 6,
            ports: Some((1122, 3344)),
        };
        assert_eq!(
            of_flows(&[tuple]),
            Plan::Or(vec![
                Plan::And(vec![
                    host("192.0.2.1"),
                    host("2001:db8::1"),
                    Plan::Key(keys::proto(6)),
                    Plan::Key(keys::port(1122)),
                    Plan::Key(keys::port(3344)),
                ]),
                Plan::Key(keys::FRAGMENT_REST)
            ])
        );
    }

    #[test]
    fn hosts_ports_and_protocols_are_narrowed() {
        assert_eq!(of_filter("host 192.0.2.1"), host("192.0.2.1"));
        assert_eq!(
            of_filter("host 192.0.2.1 and port 443"),
            Plan::And(vec![host("192.0.2.1"), Plan::Key(keys::port(443))])
        );
        assert_eq!(
            of_filter("src host 2001:db8::1 || dst host 192.0.2.7"),
            Plan::Or(vec![host("2001:db8::1"), host("192.0.2.7")])
        );
        assert_eq!(
            of_filter("tcp port 80"),
            Plan::And(vec![Plan::Key(keys::proto(6)), Plan::Key(keys::port(80))])
        );
        assert_eq!(of_filter("udp"), Plan::Key(keys::proto(17)));
        // Inherited qualifiers.
        assert_eq!(
            of_filter("host 192.0.2.1 or 192.0.2.2"),
            Plan::Or(vec![host("192.0.2.1"), host("192.0.2.2")])
        );
        assert_eq!(
            of_filter("port 80 or 443"),
            Plan::Or(vec![Plan::Key(keys::port(80)), Plan::Key(keys::port(443))])
        );
    }

    #[test]
    fn what_cannot_be_narrowed_reads_every_block() {
        for e in [
            "not host 192.0.2.1",
            "net 192.0.2.0/24",
            "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
            "portrange 1-1024",
            "host 192.0.2.1 or net 10.0.0.0/8",
            "ether host 00:11:22:33:44:55",
            "host (",
        ] {
            assert_eq!(of_filter(e), Plan::All, "{e}");
        }
        // And narrows with what it can.
        assert_eq!(
            of_filter("host 192.0.2.1 and tcp[13] & 2 != 0"),
            host("192.0.2.1")
        );
        assert_eq!(
            of_filter("(not udp) and port 53"),
            Plan::Key(keys::port(53))
        );
    }
}
