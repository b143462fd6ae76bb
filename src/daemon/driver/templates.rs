//! Template instances once launched: `bulkhead list` and `terminate`, the
//! idle reaper and vacating the slot of a stopped instance. How an instance is launched and admitted is
//! `launch.rs`; this file never creates an instance, it only lists, stops
//! and frees them.

use std::time::{Duration, Instant};

use super::launch::{LaunchKey, answer, error};
use super::{Daemon, Inst, level_event, now_stamp};
use crate::api::proto::{ActionReply, ApiError, EventRecord, ListReply, ListedInstance, Response};
use crate::error::{Code, Diagnostic};
use crate::supervisor::{Event, Level, StateKind};

impl Daemon {
    /// `bulkhead list`: template instances.
    pub(super) fn list(&self, service: Option<&str>) -> Result<ListReply, ApiError> {
        if let Some(s) = service {
            self.template(s, "list")?;
        }
        let now = Instant::now();
        let instances = self
            .svcs
            .iter()
            .filter(|s| s.cfg.isolation.is_some())
            .filter(|s| service.is_none_or(|n| n == s.cfg.name))
            .flat_map(|s| {
                s.insts
                    .iter()
                    .filter(|i| !i.vacant)
                    .map(move |i| ListedInstance {
                        service: s.cfg.name.clone(),
                        isolation: s.cfg.isolation.map(|l| l.to_string()).unwrap_or_default(),
                        instance: i.id.clone(),
                        namespace: i.key.namespace.clone(),
                        session: i.key.session.clone(),
                        state: i.machine.state().kind().as_str().into(),
                        pid: i.live_pid(),
                        port: i.port,
                        healthy: i.healthy(),
                        uptime_secs: i.uptime_secs(),
                        launches: i.launches,
                        idle_secs: now.saturating_duration_since(i.touched).as_secs_f64(),
                        idle_timeout_secs: s.cfg.idle_timeout.map(|d| d.0.as_secs_f64()),
                        cgroup: i.paths.cgroup.clone(),
                    })
            })
            .collect();
        Ok(ListReply { instances })
    }

    /// `bulkhead terminate SERVICE INSTANCE [--grace D]`: stop it (the
    /// stop signal, then `cgroup.kill` after the grace) and remove it.
    pub(super) fn terminate(
        &mut self,
        service: &str,
        instance: &str,
        grace: Option<Duration>,
    ) -> Result<Response, ApiError> {
        let si = self.template(service, "terminate")?;
        let Some(idx) = self.instance_of(si, instance) else {
            let known: Vec<String> = self.svcs[si]
                .insts
                .iter()
                .filter(|i| !i.vacant)
                .map(|i| i.id.clone())
                .collect();
            let d = Diagnostic::new(
                Code::UnknownInstance,
                format!("{service} has no instance {instance:?}"),
            )
            .context("service", service)
            .suggest(if known.is_empty() {
                format!("{service} has no instances now")
            } else {
                format!(
                    "its instances: {}; `bulkhead list {service}` shows them",
                    known.join(", ")
                )
            });
            return Err(error(404, d));
        };
        let cfg = self.svcs[si].cfg.clone();
        let mut stop = cfg.stop.clone();
        if let Some(g) = grace {
            stop.grace = crate::config::units::Dur(g);
        }
        let has_health = super::probe_target(&cfg, self.svcs[si].insts[idx].port).is_some();
        let inst = &mut self.svcs[si].insts[idx];
        inst.machine.reconfigure(&cfg.restart, &stop, has_health);
        inst.retire = true;
        self.step(si, idx, Event::Stop);
        // Launches waiting for it learn at once (launch_progress only
        // answers them once it is stopped).
        let waiters = std::mem::take(&mut self.svcs[si].insts[idx].waiters);
        if !waiters.is_empty() {
            self.launches.count(service, "failed", waiters.len());
            let d = Diagnostic::new(
                Code::LaunchFailed,
                format!("{service}/{instance} was terminated while starting"),
            )
            .suggest("launch it again to get a new instance");
            for w in waiters {
                answer(w, Err(error(502, d.clone())));
            }
        }
        self.launch_progress(si, idx);
        Ok(Response::Action(ActionReply {
            service: service.to_string(),
            message: format!(
                "terminating {service}/{instance}: {} then SIGKILL after {}",
                stop.signal, stop.grace
            ),
        }))
    }

    /// From the sweep: templates' instances no launch touched for their
    /// `idle_timeout` are stopped and removed.
    pub(super) fn reap_idle(&mut self) {
        for si in 0..self.svcs.len() {
            let Some(limit) = self.svcs[si].cfg.idle_timeout.map(|d| d.0) else {
                continue;
            };
            if self.svcs[si].cfg.isolation.is_none() || self.svcs[si].phase.leaving() {
                continue;
            }
            for idx in 0..self.svcs[si].insts.len() {
                let i = &self.svcs[si].insts[idx];
                let idle = i.touched.elapsed();
                if i.vacant || i.retire || !i.waiters.is_empty() || i.admitted || idle < limit {
                    continue;
                }
                let name = self.svcs[si].cfg.name.clone();
                let message = format!(
                    "idle: no launch for {} (idle_timeout {}): stopping it",
                    crate::config::units::Dur(Duration::from_secs(idle.as_secs())),
                    crate::config::units::Dur(limit)
                );
                level_event(Level::Info, &name, &i.id, None, &message);
                let e = EventRecord {
                    service: name,
                    instance: i.id.clone(),
                    kind: "idle".into(),
                    message: message.clone(),
                    ..EventRecord::default()
                };
                self.journal.push(e);
                let inst = &mut self.svcs[si].insts[idx];
                inst.last_event = Some(format!("{} {message}", now_stamp()));
                inst.retire = true;
                self.step(si, idx, Event::Stop);
            }
        }
    }

    /// Retired template instances that stopped give up their slot.
    pub(super) fn vacate_stopped(&mut self) {
        for s in &mut self.svcs {
            if s.cfg.isolation.is_none() {
                continue;
            }
            for i in &mut s.insts {
                if i.vacant || !i.retire || i.machine.state().kind() != StateKind::Stopped {
                    continue;
                }
                s.totals.probes_gone[0] += i.probes[0].load(std::sync::atomic::Ordering::Relaxed);
                s.totals.probes_gone[1] += i.probes[1].load(std::sync::atomic::Ordering::Relaxed);
                vacate(i);
            }
        }
    }

    /// `name` if it is a template; `what` names the request for the error.
    pub(super) fn template(&self, name: &str, what: &str) -> Result<usize, ApiError> {
        let si = self.lookup(name)?;
        if self.svcs[si].cfg.isolation.is_some() {
            return Ok(si);
        }
        let d = Diagnostic::new(
            Code::NotATemplate,
            format!("{name} is a regular service, not a template: there is nothing to {what}"),
        )
        .context("service", name)
        .suggest(format!(
            "give {name} `isolation: none | namespace | session` to launch instances of it on \
             demand; regular services are run with `bulkhead start` / `stop`"
        ));
        Err(error(409, d))
    }
}

/// A slot with no instance: fields of the gone instance dropped, the run id
/// moved on.
fn vacate(i: &mut Inst) {
    i.vacant = true;
    i.run_id += 1;
    i.retire = false;
    i.pid = None;
    i.pidfd = None;
    i.mon = None;
    if let Some(t) = i.timer.take() {
        t.abort();
    }
    if let Some(h) = i.health.take() {
        h.abort();
    }
    i.waiters.clear();
    i.admitted = false;
    i.key = LaunchKey::default();
    i.violations.clear();
    i.violation_counts.clear();
    i.restart_reasons.clear();
    i.last_event = None;
}
