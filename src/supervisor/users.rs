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

/// The recorded keys to give back at daemon start: those of a template's
/// instances that were not adopted (they ended while no daemon ran, so
/// nothing removed them). `templates` names the config's templates; a key
/// of a static service, or of a service no longer configured, is kept.
pub fn unclaimed_instance_keys<'a>(
    recorded: impl IntoIterator<Item = &'a str>,
    templates: &std::collections::BTreeSet<&str>,
    adopted: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    recorded
        .into_iter()
        .filter(|k| {
            k.split_once('@')
                .is_some_and(|(svc, _)| templates.contains(svc))
                && !adopted.contains(*k)
        })
        .map(str::to_string)
        .collect()
}

/// Gives back, at daemon start, the uids of template instances that were
/// not adopted (see [`unclaimed_instance_keys`]).
pub fn release_unclaimed(
    cfg: &Config,
    adopted: &std::collections::BTreeSet<String>,
) -> Result<usize, Diagnostics> {
    let templates: std::collections::BTreeSet<&str> = cfg
        .services
        .iter()
        .filter(|s| s.isolation.is_some() && s.user.is_none())
        .map(|s| s.name.as_str())
        .collect();
    if templates.is_empty() {
        return Ok(0);
    }
    let mut reg = registry(cfg)?;
    let keys = unclaimed_instance_keys(reg.records().map(|(_, k)| k), &templates, adopted);
    for k in &keys {
        reg.release(k).map_err(|e| {
            Diagnostics::from(
                Diagnostic::new(Code::DynamicUser, "cannot release a dynamic user")
                    .context("instance", k)
                    .cause(e)
                    .suggest("check supervisor.state_dir/dynamic-users"),
            )
        })?;
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn only_unadopted_template_instances_are_given_back() {
        let templates: BTreeSet<&str> = ["sandbox", "t"].into_iter().collect();
        let adopted: BTreeSet<String> = ["sandbox@ns:a".to_string()].into_iter().collect();
        let recorded = [
            "sandbox@ns:a", // adopted: kept
            "sandbox@ns:b", // gone: released
            "t@session:x",  // gone: released
            "web@0",        // a static service: kept
            "old@ns:z",     // no longer configured: kept
            "sandboxed@0",  // a prefix of a template's name is not it
            "no-at-sign",
        ];
        assert_eq!(
            unclaimed_instance_keys(recorded, &templates, &adopted),
            ["sandbox@ns:b", "t@session:x"]
        );
        assert!(unclaimed_instance_keys(recorded, &BTreeSet::new(), &adopted).is_empty());
    }
}
