//! Every bound bulkhead puts on its input, declared once.
//!
//! A config file, a seccomp profile and a control request are written by
//! people who may be careless or hostile; each of these limits is far above
//! what a real file needs and far below what would let the input cost the
//! daemon much memory or time. Every error that refuses a value for passing
//! one of them names the limit (`limit`), its bound (`max`) and the value seen
//! (`seen`), built by [`Limit::exceeded`].

pub use crate::error::{ERRORS, ERRORS_PER_KIND, Limit};
pub use crate::input::INCLUDED_FILE_BYTES;
pub use crate::seccomp::cache::CACHED_PROGRAM;

/// Bytes in a config file. Bytes are read at most this plus one, whatever
/// `stat` says (a /proc file reports size 0).
pub const FILE_BYTES: Limit = Limit::new("file_bytes", 4 << 20, "bytes in the config file");

/// Services (and templates) in one config.
pub const SERVICES: Limit = Limit::new("services", 4096, "services");

/// Replicas of one service (`instances`): each is built when the config is
/// loaded, with a port, a dynamic uid and a cgroup.
pub const INSTANCES: Limit = Limit::new("instances", 1024, "replicas");

/// Variables in one `env` mapping (after `defaults` are merged in).
pub const ENV_ENTRIES: Limit = Limit::new("env_entries", 4096, "environment variables");

/// Items in one list (command arguments, capabilities, groups, rules).
pub const LIST_ITEMS: Limit = Limit::new("list_items", 4096, "items in one list");

/// Keys in one mapping.
pub const MAP_KEYS: Limit = Limit::new("map_keys", 8192, "keys in one mapping");

/// Bytes in a service, group or template name (a cgroup directory name).
pub const NAME_BYTES: Limit = Limit::new("name_bytes", 64, "bytes in a name");

/// Bytes in one string value (an argument, a variable, a path).
pub const STRING_BYTES: Limit = Limit::new("string_bytes", 64 << 10, "bytes in one string");

/// Seconds in any duration: every duration ends up added to an `Instant` or
/// turned into a timer, and `Instant + 300000000000y` panics.
pub const DURATION_SECS: Limit =
    Limit::new("duration_secs", 3650 * 86_400, "seconds in a duration");

/// Rotated files one log keeps (`logs.keep`): each rotation renames all.
pub const LOGS_KEEP: Limit = Limit::new("logs_keep", 1000, "kept log files");

/// Values all services hold once `defaults` and their group's `defaults`
/// are merged into each (every set leaf, list item and map entry counts
/// one): the merge copies, so 20k variables in `defaults.env` and 5,000
/// services would be 100 million. Checked before anything is copied.
pub const MERGED_VALUES: Limit = Limit::new(
    "merged_values",
    1 << 19,
    "values in all services with their defaults merged in",
);

/// YAML parse events (a scalar, the start or end of a list or mapping) in
/// the file: the parser stops there, before the walk.
pub const YAML_EVENTS: Limit = Limit::new("yaml_events", 200_000, "YAML parse events");

/// Nodes (values) in the parsed YAML.
pub const YAML_NODES: Limit = Limit::new("yaml_nodes", 200_000, "YAML nodes");

/// Levels of nesting in the YAML.
pub const YAML_DEPTH: Limit = Limit::new("yaml_depth", 32, "levels of nesting");

/// Aliases (`*name`) in the file.
pub const YAML_ALIASES: Limit = Limit::new("yaml_aliases", 1_000, "aliases");

/// Anchors (`&name`) in the file.
pub const YAML_ANCHORS: Limit = Limit::new("yaml_anchors", 1_000, "anchors");

/// Events recorded under anchors for replay by aliases.
pub const YAML_ANCHORED_EVENTS: Limit =
    Limit::new("yaml_anchored_events", 20_000, "events under anchors");

/// Bytes in all scalars, aliases expanded.
pub const YAML_SCALAR_BYTES: Limit =
    Limit::new("yaml_scalar_bytes", 8 << 20, "bytes in all values");

/// Every limit, for `bulkhead config limits` and the reference.
pub const ALL: &[Limit] = &[
    FILE_BYTES,
    INCLUDED_FILE_BYTES,
    SERVICES,
    INSTANCES,
    ENV_ENTRIES,
    LIST_ITEMS,
    MAP_KEYS,
    NAME_BYTES,
    STRING_BYTES,
    DURATION_SECS,
    LOGS_KEEP,
    ERRORS_PER_KIND,
    ERRORS,
    CACHED_PROGRAM,
    MERGED_VALUES,
    YAML_EVENTS,
    YAML_NODES,
    YAML_DEPTH,
    YAML_ALIASES,
    YAML_ANCHORS,
    YAML_ANCHORED_EVENTS,
    YAML_SCALAR_BYTES,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn names_are_unique_and_bounds_positive() {
        let mut names: Vec<_> = ALL.iter().map(|l| l.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|l| l.max > 0));
    }

    #[test]
    fn exceeded_names_limit_bound_and_value() {
        let d = INSTANCES.exceeded("services.web.instances", 5000);
        assert_eq!(d.code, Code::ConfigLimit);
        let ctx: Vec<_> = d
            .context
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            ctx,
            [("limit", "instances"), ("max", "1024"), ("seen", "5000")]
        );
        assert!(d.message.contains("5000 replicas is more than 1024"));
        assert!(INSTANCES.allows(1024) && !INSTANCES.allows(1025));
    }
}
