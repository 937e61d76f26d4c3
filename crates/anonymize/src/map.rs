//! The keyed mapping of addresses: IPv4 and IPv6 by Crypto-PAn with the special ranges kept,
//! addresses embedded in IPv6 (IPv4-mapped, NAT64, 6to4, Teredo) mapped like the IPv4 address
//! they carry, EUI-64 interface identifiers like the MAC address they carry, and MAC addresses
//! by a keyed blake3 hash that keeps the OUI (vendor) and the group/local bits by default.
//! Same key ⇒ same mapping, in every file, run, thread and machine.

use rustc_hash::FxHashMap;
use thiserror::Error;

use crate::cryptopan::CryptoPan;

/// The 32-byte key: the Crypto-PAn key (AES key, then pad secret); the MAC key is derived
/// from it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("a key file holds 64 hexadecimal characters (32 bytes), found {0} characters")]
    Length(usize),
    #[error("a key file holds hexadecimal characters only, found {0:?}")]
    NotHex(char),
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// blake3 key-derivation contexts: fixed forever, or old keys would map differently.
const PASSPHRASE_CONTEXT: &str = "tracekit 2026-11 anonymize passphrase to Crypto-PAn key";
const MAC_CONTEXT: &str = "tracekit 2026-11 anonymize MAC key from Crypto-PAn key";
const FINGERPRINT_CONTEXT: &str = "tracekit 2026-12 anonymize key fingerprint";

impl Key {
    /// From the text of a key file: 64 hex characters, surrounding white space ignored.
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let t = text.trim();
        if t.len() != 64 {
            return Err(KeyError::Length(t.chars().count()));
        }
        let mut k = [0u8; 32];
        for (i, pair) in t.as_bytes().chunks(2).enumerate() {
            let nib = |c: u8| {
                (c as char)
                    .to_digit(16)
                    .map(|d| d as u8)
                    .ok_or(KeyError::NotHex(c as char))
            };
            k[i] = nib(pair[0])? << 4 | nib(pair[1])?;
        }
        Ok(Key(k))
    }

    /// From a passphrase, with blake3's key derivation (trailing newlines ignored).
    pub fn from_passphrase(text: &[u8]) -> Result<Key, KeyError> {
        let t = text.strip_suffix(b"\n").unwrap_or(text);
        let t = t.strip_suffix(b"\r").unwrap_or(t);
        if t.is_empty() {
            return Err(KeyError::EmptyPassphrase);
        }
        Ok(Key(blake3::derive_key(PASSPHRASE_CONTEXT, t)))
    }

    /// A name for the key that does not reveal it (a one-way derivation, 16 hex digits): what
    /// a distributed run's plan holds so that every task can check it read the same key.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        blake3::Hash::from(blake3::derive_key(FINGERPRINT_CONTEXT, &self.0)).to_hex()[..16]
            .to_string()
    }

    /// A fresh random key.
    pub fn generate() -> Result<Key, KeyError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Key(k))
    }

    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// What to keep as it is.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Map private addresses (10/8, 172.16/12, 192.168/16, fc00::/7) inside their own block.
    pub keep_private: bool,
    /// Map the OUI half of MAC addresses too (default: keep the vendor recognisable).
    pub mac_full: bool,
    /// Keep DNS and DHCP names as they are (default: hashed, same length).
    pub keep_names: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_private: true,
            mac_full: false,
            keep_names: false,
        }
    }
}

/// The mapping with its caches (one per thread; every thread computes the same values).
#[derive(Debug, Clone)]
pub struct Mapper {
    pan: CryptoPan,
    mac_key: [u8; 32],
    policy: Policy,
    v4: FxHashMap<u32, u32>,
    v6: FxHashMap<u128, u128>,
    macs: FxHashMap<[u8; 6], [u8; 6]>,
}

/// Kept as they are: they identify nobody and analysis needs them.
fn special_v4(a: u32) -> bool {
    a == 0 || a == u32::MAX || a >> 24 == 127 || a >> 28 == 0xe
}

/// (prefix length) of the private block holding `a`.
fn private_v4(a: u32) -> Option<u32> {
    if a >> 24 == 10 {
        Some(8)
    } else if a >> 20 == 0xac1 {
        Some(12)
    } else if a >> 16 == 0xc0a8 {
        Some(16)
    } else {
        None
    }
}

const LOW64: u128 = u64::MAX as u128;

impl Mapper {
    #[must_use]
    pub fn new(key: &Key, policy: Policy) -> Self {
        Mapper {
            pan: CryptoPan::new(&key.0),
            mac_key: blake3::derive_key(MAC_CONTEXT, &key.0),
            policy,
            v4: FxHashMap::default(),
            v6: FxHashMap::default(),
            macs: FxHashMap::default(),
        }
    }

    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether an IPv4 address is kept as it is.
    #[must_use]
    pub fn keeps_v4(a: u32) -> bool {
        special_v4(a)
    }

    pub fn v4(&mut self, a: u32) -> u32 {
        if special_v4(a) {
            return a;
        }
        if let Some(&m) = self.v4.get(&a) {
            return m;
        }
        let mut m = self.pan.v4(a);
        if self.policy.keep_private
            && let Some(len) = private_v4(a)
        {
            let mask = u32::MAX << (32 - len);
            m = (a & mask) | (m & !mask);
        }
        // A mapped address must not land on a kept one (it would read as loopback etc.).
        if special_v4(m) {
            m ^= 1 << 24;
        }
        self.v4.insert(a, m);
        m
    }

    /// Whether an IPv6 address is kept as it is.
    #[must_use]
    pub fn keeps_v6(a: u128) -> bool {
        a == 0 || a == 1 || a >> 120 == 0xff
    }

    pub fn v6(&mut self, a: u128) -> u128 {
        if Self::keeps_v6(a) {
            return a;
        }
        if let Some(&m) = self.v6.get(&a) {
            return m;
        }
        let m = self.v6_uncached(a);
        self.v6.insert(a, m);
        m
    }

    fn v6_uncached(&mut self, a: u128) -> u128 {
        let low32 = a as u32;
        // IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 carry an IPv4 address.
        if a >> 32 == 0xffff || a >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
            return (a & !u128::from(u32::MAX)) | u128::from(self.v4(low32));
        }
        let pan = self.pan.v6(a);
        // 6to4 2002:V4::/48: the embedded address like the IPv4 one, the rest by Crypto-PAn.
        if a >> 112 == 0x2002 {
            let v4 = self.v4((a >> 80) as u32);
            return (0x2002u128 << 112) | (u128::from(v4) << 80) | (pan & ((1u128 << 80) - 1));
        }
        // Teredo 2001::/32: server IPv4 in bits 32..64, client IPv4 inverted in the low 32.
        if a >> 96 == 0x2001_0000 {
            let server = self.v4((a >> 64) as u32);
            let client = !self.v4(!low32);
            let middle = pan & (u128::from(u32::MAX) << 32);
            return (a & !(u128::MAX >> 32))
                | (u128::from(server) << 64)
                | middle
                | u128::from(client);
        }
        let iid = self.interface_id(a as u64);
        // Link-local fe80::/10: the prefix is kept, the interface identifier mapped.
        if a >> 118 == 0x3fa {
            return (a & !LOW64) | u128::from(iid.unwrap_or(pan as u64));
        }
        let mut m = match iid {
            Some(iid) => (pan & !LOW64) | u128::from(iid),
            None => pan,
        };
        // Unique local fc00::/7 stays unique local.
        if self.policy.keep_private && a >> 121 == 0x7e {
            m = (a & !(u128::MAX >> 7)) | (m & (u128::MAX >> 7));
        }
        if Self::keeps_v6(m) {
            m ^= 1 << 100;
        }
        m
    }

    /// An EUI-64 interface identifier (ff:fe in the middle) mapped like its MAC address.
    fn interface_id(&mut self, iid: u64) -> Option<u64> {
        let b = iid.to_be_bytes();
        if b[3] != 0xff || b[4] != 0xfe {
            return None;
        }
        let mac = [b[0] ^ 0x02, b[1], b[2], b[5], b[6], b[7]];
        let m = self.mac(mac);
        Some(u64::from_be_bytes([
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ]))
    }

    /// A name (DNS label, DHCP host name) replaced by keyed letters and digits of the same
    /// length: the same name gives the same replacement everywhere.
    #[must_use]
    pub fn name(&self, name: &[u8]) -> Vec<u8> {
        const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let lower: Vec<u8> = name.to_ascii_lowercase();
        let mut hasher = blake3::Hasher::new_keyed(&self.mac_key);
        hasher.update(b"name:");
        hasher.update(&lower);
        let mut xof = hasher.finalize_xof();
        let mut out = vec![0u8; name.len()];
        xof.fill(&mut out);
        for b in &mut out {
            *b = ALPHABET[usize::from(*b) % ALPHABET.len()];
        }
        out
    }

    /// Whether a MAC address is kept as it is (broadcast and multicast: they name no host).
    #[must_use]
    pub fn keeps_mac(m: [u8; 6]) -> bool {
        m[0] & 0x01 != 0 || m == [0; 6]
    }

    pub fn mac(&mut self, m: [u8; 6]) -> [u8; 6] {
        if Self::keeps_mac(m) {
            return m;
        }
        if let Some(&x) = self.macs.get(&m) {
            return x;
        }
        let h = blake3::keyed_hash(&self.mac_key, &m);
        let h = h.as_bytes();
        let x = if self.policy.mac_full {
            // The group and local bits stay what they were.
            [(h[0] & !0x03) | (m[0] & 0x03), h[1], h[2], h[3], h[4], h[5]]
        } else {
            [m[0], m[1], m[2], h[0], h[1], h[2]]
        };
        // Never the input itself (a hash can collide with it in the three NIC bytes).
        let x = if x == m {
            [x[0], x[1], x[2], x[3] ^ 0x80, x[4], x[5]]
        } else {
            x
        };
        self.macs.insert(m, x);
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper() -> Mapper {
        Mapper::new(&Key([7; 32]), Policy::default())
    }

    #[test]
    fn key_files_and_passphrases() {
        let k = Key::generate().unwrap();
        assert_eq!(Key::from_hex(&format!("{}\n", k.to_hex())).unwrap(), k);
        assert!(matches!(Key::from_hex("abc"), Err(KeyError::Length(3))));
        assert!(matches!(
            Key::from_hex(&"g".repeat(64)),
            Err(KeyError::NotHex('g'))
        ));
        let p = Key::from_passphrase(b"correct horse\n").unwrap();
        assert_eq!(p, Key::from_passphrase(b"correct horse").unwrap());
        assert_ne!(p, Key::from_passphrase(b"correct horse!").unwrap());
    }

    #[test]
    fn special_and_private_ranges() {
        let mut m = mapper();
        for kept in [0u32, u32::MAX, 0x7f00_0001, 0xe000_00fb] {
            assert_eq!(m.v4(kept), kept);
        }
        for (a, len) in [(0x0a01_0203u32, 8), (0xac10_0001, 12), (0xc0a8_0101, 16)] {
            let x = m.v4(a);
            assert_ne!(x, a);
            assert_eq!(x >> (32 - len), a >> (32 - len), "{a:x} -> {x:x}");
        }
        let public = 0xc633_6414; // 198.51.100.20
        assert_ne!(m.v4(public), public);
    }

    #[test]
    fn embedded_ipv4_maps_like_ipv4() {
        let mut m = mapper();
        let v4 = 0xc000_020a; // 192.0.2.10
        let mapped = m.v4(v4);
        assert_eq!(m.v6(0xffff_0000_0000 | u128::from(v4)) as u32, mapped);
        let nat64 = (0x0064_ff9bu128 << 96) | u128::from(v4);
        assert_eq!(m.v6(nat64) as u32, mapped);
        assert_eq!(m.v6(nat64) >> 32, nat64 >> 32);
        let six_to_four = (0x2002u128 << 112) | (u128::from(v4) << 80) | 1;
        assert_eq!((m.v6(six_to_four) >> 80) as u32, mapped);
        let teredo = (0x2001_0000u128 << 96) | (u128::from(v4) << 64) | u128::from(!v4);
        let t = m.v6(teredo);
        assert_eq!((t >> 64) as u32, mapped);
        assert_eq!(!(t as u32), mapped);
    }

    #[test]
    fn link_local_keeps_its_prefix_and_eui64_follows_the_mac() {
        let mut m = mapper();
        let mac = [0x00, 0x1c, 0x7f, 0x3a, 0x00, 0x02];
        let mapped_mac = m.mac(mac);
        assert_eq!(&mapped_mac[..3], &mac[..3], "OUI kept");
        assert_ne!(mapped_mac, mac);
        // fe80::21c:7fff:fe3a:2
        let ll = (0xfe80u128 << 112) | 0x021c_7fff_fe3a_0002;
        let x = m.v6(ll);
        assert_eq!(x >> 64, ll >> 64);
        let iid = (x as u64).to_be_bytes();
        assert_eq!(
            [iid[0] ^ 2, iid[1], iid[2], iid[5], iid[6], iid[7]],
            mapped_mac
        );
        // Multicast and broadcast MACs are kept; --mac full maps the OUI but keeps the bits.
        assert_eq!(m.mac([0xff; 6]), [0xff; 6]);
        assert_eq!(
            m.mac([0x01, 0, 0x5e, 0, 0, 0xfb]),
            [0x01, 0, 0x5e, 0, 0, 0xfb]
        );
        let mut full = Mapper::new(
            &Key([7; 32]),
            Policy {
                mac_full: true,
                ..Policy::default()
            },
        );
        let f = full.mac([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(f[0] & 3, 2);
    }

    #[test]
    fn the_same_key_gives_the_same_mapping() {
        let (mut a, mut b) = (mapper(), mapper());
        let other = Mapper::new(&Key([8; 32]), Policy::default()).v4(0x0808_0808);
        assert_eq!(a.v4(0x0808_0808), b.v4(0x0808_0808));
        assert_ne!(a.v4(0x0808_0808), other);
    }
}

#[cfg(test)]
mod fixed_points {
    use super::*;

    #[test]
    fn a_permutation_of_a_private_block_can_keep_an_address() {
        // Crypto-PAn keeps bit i when its keyed function of the first i bits is 0, so an
        // address whose whole path says 0 maps to itself: one per block on average, many in
        // some blocks (the paths form a tree). The leak check with the key (--verify) knows
        // them and does not call them leaks; a search without the key cannot tell them apart.
        let mut m = Mapper::new(&Key([3; 32]), Policy::default());
        let fixed: Vec<u32> = (0..=0xffffu32)
            .map(|h| 0xc0a8_0000 | h)
            .filter(|&a| m.v4(a) == a)
            .collect();
        assert!(fixed.len() < 0x1000, "{}", fixed.len());
        let mut secrets = crate::Secrets::new();
        for &a in fixed.iter().take(3) {
            let mut pkt = vec![0u8; 34];
            pkt[12] = 8;
            pkt[14] = 0x45;
            pkt[17] = 20;
            pkt[22] = 64;
            pkt[26..30].copy_from_slice(&a.to_be_bytes());
            pkt[30..34].copy_from_slice(&0x0808_0404u32.to_be_bytes());
            secrets.add_packet(1, &pkt);
        }
        secrets.forget_fixed_points(&mut m);
        assert_eq!(secrets.len(), 1, "only 8.8.4.4 is left to search for");
    }
}
