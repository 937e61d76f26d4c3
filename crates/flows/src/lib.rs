//! The flow table of a capture set: one row per conversation over all inputs read as one
//! capture in time order, as `tracekit flows` prints it and `tracekit index` stores it.
//!
//! - [`scan`]: the pass that counts a set (or its selection) into a
//!   [`FlowTable`](tracekit_split::flows::FlowTable), and the pass that carries on from a saved
//!   table over files that came later (what keeps an index's table up to date without reading
//!   the files it already counted).
//! - [`row`]: a conversation as printed, in JSON, CSV and Parquet alike.
//! - [`stored`]: the Parquet form `tracekit index` keeps, which DuckDB, Polars or Spark read as
//!   it is, and how it is read back (all of it, or the top rows by a ranking).

pub mod row;
pub mod scan;
pub mod stored;

pub use row::{Rank, Row, named, numbered_row, row};
pub use scan::{Prior, Table};
