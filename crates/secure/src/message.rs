//! The three messages on the wire, byte by byte. Every message is one UDP payload; integers are
//! little endian (as WireGuard's); the first 4 bytes are the type and 3 reserved bytes (sent as
//! zero, ignored on receipt).
//!
//! ```text
//! Handshake initiation (type 1), 120 bytes:
//!   0      type = 1
//!   1..4   reserved
//!   4..8   sender index (u32): the initiator's index for this handshake
//!   8..12  network id (u32): the network's VNI, also bound into the Noise prologue
//!   12..44   Noise: initiator ephemeral public key (32)
//!   44..92   Noise: initiator static public key, encrypted (32 + 16 tag)
//!   92..120  Noise: TAI64N timestamp, encrypted (12 + 16 tag)
//!
//! Handshake response (type 2), 72 bytes:
//!   0      type = 2
//!   1..4   reserved
//!   4..8   receiver index (u32): the initiation's sender index
//!   8..12  sender index (u32): the responder's index for this session
//!   12..44   Noise: responder ephemeral public key (32)
//!   44..72   Noise: TAI64N timestamp, encrypted (12 + 16 tag)
//!
//! Transport data (type 4), 32 + n bytes:
//!   0      type = 4
//!   1..4   reserved
//!   4..8   receiver index (u32): the receiving side's index for this session
//!   8..16  counter (u64): the AEAD nonce; unique per session and direction
//!   16..   payload, encrypted (n), then the 16-byte tag. n = 0 is a keepalive.
//! ```
//!
//! Transport overhead: 32 bytes (16 header + 16 tag) on top of UDP's.
//!
//! Routing: every index a [`crate::Peer`] hands out is `config.index << 8 | n`, so the engine
//! routes responses and transport messages to a peer by [`peer_slot`] of the receiver index, and
//! initiations by network id and then by the static key inside (see
//! [`crate::handshake::open_initiation`]).

use crate::error::DropReason;

pub const TYPE_INITIATION: u8 = 1;
pub const TYPE_RESPONSE: u8 = 2;
pub const TYPE_TRANSPORT: u8 = 4;

/// Bytes of Noise message 1 of IKpsk2 with a 12-byte payload.
pub(crate) const NOISE_INITIATION_LEN: usize = 32 + (32 + 16) + (12 + 16);
/// Bytes of Noise message 2 of IKpsk2 with a 12-byte payload.
pub(crate) const NOISE_RESPONSE_LEN: usize = 32 + (12 + 16);

pub const INITIATION_HEADER_LEN: usize = 12;
pub const INITIATION_LEN: usize = INITIATION_HEADER_LEN + NOISE_INITIATION_LEN;
pub const RESPONSE_HEADER_LEN: usize = 12;
pub const RESPONSE_LEN: usize = RESPONSE_HEADER_LEN + NOISE_RESPONSE_LEN;
pub const TRANSPORT_HEADER_LEN: usize = 16;
pub const TAG_LEN: usize = 16;
/// Bytes a transport message adds to its payload.
pub const TRANSPORT_OVERHEAD: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Largest payload of one transport message (a Noise message is at most 65535 bytes).
pub const MAX_PAYLOAD: usize = 65535 - TAG_LEN;

/// What a message says in clear, for routing it before any cryptography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Initiation { sender: u32, network: u32 },
    Response { receiver: u32, sender: u32 },
    Transport { receiver: u32, counter: u64 },
}

impl Header {
    /// The receiver index of a response or transport message.
    pub fn receiver(&self) -> Option<u32> {
        match *self {
            Header::Initiation { .. } => None,
            Header::Response { receiver, .. } | Header::Transport { receiver, .. } => {
                Some(receiver)
            }
        }
    }
}

/// The peer slot ([`crate::Config::index`]) that handed out `receiver`.
pub fn peer_slot(receiver: u32) -> u32 {
    receiver >> 8
}

fn u32_at(packet: &[u8], at: usize) -> Option<u32> {
    let bytes = packet.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(packet: &[u8], at: usize) -> Option<u64> {
    let bytes = packet.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads the clear header of a message and checks its length for its type.
pub fn peek(packet: &[u8]) -> Result<Header, DropReason> {
    let malformed = DropReason::Malformed;
    match packet.first() {
        Some(&TYPE_INITIATION) if packet.len() == INITIATION_LEN => Ok(Header::Initiation {
            sender: u32_at(packet, 4).ok_or(malformed)?,
            network: u32_at(packet, 8).ok_or(malformed)?,
        }),
        Some(&TYPE_RESPONSE) if packet.len() == RESPONSE_LEN => Ok(Header::Response {
            receiver: u32_at(packet, 4).ok_or(malformed)?,
            sender: u32_at(packet, 8).ok_or(malformed)?,
        }),
        Some(&TYPE_TRANSPORT) if packet.len() >= TRANSPORT_OVERHEAD => Ok(Header::Transport {
            receiver: u32_at(packet, 4).ok_or(malformed)?,
            counter: u64_at(packet, 8).ok_or(malformed)?,
        }),
        _ => Err(malformed),
    }
}

/// Writes a type byte, 3 zero bytes and two u32 fields.
pub(crate) fn write_header(out: &mut Vec<u8>, kind: u8, a: u32, b: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(INITIATION_LEN, 120);
        assert_eq!(RESPONSE_LEN, 72);
        assert_eq!(TRANSPORT_OVERHEAD, 32);
    }

    #[test]
    fn peek_reads_fields_and_refuses_bad_lengths() {
        let mut t = vec![TYPE_TRANSPORT, 9, 9, 9];
        t.extend_from_slice(&0x0102_0304u32.to_le_bytes());
        t.extend_from_slice(&7u64.to_le_bytes());
        t.extend_from_slice(&[0; 16]);
        assert_eq!(
            peek(&t),
            Ok(Header::Transport {
                receiver: 0x0102_0304,
                counter: 7
            })
        );
        assert_eq!(peer_slot(0x0102_0304), 0x0001_0203);
        assert_eq!(peek(&t[..31]), Err(DropReason::Malformed));
        assert_eq!(peek(&[]), Err(DropReason::Malformed));
        assert_eq!(peek(&[3; 64]), Err(DropReason::Malformed));
        assert_eq!(peek(&[TYPE_INITIATION; 119]), Err(DropReason::Malformed));
        assert_eq!(peek(&[TYPE_RESPONSE; 73]), Err(DropReason::Malformed));
        let mut r = vec![TYPE_RESPONSE, 0, 0, 0];
        r.extend_from_slice(&5u32.to_le_bytes());
        r.extend_from_slice(&6u32.to_le_bytes());
        r.resize(RESPONSE_LEN, 0);
        assert_eq!(
            peek(&r),
            Ok(Header::Response {
                receiver: 5,
                sender: 6
            })
        );
    }
}
