//! The config file, section by section, as written by the user (before
//! defaults are applied). `config/reference.yaml` documents every key with its
//! default; keep the two in step.

use super::shape::{AbsPath, Leaf, leaf_deserialize, section, word_enum};
use super::units::{Cpu, CpuList, Dur, IdRange, Percent, PortRange, Rlimit, Sig, Size};

section! {
    /// The whole file.
    pub struct RawConfig {
        /// Settings of the daemon itself.
        supervisor: section RawSupervisor,
        /// Settings merged into every service (and group member) before its own.
        defaults: section RawService,
        /// Parent cgroups with aggregate limits around their member services.
        groups: map RawGroup,
        /// The services, by name.
        services: map RawService,
    }
}

section! {
    /// Settings of the daemon itself.
    pub struct RawSupervisor {
        /// `auto` (the daemon's delegated cgroup, else <cgroup2 mount>/bulkhead) or an absolute path.
        cgroup_root: leaf CgroupRoot,
        /// Instance records for crash-safe adoption. Default /run/bulkhead.
        state_dir: leaf AbsPath,
        /// The control socket. Default /run/bulkhead/control.sock.
        control_socket: leaf AbsPath,
        /// Prometheus /metrics and /healthz address, `off` to disable. Default 127.0.0.1:9464.
        metrics_listen: leaf Listen,
        /// Service stdout/stderr files. Default /var/log/bulkhead.
        log_dir: leaf AbsPath,
        /// Period of the stats sweep. Default 1s.
        monitor_interval: leaf Dur,
        /// Admission bulkhead for on-demand launches.
        launch: section RawLaunch,
        /// Ports handed to instances as BULKHEAD_PORT. Default 20000-29999.
        ports: leaf PortRange,
        /// uids/gids for services without `user` (one per instance). Default 61184-65519.
        dynamic_users: leaf IdRange,
    }
}

section! {
    /// Admission control for launches of template instances.
    pub struct RawLaunch {
        /// Instance starts in progress at once. Default 8.
        max_concurrent: leaf u32,
        /// Launches waiting for a slot; more are rejected. Default 64.
        max_queue: leaf u32,
        /// How long a launch waits for a slot before it gives up. Default 30s.
        queue_timeout: leaf Dur,
    }
}

section! {
    /// A group: one parent cgroup with aggregate limits, and defaults for its members.
    pub struct RawGroup {
        /// Aggregate limits for the group's parent cgroup (all members together).
        resources: section RawResources,
        /// Settings merged into every member service, after `defaults`, before its own.
        defaults: section RawService,
    }
}

section! {
    /// One service (or, with `isolation`, a template of on-demand instances).
    pub struct RawService {
        /// The program and its arguments, as a list. Required.
        command: list String,
        /// Environment variables, added to a minimal default (PATH).
        env: map String,
        /// Working directory. Default /.
        working_dir: leaf AbsPath,
        /// User name or uid to run as. Default: a dynamic user of the instance's own.
        user: leaf String,
        /// Group name or gid to run as. Default the user's primary group.
        group: leaf String,
        /// Supplementary groups. Default none.
        supplementary_groups: list String,
        /// Start with the daemon. Default true.
        autostart: leaf bool,
        /// Services that must be up first (healthy when they have a health check).
        depends_on: list String,
        /// The group (from `groups`) whose cgroup holds this service.
        member_of: leaf String,
        /// Identical replicas, each in its own cgroup. Default 1.
        instances: leaf u32,
        /// Scheduling niceness, -20..19.
        nice: leaf i32,
        /// OOM killer adjustment, -1000..1000.
        oom_score_adj: leaf i32,
        /// I/O scheduling class and level.
        io_priority: section RawIoPriority,
        /// Makes the service a template: none (one shared instance), namespace or session.
        isolation: leaf Isolation,
        /// Stop a template instance after this long without a launch. Default never.
        idle_timeout: leaf Dur,
        /// Most instances of a template at once. Default unlimited.
        max_instances: leaf u32,
        /// Namespaces to create. pid and mount are on by default.
        namespaces: section RawNamespaces,
        /// Hostname inside a new uts namespace.
        hostname: leaf String,
        /// Mount changes inside the service's mount namespace.
        mounts: section RawMounts,
        /// The walls between the service and the host. Every one is on by default.
        protect: section RawProtect,
        /// Directories the service owns, created and chowned to its user at start.
        directories: section RawDirectories,
        /// cgroup v2 limits and rlimits.
        resources: section RawResources,
        /// Privileges and syscall filtering.
        security: section RawSecurity,
        /// A health check.
        health: section RawHealth,
        /// Violation rules and what to do when one fires.
        watch: section RawWatch,
        /// What to do when the service ends.
        restart: section RawRestart,
        /// How to stop the service.
        stop: section RawStop,
        /// Where stdout and stderr go.
        logs: section RawLogs,
    }
}

section! {
    /// I/O priority (ioprio_set).
    pub struct RawIoPriority {
        /// realtime, best-effort or idle.
        class: leaf IoClass,
        /// 0 (highest) to 7 (lowest); ignored for idle.
        level: leaf u32,
    }
}

section! {
    /// Which namespaces the service gets.
    pub struct RawNamespaces {
        /// A new PID namespace with bulkhead's init as PID 1. Default true.
        pid: leaf bool,
        /// A new mount namespace with a fresh /proc. Default true.
        mount: leaf bool,
        /// A new, empty network namespace (loopback only). Default false.
        net: leaf bool,
        /// A new UTS namespace (own hostname). Default true.
        uts: leaf bool,
        /// A new IPC namespace. Default true.
        ipc: leaf bool,
    }
}

section! {
    /// Mount changes in the service's mount namespace.
    pub struct RawMounts {
        /// Paths made read-only.
        read_only: list AbsPath,
        /// Paths kept writable inside a read-only path.
        read_write: list AbsPath,
        /// Paths covered by an empty tmpfs.
        tmpfs: list AbsPath,
        /// Paths made inaccessible.
        inaccessible: list AbsPath,
    }
}

section! {
    /// The walls between a service and the host (systemd's Protect*/Private*/Restrict* settings).
    pub struct RawProtect {
        /// strict (the whole host read-only but the service's own directories and
        /// mounts.read_write), full (/usr, /boot, /etc read-only) or off. Default strict.
        system: leaf ProtectSystem,
        /// /home, /root and /run/user: inaccessible, read-only or off. Default inaccessible.
        home: leaf ProtectHome,
        /// private (a /tmp and /var/tmp of the service's own) or off. Default private.
        tmp: leaf PrivateTmp,
        /// private (a minimal /dev and a device program denying every other device) or host. Default private.
        devices: leaf PrivateDevices,
        /// Devices a private /dev adds: "/dev/dri/renderD128 rw", "c 10:200 rw".
        device_allow: list String,
        /// /proc/sys, /sys and other kernel knobs read-only, OCI's masked paths masked. Default true.
        kernel: leaf bool,
        /// A cgroup namespace rooted at the instance and a read-only cgroup2 mount. Default true.
        cgroups: leaf bool,
        /// invisible (/proc with hidepid=invisible) or off. Default invisible.
        proc: leaf ProtectProc,
        /// host (the host's network) or private (a network namespace with loopback only). Default host.
        network: leaf Network,
        /// Socket address families allowed: unix, inet, inet6, netlink, ..., or [any]. Default [unix, inet, inet6, netlink].
        address_families: list String,
        /// Realtime scheduling refused (RestrictRealtime). Default true.
        realtime: leaf bool,
        /// Changes to the system clock refused (ProtectClock). Default true.
        clock: leaf bool,
        /// The execution domain locked (LockPersonality). Default true.
        personality: leaf bool,
        /// Setuid/setgid files refused: chmod, creat, mknod and open with S_ISUID or S_ISGID (RestrictSUIDSGID). Default true.
        suid: leaf bool,
    }
}

section! {
    /// Directories a service owns (names relative to their base; created, owned by the service's user).
    pub struct RawDirectories {
        /// Under /var/lib, kept across restarts: STATE_DIRECTORY.
        state: list String,
        /// Under /run, removed when the instance stops: RUNTIME_DIRECTORY.
        runtime: list String,
        /// Under /var/cache: CACHE_DIRECTORY.
        cache: list String,
        /// Under /var/log: LOGS_DIRECTORY.
        logs: list String,
    }
}

section! {
    /// cgroup v2 limits (and rlimits) of one instance, or of a group as a whole.
    pub struct RawResources {
        /// cpu.max, cpu.weight, cpuset.
        cpu: section RawCpu,
        /// memory.max, memory.high, memory.low, memory.swap.max, memory.oom.group.
        memory: section RawMemory,
        /// io.max per device, io.weight.
        io: section RawIo,
        /// pids.max.
        pids: section RawPids,
        /// Process rlimits (setrlimit); not for groups.
        rlimits: section RawRlimits,
    }
}

section! {
    /// CPU limits.
    pub struct RawCpu {
        /// cpu.max bandwidth: cores (1.5) or percent of one core ("150%"), or max.
        max: leaf Cpu,
        /// cpu.max period. Default 100ms.
        period: leaf Dur,
        /// cpu.weight, 1..10000. Default 100.
        weight: leaf u64,
        /// cpuset.cpus, e.g. "0-1".
        cpuset: leaf CpuList,
        /// cpuset.mems, e.g. "0".
        mems: leaf CpuList,
    }
}

section! {
    /// Memory limits.
    pub struct RawMemory {
        /// memory.max: the hard limit; past it the OOM killer runs in the cgroup.
        max: leaf Size,
        /// memory.high: the throttle point, reclaim is forced above it.
        high: leaf Size,
        /// memory.low: best-effort protection from reclaim.
        low: leaf Size,
        /// memory.swap.max. 0 forbids swap.
        swap_max: leaf Size,
        /// memory.oom.group: an OOM kill takes the whole instance. Default true.
        oom_group: leaf bool,
    }
}

section! {
    /// I/O limits.
    pub struct RawIo {
        /// io.max entries, one per block device.
        devices: list RawIoDevice,
        /// io.weight, 1..10000. Default 100.
        weight: leaf u64,
    }
}

section! {
    /// io.max for one block device.
    pub struct RawIoDevice {
        /// The block device, e.g. /dev/sda or /dev/nvme0n1. Required.
        device: leaf AbsPath,
        /// Bytes per second read (a size, e.g. 10M).
        read_bps: leaf Size,
        /// Bytes per second written.
        write_bps: leaf Size,
        /// Read operations per second, or max.
        read_iops: leaf MaxOr,
        /// Write operations per second, or max.
        write_iops: leaf MaxOr,
    }
}

section! {
    /// Process count limit.
    pub struct RawPids {
        /// pids.max: fork and clone fail with EAGAIN past it; max lifts an inherited limit.
        max: leaf MaxOr,
    }
}

section! {
    /// Process rlimits as soft:hard pairs (one number sets both).
    pub struct RawRlimits {
        /// RLIMIT_AS, bytes.
        r#as: leaf Rlimit,
        /// RLIMIT_CORE, bytes.
        core: leaf Rlimit,
        /// RLIMIT_CPU, seconds.
        cpu: leaf Rlimit,
        /// RLIMIT_DATA, bytes.
        data: leaf Rlimit,
        /// RLIMIT_FSIZE, bytes.
        fsize: leaf Rlimit,
        /// RLIMIT_LOCKS.
        locks: leaf Rlimit,
        /// RLIMIT_MEMLOCK, bytes.
        memlock: leaf Rlimit,
        /// RLIMIT_MSGQUEUE, bytes.
        msgqueue: leaf Rlimit,
        /// RLIMIT_NICE.
        nice: leaf Rlimit,
        /// RLIMIT_NOFILE, open files.
        nofile: leaf Rlimit,
        /// RLIMIT_NPROC, processes of the user.
        nproc: leaf Rlimit,
        /// RLIMIT_RSS (no effect on Linux).
        rss: leaf Rlimit,
        /// RLIMIT_RTPRIO.
        rtprio: leaf Rlimit,
        /// RLIMIT_RTTIME, microseconds.
        rttime: leaf Rlimit,
        /// RLIMIT_SIGPENDING.
        sigpending: leaf Rlimit,
        /// RLIMIT_STACK, bytes.
        stack: leaf Rlimit,
    }
}

section! {
    /// Privileges and syscall filtering.
    pub struct RawSecurity {
        /// Capabilities kept (bounding, and ambient for non-root). Default none.
        capabilities: list String,
        /// PR_SET_NO_NEW_PRIVS. Default true.
        no_new_privs: leaf bool,
        /// seccomp profile: default, strict, unconfined, or a path to an OCI/Docker JSON profile.
        seccomp: leaf String,
    }
}

section! {
    /// A health check: exactly one of http, tcp or exec.
    pub struct RawHealth {
        /// GET a URL path; 2xx and 3xx are healthy.
        http: section RawHttpProbe,
        /// Connect to a TCP port.
        tcp: section RawTcpProbe,
        /// Run a command inside the compartment; exit 0 is healthy.
        exec: list String,
        /// Time between probes. Default 10s.
        interval: leaf Dur,
        /// A probe slower than this fails. Default 2s.
        timeout: leaf Dur,
        /// Failures in a row before the instance is unhealthy. Default 3.
        failures: leaf u32,
        /// Failures during this time after start do not count. Default 0s.
        start_period: leaf Dur,
    }
}

section! {
    /// An HTTP probe.
    pub struct RawHttpProbe {
        /// Port number, or `auto` for the instance's BULKHEAD_PORT. Required.
        port: leaf ProbePort,
        /// URL path. Default /.
        path: leaf String,
        /// Host to connect to. Default 127.0.0.1.
        host: leaf String,
    }
}

section! {
    /// A TCP probe.
    pub struct RawTcpProbe {
        /// Port number, or `auto` for the instance's BULKHEAD_PORT. Required.
        port: leaf ProbePort,
        /// Host to connect to. Default 127.0.0.1.
        host: leaf String,
    }
}

section! {
    /// Violation rules. Defaults: oom restarts, pids_max warns, the rest are off.
    pub struct RawWatch {
        /// An OOM kill in the instance (memory.events oom_kill).
        oom: section RawRule,
        /// memory.pressure: tasks stalled more than threshold of the time over `for` (a PSI trigger).
        memory_pressure: section RawRule,
        /// cpu.pressure: tasks stalled more than threshold of the time over `for` (a PSI trigger).
        cpu_pressure: section RawRule,
        /// io.pressure: tasks stalled more than threshold of the time over `for` (a PSI trigger).
        io_pressure: section RawRule,
        /// Share of cpu.max periods throttled over `for` above threshold.
        cpu_throttled: section RawRule,
        /// A fork refused at pids.max (pids.events max).
        pids_max: section RawRule,
        /// Open fds above threshold of RLIMIT_NOFILE.
        fds: section RawRule,
    }
}

section! {
    /// One violation rule.
    pub struct RawRule {
        /// off, warn, throttle (memory_pressure only), restart or stop.
        action: leaf Action,
        /// Level that counts as a violation (percent).
        threshold: leaf Percent,
        /// How long the level must hold before the action runs. Default 0s for events, 10s for levels.
        r#for: leaf Dur,
        /// Pressure rules: some (any task stalled) or full (all stalled). Default some.
        stall: leaf Stall,
        /// throttle: lower memory.high by this share per step. Default 10%.
        step: leaf Percent,
    }
}

section! {
    /// What happens when an instance ends.
    pub struct RawRestart {
        /// always, on-failure or never. Default on-failure.
        policy: leaf RestartPolicy,
        /// Delay between restarts.
        backoff: section RawBackoff,
        /// Stop restarting after repeated failures, for a while.
        circuit_breaker: section RawBreaker,
    }
}

section! {
    /// Exponential backoff between restarts.
    pub struct RawBackoff {
        /// First delay. Default 100ms.
        initial: leaf Dur,
        /// Largest delay. Default 30s.
        max: leaf Dur,
        /// Growth per failure. Default 2.
        multiplier: leaf f64,
        /// Random spread applied to each delay. Default 10%.
        jitter: leaf Percent,
        /// Uptime after which the delay resets to initial. Default 60s.
        reset_after: leaf Dur,
    }
}

section! {
    /// The circuit breaker.
    pub struct RawBreaker {
        /// Failures within window that open the breaker. Default 5; 0 disables it.
        failures: leaf u32,
        /// The counting window. Default 60s.
        window: leaf Dur,
        /// Time open before one half-open try. Default 5m.
        cooldown: leaf Dur,
    }
}

section! {
    /// How the service is stopped.
    pub struct RawStop {
        /// Signal sent first (to the init, which forwards it). Default SIGTERM.
        signal: leaf Sig,
        /// Time allowed after the signal before cgroup.kill. Default 10s.
        grace: leaf Dur,
    }
}

section! {
    /// Log files of the service's stdout and stderr.
    pub struct RawLogs {
        /// Size at which a file is rotated. Default 10M.
        max_size: leaf Size,
        /// Rotated files kept. Default 5.
        keep: leaf u32,
    }
}

word_enum! {
    /// protect.system.
    pub enum ProtectSystem { Strict = "strict", Full = "full", Off = "off" }
}

word_enum! {
    /// protect.home.
    pub enum ProtectHome { Inaccessible = "inaccessible", ReadOnly = "read-only", Off = "off" }
}

word_enum! {
    /// protect.tmp.
    pub enum PrivateTmp { Private = "private", Off = "off" }
}

word_enum! {
    /// protect.devices.
    pub enum PrivateDevices { Private = "private", Host = "host" }
}

word_enum! {
    /// protect.proc.
    pub enum ProtectProc { Invisible = "invisible", Off = "off" }
}

word_enum! {
    /// protect.network.
    pub enum Network { Host = "host", Private = "private" }
}

word_enum! {
    /// How template instances are keyed.
    pub enum Isolation { None = "none", Namespace = "namespace", Session = "session" }
}

word_enum! {
    /// What a violation rule does.
    pub enum Action { Off = "off", Warn = "warn", Throttle = "throttle", Restart = "restart", Stop = "stop" }
}

word_enum! {
    /// Which PSI line a pressure rule reads.
    pub enum Stall { Some = "some", Full = "full" }
}

word_enum! {
    /// When an ended instance is started again.
    pub enum RestartPolicy { Always = "always", OnFailure = "on-failure", Never = "never" }
}

word_enum! {
    /// ioprio class.
    pub enum IoClass { Realtime = "realtime", BestEffort = "best-effort", Idle = "idle" }
}

/// `supervisor.cgroup_root`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum CgroupRoot {
    #[serde(serialize_with = "auto_word")]
    Auto,
    Path(std::path::PathBuf),
}

fn auto_word<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("auto")
}

impl Leaf for CgroupRoot {
    fn from_value(v: &super::node::Value) -> Result<Self, super::units::Bad> {
        if v.as_str() == Some("auto") {
            return Ok(CgroupRoot::Auto);
        }
        AbsPath::from_value(v).map(|p| CgroupRoot::Path(p.0)).map_err(|_| {
            super::units::Bad::new(
                format!("{} is neither auto nor an absolute path", super::shape::describe(v)),
                "write auto, or the absolute path of a cgroup directory such as /sys/fs/cgroup/bulkhead",
            )
        })
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({"type": "string", "description": "auto or an absolute path"})
    }
}
leaf_deserialize!(CgroupRoot);

/// `supervisor.metrics_listen`: an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Listen {
    #[serde(serialize_with = "off_word")]
    Off,
    Addr(std::net::SocketAddr),
}

fn off_word<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("off")
}

impl Leaf for Listen {
    fn from_value(v: &super::node::Value) -> Result<Self, super::units::Bad> {
        let text = super::units::scalar_text(v).unwrap_or_default();
        if text == "off" || text == "false" {
            return Ok(Listen::Off);
        }
        text.parse().map(Listen::Addr).map_err(|_| {
            super::units::Bad::new(
                format!("{} is not an address", super::shape::describe(v)),
                "write IP:PORT such as 127.0.0.1:9464 or [::1]:9464, or off",
            )
        })
    }
    fn json_schema() -> serde_json::Value {
        // `false` is read as the word off.
        serde_json::json!({"anyOf": [{"type": "string"}, {"const": false}], "description": "IP:PORT or off"})
    }
}
leaf_deserialize!(Listen);

/// A probe's port: a number, or `auto` for the instance's allocated port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum ProbePort {
    #[serde(serialize_with = "auto_word")]
    Auto,
    Number(u16),
}

impl Leaf for ProbePort {
    fn from_value(v: &super::node::Value) -> Result<Self, super::units::Bad> {
        if v.as_str() == Some("auto") {
            return Ok(ProbePort::Auto);
        }
        match u16::from_value(v) {
            Ok(p) if p > 0 => Ok(ProbePort::Number(p)),
            _ => Err(super::units::Bad::new(
                format!("{} is not a port", super::shape::describe(v)),
                "write a port number from 1 to 65535, or auto for the instance's BULKHEAD_PORT",
            )),
        }
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({"anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 65535},
            {"const": "auto"},
        ], "description": "1..65535 or auto"})
    }
}
leaf_deserialize!(ProbePort);

/// A count, or `max` for no limit (`pids.max`, iops). `max` is a value of
/// its own, so a service can lift a limit it inherits from `defaults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct MaxOr(pub Option<u64>);

impl Leaf for MaxOr {
    fn from_value(v: &super::node::Value) -> Result<Self, super::units::Bad> {
        if v.as_str() == Some("max") {
            return Ok(MaxOr(None));
        }
        u64::from_value(v).map(|n| MaxOr(Some(n))).map_err(|_| {
            super::units::Bad::new(
                format!("{} is not a count", super::shape::describe(v)),
                "write a whole number, or max for no limit",
            )
        })
    }
    fn json_schema() -> serde_json::Value {
        serde_json::json!({"anyOf": [
            {"type": "integer", "minimum": 0, "maximum": u64::MAX},
            {"const": "max"},
        ], "description": "a whole number or max"})
    }
}
leaf_deserialize!(MaxOr);
