//! `depends_on` across services: unknown names (with a bounded
//! suggestion), dependencies on templates, and cycles. The graph itself is
//! [`crate::config::graph`]'s; this module only turns what it finds into
//! diagnostics at the right positions, and must not walk the graph itself.

use serde_saphyr::Spanned;

use super::Checker;
use crate::config::graph::{self, Dependency};
use crate::config::model::*;
use crate::config::node::spanned_pos;
use crate::config::shape::Suggestions;
use crate::error::{Code, Pos};

/// Unknown names in `depends_on`, dependencies on templates, and cycles.
/// Reads the merged lists, so a `depends_on` from defaults is checked too.
pub(super) fn dependencies(
    c: &mut Checker,
    merged: &[(String, Option<Vec<Spanned<String>>>)],
    services: &[Service],
) {
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let index = graph::index_by_name(services);
    let mut suggest = Suggestions::new(&names);
    for (name, deps) in merged {
        for dep in deps.iter().flatten() {
            match graph::dependency(services, &index, &dep.value) {
                Dependency::Unknown => {
                    let help = match suggest.closest(&dep.value) {
                        Some(b) => format!("did you mean `{b}`?"),
                        None => format!("defined services: {}", suggest.list()),
                    };
                    c.report(
                        Code::ConfigUnknownReference,
                        spanned_pos(dep),
                        format!("services.{name}.depends_on: no service named `{}`", dep.value),
                        help,
                    );
                }
                Dependency::Template => c.report(
                    Code::ConfigConflict,
                    spanned_pos(dep),
                    format!("services.{name}.depends_on: `{}` is a template; its instances start on demand", dep.value),
                    "depend on a regular service instead",
                ),
                Dependency::Service => {}
            }
        }
    }
    if let Some(cycle) = graph::find_cycle(services) {
        let first = &cycle[0];
        let pos = merged
            .iter()
            .find(|(n, _)| n == first)
            .and_then(|(_, d)| d.as_ref())
            .and_then(|d| d.iter().find(|x| x.value == cycle[1]))
            .map(spanned_pos)
            .unwrap_or(Pos::UNKNOWN);
        c.report(
            Code::ConfigDependencyCycle,
            pos,
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
            "remove one of these dependencies so the services can start in order",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_load as load;
    use crate::error::Code;

    #[test]
    fn unknown_dependencies_get_a_bounded_suggestion() {
        let mut yaml = String::from("services:\n");
        for i in 0..50 {
            yaml += &format!("  s{i}: {{command: [/bin/true], depends_on: [x{i}]}}\n");
        }
        let e = load(&yaml).unwrap_err();
        assert_eq!(e.len(), 50);
        assert!(e.iter().all(|d| d.code == Code::ConfigUnknownReference));
        let last = e.0[49].suggestion.clone().unwrap_or_default();
        assert_eq!(
            last,
            "defined services: s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 (and 40 more)"
        );
        assert_eq!(e.0[0].suggestion.as_deref(), Some("did you mean `s0`?"));
    }
}
