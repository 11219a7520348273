//! Alibaba Cloud request signatures (shared/spec/clients.md §2b): the RPC scheme
//! (HMAC-SHA1 over the sorted parameters, `SignatureVersion` 1.0) and ACS3-HMAC-SHA256 (an
//! `Authorization` header over a canonical request). Replay protection (`SignatureNonce`,
//! `x-acs-signature-nonce`) needs state and is the caller's job.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};

pub use crate::rfc3986_encode as percent_encode;
use crate::{canonical_pairs, header, hmac_sha256_hex, sha256_hex};

pub use crate::huawei::SignedRequest;

/// Alibaba's gateway refuses timestamps further than this from its clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
pub const ACS3: &str = "ACS3-HMAC-SHA256";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AliSignatureError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("unsupported {0}")]
    Unsupported(String),
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    #[error("the timestamp is not yyyy-MM-ddTHH:mm:ssZ")]
    BadTimestamp,
    #[error("the timestamp is more than 15 minutes away from the server's time")]
    TimestampOutOfWindow,
    #[error("signed header {0} is missing")]
    MissingHeader(String),
    #[error("x-acs-content-sha256 does not match the body")]
    BodyHash,
    #[error("the signature does not match; string to sign: {0}")]
    Mismatch(String),
}

/// Seconds since the epoch of `yyyy-MM-ddTHH:mm:ssZ`.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let compact = format!(
        "{}{}{}T{}{}{}Z",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    );
    crate::huawei::parse_sdk_date(&compact)
}

pub fn check_timestamp(ts: &str, now_unix_secs: i64) -> Result<(), AliSignatureError> {
    let at = parse_timestamp(ts).ok_or(AliSignatureError::BadTimestamp)?;
    if (now_unix_secs - at).abs() > MAX_SKEW_SECS {
        return Err(AliSignatureError::TimestampOutOfWindow);
    }
    Ok(())
}

/// The RPC string to sign: `METHOD&%2F&pe(sorted k=v pairs)`, without `Signature`.
pub fn rpc_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let canonical = canonical_pairs(
        params
            .iter()
            .filter(|(k, _)| k != "Signature")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    format!(
        "{}&%2F&{}",
        method.to_ascii_uppercase(),
        percent_encode(&canonical)
    )
}

pub fn rpc_signature(method: &str, params: &[(String, String)], secret: &str) -> String {
    let sts = rpc_string_to_sign(method, params);
    match Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()) {
        Ok(mut m) => {
            m.update(sts.as_bytes());
            B64.encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Verifies an RPC request's `Signature` over its decoded parameters (query and form body).
/// Checks the signature method and version; the timestamp and nonce are checked by the caller.
pub fn verify_rpc(
    method: &str,
    params: &[(String, String)],
    secret: &str,
) -> Result<(), AliSignatureError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let signature = get("Signature").ok_or(AliSignatureError::Missing("Signature"))?;
    match get("SignatureMethod") {
        Some("HMAC-SHA1") => {}
        Some(other) => {
            return Err(AliSignatureError::Unsupported(format!(
                "SignatureMethod {other}"
            )))
        }
        None => return Err(AliSignatureError::Missing("SignatureMethod")),
    }
    match get("SignatureVersion") {
        Some("1.0") => {}
        Some(other) => {
            return Err(AliSignatureError::Unsupported(format!(
                "SignatureVersion {other}"
            )))
        }
        None => return Err(AliSignatureError::Missing("SignatureVersion")),
    }
    let expected = rpc_signature(method, params, secret);
    if crate::same_bytes(expected.as_bytes(), signature.as_bytes()) {
        Ok(())
    } else {
        Err(AliSignatureError::Mismatch(rpc_string_to_sign(
            method, params,
        )))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acs3Authorization {
    pub access_key: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex`.
pub fn parse_acs3_authorization(value: &str) -> Result<Acs3Authorization, AliSignatureError> {
    let rest = value
        .trim()
        .strip_prefix(ACS3)
        .ok_or_else(|| AliSignatureError::Malformed(format!("the algorithm must be {ACS3}")))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for field in rest.split(',') {
        let Some((k, v)) = field.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "Credential" => cred = Some(v.trim().to_string()),
            "SignedHeaders" => signed = Some(v.trim().to_string()),
            "Signature" => sig = Some(v.trim().to_ascii_lowercase()),
            _ => {}
        }
    }
    let signed = signed.ok_or(AliSignatureError::Malformed(
        "SignedHeaders is missing".into(),
    ))?;
    Ok(Acs3Authorization {
        access_key: cred
            .filter(|c| !c.is_empty())
            .ok_or(AliSignatureError::Malformed("Credential is missing".into()))?,
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: sig.ok_or(AliSignatureError::Malformed("Signature is missing".into()))?,
    })
}

/// The ACS3 string to sign of a request with its decoded query parameters.
pub fn acs3_string_to_sign(
    req: &SignedRequest,
    query: &[(String, String)],
    signed_headers: &[String],
) -> Result<String, AliSignatureError> {
    let canonical_query = canonical_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let v = header(req.headers, name)
            .ok_or_else(|| AliSignatureError::MissingHeader(name.clone()))?;
        canonical_headers.push_str(&format!("{name}:{}\n", v.trim()));
    }
    let body_hash = sha256_hex(req.body);
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        if req.raw_path.is_empty() {
            "/"
        } else {
            req.raw_path
        },
        canonical_query,
        canonical_headers,
        signed_headers.join(";"),
        body_hash
    );
    Ok(format!("{ACS3}\n{}", sha256_hex(canonical.as_bytes())))
}

pub fn acs3_signature(sts: &str, secret: &str) -> String {
    hmac_sha256_hex(secret, sts)
}

/// Verifies an ACS3 request: the body hash header, `x-acs-date` within 15 minutes, and the
/// signature over the headers its `SignedHeaders` names.
pub fn verify_acs3(
    req: &SignedRequest,
    query: &[(String, String)],
    auth: &Acs3Authorization,
    secret: &str,
    now_unix_secs: i64,
) -> Result<(), AliSignatureError> {
    let body_hash = sha256_hex(req.body);
    if header(req.headers, "x-acs-content-sha256")
        .is_some_and(|h| !h.eq_ignore_ascii_case(&body_hash))
    {
        return Err(AliSignatureError::BodyHash);
    }
    let date = header(req.headers, "x-acs-date").ok_or(AliSignatureError::Missing("x-acs-date"))?;
    check_timestamp(date, now_unix_secs)?;
    if !auth.signed_headers.iter().any(|h| h == "x-acs-date") {
        return Err(AliSignatureError::MissingHeader("x-acs-date".into()));
    }
    let sts = acs3_string_to_sign(req, query, &auth.signed_headers)?;
    if crate::same_bytes(
        acs3_signature(&sts, secret).as_bytes(),
        auth.signature.as_bytes(),
    ) {
        Ok(())
    } else {
        Err(AliSignatureError::Mismatch(sts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SK: &str = "testAccessKeySecret";

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rpc_params(format: &str, legacy: bool) -> Vec<(String, String)> {
        let mut v = p(&[
            ("AccessKeyId", "testAccessKeyId"),
            ("Action", "GetTopicList"),
            ("Format", format),
            ("InstanceId", "alikafka_post-cn-test"),
            ("RegionId", "cn-hangzhou"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3156853299f313e23d1673dc12e1703d"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("Topic", "a b+c*~"),
            ("Version", "2019-09-16"),
        ]);
        if legacy {
            v.push(("SignatureType".into(), String::new()));
        }
        v
    }

    // The worked examples of shared/spec/clients.md §2b.
    #[test]
    fn rpc_examples() {
        let tea = rpc_params("json", false);
        assert_eq!(
            rpc_signature("POST", &tea, SK),
            "0xkEVroFS6v/ojYTZy9H4Lh1WcI="
        );
        let mut signed = tea.clone();
        signed.push(("Signature".into(), "0xkEVroFS6v/ojYTZy9H4Lh1WcI=".into()));
        assert_eq!(verify_rpc("POST", &signed, SK), Ok(()));
        assert!(matches!(
            verify_rpc("GET", &signed, SK),
            Err(AliSignatureError::Mismatch(_))
        ));
        let legacy = rpc_params("JSON", true);
        assert_eq!(
            rpc_signature("POST", &legacy, SK),
            "GRHgOZxYN29PxAx6sdcJU5jZ2TY="
        );
    }

    #[test]
    fn acs3_example() {
        let headers = p(&[
            ("accept", "application/json"),
            ("host", "127.0.0.1:18080"),
            (
                "user-agent",
                "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
            ),
            ("x-acs-action", "GetTopicList"),
            (
                "x-acs-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2019-09-16"),
        ]);
        let query = p(&[
            ("InstanceId", "alikafka_post-cn-test"),
            ("RegionId", "cn-hangzhou"),
            ("Topic", "a b+c*~"),
        ]);
        let auth = parse_acs3_authorization(
            "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=419c52a4c5b6c88ebee443b71719f3327a4eeab5230b76979696c3bdc535f125",
        )
        .unwrap();
        let req = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: b"",
        };
        let now = parse_timestamp("2024-01-02T03:04:05Z").unwrap();
        let sts = acs3_string_to_sign(&req, &query, &auth.signed_headers).unwrap();
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n956a865b451b070ef445e3af75a9437e268c256f18628d01c46a828a41f808c8"
        );
        assert_eq!(verify_acs3(&req, &query, &auth, SK, now), Ok(()));
        assert_eq!(
            verify_acs3(&req, &query, &auth, SK, now + 16 * 60),
            Err(AliSignatureError::TimestampOutOfWindow)
        );
        let tampered = p(&[
            ("InstanceId", "other"),
            ("RegionId", "cn-hangzhou"),
            ("Topic", "a b+c*~"),
        ]);
        assert!(matches!(
            verify_acs3(&req, &tampered, &auth, SK, now),
            Err(AliSignatureError::Mismatch(_))
        ));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:10Z"), Some(10));
        assert_eq!(parse_timestamp("2024-01-02 03:04:05"), None);
    }
}
