//! Metrics: the cgroup figures of `GET /v1/metrics`, and the Prometheus text
//! form of the whole reply that `/metrics` serves (docs/ARCHITECTURE.md decision 13).
//!
//! ```text
//! daemon loop ──MetricsReply──> fill (reads each live cgroup, off the loop) ──> JSON
//!   (states, counters, limits)                                       └──> encode ──> text 0.0.4
//! ```
//! [`read_figures`] reads one cgroup's files with the parsers of
//! [`crate::cgroup::stats`]; a file that is missing (controller not enabled,
//! older kernel) leaves its field `None`. [`encode`] is pure: the reply in,
//! the exposition text out.
//!
//! Cardinality stays bounded: every label value comes from the config
//! (services, groups, templates), from fixed sets (states, restart reasons,
//! rules, launch results) or from an instance present in the reply. A
//! series exists only while what it describes is in the reply, so the
//! series of a removed instance or service are gone from the next scrape,
//! and the cgroup series of an instance go when its cgroup does (stopped,
//! backing off).
//!
//! ```text
//! # HELP bulkhead_memory_current_bytes Memory in use by the cgroup (memory.current).
//! # TYPE bulkhead_memory_current_bytes gauge
//! bulkhead_memory_current_bytes{service="web",instance="0"} 15409152
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use super::proto::{
    CgroupFigures, GroupMetrics, Histogram, MetricsReply, PressureFigures, ServiceMetrics,
};
use crate::cgroup::{self, stats};
use crate::monitor::rules::RuleKind;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every state an instance can be in (`StateKind::as_str`): each is a
/// series of `bulkhead_instances`, 0 when no instance is in it.
pub const STATES: [&str; 6] = [
    "stopped", "starting", "running", "stopping", "backoff", "failed",
];

/// The kinds of restart reason (`Reason::kind`).
pub const RESTART_REASONS: [&str; 8] = [
    "exited",
    "signal",
    "oom_kill",
    "violation",
    "unhealthy",
    "spawn_failed",
    "manual",
    "reload",
];

/// The results of a launch (`LaunchMetrics::launches`).
pub const LAUNCH_RESULTS: [&str; 7] = [
    "created", "reused", "rejected", "timeout", "failed", "limit", "invalid",
];

// ------------------------------------------------------------ reading

/// What the files of the cgroup `dir` say; `None` when the directory is
/// gone (the instance stopped meanwhile). Each file is read on its own: one
/// that is missing or does not parse leaves its fields `None` and the rest
/// are still read.
pub fn read_figures(dir: &Path) -> Option<CgroupFigures> {
    if !dir.is_dir() {
        return None;
    }
    let cpu = read(dir, "cpu.stat", stats::parse_cpu_stat);
    let throttling = cpu.and_then(|c| c.throttling);
    let events = read(dir, "memory.events", stats::parse_memory_events);
    let io = read(dir, "io.stat", stats::parse_io_stat);
    // io.stat has a line per device the cgroup touched: `254:0 rbytes=...`.
    let io_sum = |field: fn(&stats::IoDevStat) -> u64| {
        io.as_ref()
            .map(|s| s.devices.iter().map(field).fold(0u64, u64::saturating_add))
    };
    let mut pressure = BTreeMap::new();
    for (resource, file, parse) in [
        (
            "cpu",
            "cpu.pressure",
            stats::parse_cpu_pressure as fn(&str) -> Result<stats::Psi, stats::StatError>,
        ),
        ("memory", "memory.pressure", stats::parse_memory_pressure),
        ("io", "io.pressure", stats::parse_io_pressure),
    ] {
        if let Some(p) = read(dir, file, parse) {
            pressure.insert(
                resource.to_string(),
                PressureFigures {
                    some_total_usec: p.some.total,
                    some_avg10: p.some.avg10,
                    full_total_usec: p.full.map(|f| f.total),
                    full_avg10: p.full.map(|f| f.avg10),
                },
            );
        }
    }
    let figures = CgroupFigures {
        cpu_usage_usec: cpu.map(|c| c.usage_usec),
        cpu_throttled_usec: throttling.map(|t| t.throttled_usec),
        cpu_nr_periods: throttling.map(|t| t.nr_periods),
        cpu_nr_throttled: throttling.map(|t| t.nr_throttled),
        memory_current: read(dir, "memory.current", stats::parse_memory_current),
        memory_peak: read(dir, "memory.peak", stats::parse_memory_peak),
        memory_max: limit(dir, "memory.max"),
        memory_high: limit(dir, "memory.high"),
        memory_oom: events.map(|e| e.oom),
        memory_oom_kills: events.map(|e| e.oom_kill),
        pids_current: read(dir, "pids.current", stats::parse_pids_current),
        pids_max: limit(dir, "pids.max"),
        pids_max_events: read(dir, "pids.events", stats::parse_pids_events).map(|e| e.max),
        io_read_bytes: io_sum(|d| d.rbytes),
        io_write_bytes: io_sum(|d| d.wbytes),
        io_read_ops: io_sum(|d| d.rios),
        io_write_ops: io_sum(|d| d.wios),
        pressure,
    };
    // Nothing at all could be read: the cgroup went while we read it.
    (figures != CgroupFigures::default()).then_some(figures)
}

/// `file` of `dir`, parsed; `None` when it cannot be read or parsed.
fn read<T>(
    dir: &Path,
    file: &'static str,
    parse: impl Fn(&str) -> Result<T, stats::StatError>,
) -> Option<T> {
    let text = cgroup::read(dir, file).ok()?;
    parse(&text)
        .inspect_err(|e| tracing::debug!("metrics: {}: {e}", dir.display()))
        .ok()
}

/// A limit file: `None` when it says `max` (or cannot be read).
fn limit(dir: &Path, file: &'static str) -> Option<u64> {
    read(dir, file, |t| stats::parse_limit(file, t)).and_then(stats::Limit::value)
}

/// Fills in the figures of every instance that is not stopped and of every
/// group. Blocking (it reads files): the server runs it off the loop.
pub fn fill(reply: &mut MetricsReply) {
    // Figures already present (a caller that has them, such as a test
    // double of the daemon) are kept; the daemon's loop leaves them `None`.
    for i in reply
        .services
        .iter_mut()
        .flat_map(|s| s.instances.iter_mut())
        .filter(|i| i.figures.is_none() && i.state != "stopped")
    {
        i.figures = read_figures(&i.cgroup);
    }
    for g in reply.groups.iter_mut().filter(|g| g.figures.is_none()) {
        g.figures = read_figures(&g.cgroup);
    }
}

// ------------------------------------------------------------ encoding

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value: integers exactly as they are, the rest as Go's
/// `strconv.FormatFloat(v, 'g', -1, 64)` would read back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(u64),
    Float(f64),
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Num::Int(n) => write!(f, "{n}"),
            Num::Float(x) if x.is_nan() => f.write_str("NaN"),
            Num::Float(x) if x.is_infinite() => f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" }),
            // Rust prints the shortest text that reads back as the same
            // double, never with an exponent: 0.0005, 1, 2.5.
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Microseconds (as cgroup files count time) in seconds.
fn secs(usec: u64) -> Num {
    // Exact below 2^53 us (285 years).
    Num::Float(usec as f64 / 1e6)
}

fn bool_num(b: bool) -> Num {
    Num::Int(u64::from(b))
}

type Labels = Vec<(&'static str, String)>;

/// One line: the family's name with `suffix`, the labels, the value.
struct Sample {
    suffix: &'static str,
    labels: Labels,
    value: Num,
}

/// The samples of one metric family, written under its HELP and TYPE.
struct Family {
    name: String,
    help: &'static str,
    kind: Kind,
    samples: Vec<Sample>,
}

impl Family {
    fn new(name: impl Into<String>, help: &'static str, kind: Kind) -> Family {
        Family {
            name: name.into(),
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Labels, value: Num) {
        self.samples.push(Sample {
            suffix: "",
            labels,
            value,
        });
    }

    /// `_bucket{le=...}` per bound and `+Inf`, `_sum` and `_count`. The
    /// counts are cumulative already; `+Inf` is every observation.
    fn histogram(&mut self, labels: &Labels, h: &Histogram) {
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            let mut l = labels.clone();
            l.push(("le", Num::Float(*bound).to_string()));
            self.samples.push(Sample {
                suffix: "_bucket",
                labels: l,
                value: Num::Int(*count),
            });
        }
        let mut l = labels.clone();
        l.push(("le", "+Inf".to_string()));
        for (suffix, labels, value) in [
            ("_bucket", l, Num::Int(h.count)),
            ("_sum", labels.clone(), Num::Float(h.sum)),
            ("_count", labels.clone(), Num::Int(h.count)),
        ] {
            self.samples.push(Sample {
                suffix,
                labels,
                value,
            });
        }
    }

    /// Appends the family to `out`; a family without samples is left out.
    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for s in &self.samples {
            out.push_str(&self.name);
            out.push_str(s.suffix);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", s.value);
        }
    }
}

/// A label value: `\`, `"` and newline escaped (`a"b` -> `a\"b`).
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text: `\` and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A metric read from a cgroup's files, for instances (`bulkhead_NAME`,
/// labels `service`, `instance`) and groups (`bulkhead_group_NAME`, label
/// `group`). `values` gives the samples the figures hold: none when the
/// file was missing, or the limit is `max`.
struct CgroupMetric {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    values: fn(&CgroupFigures) -> Vec<(Labels, Num)>,
}

fn one(v: Option<Num>) -> Vec<(Labels, Num)> {
    v.map(|v| (Vec::new(), v)).into_iter().collect()
}

const CGROUP_METRICS: &[CgroupMetric] = &[
    CgroupMetric {
        name: "cpu_usage_seconds_total",
        help: "CPU time used (cpu.stat usage_usec).",
        kind: Kind::Counter,
        values: |f| one(f.cpu_usage_usec.map(secs)),
    },
    CgroupMetric {
        name: "cpu_throttled_seconds_total",
        help: "Time the cgroup was held back by cpu.max (cpu.stat throttled_usec).",
        kind: Kind::Counter,
        values: |f| one(f.cpu_throttled_usec.map(secs)),
    },
    CgroupMetric {
        name: "cpu_periods_total",
        help: "cpu.max enforcement periods with runnable tasks (cpu.stat nr_periods).",
        kind: Kind::Counter,
        values: |f| one(f.cpu_nr_periods.map(Num::Int)),
    },
    CgroupMetric {
        name: "cpu_throttled_periods_total",
        help: "Periods in which cpu.max throttled the cgroup (cpu.stat nr_throttled).",
        kind: Kind::Counter,
        values: |f| one(f.cpu_nr_throttled.map(Num::Int)),
    },
    CgroupMetric {
        name: "memory_current_bytes",
        help: "Memory in use by the cgroup (memory.current).",
        kind: Kind::Gauge,
        values: |f| one(f.memory_current.map(Num::Int)),
    },
    CgroupMetric {
        name: "memory_peak_bytes",
        help: "The highest memory use recorded (memory.peak).",
        kind: Kind::Gauge,
        values: |f| one(f.memory_peak.map(Num::Int)),
    },
    CgroupMetric {
        name: "memory_max_bytes",
        help: "The hard memory limit (memory.max); absent when unlimited.",
        kind: Kind::Gauge,
        values: |f| one(f.memory_max.map(Num::Int)),
    },
    CgroupMetric {
        name: "memory_high_bytes",
        help: "The memory throttling limit (memory.high); absent when unlimited.",
        kind: Kind::Gauge,
        values: |f| one(f.memory_high.map(Num::Int)),
    },
    CgroupMetric {
        name: "oom_events_total",
        help: "Times memory.max was hit and the OOM killer ran (memory.events oom).",
        kind: Kind::Counter,
        values: |f| one(f.memory_oom.map(Num::Int)),
    },
    CgroupMetric {
        name: "oom_kills_total",
        help: "Processes killed by the OOM killer (memory.events oom_kill).",
        kind: Kind::Counter,
        values: |f| one(f.memory_oom_kills.map(Num::Int)),
    },
    CgroupMetric {
        name: "pids_current",
        help: "Tasks (processes and threads) in the cgroup (pids.current).",
        kind: Kind::Gauge,
        values: |f| one(f.pids_current.map(Num::Int)),
    },
    CgroupMetric {
        name: "pids_max",
        help: "The task limit (pids.max); absent when unlimited.",
        kind: Kind::Gauge,
        values: |f| one(f.pids_max.map(Num::Int)),
    },
    CgroupMetric {
        name: "pids_forks_refused_total",
        help: "Forks refused at pids.max (pids.events max).",
        kind: Kind::Counter,
        values: |f| one(f.pids_max_events.map(Num::Int)),
    },
    CgroupMetric {
        name: "io_read_bytes_total",
        help: "Bytes read from block devices (io.stat rbytes, all devices).",
        kind: Kind::Counter,
        values: |f| one(f.io_read_bytes.map(Num::Int)),
    },
    CgroupMetric {
        name: "io_write_bytes_total",
        help: "Bytes written to block devices (io.stat wbytes, all devices).",
        kind: Kind::Counter,
        values: |f| one(f.io_write_bytes.map(Num::Int)),
    },
    CgroupMetric {
        name: "io_read_ops_total",
        help: "Read operations on block devices (io.stat rios, all devices).",
        kind: Kind::Counter,
        values: |f| one(f.io_read_ops.map(Num::Int)),
    },
    CgroupMetric {
        name: "io_write_ops_total",
        help: "Write operations on block devices (io.stat wios, all devices).",
        kind: Kind::Counter,
        values: |f| one(f.io_write_ops.map(Num::Int)),
    },
    CgroupMetric {
        name: "pressure_stalled_seconds_total",
        help: "Time some (or all) tasks were stalled on the resource (PSI total of cpu/memory/io.pressure).",
        kind: Kind::Counter,
        values: |f| {
            let mut v = Vec::new();
            for (resource, p) in &f.pressure {
                let labels =
                    |kind: &str| vec![("resource", resource.clone()), ("kind", kind.to_string())];
                v.push((labels("some"), secs(p.some_total_usec)));
                if let Some(full) = p.full_total_usec {
                    v.push((labels("full"), secs(full)));
                }
            }
            v
        },
    },
];

fn instance_labels(s: &ServiceMetrics, instance: &str) -> Labels {
    vec![
        ("service", s.name.clone()),
        ("instance", instance.to_string()),
    ]
}

fn service_label(s: &ServiceMetrics) -> Labels {
    vec![("service", s.name.clone())]
}

/// `counts` under `label`, with every name of `known` present (0 when
/// missing) before the others, so `rate()` sees a series from the start.
fn counts_with_zeros<'a>(
    known: impl IntoIterator<Item = &'a str>,
    counts: &'a BTreeMap<String, u64>,
) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = known
        .into_iter()
        .map(|k| (k.to_string(), counts.get(k).copied().unwrap_or(0)))
        .collect();
    for (k, v) in counts {
        if !out.iter().any(|(o, _)| o == k) {
            out.push((k.clone(), *v));
        }
    }
    out
}

/// The reply in the Prometheus text exposition format (0.0.4).
pub fn encode(reply: &MetricsReply) -> String {
    let mut families = daemon_families(reply);
    families.extend(service_families(&reply.services));
    families.extend(cgroup_families(reply));
    families.extend(launch_families(reply));
    let mut out = String::new();
    for f in &families {
        f.write(&mut out);
    }
    out
}

fn daemon_families(reply: &MetricsReply) -> Vec<Family> {
    let mut build = Family::new(
        "bulkhead_build_info",
        "The daemon's version; always 1.",
        Kind::Gauge,
    );
    build.push(vec![("version", reply.daemon.version.clone())], Num::Int(1));
    let mut uptime = Family::new(
        "bulkhead_uptime_seconds",
        "Seconds since the daemon started.",
        Kind::Gauge,
    );
    uptime.push(Vec::new(), Num::Float(reply.daemon.uptime_secs));
    vec![build, uptime]
}

fn service_families(services: &[ServiceMetrics]) -> Vec<Family> {
    let mut info = Family::new(
        "bulkhead_service_info",
        "A configured service, with its group and its isolation level when it is a template; always 1.",
        Kind::Gauge,
    );
    let mut instances = Family::new(
        "bulkhead_instances",
        "Instances of the service in each state.",
        Kind::Gauge,
    );
    let mut starts = Family::new(
        "bulkhead_starts_total",
        "Instance spawns of the service.",
        Kind::Counter,
    );
    let mut restarts = Family::new(
        "bulkhead_restarts_total",
        "Instance restarts of the service, by the kind of reason.",
        Kind::Counter,
    );
    let mut violations = Family::new(
        "bulkhead_violations_total",
        "Watch rules of the service that fired, by rule.",
        Kind::Counter,
    );
    let mut health = Family::new(
        "bulkhead_health_checks_total",
        "Health probes of the service's instances, by result (pass, fail).",
        Kind::Counter,
    );
    let mut up = Family::new(
        "bulkhead_instance_up",
        "1 when the instance is running, else 0.",
        Kind::Gauge,
    );
    let mut healthy = Family::new(
        "bulkhead_instance_healthy",
        "1 when the running instance passes its health check, else 0; absent without a health check.",
        Kind::Gauge,
    );
    let mut inst_restarts = Family::new(
        "bulkhead_instance_restarts_total",
        "Restarts of the instance.",
        Kind::Counter,
    );
    let mut uptime = Family::new(
        "bulkhead_instance_uptime_seconds",
        "Seconds since the instance started; absent when it is not running.",
        Kind::Gauge,
    );
    for s in services {
        let mut l = service_label(s);
        if let Some(g) = &s.group {
            l.push(("group", g.clone()));
        }
        if let Some(i) = &s.isolation {
            l.push(("isolation", i.clone()));
        }
        info.push(l, Num::Int(1));

        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for i in &s.instances {
            *by_state.entry(i.state.clone()).or_default() += 1;
        }
        for (state, n) in counts_with_zeros(STATES, &by_state) {
            let mut l = service_label(s);
            l.push(("state", state));
            instances.push(l, Num::Int(n));
        }
        starts.push(service_label(s), Num::Int(s.starts));
        for (reason, n) in counts_with_zeros(RESTART_REASONS, &s.restarts) {
            let mut l = service_label(s);
            l.push(("reason", reason));
            restarts.push(l, Num::Int(n));
        }
        let rules = RuleKind::ALL.map(RuleKind::as_str);
        for (rule, n) in counts_with_zeros(rules, &s.violations) {
            let mut l = service_label(s);
            l.push(("rule", rule));
            violations.push(l, Num::Int(n));
        }
        for (result, n) in &s.health_checks {
            let mut l = service_label(s);
            l.push(("result", result.clone()));
            health.push(l, Num::Int(*n));
        }
        for i in &s.instances {
            up.push(
                instance_labels(s, &i.instance),
                bool_num(i.state == "running"),
            );
            if let Some(h) = i.healthy {
                healthy.push(instance_labels(s, &i.instance), bool_num(h));
            }
            inst_restarts.push(
                instance_labels(s, &i.instance),
                Num::Int(u64::from(i.restarts)),
            );
            if let Some(u) = i.uptime_secs {
                uptime.push(instance_labels(s, &i.instance), Num::Float(u));
            }
        }
    }
    vec![
        info,
        instances,
        starts,
        restarts,
        violations,
        health,
        up,
        healthy,
        inst_restarts,
        uptime,
    ]
}

/// The [`CGROUP_METRICS`] of every instance, then of every group.
fn cgroup_families(reply: &MetricsReply) -> Vec<Family> {
    let mut out = Vec::new();
    for m in CGROUP_METRICS {
        let mut f = Family::new(format!("bulkhead_{}", m.name), m.help, m.kind);
        for s in &reply.services {
            for i in &s.instances {
                let Some(figures) = &i.figures else { continue };
                for (extra, v) in (m.values)(figures) {
                    let mut l = instance_labels(s, &i.instance);
                    l.extend(extra);
                    f.push(l, v);
                }
            }
        }
        out.push(f);
    }
    for m in CGROUP_METRICS {
        let mut f = Family::new(format!("bulkhead_group_{}", m.name), m.help, m.kind);
        for g in &reply.groups {
            let GroupMetrics {
                figures: Some(figures),
                ..
            } = g
            else {
                continue;
            };
            for (extra, v) in (m.values)(figures) {
                let mut l = vec![("group", g.name.clone())];
                l.extend(extra);
                f.push(l, v);
            }
        }
        out.push(f);
    }
    out
}

fn launch_families(reply: &MetricsReply) -> Vec<Family> {
    let launch = &reply.launch;
    // Every template, and anything the counters name.
    let mut templates: Vec<&str> = reply
        .services
        .iter()
        .filter(|s| s.isolation.is_some())
        .map(|s| s.name.as_str())
        .collect();
    for t in launch.launches.keys().chain(launch.duration.keys()) {
        if !templates.contains(&t.as_str()) {
            templates.push(t);
        }
    }
    let mut launches = Family::new(
        "bulkhead_launches_total",
        "Launches of a template, by result (created, reused, rejected, timeout, failed, invalid).",
        Kind::Counter,
    );
    let mut duration = Family::new(
        "bulkhead_launch_duration_seconds",
        "Seconds from a launch request to its answer (queue wait included), of successful launches.",
        Kind::Histogram,
    );
    let empty = BTreeMap::new();
    for t in &templates {
        let counts = launch.launches.get(*t).unwrap_or(&empty);
        for (result, n) in counts_with_zeros(LAUNCH_RESULTS, counts) {
            launches.push(
                vec![("service", (*t).to_string()), ("result", result)],
                Num::Int(n),
            );
        }
        let h = launch.duration.get(*t).cloned().unwrap_or_default();
        duration.histogram(&vec![("service", (*t).to_string())], &h);
    }
    let mut queue_wait = Family::new(
        "bulkhead_launch_queue_wait_seconds",
        "Seconds launches waited in the admission queue.",
        Kind::Histogram,
    );
    queue_wait.histogram(&Vec::new(), &launch.queue_wait);
    let gauge = |name, help, v: u64| {
        let mut f = Family::new(name, help, Kind::Gauge);
        f.push(Vec::new(), Num::Int(v));
        f
    };
    vec![
        launches,
        duration,
        queue_wait,
        gauge(
            "bulkhead_launch_active",
            "Instance starts for launches in progress.",
            launch.active,
        ),
        gauge(
            "bulkhead_launch_queued",
            "Launches waiting for a slot.",
            launch.queued,
        ),
        gauge(
            "bulkhead_launch_max_concurrent",
            "Instance starts allowed at once (supervisor.launch.max_concurrent).",
            u64::from(launch.max_concurrent),
        ),
        gauge(
            "bulkhead_launch_max_queue",
            "Launches allowed to wait (supervisor.launch.max_queue).",
            u64::from(launch.max_queue),
        ),
    ]
}

#[cfg(test)]
mod tests;
