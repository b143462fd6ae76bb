//! The spawn: one clone3 into the cgroup and the new namespaces, and an
//! exec of bulkhead's own init (docs/ARCHITECTURE.md decisions 3-5).
//!
//! ```text
//! parent (daemon or `bulkhead exec`)        child (PID 1 of a new PID ns)
//! ---------------------------------        -----------------------------
//! build argv, fds, flags (allocates)
//! clone3(INTO_CGROUP|PIDFD|NEWPID|NEWNS) -> born inside the cgroup
//!                                           pdeathsig (exec only), fds 3+4,
//!                                           default signals, execve(init)
//! write the InitSpec to fd 3's pipe         init: mounts, fork the service
//! read fd 4's pipe: EOF = service exec'd    service: creds, caps, seccomp, exec
//!                   8 bytes = (step, errno)
//! ```
//! Between clone3 and execve the child runs only async-signal-safe calls on
//! memory prepared before the clone: the parent is multi-threaded and any
//! lock (malloc's included) may be held by a thread that does not exist in
//! the child.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::clone::{Forked, clone3, last_errno};
use super::spec::{InitSpec, Step, decode_failure, encode_failure};

/// Namespaces beyond the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceFlags {
    pub pid: bool,
    pub mount: bool,
    pub net: bool,
    pub uts: bool,
    pub ipc: bool,
    /// A cgroup namespace rooted at the cgroup the child is born in.
    pub cgroup: bool,
}

impl NamespaceFlags {
    fn clone_flags(self) -> u64 {
        let mut f = 0u64;
        for (on, flag) in [
            (self.pid, libc::CLONE_NEWPID),
            (self.mount, libc::CLONE_NEWNS),
            (self.net, libc::CLONE_NEWNET),
            (self.uts, libc::CLONE_NEWUTS),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.cgroup, libc::CLONE_NEWCGROUP),
        ] {
            if on {
                f |= u64::from(flag.unsigned_abs());
            }
        }
        f
    }
}

/// What to spawn and where.
pub struct SpawnRequest<'a> {
    pub spec: &'a InitSpec,
    /// The instance's cgroup directory; the child is born in it.
    pub cgroup: &'a Path,
    pub namespaces: NamespaceFlags,
    /// `bulkhead exec`: die with the parent. Never for supervised services,
    /// which outlive a daemon crash (docs/ARCHITECTURE.md decision 11).
    pub die_with_parent: bool,
    /// The bulkhead binary to run as init.
    pub init_exe: &'a Path,
    /// Place the child by writing its pid to `cgroup.procs` while it waits
    /// on a pipe, instead of `CLONE_INTO_CGROUP`. Kernels before 5.7 need
    /// this and get it automatically; setting it forces that path (tests).
    pub attach_after_clone: bool,
}

/// A running init, the service's PID 1.
#[derive(Debug)]
pub struct Spawned {
    /// The init's pid in bulkhead's PID namespace.
    pub pid: i32,
    pub pidfd: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot prepare the spawn ({what}): {source}")]
    Prepare {
        what: &'static str,
        source: io::Error,
    },
    #[error("clone3 into {cgroup} failed: {source}")]
    Clone { cgroup: PathBuf, source: io::Error },
    #[error("setup step {} failed: {}", .step.name(), io::Error::from_raw_os_error(*.errno))]
    Step { step: Step, errno: i32 },
    #[error("the init did not report within {0:?}")]
    Timeout(Duration),
}

impl SpawnError {
    pub fn suggestion(&self) -> &'static str {
        match self {
            SpawnError::Step { step, errno } => step.suggestion(*errno),
            SpawnError::Clone { source, .. } if source.raw_os_error() == Some(libc::EAGAIN) => {
                "the cgroup's pids.max is reached, or the system is out of pids"
            }
            SpawnError::Clone { .. } => {
                "run `bulkhead check`: clone3 into a cgroup needs Linux 5.7+ and root"
            }
            SpawnError::Prepare { .. } => {
                "an argument or environment value contains a NUL byte, or fds ran out"
            }
            SpawnError::Timeout(_) => "the init hung before exec: check the mounts and the command",
        }
    }
}

fn prep(what: &'static str) -> impl FnOnce(io::Error) -> SpawnError {
    move |source| SpawnError::Prepare { what, source }
}

fn cstring(s: &[u8], what: &'static str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|e| SpawnError::Prepare {
        what,
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// A CLOEXEC pipe whose ends sit at fd 10 or above, so the child can move
/// them to 3 and 4 without overwriting one with the other.
fn high_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let hi = |fd: OwnedFd| -> io::Result<OwnedFd> { Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 10)?) };
    Ok((hi(r)?, hi(w)?))
}

/// The init to run: `bulkhead-init` beside the running binary (installed
/// together), else the running binary itself, which also serves as init
/// (`bulkhead __init`), only larger.
pub fn init_exe() -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let small = me.with_file_name("bulkhead-init");
    Ok(if small.is_file() { small } else { me })
}

/// Spawns the init in `req.cgroup` and returns once the service has been
/// exec'd (or a setup step failed, which is returned as [`SpawnError::Step`]).
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    // Everything the child touches is built here, before the clone.
    let exe = cstring(req.init_exe.as_os_str().as_bytes(), "init path")?;
    let argv_owned = [
        cstring(b"bulkhead-init", "argv")?,
        cstring(b"__init", "argv")?,
    ];
    let argv: [*const libc::c_char; 3] = [
        argv_owned[0].as_ptr(),
        argv_owned[1].as_ptr(),
        std::ptr::null(),
    ];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // The init makes the mount namespace itself, once its own files are
    // open (see `InitSpec::unshare_mount`).
    let mut spec = req.spec.clone();
    spec.unshare_mount = req.namespaces.mount;
    let spec_json = serde_json::to_vec(&spec).map_err(|e| SpawnError::Prepare {
        what: "spec",
        source: e.into(),
    })?;
    let (spec_r, spec_w) = high_pipe().map_err(prep("spec pipe"))?;
    let (err_r, err_w) = high_pipe().map_err(prep("error pipe"))?;
    let cgroup_dir = std::fs::File::open(req.cgroup).map_err(|e| SpawnError::Clone {
        cgroup: req.cgroup.to_path_buf(),
        source: e,
    })?;
    let fds = ChildFds {
        die_with_parent: req.die_with_parent,
        spec_r: spec_r.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
        go: None,
    };
    let ns = NamespaceFlags {
        mount: false,
        ..req.namespaces
    }
    .clone_flags();
    let mut cloned = None;
    if !req.attach_after_clone {
        // SAFETY: the child side runs `child`, which only makes
        // async-signal-safe calls on memory prepared above.
        match unsafe { fork_init(ns, Some(cgroup_dir.as_fd()), &fds, &exe, &argv, &envp) } {
            Ok(c) => cloned = Some(c),
            // E2BIG: the kernel predates clone_args.cgroup (5.7); fall back.
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {}
            Err(source) => {
                return Err(SpawnError::Clone {
                    cgroup: req.cgroup.to_path_buf(),
                    source,
                });
            }
        }
    }
    let (pid, pidfd) =
        match cloned {
            Some(c) => c,
            None => {
                // The child waits on `go` until the parent has written its pid
                // to cgroup.procs: it runs nothing of its own outside the cgroup.
                let (go_r, go_w) = high_pipe().map_err(prep("go pipe"))?;
                let fds = ChildFds {
                    go: Some((go_r.as_raw_fd(), go_w.as_raw_fd())),
                    ..fds
                };
                // SAFETY: as above.
                let (pid, pidfd) = unsafe { fork_init(ns, None, &fds, &exe, &argv, &envp) }
                    .map_err(|source| SpawnError::Clone {
                        cgroup: req.cgroup.to_path_buf(),
                        source,
                    })?;
                drop(go_r);
                if let Err(e) = std::fs::write(req.cgroup.join("cgroup.procs"), pid.to_string()) {
                    // Closing `go` unwritten ends the child before its exec.
                    drop(go_w);
                    reap(pid);
                    return Err(SpawnError::Step {
                        step: Step::JoinCgroup,
                        errno: e.raw_os_error().unwrap_or(libc::EIO),
                    });
                }
                let _ = std::fs::File::from(go_w).write_all(b"1");
                (pid, pidfd)
            }
        };
    drop((spec_r, err_w, cgroup_dir));

    // Hand over the spec. A write error means the child died before reading:
    // the error pipe says why.
    let mut spec_w = std::fs::File::from(spec_w);
    let _ = spec_w.write_all(&spec_json);
    drop(spec_w);

    match read_failure(err_r, Duration::from_secs(120)) {
        Ok(None) => Ok(Spawned { pid, pidfd }),
        Ok(Some((step, errno))) => {
            reap(pid);
            Err(SpawnError::Step { step, errno })
        }
        Err(e) => {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            reap(pid);
            Err(e)
        }
    }
}

/// Reads the error pipe to EOF: nothing means every step succeeded.
fn read_failure(err_r: OwnedFd, timeout: Duration) -> Result<Option<(Step, i32)>, SpawnError> {
    let mut fds = [rustix::event::PollFd::new(
        &err_r,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(60),
        tv_nsec: 0,
    };
    loop {
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Err(SpawnError::Timeout(timeout)),
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(prep("error pipe")(e.into())),
        }
    }
    let mut buf = Vec::with_capacity(8);
    std::fs::File::from(err_r)
        .read_to_end(&mut buf)
        .map_err(prep("error pipe"))?;
    Ok(decode_failure(&buf))
}

fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

/// The fds and choices the child needs, all plain integers.
#[derive(Clone, Copy)]
struct ChildFds {
    die_with_parent: bool,
    spec_r: RawFd,
    err_w: RawFd,
    /// The fallback's (read, write) go pipe.
    go: Option<(RawFd, RawFd)>,
}

/// clone3 (see [`clone3`]) with the namespaces in `flags`, into `cgroup`
/// when given; returns the child's pid and pidfd. The child runs [`child`].
///
/// # Safety
/// The pointers must refer to NUL-terminated arrays prepared before the call.
unsafe fn fork_init(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    fds: &ChildFds,
    exe: &CString,
    argv: &[*const libc::c_char; 3],
    envp: &[*const libc::c_char; 1],
) -> io::Result<(i32, OwnedFd)> {
    // SAFETY: the child runs only `child`, which never returns and makes
    // async-signal-safe calls on data prepared before the clone (`fds`,
    // `exe`, `argv`, `envp`, all in its copy of this address space).
    match unsafe { clone3(flags, cgroup) }? {
        // SAFETY: we are the freshly cloned child, with the caller's
        // prepared arrays.
        Forked::Child => unsafe { child(*fds, exe, argv, envp) },
        Forked::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

/// The cloned child: async-signal-safe calls only, then exec of the init.
///
/// # Safety
/// Must only be called in the child right after clone3, with pointers to
/// NUL-terminated arrays that stay valid (they live in the copied stack).
unsafe fn child(
    fds: ChildFds,
    exe: &CString,
    argv: &[*const libc::c_char; 3],
    envp: &[*const libc::c_char; 1],
) -> ! {
    let fail = |step: Step| -> ! {
        let rec = encode_failure(step, last_errno());
        // SAFETY: write(2) and _exit(2) are async-signal-safe; `rec` is a
        // valid buffer of the length given.
        unsafe {
            libc::write(fds.err_w, rec.as_ptr().cast(), rec.len());
            libc::_exit(127)
        }
    };
    // SAFETY: prctl, close, read, dup2, sigprocmask, signal and execve are
    // async-signal-safe; every pointer refers to memory prepared before the
    // clone and still mapped in this copy of the address space.
    unsafe {
        if fds.die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(Step::Pdeathsig);
        }
        if let Some((go_r, go_w)) = fds.go {
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
        if libc::dup2(fds.spec_r, 3) < 0 || libc::dup2(fds.err_w, 4) < 0 {
            fail(Step::ExecInit);
        }
        // A clean signal state: nothing blocked, SIGPIPE back to default
        // (Rust ignores it in the parent and execve keeps ignored signals).
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(Step::ExecInit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_flags() {
        let all = NamespaceFlags {
            pid: true,
            mount: true,
            net: true,
            uts: true,
            ipc: true,
            cgroup: true,
        };
        let f = all.clone_flags();
        for flag in [
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
        ] {
            assert_ne!(f & u64::from(flag.unsigned_abs()), 0);
        }
        let none = NamespaceFlags {
            pid: false,
            mount: false,
            net: false,
            uts: false,
            ipc: false,
            cgroup: false,
        };
        assert_eq!(none.clone_flags(), 0);
    }

    #[test]
    fn pipes_sit_high() {
        let (r, w) = high_pipe().unwrap();
        assert!(r.as_raw_fd() >= 10 && w.as_raw_fd() >= 10);
    }
}
