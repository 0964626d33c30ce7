//! Wire → TAP for encrypted networks: each datagram on the secure port is routed to its peer
//! before any cryptography (a response or transport message by the slot in its receiver index,
//! an initiation by its network and then by the static key inside), checked against the peer's
//! underlay address, and opened by the peer's session. A decrypted frame is copied back over
//! its ciphertext in the batch buffer, so the same coalescer as plain VXLAN's hands it to the
//! TAP. Every packet refused is counted by reason; none is an error.
//!
//! The inner L4 checksum is not verified here: the AEAD authenticated every byte. The frame
//! goes to the kernel as CHECKSUM_PARTIAL (the field rewritten to the pseudo-header sum), so
//! whoever needs the checksum (a forwarding hop) computes it, and local delivery never does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use weft_secure::message::{self, Header, TRANSPORT_HEADER_LEN};
use weft_secure::{open_initiation, DropReason, OpenedInitiation, Received};
use weft_wire::{checksum, eth};

use super::{RxWorker, SLOT};
use crate::net::Net;
use crate::pkt::{self, Csum};
use crate::secure::SecureShared;
use crate::stats::{add, inc};

/// What a datagram asks of its peer.
enum Input {
    Initiation(OpenedInitiation),
    Message,
}

impl RxWorker {
    pub(super) fn process_secure(&mut self) {
        let shared = self.shared.clone();
        let nets = shared.nets.read().unwrap_or_else(|p| p.into_inner());
        let sec = &shared.secure;
        let now = Instant::now();
        let (mut packets, mut bytes) = (0u64, 0u64);
        for i in 0..self.batch.len() {
            let (src, total, gso) = {
                let m = self.batch.get(i);
                (m.src, m.data.len(), m.gso_size)
            };
            let base = i * SLOT;
            // A UDP GRO train of `gso`-byte datagrams, or one datagram.
            let seg = if gso == 0 || total <= gso { total } else { gso };
            if total == 0 {
                // An empty datagram is no message either.
                packets += 1;
                sec.counters.drop(DropReason::Malformed);
                continue;
            }
            let mut off = 0;
            while off < total {
                let len = seg.min(total - off);
                packets += 1;
                bytes += len as u64;
                self.datagram(sec, &nets, src, base + off, len, now);
                off += len;
            }
        }
        self.gro.flush(&nets, self.queue, self.batch.buffer());
        add(&sec.counters.rx_packets, packets);
        add(&sec.counters.rx_bytes, bytes);
    }

    /// One datagram of `len` bytes at `at` in the batch buffer, from `src`.
    fn datagram(
        &mut self,
        sec: &SecureShared,
        nets: &HashMap<u32, Arc<Net>>,
        src: IpAddr,
        at: usize,
        len: usize,
        now: Instant,
    ) {
        let d = &self.batch.buffer()[at..at + len];
        let (peer, input) = match message::peek(d) {
            Err(r) => return sec.counters.drop(r),
            Ok(Header::Initiation { network, .. }) => {
                let Some(sn) = nets.get(&network).and_then(|n| n.secure.as_ref()) else {
                    return sec.counters.drop(DropReason::WrongNetwork);
                };
                // Members only, before the two X25519 operations of opening it.
                let Some(peer) = sn.peer(src) else {
                    return sec.counters.drop_unknown_source();
                };
                let Some(keys) = &sec.keys else {
                    return sec.counters.drop(DropReason::NotMember);
                };
                match open_initiation(keys, sec.suite, network, d) {
                    Ok(opened) => (peer, Input::Initiation(opened)),
                    Err(r) => return sec.counters.drop(r),
                }
            }
            Ok(h) => {
                let receiver = h.receiver().unwrap_or(0);
                let Some(peer) = sec.by_slot(message::peer_slot(receiver)) else {
                    return sec.counters.drop(DropReason::UnknownIndex);
                };
                if peer.addr != src {
                    return sec.counters.drop_unknown_source();
                }
                (peer, Input::Message)
            }
        };
        let mut link = peer.lock();
        let result = match input {
            Input::Initiation(opened) => link.peer.receive_initiation(opened, &mut self.out, now),
            Input::Message => link.peer.receive(d, &mut self.out, now),
        };
        let mut deliver = false;
        match result {
            Err(r) => sec.counters.drop(r),
            Ok(Received::Data) => deliver = true,
            Ok(Received::Reply) => sec.send_control(&self.sock, &peer.dst, &self.out),
            Ok(Received::Nothing) => {}
        }
        if !link.queue.is_empty() && link.peer.can_send(now) {
            let sock = &self.sock;
            link.flush(now, &mut self.flush, |m| {
                sec.send_control(sock, &peer.dst, m)
            });
        }
        drop(link);
        if !deliver {
            return;
        }
        let Some(net) = nets.get(&peer.vni).filter(|n| n.secure.is_some()) else {
            return;
        };
        let c = &net.counters.rx;
        inc(&c.packets);
        add(&c.bytes, len as u64);
        // The plaintext is shorter than the ciphertext it came from: put it there.
        let n = self.out.len();
        let start = at + TRANSPORT_HEADER_LEN;
        let buf = self.batch.buffer_mut();
        buf[start..start + n].copy_from_slice(&self.out);
        let known = make_partial(&mut buf[start..start + n]);
        self.gro.frame(
            nets,
            net,
            self.queue,
            self.batch.buffer(),
            start..start + n,
            0,
            Some(known),
        );
    }
}

/// Turns an authenticated frame's TCP/UDP checksum into a partial one (the pseudo-header sum,
/// as a sender's kernel leaves it under offload), whatever the sender put there: the sender may
/// have left it unfinished (it defers the sum on encrypted networks), and the AEAD already
/// vouched for the bytes. Fragments and other protocols are left as they are.
fn make_partial(f: &mut [u8]) -> Csum {
    let Ok(e) = eth::parse(f) else {
        return Csum::NotApplicable;
    };
    let (l2, ethertype) = (e.header_len(), e.ethertype());
    let Some(ip) = pkt::ip(f, l2, ethertype) else {
        return Csum::NotApplicable;
    };
    let Some(field) = pkt::csum_field(ip.proto) else {
        return Csum::NotApplicable;
    };
    let l4_len = ip.len - ip.hl;
    if ip.is_fragment(f) || l4_len < field + 2 {
        return Csum::NotApplicable;
    }
    let p = checksum::fold(ip.pseudo(f, l4_len));
    let at = ip.l4() + field;
    f[at..at + 2].copy_from_slice(&p.to_be_bytes());
    Csum::Partial
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::tests::tcp_frame;
    use weft_wire::eth::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};

    #[test]
    fn partial_checksum_completes_to_the_original() {
        for v6 in [false, true] {
            let orig = tcp_frame(v6, 9, 0x18, b"some payload bytes");
            let mut f = orig.clone();
            assert_eq!(make_partial(&mut f), Csum::Partial);
            let et = if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
            let ip = pkt::ip(&f, 14, et).unwrap();
            assert_eq!(pkt::l4_csum(&f, &ip), Csum::Partial);
            weft_wire::virtio::finish_checksum(&mut f, ip.l4(), 16).unwrap();
            assert_eq!(f, orig);
        }
        let mut arp = vec![0xffu8; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(make_partial(&mut arp), Csum::NotApplicable);
        assert_eq!(make_partial(&mut [1, 2, 3]), Csum::NotApplicable);
    }
}
