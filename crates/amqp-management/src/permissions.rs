//! `/api/permissions`, `/api/users/{user}/permissions`, `/api/vhosts/{vhost}/permissions`:
//! a user's configure, write and read regular expressions in a vhost (administrators
//! only).

use std::sync::Arc;

use amqp::auth::Permission;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::list::{created_or_exists, no_content, reply_item, reply_list, Params};
use crate::{AppState, Segs};

fn permission_json(p: &Permission) -> Value {
    json!({
        "user": p.user,
        "vhost": p.vhost,
        "configure": p.configure,
        "write": p.write,
        "read": p.read,
    })
}

fn listed(
    state: &AppState,
    params: &Params,
    keep: impl Fn(&Permission) -> bool,
) -> Result<Response, ApiError> {
    let items = state
        .broker
        .permissions()
        .iter()
        .filter(|p| keep(p))
        .map(permission_json)
        .collect();
    reply_list(items, params, &["vhost", "user"])
}

/// GET /api/permissions
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    listed(&state, &params, |_| true)
}

/// GET /api/users/{user}/permissions
pub async fn list_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(user): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    state.broker.user(&user).ok_or(ApiError::NotFound)?;
    listed(&state, &params, |p| p.user == user)
}

/// GET /api/vhosts/{vhost}/permissions
pub async fn list_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    state.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    listed(&state, &params, |p| p.vhost == vhost)
}

fn find(state: &AppState, vhost: &str, user: &str) -> Option<Permission> {
    state
        .broker
        .permissions()
        .into_iter()
        .find(|p| p.vhost == vhost && p.user == user)
}

/// GET /api/permissions/{vhost}/{user}
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, user)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let p = find(&state, &vhost, &user).ok_or(ApiError::NotFound)?;
    Ok(reply_item(permission_json(&p), &params))
}

/// PUT /api/permissions/{vhost}/{user}: `configure`, `write` and `read` are required and
/// must be regular expressions.
pub async fn declare(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, user)): Segs<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let body = Body::parse(&body)?;
    body.require(&["configure", "write", "read"])?;
    let pattern = |key: &str| -> Result<String, ApiError> {
        let p = body.str(key)?.unwrap_or_default().to_string();
        regex::Regex::new(&p)
            .map_err(|e| ApiError::BadRequest(json!(["invalid_regexp", p, e.to_string()])))?;
        Ok(p)
    };
    let (configure, write, read) = (pattern("configure")?, pattern("write")?, pattern("read")?);
    if state.broker.vhost(&vhost).is_none() || state.broker.user(&user).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    let created = find(&state, &vhost, &user).is_none();
    state
        .broker
        .set_permission(Permission {
            user,
            vhost,
            configure,
            write,
            read,
        })
        .await?;
    Ok(created_or_exists(created))
}

/// DELETE /api/permissions/{vhost}/{user}
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, user)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    if state.broker.clear_permission(&user, &vhost).await? {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound)
    }
}
