//! The engine: its sockets and workers, the table of networks, and the calls that change it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Release};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Encap, EngineConfig, NetConfig};
use crate::net::{Fwd, Net};
use crate::rx::RxWorker;
use crate::secure::{SecureNet, SecureShared};
use crate::sock::WireSock;
use crate::stats::{EngineStats, GlobalCounters, NetCounters, NetStats, PeerStats};
use crate::sys::EventFd;
use crate::tx::TxWorker;
use crate::{tap, Error, Result};

/// State every worker sees.
pub(crate) struct Shared {
    pub nets: RwLock<HashMap<u32, Arc<Net>>>,
    pub global: GlobalCounters,
    /// The encrypted transport: keys, peers by slot, counters.
    pub secure: SecureShared,
    pub stop: AtomicBool,
    /// Signalled once, at shutdown, to wake the socket workers.
    pub wake: EventFd,
}

/// A job run on the engine's home thread, which stays in the network namespace the engine
/// was started in, so TAP devices are created there whichever thread calls `set_network`.
type Job = Box<dyn FnOnce() + Send>;

/// Which of the engine's transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Plain VXLAN on [`EngineConfig::port`].
    Vxlan,
    /// The encrypted transport on [`EngineConfig::secure_port`].
    Secure,
    /// Plain Ethernet over GRE on a raw IP socket.
    Gre,
}

impl Transport {
    pub(crate) fn of(encap: &Encap) -> Transport {
        match encap {
            Encap::Vxlan => Transport::Vxlan,
            Encap::Encrypted(_) => Transport::Secure,
            Encap::Gre => Transport::Gre,
        }
    }
}

/// One transport's sockets, bound when the first network that uses it is set.
struct Bound {
    local: SocketAddr,
    /// Listening sockets (SO_REUSEPORT), one per worker, each served by a receive thread.
    socks: Vec<Arc<WireSock>>,
    /// Sending sockets, one per worker, each on its own ephemeral source port: RFC 7348 asks
    /// for source-port entropy, and a receiver (kernel or engine, both SO_REUSEPORT) then
    /// spreads flows from different TAP queues over its workers. The encrypted transport does
    /// the same for the same reason.
    send_socks: Vec<Arc<WireSock>>,
    threads: Vec<JoinHandle<()>>,
}

/// What `set_network`/`remove_network` serialise on.
#[derive(Default)]
struct Control {
    /// Each network's TAP workers.
    nets: HashMap<u32, Vec<JoinHandle<()>>>,
    vxlan: Option<Bound>,
    secure: Option<Bound>,
    gre: Option<Bound>,
}

impl Control {
    fn bound(&mut self, kind: Transport) -> &mut Option<Bound> {
        match kind {
            Transport::Vxlan => &mut self.vxlan,
            Transport::Secure => &mut self.secure,
            Transport::Gre => &mut self.gre,
        }
    }
}

/// The userspace datapath of one host: UDP sockets shared by all networks (VXLAN for plain
/// ones, the encrypted transport for encrypted ones, each bound on first use), one TAP device
/// per network.
///
/// Every method takes `&self`; an `Engine` is `Send + Sync` and is meant to be shared
/// (`Arc<Engine>`) between the agent's tasks. Methods block briefly (creating a TAP, joining
/// a network's workers): from async code call them in `spawn_blocking`. Dropping the engine
/// stops every worker and removes every TAP device.
pub struct Engine {
    cfg: EngineConfig,
    shared: Arc<Shared>,
    home: Mutex<Option<mpsc::Sender<Job>>>,
    home_thread: Option<JoinHandle<()>>,
    control: Mutex<Control>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("underlay", &self.cfg.underlay)
            .field("workers", &self.cfg.workers)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the engine in the calling thread's network namespace: its sockets (bound when
    /// the first network of their kind is set) and TAP devices live there, whichever thread
    /// later calls `set_network`. Binds nothing yet.
    pub fn start(cfg: EngineConfig) -> Result<Engine> {
        let workers = cfg.workers.max(1);
        let shared = Arc::new(Shared {
            nets: RwLock::new(HashMap::new()),
            global: GlobalCounters::default(),
            secure: SecureShared::new(cfg.keys.clone(), cfg.limits, cfg.suite, cfg.secure_port),
            stop: AtomicBool::new(false),
            wake: EventFd::new().map_err(|e| Error::io("creating an eventfd", e))?,
        });

        let (tx, rx) = mpsc::channel::<Job>();
        let home_thread = std::thread::Builder::new()
            .name("weft-engine".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|e| Error::io("spawning the engine thread", e))?;

        tracing::info!(underlay = %cfg.underlay, workers, offload = cfg.offload,
            encryption = cfg.keys.is_some(), "userspace engine started");
        Ok(Engine {
            cfg: EngineConfig { workers, ..cfg },
            shared,
            home: Mutex::new(Some(tx)),
            home_thread: Some(home_thread),
            control: Mutex::new(Control::default()),
        })
    }

    /// The address the VXLAN sockets are bound to, once a plain network made the engine bind
    /// them (the port is the real one when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock_control().vxlan.as_ref().map(|b| b.local)
    }

    /// The address the encrypted transport's sockets are bound to, once an encrypted network
    /// made the engine bind them.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.lock_control().secure.as_ref().map(|b| b.local)
    }

    /// The address the raw GRE socket is bound to (port 0), once a GRE network made the engine
    /// open it.
    pub fn gre_addr(&self) -> Option<SocketAddr> {
        self.lock_control().gre.as_ref().map(|b| b.local)
    }

    fn lock_control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds `kind`'s sockets (on the home thread, in the engine's namespace) and starts their
    /// receive workers (and, for the encrypted transport, the timer thread), unless done.
    fn bind(&self, control: &mut Control, kind: Transport) -> Result<()> {
        let slot = control.bound(kind);
        if slot.is_some() {
            return Ok(());
        }
        let (workers, gso, underlay) = (self.cfg.workers, self.cfg.udp_gso, self.cfg.underlay);
        let (socks, send_socks) = match kind {
            Transport::Gre => self.on_home(move || bind_gre(underlay))??,
            _ => {
                let port = self.port(kind);
                self.on_home(move || bind_socks(underlay, port, workers, gso))??
            }
        };
        let local = socks[0]
            .local_addr()
            .map_err(|e| Error::io("reading the socket's address", e))?;
        let mut b = Bound {
            local,
            socks: socks.clone(),
            send_socks,
            threads: Vec::new(),
        };
        let spawned = (|| -> std::io::Result<()> {
            for (i, s) in socks.iter().enumerate() {
                let w = RxWorker::new(self.shared.clone(), s.clone(), i, kind);
                let name = match kind {
                    Transport::Vxlan => format!("weft-rx{i}"),
                    Transport::Secure => format!("weft-srx{i}"),
                    Transport::Gre => format!("weft-grx{i}"),
                };
                b.threads.push(
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || w.run())?,
                );
            }
            if kind == Transport::Secure {
                let (shared, sock) = (self.shared.clone(), socks[0].clone());
                b.threads.push(
                    std::thread::Builder::new()
                        .name("weft-timers".into())
                        .spawn(move || crate::secure::run_timers(shared, sock))?,
                );
            }
            Ok(())
        })();
        if let Err(e) = spawned {
            // Workers already started end with the engine (they see `stop`); keep them.
            *slot = Some(b);
            return Err(Error::io("spawning a socket worker", e));
        }
        tracing::info!(%local, ?kind, "engine sockets bound");
        *slot = Some(b);
        Ok(())
    }

    /// Creates network `net.vni` with its TAP device, or updates it in place: new FDB, flood
    /// and neighbour entries and MTU take effect atomically for the next frame, without
    /// touching the TAP or its traffic. A different TAP name or encapsulation replaces the
    /// device (remove + create).
    ///
    /// The TAP is created down and not attached: the caller puts it on the network's bridge
    /// and sets it up.
    pub fn set_network(&self, net: NetConfig) -> Result<()> {
        validate(&net)?;
        let secure_cfg = match &net.encap {
            Encap::Vxlan | Encap::Gre => None,
            Encap::Encrypted(s) => Some(s),
        };
        if secure_cfg.is_some() && self.cfg.keys.is_none() {
            return Err(Error::Invalid(format!(
                "network vni {} is encrypted and the engine has no host key pair",
                net.vni
            )));
        }
        let kind = Transport::of(&net.encap);
        let mut control = self.lock_control();
        self.bind(&mut control, kind)?;
        let bound = control
            .bound(kind)
            .as_ref()
            .ok_or_else(|| Error::Invalid("sockets not bound".into()))?;
        let reply_sock = bound.socks[0].clone();
        let send_socks = bound.send_socks.clone();
        let (fwd, skipped) = Fwd::build(&net, self.cfg.underlay, self.port(kind));
        if !skipped.is_empty() {
            tracing::warn!(vni = net.vni, ?skipped, underlay = %self.cfg.underlay,
                "peers of the other address family than the underlay are unreachable; left out");
        }
        let existing = self.read_nets().get(&net.vni).cloned();
        if let Some(cur) = existing {
            if cur.tap == net.tap && cur.transport == kind {
                *cur.fwd.write().unwrap_or_else(|p| p.into_inner()) = fwd;
                cur.mtu.store(net.mtu, Release);
                if let (Some(sn), Some(sc)) = (&cur.secure, secure_cfg) {
                    self.update_peers(net.vni, sn, sc, &reply_sock);
                }
                return Ok(());
            }
            drop(cur);
            self.remove_locked(&mut control, net.vni);
        }
        if let Some(other) = self.read_nets().values().find(|n| n.tap == net.tap) {
            return Err(Error::Invalid(format!(
                "tap {} is already used by network vni {}",
                net.tap, other.vni
            )));
        }

        let (name, queues, offload) = (net.tap.clone(), self.cfg.workers, self.cfg.offload);
        let tap = self
            .on_home(move || tap::create(&name, queues, offload))?
            .map_err(|e| Error::io(format!("creating tap {}", net.tap), e))?;
        let mut prefix = [0u8; crate::net::PREFIX_LEN];
        match kind {
            Transport::Gre => {
                weft_wire::gre::write_header(&mut prefix, net.vni);
            }
            _ => weft_wire::vxlan::write_header(&mut prefix, net.vni),
        }
        let n = Arc::new(Net {
            vni: net.vni,
            tap: net.tap.clone(),
            secure: secure_cfg.map(|_| SecureNet::new()),
            queues: tap.queues,
            vnet: offload,
            mtu: AtomicU32::new(net.mtu),
            fwd: RwLock::new(fwd),
            counters: NetCounters::default(),
            stop: AtomicBool::new(false),
            wake: EventFd::new().map_err(|e| Error::io("creating an eventfd", e))?,
            transport: kind,
            prefix,
        });
        if let (Some(sn), Some(sc)) = (&n.secure, secure_cfg) {
            self.update_peers(net.vni, sn, sc, &reply_sock);
        }
        let mut threads = Vec::with_capacity(queues);
        for q in 0..n.queues.len() {
            let sock = send_socks[q % send_socks.len()].clone();
            let w = TxWorker::new(n.clone(), q, sock);
            match std::thread::Builder::new()
                .name(format!("weft-tx{}-{q}", net.vni))
                .spawn(move || w.run())
            {
                Ok(h) => threads.push(h),
                Err(e) => {
                    stop_net(&n, threads);
                    if let Some(sn) = &n.secure {
                        self.shared.secure.remove(sn);
                    }
                    return Err(Error::io("spawning a tap worker", e));
                }
            }
        }
        self.shared
            .nets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(net.vni, n);
        control.nets.insert(net.vni, threads);
        tracing::info!(vni = net.vni, tap = %net.tap, mtu = net.mtu,
            transport = ?kind, "engine network added");
        Ok(())
    }

    /// The port frames of `kind` go to (0 for GRE, which has none).
    fn port(&self, kind: Transport) -> u16 {
        match kind {
            Transport::Vxlan => self.cfg.port,
            Transport::Secure => self.cfg.secure_port,
            Transport::Gre => 0,
        }
    }

    fn update_peers(&self, vni: u32, sn: &SecureNet, sc: &crate::config::Secure, sock: &WireSock) {
        for w in self
            .shared
            .secure
            .update(vni, sn, sc, self.cfg.underlay, Some(sock))
        {
            tracing::warn!(vni, "{w}");
        }
    }

    /// Stops serving network `vni` and deletes its TAP device; returns whether it existed.
    /// When this returns the device is gone, so its name may be reused at once.
    pub fn remove_network(&self, vni: u32) -> Result<bool> {
        let mut control = self.lock_control();
        Ok(self.remove_locked(&mut control, vni))
    }

    fn remove_locked(&self, control: &mut Control, vni: u32) -> bool {
        let Some(net) = self
            .shared
            .nets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&vni)
        else {
            return false;
        };
        if let Some(sn) = &net.secure {
            self.shared.secure.remove(sn);
        }
        // The socket workers only borrow networks under the read lock, released by now; the
        // TAP workers hold the other references and end here.
        stop_net(&net, control.nets.remove(&vni).unwrap_or_default());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&net) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let tap = net.tap.clone();
        drop(net); // closes the queues: the kernel deletes the device
        tracing::info!(vni, %tap, "engine network removed");
        true
    }

    /// VNIs served now, sorted.
    pub fn networks(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.read_nets().keys().copied().collect();
        v.sort();
        v
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> EngineStats {
        let nets = self.read_nets();
        let mut networks: Vec<NetStats> = nets
            .values()
            .map(|n| NetStats {
                vni: n.vni,
                tap: n.tap.clone(),
                tx: n.counters.tx.snapshot(),
                rx: n.counters.rx.snapshot(),
            })
            .collect();
        networks.sort_by_key(|n| n.vni);
        EngineStats {
            global: self.shared.global.snapshot(),
            secure: self.shared.secure.counters.snapshot(),
            networks,
            peers: self.peer_states(),
        }
    }

    /// The state of every encrypted session's peer (handshake, counters), by VNI and address.
    pub fn peer_states(&self) -> Vec<PeerStats> {
        self.shared.secure.peer_stats()
    }

    fn read_nets(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u32, Arc<Net>>> {
        self.shared.nets.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the home thread (in the engine's network namespace) and returns its result.
    fn on_home<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.home
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .ok_or_else(|| Error::Invalid("engine is shutting down".into()))?
            .send(job)
            .map_err(|_| Error::Invalid("engine thread is gone".into()))?;
        rx.recv()
            .map_err(|_| Error::Invalid("engine thread failed".into()))
    }
}

fn stop_net(net: &Net, threads: Vec<JoinHandle<()>>) {
    net.stop.store(true, Release);
    net.wake.signal();
    for t in threads {
        let _ = t.join();
    }
}

/// `workers` listening sockets on `underlay:port` (SO_REUSEPORT when several) and as many
/// sending sockets on ephemeral ports.
#[allow(clippy::type_complexity)]
fn bind_socks(
    underlay: IpAddr,
    port: u16,
    workers: usize,
    gso: bool,
) -> Result<(Vec<Arc<WireSock>>, Vec<Arc<WireSock>>)> {
    let addr = SocketAddr::new(underlay, port);
    let mut socks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let s = WireSock::bind(addr, workers > 1, gso)
            .map_err(|e| Error::io(format!("binding udp {addr}"), e))?;
        socks.push(Arc::new(s));
    }
    let mut send_socks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let from = SocketAddr::new(underlay, 0);
        let s = WireSock::bind(from, false, gso)
            .map_err(|e| Error::io(format!("binding udp {from}"), e))?;
        send_socks.push(Arc::new(s));
    }
    Ok((socks, send_socks))
}

/// The raw GRE socket: one for receiving and every sender (each raw socket of a protocol gets a
/// copy of every packet, so more would only multiply the work).
#[allow(clippy::type_complexity)]
fn bind_gre(underlay: IpAddr) -> Result<(Vec<Arc<WireSock>>, Vec<Arc<WireSock>>)> {
    let s = WireSock::bind_gre(underlay)
        .map_err(|e| Error::io(format!("opening a raw GRE socket on {underlay}"), e))?;
    let s = Arc::new(s);
    Ok((vec![s.clone()], vec![s]))
}

impl Drop for Engine {
    fn drop(&mut self) {
        let mut control = self.lock_control();
        for vni in self.networks() {
            self.remove_locked(&mut control, vni);
        }
        self.shared.stop.store(true, Release);
        self.shared.wake.signal();
        for b in [
            control.vxlan.take(),
            control.secure.take(),
            control.gre.take(),
        ]
        .into_iter()
        .flatten()
        {
            for t in b.threads {
                let _ = t.join();
            }
        }
        drop(control);
        self.home.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.home_thread.take() {
            let _ = t.join();
        }
    }
}

fn validate(net: &NetConfig) -> Result<()> {
    let bad = |m: String| Err(Error::Invalid(m));
    if net.vni > weft_wire::vxlan::MAX_VNI {
        return bad(format!("vni {} does not fit 24 bits", net.vni));
    }
    let t = &net.tap;
    if t.is_empty()
        || t.len() > 15
        || t.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        return bad(format!("invalid tap name {t:?}"));
    }
    if !(68..=65000).contains(&net.mtu) {
        return bad(format!("mtu {} out of range 68..=65000", net.mtu));
    }
    if net.neigh.iter().any(|(ip, _)| is_group(ip)) {
        return bad("a neighbour entry for a multicast or unspecified address".into());
    }
    Ok(())
}

fn is_group(ip: &IpAddr) -> bool {
    ip.is_multicast() || ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::Engine>();
    }
}
