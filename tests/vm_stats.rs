//! The stat parsers and the sampler against a real kernel (scripts/vm-test):
//! every file of a busy cgroup parses, and the counters move the way the
//! workloads make them move (throttling under cpu.max, memory charged, I/O
//! counted, populated 1 -> 0 after a kill, a removed cgroup reported gone).

// Test helpers below panic on purpose: a failed step fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use bulkhead::cgroup::limits::{self, DevNum};
use bulkhead::cgroup::sampler::{Sampler, Sweep};
use bulkhead::cgroup::stats::{StatFile, Stats};
use bulkhead::cgroup::{self, kill};
use bulkhead::config::Resources;
use bulkhead::config::units::{Cpu, Dur};
use common::{TestCgroup, poll_every, spawn_workload};

fn start(cg: &Path, args: &[&str]) -> Child {
    spawn_workload(cg, args, Stdio::null(), Stdio::inherit())
}

/// Sweeps until `pred` holds for the cgroup's stats; returns them.
fn sweep_until(
    sampler: &mut Sampler,
    dir: &Path,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Stats) -> bool,
) -> Stats {
    let mut last = None;
    poll_every(Duration::from_millis(200), timeout, || {
        let stats = only(&sampler.sweep(), dir);
        if pred(&stats) {
            return Some(stats);
        }
        last = Some(stats);
        None
    })
    .unwrap_or_else(|_| panic!("timed out waiting for {what}; last: {last:#?}"))
}

/// The one cgroup's stats, asserting every file read and parsed.
fn only(sweep: &Sweep<'_>, dir: &Path) -> Stats {
    let s = sweep.samples.iter().find(|s| s.dir == dir).unwrap();
    assert!(s.errors.is_empty(), "sample errors: {:?}", s.errors);
    s.stats.clone()
}

fn null_blk() -> DevNum {
    limits::device_number(common::null_blk()).unwrap()
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn stats_sampler_follows_a_throttled_spinner_and_an_allocator_until_removal() {
    let dev = null_blk();
    let cg = TestCgroup::new("stats");
    let mut r = Resources::default();
    r.cpu.period = Dur::millis(100);
    r.cpu.max = Some(Cpu::Millicores(200));
    limits::apply(&cg.dir, &r, &[]).unwrap();

    let mut sampler = Sampler::new(&StatFile::ALL);
    let id = sampler.add(&cg.dir).unwrap();
    let open = sampler.open_files(id);
    println!("open: {open:?}");
    // memory.peak (5.19) and pids.peak may be missing on other kernels.
    for f in StatFile::ALL {
        assert!(
            open.contains(&f) || matches!(f, StatFile::MemoryPeak | StatFile::PidsPeak),
            "{f} not opened"
        );
    }
    let s0 = only(&sampler.sweep(), &cg.dir);
    assert!(!s0.events.unwrap().populated);
    assert_eq!(s0.procs.as_deref(), Some(&[][..]));
    let t0 = s0.cpu.unwrap().throttling.expect("cpu controller counters");

    let mut spinner = start(&cg.dir, &["spin", "60"]);
    let mut squeezer = start(&cg.dir, &["squeeze", "32", "60"]);
    let st = start(&cg.dir, &["write-direct", "/dev/nullb0", "2"])
        .wait()
        .unwrap();
    assert!(st.success(), "write-direct failed");

    let busy = sweep_until(
        &mut sampler,
        &cg.dir,
        "throttling and 16 MiB of anonymous memory charged",
        Duration::from_secs(90),
        |s| {
            let thr = s.cpu.unwrap().throttling.unwrap();
            // anon, not memory.current: the latter also counts page tables
            // and slab, so it passes 16 MiB before anon does.
            thr.nr_throttled > t0.nr_throttled + 10
                && s.memory_stat.as_ref().is_some_and(|m| m.anon >= 16 << 20)
        },
    );
    println!("busy: {busy:#?}");
    let cpu = busy.cpu.unwrap();
    let thr = cpu.throttling.unwrap();
    assert!(cpu.usage_usec > s0.cpu.unwrap().usage_usec);
    assert!(thr.throttled_usec > t0.throttled_usec);
    assert!(thr.nr_periods >= thr.nr_throttled);
    assert!(busy.events.unwrap().populated);
    let memory_current = busy.memory_current.unwrap();
    let stat = busy.memory_stat.as_ref().unwrap();
    assert!(stat.anon >= 16 << 20, "anon {}", stat.anon);
    assert!(stat.anon <= memory_current);
    if let Some(peak) = busy.memory_peak {
        assert!(peak >= memory_current);
    }
    assert!(busy.memory_swap_current.is_some());
    assert_eq!(busy.memory_events.unwrap().oom_kill, 0);
    let procs = busy.procs.as_ref().unwrap();
    assert!(procs.len() >= 2, "procs {procs:?}");
    for p in [spinner.id(), squeezer.id()] {
        assert!(procs.contains(&p), "{p} not in {procs:?}");
    }
    let pids = busy.pids_current.unwrap();
    assert!((2..64).contains(&pids), "pids.current {pids}");
    if let Some(peak) = busy.pids_peak {
        assert!(peak >= pids);
    }
    assert_eq!(busy.pids_events.unwrap().max, 0);
    let io = busy.io.as_ref().unwrap();
    let nullb0 = io.get(dev).unwrap_or_else(|| panic!("no {dev} in {io:?}"));
    assert!(nullb0.wbytes >= 2 << 20 && nullb0.wios > 0, "{nullb0:?}");
    // A throttled spinner is runnable but not running: CPU pressure.
    assert!(busy.cpu_pressure.unwrap().some.total > 0);
    assert!(busy.memory_pressure.is_some() && busy.io_pressure.is_some());

    kill::kill(&cg.dir).unwrap();
    let empty = sweep_until(
        &mut sampler,
        &cg.dir,
        "populated 0",
        Duration::from_secs(30),
        |s| !s.events.unwrap().populated,
    );
    assert_eq!(empty.procs.as_deref(), Some(&[][..]));
    // populated drops when the tasks exit, but pids.current only when they
    // are reaped: until then the zombies are still charged.
    let _ = spinner.wait();
    let _ = squeezer.wait();
    let reaped = only(&sampler.sweep(), &cg.dir);
    assert_eq!(reaped.pids_current, Some(0));

    std::fs::remove_dir(&cg.dir).unwrap();
    let sweep = sampler.sweep();
    assert_eq!(sweep.gone.len(), 1);
    assert_eq!(
        (sweep.gone[0].id, sweep.gone[0].dir.as_path()),
        (id, cg.dir.as_path())
    );
    assert!(sweep.samples.is_empty());
    assert_eq!(sampler.open_count(), 0);
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn stats_sweep_over_many_cgroups_survives_removals() {
    let parent = TestCgroup::new("stats-many");
    cgroup::enable_controllers(&parent.dir, cgroup::REQUIRED_CONTROLLERS).unwrap();
    let files = [
        StatFile::CpuStat,
        StatFile::MemoryCurrent,
        StatFile::MemoryEvents,
        StatFile::MemoryPressure,
        StatFile::CgroupEvents,
    ];
    let mut sampler = Sampler::new(&files);
    let dirs: Vec<PathBuf> = (0..50)
        .map(|i| {
            let d = parent.dir.join(format!("cg{i:02}"));
            cgroup::create(&d).unwrap();
            sampler.add(&d).unwrap();
            d
        })
        .collect();
    assert_eq!(sampler.open_count(), 50 * files.len());
    let sweep = sampler.sweep();
    assert_eq!((sweep.samples.len(), sweep.reads), (50, 250));
    for s in sweep.samples {
        assert!(s.errors.is_empty(), "{}: {:?}", s.dir.display(), s.errors);
        assert!(s.stats.cpu.unwrap().throttling.is_some());
        assert!(s.stats.memory_events.is_some() && s.stats.memory_pressure.is_some());
    }
    let removed: Vec<&PathBuf> = dirs.iter().step_by(5).collect();
    for d in &removed {
        std::fs::remove_dir(d).unwrap();
    }
    let sweep = sampler.sweep();
    let mut gone: Vec<&Path> = sweep.gone.iter().map(|g| g.dir.as_path()).collect();
    gone.sort();
    assert_eq!(
        gone,
        removed.iter().map(|d| d.as_path()).collect::<Vec<_>>()
    );
    assert_eq!(sweep.samples.len(), 40);
    assert!(sweep.samples.iter().all(|s| s.errors.is_empty()));
    assert_eq!(sampler.sweep().reads, 40 * files.len());
    for d in dirs.iter().filter(|d| d.exists()) {
        std::fs::remove_dir(d).unwrap();
    }
}
