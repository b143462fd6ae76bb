//! The mount walls of a compartment (`protect:`), as systemd's namespace
//! setup and the OCI runtimes build them: one ordered list of mount
//! operations, planned from the [`InitSpec`] (pure, [`plan`]) and applied by
//! the init in its new mount namespace ([`apply`]).
//!
//! The order is what makes the walls hold:
//! 1. everything private, so nothing propagates back to the host;
//! 2. every path that must differ from its surroundings (the service's own
//!    directories, `read_write`, `read_only`) bound onto itself, so it is a
//!    mount of its own;
//! 3. the host tree read-only, recursively, keeping each mount's other flags
//!    (`mount_setattr(AT_RECURSIVE)`: a remount would drop nosuid/nodev);
//! 4. the writable paths made writable again (recursively, below them too);
//! 5. new mounts on top: /proc (hidepid), its knobs read-only and masks, a
//!    private /tmp, a minimal /dev, a read-only cgroup2, the user's tmpfs;
//! 6. last, what must be invisible: /home, bulkhead's own directories, the
//!    user's `inaccessible` paths.
//!
//! Each spawn pays for every operation (the spawn benchmark's walls row), so
//! [`apply`] does no work whose effect is already there and makes no
//! superblock it can share: a path that is already a mount root is not
//! bound onto itself again (that would only copy its subtree), every hidden
//! directory after the first is a bind mount of the first one's empty
//! read-only tmpfs (a bind keeps the source mount's flags), and the minimal
//! /dev makes each node's mount point with one `mknod`.
//!
//! A worked example: `protect: { system: strict }` with `directories: {
//! state: [app] }` gives `bind /var/lib/app`, `ro -R /`, `rw -R
//! /var/lib/app`: the service can write /var/lib/app and nothing else of
//! the host's.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use super::spec::{HomeView, InitSpec, Step, SystemView};

/// The kernel knobs OCI runtimes mount read-only.
pub const READ_ONLY_KNOBS: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

/// The paths OCI runtimes mask (a file by /dev/null, a directory by an
/// empty read-only tmpfs).
pub const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/acpi",
    "/proc/scsi",
    "/sys/firmware",
];

/// The host's password hashes: readable by uid 0 by file mode alone, so a
/// service running as root would read them through a read-only view too.
/// Masked whenever `protect.system` is on.
pub const SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
];

/// What `protect.home` covers.
pub const HOMES: &[&str] = &["/home", "/root", "/run/user"];

/// What `protect.system: full` makes read-only.
pub const FULL: &[&str] = &["/usr", "/boot", "/etc"];

/// The device nodes of a minimal /dev.
pub const MINIMAL_DEV: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// One mount operation. `optional` ones are skipped when the path does not
/// exist on this host (`/boot`, `/proc/acpi`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mount --make-rprivate /`.
    Private,
    /// `mount --rbind P P`: P becomes a mount of its own (nothing to do
    /// when it already is one).
    BindSelf { path: PathBuf, optional: bool },
    /// Read-only, recursively, other flags kept.
    ReadOnly { path: PathBuf, optional: bool },
    /// Writable again, recursively.
    Writable { path: PathBuf },
    /// A fresh procfs on /proc.
    Proc { hidepid: bool },
    /// A tmpfs, `mode` and owned by the service's user when `owned`.
    Tmpfs {
        path: PathBuf,
        mode: u32,
        owned: bool,
        optional: bool,
    },
    /// A minimal /dev with these host nodes.
    Dev { nodes: Vec<PathBuf> },
    /// A read-only cgroup2 on /sys/fs/cgroup (of the cgroup namespace).
    Cgroup2,
    /// A directory under an empty mode-000 read-only tmpfs (one for all the
    /// directories of a plan), a file under /dev/null, read-only.
    Hide { path: PathBuf, optional: bool },
}

/// The operations for `spec`, each with the step that names it in errors.
pub fn plan(spec: &InitSpec) -> Vec<(Step, Op)> {
    let w = &spec.walls;
    let mut ops = Vec::new();
    let any = spec.mount_proc
        || w != &super::spec::Walls::default()
        || !(spec.read_only.is_empty()
            && spec.read_write.is_empty()
            && spec.tmpfs.is_empty()
            && spec.inaccessible.is_empty());
    if !any {
        return ops;
    }
    let path = |p: &str| PathBuf::from(p);
    ops.push((Step::MountPrivate, Op::Private));
    // The writable set: the service's directories, then `read_write`.
    let writable: Vec<&PathBuf> = w.writable.iter().chain(&spec.read_write).collect();
    for p in &writable {
        ops.push((
            Step::ProtectSystem,
            Op::BindSelf {
                path: (*p).clone(),
                optional: false,
            },
        ));
    }
    for p in &spec.read_only {
        ops.push((
            Step::MountReadOnly,
            Op::BindSelf {
                path: p.clone(),
                optional: false,
            },
        ));
    }
    match w.system {
        SystemView::Strict => ops.push((
            Step::ProtectSystem,
            Op::ReadOnly {
                path: path("/"),
                optional: false,
            },
        )),
        SystemView::Full => {
            for p in FULL {
                ops.push((
                    Step::ProtectSystem,
                    Op::BindSelf {
                        path: path(p),
                        optional: true,
                    },
                ));
                ops.push((
                    Step::ProtectSystem,
                    Op::ReadOnly {
                        path: path(p),
                        optional: true,
                    },
                ));
            }
        }
        SystemView::Off => {}
    }
    if w.system != SystemView::Off {
        for p in SECRETS {
            ops.push((
                Step::ProtectSystem,
                Op::Hide {
                    path: path(p),
                    optional: true,
                },
            ));
        }
    }
    for p in &spec.read_only {
        ops.push((
            Step::MountReadOnly,
            Op::ReadOnly {
                path: p.clone(),
                optional: false,
            },
        ));
    }
    for p in &writable {
        ops.push((Step::ProtectSystem, Op::Writable { path: (*p).clone() }));
    }
    if w.home == HomeView::ReadOnly {
        for p in HOMES {
            ops.push((
                Step::ProtectHome,
                Op::BindSelf {
                    path: path(p),
                    optional: true,
                },
            ));
            ops.push((
                Step::ProtectHome,
                Op::ReadOnly {
                    path: path(p),
                    optional: true,
                },
            ));
        }
    }
    if spec.mount_proc {
        ops.push((Step::ProtectProc, Op::Proc { hidepid: w.hidepid }));
    }
    if w.kernel {
        for p in READ_ONLY_KNOBS.iter().chain(&["/sys"]) {
            ops.push((
                Step::ProtectKernel,
                Op::BindSelf {
                    path: path(p),
                    optional: true,
                },
            ));
            ops.push((
                Step::ProtectKernel,
                Op::ReadOnly {
                    path: path(p),
                    optional: true,
                },
            ));
        }
        for p in MASKED {
            ops.push((
                Step::ProtectKernel,
                Op::Hide {
                    path: path(p),
                    optional: true,
                },
            ));
        }
    }
    if w.private_tmp {
        for (p, optional) in [("/tmp", false), ("/var/tmp", true)] {
            ops.push((
                Step::ProtectTmp,
                Op::Tmpfs {
                    path: path(p),
                    mode: 0o1777,
                    owned: true,
                    optional,
                },
            ));
        }
    }
    if let Some(nodes) = &w.private_dev {
        ops.push((
            Step::ProtectDevices,
            Op::Dev {
                nodes: nodes.clone(),
            },
        ));
    }
    if w.cgroup {
        ops.push((Step::ProtectCgroups, Op::Cgroup2));
    }
    for p in &spec.tmpfs {
        ops.push((
            Step::MountTmpfs,
            Op::Tmpfs {
                path: p.clone(),
                mode: 0o755,
                owned: true,
                optional: false,
            },
        ));
    }
    if w.home == HomeView::Inaccessible {
        for p in HOMES {
            ops.push((
                Step::ProtectHome,
                Op::Hide {
                    path: path(p),
                    optional: true,
                },
            ));
        }
    }
    for p in &w.hidden {
        ops.push((
            Step::HideBulkhead,
            Op::Hide {
                path: p.clone(),
                optional: true,
            },
        ));
    }
    for p in &spec.inaccessible {
        ops.push((
            Step::MountInaccessible,
            Op::Hide {
                path: p.clone(),
                optional: false,
            },
        ));
    }
    ops
}

/// Sets (`rdonly`) or clears read-only on the mount at `p` and, with
/// `recursive`, every mount below it; other flags stay as they are.
fn set_read_only(p: &Path, rdonly: bool, recursive: bool) -> Result<(), i32> {
    let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    crate::sys::mount::set_read_only(&c, rdonly, recursive)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

fn nix_errno(e: nix::Error) -> i32 {
    e as i32
}

/// /proc's options for `protect.proc: invisible`. Without `gid=`, procfs
/// lets group 0 see every process whatever hidepid says (its `pid_gid`
/// defaults to root's group), so a `user: root` service would still see its
/// init. The group named instead is (gid_t)-2, which no process of a
/// compartment has; with it, the init (another process's, not dumpable)
/// is invisible to root too, unless the service holds CAP_SYS_PTRACE.
pub const PROC_HIDEPID: &str = "hidepid=invisible,gid=4294967294";

/// What [`apply`] keeps from one operation to the next.
#[derive(Default)]
struct Applied {
    /// The first hidden directory's empty read-only tmpfs, which the later
    /// ones bind instead of making a superblock each.
    empty_dir: Option<OwnedFd>,
}

/// Applies `ops` in order; the first failure is returned with its step.
/// `owner` is the service's (uid, gid), for the tmpfs it owns.
pub fn apply(ops: &[(Step, Op)], owner: (u32, u32)) -> Result<(), (Step, i32)> {
    let mut applied = Applied::default();
    for (step, op) in ops {
        apply_one(op, owner, &mut applied).map_err(|e| (*step, e))?;
    }
    Ok(())
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Whether `p` is the root of a mount (`statx`'s `STATX_ATTR_MOUNT_ROOT`,
/// Linux 5.8); `None` when it cannot be told (no such path, an older kernel).
fn mount_root(p: &Path) -> Option<bool> {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        p,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    )
    .ok()?;
    st.stx_attributes_mask
        .contains(StatxAttributes::MOUNT_ROOT)
        .then(|| st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
}

fn apply_one(op: &Op, (uid, gid): (u32, u32), applied: &mut Applied) -> Result<(), i32> {
    let none: Option<&str> = None;
    match op {
        Op::Private => {
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(nix_errno)
        }
        Op::BindSelf { path, optional } => {
            // A mount root already is a mount of its own: binding it onto
            // itself would only copy it and every mount below it (/sys and
            // its cgroup trees), for the namespace to tear down at exit.
            match mount_root(path) {
                Some(true) => return Ok(()),
                None if *optional && !exists(path) => return Ok(()),
                _ => {}
            }
            mount(
                Some(path.as_path()),
                path.as_path(),
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(nix_errno)
        }
        Op::ReadOnly { path, optional } => {
            if *optional && !exists(path) {
                return Ok(());
            }
            set_read_only(path, true, true)
        }
        Op::Writable { path } => set_read_only(path, false, true),
        Op::Proc { hidepid } => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            let data = hidepid.then_some(PROC_HIDEPID);
            mount(Some("proc"), "/proc", Some("proc"), flags, data).map_err(nix_errno)
        }
        Op::Tmpfs {
            path,
            mode,
            owned,
            optional,
        } => {
            if *optional && !exists(path) {
                return Ok(());
            }
            let mut data = format!("mode={mode:o}");
            if *owned {
                data.push_str(&format!(",uid={uid},gid={gid}"));
            }
            mount(
                Some("tmpfs"),
                path.as_path(),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(data.as_str()),
            )
            .map_err(nix_errno)
        }
        Op::Dev { nodes } => private_dev(nodes),
        Op::Cgroup2 => {
            // The host's cgroup2 (or v1 tree) goes first: the same cgroup2
            // superblock cannot be mounted again on its own mount point
            // (EBUSY), and nothing of the host's tree should stay below.
            match nix::mount::umount2("/sys/fs/cgroup", nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
                Err(e) => return Err(nix_errno(e)),
            }
            mount(
                Some("cgroup2"),
                "/sys/fs/cgroup",
                Some("cgroup2"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                none,
            )
            .map_err(nix_errno)
        }
        Op::Hide { path, optional } => {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                return if *optional { Ok(()) } else { Err(libc::ENOENT) };
            };
            hide(path, meta.is_dir(), applied)
        }
    }
}

/// A directory is covered by an empty, read-only tmpfs with mode 000; a file
/// by /dev/null, read-only. The first directory gets the tmpfs, the later
/// ones a bind mount of it (the same empty superblock, read-only both in the
/// superblock and in each mount: a bind copies the source mount's flags),
/// taken through the fd kept on it (`/proc/self/fd/N` names exactly that
/// mount, whatever was mounted on its path since); where that cannot be
/// done (no procfs on /proc any more), a tmpfs of its own again.
fn hide(p: &Path, dir: bool, applied: &mut Applied) -> Result<(), i32> {
    let none: Option<&str> = None;
    if dir {
        if let Some(empty) = &applied.empty_dir {
            let src = format!("/proc/self/fd/{}", empty.as_raw_fd());
            if mount(Some(src.as_str()), p, none, MsFlags::MS_BIND, none).is_ok() {
                return Ok(());
            }
        }
        let flags =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
        mount(Some("tmpfs"), p, Some("tmpfs"), flags, Some("mode=000")).map_err(nix_errno)?;
        // Kept by fd: a later mount on `p` must not change what is bound.
        if applied.empty_dir.is_none() {
            applied.empty_dir = rustix::fs::open(
                p,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok();
        }
        Ok(())
    } else {
        mount(Some("/dev/null"), p, none, MsFlags::MS_BIND, none).map_err(nix_errno)?;
        mount(
            none,
            p,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            none,
        )
        .map_err(nix_errno)
    }
}

/// A fresh tmpfs on /dev holding only `nodes` (bound from the host's, which
/// are opened first: the tmpfs hides them), a private devpts and /dev/shm,
/// and the usual links. The tmpfs itself is nodev and ends read-only, so a
/// node made in it later opens nothing.
fn private_dev(nodes: &[PathBuf]) -> Result<(), i32> {
    let none: Option<&str> = None;
    let mut held: Vec<(PathBuf, OwnedFd)> = Vec::new();
    for n in nodes {
        let fd = rustix::fs::open(
            n.as_path(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| e.raw_os_error())?;
        held.push((n.clone(), fd));
    }
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        base | MsFlags::MS_NODEV,
        Some("mode=755,size=1m"),
    )
    .map_err(nix_errno)?;
    for (path, fd) in &held {
        // /dev itself is the fresh tmpfs; only a node below a directory of
        // its own (/dev/net/tun) needs that directory made.
        if let Some(parent) = path.parent()
            && parent != Path::new("/dev")
        {
            std::fs::create_dir_all(parent).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        }
        // The mount point: an empty regular file, in one call (already
        // there when a node is listed twice).
        match rustix::fs::mknodat(
            rustix::fs::CWD,
            path.as_path(),
            rustix::fs::FileType::RegularFile,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        ) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.raw_os_error()),
        }
        let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mount(
            Some(src.as_str()),
            path.as_path(),
            none,
            MsFlags::MS_BIND,
            none,
        )
        .map_err(nix_errno)?;
    }
    drop(held);
    let mkdir = |p: &str| std::fs::create_dir(p).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
    mkdir("/dev/pts")?;
    mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        base,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(nix_errno)?;
    mkdir("/dev/shm")?;
    mount(
        Some("tmpfs"),
        "/dev/shm",
        Some("tmpfs"),
        base | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(nix_errno)?;
    for (target, link) in [
        ("pts/ptmx", "/dev/ptmx"),
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ] {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    }
    set_read_only(Path::new("/dev"), true, false)
}

#[cfg(test)]
mod tests {
    use super::super::spec::Walls;
    use super::*;

    fn spec(walls: Walls) -> InitSpec {
        InitSpec {
            mount_proc: true,
            walls,
            ..InitSpec::default()
        }
    }

    fn every_wall() -> Walls {
        Walls {
            system: SystemView::Strict,
            home: HomeView::Inaccessible,
            private_tmp: true,
            private_dev: Some(MINIMAL_DEV.iter().map(PathBuf::from).collect()),
            kernel: true,
            cgroup: true,
            hidepid: true,
            writable: vec!["/var/lib/app".into()],
            hidden: vec!["/run/bulkhead".into()],
        }
    }

    fn index(ops: &[(Step, Op)], f: impl Fn(&Op) -> bool) -> usize {
        ops.iter()
            .position(|(_, o)| f(o))
            .unwrap_or_else(|| panic!("no such op in {ops:#?}"))
    }

    #[test]
    fn nothing_to_do_without_walls_or_mounts() {
        assert!(plan(&InitSpec::default()).is_empty());
    }

    #[test]
    fn the_order_makes_the_walls_hold() {
        let mut s = spec(every_wall());
        s.read_write = vec!["/srv/data".into()];
        s.read_only = vec!["/srv".into()];
        let ops = plan(&s);
        assert_eq!(ops[0].1, Op::Private);
        let bind_own = index(
            &ops,
            |o| matches!(o, Op::BindSelf { path, .. } if path == Path::new("/var/lib/app")),
        );
        let ro_root = index(
            &ops,
            |o| matches!(o, Op::ReadOnly { path, .. } if path == Path::new("/")),
        );
        let ro_srv = index(
            &ops,
            |o| matches!(o, Op::ReadOnly { path, .. } if path == Path::new("/srv")),
        );
        let rw_own = index(
            &ops,
            |o| matches!(o, Op::Writable { path } if path == Path::new("/var/lib/app")),
        );
        let rw_data = index(
            &ops,
            |o| matches!(o, Op::Writable { path } if path == Path::new("/srv/data")),
        );
        let proc = index(&ops, |o| matches!(o, Op::Proc { hidepid: true }));
        let knobs = index(
            &ops,
            |o| matches!(o, Op::ReadOnly { path, .. } if path == Path::new("/proc/sys")),
        );
        let tmp = index(
            &ops,
            |o| matches!(o, Op::Tmpfs { path, .. } if path == Path::new("/tmp")),
        );
        let dev = index(&ops, |o| matches!(o, Op::Dev { .. }));
        let cg = index(&ops, |o| matches!(o, Op::Cgroup2));
        let home = index(
            &ops,
            |o| matches!(o, Op::Hide { path, .. } if path == Path::new("/root")),
        );
        let hidden = index(
            &ops,
            |o| matches!(o, Op::Hide { path, .. } if path == Path::new("/run/bulkhead")),
        );
        // Bound before the tree goes read-only, made writable after it (and
        // after a read-only parent), new mounts on top, hiding last.
        assert!(bind_own < ro_root && ro_root < rw_own);
        assert!(ro_srv < rw_data);
        assert!(rw_own < proc && proc < knobs);
        assert!(ro_root < tmp && ro_root < dev && ro_root < cg);
        assert!(knobs < cg, "/sys read-only first, then cgroup2 on top");
        assert!(cg < home && home < hidden);
        // Every masked path is masked.
        for m in MASKED {
            index(
                &ops,
                |o| matches!(o, Op::Hide { path, optional: true } if path == Path::new(m)),
            );
        }
    }

    /// As root (skipped otherwise), in a thread's own mount namespace: a
    /// mount root is not bound onto itself again, a plain directory is, and
    /// every hidden directory is empty, read-only, nosuid, nodev and noexec,
    /// the later ones sharing the first one's superblock.
    #[test]
    fn apply_hides_with_one_superblock_and_binds_only_what_is_no_mount() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let base = std::env::temp_dir().join(format!("bulkhead-walls-{}", std::process::id()));
        let (plain, a, b) = (base.join("plain"), base.join("a"), base.join("b"));
        for d in [&plain, &a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(b.join("secret"), "x").unwrap();
        let (a2, b2, plain2) = (a.clone(), b.clone(), plain.clone());
        let lines = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            let mountinfo = || std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
            let bind = |p: &str| {
                (
                    Step::ProtectSystem,
                    Op::BindSelf {
                        path: p.into(),
                        optional: false,
                    },
                )
            };
            apply(&[(Step::MountPrivate, Op::Private)], (0, 0)).unwrap();
            let before = mountinfo().lines().count();
            apply(&[bind("/proc")], (0, 0)).unwrap();
            assert_eq!(mountinfo().lines().count(), before, "/proc bound again");
            apply(&[bind(plain2.to_str().unwrap())], (0, 0)).unwrap();
            assert_eq!(mountinfo().lines().count(), before + 1);
            let hide = |p: &PathBuf| {
                (
                    Step::MountInaccessible,
                    Op::Hide {
                        path: p.clone(),
                        optional: false,
                    },
                )
            };
            apply(&[hide(&a2), hide(&b2)], (0, 0)).unwrap();
            assert!(
                std::fs::read_dir(&b2).unwrap().next().is_none(),
                "b not empty"
            );
            let e = std::fs::write(b2.join("new"), "x").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
            mountinfo()
        })
        .join()
        .unwrap();
        let _ = std::fs::remove_file(b.join("secret"));
        for d in [&plain, &a, &b, &base] {
            let _ = std::fs::remove_dir(d);
        }
        // mountinfo: id parent major:minor root mount-point options ...
        let of = |p: &Path| -> (String, String) {
            let l = lines
                .lines()
                .rfind(|l| l.split(' ').nth(4) == p.to_str())
                .unwrap_or_else(|| panic!("{} not mounted:\n{lines}", p.display()));
            let f: Vec<&str> = l.split(' ').collect();
            (f[2].to_string(), f[5].to_string())
        };
        let (dev_a, opts_a) = of(&a);
        let (dev_b, opts_b) = of(&b);
        assert_eq!(dev_a, dev_b, "one superblock for both");
        for o in [opts_a, opts_b] {
            for flag in ["ro", "nosuid", "nodev", "noexec"] {
                assert!(o.split(',').any(|x| x == flag), "{flag} missing in {o}");
            }
        }
    }

    #[test]
    fn each_wall_is_its_own_switch() {
        let full = plan(&spec(every_wall()));
        let without = |f: fn(&mut Walls)| {
            let mut w = every_wall();
            f(&mut w);
            plan(&spec(w))
        };
        let ops = without(|w| w.system = SystemView::Off);
        assert!(
            !ops.iter()
                .any(|(_, o)| matches!(o, Op::ReadOnly { path, .. } if path == Path::new("/")))
        );
        let ops = without(|w| w.system = SystemView::Full);
        for p in FULL {
            index(
                &ops,
                |o| matches!(o, Op::ReadOnly { path, .. } if path == Path::new(p)),
            );
        }
        let ops = without(|w| w.private_tmp = false);
        assert!(!ops.iter().any(|(s, _)| *s == Step::ProtectTmp));
        let ops = without(|w| w.private_dev = None);
        assert!(!ops.iter().any(|(s, _)| *s == Step::ProtectDevices));
        let ops = without(|w| w.kernel = false);
        assert!(!ops.iter().any(|(s, _)| *s == Step::ProtectKernel));
        let ops = without(|w| w.cgroup = false);
        assert!(!ops.iter().any(|(s, _)| *s == Step::ProtectCgroups));
        let ops = without(|w| w.home = HomeView::Off);
        assert!(!ops.iter().any(|(s, _)| *s == Step::ProtectHome));
        let ops = without(|w| w.home = HomeView::ReadOnly);
        index(
            &ops,
            |o| matches!(o, Op::ReadOnly { path, .. } if path == Path::new("/home")),
        );
        let ops = without(|w| w.hidepid = false);
        index(&ops, |o| matches!(o, Op::Proc { hidepid: false }));
        assert!(full.len() > ops.len() - 1);
    }
}
