//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-header sums.
//!
//! Sums are carried in a `u64` accumulator and folded to 16 bits at the end, so that a caller can
//! add several pieces (pseudo header, header, payload) before folding.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data`, read as big-endian 16-bit words (a trailing odd byte is padded with zero), to
/// `acc`. Data longer than a few GiB could overflow the accumulator; packets never are.
#[inline]
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let mut acc = acc;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds an accumulator to a 16-bit one's complement sum (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data`: the complement of its folded one's complement sum. Store it
/// as big-endian in a checksum field that was zero while summing.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The sum of the IPv4 pseudo header (RFC 793 / RFC 768).
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    sum(&src.octets(), 0) + sum(&dst.octets(), 0) + u64::from(protocol) + u64::from(len)
}

/// The sum of the IPv6 pseudo header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u64 {
    sum(&src.octets(), 0)
        + sum(&dst.octets(), 0)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff)
        + u64::from(next_header)
}

/// True when the bytes, checksum field included, sum (with `acc`, e.g. a pseudo header) to
/// all ones: the receiver's verification.
#[inline]
pub fn verifies(data: &[u8], acc: u64) -> bool {
    fold(sum(data, acc)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately naive RFC 1071 implementation to compare the fast one against.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u32::from(data[i]) << 8 | u32::from(data[i + 1]);
            i += 2;
        }
        if i < data.len() {
            s += u32::from(data[i]) << 8;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn known_ipv4_header_vector() {
        // The classic example: 192.168.0.1 -> 192.168.0.199, UDP, checksum 0xb861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        let mut with = hdr;
        with[10] = 0xb8;
        with[11] = 0x61;
        assert!(verifies(&with, 0));
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (before complement).
        assert_eq!(
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            0xddf2
        );
    }

    #[test]
    fn fast_matches_naive_on_all_lengths() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8 ^ 0xa5).collect();
        for len in 0..data.len() {
            assert_eq!(checksum(&data[..len]), naive(&data[..len]), "len {len}");
        }
        let ff = vec![0xffu8; 1000];
        assert_eq!(checksum(&ff), naive(&ff));
    }
}
