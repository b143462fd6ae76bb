//! Per-process limits of a child about to exec: rlimits, nice,
//! oom_score_adj and I/O priority. The service (forked by the init) and an
//! entered command (an exec health probe) both go through here.
//!
//! Two phases, as [`super::creds`]: [`prepare`] in the parent builds a
//! [`LimitPlan`] (the oom_score_adj text is rendered there: `-500` becomes
//! the bytes `b"-500"`), [`apply`] in the child makes raw syscalls on it and
//! allocates nothing.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::clone::last_errno;
use super::spec::{InitSpec, Step};

/// What the parent resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Wanted<'a> {
    /// (RLIMIT_* resource, soft, hard); `u64::MAX` is infinity.
    pub rlimits: &'a [(i32, u64, u64)],
    pub nice: Option<i32>,
    pub oom_score_adj: Option<i32>,
    /// (class, level) for ioprio_set.
    pub io_priority: Option<(u32, u32)>,
}

impl<'a> From<&'a InitSpec> for Wanted<'a> {
    fn from(spec: &'a InitSpec) -> Wanted<'a> {
        Wanted {
            rlimits: &spec.rlimits,
            nice: spec.nice,
            oom_score_adj: spec.oom_score_adj,
            io_priority: spec.io_priority,
        }
    }
}

/// Everything [`apply`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitPlan {
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    pub nice: Option<i32>,
    /// `<proc>/self/oom_score_adj` and the text written to it.
    pub oom_score_adj: Option<(CString, Vec<u8>)>,
    /// `class << 13 | level`, as ioprio_set takes it (IOPRIO_PRIO_VALUE).
    pub io_priority: Option<i64>,
}

/// `ioprio_set`'s `which`: one process.
const IOPRIO_WHO_PROCESS: libc::c_long = 1;

/// The plan for `w`; `proc` is where procfs is mounted in the child (`/proc`).
/// Fails only on a `proc` path with a NUL byte.
pub fn prepare(w: &Wanted<'_>, proc: &Path) -> Result<LimitPlan, (Step, i32)> {
    let oom_score_adj = match w.oom_score_adj {
        Some(adj) => {
            let path = proc.join("self/oom_score_adj");
            let path = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| (Step::OomScoreAdj, libc::EINVAL))?;
            Some((path, adj.to_string().into_bytes()))
        }
        None => None,
    };
    Ok(LimitPlan {
        rlimits: w
            .rlimits
            .iter()
            .map(|&(res, soft, hard)| {
                (
                    res.cast_unsigned(),
                    libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    },
                )
            })
            .collect(),
        nice: w.nice,
        oom_score_adj,
        io_priority: w
            .io_priority
            .map(|(class, level)| i64::from((class << 13) | level)),
    })
}

/// Applies `plan` to the calling process: rlimits, nice, oom_score_adj, I/O
/// priority, in that order. No allocation, no lock.
pub fn apply(plan: &LimitPlan) -> Result<(), (Step, i32)> {
    let fail = |step: Step| (step, last_errno());
    // SAFETY: for the whole block: plain syscalls on our own process with
    // integers or pointers into `plan` (a valid rlimit, a NUL-terminated
    // path, a byte buffer of the length given), which outlives the block.
    unsafe {
        for (res, lim) in &plan.rlimits {
            if libc::setrlimit(*res, lim) != 0 {
                return Err(fail(Step::Rlimit));
            }
        }
        if let Some(n) = plan.nice
            && libc::setpriority(libc::PRIO_PROCESS, 0, n) != 0
        {
            return Err(fail(Step::Nice));
        }
        if let Some((path, text)) = &plan.oom_score_adj {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(fail(Step::OomScoreAdj));
            }
            let n = libc::write(fd, text.as_ptr().cast(), text.len());
            let written = usize::try_from(n).is_ok_and(|n| n == text.len());
            let err = (!written).then(|| if n < 0 { last_errno() } else { libc::EIO });
            libc::close(fd);
            if let Some(errno) = err {
                return Err((Step::OomScoreAdj, errno));
            }
        }
        if let Some(prio) = plan.io_priority
            && libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) != 0
        {
            return Err(fail(Step::IoPriority));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_limit() {
        let w = Wanted {
            rlimits: &[(libc::RLIMIT_NOFILE.cast_signed(), 1024, u64::MAX)],
            nice: Some(5),
            oom_score_adj: Some(-500),
            io_priority: Some((2, 7)),
        };
        let p = prepare(&w, Path::new("/proc")).unwrap();
        assert_eq!(p.rlimits.len(), 1);
        assert_eq!(p.rlimits[0].0, libc::RLIMIT_NOFILE);
        assert_eq!(
            (p.rlimits[0].1.rlim_cur, p.rlimits[0].1.rlim_max),
            (1024, u64::MAX)
        );
        assert_eq!(p.nice, Some(5));
        let (path, text) = p.oom_score_adj.unwrap();
        assert_eq!(path.as_bytes(), b"/proc/self/oom_score_adj");
        assert_eq!(text, b"-500");
        // best-effort (2) << 13 | 7
        assert_eq!(p.io_priority, Some(0x4007));
    }

    #[test]
    fn nothing_wanted_nothing_done() {
        let p = prepare(&Wanted::default(), Path::new("/proc")).unwrap();
        assert!(p.rlimits.is_empty());
        assert_eq!(
            (p.nice, &p.oom_score_adj, p.io_priority),
            (None, &None, None)
        );
        apply(&p).unwrap();
    }

    #[test]
    fn a_path_with_nul_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let w = Wanted {
            oom_score_adj: Some(0),
            ..Wanted::default()
        };
        let proc = Path::new(std::ffi::OsStr::from_bytes(b"/pr\0c"));
        assert_eq!(prepare(&w, proc), Err((Step::OomScoreAdj, libc::EINVAL)));
    }
}
