//! bpf(2), for the cgroup device program: load, attach, query, detach.
//! Each command has a typed function that fills its `union bpf_attr` itself,
//! so no caller ever hands the kernel an address.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg and src_reg, 4 bits each (a C bit-field: which half holds
    /// which follows the byte order).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// Every `union bpf_attr` passed is this long, zero past the fields set.
/// The kernel accepts a longer attr when the bytes it does not know are
/// zero, and some commands write fields past the ones bulkhead sets
/// (BPF_PROG_QUERY writes `revision` since Linux 6.6), so the buffer must
/// cover the whole union, which is well under this today.
const ATTR_SIZE: usize = 256;

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    tail: [u8; ATTR_SIZE - 72],
}

/// `union bpf_attr` for BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    tail: [u8; ATTR_SIZE - 20],
}

/// `union bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    tail: [u8; ATTR_SIZE - 28],
}

/// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
struct IdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
    tail: [u8; ATTR_SIZE - 12],
}

/// The attrs [`bpf`] may pass: `repr(C)`, fully initialised, `ATTR_SIZE`
/// bytes.
trait Attr {}
impl Attr for LoadAttr {}
impl Attr for AttachAttr {}
impl Attr for QueryAttr {}
impl Attr for IdAttr {}

const _: () = {
    assert!(std::mem::size_of::<LoadAttr>() == ATTR_SIZE);
    assert!(std::mem::size_of::<AttachAttr>() == ATTR_SIZE);
    assert!(std::mem::size_of::<QueryAttr>() == ATTR_SIZE);
    assert!(std::mem::size_of::<IdAttr>() == ATTR_SIZE);
};

/// bpf(2): the result (a new fd for LOAD and GET_FD_BY_ID, else 0) or errno.
fn bpf<A: Attr>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is one of the attr structs above (the sealed `Attr`
    // trait): repr(C), initialised, exactly ATTR_SIZE bytes, and the size
    // passed is that size, so the kernel reads and writes only inside it.
    // Pointers inside it (instructions, license, log and id buffers) are set
    // by the callers to buffers that outlive this call, with the lengths
    // given beside them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<A>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of the fd a bpf(2) command returned.
fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: BPF_PROG_LOAD and BPF_PROG_GET_FD_BY_ID return a new file
    // descriptor (O_CLOEXEC) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: &impl AsRawFd) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}

/// The pointer as the `__aligned_u64` bpf(2) wants.
fn addr<T>(p: *const T) -> u64 {
    p.addr() as u64
}

/// BPF_PROG_LOAD of `insns` as a program of `prog_type`, named `name`
/// (NUL-padded), under `license`. With `log`, the verifier writes its log
/// there (log level 1); ENOSPC then means the log was cut.
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    license: &CStr,
    name: [u8; 16],
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (
            1,
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            addr(buf.as_mut_ptr()),
        ),
        None => (0, 0, 0),
    };
    let mut attr = LoadAttr {
        prog_type,
        insn_cnt,
        insns: addr(insns.as_ptr()),
        license: addr(license.as_ptr()),
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: 0,
        tail: [0; ATTR_SIZE - 72],
    };
    owned(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// BPF_PROG_QUERY: the ids of the programs of `attach_type` attached to
/// `target` itself, written to `ids`; returns how many there are. When they
/// do not fit (ENOSPC) the error comes with that count.
pub fn prog_query(
    target: BorrowedFd<'_>,
    attach_type: u32,
    ids: &mut [u32],
) -> Result<u32, (io::Error, u32)> {
    let mut attr = QueryAttr {
        target_fd: fd_u32(&target).map_err(|e| (e, 0))?,
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: addr(ids.as_mut_ptr()),
        prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        tail: [0; ATTR_SIZE - 28],
    };
    match bpf(BPF_PROG_QUERY, &mut attr) {
        Ok(_) => Ok(attr.prog_cnt),
        Err(e) => Err((e, attr.prog_cnt)),
    }
}

/// BPF_PROG_GET_FD_BY_ID: a descriptor for the loaded program `id`.
pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = IdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
        tail: [0; ATTR_SIZE - 12],
    };
    owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// BPF_PROG_ATTACH of `prog` to `target` as `attach_type`, with `flags`
/// (BPF_F_ALLOW_MULTI ...).
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(&target)?,
        attach_bpf_fd: fd_u32(&prog)?,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
        tail: [0; ATTR_SIZE - 20],
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// BPF_PROG_DETACH of `prog` from `target`.
pub fn prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(&target)?,
        attach_bpf_fd: fd_u32(&prog)?,
        attach_type,
        attach_flags: 0,
        replace_bpf_fd: 0,
        tail: [0; ATTR_SIZE - 20],
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}
