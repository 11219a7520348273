//! From an HTTP request to an authenticated action call: parameters from the query and the
//! form body, the signature (RPC or ACS3) over the shared credential store, nonce replay,
//! version and region.

use axum::http::request::Parts;
use control::Caller;

use crate::envelope::AliError;
use crate::{AliState, API_VERSION};

pub struct Parsed {
    pub action: String,
    pub params: Vec<(String, String)>,
    pub caller: Caller,
    pub region_id: String,
    /// Answer in JSON (else XML).
    pub json: bool,
}

impl Parsed {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn signature_error(e: auth::alibaba::AliSignatureError) -> AliError {
    use auth::alibaba::AliSignatureError as S;
    match e {
        S::BadTimestamp => AliError::new(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."),
        S::TimestampOutOfWindow => AliError::new(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ),
        S::Missing(p) => AliError::missing(p),
        S::Mismatch(sts) => AliError::new(
            400,
            "SignatureDoesNotMatch",
            format!("Specified signature is not matched with our calculation. server string to sign is:{sts}"),
        ),
        other => AliError::new(400, "IncompleteSignature", other.to_string()),
    }
}

/// Parses and authenticates. Errors come with the format to answer them in.
pub async fn parse(
    state: &AliState,
    parts: &Parts,
    body: &[u8],
) -> Result<Parsed, (AliError, bool)> {
    let raw_query = parts.uri.query().unwrap_or("");
    let query = auth::decode_pairs(raw_query);
    let mut params = query.clone();
    let form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form && !body.is_empty() {
        params.extend(auth::decode_pairs(&String::from_utf8_lossy(body)));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let header = |k: &str| {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header("authorization").filter(|a| a.starts_with(auth::alibaba::ACS3));
    let acs3 = authorization.is_some();
    let json = match get("Format") {
        Some(f) => !f.eq_ignore_ascii_case("xml"),
        // ACS3 requests carry no Format and ask for JSON; RPC answers XML by default (§8).
        None => acs3 || header("accept").is_some_and(|a| a.contains("json")),
    };
    let fail = |e: AliError| Err((e, json));

    let action = match get("Action").or_else(|| header("x-acs-action")) {
        Some(a) if !a.is_empty() => a,
        _ => return fail(AliError::missing("Action")),
    };
    let version = get("Version").or_else(|| header("x-acs-version"));
    match version.as_deref() {
        Some(API_VERSION) => {}
        Some(crate::cms::CMS_VERSION) if crate::cms::is_monitor_action(&action) => {}
        None => return fail(AliError::missing("Version")),
        Some(_) => {
            return fail(AliError::new(
                400,
                "InvalidVersion",
                "Specified parameter Version is not valid.",
            ))
        }
    }

    let now = auth::now_secs();
    let (access_key, nonce) = if let Some(authorization) = authorization {
        let parsed = auth::alibaba::parse_acs3_authorization(&authorization)
            .map_err(|e| (signature_error(e), json))?;
        let credential = credential(state, &parsed.access_key)
            .await
            .map_err(|e| (e, json))?;
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect();
        let req = auth::alibaba::SignedRequest {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            raw_query,
            headers: &headers,
            body,
        };
        auth::alibaba::verify_acs3(&req, &query, &parsed, &credential.secret_key, now)
            .map_err(|e| (signature_error(e), json))?;
        (credential, header("x-acs-signature-nonce"))
    } else {
        let Some(ak) = get("AccessKeyId") else {
            return fail(AliError::missing("AccessKeyId"));
        };
        let credential = credential(state, &ak).await.map_err(|e| (e, json))?;
        let Some(ts) = get("Timestamp") else {
            return fail(AliError::missing("Timestamp"));
        };
        auth::alibaba::check_timestamp(&ts, now).map_err(|e| (signature_error(e), json))?;
        auth::alibaba::verify_rpc(parts.method.as_str(), &params, &credential.secret_key)
            .map_err(|e| (signature_error(e), json))?;
        (credential, get("SignatureNonce"))
    };
    let Some(nonce) = nonce.filter(|n| !n.is_empty()) else {
        return fail(AliError::missing("SignatureNonce"));
    };
    if !state.fresh_nonce(&access_key.access_key, &nonce, now) {
        return fail(AliError::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }

    let user = match state.store.user(&access_key.user_id).await {
        Ok(Some(u)) => u,
        _ => {
            return fail(AliError::new(
                404,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            ))
        }
    };
    let region_id = get("RegionId").unwrap_or_default();
    let project_id = match resolve_project(state, &user.domain_id, &region_id).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    Ok(Parsed {
        action,
        caller: Caller {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            project_id,
        },
        params,
        region_id,
        json,
    })
}

/// The secret of an access key.
async fn credential(state: &AliState, access_key: &str) -> Result<store::Credential, AliError> {
    match state.store.credential(access_key).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(AliError::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )),
        Err(e) => Err(AliError::new(500, "InternalError", e.to_string())),
    }
}

/// The project a region stands for: configured, else the account's project named after the
/// region, else the account's first project.
async fn resolve_project(
    state: &AliState,
    domain_id: &str,
    region: &str,
) -> Result<String, AliError> {
    let projects = state
        .store
        .projects(domain_id)
        .await
        .map_err(|e| AliError::new(500, "InternalError", e.to_string()))?;
    if let Some(p) = state.regions.get(region) {
        if projects.iter().any(|x| &x.id == p) {
            return Ok(p.clone());
        }
    }
    projects
        .iter()
        .find(|p| p.name == region)
        .or(projects.first())
        .map(|p| p.id.clone())
        .ok_or_else(|| AliError::new(403, "Forbidden.NoProject", "the account has no project"))
}
