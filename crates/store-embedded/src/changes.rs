//! How the poller learns that another process committed: inotify on the store's directory (a
//! commit appends to the `-wal` file, a checkpoint writes the main file), plus a bell that this
//! process's handles ring (a new watch, shutdown). Waking on the event rather than polling the
//! file every few milliseconds costs an idle agent nothing and tells watches at once.
//!
//! Where inotify is unavailable (no more instances or watches, an odd filesystem), the poller
//! falls back to looking every [`crate::SqliteOptions::poll_interval`].

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// The write end: wakes the poller.
#[derive(Debug)]
pub(crate) struct Bell(UnixStream);

impl Bell {
    pub(crate) fn ring(&self) {
        // A full socket buffer already holds a ring: the poller wakes either way.
        let _ = (&self.0).write(&[1]);
    }
}

/// What the poller waits on.
pub(crate) struct Changes {
    inotify: Option<Inotify>,
    /// The store file's name and its WAL's.
    files: [OsString; 2],
    bell: UnixStream,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A store file changed (or may have: the inotify queue overflowed).
    Changed,
    /// Rung by this process.
    Bell,
    Timeout,
}

impl Changes {
    /// Watches the directory of the store at `path`. Never fails for want of inotify: the
    /// result then reports [`Changes::notifies`] false.
    pub(crate) fn new(path: &Path) -> io::Result<(Changes, Bell)> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        let name = path.file_name().unwrap_or_default().to_os_string();
        let mut wal = name.clone();
        wal.push("-wal");
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .and_then(|i| {
                i.add_watch(
                    dir,
                    AddWatchFlags::IN_MODIFY
                        | AddWatchFlags::IN_CREATE
                        | AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_CLOSE_WRITE,
                )?;
                Ok(i)
            })
            .map_err(|e| {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "no inotify on the store's directory; polling it instead");
            })
            .ok();
        Ok((
            Changes {
                inotify,
                files: [name, wal],
                bell: rx,
            },
            Bell(tx),
        ))
    }

    /// Whether changes are reported as they happen (else the caller polls).
    pub(crate) fn notifies(&self) -> bool {
        self.inotify.is_some()
    }

    /// Waits up to `timeout` for a change of the store's files or the bell.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Woken {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let (rang, changed) = {
            let mut fds = vec![PollFd::new(self.bell.as_fd(), PollFlags::POLLIN)];
            if let Some(i) = &self.inotify {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            if poll(&mut fds, timeout).is_err() {
                // EINTR: the caller loops anyway.
                return Woken::Timeout;
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if rang {
            let mut buf = [0u8; 64];
            while matches!((&self.bell).read(&mut buf), Ok(n) if n > 0) {}
        }
        if changed && self.drain() {
            return Woken::Changed;
        }
        if rang {
            Woken::Bell
        } else {
            Woken::Timeout
        }
    }

    /// Reads the queued events; true if one names a store file (or events were lost).
    fn drain(&mut self) -> bool {
        let Some(i) = &self.inotify else {
            return false;
        };
        let mut ours = false;
        while let Ok(events) = i.read_events() {
            if events.is_empty() {
                break;
            }
            ours |= events.iter().any(|e| {
                e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                    || e.name.as_ref().is_some_and(|n| self.files.contains(n))
            });
        }
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_for_the_store_files_and_the_bell_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let (mut changes, bell) = Changes::new(&db).unwrap();
        assert!(changes.notifies());
        let short = Duration::from_millis(50);
        assert_eq!(changes.wait(short), Woken::Timeout);

        // Another file in the directory is none of its business.
        std::fs::write(dir.path().join("other.json"), b"x").unwrap();
        assert_eq!(changes.wait(short), Woken::Timeout);

        std::fs::write(dir.path().join("store.db-wal"), b"x").unwrap();
        assert_eq!(changes.wait(Duration::from_secs(5)), Woken::Changed);
        assert_eq!(changes.wait(short), Woken::Timeout, "events drained");

        std::fs::write(&db, b"x").unwrap();
        assert_eq!(changes.wait(Duration::from_secs(5)), Woken::Changed);

        bell.ring();
        bell.ring();
        assert_eq!(changes.wait(Duration::from_secs(5)), Woken::Bell);
        assert_eq!(changes.wait(short), Woken::Timeout, "rings drained");
    }
}
