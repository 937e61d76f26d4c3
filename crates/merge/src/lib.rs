//! Merging captures: a k-way merge by timestamp over any number of inputs, exact-duplicate
//! removal, and the estimation of the clock offset between two captures of the same traffic
//! taken at different points (shared with `tracekit analyze`).

pub mod align;
pub mod dedup;
mod merger;
pub mod set;

pub use merger::{Input, Item, MAX_RUNS, Merger, Order, Survey, survey};
