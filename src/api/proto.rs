//! The control protocol: HTTP/1.1 + JSON over the daemon's unix socket
//! (docs/ARCHITECTURE.md decision 13). These types are the wire format shared by the
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
//! POST /v1/launch                      -> LaunchReply (body: LaunchRequest)
//! GET  /v1/instances[?service=S]       -> ListReply (template instances)
//! POST /v1/services/{service}/instances/{instance}/terminate?grace=10s
//!                                      -> ActionReply
//! GET  /v1/metrics                     -> MetricsReply (with cgroup figures)
//! POST /v1/services/{service}/kill?signal=SIGHUP&instance=0
//!                                      -> KillReply (signal = a name; every
//!                                         live instance without `instance`)
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
    /// Groups (`groups.<name>`): usage of the whole group against its limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupStatus>,
}

/// A group's cgroup: the sum of its services' instances against the
/// group's own limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub cgroup: PathBuf,
    /// The services placed in it.
    pub services: Vec<String>,
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
    /// memory.events oom_kill of the group (its instances' kills included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<u64>,
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
    /// A template's isolation level (`none`, `namespace`, `session`); its
    /// instances are the launched ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
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
    /// The health check, e.g. `http 127.0.0.1:20001/healthz every 5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    /// Probes that passed and failed, over the instance's life here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probes_passed: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probes_failed: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_zero(n: &u64) -> bool {
    *n == 0
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

/// `POST /v1/services/{service}/kill`: what was signalled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KillReply {
    pub service: String,
    /// The signal's name, `SIGHUP`.
    pub signal: String,
    /// The instances whose init got the signal.
    pub instances: Vec<String>,
    /// Instances the signal did not reach and why (`1: No such process`:
    /// it ended meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// `killed 2 instances of web with SIGHUP`.
    pub message: String,
}

/// Whether `kill` sends `sig`: the signals the init passes on to the
/// service ([`crate::sandbox::init::FORWARDED`]) and SIGKILL, which ends
/// the init and with it everything in the compartment. The init is PID 1
/// of its namespace: the kernel drops any other signal sent to it, as it
/// has no handler for them, so sending one would do nothing.
pub fn killable(sig: nix::sys::signal::Signal) -> bool {
    sig == nix::sys::signal::Signal::SIGKILL || crate::sandbox::init::FORWARDED.contains(&sig)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// One line per change, e.g. `web: memory.max 256M -> 512M (live)`;
    /// empty when nothing changed.
    pub changes: Vec<String>,
    /// What the new config asked for and could not be done (a limit the
    /// kernel refused); everything else is in effect. Empty when all held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
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
    /// Get or create a template's instance for a key.
    Launch(LaunchRequest),
    /// Instances of templates (of `service` only when set).
    List {
        service: Option<String>,
    },
    /// Stop a template's instance and forget it; `grace` overrides the
    /// service's stop grace.
    Terminate {
        service: String,
        instance: String,
        grace: Option<std::time::Duration>,
    },
    /// The metrics skeleton; the server fills in the cgroup figures.
    Metrics,
    /// `signal` to the init of each live instance (of `instance` only
    /// when set), through its pidfd; the machines are not told.
    Kill {
        service: String,
        signal: crate::config::units::Sig,
        instance: Option<String>,
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
    Launch(LaunchReply),
    List(ListReply),
    Metrics(Box<MetricsReply>),
    Kill(KillReply),
}

/// What the server sends into the daemon's loop: a request and where to put
/// the answer.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Result<Response, ApiError>>,
}

// ------------------------------------------------------------ launches

/// `POST /v1/launch`: the instance of `service` for this namespace and
/// session, by the service's isolation level: `none` -> `shared`,
/// `namespace` -> `ns:<namespace>`, `session` -> `session:<session>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchReply {
    pub service: String,
    /// `shared`, `ns:<namespace>` or `session:<session>`.
    pub instance: String,
    pub pid: Option<i32>,
    /// running (ready: healthy when it has a health check).
    pub state: String,
    /// This launch created the instance (else it was there, or another
    /// launch of the same key created it while this one waited).
    pub created: bool,
    /// `BULKHEAD_PORT` of the instance.
    pub port: u16,
    pub cgroup: PathBuf,
    /// Seconds from the request to the answer (queue wait included).
    pub duration_secs: f64,
    /// Seconds spent waiting in the admission queue.
    #[serde(default)]
    pub queued_secs: f64,
}

/// `GET /v1/instances`: template instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    pub instances: Vec<ListedInstance>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListedInstance {
    pub service: String,
    /// none | namespace | session
    pub isolation: String,
    pub instance: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<f64>,
    /// Launches that returned this instance.
    pub launches: u64,
    /// Seconds since the last launch touched it.
    pub idle_secs: f64,
    /// `idle_timeout` of the service, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<f64>,
    pub cgroup: PathBuf,
}

// ------------------------------------------------------------ metrics

/// `GET /v1/metrics` and `bulkhead metrics --json`; `/metrics` is the same
/// in the Prometheus text format. The daemon's loop fills in what it knows
/// (states, counters, limits from config); the server reads the cgroup
/// figures off the loop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsReply {
    pub daemon: DaemonInfo,
    pub services: Vec<ServiceMetrics>,
    pub groups: Vec<GroupMetrics>,
    pub launch: LaunchMetrics,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The isolation level of a template (`none`, `namespace`, `session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Spawns, over the daemon's life (instances gone included).
    pub starts: u64,
    /// Restarts by reason kind (`exited`, `signal`, `oom_kill`,
    /// `violation`, `unhealthy`, `manual`, `reload`).
    pub restarts: BTreeMap<String, u64>,
    /// Violations by rule.
    pub violations: BTreeMap<String, u64>,
    /// Health probe results: `pass` and `fail` counts.
    pub health_checks: BTreeMap<String, u64>,
    pub instances: Vec<InstanceMetrics>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceMetrics {
    pub instance: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    pub restarts: u32,
    /// Violations of this instance by rule (see [`ServiceMetrics::violations`]
    /// for the service's, instances gone included), over the daemon's life.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub violations: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<f64>,
    pub cgroup: PathBuf,
    /// From the config (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    /// Read from the cgroup when the instance has one (filled by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<CgroupFigures>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    pub name: String,
    pub cgroup: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<CgroupFigures>,
}

/// What one cgroup's files say; a field is `None` when its file is absent
/// (controller not enabled, older kernel).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupFigures {
    pub cpu_usage_usec: Option<u64>,
    pub cpu_throttled_usec: Option<u64>,
    pub cpu_nr_periods: Option<u64>,
    pub cpu_nr_throttled: Option<u64>,
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    /// memory.max as the kernel has it (`None`: max).
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    /// memory.events `oom` and `oom_kill`.
    pub memory_oom: Option<u64>,
    pub memory_oom_kills: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<u64>,
    /// pids.events `max`: forks refused.
    pub pids_max_events: Option<u64>,
    /// io.stat summed over devices.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    pub io_read_ops: Option<u64>,
    pub io_write_ops: Option<u64>,
    /// PSI totals (microseconds) and avg10 (percent), `some` and `full`.
    pub pressure: BTreeMap<String, PressureFigures>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureFigures {
    pub some_total_usec: u64,
    pub some_avg10: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_total_usec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_avg10: Option<f64>,
}

/// The admission bulkhead for launches (`supervisor.launch`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchMetrics {
    pub max_concurrent: u32,
    pub max_queue: u32,
    /// Instance starts in progress.
    pub active: u64,
    /// Launches waiting for a slot.
    pub queued: u64,
    /// Launches by template and result: `created`, `reused`, `rejected`
    /// (queue full), `timeout` (waited `queue_timeout`), `failed` (the
    /// instance did not come up), `invalid` (bad key, max_instances).
    pub launches: BTreeMap<String, BTreeMap<String, u64>>,
    /// Seconds launches waited in the queue.
    pub queue_wait: Histogram,
    /// Seconds from request to answer of successful launches, by template.
    pub duration: BTreeMap<String, Histogram>,
}

/// A Prometheus-style histogram: cumulative counts per upper bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Upper bounds in seconds, increasing; `+Inf` is implied.
    pub bounds: Vec<f64>,
    /// `counts[i]`: observations <= `bounds[i]` (cumulative).
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(Histogram::LATENCY_BOUNDS)
    }
}

impl Histogram {
    /// 0.5 ms .. 60 s: warm launches answer in well under a millisecond,
    /// cold ones in tens of milliseconds to seconds (health checks).
    pub const LATENCY_BOUNDS: &'static [f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ];

    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, secs: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if secs <= *b {
                *c += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}
