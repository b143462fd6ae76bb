//! The cgroup v2 filesystem. Every function takes the directories it works
//! on as arguments (the cgroup2 mount, a cgroup directory, `/proc`), so tests
//! run them on a temporary tree.

pub mod discover;
pub mod events;
pub mod kill;
pub mod limits;
pub mod sampler;
pub mod stats;
pub mod subtree;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Code, Diagnostic};

/// The controllers every service cgroup needs.
pub const REQUIRED_CONTROLLERS: &[&str] = &["cpu", "memory", "io", "pids"];

/// A failed cgroup file operation, with the path and the data involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to write {data:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        data: String,
        source: io::Error,
    },
    #[error("failed to create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("failed to remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

impl CgroupError {
    pub fn io(&self) -> &io::Error {
        match self {
            CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Create { source, .. }
            | CgroupError::Remove { source, .. } => source,
        }
    }

    /// The user-facing form, with a hint for the failures people actually hit.
    pub fn diagnostic(&self) -> Diagnostic {
        let hint = match self.io().raw_os_error() {
            Some(libc::EROFS) => {
                "the cgroup filesystem is read-only here: run bulkhead as root on the host, or in a container with a writable, delegated cgroup"
            }
            Some(libc::EACCES) | Some(libc::EPERM) => {
                "bulkhead needs root (or a cgroup delegated to its user with systemd Delegate=yes)"
            }
            Some(libc::EBUSY) => {
                "a cgroup with processes cannot enable controllers for children (no-internal-processes rule): move the processes into a leaf first"
            }
            Some(libc::ENOENT) => {
                "a controller file is missing: the controller is not enabled in the parent's cgroup.subtree_control"
            }
            Some(libc::EMFILE) | Some(libc::ENFILE) => {
                "too many open files: the stat sampler keeps each cgroup's files open; raise the limit (ulimit -n, systemd LimitNOFILE=)"
            }
            Some(libc::EINVAL) => {
                "the kernel refused the value: check the limit's syntax and range"
            }
            _ => "check `bulkhead check` for what the host offers",
        };
        Diagnostic::new(Code::CgroupIo, self.to_string())
            .cause(self.io())
            .suggest(hint)
    }
}

/// Reads one cgroup file.
pub fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// Writes one cgroup file (one write call, as the kernel expects).
pub fn write(dir: &Path, file: &str, data: impl fmt::Display) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let data = data.to_string();
    std::fs::write(&path, data.as_bytes()).map_err(|source| CgroupError::Write {
        path,
        data,
        source,
    })
}

/// Creates a cgroup directory; an existing one is fine.
pub fn create(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes an empty cgroup; one that is already gone is fine (ENOENT, and
/// ENODEV when its parent went first).
pub fn remove(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV)) => Ok(()),
        Err(source) => Err(CgroupError::Remove {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Parses a space-separated controller list (`cgroup.controllers`,
/// `cgroup.subtree_control`).
pub fn parse_controllers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Controllers the parent offers to `dir` (its `cgroup.controllers`).
pub fn controllers(dir: &Path) -> Result<Vec<String>, CgroupError> {
    read(dir, "cgroup.controllers").map(|t| parse_controllers(&t))
}

/// Controllers `dir` passes on to its children.
pub fn subtree_control(dir: &Path) -> Result<Vec<String>, CgroupError> {
    read(dir, "cgroup.subtree_control").map(|t| parse_controllers(&t))
}

/// Enables controllers for the children of `dir` (`+cpu +memory ...`), skipping
/// those already enabled. Each is written on its own, so an error names the
/// controller the kernel refused.
pub fn enable_controllers(dir: &Path, wanted: &[&str]) -> Result<(), CgroupError> {
    let have = subtree_control(dir)?;
    for c in wanted.iter().filter(|c| !have.iter().any(|h| h == *c)) {
        write(dir, "cgroup.subtree_control", format_args!("+{c}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_parse() {
        assert_eq!(
            parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n").len(),
            8
        );
        assert!(parse_controllers("\n").is_empty());
    }

    #[test]
    fn create_and_remove_tolerate_repeats() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("svc");
        create(&d).unwrap();
        create(&d).unwrap();
        remove(&d).unwrap();
        remove(&d).unwrap();
    }

    #[test]
    fn errors_carry_path_and_data() {
        let tmp = tempfile::tempdir().unwrap();
        let e = write(&tmp.path().join("missing"), "memory.max", "64M").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("\"64M\"") && text.contains("missing/memory.max"),
            "{text}"
        );
        assert_eq!(e.diagnostic().code, Code::CgroupIo);
    }

    #[test]
    fn enable_skips_enabled() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.subtree_control"), "cpu memory\n").unwrap();
        // Nothing to write: a plain file would be overwritten otherwise.
        enable_controllers(tmp.path(), &["cpu", "memory"]).unwrap();
        assert_eq!(
            read(tmp.path(), "cgroup.subtree_control").unwrap(),
            "cpu memory\n"
        );
        enable_controllers(tmp.path(), &["pids"]).unwrap();
        // A plain file keeps what was written last (the kernel would merge).
        assert!(
            read(tmp.path(), "cgroup.subtree_control")
                .unwrap()
                .starts_with("+pids")
        );
    }
}
