//! `scripts/bench spawn`: N spawns of /bin/true four ways, in one run, so the
//! ratios compare like with like on the same machine at the same moment.
//!
//! ```text
//! spawn_bench BULKHEAD_BIN N
//!   (a) posix_spawn       std::process::Command, no isolation (the baseline)
//!   (b) unshare           unshare --fork --pid --mount --mount-proc /bin/true
//!   (c) bulkhead spawn    the library's spawn path: a fresh cgroup, clone3
//!                         into it with PID+mount namespaces, init, default
//!                         seccomp, no capabilities, rlimits; waits, removes
//!   (d) bulkhead exec     `bulkhead exec -- /bin/true` as a whole command
//!   (e) (c) without the walls: as root, every `protect:` switch off
//!   (f) (c) without the mount walls: (c)'s user and seccomp filter, the
//!                         mount-namespace switches of `protect:` off
//! ```
//! Prints p50/p90/p99 per way and the ratio of each p50 to (a)'s. (c), (e)
//! and (f) run interleaved, one of each in turn, so a machine busy with
//! something else for a while slows all three alike; for them the CPU time
//! the compartment's cgroup was charged (`cpu.stat` `usage_usec`: the init,
//! its mount work, the service, their exits) is printed too, which waiting
//! for a core does not inflate.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead::exec::{self, ExecArgs};
use bulkhead::sandbox::{plan, spawn};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((last as f64) * p).round() as usize;
    sorted[i.min(last)]
}

fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    // Warm caches (page cache, dentries, the seccomp compile is per call).
    for _ in 0..n.min(5) {
        f();
    }
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

fn run_ok(cmd: &mut Command) {
    let st = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{cmd:?} failed: {st:?}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(args.get(1).expect("usage: spawn_bench BULKHEAD_BIN N"));
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = bulkhead::cgroup::discover::cgroup2_mount(&mountinfo).expect("a cgroup2 mount");
    let parent = mount.join(format!("bulkhead-bench-spawn-{}", std::process::id()));
    std::fs::create_dir(&parent).unwrap();

    // The same command with every wall up (the defaults: a dynamic user,
    // the protected host view) and with every wall down, as root.
    let prepare = |protect: &[&str], user: Option<&str>| {
        let (cfg, svc) = exec::service_from_flags(&ExecArgs {
            command: vec!["/bin/true".into()],
            rlimits: vec!["nofile=1024:4096".into(), "core=0".into()],
            protect: protect.iter().map(|s| s.to_string()).collect(),
            user: user.map(str::to_string),
            ..ExecArgs::default()
        })
        .unwrap_or_else(|d| panic!("{}", d.render(None)));
        let seccomp = bulkhead::compartment::seccomp_program(&cfg, &svc)
            .unwrap_or_else(|d| panic!("{}", d.render(None)));
        let cpt = plan::Compartment {
            dynamic_uid: Some(61184),
            hidden: plan::hidden_dirs(&cfg),
        };
        let spec = plan::init_spec(&svc, &[], seccomp.clone(), None, &cpt).unwrap();
        (spec, plan::namespaces(&svc), seccomp.len())
    };
    let (spec, namespaces, insns) = prepare(&[], None);
    const MOUNT_WALLS_OFF: &[&str] = &[
        "system=off",
        "home=off",
        "tmp=off",
        "devices=host",
        "kernel=false",
        "cgroups=false",
        "proc=off",
    ];
    let open_flags: Vec<&str> = MOUNT_WALLS_OFF
        .iter()
        .copied()
        .chain([
            "address_families=any",
            "realtime=false",
            "clock=false",
            "personality=false",
        ])
        .collect();
    let (open_spec, open_ns, _) = prepare(&open_flags, Some("root"));
    let (mnt_spec, mnt_ns, _) = prepare(MOUNT_WALLS_OFF, None);

    let mut i = 0u64;
    // One spawn through the library: (wall time until reaped, the cgroup's
    // CPU time) and, for the phase line, [clone3 to service exec, service
    // run and init exit, cgroup removal].
    let mut spawn_with =
        |spec: &bulkhead::sandbox::spec::InitSpec,
         namespaces: bulkhead::sandbox::spawn::NamespaceFlags| {
            i += 1;
            let dir = parent.join(i.to_string());
            std::fs::create_dir(&dir).unwrap();
            let req = spawn::SpawnRequest {
                spec,
                cgroup: &dir,
                namespaces,
                die_with_parent: true,
                init_exe: &bin,
                attach_after_clone: false,
            };
            let t0 = Instant::now();
            let child = spawn::spawn(&req).unwrap_or_else(|e| panic!("spawn: {e}"));
            let t1 = Instant::now();
            let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None).unwrap();
            assert!(
                matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "{st:?}"
            );
            let t2 = Instant::now();
            let cpu = cpu_usage(&dir);
            let t3 = Instant::now();
            remove(&dir);
            (t2 - t0, cpu, [t1 - t0, t2 - t1, t3.elapsed()])
        };

    // (c), (e) and (f) in turn, after a few unrecorded rounds.
    let compartments = [
        (&spec, namespaces),
        (&open_spec, open_ns),
        (&mnt_spec, mnt_ns),
    ];
    let mut wall: [Vec<Duration>; 3] = Default::default();
    let mut cpu: [Vec<Duration>; 3] = Default::default();
    let mut phases: Vec<[Duration; 3]> = Vec::new();
    for round in 0..n + n.min(5) {
        for (k, (s, ns)) in compartments.iter().enumerate() {
            let (w, c, p) = spawn_with(s, *ns);
            if round >= n.min(5) {
                wall[k].push(w);
                cpu[k].push(c);
                if k == 0 {
                    phases.push(p);
                }
            }
        }
    }
    for v in wall.iter_mut().chain(cpu.iter_mut()) {
        v.sort();
    }
    let [wall_c, wall_e, wall_f] = wall;

    let ways: Vec<(&str, Vec<Duration>)> = vec![
        (
            "(a) posix_spawn",
            time(n, || run_ok(&mut Command::new("/bin/true"))),
        ),
        (
            "(b) unshare --pid --mount",
            time(n, || {
                run_ok(Command::new("unshare").args([
                    "--fork",
                    "--pid",
                    "--mount",
                    "--mount-proc",
                    "/bin/true",
                ]))
            }),
        ),
        ("(c) bulkhead spawn path", wall_c),
        (
            "(d) bulkhead exec",
            time(n, || {
                run_ok(Command::new(&bin).args(["exec", "--", "/bin/true"]))
            }),
        ),
        ("(e) (c) without the walls", wall_e),
        ("(f) (c) w/o the mount walls", wall_f),
    ];
    let _ = std::fs::remove_dir(&parent);

    let base = percentile(&ways[0].1, 0.5);
    println!(
        "spawn benchmark: {n} spawns of /bin/true each; seccomp program {} instructions",
        insns
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12}",
        "way", "p50", "p90", "p99", "p50 / (a)"
    );
    for (name, v) in &ways {
        let p50 = percentile(v, 0.5);
        println!(
            "{:<28} {:>10.3?} {:>10.3?} {:>10.3?} {:>11.2}x",
            name,
            p50,
            percentile(v, 0.9),
            percentile(v, 0.99),
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
    let phase = |k: usize| {
        let mut v: Vec<Duration> = phases.iter().map(|p| p[k]).collect();
        v.sort();
        percentile(&v, 0.5)
    };
    println!(
        "(c) by phase, p50: clone3 to service exec {:.3?}, service run and init exit {:.3?}, cgroup removal {:.3?}",
        phase(0),
        phase(1),
        phase(2)
    );
    let cpu50 = |k: usize| percentile(&cpu[k], 0.5);
    println!(
        "CPU charged to the compartment, p50: (c) {:.3?}, (e) {:.3?}, (f) {:.3?}; (c)/(e) = {:.2}x",
        cpu50(0),
        cpu50(1),
        cpu50(2),
        cpu50(0).as_secs_f64() / cpu50(1).as_secs_f64()
    );
    let p50 = |i: usize| percentile(&ways[i].1, 0.5).as_secs_f64();
    println!(
        "goals: (c) within 2x of (a) at p50: {:.2}x; (d) faster than (b): {:.2}x of (b); \
         the walls cost (c)/(e) = {:.2}x (goal: at most 1.5x), the mount walls alone (c)/(f) = {:.2}x",
        p50(2) / p50(0),
        p50(3) / p50(1),
        p50(2) / p50(4),
        p50(2) / p50(5)
    );
}

/// The CPU time charged to the cgroup `dir` (`cpu.stat` `usage_usec`; zero
/// when it cannot be read).
fn cpu_usage(dir: &Path) -> Duration {
    let usec = std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
        })
        .unwrap_or(0);
    Duration::from_micros(usec)
}

fn remove(dir: &Path) {
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("rmdir {}: {e}", dir.display()),
        }
    }
    panic!("{} stayed busy", dir.display());
}
