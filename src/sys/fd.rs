//! Descriptors a process inherits by arrangement, and close-on-exec.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers 0-63 claimed so far by [`claim_inherited`].
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// Takes ownership of descriptor `fd`, which this process inherited across
/// exec by arrangement with its parent (the init's spec pipe at 3 and error
/// pipe at 4). Makes no syscall: a number that is not open gives a
/// descriptor whose reads fail with EBADF, as the raw number would.
///
/// Each number can be claimed once per process (EBUSY after), so two owners
/// never close it twice. Contract: claim before this process opens anything
/// itself (first thing in `main`), so the number still names what was
/// inherited. Numbers above 63 are refused (EINVAL).
pub fn claim_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    let bit = u32::try_from(fd)
        .ok()
        .and_then(|n| 1u64.checked_shl(n))
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    if CLAIMED.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    // SAFETY: the number is claimed once per process (above), and by the
    // contract it names a descriptor inherited for this purpose that
    // nothing else in this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC) (Linux 5.11): every
/// descriptor from `first` up closes at the next exec. Closes nothing now,
/// so no owner loses its descriptor. Async-signal-safe.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC close_range only sets a flag on each
    // descriptor; it closes none and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_claimed_once() {
        // 63: far above what the test runner has open.
        let fd = claim_inherited(63).unwrap();
        assert_eq!(
            claim_inherited(63).unwrap_err().raw_os_error(),
            Some(libc::EBUSY)
        );
        // Not open: dropping it would close nothing; leak it instead, so
        // a debug build does not abort on EBADF.
        std::mem::forget(fd);
        assert_eq!(
            claim_inherited(64).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
