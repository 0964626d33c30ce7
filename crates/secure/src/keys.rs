//! Static X25519 host keys and the per-network pre-shared key, with their text encodings.
//!
//! Text form: standard base64 with padding (44 characters, as WireGuard writes keys) or 64 hex
//! digits; parsing accepts both, output is base64 unless `to_hex` is asked for.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// Length of every key here, in bytes.
pub const KEY_LEN: usize = 32;

/// A key that could not be decoded or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what}: not base64 (44 characters) or hex (64 digits)")]
    Encoding { what: &'static str },
    #[error("{what}: {len} bytes, expected 32")]
    Length { what: &'static str, len: usize },
    #[error("the system random number generator failed")]
    Rng,
}

fn decode(what: &'static str, text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let text = text.trim();
    let mut bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        decode_hex(text).ok_or(KeyError::Encoding { what })?
    } else {
        STANDARD
            .decode(text)
            .map_err(|_| KeyError::Encoding { what })?
    };
    let out = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length {
        what,
        len: bytes.len(),
    });
    bytes.zeroize();
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn random_bytes() -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Rng)?;
    Ok(bytes)
}

/// A host's static X25519 public key, as published in its host record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Parses base64 or hex.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode("public key", text).map(PublicKey)
    }

    /// Whether X25519 with this point yields the all-zero secret (a low-order point, which
    /// would let anyone compute the shared secret), checked against our private key.
    pub(crate) fn is_weak_for(&self, private: &PrivateKey) -> bool {
        MontgomeryPoint(self.0).mul_clamped(private.0).to_bytes() == [0u8; KEY_LEN]
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PublicKey::parse(s)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PublicKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A host's static X25519 private key. Zeroed when dropped; never printed.
#[derive(Clone)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    pub fn generate() -> Result<Self, KeyError> {
        random_bytes().map(PrivateKey)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PrivateKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Parses base64 or hex.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode("private key", text).map(PrivateKey)
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PrivateKey::parse(s)
    }
}

/// A host's static key pair.
#[derive(Clone, Debug)]
pub struct KeyPair {
    private: PrivateKey,
    public: PublicKey,
}

impl KeyPair {
    /// A fresh key pair from the system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        PrivateKey::generate().map(KeyPair::from_private)
    }

    pub fn from_private(private: PrivateKey) -> Self {
        let public = private.public_key();
        KeyPair { private, public }
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn private(&self) -> &PrivateKey {
        &self.private
    }
}

/// The per-network pre-shared key mixed into every handshake (Noise `psk2`). All-zero when the
/// network has none, which leaves admission to the static keys alone.
#[derive(Clone)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    /// The all-zero key of a network without `--psk-file`.
    pub const fn none() -> Self {
        PresharedKey([0u8; KEY_LEN])
    }

    pub fn generate() -> Result<Self, KeyError> {
        random_bytes().map(PresharedKey)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PresharedKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses base64 or hex (the content of a `--psk-file`, surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode("pre-shared key", text).map(PresharedKey)
    }

    /// A public name for the key (hex of the first 8 bytes of its SHA-256): stored in the network
    /// record so that a host holding a different key is told so, while the key itself never
    /// enters the store.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Default for PresharedKey {
    fn default() -> Self {
        PresharedKey::none()
    }
}

impl Drop for PresharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == [0u8; KEY_LEN] {
            f.write_str("PresharedKey(none)")
        } else {
            f.write_str("PresharedKey(..)")
        }
    }
}

impl FromStr for PresharedKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PresharedKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_fingerprint_is_stable_and_distinct() {
        let a = PresharedKey::from_bytes([1; KEY_LEN]);
        let b = PresharedKey::from_bytes([2; KEY_LEN]);
        assert_eq!(a.fingerprint().len(), 16);
        assert_eq!(
            a.fingerprint(),
            PresharedKey::from_bytes([1; KEY_LEN]).fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn public_key_matches_rfc7748_vector() {
        // RFC 7748 section 6.1, Alice.
        let private =
            PrivateKey::parse("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap();
        assert_eq!(
            private.public_key().to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn round_trips_base64_and_hex() {
        let pair = KeyPair::generate().unwrap();
        let b64 = pair.public().to_base64();
        assert_eq!(b64.len(), 44);
        assert_eq!(PublicKey::parse(&b64).unwrap(), *pair.public());
        assert_eq!(
            PublicKey::parse(&pair.public().to_hex()).unwrap(),
            *pair.public()
        );
        let private = PrivateKey::parse(&format!(" {}\n", pair.private().to_base64())).unwrap();
        assert_eq!(private.public_key(), *pair.public());
        let private = PrivateKey::parse(&pair.private().to_hex()).unwrap();
        assert_eq!(private.public_key(), *pair.public());
    }

    #[test]
    fn bad_encodings_are_errors() {
        assert!(matches!(
            PublicKey::parse("not a key"),
            Err(KeyError::Encoding { .. })
        ));
        assert!(matches!(
            PublicKey::parse("AAAA"),
            Err(KeyError::Length { len: 3, .. })
        ));
        assert!(PresharedKey::parse(&"zz".repeat(32)).is_err());
        assert!(PublicKey::parse("").is_err());
    }

    #[test]
    fn serde_as_base64_string() {
        let pair = KeyPair::generate().unwrap();
        let json = serde_json::to_string(pair.public()).unwrap();
        assert_eq!(json, format!("\"{}\"", pair.public().to_base64()));
        let back: PublicKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, *pair.public());
        assert!(serde_json::from_str::<PublicKey>("\"nope\"").is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let pair = KeyPair::generate().unwrap();
        let text = format!("{pair:?}");
        assert!(!text.contains(&pair.private().to_base64()));
        assert_eq!(format!("{:?}", PresharedKey::none()), "PresharedKey(none)");
    }

    #[test]
    fn low_order_point_is_weak() {
        let pair = KeyPair::generate().unwrap();
        assert!(PublicKey::from_bytes([0u8; 32]).is_weak_for(pair.private()));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(PublicKey::from_bytes(one).is_weak_for(pair.private()));
        let other = KeyPair::generate().unwrap();
        assert!(!other.public().is_weak_for(pair.private()));
    }
}
