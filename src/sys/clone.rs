//! The one clone3 wrapper: the spawn of an init, the entered command of an
//! exec health probe, `bulkhead check`'s probe and the tests that need a
//! child all fork through it, by way of the routines in [`super::child`].
//!
//! It behaves like `fork(2)` with three extras: the child may be born in a
//! cgroup (`CLONE_INTO_CGROUP`, Linux 5.7), in new namespaces, and the
//! parent gets a pidfd (`CLONE_PIDFD`) as well as the pid. There is no
//! closure: the call returns twice, once as [`Forked::Child`]. It is an
//! `unsafe fn` visible only inside `sys`: the code each child runs is in
//! [`super::child`], in plain sight, where its async-signal-safety can be
//! checked, and what the rest of the crate calls is safe.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `CLONE_INTO_CGROUP` (Linux 5.7). Defined here because libc's constant is a
/// `c_int` that overflows (docs/ARCHITECTURE.md decision 3).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The size of the first `struct clone_args` (Linux 5.3), without `set_tid`
/// and `cgroup`.
pub const CLONE_ARGS_SIZE_VER0: usize = 64;

/// `struct clone_args` as of Linux 5.7 (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of the clone this is.
#[must_use]
#[derive(Debug)]
pub(super) enum Forked {
    /// The new process. It must end in `execve` or `_exit`, never return
    /// into code that may allocate or take a lock (see [`clone3`]).
    Child,
    /// The caller, with the child's pid (in the caller's PID namespace) and
    /// a pidfd for it.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// Where the struct ends for `flags`: without `CLONE_INTO_CGROUP` the first
/// version, so that kernels 5.3 to 5.6 accept it (they refuse a larger
/// struct with non-zero fields they do not know with E2BIG).
fn args_size(flags: u64) -> usize {
    if flags & CLONE_INTO_CGROUP == 0 {
        CLONE_ARGS_SIZE_VER0
    } else {
        std::mem::size_of::<CloneArgs>()
    }
}

/// clone3 with `CLONE_PIDFD`, exit signal SIGCHLD, `flags` (namespaces:
/// `CLONE_NEW*`) and, with `cgroup`, `CLONE_INTO_CGROUP` into that cgroup
/// directory. E2BIG from a kernel before 5.7 with a cgroup means "place it
/// yourself" to the callers that fall back.
///
/// # Safety
/// Like `fork` in a multi-threaded process. On [`Forked::Child`] the caller
/// runs in a copy of this address space with one thread; locks held by
/// other threads (malloc's among them) stay held forever. Until it execs or
/// `_exit`s it may only make async-signal-safe calls on memory prepared
/// before this call, and it must not return or unwind into frames that
/// would drop or allocate.
pub(super) unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | u64::from(libc::CLONE_PIDFD.unsigned_abs()),
        pidfd: &raw mut pidfd as u64,
        exit_signal: u64::from(libc::SIGCHLD.unsigned_abs()),
        ..CloneArgs::default()
    };
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = u64::try_from(dir.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    }
    // SAFETY: `args` is a valid, initialised clone_args at least as long as
    // the size passed, and outlives the call, as does `pidfd`. Without
    // CLONE_VM or a stack, clone3 behaves like fork: the child gets a copy
    // of this address space and returns here on its copy of the stack; what
    // it may do next is the caller's contract above.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, args_size(args.flags)) };
    if ret == 0 {
        return Ok(Forked::Child);
    }
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let pid = libc::pid_t::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))?;
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so the kernel stored a new
    // open descriptor in `pidfd` that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Forked::Parent { pid, pidfd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel_versions() {
        // CLONE_ARGS_SIZE_VER2 = 88 bytes: eleven u64 fields.
        assert_eq!(std::mem::size_of::<CloneArgs>(), 88);
        assert_eq!(args_size(0), CLONE_ARGS_SIZE_VER0);
        assert_eq!(args_size(CLONE_INTO_CGROUP), 88);
    }
}
