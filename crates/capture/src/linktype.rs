use std::fmt;

/// A LINKTYPE_ value (tcpdump.org/linktypes.html). Open: unknown values pass through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u16);

impl LinkType {
    pub const NULL: Self = Self(0);
    pub const ETHERNET: Self = Self(1);
    pub const PPP: Self = Self(9);
    pub const FDDI: Self = Self(10);
    /// `DLT_RAW` as written by OpenBSD and some tools (same meaning as `RAW`).
    pub const RAW_12: Self = Self(12);
    pub const RAW_14: Self = Self(14);
    pub const PPP_HDLC: Self = Self(50);
    pub const PPP_ETHER: Self = Self(51);
    pub const RAW: Self = Self(101);
    pub const C_HDLC: Self = Self(104);
    pub const IEEE802_11: Self = Self(105);
    pub const LOOP: Self = Self(108);
    pub const LINUX_SLL: Self = Self(113);
    pub const IEEE802_11_RADIOTAP: Self = Self(127);
    pub const PPI: Self = Self(192);
    pub const IPV4: Self = Self(228);
    pub const IPV6: Self = Self(229);
    pub const NFLOG: Self = Self(239);
    pub const IPOIB: Self = Self(242);
    pub const NETLINK: Self = Self(253);
    pub const LINUX_SLL2: Self = Self(276);

    /// The short name used by libpcap and Wireshark (`pcap_datalink_val_to_name`), if known.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            6 => "IEEE802",
            8 => "SLIP",
            9 => "PPP",
            10 => "FDDI",
            12 | 14 | 101 => "RAW",
            50 => "PPP_HDLC",
            51 => "PPP_ETHER",
            104 => "C_HDLC",
            105 => "IEEE802_11",
            108 => "LOOP",
            113 => "LINUX_SLL",
            119 => "PRISM_HEADER",
            127 => "IEEE802_11_RADIO",
            143 => "DOCSIS",
            192 => "PPI",
            195 => "IEEE802_15_4",
            220 => "USB_LINUX_MMAPPED",
            228 => "IPV4",
            229 => "IPV6",
            239 => "NFLOG",
            242 => "IPOIB",
            249 => "USBPCAP",
            253 => "NETLINK",
            274 => "ETW",
            276 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown ({})", self.0),
        }
    }
}
