//! The setup steps of a compartment and their wire form: a failed step
//! comes back to the parent as a fixed 8-byte record (step, errno) over a
//! close-on-exec pipe, written by the child just before it `_exit`s.
//!
//! The steps live here, beside the child routines that report them; their
//! names and suggestions for people are in `sandbox::spec`.

use std::os::fd::RawFd;

/// A setup step, in the order the child runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Pdeathsig = 1,
    JoinCgroup,
    ExecInit,
    ReadSpec,
    StatusFile,
    LogFile,
    MountPrivate,
    MountProc,
    MountReadOnly,
    MountReadWrite,
    MountTmpfs,
    MountInaccessible,
    Hostname,
    Fork,
    Signals,
    Stdio,
    Rlimit,
    Nice,
    OomScoreAdj,
    IoPriority,
    Chdir,
    Setgroups,
    Setgid,
    CapBounding,
    KeepCaps,
    Setuid,
    Capabilities,
    AmbientCaps,
    NoNewPrivs,
    CloseFds,
    Seccomp,
    Exec,
    // Entering a running compartment (a health probe, `enter.rs`).
    EnterNet,
    EnterIpc,
    EnterUts,
    EnterMount,
    Setsid,
    Loopback,
    // The walls (`protect`), each named for the setting that relaxes it.
    ProtectSystem,
    ProtectHome,
    ProtectTmp,
    ProtectDevices,
    ProtectKernel,
    ProtectCgroups,
    ProtectProc,
    HideBulkhead,
    DropInit,
    ServiceDirs,
}

impl Step {
    pub const ALL: [Step; 48] = [
        Step::Pdeathsig,
        Step::JoinCgroup,
        Step::ExecInit,
        Step::ReadSpec,
        Step::StatusFile,
        Step::LogFile,
        Step::MountPrivate,
        Step::MountProc,
        Step::MountReadOnly,
        Step::MountReadWrite,
        Step::MountTmpfs,
        Step::MountInaccessible,
        Step::Hostname,
        Step::Fork,
        Step::Signals,
        Step::Stdio,
        Step::Rlimit,
        Step::Nice,
        Step::OomScoreAdj,
        Step::IoPriority,
        Step::Chdir,
        Step::Setgroups,
        Step::Setgid,
        Step::CapBounding,
        Step::KeepCaps,
        Step::Setuid,
        Step::Capabilities,
        Step::AmbientCaps,
        Step::NoNewPrivs,
        Step::CloseFds,
        Step::Seccomp,
        Step::Exec,
        Step::EnterNet,
        Step::EnterIpc,
        Step::EnterUts,
        Step::EnterMount,
        Step::Setsid,
        Step::Loopback,
        Step::ProtectSystem,
        Step::ProtectHome,
        Step::ProtectTmp,
        Step::ProtectDevices,
        Step::ProtectKernel,
        Step::ProtectCgroups,
        Step::ProtectProc,
        Step::HideBulkhead,
        Step::DropInit,
        Step::ServiceDirs,
    ];

    pub fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

/// The wire form of a failed step: step and errno, little-endian u32/i32.
pub fn encode_failure(step: Step, errno: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(step as u32).to_le_bytes());
    b[4..].copy_from_slice(&errno.to_le_bytes());
    b
}

pub fn decode_failure(b: &[u8]) -> Option<(Step, i32)> {
    let step = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
    let errno = i32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    Some((Step::from_u32(step)?, errno))
}

/// Writes the failure record of `step` with `errno` to the descriptor
/// numbered `fd` and ends the process at once with status 127, running no
/// destructor and no exit handler.
///
/// Contract: `fd` is the number of the error pipe the parent arranged (the
/// init's fd 4, a cloned child's copy of the pipe). Whatever the number
/// names, the call is memory-safe: the kernel only reads the 8-byte record;
/// a closed number makes the write fail, which is ignored. Async-signal-safe
/// (two raw syscalls, no allocation), so a cloned child may call it.
pub fn report_and_exit(fd: RawFd, step: Step, errno: i32) -> ! {
    let rec = encode_failure(step, errno);
    // SAFETY: write(2) reads `rec.len()` bytes from `rec`, a live stack
    // buffer; _exit(2) never returns and runs nothing of this process.
    unsafe {
        libc::write(fd, rec.as_ptr().cast(), rec.len());
        libc::_exit(127)
    }
}
