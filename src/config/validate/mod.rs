//! From the file as written to the effective [`Config`]: merge
//! `defaults` -> group `defaults` -> service, apply bulkhead's defaults, and
//! check every rule that involves more than one value or the host. Every
//! problem is collected; nothing stops at the first.
//!
//! One file per section, each checking its own values and building its
//! part of the model: `names`, `supervisor`, `service` (which calls
//! `compartment`, `resources`, `security`, `health`, `watch` and
//! `restart`), and `depends` across services (the graph itself is
//! [`super::graph`]). This file holds the entry point [`build`], the merge
//! and the `Checker` that collects and bounds the diagnostics. Nothing here
//! writes to the system; the host is asked only through [`Host`], each
//! question once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_saphyr::Spanned;

use super::graph;
use super::host::{Host, PathKind};
use super::limits;
use super::model::*;
use super::node::spanned_pos;
use super::schema::*;
use super::shape::{Entries, Merge, Suggestions, Weight};
use crate::error::{Code, Diagnostic, Diagnostics, Pos};

mod compartment;
mod depends;
mod groups;
mod health;
mod names;
mod resources;
mod restart;
mod security;
mod service;
mod supervisor;
mod watch;

pub use names::{BadName, KERNEL_FILE_PREFIXES, RESERVED_NAMES, check_name};
pub use security::canonical_capability;
pub use service::{MAX_INSTANCES, MAX_LOGS_KEEP};

use depends::dependencies;
use groups::{check_group_defaults, groups, member_group};
use service::service;
use supervisor::supervisor;

/// Collects diagnostics for one file.
struct Checker<'a> {
    file: &'a Path,
    host: Memo<'a>,
    diags: Diagnostics,
    /// How often each (code, position) was reported: a mistake in
    /// `defaults` is one per service, and is kept [`limits::ERRORS_PER_KIND`]
    /// times, not 4,096.
    repeats: HashMap<(Code, Pos), u64>,
    /// Suggestions by kind of name and word, each computed once.
    suggestions: HashMap<(&'static str, String), Option<String>>,
    /// Seccomp profile problems by (file, capabilities): a profile named in
    /// `defaults` is read and compiled once, not once per service.
    profiles: HashMap<(PathBuf, Vec<String>), Rc<Vec<Diagnostic>>>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, host: &'a dyn Host) -> Self {
        Checker {
            file,
            host: Memo::new(host),
            diags: Diagnostics::default(),
            repeats: HashMap::new(),
            suggestions: HashMap::new(),
            profiles: HashMap::new(),
        }
    }

    fn report(&mut self, code: Code, pos: Pos, message: String, suggestion: impl Into<String>) {
        self.push(
            Diagnostic::new(code, message)
                .at(self.file, pos)
                .suggest(suggestion),
        );
    }

    /// Adds `d`, unless its code and position have been reported
    /// [`limits::ERRORS_PER_KIND`] times already (then it is counted, and
    /// the last one kept says how many more there were).
    fn push(&mut self, d: Diagnostic) {
        let key = (d.code, d.pos.unwrap_or(Pos::UNKNOWN));
        let n = self.repeats.entry(key).or_insert(0);
        *n += 1;
        if *n <= limits::ERRORS_PER_KIND.max || !key.1.is_known() {
            self.diags.push(d);
        }
    }

    /// The diagnostics, with a note on each one that stood for more.
    fn finish(mut self) -> Diagnostics {
        let keep = limits::ERRORS_PER_KIND.max;
        for d in self.diags.0.iter_mut().rev() {
            let key = (d.code, d.pos.unwrap_or(Pos::UNKNOWN));
            if let Some(n) = self.repeats.remove(&key)
                && n > keep
            {
                d.context
                    .push(("same_error_more_times".into(), (n - keep).to_string()));
            }
        }
        self.diags.finish()
    }

    /// `find(word)`, remembered per `kind` of name, and computed for the
    /// first [`limits::ERRORS_PER_KIND`] distinct words of a kind only.
    fn suggest(
        &mut self,
        kind: &'static str,
        word: &str,
        find: impl FnOnce(&str) -> Option<String>,
    ) -> Option<String> {
        let key = (kind, word.to_string());
        if let Some(hit) = self.suggestions.get(&key) {
            return hit.clone();
        }
        let computed = self.suggestions.keys().filter(|(k, _)| *k == kind).count();
        if u64::try_from(computed).unwrap_or(u64::MAX) >= limits::ERRORS_PER_KIND.max {
            return None;
        }
        let hit = find(word);
        self.suggestions.insert(key, hit.clone());
        hit
    }

    /// The directory relative paths in the file are read against.
    fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// The host's answers, each asked once: `defaults` naming 4,096
/// supplementary groups would otherwise ask NSS 4,096 times per service.
struct Memo<'a> {
    host: &'a dyn Host,
    users: RefCell<HashMap<String, bool>>,
    groups: RefCell<HashMap<String, bool>>,
    paths: RefCell<HashMap<PathBuf, PathKind>>,
    target: std::cell::Cell<Option<crate::seccomp::Target>>,
}

impl<'a> Memo<'a> {
    fn new(host: &'a dyn Host) -> Self {
        Memo {
            host,
            users: RefCell::default(),
            groups: RefCell::default(),
            paths: RefCell::default(),
            target: std::cell::Cell::default(),
        }
    }
}

impl Host for Memo<'_> {
    fn user_exists(&self, name: &str) -> bool {
        if let Some(&known) = self.users.borrow().get(name) {
            return known;
        }
        let found = self.host.user_exists(name);
        self.users.borrow_mut().insert(name.to_string(), found);
        found
    }

    fn group_exists(&self, name: &str) -> bool {
        if let Some(&known) = self.groups.borrow().get(name) {
            return known;
        }
        let found = self.host.group_exists(name);
        self.groups.borrow_mut().insert(name.to_string(), found);
        found
    }

    fn path_kind(&self, path: &Path) -> PathKind {
        if let Some(&known) = self.paths.borrow().get(path) {
            return known;
        }
        let found = self.host.path_kind(path);
        self.paths.borrow_mut().insert(path.to_path_buf(), found);
        found
    }

    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        self.host.read_to_string(path)
    }

    fn seccomp_target(&self) -> crate::seccomp::Target {
        let t = self
            .target
            .get()
            .unwrap_or_else(|| self.host.seccomp_target());
        self.target.set(Some(t));
        t
    }
}

fn v<T: Clone>(f: &Option<Spanned<T>>) -> Option<T> {
    f.as_ref().map(|s| s.value.clone())
}

fn p<T>(f: &Option<Spanned<T>>) -> Pos {
    f.as_ref().map(spanned_pos).unwrap_or(Pos::UNKNOWN)
}

fn list<T: Clone>(f: &Option<Vec<Spanned<T>>>) -> Vec<T> {
    f.as_ref()
        .map(|l| l.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}

fn p_list<T>(f: &Option<Vec<Spanned<T>>>) -> Pos {
    f.as_ref()
        .and_then(|l| l.first())
        .map(spanned_pos)
        .unwrap_or(Pos::UNKNOWN)
}

/// The earliest of some positions that are known: where a section's keys
/// begin, for an error about a key missing from it.
fn first_known(positions: &[Pos]) -> Option<Pos> {
    positions.iter().copied().filter(|p| p.is_known()).min()
}

/// Builds the effective config, or every problem found. `services_key` is
/// where the top-level `services:` key is written (if it is), for the error
/// when it defines no service.
pub fn build(
    raw: RawConfig,
    file: &Path,
    host: &dyn Host,
    services_key: Pos,
) -> Result<Config, Diagnostics> {
    let mut c = Checker::new(file, host);
    let supervisor = supervisor(&mut c, raw.supervisor.unwrap_or_default());
    let raw_groups = raw.groups.unwrap_or_default();
    let raw_services = raw.services.unwrap_or_default();
    let defaults = raw.defaults.unwrap_or_default();

    let group_index = graph::groups_by_name(&raw_groups);
    let groups = groups(&mut c, &raw_groups);

    if raw_services.0.is_empty() {
        c.push(
            Diagnostic::new(Code::ConfigMissingKey, "no services are defined")
                .at(file, services_key)
                .suggest("add a `services:` section with at least one service and its `command`"),
        );
    }
    // The merge copies `defaults` into every service: count first.
    let weight = merged_weight(&defaults, &raw_services, &group_index);
    if !limits::MERGED_VALUES.allows(weight) {
        c.push(
            limits::MERGED_VALUES
                .exceeded("services", weight)
                .at(file, services_key)
                .suggest("`defaults` is copied into every service: move large `env` mappings and lists from `defaults` (or a group's `defaults`) to the services that need them, or split the file"),
        );
        return Err(c.finish());
    }
    // In the file's order, first of each name: hints list them the same
    // way every run.
    let mut seen = HashSet::new();
    let ordered: Vec<&str> = raw_groups
        .iter()
        .map(|(name, _, _)| name)
        .filter(|n| seen.insert(*n))
        .collect();
    let mut group_names = Suggestions::new(&ordered);
    let mut services = Vec::new();
    let mut depends_all = Vec::new();
    let mut bases: HashMap<Option<&str>, RawService> = HashMap::new();
    check_group_defaults(&mut c, &raw_groups);
    for (name, pos, svc) in raw_services.iter() {
        if let Err(e) = check_name(name) {
            c.report(
                Code::ConfigInvalidValue,
                pos,
                format!("service name {}", e.message),
                e.suggestion,
            );
        }
        if group_index.contains_key(name) {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("services.{name}: a group has the same name, and both would be the cgroup <root>/{name}"),
                "rename the service or the group",
            );
        }
        let group = match graph::member_of(svc, &defaults) {
            Some(m) => member_group(&mut c, &mut group_names, &group_index, name, m),
            None => None,
        };
        // `defaults` -> the group's `defaults`, merged once per group.
        let base = bases.entry(group).or_insert_with(|| {
            let group_defaults = group
                .and_then(|g| group_index.get(g))
                .and_then(|g| g.defaults.clone());
            merge_service(defaults.clone(), group_defaults.unwrap_or_default())
        });
        let merged = merge_service(base.clone(), svc.clone());
        services.push(service(&mut c, name, pos, &merged, svc));
        depends_all.push((name.to_string(), merged.depends_on));
    }
    dependencies(&mut c, &depends_all, &services);

    if c.diags.is_empty() {
        Ok(Config {
            source: file.to_path_buf(),
            supervisor,
            groups,
            services,
        })
    } else {
        Err(c.finish())
    }
}

/// How many values the services hold once their defaults are merged in,
/// counted before anything is copied ([`limits::MERGED_VALUES`]).
fn merged_weight(
    defaults: &RawService,
    services: &Entries<RawService>,
    groups: &HashMap<&str, &RawGroup>,
) -> u64 {
    let base = defaults.weight();
    let group_weight: HashMap<&str, u64> = groups
        .iter()
        .map(|(name, g)| (*name, g.defaults.weight()))
        .collect();
    services
        .iter()
        .map(|(_, _, s)| {
            let group = graph::member_of(s, defaults)
                .and_then(|m| group_weight.get(m.value.as_str()))
                .copied()
                .unwrap_or(0);
            base.saturating_add(group).saturating_add(s.weight())
        })
        .fold(0, u64::saturating_add)
}

/// One merge step, field by field, except that a level naming a health probe
/// (http, tcp or exec) replaces the inherited probe instead of adding a second.
fn merge_service(base: RawService, over: RawService) -> RawService {
    let over_probe = over
        .health
        .as_ref()
        .map(|h| (h.http.clone(), h.tcp.clone(), h.exec.clone()));
    let mut merged = base.merge(over);
    if let (Some((http, tcp, exec)), Some(h)) = (over_probe, merged.health.as_mut())
        && (http.is_some() || tcp.is_some() || exec.is_some())
    {
        (h.http, h.tcp, h.exec) = (http, tcp, exec);
    }
    merged
}

/// Validates `yaml` as `/etc/bulkhead/b.yaml` on a typical described host:
/// the unit tests' way in.
#[cfg(test)]
fn test_load(yaml: &str) -> Result<crate::config::Config, Diagnostics> {
    let h = crate::config::host::fake::FakeHost::typical();
    crate::config::parse_str(yaml, Path::new("/etc/bulkhead/b.yaml"), &h)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_load as load;

    #[test]
    fn the_defined_groups_hint_lists_them_in_file_order() {
        let mut yaml = String::from("groups:\n");
        for g in [9, 3, 11, 0, 7, 1, 10, 4, 8, 2, 6, 5] {
            yaml += &format!("  g{g}: {{}}\n");
        }
        yaml += "services:\n  web: {command: [/bin/true], member_of: zzz}\n";
        let e = load(&yaml).unwrap_err();
        let hint = e.0[0].suggestion.clone().unwrap_or_default();
        assert_eq!(
            hint,
            "defined groups: g9, g3, g11, g0, g7, g1, g10, g4, g8, g2 (and 2 more)"
        );
    }

    #[test]
    fn the_defaults_merge_is_bounded_before_anything_is_copied() {
        // 1,024 variables in defaults, 600 services: 614k merged values.
        let mut yaml = String::from("defaults:\n  env:\n");
        for i in 0..1024 {
            yaml += &format!("    V{i}: x\n");
        }
        yaml += "services:\n";
        for i in 0..600 {
            yaml += &format!("  s{i}: {{command: [/bin/true]}}\n");
        }
        let e = load(&yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        let d = &e.0[0];
        assert_eq!(d.code, Code::ConfigLimit);
        assert_eq!(d.context[0], ("limit".into(), "merged_values".into()));
        assert_eq!(
            d.pos,
            Some(Pos {
                line: 1027,
                column: 1
            })
        );
    }

    #[test]
    fn a_mistake_in_defaults_is_reported_a_bounded_number_of_times() {
        let mut yaml =
            String::from("defaults:\n  security:\n    capabilities: [CAP_NOPE]\nservices:\n");
        for i in 0..100 {
            yaml += &format!("  s{i}: {{command: [/bin/true]}}\n");
        }
        let e = load(&yaml).unwrap_err();
        let keep = limits::ERRORS_PER_KIND.max_usize();
        assert_eq!(e.len(), keep, "{e}");
        let more = e
            .iter()
            .flat_map(|d| d.context.iter())
            .find(|(k, _)| k == "same_error_more_times");
        assert_eq!(more.map(|(_, v)| v.as_str()), Some("80"));
    }
}
