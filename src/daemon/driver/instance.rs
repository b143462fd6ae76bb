//! Instance effects: making services and instances (each with a free port),
//! the spawn and removal jobs on the blocking pool, and what comes back
//! from them (a run started, a spawn failed, the init exited and how).
//!
//! `step` feeds an event to an instance's machine and `execute` carries
//! out the actions it returns; the results come back as events. it never
//! decides a transition itself, and it does not watch a run (watch.rs) or
//! decide when a service starts (order.rs).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use super::super::job::{self, Paths, SpawnJob, Started};
use super::super::monitor as mon;
use super::{Daemon, Inst, Msg, Svc, Totals, launch, level_event, now_stamp, probe_target};
use crate::api::proto::EventRecord;
use crate::cgroup::kill;
use crate::config::model::Service;
use crate::error::{Code, Diagnostics};
use crate::exit::ExitRecord;
use crate::monitor::Verdict as Ruling;
use crate::supervisor::fleet::Phase;
use crate::supervisor::{Action, Event, Exit, Level, Machine, State, StateKind};

impl Daemon {
    /// Feeds one event to an instance's machine and executes the actions.
    pub(super) fn step(&mut self, si: usize, idx: usize, event: Event) {
        let now = self.now();
        let rand = self.rand();
        let name = self.svcs[si].cfg.name.clone();
        let inst = &mut self.svcs[si].insts[idx];
        let before = inst.machine.state().kind();
        let actions = inst.machine.step(now, event, rand);
        let after = inst.machine.state().kind();
        if after != before {
            // The step's own words: its most important log line.
            let said = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Log {
                        level,
                        code,
                        message,
                    } if *level >= Level::Info => Some((*level, *code, message.clone())),
                    _ => None,
                })
                .max_by_key(|(level, code, _)| (*level, code.is_some()));
            let reason = match after {
                StateKind::Backoff | StateKind::Failed | StateKind::Starting => {
                    inst.machine.reason().filter(|_| inst.starts > 0)
                }
                _ => None,
            };
            let e = EventRecord {
                service: name,
                instance: inst.id.clone(),
                kind: "state".into(),
                state: Some(after.as_str().into()),
                reason: reason.map(|r| r.to_string()),
                code: said
                    .as_ref()
                    .and_then(|(_, c, _)| c.map(|c| c.as_str().to_string())),
                message: said.map_or_else(|| after.as_str().to_string(), |(_, _, m)| m),
                ..EventRecord::default()
            };
            self.journal.push(e);
        }
        self.execute(si, idx, actions);
        if self.svcs[si].cfg.isolation.is_some() {
            self.launch_progress(si, idx);
        }
    }

    pub(super) fn execute(&mut self, si: usize, idx: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Spawn => self.spawn(si, idx),
                Action::Signal { pid, signal } => {
                    let inst = &self.svcs[si].insts[idx];
                    let sent = match (
                        &inst.pidfd,
                        rustix::process::Signal::from_named_raw(signal.0 as i32),
                    ) {
                        (Some(fd), Some(sig)) => rustix::process::pidfd_send_signal(fd, sig)
                            .map_err(std::io::Error::from),
                        _ => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal.0)
                            .map_err(std::io::Error::from),
                    };
                    if let Err(e) = sent {
                        tracing::debug!(service = %self.svcs[si].cfg.name, "signal {signal}: {e}");
                    }
                }
                Action::KillCgroup => {
                    let inst = &self.svcs[si].insts[idx];
                    level_event(
                        Level::Warn,
                        &self.svcs[si].cfg.name,
                        &inst.id,
                        None,
                        "grace period over: killing every process in the cgroup",
                    );
                    if let Err(e) = kill::kill(&inst.paths.cgroup) {
                        tracing::error!("cgroup.kill: {e}");
                    }
                }
                Action::RemoveCgroup => self.remove(si, idx),
                Action::ArmTimer(at) => {
                    let (svc, tx) = (self.svcs[si].cfg.name.clone(), self.tx.clone());
                    let when = tokio::time::Instant::from_std(self.epoch + at);
                    let inst = &mut self.svcs[si].insts[idx];
                    if let Some(t) = inst.timer.take() {
                        t.abort();
                    }
                    inst.timer = Some(tokio::spawn(async move {
                        tokio::time::sleep_until(when).await;
                        let _ = tx.send(Msg::Step {
                            svc,
                            idx,
                            run_id: None,
                            event: Event::Timer,
                            note: None,
                        });
                    }));
                }
                Action::NotifyReady => {}
                Action::Log {
                    level,
                    code,
                    message,
                } => {
                    let s = &mut self.svcs[si];
                    let inst = &mut s.insts[idx];
                    level_event(level, &s.cfg.name, &inst.id, code, &message);
                    if level >= Level::Warn {
                        let code = code.map(|c| format!("{} ", c.as_str())).unwrap_or_default();
                        inst.last_event = Some(format!("{} {code}{message}", now_stamp()));
                    }
                }
            }
        }
    }

    pub(super) fn new_svc(&mut self, svc: Service) -> Svc {
        let svc = Arc::new(svc);
        // A template's instances come with launches.
        let replicas = if svc.isolation.is_some() {
            0
        } else {
            svc.instances
        };
        // One at a time, each seeing its siblings' ports: the service is not
        // registered yet, so `free_port` alone would not.
        let mut insts: Vec<Inst> = Vec::new();
        for i in 0..replicas {
            let inst = self.new_inst_among(&svc, i.to_string(), &insts);
            insts.push(inst);
        }
        Svc {
            cfg: svc,
            insts,
            phase: Phase::Idle,
            next: None,
            totals: Totals::default(),
        }
    }

    pub(super) fn new_inst(&mut self, svc: &Service, id: String) -> Inst {
        self.new_inst_among(svc, id, &[])
    }

    /// [`Self::new_inst`], with `siblings` (instances not registered yet)
    /// holding ports too.
    fn new_inst_among(&mut self, svc: &Service, id: String, siblings: &[Inst]) -> Inst {
        let port = self.free_port(siblings);
        Inst {
            paths: Paths::new(&self.cfg, &self.tree, svc, &id),
            machine: Machine::new(&svc.restart, &svc.stop, probe_target(svc, port).is_some()),
            id,
            run_id: 0,
            pid: None,
            pidfd: None,
            adopted: false,
            since: None,
            starts: 0,
            last_event: None,
            timer: None,
            health: None,
            ops: Arc::new(tokio::sync::Mutex::new(())),
            port,
            retire: false,
            mon: None,
            violations: VecDeque::new(),
            violation_counts: BTreeMap::new(),
            restart_reasons: BTreeMap::new(),
            probes: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
            vacant: false,
            launches: 0,
            touched: Instant::now(),
            waiters: Vec::new(),
            admitted: false,
            key: launch::LaunchKey::default(),
        }
    }

    /// The lowest port of `supervisor.ports` no instance holds, registered
    /// or in `also` (the first of the range when every one is taken).
    fn free_port(&self, also: &[Inst]) -> u16 {
        let used: BTreeSet<u16> = self
            .svcs
            .iter()
            .flat_map(|s| s.insts.iter())
            .chain(also)
            .filter(|i| !i.vacant)
            .map(|i| i.port)
            .collect();
        lowest_free_port(self.cfg.supervisor.ports, &used)
    }

    pub(super) fn spawn(&mut self, si: usize, idx: usize) {
        let cfg = self.cfg.clone();
        let s = &mut self.svcs[si];
        let inst = &mut s.insts[idx];
        if inst.starts > 0
            && let Some(r) = inst.machine.last_reason()
        {
            *inst
                .restart_reasons
                .entry(r.kind().to_string())
                .or_default() += 1;
            *s.totals.restarts.entry(r.kind().to_string()).or_default() += 1;
        }
        s.totals.starts += 1;
        inst.run_id += 1;
        inst.starts += 1;
        inst.adopted = false;
        let mut env = vec![
            ("BULKHEAD_SERVICE".to_string(), s.cfg.name.clone()),
            ("BULKHEAD_INSTANCE".to_string(), inst.id.clone()),
            ("BULKHEAD_PORT".to_string(), inst.port.to_string()),
        ];
        if let Some(ns) = &inst.key.namespace {
            env.push(("BULKHEAD_NAMESPACE".to_string(), ns.clone()));
        }
        if let Some(session) = &inst.key.session {
            env.push(("BULKHEAD_SESSION".to_string(), session.clone()));
        }
        if probes_auto_port(&s.cfg) {
            env.push(("HEALTH_PORT".to_string(), inst.port.to_string()));
        }
        let job = SpawnJob {
            cfg,
            svc: s.cfg.clone(),
            tree: self.tree.clone(),
            instance: inst.id.clone(),
            paths: inst.paths.clone(),
            controllers: self.controllers.clone(),
            env,
            init_exe: self.init_exe.clone(),
        };
        let (ops, tx, run_id, svc) = (
            inst.ops.clone(),
            self.tx.clone(),
            inst.run_id,
            s.cfg.name.clone(),
        );
        let restarts = inst.starts.saturating_sub(1);
        let state_dir = self.cfg.supervisor.state_dir.clone();
        self.jobs += 1;
        tokio::spawn(async move {
            let _turn = ops.lock_owned().await;
            let result = tokio::task::spawn_blocking(move || {
                let started = job::spawn(&job)?;
                super::super::write_record(&state_dir, &job, &started, restarts);
                Ok(started)
            })
            .await
            .unwrap_or_else(|e| {
                Err(
                    crate::error::Diagnostic::new(Code::SpawnFailed, format!("spawn job: {e}"))
                        .into(),
                )
            });
            let _ = tx.send(Msg::Spawned {
                svc,
                idx,
                run_id,
                result,
            });
        });
    }

    pub(super) fn remove(&mut self, si: usize, idx: usize) {
        let s = &self.svcs[si];
        let inst = &s.insts[idx];
        let (ops, tx, dir) = (inst.ops.clone(), self.tx.clone(), inst.paths.cgroup.clone());
        let state_dir = self.cfg.supervisor.state_dir.clone();
        let (svc, id) = (s.cfg.name.clone(), inst.id.clone());
        let svc_cfg = s.cfg.clone();
        let cfg = self.cfg.clone();
        self.jobs += 1;
        tokio::spawn(async move {
            let _turn = ops.lock_owned().await;
            let result = tokio::task::spawn_blocking(move || {
                let r = job::remove(&dir);
                // Runtime directories go with the instance, as systemd's.
                crate::sandbox::dirs::remove_runtime(std::path::Path::new("/"), &svc_cfg);
                super::super::remove_record(&state_dir, &svc, &id);
                // A template instance's uid goes back once nothing of the
                // instance can run any more.
                if r.is_ok()
                    && let Err(d) = crate::supervisor::users::release_instance(&cfg, &svc_cfg, &id)
                {
                    tracing::warn!(service = %svc, instance = %id, "{}", d.to_string().trim_end());
                }
                r
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let _ = tx.send(Msg::Removed { result });
        });
    }

    pub(super) fn spawned(
        &mut self,
        svc: &str,
        idx: usize,
        run_id: u64,
        result: Result<Started, Diagnostics>,
    ) {
        let Some(si) = self.current_run(svc, idx, run_id) else {
            return;
        };
        match result {
            Ok(started) => {
                let pid = started.pid;
                self.watch(si, idx, pid, started.pidfd, false);
                self.step(si, idx, Event::Spawned { pid });
            }
            Err(d) => {
                tracing::error!(service = svc, "{}", d.to_string().trim_end());
                self.step(
                    si,
                    idx,
                    Event::SpawnFailed {
                        reason: one_line(&d),
                    },
                );
            }
        }
    }

    pub(super) fn exited(&mut self, svc: &str, idx: usize, run_id: u64) {
        let Some(si) = self.current_run(svc, idx, run_id) else {
            return;
        };
        let inst = &mut self.svcs[si].insts[idx];
        let Some(pidfd) = inst.pidfd.take() else {
            return;
        };
        if let Some(h) = inst.health.take() {
            h.abort();
        }
        // Our own child unless adopted: then waitid can reap it.
        let reaped = if !inst.adopted {
            use rustix::process::{WaitId, WaitIdOptions, waitid};
            waitid(
                WaitId::PidFd(pidfd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            )
            .ok()
            .flatten()
            .and_then(|st| match (st.exit_status(), st.terminating_signal()) {
                (Some(code), _) => Some(ExitRecord::Exited { code }),
                (None, Some(signal)) => Some(ExitRecord::Signaled {
                    signal,
                    core_dumped: false,
                }),
                _ => None,
            })
        } else {
            None
        };
        drop(pidfd);
        let (record, _) = job::exit_record(&inst.paths.status_file, reaped);
        inst.pid = None;
        // The kernel's word on an OOM kill, read before the cgroup goes: the
        // exit may arrive before the inotify wake-up of memory.events.
        let mut oom_kill = false;
        let mut verdicts = Vec::new();
        if let Some(m) = inst.mon.as_mut() {
            let (oom, _) = mon::read_counters(&inst.paths.cgroup);
            let n = oom.unwrap_or(0).max(m.watcher.counters().0);
            oom_kill = n > m.oom_base;
            if let Some(f) = m.watcher.on_exit_oom(self.epoch.elapsed(), n) {
                verdicts.push(Ruling::Fire(f));
            }
        }
        if let Some(m) = inst.mon.take() {
            mon::stop(m, &inst.paths.cgroup, &self.files, &mut self.sampler);
        }
        // Recorded before the exit, which then restarts it by policy (an
        // `oom` rule's stop is carried out first).
        self.act(si, idx, verdicts, true);
        self.step(si, idx, Event::Exited(Exit { record, oom_kill }));
    }
}

impl Inst {
    /// The init's pid while it runs (or is being stopped).
    pub(super) fn live_pid(&self) -> Option<i32> {
        match self.machine.state() {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The health check's verdict while it runs (`None`: none yet, or no check).
    pub(super) fn healthy(&self) -> Option<bool> {
        match self.machine.state() {
            State::Running { healthy, .. } => *healthy,
            _ => None,
        }
    }

    pub(super) fn uptime_secs(&self) -> Option<f64> {
        self.live_pid()
            .and(self.since)
            .map(|s| s.elapsed().as_secs_f64())
    }
}

/// The lowest port of `range` not in `used`; the first of the range when
/// every one is taken.
fn lowest_free_port(range: crate::config::units::PortRange, used: &BTreeSet<u16>) -> u16 {
    (range.first..=range.last)
        .find(|p| !used.contains(p))
        .unwrap_or(range.first)
}

/// Whether `svc`'s health check probes the instance's own port (`port: auto`).
fn probes_auto_port(svc: &Service) -> bool {
    use crate::config::model::Probe;
    use crate::config::schema::ProbePort;
    svc.health.as_ref().is_some_and(|h| match &h.probe {
        Probe::Tcp { port, .. } | Probe::Http { port, .. } => *port == ProbePort::Auto,
        Probe::Exec { .. } => false,
    })
}

/// One line for a state machine reason: the first error's message and
/// context, without the suggestion.
fn one_line(d: &Diagnostics) -> String {
    d.0.first().map_or_else(
        || "unknown error".to_string(),
        |first| {
            let mut s = format!("{}: {}", first.code.as_str(), first.message);
            for (k, v) in &first.context {
                s += &format!(" {k}={v}");
            }
            if let Some(c) = &first.cause {
                s += &format!(" ({c})");
            }
            s
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::PortRange;

    #[test]
    fn the_lowest_free_port_skips_every_held_one() {
        let r = PortRange {
            first: 20000,
            last: 20003,
        };
        let held = |ports: &[u16]| ports.iter().copied().collect::<BTreeSet<u16>>();
        assert_eq!(lowest_free_port(r, &held(&[])), 20000);
        assert_eq!(lowest_free_port(r, &held(&[20000, 20001])), 20002);
        assert_eq!(lowest_free_port(r, &held(&[20000, 20002])), 20001);
        assert_eq!(lowest_free_port(r, &held(&[19999, 20004])), 20000);
        // All taken: the first again (a probe then finds who answers).
        assert_eq!(
            lowest_free_port(r, &held(&[20000, 20001, 20002, 20003])),
            20000
        );
    }
}
