//! The Internet checksum (RFC 1071): full computation, pseudo-headers, and the incremental
//! update of RFC 1624 for packets cut by the snap length, whose payload is not all there.

/// Ones'-complement sum of `data` as big-endian 16-bit words, not yet folded.
#[must_use]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four words at a time; the carries pile up in the high bits and are folded below.
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit sum to 16 bits.
#[must_use]
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum of `data` (the value to store in the header).
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Combines partial sums.
#[must_use]
pub fn combine(sums: &[u32]) -> u32 {
    let total: u64 = sums.iter().map(|&s| u64::from(s)).sum();
    fold64(total)
}

fn fold64(mut s: u64) -> u32 {
    while s > 0xffff_ffff {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s as u32
}

/// Sum of the IPv4 pseudo-header for TCP/UDP checksums.
#[must_use]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, length: u16) -> u32 {
    combine(&[sum(src), sum(dst), u32::from(protocol), u32::from(length)])
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
#[must_use]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, length: u32) -> u32 {
    combine(&[
        sum(src),
        sum(dst),
        length >> 16,
        length & 0xffff,
        u32::from(next_header),
    ])
}

/// RFC 1624 eqn. 3: the new checksum after the 16-bit-aligned bytes `old` became `new`
/// (equal even lengths), without touching the rest of the packet.
#[must_use]
pub fn update(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    debug_assert!(old.len().is_multiple_of(2));
    // ~C' = ~C + ~m + m'; summing ~m word by word equals the complement of the folded sum.
    let not_old = u32::from(!fold(sum(old)));
    let s = u32::from(!checksum) + not_old + sum(new);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header of RFC 1071's usual example, checked in Wireshark: checksum 0xb861.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn full_checksum_matches_the_known_value() {
        assert_eq!(checksum(&HEADER), 0xb861);
        let mut h = HEADER;
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0, "a correct header sums to zero");
    }

    #[test]
    fn odd_lengths_pad_with_a_zero_byte() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(
            sum(&[0xff; 1001]),
            sum(&[&[0xffu8; 1001][..], &[0][..]].concat())
        );
    }

    #[test]
    fn incremental_update_equals_recomputation() {
        let mut h = HEADER;
        let c = checksum(&h);
        let old = [h[12], h[13], h[14], h[15]];
        let new = [198, 51, 100, 7];
        h[12..16].copy_from_slice(&new);
        assert_eq!(update(c, &old, &new), checksum(&h));
        // TTL/protocol word.
        let (old, new) = ([h[8], h[9]], [0x3f, h[9]]);
        let c = checksum(&h);
        h[8] = 0x3f;
        assert_eq!(update(c, &old, &new), checksum(&h));
    }
}
