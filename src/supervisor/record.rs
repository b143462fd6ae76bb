//! Crash-safe instance records (docs/ARCHITECTURE.md decision 11). The daemon writes one
//! file per running instance into `<state_dir>/instances/`, so that after a
//! crash or an upgrade a new daemon can tell its own live instances from
//! leftovers:
//!
//! ```text
//! <state_dir>/instances/web@0.json         {"version":1,"service":"web","instance":"0",
//!                                           "pid":4242,"start_time":123456,"cgroup":...}
//! <state_dir>/instances/.web@0.json.tmp    a write in progress (ignored when read)
//! ```
//!
//! A pid alone does not name a process: pids are reused. The record keeps the
//! process's start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot), and pid + start time does. On start, [`plan_adoption`] (pure) sorts
//! what it finds:
//!
//! ```text
//! record, pid alive with that start time, in that cgroup,
//!   service still configured, index < instances, cgroup where the config
//!   puts it                                    -> adopt (config_changed: restart it)
//! record, anything else                        -> stale (with the reason), its cgroup an orphan
//! instance cgroup without an adopted record    -> orphan: cgroup.kill, then remove
//! R/supervisor                                 -> the daemon's own, never touched
//! R/exec/<pid>                                 -> a running `bulkhead exec`: kept while <pid> lives
//! ```
//!
//! Between the plan and `pidfd_open` the process can die and its pid be
//! reused: the daemon checks the start time again once it holds the pidfd.
//! Which settings are fixed at spawn time (and so need a restart when they
//! change) is decided here too, by [`spawn_hash`] and [`spawn_view`].
//!
//! Roots (state dir, `/proc`, the cgroup mount and bulkhead's subtree R) are
//! parameters, so tests run on temp dirs and fixtures.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cgroup::subtree::Subtree;
use crate::config::{Config, Service};

/// The record format written by this bulkhead; a newer one is refused.
pub const VERSION: u32 = 1;

/// What the daemon knows about one running instance.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// [`VERSION`] when written.
    pub version: u32,
    pub service: String,
    /// `0`, `1`, ... for replicas.
    pub instance: String,
    /// The instance's init, as the host sees it.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`, clock ticks since boot: with `pid`,
    /// names the process across pid reuse.
    pub start_time: u64,
    /// The instance's cgroup directory, absolute (`/sys/fs/cgroup/bulkhead/web/0`).
    pub cgroup: PathBuf,
    /// [`spawn_hash`] of the service when it was spawned.
    pub config_hash: String,
    pub started_at_unix_ms: u64,
    pub restarts: u32,
    /// Where the init records the service's exit status.
    pub status_file: PathBuf,
    /// `BULKHEAD_PORT` of the instance (kept across an adoption).
    #[serde(default)]
    pub port: u16,
    /// A template instance's launch key, as its environment has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

// ---------------------------------------------------------------- files

/// `<state_dir>/instances`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("instances")
}

/// `<state_dir>/instances/<service>@<instance>.json`.
pub fn path(state_dir: &Path, service: &str, instance: &str) -> PathBuf {
    dir(state_dir).join(file_name(service, instance))
}

fn file_name(service: &str, instance: &str) -> String {
    format!("{service}@{instance}.json")
}

/// Service names cannot hold `@` (config validation), so the first `@`
/// splits a file name; the name parts must not leave the directory.
fn check_names(service: &str, instance: &str) -> io::Result<()> {
    let ok = |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\0']);
    if ok(service) && ok(instance) && !service.contains('@') {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot name an instance record after service {service:?} instance {instance:?}"
            ),
        ))
    }
}

fn with_path(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
}

/// Writes `rec` so that a crash at any point leaves either the old record or
/// the new one, never a torn file: write a temporary file in the same
/// directory, fsync it, rename it over the record, fsync the directory.
/// The temporary name is fixed per instance: one writer per instance at a
/// time (the daemon's task for that instance).
pub fn write(state_dir: &Path, rec: &InstanceRecord) -> io::Result<()> {
    check_names(&rec.service, &rec.instance)?;
    let dir = dir(state_dir);
    fs::create_dir_all(&dir).map_err(|e| with_path(&dir, "create", e))?;
    let name = file_name(&rec.service, &rec.instance);
    let target = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut text = serde_json::to_vec(rec).map_err(io::Error::other)?;
    text.push(b'\n');
    let mut f = fs::File::create(&tmp).map_err(|e| with_path(&tmp, "create", e))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(|e| with_path(&tmp, "write", e))?;
    drop(f);
    fs::rename(&tmp, &target).map_err(|e| with_path(&target, "rename a record to", e))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(&dir, "sync", e))
}

/// Removes an instance's record; one that is already gone is fine.
pub fn remove(state_dir: &Path, service: &str, instance: &str) -> io::Result<()> {
    check_names(service, instance)?;
    let p = path(state_dir, service, instance);
    match fs::remove_file(&p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(&p, "remove", e)),
        _ => Ok(()),
    }
}

/// Records are a few hundred bytes; a larger file is not one of ours.
const MAX_RECORD_BYTES: u64 = 64 << 10;

/// Every record in the state dir, sorted by file name, and the files that
/// are not valid records with the reason (for the daemon to log and remove).
/// Temporary files (`.name.tmp`, a write cut short) are skipped; a missing
/// directory holds no records.
pub fn read_all(state_dir: &Path) -> (Vec<InstanceRecord>, Vec<(PathBuf, String)>) {
    let dir = dir(state_dir);
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (records, bad),
        Err(e) => {
            bad.push((dir, format!("cannot list the directory: {e}")));
            return (records, bad);
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        match read_one(&p).and_then(|text| parse_record(&name, &text)) {
            Ok(rec) => records.push(rec),
            Err(why) => bad.push((p, why)),
        }
    }
    (records, bad)
}

fn read_one(p: &Path) -> Result<String, String> {
    let f = fs::File::open(p).map_err(|e| format!("cannot read: {e}"))?;
    if !f.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    f.take(MAX_RECORD_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_RECORD_BYTES {
        return Err(format!("larger than {MAX_RECORD_BYTES} bytes"));
    }
    Ok(text)
}

/// A record from its file name and contents. The name must match the
/// contents: [`remove`] finds a record by name, so a mismatched file would
/// never be removed.
fn parse_record(file_name: &str, text: &str) -> Result<InstanceRecord, String> {
    if !file_name.ends_with(".json") || !file_name.contains('@') {
        return Err("not an instance record (expected <service>@<instance>.json)".into());
    }
    // The version first, so a newer format is named as such rather than
    // reported as a missing field.
    let v: Value = serde_json::from_str(text).map_err(|e| format!("corrupt record: {e}"))?;
    match v.get("version").and_then(Value::as_u64) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => {
            return Err(format!(
                "record version {n}, this bulkhead reads version {VERSION}"
            ));
        }
        None => return Err("corrupt record: no version".into()),
    }
    let rec: InstanceRecord =
        serde_json::from_value(v).map_err(|e| format!("corrupt record: {e}"))?;
    let expected = file_name_for(&rec);
    if expected != file_name {
        return Err(format!(
            "file name does not match its contents (service {:?} instance {:?})",
            rec.service, rec.instance
        ));
    }
    Ok(rec)
}

fn file_name_for(rec: &InstanceRecord) -> String {
    file_name(&rec.service, &rec.instance)
}

// ---------------------------------------------------------------- /proc

/// What `/proc/<pid>/stat` tells about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), ...
    pub state: char,
    /// Field 22: clock ticks since boot.
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`. Field 2 is the command in parentheses and may
/// itself hold spaces and parentheses (`1 (a) b) S ...`), so the fields are
/// counted from the LAST `)`: after it come field 3 (state) onwards.
pub fn parse_stat(text: &str) -> Result<ProcStat, String> {
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| "no `)` closing the command".to_string())?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|f| f.chars().next())
        .ok_or_else(|| "no state field".to_string())?;
    // Fields 4..=21 skipped, then field 22.
    let start = fields
        .nth(22 - 4)
        .ok_or_else(|| "fewer than 22 fields".to_string())?;
    let start_time = start
        .parse()
        .map_err(|_| format!("start time {start:?} is not a number"))?;
    Ok(ProcStat { state, start_time })
}

/// The cgroup v2 path from `/proc/<pid>/cgroup`: the `0::` line
/// (`0::/bulkhead/web/0` -> `/bulkhead/web/0`), relative to the mount as the
/// reader's cgroup namespace sees it. `None` without such a line.
pub fn parse_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

fn proc_file(proc_root: &Path, pid: i32, file: &str) -> io::Result<String> {
    let p = proc_root.join(pid.to_string()).join(file);
    fs::read_to_string(&p).map_err(|e| with_path(&p, "read", e))
}

fn proc_stat(proc_root: &Path, pid: i32) -> io::Result<ProcStat> {
    let text = proc_file(proc_root, pid, "stat")?;
    parse_stat(&text).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/{pid}/stat: {why}", proc_root.display()),
        )
    })
}

/// Field 22 of `<proc_root>/<pid>/stat`.
pub fn proc_start_time(proc_root: &Path, pid: i32) -> io::Result<u64> {
    proc_stat(proc_root, pid).map(|s| s.start_time)
}

/// The cgroup v2 path of `pid` (see [`parse_cgroup`]).
pub fn proc_cgroup(proc_root: &Path, pid: i32) -> io::Result<Option<String>> {
    proc_file(proc_root, pid, "cgroup").map(|t| parse_cgroup(&t))
}

/// A running process as [`plan_adoption`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub start_time: u64,
    /// As in `/proc/<pid>/cgroup`: `/bulkhead/web/0`, relative to the mount.
    pub cgroup: String,
}

/// The probe [`plan_adoption`] takes, reading `proc_root`: `None` when the
/// process does not exist or is a zombie (it has ended, only its exit status
/// is left to collect).
pub fn live(proc_root: &Path, pid: i32) -> Option<Live> {
    if pid <= 0 {
        return None;
    }
    let stat = proc_stat(proc_root, pid).ok()?;
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        return None;
    }
    let cgroup = proc_cgroup(proc_root, pid).ok()?.unwrap_or_default();
    Some(Live {
        start_time: stat.start_time,
        cgroup,
    })
}

// ---------------------------------------------------------------- spawn hash

/// The service settings fixed when an instance is spawned, as they appear in
/// the effective config: a change to any of them needs a restart to apply.
/// `resources.rlimits` is the one spawn-time part of `resources`; the rest of
/// `resources` is cgroup limits, written live. Everything else (restart,
/// stop, health, watch, autostart, depends_on, instances, the isolation
/// settings) is applied by the supervisor without touching the process.
pub const SPAWN_KEYS: &[&str] = &[
    "command",
    "program",
    "env",
    "working_dir",
    "user",
    "group",
    "supplementary_groups",
    "nice",
    "oom_score_adj",
    "io_priority",
    "namespaces",
    "hostname",
    "mounts",
    "protect",
    "directories",
    "security",
    "resources.rlimits",
    "logs",
    // The group decides the cgroup path.
    "member_of",
];

/// The spawn-time settings of `svc` by [`SPAWN_KEYS`] name, each as it
/// serializes in the effective config (`Null` when unset).
pub fn spawn_view(svc: &Service) -> Map<String, Value> {
    // Serializing the config cannot fail: every path in it came from UTF-8
    // YAML. Should it, the debug form keeps the hash deterministic.
    let full = serde_json::to_value(svc).unwrap_or_else(|_| Value::String(format!("{svc:?}")));
    SPAWN_KEYS
        .iter()
        .map(|key| {
            let v = match key.split_once('.') {
                Some((a, b)) => full.get(a).and_then(|x| x.get(b)),
                None => full.get(*key),
            };
            (key.to_string(), v.cloned().unwrap_or(Value::Null))
        })
        .collect()
}

/// A stable fingerprint of the settings fixed at spawn time: FNV-1a 64 over
/// the canonical JSON (object keys sorted) of [`spawn_view`], as 16 hex
/// digits. Stable across runs and builds of one bulkhead version; a version
/// that changes how a setting serializes changes the hash, and adopted
/// instances are then restarted once.
pub fn spawn_hash(svc: &Service) -> String {
    let mut text = String::new();
    canonical(&Value::Object(spawn_view(svc)), &mut text);
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// JSON with object keys sorted at every level, whatever map type
/// serde_json was built with.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// FNV-1a, 64 bits: `fnv1a64(b"a") == 0xaf63dc4c8601ec8c`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

// ---------------------------------------------------------------- adoption

/// A record whose instance is still running and is taken over.
#[derive(Debug, Clone, PartialEq)]
pub struct Adopt {
    pub record: InstanceRecord,
    /// The spawn-time settings changed since it was spawned: the daemon
    /// restarts it (after adopting, so the restart is an orderly stop).
    pub config_changed: bool,
}

/// What a starting daemon does with what the previous one left.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdoptionPlan {
    pub adopt: Vec<Adopt>,
    /// Records not adopted, with why: their files are removed.
    pub stale: Vec<(InstanceRecord, String)>,
    /// Instance cgroups to kill and remove: those without an adopted record
    /// (a stale record's included), deepest first as listed. Never
    /// `R/supervisor` nor a live `R/exec/<pid>`.
    pub orphans: Vec<PathBuf>,
}

/// `dir` relative to `root`, as names; `None` outside it or with `..`.
fn rel_parts<'a>(root: &Path, dir: &'a Path) -> Option<Vec<&'a str>> {
    let rel = dir.strip_prefix(root).ok()?;
    rel.components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect()
}

/// The pid of the `bulkhead exec` owning `dir`, if `dir` is `R/exec/<pid>`
/// or below it.
pub fn exec_pid(root: &Path, dir: &Path) -> Option<i32> {
    match rel_parts(root, dir)?.as_slice() {
        ["exec", pid, ..] => {
            let n: i32 = pid.parse().ok()?;
            (n > 0 && n.to_string() == *pid).then_some(n)
        }
        _ => None,
    }
}

/// Whether `dir`, an `R/exec/<pid>` cgroup, belongs to a `bulkhead exec`
/// that is still running (`alive(pid)`) and so must be left alone. A dir
/// that is not an exec cgroup is not kept by this rule.
pub fn exec_dir_alive(root: &Path, dir: &Path, alive: &dyn Fn(i32) -> bool) -> bool {
    exec_pid(root, dir).is_some_and(alive)
}

/// Whether `dir` is where an instance can live: `R/<service>/<instance>` or
/// `R/<group>/<service>/<instance>`, outside `R/supervisor` and `R/exec`.
fn is_instance_place(root: &Path, dir: &Path) -> bool {
    match rel_parts(root, dir) {
        Some(parts) => {
            (2..=3).contains(&parts.len()) && parts[0] != "supervisor" && parts[0] != "exec"
        }
        None => false,
    }
}

/// Why `rec` cannot be adopted, or `None` if it can.
fn stale_reason(
    rec: &InstanceRecord,
    live: &dyn Fn(i32) -> Option<Live>,
    mount: &Path,
    root: &Path,
    cfg: &Config,
) -> Option<String> {
    if !is_instance_place(root, &rec.cgroup) {
        return Some(format!(
            "cgroup {} is not an instance cgroup under {}",
            rec.cgroup.display(),
            root.display()
        ));
    }
    if rec.pid <= 1 {
        return Some(format!("pid {} cannot be an instance's init", rec.pid));
    }
    let Some(l) = live(rec.pid) else {
        return Some(format!("process gone: pid {} is not running", rec.pid));
    };
    if l.start_time != rec.start_time {
        return Some(format!(
            "pid reused: pid {} started at tick {}, the record's at {}",
            rec.pid, l.start_time, rec.start_time
        ));
    }
    let now = mount.join(l.cgroup.trim_start_matches('/'));
    if now != rec.cgroup {
        return Some(format!(
            "moved cgroup: pid {} is in {}, the record says {}",
            rec.pid,
            now.display(),
            rec.cgroup.display()
        ));
    }
    let Some(svc) = cfg.service(&rec.service) else {
        return Some(format!(
            "service removed: {} is not in the config",
            rec.service
        ));
    };
    match svc.isolation {
        Some(level) if !super::launch::is_instance_of(level, &rec.instance) => {
            return Some(format!(
                "not an instance of the template: {} has isolation {level}, and {:?} is not one of its keys",
                rec.service, rec.instance
            ));
        }
        Some(_) => {}
        None => {
            if let Some(why) = check_replica(svc, rec) {
                return Some(why);
            }
        }
    }
    let tree = Subtree {
        root: root.to_path_buf(),
    };
    let want = tree.instance_dir(svc.member_of.as_deref(), &svc.name, &rec.instance);
    if want != rec.cgroup {
        return Some(format!(
            "group changed: the config puts it at {}, it runs in {}",
            want.display(),
            rec.cgroup.display()
        ));
    }
    None
}

/// Why `rec` is not one of the replicas `0..instances` of `svc`.
fn check_replica(svc: &Service, rec: &InstanceRecord) -> Option<String> {
    match rec.instance.parse::<u32>() {
        Ok(i) if i.to_string() == rec.instance && i < svc.instances => None,
        _ => Some(format!(
            "instance beyond count: {} has instances 0..{}, not {:?}",
            rec.service, svc.instances, rec.instance
        )),
    }
}

/// Decides, without touching the system, which instances a starting daemon
/// adopts and what it cleans up.
///
/// - `records`: from [`read_all`];
/// - `live(pid)`: the process's start time and cgroup, `None` if it is gone
///   ([`live`] reads them from `/proc`);
/// - `mount`: the cgroup2 mount (`/sys/fs/cgroup`), `root`: bulkhead's
///   subtree R (`/sys/fs/cgroup/bulkhead`);
/// - `instance_dirs`: the cgroups found under R (`cgroup::kill::descendants`;
///   only the leaves are considered, so the full listing can be passed).
///
/// A record is adopted iff its pid is alive with the recorded start time,
/// in the recorded cgroup, the service is still configured, the instance is
/// one of its replicas `0..instances` (or, for a template, an id of its
/// isolation level: `shared`, `ns:<id>`, `session:<id>`), and
/// the cgroup is where the current config puts the instance. Of several
/// records for one instance or one cgroup, the first adoptable one wins.
pub fn plan_adoption(
    records: &[InstanceRecord],
    live: &dyn Fn(i32) -> Option<Live>,
    mount: &Path,
    root: &Path,
    cfg: &Config,
    instance_dirs: &[PathBuf],
) -> AdoptionPlan {
    let mut plan = AdoptionPlan::default();
    let mut taken_names = BTreeSet::new();
    let mut taken_cgroups = BTreeSet::new();
    for rec in records {
        let why = stale_reason(rec, live, mount, root, cfg).or_else(|| {
            let name = (rec.service.as_str(), rec.instance.as_str());
            (taken_names.contains(&name) || taken_cgroups.contains(&rec.cgroup))
                .then(|| "duplicate: another record for this instance was adopted".to_string())
        });
        match why {
            Some(why) => plan.stale.push((rec.clone(), why)),
            None => {
                taken_names.insert((rec.service.as_str(), rec.instance.as_str()));
                taken_cgroups.insert(rec.cgroup.clone());
                let config_changed = cfg
                    .service(&rec.service)
                    .is_some_and(|s| spawn_hash(s) != rec.config_hash);
                plan.adopt.push(Adopt {
                    record: rec.clone(),
                    config_changed,
                });
            }
        }
    }
    plan.orphans = orphans(root, instance_dirs, &taken_cgroups, live);
    plan
}

/// The leaves under R, at least two levels down (`R/<a>/<b>`), that nothing
/// keeps: not adopted (nor below an adopted cgroup), not the daemon's own,
/// not a running `bulkhead exec`'s.
fn orphans(
    root: &Path,
    dirs: &[PathBuf],
    adopted: &BTreeSet<PathBuf>,
    live: &dyn Fn(i32) -> Option<Live>,
) -> Vec<PathBuf> {
    let all: BTreeSet<&PathBuf> = dirs.iter().collect();
    // Paths order by component, so a dir's descendants follow it directly.
    let is_leaf = |d: &PathBuf| {
        all.range::<&PathBuf, _>((std::ops::Bound::Excluded(d), std::ops::Bound::Unbounded))
            .next()
            .is_none_or(|next| !next.starts_with(d))
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for d in dirs {
        let Some(parts) = rel_parts(root, d) else {
            continue;
        };
        let keep = parts.len() < 2
            || parts[0] == "supervisor"
            || exec_dir_alive(root, d, &|pid| live(pid).is_some())
            || d.ancestors().any(|a| adopted.contains(a));
        if !keep && is_leaf(d) && seen.insert(d) {
            out.push(d.clone());
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
