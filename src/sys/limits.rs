//! Applying a limit plan (`sandbox::limits` builds it): rlimits, nice,
//! oom_score_adj, I/O priority, in that order. Raw syscalls on the plan's
//! memory, no allocation, no lock: a cloned child may call it.

use std::ffi::CString;

use super::last_errno;
use super::step::Step;

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

/// Applies `plan` to the calling process: rlimits, nice, oom_score_adj, I/O
/// priority, in that order. Returns the step that failed and its errno.
/// Async-signal-safe.
pub fn apply(plan: &LimitPlan) -> Result<(), (Step, i32)> {
    let fail = |step: Step| (step, last_errno());
    // SAFETY: for the whole block: plain syscalls on our own process with
    // integers or pointers into `plan` (a valid rlimit, a NUL-terminated
    // path, a byte buffer of the length given), which outlives the block.
    // The fd opened is ours and closed here.
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
