//! Per-process limits of a child about to exec: rlimits, nice,
//! oom_score_adj and I/O priority. The service (forked by the init) and an
//! entered command (an exec health probe) both go through here.
//!
//! Two phases, as [`super::creds`]: [`prepare`] in the parent builds a
//! [`LimitPlan`] (the oom_score_adj text is rendered there: `-500` becomes
//! the bytes `b"-500"`), [`apply`] (in `sys::limits`) in the child makes
//! raw syscalls on it and allocates nothing.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::spec::{InitSpec, Step};
pub use crate::sys::limits::{LimitPlan, apply};

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
