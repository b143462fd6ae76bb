//! Finding the cgroup2 hierarchy and the subtree bulkhead owns (docs/ARCHITECTURE.md
//! decision 6). The parsers are pure; callers pass the text of
//! `/proc/self/mountinfo` and `/proc/self/cgroup`.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`, the fields bulkhead uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub options: String,
}

/// Parses mountinfo (proc(5)):
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
/// Fields before ` - ` are fixed up to the optional tags; the filesystem type
/// follows the separator. Octal escapes (`\040` for space) are decoded.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            Some(Mount {
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                options: pre.get(5)?.to_string(),
                fs_type: post.next()?.to_string(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup2 mount point, if any. With several, the first in mount order
/// wins: the system's own mount comes before later bind mounts of it.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    parse_mountinfo(mountinfo)
        .into_iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| m.mount_point)
}

/// Whether cgroup v1 hierarchies are mounted too (hybrid or legacy mode).
pub fn has_cgroup_v1(mountinfo: &str) -> bool {
    parse_mountinfo(mountinfo)
        .iter()
        .any(|m| m.fs_type == "cgroup")
}

/// This process's cgroup v2 path from `/proc/self/cgroup` (`0::/system.slice/x`
/// -> `/system.slice/x`).
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// The directory of a cgroup path inside the mount.
pub fn cgroup_dir(mount: &Path, cgroup: &str) -> PathBuf {
    mount.join(cgroup.trim_start_matches('/'))
}

/// Where bulkhead's subtree goes (docs/ARCHITECTURE.md decision 6): a configured path;
/// else the daemon's own cgroup when it was delegated to it (systemd
/// `Delegate=yes`); else `<mount>/bulkhead`.
pub fn choose_root(
    mount: &Path,
    configured: Option<&Path>,
    own: Option<&str>,
    delegated: bool,
) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    match own {
        Some(o) if delegated && o != "/" => cgroup_dir(mount, o),
        _ => mount.join("bulkhead"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on a hybrid host (Debian 12) and in the VM (unified).
    const HYBRID: &str = "\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
";
    const UNIFIED: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 25 0:23 / /mnt/my\\040cg rw shared:4 - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_cgroup2_in_both_modes() {
        assert_eq!(
            cgroup2_mount(HYBRID),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert!(has_cgroup_v1(HYBRID));
        assert_eq!(
            cgroup2_mount(UNIFIED),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert!(!has_cgroup_v1(UNIFIED));
        assert_eq!(cgroup2_mount("garbage\n"), None);
    }

    #[test]
    fn decodes_octal_escapes() {
        let m = parse_mountinfo(UNIFIED);
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/my cg"));
        assert_eq!(m[1].options, "rw,nosuid,nodev,noexec,relatime");
    }

    #[test]
    fn own_cgroup_reads_the_v2_line() {
        assert_eq!(
            own_cgroup("12:pids:/x\n0::/system.slice/bulkhead.service\n").as_deref(),
            Some("/system.slice/bulkhead.service")
        );
        assert_eq!(own_cgroup("0::/\n").as_deref(), Some("/"));
        assert_eq!(own_cgroup("1:name=systemd:/\n"), None);
    }

    #[test]
    fn root_choice_follows_decision_6() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(
            choose_root(m, Some(Path::new("/x")), Some("/a"), true),
            PathBuf::from("/x")
        );
        assert_eq!(
            choose_root(m, None, Some("/system.slice/bulkhead.service"), true),
            PathBuf::from("/sys/fs/cgroup/system.slice/bulkhead.service")
        );
        assert_eq!(
            choose_root(m, None, Some("/user.slice"), false),
            PathBuf::from("/sys/fs/cgroup/bulkhead")
        );
        assert_eq!(
            choose_root(m, None, Some("/"), true),
            PathBuf::from("/sys/fs/cgroup/bulkhead")
        );
    }
}
