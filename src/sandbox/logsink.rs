//! The init's log writer: the service's stdout and stderr arrive on a pipe
//! and go to a size-rotated file (`name`, `name.1` .. `name.<keep>`).
//!
//! The directory is opened before the init changes its mounts and every later
//! operation is relative to that fd, so a service whose `mounts` hide the log
//! directory still has its output kept. A write error (a full disk) drops
//! that chunk and carries on: the service must never block on its logs
//! because the disk is full, and the init must never die of it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};

use super::spec::LogSpec;

/// The smallest rotation size honoured; smaller values would rotate on
/// every line.
pub const MIN_SIZE: u64 = 4096;

pub struct LogSink {
    dir: OwnedFd,
    name: OsString,
    file: File,
    size: u64,
    max_size: u64,
    keep: u32,
    /// Bytes lost to write errors, reported once in the file when writing
    /// works again.
    dropped: u64,
}

impl LogSink {
    /// Opens (creating) the log file for appending.
    pub fn open(spec: &LogSpec) -> io::Result<LogSink> {
        let parent = spec
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let name = spec
            .path
            .file_name()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?
            .to_os_string();
        let dir = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let file = open_append(&dir, &name, false)?;
        let size = file.metadata()?.len();
        Ok(LogSink {
            dir,
            name,
            file,
            size,
            max_size: spec.max_size.max(MIN_SIZE),
            keep: spec.keep,
            dropped: 0,
        })
    }

    /// Appends `data`, rotating whenever the file would pass the size limit.
    /// A chunk that does not fit is cut after its last whole line that does
    /// (or at the limit, for a line longer than a whole file).
    pub fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room =
                usize::try_from(self.max_size.saturating_sub(self.size)).unwrap_or(usize::MAX);
            if data.len() <= room {
                self.append(data);
                return;
            }
            let cut = match data[..room].iter().rposition(|&b| b == b'\n') {
                Some(nl) => nl + 1,
                None if self.size == 0 => room,
                None => 0,
            };
            self.append(&data[..cut]);
            data = &data[cut..];
            if self.rotate().is_err() {
                // Keep appending to the current file rather than lose output.
                self.append(data);
                return;
            }
        }
    }

    fn append(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if self.dropped > 0 {
            let note = format!("[bulkhead: {} bytes of output lost]\n", self.dropped);
            if self.file.write_all(note.as_bytes()).is_ok() {
                self.size += u64::try_from(note.len()).unwrap_or(0);
                self.dropped = 0;
            }
        }
        match self.file.write_all(data) {
            Ok(()) => self.size = self.size.saturating_add(len),
            Err(_) => self.dropped = self.dropped.saturating_add(len),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        // name.(keep-1) -> name.keep, ..., name.1 -> name.2, name -> name.1;
        // the oldest is overwritten by the rename.
        for i in (1..self.keep).rev() {
            match rustix::fs::renameat(
                &self.dir,
                numbered(&self.name, i),
                &self.dir,
                numbered(&self.name, i + 1),
            ) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        rustix::fs::renameat(&self.dir, &self.name, &self.dir, numbered(&self.name, 1))?;
        self.file = open_append(&self.dir, &self.name, true)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(name: &OsStr, i: u32) -> OsString {
    let mut n = name.to_os_string();
    n.push(format!(".{i}"));
    n
}

fn open_append(dir: &OwnedFd, name: &OsStr, truncate: bool) -> io::Result<File> {
    let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC;
    if truncate {
        flags |= OFlags::TRUNC;
    }
    let fd = rustix::fs::openat(dir, name.as_bytes(), flags, Mode::from_raw_mode(0o640))?;
    Ok(File::from(fd))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sink(dir: &std::path::Path, max: u64, keep: u32) -> LogSink {
        LogSink::open(&LogSpec {
            path: dir.join("svc.log"),
            max_size: max,
            keep,
        })
        .unwrap()
    }

    fn read(dir: &std::path::Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name)).ok()
    }

    #[test]
    fn appends_then_rotates_keeping_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), 4096, 2);
        let chunk = |c: char| c.to_string().repeat(3000);
        for c in ['a', 'b', 'c', 'd'] {
            s.write(chunk(c).as_bytes());
        }
        // Each 3000-byte chunk would pass 4096 on top of the previous one.
        assert_eq!(read(d.path(), "svc.log"), Some(chunk('d')));
        assert_eq!(read(d.path(), "svc.log.1"), Some(chunk('c')));
        assert_eq!(read(d.path(), "svc.log.2"), Some(chunk('b')));
        assert_eq!(read(d.path(), "svc.log.3"), None);
    }

    #[test]
    fn reopening_continues_the_size_count() {
        let d = tempfile::tempdir().unwrap();
        sink(d.path(), 4096, 1).write(&[b'x'; 3000]);
        let mut s = sink(d.path(), 4096, 1);
        s.write(&[b'y'; 3000]);
        assert_eq!(read(d.path(), "svc.log").unwrap().len(), 3000);
        assert!(read(d.path(), "svc.log.1").unwrap().starts_with('x'));
    }

    #[test]
    fn keep_zero_truncates_in_place_and_small_sizes_are_raised() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), 10, 0);
        s.write(&[b'x'; 4000]);
        s.write(&[b'y'; 100]);
        assert_eq!(read(d.path(), "svc.log").unwrap(), "y".repeat(100));
        assert_eq!(read(d.path(), "svc.log.1"), None);
    }

    #[test]
    fn a_line_longer_than_a_file_is_cut_at_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), 4096, 1);
        s.write(&[b'z'; 10000]);
        assert_eq!(read(d.path(), "svc.log").unwrap().len(), 10000 - 2 * 4096);
        assert_eq!(read(d.path(), "svc.log.1").unwrap().len(), 4096);
    }

    #[test]
    fn a_large_chunk_is_cut_between_lines() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), 4096, 3);
        let text: String = (0..300).map(|i| format!("line {i:04}\n")).collect();
        s.write(text.as_bytes());
        let mut all = String::new();
        for n in ["svc.log.3", "svc.log.2", "svc.log.1", "svc.log"] {
            let f = read(d.path(), n).unwrap_or_default();
            assert!(f.len() <= 4096);
            assert!(f.is_empty() || f.ends_with('\n'), "{n} ends mid-line");
            all.push_str(&f);
        }
        assert_eq!(all, text, "nothing lost, nothing reordered");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(
            LogSink::open(&LogSpec {
                path: d.path().join("nope/svc.log"),
                max_size: 4096,
                keep: 1
            })
            .is_err()
        );
    }
}
