//! Noise `IKpsk2` through `snow`: the initiator knows the responder's static key (from the
//! store); the responder learns the initiator's from message 1 and admits it only if it is a
//! member; the network's pre-shared key is mixed in after message 2's DH (`psk2`), so a host
//! without it can complete neither side.
//!
//! Prologue: `"weft-secure/1"` then the network id (u32, big endian), so a handshake made for
//! one network can never yield a session of another.
//!
//! Both messages carry a TAI64N timestamp from the sender's per-peer monotonic sequence. The
//! initiation's refuses replays (as WireGuard). The response's tells the initiator that any
//! initiation the responder made before answering is stale: after a simultaneous initiation,
//! the yielding side's own initiation, if it arrives late, is refused as
//! [`DropReason::StaleTimestamp`] instead of starting a second handshake.

use snow::params::NoiseParams;
use snow::{Builder, HandshakeState, StatelessTransportState};

use crate::config::Suite;
use crate::error::{DropReason, Error};
use crate::keys::{KeyPair, PresharedKey, PublicKey, KEY_LEN};
use crate::message::{
    self, Header, INITIATION_HEADER_LEN, INITIATION_LEN, RESPONSE_HEADER_LEN, RESPONSE_LEN,
    TYPE_INITIATION, TYPE_RESPONSE,
};
use crate::timestamp::{Tai64N, TAI64N_LEN};

/// Where the PSK sits in the pattern (`psk2`: after message 2's tokens).
const PSK_LOCATION: u8 = 2;
const PROLOGUE_LABEL: &[u8; 13] = b"weft-secure/1";

fn prologue(network_id: u32) -> [u8; 17] {
    let mut p = [0u8; 17];
    p[..13].copy_from_slice(PROLOGUE_LABEL);
    p[13..].copy_from_slice(&network_id.to_be_bytes());
    p
}

pub(crate) fn params(suite: Suite) -> Result<NoiseParams, Error> {
    Ok(suite.noise_name().parse()?)
}

/// Writes a handshake initiation into `out` and returns the initiator's state, waiting for the
/// response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn initiate(
    params: &NoiseParams,
    network_id: u32,
    local: &KeyPair,
    remote: &PublicKey,
    psk: &PresharedKey,
    sender_index: u32,
    timestamp: Tai64N,
    out: &mut Vec<u8>,
) -> Result<HandshakeState, Error> {
    let prologue = prologue(network_id);
    let mut hs = Builder::new(params.clone())
        .local_private_key(local.private().as_bytes())?
        .remote_public_key(remote.as_bytes())?
        .psk(PSK_LOCATION, psk.as_bytes())?
        .prologue(&prologue)?
        .build_initiator()?;
    out.clear();
    weft_wire::secure::push_head(out, TYPE_INITIATION, sender_index, network_id);
    out.resize(INITIATION_LEN, 0);
    let n = hs.write_message(&timestamp.to_bytes(), &mut out[INITIATION_HEADER_LEN..])?;
    if INITIATION_HEADER_LEN + n != INITIATION_LEN {
        return Err(Error::Noise(format!("initiation of unexpected length {n}")));
    }
    Ok(hs)
}

/// A handshake initiation whose Noise message 1 verified: it was made by the holder of
/// [`OpenedInitiation::remote`]'s private key for our static key (or is a replay of such a
/// message, which the timestamp check in [`crate::Peer::receive_initiation`] refuses).
pub struct OpenedInitiation {
    pub(crate) hs: Box<HandshakeState>,
    pub(crate) remote: PublicKey,
    pub(crate) sender: u32,
    pub(crate) network: u32,
    pub(crate) timestamp: Tai64N,
}

impl OpenedInitiation {
    /// The initiator's static public key: look the peer up by it; no peer means
    /// [`DropReason::NotMember`].
    pub fn remote(&self) -> &PublicKey {
        &self.remote
    }

    pub fn network(&self) -> u32 {
        self.network
    }

    pub fn sender_index(&self) -> u32 {
        self.sender
    }
}

impl std::fmt::Debug for OpenedInitiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedInitiation")
            .field("remote", &self.remote)
            .field("sender", &self.sender)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// Verifies a handshake initiation addressed to `local` for network `network_id` and reveals
/// who sent it, so the engine can find the [`crate::Peer`] (and refuse non-members) before
/// handing it to [`crate::Peer::receive_initiation`]. Costs two X25519 operations.
pub fn open_initiation(
    local: &KeyPair,
    suite: Suite,
    network_id: u32,
    packet: &[u8],
) -> Result<OpenedInitiation, DropReason> {
    let Header::Initiation { sender, network } = message::peek(packet)? else {
        return Err(DropReason::Malformed);
    };
    if network != network_id {
        return Err(DropReason::WrongNetwork);
    }
    // Only fails on a broken build (unknown suite); reported as a drop, never a panic.
    let params = params(suite).map_err(|_| DropReason::Malformed)?;
    let prologue = prologue(network_id);
    let mut hs = Builder::new(params)
        .local_private_key(local.private().as_bytes())
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.build_responder())
        .map_err(|_| DropReason::Malformed)?;
    let body = packet
        .get(INITIATION_HEADER_LEN..)
        .ok_or(DropReason::Malformed)?;
    let mut payload = [0u8; 64];
    let n = hs
        .read_message(body, &mut payload)
        .map_err(|_| DropReason::Authentication)?;
    let timestamp = payload
        .get(..n)
        .filter(|p| p.len() == TAI64N_LEN)
        .and_then(Tai64N::from_bytes)
        .ok_or(DropReason::Malformed)?;
    let remote = hs
        .get_remote_static()
        .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
        .map(PublicKey::from_bytes)
        .ok_or(DropReason::Malformed)?;
    Ok(OpenedInitiation {
        hs: Box::new(hs),
        remote,
        sender,
        network,
        timestamp,
    })
}

/// Writes the response to an opened initiation into `out` and returns the responder's
/// transport state.
pub(crate) fn respond(
    opened: OpenedInitiation,
    psk: &PresharedKey,
    sender_index: u32,
    timestamp: Tai64N,
    out: &mut Vec<u8>,
) -> Result<StatelessTransportState, Error> {
    let mut hs = opened.hs;
    hs.set_psk(usize::from(PSK_LOCATION), psk.as_bytes())?;
    out.clear();
    weft_wire::secure::push_head(out, TYPE_RESPONSE, opened.sender, sender_index);
    out.resize(RESPONSE_LEN, 0);
    let n = hs.write_message(&timestamp.to_bytes(), &mut out[RESPONSE_HEADER_LEN..])?;
    if RESPONSE_HEADER_LEN + n != RESPONSE_LEN {
        return Err(Error::Noise(format!("response of unexpected length {n}")));
    }
    Ok(hs.into_stateless_transport_mode()?)
}

/// Reads a response into the initiator's state and returns the responder's timestamp. On
/// failure the state is unchanged (snow rolls back), so a forged response cannot spoil a
/// pending handshake.
pub(crate) fn read_response(hs: &mut HandshakeState, packet: &[u8]) -> Result<Tai64N, DropReason> {
    let body = packet
        .get(RESPONSE_HEADER_LEN..)
        .filter(|b| b.len() == RESPONSE_LEN - RESPONSE_HEADER_LEN)
        .ok_or(DropReason::Malformed)?;
    let mut payload = [0u8; 64];
    let n = hs
        .read_message(body, &mut payload)
        .map_err(|_| DropReason::Authentication)?;
    // Authentic, so only a peer speaking another version could send a bad one.
    payload
        .get(..n)
        .and_then(Tai64N::from_bytes)
        .ok_or(DropReason::Malformed)
}
