//! Cgroup directories made of the captured kernel files
//! (tests/fixtures/kernel, see its README). Used by tests/metrics.rs and,
//! by its path, by the unit tests of src/api/metrics.rs: an integration
//! test cannot see the library's `#[cfg(test)]` items, and a fixture has
//! no place in its API.

use std::path::Path;

/// Copies captured kernel files into `dir` (created if need be) under the
/// names the kernel gives them: `(name, captured file)` pairs.
pub fn fixture_cgroup(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel");
    for (name, captured) in files {
        std::fs::copy(kernel.join(captured), dir.join(name)).unwrap();
    }
}

/// The `work` cgroup of the capture (throttled, over memory.high, a fork
/// refused, IO on two devices), with memory.events from the `oom` cgroup,
/// which had an OOM kill.
pub const WORK: &[(&str, &str)] = &[
    ("cpu.stat", "cpu.stat-throttled"),
    ("cpu.pressure", "cpu.pressure"),
    ("io.pressure", "io.pressure"),
    ("io.stat", "io.stat"),
    ("memory.current", "memory.current"),
    ("memory.events", "memory.events-oom"),
    ("memory.high", "memory.high"),
    ("memory.max", "memory.max"),
    ("memory.peak", "memory.peak"),
    ("memory.pressure", "memory.pressure"),
    ("pids.current", "pids.current"),
    ("pids.events", "pids.events"),
    ("pids.max", "pids.max"),
];

/// A cgroup without controllers (`plain/leaf` of the capture: its parent
/// enables none): cpu.stat's usage fields only.
pub const BARE: &[(&str, &str)] = &[("cpu.stat", "cpu.stat")];
