//! The async driver: one tokio task owns every instance's state machine and
//! executes the actions they return. Everything that can block (cgroup
//! setup, the spawn, removal) runs on the blocking pool and reports back as
//! a message; exits arrive through pidfds in the reactor, timers as tokio
//! sleeps. Nothing here runs per service in a thread.
//!
//! ```text
//!   control socket ─┐   signals ─┐   pidfd readable ─┐   timers ─┐
//!                   v            v                   v           v
//!                 mpsc ─────────────> Daemon::handle ──> Machine::step ──> actions
//!                                         │                                   │
//!                                   reconcile():                    spawn / remove jobs
//!                             depends_on order, shutdown,           (blocking pool, one
//!                             READY=1 to systemd                     instance at a time)
//! ```
//!
//! This file is the loop: the message and state types, `handle` (routing a
//! message to the file that owns it), shutdown and the final cleanup. It holds no policy of its own: which
//! transition happens is [`Machine`]'s, and the work is in
//!
//! | file | owns |
//! | --- | --- |
//! | `order.rs` | when a service starts or stops (`depends_on`, through the fleet table), READY/STATUS to systemd |
//! | `instance.rs` | `step`/`execute` (an event to a machine, its actions carried out), new services and instances, spawn and removal jobs, spawn results, exits |
//! | `watch.rs` | a run's pidfd, health probes and monitor; the watch rules' actions |
//! | `control.rs` | the control requests answered on the loop, API errors |
//! | `report.rs` | status, metrics and the summary: reads state, never changes it |
//! | `reload.rs` | applying a reload, adopting an earlier run's instances, retiring |
//! | `launch.rs` | template instances launched on demand, the admission bulkhead |
//! | `templates.rs` | launched instances afterwards: `list`, `terminate`, idle reaping, vacant slots, launch figures |

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::job::{Paths, Started};
use super::journal::Journal;
use super::monitor::{self as mon, FileCmd, Key, Mon};
use crate::api::proto::{Call, EventRecord, Request, ViolationStatus};
use crate::cgroup::sampler::Sampler;
use crate::cgroup::subtree::Subtree;
use crate::config::model::{Config, Service};
use crate::error::{Code, Diagnostics};
use crate::health::Target;
use crate::monitor::RuleKind;
use crate::supervisor::fleet::{self, Phase};
use crate::supervisor::{Event, Level, Machine, Mono, State, StateKind};

mod control;
mod instance;
mod launch;
mod order;
mod reload;
mod report;
mod templates;
mod watch;

#[cfg(test)]
mod loop_tests;

pub(super) use control::shutting_down;

/// What wakes the driver.
pub enum Msg {
    /// An event for one instance. `run_id` (when set) names the run it is
    /// about; events about an earlier run are dropped.
    Step {
        svc: String,
        idx: usize,
        run_id: Option<u64>,
        event: Event,
        note: Option<String>,
    },
    Spawned {
        svc: String,
        idx: usize,
        run_id: u64,
        result: Result<Started, Diagnostics>,
    },
    /// The run's pidfd became readable: the init is gone.
    Exited {
        svc: String,
        idx: usize,
        run_id: u64,
    },
    /// `memory.events` or `pids.events` of a run changed.
    CgroupEvents(Key),
    /// A PSI trigger of a run fired.
    Pressure {
        key: Key,
        rule: RuleKind,
    },
    /// Time for the monitor's sweep.
    Sweep,
    /// A launch waited `queue_timeout` in the admission queue.
    LaunchTimeout(u64),
    /// A removal job finished.
    Removed {
        result: Result<(), String>,
    },
    /// A `memory.high` write for `verdict` (a throttle or its restore) of
    /// instance `instance` (at `idx` when asked) finished.
    MemoryHigh {
        svc: String,
        idx: usize,
        instance: String,
        verdict: crate::monitor::Verdict,
        result: Result<(), String>,
    },
    /// A reload's live limits of one instance were written; `order`: the
    /// place of the write among the reload's, for its failure's place in
    /// the reply.
    LiveLimits {
        order: usize,
        svc: String,
        instance: String,
        result: Result<(), String>,
    },
    /// The cgroups were removed at shutdown: what could not be.
    CleanedUp {
        failures: Vec<String>,
    },
    Call(Call),
    /// A reload's read and validation came back from the blocking pool.
    Loaded(Box<Result<Config, Diagnostics>>),
    /// SIGTERM / SIGINT (shutdown) or SIGHUP (reload).
    Signal(i32),
    /// Time to ping the systemd watchdog.
    Watchdog,
}

/// Fixed facts the driver works with.
pub struct Setup {
    pub cfg: Config,
    pub config_path: PathBuf,
    pub tree: Subtree,
    pub mount: PathBuf,
    pub delegated: bool,
    pub controllers: Vec<&'static str>,
    pub init_exe: PathBuf,
}

struct Inst {
    id: String,
    paths: Paths,
    machine: Machine,
    /// Counts spawns; tags messages about one run.
    run_id: u64,
    pid: Option<i32>,
    pidfd: Option<OwnedFd>,
    adopted: bool,
    since: Option<Instant>,
    starts: u32,
    last_event: Option<String>,
    timer: Option<JoinHandle<()>>,
    health: Option<JoinHandle<()>>,
    /// Serializes this instance's blocking jobs.
    ops: Arc<tokio::sync::Mutex<()>>,
    port: u16,
    /// Reload shrank `instances`: dropped once stopped.
    retire: bool,
    /// The monitor of the current run.
    mon: Option<Mon>,
    /// The latest violations (at most [`RECENT_VIOLATIONS`]).
    violations: VecDeque<ViolationStatus>,
    violation_counts: BTreeMap<String, u64>,
    restart_reasons: BTreeMap<String, u32>,
    /// Health probe results of this instance's runs: pass, fail.
    probes: Arc<[AtomicU64; 2]>,
    /// A template's free slot, to be reused by the next new key. Slots keep
    /// their index (messages name instances by index) and their run id.
    vacant: bool,
    /// Template instances: launches that returned it, the last one.
    launches: u64,
    touched: Instant,
    /// Launches waiting for this instance to be ready.
    waiters: Vec<launch::Waiter>,
    /// Its start holds a slot of the admission bulkhead.
    admitted: bool,
    /// A template instance's namespace and session.
    key: launch::LaunchKey,
}

/// Violations kept per instance for `bulkhead status`.
const RECENT_VIOLATIONS: usize = 10;

struct Svc {
    cfg: Arc<Service>,
    insts: Vec<Inst>,
    /// Where the service is in its lifecycle (`supervisor::fleet`).
    phase: Phase,
    /// A moved service's new config: it comes back with it once every
    /// instance here stopped.
    next: Option<Box<Service>>,
    /// Counters over the daemon's life, instances gone included.
    totals: Totals,
}

#[derive(Default)]
struct Totals {
    starts: u64,
    restarts: BTreeMap<String, u64>,
    violations: BTreeMap<String, u64>,
    /// Probe results of instances no longer here: pass, fail.
    probes_gone: [u64; 2],
}

pub struct Daemon {
    cfg: Arc<Config>,
    config_path: PathBuf,
    tree: Subtree,
    mount: PathBuf,
    delegated: bool,
    controllers: Vec<&'static str>,
    init_exe: PathBuf,
    epoch: Instant,
    tx: mpsc::UnboundedSender<Msg>,
    svcs: Vec<Svc>,
    shutting_down: bool,
    reloads: super::reload::Reloads,
    ready_sent: bool,
    /// The STATUS= line systemd shows, as last sent.
    status_sent: String,
    /// When EXTEND_TIMEOUT_USEC was last sent (health checks hold READY).
    extended_at: Option<std::time::Instant>,
    jobs: usize,
    rng: u64,
    journal: Journal,
    sampler: Sampler,
    files: mpsc::UnboundedSender<FileCmd>,
    /// CAP_SYS_RESOURCE: PSI trigger windows need not be 2s multiples.
    privileged: bool,
    proc: PathBuf,
    launches: launch::Launches,
}

/// One log event about an instance; `code` (when there is one) is a field
/// of its own, so JSON and journal logs can be filtered on it.
fn level_event(level: Level, svc: &str, inst: &str, code: Option<Code>, message: &str) {
    macro_rules! ev {
        ($mac:ident) => {
            match code {
                Some(c) => tracing::$mac!(
                    service = svc,
                    instance = inst,
                    code = c.as_str(),
                    "{message}"
                ),
                None => tracing::$mac!(service = svc, instance = inst, "{message}"),
            }
        };
    }
    match level {
        Level::Debug => ev!(debug),
        Level::Info => ev!(info),
        Level::Warn => ev!(warn),
        Level::Error => ev!(error),
    }
}

/// `2026-11-23T11:05:27Z`.
fn now_stamp() -> String {
    let s = crate::sandbox::logsink::timestamp(SystemTime::now());
    // Seconds are enough for status lines.
    match s.find('.') {
        Some(dot) => format!("{}Z", &s[..dot]),
        None => s,
    }
}

impl Daemon {
    pub fn new(setup: Setup, tx: mpsc::UnboundedSender<Msg>) -> Daemon {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| {
                u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(32)
            })
            | 1;
        let (tx_files, sweeps) = (tx.clone(), tx.clone());
        let setup_launch = setup.cfg.supervisor.launch.clone();
        let mut d = Daemon {
            cfg: Arc::new(setup.cfg),
            config_path: setup.config_path,
            tree: setup.tree,
            mount: setup.mount,
            delegated: setup.delegated,
            controllers: setup.controllers,
            init_exe: setup.init_exe,
            epoch: Instant::now(),
            tx,
            svcs: Vec::new(),
            shutting_down: false,
            reloads: super::reload::Reloads::default(),
            ready_sent: false,
            status_sent: String::new(),
            extended_at: None,
            jobs: 0,
            rng: seed,
            journal: Journal::default(),
            sampler: Sampler::new(&mon::SWEEP_FILES),
            files: mon::spawn_file_watch(tx_files),
            privileged: caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            )
            .unwrap_or(false),
            proc: PathBuf::from("/proc"),
            launches: launch::Launches::new(&setup_launch),
        };
        if !d.privileged {
            tracing::info!(
                "the daemon lacks CAP_SYS_RESOURCE: PSI trigger windows are rounded up to \
                 multiples of 2s"
            );
        }
        let every = d.cfg.supervisor.monitor_interval.0;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if sweeps.send(Msg::Sweep).is_err() {
                    return;
                }
            }
        });
        let services: Vec<Service> = d.cfg.services.clone();
        for svc in services {
            let s = d.new_svc(svc);
            d.svcs.push(s);
        }
        d
    }

    fn now(&self) -> Mono {
        self.epoch.elapsed()
    }

    fn rand(&mut self) -> f64 {
        // xorshift64*: jitter only, not security.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.svcs.iter().position(|s| s.cfg.name == name)
    }

    /// The index of service `svc` if its instance `idx` still exists and is
    /// still on run `run_id` (a message about an earlier run is stale).
    fn current_run(&self, svc: &str, idx: usize, run_id: u64) -> Option<usize> {
        let si = self.find(svc)?;
        let inst = self.svcs[si].insts.get(idx)?;
        (inst.run_id == run_id).then_some(si)
    }

    /// The loop, until every service stopped and the cgroups are removed
    /// (on the blocking pool: the loop answers calls and pings the
    /// watchdog meanwhile).
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        self.reconcile();
        let mut cleaning = false;
        while let Some(msg) = rx.recv().await {
            let cleaned = matches!(msg, Msg::CleanedUp { .. });
            self.handle(msg);
            if cleaned {
                break;
            }
            self.reconcile();
            if !cleaning && self.finished() {
                cleaning = true;
                self.cleanup();
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Step {
                svc,
                idx,
                run_id,
                event,
                note,
            } => {
                let Some(si) = self.find(&svc) else { return };
                let Some(inst) = self.svcs[si].insts.get_mut(idx) else {
                    return;
                };
                if run_id.is_some_and(|g| g != inst.run_id) {
                    return;
                }
                let health = match &event {
                    Event::Unhealthy => Some(("unhealthy", Code::HealthCheckFailed)),
                    Event::Healthy
                        if matches!(
                            inst.machine.state(),
                            State::Running {
                                healthy: Some(false),
                                ..
                            }
                        ) =>
                    {
                        Some(("healthy", Code::HealthCheckFailed))
                    }
                    _ => None,
                };
                if let Some(n) = &note {
                    level_event(
                        Level::Warn,
                        &svc,
                        &inst.id,
                        Some(Code::HealthCheckFailed),
                        n,
                    );
                    inst.last_event = Some(format!(
                        "{} {} {n}",
                        now_stamp(),
                        Code::HealthCheckFailed.as_str()
                    ));
                }
                if let Some((what, code)) = health {
                    let e = EventRecord {
                        service: svc.clone(),
                        instance: inst.id.clone(),
                        kind: "health".into(),
                        code: (what == "unhealthy").then(|| code.as_str().to_string()),
                        message: note.clone().unwrap_or_else(|| what.to_string()),
                        ..EventRecord::default()
                    };
                    self.journal.push(e);
                }
                self.step(si, idx, event);
            }
            Msg::CgroupEvents(key) => self.cgroup_events(&key),
            Msg::Pressure { key, rule } => self.pressure(&key, rule),
            Msg::Sweep => self.sweep(),
            Msg::Spawned {
                svc,
                idx,
                run_id,
                result,
            } => {
                self.jobs -= 1;
                self.spawned(&svc, idx, run_id, result);
            }
            Msg::Exited { svc, idx, run_id } => self.exited(&svc, idx, run_id),
            Msg::Removed { result } => {
                self.jobs -= 1;
                if let Err(e) = result {
                    tracing::warn!(code = Code::CgroupIo.as_str(), "cgroup removal: {e}");
                }
            }
            Msg::MemoryHigh {
                svc,
                idx,
                instance,
                verdict,
                result,
            } => {
                self.jobs -= 1;
                self.memory_high_written(&svc, idx, &instance, verdict, result);
            }
            Msg::LiveLimits {
                order,
                svc,
                instance,
                result,
            } => {
                self.jobs -= 1;
                self.live_limits_written(order, &svc, &instance, result);
            }
            Msg::CleanedUp { failures } => {
                for f in failures {
                    tracing::warn!("{f}");
                }
                tracing::info!("stopped; cgroups removed");
            }
            Msg::LaunchTimeout(ticket) => self.launch_timeout(ticket),
            Msg::Call(Call {
                request: Request::Launch(req),
                reply,
            }) => self.launch(req, reply),
            Msg::Call(Call {
                request:
                    Request::Events {
                        service,
                        after,
                        wait: true,
                    },
                reply,
            }) => match service.as_deref().map(|s| self.lookup(s)) {
                Some(Err(e)) => {
                    let _ = reply.send(Err(e));
                }
                _ => self.journal.wait(service, after, reply),
            },
            Msg::Call(Call {
                request: Request::Reload,
                reply,
            }) => match self.refuse_while_stopping() {
                Ok(()) => super::reload::request(self, Some(reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Msg::Call(call) => {
                let reply = self.call(call.request);
                let _ = call.reply.send(reply);
            }
            Msg::Loaded(result) => super::reload::loaded(self, *result),
            Msg::Signal(sig) if sig == libc::SIGHUP && self.shutting_down => {
                tracing::info!("SIGHUP ignored: shutting down");
            }
            Msg::Signal(sig) if sig == libc::SIGHUP => super::reload::request(self, None),
            Msg::Signal(sig) => self.shutdown(sig),
            Msg::Watchdog => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }

    fn shutdown(&mut self, sig: i32) {
        if self.shutting_down {
            return;
        }
        let name = nix::sys::signal::Signal::try_from(sig).map_or("signal", |s| s.as_str());
        tracing::info!("{name}: stopping every service in reverse dependency order");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.shutting_down = true;
        let cmds = fleet::shutdown(&mut self.svcs);
        self.run_cmds(cmds);
        self.refuse_queued();
    }

    fn finished(&self) -> bool {
        self.shutting_down
            && self.jobs == 0
            && self
                .svcs
                .iter()
                .flat_map(|s| &s.insts)
                .all(|i| i.machine.state().kind() == StateKind::Stopped)
    }

    /// After the last service stopped: removes the subtree's cgroups on
    /// the blocking pool; [`Msg::CleanedUp`] ends the loop.
    fn cleanup(&mut self) {
        let services: Vec<PathBuf> = self
            .svcs
            .iter()
            .map(|s| {
                self.tree
                    .service_dir(s.cfg.member_of.as_deref(), &s.cfg.name)
            })
            .collect();
        let groups: Vec<PathBuf> = self
            .cfg
            .groups
            .iter()
            .map(|g| self.tree.group_dir(&g.name))
            .collect();
        let (mount, tree, delegated) = (self.mount.clone(), self.tree.clone(), self.delegated);
        super::job::run_after(
            Vec::new(),
            Vec::new(),
            self.tx.clone(),
            move || {
                let mut failures = Vec::new();
                for dir in services {
                    if let Err(e) = super::job::remove_tree(&dir) {
                        failures.push(format!("removing {}: {e}", dir.display()));
                    }
                }
                for dir in groups {
                    let _ = super::job::remove_tree(&dir);
                }
                super::leave_subtree(&mount, &tree, delegated);
                failures
            },
            |result| Msg::CleanedUp {
                failures: result.unwrap_or_else(|e| vec![e]),
            },
        );
    }
}

/// The probe of `svc`, if it has a health check ([`Target::for_service`]).
fn probe_target(svc: &Service, port: u16) -> Option<Target> {
    Target::for_service(svc, port)
}
