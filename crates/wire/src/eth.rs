//! Ethernet II frames (without FCS), with at most one 802.1Q / 802.1ad tag skipped.

use crate::error::{need, WireError};

/// Length of an untagged Ethernet header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// The all-zero address.
pub const ZERO: [u8; 6] = [0; 6];

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad (QinQ service) tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Transparent Ethernet Bridging: an Ethernet frame carried by GRE.
pub const ETHERTYPE_TEB: u16 = 0x6558;

/// A borrowed view of a parsed Ethernet frame. Made by [`parse`], which guarantees the header
/// (and tag, if any) is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthHdr<'a> {
    frame: &'a [u8],
    ethertype: u16,
    header_len: usize,
}

impl<'a> EthHdr<'a> {
    /// Destination MAC address.
    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        mac_at(self.frame, 0)
    }

    /// Source MAC address.
    #[inline]
    pub fn src(&self) -> [u8; 6] {
        mac_at(self.frame, 6)
    }

    /// EtherType of the payload; for a tagged frame, the one after the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        self.ethertype
    }

    /// The tag control information (PCP, DEI, VLAN id) of the skipped tag, if there was one.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.header_len == HEADER_LEN + VLAN_TAG_LEN {
            Some(u16::from_be_bytes([self.frame[14], self.frame[15]]))
        } else {
            None
        }
    }

    /// Length of the header: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Everything after the header (and tag). May include Ethernet padding after an IP packet.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.frame[self.header_len..]
    }

    /// The whole frame.
    #[inline]
    pub fn frame(&self) -> &'a [u8] {
        self.frame
    }
}

#[inline]
fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

/// Parses an Ethernet frame; skips one 802.1Q (0x8100) or 802.1ad (0x88a8) tag if present.
pub fn parse(frame: &[u8]) -> Result<EthHdr<'_>, WireError> {
    need("ethernet header", HEADER_LEN, frame.len())?;
    let t = u16::from_be_bytes([frame[12], frame[13]]);
    if t == ETHERTYPE_VLAN || t == ETHERTYPE_QINQ {
        need("ethernet vlan tag", HEADER_LEN + VLAN_TAG_LEN, frame.len())?;
        let inner = u16::from_be_bytes([frame[16], frame[17]]);
        Ok(EthHdr {
            frame,
            ethertype: inner,
            header_len: HEADER_LEN + VLAN_TAG_LEN,
        })
    } else {
        Ok(EthHdr {
            frame,
            ethertype: t,
            header_len: HEADER_LEN,
        })
    }
}

/// True for a group (multicast or broadcast) address: the I/G bit, the lowest bit of the first
/// octet.
#[inline]
pub fn is_multicast(mac: [u8; 6]) -> bool {
    mac[0] & 0x01 != 0
}

/// True for ff:ff:ff:ff:ff:ff.
#[inline]
pub fn is_broadcast(mac: [u8; 6]) -> bool {
    mac == BROADCAST
}

/// True for a locally administered address (the U/L bit), as weft's generated MACs are.
#[inline]
pub fn is_local(mac: [u8; 6]) -> bool {
    mac[0] & 0x02 != 0
}

/// Writes an untagged header at the start of `out`; returns [`HEADER_LEN`].
pub fn write_header(
    out: &mut [u8],
    dst: [u8; 6],
    src: [u8; 6],
    ethertype: u16,
) -> Result<usize, WireError> {
    let have = out.len();
    let h = out.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall {
        need: HEADER_LEN,
        have,
    })?;
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Ok(HEADER_LEN)
}

/// Appends an untagged header to `out`.
#[inline]
pub fn push_header(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x02];
    const B: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x03];

    #[test]
    fn untagged() {
        let mut f = vec![0u8; 20];
        write_header(&mut f, A, B, ETHERTYPE_IPV4).unwrap();
        f[14..].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        let e = parse(&f).unwrap();
        assert_eq!(e.dst(), A);
        assert_eq!(e.src(), B);
        assert_eq!(e.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(e.vlan_tci(), None);
        assert_eq!(e.header_len(), 14);
        assert_eq!(e.payload(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn known_bytes() {
        let f = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, 0x08, 0x06,
        ];
        let e = parse(&f).unwrap();
        assert!(is_broadcast(e.dst()) && is_multicast(e.dst()));
        assert_eq!(e.src(), A);
        assert_eq!(e.ethertype(), ETHERTYPE_ARP);
        assert!(e.payload().is_empty());
        let mut v = Vec::new();
        push_header(&mut v, BROADCAST, A, ETHERTYPE_ARP);
        assert_eq!(v, f);
    }

    #[test]
    fn one_tag_skipped() {
        let mut f = vec![0u8; 22];
        write_header(&mut f, A, B, ETHERTYPE_VLAN).unwrap();
        f[14..16].copy_from_slice(&0x2064u16.to_be_bytes()); // pcp 1, vid 100
        f[16..18].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let e = parse(&f).unwrap();
        assert_eq!(e.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(e.vlan_tci(), Some(0x2064));
        assert_eq!(e.header_len(), 18);
        assert_eq!(e.payload().len(), 4);
    }

    #[test]
    fn short_frames() {
        assert!(matches!(
            parse(&[0; 13]),
            Err(WireError::Truncated {
                need: 14,
                have: 13,
                ..
            })
        ));
        let mut f = [0u8; 16];
        f[12] = 0x81;
        assert!(matches!(
            parse(&f),
            Err(WireError::Truncated { need: 18, .. })
        ));
        assert!(matches!(
            write_header(&mut [0u8; 5], A, B, 1),
            Err(WireError::BufferTooSmall { need: 14, have: 5 })
        ));
    }

    #[test]
    fn group_bits() {
        assert!(is_multicast([0x01, 0x00, 0x5e, 0, 0, 1]));
        assert!(is_multicast([0x33, 0x33, 0, 0, 0, 1]));
        assert!(!is_multicast(A));
        assert!(is_local(A));
        assert_eq!(fmt_mac(A), "02:42:0a:00:00:02");
    }
}
