//! User-facing errors: a code, a message, where, context, the cause and what to do.
//!
//! Every error a person sees from bulkhead is a [`Diagnostic`]. Library modules
//! build them from their own failures; the binary renders them, several at once
//! when there are several (a config file with three mistakes reports three).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
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
    /// The command line is not valid: an unknown flag, a missing or
    /// malformed value (`--pids -1`), a missing argument.
    Usage,
    /// `--wait` ran out of time before the service was ready (or stopped).
    WaitTimeout,
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
            Code::Usage => "USAGE",
            Code::WaitTimeout => "WAIT_TIMEOUT",
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
    /// The source line at `pos`, cut to a window, attached where the text
    /// was parsed ([`Diagnostics::attach_snippets`]) so that printing the
    /// error never reads the file again.
    #[serde(skip)]
    pub snippet: Option<Snippet>,
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
            snippet: None,
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
    /// shown under the location with a caret at the column (a snippet
    /// attached to the error wins over `source`):
    ///
    /// ```text
    /// error[CONFIG_UNKNOWN_KEY]: unknown key `memroy` in services.web.resources
    ///   --> bulkhead.yaml:12:7
    ///    |
    /// 12 |       memroy: 64M
    ///    |       ^
    ///    = help: did you mean `memory`?
    /// ```
    ///
    /// The output is bounded: the line is cut to a window around the column
    /// ([`Snippet::window`]) and every field to [`FIELD_BYTES`].
    pub fn render(&self, source: Option<&str>) -> String {
        let line = match (&self.snippet, source, self.pos) {
            (None, Some(src), Some(p)) => src
                .lines()
                .nth(usize::try_from(p.line.saturating_sub(1)).unwrap_or(usize::MAX))
                .map(|l| Snippet::window(l, p.column)),
            _ => None,
        };
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut out, line.as_ref());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Writes the error as [`Diagnostic::render`] shows it, with `snippet`
    /// when the error has none of its own.
    pub fn write_to(&self, w: &mut dyn Write, snippet: Option<&Snippet>) -> io::Result<()> {
        // A message may quote what a hostile file wrote (a key, a value): on
        // a terminal its control characters are shown, not obeyed.
        fn clip(s: &str, max: usize) -> Cow<'_, str> {
            printable(self::clip(s, max))
        }
        writeln!(
            w,
            "error[{}]: {}",
            self.code,
            clip(&self.message, FIELD_BYTES)
        )?;
        if let Some(file) = &self.file {
            let file = file.display().to_string();
            let file = clip(&file, FIELD_BYTES);
            match self.pos {
                Some(p) => writeln!(w, "  --> {file}:{}:{}", p.line, p.column)?,
                None => writeln!(w, "  --> {file}")?,
            }
        }
        if let (Some(sn), Some(p)) = (self.snippet.as_ref().or(snippet), self.pos) {
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(w, "{pad} |\n{num} | {}\n{pad} | {}^", sn.text, sn.pad)?;
        }
        if !self.context.is_empty() {
            write!(w, "   = context:")?;
            for (k, v) in self.context.iter().take(CONTEXT_ENTRIES) {
                write!(w, " {}={}", clip(k, CONTEXT_BYTES), clip(v, CONTEXT_BYTES))?;
            }
            if self.context.len() > CONTEXT_ENTRIES {
                write!(w, " (and {} more)", self.context.len() - CONTEXT_ENTRIES)?;
            }
            writeln!(w)?;
        }
        if let Some(cause) = &self.cause {
            writeln!(w, "   = cause: {}", clip(cause, FIELD_BYTES))?;
        }
        if let Some(s) = &self.suggestion {
            writeln!(w, "   = help: {}", clip(s, FIELD_BYTES))?;
        }
        Ok(())
    }

    /// A copy whose fields are cut as the text rendering cuts them, for
    /// JSON output.
    fn clipped(&self) -> Cow<'_, Diagnostic> {
        let long = |s: &str, max: usize| s.len() > max;
        let needs = long(&self.message, FIELD_BYTES)
            || self.cause.as_deref().is_some_and(|c| long(c, FIELD_BYTES))
            || self
                .suggestion
                .as_deref()
                .is_some_and(|c| long(c, FIELD_BYTES))
            || self.context.len() > CONTEXT_ENTRIES
            || self
                .context
                .iter()
                .any(|(k, v)| long(k, CONTEXT_BYTES) || long(v, CONTEXT_BYTES));
        if !needs {
            return Cow::Borrowed(self);
        }
        let cut = |s: &str, max: usize| clip(s, max).into_owned();
        Cow::Owned(Diagnostic {
            code: self.code,
            message: cut(&self.message, FIELD_BYTES),
            file: self.file.clone(),
            pos: self.pos,
            context: self
                .context
                .iter()
                .take(CONTEXT_ENTRIES)
                .map(|(k, v)| (cut(k, CONTEXT_BYTES), cut(v, CONTEXT_BYTES)))
                .collect(),
            cause: self.cause.as_deref().map(|c| cut(c, FIELD_BYTES)),
            suggestion: self.suggestion.as_deref().map(|c| cut(c, FIELD_BYTES)),
            snippet: None,
        })
    }

    /// What makes errors "of the same kind" when a report folds them: the
    /// code and the message with its varying parts taken out (the text
    /// between backticks or double quotes, and every run of digits). So
    /// "services.web.supplementary_groups: no group named `g1` on this host"
    /// and the same with `g2` are one kind, as are
    /// "services.svc1.depends_on: ..." and "services.svc2.depends_on: ...".
    pub fn kind(&self) -> (Code, String) {
        let mut key = String::with_capacity(self.message.len().min(FIELD_BYTES));
        let mut quote: Option<char> = None;
        let mut digits = false;
        for c in clip(&self.message, FIELD_BYTES).chars() {
            match quote {
                Some(q) if c == q => {
                    key.push(c);
                    quote = None;
                }
                Some(_) => {}
                None if c == '`' || c == '"' => {
                    key.push(c);
                    quote = Some(c);
                }
                None if c.is_ascii_digit() => {
                    if !digits {
                        key.push('#');
                    }
                }
                None => key.push(c),
            }
            digits = quote.is_none() && c.is_ascii_digit();
        }
        (self.code, key)
    }
}

// ----------------------------------------------------------- suggestions

/// The known name closest to `word`, if it is close enough to be a typo
/// (an edit distance of a third of the longer name, at least 1). Names
/// whose lengths alone differ by more are not compared.
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let chars = word.chars().count();
    known
        .iter()
        .filter_map(|k| {
            let bound = (k.len().max(word.len()) / 3).max(1);
            // Each edit changes the length by at most one character.
            if k.chars().count().abs_diff(chars) > bound {
                return None;
            }
            let d = strsim::osa_distance(&word, &k.to_ascii_lowercase());
            (d <= bound).then_some((d, *k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

// ---------------------------------------------------------------- bounds

/// One bound on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The name errors and `bulkhead config limits` use.
    pub name: &'static str,
    /// The largest value accepted.
    pub max: u64,
    /// What is counted, for people: "bytes in the config file".
    pub what: &'static str,
}

impl Limit {
    pub const fn new(name: &'static str, max: u64, what: &'static str) -> Self {
        Limit { name, max, what }
    }

    /// Whether `seen` is within the bound.
    pub fn allows(&self, seen: u64) -> bool {
        seen <= self.max
    }

    /// `max` as a usize, for lengths and counts (saturating on 32-bit).
    pub fn max_usize(&self) -> usize {
        usize::try_from(self.max).unwrap_or(usize::MAX)
    }

    /// The error for a value past this limit: a `CONFIG_LIMIT` naming the
    /// limit, its bound and the value seen. The caller adds where.
    pub fn exceeded(&self, subject: impl fmt::Display, seen: u64) -> Diagnostic {
        Diagnostic::new(
            Code::ConfigLimit,
            format!(
                "{subject}: {seen} {} is more than {}, the most bulkhead takes",
                self.what, self.max
            ),
        )
        .context("limit", self.name)
        .context("max", self.max)
        .context("seen", seen)
    }

    /// The one-line form used in messages built elsewhere.
    pub fn describe(&self, seen: u64) -> String {
        format!(
            "{seen} {} is more than {} (limit {})",
            self.what, self.max, self.name
        )
    }
}

/// Errors of one kind reported before the rest are counted as "and N more".
pub const ERRORS_PER_KIND: Limit = Limit::new("errors_per_kind", 20, "errors of one kind");

/// Errors reported in all.
pub const ERRORS: Limit = Limit::new("errors", 200, "errors");

/// The most bytes of a message, cause, suggestion or file name printed (the
/// rest is cut with a note of the full length): a message may quote a value
/// as long as the config's `string_bytes` limit.
pub const FIELD_BYTES: usize = 1024;
/// The most bytes of one context key or value printed.
pub const CONTEXT_BYTES: usize = 256;
/// The most context entries printed.
pub const CONTEXT_ENTRIES: usize = 16;

/// `s` cut to at most `max` bytes on a char boundary, with `…` and the full
/// length when it was cut.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes in all)", &s[..end], s.len()))
}

/// `s` with its control characters (but newline and tab) written as
/// escapes (`\u{1b}`), so printing it cannot move the cursor, change
/// colours or retitle the terminal.
pub fn printable(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The widest source line shown under an error, in terminal columns.
pub const SNIPPET_COLUMNS: usize = 100;
/// Columns kept before the caret when a line is cut (more when the line
/// ends soon after the caret).
const SNIPPET_BEFORE: usize = 40;

/// A source line as shown under an error: a window of at most
/// [`SNIPPET_COLUMNS`] terminal columns around the error's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The text to print: control characters (but tabs) as U+FFFD, and
    /// `…` where the line was cut.
    pub text: String,
    /// What goes before the caret: a space per column of the text before
    /// it (two for a wide character) and a tab for a tab, so the caret
    /// lands under the character whatever the terminal's tab stops.
    pub pad: String,
}

impl Snippet {
    /// The window of `line` around the 1-based character `column`. A line
    /// that fits is shown whole; a longer one keeps about
    /// [`SNIPPET_BEFORE`] columns before the caret and fills the rest after
    /// it, each cut marked with `…`:
    ///
    /// ```text
    /// 4 | …ooo, no-such-group-2001, no-such-group-2002, no-such-grou…
    ///   |                           ^
    /// ```
    pub fn window(line: &str, column: u32) -> Snippet {
        let chars: Vec<char> = line.chars().collect();
        let caret = usize::try_from(column.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(chars.len());
        let widths = |cs: &[char]| cs.iter().map(|&c| shown_width(c)).sum::<usize>();
        let after = widths(&chars[caret..]);
        let whole = widths(&chars[..caret]) + after <= SNIPPET_COLUMNS;
        let start = if whole {
            0
        } else {
            // Two columns go to the ellipses.
            let budget = SNIPPET_BEFORE.max((SNIPPET_COLUMNS - 2).saturating_sub(after));
            let mut start = caret;
            let mut used = 0;
            while start > 0 && used + shown_width(chars[start - 1]) <= budget {
                start -= 1;
                used += shown_width(chars[start]);
            }
            start
        };
        let mut text = String::new();
        let mut used = 0;
        let mut pad = String::new();
        if start > 0 {
            text.push('…');
            used = 1;
            pad.push(' ');
        }
        let limit = if whole {
            usize::MAX
        } else {
            SNIPPET_COLUMNS - 1
        };
        let mut cut = false;
        for (i, &c) in chars.iter().enumerate().skip(start) {
            let w = shown_width(c);
            if used + w > limit {
                cut = true;
                break;
            }
            let c = if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            };
            text.push(c);
            used += w;
            if i < caret {
                match c {
                    '\t' => pad.push('\t'),
                    _ => pad.extend(std::iter::repeat_n(' ', w)),
                }
            }
        }
        if cut {
            text.push('…');
        }
        Snippet { text, pad }
    }
}

/// The terminal columns `c` takes as [`Snippet`] prints it (a tab: at
/// most eight).
fn shown_width(c: char) -> usize {
    match c {
        '\t' => 8,
        c if c.is_control() => 1,
        c => unicode_width::UnicodeWidthChar::width(c).unwrap_or(0),
    }
}

/// Lines of a text by number, found without scanning the text per lookup.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// Line `n` (1-based) without its line ending, as `str::lines` gives it.
    fn get(&self, n: u32) -> Option<&'a str> {
        let i = usize::try_from(n.checked_sub(1)?).ok()?;
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).map_or(self.text.len(), |e| e - 1);
        if start == self.text.len() && i > 0 {
            return None;
        }
        let line = &self.text[start..end];
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// How a list of errors is reported ([`Diagnostics::plan`]): which are
/// shown, and what is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The errors shown, in order.
    pub shown: Vec<Shown>,
    /// Every error, shown or not.
    pub total: usize,
    /// Errors left out past the overall cap and not counted in a fold line.
    pub more: usize,
}

/// One error a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Its index in the [`Diagnostics`].
    pub index: usize,
    /// On the last error shown of a folded kind: how many more of its kind
    /// are left out ("... and M more of the same kind"); 0 elsewhere.
    pub more_of_kind: usize,
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

    /// Which errors a report shows: at most
    /// [`ERRORS_PER_KIND`](ERRORS_PER_KIND) of one
    /// [kind](Diagnostic::kind), the last of them carrying how many more of
    /// its kind there are, and at most
    /// [`ERRORS`](ERRORS) in all. Two passes over
    /// the list, one map of kinds: linear in the number of errors.
    pub fn plan(&self) -> Plan {
        let per_kind = ERRORS_PER_KIND.max_usize();
        let cap = ERRORS.max_usize();
        let kinds: Vec<(Code, String)> = self.0.iter().map(Diagnostic::kind).collect();
        let mut totals: HashMap<&(Code, String), usize> = HashMap::new();
        for k in &kinds {
            *totals.entry(k).or_default() += 1;
        }
        let mut seen: HashMap<&(Code, String), usize> = HashMap::new();
        let mut shown = Vec::new();
        let mut folded = 0;
        for (index, k) in kinds.iter().enumerate() {
            let n = seen.entry(k).or_default();
            *n += 1;
            if *n > per_kind || shown.len() >= cap {
                continue;
            }
            let total = totals.get(k).copied().unwrap_or(0);
            let more_of_kind = if *n == per_kind {
                total.saturating_sub(per_kind)
            } else {
                0
            };
            folded += more_of_kind;
            shown.push(Shown {
                index,
                more_of_kind,
            });
        }
        Plan {
            total: self.0.len(),
            more: self.0.len() - shown.len() - folded,
            shown,
        }
    }

    /// Attaches to each error that a report will show, and that is about
    /// `file` at a known position, its line of `source` (see [`Snippet`]):
    /// the caller then prints the errors without reading the file again.
    pub fn attach_snippets(&mut self, file: &Path, source: &str) {
        let lines = Lines::new(source);
        for s in self.plan().shown {
            let d = &mut self.0[s.index];
            if let (Some(p), Some(f)) = (d.pos, &d.file)
                && f == file
                && let Some(line) = lines.get(p.line)
            {
                d.snippet = Some(Snippet::window(line, p.column));
            }
        }
    }

    /// Writes the report for a terminal as it goes, folded and capped as
    /// [`Diagnostics::plan`] says, ending with the count of errors. `source`
    /// supplies lines for errors without a snippet of their own.
    pub fn write_to(&self, w: &mut dyn Write, source: Option<&str>) -> io::Result<()> {
        let plan = self.plan();
        let lines = source.map(Lines::new);
        for s in &plan.shown {
            let d = &self.0[s.index];
            let line = match (&d.snippet, &lines, d.pos) {
                (None, Some(l), Some(p)) => l.get(p.line).map(|l| Snippet::window(l, p.column)),
                _ => None,
            };
            d.write_to(w, line.as_ref())?;
            if s.more_of_kind > 0 {
                writeln!(
                    w,
                    "... and {} more of the same kind ({})",
                    s.more_of_kind, d.code
                )?;
            }
            writeln!(w)?;
        }
        if plan.more > 0 {
            writeln!(
                w,
                "... and {} more error{} (at most {} are shown)\n",
                plan.more,
                if plan.more == 1 { "" } else { "s" },
                ERRORS.max
            )?;
        }
        let n = plan.total;
        writeln!(w, "{n} error{}", if n == 1 { "" } else { "s" })
    }

    /// The report as one string (bounded like [`Diagnostics::write_to`]).
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut out, source);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The report as JSON, bounded as the text one: `errors` holds the
    /// errors shown (fields cut as in text), the last shown of a folded
    /// kind with `more_of_same_kind`; `error_count` counts every error and
    /// `errors_omitted` those not in `errors`.
    ///
    /// ```json
    /// {"errors": [{"code": "CONFIG_UNKNOWN_ACCOUNT", ..., "more_of_same_kind": 19980}],
    ///  "error_count": 20000, "errors_omitted": 19980}
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let plan = self.plan();
        let errors: Vec<serde_json::Value> = plan
            .shown
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(self.0[s.index].clipped())
                    .unwrap_or(serde_json::Value::Null);
                if s.more_of_kind > 0
                    && let Some(o) = v.as_object_mut()
                {
                    o.insert("more_of_same_kind".into(), s.more_of_kind.into());
                }
                v
            })
            .collect();
        serde_json::json!({
            "errors": errors,
            "error_count": plan.total,
            "errors_omitted": plan.total - plan.shown.len(),
        })
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

    /// The character the caret of `sn` points at: the text is walked while
    /// the pad is consumed, a tab for a tab and a space per column else.
    fn under_caret(sn: &Snippet) -> Option<char> {
        let mut pad = sn.pad.chars().peekable();
        for c in sn.text.chars() {
            if pad.peek().is_none() {
                return Some(c);
            }
            if c == '\t' {
                assert_eq!(pad.next(), Some('\t'), "{sn:?}");
            } else {
                for _ in 0..shown_width(c) {
                    assert_eq!(pad.next(), Some(' '), "{sn:?}");
                }
            }
        }
        None
    }

    fn width(s: &str) -> usize {
        s.chars().map(shown_width).sum()
    }

    #[test]
    fn a_short_line_is_shown_whole() {
        let sn = Snippet::window("  memroy: 1", 3);
        assert_eq!(sn.text, "  memroy: 1");
        assert_eq!(sn.pad, "  ");
        assert_eq!(under_caret(&sn), Some('m'));
        // A column past the end points just after the line.
        let sn = Snippet::window("ab", 9);
        assert_eq!((sn.text.as_str(), sn.pad.as_str()), ("ab", "  "));
        assert_eq!(Snippet::window("", 1).text, "");
    }

    #[test]
    fn a_long_line_is_cut_around_the_column() {
        let line: String = (0..5000).map(|i| format!("g{i},")).collect();
        let col = line.find("g2500,").unwrap() + 1;
        let sn = Snippet::window(&line, u32::try_from(col).unwrap());
        assert!(sn.text.starts_with('…') && sn.text.ends_with('…'), "{sn:?}");
        assert!(width(&sn.text) <= SNIPPET_COLUMNS, "{sn:?}");
        assert!(sn.text.contains("g2500,"));
        assert_eq!(under_caret(&sn), Some('g'));
        let after = &sn.text[sn.text.find("g2500").unwrap()..];
        assert!(after.starts_with("g2500,"));
        // Near the start: no cut before.
        let sn = Snippet::window(&line, 3);
        assert!(sn.text.starts_with("g0,") && sn.text.ends_with('…'));
        assert_eq!(sn.pad, "  ");
        // Near the end: no cut after, and the window is filled before.
        let sn = Snippet::window(&line, u32::try_from(line.len()).unwrap());
        assert!(sn.text.starts_with('…') && sn.text.ends_with("g4999,"));
        assert!(width(&sn.text) > SNIPPET_COLUMNS - 5, "{sn:?}");
        assert_eq!(under_caret(&sn), Some(','));
    }

    #[test]
    fn the_window_is_char_safe_with_tabs_wide_and_control_characters() {
        // Two-byte, three-byte wide and four-byte characters, cut anywhere.
        for unit in ["é", "日本", "🦀x", "\tz", "a\u{1b}"] {
            let line = unit.repeat(400);
            let n = u32::try_from(line.chars().count()).unwrap();
            for col in [1, 2, 3, 57, 58, n / 2, n - 1, n, n + 1] {
                let sn = Snippet::window(&line, col);
                assert!(width(&sn.text) <= SNIPPET_COLUMNS, "{unit:?} {col}: {sn:?}");
                assert!(
                    !sn.text.contains('\u{1b}'),
                    "control characters are replaced"
                );
                let i = usize::try_from(col - 1).unwrap();
                let want = line
                    .chars()
                    .nth(i)
                    .map(|c| if c == '\u{1b}' { '\u{FFFD}' } else { c });
                assert_eq!(under_caret(&sn), want, "{unit:?} col {col}: {sn:?}");
            }
        }
        let sn = Snippet::window("\t日本: x", 4);
        assert_eq!(sn.pad, "\t    ");
        assert_eq!(under_caret(&sn), Some(':'));
    }

    #[test]
    fn lines_by_number_as_str_lines_gives_them() {
        let text = "a\r\nbb\n\nlast";
        let l = Lines::new(text);
        let want: Vec<&str> = text.lines().collect();
        for (i, w) in want.iter().enumerate() {
            assert_eq!(l.get(u32::try_from(i + 1).unwrap()), Some(*w));
        }
        assert_eq!(l.get(0), None);
        assert_eq!(l.get(5), None);
        assert_eq!(Lines::new("x\n").get(2), None);
    }

    #[test]
    fn control_characters_in_a_message_are_shown_not_obeyed() {
        let d = Diagnostic::new(
            Code::ConfigUnknownKey,
            "unknown key `a\u{1b}]0;pwned\u{7}b`",
        )
        .cause("x\u{9b}31my\r")
        .suggest("line one\n\tline two");
        let text = d.render(None);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'));
        assert!(!text.contains('\u{9b}'));
        assert!(text.contains("a\\u{1b}]0;pwned\\u{7}b"), "{text}");
        assert!(text.contains("line one\n\tline two"), "{text}");
    }

    #[test]
    fn clip_cuts_on_a_char_boundary() {
        assert_eq!(clip("abc", 3), "abc");
        let c = clip("ééé", 3);
        assert_eq!(c, "é… (6 bytes in all)");
    }

    #[test]
    fn kind_drops_quoted_values_and_numbers() {
        let d = |m: &str| Diagnostic::new(Code::ConfigInvalidValue, m).kind();
        assert_eq!(
            d("services.web.supplementary_groups: no group named `g12` on this host"),
            d("services.web.supplementary_groups: no group named `other` on this host"),
        );
        assert_eq!(
            d("services.s1.depends_on: x"),
            d("services.s2000.depends_on: x")
        );
        assert_eq!(d("a \"1\": b"), d("a \"zz\": b"));
        assert_ne!(d("services.web.x: `a`"), d("services.api.x: `a`"));
        let k = Diagnostic::new(Code::ConfigType, "m").kind();
        assert_ne!(k, d("m"), "the code is part of the kind");
    }

    fn many(kinds: &[(&str, usize)]) -> Diagnostics {
        let mut ds = Diagnostics::default();
        for (m, n) in kinds {
            for i in 0..*n {
                ds.push(Diagnostic::new(
                    Code::ConfigInvalidValue,
                    format!("{m} `{i}`"),
                ));
            }
        }
        ds
    }

    #[test]
    fn the_plan_folds_a_kind_and_caps_the_total() {
        let per = ERRORS_PER_KIND.max_usize();
        let cap = ERRORS.max_usize();
        let p = many(&[("same", 20_000)]).plan();
        assert_eq!(p.total, 20_000);
        assert_eq!(p.shown.len(), per);
        assert_eq!(p.shown[per - 1].more_of_kind, 20_000 - per);
        assert!(p.shown[..per - 1].iter().all(|s| s.more_of_kind == 0));
        assert_eq!(p.more, 0);
        // Exactly the kind's allowance: nothing to fold.
        let p = many(&[("a", per)]).plan();
        assert!(p.shown.iter().all(|s| s.more_of_kind == 0) && p.more == 0);
        // Many kinds: the cap, and the rest counted once.
        let names: Vec<String> = (0..cap + 50)
            .map(|i| format!("k{}", "x".repeat(i)))
            .collect();
        let kinds: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let p = many(&kinds).plan();
        assert_eq!(p.shown.len(), cap);
        assert_eq!(p.more, 50);
        // A folded kind, then so many others that the cap is reached: every
        // error is counted once, in a fold line, in `more` or shown.
        let mut kinds = vec![("first", 100)];
        kinds.extend(names.iter().map(|n| (n.as_str(), 3)));
        let ds = many(&kinds);
        let p = ds.plan();
        let folded: usize = p.shown.iter().map(|s| s.more_of_kind).sum();
        assert_eq!(folded, 100 - per);
        assert_eq!(p.shown.len() + folded + p.more, ds.len());
    }

    #[test]
    fn the_report_is_bounded_and_says_what_it_left_out() {
        let mut ds = many(&[("same", 20_000)]);
        let long = "x".repeat(40_000);
        for d in &mut ds.0 {
            d.file = Some(PathBuf::from("f.yaml"));
            d.pos = Some(Pos {
                line: 1,
                column: 20_000,
            });
        }
        ds.attach_snippets(Path::new("f.yaml"), &long);
        assert!(ds.0[0].snippet.is_some() && ds.0[19_999].snippet.is_none());
        let text = ds.render(None);
        assert!(text.len() < 20_000, "{} bytes", text.len());
        assert!(text.contains("... and 19980 more of the same kind (CONFIG_INVALID_VALUE)\n"));
        assert!(text.ends_with("\n20000 errors\n"));
        let json = ds.to_json();
        assert_eq!(json["error_count"], 20_000);
        assert_eq!(json["errors_omitted"], 19_980);
        assert_eq!(json["errors"][19]["more_of_same_kind"], 19_980);
        assert_eq!(json["errors"].as_array().map(Vec::len), Some(20));

        let names: Vec<String> = (0..300).map(|i| format!("k{}", "x".repeat(i))).collect();
        let kinds: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let text = many(&kinds).render(None);
        assert!(text.contains("\n... and 100 more errors (at most 200 are shown)\n"));
        // A huge message is cut.
        let d = Diagnostic::new(Code::ConfigType, "m".repeat(100_000)).cause("c".repeat(100_000));
        assert!(d.render(None).len() < 3 * FIELD_BYTES);
        let json = Diagnostics::from(d).to_json().to_string();
        assert!(json.len() < 3 * FIELD_BYTES);
    }
}
