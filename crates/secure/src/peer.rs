//! The per-peer state machine: sessions, handshakes and timers, driven by the engine through
//! [`Peer::encrypt`], [`Peer::receive`] and [`Peer::tick`] with the time passed in.
//!
//! Sessions follow WireGuard's three slots: `current` (sends and receives), `previous` (receives
//! only: what the peer sent before it switched), `next` (a session we answered as responder,
//! receives only until the initiator's first message on it confirms it, which promotes it to
//! `current`). A rekey therefore loses nothing: each side keeps accepting the old session until
//! it is two generations old or past its reject time.

use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use snow::params::NoiseParams;
use snow::HandshakeState;

use crate::config::{Config, Limits};
use crate::error::{DropReason, Error};
use crate::handshake::{self, OpenedInitiation};
use crate::keys::{KeyPair, PresharedKey, PublicKey};
use crate::message::{self, Header, MAX_PAYLOAD, TRANSPORT_HEADER_LEN};
use crate::session::Session;
use crate::state::{HandshakeStatus, PeerState};
use crate::timestamp::Tai64N;

/// What [`Peer::encrypt`] made of a plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// `out` holds a transport message: send it to the peer.
    Send,
    /// There is no session to send on: keep the plaintext queued, and send the handshake
    /// initiation that is now in `out`. Encrypt the queue again once [`Peer::can_send`].
    Handshake,
    /// There is no session to send on and a handshake is under way: keep the plaintext queued;
    /// `out` is empty.
    Queue,
}

/// What [`Peer::receive`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Received {
    /// `out` holds a decrypted payload (an Ethernet frame) to deliver.
    Data,
    /// `out` holds a message to send back to the peer: a handshake response, or the keepalive
    /// that confirms a session we initiated. Afterwards, if [`Peer::can_send`], encrypt and send
    /// what was queued.
    Reply,
    /// Nothing to deliver or send (a keepalive, or a simultaneous initiation we win). If the
    /// packet confirmed a session, [`Peer::can_send`] is now true: send what was queued.
    Nothing,
}

/// A timer's request, from [`Peer::tick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message to the peer (a handshake initiation or a keepalive).
    Send(Vec<u8>),
    /// The handshake was retried for `rekey_attempt_time` without an answer: drop what is
    /// queued for this peer. A later [`Peer::encrypt`] starts over.
    GiveUp,
}

struct Pending {
    hs: Box<HandshakeState>,
    local_index: u32,
    /// First attempt of this series of retransmissions.
    started: Instant,
    retransmit_at: Instant,
}

#[derive(Default)]
struct Stats {
    tx_packets: u64,
    tx_bytes: u64,
    rx_packets: u64,
    rx_bytes: u64,
    handshakes: u64,
    rekeys: u64,
}

/// The encrypted transport with one remote host on one network.
pub struct Peer {
    config: Config,
    params: NoiseParams,
    keys: KeyPair,
    remote: PublicKey,
    psk: PresharedKey,
    current: Option<Session>,
    previous: Option<Session>,
    next: Option<Session>,
    pending: Option<Pending>,
    index_seq: u8,
    last_timestamp_sent: Option<Tai64N>,
    last_timestamp_received: Option<Tai64N>,
    last_initiation_accepted: Option<Instant>,
    /// A transport message with a payload sent.
    last_data_sent: Option<Instant>,
    /// A transport message with a payload received.
    last_data_received: Option<Instant>,
    /// The first data received since we last sent anything (WireGuard's keepalive timer).
    unacknowledged_since: Option<Instant>,
    /// The first data sent since the last authenticated message received.
    unanswered_since: Option<Instant>,
    last_handshake: Option<Instant>,
    stats: Stats,
    rng: SystemRandom,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("remote", &self.remote)
            .field("network_id", &self.config.network_id)
            .field("index", &self.config.index)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer with no session yet. Fails on an invalid configuration, a low-order peer key, or
    /// the peer key being our own.
    pub fn new(
        config: Config,
        keys: &KeyPair,
        remote: PublicKey,
        psk: PresharedKey,
    ) -> Result<Self, Error> {
        config.validate().map_err(Error::Config)?;
        if remote == *keys.public() {
            return Err(Error::Config("the peer's public key is our own".into()));
        }
        if remote.is_weak_for(keys.private()) {
            return Err(Error::Config(format!(
                "the peer's public key {remote} is a low-order point"
            )));
        }
        Ok(Peer {
            params: handshake::params(config.suite)?,
            config,
            keys: keys.clone(),
            remote,
            psk,
            current: None,
            previous: None,
            next: None,
            pending: None,
            index_seq: 0,
            last_timestamp_sent: None,
            last_timestamp_received: None,
            last_initiation_accepted: None,
            last_data_sent: None,
            last_data_received: None,
            unacknowledged_since: None,
            unanswered_since: None,
            last_handshake: None,
            stats: Stats::default(),
            rng: SystemRandom::new(),
        })
    }

    pub fn remote_key(&self) -> &PublicKey {
        &self.remote
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether [`Peer::encrypt`] would send now rather than queue.
    pub fn can_send(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.can_send(now, &self.config.limits))
    }

    /// Encrypts one payload (an Ethernet frame, or empty for a keepalive) into `out`. Fails only
    /// for a payload above [`MAX_PAYLOAD`] (or a bug in the Noise library).
    pub fn encrypt(
        &mut self,
        plain: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Outcome, Error> {
        if plain.len() > MAX_PAYLOAD {
            out.clear();
            return Err(Error::TooLarge {
                len: plain.len(),
                max: MAX_PAYLOAD,
            });
        }
        let limits = self.config.limits;
        if let Some(session) = self.current.as_mut().filter(|s| s.can_send(now, &limits)) {
            if let Err(e) = session.seal(plain, out) {
                out.clear();
                return Err(e);
            }
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += plain.len() as u64;
            self.note_sent(now, !plain.is_empty());
            return Ok(Outcome::Send);
        }
        out.clear();
        if self.pending.is_some() || self.confirming(now) {
            return Ok(Outcome::Queue);
        }
        self.start_handshake(now, out)?;
        Ok(Outcome::Handshake)
    }

    /// Handles one message from the peer. `out` receives the decrypted payload or the message
    /// to send back, as the result says; it is cleared otherwise.
    pub fn receive(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Received, DropReason> {
        // `out` is reused as is on the transport path (no zeroing); cleared on any other result.
        let result = self.receive_any(packet, out, now);
        if !matches!(result, Ok(Received::Data | Received::Reply)) {
            out.clear();
        }
        result
    }

    fn receive_any(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Received, DropReason> {
        match message::peek(packet)? {
            Header::Transport { receiver, counter } => {
                let ciphertext = packet
                    .get(TRANSPORT_HEADER_LEN..)
                    .ok_or(DropReason::Malformed)?;
                self.receive_transport(receiver, counter, ciphertext, out, now)
            }
            Header::Response { receiver, sender } => {
                self.receive_response(receiver, sender, packet, out, now)
            }
            Header::Initiation { .. } => {
                let opened = handshake::open_initiation(
                    &self.keys,
                    self.config.suite,
                    self.config.network_id,
                    packet,
                )?;
                self.receive_initiation(opened, out, now)
            }
        }
    }

    /// Answers an initiation already opened by [`handshake::open_initiation`] (the engine's
    /// route for initiations: open, look the peer up by [`OpenedInitiation::remote`], hand it
    /// here). Refuses a key other than this peer's ([`DropReason::NotMember`]), a timestamp not
    /// newer than the last accepted ([`DropReason::StaleTimestamp`]) and initiations closer
    /// together than `initiation_min_interval` ([`DropReason::RateLimited`]).
    ///
    /// Simultaneous initiations: when we have a handshake of our own under way, the side with
    /// the greater static public key (bytewise) stays the initiator: it ignores the other's
    /// initiation ([`Received::Nothing`]), and the other side drops its own and answers. Should
    /// the yielding side's initiation arrive only after the handshake completed, the timestamp
    /// in the response has already made it stale ([`DropReason::StaleTimestamp`]).
    pub fn receive_initiation(
        &mut self,
        opened: OpenedInitiation,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Received, DropReason> {
        out.clear();
        if opened.remote != self.remote {
            return Err(DropReason::NotMember);
        }
        if opened.network != self.config.network_id {
            return Err(DropReason::WrongNetwork);
        }
        if self
            .last_timestamp_received
            .is_some_and(|last| opened.timestamp <= last)
        {
            return Err(DropReason::StaleTimestamp);
        }
        if self.last_initiation_accepted.is_some_and(|t| {
            now.saturating_duration_since(t) < self.config.limits.initiation_min_interval
        }) {
            return Err(DropReason::RateLimited);
        }
        self.last_timestamp_received = Some(opened.timestamp);
        self.last_initiation_accepted = Some(now);
        self.unanswered_since = None;
        if self.pending.is_some() && self.keys.public() > &self.remote {
            return Ok(Received::Nothing);
        }
        self.pending = None;
        let index = self.alloc_index();
        let remote_index = opened.sender;
        let timestamp = self.next_timestamp(now);
        let transport =
            handshake::respond(opened, &self.psk, index, timestamp, out).map_err(|_| {
                out.clear();
                DropReason::Malformed
            })?;
        // Replaces an unconfirmed one. `previous` stays receivable (WireGuard drops it here;
        // keeping it until the confirmation rotates it costs nothing and tolerates more
        // reordering).
        self.next = Some(Session::new(index, remote_index, transport, now, false));
        self.note_sent(now, false);
        Ok(Received::Reply)
    }

    fn receive_response(
        &mut self,
        receiver: u32,
        sender: u32,
        packet: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Received, DropReason> {
        let pending = self
            .pending
            .as_mut()
            .filter(|p| p.local_index == receiver)
            .ok_or(DropReason::UnknownIndex)?;
        let their_time = handshake::read_response(&mut pending.hs, packet)?;
        let pending = self.pending.take().ok_or(DropReason::UnknownIndex)?;
        // Any initiation they made before answering is stale from now on.
        self.last_timestamp_received = self.last_timestamp_received.max(Some(their_time));
        let transport = pending
            .hs
            .into_stateless_transport_mode()
            .map_err(|_| DropReason::Authentication)?;
        let session = Session::new(pending.local_index, sender, transport, now, true);
        // As WireGuard: a session we answered but that is unconfirmed may already carry the
        // peer's traffic, so it stays receivable; otherwise the current one does.
        self.previous = match self.next.take() {
            Some(next) => Some(next),
            None => self.current.take(),
        };
        let replaced = self.previous.is_some();
        self.current = Some(session);
        self.established(now, replaced);
        self.unanswered_since = None;
        // Confirm the session to the responder at once, whether or not data is queued.
        if self.seal_keepalive(now, out) {
            Ok(Received::Reply)
        } else {
            Ok(Received::Nothing)
        }
    }

    /// Writes a keepalive on the current session into `out`; false if there is none to send on.
    fn seal_keepalive(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let limits = self.config.limits;
        let Some(session) = self.current.as_mut().filter(|s| s.can_send(now, &limits)) else {
            return false;
        };
        if session.seal(&[], out).is_err() {
            out.clear();
            return false;
        }
        self.stats.tx_packets += 1;
        self.note_sent(now, false);
        true
    }

    fn receive_transport(
        &mut self,
        receiver: u32,
        counter: u64,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<Received, DropReason> {
        let limits = self.config.limits;
        let (session, is_next) =
            if let Some(s) = self.current.as_mut().filter(|s| s.local_index == receiver) {
                (s, false)
            } else if let Some(s) = self.previous.as_mut().filter(|s| s.local_index == receiver) {
                (s, false)
            } else if let Some(s) = self.next.as_mut().filter(|s| s.local_index == receiver) {
                (s, true)
            } else {
                return Err(DropReason::UnknownIndex);
            };
        if session.expired(now, &limits) {
            return Err(DropReason::Expired);
        }
        session.open(counter, ciphertext, out, &limits)?;
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += out.len() as u64;
        self.unanswered_since = None;
        if is_next {
            // The initiator's first message on the session we answered: it is confirmed.
            self.previous = self.current.take();
            self.current = self.next.take();
            let replaced = self.previous.is_some();
            self.established(now, replaced);
        }
        if out.is_empty() {
            Ok(Received::Nothing)
        } else {
            self.last_data_received = Some(now);
            self.unacknowledged_since.get_or_insert(now);
            Ok(Received::Data)
        }
    }

    /// Runs the timers; call it every 100 ms to 1 s, and soon after traffic. Expires sessions,
    /// retransmits or gives up an unanswered initiation, starts rekeys (by time or by message
    /// count, whichever side reaches its limit first), starts a handshake when data sent got no
    /// answer for `keepalive_timeout + rekey_timeout`, and sends a keepalive when data was
    /// received but nothing sent for `keepalive_timeout`.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let limits = self.config.limits;
        for slot in [&mut self.current, &mut self.previous, &mut self.next] {
            if slot.as_ref().is_some_and(|s| s.expired(now, &limits)) {
                *slot = None;
            }
        }

        let start = match &self.pending {
            Some(p) if now >= p.retransmit_at => {
                if now.saturating_duration_since(p.started) >= limits.rekey_attempt_time {
                    self.pending = None;
                    self.unanswered_since = None;
                    actions.push(Action::GiveUp);
                    false
                } else {
                    true
                }
            }
            Some(_) => false,
            None => self.wants_rekey(now) || self.unanswered(now),
        };
        if start {
            self.unanswered_since = None;
            let mut out = Vec::new();
            if self.start_handshake(now, &mut out).is_ok() {
                actions.push(Action::Send(out));
            }
        }

        let keepalive_due = self
            .unacknowledged_since
            .is_some_and(|r| now.saturating_duration_since(r) >= limits.keepalive_timeout);
        if keepalive_due {
            let mut out = Vec::new();
            if self.seal_keepalive(now, &mut out) {
                actions.push(Action::Send(out));
            }
        }
        actions
    }

    /// A snapshot for `weft status`.
    pub fn state(&self) -> PeerState {
        let wall = &self.config.wall_clock;
        let ms = |t: Instant| u64::try_from(wall.unix_at(t).as_millis()).unwrap_or(u64::MAX);
        let handshake = if let Some(s) = &self.current {
            HandshakeStatus::Established {
                since_unix_ms: ms(s.born),
            }
        } else if let Some(t) = self
            .pending
            .as_ref()
            .map(|p| p.started)
            .or(self.next.as_ref().map(|s| s.born))
        {
            HandshakeStatus::Initiated {
                since_unix_ms: ms(t),
            }
        } else {
            HandshakeStatus::None
        };
        PeerState {
            public_key: self.remote,
            network_id: self.config.network_id,
            suite: self.config.suite,
            handshake,
            rekeying: self.current.is_some() && (self.pending.is_some() || self.next.is_some()),
            last_handshake_unix_ms: self.last_handshake.map(ms),
            tx_packets: self.stats.tx_packets,
            tx_bytes: self.stats.tx_bytes,
            rx_packets: self.stats.rx_packets,
            rx_bytes: self.stats.rx_bytes,
            handshakes: self.stats.handshakes,
            rekeys: self.stats.rekeys,
        }
    }

    /// Whether we answered an initiation recently enough that its confirmation should arrive
    /// before we start a handshake of our own.
    fn confirming(&self, now: Instant) -> bool {
        self.next
            .as_ref()
            .is_some_and(|n| n.age(now) < self.config.limits.rekey_timeout)
    }

    fn wants_rekey(&self, now: Instant) -> bool {
        let limits: &Limits = &self.config.limits;
        let Some(current) = &self.current else {
            return false;
        };
        if self.confirming(now) {
            return false;
        }
        if current.next_counter >= limits.rekey_after_messages {
            return true;
        }
        let recent = |t: Option<Instant>| {
            t.is_some_and(|t| now.saturating_duration_since(t) < limits.keepalive_timeout)
        };
        let age = current.age(now);
        // The session's initiator rekeys first; its responder only if the initiator did not
        // (it is idle), a little later, so that both rarely start at once.
        let send_limit = if current.initiator {
            limits.rekey_after_time
        } else {
            limits.rekey_after_time.saturating_add(limits.rekey_timeout)
        };
        if recent(self.last_data_sent) && age >= send_limit {
            return true;
        }
        // An initiator that only receives rekeys before the session dies under the sender.
        let receive_limit = limits
            .reject_after_time
            .saturating_sub(limits.keepalive_timeout)
            .saturating_sub(limits.rekey_timeout)
            .max(limits.rekey_after_time);
        current.initiator && recent(self.last_data_received) && age >= receive_limit
    }

    fn unanswered(&self, now: Instant) -> bool {
        let limits = &self.config.limits;
        self.unanswered_since.is_some_and(|t| {
            now.saturating_duration_since(t)
                >= limits
                    .keepalive_timeout
                    .saturating_add(limits.rekey_timeout)
        })
    }

    fn start_handshake(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<(), Error> {
        let index = self.alloc_index();
        let timestamp = self.next_timestamp(now);
        let hs = handshake::initiate(
            &self.params,
            self.config.network_id,
            &self.keys,
            &self.remote,
            &self.psk,
            index,
            timestamp,
            out,
        )
        .inspect_err(|_| out.clear())?;
        let started = self.pending.as_ref().map_or(now, |p| p.started);
        let wait = self
            .config
            .limits
            .rekey_timeout
            .saturating_add(self.jitter());
        // A wait beyond what Instant can hold means "as late as it can".
        let retransmit_at = now
            .checked_add(wait)
            .or_else(|| now.checked_add(Duration::from_secs(1 << 30)))
            .unwrap_or(now);
        self.pending = Some(Pending {
            hs: Box::new(hs),
            local_index: index,
            started,
            retransmit_at,
        });
        self.note_sent(now, false);
        Ok(())
    }

    fn established(&mut self, now: Instant, replaced: bool) {
        self.last_handshake = Some(now);
        self.stats.handshakes += 1;
        if replaced {
            self.stats.rekeys += 1;
        }
    }

    fn note_sent(&mut self, now: Instant, data: bool) {
        self.unacknowledged_since = None;
        if data {
            self.last_data_sent = Some(now);
            self.unanswered_since.get_or_insert(now);
        }
    }

    /// A receiver index of ours not used by any live session or pending handshake.
    fn alloc_index(&mut self) -> u32 {
        let in_use = |i: u32| {
            [&self.current, &self.previous, &self.next]
                .iter()
                .any(|s| s.as_ref().is_some_and(|s| s.local_index == i))
                || self.pending.as_ref().is_some_and(|p| p.local_index == i)
        };
        let mut seq = self.index_seq;
        let mut index;
        loop {
            seq = seq.wrapping_add(1);
            index = (self.config.index << 8) | u32::from(seq);
            if !in_use(index) {
                break;
            }
        }
        self.index_seq = seq;
        index
    }

    /// This host's clock as TAI64N, strictly increasing across this peer's handshake messages.
    fn next_timestamp(&mut self, now: Instant) -> Tai64N {
        let mut ts = Tai64N::from_unix(self.config.wall_clock.unix_at(now));
        if let Some(last) = self.last_timestamp_sent {
            if ts <= last {
                ts = last.succ();
            }
        }
        self.last_timestamp_sent = Some(ts);
        ts
    }

    fn jitter(&self) -> Duration {
        let max = self.config.limits.rekey_jitter;
        let mut r = [0u8; 2];
        if max.is_zero() || self.rng.fill(&mut r).is_err() {
            return Duration::ZERO;
        }
        let nanos = max.as_nanos() * u128::from(u16::from_le_bytes(r)) / u128::from(u16::MAX);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}
