//! TCP, UDP and broadcast traffic between containers, from sockets opened inside their namespaces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `f` on a new thread inside the named network namespace, or the one at a path such as
/// `/proc/PID/ns/net` (sockets keep it).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = if ns.starts_with('/') {
        ns.to_string()
    } else {
        format!("/run/netns/{ns}")
    };
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// A TCP server in `ns` on `bind` that answers each caller with the address it saw, for `for_`;
/// returns every caller's address.
pub fn peer_echo(ns: &str, bind: &str, for_: Duration) -> JoinHandle<Vec<SocketAddr>> {
    let bind: SocketAddr = bind.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = in_netns(ns, move || {
        let l = TcpListener::bind(bind).expect("bind");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let mut seen = Vec::new();
        let end = Instant::now() + for_;
        while Instant::now() < end {
            match l.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.write_all(peer.to_string().as_bytes());
                    seen.push(peer);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        seen
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("listening");
    h
}

/// Connects from `ns` to `to` (`ADDR:PORT`, `[ADDR6]:PORT`) and returns what the server said
/// (None: no connection).
pub fn call(ns: &str, to: &str) -> Option<String> {
    let to: SocketAddr = to.parse().unwrap();
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).ok()?;
        Some(got)
    })
    .join()
    .unwrap()
}

/// One UDP datagram from `client_ns` to `to`, echoed by a server on `bind` in `server_ns`.
/// Bind the server to the address the client targets where its namespace has several: a
/// wildcard-bound socket answers from whichever address routing picks, which a NAT on the way
/// cannot match to the flow.
pub fn udp_once(server_ns: &str, bind: &str, client_ns: &str, to: &str) -> bool {
    let bind: SocketAddr = bind.parse().unwrap();
    let to: SocketAddr = to.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_netns(server_ns, move || {
        let s = UdpSocket::bind(bind).expect("udp bind");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("udp server bound");
    let back = in_netns(client_ns, move || {
        let s = UdpSocket::bind(addrs(&to.ip().to_string(), 0).0).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(b"weft-udp", to).unwrap();
        let mut buf = [0u8; 64];
        matches!(s.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"weft-udp")
    })
    .join()
    .unwrap();
    server.join().unwrap();
    back
}

/// The wildcard address a server binds and the address a client targets, for `ip`'s family.
fn addrs(ip: &str, port: u16) -> (SocketAddr, SocketAddr) {
    let ip: std::net::IpAddr = ip.parse().expect("an IP address");
    let any: std::net::IpAddr = if ip.is_ipv6() {
        "::".parse().unwrap()
    } else {
        "0.0.0.0".parse().unwrap()
    };
    (SocketAddr::new(any, port), SocketAddr::new(ip, port))
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A TCP echo of `len` bytes from the client's namespace to a server at `ip:port` in the server's.
pub fn tcp_echo(server_ns: &str, client_ns: &str, ip: &str, port: u16, len: usize) {
    let (bind, target) = addrs(ip, port);
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_netns(server_ns, move || {
        let l = TcpListener::bind(bind).expect("tcp bind");
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("server read");
        s.write_all(&buf).expect("server write");
        buf.len()
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("server listening");
    let data = payload(len, port as u8);
    let client = in_netns(client_ns, move || {
        let mut s =
            TcpStream::connect_timeout(&target, Duration::from_secs(5)).expect("tcp connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&data).expect("client write");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).expect("client read");
        assert!(
            back == data,
            "TCP payload to {target} came back different ({} of {} bytes)",
            back.len(),
            data.len()
        );
    });
    client.join().expect("client");
    assert_eq!(server.join().expect("server"), len);
}

/// `count` UDP datagrams of `size` bytes, each echoed back; all must return.
pub fn udp_echo(server_ns: &str, client_ns: &str, ip: &str, port: u16, count: usize, size: usize) {
    let (bind, target) = addrs(ip, port);
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_netns(server_ns, move || {
        let s = UdpSocket::bind(bind).expect("udp bind");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        tx.send(()).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut echoed = 0;
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            s.send_to(&buf[..n], from).unwrap();
            echoed += 1;
        }
        echoed
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("server bound");
    let client = in_netns(client_ns, move || {
        let local: SocketAddr = if target.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .unwrap();
        let s = UdpSocket::bind(local).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        for i in 0..count {
            let mut d = payload(size, i as u8);
            d[..4].copy_from_slice(&(i as u32).to_be_bytes());
            let mut ok = false;
            // A datagram may be retried; the test is that every one gets through, intact.
            for _ in 0..3 {
                s.send_to(&d, target).unwrap();
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    if buf[..n] == d[..] {
                        ok = true;
                        break;
                    }
                }
            }
            assert!(ok, "UDP datagram {i} to {target} was not echoed intact");
        }
    });
    client.join().expect("udp client");
    let echoed = server.join().expect("udp server");
    assert!(echoed >= count, "server echoed {echoed} of {count}");
}

/// Sends a limited broadcast from `sender_ns` out of eth0 and returns which of `listeners` got it.
pub fn broadcast(sender_ns: &str, listeners: &[String], port: u16) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = listeners
        .iter()
        .map(|ns| {
            let tx = tx.clone();
            let name = ns.clone();
            in_netns(ns, move || {
                let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind broadcast listener");
                s.set_read_timeout(Some(Duration::from_millis(1500)))
                    .unwrap();
                tx.send(()).unwrap();
                let mut buf = [0u8; 64];
                match s.recv_from(&mut buf) {
                    Ok((n, _)) if &buf[..n] == b"weft-broadcast" => Some(name),
                    _ => None,
                }
            })
        })
        .collect();
    for _ in listeners {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("listener bound");
    }
    in_netns(sender_ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_broadcast(true).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        let to: SocketAddr = format!("255.255.255.255:{port}").parse().unwrap();
        for _ in 0..3 {
            s.send_to(b"weft-broadcast", &to.into()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .join()
    .unwrap();
    handles
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect()
}
