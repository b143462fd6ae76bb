//! Units the config file speaks: sizes, durations, CPU amounts, cpusets,
//! percentages, signals, rlimits and port ranges. Every parser is pure and
//! reports what it expected in words a person can act on.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::node::{Scalar, Value};

/// A parse failure: what was wrong, and the rule the value must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub message: String,
    pub hint: &'static str,
    /// The value is of the wrong kind altogether (a number where true or
    /// false belongs), rather than a value of the right kind that is unusable.
    pub wrong_kind: bool,
}

impl Bad {
    pub fn new(message: impl Into<String>, hint: &'static str) -> Self {
        Bad {
            message: message.into(),
            hint,
            wrong_kind: false,
        }
    }

    /// A value of the wrong kind (reported as `CONFIG_TYPE`).
    pub fn kind(message: impl Into<String>, hint: &'static str) -> Self {
        Bad {
            wrong_kind: true,
            ..Bad::new(message, hint)
        }
    }
}

/// The text of a scalar, whatever YAML typed it as (`port: 80` and
/// `port: "80"` mean the same to us).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Scalar(Scalar::Str(s)) => Some(s.trim().to_string()),
        Value::Scalar(Scalar::Int(i)) => Some(i.to_string()),
        Value::Scalar(Scalar::Float(f)) => Some(f.to_string()),
        Value::Scalar(Scalar::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn expect_scalar(v: &Value, hint: &'static str) -> Result<String, Bad> {
    scalar_text(v).ok_or_else(|| {
        Bad::kind(
            format!("expected a single value, found {}", v.kind_name()),
            hint,
        )
    })
}

// ---------------------------------------------------------------- sizes

/// A byte amount or `max` (no limit), as the kernel's memory and io files take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    Bytes(u64),
    Max,
}

pub const SIZE_HINT: &str = "write bytes (1048576), a number with K, M, G or T (powers of 1024, also Ki, Mi, Gi, Ti), or max";

impl Size {
    /// `64M` -> 67108864; `1.5G` -> 1610612736; `max` -> no limit.
    /// K/M/G/T are powers of 1024, as the kernel (memparse) and systemd read them.
    pub fn parse(s: &str) -> Result<Size, Bad> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") || s.eq_ignore_ascii_case("infinity") {
            return Ok(Size::Max);
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let shift: i32 = match unit.trim() {
            "" | "B" => 0,
            "K" | "k" | "Ki" | "KiB" => 10,
            "M" | "Mi" | "MiB" => 20,
            "G" | "Gi" | "GiB" => 30,
            "T" | "Ti" | "TiB" => 40,
            "KB" | "MB" | "GB" | "TB" | "kB" => {
                return Err(Bad::new(
                    format!("{s:?}: '{unit}' is ambiguous (1000 or 1024?)"),
                    "bulkhead reads K, M, G, T as powers of 1024, like the kernel: write 64M or 64Mi",
                ));
            }
            other => {
                return Err(Bad::new(
                    format!("{s:?}: unknown unit {other:?}"),
                    SIZE_HINT,
                ));
            }
        };
        if num.is_empty() {
            return Err(Bad::new(format!("{s:?} is not a size"), SIZE_HINT));
        }
        let bytes = if num.contains('.') {
            let x: f64 = num
                .parse()
                .map_err(|_| Bad::new(format!("{s:?} is not a size"), SIZE_HINT))?;
            let v = x * 2f64.powi(shift);
            if !(0.0..1.8e19).contains(&v) {
                return Err(Bad::new(format!("{s:?} is too large"), SIZE_HINT));
            }
            // Truncation is the intent: a fraction of a byte is no byte.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let b = v as u64;
            b
        } else {
            let n: u64 = num
                .parse()
                .map_err(|_| Bad::new(format!("{s:?} is too large"), SIZE_HINT))?;
            n.checked_mul(1u64 << shift)
                .ok_or_else(|| Bad::new(format!("{s:?} is too large"), SIZE_HINT))?
        };
        Ok(Size::Bytes(bytes))
    }

    pub fn from_value(v: &Value) -> Result<Size, Bad> {
        match v {
            Value::Scalar(Scalar::Int(i)) => u64::try_from(*i).map(Size::Bytes).map_err(|_| {
                Bad::new(
                    format!("{i} is not a size (negative or too large)"),
                    SIZE_HINT,
                )
            }),
            other => Size::parse(&expect_scalar(other, SIZE_HINT)?),
        }
    }

    pub fn bytes(self) -> Option<u64> {
        match self {
            Size::Bytes(b) => Some(b),
            Size::Max => None,
        }
    }
}

impl fmt::Display for Size {
    /// The shortest exact form: 67108864 -> `64M`, 1000 -> `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Size::Max => f.write_str("max"),
            Size::Bytes(0) => f.write_str("0"),
            Size::Bytes(b) => {
                for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
                    if b.is_multiple_of(1u64 << shift) {
                        return write!(f, "{}{unit}", b >> shift);
                    }
                }
                write!(f, "{b}")
            }
        }
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- durations

pub const DURATION_HINT: &str =
    "write a number with a unit: 100ms, 30s, 5m, 1h (combinations like 1m30s work)";

/// The longest span of time bulkhead takes anywhere (ten years): every
/// duration ends up added to an `Instant` or turned into a timer, and
/// `Instant + 300000000000y` panics.
pub const MAX_DURATION: Duration = Duration::from_secs(super::limits::DURATION_SECS.max);

/// `d`, or why it is too long (see [`MAX_DURATION`]).
pub fn bounded(d: Duration, written: &str) -> Result<Duration, String> {
    if d > MAX_DURATION {
        Err(format!(
            "{written:?} is longer than 3650 days, the longest span bulkhead takes"
        ))
    } else {
        Ok(d)
    }
}

/// A span of time written with a unit (`100ms`, `30s`, `5m`). A bare number
/// is refused: `timeout: 30` could be seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(s: &str) -> Result<Dur, Bad> {
        let s = s.trim();
        if s == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
            return Err(Bad::new(format!("{s:?} has no unit"), DURATION_HINT));
        }
        let d = humantime::parse_duration(s)
            .map_err(|e| Bad::new(format!("{s:?} is not a duration ({e})"), DURATION_HINT))?;
        bounded(d, s)
            .map(Dur)
            .map_err(|m| Bad::new(m, DURATION_HINT))
    }

    pub fn from_value(v: &Value) -> Result<Dur, Bad> {
        Dur::parse(&expect_scalar(v, DURATION_HINT)?)
    }

    pub fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    pub fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(
            f,
            "{}",
            humantime::format_duration(self.0)
                .to_string()
                .replace(' ', "")
        )
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- cpu

pub const CPU_HINT: &str =
    "write cores as a number (0.5, 2) or a percentage of one core (\"50%\", \"150%\"), or max";

/// CPU bandwidth in thousandths of a core, or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cpu {
    Millicores(u64),
    Max,
}

impl Cpu {
    /// `1.5` and `"150%"` -> 1500 millicores; `"12.5%"` -> 125.
    pub fn parse(s: &str) -> Result<Cpu, Bad> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Cpu::Max);
        }
        let (num, scale) = match s.strip_suffix('%') {
            Some(p) => (p.trim(), 10.0),
            None => (s, 1000.0),
        };
        let x: f64 = num
            .parse()
            .map_err(|_| Bad::new(format!("{s:?} is not a cpu amount"), CPU_HINT))?;
        if !x.is_finite() || x < 0.0 {
            return Err(Bad::new(format!("{s:?} is not a cpu amount"), CPU_HINT));
        }
        let m = (x * scale).round();
        if m > 1e9 {
            return Err(Bad::new(
                format!("{s:?} is more cpu than any machine has"),
                CPU_HINT,
            ));
        }
        // Range checked above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let millis = m as u64;
        Ok(Cpu::Millicores(millis))
    }

    pub fn from_value(v: &Value) -> Result<Cpu, Bad> {
        Cpu::parse(&expect_scalar(v, CPU_HINT)?)
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cpu::Max => f.write_str("max"),
            Cpu::Millicores(m) if m.is_multiple_of(1000) => write!(f, "{}", m / 1000),
            Cpu::Millicores(m) => write!(
                f,
                "{}",
                f64::from(u32::try_from(m).unwrap_or(u32::MAX)) / 1000.0
            ),
        }
    }
}

impl Serialize for Cpu {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- cpuset

pub const CPUSET_HINT: &str =
    "write cpu numbers and ranges separated by commas, as in cpuset.cpus: 0-3,8,10-11";

/// A list of CPUs (or memory nodes) in the kernel's list format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpuList {
    /// Sorted, merged, inclusive ranges.
    pub ranges: Vec<(u32, u32)>,
}

/// The largest CPU number the kernel accepts (NR_CPUS is at most 8192).
pub const MAX_CPU: u32 = 8191;

impl CpuList {
    pub fn parse(s: &str) -> Result<CpuList, Bad> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Bad::new("empty cpu list", CPUSET_HINT));
        }
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let num = |t: &str| -> Result<u32, Bad> {
                let n: u32 = t.trim().parse().map_err(|_| {
                    Bad::new(
                        format!("{part:?} in {s:?} is not a cpu number or range"),
                        CPUSET_HINT,
                    )
                })?;
                if n > MAX_CPU {
                    return Err(Bad::new(
                        format!("cpu {n} in {s:?} is beyond {MAX_CPU}"),
                        CPUSET_HINT,
                    ));
                }
                Ok(n)
            };
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(part)?;
                    (n, n)
                }
            };
            if a > b {
                return Err(Bad::new(
                    format!("range {part:?} in {s:?} runs backwards"),
                    CPUSET_HINT,
                ));
            }
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Ok(CpuList { ranges: merged })
    }

    pub fn from_value(v: &Value) -> Result<CpuList, Bad> {
        CpuList::parse(&expect_scalar(v, CPUSET_HINT)?)
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= cpu && cpu <= b)
    }

    pub fn count(&self) -> u32 {
        self.ranges.iter().map(|&(a, b)| b - a + 1).sum()
    }
}

impl fmt::Display for CpuList {
    /// Canonical kernel form: `0-3,8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for CpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- percent

pub const PERCENT_HINT: &str = "write a percentage from 0% to 100% with its sign, e.g. \"20%\"";

/// A percentage in hundredths of a percent (`12.5%` -> 1250), 0..=100%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl Percent {
    /// `"20%"` -> 2000. The sign is required: a bare `0.5` could mean half or
    /// half a percent.
    pub fn parse(s: &str) -> Result<Percent, Bad> {
        let t = s.trim();
        let Some(num) = t.strip_suffix('%').map(str::trim) else {
            return Err(Bad::new(format!("{s:?} has no % sign"), PERCENT_HINT));
        };
        let x: f64 = num
            .parse()
            .map_err(|_| Bad::new(format!("{s:?} is not a percentage"), PERCENT_HINT))?;
        if !(0.0..=100.0).contains(&x) {
            return Err(Bad::new(format!("{s:?} is outside 0%..100%"), PERCENT_HINT));
        }
        // Range checked above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let hundredths = (x * 100.0).round() as u32;
        Ok(Percent(hundredths))
    }

    pub fn from_value(v: &Value) -> Result<Percent, Bad> {
        Percent::parse(&expect_scalar(v, PERCENT_HINT)?)
    }

    pub fn ratio(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}%", self.0 / 100)
        } else {
            write!(f, "{}%", f64::from(self.0) / 100.0)
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- signals

pub const SIGNAL_HINT: &str =
    "write a signal name such as SIGTERM, TERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or SIGKILL";

/// A signal by its name (`SIGTERM` or `TERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig(pub nix::sys::signal::Signal);

impl Sig {
    pub fn parse(s: &str) -> Result<Sig, Bad> {
        let t = s.trim().to_ascii_uppercase();
        let name = if t.starts_with("SIG") {
            t
        } else {
            format!("SIG{t}")
        };
        name.parse::<nix::sys::signal::Signal>()
            .map(Sig)
            .map_err(|_| Bad::new(format!("{s:?} is not a signal"), SIGNAL_HINT))
    }

    pub fn from_value(v: &Value) -> Result<Sig, Bad> {
        Sig::parse(&expect_scalar(v, SIGNAL_HINT)?)
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl Serialize for Sig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- rlimits

pub const RLIMIT_HINT: &str = "write one number for both soft and hard (1024), \"soft:hard\" (\"1024:4096\"), {soft: N, hard: N}, or infinity";

/// One rlimit value: a number or infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    Value(u64),
    Infinity,
}

impl Limit {
    fn parse(s: &str) -> Result<Limit, Bad> {
        let t = s.trim();
        if ["infinity", "unlimited", "max"]
            .iter()
            .any(|w| t.eq_ignore_ascii_case(w))
        {
            return Ok(Limit::Infinity);
        }
        t.parse::<u64>()
            .map(Limit::Value)
            .or_else(|_| match Size::parse(t) {
                Ok(Size::Bytes(b)) => Ok(Limit::Value(b)),
                Ok(Size::Max) => Ok(Limit::Infinity),
                Err(_) => Err(Bad::new(
                    format!("{s:?} is not an rlimit value"),
                    RLIMIT_HINT,
                )),
            })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Value(v) => write!(f, "{v}"),
            Limit::Infinity => f.write_str("infinity"),
        }
    }
}

/// A soft and a hard rlimit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rlimit {
    pub soft: Limit,
    pub hard: Limit,
}

impl Rlimit {
    /// `1024` -> 1024/1024; `"1024:4096"` -> 1024/4096. Sizes are allowed for
    /// byte limits (`fsize: 10M`).
    pub fn parse(s: &str) -> Result<Rlimit, Bad> {
        match s.split_once(':') {
            Some((a, b)) => Ok(Rlimit {
                soft: Limit::parse(a)?,
                hard: Limit::parse(b)?,
            }),
            None => {
                let l = Limit::parse(s)?;
                Ok(Rlimit { soft: l, hard: l })
            }
        }
    }

    pub fn from_value(v: &Value) -> Result<Rlimit, Bad> {
        if let Value::Map(entries) = v {
            let (mut soft, mut hard) = (None, None);
            for (k, val) in entries {
                let text = scalar_text(&val.value)
                    .ok_or_else(|| Bad::new("soft and hard must be numbers", RLIMIT_HINT))?;
                match k.key_text().as_str() {
                    "soft" => soft = Some(Limit::parse(&text)?),
                    "hard" => hard = Some(Limit::parse(&text)?),
                    other => {
                        return Err(Bad::new(
                            format!("unknown key {other:?} in an rlimit"),
                            RLIMIT_HINT,
                        ));
                    }
                }
            }
            return match (soft, hard) {
                (Some(soft), Some(hard)) => Ok(Rlimit { soft, hard }),
                (Some(l), None) | (None, Some(l)) => Ok(Rlimit { soft: l, hard: l }),
                (None, None) => Err(Bad::new("an rlimit needs soft, hard or both", RLIMIT_HINT)),
            };
        }
        Rlimit::parse(&expect_scalar(v, RLIMIT_HINT)?)
    }
}

impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.soft == self.hard {
            write!(f, "{}", self.soft)
        } else {
            write!(f, "{}:{}", self.soft, self.hard)
        }
    }
}

impl Serialize for Rlimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- ports

pub const PORTS_HINT: &str = "write a port range as \"FIRST-LAST\", e.g. \"20000-20999\"";

/// An inclusive range of TCP ports to hand out to instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<PortRange, Bad> {
        let bad = || Bad::new(format!("{s:?} is not a port range"), PORTS_HINT);
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }

    pub fn from_value(v: &Value) -> Result<PortRange, Bad> {
        PortRange::parse(&expect_scalar(v, PORTS_HINT)?)
    }

    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------- ids

pub const IDS_HINT: &str =
    "write a uid range as \"FIRST-LAST\", e.g. \"61184-65519\" (systemd's dynamic users)";

/// An inclusive range of user and group ids (`supervisor.dynamic_users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdRange {
    pub first: u32,
    pub last: u32,
}

impl IdRange {
    pub fn parse(s: &str) -> Result<IdRange, Bad> {
        let bad = || Bad::new(format!("{s:?} is not a uid range"), IDS_HINT);
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u32 = a.trim().parse().map_err(|_| bad())?;
        let last: u32 = b.trim().parse().map_err(|_| bad())?;
        // (uid_t)-1 means "no change" to setresuid(2): never an id.
        if first == 0 || first > last || last == u32::MAX {
            return Err(bad());
        }
        Ok(IdRange { first, last })
    }

    pub fn from_value(v: &Value) -> Result<IdRange, Bad> {
        IdRange::parse(&expect_scalar(v, IDS_HINT)?)
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Serialize for IdRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_past_ten_years_are_refused() {
        assert_eq!(Dur::parse("3650days"), Ok(Dur(MAX_DURATION)));
        for long in ["3651days", "300000000000y", "11y"] {
            let e = Dur::parse(long).unwrap_err();
            assert!(e.message.contains("3650 days"), "{long}: {e:?}");
        }
    }

    #[test]
    fn id_ranges() {
        assert_eq!(
            IdRange::parse("61184-65519"),
            Ok(IdRange {
                first: 61184,
                last: 65519
            })
        );
        assert_eq!(
            IdRange::parse(" 524288 - 589823 ").map(|r| r.last),
            Ok(589_823)
        );
        for bad in [
            "",
            "5",
            "0-10",
            "10-5",
            "1-4294967295",
            "a-b",
            "-1-5",
            "70000",
        ] {
            let e = IdRange::parse(bad).unwrap_err();
            assert!(e.message.contains("uid range"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("0"), Ok(Size::Bytes(0)));
        assert_eq!(Size::parse("1048576"), Ok(Size::Bytes(1 << 20)));
        assert_eq!(Size::parse("64M"), Ok(Size::Bytes(64 << 20)));
        assert_eq!(Size::parse("64Mi"), Ok(Size::Bytes(64 << 20)));
        assert_eq!(Size::parse("1.5G"), Ok(Size::Bytes(3 << 29)));
        assert_eq!(Size::parse("2T"), Ok(Size::Bytes(2 << 40)));
        assert_eq!(Size::parse("512k"), Ok(Size::Bytes(512 << 10)));
        assert_eq!(Size::parse("max"), Ok(Size::Max));
        assert_eq!(Size::parse("MAX"), Ok(Size::Max));
        assert!(Size::parse("64MB").unwrap_err().hint.contains("1024"));
        assert!(Size::parse("64X").is_err());
        assert!(Size::parse("").is_err());
        assert!(Size::parse("M").is_err());
        assert!(Size::parse("-1").is_err());
        assert!(Size::parse("99999999999T").is_err());
        assert!(Size::from_value(&Value::Scalar(Scalar::Int(-5))).is_err());
        assert_eq!(
            Size::from_value(&Value::Scalar(Scalar::Int(4096))),
            Ok(Size::Bytes(4096))
        );
    }

    #[test]
    fn size_display_is_shortest_exact() {
        assert_eq!(Size::Bytes(64 << 20).to_string(), "64M");
        assert_eq!(Size::Bytes(1000).to_string(), "1000");
        assert_eq!(Size::Bytes(3 << 29).to_string(), "1536M");
        assert_eq!(Size::Max.to_string(), "max");
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("100ms"), Ok(Dur::millis(100)));
        assert_eq!(Dur::parse("30s"), Ok(Dur::secs(30)));
        assert_eq!(Dur::parse("5m"), Ok(Dur::secs(300)));
        assert_eq!(Dur::parse("1m30s"), Ok(Dur::secs(90)));
        assert_eq!(Dur::parse("0"), Ok(Dur::secs(0)));
        assert!(Dur::parse("30").unwrap_err().message.contains("no unit"));
        assert!(Dur::parse("soon").is_err());
        assert_eq!(Dur::secs(90).to_string(), "1m30s");
        assert_eq!(Dur::millis(100).to_string(), "100ms");
    }

    #[test]
    fn cpus() {
        assert_eq!(Cpu::parse("1.5"), Ok(Cpu::Millicores(1500)));
        assert_eq!(Cpu::parse("150%"), Ok(Cpu::Millicores(1500)));
        assert_eq!(Cpu::parse("12.5%"), Ok(Cpu::Millicores(125)));
        assert_eq!(Cpu::parse("2"), Ok(Cpu::Millicores(2000)));
        assert_eq!(Cpu::parse("max"), Ok(Cpu::Max));
        assert_eq!(Cpu::parse("0"), Ok(Cpu::Millicores(0)));
        assert!(Cpu::parse("-1").is_err());
        assert!(Cpu::parse("lots").is_err());
        assert!(Cpu::parse("1e12").is_err());
        assert_eq!(Cpu::Millicores(1500).to_string(), "1.5");
        assert_eq!(Cpu::Millicores(2000).to_string(), "2");
    }

    #[test]
    fn cpusets() {
        assert_eq!(
            CpuList::parse("0-3,8,10-11").unwrap().to_string(),
            "0-3,8,10-11"
        );
        assert_eq!(CpuList::parse("3,1,2,0").unwrap().to_string(), "0-3");
        assert_eq!(CpuList::parse(" 0 - 1 , 1-2").unwrap().to_string(), "0-2");
        assert_eq!(CpuList::parse("0-3").unwrap().count(), 4);
        assert!(CpuList::parse("3-1").is_err());
        assert!(CpuList::parse("a").is_err());
        assert!(CpuList::parse("").is_err());
        assert!(CpuList::parse("0,,1").is_err());
        assert!(CpuList::parse("9000").is_err());
    }

    #[test]
    fn percents_signals_rlimits_ports() {
        assert_eq!(Percent::parse("20%"), Ok(Percent(2000)));
        assert_eq!(Percent::parse("12.5%"), Ok(Percent(1250)));
        assert!(
            Percent::parse("0.5")
                .unwrap_err()
                .message
                .contains("no % sign")
        );
        assert!(Percent::parse("101%").is_err());
        assert_eq!(Percent(1250).to_string(), "12.5%");
        assert_eq!(Sig::parse("term").unwrap().to_string(), "SIGTERM");
        assert_eq!(Sig::parse("SIGKILL").unwrap().to_string(), "SIGKILL");
        assert!(Sig::parse("SIGFOO").is_err());
        assert_eq!(Rlimit::parse("1024").unwrap().to_string(), "1024");
        assert_eq!(Rlimit::parse("1024:4096").unwrap().to_string(), "1024:4096");
        assert_eq!(Rlimit::parse("10M").unwrap().soft, Limit::Value(10 << 20));
        assert_eq!(Rlimit::parse("unlimited").unwrap().hard, Limit::Infinity);
        assert!(Rlimit::parse("lots").is_err());
        assert_eq!(PortRange::parse("20000-20999").unwrap().len(), 1000);
        assert!(PortRange::parse("2-1").is_err());
        assert!(PortRange::parse("0-10").is_err());
        assert!(PortRange::parse("70000-70001").is_err());
    }

    proptest! {
        #[test]
        fn size_parse_never_panics(s in ".{0,24}") {
            let _ = Size::parse(&s);
        }

        #[test]
        fn size_roundtrips_through_display(b in any::<u64>()) {
            let s = Size::Bytes(b);
            prop_assert_eq!(Size::parse(&s.to_string()), Ok(s));
        }

        #[test]
        fn size_suffixes_are_powers_of_1024(n in 0u64..1_000_000, i in 0u32..4) {
            let unit = ["K", "M", "G", "T"][i as usize];
            let expect = n.checked_mul(1u64 << (10 * (i + 1)));
            match expect {
                Some(v) => {
                    prop_assert_eq!(Size::parse(&format!("{n}{unit}")), Ok(Size::Bytes(v)));
                    prop_assert_eq!(Size::parse(&format!("{n}{unit}i")), Ok(Size::Bytes(v)));
                }
                None => {
                    let text = format!("{n}{unit}");
                    prop_assert!(Size::parse(&text).is_err());
                }
            }
        }

        #[test]
        fn duration_parse_never_panics(s in ".{0,24}") {
            let _ = Dur::parse(&s);
        }

        #[test]
        fn duration_roundtrips(ms in 1u64..10_000_000_000) {
            let d = Dur::millis(ms);
            prop_assert_eq!(Dur::parse(&d.to_string()), Ok(d));
        }

        #[test]
        fn cpu_parse_never_panics(s in ".{0,24}") {
            let _ = Cpu::parse(&s);
        }

        #[test]
        fn cpu_percent_and_cores_agree(m in 0u64..100_000) {
            let cores = format!("{}", m as f64 / 1000.0);
            let pct = format!("{}%", m as f64 / 10.0);
            prop_assert_eq!(Cpu::parse(&cores), Ok(Cpu::Millicores(m)));
            prop_assert_eq!(Cpu::parse(&pct), Ok(Cpu::Millicores(m)));
        }

        #[test]
        fn cpuset_parse_never_panics(s in "[0-9,\\- ]{0,24}") {
            let _ = CpuList::parse(&s);
        }

        #[test]
        fn cpuset_canonical_form_is_stable(cpus in proptest::collection::btree_set(0u32..64, 1..20)) {
            let text: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
            let list = CpuList::parse(&text.join(",")).unwrap();
            for c in 0..64 {
                prop_assert_eq!(list.contains(c), cpus.contains(&c));
            }
            prop_assert_eq!(CpuList::parse(&list.to_string()).unwrap(), list.clone());
            prop_assert_eq!(list.count() as usize, cpus.len());
        }

        #[test]
        fn percent_rlimit_ports_never_panic(s in ".{0,24}") {
            let _ = Percent::parse(&s);
            let _ = Rlimit::parse(&s);
            let _ = Sig::parse(&s);
            let _ = PortRange::parse(&s);
        }
    }
}

/// Socket address families `protect.address_families` names, with their
/// numbers (AF_*).
pub const ADDRESS_FAMILIES: &[&str] = &[
    "unix",
    "inet",
    "inet6",
    "netlink",
    "packet",
    "alg",
    "vsock",
    "can",
    "bluetooth",
    "xdp",
    "tipc",
    "rds",
    "key",
    "llc",
    "ib",
    "mpls",
    "qipcrtr",
    "smc",
    "nfc",
    "x25",
    "ax25",
    "appletalk",
    "ipx",
];

/// The AF_* number of a family name.
pub fn address_family(name: &str) -> Option<i32> {
    Some(match name {
        "unix" => libc::AF_UNIX,
        "inet" => libc::AF_INET,
        "inet6" => libc::AF_INET6,
        "netlink" => libc::AF_NETLINK,
        "packet" => libc::AF_PACKET,
        "alg" => libc::AF_ALG,
        "vsock" => libc::AF_VSOCK,
        "can" => libc::AF_CAN,
        "bluetooth" => libc::AF_BLUETOOTH,
        "xdp" => libc::AF_XDP,
        "tipc" => libc::AF_TIPC,
        "rds" => libc::AF_RDS,
        "key" => libc::AF_KEY,
        "llc" => libc::AF_LLC,
        "ib" => libc::AF_IB,
        "mpls" => libc::AF_MPLS,
        "qipcrtr" => 42,
        "smc" => 43,
        "nfc" => libc::AF_NFC,
        "x25" => libc::AF_X25,
        "ax25" => libc::AF_AX25,
        "appletalk" => libc::AF_APPLETALK,
        "ipx" => libc::AF_IPX,
        _ => return None,
    })
}

/// A `protect.device_allow` entry: `PATH ACCESS` (`/dev/dri/renderD128 rw`)
/// or `TYPE MAJOR:MINOR ACCESS` (`c 10:200 rw`, `b 8:* r`), access a
/// non-empty subset of `rwm`.
pub fn device_allow_entry(s: &str) -> Result<(), String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let access_ok = |a: &str| !a.is_empty() && a.chars().all(|ch| "rwm".contains(ch));
    let num_ok = |n: &str| n == "*" || n.parse::<u32>().is_ok();
    match words.as_slice() {
        [path, access] if path.starts_with("/dev/") && access_ok(access) => Ok(()),
        [kind, nums, access]
            if ["c", "b", "char", "block"].contains(kind)
                && access_ok(access)
                && nums
                    .split_once(':')
                    .is_some_and(|(a, b)| num_ok(a) && num_ok(b)) =>
        {
            Ok(())
        }
        _ => Err(format!("{s:?} is not a device entry")),
    }
}

#[cfg(test)]
mod protect_unit_tests {
    use super::*;

    #[test]
    fn families_and_devices() {
        for f in ADDRESS_FAMILIES {
            assert!(address_family(f).is_some(), "{f}");
        }
        assert_eq!(address_family("inet6"), Some(libc::AF_INET6));
        assert_eq!(address_family("inet7"), None);
        for ok in [
            "/dev/dri/renderD128 rw",
            "c 10:200 rw",
            "b 8:* r",
            "char *:* m",
        ] {
            assert_eq!(device_allow_entry(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/dev/null",
            "/etc/passwd rw",
            "c 10:200 rx",
            "x 1:3 r",
            "c 1 r",
            "",
        ] {
            assert!(device_allow_entry(bad).is_err(), "{bad}");
        }
    }
}
