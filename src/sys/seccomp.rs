//! Installing a seccomp filter: one prctl on a prepared program, no
//! allocation, so a child about to exec may call it as its last step.

use super::last_errno;
use super::step::Step;

/// A BPF program ready for the kernel; empty installs nothing. Its length
/// fits `sock_fprog.len` (a u16) by construction.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    insns: Vec<libc::sock_filter>,
}

impl Filter {
    /// The filter of `insns`; E2BIG (as the kernel would say) when there are
    /// more than a `sock_fprog` can count.
    pub fn new(insns: Vec<libc::sock_filter>) -> Result<Filter, (Step, i32)> {
        if u16::try_from(insns.len()).is_err() {
            return Err((Step::Seccomp, libc::E2BIG));
        }
        Ok(Filter { insns })
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn insns(&self) -> &[libc::sock_filter] {
        &self.insns
    }
}

/// Installs `filter` in the calling thread (a child about to exec is
/// single-threaded), or does nothing when it is empty. Needs no_new_privs
/// or CAP_SYS_ADMIN. No allocation: async-signal-safe.
pub fn install(filter: &Filter) -> Result<(), (Step, i32)> {
    if filter.insns.is_empty() {
        return Ok(());
    }
    let fprog = libc::sock_fprog {
        // Checked to fit by `Filter::new`.
        len: u16::try_from(filter.insns.len()).map_err(|_| (Step::Seccomp, libc::E2BIG))?,
        filter: filter.insns.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `filter`'s instructions, alive for the call;
    // the kernel copies the program and writes nothing through the pointer.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &raw const fprog,
        )
    };
    if r != 0 {
        return Err((Step::Seccomp, last_errno()));
    }
    Ok(())
}

/// One system call as data, for [`errno_under_filter`]: its number and six
/// arguments (integers, or addresses of this process's buffers).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    pub nr: libc::c_long,
    pub args: [libc::c_long; 6],
}

/// Makes `call` in a child cloned from the test runner, under `filter`
/// (none when empty; no_new_privs goes first, so no privilege is needed),
/// and returns the child's wait status: exited with the call's errno, 0 when
/// it succeeded, 200 when no_new_privs failed, 201 when the filter did. The
/// filter never reaches the runner.
///
/// Contract: the call runs in the child's copy of this address space and
/// the child `_exit`s right after, so whatever it writes through an address
/// argument lands in that copy. A call that reaches back into the runner
/// (ptrace, process_vm_writev, a shared mapping) is outside this promise:
/// tests pass integers and addresses of their own private buffers.
#[cfg(test)]
pub fn errno_under_filter(filter: &[libc::sock_filter], call: Syscall) -> std::io::Result<i32> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: filter.as_ptr().cast_mut(),
    };
    let empty = filter.is_empty();
    let run = move || {
        let a = call.args;
        // SAFETY: prctl with integer arguments and a pointer to `fprog`,
        // alive in this copy of the address space; the call under test acts
        // on this copy (the contract above); _exit does not return.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(200);
            }
            if !empty
                && libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const fprog,
                ) != 0
            {
                libc::_exit(201);
            }
            let r = libc::syscall(call.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            let code = if r == -1 { last_errno() } else { 0 };
            libc::_exit(code)
        }
    };
    // SAFETY: `run` makes raw syscalls only, on memory prepared before the
    // clone, then _exits.
    let (pid, pidfd) = unsafe { super::child::clone_and_run(0, None, run) }?;
    let status = super::child::wait_raw(pid);
    drop(pidfd);
    status
}
