//! Credentials of a child about to exec: supplementary groups, gid, uid,
//! capability sets and no_new_privs. The service (forked by the init) and
//! an entered command (an exec health probe) both go through here.
//!
//! Two phases, as nsjail's `user.cc` and `caps.cc` have them:
//! - [`prepare`] in the parent, where allocation is allowed: a [`CredPlan`]
//!   of plain integers and arrays, capability masks already computed;
//! - [`apply`] in the child: raw syscalls only, no allocation, no lock, so
//!   it is sound in the child of a multi-threaded process. glibc's
//!   setuid/setgid/setgroups wrappers are avoided on purpose: they signal
//!   every thread glibc believes exists, and such a child has one.
//!
//! The order is the only one that works:
//! ```text
//! 1 drop the bounding set     needs CAP_SETPCAP: while still root
//! 2 PR_SET_KEEPCAPS           else setuid to non-root clears permitted
//! 3 setgroups, setresgid      need CAP_SETGID: before the uid changes
//! 4 setresuid                 clears effective (keep-caps kept permitted)
//! 5 capset E = P = I = kept   within permitted, so always allowed
//! 6 ambient raise (non-root)  needs each cap in permitted and inheritable
//! 7 no_new_privs
//! ```
//! Worked example: uid 65534 keeping CAP_NET_BIND_SERVICE (10) on a kernel
//! whose cap_last_cap is 40 drops 0-9 and 11-40 from the bounding set, sets
//! bit 10 of word 0 in E, P and I, and raises 10 as ambient, so the exec'd
//! program (no file capabilities) still has it.

use super::clone::last_errno;
use super::spec::{InitSpec, Step};

/// Where the kernel publishes its highest capability number.
pub const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// The highest capability this kernel knows ([`CAP_LAST_CAP`]), or the
/// highest the caps crate knows when it cannot be read.
pub fn cap_last_cap() -> u8 {
    parse_last_cap(std::fs::read_to_string(CAP_LAST_CAP).ok().as_deref())
}

/// [`cap_last_cap`]'s pure half: the file's text (`"40\n"`), if read.
pub fn parse_last_cap(text: Option<&str>) -> u8 {
    text.and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| caps::all().iter().map(|c| c.index()).max().unwrap_or(40))
}

/// Who the child becomes, as the parent resolved it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Wanted<'a> {
    /// `None` keeps the caller's.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Supplementary groups; empty with a uid or gid set means just the gid
    /// (root's own groups are left behind).
    pub groups: &'a [u32],
    /// Capability numbers kept in every set (ambient only for non-root);
    /// `None` leaves the caller's capabilities as they are.
    pub capabilities: Option<&'a [u8]>,
    pub no_new_privs: bool,
}

impl<'a> From<&'a InitSpec> for Wanted<'a> {
    /// A service's: its capabilities always replace the init's.
    fn from(spec: &'a InitSpec) -> Wanted<'a> {
        Wanted {
            uid: spec.uid,
            gid: spec.gid,
            groups: &spec.groups,
            capabilities: Some(&spec.capabilities),
            no_new_privs: spec.no_new_privs,
        }
    }
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one per 32 capabilities.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two [`CapData`], 64 capabilities.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

// prctl's arguments are unsigned longs: passed as such through its varargs.
const ZERO: libc::c_ulong = 0;
const ONE: libc::c_ulong = 1;
/// PR_CAP_AMBIENT_RAISE.
const AMBIENT_RAISE: libc::c_ulong = 2;

/// The capability part of a [`CredPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapPlan {
    /// Bounding set entries to drop: every number up to cap_last_cap not kept.
    pub drop: Vec<libc::c_ulong>,
    /// E, P and I after the uid change, for capset.
    pub sets: [CapData; 2],
    /// PR_SET_KEEPCAPS before setuid: a non-root uid keeping anything.
    pub keep_across_setuid: bool,
    /// Raised as ambient after capset (non-root only).
    pub ambient: Vec<libc::c_ulong>,
}

/// Everything [`apply`] does, as integers and arrays built by [`prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredPlan {
    pub caps: Option<CapPlan>,
    pub groups: Option<Vec<libc::gid_t>>,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub no_new_privs: bool,
}

/// The plan for `w` on a kernel whose highest capability is `last_cap`
/// (see [`cap_last_cap`]). Pure; allocates.
pub fn prepare(w: &Wanted<'_>, last_cap: u8) -> CredPlan {
    // Two 32-bit words hold 64 capabilities: nothing above 63 can be kept.
    let last = last_cap.min(63);
    let non_root = w.uid.is_some_and(|u| u != 0);
    let caps = w.capabilities.map(|keep| {
        let kept = |c: &u8| keep.contains(c);
        let mut sets = [CapData::default(); 2];
        for c in (0..=last).filter(kept) {
            let (i, bit) = (usize::from(c / 32), 1u32 << (c % 32));
            sets[i].effective |= bit;
            sets[i].permitted |= bit;
            sets[i].inheritable |= bit;
        }
        let known: Vec<libc::c_ulong> = (0..=last).filter(kept).map(libc::c_ulong::from).collect();
        CapPlan {
            drop: (0..=last)
                .filter(|c| !kept(c))
                .map(libc::c_ulong::from)
                .collect(),
            sets,
            keep_across_setuid: non_root && !known.is_empty(),
            ambient: if non_root { known } else { Vec::new() },
        }
    });
    let groups = (w.uid.is_some() || w.gid.is_some() || !w.groups.is_empty()).then(|| {
        if w.groups.is_empty() {
            w.gid.into_iter().collect()
        } else {
            w.groups.to_vec()
        }
    });
    CredPlan {
        caps,
        groups,
        gid: w.gid,
        uid: w.uid,
        no_new_privs: w.no_new_privs,
    }
}

/// Applies `plan` to the calling process, in the order of the module's
/// table. Raw syscalls only and no allocation: sound in the child of a
/// multi-threaded parent. Returns the step that failed and its errno.
pub fn apply(plan: &CredPlan) -> Result<(), (Step, i32)> {
    let fail = |step: Step| (step, last_errno());
    // SAFETY: for the whole block: each call is a plain syscall (through
    // libc's thin prctl wrapper or `syscall`) on our own process, with
    // integers or pointers into `plan`, which outlives the block. None
    // allocates or takes a lock.
    unsafe {
        if let Some(c) = &plan.caps {
            for &cap in &c.drop {
                // EINVAL: a capability this kernel does not have; nothing
                // to drop.
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, ZERO, ZERO, ZERO) != 0
                    && last_errno() != libc::EINVAL
                {
                    return Err(fail(Step::CapBounding));
                }
            }
            if c.keep_across_setuid
                && libc::prctl(libc::PR_SET_KEEPCAPS, ONE, ZERO, ZERO, ZERO) != 0
            {
                return Err(fail(Step::KeepCaps));
            }
        }
        if let Some(groups) = &plan.groups
            && libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
        {
            return Err(fail(Step::Setgroups));
        }
        if let Some(g) = plan.gid
            && libc::syscall(libc::SYS_setresgid, g, g, g) != 0
        {
            return Err(fail(Step::Setgid));
        }
        if let Some(u) = plan.uid
            && libc::syscall(libc::SYS_setresuid, u, u, u) != 0
        {
            return Err(fail(Step::Setuid));
        }
        if let Some(c) = &plan.caps {
            let header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            if libc::syscall(libc::SYS_capset, &raw const header, c.sets.as_ptr()) != 0 {
                return Err(fail(Step::Capabilities));
            }
            for &cap in &c.ambient {
                if libc::prctl(libc::PR_CAP_AMBIENT, AMBIENT_RAISE, cap, ZERO, ZERO) != 0 {
                    return Err(fail(Step::AmbientCaps));
                }
            }
        }
        if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, ONE, ZERO, ZERO, ZERO) != 0 {
            return Err(fail(Step::NoNewPrivs));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_cap_from_the_file_or_the_crate() {
        assert_eq!(parse_last_cap(Some("40\n")), 40);
        let fallback = parse_last_cap(None);
        assert!(fallback >= 40, "{fallback}");
        assert_eq!(parse_last_cap(Some("garbage")), fallback);
    }

    #[test]
    fn non_root_keeping_one_capability() {
        let w = Wanted {
            uid: Some(65534),
            gid: Some(65534),
            groups: &[65534, 100],
            capabilities: Some(&[10]),
            no_new_privs: true,
        };
        let p = prepare(&w, 40);
        let c = p.caps.as_ref().unwrap();
        assert_eq!(c.drop.len(), 40);
        assert!(!c.drop.contains(&10) && c.drop.contains(&0) && c.drop.contains(&40));
        let bit = CapData {
            effective: 1 << 10,
            permitted: 1 << 10,
            inheritable: 1 << 10,
        };
        assert_eq!(c.sets, [bit, CapData::default()]);
        assert!(c.keep_across_setuid);
        assert_eq!(c.ambient, [10]);
        assert_eq!(p.groups, Some(vec![65534, 100]));
        assert_eq!(
            (p.uid, p.gid, p.no_new_privs),
            (Some(65534), Some(65534), true)
        );
    }

    #[test]
    fn root_keeps_caps_without_ambient_or_keepcaps() {
        let w = Wanted {
            uid: None,
            capabilities: Some(&[0, 38]),
            ..Wanted::default()
        };
        let c = prepare(&w, 40).caps.unwrap();
        assert!(!c.keep_across_setuid && c.ambient.is_empty());
        assert_eq!(c.sets[0].permitted, 1);
        assert_eq!(c.sets[1].permitted, 1 << 6);
        assert_eq!(c.drop.len(), 39);
    }

    #[test]
    fn capabilities_above_the_kernels_last_are_ignored() {
        let w = Wanted {
            uid: Some(1000),
            capabilities: Some(&[41]),
            ..Wanted::default()
        };
        let c = prepare(&w, 40).caps.unwrap();
        // Nothing this kernel has is kept: no keep-caps, no ambient.
        assert_eq!(c.drop.len(), 41);
        assert!(!c.keep_across_setuid && c.ambient.is_empty());
        assert_eq!(c.sets, [CapData::default(); 2]);
    }

    #[test]
    fn no_capabilities_leaves_them_alone() {
        let p = prepare(&Wanted::default(), 40);
        assert_eq!(p.caps, None);
        // No identity change: root's groups stay too.
        assert_eq!(p.groups, None);
    }

    #[test]
    fn groups_default_to_the_gid() {
        let w = Wanted {
            gid: Some(7),
            ..Wanted::default()
        };
        assert_eq!(prepare(&w, 40).groups, Some(vec![7]));
        let w = Wanted {
            uid: Some(7),
            ..Wanted::default()
        };
        assert_eq!(prepare(&w, 40).groups, Some(vec![]));
        let w = Wanted {
            groups: &[3],
            ..Wanted::default()
        };
        assert_eq!(prepare(&w, 40).groups, Some(vec![3]));
    }

    /// The plan applied for real, in a child cloned from this
    /// multi-threaded test runner (the case `apply` is written for): the
    /// child reports through a pipe what it became. Needs root.
    #[test]
    fn apply_in_a_cloned_child() {
        use crate::sandbox::clone::{Forked, clone3};
        use std::os::fd::AsRawFd;
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let w = Wanted {
            uid: Some(65534),
            gid: Some(65534),
            groups: &[65534],
            capabilities: Some(&[10]),
            no_new_privs: true,
        };
        let plan = prepare(&w, cap_last_cap());
        let (r, wr) = rustix::pipe::pipe().unwrap();
        // SAFETY: the child makes only raw syscalls on `plan` and `out`
        // (built before the clone or on its own stack), then `_exit`s.
        match unsafe { clone3(0, None) }.unwrap() {
            Forked::Child => {
                let mut out = [0u32; 7];
                // SAFETY: raw syscalls on our own process and on buffers on
                // this stack; `_exit` runs no destructor.
                unsafe {
                    match apply(&plan) {
                        Err((step, errno)) => {
                            out[0] = u32::MAX;
                            out[1] = step as u32;
                            out[2] = errno.cast_unsigned();
                        }
                        Ok(()) => {
                            let header = CapHeader {
                                version: LINUX_CAPABILITY_VERSION_3,
                                pid: 0,
                            };
                            let mut data = [CapData::default(); 2];
                            libc::syscall(libc::SYS_capget, &raw const header, data.as_mut_ptr());
                            out[0] = libc::getuid();
                            out[1] = libc::getgid();
                            out[2] = data[0].effective;
                            out[3] = data[0].permitted;
                            out[4] = data[0].inheritable;
                            let amb = libc::prctl(
                                libc::PR_CAP_AMBIENT,
                                ONE, // PR_CAP_AMBIENT_IS_SET
                                10 as libc::c_ulong,
                                ZERO,
                                ZERO,
                            );
                            out[5] = amb.cast_unsigned();
                            out[6] = libc::prctl(libc::PR_GET_NO_NEW_PRIVS, ZERO, ZERO, ZERO, ZERO)
                                .cast_unsigned();
                        }
                    }
                    libc::write(
                        wr.as_raw_fd(),
                        out.as_ptr().cast(),
                        std::mem::size_of_val(&out),
                    );
                    libc::_exit(0)
                }
            }
            Forked::Parent { pid, pidfd } => {
                drop(wr);
                let mut buf = [0u8; 28];
                let mut got = 0;
                while got < buf.len() {
                    match rustix::io::read(&r, &mut buf[got..]).unwrap() {
                        0 => break,
                        n => got += n,
                    }
                }
                let mut status = 0;
                // SAFETY: our own child; `status` is a valid out-pointer.
                unsafe { libc::waitpid(pid, &raw mut status, 0) };
                drop(pidfd);
                assert_eq!(got, 28);
                let word = |i: usize| u32::from_ne_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
                assert_ne!(word(0), u32::MAX, "step {} errno {}", word(1), word(2));
                assert_eq!((word(0), word(1)), (65534, 65534));
                // CAP_NET_BIND_SERVICE only, in E, P, I and ambient.
                assert_eq!((word(2), word(3), word(4)), (1 << 10, 1 << 10, 1 << 10));
                assert_eq!(word(5), 1, "ambient");
                assert_eq!(word(6), 1, "no_new_privs");
            }
        }
    }
}
