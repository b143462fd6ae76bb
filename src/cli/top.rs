//! `bulkhead top`: a live view of the groups, services and instances, made
//! from `GET /v1/metrics` snapshots taken an interval apart. The counters in
//! a snapshot (cpu usage, io bytes, throttled periods) become rates over the
//! interval; gauges (memory, pids, PSI avg10) are shown as read:
//!
//! ```text
//! bulkhead 0.1.0 (pid 42), up 1h05m; sorted by cpu, every 2s
//! instances: 4 (2 running, 1 backoff, 1 failed; 1 unhealthy), restarts 7, violations 3; launches: 1 active, 0 queued
//!
//! NAME             STATE                CPU%  THR%  MEMORY          PIDS      IO-R/s  IO-W/s  PSI-MEM  PSI-CPU  RESTARTS  VIOL
//! [frontend]       2/3 running          52.0     -  80.0M / 1G      7 / 128       0B    1.5M     0.00    12.50         7     3
//! web/0            running (healthy)    41.5  10.0  14.7M / 64M     3 / 32        0B    1.5M     0.00     9.10         0     0
//! web/1            running (unhealthy)  10.5     -  65.3M / 64M     4 / 32        0B      0B     2.40     3.40         2     3
//! worker/0         backoff                 -     -  -               -              -       -        -        -         5     0
//! ```
//! `CPU%` is cpu.stat usage over the interval (100 = one core); `THR%` the
//! share of cpu.max periods in which the cgroup was throttled (`-` without a
//! cpu.max); `MEMORY` and `PIDS` are current / max (the max left out when
//! there is none); `IO` is io.stat bytes per second summed over devices;
//! `PSI` the `some avg10` of memory.pressure and cpu.pressure. A rate needs
//! two snapshots, so the first frame shows `-` for each, as it does for a
//! figure the daemon could not read. Groups come first (`[name]`: the group's
//! own cgroup, whose figures include its members'), then one line per
//! instance (`service/instance`: `web/0`, `sandbox/ns:tenant-1`).
//!
//! [`rows`] and [`render`] are pure; [`term`] runs the view: full screen on
//! a terminal, plain frames otherwise.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::render::{bytes, dash, duration, state_label, usage};
use crate::api::proto::{CgroupFigures, InstanceMetrics, MetricsReply, ServiceMetrics};

pub mod term;

/// What the rows are ordered by: the largest first (`Name`: alphabetical).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Cpu,
    Memory,
    Pids,
    Io,
    Restarts,
    Name,
}

impl Sort {
    /// The names `--sort` takes; the interactive view's keys are their initials.
    pub const NAMES: [&'static str; 6] = ["cpu", "memory", "pids", "io", "restarts", "name"];

    /// The sort a key of the interactive view selects: its initial.
    pub fn key(k: u8) -> Option<Sort> {
        match k.to_ascii_lowercase() {
            b'c' => Some(Sort::Cpu),
            b'm' => Some(Sort::Memory),
            b'p' => Some(Sort::Pids),
            b'i' => Some(Sort::Io),
            b'r' => Some(Sort::Restarts),
            b'n' => Some(Sort::Name),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Cpu => "cpu",
            Sort::Memory => "memory",
            Sort::Pids => "pids",
            Sort::Io => "io",
            Sort::Restarts => "restarts",
            Sort::Name => "name",
        }
    }
}

impl std::str::FromStr for Sort {
    type Err = String;

    fn from_str(s: &str) -> Result<Sort, String> {
        match s {
            "cpu" => Ok(Sort::Cpu),
            "memory" => Ok(Sort::Memory),
            "pids" => Ok(Sort::Pids),
            "io" => Ok(Sort::Io),
            "restarts" => Ok(Sort::Restarts),
            "name" => Ok(Sort::Name),
            _ => Err(format!("`{s}` is not one of {}", Sort::NAMES.join(", "))),
        }
    }
}

/// One line of the table: a group or an instance (or a service without
/// instances). `None` is shown as `-`: not known, or no rate yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub group: bool,
    /// `[group]`, `service/instance`, or `service` when it has none.
    pub name: String,
    /// `running (unhealthy)`, `backoff`, ...; a group's `2/3 running`.
    pub state: String,
    /// Percent of one core over the interval.
    pub cpu_pct: Option<f64>,
    /// Percent of the interval's cpu.max periods that were throttled.
    pub throttled_pct: Option<f64>,
    pub memory: Option<u64>,
    pub memory_max: Option<u64>,
    pub pids: Option<u64>,
    pub pids_max: Option<u64>,
    /// Bytes per second.
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
    /// `some avg10` of memory.pressure and cpu.pressure (percent).
    pub psi_memory: Option<f64>,
    pub psi_cpu: Option<f64>,
    pub restarts: Option<u64>,
    pub violations: Option<u64>,
}

/// The rows of `cur`, groups first, in the daemon's order. `prev` is the
/// snapshot before it and the wall time between the two; without it (the
/// first frame) rates are `None`. An instance whose pid changed, or whose
/// counters went down (its cgroup was made anew), has no rates this frame.
pub fn rows(prev: Option<(&MetricsReply, Duration)>, cur: &MetricsReply) -> Vec<Row> {
    let mut out = Vec::new();
    for g in &cur.groups {
        let before = prev.and_then(|(p, dt)| {
            p.groups
                .iter()
                .find(|x| x.name == g.name)
                .and_then(|x| x.figures.as_ref())
                .map(|f| (f, dt))
        });
        let members: Vec<&ServiceMetrics> = cur
            .services
            .iter()
            .filter(|s| s.group.as_deref() == Some(g.name.as_str()))
            .collect();
        let instances: Vec<&InstanceMetrics> =
            members.iter().flat_map(|s| s.instances.iter()).collect();
        let running = instances.iter().filter(|i| i.state == "running").count();
        let mut row = measured(g.figures.as_ref(), before);
        row.group = true;
        row.name = format!("[{}]", g.name);
        row.state = format!("{running}/{} running", instances.len());
        row.memory_max = kernel_or_config(g.figures.as_ref(), |f| f.memory_max, g.memory_max);
        row.pids_max = kernel_or_config(g.figures.as_ref(), |f| f.pids_max, g.pids_max);
        row.restarts = Some(instances.iter().map(|i| u64::from(i.restarts)).sum());
        row.violations = Some(members.iter().map(|s| total(&s.violations)).sum());
        out.push(row);
    }
    for s in &cur.services {
        if s.instances.is_empty() {
            out.push(Row {
                name: s.name.clone(),
                state: "no instances".to_string(),
                violations: Some(total(&s.violations)),
                ..Row::default()
            });
        }
        for i in &s.instances {
            let before = prev.and_then(|(p, dt)| {
                p.services
                    .iter()
                    .find(|x| x.name == s.name)
                    .and_then(|x| x.instances.iter().find(|x| x.instance == i.instance))
                    .filter(|x| x.pid == i.pid)
                    .and_then(|x| x.figures.as_ref())
                    .map(|f| (f, dt))
            });
            let mut row = measured(i.figures.as_ref(), before);
            row.name = format!("{}/{}", s.name, i.instance);
            row.state = state_label(&i.state, i.healthy);
            row.memory_max = kernel_or_config(i.figures.as_ref(), |f| f.memory_max, i.memory_max);
            row.pids_max = kernel_or_config(i.figures.as_ref(), |f| f.pids_max, i.pids_max);
            row.restarts = Some(u64::from(i.restarts));
            row.violations = Some(total(&i.violations));
            out.push(row);
        }
    }
    out
}

/// The figures of one cgroup, with the rates since `before` (its figures
/// `dt` earlier).
fn measured(now: Option<&CgroupFigures>, before: Option<(&CgroupFigures, Duration)>) -> Row {
    let Some(f) = now else {
        return Row::default();
    };
    let delta = |get: fn(&CgroupFigures) -> Option<u64>| {
        before.and_then(|(b, dt)| Some((get(f)?.checked_sub(get(b)?)?, dt)))
    };
    let pressure = |resource: &str| f.pressure.get(resource).map(|p| p.some_avg10);
    Row {
        cpu_pct: delta(|f| f.cpu_usage_usec).and_then(|(usec, dt)| cpu_percent(usec, dt)),
        throttled_pct: delta(|f| f.cpu_nr_periods)
            .zip(delta(|f| f.cpu_nr_throttled))
            .and_then(|((periods, _), (throttled, _))| share(throttled, periods)),
        memory: f.memory_current,
        pids: f.pids_current,
        io_read: delta(|f| f.io_read_bytes).and_then(|(n, dt)| per_second(n, dt)),
        io_write: delta(|f| f.io_write_bytes).and_then(|(n, dt)| per_second(n, dt)),
        psi_memory: pressure("memory"),
        psi_cpu: pressure("cpu"),
        ..Row::default()
    }
}

/// The limit as the kernel has it, else as the config says.
fn kernel_or_config(
    f: Option<&CgroupFigures>,
    get: fn(&CgroupFigures) -> Option<u64>,
    config: Option<u64>,
) -> Option<u64> {
    f.and_then(get).or(config)
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().fold(0, |a, n| a.saturating_add(*n))
}

/// `usec` of cpu time over `dt` of wall time, in percent of one core:
/// 1_500_000 usec in 2 s -> 75.0.
fn cpu_percent(usec: u64, dt: Duration) -> Option<f64> {
    let secs = dt.as_secs_f64();
    // Display only: a rate does not need the low bits of a u64.
    #[allow(clippy::cast_precision_loss)]
    (secs > 0.0).then(|| usec as f64 / secs / 10_000.0)
}

/// `part` of `whole` in percent; `None` when `whole` is 0 (no cpu.max, so
/// no enforcement periods).
fn share(part: u64, whole: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// `n` over `dt`, per second: 3 MiB in 2 s -> 1.5 MiB.
fn per_second(n: u64, dt: Duration) -> Option<u64> {
    let micros = dt.as_micros();
    if micros == 0 {
        return None;
    }
    u64::try_from(u128::from(n) * 1_000_000 / micros).ok()
}

/// Sorts `rows` for display: groups first, then by `sort` (largest first,
/// unknown last), then by name.
pub fn sort(rows: &mut [Row], sort: Sort) {
    rows.sort_by(|a, b| {
        b.group
            .cmp(&a.group)
            .then_with(|| largest_first(key(a, sort), key(b, sort)))
            .then_with(|| a.name.cmp(&b.name))
    });
}

#[allow(clippy::cast_precision_loss)]
fn key(r: &Row, sort: Sort) -> Option<f64> {
    match sort {
        Sort::Cpu => r.cpu_pct,
        Sort::Memory => r.memory.map(|n| n as f64),
        Sort::Pids => r.pids.map(|n| n as f64),
        Sort::Io => match (r.io_read, r.io_write) {
            (None, None) => None,
            (rd, wr) => Some(rd.unwrap_or(0) as f64 + wr.unwrap_or(0) as f64),
        },
        Sort::Restarts => r.restarts.map(|n| n as f64),
        Sort::Name => None,
    }
}

fn largest_first(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// How a frame is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub sort: Sort,
    /// Lines are cut at this many characters, and the table at this many
    /// lines (`usize::MAX`: no limit, for plain output).
    pub width: usize,
    pub height: usize,
    /// Between snapshots, shown in the header.
    pub interval: Duration,
    /// Show the keys of the interactive view in the header.
    pub keys: bool,
}

/// A name longer than this is cut (a session key can be long).
const NAME_MAX: usize = 40;

const HEADINGS: [&str; 12] = [
    "NAME", "STATE", "CPU%", "THR%", "MEMORY", "PIDS", "IO-R/s", "IO-W/s", "PSI-MEM", "PSI-CPU",
    "RESTARTS", "VIOL",
];

/// Columns whose cells are right-aligned (numbers).
const RIGHT: [bool; 12] = [
    false, false, true, true, false, false, true, true, true, true, true, true,
];

/// The lines of one frame: the daemon and the totals of `cur`, a blank
/// line, then the table of `rows` sorted by `layout.sort`; each line cut
/// to `layout.width`, and the table cut to fit `layout.height` with a last
/// line that says how many rows did not fit.
pub fn render(cur: &MetricsReply, rows: &[Row], layout: &Layout) -> Vec<String> {
    let mut lines = vec![daemon_line(cur, layout), totals_line(cur), String::new()];
    if rows.is_empty() {
        lines.push("no services".to_string());
    } else {
        let mut sorted = rows.to_vec();
        sort(&mut sorted, layout.sort);
        let mut cells: Vec<[String; 12]> = vec![HEADINGS.map(String::from)];
        cells.extend(sorted.iter().map(cells_of));
        let table = table(&cells);
        // Keep the heading; make room for the `... more` line if cut.
        let room = layout.height.saturating_sub(lines.len());
        if table.len() > room && room >= 2 {
            let shown = room - 1;
            let hidden = table.len() - shown;
            lines.extend(table.into_iter().take(shown));
            lines.push(format!(
                "... {hidden} more row{}",
                if hidden == 1 { "" } else { "s" }
            ));
        } else {
            lines.extend(table);
        }
    }
    lines.truncate(layout.height);
    for line in &mut lines {
        if let Some((cut, _)) = line.char_indices().nth(layout.width) {
            line.truncate(cut);
            line.truncate(line.trim_end().len());
        }
    }
    lines
}

/// `bulkhead 0.1.0 (pid 42), up 1h05m; sorted by cpu, every 2s`, with the
/// keys when interactive.
fn daemon_line(m: &MetricsReply, layout: &Layout) -> String {
    let d = &m.daemon;
    let mut line = format!(
        "bulkhead {} (pid {}), up {}; sorted by {}, every {}",
        d.version,
        d.pid,
        duration(d.uptime_secs),
        layout.sort.as_str(),
        interval(layout.interval)
    );
    if layout.keys {
        line.push_str("; keys: c m p i r n sort, q quit");
    }
    line
}

/// `2s`, `500ms`, `1m30s`.
fn interval(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// `instances: 4 (2 running, 1 backoff, 1 failed; 1 unhealthy), restarts 7,
/// violations 3; launches: 1 active, 0 queued`: states most common first.
fn totals_line(m: &MetricsReply) -> String {
    let instances: Vec<&InstanceMetrics> =
        m.services.iter().flat_map(|s| s.instances.iter()).collect();
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &instances {
        *by_state.entry(i.state.as_str()).or_default() += 1;
    }
    let mut states: Vec<(&str, usize)> = by_state.into_iter().collect();
    states.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut detail: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let unhealthy = instances
        .iter()
        .filter(|i| i.healthy == Some(false))
        .count();
    let mut line = format!("instances: {}", instances.len());
    if unhealthy > 0 {
        let last = detail.pop().unwrap_or_default();
        detail.push(format!("{last}; {unhealthy} unhealthy"));
    }
    if !detail.is_empty() {
        let _ = write!(line, " ({})", detail.join(", "));
    }
    let restarts: u64 = instances.iter().map(|i| u64::from(i.restarts)).sum();
    let violations: u64 = m.services.iter().map(|s| total(&s.violations)).sum();
    let _ = write!(
        line,
        ", restarts {restarts}, violations {violations}; launches: {} active, {} queued",
        m.launch.active, m.launch.queued
    );
    line
}

fn cells_of(r: &Row) -> [String; 12] {
    let name = if r.name.chars().count() > NAME_MAX {
        let mut cut: String = r.name.chars().take(NAME_MAX - 1).collect();
        cut.push('~');
        cut
    } else {
        r.name.clone()
    };
    let count = |v: Option<u64>| v.map_or_else(dash, |n| n.to_string());
    let fixed = |v: Option<f64>, places: usize| v.map_or_else(dash, |x| format!("{x:.places$}"));
    [
        name,
        r.state.clone(),
        fixed(r.cpu_pct, 1),
        fixed(r.throttled_pct, 1),
        usage(r.memory, r.memory_max, bytes),
        usage(r.pids, r.pids_max, |n| n.to_string()),
        r.io_read.map_or_else(dash, bytes),
        r.io_write.map_or_else(dash, bytes),
        fixed(r.psi_memory, 2),
        fixed(r.psi_cpu, 2),
        count(r.restarts),
        count(r.violations),
    ]
}

/// Columns as wide as their widest cell, two spaces apart, numbers
/// right-aligned, no trailing blanks.
fn table(rows: &[[String; 12]]) -> Vec<String> {
    let mut widths = [0usize; 12];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for ((cell, w), right) in row.iter().zip(widths).zip(RIGHT) {
                if right {
                    let _ = write!(line, "{cell:>w$}  ");
                } else {
                    let _ = write!(line, "{cell:<w$}  ");
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::proto::{DaemonInfo, GroupMetrics, LaunchMetrics, PressureFigures};

    const MIB: u64 = 1 << 20;

    fn figures(cpu_usec: u64, mem: u64, pids: u64, read: u64, write: u64) -> CgroupFigures {
        CgroupFigures {
            cpu_usage_usec: Some(cpu_usec),
            memory_current: Some(mem),
            pids_current: Some(pids),
            io_read_bytes: Some(read),
            io_write_bytes: Some(write),
            ..CgroupFigures::default()
        }
    }

    fn psi(memory: f64, cpu: f64) -> BTreeMap<String, PressureFigures> {
        [("memory", memory), ("cpu", cpu), ("io", 0.5)]
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    PressureFigures {
                        some_avg10: v,
                        ..PressureFigures::default()
                    },
                )
            })
            .collect()
    }

    fn inst(
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

    /// `web` (2 replicas, group frontend), a `sandbox` template with one
    /// instance and `worker` backing off; `tick` moves every counter on as
    /// 2 s of work would.
    fn snapshot(tick: u64) -> MetricsReply {
        let mut w0f = figures(
            10_000_000 + tick * 1_500_000,
            14 * MIB + 700 * 1024,
            3,
            0,
            tick * 3 * MIB,
        );
        w0f.cpu_nr_periods = Some(100 + tick * 20);
        w0f.cpu_nr_throttled = Some(10 + tick * 2);
        w0f.memory_max = Some(64 * MIB);
        w0f.pressure = psi(0.0, 9.1);
        let mut web0 = inst("0", "running", Some(812), Some(w0f));
        web0.healthy = Some(true);
        web0.memory_max = Some(64 * MIB);
        web0.pids_max = Some(32);
        let mut w1f = figures(2_000_000 + tick * 400_000, 65 * MIB, 4, tick * MIB, 0);
        w1f.pressure = psi(2.4, 3.4);
        let mut web1 = inst("1", "running", Some(813), Some(w1f));
        web1.healthy = Some(false);
        web1.restarts = 2;
        web1.violations = [("memory_pressure".to_string(), 3)].into();
        web1.memory_max = Some(64 * MIB);
        web1.pids_max = Some(32);
        let mut worker = inst("0", "backoff", None, None);
        worker.restarts = 5;
        let sandbox = inst(
            "ns:tenant-1",
            "running",
            Some(900),
            Some(figures(tick * 200_000, 3 * MIB, 1, 0, 0)),
        );
        let mut gf = figures(
            12_000_000 + tick * 1_900_000,
            80 * MIB,
            7,
            tick * MIB,
            tick * 3 * MIB,
        );
        gf.memory_max = Some(1 << 30);
        gf.pids_max = Some(128);
        gf.pressure = psi(0.0, 12.5);
        MetricsReply {
            daemon: DaemonInfo {
                pid: 42,
                version: "0.1.0".into(),
                uptime_secs: 3900.0 + 2.0 * f64::from(u32::try_from(tick).unwrap()),
                ..DaemonInfo::default()
            },
            services: vec![
                ServiceMetrics {
                    name: "web".into(),
                    group: Some("frontend".into()),
                    violations: [("memory_pressure".to_string(), 3)].into(),
                    instances: vec![web0, web1],
                    ..ServiceMetrics::default()
                },
                ServiceMetrics {
                    name: "worker".into(),
                    violations: [("oom".to_string(), 1)].into(),
                    instances: vec![worker],
                    ..ServiceMetrics::default()
                },
                ServiceMetrics {
                    name: "sandbox".into(),
                    isolation: Some("namespace".into()),
                    instances: vec![sandbox],
                    ..ServiceMetrics::default()
                },
                ServiceMetrics {
                    name: "idle".into(),
                    isolation: Some("session".into()),
                    ..ServiceMetrics::default()
                },
            ],
            groups: vec![GroupMetrics {
                name: "frontend".into(),
                memory_max: Some(1 << 30),
                pids_max: Some(128),
                figures: Some(gf),
                ..GroupMetrics::default()
            }],
            launch: LaunchMetrics {
                active: 1,
                queued: 2,
                ..LaunchMetrics::default()
            },
        }
    }

    fn layout(sort: Sort, width: usize, height: usize) -> Layout {
        Layout {
            sort,
            width,
            height,
            interval: Duration::from_secs(2),
            keys: false,
        }
    }

    fn frame(first: &MetricsReply, second: &MetricsReply, l: &Layout) -> String {
        let r = rows(Some((first, Duration::from_secs(2))), second);
        render(second, &r, l).join("\n")
    }

    /// The first word of each table row of a rendered frame (its lines
    /// after the two of the header, the blank one and `NAME`).
    fn names(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .skip(4)
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    }

    /// The rows of a [`snapshot`] in name order, groups first.
    const BY_NAME: [&str; 6] = [
        "[frontend]",
        "idle",
        "sandbox/ns:tenant-1",
        "web/0",
        "web/1",
        "worker/0",
    ];

    #[test]
    fn the_second_frame_shows_rates_sorted_by_cpu() {
        let text = frame(
            &snapshot(1),
            &snapshot(2),
            &layout(Sort::Cpu, usize::MAX, usize::MAX),
        );
        let want = "\
bulkhead 0.1.0 (pid 42), up 1h05m; sorted by cpu, every 2s
instances: 4 (3 running, 1 backoff; 1 unhealthy), restarts 7, violations 4; launches: 1 active, 2 queued

NAME                 STATE                CPU%  THR%  MEMORY       PIDS     IO-R/s  IO-W/s  PSI-MEM  PSI-CPU  RESTARTS  VIOL
[frontend]           2/2 running          95.0     -  80M / 1G     7 / 128    512K    1.5M     0.00    12.50         2     3
web/0                running (healthy)    75.0  10.0  14.7M / 64M  3 / 32       0B    1.5M     0.00     9.10         0     0
web/1                running (unhealthy)  20.0     -  65M / 64M    4 / 32     512K      0B     2.40     3.40         2     3
sandbox/ns:tenant-1  running              10.0     -  3M           1            0B      0B        -        -         0     0
idle                 no instances            -     -  -            -             -       -        -        -         -     0
worker/0             backoff                 -     -  -            -             -       -        -        -         5     0";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn the_first_frame_has_no_rates() {
        let cur = snapshot(1);
        let r = rows(None, &cur);
        for row in &r {
            assert_eq!(row.cpu_pct, None, "{row:?}");
            assert_eq!(row.throttled_pct, None, "{row:?}");
            assert_eq!((row.io_read, row.io_write), (None, None), "{row:?}");
        }
        let lines = render(&cur, &r, &layout(Sort::Cpu, usize::MAX, usize::MAX));
        let web0 = lines.iter().find(|l| l.starts_with("web/0")).unwrap();
        assert_eq!(
            web0,
            "web/0                running (healthy)       -     -  14.7M / 64M  3 / 32        -       -     0.00     9.10         0     0"
        );
        // No cpu figures to sort by: by name, groups still first.
        assert_eq!(names(&lines), BY_NAME);
    }

    #[test]
    fn rates_are_over_the_wall_time_between_the_snapshots() {
        // 1.5 s of cpu in 2 s: 75 %; in 0.5 s: 300 % (three cores).
        assert_eq!(cpu_percent(1_500_000, Duration::from_secs(2)), Some(75.0));
        assert_eq!(
            cpu_percent(1_500_000, Duration::from_millis(500)),
            Some(300.0)
        );
        assert_eq!(cpu_percent(1, Duration::ZERO), None);
        assert_eq!(
            per_second(3 * MIB, Duration::from_secs(2)),
            Some(1536 * 1024)
        );
        assert_eq!(per_second(1000, Duration::from_millis(250)), Some(4000));
        assert_eq!(per_second(5, Duration::ZERO), None);
        assert_eq!(share(2, 20), Some(10.0));
        assert_eq!(share(0, 0), None);
        let r = rows(Some((&snapshot(1), Duration::from_secs(4))), &snapshot(2));
        let web0 = r.iter().find(|r| r.name == "web/0").unwrap();
        assert_eq!(web0.cpu_pct, Some(37.5));
        assert_eq!(web0.io_write, Some(768 * 1024));
    }

    #[test]
    fn a_restarted_instance_or_a_counter_that_went_down_has_no_rate() {
        let prev = snapshot(5);
        let mut cur = snapshot(6);
        // web/0 got a new pid: its counters are a new cgroup's.
        cur.services[0].instances[0].pid = Some(1000);
        // The group's counters went backwards (made anew).
        cur.groups[0].figures = Some(figures(5, 80 * MIB, 7, 0, 0));
        let r = rows(Some((&prev, Duration::from_secs(2))), &cur);
        let get = |n: &str| r.iter().find(|r| r.name == n).unwrap();
        assert_eq!(get("web/0").cpu_pct, None);
        assert_eq!(get("web/0").memory, Some(14 * MIB + 700 * 1024));
        assert_eq!(get("[frontend]").cpu_pct, None);
        assert_eq!(get("[frontend]").io_read, None);
        assert!(get("web/1").cpu_pct.is_some());
        // An instance new in this snapshot has no rate either.
        let mut prev = snapshot(1);
        prev.services[2].instances.clear();
        let r = rows(Some((&prev, Duration::from_secs(2))), &snapshot(2));
        let sandbox = r.iter().find(|r| r.name == "sandbox/ns:tenant-1").unwrap();
        assert_eq!(sandbox.cpu_pct, None);
        assert_eq!(sandbox.memory, Some(3 * MIB));
    }

    #[test]
    fn missing_figures_are_dashes_and_limits_come_from_the_config() {
        let mut cur = snapshot(1);
        // The daemon read nothing (figures not filled in).
        cur.groups[0].figures = None;
        for s in &mut cur.services {
            for i in &mut s.instances {
                i.figures = None;
            }
        }
        let text = render(
            &cur,
            &rows(Some((&snapshot(0), Duration::from_secs(2))), &cur),
            &layout(Sort::Memory, usize::MAX, usize::MAX),
        );
        assert_eq!(
            text[3..],
            [
                "NAME                 STATE                CPU%  THR%  MEMORY   PIDS     IO-R/s  IO-W/s  PSI-MEM  PSI-CPU  RESTARTS  VIOL",
                "[frontend]           2/2 running             -     -  - / 1G   - / 128       -       -        -        -         2     3",
                "idle                 no instances            -     -  -        -             -       -        -        -         -     0",
                "sandbox/ns:tenant-1  running                 -     -  -        -             -       -        -        -         0     0",
                "web/0                running (healthy)       -     -  - / 64M  - / 32        -       -        -        -         0     0",
                "web/1                running (unhealthy)     -     -  - / 64M  - / 32        -       -        -        -         2     3",
                "worker/0             backoff                 -     -  -        -             -       -        -        -         5     0",
            ]
        );
    }

    #[test]
    fn each_sort_orders_instances_largest_first_and_groups_stay_on_top() {
        let (a, b) = (snapshot(1), snapshot(2));
        let order = |sort| {
            let r = rows(Some((&a, Duration::from_secs(2))), &b);
            names(&render(&b, &r, &layout(sort, usize::MAX, usize::MAX)))
        };
        // web/1 has the most memory and the most pids.
        let by_size = [
            "[frontend]",
            "web/1",
            "web/0",
            "sandbox/ns:tenant-1",
            "idle",
            "worker/0",
        ];
        assert_eq!(order(Sort::Memory), by_size);
        assert_eq!(order(Sort::Pids), by_size);
        // 1.5M/s written beats 512K/s read; 0 beats unknown.
        assert_eq!(
            order(Sort::Io),
            [
                "[frontend]",
                "web/0",
                "web/1",
                "sandbox/ns:tenant-1",
                "idle",
                "worker/0"
            ]
        );
        assert_eq!(
            order(Sort::Restarts),
            [
                "[frontend]",
                "worker/0",
                "web/1",
                "sandbox/ns:tenant-1",
                "web/0",
                "idle"
            ]
        );
        assert_eq!(order(Sort::Name), BY_NAME);
    }

    #[test]
    fn sort_keys_and_names() {
        for (i, name) in Sort::NAMES.iter().enumerate() {
            let s: Sort = name.parse().unwrap();
            assert_eq!(s.as_str(), *name);
            assert_eq!(Sort::key(name.as_bytes()[0]), Some(s), "{i}");
            assert_eq!(Sort::key(name.as_bytes()[0].to_ascii_uppercase()), Some(s));
        }
        assert_eq!(Sort::key(b'q'), None);
        assert_eq!(
            "mem".parse::<Sort>().unwrap_err(),
            "`mem` is not one of cpu, memory, pids, io, restarts, name"
        );
    }

    #[test]
    fn a_small_terminal_cuts_lines_and_rows() {
        let (a, b) = (snapshot(1), snapshot(2));
        let mut l = layout(Sort::Cpu, 40, 8);
        l.keys = true;
        let r = rows(Some((&a, Duration::from_secs(2))), &b);
        let lines = render(&b, &r, &l);
        assert_eq!(
            lines,
            [
                "bulkhead 0.1.0 (pid 42), up 1h05m; sorte",
                "instances: 4 (3 running, 1 backoff; 1 un",
                "",
                "NAME                 STATE",
                "[frontend]           2/2 running",
                "web/0                running (healthy)",
                "web/1                running (unhealthy)",
                "... 3 more rows",
            ]
        );
        // The keys are in the header when there is room.
        let wide = render(&b, &r, &layout(Sort::Cpu, 200, 8));
        assert!(!wide[0].contains("keys"));
        l.width = 200;
        assert!(render(&b, &r, &l)[0].ends_with("; keys: c m p i r n sort, q quit"));
        // Too short for any row: only what fits.
        assert_eq!(render(&b, &r, &layout(Sort::Cpu, 80, 2)).len(), 2);
        assert_eq!(render(&b, &r, &layout(Sort::Cpu, 80, 0)).len(), 0);
        // Exactly enough room: no `more` line.
        let all = render(&b, &r, &layout(Sort::Cpu, 300, 10));
        assert_eq!(all.len(), 10);
        assert!(all[9].starts_with("worker/0 "), "{all:?}");
        // One line short: two rows make way for the `more` line.
        let cut = render(&b, &r, &layout(Sort::Cpu, 300, 9));
        assert_eq!(cut[8], "... 2 more rows");
    }

    #[test]
    fn long_names_are_cut_and_no_services_says_so() {
        let mut cur = snapshot(1);
        cur.services[2].instances[0].instance = format!("session:{}", "x".repeat(60));
        let r = rows(None, &cur);
        let text = render(&cur, &r, &layout(Sort::Name, usize::MAX, usize::MAX));
        let line = text.iter().find(|l| l.starts_with("sandbox/")).unwrap();
        assert!(line.starts_with(&format!("sandbox/session:{}~  running", "x".repeat(23))));
        let empty = MetricsReply::default();
        assert_eq!(
            render(&empty, &rows(None, &empty), &layout(Sort::Cpu, 80, 24)),
            [
                "bulkhead  (pid 0), up 0s; sorted by cpu, every 2s",
                "instances: 0, restarts 0, violations 0; launches: 0 active, 0 queued",
                "",
                "no services",
            ]
        );
    }

    #[test]
    fn intervals_read_as_typed() {
        assert_eq!(interval(Duration::from_secs(2)), "2s");
        assert_eq!(interval(Duration::from_millis(500)), "500ms");
        assert_eq!(interval(Duration::from_secs(90)), "1m30s");
    }
}
