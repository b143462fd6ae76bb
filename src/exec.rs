//! `bulkhead exec`: one command in a compartment, like `systemd-run --scope`
//! or nsjail. It sets up a cgroup under bulkhead's subtree with the limits
//! asked for, spawns the command through the same path services use,
//! streams stdio, forwards signals, and on exit reports what the kernel did
//! (OOM kills, pids limit hits, a seccomp kill, peak memory, cpu time).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cgroup::{self, discover, kill, subtree};
use crate::compartment::{apply_limits, cgroup2_mount, spawn_diagnostic};
use crate::config::{self, Config, Service, schema::CgroupRoot};
use crate::error::{Code, Diagnostic, Diagnostics};
use crate::exit::ExitRecord;
use crate::sandbox::spec::LogSpec;
use crate::sandbox::{init, plan, spawn};

/// The `bulkhead exec` flags, as given.
#[derive(Debug, Default, Clone)]
pub struct ExecArgs {
    pub memory: Option<String>,
    pub memory_high: Option<String>,
    pub swap: Option<String>,
    pub cpus: Option<String>,
    pub cpu_weight: Option<u64>,
    pub cpuset: Option<String>,
    pub pids: Option<u64>,
    /// `DEV=RATE`
    pub io_read_bps: Vec<String>,
    pub io_write_bps: Vec<String>,
    /// `NAME=SOFT[:HARD]`
    pub rlimits: Vec<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub caps: Vec<String>,
    pub seccomp: Option<String>,
    pub ro: Vec<PathBuf>,
    pub rw: Vec<PathBuf>,
    pub tmpfs: Vec<PathBuf>,
    /// `net,uts,ipc`
    pub ns: Vec<String>,
    /// `KEY=VALUE` of `protect:`
    pub protect: Vec<String>,
    /// `K=V`
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub command: Vec<String>,
}

fn usage(msg: String, suggestion: &str) -> Diagnostics {
    Diagnostic::new(Code::ConfigInvalidValue, msg)
        .suggest(suggestion)
        .into()
}

/// The flags as a one-service config, so they get exactly the validation,
/// units and defaults a config file gets.
pub fn flags_to_config(a: &ExecArgs) -> Result<Value, Diagnostics> {
    let mut svc = Map::new();
    svc.insert("command".into(), json!(a.command));
    svc.insert("restart".into(), json!({"policy": "never"}));
    let mut res = Map::new();
    let mut mem = Map::new();
    for (k, v) in [
        ("max", &a.memory),
        ("high", &a.memory_high),
        ("swap_max", &a.swap),
    ] {
        if let Some(v) = v {
            mem.insert(k.into(), json!(v));
        }
    }
    if !mem.is_empty() {
        res.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = Map::new();
    if let Some(c) = &a.cpus {
        cpu.insert("max".into(), json!(c));
    }
    if let Some(w) = a.cpu_weight {
        cpu.insert("weight".into(), json!(w));
    }
    if let Some(s) = &a.cpuset {
        cpu.insert("cpuset".into(), json!(s));
    }
    if !cpu.is_empty() {
        res.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids {
        res.insert("pids".into(), json!({"max": p}));
    }
    let mut devices: Vec<Map<String, Value>> = Vec::new();
    for (key, list) in [("read_bps", &a.io_read_bps), ("write_bps", &a.io_write_bps)] {
        for item in list {
            let (dev, rate) = item.split_once('=').ok_or_else(|| {
                usage(
                    format!("--io-{}: {item:?} is not DEV=RATE", key.replace('_', "-")),
                    "write e.g. /dev/sda=10M",
                )
            })?;
            match devices
                .iter_mut()
                .find(|d| d.get("device") == Some(&json!(dev)))
            {
                Some(d) => {
                    d.insert(key.into(), json!(rate));
                }
                None => {
                    let mut d = Map::new();
                    d.insert("device".into(), json!(dev));
                    d.insert(key.into(), json!(rate));
                    devices.push(d);
                }
            }
        }
    }
    if !devices.is_empty() {
        res.insert("io".into(), json!({"devices": devices}));
    }
    let mut rl = Map::new();
    for item in &a.rlimits {
        let (name, val) = item.split_once('=').ok_or_else(|| {
            usage(
                format!("--rlimit: {item:?} is not NAME=SOFT[:HARD]"),
                "write e.g. nofile=1024:4096",
            )
        })?;
        rl.insert(name.to_string(), json!(val));
    }
    if !rl.is_empty() {
        res.insert("rlimits".into(), Value::Object(rl));
    }
    if !res.is_empty() {
        svc.insert("resources".into(), Value::Object(res));
    }
    for (k, v) in [("user", &a.user), ("group", &a.group)] {
        if let Some(v) = v {
            svc.insert(k.into(), json!(v));
        }
    }
    if let Some(d) = &a.cwd {
        svc.insert("working_dir".into(), json!(d));
    }
    let mut sec = Map::new();
    if !a.caps.is_empty() {
        sec.insert("capabilities".into(), json!(a.caps));
    }
    if let Some(s) = &a.seccomp {
        sec.insert("seccomp".into(), json!(s));
    }
    if !sec.is_empty() {
        svc.insert("security".into(), Value::Object(sec));
    }
    let mut mounts = Map::new();
    for (k, v) in [
        ("read_only", &a.ro),
        ("read_write", &a.rw),
        ("tmpfs", &a.tmpfs),
    ] {
        if !v.is_empty() {
            mounts.insert(k.into(), json!(v));
        }
    }
    if !mounts.is_empty() {
        svc.insert("mounts".into(), Value::Object(mounts));
    }
    if !a.ns.is_empty() {
        let mut ns = Map::new();
        for n in
            a.ns.iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        {
            if !["net", "uts", "ipc"].contains(&n) {
                return Err(usage(
                    format!("--ns: unknown namespace {n:?}"),
                    "choose from net, uts, ipc (pid and mount are always new)",
                ));
            }
            ns.insert(n.into(), json!(true));
        }
        svc.insert("namespaces".into(), Value::Object(ns));
    }
    let mut protect = Map::new();
    for item in &a.protect {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            usage(
                format!("--protect: {item:?} is not KEY=VALUE"),
                "write e.g. --protect system=off or --protect network=private",
            )
        })?;
        let value = match (k, v) {
            ("address_families", v) => json!(v.split(',').map(str::trim).collect::<Vec<_>>()),
            ("device_allow", v) => json!([v]),
            (_, "true") => json!(true),
            (_, "false") => json!(false),
            (_, v) => json!(v),
        };
        protect.insert(k.into(), value);
    }
    if !protect.is_empty() {
        svc.insert("protect".into(), Value::Object(protect));
    }
    let mut env = Map::new();
    for item in &a.env {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            usage(
                format!("--env: {item:?} is not K=V"),
                "write e.g. --env LANG=C.UTF-8",
            )
        })?;
        env.insert(k.into(), json!(v));
    }
    if !env.is_empty() {
        svc.insert("env".into(), Value::Object(env));
    }
    Ok(json!({"supervisor": {"metrics_listen": "off"}, "services": {"command": svc}}))
}

/// Parses the flags into a validated service (JSON is YAML, so the config
/// parser reads it; errors name the config key the flag maps to).
pub fn service_from_flags(a: &ExecArgs) -> Result<(Config, Service), Diagnostics> {
    let doc = flags_to_config(a)?;
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    // The positions would point into generated JSON: the key path in each
    // message names the flag's setting instead.
    let cfg = config::parse_str(
        &text,
        Path::new("<bulkhead exec flags>"),
        &config::host::RealHost,
    )
    .map_err(|ds| {
        Diagnostics(
            ds.0.into_iter()
                .map(|mut d| {
                    d.file = None;
                    d.pos = None;
                    d
                })
                .collect(),
        )
    })?;
    let svc = cfg
        .service("command")
        .cloned()
        .ok_or_else(|| Diagnostics::from(Diagnostic::new(Code::ConfigMissingKey, "no command")))?;
    Ok((cfg, svc))
}

/// What `exec` found out, for the report and the exit status.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub exit: Option<ExitRecord>,
    pub oom_kills: u64,
    pub pids_max_hits: u64,
    pub memory_peak: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub throttled_usec: Option<u64>,
}

/// One value of a flat-keyed cgroup file (`oom_kill 2`).
fn flat(dir: &Path, file: &str, key: &str) -> Option<u64> {
    cgroup::read(dir, file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Outcome {
    fn collect(dir: &Path, exit: Option<ExitRecord>) -> Outcome {
        Outcome {
            exit,
            oom_kills: flat(dir, "memory.events", "oom_kill").unwrap_or(0),
            pids_max_hits: flat(dir, "pids.events", "max").unwrap_or(0),
            memory_peak: cgroup::read(dir, "memory.peak")
                .ok()
                .and_then(|t| t.trim().parse().ok()),
            cpu_usec: flat(dir, "cpu.stat", "usage_usec"),
            throttled_usec: flat(dir, "cpu.stat", "throttled_usec"),
        }
    }

    /// The report printed to stderr when the command ends.
    pub fn report(&self, cmd: &str) -> String {
        let mut lines = Vec::new();
        let status = match self.exit {
            Some(ExitRecord::Exited { code }) => format!("exited with status {code}"),
            Some(ExitRecord::Signaled { signal, .. }) => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                let why = match signal {
                    libc::SIGSYS => ": a system call outside its seccomp profile",
                    libc::SIGKILL if self.oom_kills > 0 => ": OOM-killed at its memory limit",
                    libc::SIGXFSZ => ": a write past its fsize rlimit",
                    libc::SIGXCPU => ": past its cpu rlimit",
                    _ => "",
                };
                format!("killed by {name}{why}")
            }
            None => "ended; its status was not recorded".to_string(),
        };
        lines.push(format!("bulkhead exec: {cmd} {status}"));
        let mut facts = Vec::new();
        if let Some(p) = self.memory_peak {
            facts.push(format!("memory peak {}", config::units::Size::Bytes(p)));
        }
        if let Some(u) = self.cpu_usec {
            facts.push(format!("cpu {:.2}s", u as f64 / 1e6));
        }
        if let Some(t) = self.throttled_usec.filter(|t| *t > 0) {
            facts.push(format!("throttled {:.2}s", t as f64 / 1e6));
        }
        if self.oom_kills > 0 {
            facts.push(format!("OOM kills {}", self.oom_kills));
        }
        if self.pids_max_hits > 0 {
            facts.push(format!("forks refused at pids.max {}", self.pids_max_hits));
        }
        if !facts.is_empty() {
            lines.push(format!("bulkhead exec: {}", facts.join(", ")));
        }
        lines.join("\n")
    }

    pub fn exit_code(&self) -> u8 {
        let s = self.exit.map_or(255, ExitRecord::shell_status);
        u8::try_from(s).unwrap_or(255)
    }
}

/// Controllers the limits actually use: a command with no memory limit
/// runs on a host whose cgroup2 tree has no memory controller.
fn controllers_used(svc: &Service) -> Vec<&'static str> {
    let r = &svc.resources;
    let mut c = Vec::new();
    if r.cpu.cpuset.is_some() || r.cpu.mems.is_some() {
        c.push("cpuset");
    }
    if r.cpu.max.is_some() || r.cpu.weight.is_some() {
        c.push("cpu");
    }
    let m = &r.memory;
    if m.max.is_some() || m.high.is_some() || m.low.is_some() || m.swap_max.is_some() {
        c.push("memory");
    }
    if !r.io.devices.is_empty() || r.io.weight.is_some() {
        c.push("io");
    }
    if r.pids_max.is_some() {
        c.push("pids");
    }
    c
}

/// Runs `svc` to completion in a compartment and reports. `seccomp` is the
/// compiled filter (empty for unconfined).
pub fn run(
    cfg: &Config,
    svc: &Service,
    seccomp: Vec<(u16, u8, u8, u32)>,
    log: Option<&Path>,
) -> Result<Outcome, Diagnostics> {
    let mount = cgroup2_mount()?;
    let configured = match &cfg.supervisor.cgroup_root {
        CgroupRoot::Path(p) => Some(p.as_path()),
        CgroupRoot::Auto => None,
    };
    let root = discover::choose_root(&mount, configured, None, false);
    let wanted = controllers_used(svc);
    let tree = subtree::setup(&mount, &root, &wanted, None)
        .map_err(|e| Diagnostics::from(e.diagnostic()))?;
    let me = std::process::id().to_string();
    let dir = tree
        .create_instance(None, "exec", &me, &wanted)
        .map_err(|e| Diagnostics::from(e.diagnostic()))?;
    let result = run_in(&dir, cfg, svc, seccomp, log);
    // Whatever happened, the cgroup goes (killing stragglers).
    let _ = kill::remove_killing(&dir, Duration::from_secs(10));
    result
}

fn run_in(
    dir: &Path,
    cfg: &Config,
    svc: &Service,
    seccomp: Vec<(u16, u8, u8, u32)>,
    log: Option<&Path>,
) -> Result<Outcome, Diagnostics> {
    apply_limits(dir, &svc.resources)?;
    crate::sandbox::devices::confine(dir, svc)?;

    let status_dir = cfg.supervisor.state_dir.join("exec");
    std::fs::create_dir_all(&status_dir).map_err(|e| {
        Diagnostics::failure(
            Code::CgroupIo,
            format!("cannot create {}", status_dir.display()),
            e,
            "run as root",
        )
    })?;
    let status_file = status_dir.join(format!("{}.status", std::process::id()));
    let env = [
        ("BULKHEAD_SERVICE".to_string(), "exec".to_string()),
        (
            "BULKHEAD_INSTANCE".to_string(),
            std::process::id().to_string(),
        ),
    ];
    // A transient dynamic user unless --user: the command's files and
    // processes are nobody else's.
    let transient = crate::supervisor::users::transient(cfg, svc)?;
    let cpt = plan::Compartment {
        dynamic_uid: transient.as_ref().map(|t| t.uid()),
        hidden: plan::hidden_dirs(cfg),
    };
    let mut spec =
        plan::init_spec(svc, &env, seccomp, Some(status_file.clone()), &cpt).map_err(|e| {
            Diagnostics::failure(
                Code::ConfigUnknownAccount,
                "cannot prepare the command",
                e,
                "check user, group and capabilities",
            )
        })?;
    if let Some(path) = log {
        let path = std::path::absolute(path).map_err(|e| {
            Diagnostics::failure(
                Code::ConfigPath,
                format!("bad log path {}", path.display()),
                e,
                "give a file path",
            )
        })?;
        spec.log = Some(LogSpec {
            path,
            max_size: match svc.logs.max_size {
                config::units::Size::Bytes(b) => b,
                config::units::Size::Max => u64::MAX,
            },
            keep: svc.logs.keep,
        });
    }

    // Block the signals we forward before spawning; the child resets its mask.
    let mut sigs = nix::sys::signal::SigSet::empty();
    for s in init::FORWARDED {
        sigs.add(s);
    }
    sigs.thread_block().map_err(|e| {
        Diagnostics::failure(Code::CgroupIo, "cannot block signals", e, "this is a bug")
    })?;
    let sigfd =
        nix::sys::signalfd::SignalFd::with_flags(&sigs, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
            .map_err(|e| {
                Diagnostics::failure(
                    Code::CgroupIo,
                    "cannot create a signalfd",
                    e,
                    "this is a bug",
                )
            })?;

    let exe = spawn::init_exe().map_err(|e| {
        Diagnostics::failure(
            Code::CgroupIo,
            "cannot find the bulkhead binary",
            e,
            "is /proc mounted?",
        )
    })?;
    let req = spawn::SpawnRequest {
        spec: &spec,
        cgroup: dir,
        namespaces: plan::namespaces(svc),
        die_with_parent: true,
        init_exe: &exe,
        attach_after_clone: false,
    };
    let child = spawn::spawn(&req).map_err(|e| spawn_diagnostic(&e, svc))?;

    // Wait for the init, passing signals on. It forwards them to the command.
    loop {
        let mut fds = [
            rustix::event::PollFd::new(&child.pidfd, rustix::event::PollFlags::IN),
            rustix::event::PollFd::from_borrowed_fd(sigfd.as_fd(), rustix::event::PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(Diagnostics::failure(
                    Code::CgroupIo,
                    "poll failed",
                    e,
                    "this is a bug",
                ));
            }
            Ok(_) => {}
        }
        let (exited, signalled) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if signalled
            && let Ok(Some(info)) = sigfd.read_signal()
            && let Ok(sig) =
                nix::sys::signal::Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0))
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.pid), sig);
        }
        if exited {
            break;
        }
    }
    let init_status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None);
    let _ = sigs.thread_unblock();
    let record = std::fs::read(&status_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok())
        .or(match init_status {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => Some(ExitRecord::Exited { code }),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, s, core)) => Some(ExitRecord::Signaled {
                signal: s as i32,
                core_dumped: core,
            }),
            _ => None,
        });
    let _ = std::fs::remove_file(&status_file);
    Ok(Outcome::collect(dir, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_a_config() {
        let a = ExecArgs {
            memory: Some("64M".into()),
            cpus: Some("0.5".into()),
            pids: Some(16),
            io_write_bps: vec!["/dev/sda=1M".into()],
            rlimits: vec!["nofile=1024:4096".into()],
            caps: vec!["CAP_NET_BIND_SERVICE".into()],
            ns: vec!["net,uts".into()],
            env: vec!["A=1".into()],
            command: vec!["/bin/true".into()],
            ..Default::default()
        };
        let v = flags_to_config(&a).unwrap();
        let s = &v["services"]["command"];
        assert_eq!(s["resources"]["memory"]["max"], "64M");
        assert_eq!(s["resources"]["cpu"]["max"], "0.5");
        assert_eq!(s["resources"]["pids"]["max"], 16);
        assert_eq!(s["resources"]["io"]["devices"][0]["write_bps"], "1M");
        assert_eq!(s["resources"]["rlimits"]["nofile"], "1024:4096");
        assert_eq!(s["namespaces"]["net"], true);
        assert_eq!(s["env"]["A"], "1");
        assert!(
            flags_to_config(&ExecArgs {
                ns: vec!["user".into()],
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            flags_to_config(&ExecArgs {
                env: vec!["novalue".into()],
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn flag_errors_come_from_config_validation() {
        let a = ExecArgs {
            memory: Some("64X".into()),
            command: vec!["/bin/true".into()],
            ..Default::default()
        };
        let e = service_from_flags(&a).unwrap_err();
        assert!(e.0[0].message.contains("resources.memory.max"), "{e}");
    }

    #[test]
    fn report_explains_signals() {
        let o = Outcome {
            exit: Some(ExitRecord::Signaled {
                signal: libc::SIGSYS,
                core_dumped: false,
            }),
            ..Default::default()
        };
        assert!(o.report("x").contains("seccomp"));
        assert_eq!(o.exit_code(), 128 + 31);
        let o = Outcome {
            exit: Some(ExitRecord::Signaled {
                signal: 9,
                core_dumped: false,
            }),
            oom_kills: 1,
            memory_peak: Some(64 << 20),
            ..Default::default()
        };
        let r = o.report("hog");
        assert!(
            r.contains("OOM-killed") && r.contains("memory peak 64M") && r.contains("OOM kills 1"),
            "{r}"
        );
    }
}
