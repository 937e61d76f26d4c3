//! `tracekit anonymize`: keyed, consistent, prefix-preserving redaction that keeps traces
//! analyzable. [`cryptopan`] is the address permutation (the published algorithm, so keys
//! interoperate with other Crypto-PAn tools), [`map`] the keyed mapping of IPv4, IPv6 and MAC
//! addresses with what is kept, [`rewrite`] the packet rewriter with checksum repair, [`leak`]
//! the search for original addresses in an output.

pub mod app;
pub mod cryptopan;
pub mod leak;
pub mod map;
pub mod reassembly;
pub mod rewrite;

pub use leak::{Check, Hit, Secrets};
pub use map::{Key, KeyError, Mapper, Policy};
pub use reassembly::{Reassembled, Reassembler};
pub use rewrite::{Payload, Rewriter};
