//! The isolated spawn. This is the only module with `unsafe`; every block
//! says why it is sound.

pub mod probe;
pub mod reactor;
