//! `exec` probes: a command run inside the instance's compartment (see
//! `sandbox::enter`), healthy when it exits 0, killed with its process group
//! at the timeout, always reaped.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, waitid};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::pipe;

use super::{Compartment, human, io_reason};
use crate::exit::ExitRecord;
use crate::exit::describe_exit;
use crate::sandbox::enter::{self, EnterRequest, Entered};
use crate::sandbox::spec::Step;
use crate::sys::reactor;

/// How much of the probe's output is kept for the failure reason.
const KEEP_OUTPUT: usize = 512;
/// How long a killed probe gets to die before a thread takes over its reap.
const KILL_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn probe(
    command: &[String],
    comp: &Compartment,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (c, argv) = (comp.clone(), command.to_vec());
    // The spawn enters namespaces from a thread of its own: blocking pool.
    // Its result, if it comes after the deadline, is a `Child` whose drop
    // kills and reaps it.
    let start = tokio::task::spawn_blocking(move || {
        let req = EnterRequest {
            init: c.init(),
            namespaces: c.namespaces,
            cgroup: c.cgroup.as_deref(),
            argv: &argv,
            env: &c.env,
            working_dir: &c.working_dir,
            identity: &c.identity,
            attach_after_clone: false,
        };
        enter::spawn_entered(&req).map(Child::new)
    });
    let child = match tokio::time::timeout_at(deadline, start).await {
        Err(_) => return Err(format!("could not start within {}", human(timeout))),
        Ok(Err(e)) => return Err(format!("the probe's start failed: {e}")),
        Ok(Ok(Err(e))) => return Err(format!("cannot run the probe: {e}")),
        Ok(Ok(Ok(c))) => c,
    };
    let mut run = Running::new(child)?;
    if tokio::time::timeout_at(deadline, run.wait()).await.is_ok() {
        return run.verdict(command);
    }
    run.kill();
    let reaped = tokio::time::timeout(KILL_GRACE, run.wait()).await.is_ok() && run.reap().is_some();
    if !reaped {
        tracing::warn!(
            pid = run.pid(),
            "a killed health probe did not exit within {}: reaped when it does",
            human(KILL_GRACE)
        );
    }
    Err(format!(
        "did not finish within {}: killed{}",
        human(timeout),
        said(&run.output)
    ))
}

/// A started probe; dropped unreaped, it is killed (with its process
/// group) and reaped by a thread, so no path leaves a zombie or a probe
/// running past its loop.
struct Child {
    entered: Option<Entered>,
}

impl Child {
    fn new(e: Entered) -> Child {
        Child { entered: Some(e) }
    }
}

/// SIGKILL to the process group `pid` leads. Only while `pid` is unreaped:
/// then no other group can have that id.
fn kill_group(pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(p, Signal::KILL);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(e) = self.entered.take() else { return };
        kill_group(e.pid);
        let _ = rustix::process::pidfd_send_signal(&e.pidfd, Signal::KILL);
        let reap = move || {
            let _ = waitid(WaitId::PidFd(e.pidfd.as_fd()), WaitIdOptions::EXITED);
        };
        // SIGKILLed, it is gone in a moment; the wait must not hold up the
        // runtime this drop may run on, nor be lost with it.
        if let Err(e) = std::thread::Builder::new()
            .name("bulkhead-reap".into())
            .stack_size(64 * 1024)
            .spawn(reap)
        {
            tracing::error!("cannot start a thread to reap a health probe: {e}");
        }
    }
}

/// A probe being waited for: its exit through the pidfd, its output read
/// as it comes (so a chatty probe never blocks on a full pipe).
struct Running {
    child: Child,
    exit: AsyncFd<OwnedFd>,
    pipe: Option<pipe::Receiver>,
    output: Vec<u8>,
}

impl Running {
    fn new(mut child: Child) -> Result<Running, String> {
        let e = child
            .entered
            .as_mut()
            .ok_or_else(|| "the probe is gone".to_string())?;
        let watch = e
            .pidfd
            .try_clone()
            .map_err(|err| format!("cannot watch the probe: {}", io_reason(&err)))?;
        let out = e
            .output
            .try_clone()
            .map_err(|err| format!("cannot read the probe's output: {}", io_reason(&err)))?;
        let exit = reactor::register(watch, Interest::READABLE)
            .map_err(|err| format!("cannot watch the probe: {}", io_reason(&err)))?;
        let pipe = pipe::Receiver::from_owned_fd(out)
            .map_err(|err| format!("cannot read the probe's output: {}", io_reason(&err)))?;
        Ok(Running {
            child,
            exit,
            pipe: Some(pipe),
            output: Vec::new(),
        })
    }

    fn pid(&self) -> i32 {
        self.child.entered.as_ref().map_or(0, |e| e.pid)
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = KEEP_OUTPUT.saturating_sub(self.output.len());
        self.output
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Until the probe exits, reading its output meanwhile.
    async fn wait(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            let Running {
                exit, pipe, output, ..
            } = self;
            let read = async {
                match pipe.as_mut() {
                    Some(p) => p.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            };
            let got = tokio::select! {
                biased;
                _ = exit.readable() => return,
                r = read => r,
            };
            match got {
                Ok(n) if n > 0 => {
                    let room = KEEP_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
                // End of file or a read error: only the exit is left to see.
                _ => *pipe = None,
            }
        }
    }

    /// What is still in the pipe; never waits (something the probe started
    /// may hold the pipe open).
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Some(p) = self.pipe.as_ref() {
            match p.try_read(&mut buf) {
                Ok(n) if n > 0 => {
                    let chunk = buf[..n].to_vec();
                    self.keep(&chunk);
                }
                _ => self.pipe = None,
            }
        }
    }

    /// SIGKILL to the probe and its process group.
    fn kill(&self) {
        if let Some(e) = &self.child.entered {
            kill_group(e.pid);
            let _ = rustix::process::pidfd_send_signal(&e.pidfd, Signal::KILL);
        }
    }

    /// Reaps the exited probe: kills what is left of its group first (while
    /// the probe's pid still holds the group id), then drains the output.
    fn reap(&mut self) -> Option<ExitRecord> {
        let st = {
            let e = self.child.entered.as_ref()?;
            kill_group(e.pid);
            waitid(
                WaitId::PidFd(e.pidfd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            )
            .ok()
            .flatten()?
        };
        // Reaped: its pid may name another process from now on, so nothing
        // is sent to it (or its group) again.
        self.child.entered = None;
        self.drain();
        match (st.exit_status(), st.terminating_signal()) {
            (Some(code), _) => Some(ExitRecord::Exited { code }),
            (None, Some(signal)) => Some(ExitRecord::Signaled {
                signal,
                core_dumped: false,
            }),
            (None, None) => None,
        }
    }

    /// The probe has exited: reap it and say what its end means.
    fn verdict(&mut self, command: &[String]) -> Result<(), String> {
        let failed = self.child.entered.as_ref().and_then(Entered::failure);
        let Some(rec) = self.reap() else {
            return Err("the probe's exit could not be read".into());
        };
        if let Some((step, errno)) = failed {
            return Err(setup_failure(command, step, errno));
        }
        match rec {
            ExitRecord::Exited { code: 0 } => Ok(()),
            rec => Err(format!("{}{}", describe_exit(rec), said(&self.output))),
        }
    }
}

/// `: <first line of the output>`, or nothing when it printed nothing.
fn said(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => {
            let line: String = line.chars().take(200).collect();
            format!(": {line}")
        }
        None => String::new(),
    }
}

fn setup_failure(command: &[String], step: Step, errno: i32) -> String {
    let prog = command.first().map_or("", String::as_str);
    if step == Step::Exec && errno == libc::ENOENT {
        return format!("cannot run the probe: {prog} not found inside the compartment");
    }
    format!(
        "cannot run the probe ({}): {}; {}",
        step.name(),
        io_reason(&std::io::Error::from_raw_os_error(errno)),
        step.suggestion(errno)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_of_the_output() {
        assert_eq!(said(b"\n  db not ready  \nmore\n"), ": db not ready");
        assert_eq!(said(b""), "");
        assert_eq!(said(&[b'x'; 300]).len(), 202);
    }

    #[test]
    fn setup_failures_read_well() {
        let cmd = vec!["curl".to_string()];
        assert_eq!(
            setup_failure(&cmd, Step::Exec, libc::ENOENT),
            "cannot run the probe: curl not found inside the compartment"
        );
        let m = setup_failure(&cmd, Step::EnterMount, libc::EPERM);
        assert!(
            m.starts_with("cannot run the probe (enter-mount): operation not permitted; "),
            "{m}"
        );
    }
}
