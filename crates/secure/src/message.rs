//! The three messages of the protocol as this crate sees them. Their bytes (type, reserved bytes,
//! little-endian indices and counter; 120-byte initiation, 72-byte response, 32 bytes of transport
//! overhead) are defined once, in `weft_wire::secure`, and documented in docs/wire-format.md.
//!
//! Routing: every index a [`crate::Peer`] hands out is `config.index << 8 | n`, so the engine
//! routes responses and transport messages to a peer by [`peer_slot`] of the receiver index, and
//! initiations by network id and then by the static key inside (see
//! [`crate::handshake::open_initiation`]).

use weft_wire::secure::Message;

use crate::error::DropReason;

// One definition of the framing: `weft_wire::secure` (also what the fuzzers hold to).
pub use weft_wire::secure::{
    INITIATION_HEADER_LEN, INITIATION_LEN, NOISE_INITIATION_LEN, NOISE_RESPONSE_LEN,
    RESPONSE_HEADER_LEN, RESPONSE_LEN, TAG_LEN, TRANSPORT_HEADER_LEN, TRANSPORT_OVERHEAD,
    TYPE_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT,
};

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

/// Reads the clear header of a message and checks its length for its type.
pub fn peek(packet: &[u8]) -> Result<Header, DropReason> {
    match weft_wire::secure::parse(packet) {
        Ok(Message::Initiation {
            sender, network, ..
        }) => Ok(Header::Initiation { sender, network }),
        Ok(Message::Response {
            receiver, sender, ..
        }) => Ok(Header::Response { receiver, sender }),
        Ok(Message::Transport {
            receiver, counter, ..
        }) => Ok(Header::Transport { receiver, counter }),
        Err(_) => Err(DropReason::Malformed),
    }
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
