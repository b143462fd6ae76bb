//! `bulkhead security`: an exposure report for a service's effective
//! settings, modelled on `systemd-analyze security`.
//!
//! The criteria, their weights and ranges are systemd's (its
//! `security_assessor_table`); each criterion's badness is 0..=range, it adds
//! `ceil(badness * weight / range)` to a sum, and the overall exposure is
//! `ceil(sum * 100 / weight of the criteria that apply)` tenths, 0.0..=10.0.
//! The verdict word takes systemd's thresholds (in tenths): 100 DANGEROUS,
//! 90 UNSAFE, 75 EXPOSED, 50 MEDIUM, 10 OK, 1 SAFE, 0 PERFECT.
//!
//! Each criterion is mapped onto what bulkhead really builds (`protect:`,
//! `namespaces:`, `security:`, `user:`), never onto a wall it does not
//! build. Walls made of seccomp rules (address families, realtime, clock,
//! personality, setuid files) only exist when the service has a filter: with
//! `seccomp: unconfined` they count as down whatever `protect` says.
//!
//! Counted as exposed because bulkhead does not implement them (as systemd
//! counts a unit that does not set them):
//! - `RootDirectory=/RootImage=`: services run in the host's root.
//! - `MemoryDenyWriteExecute=`: no W^X filter on mmap/mprotect.
//! - `UMask=`: bulkhead sets no umask; the daemon's (022 as systemd starts
//!   it) is inherited, so new files are world-readable.
//! - `ProcSubset=`: /proc is mounted without `subset=pid`.
//! - `IPAddressDeny=`: no IP filter; a private network counts as an allow
//!   list of localhost only (badness 2), which is what it leaves.
//!
//! Not applicable (left out of the weight sum, as systemd does for options
//! that do not matter):
//! - `PrivateUsers=`: bulkhead creates no user namespace: every service
//!   runs under a uid of its own on the host (a dynamic one by default), so
//!   there is no mapping to restrict, and creating user namespaces is
//!   refused by the built-in filters (see `RestrictNamespaces=~CLONE_NEWUSER`).
//! - `SupplementaryGroups=` and `RemoveIPC=` for a service running as root,
//!   as systemd.
//!
//! Judged against bulkhead's design rather than a unit file:
//! - `NotifyAccess=`: bulkhead has no readiness socket, nothing in the
//!   service can change its state but its exit: met.
//! - `Delegate=`: bulkhead delegates no cgroup subtree: met.
//! - `KeyringMode=`: the built-in filters refuse keyctl, add_key and
//!   request_key, so no keyring is shared; a custom or no filter: exposed.
//! - `ProtectKernelLogs=`: met when the service has no CAP_SYSLOG, a
//!   private /dev (no /dev/kmsg) and a built-in filter (syslog(2) needs
//!   CAP_SYSLOG there; /proc/kmsg needs it in the kernel).
//! - `SystemCallFilter=~@group`: read off the built-in profiles: `default`
//!   allows a group only with the capability that gates it (and always
//!   allows @privileged's chown/setuid and @resources' setrlimit), `strict`
//!   allows only @resources' prlimit64; a profile from a file is not read
//!   here (see `bulkhead seccomp check`) and counts as an allow list that
//!   includes the group (9).

use serde::Serialize;

use crate::config::Service;
use crate::config::model::Seccomp;
use crate::config::schema::{PrivateDevices, PrivateTmp, ProtectHome, ProtectProc, ProtectSystem};

/// One criterion of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The criterion, systemd's name for it.
    pub id: String,
    /// The systemd setting it corresponds to, "bulkhead-only" or "not applicable".
    pub systemd: String,
    /// What the service has.
    pub state: String,
    /// 0 (met) ..= `range` (fully exposed); `None` when not applicable.
    pub badness: Option<u32>,
    pub range: u32,
    pub weight: u32,
    /// This line's share of the overall exposure, as systemd's EXPOSURE column.
    pub exposure: f64,
    /// What the relaxation exposes and which config key restores it (or
    /// what the wall prevents, when met).
    pub explain: String,
}

/// The report of one service.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub service: String,
    pub lines: Vec<Line>,
    /// 0.0 ..= 10.0, one decimal.
    pub exposure: f64,
    /// PERFECT, SAFE, OK, MEDIUM, EXPOSED, UNSAFE or DANGEROUS.
    pub verdict: &'static str,
}

/// systemd's verdict for an exposure in tenths.
pub fn verdict(tenths: u64) -> &'static str {
    match tenths {
        100.. => "DANGEROUS",
        90.. => "UNSAFE",
        75.. => "EXPOSED",
        50.. => "MEDIUM",
        10.. => "OK",
        1.. => "SAFE",
        0 => "PERFECT",
    }
}

struct Crit {
    id: &'static str,
    systemd: &'static str,
    weight: u32,
    range: u32,
    badness: Option<u32>,
    state: String,
    /// What the service can do when the wall is down / cannot do when up.
    exposes: &'static str,
    prevents: &'static str,
    /// How to restore it.
    restore: &'static str,
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

fn tenths_to_f64(t: u64) -> f64 {
    f64::from(u32::try_from(t.min(1000)).unwrap_or(1000)) / 10.0
}

/// The exposure report of `svc`, from its effective settings.
pub fn assess(svc: &Service) -> Assessment {
    let crits = criteria(svc);
    let mut sum = 0u64;
    let mut weights = 0u64;
    for c in &crits {
        if let Some(b) = c.badness {
            sum += div_ceil(u64::from(b) * u64::from(c.weight), u64::from(c.range));
            weights += u64::from(c.weight);
        }
    }
    let tenths = div_ceil(sum * 100, weights).min(100);
    let lines = crits
        .into_iter()
        .map(|c| {
            let share = match c.badness {
                Some(b) if b > 0 => div_ceil(
                    div_ceil(u64::from(b) * u64::from(c.weight) * 100, u64::from(c.range)),
                    weights,
                ),
                _ => 0,
            };
            let explain = match c.badness {
                None => c.exposes.to_string(),
                Some(0) => c.prevents.to_string(),
                Some(_) => format!("{}; {}", c.exposes, c.restore),
            };
            Line {
                id: c.id.to_string(),
                systemd: c.systemd.to_string(),
                state: c.state,
                badness: c.badness,
                range: c.range,
                weight: c.weight,
                exposure: tenths_to_f64(share),
                explain,
            }
        })
        .collect();
    Assessment {
        service: svc.name.clone(),
        lines,
        exposure: tenths_to_f64(tenths),
        verdict: verdict(tenths),
    }
}

/// Which kind of filter the service gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filter {
    None,
    Default,
    Strict,
    File,
}

fn filter(s: &Seccomp) -> Filter {
    match s {
        Seccomp::Unconfined => Filter::None,
        Seccomp::Builtin(n) if n == "strict" => Filter::Strict,
        Seccomp::Builtin(_) => Filter::Default,
        Seccomp::File(_) => Filter::File,
    }
}

fn met(ok: bool) -> Option<u32> {
    Some(u32::from(!ok))
}

fn on_off(ok: bool) -> String {
    if ok { "yes" } else { "no" }.to_string()
}

/// The state of a wall made of seccomp rules: with no filter it is down
/// whatever its `protect` key says, and the state says so.
fn seccomp_wall(key_on: bool, confined: bool) -> String {
    match (key_on, confined) {
        (_, false) => "no (security.seccomp: unconfined)".to_string(),
        (on, true) => on_off(on),
    }
}

/// The capability groups of systemd's table: (criterion, capabilities,
/// weight, what they give).
const CAP_GROUPS: &[(&str, &[&str], u32, &str)] = &[
    (
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        &["CAP_SYS_ADMIN"],
        1500,
        "administrator privileges (mount, namespaces, most of the kernel)",
    ),
    (
        "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)",
        &["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"],
        1500,
        "changing uid/gid identities and capabilities",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_PTRACE",
        &["CAP_SYS_PTRACE"],
        1500,
        "ptrace() of other processes",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_TIME",
        &["CAP_SYS_TIME"],
        1000,
        "setting the system clock",
    ),
    (
        "CapabilityBoundingSet=~CAP_NET_ADMIN",
        &["CAP_NET_ADMIN"],
        1000,
        "network configuration (interfaces, routes, firewall)",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_RAWIO",
        &["CAP_SYS_RAWIO"],
        1000,
        "raw I/O (ioperm, /dev/mem)",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_MODULE",
        &["CAP_SYS_MODULE"],
        1000,
        "loading kernel modules",
    ),
    (
        "CapabilityBoundingSet=~CAP_AUDIT_*",
        &["CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE"],
        500,
        "the audit subsystem",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYSLOG",
        &["CAP_SYSLOG"],
        500,
        "the kernel log",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_(NICE|RESOURCE)",
        &["CAP_SYS_NICE", "CAP_SYS_RESOURCE"],
        500,
        "raising priorities and resource limits",
    ),
    (
        "CapabilityBoundingSet=~CAP_MKNOD",
        &["CAP_MKNOD"],
        500,
        "creating device nodes",
    ),
    (
        "CapabilityBoundingSet=~CAP_(CHOWN|FSETID|SETFCAP)",
        &["CAP_CHOWN", "CAP_FSETID", "CAP_SETFCAP"],
        1000,
        "changing file ownership, modes and file capabilities",
    ),
    (
        "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
        &[
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_IPC_OWNER",
        ],
        1000,
        "overriding file and IPC permission checks",
    ),
    (
        "CapabilityBoundingSet=~CAP_KILL",
        &["CAP_KILL"],
        500,
        "signals to any process",
    ),
    (
        "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
        &["CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW"],
        500,
        "privileged ports, broadcast and raw sockets",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_BOOT",
        &["CAP_SYS_BOOT"],
        100,
        "reboot()",
    ),
    (
        "CapabilityBoundingSet=~CAP_MAC_*",
        &["CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE"],
        100,
        "changing or overriding the MAC policy",
    ),
    (
        "CapabilityBoundingSet=~CAP_LINUX_IMMUTABLE",
        &["CAP_LINUX_IMMUTABLE"],
        75,
        "marking files immutable",
    ),
    (
        "CapabilityBoundingSet=~CAP_IPC_LOCK",
        &["CAP_IPC_LOCK"],
        50,
        "locking memory into RAM",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_CHROOT",
        &["CAP_SYS_CHROOT"],
        50,
        "chroot()",
    ),
    (
        "CapabilityBoundingSet=~CAP_BLOCK_SUSPEND",
        &["CAP_BLOCK_SUSPEND"],
        25,
        "wake locks",
    ),
    (
        "CapabilityBoundingSet=~CAP_WAKE_ALARM",
        &["CAP_WAKE_ALARM"],
        25,
        "timers that wake the system",
    ),
    (
        "CapabilityBoundingSet=~CAP_LEASE",
        &["CAP_LEASE"],
        25,
        "file leases",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_TTY_CONFIG",
        &["CAP_SYS_TTY_CONFIG"],
        25,
        "vhangup()",
    ),
    (
        "CapabilityBoundingSet=~CAP_SYS_PACCT",
        &["CAP_SYS_PACCT"],
        25,
        "process accounting (acct())",
    ),
];

/// systemd's syscall groups: (group, weight, the capabilities that let
/// `default` allow it; `None` when `default` always allows part of it,
/// `Some(&[])` when it never does), and whether `strict` allows part of it.
const SYSCALL_GROUPS: &[(&str, u32, Option<&[&str]>, bool)] = &[
    ("@swap", 1000, Some(&["CAP_SYS_ADMIN"]), false),
    ("@obsolete", 250, Some(&[]), false),
    ("@clock", 1000, Some(&["CAP_SYS_TIME"]), false),
    ("@cpu-emulation", 250, Some(&[]), false),
    (
        "@debug",
        1000,
        Some(&["CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_PERFMON"]),
        false,
    ),
    ("@mount", 1000, Some(&["CAP_SYS_ADMIN"]), false),
    ("@module", 1000, Some(&["CAP_SYS_MODULE"]), false),
    ("@raw-io", 1000, Some(&["CAP_SYS_RAWIO"]), false),
    ("@reboot", 1000, Some(&["CAP_SYS_BOOT"]), false),
    ("@privileged", 700, None, false),
    ("@resources", 700, None, true),
];

const NAMESPACES: &[(&str, u32)] = &[
    ("RestrictNamespaces=~CLONE_NEWUSER", 1500),
    ("RestrictNamespaces=~CLONE_NEWNS", 500),
    ("RestrictNamespaces=~CLONE_NEWIPC", 500),
    ("RestrictNamespaces=~CLONE_NEWPID", 500),
    ("RestrictNamespaces=~CLONE_NEWCGROUP", 500),
    ("RestrictNamespaces=~CLONE_NEWNET", 500),
    ("RestrictNamespaces=~CLONE_NEWUTS", 100),
];

#[allow(clippy::too_many_lines)]
fn criteria(svc: &Service) -> Vec<Crit> {
    let p = &svc.protect;
    let ns = &svc.namespaces;
    let caps = &svc.security.capabilities;
    let has = |c: &str| caps.iter().any(|k| k == c);
    let root = matches!(svc.user.as_deref(), Some("root" | "0"));
    let mnt = ns.mount;
    let f = filter(&svc.security.seccomp);
    let confined = f != Filter::None;
    let builtin = matches!(f, Filter::Default | Filter::Strict);
    let private_dev = mnt && p.devices == PrivateDevices::Private;
    let mut v: Vec<Crit> = Vec::new();
    let mut push = |id: &'static str,
                    systemd: &'static str,
                    weight: u32,
                    range: u32,
                    badness: Option<u32>,
                    state: String,
                    exposes: &'static str,
                    prevents: &'static str,
                    restore: &'static str| {
        v.push(Crit {
            id,
            systemd,
            weight,
            range,
            badness,
            state,
            exposes,
            prevents,
            restore,
        });
    };

    let (b, state) = match svc.user.as_deref() {
        None => (0, "a dynamic user of its own".to_string()),
        Some("root" | "0") => (10, "root".to_string()),
        Some("nobody" | "65534") => (9, "nobody (shared by unrelated software)".to_string()),
        Some(u) => (0, format!("static user {u}")),
    };
    push(
        "User=/DynamicUser=",
        "User=/DynamicUser=",
        2000,
        10,
        Some(b),
        state,
        "the service runs as a uid that owns files and processes elsewhere on the host",
        "the service runs under a uid that owns nothing on the host but its own directories",
        "remove `user` (a dynamic user) or name an unprivileged one",
    );
    push(
        "SupplementaryGroups=",
        if root {
            "not applicable"
        } else {
            "SupplementaryGroups="
        },
        200,
        1,
        if root {
            None
        } else {
            met(svc.supplementary_groups.is_empty())
        },
        if root {
            "root".to_string()
        } else {
            format!("{:?}", svc.supplementary_groups)
        },
        if root {
            "not applicable: root reaches every group's files anyway (systemd skips it too)"
        } else {
            "the groups' files are reachable"
        },
        "no supplementary groups",
        "empty `supplementary_groups`",
    );
    push(
        "PrivateDevices=",
        "PrivateDevices=",
        1000,
        1,
        met(private_dev),
        format!("{}", p.devices),
        "the host's /dev: disks, /dev/mem-like nodes, terminals",
        "a minimal /dev and a device program",
        "set protect.devices: private",
    );
    push(
        "PrivateMounts=",
        "PrivateMounts=",
        1000,
        1,
        met(mnt),
        on_off(mnt),
        "mounts the service makes are the host's",
        "a mount namespace of its own: nothing propagates back to the host",
        "set namespaces.mount: true",
    );
    push(
        "PrivateNetwork=",
        "PrivateNetwork=",
        2500,
        1,
        met(ns.net),
        format!("{}", p.network),
        "the host's network: every interface, every listening port on the host",
        "a network namespace with loopback only",
        "set protect.network: private (when the service needs no network)",
    );
    push(
        "PrivateTmp=",
        "PrivateTmp=",
        1000,
        1,
        met(mnt && p.tmp == PrivateTmp::Private),
        format!("{}", p.tmp),
        "other software's files in /tmp and /var/tmp, and races on them",
        "a /tmp and /var/tmp of its own",
        "set protect.tmp: private",
    );
    push(
        "PrivateUsers=",
        "not applicable",
        1000,
        1,
        None,
        "no user namespace".to_string(),
        "bulkhead creates no user namespace: each service has a host uid of its own and the built-in filters refuse new user namespaces",
        "",
        "",
    );
    push(
        "ProtectControlGroups=",
        "ProtectControlGroups=",
        1000,
        1,
        met(mnt && p.cgroups),
        on_off(p.cgroups),
        "the host's cgroup tree, other services' limits and processes",
        "a cgroup namespace rooted at the instance, mounted read-only",
        "set protect.cgroups: true",
    );
    let kernel = mnt && p.kernel;
    push(
        "ProtectKernelModules=",
        "ProtectKernelModules=",
        1000,
        1,
        met(kernel && !has("CAP_SYS_MODULE")),
        format!(
            "kernel: {}, CAP_SYS_MODULE: {}",
            p.kernel,
            on_off(has("CAP_SYS_MODULE"))
        ),
        "loading kernel modules or changing how they load (/proc/sys/kernel/modprobe)",
        "no CAP_SYS_MODULE and /proc/sys read-only",
        "set protect.kernel: true and drop CAP_SYS_MODULE",
    );
    push(
        "ProtectKernelTunables=",
        "ProtectKernelTunables=",
        1000,
        1,
        met(kernel),
        on_off(p.kernel),
        "writing kernel tunables in /proc/sys and /sys (as root)",
        "/proc/sys, /sys and other knobs read-only, OCI's paths masked",
        "set protect.kernel: true",
    );
    push(
        "ProtectKernelLogs=",
        "ProtectKernelLogs=",
        1000,
        1,
        met(!has("CAP_SYSLOG") && private_dev && builtin),
        format!(
            "CAP_SYSLOG: {}, /dev/kmsg: {}, syslog(2): {}",
            on_off(has("CAP_SYSLOG")),
            if private_dev { "absent" } else { "host's" },
            if builtin { "filtered" } else { "not filtered" }
        ),
        "reading or writing the kernel log (addresses, other services' messages)",
        "no CAP_SYSLOG, no /dev/kmsg, syslog(2) refused by the filter",
        "set protect.devices: private and security.seccomp: default, drop CAP_SYSLOG from security.capabilities",
    );
    push(
        "ProtectClock=",
        "ProtectClock=",
        1000,
        1,
        met(p.clock && confined),
        seccomp_wall(p.clock, confined),
        "setting the system clock (with CAP_SYS_TIME)",
        "clock_settime, settimeofday, adjtimex refused by the filter",
        "set protect.clock: true and security.seccomp: default",
    );
    let (b, st) = match (mnt, p.home) {
        (true, ProtectHome::Inaccessible) => (0, "inaccessible"),
        (true, ProtectHome::ReadOnly) => (5, "read-only"),
        _ => (10, "off"),
    };
    push(
        "ProtectHome=",
        "ProtectHome=",
        1000,
        10,
        Some(b),
        st.to_string(),
        "users' home directories (/home, /root, /run/user)",
        "/home, /root and /run/user inaccessible",
        "set protect.home: inaccessible",
    );
    push(
        "ProtectHostname=",
        "ProtectHostname=",
        50,
        1,
        met(ns.uts),
        on_off(ns.uts),
        "changing the host's hostname (as root)",
        "a UTS namespace of its own",
        "set namespaces.uts: true",
    );
    let (b, st) = match (mnt, p.system) {
        (true, ProtectSystem::Strict) => (0, "strict"),
        (true, ProtectSystem::Full) => (3, "full"),
        _ => (10, "off"),
    };
    push(
        "ProtectSystem=",
        "ProtectSystem=",
        1000,
        10,
        Some(b),
        st.to_string(),
        "writing the host's files (as root: /etc, /usr, every binary)",
        "the whole host read-only but the service's own directories",
        "set protect.system: strict",
    );
    push(
        "RootDirectory=/RootImage=",
        "RootDirectory=/RootImage=",
        200,
        1,
        Some(1),
        "host root".to_string(),
        "the service sees the host's root file system",
        "",
        "not implemented by bulkhead",
    );
    push(
        "LockPersonality=",
        "LockPersonality=",
        100,
        1,
        met(p.personality && confined),
        seccomp_wall(p.personality, confined),
        "changing the execution domain (READ_IMPLIES_EXEC, ...)",
        "personality() locked by the filter",
        "set protect.personality: true and security.seccomp: default",
    );
    push(
        "MemoryDenyWriteExecute=",
        "MemoryDenyWriteExecute=",
        100,
        1,
        Some(1),
        "not implemented".to_string(),
        "writable and executable memory mappings (injected code runs)",
        "",
        "not implemented by bulkhead",
    );
    push(
        "NoNewPrivileges=",
        "NoNewPrivileges=",
        1000,
        1,
        met(svc.security.no_new_privs),
        on_off(svc.security.no_new_privs),
        "gaining privileges through setuid binaries and file capabilities",
        "no_new_privs: exec never raises privileges",
        "set security.no_new_privs: true",
    );
    for (id, group, weight, gives) in CAP_GROUPS {
        let held: Vec<&str> = group.iter().copied().filter(|c| has(c)).collect();
        push(
            id,
            "CapabilityBoundingSet=",
            *weight,
            1,
            met(held.is_empty()),
            if held.is_empty() {
                "dropped".to_string()
            } else {
                held.join(" ")
            },
            gives,
            "not in the bounding set",
            "remove it from security.capabilities",
        );
    }
    push(
        "UMask=",
        "UMask=",
        100,
        10,
        Some(5),
        "inherited (022)".to_string(),
        "files the service creates are world-readable",
        "",
        "not implemented by bulkhead: set the umask in the service",
    );
    push(
        "KeyringMode=",
        "KeyringMode=",
        1000,
        1,
        met(builtin),
        if builtin {
            "keyctl refused".to_string()
        } else {
            "keyctl allowed".to_string()
        },
        "the kernel keyrings bulkhead's session shares",
        "keyctl, add_key and request_key refused by the filter",
        "set security.seccomp: default (or strict)",
    );
    let hidepid = mnt && ns.pid && p.proc == ProtectProc::Invisible;
    push(
        "ProtectProc=",
        "ProtectProc=",
        1000,
        3,
        Some(if hidepid { 0 } else { 3 }),
        if hidepid { "invisible" } else { "off" }.to_string(),
        "every process of the (namespace's) process tree in /proc",
        "/proc with hidepid=invisible",
        "set protect.proc: invisible",
    );
    push(
        "ProcSubset=",
        "ProcSubset=",
        10,
        1,
        Some(1),
        "all".to_string(),
        "the non-process files of /proc",
        "",
        "not implemented by bulkhead",
    );
    push(
        "NotifyAccess=",
        "NotifyAccess=",
        1000,
        1,
        Some(0),
        "no notify socket".to_string(),
        "",
        "bulkhead has no readiness socket: only the exit changes a service's state",
        "",
    );
    push(
        "RemoveIPC=",
        if root { "not applicable" } else { "RemoveIPC=" },
        100,
        1,
        if root { None } else { met(ns.ipc) },
        on_off(ns.ipc),
        if root {
            "not applicable: root's IPC objects are not removed by systemd either"
        } else {
            "SysV IPC objects outliving the service (and reachable by others)"
        },
        "an IPC namespace of its own: its objects go with it",
        "set namespaces.ipc: true",
    );
    push(
        "Delegate=",
        "Delegate=",
        100,
        1,
        Some(0),
        "no".to_string(),
        "",
        "bulkhead delegates no cgroup subtree",
        "",
    );
    push(
        "RestrictRealtime=",
        "RestrictRealtime=",
        500,
        1,
        met(p.realtime && confined),
        seccomp_wall(p.realtime, confined),
        "realtime scheduling, which can starve the host",
        "realtime policies refused by the filter",
        "set protect.realtime: true and security.seccomp: default",
    );
    push(
        "RestrictSUIDSGID=",
        "RestrictSUIDSGID=",
        1000,
        1,
        met(p.suid && confined),
        seccomp_wall(p.suid, confined),
        "making setuid/setgid files where the service may write, for whoever runs them later",
        "chmod, creat, mknod and open with S_ISUID/S_ISGID refused by the filter",
        "set protect.suid: true and security.seccomp: default",
    );
    let ns_ok = match f {
        Filter::Strict => true,
        Filter::Default => !has("CAP_SYS_ADMIN"),
        Filter::File | Filter::None => false,
    };
    for (id, weight) in NAMESPACES {
        push(
            id,
            "RestrictNamespaces=",
            *weight,
            1,
            met(ns_ok),
            if ns_ok { "refused" } else { "allowed" }.to_string(),
            "new namespaces, more kernel attack surface",
            "unshare, setns and namespace flags of clone refused by the filter",
            "set security.seccomp: default and drop CAP_SYS_ADMIN from security.capabilities",
        );
    }
    let fams: Option<&Vec<String>> = if confined {
        p.address_families.as_ref()
    } else {
        None
    };
    let allows =
        |names: &[&str]| fams.is_none_or(|l| l.iter().any(|n| names.contains(&n.as_str())));
    let known = [
        "inet", "inet6", "unix", "local", "netlink", "route", "packet",
    ];
    let other = fams.is_none_or(|l| l.iter().any(|n| !known.contains(&n.as_str())));
    let fam_state = |ok: bool| match (ok, confined) {
        (_, false) => "allowed (security.seccomp: unconfined)".to_string(),
        (true, true) => "refused".to_string(),
        (false, true) => "allowed".to_string(),
    };
    for (id, weight, ok, exposes) in [
        (
            "RestrictAddressFamilies=~AF_(INET|INET6)",
            1500,
            !allows(&["inet", "inet6"]),
            "Internet sockets",
        ),
        (
            "RestrictAddressFamilies=~AF_UNIX",
            25,
            !allows(&["unix", "local"]),
            "local sockets",
        ),
        (
            "RestrictAddressFamilies=~AF_NETLINK",
            200,
            !allows(&["netlink", "route"]),
            "netlink sockets (kernel interfaces)",
        ),
        (
            "RestrictAddressFamilies=~AF_PACKET",
            1000,
            !allows(&["packet"]),
            "packet sockets (raw frames)",
        ),
        (
            "RestrictAddressFamilies=~…",
            1250,
            !other,
            "exotic socket families (and their kernel code)",
        ),
    ] {
        push(
            id,
            "RestrictAddressFamilies=",
            weight,
            1,
            met(ok),
            fam_state(ok),
            exposes,
            "refused by the filter (EAFNOSUPPORT)",
            "narrow protect.address_families, with security.seccomp: default",
        );
    }
    let (b, st) = match f {
        Filter::None => (10, "all ABIs"),
        Filter::File => (8, "the profile's architectures"),
        _ => (0, "native only"),
    };
    push(
        "SystemCallArchitectures=",
        "SystemCallArchitectures=",
        1000,
        10,
        Some(b),
        st.to_string(),
        "system calls through other ABIs (32-bit, x32), a classic filter bypass",
        "a call through another ABI kills the process",
        "set security.seccomp: default (or strict)",
    );
    for (group, weight, gate, strict_allows) in SYSCALL_GROUPS {
        let (b, st) = match f {
            Filter::None => (10, "no filter".to_string()),
            Filter::File => (9, "custom profile, not assessed here".to_string()),
            Filter::Strict if *strict_allows => (9, "partly allowed".to_string()),
            Filter::Strict => (0, "refused".to_string()),
            Filter::Default => match gate {
                None => (9, "partly allowed".to_string()),
                Some(g) => {
                    let held: Vec<&str> = g.iter().copied().filter(|c| has(c)).collect();
                    let clock_wall = *group == "@clock" && p.clock;
                    if held.is_empty() || clock_wall {
                        (0, "refused".to_string())
                    } else {
                        (9, format!("allowed by {}", held.join(" ")))
                    }
                }
            },
        };
        let id: &'static str = match *group {
            "@swap" => "SystemCallFilter=~@swap",
            "@obsolete" => "SystemCallFilter=~@obsolete",
            "@clock" => "SystemCallFilter=~@clock",
            "@cpu-emulation" => "SystemCallFilter=~@cpu-emulation",
            "@debug" => "SystemCallFilter=~@debug",
            "@mount" => "SystemCallFilter=~@mount",
            "@module" => "SystemCallFilter=~@module",
            "@raw-io" => "SystemCallFilter=~@raw-io",
            "@reboot" => "SystemCallFilter=~@reboot",
            "@privileged" => "SystemCallFilter=~@privileged",
            _ => "SystemCallFilter=~@resources",
        };
        push(
            id,
            "SystemCallFilter=",
            *weight,
            10,
            Some(b),
            st,
            "system calls of this group reach the kernel",
            "refused by the seccomp filter",
            "use security.seccomp: strict (or default, without the capability that opens it)",
        );
    }
    let (b, st) = if ns.net {
        (2, "loopback only")
    } else {
        (10, "no IP filter")
    };
    push(
        "IPAddressDeny=",
        "IPAddressDeny=",
        1000,
        10,
        Some(b),
        st.to_string(),
        "any IP address (no IP filter in bulkhead)",
        "",
        "set protect.network: private when the service needs no network",
    );
    let (b, st) = match (private_dev, p.device_allow.is_empty()) {
        (true, true) => (0, "minimal".to_string()),
        (true, false) => (5, format!("minimal + {}", p.device_allow.join(", "))),
        (false, _) => (10, "no device program".to_string()),
    };
    push(
        "DeviceAllow=",
        "DeviceAllow=",
        1000,
        10,
        Some(b),
        st,
        "devices beyond the minimal set",
        "a device program allowing only the minimal /dev",
        "set protect.devices: private and keep protect.device_allow short",
    );
    let ambient = !root && !caps.is_empty();
    push(
        "AmbientCapabilities=",
        "AmbientCapabilities=",
        500,
        1,
        met(!ambient),
        if ambient {
            caps.join(" ")
        } else {
            "none".to_string()
        },
        "the program runs with capabilities though not root",
        "no ambient capabilities",
        "empty security.capabilities",
    );
    v
}

/// The report as a table, as `systemd-analyze security` prints it.
pub fn render(a: &Assessment) -> String {
    let mut out = String::new();
    let name_w = a
        .lines
        .iter()
        .map(|l| l.id.chars().count())
        .max()
        .unwrap_or(4);
    out.push_str(&format!(
        "  {:<name_w$} {:<60} EXPOSURE\n",
        "NAME", "DESCRIPTION"
    ));
    let mut lines: Vec<&Line> = a.lines.iter().collect();
    lines.sort_by_key(|l| {
        std::cmp::Reverse(
            l.badness
                .map(|b| u64::from(b) * u64::from(l.weight) * 100 / u64::from(l.range)),
        )
    });
    for l in lines {
        let mark = match l.badness {
            None => " ",
            Some(0) => "✓",
            Some(_) => "✗",
        };
        let exp = match l.badness {
            Some(b) if b > 0 => format!("{:.1}", l.exposure),
            _ => String::new(),
        };
        let desc = format!("{}: {}", l.state, l.explain);
        out.push_str(&format!("{mark} {:<name_w$} {:<60} {exp}\n", l.id, desc));
    }
    out.push_str(&format!(
        "\n→ Overall exposure level for {}: {:.1} {}\n",
        a.service, a.exposure, a.verdict
    ));
    out
}

/// Warnings for `bulkhead validate`: one per config key relaxed from its
/// default, with the criteria it costs and what they expose.
pub fn relaxations(svc: &Service) -> Vec<String> {
    use crate::config::model::Protect;
    let d = Protect::default();
    let p = &svc.protect;
    type Fix = Box<dyn Fn(&mut Service)>;
    let mut keys: Vec<(String, String, Fix)> = Vec::new();
    let mut add = |key: &str, value: String, fix: Fix| keys.push((key.to_string(), value, fix));
    if let Some(u) = &svc.user {
        add("user", u.clone(), Box::new(|s| s.user = None));
    }
    if !svc.supplementary_groups.is_empty() {
        add(
            "supplementary_groups",
            svc.supplementary_groups.join(", "),
            Box::new(|s| s.supplementary_groups.clear()),
        );
    }
    macro_rules! protect {
        ($($field:ident),*) => {$(
            if p.$field != d.$field {
                add(
                    concat!("protect.", stringify!($field)),
                    serde_json::to_string(&p.$field)
                        .unwrap_or_default()
                        .replace('"', "")
                        .replace("null", "[any]"),
                    Box::new(|s| s.protect.$field = Protect::default().$field),
                );
            }
        )*};
    }
    protect!(
        system,
        home,
        tmp,
        devices,
        device_allow,
        kernel,
        cgroups,
        proc,
        address_families,
        realtime,
        clock,
        personality,
        suid
    );
    if !matches!(&svc.security.seccomp, Seccomp::Builtin(_)) {
        add(
            "security.seccomp",
            match &svc.security.seccomp {
                Seccomp::File(f) => f.display().to_string(),
                _ => "unconfined".to_string(),
            },
            Box::new(|s| s.security.seccomp = Seccomp::Builtin("default".into())),
        );
    }
    if !svc.security.no_new_privs {
        add(
            "security.no_new_privs",
            "false".into(),
            Box::new(|s| s.security.no_new_privs = true),
        );
    }
    if !svc.security.capabilities.is_empty() {
        add(
            "security.capabilities",
            svc.security.capabilities.join(", "),
            Box::new(|s| s.security.capabilities.clear()),
        );
    }
    let n = svc.namespaces;
    for (key, off, fix) in [
        (
            "namespaces.mount",
            !n.mount,
            Box::new(|s: &mut Service| s.namespaces.mount = true) as Fix,
        ),
        (
            "namespaces.pid",
            !n.pid,
            Box::new(|s: &mut Service| s.namespaces.pid = true),
        ),
        (
            "namespaces.uts",
            !n.uts,
            Box::new(|s: &mut Service| s.namespaces.uts = true),
        ),
        (
            "namespaces.ipc",
            !n.ipc,
            Box::new(|s: &mut Service| s.namespaces.ipc = true),
        ),
    ] {
        if off {
            add(key, "false".into(), fix);
        }
    }
    if keys.is_empty() {
        // Nothing relaxed: nothing to assess (validate runs this for every
        // service, and the assessment is most of its time).
        return Vec::new();
    }
    let now = assess(svc);
    keys.into_iter()
        .filter_map(|(key, value, fix)| {
            let mut restored = svc.clone();
            fix(&mut restored);
            let better = assess(&restored);
            let worse: Vec<&Line> = now
                .lines
                .iter()
                .zip(&better.lines)
                .filter(|(l, r)| l.badness.unwrap_or(0) > r.badness.unwrap_or(0))
                .map(|(l, _)| l)
                .collect();
            let first = worse.first()?;
            let mut ids: Vec<&str> = worse.iter().take(3).map(|l| l.id.as_str()).collect();
            let more = worse.len().saturating_sub(3);
            let extra = if more > 0 { format!(" and {more} more") } else { String::new() };
            let what = first.explain.split("; ").next().unwrap_or_default();
            ids.dedup();
            Some(format!(
                "services.{}: {key} is {value} ({}{extra}: {what}; exposure {:.1} -> {:.1} with the default)",
                svc.name,
                ids.join(", "),
                now.exposure,
                better.exposure
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn service(extra: &str) -> Service {
        let yaml = format!("services:\n  web:\n    command: [/bin/true]\n{extra}");
        let cfg = crate::config::parse_str(
            &yaml,
            Path::new("t.yaml"),
            &crate::config::host::fake::FakeHost::typical(),
        )
        .unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
        cfg.services[0].clone()
    }

    fn line<'a>(a: &'a Assessment, id: &str) -> &'a Line {
        a.lines
            .iter()
            .find(|l| l.id == id)
            .unwrap_or_else(|| panic!("no line {id}"))
    }

    #[test]
    fn the_table_is_systemds() {
        let a = assess(&service(""));
        assert_eq!(a.lines.len(), 80);
        let total: u32 = a.lines.iter().map(|l| l.weight).sum();
        assert_eq!(total, 56435);
        assert_eq!(verdict(0), "PERFECT");
        assert_eq!(verdict(13), "OK");
        assert_eq!(verdict(9), "SAFE");
        assert_eq!(verdict(50), "MEDIUM");
        assert_eq!(verdict(75), "EXPOSED");
        assert_eq!(verdict(96), "UNSAFE");
    }

    #[test]
    fn default_service_figure() {
        let a = assess(&service(""));
        // Issue 14's target: at most 1.3 with every default.
        assert_eq!(a.exposure, 1.3, "{}", render(&a));
        assert_eq!(a.verdict, "OK");
        for id in [
            "User=/DynamicUser=",
            "ProtectSystem=",
            "ProtectHome=",
            "PrivateTmp=",
            "PrivateDevices=",
            "ProtectKernelTunables=",
            "ProtectKernelModules=",
            "ProtectKernelLogs=",
            "ProtectControlGroups=",
            "ProtectProc=",
            "NoNewPrivileges=",
            "SystemCallArchitectures=",
            "RestrictNamespaces=~CLONE_NEWUSER",
            "SystemCallFilter=~@mount",
            "DeviceAllow=",
            "KeyringMode=",
            "RestrictSUIDSGID=",
        ] {
            assert_eq!(line(&a, id).badness, Some(0), "{id}");
        }
        assert_eq!(line(&a, "MemoryDenyWriteExecute=").badness, Some(1));
        assert_eq!(line(&a, "PrivateUsers=").badness, None);
        assert_eq!(line(&a, "PrivateUsers=").systemd, "not applicable");
    }

    #[test]
    fn private_network_figure() {
        let a = assess(&service("    protect: { network: private }\n"));
        // Issue 14's target: at most 0.8.
        assert_eq!(a.exposure, 0.7, "{}", render(&a));
        assert_eq!(a.verdict, "SAFE");
        assert_eq!(line(&a, "PrivateNetwork=").badness, Some(0));
        assert_eq!(line(&a, "IPAddressDeny=").badness, Some(2));
    }

    #[test]
    fn root_unconfined_system_off_is_high() {
        let a = assess(&service(
            "    user: root\n    protect: { system: off }\n    security: { seccomp: unconfined }\n",
        ));
        // bulkhead drops every capability of root too (the bounding set),
        // so the capability lines stay met: 5.4, not systemd's 9.6 of a
        // plain unit.
        assert_eq!(a.exposure, 5.4, "{}", render(&a));
        assert_eq!(a.verdict, "MEDIUM");
        assert_eq!(line(&a, "User=/DynamicUser=").badness, Some(10));
        assert_eq!(line(&a, "ProtectSystem=").badness, Some(10));
        assert_eq!(line(&a, "SystemCallArchitectures=").badness, Some(10));
        assert_eq!(line(&a, "RemoveIPC=").badness, None);
        // Walls made of seccomp rules fall with the filter.
        assert_eq!(line(&a, "ProtectClock=").badness, Some(1));
        assert_eq!(line(&a, "RestrictSUIDSGID=").badness, Some(1));
        assert!(
            line(&a, "RestrictSUIDSGID=")
                .explain
                .contains("protect.suid: true and security.seccomp"),
            "{}",
            render(&a)
        );
        assert_eq!(
            line(&a, "RestrictAddressFamilies=~AF_PACKET").badness,
            Some(1)
        );
        for l in a.lines.iter().filter(|l| l.badness.unwrap_or(0) > 0) {
            assert!(!l.explain.is_empty(), "{}", l.id);
            assert!(l.exposure > 0.0, "{}", l.id);
        }
    }

    #[test]
    fn each_relaxation_flips_its_line() {
        let cases: &[(&str, &str)] = &[
            ("    user: root\n", "User=/DynamicUser="),
            ("    user: nobody\n", "User=/DynamicUser="),
            ("    protect: { system: full }\n", "ProtectSystem="),
            ("    protect: { home: read-only }\n", "ProtectHome="),
            ("    protect: { tmp: off }\n", "PrivateTmp="),
            ("    protect: { devices: host }\n", "PrivateDevices="),
            ("    protect: { devices: host }\n", "DeviceAllow="),
            ("    protect: { devices: host }\n", "ProtectKernelLogs="),
            ("    protect: { kernel: false }\n", "ProtectKernelTunables="),
            ("    protect: { kernel: false }\n", "ProtectKernelModules="),
            ("    protect: { cgroups: false }\n", "ProtectControlGroups="),
            ("    protect: { proc: off }\n", "ProtectProc="),
            ("    protect: { realtime: false }\n", "RestrictRealtime="),
            ("    protect: { clock: false }\n", "ProtectClock="),
            ("    protect: { personality: false }\n", "LockPersonality="),
            ("    protect: { suid: false }\n", "RestrictSUIDSGID="),
            (
                "    protect: { address_families: [any] }\n",
                "RestrictAddressFamilies=~AF_PACKET",
            ),
            (
                "    protect: { address_families: [unix, inet, can] }\n",
                "RestrictAddressFamilies=~…",
            ),
            ("    namespaces: { uts: false }\n", "ProtectHostname="),
            ("    namespaces: { ipc: false }\n", "RemoveIPC="),
            (
                "    security: { no_new_privs: false, seccomp: unconfined }\n",
                "NoNewPrivileges=",
            ),
            ("    security: { seccomp: unconfined }\n", "KeyringMode="),
            (
                "    security: { seccomp: unconfined }\n",
                "SystemCallFilter=~@obsolete",
            ),
            (
                "    security: { capabilities: [CAP_SYS_ADMIN] }\n",
                "CapabilityBoundingSet=~CAP_SYS_ADMIN",
            ),
            (
                "    security: { capabilities: [CAP_SYS_ADMIN] }\n",
                "RestrictNamespaces=~CLONE_NEWUSER",
            ),
            (
                "    security: { capabilities: [CAP_SYS_ADMIN] }\n",
                "SystemCallFilter=~@mount",
            ),
            (
                "    security: { capabilities: [CAP_NET_BIND_SERVICE] }\n",
                "AmbientCapabilities=",
            ),
            (
                "    security: { capabilities: [CAP_SYS_PTRACE] }\n",
                "SystemCallFilter=~@debug",
            ),
            (
                "    supplementary_groups: [daemon]\n",
                "SupplementaryGroups=",
            ),
        ];
        let base = assess(&service(""));
        for (yaml, id) in cases {
            let a = assess(&service(yaml));
            let before = line(&base, id).badness.unwrap_or(0);
            let after = line(&a, id).badness.unwrap_or(0);
            assert!(after > before, "{yaml} {id}: {before} -> {after}");
            assert!(a.exposure >= base.exposure, "{yaml}");
            assert!(!relaxations(&service(yaml)).is_empty(), "{yaml}");
        }
        assert!(relaxations(&service("")).is_empty());
        let w = relaxations(&service("    protect: { system: off }\n"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("services.web: protect.system is off (ProtectSystem="),
            "{w:?}"
        );
    }

    #[test]
    fn strict_profile_closes_privileged() {
        let a = assess(&service("    security: { seccomp: strict }\n"));
        assert_eq!(line(&a, "SystemCallFilter=~@privileged").badness, Some(0));
        assert_eq!(line(&a, "SystemCallFilter=~@resources").badness, Some(9));
        assert!(a.exposure < assess(&service("")).exposure);
    }

    #[test]
    fn render_has_the_overall_line() {
        let text = render(&assess(&service("")));
        assert!(
            text.contains("→ Overall exposure level for web: 1.3 OK"),
            "{text}"
        );
        assert!(text.contains("✓ ProtectSystem="));
        assert!(text.contains("✗ MemoryDenyWriteExecute="));
    }
}
