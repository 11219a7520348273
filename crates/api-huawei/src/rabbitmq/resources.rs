//! What an instance's broker holds, through the API (huaweicloudsdkrabbitmq beyond seed
//! 002): vhosts, exchanges, queues, bindings and users. Each acts on the running broker and
//! shows what the broker has, whoever made it (this API, an AMQP client or the management
//! API).

use std::sync::Arc;

use axum::response::Response;
use control::model::{BindingInfo, ExchangeInfo, NewQueue, QueueInfo, VhostPermission};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::ApiError;
use crate::{json, no_content, ApiState};

/// `{size, total, items}` of one page (`offset` from 0, `limit` 1-50, default 10).
fn page(call: &Call, items: Vec<Value>) -> Result<Response, ApiError> {
    let offset = call.query_usize("offset")?.unwrap_or(0);
    let limit = call.query_usize("limit")?.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be within 1-50"));
    }
    let total = items.len();
    let items: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    Ok(json(
        200,
        json!({"size": items.len(), "total": total, "items": items}),
    ))
}

/// `{"name": [...]}` of the batch deletes.
#[derive(Deserialize)]
struct Names {
    name: Option<Vec<String>>,
}

fn names(call: &Call) -> Result<Vec<String>, ApiError> {
    let body: Names = call.body()?;
    match body.name {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(ApiError::bad_field("name", "a non-empty list of names")),
    }
}

// ---- vhosts ---------------------------------------------------------------------------

pub(crate) async fn list_vhosts(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let vhosts = state
        .plane
        .vhosts(call.project()?, call.instance_id())
        .await?;
    let items = vhosts
        .iter()
        .map(|v| json!({"name": v, "tracing": false}))
        .collect();
    page(&call, items)
}

#[derive(Deserialize)]
struct NewVhost {
    name: Option<String>,
}

pub(crate) async fn create_vhost(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: NewVhost = call.body()?;
    let name = body.name.unwrap_or_default();
    state
        .plane
        .create_vhost(call.project()?, call.instance_id(), &name)
        .await?;
    Ok(json(200, json!({"name": name, "tracing": false})))
}

pub(crate) async fn delete_vhosts(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let names = names(&call)?;
    state
        .plane
        .delete_vhosts(call.project()?, call.instance_id(), &names)
        .await?;
    Ok(no_content())
}

// ---- exchanges ------------------------------------------------------------------------

fn exchange_json(e: &ExchangeInfo) -> Value {
    json!({
        "vhost": e.vhost, "name": e.name, "type": e.kind, "durable": e.durable,
        "auto_delete": e.auto_delete, "internal": e.internal, "arguments": e.arguments,
        "default": e.name.is_empty() || e.name.starts_with("amq."),
    })
}

pub(crate) async fn list_exchanges(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let list = state
        .plane
        .exchanges(call.project()?, call.instance_id(), call.param("vhost"))
        .await?;
    page(&call, list.iter().map(exchange_json).collect())
}

#[derive(Deserialize)]
struct NewExchange {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    durable: Option<bool>,
    auto_delete: Option<bool>,
    internal: Option<bool>,
    arguments: Option<Map<String, Value>>,
}

pub(crate) async fn create_exchange(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let body: NewExchange = call.body()?;
    let exchange = ExchangeInfo {
        vhost: call.param("vhost").to_string(),
        name: body.name.unwrap_or_default(),
        kind: body.kind.unwrap_or_else(|| "direct".into()),
        durable: body.durable.unwrap_or(true),
        auto_delete: body.auto_delete.unwrap_or(false),
        internal: body.internal.unwrap_or(false),
        arguments: body.arguments.unwrap_or_default(),
    };
    let e = state
        .plane
        .create_exchange(call.project()?, call.instance_id(), exchange)
        .await?;
    Ok(json(200, exchange_json(&e)))
}

pub(crate) async fn delete_exchanges(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let names = names(&call)?;
    state
        .plane
        .delete_exchanges(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            &names,
        )
        .await?;
    Ok(no_content())
}

// ---- bindings -------------------------------------------------------------------------

fn binding_json(b: &BindingInfo) -> Value {
    json!({
        "source": b.source, "destination_type": b.destination_type, "destination": b.destination,
        "routing_key": b.routing_key, "properties_key": b.properties_key,
    })
}

pub(crate) async fn list_bindings(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let list = state
        .plane
        .bindings(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            call.param("exchange"),
        )
        .await?;
    page(&call, list.iter().map(binding_json).collect())
}

#[derive(Deserialize)]
struct NewBinding {
    destination_type: Option<String>,
    destination: Option<String>,
    routing_key: Option<String>,
}

pub(crate) async fn create_binding(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: NewBinding = call.body()?;
    let binding = BindingInfo {
        source: call.param("exchange").to_string(),
        destination_type: body.destination_type.unwrap_or_else(|| "queue".into()),
        destination: body.destination.unwrap_or_default(),
        routing_key: body.routing_key.unwrap_or_default(),
        properties_key: String::new(),
    };
    let b = state
        .plane
        .bind(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            binding,
        )
        .await?;
    let mut out = binding_json(&b);
    if let Some(o) = out.as_object_mut() {
        o.remove("properties_key");
    }
    Ok(json(200, out))
}

pub(crate) async fn delete_binding(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let binding = BindingInfo {
        source: call.param("exchange").to_string(),
        destination_type: call.param("destination_type").to_string(),
        destination: call.param("destination").to_string(),
        routing_key: String::new(),
        properties_key: call.param("properties_key").to_string(),
    };
    state
        .plane
        .unbind(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            binding,
        )
        .await?;
    Ok(no_content())
}

// ---- queues ---------------------------------------------------------------------------

fn queue_json(q: &QueueInfo) -> Value {
    json!({
        "vhost": q.vhost, "name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
        "messages": q.messages, "consumers": q.consumers.len(), "policy": "",
        "arguments": q.arguments,
    })
}

pub(crate) async fn list_queues(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let list = state
        .plane
        .queues(call.project()?, call.instance_id(), call.param("vhost"))
        .await?;
    page(&call, list.iter().map(queue_json).collect())
}

pub(crate) async fn show_queue(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let q = state
        .plane
        .queue(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            call.param("queue"),
        )
        .await?;
    let mut out = queue_json(&q);
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "consumer_details".into(),
            q.consumers
                .iter()
                .map(|c| {
                    json!({"consumer_tag": c.tag, "ack_required": c.ack_required,
                           "prefetch_count": c.prefetch_count})
                })
                .collect(),
        );
        o.insert(
            "queue_bindings".into(),
            q.bindings.iter().map(binding_json).collect(),
        );
    }
    Ok(json(200, out))
}

/// `CreateQueueBody`: the SDK's names for the queue's `x-` arguments.
#[derive(Deserialize)]
struct NewQueueBody {
    name: Option<String>,
    durable: Option<bool>,
    auto_delete: Option<bool>,
    dead_letter_exchange: Option<String>,
    dead_letter_routing_key: Option<String>,
    message_ttl: Option<i64>,
    lazy_mode: Option<String>,
}

pub(crate) async fn create_queue(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: NewQueueBody = call.body()?;
    let mut arguments = Map::new();
    if let Some(x) = body.dead_letter_exchange.as_ref().filter(|x| !x.is_empty()) {
        arguments.insert("x-dead-letter-exchange".into(), json!(x));
    }
    if let Some(k) = body
        .dead_letter_routing_key
        .as_ref()
        .filter(|k| !k.is_empty())
    {
        arguments.insert("x-dead-letter-routing-key".into(), json!(k));
    }
    if let Some(ttl) = body.message_ttl {
        arguments.insert("x-message-ttl".into(), json!(ttl));
    }
    if let Some(mode) = body.lazy_mode.as_ref().filter(|m| !m.is_empty()) {
        // Every queue pages its messages out past a small window (see the amqp crate):
        // `lazy` is accepted and recorded as RabbitMQ 3.8 records it.
        arguments.insert("x-queue-mode".into(), json!(mode));
    }
    let queue = NewQueue {
        name: body.name.clone().unwrap_or_default(),
        durable: body.durable.unwrap_or(true),
        auto_delete: body.auto_delete.unwrap_or(false),
        arguments,
    };
    let q = state
        .plane
        .create_queue(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            queue,
        )
        .await?;
    Ok(json(
        200,
        json!({
            "name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
            "dead_letter_exchange": body.dead_letter_exchange.unwrap_or_default(),
            "dead_letter_routing_key": body.dead_letter_routing_key.unwrap_or_default(),
            "message_ttl": body.message_ttl, "lazy_mode": body.lazy_mode.unwrap_or_default(),
        }),
    ))
}

pub(crate) async fn delete_queues(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let names = names(&call)?;
    state
        .plane
        .delete_queues(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            &names,
        )
        .await?;
    Ok(no_content())
}

/// `delete_queue_info` (`DELETE .../queues/{queue}/contents`): purges the queue.
pub(crate) async fn purge_queue(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    state
        .plane
        .purge_queue(
            call.project()?,
            call.instance_id(),
            call.param("vhost"),
            call.param("queue"),
        )
        .await?;
    Ok(no_content())
}

// ---- users ----------------------------------------------------------------------------

/// `AMQPUser`: `access_key` is the user name, `secret_key` its password.
#[derive(Deserialize)]
struct AmqpUser {
    access_key: Option<String>,
    secret_key: Option<String>,
    vhosts: Option<Vec<UserPerm>>,
}

#[derive(Deserialize)]
struct UserPerm {
    vhost: Option<String>,
    conf: Option<String>,
    write: Option<String>,
    read: Option<String>,
}

fn permissions(perms: Option<Vec<UserPerm>>) -> Vec<VhostPermission> {
    perms
        .unwrap_or_default()
        .into_iter()
        .map(|p| VhostPermission {
            vhost: p.vhost.unwrap_or_else(|| "/".into()),
            configure: p.conf.unwrap_or_else(|| ".*".into()),
            write: p.write.unwrap_or_else(|| ".*".into()),
            read: p.read.unwrap_or_else(|| ".*".into()),
        })
        .collect()
}

fn user_json(name: &str, perms: &[VhostPermission]) -> Value {
    json!({
        "access_key": name,
        // Only the broker's hash of it is kept.
        "secret_key": "******",
        "vhosts": perms.iter().map(|p| json!({
            "vhost": p.vhost, "conf": p.configure, "write": p.write, "read": p.read,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) async fn list_users(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let users = state
        .plane
        .amqp_users(call.project()?, call.instance_id())
        .await?;
    let offset = call.query_usize("offset")?.unwrap_or(0);
    let limit = call.query_usize("limit")?.unwrap_or(10).clamp(1, 50);
    let total = users.len();
    let list: Vec<Value> = users
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(name, perms)| user_json(name, perms))
        .collect();
    Ok(json(200, json!({"users": list, "total": total})))
}

pub(crate) async fn create_user(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: AmqpUser = call.body()?;
    let name = body.access_key.unwrap_or_default();
    let perms = permissions(body.vhosts);
    state
        .plane
        .put_amqp_user(
            call.project()?,
            call.instance_id(),
            &name,
            body.secret_key.as_deref(),
            perms.clone(),
            true,
        )
        .await?;
    Ok(json(200, user_json(&name, &perms)))
}

pub(crate) async fn update_user(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: AmqpUser = call.body()?;
    let name = call.param("user_name").to_string();
    let perms = permissions(body.vhosts);
    state
        .plane
        .put_amqp_user(
            call.project()?,
            call.instance_id(),
            &name,
            body.secret_key.as_deref().filter(|s| !s.is_empty()),
            perms.clone(),
            false,
        )
        .await?;
    Ok(json(200, user_json(&name, &perms)))
}

pub(crate) async fn delete_user(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    state
        .plane
        .delete_amqp_user(call.project()?, call.instance_id(), call.param("user_name"))
        .await?;
    Ok(no_content())
}
