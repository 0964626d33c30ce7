//! The engine: its sockets and workers, the table of networks, and the calls that change it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Release};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{EngineConfig, NetConfig};
use crate::net::{Fwd, Net};
use crate::rx::RxWorker;
use crate::stats::{EngineStats, GlobalCounters, NetCounters, NetStats};
use crate::sys::EventFd;
use crate::tx::TxWorker;
use crate::udp::UdpSock;
use crate::{tap, Error, Result};

/// State every worker sees.
pub(crate) struct Shared {
    pub nets: RwLock<HashMap<u32, Arc<Net>>>,
    pub global: GlobalCounters,
    pub stop: AtomicBool,
    /// Signalled once, at shutdown, to wake the socket workers.
    pub wake: EventFd,
}

/// A job run on the engine's home thread, which stays in the network namespace the engine
/// was started in, so TAP devices are created there whichever thread calls `set_network`.
type Job = Box<dyn FnOnce() + Send>;

/// The userspace datapath of one host: one UDP socket (per worker) shared by all networks,
/// one TAP device per network.
///
/// Every method takes `&self`; an `Engine` is `Send + Sync` and is meant to be shared
/// (`Arc<Engine>`) between the agent's tasks. Methods block briefly (creating a TAP, joining
/// a network's workers): from async code call them in `spawn_blocking`. Dropping the engine
/// stops every worker and removes every TAP device.
pub struct Engine {
    cfg: EngineConfig,
    local: SocketAddr,
    shared: Arc<Shared>,
    socks: Vec<Arc<UdpSock>>,
    /// Sending sockets, one per worker, each on its own ephemeral source port: RFC 7348 asks
    /// for source-port entropy, and a receiver (kernel or engine, both SO_REUSEPORT) then
    /// spreads flows from different TAP queues over its workers.
    send_socks: Vec<Arc<UdpSock>>,
    home: Mutex<Option<mpsc::Sender<Job>>>,
    home_thread: Option<JoinHandle<()>>,
    rx_threads: Vec<JoinHandle<()>>,
    /// Serialises `set_network`/`remove_network`; holds each network's TAP workers.
    control: Mutex<HashMap<u32, Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("local", &self.local)
            .field("workers", &self.socks.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Binds the UDP socket(s) on `underlay:port` in the calling thread's network namespace
    /// and starts the socket workers. TAP devices of later `set_network` calls are created in
    /// this same namespace, whichever thread makes them.
    pub fn start(cfg: EngineConfig) -> Result<Engine> {
        let workers = cfg.workers.max(1);
        let addr = SocketAddr::new(cfg.underlay, cfg.port);
        let mut socks = Vec::with_capacity(workers);
        for _ in 0..workers {
            let s = UdpSock::bind(addr, workers > 1, cfg.udp_gso)
                .map_err(|e| Error::io(format!("binding udp {addr}"), e))?;
            socks.push(Arc::new(s));
        }
        let mut send_socks = Vec::with_capacity(workers);
        for _ in 0..workers {
            let from = SocketAddr::new(cfg.underlay, 0);
            let s = UdpSock::bind(from, false, cfg.udp_gso)
                .map_err(|e| Error::io(format!("binding udp {from}"), e))?;
            send_socks.push(Arc::new(s));
        }
        let local = socks[0]
            .local_addr()
            .map_err(|e| Error::io("reading the socket's address", e))?;
        let shared = Arc::new(Shared {
            nets: RwLock::new(HashMap::new()),
            global: GlobalCounters::default(),
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

        let mut engine = Engine {
            cfg: EngineConfig { workers, ..cfg },
            local,
            shared: shared.clone(),
            socks: socks.clone(),
            send_socks,
            home: Mutex::new(Some(tx)),
            home_thread: Some(home_thread),
            rx_threads: Vec::new(),
            control: Mutex::new(HashMap::new()),
        };
        for (i, s) in socks.into_iter().enumerate() {
            let w = RxWorker::new(shared.clone(), s, i);
            let h = std::thread::Builder::new()
                .name(format!("weft-rx{i}"))
                .spawn(move || w.run())
                .map_err(|e| Error::io("spawning a socket worker", e))?;
            engine.rx_threads.push(h);
        }
        tracing::info!(%local, workers, offload = cfg.offload, "userspace engine started");
        Ok(engine)
    }

    /// The address the engine's socket is bound to (the port is the real one when 0 was
    /// asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
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
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let (fwd, skipped) = Fwd::build(&net, self.cfg.underlay, self.cfg.port);
        if !skipped.is_empty() {
            tracing::warn!(vni = net.vni, ?skipped, underlay = %self.cfg.underlay,
                "peers of the other address family than the underlay are unreachable; left out");
        }
        let existing = self.read_nets().get(&net.vni).cloned();
        if let Some(cur) = existing {
            if cur.tap == net.tap && cur.encap == net.encap {
                *cur.fwd.write().unwrap_or_else(|p| p.into_inner()) = fwd;
                cur.mtu.store(net.mtu, Release);
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
        let mut vxlan_hdr = [0u8; weft_wire::vxlan::HEADER_LEN];
        weft_wire::vxlan::write_header(&mut vxlan_hdr, net.vni);
        let n = Arc::new(Net {
            vni: net.vni,
            tap: net.tap.clone(),
            encap: net.encap,
            queues: tap.queues,
            vnet: offload,
            mtu: AtomicU32::new(net.mtu),
            fwd: RwLock::new(fwd),
            counters: NetCounters::default(),
            stop: AtomicBool::new(false),
            wake: EventFd::new().map_err(|e| Error::io("creating an eventfd", e))?,
            vxlan_hdr,
        });
        let mut threads = Vec::with_capacity(queues);
        for q in 0..n.queues.len() {
            let sock = self.send_socks[q % self.send_socks.len()].clone();
            let w = TxWorker::new(n.clone(), q, sock);
            match std::thread::Builder::new()
                .name(format!("weft-tx{}-{q}", net.vni))
                .spawn(move || w.run())
            {
                Ok(h) => threads.push(h),
                Err(e) => {
                    stop_net(&n, threads);
                    return Err(Error::io("spawning a tap worker", e));
                }
            }
        }
        self.shared
            .nets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(net.vni, n);
        control.insert(net.vni, threads);
        tracing::info!(vni = net.vni, tap = %net.tap, mtu = net.mtu, "engine network added");
        Ok(())
    }

    /// Stops serving network `vni` and deletes its TAP device; returns whether it existed.
    /// When this returns the device is gone, so its name may be reused at once.
    pub fn remove_network(&self, vni: u32) -> Result<bool> {
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.remove_locked(&mut control, vni))
    }

    fn remove_locked(&self, control: &mut HashMap<u32, Vec<JoinHandle<()>>>, vni: u32) -> bool {
        let Some(net) = self
            .shared
            .nets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&vni)
        else {
            return false;
        };
        // The socket workers only borrow networks under the read lock, released by now; the
        // TAP workers hold the other references and end here.
        stop_net(&net, control.remove(&vni).unwrap_or_default());
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
            networks,
        }
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

impl Drop for Engine {
    fn drop(&mut self) {
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        for vni in self.networks() {
            self.remove_locked(&mut control, vni);
        }
        drop(control);
        self.shared.stop.store(true, Release);
        self.shared.wake.signal();
        for t in self.rx_threads.drain(..) {
            let _ = t.join();
        }
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
