//! Offline verification of the cloud's user tokens (EdDSA JWTs). Students and faculty bring the
//! access token the cloud issued them; the node checks it against the public keys of the last
//! `keys` snapshot it received (by the header's `kid`), so it works with the uplink down.
//!
//! This is separate from [`crate::auth`], which checks the local faculty page's PINs: cloud tokens
//! authorise LAN content downloads, PIN logins authorise the attendance page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use nimbus_core::snapshot::KeysSnapshot;
use nimbus_core::token::{Claims, TokenType};
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::store::Store;

/// Seconds of clock skew tolerated on `exp` (a Pi's clock may drift a little between NTP syncs).
pub const LEEWAY_SECS: u64 = 30;
/// How long parsed keys are reused before the store is read again (key rotation and removal take
/// effect within this; an unknown `kid` always triggers a reload).
pub const KEYS_TTL: Duration = Duration::from_secs(5);

/// The parsed keys of one `keys` snapshot.
pub struct KeySet {
    issuer: String,
    keys: HashMap<String, DecodingKey>,
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
            match DecodingKey::from_ed_components(&k.x) {
                Ok(key) => {
                    keys.insert(k.kid.clone(), key);
                }
                Err(e) => tracing::warn!(kid = %k.kid, error = %e, "ignoring a malformed signing key"),
            }
        }
        KeySet { issuer: snap.issuer.clone(), keys }
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

    /// Verifies `token` as an access token at `now_secs` (Unix seconds).
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims> {
        let reject = |why: &str| Error::Unauthenticated(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| reject("malformed token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(reject("unsupported algorithm"));
        }
        let kid = header.kid.ok_or_else(|| reject("token names no key"))?;
        let key = self.keys.get(&kid).ok_or_else(|| reject("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is checked below against the node's clock, not the library's.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            tracing::debug!(error = %e, "token did not verify");
            reject("invalid token")
        })?;
        let claims = data.claims;
        if claims.exp.saturating_add(LEEWAY_SECS as i64) < now_secs {
            return Err(reject("token expired"));
        }
        if claims.typ != TokenType::Access {
            return Err(reject("not an access token"));
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
        let kid = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .ok_or_else(|| Error::Unauthenticated("malformed token".into()))?;
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
        let set = KeySet { issuer: "nimbus-cloud".into(), keys: HashMap::new() };
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
        };
        let set = KeySet::from_snapshot(&snap);
        assert!(!set.has("a"));
        assert!(!set.has("b"));
    }
}
