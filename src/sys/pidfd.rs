//! pidfds: a handle on one process that a recycled pid can never alias
//! (docs/ARCHITECTURE.md decision 3). Thin: rustix makes these calls safe;
//! they are named here so the daemon and the sandbox share one vocabulary.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitIdStatus};

/// pidfd_open(2) (Linux 5.3) on `pid`, blocking waits.
pub fn open(pid: Pid) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// pidfd_send_signal(2): `sig` to the process `pidfd` names, never to a
/// process that took over its pid.
pub fn send_signal(pidfd: impl AsFd, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// waitid(P_PIDFD) for the end of the process `pidfd` names, reaping it.
/// With `block` false, `Ok(None)` while it still runs.
pub fn wait(pidfd: impl AsFd, block: bool) -> io::Result<Option<WaitIdStatus>> {
    let mut opts = WaitIdOptions::EXITED;
    if !block {
        opts |= WaitIdOptions::NOHANG;
    }
    Ok(rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), opts)?)
}
