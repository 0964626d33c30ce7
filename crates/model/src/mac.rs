use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const ZERO: Mac = Mac([0; 6]);

    /// A locally administered unicast MAC carrying an IPv4 address (`02:57:a:b:c:d`): unique within
    /// a network because its addresses are.
    pub fn from_ipv4(a: std::net::Ipv4Addr) -> Mac {
        let o = a.octets();
        Mac([0x02, 0x57, o[0], o[1], o[2], o[3]])
    }

    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && *self != Mac::ZERO
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!(
                "invalid MAC address {s:?}: expected 6 hex octets like 02:42:ac:11:00:02"
            ));
        }
        let mut out = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(format!(
                    "invalid MAC address {s:?}: octet {p:?} is not two hex digits"
                ));
            }
            out[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("invalid MAC address {s:?}: octet {p:?} is not hex"))?;
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let m: Mac = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert!(m.is_unicast());
        assert!("02:42:ac:11:00".parse::<Mac>().is_err());
        assert!("02:42:ac:11:00:zz".parse::<Mac>().is_err());
        assert!(!"01:00:5e:00:00:01".parse::<Mac>().unwrap().is_unicast());
    }
}
