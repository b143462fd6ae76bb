//! The effective configuration: defaults applied, `defaults` -> group ->
//! service merged, every value checked. This is what the rest of bulkhead
//! reads, and what `bulkhead validate --print` shows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::schema::{
    Action, CgroupRoot, IoClass, Isolation, Listen, Network, PrivateDevices, PrivateTmp, ProbePort,
    ProtectHome, ProtectProc, ProtectSystem, RestartPolicy, Stall,
};
use super::units::{Cpu, CpuList, Dur, IdRange, Percent, PortRange, Rlimit, Sig, Size};

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file this was read from.
    pub source: PathBuf,
    pub supervisor: Supervisor,
    /// Groups in file order.
    pub groups: Vec<Group>,
    /// Services in file order.
    pub services: Vec<Service>,
}

impl Config {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Supervisor {
    pub cgroup_root: CgroupRoot,
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
    pub metrics_listen: Listen,
    pub log_dir: PathBuf,
    pub monitor_interval: Dur,
    pub launch: Launch,
    pub ports: PortRange,
    /// uids (== gids) handed to services without `user`, one per instance.
    pub dynamic_users: IdRange,
}

#[derive(Debug, Clone, Serialize)]
pub struct Launch {
    pub max_concurrent: u32,
    pub max_queue: u32,
    pub queue_timeout: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub resources: Resources,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub command: Vec<String>,
    /// `command[0]` resolved against PATH when it has no slash; absolute.
    pub program: PathBuf,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    pub autostart: bool,
    pub depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_of: Option<String>,
    pub instances: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nice: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
    /// `Some` makes the service a template of on-demand instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    pub namespaces: Namespaces,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub mounts: Mounts,
    pub protect: Protect,
    pub directories: Directories,
    pub resources: Resources,
    pub security: Security,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    pub watch: Watch,
    pub restart: Restart,
    pub stop: Stop,
    pub logs: Logs,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct IoPriority {
    pub class: IoClass,
    pub level: u32,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub net: bool,
    pub uts: bool,
    pub ipc: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Mounts {
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    pub tmpfs: Vec<PathBuf>,
    pub inaccessible: Vec<PathBuf>,
}

/// The walls between a service and the host. `Protect::default()` is every
/// wall up; each field relaxed is a line in `bulkhead security`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protect {
    pub system: ProtectSystem,
    pub home: ProtectHome,
    pub tmp: PrivateTmp,
    pub devices: PrivateDevices,
    pub device_allow: Vec<String>,
    pub kernel: bool,
    pub cgroups: bool,
    pub proc: ProtectProc,
    pub network: Network,
    /// `None`: any family (`[any]`).
    pub address_families: Option<Vec<String>>,
    pub realtime: bool,
    pub clock: bool,
    pub personality: bool,
    /// Setting S_ISUID/S_ISGID refused (RestrictSUIDSGID).
    pub suid: bool,
}

/// The address families a service gets unless it says otherwise.
pub const DEFAULT_FAMILIES: &[&str] = &["unix", "inet", "inet6", "netlink"];

impl Default for Protect {
    fn default() -> Protect {
        Protect {
            system: ProtectSystem::Strict,
            home: ProtectHome::Inaccessible,
            tmp: PrivateTmp::Private,
            devices: PrivateDevices::Private,
            device_allow: Vec::new(),
            kernel: true,
            cgroups: true,
            proc: ProtectProc::Invisible,
            network: Network::Host,
            address_families: Some(DEFAULT_FAMILIES.iter().map(|s| s.to_string()).collect()),
            realtime: true,
            clock: true,
            personality: true,
            suid: true,
        }
    }
}

impl Protect {
    /// Every wall down: what `namespaces: { mount: false }` leaves of the
    /// mount-based ones, and what tests of other features start from.
    pub fn off() -> Protect {
        Protect {
            system: ProtectSystem::Off,
            home: ProtectHome::Off,
            tmp: PrivateTmp::Off,
            devices: PrivateDevices::Host,
            device_allow: Vec::new(),
            kernel: false,
            cgroups: false,
            proc: ProtectProc::Off,
            network: Network::Host,
            address_families: None,
            realtime: false,
            clock: false,
            personality: false,
            suid: false,
        }
    }
}

/// Directories a service owns, as names relative to their base
/// (`/var/lib`, `/run`, `/var/cache`, `/var/log`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directories {
    pub state: Vec<String>,
    pub runtime: Vec<String>,
    pub cache: Vec<String>,
    pub logs: Vec<String>,
}

impl Directories {
    /// (base, environment variable, names) for each kind.
    pub fn kinds(&self) -> [(&'static str, &'static str, &[String]); 4] {
        [
            ("/var/lib", "STATE_DIRECTORY", &self.state),
            ("/run", "RUNTIME_DIRECTORY", &self.runtime),
            ("/var/cache", "CACHE_DIRECTORY", &self.cache),
            ("/var/log", "LOGS_DIRECTORY", &self.logs),
        ]
    }

    /// Every directory's absolute path.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.kinds()
            .iter()
            .flat_map(|(base, _, names)| names.iter().map(move |n| PathBuf::from(base).join(n)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.paths().is_empty()
    }
}

/// Limits; `None` leaves the kernel's default (no limit) in place.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    pub cpu: CpuLimits,
    pub memory: MemoryLimits,
    pub io: IoLimits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    /// By rlimit name (`nofile`, `core`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rlimits: BTreeMap<String, Rlimit>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Cpu>,
    pub period: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<CpuList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mems: Option<CpuList>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_max: Option<Size>,
    pub oom_group: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IoLimits {
    pub devices: Vec<IoDevice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IoDevice {
    pub device: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_bps: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_bps: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Security {
    /// Canonical names (`CAP_NET_BIND_SERVICE`).
    pub capabilities: Vec<String>,
    pub no_new_privs: bool,
    pub seccomp: Seccomp,
}

pub use crate::seccomp::{BUILTIN_PROFILES, Seccomp};

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub probe: Probe,
    pub interval: Dur,
    pub timeout: Dur,
    pub failures: u32,
    pub start_period: Dur,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Http {
        host: String,
        port: ProbePort,
        path: String,
    },
    Tcp {
        host: String,
        port: ProbePort,
    },
    Exec {
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Watch {
    pub oom: Rule,
    pub memory_pressure: Rule,
    pub cpu_pressure: Rule,
    pub io_pressure: Rule,
    pub cpu_throttled: Rule,
    pub pids_max: Rule,
    pub fds: Rule,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Percent>,
    pub r#for: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<Percent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub policy: RestartPolicy,
    pub backoff: Backoff,
    pub circuit_breaker: Breaker,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backoff {
    pub initial: Dur,
    pub max: Dur,
    pub multiplier: f64,
    pub jitter: Percent,
    pub reset_after: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct Breaker {
    /// 0 disables the breaker.
    pub failures: u32,
    pub window: Dur,
    pub cooldown: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    pub signal: Sig,
    pub grace: Dur,
}

#[derive(Debug, Clone, Serialize)]
pub struct Logs {
    pub max_size: Size,
    pub keep: u32,
}

// ---------------------------------------------------------------- printing

/// Rules that are events, not levels: they act when the event happens, and
/// the file takes no `for` (nor threshold) for them.
const EVENT_RULES: &[&str] = &["oom", "pids_max"];

/// A document in input syntax with its keys in the order of the file's
/// shape, ready for YAML or JSON output.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Map(Vec<(String, Doc)>),
    List(Vec<Doc>),
    Scalar(serde_json::Value),
}

impl Serialize for Doc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Doc::Map(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Doc::List(items) => {
                let mut l = s.serialize_seq(Some(items.len()))?;
                for it in items {
                    l.serialize_element(it)?;
                }
                l.end()
            }
            Doc::Scalar(v) => v.serialize(s),
        }
    }
}

impl Config {
    /// The effective config as a config file (`bulkhead validate --print`):
    /// every value after defaults are applied and `defaults` -> group
    /// `defaults` -> service are merged, written in the syntax of the input,
    /// so that it validates to the same effective config. The `defaults`
    /// sections are gone (merged into each service); the resolved program,
    /// the source file and values a level cannot set are left out.
    pub fn input_form(&self) -> Doc {
        use super::shape::Shaped as _;
        let Shape::Section { fields, .. } = super::schema::RawConfig::shape() else {
            return Doc::Map(Vec::new());
        };
        let field = |name: &str| fields.iter().find(|f| f.name == name).map(|f| &f.shape);
        let mut top = Vec::new();
        if let Some(shape) = field("supervisor") {
            top.push((
                "supervisor".to_string(),
                ordered(&to_json(&self.supervisor), shape),
            ));
        }
        let group_shape = super::schema::RawGroup::shape();
        let groups: Vec<(String, Doc)> = self
            .groups
            .iter()
            .map(|g| {
                let mut v = serde_json::json!({"resources": to_json(&g.resources)});
                resources_input(&mut v["resources"]);
                (g.name.clone(), ordered(&v, &group_shape))
            })
            .collect();
        if !groups.is_empty() {
            top.push(("groups".to_string(), Doc::Map(groups)));
        }
        let service_shape = super::schema::RawService::shape();
        let services = self
            .services
            .iter()
            .map(|s| (s.name.clone(), ordered(&service_input(s), &service_shape)))
            .collect();
        top.push(("services".to_string(), Doc::Map(services)));
        Doc::Map(top)
    }
}

use super::shape::Shape;
use serde_json::Value as Json;

fn to_json<T: Serialize>(v: &T) -> Json {
    // Every value in the config is plain data (strings, numbers, paths
    // that came from UTF-8 text): serializing it cannot fail.
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// One service as its own section in the file.
fn service_input(s: &Service) -> Json {
    let mut v = to_json(s);
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    obj.remove("name");
    obj.remove("program");
    // A template has no fixed count, and the file may not give one.
    if s.isolation.is_some() {
        obj.remove("instances");
    }
    if let Some(r) = obj.get_mut("resources") {
        resources_input(r);
    }
    if let Some(p) = obj.get_mut("protect")
        && p.get("address_families").is_some_and(Json::is_null)
    {
        p["address_families"] = serde_json::json!(["any"]);
    }
    if let Some(sec) = obj.get_mut("security") {
        sec["seccomp"] = match &s.security.seccomp {
            Seccomp::Unconfined => "unconfined".into(),
            Seccomp::Builtin(name) => name.as_str().into(),
            Seccomp::File(path) => to_json(path),
        };
    }
    if let (Some(h), Some(health)) = (obj.get_mut("health"), &s.health) {
        let (key, probe) = match &health.probe {
            Probe::Http { host, port, path } => (
                "http",
                serde_json::json!({"host": host, "port": port, "path": path}),
            ),
            Probe::Tcp { host, port } => ("tcp", serde_json::json!({"host": host, "port": port})),
            Probe::Exec { command } => ("exec", to_json(command)),
        };
        if let Some(h) = h.as_object_mut() {
            h.remove("probe");
            h.insert(key.to_string(), probe);
        }
    }
    if let Some(w) = obj.get_mut("watch").and_then(Json::as_object_mut) {
        for rule in EVENT_RULES {
            if let Some(r) = w.get_mut(*rule).and_then(Json::as_object_mut) {
                r.remove("for");
            }
        }
    }
    v
}

/// `pids_max` -> `pids: {max: N}`.
fn resources_input(r: &mut Json) {
    if let Some(obj) = r.as_object_mut()
        && let Some(max) = obj.remove("pids_max")
    {
        obj.insert("pids".to_string(), serde_json::json!({ "max": max }));
    }
}

/// `v` with the keys of each section in the order `shape` declares them,
/// and nothing the shape does not know; unset (null) values left out.
fn ordered(v: &Json, shape: &Shape) -> Doc {
    match (shape, v) {
        (Shape::Section { fields, .. }, Json::Object(obj)) => Doc::Map(
            fields
                .iter()
                .filter_map(|f| {
                    let x = obj.get(f.name).filter(|x| !x.is_null())?;
                    Some((f.name.to_string(), ordered(x, &f.shape)))
                })
                .collect(),
        ),
        (Shape::Map { value }, Json::Object(obj)) => Doc::Map(
            obj.iter()
                .map(|(k, x)| (k.clone(), ordered(x, value)))
                .collect(),
        ),
        (Shape::List { item }, Json::Array(items)) => {
            Doc::List(items.iter().map(|x| ordered(x, item)).collect())
        }
        (_, other) => Doc::Scalar(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::host::fake::FakeHost;

    fn load(text: &str) -> Config {
        crate::config::parse_str(
            text,
            std::path::Path::new("/etc/b.yaml"),
            &FakeHost::typical(),
        )
        .unwrap_or_else(|d| panic!("{}", d.render(Some(text))))
    }

    #[test]
    fn input_form_is_written_as_the_file_is() {
        let cfg = load(
            "defaults: {resources: {pids: {max: 64}}}\n\
             services:\n  b: {command: [/bin/sh], isolation: session, security: {seccomp: strict}}\n\
             \x20 a: {command: [/bin/sh], health: {exec: [/bin/sh, -c, 'true']}, protect: {address_families: [any]}}\n",
        );
        let v = serde_json::to_value(cfg.input_form()).unwrap();
        let b = &v["services"]["b"];
        assert_eq!(b["resources"]["pids"]["max"], 64);
        assert!(b["resources"].get("pids_max").is_none());
        assert!(b.get("instances").is_none(), "a template has no instances");
        assert_eq!(b["security"]["seccomp"], "strict");
        let a = &v["services"]["a"];
        assert_eq!(
            a["health"]["exec"],
            serde_json::json!(["/bin/sh", "-c", "true"])
        );
        assert!(
            a["watch"]["oom"].get("for").is_none(),
            "an event has no `for`"
        );
        assert_eq!(a["protect"]["address_families"], serde_json::json!(["any"]));
        for gone in ["name", "program", "source"] {
            assert!(a.get(gone).is_none() && v.get(gone).is_none(), "{gone}");
        }
        // Services keep file order.
        let Doc::Map(top) = cfg.input_form() else {
            panic!()
        };
        let Some((_, Doc::Map(services))) = top.iter().find(|(k, _)| k == "services") else {
            panic!()
        };
        let names: Vec<&str> = services.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
