//! Password hashing (argon2id, PHC strings) off the async threads, and the password policy.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{Error, FieldError, Result};

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (bounds hashing work).
pub const MAX_LEN: usize = 128;

/// Pushes the policy's complaints about `password` as errors of `field`.
pub fn check_policy(errors: &mut Vec<FieldError>, field: &str, password: &str) {
    let n = password.chars().count();
    if n < MIN_LEN {
        errors.push(FieldError::new(field, format!("must be at least {MIN_LEN} characters")));
    } else if n > MAX_LEN {
        errors.push(FieldError::new(field, format!("must be at most {MAX_LEN} characters")));
    }
}

/// The argon2id PHC hash of `password` with a fresh salt.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(|e| Error::Config(format!("no randomness for a salt: {e}")))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Config(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Config(format!("cannot hash a password: {e}")))
    })
    .await
    .map_err(|e| Error::Config(format!("hashing task failed: {e}")))?
}

/// Whether `password` matches the PHC `hash` (a malformed hash matches nothing).
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when the user does not exist so a login takes
/// as long either way (no account enumeration by timing).
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$W5Hf3bgHqT8Cnuqf5bZB5xHkLR3mI3Y8C6w6A2E3Kk0";
