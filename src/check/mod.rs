//! `bulkhead check`: everything bulkhead needs from the host, each finding
//! ok / warn / fail with a fix-it hint. The probes read files under injected
//! roots (`/proc`, the cgroup2 mount) so the verdict logic is testable; the
//! clone3 and pidfd probes are real syscalls (in `sandbox::probe`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cgroup::{self, REQUIRED_CONTROLLERS, discover};
use crate::sandbox::probe;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            hint: None,
        }
    }
    fn warn(check: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
    fn fail(check: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
}

/// Where to look. Production uses [`Roots::host`].
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: PathBuf,
    /// Overrides the cgroup2 mount found in mountinfo (tests, or
    /// `supervisor.cgroup_root`'s hierarchy).
    pub cgroup_mount: Option<PathBuf>,
    /// `supervisor.cgroup_root` when it is a path.
    pub configured_root: Option<PathBuf>,
}

impl Roots {
    pub fn host() -> Self {
        Roots {
            proc: PathBuf::from("/proc"),
            cgroup_mount: None,
            configured_root: None,
        }
    }
}

const UNIFIED_HINT: &str = "boot with cgroup v2 only: add `systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all` to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)";

/// Runs every check, in the order a person would fix them.
pub fn run(roots: &Roots) -> Vec<Finding> {
    let mut out = vec![kernel(roots)];
    let mountinfo = std::fs::read_to_string(roots.proc.join("self/mountinfo")).unwrap_or_default();
    let mount = roots
        .cgroup_mount
        .clone()
        .or_else(|| discover::cgroup2_mount(&mountinfo));
    let Some(mount) = mount else {
        out.push(Finding::fail(
            "cgroup2",
            "no cgroup2 filesystem is mounted",
            format!("mount it (`mount -t cgroup2 none /sys/fs/cgroup`) or {UNIFIED_HINT}"),
        ));
        out.extend(process_checks(roots));
        return out;
    };
    let hybrid = discover::has_cgroup_v1(&mountinfo);
    out.push(if hybrid {
        Finding::warn(
            "cgroup2",
            format!(
                "mounted at {} beside cgroup v1 hierarchies (hybrid mode)",
                mount.display()
            ),
            format!("v1 hierarchies hold controllers v2 needs; {UNIFIED_HINT}"),
        )
    } else {
        Finding::ok("cgroup2", format!("mounted at {}", mount.display()))
    });

    let own = std::fs::read_to_string(roots.proc.join("self/cgroup"))
        .ok()
        .and_then(|t| discover::own_cgroup(&t));
    let delegated = own
        .as_deref()
        .is_some_and(|o| is_delegated(&discover::cgroup_dir(&mount, o)));
    let root = discover::choose_root(
        &mount,
        roots.configured_root.as_deref(),
        own.as_deref(),
        delegated,
    );
    out.push(controllers_finding(&mount, &root));
    out.push(subtree_finding(&root, own.as_deref(), delegated));
    out.push(psi(roots, &mount));
    out.extend(spawn_probe(&root));
    out.extend(process_checks(roots));
    out
}

fn kernel(roots: &Roots) -> Finding {
    let release =
        std::fs::read_to_string(roots.proc.join("sys/kernel/osrelease")).unwrap_or_default();
    let release = release.trim();
    match kernel_version(release) {
        Some(v) if v >= (5, 14) => Finding::ok("kernel", format!("Linux {release}")),
        Some(_) => Finding::fail(
            "kernel",
            format!("Linux {release} is older than 5.14"),
            "bulkhead needs 5.14 or later (cgroup.kill, clone3 into a cgroup, pidfd); Debian 12 ships 6.1",
        ),
        None => Finding::warn(
            "kernel",
            format!("cannot read the kernel version ({release:?})"),
            "check that /proc is mounted",
        ),
    }
}

/// `6.18.44-fc-v782` -> (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Verdict on the controllers: the mount's root offers them and, for a
/// subtree elsewhere, the parent of bulkhead's root does too.
pub fn controllers_verdict(offered: &[String], where_: &Path) -> Finding {
    let missing: Vec<&str> = REQUIRED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !offered.iter().any(|o| o == c))
        .collect();
    let has_cpuset = offered.iter().any(|o| o == "cpuset");
    if !missing.is_empty() {
        return Finding::fail(
            "controllers",
            format!(
                "missing {} in {} (offered: {})",
                missing.join(", "),
                where_.display(),
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(" ")
                }
            ),
            format!("without them no memory, cpu, io or pids limit can be set; {UNIFIED_HINT}"),
        );
    }
    if !has_cpuset {
        return Finding::warn(
            "controllers",
            format!("{} offered; cpuset is not", REQUIRED_CONTROLLERS.join(", ")),
            "services with resources.cpu.cpuset cannot start until cpuset is available",
        );
    }
    Finding::ok(
        "controllers",
        format!(
            "{} and cpuset offered in {}",
            REQUIRED_CONTROLLERS.join(", "),
            where_.display()
        ),
    )
}

fn controllers_finding(mount: &Path, root: &Path) -> Finding {
    // What bulkhead can get is what the root's parent offers: bulkhead
    // enables controllers in the parent's subtree_control itself (so the
    // root's own list only says what an earlier run happened to enable). A
    // delegated root is the exception: its parent belongs to systemd.
    let from = if is_delegated(root) {
        root
    } else {
        root.parent()
            .filter(|p| p.starts_with(mount))
            .unwrap_or(mount)
    };
    let dir = from
        .ancestors()
        .find(|d| d.join("cgroup.controllers").exists())
        .unwrap_or(mount);
    match cgroup::controllers(dir) {
        Ok(offered) => controllers_verdict(&offered, dir),
        Err(e) => Finding::fail(
            "controllers",
            e.to_string(),
            "check that the cgroup2 filesystem is mounted and readable",
        ),
    }
}

/// systemd (252+) marks a delegated cgroup with the `trusted.delegate` xattr.
pub fn is_delegated(dir: &Path) -> bool {
    let mut buf = [0u8; 8];
    ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|name| rustix::fs::getxattr(dir, *name, &mut buf[..]).is_ok())
}

fn subtree_finding(root: &Path, own: Option<&str>, delegated: bool) -> Finding {
    let how = if delegated {
        format!("the daemon's own delegated cgroup {}", own.unwrap_or("?"))
    } else {
        "not delegated by systemd".to_string()
    };
    // Creating a throwaway child proves write access without touching the
    // subtree a running daemon may own.
    let parent = root.ancestors().find(|d| d.exists()).unwrap_or(root);
    remove_stale_probes(parent, Path::new("/proc"));
    let probe_dir = parent.join(probe_name("check", std::process::id()));
    match cgroup::create(&probe_dir) {
        Ok(()) => {
            let _ = cgroup::remove(&probe_dir);
            Finding::ok(
                "subtree",
                format!(
                    "can create cgroups under {} (root {}; {how})",
                    parent.display(),
                    root.display()
                ),
            )
        }
        Err(e) => {
            let mut f = Finding::fail(
                "subtree",
                format!("cannot create a cgroup under {}", parent.display()),
                e.diagnostic().suggestion.unwrap_or_default(),
            );
            f.detail += &format!(": {}", e.io());
            f
        }
    }
}

fn psi(roots: &Roots, mount: &Path) -> Finding {
    let system = roots.proc.join("pressure/memory");
    if std::fs::read_to_string(&system).is_err() {
        return Finding::fail(
            "psi",
            format!("{} is not readable", system.display()),
            "boot with `psi=1` (CONFIG_PSI is on in Debian kernels but may be disabled by default elsewhere)",
        );
    }
    if !mount.join("cpu.pressure").exists() && !mount.join("memory.pressure").exists() {
        return Finding::warn(
            "psi",
            "system PSI works, per-cgroup pressure files are missing",
            "a kernel with CONFIG_PSI and cgroup2 exposes *.pressure in every cgroup",
        );
    }
    if has_cap(caps::Capability::CAP_SYS_RESOURCE) {
        Finding::ok("psi", "pressure files and triggers available")
    } else {
        Finding::warn(
            "psi",
            "pressure files available; without CAP_SYS_RESOURCE trigger windows must be multiples of 2s",
            "run the daemon as root with full capabilities for 1s windows",
        )
    }
}

/// `bulkhead-check-<pid>`, `bulkhead-clone-<pid>`: a probe's throwaway
/// cgroup, named by the process that made it.
fn probe_name(kind: &str, pid: u32) -> String {
    format!("bulkhead-{kind}-{pid}")
}

/// The pid of a probe cgroup's maker, if `name` is one.
fn probe_owner(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("bulkhead-check-")
        .or_else(|| name.strip_prefix("bulkhead-clone-"))?;
    rest.parse().ok().filter(|p: &u32| p.to_string() == rest)
}

/// Probe cgroups under `parent` whose maker is gone (a check or a daemon
/// killed during its preflight). `proc` is `/proc`.
fn stale_probes(parent: &Path, proc: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            name.to_str()
                .and_then(probe_owner)
                .is_some_and(|pid| !proc.join(pid.to_string()).exists())
        })
        .map(|e| e.path())
        .collect()
}

/// Removes [`stale_probes`]: left, they would keep bulkhead's root from
/// being removed at shutdown.
fn remove_stale_probes(parent: &Path, proc: &Path) {
    for dir in stale_probes(parent, proc) {
        let _ = cgroup::kill::remove_tree(&dir, std::time::Duration::from_secs(2));
    }
}

fn spawn_probe(root: &Path) -> Vec<Finding> {
    let parent = root.ancestors().find(|d| d.exists()).unwrap_or(root);
    let dir = parent.join(probe_name("clone", std::process::id()));
    if cgroup::create(&dir).is_err() {
        return vec![Finding::fail(
            "clone3",
            "no cgroup to probe clone3 into (see subtree)",
            "fix the subtree check first",
        )];
    }
    let result = probe::clone3_into_cgroup(&dir);
    let _ = cgroup::remove(&dir);
    let clone = match result {
        Ok(()) => Finding::ok(
            "clone3",
            "clone3 with CLONE_INTO_CGROUP, CLONE_PIDFD and new PID and mount namespaces works",
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Finding::fail(
            "clone3",
            "clone3 is not available",
            "bulkhead needs Linux 5.7+ with clone3",
        ),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Finding::fail(
            "clone3",
            format!("clone3 into a new PID namespace refused: {e}"),
            "run as root (CAP_SYS_ADMIN), outside a restrictive seccomp or user namespace policy",
        ),
        Err(e) => Finding::fail(
            "clone3",
            format!("clone3 into {} failed: {e}", parent.display()),
            "check `cgroup.type` of the parent and the subtree line above",
        ),
    };
    let pidfd = match probe::pidfd_open_self() {
        Ok(()) => Finding::ok("pidfd", "pidfd_open works"),
        Err(e) => Finding::fail(
            "pidfd",
            format!("pidfd_open failed: {e}"),
            "bulkhead needs Linux 5.3+ for race-free process handles",
        ),
    };
    vec![clone, pidfd]
}

fn process_checks(roots: &Roots) -> Vec<Finding> {
    let actions = std::fs::read_to_string(roots.proc.join("sys/kernel/seccomp/actions_avail"))
        .unwrap_or_default();
    let seccomp = if ["kill_process", "errno", "allow"]
        .iter()
        .all(|a| actions.split_whitespace().any(|x| x == *a))
    {
        Finding::ok("seccomp", format!("filter actions: {}", actions.trim()))
    } else {
        Finding::fail(
            "seccomp",
            "seccomp filters are not available",
            "use a kernel built with CONFIG_SECCOMP_FILTER (every distribution kernel is)",
        )
    };
    vec![seccomp, capabilities()]
}

fn has_cap(c: caps::Capability) -> bool {
    caps::has_cap(None, caps::CapSet::Effective, c).unwrap_or(false)
}

fn capabilities() -> Finding {
    use caps::Capability::*;
    let need = [
        CAP_SYS_ADMIN,
        CAP_SETUID,
        CAP_SETGID,
        CAP_KILL,
        CAP_SETPCAP,
        CAP_DAC_OVERRIDE,
    ];
    let missing: Vec<String> = need
        .iter()
        .filter(|c| !has_cap(**c))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        let extra = if has_cap(CAP_SYS_RESOURCE) {
            ""
        } else {
            " (no CAP_SYS_RESOURCE: rlimits cannot be raised above the daemon's own)"
        };
        if extra.is_empty() {
            Finding::ok("capabilities", "holds the capabilities a supervisor needs")
        } else {
            Finding::warn(
                "capabilities",
                format!("holds what a supervisor needs{extra}"),
                "run as root with a full capability set (systemd does by default)",
            )
        }
    } else {
        Finding::fail(
            "capabilities",
            format!("missing {}", missing.join(", ")),
            "run bulkhead as root (sudo, or the systemd unit in config/bulkhead.service)",
        )
    }
}

/// The report as the CLI prints it.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let tag = match f.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out += &format!("{tag}  {:<13} {}\n", f.check, f.detail);
        if let Some(h) = &f.hint {
            out += &format!("      {:<13} fix: {h}\n", "");
        }
    }
    let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warns = findings.iter().filter(|f| f.status == Status::Warn).count();
    out += &match (fails, warns) {
        (0, 0) => "all checks passed\n".to_string(),
        (0, w) => format!("ready, with {w} warning{}\n", if w == 1 { "" } else { "s" }),
        (f, _) => format!(
            "{f} check{} failed: bulkhead cannot supervise services on this host\n",
            if f == 1 { "" } else { "s" }
        ),
    };
    out
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    #[test]
    fn stale_probes_are_those_whose_maker_is_gone() {
        let parent = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc.path().join("42")).unwrap();
        for d in [
            "bulkhead-clone-7",
            "bulkhead-check-8",
            "bulkhead-clone-42",
            "bulkhead-clone-007",
            "bulkhead-clone-x",
            "web",
            "supervisor",
        ] {
            std::fs::create_dir(parent.path().join(d)).unwrap();
        }
        let mut stale: Vec<String> = stale_probes(parent.path(), proc.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        stale.sort();
        assert_eq!(stale, ["bulkhead-check-8", "bulkhead-clone-7"]);
        assert_eq!(probe_owner(&probe_name("clone", 99)), Some(99));
        assert_eq!(probe_owner(&probe_name("check", 1)), Some(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hybrid_host_fails_controllers_with_a_hint() {
        let f = controllers_verdict(&names(&["hugetlb"]), Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.detail.contains("missing cpu, memory, io, pids"),
            "{}",
            f.detail
        );
        assert!(
            f.hint
                .unwrap()
                .contains("systemd.unified_cgroup_hierarchy=1")
        );
    }

    #[test]
    fn full_set_is_ok_and_cpuset_optional() {
        let all = names(&["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]);
        assert_eq!(
            controllers_verdict(&all, Path::new("/x")).status,
            Status::Ok
        );
        let no_cpuset = names(&["cpu", "io", "memory", "pids"]);
        assert_eq!(
            controllers_verdict(&no_cpuset, Path::new("/x")).status,
            Status::Warn
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(kernel_version("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(kernel_version(""), None);
    }

    #[test]
    fn missing_cgroup2_fails() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("self")).unwrap();
        std::fs::write(tmp.path().join("self/mountinfo"), "").unwrap();
        let roots = Roots {
            proc: tmp.path().to_path_buf(),
            cgroup_mount: None,
            configured_root: None,
        };
        let findings = run(&roots);
        let cg = findings.iter().find(|f| f.check == "cgroup2").unwrap();
        assert_eq!(cg.status, Status::Fail);
        assert!(render(&findings).contains("cannot supervise"));
    }
}
