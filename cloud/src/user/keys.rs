//! The Ed25519 keys that sign user tokens. The newest unretired key signs; a rotation adds a new
//! key and retires the old ones, which keep verifying until every token they signed has expired
//! (a refresh token lives [`REFRESH_TOKEN_SECS`]). Classroom nodes get the public halves through
//! the downlink ([`key_set`]) and verify access tokens offline.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use nimbus_core::snapshot::{KeysSnapshot, PublicKey};
use nimbus_core::token::{ACCESS_TOKEN_SECS, Claims, ISSUER, REFRESH_TOKEN_SECS, TokenType};

use crate::error::{Error, Result};

/// Seconds of clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;
/// An unknown `kid` re-reads the keys at most this often (another instance may have rotated).
const RELOAD_AFTER: Duration = Duration::from_secs(5);

/// A new Ed25519 key: `(kid, PKCS#8 DER private key, base64url public key)`.
pub fn generate() -> Result<(String, Vec<u8>, String)> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| Error::Config(format!("no randomness for a signing key: {e}")))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key.to_pkcs8_der().map_err(|e| Error::Config(format!("cannot encode a signing key: {e}")))?;
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let kid = format!("k{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    Ok((kid, der.as_bytes().to_vec(), x))
}

/// Makes sure a signing key exists (creates the first one). Safe to call from several
/// processes at once.
pub async fn ensure_signing_key(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7395201)", &[]).await?;
    let active: i64 = tx.query_one("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL", &[]).await?.get(0);
    if active == 0 {
        let (kid, der, x) = generate()?;
        tx.execute("INSERT INTO signing_keys (kid, private_key, public_key) VALUES ($1, $2, $3)", &[&kid, &der, &x])
            .await?;
        tracing::info!(%kid, "created the first token signing key");
    }
    tx.commit().await?;
    Ok(())
}

/// Adds a new signing key and retires the current ones; returns the new `kid`.
pub async fn rotate(pool: &Pool) -> Result<String> {
    let (kid, der, x) = generate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7395201)", &[]).await?;
    tx.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL", &[]).await?;
    tx.execute("INSERT INTO signing_keys (kid, private_key, public_key) VALUES ($1, $2, $3)", &[&kid, &der, &x])
        .await?;
    tx.commit().await?;
    tracing::info!(%kid, "rotated the token signing key");
    Ok(kid)
}

/// The public keys a valid token may be signed with (the active key and those retired less than
/// a refresh token's lifetime ago), versioned by their last change. The downlink sends this to
/// every node.
pub async fn key_set(pool: &Pool) -> Result<KeysSnapshot> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT kid, public_key,
                    (extract(epoch FROM greatest(created_at, coalesce(retired_at, created_at))) * 1000)::bigint
             FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
             ORDER BY created_at DESC",
            &[&(REFRESH_TOKEN_SECS as f64)],
        )
        .await?;
    let version = rows.iter().map(|r| r.get::<_, i64>(2)).max().unwrap_or(0);
    // A revoked session's access tokens live at most ACCESS_TOKEN_SECS (plus the nodes' clock
    // leeway) after the revocation.
    let revoked = client
        .query(
            "SELECT id::text FROM active_sessions
             WHERE revoked_at > now() - make_interval(secs => $1) ORDER BY id",
            &[&((ACCESS_TOKEN_SECS + 120) as f64)],
        )
        .await?;
    Ok(KeysSnapshot {
        version: u64::try_from(version).unwrap_or(0),
        issuer: ISSUER.to_owned(),
        keys: rows.iter().map(|r| PublicKey { kid: r.get(0), alg: "EdDSA".to_owned(), x: r.get(1) }).collect(),
        revoked_sessions: revoked.iter().map(|r| r.get(0)).collect(),
    })
}

struct Loaded {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    at: Instant,
}

/// The keys in memory: signs new tokens, verifies presented ones. Re-reads the table when a
/// token names a key it does not know (at most every few seconds) and after a rotation.
pub struct KeyRing {
    pool: Pool,
    loaded: RwLock<Loaded>,
}

impl KeyRing {
    /// Loads the keys of `pool`'s database (creating the first key if there is none).
    pub async fn load(pool: Pool) -> Result<KeyRing> {
        ensure_signing_key(&pool).await?;
        let ring = KeyRing {
            pool,
            loaded: RwLock::new(Loaded { signing: None, verifying: HashMap::new(), at: Instant::now() }),
        };
        ring.reload().await?;
        Ok(ring)
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self) -> Result<()> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT kid, private_key, public_key, retired_at IS NULL FROM signing_keys
                 WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
                 ORDER BY created_at DESC",
                &[&(REFRESH_TOKEN_SECS as f64)],
            )
            .await?;
        let mut signing = None;
        let mut verifying = HashMap::new();
        for r in &rows {
            let (kid, der, x, active): (String, Vec<u8>, String, bool) = (r.get(0), r.get(1), r.get(2), r.get(3));
            if active && signing.is_none() {
                signing = Some((kid.clone(), EncodingKey::from_ed_der(&der)));
            }
            match DecodingKey::from_ed_components(&x) {
                Ok(k) => {
                    verifying.insert(kid, k);
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping a malformed public key"),
            }
        }
        let mut guard = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *guard = Loaded { signing, verifying, at: Instant::now() };
        Ok(())
    }

    /// Rotates the signing key and starts using the new one.
    pub async fn rotate(&self) -> Result<String> {
        let kid = rotate(&self.pool).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Signs `claims` with the active key (EdDSA, `kid` in the header).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let (kid, key) = {
            let guard = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            guard.signing.clone().ok_or_else(|| Error::Config("no active token signing key".into()))?
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| Error::Config(format!("cannot sign a token: {e}")))
    }

    /// Verifies `token` as a token of type `expected`; the error is the reason for a 401
    /// (`expired`, `unknown signing key`, …), safe to show.
    pub async fn verify(&self, token: &str, expected: TokenType) -> std::result::Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_owned())?;
        if header.alg != Algorithm::EdDSA {
            return Err("unsupported algorithm".into());
        }
        let kid = header.kid.ok_or_else(|| "token names no key".to_owned())?;
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                let stale = self.loaded.read().unwrap_or_else(|e| e.into_inner()).at.elapsed() > RELOAD_AFTER;
                if stale && let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "cannot re-read the signing keys");
                }
                self.key(&kid).ok_or_else(|| "unknown signing key".to_owned())?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired".to_owned(),
                _ => "invalid token".to_owned(),
            })?
            .claims;
        if claims.typ != expected {
            return Err(match expected {
                TokenType::Access => "not an access token".into(),
                TokenType::Refresh => "not a refresh token".into(),
            });
        }
        Ok(claims)
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).verifying.get(kid).cloned()
    }
}
