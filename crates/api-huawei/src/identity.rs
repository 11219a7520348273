//! Who sent a request: an IAM token (`X-Auth-Token`) or an SDK-HMAC-SHA256 signature, and
//! whether that identity may act on the project in the path.

use axum::http::{HeaderMap, Method};
use control::Caller;
use store::{MetaStore, User};

use crate::error::ApiError;

#[derive(Clone, Debug)]
pub struct Identity {
    pub user: User,
    /// The project the credential is bound to: a token's scope, or the `X-Project-Id` a
    /// signed request carries. `None` for a signed request without one.
    pub project_id: Option<String>,
}

fn signature_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::other(
        401,
        "APIGW.0301",
        format!("Incorrect IAM authentication information: verify aksk signature fail, {detail}"),
    )
}

/// Authenticates a request from its token or signature.
pub async fn authenticate(
    store: &dyn MetaStore,
    token_key: &[u8],
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Identity, ApiError> {
    if let Some(token) = headers.get("x-auth-token") {
        let token = token
            .to_str()
            .map_err(|_| ApiError::dms(401, "401001", "Invalid token."))?;
        let claims = auth::token::verify(token_key, token, auth::now_secs())
            .map_err(|e| ApiError::dms(401, "401001", format!("Invalid token: {e}.")))?;
        let user = store
            .user(&claims.user_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::dms(401, "401001", "Invalid token: the user no longer exists.")
            })?;
        return Ok(Identity {
            user,
            project_id: Some(claims.project_id),
        });
    }
    let Some(authorization) = headers.get("authorization") else {
        return Err(ApiError::dms(401, "401003", "The token is missing."));
    };
    let authorization = authorization
        .to_str()
        .map_err(|_| signature_error("the Authorization header is not text"))?;
    let parsed = auth::huawei::parse_authorization(authorization).map_err(signature_error)?;
    let credential = store
        .credential(&parsed.access_key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| signature_error("unknown access key"))?;
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let req = auth::huawei::SignedRequest {
        method: method.as_str(),
        raw_path,
        raw_query,
        headers: &header_list,
        body,
    };
    auth::huawei::verify(&req, &parsed, &credential.secret_key, auth::now_secs())
        .map_err(signature_error)?;
    let user = store
        .user(&credential.user_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| signature_error("the credential's user no longer exists"))?;
    let project_id = headers
        .get("x-project-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(Identity { user, project_id })
}

fn is_project_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The caller acting on `project_id` from the path: the project must exist in the
/// identity's account and match the project the credential is bound to.
pub async fn caller_for(
    store: &dyn MetaStore,
    identity: &Identity,
    project_id: &str,
) -> Result<Caller, ApiError> {
    if !is_project_id(project_id) {
        return Err(ApiError::dms(
            400,
            "400002",
            "The project ID format is invalid.",
        ));
    }
    let mismatch = || ApiError::dms(401, "401004", "The project ID and token do not match.");
    if identity
        .project_id
        .as_deref()
        .is_some_and(|p| p != project_id)
    {
        return Err(mismatch());
    }
    let project = store
        .project(project_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(mismatch)?;
    if project.domain_id != identity.user.domain_id {
        return Err(mismatch());
    }
    Ok(Caller {
        user_id: identity.user.id.clone(),
        user_name: identity.user.name.clone(),
        project_id: project_id.to_string(),
    })
}
