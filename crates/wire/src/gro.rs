//! Receive-side coalescing (GRO): consecutive TCP segments of one flow, as they come off the
//! underlay, joined into one super-frame that the TAP takes in a single write with a virtio-net
//! GSO header — the mirror of [`crate::virtio::segment_tcp`], and what makes a userspace tunnel
//! fast on receive (one trip through the kernel's stack per 64 KiB instead of per 1.4 KiB).
//!
//! Segments merge as Linux's `tcp_gro_receive` merges them: same Ethernet header, same IP
//! addresses and header fields (IPv4 with DF set and no options; IPv6 with TCP right after the
//! fixed header), same ports, ACK number, header length and options; the sequence number
//! continuing the held data; no SYN, RST, URG or CWR after the first; every segment but the last
//! exactly as long as the first; PSH or FIN, or a shorter segment, ends the super-frame; at most
//! 64 KiB of IP packet.
//!
//! ```text
//! let mut gro = TcpCoalescer::new(true);
//! for frame in batch {
//!     if !gro.push(frame) {
//!         gro.flush(&mut |bytes| tap.write(bytes));          // what was held, if anything
//!         if !gro.push(frame) {                              // start over with this frame
//!             tap.write(VirtioNetHdr::NONE + frame);         // not coalescable: alone
//!         }
//!     }
//! }
//! gro.flush(&mut |bytes| tap.write(bytes));
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::eth;
use crate::ipv4;
use crate::ipv6;
use crate::virtio::{self, VirtioNetHdr};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;
const TCP_CWR: u8 = 0x80;

/// Where the headers of a segment are, and what it carries.
#[derive(Debug, Clone, Copy)]
struct Seg {
    l3: usize,
    l4: usize,
    hdr_end: usize,
    end: usize,
    v4: bool,
    seq: u32,
    flags: u8,
}

fn parse_seg(frame: &[u8], verify: bool) -> Option<Seg> {
    let e = eth::parse(frame).ok()?;
    let l3 = e.header_len();
    let (l4, end, v4) = match e.ethertype() {
        eth::ETHERTYPE_IPV4 => {
            let ip = ipv4::parse(e.payload()).ok()?;
            if ip.header_len() != ipv4::MIN_HEADER_LEN
                || ip.protocol() != ipv4::PROTO_TCP
                || !ip.dont_fragment()
                || ip.is_fragment()
                || (verify && !ip.checksum_ok())
            {
                return None;
            }
            (l3 + ipv4::MIN_HEADER_LEN, l3 + ip.total_len(), true)
        }
        eth::ETHERTYPE_IPV6 => {
            let ip = ipv6::parse(e.payload()).ok()?;
            if ip.next_header() != ipv6::NH_TCP {
                return None;
            }
            (
                l3 + ipv6::HEADER_LEN,
                l3 + ipv6::HEADER_LEN + ip.payload_len(),
                false,
            )
        }
        _ => return None,
    };
    if end < l4 + 20 {
        return None;
    }
    let doff = usize::from(frame[l4 + 12] >> 4) * 4;
    if doff < 20 || l4 + doff > end {
        return None;
    }
    if verify {
        let tcp = &frame[l4..end];
        let pseudo = pseudo(frame, l3, v4, tcp.len());
        if !checksum::verifies(tcp, pseudo) {
            return None;
        }
    }
    let t = &frame[l4..];
    Some(Seg {
        l3,
        l4,
        hdr_end: l4 + doff,
        end,
        v4,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        flags: t[13],
    })
}

fn pseudo(frame: &[u8], l3: usize, v4: bool, tcp_len: usize) -> u64 {
    if v4 {
        let s = Ipv4Addr::new(
            frame[l3 + 12],
            frame[l3 + 13],
            frame[l3 + 14],
            frame[l3 + 15],
        );
        let d = Ipv4Addr::new(
            frame[l3 + 16],
            frame[l3 + 17],
            frame[l3 + 18],
            frame[l3 + 19],
        );
        checksum::pseudo_v4(s, d, ipv4::PROTO_TCP, tcp_len as u16)
    } else {
        let s: Ipv6Addr = ipv6::addr_at(frame, l3 + 8);
        let d: Ipv6Addr = ipv6::addr_at(frame, l3 + 24);
        checksum::pseudo_v6(s, d, ipv6::NH_TCP, tcp_len as u32)
    }
}

/// Holds at most one super-frame being built. Reuses its buffer: no allocation once it has grown
/// to its largest (about 64 KiB).
#[derive(Debug, Clone)]
pub struct TcpCoalescer {
    /// The virtio-net header's room, then the super-frame.
    buf: Vec<u8>,
    held: Option<Held>,
    verify: bool,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    first: Seg,
    mss: usize,
    next_seq: u32,
    segments: usize,
    /// A PSH/FIN or short segment has been taken: nothing more may follow.
    closed: bool,
}

impl TcpCoalescer {
    /// A coalescer. With `verify_checksums`, a segment whose IPv4 header or TCP checksum does
    /// not verify is never merged (the kernel does not re-check a super-frame's TCP checksum
    /// marked NEEDS_CSUM): right for plain VXLAN/GRE, whose UDP checksum may be absent; an
    /// encrypted network, whose frames the AEAD authenticated, may skip it.
    pub fn new(verify_checksums: bool) -> Self {
        TcpCoalescer {
            buf: Vec::new(),
            held: None,
            verify: verify_checksums,
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_none()
    }

    /// Segments held.
    pub fn segments(&self) -> usize {
        self.held.map_or(0, |h| h.segments)
    }

    /// Offers one Ethernet frame (no virtio header). True: it was taken (it started a super-frame
    /// or extended the one held). False: it does not continue what is held — [`Self::flush`],
    /// then offer it again; refused when nothing is held, it cannot be coalesced at all (not TCP,
    /// SYN/RST/URG, no payload, a bad checksum, …): write it alone.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        let Some(s) = parse_seg(frame, self.verify) else {
            return false;
        };
        let payload = s.end - s.hdr_end;
        if payload == 0 || s.flags & (TCP_SYN | TCP_RST | TCP_URG) != 0 || s.flags & TCP_ACK == 0 {
            return false;
        }
        let Some(mut h) = self.held else {
            self.buf.clear();
            self.buf.resize(virtio::HDR_LEN, 0);
            self.buf.extend_from_slice(&frame[..s.end]);
            self.held = Some(Held {
                first: s,
                mss: payload,
                next_seq: s.seq.wrapping_add(payload as u32),
                segments: 1,
                closed: s.flags & (TCP_PSH | TCP_FIN) != 0,
            });
            return true;
        };
        let f = h.first;
        let held = &self.buf[virtio::HDR_LEN..];
        let mismatch = h.closed
            || s.seq != h.next_seq
            || payload > h.mss
            || s.flags & TCP_CWR != 0
            || (s.flags ^ f.flags) & !(TCP_PSH | TCP_FIN | TCP_CWR) != 0
            || s.v4 != f.v4
            || s.l3 != f.l3
            || s.hdr_end != f.hdr_end
            || frame[..s.l3] != held[..f.l3]
            || if s.v4 {
                // version/IHL, TOS; flags byte (DF); TTL, protocol; addresses
                frame[s.l3..s.l3 + 2] != held[f.l3..f.l3 + 2]
                    || frame[s.l3 + 6] & 0xe0 != held[f.l3 + 6] & 0xe0
                    || frame[s.l3 + 8..s.l3 + 10] != held[f.l3 + 8..f.l3 + 10]
                    || frame[s.l3 + 12..s.l3 + 20] != held[f.l3 + 12..f.l3 + 20]
            } else {
                // version, traffic class, flow label; next header, hop limit; addresses
                frame[s.l3..s.l3 + 4] != held[f.l3..f.l3 + 4] || frame[s.l3 + 6..s.l3 + 40] != held[f.l3 + 6..f.l3 + 40]
            }
            // ports; ACK number; data offset; options
            || frame[s.l4..s.l4 + 4] != held[f.l4..f.l4 + 4]
            || frame[s.l4 + 8..s.l4 + 13] != held[f.l4 + 8..f.l4 + 13]
            || frame[s.l4 + 20..s.hdr_end] != held[f.l4 + 20..f.hdr_end];
        if mismatch {
            return false;
        }
        // The IPv4 total length, or the IPv6 payload length, must stay within 16 bits.
        let ip_len = self.buf.len() - virtio::HDR_LEN - f.l3 + payload;
        let limit = usize::from(u16::MAX) + if f.v4 { 0 } else { ipv6::HEADER_LEN };
        if ip_len > limit {
            return false;
        }
        self.buf.extend_from_slice(&frame[s.hdr_end..s.end]);
        let base = virtio::HDR_LEN + f.l4;
        // The latest window, and PSH/FIN of the last segment, as Linux does.
        self.buf[base + 14] = frame[s.l4 + 14];
        self.buf[base + 15] = frame[s.l4 + 15];
        self.buf[base + 13] |= s.flags & (TCP_PSH | TCP_FIN);
        h.segments += 1;
        h.next_seq = s.seq.wrapping_add(payload as u32);
        h.closed = payload < h.mss || s.flags & (TCP_PSH | TCP_FIN) != 0;
        self.held = Some(h);
        true
    }

    /// Hands what is held — the 10-byte virtio-net header then the frame, ready for one write to
    /// the TAP — to `out`, and empties the coalescer; returns whether there was anything.
    ///
    /// One segment: the frame as it came, header [`VirtioNetHdr::NONE`]. Several: IP lengths of
    /// the whole, IPv4 header checksum, TCP checksum field = pseudo-header sum, and a header
    /// with `F_NEEDS_CSUM`, `GSO_TCPV4`/`GSO_TCPV6` (`| GSO_ECN` if the first segment had CWR),
    /// `gso_size` = the first segment's payload, `csum_start` = the TCP header, `csum_offset` 16.
    pub fn flush(&mut self, out: &mut impl FnMut(&[u8])) -> bool {
        let Some(h) = self.held.take() else {
            return false;
        };
        let f = h.first;
        let hdr = if h.segments == 1 {
            VirtioNetHdr::NONE
        } else {
            let frame = &mut self.buf[virtio::HDR_LEN..];
            let len = frame.len();
            if f.v4 {
                frame[f.l3 + 2..f.l3 + 4].copy_from_slice(&((len - f.l3) as u16).to_be_bytes());
                frame[f.l3 + 10] = 0;
                frame[f.l3 + 11] = 0;
                let c = checksum::checksum(&frame[f.l3..f.l4]);
                frame[f.l3 + 10..f.l3 + 12].copy_from_slice(&c.to_be_bytes());
            } else {
                let plen = (len - f.l3 - ipv6::HEADER_LEN) as u16;
                frame[f.l3 + 4..f.l3 + 6].copy_from_slice(&plen.to_be_bytes());
            }
            let seed = checksum::fold(pseudo(frame, f.l3, f.v4, len - f.l4));
            frame[f.l4 + 16..f.l4 + 18].copy_from_slice(&seed.to_be_bytes());
            let mut gso_type = if f.v4 {
                virtio::GSO_TCPV4
            } else {
                virtio::GSO_TCPV6
            };
            if f.flags & TCP_CWR != 0 {
                gso_type |= virtio::GSO_ECN;
            }
            VirtioNetHdr {
                flags: virtio::F_NEEDS_CSUM,
                gso_type,
                hdr_len: f.hdr_end as u16,
                gso_size: h.mss as u16,
                csum_start: f.l4 as u16,
                csum_offset: 16,
                num_buffers: 0,
            }
        };
        // Cannot fail: the buffer starts with HDR_LEN bytes of room.
        let _ = hdr.write(&mut self.buf);
        out(&self.buf);
        true
    }
}

#[cfg(test)]
mod tests;
