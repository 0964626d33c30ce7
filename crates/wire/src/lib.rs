//! # weft-wire: the packet codecs of weft's userspace engine
//!
//! Pure code: no I/O, no threads, no clocks, and no allocation on the hot paths. Decoders take a
//! `&[u8]` and return borrowed views into it; encoders write into a caller's `&mut [u8]` or append
//! to a caller's reused `&mut Vec<u8>`. No decoder panics on any input: every one of them is
//! fuzzed (see [`fuzz`], the `fuzz/` cargo-fuzz project and `tests/fuzz_smoke.rs`).
//!
//! | module | what |
//! |---|---|
//! | [`vxlan`] | RFC 7348 header |
//! | [`gre`] | Ethernet over GRE (key = VNI), as Linux gretap and Open vSwitch |
//! | [`eth`] | Ethernet II view, one VLAN tag skipped |
//! | [`arp`], [`nd`] | answer ARP requests and IPv6 neighbour solicitations locally (proxy) |
//! | [`icmp`] | "fragmentation needed" and "packet too big" errors for the MTU promise |
//! | [`virtio`] | TAP `IFF_VNET_HDR` header, TCP/UDP segmentation of GSO super-frames, checksum completion |
//! | [`gro`] | the reverse: TCP segments coalesced into one super-frame for the TAP |
//! | [`secure`] | framing of the encrypted transport (the messages of `weft-secure`) |
//! | [`ipv4`], [`ipv6`], [`checksum`] | the shared pieces |
//! | [`fuzz`] | the fuzz targets' bodies (run by `fuzz/` and by `tests/fuzz_smoke.rs`) |
//!
//! Writers that take a `&mut Vec<u8>` **append** (they never clear it), so that a caller can put
//! a virtio-net header or an outer header first. Every decoder error is a [`WireError`], whose
//! [`WireError::reason`] is a stable label for drop counters.
//!
//! The byte layouts are in `docs/wire-format.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arp;
pub mod checksum;
mod error;
pub mod eth;
pub mod fuzz;
pub mod gre;
pub mod gro;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod nd;
pub mod secure;
pub mod virtio;
pub mod vxlan;

pub use error::WireError;
