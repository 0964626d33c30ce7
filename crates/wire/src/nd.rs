//! IPv6 Neighbor Discovery (RFC 4861): recognise a Neighbor Solicitation, build the Neighbor
//! Advertisement that answers it — the IPv6 half of what Linux's VXLAN `proxy` does
//! (`neigh_reduce`).

use std::net::Ipv6Addr;

use crate::checksum;
use crate::eth;
use crate::ipv6;

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_ADVERT: u8 = 136;
/// Option type: source link-layer address.
pub const OPT_SOURCE_LLADDR: u8 = 1;
/// Option type: target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;
/// Advertisement flag: sender is a router.
pub const FLAG_ROUTER: u8 = 0x80;
/// Advertisement flag: sent in response to a solicitation.
pub const FLAG_SOLICITED: u8 = 0x40;
/// Advertisement flag: override an existing cache entry.
pub const FLAG_OVERRIDE: u8 = 0x20;
/// ICMPv6 length of the advertisement [`write_advert`] builds (24 + an 8-byte TLLA option).
pub const ADVERT_ICMP_LEN: usize = 32;
/// Length of the whole advertisement frame [`write_advert`] builds.
pub const ADVERT_FRAME_LEN: usize = eth::HEADER_LEN + ipv6::HEADER_LEN + ADVERT_ICMP_LEN;

/// A Neighbor Solicitation: who has `target`? asked by `src_ip` at `src_mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborSolicit {
    /// The source link-layer address option if present, else the Ethernet source.
    pub src_mac: [u8; 6],
    /// The IPv6 source; `::` for duplicate-address detection.
    pub src_ip: Ipv6Addr,
    /// The address asked about.
    pub target: Ipv6Addr,
}

impl NeighborSolicit {
    /// True for duplicate-address detection (source `::`); the answer then goes to all-nodes.
    pub fn is_dad(&self) -> bool {
        self.src_ip.is_unspecified()
    }
}

/// Recognises a Neighbor Solicitation in an Ethernet frame (one VLAN tag is skipped), validated
/// as RFC 4861 §7.1.1 asks: IPv6 hop limit 255, ICMPv6 type 135 code 0, a correct ICMPv6
/// checksum, at least 24 bytes, a target that is not multicast (nor loopback, as Linux's proxy
/// also refuses), every option of non-zero length and within the packet, and for a source of
/// `::` a solicited-node multicast destination and no source link-layer address option.
/// The upper-layer header must follow the fixed IPv6 header directly (solicitations carry no
/// extension headers). `None` for anything else.
pub fn parse_solicit(frame: &[u8]) -> Option<NeighborSolicit> {
    let e = eth::parse(frame).ok()?;
    if e.ethertype() != eth::ETHERTYPE_IPV6 {
        return None;
    }
    let ip = ipv6::parse(e.payload()).ok()?;
    if ip.next_header() != ipv6::NH_ICMPV6 || ip.hop_limit() != 255 {
        return None;
    }
    let icmp = ip.payload();
    if icmp.len() < 24 || icmp[0] != TYPE_SOLICIT || icmp[1] != 0 {
        return None;
    }
    let (src_ip, dst_ip) = (ip.src(), ip.dst());
    let pseudo = checksum::pseudo_v6(src_ip, dst_ip, ipv6::NH_ICMPV6, icmp.len() as u32);
    if !checksum::verifies(icmp, pseudo) {
        return None;
    }
    let target = ipv6::addr_at(icmp, 8);
    if target.is_multicast()
        || target.is_loopback()
        || target.is_unspecified()
        || src_ip.is_multicast()
    {
        return None;
    }
    let mut slla = None;
    let mut opts = &icmp[24..];
    while !opts.is_empty() {
        if opts.len() < 2 {
            return None;
        }
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == OPT_SOURCE_LLADDR && len == 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&opts[2..8]);
            slla = Some(m);
        }
        opts = &opts[len..];
    }
    if src_ip.is_unspecified() && (!ipv6::is_solicited_node(dst_ip) || slla.is_some()) {
        return None;
    }
    let src_mac = slla.unwrap_or_else(|| e.src());
    if eth::is_multicast(src_mac) {
        return None;
    }
    Some(NeighborSolicit {
        src_mac,
        src_ip,
        target,
    })
}

/// Appends to `out` the whole Ethernet + IPv6 + ICMPv6 Neighbor Advertisement answering `ns`:
/// `ns.target` is at `answer_mac`.
///
/// To the solicitor (`ns.src_ip` at `ns.src_mac`), flags Solicited and Override; for a DAD
/// solicitation (source `::`), to all-nodes (ff02::1 at 33:33:00:00:00:01) with Override only,
/// since RFC 4861 §7.2.4 requires the Solicited flag clear there. IPv6 source = the target,
/// hop limit 255, one target link-layer address option, ICMPv6 checksum computed. Untagged.
/// `out` is appended to, not cleared.
pub fn write_advert(ns: &NeighborSolicit, answer_mac: [u8; 6], out: &mut Vec<u8>) {
    let (dst_ip, dst_mac, flags) = if ns.src_ip.is_unspecified() {
        (
            ipv6::ALL_NODES,
            ipv6::multicast_mac(ipv6::ALL_NODES),
            FLAG_OVERRIDE,
        )
    } else {
        (ns.src_ip, ns.src_mac, FLAG_SOLICITED | FLAG_OVERRIDE)
    };
    out.reserve(ADVERT_FRAME_LEN);
    eth::push_header(out, dst_mac, answer_mac, eth::ETHERTYPE_IPV6);
    ipv6::push_header(
        out,
        ipv6::NH_ICMPV6,
        255,
        ns.target,
        dst_ip,
        ADVERT_ICMP_LEN as u16,
    );
    let start = out.len();
    out.extend_from_slice(&[TYPE_ADVERT, 0, 0, 0, flags, 0, 0, 0]);
    out.extend_from_slice(&ns.target.octets());
    out.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
    out.extend_from_slice(&answer_mac);
    let pseudo = checksum::pseudo_v6(ns.target, dst_ip, ipv6::NH_ICMPV6, ADVERT_ICMP_LEN as u32);
    let c = (!checksum::fold(checksum::sum(&out[start..], pseudo))).to_be_bytes();
    out[start + 2] = c[0];
    out[start + 3] = c[1];
}

/// Appends a complete Neighbor Solicitation frame for `target` from `src_ip` at `src_mac` to
/// `out` (to the solicited-node multicast address, with a source link-layer address option
/// unless `src_ip` is `::`); for tests and for an engine that needs to ask.
pub fn write_solicit(src_mac: [u8; 6], src_ip: Ipv6Addr, target: Ipv6Addr, out: &mut Vec<u8>) {
    let dst = ipv6::solicited_node(target);
    let with_opt = !src_ip.is_unspecified();
    let icmp_len: u16 = if with_opt { 32 } else { 24 };
    eth::push_header(out, ipv6::multicast_mac(dst), src_mac, eth::ETHERTYPE_IPV6);
    ipv6::push_header(out, ipv6::NH_ICMPV6, 255, src_ip, dst, icmp_len);
    let start = out.len();
    out.extend_from_slice(&[TYPE_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&target.octets());
    if with_opt {
        out.extend_from_slice(&[OPT_SOURCE_LLADDR, 1]);
        out.extend_from_slice(&src_mac);
    }
    let pseudo = checksum::pseudo_v6(src_ip, dst, ipv6::NH_ICMPV6, u32::from(icmp_len));
    let c = (!checksum::fold(checksum::sum(&out[start..], pseudo))).to_be_bytes();
    out[start + 2] = c[0];
    out[start + 3] = c[1];
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x02];
    const C2: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x03];

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A solicitation as Linux sends it, byte by byte (fd00::2 asks for fd00::3), with the
    /// checksum worked out independently (see `independent_checksum`).
    fn wire_solicit() -> Vec<u8> {
        let mut f = vec![
            0x33, 0x33, 0xff, 0x00, 0x00, 0x03, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, 0x86,
            0xdd, // eth
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, // ver, plen 32, nh 58, hlim 255
            0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // src fd00::2
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00,
            0x03, // ff02::1:ff00:3
            0x87, 0x00, 0x00, 0x00, 0, 0, 0, 0, // type 135, code, csum, reserved
            0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, // target fd00::3
            0x01, 0x01, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, // SLLA option
        ];
        let c = independent_checksum(&f[22..38], &f[38..54], &f[54..]);
        f[56..58].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// ICMPv6 checksum by the book, in plain 32-bit arithmetic, to check the fast path against.
    fn independent_checksum(src: &[u8], dst: &[u8], icmp: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(src);
        bytes.extend_from_slice(dst);
        bytes.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        bytes.extend_from_slice(icmp);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut s: u32 = 0;
        for w in bytes.chunks(2) {
            s += u32::from(w[0]) << 8 | u32::from(w[1]);
        }
        while s > 0xffff {
            s = (s >> 16) + (s & 0xffff);
        }
        !(s as u16)
    }

    /// Recomputes the ICMPv6 checksum of an untagged solicitation frame after a test edited it.
    fn fix(f: &mut [u8]) {
        f[56] = 0;
        f[57] = 0;
        let c = independent_checksum(&f[22..38], &f[38..54], &f[54..]);
        f[56..58].copy_from_slice(&c.to_be_bytes());
    }

    fn verify_icmp(frame: &[u8]) {
        let ip = &frame[14..];
        let mut icmp = ip[40..].to_vec();
        let given = u16::from_be_bytes([icmp[2], icmp[3]]);
        icmp[2] = 0;
        icmp[3] = 0;
        assert_eq!(given, independent_checksum(&ip[8..24], &ip[24..40], &icmp));
    }

    #[test]
    fn parses_wire_solicit() {
        let ns = parse_solicit(&wire_solicit()).unwrap();
        assert_eq!(
            ns,
            NeighborSolicit {
                src_mac: C1,
                src_ip: a("fd00::2"),
                target: a("fd00::3")
            }
        );
        assert!(!ns.is_dad());
    }

    #[test]
    fn builder_matches_wire_bytes() {
        let mut f = Vec::new();
        write_solicit(C1, a("fd00::2"), a("fd00::3"), &mut f);
        assert_eq!(f, wire_solicit());
    }

    #[test]
    fn slla_option_wins_over_ethernet_source() {
        let mut f = wire_solicit();
        f[6..12].copy_from_slice(&C2); // Ethernet source differs from the option
        assert_eq!(parse_solicit(&f).unwrap().src_mac, C1);
    }

    #[test]
    fn without_option_uses_ethernet_source() {
        let mut f = wire_solicit();
        f.truncate(f.len() - 8);
        f[19] = 24;
        fix(&mut f);
        assert_eq!(parse_solicit(&f).unwrap().src_mac, C1);
    }

    #[test]
    fn advert_bytes_and_checksum() {
        let ns = parse_solicit(&wire_solicit()).unwrap();
        let mut out = Vec::new();
        write_advert(&ns, C2, &mut out);
        assert_eq!(out.len(), ADVERT_FRAME_LEN);
        assert_eq!(
            &out[..14],
            &[0x02, 0x42, 0x0a, 0, 0, 2, 0x02, 0x42, 0x0a, 0, 0, 3, 0x86, 0xdd]
        );
        let ip = ipv6::parse(&out[14..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit(), ip.next_header()),
            (a("fd00::3"), a("fd00::2"), 255, 58)
        );
        let icmp = ip.payload();
        assert_eq!(icmp.len(), 32);
        assert_eq!(&icmp[..2], &[136, 0]);
        assert_eq!(icmp[4], 0x60); // S + O
        assert_eq!(&icmp[5..8], &[0, 0, 0]);
        assert_eq!(&icmp[8..24], &a("fd00::3").octets());
        assert_eq!(&icmp[24..32], &[2, 1, 0x02, 0x42, 0x0a, 0, 0, 3]);
        verify_icmp(&out);
    }

    #[test]
    fn dad_goes_to_all_nodes_without_solicited_flag() {
        let mut f = Vec::new();
        write_solicit(C1, Ipv6Addr::UNSPECIFIED, a("fd00::3"), &mut f);
        let ns = parse_solicit(&f).unwrap();
        assert!(ns.is_dad());
        assert_eq!(ns.src_mac, C1);
        let mut out = Vec::new();
        write_advert(&ns, C2, &mut out);
        assert_eq!(&out[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let ip = ipv6::parse(&out[14..]).unwrap();
        assert_eq!(ip.dst(), ipv6::ALL_NODES);
        assert_eq!(ip.payload()[4], FLAG_OVERRIDE);
        verify_icmp(&out);
    }

    #[test]
    fn rejects() {
        let good = wire_solicit();
        let mut f = good.clone();
        f[21] = 64; // hop limit
        assert!(parse_solicit(&f).is_none());
        let mut f = good.clone();
        f[57] ^= 1; // checksum
        assert!(parse_solicit(&f).is_none());
        let mut f = good.clone();
        f[78 + 1] = 0; // option length 0
        fix(&mut f);
        assert!(parse_solicit(&f).is_none());
        let mut f = good.clone();
        f[78 + 1] = 2; // option longer than the packet
        fix(&mut f);
        assert!(parse_solicit(&f).is_none());
        let mut f = good.clone();
        f[55] = 1; // code 1
        fix(&mut f);
        assert!(parse_solicit(&f).is_none());
        let mut f = good.clone();
        f[78] = 14; // an unknown option is skipped
        fix(&mut f);
        assert_eq!(parse_solicit(&f).unwrap().src_mac, C1);
        let mut f = good.clone();
        f[13] = 0x00;
        assert!(parse_solicit(&f).is_none());
        assert!(parse_solicit(&good[..good.len() - 1]).is_none());
        // multicast target
        let mut f = Vec::new();
        write_solicit(C1, a("fd00::2"), a("ff02::1"), &mut f);
        assert!(parse_solicit(&f).is_none());
        // DAD to a non-solicited-node destination
        let mut f = Vec::new();
        write_solicit(C1, Ipv6Addr::UNSPECIFIED, a("fd00::3"), &mut f);
        f[38..54].copy_from_slice(&a("fd00::3").octets());
        fix(&mut f);
        assert!(parse_solicit(&f).is_none());
        // DAD with a source link-layer address option
        let mut f = good.clone();
        f[22..38].copy_from_slice(&[0; 16]);
        fix(&mut f);
        assert!(parse_solicit(&f).is_none());
        // An advertisement is not a solicitation.
        let ns = parse_solicit(&good).unwrap();
        let mut out = Vec::new();
        write_advert(&ns, C2, &mut out);
        assert!(parse_solicit(&out).is_none());
    }
}
