//! Identifiers shared by firmware, the edge node, the wire protocol and the cloud.
//!
//! These are `no_std` + `alloc`: a card UID is produced on a microcontroller-class driver and
//! travels unchanged to the cloud, so every tier agrees on one representation.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A card UID must have between 1 and [`CardUid::MAX_LEN`] bytes.
    #[error("card uid must be 1 to 10 bytes, got {0}")]
    CardUidLength(usize),
    /// A card UID in text form must be an even number of hex digits.
    #[error("card uid must be hex digits, got {0:?}")]
    CardUidHex(String),
    /// Node ids name MQTT topics and database rows, so they are restricted to a safe alphabet.
    #[error("node id must be 1 to 64 characters of a-z, 0-9 and '-', not starting with '-', got {0:?}")]
    NodeId(String),
}

/// The UID of a contactless card (ISO 14443A: 4, 7 or 10 bytes) or the data bits of a
/// Wiegand credential (3 bytes for 26-bit, 4 for 34-bit).
///
/// Stored inline so that firmware can pass it around without an allocator; its text form is
/// upper-case hex (`04A1B2C3`), which is what rosters and the admin API use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardUid {
    len: u8,
    bytes: [u8; CardUid::MAX_LEN],
}

impl CardUid {
    /// The longest UID ISO 14443A defines (triple size).
    pub const MAX_LEN: usize = 10;

    /// Builds a UID from its bytes, rejecting empty or over-long input.
    pub fn from_slice(uid: &[u8]) -> Result<Self, IdError> {
        if uid.is_empty() || uid.len() > Self::MAX_LEN {
            return Err(IdError::CardUidLength(uid.len()));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..uid.len()].copy_from_slice(uid);
        Ok(Self { len: uid.len() as u8, bytes })
    }

    /// The UID bytes, most significant first as the card sends them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Number of bytes in the UID.
    #[allow(clippy::len_without_is_empty)] // a CardUid is never empty
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

impl fmt::Display for CardUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CardUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardUid({self})")
    }
}

impl FromStr for CardUid {
    type Err = IdError;

    /// Parses hex, ignoring `:` and `-` separators and case (`04:a1:b2:c3` == `04A1B2C3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; Self::MAX_LEN];
        let mut n = 0usize;
        let mut high: Option<u8> = None;
        for c in s.chars() {
            if c == ':' || c == '-' {
                continue;
            }
            let nibble = c.to_digit(16).ok_or_else(|| IdError::CardUidHex(s.into()))? as u8;
            match high.take() {
                None => high = Some(nibble),
                Some(h) => {
                    if n == Self::MAX_LEN {
                        return Err(IdError::CardUidLength(n + 1));
                    }
                    bytes[n] = (h << 4) | nibble;
                    n += 1;
                }
            }
        }
        if high.is_some() {
            return Err(IdError::CardUidHex(s.into()));
        }
        Self::from_slice(&bytes[..n])
    }
}

impl Serialize for CardUid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { s.serialize_bytes(self.as_bytes()) }
    }
}

impl<'de> Deserialize<'de> for CardUid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CardUid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a card uid as hex text or 1 to 10 bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CardUid, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<CardUid, E> {
                CardUid::from_slice(v).map_err(E::custom)
            }
        }
        if d.is_human_readable() { d.deserialize_str(Visitor) } else { d.deserialize_bytes(Visitor) }
    }
}

/// The identity of one classroom node. It appears in MQTT topics
/// (`nimbus/v1/nodes/{node_id}/up`), in the broker ACL and in the cloud's edge registry, so it is
/// restricted to lower-case letters, digits and `-` (no `/`, `+` or `#`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// Longest accepted node id.
    pub const MAX_LEN: usize = 64;

    /// Validates and wraps a node id.
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && !id.starts_with('-')
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(Self(id)) } else { Err(IdError::NodeId(id)) }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeId::new(s).map_err(serde::de::Error::custom)
    }
}

/// Position of an event in one node's outbox. Strictly increasing per node and never reused, so
/// `(node_id, seq)` identifies an edge event forever (the cloud derives `event_id` from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn card_uid_text_form_is_uppercase_hex_and_parses_back() {
        let uid = CardUid::from_slice(&[0x04, 0xa1, 0xb2, 0xc3, 0x5d, 0x80, 0x01]).unwrap();
        assert_eq!(uid.to_string(), "04A1B2C35D8001");
        assert_eq!("04a1b2c35d8001".parse::<CardUid>().unwrap(), uid);
        assert_eq!("04:A1:B2:C3:5D:80:01".parse::<CardUid>().unwrap(), uid);
        assert_eq!(uid.len(), 7);
    }

    #[test]
    fn card_uid_rejects_empty_long_odd_and_non_hex_input() {
        assert_eq!(CardUid::from_slice(&[]), Err(IdError::CardUidLength(0)));
        assert_eq!(CardUid::from_slice(&[0; 11]), Err(IdError::CardUidLength(11)));
        assert!(matches!("ABC".parse::<CardUid>(), Err(IdError::CardUidHex(_))));
        assert!(matches!("zz".parse::<CardUid>(), Err(IdError::CardUidHex(_))));
        assert!(matches!("".parse::<CardUid>(), Err(IdError::CardUidLength(0))));
        assert!(matches!("00112233445566778899AA".parse::<CardUid>(), Err(IdError::CardUidLength(11))));
    }

    #[test]
    fn card_uid_is_hex_in_json() {
        let uid: CardUid = "DEADBEEF".parse().unwrap();
        assert_eq!(serde_json::to_string(&uid).unwrap(), "\"DEADBEEF\"");
        assert_eq!(serde_json::from_str::<CardUid>("\"deadbeef\"").unwrap(), uid);
        assert!(serde_json::from_str::<CardUid>("\"xyz\"").is_err());
    }

    #[test]
    fn node_id_accepts_safe_names_and_rejects_topic_wildcards() {
        assert!(NodeId::new("room-101-a").is_ok());
        for bad in ["", "-x", "Room1", "a/b", "a+b", "a#", "a b", &"x".repeat(65)] {
            assert!(NodeId::new(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(serde_json::from_str::<NodeId>("\"a/b\"").is_err());
    }
}
