//! IPv6 headers (RFC 8200): a borrowed view, a header writer, and the walk over extension
//! headers that the ICMPv6 error rules need.

use std::net::Ipv6Addr;

use crate::error::{need, WireError};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next-header value of ICMPv6.
pub const NH_ICMPV6: u8 = 58;
/// Next-header value of TCP.
pub const NH_TCP: u8 = 6;
/// Next-header value of UDP.
pub const NH_UDP: u8 = 17;
/// Next-header value of the fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// The IPv6 minimum MTU.
pub const MIN_MTU: usize = 1280;

/// A borrowed view of an IPv6 packet whose fixed header [`parse`] checked: version 6, the header
/// present, the payload length within the bytes given. A payload length of 0 (a jumbogram) is
/// taken as "no payload".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Hdr<'a> {
    pkt: &'a [u8],
    payload_len: usize,
}

impl<'a> Ipv6Hdr<'a> {
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.pkt[0] << 4) | (self.pkt[1] >> 4)
    }
    /// The payload length field.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
    /// The next-header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.pkt[6]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.pkt[7]
    }
    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        addr_at(self.pkt, 8)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        addr_at(self.pkt, 24)
    }
    /// The payload (extension headers included), without trailing Ethernet padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.pkt[HEADER_LEN..HEADER_LEN + self.payload_len]
    }
    /// The packet, up to the end of its payload.
    pub fn packet(&self) -> &'a [u8] {
        &self.pkt[..HEADER_LEN + self.payload_len]
    }

    /// Walks hop-by-hop, routing, destination-options and fragment headers (at most 8) and
    /// returns the upper-layer protocol, the offset of its header within [`Self::payload`], and
    /// whether the packet is a non-first fragment (whose upper-layer header is not here).
    pub fn upper_layer(&self) -> Result<(u8, usize, bool), WireError> {
        let p = self.payload();
        let mut nh = self.next_header();
        let mut off = 0usize;
        for _ in 0..8 {
            match nh {
                0 | 43 | 60 => {
                    need("ipv6 extension header", off + 8, p.len())?;
                    let len = (usize::from(p[off + 1]) + 1) * 8;
                    need("ipv6 extension header", off + len, p.len())?;
                    nh = p[off];
                    off += len;
                }
                NH_FRAGMENT => {
                    need("ipv6 fragment header", off + 8, p.len())?;
                    let frag_off = u16::from_be_bytes([p[off + 2], p[off + 3]]) >> 3;
                    nh = p[off];
                    off += 8;
                    if frag_off != 0 {
                        return Ok((nh, off, true));
                    }
                }
                _ => return Ok((nh, off, false)),
            }
        }
        Err(WireError::BadLength {
            what: "ipv6 extension header chain",
            value: off,
        })
    }
}

#[inline]
pub(crate) fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Parses an IPv6 packet's fixed header.
pub fn parse(pkt: &[u8]) -> Result<Ipv6Hdr<'_>, WireError> {
    need("ipv6 header", HEADER_LEN, pkt.len())?;
    let version = pkt[0] >> 4;
    if version != 6 {
        return Err(WireError::IpVersion(version));
    }
    let payload_len = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
    need("ipv6 payload", HEADER_LEN + payload_len, pkt.len())?;
    Ok(Ipv6Hdr { pkt, payload_len })
}

/// Appends a 40-byte IPv6 header (traffic class and flow label 0) to `out`.
pub fn push_header(
    out: &mut Vec<u8>,
    next_header: u8,
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    payload_len: u16,
) {
    let l = payload_len.to_be_bytes();
    out.extend_from_slice(&[0x60, 0, 0, 0, l[0], l[1], next_header, hop_limit]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
}

/// The all-nodes link-local multicast address, ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Ethernet multicast address of an IPv6 multicast address (RFC 2464 §7): 33:33 + low 32 bits.
pub fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// True for a solicited-node multicast address (ff02::1:ff00:0/104).
pub fn is_solicited_node(a: Ipv6Addr) -> bool {
    let o = a.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn push_then_parse() {
        let mut v = Vec::new();
        push_header(&mut v, NH_UDP, 64, a("fd00::1"), a("fd00::2"), 3);
        v.extend_from_slice(&[1, 2, 3, 0xee]);
        let h = parse(&v).unwrap();
        assert_eq!(
            (h.src(), h.dst(), h.next_header(), h.hop_limit()),
            (a("fd00::1"), a("fd00::2"), 17, 64)
        );
        assert_eq!(h.payload(), &[1, 2, 3]);
        assert_eq!(h.upper_layer().unwrap(), (NH_UDP, 0, false));
        assert_eq!(h.traffic_class(), 0);
    }

    #[test]
    fn extension_walk() {
        let mut v = Vec::new();
        push_header(&mut v, 0, 64, a("fd00::1"), a("fd00::2"), 24);
        v.extend_from_slice(&[NH_FRAGMENT, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop, 8 bytes
        v.extend_from_slice(&[NH_ICMPV6, 0, 0, 0, 0, 0, 0, 0]); // fragment, offset 0
        v.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(&v).unwrap().upper_layer().unwrap(),
            (NH_ICMPV6, 16, false)
        );
        v[40 + 8 + 3] = 0x08; // offset 1
        assert_eq!(
            parse(&v).unwrap().upper_layer().unwrap(),
            (NH_ICMPV6, 16, true)
        );
        // A hop-by-hop header claiming more than there is.
        v[41] = 9;
        assert!(parse(&v).unwrap().upper_layer().is_err());
        // A loop of hop-by-hop headers longer than 8.
        let mut v = Vec::new();
        push_header(&mut v, 0, 64, a("::1"), a("::1"), 80);
        v.extend_from_slice(&[0u8; 80]);
        assert!(parse(&v).unwrap().upper_layer().is_err());
    }

    #[test]
    fn malformed() {
        assert!(parse(&[0x60; 39]).is_err());
        let mut v = vec![0u8; 40];
        v[0] = 0x40;
        assert_eq!(parse(&v), Err(WireError::IpVersion(4)));
        v[0] = 0x60;
        v[5] = 1;
        assert!(matches!(parse(&v), Err(WireError::Truncated { .. })));
    }

    #[test]
    fn multicast_helpers() {
        let t = a("fd00::a:b:1234:5678");
        assert_eq!(solicited_node(t), a("ff02::1:ff34:5678"));
        assert!(is_solicited_node(solicited_node(t)));
        assert!(!is_solicited_node(ALL_NODES));
        assert_eq!(
            multicast_mac(solicited_node(t)),
            [0x33, 0x33, 0xff, 0x34, 0x56, 0x78]
        );
    }
}
