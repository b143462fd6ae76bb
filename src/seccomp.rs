//! seccomp filters from OCI/Docker JSON profiles.
//!
//! Four steps, each its own function:
//! 1. [`parse`]: the JSON into a checked [`Profile`]; any field, action,
//!    operator, architecture, capability, flag or system call name bulkhead
//!    does not know is an error at its JSON path and line:column, never
//!    dropped. A name is known when libseccomp has it on any architecture;
//!    `keyctll` is an error with "did you mean `keyctl`?".
//! 2. [`resolve`] (pure): the rules that apply to a service, given its
//!    capabilities, the architecture and the kernel version, as Docker
//!    resolves `includes` (all conditions hold) and `excludes` (any holds).
//!    Names the filter's architectures have no such system call for
//!    (`socketcall` on x86_64) are set aside and counted, as Docker skips
//!    them.
//! 3. [`compile`]: libseccomp turns the rules into a BPF program, in the
//!    parent, once; [`build_with`] first merges the walls of an [`Extra`]
//!    (address families, real-time, clock, personality, setuid files; see
//!    [`extra`]).
//!    When the default action is an errno, calls numbered above the highest
//!    call the profile names get ENOSYS, so the C library falls back to an
//!    older call as on an older kernel ([`enosys`] has a worked example).
//! 4. The service (and an exec probe's command) installs it as the last
//!    step before exec ([`install`]).
//!
//! Built-in profiles live in `seccomp-profiles/*.json`, embedded here.
//!
//! bulkhead's one extension to the format: a top-level `"ignore_unknown":
//! true` sets aside (and counts) names libseccomp knows on no
//! architecture, for a profile written for a newer libseccomp. runc and
//! Docker ignore the key. The built-in `default` sets it for `mseal`,
//! which libseccomp 2.5 does not know.
//!
//! The built-in profiles refuse the ioctls TIOCSTI and TIOCLINUX, which
//! type into a terminal (a way out through a tty shared with a shell).
//! `strict` allows only a few other requests by value. `default` allows
//! every other request with 34 `SCMP_CMP_MASKED_EQ` rules on the low 32
//! bits of the request (the kernel reads it as an unsigned int, so a
//! request of 0x1_0000_5412 is TIOCSTI): one per aligned block of the
//! 2^32 - 2 values left, so TIOCSTI and TIOCLINUX fall to the default,
//! EPERM. An unconditional allow beside a conditional refusal would
//! conflict (below), and comparisons of all 64 bits would both miss
//! 0x1_0000_5412 and refuse the sign-extended requests musl passes.
//!
//! Where the formats leave it open, bulkhead decides:
//! - `errnoRet` absent on an ERRNO rule means EPERM (as runc);
//!   `defaultErrnoRet` is for the default action only, and an errno given
//!   with any other action is an error.
//! - SCMP_ACT_KILL is KILL_THREAD; TRACE and NOTIFY (and `listenerPath`,
//!   `listenerMetadata`) are refused: there is no tracer or listener.
//! - `flags`: only SECCOMP_FILTER_FLAG_TSYNC, a no-op for a filter installed
//!   while single-threaded; the others cannot go through prctl and are errors.
//! - Two comparisons of one argument in one rule are an error (runc turns
//!   them into an OR, which would widen an allow rule).
//! - A rule whose action is the default action does nothing (libseccomp
//!   refuses it) and is listed as not applied.
//! - An unconditional rule and another rule for the same call with a
//!   different action are an error: libseccomp would keep only the first.
//! - A call through an ABI the filter does not cover kills the process.

pub mod cache;
mod compile;
pub mod enosys;
pub mod extra;
pub mod install;
pub mod locate;
pub mod own;
mod profile;
pub mod report;

use std::path::{Path, PathBuf};

use libseccomp::ScmpArch;
use serde::Serialize;

pub use compile::{MAX_INSNS, compile, conflicts};
pub use extra::Extra;
pub use profile::canonical_capability;
pub use profile::{
    ACTIONS, Action, Arches, ArgCmp, Cond, OPS, Op, Profile, Rule, arch_name, closest_syscall,
    errno_name, is_syscall_anywhere, libseccomp_version, parse, parse_arch, parse_kernel,
};

use crate::error::{Code, Diagnostic, Diagnostics};

/// Which seccomp filter a service gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    Unconfined,
    /// A profile shipped with bulkhead (`default`, `strict`).
    Builtin(String),
    /// An OCI/Docker JSON profile on disk, absolute.
    File(PathBuf),
}

/// The built-in seccomp profile names.
pub const BUILTIN_PROFILES: &[&str] = &["default", "strict"];

/// One BPF instruction: (code, jt, jf, k), as `struct sock_filter`.
pub type Insn = (u16, u8, u8, u32);

/// The built-in profiles, by name.
const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../seccomp-profiles/default.json")),
    ("strict", include_str!("../seccomp-profiles/strict.json")),
];

/// The text of a built-in profile.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// How a built-in profile is named in messages.
pub fn builtin_label(name: &str) -> PathBuf {
    PathBuf::from(format!("seccomp-profiles/{name}.json (built in)"))
}

/// A profile as named on the command line: `unconfined`, a built-in name,
/// or a path (a name that is neither and has no `/` and no `.json` is taken
/// for a misspelt built-in).
pub fn named(arg: &str) -> Result<Seccomp, Diagnostic> {
    if arg == "unconfined" {
        return Ok(Seccomp::Unconfined);
    }
    if builtin(arg).is_some() {
        return Ok(Seccomp::Builtin(arg.to_string()));
    }
    if arg.contains('/') || arg.ends_with(".json") || Path::new(arg).exists() {
        return Ok(Seccomp::File(PathBuf::from(arg)));
    }
    let mut names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    names.push("unconfined");
    Err(Diagnostic::new(
        Code::ConfigSeccompProfile,
        format!("no built-in seccomp profile named `{arg}`"),
    )
    .suggest(match crate::error::closest(arg, &names) {
        Some(b) => format!("did you mean `{b}`? A file needs a path, e.g. ./{arg}.json"),
        None => format!(
            "use {} or a path to an OCI/Docker JSON profile",
            names.join(", ")
        ),
    }))
}

/// A rule that applies, with only the names this architecture has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    /// Its index in the profile's `syscalls`.
    pub index: usize,
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<ArgCmp>,
}

/// A rule left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    pub index: usize,
    pub names: Vec<String>,
    pub reason: String,
}

/// A profile resolved for one service on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProfile {
    pub comment: Option<String>,
    pub default_action: Action,
    /// The architecture the filter is for (the host's).
    pub arch: ScmpArch,
    /// Every architecture the filter covers, `arch` first; a call made
    /// through any other ABI kills the process.
    pub arches: Vec<ScmpArch>,
    pub rules: Vec<ResolvedRule>,
    pub not_applied: Vec<NotApplied>,
    /// Names none of `arches` has (`_llseek` on x86_64): skipped, sorted.
    pub unknown: Vec<String>,
    /// The highest number the profile names on each of `arches` (every
    /// rule, applied or not): calls above it get ENOSYS when the default
    /// action is an errno (see [`enosys`]).
    pub named_max: Vec<(ScmpArch, u32)>,
}

/// Does libseccomp know `name` as a real system call on `arch`? (Names of
/// other architectures' calls resolve to negative pseudo-numbers.)
fn exists_on(name: &str, arch: ScmpArch) -> bool {
    libseccomp::ScmpSyscall::from_name_by_arch(name, arch).is_ok_and(|s| s.as_raw_syscall() >= 0)
}

/// Why a rule does not apply, or `None` when it does. Docker's semantics:
/// `excludes` drops the rule when any of its conditions holds (the arch is
/// listed, the service has one of the caps, the kernel is at least
/// minKernel); `includes` keeps it only when all hold (the arch is listed,
/// the service has every cap, the kernel is at least minKernel).
fn skip_reason(rule: &Rule, caps: &[String], arch: ScmpArch, kernel: (u32, u32)) -> Option<String> {
    let has = |c: &String| caps.contains(c);
    let ex = &rule.excludes;
    if ex.arches.contains(&arch) {
        return Some(format!("excluded on {}", arch_name(arch)));
    }
    if let Some(c) = ex.caps.iter().find(|c| has(c)) {
        return Some(format!("excluded with {c}"));
    }
    if let Some(k) = ex.min_kernel.filter(|k| kernel >= *k) {
        return Some(format!("excluded from kernel {}.{}", k.0, k.1));
    }
    let inc = &rule.includes;
    if !inc.arches.is_empty() && !inc.arches.contains(&arch) {
        let list: Vec<&str> = inc.arches.iter().map(|a| arch_name(*a)).collect();
        return Some(format!("only on {}", list.join(", ")));
    }
    let missing: Vec<&str> = inc
        .caps
        .iter()
        .filter(|c| !has(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(format!("needs {}", missing.join(" and ")));
    }
    if let Some(k) = inc.min_kernel.filter(|k| kernel < *k) {
        return Some(format!("needs kernel {}.{}", k.0, k.1));
    }
    None
}

/// The rules of `profile` that apply to a service with capabilities `caps`
/// (canonical names) on `arch` with kernel (major, minor) `kernel`.
pub fn resolve(
    profile: &Profile,
    caps: &[String],
    arch: ScmpArch,
    kernel: (u32, u32),
) -> ResolvedProfile {
    let mut arches = vec![arch];
    let extra: Vec<ScmpArch> = match &profile.arches {
        Arches::List(list) => list.clone(),
        Arches::Map(map) => map
            .iter()
            .filter(|(main, _)| *main == arch)
            .flat_map(|(main, subs)| std::iter::once(*main).chain(subs.iter().copied()))
            .collect(),
    };
    for a in extra {
        if !arches.contains(&a) {
            arches.push(a);
        }
    }
    let mut rules = Vec::new();
    let mut not_applied = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for rule in &profile.rules {
        let reason = if rule.action == profile.default_action {
            Some(format!("{} is the default action", rule.action))
        } else {
            skip_reason(rule, caps, arch, kernel)
        };
        if let Some(reason) = reason {
            not_applied.push(NotApplied {
                index: rule.index,
                names: rule.names.clone(),
                reason,
            });
            continue;
        }
        let (known, missing): (Vec<String>, Vec<String>) = rule
            .names
            .iter()
            .cloned()
            .partition(|n| arches.iter().any(|a| exists_on(n, *a)));
        unknown.extend(missing);
        if !known.is_empty() {
            rules.push(ResolvedRule {
                index: rule.index,
                names: known,
                action: rule.action,
                args: rule.args.clone(),
            });
        }
    }
    unknown.sort();
    unknown.dedup();
    let named_max = arches
        .iter()
        .filter_map(|a| {
            profile
                .rules
                .iter()
                .flat_map(|r| &r.names)
                .filter_map(|n| libseccomp::ScmpSyscall::from_name_by_arch(n, *a).ok())
                .filter_map(|s| u32::try_from(s.as_raw_syscall()).ok())
                .max()
                .map(|m| (*a, m))
        })
        .collect();
    ResolvedProfile {
        comment: profile.comment.clone(),
        default_action: profile.default_action,
        arch,
        arches,
        rules,
        not_applied,
        unknown,
        named_max,
    }
}

/// The machine a filter is resolved for: its native architecture and its
/// kernel's (major, minor), which `minKernel` conditions compare against.
/// Validation gets it from its host description, so a described host
/// (tests) decides what a profile resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub arch: ScmpArch,
    pub kernel: (u32, u32),
}

impl Target {
    /// This machine.
    pub fn native() -> Target {
        Target {
            arch: ScmpArch::native(),
            kernel: host_kernel(),
        }
    }
}

/// The running kernel's (major, minor); (0, 0) when it cannot be read, so
/// no `minKernel` condition holds.
pub fn host_kernel() -> (u32, u32) {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return (0, 0);
    };
    let release = uts.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    }
}

/// The text of a profile and the name it goes by in messages; `None` for
/// unconfined.
pub fn source(choice: &Seccomp) -> Result<Option<(PathBuf, String)>, Diagnostic> {
    match choice {
        Seccomp::Unconfined => Ok(None),
        Seccomp::Builtin(name) => builtin(name)
            .map(|t| Some((builtin_label(name), t.to_string())))
            .ok_or_else(|| {
                Diagnostic::new(
                    Code::ConfigSeccompProfile,
                    format!("no built-in seccomp profile named `{name}`"),
                )
                .suggest("use default, strict, unconfined or a path to an OCI/Docker JSON profile")
            }),
        // A profile is read as a config is: a regular file, at most
        // `included_file_bytes` whatever stat says.
        Seccomp::File(path) => {
            crate::input::read_text(path, &crate::input::INCLUDED_FILE_BYTES)
                .map(|t| Some((path.clone(), t)))
                .map_err(|e| match e.too_large(format_args!("seccomp profile {}", path.display())) {
                    Some(d) => d.in_file(path).suggest(
                        "an OCI/Docker seccomp profile is normally tens of KiB; check that this is the right file",
                    ),
                    None => read_error(path, &e.into_io()),
                })
        }
    }
}

/// "cannot read" for a profile file.
pub fn read_error(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(
        Code::ConfigSeccompProfile,
        format!("cannot read seccomp profile {}", path.display()),
    )
    .in_file(path)
    .cause(e)
    .suggest("give a readable OCI/Docker JSON profile, or default, strict or unconfined")
}

/// Parses, resolves and compiles a profile for a service with `caps` on
/// this host.
pub fn build(
    text: &str,
    label: &Path,
    caps: &[String],
) -> Result<(ResolvedProfile, Vec<Insn>), Diagnostics> {
    build_for(text, label, caps, Target::native())
}

/// [`build`] for `target` (validation passes its host's).
pub fn build_for(
    text: &str,
    label: &Path,
    caps: &[String],
    target: Target,
) -> Result<(ResolvedProfile, Vec<Insn>), Diagnostics> {
    build_in(text, label, caps, &Extra::default(), target)
}

/// [`build`], with the walls of `extra` merged into the resolved profile
/// (see [`extra`]). The profile's own rules are checked for conflicts
/// before the merge, so a conflict the merge would hide is still reported.
pub fn build_with(
    text: &str,
    label: &Path,
    caps: &[String],
    extra: &Extra,
) -> Result<(ResolvedProfile, Vec<Insn>), Diagnostics> {
    build_in(text, label, caps, extra, Target::native())
}

fn build_in(
    text: &str,
    label: &Path,
    caps: &[String],
    extra: &Extra,
    target: Target,
) -> Result<(ResolvedProfile, Vec<Insn>), Diagnostics> {
    let profile = parse(text, label)?;
    let resolved = resolve(&profile, caps, target.arch, target.kernel);
    if let Some(d) = conflicts(&resolved).into_iter().next() {
        return Err(d.in_file(label).into());
    }
    let resolved = extra::apply(&resolved, extra);
    let program = compile(&resolved).map_err(|d| Diagnostics::from(d.in_file(label)))?;
    Ok((resolved, program))
}

/// The program for a service with capabilities `caps` (canonical names):
/// empty when unconfined.
pub fn load(choice: &Seccomp, caps: &[String]) -> Result<Vec<Insn>, Diagnostics> {
    load_with(choice, caps, &Extra::default())
}

/// [`load`] with the walls of `extra` (none when unconfined).
pub fn load_with(
    choice: &Seccomp,
    caps: &[String],
    extra: &Extra,
) -> Result<Vec<Insn>, Diagnostics> {
    match source(choice)? {
        None => Ok(Vec::new()),
        Some((label, text)) => build_with(&text, &label, caps, extra).map(|(_, p)| p),
    }
}

/// [`load`], through the compiled-program cache in `cache_dir`.
pub fn load_cached(
    choice: &Seccomp,
    caps: &[String],
    cache_dir: &Path,
) -> Result<Vec<Insn>, Diagnostics> {
    load_cached_with(choice, caps, &Extra::default(), cache_dir)
}

/// [`load_with`], through the compiled-program cache in `cache_dir` (the
/// walls are part of the key). What the daemon calls for a service:
/// `load_cached_with(&svc.security.seccomp, &svc.security.capabilities,
/// &extra, &state_dir.join("seccomp-cache"))`.
pub fn load_cached_with(
    choice: &Seccomp,
    caps: &[String],
    extra: &Extra,
    cache_dir: &Path,
) -> Result<Vec<Insn>, Diagnostics> {
    let Some((label, text)) = source(choice)? else {
        return Ok(Vec::new());
    };
    let entry = cache::entry(cache_dir, &text, caps, extra, host_kernel());
    if let Some(prog) = cache::get(&entry) {
        return Ok(prog);
    }
    let (_, prog) = build_with(&text, &label, caps, extra)?;
    cache::put(&entry, &prog);
    Ok(prog)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
