//! `/api/queues`: list, show, declare, delete, purge, and get messages.
//!
//! Left out of RabbitMQ's answers, with no true value here: `memory`, `reductions`,
//! `garbage_collection` and `backing_queue_status` (the Erlang process and classic-queue
//! internals), `messages_persistent`, `message_bytes_persistent`,
//! `message_bytes_unacknowledged`, `message_bytes_ram` and `message_bytes_paged_out` (the
//! broker keeps no such totals; `message_bytes` counts the ready messages) and
//! `head_message_timestamp` (the head message is not visible from outside the queue).

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};
use amqp::auth::Access;
use amqp::broker::{ConnectionInfo, QueueDeclare};
use amqp::json::table_to_json;
use amqp::queue::settings::type_name;
use amqp::queue::Queue;
use amqp::vhost::VHost;
use amqp::AmqpError;
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::Body;
use crate::connections::{connections_by_id, consumer_json};
use crate::error::ApiError;
use crate::format::{iso_time, properties_to_json, rate};
use crate::list::{created_or_exists, json_ok, no_content, reply_item, reply_list, Params};
use crate::stats::message_stats;
use crate::{AppState, Segs};

pub fn queue_json(
    state: &AppState,
    q: &Arc<Queue>,
    connections: &HashMap<u64, ConnectionInfo>,
) -> Value {
    let (ready, unacked, consumers) = q.counts();
    let ready_bytes = q.ready_bytes();
    let paged = q.paged_count();
    let (counters, rates, idle_since) = state.stats.queue(q);
    let consumer_list = q.consumers();
    let exclusive_tag = consumer_list
        .iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.clone());
    let sac_tag = q
        .settings
        .single_active_consumer
        .then(|| consumer_list.first().map(|c| c.tag.clone()))
        .flatten();
    // Whether the queue can hand a message to a consumer right now (RabbitMQ measures the
    // share of time it could; this is that share at this instant).
    let capacity = if consumer_list.iter().any(|c| c.has_credit()) {
        1.0
    } else {
        0.0
    };
    let mut v = json!({
        "name": q.name,
        "vhost": q.vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.is_exclusive(),
        "arguments": table_to_json(&q.arguments),
        "type": q.settings.kind.as_str(),
        "node": state.node,
        "state": "running",
        "policy": null,
        "operator_policy": null,
        "effective_policy_definition": {},
        "recoverable_slaves": null,
        "exclusive_consumer_tag": exclusive_tag,
        "single_active_consumer_tag": sac_tag,
        "consumers": consumers,
        "consumer_capacity": capacity,
        "consumer_utilisation": capacity,
        "idle_since": iso_time(idle_since),
        "messages": ready + unacked,
        "messages_details": rate(rates.messages),
        "messages_ready": ready,
        "messages_ready_details": rate(rates.messages_ready),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": rate(rates.messages_unacknowledged),
        "messages_ram": ready.saturating_sub(paged) + unacked,
        "messages_ready_ram": ready.saturating_sub(paged),
        "messages_unacknowledged_ram": unacked,
        "messages_paged_out": paged,
        "message_bytes": ready_bytes,
        "message_bytes_ready": ready_bytes,
        "message_stats": message_stats(&counters, &rates, true),
    });
    if let (Some(owner), Value::Object(m)) = (q.exclusive_owner, &mut v) {
        if let Some(c) = connections.get(&owner) {
            m.insert(
                "owner_pid_details".into(),
                json!({"name": c.name, "peer_host": c.peer.ip().to_string(), "peer_port": c.peer.port()}),
            );
        }
    }
    v
}

fn of_vhost(state: &AppState, v: &VHost, conns: &HashMap<u64, ConnectionInfo>) -> Vec<Value> {
    v.queues()
        .iter()
        .map(|q| queue_json(state, q, conns))
        .collect()
}

/// GET /api/queues
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let conns = connections_by_id(&state);
    let items = caller
        .visible_vhosts(&state)
        .iter()
        .flat_map(|v| of_vhost(&state, v, &conns))
        .collect();
    reply_list(items, &params, &["vhost", "name"])
}

/// GET /api/queues/{vhost}
pub async fn list_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let conns = connections_by_id(&state);
    reply_list(of_vhost(&state, &v, &conns), &params, &["vhost", "name"])
}

/// GET /api/queues/{vhost}/{name}: with its consumers.
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let q = v.queue(&name).ok_or(ApiError::NotFound)?;
    let conns = connections_by_id(&state);
    let mut item = queue_json(&state, &q, &conns);
    if let Value::Object(m) = &mut item {
        let consumers: Vec<Value> = q
            .consumers()
            .iter()
            .map(|c| consumer_json(&state, &q, c, &conns))
            .collect();
        m.insert("consumer_details".into(), Value::Array(consumers));
        m.insert("deliveries".into(), json!([]));
        m.insert("incoming".into(), json!([]));
    }
    Ok(reply_item(item, &params))
}

/// PUT /api/queues/{vhost}/{name}: `durable`, `auto_delete` (false) and `arguments`;
/// checked as a queue.declare from the caller.
pub async fn declare(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, name)): Segs<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = caller.vhost_to_change(&state, &vhost)?;
    let body = Body::parse(&body)?;
    let durable = body.bool("durable", false)?;
    let auto_delete = body.bool("auto_delete", false)?;
    let arguments = body.table("arguments")?;
    if name.starts_with("amq.") {
        return Err(AmqpError::access_refused(format!(
            "queue name '{name}' contains reserved prefix 'amq.*'"
        ))
        .into());
    }
    state
        .broker
        .check(caller.name(), &v.name, Access::Configure, "queue", &name)?;
    check_queue_type(&arguments, &name, &v.name)?;
    let (_, created) = state
        .broker
        .declare_queue(
            &v,
            QueueDeclare {
                name: &name,
                passive: false,
                durable,
                exclusive: false,
                auto_delete,
                arguments,
                connection: None,
            },
        )
        .await?;
    Ok(created_or_exists(created))
}

/// `x-queue-type` as RabbitMQ's management checks it before declaring (the broker, as
/// RabbitMQ over AMQP, fails internally on a type that is not a string). Streams are not
/// supported by the broker.
fn check_queue_type(arguments: &FieldTable, queue: &str, vhost: &str) -> Result<(), ApiError> {
    let why = match arguments.inner().get("x-queue-type") {
        None => return Ok(()),
        Some(AMQPValue::LongString(s)) => match s.as_bytes() {
            b"classic" | b"quorum" => return Ok(()),
            other => format!(
                "\"unsupported queue type '{}'\"",
                String::from_utf8_lossy(other)
            ),
        },
        Some(other) => format!("{{unacceptable_type,{}}}", type_name(other)),
    };
    Err(ApiError::bad_request(format!(
        "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': {why}"
    )))
}

/// DELETE /api/queues/{vhost}/{name}[?if-empty=true][&if-unused=true]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    v.queue(&name).ok_or(ApiError::NotFound)?;
    state
        .broker
        .check(caller.name(), &v.name, Access::Configure, "queue", &name)?;
    state
        .broker
        .delete_queue(
            &v,
            &name,
            params.flag("if-unused"),
            params.flag("if-empty"),
            None,
        )
        .await?;
    Ok(no_content())
}

/// DELETE /api/queues/{vhost}/{name}/contents: purge.
pub async fn purge(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let q = v.queue(&name).ok_or(ApiError::NotFound)?;
    state
        .broker
        .check(caller.name(), &v.name, Access::Read, "queue", &name)?;
    q.purge();
    Ok(no_content())
}

/// How messages got through the API are settled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AckMode {
    /// Back in the queue (redelivered).
    AckRequeueTrue,
    /// Acknowledged: gone.
    AckRequeueFalse,
    /// Rejected and requeued.
    RejectRequeueTrue,
    /// Rejected: dead-lettered or dropped.
    RejectRequeueFalse,
}

/// POST /api/queues/{vhost}/{name}/get: `count`, `ackmode`, `encoding` (`auto` or
/// `base64`) and optionally `truncate` (bytes of payload shown).
pub async fn get_messages(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, name)): Segs<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = caller.vhost_to_use(&state, &vhost)?;
    let body = Body::parse(&body)?;
    body.require(&["ackmode", "count", "encoding"])?;
    let count = body.int("count")?.unwrap_or(0);
    let count = usize::try_from(count).map_err(|_| ApiError::bad_pair("not_integer", count))?;
    let mode = match body.str("ackmode")?.unwrap_or_default() {
        "ack_requeue_true" => AckMode::AckRequeueTrue,
        "ack_requeue_false" => AckMode::AckRequeueFalse,
        "reject_requeue_true" => AckMode::RejectRequeueTrue,
        "reject_requeue_false" => AckMode::RejectRequeueFalse,
        other => return Err(ApiError::bad_pair("unsupported_ackmode", other)),
    };
    let base64_only = match body.str("encoding")?.unwrap_or_default() {
        "auto" => false,
        "base64" => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let truncate = body
        .int("truncate")?
        .map(|t| usize::try_from(t).unwrap_or(0));
    let q = v
        .queue(&name)
        .ok_or_else(|| ApiError::Get(v.no_queue(&name)))?;
    state
        .broker
        .check(caller.name(), &v.name, Access::Read, "queue", &name)
        .map_err(ApiError::Get)?;
    if q.is_exclusive() {
        return Err(ApiError::Get(AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{name}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            v.name
        ))));
    }
    let (messages, remaining) = q.fetch(count);
    let n = messages.len();
    let out: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let body = &m.message.body;
            let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
            let (payload, encoding) = match std::str::from_utf8(shown) {
                Ok(s) if !base64_only => (s.to_string(), "string"),
                _ => (
                    base64::engine::general_purpose::STANDARD.encode(shown),
                    "base64",
                ),
            };
            json!({
                "payload_bytes": body.len(),
                "redelivered": m.redelivered,
                "exchange": m.message.exchange,
                "routing_key": m.message.routing_key,
                "message_count": remaining + (n - i - 1),
                "properties": properties_to_json(&m.message.properties),
                "payload": payload,
                "payload_encoding": encoding,
            })
        })
        .collect();
    match mode {
        AckMode::AckRequeueTrue | AckMode::RejectRequeueTrue => q.requeue(messages),
        AckMode::AckRequeueFalse => q.drop_fetched(&messages),
        AckMode::RejectRequeueFalse => q.reject(messages),
    }
    Ok(json_ok(Value::Array(out)))
}
