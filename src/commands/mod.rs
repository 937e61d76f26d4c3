pub mod info;
pub mod split;
pub mod merge;
