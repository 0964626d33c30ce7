//! One session: the keys of one completed handshake, its counters and its replay window.

use std::time::{Duration, Instant};

use snow::StatelessTransportState;

use crate::config::Limits;
use crate::error::{DropReason, Error};
use crate::message::{TAG_LEN, TRANSPORT_HEADER_LEN, TYPE_TRANSPORT};
use crate::replay::ReplayWindow;

pub(crate) struct Session {
    /// Our index: the receiver index of what the peer sends on this session.
    pub local_index: u32,
    /// The peer's index: the receiver index of what we send.
    pub remote_index: u32,
    transport: StatelessTransportState,
    pub born: Instant,
    /// Whether we initiated the handshake that made it.
    pub initiator: bool,
    /// The counter of the next message we send.
    pub next_counter: u64,
    window: ReplayWindow,
}

impl Session {
    pub fn new(
        local_index: u32,
        remote_index: u32,
        transport: StatelessTransportState,
        born: Instant,
        initiator: bool,
    ) -> Self {
        Session {
            local_index,
            remote_index,
            transport,
            born,
            initiator,
            next_counter: 0,
            window: ReplayWindow::new(),
        }
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.born)
    }

    pub fn expired(&self, now: Instant, limits: &Limits) -> bool {
        self.age(now) >= limits.reject_after_time
    }

    pub fn can_send(&self, now: Instant, limits: &Limits) -> bool {
        !self.expired(now, limits) && self.next_counter < limits.reject_after_messages
    }

    /// Writes a whole transport message carrying `plain` into `out`.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let counter = self.next_counter;
        // Every byte is written below: reuse the buffer without zeroing it.
        fit(out, TRANSPORT_HEADER_LEN + plain.len() + TAG_LEN);
        out[..4].copy_from_slice(&[TYPE_TRANSPORT, 0, 0, 0]);
        out[4..8].copy_from_slice(&self.remote_index.to_le_bytes());
        out[8..TRANSPORT_HEADER_LEN].copy_from_slice(&counter.to_le_bytes());
        self.transport
            .write_message(counter, plain, &mut out[TRANSPORT_HEADER_LEN..])?;
        self.next_counter += 1;
        Ok(())
    }

    /// Decrypts `ciphertext` (payload and tag) sent with `counter` into `out`.
    pub fn open(
        &mut self,
        counter: u64,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<(), DropReason> {
        self.window.check(counter, limits.reject_after_messages)?;
        // As long as the ciphertext: it is copied there and decrypted in place.
        fit(out, ciphertext.len());
        let n = match self.transport.read_message(counter, ciphertext, out) {
            Ok(n) => n,
            Err(_) => {
                out.clear();
                return Err(DropReason::Authentication);
            }
        };
        if !self.window.accept(counter) {
            out.clear();
            return Err(DropReason::Replayed);
        }
        out.truncate(n);
        Ok(())
    }
}

/// Makes `buf` exactly `len` bytes long, zeroing only what it grows by (the caller overwrites
/// all of it).
fn fit(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
}
