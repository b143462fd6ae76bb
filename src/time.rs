//! Time as the pure parts of bulkhead see it. A leaf: it imports nothing
//! from the crate.

/// A monotonic instant: the time since an epoch the driver picks (e.g. its
/// start, from `Instant::elapsed`). A `Duration` keeps arithmetic total
/// (saturating) and tests free to start at zero.
pub type Mono = std::time::Duration;
