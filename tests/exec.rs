//! `bulkhead exec` on the host: namespaces, the init, credentials,
//! capabilities, rlimits and every setup failure work without cgroup v2
//! controllers, so they are proven here (as root, as CI runs).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

mod common;

use common::{exec, require_root, stderr, stdout};

#[test]
fn sees_only_its_own_processes_as_a_child_of_our_init() {
    require_root();
    // As root, with /proc's hidepid off, to see who PID 1 is (with it on,
    // the init is invisible even to root: see below).
    let o = exec(&[
        "--user",
        "root",
        "--protect",
        "proc=off",
        "--",
        "/bin/sh",
        "-c",
        "echo self=$$ parent=$PPID; ls /proc | grep -cE '^[0-9]+$'; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(o.status.success());
    let out = stdout(&o);
    // PID 1 is bulkhead's init, the shell is its child, and /proc shows only
    // this namespace (init, sh, ls, grep, and the pipeline's cat at most).
    assert!(out.contains("self=2 parent=1"), "{out}");
    let count: u32 = out.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(count <= 6, "saw {count} processes in /proc");
    assert!(out.contains("bulkhead-init __init"), "{out}");

    // With every default, a root service does not see its init: /proc's
    // gid= gives group 0 no exemption and the init is not dumpable.
    let o = exec(&[
        "--user",
        "root",
        "--",
        "/bin/sh",
        "-c",
        "if [ -e /proc/1 ]; then echo init visible; else echo init hidden; fi",
    ]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "init hidden", "{}", stderr(&o));
}

#[test]
fn exit_status_passes_through_and_is_reported() {
    require_root();
    let o = exec(&["--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert!(stderr(&o).contains("exited with status 7"));
}

#[test]
fn drops_every_capability_and_sets_no_new_privs() {
    require_root();
    let o = exec(&[
        "--",
        "/bin/grep",
        "-E",
        "^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):",
        "/proc/self/status",
    ]);
    let out = stdout(&o);
    for line in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn keeps_the_capabilities_asked_for() {
    require_root();
    // CAP_NET_BIND_SERVICE is bit 10.
    let o = exec(&[
        "--cap",
        "net_bind_service",
        "--user",
        "nobody",
        "--",
        "/bin/grep",
        "-E",
        "^Cap(Eff|Bnd|Amb):",
        "/proc/self/status",
    ]);
    let out = stdout(&o);
    for line in [
        "CapEff:\t0000000000000400",
        "CapBnd:\t0000000000000400",
        "CapAmb:\t0000000000000400",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn read_only_paths_cannot_be_written_and_host_mounts_stay() {
    require_root();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = common::visible_tempdir();
    let path = dir.path().to_str().unwrap();
    let o = exec(&[
        "--ro",
        path,
        "--",
        "/bin/sh",
        "-c",
        &format!("touch {path}/x && echo wrote || echo refused"),
    ]);
    assert!(
        stdout(&o).contains("refused"),
        "a read-only path was written"
    );
    assert!(!dir.path().join("x").exists());
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(before, after, "the host's mounts changed");
    // The same path is writable with --rw (and as root: the directory is
    // root's).
    let o = exec(&[
        "--rw",
        path,
        "--user",
        "root",
        "--",
        "/bin/sh",
        "-c",
        &format!("touch {path}/x && echo wrote"),
    ]);
    assert!(stdout(&o).contains("wrote"));
}

#[test]
fn tmpfs_hides_the_host_directory() {
    require_root();
    let dir = common::visible_tempdir();
    std::fs::write(dir.path().join("secret"), "s").unwrap();
    let path = dir.path().to_str().unwrap();
    let o = exec(&["--tmpfs", path, "--", "/bin/ls", "-A", path]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        "",
        "the tmpfs did not cover the directory"
    );
}

#[test]
fn fsize_rlimit_kills_with_sigxfsz() {
    require_root();
    let dir = common::visible_tempdir();
    let target = dir.path().join("big");
    let o = exec(&[
        "--rlimit",
        "fsize=1024",
        "--rw",
        dir.path().to_str().unwrap(),
        "--user",
        "root",
        "--",
        "/bin/sh",
        "-c",
        &format!(
            "exec /usr/bin/head -c 4096 /dev/zero > {}",
            target.display()
        ),
    ]);
    assert_eq!(o.status.code(), Some(128 + libc::SIGXFSZ));
    assert!(stderr(&o).contains("killed by SIGXFSZ"), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 1024);
}

#[test]
fn a_dropped_user_cannot_read_a_root_only_file() {
    require_root();
    let dir = common::visible_tempdir();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = secret.to_str().unwrap();
    let o = exec(&["--user", "nobody", "--", "/bin/cat", s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let o = exec(&["--user", "root", "--", "/usr/bin/id", "-u"]);
    assert_eq!(stdout(&o).trim(), "0");
    // With no --user: a transient dynamic user of its own.
    let o = exec(&["--", "/usr/bin/id", "-u"]);
    let uid: u32 = stdout(&o).trim().parse().unwrap();
    assert!((61184..=65519).contains(&uid), "{uid}");
    let o = exec(&["--user", "nobody", "--", "/usr/bin/id", "-u"]);
    assert_eq!(stdout(&o).trim(), "65534");
}

#[test]
fn the_init_reaps_orphaned_zombies() {
    require_root();
    // The inner shell exits at once; its background sleep is orphaned to
    // PID 1 (our init) and must be reaped when it ends: its /proc entry
    // goes (a zombie keeps it), 10 s at most.
    let o = exec(&[
        "--",
        "/bin/sh",
        "-c",
        "p=$(sh -c 'sleep 0.2 >/dev/null & echo $!'); i=0; \
         while [ -e /proc/$p ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
         grep -l '^State:.*Z' /proc/[0-9]*/status || echo no-zombies",
    ]);
    assert!(stdout(&o).contains("no-zombies"), "{}", stdout(&o));
}

#[test]
fn sigterm_to_exec_reaches_the_command() {
    require_root();
    let bin = assert_cmd::cargo::cargo_bin("bulkhead");
    let mut child = StdCommand::new(bin)
        .args([
            "exec",
            "--",
            "/bin/sh",
            "-c",
            "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn each_setup_failure_has_its_own_error() {
    require_root();
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--user", "no-such-user-xyz", "--", "/bin/true"],
            "CONFIG_UNKNOWN_ACCOUNT",
            "no-such-user-xyz",
        ),
        (
            &["--", "/no/such/command"],
            "CONFIG_COMMAND",
            "command not found: /no/such/command",
        ),
        (
            &["--ro", "/no/such/path", "--", "/bin/true"],
            "CONFIG_PATH",
            "/no/such/path",
        ),
        (
            &["--seccomp", "/no/such/profile.json", "--", "/bin/true"],
            "CONFIG_SECCOMP_PROFILE",
            "cannot read",
        ),
        (
            &["--memory", "64X", "--", "/bin/true"],
            "CONFIG_INVALID_VALUE",
            "resources.memory.max",
        ),
        (
            &["--cap", "CAP_NOPE", "--", "/bin/true"],
            "CONFIG_UNKNOWN_CAPABILITY",
            "CAP_NOPE",
        ),
    ];
    for (args, code, text) in cases {
        let o = exec(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("error[{code}]")) && err.contains(text),
            "{args:?}: {err}"
        );
        assert!(err.contains("= help:"), "{args:?}: no suggestion in {err}");
    }
    // A failure inside the compartment names the step and the errno. The
    // directory is root's and closed to others (tempdir follows the umask).
    let dir = common::visible_tempdir();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let o = exec(&[
        "--user",
        "nobody",
        "--cwd",
        dir.path().to_str().unwrap(),
        "--",
        "/bin/true",
    ]);
    let err = stderr(&o);
    assert!(
        err.contains("error[SPAWN_FAILED]") && err.contains("step=chdir errno=EACCES"),
        "{err}"
    );
}

#[test]
fn hostname_in_its_own_uts_namespace() {
    require_root();
    let o = exec(&[
        "--ns",
        "uts,net",
        "--",
        "/bin/sh",
        "-c",
        "hostname; cat /proc/net/dev | grep -c :",
    ]);
    let out = stdout(&o);
    // A new net namespace has only loopback.
    assert_eq!(out.lines().nth(1).map(str::trim), Some("1"), "{out}");
    let _ = Duration::ZERO;
}
