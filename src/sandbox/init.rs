//! bulkhead's init: PID 1 of the service's PID namespace (docs/ARCHITECTURE.md decision 5).
//!
//! It is the bulkhead binary re-executed (`bulkhead-init __init`), a fresh
//! single-threaded process with no async runtime, so it may allocate. It:
//! 1. reads the [`InitSpec`] from fd 3, keeps fd 4 to report failed steps;
//! 2. opens the status file, then makes the mount namespace's changes
//!    (private propagation, a fresh /proc, read-only / read-write / tmpfs /
//!    inaccessible paths), sets the hostname, and brings the loopback of a
//!    new network namespace up;
//! 3. forks the service, which sets rlimits, nice, oom_score_adj, io priority,
//!    groups/gid/uid, capabilities, no_new_privs, working dir (as the
//!    service's user), closes every fd
//!    but stdio, installs the seccomp filter last, and execs;
//! 4. forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
//!    service, reaps every child (orphans included), and when the service
//!    ends records how in the status file and exits with its status
//!    (128 + signal for a signal death). The kernel then ends whatever else
//!    is left in the namespace.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::logsink::{LogSink, Stream};
use super::spec::{ExitRecord, InitSpec, Step};
use crate::seccomp::install;

const SPEC_FD: RawFd = 3;
const ERR_FD: RawFd = 4;

/// Signals the init passes on to the service.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What the init keeps once the service is forked: CAP_KILL, to signal a
/// service of another user. Everything else goes (bounding set up to
/// `cap_last_cap`), no_new_privs is set and the init is no longer dumpable,
/// so a service that may ptrace finds nothing worth taking in its PID 1.
fn drop_privileges() {
    // The same credentials code as the service's, with a plan that keeps
    // CAP_KILL alone and changes no id.
    let plan = super::creds::prepare(
        &super::creds::Wanted {
            uid: None,
            gid: None,
            groups: &[],
            capabilities: Some(&[CAP_KILL]),
            no_new_privs: true,
        },
        cap_last_cap(),
    );
    if let Err((_, errno)) = super::creds::apply(&plan) {
        fail(Step::DropInit, errno);
    }
    check(Step::DropInit, nix::sys::prctl::set_dumpable(false));
}

/// The init's own filter (`seccomp::own`), last: nothing the init does
/// after it needs more than the wait loop, the log and the exit record.
fn confine_init(spec: &InitSpec) {
    use crate::seccomp::install;
    if let Err((_, errno)) = install::prepare(&spec.init_seccomp).and_then(|f| install::apply(&f)) {
        fail(Step::DropInit, errno);
    }
}

const CAP_KILL: u8 = 5;

/// The highest capability this kernel knows: one definition, in `creds`.
pub use super::creds::cap_last_cap;

/// Reports a failed step on the error pipe (the spawn placed it at fd 4;
/// once closed, the write fails harmlessly) and exits.
fn fail(step: Step, errno: i32) -> ! {
    crate::sys::step::report_and_exit(ERR_FD, step, errno)
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn check<T>(step: Step, r: nix::Result<T>) -> T {
    r.unwrap_or_else(|e| fail(step, e as i32))
}

/// The init's entry point (`bulkhead __init`). Never returns.
pub fn main() -> ! {
    // The two pipes the spawn placed at fds 3 and 4 are ours, claimed
    // before anything else is opened.
    let spec_fd = inherited(SPEC_FD, Step::ReadSpec);
    let err_fd = inherited(ERR_FD, Step::ReadSpec);
    // fd 4 must not leak into the service beyond its exec.
    let _ = rustix::io::fcntl_setfd(&err_fd, rustix::io::FdFlags::CLOEXEC);
    let spec = read_spec(spec_fd);
    let mut status_file = spec.status_file.as_ref().map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(p)
            .unwrap_or_else(|e| fail(Step::StatusFile, errno_of(&e)))
    });
    // The log file and its directory are opened before the mounts change,
    // which may hide them; one pipe carries the service's stdout, another
    // its stderr, so each line is tagged with its stream.
    let output = spec.log.as_ref().map(|l| {
        let sink = LogSink::open(l).unwrap_or_else(|e| fail(Step::LogFile, errno_of(&e)));
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .unwrap_or_else(|e| fail(Step::LogFile, e.raw_os_error()))
        };
        let ((out_r, out_w), (err_r, err_w)) = (pipe(), pipe());
        (sink, [out_r, err_r], [out_w, err_w])
    });
    if spec.detach {
        // Fails only if already a group leader, which a fresh clone is not.
        let _ = nix::unistd::setsid();
    }
    if spec.unshare_mount {
        check(
            Step::MountPrivate,
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS),
        );
    }
    setup_mounts(&spec);
    if let Some(h) = &spec.hostname {
        check(Step::Hostname, nix::unistd::sethostname(h));
    }
    if spec.loopback {
        loopback_up();
    }

    // Block the signals the init handles before forking, so none is lost
    // between fork and the wait loop; the service unblocks them.
    let mut handled = SigSet::empty();
    for s in FORWARDED {
        handled.add(s);
    }
    handled.add(Signal::SIGCHLD);
    check(Step::Signals, handled.thread_block());

    // A fresh exec with one thread, so the child may do anything a normal
    // process may (sys checks the thread count).
    let forked = crate::sys::process::fork_single_threaded();
    let service = match forked.unwrap_or_else(|e| fail(Step::Fork, errno_of(&e))) {
        ForkResult::Child => service(&spec, output.as_ref().map(|o| &o.2)),
        ForkResult::Parent { child } => child,
    };
    // With a log file the init lets go of the stdio it inherited (the
    // daemon's terminal, pipe or journal stream): a supervised service must
    // not keep its supervisor's output open, nor get EPIPE once it is gone.
    if output.is_some()
        && let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    // The service holds the pipes' write ends now; the init reads only.
    let output = output.map(|(sink, r, _w)| Output {
        sink,
        pipes: r.map(Some),
    });
    drop_privileges();
    confine_init(&spec);
    // Our copy of the error pipe goes; the service's closes at its exec,
    // and the parent's read then sees EOF: every step succeeded.
    drop(err_fd);

    let record = supervise(service, &handled, output);
    if let Some(f) = status_file.as_mut()
        && let Ok(json) = serde_json::to_vec(&record)
    {
        let _ = f
            .set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|_| f.write_all(&json))
            .and_then(|()| f.sync_all());
    }
    std::process::exit(record.shell_status())
}

/// Takes ownership of the pipe the spawn placed at `fd`.
fn inherited(fd: RawFd, step: Step) -> OwnedFd {
    crate::sys::fd::claim_inherited(fd).unwrap_or_else(|e| fail(step, errno_of(&e)))
}

fn read_spec(fd: OwnedFd) -> InitSpec {
    let mut f = File::from(fd);
    let mut buf = Vec::new();
    if let Err(e) = f.read_to_end(&mut buf) {
        fail(Step::ReadSpec, errno_of(&e));
    }
    serde_json::from_slice(&buf).unwrap_or_else(|_| fail(Step::ReadSpec, libc::EINVAL))
}

fn setup_mounts(spec: &InitSpec) {
    let owner = (spec.uid.unwrap_or(0), spec.gid.unwrap_or(0));
    if let Err((step, errno)) = super::walls::apply(&super::walls::plan(spec), owner) {
        fail(step, errno)
    }
}

/// `ip link set lo up`: SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP on `lo`,
/// through any socket of the namespace.
fn loopback_up() {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap_or_else(|e| fail(Step::Loopback, e.raw_os_error()));
    if let Err(e) = crate::sys::net::link_up(&sock, b"lo") {
        fail(Step::Loopback, errno_of(&e));
    }
}

/// The service's output on its way to the log file.
struct Output {
    sink: LogSink,
    /// stdout's and stderr's read ends, until each reaches end of file.
    pipes: [Option<OwnedFd>; 2],
}

impl Output {
    /// Copies what the pipes hold to the log, at most `rounds` reads per
    /// stream, without blocking. The loop calls it with one round, so a
    /// service writing as fast as it can never starves signals or reaping.
    /// Returns whether any pipe may hold more.
    fn pump(&mut self, buf: &mut [u8], rounds: usize) -> bool {
        let mut more = false;
        for (stream, slot) in [Stream::Out, Stream::Err].into_iter().zip(&mut self.pipes) {
            for _ in 0..rounds {
                let Some(r) = slot.as_ref() else { break };
                match rustix::io::read(r, &mut *buf) {
                    Ok(0) => *slot = None,
                    Ok(n) => {
                        self.sink.stream(stream, &buf[..n], SystemTime::now());
                        more |= n == buf.len();
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    // EAGAIN: drained for now.
                    Err(_) => break,
                }
            }
        }
        more
    }
}

/// Waits for the service, forwarding signals, reaping every child and
/// copying the service's output to its log file, if it has one.
fn supervise(service: Pid, handled: &SigSet, mut output: Option<Output>) -> ExitRecord {
    use rustix::event::{PollFd, PollFlags, poll};
    use rustix::io::Errno;

    let sfd = check(
        Step::Signals,
        SignalFd::with_flags(handled, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK),
    );
    for r in output.iter().flat_map(|o| o.pipes.iter().flatten()) {
        // Drained until EAGAIN, so a wakeup never blocks in read.
        let _ = rustix::io::ioctl_fionbio(r, true);
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = vec![PollFd::new(&sfd, PollFlags::IN)];
        for r in output.iter().flat_map(|o| o.pipes.iter().flatten()) {
            fds.push(PollFd::new(r, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            // Nothing sensible is left to do but keep reaping.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
        drop(fds);
        if let Some(o) = output.as_mut() {
            o.pump(&mut buf, 1);
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
            if let Ok(sig) = Signal::try_from(signo)
                && sig != Signal::SIGCHLD
            {
                let _ = nix::sys::signal::kill(service, sig);
            }
        }
        if let Some(record) = reap(service) {
            // What the service wrote before it ended still goes to the log,
            // its last unfinished lines included.
            // Bounded: an orphan that keeps writing must not keep the init.
            if let Some(o) = output.as_mut() {
                for _ in 0..1024 {
                    if !o.pump(&mut buf, 16) {
                        break;
                    }
                }
                o.sink.finish(SystemTime::now());
            }
            return record;
        }
    }
}

/// Reaps every child that has ended; the service's end is returned.
fn reap(service: Pid) -> Option<ExitRecord> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == service => {
                return Some(ExitRecord::Exited { code });
            }
            Ok(WaitStatus::Signaled(pid, s, core)) if pid == service => {
                return Some(ExitRecord::Signaled {
                    signal: s as i32,
                    core_dumped: core,
                });
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The service child: the per-process steps, in order, then exec.
fn service(spec: &InitSpec, log_pipes: Option<&[OwnedFd; 2]>) -> ! {
    check(Step::Signals, SigSet::all().thread_unblock());
    // A session of its own: the terminal of `bulkhead exec`'s caller is
    // not its controlling terminal, so it cannot push keystrokes into the
    // caller's shell (TIOCSTI) and a Ctrl-C reaches it once, forwarded by
    // the init, not a second time from the terminal.
    check(Step::Setsid, nix::unistd::setsid().map(drop));
    // Every disposition back to default: exec keeps ignored signals ignored,
    // and the caller of `bulkhead exec` (a shell's background job, nohup)
    // may have ignored SIGINT, SIGQUIT or SIGHUP; the init's runtime ignores
    // SIGPIPE.
    crate::sys::signal::reset_all_to_default();
    if let Some([out, err]) = log_pipes {
        // stdout and stderr to the init's log pipes, stdin from /dev/null:
        // a supervised service has no terminal.
        let null =
            std::fs::File::open("/dev/null").unwrap_or_else(|e| fail(Step::Stdio, errno_of(&e)));
        check(Step::Stdio, nix::unistd::dup2_stdin(&null));
        check(Step::Stdio, nix::unistd::dup2_stdout(out));
        check(Step::Stdio, nix::unistd::dup2_stderr(err));
    }
    // Every step below is prepared first, while allocating is still
    // free; the steps themselves allocate nothing.
    let done = |r: Result<(), (Step, i32)>| r.unwrap_or_else(|(step, errno)| fail(step, errno));
    let limits = super::limits::prepare(&spec.into(), Path::new("/proc"))
        .unwrap_or_else(|(step, errno)| fail(step, errno));
    let creds = super::creds::prepare(&spec.into(), cap_last_cap());
    let filter = install::prepare(&spec.seccomp).unwrap_or_else(|(step, errno)| fail(step, errno));
    let cstr = |s: &[u8]| CString::new(s).unwrap_or_else(|_| fail(Step::Exec, libc::EINVAL));
    let program = cstr(spec.program.as_os_str().as_bytes());
    let argv: Vec<CString> = spec.argv.iter().map(|a| cstr(a.as_bytes())).collect();
    let env: Vec<CString> = spec.env.iter().map(|e| cstr(e.as_bytes())).collect();

    done(super::limits::apply(&limits));
    // Groups, gid, uid, capabilities, no_new_privs (`creds` has the order).
    done(super::creds::apply(&creds));
    // After the credential change, as systemd does: the directory must be
    // reachable by the service's own user, not just by root.
    check(Step::Chdir, nix::unistd::chdir(spec.working_dir.as_path()));
    // Every fd above stdio closes at exec; the error pipe (fd 4) stays
    // usable until then.
    if let Err(e) = crate::sys::fd::cloexec_from(3) {
        fail(Step::CloseFds, errno_of(&e));
    }
    // The filter is the last step, so a profile without brk or mmap still
    // lets the child report a failed exec instead of dying silently.
    done(install::apply(&filter));
    let e = nix::unistd::execve(&program, &argv, &env).unwrap_err();
    fail(Step::Exec, e as i32)
}
