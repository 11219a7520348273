//! `/api/definitions`: export and import users, vhosts, permissions and the durable
//! exchanges, queues and bindings (administrators only), whole or for one vhost.
//!
//! The export is the broker's definitions file (`Broker::snapshot`), in the format of
//! RabbitMQ 3.8 (`tags` a comma-separated string), without the storage ids OpenDMS adds
//! to queues; like RabbitMQ 3.8 it holds durable objects only. An import creates or
//! updates what it names and deletes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use amqp::auth::User;
use amqp::definitions::{Definitions, VHostDef, RABBIT_VERSION};
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::list::{json_ok, no_content};
use crate::{AppState, Segs};

fn export_of(state: &AppState) -> Definitions {
    let mut d = state.broker.snapshot();
    for q in &mut d.queues {
        q.opendms_log = None;
    }
    d
}

fn to_value(d: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(d).map_err(|e| ApiError::Internal(e.to_string()))
}

/// GET /api/definitions
pub async fn export(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    Ok(json_ok(to_value(&export_of(&state))?))
}

/// Removes `vhost` from each object of a list (the per-vhost format names no vhost).
fn without_vhost(items: Value) -> Value {
    match items {
        Value::Array(a) => Value::Array(
            a.into_iter()
                .map(|mut o| {
                    if let Value::Object(m) = &mut o {
                        m.remove("vhost");
                    }
                    o
                })
                .collect(),
        ),
        other => other,
    }
}

/// GET /api/definitions/{vhost}: its exchanges, queues and bindings.
pub async fn export_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    if state.broker.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    let d = export_of(&state);
    let queues: Vec<_> = d.queues.iter().filter(|q| q.vhost == vhost).collect();
    let exchanges: Vec<_> = d.exchanges.iter().filter(|e| e.vhost == vhost).collect();
    let bindings: Vec<_> = d.bindings.iter().filter(|b| b.vhost == vhost).collect();
    Ok(json_ok(json!({
        "rabbit_version": RABBIT_VERSION,
        "rabbitmq_version": RABBIT_VERSION,
        "product_name": "RabbitMQ",
        "product_version": RABBIT_VERSION,
        "parameters": [],
        "policies": [],
        "queues": without_vhost(to_value(&queues)?),
        "exchanges": without_vhost(to_value(&exchanges)?),
        "bindings": without_vhost(to_value(&bindings)?),
    })))
}

/// Reads definitions; a body that is not JSON, or holds a value of the wrong type, is 400
/// naming where. A user given with `password` rather than `password_hash` (RabbitMQ takes
/// both) gets the password hashed. Blocking (parsing and hashing).
fn parse(body: &[u8]) -> Result<Definitions, ApiError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request("failed_to_parse_json"))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("failed_to_parse_json"));
    }
    if let Some(Value::Array(users)) = value.get_mut("users") {
        for u in users.iter_mut().filter_map(Value::as_object_mut) {
            if u.contains_key("password_hash") {
                continue;
            }
            if let (Some(Value::String(name)), Some(Value::String(password))) =
                (u.get("name"), u.get("password"))
            {
                let hash = User::new(name, password, Vec::new()).password_hash;
                u.insert("password_hash".into(), Value::String(hash));
            }
        }
    }
    serde_path_to_error::deserialize(value)
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.path(), e.inner())))
}

async fn parse_off_workers(body: Bytes) -> Result<Definitions, ApiError> {
    tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Refuses definitions naming a vhost that neither exists nor is among them
/// (`["no_such_vhost", NAME]`, as RabbitMQ answers), before anything is changed.
fn check_vhosts(state: &AppState, d: &Definitions) -> Result<(), ApiError> {
    let declared: BTreeSet<&str> = d.vhosts.iter().map(|v| v.name.as_str()).collect();
    let named = d
        .queues
        .iter()
        .map(|q| q.vhost.as_str())
        .chain(d.exchanges.iter().map(|e| e.vhost.as_str()))
        .chain(d.bindings.iter().map(|b| b.vhost.as_str()))
        .chain(d.permissions.iter().map(|p| p.vhost.as_str()));
    for v in named {
        if !declared.contains(v) && state.broker.vhost(v).is_none() {
            return Err(ApiError::bad_pair("no_such_vhost", v));
        }
    }
    Ok(())
}

/// POST /api/definitions
pub async fn import(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let d = parse_off_workers(body).await?;
    check_vhosts(&state, &d)?;
    state.broker.import(d).await?;
    Ok(no_content())
}

/// POST /api/definitions/{vhost}: exchanges, queues and bindings into that vhost (their
/// own `vhost`, if any, is ignored).
pub async fn import_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(vhost): Segs<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    if state.broker.vhost(&vhost).is_none() {
        return Err(ApiError::NotFoundBecause("vhost_not_found".into()));
    }
    let parsed = parse_off_workers(body).await?;
    let mut d = Definitions {
        vhosts: vec![VHostDef {
            name: vhost.clone(),
        }],
        ..Definitions::default()
    };
    d.queues = parsed.queues;
    d.exchanges = parsed.exchanges;
    d.bindings = parsed.bindings;
    for q in &mut d.queues {
        q.vhost.clone_from(&vhost);
        q.opendms_log = None;
    }
    for e in &mut d.exchanges {
        e.vhost.clone_from(&vhost);
    }
    for b in &mut d.bindings {
        b.vhost.clone_from(&vhost);
    }
    state.broker.import(d).await?;
    Ok(no_content())
}
