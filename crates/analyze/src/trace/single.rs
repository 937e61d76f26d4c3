//! Connections seen in a few control packets so far, kept as those packets' bytes.
//!
//! A port scan or a SYN flood is a million connections of one packet each (a scan of closed
//! ports: a SYN and its RST; of open ones: a SYN, its SYN/ACK and the scanner's RST), and a
//! full connection record ([`Conn`](super::Conn) with its per-packet part and its log entry)
//! is about 800 bytes. A connection whose first packet is a bare SYN, FIN or RST (no payload)
//! is kept as that packet instead: its captured bytes and where it was, about 100 bytes; up
//! to [`HELD`] such packets are kept so, each after the one before. Its first other packet
//! (one with payload, or a plain ACK) makes it a full connection by recording the ones kept
//! through the same code as any packet (`record` in build.rs), and a table that still holds
//! it after the trace makes its `Conn` the same way whenever it is asked for one, so there is
//! one implementation of what a packet means. (A control packet is always kept in the packet
//! log, so recording it later than it came changes nothing: it takes none of the trace's room
//! for ordinary packets.)
//!
//! Singles are for traffic where most connections never carry data. Where nearly every SYN
//! is answered, each single is soon made a connection in full, its packet dissected and
//! recorded a second time: on two 1 GB traces of ordinary traffic that took 7 % of `analyze`'s
//! time and saved no memory that mattered. So a connection is opened as a single while
//! singles mostly stay unanswered, and otherwise only one in [`SAMPLE`], to notice when the
//! traffic turns into a scan (see [`Admission`]).

/// Packets of at most this many captured bytes can be kept as a single: a SYN with its usual
/// options is 74 bytes on Ethernet, 94 over IPv6.
pub(super) const SINGLE_BYTES: usize = 255;

/// Control packets a single holds at most: its fifth makes it a connection in full.
pub(super) const HELD: usize = 4;

/// Bytes before a single's packet: its frame (40 bits), time, link type, where its IP header
/// starts (its TCP header is found from it), its length, bits, and the place of the
/// connection's next packet (or [`NO_NEXT`]). (22 bytes: with a 74-byte SYN, 96 in all; one
/// more would take 104.)
const HEADER: usize = 22;
const TS_AT: usize = 5;
const LINK_AT: usize = 13;
const IP_AT: usize = 15;
const LEN_AT: usize = 16;
const BITS_AT: usize = 17;
const NEXT_AT: usize = 18;
const NO_NEXT: u32 = u32::MAX;
/// Frames stop below this (a trillion packets; a later one opens a connection in full).
const FRAMES: u64 = 1 << 40;
/// The roles of the connection the single opened: whether its client is the packet's
/// source, and whether the roles are known (see `Conn::roles_known`).
const CLIENT_IS_SRC: u8 = 1;
const ROLES_KNOWN: u8 = 2;
/// The single has become a connection in full, whose index replaces its frame (set on the
/// first of its packets only).
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
/// that what becomes of singles stays measured.
pub(super) const SAMPLE: u32 = 16;
/// The recent judgements the choice is taken from: at this many, both counts are halved.
const WINDOW: u32 = 1024;
/// A single not made full this long (trace time, nanoseconds) after it was opened counts as
/// unanswered: longer than a round trip, so that a connection's third packet has come.
const AGE: i64 = 2_000_000_000;
/// Singles waiting for their judgement at most (beyond, the oldest is judged early: 12 MB).
const PENDING: usize = 1 << 20;

/// Whether the next connection that can be a single is opened as one: a single counts as
/// answered when it is made full, as unanswered when [`AGE`] has passed without that (so the
/// time a connection takes to be answered, however many connections open meanwhile, does
/// not count against it). Singles are taken while unanswered ones are at least as many as
/// answered ones among the recent judgements (a count that decays by halves), from the
/// start, and one in [`SAMPLE`] otherwise. (Answers count when they come, silence only after
/// [`AGE`]: where both are common the choice swings between the two.) It depends on the
/// packets alone, never on timing, and either choice gives the same connection (tested in
/// trace/tests.rs).
#[derive(Debug, Default)]
pub(super) struct Admission {
    answered: u32,
    unanswered: u32,
    asked: u32,
    /// The latest packet time seen.
    now: i64,
    /// Singles not yet judged: their time and place, oldest first.
    pending: std::collections::VecDeque<(i64, u32)>,
}

impl Admission {
    /// Asked once per connection that can be a single, with its packet's time: whether it is
    /// opened as one. `made_full` tells whether the single at a place was made full.
    pub(super) fn admits(&mut self, ts: i64, made_full: impl Fn(u32) -> bool) -> bool {
        self.now = self.now.max(ts);
        while let Some(&(t, place)) = self.pending.front() {
            if t > self.now.saturating_sub(AGE) && self.pending.len() <= PENDING {
                break;
            }
            self.pending.pop_front();
            if !made_full(place) {
                self.count(false);
            }
        }
        let sampled = self.asked.is_multiple_of(SAMPLE);
        self.asked = self.asked.wrapping_add(1);
        sampled || self.unanswered >= self.answered
    }

    fn opened(&mut self, ts: i64, place: u32) {
        self.pending.push_back((ts, place));
    }

    fn made_full(&mut self) {
        self.count(true);
    }

    fn count(&mut self, answered: bool) {
        if answered {
            self.answered += 1;
        } else {
            self.unanswered += 1;
        }
        if self.answered + self.unanswered >= WINDOW {
            self.answered /= 2;
            self.unanswered /= 2;
        }
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

/// A packet of a connection kept as its control packets.
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

/// Where the TCP header of a packet whose IP header starts at `ip_at` starts: after an IPv4
/// header's options, or right after an IPv6 header (a packet with extension headers is not
/// kept as a single).
fn tcp_at(data: &[u8], ip_at: u8, v6: bool) -> Option<u8> {
    let at = usize::from(ip_at);
    let len = if v6 {
        (*data.get(at + 6)? == 6).then_some(40)?
    } else {
        usize::from(data.get(at)? & 0x0f) * 4
    };
    u8::try_from(at + len).ok()
}

/// Whether the single at `place` in `bytes` (the singles') was made a connection in full.
fn made_full(bytes: &[u8], place: u32) -> bool {
    bytes[place as usize * 8 + BITS_AT] & PROMOTED != 0
}

/// Places stop below this: the table tags singles with this bit.
pub(super) const PLACES: u32 = 1 << 31;

/// The packets of the single at a place, in the order they came.
pub(super) struct Chain<'s> {
    singles: &'s Singles,
    next: Option<u32>,
}

impl<'s> Iterator for Chain<'s> {
    type Item = (u32, Single<'s>);

    fn next(&mut self) -> Option<Self::Item> {
        let place = self.next?;
        self.next = self.singles.next_of(place);
        Some((place, self.singles.get(place)))
    }
}

impl Singles {
    /// Whether a connection that can be a single, its packet seen at `ts`, is opened as one
    /// (see [`Admission`]).
    pub(super) fn admits(&mut self, ts: i64) -> bool {
        let bytes = &self.bytes;
        self.admission.admits(ts, |place| made_full(bytes, place))
    }

    /// Appends a single; its place, or `None` when its packet is longer than [`SINGLE_BYTES`]
    /// or the places have run out.
    pub(super) fn push(&mut self, s: &Single<'_>) -> Option<u32> {
        let place = self.put(s)?;
        self.admission.opened(s.ts, place);
        Some(place)
    }

    /// Adds packet `s` to the single at `first` (a place [`Singles::push`] gave), after its
    /// others; false when the single holds [`HELD`] packets already, or the packet cannot be
    /// kept (then the single is made a connection in full).
    pub(super) fn add(&mut self, first: u32, s: &Single<'_>) -> bool {
        let Some((n, (last, _))) = self.chain(first).enumerate().last() else {
            return false;
        };
        if n + 1 >= HELD {
            return false;
        }
        let Some(place) = self.put(s) else {
            return false;
        };
        let at = last as usize * 8 + NEXT_AT;
        self.bytes[at..at + 4].copy_from_slice(&place.to_le_bytes());
        true
    }

    /// The packets of the single at `first`, in the order they came, each with its place.
    pub(super) fn chain(&self, first: u32) -> Chain<'_> {
        Chain {
            singles: self,
            next: Some(first),
        }
    }

    fn next_of(&self, place: u32) -> Option<u32> {
        let at = place as usize * 8 + NEXT_AT;
        let next = u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4"));
        (next != NO_NEXT).then_some(next)
    }

    /// Appends a packet: its place; `None` when it cannot be kept so (see [`HEADER`] and
    /// [`tcp_at`]).
    fn put(&mut self, s: &Single<'_>) -> Option<u32> {
        let len = u8::try_from(s.data.len()).ok()?;
        let place = u32::try_from(self.bytes.len() / 8)
            .ok()
            .filter(|&p| p < PLACES)?;
        if s.frame >= FRAMES || tcp_at(s.data, s.ip_at, s.v6) != Some(s.tcp_at) {
            return None;
        }
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        let bits =
            bit(s.client_is_src, CLIENT_IS_SRC) | bit(s.roles_known, ROLES_KNOWN) | bit(s.v6, V6);
        self.bytes
            .extend_from_slice(&s.frame.to_le_bytes()[..TS_AT]);
        self.bytes.extend_from_slice(&s.ts.to_le_bytes());
        self.bytes.extend_from_slice(&s.link.to_le_bytes());
        self.bytes.extend_from_slice(&[s.ip_at, len, bits]);
        self.bytes.extend_from_slice(&NO_NEXT.to_le_bytes());
        self.bytes.extend_from_slice(s.data);
        let padded = self.bytes.len().next_multiple_of(8);
        self.bytes.resize(padded, 0);
        Some(place)
    }

    /// The single at `place` (one [`Singles::push`] gave).
    pub(super) fn get(&self, place: u32) -> Single<'_> {
        let at = place as usize * 8;
        let h = &self.bytes[at..at + HEADER];
        let mut frame = [0u8; 8];
        frame[..TS_AT].copy_from_slice(&h[..TS_AT]);
        let (len, bits) = (usize::from(h[LEN_AT]), h[BITS_AT]);
        let (ip_at, v6) = (h[IP_AT], bits & V6 != 0);
        let data = &self.bytes[at + HEADER..at + HEADER + len];
        Single {
            frame: u64::from_le_bytes(frame),
            ts: i64::from_le_bytes(h[TS_AT..LINK_AT].try_into().expect("8")),
            link: u16::from_le_bytes([h[LINK_AT], h[LINK_AT + 1]]),
            ip_at,
            tcp_at: tcp_at(data, ip_at, v6).expect("checked when it was kept"),
            v6,
            client_is_src: bits & CLIENT_IS_SRC != 0,
            roles_known: bits & ROLES_KNOWN != 0,
            data,
        }
    }

    /// Marks the single at `place` as become connection `full` (in full): it is not read
    /// again, and [`Singles::promoted`] tells the table where the connection went.
    pub(super) fn promote(&mut self, place: u32, full: u32) {
        let at = place as usize * 8;
        self.bytes[at..at + 4].copy_from_slice(&full.to_le_bytes());
        self.bytes[at + BITS_AT] |= PROMOTED;
        self.admission.made_full();
    }

    /// The connection in full that the single at `place` became, if it did.
    pub(super) fn promoted(&self, place: u32) -> Option<u32> {
        let at = place as usize * 8;
        made_full(&self.bytes, place)
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
    fn a_single_reads_back_as_it_was_kept_and_one_it_cannot_hold_is_refused() {
        // A packet of `len` bytes whose IP header (version `v`, with `options` words of IPv4
        // options) starts at `ip_at`: where its TCP header starts.
        let packet = |len: usize, ip_at: usize, v: u8, options: u8| -> (Vec<u8>, u8) {
            let mut d: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            if v == 6 {
                d[ip_at] = 0x60;
                d[ip_at + 6] = 6;
                (d, (ip_at + 40) as u8)
            } else {
                d[ip_at] = 0x45 + options;
                (d, (ip_at + 20 + 4 * usize::from(options)) as u8)
            }
        };
        let mut singles = Singles::default();
        let mut kept = Vec::new();
        for (n, (len, ip_at, v, options)) in [
            (54, 14, 4, 0),
            (74, 14, 4, 0),
            (66, 16, 4, 3),
            (94, 14, 6, 0),
            (60, 4, 6, 0),
            (255, 14, 4, 10),
        ]
        .into_iter()
        .enumerate()
        {
            let (data, tcp_at) = packet(len, ip_at, v, options);
            let s = Single {
                frame: (FRAMES - 1) >> n,
                ts: -5 - n as i64,
                link: 228 + n as u16,
                ip_at: ip_at as u8,
                tcp_at,
                v6: v == 6,
                client_is_src: n % 2 == 0,
                roles_known: n % 3 == 0,
                data: &data,
            };
            let place = singles.push(&s).expect("room");
            kept.push((place, n, data, tcp_at));
        }
        for (place, n, data, tcp_at) in kept {
            let s = singles.get(place);
            assert_eq!(
                (s.frame, s.ts, s.link, s.tcp_at),
                ((FRAMES - 1) >> n, -5 - n as i64, 228 + n as u16, tcp_at)
            );
            assert_eq!((s.client_is_src, s.roles_known), (n % 2 == 0, n % 3 == 0));
            assert_eq!(s.data, &data[..]);
            assert_eq!(singles.promoted(place), None);
            singles.promote(place, 7 * n as u32);
            assert_eq!(singles.promoted(place), Some(7 * n as u32));
        }
        // Refused: too long, a frame past 2^40, IPv6 extension headers, a TCP header that is
        // not where the IP header says.
        let (long, _) = packet(SINGLE_BYTES + 1, 14, 4, 0);
        let (mut ext, _) = packet(94, 14, 6, 0);
        ext[20] = 0;
        let (fine, tcp_at) = packet(54, 14, 4, 0);
        let at = Single {
            frame: 1,
            ts: 0,
            link: 1,
            ip_at: 14,
            tcp_at,
            v6: false,
            client_is_src: true,
            roles_known: true,
            data: &fine,
        };
        for s in [
            Single { data: &long, ..at },
            Single {
                frame: FRAMES,
                ..at
            },
            Single {
                data: &ext,
                v6: true,
                tcp_at: 54,
                ..at
            },
            Single { tcp_at: 35, ..at },
        ] {
            assert!(singles.push(&s).is_none());
        }
        assert!(singles.push(&at).is_some());
        assert_eq!(singles.bytes.len() % 8, 0);
    }

    #[test]
    fn a_single_takes_packets_after_its_first_up_to_what_it_holds() {
        let mut singles = Singles::default();
        let mut data: Vec<u8> = (0..=255u8).collect();
        data[14] = 0x45;
        let packet = |n: usize| Single {
            frame: n as u64,
            ts: n as i64,
            link: 1,
            ip_at: 14,
            tcp_at: 34,
            v6: false,
            client_is_src: true,
            roles_known: true,
            data: &data[..60 + n],
        };
        let a = singles.push(&packet(0)).expect("room");
        let b = singles.push(&packet(100)).expect("room");
        assert_eq!(singles.chain(a).count(), 1);
        for n in 1..HELD {
            assert!(singles.add(a, &packet(n)), "{n}");
            assert!(singles.add(b, &packet(100 + n)), "{n}");
        }
        assert!(
            !singles.add(a, &packet(HELD)),
            "a single holds {HELD} packets"
        );
        let frames: Vec<u64> = singles.chain(a).map(|(_, s)| s.frame).collect();
        assert_eq!(frames, (0..HELD as u64).collect::<Vec<_>>());
        for (_, s) in singles.chain(a) {
            assert_eq!(s.data, &data[..60 + s.frame as usize]);
        }

        assert_eq!(singles.chain(b).count(), HELD);
        // Made full, its first packet says where it went; the others are left as they are.
        singles.promote(a, 7);
        assert_eq!(singles.promoted(a), Some(7));
        assert_eq!(singles.chain(b).next().map(|(p, _)| p), Some(b));
    }

    /// Connections that could be singles, opened through an [`Admission`].
    #[derive(Default)]
    struct Traffic {
        a: Admission,
        t: i64,
        full: std::collections::HashSet<u32>,
        /// Singles to be made full: when, and their place.
        due: std::collections::VecDeque<(i64, u32)>,
        places: u32,
    }

    impl Traffic {
        /// Opens `n` connections, one every `gap` nanoseconds; each opened as a single is made
        /// full (when `answered` says so of its number among these) 100 ms later, when its
        /// third packet comes. How many were singles.
        fn open(&mut self, gap: i64, n: u32, answered: impl Fn(u32) -> bool) -> u32 {
            let mut singles = 0;
            for _ in 0..n {
                self.t += gap;
                while self.due.front().is_some_and(|&(at, _)| at <= self.t) {
                    let (_, place) = self.due.pop_front().expect("checked");
                    self.full.insert(place);
                    self.a.made_full();
                }
                let full = &self.full;
                if self.a.admits(self.t, |p| full.contains(&p)) {
                    self.places += 1;
                    self.a.opened(self.t, self.places);
                    if answered(singles) {
                        self.due.push_back((self.t + 100_000_000, self.places));
                    }
                    singles += 1;
                }
            }
            singles
        }
    }

    #[test]
    fn singles_are_taken_in_a_scan_and_sampled_where_connections_are_answered() {
        // 100,000 connections a second.
        const GAP: i64 = 10_000;
        let mut traffic = Traffic::default();
        // A scan from the start: every connection a single.
        assert_eq!(traffic.open(GAP, 300_000, |_| false), 300_000);
        // Ordinary traffic after it, each answered within 100 ms: within a few seconds (the
        // scan's singles are judged two seconds after they came), one in SAMPLE.
        let settle = traffic.open(GAP, 500_000, |_| true);
        assert!(settle < 500_000, "{settle}");
        assert_eq!(traffic.open(GAP, 160_000, |_| true), 160_000 / SAMPLE);
        // A third answered: singles much more often than the samples (answers are counted
        // when they come, silence two seconds later, so the choice swings between the two).
        let after = traffic.open(GAP, 1_000_000, |k| k % 3 == 0);
        assert!(after > 200_000, "{after}");
        // A scan that starts in ordinary traffic is noticed within a few seconds: from then
        // on, every connection is a single.
        traffic.open(GAP, 500_000, |_| true);
        traffic.open(GAP, 500_000, |_| false);
        assert_eq!(traffic.open(GAP, 50_000, |_| false), 50_000);
        // Ordinary traffic whose answers come after 2,000 other connections have opened
        // (20,000 a second, answered in 100 ms) is not taken for a scan.
        traffic.open(5 * GAP, 500_000, |_| true);
        assert_eq!(traffic.open(5 * GAP, 160_000, |_| true), 160_000 / SAMPLE);
    }
}
