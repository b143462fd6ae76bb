//! User-facing errors: a code, a message, where, context, the cause and what to do.
//!
//! Every error a person sees from bulkhead is a [`Diagnostic`]. Library modules
//! build them from their own failures; the binary renders them, several at once
//! when there are several (a config file with three mistakes reports three).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Stable machine-readable error codes. They appear in logs, the CLI and the
/// API, so renaming one is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// The config file does not exist or cannot be read.
    ConfigRead,
    /// The config file is larger than bulkhead accepts.
    ConfigTooLarge,
    /// The file is not valid YAML.
    ConfigSyntax,
    /// The YAML exceeds a safety limit (alias expansion, nesting, events).
    ConfigLimit,
    /// A key that bulkhead does not know.
    ConfigUnknownKey,
    /// The same key twice in one mapping.
    ConfigDuplicateKey,
    /// A value of the wrong kind (a list where a mapping belongs, ...).
    ConfigType,
    /// A value of the right kind that cannot be used (bad size, bad cpuset, ...).
    ConfigInvalidValue,
    /// A required key is missing.
    ConfigMissingKey,
    /// Two values that contradict each other (`memory.high` above `memory.max`, ...).
    ConfigConflict,
    /// A capability name that does not exist.
    ConfigUnknownCapability,
    /// A seccomp profile that is missing or does not parse.
    ConfigSeccompProfile,
    /// `depends_on` or `group` names something that is not defined.
    ConfigUnknownReference,
    /// `depends_on` forms a cycle.
    ConfigDependencyCycle,
    /// The service command does not exist or cannot be executed.
    ConfigCommand,
    /// A user or group that does not exist on this host.
    ConfigUnknownAccount,
    /// A path that must exist on this host does not.
    ConfigPath,
    /// A host preflight check failed.
    CheckFailed,
    /// No cgroup v2 hierarchy is mounted.
    CgroupV2Missing,
    /// A cgroup v2 controller bulkhead needs is not available.
    CgroupControllerMissing,
    /// A cgroup filesystem operation failed.
    CgroupIo,
    /// A setup step of the isolated spawn failed (step and errno in context).
    SpawnFailed,
    /// The restart circuit breaker is open: too many failures in its window.
    CircuitOpen,
    /// A watch rule fired (OOM kill, pids.max, pressure, throttling, fds).
    WatchViolation,
    /// A health check failed `failures` times in a row.
    HealthCheckFailed,
    /// No daemon listens on the control socket (ENOENT, ECONNREFUSED).
    DaemonNotRunning,
    /// The daemon is stopping and no longer takes requests.
    DaemonShuttingDown,
    /// The control socket refused the caller: only root (or the daemon's
    /// own user) may use it, and never from inside bulkhead's cgroup
    /// subtree (a service or `bulkhead exec`), whatever the uid.
    ControlDenied,
    /// The control socket cannot be created (another daemon owns it, a bad
    /// path) or the exchange on it failed (a timeout, a malformed reply).
    ControlSocket,
    /// The daemon refused a request for a reason without a code of its own
    /// (an unknown endpoint, a malformed request); its own codes pass through.
    ApiError,
    /// A service's log file cannot be read.
    LogRead,
    /// Another daemon holds the state dir's lock.
    DaemonRunning,
    /// A launch was refused: every start slot busy and the queue full.
    LaunchRejected,
    /// A launch waited `queue_timeout` in the admission queue.
    LaunchTimeout,
    /// A launch's namespace or session id is missing or not acceptable.
    LaunchInvalidKey,
    /// A template has `max_instances` instances already.
    LaunchLimit,
    /// The launched instance did not come up (spawn failed, exited, circuit
    /// open, terminated while starting).
    LaunchFailed,
    /// A launch or terminate named a service that is not a template.
    NotATemplate,
    /// No instance of that name.
    UnknownInstance,
    /// The metrics endpoint cannot listen on `supervisor.metrics_listen`
    /// (the port is taken, the address is not this host's).
    MetricsListen,
    /// No dynamic user could be allocated (the range is full, the registry
    /// in the state dir cannot be written).
    DynamicUser,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ConfigRead => "CONFIG_READ",
            Code::ConfigTooLarge => "CONFIG_TOO_LARGE",
            Code::ConfigSyntax => "CONFIG_SYNTAX",
            Code::ConfigLimit => "CONFIG_LIMIT",
            Code::ConfigUnknownKey => "CONFIG_UNKNOWN_KEY",
            Code::ConfigDuplicateKey => "CONFIG_DUPLICATE_KEY",
            Code::ConfigType => "CONFIG_TYPE",
            Code::ConfigInvalidValue => "CONFIG_INVALID_VALUE",
            Code::ConfigMissingKey => "CONFIG_MISSING_KEY",
            Code::ConfigConflict => "CONFIG_CONFLICT",
            Code::ConfigUnknownCapability => "CONFIG_UNKNOWN_CAPABILITY",
            Code::ConfigSeccompProfile => "CONFIG_SECCOMP_PROFILE",
            Code::ConfigUnknownReference => "CONFIG_UNKNOWN_REFERENCE",
            Code::ConfigDependencyCycle => "CONFIG_DEPENDENCY_CYCLE",
            Code::ConfigCommand => "CONFIG_COMMAND",
            Code::ConfigUnknownAccount => "CONFIG_UNKNOWN_ACCOUNT",
            Code::ConfigPath => "CONFIG_PATH",
            Code::CheckFailed => "CHECK_FAILED",
            Code::CgroupV2Missing => "CGROUP_V2_MISSING",
            Code::CgroupControllerMissing => "CGROUP_CONTROLLER_MISSING",
            Code::CgroupIo => "CGROUP_IO",
            Code::SpawnFailed => "SPAWN_FAILED",
            Code::CircuitOpen => "CIRCUIT_OPEN",
            Code::WatchViolation => "WATCH_VIOLATION",
            Code::HealthCheckFailed => "HEALTH_CHECK_FAILED",
            Code::DaemonNotRunning => "DAEMON_NOT_RUNNING",
            Code::DaemonShuttingDown => "DAEMON_SHUTTING_DOWN",
            Code::ControlDenied => "CONTROL_DENIED",
            Code::ControlSocket => "CONTROL_SOCKET",
            Code::ApiError => "API_ERROR",
            Code::LogRead => "LOG_READ",
            Code::DaemonRunning => "DAEMON_RUNNING",
            Code::LaunchRejected => "LAUNCH_REJECTED",
            Code::LaunchTimeout => "LAUNCH_TIMEOUT",
            Code::LaunchInvalidKey => "LAUNCH_INVALID_KEY",
            Code::LaunchLimit => "LAUNCH_LIMIT",
            Code::LaunchFailed => "LAUNCH_FAILED",
            Code::NotATemplate => "NOT_A_TEMPLATE",
            Code::UnknownInstance => "UNKNOWN_INSTANCE",
            Code::MetricsListen => "METRICS_LISTEN",
            Code::DynamicUser => "DYNAMIC_USER",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position in a source file, 1-based as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, column: 0 };

    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

/// One user-facing error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// The file the error is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Where in `file`; `None` when the error is about the file as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<Pos>,
    /// `key=value` facts that locate the error (service, path, value found).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<(String, String)>,
    /// The underlying failure (an OS error, a parser message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What the user can do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            file: None,
            pos: None,
            context: Vec::new(),
            cause: None,
            suggestion: None,
        }
    }

    pub fn at(mut self, file: &Path, pos: Pos) -> Self {
        self.file = Some(file.to_path_buf());
        self.pos = pos.is_known().then_some(pos);
        self
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    pub fn context(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.context.push((key.to_string(), value.to_string()));
        self
    }

    pub fn cause(mut self, cause: impl fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    /// Renders the error for a terminal. With `source`, the offending line is
    /// shown under the location with a caret at the column:
    ///
    /// ```text
    /// error[CONFIG_UNKNOWN_KEY]: unknown key `memroy` in services.web.resources
    ///   --> bulkhead.yaml:12:7
    ///    |
    /// 12 |       memroy: 64M
    ///    |       ^
    ///    = help: did you mean `memory`?
    /// ```
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = format!("error[{}]: {}\n", self.code, self.message);
        if let Some(file) = &self.file {
            match self.pos {
                Some(p) => out += &format!("  --> {}:{}:{}\n", file.display(), p.line, p.column),
                None => out += &format!("  --> {}\n", file.display()),
            }
        }
        if let (Some(src), Some(p)) = (source, self.pos)
            && let Some(line) = src.lines().nth(p.line.saturating_sub(1) as usize)
        {
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            let caret = " ".repeat(p.column.saturating_sub(1) as usize);
            out += &format!("{pad} |\n{num} | {line}\n{pad} | {caret}^\n");
        }
        if !self.context.is_empty() {
            let ctx: Vec<String> = self
                .context
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out += &format!("   = context: {}\n", ctx.join(" "));
        }
        if let Some(cause) = &self.cause {
            out += &format!("   = cause: {cause}\n");
        }
        if let Some(s) = &self.suggestion {
            out += &format!("   = help: {s}\n");
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render(None).trim_end())
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics reported together, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// One runtime error with its cause and what to do about it.
    pub fn failure(
        code: Code,
        msg: impl Into<String>,
        cause: impl fmt::Display,
        suggestion: &str,
    ) -> Self {
        Diagnostic::new(code, msg)
            .cause(cause)
            .suggest(suggestion)
            .into()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sorts by position (errors without one last) and drops exact repeats,
    /// which arise when a shared `defaults` value is checked for every service.
    pub fn finish(mut self) -> Self {
        self.0
            .sort_by_key(|d| (d.pos.is_none(), d.pos, d.code.as_str()));
        self.0.dedup();
        self
    }

    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = String::new();
        for d in &self.0 {
            out += &d.render(source);
            out.push('\n');
        }
        let n = self.0.len();
        out += &format!("{n} error{}\n", if n == 1 { "" } else { "s" });
        out
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render(None).trim_end())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_snippet_and_caret() {
        let d = Diagnostic::new(Code::ConfigUnknownKey, "unknown key `memroy`")
            .at(Path::new("b.yaml"), Pos { line: 2, column: 3 })
            .context("service", "web")
            .cause("not in the schema")
            .suggest("did you mean `memory`?");
        let text = d.render(Some("a:\n  memroy: 1\n"));
        assert_eq!(
            text,
            "error[CONFIG_UNKNOWN_KEY]: unknown key `memroy`\n  --> b.yaml:2:3\n  |\n2 |   memroy: 1\n  |   ^\n   = context: service=web\n   = cause: not in the schema\n   = help: did you mean `memory`?\n"
        );
    }

    #[test]
    fn control_codes_serialize_as_they_print() {
        for code in [
            Code::DaemonNotRunning,
            Code::DaemonShuttingDown,
            Code::ControlDenied,
            Code::ControlSocket,
            Code::ApiError,
            Code::LogRead,
            Code::MetricsListen,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn finish_sorts_and_dedups() {
        let a =
            Diagnostic::new(Code::ConfigType, "a").at(Path::new("f"), Pos { line: 3, column: 1 });
        let b =
            Diagnostic::new(Code::ConfigType, "b").at(Path::new("f"), Pos { line: 1, column: 1 });
        let c = Diagnostic::new(Code::ConfigRead, "c");
        let ds = Diagnostics(vec![c.clone(), a.clone(), b.clone(), a.clone()]).finish();
        assert_eq!(ds.0, vec![b, a, c]);
    }
}
