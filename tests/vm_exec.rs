//! `bulkhead exec` against a real cgroup v2 kernel: the limits it sets are
//! enforced, it reports what the kernel did, and the command is born inside
//! its cgroup. Run by `scripts/vm-test`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

fn exec(args: &[&str]) -> Output {
    common::cgroup2_with_controllers();
    common::exec(args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What `bulkhead exec` leaves behind: nothing under its cgroup subtree.
fn no_exec_cgroups_left() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = bulkhead::cgroup::discover::cgroup2_mount(&mountinfo).unwrap();
    let exec_dir = mount.join("bulkhead/exec");
    let left: Vec<_> = std::fs::read_dir(&exec_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "cgroups left under {exec_dir:?}: {left:?}");
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn the_command_is_born_inside_its_cgroup() {
    // The very first thing the command does is print its cgroup.
    // With its own cgroup namespace (the default) the command sees its
    // cgroup as the root, `0::/`; without it, the host's path.
    let o = exec(&["--pids", "64", "--", "/bin/cat", "/proc/self/cgroup"]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout).trim(), "0::/", "the cgroup namespace");
    let o = exec(&[
        "--pids",
        "64",
        "--protect",
        "cgroups=false",
        "--",
        "/bin/cat",
        "/proc/self/cgroup",
    ]);
    assert!(o.status.success());
    let first = text(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let me = std::process::id();
    // exec names its cgroup after its own pid, which is our child's: match
    // the shape and check the leaf is a number.
    let leaf = first
        .strip_prefix("0::/bulkhead/exec/")
        .unwrap_or_else(|| panic!("not in bulkhead's exec subtree: {first:?}"));
    assert!(
        leaf.parse::<u32>().is_ok_and(|p| p != me),
        "leaf {leaf:?} is not exec's pid"
    );
    no_exec_cgroups_left();
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn a_fork_bomb_is_contained_by_pids_max() {
    // A classic shell fork bomb. Once it runs, no fork succeeds, so the
    // shell starts its timer first and then uses only builtins: it waits
    // two seconds for the timer, reads the kernel's count of its cgroup's
    // tasks (its own read-only cgroup2, the cgroups wall) and exits, which
    // ends the PID namespace and every bomb process. (A glob over /proc
    // would count tasks that ended and were replaced during the listing.)
    let o = exec(&[
        "--pids",
        "16",
        "--",
        "/bin/sh",
        "-c",
        "sleep 2 & timer=$!; bomb() { bomb | bomb & }; bomb 2>/dev/null; \
         wait $timer; read n < /sys/fs/cgroup/pids.current; echo procs=$n",
    ]);
    let out = text(&o.stdout);
    let err = text(&o.stderr);
    let procs: u32 = out
        .trim()
        .strip_prefix("procs=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out:?}"));
    // Never more than pids.max. (How many are left when the shell counts
    // varies: dash bomb subshells exit once their own forks fail. That the
    // bomb reached the limit is what the refusals below prove.)
    assert!(procs <= 16, "{procs} processes under pids.max 16");
    // The kernel refused forks, and exec says so.
    assert!(
        err.contains("forks refused at pids.max"),
        "exec did not report the pids limit: {err}"
    );
    no_exec_cgroups_left();
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn an_oom_kill_is_reported() {
    // python3 is not guaranteed in the guest; dd with a 200 MiB block
    // buffer allocates and touches that much in one process.
    let o = exec(&[
        "--memory",
        "64M",
        "--swap",
        "0",
        "--",
        "/bin/dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=200M",
        "count=1",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(128 + libc::SIGKILL), "{err}");
    assert!(
        err.contains("OOM-killed at its memory limit") && err.contains("OOM kills"),
        "{err}"
    );
    no_exec_cgroups_left();
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn cpu_max_throttles_and_exec_reports_it() {
    let o = exec(&[
        "--cpus",
        "0.2",
        "--",
        "/bin/sh",
        "-c",
        "end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do :; done",
    ]);
    assert!(o.status.success());
    assert!(
        text(&o.stderr).contains("throttled"),
        "no throttling reported: {}",
        text(&o.stderr)
    );
}
