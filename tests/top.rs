//! `bulkhead top` against a fake daemon: the real control server
//! ([`common::fake`]) on a socket in a temp dir, and a fake loop that
//! answers `GET /v1/metrics` with figures that move on at each call, so
//! the second frame has rates. Plain mode is the binary with stdout on a
//! pipe; the terminal mode runs in a tmux pane (`capture-pane` shows the
//! screen, `display -p` the pane's alternate-screen and cursor flags, and
//! `stty -g` before and after shows the terminal modes came back).
//!
//! tmux is required (scripts/setup installs it): without it the terminal
//! tests fail and say so.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bulkhead::api::LONG_POLL;
use bulkhead::api::proto::*;
use common::fake::{self, Served, bulkhead, run};
use tokio::sync::mpsc;

const MIB: u64 = 1 << 20;

/// The server and a fake daemon loop on their own thread and runtime.
struct Daemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    /// `GET /v1/metrics` answered so far.
    calls: Arc<AtomicU64>,
    server: Served,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let server = fake::control(&socket, LONG_POLL, move |rx| fake_daemon(rx, counter));
        Daemon {
            _dir: dir,
            socket,
            calls,
            server,
        }
    }

    /// Shuts the server down (the socket file stays, as after a crash:
    /// nobody listens on it) and waits until it has stopped.
    fn stop(&mut self) {
        self.server.stop();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn fake_daemon(mut calls: mpsc::Receiver<Call>, counter: Arc<AtomicU64>) {
    while let Some(Call { request, reply }) = calls.recv().await {
        let answer = match request {
            Request::Metrics => {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                Ok(Response::Metrics(Box::new(metrics(n))))
            }
            _ => Err(ApiError {
                status: 404,
                code: "UNKNOWN".into(),
                message: "not in this test".into(),
                rendered: String::new(),
            }),
        };
        let _ = reply.send(answer);
    }
}

fn figures(cpu_usec: u64, memory: u64, pids: u64, write: u64) -> CgroupFigures {
    CgroupFigures {
        cpu_usage_usec: Some(cpu_usec),
        memory_current: Some(memory),
        pids_current: Some(pids),
        io_read_bytes: Some(0),
        io_write_bytes: Some(write),
        ..CgroupFigures::default()
    }
}

fn instance(
    name: &str,
    state: &str,
    pid: Option<i32>,
    f: Option<CgroupFigures>,
) -> InstanceMetrics {
    InstanceMetrics {
        instance: name.into(),
        state: state.into(),
        pid,
        figures: f,
        ..InstanceMetrics::default()
    }
}

/// The `n`th answer: web/0 uses the most cpu, web/1 the most memory.
fn metrics(n: u64) -> MetricsReply {
    let mut web0 = instance(
        "0",
        "running",
        Some(812),
        Some(figures(n * 400_000, 20 * MIB, 3, n * MIB)),
    );
    web0.healthy = Some(true);
    web0.memory_max = Some(64 * MIB);
    let mut web1 = instance(
        "1",
        "running",
        Some(813),
        Some(figures(n * 50_000, 50 * MIB, 9, 0)),
    );
    web1.healthy = Some(false);
    web1.restarts = 1;
    web1.memory_max = Some(64 * MIB);
    let mut worker = instance("0", "backoff", None, None);
    worker.restarts = 3;
    let sandbox = instance(
        "ns:tenant-1",
        "running",
        Some(900),
        Some(figures(n * 10_000, 5 * MIB, 1, 0)),
    );
    let mut group = figures(n * 450_000, 70 * MIB, 12, n * MIB);
    group.memory_max = Some(256 * MIB);
    MetricsReply {
        daemon: DaemonInfo {
            pid: 42,
            version: "0.1.0".into(),
            uptime_secs: 65.0,
            ..DaemonInfo::default()
        },
        services: vec![
            ServiceMetrics {
                name: "web".into(),
                group: Some("frontend".into()),
                instances: vec![web0, web1],
                ..ServiceMetrics::default()
            },
            ServiceMetrics {
                name: "worker".into(),
                violations: [("pids_max".to_string(), 2)].into(),
                instances: vec![worker],
                ..ServiceMetrics::default()
            },
            ServiceMetrics {
                name: "sandbox".into(),
                isolation: Some("namespace".into()),
                instances: vec![sandbox],
                ..ServiceMetrics::default()
            },
        ],
        groups: vec![GroupMetrics {
            name: "frontend".into(),
            figures: Some(group),
            ..GroupMetrics::default()
        }],
        launch: LaunchMetrics::default(),
    }
}

/// The first word of each table row of `frame` (its lines after `NAME`).
fn order(frame: &str) -> Vec<String> {
    frame
        .lines()
        .skip_while(|l| !l.starts_with("NAME "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// The rows of a frame with rates sorted by cpu, and by memory.
const CPU_ORDER: [&str; 5] = [
    "[frontend]",
    "web/0",
    "web/1",
    "sandbox/ns:tenant-1",
    "worker/0",
];
const MEMORY_ORDER: [&str; 5] = [
    "[frontend]",
    "web/1",
    "web/0",
    "sandbox/ns:tenant-1",
    "worker/0",
];

/// The CPU% cell of `name`'s row in `frame`.
fn cpu_of(frame: &str, name: &str) -> Option<String> {
    frame
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| {
            // A line being drawn may be short of its cells.
            let cells: Vec<&str> = l.split("  ").filter(|c| !c.is_empty()).collect();
            cells.get(2).map(|c| c.trim().to_string())
        })
}

#[test]
fn plain_mode_prints_frames_with_rates_from_the_second_on() {
    let d = Daemon::start();
    let o = run(bulkhead()
        .args(["top", "-n", "2", "-d", "200ms", "--socket"])
        .arg(&d.socket));
    assert!(o.status.success());
    assert!(o.stderr.is_empty());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains('\x1b'), "escape codes in plain output");
    // Two frames, a blank line between them.
    let frames: Vec<&str> = text.split("\n\nbulkhead ").collect();
    assert_eq!(frames.len(), 2, "{text}");
    assert!(text.starts_with("bulkhead 0.1.0 (pid 42), up 1m05s; sorted by cpu, every 200ms\n"));
    assert!(text.contains(
        "\ninstances: 4 (3 running, 1 backoff; 1 unhealthy), restarts 4, violations 2; launches: 0 active, 0 queued\n"
    ));
    // The first frame has no rates, in name order; the second sorts by them.
    assert_eq!(cpu_of(frames[0], "web/0").as_deref(), Some("-"));
    assert_eq!(
        order(frames[0]),
        [
            "[frontend]",
            "sandbox/ns:tenant-1",
            "web/0",
            "web/1",
            "worker/0"
        ]
    );
    let cpu: f64 = cpu_of(frames[1], "web/0").unwrap().parse().unwrap();
    assert!(cpu > 0.0, "{}", frames[1]);
    assert_eq!(order(frames[1]), CPU_ORDER);
    let web1 = frames[1].lines().find(|l| l.starts_with("web/1 ")).unwrap();
    assert!(web1.contains(" running (unhealthy) "), "{web1}");
    assert!(web1.contains(" 50M / 64M "), "{web1}");
    assert!(web1.contains(" 9 "), "{web1}");
    assert_eq!(d.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn plain_mode_shows_one_frame_by_default_in_the_order_asked() {
    let d = Daemon::start();
    let o = run(bulkhead()
        .args(["top", "--sort", "memory", "--socket"])
        .arg(&d.socket));
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.matches("bulkhead 0.1.0").count(), 1, "{text}");
    assert!(text.contains("sorted by memory"));
    assert_eq!(order(&text), MEMORY_ORDER);
}

#[test]
fn no_daemon_is_exit_3_as_for_status() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let status = run(bulkhead().args(["status", "--socket"]).arg(&socket));
    let top = run(bulkhead().args(["top", "--socket"]).arg(&socket));
    assert_eq!(top.status.code(), Some(3));
    assert_eq!(top.stderr, status.stderr);
    assert!(
        String::from_utf8_lossy(&top.stderr).starts_with("error[DAEMON_NOT_RUNNING]"),
        "{top:?}"
    );
    assert!(top.stdout.is_empty());
}

#[test]
fn bad_options_are_refused() {
    for args in [
        &["top", "--sort", "mem"][..],
        &["top", "-d", "10ms"],
        &["top", "-d", "soon"],
        &["top", "-n", "0"],
    ] {
        let o = run(bulkhead().args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    let o = run(bulkhead().args(["top", "-d", "10ms"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the least is 100ms"));
    let help = run(bulkhead().args(["top", "--help"]));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("[possible values: cpu, memory, pids, io, restarts, name]"),
        "{text}"
    );
    assert!(text.contains("3 the daemon is not running"), "{text}");
}

// ------------------------------------------------------------ terminal

/// A tmux server of its own (its socket in a temp dir) with one 160x40
/// pane running `sh`.
struct Tmux {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

/// How long the screen may take to show something on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

impl Tmux {
    fn start() -> Tmux {
        let found = Command::new("tmux").arg("-V").output();
        assert!(
            found.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is needed for the terminal tests of `bulkhead top` and was not found \
             ({found:?}): install it (`apt-get install tmux`, or scripts/setup)"
        );
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tmux.sock");
        let t = Tmux { dir, socket };
        t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "40",
            "env -u ENV PS1='$ ' sh",
        ]);
        // capture-pane drops trailing blanks: the prompt reads `$`.
        t.wait_for("the shell's prompt", |s| s.starts_with('$'));
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "tmux {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-t", "top", "-l", line]);
        self.tmux(&["send-keys", "-t", "top", "Enter"]);
    }

    /// Presses a key (tmux's names: `m`, `C-c`).
    fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "top", key]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "top"])
    }

    /// `1` or `0`: the pane's alternate screen is on; its cursor is shown.
    fn flags(&self) -> (String, String) {
        let f = self.tmux(&[
            "display",
            "-p",
            "-t",
            "top",
            "#{alternate_on} #{cursor_flag}",
        ]);
        let mut it = f.split_whitespace().map(String::from);
        (it.next().unwrap(), it.next().unwrap())
    }

    /// Polls the screen until `ready` says yes; fails with the last screen
    /// after [`PATIENCE`].
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        common::poll_until(PATIENCE, || {
            let s = self.screen();
            if ready(&s) {
                return Some(s);
            }
            last = s;
            None
        })
        .unwrap_or_else(|_| panic!("no {what} on the screen after {PATIENCE:?}:\n{last}"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `bulkhead top ARGS` in the pane, with the terminal modes saved
    /// before and after (`stty -g`), its pid in `pid`, and `top exited N`
    /// printed after it (typed as `top exit""ed`, so that only the output
    /// reads `top exited`).
    fn start_top(&self, daemon: &Path, args: &str) {
        let q = |p: &Path| format!("'{}'", p.display());
        self.type_line(&format!(
            "stty -g > {}; sh -c 'echo $$ > {}; exec \"$0\" top --socket \"$1\" {args}' {} {}; echo \"top exit\"\"ed $?\"; stty -g > {}",
            q(&self.path("before")),
            self.path("pid").display(),
            q(Path::new(env!("CARGO_BIN_EXE_bulkhead"))),
            q(daemon),
            q(&self.path("after")),
        ));
    }

    /// [`Tmux::start_top`], and the screen once the first frame is on it.
    fn top(&self, daemon: &Path, args: &str) -> String {
        self.start_top(daemon, args);
        self.wait_for("first frame", |s| {
            s.contains("sorted by") && s.contains("worker/0")
        })
    }

    /// Waits for `top exited N` and returns N, once the modes after are saved.
    fn exit_status(&self) -> (i32, String) {
        let exited = |s: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix("top exited "))
                .map(|n| n.trim().parse::<i32>().unwrap())
        };
        let s = self.wait_for("exit status", |s| exited(s).is_some());
        common::wait_until("stty -g after top", PATIENCE, || {
            std::fs::read_to_string(self.path("after")).is_ok_and(|t| !t.is_empty())
        });
        (exited(&s).unwrap(), s)
    }

    /// The terminal is as it was before `bulkhead top`: the normal screen
    /// (the typed command line on it), the cursor shown, the same modes.
    fn assert_restored(&self, screen: &str) {
        assert_eq!(self.flags(), ("0".to_string(), "1".to_string()), "{screen}");
        assert!(screen.contains("$ stty -g >"), "{screen}");
        assert!(
            !screen.contains("sorted by"),
            "the view is still there:\n{screen}"
        );
        let before = std::fs::read_to_string(self.path("before")).unwrap();
        let after = std::fs::read_to_string(self.path("after")).unwrap();
        assert!(!before.trim().is_empty());
        assert_eq!(before, after, "the terminal modes were not restored");
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(self.path("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The rows of the table on a screen whose second frame (with rates) is up.
fn with_rates(s: &str) -> bool {
    cpu_of(s, "web/0").is_some_and(|c| c != "-")
}

#[test]
fn terminal_mode_refreshes_sorts_on_keys_and_restores_the_terminal_on_q() {
    let d = Daemon::start();
    let t = Tmux::start();
    let first = t.top(&d.socket, "-d 300ms");
    assert_eq!(t.flags(), ("1".to_string(), "0".to_string()), "{first}");
    assert!(first.contains(
        "bulkhead 0.1.0 (pid 42), up 1m05s; sorted by cpu, every 300ms; keys: c m p i r n sort, q quit"
    ));
    assert!(first.contains("instances: 4 (3 running, 1 backoff; 1 unhealthy)"));
    // A capture may catch a frame half drawn: wait for the whole of it.
    t.wait_for("the cpu order of a frame with rates", |s| {
        with_rates(s) && order(s) == CPU_ORDER
    });
    t.key("m");
    let s = t.wait_for("the memory order", |s| {
        s.contains("sorted by memory") && order(s) == MEMORY_ORDER
    });
    println!("{s}");
    // Later frames keep the order asked for.
    let calls = d.calls.load(Ordering::SeqCst);
    common::wait_until("two new snapshots", PATIENCE, || {
        d.calls.load(Ordering::SeqCst) >= calls + 2
    });
    t.wait_for("the memory order, still", |s| {
        s.contains("sorted by memory") && order(s) == MEMORY_ORDER
    });
    t.key("n");
    t.wait_for("the name order", |s| s.contains("sorted by name"));
    t.key("q");
    let (status, screen) = t.exit_status();
    println!("{screen}");
    assert_eq!(status, 0, "{screen}");
    t.assert_restored(&screen);
}

#[test]
fn terminal_mode_ends_cleanly_on_ctrl_c() {
    let d = Daemon::start();
    let t = Tmux::start();
    t.top(&d.socket, "-d 300ms");
    t.key("C-c");
    let (status, screen) = t.exit_status();
    assert_eq!(status, 0, "{screen}");
    t.assert_restored(&screen);
}

#[test]
fn terminal_mode_ends_cleanly_on_sigterm() {
    let d = Daemon::start();
    let t = Tmux::start();
    t.top(&d.socket, "-d 300ms");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (status, screen) = t.exit_status();
    assert_eq!(status, 0, "{screen}");
    t.assert_restored(&screen);
}

#[test]
fn terminal_mode_stops_after_n_frames() {
    let d = Daemon::start();
    let t = Tmux::start();
    // It may be gone before a capture sees it: wait for the exit only.
    t.start_top(&d.socket, "-d 200ms -n 3");
    let (status, screen) = t.exit_status();
    assert_eq!(status, 0, "{screen}");
    t.assert_restored(&screen);
    assert_eq!(d.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn terminal_mode_restores_the_terminal_then_says_the_daemon_went_away() {
    let mut d = Daemon::start();
    let t = Tmux::start();
    t.top(&d.socket, "-d 300ms");
    d.stop();
    let (status, screen) = t.exit_status();
    t.assert_restored(&screen);
    // The error is on the normal screen, after the view is gone: nobody
    // listens any more (exit 3), or, when the stop caught a request on
    // its way, the daemon shut down or dropped it (exit 1).
    match status {
        3 => assert!(
            screen.contains("error[DAEMON_NOT_RUNNING]: bulkhead is not running"),
            "{screen}"
        ),
        1 => assert!(screen.contains("error["), "{screen}"),
        _ => panic!("exit status {status}:\n{screen}"),
    }
}
