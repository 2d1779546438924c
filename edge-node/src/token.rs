//! Offline verification of the cloud's user tokens (EdDSA JWTs). Students and faculty bring the
//! access token the cloud issued them; the node checks it against the public keys of the last
//! `keys` snapshot it received (by the header's `kid`), so it works with the uplink down.
//!
//! This is separate from [`crate::auth`], which checks the local faculty page's PINs: cloud tokens
//! authorise LAN content downloads, PIN logins authorise the attendance page.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use nimbus_core::snapshot::KeysSnapshot;
use nimbus_core::token::{Claims, TokenType};
use rusqlite::Connection;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::store::Store;

/// Seconds of clock skew tolerated on `exp` (a Pi's clock may drift a little between NTP syncs).
pub const LEEWAY_SECS: u64 = 30;
/// How long parsed keys are reused before the store is read again (key rotation and removal take
/// effect within this; an unknown `kid` always triggers a reload).
pub const KEYS_TTL: Duration = Duration::from_secs(5);
/// Longest token accepted; the cloud's are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The parsed keys of one `keys` snapshot.
pub struct KeySet {
    issuer: String,
    keys: HashMap<String, VerifyingKey>,
    /// Sessions the cloud revoked recently (logout, suspension): their tokens are refused.
    revoked: HashSet<String>,
}

/// The JOSE header fields the node looks at. Verified directly with ed25519-dalek rather than a
/// general JWT library: the node accepts exactly one algorithm, and jsonwebtoken's RSA and ECDSA
/// backends made the stripped release binary 0.58 MiB larger (x86_64: 7.64 vs 7.06 MiB).
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// RFC 7515 4.1.11: critical extensions the node does not understand make the token invalid.
    crit: Option<serde_json::Value>,
}

/// A compact JWS split into its parts, header decoded; nothing verified yet.
struct Parts<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Option<Parts<'_>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    if payload.contains('.') {
        return None;
    }
    let header: Header = serde_json::from_slice(&b64url_decode(header)?).ok()?;
    Some(Parts { header, signing_input, payload, signature })
}

/// The `kid` a token's header names, if the token is well-formed enough to have one.
pub fn header_kid(token: &str) -> Option<String> {
    split(token)?.header.kid
}

/// Decodes unpadded base64url (RFC 7515 2), strictly: no padding, no other alphabet, no stray
/// bits in the last character.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        let keep = chunk.len() - 1;
        if bytes[1 + keep..].iter().any(|b| *b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[1..1 + keep]);
    }
    Some(out)
}

impl KeySet {
    /// Parses a keys snapshot; keys that are not Ed25519 or whose `x` is malformed are skipped.
    pub fn from_snapshot(snap: &KeysSnapshot) -> KeySet {
        let mut keys = HashMap::new();
        for k in &snap.keys {
            if k.alg != "EdDSA" {
                tracing::warn!(kid = %k.kid, alg = %k.alg, "ignoring a signing key of an unsupported algorithm");
                continue;
            }
            let key = b64url_decode(&k.x)
                .and_then(|x| <[u8; 32]>::try_from(x).ok())
                .and_then(|x| VerifyingKey::from_bytes(&x).ok());
            match key {
                Some(key) => {
                    keys.insert(k.kid.clone(), key);
                }
                None => tracing::warn!(kid = %k.kid, "ignoring a malformed signing key"),
            }
        }
        KeySet { issuer: snap.issuer.clone(), keys, revoked: snap.revoked_sessions.iter().cloned().collect() }
    }

    /// Reads the cached keys snapshot (None before the first one arrives).
    pub fn load(conn: &Connection) -> Result<Option<KeySet>> {
        let Some(raw) = crate::timetable::raw_snapshot(conn, "keys")? else { return Ok(None) };
        let snap: KeysSnapshot = serde_json::from_str(&raw)?;
        Ok(Some(KeySet::from_snapshot(&snap)))
    }

    /// Whether a key named `kid` is present.
    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Verifies `token` as an access token at `now_secs` (Unix seconds): EdDSA signature by the
    /// key its `kid` names (checked before any claim is read), then `iss`, `exp`, `typ` and the
    /// snapshot's revoked sessions.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims> {
        let reject = |why: &str| Error::Unauthenticated(why.to_owned());
        let parts = split(token).ok_or_else(|| reject("malformed token"))?;
        if parts.header.alg != "EdDSA" {
            return Err(reject("unsupported algorithm"));
        }
        if parts.header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(reject("not a JWT"));
        }
        if parts.header.crit.is_some() {
            return Err(reject("unsupported critical header"));
        }
        let kid = parts.header.kid.as_deref().ok_or_else(|| reject("token names no key"))?;
        let key = self.keys.get(kid).ok_or_else(|| reject("unknown signing key"))?;
        let signature = b64url_decode(parts.signature)
            .and_then(|s| Signature::from_slice(&s).ok())
            .ok_or_else(|| reject("malformed signature"))?;
        // Strict: refuses small-order keys and non-canonical signatures (no malleable tokens).
        key.verify_strict(parts.signing_input.as_bytes(), &signature).map_err(|_| reject("invalid token"))?;
        let payload = b64url_decode(parts.payload).ok_or_else(|| reject("malformed token"))?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|e| {
            tracing::debug!(error = %e, "signed token has unexpected claims");
            reject("invalid token")
        })?;
        if claims.iss != self.issuer {
            return Err(reject("wrong issuer"));
        }
        if claims.sub.is_empty() {
            return Err(reject("token names no subject"));
        }
        if claims.exp.saturating_add(LEEWAY_SECS as i64) < now_secs {
            return Err(reject("token expired"));
        }
        if claims.typ != TokenType::Access {
            return Err(reject("not an access token"));
        }
        if self.revoked.contains(&claims.sid) {
            return Err(reject("session revoked"));
        }
        Ok(claims)
    }
}

struct Cached {
    loaded: Instant,
    keys: Option<Arc<KeySet>>,
}

/// The node's view of the cloud's signing keys: the cached snapshot, parsed once and re-read
/// every [`KEYS_TTL`] or when a token names a key not seen yet. Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    store: Store,
    cached: Arc<Mutex<Option<Cached>>>,
}

impl KeyRing {
    /// A key ring over the store's `keys` snapshot.
    pub fn new(store: Store) -> Self {
        KeyRing { store, cached: Arc::new(Mutex::new(None)) }
    }

    fn current(&self) -> Option<(Instant, Option<Arc<KeySet>>)> {
        let guard = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|c| (c.loaded, c.keys.clone()))
    }

    async fn reload(&self) -> Result<Option<Arc<KeySet>>> {
        let keys = self.store.run(|c| KeySet::load(c)).await?.map(Arc::new);
        let mut guard = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some(Cached { loaded: Instant::now(), keys: keys.clone() });
        Ok(keys)
    }

    /// Verifies an access token offline; [`Error::Unauthenticated`] when it does not verify or
    /// no keys have been received yet.
    pub async fn verify(&self, token: &str, now_secs: i64) -> Result<Claims> {
        let kid = header_kid(token).ok_or_else(|| Error::Unauthenticated("malformed token".into()))?;
        let keys = match self.current() {
            Some((at, Some(keys))) if at.elapsed() < KEYS_TTL && keys.has(&kid) => keys,
            // Unknown kid or stale: read the store again (a rotation may just have arrived).
            _ => self.reload().await?.ok_or_else(|| Error::Unauthenticated("no signing keys received yet".into()))?,
        };
        keys.verify(token, now_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_unsigned_tokens_are_rejected_without_panicking() {
        let set = KeySet { issuer: "nimbus-cloud".into(), keys: HashMap::new(), revoked: HashSet::new() };
        for t in ["", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "....", "\u{0}"] {
            assert!(matches!(set.verify(t, 0), Err(Error::Unauthenticated(_))), "{t:?}");
        }
    }

    #[test]
    fn keys_of_other_algorithms_or_malformed_are_skipped() {
        let snap = KeysSnapshot {
            version: 1,
            issuer: "nimbus-cloud".into(),
            keys: vec![
                nimbus_core::snapshot::PublicKey { kid: "a".into(), alg: "RS256".into(), x: "AAAA".into() },
                nimbus_core::snapshot::PublicKey { kid: "b".into(), alg: "EdDSA".into(), x: "!!".into() },
            ],
            revoked_sessions: Vec::new(),
        };
        let set = KeySet::from_snapshot(&snap);
        assert!(!set.has("a"));
        assert!(!set.has("b"));
    }

    fn b64(bytes: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn base64url_decodes_strictly() {
        assert_eq!(b64url_decode("").unwrap(), b"");
        assert_eq!(b64url_decode("Zg").unwrap(), b"f");
        assert_eq!(b64url_decode("Zm8").unwrap(), b"fo");
        assert_eq!(b64url_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(b64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        for bad in ["Zg==", "Z", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm9v\n", "é"] {
            assert_eq!(b64url_decode(bad), None, "{bad:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(b64url_decode(&b64(&all)).unwrap(), all);
    }

    fn signed(key: &ed25519_dalek::SigningKey, header: serde_json::Value, claims: serde_json::Value) -> String {
        use ed25519_dalek::Signer;
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        format!("{input}.{}", b64(&key.sign(input.as_bytes()).to_bytes()))
    }

    #[test]
    fn only_a_well_formed_eddsa_access_token_of_a_known_key_verifies() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let snap = KeysSnapshot {
            version: 1,
            issuer: "nimbus-cloud".into(),
            keys: vec![nimbus_core::snapshot::PublicKey {
                kid: "k1".into(),
                alg: "EdDSA".into(),
                x: b64(key.verifying_key().as_bytes()),
            }],
            revoked_sessions: Vec::new(),
        };
        let set = KeySet::from_snapshot(&snap);
        assert!(set.has("k1"));
        let claims = serde_json::json!({ "sub": "u1", "roles": ["student"], "iss": "nimbus-cloud", "iat": 1000,
                                          "exp": 2000, "jti": "j", "sid": "s", "typ": "access" });
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": "k1" });
        let good = signed(&key, header.clone(), claims.clone());
        assert_eq!(set.verify(&good, 1500).unwrap().sub, "u1");
        assert!(set.verify(&good, 2000 + LEEWAY_SECS as i64).is_ok(), "within the leeway");
        assert!(set.verify(&good, 2001 + LEEWAY_SECS as i64).is_err(), "expired");
        assert_eq!(header_kid(&good).as_deref(), Some("k1"));

        let with = |patch: serde_json::Value| {
            let mut h = header.clone();
            h.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
            signed(&key, h, claims.clone())
        };
        for bad in [
            with(serde_json::json!({ "alg": "none" })),
            with(serde_json::json!({ "alg": "HS256" })),
            with(serde_json::json!({ "typ": "at+jwt" })),
            with(serde_json::json!({ "crit": ["exp"] })),
            with(serde_json::json!({ "kid": "k2" })),
            signed(&key, serde_json::json!({ "alg": "EdDSA" }), claims.clone()),
            signed(&key, header.clone(), serde_json::json!({ "sub": "u1" })),
            format!("{good}.x"),
            good.replace('.', ".."),
            format!("{}A", &good[..good.len() - 1]),
        ] {
            assert!(matches!(set.verify(&bad, 1500), Err(Error::Unauthenticated(_))), "{bad}");
        }
        let mut other = claims.clone();
        other["typ"] = "refresh".into();
        assert!(set.verify(&signed(&key, header.clone(), other), 1500).is_err());
        let mut other = claims.clone();
        other["iss"] = "elsewhere".into();
        assert!(set.verify(&signed(&key, header.clone(), other), 1500).is_err());

        // The session was revoked in the cloud (logout): the next snapshot refuses its tokens.
        let revoked = KeySet::from_snapshot(&KeysSnapshot { revoked_sessions: vec!["s".into()], ..snap.clone() });
        assert!(matches!(revoked.verify(&good, 1500), Err(Error::Unauthenticated(why)) if why == "session revoked"));
        let unrelated = KeySet::from_snapshot(&KeysSnapshot { revoked_sessions: vec!["other".into()], ..snap });
        assert!(unrelated.verify(&good, 1500).is_ok());
    }
}
