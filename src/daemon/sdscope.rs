//! Under systemd, the services live in a delegated scope of their own.
//!
//! With `Delegate=yes`, the unit's cgroup U is the daemon's. Putting the
//! services below U would mean enabling controllers in U, and a cgroup with
//! controllers enabled for its children takes no processes ("no internal
//! processes"): systemd before 254 places `ExecStartPre=`/`ExecStart=` of a
//! restarted unit in U itself, so after a daemon crash every restart fails
//! with `status=219/CGROUP` while the services (still running, by
//! `KillMode=process`) keep U's subtree populated. `DelegateSubgroup=` (254+)
//! avoids that, but not on Debian 12's 252.
//!
//! So, when the daemon runs in a delegated `*.service` cgroup under a running
//! systemd, and `supervisor.cgroup_root` is `auto`, the subtree root R is a
//! transient scope next to the unit, `<slice>/<unit>-services.scope`, created
//! with `systemd-run --scope -p Delegate=yes`. The daemon stays in U, which
//! never gets `subtree_control`, so systemd can always restart it there. The
//! scope is in systemd's accounting (`systemctl status
//! bulkhead-services.scope`) and outlives the daemon: systemd keeps a scope
//! while it has processes, and `R/supervisor` holds one that keeps it when no
//! service runs, a `sleep infinity` (the "keeper"). A restarted daemon finds
//! the scope by its name and adopts the services in it. At a clean shutdown
//! the daemon kills the keeper once the services are gone, and systemd
//! removes the empty scope. The scope is ordered `Before=` the unit, so at
//! system shutdown the daemon stops the services (in dependency order)
//! before systemd stops the scope.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cgroup::discover;
use crate::error::{Code, Diagnostics};

/// The scope that holds the services of one systemd service unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The daemon's unit, e.g. `bulkhead.service`.
    pub service: String,
    /// The scope unit, e.g. `bulkhead-services.scope`.
    pub unit: String,
    /// The slice both live in, e.g. `system.slice`.
    pub slice: String,
    /// The scope's cgroup path, e.g. `/system.slice/bulkhead-services.scope`.
    pub cgroup: String,
}

/// The scope for a daemon whose own cgroup is `own`, when the services
/// should go in one: `own` is a delegated systemd service's cgroup
/// (`/<slice>/<name>.service`) and systemd runs. `None` otherwise (no
/// systemd, a configured root, a daemon started in `U/supervisor` by
/// `DelegateSubgroup=supervisor`, a cgroup that is not a service's).
pub fn scope_for(own: &str, delegated: bool, systemd_running: bool) -> Option<Scope> {
    if !delegated || !systemd_running {
        return None;
    }
    let own = own.trim_end_matches('/');
    let (parent, service) = own.rsplit_once('/')?;
    let stem = service.strip_suffix(".service")?;
    let slice = parent.rsplit('/').next()?;
    if stem.is_empty() || !slice.ends_with(".slice") {
        return None;
    }
    // A template instance (`bulkhead@a.service`): '@' would make the scope
    // name look like an instance of a template, which scopes cannot be.
    let unit = format!("{}-services.scope", stem.replace('@', "-"));
    Some(Scope {
        service: service.to_string(),
        cgroup: format!("{parent}/{unit}"),
        slice: slice.to_string(),
        unit,
    })
}

/// Whether systemd is the init system (`sd_booted()`'s test).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The `systemd-run` command line that creates `scope` with the keeper as
/// its first process.
pub fn systemd_run_args(scope: &Scope) -> Vec<String> {
    vec![
        "--scope".into(),
        "--quiet".into(),
        "--collect".into(),
        format!("--unit={}", scope.unit),
        format!("--slice={}", scope.slice),
        format!("--description=bulkhead's services (of {})", scope.service),
        "--property=Delegate=yes".into(),
        format!("--property=Before={}", scope.service),
        "--".into(),
        "sleep".into(),
        "infinity".into(),
    ]
}

/// What [`ensure`] found or made.
pub struct Placed {
    /// The scope's cgroup directory: the subtree root R.
    pub root: PathBuf,
    /// A new keeper to move into `R/supervisor`; `None` when a keeper from
    /// an earlier daemon is there already.
    pub keeper: Option<u32>,
}

/// The keeper this daemon started, reaped at [`release`].
static KEEPER: OnceLock<Mutex<Option<Child>>> = OnceLock::new();
/// `R/supervisor` of the scope, set once the daemon uses one.
static SUPERVISOR: OnceLock<PathBuf> = OnceLock::new();

/// Finds the scope (a daemon restart) or creates it.
pub fn ensure(mount: &Path, scope: &Scope) -> Result<Placed, Diagnostics> {
    let root = discover::cgroup_dir(mount, &scope.cgroup);
    let _ = SUPERVISOR.set(root.join("supervisor"));
    if root.is_dir() {
        // A keeper that an interrupted start left in the scope itself would
        // keep the controllers off for good: into `supervisor` with it.
        let sup = root.join("supervisor");
        let _ = crate::cgroup::create(&sup);
        let stray = std::fs::read_to_string(root.join("cgroup.procs")).unwrap_or_default();
        for pid in stray.split_whitespace() {
            let _ = crate::cgroup::write(&sup, "cgroup.procs", pid);
        }
        let procs = std::fs::read_to_string(sup.join("cgroup.procs")).unwrap_or_default();
        if procs.split_whitespace().next().is_some() {
            tracing::info!(scope = %scope.unit, "the services' scope is there; adopting");
            return Ok(Placed { root, keeper: None });
        }
        // The scope lives on its services; give it a keeper again.
        let child = Command::new("sleep")
            .arg("infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Diagnostics::failure(
                    Code::CgroupIo,
                    format!("cannot start the keeper of {}", scope.unit),
                    e,
                    "is coreutils' sleep on PATH?",
                )
            })?;
        let pid = child.id();
        keep(child);
        return Ok(Placed {
            root,
            keeper: Some(pid),
        });
    }
    let args = systemd_run_args(scope);
    let mut child = Command::new("systemd-run")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Diagnostics::failure(
                Code::CgroupIo,
                format!("cannot run systemd-run to create {}", scope.unit),
                e,
                "systemd-run comes with systemd; or set supervisor.cgroup_root to a path",
            )
        })?;
    let pid = child.id();
    // systemd moves the process into the scope, then systemd-run execs the
    // keeper: wait for the move.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| discover::own_cgroup(&t));
        if cg.as_deref() == Some(scope.cgroup.as_str()) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return Err(Diagnostics::failure(
                Code::CgroupIo,
                format!(
                    "cannot create the services' scope {} ({status}): systemd-run {}",
                    scope.unit,
                    args.join(" ")
                ),
                err.trim(),
                "see `journalctl -b -u bulkhead*`; or set supervisor.cgroup_root to a path",
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Diagnostics::failure(
                Code::CgroupIo,
                format!("cannot create the services' scope {}", scope.unit),
                "systemd did not place the keeper in it within 90 s",
                "is systemd busy? see `systemctl list-jobs`; or set supervisor.cgroup_root to a path",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child.stderr.take());
    tracing::info!(scope = %scope.unit, "created the services' scope");
    keep(child);
    Ok(Placed {
        root,
        keeper: Some(pid),
    })
}

fn keep(child: Child) {
    let slot = KEEPER.get_or_init(|| Mutex::new(None));
    if let Ok(mut k) = slot.lock() {
        *k = Some(child);
    }
}

/// At a clean shutdown, after the services stopped: kills the keeper, so
/// that systemd removes the empty scope. Nothing when there is no scope.
pub fn release() {
    let Some(sup) = SUPERVISOR.get() else {
        return;
    };
    if let Err(e) = crate::cgroup::write(sup, "cgroup.kill", 1) {
        tracing::warn!("cannot end the scope's keeper in {}: {e}", sup.display());
    }
    if let Some(slot) = KEEPER.get()
        && let Ok(mut k) = slot.lock()
        && let Some(mut child) = k.take()
    {
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delegated_service_gets_a_scope_beside_it() {
        let s = scope_for("/system.slice/bulkhead.service", true, true).unwrap();
        assert_eq!(s.unit, "bulkhead-services.scope");
        assert_eq!(s.slice, "system.slice");
        assert_eq!(s.service, "bulkhead.service");
        assert_eq!(s.cgroup, "/system.slice/bulkhead-services.scope");
        let t = scope_for(
            "/system.slice/system-bh.slice/bulkhead@a.service",
            true,
            true,
        )
        .unwrap();
        assert_eq!(t.unit, "bulkhead-a-services.scope");
        assert_eq!(t.slice, "system-bh.slice");
        assert_eq!(
            t.cgroup,
            "/system.slice/system-bh.slice/bulkhead-a-services.scope"
        );
    }

    #[test]
    fn no_scope_without_systemd_delegation_or_a_service() {
        assert_eq!(
            scope_for("/system.slice/bulkhead.service", false, true),
            None
        );
        assert_eq!(
            scope_for("/system.slice/bulkhead.service", true, false),
            None
        );
        // Started by DelegateSubgroup=supervisor: the caller passes U/supervisor.
        assert_eq!(
            scope_for("/system.slice/bulkhead.service/supervisor", true, true),
            None
        );
        assert_eq!(scope_for("/user.slice/session-3.scope", true, true), None);
        assert_eq!(scope_for("/bulkhead.service", true, true), None);
        assert_eq!(scope_for("/", true, true), None);
        assert_eq!(scope_for("/system.slice/.service", true, true), None);
    }

    #[test]
    fn systemd_run_creates_a_delegated_scope_ordered_before_the_unit() {
        let s = scope_for("/system.slice/bulkhead.service", true, true).unwrap();
        let a = systemd_run_args(&s);
        for want in [
            "--scope",
            "--unit=bulkhead-services.scope",
            "--slice=system.slice",
            "--property=Delegate=yes",
            "--property=Before=bulkhead.service",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        assert_eq!(&a[a.len() - 3..], ["--", "sleep", "infinity"]);
    }
}
