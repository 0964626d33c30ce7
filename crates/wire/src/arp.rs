//! ARP (RFC 826) for Ethernet/IPv4: recognise a request, build the reply that answers it.
//!
//! This is what Linux's VXLAN `proxy` option does (`arp_reduce` in drivers/net/vxlan): the engine
//! knows every remote endpoint's MAC from the store, so it answers ARP requests for them locally
//! instead of flooding them across the overlay.

use std::net::Ipv4Addr;

use crate::eth;

/// ARP opcode of a request.
pub const OP_REQUEST: u16 = 1;
/// ARP opcode of a reply.
pub const OP_REPLY: u16 = 2;
/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Length of the reply frame [`write_reply`] builds (no padding to 60 bytes: a TAP or a bridge
/// takes short frames; a NIC pads on transmit).
pub const REPLY_FRAME_LEN: usize = eth::HEADER_LEN + PACKET_LEN;

/// An Ethernet/IPv4 ARP request: who has `target_ip`? tell `sender_ip` at `sender_mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRequest {
    /// The sender hardware address field (where the reply goes).
    pub sender_mac: [u8; 6],
    /// The sender protocol address field (0.0.0.0 in an address probe, RFC 5227).
    pub sender_ip: Ipv4Addr,
    /// The address asked about.
    pub target_ip: Ipv4Addr,
}

impl ArpRequest {
    /// A gratuitous ARP (sender = target): an announcement, not a question. Answering it would
    /// tell the announcer its own address is taken; the engine should not answer.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    /// An address probe (RFC 5227: sender 0.0.0.0) for duplicate-address detection. Answering it
    /// for an address owned elsewhere is right: it tells the prober the address is in use.
    pub fn is_probe(&self) -> bool {
        self.sender_ip.is_unspecified()
    }
}

/// Recognises an Ethernet/IPv4 ARP request (opcode 1) in an Ethernet frame (one VLAN tag is
/// skipped). `None` for anything else: other EtherTypes, replies, other hardware or protocol
/// types or lengths, truncated packets, a multicast sender MAC, and — as Linux's proxy does — a
/// target that is loopback or multicast, which must never be answered.
pub fn parse_request(frame: &[u8]) -> Option<ArpRequest> {
    let e = eth::parse(frame).ok()?;
    if e.ethertype() != eth::ETHERTYPE_ARP {
        return None;
    }
    let a = e.payload().get(..PACKET_LEN)?;
    if a[0..8] != [0, 1, 0x08, 0x00, 6, 4, 0, OP_REQUEST as u8] {
        return None;
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&a[8..14]);
    let sender_ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let target_ip = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    if eth::is_multicast(sender_mac)
        || sender_mac == eth::ZERO
        || target_ip.is_loopback()
        || target_ip.is_multicast()
    {
        return None;
    }
    Some(ArpRequest {
        sender_mac,
        sender_ip,
        target_ip,
    })
}

/// Appends to `out` the whole Ethernet frame of the reply to `req`: `target_ip` is at
/// `answer_mac`. Ethernet: to `req.sender_mac`, from `answer_mac`, untagged. ARP: opcode 2,
/// sender = (`answer_mac`, `target_ip`), target = (`sender_mac`, `sender_ip`).
///
/// `out` is appended to, not cleared, so that a caller can put a virtio-net header first.
pub fn write_reply(req: &ArpRequest, answer_mac: [u8; 6], out: &mut Vec<u8>) {
    out.reserve(REPLY_FRAME_LEN);
    eth::push_header(out, req.sender_mac, answer_mac, eth::ETHERTYPE_ARP);
    out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, OP_REPLY as u8]);
    out.extend_from_slice(&answer_mac);
    out.extend_from_slice(&req.target_ip.octets());
    out.extend_from_slice(&req.sender_mac);
    out.extend_from_slice(&req.sender_ip.octets());
}

/// Appends a complete Ethernet/IPv4 ARP request frame (broadcast) to `out`; for tests and for
/// an engine that needs to ask.
pub fn write_request(
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
    out: &mut Vec<u8>,
) {
    eth::push_header(out, eth::BROADCAST, sender_mac, eth::ETHERTYPE_ARP);
    out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, OP_REQUEST as u8]);
    out.extend_from_slice(&sender_mac);
    out.extend_from_slice(&sender_ip.octets());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&target_ip.octets());
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x02];
    const C2: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x03];

    /// A request as `arping`/the kernel sends it, byte by byte, padded to 60 bytes.
    fn wire_request() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, 0x08,
            0x06, // eth
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen op
            0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, 10, 0, 0, 2, // sha spa
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 3, // tha tpa
        ];
        f.resize(60, 0);
        f
    }

    #[test]
    fn parses_wire_request() {
        let r = parse_request(&wire_request()).unwrap();
        assert_eq!(
            r,
            ArpRequest {
                sender_mac: C1,
                sender_ip: Ipv4Addr::new(10, 0, 0, 2),
                target_ip: Ipv4Addr::new(10, 0, 0, 3)
            }
        );
        assert!(!r.is_gratuitous() && !r.is_probe());
    }

    #[test]
    fn reply_bytes() {
        let r = parse_request(&wire_request()).unwrap();
        let mut out = vec![0xee; 3]; // appended after what is there
        write_reply(&r, C2, &mut out);
        assert_eq!(out.len(), 3 + REPLY_FRAME_LEN);
        let expect: Vec<u8> = vec![
            0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x03, 0x08,
            0x06, //
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, //
            0x02, 0x42, 0x0a, 0x00, 0x00, 0x03, 10, 0, 0, 3, //
            0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, 10, 0, 0, 2,
        ];
        assert_eq!(&out[3..], &expect[..]);
        // A reply is not a request.
        assert_eq!(parse_request(&out[3..]), None);
    }

    #[test]
    fn request_round_trip_and_tagged() {
        let mut f = Vec::new();
        write_request(
            C1,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 9),
            &mut f,
        );
        assert_eq!(
            parse_request(&f).unwrap().target_ip,
            Ipv4Addr::new(10, 0, 0, 9)
        );
        // The same request inside one 802.1Q tag.
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        t.extend_from_slice(&f[12..]);
        assert_eq!(parse_request(&t), parse_request(&f));
    }

    #[test]
    fn rejects() {
        let good = wire_request();
        assert!(parse_request(&good[..14 + 27]).is_none());
        let mut f = good.clone();
        f[13] = 0x00; // IPv4 ethertype
        assert!(parse_request(&f).is_none());
        for (i, v) in [(15, 6), (17, 0xdd), (18, 8), (19, 16), (21, 3)] {
            let mut f = good.clone();
            f[i] = v;
            assert!(parse_request(&f).is_none(), "byte {i}");
        }
        let mut f = good.clone();
        f[38] = 127; // target 127.0.0.3
        assert!(parse_request(&f).is_none());
        let mut f = good.clone();
        f[38] = 224;
        assert!(parse_request(&f).is_none());
        let mut f = good;
        f[22] = 0x01; // multicast sender MAC
        assert!(parse_request(&f).is_none());
    }

    #[test]
    fn probe_and_gratuitous() {
        let mut f = Vec::new();
        write_request(
            C1,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 0, 0, 3),
            &mut f,
        );
        assert!(parse_request(&f).unwrap().is_probe());
        f.clear();
        write_request(
            C1,
            Ipv4Addr::new(10, 0, 0, 3),
            Ipv4Addr::new(10, 0, 0, 3),
            &mut f,
        );
        assert!(parse_request(&f).unwrap().is_gratuitous());
    }
}
