//! `/api/users`: list, show, create or update, delete (administrators only).
//!
//! Passwords are kept as RabbitMQ keeps them (`rabbit_password_hashing_sha256`); a PUT
//! gives `password` (hashed here) or `password_hash` (taken as it is), and `tags` as a
//! comma-separated string or a list. A hash of another algorithm is refused: the broker
//! could not check it.

use std::sync::Arc;

use amqp::auth::{User, HASHING_ALGORITHM};
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::list::{created_or_exists, no_content, reply_item, reply_list, Params};
use crate::{AppState, Segs};

pub fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": HASHING_ALGORITHM,
        "tags": u.tags,
        "limits": {},
    })
}

/// GET /api/users
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let items = state.broker.users().iter().map(user_json).collect();
    reply_list(items, &params, &["name"])
}

/// GET /api/users/{user}
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let u = state.broker.user(&name).ok_or(ApiError::NotFound)?;
    Ok(reply_item(user_json(&u), &params))
}

/// `tags`: `"administrator, monitoring"` or `["administrator", "monitoring"]`.
fn parse_tags(v: &Value) -> Result<Vec<String>, ApiError> {
    let words: Vec<String> = match v {
        Value::String(s) => s.split(',').map(str::to_string).collect(),
        Value::Array(a) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_pair("not_string", t.clone()))
            })
            .collect::<Result<_, _>>()?,
        Value::Null => Vec::new(),
        other => return Err(ApiError::bad_pair("not_string", other.clone())),
    };
    Ok(words
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect())
}

/// PUT /api/users/{user}: 201 when created, 204 when updated.
pub async fn declare(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(name): Segs<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let body = Body::parse(&body)?;
    let tags = match body.0.get("tags") {
        None => return Err(ApiError::bad_request("tags_not_present")),
        Some(v) => parse_tags(v)?,
    };
    let password = body.str("password")?;
    let hash = body.str("password_hash")?;
    if let Some(alg) = body.str("hashing_algorithm")? {
        if alg != HASHING_ALGORITHM {
            return Err(ApiError::bad_pair("unsupported_hashing_algorithm", alg));
        }
    }
    let existing = state.broker.user(&name);
    let user = match (password, hash) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "both_password_and_password_hash_are_provided",
            ))
        }
        (Some(p), None) => {
            let (name, p) = (name.clone(), p.to_string());
            tokio::task::spawn_blocking(move || User::new(&name, &p, tags))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
        }
        (None, Some(h)) => {
            if !h.is_empty() && base64::engine::general_purpose::STANDARD.decode(h).is_err() {
                return Err(ApiError::bad_pair("not_base64", h));
            }
            User {
                name: name.clone(),
                password_hash: h.to_string(),
                tags,
            }
        }
        // As in RabbitMQ, a PUT without either leaves the user without a password (it
        // cannot log in with one).
        (None, None) => User {
            name: name.clone(),
            password_hash: String::new(),
            tags,
        },
    };
    state.broker.put_user(user).await?;
    Ok(created_or_exists(existing.is_none()))
}

/// DELETE /api/users/{user}: its permissions go and its connections are closed.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    if state.broker.delete_user(&name).await? {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound)
    }
}
