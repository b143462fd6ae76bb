//! Credentials of a child about to exec: supplementary groups, gid, uid,
//! capability sets and no_new_privs. The service (forked by the init) and
//! an entered command (an exec health probe) both go through here.
//!
//! Two phases, as nsjail's `user.cc` and `caps.cc` have them:
//! - [`prepare`] in the parent, where allocation is allowed: a [`CredPlan`]
//!   of plain integers and arrays, capability masks already computed;
//! - [`apply`] (in `sys::creds`) in the child: raw syscalls only, no allocation, no lock, so
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

use super::spec::InitSpec;
pub use crate::sys::creds::{CapData, CapPlan, CredPlan, apply};

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
        let became = crate::sys::creds::applied_in_a_clone(&plan, 10)
            .unwrap()
            .unwrap_or_else(|(step, errno)| panic!("step {step} errno {errno}"));
        assert_eq!((became.uid, became.gid), (65534, 65534));
        // CAP_NET_BIND_SERVICE only, in E, P, I and ambient.
        let bit = CapData {
            effective: 1 << 10,
            permitted: 1 << 10,
            inheritable: 1 << 10,
        };
        assert_eq!(became.caps, bit);
        assert_eq!(became.ambient, 1, "ambient");
        assert_eq!(became.no_new_privs, 1, "no_new_privs");
    }
}
