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
//! the child. That routine is `sys::child::clone_init`; this module
//! prepares its data and handles the parent's side.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spec::{InitSpec, Step, decode_failure};
use crate::sys::child::{InitChild, clone_init};

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
    let argv = [
        cstring(b"bulkhead-init", "argv")?,
        cstring(b"__init", "argv")?,
    ];
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
    let child = InitChild {
        die_with_parent: req.die_with_parent,
        spec_r: spec_r.as_fd(),
        err_w: err_w.as_fd(),
        go: None,
        exe: &exe,
        argv: &argv,
        env: &[],
    };
    let ns = NamespaceFlags {
        mount: false,
        ..req.namespaces
    }
    .clone_flags();
    let mut cloned = None;
    if !req.attach_after_clone {
        match clone_init(ns, Some(cgroup_dir.as_fd()), &child) {
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
    let (pid, pidfd) = match cloned {
        Some(c) => c,
        None => {
            // The child waits on `go` until the parent has written its pid
            // to cgroup.procs: it runs nothing of its own outside the cgroup.
            let (go_r, go_w) = high_pipe().map_err(prep("go pipe"))?;
            let child = InitChild {
                go: Some((go_r.as_fd(), go_w.as_fd())),
                ..child
            };
            let (pid, pidfd) =
                clone_init(ns, None, &child).map_err(|source| SpawnError::Clone {
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
            let _ = crate::sys::pidfd::send_signal(&pidfd, rustix::process::Signal::KILL);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
