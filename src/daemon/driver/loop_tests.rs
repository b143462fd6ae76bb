//! The loop never waits on cgroup I/O (docs/ARCHITECTURE.md, "the loop
//! never blocks"), proven on the host with a fake cgroup root: a real
//! driver on a temp dir, one adopted instance (a `sleep` child), and the
//! cgroup file a write goes to made a FIFO. `open(O_WRONLY)` on a FIFO
//! blocks until a reader opens it, as a `memory.high` write below usage
//! blocks while the kernel reclaims: the test decides when the write ends.
//! Meanwhile `status` must be answered in normal time; once the test reads
//! the FIFO, the write's result is applied (the violation, the reload's
//! reply).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::{Daemon, Msg, Setup};
use crate::api::proto::{ApiError, Call, EventsReply, InstanceStatus, Request, Response};
use crate::cgroup::subtree::Subtree;
use crate::monitor::RuleKind;
use crate::supervisor::record::{self, InstanceRecord};

/// What the loop has to answer within: far above a loop's normal latency,
/// far below the time the test holds the write.
const PROMPT: Duration = Duration::from_secs(2);

/// A driver on its own thread and runtime (as `bulkhead run` has it) over
/// a fake cgroup root, with instance `web/0` adopted and running, and the
/// file `fifo` (below the root: `web/0/memory.high`) a FIFO.
struct Harness {
    dir: tempfile::TempDir,
    cfg_path: PathBuf,
    inst_dir: PathBuf,
    fifo: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
    child: Child,
    thread: Option<JoinHandle<()>>,
}

impl Harness {
    fn new(services: &str, fifo: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cg");
        let inst_dir = root.join("web").join("0");
        std::fs::create_dir_all(&inst_dir).unwrap();
        let fifo = root.join(fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let cfg_path = dir.path().join("bulkhead.yaml");
        let h = |d: &Path| {
            format!(
                "supervisor:\n  state_dir: {s}/state\n  control_socket: {s}/state/control.sock\n  \
                 log_dir: {s}/logs\n  cgroup_root: {s}/cg\n  monitor_interval: 200ms\n{services}",
                s = d.display()
            )
        };
        std::fs::write(&cfg_path, h(dir.path())).unwrap();
        let cfg = crate::config::load(&cfg_path).unwrap();

        let child = Command::new("/bin/sleep").arg("300").spawn().unwrap();
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        let rec = InstanceRecord {
            version: record::VERSION,
            service: "web".into(),
            instance: "0".into(),
            pid: pid.as_raw_nonzero().get(),
            start_time: 0,
            cgroup: inst_dir.clone(),
            config_hash: String::new(),
            started_at_unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap()),
            restarts: 0,
            status_file: dir.path().join("state/status/web@0.json"),
            port: 0,
            namespace: None,
            session: None,
        };
        let setup = Setup {
            cfg,
            config_path: cfg_path.clone(),
            tree: Subtree { root },
            mount: dir.path().to_path_buf(),
            // Nothing of the host's cgroups is touched at the end.
            delegated: true,
            controllers: Vec::new(),
            init_exe: PathBuf::from("/bin/false"),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let daemon_tx = tx.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut d = Daemon::new(setup, daemon_tx);
                d.adopt_instance(&rec, pidfd, false);
                d.run(rx).await;
            });
        });
        let harness = Harness {
            dir,
            cfg_path,
            inst_dir,
            fifo,
            tx,
            child,
            thread: Some(thread),
        };
        let up = harness.instance();
        assert_eq!(up.state, "running", "{up:?}");
        harness
    }

    /// Rewrites the config file with `services`.
    fn rewrite(&self, services: &str) {
        let s = self.dir.path().display();
        std::fs::write(
            &self.cfg_path,
            format!(
                "supervisor:\n  state_dir: {s}/state\n  control_socket: {s}/state/control.sock\n  \
                 log_dir: {s}/logs\n  cgroup_root: {s}/cg\n  monitor_interval: 200ms\n{services}"
            ),
        )
        .unwrap();
    }

    fn send(&self, request: Request) -> oneshot::Receiver<Result<Response, ApiError>> {
        let (reply, rx) = oneshot::channel();
        assert!(self.tx.send(Msg::Call(Call { request, reply })).is_ok());
        rx
    }

    /// `web/0`'s status, answered within [`PROMPT`] or the test fails.
    fn instance(&self) -> InstanceStatus {
        let asked = Instant::now();
        let rx = self.send(Request::Status {
            service: Some("web".into()),
        });
        let Some(Ok(Response::Status(s))) = wait(rx, PROMPT) else {
            panic!("the loop did not answer status within {PROMPT:?} (a cgroup write blocks it?)");
        };
        eprintln!("status answered in {:?}", asked.elapsed());
        s.services[0].instances[0].clone()
    }

    fn events(&self) -> EventsReply {
        let rx = self.send(Request::Events {
            service: None,
            after: None,
            wait: false,
        });
        match wait(rx, PROMPT) {
            Some(Ok(Response::Events(e))) => e,
            other => panic!("events: {other:?}"),
        }
    }

    /// Reads the FIFO from now on, each writer's data a message.
    fn release(&self) -> std_mpsc::Receiver<String> {
        let (tx, rx) = std_mpsc::channel();
        let fifo = self.fifo.clone();
        std::thread::spawn(move || {
            loop {
                let Ok(data) = std::fs::read_to_string(&fifo) else {
                    return;
                };
                if data == STOP || tx.send(data).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Empties the instance's fake cgroup but for the FIFO: it can then be
    /// removed as a real one would.
    fn clear_instance(&self) {
        let Ok(entries) = std::fs::read_dir(&self.inst_dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.path() != self.fifo {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Stops the daemon (SIGTERM) and waits until its loop and cleanup
    /// ended.
    fn shutdown(self) {
        self.clear_instance();
        assert!(self.tx.send(Msg::Signal(libc::SIGTERM)).is_ok());
        self.wait_ended();
    }

    fn wait_ended(mut self) {
        let t = self.thread.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        t.join().unwrap();
    }
}

/// Ends the FIFO's reader.
const STOP: &str = "stop";

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader, if it waits for a writer.
        if self.fifo.exists() {
            let fifo = self.fifo.clone();
            std::thread::spawn(move || {
                let _ = std::fs::write(fifo, STOP);
            });
        }
    }
}

/// The answer on `rx` within `limit`; `None` when it did not come.
fn wait<T>(mut rx: oneshot::Receiver<T>, limit: Duration) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(oneshot::error::TryRecvError::Closed) => return None,
            Err(oneshot::error::TryRecvError::Empty) if Instant::now() >= deadline => return None,
            Err(oneshot::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Polls `f` until it returns `Some`, for 10 s at most.
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const THROTTLED: &str = "services:
  web:
    command: [/bin/sleep, infinity]
    resources:
      memory:
        high: 48M
    watch:
      memory_pressure:
        action: throttle
        threshold: 10%
        for: 1s
        step: 10%
";

#[test]
fn status_is_answered_while_a_throttle_write_to_memory_high_blocks() {
    let h = Harness::new(THROTTLED, "web/0/memory.high");
    // The rule fires on a trigger once the daemon has run for the rule's
    // window (the stall began a window before the trigger): the throttle
    // writes memory.high, which blocks until the FIFO is read.
    std::thread::sleep(Duration::from_millis(1500));
    let key = super::Key {
        svc: "web".into(),
        idx: 0,
        run_id: 1,
    };
    assert!(
        h.tx.send(Msg::Pressure {
            key,
            rule: RuleKind::MemoryPressure,
        })
        .is_ok()
    );
    std::thread::sleep(Duration::from_millis(300));
    let during = h.instance();
    // Recorded once the write's result is back, not before.
    assert!(during.violations.is_empty(), "{:?}", during.violations);

    let written = h.release();
    let first = written.recv_timeout(Duration::from_secs(10)).unwrap();
    // 48M less a step of 10%, in whole pages.
    let step = (48u64 << 20) / 10;
    assert_eq!(first, (((48u64 << 20) - step) / 4096 * 4096).to_string());
    let v = until("the throttle recorded", || {
        h.instance().violations.first().cloned()
    });
    assert_eq!(v.rule, "memory_pressure");
    assert!(
        v.action.starts_with("throttle: memory.high 48M -> "),
        "{v:?}"
    );

    // No trigger any more: the sweep restores memory.high, through the
    // same FIFO.
    let second = written.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(second, (48u64 << 20).to_string());
    let restore = until("the restore recorded", || {
        h.events()
            .events
            .into_iter()
            .find(|e| e.action.as_deref() == Some("restore"))
    });
    assert!(
        restore
            .message
            .starts_with("memory.pressure cleared: memory.high ")
            && restore.message.ends_with(" -> 48M (restored)"),
        "{restore:?}"
    );
    h.shutdown();
}

const LIMITED: &str = "services:
  web:
    command: [/bin/sleep, infinity]
    resources:
      memory:
        max: 64M
";

#[test]
fn status_is_answered_while_a_reload_writes_live_limits_and_the_reply_waits_for_them() {
    let h = Harness::new(LIMITED, "web/0/memory.max");
    h.rewrite(&LIMITED.replace("64M", "96M"));
    let reload = h.send(Request::Reload);
    // The read and check of the file are quick; then memory.max blocks.
    std::thread::sleep(Duration::from_millis(500));
    h.instance();
    // The reply carries the writes' failures: it waits for them.
    let mut reload = reload;
    assert!(
        matches!(reload.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "the reload answered before its live limits were written"
    );

    let written = h.release();
    let reply = wait(reload, Duration::from_secs(10)).expect("the reload's reply");
    let Ok(Response::Reload(r)) = reply else {
        panic!("{reply:?}")
    };
    assert!(r.failures.is_empty(), "{r:?}");
    assert!(r.changes.iter().any(|c| c.contains("memory.max")), "{r:?}");
    let values: Vec<String> = written.try_iter().collect();
    assert_eq!(
        values.last().map(String::as_str),
        Some("100663296"),
        "{values:?}"
    );
    h.shutdown();
}

/// The instance's state, once it is `state` (10 s at most).
fn wait_state(h: &Harness, state: &str) {
    until(state, || (h.instance().state == state).then_some(()));
}

#[test]
fn status_is_answered_while_the_cgroups_are_removed_at_shutdown() {
    // The service's cgroup is killed before it is removed: that write
    // blocks.
    let h = Harness::new(LIMITED, "web/cgroup.kill");
    h.clear_instance();
    assert!(h.tx.send(Msg::Signal(libc::SIGTERM)).is_ok());
    wait_state(&h, "stopped");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !h.thread.as_ref().unwrap().is_finished(),
        "the cleanup did not wait for its write"
    );
    h.instance();

    let written = h.release();
    assert_eq!(written.recv_timeout(Duration::from_secs(10)).unwrap(), "1");
    h.wait_ended();
}

#[test]
fn status_is_answered_while_a_retired_service_tree_is_removed() {
    let h = Harness::new(LIMITED, "web/cgroup.kill");
    h.clear_instance();
    h.rewrite(&LIMITED.replace("web:", "api:"));
    let reload = wait(h.send(Request::Reload), Duration::from_secs(10));
    assert!(
        matches!(reload, Some(Ok(Response::Reload(_)))),
        "{reload:?}"
    );
    // `web` stops, then its tree goes: the kill blocks.
    until("web removed from the status", || {
        let rx = h.send(Request::Status { service: None });
        match wait(rx, PROMPT) {
            Some(Ok(Response::Status(s))) => {
                s.services.iter().all(|s| s.name != "web").then_some(())
            }
            other => panic!("status: {other:?}"),
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let rx = h.send(Request::Status { service: None });
    assert!(
        matches!(wait(rx, PROMPT), Some(Ok(Response::Status(_)))),
        "the loop did not answer status within {PROMPT:?} while a tree removal blocked"
    );

    let written = h.release();
    assert_eq!(written.recv_timeout(Duration::from_secs(10)).unwrap(), "1");
    h.shutdown();
}

const NEVER_RESTARTED: &str = "services:
  web:
    command: [/bin/sleep, infinity]
    restart:
      policy: never
";

/// `kill` reaches the instance's process through its pidfd, tells the
/// machine nothing (the exit that follows is an exit like any other), and
/// refuses an unknown instance, a signal the init would drop, and a
/// service with nothing running.
#[test]
fn kill_signals_the_instance_through_its_pidfd() {
    use crate::config::units::Sig;
    use nix::sys::signal::Signal;
    let h = Harness::new(NEVER_RESTARTED, "web/0/unused");
    let kill = |signal, instance: Option<&str>| {
        let rx = h.send(Request::Kill {
            service: "web".into(),
            signal: Sig(signal),
            instance: instance.map(String::from),
        });
        wait(rx, PROMPT).expect("the kill's reply")
    };
    let Err(e) = kill(Signal::SIGUSR1, Some("7")) else {
        panic!("instance 7 was signalled")
    };
    assert_eq!(
        (e.status, e.code.as_str()),
        (404, "UNKNOWN_INSTANCE"),
        "{e:?}"
    );
    let Err(e) = kill(Signal::SIGWINCH, None) else {
        panic!("SIGWINCH was sent")
    };
    assert_eq!(e.status, 400, "{e:?}");
    assert_eq!(h.instance().state, "running", "a refused kill did nothing");

    let reply = kill(Signal::SIGUSR1, Some("0"));
    let Ok(Response::Kill(r)) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(r.instances, ["0"], "{r:?}");
    assert_eq!(r.signal, "SIGUSR1");
    assert_eq!(r.message, "killed 1 instance of web with SIGUSR1");
    // The sleep dies of it; the policy (never) leaves it stopped.
    wait_state(&h, "stopped");
    let Err(e) = kill(Signal::SIGTERM, None) else {
        panic!("a stopped service was signalled")
    };
    assert_eq!((e.status, e.code.as_str()), (409, "NOT_RUNNING"), "{e:?}");
    h.shutdown();
}
