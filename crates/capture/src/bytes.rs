//! Endian-aware integer reads from slices whose length the caller has already checked.
#![allow(clippy::inline_always)] // four-byte reads on the per-record path: a call costs more than the read

#[inline(always)]
pub(crate) fn u16_at(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big_endian {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

#[inline(always)]
pub(crate) fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

#[inline(always)]
pub(crate) fn u64_at(b: &[u8], at: usize, big_endian: bool) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    if big_endian {
        u64::from_be_bytes(v)
    } else {
        u64::from_le_bytes(v)
    }
}

/// Rounds a length up to the next multiple of 4 (pcapng padding).
#[inline(always)]
pub(crate) fn pad4(n: usize) -> usize {
    (n + 3) & !3
}
