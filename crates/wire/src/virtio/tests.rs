use super::*;

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

/// Independent RFC 1071 sum (not complemented), 32-bit arithmetic.
fn naive_sum(bytes: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for w in bytes.chunks(2) {
        s += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
    }
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    s
}

/// Verifies, independently of the crate's checksum code, the IPv4 header checksum (if IPv4) and
/// the L4 checksum of an Ethernet frame; returns (l4 offset, l4 bytes).
fn verify(frame: &[u8]) -> (usize, Vec<u8>) {
    let l3 = if frame[12] == 0x81 { 18 } else { 14 };
    let v4 = frame[l3] >> 4 == 4;
    let (l4, proto, pseudo_addrs) = if v4 {
        let ihl = usize::from(frame[l3] & 15) * 4;
        assert_eq!(
            naive_sum(&frame[l3..l3 + ihl]),
            0xffff,
            "ipv4 header checksum"
        );
        let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
        assert_eq!(l3 + total, frame.len(), "ipv4 total length");
        (l3 + ihl, frame[l3 + 9], frame[l3 + 12..l3 + 20].to_vec())
    } else {
        let plen = usize::from(u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]));
        assert_eq!(l3 + 40 + plen, frame.len(), "ipv6 payload length");
        (l3 + 40, frame[l3 + 6], frame[l3 + 8..l3 + 40].to_vec())
    };
    let l4b = &frame[l4..];
    let mut p = pseudo_addrs;
    p.extend_from_slice(&(l4b.len() as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p.extend_from_slice(l4b);
    assert_eq!(naive_sum(&p), 0xffff, "l4 checksum");
    (l4, l4b.to_vec())
}

struct Super {
    frame: Vec<u8>,
    hdr: VirtioNetHdr,
    payload: Vec<u8>,
}

/// A TCP super-frame as a TAP hands it over: lengths of the whole, the TCP checksum field holding
/// the pseudo-header sum of the whole (as the kernel leaves it with CHECKSUM_PARTIAL).
fn tcp_super(v4: bool, tagged: bool, payload_len: usize, mss: u16, flags: u8, seq: u32) -> Super {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 + 7) as u8).collect();
    let mut f = Vec::new();
    eth::push_header(
        &mut f,
        B,
        A,
        if tagged {
            eth::ETHERTYPE_VLAN
        } else if v4 {
            eth::ETHERTYPE_IPV4
        } else {
            eth::ETHERTYPE_IPV6
        },
    );
    if tagged {
        f.extend_from_slice(&[0x00, 0x64]);
        f.extend_from_slice(
            &(if v4 {
                eth::ETHERTYPE_IPV4
            } else {
                eth::ETHERTYPE_IPV6
            })
            .to_be_bytes(),
        );
    }
    let l3 = f.len();
    let tcp_len = 32 + payload_len;
    if v4 {
        ipv4::push_header(
            &mut f,
            0,
            64,
            ipv4::PROTO_TCP,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            tcp_len as u16,
        );
        f[l3 + 4] = 0x12;
        f[l3 + 5] = 0x34;
        f[l3 + 6] = 0x40;
    } else {
        ipv6::push_header(
            &mut f,
            ipv6::NH_TCP,
            64,
            "fd00::2".parse().unwrap(),
            "fd00::3".parse().unwrap(),
            tcp_len as u16,
        );
    }
    let l4 = f.len();
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]); // ports 40000 -> 5201
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0x01020304u32.to_be_bytes()); // ack
    f.extend_from_slice(&[0x80, flags, 0x01, 0xf6, 0, 0, 0, 0]); // doff 8, window, csum, urg
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // nop nop timestamps
    f.extend_from_slice(&payload);
    // Pseudo-header seed, as the kernel leaves it.
    let pseudo = if v4 {
        checksum::pseudo_v4(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            6,
            tcp_len as u16,
        )
    } else {
        checksum::pseudo_v6(
            "fd00::2".parse().unwrap(),
            "fd00::3".parse().unwrap(),
            6,
            tcp_len as u32,
        )
    };
    f[l4 + 16..l4 + 18].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
    let hdr = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v4 { GSO_TCPV4 } else { GSO_TCPV6 },
        hdr_len: (l4 + 32) as u16,
        gso_size: mss,
        csum_start: l4 as u16,
        csum_offset: 16,
        num_buffers: 0,
    };
    Super {
        frame: f,
        hdr,
        payload,
    }
}

fn with_hdr(s: &Super) -> Vec<u8> {
    let mut v = vec![0u8; HDR_LEN];
    s.hdr.write(&mut v).unwrap();
    v.extend_from_slice(&s.frame);
    v
}

fn run_both(s: &Super) -> Vec<Vec<u8>> {
    let mut a = Vec::new();
    let mut buf = with_hdr(s);
    let n = segment_tcp(&mut buf, &mut |seg: &[u8]| a.push(seg.to_vec())).unwrap();
    assert_eq!(n, a.len());
    let mut b = Vec::new();
    let mut scratch = Vec::new();
    let n2 = segment_frame_into(&s.hdr, &s.frame, &mut scratch, &mut |seg: &[u8]| {
        b.push(seg.to_vec())
    })
    .unwrap();
    assert_eq!(n2, n);
    assert_eq!(a, b, "in place and copying give the same frames");
    let seg = Segmenter::new(&s.hdr, &s.frame).unwrap();
    assert_eq!(seg.count(), n);
    let mut slot = [0u8; Segmenter::MAX_HEADER_LEN];
    for (k, expect) in a.iter().enumerate() {
        let r = seg.write_headers(&s.frame, k, &mut slot).unwrap();
        let mut piece = slot[..seg.header_len()].to_vec();
        piece.extend_from_slice(&s.frame[r]);
        assert_eq!(&piece, expect, "segmenter piece {k}");
    }
    assert!(seg.write_headers(&s.frame, n, &mut slot).is_err());
    assert!(seg
        .write_headers(&s.frame[..s.frame.len() - 1], 0, &mut slot)
        .is_err());
    assert!(seg
        .write_headers(&s.frame, 0, &mut slot[..seg.header_len() - 1])
        .is_err());
    a
}

#[test]
fn header_known_bytes_and_round_trip() {
    // What a TAP hands over for a TCPv4 super-frame: flags 1, gso 1, hdr_len 66, gso_size
    // 1448, csum_start 34, csum_offset 16.
    let bytes = [
        0x01, 0x01, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00, 0xde, 0xad,
    ];
    let (h, rest) = VirtioNetHdr::parse(&bytes).unwrap();
    assert_eq!(
        h,
        VirtioNetHdr {
            flags: 1,
            gso_type: 1,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0
        }
    );
    assert_eq!(rest, &[0xde, 0xad]);
    let mut out = [0u8; 10];
    assert_eq!(h.write(&mut out).unwrap(), 10);
    assert_eq!(out, bytes[..10]);
    let (m, rest) = VirtioNetHdr::parse_mrg(&bytes).unwrap();
    assert_eq!(m.num_buffers, 0xadde);
    assert!(rest.is_empty());
    let mut out = [0u8; 12];
    assert_eq!(m.write_mrg(&mut out).unwrap(), 12);
    assert_eq!(out, bytes);
    assert!(h.needs_csum());
    assert_eq!(
        VirtioNetHdr {
            gso_type: GSO_TCPV6 | GSO_ECN,
            ..h
        }
        .gso_kind(),
        GSO_TCPV6
    );
    assert!(VirtioNetHdr::parse(&bytes[..9]).is_err());
    assert!(VirtioNetHdr::parse_mrg(&bytes[..11]).is_err());
    assert!(h.write(&mut [0u8; 9]).is_err());
    assert!(h.write_mrg(&mut [0u8; 11]).is_err());
    let mut z = [0xffu8; 10];
    VirtioNetHdr::NONE.write(&mut z).unwrap();
    assert_eq!(z, [0; 10]);
}

fn check_tcp_segments(s: &Super, segs: &[Vec<u8>], mss: usize, v4: bool, flags: u8, seq0: u32) {
    let expect_n = s.payload.len().div_ceil(mss).max(1);
    assert_eq!(segs.len(), expect_n);
    let mut joined = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let (l4, tcp) = verify(seg);
        let l3 = if seg[12] == 0x81 { 18 } else { 14 };
        assert_eq!(
            &seg[..l4],
            &s.frame[..l3]
                .iter()
                .chain(&seg[l3..l4])
                .copied()
                .collect::<Vec<_>>()[..]
        );
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        assert_eq!(seq, seq0.wrapping_add((i * mss) as u32));
        let last = i + 1 == segs.len();
        let mut f = flags;
        if i > 0 {
            f &= !0x80;
        }
        if !last {
            f &= !0x09;
        }
        assert_eq!(tcp[13], f, "flags of segment {i}");
        assert_eq!(&tcp[20..32], &s.frame[l4 + 20..l4 + 32], "options copied");
        let pl = &tcp[32..];
        assert!(pl.len() <= mss);
        if !last {
            assert_eq!(pl.len(), mss);
        }
        if v4 {
            assert_eq!(
                u16::from_be_bytes([seg[l3 + 4], seg[l3 + 5]]),
                0x1234u16.wrapping_add(i as u16)
            );
            assert_eq!(seg[l3 + 6], 0x40, "DF kept");
        }
        joined.extend_from_slice(pl);
    }
    assert_eq!(joined, s.payload);
}

#[test]
fn tcpv4_super_frame() {
    let flags = 0x80 | 0x10 | 0x08 | 0x01; // CWR ACK PSH FIN
    let s = tcp_super(true, false, 5000, 1448, flags, 0xffff_f000);
    let segs = run_both(&s);
    check_tcp_segments(&s, &segs, 1448, true, flags, 0xffff_f000);
    assert_eq!(segs[0].len(), 14 + 20 + 32 + 1448);
    assert_eq!(segs[3].len(), 14 + 20 + 32 + (5000 - 3 * 1448));
}

#[test]
fn tcpv6_tagged_super_frame_exact_multiple() {
    let s = tcp_super(false, true, 1400 * 4, 1400, 0x18, 7);
    let segs = run_both(&s);
    check_tcp_segments(&s, &segs, 1400, false, 0x18, 7);
    assert_eq!(segs.len(), 4);
}

#[test]
fn tiny_mss_and_single_segment() {
    let s = tcp_super(true, false, 100, 7, 0x18, 1);
    let segs = run_both(&s);
    check_tcp_segments(&s, &segs, 7, true, 0x18, 1);
    let s = tcp_super(false, false, 10, 1448, 0x11, 1);
    let segs = run_both(&s);
    assert_eq!(segs.len(), 1);
    check_tcp_segments(&s, &segs, 1448, false, 0x11, 1);
    // no payload at all: one frame with its checksum finished
    let s = tcp_super(true, false, 0, 1448, 0x10, 1);
    let segs = run_both(&s);
    assert_eq!(segs.len(), 1);
    verify(&segs[0]);
}

#[test]
fn udp_l4_super_frame() {
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut f = Vec::new();
    eth::push_header(&mut f, B, A, eth::ETHERTYPE_IPV4);
    ipv4::push_header(
        &mut f,
        0,
        64,
        ipv4::PROTO_UDP,
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 0, 3),
        3008,
    );
    f.extend_from_slice(&[0x30, 0x39, 0x30, 0x3a, 0x0b, 0xc0, 0, 0]);
    f.extend_from_slice(&payload);
    let hdr = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_UDP_L4,
        gso_size: 1200,
        csum_start: 34,
        csum_offset: 6,
        ..VirtioNetHdr::NONE
    };
    let s = Super {
        frame: f,
        hdr,
        payload,
    };
    let segs = run_both(&s);
    assert_eq!(segs.len(), 3);
    let mut joined = Vec::new();
    for seg in &segs {
        let (_, udp) = verify(seg);
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        joined.extend_from_slice(&udp[8..]);
    }
    assert_eq!(joined, s.payload);
}

#[test]
fn none_with_needs_csum_is_finished() {
    // A UDP/IPv6 datagram with a partial checksum, as a TAP hands it over.
    let src: Ipv6Addr = "fd00::2".parse().unwrap();
    let dst: Ipv6Addr = "fd00::3".parse().unwrap();
    let mut f = Vec::new();
    eth::push_header(&mut f, B, A, eth::ETHERTYPE_IPV6);
    ipv6::push_header(&mut f, ipv6::NH_UDP, 64, src, dst, 8 + 13);
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 21, 0, 0]);
    f.extend_from_slice(b"hello, world!");
    let seed = checksum::fold(checksum::pseudo_v6(src, dst, 17, 21));
    f[54 + 6..54 + 8].copy_from_slice(&seed.to_be_bytes());
    let hdr = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 54,
        csum_offset: 6,
        ..VirtioNetHdr::NONE
    };
    let mut buf = vec![0u8; 10];
    hdr.write(&mut buf).unwrap();
    buf.extend_from_slice(&f);
    let mut got = Vec::new();
    assert_eq!(
        segment_tcp(&mut buf, &mut |s: &[u8]| got.push(s.to_vec())).unwrap(),
        1
    );
    verify(&got[0]);
    // finish_checksum alone gives the same
    let mut g = f.clone();
    finish_checksum(&mut g, 54, 6).unwrap();
    assert_eq!(g, got[0]);
    // a frame without NEEDS_CSUM is passed through untouched
    let mut buf = vec![0u8; 10];
    buf.extend_from_slice(&f);
    let mut got = Vec::new();
    segment_tcp(&mut buf, &mut |s: &[u8]| got.push(s.to_vec())).unwrap();
    assert_eq!(got, vec![f]);
}

#[test]
fn finish_checksum_zero_becomes_ffff_and_bounds() {
    // Data whose sum is 0xffff -> checksum 0 -> written 0xffff.
    let mut d = [0xff, 0xff, 0x00, 0x00];
    finish_checksum(&mut d, 0, 2).unwrap();
    assert_eq!(d, [0xff, 0xff, 0xff, 0xff]);
    let mut d = [0u8; 8];
    assert!(finish_checksum(&mut d, 0, 7).is_err());
    assert!(finish_checksum(&mut d, 9, 0).is_err());
    assert!(finish_checksum(&mut d, usize::MAX, 1).is_err());
    assert!(finish_checksum(&mut d, 1, usize::MAX).is_err());
    assert!(finish_checksum(&mut d, 6, 0).is_ok());
}

#[test]
fn refusals_emit_nothing() {
    let s = tcp_super(true, false, 3000, 1448, 0x18, 1);
    let cases: Vec<(VirtioNetHdr, Vec<u8>)> = vec![
        (
            VirtioNetHdr {
                gso_size: 0,
                ..s.hdr
            },
            s.frame.clone(),
        ),
        (
            VirtioNetHdr {
                gso_type: GSO_TCPV6,
                ..s.hdr
            },
            s.frame.clone(),
        ),
        (
            VirtioNetHdr {
                gso_type: GSO_UDP,
                ..s.hdr
            },
            s.frame.clone(),
        ),
        (
            VirtioNetHdr {
                gso_type: 9,
                ..s.hdr
            },
            s.frame.clone(),
        ),
        (
            VirtioNetHdr {
                gso_type: GSO_UDP_L4,
                ..s.hdr
            },
            s.frame.clone(),
        ),
        (s.hdr, s.frame[..14 + 20 + 10].to_vec()),
        (
            VirtioNetHdr {
                gso_type: GSO_NONE,
                csum_start: 5000,
                ..s.hdr
            },
            s.frame.clone(),
        ),
        (s.hdr, {
            let mut f = s.frame.clone();
            f[34 + 12] = 0x40; // data offset 16
            f
        }),
        (s.hdr, {
            let mut f = s.frame.clone();
            f[12] = 0x08;
            f[13] = 0x06; // ARP
            f
        }),
    ];
    for (i, (h, f)) in cases.into_iter().enumerate() {
        let mut count = 0;
        let mut f2 = f.clone();
        assert!(
            segment_frame(&h, &mut f2, &mut |_: &[u8]| count += 1).is_err(),
            "case {i}"
        );
        let mut scratch = Vec::new();
        assert!(
            segment_frame_into(&h, &f, &mut scratch, &mut |_: &[u8]| count += 1).is_err(),
            "case {i}"
        );
        assert_eq!(count, 0, "case {i}");
    }
    assert!(segment_tcp(&mut [0u8; 9], &mut |_: &[u8]| {}).is_err());
    assert!(Segmenter::new(&VirtioNetHdr::NONE, &s.frame).is_err());
}
