//! The subtree bulkhead owns (docs/ARCHITECTURE.md decision 6):
//!
//! ```text
//! R/                       the root: delegated cgroup, or <mount>/bulkhead
//! R/supervisor             the daemon itself (no-internal-processes rule)
//! R/<service>/<instance>   a service outside any group
//! R/<group>/<service>/<instance>
//! ```
//!
//! Names are deterministic, so a restarted daemon finds what it created.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Code, Diagnostic};

use super::{CgroupError, controllers, create, enable_controllers, subtree_control, write};

/// The daemon's cgroup subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtree {
    pub root: PathBuf,
}

/// Why the subtree could not be set up, in terms of what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SubtreeError {
    #[error("cgroup root {root} is not inside the cgroup2 mount {mount}")]
    OutsideMount { root: PathBuf, mount: PathBuf },
    #[error("controller {controller} is not available in {dir} (it offers: {offered})")]
    ControllerMissing {
        controller: String,
        dir: PathBuf,
        offered: String,
    },
    #[error(transparent)]
    Io(#[from] CgroupError),
}

impl SubtreeError {
    pub fn diagnostic(&self) -> Diagnostic {
        match self {
            SubtreeError::OutsideMount { root, mount } => Diagnostic::new(Code::CgroupIo, self.to_string())
                .context("root", root.display())
                .context("mount", mount.display())
                .suggest("set supervisor.cgroup_root to a directory under the cgroup2 mount, or to auto"),
            SubtreeError::ControllerMissing { controller, dir, .. } => {
                Diagnostic::new(Code::CgroupControllerMissing, self.to_string())
                    .context("controller", controller)
                    .context("cgroup", dir.display())
                    .suggest(format!(
                        "enable it in the parent's cgroup.subtree_control (with systemd: Delegate=yes or Delegate={controller}), or on a hybrid host boot with systemd.unified_cgroup_hierarchy=1; `bulkhead check` shows what is offered"
                    ))
            }
            SubtreeError::Io(e) => e.diagnostic(),
        }
    }
}

/// Checks that `name` can be a cgroup directory bulkhead owns: one path
/// component, not a controller's file name (`memory.max`), not `supervisor`.
pub fn check_component(name: &str) -> Result<(), String> {
    let mut comps = Path::new(name).components();
    if !matches!(
        (comps.next(), comps.next()),
        (Some(Component::Normal(_)), None)
    ) || name.contains('/')
    {
        return Err(format!("{name:?} is not a single path component"));
    }
    let prefixes = [
        "cgroup.", "cpu.", "cpuset.", "memory.", "io.", "pids.", "hugetlb.", "rdma.", "misc.",
    ];
    if prefixes.iter().any(|p| name.starts_with(p)) {
        return Err(format!("{name:?} looks like a cgroup control file"));
    }
    Ok(())
}

impl Subtree {
    pub fn supervisor_dir(&self) -> PathBuf {
        self.root.join("supervisor")
    }

    /// `R/<group>/<service>` or `R/<service>`.
    pub fn service_dir(&self, group: Option<&str>, service: &str) -> PathBuf {
        match group {
            Some(g) => self.root.join(g).join(service),
            None => self.root.join(service),
        }
    }

    pub fn group_dir(&self, group: &str) -> PathBuf {
        self.root.join(group)
    }

    pub fn instance_dir(&self, group: Option<&str>, service: &str, instance: &str) -> PathBuf {
        self.service_dir(group, service).join(instance)
    }

    /// Creates the cgroups down to an instance, enabling `controllers` in each
    /// parent on the way, and returns the instance's directory (a leaf).
    pub fn create_instance(
        &self,
        group: Option<&str>,
        service: &str,
        instance: &str,
        wanted: &[&str],
    ) -> Result<PathBuf, SubtreeError> {
        let mut dir = self.root.clone();
        let mut parts: Vec<&str> = group.into_iter().collect();
        parts.extend([service, instance]);
        for (i, part) in parts.iter().enumerate() {
            check_component(part).map_err(|reason| CgroupError::Create {
                path: dir.join(part),
                source: io::Error::new(io::ErrorKind::InvalidInput, reason),
            })?;
            dir = dir.join(part);
            create(&dir)?;
            if i + 1 < parts.len() {
                enable_checked(&dir, wanted)?;
            }
        }
        Ok(dir)
    }
}

/// Enables `wanted` for the children of `dir`, first checking that `dir`
/// has them to give: a missing one is named, instead of the kernel's ENOENT.
fn enable_checked(dir: &Path, wanted: &[&str]) -> Result<(), SubtreeError> {
    let offered = controllers(dir)?;
    if let Some(missing) = wanted.iter().find(|c| !offered.iter().any(|o| o == *c)) {
        return Err(SubtreeError::ControllerMissing {
            controller: missing.to_string(),
            dir: dir.to_path_buf(),
            offered: if offered.is_empty() {
                "none".into()
            } else {
                offered.join(" ")
            },
        });
    }
    enable_controllers(dir, wanted)?;
    Ok(())
}

/// Sets up the subtree at `root` inside the cgroup2 `mount`:
/// 1. enable `wanted` in every ancestor from the mount down to root's parent,
///    creating missing ones (only the mount's root may hold processes and
///    still enable controllers, so in a delegated tree the ancestors must be
///    process-free already);
/// 2. create `root` and `root/supervisor`;
/// 3. move `pid` (the daemon) into `supervisor`, if given: with processes in
///    `root` itself, enabling controllers there fails with EBUSY;
/// 4. enable `wanted` in `root`.
pub fn setup(
    mount: &Path,
    root: &Path,
    wanted: &[&str],
    pid: Option<u32>,
) -> Result<Subtree, SubtreeError> {
    let rel = root
        .strip_prefix(mount)
        .map_err(|_| SubtreeError::OutsideMount {
            root: root.to_path_buf(),
            mount: mount.to_path_buf(),
        })?;
    let mut dir = mount.to_path_buf();
    for part in rel.components() {
        let Component::Normal(part) = part else {
            return Err(SubtreeError::OutsideMount {
                root: root.to_path_buf(),
                mount: mount.to_path_buf(),
            });
        };
        let already = subtree_control(&dir)?;
        if !wanted.iter().all(|w| already.iter().any(|a| a == w)) {
            enable_checked(&dir, wanted)?;
        }
        dir = dir.join(part);
        create(&dir)?;
    }
    let tree = Subtree {
        root: root.to_path_buf(),
    };
    create(&tree.supervisor_dir())?;
    if let Some(pid) = pid {
        write(&tree.supervisor_dir(), "cgroup.procs", pid)?;
    }
    enable_checked(root, wanted)?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_deterministic() {
        let t = Subtree {
            root: PathBuf::from("/sys/fs/cgroup/bulkhead"),
        };
        assert_eq!(
            t.instance_dir(None, "web", "0"),
            PathBuf::from("/sys/fs/cgroup/bulkhead/web/0")
        );
        assert_eq!(
            t.instance_dir(Some("tenants"), "api", "ns-a"),
            PathBuf::from("/sys/fs/cgroup/bulkhead/tenants/api/ns-a")
        );
        assert_eq!(
            t.supervisor_dir(),
            PathBuf::from("/sys/fs/cgroup/bulkhead/supervisor")
        );
    }

    #[test]
    fn components_are_checked() {
        assert!(check_component("web").is_ok());
        assert!(check_component("session-abc.1").is_ok());
        assert!(check_component("memory.max").is_err());
        assert!(check_component("a/b").is_err());
        assert!(check_component("..").is_err());
        assert!(check_component("").is_err());
    }

    /// A fake cgroup tree: directories with cgroup.controllers and an empty
    /// cgroup.subtree_control, as the kernel would create them.
    fn fake_cgroup(dir: &Path, offered: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), offered).unwrap();
        std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
    }

    #[test]
    fn setup_refuses_a_root_outside_the_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let err = setup(
            &tmp.path().join("mnt"),
            Path::new("/elsewhere"),
            &["cpu"],
            None,
        )
        .unwrap_err();
        assert!(matches!(err, SubtreeError::OutsideMount { .. }));
    }

    #[test]
    fn a_missing_controller_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path().join("mnt");
        fake_cgroup(&mount, "cpu io hugetlb");
        let err = setup(&mount, &mount.join("bulkhead"), &["cpu", "memory"], None).unwrap_err();
        let d = err.diagnostic();
        assert_eq!(d.code, Code::CgroupControllerMissing);
        assert!(
            d.message.contains("memory") && d.message.contains("cpu io hugetlb"),
            "{}",
            d.message
        );
    }

    #[test]
    fn instance_paths_reject_control_file_names() {
        let t = Subtree {
            root: PathBuf::from("/nonexistent"),
        };
        let err = t
            .create_instance(None, "memory.max", "0", &["cpu"])
            .unwrap_err();
        assert!(err.to_string().contains("control file"), "{err}");
    }
}
