//! The system layer: every `unsafe` of the crate is here, and only here
//! (the crate root denies `unsafe_code` everywhere else). Each block carries
//! a `// SAFETY:` comment; each `pub fn` is safe to call and documents its
//! contract.
//!
//! A leaf: it imports nothing from the crate. What it holds:
//! - [`clone`]: the one clone3 wrapper (`CLONE_INTO_CGROUP`, `CLONE_PIDFD`,
//!   namespaces), private to this module;
//! - [`child`]: the routines a cloned child of the multi-threaded daemon
//!   runs between clone3 and exec (the init's spawn, an entered command,
//!   the host probe). They live here because their async-signal-safety is
//!   the contract of the clone, which no safe caller could promise;
//! - [`step`]: the setup steps and the failure record a child reports;
//! - [`creds`], [`limits`], [`seccomp`]: applying credential, limit and
//!   filter plans (raw syscalls, no allocation);
//! - [`process`], [`fd`], [`signal`], [`net`], [`mount`], [`bpf`]: small
//!   safe wrappers for the init and the walls;
//! - [`pidfd`]: open, signal and wait on a pidfd;
//! - [`reactor`]: registering descriptors with tokio.
//!
//! Where nix or rustix offer a safe call, callers use it directly; this
//! module wraps only what they do not.

pub mod bpf;
pub mod child;
mod clone;
pub mod creds;
pub mod fd;
pub mod limits;
pub mod mount;
pub mod net;
pub mod pidfd;
pub mod process;
pub mod reactor;
pub mod seccomp;
pub mod signal;
pub mod step;

pub use clone::{CLONE_ARGS_SIZE_VER0, CLONE_INTO_CGROUP};

/// The errno of the call that just failed: reads the thread's errno slot,
/// allocates nothing (async-signal-safe).
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
