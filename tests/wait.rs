//! The commands scripts wait on, end to end on the host: the real control
//! server on a socket in a temp dir ([`common::fake`]) and a fake daemon
//! loop whose services move through scripted states, driven by the
//! `bulkhead` binary: `start|stop|restart --wait` (reached, timed out,
//! failed fast, refused for a template), `is-active` and its exit codes,
//! `kill` reaching the daemon with its signal and instance, `status
//! SERVICE`'s exit 3, and `--json` on the commands that gained it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead::api::proto::*;
use bulkhead::error::{Code, Diagnostic};
use common::fake::{self, Served};
use common::{stderr, stdout};
use tokio::sync::mpsc;

fn inst(n: &str, state: &str, healthy: Option<bool>) -> InstanceStatus {
    InstanceStatus {
        instance: n.into(),
        state: state.into(),
        healthy,
        ..InstanceStatus::default()
    }
}

/// A service's instances, each `state` or `state+` (running, healthy) or
/// `state-` (running, not healthy yet).
fn svc(name: &str, states: &[&str]) -> ServiceStatus {
    ServiceStatus {
        name: name.into(),
        instances: states
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let (state, healthy) = match s.strip_suffix('+') {
                    Some(s) => (s, Some(true)),
                    None => match s.strip_suffix('-') {
                        Some(s) => (s, Some(false)),
                        None => (*s, None),
                    },
                };
                let mut i = inst(&n.to_string(), state, healthy);
                if state == "failed" {
                    i.next_attempt_secs = Some(25.0);
                    i.last_exit = Some("exited with status 1".into());
                }
                i
            })
            .collect(),
        ..ServiceStatus::default()
    }
}

/// What a service says before an action, and after: one frame per status
/// request, the last one for good.
struct Script {
    before: ServiceStatus,
    after: Vec<ServiceStatus>,
    /// The next frame, once an action came.
    at: Option<usize>,
}

fn script(name: &str, before: &[&str], after: &[&[&str]]) -> (String, Script) {
    (
        name.to_string(),
        Script {
            before: svc(name, before),
            after: after.iter().map(|f| svc(name, f)).collect(),
            at: None,
        },
    )
}

/// The fake daemon's services:
/// - `web` (2 instances, health checked) starts, becomes healthy;
/// - `flaky` starts, backs off, fails (circuit breaker open);
/// - `stuck` stays starting;
/// - `db` stops;
/// - `sandbox` is a template;
/// - `idle` is stopped; `half` has a running and a stopped instance.
fn world() -> BTreeMap<String, Script> {
    let mut tmpl = script("sandbox", &["running"], &[&["running"]]);
    tmpl.1.before.isolation = Some("namespace".into());
    BTreeMap::from([
        script(
            "web",
            &["stopped", "stopped"],
            &[
                &["starting", "stopped"],
                &["running-", "starting"],
                &["running+", "running-"],
                &["running+", "running+"],
            ],
        ),
        script(
            "flaky",
            &["stopped"],
            &[&["starting"], &["backoff"], &["failed"]],
        ),
        script("stuck", &["stopped"], &[&["starting"]]),
        script(
            "db",
            &["running", "running"],
            &[
                &["stopping", "stopping"],
                &["stopped", "stopping"],
                &["stopped", "stopped"],
            ],
        ),
        tmpl,
        script("idle", &["stopped"], &[&["stopped"]]),
        script("half", &["running", "stopped"], &[&["running", "stopped"]]),
    ])
}

fn unknown(service: &str) -> ApiError {
    ApiError::from_diagnostic(
        404,
        &Diagnostic::new(Code::ApiError, format!("no service named {service}"))
            .suggest("`bulkhead status` lists the services"),
    )
}

/// A server and a fake daemon that plays [`world`] and records every
/// request it gets.
struct Daemon {
    _server: Served,
    _dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = fake::control(&socket, bulkhead::api::LONG_POLL, move |rx| {
            fake_daemon(rx, log)
        });
        Daemon {
            _server: server,
            _dir: dir,
            socket,
            seen,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        fake::cli(&self.socket, args)
    }

    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

async fn fake_daemon(mut calls: mpsc::Receiver<Call>, seen: Arc<Mutex<Vec<Request>>>) {
    let mut world = world();
    while let Some(Call { request, reply }) = calls.recv().await {
        seen.lock().unwrap().push(request.clone());
        let answer = match request {
            Request::Status { service: None } => Ok(Response::Status(StatusReply {
                services: world
                    .values()
                    .map(|s| match s.at {
                        Some(n) => s.after[n].clone(),
                        None => s.before.clone(),
                    })
                    .collect(),
                ..StatusReply::default()
            })),
            Request::Status { service: Some(s) } => match world.get_mut(&s) {
                Some(script) => {
                    let frame = match script.at {
                        Some(n) => {
                            script.at = Some((n + 1).min(script.after.len() - 1));
                            script.after[n].clone()
                        }
                        None => script.before.clone(),
                    };
                    Ok(Response::Status(StatusReply {
                        services: vec![frame],
                        ..StatusReply::default()
                    }))
                }
                None => Err(unknown(&s)),
            },
            Request::Start { service }
            | Request::Stop { service }
            | Request::Restart { service } => match world.get_mut(&service) {
                Some(script) => {
                    script.at = Some(0);
                    Ok(Response::Action(ActionReply {
                        message: format!("acting on {service}"),
                        service,
                    }))
                }
                None => Err(unknown(&service)),
            },
            Request::Kill {
                service,
                signal,
                instance,
            } if service == "web" => Ok(Response::Kill(KillReply {
                message: format!("killed 1 instance of web with {signal}"),
                service,
                signal: signal.to_string(),
                instances: vec![instance.unwrap_or_else(|| "0".into())],
                failures: Vec::new(),
            })),
            Request::Kill { service, .. } if service == "idle" => Ok(Response::Kill(KillReply {
                message: "killed 0 instances of idle with SIGTERM".into(),
                service,
                signal: "SIGTERM".into(),
                instances: Vec::new(),
                failures: vec!["0: No such process".into()],
            })),
            Request::Kill { service, .. } => Err(unknown(&service)),
            Request::Reload => Ok(Response::Reload(ReloadReply {
                changes: vec!["web: memory.max 256M -> 512M (live)".into()],
                failures: Vec::new(),
            })),
            Request::Terminate {
                service, instance, ..
            } => Ok(Response::Action(ActionReply {
                message: format!("terminating {service}/{instance}"),
                service,
            })),
            other => Err(unknown(&format!("{other:?}"))),
        };
        let _ = reply.send(answer);
    }
}

#[test]
fn start_wait_returns_once_every_instance_is_ready() {
    let d = Daemon::start();
    let o = d.cli(&["start", "web", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "web: acting on web\nweb: ready (2 instances)\n");
    // The template check, the start, then status until all were ready.
    let seen = d.seen();
    assert!(matches!(&seen[1], Request::Start { service } if service == "web"));
    let polls = seen[2..]
        .iter()
        .filter(|r| matches!(r, Request::Status { service: Some(s) } if s == "web"))
        .count();
    assert_eq!(polls, 4, "{seen:?}");
}

#[test]
fn restart_and_stop_wait_for_their_goals() {
    let d = Daemon::start();
    let o = d.cli(&["restart", "web", "--wait", "--timeout", "10s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("web: ready (2 instances)\n"));

    let o = d.cli(&["stop", "db", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "db: acting on db\ndb: stopped (2 instances)\n");
}

#[test]
fn a_wait_that_times_out_says_where_each_instance_is() {
    let d = Daemon::start();
    let began = Instant::now();
    let o = d.cli(&["start", "stuck", "--wait", "--timeout", "1s"]);
    let took = began.elapsed();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // The start was accepted: its line comes first.
    assert_eq!(stdout(&o), "stuck: acting on stuck\n");
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "error[WAIT_TIMEOUT]: stuck is not ready after 1s: 1 of 1 instance not yet\n"
        ),
        "{err}"
    );
    assert!(err.contains("   = cause: stuck/0 starting\n"), "{err}");
    assert!(err.contains("`bulkhead status stuck`"), "{err}");
    assert!(err.contains("`bulkhead logs stuck`"), "{err}");
}

#[test]
fn a_wait_fails_fast_when_the_circuit_breaker_opens() {
    let d = Daemon::start();
    let began = Instant::now();
    let o = d.cli(&["start", "flaky", "--wait", "--timeout", "60s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(began.elapsed() < Duration::from_secs(10), "it waited on");
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "error[CIRCUIT_OPEN]: flaky will not be ready: instance 0 failed (circuit open, retry \
             in 25s (exited with status 1))\n"
        ),
        "{err}"
    );
    assert!(err.contains("`bulkhead restart flaky`"), "{err}");
}

#[test]
fn wait_is_refused_for_a_template_before_anything_is_asked() {
    let d = Daemon::start();
    for verb in ["start", "stop", "restart"] {
        let o = d.cli(&[verb, "sandbox", "--wait"]);
        assert_eq!(o.status.code(), Some(2), "{verb}");
        assert!(o.stdout.is_empty());
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "error[USAGE]: `{verb} --wait` does not apply to sandbox: it is a template\n"
            )),
            "{err}"
        );
        assert!(err.contains("`bulkhead launch sandbox ...`"), "{err}");
    }
    assert!(
        d.seen().iter().all(|r| matches!(r, Request::Status { .. })),
        "{:?}",
        d.seen()
    );
    // An unknown service is the daemon's 404, as without --wait.
    let o = d.cli(&["start", "nope", "--wait"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error[API_ERROR]: no service named nope\n"));
    // --timeout needs --wait.
    let o = d.cli(&["start", "web", "--timeout", "5s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error[USAGE]"));
}

#[test]
fn is_active_prints_systemctls_words_and_exits_0_only_when_all_are_active() {
    let d = Daemon::start();
    let o = d.cli(&["is-active", "db"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "active\n")
    );

    let o = d.cli(&["is-active", "db", "idle", "half", "nope"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "active\ninactive\ninactive\ninactive\n");
    assert!(o.stderr.is_empty(), "an unknown service is no error");

    let o = d.cli(&["is-active", "-q", "db"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    let o = d.cli(&["is-active", "--quiet", "idle"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());

    // Scripted states move as an action comes: flaky goes failed, web
    // activating while its health check has not passed.
    d.cli(&["start", "flaky"]);
    for _ in 0..3 {
        d.cli(&["status", "flaky"]);
    }
    let o = d.cli(&["is-active", "flaky", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"service": "flaky", "state": "failed"}])
    );

    d.cli(&["start", "web"]);
    d.cli(&["status", "web"]);
    d.cli(&["status", "web"]);
    let o = d.cli(&["is-active", "web"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(3), "activating\n")
    );

    // No service named: clap's usage error.
    let o = d.cli(&["is-active"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn is_active_without_a_daemon_is_status_unknown_4() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let o = fake::cli(&socket, &["is-active", "web"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).starts_with("error[DAEMON_NOT_RUNNING]"));
    let o = fake::cli(&socket, &["is-active", "-q", "web"]);
    assert_eq!(o.status.code(), Some(4));
    let help = stdout(&common::fake::run(
        common::fake::bulkhead().args(["is-active", "--help"]),
    ))
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    assert!(help.contains("4 the state cannot be known"), "{help}");
    assert!(help.contains("`inactive`"), "{help}");
}

#[test]
fn kill_reaches_the_daemon_with_its_signal_and_instance() {
    let d = Daemon::start();
    let o = d.cli(&["kill", "web"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "killed 1 instance of web with SIGTERM\n");

    let o = d.cli(&["kill", "web", "-s", "hup", "--instance", "1", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let r: KillReply = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r.signal.as_str(), r.instances),
        ("SIGHUP", vec!["1".to_string()])
    );
    // A number is a signal too.
    let o = d.cli(&["kill", "web", "--signal", "10"]);
    assert_eq!(stdout(&o), "killed 1 instance of web with SIGUSR1\n");

    let kills: Vec<(String, Option<String>)> = d
        .seen()
        .into_iter()
        .filter_map(|r| match r {
            Request::Kill {
                signal, instance, ..
            } => Some((signal.to_string(), instance)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kills,
        [
            ("SIGTERM".to_string(), None),
            ("SIGHUP".to_string(), Some("1".to_string())),
            ("SIGUSR1".to_string(), None),
        ]
    );

    // Reaching no instance is a failure.
    let o = d.cli(&["kill", "idle"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("killed 0 instances"));
    let o = d.cli(&["kill", "nope"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn kill_refuses_a_signal_that_would_not_reach_the_service() {
    let d = Daemon::start();
    for bad in ["WINCH", "SIGSTOP", "64", "FOO", "0"] {
        let o = d.cli(&["kill", "web", "-s", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = stderr(&o);
        assert!(
            err.starts_with("error[USAGE]: invalid value"),
            "{bad}: {err}"
        );
        assert!(err.contains(bad), "{bad}: {err}");
    }
    assert!(d.seen().is_empty(), "{:?}", d.seen());
    // SIGKILL is sent: it ends the compartment.
    let o = d.cli(&["kill", "web", "-s", "KILL"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn status_of_a_service_with_nothing_running_exits_3() {
    let d = Daemon::start();
    for (args, code) in [
        (&["status", "db"][..], 0),
        (&["status", "half"], 0),
        (&["status", "idle"], 3),
        (&["status", "idle", "--json"], 3),
        (&["status"], 0),
    ] {
        let o = d.cli(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    let o = d.cli(&["status", "--help"]);
    let help = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("SERVICE has no running instance"), "{help}");
}

#[test]
fn json_on_the_commands_that_gained_it_is_the_apis_reply() {
    let d = Daemon::start();
    let o = d.cli(&["start", "db", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let r: ActionReply = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r,
        ActionReply {
            service: "db".into(),
            message: "acting on db".into()
        }
    );
    // With --wait the reply alone, once done.
    let o = d.cli(&["stop", "db", "--json", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _: ActionReply = serde_json::from_slice(&o.stdout).unwrap();

    let o = d.cli(&["reload", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let r: ReloadReply = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r.changes, ["web: memory.max 256M -> 512M (live)"]);

    let o = d.cli(&["terminate", "sandbox", "ns:a", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let r: ActionReply = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r.message, "terminating sandbox/ns:a");

    // Without --json, as before.
    assert_eq!(
        stdout(&d.cli(&["reload"])),
        "web: memory.max 256M -> 512M (live)\n"
    );
    assert_eq!(
        stdout(&d.cli(&["terminate", "sandbox", "ns:a"])),
        "terminating sandbox/ns:a\n"
    );
}
