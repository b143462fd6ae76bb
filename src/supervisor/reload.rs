//! What a reload changes, pure (docs/ARCHITECTURE.md decision 12). [`diff`] compares the
//! running config with the new, already validated one and sorts every
//! difference by how it is applied:
//!
//! ```text
//! difference                                  applied as                 ReloadPlan field
//! ------------------------------------------  -------------------------  ------------------------------
//! service added / removed                     start / stop it            added / removed
//! cgroup limit (cpu, memory, io, pids)        written to each instance   changed[].live
//! spawn-time setting (record::SPAWN_KEYS)     instances restarted        changed[].respawn
//! restart, stop, health, watch, depends_on,   state machine updated,     changed[].lifecycle
//!   isolation, idle_timeout, max_instances      nothing restarted
//! instances, autostart                        instances started/stopped  changed[].instances, .autostart
//! group added / removed / limits              group cgroup written       groups
//! supervisor.*                                needs a daemon restart     supervisor
//! ```
//!
//! Limit values are rendered by `cgroup::limits` exactly as they would be
//! written, and a limit that is removed goes back to the kernel default
//! (`render_reset`): `memory.max 268435456 -> max`. `respawn` is non-empty
//! exactly when the service's `record::spawn_hash` changes, so a reload and a
//! restarted daemon agree on what needs a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::cgroup::limits::{self, DevNum};
use crate::config::units::Size;
use crate::config::{Config, IoDevice, Resources, Service};

use super::record::{SPAWN_KEYS, spawn_view};

/// One cgroup file whose value a reload changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitChange {
    pub file: &'static str,
    /// io.max only: the device, which the writer resolves to `MAJ:MIN` and
    /// puts before `new` (`254:0 rbps=1048576 wbps=max riops=max wiops=max`).
    pub device: Option<PathBuf>,
    /// The kernel text before and after (`268435456` -> `max`).
    pub old: String,
    pub new: String,
}

/// How one service differs; only services with a difference are listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceChange {
    pub name: String,
    /// Limits written to each running instance, in `limits::render` order.
    /// Superseded when `respawn` is non-empty: the new instances get the new
    /// limits when their cgroups are created.
    pub live: Vec<LimitChange>,
    /// Spawn-time settings that changed (`command`, `env`, `security.seccomp`,
    /// `resources.rlimits`, `member_of`): the instances are restarted.
    pub respawn: Vec<String>,
    /// Lifecycle settings that changed (`restart.policy`, `health.interval`,
    /// `watch.oom`, `depends_on`, `isolation`...): applied without a restart.
    pub lifecycle: Vec<String>,
    /// `(old, new)` replica count.
    pub instances: Option<(u32, u32)>,
    pub autostart: Option<(bool, bool)>,
}

impl ServiceChange {
    fn is_empty(&self) -> bool {
        self.live.is_empty()
            && self.respawn.is_empty()
            && self.lifecycle.is_empty()
            && self.instances.is_none()
            && self.autostart.is_none()
    }
}

/// Whether a group is new, gone, or has other limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent {
    /// Its cgroup is created with `live` (every limit it sets).
    Added,
    /// Its cgroup is removed once its members are gone (they changed
    /// `member_of` or were removed, so they are restarted or stopped).
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    pub name: String,
    pub event: GroupEvent,
    /// Limits to write to the group's cgroup; empty for a removed group.
    pub live: Vec<LimitChange>,
}

/// Everything a reload changes. Lists follow file order: `added` and
/// `changed` the new file's, `removed` the old file's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadPlan {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ServiceChange>,
    pub groups: Vec<GroupChange>,
    /// Supervisor settings that changed (`state_dir`, `launch.max_queue`):
    /// none is applied to a running daemon; they take effect when it restarts.
    pub supervisor: Vec<String>,
}

impl ReloadPlan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.groups.is_empty()
            && self.supervisor.is_empty()
    }

    /// One line per change, for the log and the `reload` reply:
    ///
    /// ```text
    /// supervisor.log_dir changed (takes effect when the daemon restarts)
    /// - old (removed)
    /// + cache (added)
    /// + group pool (added)
    /// group tenants: memory.max 1G -> 2G (live)
    /// web: memory.max 256M -> 512M (live)
    /// api: command changed (restart)
    /// api: restart.policy changed
    /// worker: instances 2 -> 3
    /// worker: autostart true -> false
    /// ```
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .supervisor
            .iter()
            .map(|k| format!("supervisor.{k} changed (takes effect when the daemon restarts)"))
            .collect();
        out.extend(self.removed.iter().map(|s| format!("- {s} (removed)")));
        out.extend(self.added.iter().map(|s| format!("+ {s} (added)")));
        for g in &self.groups {
            match g.event {
                GroupEvent::Added => out.push(format!("+ group {} (added)", g.name)),
                GroupEvent::Removed => out.push(format!("- group {} (removed)", g.name)),
                GroupEvent::Changed => {
                    let who = format!("group {}", g.name);
                    out.extend(g.live.iter().map(|l| describe_limit(&who, l)));
                }
            }
        }
        for c in &self.changed {
            let n = &c.name;
            out.extend(c.live.iter().map(|l| describe_limit(n, l)));
            out.extend(
                c.respawn
                    .iter()
                    .map(|k| format!("{n}: {k} changed (restart)")),
            );
            out.extend(c.lifecycle.iter().map(|k| format!("{n}: {k} changed")));
            if let Some((a, b)) = c.instances {
                out.push(format!("{n}: instances {a} -> {b}"));
            }
            if let Some((a, b)) = c.autostart {
                out.push(format!("{n}: autostart {a} -> {b}"));
            }
        }
        out
    }
}

/// `web: memory.max 256M -> 512M (live)`.
fn describe_limit(who: &str, l: &LimitChange) -> String {
    let device = l
        .device
        .as_ref()
        .map(|d| format!(" {}", d.display()))
        .unwrap_or_default();
    format!(
        "{who}: {}{device} {} -> {} (live)",
        l.file,
        human(l.file, &l.old),
        human(l.file, &l.new)
    )
}

/// Kernel text made readable: byte counts in powers of 1024 (`268435456` ->
/// `256M`), an empty cpuset as what it means.
fn human(file: &str, value: &str) -> String {
    let bytes = |v: &str| match v.parse::<u64>() {
        Ok(n) => Size::Bytes(n).to_string(),
        Err(_) => v.to_string(),
    };
    if value.trim().is_empty() {
        return "(the parent's)".to_string();
    }
    match file {
        "memory.low" | "memory.high" | "memory.max" | "memory.swap.max" => bytes(value),
        "io.max" => value
            .split(' ')
            .map(|t| match t.split_once('=') {
                Some((k @ ("rbps" | "wbps"), v)) => format!("{k}={}", bytes(v)),
                _ => t.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => value.to_string(),
    }
}

// ---------------------------------------------------------------- limits

/// Every file `limits::render` writes, in its order (a test keeps the two
/// in step). io.max stands for one line per device.
const FILE_ORDER: &[&str] = &[
    "cpuset.mems",
    "cpuset.cpus",
    "cpu.weight",
    "cpu.max",
    "memory.low",
    "memory.high",
    "memory.max",
    "memory.swap.max",
    "memory.oom.group",
    "io.weight",
    "io.max",
    "pids.max",
];

/// Each file's value under `r`: what `render` writes, else the kernel
/// default `render_reset` would restore. io.max is kept apart.
fn effective(r: &Resources) -> BTreeMap<&'static str, String> {
    let mut m: BTreeMap<&'static str, String> = limits::render_reset(r)
        .into_iter()
        .map(|w| (w.file, w.value))
        .collect();
    // No devices: render writes no io.max line.
    m.extend(
        limits::render(r, &[])
            .into_iter()
            .map(|w| (w.file, w.value)),
    );
    m
}

/// The limits of an io.max line, without the device number (the writer
/// resolves it): `rbps=1048576 wbps=max riops=max wiops=max`.
fn io_limits(d: &IoDevice) -> String {
    let line = limits::render_io_max(DevNum { major: 0, minor: 0 }, d);
    line.split_once(' ')
        .map_or(line.clone(), |(_, rest)| rest.to_string())
}

/// The io.max limits of each device (the last entry of a device wins, as it
/// would in the kernel); a device that is absent has none (all `max`).
fn io_by_device(r: &Resources) -> BTreeMap<PathBuf, String> {
    r.io.devices
        .iter()
        .map(|d| (d.device.clone(), io_limits(d)))
        .collect()
}

/// The cgroup files that change from `old` to `new`, with the values before
/// and after, in `limits::render` order; a removed limit goes back to the
/// kernel default, a removed io device to `max` everywhere.
pub fn limit_changes(old: &Resources, new: &Resources) -> Vec<LimitChange> {
    let (a, b) = (effective(old), effective(new));
    let unlimited = io_limits(&IoDevice {
        device: PathBuf::new(),
        read_bps: None,
        write_bps: None,
        read_iops: None,
        write_iops: None,
    });
    let mut out = Vec::new();
    for file in FILE_ORDER {
        if *file == "io.max" {
            let (da, db) = (io_by_device(old), io_by_device(new));
            let devices: BTreeSet<&PathBuf> = da.keys().chain(db.keys()).collect();
            for dev in devices {
                let before = da.get(dev).unwrap_or(&unlimited);
                let after = db.get(dev).unwrap_or(&unlimited);
                if before != after {
                    out.push(LimitChange {
                        file,
                        device: Some(dev.clone()),
                        old: before.clone(),
                        new: after.clone(),
                    });
                }
            }
            continue;
        }
        let (before, after) = (a.get(file), b.get(file));
        if before != after {
            out.push(LimitChange {
                file,
                device: None,
                old: before.cloned().unwrap_or_default(),
                new: after.cloned().unwrap_or_default(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------- settings

/// Settings reported by their sub-keys (`security.seccomp`), not as a whole.
const DETAILED: &[&str] = &[
    "security",
    "namespaces",
    "mounts",
    "protect",
    "directories",
    "io_priority",
    "logs",
    "restart",
    "stop",
    "health",
    "watch",
    "launch",
];

/// Service settings applied to the state machine without a restart.
const LIFECYCLE_KEYS: &[&str] = &[
    "restart",
    "stop",
    "health",
    "watch",
    "depends_on",
    "isolation",
    "idle_timeout",
    "max_instances",
];

/// The names of what differs between `a` and `b`, the values of `key`:
/// `[key]`, or `key.sub` for each differing sub-key of a [`DETAILED`] one.
fn changed_keys(key: &str, a: Option<&Value>, b: Option<&Value>) -> Vec<String> {
    if a == b {
        return vec![];
    }
    if let (true, Some(Value::Object(ma)), Some(Value::Object(mb))) =
        (DETAILED.contains(&key), a, b)
    {
        let subs: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        let names: Vec<String> = subs
            .into_iter()
            .filter(|k| ma.get(*k) != mb.get(*k))
            .map(|k| format!("{key}.{k}"))
            .collect();
        if !names.is_empty() {
            return names;
        }
    }
    vec![key.to_string()]
}

fn to_value<T: serde::Serialize + std::fmt::Debug>(t: &T) -> Value {
    // As in record::spawn_view: cannot fail for a validated config.
    serde_json::to_value(t).unwrap_or_else(|_| Value::String(format!("{t:?}")))
}

fn service_change(old: &Service, new: &Service) -> ServiceChange {
    let (sa, sb) = (spawn_view(old), spawn_view(new));
    let respawn = SPAWN_KEYS
        .iter()
        .flat_map(|k| changed_keys(k, sa.get(*k), sb.get(*k)))
        .collect();
    let (va, vb) = (to_value(old), to_value(new));
    let lifecycle = LIFECYCLE_KEYS
        .iter()
        .flat_map(|k| changed_keys(k, va.get(*k), vb.get(*k)))
        .collect();
    ServiceChange {
        name: new.name.clone(),
        live: limit_changes(&old.resources, &new.resources),
        respawn,
        lifecycle,
        instances: (old.instances != new.instances).then_some((old.instances, new.instances)),
        autostart: (old.autostart != new.autostart).then_some((old.autostart, new.autostart)),
    }
}

/// What changes from `old` (running) to `new` (validated).
pub fn diff(old: &Config, new: &Config) -> ReloadPlan {
    let mut plan = ReloadPlan::default();

    let (va, vb) = (to_value(&old.supervisor), to_value(&new.supervisor));
    if let (Value::Object(ma), Value::Object(mb)) = (&va, &vb) {
        let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        for k in keys {
            plan.supervisor
                .extend(changed_keys(k, ma.get(k), mb.get(k)));
        }
    }

    for g in &new.groups {
        match old.group(&g.name) {
            None => plan.groups.push(GroupChange {
                name: g.name.clone(),
                event: GroupEvent::Added,
                live: limit_changes(&Resources::default(), &g.resources),
            }),
            Some(o) => {
                let live = limit_changes(&o.resources, &g.resources);
                if !live.is_empty() {
                    plan.groups.push(GroupChange {
                        name: g.name.clone(),
                        event: GroupEvent::Changed,
                        live,
                    });
                }
            }
        }
    }
    for g in old.groups.iter().filter(|g| new.group(&g.name).is_none()) {
        plan.groups.push(GroupChange {
            name: g.name.clone(),
            event: GroupEvent::Removed,
            live: vec![],
        });
    }

    for s in &new.services {
        match old.service(&s.name) {
            None => plan.added.push(s.name.clone()),
            Some(o) => {
                let c = service_change(o, s);
                if !c.is_empty() {
                    plan.changed.push(c);
                }
            }
        }
    }
    plan.removed = old
        .services
        .iter()
        .filter(|s| new.service(&s.name).is_none())
        .map(|s| s.name.clone())
        .collect();
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::record::fixtures::{MUTATIONS, cfg, full_config};
    use super::super::record::spawn_hash;
    use super::*;
    use crate::config::units::{Cpu, CpuList, Dur};
    use proptest::prelude::*;

    fn svc_plan(changes: &[(&str, &str)]) -> ReloadPlan {
        diff(&full_config(&[]), &full_config(changes))
    }

    fn only_change(p: &ReloadPlan) -> &ServiceChange {
        assert_eq!(p.changed.len(), 1, "{p:#?}");
        assert!(p.added.is_empty() && p.removed.is_empty() && p.groups.is_empty());
        &p.changed[0]
    }

    fn lc(file: &'static str, old: &str, new: &str) -> LimitChange {
        LimitChange {
            file,
            device: None,
            old: old.into(),
            new: new.into(),
        }
    }

    const RES: &str = "{cpu: {max: 0.5, weight: 100}, memory: {max: 256M, high: 200M}, io: {weight: 100}, pids: {max: 64}, rlimits: {nofile: 1024}}";

    #[test]
    fn the_same_config_changes_nothing() {
        let p = svc_plan(&[]);
        assert!(p.is_empty(), "{p:#?}");
        assert!(p.describe().is_empty());
    }

    #[test]
    fn a_raised_memory_limit_is_written_live() {
        let p = svc_plan(&[("resources", &RES.replace("max: 256M", "max: 512M"))]);
        let c = only_change(&p);
        assert_eq!(c.live, [lc("memory.max", "268435456", "536870912")]);
        assert!(c.respawn.is_empty() && c.lifecycle.is_empty());
        assert_eq!(p.describe(), ["svc: memory.max 256M -> 512M (live)"]);
    }

    #[test]
    fn removed_limits_go_back_to_the_kernel_defaults() {
        let p = svc_plan(&[("resources", "{rlimits: {nofile: 1024}}")]);
        let c = only_change(&p);
        assert_eq!(
            c.live,
            [
                lc("cpu.max", "50000 100000", "max 100000"),
                lc("memory.high", "209715200", "max"),
                lc("memory.max", "268435456", "max"),
                lc("memory.oom.group", "1", "0"),
                lc("pids.max", "64", "max"),
            ]
        );
        // cpu.weight and io.weight were 100, the kernel default: unchanged.
        assert_eq!(
            p.describe(),
            [
                "svc: cpu.max 50000 100000 -> max 100000 (live)",
                "svc: memory.high 200M -> max (live)",
                "svc: memory.max 256M -> max (live)",
                "svc: memory.oom.group 1 -> 0 (live)",
                "svc: pids.max 64 -> max (live)",
            ]
        );
        // And back: the same files, the other way.
        let back = diff(
            &full_config(&[("resources", "{rlimits: {nofile: 1024}}")]),
            &full_config(&[]),
        );
        let rev: Vec<LimitChange> = c.live.iter().map(|l| lc(l.file, &l.new, &l.old)).collect();
        assert_eq!(back.changed[0].live, rev);
    }

    #[test]
    fn limit_changes_cover_every_file_and_io_devices() {
        let mut a = Resources::default();
        let mut b = Resources::default();
        a.cpu.period = Dur::millis(100);
        b.cpu.period = Dur::millis(50);
        b.cpu.max = Some(Cpu::Millicores(500));
        b.cpu.weight = Some(200);
        b.cpu.cpuset = Some(CpuList::parse("0-1").unwrap());
        b.cpu.mems = Some(CpuList::parse("0").unwrap());
        b.memory.low = Some(Size::Bytes(1 << 20));
        b.memory.swap_max = Some(Size::Bytes(0));
        b.memory.max = Some(Size::Max);
        b.memory.oom_group = true;
        b.io.weight = Some(50);
        b.pids_max = Some(10);
        let dev = |p: &str, r: Option<u64>| IoDevice {
            device: p.into(),
            read_bps: r.map(Size::Bytes),
            write_bps: None,
            read_iops: None,
            write_iops: Some(100),
        };
        a.io.devices = vec![dev("/dev/sda", Some(1 << 20)), dev("/dev/sdb", None)];
        b.io.devices = vec![dev("/dev/sdc", None), dev("/dev/sda", Some(2 << 20))];
        let files: Vec<(&str, String, String, Option<PathBuf>)> = limit_changes(&a, &b)
            .into_iter()
            .map(|l| (l.file, l.old, l.new, l.device))
            .collect();
        let s = |x: &str| x.to_string();
        let all_max = s("rbps=max wbps=max riops=max wiops=max");
        assert_eq!(
            files,
            vec![
                ("cpuset.mems", s("\n"), s("0"), None),
                ("cpuset.cpus", s("\n"), s("0-1"), None),
                ("cpu.weight", s("100"), s("200"), None),
                ("cpu.max", s("max 100000"), s("25000 50000"), None),
                ("memory.low", s("0"), s("1048576"), None),
                // memory.max: max before (the default) and after: no change.
                ("memory.swap.max", s("max"), s("0"), None),
                ("memory.oom.group", s("0"), s("1"), None),
                ("io.weight", s("default 100"), s("default 50"), None),
                (
                    "io.max",
                    s("rbps=1048576 wbps=max riops=max wiops=100"),
                    s("rbps=2097152 wbps=max riops=max wiops=100"),
                    Some("/dev/sda".into())
                ),
                (
                    "io.max",
                    s("rbps=max wbps=max riops=max wiops=100"),
                    all_max.clone(),
                    Some("/dev/sdb".into())
                ),
                (
                    "io.max",
                    all_max,
                    s("rbps=max wbps=max riops=max wiops=100"),
                    Some("/dev/sdc".into())
                ),
                ("pids.max", s("max"), s("10"), None),
            ]
        );
        let p = ReloadPlan {
            changed: vec![ServiceChange {
                name: "x".into(),
                live: limit_changes(&a, &b),
                ..Default::default()
            }],
            ..Default::default()
        };
        let lines = p.describe();
        assert_eq!(lines[0], "x: cpuset.mems (the parent's) -> 0 (live)");
        assert_eq!(lines[4], "x: memory.low 0 -> 1M (live)");
        assert_eq!(
            lines[8],
            "x: io.max /dev/sda rbps=1M wbps=max riops=max wiops=100 -> rbps=2M wbps=max riops=max wiops=100 (live)"
        );
    }

    #[test]
    fn file_order_is_render_order() {
        let mut r = Resources::default();
        r.cpu.mems = Some(CpuList::parse("0").unwrap());
        r.cpu.cpuset = Some(CpuList::parse("0").unwrap());
        r.cpu.weight = Some(1);
        r.cpu.max = Some(Cpu::Max);
        r.memory.low = Some(Size::Max);
        r.memory.high = Some(Size::Max);
        r.memory.max = Some(Size::Max);
        r.memory.swap_max = Some(Size::Max);
        r.io.weight = Some(1);
        r.io.devices = vec![IoDevice {
            device: "/dev/sda".into(),
            read_bps: None,
            write_bps: None,
            read_iops: None,
            write_iops: None,
        }];
        r.pids_max = Some(2);
        let files: Vec<&str> = limits::render(&r, &[DevNum { major: 8, minor: 0 }])
            .into_iter()
            .map(|w| w.file)
            .collect();
        assert_eq!(files, FILE_ORDER);
        // Every file but io.max has a value whether set or not.
        let mut keys: Vec<&str> = effective(&Resources::default()).into_keys().collect();
        keys.extend(effective(&r).into_keys());
        keys.sort_unstable();
        keys.dedup();
        let mut want: Vec<&str> = FILE_ORDER
            .iter()
            .copied()
            .filter(|f| *f != "io.max")
            .collect();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(effective(&Resources::default()).len(), want.len());
        assert_eq!(effective(&r).len(), want.len());
    }

    #[test]
    fn spawn_settings_are_named() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("command", "[/bin/sleep, '200']", &["command"]),
            ("command", "[/bin/true]", &["command", "program"]),
            ("env", "{A: '2'}", &["env"]),
            ("user", "daemon", &["user"]),
            ("group", "daemon", &["group"]),
            ("member_of", "pool", &["member_of"]),
            ("member_of", "~", &["member_of"]),
            ("hostname", "~", &["hostname"]),
            ("io_priority", "{class: idle}", &["io_priority.class"]),
            (
                "security",
                "{capabilities: [CAP_NET_BIND_SERVICE], no_new_privs: true, seccomp: strict}",
                &["security.seccomp"],
            ),
            (
                "namespaces",
                "{pid: true, mount: true, net: true, uts: true, ipc: true}",
                &["namespaces.ipc", "namespaces.net"],
            ),
            ("logs", "{max_size: 20M, keep: 5}", &["logs.max_size"]),
        ];
        for (key, value, want) in cases {
            let p = svc_plan(&[(key, value)]);
            let c = only_change(&p);
            assert_eq!(&c.respawn, want, "{key}: {value}");
            assert!(c.live.is_empty() && c.lifecycle.is_empty(), "{key}: {c:?}");
        }
        let p = svc_plan(&[("resources", &RES.replace("nofile: 1024", "nofile: 2048"))]);
        assert_eq!(only_change(&p).respawn, ["resources.rlimits"]);
        assert!(only_change(&p).live.is_empty());
        assert_eq!(p.describe(), ["svc: resources.rlimits changed (restart)"]);
        let p = svc_plan(&[("command", "[/bin/true]")]);
        assert_eq!(
            p.describe(),
            [
                "svc: command changed (restart)",
                "svc: program changed (restart)"
            ]
        );
    }

    #[test]
    fn lifecycle_counts_and_autostart() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "restart",
                "{policy: always, backoff: {initial: 100ms}}",
                &["restart.policy"],
            ),
            (
                "restart",
                "{policy: on-failure, backoff: {initial: 1s}}",
                &["restart.backoff"],
            ),
            (
                "stop",
                "{signal: SIGINT, grace: 1m}",
                &["stop.grace", "stop.signal"],
            ),
            (
                "health",
                "{tcp: {port: 80}, interval: 5s}",
                &["health.interval"],
            ),
            ("health", "~", &["health"]),
            ("watch", "{oom: {action: warn}}", &["watch.oom"]),
            ("depends_on", "[]", &["depends_on"]),
        ];
        for (key, value, want) in cases {
            let p = svc_plan(&[(key, value)]);
            let c = only_change(&p);
            assert_eq!(&c.lifecycle, want, "{key}: {value}");
            assert!(c.live.is_empty() && c.respawn.is_empty(), "{key}: {c:?}");
        }
        let p = svc_plan(&[("instances", "3"), ("autostart", "false")]);
        let c = only_change(&p);
        assert_eq!(
            (c.instances, c.autostart),
            (Some((2, 3)), Some((true, false)))
        );
        assert_eq!(
            p.describe(),
            ["svc: instances 2 -> 3", "svc: autostart true -> false"]
        );
        let p = svc_plan(&[("health", "{tcp: {port: 80}, interval: 5s}")]);
        assert_eq!(p.describe(), ["svc: health.interval changed"]);
    }

    #[test]
    fn templates_are_compared_the_same_way() {
        let t = |extra: &str| {
            cfg(&format!(
                "services:\n  sandbox:\n    command: [/bin/sleep, '1']\n    isolation: namespace\n    resources: {{memory: {{max: 64M}}}}\n{extra}"
            ))
        };
        let a = t("");
        let p = diff(&a, &t("    idle_timeout: 10m\n    max_instances: 4\n"));
        assert_eq!(only_change(&p).lifecycle, ["idle_timeout", "max_instances"]);
        let p = diff(&a, &t("    env: {X: '1'}\n"));
        assert_eq!(only_change(&p).respawn, ["env"]);
        let b = cfg(
            "services:\n  sandbox:\n    command: [/bin/sleep, '1']\n    isolation: session\n    resources: {memory: {max: 128M}}\n",
        );
        let p = diff(&a, &b);
        let c = only_change(&p);
        assert_eq!(c.lifecycle, ["isolation"]);
        assert_eq!(c.live, [lc("memory.max", "67108864", "134217728")]);
        // Template to regular service: isolation goes, nothing is respawned.
        let r = cfg(
            "services:\n  sandbox:\n    command: [/bin/sleep, '1']\n    resources: {memory: {max: 64M}}\n",
        );
        assert_eq!(only_change(&diff(&a, &r)).lifecycle, ["isolation"]);
    }

    #[test]
    fn services_added_removed_and_groups() {
        let a = cfg("groups:
  tenants: {resources: {memory: {max: 1G}}}
  old: {}
services:
  web: {command: [/bin/true], member_of: tenants}
  gone: {command: [/bin/true], member_of: old}
");
        let b = cfg("groups:
  tenants: {resources: {memory: {max: 2G}, pids: {max: 100}}}
  pool: {resources: {cpu: {weight: 50}}}
services:
  cache: {command: [/bin/true], member_of: pool}
  web: {command: [/bin/true], member_of: tenants}
");
        let p = diff(&a, &b);
        assert_eq!(p.added, ["cache"]);
        assert_eq!(p.removed, ["gone"]);
        assert!(p.changed.is_empty());
        assert_eq!(
            p.groups,
            [
                GroupChange {
                    name: "tenants".into(),
                    event: GroupEvent::Changed,
                    live: vec![
                        lc("memory.max", "1073741824", "2147483648"),
                        lc("pids.max", "max", "100")
                    ],
                },
                GroupChange {
                    name: "pool".into(),
                    event: GroupEvent::Added,
                    live: vec![lc("cpu.weight", "100", "50")],
                },
                GroupChange {
                    name: "old".into(),
                    event: GroupEvent::Removed,
                    live: vec![],
                },
            ]
        );
        assert_eq!(
            p.describe(),
            [
                "- gone (removed)",
                "+ cache (added)",
                "group tenants: memory.max 1G -> 2G (live)",
                "group tenants: pids.max max -> 100 (live)",
                "+ group pool (added)",
                "- group old (removed)",
            ]
        );
        assert!(!p.is_empty());
        // Reversed.
        let p = diff(&b, &a);
        assert_eq!(
            (p.added.as_slice(), p.removed.as_slice()),
            (&["gone".to_string()][..], &["cache".to_string()][..])
        );
    }

    #[test]
    fn supervisor_changes_need_a_daemon_restart() {
        let a = cfg("services:\n  web: {command: [/bin/true]}\n");
        let b = cfg("supervisor:
  state_dir: /run/other
  log_dir: /var/log/other
  launch: {max_queue: 1}
services:
  web: {command: [/bin/true]}
");
        let p = diff(&a, &b);
        assert_eq!(p.supervisor, ["launch.max_queue", "log_dir", "state_dir"]);
        assert!(p.changed.is_empty());
        assert_eq!(
            p.describe()[0],
            "supervisor.launch.max_queue changed (takes effect when the daemon restarts)"
        );
    }

    #[test]
    fn respawn_is_named_iff_the_spawn_hash_changes() {
        let base = full_config(&[]);
        let h0 = spawn_hash(base.service("svc").unwrap());
        for (key, value, spawn) in MUTATIONS {
            let new = full_config(&[(key, value)]);
            let p = diff(&base, &new);
            let c = p.changed.iter().find(|c| c.name == "svc");
            let respawn = c.is_some_and(|c| !c.respawn.is_empty());
            assert_eq!(respawn, *spawn, "{key}: {value}");
            assert_eq!(
                respawn,
                spawn_hash(new.service("svc").unwrap()) != h0,
                "{key}"
            );
            // Every mutation shows up somewhere.
            assert!(!p.is_empty(), "{key}: {value}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn respawn_agrees_with_spawn_hash_for_combined_changes(
            a in proptest::collection::vec(any::<bool>(), MUTATIONS.len()),
            b in proptest::collection::vec(any::<bool>(), MUTATIONS.len()),
        ) {
            let pick = |on: &[bool]| -> Vec<(&str, &str)> {
                MUTATIONS
                    .iter()
                    .zip(on)
                    .filter(|(_, on)| **on)
                    .map(|((k, v, _), _)| (*k, *v))
                    .collect()
            };
            let (old, new) = (full_config(&pick(&a)), full_config(&pick(&b)));
            let p = diff(&old, &new);
            let respawn = p.changed.iter().any(|c| !c.respawn.is_empty());
            let hashes_differ = spawn_hash(old.service("svc").unwrap())
                != spawn_hash(new.service("svc").unwrap());
            prop_assert_eq!(respawn, hashes_differ);
            // Every change has a line; the same config changes nothing.
            prop_assert_eq!(p.is_empty(), p.describe().is_empty());
            if a == b {
                prop_assert!(p.is_empty());
            }
        }
    }
}
