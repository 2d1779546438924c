//! Faculty PINs for the local page, hashed with argon2 (the hashes arrive in the roster snapshot;
//! the node never stores a PIN in clear).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Hashes a PIN (used by the demo data and by tests; real hashes come from the cloud).
pub fn hash_pin(pin: &str) -> Result<String, argon2::password_hash::Error> {
    // 16 random bytes from the OS (uuid v4 draws them from getrandom).
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())?;
    Ok(Argon2::default().hash_password(pin.as_bytes(), &salt)?.to_string())
}

/// Checks a PIN against a stored hash; a malformed hash never verifies.
pub fn verify_pin(pin: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(pin.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_verifies_against_its_hash_only() {
        let h = hash_pin("1234").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_pin("1234", &h));
        assert!(!verify_pin("1235", &h));
        assert!(!verify_pin("1234", "not-a-hash"));
    }
}
