//! A resolved profile into a BPF program, with libseccomp, in the parent.
//!
//! The filter never sets no_new_privs itself (the init does, as a step of
//! its own), and a call made through an ABI the filter does not cover (a
//! 32-bit `int 0x80` on x86_64 when only x86_64 is listed) kills the process.
//! When the default action is an errno other than ENOSYS, the stub of
//! [`super::enosys`] goes in front of libseccomp's program.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use super::{ArgCmp, Insn, Op, ResolvedProfile};
use crate::error::{Code, Diagnostic};

/// The kernel's limit on one filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

fn comparator(a: &ArgCmp) -> ScmpArgCompare {
    let op = match a.op {
        Op::Ne => ScmpCompareOp::NotEqual,
        Op::Lt => ScmpCompareOp::Less,
        Op::Le => ScmpCompareOp::LessOrEqual,
        Op::Eq => ScmpCompareOp::Equal,
        Op::Ge => ScmpCompareOp::GreaterEqual,
        Op::Gt => ScmpCompareOp::Greater,
        // libseccomp: (arg & mask) == datum, mask first.
        Op::MaskedEq => {
            return ScmpArgCompare::new(a.index, ScmpCompareOp::MaskedEqual(a.value), a.value_two);
        }
    };
    ScmpArgCompare::new(a.index, op, a.value)
}

/// Rules libseccomp would merge into something other than what they say:
/// an unconditional rule for a call wins over every other rule for it (the
/// first unconditional one over later ones), so another rule for the same
/// call with a different action would be dropped without a word.
pub fn conflicts(p: &ResolvedProfile) -> Vec<Diagnostic> {
    // name -> (rule index, action, conditional?)
    let mut by_name: BTreeMap<&str, Vec<(usize, super::Action, bool)>> = BTreeMap::new();
    for r in &p.rules {
        for n in &r.names {
            by_name
                .entry(n.as_str())
                .or_default()
                .push((r.index, r.action, !r.args.is_empty()));
        }
    }
    let mut out = Vec::new();
    for (name, rules) in by_name {
        let Some(&(ui, ua, _)) = rules.iter().find(|(_, _, cond)| !cond) else {
            continue;
        };
        if let Some(&(oi, oa, ocond)) = rules.iter().find(|(_, a, _)| *a != ua) {
            let what = if ocond {
                "under conditions"
            } else {
                "unconditionally"
            };
            out.push(
                Diagnostic::new(
                    Code::ConfigSeccompProfile,
                    format!(
                        "syscalls[{oi}]: `{name}` gets {oa} {what}, but syscalls[{ui}] gives it {ua} unconditionally"
                    ),
                )
                .cause("libseccomp keeps the unconditional rule and drops the other one")
                .suggest(format!(
                    "decide what `{name}` should get: remove it from one of the two rules, or give both conditions"
                )),
            );
        }
    }
    out
}

fn seccomp_error(what: String, e: &libseccomp::error::SeccompError) -> Diagnostic {
    Diagnostic::new(Code::ConfigSeccompProfile, what)
        .cause(e)
        .suggest("check the profile with `bulkhead seccomp check PROFILE`")
}

/// The BPF program for `p`, for this host (rules are added by native system
/// call number, and libseccomp translates them for the other architectures
/// listed).
pub fn compile(p: &ResolvedProfile) -> Result<Vec<Insn>, Diagnostic> {
    if let Some(d) = conflicts(p).into_iter().next() {
        return Err(d);
    }
    let native = libseccomp::ScmpArch::native();
    if p.arch != native {
        return Err(Diagnostic::new(
            Code::ConfigSeccompProfile,
            format!(
                "the profile was resolved for {}, but this host is {}",
                super::arch_name(p.arch),
                super::arch_name(native)
            ),
        )
        .suggest("compile a profile on the host that runs it"));
    }
    let fail = |what: &str| {
        let what = what.to_string();
        move |e: libseccomp::error::SeccompError| seccomp_error(what.clone(), &e)
    };
    let mut ctx = ScmpFilterContext::new(p.default_action.to_scmp())
        .map_err(fail("libseccomp cannot create a filter"))?;
    ctx.set_ctl_nnp(false)
        .map_err(fail("libseccomp cannot leave no_new_privs to the init"))?;
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(fail(
        "libseccomp cannot set the action for other architectures",
    ))?;
    for &a in &p.arches {
        if !ctx.is_arch_present(a).unwrap_or(false) {
            ctx.add_arch(a).map_err(fail(&format!(
                "libseccomp cannot add architecture {}",
                super::arch_name(a)
            )))?;
        }
    }
    for r in &p.rules {
        let cmps: Vec<ScmpArgCompare> = r.args.iter().map(comparator).collect();
        for n in &r.names {
            let what = format!(
                "syscalls[{}]: libseccomp refused the rule for `{n}`",
                r.index
            );
            let nr = ScmpSyscall::from_name(n).map_err(fail(&what))?;
            ctx.add_rule_conditional(r.action.to_scmp(), nr, &cmps)
                .map_err(fail(&what))?;
        }
    }
    let prog = export(&ctx)?;
    let stub = match p.default_action {
        super::Action::Errno(e) if i32::from(e) != libc::ENOSYS => {
            super::enosys::stub(&p.named_max)
        }
        _ => Vec::new(),
    };
    if stub.len() + prog.len() > MAX_INSNS {
        return Err(too_long(stub.len() + prog.len()));
    }
    Ok(stub.into_iter().chain(prog).collect())
}

fn too_long(n: usize) -> Diagnostic {
    Diagnostic::new(
        Code::ConfigSeccompProfile,
        format!("the filter is {n} instructions long; the kernel takes at most {MAX_INSNS}"),
    )
    .suggest("merge rules, or list fewer system calls with conditions")
}

/// The program, read back from a memfd and split into instructions.
pub(super) fn export(ctx: &ScmpFilterContext) -> Result<Vec<Insn>, Diagnostic> {
    let io = |e: std::io::Error| {
        Diagnostic::new(
            Code::ConfigSeccompProfile,
            "cannot read the compiled filter back",
        )
        .cause(e)
        .suggest("this is a bug: report it with the profile")
    };
    let fd = rustix::fs::memfd_create("bulkhead-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| io(e.into()))?;
    ctx.export_bpf(&fd)
        .map_err(|e| seccomp_error("libseccomp cannot export the filter".into(), &e))?;
    let mut f = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    f.rewind()
        .and_then(|()| f.read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.is_empty() || bytes.len() % 8 != 0 {
        return Err(io(std::io::Error::other(format!(
            "{} bytes is not a whole number of 8-byte instructions",
            bytes.len()
        ))));
    }
    let n = bytes.len() / 8;
    if n > MAX_INSNS {
        return Err(too_long(n));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            (
                u16::from_ne_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect())
}
