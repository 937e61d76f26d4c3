pub mod info;
pub mod split;
