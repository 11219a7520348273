//! New identifiers and secrets, from the operating system's random source.

use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};

fn from_alphabet(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// An access key id: 20 characters of A–Z and 0–9, like Huawei's.
pub fn new_access_key() -> String {
    from_alphabet(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 20)
}

/// A secret access key: 40 letters and digits.
pub fn new_secret_key() -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// A 32-character lowercase hex id, the shape of Huawei project, user and account ids.
pub fn new_hex_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    crate::hex(&b)
}

pub fn new_signing_key() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let ak = new_access_key();
        assert_eq!(ak.len(), 20);
        assert!(ak
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(new_secret_key().len(), 40);
        let id = new_hex_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(new_hex_id(), id);
    }
}
