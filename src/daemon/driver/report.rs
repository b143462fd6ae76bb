//! Reports on the daemon's state: `bulkhead status` (services, instances,
//! groups), what `/metrics` needs, the one-line summary systemd shows, and
//! the health probe totals.
//!
//! This file reads state, never changes it: no `&mut self`, no steps, no
//! jobs. Cgroup files are read only for `status` (a run too young for the
//! sweep's sample, the groups); `/metrics` leaves its figures to the server,
//! off the loop.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::{Daemon, Inst, Svc, probe_target};
use crate::api::proto::{
    DaemonInfo, GroupMetrics, GroupStatus, InstanceMetrics, InstanceStatus, MetricsReply,
    ServiceMetrics, ServiceStatus, StatusReply,
};
use crate::cgroup::sampler::Sampler;
use crate::cgroup::{self, stats};
use crate::config::model::Service;
use crate::exit::describe_exit;
use crate::supervisor::{Mono, State, StateKind};

impl Daemon {
    fn daemon_info(&self) -> DaemonInfo {
        DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            config: self.config_path.clone(),
            cgroup_root: self.tree.root.clone(),
            uptime_secs: self.epoch.elapsed().as_secs_f64(),
        }
    }

    pub(super) fn status(&self, only: Option<&str>) -> StatusReply {
        let now = self.now();
        let services = self
            .svcs
            .iter()
            .filter(|s| only.is_none_or(|o| o == s.cfg.name))
            .map(|s| ServiceStatus {
                name: s.cfg.name.clone(),
                group: s.cfg.member_of.clone(),
                autostart: s.cfg.autostart,
                isolation: s.cfg.isolation.map(|l| l.to_string()),
                instances: s
                    .insts
                    .iter()
                    .filter(|i| !i.vacant)
                    .map(|i| instance_status(i, &s.cfg, &self.sampler, now))
                    .collect(),
            })
            .collect();
        StatusReply {
            daemon: self.daemon_info(),
            services,
            groups: self.group_status(),
        }
    }

    /// Each group's cgroup: usage of all its services against its limits.
    fn group_status(&self) -> Vec<GroupStatus> {
        self.cfg
            .groups
            .iter()
            .map(|g| {
                let dir = self.tree.group_dir(&g.name);
                let oom_kills = cgroup::read(&dir, "memory.events")
                    .ok()
                    .and_then(|t| stats::parse_memory_events(&t).ok())
                    .map(|e| e.oom_kill);
                GroupStatus {
                    name: g.name.clone(),
                    services: self
                        .cfg
                        .services
                        .iter()
                        .filter(|s| s.member_of.as_deref() == Some(&g.name))
                        .map(|s| s.name.clone())
                        .collect(),
                    cpu_usage_usec: cgroup::read(&dir, "cpu.stat")
                        .ok()
                        .and_then(|t| stats::parse_cpu_stat(&t).ok())
                        .map(|c| c.usage_usec),
                    memory_current: read_u64(&dir, "memory.current"),
                    memory_max: g.resources.memory.max.and_then(|m| m.bytes()),
                    pids_current: read_u64(&dir, "pids.current"),
                    pids_max: g.resources.pids_max,
                    oom_kills,
                    cgroup: dir,
                }
            })
            .collect()
    }

    /// What the daemon knows for `/metrics`; the server adds the cgroup
    /// figures (file reads stay off this loop).
    pub(super) fn metrics(&self) -> MetricsReply {
        let services = self
            .svcs
            .iter()
            .map(|s| ServiceMetrics {
                name: s.cfg.name.clone(),
                group: s.cfg.member_of.clone(),
                isolation: s.cfg.isolation.map(|i| i.to_string()),
                starts: s.totals.starts,
                restarts: s.totals.restarts.clone(),
                violations: s.totals.violations.clone(),
                health_checks: s.health_totals(),
                instances: s
                    .insts
                    .iter()
                    .filter(|i| !i.vacant)
                    // No cgroup reads here: the server reads the figures
                    // off this loop.
                    .map(|i| {
                        let v = View::of(i, &s.cfg);
                        InstanceMetrics {
                            instance: v.instance,
                            state: v.state.into(),
                            pid: v.pid,
                            healthy: v.healthy,
                            restarts: v.restarts,
                            violations: v.violations,
                            uptime_secs: v.uptime_secs,
                            cgroup: v.cgroup,
                            memory_max: v.memory_max,
                            pids_max: v.pids_max,
                            figures: None,
                        }
                    })
                    .collect(),
            })
            .collect();
        MetricsReply {
            daemon: self.daemon_info(),
            services,
            groups: self
                .cfg
                .groups
                .iter()
                .map(|g| GroupMetrics {
                    name: g.name.clone(),
                    cgroup: self.tree.group_dir(&g.name),
                    memory_max: g.resources.memory.max.and_then(|m| m.bytes()),
                    pids_max: g.resources.pids_max,
                    figures: None,
                })
                .collect(),
            launch: self.launch_metrics(),
        }
    }

    /// `3 running, 1 backoff, 1 failed`.
    pub(super) fn summary(&self) -> String {
        let mut counts: Vec<(StateKind, usize)> = Vec::new();
        for i in self.svcs.iter().flat_map(|s| &s.insts) {
            let k = i.machine.state().kind();
            match counts.iter_mut().find(|(c, _)| *c == k) {
                Some((_, n)) => *n += 1,
                None => counts.push((k, 1)),
            }
        }
        if counts.is_empty() {
            return "no services".into();
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Svc {
    fn health_totals(&self) -> BTreeMap<String, u64> {
        let mut t = self.totals.probes_gone;
        for i in &self.insts {
            t[0] += i.probes[0].load(Ordering::Relaxed);
            t[1] += i.probes[1].load(Ordering::Relaxed);
        }
        if self.cfg.health.is_none() {
            return BTreeMap::new();
        }
        BTreeMap::from([("pass".to_string(), t[0]), ("fail".to_string(), t[1])])
    }
}

/// What `status` and `/metrics` both say of an instance, taken once from
/// its record: the two replies differ in what they add, never in these.
struct View {
    instance: String,
    state: &'static str,
    pid: Option<i32>,
    healthy: Option<bool>,
    restarts: u32,
    violations: BTreeMap<String, u64>,
    uptime_secs: Option<f64>,
    cgroup: std::path::PathBuf,
    /// The configured limits (`None`: none).
    memory_max: Option<u64>,
    pids_max: Option<u64>,
}

impl View {
    fn of(i: &Inst, svc: &Service) -> View {
        View {
            instance: i.id.clone(),
            state: i.machine.state().kind().as_str(),
            pid: i.live_pid(),
            healthy: i.healthy(),
            restarts: i.starts.saturating_sub(1),
            violations: i.violation_counts.clone(),
            uptime_secs: i.uptime_secs(),
            cgroup: i.paths.cgroup.clone(),
            memory_max: svc.resources.memory.max.and_then(|m| m.bytes()),
            pids_max: svc.resources.pids_max,
        }
    }
}

fn instance_status(i: &Inst, svc: &Service, sampler: &Sampler, now: Mono) -> InstanceStatus {
    let state = i.machine.state();
    let v = View::of(i, svc);
    let dir = &v.cgroup;
    let sample = i
        .mon
        .as_ref()
        .and_then(|m| m.sample)
        .and_then(|id| sampler.get(id))
        .map(|s| &s.stats)
        .filter(|s| s.memory_current.is_some() || s.cpu.is_some());
    let live = i.pid.is_some() || matches!(state, State::Running { .. } | State::Stopping { .. });
    let next = match state {
        State::Backoff { until } | State::Failed { until, .. } => {
            Some(until.saturating_sub(now).as_secs_f64())
        }
        _ => None,
    };
    InstanceStatus {
        instance: v.instance,
        state: v.state.into(),
        pid: v.pid,
        uptime_secs: v.uptime_secs,
        restarts: v.restarts,
        healthy: v.healthy,
        adopted: i.adopted,
        cgroup: dir.clone(),
        // From the sweep's latest sample; a run too young for one reads
        // its files.
        cpu_usage_usec: sample
            .and_then(|s| s.cpu.as_ref().map(|c| c.usage_usec))
            .or_else(|| {
                live.then(|| cgroup::read(dir, "cpu.stat").ok())
                    .flatten()
                    .and_then(|t| stats::parse_cpu_stat(&t).ok())
                    .map(|c| c.usage_usec)
            }),
        memory_current: sample
            .and_then(|s| s.memory_current)
            .or_else(|| live.then(|| read_u64(dir, "memory.current")).flatten()),
        // A limit is shown for a run it applies to.
        memory_max: v.memory_max.filter(|_| live),
        pids_current: sample
            .and_then(|s| s.pids_current)
            .or_else(|| live.then(|| read_u64(dir, "pids.current")).flatten()),
        pids_max: v.pids_max.filter(|_| live),
        last_exit: i.machine.last_exit().map(describe_exit),
        last_event: i.last_event.clone(),
        next_attempt_secs: next,
        last_restart_reason: i
            .machine
            .last_reason()
            .filter(|_| i.starts > 1)
            .map(|r| r.to_string()),
        restart_reasons: i.restart_reasons.clone(),
        violation_counts: v.violations,
        violations: i.violations.iter().cloned().collect(),
        memory_high_throttled: i.mon.as_ref().and_then(|m| m.watcher.throttled_high()),
        health_check: probe_target(svc, i.port).and_then(|t| {
            svc.health
                .as_ref()
                .map(|h| format!("{t} every {}", h.interval))
        }),
        probes_passed: i.probes[0].load(Ordering::Relaxed),
        probes_failed: i.probes[1].load(Ordering::Relaxed),
    }
}

pub(super) fn read_u64(dir: &std::path::Path, file: &'static str) -> Option<u64> {
    cgroup::read(dir, file)
        .ok()
        .and_then(|t| match stats::parse_limit(file, &t).ok()? {
            stats::Limit::Value(v) => Some(v),
            stats::Limit::Max => None,
        })
}
