//! Credentials of OpenDMS's cloud APIs: request signatures, user password hashes, IAM
//! tokens and key generation. Pure functions; the façades decide what to do with the
//! results.

pub mod alibaba;
pub mod huawei;
pub mod keys;
pub mod password;
pub mod token;

/// Constant-time equality of two byte strings.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
