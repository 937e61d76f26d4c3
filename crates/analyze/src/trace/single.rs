//! Connections seen in one packet so far, kept as that packet's bytes.
//!
//! A port scan or a SYN flood is a million connections of one packet each, and a full
//! connection record ([`Conn`](super::Conn) with its per-packet part and its log entry) is
//! about 800 bytes. A connection whose first packet is a bare SYN, FIN or RST (no payload) is
//! kept as that packet instead: its captured bytes and where it was, about 100 bytes. Its
//! second packet makes it a full connection by recording the first through the same code as
//! any packet (`record` in build.rs), and a table that still holds it after the trace makes
//! its `Conn` the same way whenever it is asked for one, so there is one implementation of
//! what a packet means. (A control packet is always kept in the packet log, so recording it
//! later than it came changes nothing: it takes none of the trace's room for ordinary
//! packets.)
//!
//! Singles are for traffic where most connections stay at one packet. Where nearly every SYN
//! is answered, each single is soon made a connection in full, its packet dissected and
//! recorded a second time: on two 1 GB traces of ordinary traffic that took 7 % of `analyze`'s
//! time and saved no memory that mattered. So a connection is opened as a single while fewer
//! than half of the recent singles got a second packet, and otherwise only one in
//! [`SAMPLE`], to notice when the traffic turns into a scan (see [`Admission`]).

/// Packets of at most this many captured bytes can be kept as a single: a SYN with its usual
/// options is 74 bytes on Ethernet, 94 over IPv6.
pub(super) const SINGLE_BYTES: usize = 255;

/// Bytes before a single's packet: frame, time, link type, where its IP and TCP headers start,
/// length and bits.
const HEADER: usize = 22;
/// The roles of the connection the single opened: whether its client is the packet's
/// source, and whether the roles are known (see `Conn::roles_known`).
const CLIENT_IS_SRC: u8 = 1;
const ROLES_KNOWN: u8 = 2;
/// The single has become a connection in full, whose index replaces its frame.
const PROMOTED: u8 = 4;
/// Its IP header is IPv6.
const V6: u8 = 8;

/// Singles one after the other, each at an 8-byte boundary (places count 8-byte units, so
/// that a `u32` place, less the tag bit the table sets apart, reaches 16 GB).
#[derive(Default)]
pub(super) struct Singles {
    bytes: Vec<u8>,
    admission: Admission,
}

/// Outside a scan, one connection that could be a single in this many is opened as one, so
/// that the share of singles that get a second packet stays measured.
pub(super) const SAMPLE: u32 = 16;
/// The recent singles the share is taken over: at this many, both counts are halved.
const WINDOW: u32 = 1024;

/// Whether the next connection that can be a single is opened as one: from the singles
/// opened and made full recently (a count that decays by halves), so the choice follows the
/// traffic within a few thousand connections. It depends on the packets alone, never on
/// timing, and either choice gives the same connection (tested in trace/tests.rs).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Admission {
    opened: u32,
    promoted: u32,
    asked: u32,
}

impl Admission {
    /// Asked once per connection that can be a single: whether it is opened as one.
    pub(super) fn admits(&mut self) -> bool {
        let sampled = self.asked.is_multiple_of(SAMPLE);
        self.asked = self.asked.wrapping_add(1);
        sampled || self.promoted * 2 < self.opened
    }

    fn opened(&mut self) {
        self.opened += 1;
        if self.opened == WINDOW {
            self.opened /= 2;
            self.promoted /= 2;
        }
    }

    /// (Singles opened before a halving can be made full after it: the count stays at most
    /// the singles it is a share of.)
    fn promoted(&mut self) {
        self.promoted = (self.promoted + 1).min(self.opened);
    }
}

impl std::fmt::Debug for Singles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Singles")
            .field("bytes", &self.bytes.len())
            .field("capacity", &self.bytes.capacity())
            .field("admission", &self.admission)
            .finish()
    }
}

/// A connection kept as its one packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Single<'a> {
    pub(super) frame: u64,
    pub(super) ts: i64,
    pub(super) link: u16,
    /// Where its IP header (the one that carries TCP) and its TCP header start in `data`.
    pub(super) ip_at: u8,
    pub(super) tcp_at: u8,
    pub(super) v6: bool,
    pub(super) client_is_src: bool,
    pub(super) roles_known: bool,
    pub(super) data: &'a [u8],
}

/// Places stop below this: the table tags singles with this bit.
pub(super) const PLACES: u32 = 1 << 31;

impl Singles {
    /// Whether a connection that can be a single is opened as one (see [`Admission`]).
    pub(super) fn admits(&mut self) -> bool {
        self.admission.admits()
    }

    /// Appends a single; its place, or `None` when its packet is longer than [`SINGLE_BYTES`]
    /// or the places have run out.
    pub(super) fn push(&mut self, s: &Single<'_>) -> Option<u32> {
        let len = u8::try_from(s.data.len()).ok()?;
        let place = u32::try_from(self.bytes.len() / 8)
            .ok()
            .filter(|&p| p < PLACES)?;
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        let bits =
            bit(s.client_is_src, CLIENT_IS_SRC) | bit(s.roles_known, ROLES_KNOWN) | bit(s.v6, V6);
        self.bytes.extend_from_slice(&s.frame.to_le_bytes());
        self.bytes.extend_from_slice(&s.ts.to_le_bytes());
        self.bytes.extend_from_slice(&s.link.to_le_bytes());
        self.bytes
            .extend_from_slice(&[s.ip_at, s.tcp_at, len, bits]);
        self.bytes.extend_from_slice(s.data);
        let padded = self.bytes.len().next_multiple_of(8);
        self.bytes.resize(padded, 0);
        self.admission.opened();
        Some(place)
    }

    /// The single at `place` (one [`Singles::push`] gave).
    pub(super) fn get(&self, place: u32) -> Single<'_> {
        let at = place as usize * 8;
        let h = &self.bytes[at..at + HEADER];
        let word = |from: usize| u64::from_le_bytes(h[from..from + 8].try_into().expect("8"));
        let (len, bits) = (usize::from(h[20]), h[21]);
        Single {
            frame: word(0),
            ts: word(8) as i64,
            link: u16::from_le_bytes([h[16], h[17]]),
            ip_at: h[18],
            tcp_at: h[19],
            v6: bits & V6 != 0,
            client_is_src: bits & CLIENT_IS_SRC != 0,
            roles_known: bits & ROLES_KNOWN != 0,
            data: &self.bytes[at + HEADER..at + HEADER + len],
        }
    }

    /// Marks the single at `place` as become connection `full` (in full): it is not read
    /// again, and [`Singles::promoted`] tells the table where the connection went.
    pub(super) fn promote(&mut self, place: u32, full: u32) {
        let at = place as usize * 8;
        self.bytes[at..at + 4].copy_from_slice(&full.to_le_bytes());
        self.bytes[at + HEADER - 1] |= PROMOTED;
        self.admission.promoted();
    }

    /// The connection in full that the single at `place` became, if it did.
    pub(super) fn promoted(&self, place: u32) -> Option<u32> {
        let at = place as usize * 8;
        (self.bytes[at + HEADER - 1] & PROMOTED != 0)
            .then(|| u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4")))
    }

    /// Starts loading the single at `place`: its header and packet, two cache lines.
    pub(super) fn prefetch(&self, place: u32) {
        for line in [0, 64] {
            if let Some(b) = self.bytes.get(place as usize * 8 + line) {
                tracekit_capture::prefetch_value(b, 1);
            }
        }
    }

    /// Room for `bytes` more, in a fresh block when it can be had (see `regrow`).
    pub(super) fn expect(&mut self, bytes: usize) {
        if bytes > self.bytes.capacity() {
            super::log::regrow(&mut self.bytes, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_reads_back_as_it_was_kept_and_one_too_long_is_refused() {
        let mut singles = Singles::default();
        let data: Vec<u8> = (0..=200u8).collect();
        let mut places = Vec::new();
        for n in [0usize, 1, 7, 8, 9, 74, 201] {
            let s = Single {
                frame: 1 << 40 | n as u64,
                ts: -5 - n as i64,
                link: 228,
                ip_at: n as u8,
                tcp_at: (n / 2) as u8,
                v6: n % 4 == 1,
                client_is_src: n % 2 == 0,
                roles_known: n % 3 == 0,
                data: &data[..n],
            };
            places.push((singles.push(&s).expect("room"), n));
        }
        for (place, n) in places {
            let s = singles.get(place);
            assert_eq!(
                (s.frame, s.ts, s.link, s.ip_at, s.tcp_at, s.v6),
                (
                    1 << 40 | n as u64,
                    -5 - n as i64,
                    228,
                    n as u8,
                    (n / 2) as u8,
                    n % 4 == 1
                )
            );
            assert_eq!((s.client_is_src, s.roles_known), (n % 2 == 0, n % 3 == 0));
            assert_eq!(s.data, &data[..n]);
            assert_eq!(singles.promoted(place), None);
            singles.promote(place, 7 * n as u32);
            assert_eq!(singles.promoted(place), Some(7 * n as u32));
        }
        let long = vec![0u8; SINGLE_BYTES + 1];
        let s = Single {
            data: &long,
            ..singles.get(0)
        };
        assert!(singles.push(&s).is_none());
        assert_eq!(singles.bytes.len() % 8, 0);
    }

    /// Opens `n` connections that could be singles; the `k`th opened as a single is made
    /// full when `answered(k)`. How many were opened as singles.
    fn open(a: &mut Admission, n: u32, answered: impl Fn(u32) -> bool) -> u32 {
        let mut singles = 0;
        for _ in 0..n {
            if a.admits() {
                a.opened();
                if answered(singles) {
                    a.promoted();
                }
                singles += 1;
            }
        }
        singles
    }

    #[test]
    fn singles_are_taken_in_a_scan_and_sampled_where_connections_are_answered() {
        let mut a = Admission::default();
        // A scan: every connection a single.
        assert_eq!(open(&mut a, 100_000, |_| false), 100_000);
        // Ordinary traffic after it: within a window of singles, one in SAMPLE.
        let settle = open(&mut a, 2 * WINDOW, |_| true);
        assert!(settle < 2 * WINDOW, "{settle}");
        assert_eq!(open(&mut a, 160_000, |_| true), 160_000 / SAMPLE);
        // A third answered (under half of the singles made full): singles again, soon.
        let after = open(&mut a, 40 * SAMPLE * WINDOW, |k| k % 3 == 0);
        assert!(after > 30 * WINDOW * SAMPLE, "{after}");
        // A scan that starts in ordinary traffic is noticed within a few thousand
        // connections: from then on, every connection is a single.
        open(&mut a, 100_000, |_| true);
        open(&mut a, 2 * SAMPLE * WINDOW, |_| false);
        assert_eq!(open(&mut a, 50_000, |_| false), 50_000);
    }
}
