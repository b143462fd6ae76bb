//! Network interface flags.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// `ip link set <name> up`: SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP,
/// through `sock`, any socket of the network namespace. EINVAL for a name
/// too long for `ifr_name` (IFNAMSIZ with its NUL).
pub fn link_up(sock: impl AsFd, name: &[u8]) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    let fd = sock.as_fd().as_raw_fd();
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write the ifreq we pass,
    // which lives across both calls; `fd` is an open socket borrowed for the
    // call. The union's `ifru_flags` is the member those two requests use.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
        let up = libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
        ifr.ifr_ifru.ifru_flags |= up;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw const ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
