pub mod analyze;
pub mod anonymize;
pub mod info;
pub mod merge;
pub mod split;
