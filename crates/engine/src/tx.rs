//! TAP → wire: one worker per TAP queue. Reads a frame (with its virtio-net header), answers
//! ARP/ND locally, enforces the MTU with ICMP errors, looks the destination up, cuts TCP
//! super-frames into segments and sends them VXLAN-encapsulated, many datagrams per `sendmsg`
//! (UDP GSO) where the kernel allows. Encrypted networks seal each piece for the peer's session
//! instead of prefixing it (`secure` below).

mod secure;

use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;

use socket2::SockAddr;
use weft_wire::eth::{self, ETHERTYPE_ARP};
use weft_wire::virtio::{self, Segmenter, VirtioNetHdr};
use weft_wire::{arp, icmp, nd};

use crate::net::{Fwd, Net};
use crate::pkt::{self, Ip};
use crate::segment::{Cut, FragCut, TcpCut, SLOT};
use crate::sock::{WireSock, MAX_BATCH, MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD};
use crate::stats::{add, inc};
use crate::sys;
use crate::tap::raw;

/// Largest frame the TAP hands over: a 64 KiB GSO frame plus Ethernet, plus the virtio header.
const READ_BUF: usize = virtio::HDR_LEN + 65536 + 64;

pub(crate) struct TxWorker {
    net: Arc<Net>,
    queue: usize,
    sock: Arc<WireSock>,
    buf: Vec<u8>,
    scratch: Scratch,
}

/// Reused buffers: headers of the pieces of a cut frame, and replies written into the TAP;
/// for encrypted networks, one piece's plaintext and the sealed messages of one send.
struct Scratch {
    hdrs: Vec<u8>,
    reply: Vec<u8>,
    plain: Vec<u8>,
    sealed: Vec<Vec<u8>>,
    initiation: Vec<u8>,
}

impl TxWorker {
    pub(crate) fn new(net: Arc<Net>, queue: usize, sock: Arc<WireSock>) -> TxWorker {
        TxWorker {
            net,
            queue,
            sock,
            buf: vec![0u8; READ_BUF],
            scratch: Scratch {
                hdrs: vec![0u8; MAX_GSO_SEGMENTS * SLOT],
                reply: Vec::with_capacity(2048),
                plain: Vec::new(),
                sealed: vec![Vec::new(); MAX_GSO_SEGMENTS],
                initiation: Vec::new(),
            },
        }
    }

    pub(crate) fn run(mut self) {
        let fd = raw(&self.net.queues[self.queue]);
        let mut errors = 0u32;
        loop {
            if self.net.stop.load(Acquire) {
                return;
            }
            match sys::read(fd, &mut self.buf) {
                Ok(n) => {
                    errors = 0;
                    let ctx = Ctx {
                        net: &self.net,
                        sock: &self.sock,
                        fd,
                    };
                    ctx.frame(&mut self.buf[..n], &mut self.scratch);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = sys::wait_readable(fd, &self.net.wake, -1) {
                        tracing::warn!(net = %self.net.label(), error = %e, "poll on tap failed");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. EBADFD while the device is being torn down; do not spin.
                    if errors == 0 {
                        tracing::warn!(net = %self.net.label(), queue = self.queue, error = %e, "reading tap");
                    }
                    errors = errors.saturating_add(1);
                    let _ = sys::wait_readable(fd, &self.net.wake, 100);
                }
            }
        }
    }
}

/// What handling one frame needs, besides the frame and scratch buffers.
struct Ctx<'a> {
    net: &'a Net,
    sock: &'a WireSock,
    /// This queue's TAP fd, for replies.
    fd: RawFd,
}

impl Ctx<'_> {
    fn frame(&self, buf: &mut [u8], s: &mut Scratch) {
        let c = &self.net.counters.tx;
        inc(&c.frames);
        let (vh, frame) = if self.net.vnet {
            if buf.len() < virtio::HDR_LEN {
                inc(&c.drop_malformed);
                return;
            }
            let (h, f) = buf.split_at_mut(virtio::HDR_LEN);
            match VirtioNetHdr::parse(h) {
                Ok((h, _)) => (h, f),
                Err(_) => {
                    inc(&c.drop_malformed);
                    return;
                }
            }
        } else {
            (VirtioNetHdr::NONE, buf)
        };
        let Ok(e) = eth::parse(frame) else {
            inc(&c.drop_malformed);
            return;
        };
        let (dst, ethertype, l2) = (e.dst(), e.ethertype(), e.header_len());

        // The proxy: ARP and neighbour solicitations never cross the underlay.
        if ethertype == ETHERTYPE_ARP {
            return self.answer_arp(frame, s);
        }
        let ip = pkt::ip(frame, l2, ethertype);
        if let Some(ip) = &ip {
            if ip.v6 && is_solicit(frame, ip) {
                return self.answer_nd(frame, s);
            }
        }

        let gso = vh.gso_kind();
        let mtu = self.net.mtu.load(Relaxed) as usize;
        if gso == virtio::GSO_NONE
            && vh.needs_csum()
            && !self.defer_checksum(frame, ip.as_ref(), &vh, mtu)
            && virtio::finish_checksum(
                frame,
                usize::from(vh.csum_start),
                usize::from(vh.csum_offset),
            )
            .is_err()
        {
            inc(&c.drop_malformed);
            return;
        }

        let fwd = self.net.fwd.read().unwrap_or_else(|p| p.into_inner());
        let dsts = destinations(&fwd, dst);
        if dsts.is_empty() {
            inc(&c.drop_no_route);
            return;
        }

        if gso == virtio::GSO_NONE {
            let l3_len = ip.map_or(frame.len() - l2, |i| i.len);
            if l3_len <= mtu {
                return self.send_whole(frame, dsts, s);
            }
            return self.too_big(frame, ip, mtu, dsts, s);
        }
        let (Some(ip), true) = (ip, gso == virtio::GSO_TCPV4 || gso == virtio::GSO_TCPV6) else {
            inc(&c.drop_malformed);
            return;
        };
        let seg = match Segmenter::new(&vh, frame) {
            Ok(seg) => seg,
            Err(e) => {
                tracing::debug!(net = %self.net.label(), error = %e, "bad gso frame");
                inc(&c.drop_malformed);
                return;
            }
        };
        // IP + TCP headers of each segment.
        let per_seg = seg.header_len() - l2;
        if per_seg + seg.segment_size() > mtu {
            if ip.v6 || ip.dont_fragment(frame) {
                // The sender's path MTU is wrong: tell it; its TCP resends smaller.
                return self.icmp_too_big(frame, &ip, mtu, s);
            }
            // No DF: cutting smaller segments is as good as fragmenting, and cheaper.
            let smaller = VirtioNetHdr {
                gso_size: mtu.saturating_sub(per_seg).min(65535) as u16,
                ..vh
            };
            return match Segmenter::new(&smaller, frame) {
                Ok(seg) => self.send_cut(frame, &TcpCut(seg), dsts, s),
                Err(_) => inc(&c.drop_too_big),
            };
        }
        self.send_cut(frame, &TcpCut(seg), dsts, s)
    }

    /// One frame, one datagram per destination.
    fn send_whole(&self, frame: &[u8], dsts: &[SockAddr], s: &mut Scratch) {
        if let Some(sn) = &self.net.secure {
            return self.seal_cut(sn, frame, &secure::Whole(frame.len()), dsts, s);
        }
        let c = &self.net.counters.tx;
        let prefix = self.prefix();
        let iov = [IoSlice::new(prefix), IoSlice::new(frame)];
        let len = (prefix.len() + frame.len()) as u64;
        for d in dsts {
            match self.sock.send(d, &iov, 0) {
                Ok(_) => {
                    inc(&c.packets);
                    add(&c.bytes, len);
                }
                Err(e) => self.send_error(d, e),
            }
        }
    }

    /// The pieces of `cut`, each prefixed, as few `sendmsg` calls as UDP GSO allows.
    fn send_cut(&self, frame: &[u8], cut: &dyn Cut, dsts: &[SockAddr], s: &mut Scratch) {
        if let Some(sn) = &self.net.secure {
            return self.seal_cut(sn, frame, cut, dsts, s);
        }
        let c = &self.net.counters.tx;
        let prefix = self.prefix();
        let hlen = prefix.len() + cut.header_len();
        let dgram = hlen + cut.unit();
        // With UDP GSO, one `sendmsg` of equal-sized datagrams; without (the raw GRE socket),
        // one `sendmmsg` of as many.
        let per_send = if self.sock.gso {
            (MAX_UDP_PAYLOAD / dgram).clamp(1, MAX_GSO_SEGMENTS)
        } else {
            MAX_BATCH
        };
        let total = cut.count();
        let mut k = 0;
        while k < total {
            let n = per_send.min(total - k);
            let mut ranges = [(0usize, 0usize); MAX_GSO_SEGMENTS];
            for (i, r) in ranges.iter_mut().enumerate().take(n) {
                let slot = &mut s.hdrs[i * SLOT..i * SLOT + hlen];
                let w = cut.write(frame, k + i, prefix, slot);
                *r = (w.start, w.end);
            }
            let mut iov = [IoSlice::new(&[]); 2 * MAX_GSO_SEGMENTS];
            let mut bytes = 0u64;
            for i in 0..n {
                iov[2 * i] = IoSlice::new(&s.hdrs[i * SLOT..i * SLOT + hlen]);
                let (a, b) = ranges[i];
                iov[2 * i + 1] = IoSlice::new(&frame[a..b]);
                bytes += (hlen + b - a) as u64;
            }
            if self.sock.gso || n == 1 {
                let seg = if n > 1 { dgram as u16 } else { 0 };
                for d in dsts {
                    match self.sock.send(d, &iov[..2 * n], seg) {
                        Ok(_) => {
                            add(&c.packets, n as u64);
                            add(&c.bytes, bytes);
                        }
                        Err(e) => self.send_error(d, e),
                    }
                }
            } else {
                let mut msgs = [[IoSlice::new(&[]), IoSlice::new(&[])]; MAX_BATCH];
                for (i, m) in msgs.iter_mut().enumerate().take(n) {
                    *m = [iov[2 * i], iov[2 * i + 1]];
                }
                for d in dsts {
                    match self.sock.send_many(d, &msgs[..n]) {
                        Ok(sent) => {
                            add(&c.packets, sent as u64);
                            add(&c.bytes, bytes * sent as u64 / n as u64);
                            if sent < n {
                                add(&c.drop_send_error, (n - sent) as u64);
                            }
                        }
                        Err(e) => self.send_error(d, e),
                    }
                }
            }
            k += n;
        }
    }

    fn send_error(&self, dst: &SockAddr, e: io::Error) {
        inc(&self.net.counters.tx.drop_send_error);
        tracing::debug!(net = %self.net.label(), dst = ?dst.as_socket(), error = %e, "send failed");
    }

    /// The encapsulation prefix (VXLAN or GRE header) of every datagram of a plain network
    /// (encrypted ones seal instead of prefixing: `secure`).
    fn prefix(&self) -> &[u8] {
        &self.net.prefix
    }

    /// A non-GSO packet larger than the MTU.
    fn too_big(
        &self,
        frame: &[u8],
        ip: Option<Ip>,
        mtu: usize,
        dsts: &[SockAddr],
        s: &mut Scratch,
    ) {
        let c = &self.net.counters.tx;
        let Some(ip) = ip else {
            inc(&c.drop_too_big);
            return;
        };
        if ip.v6 || ip.dont_fragment(frame) {
            return self.icmp_too_big(frame, &ip, mtu, s);
        }
        match FragCut::new(frame, &ip, mtu) {
            Ok(cut) => {
                inc(&c.fragmented);
                self.send_cut(frame, &cut, dsts, s);
            }
            Err(_) => inc(&c.drop_too_big),
        }
    }

    fn icmp_too_big(&self, frame: &[u8], ip: &Ip, mtu: usize, s: &mut Scratch) {
        let c = &self.net.counters.tx;
        s.reply.clear();
        s.reply.resize(self.vnet_len(), 0);
        let built = if ip.v6 {
            icmp::write_packet_too_big_v6(frame, mtu as u32, &mut s.reply)
        } else {
            icmp::write_frag_needed_v4(frame, mtu.min(65535) as u16, &mut s.reply)
        };
        match built {
            Ok(()) => {
                if self.write_tap(&s.reply) {
                    inc(&c.icmp_errors);
                }
            }
            Err(why) => {
                tracing::debug!(net = %self.net.label(), %why, "oversized packet, no icmp error allowed");
                inc(&c.drop_too_big);
            }
        }
    }

    fn answer_arp(&self, frame: &[u8], s: &mut Scratch) {
        let c = &self.net.counters.tx;
        let answer = arp::parse_request(frame)
            .filter(|r| !r.is_gratuitous())
            .and_then(|r| {
                let fwd = self.net.fwd.read().unwrap_or_else(|p| p.into_inner());
                fwd.neigh4.get(&r.target_ip).map(|mac| (r, *mac))
            });
        let Some((req, mac)) = answer else {
            inc(&c.drop_arp);
            return;
        };
        s.reply.clear();
        s.reply.resize(self.vnet_len(), 0);
        arp::write_reply(&req, mac, &mut s.reply);
        if self.write_tap(&s.reply) {
            inc(&c.arp_replies);
        }
    }

    fn answer_nd(&self, frame: &[u8], s: &mut Scratch) {
        let c = &self.net.counters.tx;
        let answer = nd::parse_solicit(frame).and_then(|ns| {
            let fwd = self.net.fwd.read().unwrap_or_else(|p| p.into_inner());
            fwd.neigh6.get(&ns.target).map(|mac| (ns, *mac))
        });
        let Some((ns, mac)) = answer else {
            inc(&c.drop_nd);
            return;
        };
        s.reply.clear();
        s.reply.resize(self.vnet_len(), 0);
        nd::write_advert(&ns, mac, &mut s.reply);
        if self.write_tap(&s.reply) {
            inc(&c.nd_replies);
        }
    }

    fn vnet_len(&self) -> usize {
        if self.net.vnet {
            virtio::HDR_LEN
        } else {
            0
        }
    }

    /// Writes a locally built frame (virtio header already in place, all zero: checksums
    /// are complete) back into the TAP.
    fn write_tap(&self, frame: &[u8]) -> bool {
        match sys::writev(self.fd, &[IoSlice::new(frame)]) {
            Ok(_) => true,
            Err(e) => {
                inc(&self.net.counters.rx.drop_tap_error);
                tracing::debug!(net = %self.net.label(), error = %e, "writing a reply into the tap");
                false
            }
        }
    }
}

/// Unicast to a known MAC → its host; anything else (broadcast, multicast, unknown unicast)
/// → every flood destination (head-end replication), as the kernel's all-zero FDB entries do.
#[inline]
fn destinations(fwd: &Fwd, dst: [u8; 6]) -> &[SockAddr] {
    if !eth::is_multicast(dst) {
        if let Some(a) = fwd.fdb.get(&dst) {
            return std::slice::from_ref(a);
        }
    }
    &fwd.flood
}

/// An IPv6 neighbour solicitation (ICMPv6 135/0 directly after the fixed header): what the
/// kernel's vxlan proxy consumes, answered or not.
fn is_solicit(frame: &[u8], ip: &Ip) -> bool {
    ip.proto == weft_wire::ipv6::NH_ICMPV6
        && frame.get(ip.l4()) == Some(&nd::TYPE_SOLICIT)
        && frame.get(ip.l4() + 1) == Some(&0)
}
