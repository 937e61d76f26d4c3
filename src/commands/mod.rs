pub mod analyze;
pub mod anonymize;
pub mod extract;
pub mod flows;
pub mod index;
pub mod info;
pub mod merge;
pub mod split;
