//! The `virtio_net_hdr` that a TAP opened with `IFF_VNET_HDR` puts before every frame, and the
//! work it asks of the engine: splitting GSO super-frames into MSS-sized frames and completing
//! partial checksums.
//!
//! ```text
//! offset size field
//!   0     1   flags        1 NEEDS_CSUM, 2 DATA_VALID, 4 RSC_INFO
//!   1     1   gso_type     0 NONE, 1 TCPV4, 3 UDP (UFO), 4 TCPV6, 5 UDP_L4 (USO); | 0x80 ECN
//!   2     2   hdr_len      length of the headers (a hint; recomputed here)
//!   4     2   gso_size     payload bytes per segment (the MSS for TCP)
//!   6     2   csum_start   where checksumming starts, from the start of the frame
//!   8     2   csum_offset  where the checksum goes, from csum_start
//!  10     2   num_buffers  only with a 12-byte header (TUNSETVNETHDRSZ 12)
//! ```
//!
//! **Byte order.** The fields are in the TAP's "vnet" byte order. This crate reads and writes
//! them **little-endian**. On little-endian hosts (x86-64, little-endian arm64) that is the TAP's
//! native order and nothing needs doing; on a big-endian host the engine must call
//! `ioctl(TUNSETVNETLE, 1)` on the TAP (or refuse to start). The header size is 10 bytes by
//! default; with `TUNSETVNETHDRSZ` set to 12 use [`VirtioNetHdr::parse_mrg`].
//!
//! **What the kernel hands over.** With `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 …)`
//! a frame read from the TAP may be a super-frame of up to 64 KiB (gso_type TCPV4/TCPV6 and
//! NEEDS_CSUM set: the TCP checksum field holds only the pseudo-header sum), or an ordinary frame
//! whose L4 checksum is partial (gso_type NONE, NEEDS_CSUM). [`segment_tcp`] turns either into
//! wire-ready frames with every length and checksum right.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::error::{need, WireError};
use crate::eth;
use crate::ipv4;
use crate::ipv6;

/// Size of `struct virtio_net_hdr`.
pub const HDR_LEN: usize = 10;
/// Size of `struct virtio_net_hdr_mrg_rxbuf` (with `num_buffers`).
pub const HDR_LEN_MRG: usize = 12;
/// Flag: the checksum at csum_start + csum_offset is partial (pseudo header only).
pub const F_NEEDS_CSUM: u8 = 1;
/// Flag: the checksum has been verified (receive side hint).
pub const F_DATA_VALID: u8 = 2;
/// Flag: RSC information (not used by TAP).
pub const F_RSC_INFO: u8 = 4;
/// GSO type: not a super-frame.
pub const GSO_NONE: u8 = 0;
/// GSO type: TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// GSO type: UDP fragmentation offload (deprecated; not supported here).
pub const GSO_UDP: u8 = 3;
/// GSO type: TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// GSO type: UDP segmentation offload (USO, `TUN_F_USO4/6`, Linux 6.2+).
pub const GSO_UDP_L4: u8 = 5;
/// GSO flag: the TCP super-frame has CWR set (ECN).
pub const GSO_ECN: u8 = 0x80;

/// The longest headers (Ethernet with one tag, IPv4 with options, TCP with options) a
/// super-frame may have.
const MAX_HEADERS: usize = eth::HEADER_LEN + eth::VLAN_TAG_LEN + 60 + 60;

/// `struct virtio_net_hdr` (and `_mrg_rxbuf`), decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct VirtioNetHdr {
    /// `F_*` bits.
    pub flags: u8,
    /// `GSO_*` value, possibly or-ed with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers before the segmented payload (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Offset of the start of checksumming, from the start of the frame.
    pub csum_start: u16,
    /// Offset of the checksum field, from `csum_start`.
    pub csum_offset: u16,
    /// Buffers used (12-byte header only; 0 otherwise).
    pub num_buffers: u16,
}

impl VirtioNetHdr {
    /// The all-zero header: a plain frame with a complete checksum. What the engine writes
    /// before a frame it hands to the TAP, unless it coalesced a super-frame.
    pub const NONE: VirtioNetHdr = VirtioNetHdr {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
        num_buffers: 0,
    };

    /// Decodes a 10-byte header; returns it and the frame after it.
    pub fn parse(buf: &[u8]) -> Result<(VirtioNetHdr, &[u8]), WireError> {
        need("virtio-net header", HDR_LEN, buf.len())?;
        let le = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
        let h = VirtioNetHdr {
            flags: buf[0],
            gso_type: buf[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
            num_buffers: 0,
        };
        Ok((h, &buf[HDR_LEN..]))
    }

    /// Decodes a 12-byte header (with `num_buffers`); returns it and the frame after it.
    pub fn parse_mrg(buf: &[u8]) -> Result<(VirtioNetHdr, &[u8]), WireError> {
        need("virtio-net header", HDR_LEN_MRG, buf.len())?;
        let (mut h, _) = Self::parse(buf)?;
        h.num_buffers = u16::from_le_bytes([buf[10], buf[11]]);
        Ok((h, &buf[HDR_LEN_MRG..]))
    }

    /// Encodes the 10-byte header into `out[..10]`; returns 10.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let have = out.len();
        let o = out.get_mut(..HDR_LEN).ok_or(WireError::BufferTooSmall {
            need: HDR_LEN,
            have,
        })?;
        o[0] = self.flags;
        o[1] = self.gso_type;
        o[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        o[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        o[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        o[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        Ok(HDR_LEN)
    }

    /// Encodes the 12-byte header into `out[..12]`; returns 12.
    pub fn write_mrg(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let have = out.len();
        if have < HDR_LEN_MRG {
            return Err(WireError::BufferTooSmall {
                need: HDR_LEN_MRG,
                have,
            });
        }
        self.write(out)?;
        out[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        Ok(HDR_LEN_MRG)
    }

    /// The GSO type without the ECN bit.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !GSO_ECN
    }

    /// True when the frame's L4 checksum is partial and must be finished before it leaves.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

/// Completes a partial checksum (`F_NEEDS_CSUM`): sums `frame[csum_start..]` — whose checksum
/// field, at `csum_start + csum_offset`, holds the pseudo-header sum — and stores the complement
/// there, a result of 0 written as 0xffff (as Linux's `skb_checksum_help` does; right for UDP,
/// equivalent for TCP and ICMPv6).
pub fn finish_checksum(
    frame: &mut [u8],
    csum_start: usize,
    csum_offset: usize,
) -> Result<(), WireError> {
    let field = csum_start
        .checked_add(csum_offset)
        .filter(|f| f.checked_add(2).is_some_and(|e| e <= frame.len()))
        .ok_or(WireError::BadVirtioHdr {
            why: "checksum offsets outside the frame",
        })?;
    let c = !checksum::fold(checksum::sum(&frame[csum_start..], 0));
    let c = if c == 0 { 0xffff } else { c };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Where the headers of a super-frame are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    l3: usize,
    l4: usize,
    /// End of the L4 header: where the payload starts.
    hdr_end: usize,
    /// End of the IP packet (trailing bytes after it are ignored).
    end: usize,
    v4: bool,
    tcp: bool,
}

fn layout(hdr: &VirtioNetHdr, frame: &[u8]) -> Result<Layout, WireError> {
    let (want_v4, tcp) = match hdr.gso_kind() {
        GSO_TCPV4 => (Some(true), true),
        GSO_TCPV6 => (Some(false), true),
        GSO_UDP_L4 => (None, false),
        GSO_UDP => {
            return Err(WireError::BadVirtioHdr {
                why: "udp fragmentation offload (ufo) is not supported",
            })
        }
        _ => {
            return Err(WireError::BadVirtioHdr {
                why: "unknown gso type",
            })
        }
    };
    let e = eth::parse(frame)?;
    let l3 = e.header_len();
    let (l4, end, v4, proto) = match e.ethertype() {
        eth::ETHERTYPE_IPV4 => {
            let ip = ipv4::parse(e.payload())?;
            if ip.is_fragment() {
                return Err(WireError::BadVirtioHdr {
                    why: "gso super-frame is an ipv4 fragment",
                });
            }
            (
                l3 + ip.header_len(),
                l3 + ip.total_len(),
                true,
                ip.protocol(),
            )
        }
        eth::ETHERTYPE_IPV6 => {
            let ip = ipv6::parse(e.payload())?;
            (
                l3 + ipv6::HEADER_LEN,
                l3 + ipv6::HEADER_LEN + ip.payload_len(),
                false,
                ip.next_header(),
            )
        }
        t => {
            return Err(WireError::Unsupported {
                what: "ethertype",
                value: u32::from(t),
            })
        }
    };
    if want_v4.is_some_and(|w| w != v4) {
        return Err(WireError::BadVirtioHdr {
            why: "gso type does not match the ip version",
        });
    }
    let want_proto = if tcp {
        ipv4::PROTO_TCP
    } else {
        ipv4::PROTO_UDP
    };
    if proto != want_proto {
        return Err(WireError::Unsupported {
            what: "ip protocol",
            value: u32::from(proto),
        });
    }
    let hdr_end = if tcp {
        need("tcp header", l4 + 20, end)?;
        let doff = usize::from(frame[l4 + 12] >> 4) * 4;
        if doff < 20 {
            return Err(WireError::BadLength {
                what: "tcp data offset",
                value: doff,
            });
        }
        need("tcp options", l4 + doff, end)?;
        l4 + doff
    } else {
        need("udp header", l4 + 8, end)?;
        l4 + 8
    };
    if hdr.gso_size == 0 {
        return Err(WireError::BadVirtioHdr { why: "gso size 0" });
    }
    Ok(Layout {
        l3,
        l4,
        hdr_end,
        end,
        v4,
        tcp,
    })
}

/// Fixes the headers of segment `i` of `n` — `h`, exactly the headers (Ethernet to the end of
/// the L4 header), already copied from the super-frame — for the segment's `payload`: IP
/// lengths, IPv4 ID and checksum, TCP sequence number and flags or UDP length, L4 checksum
/// (over the headers in `h` and the payload where it lies).
fn patch(h: &mut [u8], payload: &[u8], p: &Plan, i: usize) {
    let lay = &p.lay;
    let (n, mss, seq0, id0, flags0) = (p.n, p.mss, p.seq0, p.id0, p.flags0);
    let (l3, l4) = (lay.l3, lay.l4);
    let len = h.len() + payload.len();
    let l4_len = len - l4;
    if lay.v4 {
        let total = (len - l3) as u16;
        h[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        h[l3 + 4..l3 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
        h[l3 + 10] = 0;
        h[l3 + 11] = 0;
        let c = checksum::checksum(&h[l3..l4]);
        h[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        let plen = (len - l3 - ipv6::HEADER_LEN) as u16;
        h[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
    }
    let csum_at = if lay.tcp {
        let seq = seq0.wrapping_add((i * mss) as u32);
        h[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut f = flags0;
        if i > 0 {
            f &= !0x80; // CWR only on the first segment
        }
        if i + 1 < n {
            f &= !(0x01 | 0x08); // FIN and PSH only on the last
        }
        h[l4 + 13] = f;
        l4 + 16
    } else {
        h[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        l4 + 6
    };
    h[csum_at] = 0;
    h[csum_at + 1] = 0;
    let proto = if lay.tcp {
        ipv4::PROTO_TCP
    } else {
        ipv4::PROTO_UDP
    };
    let pseudo = if lay.v4 {
        let s = Ipv4Addr::new(h[l3 + 12], h[l3 + 13], h[l3 + 14], h[l3 + 15]);
        let d = Ipv4Addr::new(h[l3 + 16], h[l3 + 17], h[l3 + 18], h[l3 + 19]);
        checksum::pseudo_v4(s, d, proto, l4_len as u16)
    } else {
        let s: Ipv6Addr = ipv6::addr_at(h, l3 + 8);
        let d: Ipv6Addr = ipv6::addr_at(h, l3 + 24);
        checksum::pseudo_v6(s, d, proto, l4_len as u32)
    };
    // The L4 header's length is even (TCP: a multiple of 4; UDP: 8), so the two sums join.
    let mut c = !checksum::fold(checksum::sum(payload, checksum::sum(&h[l4..], pseudo)));
    if c == 0 && !lay.tcp {
        c = 0xffff;
    }
    h[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    lay: Layout,
    mss: usize,
    n: usize,
    seq0: u32,
    id0: u16,
    flags0: u8,
}

fn plan(hdr: &VirtioNetHdr, frame: &[u8]) -> Result<Plan, WireError> {
    let lay = layout(hdr, frame)?;
    let mss = usize::from(hdr.gso_size);
    let payload = lay.end - lay.hdr_end;
    let n = payload.div_ceil(mss).max(1);
    let (seq0, flags0) = if lay.tcp {
        let t = &frame[lay.l4..];
        (u32::from_be_bytes([t[4], t[5], t[6], t[7]]), t[13])
    } else {
        (0, 0)
    };
    let id0 = if lay.v4 {
        u16::from_be_bytes([frame[lay.l3 + 4], frame[lay.l3 + 5]])
    } else {
        0
    };
    Ok(Plan {
        lay,
        mss,
        n,
        seq0,
        id0,
        flags0,
    })
}

/// Splits the frame that follows a 10-byte virtio-net header into wire-ready frames, **in
/// place**, calling `out_segments` with each (Ethernet frames, no virtio header); returns how
/// many. `frame_with_hdr` is what one `read` on the TAP returned.
///
/// - gso_type NONE: the frame itself, its checksum finished first if `F_NEEDS_CSUM`.
/// - TCPV4 / TCPV6 (ECN or not): segments of `gso_size` payload bytes each; per segment the
///   IPv4 total length, ID (+1 per segment) and header checksum or the IPv6 payload length, the
///   TCP sequence number, flags (FIN and PSH only on the last, CWR only on the first) and the TCP
///   checksum (computed whole, pseudo header included).
/// - UDP_L4 (USO): the same with UDP length and checksum.
/// - UDP (UFO) and unknown types: refused.
///
/// Every check happens before the first call to `out_segments`: on an error nothing was emitted.
/// Afterwards the buffer holds garbage (each segment's headers are written over the tail of the
/// previous segment's payload, already emitted). Headers are recomputed from the frame; the
/// header's `hdr_len`, `csum_start` and `csum_offset` are not trusted for super-frames.
pub fn segment_tcp(
    frame_with_hdr: &mut [u8],
    out_segments: &mut impl FnMut(&[u8]),
) -> Result<usize, WireError> {
    let (hdr, _) = VirtioNetHdr::parse(frame_with_hdr)?;
    segment_frame(&hdr, &mut frame_with_hdr[HDR_LEN..], out_segments)
}

/// [`segment_tcp`] with the header already decoded (e.g. a 12-byte one) and the frame apart.
pub fn segment_frame(
    hdr: &VirtioNetHdr,
    frame: &mut [u8],
    out_segments: &mut impl FnMut(&[u8]),
) -> Result<usize, WireError> {
    if hdr.gso_kind() == GSO_NONE {
        if hdr.needs_csum() {
            finish_checksum(
                frame,
                usize::from(hdr.csum_start),
                usize::from(hdr.csum_offset),
            )?;
        }
        out_segments(frame);
        return Ok(1);
    }
    let p = plan(hdr, frame)?;
    let h = p.lay.hdr_end;
    let mut tmpl = [0u8; MAX_HEADERS];
    tmpl[..h].copy_from_slice(&frame[..h]);
    for i in 0..p.n {
        let seg_start = h + i * p.mss;
        let seg_end = (seg_start + p.mss).min(p.lay.end);
        let at = seg_start - h;
        frame[at..seg_start].copy_from_slice(&tmpl[..h]);
        let (headers, payload) = frame[at..seg_end].split_at_mut(h);
        patch(headers, payload, &p, i);
        out_segments(&frame[at..seg_end]);
    }
    Ok(p.n)
}

/// [`segment_frame`] for a frame the caller cannot give up: each segment is built in `scratch`
/// (cleared first, reused across segments, so it allocates only while it grows) and handed to
/// `out_segments`. The frame is not modified.
pub fn segment_frame_into(
    hdr: &VirtioNetHdr,
    frame: &[u8],
    scratch: &mut Vec<u8>,
    out_segments: &mut impl FnMut(&[u8]),
) -> Result<usize, WireError> {
    if hdr.gso_kind() == GSO_NONE {
        scratch.clear();
        scratch.extend_from_slice(frame);
        if hdr.needs_csum() {
            finish_checksum(
                scratch,
                usize::from(hdr.csum_start),
                usize::from(hdr.csum_offset),
            )?;
        }
        out_segments(scratch);
        return Ok(1);
    }
    let p = plan(hdr, frame)?;
    let h = p.lay.hdr_end;
    for i in 0..p.n {
        let seg_start = h + i * p.mss;
        let seg_end = (seg_start + p.mss).min(p.lay.end);
        scratch.clear();
        scratch.extend_from_slice(&frame[..h]);
        scratch.extend_from_slice(&frame[seg_start..seg_end]);
        let (headers, payload) = scratch.split_at_mut(h);
        patch(headers, payload, &p, i);
        out_segments(scratch);
    }
    Ok(p.n)
}

/// Segmentation without touching the super-frame or copying its payload: piece `k`'s headers
/// are written into a caller's slot and its payload is a range of the super-frame, so that the
/// engine can hand `[outer headers + slot, payload range]` to `sendmsg`/`sendmmsg` as iovecs
/// and send a whole super-frame in one batch. Same results as [`segment_frame`], byte for byte.
///
/// ```
/// # use weft_wire::virtio::{Segmenter, VirtioNetHdr};
/// # fn send(_: &[u8], _: &[u8]) {}
/// # fn demo(hdr: &VirtioNetHdr, frame: &[u8]) -> Result<(), weft_wire::WireError> {
/// let seg = Segmenter::new(hdr, frame)?;
/// let mut slot = [0u8; Segmenter::MAX_HEADER_LEN];
/// for k in 0..seg.count() {
///     let payload = seg.write_headers(frame, k, &mut slot)?;
///     send(&slot[..seg.header_len()], &frame[payload]);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Segmenter {
    plan: Plan,
}

impl Segmenter {
    /// The longest [`Self::header_len`] there can be: a slot this big always fits.
    pub const MAX_HEADER_LEN: usize = MAX_HEADERS;

    /// Plans the segmentation of a GSO super-frame (TCPV4, TCPV6, UDP_L4); a frame with gso_type
    /// NONE is refused (it needs at most [`finish_checksum`]), as is whatever [`segment_frame`]
    /// refuses.
    pub fn new(hdr: &VirtioNetHdr, frame: &[u8]) -> Result<Segmenter, WireError> {
        if hdr.gso_kind() == GSO_NONE {
            return Err(WireError::BadVirtioHdr {
                why: "not a gso super-frame",
            });
        }
        Ok(Segmenter {
            plan: plan(hdr, frame)?,
        })
    }

    /// Number of pieces.
    pub fn count(&self) -> usize {
        self.plan.n
    }

    /// Bytes of headers (Ethernet to the end of the L4 header) every piece starts with.
    pub fn header_len(&self) -> usize {
        self.plan.lay.hdr_end
    }

    /// Payload bytes of every piece but the last (which may have fewer).
    pub fn segment_size(&self) -> usize {
        self.plan.mss
    }

    /// Where piece `k`'s payload lies in the super-frame (empty past the last piece).
    pub fn payload_range(&self, k: usize) -> std::ops::Range<usize> {
        let start = self
            .plan
            .lay
            .hdr_end
            .saturating_add(k.saturating_mul(self.plan.mss))
            .min(self.plan.lay.end);
        start..start.saturating_add(self.plan.mss).min(self.plan.lay.end)
    }

    /// Writes piece `k`'s headers into `slot[..header_len()]` and returns the range of `frame`
    /// that is its payload. `frame` must be the super-frame the plan was made from (the
    /// checksum is computed over its payload bytes).
    pub fn write_headers(
        &self,
        frame: &[u8],
        k: usize,
        slot: &mut [u8],
    ) -> Result<std::ops::Range<usize>, WireError> {
        let h = self.header_len();
        if k >= self.plan.n {
            return Err(WireError::BadLength {
                what: "segment index",
                value: k,
            });
        }
        if frame.len() < self.plan.lay.end {
            return Err(WireError::Truncated {
                what: "gso super-frame",
                need: self.plan.lay.end,
                have: frame.len(),
            });
        }
        let have = slot.len();
        let headers = slot
            .get_mut(..h)
            .ok_or(WireError::BufferTooSmall { need: h, have })?;
        headers.copy_from_slice(&frame[..h]);
        let r = self.payload_range(k);
        patch(headers, &frame[r.clone()], &self.plan, k);
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
