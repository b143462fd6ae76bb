//! From the file as written to the effective [`Config`]: merge
//! `defaults` -> group `defaults` -> service, apply bulkhead's defaults, and
//! check every rule that involves more than one value or the host. Every
//! problem is collected; nothing stops at the first.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_saphyr::Spanned;

use super::graph::{self, Dependency};
use super::host::{DEFAULT_PATH, Host, PathKind, resolve_program};
use super::limits;
use super::model::*;
use super::node::spanned_pos;
use super::schema::*;
use super::shape::{Entries, Merge, Suggestions, Weight, closest};
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
    host: Memo<'a>,
    diags: Diagnostics,
    /// How often each (code, position) was reported: a mistake in
    /// `defaults` is one per service, and is kept [`limits::ERRORS_PER_KIND`]
    /// times, not 4,096.
    repeats: HashMap<(Code, Pos), u64>,
    /// Suggestions by kind of name and word, each computed once.
    suggestions: HashMap<(&'static str, String), Option<String>>,
    /// Seccomp profile problems by (file, capabilities): a profile named in
    /// `defaults` is read and compiled once, not once per service.
    profiles: HashMap<(PathBuf, Vec<String>), Rc<Vec<Diagnostic>>>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, host: &'a dyn Host) -> Self {
        Checker {
            file,
            host: Memo::new(host),
            diags: Diagnostics::default(),
            repeats: HashMap::new(),
            suggestions: HashMap::new(),
            profiles: HashMap::new(),
        }
    }

    fn report(&mut self, code: Code, pos: Pos, message: String, suggestion: impl Into<String>) {
        self.push(
            Diagnostic::new(code, message)
                .at(self.file, pos)
                .suggest(suggestion),
        );
    }

    /// Adds `d`, unless its code and position have been reported
    /// [`limits::ERRORS_PER_KIND`] times already (then it is counted, and
    /// the last one kept says how many more there were).
    fn push(&mut self, d: Diagnostic) {
        let key = (d.code, d.pos.unwrap_or(Pos::UNKNOWN));
        let n = self.repeats.entry(key).or_insert(0);
        *n += 1;
        if *n <= limits::ERRORS_PER_KIND.max || !key.1.is_known() {
            self.diags.push(d);
        }
    }

    /// The diagnostics, with a note on each one that stood for more.
    fn finish(mut self) -> Diagnostics {
        let keep = limits::ERRORS_PER_KIND.max;
        for d in self.diags.0.iter_mut().rev() {
            let key = (d.code, d.pos.unwrap_or(Pos::UNKNOWN));
            if let Some(n) = self.repeats.remove(&key)
                && n > keep
            {
                d.context
                    .push(("same_error_more_times".into(), (n - keep).to_string()));
            }
        }
        self.diags.finish()
    }

    /// `find(word)`, remembered per `kind` of name, and computed for the
    /// first [`limits::ERRORS_PER_KIND`] distinct words of a kind only.
    fn suggest(
        &mut self,
        kind: &'static str,
        word: &str,
        find: impl FnOnce(&str) -> Option<String>,
    ) -> Option<String> {
        let key = (kind, word.to_string());
        if let Some(hit) = self.suggestions.get(&key) {
            return hit.clone();
        }
        let computed = self.suggestions.keys().filter(|(k, _)| *k == kind).count();
        if u64::try_from(computed).unwrap_or(u64::MAX) >= limits::ERRORS_PER_KIND.max {
            return None;
        }
        let hit = find(word);
        self.suggestions.insert(key, hit.clone());
        hit
    }

    /// The directory relative paths in the file are read against.
    fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// The host's answers, each asked once: `defaults` naming 4,096
/// supplementary groups would otherwise ask NSS 4,096 times per service.
struct Memo<'a> {
    host: &'a dyn Host,
    users: RefCell<HashMap<String, bool>>,
    groups: RefCell<HashMap<String, bool>>,
    paths: RefCell<HashMap<PathBuf, PathKind>>,
}

impl<'a> Memo<'a> {
    fn new(host: &'a dyn Host) -> Self {
        Memo {
            host,
            users: RefCell::default(),
            groups: RefCell::default(),
            paths: RefCell::default(),
        }
    }
}

impl Host for Memo<'_> {
    fn user_exists(&self, name: &str) -> bool {
        if let Some(&known) = self.users.borrow().get(name) {
            return known;
        }
        let found = self.host.user_exists(name);
        self.users.borrow_mut().insert(name.to_string(), found);
        found
    }

    fn group_exists(&self, name: &str) -> bool {
        if let Some(&known) = self.groups.borrow().get(name) {
            return known;
        }
        let found = self.host.group_exists(name);
        self.groups.borrow_mut().insert(name.to_string(), found);
        found
    }

    fn path_kind(&self, path: &Path) -> PathKind {
        if let Some(&known) = self.paths.borrow().get(path) {
            return known;
        }
        let found = self.host.path_kind(path);
        self.paths.borrow_mut().insert(path.to_path_buf(), found);
        found
    }

    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        self.host.read_to_string(path)
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

/// A name bulkhead cannot use, and what to use instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    pub message: String,
    pub suggestion: String,
}

/// Directory names inside bulkhead's cgroup subtree that are its own:
/// the daemon's cgroup and `bulkhead exec`'s.
pub const RESERVED_NAMES: &[&str] = &["supervisor", "exec"];

/// The prefixes of the kernel's interface files in a cgroup directory
/// (`cgroup.procs`, `memory.max`, `pids.max`, ...): a child cgroup of
/// such a name would collide with one, now or in a later kernel.
pub const KERNEL_FILE_PREFIXES: &[&str] = &[
    "cgroup.", "memory.", "cpu.", "cpuset.", "io.", "pids.", "hugetlb.", "rdma.", "misc.", "irq.",
];

/// Service, template and group names become cgroup directory names and
/// appear in metrics labels, so they are kept to a safe alphabet, to
/// [`limits::NAME_BYTES`], and clear of bulkhead's own and the kernel's
/// names.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let max = limits::NAME_BYTES.max_usize();
    if name.is_empty() || name.len() > max {
        return Err(BadName {
            message: format!("{name:?} must be 1 to {max} characters"),
            suggestion: format!("use a name of 1 to {max} letters, digits, '_', '-' and '.'"),
        });
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(BadName {
            message: format!(
                "{name:?} may only use letters, digits, '_', '-' and '.', and must start with a letter or digit"
            ),
            suggestion: "rename it, e.g. `web-api` for `web/api`".to_string(),
        });
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(BadName {
            message: format!(
                "{name:?} is reserved for bulkhead's own cgroup (the daemon's, and `bulkhead exec`'s)"
            ),
            suggestion: format!("rename it, e.g. `{name}-app`"),
        });
    }
    if let Some(prefix) = KERNEL_FILE_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(BadName {
            message: format!(
                "{name:?} is shaped like a cgroup interface file ({prefix}*) and would collide with the kernel's"
            ),
            suggestion: format!("rename it, e.g. `{}`", name.replace('.', "-")),
        });
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
    let mut c = Checker::new(file, host);
    let supervisor = supervisor(&mut c, raw.supervisor.unwrap_or_default());
    let raw_groups = raw.groups.unwrap_or_default();
    let raw_services = raw.services.unwrap_or_default();
    let defaults = raw.defaults.unwrap_or_default();

    let group_index = graph::groups_by_name(&raw_groups);
    let mut groups = Vec::new();
    for (name, pos, g) in raw_groups.iter() {
        if let Err(e) = check_name(name) {
            c.report(
                Code::ConfigInvalidValue,
                pos,
                format!("group name {}", e.message),
                e.suggestion,
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
        c.push(
            Diagnostic::new(Code::ConfigMissingKey, "no services are defined")
                .at(file, services_key)
                .suggest("add a `services:` section with at least one service and its `command`"),
        );
    }
    // The merge copies `defaults` into every service: count first.
    let weight = merged_weight(&defaults, &raw_services, &group_index);
    if !limits::MERGED_VALUES.allows(weight) {
        c.push(
            limits::MERGED_VALUES
                .exceeded("services", weight)
                .at(file, services_key)
                .suggest("`defaults` is copied into every service: move large `env` mappings and lists from `defaults` (or a group's `defaults`) to the services that need them, or split the file"),
        );
        return Err(c.finish());
    }
    let mut group_names = Suggestions::new(&group_index.keys().copied().collect::<Vec<_>>());
    let mut services = Vec::new();
    let mut depends_all = Vec::new();
    let mut bases: HashMap<Option<&str>, RawService> = HashMap::new();
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
                format!("service name {}", e.message),
                e.suggestion,
            );
        }
        if group_index.contains_key(name) {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("services.{name}: a group has the same name, and both would be the cgroup <root>/{name}"),
                "rename the service or the group",
            );
        }
        let group = match graph::member_of(svc, &defaults) {
            Some(m) => match group_index.get_key_value(m.value.as_str()) {
                Some((&g, _)) => Some(g),
                None => {
                    let known = group_names.list();
                    let best = group_names.closest(&m.value);
                    c.report(
                        Code::ConfigUnknownReference,
                        spanned_pos(m),
                        format!("services.{name}.member_of: no group named `{}`", m.value),
                        match best {
                            Some(b) => format!("did you mean `{b}`?"),
                            None if group_index.is_empty() => {
                                "define it under `groups:`".to_string()
                            }
                            None => format!("defined groups: {known}"),
                        },
                    );
                    None
                }
            },
            None => None,
        };
        // `defaults` -> the group's `defaults`, merged once per group.
        let base = bases.entry(group).or_insert_with(|| {
            let group_defaults = group
                .and_then(|g| group_index.get(g))
                .and_then(|g| g.defaults.clone());
            merge_service(defaults.clone(), group_defaults.unwrap_or_default())
        });
        let merged = merge_service(base.clone(), svc.clone());
        services.push(service(&mut c, name, pos, &merged, svc));
        depends_all.push((name.to_string(), merged.depends_on));
    }
    dependencies(&mut c, &depends_all, &services);

    if c.diags.is_empty() {
        Ok(Config {
            source: file.to_path_buf(),
            supervisor,
            groups,
            services,
        })
    } else {
        Err(c.finish())
    }
}

/// How many values the services hold once their defaults are merged in,
/// counted before anything is copied ([`limits::MERGED_VALUES`]).
fn merged_weight(
    defaults: &RawService,
    services: &Entries<RawService>,
    groups: &HashMap<&str, &RawGroup>,
) -> u64 {
    let base = defaults.weight();
    let group_weight: HashMap<&str, u64> = groups
        .iter()
        .map(|(name, g)| (*name, g.defaults.weight()))
        .collect();
    services
        .iter()
        .map(|(_, _, s)| {
            let group = graph::member_of(s, defaults)
                .and_then(|m| group_weight.get(m.value.as_str()))
                .copied()
                .unwrap_or(0);
            base.saturating_add(group).saturating_add(s.weight())
        })
        .fold(0, u64::saturating_add)
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
                    let best = c.suggest("address family", &f.value, |w| {
                        closest(w, known).map(str::to_string)
                    });
                    c.report(
                        Code::ConfigInvalidValue,
                        spanned_pos(f),
                        format!(
                            "services.{name}.protect.address_families: `{}` is not an address family",
                            f.value
                        ),
                        match best {
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
    if env.len() > limits::ENV_ENTRIES.max_usize() {
        c.push(
            limits::ENV_ENTRIES
                .exceeded(at("env"), u64::try_from(env.len()).unwrap_or(u64::MAX))
                .at(c.file, pos)
                .suggest("`defaults.env` and a group's `defaults.env` are added to the service's own: set fewer variables, or keep large settings in a file the service reads"),
        );
    }
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
            match resolve_program(&c.host, prog, path_var) {
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
        c.push(
            limits::INSTANCES
                .exceeded(at("instances"), u64::from(instances))
                .at(c.file, p(&s.instances))
                .suggest("run fewer replicas, or make the service a template (isolation) whose instances are launched on demand"),
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
        c.push(
            limits::LOGS_KEEP
                .exceeded(at("logs.keep"), u64::from(logs.keep))
                .at(c.file, p(&lg.keep))
                .suggest("keep fewer, larger files (logs.max_size), or ship the log elsewhere"),
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
    let mut seen = HashSet::new();
    for cap in s.capabilities.iter().flatten() {
        let canon = canonical_capability(&cap.value);
        if canon.parse::<caps::Capability>().is_ok() {
            if seen.insert(canon.clone()) {
                capabilities.push(canon);
            }
        } else {
            let best = c.suggest("capability", &canon, closest_capability);
            c.report(
                Code::ConfigUnknownCapability,
                spanned_pos(cap),
                format!(
                    "services.{name}.security.capabilities: `{}` is not a capability",
                    cap.value
                ),
                match best {
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
    let key = (path.to_path_buf(), caps.to_vec());
    let found = match c.profiles.get(&key) {
        Some(found) => Rc::clone(found),
        None => {
            let found = Rc::new(profile_problems(&c.host, path, caps));
            c.profiles.insert(key, Rc::clone(&found));
            found
        }
    };
    let field = format!("services.{name}.security.seccomp");
    for d in found.iter() {
        let mut out = d.clone().at(c.file, pos);
        out.message = format!("{field}: {}", d.message);
        c.push(out);
    }
}

/// What is wrong with a seccomp profile file for these capabilities, as
/// diagnostics without a location (the caller points at its `seccomp` key).
fn profile_problems(host: &dyn Host, path: &Path, caps: &[String]) -> Vec<Diagnostic> {
    if !matches!(
        host.path_kind(path),
        PathKind::File { .. } | PathKind::Missing
    ) {
        return vec![
            Diagnostic::new(
                Code::ConfigSeccompProfile,
                format!("{} is not a regular file", path.display()),
            )
            .suggest("name a JSON file holding an OCI/Docker seccomp profile"),
        ];
    }
    let text = match host.read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![
                Diagnostic::new(
                    Code::ConfigSeccompProfile,
                    format!("cannot read {}", path.display()),
                )
                .cause(e)
                .suggest("relative paths are read from the config file's directory"),
            ];
        }
    };
    let Err(found) = crate::sandbox::seccomp::build(&text, path, caps) else {
        return Vec::new();
    };
    found
        .0
        .into_iter()
        .map(|d| {
            let location = match (&d.file, d.pos) {
                (Some(f), Some(p)) => format!("{}:{}:{}", f.display(), p.line, p.column),
                (Some(f), None) => f.display().to_string(),
                (None, _) => path.display().to_string(),
            };
            let mut out =
                Diagnostic::new(Code::ConfigSeccompProfile, d.message).context("profile", location);
            out.cause = d.cause;
            out.suggestion = d.suggestion;
            out
        })
        .collect()
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
/// Reads the merged lists, so a `depends_on` from defaults is checked too.
fn dependencies(
    c: &mut Checker,
    merged: &[(String, Option<Vec<Spanned<String>>>)],
    services: &[Service],
) {
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let index = graph::index_by_name(services);
    let mut suggest = Suggestions::new(&names);
    for (name, deps) in merged {
        for dep in deps.iter().flatten() {
            match graph::dependency(services, &index, &dep.value) {
                Dependency::Unknown => {
                    let help = match suggest.closest(&dep.value) {
                        Some(b) => format!("did you mean `{b}`?"),
                        None => format!("defined services: {}", suggest.list()),
                    };
                    c.report(
                        Code::ConfigUnknownReference,
                        spanned_pos(dep),
                        format!("services.{name}.depends_on: no service named `{}`", dep.value),
                        help,
                    );
                }
                Dependency::Template => c.report(
                    Code::ConfigConflict,
                    spanned_pos(dep),
                    format!("services.{name}.depends_on: `{}` is a template; its instances start on demand", dep.value),
                    "depend on a regular service instead",
                ),
                Dependency::Service => {}
            }
        }
    }
    if let Some(cycle) = graph::find_cycle(services) {
        let first = &cycle[0];
        let pos = merged
            .iter()
            .find(|(n, _)| n == first)
            .and_then(|(_, d)| d.as_ref())
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

    #[test]
    fn reserved_and_kernel_shaped_names_are_refused_with_another_name() {
        for (name, instead) in [
            ("exec", "exec-app"),
            ("supervisor", "supervisor-app"),
            ("cgroup.procs", "cgroup-procs"),
            ("cgroup.subtree_control", "cgroup-subtree_control"),
            ("memory.max", "memory-max"),
            ("pids.max", "pids-max"),
            ("irq.pressure", "irq-pressure"),
            ("cpuset.cpus.effective", "cpuset-cpus-effective"),
        ] {
            let e = check_name(name).unwrap_err();
            assert!(
                e.suggestion.contains(&format!("`{instead}`")),
                "{name}: {e:?}"
            );
            assert!(check_name(instead).is_ok(), "{instead}");
        }
        for ok in ["web", "memory", "cgroup", "io-worker", "cpu2.x", "execs"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(limits::NAME_BYTES.max_usize() + 1);
        assert!(check_name(&long).is_err());
        assert!(check_name(&long[1..]).is_ok());
    }

    fn load(yaml: &str) -> Result<crate::config::Config, Diagnostics> {
        let h = crate::config::host::fake::FakeHost::typical();
        crate::config::parse_str(yaml, Path::new("/etc/bulkhead/b.yaml"), &h)
    }

    #[test]
    fn the_defaults_merge_is_bounded_before_anything_is_copied() {
        // 1,024 variables in defaults, 600 services: 614k merged values.
        let mut yaml = String::from("defaults:\n  env:\n");
        for i in 0..1024 {
            yaml += &format!("    V{i}: x\n");
        }
        yaml += "services:\n";
        for i in 0..600 {
            yaml += &format!("  s{i}: {{command: [/bin/true]}}\n");
        }
        let e = load(&yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        let d = &e.0[0];
        assert_eq!(d.code, Code::ConfigLimit);
        assert_eq!(d.context[0], ("limit".into(), "merged_values".into()));
        assert_eq!(
            d.pos,
            Some(Pos {
                line: 1027,
                column: 1
            })
        );
    }

    #[test]
    fn env_entries_are_bounded_after_the_merge_too() {
        let half = limits::ENV_ENTRIES.max_usize() / 2 + 1;
        let vars = |p: &str| -> String { (0..half).map(|i| format!("{p}{i}: x, ")).collect() };
        let yaml = format!(
            "defaults:\n  env: {{{}}}\nservices:\n  web:\n    command: [/bin/true]\n    env: {{{}}}\n",
            vars("A"),
            vars("B")
        );
        let e = load(&yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        assert_eq!(e.0[0].code, Code::ConfigLimit);
        assert_eq!(e.0[0].context[0], ("limit".into(), "env_entries".into()));
    }

    #[test]
    fn a_mistake_in_defaults_is_reported_a_bounded_number_of_times() {
        let mut yaml =
            String::from("defaults:\n  security:\n    capabilities: [CAP_NOPE]\nservices:\n");
        for i in 0..100 {
            yaml += &format!("  s{i}: {{command: [/bin/true]}}\n");
        }
        let e = load(&yaml).unwrap_err();
        let keep = limits::ERRORS_PER_KIND.max_usize();
        assert_eq!(e.len(), keep, "{e}");
        let more = e
            .iter()
            .flat_map(|d| d.context.iter())
            .find(|(k, _)| k == "same_error_more_times");
        assert_eq!(more.map(|(_, v)| v.as_str()), Some("80"));
    }

    #[test]
    fn unknown_dependencies_get_a_bounded_suggestion() {
        let mut yaml = String::from("services:\n");
        for i in 0..50 {
            yaml += &format!("  s{i}: {{command: [/bin/true], depends_on: [x{i}]}}\n");
        }
        let e = load(&yaml).unwrap_err();
        assert_eq!(e.len(), 50);
        assert!(e.iter().all(|d| d.code == Code::ConfigUnknownReference));
        let last = e.0[49].suggestion.clone().unwrap_or_default();
        assert_eq!(
            last,
            "defined services: s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 (and 40 more)"
        );
        assert_eq!(e.0[0].suggestion.as_deref(), Some("did you mean `s0`?"));
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
