//! Helpers shared by the integration tests: the privileged (VM) ones and
//! the host ones (a fake daemon, captured kernel files).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

pub mod daemon;
pub mod fake;
pub mod inputs;
pub mod kernel;
pub mod prom;
pub mod wait;

// Not every test uses every one.
#[allow(unused_imports)]
pub use wait::{poll_every, poll_until, wait_until, wait_until_async};

/// The reason every privileged test carries in `#[ignore]`; `cargo test`
/// on the host lists it, `scripts/vm-test` runs them with `--ignored`.
pub const PRIVILEGED: &str =
    "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test";

/// The cgroup2 mount, asserting this is a host where cgroup v2 limits can be
/// proven: a privileged test run elsewhere fails loudly instead of passing.
pub fn cgroup2_with_controllers() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mount = bulkhead::cgroup::discover::cgroup2_mount(&mountinfo).expect("no cgroup2 mount");
    let offered = bulkhead::cgroup::controllers(&mount).expect("read cgroup.controllers");
    for c in bulkhead::cgroup::REQUIRED_CONTROLLERS {
        assert!(
            offered.iter().any(|o| o == c),
            "controller {c} missing in {} (offered: {offered:?}): run privileged tests with scripts/vm-test",
            mount.display()
        );
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged tests need root"
    );
    mount
}

/// A fresh cgroup directory for one test under `<mount>/bulkhead-test`,
/// with the required controllers enabled down to it. Removed on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
}

impl TestCgroup {
    pub fn new(name: &str) -> Self {
        let mount = cgroup2_with_controllers();
        let parent = mount.join("bulkhead-test");
        bulkhead::cgroup::enable_controllers(&mount, bulkhead::cgroup::REQUIRED_CONTROLLERS)
            .unwrap();
        bulkhead::cgroup::create(&parent).unwrap();
        bulkhead::cgroup::enable_controllers(&parent, bulkhead::cgroup::REQUIRED_CONTROLLERS)
            .unwrap();
        let dir = parent.join(name);
        bulkhead::cgroup::create(&dir).unwrap();
        TestCgroup { dir }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Best effort: kill what is left, then remove.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let _ = poll_until(std::time::Duration::from_secs(5), || {
            std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists()
        });
    }
}

/// Starts the [`workload`] example with `args`, joined to the cgroup `cg`
/// before it does anything.
pub fn spawn_workload(
    cg: &std::path::Path,
    args: &[&str],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> std::process::Child {
    std::process::Command::new(workload())
        .arg("--join")
        .arg(cg)
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// `/dev/nullb0`, a block device no test's rule covers, with `null_blk`
/// loaded first if it is not there yet (waits 10 s for the node).
pub fn null_blk() -> &'static std::path::Path {
    let dev = std::path::Path::new("/dev/nullb0");
    if !dev.exists() {
        let st = std::process::Command::new("modprobe")
            .args(["null_blk", "nr_devices=1"])
            .status()
            .unwrap();
        assert!(st.success(), "modprobe null_blk failed");
        wait_until(
            "/dev/nullb0 after modprobe",
            std::time::Duration::from_secs(10),
            || dev.exists(),
        );
    }
    dev
}

/// The `workload` example built beside the test binaries
/// (target/<profile>/examples): allocators, spinners, fork loops that join
/// a given cgroup first.
pub fn workload() -> PathBuf {
    // The VM guest copies it where every compartment can run it (a
    // checkout under /tmp or /root is hidden by the default walls).
    if let Some(w) = std::env::var_os("BULKHEAD_TEST_WORKLOAD") {
        return PathBuf::from(w);
    }
    let exe = std::env::current_exe().unwrap();
    let w = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/workload");
    assert!(
        w.exists(),
        "{} missing: build it with `cargo build --examples`",
        w.display()
    );
    w
}

/// Runs the bulkhead binary with `args` and prints what it did, so a
/// failing test shows the command's whole output.
pub fn bulkhead(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .output()
        .unwrap();
    show(format_args!("bulkhead {args:?}"), &out);
    out
}

/// Prints what the command `what` did: its status, stdout and stderr.
pub fn show(what: std::fmt::Arguments<'_>, out: &std::process::Output) {
    println!(
        "{what}: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bulkhead exec ARGS`.
/// A scratch directory a compartment can see: not under /tmp, which every
/// compartment gets a private one of (`protect.tmp`).
pub fn visible_tempdir() -> tempfile::TempDir {
    let base = std::path::Path::new("/run/bulkhead-tests");
    std::fs::create_dir_all(base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

pub fn exec(args: &[&str]) -> std::process::Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    bulkhead(&all)
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Host tests that spawn compartments need root, as CI has.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs as root)"
    );
}

/// The address-space cap [`bulkhead_bounded`] runs the binary under: a
/// hostile input that makes bulkhead allocate more fails the allocation
/// (the process aborts) instead of passing.
pub const BOUNDED_AS_BYTES: u64 = 256 << 20;

/// Runs the bulkhead binary with `args` under `RLIMIT_AS` of
/// [`BOUNDED_AS_BYTES`] (set by the shell's `ulimit -v`, so the test needs no
/// `unsafe`), with `stdin` as its input, and kills it after `secs`.
pub fn bulkhead_bounded(args: &[&str], stdin: &[u8], secs: u64) -> std::process::Output {
    use std::io::Write as _;
    let kib = BOUNDED_AS_BYTES / 1024;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec timeout -s KILL {secs} \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    // The output is what is being bounded: print its head only.
    let head = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned();
    println!(
        "bulkhead (bounded) {args:?}: {:?}, {} bytes out, {} bytes err\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout.len(),
        out.stderr.len(),
        head(&out.stdout),
        head(&out.stderr)
    );
    out
}
