//! Signal dispositions.

/// Sets every signal's disposition back to default (SIGKILL and SIGSTOP
/// have no other). For a process about to exec: exec keeps ignored signals
/// ignored, and a caller may have ignored SIGINT, SIGQUIT or SIGHUP (a
/// shell's background job, nohup); Rust's runtime ignores SIGPIPE. Handlers
/// installed by anything in this process (tokio's included) are gone too,
/// so call it only where none is wanted. glibc refuses to touch its own
/// internal signals (EINVAL), which is ignored, as is every other error.
pub fn reset_all_to_default() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition to default installs no
            // handler, so no code of ours runs on a signal.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}
