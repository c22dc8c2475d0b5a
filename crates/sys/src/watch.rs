//! Waiting for changes in one directory: inotify on the directory plus an eventfd another
//! thread can use to wake the waiter ([`Waker`]).

use std::io;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

/// What ended a [`DirWatch::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something in the directory (or the directory itself) changed.
    Changed,
    /// A [`Waker`] was used.
    Woken,
    /// The timeout passed.
    Timeout,
}

/// An inotify watch on one directory.
#[derive(Debug)]
pub struct DirWatch {
    inotify: OwnedFd,
    wake: Arc<OwnedFd>,
}

/// Wakes the thread waiting in [`DirWatch::wait`] (or its next wait).
#[derive(Debug, Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }
}

impl DirWatch {
    /// Watches `dir` for files created, written, renamed, removed or changed in their
    /// attributes, and for the directory itself being removed or moved.
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            dir,
            WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MODIFY
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::ATTRIB
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF,
        )?;
        let wake = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(DirWatch {
            inotify: fd,
            wake: Arc::new(wake),
        })
    }

    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Waits up to `timeout` for a change or a wake-up, and consumes what was pending (a
    /// wake-up is reported before a change).
    pub fn wait(&self, timeout: Duration) -> io::Result<Wake> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let spec = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [
                PollFd::new(&*self.wake, PollFlags::IN),
                PollFd::new(&self.inotify, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, Some(&spec)) {
                Ok(0) if left.is_zero() => return Ok(Wake::Timeout),
                Ok(0) => continue,
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
            let woken = !fds[0].revents().is_empty();
            let changed = !fds[1].revents().is_empty();
            if woken {
                let mut counter = [0u8; 8];
                let _ = rustix::io::read(&*self.wake, &mut counter);
            }
            if changed {
                self.drain_events()?;
            }
            return Ok(if woken { Wake::Woken } else { Wake::Changed });
        }
    }

    fn drain_events(&self) -> io::Result<()> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        loop {
            match reader.next() {
                Ok(_) => {}
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changes_wake_ups_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::new(dir.path()).unwrap();
        assert_eq!(
            watch.wait(Duration::from_millis(10)).unwrap(),
            Wake::Timeout
        );
        std::fs::write(dir.path().join("a.yaml"), "x").unwrap();
        assert_eq!(watch.wait(Duration::from_secs(5)).unwrap(), Wake::Changed);
        watch.waker().wake();
        assert_eq!(watch.wait(Duration::from_secs(5)).unwrap(), Wake::Woken);
        assert_eq!(
            watch.wait(Duration::from_millis(10)).unwrap(),
            Wake::Timeout
        );
    }
}
