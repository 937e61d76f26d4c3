pub mod analyze;
pub mod info;
pub mod merge;
pub mod split;
