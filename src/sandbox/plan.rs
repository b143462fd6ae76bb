//! Preparing a spawn: everything resolved in the parent (users to ids,
//! rlimit names to numbers, capability names to bits, the environment), so
//! the child has nothing to look up.

use std::path::PathBuf;

use crate::config::schema::{
    IoClass, PrivateDevices, PrivateTmp, ProtectHome, ProtectProc, ProtectSystem,
};
use crate::config::units::Limit;
use crate::config::{Service, host::DEFAULT_PATH};

use super::spawn::NamespaceFlags;
use super::spec::{HomeView, InitSpec, SystemView, Walls};

/// What a spawn knows beyond the service's config: who the service runs as
/// when it names no user, and what of bulkhead's it must not see.
#[derive(Debug, Clone, Default)]
pub struct Compartment {
    /// The dynamic uid (== gid) of a service without `user:`.
    pub dynamic_uid: Option<u32>,
    /// bulkhead's own directories: state, control socket, logs, config.
    pub hidden: Vec<PathBuf>,
}

/// The nofile limit a service gets unless it sets `rlimits.nofile`:
/// systemd's (soft 1024 for select(2)-era programs, hard 524288), whatever
/// the daemon's own limit is.
pub const DEFAULT_NOFILE: (u64, u64) = (1024, 524288);

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
    #[error("the service names no user and no dynamic user was allocated for it")]
    NoDynamicUser,
    #[error("cannot build the init's own seccomp filter: {0}")]
    InitFilter(String),
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
    cpt: &Compartment,
) -> Result<InitSpec, PlanError> {
    let (uid, mut gid, home, user) = match &svc.user {
        Some(u) => {
            let (uid, gid, home) = user_ids(u)?;
            (Some(uid), Some(gid), home, u.clone())
        }
        None => {
            let uid = cpt.dynamic_uid.ok_or(PlanError::NoDynamicUser)?;
            (
                Some(uid),
                Some(uid),
                PathBuf::from("/"),
                dynamic_user_name(uid),
            )
        }
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
    env.push(("USER".into(), user.clone()));
    env.push(("LOGNAME".into(), user));
    let dirs: Vec<(String, String)> = svc
        .directories
        .kinds()
        .iter()
        .filter(|(_, _, names)| !names.is_empty())
        .map(|(base, var, names)| {
            let paths: Vec<String> = names.iter().map(|n| format!("{base}/{n}")).collect();
            (var.to_string(), paths.join(":"))
        })
        .collect();
    for (k, v) in extra_env
        .iter()
        .chain(&dirs)
        .map(|(k, v)| (k, v))
        .chain(svc.env.iter())
    {
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
    if !svc.resources.rlimits.contains_key("nofile") {
        let (soft, hard) = default_nofile(own_nofile_hard());
        let res =
            rlimit_resource("nofile").ok_or_else(|| PlanError::UnknownRlimit("nofile".into()))?;
        rlimits.push((res, soft, hard));
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
        init_seccomp: crate::seccomp::own::init_program()
            .map_err(PlanError::InitFilter)?
            .to_vec(),
        mount_proc: ns.pid && ns.mount,
        unshare_mount: false,
        read_only: svc.mounts.read_only.clone(),
        read_write: svc.mounts.read_write.clone(),
        tmpfs: svc.mounts.tmpfs.clone(),
        inaccessible: svc.mounts.inaccessible.clone(),
        hostname: svc.hostname.clone(),
        loopback: ns.net,
        status_file,
        log: None,
        detach: false,
        walls: walls(svc, cpt),
    })
}

/// USER and LOGNAME of a dynamic user.
pub fn dynamic_user_name(uid: u32) -> String {
    crate::supervisor::dynuser::user_name(uid)
}

/// The walls `svc.protect` asks for, resolved for the init.
pub fn walls(svc: &Service, cpt: &Compartment) -> Walls {
    let p = &svc.protect;
    let mut writable = svc.directories.paths();
    writable.dedup();
    Walls {
        system: match p.system {
            ProtectSystem::Strict => SystemView::Strict,
            ProtectSystem::Full => SystemView::Full,
            ProtectSystem::Off => SystemView::Off,
        },
        home: match p.home {
            ProtectHome::Inaccessible => HomeView::Inaccessible,
            ProtectHome::ReadOnly => HomeView::ReadOnly,
            ProtectHome::Off => HomeView::Off,
        },
        private_tmp: p.tmp == PrivateTmp::Private,
        private_dev: (p.devices == PrivateDevices::Private).then(|| {
            let mut nodes: Vec<PathBuf> = super::walls::MINIMAL_DEV
                .iter()
                .map(PathBuf::from)
                .collect();
            nodes.extend(p.device_allow.iter().filter_map(|e| {
                let path = e.split_whitespace().next()?;
                path.starts_with("/dev/").then(|| PathBuf::from(path))
            }));
            nodes
        }),
        kernel: p.kernel,
        cgroup: p.cgroups && svc.namespaces.mount,
        hidepid: p.proc == ProtectProc::Invisible,
        writable,
        hidden: if svc.namespaces.mount {
            cpt.hidden.clone()
        } else {
            Vec::new()
        },
    }
}

/// The daemon's own hard nofile limit.
fn own_nofile_hard() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX)
}

/// bulkhead's own directories, hidden in every compartment: the state dir,
/// the control socket's, the log dir and the config's. A top-level
/// directory (`/run`, `/etc`) is never hidden whole: for the config, the
/// file alone is then.
pub fn hidden_dirs(cfg: &crate::config::Config) -> Vec<PathBuf> {
    let s = &cfg.supervisor;
    let deep = |p: &std::path::Path| p.components().count() > 2;
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.retain(|o| !o.starts_with(&p));
            out.push(p);
        }
    };
    for d in [
        Some(s.state_dir.clone()),
        s.control_socket.parent().map(PathBuf::from),
        Some(s.log_dir.clone()),
    ]
    .into_iter()
    .flatten()
    {
        if deep(&d) {
            add(d);
        }
    }
    match cfg.source.parent() {
        Some(d) if d.is_absolute() && deep(d) => add(d.to_path_buf()),
        _ if cfg.source.is_absolute() => add(cfg.source.clone()),
        _ => {}
    }
    out
}

/// (soft, hard) nofile for a service that sets none: at most the daemon's
/// own hard limit (raising one needs CAP_SYS_RESOURCE, which a daemon in a
/// container may lack), so a lower limit is never raised.
pub fn default_nofile(own_hard: u64) -> (u64, u64) {
    let hard = DEFAULT_NOFILE.1.min(own_hard);
    (DEFAULT_NOFILE.0.min(hard), hard)
}

pub fn namespaces(svc: &Service) -> NamespaceFlags {
    let n = &svc.namespaces;
    NamespaceFlags {
        pid: n.pid,
        mount: n.mount,
        net: n.net,
        uts: n.uts,
        ipc: n.ipc,
        cgroup: svc.protect.cgroups && n.mount,
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
    fn nofile_default_is_systemds() {
        assert_eq!(default_nofile(1 << 20), (1024, 524288));
        assert_eq!(default_nofile(u64::MAX), (1024, 524288));
        assert_eq!(default_nofile(4096), (1024, 4096));
        assert_eq!(default_nofile(512), (512, 512));
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
