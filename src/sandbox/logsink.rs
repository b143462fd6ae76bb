//! The init's log writer: the service's stdout and stderr arrive on two
//! pipes and go to a size-rotated file (`name`, `name.1` .. `name.<keep>`),
//! one line per line written, prefixed with the time (UTC, milliseconds)
//! and the stream:
//!
//! ```text
//! 2026-11-23T11:05:27.123Z out listening on 127.0.0.1:8080
//! 2026-11-23T11:05:27.124Z err warning: no config, using defaults
//! ```
//! A line longer than [`MAX_LINE`] is cut there and continues on the next
//! line with the same prefix; a last line without a newline is written
//! when the stream ends.
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

/// Which of the service's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out = 0,
    Err = 1,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// The longest line kept whole.
pub const MAX_LINE: usize = 16 * 1024;

pub struct LogSink {
    /// Each stream's unfinished last line.
    partial: [Vec<u8>; 2],
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
            partial: [Vec::new(), Vec::new()],
            dir,
            name,
            file,
            size,
            max_size: spec.max_size.max(MIN_SIZE),
            keep: spec.keep,
            dropped: 0,
        })
    }

    /// Takes what a stream produced: every completed line is written with
    /// its prefix; the rest waits for its newline (or [`MAX_LINE`]).
    pub fn stream(&mut self, stream: Stream, data: &[u8], now: std::time::SystemTime) {
        let mut pending = std::mem::take(&mut self.partial[stream as usize]);
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
            self.line(stream, &pending[start..start + nl], now);
            start += nl + 1;
        }
        while pending.len() - start >= MAX_LINE {
            self.line(stream, &pending[start..start + MAX_LINE], now);
            start += MAX_LINE;
        }
        pending.drain(..start);
        self.partial[stream as usize] = pending;
    }

    /// Writes both streams' unfinished lines (the streams have ended).
    pub fn finish(&mut self, now: std::time::SystemTime) {
        for stream in [Stream::Out, Stream::Err] {
            let rest = std::mem::take(&mut self.partial[stream as usize]);
            if !rest.is_empty() {
                self.line(stream, &rest, now);
            }
        }
    }

    fn line(&mut self, stream: Stream, text: &[u8], now: std::time::SystemTime) {
        let mut line = timestamp(now).into_bytes();
        line.push(b' ');
        line.extend_from_slice(stream.tag().as_bytes());
        line.push(b' ');
        line.extend_from_slice(text);
        line.push(b'\n');
        self.write(&line);
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

/// `2026-11-23T11:05:27.123Z`: RFC 3339 in UTC with milliseconds.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by eras of
/// 400 years (146097 days), each starting on March 1st so that the leap day
/// ends a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days since 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
    fn timestamps_are_utc_with_milliseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(timestamp(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(
            timestamp(at(1_795_431_927, 123)),
            "2026-11-23T11:05:27.123Z"
        );
        assert_eq!(
            timestamp(at(4_107_542_399, 999)),
            "2100-02-28T23:59:59.999Z"
        );
        assert_eq!(timestamp(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn civil_dates_match_a_day_by_day_walk() {
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        for days in 0..200_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn streams_become_prefixed_lines() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), 1 << 20, 1);
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_431_927_123);
        s.stream(Stream::Out, b"one\ntw", now);
        s.stream(Stream::Err, b"oops\n", now);
        s.stream(Stream::Out, b"o\nthree", now);
        s.finish(now);
        let ts = "2026-11-23T11:05:27.123Z";
        assert_eq!(
            read(d.path(), "svc.log").unwrap(),
            format!("{ts} out one\n{ts} err oops\n{ts} out two\n{ts} out three\n")
        );
    }

    #[test]
    fn a_line_past_max_line_continues_on_the_next() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), 1 << 20, 1);
        let now = std::time::UNIX_EPOCH;
        s.stream(Stream::Out, &vec![b'x'; MAX_LINE + 10], now);
        s.finish(now);
        let text = read(d.path(), "svc.log").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(&"x".repeat(MAX_LINE)));
        assert!(lines[1].ends_with(" out xxxxxxxxxx"));
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
