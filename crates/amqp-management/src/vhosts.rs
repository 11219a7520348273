//! `/api/vhosts`: list, show, create, delete.
//!
//! The broker keeps no description, tags or tracing flag for a vhost: they are accepted
//! (and checked) on PUT but not stored, and shown as a vhost created without them (`/` is
//! described as RabbitMQ describes it). `recv_oct` and `send_oct` are left out: the broker
//! does not count the bytes of its connections.

use std::sync::Arc;

use amqp::auth::Permission;
use amqp::vhost::VHost;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::format::rate;
use crate::list::{created_or_exists, no_content, reply_item, reply_list, Params};
use crate::stats::message_stats;
use crate::{AppState, Segs};

fn vhost_json(state: &AppState, v: &VHost) -> Value {
    let (mut ready, mut unacked) = (0, 0);
    for q in v.queues() {
        let (r, u, _) = q.counts();
        ready += r;
        unacked += u;
    }
    let (counters, rates) = state.stats.vhost(&state.broker, &v.name);
    let description = if v.name == "/" {
        "Default virtual host"
    } else {
        ""
    };
    json!({
        "name": v.name,
        "description": description,
        "tags": [],
        "default_queue_type": "undefined",
        "metadata": {"description": description, "tags": []},
        "tracing": false,
        "cluster_state": {state.node.clone(): "running"},
        "messages": ready + unacked,
        "messages_details": rate(rates.messages),
        "messages_ready": ready,
        "messages_ready_details": rate(rates.messages_ready),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": rate(rates.messages_unacknowledged),
        "message_stats": message_stats(&counters, &rates, false),
    })
}

/// GET /api/vhosts: every vhost for monitoring users, the ones with a permission for
/// others.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let items = state
        .broker
        .vhosts()
        .iter()
        .filter(|v| caller.is_monitor() || caller.sees_vhost(&state, &v.name))
        .map(|v| vhost_json(&state, v))
        .collect();
    reply_list(items, &params, &["name"])
}

/// GET /api/vhosts/{vhost} (administrators only, as in RabbitMQ).
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let v = state.broker.vhost(&name).ok_or(ApiError::NotFound)?;
    Ok(reply_item(vhost_json(&state, &v), &params))
}

/// PUT /api/vhosts/{vhost}: 201 when created, 204 when it was there. The creator gets
/// every permission in a vhost it creates, as RabbitMQ grants it.
pub async fn declare(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(name): Segs<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let body = Body::parse(&body)?;
    body.bool("tracing", false)?;
    body.str("description")?;
    let created = state.broker.add_vhost(&name).await?;
    if created {
        state
            .broker
            .set_permission(Permission {
                user: caller.name().to_string(),
                vhost: name,
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            })
            .await?;
    }
    Ok(created_or_exists(created))
}

/// DELETE /api/vhosts/{vhost}: its queues, exchanges, permissions and connections go.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    if state.broker.delete_vhost(&name).await? {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound)
    }
}
