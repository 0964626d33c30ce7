use super::*;

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

/// A TCP super-frame as a TAP would hand it over (pseudo-header seed in the checksum field),
/// and its virtio-net header.
fn super_frame(v4: bool, payload: usize, mss: u16, flags: u8) -> (VirtioNetHdr, Vec<u8>) {
    let mut f = Vec::new();
    eth::push_header(
        &mut f,
        B,
        A,
        if v4 {
            eth::ETHERTYPE_IPV4
        } else {
            eth::ETHERTYPE_IPV6
        },
    );
    let tcp_len = 32 + payload;
    let l3 = f.len();
    if v4 {
        ipv4::push_header(
            &mut f,
            0,
            64,
            6,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            tcp_len as u16,
        );
        f[l3 + 4] = 0xab;
        f[l3 + 5] = 0xcd;
        f[l3 + 6] = 0x40;
        f[l3 + 10] = 0;
        f[l3 + 11] = 0;
        let c = checksum::checksum(&f[l3..l3 + 20]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        ipv6::push_header(
            &mut f,
            6,
            64,
            "fd00::2".parse().unwrap(),
            "fd00::3".parse().unwrap(),
            tcp_len as u16,
        );
    }
    let l4 = f.len();
    f.extend_from_slice(&[
        0x9c, 0x40, 0x14, 0x51, 0xff, 0xff, 0xff, 0x00, 0, 0, 0, 9, 0x80, flags, 0x01, 0xf6, 0, 0,
        0, 0,
    ]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend((0..payload).map(|i| (i * 7 + 3) as u8));
    let seed = checksum::fold(pseudo(&f, l3, v4, tcp_len));
    f[l4 + 16..l4 + 18].copy_from_slice(&seed.to_be_bytes());
    let hdr = VirtioNetHdr {
        flags: virtio::F_NEEDS_CSUM,
        gso_type: if v4 {
            virtio::GSO_TCPV4
        } else {
            virtio::GSO_TCPV6
        } | if flags & TCP_CWR != 0 {
            virtio::GSO_ECN
        } else {
            0
        },
        hdr_len: (l4 + 32) as u16,
        gso_size: mss,
        csum_start: l4 as u16,
        csum_offset: 16,
        num_buffers: 0,
    };
    (hdr, f)
}

fn segments(hdr: &VirtioNetHdr, f: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut scratch = Vec::new();
    virtio::segment_frame_into(hdr, f, &mut scratch, &mut |s: &[u8]| v.push(s.to_vec())).unwrap();
    v
}

/// The same IPv4 segment with another sequence number (checksum fixed).
fn reseq(seg: &[u8], seq: u32) -> Vec<u8> {
    let mut s = seg.to_vec();
    s[38..42].copy_from_slice(&seq.to_be_bytes());
    s[50] = 0;
    s[51] = 0;
    let c = !checksum::fold(checksum::sum(&s[34..], pseudo(&s, 14, true, s.len() - 34)));
    s[50..52].copy_from_slice(&c.to_be_bytes());
    s
}

fn flush(g: &mut TcpCoalescer) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    g.flush(&mut |b: &[u8]| v.push(b.to_vec()));
    v
}

#[test]
fn coalescing_undoes_segmentation() {
    for (v4, payload, mss, flags) in [
        (true, 5000, 1448, TCP_ACK | TCP_PSH),
        (false, 6000, 1440, TCP_ACK | TCP_PSH | TCP_FIN),
        (true, 1448 * 3, 1448, TCP_ACK | TCP_CWR),
        (false, 60000, 1000, TCP_ACK),
    ] {
        let (hdr, sf) = super_frame(v4, payload, mss, flags);
        let segs = segments(&hdr, &sf);
        assert!(segs.len() > 1);
        let mut g = TcpCoalescer::new(true);
        for s in &segs {
            assert!(g.push(s), "segment taken");
        }
        assert_eq!(g.segments(), segs.len());
        let out = flush(&mut g);
        assert!(g.is_empty());
        assert_eq!(out.len(), 1);
        let (h2, f2) = VirtioNetHdr::parse(&out[0]).unwrap();
        assert_eq!(h2, hdr, "the same virtio-net header");
        assert_eq!(f2, &sf[..], "the same super-frame, byte for byte");
        assert_eq!(segments(&h2, f2), segs);
    }
}

#[test]
fn single_segment_goes_out_plain() {
    let (hdr, sf) = super_frame(true, 1000, 1448, TCP_ACK);
    let segs = segments(&hdr, &sf);
    let mut g = TcpCoalescer::new(true);
    assert!(g.push(&segs[0]));
    let out = flush(&mut g);
    assert_eq!(&out[0][..10], &[0; 10]);
    assert_eq!(&out[0][10..], &segs[0][..]);
    assert!(flush(&mut g).is_empty(), "nothing held any more");
}

#[test]
fn what_does_not_merge() {
    let (hdr, sf) = super_frame(true, 1448 * 4, 1448, TCP_ACK);
    let segs = segments(&hdr, &sf);
    let fresh = |first: &[u8]| {
        let mut g = TcpCoalescer::new(true);
        assert!(g.push(first));
        g
    };
    // out of order
    assert!(!fresh(&segs[0]).push(&segs[2]));
    // another flow (port)
    let mut other = segs[1].clone();
    other[34 + 1] ^= 1;
    other[34 + 16] = 0;
    other[34 + 17] = 0;
    let c = !checksum::fold(checksum::sum(
        &other[34..],
        pseudo(&other, 14, true, other.len() - 34),
    ));
    other[34 + 16..34 + 18].copy_from_slice(&c.to_be_bytes());
    assert!(!fresh(&segs[0]).push(&other));
    // a bad checksum is refused outright, but taken when not verifying
    let mut bad = segs[1].clone();
    *bad.last_mut().unwrap() ^= 0xff;
    assert!(!fresh(&segs[0]).push(&bad));
    let mut g = TcpCoalescer::new(false);
    assert!(g.push(&segs[0]) && g.push(&bad));
    // after a PSH, nothing more
    let (hdr, sf) = super_frame(true, 1448 * 2, 1448, TCP_ACK | TCP_PSH);
    let p = segments(&hdr, &sf);
    let mut g = TcpCoalescer::new(true);
    assert!(g.push(&p[0]) && g.push(&p[1]));
    assert!(!g.push(&segs[2]));
    // a short segment closes the super-frame; a longer one than the first is refused
    let (hdr, sf) = super_frame(true, 250, 100, TCP_ACK);
    let q = segments(&hdr, &sf);
    assert_eq!(
        q.iter().map(|s| s.len() - 66).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    let after = reseq(&q[0], 0xffff_ff00u32.wrapping_add(250));
    let mut g = TcpCoalescer::new(true);
    assert!(g.push(&q[0]) && g.push(&q[1]) && g.push(&q[2]));
    assert!(!g.push(&after), "closed by the short segment");
    let (hdr, sf) = super_frame(true, 300, 150, TCP_ACK);
    let long = reseq(&segments(&hdr, &sf)[0], 0xffff_ff00u32.wrapping_add(100));
    let mut g = TcpCoalescer::new(true);
    assert!(g.push(&q[0]));
    assert!(!g.push(&long), "longer than the first");
    // not TCP, SYN, no payload: refused even when empty
    let mut g = TcpCoalescer::new(true);
    let mut arp = Vec::new();
    crate::arp::write_request(
        A,
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 0, 3),
        &mut arp,
    );
    assert!(!g.push(&arp));
    let (hdr, sf) = super_frame(true, 0, 1448, TCP_ACK | TCP_SYN);
    let syn = segments(&hdr, &sf);
    assert!(!g.push(&syn[0]));
    let (hdr, sf) = super_frame(true, 0, 1448, TCP_ACK);
    assert!(!g.push(&segments(&hdr, &sf)[0]));
    assert!(g.is_empty());
    assert!(!g.push(&[]));
}

#[test]
fn stays_within_64k() {
    let (hdr, sf) = super_frame(true, 65535 - 20 - 32, 1000, TCP_ACK);
    let segs = segments(&hdr, &sf);
    let (hdr2, sf2) = super_frame(true, 2000, 1000, TCP_ACK);
    let mut g = TcpCoalescer::new(true);
    for s in &segs[..segs.len() - 1] {
        assert!(g.push(s));
    }
    // the held data is 65 full segments; one more full one would pass 65535
    let seq = u32::from_be_bytes([segs[0][38], segs[0][39], segs[0][40], segs[0][41]])
        .wrapping_add(1000 * (segs.len() as u32 - 1));
    let next = reseq(&segments(&hdr2, &sf2)[0], seq);
    let ip_len_if_taken = 20 + 32 + 1000 * segs.len();
    assert_eq!(g.push(&next), ip_len_if_taken <= 65535);
    let out = flush(&mut g);
    let (_, f) = VirtioNetHdr::parse(&out[0]).unwrap();
    assert!(ipv4::parse(&f[14..]).unwrap().total_len() <= 65535);
}
