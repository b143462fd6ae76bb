//! A daemon under test in the VM: `bulkhead run` with its own state dir,
//! socket, log dir and cgroup root, the CLI against it, and cleanup that
//! leaves no process or cgroup behind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use bulkhead::api::proto::StatusReply;

use super::wait::{poll_every, poll_until};

pub const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Where tests keep their files: `$TMPDIR` (the VM guest sets it to a
/// directory under /run, since every compartment gets a /tmp of its own).
pub fn scratch_root() -> PathBuf {
    let root = std::env::temp_dir();
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// A new scratch directory, writable by every user: the services of the
/// tests run as dynamic users and write their markers here.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_root())
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    dir
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// One daemon under test: its files live in a tempdir, its cgroups under
/// `<mount>/bh-<name>`. Dropping it SIGKILLs the daemon and removes every
/// cgroup (killing what is left) so a failed test leaves nothing behind.
pub struct Bh {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    pub sock: PathBuf,
    pub state: PathBuf,
    pub cgroot: PathBuf,
    /// The cgroup2 mount.
    pub mount: PathBuf,
    pub log: PathBuf,
    pub daemon: Option<Child>,
    /// `supervisor.metrics_listen` as written in the config.
    pub metrics_listen: String,
}

impl Bh {
    /// `services` is the YAML text after the supervisor section (`groups:`,
    /// `services:`), at top level. The metrics listener is off.
    pub fn new(name: &str, services: &str) -> Bh {
        Bh::with_metrics(name, "off", services)
    }

    /// [`Bh::new`] with `supervisor.metrics_listen: <listen>`.
    pub fn with_metrics(name: &str, listen: &str, services: &str) -> Bh {
        let mount = super::cgroup2_with_controllers();
        let dir = scratch(&format!("bh-{name}-"));
        let cgroot = mount.join(format!("bh-{name}"));
        remove_cgroup_tree(&cgroot);
        // The config lives in a directory of its own: bulkhead hides its
        // config's directory from every compartment, and the services of
        // these tests run scripts from the test's directory.
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let bh = Bh {
            name: name.to_string(),
            cfg: dir.path().join("etc/bulkhead.yaml"),
            sock: dir.path().join("state/control.sock"),
            state: dir.path().join("state"),
            log: dir.path().join("daemon.log"),
            cgroot,
            mount,
            dir,
            daemon: None,
            metrics_listen: listen.to_string(),
        };
        bh.write_config(services);
        bh
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Writes a file into the test's directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn daemon_pid(&self) -> i32 {
        i32::try_from(self.daemon.as_ref().unwrap().id()).unwrap()
    }

    /// The path /proc/self/cgroup shows for an instance.
    pub fn inst_cgroup(&self, svc: &str, inst: &str) -> String {
        let dir = self.cgroot.join(svc).join(inst);
        format!("/{}", dir.strip_prefix(&self.mount).unwrap().display())
    }

    /// Services run with every default wall; the one relaxation is that the
    /// scratch directory (where the tests' scripts write their markers)
    /// stays writable under `protect.system: strict`. The `defaults:` key
    /// comes last: a test's text may go on with `supervisor:` keys. A test
    /// that writes its own `defaults:` gets none.
    pub fn write_config(&self, services: &str) {
        let defaults = if services.contains("\ndefaults:") || services.starts_with("defaults:") {
            String::new()
        } else {
            format!(
                "defaults:\n  mounts:\n    read_write: [{}]\n",
                scratch_root().display()
            )
        };
        let yaml = format!(
            "supervisor:\n  cgroup_root: {}\n  state_dir: {}\n  control_socket: {}\n  \
             log_dir: {}\n  metrics_listen: \"{}\"\n{services}\n{defaults}",
            self.cgroot.display(),
            self.state.display(),
            self.sock.display(),
            self.path("logs").display(),
            self.metrics_listen,
        );
        std::fs::write(&self.cfg, yaml).unwrap();
    }

    /// Starts the daemon; does not wait for it.
    pub fn spawn(&mut self) {
        self.spawn_env(&[]);
    }

    /// [`Bh::spawn`] with these variables added to the daemon's environment
    /// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, ...).
    pub fn spawn_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(&self.cfg)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// Starts the daemon and waits until its control socket answers.
    pub fn start(&mut self) {
        self.spawn();
        self.wait_for("the control socket answers", 60, |_| true);
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&self.sock)
            .output()
            .unwrap();
        println!(
            "[{}] bulkhead {args:?}: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.name,
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    pub fn status(&self) -> Option<StatusReply> {
        self.try_status().ok()
    }

    /// `status --json`, or why it gave nothing.
    pub fn try_status(&self) -> Result<StatusReply, String> {
        let t0 = Instant::now();
        let out = Command::new(BIN)
            .args(["status", "--json", "--socket"])
            .arg(&self.sock)
            .output()
            .map_err(|e| format!("cannot run {BIN}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "status failed ({}) after {:.1}s: {}",
                out.status,
                t0.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
    }

    /// Polls `status --json` (every 200 ms: each look runs the CLI) until
    /// `ok` holds; panics (with the last status and the daemon log) after
    /// `secs`, or at once when the daemon exits.
    pub fn wait_for(
        &mut self,
        what: &str,
        secs: u64,
        mut ok: impl FnMut(&StatusReply) -> bool,
    ) -> StatusReply {
        let mut last = None;
        let mut last_err = None;
        let name = self.name.clone();
        let polled = poll_every(
            Duration::from_millis(200),
            Duration::from_secs(secs),
            || {
                last_err = match self.try_status() {
                    Ok(s) => {
                        if ok(&s) {
                            return Some(s);
                        }
                        last = Some(s);
                        None
                    }
                    Err(e) => Some(e),
                };
                if let Some(c) = self.daemon.as_mut()
                    && let Ok(Some(st)) = c.try_wait()
                {
                    self.daemon = None;
                    panic!("[{name}] the daemon exited ({st}) while waiting for: {what}");
                }
                None
            },
        );
        polled.unwrap_or_else(|_| {
            panic!(
                "[{name}] timed out after {secs}s waiting for: {what}\n{}last status: {}",
                last_err
                    .map(|e| format!("the status calls since failed: {e}\n"))
                    .unwrap_or_default(),
                last.map(|s| serde_json::to_string_pretty(&s).unwrap())
                    .unwrap_or_else(|| "none".into())
            )
        })
    }

    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (up to 60 s) for the daemon to exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut c = self.daemon.take().expect("no daemon");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        poll_until(Duration::from_secs(60), || c.try_wait().unwrap()).unwrap_or_else(|_| {
            let _ = c.kill();
            let _ = c.wait();
            panic!(
                "[{}] the daemon did not exit within 60s of SIGTERM",
                self.name
            );
        })
    }

    /// Waits (up to `secs`) for a daemon that is expected to exit by itself.
    pub fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let mut c = self.daemon.take().expect("no daemon");
        poll_until(Duration::from_secs(secs), || c.try_wait().unwrap()).unwrap_or_else(|_| {
            let _ = c.kill();
            let _ = c.wait();
            panic!("[{}] the daemon did not exit within {secs}s", self.name);
        })
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn inst_dir(&self, svc: &str, inst: &str) -> PathBuf {
        self.cgroot.join(svc).join(inst)
    }
}

impl Drop for Bh {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            println!(
                "==== [{}] daemon log ({}) ====\n{}==== end of daemon log ====",
                self.name,
                self.log.display(),
                self.daemon_log()
            );
            for f in walk(&self.path("logs")) {
                println!(
                    "==== service log {} ====\n{}",
                    f.display(),
                    std::fs::read_to_string(&f).unwrap_or_default()
                );
            }
        }
        remove_cgroup_tree(&self.cgroot);
    }
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every cgroup directory under `dir` (not `dir` itself), parents first.
pub fn cgroup_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(p.clone());
                out.extend(cgroup_dirs(&p));
            }
        }
    }
    out
}

/// Kills every process in the tree (cgroup.kill) and removes it bottom-up.
pub fn remove_cgroup_tree(root: &Path) {
    if !root.exists() {
        return;
    }
    let mut dirs = vec![root.to_path_buf()];
    dirs.extend(cgroup_dirs(root));
    for d in &dirs {
        let _ = std::fs::write(d.join("cgroup.kill"), "1");
    }
    for d in dirs.iter().rev() {
        // Best effort, 10 s a directory: what is left shows in the next
        // test's leftovers.
        let _ = poll_until(Duration::from_secs(10), || {
            if std::fs::remove_dir(d).is_ok() || !d.exists() {
                return true;
            }
            let _ = std::fs::write(d.join("cgroup.kill"), "1");
            false
        });
    }
}

/// A cgroup file's content.
pub fn read_cg(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
}

/// `key value` from a flat-keyed cgroup file (memory.events, cpu.stat...).
pub fn cg_key(dir: &Path, file: &str, key: &str) -> u64 {
    read_cg(dir, file)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {key} in {}/{file}", dir.display()))
}

/// A single-number cgroup file (memory.current, memory.max, pids.current).
pub fn cg_u64(dir: &Path, file: &str) -> u64 {
    let t = read_cg(dir, file);
    t.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}/{file} is {t:?}, not a number", dir.display()))
}

/// What is left under `root`: each cgroup with its processes, for a
/// failure message.
pub fn leftovers(root: &Path) -> String {
    let mut dirs = vec![root.to_path_buf()];
    dirs.extend(cgroup_dirs(root));
    dirs.iter()
        .map(|d| {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            let comms: Vec<String> = procs
                .lines()
                .map(|p| {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                    format!("{p} ({})", comm.trim())
                })
                .collect();
            format!("{}: [{}]", d.display(), comms.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
