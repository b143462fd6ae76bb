//! The driver's side of a reload (`daemon/reload.rs` reads, validates and
//! diffs the config; [`crate::supervisor::reload`] plans) and of adoption at
//! start: applying a plan to the services (added, removed, moved, resized,
//! live limits, new rules), taking over the live instances of an earlier
//! run, and dropping what a reload retired once it has stopped. Also the
//! accessors `daemon/mod.rs` and `daemon/reload.rs` use.
//!
//! This file changes the set of services and instances and their config,
//! writes live limits to running cgroups and removes a retired service's
//! cgroup tree; an instance's run it changes only through `step` (it never
//! spawns or signals one itself), and it owns no state of its own.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::super::job;
use super::{Daemon, Inst, Msg, Svc, launch, level_event, probe_target};
use crate::cgroup::limits;
use crate::cgroup::subtree::Subtree;
use crate::config::model::Config;
use crate::supervisor::fleet::{self, Cmd, SvcEvent};
use crate::supervisor::{Event, Level, StateKind};

// For the adoption and reload code in `daemon` (mod.rs, reload.rs).
impl Daemon {
    pub(in crate::daemon) fn cfg(&self) -> &Arc<Config> {
        &self.cfg
    }

    pub(in crate::daemon) fn tree(&self) -> &Subtree {
        &self.tree
    }

    pub(in crate::daemon) fn mount(&self) -> &std::path::Path {
        &self.mount
    }

    pub(in crate::daemon) fn reloads(&mut self) -> &mut super::super::reload::Reloads {
        &mut self.reloads
    }

    pub(in crate::daemon) fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    pub(in crate::daemon) fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    pub(in crate::daemon) fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Takes over a live instance of an earlier run (its record matched).
    /// `config_changed`: its spawn settings differ from the config now, so
    /// it is restarted to apply them.
    pub(in crate::daemon) fn adopt_instance(
        &mut self,
        rec: &crate::supervisor::record::InstanceRecord,
        pidfd: OwnedFd,
        config_changed: bool,
    ) {
        let Some(si) = self.find(&rec.service) else {
            return;
        };
        let idx = if self.svcs[si].cfg.isolation.is_some() {
            // A template's instance: a slot of its own, its port and key
            // as its record has them; idle from now.
            let svc = self.svcs[si].cfg.clone();
            let mut inst = self.new_inst(&svc, rec.instance.clone());
            if rec.port != 0 {
                inst.port = rec.port;
            }
            inst.key = launch::LaunchKey {
                namespace: rec.namespace.clone(),
                session: rec.session.clone(),
            };
            self.svcs[si].insts.push(inst);
            self.svcs[si].insts.len() - 1
        } else {
            match rec.instance.parse::<usize>() {
                Ok(idx) if idx < self.svcs[si].insts.len() => idx,
                _ => return,
            }
        };
        let inst = &mut self.svcs[si].insts[idx];
        // The process was given this port (BULKHEAD_PORT); its probes and
        // the status keep saying so.
        if rec.port != 0 {
            inst.port = rec.port;
        }
        inst.run_id += 1;
        inst.starts = rec.restarts.saturating_add(1);
        self.watch(si, idx, rec.pid, pidfd, true);
        let inst = &mut self.svcs[si].insts[idx];
        inst.adopted = true;
        // Uptime counts from the original start.
        let age = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(Duration::from_millis(rec.started_at_unix_ms));
        inst.since = Instant::now().checked_sub(age).or(inst.since);
        let now = self.now();
        let actions = self.svcs[si].insts[idx].machine.adopt(now, rec.pid);
        self.execute(si, idx, actions);
        if config_changed {
            level_event(
                Level::Info,
                &rec.service,
                &rec.instance,
                None,
                "its settings changed while the daemon was down: restarting it",
            );
            self.step(si, idx, Event::Restart(crate::supervisor::Reason::Reload));
        }
    }

    /// Applies a validated new config (a reload); returns one line per
    /// change, one per part that could not be applied, and the number of
    /// live limit writes started on the blocking pool: each comes back as
    /// [`Msg::LiveLimits`], its failure to be added to the reply.
    pub(in crate::daemon) fn apply_reload(
        &mut self,
        new: Config,
        plan: &crate::supervisor::reload::ReloadPlan,
    ) -> (Vec<String>, Vec<String>, usize) {
        let mut lines = plan.describe();
        let mut failures = Vec::new();
        let mut writes = 0;
        let mut new = new;
        if !plan.supervisor.is_empty() {
            // Supervisor settings are fixed for the daemon's life.
            new.supervisor = self.cfg.supervisor.clone();
            lines.push("supervisor settings changed: they apply at the next daemon start".into());
        }
        let new = Arc::new(new);
        for g in new
            .groups
            .iter()
            .filter(|g| plan.groups.iter().any(|c| c.name == g.name))
        {
            if let Err(e) = super::super::apply_group(&self.tree, g, &self.controllers) {
                tracing::error!("group {}: {}", g.name, e.to_string().trim_end());
                let why: Vec<String> = e
                    .iter()
                    .map(|d| match &d.cause {
                        Some(c) => format!("{}: {c}", d.message),
                        None => d.message.clone(),
                    })
                    .collect();
                failures.push(format!(
                    "group {}: limits NOT applied: {}",
                    g.name,
                    why.join("; ")
                ));
            }
        }
        self.cfg = new.clone();
        for name in &plan.removed {
            if let Some(si) = self.find(name) {
                let cmd = fleet::apply(&mut self.svcs, si, SvcEvent::Removed);
                self.run_cmds(cmd.map(|c| (si, c)).into_iter().collect());
            }
        }
        for name in &plan.added {
            if let Some(svc) = new.service(name) {
                let s = self.new_svc(svc.clone());
                self.svcs.push(s);
                if svc.autostart {
                    self.want_start(name);
                }
            }
        }
        for ch in &plan.changed {
            let (Some(si), Some(svc)) = (self.find(&ch.name), new.service(&ch.name)) else {
                continue;
            };
            // A new cgroup path, or instances keyed anew (a template became
            // a regular service or the other way).
            let was_template = self.svcs[si].cfg.isolation.is_some();
            let moved = ch.respawn.iter().any(|r| r == "member_of")
                || was_template != svc.isolation.is_some();
            if moved {
                // A new cgroup path: stop here, start again there.
                let up = self.svcs[si]
                    .insts
                    .iter()
                    .any(|i| i.machine.state().kind() != StateKind::Stopped);
                self.svcs[si].next = Some(Box::new(svc.clone()));
                let cmd = fleet::apply(&mut self.svcs, si, SvcEvent::Moved { up });
                self.run_cmds(cmd.map(|c| (si, c)).into_iter().collect());
                continue;
            }
            let svc = Arc::new(svc.clone());
            self.svcs[si].cfg = svc.clone();
            if !ch.live.is_empty() {
                match limits::resolve_devices(&svc.resources) {
                    Ok(devices) => writes += self.write_live_limits(si, &ch.live, &devices, writes),
                    Err(e) => {
                        tracing::error!(service = %svc.name, "live limits: {e}");
                        failures.push(format!("{}: live limits NOT applied: {e}", svc.name));
                    }
                }
            }
            // The rules may have changed: watch running instances afresh
            // (counters from their current values).
            for idx in 0..self.svcs[si].insts.len() {
                self.rewatch(si, idx);
            }
            let has_health = |i: &Inst| probe_target(&svc, i.port).is_some();
            for i in &mut self.svcs[si].insts {
                let h = has_health(i);
                i.machine.reconfigure(&svc.restart, &svc.stop, h);
            }
            if let Some((_, n)) = ch.instances.filter(|_| svc.isolation.is_none())
                && fleet::apply(&mut self.svcs, si, SvcEvent::Resize) == Some(Cmd::Resize)
            {
                self.resize(si, n as usize);
            }
            if !ch.respawn.is_empty() {
                for idx in 0..self.svcs[si].insts.len() {
                    let k = self.svcs[si].insts[idx].machine.state().kind();
                    if k != StateKind::Stopped {
                        self.step(si, idx, Event::Restart(crate::supervisor::Reason::Reload));
                    }
                }
            }
        }
        (lines, failures, writes)
    }

    /// Writes the live limits `live` names to every instance of service
    /// `si` that is not stopped, each on the blocking pool after the
    /// instance's earlier jobs. Returns how many writes it started; `first`
    /// is the reload's count so far (their order in the reply).
    fn write_live_limits(
        &mut self,
        si: usize,
        live: &[crate::supervisor::reload::LimitChange],
        devices: &[limits::DevNum],
        first: usize,
    ) -> usize {
        let svc = self.svcs[si].cfg.clone();
        // Limits that went back to unlimited first, then the new values.
        // Only the files this reload changes: a reset of a file the
        // cgroup never had (cpuset.* without cpuset) fails with EACCES
        // and would stop every write after it.
        let resets: Arc<[limits::Write]> = limits::render_reset(&svc.resources)
            .into_iter()
            .filter(|w| live.iter().any(|c| c.file == w.file))
            .collect();
        let devices: Arc<[limits::DevNum]> = devices.into();
        let mut n = 0;
        for i in &self.svcs[si].insts {
            if i.machine.state().kind() == StateKind::Stopped {
                continue;
            }
            let (dir, resets, devices, svc) = (
                i.paths.cgroup.clone(),
                resets.clone(),
                devices.clone(),
                svc.clone(),
            );
            let (order, name, instance) = (first + n, svc.name.clone(), i.id.clone());
            n += 1;
            job::run_after(
                vec![i.ops.clone()],
                Vec::new(),
                self.tx.clone(),
                move || job::live_limits(&dir, &resets, &svc.resources, &devices),
                move |result| Msg::LiveLimits {
                    order,
                    svc: name,
                    instance,
                    result: result.and_then(|r| r),
                },
            );
        }
        self.jobs += n;
        n
    }

    /// A live limit write of a reload came back: its failure is logged and
    /// goes to the reload's reply, which is sent once the last one is back.
    pub(super) fn live_limits_written(
        &mut self,
        order: usize,
        svc: &str,
        instance: &str,
        result: Result<(), String>,
    ) {
        let failure = result.err().map(|e| {
            tracing::error!(service = %svc, instance = %instance, "live limits: {e}");
            format!("{svc}/{instance}: live limits NOT applied: {e}")
        });
        super::super::reload::live_written(self, order, failure);
    }

    /// A new replica count: new instances start if the service is up;
    /// extra ones stop and go once stopped.
    fn resize(&mut self, si: usize, n: usize) {
        let len = self.svcs[si].insts.len();
        if n > len {
            let up = self.svcs[si]
                .insts
                .iter()
                .any(|i| i.machine.state().kind() != StateKind::Stopped);
            let svc = self.svcs[si].cfg.clone();
            for k in len..n {
                let inst = self.new_inst(&svc, k.to_string());
                self.svcs[si].insts.push(inst);
                if up {
                    self.step(si, k, Event::Start);
                }
            }
        } else {
            for idx in n..len {
                self.svcs[si].insts[idx].retire = true;
                self.step(si, idx, Event::Stop);
            }
        }
    }

    /// Drops retired instances once stopped (services that a reload removed
    /// or moved are the fleet table's: `Cmd::Drop`, `Cmd::Recreate`).
    pub(super) fn collect_retired(&mut self) {
        self.vacate_stopped();
        for s in &mut self.svcs {
            while s
                .insts
                .last()
                .is_some_and(|i| i.retire && i.machine.state().kind() == StateKind::Stopped)
            {
                s.insts.pop();
            }
        }
    }

    /// A dropped service's cgroup tree, and the locks of its instances'
    /// jobs (the removal waits for them): for [`Self::remove_tree`].
    pub(super) fn tree_of(
        &self,
        s: &Svc,
    ) -> (std::path::PathBuf, Vec<Arc<tokio::sync::Mutex<()>>>) {
        let dir = self
            .tree
            .service_dir(s.cfg.member_of.as_deref(), &s.cfg.name);
        (dir, s.insts.iter().map(|i| i.ops.clone()).collect())
    }

    /// Removes a retired service's cgroup tree on the blocking pool, after
    /// the jobs its instances queued (`turns`: their removals). Instances
    /// that live under it again (a moved service back at the same path)
    /// wait for it: their locks are taken now, before any job of theirs.
    pub(super) fn remove_tree(
        &mut self,
        dir: std::path::PathBuf,
        mut turns: Vec<Arc<tokio::sync::Mutex<()>>>,
    ) {
        let mut held = Vec::new();
        for i in self.svcs.iter().flat_map(|s| &s.insts) {
            if i.paths.cgroup.starts_with(&dir) {
                match i.ops.clone().try_lock_owned() {
                    Ok(g) => held.push(g),
                    Err(_) => turns.push(i.ops.clone()),
                }
            }
        }
        self.jobs += 1;
        job::run_after(
            turns,
            held,
            self.tx.clone(),
            move || job::remove_tree(&dir),
            |result| Msg::Removed {
                result: result.and_then(|r| r),
            },
        );
    }
}
