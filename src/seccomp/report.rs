//! What `bulkhead seccomp check PROFILE` prints: what a resolved profile
//! allows, refuses, and leaves out, and how long its program is.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::{Action, MAX_INSNS, ResolvedProfile, arch_name};

const WIDTH: usize = 78;

/// `words` joined by spaces in lines of at most [`WIDTH`], each indented.
fn wrap<'a>(words: impl IntoIterator<Item = &'a str>, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in words {
        if !line.is_empty() && indent.len() + line.len() + 1 + w.len() > WIDTH {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

/// `a, b, c` or `a, b, c, ... (7 more)`.
fn some(names: &[String], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if names.len() > max {
        let _ = write!(s, ", ... ({} more)", names.len() - max);
    }
    s
}

/// The report. `label` names the profile, `caps` and `kernel` are what it
/// was resolved for, `insns` the length of the compiled program.
pub fn render(
    label: &Path,
    r: &ResolvedProfile,
    caps: &[String],
    kernel: (u32, u32),
    insns: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "profile:        {}", label.display());
    if let Some(c) = r.comment.as_deref().filter(|c| !c.trim().is_empty()) {
        let _ = writeln!(out, "about:");
        for l in c.lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    let caps_text = if caps.is_empty() {
        "none".to_string()
    } else {
        caps.join(", ")
    };
    let _ = writeln!(
        out,
        "resolved for:   {}, kernel {}.{}, capabilities: {caps_text}",
        arch_name(r.arch),
        kernel.0,
        kernel.1
    );
    let _ = writeln!(out, "default action: {}", r.default_action);
    let arches: Vec<&str> = r.arches.iter().map(|a| arch_name(*a)).collect();
    let _ = writeln!(
        out,
        "architectures:  {} (a call through any other ABI: KILL_PROCESS)",
        arches.join(", ")
    );
    if matches!(r.default_action, Action::Errno(e) if i32::from(e) != libc::ENOSYS) {
        let above: Vec<String> = r
            .named_max
            .iter()
            .filter(|(a, _)| super::enosys::audit_arch(*a).is_some())
            .map(|(a, m)| format!("{m} on {}", arch_name(*a)))
            .collect();
        if !above.is_empty() {
            let _ = writeln!(
                out,
                "newer calls:    calls above {}: ENOSYS (newer than the profile)",
                above.join(", ")
            );
        }
    }
    let total = r.rules.len() + r.not_applied.len();
    let _ = writeln!(
        out,
        "rules:          {total} in the profile, {} applied, {} not applied",
        r.rules.len(),
        r.not_applied.len()
    );

    let unconditional = |pred: &dyn Fn(Action) -> bool| -> BTreeSet<&str> {
        r.rules
            .iter()
            .filter(|x| x.args.is_empty() && pred(x.action))
            .flat_map(|x| x.names.iter().map(String::as_str))
            .collect()
    };
    let allowed = unconditional(&|a| a == Action::Allow);
    if r.default_action == Action::Allow {
        let _ = writeln!(out, "\nallowed: every system call not listed below");
    } else {
        let _ = writeln!(out, "\nallowed ({}):", allowed.len());
        out += &wrap(allowed.iter().copied(), "  ");
    }

    let mut errnos: Vec<(String, Action)> = Vec::new();
    let mut others: Vec<(String, Action)> = Vec::new();
    for x in r.rules.iter().filter(|x| x.args.is_empty()) {
        for n in &x.names {
            match x.action {
                Action::Allow => {}
                Action::Errno(_) => errnos.push((n.clone(), x.action)),
                _ => others.push((n.clone(), x.action)),
            }
        }
    }
    for (title, list) in [
        ("refused with an errno, as listed", &mut errnos),
        ("other actions", &mut others),
    ] {
        if list.is_empty() {
            continue;
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(out, "\n{title} ({}):", list.len());
        let items: Vec<String> = list.iter().map(|(n, a)| format!("{n}={a}")).collect();
        out += &wrap(items.iter().map(String::as_str), "  ");
    }

    let conditional: Vec<_> = r.rules.iter().filter(|x| !x.args.is_empty()).collect();
    if !conditional.is_empty() {
        let _ = writeln!(out, "\nconditional ({}):", conditional.len());
        for x in conditional {
            let conds: Vec<String> = x.args.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "  {}: {} if {}",
                x.names.join(", "),
                x.action,
                conds.join(" and ")
            );
        }
    }

    if !r.not_applied.is_empty() {
        let _ = writeln!(out, "\nnot applied ({}):", r.not_applied.len());
        for x in &r.not_applied {
            let _ = writeln!(
                out,
                "  syscalls[{}] ({}): {}",
                x.index,
                x.reason,
                some(&x.names, 6)
            );
        }
    }

    if !r.unknown.is_empty() {
        let _ = writeln!(
            out,
            "\nnames libseccomp knows no system call for on this architecture (skipped, {}):",
            r.unknown.len()
        );
        out += &wrap(r.unknown.iter().map(String::as_str), "  ");
    }

    let _ = writeln!(
        out,
        "\nBPF program:    {insns} instructions (the kernel takes {MAX_INSNS})"
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_short() {
        let words: Vec<String> = (0..40).map(|i| format!("name{i}")).collect();
        let text = wrap(words.iter().map(String::as_str), "  ");
        assert!(
            text.lines()
                .all(|l| l.len() <= WIDTH && l.starts_with("  "))
        );
        assert_eq!(text.split_whitespace().count(), 40);
    }

    #[test]
    fn some_counts_the_rest() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(ToString::to_string).collect();
        assert_eq!(some(&names, 2), "a, b, ... (1 more)");
        assert_eq!(some(&names, 3), "a, b, c");
    }
}
