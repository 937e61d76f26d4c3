//! Packet dissection for tracekit: zero-copy views over packet bytes (smoltcp style: a buffer
//! plus a type, getters for `AsRef<[u8]>`, setters for `AsMut<[u8]>`), a no-allocation
//! [`dissect`] that returns the byte ranges of every layer, the canonical [`FlowKey`],
//! Internet checksums (full and RFC 1624 incremental) and TLS record sniffing.
//!
//! Hand-written rather than built on etherparse: the views must rewrite fields in place
//! (anonymize, analyze's normalisation) and `dissect` sits on the hot path of split; the
//! benchmark `cargo run --release -p tracekit-bench -- dissect` compares both on the same packets.

pub mod arp;
pub mod checksum;
pub mod community;
mod dissect;
pub mod ethernet;
mod field;
mod flow;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod tls;
pub mod udp;

pub use dissect::{
    Encap, FragmentInfo, IpFields, IpLayer, Layers, MAX_IP, Span, Stop, Transport, TransportKind,
    dissect, dissect_into,
};
pub use ethernet::EtherType;
pub use field::WireError;
pub use flow::{Endpoint, FlowKey};
pub use ipv4::IpProtocol;
