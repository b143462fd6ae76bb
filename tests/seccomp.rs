//! seccomp on the host: `bulkhead exec` compiles the profile in the parent
//! and the init installs it in the command, so every filter here lands in a
//! compartment, never on the test runner. Each refusal is checked against
//! `--seccomp unconfined` where the kernel would otherwise allow the call,
//! so the test proves the filter and not a missing capability.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

mod common;

use common::{bulkhead, require_root, stderr, stdout};

const PYTHON: &str = "/usr/bin/python3";

/// `bulkhead exec FLAGS -- COMMAND`.
fn exec(flags: &[&str], command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    bulkhead(&args)
}

/// A profile file in a temporary directory (kept while the guard lives).
fn profile(json: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.json");
    std::fs::write(&path, json).unwrap();
    (dir, path)
}

/// Python that makes one raw system call and prints `errno N` (0 on success).
fn python_syscall(call: &str) -> String {
    format!(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nr = {call}\nprint('errno', ctypes.get_errno() if r == -1 else 0)"
    )
}

#[test]
fn the_default_profile_refuses_namespaces_keyrings_ptrace_and_mount() {
    require_root();
    // unshare(CLONE_NEWUSER) needs no capability: only the filter refuses it.
    let o = exec(&[], &["/usr/bin/unshare", "-U", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let o = exec(
        &["--seccomp", "unconfined"],
        &["/usr/bin/unshare", "-U", "true"],
    );
    assert!(o.status.success(), "unconfined, unshare -U works");

    let o = exec(&[], &["/usr/bin/unshare", "-m", "true"]);
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );

    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) and
    // ptrace(PTRACE_TRACEME) need no capability either.
    let keyctl = python_syscall(&format!(
        "libc.syscall(ctypes.c_long({}), ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(0))",
        libc::SYS_keyctl
    ));
    let ptrace = python_syscall(
        "libc.ptrace(ctypes.c_long(0), ctypes.c_long(0), ctypes.c_void_p(0), ctypes.c_void_p(0))",
    );
    for (what, code) in [("keyctl", &keyctl), ("ptrace", &ptrace)] {
        let o = exec(&[], &[PYTHON, "-c", code]);
        assert_eq!(
            stdout(&o).trim(),
            "errno 1",
            "{what} was not refused with EPERM"
        );
        let o = exec(&["--seccomp", "unconfined"], &[PYTHON, "-c", code]);
        assert_ne!(
            stdout(&o).trim(),
            "errno 1",
            "{what} is refused even unconfined"
        );
        assert!(stdout(&o).starts_with("errno"), "{what}: {}", stdout(&o));
    }

    // mount needs CAP_SYS_ADMIN: without it the filter refuses it before the
    // kernel would; with it the default profile opens mount (as Docker's
    // does), strict does not, and unconfined shows the kernel allows it.
    // As root: mount(8) refuses any other user before it tries.
    let mount = ["/usr/bin/mount", "-t", "tmpfs", "x", "/mnt"];
    let o = exec(&["--user", "root"], &mount);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    let o = exec(
        &[
            "--user",
            "root",
            "--cap",
            "CAP_SYS_ADMIN",
            "--seccomp",
            "strict",
        ],
        &mount,
    );
    assert!(!o.status.success(), "strict allowed mount");
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    let o = exec(
        &[
            "--user",
            "root",
            "--cap",
            "CAP_SYS_ADMIN",
            "--seccomp",
            "unconfined",
        ],
        &mount,
    );
    assert!(o.status.success(), "the control mount failed");
    let o = exec(&["--user", "root", "--cap", "CAP_SYS_ADMIN"], &mount);
    assert!(
        o.status.success(),
        "CAP_SYS_ADMIN should open mount in default"
    );
}

#[test]
fn ordinary_programs_run_under_the_default_profile() {
    require_root();
    // Where the command (a dynamic user) can read it: not in /tmp, which
    // it gets a private one of.
    let dir = common::visible_tempdir();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let file = dir.path().join("words");
    std::fs::write(&file, "pear\napple\n").unwrap();
    let f = file.to_str().unwrap();
    let script = format!(
        "set -e; echo sh-ok; ls / > /dev/null && echo ls-ok; cat {f} | sort | head -1; date +%Y > /dev/null && echo date-ok; {PYTHON} -c 'print(1)'; {PYTHON} -c 'import threading, subprocess; t = threading.Thread(target=print, args=(\"thread-ok\",)); t.start(); t.join(); print(subprocess.run([\"/bin/echo\", \"spawn-ok\"], capture_output=True, text=True).stdout.strip())'"
    );
    let o = exec(&[], &["/bin/sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "sh-ok\nls-ok\napple\ndate-ok\n1\nthread-ok\nspawn-ok\n"
    );
}

#[test]
fn the_filter_is_installed_in_filter_mode() {
    require_root();
    let status = ["/bin/grep", "^Seccomp:", "/proc/self/status"];
    for (flags, want) in [
        (&[][..], "Seccomp:\t2"),
        (&["--seccomp", "strict"][..], "Seccomp:\t2"),
        (&["--seccomp", "unconfined"][..], "Seccomp:\t0"),
    ] {
        let o = exec(flags, &status);
        assert_eq!(stdout(&o).trim(), want, "{flags:?}");
    }
}

#[test]
fn a_kill_process_rule_ends_the_command_with_sigsys() {
    require_root();
    let (_dir, path) = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    // core=0: a seccomp kill dumps core otherwise.
    let o = exec(
        &["--rlimit", "core=0", "--seccomp", path.to_str().unwrap()],
        &["/bin/uname"],
    );
    assert_eq!(o.status.code(), Some(128 + libc::SIGSYS));
    let err = stderr(&o);
    assert!(
        err.contains("killed by SIGSYS: a system call outside its seccomp profile"),
        "{err}"
    );
    // Everything else still runs under that profile.
    let o = exec(
        &["--seccomp", path.to_str().unwrap()],
        &["/bin/echo", "fine"],
    );
    assert_eq!(stdout(&o), "fine\n");
}

#[test]
fn errno_returns_and_argument_conditions_are_applied() {
    require_root();
    // uname fails with ENOSYS; socket(AF_INET, ...) with EAFNOSUPPORT
    // while other families stay allowed.
    let (_dir, path) = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
  {{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": {}}},
  {{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": {},
    "args": [{{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}}]}}]}}"#,
        libc::ENOSYS,
        libc::EAFNOSUPPORT
    ));
    let p = path.to_str().unwrap();
    let o = exec(&["--seccomp", p], &["/bin/uname"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Function not implemented"),
        "{}",
        stderr(&o)
    );
    let code = "import socket\nsocket.socket(socket.AF_UNIX).close()\nprint('unix-ok')\ntry:\n    socket.socket(socket.AF_INET)\nexcept OSError as e:\n    print('inet', e.errno)";
    let o = exec(&["--seccomp", p], &[PYTHON, "-c", code]);
    assert_eq!(
        stdout(&o),
        format!("unix-ok\ninet {}\n", libc::EAFNOSUPPORT)
    );
}

#[test]
fn the_strict_profile_allows_only_unix_sockets_and_no_new_processes() {
    require_root();
    let code = "import socket\nsocket.socket(socket.AF_UNIX).close()\nprint('unix-ok')\ntry:\n    socket.socket(socket.AF_INET)\nexcept OSError as e:\n    print('inet', e.errno)";
    let o = exec(&["--seccomp", "strict"], &[PYTHON, "-c", code]);
    assert_eq!(stdout(&o), "unix-ok\ninet 1\n");
    let o = exec(
        &["--seccomp", "strict"],
        &["/bin/sh", "-c", "echo in-sh; /bin/true"],
    );
    assert_eq!(stdout(&o), "in-sh\n");
    assert!(stderr(&o).contains("Cannot fork"), "{}", stderr(&o));
}

#[test]
fn a_bad_profile_is_a_config_error_naming_the_field() {
    require_root();
    let cases = [
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"nmaes": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].nmaes: unknown field `nmaes`",
            "did you mean `names`?",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOWED"}]}"#,
            "syscalls[0].action: unknown action `SCMP_ACT_ALLOWED`",
            "did you mean `SCMP_ACT_ALLOW`?",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_TRACE"}]}"#,
            "syscalls[0].action: SCMP_ACT_TRACE is not supported",
            "SCMP_ACT_ERRNO",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "keyctll"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].names[1]: `keyctll` is not a system call on any architecture",
            "did you mean `keyctl`?",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#,
            "flags[0]: SECCOMP_FILTER_FLAG_LOG is not supported",
            "SCMP_ACT_LOG",
        ),
    ];
    for (json, message, help) in cases {
        let (_dir, path) = profile(json);
        let p = path.to_str().unwrap();
        let o = exec(&["--seccomp", p], &["/bin/true"]);
        assert_eq!(o.status.code(), Some(2), "{json}");
        let err = stderr(&o);
        assert!(err.contains("error[CONFIG_SECCOMP_PROFILE]"), "{err}");
        assert!(err.contains(message), "{json}: {err}");
        assert!(err.contains(&format!("profile={p}:1:")), "{json}: {err}");
        assert!(err.contains(help), "{json}: {err}");
        // `seccomp check` says the same, with the line shown.
        let o = bulkhead(&["seccomp", "check", p]);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(
            err.contains(message) && err.contains(&format!("--> {p}:1:")),
            "{err}"
        );
    }
}

#[test]
fn seccomp_check_prints_what_a_profile_allows() {
    // The profile alone first (--bare); what the walls add is checked below.
    let o = bulkhead(&["seccomp", "check", "default", "--bare"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for want in [
        "default action: ERRNO(EPERM)",
        "allowed (",
        " openat ",
        "refused with an errno, as listed",
        "clone3=ERRNO(ENOSYS)",
        "clone: ALLOW if arg0 & 0x7e020000 == 0x0",
        "(needs CAP_SYS_ADMIN): ",
        "BPF program:",
    ] {
        assert!(out.contains(want), "missing {want:?}");
    }
    let allowed = |out: &str, name: &str| {
        let section = out.split("allowed (").nth(1).unwrap();
        let section = section.split("\n\n").next().unwrap();
        section.split_whitespace().any(|w| w == name)
    };
    assert!(!allowed(&out, "mount"));
    let o = bulkhead(&["seccomp", "check", "default", "--cap", "sys_admin"]);
    assert!(
        allowed(&stdout(&o), "mount"),
        "--cap CAP_SYS_ADMIN opens mount"
    );
    assert!(stdout(&o).contains("capabilities: CAP_SYS_ADMIN"));

    // Without --bare, the walls a service gets are merged in (the suid
    // wall's chmod rule, for one).
    assert!(out.contains("walls:          none"), "{out}");
    assert!(!out.contains("chmod: ALLOW if"), "{out}");
    let walled = stdout(&bulkhead(&["seccomp", "check", "default"]));
    assert!(
        walled.contains("walls:          protect's defaults"),
        "{walled}"
    );
    assert!(
        walled.contains("chmod: ALLOW if arg1 & 0xc00 == 0x0"),
        "{walled}"
    );

    let o = bulkhead(&["seccomp", "check", "strict", "--bare"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("socket, socketpair: ALLOW if arg0 == 0x1"));
    let o = bulkhead(&["seccomp", "check", "unconfined"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("no seccomp filter"));

    // Calls above the highest the profile names get ENOSYS.
    assert!(
        out.contains("calls above ") && out.contains(": ENOSYS"),
        "{out}"
    );
    // A file, with names this architecture lacks counted (no_such_call
    // only with ignore_unknown: without it, it is an error).
    let (_dir, path) = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "ignore_unknown": true, "syscalls": [{"names": ["read", "socketcall", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let o = bulkhead(&["seccomp", "check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("(skipped, 2):\n  no_such_call socketcall"),
        "{}",
        stdout(&o)
    );

    for (args, code, text) in [
        (
            &["seccomp", "check", "defualt"][..],
            "CONFIG_SECCOMP_PROFILE",
            "did you mean `default`?",
        ),
        (
            &["seccomp", "check", "/no/such.json"][..],
            "CONFIG_SECCOMP_PROFILE",
            "cannot read",
        ),
        (
            &["seccomp", "check", "default", "--cap", "CAP_NOPE"][..],
            "CONFIG_UNKNOWN_CAPABILITY",
            "CAP_NOPE",
        ),
    ] {
        let o = bulkhead(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("error[{code}]")) && err.contains(text),
            "{err}"
        );
    }
}
