//! The one error type of every codec in this crate.

use core::fmt;

/// Why a packet could not be decoded, or a packet could not be built.
///
/// Every decoder returns one of these for bad input instead of panicking. [`WireError::reason`]
/// gives a short, stable label per variant, meant for "dropped, by reason" counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends before the structure named by `what` does.
    Truncated {
        /// The structure being read (`"vxlan header"`, `"ipv4 header"`, …).
        what: &'static str,
        /// Bytes that structure needs.
        need: usize,
        /// Bytes that were there.
        have: usize,
    },
    /// The caller's output buffer is smaller than what is to be written into it.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A VXLAN header whose I flag (valid VNI) is clear (RFC 7348 §5: such packets are dropped).
    VxlanMissingIFlag,
    /// A GRE header whose version is not 0 (version 1 is PPTP's enhanced GRE).
    GreVersion(u8),
    /// A GRE header with the routing bit set (RFC 1701 source routing: not supported).
    GreRouting,
    /// A GRE header without the K bit: weft carries the network's VNI in the key.
    GreMissingKey,
    /// A GRE packet whose protocol type is not Transparent Ethernet Bridging (0x6558).
    GreProtocol(u16),
    /// A frame or packet of a protocol this function does not handle (an EtherType, an IP
    /// protocol number, an ICMP type…).
    Unsupported {
        /// What was looked at.
        what: &'static str,
        /// The value found there.
        value: u32,
    },
    /// An IP header whose version field is wrong for where it was found.
    IpVersion(u8),
    /// A length field that disagrees with the bytes present or with the protocol's rules.
    BadLength {
        /// The field (`"ipv4 ihl"`, `"ipv4 total length"`, `"tcp data offset"`, …).
        what: &'static str,
        /// The value found.
        value: usize,
    },
    /// A checksum present in the packet did not verify.
    BadChecksum {
        /// Which checksum.
        what: &'static str,
    },
    /// The RFCs forbid sending an ICMP error about this packet (it is itself an ICMP error, a
    /// non-first fragment, from an unspecified/multicast/broadcast source, …).
    IcmpSuppressed {
        /// Why.
        why: &'static str,
    },
    /// A virtio-net header this crate cannot act on (unknown GSO type, zero GSO size,
    /// checksum offsets outside the frame, …).
    BadVirtioHdr {
        /// What is wrong with it.
        why: &'static str,
    },
    /// An encrypted-transport message whose type byte is unknown.
    MessageType(u8),
    /// An encrypted-transport message whose length does not fit its type.
    MessageLength {
        /// The message type byte.
        kind: u8,
        /// Its length in bytes.
        len: usize,
    },
}

impl WireError {
    /// A short, stable, snake_case label for drop counters (`weft status`, metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated { .. } => "truncated",
            WireError::BufferTooSmall { .. } => "buffer_too_small",
            WireError::VxlanMissingIFlag => "vxlan_missing_i_flag",
            WireError::GreVersion(_) => "gre_version",
            WireError::GreRouting => "gre_routing",
            WireError::GreMissingKey => "gre_missing_key",
            WireError::GreProtocol(_) => "gre_protocol",
            WireError::Unsupported { .. } => "unsupported",
            WireError::IpVersion(_) => "ip_version",
            WireError::BadLength { .. } => "bad_length",
            WireError::BadChecksum { .. } => "bad_checksum",
            WireError::IcmpSuppressed { .. } => "icmp_suppressed",
            WireError::BadVirtioHdr { .. } => "bad_virtio_hdr",
            WireError::MessageType(_) => "message_type",
            WireError::MessageLength { .. } => "message_length",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Truncated { what, need, have } => {
                write!(f, "truncated {what}: need {need} bytes, have {have}")
            }
            WireError::BufferTooSmall { need, have } => {
                write!(f, "output buffer too small: need {need} bytes, have {have}")
            }
            WireError::VxlanMissingIFlag => {
                write!(f, "vxlan header without the I (valid VNI) flag")
            }
            WireError::GreVersion(v) => write!(f, "gre version {v} (only 0 is accepted)"),
            WireError::GreRouting => write!(f, "gre routing present (not supported)"),
            WireError::GreMissingKey => {
                write!(f, "gre header without a key (the key carries the VNI)")
            }
            WireError::GreProtocol(p) => {
                write!(
                    f,
                    "gre protocol {p:#06x} (only 0x6558, transparent ethernet bridging)"
                )
            }
            WireError::Unsupported { what, value } => write!(f, "unsupported {what} {value:#x}"),
            WireError::IpVersion(v) => write!(f, "unexpected ip version {v}"),
            WireError::BadLength { what, value } => write!(f, "bad {what}: {value}"),
            WireError::BadChecksum { what } => write!(f, "bad {what} checksum"),
            WireError::IcmpSuppressed { why } => write!(f, "no icmp error may be sent: {why}"),
            WireError::BadVirtioHdr { why } => write!(f, "bad virtio-net header: {why}"),
            WireError::MessageType(t) => write!(f, "unknown message type {t}"),
            WireError::MessageLength { kind, len } => {
                write!(f, "message of type {kind} cannot be {len} bytes long")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Shorthand for building a [`WireError::Truncated`] when `have < need`.
#[inline]
pub(crate) fn need(what: &'static str, need: usize, have: usize) -> Result<(), WireError> {
    if have < need {
        Err(WireError::Truncated { what, need, have })
    } else {
        Ok(())
    }
}
