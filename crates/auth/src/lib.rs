//! Credentials of OpenDMS's cloud APIs: request signatures, user password hashes, IAM
//! tokens and key generation. Pure functions; the façades decide what to do with the
//! results.

pub mod alibaba;
pub mod huawei;
pub mod keys;
pub mod password;
pub mod token;

/// Decodes `k=v&k2=v2` (a query string or a form body) into pairs, in order. `+` is a
/// space: no signer of either cloud sends a raw `+`, and the Alibaba Tea SDK writes spaces
/// as `+` on the wire.
pub fn decode_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Constant-time equality of two byte strings.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
