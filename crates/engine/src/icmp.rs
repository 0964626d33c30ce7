//! ICMP "fragmentation needed" (RFC 792/1191) and ICMPv6 "packet too big" (RFC 4443) errors,
//! built the way Linux's tunnels build them for a bridged port (`iptunnel_pmtud_build_icmp`):
//! back to the sender's MAC from the MAC it sent to, from the IP address it sent to.
//!
//! Private stand-in for `weft_wire::icmp::{write_frag_needed_v4, write_packet_too_big_v6}`,
//! which had not landed when the engine was written; same contract (append to `out`).

use std::net::Ipv6Addr;

use weft_wire::{checksum, eth, ipv4, ipv6};

/// Total length limit of an ICMPv4 error (RFC 1812 §4.3.2.3).
const MAX_V4: usize = 576;

/// Appends an Ethernet frame carrying ICMP type 3 code 4 with next-hop `mtu`, about the
/// IPv4 packet in `frame` (Ethernet header of `l2` bytes). `Err(why)` when RFC 1122 forbids an
/// error about it.
pub(crate) fn write_frag_needed_v4(
    frame: &[u8],
    l2: usize,
    mtu: u16,
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let e = eth::parse(frame).map_err(|_| "truncated")?;
    let ip = ipv4::parse(&frame[l2..]).map_err(|_| "not ipv4")?;
    if eth::is_multicast(e.dst()) {
        return Err("link-layer multicast");
    }
    if ipv4::is_bad_source(ip.src()) {
        return Err("bad source");
    }
    if ip.dst().is_multicast() || ip.dst().is_broadcast() || ip.dst().is_unspecified() {
        return Err("multicast destination");
    }
    if ip.frag_offset() != 0 {
        return Err("non-first fragment");
    }
    if ip.protocol() == ipv4::PROTO_ICMP {
        let t = ip.payload().first().copied().unwrap_or(0);
        if matches!(t, 3 | 4 | 5 | 11 | 12) {
            return Err("icmp error");
        }
    }
    let pkt = ip.packet();
    let quote = &pkt[..pkt.len().min(MAX_V4 - 20 - 8)];
    let icmp_len = 8 + quote.len();
    eth::push_header(out, e.src(), e.dst(), eth::ETHERTYPE_IPV4);
    ipv4::push_header(
        out,
        0,
        64,
        ipv4::PROTO_ICMP,
        ip.dst(),
        ip.src(),
        icmp_len as u16,
    );
    let start = out.len();
    let m = mtu.to_be_bytes();
    out.extend_from_slice(&[3, 4, 0, 0, 0, 0, m[0], m[1]]);
    out.extend_from_slice(quote);
    let c = checksum::checksum(&out[start..]).to_be_bytes();
    out[start + 2] = c[0];
    out[start + 3] = c[1];
    Ok(())
}

/// Appends an Ethernet frame carrying ICMPv6 type 2 (packet too big) with `mtu`, about the
/// IPv6 packet in `frame`, quoting as much of it as fits in 1280 bytes.
pub(crate) fn write_packet_too_big_v6(
    frame: &[u8],
    l2: usize,
    mtu: u32,
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let e = eth::parse(frame).map_err(|_| "truncated")?;
    let ip = ipv6::parse(&frame[l2..]).map_err(|_| "not ipv6")?;
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (ip.src(), ip.dst());
    if src.is_unspecified() || src.is_multicast() {
        return Err("bad source");
    }
    // RFC 4443 allows this error for a multicast destination, but its source would then be
    // a multicast address: not sendable.
    if dst.is_multicast() || dst.is_unspecified() {
        return Err("multicast destination");
    }
    if let Ok((nh, off, _)) = ip.upper_layer() {
        if nh == ipv6::NH_ICMPV6 && ip.payload().get(off).is_some_and(|t| *t < 128) {
            return Err("icmpv6 error");
        }
    }
    let pkt = ip.packet();
    let quote = &pkt[..pkt.len().min(ipv6::MIN_MTU - 40 - 8)];
    let icmp_len = 8 + quote.len();
    eth::push_header(out, e.src(), e.dst(), eth::ETHERTYPE_IPV6);
    ipv6::push_header(out, ipv6::NH_ICMPV6, 64, dst, src, icmp_len as u16);
    let start = out.len();
    out.extend_from_slice(&[2, 0, 0, 0]);
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
    use crate::pkt::tests::tcp_frame;
    use std::net::Ipv4Addr;

    #[test]
    fn frag_needed_quotes_and_checksums() {
        let f = tcp_frame(false, 1, 0x10, &[0u8; 1500]);
        let mut out = Vec::new();
        write_frag_needed_v4(&f, 14, 1450, &mut out).unwrap();
        assert_eq!(&out[..6], &f[6..12]);
        assert_eq!(&out[6..12], &f[..6]);
        let ip = ipv4::parse(&out[14..]).unwrap();
        assert!(ip.checksum_ok());
        assert_eq!(ip.src(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(ip.dst(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip.total_len(), 576);
        let icmp = ip.payload();
        assert_eq!(&icmp[..2], &[3, 4]);
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1450);
        assert!(checksum::verifies(icmp, 0));
        assert_eq!(&icmp[8..28], &f[14..34]);
    }

    #[test]
    fn packet_too_big_v6() {
        let f = tcp_frame(true, 1, 0x10, &[0u8; 1500]);
        let mut out = Vec::new();
        write_packet_too_big_v6(&f, 14, 1450, &mut out).unwrap();
        let ip = ipv6::parse(&out[14..]).unwrap();
        assert_eq!(ip.packet().len(), 1280);
        let icmp = ip.payload();
        assert_eq!(icmp[0], 2);
        assert_eq!(u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]), 1450);
        let pseudo = checksum::pseudo_v6(ip.src(), ip.dst(), 58, icmp.len() as u32);
        assert!(checksum::verifies(icmp, pseudo));
    }

    #[test]
    fn never_about_multicast() {
        let mut f = tcp_frame(false, 1, 0x10, &[0u8; 100]);
        f[0] = 1;
        assert!(write_frag_needed_v4(&f, 14, 1450, &mut Vec::new()).is_err());
    }
}
