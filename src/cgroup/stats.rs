//! Pure parsers for cgroup v2 stat files.
