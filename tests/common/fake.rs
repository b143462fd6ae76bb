//! A fake daemon on the host: the real control server
//! (`bulkhead::api::server`) on a socket in a temp dir, the calls it makes
//! answered by a loop the test writes, on a thread and runtime of their
//! own; and the `bulkhead` binary run against it.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Output};
use std::task::{Context, Poll};
use std::time::Duration;

use bulkhead::api::proto::Call;
use bulkhead::api::server::{bind, serve_with};
use tokio::sync::{mpsc, oneshot};

/// Servers on a current-thread runtime on a thread of their own.
/// [`Served::stop`] stops them; so does the drop, which ignores a panic on
/// their thread.
pub struct Served {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Ready when the test stops the servers (or drops them): the shutdown
/// signal to give them.
pub struct Stopped(oneshot::Receiver<()>);

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl Served {
    /// Runs `serve` on the thread, and returns once it has sent, on its
    /// first argument, that it listens (what it sends: a port it bound, or
    /// `()`); 10 s at most. Its second argument is its shutdown signal.
    pub fn start<R, F, Fut>(serve: F) -> (Served, R)
    where
        R: Send + 'static,
        F: FnOnce(std::sync::mpsc::Sender<R>, Stopped) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move { serve(ready_tx, Stopped(stopped)).await });
        });
        let listening = ready.recv_timeout(Duration::from_secs(10)).unwrap();
        let served = Served {
            stop: Some(stop),
            thread: Some(thread),
        };
        (served, listening)
    }

    /// Shuts the servers down and waits until they have stopped; a panic
    /// on their thread fails the test.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real control server on `socket` (`bind` creates its directory),
/// holding long polls for `long_poll`, and a fake daemon loop: `fake` gets
/// the calls the server makes.
pub fn control<F, Fut>(socket: &Path, long_poll: Duration, fake: F) -> Served
where
    F: FnOnce(mpsc::Receiver<Call>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = socket.to_path_buf();
    let (served, ()) = Served::start(move |ready, stopped| async move {
        let listener = bind(&path).unwrap();
        let (calls, rx) = mpsc::channel(8);
        tokio::spawn(fake(rx));
        ready.send(()).unwrap();
        serve_with(listener, calls, stopped, long_poll).await;
    });
    served
}

/// The `bulkhead` binary, to be given its arguments.
pub fn bulkhead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
}

/// Runs `cmd` and prints what it did, so a failing test shows the
/// command's whole output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    super::show(format_args!("{cmd:?}"), &out);
    out
}

/// `bulkhead ARGS --socket SOCKET`, run and printed.
pub fn cli(socket: &Path, args: &[&str]) -> Output {
    run(bulkhead().args(args).arg("--socket").arg(socket))
}
