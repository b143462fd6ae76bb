//! The cgroup v2 device program against a real kernel (scripts/vm-test): a
//! process in a cgroup with bulkhead's program opens the minimal /dev, is
//! refused any other device with EPERM and cannot create a device node even
//! as root; an allow entry opens exactly what it names. Each refusal is
//! shown to succeed first without the program, so the test cannot pass on a
//! kernel that ignores it.

// Test helpers below panic on purpose: a failed step fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use bulkhead::sandbox::devices::{self, DevType};
use common::{TestCgroup, show};

/// Loads null_blk once: /dev/nullb0, a block device (254:0 here) that no
/// rule of the default list covers.
fn null_blk() -> (&'static Path, u32, u32) {
    let dev = common::null_blk();
    let (kind, major, minor) = devices::stat_device(dev).unwrap().unwrap();
    assert_eq!(kind, DevType::Block);
    (dev, major, minor)
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is
/// `procs` (writing "0" there moves the writer). Runs between fork and exec,
/// so it only makes raw syscalls on a path built before the fork.
fn join(procs: &CStr) -> io::Result<()> {
    // SAFETY: `procs` is a valid NUL-terminated path; open has no other
    // memory effect.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened; the buffer is one valid byte.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let err = io::Error::last_os_error();
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    if n == 1 { Ok(()) } else { Err(err) }
}

/// Runs `sh -c script` inside the cgroup `cg` (joined before exec, so the
/// shell itself is already confined) and prints what it did.
fn sh_in(cg: &Path, script: &str) -> Output {
    let procs = CString::new(cg.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script).env("LC_ALL", "C");
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are sound: `join` makes open, write and close
    // syscalls on a CString built before the fork, and neither allocates
    // nor takes a lock.
    unsafe { cmd.pre_exec(move || join(&procs)) };
    let out = cmd.output().unwrap();
    show(format_args!("sh -c {script:?} in {}", cg.display()), &out);
    out
}

fn assert_ok(cg: &Path, script: &str) -> String {
    let out = sh_in(cg, script);
    assert!(out.status.success(), "`{script}` failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_eperm(cg: &Path, script: &str) {
    let out = sh_in(cg, script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "`{script}` was allowed");
    assert!(
        stderr.contains("Operation not permitted"),
        "`{script}` failed, but not with EPERM: {stderr}"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn device_program_default_list_denies_other_devices_and_mknod() {
    let (dev, major, minor) = null_blk();
    let nullb0 = dev.display().to_string();
    let cg = TestCgroup::new("devices-default");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display();

    // Without a program: the block device opens, and root may mknod (a
    // block node with nullb0's numbers, used again below).
    let here = assert_ok(&cg.dir, "cat /proc/self/cgroup");
    assert!(
        here.contains("devices-default"),
        "not in the cgroup: {here}"
    );
    assert_ok(&cg.dir, &format!("exec 3<{nullb0}"));
    assert_ok(&cg.dir, &format!("mknod {dir}/before b {major} {minor}"));
    assert_ok(&cg.dir, &format!("exec 3<{dir}/before"));

    assert!(devices::attached(&cg.dir).unwrap().is_empty());
    let fd = devices::attach(&cg.dir, &devices::program(&devices::default_allow())).unwrap();
    // The attachment holds the program, not the fd.
    drop(fd);
    assert_eq!(devices::attached(&cg.dir).unwrap().len(), 1);

    // The minimal /dev works, for reading and writing.
    let out = assert_ok(
        &cg.dir,
        "exec 3<>/dev/null; echo x >/dev/null; head -c 8 /dev/zero | wc -c; head -c 8 /dev/urandom | wc -c",
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["8", "8"]);

    // Anything else is refused, by number, whatever the path.
    assert_eperm(&cg.dir, &format!("exec 3<{nullb0}"));
    assert_eperm(&cg.dir, &format!("exec 3<{dir}/before"));
    // mknod is refused even as root and even for /dev/null's numbers.
    assert_eperm(&cg.dir, &format!("mknod {dir}/null c 1 3"));
    assert!(!tmp.path().join("null").exists());

    // Outside the cgroup, nothing changed.
    let out = Command::new("/bin/sh")
        .args(["-c", &format!("exec 3<{nullb0}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "the program leaked out of its cgroup");
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn device_program_allow_entry_opens_the_device_and_attach_replaces() {
    let nullb0 = null_blk().0.display().to_string();
    let cg = TestCgroup::new("devices-allow");

    let first = devices::attach(&cg.dir, &devices::program(&devices::default_allow())).unwrap();
    drop(first);
    let before = devices::attached(&cg.dir).unwrap();
    assert_eq!(before.len(), 1);
    assert_eperm(&cg.dir, &format!("exec 3<{nullb0}"));

    // Attach again with a read entry for the block device, by path.
    let mut rules = devices::default_allow();
    let entry = devices::parse_allow(&format!("{nullb0} r")).unwrap();
    println!("{nullb0} r -> {entry}");
    rules.push(entry);
    devices::attach(&cg.dir, &devices::program(&rules)).unwrap();

    // One program, the new one: the old would still refuse the read.
    let after = devices::attached(&cg.dir).unwrap();
    assert_eq!(after.len(), 1, "programs attached: {after:?}");
    assert_ne!(after, before);

    let out = assert_ok(&cg.dir, &format!("head -c 4096 {nullb0} | wc -c"));
    assert_eq!(out.trim(), "4096");
    // Read only: opening it for writing is still refused.
    assert_eperm(&cg.dir, &format!("exec 3<>{nullb0}"));
    assert_ok(&cg.dir, "exec 3<>/dev/null");
}
