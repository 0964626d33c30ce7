//! The encrypted transport's device layer (as boringtun's `device/` beside its pure `noise/`):
//! one weft-secure [`Peer`] per (encrypted network, member host), the engine-wide table that
//! routes a received message to its peer by the slot in its receiver index, the per-peer queue
//! of frames waiting for a handshake, and the timer thread that drives [`Peer::tick`].
//!
//! The protocol itself (handshake, sessions, replay window, rekeying) is `weft-secure`'s; the
//! framing is `weft_wire::secure`'s; the workers' halves are `tx::secure` (seal) and
//! `rx::secure` (open).
//!
//! Lock order: the network table (`Shared::nets`), then a network's peers or the slot table,
//! then one peer's [`Link`]; nothing is taken while a `Link` is held.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Acquire;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::SockAddr;
use weft_secure::{Action, Config, KeyPair, Limits, Outcome, Peer, PresharedKey, Suite, WallClock};

use crate::config::Secure;
use crate::engine::Shared;
use crate::sock::WireSock;
use crate::stats::{add, inc, PeerStats, SecureCounters};
use crate::sys;

/// Frames held per peer while its handshake is under way (WireGuard keeps 1024 packets; a TCP
/// super-frame held here is already cut into segments).
pub(crate) const QUEUE_MAX: usize = 1024;

/// How often the timer thread runs every peer's timers.
const TICK: Duration = Duration::from_millis(100);

/// What every peer shares: this host's keys and the engine-wide settings and tables.
pub(crate) struct SecureShared {
    pub keys: Option<KeyPair>,
    pub limits: Limits,
    pub suite: Suite,
    pub wall: WallClock,
    pub port: u16,
    /// Every peer of every encrypted network, by its slot ([`Config::index`]): a response or
    /// transport message goes to `slots[peer_slot(receiver)]`.
    pub slots: RwLock<HashMap<u32, Arc<SecurePeer>>>,
    next_slot: Mutex<u32>,
    pub counters: SecureCounters,
}

/// One peer: a member host of one encrypted network.
pub(crate) struct SecurePeer {
    pub vni: u32,
    /// The peer host's underlay address: messages for this peer must come from it.
    pub addr: IpAddr,
    /// Where its messages go (`addr`, the secure port).
    pub dst: SockAddr,
    pub slot: u32,
    link: Mutex<Link>,
}

/// The protocol state and the frames waiting for it.
pub(crate) struct Link {
    pub peer: Peer,
    pub queue: VecDeque<Vec<u8>>,
}

impl SecurePeer {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Link {
    /// Holds a frame for the handshake; false if the queue is full (the caller counts a drop).
    pub(crate) fn hold(&mut self, frame: &[u8]) -> bool {
        if self.queue.len() >= QUEUE_MAX {
            return false;
        }
        self.queue.push_back(frame.to_vec());
        true
    }

    /// Seals the held frames once a session is up, handing each message to `send`; stops (and
    /// keeps the rest) if the session cannot take more.
    pub(crate) fn flush(&mut self, now: Instant, out: &mut Vec<u8>, mut send: impl FnMut(&[u8])) {
        while self.peer.can_send(now) {
            let Some(frame) = self.queue.pop_front() else {
                return;
            };
            match self.peer.encrypt(&frame, out, now) {
                Ok(Outcome::Send) => send(out),
                Ok(Outcome::Handshake) => {
                    self.queue.push_front(frame);
                    send(out);
                    return;
                }
                Ok(Outcome::Queue) => {
                    self.queue.push_front(frame);
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "dropping a held frame"),
            }
        }
    }
}

/// An encrypted network's peers, by underlay address, and the PSK they were made with.
pub(crate) struct SecureNet {
    pub peers: RwLock<HashMap<IpAddr, Arc<SecurePeer>>>,
    psk: Mutex<Option<PresharedKey>>,
}

impl SecureNet {
    pub(crate) fn new() -> SecureNet {
        SecureNet {
            peers: RwLock::new(HashMap::new()),
            psk: Mutex::new(None),
        }
    }

    /// The peer at underlay address `ip`.
    pub(crate) fn peer(&self, ip: IpAddr) -> Option<Arc<SecurePeer>> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .cloned()
    }
}

impl SecureShared {
    pub(crate) fn new(
        keys: Option<KeyPair>,
        limits: Limits,
        suite: Suite,
        port: u16,
    ) -> SecureShared {
        let at = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // Slots start at a random point so that a restarted engine rarely hands out the
        // indexes its predecessor used (a peer's stale session then fails fast as unknown).
        let start = (unix.subsec_nanos() ^ std::process::id().rotate_left(12)) & 0x00ff_ffff;
        SecureShared {
            keys,
            limits,
            suite,
            wall: WallClock { unix, at },
            port,
            slots: RwLock::new(HashMap::new()),
            next_slot: Mutex::new(start.max(1)),
            counters: SecureCounters::default(),
        }
    }

    /// The peer that handed out receiver index slot `slot`.
    pub(crate) fn by_slot(&self, slot: u32) -> Option<Arc<SecurePeer>> {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&slot)
            .cloned()
    }

    fn alloc_slot(&self, slots: &HashMap<u32, Arc<SecurePeer>>) -> Option<u32> {
        let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..(1u32 << 24) {
            let s = *next;
            *next = if s + 1 >= 1 << 24 { 1 } else { s + 1 };
            if s != 0 && !slots.contains_key(&s) {
                return Some(s);
            }
        }
        None
    }

    /// Brings network `vni`'s peers to `cfg`: peers whose key and the PSK are unchanged keep
    /// their sessions; new ones are made (and start a handshake at once, sent from `sock`);
    /// departed ones are dropped. Peers of another address family than `underlay`, this host
    /// itself, and unusable keys are left out and returned as warnings.
    pub(crate) fn update(
        &self,
        vni: u32,
        net: &SecureNet,
        cfg: &Secure,
        underlay: IpAddr,
        sock: Option<&WireSock>,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(keys) = &self.keys else {
            return vec!["no host key pair: encrypted network not carried".into()];
        };
        let mut psk = net.psk.lock().unwrap_or_else(|p| p.into_inner());
        let same_psk = psk
            .as_ref()
            .is_some_and(|p| p.as_bytes() == cfg.psk.as_bytes());
        let mut peers = net.peers.write().unwrap_or_else(|p| p.into_inner());
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let mut next: HashMap<IpAddr, Arc<SecurePeer>> = HashMap::new();
        let mut fresh = Vec::new();
        for (addr, key) in &cfg.peers {
            if *addr == underlay || next.contains_key(addr) {
                continue;
            }
            if addr.is_ipv4() != underlay.is_ipv4() {
                warnings.push(format!(
                    "peer {addr} is of another address family than the underlay; left out"
                ));
                continue;
            }
            let dst = SockAddr::from(SocketAddr::new(
                *addr,
                cfg.ports.get(addr).copied().unwrap_or(self.port),
            ));
            if let Some(p) = peers.get(addr) {
                if same_psk && p.dst == dst && p.lock().peer.remote_key() == key {
                    next.insert(*addr, p.clone());
                    continue;
                }
            }
            let Some(slot) = self.alloc_slot(&slots) else {
                warnings.push("no free peer slot".into());
                continue;
            };
            let mut config = Config::new(slot, vni, self.wall);
            config.suite = self.suite;
            config.limits = self.limits;
            let peer = match Peer::new(config, keys, *key, cfg.psk.clone()) {
                Ok(p) => p,
                Err(e) => {
                    warnings.push(format!("peer {addr}: {e}; left out"));
                    continue;
                }
            };
            let p = Arc::new(SecurePeer {
                vni,
                addr: *addr,
                dst,
                slot,
                link: Mutex::new(Link {
                    peer,
                    queue: VecDeque::new(),
                }),
            });
            slots.insert(slot, p.clone());
            next.insert(*addr, p.clone());
            fresh.push(p);
        }
        for (addr, old) in peers.iter() {
            if next.get(addr).is_none_or(|n| !Arc::ptr_eq(n, old)) {
                slots.remove(&old.slot);
            }
        }
        *peers = next;
        *psk = Some(cfg.psk.clone());
        drop(slots);
        drop(peers);
        drop(psk);
        // A handshake right away, so that the first frames need not wait for one (both sides
        // may start at once: weft-secure settles that).
        if let Some(sock) = sock {
            let now = Instant::now();
            let mut out = Vec::new();
            for p in fresh {
                let outcome = p.lock().peer.encrypt(&[], &mut out, now);
                if let Ok(Outcome::Handshake) = outcome {
                    self.send_control(sock, &p.dst, &out);
                }
            }
        }
        warnings
    }

    /// Forgets every peer of a network that is going away.
    pub(crate) fn remove(&self, net: &SecureNet) {
        let mut peers = net.peers.write().unwrap_or_else(|p| p.into_inner());
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        for p in peers.values() {
            slots.remove(&p.slot);
        }
        peers.clear();
    }

    /// Sends a handshake message or keepalive.
    pub(crate) fn send_control(&self, sock: &WireSock, dst: &SockAddr, msg: &[u8]) {
        match sock.send(dst, &[std::io::IoSlice::new(msg)], 0) {
            Ok(_) => inc(&self.counters.tx_control),
            Err(e) => tracing::debug!(dst = ?dst.as_socket(), error = %e, "secure send failed"),
        }
    }

    pub(crate) fn peer_stats(&self) -> Vec<PeerStats> {
        let peers: Vec<Arc<SecurePeer>> = self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out: Vec<PeerStats> = peers
            .iter()
            .map(|p| {
                let link = p.lock();
                PeerStats {
                    vni: p.vni,
                    addr: p.addr,
                    queued: link.queue.len(),
                    state: link.peer.state(),
                }
            })
            .collect();
        out.sort_by_key(|p| (p.vni, p.addr));
        out
    }
}

/// The timer thread: every [`TICK`], each peer's timers (retransmissions, rekeys, keepalives,
/// expiry); what they ask to send goes out of `sock`.
pub(crate) fn run_timers(shared: Arc<Shared>, sock: Arc<WireSock>) {
    let sec = &shared.secure;
    let mut out = Vec::new();
    loop {
        if shared.stop.load(Acquire) {
            return;
        }
        let _ = sys::sleep_unless(&shared.wake, TICK);
        if shared.stop.load(Acquire) {
            return;
        }
        let peers: Vec<Arc<SecurePeer>> = sec
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let now = Instant::now();
        for p in peers {
            let mut given_up = 0;
            {
                let mut link = p.lock();
                for action in link.peer.tick(now) {
                    match action {
                        Action::Send(msg) => sec.send_control(&sock, &p.dst, &msg),
                        Action::GiveUp => {
                            given_up += link.queue.len();
                            link.queue.clear();
                        }
                    }
                }
                if !link.queue.is_empty() {
                    link.flush(now, &mut out, |m| sec.send_control(&sock, &p.dst, m));
                }
            }
            // Counted with the peer's lock released: receive workers take the network table
            // first and a peer's lock second, never the other way round.
            if given_up > 0 {
                tracing::debug!(vni = p.vni, peer = %p.addr, dropped = given_up,
                    "handshake given up; held frames dropped");
                let nets = shared.nets.read().unwrap_or_else(|p| p.into_inner());
                if let Some(net) = nets.get(&p.vni) {
                    add(&net.counters.tx.drop_no_session, given_up as u64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_secure::PrivateKey;

    fn pair(i: u8) -> KeyPair {
        KeyPair::from_private(PrivateKey::from_bytes([i; 32]))
    }

    fn cfg(psk: u8, peers: &[(&str, u8)]) -> Secure {
        Secure {
            psk: PresharedKey::from_bytes([psk; 32]),
            peers: peers
                .iter()
                .map(|(a, k)| (a.parse().unwrap(), *pair(*k).public()))
                .collect(),
            ports: Default::default(),
        }
    }

    fn ids(net: &SecureNet) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = net
            .peers
            .read()
            .unwrap()
            .values()
            .map(|p| (p.addr.to_string(), p.slot))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn update_keeps_unchanged_peers_and_remakes_the_rest() {
        let sec = SecureShared::new(Some(pair(1)), Limits::default(), Suite::default(), 51820);
        let net = SecureNet::new();
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        let w = sec.update(
            7,
            &net,
            &cfg(9, &[("192.0.2.1", 1), ("192.0.2.2", 2), ("192.0.2.3", 3)]),
            me,
            None,
        );
        assert!(w.is_empty(), "{w:?}");
        let first = ids(&net);
        assert_eq!(first.len(), 2, "this host itself is no peer");
        assert_eq!(sec.slots.read().unwrap().len(), 2);
        let slot2 = first[0].1;
        assert_eq!(sec.by_slot(slot2).unwrap().addr.to_string(), "192.0.2.2");

        // Same keys and PSK, one peer gone, one new: the kept peer keeps its slot (its session).
        sec.update(
            7,
            &net,
            &cfg(9, &[("192.0.2.2", 2), ("192.0.2.4", 4)]),
            me,
            None,
        );
        let second = ids(&net);
        assert_eq!(second[0], first[0]);
        assert_eq!(second[1].0, "192.0.2.4");
        assert_eq!(
            sec.slots.read().unwrap().len(),
            2,
            "the departed peer's slot is freed"
        );

        // A new key for a peer remakes it; a new PSK remakes all.
        sec.update(
            7,
            &net,
            &cfg(9, &[("192.0.2.2", 5), ("192.0.2.4", 4)]),
            me,
            None,
        );
        let third = ids(&net);
        assert_ne!(third[0].1, second[0].1);
        assert_eq!(third[1], second[1]);
        sec.update(
            7,
            &net,
            &cfg(8, &[("192.0.2.2", 5), ("192.0.2.4", 4)]),
            me,
            None,
        );
        let fourth = ids(&net);
        assert!(fourth.iter().zip(&third).all(|(a, b)| a.1 != b.1));

        // A peer that names its own secure port gets its messages there; a changed port remakes
        // that peer only.
        let dst = |net: &SecureNet, a: &str| {
            let a: IpAddr = a.parse().unwrap();
            net.peers.read().unwrap()[&a]
                .dst
                .as_socket()
                .unwrap()
                .port()
        };
        assert_eq!(dst(&net, "192.0.2.2"), 51820);
        let mut c = cfg(8, &[("192.0.2.2", 5), ("192.0.2.4", 4)]);
        c.ports.insert("192.0.2.2".parse().unwrap(), 51999);
        sec.update(7, &net, &c, me, None);
        let fifth = ids(&net);
        assert_eq!(
            (dst(&net, "192.0.2.2"), dst(&net, "192.0.2.4")),
            (51999, 51820)
        );
        assert_ne!(fifth[0].1, fourth[0].1);
        assert_eq!(fifth[1], fourth[1]);

        // Another address family, or our own public key, are left out with a warning.
        let w = sec.update(
            7,
            &net,
            &cfg(8, &[("2001:db8::2", 2), ("192.0.2.6", 1)]),
            me,
            None,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(ids(&net).is_empty());
        assert!(sec.slots.read().unwrap().is_empty());

        sec.update(7, &net, &cfg(8, &[("192.0.2.2", 2)]), me, None);
        sec.remove(&net);
        assert!(sec.slots.read().unwrap().is_empty());
    }

    #[test]
    fn no_key_pair_no_peers() {
        let sec = SecureShared::new(None, Limits::default(), Suite::default(), 51820);
        let net = SecureNet::new();
        let w = sec.update(
            7,
            &net,
            &cfg(9, &[("192.0.2.2", 2)]),
            "192.0.2.1".parse().unwrap(),
            None,
        );
        assert_eq!(w.len(), 1);
        assert!(ids(&net).is_empty());
    }
}
