//! Entering a running compartment, as `nsenter` and `runc exec` do: a
//! socket made inside an instance's network namespace (for a health probe
//! of a service with `namespaces.net`), and a command run inside an
//! instance (its cgroup, its namespaces, its user, capabilities, rlimits and
//! seccomp filter) for an `exec` health probe.
//!
//! ```text
//! caller (blocking)             a short-lived thread            the child (clone3)
//! ---------------------------   ----------------------------    -------------------------------
//! open /proc/<pid>/ns/*, then   setns(pid ns): changes only     born in the cgroup and the PID
//! check the pidfd: still alive  this thread's children's ns     namespace; setns net, ipc, uts,
//! pipes at fd >= 10             build argv, env, cap masks      mnt; setsid; stdio; rlimits;
//!                               clone3(INTO_CGROUP|PIDFD) ───>  bounding set, uid/gid, caps,
//! <- pid, pidfd, output pipe    the thread ends                 no_new_privs; chdir; seccomp; exec
//! ```
//!
//! Why the pieces sit where they do:
//! - `setns(CLONE_NEWPID)` moves no one: it sets the namespace the caller's
//!   *next children* are born in, for the calling thread only. It is done in
//!   a thread of our own that ends right after the clone, so no pooled
//!   thread keeps spawning into a service's namespace (and a thread whose
//!   children's namespace differs from its own cannot start threads).
//! - The mount namespace cannot be entered by a thread of a multi-threaded
//!   process (its filesystem context is shared: EINVAL), so the child, a
//!   process of its own, enters it, and enters it last: it also moves the
//!   root and the working directory. Every namespace file is opened before,
//!   from the daemon's /proc.
//! - The namespaces are found through `/proc/<pid>/ns/*`; checking the init's
//!   pidfd afterwards proves the pid still named that init when the files
//!   were opened (a pid can be reused; a pidfd cannot).
//! - The child of a multi-threaded parent makes raw syscalls only, on memory
//!   prepared before the clone: malloc's lock may be held by a thread that
//!   does not exist in the child, and glibc's setuid/setgid wrappers signal
//!   every thread glibc believes exists (threads this child does not have).
//!   That routine is `sys::child::clone_entered`; this module prepares its
//!   data.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::creds::{self, CredPlan};
use super::limits::{self, LimitPlan};
use super::spawn::NamespaceFlags;
use super::spec::{InitSpec, Step, decode_failure};
use crate::config::host::DEFAULT_PATH;
use crate::seccomp::install::{self, Filter};
use crate::sys::child::{EnterChild, clone_entered};

/// A running init whose namespaces are entered.
#[derive(Debug, Clone, Copy)]
pub struct InitRef<'a> {
    /// Its pid in the daemon's PID namespace.
    pub pid: i32,
    /// Its pidfd, which proves the pid was not reused meanwhile; without it
    /// the pid is trusted.
    pub pidfd: Option<BorrowedFd<'a>>,
}

impl InitRef<'_> {
    fn ns(&self, name: &str) -> Result<OwnedFd, EnterError> {
        let path = format!("/proc/{}/ns/{name}", self.pid);
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(|source| EnterError::Io {
                what: format!("cannot open {path}"),
                source,
            })
    }

    /// Fails if the init has exited (its pidfd is readable).
    fn alive(&self) -> Result<(), EnterError> {
        let Some(fd) = self.pidfd else { return Ok(()) };
        let mut p = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::time::Timespec::default();
        match rustix::event::poll(&mut p, Some(&zero)) {
            Ok(0) => Ok(()),
            Ok(_) => Err(EnterError::Gone(self.pid)),
            Err(e) => Err(EnterError::Io {
                what: "cannot poll the init's pidfd".into(),
                source: e.into(),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("the instance's init (pid {0}) is gone")]
    Gone(i32),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> EnterError + '_ {
    move |source| EnterError::Io {
        what: what.to_string(),
        source,
    }
}

/// A non-blocking TCP socket (IPv6 when `v6`) made inside the network
/// namespace of `init`. It stays in that namespace for its whole life, so
/// connecting it from anywhere reaches the service's own network: its
/// loopback, its addresses. Blocking (it waits for a short-lived thread).
pub fn socket_in_netns(init: InitRef<'_>, v6: bool) -> Result<tokio::net::TcpSocket, EnterError> {
    let ns = init.ns("net")?;
    init.alive()?;
    let made = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("bulkhead-netns".into())
            .stack_size(64 * 1024)
            .spawn_scoped(s, || -> io::Result<tokio::net::TcpSocket> {
                // This thread alone moves; it ends right after.
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                if v6 {
                    tokio::net::TcpSocket::new_v6()
                } else {
                    tokio::net::TcpSocket::new_v4()
                }
            })
            .map_err(io_err("cannot start a thread"))?
            .join()
            .map_err(|_| EnterError::Io {
                what: "the network namespace thread".into(),
                source: io::Error::other("panicked"),
            })
    })?;
    made.map_err(io_err(
        "cannot make a socket in the instance's network namespace",
    ))
}

/// Who an entered command runs as, and under which limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// `None` keeps the caller's.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    /// Capabilities kept (bounding, permitted, effective, inheritable, and
    /// ambient for non-root); `None` leaves the caller's as they are.
    pub capabilities: Option<Vec<u8>>,
    /// (RLIMIT_* resource, soft, hard).
    pub rlimits: Vec<(i32, u64, u64)>,
    /// A compiled BPF program, as in [`InitSpec::seccomp`]; empty = none.
    pub seccomp: Vec<(u16, u8, u8, u32)>,
}

impl Identity {
    /// The identity a service runs with, from the spec its spawn uses.
    pub fn of_spec(spec: &InitSpec) -> Identity {
        Identity {
            uid: spec.uid,
            gid: spec.gid,
            groups: spec.groups.clone(),
            capabilities: Some(spec.capabilities.clone()),
            rlimits: spec.rlimits.clone(),
            seccomp: spec.seccomp.clone(),
        }
    }
}

impl<'a> From<&'a Identity> for creds::Wanted<'a> {
    /// An entered command always gets no_new_privs.
    fn from(id: &'a Identity) -> creds::Wanted<'a> {
        creds::Wanted {
            uid: id.uid,
            gid: id.gid,
            groups: &id.groups,
            capabilities: id.capabilities.as_deref(),
            no_new_privs: true,
        }
    }
}

impl<'a> From<&'a Identity> for limits::Wanted<'a> {
    fn from(id: &'a Identity) -> limits::Wanted<'a> {
        limits::Wanted {
            rlimits: &id.rlimits,
            ..limits::Wanted::default()
        }
    }
}

/// What to run, and where.
#[derive(Debug, Clone, Copy)]
pub struct EnterRequest<'a> {
    /// The init whose namespaces (those set in `namespaces`) are entered;
    /// `None` enters none.
    pub init: Option<InitRef<'a>>,
    pub namespaces: NamespaceFlags,
    /// The cgroup the command is born in; `None`: the caller's.
    pub cgroup: Option<&'a Path>,
    /// argv[0] is looked up in the env's PATH inside the compartment when
    /// it has no slash.
    pub argv: &'a [String],
    /// `KEY=VALUE`, the whole environment.
    pub env: &'a [String],
    /// Entered after the credentials change, so as the command's user.
    pub working_dir: &'a Path,
    pub identity: &'a Identity,
    /// Place the child by having it write to `cgroup.procs` instead of
    /// `CLONE_INTO_CGROUP` (kernels before 5.7 get this by themselves).
    pub attach_after_clone: bool,
}

/// A started command. Its stdout and stderr go to one pipe; stdin is
/// /dev/null. It leads a session and a process group of its own (group id =
/// `pid`), so the group can be killed with it.
#[derive(Debug)]
pub struct Entered {
    /// Its pid in the daemon's PID namespace.
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The read end of its stdout and stderr.
    pub output: OwnedFd,
    /// Non-blocking; 8 bytes (step, errno) when a setup step failed.
    failure: OwnedFd,
}

impl Entered {
    /// Which setup step failed, if one did. Meaningful once the child has
    /// exited: a failed step is written before its `_exit`.
    pub fn failure(&self) -> Option<(Step, i32)> {
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.failure, &mut buf) {
            Ok(8) => decode_failure(&buf),
            _ => None,
        }
    }
}

/// A CLOEXEC pipe at fd 10 or above, so the child's dup2 onto 0-2 never
/// overwrites one end with another (the daemon may run with closed stdio).
fn high_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((high(r)?, high(w)?))
}

fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 10)?)
}

fn cstring(s: &[u8]) -> Result<CString, EnterError> {
    CString::new(s).map_err(|e| EnterError::Io {
        what: "an argument or environment entry contains a NUL byte".into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// Where `argv0` may be, in the order execvp would try: itself when it has
/// a slash, else each PATH directory (an empty entry is the working dir).
pub fn candidates(argv0: &str, env: &[String]) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| {
            if d.is_empty() {
                argv0.to_string()
            } else {
                format!("{}/{argv0}", d.trim_end_matches('/'))
            }
        })
        .collect()
}

/// Everything the child touches but its descriptors, built before the
/// clone.
struct Plan {
    limits: LimitPlan,
    creds: CredPlan,
    working_dir: CString,
    programs: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    seccomp: Filter,
}

fn plan(req: &EnterRequest<'_>) -> Result<Plan, EnterError> {
    let argv0 = req.argv.first().ok_or_else(|| EnterError::Io {
        what: "the probe command".into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let programs = candidates(argv0, req.env)
        .iter()
        .map(|p| cstring(p.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let argv = req
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env = req
        .env
        .iter()
        .map(|e| cstring(e.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let id = req.identity;
    let step_err = |what: &'static str| {
        move |(_, errno): (Step, i32)| EnterError::Io {
            what: what.into(),
            source: io::Error::from_raw_os_error(errno),
        }
    };
    let limits = limits::prepare(&id.into(), Path::new("/proc")).map_err(step_err("the limits"))?;
    let seccomp = install::prepare(&id.seccomp).map_err(step_err("the seccomp program"))?;
    Ok(Plan {
        limits,
        creds: creds::prepare(&id.into(), creds::cap_last_cap()),
        working_dir: cstring(req.working_dir.as_os_str().as_bytes())?,
        programs,
        argv,
        env,
        seccomp,
    })
}

/// Starts `req.argv` inside the compartment `req` names. Blocking (briefly:
/// it waits for a thread that clones); run it on a blocking pool.
///
/// The caller owns the result: it must reap the child (waitid on the pidfd)
/// and should kill its process group when done with it.
pub fn spawn_entered(req: &EnterRequest<'_>) -> Result<Entered, EnterError> {
    // Every namespace file first, then the proof they were the init's.
    let mut ns = Vec::new();
    let mut pid_ns = None;
    if let Some(init) = req.init {
        let n = req.namespaces;
        for (on, name, flag, step) in [
            (n.net, "net", libc::CLONE_NEWNET, Step::EnterNet),
            (n.ipc, "ipc", libc::CLONE_NEWIPC, Step::EnterIpc),
            (n.uts, "uts", libc::CLONE_NEWUTS, Step::EnterUts),
            (n.mount, "mnt", libc::CLONE_NEWNS, Step::EnterMount),
        ] {
            if on {
                ns.push((init.ns(name)?, flag, step));
            }
        }
        if n.pid {
            pid_ns = Some(init.ns("pid")?);
        }
        init.alive()?;
    }
    let cgroup = match req.cgroup {
        Some(dir) => {
            let d = File::open(dir).map_err(|source| EnterError::Io {
                what: format!("cannot open the cgroup {}", dir.display()),
                source,
            })?;
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|source| EnterError::Io {
                    what: format!("cannot open {}/cgroup.procs", dir.display()),
                    source,
                })?;
            Some((OwnedFd::from(d), OwnedFd::from(procs)))
        }
        None => None,
    };
    let null = File::open("/dev/null")
        .and_then(|f| high(f.into()))
        .map_err(io_err("cannot open /dev/null"))?;
    let (out_r, out_w) = high_pipe().map_err(io_err("cannot make the output pipe"))?;
    let (err_r, err_w) = high_pipe().map_err(io_err("cannot make the error pipe"))?;

    let (pid, pidfd) = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("bulkhead-enter".into())
            .spawn_scoped(s, || -> Result<(i32, OwnedFd), EnterError> {
                let plan = plan(req)?;
                let ns: Vec<(BorrowedFd<'_>, libc::c_int, Step)> =
                    ns.iter().map(|(fd, f, s)| (fd.as_fd(), *f, *s)).collect();
                let mut child = EnterChild {
                    join_procs: None,
                    ns: &ns,
                    null: null.as_fd(),
                    out_w: out_w.as_fd(),
                    err_w: err_w.as_fd(),
                    limits: &plan.limits,
                    creds: &plan.creds,
                    working_dir: &plan.working_dir,
                    seccomp: &plan.seccomp,
                    programs: &plan.programs,
                    argv: &plan.argv,
                    env: &plan.env,
                };
                if let Some(fd) = &pid_ns {
                    // Our next child is born in the init's PID namespace;
                    // this thread ends right after the clone.
                    rustix::thread::move_into_link_name_space(
                        fd.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::ProcessID),
                    )
                    .map_err(|e| EnterError::Io {
                        what: "cannot enter the instance's PID namespace".into(),
                        source: e.into(),
                    })?;
                }
                let r = match &cgroup {
                    Some((dir, _)) if !req.attach_after_clone => {
                        clone_entered(Some(dir.as_fd()), &child)
                    }
                    // E2BIG below: the kernel predates CLONE_INTO_CGROUP.
                    Some(_) => Err(io::Error::from_raw_os_error(libc::E2BIG)),
                    None => clone_entered(None, &child),
                };
                match (r, &cgroup) {
                    (Err(e), Some((_, procs))) if e.raw_os_error() == Some(libc::E2BIG) => {
                        child.join_procs = Some(procs.as_fd());
                        clone_entered(None, &child)
                    }
                    (r, _) => r,
                }
                .map_err(io_err("cannot start the command (clone3)"))
            })
            .map_err(io_err("cannot start a thread"))?
            .join()
            .map_err(|_| EnterError::Io {
                what: "the clone thread".into(),
                source: io::Error::other("panicked"),
            })?
    })?;
    drop((out_w, err_w, null, ns, pid_ns, cgroup));
    rustix::io::ioctl_fionbio(&err_r, true).map_err(|e| EnterError::Io {
        what: "the error pipe".into(),
        source: e.into(),
    })?;
    Ok(Entered {
        pid,
        pidfd,
        output: out_r,
        failure: err_r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_candidates_follow_path() {
        let env = vec!["PATH=/a:/b/:".to_string()];
        assert_eq!(candidates("sh", &env), ["/a/sh", "/b/sh", "sh"]);
        assert_eq!(candidates("/bin/sh", &env), ["/bin/sh"]);
        assert_eq!(candidates("./x", &env), ["./x"]);
        let none: Vec<String> = Vec::new();
        assert_eq!(candidates("sh", &none)[0], "/usr/local/sbin/sh");
    }

    #[test]
    fn identity_of_a_spec() {
        let spec = InitSpec {
            uid: Some(65534),
            gid: Some(65534),
            capabilities: vec![10],
            ..InitSpec::default()
        };
        let id = Identity::of_spec(&spec);
        assert_eq!((id.uid, id.gid), (Some(65534), Some(65534)));
        assert_eq!(id.capabilities, Some(vec![10]));
    }
}
