//! The cgroup v2 layer against a real kernel (scripts/vm-test). Each test
//! checks enforcement the way the kernel's own selftests do: the workload is
//! refused or killed, and the kernel's counters say so.

// Test helpers below panic on purpose: a failed step fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bulkhead::cgroup::events::{FileWatch, PsiTrigger};
use bulkhead::cgroup::limits::{self, DevNum};
use bulkhead::cgroup::{self, kill, subtree};
use bulkhead::config::schema::Stall;
use bulkhead::config::units::{Cpu, Dur, Size};
use bulkhead::config::{IoDevice, Resources};
use common::{
    TestCgroup, cgroup2_with_controllers, null_blk, poll_until, spawn_workload, wait_until,
};

fn start(cg: &Path, args: &[&str]) -> Child {
    spawn_workload(cg, args, Stdio::piped(), Stdio::piped())
}

/// Runs a workload to its end. A watchdog kills it after 5 minutes, so a
/// hung workload fails its test instead of stalling the whole VM run.
fn run(cg: &Path, args: &[&str]) -> Output {
    let child = start(cg, args);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let ended = poll_until(Duration::from_secs(300), || {
                done.load(std::sync::atomic::Ordering::SeqCst)
            });
            if ended.is_err() {
                eprintln!("workload {pid} still running after 300s: killing it");
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watchdog.join();
    println!(
        "workload {args:?}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One `key value` counter of a flat-keyed file (memory.events, pids.events, cpu.stat).
fn counter(dir: &Path, file: &str, key: &str) -> u64 {
    let text = cgroup::read(dir, file).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix(' '))
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {key} in {file}: {text}"))
}

fn resources(f: impl FnOnce(&mut Resources)) -> Resources {
    let mut r = Resources::default();
    r.cpu.period = Dur::millis(100);
    f(&mut r);
    r
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn pids_max_refuses_fork_with_eagain() {
    let cg = TestCgroup::new("pids-max");
    limits::apply(&cg.dir, &resources(|r| r.pids_max = Some(16)), &[]).unwrap();
    let out = run(&cg.dir, &["forks", "100"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the fork loop was never refused"
    );
    assert!(
        stdout.contains("errno Some(11)"),
        "refusal was not EAGAIN: {stdout}"
    );
    assert!(
        counter(&cg.dir, "pids.events", "max") >= 1,
        "pids.events max did not count the refusal"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn memory_max_oom_kills_and_the_event_source_wakes() {
    let cg = TestCgroup::new("memory-max");
    let r = resources(|r| {
        r.memory.max = Some(Size::Bytes(64 << 20));
        r.memory.swap_max = Some(Size::Bytes(0));
        r.memory.oom_group = true;
    });
    limits::apply(&cg.dir, &r, &[]).unwrap();
    let events = cg.dir.join("memory.events");
    let mut watch = FileWatch::new().unwrap();
    watch.add(&events).unwrap();
    let before = counter(&cg.dir, "memory.events", "oom_kill");

    let out = run(&cg.dir, &["alloc", "200"]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "a 200 MiB allocation under memory.max 64M was not OOM-killed"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("in total"),
        "allocation completed"
    );
    assert!(
        counter(&cg.dir, "memory.events", "oom_kill") > before,
        "memory.events oom_kill did not increase"
    );
    let woke = watch.wait(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        woke,
        vec![events],
        "the inotify event source did not wake on memory.events"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn cpu_max_throttles_a_spinner_to_its_quota() {
    let cg = TestCgroup::new("cpu-max");
    limits::apply(
        &cg.dir,
        &resources(|r| r.cpu.max = Some(Cpu::Millicores(200))),
        &[],
    )
    .unwrap();
    assert_eq!(
        cgroup::read(&cg.dir, "cpu.max").unwrap().trim(),
        "20000 100000"
    );
    let (t0, u0, n0) = (
        Instant::now(),
        counter(&cg.dir, "cpu.stat", "usage_usec"),
        counter(&cg.dir, "cpu.stat", "nr_throttled"),
    );
    let out = run(&cg.dir, &["spin", "6"]);
    assert!(out.status.success());
    let elapsed = t0.elapsed().as_micros() as f64;
    let used = (counter(&cg.dir, "cpu.stat", "usage_usec") - u0) as f64;
    let throttled = counter(&cg.dir, "cpu.stat", "nr_throttled") - n0;
    let share = used / elapsed;
    println!(
        "cpu share {share:.3} of one cpu over {:.1}s, nr_throttled +{throttled}",
        elapsed / 1e6
    );
    assert!(throttled > 10, "nr_throttled grew only by {throttled}");
    // 20% of one CPU, with a generous tolerance for emulation.
    assert!(
        (0.08..=0.32).contains(&share),
        "used {share:.3} of a cpu under a 20% quota"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn io_max_holds_direct_writes_to_the_rate() {
    let dev = limits::device_number(null_blk()).unwrap();
    let cg = TestCgroup::new("io-max");
    let r = resources(|r| {
        r.io.devices.push(IoDevice {
            device: "/dev/nullb0".into(),
            read_bps: None,
            write_bps: Some(Size::Bytes(1 << 20)),
            read_iops: None,
            write_iops: None,
        })
    });
    limits::apply(&cg.dir, &r, &[dev]).unwrap();
    println!(
        "io.max: {}",
        cgroup::read(&cg.dir, "io.max").unwrap().trim()
    );
    let t0 = Instant::now();
    let out = run(&cg.dir, &["write-direct", "/dev/nullb0", "6"]);
    assert!(out.status.success());
    let elapsed = t0.elapsed().as_secs_f64();
    let wbytes = io_stat_wbytes(&cg.dir, dev);
    let rate = wbytes as f64 / elapsed / f64::from(1 << 20);
    println!("wrote {wbytes} bytes in {elapsed:.2}s: {rate:.2} MiB/s under wbps=1MiB/s");
    assert!(wbytes >= 6 << 20, "io.stat counted only {wbytes} bytes");
    assert!(
        (0.5..=1.6).contains(&rate),
        "write rate {rate:.2} MiB/s is not about 1 MiB/s"
    );
}

fn io_stat_wbytes(dir: &Path, dev: DevNum) -> u64 {
    let text = cgroup::read(dir, "io.stat").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{dev} ")))
        .unwrap_or_else(|| panic!("no {dev} in io.stat: {text}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("wbytes="))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn psi_trigger_fires_when_squeezed_under_memory_high() {
    let cg = TestCgroup::new("psi");
    limits::apply(
        &cg.dir,
        &resources(|r| r.memory.high = Some(Size::Bytes(32 << 20))),
        &[],
    )
    .unwrap();
    let trigger = PsiTrigger::new(
        &cg.dir.join("memory.pressure"),
        Stall::Some,
        Duration::from_millis(50),
        Duration::from_secs(1),
    )
    .unwrap();
    let mut child = start(&cg.dir, &["squeeze", "96", "60"]);
    let t0 = Instant::now();
    let fired = trigger.wait(Some(Duration::from_secs(60))).unwrap();
    println!(
        "trigger {:?} fired={fired} after {:.1}s; memory.pressure:\n{}",
        trigger.spec,
        t0.elapsed().as_secs_f64(),
        cgroup::read(&cg.dir, "memory.pressure").unwrap()
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(fired, "no PSI trigger under memory.high");
    assert!(
        counter(&cg.dir, "memory.events", "high") > 0,
        "memory.events high did not count"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn cgroup_kill_ends_a_forking_cgroup_and_removal_follows() {
    let cg = TestCgroup::new("kill");
    let mut child = start(&cg.dir, &["forkloop"]);
    wait_until("forkloop's sleepers", Duration::from_secs(30), || {
        pids_current(&cg.dir) > 4
    });
    kill::kill(&cg.dir).unwrap();
    assert!(
        kill::wait_state(&cg.dir, Duration::from_secs(20), |s| !s.populated).unwrap(),
        "still populated after cgroup.kill"
    );
    let _ = child.wait();
    kill::remove_killing(&cg.dir, Duration::from_secs(10)).unwrap();
    assert!(!cg.dir.exists());

    // Removing a cgroup that still has processes: killed, waited for, removed.
    let cg2 = TestCgroup::new("remove-populated");
    let mut sleeper = start(&cg2.dir, &["sleep", "600"]);
    wait_until("the sleeper to join", Duration::from_secs(10), || {
        pids_current(&cg2.dir) >= 1
    });
    kill::remove_killing(&cg2.dir, Duration::from_secs(10)).unwrap();
    assert!(!cg2.dir.exists());
    let _ = sleeper.wait();
}

fn pids_current(dir: &Path) -> u64 {
    cgroup::read(dir, "pids.current")
        .map(|t| t.trim().parse().unwrap_or(0))
        .unwrap_or(0)
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn raising_pids_max_live_unblocks_a_fork_loop() {
    let cg = TestCgroup::new("pids-live");
    limits::apply(&cg.dir, &resources(|r| r.pids_max = Some(8)), &[]).unwrap();
    let mut child = start(&cg.dir, &["forks", "20", "--retry"]);
    wait_until("pids.events max", Duration::from_secs(30), || {
        counter(&cg.dir, "pids.events", "max") > 0
    });
    assert!(pids_current(&cg.dir) <= 8);
    assert!(child.try_wait().unwrap().is_none(), "the fork loop gave up");
    limits::apply(&cg.dir, &resources(|r| r.pids_max = Some(64)), &[]).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("spawned 20 children"),
        "did not continue after the raise: {stdout}"
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn subtree_setup_moves_the_daemon_and_creates_instances() {
    let mount = cgroup2_with_controllers();
    let root = mount.join("bulkhead-subtree-test");
    let mut daemon = Command::new("/bin/sleep").arg("600").spawn().unwrap();
    let tree = subtree::setup(
        &mount,
        &root,
        cgroup::REQUIRED_CONTROLLERS,
        Some(daemon.id()),
    )
    .unwrap();
    let procs = cgroup::read(&tree.supervisor_dir(), "cgroup.procs").unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == daemon.id().to_string()),
        "daemon not in supervisor: {procs}"
    );
    let leaf = tree
        .create_instance(Some("grp"), "svc", "0", cgroup::REQUIRED_CONTROLLERS)
        .unwrap();
    assert_eq!(leaf, root.join("grp/svc/0"));
    // The leaf got every controller through the path.
    for f in ["cpu.max", "memory.max", "io.max", "pids.max"] {
        assert!(leaf.join(f).exists(), "{f} missing in the instance cgroup");
    }
    // A second setup finds everything in place.
    subtree::setup(&mount, &root, cgroup::REQUIRED_CONTROLLERS, None).unwrap();
    // Freezing really stops the tasks, and thaws.
    kill::freeze(&tree.supervisor_dir(), Duration::from_secs(10)).unwrap();
    assert!(kill::state(&tree.supervisor_dir()).unwrap().frozen);
    kill::thaw(&tree.supervisor_dir()).unwrap();
    assert!(
        kill::wait_state(&tree.supervisor_dir(), Duration::from_secs(10), |s| !s
            .frozen)
        .unwrap()
    );
    // Stale listing and recursive removal.
    assert_eq!(
        kill::stale(&root, &[]).unwrap(),
        vec![
            root.join("grp/svc/0"),
            root.join("grp/svc"),
            root.join("grp")
        ]
    );
    kill::remove_tree(&root, Duration::from_secs(10)).unwrap();
    assert!(!root.exists());
    let _ = daemon.wait();
}
