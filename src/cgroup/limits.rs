//! Limits: pure rendering from config values to the text the kernel reads,
//! then one function that writes them. Rendering never touches the system;
//! resolving an io device path to `MAJ:MIN` is the only lookup, done first.

use std::path::{Path, PathBuf};

use crate::config::units::{Cpu, Size};
use crate::config::{IoDevice, Resources};

use super::CgroupError;

/// One file and the text to write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: &'static str,
    pub value: String,
}

fn w(file: &'static str, value: impl Into<String>) -> Write {
    Write {
        file,
        value: value.into(),
    }
}

/// A block device as the kernel names it in io.max and io.stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Why a device path cannot be limited.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot stat io device {path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a block device; io.max limits whole block devices such as /dev/sda")]
    NotBlock { path: PathBuf },
}

/// `/dev/nullb0` -> `254:0`. Symlinks (`/dev/disk/by-id/...`) are followed.
pub fn device_number(path: &Path) -> Result<DevNum, DeviceError> {
    let st = rustix::fs::stat(path).map_err(|e| DeviceError::Stat {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::BlockDevice {
        return Err(DeviceError::NotBlock {
            path: path.to_path_buf(),
        });
    }
    Ok(DevNum {
        major: rustix::fs::major(st.st_rdev),
        minor: rustix::fs::minor(st.st_rdev),
    })
}

/// `cpu.max`: "$QUOTA $PERIOD" in microseconds, or "max $PERIOD".
/// 1.5 cores with the default 100ms period -> "150000 100000"; 20% -> "20000 100000".
pub fn render_cpu_max(cpu: Cpu, period_us: u64) -> String {
    match cpu {
        Cpu::Max => format!("max {period_us}"),
        Cpu::Millicores(m) => {
            // Never below the kernel's 1ms minimum quota (validation rejects
            // configs that would need it; this keeps live writes safe too).
            let quota = (u128::from(m) * u128::from(period_us) / 1000).max(1000);
            format!("{quota} {period_us}")
        }
    }
}

/// A size for memory.* files: bytes, or "max".
pub fn render_size(s: Size) -> String {
    match s {
        Size::Max => "max".to_string(),
        Size::Bytes(b) => b.to_string(),
    }
}

/// One io.max line: "254:0 rbps=1048576 wbps=max riops=max wiops=max".
/// Unset limits are written as max so a live change can lift one.
pub fn render_io_max(dev: DevNum, d: &IoDevice) -> String {
    let size = |s: Option<Size>| s.map_or_else(|| "max".to_string(), render_size);
    let ops = |o: Option<u64>| o.map_or_else(|| "max".to_string(), |v| v.to_string());
    format!(
        "{dev} rbps={} wbps={} riops={} wiops={}",
        size(d.read_bps),
        size(d.write_bps),
        ops(d.read_iops),
        ops(d.write_iops)
    )
}

/// The writes that give a cgroup `r`, in the order they must happen.
/// `devices` holds the resolved number of each `r.io.devices` entry, same order.
///
/// Order, and why:
/// 1. cpuset.mems, then cpuset.cpus: placement first, so nothing later runs
///    on CPUs or nodes it must not (cpus after mems, as the cpuset docs do).
/// 2. cpu.weight, cpu.max: bandwidth.
/// 3. memory.low, then memory.high, then memory.max, then memory.swap.max:
///    when a live change lowers the limits below current usage, memory.high
///    first makes the kernel reclaim gently before memory.max would OOM-kill;
///    swap after max so a lowered max is not escaped into swap.
///    memory.oom.group last: it only matters once a limit can be hit.
/// 4. io.weight, io.max per device.
/// 5. pids.max last: it can make the service's next fork fail, so it comes
///    after everything that could still fail to apply.
pub fn render(r: &Resources, devices: &[DevNum]) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(mems) = &r.cpu.mems {
        out.push(w("cpuset.mems", mems.to_string()));
    }
    if let Some(cpus) = &r.cpu.cpuset {
        out.push(w("cpuset.cpus", cpus.to_string()));
    }
    if let Some(weight) = r.cpu.weight {
        out.push(w("cpu.weight", weight.to_string()));
    }
    if let Some(max) = r.cpu.max {
        let period = u64::try_from(r.cpu.period.0.as_micros()).unwrap_or(100_000);
        out.push(w("cpu.max", render_cpu_max(max, period)));
    }
    let m = &r.memory;
    for (file, v) in [
        ("memory.low", m.low),
        ("memory.high", m.high),
        ("memory.max", m.max),
        ("memory.swap.max", m.swap_max),
    ] {
        if let Some(v) = v {
            out.push(w(file, render_size(v)));
        }
    }
    if m.max.is_some() || m.high.is_some() {
        out.push(w("memory.oom.group", if m.oom_group { "1" } else { "0" }));
    }
    if let Some(weight) = r.io.weight {
        out.push(w("io.weight", format!("default {weight}")));
    }
    for (d, dev) in r.io.devices.iter().zip(devices) {
        out.push(w("io.max", render_io_max(*dev, d)));
    }
    if let Some(p) = r.pids_max {
        out.push(w("pids.max", p.to_string()));
    }
    out
}

/// The writes that undo every limit `render` can set, for a live change that
/// removes a key: the kernel's own defaults. Files of a controller the cgroup
/// does not have are absent there; `supervisor::reload` writes only the
/// resets of files that were set before. io.max lines are not here: undoing
/// one needs the removed device (`render_io_max` with every limit unset).
pub fn render_reset(r: &Resources) -> Vec<Write> {
    let mut out = Vec::new();
    // An empty cpuset uses the parent's. Written as a newline: an empty
    // write(2) never reaches the kernel.
    if r.cpu.mems.is_none() {
        out.push(w("cpuset.mems", "\n"));
    }
    if r.cpu.cpuset.is_none() {
        out.push(w("cpuset.cpus", "\n"));
    }
    if r.cpu.max.is_none() {
        out.push(w("cpu.max", "max 100000"));
    }
    if r.cpu.weight.is_none() {
        out.push(w("cpu.weight", "100"));
    }
    for (file, v) in [
        ("memory.low", r.memory.low),
        ("memory.high", r.memory.high),
        ("memory.max", r.memory.max),
        ("memory.swap.max", r.memory.swap_max),
    ] {
        if v.is_none() {
            out.push(w(file, if file == "memory.low" { "0" } else { "max" }));
        }
    }
    // `render` writes memory.oom.group only along with a limit.
    if r.memory.max.is_none() && r.memory.high.is_none() {
        out.push(w("memory.oom.group", "0"));
    }
    if r.io.weight.is_none() {
        out.push(w("io.weight", "default 100"));
    }
    if r.pids_max.is_none() {
        out.push(w("pids.max", "max"));
    }
    out
}

/// Resolves every io device of `r` to its number.
pub fn resolve_devices(r: &Resources) -> Result<Vec<DevNum>, DeviceError> {
    r.io.devices
        .iter()
        .map(|d| device_number(&d.device))
        .collect()
}

/// Writes `r` to the cgroup at `dir`, in `render`'s order. Works on a live
/// cgroup too (a reload that changes limits calls this again). Stops at the
/// first write the kernel refuses; the error names the file and the value.
pub fn apply(dir: &Path, r: &Resources, devices: &[DevNum]) -> Result<(), CgroupError> {
    for wr in render(r, devices) {
        super::write(dir, wr.file, &wr.value)?;
    }
    Ok(())
}

/// The controllers a cgroup with these limits needs enabled in its parent.
pub fn controllers_needed(r: &Resources) -> Vec<&'static str> {
    let mut c = vec!["cpu", "memory", "io", "pids"];
    if r.cpu.cpuset.is_some() || r.cpu.mems.is_some() {
        c.insert(0, "cpuset");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::{CpuList, Dur};

    #[test]
    fn cpu_max_examples() {
        // 150000 100000 -> one and a half CPUs every 100ms.
        assert_eq!(
            render_cpu_max(Cpu::Millicores(1500), 100_000),
            "150000 100000"
        );
        // 20000 100000 -> 20% of one CPU.
        assert_eq!(
            render_cpu_max(Cpu::Millicores(200), 100_000),
            "20000 100000"
        );
        // 10000 50000 -> 20% of one CPU every 50ms.
        assert_eq!(render_cpu_max(Cpu::Millicores(200), 50_000), "10000 50000");
        assert_eq!(render_cpu_max(Cpu::Max, 100_000), "max 100000");
        // Below the 1ms minimum quota: clamped up.
        assert_eq!(render_cpu_max(Cpu::Millicores(1), 100_000), "1000 100000");
    }

    #[test]
    fn io_max_line() {
        let d = IoDevice {
            device: "/dev/nullb0".into(),
            read_bps: None,
            write_bps: Some(Size::Bytes(1 << 20)),
            read_iops: Some(100),
            write_iops: None,
        };
        assert_eq!(
            render_io_max(
                DevNum {
                    major: 254,
                    minor: 0
                },
                &d
            ),
            "254:0 rbps=max wbps=1048576 riops=100 wiops=max"
        );
    }

    #[test]
    fn render_order_and_values() {
        let mut r = Resources::default();
        r.cpu.period = Dur::millis(100);
        r.cpu.max = Some(Cpu::Millicores(500));
        r.cpu.weight = Some(200);
        r.cpu.cpuset = Some(CpuList::parse("0-1").unwrap());
        r.memory.max = Some(Size::Bytes(64 << 20));
        r.memory.high = Some(Size::Bytes(48 << 20));
        r.memory.swap_max = Some(Size::Bytes(0));
        r.memory.oom_group = true;
        r.pids_max = Some(64);
        r.io.weight = Some(50);
        let files: Vec<(&str, String)> = render(&r, &[])
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        assert_eq!(
            files,
            vec![
                ("cpuset.cpus", "0-1".to_string()),
                ("cpu.weight", "200".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("memory.high", "50331648".to_string()),
                ("memory.max", "67108864".to_string()),
                ("memory.swap.max", "0".to_string()),
                ("memory.oom.group", "1".to_string()),
                ("io.weight", "default 50".to_string()),
                ("pids.max", "64".to_string()),
            ]
        );
        assert_eq!(
            controllers_needed(&r),
            vec!["cpuset", "cpu", "memory", "io", "pids"]
        );
    }

    #[test]
    fn empty_resources_write_nothing() {
        assert!(render(&Resources::default(), &[]).is_empty());
        let reset: Vec<&str> = render_reset(&Resources::default())
            .into_iter()
            .map(|w| w.file)
            .collect();
        assert!(reset.contains(&"memory.max") && reset.contains(&"pids.max"));
    }

    #[test]
    fn reset_undoes_every_file_render_writes() {
        let mut r = Resources::default();
        r.cpu.max = Some(Cpu::Max);
        r.cpu.weight = Some(1);
        r.cpu.cpuset = Some(CpuList::parse("0").unwrap());
        r.cpu.mems = Some(CpuList::parse("0").unwrap());
        r.memory.low = Some(Size::Max);
        r.memory.high = Some(Size::Max);
        r.memory.max = Some(Size::Max);
        r.memory.swap_max = Some(Size::Max);
        r.io.weight = Some(1);
        r.pids_max = Some(2);
        let mut set: Vec<&str> = render(&r, &[]).into_iter().map(|w| w.file).collect();
        let mut reset: Vec<&str> = render_reset(&Resources::default())
            .into_iter()
            .map(|w| w.file)
            .collect();
        set.sort_unstable();
        reset.sort_unstable();
        assert_eq!(set, reset);
        // Nothing is reset that is set.
        assert!(render_reset(&r).is_empty());
    }

    #[test]
    fn apply_writes_into_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = Resources {
            pids_max: Some(16),
            ..Default::default()
        };
        r.memory.max = Some(Size::Max);
        for f in ["pids.max", "memory.max", "memory.oom.group"] {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        apply(tmp.path(), &r, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("pids.max")).unwrap(),
            "16"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("memory.max")).unwrap(),
            "max"
        );
        // A missing cgroup gives an error naming the file and value.
        let err = apply(&tmp.path().join("gone"), &r, &[]).unwrap_err();
        assert!(err.to_string().contains("gone/memory.max"), "{err}");
    }

    #[test]
    fn device_numbers() {
        assert!(matches!(
            device_number(Path::new("/dev/null")),
            Err(DeviceError::NotBlock { .. })
        ));
        assert!(matches!(
            device_number(Path::new("/dev/definitely-missing")),
            Err(DeviceError::Stat { .. })
        ));
    }
}
