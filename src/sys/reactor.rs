//! Registering file descriptors with tokio's reactor.
//!
//! tokio's `AsyncFd::register` is `unsafe` because it cannot know that the
//! value it is given keeps one open descriptor for as long as it is
//! registered. An [`OwnedFd`] does, by construction, so registering one is
//! sound; this is the one place that says so.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registers `fd` with the current tokio runtime for `interest`.
/// Must be called inside a runtime.
pub fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    register_or_return(fd, interest).map_err(|(e, _)| e)
}

/// [`register`], giving the descriptor back when it cannot be registered,
/// so the caller can still use it another way.
pub fn register_or_return(
    fd: OwnedFd,
    interest: Interest,
) -> Result<AsyncFd<OwnedFd>, (io::Error, OwnedFd)> {
    // SAFETY: an OwnedFd is a valid, open descriptor that it alone closes, on
    // drop; AsRawFd on it always returns that same descriptor. The AsyncFd
    // takes ownership of it, so it stays open and unchanged for the whole
    // registration, which is what `register_with_interest` requires.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| {
        let (fd, err) = e.into_parts();
        (err, fd)
    })
}
