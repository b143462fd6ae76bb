//! Preparing a spawn: everything resolved in the parent (users to ids,
//! rlimit names to numbers, capability names to bits, the environment), so
//! the child has nothing to look up.

use std::path::PathBuf;

use crate::config::schema::IoClass;
use crate::config::units::Limit;
use crate::config::{Service, host::DEFAULT_PATH};

use super::spawn::NamespaceFlags;
use super::spec::InitSpec;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no user named {0} on this host")]
    UnknownUser(String),
    #[error("no group named {0} on this host")]
    UnknownGroup(String),
    #[error("unknown capability {0}")]
    UnknownCapability(String),
    #[error("unknown rlimit {0}")]
    UnknownRlimit(String),
}

/// RLIMIT_* by the config's name.
pub fn rlimit_resource(name: &str) -> Option<i32> {
    let r = match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    };
    i32::try_from(r).ok()
}

fn limit_value(l: Limit) -> u64 {
    match l {
        Limit::Value(v) => v,
        Limit::Infinity => libc::RLIM_INFINITY,
    }
}

/// A numeric id, or a name looked up on this host.
fn user_ids(name: &str) -> Result<(u32, u32, PathBuf), PlanError> {
    if let Ok(uid) = name.parse::<u32>() {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        return Ok(match user {
            Some(u) => (uid, u.gid.as_raw(), u.dir),
            None => (uid, uid, PathBuf::from("/")),
        });
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw(), u.dir)),
        _ => Err(PlanError::UnknownUser(name.to_string())),
    }
}

fn group_id(name: &str) -> Result<u32, PlanError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(PlanError::UnknownGroup(name.to_string())),
    }
}

/// The spec for `svc`. `extra_env` (BULKHEAD_SERVICE, ...) comes before the
/// service's own `env`, which wins. `seccomp` is the compiled program
/// (empty for none); `status_file` is where the init records the exit.
pub fn init_spec(
    svc: &Service,
    extra_env: &[(String, String)],
    seccomp: Vec<(u16, u8, u8, u32)>,
    status_file: Option<PathBuf>,
) -> Result<InitSpec, PlanError> {
    let (uid, mut gid, home) = match &svc.user {
        Some(u) => {
            let (uid, gid, home) = user_ids(u)?;
            (Some(uid), Some(gid), home)
        }
        None => (None, None, PathBuf::from("/root")),
    };
    if let Some(g) = &svc.group {
        gid = Some(group_id(g)?);
    }
    let mut groups = svc
        .supplementary_groups
        .iter()
        .map(|g| group_id(g))
        .collect::<Result<Vec<_>, _>>()?;
    if groups.is_empty()
        && let Some(g) = gid
    {
        // Leave root's supplementary groups behind.
        groups.push(g);
    }

    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), home.display().to_string()),
    ];
    if let Some(u) = &svc.user {
        env.push(("USER".into(), u.clone()));
        env.push(("LOGNAME".into(), u.clone()));
    }
    for (k, v) in extra_env.iter().map(|(k, v)| (k, v)).chain(svc.env.iter()) {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }

    let mut rlimits = Vec::new();
    for (name, lim) in &svc.resources.rlimits {
        let res = rlimit_resource(name).ok_or_else(|| PlanError::UnknownRlimit(name.clone()))?;
        rlimits.push((res, limit_value(lim.soft), limit_value(lim.hard)));
    }
    let capabilities = svc
        .security
        .capabilities
        .iter()
        .map(|c| {
            c.parse::<caps::Capability>()
                .map(|c| c.index())
                .map_err(|_| PlanError::UnknownCapability(c.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ns = namespaces(svc);
    Ok(InitSpec {
        program: svc.program.clone(),
        argv: svc.command.clone(),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: svc.working_dir.clone(),
        uid,
        gid,
        groups: if uid.is_some() || gid.is_some() {
            groups
        } else {
            Vec::new()
        },
        rlimits,
        nice: svc.nice,
        oom_score_adj: svc.oom_score_adj,
        io_priority: svc.io_priority.map(|p| {
            let class = match p.class {
                IoClass::Realtime => 1,
                IoClass::BestEffort => 2,
                IoClass::Idle => 3,
            };
            (class, p.level)
        }),
        capabilities,
        no_new_privs: svc.security.no_new_privs,
        seccomp,
        mount_proc: ns.pid && ns.mount,
        read_only: svc.mounts.read_only.clone(),
        read_write: svc.mounts.read_write.clone(),
        tmpfs: svc.mounts.tmpfs.clone(),
        inaccessible: svc.mounts.inaccessible.clone(),
        hostname: svc.hostname.clone(),
        loopback: ns.net,
        status_file,
        log: None,
        detach: false,
    })
}

pub fn namespaces(svc: &Service) -> NamespaceFlags {
    let n = &svc.namespaces;
    NamespaceFlags {
        pid: n.pid,
        mount: n.mount,
        net: n.net,
        uts: n.uts,
        ipc: n.ipc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names_map_to_resources() {
        assert_eq!(
            rlimit_resource("nofile"),
            i32::try_from(libc::RLIMIT_NOFILE).ok()
        );
        assert_eq!(rlimit_resource("as"), i32::try_from(libc::RLIMIT_AS).ok());
        assert_eq!(rlimit_resource("bogus"), None);
        for n in [
            "as",
            "core",
            "cpu",
            "data",
            "fsize",
            "locks",
            "memlock",
            "msgqueue",
            "nice",
            "nofile",
            "nproc",
            "rss",
            "rtprio",
            "rttime",
            "sigpending",
            "stack",
        ] {
            assert!(rlimit_resource(n).is_some(), "{n}");
        }
        assert_eq!(limit_value(Limit::Infinity), libc::RLIM_INFINITY);
    }

    #[test]
    fn root_user_resolves() {
        let (uid, gid, _) = user_ids("root").unwrap();
        assert_eq!((uid, gid), (0, 0));
        assert_eq!(user_ids("65534").unwrap().0, 65534);
        assert!(matches!(
            user_ids("no-such-user-here"),
            Err(PlanError::UnknownUser(_))
        ));
        assert_eq!(group_id("0").unwrap(), 0);
    }
}
