//! What every compartment is built from, shared by `bulkhead exec`, the
//! daemon's spawns and the health checks that run inside a service's
//! compartment: the service's seccomp program (with the `protect:` walls
//! that are seccomp rules), its cgroup limits, the host's cgroup2 mount, and
//! the error a failed spawn reports. It sits above `sandbox` and `cgroup`
//! and below everything that spawns, so none of those imports a command
//! module.

use std::path::Path;

use crate::cgroup::{discover, limits};
use crate::config::{self, Config, Service};
use crate::error::{Code, Diagnostic, Diagnostics};
use crate::sandbox::spawn;

/// The compiled seccomp program for `svc`, resolved against its
/// capabilities and this host (empty when unconfined).
pub fn seccomp_program(
    cfg: &Config,
    svc: &Service,
) -> Result<Vec<(u16, u8, u8, u32)>, Diagnostics> {
    crate::seccomp::load_cached_with(
        &svc.security.seccomp,
        &svc.security.capabilities,
        &seccomp_walls(&svc.protect),
        &cfg.supervisor.state_dir.join("seccomp-cache"),
    )
}

/// The walls of `protect` that are seccomp rules: address families,
/// realtime scheduling, the clock, the personality, setuid/setgid files.
pub fn seccomp_walls(p: &config::model::Protect) -> crate::seccomp::extra::Extra {
    crate::seccomp::extra::Extra {
        address_families: p.address_families.as_ref().map(|names| {
            names
                .iter()
                .filter_map(|n| config::units::address_family(n))
                .collect()
        }),
        restrict_realtime: p.realtime,
        protect_clock: p.clock,
        lock_personality: p.personality,
        restrict_suid_sgid: p.suid,
    }
}

/// The cgroup2 mount of this host, from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Result<std::path::PathBuf, Diagnostics> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    discover::cgroup2_mount(&mountinfo).ok_or_else(|| {
        Diagnostics::from(
            Diagnostic::new(Code::CgroupV2Missing, "no cgroup2 filesystem is mounted")
                .suggest("run `bulkhead check` for the fix"),
        )
    })
}

/// Resolves the io devices of `r` and writes its limits to the cgroup `dir`.
pub fn apply_limits(dir: &Path, r: &config::model::Resources) -> Result<(), Diagnostics> {
    let devices = limits::resolve_devices(r).map_err(|e| {
        Diagnostics::failure(
            Code::ConfigPath,
            "cannot resolve an io device",
            e,
            "name a block device",
        )
    })?;
    limits::apply(dir, r, &devices).map_err(|e| Diagnostics::from(e.diagnostic()))
}

/// `SPAWN_FAILED` with the step and errno, or "command not found".
pub fn spawn_diagnostic(e: &spawn::SpawnError, svc: &Service) -> Diagnostics {
    let mut d = match e {
        spawn::SpawnError::Step {
            step: crate::sandbox::spec::Step::Exec,
            errno,
        } if *errno == libc::ENOENT => Diagnostic::new(
            Code::SpawnFailed,
            format!("command not found: {}", svc.program.display()),
        ),
        _ => Diagnostic::new(
            Code::SpawnFailed,
            format!("cannot start `{}`", svc.command.join(" ")),
        ),
    };
    d = d.context("step", step_name(e));
    if let spawn::SpawnError::Step { errno, .. } = e {
        d = d.context(
            "errno",
            format!("{:?}", nix::errno::Errno::from_raw(*errno)),
        );
    }
    d.cause(e).suggest(e.suggestion()).into()
}

fn step_name(e: &spawn::SpawnError) -> &'static str {
    match e {
        spawn::SpawnError::Step { step, .. } => step.name(),
        spawn::SpawnError::Clone { .. } => "clone3",
        spawn::SpawnError::Prepare { .. } => "prepare",
        spawn::SpawnError::Timeout(_) => "init",
    }
}
