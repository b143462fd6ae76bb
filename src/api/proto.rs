//! The control protocol: HTTP/1.1 + JSON over the daemon's unix socket
//! (DESIGN.md decision 13). These types are the wire format shared by the
//! daemon and the CLI; renaming a field is a breaking change.
//!
//! ```text
//! GET  /v1/status                      -> StatusReply (every service)
//! GET  /v1/status/{service}            -> StatusReply (that service only)
//! POST /v1/services/{service}/start    -> ActionReply
//! POST /v1/services/{service}/stop     -> ActionReply
//! POST /v1/services/{service}/restart  -> ActionReply (also resets the breaker)
//! POST /v1/reload                      -> ReloadReply, or 422 with the config errors
//! GET  /v1/services/{service}/logs     -> LogsReply (the files; the CLI reads them)
//! GET  /v1/events?after=N&service=S&wait=1
//!                                      -> EventsReply: events with seq > N; with
//!                                         wait=1 the answer waits (up to ~25 s)
//!                                         until there is one (long poll)
//! GET  /healthz                        -> "ok"
//! ```
//! Errors are an [`ApiError`] with a 4xx/5xx status.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The daemon and everything it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub daemon: DaemonInfo,
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub version: String,
    /// The config file the daemon runs.
    pub config: PathBuf,
    pub cgroup_root: PathBuf,
    pub uptime_secs: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub autostart: bool,
    pub instances: Vec<InstanceStatus>,
}

/// One instance (a replica) of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// `0`, `1`, ... for replicas.
    pub instance: String,
    /// stopped | starting | running | stopping | backoff | failed
    pub state: String,
    /// The init's pid (the service's PID 1), in the daemon's PID namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<f64>,
    /// Starts after the first one (by policy, health, violation or by hand).
    pub restarts: u32,
    /// `None` without a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Taken over from an earlier daemon run.
    #[serde(default)]
    pub adopted: bool,
    pub cgroup: PathBuf,
    /// cpu.stat usage_usec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usage_usec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_current: Option<u64>,
    /// `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    /// How the last run ended: `exited with status 1`, `killed by SIGKILL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// The latest notable thing that happened to it, with its time
    /// (RFC 3339): a violation, an OOM kill, the breaker opening, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// Backoff or failed (circuit open): seconds until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_secs: Option<f64>,
    /// Why it was last started again: `exited(1)`, `signal(SIGSEGV)`,
    /// `oom_kill`, `violation(cpu_throttled)`, `unhealthy`, `manual`, `reload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_reason: Option<String>,
    /// Restarts by reason (the reason's kind: `exited`, `signal`, `oom_kill`,
    /// `violation`, `unhealthy`, `manual`, `reload`), over the daemon's life.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restart_reasons: BTreeMap<String, u32>,
    /// Violations by rule (`oom`, `pids_max`, ...), over the daemon's life.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub violation_counts: BTreeMap<String, u64>,
    /// The latest violations, oldest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ViolationStatus>,
    /// memory.high as the throttle action set it, when lowered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_high_throttled: Option<u64>,
}

/// A watch rule that fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViolationStatus {
    /// RFC 3339 UTC.
    pub time: String,
    /// `oom`, `memory_pressure`, `cpu_pressure`, `io_pressure`,
    /// `cpu_throttled`, `pids_max`, `fds`.
    pub rule: String,
    /// The figures that fired it, e.g. `memory.pressure some avg10=34.20 for 3s`.
    pub observed: String,
    /// warn | throttle | restart | stop, and what it did:
    /// `throttle: memory.high 64M -> 57.6M`.
    pub action: String,
}

/// One thing that happened to an instance: a lifecycle change, a health
/// change or a violation. `seq` grows by one per event, daemon-wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    pub service: String,
    pub instance: String,
    /// `state` (a lifecycle transition), `violation`, `health`.
    pub kind: String,
    /// The state after the event (stopped | starting | running | ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// A restart's reason (see [`InstanceStatus::last_restart_reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `violation`: the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `violation`: the action taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `violation`: the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// An error code when there is one (`CIRCUIT_OPEN`, `SPAWN_FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// One line for humans.
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsReply {
    /// Oldest first.
    pub events: Vec<EventRecord>,
    /// The seq to ask after next time (the newest seq the daemon has, even
    /// when the filter left every event out).
    pub last_seq: u64,
    /// Events after the requested seq that the daemon no longer keeps (it
    /// keeps the latest 4096).
    #[serde(default)]
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionReply {
    pub service: String,
    /// What was done, e.g. `stopping 2 instances`.
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// One line per change, e.g. `web: memory.max 256M -> 512M (live)`;
    /// empty when nothing changed.
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogsReply {
    pub service: String,
    pub files: Vec<LogFile>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFile {
    pub instance: String,
    /// The current file; rotated ones are `path.1` .. `path.<keep>`.
    pub path: PathBuf,
    pub keep: u32,
}

/// A failed request. `rendered` is the full human-readable error (code,
/// message, context, cause, suggestion; several for an invalid config), as
/// the CLI prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP status: 400 bad request, 403 refused peer, 404 unknown service,
    /// 409 not possible in the current state, 422 invalid config, 500.
    pub status: u16,
    /// An error code (`UNKNOWN_SERVICE`, `CONFIG_INVALID`, ...).
    pub code: String,
    pub message: String,
    pub rendered: String,
}

impl ApiError {
    /// `d` as the API reports it: its code and message, and `rendered` as
    /// the CLI prints it.
    pub fn from_diagnostic(status: u16, d: &crate::error::Diagnostic) -> ApiError {
        ApiError {
            status,
            code: d.code.as_str().to_string(),
            message: d.message.clone(),
            rendered: d.render(None),
        }
    }
}

/// A request to the daemon, as the server hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Status {
        service: Option<String>,
    },
    Start {
        service: String,
    },
    Stop {
        service: String,
    },
    Restart {
        service: String,
    },
    Reload,
    Logs {
        service: String,
    },
    /// Events with seq > `after` (all kept ones when `None`), of `service`
    /// only when set. `wait`: do not answer before there is one.
    Events {
        service: Option<String>,
        after: Option<u64>,
        wait: bool,
    },
}

/// The daemon's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Status(StatusReply),
    Action(ActionReply),
    Reload(ReloadReply),
    Logs(LogsReply),
    Events(EventsReply),
}

/// What the server sends into the daemon's loop: a request and where to put
/// the answer.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Result<Response, ApiError>>,
}
