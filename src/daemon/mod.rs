//! `bulkhead run`: the supervisor daemon.
//!
//! Start-up, in order, each step failing fast with a clear error:
//! 1. read and validate the config;
//! 2. preflight (the `bulkhead check` findings; any failure stops here);
//! 3. take the state dir's lock (one daemon per state dir);
//! 4. set up the cgroup subtree and move the daemon into `R/supervisor`;
//! 5. adopt what a previous run left (docs/ARCHITECTURE.md decision 11): live
//!    instances that match their record are taken over with `pidfd_open`;
//!    every other instance cgroup is killed and removed as an orphan;
//! 6. bind the control socket and the metrics listener, then start the
//!    `autostart` services in `depends_on` order, and tell systemd READY=1
//!    once they settled.
//!
//! SIGTERM/SIGINT stop every service in reverse dependency order and remove
//! the cgroups; SIGHUP reloads the config. The driver ([`driver`]) runs the
//! state machines; [`job`] holds the blocking work; the probes are
//! [`crate::health`]'s.

pub mod driver;
pub mod job;
pub mod journal;
pub mod monitor;
mod reload;
pub mod sdscope;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::api;
use crate::cgroup::subtree::{self, Subtree};
use crate::cgroup::{discover, kill, limits};
use crate::check;
use crate::config::{self, model::Config, schema::CgroupRoot};
use crate::error::{Code, Diagnostic, Diagnostics};
use crate::supervisor::record::{self, InstanceRecord};
use driver::{Daemon, Msg, Setup};

/// How the daemon writes its own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; to the journal when started by systemd.
    Text,
    /// One JSON object per line.
    Json,
}

pub struct Options {
    pub config: PathBuf,
    pub log_format: LogFormat,
}

/// Sets up tracing: JSON, or the journal when systemd started us with one
/// (`JOURNAL_STREAM`), or text on stderr. `RUST_LOG` filters (default info).
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if format == LogFormat::Json {
        let _ = registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init();
        return;
    }
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        // Fields as journald names them (`SERVICE=web INSTANCE=0
        // CODE=WATCH_VIOLATION`), so `journalctl -u bulkhead SERVICE=web`
        // finds a service's events.
        let journald = journald.with_field_prefix(None);
        let _ = registry.with(journald).try_init();
        return;
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .try_init();
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(opts: &Options) -> Result<(), Diagnostics> {
    init_tracing(opts.log_format);
    let cfg = config::load(&opts.config)?;

    // Preflight: the same findings as `bulkhead check`.
    let roots = check::Roots {
        configured_root: match &cfg.supervisor.cgroup_root {
            CgroupRoot::Path(p) => Some(p.clone()),
            CgroupRoot::Auto => None,
        },
        ..check::Roots::host()
    };
    let findings = check::run(&roots);
    let failed: Vec<_> = findings
        .iter()
        .filter(|f| f.status == check::Status::Fail)
        .cloned()
        .collect();
    if !failed.is_empty() {
        return Err(Diagnostic::new(
            Code::CheckFailed,
            format!(
                "this host cannot run bulkhead:\n{}",
                check::render(&failed).trim_end()
            ),
        )
        .suggest("fix what `bulkhead check` reports, then start the daemon again")
        .into());
    }

    let state_dir = &cfg.supervisor.state_dir;
    job::create_dir(state_dir, "run as root, or set supervisor.state_dir")?;
    let _lock = lock(state_dir)?;

    let (mount, tree, delegated, controllers) = subtree_for(&cfg)?;
    // The control socket refuses peers in R, and in the root `bulkhead
    // exec` picks when that is not R (a delegated daemon); R/supervisor,
    // the daemon's own cgroup, stays served (src/api/peer.rs).
    let exec_root = discover::choose_root(&mount, configured_root(&cfg), None, false);
    let compartments =
        api::peer::Compartments::of_daemon(Path::new("/proc"), &mount, &tree.root, &[exec_root])
            .ok_or_else(|| {
                Diagnostics::from(
            Diagnostic::new(
                Code::CgroupIo,
                format!(
                    "the cgroup root {} is not under the cgroup2 mount {}",
                    tree.root.display(),
                    mount.display()
                ),
            )
            .suggest(
                "set supervisor.cgroup_root to a directory under the cgroup2 mount, or to auto",
            ),
        )
            })?;
    tracing::info!(
        root = %tree.root.display(),
        delegated,
        "cgroup subtree ready; the daemon runs in {}",
        std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| discover::own_cgroup(&t))
            .unwrap_or_default()
    );
    let init_exe = crate::sandbox::spawn::init_exe().map_err(|e| {
        Diagnostics::failure(
            Code::CgroupIo,
            "cannot find the bulkhead binary",
            e,
            "is /proc mounted?",
        )
    })?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Diagnostics::failure(
                Code::CgroupIo,
                "cannot start the runtime",
                e,
                "this is a bug",
            )
        })?;
    rt.block_on(async {
        let (tx, rx) = mpsc::unbounded_channel();
        // The metrics port first: failing there leaves no socket file behind.
        let exporter =
            api::exporter::bind(cfg.supervisor.metrics_listen).map_err(Diagnostics::from)?;
        let listener =
            api::server::bind(&cfg.supervisor.control_socket).map_err(Diagnostics::from)?;
        let socket = cfg.supervisor.control_socket.clone();
        let mut daemon = Daemon::new(
            Setup {
                cfg,
                config_path: opts.config.clone(),
                tree,
                mount,
                delegated,
                controllers,
                init_exe,
            },
            tx.clone(),
        );
        adopt(&mut daemon);
        daemon.start_autostart();
        spawn_signals(&tx)?;
        spawn_watchdog(&tx);
        let (calls_tx, mut calls_rx) = mpsc::channel::<api::proto::Call>(64);
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(c) = calls_rx.recv().await {
                if forward.send(Msg::Call(c)).is_err() {
                    return;
                }
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (mstop_tx, mstop_rx) = tokio::sync::oneshot::channel::<()>();
        let exporter = exporter.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            tokio::spawn(api::exporter::serve(l, calls_tx.clone(), async move {
                let _ = mstop_rx.await;
            }))
        });
        let server = tokio::spawn(api::server::serve(
            listener,
            calls_tx,
            async move {
                let _ = stop_rx.await;
            },
            compartments,
        ));
        tracing::info!(socket = %socket.display(), "control socket ready");
        daemon.run(rx).await;
        let _ = stop_tx.send(());
        let _ = mstop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        if let Some(exporter) = exporter {
            let _ = tokio::time::timeout(Duration::from_secs(2), exporter).await;
        }
        let _ = std::fs::remove_file(&socket);
        Ok::<(), Diagnostics>(())
    })
}

/// One daemon per state dir: an exclusive flock on `<state_dir>/daemon.lock`,
/// held for the daemon's life.
fn lock(state_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Diagnostics> {
    let path = state_dir.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Diagnostics::failure(
                Code::CgroupIo,
                format!("cannot open {}", path.display()),
                e,
                "run as root",
            )
        })?;
    let mut f = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, e)| {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Diagnostics::failure(
                Code::DaemonRunning,
                format!(
                    "another bulkhead daemon is running (pid {})",
                    holder.trim()
                ),
                e,
                "stop it first (`systemctl stop bulkhead`), or give this one its own supervisor.state_dir",
            )
        },
    )?;
    use std::io::{Seek, Write};
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = writeln!(f, "{}", std::process::id());
    Ok(f)
}

/// Finds the cgroup2 mount and root, sets up the subtree and moves the
/// daemon into `R/supervisor` (or, under systemd, the scope's keeper: see
/// [`sdscope`]; the daemon then stays in its unit's cgroup).
fn subtree_for(cfg: &Config) -> Result<(PathBuf, Subtree, bool, Vec<&'static str>), Diagnostics> {
    let mount = crate::compartment::cgroup2_mount()?;
    let raw_own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| discover::own_cgroup(&t));
    // systemd's DelegateSubgroup=supervisor starts the daemon in
    // R/supervisor already: the delegated root is then its parent.
    let own = raw_own
        .clone()
        .map(|o| match o.strip_suffix("/supervisor") {
            Some(parent)
                if !parent.is_empty()
                    && check::is_delegated(&discover::cgroup_dir(&mount, parent)) =>
            {
                parent.to_string()
            }
            _ => o,
        });
    let delegated = own
        .as_deref()
        .is_some_and(|o| o != "/" && check::is_delegated(&discover::cgroup_dir(&mount, o)));
    let scope = match (configured_root(cfg), raw_own.as_deref()) {
        (None, Some(raw)) => sdscope::scope_for(
            raw,
            check::is_delegated(&discover::cgroup_dir(&mount, raw)),
            sdscope::systemd_running(),
        ),
        _ => None,
    };
    let (root, pid) = match &scope {
        Some(scope) => {
            let placed = sdscope::ensure(&mount, scope)?;
            (placed.root, placed.keeper)
        }
        None => (
            discover::choose_root(&mount, configured_root(cfg), own.as_deref(), delegated),
            Some(std::process::id()),
        ),
    };
    let controllers = controllers_for(cfg);
    let tree = subtree::setup(&mount, &root, &controllers, pid)
        .map_err(|e| Diagnostics::from(e.diagnostic()))?;
    for g in &cfg.groups {
        apply_group(&tree, g, &controllers)?;
    }
    // A scope is systemd's: the daemon never removes it (see leave_subtree).
    Ok((mount, tree, delegated || scope.is_some(), controllers))
}

/// `supervisor.cgroup_root` when it names a path.
fn configured_root(cfg: &Config) -> Option<&Path> {
    match &cfg.supervisor.cgroup_root {
        CgroupRoot::Path(p) => Some(p.as_path()),
        CgroupRoot::Auto => None,
    }
}

/// cpu, memory, io and pids always (status reads their files), cpuset when
/// a service or group uses it.
pub(crate) fn controllers_for(cfg: &Config) -> Vec<&'static str> {
    let mut c = vec!["cpu", "memory", "io", "pids"];
    let uses_cpuset = cfg
        .services
        .iter()
        .map(|s| &s.resources)
        .chain(cfg.groups.iter().map(|g| &g.resources))
        .any(|r| limits::controllers_needed(r).contains(&"cpuset"));
    if uses_cpuset {
        c.insert(0, "cpuset");
    }
    c
}

/// Creates a group's cgroup (enabling controllers for its services) and
/// writes its aggregate limits.
pub(crate) fn apply_group(
    tree: &Subtree,
    g: &config::model::Group,
    controllers: &[&str],
) -> Result<(), Diagnostics> {
    let dir = tree.group_dir(&g.name);
    crate::cgroup::create(&dir).map_err(|e| Diagnostics::from(e.diagnostic()))?;
    crate::cgroup::enable_controllers(&dir, controllers)
        .map_err(|e| Diagnostics::from(e.diagnostic()))?;
    crate::compartment::apply_limits(&dir, &g.resources)
}

/// The crash-safe record of a freshly spawned instance (docs/ARCHITECTURE.md 11).
pub(crate) fn write_record(
    state_dir: &Path,
    job: &job::SpawnJob,
    started: &job::Started,
    restarts: u32,
) {
    let env = |k: &str| {
        job.env
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    };
    let rec = InstanceRecord {
        version: record::VERSION,
        service: job.svc.name.clone(),
        instance: job.instance.clone(),
        pid: started.pid,
        start_time: started.start_time,
        cgroup: job.paths.cgroup.clone(),
        config_hash: record::spawn_hash(&job.svc),
        started_at_unix_ms: started
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        restarts,
        status_file: job.paths.status_file.clone(),
        port: env("BULKHEAD_PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        namespace: env("BULKHEAD_NAMESPACE").map(str::to_string),
        session: env("BULKHEAD_SESSION").map(str::to_string),
    };
    if let Err(e) = record::write(state_dir, &rec) {
        tracing::error!(
            service = %rec.service,
            "cannot write the instance record: {e}; a daemon restart will treat it as an orphan"
        );
    }
}

pub(crate) fn remove_record(state_dir: &Path, service: &str, instance: &str) {
    if let Err(e) = record::remove(state_dir, service, instance) {
        tracing::warn!(service, "cannot remove the instance record: {e}");
    }
}

/// Adoption at start: live instances matching their record are taken over;
/// everything else under the subtree goes.
fn adopt(daemon: &mut Daemon) {
    let cfg = daemon.cfg().clone();
    let state_dir = &cfg.supervisor.state_dir;
    let (records, bad) = record::read_all(state_dir);
    for (path, why) in bad {
        tracing::warn!(
            "ignoring unreadable instance record {}: {why}",
            path.display()
        );
        let _ = std::fs::remove_file(&path);
    }
    let tree = daemon.tree().clone();
    let mount = daemon.mount().to_path_buf();
    let leaves = leaves_under(&tree);
    let proc_root = Path::new("/proc");
    let live = |pid: i32| record::live(proc_root, pid);
    let plan = record::plan_adoption(&records, &live, &mount, &tree.root, &cfg, &leaves);
    for (rec, why) in &plan.stale {
        tracing::info!(service = %rec.service, instance = %rec.instance, "dropping the record of pid {}: {why}", rec.pid);
        remove_record(state_dir, &rec.service, &rec.instance);
    }
    for dir in &plan.orphans {
        tracing::warn!("orphan cgroup {}: killing and removing it", dir.display());
        if let Err(e) = kill::remove_killing(dir, Duration::from_secs(10)) {
            tracing::error!("cannot remove orphan {}: {e}", dir.display());
        }
    }
    let mut adopted = std::collections::BTreeSet::new();
    for a in plan.adopt {
        let rec = &a.record;
        // pidfd_open, then check the process is still the recorded one: a
        // pid reused between the check above and the open is caught here.
        let pidfd = match rustix::process::Pid::from_raw(rec.pid)
            .ok_or(rustix::io::Errno::INVAL)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()))
        {
            Ok(fd) => fd,
            Err(e) => {
                tracing::info!(service = %rec.service, "pid {} is gone ({e}); starting afresh", rec.pid);
                remove_record(state_dir, &rec.service, &rec.instance);
                let _ = kill::remove_killing(&rec.cgroup, Duration::from_secs(10));
                continue;
            }
        };
        if record::proc_start_time(proc_root, rec.pid).ok() != Some(rec.start_time) {
            tracing::info!(service = %rec.service, "pid {} was reused; starting afresh", rec.pid);
            remove_record(state_dir, &rec.service, &rec.instance);
            let _ = kill::remove_killing(&rec.cgroup, Duration::from_secs(10));
            continue;
        }
        adopted.insert(crate::supervisor::users::key(&rec.service, &rec.instance));
        daemon.adopt_instance(rec, pidfd, a.config_changed);
    }
    // A template instance that ended while no daemon ran gives its uid back.
    match crate::supervisor::users::release_unclaimed(&cfg, &adopted) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!("gave back the dynamic users of {n} template instances that are gone")
        }
        Err(d) => tracing::warn!("{}", d.to_string().trim_end()),
    }
}

/// Every cgroup under the root; the adoption plan picks the instance leaves
/// (and leaves `R/supervisor` and live `R/exec/<pid>` alone).
fn leaves_under(tree: &Subtree) -> Vec<PathBuf> {
    kill::descendants(&tree.root).unwrap_or_default()
}

/// At shutdown: the daemon leaves `R/supervisor` and, when it created the
/// root itself (not delegated), removes it.
pub(crate) fn leave_subtree(mount: &Path, tree: &Subtree, delegated: bool) {
    // Under systemd, the keeper goes and systemd removes the empty scope.
    sdscope::release();
    if delegated {
        return;
    }
    let me = std::process::id();
    if let Err(e) = crate::cgroup::write(mount, "cgroup.procs", me) {
        tracing::warn!(
            "cannot leave the subtree ({e}): {} stays",
            tree.root.display()
        );
        return;
    }
    if let Err(e) = crate::cgroup::remove(&tree.supervisor_dir()) {
        tracing::warn!("{e}: the subtree {} stays", tree.root.display());
        return;
    }
    // `bulkhead exec`'s parent, when no exec runs any more.
    let _ = crate::cgroup::remove(&tree.root.join("exec"));
    // Still holds `exec` cgroups of running `bulkhead exec`s: then it stays.
    if let Err(e) = crate::cgroup::remove(&tree.root) {
        tracing::info!(
            "{e}: the subtree stays (a running `bulkhead exec`, or a cgroup made by hand)"
        );
    }
}

fn spawn_signals(tx: &mpsc::UnboundedSender<Msg>) -> Result<(), Diagnostics> {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, num) in [
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::hangup(), libc::SIGHUP),
    ] {
        let mut s = signal(kind).map_err(|e| {
            Diagnostics::failure(Code::CgroupIo, "cannot handle signals", e, "this is a bug")
        })?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(Msg::Signal(num)).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

/// Pings systemd's watchdog from the main loop at half its period, so a
/// stuck loop stops the pings.
fn spawn_watchdog(tx: &mpsc::UnboundedSender<Msg>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            if tx.send(Msg::Watchdog).is_err() {
                return;
            }
        }
    });
}
