//! Pure parsers for cgroup v2 stat files: text in, typed values out.
//!
//! The kernel uses a few formats (Documentation/admin-guide/cgroup-v2.rst,
//! "Interface Files"):
//! - flat keyed, one `key value` a line: `cpu.stat`, `memory.stat`,
//!   `memory.events`, `pids.events`, `cgroup.events`;
//! - nested keyed, `key sub=value ...` a line: `io.stat` (`254:0 rbytes=0 ...`)
//!   and the PSI files (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0`);
//! - a single value: `memory.current`, `pids.current`; limits also take `max`;
//! - newline separated values: `cgroup.procs`.
//!
//! Newer kernels add fields (6.18 has `nice_usec` in `cpu.stat`), so unknown
//! keys are skipped without looking at their values. A field bulkhead relies
//! on that is missing is an error naming the field and the file; a value that
//! does not parse is an error quoting the line. Fields that a supported kernel
//! (5.14+) may lack are `Option`s, with the version that added them.

use std::collections::BTreeMap;

use crate::cgroup::limits::DevNum;
use crate::error::{Code, Diagnostic};

/// A cgroup file that does not say what the parser needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatError {
    #[error("{file}: missing field `{field}`{}", in_line(.line.as_deref()))]
    Missing {
        file: &'static str,
        field: &'static str,
        /// The line that should have held it (`io.stat`, PSI); `None` for flat files.
        line: Option<String>,
    },
    #[error("{file}: {reason} in line {line:?}")]
    Malformed {
        file: &'static str,
        line: String,
        reason: &'static str,
    },
}

fn in_line(line: Option<&str>) -> String {
    line.map(|l| format!(" in line {l:?}")).unwrap_or_default()
}

impl StatError {
    pub fn file(&self) -> &'static str {
        match self {
            StatError::Missing { file, .. } | StatError::Malformed { file, .. } => file,
        }
    }

    /// The user-facing form.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::new(Code::CgroupIo, self.to_string()).suggest(
            "the kernel wrote this file in a form bulkhead does not know: report it with the file's content and `uname -r`",
        )
    }
}

/// At most 100 bytes of a line, for error messages about arbitrary input.
fn excerpt(line: &str) -> String {
    const MAX: usize = 100;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

fn malformed(file: &'static str, line: &str, reason: &'static str) -> StatError {
    StatError::Malformed {
        file,
        line: excerpt(line),
        reason,
    }
}

/// Decimal digits only (no sign, no spaces), without overflow. Cheaper than
/// `str::parse` on the short numbers these files hold, which matters when a
/// sweep parses thousands of them.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |v, c| {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn number(file: &'static str, line: &str, value: &str) -> Result<u64, StatError> {
    digits(value).ok_or_else(|| malformed(file, line, "not an unsigned integer"))
}

/// Splits at the first `sep` byte (ASCII), like `str::split_once` but with a
/// plain loop, which beats the generic searcher on lines of 10-40 bytes.
fn split_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|c| c == sep)?;
    // `sep` is ASCII, so `i` and `i + 1` are character boundaries.
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The tokens of a line separated by single spaces (empty ones skipped).
fn tokens(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        loop {
            let r = rest?;
            let (tok, next) = match split_byte(r, b' ') {
                Some((t, n)) => (t, Some(n)),
                None => (r, None),
            };
            rest = next;
            if !tok.is_empty() {
                return Some(tok);
            }
        }
    })
}

fn required(file: &'static str, field: &'static str, v: Option<u64>) -> Result<u64, StatError> {
    v.ok_or(StatError::Missing {
        file,
        field,
        line: None,
    })
}

/// The non-blank lines of a file, without trailing whitespace.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        loop {
            let r = rest?;
            let (line, next) = match split_byte(r, b'\n') {
                Some((l, n)) => (l, Some(n)),
                None => (r, None),
            };
            rest = next;
            let line = line.trim_end();
            if !line.is_empty() {
                return Some(line);
            }
        }
    })
}

/// Reads the `keys` of a flat-keyed file (`key value` a line); other keys are
/// skipped unparsed. `cpu.stat` with `["usage_usec", "nr_periods"]` gives
/// `[Some(6502475), Some(335)]`, or `None` for a key the file lacks.
fn flat<const N: usize>(
    file: &'static str,
    text: &str,
    keys: [&'static str; N],
) -> Result<[Option<u64>; N], StatError> {
    let mut out = [None; N];
    for line in lines(text) {
        let (key, value) =
            split_byte(line, b' ').ok_or_else(|| malformed(file, line, "expected `key value`"))?;
        if let Some(i) = keys.iter().position(|k| *k == key) {
            out[i] = Some(number(file, line, value.trim_start())?);
        }
    }
    Ok(out)
}

/// The files this module parses, as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatFile {
    CpuStat,
    CpuPressure,
    MemoryCurrent,
    MemoryPeak,
    MemoryStat,
    MemoryEvents,
    MemoryEventsLocal,
    MemorySwapCurrent,
    MemoryPressure,
    IoStat,
    IoPressure,
    PidsCurrent,
    PidsPeak,
    PidsEvents,
    CgroupEvents,
    CgroupProcs,
}

impl StatFile {
    pub const ALL: [StatFile; 16] = [
        StatFile::CpuStat,
        StatFile::CpuPressure,
        StatFile::MemoryCurrent,
        StatFile::MemoryPeak,
        StatFile::MemoryStat,
        StatFile::MemoryEvents,
        StatFile::MemoryEventsLocal,
        StatFile::MemorySwapCurrent,
        StatFile::MemoryPressure,
        StatFile::IoStat,
        StatFile::IoPressure,
        StatFile::PidsCurrent,
        StatFile::PidsPeak,
        StatFile::PidsEvents,
        StatFile::CgroupEvents,
        StatFile::CgroupProcs,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            StatFile::CpuStat => "cpu.stat",
            StatFile::CpuPressure => "cpu.pressure",
            StatFile::MemoryCurrent => "memory.current",
            StatFile::MemoryPeak => "memory.peak",
            StatFile::MemoryStat => "memory.stat",
            StatFile::MemoryEvents => "memory.events",
            StatFile::MemoryEventsLocal => "memory.events.local",
            StatFile::MemorySwapCurrent => "memory.swap.current",
            StatFile::MemoryPressure => "memory.pressure",
            StatFile::IoStat => "io.stat",
            StatFile::IoPressure => "io.pressure",
            StatFile::PidsCurrent => "pids.current",
            StatFile::PidsPeak => "pids.peak",
            StatFile::PidsEvents => "pids.events",
            StatFile::CgroupEvents => "cgroup.events",
            StatFile::CgroupProcs => "cgroup.procs",
        }
    }

    pub fn from_name(name: &str) -> Option<StatFile> {
        StatFile::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for StatFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `cpu.stat`. Without the cpu controller (a cgroup2 mount that only offers
/// core files, as on hybrid hosts) the file has the usage fields only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStat {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
    /// Present when the cpu controller is enabled for the cgroup.
    pub throttling: Option<CpuThrottling>,
}

/// The bandwidth (`cpu.max`) counters of `cpu.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuThrottling {
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
    /// `cpu.max.burst` counters (5.14).
    pub nr_bursts: Option<u64>,
    pub burst_usec: Option<u64>,
}

pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, StatError> {
    const F: &str = "cpu.stat";
    let [
        usage,
        user,
        system,
        nr_periods,
        nr_throttled,
        throttled_usec,
        nr_bursts,
        burst_usec,
    ] = flat(
        F,
        text,
        [
            "usage_usec",
            "user_usec",
            "system_usec",
            "nr_periods",
            "nr_throttled",
            "throttled_usec",
            "nr_bursts",
            "burst_usec",
        ],
    )?;
    // The controller's fields come together: one without the others is an error.
    let throttling = if nr_periods.is_some() || nr_throttled.is_some() || throttled_usec.is_some() {
        Some(CpuThrottling {
            nr_periods: required(F, "nr_periods", nr_periods)?,
            nr_throttled: required(F, "nr_throttled", nr_throttled)?,
            throttled_usec: required(F, "throttled_usec", throttled_usec)?,
            nr_bursts,
            burst_usec,
        })
    } else {
        None
    };
    Ok(CpuStat {
        usage_usec: required(F, "usage_usec", usage)?,
        user_usec: required(F, "user_usec", user)?,
        system_usec: required(F, "system_usec", system)?,
        throttling,
    })
}

/// `memory.events` and `memory.events.local`: how often each boundary was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEvents {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
    /// 5.17.
    pub oom_group_kill: Option<u64>,
}

fn memory_events(file: &'static str, text: &str) -> Result<MemoryEvents, StatError> {
    let [low, high, max, oom, oom_kill, oom_group_kill] = flat(
        file,
        text,
        ["low", "high", "max", "oom", "oom_kill", "oom_group_kill"],
    )?;
    Ok(MemoryEvents {
        low: required(file, "low", low)?,
        high: required(file, "high", high)?,
        max: required(file, "max", max)?,
        oom: required(file, "oom", oom)?,
        oom_kill: required(file, "oom_kill", oom_kill)?,
        oom_group_kill,
    })
}

/// `memory.events`: counts in this cgroup and its descendants.
pub fn parse_memory_events(text: &str) -> Result<MemoryEvents, StatError> {
    memory_events("memory.events", text)
}

/// `memory.events.local`: counts in this cgroup only.
pub fn parse_memory_events_local(text: &str) -> Result<MemoryEvents, StatError> {
    memory_events("memory.events.local", text)
}

/// `memory.stat`: the fields a supervisor looks at, typed (bytes, or counts
/// for `pg*`), and every numeric field by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryStat {
    pub anon: u64,
    pub file: u64,
    /// All kernel memory (5.18).
    pub kernel: Option<u64>,
    pub kernel_stack: u64,
    pub slab: u64,
    pub sock: u64,
    pub shmem: u64,
    pub file_mapped: u64,
    pub file_dirty: u64,
    pub file_writeback: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
    /// Every `key value` line with a numeric value, including those above.
    pub all: BTreeMap<String, u64>,
}

impl MemoryStat {
    pub fn get(&self, key: &str) -> Option<u64> {
        self.all.get(key).copied()
    }
}

pub fn parse_memory_stat(text: &str) -> Result<MemoryStat, StatError> {
    const F: &str = "memory.stat";
    const KEYS: [&str; 12] = [
        "anon",
        "file",
        "kernel",
        "kernel_stack",
        "slab",
        "sock",
        "shmem",
        "file_mapped",
        "file_dirty",
        "file_writeback",
        "pgfault",
        "pgmajfault",
    ];
    let mut all = BTreeMap::new();
    for line in lines(text) {
        let (key, value) =
            split_byte(line, b' ').ok_or_else(|| malformed(F, line, "expected `key value`"))?;
        match digits(value.trim_start()) {
            Some(v) => {
                all.insert(key.to_string(), v);
            }
            // A field bulkhead reads must be a number; others may be anything.
            None if KEYS.contains(&key) => {
                return Err(malformed(F, line, "not an unsigned integer"));
            }
            None => {}
        }
    }
    let get = |k: &'static str| required(F, k, all.get(k).copied());
    Ok(MemoryStat {
        anon: get("anon")?,
        file: get("file")?,
        kernel: all.get("kernel").copied(),
        kernel_stack: get("kernel_stack")?,
        slab: get("slab")?,
        sock: get("sock")?,
        shmem: get("shmem")?,
        file_mapped: get("file_mapped")?,
        file_dirty: get("file_dirty")?,
        file_writeback: get("file_writeback")?,
        pgfault: get("pgfault")?,
        pgmajfault: get("pgmajfault")?,
        all,
    })
}

/// One device of `io.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoDevStat {
    pub dev: DevNum,
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dbytes: u64,
    pub dios: u64,
}

/// `io.stat`: one line per device the cgroup did I/O on, in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoStat {
    pub devices: Vec<IoDevStat>,
}

impl IoStat {
    pub fn get(&self, dev: DevNum) -> Option<&IoDevStat> {
        self.devices.iter().find(|d| d.dev == dev)
    }
}

/// `254:0` -> `DevNum { major: 254, minor: 0 }`.
fn dev_num(file: &'static str, line: &str, s: &str) -> Result<DevNum, StatError> {
    let bad = || malformed(file, line, "expected a device `major:minor`");
    let (major, minor) = split_byte(s, b':').ok_or_else(bad)?;
    Ok(DevNum {
        major: digits(major)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(bad)?,
        minor: digits(minor)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(bad)?,
    })
}

/// Reads the `keys` of `key=value` tokens; other keys are skipped unparsed
/// (io.latency adds `depth=max`, iocost adds `cost.vrate=...`).
fn nested<'a, const N: usize>(
    file: &'static str,
    line: &str,
    tokens: impl Iterator<Item = &'a str>,
    keys: [&'static str; N],
) -> Result<[Option<&'a str>; N], StatError> {
    let mut out = [None; N];
    for tok in tokens.filter(|t| !t.is_empty()) {
        let (key, value) =
            split_byte(tok, b'=').ok_or_else(|| malformed(file, line, "expected `key=value`"))?;
        if let Some(i) = keys.iter().position(|k| *k == key) {
            out[i] = Some(value);
        }
    }
    Ok(out)
}

fn nested_required<'a>(
    file: &'static str,
    line: &str,
    field: &'static str,
    v: Option<&'a str>,
) -> Result<&'a str, StatError> {
    v.ok_or_else(|| StatError::Missing {
        file,
        field,
        line: Some(excerpt(line)),
    })
}

pub fn parse_io_stat(text: &str) -> Result<IoStat, StatError> {
    const F: &str = "io.stat";
    const KEYS: [&str; 6] = ["rbytes", "wbytes", "rios", "wios", "dbytes", "dios"];
    let mut devices = Vec::new();
    for line in lines(text) {
        let mut words = tokens(line);
        let dev = dev_num(F, line, words.next().unwrap_or_default())?;
        let found = nested(F, line, words, KEYS)?;
        let mut v = [0u64; 6];
        for ((slot, key), value) in v.iter_mut().zip(KEYS).zip(found) {
            *slot = number(F, line, nested_required(F, line, key, value)?)?;
        }
        let [rbytes, wbytes, rios, wios, dbytes, dios] = v;
        devices.push(IoDevStat {
            dev,
            rbytes,
            wbytes,
            rios,
            wios,
            dbytes,
            dios,
        });
    }
    Ok(IoStat { devices })
}

/// `pids.events`: how often a fork was refused by `pids.max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PidsEvents {
    pub max: u64,
}

pub fn parse_pids_events(text: &str) -> Result<PidsEvents, StatError> {
    const F: &str = "pids.events";
    let [max] = flat(F, text, ["max"])?;
    Ok(PidsEvents {
        max: required(F, "max", max)?,
    })
}

/// `cgroup.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupEvents {
    /// Processes in this cgroup or below.
    pub populated: bool,
    /// The freeze requested by `cgroup.freeze` is complete.
    pub frozen: bool,
}

pub fn parse_cgroup_events(text: &str) -> Result<CgroupEvents, StatError> {
    const F: &str = "cgroup.events";
    let [populated, frozen] = flat(F, text, ["populated", "frozen"])?;
    let flag = |field: &'static str, v: Option<u64>| match required(F, field, v)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(malformed(
            F,
            &format!("{field} {}", v.unwrap_or_default()),
            "expected 0 or 1",
        )),
    };
    Ok(CgroupEvents {
        populated: flag("populated", populated)?,
        frozen: flag("frozen", frozen)?,
    })
}

/// `cgroup.procs`: the processes in the cgroup, one pid a line, unsorted.
/// A process outside the reader's pid namespace is listed as 0.
pub fn parse_cgroup_procs(text: &str) -> Result<Vec<u32>, StatError> {
    lines(text)
        .map(|l| {
            digits(l.trim_start())
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| malformed("cgroup.procs", l, "not a pid"))
        })
        .collect()
}

/// One line of a PSI file: the share of wall time some (or all) tasks were
/// stalled, averaged over 10 s, 60 s and 300 s (percent), and the total
/// stall time in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// A PSI file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    pub some: PsiLine,
    /// All non-idle tasks stalled at once. `cpu.pressure` has it from 5.13
    /// (zeros at the root cgroup).
    pub full: Option<PsiLine>,
}

/// A PSI average. The kernel prints `%lu.%02lu` (`46.75`), read here as
/// hundredths; other spellings of a finite, non-negative decimal (`1.5`) go
/// through the general parser.
fn percent(s: &str) -> Option<f64> {
    if let Some((int, frac)) = split_byte(s, b'.')
        && frac.len() == 2
        && let (Some(i), Some(f)) = (digits(int), digits(frac))
        && let Some(h) = i.checked_mul(100).and_then(|h| h.checked_add(f))
        && let Ok(h) = u32::try_from(h)
    {
        // One correctly rounded division of exact integers: the same double
        // as parsing the decimal text.
        return Some(f64::from(h) / 100.0);
    }
    if s.starts_with(['+', '-']) {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
}

fn psi_line<'a>(
    file: &'static str,
    line: &str,
    tokens: impl Iterator<Item = &'a str>,
) -> Result<PsiLine, StatError> {
    let [avg10, avg60, avg300, total] =
        nested(file, line, tokens, ["avg10", "avg60", "avg300", "total"])?;
    let avg = |field, v| -> Result<f64, StatError> {
        percent(nested_required(file, line, field, v)?)
            .ok_or_else(|| malformed(file, line, "not a percentage"))
    };
    Ok(PsiLine {
        avg10: avg("avg10", avg10)?,
        avg60: avg("avg60", avg60)?,
        avg300: avg("avg300", avg300)?,
        total: number(file, line, nested_required(file, line, "total", total)?)?,
    })
}

fn psi(file: &'static str, text: &str) -> Result<Psi, StatError> {
    let (mut some, mut full) = (None, None);
    for line in lines(text) {
        let mut words = tokens(line);
        match words.next() {
            Some("some") => some = Some(psi_line(file, line, words)?),
            Some("full") => full = Some(psi_line(file, line, words)?),
            _ => {}
        }
    }
    Ok(Psi {
        some: some.ok_or(StatError::Missing {
            file,
            field: "some",
            line: None,
        })?,
        full,
    })
}

pub fn parse_cpu_pressure(text: &str) -> Result<Psi, StatError> {
    psi("cpu.pressure", text)
}

pub fn parse_memory_pressure(text: &str) -> Result<Psi, StatError> {
    psi("memory.pressure", text)
}

pub fn parse_io_pressure(text: &str) -> Result<Psi, StatError> {
    psi("io.pressure", text)
}

/// A single number, e.g. `memory.current` (`487424\n`).
fn single(file: &'static str, text: &str) -> Result<u64, StatError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(StatError::Missing {
            file,
            field: "value",
            line: None,
        });
    }
    number(file, t, t)
}

/// Bytes in use by the cgroup and its descendants.
pub fn parse_memory_current(text: &str) -> Result<u64, StatError> {
    single("memory.current", text)
}

/// The highest `memory.current` recorded (5.19).
pub fn parse_memory_peak(text: &str) -> Result<u64, StatError> {
    single("memory.peak", text)
}

pub fn parse_memory_swap_current(text: &str) -> Result<u64, StatError> {
    single("memory.swap.current", text)
}

/// Tasks (processes and threads) in the cgroup and its descendants.
pub fn parse_pids_current(text: &str) -> Result<u64, StatError> {
    single("pids.current", text)
}

/// The highest `pids.current` recorded (present on Debian's 6.1).
pub fn parse_pids_peak(text: &str) -> Result<u64, StatError> {
    single("pids.peak", text)
}

/// A limit file's value: `max` (no limit) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Max,
    Value(u64),
}

impl Limit {
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Max => None,
            Limit::Value(v) => Some(v),
        }
    }
}

fn limit(file: &'static str, line: &str, s: &str) -> Result<Limit, StatError> {
    if s == "max" {
        Ok(Limit::Max)
    } else {
        digits(s)
            .map(Limit::Value)
            .ok_or_else(|| malformed(file, line, "expected `max` or an unsigned integer"))
    }
}

/// A single-value limit file (`memory.max`, `memory.high`, `memory.swap.max`,
/// `pids.max`): `max\n` or `50331648\n`. `file` names it in errors.
pub fn parse_limit(file: &'static str, text: &str) -> Result<Limit, StatError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(StatError::Missing {
            file,
            field: "value",
            line: None,
        });
    }
    limit(file, t, t)
}

/// `cpu.max`: `20000 100000` is 20 ms of CPU time every 100 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    pub quota_usec: Limit,
    pub period_usec: u64,
}

pub fn parse_cpu_max(text: &str) -> Result<CpuMax, StatError> {
    const F: &str = "cpu.max";
    let t = text.trim();
    let mut it = t.split(' ');
    let quota = it.next().filter(|q| !q.is_empty());
    let quota = required_str(F, "quota", quota)?;
    let period = required_str(F, "period", it.next())?;
    if it.next().is_some() {
        return Err(malformed(F, t, "expected `quota period`"));
    }
    Ok(CpuMax {
        quota_usec: limit(F, t, quota)?,
        period_usec: number(F, t, period)?,
    })
}

fn required_str<'a>(
    file: &'static str,
    field: &'static str,
    v: Option<&'a str>,
) -> Result<&'a str, StatError> {
    v.ok_or(StatError::Missing {
        file,
        field,
        line: None,
    })
}

/// Everything read from one cgroup; a file not read (or not parsed) is `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub cpu: Option<CpuStat>,
    pub cpu_pressure: Option<Psi>,
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub memory_stat: Option<MemoryStat>,
    pub memory_events: Option<MemoryEvents>,
    pub memory_events_local: Option<MemoryEvents>,
    pub memory_swap_current: Option<u64>,
    pub memory_pressure: Option<Psi>,
    pub io: Option<IoStat>,
    pub io_pressure: Option<Psi>,
    pub pids_current: Option<u64>,
    pub pids_peak: Option<u64>,
    pub pids_events: Option<PidsEvents>,
    pub events: Option<CgroupEvents>,
    pub procs: Option<Vec<u32>>,
}

/// `slot` gets the parsed value, or `None` when `text` does not parse.
fn put<T>(slot: &mut Option<T>, r: Result<T, StatError>) -> Result<(), StatError> {
    match r {
        Ok(v) => {
            *slot = Some(v);
            Ok(())
        }
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}

impl Stats {
    /// Parses `text` as the content of `file` into its field. On error the
    /// field is cleared, so a stale value is never mistaken for a fresh one.
    pub fn update(&mut self, file: StatFile, text: &str) -> Result<(), StatError> {
        match file {
            StatFile::CpuStat => put(&mut self.cpu, parse_cpu_stat(text)),
            StatFile::CpuPressure => put(&mut self.cpu_pressure, parse_cpu_pressure(text)),
            StatFile::MemoryCurrent => put(&mut self.memory_current, parse_memory_current(text)),
            StatFile::MemoryPeak => put(&mut self.memory_peak, parse_memory_peak(text)),
            StatFile::MemoryStat => put(&mut self.memory_stat, parse_memory_stat(text)),
            StatFile::MemoryEvents => put(&mut self.memory_events, parse_memory_events(text)),
            StatFile::MemoryEventsLocal => put(
                &mut self.memory_events_local,
                parse_memory_events_local(text),
            ),
            StatFile::MemorySwapCurrent => put(
                &mut self.memory_swap_current,
                parse_memory_swap_current(text),
            ),
            StatFile::MemoryPressure => put(&mut self.memory_pressure, parse_memory_pressure(text)),
            StatFile::IoStat => put(&mut self.io, parse_io_stat(text)),
            StatFile::IoPressure => put(&mut self.io_pressure, parse_io_pressure(text)),
            StatFile::PidsCurrent => put(&mut self.pids_current, parse_pids_current(text)),
            StatFile::PidsPeak => put(&mut self.pids_peak, parse_pids_peak(text)),
            StatFile::PidsEvents => put(&mut self.pids_events, parse_pids_events(text)),
            StatFile::CgroupEvents => put(&mut self.events, parse_cgroup_events(text)),
            StatFile::CgroupProcs => put(&mut self.procs, parse_cgroup_procs(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/kernel/", $name))
        };
    }

    #[test]
    fn cpu_stat_without_controller() {
        assert_eq!(
            parse_cpu_stat(fixture!("cpu.stat")).unwrap(),
            CpuStat {
                usage_usec: 1088821,
                user_usec: 1036202,
                system_usec: 52619,
                throttling: None,
            }
        );
        // 6.18 adds nice_usec: skipped.
        let s = parse_cpu_stat(fixture!("cpu.stat-6.18-nocontroller")).unwrap();
        assert!(s.usage_usec > 0 && s.throttling.is_none());
    }

    #[test]
    fn cpu_stat_throttled() {
        assert_eq!(
            parse_cpu_stat(fixture!("cpu.stat-throttled")).unwrap(),
            CpuStat {
                usage_usec: 11021638,
                user_usec: 6487504,
                system_usec: 4534133,
                throttling: Some(CpuThrottling {
                    nr_periods: 551,
                    nr_throttled: 550,
                    throttled_usec: 81150403,
                    nr_bursts: Some(0),
                    burst_usec: Some(0),
                }),
            }
        );
    }

    #[test]
    fn cpu_stat_errors_name_field_and_file() {
        let e = parse_cpu_stat("usage_usec 1\nsystem_usec 2\n").unwrap_err();
        assert_eq!(e.to_string(), "cpu.stat: missing field `user_usec`");
        // Half the throttling group is an error, not "no controller".
        let e =
            parse_cpu_stat("usage_usec 1\nuser_usec 1\nsystem_usec 0\nnr_periods 3\n").unwrap_err();
        assert_eq!(e.to_string(), "cpu.stat: missing field `nr_throttled`");
        let e = parse_cpu_stat("usage_usec 1x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cpu.stat: not an unsigned integer in line \"usage_usec 1x\""
        );
        assert_eq!(e.diagnostic().code, Code::CgroupIo);
        assert!(matches!(
            parse_cpu_stat("usage_usec\n"),
            Err(StatError::Malformed { .. })
        ));
        // An unknown field's value is not looked at.
        let s = parse_cpu_stat("usage_usec 1\nfuture_field x y\nuser_usec 1\nsystem_usec 0\n\n")
            .unwrap();
        assert_eq!(s.usage_usec, 1);
    }

    #[test]
    fn memory_events_fixtures() {
        let e = parse_memory_events(fixture!("memory.events")).unwrap();
        assert_eq!(
            e,
            MemoryEvents {
                low: 0,
                high: 496,
                max: 0,
                oom: 0,
                oom_kill: 0,
                oom_group_kill: Some(0),
            }
        );
        let oom = parse_memory_events(fixture!("memory.events-oom")).unwrap();
        assert_eq!((oom.max, oom.oom, oom.oom_kill), (39, 1, 1));
        // The parent counts its child's OOM kill hierarchically, not locally.
        let parent = parse_memory_events(fixture!("memory.events-parent")).unwrap();
        let local = parse_memory_events_local(fixture!("memory.events.local-parent")).unwrap();
        assert_eq!((parent.oom_kill, local.oom_kill), (1, 0));
        assert_eq!(
            parse_memory_events_local(fixture!("memory.events.local")).unwrap(),
            e
        );
    }

    #[test]
    fn memory_events_before_5_17_and_errors() {
        let e = parse_memory_events("low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\n").unwrap();
        assert_eq!((e.oom_kill, e.oom_group_kill), (4, None));
        assert_eq!(
            parse_memory_events_local("low 0\nhigh 1\nmax 2\noom 3\n")
                .unwrap_err()
                .to_string(),
            "memory.events.local: missing field `oom_kill`"
        );
        // Newer kernels add sock_throttled.
        assert!(
            parse_memory_events("low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\nsock_throttled 9\n")
                .is_ok()
        );
    }

    #[test]
    fn memory_stat_fixture() {
        let s = parse_memory_stat(fixture!("memory.stat")).unwrap();
        assert_eq!(s.anon, 67624960);
        assert_eq!(s.file, 61440);
        assert_eq!(s.kernel, Some(282624));
        assert_eq!(s.slab, 28352);
        assert_eq!(s.file_mapped, 61440);
        assert_eq!((s.pgfault, s.pgmajfault), (11161, 645));
        assert_eq!(s.get("anon_thp"), Some(65011712));
        assert_eq!(s.get("thp_collapse_alloc"), Some(31));
        assert_eq!(s.all.len(), 51);
        assert_eq!(s.get("nonexistent"), None);
    }

    #[test]
    fn memory_stat_errors() {
        let full = fixture!("memory.stat");
        let without: String = full
            .lines()
            .filter(|l| !l.starts_with("pgmajfault "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            parse_memory_stat(&without).unwrap_err().to_string(),
            "memory.stat: missing field `pgmajfault`"
        );
        // `kernel` is 5.18+.
        let old: String = full
            .lines()
            .filter(|l| !l.starts_with("kernel "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_memory_stat(&old).unwrap().kernel, None);
        let bad = full.replace("anon 67624960", "anon -1");
        assert!(
            parse_memory_stat(&bad)
                .unwrap_err()
                .to_string()
                .contains("\"anon -1\"")
        );
        // An unknown non-numeric field is left out of the map.
        let odd = format!("{full}future abc\n");
        assert_eq!(parse_memory_stat(&odd).unwrap().get("future"), None);
    }

    #[test]
    fn io_stat_fixture() {
        let s = parse_io_stat(fixture!("io.stat")).unwrap();
        assert_eq!(s.devices.len(), 2);
        let nullb0 = s
            .get(DevNum {
                major: 254,
                minor: 0,
            })
            .unwrap();
        assert_eq!(
            (nullb0.wbytes, nullb0.wios, nullb0.rbytes),
            (4194304, 64, 0)
        );
        let nullb1 = s
            .get(DevNum {
                major: 254,
                minor: 1,
            })
            .unwrap();
        assert_eq!(
            *nullb1,
            IoDevStat {
                dev: DevNum {
                    major: 254,
                    minor: 1
                },
                rbytes: 2097152,
                wbytes: 1048576,
                rios: 32,
                wios: 16,
                dbytes: 0,
                dios: 0,
            }
        );
        assert_eq!(parse_io_stat("").unwrap(), IoStat::default());
    }

    #[test]
    fn io_stat_extra_keys_and_errors() {
        // io.latency and iocost append their own keys, some not numbers.
        let s = parse_io_stat(
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 depth=max avg_lat=0 cost.vrate=100.00\n",
        )
        .unwrap();
        assert_eq!(s.devices[0].dios, 6);
        let e = parse_io_stat("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "io.stat: missing field `dios` in line \"8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5\""
        );
        assert!(
            parse_io_stat("sda rbytes=1\n")
                .unwrap_err()
                .to_string()
                .contains("major:minor")
        );
        assert!(
            parse_io_stat("8:0 rbytes\n")
                .unwrap_err()
                .to_string()
                .contains("key=value")
        );
        assert!(
            parse_io_stat("8:0 rbytes=x wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n")
                .unwrap_err()
                .to_string()
                .contains("not an unsigned integer")
        );
    }

    #[test]
    fn pids_fixtures() {
        assert_eq!(
            parse_pids_events(fixture!("pids.events")).unwrap(),
            PidsEvents { max: 1 }
        );
        assert_eq!(parse_pids_current(fixture!("pids.current")).unwrap(), 2);
        assert_eq!(parse_pids_peak(fixture!("pids.peak")).unwrap(), 16);
        assert_eq!(
            parse_pids_events("").unwrap_err().to_string(),
            "pids.events: missing field `max`"
        );
    }

    #[test]
    fn cgroup_events_fixtures() {
        let ev = |populated, frozen| CgroupEvents { populated, frozen };
        assert_eq!(
            parse_cgroup_events(fixture!("cgroup.events")).unwrap(),
            ev(true, false)
        );
        assert_eq!(
            parse_cgroup_events(fixture!("cgroup.events-frozen")).unwrap(),
            ev(true, true)
        );
        assert_eq!(
            parse_cgroup_events(fixture!("cgroup.events-empty")).unwrap(),
            ev(false, false)
        );
        assert_eq!(
            parse_cgroup_events("populated 2\nfrozen 0\n")
                .unwrap_err()
                .to_string(),
            "cgroup.events: expected 0 or 1 in line \"populated 2\""
        );
        assert_eq!(
            parse_cgroup_events("populated 1\n")
                .unwrap_err()
                .to_string(),
            "cgroup.events: missing field `frozen`"
        );
    }

    #[test]
    fn cgroup_procs_fixtures() {
        assert_eq!(
            parse_cgroup_procs(fixture!("cgroup.procs")).unwrap(),
            vec![260, 262]
        );
        assert!(
            parse_cgroup_procs(fixture!("cgroup.procs-empty"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            parse_cgroup_procs("12\nabc\n").unwrap_err().to_string(),
            "cgroup.procs: not a pid in line \"abc\""
        );
    }

    #[test]
    fn psi_fixtures() {
        let cpu = parse_cpu_pressure(fixture!("cpu.pressure")).unwrap();
        assert_eq!(
            cpu.some,
            PsiLine {
                avg10: 60.95,
                avg60: 44.37,
                avg300: 13.28,
                total: 43868579
            }
        );
        assert_eq!(cpu.full.unwrap().total, 42572147);
        let root = parse_cpu_pressure(fixture!("cpu.pressure-root")).unwrap();
        assert_eq!(root.full, Some(PsiLine::default()));
        let mem = parse_memory_pressure(fixture!("memory.pressure")).unwrap();
        assert_eq!((mem.some.avg10, mem.full.unwrap().avg10), (46.75, 29.38));
        let io = parse_io_pressure(fixture!("io.pressure")).unwrap();
        assert!(io.some.total >= io.full.unwrap().total);
    }

    #[test]
    fn psi_edge_cases() {
        // cpu.pressure before 5.13 has no full line.
        let p = parse_cpu_pressure("some avg10=1.50 avg60=0.00 avg300=0.00 total=12\n").unwrap();
        assert_eq!((p.some.avg10, p.some.total, p.full), (1.5, 12, None));
        assert_eq!(
            parse_io_pressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
                .unwrap_err()
                .to_string(),
            "io.pressure: missing field `some`"
        );
        assert_eq!(
            parse_memory_pressure("some avg10=0.00 avg60=0.00 total=0\n")
                .unwrap_err()
                .to_string(),
            "memory.pressure: missing field `avg300` in line \"some avg10=0.00 avg60=0.00 total=0\""
        );
        for bad in ["inf", "NaN", "-1.00", "+1.00", "1,5", ""] {
            let text = format!("some avg10={bad} avg60=0.00 avg300=0.00 total=0\n");
            assert!(
                parse_cpu_pressure(&text)
                    .unwrap_err()
                    .to_string()
                    .contains("not a percentage"),
                "{bad}"
            );
        }
        // Unknown keys and lines are skipped.
        assert!(
            parse_cpu_pressure(
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0 avg1=3\nirq avg10=x\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn single_values() {
        assert_eq!(
            parse_memory_current(fixture!("memory.current")).unwrap(),
            68280320
        );
        assert_eq!(
            parse_memory_peak(fixture!("memory.peak")).unwrap(),
            69586944
        );
        assert_eq!(
            parse_memory_swap_current(fixture!("memory.swap.current")).unwrap(),
            0
        );
        assert_eq!(
            parse_memory_current("").unwrap_err().to_string(),
            "memory.current: missing field `value`"
        );
        assert_eq!(
            parse_pids_current("max\n").unwrap_err().to_string(),
            "pids.current: not an unsigned integer in line \"max\""
        );
    }

    #[test]
    fn limits_accept_max() {
        assert_eq!(
            parse_limit("memory.max", fixture!("memory.max")).unwrap(),
            Limit::Max
        );
        assert_eq!(
            parse_limit("memory.high", fixture!("memory.high")).unwrap(),
            Limit::Value(48 << 20)
        );
        assert_eq!(
            parse_limit("pids.max", fixture!("pids.max"))
                .unwrap()
                .value(),
            Some(16)
        );
        assert_eq!(
            parse_limit("pids.max", "lots\n").unwrap_err().to_string(),
            "pids.max: expected `max` or an unsigned integer in line \"lots\""
        );
        assert_eq!(
            parse_cpu_max(fixture!("cpu.max")).unwrap(),
            CpuMax {
                quota_usec: Limit::Value(20000),
                period_usec: 100000
            }
        );
        assert_eq!(
            parse_cpu_max("max 100000\n").unwrap().quota_usec,
            Limit::Max
        );
        assert_eq!(
            parse_cpu_max("max\n").unwrap_err().to_string(),
            "cpu.max: missing field `period`"
        );
        assert!(parse_cpu_max("1 2 3").is_err());
        assert!(parse_cpu_max("").is_err());
    }

    #[test]
    fn stat_files_and_update() {
        for f in StatFile::ALL {
            assert_eq!(StatFile::from_name(f.name()), Some(f));
        }
        assert_eq!(StatFile::from_name("cpu.max"), None);
        let mut s = Stats::default();
        s.update(StatFile::CpuStat, fixture!("cpu.stat-throttled"))
            .unwrap();
        assert_eq!(s.cpu.unwrap().throttling.unwrap().nr_throttled, 550);
        let e = s.update(StatFile::CpuStat, "garbage").unwrap_err();
        assert_eq!(e.file(), "cpu.stat");
        assert_eq!(s.cpu, None, "a failed update clears the field");
        let fixtures = [
            (StatFile::CpuPressure, fixture!("cpu.pressure")),
            (StatFile::MemoryCurrent, fixture!("memory.current")),
            (StatFile::MemoryPeak, fixture!("memory.peak")),
            (StatFile::MemoryStat, fixture!("memory.stat")),
            (StatFile::MemoryEvents, fixture!("memory.events")),
            (StatFile::MemoryEventsLocal, fixture!("memory.events.local")),
            (StatFile::MemorySwapCurrent, fixture!("memory.swap.current")),
            (StatFile::MemoryPressure, fixture!("memory.pressure")),
            (StatFile::IoStat, fixture!("io.stat")),
            (StatFile::IoPressure, fixture!("io.pressure")),
            (StatFile::PidsCurrent, fixture!("pids.current")),
            (StatFile::PidsPeak, fixture!("pids.peak")),
            (StatFile::PidsEvents, fixture!("pids.events")),
            (StatFile::CgroupEvents, fixture!("cgroup.events")),
            (StatFile::CgroupProcs, fixture!("cgroup.procs")),
        ];
        for (f, text) in fixtures {
            s.update(f, text).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        assert!(
            s.cpu_pressure.is_some()
                && s.memory_peak.is_some()
                && s.memory_events_local.is_some()
                && s.memory_swap_current.is_some()
                && s.io_pressure.is_some()
                && s.pids_peak.is_some()
                && s.procs.is_some()
        );
    }

    #[test]
    fn helpers_agree_with_std() {
        for s in [
            "0",
            "7",
            "18446744073709551615",
            "18446744073709551616",
            "",
            "+1",
            "-1",
            "1 ",
            "٣",
        ] {
            assert_eq!(
                digits(s),
                s.parse::<u64>().ok().filter(|_| !s.starts_with('+')),
                "{s:?}"
            );
        }
        for h in 0..=10000u32 {
            let text = format!("{}.{:02}", h / 100, h % 100);
            assert_eq!(percent(&text), Some(text.parse::<f64>().unwrap()), "{text}");
        }
        assert_eq!(percent("1.5"), Some(1.5));
        assert_eq!(percent("99999999999.99"), Some(99999999999.99));
        assert_eq!(split_byte("a b c", b' '), Some(("a", "b c")));
        assert_eq!(split_byte("abc", b' '), None);
        assert_eq!(tokens(" a  b ").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(lines("a\n\n b \r\nc").collect::<Vec<_>>(), ["a", " b", "c"]);
    }

    #[test]
    fn long_garbage_is_excerpted() {
        let line = format!("usage_usec {}", "é".repeat(200));
        let e = parse_cpu_stat(&line).unwrap_err();
        let StatError::Malformed { line, .. } = e else {
            panic!("{e:?}")
        };
        assert!(line.len() <= 103 && line.ends_with("..."), "{line}");
    }

    // Renderers in the kernel's formats, for the round-trip properties.

    fn render_flat(pairs: &[(&str, u64)], extra: &[(String, u64)]) -> String {
        let mut out = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            out += &format!("{k} {v}\n");
            if let Some((ek, ev)) = extra.get(i) {
                out += &format!("{ek} {ev}\n");
            }
        }
        out
    }

    fn render_psi_line(kind: &str, l: (u64, u64, u64, u64)) -> (String, PsiLine) {
        let pct = |h: u64| format!("{}.{:02}", h / 100, h % 100);
        let text = format!(
            "{kind} avg10={} avg60={} avg300={} total={}\n",
            pct(l.0),
            pct(l.1),
            pct(l.2),
            l.3
        );
        let hundredths = |h: u64| f64::from(u32::try_from(h).unwrap()) / 100.0;
        (
            text,
            PsiLine {
                avg10: hundredths(l.0),
                avg60: hundredths(l.1),
                avg300: hundredths(l.2),
                total: l.3,
            },
        )
    }

    /// Keys no parser knows.
    fn unknown() -> impl Strategy<Value = Vec<(String, u64)>> {
        proptest::collection::vec(("zz_[a-z_]{1,10}", any::<u64>()), 0..8)
    }

    fn psi_avg() -> impl Strategy<Value = (u64, u64, u64, u64)> {
        (0u64..=10000, 0u64..=10000, 0u64..=10000, any::<u64>())
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "(?s).{0,400}") {
            let _ = parse_cpu_stat(&text);
            let _ = parse_memory_events(&text);
            let _ = parse_memory_events_local(&text);
            let _ = parse_memory_stat(&text);
            let _ = parse_io_stat(&text);
            let _ = parse_pids_events(&text);
            let _ = parse_cgroup_events(&text);
            let _ = parse_cgroup_procs(&text);
            let _ = parse_cpu_pressure(&text);
            let _ = parse_memory_pressure(&text);
            let _ = parse_io_pressure(&text);
            let _ = parse_memory_current(&text);
            let _ = parse_limit("memory.max", &text);
            let _ = parse_cpu_max(&text);
            let mut s = Stats::default();
            for f in StatFile::ALL {
                let _ = s.update(f, &text);
            }
        }

        #[test]
        fn parsers_never_panic_on_near_misses(
            text in "((usage_usec|populated|frozen|some|full|max|8:0|anon) ?[ =:a-z0-9.+-]{0,20}\n){0,8}"
        ) {
            let _ = parse_cpu_stat(&text);
            let _ = parse_cgroup_events(&text);
            let _ = parse_cpu_pressure(&text);
            let _ = parse_io_stat(&text);
            let _ = parse_memory_stat(&text);
            let _ = parse_pids_events(&text);
            let _ = parse_cpu_max(&text);
        }

        #[test]
        fn cpu_stat_round_trips(
            v in proptest::collection::vec(any::<u64>(), 8),
            throttled in any::<bool>(),
            extra in unknown(),
        ) {
            let mut pairs = vec![("usage_usec", v[0]), ("user_usec", v[1]), ("system_usec", v[2])];
            if throttled {
                pairs.extend([("nr_periods", v[3]), ("nr_throttled", v[4]), ("throttled_usec", v[5]),
                              ("nr_bursts", v[6]), ("burst_usec", v[7])]);
            }
            let want = CpuStat {
                usage_usec: v[0], user_usec: v[1], system_usec: v[2],
                throttling: throttled.then_some(CpuThrottling {
                    nr_periods: v[3], nr_throttled: v[4], throttled_usec: v[5],
                    nr_bursts: Some(v[6]), burst_usec: Some(v[7]),
                }),
            };
            prop_assert_eq!(parse_cpu_stat(&render_flat(&pairs, &extra)).unwrap(), want);
        }

        #[test]
        fn memory_events_round_trip(v in proptest::collection::vec(any::<u64>(), 6), extra in unknown()) {
            let pairs = [("low", v[0]), ("high", v[1]), ("max", v[2]), ("oom", v[3]),
                         ("oom_kill", v[4]), ("oom_group_kill", v[5])];
            let want = MemoryEvents { low: v[0], high: v[1], max: v[2], oom: v[3],
                                      oom_kill: v[4], oom_group_kill: Some(v[5]) };
            let text = render_flat(&pairs, &extra);
            prop_assert_eq!(parse_memory_events(&text).unwrap(), want);
            prop_assert_eq!(parse_memory_events_local(&text).unwrap(), want);
        }

        #[test]
        fn memory_stat_round_trips(v in proptest::collection::vec(any::<u64>(), 12), extra in unknown()) {
            let keys = ["anon", "file", "kernel", "kernel_stack", "slab", "sock", "shmem",
                        "file_mapped", "file_dirty", "file_writeback", "pgfault", "pgmajfault"];
            let pairs: Vec<(&str, u64)> = keys.iter().copied().zip(v.iter().copied()).collect();
            let s = parse_memory_stat(&render_flat(&pairs, &extra)).unwrap();
            prop_assert_eq!(
                [s.anon, s.file, s.kernel.unwrap(), s.kernel_stack, s.slab, s.sock, s.shmem,
                 s.file_mapped, s.file_dirty, s.file_writeback, s.pgfault, s.pgmajfault],
                <[u64; 12]>::try_from(v.as_slice()).unwrap()
            );
            for (k, _) in &extra {
                // The last occurrence of a repeated unknown key wins.
                let last = extra.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v2)| *v2);
                prop_assert_eq!(s.get(k), last);
            }
        }

        #[test]
        fn io_stat_round_trips(
            devs in proptest::collection::vec((any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u64>(), 6)), 0..6)
        ) {
            let mut text = String::new();
            let mut want = Vec::new();
            for (major, minor, v) in &devs {
                text += &format!("{major}:{minor} rbytes={} wbytes={} rios={} wios={} dbytes={} dios={}\n",
                                 v[0], v[1], v[2], v[3], v[4], v[5]);
                want.push(IoDevStat { dev: DevNum { major: *major, minor: *minor },
                    rbytes: v[0], wbytes: v[1], rios: v[2], wios: v[3], dbytes: v[4], dios: v[5] });
            }
            prop_assert_eq!(parse_io_stat(&text).unwrap(), IoStat { devices: want });
        }

        #[test]
        fn psi_round_trips(some in psi_avg(), full in proptest::option::of(psi_avg())) {
            let (mut text, some) = render_psi_line("some", some);
            let full = full.map(|f| {
                let (t, l) = render_psi_line("full", f);
                text += &t;
                l
            });
            let want = Psi { some, full };
            prop_assert_eq!(parse_cpu_pressure(&text).unwrap(), want);
            prop_assert_eq!(parse_memory_pressure(&text).unwrap(), want);
            prop_assert_eq!(parse_io_pressure(&text).unwrap(), want);
        }

        #[test]
        fn small_files_round_trip(
            n in any::<u64>(),
            max in any::<bool>(),
            populated in any::<bool>(),
            frozen in any::<bool>(),
            pids in proptest::collection::vec(any::<u32>(), 0..20),
        ) {
            prop_assert_eq!(parse_memory_current(&format!("{n}\n")).unwrap(), n);
            prop_assert_eq!(parse_pids_peak(&format!("{n}\n")).unwrap(), n);
            prop_assert_eq!(parse_pids_events(&format!("max {n}\n")).unwrap(), PidsEvents { max: n });
            let lim = if max { Limit::Max } else { Limit::Value(n) };
            let text = if max { "max\n".to_string() } else { format!("{n}\n") };
            prop_assert_eq!(parse_limit("pids.max", &text).unwrap(), lim);
            prop_assert_eq!(
                parse_cpu_max(&format!("{} {n}\n", text.trim())).unwrap(),
                CpuMax { quota_usec: lim, period_usec: n }
            );
            let ev = format!("populated {}\nfrozen {}\n", u8::from(populated), u8::from(frozen));
            prop_assert_eq!(parse_cgroup_events(&ev).unwrap(), CgroupEvents { populated, frozen });
            let procs: String = pids.iter().map(|p| format!("{p}\n")).collect();
            prop_assert_eq!(parse_cgroup_procs(&procs).unwrap(), pids);
        }
    }
}
