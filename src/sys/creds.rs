//! Applying a credential plan (`sandbox::creds` builds it): bounding set,
//! keep-caps, groups, gid, uid, capability sets, ambient capabilities,
//! no_new_privs, in the order `sandbox::creds` explains.
//!
//! Raw syscalls only, no allocation, no lock: sound in the child of a
//! multi-threaded parent. glibc's setuid/setgid/setgroups wrappers are
//! avoided on purpose: they signal every thread glibc believes exists, and
//! such a child has one.

use super::last_errno;
use super::step::Step;

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

/// Everything [`apply`] does, as integers and arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredPlan {
    pub caps: Option<CapPlan>,
    pub groups: Option<Vec<libc::gid_t>>,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub no_new_privs: bool,
}

/// Applies `plan` to the calling process (all its credentials, whatever
/// glibc thinks of its threads). Returns the step that failed and its
/// errno. Async-signal-safe: a cloned child may call it.
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

/// What a child became after [`apply`], as [`applied_in_a_clone`] saw it.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Became {
    pub uid: u32,
    pub gid: u32,
    /// capget's first word (capabilities 0-31).
    pub caps: CapData,
    /// PR_CAP_AMBIENT_IS_SET for the capability asked about.
    pub ambient: i32,
    /// PR_GET_NO_NEW_PRIVS.
    pub no_new_privs: i32,
}

/// Applies `plan` for real in a child cloned from this multi-threaded test
/// runner (the case [`apply`] is written for) and returns what the child
/// became, read back through a pipe, or the step that failed. Asks the
/// ambient set about `ambient_cap`. Needs root to change identity.
#[cfg(test)]
pub fn applied_in_a_clone(
    plan: &CredPlan,
    ambient_cap: libc::c_ulong,
) -> std::io::Result<Result<Became, (u32, i32)>> {
    use std::os::fd::AsRawFd;
    let (r, wr) = rustix::pipe::pipe()?;
    let wr_fd = wr.as_raw_fd();
    let run = move || {
        let mut out = [0u32; 7];
        match apply(plan) {
            Err((step, errno)) => {
                out[0] = u32::MAX;
                out[1] = step as u32;
                out[2] = errno.cast_unsigned();
            }
            // SAFETY: raw syscalls on our own process, with pointers to
            // buffers on this stack that outlive each call.
            Ok(()) => unsafe {
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
                // PR_CAP_AMBIENT_IS_SET is 1.
                let amb = libc::prctl(libc::PR_CAP_AMBIENT, ONE, ambient_cap, ZERO, ZERO);
                out[5] = amb.cast_unsigned();
                out[6] =
                    libc::prctl(libc::PR_GET_NO_NEW_PRIVS, ZERO, ZERO, ZERO, ZERO).cast_unsigned();
            },
        }
        // SAFETY: write reads `out`, a live stack buffer of the size given;
        // _exit runs no destructor.
        unsafe {
            libc::write(wr_fd, out.as_ptr().cast(), std::mem::size_of_val(&out));
            libc::_exit(0)
        }
    };
    // SAFETY: `run` makes raw syscalls only, on `plan` (built before the
    // clone) and on its own stack, then _exits.
    let (pid, pidfd) = unsafe { super::child::clone_and_run(0, None, run) }?;
    let status = super::child::wait_raw(pid)?;
    drop((wr, pidfd));
    let mut buf = [0u8; 28];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&r, &mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    if got != buf.len() {
        return Err(std::io::Error::other(format!(
            "the child wrote {got} bytes, status {status:#x}"
        )));
    }
    let word =
        |i: usize| u32::from_ne_bytes([buf[i * 4], buf[i * 4 + 1], buf[i * 4 + 2], buf[i * 4 + 3]]);
    if word(0) == u32::MAX {
        return Ok(Err((word(1), word(2).cast_signed())));
    }
    Ok(Ok(Became {
        uid: word(0),
        gid: word(1),
        caps: CapData {
            effective: word(2),
            permitted: word(3),
            inheritable: word(4),
        },
        ambient: word(5).cast_signed(),
        no_new_privs: word(6).cast_signed(),
    }))
}
