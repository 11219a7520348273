//! Topics (seed 001 5.3) and who may use them (5.5.6): each acts on the brokers and shows
//! what they have, whoever created the topic (this API, a producer through `TBW102`, or
//! `mqadmin`).

use std::sync::Arc;

use axum::response::Response;
use control::{MqTopicChange, MqTopicRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page, render};
use crate::call::Call;
use crate::error::ApiError;
use crate::{json, no_content, ApiState};

/// `CreateTopicOrBatchDeleteTopicReq`.
#[derive(Deserialize)]
#[allow(dead_code)] // message_type read by serde for its type only
struct CreateOrDeleteBody {
    name: Option<String>,
    brokers: Option<Vec<String>>,
    queue_num: Option<i64>,
    queues: Option<Vec<BrokerQueues>>,
    permission: Option<String>,
    message_type: Option<String>,
    topics: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct BrokerQueues {
    broker: String,
    queue_num: i64,
}

/// `UpdateTopicReq`.
#[derive(Deserialize)]
#[allow(dead_code)] // topic_desc read by serde for its type only
struct UpdateBody {
    read_queue_num: Option<i64>,
    write_queue_num: Option<i64>,
    permission: Option<String>,
    topic_desc: Option<String>,
}

/// The SDK's `list_rocket_instance_topics`.
pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let topics = state
        .plane
        .mq_topics(call.project()?, call.instance_id())
        .await?;
    let view = state
        .plane
        .show_instance_quietly(call.project()?, call.instance_id())
        .await?;
    let max = control::catalog::rocketmq_product(&view.doc.product_id)
        .map_or(0, |p| p.max_topics_per_broker * view.doc.broker_num.max(1));
    let count = topics.len();
    let items: Vec<Value> = topics.iter().map(render::topic).collect();
    let (items, total, next, previous) = page(&call, items)?;
    Ok(json(
        200,
        json!({
            "total": total, "max": max, "remaining": (max as usize).saturating_sub(count),
            "next_offset": next, "previous_offset": previous, "topics": items,
        }),
    ))
}

/// 5.3.1: creates a topic, or with `?action=delete` deletes the topics listed.
pub(crate) async fn create_or_delete(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let body: CreateOrDeleteBody = call.body()?;
    match call.query("action").filter(|a| !a.is_empty()) {
        Some("delete") => {
            let job = state
                .plane
                .delete_mq_topics(
                    call.caller()?,
                    call.instance_id(),
                    &body.topics.unwrap_or_default(),
                )
                .await?;
            Ok(json(200, json!({"job_id": job})))
        }
        Some(other) => Err(ApiError::bad_field(
            "action",
            format!("{other:?}: only delete"),
        )),
        None => {
            let req = MqTopicRequest {
                name: body.name,
                brokers: body.brokers,
                queue_num: body.queue_num,
                queues: body
                    .queues
                    .unwrap_or_default()
                    .into_iter()
                    .map(|q| (q.broker, q.queue_num))
                    .collect(),
                permission: body.permission,
            };
            let t = state
                .plane
                .create_mq_topic(call.project()?, call.instance_id(), &req)
                .await?;
            Ok(json(200, json!({"id": t.name})))
        }
    }
}

pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    state
        .plane
        .delete_mq_topics(
            call.caller()?,
            call.instance_id(),
            &[call.param("topic").to_string()],
        )
        .await?;
    Ok(no_content())
}

pub(crate) async fn show(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let t = state
        .plane
        .mq_topic(call.project()?, call.instance_id(), call.param("topic"))
        .await?;
    Ok(json(200, render::topic(&t)))
}

pub(crate) async fn update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: UpdateBody = call.body()?;
    let change = MqTopicChange {
        read_queue_num: b.read_queue_num,
        write_queue_num: b.write_queue_num,
        permission: b.permission,
    };
    state
        .plane
        .change_mq_topic(
            call.project()?,
            call.instance_id(),
            call.param("topic"),
            &change,
        )
        .await?;
    Ok(no_content())
}

/// 5.3.5: the groups that consume a topic.
pub(crate) async fn groups(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let groups = state
        .plane
        .mq_topic_groups(call.project()?, call.instance_id(), call.param("topic"))
        .await?;
    let items: Vec<Value> = groups.into_iter().map(Value::from).collect();
    let (items, total, _, _) = page(&call, items)?;
    Ok(json(200, json!({"groups": items, "total": total})))
}

/// 5.3.6: offsets of every queue, by broker; also the topic's totals (the SDK's
/// `min_offset`/`max_offset`).
pub(crate) async fn status(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let queues = state
        .plane
        .mq_topic_offsets(call.project()?, call.instance_id(), call.param("topic"))
        .await?;
    let brokers = render::by_broker(queues.iter().map(|q| {
        let queue = json!({
            "id": q.queue_id, "min_offset": q.min_offset, "max_offset": q.max_offset,
            "last_message_time": q.last_message_ms,
        });
        (&q.broker, queue)
    }));
    let min: i64 = queues.iter().map(|q| q.min_offset).sum();
    let max: i64 = queues.iter().map(|q| q.max_offset).sum();
    Ok(json(
        200,
        json!({"brokers": brokers, "min_offset": min, "max_offset": max}),
    ))
}

/// 5.5.6: the users with a permission of their own on the topic.
pub(crate) async fn access_policy(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let topic = call.param("topic").to_string();
    let policies = state
        .plane
        .access_policies(call.project()?, call.instance_id(), &topic, false)
        .await?;
    super::users::policies(&call, &topic, &policies)
}
