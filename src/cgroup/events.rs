//! Being woken by the kernel instead of polling files.
//!
//! - [`FileWatch`]: inotify on `memory.events`, `pids.events`, `cgroup.events`
//!   (the kernel signals a modification whenever a counter or state changes).
//! - [`PsiTrigger`]: a PSI trigger (`some 150000 1000000` written to a
//!   `*.pressure` file), which wakes a poller with POLLPRI when the stall time
//!   in the window crosses the threshold.
//!
//! Both are file descriptors: `wait` blocks with a timeout (tests, the
//! command line), and the `Async*` wrappers register them with tokio's reactor
//! so the daemon waits on thousands of them without a thread each.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::inotify;

use crate::config::schema::Stall;

/// Waits until `fd` reports `flags` or `timeout` passes; `Ok(true)` when it did.
fn poll_one(fd: BorrowedFd<'_>, flags: PollFlags, timeout: Option<Duration>) -> io::Result<bool> {
    let ts = timeout.map(|t| rustix::time::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
    loop {
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An inotify instance watching cgroup files for modification.
pub struct FileWatch {
    fd: OwnedFd,
    watches: Vec<(i32, PathBuf)>,
}

impl FileWatch {
    pub fn new() -> io::Result<Self> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        Ok(FileWatch {
            fd,
            watches: Vec::new(),
        })
    }

    /// Watches `path` (e.g. `<cgroup>/memory.events`). Returns its watch id.
    /// The error keeps the OS error (ENOENT for a cgroup that is gone).
    pub fn add(&mut self, path: &Path) -> io::Result<i32> {
        let wd = inotify::add_watch(&self.fd, path, inotify::WatchFlags::MODIFY)
            .map_err(io::Error::from)?;
        self.watches.push((wd, path.to_path_buf()));
        Ok(wd)
    }

    /// Stops watching `path`. A cgroup that was removed has lost its watch
    /// already; that is not an error.
    pub fn remove(&mut self, path: &Path) {
        if let Some(i) = self.watches.iter().position(|(_, p)| p == path) {
            let (wd, _) = self.watches.swap_remove(i);
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// The paths modified since the last call, without blocking. Each path
    /// appears once however many events it had.
    pub fn drain(&mut self) -> io::Result<Vec<PathBuf>> {
        drain(self.fd.as_fd(), &self.watches)
    }

    /// Blocks until a watched file changes or `timeout` passes; returns the
    /// changed paths (empty on timeout).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<PathBuf>> {
        if poll_one(self.fd.as_fd(), PollFlags::IN, timeout)? {
            self.drain()
        } else {
            Ok(Vec::new())
        }
    }
}

impl AsFd for FileWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn drain(fd: BorrowedFd<'_>, watches: &[(i32, PathBuf)]) -> io::Result<Vec<PathBuf>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    let mut wds = Vec::new();
    loop {
        match reader.next() {
            Ok(ev) => {
                if !wds.contains(&ev.wd()) {
                    wds.push(ev.wd());
                }
            }
            Err(rustix::io::Errno::AGAIN) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(watches
        .iter()
        .filter(|(wd, _)| wds.contains(wd))
        .map(|(_, p)| p.clone())
        .collect())
}

/// [`FileWatch`] for tokio.
pub struct AsyncFileWatch {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
    watches: Vec<(i32, PathBuf)>,
}

impl AsyncFileWatch {
    /// Must be called inside a tokio runtime.
    pub fn new(watch: FileWatch) -> io::Result<Self> {
        let fd = crate::sys::reactor::register(watch.fd, tokio::io::Interest::READABLE)?;
        Ok(AsyncFileWatch {
            fd,
            watches: watch.watches,
        })
    }

    /// Watches one more file.
    pub fn add(&mut self, path: &Path) -> io::Result<i32> {
        let wd = inotify::add_watch(self.fd.get_ref(), path, inotify::WatchFlags::MODIFY)
            .map_err(io::Error::from)?;
        self.watches.push((wd, path.to_path_buf()));
        Ok(wd)
    }

    /// Stops watching `path` (a removed cgroup lost its watch already).
    pub fn remove(&mut self, path: &Path) {
        if let Some(i) = self.watches.iter().position(|(_, p)| p == path) {
            let (wd, _) = self.watches.swap_remove(i);
            let _ = inotify::remove_watch(self.fd.get_ref(), wd);
        }
    }

    /// Waits for the next change of any watched file.
    pub async fn changed(&mut self) -> io::Result<Vec<PathBuf>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let paths = drain(guard.get_inner().as_fd(), &self.watches)?;
            guard.clear_ready();
            if !paths.is_empty() {
                return Ok(paths);
            }
        }
    }
}

/// A PSI trigger on one `*.pressure` file.
pub struct PsiTrigger {
    file: std::fs::File,
    pub path: PathBuf,
    /// The line written to the file, e.g. `some 150000 1000000`.
    pub spec: String,
}

/// `some 150000 1000000`: at least 150ms of stall within any 1s window.
pub fn render_trigger(stall: Stall, threshold: Duration, window: Duration) -> String {
    format!("{stall} {} {}", threshold.as_micros(), window.as_micros())
}

/// Without CAP_SYS_RESOURCE the kernel only accepts windows that are a
/// multiple of 2s (unprivileged PSI triggers); rounds `window` up to one.
pub fn unprivileged_window(window: Duration) -> Duration {
    let two = 2_000_000u128;
    let us = window.as_micros().div_ceil(two).max(1) * two;
    Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

impl PsiTrigger {
    /// Arms a trigger. `window` must be 500ms..10s (2s multiples without
    /// CAP_SYS_RESOURCE); `threshold` at most `window`.
    pub fn new(
        pressure_file: &Path,
        stall: Stall,
        threshold: Duration,
        window: Duration,
    ) -> io::Result<Self> {
        let spec = render_trigger(stall, threshold, window);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(pressure_file)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open {}: {e}", pressure_file.display()),
                )
            })?;
        // The trigger lives as long as this fd; the write must be one call
        // including the terminating NUL-free line.
        file.write_all(spec.as_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "the kernel refused PSI trigger {spec:?} on {}: {e}",
                    pressure_file.display()
                ),
            )
        })?;
        Ok(PsiTrigger {
            file,
            path: pressure_file.to_path_buf(),
            spec,
        })
    }

    /// Blocks until the trigger fires or `timeout` passes; `Ok(true)` if it fired.
    /// POLLERR means the cgroup was removed.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let fired = poll_one(self.file.as_fd(), PollFlags::PRI, timeout)?;
        if fired && !self.path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is gone", self.path.display()),
            ));
        }
        Ok(fired)
    }
}

impl AsFd for PsiTrigger {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// [`PsiTrigger`] for tokio (POLLPRI through the reactor).
pub struct AsyncPsiTrigger {
    inner: tokio::io::unix::AsyncFd<OwnedFd>,
    pub path: PathBuf,
    pub spec: String,
}

impl AsyncPsiTrigger {
    /// Must be called inside a tokio runtime.
    pub fn new(trigger: PsiTrigger) -> io::Result<Self> {
        let inner =
            crate::sys::reactor::register(trigger.file.into(), tokio::io::Interest::PRIORITY)?;
        Ok(AsyncPsiTrigger {
            inner,
            path: trigger.path,
            spec: trigger.spec,
        })
    }

    /// Waits for the next firing. POLLERR (the cgroup was removed) is an
    /// error, so a waiting loop ends instead of spinning.
    pub async fn fired(&self) -> io::Result<()> {
        let mut guard = self.inner.ready(tokio::io::Interest::PRIORITY).await?;
        if guard.ready().is_error() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is gone", self.path.display()),
            ));
        }
        guard.clear_ready();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_text() {
        assert_eq!(
            render_trigger(
                Stall::Some,
                Duration::from_millis(150),
                Duration::from_secs(1)
            ),
            "some 150000 1000000"
        );
        assert_eq!(
            render_trigger(
                Stall::Full,
                Duration::from_millis(100),
                Duration::from_secs(2)
            ),
            "full 100000 2000000"
        );
    }

    #[test]
    fn unprivileged_windows_round_up_to_2s() {
        assert_eq!(
            unprivileged_window(Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            unprivileged_window(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert_eq!(
            unprivileged_window(Duration::from_millis(2500)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn file_watch_sees_modification() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("memory.events");
        std::fs::write(&f, "oom 0\n").unwrap();
        let mut w = FileWatch::new().unwrap();
        w.add(&f).unwrap();
        assert!(w.wait(Some(Duration::from_millis(10))).unwrap().is_empty());
        std::fs::write(&f, "oom 1\n").unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_secs(5))).unwrap(),
            vec![f.clone()]
        );
        w.remove(&f);
    }

    #[tokio::test]
    async fn async_file_watch_wakes() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("pids.events");
        std::fs::write(&f, "max 0\n").unwrap();
        let mut w = FileWatch::new().unwrap();
        w.add(&f).unwrap();
        let mut aw = AsyncFileWatch::new(w).unwrap();
        let f2 = f.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            std::fs::write(&f2, "max 1\n").unwrap();
        });
        let changed = tokio::time::timeout(Duration::from_secs(5), aw.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed, vec![f]);
    }
}
