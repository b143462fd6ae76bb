//! What the parent hands to the init (serialized over a pipe), and how a
//! failed setup step comes back: a fixed 8-byte record (step, errno) over a
//! CLOEXEC pipe, so the parent can say which step failed and why, and a
//! successful exec of the service closes the pipe with nothing written.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the init and the service need, resolved by the parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InitSpec {
    /// Absolute program path and argv (argv[0] included).
    pub program: PathBuf,
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries, the whole environment.
    pub env: Vec<String>,
    pub working_dir: PathBuf,
    /// Numeric credentials; `None` keeps root.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    /// (RLIMIT_* resource number, soft, hard); `u64::MAX` is infinity.
    pub rlimits: Vec<(i32, u64, u64)>,
    pub nice: Option<i32>,
    pub oom_score_adj: Option<i32>,
    /// (class, level) for ioprio_set.
    pub io_priority: Option<(u32, u32)>,
    /// Capability numbers the service keeps (bounding, permitted, effective,
    /// inheritable, and ambient when it runs as non-root).
    pub capabilities: Vec<u8>,
    pub no_new_privs: bool,
    /// A compiled BPF program: (code, jt, jf, k) per instruction; empty = none.
    pub seccomp: Vec<(u16, u8, u8, u32)>,
    /// The init's own filter, installed once it has forked the service and
    /// dropped its privileges (`seccomp::own`); empty = none.
    #[serde(default)]
    pub init_seccomp: Vec<(u16, u8, u8, u32)>,
    /// Mount the new PID namespace's /proc (when the PID and mount
    /// namespaces are new).
    pub mount_proc: bool,
    /// The init makes the new mount namespace itself (`unshare`), after it
    /// has opened its status and log files: files open for writing on a
    /// mount of the new namespace would make it impossible to turn that
    /// mount read-only (EBUSY). Set by the spawn, not by the plan.
    #[serde(default)]
    pub unshare_mount: bool,
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    pub tmpfs: Vec<PathBuf>,
    pub inaccessible: Vec<PathBuf>,
    pub hostname: Option<String>,
    /// The service has a network namespace of its own: bring its loopback
    /// up (a new namespace's `lo` is down, so even 127.0.0.1 is unreachable).
    #[serde(default)]
    pub loopback: bool,
    /// Where the init records how the service ended (opened before mounts).
    pub status_file: Option<PathBuf>,
    /// Where the service's stdout and stderr go. `None` passes the init's own
    /// stdio through (`bulkhead exec`); a file is size-rotated by the init.
    pub log: Option<LogSpec>,
    /// A supervised service: the init starts a new session, so signals
    /// meant for the daemon's terminal or process group never reach it.
    #[serde(default)]
    pub detach: bool,
    /// The walls the init builds in the mount namespace, in the order
    /// `walls::plan` gives (docs/ARCHITECTURE.md decision 14).
    #[serde(default)]
    pub walls: Walls,
}

/// How much of the host's tree is read-only (`protect.system`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum SystemView {
    #[default]
    Off,
    /// /usr, /boot and /etc.
    Full,
    /// Everything but the service's own directories and `read_write`.
    Strict,
}

/// What /home, /root and /run/user look like (`protect.home`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum HomeView {
    #[default]
    Off,
    ReadOnly,
    Inaccessible,
}

/// The mount walls of one compartment, resolved by the parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Walls {
    pub system: SystemView,
    pub home: HomeView,
    pub private_tmp: bool,
    /// A minimal /dev: these host device nodes (paths) bound into a fresh tmpfs.
    pub private_dev: Option<Vec<PathBuf>>,
    /// Kernel knobs read-only, OCI's masked paths masked.
    pub kernel: bool,
    /// A read-only cgroup2 mount of the instance's own cgroup namespace.
    pub cgroup: bool,
    /// /proc with hidepid=invisible.
    pub hidepid: bool,
    /// Writable under a read-only system: the service's own directories.
    pub writable: Vec<PathBuf>,
    /// bulkhead's own directories (state, socket, logs, config).
    pub hidden: Vec<PathBuf>,
}

/// A size-rotated log file the init writes the service's output to:
/// `path`, then `path.1` .. `path.<keep>` (oldest), as logrotate names them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogSpec {
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes (at least 4 KiB).
    pub max_size: u64,
    /// Rotated files kept; 0 truncates in place.
    pub keep: u32,
}

pub use crate::sys::step::{Step, decode_failure, encode_failure};

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Pdeathsig => "pdeathsig",
            Step::JoinCgroup => "join-cgroup",
            Step::ExecInit => "exec-init",
            Step::ReadSpec => "read-spec",
            Step::StatusFile => "status-file",
            Step::LogFile => "log-file",
            Step::MountPrivate => "mount-private",
            Step::MountProc => "mount-proc",
            Step::MountReadOnly => "mount-read-only",
            Step::MountReadWrite => "mount-read-write",
            Step::MountTmpfs => "mount-tmpfs",
            Step::MountInaccessible => "mount-inaccessible",
            Step::Hostname => "hostname",
            Step::Fork => "fork",
            Step::Signals => "signals",
            Step::Stdio => "stdio",
            Step::Rlimit => "rlimit",
            Step::Nice => "nice",
            Step::OomScoreAdj => "oom-score-adj",
            Step::IoPriority => "io-priority",
            Step::Chdir => "chdir",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::CapBounding => "cap-bounding",
            Step::KeepCaps => "keep-caps",
            Step::Setuid => "setuid",
            Step::Capabilities => "capabilities",
            Step::AmbientCaps => "ambient-caps",
            Step::NoNewPrivs => "no-new-privs",
            Step::CloseFds => "close-fds",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
            Step::EnterNet => "enter-net",
            Step::EnterIpc => "enter-ipc",
            Step::EnterUts => "enter-uts",
            Step::EnterMount => "enter-mount",
            Step::Setsid => "setsid",
            Step::Loopback => "loopback",
            Step::ProtectSystem => "protect.system",
            Step::ProtectHome => "protect.home",
            Step::ProtectTmp => "protect.tmp",
            Step::ProtectDevices => "protect.devices",
            Step::ProtectKernel => "protect.kernel",
            Step::ProtectCgroups => "protect.cgroups",
            Step::ProtectProc => "protect.proc",
            Step::HideBulkhead => "hide-bulkhead-dirs",
            Step::DropInit => "drop-init-privileges",
            Step::ServiceDirs => "directories",
        }
    }

    /// What a person can do when this step fails with `errno`.
    pub fn suggestion(self, errno: i32) -> &'static str {
        match (self, errno) {
            (Step::Exec, libc::ENOENT) => {
                "the command does not exist inside the compartment: check the path and the mounts"
            }
            (Step::Exec, libc::EACCES) => {
                "the command is not executable by the service's user, or its filesystem is mounted noexec"
            }
            (Step::Exec, libc::EPERM) => {
                "the exec was refused, possibly by the seccomp profile: try `seccomp: unconfined` to find out"
            }
            (Step::Chdir, _) => {
                "working_dir must exist inside the compartment and be reachable by the service's user"
            }
            (Step::Setuid | Step::Setgid | Step::Setgroups, _) => {
                "bulkhead must run as root to change to another user"
            }
            (
                Step::MountReadOnly | Step::MountReadWrite | Step::MountInaccessible,
                libc::ENOENT,
            ) => "a path in mounts does not exist on this host",
            (
                Step::MountReadOnly
                | Step::MountReadWrite
                | Step::MountTmpfs
                | Step::MountInaccessible
                | Step::MountProc
                | Step::MountPrivate,
                _,
            ) => "mount changes need a new mount namespace and root (CAP_SYS_ADMIN)",
            (Step::ProtectSystem, libc::ENOENT) => {
                "a directory of the service (directories, mounts.read_write) is missing: create it, or check the path"
            }
            (Step::ProtectSystem, _) => {
                "the read-only host view needs Linux 5.12 (mount_setattr); `protect: { system: off }` turns it off"
            }
            (Step::ProtectHome, _) => {
                "hiding /home, /root and /run/user failed; `protect: { home: read-only }` or `off` relaxes it"
            }
            (Step::ProtectTmp, _) => {
                "the private /tmp could not be mounted; `protect: { tmp: off }` shares the host's"
            }
            (Step::ProtectDevices, _) => {
                "the private /dev could not be built (a device in protect.device_allow missing?); `protect: { devices: host }` relaxes it"
            }
            (Step::ProtectKernel, _) => {
                "making kernel knobs read-only failed; `protect: { kernel: false }` relaxes it"
            }
            (Step::ProtectCgroups, _) => {
                "the read-only cgroup2 mount failed (a cgroup namespace needs Linux 4.6); `protect: { cgroups: false }` relaxes it"
            }
            (Step::ProtectProc, _) => {
                "/proc with hidepid=invisible needs Linux 5.8; `protect: { proc: off }` relaxes it"
            }
            (Step::HideBulkhead, _) => {
                "bulkhead's own directories (state_dir, log_dir, the socket's and config's) could not be hidden"
            }
            (Step::DropInit, _) => "the init could not drop its own privileges: this is a bug",
            (Step::ServiceDirs, _) => {
                "the service's directories could not be created or given to its user: check /var/lib, /run, /var/cache, /var/log"
            }
            (Step::Seccomp, libc::EACCES) => {
                "a seccomp filter needs no_new_privs or CAP_SYS_ADMIN: keep `no_new_privs: true`"
            }
            (Step::Seccomp, _) => {
                "the kernel refused the seccomp program: check the profile with `bulkhead seccomp check`"
            }
            (Step::Rlimit, libc::EPERM) => {
                "raising a hard rlimit above the daemon's own needs CAP_SYS_RESOURCE"
            }
            (Step::CapBounding | Step::Capabilities | Step::AmbientCaps | Step::KeepCaps, _) => {
                "bulkhead needs CAP_SETPCAP to drop capabilities: run it as root"
            }
            (Step::JoinCgroup, _) => {
                "the parent could not move the child into its cgroup: is the cgroup still there, and pids.max not reached?"
            }
            (Step::LogFile | Step::StatusFile, _) => {
                "the state and log directories must be writable by root: check supervisor.state_dir and log_dir"
            }
            (Step::Fork, libc::EAGAIN) => {
                "pids.max leaves no room for the init and the service: raise it"
            }
            (Step::ExecInit | Step::ReadSpec, _) => {
                "the bulkhead binary could not start its init: is /proc mounted and the binary still in place?"
            }
            (Step::EnterNet | Step::EnterIpc | Step::EnterUts | Step::EnterMount, _) => {
                "entering a running instance needs root (CAP_SYS_ADMIN) and the instance still running"
            }
            _ => "see the errno; `bulkhead check` lists what the host allows",
        }
    }
}

pub use crate::exit::ExitRecord;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_round_trip() {
        for s in Step::ALL {
            assert_eq!(
                decode_failure(&encode_failure(s, libc::EPERM)),
                Some((s, libc::EPERM))
            );
            assert!(!s.suggestion(libc::EPERM).is_empty());
        }
        assert_eq!(decode_failure(&[1, 2, 3]), None);
        assert_eq!(
            decode_failure(&encode_failure(Step::Exec, 2)[..]).map(|f| f.0.name()),
            Some("exec")
        );
        // Step numbers are distinct.
        let mut nums: Vec<u32> = Step::ALL.iter().map(|s| *s as u32).collect();
        nums.dedup();
        assert_eq!(nums.len(), Step::ALL.len());
    }

    #[test]
    fn spec_round_trips_as_json() {
        let s = InitSpec {
            program: "/bin/true".into(),
            argv: vec!["true".into()],
            seccomp: vec![(6, 0, 0, 0x7fff0000)],
            ..Default::default()
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<InitSpec>(&j).unwrap(), s);
    }
}
