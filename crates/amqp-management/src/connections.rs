//! `/api/connections`, `/api/channels`, `/api/consumers`: the clients connected now.
//! Administrators and monitoring users see every connection and channel, others their
//! own; consumers are listed per vhost the caller may look into.
//!
//! Left out of RabbitMQ's answers: the byte and frame counters (`recv_oct`, `recv_cnt`,
//! `send_oct`, `send_cnt`, `send_pend`, and their rates) and each channel's
//! `message_stats`, `messages_unconfirmed` and `idle_since` (the broker keeps no such
//! counters per connection or channel), `garbage_collection` and `reductions` (Erlang
//! process internals). A transactional channel's `messages_uncommitted` and
//! `acks_uncommitted` are not visible either, so they are shown for other channels only
//! (where they are 0).

use std::collections::HashMap;
use std::sync::Arc;

use amqp::broker::ConnectionInfo;
use amqp::json::table_to_json;
use amqp::queue::{ChannelMode, ChannelSink, Consumer, Queue};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::list::{no_content, reply_item, reply_list, Params};
use crate::{AppState, Segs};

pub fn connections_by_id(state: &AppState) -> HashMap<u64, ConnectionInfo> {
    state
        .broker
        .connections()
        .into_iter()
        .map(|c| (c.id, c))
        .collect()
}

fn connection_json(state: &AppState, c: &ConnectionInfo) -> Value {
    json!({
        "name": c.name,
        "node": state.node,
        "type": "network",
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "ssl": false,
        "ssl_protocol": null,
        "ssl_key_exchange": null,
        "ssl_cipher": null,
        "ssl_hash": null,
        "peer_cert_subject": null,
        "peer_cert_issuer": null,
        "peer_cert_validity": null,
        "auth_mechanism": c.auth_mechanism,
        "channel_max": c.channel_max,
        "frame_max": c.frame_max,
        "timeout": c.heartbeat,
        "channels": c.channels.len(),
        "client_properties": c.client_properties,
        "connected_at": c.connected_at_ms,
    })
}

fn channel_name(c: &ConnectionInfo, ch: &ChannelSink) -> String {
    format!("{} ({})", c.name, ch.id)
}

fn channel_json(state: &AppState, c: &ConnectionInfo, ch: &ChannelSink) -> Value {
    let mode = ch.mode();
    let mut v = json!({
        "name": channel_name(c, ch),
        "number": ch.id,
        "node": state.node,
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "state": "running",
        "connection_details": {
            "name": c.name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "confirm": mode == ChannelMode::Confirm,
        "transactional": mode == ChannelMode::Transactional,
        "consumer_count": ch.consumer_count(),
        "prefetch_count": ch.consumer_prefetch(),
        "global_prefetch_count": ch.global_prefetch(),
        "messages_unacknowledged": ch.unacked_count(),
        "pending_raft_commands": 0,
    });
    if let (false, Value::Object(m)) = (mode == ChannelMode::Transactional, &mut v) {
        m.insert("messages_uncommitted".into(), json!(0));
        m.insert("acks_uncommitted".into(), json!(0));
    }
    v
}

/// The `channel_details` of a consumer.
fn channel_details(state: &AppState, c: &ConnectionInfo, ch: &ChannelSink) -> Value {
    json!({
        "connection_name": c.name,
        "name": channel_name(c, ch),
        "node": state.node,
        "number": ch.id,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "user": c.user,
    })
}

pub fn consumer_json(
    state: &AppState,
    q: &Queue,
    consumer: &Consumer,
    conns: &HashMap<u64, ConnectionInfo>,
) -> Value {
    let (active, status) = if q.settings.single_active_consumer {
        let first = q
            .consumers()
            .first()
            .is_some_and(|f| std::ptr::eq(f.as_ref(), consumer));
        if first {
            (true, "single_active")
        } else {
            (false, "waiting")
        }
    } else {
        (true, "up")
    };
    let details = conns
        .get(&consumer.channel.conn.id)
        .map_or(json!({}), |c| channel_details(state, c, &consumer.channel));
    json!({
        "consumer_tag": consumer.tag,
        "exclusive": consumer.exclusive,
        "ack_required": !consumer.no_ack,
        "prefetch_count": consumer.prefetch,
        "arguments": table_to_json(&consumer.arguments),
        "active": active,
        "activity_status": status,
        "queue": {"name": q.name, "vhost": q.vhost},
        "channel_details": details,
    })
}

fn visible_connections(state: &AppState, caller: &Caller) -> Vec<ConnectionInfo> {
    state
        .broker
        .connections()
        .into_iter()
        .filter(|c| caller.sees_connection_of(&c.user))
        .collect()
}

/// A connection by name, if the caller may see it.
fn find(state: &AppState, caller: &Caller, name: &str) -> Result<ConnectionInfo, ApiError> {
    let c = state
        .broker
        .connections()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or(ApiError::NotFound)?;
    if !caller.sees_connection_of(&c.user) {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    Ok(c)
}

/// GET /api/connections
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let items = visible_connections(&state, &caller)
        .iter()
        .map(|c| connection_json(&state, c))
        .collect();
    reply_list(items, &params, &["name"])
}

/// GET /api/vhosts/{vhost}/connections
pub async fn list_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let items = visible_connections(&state, &caller)
        .iter()
        .filter(|c| c.vhost == v.name)
        .map(|c| connection_json(&state, c))
        .collect();
    reply_list(items, &params, &["name"])
}

/// GET /api/connections/{name}
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    let c = find(&state, &caller, &name)?;
    Ok(reply_item(connection_json(&state, &c), &params))
}

/// DELETE /api/connections/{name}: closed with 320 CONNECTION_FORCED and the reason of
/// the `X-Reason` header.
pub async fn close(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    let c = find(&state, &caller, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin");
    state.broker.close_connections(|x| x.id == c.id, reason);
    Ok(no_content())
}

fn channels_of(state: &AppState, conns: &[ConnectionInfo]) -> Vec<Value> {
    conns
        .iter()
        .flat_map(|c| c.channels.iter().map(move |ch| channel_json(state, c, ch)))
        .collect()
}

/// GET /api/connections/{name}/channels
pub async fn list_of_connection(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    let c = find(&state, &caller, &name)?;
    reply_list(channels_of(&state, &[c]), &params, &["name"])
}

/// GET /api/channels
pub async fn list_channels(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let conns = visible_connections(&state, &caller);
    reply_list(channels_of(&state, &conns), &params, &["name"])
}

/// GET /api/vhosts/{vhost}/channels
pub async fn list_vhost_channels(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let conns: Vec<ConnectionInfo> = visible_connections(&state, &caller)
        .into_iter()
        .filter(|c| c.vhost == v.name)
        .collect();
    reply_list(channels_of(&state, &conns), &params, &["name"])
}

/// GET /api/channels/{name}: with its consumers.
pub async fn show_channel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    let conns = visible_connections(&state, &caller);
    let (c, ch) = conns
        .iter()
        .find_map(|c| {
            c.channels
                .iter()
                .find(|ch| channel_name(c, ch) == name)
                .map(|ch| (c, ch))
        })
        .ok_or(ApiError::NotFound)?;
    let by_id = connections_by_id(&state);
    let mut item = channel_json(&state, c, ch);
    if let Value::Object(m) = &mut item {
        let mut consumers = Vec::new();
        if let Some(v) = state.broker.vhost(&c.vhost) {
            for q in v.queues() {
                for consumer in q.consumers() {
                    if std::ptr::eq(consumer.channel.as_ref(), ch.as_ref()) {
                        consumers.push(consumer_json(&state, &q, &consumer, &by_id));
                    }
                }
            }
        }
        m.insert("consumer_details".into(), Value::Array(consumers));
        m.insert("deliveries".into(), json!([]));
        m.insert("publishes".into(), json!([]));
    }
    Ok(reply_item(item, &params))
}

fn consumers_of(state: &AppState, vhosts: &[Arc<amqp::vhost::VHost>]) -> Vec<Value> {
    let conns = connections_by_id(state);
    let mut out = Vec::new();
    for v in vhosts {
        for q in v.queues() {
            for c in q.consumers() {
                out.push(consumer_json(state, &q, &c, &conns));
            }
        }
    }
    out
}

/// GET /api/consumers
pub async fn list_consumers(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let items = consumers_of(&state, &caller.visible_vhosts(&state));
    reply_list(
        items,
        &params,
        &["queue.vhost", "queue.name", "consumer_tag"],
    )
}

/// GET /api/consumers/{vhost}
pub async fn list_vhost_consumers(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let items = consumers_of(&state, &[v]);
    reply_list(
        items,
        &params,
        &["queue.vhost", "queue.name", "consumer_tag"],
    )
}
