//! `bulkhead logs`: the daemon names each instance's log file ([`LogsReply`]);
//! this module reads them. The init's log sink ([`crate::sandbox::logsink`])
//! writes one line per line of output, time first, and rotates by renaming:
//!
//! ```text
//! web.log.3  web.log.2  web.log.1  web.log        oldest .. newest
//! 2026-11-23T11:05:27.123Z out listening on 127.0.0.1:8080
//! ```
//!
//! * Tail: the last N lines of an instance are read backwards from the end
//!   of `web.log`, then of `web.log.1`, ... only as far as N lines need.
//!   The instances' lines are merged by their timestamps (which sort as
//!   text), each instance's own order kept, and the last N of the merge are
//!   shown, prefixed with `web/1 | ` when the service has several instances.
//! * Follow: each instance's file stays open and is read from where the
//!   tail stopped. When the name points at another inode the file was
//!   rotated: the open file is read to its end first (the sink renames only
//!   after its last write to it), then any files rotated past it since the
//!   last poll, then the new file from its start. A file that shrinks in
//!   place (`keep: 0` truncates) is read again from its start. A line is
//!   shown once it has its newline, so a half-written line is never cut.
//! * The lines are the service's bytes: the CLI hands [`print()`] a writer
//!   that shows their control characters escaped when stdout is a terminal
//!   ([`super::escape`]), and leaves them raw for a pipe, a file or `--raw`.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::proto::{LogFile, LogsReply};
use crate::error::{Code, Diagnostic};

/// How often `-f` looks for new output.
pub const POLL: Duration = Duration::from_millis(200);

/// Bytes read per step, backwards for a tail and forwards when following.
const BLOCK: usize = 64 * 1024;

/// Attempts at a tail that a rotation keeps overtaking.
const TAIL_ATTEMPTS: usize = 5;

/// One line of output without its newline.
pub type Line = Vec<u8>;

/// `path.k`: the k-th newest rotated file.
pub fn numbered(path: &Path, k: u32) -> PathBuf {
    let mut p = path.as_os_str().to_os_string();
    p.push(format!(".{k}"));
    PathBuf::from(p)
}

/// What identifies a file across renames.
type FileId = (u64, u64);

fn id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

fn metadata(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn open(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The end of a file read backwards: up to `n` complete lines before `end`,
/// and what follows the last newline (a line still being written, or the
/// unterminated end of a file cut at its size limit).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Back {
    pub lines: Vec<Line>,
    pub partial: Line,
}

/// Reads `file` backwards from `end` in blocks until it has seen `n`
/// complete lines (n + 1 newlines, the first ending the line before them)
/// or the start of the file.
pub fn last_lines(file: &File, end: u64, n: usize) -> io::Result<Back> {
    let mut pos = end;
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0;
    while pos > 0 && newlines <= n {
        let step = pos.min(BLOCK as u64);
        pos -= step;
        let mut block = vec![0; usize::try_from(step).unwrap_or(BLOCK)];
        file.read_exact_at(&mut block, pos)?;
        newlines += block.iter().filter(|&&b| b == b'\n').count();
        block.extend_from_slice(&buf);
        buf = block;
    }
    let mut pieces: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    let partial = pieces.pop().unwrap_or_default().to_vec();
    if pos > 0 && !pieces.is_empty() {
        // Its start lies before what was read.
        pieces.remove(0);
    }
    let skip = pieces.len().saturating_sub(n);
    Ok(Back {
        lines: pieces[skip..].iter().map(|l| l.to_vec()).collect(),
        partial,
    })
}

/// The last `n` lines of one instance's output, oldest first, and a
/// [`Follower`] that continues right after them.
pub fn tail(file: &LogFile, n: usize) -> io::Result<(Vec<Line>, Follower)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(done) = try_tail(file, n)? {
            return Ok(done);
        }
        if attempt >= TAIL_ATTEMPTS {
            return Err(io::Error::other(format!(
                "{} keeps rotating while it is read",
                file.path.display()
            )));
        }
    }
}

/// One attempt; `None` when a rotation moved the files while they were read.
fn try_tail(file: &LogFile, n: usize) -> io::Result<Option<(Vec<Line>, Follower)>> {
    let mut follower = Follower::new(file);
    let mut lines = Vec::new();
    let mut current = None;
    if let Some(f) = open(&file.path)? {
        let meta = f.metadata()?;
        let back = last_lines(&f, meta.len(), n)?;
        follower.offset = meta.len() - back.partial.len() as u64;
        lines = back.lines;
        current = Some(id(&meta));
        follower.file = Some((f, id(&meta)));
    }
    for k in 1..=file.keep {
        if lines.len() >= n {
            break;
        }
        let path = numbered(&file.path, k);
        let Some(f) = open(&path)? else { break };
        let meta = f.metadata()?;
        if Some(id(&meta)) == current {
            return Ok(None);
        }
        let back = last_lines(&f, meta.len(), n - lines.len())?;
        let mut older = back.lines;
        if !back.partial.is_empty() {
            older.push(back.partial);
        }
        let skip = older.len().saturating_sub(n - lines.len());
        older.drain(..skip);
        older.append(&mut lines);
        lines = older;
    }
    Ok(Some((lines, follower)))
}

/// Follows one instance's log file across rotations.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    keep: u32,
    /// The file being read and its identity; `None` until it exists.
    file: Option<(File, FileId)>,
    /// Where the next read starts: just after the last complete line.
    offset: u64,
}

impl Follower {
    /// Starts at the beginning of whatever file is at `file.path` when
    /// first polled.
    pub fn new(file: &LogFile) -> Follower {
        Follower {
            path: file.path.clone(),
            keep: file.keep,
            file: None,
            offset: 0,
        }
    }

    /// The complete lines written since the last poll, oldest first.
    pub fn poll(&mut self) -> io::Result<Vec<Line>> {
        let mut out = Vec::new();
        if self.file.is_none() {
            let Some(f) = open(&self.path)? else {
                return Ok(out);
            };
            let fid = id(&f.metadata()?);
            self.file = Some((f, fid));
            self.offset = 0;
        }
        // Look at the name before reading: once it points elsewhere, the
        // open file has had its last write.
        let named = metadata(&self.path)?.map(|m| id(&m));
        let Some((file, ours)) = &self.file else {
            return Ok(out);
        };
        let ours = *ours;
        if file.metadata()?.len() < self.offset {
            // Truncated in place (keep: 0): what is there now is new.
            self.offset = 0;
        }
        let rotated_away = named != Some(ours);
        self.offset = read_lines(file, self.offset, rotated_away, &mut out)?;
        if !rotated_away {
            return Ok(out);
        }
        // Files rotated past ours since the last poll, oldest first: those
        // numbered below ours, or all of them when ours is gone.
        let mut rotated = Vec::new();
        for k in 1..=self.keep {
            let path = numbered(&self.path, k);
            match metadata(&path)? {
                Some(m) if id(&m) == ours => break,
                Some(_) => rotated.push(path),
                None => {}
            }
        }
        for path in rotated.iter().rev() {
            if let Some(f) = open(path)? {
                read_lines(&f, 0, true, &mut out)?;
            }
        }
        self.file = None;
        self.offset = 0;
        if named.is_some() {
            out.append(&mut self.poll()?);
        }
        Ok(out)
    }
}

/// Appends the lines of `file` from `offset` to its end to `out` and returns
/// the offset after the last newline. With `to_end`, an unterminated last
/// line counts too (the file will not grow any more).
fn read_lines(file: &File, offset: u64, to_end: bool, out: &mut Vec<Line>) -> io::Result<u64> {
    let mut pos = offset;
    let mut pending: Vec<u8> = Vec::new();
    let mut block = vec![0; BLOCK];
    loop {
        let got = file.read_at(&mut block, pos)?;
        if got == 0 {
            break;
        }
        pos += got as u64;
        pending.extend_from_slice(&block[..got]);
        if let Some(last) = pending.iter().rposition(|&b| b == b'\n') {
            out.extend(pending[..last].split(|&b| b == b'\n').map(<[u8]>::to_vec));
            pending.drain(..=last);
        }
    }
    if to_end && !pending.is_empty() {
        out.push(std::mem::take(&mut pending));
    }
    Ok(pos - pending.len() as u64)
}

/// The sortable time at the start of a sink line
/// (`2026-11-23T11:05:27.123Z`), if it has one.
fn stamp(line: &[u8]) -> Option<&[u8]> {
    let s = line.get(..24)?;
    (s[4] == b'-' && s[10] == b'T' && s[19] == b'.' && s[23] == b'Z').then_some(s)
}

/// Interleaves the instances' lines by time. Each instance's lines stay in
/// their order; a line without a time (the sink's note about lost output)
/// goes with the line before it; ties go to the lower instance.
pub fn merge(per_instance: Vec<Vec<Line>>) -> Vec<(usize, Line)> {
    let keyed: Vec<Vec<(Vec<u8>, Line)>> = per_instance
        .into_iter()
        .map(|lines| {
            let mut key = Vec::new();
            lines
                .into_iter()
                .map(|l| {
                    if let Some(s) = stamp(&l) {
                        key = s.to_vec();
                    }
                    (key.clone(), l)
                })
                .collect()
        })
        .collect();
    let total = keyed.iter().map(Vec::len).sum();
    let mut heads = vec![0usize; keyed.len()];
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let next = (0..keyed.len())
            .filter(|&i| heads[i] < keyed[i].len())
            .min_by(|&a, &b| keyed[a][heads[a]].0.cmp(&keyed[b][heads[b]].0));
        let Some(i) = next else { break };
        out.push((i, keyed[i][heads[i]].1.clone()));
        heads[i] += 1;
    }
    out
}

/// The prefix of each instance's lines: none for a single instance,
/// `web/0 | ` (padded to one width) for several.
pub fn labels(reply: &LogsReply) -> Vec<String> {
    if reply.files.len() < 2 {
        return vec![String::new(); reply.files.len()];
    }
    let names: Vec<String> = reply
        .files
        .iter()
        .map(|f| format!("{}/{}", reply.service, f.instance))
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    names.iter().map(|n| format!("{n:<width$} | ")).collect()
}

/// Prints the last `n` lines of the service's output to `out`, then, with
/// `follow`, whatever it writes next, until the reader goes away.
pub fn print(
    reply: &LogsReply,
    n: usize,
    follow: bool,
    out: &mut impl Write,
) -> Result<(), Diagnostic> {
    let read_error = |f: &LogFile, e: io::Error| {
        Diagnostic::new(
            Code::LogRead,
            format!("cannot read the log of {}/{}", reply.service, f.instance),
        )
        .context("path", f.path.display())
        .cause(e)
    };
    let labels = labels(reply);
    let mut followers = Vec::new();
    let mut tails = Vec::new();
    for f in &reply.files {
        let (lines, follower) = tail(f, n).map_err(|e| read_error(f, e))?;
        tails.push(lines);
        followers.push(follower);
    }
    let merged = merge(tails);
    let skip = merged.len().saturating_sub(n);
    if !write(out, &labels, &merged[skip..])? || !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(POLL);
        let mut new = Vec::new();
        for (follower, f) in followers.iter_mut().zip(&reply.files) {
            new.push(follower.poll().map_err(|e| read_error(f, e))?);
        }
        if !write(out, &labels, &merge(new))? {
            return Ok(());
        }
    }
}

/// Writes the lines; `false` when the reader has gone (`| head`).
fn write(
    out: &mut impl Write,
    labels: &[String],
    lines: &[(usize, Line)],
) -> Result<bool, Diagnostic> {
    let mut text = Vec::new();
    for (i, line) in lines {
        text.extend_from_slice(labels.get(*i).map_or("", String::as_str).as_bytes());
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    match out.write_all(&text).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Diagnostic::new(Code::LogRead, "cannot write the log to stdout").cause(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn log(dir: &Path, keep: u32) -> LogFile {
        LogFile {
            instance: "0".into(),
            path: dir.join("svc.log"),
            keep,
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Rotates as the sink does: `.k-1` -> `.k`, ..., name -> `.1`.
    fn rotate(file: &LogFile) {
        for i in (1..file.keep).rev() {
            let _ = std::fs::rename(numbered(&file.path, i), numbered(&file.path, i + 1));
        }
        std::fs::rename(&file.path, numbered(&file.path, 1)).unwrap();
    }

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn numbered_lines(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn last_lines_reads_back_across_blocks() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        // ~100 KiB, so the tail crosses a block boundary.
        append(&path, &numbered_lines(0, 10_000));
        let f = File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let back = last_lines(&f, len, 3).unwrap();
        assert_eq!(text(&back.lines), ["line 9997", "line 9998", "line 9999"]);
        assert!(back.partial.is_empty());
        let all = last_lines(&f, len, 20_000).unwrap();
        assert_eq!(all.lines.len(), 10_000);
        assert_eq!(text(&all.lines[..1]), ["line 0"]);
        assert!(last_lines(&f, len, 0).unwrap().lines.is_empty());
    }

    #[test]
    fn last_lines_keeps_a_line_in_progress_apart() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        append(&path, "a\nb\nhalf");
        let f = File::open(&path).unwrap();
        let back = last_lines(&f, 8, 5).unwrap();
        assert_eq!(text(&back.lines), ["a", "b"]);
        assert_eq!(back.partial, b"half");
        assert_eq!(last_lines(&f, 0, 5).unwrap(), Back::default());
    }

    #[test]
    fn tail_reads_rotated_files_only_as_far_as_needed() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 3);
        append(&numbered(&file.path, 3), &numbered_lines(0, 10));
        append(&numbered(&file.path, 2), &numbered_lines(10, 20));
        append(&numbered(&file.path, 1), &numbered_lines(20, 30));
        append(&file.path, &numbered_lines(30, 33));
        let (lines, _) = tail(&file, 5).unwrap();
        assert_eq!(
            text(&lines),
            ["line 28", "line 29", "line 30", "line 31", "line 32"]
        );
        let (lines, _) = tail(&file, 15).unwrap();
        assert_eq!(text(&lines)[0], "line 18");
        let (lines, _) = tail(&file, 1000).unwrap();
        assert_eq!(lines.len(), 33);
        // An unreadable oldest file (a directory: EISDIR) is only read
        // when the lines are needed.
        std::fs::remove_file(numbered(&file.path, 3)).unwrap();
        std::fs::create_dir(numbered(&file.path, 3)).unwrap();
        let (lines, _) = tail(&file, 23).unwrap();
        assert_eq!(text(&lines)[0], "line 10");
        assert!(tail(&file, 24).is_err());
    }

    #[test]
    fn tail_of_a_service_that_never_wrote_is_empty_and_follows_the_first_file() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 2);
        let (lines, mut f) = tail(&file, 10).unwrap();
        assert!(lines.is_empty());
        assert!(f.poll().unwrap().is_empty());
        append(&file.path, "first\n");
        assert_eq!(text(&f.poll().unwrap()), ["first"]);
    }

    #[test]
    fn follow_continues_after_the_tail_and_waits_for_whole_lines() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 2);
        append(&file.path, "a\nb\nhal");
        let (lines, mut f) = tail(&file, 10).unwrap();
        assert_eq!(text(&lines), ["a", "b"]);
        assert!(f.poll().unwrap().is_empty());
        append(&file.path, "f\nc\n");
        assert_eq!(text(&f.poll().unwrap()), ["half", "c"]);
        assert!(f.poll().unwrap().is_empty());
    }

    #[test]
    fn follow_reads_the_old_file_to_its_end_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 2);
        append(&file.path, "1\n");
        let (_, mut f) = tail(&file, 10).unwrap();
        append(&file.path, "2\n");
        rotate(&file);
        append(&file.path, "3\n");
        assert_eq!(text(&f.poll().unwrap()), ["2", "3"]);
        append(&file.path, "4\n");
        assert_eq!(text(&f.poll().unwrap()), ["4"]);
    }

    #[test]
    fn follow_catches_up_on_several_rotations_between_polls() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 3);
        append(&file.path, "1\n");
        let (_, mut f) = tail(&file, 10).unwrap();
        append(&file.path, "2\n");
        rotate(&file);
        append(&file.path, "3\n");
        rotate(&file);
        append(&file.path, "4\n");
        rotate(&file);
        append(&file.path, "5");
        assert_eq!(text(&f.poll().unwrap()), ["2", "3", "4"]);
        append(&file.path, "\n");
        assert_eq!(text(&f.poll().unwrap()), ["5"]);
    }

    #[test]
    fn follow_takes_the_newer_files_when_its_own_was_rotated_out() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 1);
        append(&file.path, "1\n");
        let (_, mut f) = tail(&file, 10).unwrap();
        append(&file.path, "2\n");
        rotate(&file);
        append(&file.path, "3\n");
        rotate(&file);
        append(&file.path, "4\n");
        // "2" was in the open file, still readable though deleted.
        assert_eq!(text(&f.poll().unwrap()), ["2", "3", "4"]);
    }

    #[test]
    fn follow_survives_the_gap_between_rename_and_create() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 2);
        append(&file.path, "1\n");
        let (_, mut f) = tail(&file, 10).unwrap();
        append(&file.path, "2\n");
        rotate(&file);
        assert_eq!(text(&f.poll().unwrap()), ["2"]);
        assert!(f.poll().unwrap().is_empty());
        append(&file.path, "3\n");
        assert_eq!(text(&f.poll().unwrap()), ["3"]);
    }

    #[test]
    fn follow_restarts_a_file_truncated_in_place() {
        let d = tempfile::tempdir().unwrap();
        let file = log(d.path(), 0);
        append(&file.path, "old old old\n");
        let (_, mut f) = tail(&file, 10).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file.path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&file.path, "new\n");
        assert_eq!(text(&f.poll().unwrap()), ["new"]);
    }

    #[test]
    fn merge_interleaves_by_time_and_keeps_each_instances_order() {
        let l = |s: &str| s.as_bytes().to_vec();
        let a = vec![
            l("2026-11-23T11:05:27.100Z out a1"),
            l("[bulkhead: 10 bytes of output lost]"),
            l("2026-11-23T11:05:27.300Z out a2"),
        ];
        let b = vec![
            l("2026-11-23T11:05:27.100Z out b1"),
            l("2026-11-23T11:05:27.200Z out b2"),
            // The clock went back: still after b2.
            l("2026-11-23T11:05:27.050Z out b3"),
            l("2026-11-23T11:05:28.000Z out b4"),
        ];
        let merged: Vec<(usize, String)> = merge(vec![a, b])
            .into_iter()
            .map(|(i, l)| (i, String::from_utf8(l).unwrap()))
            .collect();
        let order: Vec<String> = merged
            .iter()
            .map(|(_, l)| l.rsplit(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(order, ["a1", "lost]", "b1", "b2", "b3", "a2", "b4"]);
        assert_eq!(merged[0].0, 0);
        assert_eq!(merged[2].0, 1);
        assert!(merge(vec![vec![], vec![]]).is_empty());
    }

    #[test]
    fn several_instances_are_labelled_and_the_last_n_are_shown() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<LogFile> = (0..2)
            .map(|i| LogFile {
                instance: i.to_string(),
                path: d.path().join(format!("web.{i}.log")),
                keep: 1,
            })
            .collect();
        append(
            &files[0].path,
            "2026-11-23T11:05:27.100Z out a1\n2026-11-23T11:05:27.300Z out a2\n",
        );
        append(
            &files[1].path,
            "2026-11-23T11:05:27.000Z out b0\n2026-11-23T11:05:27.200Z err b1\n",
        );
        let reply = LogsReply {
            service: "web".into(),
            files,
        };
        let mut out = Vec::new();
        print(&reply, 3, false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "web/0 | 2026-11-23T11:05:27.100Z out a1\n\
             web/1 | 2026-11-23T11:05:27.200Z err b1\n\
             web/0 | 2026-11-23T11:05:27.300Z out a2\n"
        );
        let single = LogsReply {
            service: "web".into(),
            files: reply.files[..1].to_vec(),
        };
        let mut out = Vec::new();
        print(&single, 1, false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-23T11:05:27.300Z out a2\n"
        );
    }

    #[test]
    fn an_unreadable_log_names_its_path() {
        let d = tempfile::tempdir().unwrap();
        let reply = LogsReply {
            service: "web".into(),
            files: vec![LogFile {
                instance: "0".into(),
                // A directory: opens, but reading it fails with EISDIR.
                path: d.path().to_path_buf(),
                keep: 0,
            }],
        };
        let e = print(&reply, 5, false, &mut Vec::new()).unwrap_err();
        assert_eq!(e.code, Code::LogRead);
        assert!(
            e.to_string().contains(&d.path().display().to_string()),
            "{e}"
        );
    }
}
