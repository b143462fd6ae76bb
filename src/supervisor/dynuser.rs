//! Dynamic users (docs/ARCHITECTURE.md decision 14): a service without `user:` runs as a
//! uid/gid of its own (uid == gid), allocated per instance key from a range
//! (by default 61184-65519, the range systemd's `DynamicUser=` uses), stable
//! for that key across restarts of the service and of the daemon, never a uid
//! the host's `/etc/passwd` names nor a gid its `/etc/group` (or a passwd
//! entry's primary group) names.
//!
//! The registry is one small file per allocation, named by the uid:
//!
//! ```text
//! <state_dir>/dynamic-users/61234            key=web@0
//! <state_dir>/dynamic-users/63001            key=sandbox@ns:tenant-1
//! <state_dir>/dynamic-users/62177            key=transient:4242:0:exec
//!                                            pid=4242      (a `bulkhead exec`)
//! <state_dir>/dynamic-users/.tmp.61234.4242.0  a claim being written
//! ```
//!
//! The uid file is the lock, as systemd's `/run/systemd/dynamic-uid/<uid>`
//! is. A claim writes the record to a temp file, syncs it, and `link(2)`s it
//! to the uid's name: like `O_CREAT|O_EXCL`, the link fails with `EEXIST` if
//! any process claimed the uid first, but the record appears complete or not
//! at all, so a crash never leaves an empty claim whose owner is unknown.
//! Two processes (the daemon and a `bulkhead exec`) allocating at once get
//! distinct uids; two allocating the *same* key get the same one, because
//! both probe the same candidate order and adopt a claim that names their key.
//!
//! Candidate order for a key: FNV-1a 64 of the key, reduced into the range,
//! first (the same uid for the same key on every machine and after the state
//! dir is lost), then linear probing upwards with wrap-around. systemd hashes
//! the name (siphash24) first too, then tries random uids 100 times; probing
//! the whole range instead makes "range exhausted" exact. 65534 (`nobody`),
//! 65535 (16-bit `-1`), 0 and 4294967295 are never candidates.
//!
//! `/etc/passwd` and `/etc/group` are parsed here, not through NSS: the
//! daemon is multi-threaded and NSS modules may talk to the network. Users
//! that only NSS knows (LDAP, sssd, systemd's own dynamic users) are not
//! seen; [`DynamicUsers::with_foreign_claims`] adds a directory of another
//! allocator's uid-named claims (systemd's `/run/systemd/dynamic-uid`) to
//! avoid. The host files are re-read when their size, inode or mtime change.
//!
//! A key is owned by one process at a time: the daemon owns service keys,
//! each `bulkhead exec` its own transient key (which names its pid, so a
//! transient claim left by a killed `exec` is reaped once that pid is gone).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An inclusive range of uids (and the equal gids) to allocate from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UidRange {
    pub first: u32,
    pub last: u32,
}

/// systemd's dynamic user range, `DYNAMIC_UID_MIN..=DYNAMIC_UID_MAX`.
pub const DEFAULT_RANGE: UidRange = UidRange {
    first: 61184,
    last: 65519,
};

/// Ids never handed out even when a range covers them: root, `nobody` (the
/// overflow id), 16-bit `(uid_t)-1`, 32-bit `(uid_t)-1`.
const RESERVED: [u32; 4] = [0, 65534, 65535, u32::MAX];

/// The longest key accepted (service + instance id fit many times over).
pub const MAX_KEY: usize = 512;

/// The registry directory under the state dir.
pub const DIR_NAME: &str = "dynamic-users";

/// The prefix of transient keys; service keys must not use it.
const TRANSIENT_PREFIX: &str = "transient:";

/// A record file is a few short lines; anything larger is not ours.
const MAX_RECORD: u64 = 4096;

/// `/etc/passwd` or `/etc/group` larger than this is refused.
const MAX_HOST_FILE: u64 = 16 << 20;

fn is_reserved(id: u32) -> bool {
    RESERVED.contains(&id)
}

impl UidRange {
    /// Parses `"61184-65519"` (the `supervisor.dynamic_users` value).
    pub fn parse(s: &str) -> Result<UidRange, String> {
        let s = s.trim();
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a range: write FIRST-LAST, e.g. 61184-65519"))?;
        let num = |t: &str, which: &str| {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "the {which} uid {t:?} in {s:?} is not a number: write FIRST-LAST, e.g. 61184-65519"
                ));
            }
            t.parse::<u32>().map_err(|_| {
                format!("the {which} uid {t} in {s:?} is above 4294967294, the largest uid")
            })
        };
        let range = UidRange {
            first: num(a, "first")?,
            last: num(b, "last")?,
        };
        range.check()?;
        Ok(range)
    }

    /// Why a range cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let UidRange { first, last } = *self;
        if first > last {
            return Err(format!(
                "the range {self} is empty: {first} is above {last}"
            ));
        }
        if first == 0 {
            return Err(format!(
                "the range {self} includes uid 0 (root): start it above the host's users, e.g. 61184"
            ));
        }
        if last == u32::MAX {
            return Err(format!(
                "the range {self} includes 4294967295, which is (uid_t)-1 and no uid: end it lower"
            ));
        }
        if self.usable() == 0 {
            return Err(format!(
                "the range {self} has no usable uid: 65534 (nobody) and 65535 are never allocated"
            ));
        }
        Ok(())
    }

    pub fn contains(&self, id: u32) -> bool {
        (self.first..=self.last).contains(&id)
    }

    /// How many ids of the range can be handed out (reserved ids excluded).
    pub fn usable(&self) -> u64 {
        if self.first > self.last {
            return 0;
        }
        let span = u64::from(self.last) - u64::from(self.first) + 1;
        let reserved = RESERVED.iter().filter(|&&r| self.contains(r)).count() as u64;
        span - reserved
    }

    /// Whether `id` may be handed out from this range.
    pub fn allows(&self, id: u32) -> bool {
        self.contains(id) && !is_reserved(id)
    }
}

impl Default for UidRange {
    fn default() -> Self {
        DEFAULT_RANGE
    }
}

impl fmt::Display for UidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The user name a dynamic user goes by (`USER`, `LOGNAME`): `bh-61234`.
/// Derived from the uid, not the key, so it is short, valid for every tool
/// that checks user names, and says nothing about tenants.
pub fn user_name(uid: u32) -> String {
    format!("bh-{uid}")
}

// ------------------------------------------------------------ pure parts

/// FNV-1a, 64 bits: fixed by its definition, so a key hashes the same on
/// every machine and every Rust version (std's `DefaultHasher` promises
/// neither).
pub fn key_hash(key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Every usable uid of `range`, each once, in the order `key` tries them:
/// the key's hash reduced into the range, then upwards, wrapping around.
///
/// ```text
/// range 100-104, key_hash % 5 == 3:   103 104 100 101 102
/// ```
pub fn candidates(key: &str, range: UidRange) -> impl Iterator<Item = u32> {
    let (first, span) = if range.first > range.last {
        (0, 0)
    } else {
        (
            u64::from(range.first),
            u64::from(range.last) - u64::from(range.first) + 1,
        )
    };
    let start = if span == 0 { 0 } else { key_hash(key) % span };
    (0..span)
        .filter_map(move |i| u32::try_from(first + (start + i) % span).ok())
        .filter(|&id| !is_reserved(id))
}

/// The ids the host's account files hand out: uids from passwd, gids from
/// group and the primary gids of passwd entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIds {
    pub uids: BTreeSet<u32>,
    pub gids: BTreeSet<u32>,
}

impl HostIds {
    /// Parses the text of `/etc/passwd` and `/etc/group`. Comments, blank
    /// lines, NIS compat lines (`+`, `-`) and lines without a numeric id
    /// field are skipped: a malformed line names no id we could avoid.
    pub fn parse(passwd: &str, group: &str) -> HostIds {
        let mut ids = HostIds::default();
        for fields in account_lines(passwd) {
            // name:password:UID:GID:gecos:home:shell
            if let Some(uid) = id_field(&fields, 2) {
                ids.uids.insert(uid);
            }
            if let Some(gid) = id_field(&fields, 3) {
                ids.gids.insert(gid);
            }
        }
        for fields in account_lines(group) {
            // name:password:GID:members
            if let Some(gid) = id_field(&fields, 2) {
                ids.gids.insert(gid);
            }
        }
        ids
    }

    /// Whether `id` is taken as a uid or as a gid (a dynamic user uses it as both).
    pub fn taken(&self, id: u32) -> bool {
        self.uids.contains(&id) || self.gids.contains(&id)
    }

    /// How many ids of `range` the host takes.
    pub fn taken_in(&self, range: UidRange) -> usize {
        if range.first > range.last {
            return 0;
        }
        self.uids
            .range(range.first..=range.last)
            .chain(self.gids.range(range.first..=range.last))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

fn account_lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect())
}

fn id_field(fields: &[&str], i: usize) -> Option<u32> {
    let f = fields.get(i)?.trim();
    if f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    f.parse().ok()
}

/// One allocation as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    /// The process that holds a transient allocation; `None` for a key the
    /// daemon keeps across runs.
    pub pid: Option<u32>,
}

impl Record {
    /// `key=web@0\n`, plus `pid=4242\n` for a transient allocation.
    pub fn render(&self) -> String {
        let mut s = format!("key={}\n", self.key);
        if let Some(pid) = self.pid {
            s += &format!("pid={pid}\n");
        }
        s
    }

    /// The inverse of [`Record::render`]; unknown lines are ignored (a newer
    /// bulkhead may add some), a record without a valid key is `None`.
    pub fn parse(text: &str) -> Option<Record> {
        let mut key = None;
        let mut pid = None;
        for line in text.lines() {
            if let Some(k) = line.strip_prefix("key=") {
                key = Some(k.to_string());
            } else if let Some(p) = line.strip_prefix("pid=") {
                pid = Some(p.parse().ok()?);
            }
        }
        let key = key?;
        check_key(&key).ok()?;
        Some(Record { key, pid })
    }
}

/// Why `key` cannot name an allocation: keys are written one per line.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    if key.len() > MAX_KEY {
        return Err("it is longer than 512 bytes");
    }
    if key.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    Ok(())
}

// ---------------------------------------------------------------- errors

/// Why no dynamic user could be had.
#[derive(Debug, thiserror::Error)]
pub enum DynUserError {
    #[error(
        "no free uid in the dynamic user range {range}: {in_use} allocated by bulkhead, \
         {host} taken by the host's passwd/group, {usable} usable in all"
    )]
    RangeExhausted {
        range: UidRange,
        /// Allocations recorded in the range (services and transient ones).
        in_use: usize,
        /// Ids of the range that `/etc/passwd` or `/etc/group` use.
        host: usize,
        usable: u64,
    },
    #[error("dynamic user key {key:?} is not usable: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DynUserError {
    /// What the user can do about it.
    pub fn suggestion(&self) -> String {
        match self {
            DynUserError::RangeExhausted { range, .. } => format!(
                "widen supervisor.dynamic_users (now {range}), give some services a `user:`, \
                 or remove template instances that are no longer needed"
            ),
            DynUserError::InvalidKey { .. } => {
                "this is a bulkhead bug: instance keys are checked before they get here".into()
            }
            DynUserError::Io { path, .. } => format!(
                "check that {} exists, is a directory writable by root, and is on a \
                 filesystem with free space",
                path.parent().unwrap_or(path).display()
            ),
        }
    }

    /// The error as the CLI and the API show it.
    pub fn diagnostic(&self) -> crate::error::Diagnostic {
        use crate::error::{Code, Diagnostic};
        let d = match self {
            DynUserError::RangeExhausted {
                range,
                in_use,
                host,
                usable,
            } => Diagnostic::new(
                Code::DynamicUser,
                format!("no free uid in the dynamic user range {range}"),
            )
            .context("range", range)
            .context("allocated", in_use)
            .context("host_accounts", host)
            .context("usable", usable),
            DynUserError::InvalidKey { key, reason } => Diagnostic::new(
                Code::DynamicUser,
                format!("dynamic user key {key:?} is not usable"),
            )
            .cause(reason),
            DynUserError::Io { op, path, source } => {
                Diagnostic::new(Code::DynamicUser, format!("cannot {op} {}", path.display()))
                    .context("path", path.display())
                    .cause(source)
            }
        };
        d.suggest(self.suggestion())
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DynUserError {
    let path = path.to_path_buf();
    move |source| DynUserError::Io { op, path, source }
}

impl From<DynUserError> for io::Error {
    fn from(e: DynUserError) -> io::Error {
        match e {
            DynUserError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        }
    }
}

// ------------------------------------------------------------ registry

/// What [`DynamicUsers::allocate`] handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The uid, and the gid: they are equal.
    pub uid: u32,
    /// The uid recorded for this key before, when it had to change (the host
    /// now has an account with it, the range changed, the record was lost):
    /// files the service owns under the old uid need a `chown`.
    pub changed_from: Option<u32>,
}

impl Allocation {
    pub fn gid(&self) -> u32 {
        self.uid
    }

    pub fn name(&self) -> String {
        user_name(self.uid)
    }
}

/// A file's identity, to notice that `/etc/passwd` changed.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The registry of dynamic users under `<state_dir>/dynamic-users/`.
#[derive(Debug)]
pub struct DynamicUsers {
    dir: PathBuf,
    range: UidRange,
    etc: PathBuf,
    foreign: Vec<PathBuf>,
    host: HostIds,
    host_stamp: (Stamp, Stamp),
    /// Keys this process keeps (not transient ones), with their uids.
    by_key: HashMap<String, u32>,
    by_uid: BTreeMap<u32, String>,
}

impl DynamicUsers {
    /// Opens (creating it, mode 0700) the registry under `state_dir`, loads
    /// its records, reads `<etc>/passwd` and `<etc>/group`, and removes what
    /// dead processes left: transient claims of exited `bulkhead exec`s and
    /// half-written temp files.
    pub fn open(state_dir: &Path, range: UidRange, etc: &Path) -> io::Result<DynamicUsers> {
        range
            .check()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let dir = state_dir.join(DIR_NAME);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| annotate(e, "create", &dir))?;
        let mut users = DynamicUsers {
            dir,
            range,
            etc: etc.to_path_buf(),
            foreign: Vec::new(),
            host: HostIds::default(),
            host_stamp: (None, None),
            by_key: HashMap::new(),
            by_uid: BTreeMap::new(),
        };
        users.refresh_host()?;
        users.reap_stale()?;
        users.load()?;
        Ok(users)
    }

    /// Also avoids every uid that has an entry named by it in `dir`: another
    /// allocator's claims, e.g. systemd's `/run/systemd/dynamic-uid`, whose
    /// users only NSS knows. A missing `dir` avoids nothing.
    pub fn with_foreign_claims(mut self, dir: impl Into<PathBuf>) -> DynamicUsers {
        self.foreign.push(dir.into());
        self
    }

    pub fn range(&self) -> UidRange {
        self.range
    }

    /// The registry directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The uid recorded for `key`, as this registry last saw it (no IO).
    pub fn lookup(&self, key: &str) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// Every kept (non-transient) allocation, by uid: the daemon releases
    /// those whose key no longer names an instance.
    pub fn records(&self) -> impl Iterator<Item = (u32, &str)> {
        self.by_uid.iter().map(|(&uid, key)| (uid, key.as_str()))
    }

    /// The uid for `key` (e.g. `web@0`, `sandbox@ns:tenant-1`): the recorded
    /// one if it is still usable (in the range, not in passwd/group, still
    /// recorded for this key), else a new one, in [`candidates`] order.
    pub fn allocate(&mut self, key: &str) -> Result<Allocation, DynUserError> {
        check_key(key).map_err(|reason| DynUserError::InvalidKey {
            key: key.to_string(),
            reason,
        })?;
        if key.starts_with(TRANSIENT_PREFIX) {
            return Err(DynUserError::InvalidKey {
                key: key.to_string(),
                reason: "the `transient:` prefix is kept for `bulkhead exec`",
            });
        }
        self.refresh_host().map_err(|e| DynUserError::Io {
            op: "read",
            path: self.etc.clone(),
            source: e,
        })?;
        let old = self.by_key.get(key).copied();
        if let Some(uid) = old {
            if self.file_names(uid, key)? {
                if self.usable(uid) {
                    return Ok(Allocation {
                        uid,
                        changed_from: None,
                    });
                }
            } else {
                // Released or taken over behind our back: not ours any more.
                self.forget(uid);
            }
        }
        let record = Record {
            key: key.to_string(),
            pid: None,
        };
        let uid = self.claim_any(&record)?;
        if let Some(old) = old.filter(|&o| o != uid) {
            // The new claim is on disk first: a crash here leaves two records
            // for the key, and the next `load` keeps the usable one.
            self.remove_if_names(old, key)
                .map_err(io_err("remove", &self.dir.join(old.to_string())))?;
            self.forget(old);
        }
        self.remember(uid, key);
        Ok(Allocation {
            uid,
            changed_from: old.filter(|&o| o != uid),
        })
    }

    /// A uid for one `bulkhead exec` run, released when the returned guard
    /// is released or dropped. Its record names this process, so a claim
    /// left by a killed `exec` is removed by the next [`DynamicUsers::open`]
    /// once the process is gone. `tag` is for people reading the registry.
    pub fn transient(&mut self, tag: &str) -> Result<TransientUser, DynUserError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let key = format!("{TRANSIENT_PREFIX}{pid}:{n}:{tag}");
        check_key(&key).map_err(|reason| DynUserError::InvalidKey {
            key: key.clone(),
            reason,
        })?;
        self.refresh_host().map_err(|e| DynUserError::Io {
            op: "read",
            path: self.etc.clone(),
            source: e,
        })?;
        let record = Record {
            key: key.clone(),
            pid: Some(pid),
        };
        let uid = self.claim_any(&record)?;
        Ok(TransientUser {
            uid,
            path: self.dir.join(uid.to_string()),
            key,
            released: false,
        })
    }

    /// Frees the allocation of `key` (a removed template instance, a service
    /// that now has a `user:`), as this registry knows it: the keys it loaded
    /// at `open` or allocated since. Nothing recorded is not an error.
    pub fn release(&mut self, key: &str) -> io::Result<()> {
        let uids: Vec<u32> = self
            .by_uid
            .iter()
            .filter(|(_, k)| k.as_str() == key)
            .map(|(&u, _)| u)
            .collect();
        for uid in uids {
            self.remove_if_names(uid, key)?;
            self.forget(uid);
        }
        self.by_key.remove(key);
        Ok(())
    }

    /// Removes transient claims whose process is gone and temp files whose
    /// writer is gone. Returns how many claims were freed.
    pub fn reap_stale(&mut self) -> io::Result<usize> {
        let mut freed = 0;
        for entry in fs::read_dir(&self.dir).map_err(|e| annotate(e, "read", &self.dir))? {
            let entry = entry.map_err(|e| annotate(e, "read", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(rest) = name.strip_prefix(".tmp.") {
                // .tmp.<uid>.<pid>.<n>
                let pid = rest.split('.').nth(1).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| !process_alive(p)) {
                    remove_quiet(&entry.path())?;
                }
                continue;
            }
            let Ok(uid) = name.parse::<u32>() else {
                continue;
            };
            if let Some(Record {
                key,
                pid: Some(pid),
            }) = read_record(&entry.path())?
                && !process_alive(pid)
                && self.remove_if_names(uid, &key)?
            {
                freed += 1;
            }
        }
        Ok(freed)
    }

    // ------------------------------------------------------------ internals

    /// Loads kept records. A key recorded twice (a crash while it moved)
    /// keeps its usable uid, lowest first; the other records are removed.
    fn load(&mut self) -> io::Result<()> {
        let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| annotate(e, "read", &self.dir))? {
            let entry = entry.map_err(|e| annotate(e, "read", &self.dir))?;
            let Some(uid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(Record { key, pid: None }) = read_record(&entry.path())? {
                seen.entry(key).or_default().push(uid);
            }
        }
        for (key, mut uids) in seen {
            uids.sort_by_key(|&u| (!self.usable(u), u));
            for &extra in &uids[1..] {
                self.remove_if_names(extra, &key)?;
            }
            self.remember(uids[0], &key);
        }
        Ok(())
    }

    fn remember(&mut self, uid: u32, key: &str) {
        self.by_key.insert(key.to_string(), uid);
        self.by_uid.insert(uid, key.to_string());
    }

    fn forget(&mut self, uid: u32) {
        if let Some(key) = self.by_uid.remove(&uid)
            && self.by_key.get(&key) == Some(&uid)
        {
            self.by_key.remove(&key);
        }
    }

    /// Whether `uid` may be (still) used: in the range, not reserved, not the
    /// host's, not another allocator's.
    fn usable(&self, uid: u32) -> bool {
        self.range.allows(uid)
            && !self.host.taken(uid)
            && !self
                .foreign
                .iter()
                .any(|d| fs::symlink_metadata(d.join(uid.to_string())).is_ok())
    }

    /// Re-reads passwd and group if either changed since the last read.
    fn refresh_host(&mut self) -> io::Result<()> {
        let (p, g) = (self.etc.join("passwd"), self.etc.join("group"));
        let now = (stamp(&p), stamp(&g));
        if now == self.host_stamp && now != (None, None) {
            return Ok(());
        }
        let passwd = read_host_file(&p)?;
        let group = read_host_file(&g)?;
        self.host = HostIds::parse(&passwd, &group);
        self.host_stamp = now;
        Ok(())
    }

    /// Claims the first free candidate for `record.key`; adopts one that a
    /// concurrent process already claimed for the same key.
    fn claim_any(&mut self, record: &Record) -> Result<u32, DynUserError> {
        for attempt in 0..2 {
            for uid in candidates(&record.key, self.range) {
                if self.by_uid.get(&uid).is_some_and(|k| *k != record.key) || !self.usable(uid) {
                    continue;
                }
                match self.claim(uid, record)? {
                    true => return Ok(uid),
                    false if record.pid.is_none() && self.file_names(uid, &record.key)? => {
                        return Ok(uid);
                    }
                    false => {}
                }
            }
            // Full: free what dead `exec`s left, then look once more.
            if attempt == 0
                && self.reap_stale().map_err(|e| DynUserError::Io {
                    op: "clean",
                    path: self.dir.clone(),
                    source: e,
                })? == 0
            {
                break;
            }
        }
        Err(DynUserError::RangeExhausted {
            range: self.range,
            in_use: self.claims_in_range(),
            host: self.host.taken_in(self.range),
            usable: self.range.usable(),
        })
    }

    fn claims_in_range(&self) -> usize {
        fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|&u| self.range.contains(u))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Writes `record` as the claim on `uid`: temp file, fsync, `link` (fails
    /// if the uid is claimed), fsync of the directory. `Ok(false)`: taken.
    fn claim(&self, uid: u32, record: &Record) -> Result<bool, DynUserError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".tmp.{uid}.{}.{n}", std::process::id()));
        let path = self.dir.join(uid.to_string());
        let write = || -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            f.write_all(record.render().as_bytes())?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", &tmp)(e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.dir).map_err(io_err("sync", &self.dir))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("create", &path)(e)),
        }
    }

    /// Whether the record of `uid` names `key`.
    fn file_names(&self, uid: u32, key: &str) -> Result<bool, DynUserError> {
        let path = self.dir.join(uid.to_string());
        Ok(read_record(&path)
            .map_err(|e| DynUserError::Io {
                op: "read",
                path,
                source: e,
            })?
            .is_some_and(|r| r.key == key))
    }

    /// Removes the record of `uid` if it names `key`; whether it did.
    fn remove_if_names(&self, uid: u32, key: &str) -> io::Result<bool> {
        let path = self.dir.join(uid.to_string());
        if read_record(&path)?.is_none_or(|r| r.key != key) {
            return Ok(false);
        }
        remove_quiet(&path)?;
        Ok(true)
    }
}

/// One `bulkhead exec`'s uid, freed when released or dropped.
#[derive(Debug)]
pub struct TransientUser {
    uid: u32,
    key: String,
    path: PathBuf,
    released: bool,
}

impl TransientUser {
    /// The uid, and the gid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.uid
    }

    pub fn name(&self) -> String {
        user_name(self.uid)
    }

    /// `transient:<pid>:<n>:<tag>`, as the record holds it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Frees the uid now, reporting a failure that `drop` would swallow.
    pub fn release(mut self) -> io::Result<()> {
        self.released = true;
        release_path(&self.path, &self.key)
    }
}

impl Drop for TransientUser {
    fn drop(&mut self) {
        if !self.released {
            let _ = release_path(&self.path, &self.key);
        }
    }
}

fn release_path(path: &Path, key: &str) -> io::Result<()> {
    if read_record(path)?.is_some_and(|r| r.key == key) {
        remove_quiet(path)?;
    }
    Ok(())
}

// ------------------------------------------------------------ small IO

fn annotate(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {op} {}: {e}", path.display()))
}

/// A record, `None` if the file is missing or not a record.
fn read_record(path: &Path) -> io::Result<Option<Record>> {
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A symlink where a record belongs: not ours, never followed.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) => return Err(annotate(e, "open", path)),
    };
    let mut buf = String::new();
    if f.take(MAX_RECORD).read_to_string(&mut buf).is_err() {
        return Ok(None);
    }
    Ok(Record::parse(&buf))
}

/// The text of an account file; a missing one is empty.
fn read_host_file(path: &Path) -> io::Result<String> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(annotate(e, "open", path)),
    };
    let mut buf = Vec::new();
    f.take(MAX_HOST_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| annotate(e, "read", path))?;
    if buf.len() as u64 > MAX_HOST_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than 16 MiB", path.display()),
        ));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn remove_quiet(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(annotate(e, "remove", path)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Whether `pid` names a process (a zombie counts). A pid that was reused
/// counts too: the claim stays until that process is gone, which wastes a
/// uid for a while and never hands out one still in use.
fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use tempfile::TempDir;

    /// A state dir and an etc dir with the given passwd and group.
    fn fixture(passwd: &str, group: &str) -> (TempDir, TempDir) {
        let state = TempDir::new().unwrap();
        let etc = TempDir::new().unwrap();
        fs::write(etc.path().join("passwd"), passwd).unwrap();
        fs::write(etc.path().join("group"), group).unwrap();
        (state, etc)
    }

    fn range(first: u32, last: u32) -> UidRange {
        UidRange { first, last }
    }

    fn open(state: &TempDir, r: UidRange, etc: &TempDir) -> DynamicUsers {
        DynamicUsers::open(state.path(), r, etc.path()).unwrap()
    }

    /// A pid that named a process a moment ago and names none now.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// The key of a uid's record on disk.
    fn on_disk(state: &TempDir, uid: u32) -> Option<Record> {
        read_record(&state.path().join(DIR_NAME).join(uid.to_string())).unwrap()
    }

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
app:x:61190:61191::/srv/app:/bin/sh
+@netgroup
broken line without fields
bad:x:notanumber:1::/:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
nogroup:x:65534:
appgrp:x:61192:app
-somegroup
";

    // ------------------------------------------------------------ range

    #[test]
    fn range_parse_accepts_ranges() {
        assert_eq!(UidRange::parse("61184-65519"), Ok(DEFAULT_RANGE));
        assert_eq!(UidRange::parse(" 100 - 200 "), Ok(range(100, 200)));
        assert_eq!(UidRange::parse("7-7"), Ok(range(7, 7)));
        // Covering 65534/65535 is fine: they are skipped.
        assert_eq!(UidRange::parse("65000-70000"), Ok(range(65000, 70000)));
        assert_eq!(UidRange::parse("1-4294967294"), Ok(range(1, 4_294_967_294)));
        assert_eq!(UidRange::default(), DEFAULT_RANGE);
        assert_eq!(DEFAULT_RANGE.to_string(), "61184-65519");
        assert_eq!(DEFAULT_RANGE.usable(), 4336);
    }

    #[test]
    fn range_parse_refuses_with_reasons() {
        let cases = [
            ("61184", "not a range"),
            ("", "not a range"),
            ("a-5", "first uid \"a\""),
            ("5-", "last uid \"\""),
            ("-5-6", "first uid \"\""),
            ("+5-6", "not a number"),
            ("5-6-7", "last uid \"6-7\""),
            ("0-100", "uid 0 (root)"),
            ("200-100", "empty: 200 is above 100"),
            ("1-4294967295", "(uid_t)-1"),
            ("1-4294967296", "above 4294967294"),
            ("65534-65535", "no usable uid"),
            ("65535-65535", "no usable uid"),
        ];
        for (input, want) in cases {
            let err = UidRange::parse(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn usable_counts_reserved_ids_out() {
        assert_eq!(range(65530, 65540).usable(), 9);
        assert_eq!(range(5, 4).usable(), 0);
        assert_eq!(range(0, u32::MAX).usable(), (1u64 << 32) - 4);
        assert!(!range(65530, 65540).allows(65534));
        assert!(!range(65530, 65540).allows(65535));
        assert!(range(65530, 65540).allows(65536));
    }

    // ------------------------------------------------------------ pure parts

    #[test]
    fn key_hash_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors: the hash must never change, or
        // every key's first candidate moves.
        assert_eq!(key_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn candidates_start_at_the_hash_and_wrap() {
        let r = range(100, 104);
        let start = 100 + u32::try_from(key_hash("web@0") % 5).unwrap();
        let got: Vec<u32> = candidates("web@0", r).collect();
        let want: Vec<u32> = (0..5).map(|i| 100 + (start - 100 + i) % 5).collect();
        assert_eq!(got, want);
        assert_eq!(got[0], start);
    }

    #[test]
    fn candidates_skip_reserved_and_empty_ranges() {
        let got: BTreeSet<u32> = candidates("k", range(65530, 65540)).collect();
        assert_eq!(got.len(), 9);
        assert!(!got.contains(&65534) && !got.contains(&65535));
        assert_eq!(candidates("k", range(5, 4)).count(), 0);
        let edge: Vec<u32> = candidates("k", range(u32::MAX - 2, u32::MAX)).collect();
        assert_eq!(edge.len(), 2);
        assert!(!edge.contains(&u32::MAX));
        assert_eq!(candidates("k", range(0, 0)).count(), 0);
    }

    proptest! {
        #[test]
        fn candidates_are_a_permutation_of_the_usable_range(
            key in ".{0,40}",
            first in prop_oneof![1u32..1000, 65400u32..65600, (u32::MAX - 600)..u32::MAX],
            len in 0u32..500,
        ) {
            let r = range(first, first.saturating_add(len));
            let got: Vec<u32> = candidates(&key, r).collect();
            let set: BTreeSet<u32> = got.iter().copied().collect();
            prop_assert_eq!(set.len(), got.len(), "a candidate repeats");
            let want: BTreeSet<u32> = (r.first..=r.last).filter(|&u| r.allows(u)).collect();
            prop_assert_eq!(got.len() as u64, r.usable());
            prop_assert_eq!(set, want);
            // Deterministic: the same key gives the same order.
            prop_assert!(candidates(&key, r).eq(got.iter().copied()));
        }

        #[test]
        fn record_round_trips(key in "[^\\p{Cc}]{1,80}", pid in proptest::option::of(any::<u32>())) {
            let rec = Record { key, pid };
            prop_assert_eq!(Record::parse(&rec.render()), Some(rec));
        }

        #[test]
        fn host_ids_never_panic_and_find_listed_ids(
            ids in proptest::collection::vec(any::<u32>(), 0..20),
            noise in ".{0,200}",
        ) {
            let passwd: String = ids.iter().map(|i| format!("u{i}:x:{i}:{i}::/:/bin/sh\n")).collect();
            let host = HostIds::parse(&(passwd + &noise), &noise);
            for i in ids {
                prop_assert!(host.taken(i));
            }
        }
    }

    #[test]
    fn host_ids_parse_passwd_and_group() {
        let host = HostIds::parse(PASSWD, GROUP);
        assert_eq!(host.uids, BTreeSet::from([0, 65534, 61190]));
        // group's gids and passwd's primary gids
        // The `bad` line's uid is no number, its gid 1 is.
        assert_eq!(host.gids, BTreeSet::from([0, 1, 65534, 61191, 61192]));
        assert!(host.taken(61191) && host.taken(61192) && !host.taken(61193));
        assert_eq!(host.taken_in(range(61190, 61200)), 3);
        assert_eq!(HostIds::parse("", ""), HostIds::default());
    }

    #[test]
    fn record_parse_rejects_what_is_not_a_record() {
        assert_eq!(Record::parse(""), None);
        assert_eq!(Record::parse("pid=5\n"), None);
        assert_eq!(Record::parse("key=\n"), None);
        assert_eq!(Record::parse("key=a\npid=x\n"), None);
        assert_eq!(
            Record::parse("key=a\nfuture=1\n"),
            Some(Record {
                key: "a".into(),
                pid: None
            })
        );
    }

    #[test]
    fn user_name_is_derived_from_the_uid() {
        assert_eq!(user_name(61234), "bh-61234");
    }

    // ------------------------------------------------------------ registry

    #[test]
    fn keys_get_distinct_stable_uids_outside_passwd_and_group() {
        let (state, etc) = fixture(PASSWD, GROUP);
        let r = range(61184, 61283);
        let mut users = open(&state, r, &etc);
        let keys: Vec<String> = (0..90).map(|i| format!("svc{i}@0")).collect();
        let mut got = BTreeMap::new();
        for k in &keys {
            let a = users.allocate(k).unwrap();
            assert_eq!(a.changed_from, None);
            assert!(r.allows(a.uid));
            assert!(![61190, 61191, 61192].contains(&a.uid), "{k} got a host id");
            assert_eq!(a.gid(), a.uid);
            assert_eq!(users.lookup(k), Some(a.uid));
            got.insert(k.clone(), a.uid);
        }
        let distinct: BTreeSet<u32> = got.values().copied().collect();
        assert_eq!(distinct.len(), keys.len());
        // Asking again gives the same; so does a new daemon.
        for k in &keys {
            assert_eq!(users.allocate(k).unwrap().uid, got[k]);
        }
        drop(users);
        let mut again = open(&state, r, &etc);
        for k in &keys {
            assert_eq!(again.lookup(k), Some(got[k]));
            assert_eq!(
                again.allocate(k).unwrap(),
                Allocation {
                    uid: got[k],
                    changed_from: None
                }
            );
            assert_eq!(on_disk(&state, got[k]).unwrap().key, *k);
        }
        assert_eq!(again.records().count(), keys.len());
    }

    #[test]
    fn the_first_candidate_is_the_hash_on_a_fresh_machine() {
        let (state, etc) = fixture("", "");
        let mut users = open(&state, DEFAULT_RANGE, &etc);
        let first = candidates("sandbox@ns:tenant-1", DEFAULT_RANGE)
            .next()
            .unwrap();
        assert_eq!(users.allocate("sandbox@ns:tenant-1").unwrap().uid, first);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn allocations_are_unique_avoid_the_host_and_survive_reopen(
            keys in proptest::collection::btree_set("[a-z]{1,6}@[a-z0-9:]{1,6}", 1..40),
            host in proptest::collection::btree_set(1000u32..1060, 0..15),
        ) {
            let passwd: String = host.iter().map(|i| format!("u{i}:x:{i}:100::/:/bin/sh\n")).collect();
            let (state, etc) = fixture(&passwd, "");
            let r = range(1000, 1059);
            let mut users = open(&state, r, &etc);
            let mut got = BTreeMap::new();
            for k in &keys {
                match users.allocate(k) {
                    Ok(a) => {
                        prop_assert!(!host.contains(&a.uid));
                        prop_assert!(r.allows(a.uid));
                        got.insert(k.clone(), a.uid);
                    }
                    Err(DynUserError::RangeExhausted { in_use, host: h, .. }) => {
                        // Only when every usable id is taken.
                        prop_assert_eq!(in_use + h, 60);
                        prop_assert_eq!(got.len(), in_use);
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            let distinct: BTreeSet<u32> = got.values().copied().collect();
            prop_assert_eq!(distinct.len(), got.len());
            let again = open(&state, r, &etc);
            for (k, uid) in &got {
                prop_assert_eq!(again.lookup(k), Some(*uid));
            }
        }
    }

    #[test]
    fn a_full_range_says_so() {
        // 5 ids, one a host user's, one a host group's.
        let (state, etc) = fixture("a:x:2001:1::/:/bin/sh\n", "g:x:2003:\n");
        let r = range(2000, 2004);
        let mut users = open(&state, r, &etc);
        let got: BTreeSet<u32> = ["a", "b", "c"]
            .iter()
            .map(|k| users.allocate(k).unwrap().uid)
            .collect();
        assert_eq!(got, BTreeSet::from([2000, 2002, 2004]));
        let err = users.allocate("d").unwrap_err();
        match &err {
            DynUserError::RangeExhausted {
                range: er,
                in_use,
                host,
                usable,
            } => {
                assert_eq!((*er, *in_use, *host, *usable), (r, 3, 2, 5));
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("2000-2004") && text.contains("3 allocated"),
            "{text}"
        );
        let d = err.diagnostic();
        assert_eq!(d.code, crate::error::Code::DynamicUser);
        assert!(
            d.suggestion
                .as_deref()
                .unwrap()
                .contains("widen supervisor.dynamic_users (now 2000-2004)")
        );
        // Releasing one makes room again.
        users.release("b").unwrap();
        assert_eq!(users.lookup("b"), None);
        assert!(users.allocate("d").is_ok());
    }

    #[test]
    fn a_uid_that_appears_in_passwd_is_reallocated_and_reported() {
        let (state, etc) = fixture("", "");
        let r = range(3000, 3099);
        let mut users = open(&state, r, &etc);
        let old = users.allocate("web@0").unwrap().uid;
        // The admin adds a user with that uid.
        fs::write(
            etc.path().join("passwd"),
            format!("late:x:{old}:{old}::/:/bin/sh\nfiller:x:1:1::/:/bin/sh\n"),
        )
        .unwrap();
        let a = users.allocate("web@0").unwrap();
        assert_ne!(a.uid, old);
        assert_eq!(a.changed_from, Some(old));
        assert_eq!(on_disk(&state, old), None, "the old record stays");
        assert_eq!(users.lookup("web@0"), Some(a.uid));
        // Stable from then on, in this daemon and the next.
        assert_eq!(users.allocate("web@0").unwrap().changed_from, None);
        let mut again = open(&state, r, &etc);
        assert_eq!(
            again.allocate("web@0").unwrap(),
            Allocation {
                uid: a.uid,
                changed_from: None
            }
        );
    }

    #[test]
    fn a_recorded_uid_in_a_group_or_outside_a_new_range_is_reallocated() {
        let (state, etc) = fixture("", "");
        let mut users = open(&state, range(3000, 3009), &etc);
        let old = users.allocate("db@0").unwrap().uid;
        fs::write(etc.path().join("group"), format!("g:x:{old}:\n")).unwrap();
        let a = users.allocate("db@0").unwrap();
        assert_eq!(a.changed_from, Some(old));
        // The config narrows the range to exclude it.
        drop(users);
        let mut moved = open(&state, range(4000, 4009), &etc);
        assert_eq!(moved.lookup("db@0"), Some(a.uid));
        let b = moved.allocate("db@0").unwrap();
        assert!((4000..=4009).contains(&b.uid));
        assert_eq!(b.changed_from, Some(a.uid));
    }

    #[test]
    fn a_record_released_behind_our_back_is_replaced() {
        let (state, etc) = fixture("", "");
        let r = range(3000, 3009);
        let mut users = open(&state, r, &etc);
        let old = users.allocate("web@0").unwrap().uid;
        let mut other = open(&state, r, &etc);
        other.release("web@0").unwrap();
        // Someone else takes the uid.
        fs::write(
            state.path().join(DIR_NAME).join(old.to_string()),
            "key=intruder@0\n",
        )
        .unwrap();
        let a = users.allocate("web@0").unwrap();
        assert_ne!(a.uid, old);
        assert_eq!(a.changed_from, Some(old));
        assert_eq!(on_disk(&state, old).unwrap().key, "intruder@0");
    }

    #[test]
    fn released_uids_are_reused_and_release_is_idempotent() {
        let (state, etc) = fixture("", "");
        let mut users = open(&state, range(5000, 5000), &etc);
        let uid = users.allocate("a").unwrap().uid;
        assert!(users.allocate("b").is_err());
        users.release("a").unwrap();
        users.release("a").unwrap();
        users.release("never-allocated").unwrap();
        assert_eq!(on_disk(&state, uid), None);
        assert_eq!(users.allocate("b").unwrap().uid, uid);
    }

    #[test]
    fn a_key_recorded_twice_after_a_crash_keeps_its_usable_uid() {
        let (state, etc) = fixture("u:x:6001:6001::/:/bin/sh\n", "");
        let dir = state.path().join(DIR_NAME);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("6001"), "key=web@0\n").unwrap();
        fs::write(dir.join("6005"), "key=web@0\n").unwrap();
        fs::write(dir.join("6007"), "key=web@0\n").unwrap();
        let users = open(&state, range(6000, 6009), &etc);
        assert_eq!(users.lookup("web@0"), Some(6005));
        assert_eq!(on_disk(&state, 6001), None);
        assert_eq!(on_disk(&state, 6007), None);
        assert_eq!(users.records().collect::<Vec<_>>(), vec![(6005, "web@0")]);
    }

    #[test]
    fn unreadable_or_foreign_files_are_never_handed_out() {
        let (state, etc) = fixture("", "");
        let dir = state.path().join(DIR_NAME);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("7000"), "garbage").unwrap();
        fs::write(dir.join("7001"), "").unwrap();
        fs::write(dir.join("notes.txt"), "hello").unwrap();
        let mut users = open(&state, range(7000, 7002), &etc);
        assert_eq!(users.allocate("x").unwrap().uid, 7002);
        assert!(matches!(
            users.allocate("y"),
            Err(DynUserError::RangeExhausted { in_use: 3, .. })
        ));
    }

    #[test]
    fn foreign_claims_are_avoided() {
        let (state, etc) = fixture("", "");
        let systemd = TempDir::new().unwrap();
        let r = range(8000, 8003);
        let first = candidates("web@0", r).next().unwrap();
        fs::write(systemd.path().join(first.to_string()), "").unwrap();
        let mut users = open(&state, r, &etc).with_foreign_claims(systemd.path());
        let a = users.allocate("web@0").unwrap();
        assert_ne!(a.uid, first);
        // And a record that systemd claimed since is moved.
        fs::write(systemd.path().join(a.uid.to_string()), "").unwrap();
        assert_eq!(users.allocate("web@0").unwrap().changed_from, Some(a.uid));
        // A missing directory avoids nothing.
        let mut plain = open(&state, range(8100, 8100), &etc).with_foreign_claims("/nonexistent");
        assert_eq!(plain.allocate("z").unwrap().uid, 8100);
    }

    #[test]
    fn keys_are_checked() {
        let (state, etc) = fixture("", "");
        let mut users = open(&state, range(9000, 9009), &etc);
        for bad in ["", "a\nkey=b", &"x".repeat(MAX_KEY + 1), "transient:1:2:x"] {
            assert!(
                matches!(users.allocate(bad), Err(DynUserError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        assert!(users.allocate(&"x".repeat(MAX_KEY)).is_ok());
        assert!(users.transient("a\nb").is_err());
    }

    #[test]
    fn open_refuses_a_bad_range_and_reports_paths() {
        let (state, etc) = fixture("", "");
        let e = DynamicUsers::open(state.path(), range(0, 10), etc.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // The state dir is a file: the error names the path.
        let file = state.path().join("f");
        fs::write(&file, "").unwrap();
        let e = DynamicUsers::open(&file, DEFAULT_RANGE, etc.path()).unwrap_err();
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    }

    #[test]
    fn missing_account_files_hide_nothing_and_changes_are_noticed() {
        let state = TempDir::new().unwrap();
        let etc = TempDir::new().unwrap();
        let r = range(9500, 9501);
        let mut users = DynamicUsers::open(state.path(), r, etc.path()).unwrap();
        let a = users.allocate("a").unwrap().uid;
        fs::write(etc.path().join("passwd"), format!("u:x:{a}:1::/:/bin/sh\n")).unwrap();
        assert_eq!(users.allocate("a").unwrap().changed_from, Some(a));
    }

    // ------------------------------------------------------------ transient

    #[test]
    fn transient_users_are_freed_on_release_and_drop() {
        let (state, etc) = fixture("", "");
        let mut users = open(&state, range(9100, 9101), &etc);
        let t1 = users.transient("exec").unwrap();
        let t2 = users.transient("exec").unwrap();
        assert_ne!(t1.uid(), t2.uid());
        assert_eq!(t1.gid(), t1.uid());
        assert_eq!(t1.name(), user_name(t1.uid()));
        assert!(t1.key().starts_with("transient:") && t1.key().ends_with(":exec"));
        let rec = on_disk(&state, t1.uid()).unwrap();
        assert_eq!(rec.pid, Some(std::process::id()));
        assert_eq!(users.lookup(t1.key()), None, "transient users are not kept");
        assert!(users.transient("exec").is_err(), "the range is full");
        let (u1, u2) = (t1.uid(), t2.uid());
        t1.release().unwrap();
        assert_eq!(on_disk(&state, u1), None);
        drop(t2);
        assert_eq!(on_disk(&state, u2), None);
        assert!(users.allocate("svc@0").is_ok());
    }

    #[test]
    fn claims_of_dead_execs_and_their_temp_files_are_reaped() {
        let (state, etc) = fixture("", "");
        let dir = state.path().join(DIR_NAME);
        fs::create_dir_all(&dir).unwrap();
        let dead = dead_pid();
        let me = std::process::id();
        fs::write(
            dir.join("9200"),
            format!("key=transient:{dead}:0:exec\npid={dead}\n"),
        )
        .unwrap();
        fs::write(
            dir.join("9201"),
            format!("key=transient:{me}:0:exec\npid={me}\n"),
        )
        .unwrap();
        fs::write(dir.join(format!(".tmp.9202.{dead}.0")), "key=x\n").unwrap();
        fs::write(dir.join(format!(".tmp.9203.{me}.0")), "key=y\n").unwrap();
        let mut users = open(&state, range(9200, 9202), &etc);
        assert_eq!(on_disk(&state, 9200), None, "a dead exec's claim stays");
        assert!(on_disk(&state, 9201).is_some(), "a live exec's claim went");
        assert!(!dir.join(format!(".tmp.9202.{dead}.0")).exists());
        assert!(dir.join(format!(".tmp.9203.{me}.0")).exists());
        // A claim left while the daemon runs is reaped when the range is full.
        let a = users.allocate("a").unwrap().uid;
        let b = users.allocate("b").unwrap().uid;
        assert_eq!(BTreeSet::from([a, b]), BTreeSet::from([9200, 9202]));
        users.release("b").unwrap();
        fs::write(
            dir.join(b.to_string()),
            format!("key=transient:{dead}:1:exec\npid={dead}\n"),
        )
        .unwrap();
        assert_eq!(users.allocate("c").unwrap().uid, b);
    }

    // ------------------------------------------------------------ concurrency

    #[test]
    fn two_registries_allocating_at_once_never_share_a_uid() {
        let (state, etc) = fixture("", "");
        // 200 keys in 210 ids: the hashes collide often, so the claims race.
        let r = range(10_000, 10_209);
        let run = |side: &'static str| {
            let (s, e) = (state.path().to_path_buf(), etc.path().to_path_buf());
            std::thread::spawn(move || {
                let mut users = DynamicUsers::open(&s, r, &e).unwrap();
                (0..100)
                    .map(|i| {
                        let key = format!("{side}{i}@0");
                        let uid = users.allocate(&key).unwrap().uid;
                        (key, uid)
                    })
                    .collect::<Vec<_>>()
            })
        };
        let (a, b) = (run("left"), run("right"));
        let all: Vec<(String, u32)> = a
            .join()
            .unwrap()
            .into_iter()
            .chain(b.join().unwrap())
            .collect();
        let uids: HashSet<u32> = all.iter().map(|(_, u)| *u).collect();
        assert_eq!(uids.len(), 200);
        for (key, uid) in &all {
            assert_eq!(&on_disk(&state, *uid).unwrap().key, key);
        }
    }

    #[test]
    fn two_registries_allocating_one_key_agree() {
        let (state, etc) = fixture("", "");
        let r = range(11_000, 11_009);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (s, e) = (state.path().to_path_buf(), etc.path().to_path_buf());
                std::thread::spawn(move || {
                    let mut users = DynamicUsers::open(&s, r, &e).unwrap();
                    users.allocate("web@0").unwrap().uid
                })
            })
            .collect();
        let uids: HashSet<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(uids.len(), 1);
        assert_eq!(
            fs::read_dir(state.path().join(DIR_NAME)).unwrap().count(),
            1
        );
    }

    /// Run as a child by the test below: allocates keys named by its env.
    #[test]
    fn child_allocator() {
        let (Ok(state), Ok(etc), Ok(prefix)) = (
            std::env::var("DYNUSER_STATE"),
            std::env::var("DYNUSER_ETC"),
            std::env::var("DYNUSER_PREFIX"),
        ) else {
            return;
        };
        let mut users =
            DynamicUsers::open(Path::new(&state), range(12_000, 12_129), Path::new(&etc)).unwrap();
        let t = users.transient("child").unwrap();
        println!("DYNUSER {} {}", t.key(), t.uid());
        for i in 0..60 {
            let key = format!("{prefix}{i}");
            println!("DYNUSER {key} {}", users.allocate(&key).unwrap().uid);
        }
        std::mem::forget(t); // left for the parent to see, then reap
    }

    #[test]
    fn two_processes_allocating_at_once_never_share_a_uid() {
        let (state, etc) = fixture("", "");
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = ["p", "q"]
            .iter()
            .map(|prefix| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "supervisor::dynuser::tests::child_allocator",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("DYNUSER_STATE", state.path())
                    .env("DYNUSER_ETC", etc.path())
                    .env("DYNUSER_PREFIX", prefix)
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut all = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                // libtest prints `test name ... ` before the test's first line.
                if let Some((_, rest)) = line.split_once("DYNUSER ") {
                    let (key, uid) = rest.rsplit_once(' ').unwrap();
                    all.push((key.to_string(), uid.parse::<u32>().unwrap()));
                }
            }
        }
        assert_eq!(all.len(), 122, "{all:?}");
        let uids: HashSet<u32> = all.iter().map(|(_, u)| *u).collect();
        assert_eq!(uids.len(), 122);
        // The children are gone: their transient claims go at the next open,
        // their kept keys stay.
        let users = open(&state, range(12_000, 12_129), &etc);
        assert_eq!(users.records().count(), 120);
        for (key, uid) in &all {
            if key.starts_with("transient:") {
                assert_eq!(on_disk(&state, *uid), None);
            } else {
                assert_eq!(users.lookup(key), Some(*uid));
            }
        }
    }
}
