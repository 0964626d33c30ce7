//! Latency: brief busy-polling after activity, across the two directions of the engine.
//!
//! A ping through the engine used to cost four thread wake-ups per round trip: the TAP worker
//! that reads the request on one host, the socket worker that receives it on the other, that
//! host's TAP worker for the reply, and the first host's socket worker for it. Each wake-up of a
//! sleeping thread costs tens of microseconds on a busy virtual machine, several times the work
//! itself, and made the engine's ping 3 × the kernel path's.
//!
//! So, as fast userspace datapaths do, a worker that has just forwarded something does not go
//! to sleep at once: for [`SPIN`] after its last packet it keeps polling, without blocking, its
//! own descriptor and the one the answer will come back on — a TAP worker the transport's
//! receive sockets, a socket worker the TAP queue it just wrote into (the kernel usually puts the
//! container's answer there before the write even returns). The answer is then forwarded by a
//! thread that is already running, and a round trip costs the two wake-ups of the first packet
//! on each host. Between polls the thread yields its core to any other runnable thread, and a
//! worker that finds nothing for [`SPIN`] sleeps in `poll` as before: an idle engine burns
//! nothing.
//!
//! Two threads may then read the same descriptor. Each descriptor has a lock taken to read from
//! it and to handle what was read (its owner waits for it, a spinning guest only tries), so
//! frames of one queue or datagrams of one socket are still handled in order, one batch at a
//! time: no reordering of a TCP stream.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// How long a worker keeps polling after its last packet before it sleeps: longer than a
/// round trip between two hosts of a LAN through both engines, short enough to cost little.
pub(crate) const SPIN: Duration = Duration::from_micros(200);

/// The lock guarding reads from one descriptor (a TAP queue or a socket).
pub(crate) type ReadLock = Mutex<()>;

/// Takes `lock`, waiting (the descriptor's owner).
pub(crate) fn hold(lock: &ReadLock) -> MutexGuard<'_, ()> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes `lock` if free (a guest while spinning).
pub(crate) fn try_hold(lock: &ReadLock) -> Option<MutexGuard<'_, ()>> {
    match lock.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}
