//! Privileged tests of the foundation, run inside the VM by scripts/vm-test.

mod common;

use assert_cmd::Command;
use common::{TestCgroup, cgroup2_with_controllers};

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn check_reports_all_ok_with_controllers() {
    cgroup2_with_controllers();
    let out = Command::cargo_bin("bulkhead")
        .unwrap()
        .args(["check", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "bulkhead check failed in the VM:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for f in &findings {
        assert_eq!(f["status"], "ok", "not ok in a cgroup v2 VM: {f}");
    }
    for name in [
        "kernel",
        "cgroup2",
        "controllers",
        "subtree",
        "psi",
        "clone3",
        "pidfd",
        "seccomp",
        "capabilities",
    ] {
        assert!(
            findings.iter().any(|f| f["check"] == name),
            "no {name} line"
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a cgroup v2 kernel; run by scripts/vm-test"]
fn cgroup_created_by_bulkhead_accepts_memory_max() {
    let cg = TestCgroup::new("foundation-memory");
    // The controller files exist only because enable_controllers worked down the path.
    bulkhead::cgroup::write(&cg.dir, "memory.max", "64M").unwrap();
    assert_eq!(
        bulkhead::cgroup::read(&cg.dir, "memory.max")
            .unwrap()
            .trim(),
        (64u64 << 20).to_string()
    );
    // And the kernel refuses nonsense with an error that names the file and value.
    let err = bulkhead::cgroup::write(&cg.dir, "memory.max", "lots").unwrap_err();
    assert!(
        err.to_string().contains("memory.max") && err.to_string().contains("lots"),
        "{err}"
    );
}
