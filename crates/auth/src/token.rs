//! IAM tokens for `X-Auth-Token`: the claims as JSON, signed with HMAC-SHA256 under a
//! server key. Stateless, so they survive restarts as long as the key does; they expire
//! after 24 hours like Huawei's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub user_id: String,
    pub user_name: String,
    pub domain_id: String,
    pub project_id: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is wrong")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm cannot happen.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(payload);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

pub fn issue(key: &[u8], claims: &TokenClaims) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let sig = B64.encode(mac(key, payload.as_bytes()));
    format!("{payload}.{sig}")
}

pub fn verify(key: &[u8], token: &str, now_unix_secs: i64) -> Result<TokenClaims, TokenError> {
    let (payload, sig) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    if !crate::same_bytes(&mac(key, payload.as_bytes()), &sig) {
        return Err(TokenError::BadSignature);
    }
    let json = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: TokenClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if now_unix_secs >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            user_id: "u".into(),
            user_name: "admin".into(),
            domain_id: "d".into(),
            project_id: "p".into(),
            issued_at: 100,
            expires_at: 200,
        }
    }

    #[test]
    fn issue_verify_expire_tamper() {
        let t = issue(b"key", &claims());
        assert_eq!(verify(b"key", &t, 150), Ok(claims()));
        assert_eq!(verify(b"key", &t, 200), Err(TokenError::Expired));
        assert_eq!(verify(b"other", &t, 150), Err(TokenError::BadSignature));
        let mut forged = claims();
        forged.project_id = "q".into();
        let forged_payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        let sig = t.split_once('.').unwrap().1;
        assert_eq!(
            verify(b"key", &format!("{forged_payload}.{sig}"), 150),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(b"key", "nonsense", 150), Err(TokenError::Malformed));
    }
}
