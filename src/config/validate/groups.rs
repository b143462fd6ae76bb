//! `groups:`: each group's name and aggregate `resources`, what a group's
//! `defaults` may not hold, and which group a service's `member_of` names.
//! It must not merge a group's `defaults` into its members (`build` does)
//! nor look at the services' own settings.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::Checker;
use super::names::check_name;
use super::resources::resources;
use crate::config::model::Group;
use crate::config::node::spanned_pos;
use crate::config::schema::RawGroup;
use crate::config::shape::{Entries, Suggestions};
use crate::error::Code;

/// Each group: a usable name, and `resources` without rlimits (those
/// belong to processes).
pub(super) fn groups(c: &mut Checker, raw_groups: &Entries<RawGroup>) -> Vec<Group> {
    let mut groups = Vec::new();
    for (name, pos, g) in raw_groups.iter() {
        if let Err(e) = check_name(name) {
            c.report(
                Code::ConfigInvalidValue,
                pos,
                format!("group name {}", e.message),
                e.suggestion,
            );
        }
        let res = g.resources.clone().unwrap_or_default();
        if res.rlimits.is_some() {
            c.report(
                Code::ConfigConflict,
                pos,
                format!("groups.{name}.resources.rlimits: rlimits apply to processes, not to a group"),
                format!("move them to groups.{name}.defaults.resources.rlimits to give every member the same rlimits"),
            );
        }
        groups.push(Group {
            name: name.to_string(),
            resources: resources(c, &format!("groups.{name}"), &res),
        });
    }
    groups
}

/// A group's `defaults` cannot name a group.
pub(super) fn check_group_defaults(c: &mut Checker, raw_groups: &Entries<RawGroup>) {
    for (gname, _, g) in raw_groups.iter() {
        if let Some(m) = g.defaults.as_ref().and_then(|d| d.member_of.as_ref()) {
            c.report(
                Code::ConfigConflict,
                spanned_pos(m),
                format!(
                    "groups.{gname}.defaults.member_of: a group's defaults cannot name a group"
                ),
                "set member_of on the service (or in the top-level defaults)",
            );
        }
    }
}

/// The group `member_of` (`m`, of service `name`) names, if it is defined;
/// else an error with the closest group name.
pub(super) fn member_group<'a>(
    c: &mut Checker,
    group_names: &mut Suggestions<'a>,
    group_index: &HashMap<&'a str, &RawGroup>,
    name: &str,
    m: &Spanned<String>,
) -> Option<&'a str> {
    match group_index.get_key_value(m.value.as_str()) {
        Some((&g, _)) => Some(g),
        None => {
            let known = group_names.list();
            let best = group_names.closest(&m.value);
            c.report(
                Code::ConfigUnknownReference,
                spanned_pos(m),
                format!("services.{name}.member_of: no group named `{}`", m.value),
                match best {
                    Some(b) => format!("did you mean `{b}`?"),
                    None if group_index.is_empty() => "define it under `groups:`".to_string(),
                    None => format!("defined groups: {known}"),
                },
            );
            None
        }
    }
}
