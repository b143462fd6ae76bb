//! The isolated spawn: the compartment's pieces (credentials, limits,
//! walls, devices, seccomp), the spawn and the init. All safe code: the
//! raw syscalls, and the routines a cloned child runs before exec, are in
//! [`crate::sys`], the one module the crate root exempts from its lint.

pub mod creds;
pub mod devices;
pub mod dirs;
pub mod enter;
pub mod init;
pub mod limits;
pub mod logsink;
pub mod plan;
pub mod probe;
pub mod spawn;
pub mod spec;
pub mod walls;
