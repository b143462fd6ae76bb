//! Probes of what the kernel lets bulkhead do, for `bulkhead check`: a real
//! clone3 into a cgroup with new PID and mount namespaces, and pidfd_open.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::clone::{Forked, clone3};

/// Clones a child that exits at once, born in `cgroup_dir` with new PID and
/// mount namespaces and a pidfd, and reaps it. `Ok` proves the kernel
/// supports the spawn bulkhead uses; the error is the errno clone3 gave.
pub fn clone3_into_cgroup(cgroup_dir: &Path) -> io::Result<()> {
    let dir: OwnedFd = std::fs::File::open(cgroup_dir)?.into();
    let flags =
        u64::from(libc::CLONE_NEWPID.unsigned_abs()) | u64::from(libc::CLONE_NEWNS.unsigned_abs());
    // SAFETY: the child runs only `_exit`, which is async-signal-safe and
    // touches no lock or allocation, so the state of its copy of this
    // address space does not matter.
    let (pid, pidfd) = match unsafe { clone3(flags, Some(dir.as_fd())) }? {
        // SAFETY: in the child; `_exit` never returns and runs no destructors.
        Forked::Child => unsafe { libc::_exit(0) },
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
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
