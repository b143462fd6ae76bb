//! Who a service runs as when it names no user: the dynamic uid of its
//! instance key, from the registry in the state dir ([`super::dynuser`]).

use std::path::Path;

use super::dynuser::{DynamicUsers, TransientUser, UidRange};
use crate::config::{Config, Service};
use crate::error::{Code, Diagnostic, Diagnostics};

/// The registry key of an instance: `service@instance`.
pub fn key(svc: &str, instance: &str) -> String {
    format!("{svc}@{instance}")
}

/// The registry of `cfg`'s state dir, checked against the host's
/// /etc/passwd and /etc/group.
pub fn registry(cfg: &Config) -> Result<DynamicUsers, Diagnostics> {
    let r = cfg.supervisor.dynamic_users;
    let range = UidRange {
        first: r.first,
        last: r.last,
    };
    DynamicUsers::open(&cfg.supervisor.state_dir, range, Path::new("/etc"))
        .map(|u| u.with_foreign_claims("/run/systemd/dynamic-uid"))
        .map_err(|e| {
            Diagnostics::from(
                Diagnostic::new(Code::DynamicUser, "cannot open the dynamic user registry")
                    .context("state_dir", cfg.supervisor.state_dir.display())
                    .cause(e)
                    .suggest("check supervisor.state_dir: it must be a directory root can write"),
            )
        })
}

/// The dynamic uid of `svc`'s instance `instance`, allocated on first use
/// and kept in the state dir; `None` when the service names a user.
pub fn dynamic_uid(
    cfg: &Config,
    svc: &Service,
    instance: &str,
) -> Result<Option<u32>, Diagnostics> {
    if svc.user.is_some() {
        return Ok(None);
    }
    registry(cfg)?
        .allocate(&key(&svc.name, instance))
        .map(|a| Some(a.uid))
        .map_err(|e| Diagnostics::from(e.diagnostic()))
}

/// The dynamic uid `svc`'s instance already has, without allocating one (a
/// probe joins a running instance, which has its uid since its spawn);
/// `None` when the service names a user.
pub fn existing_uid(
    cfg: &Config,
    svc: &Service,
    instance: &str,
) -> Result<Option<u32>, Diagnostics> {
    if svc.user.is_some() {
        return Ok(None);
    }
    let k = key(&svc.name, instance);
    match registry(cfg)?.lookup(&k) {
        Some(uid) => Ok(Some(uid)),
        None => Err(Diagnostics::from(
            Diagnostic::new(Code::DynamicUser, "the instance has no dynamic user")
                .context("instance", k)
                .suggest("restart the instance: its uid is allocated when it starts"),
        )),
    }
}

/// A uid for one `bulkhead exec`, freed when the guard drops; `None` when
/// `--user` was given.
pub fn transient(cfg: &Config, svc: &Service) -> Result<Option<TransientUser>, Diagnostics> {
    if svc.user.is_some() {
        return Ok(None);
    }
    registry(cfg)?
        .transient(&svc.name)
        .map(Some)
        .map_err(|e| Diagnostics::from(e.diagnostic()))
}

/// Gives back the dynamic uid of a template's instance once the instance is
/// gone (its cgroup removed): per-session and per-tenant instances come and
/// go, and a record kept for each would exhaust the range. A static
/// service's uid is kept, so its files stay its own across stop and start.
pub fn release_instance(cfg: &Config, svc: &Service, instance: &str) -> Result<(), Diagnostics> {
    if svc.user.is_some() || svc.isolation.is_none() {
        return Ok(());
    }
    registry(cfg)?.release(&key(&svc.name, instance)).map_err(|e| {
        Diagnostics::from(
            Diagnostic::new(Code::DynamicUser, "cannot release a dynamic user")
                .context("instance", key(&svc.name, instance))
                .cause(e)
                .suggest("check supervisor.state_dir/dynamic-users; the record can be removed by hand once the instance is gone"),
        )
    })
}
