//! What the daemon benchmarks (`launch_bench`, `monitor_bench`) share: the
//! path arguments, one `bulkhead run` with a generated config and its
//! cleanup, the facts at the head of a report, ratios, and the end of
//! `main`. An example is a crate of its own, so each includes this file:
//!
//! ```text
//! #[path = "bench_common/mod.rs"]
//! mod bench_common;
//! ```
//!
//! and adds the methods only it needs in an `impl Daemon` of its own.
//! (A directory without `main.rs` is not an example: cargo builds this
//! only as part of the benchmarks.)

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use bulkhead::cgroup::kill;

// ---------------------------------------------------------------- arguments

/// The arguments every benchmark takes: `BULKHEAD_BIN --work DIR
/// --cgroup-root DIR [--out FILE] [--keep LOG-DIR]`.
pub struct Paths {
    pub bin: PathBuf,
    /// Scratch: the daemons' configs, state and logs.
    pub work: PathBuf,
    /// Removed with everything in it when a daemon is dropped.
    pub cgroot: PathBuf,
    /// Where the report is written too.
    pub out: Option<PathBuf>,
    /// Where the daemon logs are copied.
    pub keep: Option<PathBuf>,
}

/// [`Paths`] while the arguments are read.
#[derive(Default)]
pub struct PathFlags {
    work: Option<PathBuf>,
    cgroot: Option<PathBuf>,
    out: Option<PathBuf>,
    keep: Option<PathBuf>,
}

impl PathFlags {
    /// Takes `--work`, `--cgroup-root`, `--out` or `--keep` and its value
    /// from `val`; any other flag is unknown.
    pub fn take(
        &mut self,
        flag: &str,
        val: impl FnOnce() -> Result<String, String>,
    ) -> Result<(), String> {
        let slot = match flag {
            "--work" => &mut self.work,
            "--cgroup-root" => &mut self.cgroot,
            "--out" => &mut self.out,
            "--keep" => &mut self.keep,
            _ => return Err(format!("unknown argument {flag:?}")),
        };
        *slot = Some(PathBuf::from(val()?));
        Ok(())
    }

    pub fn finish(self, bin: PathBuf) -> Result<Paths, String> {
        Ok(Paths {
            bin,
            work: self.work.ok_or("--work is required")?,
            cgroot: self.cgroot.ok_or("--cgroup-root is required")?,
            out: self.out,
            keep: self.keep,
        })
    }
}

impl Paths {
    /// Creates `--work` and `--keep`.
    pub fn create_dirs(&self) -> Result<(), String> {
        for d in std::iter::once(&self.work).chain(&self.keep) {
            std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        Ok(())
    }
}

// --------------------------------------------------------------- the daemon

/// The config of a daemon whose files live in `dir`: `services` is the YAML
/// after the supervisor section. The metrics listener is off, so a busy port
/// cannot fail a run; everything else is the default.
pub fn config_text(dir: &Path, cgroot: &Path, services: &str) -> String {
    format!(
        "supervisor:\n  cgroup_root: {}\n  state_dir: {}\n  control_socket: {}\n  \
         log_dir: {}\n  metrics_listen: \"off\"\n{services}",
        cgroot.display(),
        dir.join("state").display(),
        dir.join("state/control.sock").display(),
        dir.join("logs").display(),
    )
}

/// One `bulkhead run` with its own config, state, logs and cgroup root.
/// Dropping it SIGKILLs the daemon and removes the cgroup root with
/// everything in it.
pub struct Daemon {
    /// The benchmark's name, at the head of what the drop says.
    bench: &'static str,
    pub bin: PathBuf,
    pub cgroot: PathBuf,
    pub cfg: PathBuf,
    /// The control socket, as in [`config_text`].
    pub sock: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Where the daemon log is copied when the run ends (`--keep`).
    keep: Option<PathBuf>,
    pub child: Option<Child>,
}

impl Daemon {
    /// Writes the config of `services` in `--work`/`name` and checks it
    /// with `bulkhead validate`; the daemon does not run yet.
    pub fn new(
        bench: &'static str,
        p: &Paths,
        name: &str,
        services: &str,
    ) -> Result<Daemon, String> {
        let dir = p.work.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let d = Daemon {
            bench,
            bin: p.bin.clone(),
            cgroot: p.cgroot.clone(),
            cfg: dir.join("bulkhead.yaml"),
            sock: dir.join("state/control.sock"),
            log: dir.join("daemon.log"),
            keep: p.keep.as_ref().map(|k| k.join(format!("{name}.log"))),
            child: None,
        };
        std::fs::write(&d.cfg, config_text(&dir, &d.cgroot, services))
            .map_err(|e| format!("write config: {e}"))?;
        let out = d.run_cli(&["validate", "-c"], &[d.cfg.as_os_str()])?;
        if !out.status.success() {
            return Err(format!(
                "the generated config {} does not validate:\n{}{}",
                d.cfg.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(d)
    }

    /// `bulkhead ARGS MORE`, its output captured.
    pub fn run_cli(&self, args: &[&str], more: &[&OsStr]) -> Result<Output, String> {
        Command::new(&self.bin)
            .args(args)
            .args(more)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.bin.display()))
    }

    /// `bulkhead run --log-format json`, in a fresh cgroup root, its output
    /// in [`Daemon::log`]. It does not wait for the daemon to be up.
    pub fn start(&mut self) -> Result<(), String> {
        let _ = kill::remove_tree(&self.cgroot, Duration::from_secs(30));
        let log = std::fs::File::create(&self.log).map_err(|e| format!("daemon log: {e}"))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.bin)
            .args(["run", "--log-format", "json", "-c"])
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start the daemon: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// Fails when the daemon has exited (or was never started).
    pub fn check_alive(&mut self) -> Result<(), String> {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            self.child = None;
            return Err(format!("the daemon exited ({st}); {}", self.log_tail()));
        }
        if self.child.is_none() {
            return Err("the daemon is not running".into());
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// SIGTERM, and the time until the daemon has exited (SIGKILL after
    /// `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Result<(ExitStatus, Duration), String> {
        let Some(mut c) = self.child.take() else {
            return Err("the daemon is not running".into());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).map_err(|e| e.to_string())?);
        let t0 = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("SIGTERM the daemon: {e}"))?;
        loop {
            if let Some(st) = c.try_wait().map_err(|e| e.to_string())? {
                return Ok((st, t0.elapsed()));
            }
            if t0.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                return Err(format!(
                    "the daemon did not exit within {}s of SIGTERM (killed)",
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = kill::remove_tree(&self.cgroot, Duration::from_secs(30)) {
            eprintln!(
                "{}: could not remove {}: {e}",
                self.bench,
                self.cgroot.display()
            );
        }
        if let Some(k) = &self.keep
            && let Err(e) = std::fs::copy(&self.log, k)
        {
            eprintln!(
                "{}: could not keep the daemon log in {}: {e}",
                self.bench,
                k.display()
            );
        }
    }
}

// ------------------------------------------------------------------- report

/// Where the figures were measured, for the head of a report.
pub struct Host {
    /// The kernel release.
    pub kernel: String,
    pub cpus: usize,
    /// `native`, or in the VM (whose figures only compare as ratios).
    pub place: &'static str,
}

impl Host {
    pub fn probe() -> Host {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Host {
            kernel: kernel.trim().to_string(),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            place: if std::env::var_os("BULKHEAD_VM").is_some() {
                "in the VM (TCG emulation: absolute figures inflated, compare ratios)"
            } else {
                "native"
            },
        }
    }
}

/// `x / base` as `1.50x`; `n/a` without a baseline.
pub fn ratio(x: f64, base: f64) -> String {
    if base > 0.0 && x.is_finite() && base.is_finite() {
        format!("{:.2}x", x / base)
    } else {
        "n/a".into()
    }
}

/// The end of a report: a `FAILED` line for each problem, and `Err` when
/// there is one.
pub fn verdict(mut rep: String, problems: &[String]) -> Result<String, String> {
    for p in problems {
        let _ = writeln!(rep, "FAILED {p}");
    }
    if problems.is_empty() {
        Ok(rep)
    } else {
        Err(rep)
    }
}

// --------------------------------------------------------------------- main

/// Bad arguments: the reason and the usage on stderr, exit status 2.
pub fn usage(bench: &str, e: &str, usage: &str) -> ExitCode {
    eprintln!("{bench}_bench: {e}");
    eprintln!("{usage}");
    ExitCode::from(2)
}

/// The end of `main`: the report of the run (`Err` when it failed) on
/// stdout and in `--out`.
pub fn finish(bench: &str, p: &Paths, run: Result<String, String>) -> ExitCode {
    let (rep, code) = match run {
        Ok(r) => (r, ExitCode::SUCCESS),
        Err(r) => (r, ExitCode::FAILURE),
    };
    println!("\n{rep}");
    if let Some(out) = &p.out {
        if let Some(dir) = out.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(out, &rep) {
            eprintln!("{bench}_bench: write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    code
}
