//! The packet log: the kept packets of every connection, appended in trace order as compact
//! records in chunks, indexed by connection at the end (`Kept`), from which one connection's
//! packets are gathered.

use super::{Pkt, TlsMark};

/// The kept packets of all connections: the log, in trace order, and each connection's places
/// in it. (Sorted into a vector per connection, every packet took memory twice, and fresh
/// memory costs its first touch: 2 ms per MB on this project's machines, as the host backs it.)
#[derive(Default)]
pub(super) struct Kept {
    pub(super) log: Vec<LogChunk>,
    /// Log places by connection, each connection's in trace order: connection `i`'s are
    /// `order[starts[i]..starts[i + 1]]`.
    pub(super) order: Vec<u32>,
    pub(super) starts: Vec<u32>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("packets", &self.order.len())
            .finish_non_exhaustive()
    }
}

/// Log places ahead whose packet is prefetched while a connection's are gathered.
pub(super) const GATHER_AHEAD: usize = 16;

impl Kept {
    pub(super) fn places(&self, conn: usize) -> &[u32] {
        match (self.starts.get(conn), self.starts.get(conn + 1)) {
            (Some(&a), Some(&b)) => &self.order[a as usize..b as usize],
            _ => &[],
        }
    }
    /// The chunk of a place, and the entry's index in it.
    pub(super) fn chunk(&self, place: u32) -> (&LogChunk, usize) {
        let place = place as usize;
        (&self.log[place / LOG_CHUNK], place % LOG_CHUNK)
    }
    pub(super) fn entry(&self, place: u32) -> &Logged {
        let (chunk, k) = self.chunk(place);
        &chunk.entries[k]
    }
    pub(super) fn pkt(&self, place: u32) -> Pkt {
        let (chunk, k) = self.chunk(place);
        chunk.entries[k].pkt(chunk.base)
    }
    /// Connection `conn`'s kept packets, each gathered into `buf` (emptied first).
    pub(super) fn gather(&self, conn: usize, buf: &mut Vec<Pkt>) {
        buf.clear();
        let places = self.places(conn);
        buf.reserve(places.len());
        for (k, &place) in places.iter().enumerate() {
            if let Some(&ahead) = places.get(k + GATHER_AHEAD) {
                // An entry may span two lines.
                tracekit_capture::prefetch_value(self.entry(ahead), 2);
            }
            buf.push(self.pkt(place));
        }
    }
    /// Turns connection `conn`'s kept packets round (client for server); the hash of the
    /// client's first payload among them after that (0: none).
    pub(super) fn turn_round(&mut self, conn: usize) -> u64 {
        let Kept { log, order, starts } = self;
        let (Some(&from), Some(&to)) = (starts.get(conn), starts.get(conn + 1)) else {
            return 0;
        };
        let mut first_client_payload = 0;
        for &place in &order[from as usize..to as usize] {
            let place = place as usize;
            let p = &mut log[place / LOG_CHUNK].entries[place % LOG_CHUNK];
            p.bits ^= LOGGED_FROM_CLIENT;
            if p.bits & LOGGED_FROM_CLIENT != 0 && p.payload != 0 && first_client_payload == 0 {
                first_client_payload = p.payload;
            }
        }
        first_client_payload
    }
}

/// A kept packet, in trace order, with its connection; indexed by connection by
/// [`TableBuilder::finish`]. (Appending costs no cache miss, pushing to each connection's own
/// vector cost one per packet.) A [`Pkt`] in 48 bytes instead of 64: the frame as an offset
/// from its chunk's first, the options and the direction as bits. The log is most of analyze's
/// memory, and fresh memory costs its first touch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Logged {
    pub(super) ts: i64,
    pub(super) payload: u64,
    pub(super) conn: u32,
    /// The frame, less its chunk's `base`.
    pub(super) frame: u32,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) len: u32,
    pub(super) flags: u16,
    pub(super) window: u16,
    pub(super) ip_id: u16,
    pub(super) ttl: u8,
    /// `LOGGED_*` bits, and the ECN codepoint at `LOGGED_ECN_SHIFT`.
    pub(super) bits: u8,
    /// TLS content type, handshake type, alert level and description.
    pub(super) tls: [u8; 4],
}

const LOGGED_FROM_CLIENT: u8 = 1;
const LOGGED_IP_ID: u8 = 2;
const LOGGED_ECN_SHIFT: u8 = 2;
const LOGGED_TLS: u8 = 16;
const LOGGED_HANDSHAKE: u8 = 32;
const LOGGED_ALERT: u8 = 64;

impl Logged {
    /// `pkt` of connection `conn`, in a chunk whose frames start at `base` (at most
    /// `u32::MAX` below `pkt.frame`).
    pub(super) fn new(pkt: &Pkt, conn: u32, base: u64) -> Self {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        let tls = pkt.tls.unwrap_or(TlsMark {
            content: 0,
            handshake: None,
            alert: None,
        });
        let (level, description) = tls.alert.unwrap_or_default();
        Logged {
            ts: pkt.ts,
            payload: pkt.payload,
            conn,
            frame: (pkt.frame - base) as u32,
            seq: pkt.seq,
            ack: pkt.ack,
            len: pkt.len,
            flags: pkt.flags,
            window: pkt.window,
            ip_id: pkt.ip_id.unwrap_or(0),
            ttl: pkt.ttl,
            bits: bit(pkt.from_client, LOGGED_FROM_CLIENT)
                | bit(pkt.ip_id.is_some(), LOGGED_IP_ID)
                | (pkt.ecn & 3) << LOGGED_ECN_SHIFT
                | bit(pkt.tls.is_some(), LOGGED_TLS)
                | bit(tls.handshake.is_some(), LOGGED_HANDSHAKE)
                | bit(tls.alert.is_some(), LOGGED_ALERT),
            tls: [tls.content, tls.handshake.unwrap_or(0), level, description],
        }
    }

    /// The packet, in a chunk whose frames start at `base`.
    pub(super) fn pkt(&self, base: u64) -> Pkt {
        let has = |b: u8| self.bits & b != 0;
        Pkt {
            frame: base + u64::from(self.frame),
            ts: self.ts,
            from_client: has(LOGGED_FROM_CLIENT),
            flags: self.flags,
            seq: self.seq,
            ack: self.ack,
            len: self.len,
            ttl: self.ttl,
            ip_id: has(LOGGED_IP_ID).then_some(self.ip_id),
            ecn: (self.bits >> LOGGED_ECN_SHIFT) & 3,
            window: self.window,
            tls: has(LOGGED_TLS).then_some(TlsMark {
                content: self.tls[0],
                handshake: has(LOGGED_HANDSHAKE).then_some(self.tls[1]),
                alert: has(LOGGED_ALERT).then_some((self.tls[2], self.tls[3])),
            }),
            payload: self.payload,
        }
    }
}

/// Log entries whose frames lie within `u32::MAX` of the chunk's `base` (2^31 before its first
/// entry's frame, or 0).
#[derive(Debug)]
pub(super) struct LogChunk {
    pub(super) base: u64,
    pub(super) entries: Vec<Logged>,
}

/// Log entries per chunk (the log grows without copying; a chunk may hold fewer, when frames
/// run past its `base` + `u32::MAX`).
pub(super) const LOG_CHUNK: usize = 1 << 16;
/// Chunks at most: places are `u32`. Packets past them are counted, not kept.
const LOG_CHUNKS: usize = (u32::MAX as usize + 1) / LOG_CHUNK;

/// Appends packet `pkt` of connection `conn` to the log, in a new chunk when the last is full
/// or its frames would run past its `u32` offsets (or back before its first); false when the
/// log has no room left.
#[allow(clippy::inline_always)] // one pipeline with add_batch: see there
#[inline(always)]
pub(super) fn log_push(log: &mut Vec<LogChunk>, pkt: &Pkt, conn: u32) -> bool {
    let fits = |c: &LogChunk| {
        c.entries.len() < LOG_CHUNK
            && pkt
                .frame
                .checked_sub(c.base)
                .is_some_and(|d| u32::try_from(d).is_ok())
    };
    if !log.last().is_some_and(fits) {
        if log.len() == LOG_CHUNKS {
            return false;
        }
        // Frames a little before the first fit too: a connection kept as a single has its
        // packet logged when its second comes (see single.rs).
        log.push(LogChunk {
            base: pkt.frame.saturating_sub(1 << 31),
            entries: Vec::with_capacity(LOG_CHUNK),
        });
    }
    let chunk = log.last_mut().expect("pushed above");
    chunk.entries.push(Logged::new(pkt, conn, chunk.base));
    true
}

/// Gives `v` room for `cap` elements in a fresh block, when it can be had, and moves the
/// elements over. (Not `Vec::try_reserve`: a reallocation copies the whole old block, its unused
/// room included, and a generous earlier reservation, never touched until then, was copied into
/// fresh pages of the new one: 145 MB per trace of the bench's 1 GB pair, a fifth of its time.)
pub(super) fn regrow<T>(v: &mut Vec<T>, cap: usize) {
    let mut fresh = Vec::new();
    if fresh.try_reserve_exact(cap).is_ok() {
        fresh.append(v);
        *v = fresh;
    }
}
