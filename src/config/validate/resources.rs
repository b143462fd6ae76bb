//! `resources:` of a service or a group: cpu, memory, io, pids and
//! rlimits, each checked against the kernel's bounds and the others of its
//! controller. It must not write to a cgroup (the `cgroup` module does),
//! and asks the host only what kind a device path is.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::{Checker, p, v};
use crate::config::host::{Host, PathKind};
use crate::config::model::*;
use crate::config::node::spanned_pos;
use crate::config::schema::*;
use crate::config::units::{Cpu, Dur, Limit, Rlimit, Size};
use crate::error::Code;

/// `resources` of a service (`owner` is `services.NAME`) or a group
/// (`groups.NAME`): each controller in the order its errors are reported.
pub(super) fn resources(c: &mut Checker, owner: &str, r: &RawResources) -> Resources {
    let cpu = cpu(c, owner, &r.cpu.clone().unwrap_or_default());
    let memory = memory(c, owner, &r.memory.clone().unwrap_or_default());
    let io = io(c, owner, &r.io.clone().unwrap_or_default());
    let pids_max = pids(c, owner, &r.pids.clone().unwrap_or_default());
    let rlimits = rlimits(c, owner, r.rlimits.as_ref());
    Resources {
        cpu,
        memory,
        io,
        pids_max,
        rlimits,
    }
}

/// `cpu`: a period the kernel takes, and a quota of at least 1ms in it.
fn cpu(c: &mut Checker, owner: &str, cpu: &RawCpu) -> CpuLimits {
    let at = |f: &str| format!("{owner}.resources.{f}");
    let period = v(&cpu.period).unwrap_or(Dur::millis(100));
    // The kernel takes cpu.max periods from 1ms to 1s, and a quota of at least 1ms.
    if period < Dur::millis(1) || period > Dur::secs(1) {
        c.report(
            Code::ConfigInvalidValue,
            p(&cpu.period),
            format!("{}: {period} is outside 1ms..1s", at("cpu.period")),
            "100ms is the kernel's default",
        );
    }
    if let Some(Cpu::Millicores(m)) = v(&cpu.max) {
        let quota_us = u128::from(m) * period.0.as_micros() / 1000;
        if m == 0 {
            c.report(
                Code::ConfigInvalidValue,
                p(&cpu.max),
                format!("{}: 0 cpu would never run", at("cpu.max")),
                "give a positive amount such as 0.5, or max",
            );
        } else if quota_us < 1000 {
            c.report(
                Code::ConfigInvalidValue,
                p(&cpu.max),
                format!("{}: {m}/1000 of a core per {period} period is a quota of {quota_us}us, below the kernel's 1ms minimum", at("cpu.max")),
                "raise cpu.max or lengthen cpu.period",
            );
        }
    }
    CpuLimits {
        max: v(&cpu.max),
        period,
        weight: weight(c, owner, &cpu.weight, "cpu.weight"),
        cpuset: v(&cpu.cpuset),
        mems: v(&cpu.mems),
    }
}

/// `cpu.weight` and `io.weight`: the kernel's 1..10000.
fn weight(c: &mut Checker, owner: &str, f: &Option<Spanned<u64>>, name: &str) -> Option<u64> {
    let at = |f: &str| format!("{owner}.resources.{f}");
    if let Some(w) = v(f)
        && !(1..=10000).contains(&w)
    {
        c.report(
            Code::ConfigInvalidValue,
            p(f),
            format!("{}: {w} is outside 1..10000", at(name)),
            "100 is the default share",
        );
    }
    v(f)
}

/// `memory`: room for a process, and low <= high <= max.
fn memory(c: &mut Checker, owner: &str, mem: &RawMemory) -> MemoryLimits {
    let at = |f: &str| format!("{owner}.resources.{f}");
    let (max, high, low) = (v(&mem.max), v(&mem.high), v(&mem.low));
    if let Some(Size::Bytes(b)) = max
        && b < (1 << 20)
    {
        c.report(
            Code::ConfigInvalidValue,
            p(&mem.max),
            format!(
                "{}: {} is too small for any process",
                at("memory.max"),
                Size::Bytes(b)
            ),
            "allow at least 1M (bulkhead's init alone is charged about 0.5M)",
        );
    }
    if let (Some(h), Some(m)) = (high, max)
        && h > m
    {
        c.report(
            Code::ConfigConflict,
            p(&mem.high),
            format!(
                "{}: high ({h}) is above max ({m}), so it would never throttle",
                at("memory.high")
            ),
            "set memory.high at or below memory.max (about 80-90% of it is typical)",
        );
    }
    if let Some(l) = low {
        for (other, o) in [("high", high), ("max", max)] {
            if let Some(o) = o
                && l > o
            {
                c.report(
                    Code::ConfigConflict,
                    p(&mem.low),
                    format!("{}: low ({l}) is above {other} ({o})", at("memory.low")),
                    format!("memory.low protects memory below memory.{other}; lower it"),
                );
            }
        }
    }
    MemoryLimits {
        max,
        high,
        low,
        swap_max: v(&mem.swap_max),
        oom_group: v(&mem.oom_group).unwrap_or(true),
    }
}

/// `io`: each device entry a block device of this host with a limit that
/// is not 0.
fn io(c: &mut Checker, owner: &str, io: &RawIo) -> IoLimits {
    let at = |f: &str| format!("{owner}.resources.{f}");
    let io_weight = weight(c, owner, &io.weight, "io.weight");
    let mut devices = Vec::new();
    for d in io.devices.iter().flatten() {
        let d_pos = spanned_pos(d);
        let d = &d.value;
        let Some(device) = v(&d.device) else {
            c.report(
                Code::ConfigMissingKey,
                d_pos,
                format!("{}: an entry has no device", at("io.devices")),
                "add `device: /dev/...`",
            );
            continue;
        };
        match c.host.path_kind(&device.0) {
            PathKind::BlockDevice => {}
            PathKind::Missing => c.report(
                Code::ConfigPath,
                p(&d.device),
                format!(
                    "{}: {} does not exist",
                    at("io.devices.device"),
                    device.0.display()
                ),
                "name a block device of this host (lsblk lists them)",
            ),
            _ => c.report(
                Code::ConfigPath,
                p(&d.device),
                format!(
                    "{}: {} is not a block device",
                    at("io.devices.device"),
                    device.0.display()
                ),
                "io.max limits whole block devices such as /dev/sda (lsblk lists them)",
            ),
        }
        let entry = IoDevice {
            device: device.0,
            read_bps: v(&d.read_bps),
            write_bps: v(&d.write_bps),
            read_iops: v(&d.read_iops).and_then(|m| m.0),
            write_iops: v(&d.write_iops).and_then(|m| m.0),
        };
        if entry.read_bps.is_none()
            && entry.write_bps.is_none()
            && entry.read_iops.is_none()
            && entry.write_iops.is_none()
        {
            c.report(
                Code::ConfigMissingKey,
                d_pos,
                format!(
                    "{}: {} has no limit",
                    at("io.devices"),
                    entry.device.display()
                ),
                "set read_bps, write_bps, read_iops or write_iops",
            );
        }
        if entry.read_bps == Some(Size::Bytes(0))
            || entry.write_bps == Some(Size::Bytes(0))
            || entry.read_iops == Some(0)
            || entry.write_iops == Some(0)
        {
            c.report(
                Code::ConfigInvalidValue,
                d_pos,
                format!(
                    "{}: a limit of 0 stops all I/O and the kernel refuses it",
                    at("io.devices")
                ),
                "give a positive rate, or max",
            );
        }
        devices.push(entry);
    }
    IoLimits {
        devices,
        weight: io_weight,
    }
}

/// `pids.max`: room for bulkhead's init and the service.
fn pids(c: &mut Checker, owner: &str, pids: &RawPids) -> Option<u64> {
    let at = |f: &str| format!("{owner}.resources.{f}");
    let pids_max = v(&pids.max).and_then(|m| m.0);
    if let Some(n) = pids_max
        && n < 2
    {
        c.report(
            Code::ConfigInvalidValue,
            p(&pids.max),
            format!("{}: {n} leaves no room for the service", at("pids.max")),
            "allow at least 2: bulkhead's init counts as one process",
        );
    }
    pids_max
}

/// `rlimits`: each soft limit at most its hard limit.
fn rlimits(c: &mut Checker, owner: &str, rl: Option<&RawRlimits>) -> BTreeMap<String, Rlimit> {
    let at = |f: &str| format!("{owner}.resources.{f}");
    let mut rlimits = BTreeMap::new();
    if let Some(rl) = rl {
        let all = [
            ("as", &rl.r#as),
            ("core", &rl.core),
            ("cpu", &rl.cpu),
            ("data", &rl.data),
            ("fsize", &rl.fsize),
            ("locks", &rl.locks),
            ("memlock", &rl.memlock),
            ("msgqueue", &rl.msgqueue),
            ("nice", &rl.nice),
            ("nofile", &rl.nofile),
            ("nproc", &rl.nproc),
            ("rss", &rl.rss),
            ("rtprio", &rl.rtprio),
            ("rttime", &rl.rttime),
            ("sigpending", &rl.sigpending),
            ("stack", &rl.stack),
        ];
        for (key, f) in all {
            if let Some(lim) = v(f) {
                let soft_above = match (lim.soft, lim.hard) {
                    (Limit::Infinity, Limit::Value(_)) => true,
                    (Limit::Value(s), Limit::Value(h)) => s > h,
                    _ => false,
                };
                if soft_above {
                    c.report(
                        Code::ConfigConflict,
                        p(f),
                        format!("{}: soft limit {} is above hard limit {}", at(&format!("rlimits.{key}")), lim.soft, lim.hard),
                        "the soft limit must be at most the hard limit: write \"soft:hard\" with soft <= hard",
                    );
                }
                rlimits.insert(key.to_string(), lim);
            }
        }
    }
    rlimits
}
