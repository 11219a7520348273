//! Salted password hashes for IAM users: PBKDF2-HMAC-SHA256, stored as
//! `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64) so the cost can rise without a migration.

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;

const ITERATIONS: u32 = 120_000;

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let hash = derive(password, &salt, ITERATIONS);
    format!(
        "pbkdf2-sha256${ITERATIONS}${}${}",
        B64.encode(salt),
        B64.encode(hash)
    )
}

/// False for a wrong password and for anything that is not a hash this module wrote.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iter), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(hash)) =
        (iter.parse::<u32>(), B64.decode(salt), B64.decode(hash))
    else {
        return false;
    };
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    crate::same_bytes(&derive(password, &salt, iterations), &hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = hash_password("Secret-123");
        assert!(verify_password("Secret-123", &h));
        assert!(!verify_password("Secret-124", &h));
        assert_ne!(h, hash_password("Secret-123"), "salted");
        assert!(!verify_password("x", "garbage"));
        assert!(!verify_password("x", "pbkdf2-sha256$0$AA$AA"));
    }
}
