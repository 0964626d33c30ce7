//! The underlay sockets. UDP (VXLAN, the encrypted transport): bound once per worker on
//! underlay:port (SO_REUSEPORT), sending with UDP generic segmentation (many equal-sized
//! datagrams per `sendmsg`) and receiving batches with `recvmmsg` and UDP GRO. GRE: one raw IP
//! socket (protocol 47) on the underlay address, since this kernel may have no gre module; the
//! kernel writes the outer IP header, and `recvmmsg` hands over IPv4 packets with theirs.

use std::io::{self, IoSlice};
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::sys::{self, cvt};

/// Largest UDP payload on IPv4 (65535 − 20 − 8); also the ceiling for one GSO send.
pub(crate) const MAX_UDP_PAYLOAD: usize = 65507;
/// Segments per UDP GSO send (the kernel's limit, UDP_MAX_SEGMENTS, is 64 on older kernels).
pub(crate) const MAX_GSO_SEGMENTS: usize = 64;

/// IP protocol number of GRE.
pub(crate) const IPPROTO_GRE: i32 = 47;

#[derive(Debug)]
pub(crate) struct WireSock {
    sock: Socket,
    /// Whether UDP GSO may be used for sending.
    pub gso: bool,
}

impl WireSock {
    /// Binds `addr`. `reuse_port` lets the workers' sockets share it; `offload` turns on UDP
    /// GRO for receiving (and allows GSO for sending).
    pub(crate) fn bind(addr: SocketAddr, reuse_port: bool, offload: bool) -> io::Result<WireSock> {
        let sock = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.cloexec(),
            Some(Protocol::UDP),
        )?;
        let mut s = WireSock::setup(sock, addr, reuse_port)?;
        if offload {
            s.gso = sys::setsockopt_int(s.fd(), libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
        }
        Ok(s)
    }

    /// A raw GRE socket on `underlay` (port ignored). Every raw socket of a protocol gets a copy
    /// of every packet, so the engine opens one and shares it between sending and receiving.
    pub(crate) fn bind_gre(underlay: std::net::IpAddr) -> io::Result<WireSock> {
        let addr = SocketAddr::new(underlay, 0);
        let sock = Socket::new(
            Domain::for_address(addr),
            Type::RAW.cloexec(),
            Some(Protocol::from(IPPROTO_GRE)),
        )?;
        WireSock::setup(sock, addr, false)
    }

    fn setup(sock: Socket, addr: SocketAddr, reuse_port: bool) -> io::Result<WireSock> {
        let fd = sock.as_raw_fd();
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
            // Like the kernel's vxlan device: never set DF; the underlay may fragment.
            sys::setsockopt_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_DONT,
            )?;
        } else {
            sys::setsockopt_int(
                fd,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_DONT,
            )?;
        }
        if reuse_port {
            sock.set_reuse_port(true)?;
        }
        // Big buffers absorb bursts of 64 KiB super-frames; FORCE needs CAP_NET_ADMIN, which
        // the agent has; fall back to the capped size otherwise.
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            let size = 8 << 20;
            if sys::setsockopt_int(fd, libc::SOL_SOCKET, force, size).is_err() {
                let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, plain, size);
            }
        }
        sock.bind(&addr.into())?;
        Ok(WireSock { sock, gso: false })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("socket has no IP address"))
    }

    /// Sends the concatenation of `iov` to `dst`: as one datagram when `seg` is 0, else cut
    /// by the kernel into datagrams of `seg` bytes (the last may be shorter; UDP_SEGMENT).
    /// Blocks while the send buffer is full (backpressure rather than drops).
    pub(crate) fn send(&self, dst: &SockAddr, iov: &[IoSlice<'_>], seg: u16) -> io::Result<usize> {
        // cmsghdr (16) + u16 padded: CMSG_SPACE(2) = 24 on 64-bit Linux.
        let mut ctrl = [0u64; 4];
        // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call, and
        // the control buffer is large and aligned enough for one cmsg carrying a u16.
        unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = dst.as_ptr() as *mut libc::c_void;
            msg.msg_namelen = dst.len();
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iov.len();
            if seg != 0 {
                msg.msg_control = ctrl.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as usize;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
            }
            loop {
                let r = cvt(libc::sendmsg(self.fd(), &msg, libc::MSG_NOSIGNAL));
                match r {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => return r,
                }
            }
        }
    }
}

/// Messages per [`WireSock::send_many`] call at most.
pub(crate) const MAX_BATCH: usize = MAX_GSO_SEGMENTS;

impl WireSock {
    /// Sends each entry of `msgs` (two iovecs: a header and a payload) as its own datagram to
    /// `dst`, in as few `sendmmsg` calls as the kernel takes: for sockets without UDP GSO (the
    /// raw GRE socket), one system call per batch instead of one per packet. Returns how many
    /// were sent; blocks while the send buffer is full.
    pub(crate) fn send_many(&self, dst: &SockAddr, msgs: &[[IoSlice<'_>; 2]]) -> io::Result<usize> {
        let n = msgs.len().min(MAX_BATCH);
        // SAFETY: mmsghdr is plain data; every pointer set below (dst, the iovecs in `msgs`)
        // outlives the sendmmsg calls.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for (h, m) in hdrs.iter_mut().zip(&msgs[..n]) {
            h.msg_hdr.msg_name = dst.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = dst.len();
            h.msg_hdr.msg_iov = m.as_ptr() as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 2;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: hdrs[done..n] are initialised above and point at live buffers.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd(),
                    hdrs[done..].as_mut_ptr(),
                    (n - done) as libc::c_uint,
                    libc::MSG_NOSIGNAL,
                )
            };
            match cvt(r as isize) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }
}

/// One received message of a batch.
pub(crate) struct Message<'a> {
    pub src: IpAddr,
    pub data: &'a [u8],
    /// UDP GRO segment size: `data` holds datagrams of this size (the last may be shorter);
    /// 0 when it is a single datagram. See `rx` for the tunnel super-frame case.
    pub gso_size: usize,
}

/// Buffers for `recvmmsg`, reused for every call.
pub(crate) struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    ctrl: Vec<[u64; 8]>,
    n: usize,
}

// The raw pointers in hdrs/iovs point into this struct's own heap buffers.
// SAFETY: the batch is only used by the thread that owns it; moving it between threads before
// use is fine because the pointers are reset before every call.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub(crate) fn new(count: usize, slot: usize) -> RecvBatch {
        // SAFETY: these C structs are valid when zeroed.
        let (hdrs, iovs, names) = unsafe {
            (
                vec![zeroed::<libc::mmsghdr>(); count],
                vec![zeroed::<libc::iovec>(); count],
                vec![zeroed::<libc::sockaddr_storage>(); count],
            )
        };
        RecvBatch {
            buf: vec![0u8; count * slot],
            slot,
            hdrs,
            iovs,
            names,
            ctrl: vec![[0u64; 8]; count],
            n: 0,
        }
    }

    /// One non-blocking `recvmmsg`: `WouldBlock` when nothing is queued.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let count = self.hdrs.len();
        for i in 0..count {
            self.iovs[i] = libc::iovec {
                iov_base: self.buf[i * self.slot..].as_mut_ptr().cast(),
                iov_len: self.slot,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; 8]>();
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the sizes given above.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.n = cvt(r as isize)?;
        Ok(self.n)
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Message `i` of the last call.
    pub(crate) fn get(&self, i: usize) -> Message<'_> {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.slot);
        let data = &self.buf[i * self.slot..i * self.slot + len];
        let src = sockaddr_ip(&self.names[i]).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut gso_size = 0;
        // SAFETY: walks the control messages the kernel wrote into ctrl[i], within
        // msg_controllen, using the libc CMSG macros.
        unsafe {
            let m = &h.msg_hdr;
            let mut c = libc::CMSG_FIRSTHDR(m);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    gso_size = v.max(0) as usize;
                }
                c = libc::CMSG_NXTHDR(m, c);
            }
        }
        Message {
            src,
            data,
            gso_size,
        }
    }

    /// The bytes of message `i` (for building iovecs after [`RecvBatch::get`] borrowed).
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The batch buffer, to rewrite a message in place (an opened one over its ciphertext).
    pub(crate) fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

fn sockaddr_ip(s: &libc::sockaddr_storage) -> Option<IpAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let v6 = Ipv6Addr::from(a.sin6_addr.s6_addr);
            // A v4-mapped source on a dual-stack socket is the IPv4 peer.
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}
