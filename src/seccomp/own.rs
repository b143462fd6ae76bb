//! The init's own filter (issue 14, item 4): once it has forked the service
//! and dropped its privileges, the init only waits, forwards signals, copies
//! output to its log (rotating it relative to a directory it opened before
//! the walls went up) and records the exit. Its filter allows exactly the
//! system calls that work needs; anything else fails with EPERM, so a
//! service that takes the init over (a root service granted CAP_SYS_PTRACE)
//! finds no more of the kernel there than in itself — less, in fact.
//!
//! EPERM rather than a kill: a call missing from the list costs a log line
//! or a status record, never the service, whose fate is tied to its PID 1.

use std::sync::OnceLock;

use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};

use super::Insn;

/// What the init calls after its privileges are gone, by what for. Names an
/// architecture lacks (`poll`, `renameat` on arm64) are skipped.
pub const INIT_SYSCALLS: &[&str] = &[
    // the wait loop: signals, output pipes, reaping
    "signalfd4",
    "poll",
    "ppoll",
    "read",
    "readv",
    "kill",
    "wait4",
    "waitid",
    "ioctl", // FIONBIO on the pipes (narrowed below)
    "close",
    // the log file and the status record
    "write",
    "writev",
    "openat", // write-only appends (narrowed below): the log's reopen
    "renameat",
    "renameat2",
    "ftruncate",
    "lseek",
    "fsync",
    "fstat",
    "newfstatat",
    "statx",
    "fcntl",
    // memory, time, the runtime
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "futex",
    "clock_gettime",
    "gettimeofday",
    "clock_nanosleep",
    "nanosleep",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "sched_yield",
    "getpid",
    "gettid",
    "restart_syscall",
    "exit",
    "exit_group",
];

/// The one ioctl the init makes after the filter: FIONBIO.
const FIONBIO: u64 = 0x5421;

/// The only opens the init makes after the filter are the log's reopen at
/// rotation (write-only, append): a hijacked init can read no file.
const OPEN_MODE_MASK: u64 = (libc::O_ACCMODE | libc::O_APPEND).unsigned_abs() as u64;
const OPEN_APPEND_ONLY: u64 = (libc::O_WRONLY | libc::O_APPEND).unsigned_abs() as u64;

/// The init's filter for this host, compiled once per process.
pub fn init_program() -> Result<&'static [Insn], String> {
    static PROGRAM: OnceLock<Result<Vec<Insn>, String>> = OnceLock::new();
    PROGRAM
        .get_or_init(build)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The filter for this host's native architecture (libseccomp's default).
fn build() -> Result<Vec<Insn>, String> {
    let e =
        |what: &'static str| move |err: libseccomp::error::SeccompError| format!("{what}: {err}");
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM))
        .map_err(e("libseccomp cannot create a filter"))?;
    // The init sets no_new_privs itself, before installing the filter.
    ctx.set_ctl_nnp(false)
        .map_err(e("libseccomp cannot leave no_new_privs to the init"))?;
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(e(
        "libseccomp cannot set the action for other architectures",
    ))?;
    for name in INIT_SYSCALLS {
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            continue;
        };
        if nr.as_raw_syscall() < 0 {
            // A pseudo number: this architecture has no such call.
            continue;
        }
        let r = if *name == "ioctl" {
            ctx.add_rule_conditional(
                ScmpAction::Allow,
                nr,
                &[libseccomp::scmp_cmp!($arg1 == FIONBIO)],
            )
        } else if *name == "openat" {
            ctx.add_rule_conditional(
                ScmpAction::Allow,
                nr,
                &[libseccomp::scmp_cmp!($arg2 & OPEN_MODE_MASK == OPEN_APPEND_ONLY)],
            )
        } else {
            ctx.add_rule(ScmpAction::Allow, nr)
        };
        r.map_err(|err| format!("libseccomp refused the rule for `{name}`: {err}"))?;
    }
    super::compile::export(&ctx).map_err(|d| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_builds_once_and_is_short() {
        let p = init_program().expect("init filter");
        assert!(!p.is_empty());
        assert!(p.len() < 200, "{} instructions", p.len());
        assert_eq!(init_program().unwrap().as_ptr(), p.as_ptr());
    }

    #[test]
    fn the_list_names_no_call_twice_and_nothing_that_opens_new_powers() {
        let mut seen = std::collections::BTreeSet::new();
        for n in INIT_SYSCALLS {
            assert!(seen.insert(n), "{n} twice");
        }
        for bad in [
            "execve",
            "execveat",
            "ptrace",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "fork",
            "vfork",
            "socket",
            "connect",
            "bpf",
            "setuid",
            "prctl",
            "open",
            "open_by_handle_at",
            "keyctl",
            "init_module",
            "process_vm_writev",
        ] {
            assert!(!INIT_SYSCALLS.contains(&bad), "{bad}");
        }
    }
}
