//! One service, its `defaults` merged in: command, environment, accounts,
//! instances, priorities, logs and stop, and the calls to each section's
//! checks. It checks what spans the service's sections; it must not merge
//! (`build` does) nor check other services (`depends` does).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::compartment::{directories, protect};
use super::health::health;
use super::resources::resources;
use super::restart::restart;
use super::security::security;
use super::watch::watch;
use super::{Checker, first_known, list, p, p_list, v};
use crate::config::host::{DEFAULT_PATH, Host, PathKind, resolve_program};
use crate::config::limits;
use crate::config::model::*;
use crate::config::node::spanned_pos;
use crate::config::schema::*;
use crate::config::units::{Dur, Sig, Size};
use crate::error::{Code, Pos};

/// The most replicas one service runs (`instances`): each is built when the
/// config is loaded, with a port, a dynamic uid and a cgroup.
pub const MAX_INSTANCES: u32 = 1024;
const _: () = assert!(MAX_INSTANCES as u64 == limits::INSTANCES.max);

/// The most rotated files a log keeps (`logs.keep`): each rotation renames
/// every one of them.
pub const MAX_LOGS_KEEP: u32 = 1000;
const _: () = assert!(MAX_LOGS_KEEP as u64 == limits::LOGS_KEEP.max);

pub(super) fn service(
    c: &mut Checker,
    name: &str,
    pos: Pos,
    s: &RawService,
    own: &RawService,
) -> Service {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::Diagnostics;

    fn load(yaml: &str) -> Result<crate::config::Config, Diagnostics> {
        let h = crate::config::host::fake::FakeHost::typical();
        crate::config::parse_str(yaml, Path::new("/etc/bulkhead/b.yaml"), &h)
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
}
