//! TAP devices (tun-rs): one per network, one queue per worker (IFF_MULTI_QUEUE), no packet
//! information, and with offloads a virtio-net header before every frame (IFF_VNET_HDR) and
//! checksum + TCP segmentation offload, so the kernel hands over 64 KiB TCP super-frames. The
//! header is `weft_wire::virtio`'s, which reads and writes it little-endian: the TAP's native
//! order on the little-endian hosts weft runs on (x86-64, arm64).

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::sys;

/// MTU of the TAP device itself. Deliberately large: the network's MTU is enforced by the
/// engine, which answers an oversized packet with an ICMP error instead of letting the bridge
/// drop it silently (a bridge drops frames larger than the egress port's MTU without a word).
pub const TAP_MTU: u16 = 65521;

/// What the engine asks the kernel to hand over with IFF_VNET_HDR: partial checksums and TCP
/// segmentation (not UDP segmentation: the engine does not segment UDP).
const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

pub(crate) struct Tap {
    pub queues: Vec<OwnedFd>,
}

/// Creates (or attaches to) the TAP `name` with `queues` queues, left down (the datapath layer
/// puts it on the bridge and sets it up). Must run in the engine's network namespace.
pub(crate) fn create(name: &str, queues: usize, offload: bool) -> io::Result<Tap> {
    // TUNSETIFF on an existing name attaches to that device (as one more queue of another
    // process's multiqueue TAP, even): refuse instead. weft's TAPs are not persistent, so a
    // name still present belongs to someone else.
    let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: passes a NUL-terminated string.
    if unsafe { libc::if_nametoindex(cname.as_ptr()) } != 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("an interface named {name} already exists"),
        ));
    }
    let multi = queues > 1;
    let dev = tun_rs::DeviceBuilder::new()
        .name(name)
        .layer(tun_rs::Layer::L2)
        .offload(offload)
        .multi_queue(multi)
        .enable(false)
        .build_sync()?;
    dev.set_mtu(TAP_MTU)?;
    let mut devs = vec![dev];
    for _ in 1..queues {
        devs.push(devs[0].try_clone()?);
    }
    let mut fds = Vec::with_capacity(queues);
    for d in devs {
        // SAFETY: into_raw_fd hands over sole ownership of the descriptor.
        fds.push(unsafe { OwnedFd::from_raw_fd(d.into_raw_fd()) });
    }
    use std::os::fd::AsRawFd;
    if offload {
        // tun-rs also turns on UDP segmentation offload where the kernel has it; take it back
        // (the mask is device-wide, so once is enough, after the last queue is attached).
        sys::tun_set_offload(fds[0].as_raw_fd(), OFFLOADS)?;
    }
    for f in &fds {
        sys::set_nonblocking(f.as_raw_fd())?;
    }
    Ok(Tap { queues: fds })
}

pub(crate) fn raw(fd: &OwnedFd) -> RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}
