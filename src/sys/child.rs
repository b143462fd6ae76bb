//! What a child cloned from the multi-threaded daemon runs between clone3
//! and exec, whole, so that no caller has to promise async-signal-safety:
//! the caller hands over data built beforehand (descriptors, C strings,
//! plans) and gets the child's pid and pidfd back.
//!
//! Between clone3 and execve only one thread exists in the child, and any
//! lock another thread held (malloc's included) stays held forever. So each
//! routine here makes raw, async-signal-safe syscalls on memory prepared
//! before the clone (every pointer array is built by the parent side of the
//! function, before it clones), never returns, and reports a failed step as
//! (step, errno) on the error pipe before `_exit(127)`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::clone::{Forked, clone3};
use super::creds::{self, CredPlan};
use super::last_errno;
use super::limits::{self, LimitPlan};
use super::seccomp::{self, Filter};
use super::step::{Step, report_and_exit};

/// clone3 with `flags` (namespaces) into `cgroup` when given; the child runs
/// `f`, which should end in `execve` or `_exit` (a return `_exit`s 127).
///
/// # Safety
/// `f` runs in the child of a possibly multi-threaded process: it may only
/// make async-signal-safe calls on memory prepared before this call, must
/// not allocate, take a lock or unwind, and must end in `execve` or `_exit`.
pub(super) unsafe fn clone_and_run(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    f: impl FnOnce(),
) -> io::Result<(libc::pid_t, OwnedFd)> {
    // SAFETY: the child runs only `f`, whose contract is the caller's (the
    // one clone3 asks for).
    match unsafe { clone3(flags, cgroup) }? {
        Forked::Child => {
            f();
            // SAFETY: `f` should not return; if it does, the child ends
            // here without running anything of the parent's.
            unsafe { libc::_exit(127) }
        }
        Forked::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

/// Waits for the child `pid` of this process and returns its raw wait
/// status (the tests' children).
#[cfg(test)]
pub(super) fn wait_raw(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the call.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(status)
}

/// The NULL-terminated pointer array execve wants, pointing into `v`.
/// Built in the parent: it allocates.
fn pointers(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A clean signal state for exec: nothing blocked, SIGPIPE back to default
/// (Rust ignores it in the parent, and execve keeps ignored signals).
/// Async-signal-safe.
fn clean_signals() {
    // SAFETY: sigemptyset fills a sigset on this stack; sigprocmask reads it;
    // signal sets a default disposition, which runs no code of ours.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A child that exits at once with status 0: `bulkhead check`'s proof that
/// clone3 with these flags and this cgroup works. Returns its pid and pidfd;
/// the caller reaps it.
pub fn clone_and_exit(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<(libc::pid_t, OwnedFd)> {
    // SAFETY: the child runs only `_exit`, which is async-signal-safe,
    // never returns and runs no destructor.
    unsafe { clone_and_run(flags, cgroup, || libc::_exit(0)) }
}

/// What the child of an init's spawn needs, all prepared by the parent.
#[derive(Debug, Clone, Copy)]
pub struct InitChild<'a> {
    /// PR_SET_PDEATHSIG with SIGKILL first (`bulkhead exec`).
    pub die_with_parent: bool,
    /// The spec pipe's read end: the init's fd 3.
    pub spec_r: BorrowedFd<'a>,
    /// The error pipe's write end: the init's fd 4, and where a failure
    /// before the exec is reported.
    pub err_w: BorrowedFd<'a>,
    /// The fallback's (read, write) go pipe: the child closes its copy of the
    /// write end and waits for one byte before going on; end of file (the
    /// parent could not place it) ends it silently.
    pub go: Option<(BorrowedFd<'a>, BorrowedFd<'a>)>,
    pub exe: &'a CStr,
    pub argv: &'a [CString],
    pub env: &'a [CString],
}

/// Clones a child with the namespaces in `flags`, into `cgroup` when given,
/// that execs the init as [`InitChild`] says: pdeathsig (when asked), the go
/// pipe (when given), the spec and error pipes onto fds 3 and 4, a clean
/// signal state, execve. A failure is reported on `err_w` as
/// `Pdeathsig`/`ExecInit`. E2BIG with a cgroup: the kernel predates
/// `CLONE_INTO_CGROUP` (5.7).
pub fn clone_init(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    c: &InitChild<'_>,
) -> io::Result<(libc::pid_t, OwnedFd)> {
    let argv = pointers(c.argv);
    let envp = pointers(c.env);
    let err_w = c.err_w.as_raw_fd();
    let spec_r = c.spec_r.as_raw_fd();
    let go = c.go.map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd()));
    let (die_with_parent, exe) = (c.die_with_parent, c.exe);
    let child = move || {
        let fail = |step: Step| -> ! { report_and_exit(err_w, step, last_errno()) };
        // SAFETY: prctl, close, read, dup2 and execve are async-signal-safe;
        // every pointer refers to memory prepared before the clone (`exe`,
        // `argv`, `envp`, a byte on this stack), still mapped in this copy
        // of the address space.
        unsafe {
            if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                fail(Step::Pdeathsig);
            }
            if let Some((go_r, go_w)) = go {
                // Our copy of the write end must go, or a dead parent would
                // leave us waiting forever.
                libc::close(go_w);
                let mut b = 0u8;
                loop {
                    let n = libc::read(go_r, (&raw mut b).cast(), 1);
                    if n == 1 {
                        break;
                    }
                    if n < 0 && last_errno() == libc::EINTR {
                        continue;
                    }
                    // The parent could not place us: it reports why.
                    libc::_exit(127);
                }
                libc::close(go_r);
            }
            // The init finds the spec on fd 3 and reports failures on fd 4;
            // dup2 clears CLOEXEC on the copies so they survive the exec.
            if libc::dup2(spec_r, 3) < 0 || libc::dup2(err_w, 4) < 0 {
                fail(Step::ExecInit);
            }
        }
        clean_signals();
        // SAFETY: as above: execve on prepared, NUL-terminated arrays.
        unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        fail(Step::ExecInit)
    };
    // SAFETY: `child` makes only async-signal-safe calls on data prepared
    // above and ends in execve or _exit.
    unsafe { clone_and_run(flags, cgroup, child) }
}

/// What the child of an entered command needs, all prepared by the parent.
#[derive(Debug, Clone, Copy)]
pub struct EnterChild<'a> {
    /// Fallback placement: the cgroup's `cgroup.procs`, written "0".
    pub join_procs: Option<BorrowedFd<'a>>,
    /// (namespace fd, CLONE_NEW*, step), entered in this order (mount last).
    pub ns: &'a [(BorrowedFd<'a>, libc::c_int, Step)],
    /// Becomes stdin.
    pub null: BorrowedFd<'a>,
    /// Becomes stdout and stderr.
    pub out_w: BorrowedFd<'a>,
    /// Where a failed step is reported.
    pub err_w: BorrowedFd<'a>,
    pub limits: &'a LimitPlan,
    pub creds: &'a CredPlan,
    pub working_dir: &'a CStr,
    pub seccomp: &'a Filter,
    /// Where the program may be, tried in order as execvp would.
    pub programs: &'a [CString],
    pub argv: &'a [CString],
    pub env: &'a [CString],
}

/// Clones a child into `cgroup` when given, in the calling thread's
/// namespaces (its PID namespace for children may have been moved), that
/// enters the compartment as [`EnterChild`] says and execs the command:
/// clean signals, join the cgroup (fallback), setns each namespace, setsid,
/// stdio, limits, credentials, chdir, close-on-exec above stdio, the seccomp
/// filter, then execve of each candidate. A failed step is reported on
/// `err_w`. E2BIG with a cgroup: the kernel predates `CLONE_INTO_CGROUP`.
pub fn clone_entered(
    cgroup: Option<BorrowedFd<'_>>,
    c: &EnterChild<'_>,
) -> io::Result<(libc::pid_t, OwnedFd)> {
    let argv = pointers(c.argv);
    let envp = pointers(c.env);
    let c = *c;
    let child = move || {
        let err_w = c.err_w.as_raw_fd();
        let fail_with = |(step, errno): (Step, i32)| -> ! { report_and_exit(err_w, step, errno) };
        let fail = |step: Step| -> ! { fail_with((step, last_errno())) };
        clean_signals();
        // SAFETY: for the whole block: every call is a plain syscall
        // (through libc's thin wrappers or `syscall`), async-signal-safe, on
        // integers or on pointers into the plan, which this copy of the
        // address space holds unchanged. No allocation, no lock, nothing
        // glibc tracks per thread.
        unsafe {
            if let Some(procs) = c.join_procs
                && libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1
            {
                fail(Step::JoinCgroup);
            }
            for &(fd, nstype, step) in c.ns {
                if libc::setns(fd.as_raw_fd(), nstype) != 0 {
                    fail(step);
                }
            }
            // Its own session and process group, so killing the group gets
            // what it started, and no terminal signal of the daemon's
            // reaches it.
            if libc::setsid() < 0 {
                fail(Step::Setsid);
            }
            if libc::dup2(c.null.as_raw_fd(), 0) < 0
                || libc::dup2(c.out_w.as_raw_fd(), 1) < 0
                || libc::dup2(c.out_w.as_raw_fd(), 2) < 0
            {
                fail(Step::Stdio);
            }
        }
        if let Err(e) = limits::apply(c.limits) {
            fail_with(e);
        }
        // Groups, gid, uid, capabilities, no_new_privs (`creds` has the
        // order).
        if let Err(e) = creds::apply(c.creds) {
            fail_with(e);
        }
        // SAFETY: chdir reads a NUL-terminated path prepared before the
        // clone; close_range with CLOSE_RANGE_CLOEXEC only sets flags.
        unsafe {
            if libc::chdir(c.working_dir.as_ptr()) != 0 {
                fail(Step::Chdir);
            }
            // Every fd above stdio closes at exec; the error pipe stays
            // usable until then.
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                fail(Step::CloseFds);
            }
        }
        if let Err(e) = seccomp::install(c.seccomp) {
            fail_with(e);
        }
        // execvp's search, without its allocations: EACCES is remembered
        // and the search goes on; ENOENT/ENOTDIR go on; anything else stops.
        let mut errno = libc::ENOENT;
        for p in c.programs {
            // SAFETY: execve on NUL-terminated strings and arrays prepared
            // before the clone; it returns only on failure.
            unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            match last_errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => errno = libc::EACCES,
                e => {
                    errno = e;
                    break;
                }
            }
        }
        fail_with((Step::Exec, errno))
    };
    // SAFETY: `child` makes only async-signal-safe calls on data prepared
    // above (the plans, the strings, the pointer arrays) and ends in execve
    // or _exit.
    unsafe { clone_and_run(0, cgroup, child) }
}
