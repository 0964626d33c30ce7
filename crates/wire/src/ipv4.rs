//! IPv4 headers (RFC 791): a borrowed view and a header writer.

use std::net::Ipv4Addr;

use crate::checksum;
use crate::error::{need, WireError};

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of GRE.
pub const PROTO_GRE: u8 = 47;

/// A borrowed view of an IPv4 packet whose header [`parse`] checked: version 4, IHL ≥ 5, the
/// whole header present, total length within the bytes given and not shorter than the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Hdr<'a> {
    pkt: &'a [u8],
    header_len: usize,
    total_len: usize,
}

impl<'a> Ipv4Hdr<'a> {
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// The total length field: header plus payload, without Ethernet padding.
    pub fn total_len(&self) -> usize {
        self.total_len
    }
    /// DSCP and ECN byte.
    pub fn tos(&self) -> u8 {
        self.pkt[1]
    }
    /// Identification.
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.pkt[4], self.pkt[5]])
    }
    /// The DF (don't fragment) flag.
    pub fn dont_fragment(&self) -> bool {
        self.pkt[6] & 0x40 != 0
    }
    /// The MF (more fragments) flag.
    pub fn more_fragments(&self) -> bool {
        self.pkt[6] & 0x20 != 0
    }
    /// Fragment offset, in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        u16::from_be_bytes([self.pkt[6] & 0x1f, self.pkt[7]])
    }
    /// True for any fragment (first or not).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.pkt[8]
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.pkt[9]
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.pkt[12], self.pkt[13], self.pkt[14], self.pkt[15])
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.pkt[16], self.pkt[17], self.pkt[18], self.pkt[19])
    }
    /// The header bytes, options included.
    pub fn header(&self) -> &'a [u8] {
        &self.pkt[..self.header_len]
    }
    /// The payload, up to the total length (trailing Ethernet padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        &self.pkt[self.header_len..self.total_len]
    }
    /// The packet, up to the total length.
    pub fn packet(&self) -> &'a [u8] {
        &self.pkt[..self.total_len]
    }
    /// True when the header checksum verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum::verifies(self.header(), 0)
    }
}

/// Parses an IPv4 packet (not verifying the header checksum: see [`Ipv4Hdr::checksum_ok`]).
pub fn parse(pkt: &[u8]) -> Result<Ipv4Hdr<'_>, WireError> {
    need("ipv4 header", MIN_HEADER_LEN, pkt.len())?;
    let version = pkt[0] >> 4;
    if version != 4 {
        return Err(WireError::IpVersion(version));
    }
    let header_len = usize::from(pkt[0] & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(WireError::BadLength {
            what: "ipv4 ihl",
            value: header_len / 4,
        });
    }
    need("ipv4 header options", header_len, pkt.len())?;
    let total_len = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if total_len < header_len {
        return Err(WireError::BadLength {
            what: "ipv4 total length",
            value: total_len,
        });
    }
    need("ipv4 packet", total_len, pkt.len())?;
    Ok(Ipv4Hdr {
        pkt,
        header_len,
        total_len,
    })
}

/// Strips the IPv4 header from what a raw IPv4 socket delivers (Linux hands raw IPPROTO_GRE
/// sockets the whole IP packet): returns (source, payload).
pub fn strip(pkt: &[u8]) -> Result<(Ipv4Addr, &[u8]), WireError> {
    let h = parse(pkt)?;
    Ok((h.src(), h.payload()))
}

/// Appends a 20-byte IPv4 header (no options, DF clear, ID 0) with its checksum to `out`.
pub fn push_header(
    out: &mut Vec<u8>,
    tos: u8,
    ttl: u8,
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: u16,
) {
    let total = payload_len.saturating_add(MIN_HEADER_LEN as u16);
    let t = total.to_be_bytes();
    let mut h = [
        0x45, tos, t[0], t[1], 0, 0, 0, 0, ttl, protocol, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&h).to_be_bytes();
    h[10] = c[0];
    h[11] = c[1];
    out.extend_from_slice(&h);
}

/// True for an address an ICMP error must never be sent to or about as a source
/// (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7): unspecified, broadcast, multicast, class E, loopback.
pub fn is_bad_source(a: Ipv4Addr) -> bool {
    a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.octets()[0] >= 240
        || a.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(total: u16, ihl: u8) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(total).max(20)];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    #[test]
    fn push_then_parse() {
        let mut v = Vec::new();
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(10, 0, 0, 2);
        push_header(&mut v, 0xc0, 64, PROTO_ICMP, s, d, 4);
        v.extend_from_slice(&[1, 2, 3, 4, 0, 0]); // two bytes of padding
        let h = parse(&v).unwrap();
        assert!(h.checksum_ok());
        assert_eq!(
            (h.src(), h.dst(), h.protocol(), h.ttl(), h.tos()),
            (s, d, 1, 64, 0xc0)
        );
        assert_eq!(h.payload(), &[1, 2, 3, 4]);
        assert_eq!(h.total_len(), 24);
        assert!(!h.is_fragment() && !h.dont_fragment());
        assert_eq!(strip(&v).unwrap(), (s, &[1, 2, 3, 4][..]));
    }

    #[test]
    fn fragments() {
        let mut p = pkt(20, 5);
        p[6] = 0x40;
        assert!(parse(&p).unwrap().dont_fragment());
        p[6] = 0x20;
        assert!(parse(&p).unwrap().is_fragment());
        p[6] = 0x01;
        p[7] = 0x02;
        let h = parse(&p).unwrap();
        assert_eq!(h.frag_offset(), 0x102);
        assert!(h.is_fragment() && !h.more_fragments());
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            parse(&[0x45; 19]),
            Err(WireError::Truncated { .. })
        ));
        let mut p = pkt(20, 5);
        p[0] = 0x65;
        assert_eq!(parse(&p), Err(WireError::IpVersion(6)));
        assert!(matches!(
            parse(&pkt(20, 4)),
            Err(WireError::BadLength {
                what: "ipv4 ihl",
                ..
            })
        ));
        assert!(matches!(
            parse(&pkt(20, 6)),
            Err(WireError::Truncated { .. })
        ));
        let mut p = pkt(20, 5);
        p[3] = 19;
        assert!(matches!(parse(&p), Err(WireError::BadLength { .. })));
        let mut p = pkt(20, 5);
        p[3] = 21;
        assert!(matches!(
            parse(&p),
            Err(WireError::Truncated {
                what: "ipv4 packet",
                ..
            })
        ));
    }
}
