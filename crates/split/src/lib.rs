//! Splitting captures: which output each packet goes to ([`assign`]), and writing thousands to
//! millions of outputs with a bounded number of open files ([`outputs`]), and the flow table
//! of a capture set built on the same stream numbering ([`flows`]).

pub mod assign;
pub mod flows;
pub mod mode;
pub mod outputs;
pub mod shuffle;

/// Maps saved in key order, so that a saved table's bytes depend on its contents alone, not on
/// the order its hash maps were filled in (a table carried on from a saved one saves the same
/// bytes as one counted in one go).
mod sorted {
    use std::collections::HashMap;

    use serde::{Serialize, Serializer};

    pub fn map<K: Ord + Serialize, V: Serialize, H, S: Serializer>(
        m: &HashMap<K, V, H>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&K, &V)> = m.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_map(entries)
    }
}
