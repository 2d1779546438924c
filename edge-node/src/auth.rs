//! Classroom PINs (faculty and students) for the local pages, hashed with argon2 (the hashes
//! arrive in the roster snapshot; the node never stores a PIN in clear).

use std::sync::Mutex;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Largest argon2 memory cost (KiB) a PIN hash may ask for. The cloud uses argon2's default
/// (19 MiB); a hash asking for far more is refused rather than allowed to exhaust a Pi.
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Working memory of finished verifications, reused by the next ones. argon2 needs ~19 MiB per
/// check; allocating and freeing it per sign-in on whichever blocking-pool thread ran it left the
/// node holding ~17 MiB more after every sign-in (measured: 200 sign-ins, 3.7 GiB resident).
/// The callers run at most two checks at once (`http::login`), so at most two buffers stay.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Buffers kept between verifications.
const KEPT_BUFFERS: usize = 2;

/// Hashes a PIN (used by the demo data and by tests; real hashes come from the cloud).
pub fn hash_pin(pin: &str) -> Result<String, argon2::password_hash::Error> {
    // 16 random bytes from the OS (uuid v4 draws them from getrandom).
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())?;
    Ok(Argon2::default().hash_password(pin.as_bytes(), &salt)?.to_string())
}

/// Checks a PIN against a stored hash (constant-time comparison of the outputs); a malformed
/// hash, or one asking for more than [`MAX_MEMORY_KIB`], never verifies. The argon2 working
/// memory is taken from and returned to [`MEMORY`] instead of being allocated per check.
pub fn verify_pin(pin: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    if params.m_cost() > MAX_MEMORY_KIB {
        tracing::warn!(m_cost = params.m_cost(), "PIN hash asks for too much memory; refused");
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let mut blocks = take_memory(params.block_count());
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let computed = argon2.hash_password_into_with_memory(pin.as_bytes(), salt, &mut out, &mut blocks);
    give_back(blocks);
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

fn take_memory(blocks: usize) -> Vec<Block> {
    let mut buf = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
    // Every block is written before it is read, so a reused buffer needs no clearing.
    buf.resize(blocks, Block::default());
    buf
}

fn give_back(buf: Vec<Block>) {
    let mut kept = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() < KEPT_BUFFERS {
        kept.push(buf);
    }
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

    #[test]
    fn reused_memory_gives_the_same_answers_and_stays_bounded() {
        let a = hash_pin("402913").unwrap();
        let b = hash_pin("771204").unwrap();
        for _ in 0..3 {
            assert!(verify_pin("402913", &a) && !verify_pin("402913", &b));
            assert!(verify_pin("771204", &b) && !verify_pin("771205", &b));
        }
        assert!(MEMORY.lock().unwrap().len() <= KEPT_BUFFERS);
        // The password-hash crate's own verifier agrees.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&a).unwrap();
        assert!(Argon2::default().verify_password(b"402913", &parsed).is_ok());
    }

    #[test]
    fn the_demo_hashes_are_of_the_demo_pins() {
        assert!(verify_pin("1234", crate::timetable::DEMO_FACULTY_PIN_HASH));
        assert!(verify_pin(crate::timetable::DEMO_STUDENT_PIN, crate::timetable::DEMO_STUDENT_PIN_HASH));
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_is_refused() {
        let greedy =
            "$argon2id$v=19$m=1048576,t=2,p=1$Q+sjUUuRQteYPNKTSCHvUg$+69U49CsQMObb+DCpYv7RRT8Jx8R/m0YWx48bBh2Nf8";
        assert!(!verify_pin("1234", greedy));
    }
}
