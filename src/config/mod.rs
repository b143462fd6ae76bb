//! The configuration file: schema, units, validation. No syscalls here except
//! reading the file and the host lookups behind [`host::Host`].
//!
//! Loading runs in three passes over one YAML parse:
//! 1. serde-saphyr parses the text into a [`node::Node`] tree with positions,
//!    under a budget that refuses hostile input (alias bombs, deep nesting);
//! 2. the tree is walked against the schema's [`shape::Shape`], collecting
//!    every unknown key, duplicate, wrong kind and unparsable value;
//! 3. the typed [`schema::RawConfig`] is built and [`validate::build`] merges
//!    `defaults` -> group `defaults` -> service, applies defaults and checks
//!    the rules that span several values or the host.

pub mod graph;
pub mod host;
pub mod limits;
pub mod model;
pub mod node;
pub mod schema;
pub mod shape;
pub mod units;
pub mod validate;

use std::path::{Path, PathBuf};

pub use model::*;

use crate::error::{Code, Diagnostic, Diagnostics, Pos};
use node::{Node, pos_of};
use shape::Shaped;

/// Where the daemon and the CLI look when no `-c` is given.
pub const DEFAULT_PATH: &str = "/etc/bulkhead/bulkhead.yaml";

/// Where the daemon listens unless `supervisor.control_socket` says
/// otherwise, and where the CLI looks unless `--socket` or
/// `$BULKHEAD_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/bulkhead/control.sock";

/// Larger files are refused before parsing: a config for thousands of
/// services is well under this ([`limits::FILE_BYTES`]).
pub const MAX_FILE_BYTES: u64 = limits::FILE_BYTES.max;

/// Reads, parses and validates a config file. The errors of a file that
/// was read carry their source lines ([`Diagnostics::attach_snippets`]), so
/// printing them needs no second read.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    load_with(path, &host::RealHost)
}

/// [`load`] with the host lookups supplied.
pub fn load_with(path: &Path, host: &dyn host::Host) -> Result<Config, Diagnostics> {
    let text = read(path)?;
    parse_str(&text, path, host)
}

/// Reads the file: a regular file of at most [`limits::FILE_BYTES`], read
/// with that cap whatever `stat` says (see [`host::read_bounded`]).
pub fn read(path: &Path) -> Result<String, Diagnostic> {
    use host::ReadError;
    if path.as_os_str().is_empty() {
        return Err(
            Diagnostic::new(Code::ConfigRead, "the config file path is empty")
                .cause("-c was given an empty value")
                .suggest(format!(
                    "pass the YAML file with -c FILE, or leave -c out to use {DEFAULT_PATH}"
                )),
        );
    }
    let fail = |e: std::io::Error| {
        Diagnostic::new(Code::ConfigRead, format!("cannot read config file {}", path.display()))
            .in_file(path)
            .suggest(match e.kind() {
                std::io::ErrorKind::NotFound => format!("create it (see config/reference.yaml), or pass another file with -c (default {DEFAULT_PATH})"),
                std::io::ErrorKind::PermissionDenied => "run as root, or make the file readable".to_string(),
                _ => "check that the path is a readable file".to_string(),
            })
            .cause(e)
    };
    match host::read_text(path, &limits::FILE_BYTES) {
        Ok(text) => Ok(text),
        Err(ReadError::Io(e)) => Err(fail(e)),
        Err(ReadError::NotAFile(kind)) => Err(Diagnostic::new(
            Code::ConfigRead,
            format!("{} is not a file", path.display()),
        )
        .in_file(path)
        .cause(format!(
            "it is {kind}; bulkhead reads its config only from a regular file"
        ))
        .suggest(
            "pass the YAML file itself with -c (to check generated text, write it to a file first)",
        )),
        Err(ReadError::NotUtf8(e)) => Err(Diagnostic::new(
            Code::ConfigSyntax,
            format!("{} is not valid bulkhead YAML", path.display()),
        )
        .in_file(path)
        .cause(format!("not UTF-8 text: {e}"))
        .suggest("save the file as UTF-8; check that this is the right file")),
        Err(e @ ReadError::TooLarge { .. }) => Err(e
            .too_large(path.display())
            .unwrap_or_else(|| Diagnostic::new(Code::ConfigTooLarge, e.to_string()))
            .in_file(path)
            .suggest("a bulkhead config is normally a few KiB; check that this is the right file")),
    }
}

/// Parse limits for config files: far above any real config, far below what
/// would let a hostile file use much memory or time.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = limits::YAML_EVENTS.max_usize();
    budget.max_aliases = limits::YAML_ALIASES.max_usize();
    budget.max_anchors = limits::YAML_ANCHORS.max_usize();
    budget.max_depth = limits::YAML_DEPTH.max_usize();
    budget.max_nodes = limits::YAML_NODES.max_usize();
    budget.max_total_scalar_bytes = limits::YAML_SCALAR_BYTES.max_usize();
    budget.max_documents = 1;
    budget.max_recorded_anchor_events = limits::YAML_ANCHORED_EVENTS.max_usize();
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o.strict_booleans = true;
    // Every entry reaches the tree, so the walk reports each duplicate with
    // both locations; LastWins would merge `16:` and `0x10:` silently.
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    o.with_snippet = false;
    o
}

/// Parses and validates config text; `path` is used for messages and to
/// resolve relative paths (seccomp profiles) in the file.
pub fn parse_str(text: &str, path: &Path, host: &dyn host::Host) -> Result<Config, Diagnostics> {
    parse_unsourced(text, path, host).map_err(|mut diags| {
        diags.attach_snippets(path, text);
        diags
    })
}

/// [`parse_str`] without the source lines attached to its errors.
fn parse_unsourced(text: &str, path: &Path, host: &dyn host::Host) -> Result<Config, Diagnostics> {
    let tree: Node = match serde_saphyr::from_str_with_options(text, options()) {
        Ok(n) => n,
        Err(e) => return Err(yaml_error(&e, path, text).into()),
    };
    let mut problems = shape::tag_errors(text);
    shape::walk(&tree, &schema::RawConfig::shape(), "", &mut problems);
    // Past a limit, building the services would do the work it refuses.
    let stop = problems.iter().any(shape::WalkError::stops_loading);
    let mut diags = Diagnostics::default();
    for w in problems {
        diags.push(w.into_diagnostic(path));
    }
    if stop {
        return Err(diags.finish());
    }
    // The walk found every problem of form. The typed parse fails only where
    // the walk already reported one (a list where a mapping belongs, ...);
    // when it succeeds, the checks across values run too, so one run reports
    // as much as possible.
    let raw: schema::RawConfig = match serde_saphyr::from_str_with_options(text, options()) {
        Ok(r) => r,
        Err(e) if diags.is_empty() => return Err(yaml_error(&e, path, text).into()),
        Err(_) => return Err(diags.finish()),
    };
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| PathBuf::from(path))
    };
    // Without a `services:` key, "no services are defined" points at the
    // start of the document.
    let services = match top_key_pos(&tree, "services") {
        p if p.is_known() => p,
        _ => Pos { line: 1, column: 1 },
    };
    match validate::build(raw, &abs, host, services) {
        Ok(mut cfg) if diags.is_empty() => {
            cfg.source = path.to_path_buf();
            Ok(cfg)
        }
        Ok(_) => Err(diags.finish()),
        Err(more) => {
            for mut d in more.0 {
                if d.file.is_some() {
                    d.file = Some(path.to_path_buf());
                }
                diags.push(d);
            }
            Err(diags.finish())
        }
    }
}

/// Where a top-level key is written, if it is.
fn top_key_pos(tree: &Node, key: &str) -> Pos {
    match &tree.value {
        node::Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.key_text() == key)
            .map_or(Pos::UNKNOWN, |(k, _)| k.pos),
        _ => Pos::UNKNOWN,
    }
}

fn yaml_error(e: &serde_saphyr::Error, path: &Path, source: &str) -> Diagnostic {
    use serde_saphyr::budget::BudgetBreach;
    let mut inner = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let breach = match inner {
        serde_saphyr::Error::Budget { breach, .. } => Some(breach),
        _ => None,
    };
    // The limit a breach passed, named in the error as every limit is.
    let limit = match breach {
        Some(BudgetBreach::Events { .. }) => Some(limits::YAML_EVENTS),
        Some(BudgetBreach::Nodes { .. }) => Some(limits::YAML_NODES),
        Some(BudgetBreach::Depth { .. }) => Some(limits::YAML_DEPTH),
        Some(BudgetBreach::Aliases { .. }) => Some(limits::YAML_ALIASES),
        Some(BudgetBreach::Anchors { .. }) => Some(limits::YAML_ANCHORS),
        Some(BudgetBreach::ScalarBytes { .. }) => Some(limits::YAML_SCALAR_BYTES),
        _ => None,
    };
    let (code, suggestion) = match breach {
        Some(BudgetBreach::Documents { .. }) => (
            Code::ConfigSyntax,
            "keep one YAML document in the file (remove the extra `---` and what follows it)",
        ),
        Some(BudgetBreach::Depth { .. }) => (
            Code::ConfigLimit,
            "the values nest more than 32 levels deep; a bulkhead config needs far fewer, so check the indentation",
        ),
        Some(
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::MergeKeys { .. },
        ) => (
            Code::ConfigLimit,
            "the anchors and aliases (&name, *name) expand to too much; write the values out plainly",
        ),
        Some(_) => (
            Code::ConfigLimit,
            "the file exceeds a safety limit (values, nodes or text size); a bulkhead config is far smaller, so check that this is the right file",
        ),
        None => (
            Code::ConfigSyntax,
            "fix the YAML syntax at this position (indentation and `key: value` pairs are the usual causes)",
        ),
    };
    let text = e.to_string();
    let first_line = text.lines().next().unwrap_or("invalid YAML").to_string();
    let tabs = first_line.contains("tabs disallowed");
    let mut d = Diagnostic::new(
        code,
        format!("{} is not valid bulkhead YAML", path.display()),
    )
    .cause(first_line);
    if let Some(l) = limit {
        d = d.context("limit", l.name).context("max", l.max);
    }
    d = d.suggest(if tabs {
        "indent with spaces: YAML does not allow tabs for indentation"
    } else {
        suggestion
    });
    match e.location() {
        Some(loc) => {
            let mut pos = pos_of(&loc);
            // The parser reports the first character after a tab; the tab
            // itself is what needs fixing.
            if tabs
                && let Some(line) = source.lines().nth(pos.line.saturating_sub(1) as usize)
                && let Some(i) = line
                    .chars()
                    .take(pos.column as usize)
                    .position(|c| c == '\t')
            {
                pos.column = u32::try_from(i + 1).unwrap_or(pos.column);
            }
            d = d.at(path, pos);
        }
        None => d = d.in_file(path),
    }
    d
}

/// The JSON Schema of the config file, for editors (`bulkhead config schema`).
pub fn json_schema() -> serde_json::Value {
    let mut s = shape::json_schema(&schema::RawConfig::shape());
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
    s["title"] = "bulkhead configuration".into();
    s
}
