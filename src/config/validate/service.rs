//! One service, its `defaults` merged in: command, environment, accounts,
//! instances, priorities, logs and stop, and the calls to each section's
//! checks. It checks what spans the service's sections; it must not merge
//! (`build` does) nor check other services (`depends` does).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::compartment::{Compartment, compartment};
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

/// One service: each part in the order its errors are reported.
pub(super) fn service(
    c: &mut Checker,
    name: &str,
    pos: Pos,
    s: &RawService,
    own: &RawService,
) -> Service {
    let command = list(&s.command);
    let env = env(c, name, pos, s);
    let program = program(c, name, pos, s, &command, &env);
    let working_dir = working_dir(c, name, s);
    accounts(c, name, s);

    let isolation = v(&s.isolation);
    let instances = instances(c, name, s, own);
    let (nice, oom, io_priority) = priorities(c, name, s);

    let Compartment {
        namespaces,
        hostname,
        mounts,
        protect,
        directories,
    } = compartment(c, name, pos, s);

    let res = s.resources.clone().unwrap_or_default();
    let resources = resources(c, &format!("services.{name}"), &res);
    let security = security(c, name, &s.security.clone().unwrap_or_default());
    let health = s.health.as_ref().and_then(|h| health(c, name, pos, h));
    let watch = watch(c, name, &s.watch.clone().unwrap_or_default(), &resources);
    let restart = restart(c, name, &s.restart.clone().unwrap_or_default());
    let st = s.stop.clone().unwrap_or_default();
    let logs = logs(c, name, s);

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

/// `env`, merged: at most [`limits::ENV_ENTRIES`] variables, each name
/// one `execve` can pass.
fn env(c: &mut Checker, name: &str, pos: Pos, s: &RawService) -> BTreeMap<String, String> {
    let at = |field: &str| format!("services.{name}.{field}");
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
    env
}

/// `command[0]` found on this host, through the service's PATH.
fn program(
    c: &mut Checker,
    name: &str,
    pos: Pos,
    s: &RawService,
    command: &[String],
    env: &BTreeMap<String, String>,
) -> PathBuf {
    let at = |field: &str| format!("services.{name}.{field}");
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
    program
}

/// `working_dir`: `/` unless set, and then a directory of this host.
fn working_dir(c: &mut Checker, name: &str, s: &RawService) -> PathBuf {
    let at = |field: &str| format!("services.{name}.{field}");
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
    working_dir
}

/// `user`, `group` and `supplementary_groups`: accounts of this host or ids.
fn accounts(c: &mut Checker, name: &str, s: &RawService) {
    let at = |field: &str| format!("services.{name}.{field}");
    account(c, &s.user, &at("user"), true);
    account(c, &s.group, &at("group"), false);
    if let Some(groups) = &s.supplementary_groups {
        for g in groups {
            account(c, &Some(g.clone()), &at("supplementary_groups"), false);
        }
    }
}

/// `instances`, and the keys only a template (`isolation`) has. `own` is
/// the service as written, before `defaults`.
fn instances(c: &mut Checker, name: &str, s: &RawService, own: &RawService) -> u32 {
    let at = |field: &str| format!("services.{name}.{field}");
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
    instances
}

/// `nice`, `oom_score_adj` and `io_priority`, each within the kernel's range.
fn priorities(
    c: &mut Checker,
    name: &str,
    s: &RawService,
) -> (Option<i32>, Option<i32>, Option<IoPriority>) {
    let at = |field: &str| format!("services.{name}.{field}");
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
    (nice, oom, io_priority)
}

/// `logs`: rotation size and how many files are kept.
fn logs(c: &mut Checker, name: &str, s: &RawService) -> Logs {
    let at = |field: &str| format!("services.{name}.{field}");
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
    logs
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
    use super::super::test_load as load;
    use super::*;

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
