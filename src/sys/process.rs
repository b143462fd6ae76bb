//! Forking a single-threaded process.

use std::io;

use nix::unistd::ForkResult;

/// How many threads this process has, from `/proc/self/stat` (field 20,
/// counted after the command name's closing parenthesis, which the name
/// itself may contain).
fn thread_count() -> io::Result<u64> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        "/proc/self/stat",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(&fd, &mut buf)?;
    drop(fd);
    parse_threads(&buf[..n]).ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))
}

/// `num_threads` from the text of `/proc/<pid>/stat`.
fn parse_threads(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // After ") ": state (field 3) is the first; num_threads is field 20.
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// fork(2), for a process with one thread (the init, a fresh exec): its
/// child is an ordinary process that may allocate and take locks. Checked,
/// not assumed: with more than one thread (or `/proc/self/stat` unreadable)
/// it forks nothing and fails with EAGAIN (or the read's error).
pub fn fork_single_threaded() -> io::Result<ForkResult> {
    match thread_count()? {
        1 => {}
        _ => return Err(io::Error::from_raw_os_error(libc::EAGAIN)),
    }
    // SAFETY: the process has one thread (checked just above, and only this
    // thread could have started another since), so the child inherits no
    // lock held by a thread it does not have.
    Ok(unsafe { nix::unistd::fork() }?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_from_stat() {
        let stat =
            b"1 (bulkhead-in) it) S 0 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5 1000 100";
        assert_eq!(parse_threads(stat), Some(1));
        assert_eq!(parse_threads(b"1 (x) S"), None);
        // This test runner has at least this thread.
        assert!(thread_count().unwrap() >= 1);
    }
}
