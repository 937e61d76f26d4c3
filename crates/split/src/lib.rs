//! Splitting captures: which output each packet goes to ([`assign`]), and writing thousands to
//! millions of outputs with a bounded number of open files ([`outputs`]), and the flow table
//! of a capture set built on the same stream numbering ([`flows`]).

pub mod assign;
pub mod flows;
pub mod mode;
pub mod outputs;
pub mod shuffle;
