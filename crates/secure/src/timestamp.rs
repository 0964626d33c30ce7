//! TAI64N timestamps, as in WireGuard's handshake initiation: 8 bytes of seconds (big endian,
//! offset by 2^62) then 4 bytes of nanoseconds (big endian). Byte order equals time order.
//! Leap seconds are ignored (as WireGuard does): only the order matters.

use std::time::Duration;

/// Encoded length.
pub const TAI64N_LEN: usize = 12;

const TAI64_EPOCH: u64 = 1 << 62;

/// A TAI64N label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64N {
    secs: u64,
    nanos: u32,
}

impl Tai64N {
    /// The label of a wall-clock time given since the Unix epoch.
    pub fn from_unix(since_epoch: Duration) -> Self {
        Tai64N {
            secs: TAI64_EPOCH.saturating_add(since_epoch.as_secs()),
            nanos: since_epoch.subsec_nanos(),
        }
    }

    /// The next label after this one (1 ns later).
    pub fn succ(self) -> Self {
        if self.nanos < 999_999_999 {
            Tai64N {
                secs: self.secs,
                nanos: self.nanos + 1,
            }
        } else {
            Tai64N {
                secs: self.secs.saturating_add(1),
                nanos: 0,
            }
        }
    }

    pub fn to_bytes(self) -> [u8; TAI64N_LEN] {
        let mut out = [0u8; TAI64N_LEN];
        out[..8].copy_from_slice(&self.secs.to_be_bytes());
        out[8..].copy_from_slice(&self.nanos.to_be_bytes());
        out
    }

    /// Decodes a label; `None` for a wrong length or nanoseconds beyond a second.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; TAI64N_LEN] = bytes.try_into().ok()?;
        let (secs, nanos) = bytes.split_at(8);
        let secs = u64::from_be_bytes(secs.try_into().ok()?);
        let nanos = u32::from_be_bytes(nanos.try_into().ok()?);
        (nanos < 1_000_000_000).then_some(Tai64N { secs, nanos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_round_trip() {
        let a = Tai64N::from_unix(Duration::new(1_700_000_000, 999_999_999));
        let b = a.succ();
        assert!(b > a);
        assert!(b.to_bytes() > a.to_bytes());
        assert_eq!(Tai64N::from_bytes(&b.to_bytes()), Some(b));
        assert_eq!(
            &a.to_bytes()[..8],
            &(TAI64_EPOCH + 1_700_000_000).to_be_bytes()
        );
    }

    #[test]
    fn rejects_bad_encodings() {
        assert_eq!(Tai64N::from_bytes(&[0u8; 11]), None);
        let mut bad = [0u8; 12];
        bad[8..].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(Tai64N::from_bytes(&bad), None);
    }
}
