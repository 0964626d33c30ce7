//! Framing of weft's encrypted transport: the three UDP messages of `weft-secure` (the crypto
//! lives there; this is the codec the engine demultiplexes with, and what the fuzzers hold to
//! "never panics").
//!
//! WireGuard-like: one message per UDP datagram; byte 0 is the type, bytes 1..4 are reserved
//! (sent as zero, **ignored** on receipt, as `weft-secure` does); integers are **little-endian**
//! (as WireGuard's, so tshark's WireGuard dissector lines up on the transport header).
//!
//! ```text
//! Handshake initiation (type 1), exactly 120 bytes:
//!   0      type = 1
//!   1..4   reserved
//!   4..8   sender index (u32 LE): the initiator's index for this handshake
//!   8..12  network id (u32 LE): the network's VNI, also bound into the Noise prologue
//!   12..120  Noise IKpsk2 message 1 (108 bytes): e (32), s encrypted (32+16),
//!            payload = TAI64N timestamp encrypted (12+16)
//!
//! Handshake response (type 2), exactly 72 bytes:
//!   0      type = 2
//!   1..4   reserved
//!   4..8   receiver index (u32 LE): the initiation's sender index
//!   8..12  sender index (u32 LE): the responder's index for this session
//!   12..72   Noise IKpsk2 message 2 (60 bytes): e (32), a 12-byte timestamp encrypted (12+16)
//!
//! Transport data (type 4), 32 + n bytes:
//!   0      type = 4
//!   1..4   reserved
//!   4..8   receiver index (u32 LE)
//!   8..16  counter (u64 LE): the AEAD nonce
//!   16..   ciphertext (n bytes) then the 16-byte tag; n = 0 is a keepalive
//! ```
//!
//! **What the ciphertext carries.** The plaintext is the bare inner Ethernet frame: no VNI
//! travels per packet. A session belongs to exactly one (network, peer host) pair: the network
//! id (VNI) is in the initiation's clear header and bound into the Noise prologue
//! (`"weft-secure/1"` ‖ VNI as u32 big-endian), so a session made for one network can never
//! carry another's frames, and the receiver index alone tells the engine which network a
//! decrypted frame belongs to. That costs nothing per packet and hides nothing less than a
//! per-packet VNI would (an observer sees the index either way).

use crate::error::WireError;

/// Type of a handshake initiation.
pub const TYPE_INITIATION: u8 = 1;
/// Type of a handshake response.
pub const TYPE_RESPONSE: u8 = 2;
/// Type of a transport data message.
pub const TYPE_TRANSPORT: u8 = 4;
/// Length of Noise IKpsk2 message 1 with a 12-byte (TAI64N) payload: 32 + (32+16) + (12+16).
pub const NOISE_INITIATION_LEN: usize = 32 + (32 + 16) + (12 + 16);
/// Length of Noise IKpsk2 message 2 with an empty payload: 32 + 16.
pub const NOISE_RESPONSE_LEN: usize = 32 + (12 + 16);
/// Clear header of an initiation: type, reserved, sender index, network id.
pub const INITIATION_HEADER_LEN: usize = 12;
/// Length of an initiation.
pub const INITIATION_LEN: usize = INITIATION_HEADER_LEN + NOISE_INITIATION_LEN;
/// Clear header of a response: type, reserved, receiver index, sender index.
pub const RESPONSE_HEADER_LEN: usize = 12;
/// Length of a response.
pub const RESPONSE_LEN: usize = RESPONSE_HEADER_LEN + NOISE_RESPONSE_LEN;
/// Clear header of a transport message: type, reserved, receiver index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// AEAD tag length (AES-256-GCM and ChaCha20-Poly1305 alike).
pub const TAG_LEN: usize = 16;
/// Bytes a transport message adds to its plaintext.
pub const TRANSPORT_OVERHEAD: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Largest transport message: a Noise transport message is at most 65535 bytes.
pub const MAX_TRANSPORT_LEN: usize = TRANSPORT_HEADER_LEN + 65535;
/// Bytes the encrypted transport adds to an inner frame on an IPv4 underlay: IPv4 20 + UDP 8 +
/// transport 32 + inner Ethernet 14. Overlay MTU = underlay MTU − this (1500 → 1426).
pub const OVERHEAD_V4: usize = 20 + 8 + TRANSPORT_OVERHEAD + 14;
/// The same on an IPv6 underlay.
pub const OVERHEAD_V6: usize = 40 + 8 + TRANSPORT_OVERHEAD + 14;

/// A message, decoded as far as can be without keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Handshake initiation.
    Initiation {
        /// The initiator's index for this handshake.
        sender: u32,
        /// The network id (VNI) the handshake is for.
        network: u32,
        /// Noise message 1 ([`NOISE_INITIATION_LEN`] bytes).
        noise: &'a [u8],
    },
    /// Handshake response.
    Response {
        /// The initiation's sender index.
        receiver: u32,
        /// The responder's index for the new session.
        sender: u32,
        /// Noise message 2 ([`NOISE_RESPONSE_LEN`] bytes).
        noise: &'a [u8],
    },
    /// Transport data.
    Transport {
        /// The receiving side's index for the session.
        receiver: u32,
        /// The AEAD nonce.
        counter: u64,
        /// Ciphertext and tag (at least [`TAG_LEN`] bytes; exactly that for a keepalive).
        ciphertext: &'a [u8],
    },
}

impl Message<'_> {
    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Initiation { .. } => TYPE_INITIATION,
            Message::Response { .. } => TYPE_RESPONSE,
            Message::Transport { .. } => TYPE_TRANSPORT,
        }
    }

    /// The receiver index of a response or transport message (what routes it to a session).
    pub fn receiver(&self) -> Option<u32> {
        match *self {
            Message::Initiation { .. } => None,
            Message::Response { receiver, .. } | Message::Transport { receiver, .. } => {
                Some(receiver)
            }
        }
    }

    /// True for a transport message without payload.
    pub fn is_keepalive(&self) -> bool {
        matches!(self, Message::Transport { ciphertext, .. } if ciphertext.len() == TAG_LEN)
    }
}

#[inline]
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a UDP payload of the encrypted transport. Checks the type and the length for the
/// type (initiation exactly 120, response exactly 72, transport 32 ..= 16 + 65535); reserved
/// bytes are ignored. Authenticity is `weft-secure`'s to check.
pub fn parse(pkt: &[u8]) -> Result<Message<'_>, WireError> {
    let Some(&kind) = pkt.first() else {
        return Err(WireError::Truncated {
            what: "secure message",
            need: 1,
            have: 0,
        });
    };
    let len_err = WireError::MessageLength {
        kind,
        len: pkt.len(),
    };
    match kind {
        TYPE_INITIATION => {
            if pkt.len() != INITIATION_LEN {
                return Err(len_err);
            }
            Ok(Message::Initiation {
                sender: le32(pkt, 4),
                network: le32(pkt, 8),
                noise: &pkt[INITIATION_HEADER_LEN..],
            })
        }
        TYPE_RESPONSE => {
            if pkt.len() != RESPONSE_LEN {
                return Err(len_err);
            }
            Ok(Message::Response {
                receiver: le32(pkt, 4),
                sender: le32(pkt, 8),
                noise: &pkt[RESPONSE_HEADER_LEN..],
            })
        }
        TYPE_TRANSPORT => {
            if pkt.len() < TRANSPORT_OVERHEAD || pkt.len() > MAX_TRANSPORT_LEN {
                return Err(len_err);
            }
            let mut c = [0u8; 8];
            c.copy_from_slice(&pkt[8..16]);
            Ok(Message::Transport {
                receiver: le32(pkt, 4),
                counter: u64::from_le_bytes(c),
                ciphertext: &pkt[TRANSPORT_HEADER_LEN..],
            })
        }
        t => Err(WireError::MessageType(t)),
    }
}

/// Appends a handshake message's 12-byte clear header (type, reserved, two u32 fields), for
/// callers that write the Noise message in place after it.
pub fn push_head(out: &mut Vec<u8>, kind: u8, a: u32, b: u32) {
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
}

/// Appends an initiation to `out`; `noise` must be [`NOISE_INITIATION_LEN`] bytes.
pub fn write_initiation(
    out: &mut Vec<u8>,
    sender: u32,
    network: u32,
    noise: &[u8],
) -> Result<(), WireError> {
    if noise.len() != NOISE_INITIATION_LEN {
        return Err(WireError::MessageLength {
            kind: TYPE_INITIATION,
            len: INITIATION_HEADER_LEN + noise.len(),
        });
    }
    push_head(out, TYPE_INITIATION, sender, network);
    out.extend_from_slice(noise);
    Ok(())
}

/// Appends a response to `out`; `noise` must be [`NOISE_RESPONSE_LEN`] bytes.
pub fn write_response(
    out: &mut Vec<u8>,
    receiver: u32,
    sender: u32,
    noise: &[u8],
) -> Result<(), WireError> {
    if noise.len() != NOISE_RESPONSE_LEN {
        return Err(WireError::MessageLength {
            kind: TYPE_RESPONSE,
            len: RESPONSE_HEADER_LEN + noise.len(),
        });
    }
    push_head(out, TYPE_RESPONSE, receiver, sender);
    out.extend_from_slice(noise);
    Ok(())
}

/// Writes a transport header into `out[..16]` (the AEAD output then goes at `out[16..]`);
/// returns 16.
pub fn write_transport_header(
    out: &mut [u8],
    receiver: u32,
    counter: u64,
) -> Result<usize, WireError> {
    let have = out.len();
    let h = out
        .get_mut(..TRANSPORT_HEADER_LEN)
        .ok_or(WireError::BufferTooSmall {
            need: TRANSPORT_HEADER_LEN,
            have,
        })?;
    h[..4].copy_from_slice(&[TYPE_TRANSPORT, 0, 0, 0]);
    h[4..8].copy_from_slice(&receiver.to_le_bytes());
    h[8..16].copy_from_slice(&counter.to_le_bytes());
    Ok(TRANSPORT_HEADER_LEN)
}

/// Length of the transport message carrying `plaintext_len` bytes.
pub const fn transport_len(plaintext_len: usize) -> usize {
    TRANSPORT_OVERHEAD + plaintext_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(INITIATION_LEN, 120);
        assert_eq!(RESPONSE_LEN, 72);
        assert_eq!(TRANSPORT_OVERHEAD, 32);
        assert_eq!(OVERHEAD_V4, 74);
        assert_eq!(transport_len(1426 + 14), 1472);
    }

    #[test]
    fn transport_known_bytes() {
        let mut p = vec![0u8; 16];
        write_transport_header(&mut p, 0x0102_0304, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(
            p,
            [4, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        p.extend_from_slice(&[0xaa; 16]);
        let m = parse(&p).unwrap();
        assert_eq!(
            m,
            Message::Transport {
                receiver: 0x0102_0304,
                counter: 0x1122_3344_5566_7788,
                ciphertext: &[0xaa; 16]
            }
        );
        assert!(m.is_keepalive());
        assert_eq!(m.receiver(), Some(0x0102_0304));
        assert_eq!(m.kind(), 4);
        p.push(1);
        assert!(!parse(&p).unwrap().is_keepalive());
        assert!(write_transport_header(&mut [0u8; 15], 1, 1).is_err());
    }

    #[test]
    fn handshake_round_trips() {
        let noise1: Vec<u8> = (0..NOISE_INITIATION_LEN as u8).collect();
        let mut p = Vec::new();
        write_initiation(&mut p, 0xdead_beef, 42, &noise1).unwrap();
        assert_eq!(&p[..12], &[1, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 42, 0, 0, 0]);
        assert_eq!(
            parse(&p).unwrap(),
            Message::Initiation {
                sender: 0xdead_beef,
                network: 42,
                noise: &noise1
            }
        );
        assert_eq!(parse(&p).unwrap().receiver(), None);
        let noise2 = [7u8; NOISE_RESPONSE_LEN];
        let mut r = Vec::new();
        write_response(&mut r, 0xdead_beef, 5, &noise2).unwrap();
        assert_eq!(&r[..12], &[2, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 5, 0, 0, 0]);
        assert_eq!(
            parse(&r).unwrap(),
            Message::Response {
                receiver: 0xdead_beef,
                sender: 5,
                noise: &noise2
            }
        );
        assert!(write_initiation(&mut p, 1, 1, &noise2).is_err());
        assert!(write_response(&mut r, 1, 1, &noise1).is_err());
    }

    #[test]
    fn reserved_bytes_ignored() {
        let mut p = vec![4, 0xff, 0xff, 0xff];
        p.extend_from_slice(&[0; 28]);
        assert!(matches!(parse(&p), Ok(Message::Transport { .. })));
    }

    #[test]
    fn rejects() {
        assert!(matches!(parse(&[]), Err(WireError::Truncated { .. })));
        assert_eq!(parse(&[3; 64]), Err(WireError::MessageType(3)));
        assert_eq!(parse(&[0; 64]), Err(WireError::MessageType(0)));
        assert_eq!(
            parse(&[1; 119]),
            Err(WireError::MessageLength { kind: 1, len: 119 })
        );
        assert_eq!(
            parse(&[1; 121]),
            Err(WireError::MessageLength { kind: 1, len: 121 })
        );
        assert_eq!(
            parse(&[2; 61]),
            Err(WireError::MessageLength { kind: 2, len: 61 })
        );
        assert_eq!(
            parse(&[4; 31]),
            Err(WireError::MessageLength { kind: 4, len: 31 })
        );
        assert!(parse(&vec![4; MAX_TRANSPORT_LEN + 1]).is_err());
        assert!(parse(&vec![4; MAX_TRANSPORT_LEN]).is_ok());
    }
}
