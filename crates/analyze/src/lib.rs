//! `tracekit analyze`: what sits between two captures of the same connections.
//!
//! Each trace is read once (by a [`TableBuilder`]) into a [`ConnTable`] (per-connection facts: handshake fields, TTLs,
//! IP IDs, ECN, TLS progress, close events, oversize segments, the first packets). The two
//! tables are then compared ([`analyze`]): connections are paired (by tuple, TLS random,
//! payload or timing), the trace nearer the client is found, and every difference becomes
//! [`Evidence`] naming the frames it rests on, with a middlebox verdict and who closed the
//! connection. The clock offset between the traces comes from `tracekit_merge::align`, the
//! same estimate `tracekit merge --align auto` uses.

pub mod batch;
mod closer;
mod compare;
pub mod input;
pub mod ladder;
pub mod model;
mod pairing;
mod path;
pub mod reading;
mod sentence;
mod sides;
mod signals;
pub mod trace;
mod verdict;

pub use compare::{
    Drift, Input, LADDERS_KEPT, PairFilter, Scope, analyze, analyze_drifting, analyze_scoped,
};
pub use input::{ConnFilter, SideError, SideInput, analyze_sides};
pub use model::{Analysis, Connection, Evidence, FileFrames, Row};
pub use reading::{FrameMap, Reading, Side, Tables, read_pair};
pub use sides::{ip_id_behaviour, mac_string, vendor};
pub use trace::{BATCH, Batch, ConnTable, Gathered, Packet, PortFilter, TableBuilder};

#[cfg(test)]
mod testing {
    /// A small LCG: numbers below the bound asked for, the same cases every run.
    pub(crate) fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |bound| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) % bound
        }
    }
}
