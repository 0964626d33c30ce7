//! Ethernet over GRE (RFC 2784 with the key and sequence extensions of RFC 2890), as Linux's
//! `gretap` and Open vSwitch's GRE ports carry it: protocol 0x6558 (Transparent Ethernet
//! Bridging), K bit set, 32-bit key = the network's VNI.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S|s|Recur|  Flags  | Ver |    Protocol Type (0x6558)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (if C)          |       Reserved1 (if C)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (if K)                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Sequence Number (if S)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! weft sends C=0, K=1, S=0: 8 bytes. On receive, like Linux's `gre_parse_header`, versions
//! other than 0 and the routing bit are refused and the other reserved bits ignored; a checksum,
//! if present, is verified; a sequence number, if present, is reported but not enforced.
//!
//! GRE rides directly on IP (protocol 47). A raw IPv4 socket on Linux delivers the IP header
//! too: strip it with [`crate::ipv4::strip`]. IPv6 raw sockets deliver the payload only.

use crate::checksum;
use crate::error::WireError;

/// Length of the header weft sends (flags, protocol, key).
pub const HEADER_LEN: usize = 8;
/// C: checksum present.
pub const FLAG_C: u16 = 0x8000;
/// R: routing present (RFC 1701; refused).
pub const FLAG_R: u16 = 0x4000;
/// K: key present.
pub const FLAG_K: u16 = 0x2000;
/// S: sequence number present.
pub const FLAG_S: u16 = 0x1000;
/// The version field's mask.
pub const VERSION_MASK: u16 = 0x0007;
/// Protocol type of Transparent Ethernet Bridging.
pub const PROTO_TEB: u16 = 0x6558;
/// Bytes GRE adds to an inner frame on an IPv4 underlay: IPv4 20 + GRE 8 + inner Ethernet 14.
pub const OVERHEAD_V4: usize = 20 + HEADER_LEN + 14;
/// The same on an IPv6 underlay.
pub const OVERHEAD_V6: usize = 40 + HEADER_LEN + 14;

/// A parsed GRE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gre<'a> {
    /// The key (the VNI).
    pub key: u32,
    /// The sequence number, if the S bit was set.
    pub seq: Option<u32>,
    /// Whether a checksum was present (and verified).
    pub checksummed: bool,
    /// The inner Ethernet frame.
    pub inner: &'a [u8],
}

/// Writes weft's 8-byte header (K set, protocol 0x6558, `key`) into `out[..8]`; returns 8.
///
/// # Panics
/// If `out` is shorter than [`HEADER_LEN`] (a caller bug; see [`try_write_header`]).
#[inline]
pub fn write_header(out: &mut [u8], key: u32) -> usize {
    let k = key.to_be_bytes();
    out[..HEADER_LEN].copy_from_slice(&[0x20, 0x00, 0x65, 0x58, k[0], k[1], k[2], k[3]]);
    HEADER_LEN
}

/// [`write_header`] that reports a short buffer instead of panicking.
#[inline]
pub fn try_write_header(out: &mut [u8], key: u32) -> Result<usize, WireError> {
    if out.len() < HEADER_LEN {
        return Err(WireError::BufferTooSmall {
            need: HEADER_LEN,
            have: out.len(),
        });
    }
    Ok(write_header(out, key))
}

/// Parses a GRE packet (starting at the GRE header): returns (key, inner Ethernet frame).
#[inline]
pub fn parse(pkt: &[u8]) -> Result<(u32, &[u8]), WireError> {
    let g = parse_full(pkt)?;
    Ok((g.key, g.inner))
}

/// Parses a GRE packet, reporting the optional fields too.
pub fn parse_full(pkt: &[u8]) -> Result<Gre<'_>, WireError> {
    if pkt.len() < 4 {
        return Err(WireError::Truncated {
            what: "gre header",
            need: 4,
            have: pkt.len(),
        });
    }
    let flags = u16::from_be_bytes([pkt[0], pkt[1]]);
    let version = (flags & VERSION_MASK) as u8;
    if version != 0 {
        return Err(WireError::GreVersion(version));
    }
    if flags & FLAG_R != 0 {
        return Err(WireError::GreRouting);
    }
    let proto = u16::from_be_bytes([pkt[2], pkt[3]]);
    let c = flags & FLAG_C != 0;
    let k = flags & FLAG_K != 0;
    let s = flags & FLAG_S != 0;
    let len = 4 + 4 * (usize::from(c) + usize::from(k) + usize::from(s));
    if pkt.len() < len {
        return Err(WireError::Truncated {
            what: "gre header",
            need: len,
            have: pkt.len(),
        });
    }
    if proto != PROTO_TEB {
        return Err(WireError::GreProtocol(proto));
    }
    if !k {
        return Err(WireError::GreMissingKey);
    }
    if c && !checksum::verifies(pkt, 0) {
        return Err(WireError::BadChecksum { what: "gre" });
    }
    let mut at = 4 + 4 * usize::from(c);
    let key = u32::from_be_bytes([pkt[at], pkt[at + 1], pkt[at + 2], pkt[at + 3]]);
    at += 4;
    let seq = if s {
        Some(u32::from_be_bytes([
            pkt[at],
            pkt[at + 1],
            pkt[at + 2],
            pkt[at + 3],
        ]))
    } else {
        None
    };
    Ok(Gre {
        key,
        seq,
        checksummed: c,
        inner: &pkt[len..],
    })
}

/// Appends a GRE packet with every optional field weft may ever need (checksum over header and
/// payload, key, optional sequence number) to `out`; for tests and peers that want them.
pub fn push_packet(
    out: &mut Vec<u8>,
    key: u32,
    seq: Option<u32>,
    with_checksum: bool,
    inner: &[u8],
) {
    let start = out.len();
    let mut flags = FLAG_K;
    if with_checksum {
        flags |= FLAG_C;
    }
    if seq.is_some() {
        flags |= FLAG_S;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&PROTO_TEB.to_be_bytes());
    if with_checksum {
        out.extend_from_slice(&[0; 4]);
    }
    out.extend_from_slice(&key.to_be_bytes());
    if let Some(s) = seq {
        out.extend_from_slice(&s.to_be_bytes());
    }
    out.extend_from_slice(inner);
    if with_checksum {
        let c = checksum::checksum(&out[start..]).to_be_bytes();
        out[start + 4] = c[0];
        out[start + 5] = c[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bytes() {
        let mut h = [0u8; 8];
        assert_eq!(write_header(&mut h, 42), 8);
        // What `tcpdump` shows for a gretap/OVS key=42 packet: 2000 6558 0000 002a.
        assert_eq!(h, [0x20, 0x00, 0x65, 0x58, 0, 0, 0, 42]);
    }

    #[test]
    fn round_trip() {
        let mut p = vec![0u8; 8];
        write_header(&mut p, 0x00abcdef);
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&p).unwrap(), (0x00abcdef, &[1, 2, 3][..]));
        let g = parse_full(&p).unwrap();
        assert_eq!((g.seq, g.checksummed), (None, false));
    }

    #[test]
    fn checksum_and_sequence_handled() {
        let inner = [0xaau8, 0xbb, 0xcc, 0xdd, 0xee];
        for (seq, csum) in [(None, true), (Some(7), false), (Some(0xffff_ffff), true)] {
            let mut p = Vec::new();
            push_packet(&mut p, 5, seq, csum, &inner);
            assert_eq!(
                p.len(),
                4 + 4 + 4 * usize::from(csum) + 4 * usize::from(seq.is_some()) + 5
            );
            let g = parse_full(&p).unwrap();
            assert_eq!(
                (g.key, g.seq, g.checksummed, g.inner),
                (5, seq, csum, &inner[..])
            );
            if csum {
                let mut bad = p.clone();
                *bad.last_mut().unwrap() ^= 1;
                assert_eq!(parse(&bad), Err(WireError::BadChecksum { what: "gre" }));
            }
        }
    }

    #[test]
    fn reserved_bits_ignored() {
        let p = [0x28, 0xf8, 0x65, 0x58, 0, 0, 0, 1, 9];
        assert_eq!(parse(&p).unwrap(), (1, &[9][..]));
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            parse(&[0x20, 0, 0x65]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&[0x20, 0, 0x65, 0x58, 0, 0, 0]),
            Err(WireError::Truncated { need: 8, .. })
        ));
        assert_eq!(
            parse(&[0x20, 0x01, 0x65, 0x58, 0, 0, 0, 1]),
            Err(WireError::GreVersion(1))
        );
        assert_eq!(
            parse(&[0x60, 0x00, 0x65, 0x58, 0, 0, 0, 1]),
            Err(WireError::GreRouting)
        );
        assert_eq!(
            parse(&[0x00, 0x00, 0x65, 0x58]),
            Err(WireError::GreMissingKey)
        );
        assert_eq!(
            parse(&[0x20, 0x00, 0x08, 0x00, 0, 0, 0, 1]),
            Err(WireError::GreProtocol(0x0800))
        );
        assert!(try_write_header(&mut [0u8; 7], 1).is_err());
    }
}
