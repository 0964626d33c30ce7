//! Cutting one large frame into wire-sized ones, header by header, without copying payload:
//! TCP segmentation of the kernel's GSO super-frames (what a NIC's TSO does) and IPv4
//! fragmentation of oversized packets without DF (what a router does). Each piece is a freshly
//! written header (encapsulation prefix + Ethernet + IP [+ TCP]) plus a range of the original
//! frame's bytes, so the sender can hand both to one `sendmsg` as iovecs.
//!
//! TCP segmentation is `weft_wire::virtio::Segmenter`'s; IPv4 fragmentation is here (weft-wire
//! has none yet).

use std::ops::Range;

use weft_wire::virtio::Segmenter;

use crate::pkt::{ipv4_header_csum, Ip};

/// Room for one piece's headers: prefix (VXLAN 8, up to 32 for later encapsulations) +
/// Ethernet with a tag (18) + IP with options (60) + TCP with options (60).
pub(crate) const SLOT: usize = 32 + Segmenter::MAX_HEADER_LEN;

/// How a frame is cut.
pub(crate) trait Cut {
    /// Number of pieces.
    fn count(&self) -> usize;
    /// Length of each piece's headers (without the prefix).
    fn header_len(&self) -> usize;
    /// Payload bytes of every piece but the last (which may be shorter).
    fn unit(&self) -> usize;
    /// Writes `prefix` and piece `k`'s headers into `out` (`prefix.len() + header_len()`
    /// bytes); returns the range of `frame` that is its payload.
    fn write(&self, frame: &[u8], k: usize, prefix: &[u8], out: &mut [u8]) -> Range<usize>;
}

/// A GSO super-frame cut by `weft_wire::virtio::Segmenter` (TCP segmentation: lengths, IDs,
/// sequence numbers, flags and checksums per segment), behind a prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpCut(pub Segmenter);

impl Cut for TcpCut {
    fn count(&self) -> usize {
        self.0.count()
    }

    fn header_len(&self) -> usize {
        self.0.header_len()
    }

    fn unit(&self) -> usize {
        self.0.segment_size()
    }

    fn write(&self, frame: &[u8], k: usize, prefix: &[u8], out: &mut [u8]) -> Range<usize> {
        let p = prefix.len();
        out[..p].copy_from_slice(prefix);
        // Cannot fail: k < count() and the slot holds MAX_HEADER_LEN (callers use SLOT).
        let r = self.0.write_headers(frame, k, &mut out[p..]);
        debug_assert!(r.is_ok(), "{r:?}");
        r.unwrap_or(0..0)
    }
}

/// An IPv4 packet without DF, larger than the MTU, to cut into fragments (RFC 791). Packets
/// with IP options are not fragmented (the caller drops them, counted): copying only the
/// options marked "copied" is not worth it for a case no weft container produces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FragCut {
    ip: Ip,
    data_len: usize,
    unit: usize,
    /// Fragment offset (in 8-byte units) and MF of the packet being cut, itself maybe a
    /// fragment.
    base_off: u16,
    base_mf: bool,
}

impl FragCut {
    pub(crate) fn new(frame: &[u8], ip: &Ip, mtu: usize) -> Result<FragCut, &'static str> {
        if ip.v6 || ip.hl != 20 {
            return Err("not a plain ipv4 header");
        }
        let unit = (mtu.saturating_sub(20)) / 8 * 8;
        if unit == 0 {
            return Err("mtu too small");
        }
        let f = u16::from_be_bytes([frame[ip.l3 + 6], frame[ip.l3 + 7]]);
        Ok(FragCut {
            ip: *ip,
            data_len: ip.len - 20,
            unit,
            base_off: f & 0x1fff,
            base_mf: f & 0x2000 != 0,
        })
    }
}

impl Cut for FragCut {
    fn count(&self) -> usize {
        self.data_len.div_ceil(self.unit).max(1)
    }

    fn header_len(&self) -> usize {
        self.ip.l3 + 20
    }

    fn unit(&self) -> usize {
        self.unit
    }

    fn write(&self, frame: &[u8], k: usize, prefix: &[u8], out: &mut [u8]) -> Range<usize> {
        let p = prefix.len();
        out[..p].copy_from_slice(prefix);
        let hl = self.header_len();
        let h = &mut out[p..p + hl];
        h.copy_from_slice(&frame[..hl]);
        let l3 = self.ip.l3;
        let off = k * self.unit;
        let len = self.unit.min(self.data_len - off);
        let last = k + 1 == self.count();
        h[l3 + 2..l3 + 4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
        let mf = if !last || self.base_mf { 0x2000 } else { 0 };
        let fo = (self.base_off + (off / 8) as u16) | mf;
        h[l3 + 6..l3 + 8].copy_from_slice(&fo.to_be_bytes());
        ipv4_header_csum(&mut h[l3..l3 + 20]);
        hl + off..hl + off + len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::{ip, l4_csum, tests::tcp_frame, Csum};
    use weft_wire::eth::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
    use weft_wire::virtio::{VirtioNetHdr, GSO_TCPV4, GSO_TCPV6};

    /// Reassembles the pieces into standalone frames.
    fn pieces(c: &dyn Cut, frame: &[u8]) -> Vec<Vec<u8>> {
        (0..c.count())
            .map(|k| {
                let mut h = vec![0u8; SLOT];
                let r = c.write(frame, k, &[9; 8], &mut h);
                assert_eq!(&h[..8], &[9; 8]);
                let mut f = h[8..8 + c.header_len()].to_vec();
                f.extend_from_slice(&frame[r]);
                f
            })
            .collect()
    }

    #[test]
    fn tcp_segments_are_valid_and_contiguous() {
        for v6 in [false, true] {
            let payload: Vec<u8> = (0..5000u32).map(|i| (i * 31) as u8).collect();
            let f = tcp_frame(v6, 1000, 0x18 | 0x01, &payload);
            let et = if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
            let hdr = VirtioNetHdr {
                flags: weft_wire::virtio::F_NEEDS_CSUM,
                gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                gso_size: 1400,
                ..VirtioNetHdr::NONE
            };
            let c = TcpCut(Segmenter::new(&hdr, &f).unwrap());
            assert_eq!(c.count(), 4);
            let segs = pieces(&c, &f);
            let mut got = Vec::new();
            for (k, s) in segs.iter().enumerate() {
                let e = ip(s, 14, et).unwrap();
                assert_eq!(e.len, s.len() - 14);
                assert_eq!(l4_csum(s, &e), Csum::Valid, "segment {k}");
                let t = e.l4();
                let seq = u32::from_be_bytes([s[t + 4], s[t + 5], s[t + 6], s[t + 7]]);
                assert_eq!(seq, 1000 + (k * 1400) as u32);
                got.extend_from_slice(&s[t + 32..]);
            }
            assert_eq!(got, payload);
        }
    }

    #[test]
    fn fragments_reassemble() {
        let payload = vec![0xabu8; 3000];
        let f = tcp_frame(false, 1, 0x10, &payload);
        let e = ip(&f, 14, ETHERTYPE_IPV4).unwrap();
        let c = FragCut::new(&f, &e, 1450).unwrap();
        let frags = pieces(&c, &f);
        assert_eq!(frags.len(), 3);
        let mut data = Vec::new();
        for (k, g) in frags.iter().enumerate() {
            let h = weft_wire::ipv4::parse(&g[14..]).unwrap();
            assert!(h.checksum_ok());
            assert!(h.total_len() <= 1450);
            assert_eq!(usize::from(h.frag_offset()) * 8, data.len());
            assert_eq!(h.more_fragments(), k < 2);
            data.extend_from_slice(h.payload());
        }
        assert_eq!(data, &f[34..]);
    }
}
