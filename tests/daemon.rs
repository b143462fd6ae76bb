//! `bulkhead run` on the host: what it refuses before touching anything.
//! The daemon at work (restarts, adoption, reload, shutdown) is proven in
//! the VM by tests/vm_daemon.rs.

#![allow(clippy::unwrap_used)]

mod common;

use common::{bulkhead, stderr};

#[test]
fn an_invalid_config_stops_the_daemon_with_its_position() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "services:\n  web:\n    command: [/bin/true]\n    resources:\n      memory: { max: 64X }\n",
    )
    .unwrap();
    let out = bulkhead(&["run", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("CONFIG_INVALID_VALUE"), "{err}");
    assert!(err.contains("bad.yaml:5:"), "{err}");
}

#[test]
fn a_host_that_fails_preflight_is_refused_with_the_findings() {
    let check = bulkhead(&["check"]);
    if check.status.success() {
        eprintln!("skipped: this host passes `bulkhead check` (the VM tests cover the daemon)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("ok.yaml");
    let state = d.path().join("state");
    std::fs::write(
        &cfg,
        format!(
            "supervisor:\n  state_dir: {s}\n  control_socket: {s}/control.sock\n  log_dir: {s}/logs\nservices:\n  web:\n    command: [/bin/sleep, infinity]\n",
            s = state.display()
        ),
    )
    .unwrap();
    let out = bulkhead(&["run", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("CHECK_FAILED"), "{err}");
    assert!(err.contains("bulkhead check"), "{err}");
    // Refused before the state dir or the socket exist.
    assert!(!state.exists(), "the state dir was created");
}
