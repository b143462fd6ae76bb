//! The escape suite: what a compromised service tries first, against a real
//! daemon with every default wall, run (a) as a service with no settings
//! (a dynamic user), (b) as `user: root` with the defaults otherwise, (b')
//! as root granted CAP_SYS_PTRACE, and (c) from one template instance
//! against another tenant's. Every attack must fail (and the setuid ones
//! must succeed with `protect.suid: false`, the control); the attacks themselves
//! are `examples/escape.rs`. Besides what each attack reports, the kernel's
//! state is checked from outside: the limits, the neighbour's cgroup, the
//! host's files and knobs. Run by `scripts/vm-test escape_`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::{Bh, read_cg, text};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

/// Every attack `escape all` runs.
const ATTACKS: &[&str] = &[
    "raise-limits",
    "leave-cgroup",
    "freeze-neighbour",
    "kill-neighbour",
    "core-pattern",
    "modprobe",
    "sysrq-trigger",
    "write-etc",
    "write-usr",
    "write-bulkhead-binary",
    "read-shadow",
    "write-block-device",
    "mknod",
    "read-kcore",
    "kallsyms-addresses",
    "see-init",
    "init-privileges",
    "ptrace-init",
    "control-socket",
    "neighbour-logs",
    "bulkhead-state",
    "neighbour-tmp",
    "neighbour-shm",
    "mount",
    "user-namespace",
    "chmod-suid",
    "creat-suid",
];

/// The attacks a wall can be switched off for, run again with it off
/// (`protect.suid: false`): they must escape there, so the attack is real
/// and the wall is what stops it.
const SUID_ATTACKS: &[&str] = &["chmod-suid", "creat-suid"];

fn escape_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BULKHEAD_TEST_ESCAPE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/escape")
}

/// attack -> (escaped, detail), from the RESULT lines of a log file.
fn results(log: &Path) -> BTreeMap<String, (bool, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.split("RESULT ").nth(1) else {
            continue;
        };
        let mut words = rest.splitn(3, ' ');
        let (Some(name), Some(verdict)) = (words.next(), words.next()) else {
            continue;
        };
        out.insert(
            name.to_string(),
            (verdict == "escaped", words.next().unwrap_or("").to_string()),
        );
    }
    out
}

fn wait_results(log: &Path, want: &[&str]) -> BTreeMap<String, (bool, String)> {
    let mut last = BTreeMap::new();
    common::poll_until(Duration::from_secs(180), || {
        let r = results(log);
        if want.iter().all(|a| r.contains_key(*a)) {
            return Some(r);
        }
        last = r;
        None
    })
    .unwrap_or_else(|_| {
        panic!(
            "{}: results of {:?} missing; log:\n{}",
            log.display(),
            want.iter()
                .filter(|a| !last.contains_key(**a))
                .collect::<Vec<_>>(),
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

fn show(who: &str, r: &BTreeMap<String, (bool, String)>) {
    for (name, (escaped, detail)) in r {
        println!(
            "[{who}] {name}: {} ({detail})",
            if *escaped { "ESCAPED" } else { "held" }
        );
    }
}

/// The attacks that escaped, with what they got.
fn escaped(r: &BTreeMap<String, (bool, String)>, except: &[&str]) -> Vec<String> {
    r.iter()
        .filter(|(n, (e, _))| *e && !except.contains(&n.as_str()))
        .map(|(n, (_, d))| format!("{n}: {d}"))
        .collect()
}

fn env_block(bh: &Bh, own: &Path, victim: &Path) -> String {
    format!(
        "    env:\n      OWN_CG: {}\n      VICTIM_CG: {}\n      BH_SOCK: {}\n      BH_STATE: {}\n      \
         BH_LOGS: {}\n      BH_BIN: {BIN}\n",
        own.display(),
        victim.display(),
        bh.sock.display(),
        bh.state.display(),
        bh.path("logs").display(),
    )
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn escape_every_attack_fails_with_the_default_walls() {
    common::require_root();
    // A block device to attack.
    let _ = std::process::Command::new("modprobe")
        .args(["null_blk", "nr_devices=1"])
        .status();
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let esc = escape_bin();
    let e = esc.display();
    let mut bh = Bh::new("escape", "");
    let victim = bh.cgroot.join("victim/0");
    let cgroot = bh.cgroot.clone();
    let tenant = |k: &str| cgroot.join(format!("tenant/ns:{k}"));
    let limits = "    resources:\n      memory:\n        max: 256M\n      pids:\n        max: 64\n";
    let mut yaml = String::from("defaults:\n  restart:\n    policy: never\nservices:\n");
    yaml += &format!("  victim:\n    command: [{e}, victim]\n{limits}");
    for (name, extra, cmd) in [
        ("attacker", "", "all"),
        ("attacker_root", "    user: root\n", "all"),
        (
            "attacker_ptrace",
            "    user: root\n    security:\n      capabilities: [CAP_SYS_PTRACE]\n",
            "all",
        ),
        (
            "control_suid_off",
            "    protect:\n      suid: false\n",
            &SUID_ATTACKS.join(" "),
        ),
    ] {
        // It stays after its attacks, so its cgroup can be read from outside.
        yaml += &format!(
            "  {name}:\n    command: [/bin/sh, -c, '{e} {cmd}; exec /bin/sleep 100000']\n{extra}{limits}{}",
            env_block(&bh, &bh.cgroot.join(format!("{name}/0")), &victim)
        );
    }
    yaml += &format!(
        "  tenant:\n    isolation: namespace\n    command: [/bin/sh, -c, 'if [ \"$BULKHEAD_NAMESPACE\" = victim ]; \
         then exec {e} victim; else exec {e} all; fi']\n{limits}{}",
        env_block(&bh, &tenant("attacker"), &tenant("victim"))
    );
    bh.write_config(&yaml);
    bh.start();
    // The victims first: their secrets must be in place before the attacks.
    let victim_log = bh.path("logs/victim@0.log");
    bh.wait_for("the victim is ready", 60, |_| {
        std::fs::read_to_string(&victim_log).is_ok_and(|l| l.contains("victim ready"))
    });
    let out = bh.cli(&["launch", "tenant", "--namespace", "victim"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tv_log = bh.path("logs/tenant@ns:victim.log");
    bh.wait_for("the tenant victim is ready", 60, |_| {
        std::fs::read_to_string(&tv_log).is_ok_and(|l| l.contains("victim ready"))
    });
    let out = bh.cli(&["launch", "tenant", "--namespace", "attacker"]);
    println!("launch attacker: {}", text(&out.stdout));

    let control = wait_results(&bh.path("logs/control_suid_off@0.log"), SUID_ATTACKS);
    show("control_suid_off", &control);
    for a in SUID_ATTACKS {
        assert!(
            control[*a].0,
            "{a} held even with protect.suid: false, so it proves nothing: {}",
            control[*a].1
        );
    }

    let mut all_escaped = Vec::new();
    for (who, log) in [
        ("attacker", "attacker@0"),
        ("attacker_root", "attacker_root@0"),
        ("attacker_ptrace", "attacker_ptrace@0"),
        ("tenant", "tenant@ns:attacker"),
    ] {
        let r = wait_results(&bh.path(&format!("logs/{log}.log")), ATTACKS);
        show(who, &r);
        // A root service does not see its init (not dumpable, and /proc's
        // gid= leaves group 0 no exemption); with CAP_SYS_PTRACE it does,
        // and may attach to it, which gives it nothing (`ptrace-init` and
        // `init-privileges` report what the init holds).
        let except: &[&str] = if who == "attacker_ptrace" {
            &["see-init"]
        } else {
            &[]
        };
        for e in escaped(&r, except) {
            all_escaped.push(format!("{who}: {e}"));
        }
    }

    // The kernel's word, from outside.
    for svc in ["attacker", "attacker_root", "attacker_ptrace"] {
        let dir = bh.cgroot.join(format!("{svc}/0"));
        assert_eq!(read_cg(&dir, "memory.max").trim(), "268435456", "{svc}");
        assert_eq!(read_cg(&dir, "pids.max").trim(), "64", "{svc}");
    }
    for v in [&victim, &tenant("victim")] {
        assert!(
            read_cg(v, "cgroup.events").contains("frozen 0"),
            "{}",
            v.display()
        );
        assert!(
            !read_cg(v, "cgroup.procs").trim().is_empty(),
            "the victim {} was killed",
            v.display()
        );
    }
    let s = bh.status().unwrap();
    let v = s.services.iter().find(|x| x.name == "victim").unwrap();
    assert_eq!(v.instances[0].state, "running", "the victim was stopped");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
    let left: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("bh-escape"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    assert!(
        all_escaped.is_empty(),
        "attacks that escaped:\n{}",
        all_escaped.join("\n")
    );
    assert_eq!(bh.sigterm().code(), Some(0));
}

/// A new pseudo-terminal's slave end (the master is kept open for the
/// test's life by leaking it).
fn open_pty() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/ptmx")
        .unwrap();
    let (mut n, unlock): (libc::c_uint, libc::c_int) = (0, 0);
    // SAFETY: TIOCSPTLCK reads one int and TIOCGPTN writes one uint through
    // pointers to live locals; the fd is the master just opened.
    unsafe {
        assert_eq!(
            libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &raw const unlock),
            0
        );
        assert_eq!(
            libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &raw mut n),
            0
        );
    }
    std::mem::forget(master);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/pts/{n}"))
        .unwrap()
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn escape_exec_on_a_terminal_cannot_push_keystrokes() {
    common::require_root();
    common::cgroup2_with_controllers();
    let slave = open_pty();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["exec", "--"]).arg(escape_bin()).arg("tiocsti");
    // `bulkhead exec` as an interactive shell runs it: the pty is its
    // controlling terminal, so TIOCSTI would work for it and for anything
    // that shares its session.
    // SAFETY: setsid and ioctl are async-signal-safe syscalls on fd 0.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd
        .stdin(slave.try_clone().unwrap())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    let so = text(&out.stdout);
    println!("{so}{}", text(&out.stderr));
    assert!(so.contains("RESULT tiocsti held"), "{so}");
    // Nothing arrived in the terminal's input queue.
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, a live local.
    let r = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&slave),
            libc::FIONREAD,
            &raw mut n,
        )
    };
    assert_eq!((r, n), (0, 0), "bytes waiting in the terminal's input");
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn escape_a_well_behaved_service_keeps_its_state_across_daemon_restarts() {
    common::require_root();
    // Under every default: its state directory is writable and its own,
    // its dynamic uid and files survive a daemon restart.
    let mut bh = Bh::new(
        "escape-dirs",
        "defaults:\n  restart:\n    policy: never\nservices:\n  keeper:\n    command: [/bin/sh, -c, \
         'id -u >> $STATE_DIRECTORY/uids; echo ok > $RUNTIME_DIRECTORY/pid; echo tmp > /tmp/t; \
         cat /tmp/t; exec sleep 100000']\n    directories:\n      state: [bh-escape-keeper]\n      \
         runtime: [bh-escape-keeper]\n",
    );
    let state = Path::new("/var/lib/bh-escape-keeper");
    let _ = std::fs::remove_dir_all(state);
    // /var/lib is the host's (read-only 9p in the VM): give it a tmpfs.
    let _ = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs", "/var/lib"])
        .status();
    bh.start();
    let uids = state.join("uids");
    bh.wait_for("the keeper wrote its uid", 60, |_| uids.exists());
    let meta = std::fs::metadata(state).unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&meta);
    assert!((61184..=65519).contains(&uid), "dynamic uid {uid}");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&uids).unwrap()),
        uid
    );
    bh.sigkill();
    let out = bh.cli(&["status"]);
    assert!(!out.status.success());
    bh.start();
    let out = bh.cli(&["restart", "keeper"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    bh.wait_for("the keeper wrote again", 60, |_| {
        std::fs::read_to_string(&uids).is_ok_and(|t| t.lines().count() >= 2)
    });
    let written = std::fs::read_to_string(&uids).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert!(
        lines.iter().all(|l| *l == uid.to_string()),
        "the uid changed across restarts: {lines:?}"
    );
    assert_eq!(bh.sigterm().code(), Some(0));
    let _ = std::process::Command::new("umount")
        .arg("/var/lib")
        .status();
}
