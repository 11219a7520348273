//! `/api/exchanges`: list, show, declare, delete, and publish through one. In paths the
//! default exchange is `amq.default`; in answers it is named `""`, as in RabbitMQ.
//!
//! Left out of RabbitMQ's answers: `user_who_performed_action` (the broker does not record
//! who declared an exchange) and `message_stats` (it counts no publishes per exchange).
//! `incoming` and `outgoing` are empty, as RabbitMQ's are in the basic rates mode.

use std::sync::Arc;

use amqp::auth::Access;
use amqp::broker::ExchangeDeclare;
use amqp::exchange::Exchange;
use amqp::json::table_to_json;
use amqp::message::{now_ms, parse_expiration, Message};
use amqp::vhost::VHost;
use amqp::AmqpError;
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::format::properties_from_json;
use crate::list::{created_or_exists, json_ok, no_content, reply_item, reply_list, Params};
use crate::{AppState, Segs};

/// The name a path gives an exchange: `amq.default` is the default exchange.
pub fn exchange_name(path_name: &str) -> &str {
    if path_name == "amq.default" {
        ""
    } else {
        path_name
    }
}

fn exchange_json(vhost: &str, e: &Exchange) -> Value {
    json!({
        "name": e.name,
        "vhost": vhost,
        "type": e.kind.as_str(),
        "durable": e.durable,
        "auto_delete": e.auto_delete,
        "internal": e.internal,
        "arguments": table_to_json(&e.arguments),
    })
}

fn default_exchange_json(vhost: &str) -> Value {
    json!({
        "name": "",
        "vhost": vhost,
        "type": "direct",
        "durable": true,
        "auto_delete": false,
        "internal": false,
        "arguments": {},
    })
}

/// A vhost's exchanges, the default one first.
fn of_vhost(v: &VHost) -> Vec<Value> {
    let mut out = vec![default_exchange_json(&v.name)];
    out.extend(v.exchanges().iter().map(|e| exchange_json(&v.name, e)));
    out
}

/// GET /api/exchanges
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let items = caller
        .visible_vhosts(&state)
        .iter()
        .flat_map(|v| of_vhost(v))
        .collect();
    reply_list(items, &params, &["vhost", "name"])
}

/// GET /api/exchanges/{vhost}
pub async fn list_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    reply_list(of_vhost(&v), &params, &["vhost", "name"])
}

/// GET /api/exchanges/{vhost}/{name}
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let mut item = match exchange_name(&name) {
        "" => default_exchange_json(&v.name),
        n => exchange_json(&v.name, &*v.exchange(n).ok_or(ApiError::NotFound)?),
    };
    if let Value::Object(m) = &mut item {
        m.insert("incoming".into(), json!([]));
        m.insert("outgoing".into(), json!([]));
    }
    Ok(reply_item(item, &params))
}

/// PUT /api/exchanges/{vhost}/{name}: `type` (direct), `durable`, `auto_delete`,
/// `internal` (false) and `arguments`; checked as an exchange.declare from the caller.
pub async fn declare(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, name)): Segs<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = caller.vhost_to_change(&state, &vhost)?;
    let body = Body::parse(&body)?;
    let kind_name = body.str("type")?.unwrap_or("direct").to_string();
    let durable = body.bool("durable", false)?;
    let auto_delete = body.bool("auto_delete", false)?;
    let internal = body.bool("internal", false)?;
    let arguments = body.table("arguments")?;
    let name = exchange_name(&name);
    if name.is_empty() {
        return Err(
            AmqpError::access_refused("operation not permitted on the default exchange").into(),
        );
    }
    let kind = state.broker.exchange_kind(&kind_name).ok_or_else(|| {
        AmqpError::command_invalid(format!("unknown exchange type '{kind_name}'"))
    })?;
    if name.starts_with("amq.") && v.exchange(name).is_none() {
        return Err(AmqpError::access_refused(format!(
            "exchange name '{name}' contains reserved prefix 'amq.*'"
        ))
        .into());
    }
    state
        .broker
        .check(caller.name(), &v.name, Access::Configure, "exchange", name)?;
    let created = state
        .broker
        .declare_exchange(
            &v,
            ExchangeDeclare {
                name: name.to_string(),
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            },
        )
        .await?;
    Ok(created_or_exists(created))
}

/// DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let name = exchange_name(&name);
    if name.is_empty() {
        return Err(
            AmqpError::access_refused("operation not permitted on the default exchange").into(),
        );
    }
    v.exchange(name).ok_or(ApiError::NotFound)?;
    if name.starts_with("amq.") {
        return Err(AmqpError::access_refused(format!(
            "deletion of system exchange '{name}' in vhost '{}' not allowed",
            v.name
        ))
        .into());
    }
    state
        .broker
        .check(caller.name(), &v.name, Access::Configure, "exchange", name)?;
    state
        .broker
        .delete_exchange(&v, name, params.flag("if-unused"))
        .await?;
    Ok(no_content())
}

/// POST /api/exchanges/{vhost}/{name}/publish: `routing_key`, `payload`,
/// `payload_encoding` (`string` or `base64`) and `properties`; answers whether a queue
/// took it (`{"routed": true}`).
pub async fn publish(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, name)): Segs<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = caller.vhost_to_use(&state, &vhost)?;
    let body = Body::parse(&body)?;
    body.require(&["routing_key", "properties", "payload", "payload_encoding"])?;
    let routing_key = body.str("routing_key")?.unwrap_or_default().to_string();
    let payload = body.str("payload")?.unwrap_or_default();
    let payload = match body.str("payload_encoding")?.unwrap_or("string") {
        "string" => Bytes::copy_from_slice(payload.as_bytes()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_pair("not_base64", payload))?,
        other => return Err(ApiError::bad_pair("unsupported_encoding", other)),
    };
    let properties =
        properties_from_json(body.get("properties").unwrap_or(&Value::Object(Map::new())))?;
    let exchange = exchange_name(&name).to_string();
    let publish_error = ApiError::Publish;
    if !exchange.is_empty() {
        let ex = v.exchange(&exchange).ok_or_else(|| {
            publish_error(AmqpError::not_found(format!(
                "no exchange '{exchange}' in vhost '{}'",
                v.name
            )))
        })?;
        if ex.internal {
            return Err(publish_error(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                v.name
            ))));
        }
    }
    let resource = if exchange.is_empty() {
        "amq.default"
    } else {
        &exchange
    };
    state
        .broker
        .check(caller.name(), &v.name, Access::Write, "exchange", resource)
        .map_err(publish_error)?;
    if let Some(uid) = properties.user_id() {
        if uid.as_str() != caller.name() {
            return Err(publish_error(AmqpError::precondition(format!(
                "user_id property set to '{}' but authenticated user was '{}'",
                uid.as_str(),
                caller.name()
            ))));
        }
    }
    parse_expiration(&properties).map_err(|e| publish_error(AmqpError::precondition(e)))?;
    let max = state.broker.config.max_message_size;
    if payload.len() as u64 > max {
        return Err(publish_error(AmqpError::precondition(format!(
            "message size {} is larger than configured max size {max}",
            payload.len()
        ))));
    }
    // Publishers are blocked while a resource alarm is on; RabbitMQ would hold the request
    // until it clears, this says so at once.
    if let Some(reason) = state.broker.alarm_reason() {
        return Err(ApiError::Unavailable(format!(
            "resource alarm in effect ({reason}): publishing is blocked"
        )));
    }
    let message = Message {
        exchange,
        routing_key,
        raw_properties: amqp::frame::encode_properties(&properties).map_err(publish_error)?,
        properties,
        body: payload,
        published_ms: now_ms(),
    };
    let routed = v.publish(Arc::new(message)).map_err(publish_error)?;
    Ok(json_ok(json!({ "routed": routed })))
}
