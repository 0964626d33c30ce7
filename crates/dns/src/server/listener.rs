//! One container's resolver: a UDP socket and a TCP listener on the resolver address, opened inside
//! the container's network namespace (so the socket a query arrives on names the asker), served by
//! tasks of the agent's runtime. Dropping the [`Listener`] aborts the tasks, which closes every
//! socket: an open socket would keep the namespace alive after the container is gone.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
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
use crate::redirect;

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
            let (udp, tcp, port) = weft_netlink::in_netns(&ns, || bind(*addr.ip()))?
                .with_context(|| format!("binding {} in {p}", addr.ip()))?;
            // nft runs in the container's namespace (a child inherits it from this thread).
            let script = redirect::install(*addr.ip(), port);
            weft_netlink::in_netns(&ns, || nft(&script))?
                .with_context(|| format!("redirecting {addr} in {p}"))?;
            Ok((ino, udp, tcp))
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

/// Binds the UDP socket and TCP listener on one free port of `ip` in the calling thread's
/// namespace. FREEBIND: the address is taken even while the container's loopback is still down
/// (attach brings it up).
fn bind(ip: Ipv4Addr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener, u16)> {
    let mut last = None;
    // The kernel picks the UDP port; TCP takes the same number, which is almost always free.
    for _ in 0..16 {
        let u = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
        u.set_freebind_v4(true)?;
        u.set_nonblocking(true)?;
        u.bind(&SocketAddr::from((ip, 0)).into())?;
        let port = u
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| std::io::Error::other("no port"))?;
        let t = Socket::new(Domain::IPV4, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
        t.set_freebind_v4(true)?;
        t.set_reuse_address(true)?;
        t.set_nonblocking(true)?;
        match t.bind(&SocketAddr::from((ip, port)).into()) {
            Ok(()) => {
                t.listen(64)?;
                return Ok((u.into(), t.into(), port));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// Runs an nft script in the calling thread's namespace.
fn nft(script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (Debian: apt-get install nftables)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("failed")
        );
    }
    Ok(())
}

/// Removes the redirect from the namespace at `path` if it is still the one with inode `ino` (a
/// container that left its last network but lives on). Blocking: call from a blocking thread.
pub fn remove_redirect(path: &str, ino: u64) -> Result<()> {
    let ns = Netns::open(&NetnsTarget::Path(path.into()))?;
    if ns.id()? != ino {
        return Ok(());
    }
    weft_netlink::in_netns(&ns, || nft(&redirect::remove()))?
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
