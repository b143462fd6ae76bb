//! Template instances launched on demand (docs/ARCHITECTURE.md decision 10): the
//! driver's side of `launch`, `list`, `terminate`, idle reaping and the
//! admission bulkhead. Which instance a launch gets and the admission rules
//! are pure, in [`crate::supervisor::launch`].
//!
//! ```text
//!  launch(svc, ns, session) ──> id ── exists? ── ready ──────────────> reply (reused)
//!                                 │             └ starting/backoff ──> wait with it
//!                                 └ new ── admission ── slot ──> new instance, Start
//!                                              │── queued ──> slot freed (or timeout)
//!                                              └── full ────> LAUNCH_REJECTED
//!  instance ready ──> every waiter answered; its slot goes to the next queued key
//!  instance down before ready (spawn failed, exited, stopped) ──> LAUNCH_FAILED
//! ```
//! A template instance is a slot of its service's `insts`: messages name
//! instances by index, so a stopped instance leaves a vacant slot (with its
//! run id, so late messages about it are dropped) that the next new key
//! reuses.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Daemon, Msg, level_event};
use crate::api::proto::{ApiError, Histogram, LaunchMetrics, LaunchReply, LaunchRequest, Response};
use crate::error::{Code, Diagnostic};
use crate::supervisor::fleet::{self, Cmd, SvcEvent};
use crate::supervisor::launch::{self as keys, Admission, Admit};
use crate::supervisor::{Event, Level, State, StateKind};

type Reply = oneshot::Sender<Result<Response, ApiError>>;

/// A launch waiting for its instance to be ready.
pub struct Waiter {
    reply: Reply,
    asked: Instant,
    queued: Duration,
    created: bool,
}

/// A launch of a new key waiting for an admission slot; later launches of
/// the same key wait with it.
pub struct Pending {
    svc: String,
    id: String,
    namespace: Option<String>,
    session: Option<String>,
    waiters: Vec<Waiter>,
}

/// The admission bulkhead and the launch counters.
pub struct Launches {
    admission: Admission<Pending>,
    /// By template, then result.
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    queue_wait: Histogram,
    duration: BTreeMap<String, Histogram>,
}

impl Launches {
    pub fn new(cfg: &crate::config::model::Launch) -> Launches {
        Launches {
            admission: Admission::new(cfg.max_concurrent, cfg.max_queue),
            counts: BTreeMap::new(),
            queue_wait: Histogram::default(),
            duration: BTreeMap::new(),
        }
    }

    pub(super) fn count(&mut self, svc: &str, result: &str, n: usize) {
        *self
            .counts
            .entry(svc.to_string())
            .or_default()
            .entry(result.to_string())
            .or_default() += n as u64;
    }
}

/// A template instance's launch key, for its environment and `list`.
#[derive(Debug, Clone, Default)]
pub struct LaunchKey {
    pub namespace: Option<String>,
    pub session: Option<String>,
}

pub(super) fn error(status: u16, d: Diagnostic) -> ApiError {
    ApiError::from_diagnostic(status, &d)
}

pub(super) fn answer(w: Waiter, r: Result<Response, ApiError>) {
    // The client may have gone; nothing to do then.
    let _ = w.reply.send(r);
}

impl Daemon {
    /// `POST /v1/launch`: answered now (an instance that is ready, an
    /// error) or once the instance is ready.
    pub(super) fn launch(&mut self, req: LaunchRequest, reply: Reply) {
        let waiter = Waiter {
            reply,
            asked: Instant::now(),
            queued: Duration::ZERO,
            created: false,
        };
        if let Err(e) = self.refuse_while_stopping() {
            return answer(waiter, Err(e));
        }
        let si = match self.template(&req.service, "launch") {
            Ok(si) => si,
            Err(e) => return answer(waiter, Err(e)),
        };
        let level = self.svcs[si]
            .cfg
            .isolation
            .unwrap_or(crate::config::schema::Isolation::None);
        let id = match keys::instance_id(level, req.namespace.as_deref(), req.session.as_deref()) {
            Ok(id) => id,
            Err(e) => {
                self.launches.count(&req.service, "invalid", 1);
                let d = Diagnostic::new(Code::LaunchInvalidKey, e.to_string())
                    .context("service", &req.service)
                    .context("isolation", level)
                    .suggest(format!(
                        "{} instances are keyed by {}; ids are 1-{} letters, digits, `_`, `.`, `-`",
                        req.service,
                        match level {
                            crate::config::schema::Isolation::None =>
                                "nothing (one shared instance)",
                            crate::config::schema::Isolation::Namespace => "--namespace",
                            crate::config::schema::Isolation::Session => "--session",
                        },
                        keys::MAX_ID
                    ));
                return answer(waiter, Err(error(400, d)));
            }
        };
        if let Some(idx) = self.instance_of(si, &id) {
            return self.join(si, idx, waiter);
        }
        // A launch of the same key already waits for a slot: wait with it.
        if let Some(p) = self
            .launches
            .admission
            .find_mut(|p| p.svc == req.service && p.id == id)
        {
            p.waiters.push(waiter);
            return;
        }
        if let Err(e) = self.check_room(si) {
            self.launches.count(&req.service, "limit", 1);
            return answer(waiter, Err(e));
        }
        let pending = Pending {
            svc: req.service,
            id,
            namespace: req.namespace,
            session: req.session,
            waiters: vec![waiter],
        };
        match self.launches.admission.enter(pending) {
            Admit::Now(p) => self.create(p, false),
            Admit::Queued(ticket) => {
                let (tx, wait) = (self.tx.clone(), self.cfg.supervisor.launch.queue_timeout.0);
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = tx.send(Msg::LaunchTimeout(ticket));
                });
            }
            Admit::Rejected(p) => {
                let (active, max_q) = (
                    self.launches.admission.active(),
                    self.launches.admission.limits().1,
                );
                self.launches.count(&p.svc, "rejected", p.waiters.len());
                let d = Diagnostic::new(
                    Code::LaunchRejected,
                    format!(
                        "launch of {}/{} refused: {active} instance starts in progress and \
                         {max_q} launches waiting (the admission queue is full)",
                        p.svc, p.id
                    ),
                )
                .context("service", &p.svc)
                .context("instance", &p.id)
                .context("active", active)
                .context("queued", max_q)
                .suggest(
                    "retry later with backoff; or raise supervisor.launch.max_concurrent \
                     or max_queue if the host has room",
                );
                for w in p.waiters {
                    answer(w, Err(error(503, d.clone())));
                }
            }
        }
    }

    /// A queued launch waited `queue_timeout`.
    pub(super) fn launch_timeout(&mut self, ticket: u64) {
        let Some(p) = self.launches.admission.cancel(ticket) else {
            return;
        };
        let wait = self.cfg.supervisor.launch.queue_timeout;
        self.launches.count(&p.svc, "timeout", p.waiters.len());
        let active = self.launches.admission.active();
        let d = Diagnostic::new(
            Code::LaunchTimeout,
            format!(
                "launch of {}/{} gave up after waiting {wait} for a start slot",
                p.svc, p.id
            ),
        )
        .context("service", &p.svc)
        .context("instance", &p.id)
        .context("active", active)
        .context("queue_timeout", wait)
        .suggest(
            "the host is busy starting other instances: retry later; or raise \
             supervisor.launch.max_concurrent or queue_timeout",
        );
        for w in p.waiters {
            self.launches
                .queue_wait
                .observe(w.asked.elapsed().as_secs_f64());
            answer(w, Err(error(503, d.clone())));
        }
    }

    /// The index of `id`'s instance of template `si`, if it has one.
    pub(super) fn instance_of(&self, si: usize, id: &str) -> Option<usize> {
        self.svcs[si]
            .insts
            .iter()
            .position(|i| !i.vacant && i.id == id)
    }

    /// Is there room for one more instance of template `si`?
    fn check_room(&self, si: usize) -> Result<(), ApiError> {
        let s = &self.svcs[si];
        let Some(max) = s.cfg.max_instances else {
            return Ok(());
        };
        let n = s.insts.iter().filter(|i| !i.vacant).count();
        if n < max as usize {
            return Ok(());
        }
        let d = Diagnostic::new(
            Code::LaunchLimit,
            format!(
                "{} has {n} instances, its max_instances: a new key needs one more",
                s.cfg.name
            ),
        )
        .context("service", &s.cfg.name)
        .context("max_instances", max)
        .suggest(format!(
            "terminate instances no longer needed (`bulkhead list {0}`, `bulkhead terminate \
             {0} INSTANCE`), set idle_timeout to reap idle ones, or raise max_instances",
            s.cfg.name
        ));
        Err(error(409, d))
    }

    /// Is a port of `supervisor.ports` free for one more instance?
    fn check_port(&self) -> Result<(), ApiError> {
        let r = self.cfg.supervisor.ports;
        let used = self
            .svcs
            .iter()
            .flat_map(|s| &s.insts)
            .filter(|i| !i.vacant)
            .count();
        if used < usize::from(r.last - r.first) + 1 {
            return Ok(());
        }
        let d = Diagnostic::new(
            Code::LaunchLimit,
            format!(
                "every port of supervisor.ports ({}-{}) is held by an instance",
                r.first, r.last
            ),
        )
        .context("instances", used)
        .suggest(
            "terminate instances no longer needed, or widen supervisor.ports (takes effect \
             at the next daemon start)",
        );
        Err(error(409, d))
    }

    /// A launch of an instance that exists.
    fn join(&mut self, si: usize, idx: usize, waiter: Waiter) {
        let inst = &mut self.svcs[si].insts[idx];
        inst.touched = Instant::now();
        inst.launches += 1;
        if inst.machine.is_ready() {
            return self.succeed(si, idx, waiter);
        }
        if let State::Failed { until, reason } = inst.machine.state() {
            let (until, reason) = (*until, reason.clone());
            let left = until.saturating_sub(self.now());
            let name = self.svcs[si].cfg.name.clone();
            self.launches.count(&name, "failed", 1);
            let d = Diagnostic::new(
                Code::CircuitOpen,
                format!(
                    "{name}/{} keeps failing: its circuit breaker is open for {:.1}s more",
                    self.svcs[si].insts[idx].id,
                    left.as_secs_f64()
                ),
            )
            .cause(reason)
            .suggest(format!(
                "see `bulkhead logs {name}` and `bulkhead events {name}`; `bulkhead terminate` \
                 it to start afresh with the next launch"
            ));
            return answer(waiter, Err(error(503, d)));
        }
        if inst.retire {
            // Being stopped (idle, terminate): start it again once stopped.
            inst.retire = false;
            self.step(si, idx, Event::Start);
        } else if inst.machine.state().kind() == StateKind::Stopped {
            self.step(si, idx, Event::Start);
        }
        // Starting, or backing off before its next attempt: answered by
        // `launch_progress` once that attempt is ready or has failed.
        self.svcs[si].insts[idx].waiters.push(waiter);
    }

    /// A slot of the admission bulkhead for `p`: its instance is created
    /// and started (or `p` joins an instance that appeared meanwhile).
    /// `from_queue`: it waited in the admission queue.
    fn create(&mut self, mut p: Pending, from_queue: bool) {
        let queued = p
            .waiters
            .first()
            .map(|w| w.asked.elapsed())
            .filter(|_| from_queue);
        let Some(si) = self
            .find(&p.svc)
            .filter(|&si| fleet::apply(&mut self.svcs, si, SvcEvent::Admit) == Some(Cmd::Admit))
        else {
            let d = Diagnostic::new(
                Code::LaunchFailed,
                format!(
                    "{} was removed from the config while the launch waited",
                    p.svc
                ),
            )
            .suggest("check the config the daemon runs (`bulkhead status`)");
            for w in p.waiters {
                answer(w, Err(error(404, d.clone())));
            }
            return self.release_slot();
        };
        if from_queue {
            for w in &mut p.waiters {
                w.queued = w.asked.elapsed();
                self.launches.queue_wait.observe(w.queued.as_secs_f64());
            }
        }
        if let Some(idx) = self.instance_of(si, &p.id) {
            for w in p.waiters {
                self.join(si, idx, w);
            }
            return self.release_slot();
        }
        if let Err(e) = self.check_room(si).and_then(|()| self.check_port()) {
            self.launches.count(&p.svc, "limit", p.waiters.len());
            for w in p.waiters {
                answer(w, Err(e.clone()));
            }
            return self.release_slot();
        }
        let svc = self.svcs[si].cfg.clone();
        let mut inst = self.new_inst(&svc, p.id.clone());
        inst.key = LaunchKey {
            namespace: p.namespace,
            session: p.session,
        };
        inst.admitted = true;
        inst.launches = p.waiters.len() as u64;
        if let Some(w) = p.waiters.first_mut() {
            w.created = true;
        }
        inst.waiters = p.waiters;
        let idx = match self.svcs[si].insts.iter().position(|i| i.vacant) {
            Some(idx) => {
                let old = &mut self.svcs[si].insts[idx];
                // The slot's run id goes on, so messages about the instance
                // that held it are not taken for this one's.
                inst.run_id = old.run_id;
                inst.ops = old.ops.clone();
                *old = inst;
                idx
            }
            None => {
                self.svcs[si].insts.push(inst);
                self.svcs[si].insts.len() - 1
            }
        };
        let note = match queued {
            Some(q) if q >= Duration::from_millis(1) => {
                format!(" after {:.3}s in the admission queue", q.as_secs_f64())
            }
            _ => String::new(),
        };
        level_event(
            Level::Info,
            &svc.name,
            &self.svcs[si].insts[idx].id,
            None,
            &format!("launched: a new instance{note}"),
        );
        self.step(si, idx, Event::Start);
    }

    /// A start finished: its admission slot goes to the next queued key.
    fn release_slot(&mut self) {
        if let Some((_, next)) = self.launches.admission.release() {
            self.create(next, true);
        }
    }

    /// After a step of a template instance: answer its waiters once it is
    /// ready, or tell them it did not come up; free its admission slot then.
    pub(super) fn launch_progress(&mut self, si: usize, idx: usize) {
        let inst = &self.svcs[si].insts[idx];
        if inst.waiters.is_empty() && !inst.admitted {
            return;
        }
        let kind = inst.machine.state().kind();
        let done = if inst.machine.is_ready() {
            Ok(())
        } else {
            match kind {
                StateKind::Backoff | StateKind::Failed | StateKind::Stopped => Err(kind),
                StateKind::Starting | StateKind::Running | StateKind::Stopping => return,
            }
        };
        let inst = &mut self.svcs[si].insts[idx];
        let waiters = std::mem::take(&mut inst.waiters);
        let admitted = std::mem::replace(&mut inst.admitted, false);
        match done {
            Ok(()) => {
                for w in waiters {
                    self.succeed(si, idx, w);
                }
            }
            Err(kind) => {
                let name = self.svcs[si].cfg.name.clone();
                let inst = &self.svcs[si].insts[idx];
                let why = inst
                    .last_event
                    .clone()
                    .or_else(|| inst.machine.last_exit().map(crate::exit::describe_exit))
                    .unwrap_or_else(|| kind.as_str().to_string());
                self.launches.count(&name, "failed", waiters.len());
                let d = Diagnostic::new(
                    Code::LaunchFailed,
                    format!(
                        "{name}/{} did not come up: it is {}",
                        inst.id,
                        kind.as_str()
                    ),
                )
                .context("service", &name)
                .context("instance", &inst.id)
                .cause(why)
                .suggest(format!(
                    "see `bulkhead logs {name}` and `bulkhead events {name}`; a launch again \
                     waits for its next attempt"
                ));
                for w in waiters {
                    answer(w, Err(error(502, d.clone())));
                }
            }
        }
        if admitted {
            self.release_slot();
        }
    }

    fn succeed(&mut self, si: usize, idx: usize, w: Waiter) {
        let s = &self.svcs[si];
        let inst = &s.insts[idx];
        let pid = inst.live_pid();
        let secs = w.asked.elapsed().as_secs_f64();
        let reply = LaunchReply {
            service: s.cfg.name.clone(),
            instance: inst.id.clone(),
            pid,
            state: inst.machine.state().kind().as_str().into(),
            created: w.created,
            port: inst.port,
            cgroup: inst.paths.cgroup.clone(),
            duration_secs: secs,
            queued_secs: w.queued.as_secs_f64(),
        };
        let name = s.cfg.name.clone();
        self.launches
            .count(&name, if w.created { "created" } else { "reused" }, 1);
        self.launches
            .duration
            .entry(name)
            .or_default()
            .observe(secs);
        answer(w, Ok(Response::Launch(reply)));
    }

    pub(super) fn launch_metrics(&self) -> LaunchMetrics {
        let (max_concurrent, max_queue) = self.launches.admission.limits();
        LaunchMetrics {
            max_concurrent,
            max_queue,
            active: u64::from(self.launches.admission.active()),
            queued: self.launches.admission.queued() as u64,
            launches: self.launches.counts.clone(),
            queue_wait: self.launches.queue_wait.clone(),
            duration: self.launches.duration.clone(),
        }
    }

    /// Shutdown: queued launches are refused.
    pub(super) fn refuse_queued(&mut self) {
        while let Some((_, p)) = self.launches.admission.pop_queued() {
            for w in p.waiters {
                answer(w, Err(super::shutting_down()));
            }
        }
    }
}
