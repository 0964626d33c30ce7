//! Wire → TAP for GRE networks: what the raw GRE socket receives, one IP packet per message (the
//! kernel has already reassembled fragments; raw sockets get no GRO). The outer IPv4 header
//! (raw IPv4 sockets deliver it; IPv6 ones do not) and the GRE header are stripped, the key
//! names the network, the sender must be one of its peers, and the inner frame goes through the
//! same coalescer as VXLAN's.

use weft_wire::{gre, ipv4};

use super::{lookup, RxWorker, SLOT};
use crate::engine::Transport;
use crate::stats::{add, inc};

impl RxWorker {
    pub(super) fn process_gre(&mut self) {
        let nets = self.shared.nets.read().unwrap_or_else(|p| p.into_inner());
        let buf = self.batch.buffer();
        let g = &self.shared.global;
        self.gro.peer_cache = None;
        let mut last = None;
        let (mut packets, mut bytes) = (0u64, 0u64);
        for i in 0..self.batch.len() {
            let m = self.batch.get(i);
            packets += 1;
            bytes += m.data.len() as u64;
            // Where the GRE header starts within the message.
            let at = if m.src.is_ipv4() {
                match ipv4::parse(m.data) {
                    Ok(h) if h.total_len() == m.data.len() => h.header_len(),
                    _ => {
                        inc(&g.drop_malformed);
                        continue;
                    }
                }
            } else {
                0
            };
            let Ok(p) = gre::parse_full(&m.data[at..]) else {
                inc(&g.drop_malformed);
                continue;
            };
            let net = match lookup(&nets, &mut last, p.key) {
                Some(n) if n.transport == Transport::Gre => n,
                _ => {
                    inc(&g.drop_unknown_vni);
                    continue;
                }
            };
            add(&net.counters.rx.packets, 1);
            add(&net.counters.rx.bytes, m.data.len() as u64);
            if !self.gro.accepts(net, m.src) {
                inc(&net.counters.rx.drop_unknown_peer);
                continue;
            }
            let start = i * SLOT + m.data.len() - p.inner.len();
            self.gro.frame(
                &nets,
                net,
                self.queue,
                buf,
                start..start + p.inner.len(),
                0,
                None,
            );
        }
        self.gro.flush(&nets, self.queue, buf);
        add(&g.rx_packets, packets);
        add(&g.rx_bytes, bytes);
    }
}
