//! The blocking work of one instance, run on tokio's blocking pool: creating
//! its cgroup and spawning it, writing its limits and `memory.high`,
//! removing its cgroup. The driver runs the jobs of one instance one after
//! another, in the order it asked for them ([`run_after`]).
//!
//! A cgroup write can take long: `memory.high` below the usage makes the
//! kernel reclaim in the writing thread, for seconds. So none runs on the
//! driver's loop, which must keep answering `status` meanwhile.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};

use crate::cgroup::limits::{self, DevNum};
use crate::cgroup::subtree::Subtree;
use crate::cgroup::{self, kill};
use crate::config::model::{Config, Resources, Service};
use crate::config::units::Size;
use crate::error::{Code, Diagnostics};
use crate::exit::ExitRecord;
use crate::sandbox::plan;
use crate::sandbox::spawn::{self, SpawnRequest};
use crate::sandbox::spec::LogSpec;

/// Where an instance's files are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub cgroup: PathBuf,
    /// Where its init records how the service ended.
    pub status_file: PathBuf,
    pub log_file: PathBuf,
}

impl Paths {
    pub fn new(cfg: &Config, tree: &Subtree, svc: &Service, instance: &str) -> Paths {
        let name = format!("{}@{instance}", svc.name);
        Paths {
            cgroup: tree.instance_dir(svc.member_of.as_deref(), &svc.name, instance),
            status_file: cfg
                .supervisor
                .state_dir
                .join("status")
                .join(format!("{name}.json")),
            log_file: cfg.supervisor.log_dir.join(format!("{name}.log")),
        }
    }
}

/// Everything a spawn job needs, owned (it runs on another thread).
pub struct SpawnJob {
    pub cfg: Arc<Config>,
    pub svc: Arc<Service>,
    pub tree: Subtree,
    pub instance: String,
    pub paths: Paths,
    pub controllers: Vec<&'static str>,
    pub env: Vec<(String, String)>,
    pub init_exe: PathBuf,
}

/// A spawned instance.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// `/proc/<pid>/stat` start time, for the crash-safe record.
    pub start_time: u64,
    pub at: SystemTime,
}

/// `mkdir -p dir`, or an error that says what to do (`fix`).
pub fn create_dir(dir: &Path, fix: &str) -> Result<(), Diagnostics> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Diagnostics::failure(
            Code::CgroupIo,
            format!("cannot create {}", dir.display()),
            e,
            fix,
        )
    })
}

/// Creates the instance's cgroup, writes its limits and spawns it.
pub fn spawn(job: &SpawnJob) -> Result<Started, Diagnostics> {
    let svc = &job.svc;
    let dir = job
        .tree
        .create_instance(
            svc.member_of.as_deref(),
            &svc.name,
            &job.instance,
            &job.controllers,
        )
        .map_err(|e| Diagnostics::from(e.diagnostic()))?;
    crate::compartment::apply_limits(&dir, &svc.resources)?;
    crate::sandbox::devices::confine(&dir, svc)?;
    let seccomp = crate::compartment::seccomp_program(&job.cfg, svc)?;

    for d in [job.paths.status_file.parent(), job.paths.log_file.parent()]
        .into_iter()
        .flatten()
    {
        create_dir(d, "check supervisor.state_dir and supervisor.log_dir")?;
    }
    let cpt = plan::Compartment {
        dynamic_uid: crate::supervisor::users::dynamic_uid(&job.cfg, svc, &job.instance)?,
        hidden: plan::hidden_dirs(&job.cfg),
    };
    let mut spec = plan::init_spec(
        svc,
        &job.env,
        seccomp,
        Some(job.paths.status_file.clone()),
        &cpt,
    )
    .map_err(|e| {
        Diagnostics::failure(
            Code::ConfigUnknownAccount,
            "cannot prepare the service",
            e,
            "check user, group and capabilities",
        )
    })?;
    crate::sandbox::dirs::prepare(
        Path::new("/"),
        svc,
        spec.uid.unwrap_or(0),
        spec.gid.unwrap_or(0),
    )?;
    spec.log = Some(LogSpec {
        path: job.paths.log_file.clone(),
        max_size: match svc.logs.max_size {
            Size::Bytes(b) => b,
            Size::Max => u64::MAX,
        },
        keep: svc.logs.keep,
    });
    spec.detach = true;
    let req = SpawnRequest {
        spec: &spec,
        cgroup: &dir,
        namespaces: plan::namespaces(svc),
        die_with_parent: false,
        init_exe: &job.init_exe,
        attach_after_clone: false,
    };
    let child = spawn::spawn(&req).map_err(|e| crate::compartment::spawn_diagnostic(&e, svc))?;
    let at = SystemTime::now();
    let start_time =
        crate::supervisor::record::proc_start_time(Path::new("/proc"), child.pid).unwrap_or(0);
    Ok(Started {
        pid: child.pid,
        pidfd: child.pidfd,
        start_time,
        at,
    })
}

/// Removes an instance's cgroup, killing what is left in it.
pub fn remove(dir: &Path) -> Result<(), String> {
    kill::remove_killing(dir, Duration::from_secs(10)).map_err(|e| e.to_string())
}

/// Writes one file of an instance's cgroup (`memory.high`, for a throttle
/// and its restore).
pub fn write(dir: &Path, file: &'static str, value: &str) -> Result<(), String> {
    cgroup::write(dir, file, value).map_err(|e| e.to_string())
}

/// A reload's live limits: `resets` (limits gone back to unlimited) first,
/// then every limit `resources` sets.
pub fn live_limits(
    dir: &Path,
    resets: &[limits::Write],
    resources: &Resources,
    devices: &[DevNum],
) -> Result<(), String> {
    resets
        .iter()
        .try_for_each(|w| cgroup::write(dir, w.file, &w.value))
        .and_then(|()| limits::apply(dir, resources, devices))
        .map_err(|e| e.to_string())
}

/// Removes a cgroup and everything below it, killing what runs there (a
/// retired service's subtree, the services and groups at shutdown).
pub fn remove_tree(dir: &Path) -> Result<(), String> {
    kill::remove_tree(dir, Duration::from_secs(10)).map_err(|e| e.to_string())
}

/// Runs `work` on the blocking pool and sends `report(result)` to the loop
/// on `tx`. It starts once it holds every lock of `turns` (one instance's
/// `ops` each: the jobs those instances queued before it have run), taken
/// in order; `held` (locks taken already) are released with the others
/// when it is done. A job that panicked reports its panic as the error.
pub fn run_after<T, M>(
    turns: Vec<Arc<Mutex<()>>>,
    held: Vec<OwnedMutexGuard<()>>,
    tx: mpsc::UnboundedSender<M>,
    work: impl FnOnce() -> T + Send + 'static,
    report: impl FnOnce(Result<T, String>) -> M + Send + 'static,
) where
    T: Send + 'static,
    M: Send + 'static,
{
    tokio::spawn(async move {
        let mut guards = held;
        for t in turns {
            guards.push(t.lock_owned().await);
        }
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| format!("the job failed: {e}"));
        let _ = tx.send(report(result));
        drop(guards);
    });
}

/// How an instance ended: what its init recorded, else what waitid said
/// (`reaped`, for our own children), else a SIGKILL (an init killed before
/// it could record, e.g. by an OOM kill of the whole group, leaves nothing).
pub fn exit_record(status_file: &Path, reaped: Option<ExitRecord>) -> (ExitRecord, bool) {
    let recorded = std::fs::read(status_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok());
    match (recorded, reaped) {
        (Some(r), _) => (r, true),
        (None, Some(r)) => (r, false),
        (None, None) => (
            ExitRecord::Signaled {
                signal: libc::SIGKILL,
                core_dumped: false,
            },
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_sources() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("s.json");
        let kill = ExitRecord::Signaled {
            signal: 9,
            core_dumped: false,
        };
        assert_eq!(exit_record(&f, None), (kill, false));
        let reaped = ExitRecord::Exited { code: 137 };
        assert_eq!(exit_record(&f, Some(reaped)), (reaped, false));
        std::fs::write(&f, "").unwrap();
        assert!(!exit_record(&f, None).1);
        std::fs::write(&f, r#"{"exited":{"code":3}}"#).unwrap();
        assert_eq!(
            exit_record(&f, Some(reaped)),
            (ExitRecord::Exited { code: 3 }, true)
        );
    }
}
