//! `bulkhead events [SERVICE] [-n N] [--json] [-f]`: the events the daemon
//! keeps, one line each ([`render::event_line`], or one JSON object per line),
//! then, with `-f`, the new ones as they come, by long polls that ask for
//! the events after the last seq seen:
//!
//! ```text
//! GET /v1/events                  -> the kept events 1..=41, last_seq 41: print them
//! GET /v1/events?after=41&wait=1  -> (held until seq 42 exists)  print 42
//! GET /v1/events?after=42&wait=1  -> (25 s, nothing)  no events, last_seq 42: ask again
//! ```
//! Following ends quietly, with a note on stderr, when the daemon goes away
//! (it stops, or the socket is gone), and when the reader does (`| head`).
//!
//! Messages can hold service text (a failing probe's first line of output):
//! the CLI hands [`print()`] a writer that shows control characters escaped
//! when stdout is a terminal ([`super::escape`]); the JSON form stays valid.

use std::io::{self, Write};

use super::client::ClientError;
use super::render;
use crate::api::proto::{EventRecord, EventsReply};

/// What to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Only the last `lines` kept events (every one when `None`); following
    /// prints every new one.
    pub lines: Option<usize>,
    /// One [`EventRecord`] as JSON per line instead of text.
    pub json: bool,
    /// Keep printing new events until the daemon goes away.
    pub follow: bool,
}

/// Why printing stopped short.
#[derive(Debug)]
pub enum Error {
    /// The daemon could not be asked, or refused (before following, or with
    /// an error other than going away while following).
    Daemon(ClientError),
    /// stdout failed (other than the reader going away).
    Output(io::Error),
}

/// Prints the events `fetch` returns, as `opts` says, to `out`; notes (events
/// missed, the daemon gone) go to `notes`. `fetch(after, wait)` is one
/// request ([`super::client::events`] with the service filled in).
pub fn print(
    mut fetch: impl FnMut(Option<u64>, bool) -> Result<EventsReply, ClientError>,
    opts: &Options,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<(), Error> {
    let first = fetch(None, false).map_err(Error::Daemon)?;
    let skip = opts
        .lines
        .map_or(0, |n| first.events.len().saturating_sub(n));
    if !write(out, &first.events[skip..], opts.json)? || !opts.follow {
        return Ok(());
    }
    let mut after = first.last_seq;
    loop {
        let reply = match fetch(Some(after), true) {
            Ok(r) => r,
            Err(e) if e.daemon_gone() => {
                note(
                    notes,
                    &format!("stopped following: {}", e.to_diagnostic().message),
                );
                return Ok(());
            }
            Err(e) => return Err(Error::Daemon(e)),
        };
        if reply.dropped > 0 {
            let n = reply.dropped;
            note(
                notes,
                &format!(
                    "missed {n} event{}: the daemon no longer keeps {}",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" }
                ),
            );
        }
        if reply.last_seq < after {
            // Seqs only grow within one daemon's life.
            note(
                notes,
                &format!(
                    "the daemon restarted (event seq {after} -> {}): following the new one",
                    reply.last_seq
                ),
            );
        }
        if !write(out, &reply.events, opts.json)? {
            return Ok(());
        }
        after = reply.last_seq;
    }
}

/// Writes the events; `false` when the reader has gone (`| head`).
fn write(out: &mut impl Write, events: &[EventRecord], json: bool) -> Result<bool, Error> {
    if events.is_empty() {
        return Ok(true);
    }
    let mut text = String::new();
    for e in events {
        if json {
            text += &serde_json::to_string(e).map_err(|e| Error::Output(e.into()))?;
        } else {
            text += &render::event_line(e);
        }
        text.push('\n');
    }
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Output(e)),
    }
}

fn note(notes: &mut impl Write, text: &str) {
    let _ = writeln!(notes, "note: {text}");
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::PathBuf;

    use super::*;
    use crate::api::proto::ApiError;

    fn event(seq: u64) -> EventRecord {
        EventRecord {
            seq,
            time: format!("2026-11-23T10:00:{seq:02}.000Z"),
            service: "web".into(),
            instance: "0".into(),
            kind: "state".into(),
            state: Some("running".into()),
            message: format!("event {seq}"),
            ..EventRecord::default()
        }
    }

    fn reply(seqs: impl Iterator<Item = u64>, last_seq: u64, dropped: u64) -> EventsReply {
        EventsReply {
            events: seqs.map(event).collect(),
            last_seq,
            dropped,
        }
    }

    fn gone() -> ClientError {
        ClientError::NotRunning {
            socket: PathBuf::from("/run/x.sock"),
            source: io::ErrorKind::NotFound.into(),
        }
    }

    /// The requests made (`after`, `wait`), stdout, stderr and the result.
    type Run = (Vec<(Option<u64>, bool)>, String, String, Result<(), Error>);

    /// Runs [`print`] against canned answers.
    fn run(answers: Vec<Result<EventsReply, ClientError>>, opts: &Options) -> Run {
        let mut answers = VecDeque::from(answers);
        let mut asked = Vec::new();
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let result = print(
            |after, wait| {
                asked.push((after, wait));
                answers.pop_front().unwrap_or_else(|| Err(gone()))
            },
            opts,
            &mut out,
            &mut notes,
        );
        (
            asked,
            String::from_utf8(out).unwrap(),
            String::from_utf8(notes).unwrap(),
            result,
        )
    }

    #[test]
    fn without_follow_it_prints_the_kept_events_once() {
        let (asked, out, notes, r) = run(vec![Ok(reply(1..=3, 3, 0))], &Options::default());
        assert!(r.is_ok());
        assert_eq!(asked, [(None, false)]);
        assert_eq!(
            out,
            "2026-11-23T10:00:01.000Z web/0 state running: event 1\n\
             2026-11-23T10:00:02.000Z web/0 state running: event 2\n\
             2026-11-23T10:00:03.000Z web/0 state running: event 3\n"
        );
        assert_eq!(notes, "");
    }

    #[test]
    fn lines_keeps_the_last_n_and_json_is_one_object_a_line() {
        let opts = Options {
            lines: Some(2),
            json: true,
            ..Options::default()
        };
        let (_, out, _, _) = run(vec![Ok(reply(1..=3, 3, 0))], &opts);
        let got: Vec<EventRecord> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got, [event(2), event(3)]);
        let opts = Options {
            lines: Some(0),
            ..Options::default()
        };
        assert_eq!(run(vec![Ok(reply(1..=3, 3, 0))], &opts).1, "");
    }

    #[test]
    fn follow_asks_after_the_last_seq_notes_drops_and_stops_when_the_daemon_goes() {
        let opts = Options {
            lines: Some(1),
            follow: true,
            ..Options::default()
        };
        let (asked, out, notes, r) = run(
            vec![
                Ok(reply(1..=2, 2, 0)),
                // A long poll that timed out.
                Ok(reply(std::iter::empty(), 2, 0)),
                Ok(reply(3..=3, 3, 0)),
                Ok(reply(7..=8, 8, 3)),
                Err(ClientError::Api(ApiError {
                    status: 503,
                    code: "DAEMON_SHUTTING_DOWN".into(),
                    message: "the daemon is shutting down".into(),
                    rendered: String::new(),
                })),
            ],
            &opts,
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            asked,
            [
                (None, false),
                (Some(2), true),
                (Some(2), true),
                (Some(3), true),
                (Some(8), true)
            ]
        );
        let seqs: Vec<&str> = out.lines().map(|l| &l[l.len() - 1..]).collect();
        assert_eq!(seqs, ["2", "3", "7", "8"]);
        assert_eq!(
            notes,
            "note: missed 3 events: the daemon no longer keeps them\n\
             note: stopped following: the daemon is shutting down\n"
        );
    }

    #[test]
    fn an_error_at_the_start_or_other_than_going_away_is_returned() {
        let (_, out, _, r) = run(vec![Err(gone())], &Options::default());
        assert!(matches!(
            r,
            Err(Error::Daemon(ClientError::NotRunning { .. }))
        ));
        assert_eq!(out, "");
        let opts = Options {
            follow: true,
            ..Options::default()
        };
        let (_, _, notes, r) = run(
            vec![
                Ok(reply(1..=1, 1, 0)),
                Err(ClientError::Api(ApiError {
                    status: 404,
                    ..ApiError::default()
                })),
            ],
            &opts,
        );
        assert!(matches!(r, Err(Error::Daemon(ClientError::Api(_)))));
        assert_eq!(notes, "");
    }

    #[test]
    fn a_reader_that_goes_away_ends_it_quietly() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let opts = Options {
            follow: true,
            ..Options::default()
        };
        let mut asked = 0;
        let r = print(
            |_, _| {
                asked += 1;
                Ok(reply(1..=1, 1, 0))
            },
            &opts,
            &mut Closed,
            &mut io::sink(),
        );
        assert!(r.is_ok());
        assert_eq!(asked, 1);
    }
}
