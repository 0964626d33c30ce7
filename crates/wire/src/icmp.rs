//! ICMP errors for the MTU promise: a packet too big for the overlay's path gets an error back
//! to its sender, never a silent drop.
//!
//! The engine sees Ethernet frames from its TAP; when one is larger than the overlay MTU it
//! answers, on the same TAP, with an Ethernet frame carrying ICMP "fragmentation needed"
//! (IPv4, type 3 code 4, RFC 1191) or ICMPv6 "packet too big" (type 2, RFC 4443 / RFC 8201).
//! The answer comes from the original destination (Ethernet and IP addresses swapped): on an L2
//! overlay there is no router address to use, and the sender's stack only needs the quoted
//! header to find its socket.
//!
//! Both builders refuse (with [`WireError::IcmpSuppressed`]) where the RFCs forbid an error:
//! about an ICMP error, about a non-first fragment, from or to an address that cannot be
//! answered. Nothing is appended to `out` when they return an error.

use crate::checksum;
use crate::error::WireError;
use crate::eth;
use crate::ipv4;
use crate::ipv6;

/// ICMP type "destination unreachable".
pub const V4_DEST_UNREACH: u8 = 3;
/// ICMP code "fragmentation needed and DF set".
pub const V4_FRAG_NEEDED: u8 = 4;
/// ICMPv6 type "packet too big".
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// TTL / hop limit of the errors built here.
pub const TTL: u8 = 64;
/// TOS of the IPv4 errors built here (internetwork control, as Linux uses for ICMP errors).
pub const TOS: u8 = 0xc0;
/// Most bytes of the original packet an ICMPv6 error quotes: 1280 − IPv6 header − ICMPv6 header.
pub const V6_MAX_QUOTE: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - 8;

/// Bytes before the IP header in `frame`, with the MACs swapped.
fn swapped_eth_header(e: &eth::EthHdr<'_>, out: &mut Vec<u8>) {
    let hdr = &e.frame()[..e.header_len()];
    out.extend_from_slice(&hdr[6..12]);
    out.extend_from_slice(&hdr[0..6]);
    out.extend_from_slice(&hdr[12..]);
}

/// Appends to `out` the Ethernet frame of an ICMP "fragmentation needed" (type 3, code 4) with
/// next-hop MTU `mtu`, answering the IPv4 packet in `orig_frame`.
///
/// Ethernet addresses swapped (a VLAN tag, if any, kept); IPv4 from the original destination to
/// the original source, TTL 64, TOS 0xc0, ID 0; the ICMP body quotes the original IP header
/// and the first 8 bytes of its payload (RFC 792); both checksums computed. Whether DF was set
/// is the caller's to check ([`crate::ipv4::Ipv4Hdr::dont_fragment`]): without DF a router
/// would fragment instead.
///
/// Refused: not IPv4; a malformed IPv4 header; a non-first fragment; an ICMP error message;
/// a source that is unspecified, broadcast, multicast, class E or loopback; a multicast or
/// broadcast destination (IP or Ethernet).
pub fn write_frag_needed_v4(
    orig_frame: &[u8],
    mtu: u16,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let e = eth::parse(orig_frame)?;
    if e.ethertype() != eth::ETHERTYPE_IPV4 {
        return Err(WireError::Unsupported {
            what: "ethertype",
            value: u32::from(e.ethertype()),
        });
    }
    if eth::is_multicast(e.dst()) {
        return Err(WireError::IcmpSuppressed {
            why: "link-layer multicast or broadcast destination",
        });
    }
    let ip = ipv4::parse(e.payload())?;
    if ip.frag_offset() != 0 {
        return Err(WireError::IcmpSuppressed {
            why: "non-first fragment",
        });
    }
    if ipv4::is_bad_source(ip.src()) {
        return Err(WireError::IcmpSuppressed {
            why: "source cannot be answered",
        });
    }
    if ip.dst().is_multicast() || ip.dst().is_broadcast() || ip.dst().is_unspecified() {
        return Err(WireError::IcmpSuppressed {
            why: "multicast or broadcast destination",
        });
    }
    if ip.protocol() == ipv4::PROTO_ICMP {
        if let Some(&t) = ip.payload().first() {
            // Error messages: unreachable, source quench, redirect, time exceeded, parameter problem.
            if matches!(t, 3 | 4 | 5 | 11 | 12) {
                return Err(WireError::IcmpSuppressed {
                    why: "original is an icmp error",
                });
            }
        }
    }
    let quote_len = ip.header_len() + ip.payload().len().min(8);
    let quote = &ip.packet()[..quote_len];
    let icmp_len = 8 + quote_len;

    out.reserve(e.header_len() + ipv4::MIN_HEADER_LEN + icmp_len);
    swapped_eth_header(&e, out);
    ipv4::push_header(
        out,
        TOS,
        TTL,
        ipv4::PROTO_ICMP,
        ip.dst(),
        ip.src(),
        icmp_len as u16,
    );
    let start = out.len();
    let m = mtu.to_be_bytes();
    out.extend_from_slice(&[V4_DEST_UNREACH, V4_FRAG_NEEDED, 0, 0, 0, 0, m[0], m[1]]);
    out.extend_from_slice(quote);
    let c = checksum::checksum(&out[start..]).to_be_bytes();
    out[start + 2] = c[0];
    out[start + 3] = c[1];
    Ok(())
}

/// Appends to `out` the Ethernet frame of an ICMPv6 "packet too big" (type 2, code 0) with MTU
/// `mtu`, answering the IPv6 packet in `orig_frame`.
///
/// Ethernet addresses swapped (a VLAN tag, if any, kept); IPv6 from the original destination to
/// the original source, hop limit 64; the body quotes as much of the original packet as keeps
/// the IPv6 packet within 1280 bytes (RFC 4443 §2.4(c)); ICMPv6 checksum computed.
///
/// Refused: not IPv6; a malformed IPv6 header; a non-first fragment; an ICMPv6 error message
/// (types below 128); an unspecified or multicast source; a multicast destination (RFC 4443
/// would allow "packet too big" there, but the answer needs a unicast source address, and on an
/// L2 overlay the engine has none to give).
pub fn write_packet_too_big_v6(
    orig_frame: &[u8],
    mtu: u32,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let e = eth::parse(orig_frame)?;
    if e.ethertype() != eth::ETHERTYPE_IPV6 {
        return Err(WireError::Unsupported {
            what: "ethertype",
            value: u32::from(e.ethertype()),
        });
    }
    let ip = ipv6::parse(e.payload())?;
    let (src, dst) = (ip.src(), ip.dst());
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() {
        return Err(WireError::IcmpSuppressed {
            why: "source cannot be answered",
        });
    }
    if dst.is_multicast() || dst.is_unspecified() {
        return Err(WireError::IcmpSuppressed {
            why: "multicast destination",
        });
    }
    // A chain of extension headers that cannot be walked is no reason to stay silent: the
    // error is still right for the sender.
    if let Ok((nh, off, non_first)) = ip.upper_layer() {
        if non_first {
            return Err(WireError::IcmpSuppressed {
                why: "non-first fragment",
            });
        }
        if nh == ipv6::NH_ICMPV6 {
            if let Some(&t) = ip.payload().get(off) {
                if t < 128 {
                    return Err(WireError::IcmpSuppressed {
                        why: "original is an icmpv6 error",
                    });
                }
            }
        }
    }
    let pkt = ip.packet();
    let quote = &pkt[..pkt.len().min(V6_MAX_QUOTE)];
    let icmp_len = 8 + quote.len();

    out.reserve(e.header_len() + ipv6::HEADER_LEN + icmp_len);
    swapped_eth_header(&e, out);
    ipv6::push_header(out, ipv6::NH_ICMPV6, TTL, dst, src, icmp_len as u16);
    let start = out.len();
    out.extend_from_slice(&[V6_PACKET_TOO_BIG, 0, 0, 0]);
    out.extend_from_slice(&mtu.to_be_bytes());
    out.extend_from_slice(quote);
    let pseudo = checksum::pseudo_v6(dst, src, ipv6::NH_ICMPV6, icmp_len as u32);
    let c = (!checksum::fold(checksum::sum(&out[start..], pseudo))).to_be_bytes();
    out[start + 2] = c[0];
    out[start + 3] = c[1];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

    /// Independent RFC 1071 checksum over a byte string, 32-bit arithmetic.
    fn naive(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in bytes.chunks(2) {
            s += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
        }
        while s > 0xffff {
            s = (s >> 16) + (s & 0xffff);
        }
        !(s as u16)
    }

    fn v4_frame(proto: u8, payload: &[u8], df: bool) -> Vec<u8> {
        let mut f = Vec::new();
        eth::push_header(&mut f, B, A, eth::ETHERTYPE_IPV4);
        ipv4::push_header(
            &mut f,
            0,
            64,
            proto,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            payload.len() as u16,
        );
        if df {
            f[14 + 6] = 0x40;
            f[14 + 10] = 0;
            f[14 + 11] = 0;
            let c = naive(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    fn v6_frame(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        eth::push_header(&mut f, B, A, eth::ETHERTYPE_IPV6);
        let s: Ipv6Addr = "fd00::2".parse().unwrap();
        let d: Ipv6Addr = "fd00::3".parse().unwrap();
        ipv6::push_header(&mut f, nh, 64, s, d, payload.len() as u16);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frag_needed_layout_and_checksums() {
        let payload: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let orig = v4_frame(ipv4::PROTO_TCP, &payload, true);
        let mut out = vec![0xee]; // appended after
        write_frag_needed_v4(&orig, 1450, &mut out).unwrap();
        let f = &out[1..];
        assert_eq!(&f[..6], &A);
        assert_eq!(&f[6..12], &B);
        let ip = ipv4::parse(&f[14..]).unwrap();
        assert_eq!(naive(ip.header()), 0, "ipv4 header checksum");
        assert_eq!(
            (ip.src(), ip.dst()),
            (Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!((ip.protocol(), ip.ttl(), ip.tos()), (1, 64, 0xc0));
        let icmp = ip.payload();
        assert_eq!(icmp.len(), 8 + 20 + 8);
        assert_eq!(&icmp[..2], &[3, 4]);
        assert_eq!(&icmp[4..8], &[0, 0, 0x05, 0xaa]); // 1450
        assert_eq!(naive(icmp), 0, "icmp checksum");
        assert_eq!(&icmp[8..], &orig[14..14 + 28]);
        assert_eq!(f.len(), 14 + 20 + 36);
    }

    #[test]
    fn frag_needed_short_payload_and_tag() {
        let mut orig = v4_frame(ipv4::PROTO_UDP, &[1, 2, 3], true);
        orig.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        let mut out = Vec::new();
        write_frag_needed_v4(&orig, 1400, &mut out).unwrap();
        assert_eq!(&out[12..18], &[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
        let ip = ipv4::parse(&out[18..]).unwrap();
        assert_eq!(ip.payload().len(), 8 + 20 + 3);
        assert_eq!(naive(ip.payload()), 0);
    }

    #[test]
    fn frag_needed_suppressed() {
        let mut out = Vec::new();
        // ICMP error about an ICMP error
        let o = v4_frame(ipv4::PROTO_ICMP, &[3, 4, 0, 0, 0, 0, 0, 0], true);
        assert!(matches!(
            write_frag_needed_v4(&o, 1400, &mut out),
            Err(WireError::IcmpSuppressed { .. })
        ));
        // ... but echo requests are answered
        let o = v4_frame(ipv4::PROTO_ICMP, &[8, 0, 0, 0, 0, 0, 0, 0], true);
        assert!(write_frag_needed_v4(&o, 1400, &mut out).is_ok());
        out.clear();
        // non-first fragment
        let mut o = v4_frame(ipv4::PROTO_UDP, &[0; 8], false);
        o[14 + 7] = 1;
        assert!(write_frag_needed_v4(&o, 1400, &mut out).is_err());
        // broadcast Ethernet destination
        let mut o = v4_frame(ipv4::PROTO_UDP, &[0; 8], true);
        o[..6].copy_from_slice(&eth::BROADCAST);
        assert!(write_frag_needed_v4(&o, 1400, &mut out).is_err());
        // multicast IP destination, unspecified source
        let mut o = v4_frame(ipv4::PROTO_UDP, &[0; 8], true);
        o[30] = 224;
        assert!(write_frag_needed_v4(&o, 1400, &mut out).is_err());
        let mut o = v4_frame(ipv4::PROTO_UDP, &[0; 8], true);
        o[26..30].copy_from_slice(&[0, 0, 0, 0]);
        assert!(write_frag_needed_v4(&o, 1400, &mut out).is_err());
        // not IPv4, malformed
        assert!(write_frag_needed_v4(&v6_frame(17, &[0; 8]), 1400, &mut out).is_err());
        let o = v4_frame(ipv4::PROTO_UDP, &[0; 8], true);
        assert!(write_frag_needed_v4(&o[..30], 1400, &mut out).is_err());
        assert!(out.is_empty(), "nothing appended on refusal");
    }

    #[test]
    fn packet_too_big_layout_and_checksum() {
        let payload: Vec<u8> = (0..2000u32).map(|i| (i * 3) as u8).collect();
        let orig = v6_frame(ipv6::NH_TCP, &payload);
        let mut out = Vec::new();
        write_packet_too_big_v6(&orig, 1430, &mut out).unwrap();
        assert_eq!(&out[..6], &A);
        let ip = ipv6::parse(&out[14..]).unwrap();
        assert_eq!(ip.packet().len(), 1280, "fills exactly the minimum MTU");
        assert_eq!(ip.src(), "fd00::3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.dst(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        let icmp = ip.payload();
        assert_eq!(&icmp[..2], &[2, 0]);
        assert_eq!(&icmp[4..8], &1430u32.to_be_bytes());
        assert_eq!(&icmp[8..], &orig[14..14 + 1232]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&out[14 + 8..14 + 40]);
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(naive(&pseudo), 0, "icmpv6 checksum");
        // A small original is quoted whole.
        let orig = v6_frame(ipv6::NH_UDP, &[9; 10]);
        out.clear();
        write_packet_too_big_v6(&orig, 1280, &mut out).unwrap();
        assert_eq!(&out[14 + 48..], &orig[14..]);
    }

    #[test]
    fn packet_too_big_suppressed() {
        let mut out = Vec::new();
        let o = v6_frame(ipv6::NH_ICMPV6, &[1, 0, 0, 0]);
        assert!(write_packet_too_big_v6(&o, 1280, &mut out).is_err());
        let o = v6_frame(ipv6::NH_ICMPV6, &[128, 0, 0, 0]);
        assert!(write_packet_too_big_v6(&o, 1280, &mut out).is_ok());
        out.clear();
        // non-first fragment
        let o = v6_frame(ipv6::NH_FRAGMENT, &[17, 0, 0, 0x08, 0, 0, 0, 1]);
        assert!(write_packet_too_big_v6(&o, 1280, &mut out).is_err());
        // multicast destination
        let mut o = v6_frame(ipv6::NH_UDP, &[0; 8]);
        o[38] = 0xff;
        assert!(write_packet_too_big_v6(&o, 1280, &mut out).is_err());
        // unspecified source
        let mut o = v6_frame(ipv6::NH_UDP, &[0; 8]);
        o[22..38].copy_from_slice(&[0; 16]);
        assert!(write_packet_too_big_v6(&o, 1280, &mut out).is_err());
        assert!(write_packet_too_big_v6(&v4_frame(17, &[0; 8], true), 1280, &mut out).is_err());
        assert!(out.is_empty());
    }
}
