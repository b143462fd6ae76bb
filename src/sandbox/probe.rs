//! Probes of what the kernel lets bulkhead do, for `bulkhead check`: a real
//! clone3 into a cgroup with new PID and mount namespaces, and pidfd_open.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sys::wait::{WaitStatus, waitpid};

/// Clones a child that exits at once, born in `cgroup_dir` with new PID and
/// mount namespaces and a pidfd, and reaps it. `Ok` proves the kernel
/// supports the spawn bulkhead uses; the error is the errno clone3 gave.
pub fn clone3_into_cgroup(cgroup_dir: &Path) -> io::Result<()> {
    let dir: OwnedFd = std::fs::File::open(cgroup_dir)?.into();
    let flags =
        u64::from(libc::CLONE_NEWPID.unsigned_abs()) | u64::from(libc::CLONE_NEWNS.unsigned_abs());
    let (pid, pidfd) = crate::sys::child::clone_and_exit(flags, Some(dir.as_fd()))?;
    let status = waitpid(nix::unistd::Pid::from_raw(pid), None).map_err(io::Error::from)?;
    drop(pidfd);
    if status == WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "probe child ended with {status:?}"
        )))
    }
}

/// Whether pidfd_open works (Linux 5.3).
pub fn pidfd_open_self() -> io::Result<()> {
    crate::sys::pidfd::open(rustix::process::getpid()).map(drop)
}
