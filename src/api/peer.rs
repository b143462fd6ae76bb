//! Where the process at the other end of the control socket runs, so that
//! no compartment reaches the control plane (docs/ARCHITECTURE.md decision 16).
//!
//! A service running as uid 0 passes the socket's uid check; what tells it
//! apart from the admin's shell is its cgroup. The control server refuses
//! every peer whose cgroup lies inside one of bulkhead's subtrees: the
//! daemon's root R (services, groups, `R/exec/<pid>` of `bulkhead exec`)
//! and, when the daemon's R was delegated elsewhere, the root `bulkhead
//! exec` uses. One cgroup in R is not a compartment: `R/supervisor`, where
//! the daemon itself runs (decision 6). Nothing there runs service code
//! (a spawned child is born in its instance's cgroup, or, on the fork
//! fallback, is moved there before it execs), and a daemon handing over to
//! a new binary (`bulkhead reexec`) connects from there; so that cgroup
//! exactly, not below it, is let through.
//!
//! ```text
//! 0::/bulkhead/web/0              R=/bulkhead  -> Compartment (refused)
//! 0::/bulkhead/exec/4242          R=/bulkhead  -> Compartment (refused)
//! 0::/bulkhead/supervisor         R=/bulkhead  -> Supervisor  (served)
//! 0::/bulkhead-other/x            R=/bulkhead  -> Outside     (served)
//! 0::/user.slice/session-3.scope  R=/bulkhead  -> Outside     (served)
//! (no 0:: line, "..", unreadable)              -> Unknown     (refused)
//! ```
//!
//! The peer's pid comes from `SO_PEERCRED` (the kernel's, not the peer's
//! word). [`place_peer`] opens a pidfd on it, reads `/proc/<pid>/cgroup`,
//! and then checks that the pidfd's process has not exited: while it lives
//! its pid cannot name anyone else, so the file read was its own. Anything
//! that fails makes the peer [`Place::Unknown`], which is refused.
//!
//! What is left: a peer that exits between its `connect` and the
//! `pidfd_open`, its pid reused at once by a process outside the subtree,
//! would be judged by that process. Reusing a pid means cycling through
//! `pid_max` from inside a compartment held by `pids.max`; `SO_PEERPIDFD`
//! (Linux 6.5) would close it, and needs nix's `socket` feature.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// The name of the daemon's own cgroup under R (decision 6).
const SUPERVISOR: &str = "supervisor";

/// The most `/proc/<pid>/cgroup` is read: one line per hierarchy, each a
/// path; more than this is not a file the kernel writes.
const CGROUP_FILE_CAP: u64 = 64 * 1024;

/// What the control server refuses, and where it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compartments {
    /// The procfs of the daemon's PID namespace (`/proc`).
    pub proc_root: PathBuf,
    /// Cgroup paths relative to the cgroup2 mount, as `/proc/<pid>/cgroup`
    /// writes them (`/bulkhead`, `/system.slice/bulkhead.service`): a peer
    /// at or below any of them is refused.
    pub subtrees: Vec<String>,
    /// The daemon's own cgroup (`R/supervisor`), served though inside R.
    pub supervisor: Option<String>,
}

impl Compartments {
    /// No subtree: every peer is [`Place::Outside`], and `/proc` is not
    /// read. For tests of the server that are not about this check; the
    /// daemon always passes its subtree ([`Compartments::of_daemon`]).
    pub fn none() -> Compartments {
        Compartments {
            proc_root: PathBuf::from("/proc"),
            subtrees: Vec::new(),
            supervisor: None,
        }
    }

    /// The daemon's: its root `root` (R, whose `R/supervisor` is served)
    /// and `others` (the root `bulkhead exec` uses, when it differs), all
    /// directories under the cgroup2 `mount`. `None` when one of them is
    /// not under the mount, which the subtree's setup already refuses.
    pub fn of_daemon(
        proc_root: &Path,
        mount: &Path,
        root: &Path,
        others: &[PathBuf],
    ) -> Option<Compartments> {
        let rel = |dir: &Path| -> Option<String> {
            let r = dir.strip_prefix(mount).ok()?.to_str()?;
            Some(format!("/{}", r.trim_matches('/')))
        };
        let r = rel(root)?;
        let mut subtrees = vec![r.clone()];
        for o in others {
            let o = rel(o)?;
            if !subtrees.contains(&o) {
                subtrees.push(o);
            }
        }
        Some(Compartments {
            proc_root: proc_root.to_path_buf(),
            supervisor: Some(format!("{}/{SUPERVISOR}", r.trim_end_matches('/'))),
            subtrees,
        })
    }
}

/// Where a peer runs, as far as the control socket is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Outside every subtree: served (when its uid is).
    Outside,
    /// The daemon's own `R/supervisor`: served (when its uid is).
    Supervisor,
    /// Inside a subtree: refused whatever its uid. The peer's cgroup.
    Compartment(String),
    /// Cannot be told: refused. Why.
    Unknown(String),
}

impl Place {
    /// Whether the control socket may serve a peer placed here.
    pub fn served(&self) -> bool {
        matches!(self, Place::Outside | Place::Supervisor)
    }
}

/// The cgroup v2 path of a `/proc/<pid>/cgroup` text: the one `0::` line
/// (cgroup v1 lines of a hybrid host, `N:controllers:/path`, are not it),
/// its ` (deleted)` suffix (a removed cgroup) taken off. `None` when there
/// is no such line, more than one, or the path is not absolute.
pub fn v2_path(proc_cgroup_text: &str) -> Option<(&str, bool)> {
    let mut lines = proc_cgroup_text
        .lines()
        .filter_map(|l| l.strip_prefix("0::"));
    let path = lines.next()?;
    if lines.next().is_some() || !path.starts_with('/') {
        return None;
    }
    Some(match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    })
}

/// The components of a cgroup path (`/a/b/` -> `[a, b]`); `None` when one
/// is `.` or `..` (a peer outside the reader's cgroup namespace shows as
/// `/../x`: not a path that can be compared).
fn components(path: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return None;
    }
    Some(parts)
}

/// Whether `path` is `subtree` or below it, compared by components, so
/// `/bh-other` is not below `/bh` and `/bh/` is `/bh`.
fn within(path: &[&str], subtree: &[&str]) -> bool {
    path.len() >= subtree.len() && path[..subtree.len()] == *subtree
}

/// Whether the process whose `/proc/<pid>/cgroup` is `proc_cgroup_text`
/// lies inside `subtree_rel` (a cgroup path relative to the cgroup2 mount,
/// `/bulkhead`). Fails closed: a text or a subtree that cannot be read as
/// a cgroup path is inside.
pub fn inside_subtree(proc_cgroup_text: &str, subtree_rel: &str) -> bool {
    let Some((path, _)) = v2_path(proc_cgroup_text) else {
        return true;
    };
    match (components(path), components(subtree_rel)) {
        (Some(p), Some(s)) => within(&p, &s),
        _ => true,
    }
}

/// Where the process whose `/proc/<pid>/cgroup` is `proc_cgroup_text`
/// runs, against `c`'s subtrees (pure).
pub fn place(proc_cgroup_text: &str, c: &Compartments) -> Place {
    let Some((path, deleted)) = v2_path(proc_cgroup_text) else {
        return Place::Unknown("its cgroup file has no single cgroup v2 (0::/...) line".into());
    };
    let Some(parts) = components(path) else {
        return Place::Unknown(format!(
            "its cgroup {path} is outside the daemon's cgroup namespace"
        ));
    };
    // Only the live R/supervisor exactly: a removed cgroup is no daemon's.
    if !deleted
        && c.supervisor
            .as_deref()
            .and_then(components)
            .is_some_and(|s| s == parts)
    {
        return Place::Supervisor;
    }
    for s in &c.subtrees {
        match components(s) {
            Some(s) if !within(&parts, &s) => {}
            _ => return Place::Compartment(path.to_string()),
        }
    }
    Place::Outside
}

/// Where the peer with process id `pid` (from `SO_PEERCRED`) runs, read
/// through a pidfd so that the answer is the peer's (see the module docs).
/// Blocking: reads procfs.
pub fn place_peer(c: &Compartments, pid: Option<i32>) -> Place {
    if c.subtrees.is_empty() {
        return Place::Outside;
    }
    match read_peer_cgroup(&c.proc_root, pid) {
        Ok(text) => place(&text, c),
        Err(why) => Place::Unknown(why),
    }
}

fn read_peer_cgroup(proc_root: &Path, pid: Option<i32>) -> Result<String, String> {
    let pid = pid
        .filter(|p| *p > 0)
        .and_then(Pid::from_raw)
        .ok_or("the kernel gave no process id for it (it runs in another PID namespace)")?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty())
        .map_err(|e| format!("pidfd_open({}) failed: {e}", pid.as_raw_nonzero()))?;
    let path = proc_root
        .join(pid.as_raw_nonzero().to_string())
        .join("cgroup");
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(CGROUP_FILE_CAP).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // A pidfd polls readable once its process has exited; until then the
    // pid is its own, so the file just read was the peer's.
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(0) => Ok(text),
        Ok(_) => Err(format!(
            "process {} exited while it was being checked",
            pid.as_raw_nonzero()
        )),
        Err(e) => Err(format!(
            "cannot poll the pidfd of {}: {e}",
            pid.as_raw_nonzero()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bh() -> Compartments {
        Compartments {
            proc_root: PathBuf::from("/proc"),
            subtrees: vec!["/bh".into()],
            supervisor: Some("/bh/supervisor".into()),
        }
    }

    #[test]
    fn inside_is_by_component_not_by_prefix() {
        for (line, subtree, inside) in [
            ("0::/bh\n", "/bh", true),
            ("0::/bh/web/0\n", "/bh", true),
            ("0::/bh/exec/4242\n", "/bh", true),
            ("0::/bh-other\n", "/bh", false),
            ("0::/bh-other/web/0\n", "/bh", false),
            ("0::/bhx/y\n", "/bh", false),
            ("0::/b\n", "/bh", false),
            ("0::/\n", "/bh", false),
            (
                "0::/user.slice/user-0.slice/session-1.scope\n",
                "/bh",
                false,
            ),
            // Trailing and doubled slashes, on either side.
            ("0::/bh/\n", "/bh", true),
            ("0::/bh/web\n", "/bh/", true),
            ("0::/bh-other\n", "/bh/", false),
            ("0::/bh/web\n", "bh", true),
            (
                "0::/system.slice/bulkhead.service/web/0\n",
                "/system.slice/bulkhead.service",
                true,
            ),
            (
                "0::/system.slice/bulkhead.service.d\n",
                "/system.slice/bulkhead.service",
                false,
            ),
            (
                "0::/system.slice\n",
                "/system.slice/bulkhead.service",
                false,
            ),
            // A removed cgroup: judged by its path.
            ("0::/bh/web/0 (deleted)\n", "/bh", true),
            ("0::/other (deleted)\n", "/bh", false),
            // Every cgroup is inside the mount's root.
            ("0::/anything\n", "/", true),
        ] {
            assert_eq!(
                inside_subtree(line, subtree),
                inside,
                "{line:?} in {subtree:?}"
            );
        }
    }

    #[test]
    fn hybrid_hosts_are_judged_by_the_v2_line_only() {
        // cgroup v1 hierarchies say /bh-free paths; the unified one decides.
        let hybrid = "12:pids:/user.slice\n11:memory:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n0::/bh/web/0\n";
        assert!(inside_subtree(hybrid, "/bh"));
        let hybrid = "12:pids:/bh/web/0\n1:name=systemd:/bh/web/0\n0::/user.slice\n";
        assert!(!inside_subtree(hybrid, "/bh"));
        // A v1 hierarchy id that ends in 0 is not the v2 line.
        assert_eq!(v2_path("10::/bh\n"), None);
        assert_eq!(v2_path("10:cpu:/x\n0::/y\n"), Some(("/y", false)));
    }

    #[test]
    fn what_cannot_be_read_as_a_path_is_inside() {
        for text in [
            "",
            "12:pids:/user.slice\n", // pure v1: no 0:: line
            "0::/a\n0::/b\n",        // two v2 lines
            "0::relative\n",         // not absolute
            "0::/../../outside\n",   // outside our cgroup namespace
            "0::/bh/../x\n",
            "0::/./x\n",
        ] {
            assert!(inside_subtree(text, "/bh"), "{text:?}");
        }
        assert!(
            inside_subtree("0::/x\n", "/bh/.."),
            "a subtree that is no path"
        );
    }

    #[test]
    fn places_follow_the_module_table() {
        let c = bh();
        assert_eq!(
            place("0::/bh/web/0\n", &c),
            Place::Compartment("/bh/web/0".into())
        );
        assert_eq!(
            place("0::/bh/exec/4242\n", &c),
            Place::Compartment("/bh/exec/4242".into())
        );
        assert_eq!(place("0::/bh/supervisor\n", &c), Place::Supervisor);
        assert_eq!(place("0::/bh/supervisor/\n", &c), Place::Supervisor);
        assert_eq!(place("0::/bh-other/x\n", &c), Place::Outside);
        assert_eq!(
            place("0::/user.slice/session-3.scope\n", &c),
            Place::Outside
        );
        assert!(matches!(place("1:name=systemd:/\n", &c), Place::Unknown(_)));
        assert!(matches!(place("0::/../x\n", &c), Place::Unknown(_)));
        assert!(place("0::/x\n", &c).served());
        assert!(place("0::/bh/supervisor\n", &c).served());
        assert!(!place("0::/bh\n", &c).served());
    }

    #[test]
    fn only_the_live_supervisor_cgroup_itself_is_served() {
        let c = bh();
        for text in [
            "0::/bh/supervisor/x\n",         // below it
            "0::/bh/supervisor (deleted)\n", // a removed one
            "0::/bh/supervisors\n",          // a sibling that starts alike
            "0::/bh/web/supervisor\n",       // an instance of that name
            "0::/bh\n",                      // R itself
        ] {
            assert!(matches!(place(text, &c), Place::Compartment(_)), "{text:?}");
        }
        let no_supervisor = Compartments {
            supervisor: None,
            ..bh()
        };
        assert!(matches!(
            place("0::/bh/supervisor\n", &no_supervisor),
            Place::Compartment(_)
        ));
    }

    #[test]
    fn every_subtree_counts() {
        let c = Compartments {
            subtrees: vec!["/system.slice/bulkhead.service".into(), "/bulkhead".into()],
            supervisor: Some("/system.slice/bulkhead.service/supervisor".into()),
            ..bh()
        };
        assert_eq!(
            place("0::/bulkhead/exec/7\n", &c),
            Place::Compartment("/bulkhead/exec/7".into())
        );
        assert_eq!(
            place("0::/system.slice/bulkhead.service/web/0\n", &c),
            Place::Compartment("/system.slice/bulkhead.service/web/0".into())
        );
        assert_eq!(
            place("0::/system.slice/bulkhead.service/supervisor\n", &c),
            Place::Supervisor
        );
        assert_eq!(
            place("0::/bulkhead/supervisor\n", &c),
            Place::Compartment("/bulkhead/supervisor".into())
        );
        assert_eq!(place("0::/system.slice/ssh.service\n", &c), Place::Outside);
    }

    #[test]
    fn the_daemons_compartments_are_relative_to_the_mount() {
        let m = Path::new("/sys/fs/cgroup");
        let c = Compartments::of_daemon(
            Path::new("/proc"),
            m,
            Path::new("/sys/fs/cgroup/system.slice/bulkhead.service"),
            &[PathBuf::from("/sys/fs/cgroup/bulkhead/")],
        )
        .unwrap();
        assert_eq!(c.subtrees, ["/system.slice/bulkhead.service", "/bulkhead"]);
        assert_eq!(
            c.supervisor.as_deref(),
            Some("/system.slice/bulkhead.service/supervisor")
        );
        let c = Compartments::of_daemon(
            Path::new("/proc"),
            m,
            Path::new("/sys/fs/cgroup/bulkhead"),
            &[PathBuf::from("/sys/fs/cgroup/bulkhead")],
        )
        .unwrap();
        assert_eq!(c.subtrees, ["/bulkhead"], "the same root once");
        assert_eq!(c.supervisor.as_deref(), Some("/bulkhead/supervisor"));
        assert_eq!(
            Compartments::of_daemon(Path::new("/proc"), m, Path::new("/elsewhere"), &[]),
            None
        );
    }

    #[test]
    fn a_peer_that_cannot_be_placed_is_unknown() {
        let c = bh();
        assert!(matches!(place_peer(&c, None), Place::Unknown(_)));
        assert!(matches!(place_peer(&c, Some(0)), Place::Unknown(_)));
        assert!(matches!(place_peer(&c, Some(-1)), Place::Unknown(_)));
        // No subtree: nothing is read.
        assert_eq!(place_peer(&Compartments::none(), None), Place::Outside);
    }

    #[test]
    fn a_live_peer_is_placed_from_its_proc_file() {
        // Our own process, read through a fake /proc that puts it in /bh.
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        std::fs::create_dir(dir.path().join(me.to_string())).unwrap();
        std::fs::write(dir.path().join(format!("{me}/cgroup")), "0::/bh/web/0\n").unwrap();
        let c = Compartments {
            proc_root: dir.path().to_path_buf(),
            ..bh()
        };
        let pid = i32::try_from(me).unwrap();
        assert_eq!(
            place_peer(&c, Some(pid)),
            Place::Compartment("/bh/web/0".into())
        );
        std::fs::write(dir.path().join(format!("{me}/cgroup")), "0::/user.slice\n").unwrap();
        assert_eq!(place_peer(&c, Some(pid)), Place::Outside);
        std::fs::remove_file(dir.path().join(format!("{me}/cgroup"))).unwrap();
        assert!(matches!(place_peer(&c, Some(pid)), Place::Unknown(_)));
    }

    #[test]
    fn an_exited_peer_is_unknown() {
        // A zombie: its pidfd polls readable, its /proc file still reads.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let c = Compartments {
            subtrees: vec!["/nowhere-near".into()],
            ..bh()
        };
        let p = place_peer(&c, Some(pid));
        assert!(
            matches!(&p, Place::Unknown(why) if why.contains("exited")),
            "{p:?}"
        );
        child.wait().unwrap();
    }
}
