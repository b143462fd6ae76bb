//! The monitor's event sources as the driver runs them: one inotify task
//! for the `memory.events` / `pids.events` of every instance, a reactor
//! wait per PSI trigger, and the sweep's kept-open files. Each running
//! instance has a [`Mon`]: its rules ([`Watcher`]), its sampler entry and
//! its trigger waits. Decisions are the watcher's; acting on them is the
//! driver's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::Msg;
use crate::cgroup::events::{AsyncFileWatch, AsyncPsiTrigger, FileWatch, PsiTrigger};
use crate::cgroup::sampler::{CgroupId, Sampler};
use crate::cgroup::stats::{self, StatFile};
use crate::cgroup::{self};
use crate::config::model::Service;
use crate::monitor::{RuleKind, Watcher};

/// Which run of which instance a wake-up is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub svc: String,
    pub idx: usize,
    pub run_id: u64,
}

/// The files the sweep reads of every instance.
pub const SWEEP_FILES: [StatFile; 3] = [
    StatFile::CpuStat,
    StatFile::MemoryCurrent,
    StatFile::PidsCurrent,
];

const EVENT_FILES: [&str; 2] = ["memory.events", "pids.events"];

pub enum FileCmd {
    Add { dir: PathBuf, key: Key },
    Remove { dir: PathBuf },
}

/// Starts the inotify task; its handle takes cgroups to watch.
pub fn spawn_file_watch(tx: mpsc::UnboundedSender<Msg>) -> mpsc::UnboundedSender<FileCmd> {
    let (cmd_tx, mut cmds) = mpsc::unbounded_channel::<FileCmd>();
    let watch = FileWatch::new().and_then(AsyncFileWatch::new);
    let mut watch = match watch {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(
                "cannot watch memory.events and pids.events (inotify: {e}): OOM kills are \
                 noticed only when an instance exits, and pids_max rules never fire"
            );
            tokio::spawn(async move { while cmds.recv().await.is_some() {} });
            return cmd_tx;
        }
    };
    tokio::spawn(async move {
        let mut keys: HashMap<PathBuf, Key> = HashMap::new();
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(FileCmd::Add { dir, key }) => {
                        for f in EVENT_FILES {
                            let path = dir.join(f);
                            watch.remove(&path);
                            match watch.add(&path) {
                                Ok(_) => {
                                    keys.insert(path, key.clone());
                                }
                                Err(e) => tracing::debug!("inotify {}: {e}", path.display()),
                            }
                        }
                    }
                    Some(FileCmd::Remove { dir }) => {
                        for f in EVENT_FILES {
                            let path = dir.join(f);
                            watch.remove(&path);
                            keys.remove(&path);
                        }
                    }
                    None => return,
                },
                changed = watch.changed() => {
                    let paths = match changed {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!("inotify: {e}; events of cgroup files are no longer watched");
                            return;
                        }
                    };
                    let mut sent: Vec<&Key> = Vec::new();
                    for p in &paths {
                        if let Some(k) = keys.get(p)
                            && !sent.contains(&k)
                        {
                            sent.push(k);
                            if tx.send(Msg::CgroupEvents(k.clone())).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    });
    cmd_tx
}

/// `memory.events` oom_kill and `pids.events` max of a cgroup, as far as
/// they can be read.
pub fn read_counters(dir: &Path) -> (Option<u64>, Option<u64>) {
    let oom = cgroup::read(dir, "memory.events")
        .ok()
        .and_then(|t| stats::parse_memory_events(&t).ok())
        .map(|e| e.oom_kill);
    let pids = cgroup::read(dir, "pids.events")
        .ok()
        .and_then(|t| stats::parse_pids_events(&t).ok())
        .map(|e| e.max);
    (oom, pids)
}

/// `avg10` of the stall line a pressure rule reads, for its figures.
pub fn read_avg10(dir: &Path, kind: RuleKind, full: bool) -> Option<f64> {
    let text = cgroup::read(dir, kind.pressure_file()?).ok()?;
    let psi = match kind {
        RuleKind::CpuPressure => stats::parse_cpu_pressure(&text),
        RuleKind::IoPressure => stats::parse_io_pressure(&text),
        _ => stats::parse_memory_pressure(&text),
    }
    .ok()?;
    Some(if full {
        psi.full?.avg10
    } else {
        psi.some.avg10
    })
}

/// One running instance under watch.
pub struct Mon {
    pub watcher: Watcher,
    pub sample: Option<CgroupId>,
    /// oom_kill when the run began: an exit after it grew was an OOM kill.
    pub oom_base: u64,
    psi: Vec<JoinHandle<()>>,
}

impl Drop for Mon {
    fn drop(&mut self) {
        for h in &self.psi {
            h.abort();
        }
    }
}

pub struct Ctx<'a> {
    pub tx: &'a mpsc::UnboundedSender<Msg>,
    pub files: &'a mpsc::UnboundedSender<FileCmd>,
    pub sampler: &'a mut Sampler,
    pub interval: Duration,
    pub privileged: bool,
}

/// Starts watching a run: its counters (from zero for a new cgroup, from
/// their values for an adopted one), its PSI triggers, the sweep.
pub fn start(ctx: Ctx<'_>, svc: &Service, dir: &Path, key: Key, adopted: bool) -> Mon {
    let (oom, pids) = if adopted {
        let (o, p) = read_counters(dir);
        (o.unwrap_or(0), p.unwrap_or(0))
    } else {
        (0, 0)
    };
    let watcher = Watcher::new(
        &svc.watch,
        &svc.resources.memory,
        ctx.interval,
        ctx.privileged,
        oom,
        pids,
    );
    let _ = ctx.files.send(FileCmd::Add {
        dir: dir.to_path_buf(),
        key: key.clone(),
    });
    let sample = match ctx.sampler.add(dir) {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(service = %svc.name, "the sweep cannot read {}: {e}", dir.display());
            None
        }
    };
    let mut psi = Vec::new();
    for (kind, stall, threshold, window) in watcher.triggers() {
        let Some(file) = kind.pressure_file() else {
            continue;
        };
        let armed = PsiTrigger::new(&dir.join(file), stall, threshold, window)
            .and_then(AsyncPsiTrigger::new);
        match armed {
            Ok(t) => {
                let (tx, key) = (ctx.tx.clone(), key.clone());
                psi.push(tokio::spawn(async move {
                    while t.fired().await.is_ok() {
                        let msg = Msg::Pressure {
                            key: key.clone(),
                            rule: kind,
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                }));
            }
            Err(e) => tracing::error!(
                service = %svc.name,
                code = crate::error::Code::CgroupIo.as_str(),
                "watch rule {kind} is not armed: {e}"
            ),
        }
    }
    Mon {
        watcher,
        sample,
        oom_base: oom,
        psi,
    }
}

/// Stops watching a run (it ended).
pub fn stop(mon: Mon, dir: &Path, files: &mpsc::UnboundedSender<FileCmd>, sampler: &mut Sampler) {
    if let Some(id) = mon.sample {
        sampler.remove(id);
    }
    let _ = files.send(FileCmd::Remove {
        dir: dir.to_path_buf(),
    });
    drop(mon);
}
