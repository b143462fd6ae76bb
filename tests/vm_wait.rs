//! The commands scripts wait on, against the real daemon on a cgroup v2
//! kernel: `start|stop --wait`, `is-active`, `status SERVICE`'s exit 3, and
//! `kill` reaching the service through its init (HUP heard by the service
//! with no restart; KILL ending the run, which the restart policy then
//! handles). Run by `scripts/vm-test vm_wait`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::daemon::{Bh, text};
use common::wait_until;

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn wait_is_active_and_kill_on_the_real_daemon() {
    let tmp = common::daemon::scratch("bh-t-");
    let marks = tmp.path().join("marks");
    // The service runs as a dynamic user: it appends here.
    std::fs::write(&marks, "").unwrap();
    std::fs::set_permissions(&marks, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let svc = format!(
        "services:
  web:
    command: [/bin/sh, -c, 'trap \"echo hup >> {m}\" HUP; echo up >> {m}; while :; do /bin/sleep 0.2; done']
    restart:
      policy: always
",
        m = marks.display()
    );
    let mut bh = Bh::new("wait", &svc);
    bh.start();

    let o = bh.cli(&["start", "web", "--wait", "--timeout", "60s"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).ends_with("web: ready (1 instance)\n"));
    let o = bh.cli(&["is-active", "web"]);
    assert_eq!(
        (code(&o), text(&o.stdout)),
        (Some(0), "active\n".to_string())
    );
    assert_eq!(code(&bh.cli(&["status", "web"])), Some(0));

    // HUP: forwarded by the init, heard by the shell's trap, no restart.
    wait_until("the trap is installed", Duration::from_secs(30), || {
        std::fs::read_to_string(&marks).unwrap().contains("up")
    });
    let o = bh.cli(&["kill", "web", "-s", "HUP"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "killed 1 instance of web with SIGHUP\n");
    wait_until("the service heard SIGHUP", Duration::from_secs(30), || {
        std::fs::read_to_string(&marks).unwrap().contains("hup")
    });
    let s = bh.status().unwrap();
    assert_eq!(s.services[0].instances[0].restarts, 0, "{s:?}");

    // KILL ends the run; the policy (always) starts it again.
    let o = bh.cli(&["kill", "web", "-s", "KILL"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    bh.wait_for("web restarted after SIGKILL", 60, |s| {
        let i = &s.services[0].instances[0];
        i.restarts >= 1 && i.state == "running"
    });

    let o = bh.cli(&["stop", "web", "--wait", "--timeout", "60s"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).ends_with("web: stopped (1 instance)\n"));
    let o = bh.cli(&["is-active", "web"]);
    assert_eq!(
        (code(&o), text(&o.stdout)),
        (Some(3), "inactive\n".to_string())
    );
    assert_eq!(code(&bh.cli(&["status", "web"])), Some(3));
    let o = bh.cli(&["kill", "web"]);
    assert_eq!(code(&o), Some(1));
    assert!(
        text(&o.stderr).contains("NOT_RUNNING"),
        "{}",
        text(&o.stderr)
    );

    let o = bh.cli(&["restart", "web", "--wait", "--timeout", "60s"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(bh.sigterm().success());
}
