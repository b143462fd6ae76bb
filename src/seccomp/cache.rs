//! A cache of compiled programs. libseccomp needs milliseconds to compile a
//! container-sized profile (more than the rest of a spawn), and the result
//! depends only on the profile's text, the capabilities it is resolved
//! against, the extra walls ([`Extra`]), the architecture, the kernel version, and the libseccomp and
//! bulkhead builds. All of those make up the key, so a stale entry is never
//! found; a damaged entry fails the check below and is compiled again.
//!
//! The directory is root's (mode 0700, under the state dir); whoever could
//! write there could also replace the bulkhead binary.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Extra, Insn};
use crate::error::Limit;

/// Bytes in a compiled seccomp program read back from the cache: the
/// kernel's BPF_MAXINSNS (4096) records of 8 bytes.
pub const CACHED_PROGRAM: Limit = Limit::new(
    "cached_program_bytes",
    4096 * 8,
    "bytes in a cached seccomp program",
);

/// The cache file for this input on this host with this build.
pub fn entry(
    dir: &Path,
    text: &str,
    caps: &[String],
    extra: &Extra,
    kernel: (u32, u32),
) -> PathBuf {
    let mut h = std::hash::DefaultHasher::new();
    text.hash(&mut h);
    let mut caps = caps.to_vec();
    caps.sort();
    caps.hash(&mut h);
    let mut extra = extra.clone();
    if let Some(f) = &mut extra.address_families {
        f.sort_unstable();
        f.dedup();
    }
    extra.hash(&mut h);
    kernel.hash(&mut h);
    std::env::consts::ARCH.hash(&mut h);
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| (v.major, v.minor, v.micro))
        .unwrap_or_default();
    lib.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    // The binary itself: a rebuild may compile differently.
    if let Ok(m) = std::fs::metadata("/proc/self/exe") {
        (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()).hash(&mut h);
    }
    dir.join(format!("{:016x}.bpf", h.finish()))
}

/// Encodes a program as `struct sock_filter` records (native endian).
pub fn encode(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for &(code, jt, jf, k) in prog {
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    out
}

/// Decodes records, refusing anything that is not a plausible program: a
/// whole number of records, not empty, within the kernel's length, and
/// ending in a return (BPF_RET = 0x06 in the class bits).
pub fn decode(bytes: &[u8]) -> Option<Vec<Insn>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > super::MAX_INSNS {
        return None;
    }
    let prog: Vec<Insn> = bytes
        .chunks_exact(8)
        .map(|r| {
            (
                u16::from_ne_bytes([r[0], r[1]]),
                r[2],
                r[3],
                u32::from_ne_bytes([r[4], r[5], r[6], r[7]]),
            )
        })
        .collect();
    (prog.last()?.0 & 0x07 == 0x06).then_some(prog)
}

/// The cached program at `path`, if there is a plausible one. At most
/// [`CACHED_PROGRAM`]'s bytes are read (a longer file is no program), and
/// only from a regular file.
pub fn get(path: &Path) -> Option<Vec<Insn>> {
    decode(&crate::input::read_bounded(path, &CACHED_PROGRAM).ok()?)
}

/// Stores a program; failures only cost the next spawn a compile.
pub fn put(path: &Path, prog: &[Insn]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .is_err()
    {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&encode(prog)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let prog = vec![
            (0x20, 0, 0, 4),
            (0x15, 1, 0, 0xc000_003e),
            (0x06, 0, 0, 0x7fff_0000),
        ];
        assert_eq!(decode(&encode(&prog)), Some(prog.clone()));
        let bytes = encode(&prog);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "a partial record");
        assert_eq!(decode(&bytes[..16]), None, "not ending in a return");
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn the_key_covers_text_and_capabilities_but_not_their_order() {
        let d = Path::new("/c");
        let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = Extra::default();
        let a = entry(d, "{}", &caps(&["CAP_A", "CAP_B"]), &none, (6, 1));
        assert_eq!(a, entry(d, "{}", &caps(&["CAP_B", "CAP_A"]), &none, (6, 1)));
        assert_ne!(
            a,
            entry(d, "{ }", &caps(&["CAP_A", "CAP_B"]), &none, (6, 1))
        );
        assert_ne!(a, entry(d, "{}", &caps(&["CAP_A"]), &none, (6, 1)));
        assert_ne!(a, entry(d, "{}", &caps(&["CAP_A", "CAP_B"]), &none, (6, 2)));
        // The walls are part of the key; the order of families is not.
        let fam = |f: &[i32]| Extra {
            address_families: Some(f.to_vec()),
            ..Extra::default()
        };
        let ab = caps(&["CAP_A", "CAP_B"]);
        let u = entry(d, "{}", &ab, &fam(&[1, 2]), (6, 1));
        assert_ne!(a, u);
        assert_eq!(u, entry(d, "{}", &ab, &fam(&[2, 1]), (6, 1)));
        assert_ne!(u, entry(d, "{}", &ab, &fam(&[1]), (6, 1)));
        let clock = Extra {
            protect_clock: true,
            ..Extra::default()
        };
        assert_ne!(a, entry(d, "{}", &ab, &clock, (6, 1)));
    }

    #[test]
    fn the_read_cap_is_the_longest_program() {
        assert_eq!(CACHED_PROGRAM.max_usize(), super::super::MAX_INSNS * 8);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.bpf");
        // A whole number of records ending in a return, one record too many.
        let prog = vec![(0x06, 0, 0, 0x7fff_0000); super::super::MAX_INSNS + 1];
        std::fs::write(&p, encode(&prog)).unwrap();
        assert_eq!(get(&p), None);
        assert_eq!(get(d.path()), None, "a directory");
    }

    #[test]
    fn put_then_get() {
        let d = tempfile::tempdir().unwrap();
        let p = entry(&d.path().join("cache"), "x", &[], &Extra::default(), (6, 1));
        assert_eq!(get(&p), None);
        let prog = vec![(0x06, 0, 0, 0x7fff_0000)];
        put(&p, &prog);
        assert_eq!(get(&p), Some(prog));
    }
}
