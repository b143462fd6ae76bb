//! The daemon (`bulkhead run`) against a real cgroup v2 kernel: restarts and
//! the circuit breaker, stopping, dependency order, adoption after SIGKILL,
//! live reload, the control socket's peer check and the neighbours' safety.
//! Each test runs its own daemon with its own state dir, socket, log dir and
//! cgroup root. Run by `scripts/vm-test daemon_`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::daemon::{Bh, cg_key, read_cg, sleep_ms, text};
use common::{poll_until, wait_until};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead::api::proto::{InstanceStatus, StatusReply};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

fn inst<'a>(s: &'a StatusReply, svc: &str, idx: usize) -> &'a InstanceStatus {
    let service = s
        .services
        .iter()
        .find(|x| x.name == svc)
        .unwrap_or_else(|| panic!("no service {svc} in status"));
    &service.instances[idx]
}

fn running(s: &StatusReply, svc: &str, idx: usize) -> bool {
    s.services
        .iter()
        .find(|x| x.name == svc)
        .and_then(|x| x.instances.get(idx))
        .is_some_and(|i| i.state == "running" && i.pid.is_some())
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn pgrep(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", marker])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.contains("pgrep"))
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_crash_loop_backs_off_and_the_breaker_opens_then_closes() {
    let tmp = common::daemon::scratch("bh-t-");
    let marker = tmp.path().join("healed");
    let svc = format!(
        "services:
  flaky:
    command: [/bin/sh, -c, 'if [ -e {m} ]; then exec /bin/sleep 100000; fi; /bin/sleep 0.3; exit 1']
    restart:
      policy: on-failure
      backoff:
        initial: 200ms
        reset_after: 3s
      circuit_breaker:
        failures: 3
        window: 60s
        cooldown: 3s
",
        m = marker.display()
    );
    let mut bh = Bh::new("crashloop", &svc);
    bh.start();

    // Restarts grow one by one (observed while polling, not timed).
    let mut seen: Vec<u32> = Vec::new();
    let s = bh.wait_for("the breaker opens (state failed)", 60, |s| {
        let i = inst(s, "flaky", 0);
        if seen.last() != Some(&i.restarts) {
            seen.push(i.restarts);
        }
        i.state == "failed"
    });
    println!("restart counts seen: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "restarts did not only grow: {seen:?}"
    );
    let i = inst(&s, "flaky", 0);
    println!("open: {i:?}");
    assert!(
        i.restarts >= 2,
        "restarts before the breaker opened: {}",
        i.restarts
    );
    let ev = i.last_event.clone().unwrap_or_default();
    assert!(ev.contains("CIRCUIT_OPEN"), "last_event: {ev:?}");
    assert!(i.pid.is_none(), "a failed instance has no pid: {i:?}");
    assert!(
        i.next_attempt_secs.is_some(),
        "no half-open attempt scheduled: {i:?}"
    );
    assert!(
        !bh.inst_dir("flaky", "0").exists(),
        "the failed instance's cgroup is still there"
    );

    // Heal it: the half-open try after the cooldown succeeds.
    std::fs::write(&marker, "").unwrap();
    let s = bh.wait_for("the half-open try runs", 60, |s| running(s, "flaky", 0));
    let pid = inst(&s, "flaky", 0).pid;
    println!("half-open: {:?}", inst(&s, "flaky", 0));
    // It stays up past reset_after (3s), which closes the breaker.
    sleep_ms(5000);
    let s = bh.status().unwrap();
    let i = inst(&s, "flaky", 0);
    assert!(
        i.state == "running" && i.pid == pid,
        "did not stay running: {i:?}"
    );
    let cg = bh.inst_dir("flaky", "0");
    assert!(
        procs(&cg).contains(&pid.unwrap()),
        "pid {pid:?} not in {}",
        cg.display()
    );
    let log = bh.daemon_log();
    assert!(
        log.contains("circuit breaker closed"),
        "the daemon log does not say the breaker closed"
    );
    assert_eq!(bh.sigterm().code(), Some(0));
    assert!(
        !bh.cgroot.exists(),
        "cgroup root left after shutdown:\n{}\n{}",
        common::daemon::leftovers(&bh.cgroot),
        bh.daemon_log()
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_stop_kills_a_service_that_ignores_sigterm_after_its_grace() {
    let tmp = common::daemon::scratch("bh-t-");
    // Created by the shell once its trap is installed.
    let trapped = tmp.path().join("trapped");
    let svc = format!(
        "services:
  stubborn:
    command: [/bin/sh, -c, 'trap \"\" TERM; : > {t}; while :; do /bin/sleep 1; done']
    stop:
      grace: 2s
",
        t = trapped.display()
    );
    let mut bh = Bh::new("stubborn", &svc);
    bh.start();
    let s = bh.wait_for("stubborn runs", 60, |s| running(s, "stubborn", 0));
    let pid = inst(&s, "stubborn", 0).pid.unwrap();
    let cg = bh.inst_dir("stubborn", "0");
    assert!(procs(&cg).contains(&pid));
    wait_until(
        "stubborn's TERM trap installed",
        Duration::from_secs(30),
        || trapped.exists(),
    );

    let t0 = Instant::now();
    let out = bh.cli(&["stop", "stubborn"]);
    assert!(out.status.success());
    bh.wait_for("stubborn stopped", 60, |s| {
        inst(s, "stubborn", 0).state == "stopped"
    });
    let took = t0.elapsed();
    println!("stop took {took:?} (grace 2s)");
    assert!(!cg.exists(), "{} still exists after stop", cg.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still alive"
    );
    let log = bh.daemon_log();
    assert!(
        log.contains("killing every process in the cgroup"),
        "the daemon log does not mention cgroup.kill"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "stopped before the grace: {took:?}"
    );
    assert_eq!(bh.sigterm().code(), Some(0));
    assert!(!bh.cgroot.exists());
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_depends_on_order_at_start_and_reverse_at_stop() {
    let tmp = common::daemon::scratch("bh-t-");
    let order = tmp.path().join("order");
    // Each service runs as a dynamic user of its own: all three append here.
    std::fs::write(&order, "").unwrap();
    std::fs::set_permissions(&order, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let mut svc = String::from("services:\n");
    for (name, dep) in [("c", Some("b")), ("a", None), ("b", Some("a"))] {
        let f = order.display();
        let _ = write!(
            svc,
            "  {name}:
    command: [/bin/sh, -c, 'trap \"echo stop {name} >> {f}; exit 0\" TERM; echo start {name} >> {f}; while :; do /bin/sleep 0.2; done']
"
        );
        if let Some(d) = dep {
            let _ = writeln!(svc, "    depends_on: [{d}]");
        }
    }
    let mut bh = Bh::new("order", &svc);
    bh.start();
    bh.wait_for("a, b, c run", 60, |s| {
        ["a", "b", "c"].iter().all(|n| running(s, n, 0))
    });
    // Each shell writes its start line once its TERM trap is installed:
    // after three, a SIGTERM is heard by every one.
    wait_until(
        "a, b and c installed their trap",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&order)
                .unwrap_or_default()
                .lines()
                .count()
                >= 3
        },
    );
    let st = bh.sigterm();
    let got = std::fs::read_to_string(&order).unwrap();
    println!("order file:\n{got}");
    assert_eq!(st.code(), Some(0), "daemon exit status");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(
        lines,
        [
            "start a", "start b", "start c", "stop c", "stop b", "stop a"
        ]
    );
    assert!(
        !bh.cgroot.exists(),
        "cgroup root left after shutdown:\n{}\n{}",
        common::daemon::leftovers(&bh.cgroot),
        bh.daemon_log()
    );
}

/// The long-running services of the SIGKILL test and their instance counts.
const LONG: [(&str, usize); 2] = [("multi", 2), ("sleeper", 1)];

/// The `port=` values each replica's log holds, in order.
fn logged_ports(logs: &Path, svc: &str, n: usize) -> Vec<Vec<u16>> {
    (0..n)
        .map(|i| {
            std::fs::read_to_string(logs.join(format!("{svc}@{i}.log")))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split("port=").nth(1))
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .collect()
}

/// Replicas started together each get a port of their own (they once all
/// got the first free one), and keep it: after a daemon crash and
/// adoption, a restart hands each the same port again.
#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_replicas_get_distinct_ports_and_keep_them() {
    common::require_root();
    let svc = "services:
  web:
    instances: 3
    command: [/bin/sh, -c, 'echo port=$BULKHEAD_PORT; exec /bin/sleep 100000']
";
    let mut bh = Bh::new("replica-ports", svc);
    let logs = bh.path("logs");
    bh.start();
    bh.wait_for("three replicas logged their port", 60, |_| {
        logged_ports(&logs, "web", 3).iter().all(|p| p.len() == 1)
    });
    let first: Vec<u16> = logged_ports(&logs, "web", 3).iter().map(|p| p[0]).collect();
    println!("replica ports: {first:?}");
    let distinct: BTreeSet<u16> = first.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "replicas share a port: {first:?}");

    bh.sigkill();
    bh.start();
    bh.wait_for("the replicas adopted", 60, |s| {
        (0..3).all(|i| inst(s, "web", i).adopted)
    });
    assert!(bh.cli(&["restart", "web"]).status.success());
    bh.wait_for("three replicas logged their port again", 60, |_| {
        logged_ports(&logs, "web", 3).iter().all(|p| p.len() == 2)
    });
    let again: Vec<u16> = logged_ports(&logs, "web", 3).iter().map(|p| p[1]).collect();
    assert_eq!(again, first, "a replica's port changed across adoption");
    assert!(bh.sigterm().success());
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_sigkill_at_random_moments_adopts_and_leaves_no_orphans() {
    let mark = format!("bhmark-sigkill-{}", std::process::id());
    let svc = format!(
        "services:
  multi:
    command: [/bin/sh, -c, 'while :; do /bin/sleep 1; done', {mark}]
    instances: 2
  crasher:
    command: [/bin/sh, -c, '/bin/sleep 0.2; exit 1', {mark}]
    restart:
      policy: always
      backoff:
        initial: 100ms
        max: 300ms
      circuit_breaker:
        failures: 0
  sleeper:
    command: [/bin/sh, -c, 'while :; do /bin/sleep 1; done', {mark}]
"
    );
    let mut bh = Bh::new("sigkill", &svc);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut adopted_total = 0;
    let mut next_delay = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % 1500
    };
    for round in 0..20 {
        if round % 2 == 1 {
            // A blind kill: at a random moment after the start, which may
            // fall in adoption, orphan removal or the first spawns.
            let delay = next_delay();
            println!("round {round}: blind kill {delay} ms after the start");
            bh.spawn();
            sleep_ms(delay);
            bh.sigkill();
        }
        // Which long-running instances survive the previous kill: their
        // record names a pid that is still alive in the instance cgroup.
        let before = surviving(&bh);
        bh.spawn();
        let s = bh.wait_for("the long-running instances run", 60, |s| {
            LONG.iter()
                .all(|(svc, n)| (0..*n).all(|i| running(s, svc, i)))
        });
        for ((svc, id), pid) in &before {
            let i: usize = id.parse().unwrap();
            let got = inst(&s, svc, i);
            assert_eq!(
                got.pid,
                Some(*pid),
                "round {round}: {svc}@{id} was running as pid {pid} before the kill, now {got:?}"
            );
            assert!(got.adopted, "round {round}: {svc}@{id} not marked adopted");
            adopted_total += 1;
        }
        check_instances(&bh, &s, round);

        // Kill the daemon at a pseudo-random moment (0-1500 ms).
        let delay = next_delay();
        println!(
            "round {round}: adopted {} instance(s), killing after {delay} ms",
            before.len()
        );
        sleep_ms(delay);
        bh.sigkill();
    }
    println!("adopted {adopted_total} instances over 20 rounds");
    assert!(adopted_total > 0, "nothing was ever adopted");

    bh.start();
    let s = bh.wait_for("everything runs after the last kill", 60, |s| {
        LONG.iter()
            .all(|(svc, n)| (0..*n).all(|i| running(s, svc, i)))
    });
    check_instances(&bh, &s, 20);
    assert_eq!(bh.sigterm().code(), Some(0), "daemon exit status");
    assert!(
        !bh.cgroot.exists(),
        "cgroup root left after shutdown:\n{}\n{}",
        common::daemon::leftovers(&bh.cgroot),
        bh.daemon_log()
    );
    let mut left = Vec::new();
    let _ = poll_until(Duration::from_secs(5), || {
        left = pgrep(&mark);
        left.is_empty()
    });
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// The long-running instances that outlive a SIGKILLed daemon: their record
/// names a pid that is still in the instance's cgroup.
fn surviving(bh: &Bh) -> BTreeMap<(String, String), i32> {
    let mut out = BTreeMap::new();
    for (svc, n) in LONG {
        for i in 0..n {
            let id = i.to_string();
            let rec = bh.state.join(format!("instances/{svc}@{id}.json"));
            let Ok(t) = std::fs::read_to_string(&rec) else {
                continue;
            };
            // A record is written atomically (rename); skip one that is not.
            let Some(pid) = serde_json::from_str::<serde_json::Value>(&t)
                .ok()
                .and_then(|v| v["pid"].as_i64())
                .and_then(|p| i32::try_from(p).ok())
            else {
                println!("unreadable record {}: {t:?}", rec.display());
                continue;
            };
            if procs(&bh.inst_dir(svc, &id)).contains(&pid) {
                out.insert((svc.to_string(), id), pid);
            }
        }
    }
    out
}

/// Every long-running instance has exactly one cgroup, one record and one
/// init (a process running the bulkhead binary) in it, which is the pid
/// status reports; no instance cgroup exists without its record.
fn check_instances(bh: &Bh, s: &StatusReply, round: usize) {
    use std::os::unix::fs::MetadataExt;
    // The init is bulkhead-init (bulkhead itself only as a fallback).
    let m = std::fs::metadata(env!("CARGO_BIN_EXE_bulkhead-init")).unwrap();
    let bin = (m.dev(), m.ino());
    for (svc, n) in LONG {
        let dirs: BTreeSet<String> = std::fs::read_dir(bh.cgroot.join(svc))
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let want: BTreeSet<String> = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(dirs, want, "round {round}: instance cgroups of {svc}");
        for i in 0..n {
            let id = i.to_string();
            assert!(
                bh.state.join(format!("instances/{svc}@{id}.json")).exists(),
                "round {round}: {svc}@{id} has a cgroup but no record"
            );
            let dir = bh.inst_dir(svc, &id);
            let inits: Vec<i32> = procs(&dir)
                .into_iter()
                .filter(|p| {
                    std::fs::metadata(format!("/proc/{p}/exe"))
                        .is_ok_and(|e| (e.dev(), e.ino()) == bin)
                })
                .collect();
            assert_eq!(
                inits,
                vec![inst(s, svc, i).pid.unwrap()],
                "round {round}: inits in {} (all: {:?})",
                dir.display(),
                procs(&dir)
            );
        }
    }
    // The crasher: at most its one instance cgroup.
    if let Ok(rd) = std::fs::read_dir(bh.cgroot.join("crasher")) {
        let names: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n == "0"),
            "round {round}: crasher cgroups {names:?}"
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_reload_raises_memory_max_live_and_an_invalid_reload_changes_nothing() {
    let svc = |max: &str| {
        format!(
            "services:
  app:
    command: [/bin/sh, -c, 'while :; do /bin/sleep 1; done']
    resources:
      memory:
        max: {max}
        swap_max: 0
"
        )
    };
    let mut bh = Bh::new("reload", &svc("32M"));
    bh.start();
    let s = bh.wait_for("app runs", 60, |s| running(s, "app", 0));
    let pid = inst(&s, "app", 0).pid;
    let cg = bh.inst_dir("app", "0");
    assert_eq!(read_cg(&cg, "memory.max").trim(), "33554432");

    bh.write_config(&svc("64M"));
    let out = bh.cli(&["reload"]);
    assert!(out.status.success(), "reload failed");
    wait_until("memory.max raised to 64M", Duration::from_secs(30), || {
        read_cg(&cg, "memory.max").trim() == "67108864"
    });
    let s = bh.status().unwrap();
    let i = inst(&s, "app", 0);
    assert_eq!(
        (i.pid, i.restarts, i.state.as_str()),
        (pid, 0, "running"),
        "{i:?}"
    );

    // Prove it: 48 MiB touched inside the instance's cgroup fit now.
    let w = Command::new(common::workload())
        .arg("--join")
        .arg(&cg)
        .args(["squeeze", "48", "2"])
        .output()
        .unwrap();
    println!(
        "workload: {:?} {}{}",
        w.status,
        text(&w.stdout),
        text(&w.stderr)
    );
    assert!(w.status.success(), "48 MiB did not fit under the new 64M");
    assert_eq!(cg_key(&cg, "memory.events", "oom_kill"), 0);
    let peak: u64 = read_cg(&cg, "memory.peak").trim().parse().unwrap();
    println!("memory.peak after the squeeze: {peak}");
    assert!(
        peak > 33_554_432,
        "the workload never went above the old 32M: {peak}"
    );

    // An invalid config: refused with file:line, nothing changes.
    let good = std::fs::read_to_string(&bh.cfg).unwrap();
    std::fs::write(&bh.cfg, good.replace("max: 64M", "max: 64X")).unwrap();
    let out = bh.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "an invalid reload must exit 1");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let file = bh.cfg.file_name().unwrap().to_string_lossy().into_owned();
    let at = all
        .find(&format!("{file}:"))
        .unwrap_or_else(|| panic!("no {file}:LINE in the reload output"));
    assert!(
        all[at + file.len() + 1..].starts_with(|c: char| c.is_ascii_digit()),
        "no line number after {file}: in {all:?}"
    );
    sleep_ms(1000);
    let s = bh.status().unwrap();
    let i = inst(&s, "app", 0);
    assert_eq!(
        (i.pid, i.restarts, i.state.as_str()),
        (pid, 0, "running"),
        "{i:?}"
    );
    assert_eq!(read_cg(&cg, "memory.max").trim(), "67108864");
    assert!(procs(&cg).contains(&pid.unwrap()));
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_reload_reads_the_file_off_the_loop_and_status_answers_meanwhile() {
    let svc = "services:
  idle:
    command: [/bin/sleep, '100000']
";
    let mut bh = Bh::new("slowload", svc);
    // systemd's side of the daemon: a notify socket that records what the
    // daemon says and when, and a watchdog of 2 s (pinged every second).
    let notify_path = bh.path("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = heard.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = notify.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            log.lock().unwrap().extend(text.lines().map(str::to_string));
        }
    });
    bh.spawn_env(&[
        ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "2000000"),
    ]);
    bh.wait_for("the control socket answers", 60, |_| true);
    let s = bh.wait_for("idle runs", 60, |s| running(s, "idle", 0));
    let pid = inst(&s, "idle", 0).pid;

    // A file that takes seconds to check in this debug build under
    // emulation (60 services with 40 variables each: about 10 s), with one mistake at
    // its very end: the reload reads all of it and changes nothing.
    let mut big = String::from(svc);
    for i in 0..60 {
        let env: Vec<String> = (0..40).map(|j| format!("V{j}: x{j}")).collect();
        write!(
            big,
            "  s{i}:\n    command: [/bin/sleep, '1']\n    autostart: false\n    env: {{{}}}\n",
            env.join(", ")
        )
        .unwrap();
    }
    big.push_str("  last:\n    command: [/bin/sleep, '1']\n    nice: 99\n");
    bh.write_config(&big);

    let t0 = Instant::now();
    let mut reload = Command::new(BIN)
        .args(["reload", "--socket"])
        .arg(&bh.sock)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While the daemon checks the file, its loop answers status: each
    // answer that comes back before the reload's is one the old loop (which
    // parsed in place) could not have given.
    let mut answered_meanwhile = 0;
    let mut slowest = Duration::ZERO;
    while reload.try_wait().unwrap().is_none() {
        // In process, and not too often: the emulated VM has two slow CPUs
        // and the daemon's check needs them.
        sleep_ms(300);
        let t = Instant::now();
        let r = bulkhead::cli::client::get::<StatusReply>(&bh.sock, "/v1/status");
        let took = t.elapsed();
        if reload.try_wait().unwrap().is_none() {
            let s = r.expect("status failed during the reload");
            assert_eq!(inst(&s, "idle", 0).pid, pid);
            answered_meanwhile += 1;
            slowest = slowest.max(took);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the reload did not finish"
        );
    }
    let out = reload.wait_with_output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    println!(
        "reload took {:.1}s; {answered_meanwhile} status calls answered meanwhile (slowest {:.2}s)\n{all}",
        t0.elapsed().as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(1), "the invalid reload must exit 1");
    assert!(all.contains("CONFIG_INVALID_VALUE"), "{all}");
    assert!(
        answered_meanwhile >= 2,
        "status was not answered while the reload read the file ({answered_meanwhile} times)"
    );
    let s = bh.status().unwrap();
    assert_eq!(
        s.services.len(),
        1,
        "the invalid reload changed the services"
    );
    assert_eq!(inst(&s, "idle", 0).pid, pid);

    // And systemd heard the watchdog while the file was being checked:
    // RELOADING=1, then WATCHDOG=1 at least once, then READY=1.
    let heard = heard.lock().unwrap().clone();
    println!("notify messages: {heard:?}");
    let reloading = heard
        .iter()
        .position(|m| m == "RELOADING=1")
        .expect("no RELOADING=1");
    let ready = reloading
        + heard[reloading..]
            .iter()
            .position(|m| m == "READY=1")
            .expect("no READY=1 after RELOADING=1");
    assert!(
        heard[reloading..ready].iter().any(|m| m == "WATCHDOG=1"),
        "no watchdog ping while the reload read the file: {:?}",
        &heard[reloading..=ready]
    );
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_control_socket_refuses_a_non_root_peer_and_a_compartment() {
    use std::os::unix::fs::PermissionsExt;
    let svc = "services:
  idle:
    command: [/bin/sleep, '100000']
";
    let mut bh = Bh::new("denied", svc);
    bh.start();
    // Let anyone reach the socket: only the daemon's peer check stands.
    for p in [bh.dir.path(), bh.state.as_path(), bh.sock.as_path()] {
        let mode = if p == bh.sock { 0o666 } else { 0o755 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // A copy of the binary that nobody can run wherever the checkout is.
    let bin = bh.path("bulkhead");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["status", "--socket"])
        .arg(&bh.sock)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    println!("as nobody: {:?}\n{}{err}", out.status, text(&out.stdout));
    assert!(!out.status.success(), "a non-root peer got an answer");
    assert!(err.contains("CONTROL_DENIED"), "stderr: {err}");
    // Root still gets one.
    assert!(bh.cli(&["status"]).status.success());

    // Root, but inside a compartment (as a service's process would be, had
    // it reached the socket through its walls): refused by cgroup, from the
    // peer's pid, whatever its uid.
    let leaf = bh.inst_dir("idle", "0");
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {} status --socket {}",
        leaf.display(),
        bin.display(),
        bh.sock.display()
    );
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    println!("as root in idle/0: {:?}\n{err}", out.status);
    assert!(
        !out.status.success(),
        "a peer in a compartment got an answer"
    );
    assert!(err.contains("CONTROL_DENIED"), "stderr: {err}");
    assert!(bh.cli(&["status"]).status.success());
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_neighbour_keeps_answering_while_others_misbehave() {
    let tmp = common::daemon::scratch("bh-t-");
    let hb = tmp.path().join("heartbeat");
    let svc = format!(
        "services:
  neighbour:
    command: [/bin/sh, -c, 'while :; do /bin/date +%s.%N >> {hb}; /bin/sleep 0.2; done']
  bomb:
    command: [/bin/sh, -c, 'while :; do ( while :; do /bin/sleep 600 & done ) 2>/dev/null; done']
    resources:
      pids:
        max: 32
      cpu:
        max: \"25%\"
  hog:
    command: [/bin/dd, if=/dev/zero, of=/dev/null, bs=100M]
    resources:
      memory:
        max: 32M
        swap_max: 0
    restart:
      policy: always
      backoff:
        initial: 200ms
        max: 1s
      circuit_breaker:
        failures: 0
  spinner:
    command: [/bin/sh, -c, 'while :; do :; done']
    resources:
      cpu:
        max: \"20%\"
",
        hb = hb.display()
    );
    let mut bh = Bh::new("neighbour", &svc);
    bh.start();
    let s = bh.wait_for("neighbour, bomb and spinner run", 60, |s| {
        ["neighbour", "bomb", "spinner"]
            .iter()
            .all(|n| running(s, n, 0))
    });
    let pid = inst(&s, "neighbour", 0).pid;
    let t0 = Instant::now();
    // The hog is OOM-killed and restarted (seen at any moment of the run).
    bh.wait_for("the hog is OOM-killed and restarted", 60, |s| {
        let h = inst(s, "hog", 0);
        h.restarts >= 1 && h.last_restart_reason.as_deref() == Some("oom_kill")
    });
    let rest = Duration::from_secs(10).saturating_sub(t0.elapsed());
    std::thread::sleep(rest);
    // At least 20 beats to judge the gaps by: on a loaded host the emulated
    // VM may run the neighbour's fork+exec at a few per second only.
    let count = || {
        std::fs::read_to_string(&hb)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    // Not a failure by itself: the count is checked below.
    let _ = poll_until(Duration::from_secs(90), || count() >= 20);

    let s = bh.status().unwrap();
    let n = inst(&s, "neighbour", 0);
    assert_eq!(
        (n.state.as_str(), n.pid, n.restarts),
        ("running", pid, 0),
        "{n:?}"
    );
    let bomb = bh.inst_dir("bomb", "0");
    let refused = cg_key(&bomb, "pids.events", "max");
    println!(
        "bomb: pids.events max {refused}, pids.current {}",
        read_cg(&bomb, "pids.current").trim()
    );
    assert!(refused > 0, "the bomb never hit pids.max");
    let spin = bh.inst_dir("spinner", "0");
    let throttled = cg_key(&spin, "cpu.stat", "nr_throttled");
    println!("spinner: nr_throttled {throttled}");
    assert!(throttled > 0, "the spinner was never throttled");

    let beats: Vec<f64> = std::fs::read_to_string(&hb)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let max_gap = beats
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0_f64, f64::max);
    // Up to now too: a neighbour that stopped beating shows no gap between
    // its beats.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let since_last = beats.last().map_or(f64::INFINITY, |b| now - b);
    eprintln!(
        "neighbour heartbeat: {} beats, largest gap {max_gap:.2}s, last beat {since_last:.2}s ago (one every 0.2s when idle)",
        beats.len()
    );
    assert!(beats.len() >= 10, "too few heartbeats: {}", beats.len());
    // A generous bound that proves isolation, not a latency figure: a
    // neighbour the bomb or the hog reached (no pid left to fork `date`)
    // stops beating for good, while load alone slows it by seconds.
    assert!(
        max_gap.max(since_last) <= 15.0,
        "the neighbour stalled for {:.2}s",
        max_gap.max(since_last)
    );
    assert_eq!(bh.sigterm().code(), Some(0));
    assert!(
        !bh.cgroot.exists(),
        "cgroup root left after shutdown:\n{}\n{}",
        common::daemon::leftovers(&bh.cgroot),
        bh.daemon_log()
    );
}

// ------------------------------------------------------------- the monitor

/// `bulkhead events --json [SERVICE]`, parsed.
fn events(bh: &Bh, service: &str) -> Vec<bulkhead::api::proto::EventRecord> {
    let out = Command::new(BIN)
        .args(["events", "--json", service, "--socket"])
        .arg(&bh.sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "events: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Milliseconds between two event times (RFC 3339, same day).
fn ms_between(a: &str, b: &str) -> f64 {
    let secs = |t: &str| -> f64 {
        let hms = t.split('T').nth(1).unwrap().trim_end_matches('Z');
        hms.split(':')
            .map(|x| x.parse::<f64>().unwrap())
            .fold(0.0, |acc, x| acc * 60.0 + x)
    };
    (secs(b) - secs(a)) * 1000.0
}

/// From the first violation of `rule` to the next `running` of the same
/// instance, from the daemon's own timestamps (reported, not asserted).
fn report_latency(bh: &Bh, service: &str, rule: &str) {
    let ev = events(bh, service);
    let Some(v) = ev
        .iter()
        .position(|e| e.kind == "violation" && e.rule.as_deref() == Some(rule))
    else {
        return;
    };
    if let Some(r) = ev[v..]
        .iter()
        .find(|e| e.kind == "state" && e.state.as_deref() == Some("running"))
    {
        println!(
            "[{}] {service}: {rule} violation -> running again: {:.0} ms",
            bh.name,
            ms_between(&ev[v].time, &r.time)
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_monitor_oom_kill_is_recorded_and_the_instance_restarted() {
    common::require_root();
    let w = common::workload();
    let svc = format!(
        "services:
  leaker:
    command: [{w}, alloc, '512']
    resources:
      memory:
        max: 32M
        swap_max: 0
    restart:
      backoff:
        initial: 100ms
      circuit_breaker:
        failures: 0
  quiet:
    command: [/bin/sleep, '1000']
",
        w = w.display()
    );
    let mut bh = Bh::new("mon-oom", &svc);
    bh.start();
    let s = bh.wait_for("leaker restarted after an OOM kill", 120, |s| {
        let i = inst(s, "leaker", 0);
        i.restarts >= 2 && i.last_restart_reason.as_deref() == Some("oom_kill")
    });
    let i = inst(&s, "leaker", 0);
    assert!(
        i.restart_reasons.get("oom_kill").copied().unwrap_or(0) >= 2,
        "{i:?}"
    );
    assert!(
        i.violation_counts.get("oom").copied().unwrap_or(0) >= 1,
        "{i:?}"
    );
    let v = i
        .violations
        .iter()
        .find(|v| v.rule == "oom")
        .expect("an oom violation");
    assert!(v.observed.starts_with("memory.events oom_kill "), "{v:?}");
    assert_eq!(v.action, "restart");
    // The kernel's counter agrees that it OOM-killed.
    let quiet = inst(&s, "quiet", 0);
    assert_eq!(
        (quiet.restarts, quiet.violations.len()),
        (0, 0),
        "{quiet:?}"
    );

    let ev = events(&bh, "leaker");
    assert!(
        ev.iter().any(|e| e.kind == "violation"
            && e.rule.as_deref() == Some("oom")
            && e.observed
                .as_deref()
                .is_some_and(|o| o.contains("oom_kill"))),
        "{ev:#?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.kind == "state" && e.reason.as_deref() == Some("oom_kill")),
        "{ev:#?}"
    );
    let detail = bh.cli(&["status", "leaker"]);
    assert!(
        text(&detail.stdout).contains("oom_kill"),
        "{}",
        text(&detail.stdout)
    );
    report_latency(&bh, "leaker", "oom");
    assert!(bh.sigterm().success());
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_monitor_memory_pressure_restarts_one_and_throttles_another() {
    common::require_root();
    let w = common::workload();
    let svc = format!(
        "services:
  squeezed:
    command: [{w}, squeeze, '96', '600']
    resources:
      memory:
        high: 32M
    watch:
      memory_pressure:
        action: restart
        threshold: 10%
        for: 2s
    restart:
      backoff:
        initial: 1s
      circuit_breaker:
        failures: 0
  throttled:
    # The test ends the squeeze with SIGKILL once the throttle is seen: held
    # far above memory.high, the squeeze (or a timeout(1) around it) makes
    # almost no progress of its own, its file pages being what reclaim takes.
    command: [/bin/sh, -c, 'echo squeezing; {w} squeeze 96 600; echo idle; exec {w} sleep 100000']
    resources:
      memory:
        high: 48M
        low: 24M
    watch:
      memory_pressure:
        action: throttle
        threshold: 10%
        for: 2s
        step: 10%
  quiet:
    command: [/bin/sleep, '1000']
",
        w = w.display()
    );
    let mut bh = Bh::new("mon-psi", &svc);
    bh.start();
    let started = Instant::now();
    let throttled_dir = bh.inst_dir("throttled", "0");
    let mut lowered = None;
    bh.wait_for("throttled's memory.high lowered by throttle", 180, |s| {
        let i = inst(s, "throttled", 0);
        if let Some(h) = i.memory_high_throttled {
            lowered = Some(h);
            return true;
        }
        false
    });
    let lowered = lowered.unwrap();
    println!(
        "[mon-psi] throttle after {:.1}s: memory.high lowered to {lowered}",
        started.elapsed().as_secs_f64()
    );
    assert!((24 << 20..48 << 20).contains(&lowered), "{lowered}");
    // The kernel has the lowered value.
    let file: u64 = read_cg(&throttled_dir, "memory.high")
        .trim()
        .parse()
        .unwrap();
    assert!(file < 48 << 20, "memory.high file says {file}");

    let s = bh.wait_for("squeezed restarted for memory pressure", 180, |s| {
        inst(s, "squeezed", 0).last_restart_reason.as_deref() == Some("violation(memory_pressure)")
    });
    let sq = inst(&s, "squeezed", 0);
    let v = sq
        .violations
        .iter()
        .find(|v| v.rule == "memory_pressure")
        .unwrap();
    assert!(v.observed.starts_with("memory.pressure some"), "{v:?}");
    assert_eq!(v.action, "restart");
    report_latency(&bh, "squeezed", "memory_pressure");

    // The squeeze ends (SIGKILL interrupts the memory.high penalty, which
    // sleeps killably) ...
    for pid in procs(&throttled_dir) {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        // The workload itself (an argument that is exactly "squeeze"), not
        // the shell whose script names it.
        if cmd.split(|b| *b == 0).any(|a| a == b"squeeze") {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    // ... and once the pressure is gone, memory.high goes back to 48M.
    bh.wait_for("throttled's memory.high restored", 240, |s| {
        let i = inst(s, "throttled", 0);
        i.memory_high_throttled.is_none() && i.state == "running"
    });
    let file = read_cg(&throttled_dir, "memory.high");
    assert_eq!(file.trim(), (48u64 << 20).to_string());
    let ev = events(&bh, "throttled");
    assert!(
        ev.iter().any(|e| e.action.as_deref() == Some("restore")),
        "{ev:#?}"
    );
    let s = bh.status().unwrap();
    let t = inst(&s, "throttled", 0);
    assert_eq!(t.restarts, 0, "throttle never restarts: {t:?}");
    let quiet = inst(&s, "quiet", 0);
    assert_eq!(
        (quiet.restarts, quiet.violations.len()),
        (0, 0),
        "{quiet:?}"
    );
    assert!(bh.sigterm().success());
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn daemon_monitor_warns_about_throttling_forks_and_fds_and_spares_the_neighbour() {
    common::require_root();
    let w = common::workload();
    let svc = format!(
        "services:
  spinner:
    command: [/bin/sh, -c, 'while :; do :; done']
    resources:
      cpu:
        max: 20%
    watch:
      cpu_throttled:
        action: warn
        threshold: 50%
        for: 3s
  bomb:
    command: [{w}, forks, '100', --retry]
    resources:
      pids:
        max: 16
  fdleak:
    command: [{w}, fds, '200']
    resources:
      rlimits:
        nofile: 64
    watch:
      fds:
        action: warn
        threshold: 90%
        for: 1s
  neighbour:
    command: [/bin/sleep, '1000']
    resources:
      cpu:
        max: 50%
      pids:
        max: 16
    watch:
      cpu_throttled:
        action: warn
        threshold: 50%
        for: 3s
      fds:
        action: warn
        threshold: 90%
        for: 1s
",
        w = w.display()
    );
    let mut bh = Bh::new("mon-warn", &svc);
    bh.start();
    let has = |s: &StatusReply, svc: &str, rule: &str| {
        inst(s, svc, 0).violations.iter().any(|v| v.rule == rule)
    };
    let s = bh.wait_for("cpu_throttled, pids_max and fds violations", 180, |s| {
        has(s, "spinner", "cpu_throttled") && has(s, "bomb", "pids_max") && has(s, "fdleak", "fds")
    });
    let find = |svc: &str, rule: &str| {
        inst(&s, svc, 0)
            .violations
            .iter()
            .find(|v| v.rule == rule)
            .unwrap()
            .clone()
    };
    let v = find("spinner", "cpu_throttled");
    println!("[mon-warn] spinner: {v:?}");
    assert!(v.observed.starts_with("nr_throttled "), "{v:?}");
    assert_eq!(v.action, "warn");
    let v = find("bomb", "pids_max");
    println!("[mon-warn] bomb: {v:?}");
    assert!(v.observed.starts_with("pids.events max "), "{v:?}");
    // The kernel refused forks at pids.max.
    assert!(cg_key(&bh.inst_dir("bomb", "0"), "pids.events", "max") > 0);
    let v = find("fdleak", "fds");
    println!("[mon-warn] fdleak: {v:?}");
    assert!(v.observed.contains("RLIMIT_NOFILE 64"), "{v:?}");
    // warn never restarts; one violation per episode for the level rules.
    for svc in ["spinner", "bomb", "fdleak"] {
        assert_eq!(inst(&s, svc, 0).restarts, 0, "{svc}");
    }
    assert_eq!(inst(&s, "spinner", 0).violation_counts["cpu_throttled"], 1);
    // Let the sweep run a while longer: the neighbour stays clean.
    sleep_ms(5000);
    let s = bh.status().unwrap();
    let n = inst(&s, "neighbour", 0);
    assert_eq!((n.restarts, n.violations.len()), (0, 0), "{n:?}");
    assert_eq!(inst(&s, "spinner", 0).violation_counts["cpu_throttled"], 1);
    let ev = events(&bh, "neighbour");
    assert!(ev.iter().all(|e| e.kind == "state"), "{ev:#?}");
    assert!(bh.sigterm().success());
}
