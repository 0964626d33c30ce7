//! weft's encrypted transport, the protocol alone (as boringtun's `noise/`): host keys, the
//! Noise `IKpsk2` handshake, sessions with explicit counters and a replay window, and the
//! timers that rekey, retransmit and expire. No sockets, no threads, no clock reads: the engine
//! passes the time in (`Instant`), so tests drive it. The one I/O function is
//! [`keyfile::load_or_create`].
//!
//! # How the engine uses it
//! - One [`Peer`] per (encrypted network, remote member host), made with
//!   [`Peer::new`]`(config, our keys, their public key from the store, the network's PSK)`.
//!   [`Config::index`] gives each peer a slot of the receiver-index space.
//! - Sending a frame: [`Peer::encrypt`]. [`Outcome::Send`]: send `out`. [`Outcome::Handshake`]:
//!   queue the frame, send `out` (an initiation). [`Outcome::Queue`]: queue the frame.
//! - A datagram in: [`message::peek`] it. A response or transport message goes to the peer of
//!   slot [`message::peer_slot`]`(receiver)`; an initiation is opened with
//!   [`handshake::open_initiation`] (this host's keys, the network of the initiation's
//!   `network` field), and goes to the peer whose key is [`OpenedInitiation::remote`]; no such
//!   peer: drop as [`DropReason::NotMember`]. [`Peer::receive`] (or
//!   [`Peer::receive_initiation`]) then says [`Received::Data`] (deliver `out`),
//!   [`Received::Reply`] (send `out` back) or [`Received::Nothing`]; an `Err` is a
//!   [`DropReason`] to count. After any `Ok`, if [`Peer::can_send`], flush the queue through
//!   [`Peer::encrypt`].
//! - [`Peer::tick`] every 100 ms–1 s: send each [`Action::Send`]; on [`Action::GiveUp`] drop
//!   the queue.
//! - `weft status`: [`Peer::state`].
//!
//! # Choices
//! - AEAD: AES-256-GCM (ring) by default, ChaCha20-Poly1305 (ring) selectable per network
//!   ([`Suite`]). Measured here through the whole per-packet path (`cargo run --release -p
//!   weft-secure --example throughput`), 1400-byte packets, one core: AES-256-GCM ≈ 4.4 GB/s
//!   seal and open, ChaCha20-Poly1305 ≈ 1.5 GB/s. BLAKE2s and X25519 as in WireGuard.
//! - Replay window: 8192-bit ring, 8128 counters behind the highest ([`replay`]).
//! - Timers: WireGuard's ([`Limits::default`]); the session's initiator rekeys on time first,
//!   its responder `rekey_timeout` later; either side rekeys on its own message count.
//! - Simultaneous initiations: the greater static key stays initiator ([`Peer::receive_initiation`]).
//! - Wire layout, byte by byte: [`message`].

pub mod config;
pub mod error;
pub mod handshake;
pub mod keyfile;
pub mod keys;
pub mod message;
pub mod peer;
pub mod replay;
mod session;
pub mod state;
pub mod timestamp;

pub use config::{Config, Limits, Suite, WallClock};
pub use error::{DropReason, Error};
pub use handshake::{open_initiation, OpenedInitiation};
pub use keys::{KeyError, KeyPair, PresharedKey, PrivateKey, PublicKey};
pub use peer::{Action, Outcome, Peer, Received};
pub use replay::ReplayWindow;
pub use state::{HandshakeStatus, PeerState};
