//! The lifecycle of one instance as a pure state machine. [`Machine::step`]
//! takes the time, an [`Event`] and a random value, and returns the
//! [`Action`]s an async driver executes, in order. Every transition is one arm
//! of the match in `step`; this table is that match:
//!
//! ```text
//! state               event                     -> next state   actions
//! ------------------  ------------------------  -------------  ------------------------------
//! Stopped             Start                     -> Starting      Spawn (Failed if breaker open)
//! Stopped             Restart                   -> Starting      reset breaker+backoff, Spawn
//! Stopped             Stop                      -> Stopped       log only
//! Starting            Spawned, no stop pending  -> Running       ArmTimer(now+reset_after),
//!                                                                NotifyReady if no health check
//! Starting            Spawned, stop pending     -> Stopping      Signal, ArmTimer(now+grace)
//! Starting            SpawnFailed, stop pending -> Stopped       RemoveCgroup
//! Starting            SpawnFailed               -> (ended)       RemoveCgroup, failure
//! Starting            Stop                      -> Starting      stop pending
//! Starting            Start / Restart           -> Starting      stop no longer pending
//! Running             Start                     -> Running       log only
//! Running             Stop / Violation(stop)    -> Stopping      Signal, ArmTimer(now+grace)
//! Running             Restart                   -> Stopping      reset breaker+backoff, Signal, ...
//! Running             Unhealthy / Viol.(restart)-> Stopping      Signal, ... (then: Recover)
//! Running             Healthy (first)           -> Running       NotifyReady
//! Running             Timer, up >= reset_after  -> Running       reset backoff, close half-open
//! Running             Exited                    -> (ended)       RemoveCgroup, policy decides
//! Stopping            Timer, deadline passed    -> Stopping      KillCgroup (once)
//! Stopping            Stop                      -> Stopping      then: Stay
//! Stopping            Start / Restart           -> Stopping      then: Restart (Start: if Stay)
//! Stopping            Exited, then Stay         -> Stopped       RemoveCgroup
//! Stopping            Exited, then Restart      -> Starting      RemoveCgroup, Spawn
//! Stopping            Exited, then Recover      -> (ended)       RemoveCgroup, failure
//! Backoff             Timer, until passed       -> Starting      Spawn
//! Backoff             Stop                      -> Stopped       log (restart cancelled)
//! Backoff             Restart                   -> Starting      reset breaker+backoff, Spawn
//! Backoff             Start                     -> Backoff       log only
//! Failed              Timer, cooldown passed    -> Starting      breaker half-open, Spawn
//! Failed              Restart                   -> Starting      reset breaker+backoff, Spawn
//! Failed              Stop                      -> Stopped       log (breaker stays open)
//! Failed              Start                     -> Failed        log CIRCUIT_OPEN only
//! any                 anything else             -> unchanged     none
//! ```
//!
//! "(ended)": the instance ended without being asked to. The policy decides:
//! `never`, or `on-failure` after exit status 0 -> Stopped. Otherwise a
//! failure (non-zero status, a signal, a failed spawn, a health or violation
//! restart) is recorded in the breaker; if that opens it -> Failed (logged
//! with `CIRCUIT_OPEN`, timer at the cooldown end), else -> Backoff with the
//! next backoff delay. A clean exit under `always` restarts through backoff
//! but is not a breaker failure.
//!
//! Requests (Start, Stop, Restart) always produce at least a log line, so the
//! user learns why nothing happened. Other events that do not apply to the
//! state (an exit while stopped, a stale timer) change nothing and produce no
//! actions. Timers are checked against the deadline kept in the state, so a
//! stale or early timer is harmless and the driver never needs to cancel one.
//!
//! Stable uptime: an instance up for `reset_after` resets the backoff and, if
//! the breaker was half-open, closes it. Readiness (for `depends_on`): running,
//! and healthy if the service has a health check.

use std::time::Duration;

use super::Mono;
use super::backoff::Backoff;
use super::breaker::{Breaker, Phase};
use crate::config::model;
use crate::config::schema::{Action as WatchAction, RestartPolicy};
use crate::config::units::{Dur, Sig};
use crate::error::Code;
use crate::exit::ExitRecord;
use crate::monitor::RuleKind;

/// What to do once a stopping instance has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped (a stop request, a `stop` violation).
    Stay,
    /// Start again at once (a restart request): no backoff, no breaker.
    Restart,
    /// Treat as a failure (unhealthy, a `restart` violation): breaker and
    /// backoff apply, and the policy decides.
    Recover,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Stopped,
    /// A Spawn is outstanding; `stop_pending` if a stop arrived meanwhile.
    Starting {
        stop_pending: bool,
    },
    Running {
        pid: i32,
        since: Mono,
        /// `None` without a health check; `Some(false)` until the first pass.
        healthy: Option<bool>,
        /// Up for `reset_after` already.
        stable: bool,
    },
    /// The stop signal was sent; `killed` once `cgroup.kill` was written.
    Stopping {
        pid: i32,
        deadline: Mono,
        killed: bool,
        then: AfterStop,
    },
    /// Waiting to restart at `until`.
    Backoff {
        until: Mono,
    },
    /// Circuit open until `until` (the cooldown end).
    Failed {
        reason: String,
        until: Mono,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    Stopped,
    Starting,
    Running,
    Stopping,
    Backoff,
    Failed,
}

impl StateKind {
    /// Every state kind, in the order metrics and summaries list them.
    pub const ALL: [StateKind; 6] = [
        StateKind::Stopped,
        StateKind::Starting,
        StateKind::Running,
        StateKind::Stopping,
        StateKind::Backoff,
        StateKind::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Stopped => "stopped",
            StateKind::Starting => "starting",
            StateKind::Running => "running",
            StateKind::Stopping => "stopping",
            StateKind::Backoff => "backoff",
            StateKind::Failed => "failed",
        }
    }
}

impl State {
    pub fn kind(&self) -> StateKind {
        match self {
            State::Stopped => StateKind::Stopped,
            State::Starting { .. } => StateKind::Starting,
            State::Running { .. } => StateKind::Running,
            State::Stopping { .. } => StateKind::Stopping,
            State::Backoff { .. } => StateKind::Backoff,
            State::Failed { .. } => StateKind::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `bulkhead start` or the daemon starting the service.
    Start,
    /// `bulkhead stop`.
    Stop,
    /// `bulkhead restart` (`Reason::Manual`) or a reload that changed how
    /// the instance is spawned (`Reason::Reload`): also resets the breaker
    /// and the backoff.
    Restart(Reason),
    /// The Spawn action succeeded; `pid` is the init (in the parent's view).
    Spawned { pid: i32 },
    /// The Spawn action failed (its Diagnostic, rendered).
    SpawnFailed { reason: String },
    /// The init exited (pidfd readable, status from the init's record).
    Exited(Exit),
    /// The health check passed.
    Healthy,
    /// The health check failed `health.failures` times in a row.
    Unhealthy,
    /// A watch rule fired; only `restart` and `stop` concern the machine.
    Violation { rule: RuleKind, action: WatchAction },
    /// The armed timer fired (or any wake-up: deadlines are re-checked).
    Timer,
}

/// How a run ended, as the driver learned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub record: ExitRecord,
    /// The kernel OOM-killed a process of the instance in this run
    /// (`memory.events` oom_kill grew).
    pub oom_kill: bool,
}

impl From<ExitRecord> for Exit {
    fn from(record: ExitRecord) -> Exit {
        Exit {
            record,
            oom_kill: false,
        }
    }
}

/// Why an instance was started again: part of its lifecycle record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It exited by itself with this status.
    Exited(i32),
    /// It was killed by this signal (not an OOM kill).
    Signal(i32),
    /// The kernel's OOM killer ended it, or the `oom` rule restarted it.
    OomKill,
    /// A watch rule's `restart` action.
    Violation(RuleKind),
    /// Its health check failed `failures` times in a row.
    Unhealthy,
    /// Its spawn failed.
    SpawnFailed,
    /// `bulkhead start` / `restart`.
    Manual,
    /// A reload changed how it is spawned.
    Reload,
}

impl Reason {
    /// One reason of each kind (the detail a placeholder), in the order
    /// metrics list them.
    pub const EACH: [Reason; 8] = [
        Reason::Exited(0),
        Reason::Signal(0),
        Reason::OomKill,
        Reason::Violation(RuleKind::Fds),
        Reason::Unhealthy,
        Reason::SpawnFailed,
        Reason::Manual,
        Reason::Reload,
    ];

    /// The reason without its detail: `exited`, `signal`, `oom_kill`,
    /// `violation`, `unhealthy`, `spawn_failed`, `manual`, `reload`.
    pub fn kind(self) -> &'static str {
        match self {
            Reason::Exited(_) => "exited",
            Reason::Signal(_) => "signal",
            Reason::OomKill => "oom_kill",
            Reason::Violation(_) => "violation",
            Reason::Unhealthy => "unhealthy",
            Reason::SpawnFailed => "spawn_failed",
            Reason::Manual => "manual",
            Reason::Reload => "reload",
        }
    }

    fn of_exit(exit: Exit) -> Reason {
        match (exit.oom_kill, exit.record) {
            (true, _) => Reason::OomKill,
            (false, ExitRecord::Exited { code }) => Reason::Exited(code),
            (false, ExitRecord::Signaled { signal, .. }) => Reason::Signal(signal),
        }
    }

    fn of_violation(rule: RuleKind) -> Reason {
        match rule {
            RuleKind::Oom => Reason::OomKill,
            r => Reason::Violation(r),
        }
    }
}

impl std::fmt::Display for Reason {
    /// `exited(1)`, `signal(SIGSEGV)`, `oom_kill`, `violation(cpu_throttled)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Reason::Exited(code) => write!(f, "exited({code})"),
            Reason::Signal(sig) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(s) => write!(f, "signal({})", s.as_str()),
                Err(_) => write!(f, "signal({sig})"),
            },
            Reason::Violation(rule) => write!(f, "violation({rule})"),
            other => f.write_str(other.kind()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Work for the driver, executed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the cgroup and spawn the instance; report Spawned/SpawnFailed.
    Spawn,
    /// Send `signal` to the init.
    Signal { pid: i32, signal: Sig },
    /// Write `1` to `cgroup.kill`.
    KillCgroup,
    /// Wait until the cgroup is empty (kill it if it is not), then remove it.
    RemoveCgroup,
    /// Deliver a Timer event at this instant; replaces any armed timer.
    ArmTimer(Mono),
    /// The instance is ready: dependants may start.
    NotifyReady,
    Log {
        level: Level,
        code: Option<Code>,
        message: String,
    },
}

fn log(level: Level, message: impl Into<String>) -> Action {
    Action::Log {
        level,
        code: None,
        message: message.into(),
    }
}

fn coded(level: Level, code: Code, message: impl Into<String>) -> Action {
    Action::Log {
        level,
        code: Some(code),
        message: message.into(),
    }
}

/// A duration for a log line: milliseconds under a minute, else seconds
/// (`1s500ms`, `2m5s`), not humantime's nanoseconds.
fn short(d: Duration) -> Dur {
    let ms = d.as_millis();
    let rounded = if ms < 60_000 {
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    } else {
        Duration::from_secs(d.as_secs())
    };
    Dur(rounded)
}

pub use crate::exit::describe_exit;

/// One instance's lifecycle: its state plus the restart bookkeeping.
#[derive(Debug, Clone)]
pub struct Machine {
    policy: RestartPolicy,
    stop_signal: Sig,
    grace: Duration,
    has_health: bool,
    backoff: Backoff,
    breaker: Breaker,
    state: State,
    last_exit: Option<ExitRecord>,
    /// Why the instance will be started again (set when its run ends or a
    /// restart is asked for; taken by the next spawn).
    cause: Option<Reason>,
    /// The reason of the latest restart.
    last_reason: Option<Reason>,
}

type Next = (State, Vec<Action>);

impl Machine {
    pub fn new(restart: &model::Restart, stop: &model::Stop, has_health: bool) -> Self {
        Machine {
            policy: restart.policy,
            stop_signal: stop.signal,
            grace: stop.grace.0,
            has_health,
            backoff: Backoff::new(&restart.backoff),
            breaker: Breaker::new(&restart.circuit_breaker),
            state: State::Stopped,
            last_exit: None,
            cause: None,
            last_reason: None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// How the last run ended, if it ended by itself or was stopped.
    pub fn last_exit(&self) -> Option<ExitRecord> {
        self.last_exit
    }

    /// Why it was last started again, if it was.
    pub fn last_reason(&self) -> Option<Reason> {
        self.last_reason
    }

    /// Why it will be started again (backoff, failed, stopping to restart),
    /// else why it was last started again.
    pub fn reason(&self) -> Option<Reason> {
        self.cause.or(self.last_reason)
    }

    /// Ready for dependants: running, and healthy if there is a health check.
    pub fn is_ready(&self) -> bool {
        matches!(
            self.state,
            State::Running {
                healthy: None | Some(true),
                ..
            }
        )
    }

    /// Apply one event at `now`. `rand` is uniform in [0, 1), used only for
    /// backoff jitter.
    pub fn step(&mut self, now: Mono, event: Event, rand: f64) -> Vec<Action> {
        use Event as E;
        use State as S;
        let state = std::mem::replace(&mut self.state, S::Stopped);
        let (next, actions) = match (state, event) {
            // ---------------------------------------------------- Stopped
            (S::Stopped, E::Start) => {
                if self.last_exit.is_some() {
                    self.cause = Some(Reason::Manual);
                }
                self.try_start(now, "start requested")
            }
            (S::Stopped, E::Restart(why)) => {
                self.cause = Some(why);
                self.reset_restarts();
                self.spawn("restart requested")
            }
            (S::Stopped, E::Stop) => (S::Stopped, vec![log(Level::Debug, "already stopped")]),

            // --------------------------------------------------- Starting
            (
                S::Starting {
                    stop_pending: false,
                },
                E::Spawned { pid },
            ) => self.running(now, pid),
            (S::Starting { stop_pending: true }, E::Spawned { pid }) => {
                self.stop_running(now, pid, AfterStop::Stay, "stop requested while starting")
            }
            (S::Starting { stop_pending: true }, E::SpawnFailed { reason }) => (
                S::Stopped,
                vec![
                    coded(Level::Warn, Code::SpawnFailed, reason),
                    Action::RemoveCgroup,
                ],
            ),
            (
                S::Starting {
                    stop_pending: false,
                },
                E::SpawnFailed { reason },
            ) => {
                self.cause = Some(Reason::SpawnFailed);
                let mut a = vec![
                    coded(Level::Error, Code::SpawnFailed, reason.clone()),
                    Action::RemoveCgroup,
                ];
                let (s, more) = self.ended(now, true, &format!("spawn failed: {reason}"), rand);
                a.extend(more);
                (s, a)
            }
            (S::Starting { .. }, E::Stop) => (
                S::Starting { stop_pending: true },
                vec![log(Level::Info, "stop requested; stopping once spawned")],
            ),
            (S::Starting { stop_pending }, E::Start) => (
                S::Starting {
                    stop_pending: false,
                },
                vec![log(
                    Level::Debug,
                    if stop_pending {
                        "start requested; pending stop cancelled"
                    } else {
                        "already starting"
                    },
                )],
            ),
            (S::Starting { .. }, E::Restart(_)) => {
                self.reset_restarts();
                (
                    S::Starting {
                        stop_pending: false,
                    },
                    vec![log(
                        Level::Info,
                        "restart requested while starting; breaker reset",
                    )],
                )
            }

            // ---------------------------------------------------- Running
            (s @ S::Running { .. }, E::Start) => (s, vec![log(Level::Debug, "already running")]),
            (S::Running { pid, .. }, E::Stop) => {
                self.stop_running(now, pid, AfterStop::Stay, "stop requested")
            }
            (
                S::Running { pid, .. },
                E::Violation {
                    rule,
                    action: WatchAction::Stop,
                },
            ) => self.stop_running(
                now,
                pid,
                AfterStop::Stay,
                &format!("watch rule {rule}: stopping"),
            ),
            (S::Running { pid, .. }, E::Restart(why)) => {
                self.cause = Some(why);
                self.reset_restarts();
                self.stop_running(now, pid, AfterStop::Restart, "restart requested")
            }
            (S::Running { pid, .. }, E::Unhealthy) => {
                self.cause = Some(Reason::Unhealthy);
                self.stop_running(
                    now,
                    pid,
                    AfterStop::Recover,
                    "health check failing: restarting",
                )
            }
            (
                S::Running { pid, .. },
                E::Violation {
                    rule,
                    action: WatchAction::Restart,
                },
            ) => {
                self.cause = Some(Reason::of_violation(rule));
                self.stop_running(
                    now,
                    pid,
                    AfterStop::Recover,
                    &format!("watch rule {rule}: restarting"),
                )
            }
            (
                S::Running {
                    pid,
                    since,
                    healthy: Some(false),
                    stable,
                },
                E::Healthy,
            ) => (
                S::Running {
                    pid,
                    since,
                    healthy: Some(true),
                    stable,
                },
                vec![log(Level::Info, "healthy"), Action::NotifyReady],
            ),
            (
                S::Running {
                    pid,
                    since,
                    healthy,
                    stable: false,
                },
                E::Timer,
            ) if now >= since.saturating_add(self.backoff.reset_after()) => {
                let a = self.stable(now.saturating_sub(since));
                (
                    S::Running {
                        pid,
                        since,
                        healthy,
                        stable: true,
                    },
                    a,
                )
            }
            (S::Running { since, .. }, E::Exited(exit)) => {
                let rec = exit.record;
                self.last_exit = Some(rec);
                self.cause = Some(Reason::of_exit(exit));
                let up = now.saturating_sub(since);
                let mut a = Vec::new();
                if up >= self.backoff.reset_after() {
                    a = self.stable(up);
                }
                let failed = rec != ExitRecord::Exited { code: 0 };
                let level = if failed { Level::Warn } else { Level::Info };
                let oom = if exit.oom_kill {
                    "OOM-killed (memory.events oom_kill): "
                } else {
                    ""
                };
                let what = format!("{oom}{} after {}", describe_exit(rec), short(up));
                a.push(log(level, what.clone()));
                a.push(Action::RemoveCgroup);
                let (s, more) = self.ended(now, failed, &what, rand);
                a.extend(more);
                (s, a)
            }

            // --------------------------------------------------- Stopping
            (
                S::Stopping {
                    pid,
                    deadline,
                    killed: false,
                    then,
                },
                E::Timer,
            ) if now >= deadline => (
                S::Stopping {
                    pid,
                    deadline,
                    killed: true,
                    then,
                },
                vec![
                    log(
                        Level::Warn,
                        format!(
                            "still running after {}: killing the cgroup",
                            Dur(self.grace)
                        ),
                    ),
                    Action::KillCgroup,
                ],
            ),
            (
                S::Stopping {
                    pid,
                    deadline,
                    killed,
                    then,
                },
                E::Stop,
            ) => (
                S::Stopping {
                    pid,
                    deadline,
                    killed,
                    then: AfterStop::Stay,
                },
                vec![log(
                    Level::Debug,
                    if then == AfterStop::Stay {
                        "already stopping"
                    } else {
                        "stop requested; restart cancelled"
                    },
                )],
            ),
            (
                S::Stopping {
                    pid,
                    deadline,
                    killed,
                    then,
                },
                E::Start,
            ) => (
                S::Stopping {
                    pid,
                    deadline,
                    killed,
                    then: if then == AfterStop::Stay {
                        self.cause = Some(Reason::Manual);
                        AfterStop::Restart
                    } else {
                        then
                    },
                },
                vec![log(
                    Level::Info,
                    "start requested; starting again once stopped",
                )],
            ),
            (
                S::Stopping {
                    pid,
                    deadline,
                    killed,
                    ..
                },
                E::Restart(why),
            ) => {
                self.cause = Some(why);
                self.reset_restarts();
                (
                    S::Stopping {
                        pid,
                        deadline,
                        killed,
                        then: AfterStop::Restart,
                    },
                    vec![log(
                        Level::Info,
                        "restart requested; starting again once stopped",
                    )],
                )
            }
            (S::Stopping { then, .. }, E::Exited(exit)) => {
                let rec = exit.record;
                self.last_exit = Some(rec);
                let what = describe_exit(rec);
                let mut a = vec![
                    log(Level::Info, format!("stopped: {what}")),
                    Action::RemoveCgroup,
                ];
                let (s, more) = match then {
                    AfterStop::Stay => (S::Stopped, Vec::new()),
                    AfterStop::Restart => self.spawn("restarting"),
                    AfterStop::Recover => {
                        self.ended(now, true, &format!("restarted ({what})"), rand)
                    }
                };
                a.extend(more);
                (s, a)
            }

            // ---------------------------------------------------- Backoff
            (S::Backoff { until }, E::Timer) if now >= until => self.try_start(now, "restarting"),
            (S::Backoff { .. }, E::Stop) => (
                S::Stopped,
                vec![log(Level::Info, "stop requested; restart cancelled")],
            ),
            (S::Backoff { .. } | S::Failed { .. }, E::Restart(why)) => {
                self.cause = Some(why);
                self.reset_restarts();
                self.spawn("restart requested; breaker and backoff reset")
            }
            (s @ S::Backoff { .. }, E::Start) => {
                (s, vec![log(Level::Debug, "already waiting to restart")])
            }

            // ----------------------------------------------------- Failed
            (S::Failed { until, .. }, E::Timer) if now >= until => {
                self.try_start(now, "cooldown over: half-open attempt")
            }
            (S::Failed { .. }, E::Stop) => (
                S::Stopped,
                vec![log(Level::Info, "stopped; the circuit breaker stays open")],
            ),
            (S::Failed { reason, until }, E::Start) => {
                let msg = format!(
                    "circuit breaker open ({reason}); it retries by itself in {}, \
                     or run `bulkhead restart` to reset it",
                    short(until.saturating_sub(now))
                );
                (
                    S::Failed { reason, until },
                    vec![coded(Level::Warn, Code::CircuitOpen, msg)],
                )
            }

            // ------------------------------------- does not apply: ignored
            (s, _) => (s, Vec::new()),
        };
        self.state = next;
        actions
    }

    /// Takes over an instance a previous daemon run started (crash-safe
    /// adoption): Running with `pid` from `now`, as if just spawned, without
    /// a spawn. Only from Stopped; otherwise nothing changes.
    pub fn adopt(&mut self, now: Mono, pid: i32) -> Vec<Action> {
        if self.state != State::Stopped {
            return Vec::new();
        }
        let (next, mut actions) = self.running(now, pid);
        self.state = next;
        actions.insert(0, log(Level::Info, format!("adopted, pid {pid}")));
        actions.retain(
            |a| !matches!(a, Action::Log { message, .. } if message.starts_with("running")),
        );
        actions
    }

    /// Applies changed restart, stop or health settings (a reload) without
    /// touching the state: the next decision uses them.
    pub fn reconfigure(&mut self, restart: &model::Restart, stop: &model::Stop, has_health: bool) {
        self.policy = restart.policy;
        self.stop_signal = stop.signal;
        self.grace = stop.grace.0;
        self.has_health = has_health;
        self.backoff.reconfigure(&restart.backoff);
        self.breaker.reconfigure(&restart.circuit_breaker);
    }

    fn reset_restarts(&mut self) {
        self.breaker.reset();
        self.backoff.reset();
    }

    fn spawn(&mut self, why: &str) -> Next {
        if let Some(c) = self.cause.take() {
            self.last_reason = Some(c);
        }
        (
            State::Starting {
                stop_pending: false,
            },
            vec![log(Level::Info, why), Action::Spawn],
        )
    }

    /// Spawn if the breaker allows it (an open breaker past its cooldown
    /// becomes half-open here), else Failed until the cooldown ends.
    fn try_start(&mut self, now: Mono, why: &str) -> Next {
        if self.breaker.allow(now) {
            return self.spawn(why);
        }
        let until = match self.breaker.phase() {
            Phase::Open { until } => until,
            Phase::Closed | Phase::HalfOpen => now,
        };
        let reason = "circuit breaker open".to_owned();
        let msg = format!(
            "{reason}: not starting for {}; `bulkhead restart` resets it",
            short(until.saturating_sub(now))
        );
        (
            State::Failed { reason, until },
            vec![
                coded(Level::Error, Code::CircuitOpen, msg),
                Action::ArmTimer(until),
            ],
        )
    }

    fn running(&self, now: Mono, pid: i32) -> Next {
        let mut a = vec![
            log(Level::Info, format!("running, pid {pid}")),
            Action::ArmTimer(now.saturating_add(self.backoff.reset_after())),
        ];
        if !self.has_health {
            a.push(Action::NotifyReady);
        }
        (
            State::Running {
                pid,
                since: now,
                healthy: self.has_health.then_some(false),
                stable: false,
            },
            a,
        )
    }

    fn stop_running(&self, now: Mono, pid: i32, then: AfterStop, why: &str) -> Next {
        let deadline = now.saturating_add(self.grace);
        (
            State::Stopping {
                pid,
                deadline,
                killed: false,
                then,
            },
            vec![
                log(
                    Level::Info,
                    format!(
                        "{why}: sending {}, grace {}",
                        self.stop_signal,
                        Dur(self.grace)
                    ),
                ),
                Action::Signal {
                    pid,
                    signal: self.stop_signal,
                },
                Action::ArmTimer(deadline),
            ],
        )
    }

    /// Up for `reset_after`: forget backoff attempts; a half-open breaker
    /// has had its successful attempt.
    fn stable(&mut self, up: Duration) -> Vec<Action> {
        let mut a = Vec::new();
        if self.backoff.note_uptime(up) {
            a.push(log(
                Level::Debug,
                format!("up for {}: backoff reset", Dur(self.backoff.reset_after())),
            ));
        }
        if self.breaker.record_success() {
            a.push(log(
                Level::Info,
                "half-open attempt succeeded: circuit breaker closed",
            ));
        }
        a
    }

    /// The instance ended without being asked to (or was restarted for a
    /// fault). The policy, the breaker and the backoff decide what next.
    fn ended(&mut self, now: Mono, failed: bool, what: &str, rand: f64) -> Next {
        let restart = match self.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if !restart {
            let msg = format!("{what}; restart policy {}: staying stopped", self.policy);
            return (State::Stopped, vec![log(Level::Info, msg)]);
        }
        if failed && let Some(until) = self.breaker.record_failure(now) {
            let reason = format!("too many failures, last: {what}");
            let msg = format!(
                "circuit breaker open: {reason}; next attempt in {}, \
                 or run `bulkhead restart` to reset it",
                short(until.saturating_sub(now))
            );
            return (
                State::Failed { reason, until },
                vec![
                    coded(Level::Error, Code::CircuitOpen, msg),
                    Action::ArmTimer(until),
                ],
            );
        }
        let delay = self.backoff.next(rand);
        let until = now.saturating_add(delay);
        (
            State::Backoff { until },
            vec![
                log(
                    Level::Info,
                    format!(
                        "restarting in {} (attempt {})",
                        short(delay),
                        self.backoff.attempts()
                    ),
                ),
                Action::ArmTimer(until),
            ],
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::units::{Dur, Percent};
    use nix::sys::signal::Signal;
    use proptest::prelude::*;

    fn s(n: u64) -> Mono {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Mono {
        Duration::from_millis(n)
    }

    /// on-failure; backoff 500ms..8s x2, no jitter, reset after 60s;
    /// breaker 3 in 60s, cooldown 300s; stop SIGTERM, grace 10s.
    fn machine(policy: RestartPolicy, has_health: bool) -> Machine {
        let restart = model::Restart {
            policy,
            backoff: model::Backoff {
                initial: Dur::millis(500),
                max: Dur::secs(8),
                multiplier: 2.0,
                jitter: Percent(0),
                reset_after: Dur::secs(60),
            },
            circuit_breaker: model::Breaker {
                failures: 3,
                window: Dur::secs(60),
                cooldown: Dur::secs(300),
            },
        };
        let stop = model::Stop {
            signal: Sig(Signal::SIGTERM),
            grace: Dur::secs(10),
        };
        Machine::new(&restart, &stop, has_health)
    }

    fn crash() -> Event {
        Event::Exited(ExitRecord::Exited { code: 1 }.into())
    }

    fn spawns(a: &[Action]) -> usize {
        a.iter().filter(|x| **x == Action::Spawn).count()
    }

    fn has_code(a: &[Action], code: Code) -> bool {
        a.iter()
            .any(|x| matches!(x, Action::Log { code: Some(c), .. } if *c == code))
    }

    // ------------------------------------------------ exhaustive table

    const NOW: u64 = 1000;

    /// Every event kind, with the variants that take different arms.
    fn events() -> Vec<(&'static str, Event)> {
        vec![
            ("Start", Event::Start),
            ("Stop", Event::Stop),
            ("Restart", Event::Restart(Reason::Manual)),
            ("Spawned", Event::Spawned { pid: 42 }),
            (
                "SpawnFailed",
                Event::SpawnFailed {
                    reason: "ENOENT".into(),
                },
            ),
            (
                "Exit0",
                Event::Exited(ExitRecord::Exited { code: 0 }.into()),
            ),
            ("Exit1", crash()),
            (
                "ExitSig",
                Event::Exited(
                    ExitRecord::Signaled {
                        signal: 11,
                        core_dumped: true,
                    }
                    .into(),
                ),
            ),
            ("Healthy", Event::Healthy),
            ("Unhealthy", Event::Unhealthy),
            (
                "V-off",
                Event::Violation {
                    rule: RuleKind::Fds,
                    action: WatchAction::Off,
                },
            ),
            (
                "V-warn",
                Event::Violation {
                    rule: RuleKind::Fds,
                    action: WatchAction::Warn,
                },
            ),
            (
                "V-throttle",
                Event::Violation {
                    rule: RuleKind::Fds,
                    action: WatchAction::Throttle,
                },
            ),
            (
                "V-restart",
                Event::Violation {
                    rule: RuleKind::Fds,
                    action: WatchAction::Restart,
                },
            ),
            (
                "V-stop",
                Event::Violation {
                    rule: RuleKind::Fds,
                    action: WatchAction::Stop,
                },
            ),
            ("Timer", Event::Timer),
        ]
    }

    /// Fails to compile when a state kind or a reason is added, so `ALL` and
    /// `EACH` (and the metrics built from them) get it too.
    #[test]
    fn all_and_each_name_every_variant() {
        for k in StateKind::ALL {
            match k {
                StateKind::Stopped
                | StateKind::Starting
                | StateKind::Running
                | StateKind::Stopping
                | StateKind::Backoff
                | StateKind::Failed => {}
            }
        }
        let kinds: std::collections::HashSet<_> = StateKind::ALL.iter().collect();
        assert_eq!(kinds.len(), 6);
        let mut seen = std::collections::HashSet::new();
        for r in Reason::EACH {
            let k = match r {
                Reason::Exited(_)
                | Reason::Signal(_)
                | Reason::OomKill
                | Reason::Violation(_)
                | Reason::Unhealthy
                | Reason::SpawnFailed
                | Reason::Manual
                | Reason::Reload => r.kind(),
            };
            assert!(seen.insert(k), "{k} twice");
        }
        assert_eq!(seen.len(), 8);
    }

    /// Fails to compile when an event is added, so the table gets a column.
    fn covered(e: &Event) {
        match e {
            Event::Start
            | Event::Stop
            | Event::Restart(_)
            | Event::Spawned { .. }
            | Event::SpawnFailed { .. }
            | Event::Exited(_)
            | Event::Healthy
            | Event::Unhealthy
            | Event::Violation { .. }
            | Event::Timer => {}
        }
    }

    /// A machine (on-failure, with a health check) in `state` at NOW, with
    /// the breaker open when the state is Failed, as it would be.
    fn in_state(state: State) -> Machine {
        let mut m = machine(RestartPolicy::OnFailure, true);
        if let State::Failed { until, .. } = state {
            let t = until - s(300);
            for _ in 0..3 {
                m.breaker.record_failure(t);
            }
        }
        m.state = state;
        m
    }

    /// Expected result per (state, event). Columns follow `events()`:
    /// Start Stop Restart Spawned SpawnFailed Exit0 Exit1 ExitSig Healthy
    /// Unhealthy V-off V-warn V-throttle V-restart V-stop Timer.
    /// `.` ignored: state unchanged, no actions. `=` same kind, with actions
    /// or changed fields. A letter: the next state kind (S stopped,
    /// s starting, R running, T stopping, B backoff, F failed).
    fn table() -> Vec<(State, &'static str)> {
        let running = |healthy, stable| State::Running {
            pid: 42,
            since: s(NOW - 100),
            healthy: Some(healthy),
            stable,
        };
        let stopping = |then, killed, deadline| State::Stopping {
            pid: 42,
            deadline: s(deadline),
            killed,
            then,
        };
        let failed = |until| State::Failed {
            reason: "r".into(),
            until: s(until),
        };
        vec![
            (State::Stopped, "s=s............."),
            (
                State::Starting {
                    stop_pending: false,
                },
                "===RB...........",
            ),
            (State::Starting { stop_pending: true }, "===TS..........."),
            (running(false, false), "=TT..SBB=T...TT="),
            (running(true, true), "=TT..SBB.T...TT."),
            (stopping(AfterStop::Stay, false, NOW), "===..SSS.......="),
            (
                stopping(AfterStop::Restart, false, NOW + 1),
                "===..sss........",
            ),
            (stopping(AfterStop::Recover, true, NOW), "===..BBB........"),
            (State::Backoff { until: s(NOW) }, "=Ss............s"),
            (State::Backoff { until: s(NOW + 1) }, "=Ss............."),
            (failed(NOW), "=Ss............s"),
            (failed(NOW + 1), "=Ss............."),
        ]
    }

    fn letter(k: StateKind) -> char {
        match k {
            StateKind::Stopped => 'S',
            StateKind::Starting => 's',
            StateKind::Running => 'R',
            StateKind::Stopping => 'T',
            StateKind::Backoff => 'B',
            StateKind::Failed => 'F',
        }
    }

    #[test]
    fn every_state_times_every_event() {
        let events = events();
        let table = table();
        let kinds: std::collections::HashSet<_> = table.iter().map(|(s, _)| s.kind()).collect();
        assert_eq!(kinds.len(), 6, "every state kind has a row");
        let mut checked = 0;
        for (state, row) in &table {
            let row: Vec<char> = row.chars().collect();
            assert_eq!(row.len(), events.len(), "row for {state:?}");
            for ((name, event), want) in events.iter().zip(row) {
                covered(event);
                let mut m = in_state(state.clone());
                let actions = m.step(s(NOW), event.clone(), 0.5);
                let got = m.state().clone();
                let cell = format!("{:?} x {name}", state.kind());
                match want {
                    '.' => {
                        assert_eq!(&got, state, "{cell}: state changed");
                        assert!(actions.is_empty(), "{cell}: {actions:?}");
                    }
                    '=' => {
                        assert_eq!(got.kind(), state.kind(), "{cell}");
                        assert!(!actions.is_empty() || &got != state, "{cell}: no effect");
                    }
                    c => assert_eq!(letter(got.kind()), c, "{cell}: {got:?} {actions:?}"),
                }
                // Sanity in every cell: a Spawn only when entering Starting,
                // from a state with no process and no spawn outstanding.
                if spawns(&actions) > 0 {
                    assert_eq!(spawns(&actions), 1, "{cell}");
                    assert!(matches!(got, State::Starting { .. }), "{cell}");
                    assert!(
                        !matches!(state, State::Starting { .. } | State::Running { .. }),
                        "{cell}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 12 * 16);
    }

    // ------------------------------------------ explicit transitions

    fn started(m: &mut Machine, now: Mono) {
        assert_eq!(spawns(&m.step(now, Event::Start, 0.0)), 1);
        m.step(now, Event::Spawned { pid: 7 }, 0.0);
        assert_eq!(m.state().kind(), StateKind::Running);
    }

    #[test]
    fn exit_zero_under_on_failure_stays_stopped() {
        let mut m = machine(RestartPolicy::OnFailure, false);
        started(&mut m, s(0));
        let a = m.step(
            s(5),
            Event::Exited(ExitRecord::Exited { code: 0 }.into()),
            0.0,
        );
        assert_eq!(m.state(), &State::Stopped);
        assert!(a.contains(&Action::RemoveCgroup));
        assert_eq!(spawns(&a), 0);
        assert_eq!(m.last_exit(), Some(ExitRecord::Exited { code: 0 }));
    }

    #[test]
    fn never_does_not_restart_a_crash() {
        let mut m = machine(RestartPolicy::Never, false);
        started(&mut m, s(0));
        m.step(s(1), crash(), 0.0);
        assert_eq!(m.state(), &State::Stopped);
        assert_eq!(m.breaker().recent_failures(), 0);
    }

    #[test]
    fn always_restarts_a_clean_exit_without_counting_a_failure() {
        let mut m = machine(RestartPolicy::Always, false);
        started(&mut m, s(0));
        let a = m.step(
            s(1),
            Event::Exited(ExitRecord::Exited { code: 0 }.into()),
            0.0,
        );
        assert_eq!(
            m.state(),
            &State::Backoff {
                until: s(1) + ms(500)
            }
        );
        assert!(a.contains(&Action::ArmTimer(s(1) + ms(500))));
        assert_eq!(m.breaker().recent_failures(), 0);
    }

    #[test]
    fn stop_signals_then_kills_after_grace_then_removes() {
        let mut m = machine(RestartPolicy::Always, false);
        started(&mut m, s(0));
        let a = m.step(s(100), Event::Stop, 0.0);
        assert!(a.contains(&Action::Signal {
            pid: 7,
            signal: Sig(Signal::SIGTERM)
        }));
        assert!(a.contains(&Action::ArmTimer(s(110))));
        assert!(m.step(s(105), Event::Timer, 0.0).is_empty(), "early timer");
        let a = m.step(s(110), Event::Timer, 0.0);
        assert!(a.contains(&Action::KillCgroup));
        assert!(m.step(s(111), Event::Timer, 0.0).is_empty(), "kill once");
        let a = m.step(
            s(111),
            Event::Exited(
                ExitRecord::Signaled {
                    signal: 9,
                    core_dumped: false,
                }
                .into(),
            ),
            0.0,
        );
        assert_eq!(m.state(), &State::Stopped);
        assert!(a.contains(&Action::RemoveCgroup));
        assert_eq!(spawns(&a), 0, "a requested stop is not restarted");
    }

    #[test]
    fn stop_during_backoff_cancels_the_restart() {
        let mut m = machine(RestartPolicy::Always, false);
        started(&mut m, s(0));
        m.step(s(1), crash(), 0.0);
        assert_eq!(m.state().kind(), StateKind::Backoff);
        m.step(s(1), Event::Stop, 0.0);
        assert_eq!(m.state(), &State::Stopped);
        assert!(m.step(s(2), Event::Timer, 0.0).is_empty(), "stale timer");
    }

    #[test]
    fn stop_while_starting_stops_once_spawned() {
        let mut m = machine(RestartPolicy::Always, false);
        m.step(s(0), Event::Start, 0.0);
        m.step(s(0), Event::Stop, 0.0);
        let a = m.step(s(1), Event::Spawned { pid: 9 }, 0.0);
        assert!(matches!(a[1], Action::Signal { pid: 9, .. }));
        assert!(matches!(
            m.state(),
            State::Stopping {
                then: AfterStop::Stay,
                ..
            }
        ));
    }

    #[test]
    fn manual_restart_while_running_restarts_immediately() {
        let mut m = machine(RestartPolicy::OnFailure, false);
        started(&mut m, s(0));
        m.step(s(5), Event::Restart(Reason::Manual), 0.0);
        let a = m.step(
            s(6),
            Event::Exited(ExitRecord::Exited { code: 0 }.into()),
            0.0,
        );
        assert_eq!(
            &a[1..],
            [
                Action::RemoveCgroup,
                log(Level::Info, "restarting"),
                Action::Spawn
            ]
        );
        assert_eq!(m.state().kind(), StateKind::Starting);
    }

    #[test]
    fn spawn_failures_count_and_open_the_breaker() {
        let mut m = machine(RestartPolicy::Always, false);
        let mut now = s(0);
        m.step(now, Event::Start, 0.0);
        for i in 0..3 {
            let a = m.step(
                now,
                Event::SpawnFailed {
                    reason: "EPERM".into(),
                },
                0.0,
            );
            assert!(has_code(&a, Code::SpawnFailed));
            if i < 2 {
                let State::Backoff { until } = *m.state() else {
                    panic!("{:?}", m.state())
                };
                now = until;
                assert_eq!(spawns(&m.step(now, Event::Timer, 0.0)), 1);
            } else {
                assert!(has_code(&a, Code::CircuitOpen));
            }
        }
        assert_eq!(m.state().kind(), StateKind::Failed);
    }

    #[test]
    fn restart_while_failed_resets_the_breaker_and_starts() {
        let mut m = in_state(State::Failed {
            reason: "r".into(),
            until: s(NOW + 200),
        });
        assert!(matches!(m.breaker().phase(), Phase::Open { .. }));
        let a = m.step(s(NOW), Event::Start, 0.0);
        assert!(has_code(&a, Code::CircuitOpen));
        assert_eq!(m.state().kind(), StateKind::Failed);
        let a = m.step(s(NOW), Event::Restart(Reason::Manual), 0.0);
        assert_eq!(spawns(&a), 1);
        assert_eq!(m.breaker().phase(), Phase::Closed);
    }

    #[test]
    fn start_after_stop_from_failed_respects_the_open_breaker() {
        let mut m = in_state(State::Failed {
            reason: "r".into(),
            until: s(NOW + 200),
        });
        m.step(s(NOW), Event::Stop, 0.0);
        let a = m.step(s(NOW + 10), Event::Start, 0.0);
        assert!(has_code(&a, Code::CircuitOpen));
        assert_eq!(
            m.state(),
            &State::Failed {
                reason: "circuit breaker open".into(),
                until: s(NOW + 200)
            }
        );
    }

    #[test]
    fn readiness_waits_for_health() {
        let mut m = machine(RestartPolicy::Always, true);
        m.step(s(0), Event::Start, 0.0);
        let a = m.step(s(0), Event::Spawned { pid: 3 }, 0.0);
        assert!(!a.contains(&Action::NotifyReady));
        assert!(!m.is_ready());
        assert!(
            m.step(s(1), Event::Healthy, 0.0)
                .contains(&Action::NotifyReady)
        );
        assert!(m.is_ready());
        assert!(m.step(s(2), Event::Healthy, 0.0).is_empty(), "ready once");

        let mut m = machine(RestartPolicy::Always, false);
        m.step(s(0), Event::Start, 0.0);
        assert!(
            m.step(s(0), Event::Spawned { pid: 3 }, 0.0)
                .contains(&Action::NotifyReady)
        );
        assert!(m.is_ready());
    }

    #[test]
    fn unhealthy_restarts_through_backoff_and_counts() {
        let mut m = machine(RestartPolicy::OnFailure, true);
        started(&mut m, s(0));
        m.step(s(10), Event::Unhealthy, 0.0);
        assert!(!m.is_ready());
        // The init exits 0 on SIGTERM; it still counts as a failure.
        m.step(
            s(11),
            Event::Exited(ExitRecord::Exited { code: 0 }.into()),
            0.0,
        );
        assert_eq!(
            m.state(),
            &State::Backoff {
                until: s(11) + ms(500)
            }
        );
        assert_eq!(m.breaker().recent_failures(), 1);
    }

    #[test]
    fn violation_stop_stays_stopped_and_warn_is_ignored() {
        let mut m = machine(RestartPolicy::Always, false);
        started(&mut m, s(0));
        let warn = Event::Violation {
            rule: RuleKind::Fds,
            action: WatchAction::Warn,
        };
        assert!(m.step(s(1), warn, 0.0).is_empty());
        m.step(
            s(1),
            Event::Violation {
                rule: RuleKind::Fds,
                action: WatchAction::Stop,
            },
            0.0,
        );
        m.step(s(2), crash(), 0.0);
        assert_eq!(m.state(), &State::Stopped);
    }

    #[test]
    fn stable_uptime_resets_backoff() {
        let mut m = machine(RestartPolicy::Always, false);
        let mut now = s(0);
        let mut delays = Vec::new();
        for _ in 0..4 {
            m.step(now, Event::Start, 0.0);
            m.step(now, Event::Spawned { pid: 1 }, 0.0);
            now += s(1);
            m.step(
                now,
                Event::Exited(ExitRecord::Exited { code: 0 }.into()),
                0.0,
            );
            let State::Backoff { until } = *m.state() else {
                panic!()
            };
            delays.push(until - now);
            m.state = State::Stopped;
        }
        assert_eq!(delays, [ms(500), s(1), s(2), s(4)]);
        m.step(now, Event::Start, 0.0);
        m.step(now, Event::Spawned { pid: 1 }, 0.0);
        now += s(60);
        m.step(now, Event::Timer, 0.0);
        assert_eq!(m.backoff().attempts(), 0);
        m.step(now, crash(), 0.0);
        assert_eq!(
            m.state(),
            &State::Backoff {
                until: now + ms(500)
            }
        );
    }

    // ---------------------------------------------------- scenario

    /// Crash loop -> growing backoff -> breaker opens -> Failed with
    /// CIRCUIT_OPEN -> cooldown -> half-open start -> stays up -> closed.
    #[test]
    fn crash_loop_opens_then_recovers() {
        let mut m = machine(RestartPolicy::OnFailure, false);
        let mut now = s(0);
        let mut delays = Vec::new();
        m.step(now, Event::Start, 0.0);
        loop {
            m.step(now, Event::Spawned { pid: 100 }, 0.0);
            now += ms(100);
            let a = m.step(now, crash(), 0.0);
            match m.state().clone() {
                State::Backoff { until } => {
                    delays.push(until - now);
                    assert!(m.step(until - ms(1), Event::Timer, 0.0).is_empty());
                    now = until;
                    assert_eq!(spawns(&m.step(now, Event::Timer, 0.0)), 1);
                }
                State::Failed { until, reason } => {
                    assert!(has_code(&a, Code::CircuitOpen), "{a:?}");
                    assert!(reason.contains("exited with status 1"), "{reason}");
                    assert_eq!(until, now + s(300));
                    assert!(a.contains(&Action::ArmTimer(until)));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [ms(500), s(1)]);
        // Cooldown: nothing before it ends, one half-open spawn at its end.
        let State::Failed { until, .. } = *m.state() else {
            panic!()
        };
        assert!(m.step(until - s(1), Event::Timer, 0.0).is_empty());
        now = until;
        assert_eq!(spawns(&m.step(now, Event::Timer, 0.0)), 1);
        assert_eq!(m.breaker().phase(), Phase::HalfOpen);
        m.step(now, Event::Spawned { pid: 101 }, 0.0);
        now += s(60);
        let a = m.step(now, Event::Timer, 0.0);
        assert_eq!(m.breaker().phase(), Phase::Closed);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Log { message, .. } if message.contains("closed")))
        );
        assert_eq!(m.backoff().attempts(), 0);
        assert!(m.is_ready());
    }

    #[test]
    fn half_open_failure_reopens() {
        let mut m = in_state(State::Failed {
            reason: "r".into(),
            until: s(NOW),
        });
        m.step(s(NOW), Event::Timer, 0.0);
        m.step(s(NOW), Event::Spawned { pid: 5 }, 0.0);
        let a = m.step(s(NOW + 1), crash(), 0.0);
        assert!(has_code(&a, Code::CircuitOpen));
        assert_eq!(m.state().kind(), StateKind::Failed);
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe_exit(ExitRecord::Exited { code: 3 }),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitRecord::Signaled {
                signal: 11,
                core_dumped: true
            }),
            "killed by SIGSEGV (core dumped)"
        );
        assert_eq!(
            describe_exit(ExitRecord::Signaled {
                signal: 999,
                core_dumped: false
            }),
            "killed by signal 999"
        );
    }

    // ---------------------------------------------------- proptest

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Start),
            Just(Event::Stop),
            Just(Event::Restart(Reason::Manual)),
            (1..100i32).prop_map(|pid| Event::Spawned { pid }),
            Just(Event::SpawnFailed { reason: "x".into() }),
            (0..3i32).prop_map(|code| Event::Exited(ExitRecord::Exited { code }.into())),
            Just(Event::Exited(
                ExitRecord::Signaled {
                    signal: 9,
                    core_dumped: false
                }
                .into()
            )),
            Just(Event::Healthy),
            Just(Event::Unhealthy),
            prop_oneof![
                Just(WatchAction::Off),
                Just(WatchAction::Warn),
                Just(WatchAction::Throttle),
                Just(WatchAction::Restart),
                Just(WatchAction::Stop),
            ]
            .prop_map(|action| Event::Violation {
                rule: RuleKind::CpuThrottled,
                action
            }),
            Just(Event::Timer),
        ]
    }

    fn any_policy() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ]
    }

    proptest! {
        #[test]
        fn random_sequences_keep_invariants(
            policy in any_policy(),
            health in any::<bool>(),
            steps in prop::collection::vec((0..20_000u64, any_event(), 0.0..1.0f64), 1..200),
        ) {
            let mut m = machine(policy, health);
            let mut now = Duration::ZERO;
            // A spawn the driver has not yet answered.
            let mut outstanding = false;
            for (dt, event, rand) in steps {
                now += ms(dt);
                // The driver only reports spawn results for a Spawn it ran.
                let answers_spawn = matches!(event, Event::Spawned { .. } | Event::SpawnFailed { .. });
                if answers_spawn && !outstanding {
                    continue;
                }
                let before = m.state().clone();
                let actions = m.step(now, event, rand);
                let after = m.state().clone();
                if answers_spawn {
                    outstanding = false;
                }
                let n = spawns(&actions);
                prop_assert!(n <= 1);
                if n == 1 {
                    prop_assert!(!outstanding, "second Spawn outstanding");
                    prop_assert!(
                        !matches!(before, State::Running { .. } | State::Starting { .. }),
                        "Spawn from {:?}", before
                    );
                    prop_assert!(matches!(after, State::Starting { .. }), "{:?}", after);
                    outstanding = true;
                }
                // Starting <=> a spawn is outstanding.
                prop_assert_eq!(outstanding, matches!(after, State::Starting { .. }));
                for a in &actions {
                    if let Action::ArmTimer(t) = a {
                        prop_assert!(*t >= now);
                    }
                    if let Action::Signal { .. } = a {
                        prop_assert!(matches!(after, State::Stopping { .. }), "Signal in {:?}", after);
                    }
                    if let Action::Log { code: Some(Code::CircuitOpen), .. } = a {
                        prop_assert!(matches!(after, State::Failed { .. }), "CIRCUIT_OPEN in {:?}", after);
                    }
                }
                match &after {
                    State::Failed { .. } => prop_assert!(matches!(m.breaker().phase(), Phase::Open { .. }), "{:?}", m.breaker()),
                    // Entering backoff schedules the restart in the future.
                    State::Backoff { until } if before.kind() != StateKind::Backoff => {
                        prop_assert!(*until >= now, "{:?}", after);
                    }
                    _ => {}
                }
                if policy == RestartPolicy::Never {
                    prop_assert!(!matches!(after, State::Backoff { .. }), "backoff under never");
                }
                prop_assert_eq!(m.is_ready(), matches!(after, State::Running { healthy: None | Some(true), .. }));
            }
        }
    }
}
