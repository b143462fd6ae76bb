//! The directories a service owns (`directories:`), as systemd's
//! StateDirectory=/RuntimeDirectory=/CacheDirectory=/LogsDirectory=: created
//! before the spawn and handed to the service's user. When the owner changed
//! (a dynamic uid reallocated, `user:` edited) the tree is chowned again, so
//! the service keeps its files. A symlink is never followed.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Service;
use crate::error::{Code, Diagnostics};

/// Creates (mode 0755) or repairs each directory of `svc` for `uid:gid`.
/// `root` prefixes every path (`/` in production, a temp dir in tests).
pub fn prepare(root: &Path, svc: &Service, uid: u32, gid: u32) -> Result<(), Diagnostics> {
    for dir in svc.directories.paths() {
        let path = root.join(dir.strip_prefix("/").unwrap_or(&dir));
        ensure(&path, uid, gid).map_err(|e| {
            Diagnostics::failure(
                Code::SpawnFailed,
                format!(
                    "cannot prepare the directory {} of {}",
                    path.display(),
                    svc.name
                ),
                e,
                "check that its parent exists and is a directory root can write",
            )
        })?;
    }
    Ok(())
}

/// Removes `svc`'s runtime directories (at stop, as systemd does).
pub fn remove_runtime(root: &Path, svc: &Service) {
    for name in &svc.directories.runtime {
        let path = root.join("run").join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn ensure(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if m.uid() != uid || m.gid() != gid {
                chown_tree(path, uid, gid)?;
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        }
        Err(e) => Err(e),
    }
}

/// `chown -hR uid:gid path`, iteratively (a deep tree cannot overflow the
/// stack), never following a symlink.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut todo: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(&p)?.is_dir() {
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> Service {
        let yaml = format!("services:\n  {name}:\n    command: [/bin/true]\n");
        let cfg = crate::config::parse_str(
            &yaml,
            Path::new("/etc/bulkhead/bulkhead.yaml"),
            &crate::config::host::RealHost,
        )
        .unwrap();
        cfg.services[0].clone()
    }

    #[test]
    fn created_then_repaired_for_a_new_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("var/lib")).unwrap();
        let mut svc = service("app");
        svc.directories.state = vec!["app/db".into()];
        svc.directories.runtime = vec!["app".into()];
        std::fs::create_dir_all(root.join("run")).unwrap();
        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        prepare(root, &svc, me.0, me.1).unwrap();
        let m = std::fs::metadata(root.join("var/lib/app/db")).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        std::fs::write(root.join("var/lib/app/db/f"), "x").unwrap();
        // Again: nothing to do, nothing lost.
        prepare(root, &svc, me.0, me.1).unwrap();
        assert!(root.join("var/lib/app/db/f").exists());
        if nix::unistd::geteuid().is_root() {
            prepare(root, &svc, 61999, 61999).unwrap();
            let f = std::fs::metadata(root.join("var/lib/app/db/f")).unwrap();
            assert_eq!((f.uid(), f.gid()), (61999, 61999));
        }
        remove_runtime(root, &svc);
        assert!(!root.join("run/app").exists());
        assert!(root.join("var/lib/app/db").exists());
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("var/cache")).unwrap();
        std::fs::write(tmp.path().join("var/cache/app"), "").unwrap();
        let mut svc = service("app");
        svc.directories.cache = vec!["app".into()];
        let e = prepare(tmp.path(), &svc, 0, 0).unwrap_err().to_string();
        assert!(e.contains("var/cache/app"), "{e}");
    }
}
