//! Mount attributes (the walls' read-only flips).

use std::ffi::CStr;
use std::io;

/// `struct mount_attr` (Linux 5.12).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// mount_setattr(2): sets (`rdonly`) or clears read-only on the mount at
/// `path` and, with `recursive`, every mount below it; other flags stay as
/// they are.
pub fn set_read_only(path: &CStr, rdonly: bool, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: if rdonly { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if rdonly { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr reads `attr` (valid, of the size passed) and the
    // NUL-terminated path; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
