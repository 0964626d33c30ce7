//! Wire → TAP: one worker per UDP socket. Receives batches (`recvmmsg`, each message possibly
//! a UDP GRO train of equal-sized datagrams), demultiplexes by VNI, checks the sender, and
//! writes the inner frames into the network's TAP — consecutive TCP segments of one flow
//! coalesced into one super-frame with a virtio GSO header (what NIC receive offload does), so
//! the kernel handles one 64 KiB frame instead of forty. The encrypted transport's sockets are
//! served the same way, each message opened first (`secure` below).

mod gre;
mod secure;

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;

use weft_wire::virtio::{self, VirtioNetHdr};
use weft_wire::{checksum, eth, vxlan};

use crate::engine::{Shared, Transport};
use crate::net::Net;
use crate::pkt::{self, Csum, Ip, PROTO_TCP, PROTO_UDP};
use crate::sock::{RecvBatch, WireSock};
use crate::stats::{add, inc};
use crate::sys;
use crate::tap::raw;

/// Messages per `recvmmsg`, and bytes per message (a whole GRO train fits).
const BATCH: usize = 32;
const SLOT: usize = 65536 + 512;
/// Segments coalesced into one frame at most.
const MAX_RUN: usize = 64;

pub(crate) struct RxWorker {
    shared: Arc<Shared>,
    sock: Arc<WireSock>,
    kind: Transport,
    /// Which TAP queue this worker writes into.
    queue: usize,
    batch: RecvBatch,
    gro: Gro,
    /// Encrypted transport: a message opened, or one to send back.
    out: Vec<u8>,
    /// Encrypted transport: held frames sealed once a session comes up.
    flush: Vec<u8>,
}

impl RxWorker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        sock: Arc<WireSock>,
        queue: usize,
        kind: Transport,
    ) -> RxWorker {
        RxWorker {
            shared,
            sock,
            kind,
            queue,
            batch: RecvBatch::new(BATCH, SLOT),
            gro: Gro::new(),
            out: Vec::new(),
            flush: Vec::new(),
        }
    }

    pub(crate) fn run(mut self) {
        let fd = self.sock.fd();
        loop {
            if self.shared.stop.load(Acquire) {
                return;
            }
            match self.batch.recv(fd) {
                Ok(_) => match self.kind {
                    Transport::Vxlan => self.process(),
                    Transport::Secure => self.process_secure(),
                    Transport::Gre => self.process_gre(),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = sys::wait_readable(fd, &self.shared.wake, -1) {
                        tracing::warn!(error = %e, kind = ?self.kind, "poll on the socket failed");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    match self.kind {
                        Transport::Vxlan | Transport::Gre => inc(&self.shared.global.recv_errors),
                        Transport::Secure => inc(&self.shared.secure.counters.recv_errors),
                    }
                    tracing::warn!(error = %e, kind = ?self.kind, "receiving on the udp socket");
                    let _ = sys::wait_readable(fd, &self.shared.wake, 10);
                }
            }
        }
    }

    fn process(&mut self) {
        let nets = self.shared.nets.read().unwrap_or_else(|p| p.into_inner());
        let buf = self.batch.buffer();
        let g = &self.shared.global;
        self.gro.peer_cache = None;
        // The last VNI looked up: a batch is mostly one network's.
        let mut last: Option<(u32, &Arc<Net>)> = None;
        // Counters summed here and added once per batch (and per change of network): the
        // atomics are shared with the other socket workers.
        let (mut packets, mut bytes) = (0u64, 0u64);
        let mut per_net: Option<(&Net, u64, u64)> = None;
        for i in 0..self.batch.len() {
            let m = self.batch.get(i);
            let base = i * SLOT;
            let total = m.data.len();
            // One message is one datagram, or a UDP GRO train of `gso_size`-byte datagrams,
            // or — from a kernel vxlan sender over a veth underlay — one datagram whose inner
            // frame is a whole TCP super-frame that was never segmented, `gso_size` then
            // being its MSS. Tell the last two apart by the inner IP length.
            let seg = if m.gso_size == 0 || total <= m.gso_size || is_whole(m.data) {
                total
            } else {
                m.gso_size
            };
            let mss_hint = if seg == total { m.gso_size } else { 0 };
            if total == 0 {
                // An empty datagram: not VXLAN either.
                packets += 1;
                inc(&g.drop_malformed);
                continue;
            }
            let mut off = 0;
            while off < total {
                let len = seg.min(total - off);
                packets += 1;
                bytes += len as u64;
                let d = &buf[base + off..base + off + len];
                match vxlan::parse(d) {
                    Err(_) => inc(&g.drop_malformed),
                    Ok((vni, inner)) => match lookup(&nets, &mut last, vni) {
                        Some(net) if net.transport != Transport::Vxlan => inc(&g.drop_unknown_vni),
                        None => inc(&g.drop_unknown_vni),
                        Some(net) => {
                            match &mut per_net {
                                Some((n, p, b)) if n.vni == net.vni => {
                                    *p += 1;
                                    *b += len as u64;
                                }
                                other => {
                                    if let Some((n, p, b)) = other.take() {
                                        add(&n.counters.rx.packets, p);
                                        add(&n.counters.rx.bytes, b);
                                    }
                                    *other = Some((net, 1, len as u64));
                                }
                            }
                            if self.gro.accepts(net, m.src) {
                                let start = base + off + vxlan::HEADER_LEN;
                                self.gro.frame(
                                    &nets,
                                    net,
                                    self.queue,
                                    buf,
                                    start..start + inner.len(),
                                    mss_hint,
                                    None,
                                );
                            } else {
                                inc(&net.counters.rx.drop_unknown_peer);
                            }
                        }
                    },
                }
                off += len;
            }
        }
        self.gro.flush(&nets, self.queue, buf);
        add(&g.rx_packets, packets);
        add(&g.rx_bytes, bytes);
        if let Some((n, p, b)) = per_net {
            add(&n.counters.rx.packets, p);
            add(&n.counters.rx.bytes, b);
        }
    }
}

#[inline]
fn lookup<'a>(
    nets: &'a HashMap<u32, Arc<Net>>,
    last: &mut Option<(u32, &'a Arc<Net>)>,
    vni: u32,
) -> Option<&'a Arc<Net>> {
    match *last {
        Some((v, n)) if v == vni => Some(n),
        _ => {
            let n = nets.get(&vni)?;
            *last = Some((vni, n));
            Some(n)
        }
    }
}

/// True if `d` (a VXLAN datagram) is exactly one inner IP packet, by its IP length field.
fn is_whole(d: &[u8]) -> bool {
    let Some(f) = d.get(vxlan::HEADER_LEN..) else {
        return false;
    };
    let Ok(e) = eth::parse(f) else {
        return false;
    };
    pkt::ip(f, e.header_len(), e.ethertype())
        .is_some_and(|ip| vxlan::HEADER_LEN + ip.l3 + ip.len == d.len())
}

/// A TCP flow's consecutive segments being merged.
struct Run {
    vni: u32,
    /// Offset (in the batch buffer) of the first segment's frame.
    first: usize,
    ip: Ip,
    /// Ethernet + IP + TCP header length.
    hdr_len: usize,
    mss: usize,
    next_seq: u32,
    payload: usize,
    /// A short segment or PSH ended it: nothing may follow.
    closed: bool,
    psh: bool,
    /// Checksum state of the first segment (used when the run stays a single segment).
    first_csum: Csum,
}

/// Receive coalescing state, reused across batches.
struct Gro {
    run: Option<Run>,
    /// Payload ranges of the run's segments, in the batch buffer.
    segs: Vec<(usize, usize)>,
    /// Virtio header + the rewritten headers of a coalesced frame.
    hdr: [u8; virtio::HDR_LEN + 18 + 60 + 60],
    /// Copy of a frame whose checksum must be completed here (TAP without virtio header).
    copy: Vec<u8>,
    /// The last (vni, source) checked against the network's peers and the answer, for this
    /// batch (a GRO train, and most batches, come from one sender).
    peer_cache: Option<(u32, IpAddr, bool)>,
}

impl Gro {
    fn new() -> Gro {
        Gro {
            run: None,
            segs: Vec::with_capacity(MAX_RUN),
            hdr: [0; virtio::HDR_LEN + 18 + 60 + 60],
            copy: Vec::new(),
            peer_cache: None,
        }
    }

    fn accepts(&mut self, net: &Net, src: IpAddr) -> bool {
        match self.peer_cache {
            Some((vni, s, ok)) if vni == net.vni && s == src => ok,
            _ => {
                let ok = net
                    .fwd
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .accepts(src);
                self.peer_cache = Some((net.vni, src, ok));
                ok
            }
        }
    }

    /// One inner frame of network `net`, at `range` of `buf`. `known`: what is already known
    /// of its L4 checksum (an authenticated frame's, made partial by the caller), else it is
    /// verified here.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        nets: &HashMap<u32, Arc<Net>>,
        net: &Net,
        queue: usize,
        buf: &[u8],
        range: std::ops::Range<usize>,
        mss_hint: usize,
        known: Option<Csum>,
    ) {
        let f = &buf[range.clone()];
        let c = &net.counters.rx;
        let Ok(e) = eth::parse(f) else {
            inc(&c.drop_malformed);
            return;
        };
        let l2 = e.header_len();
        let ip = pkt::ip(f, l2, e.ethertype());
        let csum = match (known, ip) {
            (Some(k), Some(_)) => k,
            (_, None) => Csum::NotApplicable,
            (None, Some(ip)) => pkt::l4_csum(f, &ip),
        };
        if csum == Csum::Bad {
            inc(&c.drop_bad_checksum);
            return;
        }
        let mtu = net.mtu.load(Relaxed) as usize;
        if let Some(ip) = ip.filter(|ip| !ip.is_fragment(f)) {
            if ip.len > mtu && (ip.proto == PROTO_TCP || ip.proto == PROTO_UDP) {
                // A super-frame that a kernel sender never segmented (its GSO skb crossed a
                // veth underlay whole; real NICs segment): hand it on whole.
                self.flush(nets, queue, buf);
                return self.write_super(net, queue, f, &ip, mss_hint, mtu);
            }
            if ip.proto == PROTO_TCP {
                if let Some(t) = tcp_seg(f, &ip).filter(|t| t.plain && t.payload > 0) {
                    if self.append(net.vni, buf, range.start, &ip, &t) {
                        return;
                    }
                    self.flush(nets, queue, buf);
                    self.start(net.vni, range.start, ip, t, csum);
                    return;
                }
            }
        }
        self.flush(nets, queue, buf);
        self.write_single(net, queue, f, ip, csum);
    }

    fn start(&mut self, vni: u32, first: usize, ip: Ip, t: TcpSeg, csum: Csum) {
        self.segs.clear();
        self.segs.push((first + t.hdr_len, t.payload));
        self.run = Some(Run {
            vni,
            first,
            ip,
            hdr_len: t.hdr_len,
            mss: t.payload,
            next_seq: t.seq.wrapping_add(t.payload as u32),
            payload: t.payload,
            closed: t.psh,
            psh: t.psh,
            first_csum: csum,
        });
    }

    /// Adds the segment at `at` to the open run if it continues it.
    fn append(&mut self, vni: u32, buf: &[u8], at: usize, ip: &Ip, t: &TcpSeg) -> bool {
        let Some(r) = &mut self.run else {
            return false;
        };
        if r.vni != vni
            || r.closed
            || r.hdr_len != t.hdr_len
            || r.ip.v6 != ip.v6
            || r.ip.l3 != ip.l3
            || t.seq != r.next_seq
            || t.payload > r.mss
            || self.segs.len() >= MAX_RUN
            || r.hdr_len - r.ip.l3 + r.payload + t.payload > 65535
        {
            return false;
        }
        let a = &buf[r.first..r.first + r.hdr_len];
        let b = &buf[at..at + t.hdr_len];
        let (l3, l4) = (ip.l3, ip.l4());
        let same_ip = if ip.v6 {
            a[l3..l3 + 4] == b[l3..l3 + 4] && a[l3 + 6..l4] == b[l3 + 6..l4]
        } else {
            a[l3..l3 + 2] == b[l3..l3 + 2]
                && a[l3 + 6..l3 + 10] == b[l3 + 6..l3 + 10]
                && a[l3 + 12..l4] == b[l3 + 12..l4]
        };
        let same_tcp = a[l4..l4 + 4] == b[l4..l4 + 4]
            && a[l4 + 8..l4 + 13] == b[l4 + 8..l4 + 13]
            && a[l4 + 14..l4 + 16] == b[l4 + 14..l4 + 16]
            && a[l4 + 18..] == b[l4 + 18..];
        if a[..l3] != b[..l3] || !same_ip || !same_tcp {
            return false;
        }
        self.segs.push((at + t.hdr_len, t.payload));
        r.payload += t.payload;
        r.next_seq = r.next_seq.wrapping_add(t.payload as u32);
        r.psh |= t.psh;
        r.closed = t.psh || t.payload < r.mss;
        true
    }

    /// Writes out the open run, if any, into the TAP of the network it belongs to.
    fn flush(&mut self, nets: &HashMap<u32, Arc<Net>>, queue: usize, buf: &[u8]) {
        let Some(r) = self.run.take() else {
            return;
        };
        if let Some(net) = nets.get(&r.vni) {
            self.emit(net, queue, buf, r);
        }
    }

    fn emit(&mut self, net: &Net, queue: usize, buf: &[u8], r: Run) {
        if self.segs.len() == 1 {
            let f = &buf[r.first..r.first + r.hdr_len + r.payload];
            return self.write_single(net, queue, f, Some(r.ip), r.first_csum);
        }
        let c = &net.counters.rx;
        let (l3, l4) = (r.ip.l3, r.ip.l4());
        let thl = r.hdr_len - l4;
        let h = &mut self.hdr[virtio::HDR_LEN..virtio::HDR_LEN + r.hdr_len];
        h.copy_from_slice(&buf[r.first..r.first + r.hdr_len]);
        if r.ip.v6 {
            h[l3 + 4..l3 + 6].copy_from_slice(&((thl + r.payload) as u16).to_be_bytes());
        } else {
            let tot = (r.ip.hl + thl + r.payload) as u16;
            h[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            pkt::ipv4_header_csum(&mut h[l3..l4]);
        }
        if r.psh {
            h[l4 + 13] |= 0x08;
        }
        // CHECKSUM_PARTIAL convention: the field holds the folded pseudo-header sum over the
        // whole super-frame's TCP length; the receiving kernel trusts it, and fills it in
        // per segment should the frame ever be segmented again.
        let p = checksum::fold(r.ip.pseudo(h, thl + r.payload));
        h[l4 + 16..l4 + 18].copy_from_slice(&p.to_be_bytes());
        let vh = VirtioNetHdr {
            flags: virtio::F_NEEDS_CSUM,
            gso_type: if r.ip.v6 {
                virtio::GSO_TCPV6
            } else {
                virtio::GSO_TCPV4
            },
            hdr_len: r.hdr_len as u16,
            gso_size: r.mss as u16,
            csum_start: l4 as u16,
            csum_offset: 16,
            num_buffers: 0,
        };
        // Cannot fail: the array starts with HDR_LEN bytes.
        let _ = vh.write(&mut self.hdr[..virtio::HDR_LEN]);
        let mut iov = [IoSlice::new(&[]); MAX_RUN + 1];
        iov[0] = IoSlice::new(&self.hdr[..virtio::HDR_LEN + r.hdr_len]);
        for (i, (at, len)) in self.segs.iter().enumerate() {
            iov[i + 1] = IoSlice::new(&buf[*at..*at + *len]);
        }
        let n = self.segs.len();
        match sys::writev(tap_fd(net, queue), &iov[..n + 1]) {
            Ok(_) => {
                inc(&c.frames);
                add(&c.coalesced, n as u64 - 1);
            }
            Err(e) => tap_error(net, e),
        }
    }

    /// A TCP or UDP super-frame: written whole with a GSO virtio header (`mss` from the UDP GRO
    /// control message, else what the MTU allows), or, on a TAP without virtio header, cut
    /// into frames here.
    fn write_super(&mut self, net: &Net, queue: usize, f: &[u8], ip: &Ip, hint: usize, mtu: usize) {
        let c = &net.counters.rx;
        let l4 = ip.l4();
        let end = ip.l3 + ip.len;
        let (gso_type, hdr_end, field) = match ip.proto {
            PROTO_TCP => match tcp_seg(f, ip) {
                Some(t) if ip.v6 => (virtio::GSO_TCPV6, t.hdr_len, 16),
                Some(t) => (virtio::GSO_TCPV4, t.hdr_len, 16),
                None => return inc(&c.drop_malformed),
            },
            _ if end >= l4 + 8 => (virtio::GSO_UDP_L4, l4 + 8, 6),
            _ => return inc(&c.drop_malformed),
        };
        let mss = if hint > 0 {
            hint
        } else {
            mtu.saturating_sub(hdr_end - ip.l3).max(8)
        };
        let vh = VirtioNetHdr {
            flags: virtio::F_NEEDS_CSUM,
            gso_type,
            hdr_len: hdr_end as u16,
            gso_size: mss.min(65535) as u16,
            csum_start: l4 as u16,
            csum_offset: field as u16,
            num_buffers: 0,
        };
        let fd = tap_fd(net, queue);
        if !net.vnet {
            let mut write = |seg: &[u8]| match sys::writev(fd, &[IoSlice::new(seg)]) {
                Ok(_) => inc(&c.frames),
                Err(e) => tap_error(net, e),
            };
            if virtio::segment_frame_into(&vh, &f[..end], &mut self.copy, &mut write).is_err() {
                inc(&c.drop_malformed);
            }
            return;
        }
        // The checksum field as CHECKSUM_PARTIAL wants it (a kernel sender left it so already;
        // rewritten to be sure): the folded pseudo-header sum over the whole L4 length.
        let _ = vh.write(&mut self.hdr[..virtio::HDR_LEN]);
        let h = &mut self.hdr[virtio::HDR_LEN..virtio::HDR_LEN + hdr_end];
        h.copy_from_slice(&f[..hdr_end]);
        let p = checksum::fold(ip.pseudo(h, end - l4));
        h[l4 + field..l4 + field + 2].copy_from_slice(&p.to_be_bytes());
        let iov = [
            IoSlice::new(&self.hdr[..virtio::HDR_LEN + hdr_end]),
            IoSlice::new(&f[hdr_end..end]),
        ];
        match sys::writev(fd, &iov) {
            Ok(_) => inc(&c.frames),
            Err(e) => tap_error(net, e),
        }
    }

    /// One frame as it came, with a virtio header saying what is known of its checksum.
    fn write_single(&mut self, net: &Net, queue: usize, f: &[u8], ip: Option<Ip>, csum: Csum) {
        let c = &net.counters.rx;
        let mut h = VirtioNetHdr::NONE;
        let mut frame = f;
        match (csum, ip) {
            (Csum::Valid, Some(_)) => h.flags = virtio::F_DATA_VALID,
            (Csum::Partial, Some(ip)) => {
                let field = pkt::csum_field(ip.proto).unwrap_or(0);
                if net.vnet {
                    h.flags = virtio::F_NEEDS_CSUM;
                    h.csum_start = ip.l4() as u16;
                    h.csum_offset = field as u16;
                } else {
                    // No virtio header to say so: finish the checksum here, on a copy.
                    self.copy.clear();
                    self.copy.extend_from_slice(&f[..ip.l3 + ip.len]);
                    let _ = virtio::finish_checksum(&mut self.copy, ip.l4(), field);
                    frame = &self.copy;
                }
            }
            _ => {}
        }
        let mut hb = [0u8; virtio::HDR_LEN];
        let _ = h.write(&mut hb);
        let head: &[u8] = if net.vnet { &hb } else { &[] };
        match sys::writev(
            tap_fd(net, queue),
            &[IoSlice::new(head), IoSlice::new(frame)],
        ) {
            Ok(_) => inc(&c.frames),
            Err(e) => tap_error(net, e),
        }
    }
}

fn tap_fd(net: &Net, queue: usize) -> std::os::fd::RawFd {
    raw(&net.queues[queue % net.queues.len()])
}

fn tap_error(net: &Net, e: io::Error) {
    inc(&net.counters.rx.drop_tap_error);
    tracing::trace!(net = %net.label(), error = %e, "writing into the tap");
}

/// A TCP segment's facts that coalescing needs.
#[derive(Debug, Clone, Copy)]
struct TcpSeg {
    hdr_len: usize,
    payload: usize,
    seq: u32,
    psh: bool,
    /// Only ACK (and PSH) set, no IPv4 options, untagged: may be merged.
    plain: bool,
}

fn tcp_seg(f: &[u8], ip: &Ip) -> Option<TcpSeg> {
    let l4 = ip.l4();
    let end = ip.l3 + ip.len;
    if end < l4 + 20 {
        return None;
    }
    let thl = usize::from(f[l4 + 12] >> 4) * 4;
    if thl < 20 || l4 + thl > end {
        return None;
    }
    let flags = f[l4 + 13];
    let plain = flags & !0x08 == 0x10 && ip.l3 == eth::HEADER_LEN && (ip.v6 || ip.hl == 20);
    Some(TcpSeg {
        hdr_len: l4 + thl,
        payload: end - l4 - thl,
        seq: u32::from_be_bytes([f[l4 + 4], f[l4 + 5], f[l4 + 6], f[l4 + 7]]),
        psh: flags & 0x08 != 0,
        plain,
    })
}
