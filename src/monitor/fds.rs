//! Open file descriptors against RLIMIT_NOFILE, through procfs. `proc` is
//! the procfs root (`/proc`), a parameter so tests use a directory of their
//! own.

use std::path::Path;

use super::rules::FdUse;

/// The soft `Max open files` of a `/proc/<pid>/limits` text: `Some(None)`
/// for unlimited, `None` when the line is missing or malformed.
pub fn parse_nofile(limits: &str) -> Option<Option<u64>> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

/// One process's open fds and soft limit; `None` when it is gone or
/// unreadable.
pub fn process(proc: &Path, pid: u32) -> Option<FdUse> {
    let dir = proc.join(pid.to_string());
    let limit = parse_nofile(&std::fs::read_to_string(dir.join("limits")).ok()?)?;
    let open = std::fs::read_dir(dir.join("fd")).ok()?.count();
    Some(FdUse {
        pid,
        open: u64::try_from(open).unwrap_or(u64::MAX),
        limit,
    })
}

/// The process of `pids` closest to its limit (by share; unlimited ones
/// count as 0%).
pub fn worst(proc: &Path, pids: &[u32]) -> Option<FdUse> {
    pids.iter()
        .filter_map(|&p| process(proc, p))
        .max_by(|a, b| share(a).total_cmp(&share(b)))
}

fn share(f: &FdUse) -> f64 {
    match f.limit {
        Some(0) => 1.0,
        Some(l) => f.open as f64 / l as f64,
        None => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn nofile_is_the_soft_limit() {
        assert_eq!(parse_nofile(LIMITS), Some(Some(1024)));
        let unl = LIMITS.replace("1024                 524288", "unlimited unlimited");
        assert_eq!(parse_nofile(&unl), Some(None));
        assert_eq!(parse_nofile("Limit Soft\n"), None);
        assert_eq!(parse_nofile("Max open files  lots  x\n"), None);
    }

    #[test]
    fn counts_fds_in_a_fake_proc() {
        let t = tempfile::tempdir().unwrap();
        for (pid, n, limit) in [
            (10u32, 3usize, "1024"),
            (11, 90, "100"),
            (12, 5, "unlimited"),
        ] {
            let d = t.path().join(pid.to_string());
            std::fs::create_dir_all(d.join("fd")).unwrap();
            for i in 0..n {
                std::fs::write(d.join("fd").join(i.to_string()), "").unwrap();
            }
            std::fs::write(
                d.join("limits"),
                LIMITS.replace("1024                 524288", &format!("{limit} 4096")),
            )
            .unwrap();
        }
        let w = worst(t.path(), &[10, 11, 12, 13]).unwrap();
        assert_eq!((w.pid, w.open, w.limit), (11, 90, Some(100)));
        assert_eq!(process(t.path(), 12).unwrap().limit, None);
        assert!(process(t.path(), 13).is_none());
        assert!(worst(t.path(), &[13]).is_none());
    }

    #[test]
    fn counts_our_own_fds() {
        let me = process(Path::new("/proc"), std::process::id()).unwrap();
        assert!(me.open >= 3, "{me:?}");
    }
}
