//! Reading an OCI/Docker seccomp profile: the JSON as written (serde, every
//! struct `deny_unknown_fields`), then checked into a [`Profile`]. Every
//! mistake is reported with the file, the JSON path (`syscalls[3].action`),
//! its line and column, and what to write instead. Nothing is dropped
//! silently: an unknown field, action, operator, architecture, capability or
//! flag is an error.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use libseccomp::ScmpArch;
use serde::Deserialize;

use super::locate::JsonIndex;
use crate::error::closest;
use crate::error::{Code, Diagnostic, Diagnostics, Pos};

// ------------------------------------------------------------ the JSON as written

/// A comment: one string, or a list of lines.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawComment {
    One(String),
    Lines(Vec<String>),
}

impl RawComment {
    fn text(self) -> String {
        match self {
            RawComment::One(s) => s,
            RawComment::Lines(l) => l.join("\n"),
        }
    }
}

/// The top level: OCI's `LinuxSeccomp` plus Docker's `archMap` and `comment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProfile {
    comment: Option<RawComment>,
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<RawArchMap>>,
    syscalls: Option<Vec<RawSyscall>>,
    flags: Option<Vec<String>>,
    listener_path: Option<String>,
    listener_metadata: Option<String>,
    /// bulkhead's extension: names no architecture has are set aside, not
    /// errors (for profiles written for a newer libseccomp).
    #[serde(rename = "ignore_unknown")]
    ignore_unknown: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawArchMap {
    architecture: Option<String>,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSyscall {
    names: Option<Vec<String>>,
    /// Docker's older single-name form.
    name: Option<String>,
    action: Option<String>,
    errno_ret: Option<u32>,
    args: Option<Vec<RawArg>>,
    /// Documentation only.
    #[serde(rename = "comment")]
    _comment: Option<RawComment>,
    includes: Option<RawFilter>,
    excludes: Option<RawFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawArg {
    index: Option<u32>,
    value: Option<u64>,
    value_two: Option<u64>,
    op: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFilter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

// ------------------------------------------------------------ the checked profile

/// What a rule (or the default) does to a matching system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Fail the call with this errno.
    Errno(u16),
    KillThread,
    KillProcess,
    /// Send SIGSYS, which the process may handle.
    Trap,
    /// Allow, and log it to the audit log.
    Log,
}

impl Action {
    pub fn to_scmp(self) -> libseccomp::ScmpAction {
        use libseccomp::ScmpAction as A;
        match self {
            Action::Allow => A::Allow,
            Action::Errno(e) => A::Errno(i32::from(e)),
            Action::KillThread => A::KillThread,
            Action::KillProcess => A::KillProcess,
            Action::Trap => A::Trap,
            Action::Log => A::Log,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => f.write_str("ALLOW"),
            Action::Errno(e) => write!(f, "ERRNO({})", errno_name(*e)),
            Action::KillThread => f.write_str("KILL_THREAD"),
            Action::KillProcess => f.write_str("KILL_PROCESS"),
            Action::Trap => f.write_str("TRAP"),
            Action::Log => f.write_str("LOG"),
        }
    }
}

/// `EPERM` for 1; the number when it has no name.
pub fn errno_name(e: u16) -> String {
    match nix::errno::Errno::from_raw(i32::from(e)) {
        nix::errno::Errno::UnknownErrno => e.to_string(),
        n => format!("{n:?}"),
    }
}

/// A comparison of one system call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

/// One argument condition: `args[index] OP value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCmp {
    /// 0..=5
    pub index: u32,
    pub op: Op,
    pub value: u64,
    /// The expected value for [`Op::MaskedEq`] (`value` is the mask); 0 otherwise.
    pub value_two: u64,
}

impl fmt::Display for ArgCmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, v) = (self.index, self.value);
        let op = match self.op {
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::MaskedEq => return write!(f, "arg{i} & {v:#x} == {:#x}", self.value_two),
        };
        write!(f, "arg{i} {op} {v:#x}")
    }
}

/// When a rule applies (`includes`: every condition given holds) or does
/// not (`excludes`: any condition given holds). Empty means no condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cond {
    /// Canonical names (`CAP_SYS_ADMIN`).
    pub caps: Vec<String>,
    pub arches: Vec<ScmpArch>,
    /// (major, minor)
    pub min_kernel: Option<(u32, u32)>,
}

impl Cond {
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its index in `syscalls`, for messages (`syscalls[3]`).
    pub index: usize,
    pub names: Vec<String>,
    pub action: Action,
    /// All must hold (AND); at most one per argument.
    pub args: Vec<ArgCmp>,
    pub includes: Cond,
    pub excludes: Cond,
}

/// Which architectures the filter covers besides the native one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arches {
    /// `architectures`: these, as listed.
    List(Vec<ScmpArch>),
    /// `archMap`: the entry for the native architecture, with its
    /// sub-architectures (x86_64 -> x86, x32).
    Map(Vec<(ScmpArch, Vec<ScmpArch>)>),
}

/// A checked profile, independent of the host it will run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub comment: Option<String>,
    pub default_action: Action,
    pub arches: Arches,
    pub rules: Vec<Rule>,
    /// `"ignore_unknown": true`: names libseccomp knows on no architecture
    /// are set aside (and counted) rather than refused.
    pub ignore_unknown: bool,
}

// ------------------------------------------------------------ names

/// The actions bulkhead accepts, as written in profiles.
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_LOG",
];

pub const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// Architecture names: Go's (`amd64`, as Docker writes `includes.arches`),
/// libseccomp's (`SCMP_ARCH_X86_64`) and the kernel's (`x86_64`).
const ARCH_NAMES: &[(&str, ScmpArch)] = &[
    ("amd64", ScmpArch::X8664),
    ("x86_64", ScmpArch::X8664),
    ("386", ScmpArch::X86),
    ("x86", ScmpArch::X86),
    ("x32", ScmpArch::X32),
    ("arm", ScmpArch::Arm),
    ("arm64", ScmpArch::Aarch64),
    ("aarch64", ScmpArch::Aarch64),
    ("loong64", ScmpArch::Loongarch64),
    ("loongarch64", ScmpArch::Loongarch64),
    ("m68k", ScmpArch::M68k),
    ("mips", ScmpArch::Mips),
    ("mipsle", ScmpArch::Mipsel),
    ("mipsel", ScmpArch::Mipsel),
    ("mips64", ScmpArch::Mips64),
    ("mips64le", ScmpArch::Mipsel64),
    ("mipsel64", ScmpArch::Mipsel64),
    ("mips64n32", ScmpArch::Mips64N32),
    ("mips64len32", ScmpArch::Mipsel64N32),
    ("mipsel64n32", ScmpArch::Mipsel64N32),
    ("ppc", ScmpArch::Ppc),
    ("ppc64", ScmpArch::Ppc64),
    ("ppc64le", ScmpArch::Ppc64Le),
    ("s390", ScmpArch::S390),
    ("s390x", ScmpArch::S390X),
    ("parisc", ScmpArch::Parisc),
    ("parisc64", ScmpArch::Parisc64),
    ("riscv64", ScmpArch::Riscv64),
    ("sh", ScmpArch::Sh),
    ("sheb", ScmpArch::Sheb),
];

/// `SCMP_ARCH_X86_64`, `x86_64` or `amd64`.
pub fn parse_arch(name: &str) -> Option<ScmpArch> {
    if name.starts_with("SCMP_ARCH_") {
        return ScmpArch::from_str(name)
            .ok()
            .filter(|a| *a != ScmpArch::Native);
    }
    ARCH_NAMES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// The kernel's name for an architecture (`x86_64`).
pub fn arch_name(arch: ScmpArch) -> &'static str {
    match arch {
        ScmpArch::X8664 => "x86_64",
        ScmpArch::X86 => "x86",
        ScmpArch::X32 => "x32",
        ScmpArch::Arm => "arm",
        ScmpArch::Aarch64 => "aarch64",
        ScmpArch::Loongarch64 => "loongarch64",
        ScmpArch::M68k => "m68k",
        ScmpArch::Mips => "mips",
        ScmpArch::Mipsel => "mipsel",
        ScmpArch::Mips64 => "mips64",
        ScmpArch::Mipsel64 => "mipsel64",
        ScmpArch::Mips64N32 => "mips64n32",
        ScmpArch::Mipsel64N32 => "mipsel64n32",
        ScmpArch::Ppc => "ppc",
        ScmpArch::Ppc64 => "ppc64",
        ScmpArch::Ppc64Le => "ppc64le",
        ScmpArch::S390 => "s390",
        ScmpArch::S390X => "s390x",
        ScmpArch::Parisc => "parisc",
        ScmpArch::Parisc64 => "parisc64",
        ScmpArch::Riscv64 => "riscv64",
        ScmpArch::Sh => "sh",
        ScmpArch::Sheb => "sheb",
        _ => "native",
    }
}

/// The kernel cannot return an errno above this (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;

/// The only `flags` value accepted: it asks that every thread get the
/// filter, and the service is single-threaded when the filter is installed.
const FLAG_TSYNC: &str = "SECCOMP_FILTER_FLAG_TSYNC";

// ------------------------------------------------------------ checking

struct Checker<'a> {
    file: &'a Path,
    index: JsonIndex,
    diags: Diagnostics,
    ignore_unknown: bool,
    /// Unknown names looked up for a suggestion so far: only the first
    /// `ERRORS_PER_KIND` are (the rest are folded in the report anyway, and
    /// a 1 MiB profile of misspellings must not cost a search each).
    suggested: usize,
}

/// Every architecture libseccomp has a syscall table for.
const ALL_ARCHES: &[ScmpArch] = &[
    ScmpArch::X8664,
    ScmpArch::X86,
    ScmpArch::X32,
    ScmpArch::Arm,
    ScmpArch::Aarch64,
    ScmpArch::Loongarch64,
    ScmpArch::M68k,
    ScmpArch::Mips,
    ScmpArch::Mipsel,
    ScmpArch::Mips64,
    ScmpArch::Mipsel64,
    ScmpArch::Mips64N32,
    ScmpArch::Mipsel64N32,
    ScmpArch::Ppc,
    ScmpArch::Ppc64,
    ScmpArch::Ppc64Le,
    ScmpArch::S390,
    ScmpArch::S390X,
    ScmpArch::Parisc,
    ScmpArch::Parisc64,
    ScmpArch::Riscv64,
    ScmpArch::Sh,
    ScmpArch::Sheb,
];

/// Is `name` a system call on any architecture libseccomp knows? (On an
/// architecture that lacks it a known name resolves to a negative
/// pseudo-number; a name no table has does not resolve at all.)
pub fn is_syscall_anywhere(name: &str) -> bool {
    ALL_ARCHES.iter().any(|a| {
        libseccomp::ScmpSyscall::from_name_by_arch(name, *a).is_ok_and(|s| s.as_raw_syscall() >= 0)
    })
}

/// Every system call name libseccomp knows, for suggestions: the tables of
/// the common architectures, numbers 0 to 1023 (and x32's, with its bit).
fn known_syscall_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut out = std::collections::BTreeSet::new();
        let tables = [
            (ScmpArch::X8664, 0),
            (ScmpArch::X86, 0),
            (ScmpArch::Aarch64, 0),
            (ScmpArch::Arm, 0),
            (ScmpArch::Arm, 0x000f_0000),
            (ScmpArch::S390X, 0),
            (ScmpArch::Ppc64Le, 0),
            (ScmpArch::Riscv64, 0),
            (ScmpArch::X32, 0x4000_0000),
        ];
        for (arch, base) in tables {
            for nr in 0..1024 {
                let s = libseccomp::ScmpSyscall::from_raw_syscall(base + nr);
                if let Ok(n) = s.get_name_by_arch(arch) {
                    out.insert(n);
                }
            }
        }
        out.into_iter().collect()
    })
}

/// The closest system call name to a misspelt one.
pub fn closest_syscall(name: &str) -> Option<&'static str> {
    let names: Vec<&str> = known_syscall_names().iter().map(String::as_str).collect();
    closest(name, &names)
}

impl Checker<'_> {
    /// An error about the field at `path`, located in the file.
    fn error(&mut self, path: &str, message: impl fmt::Display, suggestion: impl Into<String>) {
        let d = Diagnostic::new(Code::ConfigSeccompProfile, format!("{path}: {message}"));
        let d = match self.index.pos(path) {
            Some(p) => d.at(self.file, p),
            None => d.in_file(self.file),
        };
        self.diags.push(d.suggest(suggestion));
    }

    fn action(
        &mut self,
        path: &str,
        name: Option<&str>,
        errno: Option<u32>,
        errno_path: &str,
    ) -> Option<Action> {
        let Some(name) = name else {
            self.error(
                path,
                "missing",
                format!("give an action, one of {}", ACTIONS.join(", ")),
            );
            return None;
        };
        let action = match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => {
                let e = errno.unwrap_or(1);
                if e > MAX_ERRNO {
                    self.error(
                        errno_path,
                        format!("{e} is not an errno"),
                        format!("use 1 (EPERM), 38 (ENOSYS) or another errno up to {MAX_ERRNO}"),
                    );
                    return None;
                }
                return u16::try_from(e).ok().map(Action::Errno);
            }
            "SCMP_ACT_KILL_THREAD" | "SCMP_ACT_KILL" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_TRACE" => {
                self.error(
                    path,
                    "SCMP_ACT_TRACE is not supported: it hands the call to a ptrace tracer, and bulkhead runs none (without one the call fails with ENOSYS)",
                    "use SCMP_ACT_ERRNO to refuse the call, or SCMP_ACT_LOG to allow and log it",
                );
                return None;
            }
            "SCMP_ACT_NOTIFY" => {
                self.error(
                    path,
                    "SCMP_ACT_NOTIFY is not supported: it needs a user-space listener, and bulkhead has none",
                    "use SCMP_ACT_ERRNO to refuse the call, or SCMP_ACT_LOG to allow and log it",
                );
                return None;
            }
            other => {
                let help = match closest(other, ACTIONS) {
                    Some(a) => format!("did you mean `{a}`?"),
                    None => format!("use one of {}", ACTIONS.join(", ")),
                };
                self.error(path, format!("unknown action `{other}`"), help);
                return None;
            }
        };
        if errno.is_some() {
            self.error(
                errno_path,
                format!("an errno return goes with SCMP_ACT_ERRNO, not {name}"),
                "remove it, or make the action SCMP_ACT_ERRNO",
            );
            return None;
        }
        Some(action)
    }

    fn arch_list(&mut self, path: &str, names: &[String], kind: ArchForm) -> Vec<ScmpArch> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let parsed = match kind {
                ArchForm::Scmp => ScmpArch::from_str(n)
                    .ok()
                    .filter(|a| *a != ScmpArch::Native),
                ArchForm::Any => parse_arch(n),
            };
            match parsed {
                Some(a) if !out.contains(&a) => out.push(a),
                Some(_) => {}
                None => {
                    let help = match kind {
                        ArchForm::Scmp => {
                            "write a libseccomp name such as SCMP_ARCH_X86_64 or SCMP_ARCH_AARCH64"
                        }
                        ArchForm::Any => {
                            "write an architecture such as amd64, arm64, x86, x32, s390x (or SCMP_ARCH_X86_64)"
                        }
                    };
                    self.error(
                        &format!("{path}[{i}]"),
                        format!("unknown architecture `{n}`"),
                        help,
                    );
                }
            }
        }
        out
    }

    fn filter(&mut self, path: &str, raw: Option<RawFilter>) -> Cond {
        let Some(raw) = raw else {
            return Cond::default();
        };
        let mut cond = Cond::default();
        for (i, cap) in raw.caps.iter().flatten().enumerate() {
            let canon = canonical_capability(cap);
            if canon.parse::<caps::Capability>().is_ok() {
                cond.caps.push(canon);
            } else {
                let all: Vec<String> = caps::all().iter().map(ToString::to_string).collect();
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                self.error(
                    &format!("{path}.caps[{i}]"),
                    format!("`{cap}` is not a capability"),
                    match closest(&canon, &refs) {
                        Some(b) => format!("did you mean `{b}`?"),
                        None => "see capabilities(7) for the names, e.g. CAP_SYS_ADMIN".into(),
                    },
                );
            }
        }
        if let Some(arches) = &raw.arches {
            cond.arches = self.arch_list(&format!("{path}.arches"), arches, ArchForm::Any);
        }
        if let Some(k) = &raw.min_kernel {
            match parse_kernel(k) {
                Some(v) => cond.min_kernel = Some(v),
                None => self.error(
                    &format!("{path}.minKernel"),
                    format!("{k:?} is not a kernel version"),
                    "write MAJOR.MINOR, e.g. \"5.10\"",
                ),
            }
        }
        cond
    }

    fn args(&mut self, path: &str, raw: Vec<RawArg>) -> Vec<ArgCmp> {
        let mut out: Vec<ArgCmp> = Vec::new();
        for (j, a) in raw.into_iter().enumerate() {
            let at = format!("{path}[{j}]");
            let Some(index) = a.index else {
                self.error(
                    &at,
                    "missing `index`",
                    "give the argument's position, 0 to 5",
                );
                continue;
            };
            if index > 5 {
                self.error(
                    &format!("{at}.index"),
                    format!("{index} is not an argument position"),
                    "system calls have arguments 0 to 5",
                );
                continue;
            }
            if let Some(k) = out.iter().position(|c| c.index == index) {
                self.error(
                    &format!("{at}.index"),
                    format!("argument {index} is already compared in {path}[{k}]"),
                    "libseccomp cannot test one argument twice in one rule: write two rules (rules OR together), or one SCMP_CMP_MASKED_EQ",
                );
                continue;
            }
            let op = match a.op.as_deref() {
                Some("SCMP_CMP_NE") => Op::Ne,
                Some("SCMP_CMP_LT") => Op::Lt,
                Some("SCMP_CMP_LE") => Op::Le,
                Some("SCMP_CMP_EQ") => Op::Eq,
                Some("SCMP_CMP_GE") => Op::Ge,
                Some("SCMP_CMP_GT") => Op::Gt,
                Some("SCMP_CMP_MASKED_EQ") => Op::MaskedEq,
                Some(other) => {
                    let help = match closest(other, OPS) {
                        Some(o) => format!("did you mean `{o}`?"),
                        None => format!("use one of {}", OPS.join(", ")),
                    };
                    self.error(
                        &format!("{at}.op"),
                        format!("unknown operator `{other}`"),
                        help,
                    );
                    continue;
                }
                None => {
                    self.error(
                        &at,
                        "missing `op`",
                        format!("give an operator, one of {}", OPS.join(", ")),
                    );
                    continue;
                }
            };
            let Some(value) = a.value else {
                self.error(&at, "missing `value`", "give the value to compare with");
                continue;
            };
            let value_two = a.value_two.unwrap_or(0);
            if op != Op::MaskedEq && value_two != 0 {
                self.error(
                    &format!("{at}.valueTwo"),
                    "valueTwo is only used by SCMP_CMP_MASKED_EQ",
                    "remove it (or set it to 0), or use SCMP_CMP_MASKED_EQ with value as the mask",
                );
                continue;
            }
            out.push(ArgCmp {
                index,
                op,
                value,
                value_two,
            });
        }
        out
    }

    fn rule(&mut self, i: usize, raw: RawSyscall) -> Option<Rule> {
        let at = format!("syscalls[{i}]");
        let single = raw.names.is_none() && raw.name.is_some();
        let names = match (raw.names, raw.name) {
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{at}.name"),
                    "both `name` and `names`",
                    "keep `names` and move the name into it",
                );
                return None;
            }
            (Some(n), None) => n,
            (None, Some(n)) => vec![n],
            (None, None) => Vec::new(),
        };
        if names.is_empty() {
            self.error(
                &at,
                "no system call names",
                "list them: \"names\": [\"read\", \"write\"]",
            );
            return None;
        }
        let mut ok = true;
        for (k, n) in names.iter().enumerate() {
            let path = if single {
                format!("{at}.name")
            } else {
                format!("{at}.names[{k}]")
            };
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.error(
                    &path,
                    format!("{n:?} is not a system call name"),
                    "write the kernel's name, e.g. \"openat\"",
                );
                ok = false;
            } else if !self.ignore_unknown && !is_syscall_anywhere(n) {
                let newer = "if it is a call newer than this libseccomp, set \"ignore_unknown\": true at the top of the profile to set such names aside";
                self.suggested += 1;
                let closest = if self.suggested <= crate::error::ERRORS_PER_KIND.max_usize() {
                    closest_syscall(n)
                } else {
                    None
                };
                self.error(
                    &path,
                    format!(
                        "`{n}` is not a system call on any architecture libseccomp {} knows",
                        libseccomp_version()
                    ),
                    match closest {
                        Some(c) => format!("did you mean `{c}`? ({newer})"),
                        None => format!("check the spelling against syscalls(2); {newer}"),
                    },
                );
                ok = false;
            }
        }
        let action = self.action(
            &format!("{at}.action"),
            raw.action.as_deref(),
            raw.errno_ret,
            &format!("{at}.errnoRet"),
        );
        let args = self.args(&format!("{at}.args"), raw.args.unwrap_or_default());
        let includes = self.filter(&format!("{at}.includes"), raw.includes);
        let excludes = self.filter(&format!("{at}.excludes"), raw.excludes);
        Some(Rule {
            index: i,
            names,
            action: action.filter(|_| ok)?,
            args,
            includes,
            excludes,
        })
    }

    fn profile(&mut self, raw: RawProfile) -> Option<Profile> {
        self.ignore_unknown = raw.ignore_unknown.unwrap_or(false);
        let default_action = self.action(
            "defaultAction",
            raw.default_action.as_deref(),
            raw.default_errno_ret,
            "defaultErrnoRet",
        );
        let arches = match (raw.architectures, raw.arch_map) {
            (Some(_), Some(_)) => {
                self.error(
                    "archMap",
                    "both `architectures` and `archMap`",
                    "keep one: archMap picks the entry for the host's architecture",
                );
                Arches::List(Vec::new())
            }
            (Some(list), None) => {
                Arches::List(self.arch_list("architectures", &list, ArchForm::Scmp))
            }
            (None, Some(map)) => {
                let mut entries = Vec::new();
                for (i, m) in map.into_iter().enumerate() {
                    let at = format!("archMap[{i}]");
                    let Some(main) = m.architecture else {
                        self.error(&at, "missing `architecture`", "e.g. \"SCMP_ARCH_X86_64\"");
                        continue;
                    };
                    let subs = self.arch_list(
                        &format!("{at}.subArchitectures"),
                        &m.sub_architectures.unwrap_or_default(),
                        ArchForm::Scmp,
                    );
                    match ScmpArch::from_str(&main) {
                        Ok(a) if a != ScmpArch::Native => entries.push((a, subs)),
                        _ => self.error(
                            &format!("{at}.architecture"),
                            format!("unknown architecture `{main}`"),
                            "write a libseccomp name such as SCMP_ARCH_X86_64 or SCMP_ARCH_AARCH64",
                        ),
                    }
                }
                Arches::Map(entries)
            }
            (None, None) => Arches::List(Vec::new()),
        };
        for (i, f) in raw.flags.iter().flatten().enumerate() {
            let path = format!("flags[{i}]");
            match f.as_str() {
                FLAG_TSYNC => {}
                "SECCOMP_FILTER_FLAG_LOG"
                | "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
                | "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                | "SECCOMP_FILTER_FLAG_NEW_LISTENER"
                | "SECCOMP_FILTER_FLAG_TSYNC_ESRCH" => self.error(
                    &path,
                    format!("{f} is not supported: bulkhead installs the filter with prctl(PR_SET_SECCOMP), which takes no flags"),
                    "remove it (to log calls, give them SCMP_ACT_LOG)",
                ),
                other => self.error(
                    &path,
                    format!("unknown flag `{other}`"),
                    format!("remove it; the only flag accepted is {FLAG_TSYNC}"),
                ),
            }
        }
        for (field, v) in [
            ("listenerPath", &raw.listener_path),
            ("listenerMetadata", &raw.listener_metadata),
        ] {
            if v.as_deref().is_some_and(|s| !s.is_empty()) {
                self.error(
                    field,
                    "user notification is not supported: bulkhead has no listener",
                    "remove it, and any SCMP_ACT_NOTIFY rules",
                );
            }
        }
        let mut rules = Vec::new();
        for (i, s) in raw.syscalls.into_iter().flatten().enumerate() {
            if let Some(r) = self.rule(i, s) {
                rules.push(r);
            }
        }
        Some(Profile {
            comment: raw.comment.map(RawComment::text),
            default_action: default_action?,
            arches,
            rules,
            ignore_unknown: self.ignore_unknown,
        })
    }
}

#[derive(Clone, Copy)]
enum ArchForm {
    /// `SCMP_ARCH_*` only, as `architectures` and `archMap` are written.
    Scmp,
    /// Any name [`parse_arch`] takes, as `includes.arches` is written.
    Any,
}

/// `2.5.4`, the libseccomp this process runs with.
pub fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "?".into())
}

/// `"5.10"` -> (5, 10).
pub fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn serde_pos(e: &serde_json::Error) -> Pos {
    Pos {
        line: u32::try_from(e.line()).unwrap_or(u32::MAX),
        column: u32::try_from(e.column()).unwrap_or(u32::MAX),
    }
}

/// The suggestion for a serde error: the closest known field for an
/// unknown one (serde lists them: "unknown field `nmaes`, expected one of
/// `names`, `name`, ...").
fn serde_help(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let removal = "bulkhead refuses fields it does not know rather than ignore them";
        return match closest(field, &known) {
            Some(k) => format!("did you mean `{k}`? ({removal})"),
            None => format!(
                "remove `{field}`: {removal}; known here: {}",
                known.join(", ")
            ),
        };
    }
    "see the OCI runtime spec's seccomp section for the profile format".into()
}

/// Parses and checks a profile. `file` names it in errors (a path, or the
/// built-in profile's name). Every problem found is reported.
pub fn parse(text: &str, file: &Path) -> Result<Profile, Diagnostics> {
    let located = |e: &serde_json::Error, message: String| {
        Diagnostic::new(Code::ConfigSeccompProfile, message).at(file, serde_pos(e))
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        return Err(located(&e, "not valid JSON".into())
            .cause(&e)
            .suggest("a profile is a JSON object: {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [...]}")
            .into());
    }
    let index = JsonIndex::new(text);
    let raw: RawProfile = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            // "unknown field `x`, expected one of ... at line 4 column 10":
            // the message keeps the first clause, the cause all of it.
            let inner = e.to_string();
            let inner = inner
                .split(" at line ")
                .next()
                .unwrap_or(&inner)
                .to_string();
            let short = inner.split(", expected").next().unwrap_or(&inner);
            let path = index.path_at(serde_pos(&e));
            let d = match path {
                Some(path) => {
                    Diagnostic::new(Code::ConfigSeccompProfile, format!("{path}: {short}"))
                        .at(file, index.pos(path).unwrap_or(serde_pos(&e)))
                }
                None => located(&e, short.to_string()),
            };
            return Err(d.cause(&e).suggest(serde_help(&inner)).into());
        }
    };
    let mut c = Checker {
        file,
        index,
        diags: Diagnostics::default(),
        ignore_unknown: false,
        suggested: 0,
    };
    let profile = c.profile(raw);
    match profile {
        Some(p) if c.diags.is_empty() => Ok(p),
        _ => Err(c.diags.finish()),
    }
}

/// `net_bind_service` and `CAP_NET_BIND_SERVICE` both name the same capability.
pub fn canonical_capability(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}
