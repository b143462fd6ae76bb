//! Watching a running instance and acting on what the watch sees: its exit
//! (the pidfd, in the reactor), its health probes (a task per run), its
//! monitor (cgroup event files, PSI triggers, the periodic sweep), and the
//! actions of the watch rules that fire (throttle, restore, stop, restart),
//! each recorded as a violation.
//!
//! The rules themselves are pure, in [`crate::monitor`]; the event sources,
//! in `daemon/monitor.rs`. This file only feeds them and carries out their
//! verdicts: it changes an instance's monitor, counters and `memory.high`
//! (written on the blocking pool, recorded when the write is done), and
//! reaches its state machine only through `step`. It does not spawn or
//! remove instances.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::super::job;
use super::super::monitor::{self as mon, Key};
use super::report::read_u64;
use super::{Daemon, Msg, RECENT_VIOLATIONS, level_event, now_stamp, probe_target};
use crate::api::proto::{EventRecord, ViolationStatus};
use crate::cgroup::{self, stats};
use crate::config::schema::Action as WatchAction;
use crate::error::Code;
use crate::health::{self, Compartment, Tracker, Verdict};
use crate::monitor::{Observation, RuleKind, Verdict as Ruling};
use crate::supervisor::{Event, Level};

impl Daemon {
    /// Watches a running instance: its exit through the pidfd, and its
    /// health check when it has one.
    pub(super) fn watch(&mut self, si: usize, idx: usize, pid: i32, pidfd: OwnedFd, adopted: bool) {
        let svc = self.svcs[si].cfg.clone();
        let tx = self.tx.clone();
        let inst = &mut self.svcs[si].insts[idx];
        let run_id = inst.run_id;
        inst.since = Some(Instant::now());
        self.start_monitor(si, idx, adopted);
        let inst = &mut self.svcs[si].insts[idx];
        // The watcher holds its own copy of the pidfd; the instance keeps
        // one for signals and waitid.
        match pidfd.try_clone() {
            Ok(dup) => {
                let (tx, name) = (tx.clone(), svc.name.clone());
                tokio::spawn(async move {
                    wait_readable(dup, &name).await;
                    let _ = tx.send(Msg::Exited {
                        svc: name,
                        idx,
                        run_id,
                    });
                });
            }
            Err(e) => tracing::error!(
                service = %svc.name,
                "cannot duplicate the pidfd ({e}): the instance's exit will go unnoticed"
            ),
        }
        inst.pid = Some(pid);
        inst.pidfd = Some(pidfd);
        if let Some(h) = inst.health.take() {
            h.abort();
        }
        if let (Some(target), Some(hc)) = (probe_target(&svc, inst.port), svc.health.as_ref()) {
            let (interval, timeout) = (hc.interval.0, hc.timeout.0);
            let mut tracker = Tracker::new(hc.failures, hc.start_period.0);
            let started = Instant::now();
            let name = svc.name.clone();
            let probes = inst.probes.clone();
            // The compartment the probes run in: this run's init, cgroup
            // and namespaces, and for an exec probe the service's user and
            // seccomp filter (resolved on the blocking pool).
            let (cfg, svc) = (self.cfg.clone(), svc.clone());
            let instance = health::Instance {
                id: inst.id.clone(),
                port: inst.port,
                pid,
                pidfd: inst.pidfd.as_ref().and_then(|f| f.try_clone().ok()),
                cgroup: inst.paths.cgroup.clone(),
                dynamic_uid: None,
            };
            inst.health = Some(tokio::spawn(async move {
                let comp = tokio::task::spawn_blocking(move || {
                    Compartment::for_instance(&cfg, &svc, instance)
                })
                .await
                .unwrap_or_else(|e| Err(format!("preparing the probe failed: {e}")));
                if let Err(why) = &comp {
                    tracing::error!(service = %name, "health probes cannot run: {why}");
                }
                let mut passed = false;
                let mut last_counted = Instant::now();
                loop {
                    // Quick probes until the first pass, so dependants start
                    // soon; then every `interval`.
                    let wait = if passed {
                        interval
                    } else {
                        interval.min(Duration::from_millis(500))
                    };
                    tokio::time::sleep(wait).await;
                    let r = match &comp {
                        Ok(c) => health::probe(&target, c, timeout).await,
                        Err(why) => Err(why.clone()),
                    };
                    probes[usize::from(r.is_err())].fetch_add(1, Ordering::Relaxed);
                    // The quick probes before the first pass can only bring
                    // good news: failures count at the `interval` pace.
                    if r.is_err() && !passed && last_counted.elapsed() < interval {
                        continue;
                    }
                    last_counted = Instant::now();
                    let (event, note) = match tracker.record(started.elapsed(), r) {
                        Verdict::Quiet => continue,
                        Verdict::Healthy => {
                            passed = true;
                            (Event::Healthy, None)
                        }
                        Verdict::Unhealthy(why) => {
                            (Event::Unhealthy, Some(format!("unhealthy: {why}")))
                        }
                    };
                    if tx
                        .send(Msg::Step {
                            svc: name.clone(),
                            idx,
                            run_id: Some(run_id),
                            event,
                            note,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }));
        }
    }

    /// The instance index of a live run, if `key` is still about it.
    fn locate(&self, key: &Key) -> Option<usize> {
        let si = self.current_run(&key.svc, key.idx, key.run_id)?;
        self.svcs[si].insts[key.idx].mon.is_some().then_some(si)
    }

    pub(super) fn cgroup_events(&mut self, key: &Key) {
        let Some(si) = self.locate(key) else { return };
        let now = self.now();
        let limit = self.svcs[si].cfg.resources.pids_max;
        let inst = &mut self.svcs[si].insts[key.idx];
        let dir = &inst.paths.cgroup;
        let (oom, pids) = mon::read_counters(dir);
        let pids = pids.map(|n| crate::monitor::Pids {
            max_events: n,
            current: read_u64(dir, "pids.current"),
            limit,
        });
        let Some(m) = inst.mon.as_mut() else { return };
        let verdicts = m.watcher.on_counters(now, oom, pids);
        self.act(si, key.idx, verdicts, false);
    }

    pub(super) fn pressure(&mut self, key: &Key, rule: RuleKind) {
        let Some(si) = self.locate(key) else { return };
        let now = self.now();
        let full =
            rule.rule(&self.svcs[si].cfg.watch).stall == Some(crate::config::schema::Stall::Full);
        let inst = &mut self.svcs[si].insts[key.idx];
        let avg10 = mon::read_avg10(&inst.paths.cgroup, rule, full);
        let Some(m) = inst.mon.as_mut() else { return };
        let verdicts = m.watcher.on_pressure(now, rule, avg10);
        self.act(si, key.idx, verdicts, false);
    }

    /// The periodic sweep: kept-open stat files of every instance, fds of
    /// those with an `fds` rule, then every instance's level rules.
    pub(super) fn sweep(&mut self) {
        self.reap_idle();
        let now = self.now();
        let periods: HashMap<_, _> = {
            let sweep = self.sampler.sweep();
            sweep
                .samples
                .iter()
                .filter_map(|s| {
                    let t = s.stats.cpu.as_ref()?.throttling?;
                    Some((s.id, (t.nr_periods, t.nr_throttled)))
                })
                .collect()
        };
        for si in 0..self.svcs.len() {
            for idx in 0..self.svcs[si].insts.len() {
                let inst = &mut self.svcs[si].insts[idx];
                let Some(m) = inst.mon.as_mut() else { continue };
                let fds = if m.watcher.wants_fds() {
                    let procs = cgroup::read(&inst.paths.cgroup, "cgroup.procs")
                        .ok()
                        .and_then(|t| stats::parse_cgroup_procs(&t).ok())
                        .unwrap_or_default();
                    crate::monitor::fds::worst(&self.proc, &procs)
                } else {
                    None
                };
                let obs = Observation {
                    cpu_periods: m.sample.and_then(|id| periods.get(&id).copied()),
                    fds,
                };
                let verdicts = m.watcher.on_sweep(now, &obs);
                if !verdicts.is_empty() {
                    self.act(si, idx, verdicts, false);
                }
            }
        }
    }

    /// Restarts the monitor of a running instance with its service's
    /// current rules.
    pub(super) fn rewatch(&mut self, si: usize, idx: usize) {
        if self.svcs[si].insts[idx].mon.is_some() {
            self.start_monitor(si, idx, true);
        }
    }

    /// Starts the monitor of an instance's current run with its service's
    /// current rules, in place of the one it had. `adopted`: the cgroup is
    /// not new (adopted, or a reload), so counters start from their values.
    fn start_monitor(&mut self, si: usize, idx: usize, adopted: bool) {
        let svc = self.svcs[si].cfg.clone();
        let inst = &mut self.svcs[si].insts[idx];
        if let Some(old) = inst.mon.take() {
            mon::stop(old, &inst.paths.cgroup, &self.files, &mut self.sampler);
        }
        let key = Key {
            svc: svc.name.clone(),
            idx,
            run_id: inst.run_id,
        };
        let ctx = mon::Ctx {
            tx: &self.tx,
            files: &self.files,
            sampler: &mut self.sampler,
            interval: self.cfg.supervisor.monitor_interval.0,
            privileged: self.privileged,
        };
        inst.mon = Some(mon::start(ctx, &svc, &inst.paths.cgroup, key, adopted));
    }

    /// Records and carries out what the rules decided. `ended`: the run is
    /// over already, so a `restart` is left to the exit. A `memory.high`
    /// write (a throttle, a restore) runs on the blocking pool, after the
    /// instance's earlier jobs; it is recorded when it is done
    /// ([`Self::memory_high_written`]).
    pub(super) fn act(&mut self, si: usize, idx: usize, verdicts: Vec<Ruling>, ended: bool) {
        for v in verdicts {
            match v {
                Ruling::Fire(f) => {
                    if let (WatchAction::Throttle, Some((_, to))) = (f.action, f.memory_high) {
                        self.write_memory_high(si, idx, to.to_string(), Ruling::Fire(f));
                        continue;
                    }
                    let machine = match f.action {
                        WatchAction::Stop => true,
                        WatchAction::Restart => !ended,
                        _ => false,
                    };
                    let (rule, action) = (f.rule, f.action);
                    let done = action.to_string();
                    let (name, id) = (
                        self.svcs[si].cfg.name.clone(),
                        self.svcs[si].insts[idx].id.clone(),
                    );
                    self.record_fire(&name, Some((si, Some(idx))), &id, f, done);
                    if machine {
                        self.step(si, idx, Event::Violation { rule, action });
                    }
                }
                Ruling::Restore { to, .. } => {
                    let value = to.map_or_else(|| "max".to_string(), |b| b.to_string());
                    self.write_memory_high(si, idx, value, v);
                }
            }
        }
    }

    /// Writes `memory.high` of an instance on the blocking pool, for
    /// `verdict` (a throttle or a restore); the result comes back as
    /// [`Msg::MemoryHigh`].
    fn write_memory_high(&mut self, si: usize, idx: usize, value: String, verdict: Ruling) {
        let svc = self.svcs[si].cfg.name.clone();
        let inst = &self.svcs[si].insts[idx];
        let (dir, instance) = (inst.paths.cgroup.clone(), inst.id.clone());
        let turn = vec![inst.ops.clone()];
        self.jobs += 1;
        job::run_after(
            turn,
            Vec::new(),
            self.tx.clone(),
            move || job::write(&dir, "memory.high", &value),
            move |result| Msg::MemoryHigh {
                svc,
                idx,
                instance,
                verdict,
                result: result.and_then(|r| r),
            },
        );
    }

    /// A `memory.high` write is done: the throttle's violation, or the
    /// restore, is logged and recorded as it happened. The instance may be
    /// gone meanwhile (a retired one): the log and the journal still say.
    pub(super) fn memory_high_written(
        &mut self,
        svc: &str,
        idx: usize,
        instance: &str,
        verdict: Ruling,
        result: Result<(), String>,
    ) {
        let at = self.find(svc).map(|si| {
            let here = self.svcs[si]
                .insts
                .get(idx)
                .is_some_and(|i| i.id == instance);
            (si, here.then_some(idx))
        });
        match verdict {
            Ruling::Fire(f) => {
                let done = match (f.memory_high, result) {
                    (Some((from, to)), Ok(())) => format!(
                        "throttle: memory.high {} -> {}",
                        crate::monitor::rules::bytes(from),
                        crate::monitor::rules::bytes(to)
                    ),
                    (None, Ok(())) => f.action.to_string(),
                    (_, Err(e)) => format!("throttle FAILED: {e}"),
                };
                self.record_fire(svc, at, instance, f, done);
            }
            Ruling::Restore { to, from } => {
                let shown = to.map_or_else(|| "max".to_string(), crate::monitor::rules::bytes);
                let message = match result {
                    Ok(()) => format!(
                        "memory.pressure cleared: memory.high {} -> {shown} (restored)",
                        crate::monitor::rules::bytes(from)
                    ),
                    Err(e) => {
                        format!("memory.pressure cleared; restoring memory.high FAILED: {e}")
                    }
                };
                level_event(Level::Info, svc, instance, None, &message);
                let e = EventRecord {
                    service: svc.to_string(),
                    instance: instance.to_string(),
                    kind: "violation".into(),
                    rule: Some(RuleKind::MemoryPressure.as_str().into()),
                    action: Some("restore".into()),
                    message,
                    ..EventRecord::default()
                };
                self.journal.push(e);
            }
        }
    }

    /// Logs and journals a fired rule, `done` saying what was done; counts
    /// it on its service and instance where `at` (the service's index, the
    /// instance's when it is still there) finds them.
    fn record_fire(
        &mut self,
        svc: &str,
        at: Option<(usize, Option<usize>)>,
        instance: &str,
        f: crate::monitor::Fired,
        done: String,
    ) {
        let message = format!("watch rule {}: {} -> {done}", f.rule, f.observed);
        level_event(
            Level::Warn,
            svc,
            instance,
            Some(Code::WatchViolation),
            &message,
        );
        let time = crate::sandbox::logsink::timestamp(SystemTime::now());
        if let Some((si, _)) = at {
            *self.svcs[si]
                .totals
                .violations
                .entry(f.rule.as_str().to_string())
                .or_default() += 1;
        }
        if let Some((si, Some(idx))) = at {
            let inst = &mut self.svcs[si].insts[idx];
            inst.last_event = Some(format!(
                "{} {} {message}",
                now_stamp(),
                Code::WatchViolation.as_str()
            ));
            *inst
                .violation_counts
                .entry(f.rule.as_str().to_string())
                .or_default() += 1;
            inst.violations.push_back(ViolationStatus {
                time: time.clone(),
                rule: f.rule.as_str().into(),
                observed: f.observed.clone(),
                action: done.clone(),
            });
            while inst.violations.len() > RECENT_VIOLATIONS {
                inst.violations.pop_front();
            }
        }
        let e = EventRecord {
            time,
            service: svc.to_string(),
            instance: instance.to_string(),
            kind: "violation".into(),
            rule: Some(f.rule.as_str().into()),
            action: Some(done),
            observed: Some(f.observed),
            code: Some(Code::WatchViolation.as_str().into()),
            message,
            ..EventRecord::default()
        };
        self.journal.push(e);
    }
}

/// Waits until `pidfd` is readable: the process has exited. In the reactor;
/// should registering fail (not expected: pidfds poll since 5.3, and
/// clone3 needs that kernel anyway), by a poll once a second.
async fn wait_readable(pidfd: OwnedFd, service: &str) {
    let fd = match crate::sys::reactor::register_or_return(pidfd, tokio::io::Interest::READABLE) {
        Ok(afd) => {
            let _ = afd.readable().await;
            return;
        }
        Err((e, fd)) => {
            tracing::error!(service, "cannot watch the pidfd: {e}; polling it");
            fd
        }
    };
    let zero = rustix::time::Timespec::default();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut p = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        if rustix::event::poll(&mut p, Some(&zero)).unwrap_or(0) > 0 {
            return;
        }
    }
}
