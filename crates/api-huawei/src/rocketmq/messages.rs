//! Messages (seed 001 5.4): queries by time, id and key, traces, dead-letter export and
//! resend, consumption verification, and the SDK's `send_message`. Every answer is read
//! from the brokers' queues.

use std::sync::Arc;

use axum::response::Response;
use control::model::OutgoingMessage;
use control::MessageQuery;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page, render};
use crate::call::Call;
use crate::error::ApiError;
use crate::{json, ApiState};

/// Seed 001's per-message result code for success (5.4.4, 5.4.5), not in its error table.
const SUCCESS_CODE: &str = "DMS.00000000";

#[derive(Deserialize)]
struct Property {
    name: String,
    value: String,
}

/// The SDK's `SendMessageReq`.
#[derive(Deserialize)]
struct SendBody {
    topic: Option<String>,
    body: Option<String>,
    property_list: Option<Vec<Property>>,
}

/// 5.4.3 and 5.4.4.
#[derive(Deserialize)]
struct DeadLetterBody {
    topic: Option<String>,
    msg_id_list: Option<Vec<String>>,
    uniq_key_list: Option<Vec<String>>,
}

/// 5.4.5 (`ResendReq`).
#[derive(Deserialize)]
#[allow(dead_code)] // topic read by serde for its type only
struct VerifyBody {
    group: Option<String>,
    topic: Option<String>,
    client_id: Option<String>,
    msg_id_list: Option<Vec<String>>,
}

/// A time parameter in epoch milliseconds (Table 5-66 types them String).
fn millis(call: &Call, key: &str) -> Result<Option<i64>, ApiError> {
    match call.query(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_field(key, "a time in milliseconds since the epoch")),
    }
}

/// 5.4.1: by `msg_id` (offset id or unique key), or stored between `start_time` and
/// `end_time`; `key` and `queue` narrow either.
pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let queue = match call.query("queue").filter(|q| !q.is_empty()) {
        None => None,
        Some(q) => Some(
            q.parse()
                .map_err(|_| ApiError::bad_field("queue", "a queue id"))?,
        ),
    };
    let q = MessageQuery {
        topic: call.query("topic").unwrap_or("").to_string(),
        msg_id: call.query("msg_id").map(str::to_string),
        key: call.query("key").map(str::to_string),
        start_ms: millis(&call, "start_time")?,
        end_ms: millis(&call, "end_time")?,
        queue,
    };
    let id = call.instance_id().to_string();
    let found = state.plane.mq_messages(call.project()?, &id, &q).await?;
    let items: Vec<Value> = found.iter().map(|m| render::message(&id, m)).collect();
    let (items, total, _, _) = page(&call, items)?;
    Ok(json(200, json!({"messages": items, "total": total})))
}

/// The SDK's `send_message`.
pub(crate) async fn send(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: SendBody = call.body()?;
    let topic = b.topic.unwrap_or_default();
    let body = b.body.unwrap_or_default();
    let properties: Vec<(String, String)> = b
        .property_list
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect();
    let sent = state
        .plane
        .send_mq_message(
            call.project()?,
            call.instance_id(),
            OutgoingMessage {
                topic: topic.clone(),
                body: body.clone().into_bytes(),
                properties: properties.clone(),
            },
        )
        .await?;
    Ok(json(
        200,
        json!({
            "topic": topic, "body": body,
            "property_list": properties.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "msg_id": sent.msg_id, "queue_id": sent.queue_id, "queue_offset": sent.queue_offset,
            "broker_name": sent.broker,
        }),
    ))
}

/// 5.4.2: the trace records of a message.
pub(crate) async fn trace(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let msg_id = call.query("msg_id").unwrap_or("").to_string();
    let records = state
        .plane
        .mq_trace(call.project()?, call.instance_id(), &msg_id)
        .await?;
    let items: Vec<Value> = records.iter().map(render::trace).collect();
    let (items, total, next, previous) = page(&call, items)?;
    Ok(json(
        200,
        json!({"trace": items, "total": total, "next_offset": next, "previous_offset": previous}),
    ))
}

/// 5.4.3: the dead letters named by offset id or unique key, as a JSON array.
pub(crate) async fn export_dead_letters(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let b: DeadLetterBody = call.body()?;
    let topic = b.topic.unwrap_or_default();
    let mut ids = b.msg_id_list.unwrap_or_default();
    ids.extend(b.uniq_key_list.unwrap_or_default());
    let id = call.instance_id().to_string();
    let found = state
        .plane
        .export_dead_letters(call.project()?, &id, &topic, &ids)
        .await?;
    Ok(json(
        200,
        Value::Array(found.iter().map(|m| render::message(&id, m)).collect()),
    ))
}

/// 5.4.4: publishes dead letters again to the topic they were first sent to.
pub(crate) async fn resend_dead_letters(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let b: DeadLetterBody = call.body()?;
    let results = state
        .plane
        .resend_dead_letters(
            call.project()?,
            call.instance_id(),
            &b.topic.unwrap_or_default(),
            &b.msg_id_list.unwrap_or_default(),
        )
        .await?;
    let results: Vec<Value> = results
        .iter()
        .map(|(id, r)| match r {
            Ok(_) => json!({"msg_id": id, "error_code": SUCCESS_CODE, "error_message": "Success."}),
            Err(e) => json!({"msg_id": id, "error_code": "DMS.00400800", "error_message": e}),
        })
        .collect();
    Ok(json(200, json!({ "resend_results": results })))
}

/// 5.4.5: hands each message to the named online client and reports what it answered.
pub(crate) async fn verify(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: VerifyBody = call.body()?;
    let results = state
        .plane
        .verify_consumption(
            call.project()?,
            call.instance_id(),
            &b.group.unwrap_or_default(),
            &b.client_id.unwrap_or_default(),
            &b.msg_id_list.unwrap_or_default(),
        )
        .await?;
    let results: Vec<Value> = results
        .iter()
        .map(|(id, r)| match r {
            Ok(c) if c.result == "CR_SUCCESS" => {
                json!({"msg_id": id, "error_code": SUCCESS_CODE, "error_message": "Success."})
            }
            Ok(c) => json!({
                "msg_id": id, "error_code": "DMS.00400800",
                "error_message": format!("the consumer answered {}{}", c.result,
                    if c.remark.is_empty() { String::new() } else { format!(": {}", c.remark) }),
            }),
            Err(e) => json!({"msg_id": id, "error_code": "DMS.00400800", "error_message": e}),
        })
        .collect();
    Ok(json(200, json!({ "resend_results": results })))
}
