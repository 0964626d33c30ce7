//! ICMP echo over a raw socket, for the convergence measurement: the packet format (pure) and a
//! pinger thread that lives inside one network namespace and answers "when did the first echo reply
//! from this address arrive" while it sends a request every millisecond.

use std::io::Read;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::netns::Netns;

pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;
pub const IPPROTO_ICMP: u8 = 1;
/// Bytes after the 8-byte ICMP header: enough to tell the packets apart in a capture.
pub const PAYLOAD: &[u8] = b"weft-lab-bench..";

/// The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request (type 8) with its checksum.
pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// An echo reply as read from a raw IPv4 ICMP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub src: Ipv4Addr,
    pub id: u16,
    pub seq: u16,
}

/// Parses what a raw `IPPROTO_ICMP` socket delivers (the IPv4 header, then ICMP): Some for an
/// intact echo reply, None for anything else (other ICMP types, bad checksums, short packets).
pub fn parse_echo_reply(packet: &[u8]) -> Option<EchoReply> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl + 8 || packet[9] != IPPROTO_ICMP {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let end = if total >= ihl + 8 && total <= packet.len() {
        total
    } else {
        packet.len()
    };
    let icmp = &packet[ihl..end];
    if icmp[0] != ECHO_REPLY || icmp[1] != 0 || checksum(icmp) != 0 {
        return None;
    }
    Some(EchoReply {
        src,
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
    })
}

/// What one probe found.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// When the first matching echo reply was read; None if none came before the timeout.
    pub reply_at: Option<Instant>,
    /// Echo requests sent.
    pub sent: u32,
    /// Sends the kernel refused (e.g. no route, neighbour failed).
    pub send_errors: u32,
}

struct Job {
    dst: Ipv4Addr,
    every: Duration,
    timeout: Duration,
    done: tokio::sync::oneshot::Sender<Result<Probe>>,
}

/// A thread inside one network namespace (it called `setns` itself, so nothing else moves) with a
/// raw ICMP socket, waiting for probes. Ends when dropped.
pub struct Pinger {
    jobs: mpsc::Sender<Job>,
}

impl Pinger {
    /// Starts the thread in `ns` and opens its socket there; fails if either fails.
    pub fn start(ns: &Netns) -> Result<Pinger> {
        let ns = ns.try_clone()?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        std::thread::Builder::new()
            .name("weft-bench-ping".into())
            .spawn(move || {
                let open = || -> Result<Socket> {
                    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("entering {ns}"))?;
                    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                        .context("opening a raw ICMP socket")?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                };
                let sock = match open() {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Identifiers differ per probe, so that a late reply to an earlier probe never counts.
                let mut id = (std::process::id() as u16).wrapping_mul(31);
                while let Ok(job) = rx.recv() {
                    id = id.wrapping_add(1);
                    let r = probe(&sock, id, &job);
                    let _ = job.done.send(r);
                }
            })
            .context("spawning the pinger thread")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the pinger thread ended before opening its socket"))??;
        Ok(Pinger { jobs })
    }

    /// Sends an echo request to `dst` every `every` until the first reply, or `timeout`.
    pub async fn first_reply(
        &self,
        dst: Ipv4Addr,
        every: Duration,
        timeout: Duration,
    ) -> Result<Probe> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                dst,
                every,
                timeout,
                done,
            })
            .map_err(|_| anyhow!("the pinger thread has ended"))?;
        rx.await
            .map_err(|_| anyhow!("the pinger thread ended during a probe"))?
    }
}

fn probe(sock: &Socket, id: u16, job: &Job) -> Result<Probe> {
    drain(sock)?;
    let to = SockAddr::from(SocketAddrV4::new(job.dst, 0));
    let start = Instant::now();
    let deadline = start + job.timeout;
    let mut next = start;
    let mut out = Probe {
        reply_at: None,
        sent: 0,
        send_errors: 0,
    };
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(out);
        }
        if now >= next {
            let pkt = echo_request(id, out.sent as u16, PAYLOAD);
            match sock.send_to(&pkt, &to) {
                Ok(_) => {}
                Err(_) => out.send_errors += 1,
            }
            out.sent += 1;
            next += job.every;
            if next < now {
                next = now + job.every;
            }
        }
        // ppoll, not SO_RCVTIMEO: a socket timeout is rounded up to whole jiffies (4 ms at
        // HZ=250), which would send every 4 ms instead of every 1.
        let wait = next.min(deadline).saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e).context("waiting on the raw ICMP socket"),
        }
        // Read everything that arrived; the socket is non-blocking.
        loop {
            match (&*sock).read(&mut buf) {
                Ok(n) => {
                    if let Some(r) = parse_echo_reply(&buf[..n]) {
                        if r.src == job.dst && r.id == id {
                            out.reply_at = Some(Instant::now());
                            return Ok(out);
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e).context("reading the raw ICMP socket"),
            }
        }
    }
}

/// Discards what the (non-blocking) socket holds already: replies to earlier probes.
fn drain(sock: &Socket) -> Result<()> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    while sock.recv(&mut buf).is_ok() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of these words is 0xddf2, so the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0x12]), !0x1200);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn echo_request_layout() {
        let p = echo_request(0x1234, 7, b"abc");
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[8..], b"abc");
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&p), 0);
    }

    /// What the kernel would deliver for a reply to `echo_request(id, seq, …)` from `src`.
    fn reply_packet(src: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
        let mut icmp = echo_request(id, seq, PAYLOAD);
        icmp[0] = ECHO_REPLY;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let total = (20 + icmp.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IPPROTO_ICMP, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&[10, 201, 0, 3]);
        ip.extend_from_slice(&icmp);
        ip
    }

    #[test]
    fn parses_replies() {
        let src = Ipv4Addr::new(10, 201, 1, 10);
        let p = reply_packet(src, 0xbeef, 3);
        assert_eq!(
            parse_echo_reply(&p),
            Some(EchoReply {
                src,
                id: 0xbeef,
                seq: 3
            })
        );
        // Trailing bytes beyond the IPv4 total length are ignored.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0xff; 6]);
        assert!(parse_echo_reply(&padded).is_some());
    }

    #[test]
    fn rejects_everything_else() {
        let src = Ipv4Addr::new(10, 201, 1, 10);
        let good = reply_packet(src, 1, 1);
        let mut request = good.clone();
        request[20] = ECHO_REQUEST;
        assert_eq!(parse_echo_reply(&request), None, "wrong type");
        let mut corrupt = good.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(parse_echo_reply(&corrupt), None, "bad checksum");
        let mut udp = good.clone();
        udp[9] = 17;
        assert_eq!(parse_echo_reply(&udp), None, "not ICMP");
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(parse_echo_reply(&v6), None, "not IPv4");
        let mut long_hdr = good.clone();
        long_hdr[0] = 0x4f;
        assert_eq!(
            parse_echo_reply(&long_hdr),
            None,
            "header longer than packet"
        );
        assert_eq!(parse_echo_reply(&good[..25]), None, "truncated");
        assert_eq!(parse_echo_reply(&[]), None);
    }
}
