//! Reading files bulkhead does not trust (a config, a seccomp profile it
//! names, a cached program): bounded in bytes, refusing anything that is
//! not a regular file before opening it. A leaf: it imports only `error`.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::error::{Code, Diagnostic, Limit};

/// Bytes in a file a config names (a seccomp profile).
pub const INCLUDED_FILE_BYTES: Limit = Limit::new(
    "included_file_bytes",
    1 << 20,
    "bytes in a file the config names",
);

/// Why [`read_bounded`] refused or failed.
#[derive(Debug)]
pub enum ReadError {
    /// `stat`, `open` or `read` failed.
    Io(std::io::Error),
    /// Not a regular file: what it is ("a FIFO", "a directory", ...).
    NotAFile(&'static str),
    /// More bytes than the limit. `exact` when `seen` is the file's size;
    /// otherwise the read stopped at `seen` bytes and the size is unknown
    /// (a /proc file says 0 and has more).
    TooLarge {
        limit: Limit,
        seen: u64,
        exact: bool,
    },
    /// The bytes are not UTF-8 (only from [`read_text`]).
    NotUtf8(std::str::Utf8Error),
}

impl ReadError {
    /// The error as an `io::Error` whose message says what was refused,
    /// for APIs that return one.
    pub fn into_io(self) -> std::io::Error {
        use std::io::{Error, ErrorKind};
        match self {
            ReadError::Io(e) => e,
            ReadError::NotAFile(kind) => Error::new(
                ErrorKind::InvalidInput,
                format!("{kind}, not a regular file"),
            ),
            e @ ReadError::TooLarge { .. } => Error::new(ErrorKind::InvalidData, e.to_string()),
            ReadError::NotUtf8(e) => Error::new(ErrorKind::InvalidData, e),
        }
    }
}

impl ReadError {
    /// For [`ReadError::TooLarge`]: a `CONFIG_TOO_LARGE` built by the
    /// limit ([`Limit::exceeded`]) about `subject`, with the size seen, or
    /// "more than N" (message and `seen`) when the read stopped before the
    /// end. The caller adds the file and a suggestion.
    pub fn too_large(&self, subject: impl std::fmt::Display) -> Option<Diagnostic> {
        let ReadError::TooLarge { limit, seen, exact } = *self else {
            return None;
        };
        let mut d = limit.exceeded(&subject, seen);
        d.code = Code::ConfigTooLarge;
        if !exact {
            d.message = format!("{subject}: {self}");
            if let Some(v) = d.context.iter_mut().find(|(k, _)| k == "seen") {
                v.1 = format!("more than {}", limit.max);
            }
        }
        Some(d)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::NotAFile(kind) => write!(f, "{kind}, not a regular file"),
            ReadError::TooLarge {
                limit,
                seen,
                exact: true,
            } => f.write_str(&limit.describe(*seen)),
            ReadError::TooLarge { limit, .. } => write!(
                f,
                "more than {} {} (limit {}; the read stopped there)",
                limit.max, limit.what, limit.name
            ),
            ReadError::NotUtf8(e) => write!(f, "not UTF-8 text: {e}"),
        }
    }
}

/// What a file type is called in messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Reads a regular file of at most `limit.max` bytes, trusting neither the
/// path nor `stat`:
/// - anything but a regular file (a FIFO, a device, a directory, a pipe as
///   `/dev/stdin`) is refused before it is opened for reading, so a FIFO
///   cannot hang the reader and `/dev/zero` cannot fill memory;
/// - the file is opened `O_NONBLOCK | O_NOCTTY | O_CLOEXEC` and checked again
///   through the descriptor (the path may have been replaced in between);
/// - a size past the limit is refused without reading;
/// - at most `limit.max` + one chunk is read whatever the size says
///   (`/proc/self/pagemap` says 0 and holds terabytes).
///
/// Memory is bounded by the limit plus 64 KiB.
pub fn read_bounded(path: &Path, limit: &Limit) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    /// A multiple of 8: /proc/self/pagemap refuses reads of other sizes.
    const CHUNK: usize = 64 << 10;
    let too_large = |seen: u64, exact: bool| ReadError::TooLarge {
        limit: *limit,
        seen,
        exact,
    };
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(meta.file_type())));
    }
    if !limit.allows(meta.len()) {
        return Err(too_large(meta.len(), true));
    }
    // std opens with O_CLOEXEC already.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(meta.file_type())));
    }
    if !limit.allows(meta.len()) {
        return Err(too_large(meta.len(), true));
    }
    let max = limit.max_usize();
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(max).min(max));
    let mut chunk = vec![0u8; CHUNK];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > max {
                    let seen = u64::try_from(out.len()).unwrap_or(u64::MAX);
                    return Err(too_large(seen, false));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_text(path: &Path, limit: &Limit) -> Result<String, ReadError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|e| ReadError::NotUtf8(e.utf8_error()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SMALL: Limit = INCLUDED_FILE_BYTES;

    #[test]
    fn reads_a_regular_file_up_to_the_limit_exactly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let at_limit = vec![b'a'; SMALL.max_usize()];
        std::fs::write(&p, &at_limit).unwrap();
        assert_eq!(read_bounded(&p, &SMALL).unwrap().len(), SMALL.max_usize());
        std::fs::write(&p, [at_limit.as_slice(), b"b"].concat()).unwrap();
        match read_bounded(&p, &SMALL) {
            Err(ReadError::TooLarge { seen, exact, .. }) => {
                assert_eq!((seen, exact), (SMALL.max + 1, true));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, b"\xff").unwrap();
        assert!(matches!(read_text(&p, &SMALL), Err(ReadError::NotUtf8(_))));
    }

    #[test]
    fn a_sparse_file_past_the_limit_is_refused_by_its_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sparse");
        std::fs::File::create(&p)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        let e = read_bounded(&p, &SMALL).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { seen, exact: true, .. } if seen == 256 << 20));
        let diag = e.too_large("f").unwrap();
        assert_eq!(diag.code, Code::ConfigTooLarge);
        assert!(
            diag.context
                .contains(&("seen".into(), (256u64 << 20).to_string()))
        );
    }

    #[test]
    fn a_proc_file_that_says_size_zero_is_read_only_to_the_limit() {
        // stat says 0; the file has an entry per page of the address space.
        let e = read_bounded(Path::new("/proc/self/pagemap"), &SMALL).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { exact: false, .. }),
            "{e:?}"
        );
        let diag = e.too_large("pagemap").unwrap();
        assert!(diag.message.contains("more than 1048576"), "{diag:?}");
        assert!(
            diag.context
                .contains(&("seen".into(), "more than 1048576".into()))
        );
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_unopened() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Opening a FIFO for reading would block until a writer comes.
        for (p, kind) in [
            (fifo.as_path(), "a FIFO (named pipe)"),
            (Path::new("/dev/zero"), "a character device"),
            (d.path(), "a directory"),
        ] {
            match read_bounded(p, &SMALL) {
                Err(ReadError::NotAFile(k)) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", p.display()),
            }
        }
        let e = read_bounded(&d.path().join("absent"), &SMALL).unwrap_err();
        assert_eq!(e.into_io().kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn the_real_host_reads_profiles_bounded() {
        use crate::config::host::{Host, RealHost};
        let e = RealHost.read_to_string(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let e = RealHost
            .read_to_string(Path::new("/proc/self/pagemap"))
            .unwrap_err();
        assert!(e.to_string().contains("included_file_bytes"), "{e}");
    }
}
