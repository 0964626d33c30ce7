//! Forwarding a query weft does not own to the upstream resolvers, from the agent's own network
//! namespace (the host's), over the transport the container used.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one upstream gets before the next is tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The first upstream's response to `query`, trying each in order; None when none answered.
pub async fn udp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        match timeout(UPSTREAM_TIMEOUT, udp_one(*up, query)).await {
            Ok(Ok(r)) => return Some(r),
            Ok(Err(e)) => tracing::debug!(upstream = %up, "forwarding over UDP: {e}"),
            Err(_) => tracing::debug!(upstream = %up, "forwarding over UDP: timed out"),
        }
    }
    None
}

async fn udp_one(up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if up.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    // A fresh socket (random port) per query, connected: only the upstream's datagrams arrive.
    let sock = UdpSocket::bind(local).await?;
    sock.connect(up).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Same id, a response: anything else is stray and ignored.
        if n >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// As [`udp`], over TCP (length-prefixed messages).
pub async fn tcp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        match timeout(UPSTREAM_TIMEOUT, tcp_one(*up, query)).await {
            Ok(Ok(r)) => return Some(r),
            Ok(Err(e)) => tracing::debug!(upstream = %up, "forwarding over TCP: {e}"),
            Err(_) => tracing::debug!(upstream = %up, "forwarding over TCP: timed out"),
        }
    }
    None
}

async fn tcp_one(up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(up).await?;
    write_framed(&mut s, query).await?;
    read_framed(&mut s)
        .await?
        .ok_or_else(|| std::io::Error::other("upstream closed the connection"))
}

/// Reads one length-prefixed DNS message; None at a clean end of stream.
pub async fn read_framed<S: AsyncReadExt + Unpin>(s: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).await?;
    Ok(Some(msg))
}

pub async fn write_framed<S: AsyncWriteExt + Unpin>(s: &mut S, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).await
}
