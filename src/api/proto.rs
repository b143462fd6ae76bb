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
//! GET  /healthz                        -> "ok"
//! ```
//! Errors are an [`ApiError`] with a 4xx/5xx status.

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
    Status { service: Option<String> },
    Start { service: String },
    Stop { service: String },
    Restart { service: String },
    Reload,
    Logs { service: String },
}

/// The daemon's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Status(StatusReply),
    Action(ActionReply),
    Reload(ReloadReply),
    Logs(LogsReply),
}

/// What the server sends into the daemon's loop: a request and where to put
/// the answer.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Result<Response, ApiError>>,
}
