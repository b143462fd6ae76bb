//! Start and stop order across services, and what systemd is told about
//! it: a service asked to start (autostart, `bulkhead start`, a reload)
//! waits for its `depends_on` to be ready; at shutdown a service stops once
//! nothing that depends on it still runs; READY=1 once every service has
//! settled, STATUS= as the counts change after that, EXTEND_TIMEOUT_USEC
//! while health checks hold READY.
//!
//! This file decides *when* a service gets Start or Stop: it feeds the
//! pure service-level table (`supervisor::fleet`) and turns its commands
//! into `step`s; what happens to an instance after that is its state
//! machine's business. It touches no process or file; a dropped service's
//! cgroup subtree is removed on the blocking pool.

use std::time::Duration;

use super::{Daemon, Svc};
use crate::supervisor::fleet::{self, Cmd, Facts, Member, Phase};
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
    /// started too, as systemd's `Requires=` + `After=` would. Whether
    /// `name`'s instances that are not stopped may get the request too (not
    /// when the service is going away).
    pub(super) fn want_start(&mut self, name: &str) -> bool {
        let first = self.find(name);
        let cmds = fleet::want_start(&mut self.svcs, name);
        let forward = cmds
            .iter()
            .any(|(i, c)| Some(*i) == first && *c == Cmd::Forward);
        self.run_cmds(cmds);
        forward
    }

    /// Executes what the fleet table decided for services: instance events,
    /// and services dropped or created anew once stopped. `Forward`,
    /// `Resize`, `Admit` and `Refuse` answer the caller that asked and are
    /// its business.
    pub(super) fn run_cmds(&mut self, cmds: Vec<(usize, Cmd)>) {
        let mut gone = Vec::new();
        for (si, cmd) in cmds {
            match cmd {
                Cmd::StartInstances => {
                    for idx in 0..self.svcs[si].insts.len() {
                        self.step(si, idx, Event::Start);
                    }
                }
                Cmd::StopInstances => {
                    for idx in 0..self.svcs[si].insts.len() {
                        self.step(si, idx, Event::Stop);
                    }
                }
                Cmd::Drop | Cmd::Recreate { .. } => gone.push((si, cmd)),
                Cmd::Forward | Cmd::Resize | Cmd::Admit | Cmd::Refuse => {}
            }
        }
        // Highest index first, so the others keep theirs.
        gone.sort_by_key(|(si, _)| std::cmp::Reverse(*si));
        let mut back = Vec::new();
        let mut removals = Vec::new();
        for (si, cmd) in gone {
            let mut s = self.svcs.remove(si);
            removals.push(self.tree_of(&s));
            if let (Cmd::Recreate { start }, Some(next)) = (cmd, s.next.take()) {
                back.push((*next, start));
            }
        }
        // A moved service comes back under its new group.
        for (svc, start) in back {
            let name = svc.name.clone();
            let s = self.new_svc(svc);
            self.svcs.push(s);
            if start {
                self.want_start(&name);
            }
        }
        // Off the loop, once the old instances' jobs are done; instances
        // back under the same path wait for it.
        for (dir, turns) in removals {
            self.remove_tree(dir, turns);
        }
    }

    /// Dependency order at start and reverse order at shutdown (the fleet
    /// table, until it has nothing more to do: a stop can end a backing-off
    /// instance at once and so free the next service); READY=1.
    pub(super) fn reconcile(&mut self) {
        if !self.shutting_down {
            self.collect_retired();
        }
        loop {
            let cmds = fleet::reconcile(&mut self.svcs);
            if cmds.is_empty() {
                break;
            }
            self.run_cmds(cmds);
        }
        if self.shutting_down {
            return;
        }
        if !self.ready_sent {
            if fleet::settled(&self.svcs) {
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

/// A service as the fleet table reads it.
impl Member for Svc {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn depends_on(&self) -> &[String] {
        &self.cfg.depends_on
    }

    fn is_template(&self) -> bool {
        self.cfg.isolation.is_some()
    }

    fn phase(&self) -> Phase {
        self.phase
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    fn facts(&self) -> Facts {
        let kinds = || self.insts.iter().map(|i| i.machine.state().kind());
        Facts {
            any_stopped: kinds().any(|k| k == StateKind::Stopped),
            all_stopped: kinds().all(|k| k == StateKind::Stopped),
            all_ready: self.insts.iter().all(|i| i.machine.is_ready()),
            // Settled: not starting, and ready if running.
            settled: self.insts.iter().all(|i| {
                let k = i.machine.state().kind();
                k != StateKind::Starting && (k != StateKind::Running || i.machine.is_ready())
            }),
        }
    }
}
