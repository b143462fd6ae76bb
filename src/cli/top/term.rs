//! Running `bulkhead top`, in one of two ways.
//!
//! [`plain`] (stdout is not a terminal): `-n` frames (one by default) as
//! plain text, a blank line between them, no escape codes.
//!
//! [`interactive`] (stdout is a terminal): the alternate screen with the
//! cursor hidden, one frame per snapshot, cut to the window. Input is read a
//! byte at a time without echo, and with ISIG off Ctrl-C is a key like `q`.
//! One thread waits in poll(2) on three things, with the time to the next
//! snapshot as its timeout:
//!
//! ```text
//! stdin ─────────── c m p i r n: sort and redraw; q, Ctrl-C: quit
//! signalfd ──────── SIGWINCH: redraw; SIGINT, SIGTERM, SIGHUP, SIGQUIT: quit
//! wake socket <──── fetcher thread: a snapshot (or the daemon's error) is ready
//! ```
//! The fetch runs on its own thread, so `q` works while the daemon is slow
//! to answer. The signals are blocked before that thread starts (every
//! thread inherits the mask), so they reach only the signalfd. Whatever ends
//! the view (a key, a signal, an error, a panic), `Screen`'s drop puts
//! the terminal back as it was before the error is printed.

use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::termios::{self, InputModes, LocalModes, OptionalActions, SpecialCodeIndex, Termios};

use super::{Layout, Sort, render, rows};
use crate::api::proto::MetricsReply;
use crate::cli::client::ClientError;

/// What `bulkhead top` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub sort: Sort,
    /// Between snapshots.
    pub interval: Duration,
    /// Stop after this many frames; `None`: one in plain mode, until `q`
    /// on a terminal.
    pub iterations: Option<u64>,
}

/// Why the view ended other than by being asked to.
#[derive(Debug)]
pub enum Error {
    /// The daemon could not be asked, went away, or refused.
    Daemon(ClientError),
    /// The terminal (or stdout) could not be set up or written.
    Output(io::Error),
}

/// A snapshot and when it arrived.
type Snapshot = (MetricsReply, Instant);

/// The lines of a frame: `cur` with the rates since `prev`.
fn frame(prev: Option<&Snapshot>, cur: &Snapshot, layout: &Layout) -> Vec<String> {
    let since = prev.map(|(p, at)| (p, cur.1.saturating_duration_since(*at)));
    render(&cur.0, &rows(since, &cur.0), layout)
}

/// Plain frames to `out`, `opts.interval` apart. A reader that goes away
/// (`| head`) ends it quietly.
pub fn plain(
    mut fetch: impl FnMut() -> Result<MetricsReply, ClientError>,
    opts: &Options,
    out: &mut impl Write,
) -> Result<(), Error> {
    let layout = Layout {
        sort: opts.sort,
        width: usize::MAX,
        height: usize::MAX,
        interval: opts.interval,
        keys: false,
    };
    let mut prev: Option<Snapshot> = None;
    for n in 0..opts.iterations.unwrap_or(1) {
        if let Some((_, at)) = &prev {
            std::thread::sleep((*at + opts.interval).saturating_duration_since(Instant::now()));
        }
        let cur = (fetch().map_err(Error::Daemon)?, Instant::now());
        let mut text = if n == 0 { String::new() } else { "\n".into() };
        for line in frame(prev.as_ref(), &cur, &layout) {
            text.push_str(&line);
            text.push('\n');
        }
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::Output(e)),
        }
        prev = Some(cur);
    }
    Ok(())
}

/// The full-screen view on the terminal that stdout is, until `q`, Ctrl-C,
/// a signal, `opts.iterations` frames, or an error. The first snapshot is
/// taken before the screen is touched, so a daemon that is not running is
/// reported on the normal screen.
pub fn interactive<F>(mut fetch: F, opts: &Options) -> Result<(), Error>
where
    F: FnMut() -> Result<MetricsReply, ClientError> + Send + 'static,
{
    let first = (fetch().map_err(Error::Daemon)?, Instant::now());
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| Error::Output(e.into()))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::Output(e.into()))?;
    let (wake, wake_tx) = UnixStream::pair().map_err(Error::Output)?;
    wake.set_nonblocking(true).map_err(Error::Output)?;
    let (ask, asked) = mpsc::channel::<()>();
    let (answer, answers) = mpsc::channel::<(Result<MetricsReply, ClientError>, Instant)>();
    // Detached: it ends with the process, even in the middle of a request.
    std::thread::spawn(move || {
        let mut wake_tx = wake_tx;
        while asked.recv().is_ok() {
            let reply = fetch();
            if answer.send((reply, Instant::now())).is_err() {
                return;
            }
            let _ = wake_tx.write_all(&[1]);
        }
    });
    let keys = io::stdin().is_terminal();
    let screen = Screen::enter(keys).map_err(Error::Output)?;
    let mut view = View {
        opts: *opts,
        sort: opts.sort,
        prev: None,
        cur: first,
        frames: 1,
        keys,
        signals,
        wake,
        ask,
        answers,
    };
    let result = view.run();
    drop(screen);
    result
}

/// What the interactive view holds between wake-ups.
struct View {
    opts: Options,
    sort: Sort,
    prev: Option<Snapshot>,
    cur: Snapshot,
    /// Snapshots shown so far.
    frames: u64,
    /// stdin is a terminal that is read for keys (until it closes).
    keys: bool,
    signals: SignalFd,
    wake: UnixStream,
    ask: mpsc::Sender<()>,
    answers: mpsc::Receiver<(Result<MetricsReply, ClientError>, Instant)>,
}

/// What one wake-up asks of the loop.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Stay,
    Redraw,
    Quit,
}

impl View {
    fn run(&mut self) -> Result<(), Error> {
        let mut out = io::stdout();
        let mut next_fetch = self.cur.1 + self.opts.interval;
        let mut in_flight = false;
        let mut redraw = true;
        loop {
            if redraw {
                self.draw(&mut out).map_err(Error::Output)?;
                redraw = false;
            }
            if self.opts.iterations.is_some_and(|n| self.frames >= n) {
                return Ok(());
            }
            if !in_flight && Instant::now() >= next_fetch {
                // The fetcher only stops when this end is dropped.
                let _ = self.ask.send(());
                in_flight = true;
                next_fetch = Instant::now() + self.opts.interval;
            }
            let timeout = if in_flight {
                None
            } else {
                Timespec::try_from(next_fetch.saturating_duration_since(Instant::now())).ok()
            };
            let stdin = io::stdin();
            let mut fds = vec![
                PollFd::new(&self.signals, PollFlags::IN),
                PollFd::new(&self.wake, PollFlags::IN),
            ];
            if self.keys {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::Output(e.into())),
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            let mut next = Vec::new();
            if ready[0] {
                next.push(self.on_signal());
            }
            if ready[1] {
                let (n, arrived) = self.on_answer()?;
                if arrived {
                    in_flight = false;
                }
                next.push(n);
            }
            if ready.get(2) == Some(&true) {
                next.push(self.on_input());
            }
            if next.contains(&Next::Quit) {
                return Ok(());
            }
            redraw = next.contains(&Next::Redraw);
        }
    }

    fn draw(&self, out: &mut impl Write) -> io::Result<()> {
        let (width, height) = window();
        let layout = Layout {
            sort: self.sort,
            width,
            height,
            interval: self.opts.interval,
            keys: self.keys,
        };
        let lines = frame(self.prev.as_ref(), &self.cur, &layout);
        out.write_all(paint(&lines, height).as_bytes())?;
        out.flush()
    }

    fn on_signal(&mut self) -> Next {
        let mut next = Next::Stay;
        while let Ok(Some(info)) = self.signals.read_signal() {
            let signal = i32::try_from(info.ssi_signo)
                .ok()
                .and_then(|n| Signal::try_from(n).ok());
            match signal {
                Some(Signal::SIGWINCH) => next = Next::Redraw,
                _ => return Next::Quit,
            }
        }
        next
    }

    /// Takes the fetcher's answers; `true` when one came. The daemon's
    /// error ends the view.
    fn on_answer(&mut self) -> Result<(Next, bool), Error> {
        let mut byte = [0u8; 16];
        let gone = loop {
            match self.wake.read(&mut byte) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        let mut next = Next::Stay;
        let mut arrived = false;
        while let Ok((reply, at)) = self.answers.try_recv() {
            arrived = true;
            let reply = reply.map_err(Error::Daemon)?;
            let cur = std::mem::replace(&mut self.cur, (reply, at));
            self.prev = Some(cur);
            self.frames += 1;
            next = Next::Redraw;
        }
        if gone && !arrived {
            // Its end of the socket closed: the fetcher thread panicked.
            return Err(Error::Output(io::Error::other(
                "the thread that asks the daemon stopped",
            )));
        }
        Ok((next, arrived))
    }

    fn on_input(&mut self) -> Next {
        let mut buf = [0u8; 64];
        // Straight from the fd: std's buffered stdin could keep bytes that
        // poll(2) then no longer reports.
        let n = match rustix::io::read(io::stdin(), &mut buf) {
            Ok(0) | Err(_) => {
                // The terminal hung up.
                return Next::Quit;
            }
            Ok(n) => n,
        };
        match keys(&buf[..n], self.sort) {
            Key::Quit => Next::Quit,
            Key::Sort(s) if s != self.sort => {
                self.sort = s;
                Next::Redraw
            }
            Key::Sort(_) | Key::None => Next::Stay,
        }
    }
}

/// What a read of input asks for.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Quit,
    Sort(Sort),
    None,
}

/// The input bytes of one read, in order: `q` or Ctrl-C quits, a sort key
/// sorts (the last one wins). An escape sequence (an arrow key: `ESC [ C`)
/// ends what is read, so its letters select nothing.
fn keys(input: &[u8], mut sort: Sort) -> Key {
    let mut changed = false;
    for &b in input {
        match b {
            b'q' | b'Q' | 0x03 => return Key::Quit,
            0x1b => break,
            _ => {
                if let Some(s) = Sort::key(b) {
                    sort = s;
                    changed = true;
                }
            }
        }
    }
    if changed { Key::Sort(sort) } else { Key::None }
}

/// The escape codes that draw `lines` over the screen from its top-left
/// corner: each line cleared before it is written (clearing after a line
/// as wide as the window would erase its last character), no newline after
/// the last one (which would scroll a full screen), and the rest of the
/// screen cleared below a shorter frame.
fn paint(lines: &[String], height: usize) -> String {
    let mut text = String::from("\x1b[H");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            text.push_str("\r\n");
        }
        text.push_str("\x1b[2K");
        text.push_str(line);
    }
    if lines.len() < height {
        text.push_str("\r\n\x1b[J");
    }
    text
}

/// The window's columns and rows; 80x24 when the terminal does not say.
fn window() -> (usize, usize) {
    match termios::tcgetwinsize(io::stdout()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (usize::from(w.ws_col), usize::from(w.ws_row)),
        _ => (80, 24),
    }
}

/// The terminal taken over: the alternate screen, the cursor hidden and,
/// when stdin is the terminal, input without line editing, echo or
/// signal keys. Dropping it restores all three.
struct Screen {
    saved: Option<Termios>,
}

/// Alternate screen on, cursor hidden, home, clear.
const ENTER: &str = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
/// Cursor shown, alternate screen off (the screen before it comes back).
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";

impl Screen {
    fn enter(keys: bool) -> io::Result<Screen> {
        let mut screen = Screen { saved: None };
        if keys {
            let saved = termios::tcgetattr(io::stdin())?;
            let mut raw = saved.clone();
            // Bytes as typed, one at a time, not echoed; Ctrl-C and Ctrl-Z
            // are bytes rather than signals; Ctrl-S does not freeze output.
            raw.local_modes.remove(
                LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN,
            );
            raw.input_modes.remove(InputModes::IXON | InputModes::ICRNL);
            raw.special_codes[SpecialCodeIndex::VMIN] = 1;
            raw.special_codes[SpecialCodeIndex::VTIME] = 0;
            termios::tcsetattr(io::stdin(), OptionalActions::Now, &raw)?;
            screen.saved = Some(saved);
        }
        let mut out = io::stdout();
        out.write_all(ENTER.as_bytes())?;
        out.flush()?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = io::stdout();
        let _ = out.write_all(LEAVE.as_bytes()).and_then(|()| out.flush());
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, saved);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::proto::{ApiError, DaemonInfo, InstanceMetrics, ServiceMetrics};

    #[test]
    fn keys_sort_and_quit() {
        assert_eq!(keys(b"m", Sort::Cpu), Key::Sort(Sort::Memory));
        assert_eq!(keys(b"P", Sort::Cpu), Key::Sort(Sort::Pids));
        assert_eq!(keys(b"mi", Sort::Cpu), Key::Sort(Sort::Io));
        assert_eq!(keys(b"x", Sort::Cpu), Key::None);
        assert_eq!(keys(b"mq", Sort::Cpu), Key::Quit);
        assert_eq!(keys(&[0x03], Sort::Cpu), Key::Quit);
        // An arrow key (right: ESC [ C) selects nothing.
        assert_eq!(keys(b"\x1b[C", Sort::Memory), Key::None);
        assert_eq!(keys(b"n\x1b[D", Sort::Memory), Key::Sort(Sort::Name));
    }

    #[test]
    fn painting_never_scrolls_nor_eats_a_last_column() {
        let lines = vec!["ab".to_string(), "cd".to_string()];
        assert_eq!(paint(&lines, 5), "\x1b[H\x1b[2Kab\r\n\x1b[2Kcd\r\n\x1b[J");
        assert_eq!(paint(&lines, 2), "\x1b[H\x1b[2Kab\r\n\x1b[2Kcd");
    }

    fn reply(usec: u64) -> MetricsReply {
        MetricsReply {
            daemon: DaemonInfo {
                version: "0.1.0".into(),
                pid: 7,
                ..DaemonInfo::default()
            },
            services: vec![ServiceMetrics {
                name: "web".into(),
                instances: vec![InstanceMetrics {
                    instance: "0".into(),
                    state: "running".into(),
                    figures: Some(crate::api::proto::CgroupFigures {
                        cpu_usage_usec: Some(usec),
                        ..Default::default()
                    }),
                    ..InstanceMetrics::default()
                }],
                ..ServiceMetrics::default()
            }],
            ..MetricsReply::default()
        }
    }

    #[test]
    fn plain_frames_are_separated_by_a_blank_line_and_have_no_escapes() {
        let mut calls = 0u64;
        let fetch = || {
            calls += 1;
            Ok(reply(calls * 1_000_000))
        };
        let opts = Options {
            sort: Sort::Cpu,
            interval: Duration::from_millis(20),
            iterations: Some(2),
        };
        let mut out = Vec::new();
        plain(fetch, &opts, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b'));
        // Two frames, each ending with a newline, a blank line between.
        assert!(text.starts_with("bulkhead 0.1.0 (pid 7)"), "{text}");
        assert_eq!(text.matches("\n\nbulkhead 0.1.0").count(), 1, "{text}");
        assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{text}");
        let web: Vec<&str> = text.lines().filter(|l| l.starts_with("web/0")).collect();
        assert_eq!(web.len(), 2);
        // The first has no rate, the second has one.
        let cpu = |line: &str| line.split_whitespace().nth(2).unwrap().to_string();
        assert_eq!(cpu(web[0]), "-", "{}", web[0]);
        assert_ne!(cpu(web[1]), "-", "{}", web[1]);
    }

    #[test]
    fn plain_stops_at_the_daemons_error() {
        let mut calls = 0;
        let fetch = || {
            calls += 1;
            if calls == 1 {
                Ok(reply(0))
            } else {
                Err(ClientError::Api(ApiError {
                    status: 503,
                    ..ApiError::default()
                }))
            }
        };
        let opts = Options {
            sort: Sort::Cpu,
            interval: Duration::ZERO,
            iterations: Some(3),
        };
        let mut out = Vec::new();
        let e = plain(fetch, &opts, &mut out).unwrap_err();
        assert!(matches!(e, Error::Daemon(ClientError::Api(_))), "{e:?}");
        assert_eq!(String::from_utf8(out).unwrap().matches("web/0").count(), 1);
    }
}
