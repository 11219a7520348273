//! Huawei Cloud's SDK-HMAC-SHA256 request signatures, verified the way the official SDKs
//! sign (shared/spec/clients.md §1b): a SigV4-like canonical request without key
//! derivation, a canonical URI that always ends in `/`, and the body's SHA-256 signed.

use percent_encoding::percent_decode_str;

use crate::{header, hmac_sha256_hex as hmac_hex, rfc3986_encode as encode, sha256_hex};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Huawei's gateway refuses an `X-Sdk-Date` further than this from its clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    #[error("signed header {0} is missing")]
    MissingHeader(String),
    #[error("X-Sdk-Date is missing or not YYYYMMDDTHHMMSSZ")]
    BadDate,
    #[error("X-Sdk-Date is more than 15 minutes away from the server's time")]
    DateOutOfWindow,
    #[error("the signature does not match")]
    Mismatch,
}

/// A request as received, before any decoding.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as on the wire, before `?`.
    pub raw_path: &'a str,
    /// The query as on the wire, after `?` (may be empty).
    pub raw_query: &'a str,
    /// Header names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Result<Authorization, SignatureError> {
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| SignatureError::Malformed(format!("the algorithm must be {ALGORITHM}")))?;
    let (mut access, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| SignatureError::Malformed(format!("field {field:?} has no '='")))?;
        match k.trim() {
            "Access" => access = Some(v.trim().to_string()),
            "SignedHeaders" => signed = Some(v.trim().to_string()),
            "Signature" => signature = Some(v.trim().to_string()),
            other => {
                return Err(SignatureError::Malformed(format!(
                    "unknown field {other:?}"
                )))
            }
        }
    }
    let missing = |f: &str| SignatureError::Malformed(format!("{f} is missing"));
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    Ok(Authorization {
        access_key: access
            .filter(|a| !a.is_empty())
            .ok_or_else(|| missing("Access"))?,
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: signature
            .ok_or_else(|| missing("Signature"))?
            .to_ascii_lowercase(),
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The Python and Go SDKs decode the path, then encode each segment.
fn canonical_uri_decoded(raw_path: &str) -> String {
    let decoded = decode(raw_path);
    with_trailing_slash(decoded.split('/').map(encode).collect::<Vec<_>>().join("/"))
}

/// The Node SDK encodes the already-encoded path segments without decoding them first.
fn canonical_uri_raw(raw_path: &str) -> String {
    with_trailing_slash(
        raw_path
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/"),
    )
}

fn with_trailing_slash(mut s: String) -> String {
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

fn canonical_query(raw_query: &str) -> String {
    let pairs = crate::decode_pairs(raw_query);
    crate::canonical_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn string_to_sign(
    method: &str,
    canonical_uri: &str,
    raw_query: &str,
    headers: &[(String, String)],
    signed: &[String],
    body: &[u8],
    date: &str,
) -> Result<String, SignatureError> {
    let mut canonical_headers = String::new();
    for name in signed {
        let value =
            header(headers, name).ok_or_else(|| SignatureError::MissingHeader(name.clone()))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    // The body is always hashed here: trusting a client-sent X-Sdk-Content-Sha256 would let a
    // signed request carry another body. The SDK sends UNSIGNED-PAYLOAD only for non-JSON
    // content, which no DMS operation uses.
    let json = header(headers, "content-type").is_none_or(|c| c.starts_with("application/json"));
    let payload_hash = if body.is_empty() {
        EMPTY_SHA256.to_string()
    } else if !json && header(headers, "x-sdk-content-sha256") == Some("UNSIGNED-PAYLOAD") {
        "UNSIGNED-PAYLOAD".to_string()
    } else {
        sha256_hex(body)
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        canonical_uri,
        canonical_query(raw_query),
        canonical_headers,
        signed.join(";"),
        payload_hash
    );
    Ok(format!(
        "{ALGORITHM}\n{date}\n{}",
        sha256_hex(canonical_request.as_bytes())
    ))
}

/// Seconds since the epoch of an `X-Sdk-Date` (`YYYYMMDDTHHMMSSZ`).
pub fn parse_sdk_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Checks a request's signature with the secret key of its access key.
pub fn verify(
    req: &SignedRequest,
    auth: &Authorization,
    secret_key: &str,
    now_unix_secs: i64,
) -> Result<(), SignatureError> {
    let date = header(req.headers, "x-sdk-date").ok_or(SignatureError::BadDate)?;
    let at = parse_sdk_date(date).ok_or(SignatureError::BadDate)?;
    if (now_unix_secs - at).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::DateOutOfWindow);
    }
    let check = |uri: &str| -> Result<bool, SignatureError> {
        let sts = string_to_sign(
            req.method,
            uri,
            req.raw_query,
            req.headers,
            &auth.signed_headers,
            req.body,
            date,
        )?;
        Ok(crate::same_bytes(
            hmac_hex(secret_key, &sts).as_bytes(),
            auth.signature.as_bytes(),
        ))
    };
    if check(&canonical_uri_decoded(req.raw_path))? || check(&canonical_uri_raw(req.raw_path))? {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs a request as the Python SDK does: every given header without `_` in its name.
/// Returns the `Authorization` value. Used by tests and tools.
pub fn sign(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    access_key: &str,
    secret_key: &str,
) -> Result<String, SignatureError> {
    let mut signed: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !k.contains('_'))
        .collect();
    signed.sort();
    signed.dedup();
    let date = header(headers, "x-sdk-date").ok_or(SignatureError::BadDate)?;
    let sts = string_to_sign(
        method,
        &canonical_uri_decoded(raw_path),
        raw_query,
        headers,
        &signed,
        body,
        date,
    )?;
    Ok(format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={}",
        signed.join(";"),
        hmac_hex(secret_key, &sts)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "TESTAK0123456789ABCD";
    const SK: &str = "TestSecretKey0123456789abcdefghijklmnopq";
    const PROJECT: &str = "0123456789abcdef0123456789abcdef";
    const DATE: &str = "20240102T030405Z";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sdk_headers(content_type: &str) -> Vec<(String, String)> {
        h(&[
            ("Content-Type", content_type),
            ("Host", "127.0.0.1:8080"),
            ("User-Agent", "huaweicloud-usdk-python/3.0"),
            ("X-Project-Id", PROJECT),
            ("X-Sdk-Date", DATE),
        ])
    }

    fn now() -> i64 {
        parse_sdk_date(DATE).unwrap() + 60
    }

    // The three worked examples of shared/spec/clients.md §1b.
    #[test]
    fn example_1_get_with_query() {
        let headers = sdk_headers("application/json");
        let path = format!("/v2/{PROJECT}/instances");
        let query = "engine=kafka&include_failure=true&limit=10&offset=0";
        let auth = sign("GET", &path, query, &headers, b"", AK, SK).unwrap();
        assert!(
            auth.ends_with(
                "Signature=4df9d858b28ed127bb567c65798813c32621c159086113c7ea6d882b346611b3"
            ),
            "{auth}"
        );
        let parsed = parse_authorization(&auth).unwrap();
        let req = SignedRequest {
            method: "GET",
            raw_path: &path,
            raw_query: query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(verify(&req, &parsed, SK, now()), Ok(()));
    }

    #[test]
    fn example_2_post_with_body() {
        let headers = sdk_headers("application/json;charset=UTF-8");
        let path = format!("/v2/{PROJECT}/instances/8d2b1f7c-1f0e-4c2a-9d7a-0a1b2c3d4e5f/topics");
        let body = br#"{"id": "topic-1", "partition": 3, "replication": 3}"#;
        let auth = sign("POST", &path, "", &headers, body, AK, SK).unwrap();
        assert!(
            auth.ends_with(
                "Signature=1de15cd9e0b17d481e99137991a9884bb46303bb2ea2555ade8e21b7ddb04338"
            ),
            "{auth}"
        );
        let parsed = parse_authorization(&auth).unwrap();
        let req = SignedRequest {
            method: "POST",
            raw_path: &path,
            raw_query: "",
            headers: &headers,
            body,
        };
        assert_eq!(verify(&req, &parsed, SK, now()), Ok(()));
        let tampered = SignedRequest {
            body: br#"{"id": "topic-2", "partition": 3, "replication": 3}"#,
            ..req
        };
        assert_eq!(
            verify(&tampered, &parsed, SK, now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn example_3_encoded_segment_repeated_key_and_underscore_header() {
        let headers = h(&[
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:8080"),
            ("X-Sdk-Date", DATE),
            ("X_Custom", "x"),
        ]);
        let path = format!("/v2/rabbitmq/{PROJECT}/instances/i-1/vhosts/%2F/queues");
        let query = "name=a%20b%2Bc&offset=0&tag=a&tag=z";
        let auth = sign("GET", &path, query, &headers, b"", AK, SK).unwrap();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-sdk-date,"),
            "{auth}"
        );
        assert!(
            auth.ends_with(
                "Signature=577881aaa282128b7b60627a808d7ce1162bc750f05e8786e94a021b920c527b"
            ),
            "{auth}"
        );
    }

    #[test]
    fn dates_and_headers_are_checked() {
        let headers = sdk_headers("application/json");
        let path = format!("/v2/{PROJECT}/instances");
        let auth =
            parse_authorization(&sign("GET", &path, "", &headers, b"", AK, SK).unwrap()).unwrap();
        let req = SignedRequest {
            method: "GET",
            raw_path: &path,
            raw_query: "",
            headers: &headers,
            body: b"",
        };
        let at = parse_sdk_date(DATE).unwrap();
        assert_eq!(
            verify(&req, &auth, SK, at + 16 * 60),
            Err(SignatureError::DateOutOfWindow)
        );
        assert_eq!(
            verify(&req, &auth, "wrong", at),
            Err(SignatureError::Mismatch)
        );
        let fewer: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k != "User-Agent")
            .cloned()
            .collect();
        let req = SignedRequest {
            headers: &fewer,
            ..req
        };
        assert_eq!(
            verify(&req, &auth, SK, at),
            Err(SignatureError::MissingHeader("user-agent".into()))
        );
    }

    #[test]
    fn a_content_hash_header_cannot_swap_the_body() {
        let mut headers = sdk_headers("application/json");
        let path = format!("/v2/{PROJECT}/instances");
        let body = br#"{"name": "a"}"#;
        let auth =
            parse_authorization(&sign("POST", &path, "", &headers, body, AK, SK).unwrap()).unwrap();
        let original_hash = sha256_hex(body);
        headers.push(("X-Sdk-Content-Sha256".into(), original_hash));
        let swapped = SignedRequest {
            method: "POST",
            raw_path: &path,
            raw_query: "",
            headers: &headers,
            body: br#"{"name": "b"}"#,
        };
        assert_eq!(
            verify(&swapped, &auth, SK, now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sdk_dates() {
        assert_eq!(parse_sdk_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_sdk_date("20240102T030405Z"), Some(1_704_164_645));
        assert_eq!(parse_sdk_date("2024-01-02T03:04:05Z"), None);
        assert_eq!(parse_sdk_date("20241302T030405Z"), None);
    }

    #[test]
    fn malformed_headers() {
        assert!(parse_authorization("AWS4 x").is_err());
        assert!(parse_authorization("SDK-HMAC-SHA256 Access=a").is_err());
        assert!(
            parse_authorization("SDK-HMAC-SHA256 Access=a, SignedHeaders=host, Signature=00")
                .is_ok()
        );
    }
}
