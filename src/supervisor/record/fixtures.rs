//! Configs shared by the tests of `record` and `reload`.

#![allow(clippy::unwrap_used)]

use crate::config::Config;
use crate::config::host::PathKind;
use crate::config::host::fake::FakeHost;
use std::path::Path;

/// Parses and validates `yaml` against a described host (the typical
/// one, with /var/tmp too).
pub fn cfg(yaml: &str) -> Config {
    let mut host = FakeHost::typical();
    host.paths.insert("/var/tmp".into(), PathKind::Dir);
    crate::config::parse_str(yaml, Path::new("/etc/bulkhead/bulkhead.yaml"), &host)
        .unwrap_or_else(|d| panic!("{}", d.render(Some(yaml))))
}

/// One service with every key set; each case changes one top-level key.
pub const FULL: &str = "command: [/bin/sleep, '100']
env: {A: '1'}
working_dir: /srv
user: nobody
group: nogroup
supplementary_groups: [daemon]
autostart: true
depends_on: [dep]
member_of: tenants
instances: 2
nice: 5
oom_score_adj: 100
io_priority: {class: best-effort, level: 4}
namespaces: {pid: true, mount: true, net: false, uts: true, ipc: false}
hostname: box
mounts: {read_only: [/srv], tmpfs: [/tmp]}
resources: {cpu: {max: 0.5, weight: 100}, memory: {max: 256M, high: 200M}, io: {weight: 100}, pids: {max: 64}, rlimits: {nofile: 1024}}
security: {capabilities: [CAP_NET_BIND_SERVICE], no_new_privs: true, seccomp: default}
health: {tcp: {port: 80}, interval: 10s}
watch: {oom: {action: restart}}
restart: {policy: on-failure, backoff: {initial: 100ms}}
stop: {signal: SIGTERM, grace: 10s}
logs: {max_size: 10M, keep: 5}
";

/// `(top-level key, replacement value, is it spawn-relevant)`.
pub const MUTATIONS: &[(&str, &str, bool)] = &[
    ("command", "[/bin/sleep, '200']", true),
    ("command", "[/bin/true]", true),
    ("env", "{A: '2'}", true),
    ("env", "{A: '1', B: '1'}", true),
    ("working_dir", "/var/tmp", true),
    ("user", "daemon", true),
    ("group", "daemon", true),
    ("supplementary_groups", "[root]", true),
    ("nice", "6", true),
    ("oom_score_adj", "-100", true),
    ("io_priority", "{class: idle}", true),
    ("io_priority", "{class: best-effort, level: 5}", true),
    (
        "namespaces",
        "{pid: true, mount: true, net: true, uts: true, ipc: false}",
        true,
    ),
    (
        "namespaces",
        "{pid: true, mount: true, net: false, uts: true, ipc: true}",
        true,
    ),
    ("hostname", "other", true),
    ("mounts", "{read_only: [/srv], tmpfs: [/var/tmp]}", true),
    (
        "mounts",
        "{read_only: [/srv], tmpfs: [/tmp], inaccessible: [/srv]}",
        true,
    ),
    (
        "security",
        "{capabilities: [], no_new_privs: true, seccomp: default}",
        true,
    ),
    (
        "security",
        "{capabilities: [CAP_NET_BIND_SERVICE], no_new_privs: true, seccomp: strict}",
        true,
    ),
    (
        "security",
        "{capabilities: [CAP_NET_BIND_SERVICE], no_new_privs: true, seccomp: unconfined}",
        true,
    ),
    (
        "resources",
        "{cpu: {max: 0.5, weight: 100}, memory: {max: 256M, high: 200M}, io: {weight: 100}, pids: {max: 64}, rlimits: {nofile: 2048}}",
        true,
    ),
    (
        "resources",
        "{cpu: {max: 0.5, weight: 100}, memory: {max: 256M, high: 200M}, io: {weight: 100}, pids: {max: 64}, rlimits: {nofile: 1024, core: 0}}",
        true,
    ),
    ("logs", "{max_size: 20M, keep: 5}", true),
    ("logs", "{max_size: 10M, keep: 1}", true),
    ("member_of", "pool", true),
    // Live: cgroup limits.
    (
        "resources",
        "{cpu: {max: 0.5, weight: 100, cpuset: '0', mems: '0'}, memory: {max: 256M, high: 200M, low: 1M, swap_max: 0, oom_group: false}, io: {weight: 100, devices: [{device: /dev/sda, read_bps: 1M}]}, pids: {max: 64}, rlimits: {nofile: 1024}}",
        false,
    ),
    (
        "resources",
        "{cpu: {max: 1, weight: 100}, memory: {max: 256M, high: 200M}, io: {weight: 100}, pids: {max: 64}, rlimits: {nofile: 1024}}",
        false,
    ),
    (
        "resources",
        "{cpu: {max: 0.5, weight: 300}, memory: {max: 512M, high: 200M}, io: {weight: 200}, pids: {max: 128}, rlimits: {nofile: 1024}}",
        false,
    ),
    (
        "resources",
        "{cpu: {max: 0.5, weight: 100, period: 50ms}, memory: {max: 256M}, io: {weight: 100}, rlimits: {nofile: 1024}}",
        false,
    ),
    // Lifecycle, counts, dependencies.
    (
        "restart",
        "{policy: always, backoff: {initial: 100ms}}",
        false,
    ),
    (
        "restart",
        "{policy: on-failure, backoff: {initial: 1s}}",
        false,
    ),
    ("stop", "{signal: SIGINT, grace: 10s}", false),
    ("stop", "{signal: SIGTERM, grace: 1m}", false),
    ("health", "{tcp: {port: 81}, interval: 10s}", false),
    ("health", "{tcp: {port: 80}, interval: 5s}", false),
    ("watch", "{oom: {action: warn}}", false),
    (
        "watch",
        "{oom: {action: restart}, pids_max: {action: stop}}",
        false,
    ),
    ("autostart", "false", false),
    ("depends_on", "[]", false),
    ("instances", "3", false),
];

/// A config with groups tenants and pool, services dep and `svc` made
/// of FULL with `key` replaced by `value` (or removed for `~`).
pub fn full_config(changes: &[(&str, &str)]) -> Config {
    let mut body = String::new();
    for line in FULL.lines() {
        let (key, value) = line.split_once(": ").unwrap();
        let value = changes
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(value, |(_, v)| *v);
        if value != "~" {
            body.push_str(&format!("    {key}: {value}\n"));
        }
    }
    cfg(&format!(
        "groups:\n  tenants: {{}}\n  pool: {{}}\nservices:\n  dep:\n    command: [/bin/true]\n  svc:\n{body}"
    ))
}
