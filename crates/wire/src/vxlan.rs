//! VXLAN (RFC 7348): the 8-byte header between the outer UDP header and the inner Ethernet frame.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Senders set I (0x08) and zero every reserved bit; receivers drop packets without I and ignore
//! the reserved bits (so extensions such as Linux's GBP, which use them, still decode).

use crate::error::WireError;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// IANA's VXLAN UDP port (Linux's default is also 4789 when created with `dstport 4789`).
pub const DEFAULT_PORT: u16 = 4789;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Bytes VXLAN adds to an inner frame on an IPv4 underlay: outer IPv4 20 + UDP 8 + VXLAN 8 +
/// inner Ethernet 14. Overlay MTU = underlay MTU − this.
pub const OVERHEAD_V4: usize = 20 + 8 + HEADER_LEN + 14;
/// The same on an IPv6 underlay (outer IPv6 header is 40 bytes).
pub const OVERHEAD_V6: usize = 40 + 8 + HEADER_LEN + 14;

/// Writes the header for `vni` into `out[..8]`: flags = I, VNI in bytes 4..7, reserved zero.
/// A `vni` wider than 24 bits is masked to its low 24 bits.
///
/// # Panics
/// If `out` is shorter than [`HEADER_LEN`] (a caller bug; see [`try_write_header`]).
#[inline]
pub fn write_header(out: &mut [u8], vni: u32) {
    let h = &mut out[..HEADER_LEN];
    let v = (vni & MAX_VNI).to_be_bytes();
    h.copy_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
}

/// [`write_header`] that reports a short buffer instead of panicking.
#[inline]
pub fn try_write_header(out: &mut [u8], vni: u32) -> Result<(), WireError> {
    if out.len() < HEADER_LEN {
        return Err(WireError::BufferTooSmall {
            need: HEADER_LEN,
            have: out.len(),
        });
    }
    write_header(out, vni);
    Ok(())
}

/// Parses a VXLAN packet (the UDP payload): returns the VNI and the inner Ethernet frame.
///
/// Rejects packets shorter than the header and headers without the I flag; ignores reserved
/// bits. The inner frame is not checked (it may be empty): parse it with [`crate::eth::parse`].
#[inline]
pub fn parse(pkt: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if pkt.len() < HEADER_LEN {
        return Err(WireError::Truncated {
            what: "vxlan header",
            need: HEADER_LEN,
            have: pkt.len(),
        });
    }
    if pkt[0] & FLAG_I == 0 {
        return Err(WireError::VxlanMissingIFlag);
    }
    let vni = u32::from_be_bytes([0, pkt[4], pkt[5], pkt[6]]);
    Ok((vni, &pkt[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bytes() {
        let mut h = [0xaau8; 8];
        write_header(&mut h, 0x123456);
        assert_eq!(h, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let mut h = [0u8; 8];
        write_header(&mut h, 42);
        assert_eq!(h, [0x08, 0, 0, 0, 0, 0, 42, 0]);
    }

    #[test]
    fn round_trip() {
        for vni in [0, 1, 42, 4096, 0xabcdef, MAX_VNI] {
            let mut p = vec![0u8; HEADER_LEN + 3];
            write_header(&mut p, vni);
            p[8..].copy_from_slice(&[7, 8, 9]);
            let (v, inner) = parse(&p).unwrap();
            assert_eq!(v, vni);
            assert_eq!(inner, &[7, 8, 9]);
        }
    }

    #[test]
    fn vni_masked_to_24_bits() {
        let mut h = [0u8; 8];
        write_header(&mut h, 0xff00_0001);
        assert_eq!(parse(&h).unwrap().0, 1);
    }

    #[test]
    fn reserved_bits_ignored() {
        // Every reserved bit set (what a GBP sender may do), I set.
        let p = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x07, 0xff, 0xde, 0xad];
        let (vni, inner) = parse(&p).unwrap();
        assert_eq!(vni, 7);
        assert_eq!(inner, &[0xde, 0xad]);
    }

    #[test]
    fn missing_i_flag_rejected() {
        let p = [0xf7, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(parse(&p), Err(WireError::VxlanMissingIFlag));
    }

    #[test]
    fn short_rejected() {
        for n in 0..HEADER_LEN {
            assert!(
                matches!(parse(&[0x08; 8][..n]), Err(WireError::Truncated { have, .. }) if have == n)
            );
        }
        assert_eq!(parse(&[8, 0, 0, 0, 0, 0, 1, 0]).unwrap(), (1, &[][..]));
        assert!(try_write_header(&mut [0u8; 7], 1).is_err());
    }

    #[test]
    fn overhead_is_fifty_on_ipv4() {
        assert_eq!(OVERHEAD_V4, 50);
        assert_eq!(OVERHEAD_V6, 70);
    }
}
