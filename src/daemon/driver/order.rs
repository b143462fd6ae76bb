//! Start and stop order across services, and what systemd is told about
//! it: a service asked to start (autostart, `bulkhead start`, a reload)
//! waits for its `depends_on` to be ready; at shutdown a service stops once
//! nothing that depends on it still runs; READY=1 once every service has
//! settled, STATUS= as the counts change after that, EXTEND_TIMEOUT_USEC
//! while health checks hold READY.
//!
//! This file decides *when* a service gets Start or Stop, through the
//! service flags (`start_pending`, `stop_sent`) and `step`; what happens to
//! an instance after that is its state machine's business. It touches no
//! process, cgroup or file.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Daemon;
use crate::supervisor::{Event, StateKind};

impl Daemon {
    /// Marks the autostart services (and what they depend on) to start.
    pub fn start_autostart(&mut self) {
        let names: Vec<String> = self
            .svcs
            .iter()
            .filter(|s| s.cfg.autostart)
            .map(|s| s.cfg.name.clone())
            .collect();
        for n in names {
            self.want_start(&n);
        }
    }

    /// Start `name` once its dependencies are ready; dependencies are
    /// started too, as systemd's `Requires=` + `After=` would.
    pub(super) fn want_start(&mut self, name: &str) {
        let mut todo = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(i) = self
                .find(&n)
                .filter(|&i| self.svcs[i].cfg.isolation.is_none())
            {
                let s = &mut self.svcs[i];
                let stopped = s
                    .insts
                    .iter()
                    .any(|x| matches!(x.machine.state().kind(), StateKind::Stopped));
                if stopped {
                    s.start_pending = true;
                }
                todo.extend(s.cfg.depends_on.iter().cloned());
            }
        }
    }

    /// Dependency order at start and reverse order at shutdown; READY=1.
    pub(super) fn reconcile(&mut self) {
        if self.shutting_down {
            // Stop a service once nothing that depends on it still runs.
            for si in 0..self.svcs.len() {
                if self.svcs[si].stop_sent {
                    continue;
                }
                let name = self.svcs[si].cfg.name.clone();
                let dependants_down = self.svcs.iter().all(|d| {
                    !d.cfg.depends_on.contains(&name)
                        || d.insts
                            .iter()
                            .all(|i| i.machine.state().kind() == StateKind::Stopped)
                });
                if dependants_down {
                    self.svcs[si].stop_sent = true;
                    for idx in 0..self.svcs[si].insts.len() {
                        self.step(si, idx, Event::Stop);
                    }
                }
            }
            return;
        }
        self.collect_retired();
        for si in 0..self.svcs.len() {
            if !self.svcs[si].start_pending {
                continue;
            }
            let deps = self.svcs[si].cfg.depends_on.clone();
            let ready = deps.iter().all(|d| {
                self.find(d)
                    .is_none_or(|di| self.svcs[di].insts.iter().all(|i| i.machine.is_ready()))
            });
            if ready {
                self.svcs[si].start_pending = false;
                for idx in 0..self.svcs[si].insts.len() {
                    self.step(si, idx, Event::Start);
                }
            }
        }
        if !self.ready_sent {
            let settled = self.svcs.iter().all(|s| {
                !s.start_pending
                    && s.insts.iter().all(|i| {
                        let k = i.machine.state().kind();
                        // Settled: not starting, and ready if running.
                        k != StateKind::Starting
                            && (k != StateKind::Running || i.machine.is_ready())
                    })
            });
            if settled {
                self.ready_sent = true;
                let summary = self.summary();
                tracing::info!("ready: {summary}");
                let _ = sd_notify::notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status(&summary),
                ]);
                self.status_sent = summary;
            } else {
                self.extend_start_timeout();
            }
        } else {
            // `systemctl status` shows the counts as they are now.
            let summary = self.summary();
            if summary != self.status_sent {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&summary)]);
                self.status_sent = summary;
            }
        }
    }

    /// Before READY: while health checks hold an instance that runs but is
    /// not ready yet, asks systemd for more start time (EXTEND_TIMEOUT_USEC),
    /// so slow checks do not hit the unit's TimeoutStartSec. A spawn that
    /// never returns gets no extension: systemd's own timeout applies.
    fn extend_start_timeout(&mut self) {
        /// How often to ask, and for how long each time.
        const EVERY: Duration = Duration::from_secs(5);
        const BY_USEC: u32 = 30_000_000;
        let checking = self
            .svcs
            .iter()
            .flat_map(|s| &s.insts)
            .any(|i| i.machine.state().kind() == StateKind::Running && !i.machine.is_ready());
        if !checking || self.extended_at.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.extended_at = Some(std::time::Instant::now());
        tracing::debug!("health checks hold READY: EXTEND_TIMEOUT_USEC={BY_USEC}");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(BY_USEC)]);
    }
}
