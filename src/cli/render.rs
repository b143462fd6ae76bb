//! The daemon's replies as text for a terminal (pure: a reply in, a string
//! out). `bulkhead status` is one row per instance, columns as wide as their
//! widest cell:
//!
//! ```text
//! SERVICE  STATE              PID  UPTIME  RESTARTS  VIOL  CPU    MEMORY       PIDS    LAST
//! web/0    running (healthy)  812  2h05m   0         0     3m04s  12.3M / 64M  3 / 64  -
//! web/1    backoff            -    -       4         2     -      -            -       restart in 3.2s (exited with status 1)
//! worker   failed             -    -       5         0     -      -            -       circuit open, retry in 25s (killed by SIGKILL)
//! ```
//! A limit that is not set is left out (`12.3M` rather than `12.3M / max`);
//! `-` is a value the daemon does not know (nothing runs, or the cgroup
//! file could not be read); `VIOL` counts the watch rules that fired.
//! `bulkhead status SERVICE` shows every field of each instance instead,
//! with the restart reasons and the latest violations ([`service_detail`]).
//! `bulkhead events` prints one [`event_line`] per event.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::api::proto::{
    DaemonInfo, EventRecord, GroupStatus, InstanceStatus, LaunchReply, ListReply, ServiceStatus,
    StatusReply,
};

/// The line above the table: `bulkhead 0.1.0 (pid 812), up 3h05m, config /etc/bulkhead/bulkhead.yaml`.
pub fn daemon_line(d: &DaemonInfo) -> String {
    format!(
        "bulkhead {} (pid {}), up {}, config {}",
        d.version,
        d.pid,
        duration(d.uptime_secs),
        d.config.display()
    )
}

/// The table of every instance of every service in `reply`, in the
/// daemon's order, ending with a newline.
pub fn status_table(reply: &StatusReply) -> String {
    if reply.services.is_empty() {
        return "no services\n".to_string();
    }
    let mut rows: Vec<[String; 10]> = vec![
        [
            "SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "VIOL", "CPU", "MEMORY", "PIDS",
            "LAST",
        ]
        .map(String::from),
    ];
    for s in &reply.services {
        if s.instances.is_empty() {
            let mut row = std::array::from_fn(|_| "-".to_string());
            row[0].clone_from(&s.name);
            row[9] = match &s.isolation {
                Some(level) => format!("template ({level}): no instances; `bulkhead launch`"),
                None => "no instances".to_string(),
            };
            rows.push(row);
        }
        for i in &s.instances {
            rows.push([
                label(s, i),
                state(i),
                opt(i.pid),
                i.uptime_secs.map_or_else(dash, duration),
                i.restarts.to_string(),
                i.violation_counts
                    .values()
                    .fold(0u64, |a, n| a.saturating_add(*n))
                    .to_string(),
                i.cpu_usage_usec.map_or_else(dash, cpu_time),
                usage(i.memory_current, i.memory_max, bytes),
                usage(i.pids_current, i.pids_max, |n| n.to_string()),
                last(i),
            ]);
        }
    }
    let mut out = table(&rows);
    if !reply.groups.is_empty() {
        out.push('\n');
        out += &group_table(&reply.groups);
    }
    out
}

/// Each group's usage against its own limits (the sum of its services):
///
/// ```text
/// GROUP    SERVICES      CPU    MEMORY       PIDS      OOM KILLS
/// tenants  api, sandbox  4.1s   96M / 128M   12 / 100  1
/// ```
pub fn group_table(groups: &[GroupStatus]) -> String {
    let mut rows: Vec<[String; 6]> =
        vec![["GROUP", "SERVICES", "CPU", "MEMORY", "PIDS", "OOM KILLS"].map(String::from)];
    for g in groups {
        rows.push([
            g.name.clone(),
            if g.services.is_empty() {
                "-".to_string()
            } else {
                g.services.join(", ")
            },
            g.cpu_usage_usec.map_or_else(dash, cpu_time),
            usage(g.memory_current, g.memory_max, bytes),
            usage(g.pids_current, g.pids_max, |n| n.to_string()),
            opt(g.oom_kills),
        ]);
    }
    table(&rows)
}

/// `bulkhead launch`: `sandbox/ns:tenant-1 created: pid 4242, port 20001, ready in 0.412s`.
pub fn launch_line(r: &LaunchReply) -> String {
    let mut s = format!(
        "{}/{} {}: pid {}, port {}, {} in {:.3}s",
        r.service,
        r.instance,
        if r.created { "created" } else { "reused" },
        opt(r.pid),
        r.port,
        r.state,
        r.duration_secs
    );
    if r.queued_secs >= 0.001 {
        let _ = write!(s, " ({:.3}s in the admission queue)", r.queued_secs);
    }
    s
}

/// `bulkhead list`: template instances.
///
/// ```text
/// SERVICE  INSTANCE     STATE              PID   PORT   UPTIME  LAUNCHES  IDLE
/// sandbox  ns:tenant-1  running (healthy)  4242  20001  5m02s   12        31s / 10m00s
/// ```
pub fn list_table(reply: &ListReply) -> String {
    if reply.instances.is_empty() {
        return "no template instances\n".to_string();
    }
    let mut rows: Vec<[String; 8]> = vec![
        [
            "SERVICE", "INSTANCE", "STATE", "PID", "PORT", "UPTIME", "LAUNCHES", "IDLE",
        ]
        .map(String::from),
    ];
    for i in &reply.instances {
        let state = state_label(&i.state, i.healthy);
        let idle = match i.idle_timeout_secs {
            Some(t) => format!("{} / {}", duration(i.idle_secs), duration(t)),
            None => duration(i.idle_secs),
        };
        rows.push([
            i.service.clone(),
            i.instance.clone(),
            state,
            opt(i.pid),
            i.port.to_string(),
            i.uptime_secs.map_or_else(dash, duration),
            i.launches.to_string(),
            idle,
        ]);
    }
    table(&rows)
}

/// `bulkhead health`: each instance's health check and its verdict.
///
/// ```text
/// SERVICE  HEALTH     STATE    CHECK                                 PASSED  FAILED  LAST
/// web/0    healthy    running  http 127.0.0.1:20000/ every 5s        120     0       -
/// db       no check   running  -                                     -       -       -
/// ```
pub fn health_table(reply: &StatusReply) -> String {
    let mut rows: Vec<[String; 7]> = vec![
        [
            "SERVICE", "HEALTH", "STATE", "CHECK", "PASSED", "FAILED", "LAST",
        ]
        .map(String::from),
    ];
    for s in &reply.services {
        for i in &s.instances {
            let checked = i.health_check.is_some();
            rows.push([
                label(s, i),
                health_word(i).to_string(),
                i.state.clone(),
                i.health_check.clone().unwrap_or_else(dash),
                if checked {
                    i.probes_passed.to_string()
                } else {
                    dash()
                },
                if checked {
                    i.probes_failed.to_string()
                } else {
                    dash()
                },
                i.last_event
                    .as_ref()
                    .filter(|e| e.contains("HEALTH_CHECK_FAILED"))
                    .cloned()
                    .unwrap_or_else(dash),
            ]);
        }
    }
    if rows.len() == 1 {
        return "no instances\n".to_string();
    }
    table(&rows)
}

/// `healthy`, `unhealthy`, `starting` (checked, no verdict yet), `down`
/// (checked, not running), `no check`.
pub fn health_word(i: &InstanceStatus) -> &'static str {
    match (i.health_check.is_some(), i.state.as_str(), i.healthy) {
        (false, _, _) => "no check",
        (true, "running", Some(true)) => "healthy",
        (true, "running", Some(false)) => "unhealthy",
        (true, "running" | "starting", None) => "starting",
        (true, _, _) => "down",
    }
}

/// Every field of every instance of one service, for `bulkhead status
/// SERVICE`:
///
/// ```text
/// web: group frontend, autostart, 2 instances
///
/// instance 0: running (healthy)
///   pid           812
///   uptime        2h05m
///   restarts      3 (oom_kill 2, unhealthy 1); last: oom_kill
///   ...
///   violations    oom 2, memory_pressure 1
///     2026-11-23T10:00:00.123Z  oom              memory.events oom_kill 1 (+1)            restart
///     2026-11-23T10:02:41.500Z  memory_pressure  memory.pressure some avg10=34.20 for 3s  throttle: memory.high 64M -> 57.6M
/// ```
pub fn service_detail(s: &ServiceStatus) -> String {
    let mut head = vec![];
    if let Some(g) = &s.group {
        head.push(format!("group {g}"));
    }
    head.push(
        if s.autostart {
            "autostart"
        } else {
            "manual start"
        }
        .to_string(),
    );
    let n = s.instances.len();
    head.push(format!("{n} instance{}", if n == 1 { "" } else { "s" }));
    let mut out = format!("{}: {}\n", s.name, head.join(", "));
    for i in &s.instances {
        let mut fields: Vec<(&str, String)> = vec![
            ("pid", opt(i.pid)),
            ("uptime", i.uptime_secs.map_or_else(dash, duration)),
            ("restarts", restarts(i)),
            (
                "healthy",
                match i.healthy {
                    Some(true) => "yes".to_string(),
                    Some(false) => "no".to_string(),
                    None => "- (no health check)".to_string(),
                },
            ),
            ("cpu", i.cpu_usage_usec.map_or_else(dash, cpu_time)),
            ("memory", limited(i.memory_current, i.memory_max, bytes)),
        ];
        if let Some(high) = i.memory_high_throttled {
            fields.push((
                "memory.high",
                format!("lowered to {} by throttle", bytes(high)),
            ));
        }
        fields.extend([
            (
                "pids",
                limited(i.pids_current, i.pids_max, |n| n.to_string()),
            ),
            ("cgroup", i.cgroup.display().to_string()),
            (
                "adopted",
                if i.adopted {
                    "yes (taken over from an earlier daemon)".to_string()
                } else {
                    "no".to_string()
                },
            ),
            ("last exit", i.last_exit.clone().unwrap_or_else(dash)),
            ("last event", i.last_event.clone().unwrap_or_else(dash)),
            (
                "next attempt",
                i.next_attempt_secs
                    .map_or_else(dash, |s| format!("in {}", countdown(s))),
            ),
            ("violations", by_count(&i.violation_counts)),
        ]);
        let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let _ = writeln!(out, "\ninstance {}: {}", i.instance, state(i));
        for (k, v) in &fields {
            let _ = writeln!(out, "  {k:<width$}  {v}");
        }
        let latest: Vec<[String; 4]> = i
            .violations
            .iter()
            .map(|v| {
                [
                    v.time.clone(),
                    v.rule.clone(),
                    v.observed.clone(),
                    v.action.clone(),
                ]
            })
            .collect();
        for line in table(&latest).lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// `3 (oom_kill 2, unhealthy 1); last: oom_kill`: the count, by reason,
/// and the latest reason.
fn restarts(i: &InstanceStatus) -> String {
    let mut text = i.restarts.to_string();
    if !i.restart_reasons.is_empty() {
        let _ = write!(text, " ({})", by_count(&i.restart_reasons));
    }
    if let Some(r) = &i.last_restart_reason {
        let _ = write!(text, "; last: {r}");
    }
    text
}

/// `oom_kill 2, unhealthy 1`: the most frequent first, then by name;
/// `none` when empty.
fn by_count<N: Copy + Ord + std::fmt::Display>(counts: &BTreeMap<String, N>) -> String {
    if counts.is_empty() {
        return "none".to_string();
    }
    let mut sorted: Vec<(&String, &N)> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    sorted
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One event for `bulkhead events`: the time, `service/instance`, the
/// kind, its structured parts (the new state, the rule and its action, the
/// restart reason, an error code) and the message:
///
/// ```text
/// 2026-11-23T10:00:00.123Z leaker/0 violation oom -> restart: memory.events oom_kill 1 (+1)
/// 2026-11-23T10:00:00.125Z leaker/0 state backoff (reason oom_kill): OOM-killed: killed by SIGKILL after 3s; restarting in 1s
/// 2026-11-23T10:05:00.000Z web/0 state failed (reason exited(1)) [CIRCUIT_OPEN]: 5 failures in 60s; retry in 30s
/// ```
/// The observed figures of a violation follow the message in parentheses
/// unless the message already holds them.
///
/// The message is copied as it is (it can hold a probe's output): the CLI
/// escapes control characters when it prints to a terminal
/// ([`super::escape`]).
pub fn event_line(e: &EventRecord) -> String {
    let who = match (e.service.as_str(), e.instance.as_str()) {
        ("", _) => "-".to_string(),
        (s, "") => s.to_string(),
        (s, i) => format!("{s}/{i}"),
    };
    let mut line = format!("{} {who} {}", e.time, e.kind);
    if e.kind == "state"
        && let Some(state) = &e.state
    {
        let _ = write!(line, " {state}");
    }
    match (&e.rule, &e.action) {
        (Some(r), Some(a)) => {
            let _ = write!(line, " {r} -> {a}");
        }
        (Some(r), None) => {
            let _ = write!(line, " {r}");
        }
        (None, Some(a)) => {
            let _ = write!(line, " -> {a}");
        }
        (None, None) => {}
    }
    if let Some(r) = &e.reason {
        let _ = write!(line, " (reason {r})");
    }
    if let Some(c) = &e.code {
        let _ = write!(line, " [{c}]");
    }
    let observed = e
        .observed
        .as_deref()
        .filter(|o| !o.is_empty() && !e.message.contains(o));
    match (e.message.as_str(), observed) {
        ("", None) => {}
        ("", Some(o)) => {
            let _ = write!(line, ": {o}");
        }
        (m, None) => {
            let _ = write!(line, ": {m}");
        }
        (m, Some(o)) => {
            let _ = write!(line, ": {m} ({o})");
        }
    }
    line
}

pub(crate) fn dash() -> String {
    "-".to_string()
}

fn opt(v: Option<impl ToString>) -> String {
    v.map_or_else(dash, |v| v.to_string())
}

/// `web` for a single instance, `web/1` among several; a template's
/// instances always with their key (`sandbox/ns:tenant-1`).
fn label(s: &ServiceStatus, i: &InstanceStatus) -> String {
    if s.instances.len() > 1 || s.isolation.is_some() {
        format!("{}/{}", s.name, i.instance)
    } else {
        s.name.clone()
    }
}

/// The state, with the health check's verdict while it runs.
fn state(i: &InstanceStatus) -> String {
    state_label(&i.state, i.healthy)
}

/// `running (healthy)`, `running (unhealthy)`, or the state as it is.
pub(crate) fn state_label(state: &str, healthy: Option<bool>) -> String {
    match (state, healthy) {
        ("running", Some(true)) => "running (healthy)".to_string(),
        ("running", Some(false)) => "running (unhealthy)".to_string(),
        (s, _) => s.to_string(),
    }
}

/// `12.3M / 64M`; `12.3M` without a limit; `- / 64M` when the usage is unknown.
pub(crate) fn usage(current: Option<u64>, max: Option<u64>, fmt: impl Fn(u64) -> String) -> String {
    match (current, max) {
        (Some(c), Some(m)) => format!("{} / {}", fmt(c), fmt(m)),
        (Some(c), None) => fmt(c),
        (None, Some(m)) => format!("- / {}", fmt(m)),
        (None, None) => dash(),
    }
}

/// The detail view's spelled-out form: `12.3M (max 64M)`, `12.3M (no limit)`.
fn limited(current: Option<u64>, max: Option<u64>, fmt: impl Fn(u64) -> String) -> String {
    let c = current.map_or_else(dash, &fmt);
    match max {
        Some(m) => format!("{c} (max {})", fmt(m)),
        None => format!("{c} (no limit)"),
    }
}

/// What happened last, or what happens next: a pending restart or an open
/// circuit with its countdown and the exit that caused it.
pub(crate) fn last(i: &InstanceStatus) -> String {
    let why = i
        .last_exit
        .as_ref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    match (i.state.as_str(), i.next_attempt_secs) {
        ("backoff", Some(s)) => format!("restart in {}{why}", countdown(s)),
        ("failed", Some(s)) => format!("circuit open, retry in {}{why}", countdown(s)),
        ("failed", None) => format!("circuit open{why}"),
        _ => i
            .last_event
            .clone()
            .or_else(|| i.last_exit.clone())
            .unwrap_or_else(dash),
    }
}

/// Left-aligned columns two spaces apart, without trailing blanks.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Whole seconds of a float from the wire; negative or NaN is 0.
fn whole_secs(secs: f64) -> u64 {
    Duration::try_from_secs_f64(secs).map_or(0, |d| d.as_secs())
}

/// A duration in its two largest units: `45s`, `3m12s`, `2h05m`, `3d4h`.
pub fn duration(secs: f64) -> String {
    human(whole_secs(secs))
}

fn human(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{}h", s / 86_400, s / 3600 % 24),
    }
}

/// CPU time from `usage_usec`: tenths of a second below a minute (`1.2s`),
/// then as [`duration`] (`3m04s`).
pub fn cpu_time(usec: u64) -> String {
    let tenths = usec / 100_000;
    if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        human(usec / 1_000_000)
    }
}

/// Time until something: `3.2s` below ten seconds, then as [`duration`].
pub fn countdown(secs: f64) -> String {
    if secs < 10.0 {
        format!("{:.1}s", secs.max(0.0))
    } else {
        duration(secs)
    }
}

/// A size with a binary suffix, as cgroup limits are written: `512B`,
/// `64M` (exact), `12.3M`, `150K`; one decimal below 100 of a unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    let mut unit = 0;
    let mut div = 1024u64;
    if n < div {
        return format!("{n}B");
    }
    while unit + 1 < UNITS.len() && n >= div * 1024 {
        div *= 1024;
        unit += 1;
    }
    let suffix = UNITS[unit];
    if n.is_multiple_of(div) {
        return format!("{}{suffix}", n / div);
    }
    // Display only: the precision lost by the float is far below a decimal.
    #[allow(clippy::cast_precision_loss)]
    let v = n as f64 / div as f64;
    if v < 100.0 {
        format!("{v:.1}{suffix}")
    } else {
        format!("{v:.0}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::api::proto::{ListedInstance, ViolationStatus};

    const M: u64 = 1 << 20;

    fn running(instance: &str) -> InstanceStatus {
        InstanceStatus {
            instance: instance.into(),
            state: "running".into(),
            pid: Some(812),
            uptime_secs: Some(7512.4),
            restarts: 0,
            healthy: Some(true),
            adopted: false,
            cgroup: PathBuf::from(format!("/sys/fs/cgroup/bulkhead/web/{instance}")),
            cpu_usage_usec: Some(184_300_000),
            memory_current: Some(12 * M + 300 * 1024),
            memory_max: Some(64 * M),
            pids_current: Some(3),
            pids_max: Some(64),
            last_exit: None,
            last_event: None,
            next_attempt_secs: None,
            ..InstanceStatus::default()
        }
    }

    fn stopped(instance: &str, state: &str) -> InstanceStatus {
        InstanceStatus {
            instance: instance.into(),
            state: state.into(),
            cgroup: PathBuf::from("/sys/fs/cgroup/bulkhead/x"),
            ..InstanceStatus::default()
        }
    }

    fn fixture() -> StatusReply {
        let mut web1 = stopped("1", "backoff");
        web1.restarts = 4;
        web1.last_exit = Some("exited with status 1".into());
        web1.next_attempt_secs = Some(3.24);
        let mut worker = stopped("0", "failed");
        worker.restarts = 5;
        worker.last_exit = Some("killed by SIGKILL".into());
        worker.next_attempt_secs = Some(25.7);
        let mut cron = running("0");
        cron.healthy = None;
        cron.pid = Some(1204);
        cron.uptime_secs = Some(45.9);
        cron.cpu_usage_usec = Some(1_234_567);
        cron.memory_current = Some(900 * 1024);
        cron.memory_max = None;
        cron.pids_current = Some(1);
        cron.pids_max = None;
        cron.last_event = Some("2026-11-23T11:05:27Z memory.high reached, throttled".into());
        cron.violation_counts = [("memory_pressure".into(), 2), ("pids_max".into(), 1)].into();
        StatusReply {
            daemon: DaemonInfo {
                pid: 77,
                version: "0.1.0".into(),
                config: "/etc/bulkhead/bulkhead.yaml".into(),
                cgroup_root: "/sys/fs/cgroup/bulkhead".into(),
                uptime_secs: 273_600.0,
            },
            services: vec![
                ServiceStatus {
                    name: "web".into(),
                    group: Some("frontend".into()),
                    autostart: true,
                    isolation: None,
                    instances: vec![running("0"), web1],
                },
                ServiceStatus {
                    name: "worker".into(),
                    group: None,
                    autostart: true,
                    isolation: None,
                    instances: vec![worker],
                },
                ServiceStatus {
                    name: "cron".into(),
                    group: None,
                    autostart: false,
                    isolation: None,
                    instances: vec![cron],
                },
                ServiceStatus {
                    name: "idle".into(),
                    group: None,
                    autostart: false,
                    isolation: None,
                    instances: vec![stopped("0", "stopped")],
                },
            ],
            groups: Vec::new(),
        }
    }

    #[test]
    fn the_status_table_golden() {
        let expected = "\
SERVICE  STATE              PID   UPTIME  RESTARTS  VIOL  CPU    MEMORY       PIDS    LAST
web/0    running (healthy)  812   2h05m   0         0     3m04s  12.3M / 64M  3 / 64  -
web/1    backoff            -     -       4         0     -      -            -       restart in 3.2s (exited with status 1)
worker   failed             -     -       5         0     -      -            -       circuit open, retry in 25s (killed by SIGKILL)
cron     running            1204  45s     0         3     1.2s   900K         1       2026-11-23T11:05:27Z memory.high reached, throttled
idle     stopped            -     -       0         0     -      -            -       -
";
        assert_eq!(status_table(&fixture()), expected);
    }

    #[test]
    fn templates_groups_list_health_and_launch_golden() {
        let mut sb = running("ns:tenant-1");
        sb.health_check = Some("tcp 127.0.0.1:20001 every 5s".into());
        sb.probes_passed = 40;
        sb.probes_failed = 1;
        let mut starting = stopped("session:s1", "starting");
        starting.health_check = Some("tcp 127.0.0.1:20002 every 5s".into());
        let reply = StatusReply {
            services: vec![
                ServiceStatus {
                    name: "sandbox".into(),
                    isolation: Some("namespace".into()),
                    instances: vec![sb],
                    ..ServiceStatus::default()
                },
                ServiceStatus {
                    name: "per-session".into(),
                    isolation: Some("session".into()),
                    instances: vec![starting],
                    ..ServiceStatus::default()
                },
                ServiceStatus {
                    name: "empty".into(),
                    isolation: Some("none".into()),
                    ..ServiceStatus::default()
                },
                ServiceStatus {
                    name: "db".into(),
                    instances: vec![stopped("0", "running")],
                    ..ServiceStatus::default()
                },
            ],
            groups: vec![GroupStatus {
                name: "tenants".into(),
                cgroup: "/sys/fs/cgroup/bulkhead/tenants".into(),
                services: vec!["sandbox".into()],
                cpu_usage_usec: Some(4_100_000),
                memory_current: Some(96 * M),
                memory_max: Some(128 * M),
                pids_current: Some(12),
                pids_max: Some(100),
                oom_kills: Some(1),
            }],
            ..StatusReply::default()
        };
        let expected = "\
SERVICE                 STATE              PID  UPTIME  RESTARTS  VIOL  CPU    MEMORY       PIDS    LAST
sandbox/ns:tenant-1     running (healthy)  812  2h05m   0         0     3m04s  12.3M / 64M  3 / 64  -
per-session/session:s1  starting           -    -       0         0     -      -            -       -
empty                   -                  -    -       -         -     -      -            -       template (none): no instances; `bulkhead launch`
db                      running            -    -       0         0     -      -            -       -

GROUP    SERVICES  CPU   MEMORY      PIDS      OOM KILLS
tenants  sandbox   4.1s  96M / 128M  12 / 100  1
";
        assert_eq!(status_table(&reply), expected);
        let expected = "\
SERVICE                 HEALTH    STATE     CHECK                         PASSED  FAILED  LAST
sandbox/ns:tenant-1     healthy   running   tcp 127.0.0.1:20001 every 5s  40      1       -
per-session/session:s1  starting  starting  tcp 127.0.0.1:20002 every 5s  0       0       -
db                      no check  running   -                             -       -       -
";
        assert_eq!(health_table(&reply), expected);

        let list = ListReply {
            instances: vec![ListedInstance {
                service: "sandbox".into(),
                isolation: "namespace".into(),
                instance: "ns:tenant-1".into(),
                namespace: Some("tenant-1".into()),
                session: None,
                state: "running".into(),
                pid: Some(4242),
                port: 20001,
                healthy: Some(true),
                uptime_secs: Some(302.0),
                launches: 12,
                idle_secs: 31.0,
                idle_timeout_secs: Some(600.0),
                cgroup: "/sys/fs/cgroup/bulkhead/sandbox/ns:tenant-1".into(),
            }],
        };
        let expected = "\
SERVICE  INSTANCE     STATE              PID   PORT   UPTIME  LAUNCHES  IDLE
sandbox  ns:tenant-1  running (healthy)  4242  20001  5m02s   12        31s / 10m00s
";
        assert_eq!(list_table(&list), expected);
        assert_eq!(list_table(&ListReply::default()), "no template instances\n");

        let mut l = LaunchReply {
            service: "sandbox".into(),
            instance: "ns:tenant-1".into(),
            pid: Some(4242),
            state: "running".into(),
            created: true,
            port: 20001,
            cgroup: "/x".into(),
            duration_secs: 0.4123,
            queued_secs: 0.0,
        };
        assert_eq!(
            launch_line(&l),
            "sandbox/ns:tenant-1 created: pid 4242, port 20001, running in 0.412s"
        );
        l.created = false;
        l.queued_secs = 1.5;
        assert_eq!(
            launch_line(&l),
            "sandbox/ns:tenant-1 reused: pid 4242, port 20001, running in 0.412s (1.500s in the admission queue)"
        );
    }

    #[test]
    fn the_daemon_line() {
        assert_eq!(
            daemon_line(&fixture().daemon),
            "bulkhead 0.1.0 (pid 77), up 3d4h, config /etc/bulkhead/bulkhead.yaml"
        );
    }

    #[test]
    fn no_services_and_no_instances_say_so() {
        assert_eq!(status_table(&StatusReply::default()), "no services\n");
        let reply = StatusReply {
            services: vec![ServiceStatus {
                name: "web".into(),
                ..ServiceStatus::default()
            }],
            ..StatusReply::default()
        };
        assert_eq!(
            status_table(&reply),
            "\
SERVICE  STATE  PID  UPTIME  RESTARTS  VIOL  CPU  MEMORY  PIDS  LAST
web      -      -    -       -         -     -    -       -     no instances
"
        );
    }

    #[test]
    fn unknown_usage_under_a_limit_and_an_open_circuit_without_a_countdown() {
        let mut i = stopped("0", "failed");
        i.memory_max = Some(64 * M);
        i.pids_max = Some(10);
        let reply = StatusReply {
            services: vec![ServiceStatus {
                name: "db".into(),
                instances: vec![i],
                ..ServiceStatus::default()
            }],
            ..StatusReply::default()
        };
        assert_eq!(
            status_table(&reply),
            "\
SERVICE  STATE   PID  UPTIME  RESTARTS  VIOL  CPU  MEMORY   PIDS    LAST
db       failed  -    -       0         0     -    - / 64M  - / 10  circuit open
"
        );
    }

    #[test]
    fn the_service_detail_golden() {
        let reply = fixture();
        let expected = "\
web: group frontend, autostart, 2 instances

instance 0: running (healthy)
  pid           812
  uptime        2h05m
  restarts      0
  healthy       yes
  cpu           3m04s
  memory        12.3M (max 64M)
  pids          3 (max 64)
  cgroup        /sys/fs/cgroup/bulkhead/web/0
  adopted       no
  last exit     -
  last event    -
  next attempt  -
  violations    none

instance 1: backoff
  pid           -
  uptime        -
  restarts      4
  healthy       - (no health check)
  cpu           -
  memory        - (no limit)
  pids          - (no limit)
  cgroup        /sys/fs/cgroup/bulkhead/x
  adopted       no
  last exit     exited with status 1
  last event    -
  next attempt  in 3.2s
  violations    none
";
        assert_eq!(service_detail(&reply.services[0]), expected);
        let mut cron = reply.services[2].clone();
        cron.instances[0].adopted = true;
        let text = service_detail(&cron);
        assert!(text.starts_with("cron: manual start, 1 instance\n\ninstance 0: running\n"));
        assert!(text.contains("  adopted       yes (taken over from an earlier daemon)\n"));
        assert!(text.contains("  memory        900K (no limit)\n"));
    }

    /// An instance the monitor has dealt with: OOM kills, a health restart,
    /// a throttle.
    fn troubled() -> ServiceStatus {
        let mut i = running("0");
        i.healthy = None;
        i.restarts = 3;
        i.last_restart_reason = Some("oom_kill".into());
        i.restart_reasons = [("unhealthy".into(), 1), ("oom_kill".into(), 2)].into();
        i.violation_counts = [
            ("memory_pressure".into(), 1),
            ("oom".into(), 2),
            ("cpu_throttled".into(), 1),
        ]
        .into();
        i.memory_high_throttled = Some(57 * M + 600 * 1024);
        let v = |time: &str, rule: &str, observed: &str, action: &str| ViolationStatus {
            time: time.into(),
            rule: rule.into(),
            observed: observed.into(),
            action: action.into(),
        };
        i.violations = vec![
            v(
                "2026-11-23T10:00:00.123Z",
                "oom",
                "memory.events oom_kill 1 (+1)",
                "restart",
            ),
            v(
                "2026-11-23T10:02:41.500Z",
                "memory_pressure",
                "memory.pressure some avg10=34.20 for 3s",
                "throttle: memory.high 64M -> 57.6M",
            ),
        ];
        ServiceStatus {
            name: "leaker".into(),
            group: None,
            autostart: true,
            isolation: None,
            instances: vec![i],
        }
    }

    #[test]
    fn the_service_detail_shows_restart_reasons_violations_and_the_throttle() {
        let expected = "\
leaker: autostart, 1 instance

instance 0: running
  pid           812
  uptime        2h05m
  restarts      3 (oom_kill 2, unhealthy 1); last: oom_kill
  healthy       - (no health check)
  cpu           3m04s
  memory        12.3M (max 64M)
  memory.high   lowered to 57.6M by throttle
  pids          3 (max 64)
  cgroup        /sys/fs/cgroup/bulkhead/web/0
  adopted       no
  last exit     -
  last event    -
  next attempt  -
  violations    oom 2, cpu_throttled 1, memory_pressure 1
    2026-11-23T10:00:00.123Z  oom              memory.events oom_kill 1 (+1)            restart
    2026-11-23T10:02:41.500Z  memory_pressure  memory.pressure some avg10=34.20 for 3s  throttle: memory.high 64M -> 57.6M
";
        assert_eq!(service_detail(&troubled()), expected);
    }

    #[test]
    fn restarts_without_reasons_are_the_bare_count() {
        let mut i = running("0");
        i.restarts = 2;
        assert_eq!(restarts(&i), "2");
        i.last_restart_reason = Some("manual".into());
        assert_eq!(restarts(&i), "2; last: manual");
        i.restart_reasons = [("manual".into(), 2)].into();
        assert_eq!(restarts(&i), "2 (manual 2); last: manual");
    }

    #[test]
    fn the_table_counts_violations_in_viol() {
        let reply = StatusReply {
            services: vec![troubled()],
            ..StatusReply::default()
        };
        let table = status_table(&reply);
        let mut lines = table.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("SERVICE  STATE    PID  UPTIME  RESTARTS  VIOL  CPU"),
            "{table}"
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("leaker   running  812  2h05m   3         4     3m04s"),
            "{table}"
        );
    }

    fn violation() -> EventRecord {
        EventRecord {
            seq: 7,
            time: "2026-11-23T10:00:00.123Z".into(),
            service: "leaker".into(),
            instance: "0".into(),
            kind: "violation".into(),
            state: Some("stopping".into()),
            rule: Some("oom".into()),
            action: Some("restart".into()),
            observed: Some("memory.events oom_kill 1 (+1)".into()),
            message: "memory.events oom_kill 1 (+1)".into(),
            ..EventRecord::default()
        }
    }

    #[test]
    fn a_violation_event_line() {
        assert_eq!(
            event_line(&violation()),
            "2026-11-23T10:00:00.123Z leaker/0 violation oom -> restart: memory.events oom_kill 1 (+1)"
        );
        // Figures the message does not hold follow it.
        let mut e = violation();
        e.rule = Some("memory_pressure".into());
        e.action = Some("throttle".into());
        e.observed = Some("memory.pressure some avg10=34.20 for 3s".into());
        e.message = "memory.high 64M -> 57.6M".into();
        assert_eq!(
            event_line(&e),
            "2026-11-23T10:00:00.123Z leaker/0 violation memory_pressure -> throttle: \
             memory.high 64M -> 57.6M (memory.pressure some avg10=34.20 for 3s)"
        );
        e.message = String::new();
        assert!(
            event_line(&e).ends_with("throttle: memory.pressure some avg10=34.20 for 3s"),
            "{}",
            event_line(&e)
        );
    }

    #[test]
    fn lifecycle_and_health_event_lines() {
        let state = EventRecord {
            seq: 8,
            time: "2026-11-23T10:00:00.125Z".into(),
            service: "web".into(),
            instance: "0".into(),
            kind: "state".into(),
            state: Some("backoff".into()),
            reason: Some("oom_kill".into()),
            message: "OOM-killed: killed by SIGKILL after 3s; restarting in 1s".into(),
            ..EventRecord::default()
        };
        assert_eq!(
            event_line(&state),
            "2026-11-23T10:00:00.125Z web/0 state backoff (reason oom_kill): \
             OOM-killed: killed by SIGKILL after 3s; restarting in 1s"
        );
        let circuit = EventRecord {
            state: Some("failed".into()),
            reason: Some("exited(1)".into()),
            code: Some("CIRCUIT_OPEN".into()),
            message: "5 failures in 60s; retry in 30s".into(),
            ..state.clone()
        };
        assert_eq!(
            event_line(&circuit),
            "2026-11-23T10:00:00.125Z web/0 state failed (reason exited(1)) [CIRCUIT_OPEN]: \
             5 failures in 60s; retry in 30s"
        );
        let running = EventRecord {
            state: Some("running".into()),
            reason: None,
            message: String::new(),
            ..state.clone()
        };
        assert_eq!(
            event_line(&running),
            "2026-11-23T10:00:00.125Z web/0 state running"
        );
        // The state is the kind's own only for `state` events.
        let health = EventRecord {
            kind: "health".into(),
            state: Some("running".into()),
            reason: None,
            message: "unhealthy: GET http://127.0.0.1:8080/health -> 500 (3 in a row)".into(),
            ..state
        };
        assert_eq!(
            event_line(&health),
            "2026-11-23T10:00:00.125Z web/0 health: unhealthy: GET http://127.0.0.1:8080/health -> 500 (3 in a row)"
        );
    }

    #[test]
    fn durations_keep_their_two_largest_units() {
        let cases = [
            (0.0, "0s"),
            (0.99, "0s"),
            (45.0, "45s"),
            (59.99, "59s"),
            (60.0, "1m00s"),
            (192.0, "3m12s"),
            (3599.0, "59m59s"),
            (3600.0, "1h00m"),
            (7500.0, "2h05m"),
            (86_399.0, "23h59m"),
            (86_400.0, "1d0h"),
            (273_600.0, "3d4h"),
            (-5.0, "0s"),
            (f64::NAN, "0s"),
            (f64::INFINITY, "0s"),
        ];
        for (secs, text) in cases {
            assert_eq!(duration(secs), text, "{secs}");
        }
    }

    #[test]
    fn cpu_time_has_tenths_below_a_minute() {
        assert_eq!(cpu_time(0), "0.0s");
        assert_eq!(cpu_time(99_999), "0.0s");
        assert_eq!(cpu_time(1_250_000), "1.2s");
        assert_eq!(cpu_time(59_999_999), "59.9s");
        assert_eq!(cpu_time(60_000_000), "1m00s");
        assert_eq!(cpu_time(184_000_000), "3m04s");
        assert_eq!(cpu_time(90_000 * 1_000_000), "1d1h");
    }

    #[test]
    fn countdowns_have_tenths_below_ten_seconds() {
        assert_eq!(countdown(3.24), "3.2s");
        assert_eq!(countdown(0.0), "0.0s");
        assert_eq!(countdown(-1.0), "0.0s");
        assert_eq!(countdown(9.94), "9.9s");
        assert_eq!(countdown(25.7), "25s");
        assert_eq!(countdown(125.0), "2m05s");
    }

    #[test]
    fn bytes_use_binary_suffixes() {
        let cases = [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1K"),
            (1536, "1.5K"),
            (150 * 1024 + 100, "150K"),
            (64 * M, "64M"),
            (12 * M + 300 * 1024, "12.3M"),
            (M - 1, "1024K"),
            (3 << 30, "3G"),
            ((5 << 30) + (1 << 29), "5.5G"),
            (2 << 40, "2T"),
            (4096 << 50, "4096P"),
            (u64::MAX, "16384P"),
        ];
        for (n, text) in cases {
            assert_eq!(bytes(n), text, "{n}");
        }
    }
}
