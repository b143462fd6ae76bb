//! From the file as written to the effective [`Config`]: merge
//! `defaults` -> group `defaults` -> service, apply bulkhead's defaults, and
//! check every rule that involves more than one value or the host. Every
//! problem is collected; nothing stops at the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::host::{DEFAULT_PATH, Host, PathKind, resolve_program};
use super::model::*;
use super::node::spanned_pos;
use super::schema::*;
use super::shape::{Merge, closest};
use super::units::{Cpu, Dur, IdRange, Limit, Percent, PortRange, Sig, Size};
use crate::error::{Code, Diagnostic, Diagnostics, Pos};

/// The most replicas one service runs (`instances`): each is built when the
/// config is loaded, with a port, a dynamic uid and a cgroup.
pub const MAX_INSTANCES: u32 = 1024;
const _: () = assert!(MAX_INSTANCES as u64 == super::limits::INSTANCES.max);

/// The most rotated files a log keeps (`logs.keep`): each rotation renames
/// every one of them.
pub const MAX_LOGS_KEEP: u32 = 1000;
const _: () = assert!(MAX_LOGS_KEEP as u64 == super::limits::LOGS_KEEP.max);

/// Collects diagnostics for one file.
struct Checker<'a> {
    file: &'a Path,
    host: &'a dyn Host,
    diags: Diagnostics,
}

impl Checker<'_> {
    fn report(&mut self, code: Code, pos: Pos, message: String, suggestion: impl Into<String>) {
        self.diags.push(
            Diagnostic::new(code, message)
                .at(self.file, pos)
                .suggest(suggestion),
        );
    }

    /// The directory relative paths in the file are read against.
    fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

fn v<T: Clone>(f: &Option<Spanned<T>>) -> Option<T> {
    f.as_ref().map(|s| s.value.clone())
}

fn p<T>(f: &Option<Spanned<T>>) -> Pos {
    f.as_ref().map(spanned_pos).unwrap_or(Pos::UNKNOWN)
}

fn list<T: Clone>(f: &Option<Vec<Spanned<T>>>) -> Vec<T> {
    f.as_ref()
        .map(|l| l.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}

/// Service and group names become cgroup directory names and appear in
/// metrics labels, so they are kept to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} must be 1 to 64 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(format!(
            "{name:?} may only use letters, digits, '_', '-' and '.', and must start with a letter or digit"
        ));
    }
    if name == "supervisor" || name == "exec" {
        return Err(format!(
            "{name:?} is reserved for bulkhead's own cgroup (the daemon's, and `bulkhead exec`'s)"
        ));
    }
    // A cgroup directory may not take the name of an interface file.
    const KERNEL_PREFIXES: &[&str] = &[
        "cgroup", "cpu", "cpuset", "memory", "io", "pids", "hugetlb", "rdma", "misc",
    ];
    if let Some((head, _)) = name.split_once('.')
        && KERNEL_PREFIXES.contains(&head)
    {
        return Err(format!(
            "{name:?} is shaped like a cgroup interface file ({head}.*) and would collide with the kernel's"
        ));
    }
    Ok(())
}

/// Builds the effective config, or every problem found. `services_key` is
/// where the top-level `services:` key is written (if it is), for the error
/// when it defines no service.
pub fn build(
    raw: RawConfig,
    file: &Path,
    host: &dyn Host,
    services_key: Pos,
) -> Result<Config, Diagnostics> {
    let mut c = Checker {
        file,
        host,
        diags: Diagnostics::default(),
    };
    let supervisor = supervisor(&mut c, raw.supervisor.unwrap_or_default());
    let raw_groups = raw.groups.unwrap_or_default();
    let raw_services = raw.services.unwrap_or_default();
    let defaults = raw.defaults.unwrap_or_default();

    let mut groups = Vec::new();
    for (name, pos, g) in raw_groups.iter() {
        if let Err(e) = check_name(name) {
            c.report(
                Code::ConfigInvalidValue,
                pos,
                format!("group name {e}"),
                "rename the group",
            );
        }
        let res = g.resources.clone().unwrap_or_default();
        if res.rlimits.is_some() {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("groups.{name}.resources.rlimits: rlimits apply to processes, not to a group"),
                format!("move them to groups.{name}.defaults.resources.rlimits to give every member the same rlimits"),
            );
        }
        groups.push(Group {
            name: name.to_string(),
            resources: resources(&mut c, &format!("groups.{name}"), &res),
        });
    }

    if raw_services.0.is_empty() {
        c.diags.push(
            Diagnostic::new(Code::ConfigMissingKey, "no services are defined")
                .at(file, services_key)
                .suggest("add a `services:` section with at least one service and its `command`"),
        );
    }
    let mut services = Vec::new();
    let mut merged_all = Vec::new();
    for (gname, gpos, g) in raw_groups.iter() {
        if let Some(m) = g.defaults.as_ref().and_then(|d| d.member_of.as_ref()) {
            c.report(
                Code::ConfigConflict,
                spanned_pos(m),
                format!(
                    "groups.{gname}.defaults.member_of: a group's defaults cannot name a group"
                ),
                "set member_of on the service (or in the top-level defaults)",
            );
        }
        let _ = gpos;
    }
    for (name, pos, svc) in raw_services.iter() {
        if let Err(e) = check_name(name) {
            c.report(
                Code::ConfigInvalidValue,
                pos,
                format!("service name {e}"),
                "rename the service",
            );
        }
        if raw_groups.get(name).is_some() {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("services.{name}: a group has the same name, and both would be the cgroup <root>/{name}"),
                "rename the service or the group",
            );
        }
        // The group comes from the service, else from the top-level defaults.
        let member_of = svc.member_of.as_ref().or(defaults.member_of.as_ref());
        let group_defaults = match member_of {
            Some(m) => match raw_groups.get(&m.value) {
                Some(g) => g.value.defaults.clone(),
                None => {
                    let known: Vec<&str> = raw_groups.iter().map(|(n, _, _)| n).collect();
                    c.report(
                        Code::ConfigUnknownReference,
                        spanned_pos(m),
                        format!("services.{name}.member_of: no group named `{}`", m.value),
                        match closest(&m.value, &known) {
                            Some(b) => format!("did you mean `{b}`?"),
                            None if known.is_empty() => "define it under `groups:`".to_string(),
                            None => format!("defined groups: {}", known.join(", ")),
                        },
                    );
                    None
                }
            },
            None => None,
        };
        let merged = merge_service(
            merge_service(defaults.clone(), group_defaults.unwrap_or_default()),
            svc.clone(),
        );
        services.push(service(&mut c, name, pos, &merged, svc));
        merged_all.push((name.to_string(), merged));
    }
    dependencies(&mut c, &merged_all, &services);

    if c.diags.is_empty() {
        Ok(Config {
            source: file.to_path_buf(),
            supervisor,
            groups,
            services,
        })
    } else {
        Err(c.diags.finish())
    }
}

/// One merge step, field by field, except that a level naming a health probe
/// (http, tcp or exec) replaces the inherited probe instead of adding a second.
fn merge_service(base: RawService, over: RawService) -> RawService {
    let over_probe = over
        .health
        .as_ref()
        .map(|h| (h.http.clone(), h.tcp.clone(), h.exec.clone()));
    let mut merged = base.merge(over);
    if let (Some((http, tcp, exec)), Some(h)) = (over_probe, merged.health.as_mut())
        && (http.is_some() || tcp.is_some() || exec.is_some())
    {
        (h.http, h.tcp, h.exec) = (http, tcp, exec);
    }
    merged
}

fn supervisor(c: &mut Checker, s: RawSupervisor) -> Supervisor {
    let launch = s.launch.unwrap_or_default();
    let max_concurrent = v(&launch.max_concurrent).unwrap_or(8);
    if max_concurrent == 0 {
        c.report(
            Code::ConfigInvalidValue,
            p(&launch.max_concurrent),
            "supervisor.launch.max_concurrent: 0 would admit no launch".into(),
            "set at least 1",
        );
    }
    let monitor_interval = v(&s.monitor_interval).unwrap_or(Dur::secs(1));
    if monitor_interval < Dur::millis(100) || monitor_interval > Dur::secs(60) {
        c.report(
            Code::ConfigInvalidValue,
            p(&s.monitor_interval),
            format!("supervisor.monitor_interval: {monitor_interval} is outside 100ms..60s"),
            "1s is a good default: violations are still caught within one interval",
        );
    }
    Supervisor {
        cgroup_root: v(&s.cgroup_root).unwrap_or(CgroupRoot::Auto),
        state_dir: v(&s.state_dir).map_or_else(|| "/run/bulkhead".into(), |a| a.0),
        control_socket: v(&s.control_socket)
            .map_or_else(|| crate::api::DEFAULT_SOCKET.into(), |a| a.0),
        metrics_listen: v(&s.metrics_listen).unwrap_or(Listen::Addr(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9464,
        )))),
        log_dir: v(&s.log_dir).map_or_else(|| "/var/log/bulkhead".into(), |a| a.0),
        monitor_interval,
        launch: Launch {
            max_concurrent,
            max_queue: v(&launch.max_queue).unwrap_or(64),
            queue_timeout: v(&launch.queue_timeout).unwrap_or(Dur::secs(30)),
        },
        ports: v(&s.ports).unwrap_or(PortRange {
            first: 20000,
            last: 29999,
        }),
        dynamic_users: dynamic_users(c, &s.dynamic_users),
    }
}

/// `supervisor.dynamic_users`: systemd's range by default. 65534 (nobody)
/// and 65535 (the 16-bit -1) are never handed out; a range below 1000 would
/// meet the host's system users.
fn dynamic_users(c: &mut Checker, f: &Option<Spanned<IdRange>>) -> IdRange {
    let range = v(f).unwrap_or(IdRange {
        first: 61184,
        last: 65519,
    });
    if range.first < 1000 {
        c.report(
            Code::ConfigInvalidValue,
            p(f),
            format!("supervisor.dynamic_users: {range} reaches below 1000, where the host's system users are"),
            "keep the default 61184-65519, or another range above 1000 that no user of this host has",
        );
    }
    range
}

/// `protect`: every wall up unless relaxed. Without a mount namespace the
/// mount-based walls cannot be built; they are off, and `bulkhead security`
/// says so.
fn protect(c: &mut Checker, name: &str, s: &RawProtect, mount_ns: bool) -> Protect {
    let d = Protect::default();
    let mut device_allow = Vec::new();
    for e in s.device_allow.iter().flatten() {
        match crate::config::units::device_allow_entry(&e.value) {
            Ok(()) => device_allow.push(e.value.clone()),
            Err(why) => c.report(
                Code::ConfigInvalidValue,
                spanned_pos(e),
                format!("services.{name}.protect.device_allow: {why}"),
                "write a device path and its access, e.g. \"/dev/dri/renderD128 rw\", or \"c 10:200 rw\"",
            ),
        }
    }
    let families = match &s.address_families {
        None => d.address_families.clone(),
        Some(list) if list.iter().any(|f| f.value == "any") => {
            if list.len() > 1 {
                c.report(
                    Code::ConfigConflict,
                    p_list(&s.address_families),
                    format!("services.{name}.protect.address_families: `any` with other families"),
                    "write [any] alone, or list the families",
                );
            }
            None
        }
        Some(list) => {
            let mut out = Vec::new();
            for f in list {
                if crate::config::units::address_family(&f.value).is_none() {
                    let known = crate::config::units::ADDRESS_FAMILIES;
                    c.report(
                        Code::ConfigInvalidValue,
                        spanned_pos(f),
                        format!(
                            "services.{name}.protect.address_families: `{}` is not an address family",
                            f.value
                        ),
                        match closest(&f.value, known) {
                            Some(b) => format!("did you mean `{b}`?"),
                            None => format!("use any of {}, or [any]", known.join(", ")),
                        },
                    );
                } else if !out.contains(&f.value) {
                    out.push(f.value.clone());
                }
            }
            Some(out)
        }
    };
    let mut p = Protect {
        system: v(&s.system).unwrap_or(d.system),
        home: v(&s.home).unwrap_or(d.home),
        tmp: v(&s.tmp).unwrap_or(d.tmp),
        devices: v(&s.devices).unwrap_or(d.devices),
        device_allow,
        kernel: v(&s.kernel).unwrap_or(d.kernel),
        cgroups: v(&s.cgroups).unwrap_or(d.cgroups),
        proc: v(&s.proc).unwrap_or(d.proc),
        network: v(&s.network).unwrap_or(d.network),
        address_families: families,
        realtime: v(&s.realtime).unwrap_or(d.realtime),
        clock: v(&s.clock).unwrap_or(d.clock),
        personality: v(&s.personality).unwrap_or(d.personality),
        suid: v(&s.suid).unwrap_or(d.suid),
    };
    if !mount_ns {
        let off = Protect::off();
        (p.system, p.home, p.tmp, p.devices) = (off.system, off.home, off.tmp, off.devices);
        (p.kernel, p.cgroups, p.proc) = (off.kernel, off.cgroups, off.proc);
    }
    p
}

/// `directories`: plain relative names (`app`, `app/cache`), no `..`.
fn directories(c: &mut Checker, name: &str, s: &RawDirectories) -> Directories {
    let mut check = |kind: &str, f: &Option<Vec<Spanned<String>>>| -> Vec<String> {
        let mut out = Vec::new();
        for e in f.iter().flatten() {
            let ok = !e.value.is_empty()
                && !e.value.starts_with('/')
                && e.value.len() <= 255
                && e.value
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if ok {
                out.push(e.value.clone());
            } else {
                c.report(
                    Code::ConfigInvalidValue,
                    spanned_pos(e),
                    format!(
                        "services.{name}.directories.{kind}: {:?} is not a relative directory name",
                        e.value
                    ),
                    "write a name relative to the base directory, e.g. `myapp` for /var/lib/myapp",
                );
            }
        }
        out
    };
    Directories {
        state: check("state", &s.state),
        runtime: check("runtime", &s.runtime),
        cache: check("cache", &s.cache),
        logs: check("logs", &s.logs),
    }
}

fn service(c: &mut Checker, name: &str, pos: Pos, s: &RawService, own: &RawService) -> Service {
    let at = |field: &str| format!("services.{name}.{field}");
    let command = list(&s.command);
    let env: BTreeMap<String, String> = s
        .env
        .as_ref()
        .map(|e| {
            e.iter()
                .map(|(k, _, v)| (k.to_string(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(entries) = &s.env {
        for (k, kpos, _) in entries.iter() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                c.report(
                    Code::ConfigInvalidValue,
                    kpos,
                    format!("{}: {k:?} is not a valid variable name", at("env")),
                    "names may not be empty or contain '=' or NUL",
                );
            }
        }
    }
    let mut program = PathBuf::new();
    match command.first() {
        None => c.report(
            Code::ConfigMissingKey,
            // `command: []` has no item to point at: point at the service.
            first_known(&[p_list(&s.command)]).unwrap_or(pos),
            format!("services.{name} has no command"),
            "add `command: [\"/path/to/program\", \"arg\"]`",
        ),
        Some(prog) => {
            let path_var = env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
            match resolve_program(c.host, prog, path_var) {
                Ok(found) => program = found,
                Err(e) => c.report(
                    Code::ConfigCommand,
                    p_list(&s.command),
                    format!("{}: {e}", at("command")),
                    "install the program, fix the path, or set PATH in the service's env",
                ),
            }
        }
    }
    let working_dir = v(&s.working_dir).map_or_else(|| PathBuf::from("/"), |a| a.0);
    if s.working_dir.is_some() && c.host.path_kind(&working_dir) != PathKind::Dir {
        c.report(
            Code::ConfigPath,
            p(&s.working_dir),
            format!(
                "{}: {} is not a directory on this host",
                at("working_dir"),
                working_dir.display()
            ),
            "create the directory or fix the path",
        );
    }
    account(c, &s.user, &at("user"), true);
    account(c, &s.group, &at("group"), false);
    if let Some(groups) = &s.supplementary_groups {
        for g in groups {
            account(c, &Some(g.clone()), &at("supplementary_groups"), false);
        }
    }

    let isolation = v(&s.isolation);
    let instances = if isolation.is_some() {
        1
    } else {
        v(&s.instances).unwrap_or(1)
    };
    if instances == 0 {
        c.report(
            Code::ConfigInvalidValue,
            p(&s.instances),
            format!("{}: 0 instances would run nothing", at("instances")),
            "set at least 1, or `autostart: false` to define a service that is started by hand",
        );
    }
    // Replicas are built up front, each with a port, a uid and a cgroup.
    if instances > MAX_INSTANCES {
        c.report(
            Code::ConfigInvalidValue,
            p(&s.instances),
            format!(
                "{}: {instances} replicas is more than {MAX_INSTANCES}, the most one service runs",
                at("instances")
            ),
            "run fewer replicas, or make the service a template (isolation) whose instances are launched on demand",
        );
    }
    // An `instances` inherited from defaults does not apply to templates;
    // one written on the template itself is a mistake.
    if isolation.is_some() && own.instances.is_some() {
        c.report(
            Code::ConfigConflict,
            p(&own.instances),
            format!(
                "{}: a template (isolation: ...) has no fixed instance count",
                at("instances")
            ),
            "remove `instances`; use `max_instances` to cap how many are launched",
        );
    }
    for (field, set) in [
        ("idle_timeout", s.idle_timeout.is_some()),
        ("max_instances", s.max_instances.is_some()),
    ] {
        if set && isolation.is_none() {
            let pos = if field == "idle_timeout" {
                p(&s.idle_timeout)
            } else {
                p(&s.max_instances)
            };
            c.report(
                Code::ConfigConflict,
                pos,
                format!("{}: only templates have on-demand instances", at(field)),
                "add `isolation: none | namespace | session`, or remove this key",
            );
        }
    }
    let nice = v(&s.nice);
    if let Some(n) = nice
        && !(-20..=19).contains(&n)
    {
        c.report(
            Code::ConfigInvalidValue,
            p(&s.nice),
            format!("{}: {n} is outside -20..19", at("nice")),
            "use -20 (most favoured) to 19",
        );
    }
    let oom = v(&s.oom_score_adj);
    if let Some(n) = oom
        && !(-1000..=1000).contains(&n)
    {
        c.report(
            Code::ConfigInvalidValue,
            p(&s.oom_score_adj),
            format!("{}: {n} is outside -1000..1000", at("oom_score_adj")),
            "use -1000 (never kill) to 1000 (kill first)",
        );
    }
    let io_priority = s.io_priority.as_ref().map(|io| {
        let level = v(&io.level).unwrap_or(4);
        if level > 7 {
            c.report(
                Code::ConfigInvalidValue,
                p(&io.level),
                format!("{}: {level} is outside 0..7", at("io_priority.level")),
                "use 0 (highest) to 7",
            );
        }
        IoPriority {
            class: v(&io.class).unwrap_or(IoClass::BestEffort),
            level,
        }
    });

    let ns = s.namespaces.clone().unwrap_or_default();
    let namespaces = Namespaces {
        pid: v(&ns.pid).unwrap_or(true),
        mount: v(&ns.mount).unwrap_or(true),
        net: v(&ns.net).unwrap_or(false)
            || s.protect.as_ref().and_then(|p| v(&p.network)) == Some(Network::Private),
        uts: v(&ns.uts).unwrap_or(true),
        ipc: v(&ns.ipc).unwrap_or(true),
    };
    let protect = protect(
        c,
        name,
        &s.protect.clone().unwrap_or_default(),
        namespaces.mount,
    );
    let directories = directories(c, name, &s.directories.clone().unwrap_or_default());
    if !directories.is_empty() && (v(&s.instances).unwrap_or(1) > 1 || s.isolation.is_some()) {
        // Each instance has a dynamic user of its own: one directory for
        // several would change hands at every start.
        c.report(
            Code::ConfigConflict,
            s.directories
                .as_ref()
                .and_then(|d| {
                    [&d.state, &d.runtime, &d.cache, &d.logs]
                        .into_iter()
                        .flatten()
                        .flat_map(|l| l.first())
                        .map(spanned_pos)
                        .next()
                })
                .unwrap_or(pos),
            format!(
                "{}: a service with several instances (instances, isolation) cannot share one set of directories",
                at("directories")
            ),
            "give the instances a `user:` and `mounts: { read_write: [...] }`, or keep directories to single-instance services",
        );
    }
    let hostname = v(&s.hostname);
    if let Some(h) = &hostname {
        if !namespaces.uts {
            c.report(
                Code::ConfigConflict,
                p(&s.hostname),
                format!("{}: a hostname needs its own uts namespace", at("hostname")),
                "add `namespaces: { uts: true }`",
            );
        }
        if h.is_empty()
            || h.len() > 64
            || !h
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.')
        {
            c.report(
                Code::ConfigInvalidValue,
                p(&s.hostname),
                format!("{}: {h:?} is not a hostname", at("hostname")),
                "use 1-64 letters, digits, '-' and '.'",
            );
        }
    }
    let m = s.mounts.clone().unwrap_or_default();
    let mounts = Mounts {
        read_only: list(&m.read_only).into_iter().map(|a| a.0).collect(),
        read_write: list(&m.read_write).into_iter().map(|a| a.0).collect(),
        tmpfs: list(&m.tmpfs).into_iter().map(|a| a.0).collect(),
        inaccessible: list(&m.inaccessible).into_iter().map(|a| a.0).collect(),
    };
    let any_mounts = !(mounts.read_only.is_empty()
        && mounts.read_write.is_empty()
        && mounts.tmpfs.is_empty()
        && mounts.inaccessible.is_empty());
    if any_mounts && !namespaces.mount {
        c.report(
            Code::ConfigConflict,
            pos,
            format!(
                "{}: mount changes need the service's own mount namespace",
                at("mounts")
            ),
            "remove `namespaces: { mount: false }` or the mounts",
        );
    }
    for (kind, paths) in [
        ("read_only", &m.read_only),
        ("read_write", &m.read_write),
        ("inaccessible", &m.inaccessible),
    ] {
        for path in paths.iter().flatten() {
            if c.host.path_kind(&path.value.0) == PathKind::Missing {
                c.report(
                    Code::ConfigPath,
                    spanned_pos(path),
                    format!(
                        "{}: {} does not exist on this host",
                        at(&format!("mounts.{kind}")),
                        path.value.0.display()
                    ),
                    "create it or remove the entry",
                );
            }
        }
    }

    let res = s.resources.clone().unwrap_or_default();
    let resources = resources(c, &format!("services.{name}"), &res);
    let security = security(c, name, &s.security.clone().unwrap_or_default());
    let health = s.health.as_ref().and_then(|h| health(c, name, pos, h));
    let watch = watch(c, name, &s.watch.clone().unwrap_or_default(), &resources);
    let restart = restart(c, name, &s.restart.clone().unwrap_or_default());
    let st = s.stop.clone().unwrap_or_default();
    let lg = s.logs.clone().unwrap_or_default();
    let logs = Logs {
        max_size: v(&lg.max_size).unwrap_or(Size::Bytes(10 << 20)),
        keep: v(&lg.keep).unwrap_or(5),
    };
    // Each rotation renames every kept file once.
    if logs.keep > MAX_LOGS_KEEP {
        c.report(
            Code::ConfigInvalidValue,
            p(&lg.keep),
            format!(
                "{}: {} files is more than {MAX_LOGS_KEEP}, the most kept",
                at("logs.keep"),
                logs.keep
            ),
            "keep fewer, larger files (logs.max_size), or ship the log elsewhere",
        );
    }
    if logs.max_size.bytes().is_some_and(|b| b < 4096) {
        c.report(
            Code::ConfigInvalidValue,
            p(&lg.max_size),
            format!("{}: below 4K", at("logs.max_size")),
            "rotate at 4K or more (10M is the default)",
        );
    }

    Service {
        name: name.to_string(),
        command,
        program,
        env,
        working_dir,
        user: v(&s.user),
        group: v(&s.group),
        supplementary_groups: list(&s.supplementary_groups),
        autostart: v(&s.autostart).unwrap_or(true),
        depends_on: list(&s.depends_on),
        member_of: v(&s.member_of),
        instances,
        nice,
        oom_score_adj: oom,
        io_priority,
        isolation,
        idle_timeout: v(&s.idle_timeout),
        max_instances: v(&s.max_instances),
        namespaces,
        hostname,
        mounts,
        protect,
        directories,
        resources,
        security,
        health,
        watch,
        restart,
        stop: Stop {
            signal: v(&st.signal).unwrap_or(Sig(nix::sys::signal::Signal::SIGTERM)),
            grace: v(&st.grace).unwrap_or(Dur::secs(10)),
        },
        logs,
    }
}

fn p_list<T>(f: &Option<Vec<Spanned<T>>>) -> Pos {
    f.as_ref()
        .and_then(|l| l.first())
        .map(spanned_pos)
        .unwrap_or(Pos::UNKNOWN)
}

/// A user or group: a name that exists here, or a numeric id.
fn account(c: &mut Checker, f: &Option<Spanned<String>>, field: &str, is_user: bool) {
    let Some(s) = f else { return };
    let name = s.value.as_str();
    if let Ok(id) = name.parse::<u32>() {
        // (uid_t)-1 is "leave unchanged" to setresuid(2) and setresgid(2):
        // never an id a process can run as.
        if id == u32::MAX {
            let what = if is_user { "uid" } else { "gid" };
            c.report(
                Code::ConfigInvalidValue,
                spanned_pos(s),
                format!("{field}: {id} is ({what}_t)-1, which the kernel reserves (\"no change\")"),
                format!("give another {what}, or remove the key for a dynamic user"),
            );
        }
        return;
    }
    let exists = if is_user {
        c.host.user_exists(name)
    } else {
        c.host.group_exists(name)
    };
    if !exists {
        let what = if is_user { "user" } else { "group" };
        c.report(
            Code::ConfigUnknownAccount,
            spanned_pos(s),
            format!("{field}: no {what} named `{name}` on this host"),
            format!(
                "create it (e.g. `{}add --system {name}`) or give a numeric id",
                if is_user { "user" } else { "group" }
            ),
        );
    }
}

fn resources(c: &mut Checker, owner: &str, r: &RawResources) -> Resources {
    let at = |f: &str| format!("{owner}.resources.{f}");
    let cpu = r.cpu.clone().unwrap_or_default();
    let period = v(&cpu.period).unwrap_or(Dur::millis(100));
    // The kernel takes cpu.max periods from 1ms to 1s, and a quota of at least 1ms.
    if period < Dur::millis(1) || period > Dur::secs(1) {
        c.report(
            Code::ConfigInvalidValue,
            p(&cpu.period),
            format!("{}: {period} is outside 1ms..1s", at("cpu.period")),
            "100ms is the kernel's default",
        );
    }
    if let Some(Cpu::Millicores(m)) = v(&cpu.max) {
        let quota_us = u128::from(m) * period.0.as_micros() / 1000;
        if m == 0 {
            c.report(
                Code::ConfigInvalidValue,
                p(&cpu.max),
                format!("{}: 0 cpu would never run", at("cpu.max")),
                "give a positive amount such as 0.5, or max",
            );
        } else if quota_us < 1000 {
            c.report(
                Code::ConfigInvalidValue,
                p(&cpu.max),
                format!("{}: {m}/1000 of a core per {period} period is a quota of {quota_us}us, below the kernel's 1ms minimum", at("cpu.max")),
                "raise cpu.max or lengthen cpu.period",
            );
        }
    }
    let weight = |c: &mut Checker, f: &Option<Spanned<u64>>, name: &str| {
        if let Some(w) = v(f)
            && !(1..=10000).contains(&w)
        {
            c.report(
                Code::ConfigInvalidValue,
                p(f),
                format!("{}: {w} is outside 1..10000", at(name)),
                "100 is the default share",
            );
        }
        v(f)
    };
    let cpu_weight = weight(c, &cpu.weight, "cpu.weight");

    let mem = r.memory.clone().unwrap_or_default();
    let (max, high, low) = (v(&mem.max), v(&mem.high), v(&mem.low));
    if let Some(Size::Bytes(b)) = max
        && b < (1 << 20)
    {
        c.report(
            Code::ConfigInvalidValue,
            p(&mem.max),
            format!(
                "{}: {} is too small for any process",
                at("memory.max"),
                Size::Bytes(b)
            ),
            "allow at least 1M (bulkhead's init alone is charged about 0.5M)",
        );
    }
    if let (Some(h), Some(m)) = (high, max)
        && h > m
    {
        c.report(
            Code::ConfigConflict,
            p(&mem.high),
            format!(
                "{}: high ({h}) is above max ({m}), so it would never throttle",
                at("memory.high")
            ),
            "set memory.high at or below memory.max (about 80-90% of it is typical)",
        );
    }
    if let Some(l) = low {
        for (other, o) in [("high", high), ("max", max)] {
            if let Some(o) = o
                && l > o
            {
                c.report(
                    Code::ConfigConflict,
                    p(&mem.low),
                    format!("{}: low ({l}) is above {other} ({o})", at("memory.low")),
                    format!("memory.low protects memory below memory.{other}; lower it"),
                );
            }
        }
    }

    let io = r.io.clone().unwrap_or_default();
    let io_weight = weight(c, &io.weight, "io.weight");
    let mut devices = Vec::new();
    for d in io.devices.iter().flatten() {
        let d_pos = spanned_pos(d);
        let d = &d.value;
        let Some(device) = v(&d.device) else {
            c.report(
                Code::ConfigMissingKey,
                d_pos,
                format!("{}: an entry has no device", at("io.devices")),
                "add `device: /dev/...`",
            );
            continue;
        };
        match c.host.path_kind(&device.0) {
            PathKind::BlockDevice => {}
            PathKind::Missing => c.report(
                Code::ConfigPath,
                p(&d.device),
                format!(
                    "{}: {} does not exist",
                    at("io.devices.device"),
                    device.0.display()
                ),
                "name a block device of this host (lsblk lists them)",
            ),
            _ => c.report(
                Code::ConfigPath,
                p(&d.device),
                format!(
                    "{}: {} is not a block device",
                    at("io.devices.device"),
                    device.0.display()
                ),
                "io.max limits whole block devices such as /dev/sda (lsblk lists them)",
            ),
        }
        let entry = IoDevice {
            device: device.0,
            read_bps: v(&d.read_bps),
            write_bps: v(&d.write_bps),
            read_iops: v(&d.read_iops).and_then(|m| m.0),
            write_iops: v(&d.write_iops).and_then(|m| m.0),
        };
        if entry.read_bps.is_none()
            && entry.write_bps.is_none()
            && entry.read_iops.is_none()
            && entry.write_iops.is_none()
        {
            c.report(
                Code::ConfigMissingKey,
                d_pos,
                format!(
                    "{}: {} has no limit",
                    at("io.devices"),
                    entry.device.display()
                ),
                "set read_bps, write_bps, read_iops or write_iops",
            );
        }
        if entry.read_bps == Some(Size::Bytes(0))
            || entry.write_bps == Some(Size::Bytes(0))
            || entry.read_iops == Some(0)
            || entry.write_iops == Some(0)
        {
            c.report(
                Code::ConfigInvalidValue,
                d_pos,
                format!(
                    "{}: a limit of 0 stops all I/O and the kernel refuses it",
                    at("io.devices")
                ),
                "give a positive rate, or max",
            );
        }
        devices.push(entry);
    }

    let pids = r.pids.clone().unwrap_or_default();
    let pids_max = v(&pids.max).and_then(|m| m.0);
    if let Some(n) = pids_max
        && n < 2
    {
        c.report(
            Code::ConfigInvalidValue,
            p(&pids.max),
            format!("{}: {n} leaves no room for the service", at("pids.max")),
            "allow at least 2: bulkhead's init counts as one process",
        );
    }

    let mut rlimits = BTreeMap::new();
    if let Some(rl) = &r.rlimits {
        let all = [
            ("as", &rl.r#as),
            ("core", &rl.core),
            ("cpu", &rl.cpu),
            ("data", &rl.data),
            ("fsize", &rl.fsize),
            ("locks", &rl.locks),
            ("memlock", &rl.memlock),
            ("msgqueue", &rl.msgqueue),
            ("nice", &rl.nice),
            ("nofile", &rl.nofile),
            ("nproc", &rl.nproc),
            ("rss", &rl.rss),
            ("rtprio", &rl.rtprio),
            ("rttime", &rl.rttime),
            ("sigpending", &rl.sigpending),
            ("stack", &rl.stack),
        ];
        for (key, f) in all {
            if let Some(lim) = v(f) {
                let soft_above = match (lim.soft, lim.hard) {
                    (Limit::Infinity, Limit::Value(_)) => true,
                    (Limit::Value(s), Limit::Value(h)) => s > h,
                    _ => false,
                };
                if soft_above {
                    c.report(
                        Code::ConfigConflict,
                        p(f),
                        format!("{}: soft limit {} is above hard limit {}", at(&format!("rlimits.{key}")), lim.soft, lim.hard),
                        "the soft limit must be at most the hard limit: write \"soft:hard\" with soft <= hard",
                    );
                }
                rlimits.insert(key.to_string(), lim);
            }
        }
    }

    Resources {
        cpu: CpuLimits {
            max: v(&cpu.max),
            period,
            weight: cpu_weight,
            cpuset: v(&cpu.cpuset),
            mems: v(&cpu.mems),
        },
        memory: MemoryLimits {
            max,
            high,
            low,
            swap_max: v(&mem.swap_max),
            oom_group: v(&mem.oom_group).unwrap_or(true),
        },
        io: IoLimits {
            devices,
            weight: io_weight,
        },
        pids_max,
        rlimits,
    }
}

/// `net_bind_service` and `CAP_NET_BIND_SERVICE` both name the same capability.
pub fn canonical_capability(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capability a misspelt name most likely means. The shared `CAP_`
/// prefix is left out of the comparison (it would make every name look
/// close), and a unique name the word begins (`CAP_NET_BIND` ->
/// `CAP_NET_BIND_SERVICE`) counts as a match.
fn closest_capability(canon: &str) -> Option<String> {
    let all: Vec<String> = caps::all().iter().map(ToString::to_string).collect();
    let bare: Vec<&str> = all
        .iter()
        .map(|n| n.strip_prefix("CAP_").unwrap_or(n))
        .collect();
    let word = canon.strip_prefix("CAP_").unwrap_or(canon);
    if let Some(b) = closest(word, &bare) {
        return Some(format!("CAP_{b}"));
    }
    let mut starting = bare
        .iter()
        .filter(|n| word.len() >= 3 && n.starts_with(word));
    match (starting.next(), starting.next()) {
        (Some(b), None) => Some(format!("CAP_{b}")),
        _ => None,
    }
}

fn security(c: &mut Checker, name: &str, s: &RawSecurity) -> Security {
    let mut capabilities = Vec::new();
    for cap in s.capabilities.iter().flatten() {
        let canon = canonical_capability(&cap.value);
        if canon.parse::<caps::Capability>().is_ok() {
            if !capabilities.contains(&canon) {
                capabilities.push(canon);
            }
        } else {
            c.report(
                Code::ConfigUnknownCapability,
                spanned_pos(cap),
                format!(
                    "services.{name}.security.capabilities: `{}` is not a capability",
                    cap.value
                ),
                match closest_capability(&canon) {
                    Some(b) => format!("did you mean `{b}`?"),
                    None => {
                        "see capabilities(7) for the names, e.g. CAP_NET_BIND_SERVICE".to_string()
                    }
                },
            );
        }
    }
    let no_new_privs = v(&s.no_new_privs).unwrap_or(true);
    let seccomp = match v(&s.seccomp).as_deref() {
        None | Some("default") => Seccomp::Builtin("default".into()),
        Some("unconfined") => Seccomp::Unconfined,
        Some(b) if BUILTIN_PROFILES.contains(&b) => Seccomp::Builtin(b.to_string()),
        Some(other) if !other.contains('/') && !other.ends_with(".json") => {
            let mut names: Vec<&str> = BUILTIN_PROFILES.to_vec();
            names.push("unconfined");
            c.report(
                Code::ConfigSeccompProfile,
                p(&s.seccomp),
                format!("services.{name}.security.seccomp: no built-in profile named `{other}`"),
                match closest(other, &names) {
                    Some(b) => {
                        format!("did you mean `{b}`? A file needs a path, e.g. ./{other}.json")
                    }
                    None => format!(
                        "use {} or a path to an OCI/Docker JSON profile",
                        names.join(", ")
                    ),
                },
            );
            Seccomp::Unconfined
        }
        Some(path) => {
            let full = c.base_dir().join(path.strip_prefix("./").unwrap_or(path));
            seccomp_file(c, p(&s.seccomp), name, &full, &capabilities);
            Seccomp::File(full)
        }
    };
    if !no_new_privs
        && seccomp != Seccomp::Unconfined
        && !capabilities.iter().any(|c| c == "CAP_SYS_ADMIN")
    {
        c.report(
            Code::ConfigConflict,
            p(&s.no_new_privs),
            format!("services.{name}.security: a seccomp filter needs no_new_privs (or CAP_SYS_ADMIN), or the kernel refuses it"),
            "keep `no_new_privs: true` (the default), or use `seccomp: unconfined`",
        );
    }
    Security {
        capabilities,
        no_new_privs,
        seccomp,
    }
}

/// A profile file must exist and be a valid OCI/Docker profile that
/// compiles for this service's capabilities on this host. The profile's own
/// location (file:line:column) goes into the context: the diagnostic points
/// at the `seccomp` key of the config file.
fn seccomp_file(c: &mut Checker, pos: Pos, name: &str, path: &Path, caps: &[String]) {
    let field = format!("services.{name}.security.seccomp");
    if !matches!(
        c.host.path_kind(path),
        PathKind::File { .. } | PathKind::Missing
    ) {
        return c.diags.push(
            Diagnostic::new(
                Code::ConfigSeccompProfile,
                format!("{field}: {} is not a regular file", path.display()),
            )
            .at(c.file, pos)
            .suggest("name a JSON file holding an OCI/Docker seccomp profile"),
        );
    }
    let text = match c.host.read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return c.diags.push(
                Diagnostic::new(
                    Code::ConfigSeccompProfile,
                    format!("{field}: cannot read {}", path.display()),
                )
                .at(c.file, pos)
                .cause(e)
                .suggest("relative paths are read from the config file's directory"),
            );
        }
    };
    let Err(found) = crate::sandbox::seccomp::build(&text, path, caps) else {
        return;
    };
    for d in found.0 {
        let location = match (&d.file, d.pos) {
            (Some(f), Some(p)) => format!("{}:{}:{}", f.display(), p.line, p.column),
            (Some(f), None) => f.display().to_string(),
            (None, _) => path.display().to_string(),
        };
        let mut out = Diagnostic::new(
            Code::ConfigSeccompProfile,
            format!("{field}: {}", d.message),
        )
        .at(c.file, pos)
        .context("profile", location);
        out.cause = d.cause;
        out.suggestion = d.suggestion;
        c.diags.push(out);
    }
}

fn health(c: &mut Checker, name: &str, pos: Pos, h: &RawHealth) -> Option<Health> {
    let at = |f: &str| format!("services.{name}.health.{f}");
    let mut probes = Vec::new();
    if let Some(http) = &h.http {
        let path = v(&http.path).unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            c.report(
                Code::ConfigInvalidValue,
                p(&http.path),
                format!("{}: {path:?} must start with /", at("http.path")),
                "write a URL path such as /healthz",
            );
        }
        let inside = first_known(&[p(&http.path), p(&http.host)]).unwrap_or(pos);
        probes.push(
            port_probe(c, &at("http.port"), inside, &http.port).map(|port| Probe::Http {
                host: v(&http.host).unwrap_or_else(|| "127.0.0.1".into()),
                port,
                path,
            }),
        );
    }
    if let Some(tcp) = &h.tcp {
        let inside = first_known(&[p(&tcp.host)]).unwrap_or(pos);
        probes.push(
            port_probe(c, &at("tcp.port"), inside, &tcp.port).map(|port| Probe::Tcp {
                host: v(&tcp.host).unwrap_or_else(|| "127.0.0.1".into()),
                port,
            }),
        );
    }
    if h.exec.is_some() {
        let command = list(&h.exec);
        if command.is_empty() {
            c.report(
                Code::ConfigMissingKey,
                pos,
                format!("{}: empty command", at("exec")),
                "give the probe command as a list",
            );
        }
        probes.push(Some(Probe::Exec { command }));
    }
    let probe = match probes.len() {
        0 => {
            c.report(
                Code::ConfigMissingKey,
                pos,
                format!("services.{name}.health: no probe"),
                "add one of http, tcp or exec",
            );
            return None;
        }
        1 => probes.pop().flatten()?,
        _ => {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("services.{name}.health: more than one probe"),
                "keep exactly one of http, tcp or exec",
            );
            return None;
        }
    };
    let interval = v(&h.interval).unwrap_or(Dur::secs(10));
    let timeout = v(&h.timeout).unwrap_or(Dur::secs(2));
    if interval.0.is_zero() {
        c.report(
            Code::ConfigInvalidValue,
            p(&h.interval),
            format!("{}: must be more than 0s", at("interval")),
            "10s is the default",
        );
    }
    if timeout > interval {
        // Point at the value the user wrote: the timeout, or else the
        // interval that is shorter than the default timeout.
        if h.timeout.is_some() {
            c.report(
                Code::ConfigConflict,
                p(&h.timeout),
                format!(
                    "{}: {timeout} is longer than the interval ({interval})",
                    at("timeout")
                ),
                "make the timeout shorter than the interval so probes never overlap",
            );
        } else {
            c.report(
                Code::ConfigConflict,
                p(&h.interval),
                format!(
                    "{}: {interval} is shorter than the default timeout ({timeout})",
                    at("interval")
                ),
                "set a shorter `timeout` too, so probes never overlap",
            );
        }
    }
    let failures = v(&h.failures).unwrap_or(3);
    if failures == 0 {
        c.report(
            Code::ConfigInvalidValue,
            p(&h.failures),
            format!("{}: 0 would make every instance unhealthy", at("failures")),
            "use 1 or more (3 is the default)",
        );
    }
    Some(Health {
        probe,
        interval,
        timeout,
        failures,
        start_period: v(&h.start_period).unwrap_or(Dur::secs(0)),
    })
}

/// The earliest of some positions that are known: where a section's keys
/// begin, for an error about a key missing from it.
fn first_known(positions: &[Pos]) -> Option<Pos> {
    positions.iter().copied().filter(|p| p.is_known()).min()
}

fn port_probe(
    c: &mut Checker,
    field: &str,
    pos: Pos,
    port: &Option<Spanned<ProbePort>>,
) -> Option<ProbePort> {
    let got = v(port);
    if got.is_none() {
        c.report(
            Code::ConfigMissingKey,
            pos,
            format!("{field} is required"),
            "give the port the service listens on, or auto",
        );
    }
    got
}

fn watch(c: &mut Checker, name: &str, w: &RawWatch, res: &Resources) -> Watch {
    // (rule, raw, default action, measured as a level)
    let rule =
        |c: &mut Checker, key: &str, r: &Option<RawRule>, default: Action, level: bool| -> Rule {
            let at = format!("services.{name}.watch.{key}");
            let r = r.clone().unwrap_or_default();
            let action = v(&r.action).unwrap_or(default);
            let pressure = key.ends_with("_pressure");
            if action == Action::Throttle && key != "memory_pressure" {
                c.report(
                Code::ConfigConflict,
                p(&r.action),
                format!(
                    "{at}.action: throttle lowers memory.high, so it is for memory_pressure only"
                ),
                "use warn, restart or stop here",
            );
            }
            if action == Action::Throttle && res.memory.high.is_none() && res.memory.max.is_none() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.action),
                    format!(
                        "{at}.action: throttle needs memory.high or memory.max to step down from"
                    ),
                    "set resources.memory.high (or max)",
                );
            }
            let threshold = v(&r.threshold);
            if level && action != Action::Off && threshold.is_none() {
                c.report(
                    Code::ConfigMissingKey,
                    p(&r.action),
                    format!("{at}: a {key} rule needs a threshold"),
                    "add e.g. `threshold: 20%`",
                );
            }
            if !level && r.threshold.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.threshold),
                    format!("{at}.threshold: {key} is an event and has no threshold"),
                    "remove the threshold",
                );
            }
            if !level && r.r#for.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.r#for),
                    format!("{at}.for: {key} is an event; it acts when it happens"),
                    "remove `for`",
                );
            }
            if !pressure && r.stall.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.stall),
                    format!("{at}.stall: only pressure rules have some/full"),
                    "remove `stall`",
                );
            }
            if action != Action::Throttle && r.step.is_some() {
                c.report(
                    Code::ConfigConflict,
                    p(&r.step),
                    format!("{at}.step: only used by the throttle action"),
                    "remove `step` or set `action: throttle`",
                );
            }
            if key == "cpu_throttled"
                && action != Action::Off
                && !matches!(res.cpu.max, Some(Cpu::Millicores(_)))
            {
                c.report(
                    Code::ConfigConflict,
                    p(&r.action),
                    format!("{at}: without resources.cpu.max the service is never throttled"),
                    "set resources.cpu.max, or remove the rule",
                );
            }
            Rule {
                action,
                threshold,
                r#for: v(&r.r#for).unwrap_or(if level { Dur::secs(10) } else { Dur::secs(0) }),
                stall: if pressure {
                    Some(v(&r.stall).unwrap_or(Stall::Some))
                } else {
                    None
                },
                step: (action == Action::Throttle).then(|| v(&r.step).unwrap_or(Percent(1000))),
            }
        };
    Watch {
        oom: rule(c, "oom", &w.oom, Action::Restart, false),
        memory_pressure: rule(c, "memory_pressure", &w.memory_pressure, Action::Off, true),
        cpu_pressure: rule(c, "cpu_pressure", &w.cpu_pressure, Action::Off, true),
        io_pressure: rule(c, "io_pressure", &w.io_pressure, Action::Off, true),
        cpu_throttled: rule(c, "cpu_throttled", &w.cpu_throttled, Action::Off, true),
        pids_max: rule(c, "pids_max", &w.pids_max, Action::Warn, false),
        fds: rule(c, "fds", &w.fds, Action::Off, true),
    }
}

fn restart(c: &mut Checker, name: &str, r: &RawRestart) -> Restart {
    let at = |f: &str| format!("services.{name}.restart.{f}");
    let b = r.backoff.clone().unwrap_or_default();
    let initial = v(&b.initial).unwrap_or(Dur::millis(100));
    let max = v(&b.max).unwrap_or(Dur::secs(30));
    let multiplier = v(&b.multiplier).unwrap_or(2.0);
    if initial.0.is_zero() {
        c.report(
            Code::ConfigInvalidValue,
            p(&b.initial),
            format!(
                "{}: 0s would restart in a tight loop",
                at("backoff.initial")
            ),
            "use at least a few milliseconds (100ms is the default)",
        );
    }
    if max < initial {
        if b.max.is_some() {
            c.report(
                Code::ConfigConflict,
                p(&b.max),
                format!("{}: {max} is below initial ({initial})", at("backoff.max")),
                "set max at or above initial",
            );
        } else {
            c.report(
                Code::ConfigConflict,
                p(&b.initial),
                format!(
                    "{}: {initial} is above the default max ({max})",
                    at("backoff.initial")
                ),
                "lower initial, or set `max` at or above it",
            );
        }
    }
    if !(1.0..=100.0).contains(&multiplier) {
        c.report(
            Code::ConfigInvalidValue,
            p(&b.multiplier),
            format!(
                "{}: {multiplier} is outside 1..100",
                at("backoff.multiplier")
            ),
            "2 doubles the delay after each failure",
        );
    }
    let k = r.circuit_breaker.clone().unwrap_or_default();
    let breaker = Breaker {
        failures: v(&k.failures).unwrap_or(5),
        window: v(&k.window).unwrap_or(Dur::secs(60)),
        cooldown: v(&k.cooldown).unwrap_or(Dur::secs(300)),
    };
    if breaker.failures > 0 && (breaker.window.0.is_zero() || breaker.cooldown.0.is_zero()) {
        c.report(
            Code::ConfigInvalidValue,
            if breaker.window.0.is_zero() {
                p(&k.window)
            } else {
                p(&k.cooldown)
            },
            format!(
                "{}: window and cooldown must be more than 0s",
                at("circuit_breaker")
            ),
            "use `failures: 0` to disable the breaker instead",
        );
    }
    Restart {
        policy: v(&r.policy).unwrap_or(RestartPolicy::OnFailure),
        backoff: Backoff {
            initial,
            max,
            multiplier,
            jitter: v(&b.jitter).unwrap_or(Percent(1000)),
            reset_after: v(&b.reset_after).unwrap_or(Dur::secs(60)),
        },
        circuit_breaker: breaker,
    }
}

/// Unknown names in `depends_on`, dependencies on templates, and cycles.
/// Reads the merged services, so a `depends_on` from defaults is checked too.
fn dependencies(c: &mut Checker, merged: &[(String, RawService)], services: &[Service]) {
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for (name, svc) in merged {
        for dep in svc.depends_on.iter().flatten() {
            match services.iter().find(|s| s.name == dep.value) {
                None => c.report(
                    Code::ConfigUnknownReference,
                    spanned_pos(dep),
                    format!("services.{name}.depends_on: no service named `{}`", dep.value),
                    match closest(&dep.value, &names) {
                        Some(b) => format!("did you mean `{b}`?"),
                        None => format!("defined services: {}", names.join(", ")),
                    },
                ),
                Some(t) if t.isolation.is_some() => c.report(
                    Code::ConfigConflict,
                    spanned_pos(dep),
                    format!("services.{name}.depends_on: `{}` is a template; its instances start on demand", dep.value),
                    "depend on a regular service instead",
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(services) {
        let first = &cycle[0];
        let pos = merged
            .iter()
            .find(|(n, _)| n == first)
            .and_then(|(_, s)| s.depends_on.as_ref())
            .and_then(|d| d.iter().find(|x| x.value == cycle[1]))
            .map(spanned_pos)
            .unwrap_or(Pos::UNKNOWN);
        c.report(
            Code::ConfigDependencyCycle,
            pos,
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
            "remove one of these dependencies so the services can start in order",
        );
    }
}

/// A dependency cycle as a path that ends where it starts (`a -> b -> a`).
pub fn find_cycle(services: &[Service]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        svcs: &[Service],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Active;
        stack.push(i);
        for dep in &svcs[i].depends_on {
            let Some(j) = svcs.iter().position(|s| &s.name == dep) else {
                continue;
            };
            match marks[j] {
                Mark::Active => {
                    let from = stack.iter().position(|&k| k == j).unwrap_or(0);
                    let mut path: Vec<String> = stack[from..]
                        .iter()
                        .map(|&k| svcs[k].name.clone())
                        .collect();
                    path.push(svcs[j].name.clone());
                    return Some(path);
                }
                Mark::New => {
                    if let Some(c) = visit(j, svcs, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; services.len()];
    for i in 0..services.len() {
        if marks[i] == Mark::New
            && let Some(c) = visit(i, services, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Services in an order where each comes after what it depends on (stable:
/// file order otherwise). Assumes no cycles ([`build`] rejects them).
pub fn start_order(services: &[Service]) -> Vec<&Service> {
    let mut out: Vec<&Service> = Vec::with_capacity(services.len());
    while out.len() < services.len() {
        let before = out.len();
        for s in services {
            let placed = |n: &str| out.iter().any(|o| o.name == n);
            if !placed(&s.name)
                && s.depends_on
                    .iter()
                    .all(|d| placed(d) || !services.iter().any(|x| &x.name == d))
            {
                out.push(s);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_suggestions_ignore_the_prefix() {
        assert_eq!(
            closest_capability("CAP_NET_BIND").as_deref(),
            Some("CAP_NET_BIND_SERVICE")
        );
        assert_eq!(
            closest_capability("CAP_SYS_ADMN").as_deref(),
            Some("CAP_SYS_ADMIN")
        );
        assert_eq!(closest_capability("CAP_NETWORK_EVERYTHING"), None);
        // A prefix of several names is no suggestion.
        assert_eq!(closest_capability("CAP_SYS_"), None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod seccomp_tests {
    use super::*;
    use crate::config::host::fake::FakeHost;

    /// A config whose one service uses the profile `./p.json`, with `caps`.
    fn load(profile: &str, caps: &str) -> Result<crate::config::Config, Diagnostics> {
        let mut h = FakeHost::typical();
        h.files
            .insert("/etc/bulkhead/p.json".into(), profile.into());
        let yaml = format!(
            "services:\n  web:\n    command: [/bin/true]\n    security:\n      capabilities: [{caps}]\n      seccomp: ./p.json\n"
        );
        crate::config::parse_str(&yaml, Path::new("/etc/bulkhead/bulkhead.yaml"), &h)
    }

    #[test]
    fn a_profile_file_is_fully_checked_at_validation() {
        let cfg = load(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "",
        )
        .unwrap();
        assert_eq!(
            cfg.services[0].security.seccomp,
            Seccomp::File("/etc/bulkhead/p.json".into())
        );
        let e = load(
            "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALOW\"}]}",
            "",
        )
        .unwrap_err();
        let d = &e.0[0];
        assert_eq!(d.code, Code::ConfigSeccompProfile);
        assert_eq!(
            d.message,
            "services.web.security.seccomp: syscalls[0].action: unknown action `SCMP_ACT_ALOW`"
        );
        // The diagnostic points into the config; the context into the profile.
        assert_eq!(
            d.file.as_deref(),
            Some(Path::new("/etc/bulkhead/bulkhead.yaml"))
        );
        assert_eq!(
            d.context,
            [(
                "profile".to_string(),
                "/etc/bulkhead/p.json:2:35".to_string()
            )]
        );
    }

    #[test]
    fn a_misspelt_system_call_in_a_profile_is_a_validation_error() {
        let e = load(
            "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [{\"names\": [\"read\", \"keyctll\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
            "",
        )
        .unwrap_err();
        let d = &e.0[0];
        assert!(
            d.message.starts_with(
                "services.web.security.seccomp: syscalls[0].names[1]: `keyctll` is not a system call"
            ),
            "{e}"
        );
        assert_eq!(
            d.context,
            [(
                "profile".to_string(),
                "/etc/bulkhead/p.json:2:34".to_string()
            )]
        );
        assert!(
            d.suggestion
                .as_deref()
                .is_some_and(|s| s.starts_with("did you mean `keyctl`?")),
            "{e}"
        );
        // Set aside when the profile says so.
        assert!(
            load(
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "ignore_unknown": true, "syscalls": [{"names": ["read", "keyctll"], "action": "SCMP_ACT_ALLOW"}]}"#,
                "",
            )
            .is_ok()
        );
    }

    #[test]
    fn profile_checks_use_the_service_capabilities() {
        // Two rules that conflict only when CAP_SYS_ADMIN opens the second.
        let profile = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["mount"], "action": "SCMP_ACT_KILL_PROCESS"},
  {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#;
        assert!(load(profile, "").is_ok());
        let e = load(profile, "CAP_SYS_ADMIN").unwrap_err();
        assert!(e.0[0].message.contains("`mount` gets ALLOW"), "{e}");
    }
}
