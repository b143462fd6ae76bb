//! Where a probe runs: the host, or one running instance.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::host::DEFAULT_PATH;
use crate::config::model::{Config, Probe, Service};
use crate::sandbox::enter::{Identity, InitRef};
use crate::sandbox::plan;
use crate::sandbox::spawn::NamespaceFlags;

/// The environment entries an exec probe keeps from the service's: its
/// PATH (so commands resolve as they do for the service), who it is, and
/// which instance. The rest of the service's `env` is not passed.
const KEPT_ENV: &[&str] = &["PATH=", "HOME=", "USER=", "LOGNAME=", "BULKHEAD_"];

/// Where a probe runs, and as whom.
#[derive(Debug, Clone)]
pub struct Compartment {
    /// The instance's init (its PID 1), in the daemon's PID namespace;
    /// `None`: the host, nothing is entered.
    pub pid: Option<i32>,
    /// Proves `pid` still names that init when its namespaces are opened.
    pidfd: Option<Arc<OwnedFd>>,
    /// The instance's cgroup; an exec probe is born in it.
    pub cgroup: Option<PathBuf>,
    /// The namespaces the service has of its own, which probes enter:
    /// `net` for every probe, all of them for an exec probe.
    pub namespaces: NamespaceFlags,
    /// Who an exec probe runs as: the service's user, groups,
    /// capabilities, rlimits and seccomp filter.
    pub identity: Arc<Identity>,
    /// An exec probe's working directory (the service's).
    pub working_dir: PathBuf,
    /// An exec probe's whole environment, `KEY=VALUE`.
    pub env: Vec<String>,
}

/// A running instance, as the driver knows it.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    /// Its allocated port (BULKHEAD_PORT).
    pub port: u16,
    /// Its init's pid, in the daemon's PID namespace.
    pub pid: i32,
    /// Its init's pidfd (a copy the compartment keeps).
    pub pidfd: Option<OwnedFd>,
    pub cgroup: PathBuf,
    /// Its dynamic uid, when its service names no user.
    pub dynamic_uid: Option<u32>,
}

impl Compartment {
    /// No compartment at all: probes run as plain children and connections
    /// of the caller (its namespaces, cgroup and credentials). For tests
    /// without privileges, and a model of what the probes do.
    pub fn host() -> Compartment {
        Compartment {
            pid: None,
            pidfd: None,
            cgroup: None,
            namespaces: NamespaceFlags {
                pid: false,
                mount: false,
                net: false,
                uts: false,
                ipc: false,
                cgroup: false,
            },
            identity: Arc::new(Identity::default()),
            working_dir: PathBuf::from("/"),
            env: vec![format!("PATH={DEFAULT_PATH}")],
        }
    }

    /// The compartment of a running instance of `svc`. For an exec probe
    /// this resolves the service's user and compiles its seccomp filter
    /// exactly as its spawn does (`sandbox::plan::init_spec`, the seccomp
    /// cache), so it is blocking: call it on the blocking pool.
    pub fn for_instance(
        cfg: &Config,
        svc: &Service,
        inst: Instance,
    ) -> Result<Compartment, String> {
        let mut comp = Compartment {
            pid: Some(inst.pid),
            pidfd: inst.pidfd.map(Arc::new),
            cgroup: Some(inst.cgroup),
            namespaces: plan::namespaces(svc),
            ..Compartment::host()
        };
        if matches!(
            svc.health.as_ref().map(|h| &h.probe),
            Some(Probe::Exec { .. })
        ) {
            let seccomp = crate::compartment::seccomp_program(cfg, svc).map_err(|d| {
                let text = d.to_string();
                format!(
                    "cannot compile the service's seccomp filter for the probe: {}",
                    text.lines().next().unwrap_or("unknown error")
                )
            })?;
            let extra = [
                ("BULKHEAD_SERVICE".to_string(), svc.name.clone()),
                ("BULKHEAD_INSTANCE".to_string(), inst.id.clone()),
                ("BULKHEAD_PORT".to_string(), inst.port.to_string()),
            ];
            let dynamic_uid = match inst.dynamic_uid {
                Some(uid) => Some(uid),
                None => crate::supervisor::users::existing_uid(cfg, svc, &inst.id)
                    .map_err(|d| format!("cannot find the service's dynamic user: {d}"))?,
            };
            let cpt = plan::Compartment {
                dynamic_uid,
                hidden: Vec::new(),
            };
            let spec = plan::init_spec(svc, &extra, seccomp, None, &cpt)
                .map_err(|e| format!("cannot prepare the probe: {e}"))?;
            comp.identity = Arc::new(Identity::of_spec(&spec));
            comp.env = spec
                .env
                .iter()
                .filter(|e| KEPT_ENV.iter().any(|k| e.starts_with(k)))
                .cloned()
                .collect();
            comp.working_dir = spec.working_dir;
        }
        Ok(comp)
    }

    /// The init to enter, if any.
    pub(super) fn init(&self) -> Option<InitRef<'_>> {
        Some(InitRef {
            pid: self.pid?,
            pidfd: self.pidfd.as_deref().map(AsFd::as_fd),
        })
    }

    /// The init whose network namespace a connection is made in: only when
    /// the service has a network namespace of its own.
    pub(super) fn net_init(&self) -> Option<InitRef<'_>> {
        self.init().filter(|_| self.namespaces.net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::host::fake::FakeHost;

    fn svc(yaml: &str) -> (Config, Service) {
        let cfg =
            crate::config::parse_str(yaml, std::path::Path::new("t.yaml"), &FakeHost::typical())
                .unwrap();
        let s = cfg.services[0].clone();
        (cfg, s)
    }

    fn inst() -> Instance {
        Instance {
            id: "0".into(),
            port: 9000,
            pid: 4242,
            pidfd: None,
            cgroup: "/sys/fs/cgroup/bulkhead/web/0".into(),
            dynamic_uid: Some(61300),
        }
    }

    #[test]
    fn an_exec_probe_runs_as_the_service() {
        let (cfg, s) = svc("services:
  web:
    command: [/bin/true]
    user: '65534'
    group: '65533'
    env: {PATH: /opt/bin, SECRET: x}
    working_dir: /srv
    namespaces: {net: true, uts: true}
    security: {seccomp: unconfined, capabilities: [CAP_NET_BIND_SERVICE]}
    health:
      exec: [check]
");
        let c = Compartment::for_instance(&cfg, &s, inst()).unwrap();
        assert_eq!(c.pid, Some(4242));
        assert!(c.namespaces.net && c.namespaces.uts && c.namespaces.pid);
        assert_eq!((c.identity.uid, c.identity.gid), (Some(65534), Some(65533)));
        assert_eq!(c.identity.capabilities, Some(vec![10]));
        assert_eq!(c.working_dir, PathBuf::from("/srv"));
        assert!(c.env.contains(&"PATH=/opt/bin".to_string()), "{:?}", c.env);
        assert!(c.env.contains(&"BULKHEAD_INSTANCE=0".to_string()));
        assert!(c.env.contains(&"BULKHEAD_PORT=9000".to_string()));
        assert!(!c.env.iter().any(|e| e.starts_with("SECRET=")));
        assert!(c.net_init().is_some());
    }

    #[test]
    fn a_network_probe_needs_no_identity() {
        let (cfg, s) = svc("services:
  web:
    command: [/bin/true]
    user: nobody
    health:
      tcp: {port: 80}
");
        let c = Compartment::for_instance(&cfg, &s, inst()).unwrap();
        assert_eq!(*c.identity, Identity::default());
        // No network namespace of its own: connections stay the daemon's.
        assert!(c.net_init().is_none());
        assert!(Compartment::host().init().is_none());
    }
}
