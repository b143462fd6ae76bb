//! Service, template and group names: a safe alphabet and length, clear
//! of bulkhead's own cgroup names and of the kernel's interface files.
//! Checks one name at a time; it must not look at other names (duplicates
//! are the walk's) nor at the host.

use super::limits;

/// A name bulkhead cannot use, and what to use instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    pub message: String,
    pub suggestion: String,
}

/// Directory names inside bulkhead's cgroup subtree that are its own:
/// the daemon's cgroup and `bulkhead exec`'s.
pub const RESERVED_NAMES: &[&str] = &["supervisor", "exec"];

/// The prefixes of the kernel's interface files in a cgroup directory
/// (`cgroup.procs`, `memory.max`, `pids.max`, ...): a child cgroup of
/// such a name would collide with one, now or in a later kernel.
pub const KERNEL_FILE_PREFIXES: &[&str] = &[
    "cgroup.", "memory.", "cpu.", "cpuset.", "io.", "pids.", "hugetlb.", "rdma.", "misc.", "irq.",
];

/// Service, template and group names become cgroup directory names and
/// appear in metrics labels, so they are kept to a safe alphabet, to
/// [`limits::NAME_BYTES`], and clear of bulkhead's own and the kernel's
/// names.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let max = limits::NAME_BYTES.max_usize();
    if name.is_empty() || name.len() > max {
        return Err(BadName {
            message: format!("{name:?} must be 1 to {max} characters"),
            suggestion: format!("use a name of 1 to {max} letters, digits, '_', '-' and '.'"),
        });
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(BadName {
            message: format!(
                "{name:?} may only use letters, digits, '_', '-' and '.', and must start with a letter or digit"
            ),
            suggestion: "rename it, e.g. `web-api` for `web/api`".to_string(),
        });
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(BadName {
            message: format!(
                "{name:?} is reserved for bulkhead's own cgroup (the daemon's, and `bulkhead exec`'s)"
            ),
            suggestion: format!("rename it, e.g. `{name}-app`"),
        });
    }
    if let Some(prefix) = KERNEL_FILE_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(BadName {
            message: format!(
                "{name:?} is shaped like a cgroup interface file ({prefix}*) and would collide with the kernel's"
            ),
            suggestion: format!("rename it, e.g. `{}`", name.replace('.', "-")),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_kernel_shaped_names_are_refused_with_another_name() {
        for (name, instead) in [
            ("exec", "exec-app"),
            ("supervisor", "supervisor-app"),
            ("cgroup.procs", "cgroup-procs"),
            ("cgroup.subtree_control", "cgroup-subtree_control"),
            ("memory.max", "memory-max"),
            ("pids.max", "pids-max"),
            ("irq.pressure", "irq-pressure"),
            ("cpuset.cpus.effective", "cpuset-cpus-effective"),
        ] {
            let e = check_name(name).unwrap_err();
            assert!(
                e.suggestion.contains(&format!("`{instead}`")),
                "{name}: {e:?}"
            );
            assert!(check_name(instead).is_ok(), "{instead}");
        }
        for ok in ["web", "memory", "cgroup", "io-worker", "cpu2.x", "execs"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(limits::NAME_BYTES.max_usize() + 1);
        assert!(check_name(&long).is_err());
        assert!(check_name(&long[1..]).is_ok());
    }
}
