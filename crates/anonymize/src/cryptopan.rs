//! Crypto-PAn (Xu, Fan, Ammar, Moon 2002): prefix-preserving address anonymization keyed by
//! 32 bytes, AES-128 key first and pad secret second, as in the reference implementation, so a
//! key maps addresses exactly as other Crypto-PAn tools do (checked against the published
//! sample vectors). IPv6 uses the same construction over 128 bits, as the common
//! implementations do.
//!
//! Bit `i` of the output is bit `i` of the input XOR the first bit of AES(first `i` input bits
//! followed by the pad's remaining bits): two addresses sharing a prefix of `k` bits map to two
//! sharing exactly `k` bits. 32 (IPv4) or 128 (IPv6) AES blocks per address, so callers cache.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};

/// A Crypto-PAn instance.
#[derive(Clone)]
pub struct CryptoPan {
    aes: Aes128,
    pad: [u8; 16],
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoPan { .. }")
    }
}

impl CryptoPan {
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        let aes = Aes128::new(GenericArray::from_slice(&key[..16]));
        let mut pad = GenericArray::clone_from_slice(&key[16..]);
        aes.encrypt_block(&mut pad);
        CryptoPan {
            aes,
            pad: pad.into(),
        }
    }

    /// The first bit of AES(block).
    fn first_bit(&self, block: u128) -> u128 {
        let mut b = GenericArray::from(block.to_be_bytes());
        self.aes.encrypt_block(&mut b);
        u128::from(b[0] >> 7)
    }

    /// Maps the `bits` most significant bits of `addr` (aligned at the top of the u128).
    fn map(&self, addr: u128, bits: u32) -> u128 {
        let pad = u128::from_be_bytes(self.pad);
        let mut otp = 0u128;
        for pos in 0..bits {
            // The first `pos` bits of the address, the pad's bits after them.
            let mask = if pos == 0 {
                0
            } else {
                u128::MAX << (128 - pos)
            };
            let block = (addr & mask) | (pad & !mask);
            otp |= self.first_bit(block) << (127 - pos);
        }
        addr ^ otp
    }

    #[must_use]
    pub fn v4(&self, addr: u32) -> u32 {
        (self.map(u128::from(addr) << 96, 32) >> 96) as u32
    }

    #[must_use]
    pub fn v6(&self, addr: u128) -> u128 {
        self.map(addr, 128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The key of the Crypto-PAn reference distribution's sample trace.
    pub const SAMPLE_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    /// From the reference distribution's sample_trace_raw / sample_trace_sanitized.
    const V4: [(&str, &str); 16] = [
        ("128.11.68.132", "135.242.180.132"),
        ("129.118.74.4", "134.136.186.123"),
        ("130.132.252.244", "133.68.164.234"),
        ("141.223.7.43", "141.167.8.160"),
        ("141.233.145.108", "141.129.237.235"),
        ("152.163.225.39", "151.140.114.167"),
        ("156.29.3.236", "147.225.12.42"),
        ("165.247.96.84", "162.9.99.234"),
        ("166.107.77.190", "160.132.178.185"),
        ("192.102.249.13", "252.138.62.131"),
        ("207.155.9.214", "241.220.250.22"),
        ("24.5.0.80", "100.9.15.210"),
        ("38.15.67.68", "64.3.66.187"),
        ("4.3.88.225", "124.60.155.63"),
        ("64.14.118.196", "0.255.183.58"),
        ("10.185.25.118", "117.161.29.118"),
    ];

    /// The IPv6 values other implementations (Go cryptopan, node-cryptopan) give for this key.
    const V6: [(&str, &str); 5] = [
        ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
        ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
        ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
        ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
        ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
    ];

    #[test]
    fn the_published_ipv4_vectors() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        for (raw, want) in V4 {
            let raw: Ipv4Addr = raw.parse().unwrap();
            let got = Ipv4Addr::from(pan.v4(u32::from(raw)));
            assert_eq!(got.to_string(), want, "{raw}");
        }
    }

    #[test]
    fn the_ipv6_vectors_of_other_implementations() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        for (raw, want) in V6 {
            let raw: Ipv6Addr = raw.parse().unwrap();
            let got = Ipv6Addr::from(pan.v6(u128::from(raw)));
            assert_eq!(got, want.parse::<Ipv6Addr>().unwrap(), "{raw}");
        }
    }

    #[test]
    fn prefixes_are_preserved() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        let (a, b) = (0xc000_0201u32, 0xc000_02feu32); // 192.0.2.1, 192.0.2.254: 24 bits shared
        let (ma, mb) = (pan.v4(a), pan.v4(b));
        assert_eq!((ma ^ mb).leading_zeros(), (a ^ b).leading_zeros());
    }
}
