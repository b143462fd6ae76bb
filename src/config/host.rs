//! What validation needs to know about the host (users, groups, programs,
//! files), behind a trait so tests can describe a host instead of using this one.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::input::INCLUDED_FILE_BYTES;

/// The kind of thing at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File { executable: bool },
    Dir,
    BlockDevice,
    Other,
}

pub trait Host {
    /// Does this user name exist?
    fn user_exists(&self, name: &str) -> bool;
    /// Does this group name exist?
    fn group_exists(&self, name: &str) -> bool;
    fn path_kind(&self, path: &Path) -> PathKind;
    fn read_to_string(&self, path: &Path) -> std::io::Result<String>;
    /// What seccomp profiles resolve against: the native architecture and
    /// the kernel release.
    fn seccomp_target(&self) -> crate::seccomp::Target;
}

/// The machine bulkhead runs on.
pub struct RealHost;

impl Host for RealHost {
    fn user_exists(&self, name: &str) -> bool {
        matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
    }

    fn group_exists(&self, name: &str) -> bool {
        matches!(nix::unistd::Group::from_name(name), Ok(Some(_)))
    }

    fn path_kind(&self, path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Err(_) => PathKind::Missing,
            Ok(m) if m.is_dir() => PathKind::Dir,
            Ok(m) if m.is_file() => PathKind::File {
                executable: m.permissions().mode() & 0o111 != 0,
            },
            Ok(m) if m.file_type().is_block_device() => PathKind::BlockDevice,
            Ok(_) => PathKind::Other,
        }
    }

    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        // Files named in a config (seccomp profiles) are a few KiB; a device
        // such as /dev/zero would never end.
        read_text(path, &INCLUDED_FILE_BYTES).map_err(ReadError::into_io)
    }

    fn seccomp_target(&self) -> crate::seccomp::Target {
        crate::seccomp::Target::native()
    }
}

/// The most [`RealHost::read_to_string`] reads.
pub const MAX_READ_BYTES: u64 = INCLUDED_FILE_BYTES.max;

pub use crate::input::{ReadError, read_bounded, read_text};

/// The PATH a service gets when its env does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds a program the way execvp would: a name with a slash is taken as it
/// is, anything else is looked up in `path_var`.
pub fn resolve_program(host: &dyn Host, program: &str, path_var: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return match host.path_kind(&p) {
            PathKind::File { executable: true } => Ok(p),
            PathKind::File { executable: false } => Err(format!("{program} is not executable")),
            PathKind::Missing => Err(format!("command not found: {program}")),
            _ => Err(format!("{program} is not a regular file")),
        };
    }
    let mut non_exec = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(program);
        match host.path_kind(&p) {
            PathKind::File { executable: true } => return Ok(p),
            PathKind::File { executable: false } => non_exec = Some(p),
            _ => {}
        }
    }
    match non_exec {
        Some(p) => Err(format!("{} is not executable", p.display())),
        None => Err(format!(
            "command not found: {program} (searched PATH={path_var})"
        )),
    }
}

#[cfg(test)]
pub mod fake {
    //! A described host for tests.
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct FakeHost {
        pub users: Vec<String>,
        pub groups: Vec<String>,
        pub paths: BTreeMap<PathBuf, PathKind>,
        pub files: BTreeMap<PathBuf, String>,
    }

    impl FakeHost {
        /// root, nobody, daemon; /bin/sh, /bin/sleep, /usr/bin/python3 and /dev/sda.
        pub fn typical() -> Self {
            let mut h = FakeHost {
                users: vec!["root".into(), "nobody".into(), "daemon".into()],
                groups: vec!["root".into(), "nogroup".into(), "daemon".into()],
                ..Default::default()
            };
            for p in ["/bin/sh", "/bin/sleep", "/bin/true", "/usr/bin/python3"] {
                h.paths
                    .insert(p.into(), PathKind::File { executable: true });
            }
            h.paths
                .insert("/etc/passwd".into(), PathKind::File { executable: false });
            h.paths.insert("/dev/sda".into(), PathKind::BlockDevice);
            h.paths.insert("/dev/null".into(), PathKind::Other);
            h.paths.insert("/srv".into(), PathKind::Dir);
            h
        }
    }

    impl Host for FakeHost {
        fn user_exists(&self, name: &str) -> bool {
            self.users.iter().any(|u| u == name)
        }
        fn group_exists(&self, name: &str) -> bool {
            self.groups.iter().any(|g| g == name)
        }
        fn path_kind(&self, path: &Path) -> PathKind {
            if self.files.contains_key(path) {
                return PathKind::File { executable: false };
            }
            self.paths.get(path).copied().unwrap_or(PathKind::Missing)
        }
        fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn seccomp_target(&self) -> crate::seccomp::Target {
            // A described kernel: profiles resolve the same on every machine.
            crate::seccomp::Target {
                arch: libseccomp::ScmpArch::native(),
                kernel: (6, 1),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::fake::FakeHost;
    use super::*;

    #[test]
    fn resolves_like_execvp() {
        let h = FakeHost::typical();
        assert_eq!(
            resolve_program(&h, "sleep", "/usr/bin:/bin"),
            Ok(PathBuf::from("/bin/sleep"))
        );
        assert_eq!(
            resolve_program(&h, "/bin/sh", ""),
            Ok(PathBuf::from("/bin/sh"))
        );
        assert!(
            resolve_program(&h, "nope", DEFAULT_PATH)
                .unwrap_err()
                .starts_with("command not found: nope")
        );
        assert!(
            resolve_program(&h, "/etc/passwd", "")
                .unwrap_err()
                .contains("not executable")
        );
        assert!(
            resolve_program(&h, "/srv", "")
                .unwrap_err()
                .contains("not a regular file")
        );
    }
}
