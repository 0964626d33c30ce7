//! The bodies of the fuzz targets, as plain functions, so that they run both under libFuzzer
//! (`fuzz/`, `cargo +nightly fuzz run NAME`) and on stable in `tests/fuzz_smoke.rs`, which CI
//! runs.
//!
//! Each function feeds `data` to one decoder and, when the decoder accepts it, checks what it
//! promises: re-encoding gives the same fields, built answers parse back, and every checksum
//! built verifies. A panic here is a bug in this crate: a decoder that panicked on input, or a
//! broken invariant (the assertions).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::{arp, eth, gre, gro, icmp, ipv4, ipv6, nd, secure, virtio, vxlan};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by name: what the fuzz project and the smoke test iterate over.
pub const TARGETS: &[(&str, Target)] = &[
    ("vxlan", vxlan),
    ("gre", gre),
    ("eth", eth),
    ("arp", arp),
    ("nd", nd),
    ("icmp", icmp),
    ("virtio", virtio),
    ("gro", gro),
    ("secure", secure),
    ("ip", ip),
];

/// Runs every target on `data`.
pub fn all(data: &[u8]) {
    for (_, f) in TARGETS {
        f(data);
    }
}

/// VXLAN: parse; an accepted packet re-encodes to the same VNI and inner frame; the inner frame
/// goes on to the Ethernet, ARP and ND decoders as the engine would send it.
pub fn vxlan(data: &[u8]) {
    if let Ok((vni, inner)) = vxlan::parse(data) {
        assert!(vni <= vxlan::MAX_VNI);
        assert_eq!(inner.len() + vxlan::HEADER_LEN, data.len());
        let mut p = vec![0u8; vxlan::HEADER_LEN];
        vxlan::write_header(&mut p, vni);
        p.extend_from_slice(inner);
        assert_eq!(vxlan::parse(&p), Ok((vni, inner)));
        eth(inner);
        arp(inner);
        nd(inner);
    }
}

/// GRE: parse; an accepted packet re-encodes (plain and with every option) to the same key
/// and inner frame.
pub fn gre(data: &[u8]) {
    if let Ok(g) = gre::parse_full(data) {
        assert!(g.inner.len() + gre::HEADER_LEN <= data.len());
        let mut p = vec![0u8; gre::HEADER_LEN];
        gre::write_header(&mut p, g.key);
        p.extend_from_slice(g.inner);
        assert_eq!(gre::parse(&p), Ok((g.key, g.inner)));
        let mut q = Vec::new();
        gre::push_packet(&mut q, g.key, g.seq, true, g.inner);
        let h = gre::parse_full(&q).expect("a packet push_packet built parses");
        assert_eq!((h.key, h.seq, h.inner), (g.key, g.seq, g.inner));
    }
    let _ = ipv4::strip(data);
}

/// Ethernet: the view's pieces add up to the frame.
pub fn eth(data: &[u8]) {
    if let Ok(e) = eth::parse(data) {
        assert_eq!(e.header_len() + e.payload().len(), data.len());
        assert_eq!(
            e.vlan_tci().is_some(),
            e.header_len() == eth::HEADER_LEN + eth::VLAN_TAG_LEN
        );
        let _ = (e.dst(), e.src(), e.ethertype(), eth::is_multicast(e.dst()));
    }
}

/// ARP: a recognised request gets a reply that is an ARP reply to the asker, and is not itself
/// taken for a request.
pub fn arp(data: &[u8]) {
    if let Some(req) = arp::parse_request(data) {
        let answer = [0x02, 0, 0, 0, 0, 1];
        let mut out = Vec::new();
        arp::write_reply(&req, answer, &mut out);
        assert_eq!(out.len(), arp::REPLY_FRAME_LEN);
        let e = eth::parse(&out).expect("reply has an ethernet header");
        assert_eq!(
            (e.dst(), e.src(), e.ethertype()),
            (req.sender_mac, answer, eth::ETHERTYPE_ARP)
        );
        assert_eq!(&e.payload()[6..8], &[0, 2]);
        assert!(arp::parse_request(&out).is_none());
        let _ = (req.is_gratuitous(), req.is_probe());
    }
}

/// ND: a recognised solicitation gets an advertisement whose ICMPv6 checksum verifies, from the
/// target, with hop limit 255.
pub fn nd(data: &[u8]) {
    if let Some(ns) = nd::parse_solicit(data) {
        let answer = [0x02, 0, 0, 0, 0, 1];
        let mut out = Vec::new();
        nd::write_advert(&ns, answer, &mut out);
        assert_eq!(out.len(), nd::ADVERT_FRAME_LEN);
        let e = eth::parse(&out).expect("advert has an ethernet header");
        let ip = ipv6::parse(e.payload()).expect("advert has an ipv6 header");
        assert_eq!(
            (ip.src(), ip.hop_limit(), ip.next_header()),
            (ns.target, 255, ipv6::NH_ICMPV6)
        );
        let pseudo = checksum::pseudo_v6(
            ip.src(),
            ip.dst(),
            ipv6::NH_ICMPV6,
            ip.payload().len() as u32,
        );
        assert!(checksum::verifies(ip.payload(), pseudo), "advert checksum");
        assert!(nd::parse_solicit(&out).is_none());
    }
}

/// ICMP errors: for any frame either a refusal (with nothing appended) or an answer whose
/// checksums verify and whose size obeys the RFCs.
pub fn icmp(data: &[u8]) {
    let mtu = data
        .get(..2)
        .map_or(1400, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut out = Vec::new();
    match icmp::write_frag_needed_v4(data, mtu, &mut out) {
        Ok(()) => {
            let e = eth::parse(&out).expect("ethernet");
            let ip = ipv4::parse(e.payload()).expect("ipv4");
            assert!(ip.checksum_ok(), "ipv4 header checksum");
            assert!(checksum::verifies(ip.payload(), 0), "icmp checksum");
            assert!(ip.payload().len() <= 8 + 60 + 8);
        }
        Err(_) => assert!(out.is_empty()),
    }
    out.clear();
    match icmp::write_packet_too_big_v6(data, u32::from(mtu), &mut out) {
        Ok(()) => {
            let e = eth::parse(&out).expect("ethernet");
            let ip = ipv6::parse(e.payload()).expect("ipv6");
            assert!(ip.packet().len() <= ipv6::MIN_MTU);
            let pseudo = checksum::pseudo_v6(
                ip.src(),
                ip.dst(),
                ipv6::NH_ICMPV6,
                ip.payload().len() as u32,
            );
            assert!(checksum::verifies(ip.payload(), pseudo), "icmpv6 checksum");
        }
        Err(_) => assert!(out.is_empty()),
    }
}

/// Checks a segment that segmentation emitted: lengths and checksums.
fn check_segment(seg: &[u8], mss: usize) {
    let e = eth::parse(seg).expect("segment has an ethernet header");
    let (l4, proto, pseudo_of): (&[u8], u8, u64) = match e.ethertype() {
        eth::ETHERTYPE_IPV4 => {
            let ip = ipv4::parse(e.payload()).expect("segment ipv4");
            assert!(ip.checksum_ok(), "segment ipv4 checksum");
            assert_eq!(ip.packet().len(), e.payload().len());
            let l = ip.payload();
            (
                l,
                ip.protocol(),
                checksum::pseudo_v4(ip.src(), ip.dst(), ip.protocol(), l.len() as u16),
            )
        }
        _ => {
            let ip = ipv6::parse(e.payload()).expect("segment ipv6");
            assert_eq!(ip.packet().len(), e.payload().len());
            let l = ip.payload();
            (
                l,
                ip.next_header(),
                checksum::pseudo_v6(ip.src(), ip.dst(), ip.next_header(), l.len() as u32),
            )
        }
    };
    assert!(checksum::verifies(l4, pseudo_of), "segment l4 checksum");
    let hdr = if proto == ipv4::PROTO_TCP {
        usize::from(l4[12] >> 4) * 4
    } else {
        8
    };
    assert!(l4.len() - hdr <= mss, "segment payload within the mss");
}

/// virtio-net: the first 10 bytes are the header, the rest the frame. Segmentation in place and
/// by copy emit the same frames, or both refuse having emitted nothing; GSO segments verify.
pub fn virtio(data: &[u8]) {
    let Ok((hdr, frame)) = virtio::VirtioNetHdr::parse(data) else {
        return;
    };
    let mut out = [0u8; virtio::HDR_LEN];
    hdr.write(&mut out).expect("10 bytes fit");
    assert_eq!(&out[..], &data[..virtio::HDR_LEN]);
    let _ = virtio::VirtioNetHdr::parse_mrg(data);

    let mut a: Vec<Vec<u8>> = Vec::new();
    let mut buf = data.to_vec();
    let ra = virtio::segment_tcp(&mut buf, &mut |s: &[u8]| a.push(s.to_vec()));
    let mut b: Vec<Vec<u8>> = Vec::new();
    let mut scratch = Vec::new();
    let rb = virtio::segment_frame_into(&hdr, frame, &mut scratch, &mut |s: &[u8]| {
        b.push(s.to_vec())
    });
    assert_eq!(ra, rb);
    assert_eq!(a, b);
    if let Ok(seg) = virtio::Segmenter::new(&hdr, frame) {
        assert_eq!(Ok(seg.count()), ra);
        let mut slot = [0u8; virtio::Segmenter::MAX_HEADER_LEN];
        for (k, expect) in a.iter().enumerate() {
            let r = seg
                .write_headers(frame, k, &mut slot)
                .expect("planned piece");
            assert_eq!(&slot[..seg.header_len()], &expect[..seg.header_len()]);
            assert_eq!(&frame[r], &expect[seg.header_len()..]);
        }
    }
    match ra {
        Ok(n) => {
            assert_eq!(n, a.len());
            if hdr.gso_kind() != virtio::GSO_NONE {
                for s in &a {
                    check_segment(s, usize::from(hdr.gso_size));
                }
            }
        }
        Err(_) => assert!(a.is_empty()),
    }
    let mut f = frame.to_vec();
    let _ = virtio::finish_checksum(
        &mut f,
        usize::from(hdr.csum_start),
        usize::from(hdr.csum_offset),
    );
}

/// Coalescing: the input is a virtio-net header and a frame; its segments (if it segments) go
/// through a [`gro::TcpCoalescer`] as the engine would feed it, and segmenting what comes out
/// again must give back exactly the segments that went in. The raw frame is offered too.
pub fn gro(data: &[u8]) {
    let mut g = gro::TcpCoalescer::new(true);
    if let Some(frame) = data.get(virtio::HDR_LEN..) {
        if g.push(frame) {
            assert!(g.flush(&mut |b: &[u8]| assert!(b.len() > virtio::HDR_LEN)));
        }
    }
    let Ok((hdr, frame)) = virtio::VirtioNetHdr::parse(data) else {
        return;
    };
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let mut scratch = Vec::new();
    if virtio::segment_frame_into(&hdr, frame, &mut scratch, &mut |s: &[u8]| {
        segs.push(s.to_vec())
    })
    .is_err()
    {
        return;
    }
    let mut outs: Vec<Vec<u8>> = Vec::new();
    for s in &segs {
        if !g.push(s) {
            g.flush(&mut |b: &[u8]| outs.push(b.to_vec()));
            if !g.push(s) {
                let mut alone = vec![0u8; virtio::HDR_LEN];
                alone.extend_from_slice(s);
                outs.push(alone);
            }
        }
    }
    g.flush(&mut |b: &[u8]| outs.push(b.to_vec()));
    let mut again: Vec<Vec<u8>> = Vec::new();
    for o in &outs {
        let (h, f) = virtio::VirtioNetHdr::parse(o).expect("coalescer output has a header");
        virtio::segment_frame_into(&h, f, &mut scratch, &mut |s: &[u8]| again.push(s.to_vec()))
            .expect("coalescer output segments");
    }
    assert_eq!(again, segs, "segment(coalesce(segments)) == segments");
}

/// Encrypted transport framing: an accepted message re-encodes to the same bytes (reserved
/// bytes zeroed).
pub fn secure(data: &[u8]) {
    let Ok(m) = secure::parse(data) else { return };
    let mut p = Vec::new();
    match m {
        secure::Message::Initiation {
            sender,
            network,
            noise,
        } => {
            secure::write_initiation(&mut p, sender, network, noise)
                .expect("initiation re-encodes");
        }
        secure::Message::Response {
            receiver,
            sender,
            noise,
        } => {
            secure::write_response(&mut p, receiver, sender, noise).expect("response re-encodes");
        }
        secure::Message::Transport {
            receiver,
            counter,
            ciphertext,
        } => {
            p.resize(secure::TRANSPORT_HEADER_LEN, 0);
            secure::write_transport_header(&mut p, receiver, counter).expect("16 bytes fit");
            p.extend_from_slice(ciphertext);
        }
    }
    assert_eq!(p.len(), data.len());
    assert_eq!(p[0], data[0]);
    assert_eq!(&p[4..], &data[4..]);
    assert_eq!(secure::parse(&p), Ok(m));
}

/// IPv4 and IPv6 views, the extension-header walk.
pub fn ip(data: &[u8]) {
    if let Ok(h) = ipv4::parse(data) {
        assert!(h.header_len() <= h.total_len() && h.total_len() <= data.len());
        let _ = (
            h.src(),
            h.dst(),
            h.payload(),
            h.checksum_ok(),
            h.is_fragment(),
        );
    }
    if let Ok(h) = ipv6::parse(data) {
        assert_eq!(h.payload().len(), h.payload_len());
        if let Ok((_, off, _)) = h.upper_layer() {
            assert!(off <= h.payload().len());
        }
    }
}

/// Valid inputs for every target, to start the fuzzers from (and to mutate in the smoke
/// test): (target name, bytes).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let c1 = [0x02, 0x42, 0x0a, 0, 0, 2];
    let c2 = [0x02, 0x42, 0x0a, 0, 0, 3];
    let v4a = Ipv4Addr::new(10, 0, 0, 2);
    let v4b = Ipv4Addr::new(10, 0, 0, 3);
    let v6a: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    let v6b: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
    let mut s: Vec<(&'static str, Vec<u8>)> = Vec::new();

    let mut arp_req = Vec::new();
    arp::write_request(c1, v4a, v4b, &mut arp_req);
    let mut ns = Vec::new();
    nd::write_solicit(c1, v6a, v6b, &mut ns);
    let mut dad = Vec::new();
    nd::write_solicit(c1, Ipv6Addr::UNSPECIFIED, v6b, &mut dad);

    let tcp4 = tcp_frame(true, c1, c2, 3000, 0x19);
    let tcp6 = tcp_frame(false, c1, c2, 3000, 0x18);
    let mut udp4 = Vec::new();
    eth::push_header(&mut udp4, c2, c1, eth::ETHERTYPE_IPV4);
    ipv4::push_header(&mut udp4, 0, 64, ipv4::PROTO_UDP, v4a, v4b, 8 + 2000);
    udp4.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x07, 0xd8, 0, 0]);
    udp4.extend((0..2000u32).map(|i| i as u8));

    for inner in [&arp_req, &ns, &tcp4] {
        let mut p = vec![0u8; 8];
        vxlan::write_header(&mut p, 4242);
        p.extend_from_slice(inner);
        s.push(("vxlan", p));
        let mut g = vec![0u8; 8];
        gre::write_header(&mut g, 4242);
        g.extend_from_slice(inner);
        s.push(("gre", g));
    }
    let mut g = Vec::new();
    gre::push_packet(&mut g, 7, Some(9), true, &arp_req);
    s.push(("gre", g));
    s.push(("eth", arp_req.clone()));
    s.push(("arp", arp_req.clone()));
    s.push(("nd", ns.clone()));
    s.push(("nd", dad));
    s.push(("icmp", tcp4.clone()));
    s.push(("icmp", tcp6.clone()));
    s.push(("icmp", udp4.clone()));
    s.push(("ip", tcp4[14..].to_vec()));
    s.push(("ip", tcp6[14..].to_vec()));

    let vh = |h: virtio::VirtioNetHdr, f: &[u8]| {
        let mut v = vec![0u8; virtio::HDR_LEN];
        h.write(&mut v).expect("fits");
        v.extend_from_slice(f);
        v
    };
    let tso = |gso_type: u8, csum_start: u16, csum_offset: u16, mss: u16| virtio::VirtioNetHdr {
        flags: virtio::F_NEEDS_CSUM,
        gso_type,
        hdr_len: csum_start + 32,
        gso_size: mss,
        csum_start,
        csum_offset,
        num_buffers: 0,
    };
    s.push(("virtio", vh(tso(virtio::GSO_TCPV4, 34, 16, 1448), &tcp4)));
    s.push((
        "virtio",
        vh(
            tso(virtio::GSO_TCPV6 | virtio::GSO_ECN, 54, 16, 1440),
            &tcp6,
        ),
    ));
    s.push(("virtio", vh(tso(virtio::GSO_UDP_L4, 34, 6, 1200), &udp4)));
    s.push(("virtio", vh(tso(virtio::GSO_NONE, 34, 6, 0), &udp4)));
    s.push(("virtio", vh(virtio::VirtioNetHdr::NONE, &arp_req)));
    let gro_seeds: Vec<Vec<u8>> = s
        .iter()
        .filter(|(n, _)| *n == "virtio")
        .map(|(_, b)| b.clone())
        .collect();
    s.extend(gro_seeds.into_iter().map(|b| ("gro", b)));

    let mut init = Vec::new();
    secure::write_initiation(
        &mut init,
        0x0100_0001,
        4242,
        &[0x5a; secure::NOISE_INITIATION_LEN],
    )
    .expect("len");
    s.push(("secure", init));
    let mut resp = Vec::new();
    secure::write_response(
        &mut resp,
        0x0100_0001,
        0x0200_0001,
        &[0xa5; secure::NOISE_RESPONSE_LEN],
    )
    .expect("len");
    s.push(("secure", resp));
    let mut data = vec![0u8; secure::TRANSPORT_HEADER_LEN];
    secure::write_transport_header(&mut data, 0x0200_0001, 77).expect("fits");
    data.extend_from_slice(&arp_req);
    data.extend_from_slice(&[0xcc; secure::TAG_LEN]);
    s.push(("secure", data));
    s
}

/// An Ethernet + IP + TCP (with timestamps) frame of `payload` bytes, TCP checksum field
/// holding the pseudo-header sum as a TAP leaves it for offload.
fn tcp_frame(v4: bool, src_mac: [u8; 6], dst_mac: [u8; 6], payload: usize, flags: u8) -> Vec<u8> {
    let mut f = Vec::new();
    let tcp_len = 32 + payload;
    eth::push_header(
        &mut f,
        dst_mac,
        src_mac,
        if v4 {
            eth::ETHERTYPE_IPV4
        } else {
            eth::ETHERTYPE_IPV6
        },
    );
    let pseudo = if v4 {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
        ipv4::push_header(&mut f, 0, 64, ipv4::PROTO_TCP, a, b, tcp_len as u16);
        checksum::pseudo_v4(a, b, ipv4::PROTO_TCP, tcp_len as u16)
    } else {
        let (a, b) = (
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3),
        );
        ipv6::push_header(&mut f, ipv6::NH_TCP, 64, a, b, tcp_len as u16);
        checksum::pseudo_v6(a, b, ipv6::NH_TCP, tcp_len as u32)
    };
    let p = checksum::fold(pseudo).to_be_bytes();
    f.extend_from_slice(&[
        0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, flags, 0x01, 0xf6, p[0], p[1], 0, 0,
    ]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend((0..payload).map(|i| (i * 13) as u8));
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_seed_is_accepted_by_its_decoder() {
        for (name, bytes) in super::seeds() {
            let ok = match name {
                "vxlan" => crate::vxlan::parse(&bytes).is_ok(),
                "gre" => crate::gre::parse(&bytes).is_ok(),
                "eth" => crate::eth::parse(&bytes).is_ok(),
                "arp" => crate::arp::parse_request(&bytes).is_some(),
                "nd" => crate::nd::parse_solicit(&bytes).is_some(),
                "icmp" => {
                    let mut o = Vec::new();
                    crate::icmp::write_frag_needed_v4(&bytes, 1400, &mut o).is_ok()
                        || crate::icmp::write_packet_too_big_v6(&bytes, 1400, &mut o).is_ok()
                }
                "virtio" | "gro" => {
                    let mut b = bytes.clone();
                    crate::virtio::segment_tcp(&mut b, &mut |_: &[u8]| {}).is_ok()
                }
                "secure" => crate::secure::parse(&bytes).is_ok(),
                "ip" => crate::ipv4::parse(&bytes).is_ok() || crate::ipv6::parse(&bytes).is_ok(),
                _ => false,
            };
            assert!(ok, "seed for {name} rejected");
            for (_, f) in super::TARGETS {
                f(&bytes);
            }
        }
    }
}
