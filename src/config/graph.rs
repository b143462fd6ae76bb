//! The graph between services and groups: what a `depends_on` entry and a
//! `member_of` resolve to, and dependency cycles. Pure functions over the
//! built services and the file as written: they find, they do not report.
//! The messages, positions and suggestions are [`super::validate`]'s; no
//! host lookups and no diagnostics here.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::model::Service;
use super::schema::{RawGroup, RawService};
use super::shape::Entries;

/// What a `depends_on` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// No service of that name.
    Unknown,
    /// A template (`isolation`): its instances start on demand, never in order.
    Template,
    /// A regular service.
    Service,
}

/// What `name` in a `depends_on` list is, given [`index_by_name`]'s index.
pub fn dependency(services: &[Service], index: &HashMap<&str, usize>, name: &str) -> Dependency {
    match index.get(name).map(|&i| &services[i]) {
        None => Dependency::Unknown,
        Some(t) if t.isolation.is_some() => Dependency::Template,
        Some(_) => Dependency::Service,
    }
}

/// The groups by name; the first of two groups of one name counts (the
/// walk reports the second).
pub fn groups_by_name(groups: &Entries<RawGroup>) -> HashMap<&str, &RawGroup> {
    let mut index: HashMap<&str, &RawGroup> = HashMap::new();
    for (name, _, g) in groups.iter() {
        index.entry(name).or_insert(g);
    }
    index
}

/// The group a service names: its own `member_of`, else the top-level
/// `defaults`' (a group's `defaults` cannot name one).
pub fn member_of<'a>(
    service: &'a RawService,
    defaults: &'a RawService,
) -> Option<&'a Spanned<String>> {
    service.member_of.as_ref().or(defaults.member_of.as_ref())
}

/// Each service's index by name (the first of a name).
pub fn index_by_name(services: &[Service]) -> HashMap<&str, usize> {
    let mut index = HashMap::with_capacity(services.len());
    for (i, s) in services.iter().enumerate() {
        index.entry(s.name.as_str()).or_insert(i);
    }
    index
}

/// A dependency cycle as a path that ends where it starts (`a -> b -> a`).
/// Depth-first with an explicit stack: linear in services and edges, and a
/// chain of 4,096 services uses no more thread stack than one.
pub fn find_cycle(services: &[Service]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let index = index_by_name(services);
    let edges: Vec<Vec<usize>> = services
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut marks = vec![Mark::New; services.len()];
    // Where each active service sits on the path.
    let mut on_path: Vec<usize> = vec![usize::MAX; services.len()];
    for start in 0..services.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // (service, next edge to follow)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        on_path[start] = 0;
        while let Some(top) = stack.last_mut() {
            let (i, next) = *top;
            match edges[i].get(next) {
                None => {
                    marks[i] = Mark::Done;
                    stack.pop();
                }
                Some(&j) => {
                    top.1 += 1;
                    match marks[j] {
                        Mark::Active => {
                            let from = on_path[j];
                            let mut path: Vec<String> = stack[from..]
                                .iter()
                                .map(|&(k, _)| services[k].name.clone())
                                .collect();
                            path.push(services[j].name.clone());
                            return Some(path);
                        }
                        Mark::New => {
                            marks[j] = Mark::Active;
                            on_path[j] = stack.len();
                            stack.push((j, 0));
                        }
                        Mark::Done => {}
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::limits;

    fn svc(name: &str, deps: &[&str]) -> Service {
        let yaml = format!("services:\n  {name}:\n    command: [/bin/true]\n");
        let h = crate::config::host::fake::FakeHost::typical();
        let mut cfg = crate::config::parse_str(&yaml, Path::new("/etc/b.yaml"), &h).unwrap();
        let mut s = cfg.services.remove(0);
        s.depends_on = deps.iter().map(ToString::to_string).collect();
        s
    }

    #[test]
    fn cycles_are_found_on_long_chains() {
        // a chain of 4,096: s0 depends on s1, ..., the last on nothing.
        let n = limits::SERVICES.max_usize();
        let template = svc("s", &[]);
        let chain: Vec<Service> = (0..n)
            .map(|i| {
                let mut s = template.clone();
                s.name = format!("s{i}");
                if i + 1 < n {
                    s.depends_on = vec![format!("s{}", i + 1)];
                }
                s
            })
            .collect();
        assert_eq!(find_cycle(&chain), None);
        let mut looped = chain;
        looped[n - 1].depends_on = vec!["s0".into()];
        let cycle = find_cycle(&looped).unwrap();
        assert_eq!(cycle.len(), n + 1);
        assert_eq!(cycle.first(), cycle.last());

        let small = vec![
            svc("a", &["b"]),
            svc("b", &["c"]),
            svc("c", &["b"]),
            svc("d", &[]),
        ];
        let small: Vec<Service> = small
            .into_iter()
            .zip(["a", "b", "c", "d"])
            .map(|(mut s, n)| {
                s.name = n.into();
                s
            })
            .collect();
        assert_eq!(find_cycle(&small).unwrap(), ["b", "c", "b"]);
        // A self-dependency is the shortest cycle.
        let own = vec![svc("a", &["a"])];
        assert_eq!(find_cycle(&own).unwrap(), ["a", "a"]);
        // An unknown name is no edge.
        assert_eq!(find_cycle(&[svc("a", &["nope"])]), None);
    }

    #[test]
    fn dependencies_resolve_to_the_first_service_of_a_name() {
        let mut template = svc("t", &[]);
        template.isolation = Some(crate::config::schema::Isolation::Session);
        let services = vec![svc("web", &[]), template, svc("web", &[])];
        let index = index_by_name(&services);
        assert_eq!(index.get("web"), Some(&0));
        assert_eq!(dependency(&services, &index, "web"), Dependency::Service);
        assert_eq!(dependency(&services, &index, "t"), Dependency::Template);
        assert_eq!(dependency(&services, &index, "db"), Dependency::Unknown);
    }

    #[test]
    fn membership_comes_from_the_service_else_the_defaults() {
        let raw: crate::config::schema::RawConfig = serde_saphyr::from_str_with_options(
            "defaults: {member_of: batch}\ngroups:\n  web: {}\n  batch: {}\n  web: {resources: {}}\nservices:\n  a: {command: [x], member_of: web}\n  b: {command: [x]}\n",
            crate::config::options(),
        )
        .unwrap();
        let defaults = raw.defaults.unwrap_or_default();
        let services = raw.services.unwrap_or_default();
        let named: Vec<&str> = services
            .iter()
            .map(|(_, _, s)| member_of(s, &defaults).unwrap().value.as_str())
            .collect();
        assert_eq!(named, ["web", "batch"]);
        assert_eq!(
            member_of(&RawService::default(), &RawService::default()),
            None
        );
        let groups = raw.groups.unwrap_or_default();
        let by_name = groups_by_name(&groups);
        assert_eq!(by_name.len(), 2);
        // The first `web` (no resources) counts.
        assert!(by_name["web"].resources.is_none());
    }
}
