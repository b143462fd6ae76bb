//! Ending what runs in a cgroup, freezing it, and removing cgroups without
//! tripping over races: a cgroup that is already gone is success (ENOENT,
//! ENODEV), a cgroup that still has processes is killed, waited for and
//! removed again (EBUSY), as crun does.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::events::FileWatch;
use super::{CgroupError, read, write};

/// `populated` and `frozen` from `cgroup.events`.
pub use super::stats::CgroupEvents as CgroupState;

pub fn state(dir: &Path) -> Result<CgroupState, CgroupError> {
    let text = read(dir, "cgroup.events")?;
    super::stats::parse_cgroup_events(&text).map_err(|e| CgroupError::Read {
        path: dir.join("cgroup.events"),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// Waits, woken by inotify on `cgroup.events`, until `pred` holds for the
/// cgroup's state or `timeout` passes. Returns whether it held.
pub fn wait_state(
    dir: &Path,
    timeout: Duration,
    pred: impl Fn(CgroupState) -> bool,
) -> Result<bool, CgroupError> {
    let events = dir.join("cgroup.events");
    let mut watch = FileWatch::new().map_err(|source| CgroupError::Read {
        path: events.clone(),
        source,
    })?;
    // Watch first, then read: a change between the two still wakes us.
    if let Err(source) = watch.add(&events) {
        return if is_gone(&source) {
            Ok(pred(CgroupState::default()))
        } else {
            Err(CgroupError::Read {
                path: events,
                source,
            })
        };
    }
    let deadline = Instant::now() + timeout;
    loop {
        match state(dir) {
            Ok(s) if pred(s) => return Ok(true),
            Ok(_) => {}
            // The cgroup went away: it is empty and not frozen.
            Err(e) if is_gone(e.io()) => return Ok(pred(CgroupState::default())),
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // Short slices as a safety net in case an event is coalesced away.
        watch
            .wait(Some(left.min(Duration::from_millis(200))))
            .map_err(|source| CgroupError::Read {
                path: events.clone(),
                source,
            })?;
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV))
}

/// Kills every process in the cgroup and its descendants at once with
/// `cgroup.kill` (Linux 5.14). Without it: freeze, SIGKILL each process,
/// thaw, so a forking process cannot slip out between listing and killing.
pub fn kill(dir: &Path) -> Result<(), CgroupError> {
    match write(dir, "cgroup.kill", "1") {
        Ok(()) => Ok(()),
        Err(e) if is_gone(e.io()) && dir.exists() => kill_by_freezing(dir),
        Err(e) if is_gone(e.io()) => Ok(()),
        Err(e) => Err(e),
    }
}

fn kill_by_freezing(dir: &Path) -> Result<(), CgroupError> {
    freeze(dir, Duration::from_secs(5))?;
    for pid in procs_recursive(dir)? {
        // A process that already exited is fine.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // SIGKILL is delivered to frozen tasks once they thaw.
    thaw(dir)
}

fn procs_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    for d in descendants(dir)?
        .into_iter()
        .chain(std::iter::once(dir.to_path_buf()))
    {
        match read(&d, "cgroup.procs") {
            Ok(t) => pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            Err(e) if is_gone(e.io()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(pids)
}

/// Freezes the cgroup and waits until the kernel reports it frozen.
pub fn freeze(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    write(dir, "cgroup.freeze", "1")?;
    if wait_state(dir, timeout, |s| s.frozen)? {
        Ok(())
    } else {
        let path = dir.join("cgroup.events");
        Err(CgroupError::Read {
            path,
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not frozen after {timeout:?}"),
            ),
        })
    }
}

/// Thaws a frozen cgroup.
pub fn thaw(dir: &Path) -> Result<(), CgroupError> {
    match write(dir, "cgroup.freeze", "0") {
        Err(e) if is_gone(e.io()) => Ok(()),
        other => other,
    }
}

/// Removes one cgroup. Already gone is success. Still populated (EBUSY):
/// kill, wait until empty (up to `timeout`), and remove again.
pub fn remove_killing(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    match super::remove(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.io().raw_os_error() == Some(libc::EBUSY) => {
            kill(dir)?;
            if !wait_state(dir, timeout, |s| !s.populated)? {
                return Err(e);
            }
            // The last process has exited; the kernel may take a moment to
            // release the cgroup, so EBUSY is retried briefly.
            let deadline = Instant::now() + timeout;
            loop {
                match super::remove(dir) {
                    Err(e)
                        if e.io().raw_os_error() == Some(libc::EBUSY)
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    other => return other,
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Every cgroup below `dir`, deepest first (the order they can be removed in).
pub fn descendants(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    collect(dir, &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_gone(&e) => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut children: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for c in children {
        collect(&c, out)?;
        out.push(c);
    }
    Ok(())
}

/// Removes `dir` and everything below it, killing what runs there.
pub fn remove_tree(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    // One kill for the whole subtree first, so children do not fork into
    // siblings that are removed later.
    kill(dir)?;
    for d in descendants(dir)? {
        remove_killing(&d, timeout)?;
    }
    remove_killing(dir, timeout)
}

/// Cgroups under `root` that are not in `keep` and hold nothing in `keep`
/// below them: what a previous run left behind. Deepest first; `supervisor`
/// (the daemon's own leaf) is never listed.
pub fn stale(root: &Path, keep: &[PathBuf]) -> Result<Vec<PathBuf>, CgroupError> {
    let supervisor = root.join("supervisor");
    Ok(descendants(root)?
        .into_iter()
        .filter(|d| !d.starts_with(&supervisor))
        .filter(|d| !keep.iter().any(|k| k.starts_with(d)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_reads_cgroup_events_and_a_bad_file_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.events"), "populated 0\nfrozen 1\n").unwrap();
        assert_eq!(
            state(t.path()).unwrap(),
            CgroupState {
                populated: false,
                frozen: true
            }
        );
        std::fs::write(t.path().join("cgroup.events"), "").unwrap();
        assert!(state(t.path()).is_err());
    }

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["a/0", "a/1", "b/0", "supervisor"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        tmp
    }

    #[test]
    fn descendants_are_deepest_first() {
        let t = tree();
        let rel: Vec<String> = descendants(t.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(t.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["a/0", "a/1", "a", "b/0", "b", "supervisor"]);
    }

    #[test]
    fn stale_keeps_live_instances_and_their_parents() {
        let t = tree();
        let keep = vec![t.path().join("a/1")];
        let rel: Vec<String> = stale(t.path(), &keep)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(t.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["a/0", "b/0", "b"]);
    }

    #[test]
    fn removing_what_is_gone_is_fine() {
        let t = tree();
        remove_killing(&t.path().join("nope"), Duration::from_millis(10)).unwrap();
        remove_killing(&t.path().join("a/0"), Duration::from_millis(10)).unwrap();
        assert!(!t.path().join("a/0").exists());
        // A missing cgroup is neither populated nor frozen.
        assert!(
            wait_state(&t.path().join("nope"), Duration::from_millis(10), |s| !s
                .populated)
            .unwrap()
        );
    }
}
