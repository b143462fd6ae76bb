//! The isolated spawn. This is the only module with `unsafe`; every block
//! says why it is sound.

pub mod clone;
pub mod creds;
pub mod devices;
pub mod dirs;
pub mod enter;
pub mod init;
pub mod limits;
pub mod logsink;
pub mod plan;
pub mod probe;
pub mod reactor;
pub mod spawn;
pub mod spec;
pub mod walls;
