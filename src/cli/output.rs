//! What every command handler prints with: a line to stdout ([`emit`]),
//! errors to stderr ([`print_errors`], [`report`]), a failed control
//! request ([`control_failed`]), and Ctrl-C as a clean exit for the
//! commands that run until stopped ([`exit_on_interrupt`]).

use std::process::ExitCode;

use crate::error::Diagnostics;

/// Prints a line to stdout. A closed pipe (`bulkhead ... | head`) is not an
/// error worth a panic: the reader has what it wanted.
pub(super) fn emit(text: &str) {
    use std::io::Write as _;
    // Replies carry service text (probe output, exit reasons): on a
    // terminal its control characters are shown, not obeyed.
    let text = if super::escape::stdout_escapes(false) {
        super::escape::escape_str(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write to stdout: {e}");
    }
}

/// Writes errors to stderr as they are rendered.
pub(super) fn print_errors(diags: &Diagnostics, source: Option<&str>) {
    use std::io::Write as _;
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    let _ = diags.write_to(&mut err, source).and_then(|()| err.flush());
}

/// Prints a config's errors: on stderr as text, or on stdout as one JSON
/// object. Both are bounded (folded and capped, see `Diagnostics::plan`),
/// and the source lines come with the errors: the file is not read again.
pub(super) fn report(diags: &Diagnostics, json: bool) {
    if json {
        let mut v = diags.to_json();
        v["valid"] = false.into();
        emit(&v.to_string());
    } else {
        print_errors(diags, None);
    }
}

/// Prints a failed control request: the daemon's own rendering of its
/// error, or why it could not be reached; 3 when it is not running.
pub(super) fn control_failed(e: &super::client::ClientError) -> ExitCode {
    use std::io::IsTerminal as _;
    let text = e.render();
    if std::io::stderr().is_terminal() {
        eprint!("{}", super::escape::escape_str(&text));
    } else {
        eprint!("{text}");
    }
    ExitCode::from(e.exit_code())
}

/// Makes Ctrl-C (SIGINT) end the process with status 0, for a command that
/// runs until stopped: SIGINT is blocked and a thread waits for it. Call it
/// before starting any other thread, so every thread inherits the mask.
pub(super) fn exit_on_interrupt() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    if set.thread_block().is_err() {
        // Ctrl-C keeps its default action: the process still ends.
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            std::process::exit(0);
        }
    });
}
