//! What the tests that generate input share: a host that answers lookups
//! but reads no file, and a small seeded random generator.

use std::path::Path;

use bulkhead::config::host::{Host, PathKind, RealHost};

/// This host's users, groups and paths, but no file contents: a generated
/// `seccomp:` value must not read whatever file it happens to name.
pub struct NoReads;

impl Host for NoReads {
    fn user_exists(&self, name: &str) -> bool {
        RealHost.user_exists(name)
    }
    fn group_exists(&self, name: &str) -> bool {
        RealHost.group_exists(name)
    }
    fn path_kind(&self, path: &Path) -> PathKind {
        RealHost.path_kind(path)
    }
    fn read_to_string(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::ErrorKind::NotFound.into())
    }
    fn seccomp_target(&self) -> bulkhead::seccomp::Target {
        RealHost.seccomp_target()
    }
}

/// xorshift64*: small, seeded, reproducible. The seed must not be 0.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % n as u64).unwrap()
    }

    /// True with probability `pct`%.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
