//! Bytes a service wrote, made safe for the admin's terminal.
//!
//! A service's log lines, a failing probe's first line of output (in event
//! messages and `last event`), an exit reason: any of them can hold
//! terminal control sequences. Copied raw to a terminal, `ESC ] 0 ; ... BEL`
//! retitles the window, `ESC [ 2 J` wipes the screen, `\r` overwrites
//! what the line said, and some terminals answer queries as if typed.
//! When stdout is a terminal, the CLI shows them instead, as journalctl
//! does; to a pipe or a file (or with `--raw`) the bytes stay as written.
//!
//! ```text
//! ESC [ 3 1 m r e d      -> \x1b[31mred          C0 (but \n and \t): \xNN
//! a \r b                 -> a\x0db
//! DEL                    -> \u007f
//! U+009B (C1 CSI, UTF-8) -> \u009b                C1 U+0080..U+009F: \u00NN
//! 0x9b (not UTF-8)       -> \x9b                  any byte that is not UTF-8
//! é, 中, \t, \n          -> as they are
//! ```
//! An ESC shown as text leaves the rest of its sequence as harmless text.
//! DEL and C1 are written `\u00NN`, so JSON output (which `serde_json`
//! writes with C0 escaped already) stays valid JSON with the same meaning;
//! C0 and bytes that are not UTF-8 never appear raw in JSON. A backslash
//! is left alone: a service printing `\x1b` as text looks the same as an
//! escaped ESC, which is only cosmetic.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};

/// Whether `c` is shown escaped: C0 but `\n` and `\t`, DEL, C1.
fn is_control(c: char) -> bool {
    (c < ' ' && c != '\n' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// `bytes` with every control character (C0 but `\n` and `\t`, DEL, C1)
/// and every byte that is not UTF-8 written in a visible form (see the
/// module docs); borrowed when there is none.
pub fn escape(bytes: &[u8]) -> Cow<'_, [u8]> {
    let clean = match std::str::from_utf8(bytes) {
        Ok(s) => !s.chars().any(is_control),
        Err(_) => false,
    };
    if clean {
        return Cow::Borrowed(bytes);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out.into_bytes())
}

/// [`escape`] for text that is UTF-8 already.
pub fn escape_str(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if !is_control(c) {
            out.push(c);
        } else if c < ' ' {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
    }
}

/// A writer that [`escape`]s what goes through it when `escape` is on.
/// Each `write` is escaped on its own: give it whole lines (a character
/// cut between two writes would show as its bytes).
#[derive(Debug)]
pub struct Terminal<W: Write> {
    inner: W,
    escape: bool,
}

impl<W: Write> Terminal<W> {
    pub fn new(inner: W, escape: bool) -> Self {
        Terminal { inner, escape }
    }

    /// Whether it escapes.
    pub fn escapes(&self) -> bool {
        self.escape
    }
}

impl<W: Write> Write for Terminal<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.escape {
            // The whole buffer or an error: `write_all` calls this once.
            self.inner.write_all(&escape(buf))?;
            Ok(buf.len())
        } else {
            self.inner.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether the CLI escapes what it prints: stdout is a terminal, and
/// `--raw` was not given.
pub fn stdout_escapes(raw: bool) -> bool {
    !raw && io::stdout().is_terminal()
}

/// Locked stdout, escaping when [`stdout_escapes`].
pub fn stdout(raw: bool) -> Terminal<io::StdoutLock<'static>> {
    Terminal::new(io::stdout().lock(), stdout_escapes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(b: &[u8]) -> String {
        String::from_utf8(escape(b).into_owned()).unwrap()
    }

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        for text in [
            "",
            "listening on 127.0.0.1:8080",
            "a\tb\nc",
            "é 中 ✓ ~ \\x1b",
        ] {
            assert!(
                matches!(escape(text.as_bytes()), Cow::Borrowed(_)),
                "{text:?}"
            );
            assert!(matches!(escape_str(text), Cow::Borrowed(_)), "{text:?}");
        }
    }

    #[test]
    fn c0_controls_but_newline_and_tab_are_shown_as_hex() {
        assert_eq!(esc(b"\x1b[31mred\x1b[0m"), r"\x1b[31mred\x1b[0m");
        assert_eq!(esc(b"a\rb"), r"a\x0db");
        assert_eq!(
            esc(b"\x00\x07\x08\x0b\x0c\x1f"),
            r"\x00\x07\x08\x0b\x0c\x1f"
        );
        assert_eq!(esc(b"keep\tthis\n"), "keep\tthis\n");
        // OSC: retitle the window, ended by BEL.
        assert_eq!(esc(b"\x1b]0;pwned\x07"), r"\x1b]0;pwned\x07");
        for b in 0u8..0x20 {
            let out = esc(&[b]);
            if b == b'\n' || b == b'\t' {
                assert_eq!(out.as_bytes(), [b]);
            } else {
                assert_eq!(out, format!("\\x{b:02x}"));
            }
        }
    }

    #[test]
    fn del_and_c1_are_shown_as_unicode_escapes() {
        assert_eq!(esc(b"a\x7fb"), r"a\u007fb");
        // U+009B (CSI) and U+0085 (NEL), as UTF-8.
        assert_eq!(esc("\u{9b}2J".as_bytes()), r"\u009b2J");
        assert_eq!(esc("x\u{85}y".as_bytes()), r"x\u0085y");
        assert_eq!(esc("\u{80}\u{9f}".as_bytes()), r"\u0080\u009f");
        // U+00A0 and up are printable.
        assert_eq!(esc("\u{a0}é".as_bytes()), "\u{a0}é");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        // A lone 0x9b is CSI on an 8-bit terminal.
        assert_eq!(esc(b"\x9b2J"), r"\x9b2J");
        assert_eq!(esc(b"ok \xff\xfe end"), r"ok \xff\xfe end");
        // A cut character, then valid text.
        assert_eq!(esc(b"\xe4\xb8 \xc3\xa9"), "\\xe4\\xb8 é");
    }

    #[test]
    fn escaped_json_is_still_the_same_json() {
        let value = serde_json::json!({"message": "a\u{1b}[2J\u{7f}\u{9b}b\r\n"});
        let text = serde_json::to_string(&value).unwrap();
        let shown = escape_str(&text);
        assert!(!shown.chars().any(is_control), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn the_writer_escapes_only_when_asked() {
        let mut on = Terminal::new(Vec::new(), true);
        on.write_all(b"\x1b[2Jhi\n").unwrap();
        assert_eq!(
            on.inner,
            br"\x1b[2Jhi"
                .iter()
                .chain(b"\n")
                .copied()
                .collect::<Vec<u8>>()
        );
        let mut off = Terminal::new(Vec::new(), false);
        off.write_all(b"\x1b[2Jhi\n").unwrap();
        assert_eq!(off.inner, b"\x1b[2Jhi\n");
        assert!(on.escapes() && !off.escapes());
    }

    #[test]
    fn an_event_with_a_probes_output_is_shown_escaped() {
        // A failing exec probe's first line of output ends up in the message.
        let e = crate::api::proto::EventRecord {
            time: "2026-11-23T10:00:00.000Z".into(),
            service: "web".into(),
            instance: "0".into(),
            kind: "health".into(),
            message: "unhealthy: exit 1: \u{1b}]0;pwned\u{7}\u{1b}[2J".into(),
            ..Default::default()
        };
        let mut t = Terminal::new(Vec::new(), true);
        writeln!(t, "{}", crate::cli::render::event_line(&e)).unwrap();
        let text = String::from_utf8(t.inner).unwrap();
        assert!(
            text.ends_with("unhealthy: exit 1: \\x1b]0;pwned\\x07\\x1b[2J\n"),
            "{text:?}"
        );
    }

    #[test]
    fn nothing_escaped_contains_a_control() {
        // Every single byte and every pair: the output is printable text.
        for a in 0u8..=255 {
            for b in [0u8, 0x1b, 0x41, 0x80, 0x9b, 0xc2, 0xff] {
                let out = esc(&[a, b]);
                assert!(!out.chars().any(is_control), "{a:#x} {b:#x}: {out:?}");
            }
        }
    }
}
