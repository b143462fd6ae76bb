//! Probes of what the kernel lets bulkhead do, for `bulkhead check`: a real
//! clone3 into a cgroup with new PID and mount namespaces, and pidfd_open.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `CLONE_INTO_CGROUP` (Linux 5.7). Defined here because libc's constant is a
/// `c_int` that overflows (DESIGN.md decision 3).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The size of the first `struct clone_args` (Linux 5.3), without `set_tid`
/// and `cgroup`.
pub const CLONE_ARGS_SIZE_VER0: usize = 64;

/// `struct clone_args` as of Linux 5.7 (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// Clones a child that exits at once, born in `cgroup_dir` with new PID and
/// mount namespaces and a pidfd, and reaps it. `Ok` proves the kernel
/// supports the spawn bulkhead uses; the error is the errno clone3 gave.
pub fn clone3_into_cgroup(cgroup_dir: &Path) -> io::Result<()> {
    let dir: OwnedFd = std::fs::File::open(cgroup_dir)?.into();
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP
            | libc::CLONE_PIDFD as u64
            | libc::CLONE_NEWPID as u64
            | libc::CLONE_NEWNS as u64,
        pidfd: &raw mut pidfd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(dir.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid, initialised clone_args of the size passed,
    // living until the call returns; `pidfd` outlives it too. With no stack
    // given, clone3 behaves like fork: the child gets a copy of this address
    // space and runs only `_exit`, which is async-signal-safe and touches no
    // lock or allocation, so the copy's state does not matter.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // SAFETY: in the child; `_exit` never returns and runs no destructors.
        unsafe { libc::_exit(0) }
    }
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let pid = libc::pid_t::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))?;
    // SAFETY: clone3 succeeded, so the kernel stored a new open descriptor in
    // `pidfd` that nothing else owns.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(pidfd);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "probe child ended with status {status:#x}"
        )))
    }
}

/// Whether pidfd_open works (Linux 5.3).
pub fn pidfd_open_self() -> io::Result<()> {
    let pid = rustix::process::getpid();
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map(drop)
        .map_err(io::Error::from)
}
