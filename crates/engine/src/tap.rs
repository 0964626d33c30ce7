//! TAP devices (tun-rs): one per network, one queue per worker (IFF_MULTI_QUEUE), no packet
//! information, and with offloads a virtio-net header before every frame (IFF_VNET_HDR) and
//! checksum + TCP segmentation offload, so the kernel hands over 64 KiB TCP super-frames.

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

/// The virtio-net header (legacy layout, 10 bytes, host byte order) that precedes every frame
/// on a TAP with IFF_VNET_HDR.
pub(crate) mod vnet {
    pub const LEN: usize = 10;
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const F_DATA_VALID: u8 = 2;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_ECN: u8 = 0x80;

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Hdr {
        pub flags: u8,
        pub gso_type: u8,
        pub hdr_len: u16,
        pub gso_size: u16,
        pub csum_start: u16,
        pub csum_offset: u16,
    }

    impl Hdr {
        pub fn parse(b: &[u8]) -> Hdr {
            let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
            Hdr {
                flags: b[0],
                gso_type: b[1],
                hdr_len: u(2),
                gso_size: u(4),
                csum_start: u(6),
                csum_offset: u(8),
            }
        }

        pub fn write(&self, b: &mut [u8]) {
            b[0] = self.flags;
            b[1] = self.gso_type;
            b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
            b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
            b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
            b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        }

        pub fn bytes(&self) -> [u8; LEN] {
            let mut b = [0u8; LEN];
            self.write(&mut b);
            b
        }
    }
}

pub(crate) fn raw(fd: &OwnedFd) -> RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}
