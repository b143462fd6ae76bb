//! The control socket end to end on the host: the real server ([`bind`],
//! [`serve`], run by [`common::fake`]) on a socket in a temp dir, a fake
//! daemon loop answering its calls with canned replies, driven by the
//! client library and by the `bulkhead` binary (status, start/stop/restart,
//! reload, logs, events and their long polls, the errors and exit
//! statuses), and the refusal of a caller who is not root.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulkhead::api::proto::*;
use bulkhead::api::server::{bind, serve};
use bulkhead::cli::client::{self, ClientError};
use bulkhead::error::{Code, Diagnostic, Diagnostics};
use common::fake::{self, Served, bulkhead, run};
use common::{stderr, stdout};
use tokio::sync::{mpsc, oneshot};

/// A server and a fake daemon loop on their own thread and runtime.
struct Daemon {
    /// First: it stops before the temp dir is removed.
    server: Served,
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// Long polls the fake daemon holds without an answer.
    held: Arc<AtomicUsize>,
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::start_with(bulkhead::api::LONG_POLL)
    }

    /// With a server that holds long polls for `long_poll`.
    fn start_with(long_poll: Duration) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        // `run/` does not exist yet: bind creates it.
        let socket = dir.path().join("run/control.sock");
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let held = Arc::new(AtomicUsize::new(0));
        let holding = held.clone();
        let server = fake::control(&socket, long_poll, move |rx| fake_daemon(rx, logs, holding));
        Daemon {
            server,
            dir,
            socket,
            held,
        }
    }

    /// Shuts the server down and waits until it has stopped.
    fn stop(&mut self) {
        self.server.stop();
    }

    /// Waits until the fake daemon holds `n` long polls.
    fn wait_held(&self, n: usize) {
        common::wait_until("a long poll held", Duration::from_secs(10), || {
            self.held.load(Ordering::SeqCst) >= n
        });
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// The `bulkhead` binary with `args` against this daemon's socket.
    fn cli(&self, args: &[&str]) -> Output {
        fake::cli(&self.socket, args)
    }
}

fn instance(n: &str, state: &str) -> InstanceStatus {
    InstanceStatus {
        instance: n.into(),
        state: state.into(),
        cgroup: format!("/sys/fs/cgroup/bulkhead/web/{n}").into(),
        ..InstanceStatus::default()
    }
}

fn canned_status() -> StatusReply {
    let mut web0 = instance("0", "running");
    web0.pid = Some(812);
    web0.uptime_secs = Some(7512.0);
    web0.cpu_usage_usec = Some(184_000_000);
    web0.memory_current = Some(12 << 20);
    web0.memory_max = Some(64 << 20);
    web0.pids_current = Some(3);
    web0.pids_max = Some(64);
    web0.healthy = Some(true);
    let mut web1 = instance("1", "backoff");
    web1.restarts = 2;
    web1.last_exit = Some("exited with status 1".into());
    web1.next_attempt_secs = Some(3.25);
    web1.last_restart_reason = Some("exited(1)".into());
    web1.restart_reasons = [("exited".into(), 1), ("oom_kill".into(), 1)].into();
    web1.violation_counts = [("oom".into(), 1)].into();
    web1.violations = vec![ViolationStatus {
        time: "2026-11-23T10:00:06.000Z".into(),
        rule: "oom".into(),
        observed: "memory.events oom_kill 1 (+1)".into(),
        action: "restart".into(),
    }];
    web1.memory_high_throttled = Some(48 << 20);
    StatusReply {
        daemon: DaemonInfo {
            pid: 42,
            version: "0.1.0".into(),
            config: "/etc/bulkhead/bulkhead.yaml".into(),
            cgroup_root: "/sys/fs/cgroup/bulkhead".into(),
            uptime_secs: 65.5,
        },
        services: vec![
            ServiceStatus {
                name: "web".into(),
                group: None,
                autostart: true,
                isolation: None,
                instances: vec![web0, web1],
            },
            ServiceStatus {
                name: "worker".into(),
                group: Some("batch".into()),
                autostart: false,
                isolation: None,
                instances: vec![instance("0", "stopped")],
            },
        ],
        groups: Vec::new(),
    }
}

fn unknown(service: &str) -> ApiError {
    ApiError::from_diagnostic(
        404,
        &Diagnostic::new(Code::ApiError, format!("no service named {service}"))
            .suggest("`bulkhead status` lists the services"),
    )
}

/// The oldest event the fake daemon still keeps: 1 and 2 were dropped.
const KEPT_FROM: u64 = 3;
/// The newest event it has at the start.
const NEWEST: u64 = 6;
/// The seq of the event that comes while a long poll waits.
const LATE: u64 = 10;

fn event(seq: u64, service: &str, instance: &str, kind: &str, message: &str) -> EventRecord {
    EventRecord {
        seq,
        time: format!("2026-11-23T10:00:{seq:02}.000Z"),
        service: service.into(),
        instance: instance.into(),
        kind: kind.into(),
        message: message.into(),
        ..EventRecord::default()
    }
}

/// The events the fake daemon keeps, seq [`KEPT_FROM`]..=[`NEWEST`].
fn canned_events() -> Vec<EventRecord> {
    let mut starting = event(3, "web", "0", "state", "spawned pid 812");
    starting.state = Some("starting".into());
    let mut running = event(4, "web", "0", "state", "ready");
    running.state = Some("running".into());
    let mut pids = event(5, "worker", "0", "violation", "pids.events max 12 (+12)");
    pids.rule = Some("pids_max".into());
    pids.action = Some("warn".into());
    pids.observed = Some("pids.events max 12 (+12)".into());
    let mut oom = event(
        6,
        "web",
        "0",
        "state",
        "OOM-killed: killed by SIGKILL after 3s; restarting in 1s",
    );
    oom.state = Some("backoff".into());
    oom.reason = Some("oom_kill".into());
    vec![starting, running, pids, oom]
}

/// The event that happens while a client follows (seqs 7-9 in between were
/// dropped).
fn late_event() -> EventRecord {
    let mut e = event(
        LATE,
        "web",
        "1",
        "violation",
        "memory.events oom_kill 1 (+1)",
    );
    e.rule = Some("oom".into());
    e.action = Some("restart".into());
    e
}

/// The canned events as `bulkhead events` prints them.
const EVENT_LINES: [&str; 4] = [
    "2026-11-23T10:00:03.000Z web/0 state starting: spawned pid 812",
    "2026-11-23T10:00:04.000Z web/0 state running: ready",
    "2026-11-23T10:00:05.000Z worker/0 violation pids_max -> warn: pids.events max 12 (+12)",
    "2026-11-23T10:00:06.000Z web/0 state backoff (reason oom_kill): OOM-killed: killed by SIGKILL after 3s; restarting in 1s",
];
const LATE_LINE: &str =
    "2026-11-23T10:00:10.000Z web/1 violation oom -> restart: memory.events oom_kill 1 (+1)";

/// Answers like the daemon would; `vanish` drops the reply unanswered,
/// and reloads go: a change, no change, an invalid config. A long poll
/// with nothing new before [`LATE`] gets the late event 300 ms later; one
/// after it is held unanswered (counted in `held`).
async fn fake_daemon(mut calls: mpsc::Receiver<Call>, logs: PathBuf, held: Arc<AtomicUsize>) {
    let mut reloads = 0;
    let mut holding = Vec::new();
    while let Some(Call { request, reply }) = calls.recv().await {
        let known = |s: &str| s == "web" || s == "worker";
        let answer = match request {
            Request::Status { service: None } => Ok(Response::Status(canned_status())),
            Request::Status { service: Some(s) } if known(&s) => {
                let mut r = canned_status();
                r.services.retain(|x| x.name == s);
                Ok(Response::Status(r))
            }
            Request::Start { service }
            | Request::Stop { service }
            | Request::Restart { service }
                if service == "vanish" =>
            {
                drop(reply);
                continue;
            }
            Request::Start { service } if known(&service) => Ok(Response::Action(ActionReply {
                service,
                message: "starting 2 instances".into(),
            })),
            Request::Stop { service } if known(&service) => Ok(Response::Action(ActionReply {
                service,
                message: "stopping 2 instances".into(),
            })),
            Request::Restart { service } if known(&service) => Ok(Response::Action(ActionReply {
                service,
                message: "restarting 2 instances (circuit breaker reset)".into(),
            })),
            Request::Reload => {
                reloads += 1;
                match reloads - 1 {
                    0 => Ok(Response::Reload(ReloadReply {
                        changes: vec![
                            "web: memory.max 256M -> 512M (live)".into(),
                            "worker: added".into(),
                        ],
                        failures: vec![],
                    })),
                    1 => Ok(Response::Reload(ReloadReply::default())),
                    _ => {
                        let diags = Diagnostics(vec![
                            Diagnostic::new(Code::ConfigUnknownKey, "unknown key `memroy`")
                                .suggest("did you mean `memory`?"),
                            Diagnostic::new(Code::ConfigInvalidValue, "bad size `12Q`"),
                        ]);
                        Err(ApiError {
                            status: 422,
                            code: "CONFIG_INVALID".into(),
                            message: "the new config has 2 errors; the old one stays".into(),
                            rendered: diags.render(None),
                        })
                    }
                }
            }
            Request::Logs { service } if service == "web" => Ok(Response::Logs(LogsReply {
                service,
                files: (0..2)
                    .map(|i| LogFile {
                        instance: i.to_string(),
                        path: logs.join(format!("web-{i}.log")),
                        keep: 2,
                    })
                    .collect(),
            })),
            Request::Status {
                service: Some(service),
            }
            | Request::Start { service }
            | Request::Stop { service }
            | Request::Restart { service }
            | Request::Logs { service }
            | Request::Kill { service, .. } => Err(unknown(&service)),
            Request::Launch(_)
            | Request::List { .. }
            | Request::Terminate { .. }
            | Request::Metrics => Err(unknown("template")),
            Request::Events {
                service: Some(s), ..
            } if !known(&s) => Err(unknown(&s)),
            Request::Events {
                service,
                after,
                wait,
            } => {
                let wanted = |e: &EventRecord| service.as_ref().is_none_or(|s| *s == e.service);
                let a = after.unwrap_or(0);
                let events: Vec<EventRecord> = canned_events()
                    .into_iter()
                    .filter(|e| e.seq > a && wanted(e))
                    .collect();
                if events.is_empty() && wait {
                    if a < LATE && wanted(&late_event()) {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            let _ = reply.send(Ok(Response::Events(EventsReply {
                                events: vec![late_event()],
                                last_seq: LATE,
                                dropped: LATE - 1 - a.max(NEWEST),
                            })));
                        });
                    } else {
                        holding.push(reply);
                        held.store(holding.len(), Ordering::SeqCst);
                    }
                    continue;
                }
                Ok(Response::Events(EventsReply {
                    events,
                    last_seq: NEWEST,
                    dropped: after.map_or(0, |a| (KEPT_FROM - 1).saturating_sub(a)),
                }))
            }
        };
        let _ = reply.send(answer);
    }
}

#[test]
fn status_prints_the_table_and_json() {
    let d = Daemon::start();
    let o = d.cli(&["status"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "bulkhead 0.1.0 (pid 42), up 1m05s, config /etc/bulkhead/bulkhead.yaml"
    );
    assert_eq!(lines[1], "");
    assert!(lines[2].starts_with("SERVICE  STATE"), "{text}");
    assert!(
        lines[3].starts_with("web/0    running (healthy)  812"),
        "{text}"
    );
    assert!(lines[3].contains("12M / 64M"), "{text}");
    assert!(
        lines[4].ends_with("restart in 3.2s (exited with status 1)"),
        "{text}"
    );
    assert!(lines[2].contains("RESTARTS  VIOL  CPU"), "{text}");
    assert!(lines[4].contains(" 2         1     - "), "{text}");
    assert!(lines[5].starts_with("worker   stopped"), "{text}");

    let o = d.cli(&["status", "--json"]);
    assert!(o.status.success());
    let reply: StatusReply = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(reply, canned_status());
    assert!(stdout(&o).starts_with("{\n  \"daemon\""), "pretty JSON");
}

#[test]
fn status_of_one_service_shows_its_details() {
    let d = Daemon::start();
    let o = d.cli(&["status", "web"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.starts_with("web: autostart, 2 instances\n\ninstance 0: running (healthy)\n"));
    assert!(
        text.contains("  cgroup        /sys/fs/cgroup/bulkhead/web/1\n"),
        "{text}"
    );
    assert!(text.contains("  next attempt  in 3.2s\n"), "{text}");
    assert!(
        text.contains("  restarts      2 (exited 1, oom_kill 1); last: exited(1)\n"),
        "{text}"
    );
    assert!(
        text.contains("  memory.high   lowered to 48M by throttle\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "  violations    oom 1\n    2026-11-23T10:00:06.000Z  oom  memory.events oom_kill 1 (+1)  restart\n"
        ),
        "{text}"
    );
    assert!(!text.contains("worker"));
}

#[test]
fn the_socket_comes_from_the_environment_without_a_flag() {
    let d = Daemon::start();
    let o = run(bulkhead()
        .env("BULKHEAD_SOCKET", &d.socket)
        .args(["status", "--json"]));
    assert!(o.status.success());
    // The flag wins over the environment.
    let o = run(bulkhead()
        .env("BULKHEAD_SOCKET", "/nonexistent/control.sock")
        .args(["status", "--socket"])
        .arg(&d.socket));
    assert!(o.status.success());
}

#[test]
fn start_stop_restart_print_what_the_daemon_did() {
    let d = Daemon::start();
    for (verb, said) in [
        ("start", "web: starting 2 instances\n"),
        ("stop", "web: stopping 2 instances\n"),
        (
            "restart",
            "web: restarting 2 instances (circuit breaker reset)\n",
        ),
    ] {
        let o = d.cli(&[verb, "web"]);
        assert!(o.status.success(), "{verb}");
        assert_eq!(stdout(&o), said);
    }
}

#[test]
fn an_unknown_service_is_the_daemons_404_and_exit_1() {
    let d = Daemon::start();
    for args in [
        &["status", "nope"][..],
        &["start", "nope"],
        &["logs", "nope"],
        &["events", "nope"],
        &["events", "nope", "-f"],
    ] {
        let o = d.cli(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&o),
            "error[API_ERROR]: no service named nope\n   = help: `bulkhead status` lists the services\n"
        );
        assert!(o.stdout.is_empty());
    }
    let e = client::get::<StatusReply>(&d.socket, "/v1/status/nope").unwrap_err();
    match e {
        ClientError::Api(api) => assert_eq!(api.status, 404),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reload_prints_changes_then_no_changes_then_the_config_errors() {
    let d = Daemon::start();
    let o = d.cli(&["reload"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "web: memory.max 256M -> 512M (live)\nworker: added\n"
    );
    let o = d.cli(&["reload"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "no changes\n");
    let o = d.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error[CONFIG_UNKNOWN_KEY]: unknown key `memroy`\n   = help: did you mean `memory`?\n\n\
         error[CONFIG_INVALID_VALUE]: bad size `12Q`\n\n2 errors\n"
    );
}

#[test]
fn unknown_routes_and_methods_are_json_errors() {
    let d = Daemon::start();
    for (method, path, status) in [
        ("GET", "/v1/nope", 404),
        ("GET", "/v1/reload", 405),
        ("POST", "/v1/status", 405),
    ] {
        let e = if method == "GET" {
            client::get::<serde_json::Value>(&d.socket, path)
        } else {
            client::post::<serde_json::Value>(&d.socket, path)
        }
        .unwrap_err();
        let ClientError::Api(api) = &e else {
            panic!("{method} {path}: {e:?}")
        };
        assert_eq!(api.status, status, "{method} {path}");
        assert_eq!(api.code, "API_ERROR");
        assert!(api.rendered.starts_with("error[API_ERROR]: "), "{api:?}");
        assert!(api.message.contains(path), "{api:?}");
    }
}

#[test]
fn healthz_answers_ok() {
    let d = Daemon::start();
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
    assert_eq!(client::parse_response(&raw).unwrap(), (200, b"ok".to_vec()));
}

#[test]
fn a_dropped_reply_is_503_shutting_down() {
    let d = Daemon::start();
    let o = d.cli(&["start", "vanish"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(
            "error[DAEMON_SHUTTING_DOWN]: the daemon is shutting down and takes no more requests\n"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_closed_call_channel_is_503_shutting_down() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(async { bind(&socket).unwrap() });
    let (calls, rx) = mpsc::channel(1);
    drop(rx);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        rt.block_on(serve(
            listener,
            calls,
            async {
                let _ = stopped.await;
            },
            bulkhead::api::peer::Compartments::none(),
        ));
    });
    let e = client::get::<StatusReply>(&socket, "/v1/status").unwrap_err();
    let d = e.to_diagnostic();
    assert_eq!(d.code, Code::DaemonShuttingDown, "{e:?}");
    assert_eq!(e.exit_code(), 1);
    stop.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn no_daemon_is_daemon_not_running_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let o = run(bulkhead().args(["status", "--socket"]).arg(&socket));
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error[DAEMON_NOT_RUNNING]: bulkhead is not running (no daemon at {})\n",
            socket.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("   = help: start it with `systemctl start bulkhead` or `bulkhead run`\n"),
        "{err}"
    );
    // A socket file nobody listens on (ECONNREFUSED) is the same.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let o = run(bulkhead().args(["stop", "web", "--socket"]).arg(&socket));
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).starts_with("error[DAEMON_NOT_RUNNING]"));
    for args in [&["events"][..], &["events", "web", "-f", "--json"]] {
        let o = fake::cli(&socket, args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        assert!(
            stderr(&o).starts_with("error[DAEMON_NOT_RUNNING]"),
            "{args:?}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn the_help_documents_exit_status_3() {
    let o = run(bulkhead().args(["status", "--help"]));
    let text = stdout(&o);
    assert!(text.contains("3 the daemon is not running"), "{text}");
    assert!(text.contains("BULKHEAD_SOCKET"), "{text}");
}

#[test]
fn bind_replaces_a_stale_socket_and_restricts_it_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    // A daemon that died: its socket file stays, nothing listens.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(async { bind(&socket).unwrap() });
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The new socket is the live one.
    let (accepted, _) = rt.block_on(async {
        let connect = tokio::net::UnixStream::connect(&socket);
        let (a, _c) = tokio::join!(listener.accept(), connect);
        a.unwrap()
    });
    drop(accepted);
}

#[test]
fn a_second_bind_on_a_live_socket_is_refused() {
    let d = Daemon::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt.block_on(async { bind(&d.socket) }).unwrap_err();
    assert_eq!(e.code, Code::ControlSocket);
    assert!(
        e.message.starts_with("another bulkhead daemon is running"),
        "{e}"
    );
    // The running daemon still answers.
    client::get::<StatusReply>(&d.socket, "/v1/status").unwrap();
}

/// The binary as uid/gid 65534 with no supplementary groups.
fn as_nobody(args: &[&str], socket: &Path) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("bulkhead");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap();
    common::show(format_args!("as nobody {args:?}"), &out);
    out
}

#[test]
fn a_caller_who_is_not_root_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the client as another user");
        return;
    }
    let d = Daemon::start();
    let run_dir = d.socket.parent().unwrap();
    for dir in [d.dir.path(), run_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The socket's own mode (0600) keeps nobody out first.
    let o = as_nobody(&["status"], &d.socket);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!(
            "error[CONTROL_DENIED]: permission denied on the control socket {}\n",
            d.socket.display()
        )),
        "{}",
        stderr(&o)
    );
    // Loosened, the socket lets nobody connect; SO_PEERCRED still refuses.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["status"][..], &["stop", "web"], &["reload"]] {
        let o = as_nobody(args, &d.socket);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.starts_with(
                "error[CONTROL_DENIED]: the control socket is for root (peer uid 65534)\n"
            ),
            "{err}"
        );
        assert!(
            err.contains("   = help: run the command with sudo\n"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
    // Root still gets in.
    assert!(d.cli(&["status"]).status.success());
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn logs_merges_the_instances_last_lines() {
    let d = Daemon::start();
    let logs = d.logs();
    // Instance 0 has rotated once; instance 1 has not.
    append(
        &logs.join("web-0.log.1"),
        "2026-11-23T11:00:00.000Z out a0\n2026-11-23T11:00:02.000Z out a1\n",
    );
    append(&logs.join("web-0.log"), "2026-11-23T11:00:04.000Z out a2\n");
    append(
        &logs.join("web-1.log"),
        "2026-11-23T11:00:01.000Z err b0\n2026-11-23T11:00:03.000Z out b1\n",
    );
    let o = d.cli(&["logs", "web", "-n", "4"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "web/1 | 2026-11-23T11:00:01.000Z err b0\n\
         web/0 | 2026-11-23T11:00:02.000Z out a1\n\
         web/1 | 2026-11-23T11:00:03.000Z out b1\n\
         web/0 | 2026-11-23T11:00:04.000Z out a2\n"
    );
    // The default is 50: everything here.
    let o = d.cli(&["logs", "web"]);
    assert_eq!(stdout(&o).lines().count(), 5);
}

#[test]
fn logs_follow_prints_new_lines_across_a_rotation() {
    let d = Daemon::start();
    let logs = d.logs();
    let web0 = logs.join("web-0.log");
    append(&web0, "2026-11-23T11:00:00.000Z out old\n");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkhead"))
        .args(["logs", "web", "-f", "-n", "1", "--socket"])
        .arg(&d.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(next(), "web/0 | 2026-11-23T11:00:00.000Z out old");
    append(&web0, "2026-11-23T11:00:01.000Z out one\n");
    assert_eq!(next(), "web/0 | 2026-11-23T11:00:01.000Z out one");
    // Rotate as the sink does, with a line written just before.
    append(&web0, "2026-11-23T11:00:02.000Z out two\n");
    std::fs::rename(&web0, logs.join("web-0.log.1")).unwrap();
    append(&web0, "2026-11-23T11:00:03.000Z out three\n");
    assert_eq!(next(), "web/0 | 2026-11-23T11:00:02.000Z out two");
    assert_eq!(next(), "web/0 | 2026-11-23T11:00:03.000Z out three");
    // The other instance's file appears only now: it is read from its start.
    append(
        &logs.join("web-1.log"),
        "2026-11-23T11:00:04.000Z out four\n",
    );
    assert_eq!(next(), "web/1 | 2026-11-23T11:00:04.000Z out four");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing repeated"
    );
}

fn lines(o: &Output) -> Vec<String> {
    stdout(o).lines().map(String::from).collect()
}

#[test]
fn events_prints_the_kept_events_one_line_each() {
    let d = Daemon::start();
    let o = d.cli(&["events"]);
    assert!(o.status.success());
    assert_eq!(lines(&o), EVENT_LINES);
    assert_eq!(stderr(&o), "");
    // One service's, and the last N.
    let o = d.cli(&["events", "web"]);
    assert_eq!(lines(&o), [EVENT_LINES[0], EVENT_LINES[1], EVENT_LINES[3]]);
    let o = d.cli(&["events", "-n", "2"]);
    assert_eq!(lines(&o), &EVENT_LINES[2..]);
    let o = d.cli(&["events", "worker", "--lines", "5"]);
    assert_eq!(lines(&o), [EVENT_LINES[2]]);
    let o = d.cli(&["events", "-n", "0"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn events_json_is_one_record_a_line() {
    let d = Daemon::start();
    let o = d.cli(&["events", "--json"]);
    assert!(o.status.success());
    let got: Vec<EventRecord> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, canned_events());
    let o = d.cli(&["events", "--json", "-n", "1", "web"]);
    let got: EventRecord = serde_json::from_str(stdout(&o).trim_end()).unwrap();
    assert_eq!(got.seq, NEWEST);
}

#[test]
fn the_events_endpoint_honours_after_and_reports_dropped_events() {
    let d = Daemon::start();
    let r = client::events(&d.socket, None, None, false).unwrap();
    assert_eq!(r.events, canned_events());
    assert_eq!((r.last_seq, r.dropped), (NEWEST, 0));
    // 2 is gone: asked after 1, one was dropped.
    let r = client::events(&d.socket, None, Some(1), false).unwrap();
    assert_eq!((r.events.len(), r.dropped), (4, 1));
    // With events after `after`, a long poll answers at once.
    let r = client::events(&d.socket, Some("web"), Some(4), true).unwrap();
    let seqs: Vec<u64> = r.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [6]);
    // Without, it waits for the next one.
    let r = client::events(&d.socket, None, Some(NEWEST), true).unwrap();
    assert_eq!(r.events, [late_event()]);
    assert_eq!((r.last_seq, r.dropped), (LATE, 3));
}

#[test]
fn a_long_poll_with_nothing_new_ends_empty_after_the_servers_wait() {
    let d = Daemon::start_with(Duration::from_millis(300));
    let r = client::events(&d.socket, Some("web"), Some(LATE), true).unwrap();
    assert_eq!(
        r,
        EventsReply {
            events: vec![],
            last_seq: LATE,
            dropped: 0
        }
    );
}

#[test]
fn a_long_poll_ends_with_503_when_the_server_shuts_down() {
    let mut d = Daemon::start();
    let socket = d.socket.clone();
    let poll = std::thread::spawn(move || client::events(&socket, None, Some(LATE), true));
    d.wait_held(1);
    d.stop();
    let e = poll.join().unwrap().unwrap_err();
    assert_eq!(e.to_diagnostic().code, Code::DaemonShuttingDown, "{e:?}");
    assert!(e.daemon_gone());
}

#[test]
fn a_bad_events_query_is_400_with_the_reason() {
    let d = Daemon::start();
    for (path, said) in [
        (
            "/v1/events?after=abc",
            "bad parameter `after=abc` in the query of /v1/events",
        ),
        (
            "/v1/events?wait=1&wait=0",
            "`wait` is given twice in the query of /v1/events",
        ),
        (
            "/v1/events?since=3",
            "unknown parameter `since` in the query of /v1/events",
        ),
    ] {
        let e = client::get::<EventsReply>(&d.socket, path).unwrap_err();
        let ClientError::Api(api) = &e else {
            panic!("{path}: {e:?}")
        };
        assert_eq!(
            (api.status, api.code.as_str()),
            (400, "API_ERROR"),
            "{path}"
        );
        assert_eq!(api.message, said);
        assert!(api.rendered.contains("   = help: "), "{api:?}");
    }
}

/// `bulkhead events -f` as a child, its stdout lines on a channel.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn start(d: &Daemon, args: &[&str]) -> Follower {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkhead"))
            .args(["events", "-f"])
            .args(args)
            .arg("--socket")
            .arg(&d.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    fn next(&self) -> String {
        self.lines.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// Waits for the exit (killing it after 10 s); its status and stderr.
    /// It must have printed nothing more.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let status = common::poll_until(Duration::from_secs(10), || self.child.try_wait().unwrap())
            .unwrap_or_else(|_| {
                self.child.kill().unwrap();
                panic!("bulkhead events -f did not exit");
            });
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        println!("events -f: {status:?}\n--- stderr\n{err}");
        let rest: Vec<String> = self.lines.iter().collect();
        assert!(rest.is_empty(), "printed after the last event: {rest:?}");
        (status, err)
    }
}

#[test]
fn events_follow_prints_new_events_and_ends_when_the_daemon_stops() {
    let mut d = Daemon::start();
    let f = Follower::start(&d, &["-n", "2"]);
    assert_eq!(f.next(), EVENT_LINES[2]);
    assert_eq!(f.next(), EVENT_LINES[3]);
    // The late event answers the first long poll; the next one is held.
    assert_eq!(f.next(), LATE_LINE);
    d.wait_held(1);
    d.stop();
    let (status, err) = f.exit();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        err,
        "note: missed 3 events: the daemon no longer keeps them\n\
         note: stopped following: the daemon is shutting down and takes no more requests\n"
    );
}

#[test]
fn events_follow_json_of_one_service_ends_on_ctrl_c() {
    let d = Daemon::start();
    let f = Follower::start(&d, &["web", "--json"]);
    let seqs: Vec<u64> = (0..4)
        .map(|_| serde_json::from_str::<EventRecord>(&f.next()).unwrap().seq)
        .collect();
    assert_eq!(seqs, [3, 4, 6, LATE]);
    d.wait_held(1);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(f.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let (status, err) = f.exit();
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean end");
    assert_eq!(
        err,
        "note: missed 3 events: the daemon no longer keeps them\n"
    );
}

/// `bulkhead ARGS --socket SOCKET` with a terminal for stdout (a pty, by
/// `script`); what the terminal got. `None` without `script`.
fn on_a_terminal(socket: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let bin = assert_cmd::cargo::cargo_bin("bulkhead");
    let cmd = format!(
        "{} {} --socket {}",
        bin.display(),
        args.join(" "),
        socket.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    common::show(format_args!("on a terminal: {cmd}"), &out);
    assert!(out.status.success());
    Some(out.stdout)
}

#[test]
fn logs_on_a_terminal_show_control_characters_instead_of_obeying_them() {
    let d = Daemon::start();
    let line = "2026-11-23T11:00:00.000Z out \x1b]0;pwned\x07\x1b[2Jgone\r\u{9b}31m\n";
    append(&d.logs().join("web-0.log"), line);
    // To a pipe: the bytes as written.
    let o = d.cli(&["logs", "web", "-n", "1"]);
    assert!(
        o.stdout.windows(4).any(|w| w == b"\x1b[2J"),
        "{}",
        stdout(&o)
    );
    let Some(shown) = on_a_terminal(&d.socket, &["logs", "web", "-n", "1"]) else {
        eprintln!("skipped the terminal half: no `script`");
        return;
    };
    let text = String::from_utf8(shown).unwrap();
    assert!(
        text.contains(r"\x1b]0;pwned\x07\x1b[2Jgone\x0d\u009b31m"),
        "{text:?}"
    );
    assert!(
        !text.contains('\x1b') && !text.contains('\u{9b}'),
        "{text:?}"
    );
    // --raw: the bytes as written, on a terminal too.
    let raw = on_a_terminal(&d.socket, &["logs", "web", "-n", "1", "--raw"]).unwrap();
    assert!(raw.windows(4).any(|w| w == b"\x1b[2J"));
}
