//! TAP → wire for encrypted networks: every piece of a frame (the frame itself, a TCP segment
//! of a super-frame, an IPv4 fragment) is sealed whole as one transport message of the peer's
//! session, and a run of them goes out in one `sendmsg` (UDP GSO) as plain VXLAN's do. Without
//! a session the pieces are held and a handshake is started; they go out once it completes.

use std::io::IoSlice;
use std::ops::Range;
use std::time::Instant;

use socket2::SockAddr;
use weft_secure::message::TRANSPORT_OVERHEAD;
use weft_secure::{Error as SecureError, Outcome};
use weft_wire::virtio::VirtioNetHdr;

use super::{Ctx, Scratch};
use crate::pkt::{self, Ip};
use crate::secure::SecureNet;
use crate::segment::Cut;
use crate::sock::{MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD};
use crate::stats::{add, inc};

/// A frame sent as it is: one piece, no headers rewritten.
pub(super) struct Whole(pub usize);

impl Cut for Whole {
    fn count(&self) -> usize {
        1
    }

    fn header_len(&self) -> usize {
        0
    }

    fn unit(&self) -> usize {
        self.0
    }

    fn write(&self, _frame: &[u8], _k: usize, prefix: &[u8], out: &mut [u8]) -> Range<usize> {
        out[..prefix.len()].copy_from_slice(prefix);
        0..self.0
    }
}

impl Ctx<'_> {
    /// Whether a frame's partial checksum may travel unfinished: on an encrypted network the
    /// receiving engine hands the frame on as CHECKSUM_PARTIAL (the AEAD vouches for the bytes),
    /// so the sum is computed at most once, by whoever finally needs it. Only for a frame sent
    /// whole whose checksum sits where the receiver will look for it.
    pub(super) fn defer_checksum(
        &self,
        frame: &[u8],
        ip: Option<&Ip>,
        vh: &VirtioNetHdr,
        mtu: usize,
    ) -> bool {
        let Some(ip) = ip else {
            return false;
        };
        self.net.secure.is_some()
            && ip.len <= mtu
            && !ip.is_fragment(frame)
            && usize::from(vh.csum_start) == ip.l4()
            && pkt::csum_field(ip.proto) == Some(usize::from(vh.csum_offset))
    }

    /// Seals the pieces of `cut` for each destination's session and sends them.
    pub(super) fn seal_cut(
        &self,
        sn: &SecureNet,
        frame: &[u8],
        cut: &dyn Cut,
        dsts: &[SockAddr],
        s: &mut Scratch,
    ) {
        let c = &self.net.counters.tx;
        let now = Instant::now();
        let hlen = cut.header_len();
        let dgram = TRANSPORT_OVERHEAD + hlen + cut.unit();
        let per_send = if self.sock.gso {
            (MAX_UDP_PAYLOAD / dgram).clamp(1, MAX_GSO_SEGMENTS)
        } else {
            1
        };
        let total = cut.count();
        for d in dsts {
            let Some(peer) = d.as_socket().and_then(|a| sn.peer(a.ip())) else {
                add(&c.drop_no_session, total as u64);
                continue;
            };
            let mut k = 0;
            while k < total {
                let n = per_send.min(total - k);
                let mut sealed = 0;
                let mut initiation = false;
                {
                    let mut link = peer.lock();
                    let mut holding = false;
                    for i in 0..n {
                        s.plain.clear();
                        s.plain.resize(hlen, 0);
                        let r = cut.write(frame, k + i, &[], &mut s.plain[..hlen]);
                        s.plain.extend_from_slice(&frame[r]);
                        if !holding {
                            match link.peer.encrypt(&s.plain, &mut s.sealed[sealed], now) {
                                Ok(Outcome::Send) => {
                                    sealed += 1;
                                    continue;
                                }
                                Ok(Outcome::Handshake) => {
                                    std::mem::swap(&mut s.initiation, &mut s.sealed[sealed]);
                                    initiation = true;
                                }
                                Ok(Outcome::Queue) => {}
                                Err(SecureError::TooLarge { .. }) => {
                                    inc(&c.drop_too_big);
                                    continue;
                                }
                                Err(e) => {
                                    tracing::debug!(net = %self.net.label(), error = %e, "sealing failed");
                                    inc(&c.drop_no_session);
                                    continue;
                                }
                            }
                            holding = true;
                        }
                        if link.hold(&s.plain) {
                            inc(&c.queued);
                        } else {
                            inc(&c.drop_no_session);
                        }
                    }
                }
                if sealed > 0 {
                    self.send_sealed(&peer.dst, &s.sealed[..sealed]);
                }
                if initiation {
                    if let Err(e) = self.sock.send(&peer.dst, &[IoSlice::new(&s.initiation)], 0) {
                        self.send_error(&peer.dst, e);
                    }
                }
                k += n;
            }
        }
    }

    /// Sends sealed messages (all of one size but maybe the last) in one `sendmsg`.
    fn send_sealed(&self, dst: &SockAddr, msgs: &[Vec<u8>]) {
        let c = &self.net.counters.tx;
        let mut iov = [IoSlice::new(&[]); MAX_GSO_SEGMENTS];
        let mut bytes = 0u64;
        for (slot, m) in iov.iter_mut().zip(msgs) {
            *slot = IoSlice::new(m);
            bytes += m.len() as u64;
        }
        let n = msgs.len();
        let seg = if n > 1 { msgs[0].len() as u16 } else { 0 };
        match self.sock.send(dst, &iov[..n], seg) {
            Ok(_) => {
                add(&c.packets, n as u64);
                add(&c.bytes, bytes);
            }
            Err(e) => self.send_error(dst, e),
        }
    }
}
