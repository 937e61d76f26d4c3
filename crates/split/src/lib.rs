//! Splitting captures: which output each packet goes to ([`assign`]), and writing thousands to
//! millions of outputs with a bounded number of open files ([`outputs`]).

pub mod assign;
pub mod mode;
pub mod outputs;
