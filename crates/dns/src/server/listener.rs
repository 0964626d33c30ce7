//! One container's resolver: a UDP socket and a TCP listener on the resolver address, opened inside
//! the container's network namespace (so the socket a query arrives on names the asker), served by
//! tasks of the agent's runtime. Dropping the [`Listener`] aborts the tasks, which closes every
//! socket: an open socket would keep the namespace alive after the container is gone.

use std::net::{SocketAddr, SocketAddrV4};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use weft_netlink::{Netns, NetnsTarget};

use super::{forward, Shared};
use crate::answer::{Outcome, Transport};

/// At most this many queries of one container wait on upstream at a time (UDP), and at most
/// this many TCP connections are open; more are dropped and counted.
const MAX_PENDING: usize = 64;
/// A TCP connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Larger queries are not DNS queries a stub sends; they arrive cut and parse as malformed.
const MAX_UDP_QUERY: usize = 4096;

pub struct Listener {
    /// The inode of the namespace the sockets are in: when the container's path names another
    /// (or none), these sockets are closed.
    pub ns_ino: u64,
    /// The networks the container is on (what it may resolve), updated in place.
    pub networks: Arc<RwLock<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The inode of the namespace at `path` now (None: gone).
pub fn ns_ino_at(path: &str) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Listener {
    /// Opens the resolver sockets inside the namespace at `path` and starts serving them.
    pub async fn open(
        path: &str,
        addr: SocketAddrV4,
        networks: Vec<String>,
        shared: Arc<Shared>,
    ) -> Result<Listener> {
        let target = NetnsTarget::Path(path.into());
        let p = path.to_string();
        // setns on a dedicated thread (never a runtime worker); only the sockets outlive it.
        let (ns_ino, udp, tcp) = tokio::task::spawn_blocking(move || -> Result<_> {
            let ns = Netns::open(&target)?;
            let ino = ns.id()?;
            let socks = weft_netlink::in_netns(&ns, || bind(addr))?
                .with_context(|| format!("binding {addr} in {p}"))?;
            Ok((ino, socks.0, socks.1))
        })
        .await
        .context("opening resolver sockets")??;
        let udp = Arc::new(UdpSocket::from_std(udp)?);
        let tcp = TcpListener::from_std(tcp)?;
        let networks = Arc::new(RwLock::new(networks));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, shared.clone(), networks.clone())),
            tokio::spawn(serve_tcp(tcp, shared, networks.clone())),
        ];
        Ok(Listener {
            ns_ino,
            networks,
            tasks,
        })
    }
}

/// Binds the UDP socket and TCP listener in the calling thread's namespace. FREEBIND: the address
/// is taken even while the container's loopback is still down (attach brings it up).
fn bind(addr: SocketAddrV4) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let sa: SocketAddr = addr.into();
    let u = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    u.set_freebind_v4(true)?;
    u.set_nonblocking(true)?;
    u.bind(&sa.into())?;
    let t = Socket::new(Domain::IPV4, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    t.set_freebind_v4(true)?;
    t.set_reuse_address(true)?;
    t.set_nonblocking(true)?;
    t.bind(&sa.into())?;
    t.listen(64)?;
    Ok((u.into(), t.into()))
}

async fn serve_udp(sock: Arc<UdpSocket>, shared: Arc<Shared>, nets: Arc<RwLock<Vec<String>>>) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    // Owned here, so that aborting this task aborts them too (and their socket clones go).
    let mut pending = JoinSet::new();
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("resolver UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while pending.try_join_next().is_some() {}
        let query = &buf[..n];
        match shared.handle(query, Transport::Udp, &nets) {
            Outcome::Reply { bytes, .. } => {
                let _ = sock.send_to(&bytes, peer).await;
            }
            Outcome::Drop => {}
            Outcome::Forward if pending.len() >= MAX_PENDING => shared.counters.overloaded(),
            Outcome::Forward => {
                let (sock, shared, query) = (sock.clone(), shared.clone(), query.to_vec());
                pending.spawn(async move {
                    let reply = shared.forward(&query, Transport::Udp).await;
                    if let Some(r) = reply {
                        let _ = sock.send_to(&r, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(l: TcpListener, shared: Arc<Shared>, nets: Arc<RwLock<Vec<String>>>) {
    let mut conns = JoinSet::new();
    loop {
        let s = match l.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("resolver TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= MAX_PENDING {
            shared.counters.overloaded();
            continue;
        }
        conns.spawn(serve_conn(s, shared.clone(), nets.clone()));
    }
}

async fn serve_conn(mut s: TcpStream, shared: Arc<Shared>, nets: Arc<RwLock<Vec<String>>>) {
    loop {
        let query = match tokio::time::timeout(TCP_IDLE, forward::read_framed(&mut s)).await {
            Ok(Ok(Some(q))) => q,
            _ => return,
        };
        let reply = match shared.handle(&query, Transport::Tcp, &nets) {
            Outcome::Reply { bytes, .. } => Some(bytes),
            Outcome::Drop => return,
            Outcome::Forward => shared.forward(&query, Transport::Tcp).await,
        };
        let Some(r) = reply else { return };
        if forward::write_framed(&mut s, &r).await.is_err() {
            return;
        }
    }
}
