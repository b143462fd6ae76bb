//! How a process ended: its exit code or the signal that killed it, as the
//! init records it and every layer above reports it. A leaf: it imports
//! nothing from the crate.

use serde::{Deserialize, Serialize};

/// How the service ended, as the init records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitRecord {
    Exited { code: i32 },
    Signaled { signal: i32, core_dumped: bool },
}

impl ExitRecord {
    /// The status a shell would report: the code, or 128 + signal.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitRecord::Exited { code } => code,
            ExitRecord::Signaled { signal, .. } => 128 + signal,
        }
    }
}

/// `exited with status 1`, `killed by SIGSEGV (core dumped)`.
pub fn describe_exit(rec: ExitRecord) -> String {
    match rec {
        ExitRecord::Exited { code } => format!("exited with status {code}"),
        ExitRecord::Signaled {
            signal,
            core_dumped,
        } => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned());
            let core = if core_dumped { " (core dumped)" } else { "" };
            format!("killed by {name}{core}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_status() {
        assert_eq!(ExitRecord::Exited { code: 3 }.shell_status(), 3);
        assert_eq!(
            ExitRecord::Signaled {
                signal: 9,
                core_dumped: false
            }
            .shell_status(),
            137
        );
    }

    #[test]
    fn describes_codes_and_signals() {
        assert_eq!(
            describe_exit(ExitRecord::Exited { code: 1 }),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(ExitRecord::Signaled {
                signal: 11,
                core_dumped: true
            }),
            "killed by SIGSEGV (core dumped)"
        );
    }
}
