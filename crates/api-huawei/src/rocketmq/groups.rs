//! Consumer groups (seed 001 5.2): their settings in the brokers' subscription-group
//! tables, the topics they consume with lag per queue, their online clients, offset resets,
//! and who may use them (5.5.7).

use std::sync::Arc;

use axum::response::Response;
use control::MqGroupRequest;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page, render};
use crate::call::Call;
use crate::error::ApiError;
use crate::{json, no_content, ApiState};

/// Seed 001's ConsumerGroup in a request (5.2.2, 5.2.3, 5.2.6).
#[derive(Deserialize, Default)]
#[allow(dead_code)] // group_desc and consume_orderly read by serde for their types only
struct GroupBody {
    name: Option<String>,
    enabled: Option<bool>,
    broadcast: Option<bool>,
    brokers: Option<Vec<String>>,
    retry_max_time: Option<i64>,
    from_beginning: Option<bool>,
    group_desc: Option<String>,
    consume_orderly: Option<bool>,
    /// Batch delete (5.2.2 with `?action=delete`).
    groups: Option<Vec<String>>,
}

impl GroupBody {
    fn request(&self) -> MqGroupRequest {
        MqGroupRequest {
            name: self.name.clone(),
            enabled: self.enabled,
            broadcast: self.broadcast,
            brokers: self.brokers.clone(),
            retry_max_time: self.retry_max_time,
            from_beginning: self.from_beginning,
        }
    }
}

#[derive(Deserialize)]
struct BatchUpdateBody {
    groups: Option<Vec<GroupBody>>,
}

#[derive(Deserialize)]
struct ResetBody {
    topic: Option<String>,
    timestamp: Option<i64>,
}

/// 5.2.1: every group, or the one `?group=` names (a substring match).
pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let (project, id) = (call.project()?, call.instance_id());
    let groups = state.plane.mq_groups(project, id).await?;
    let filter = call.query("group").unwrap_or("");
    let view = state.plane.show_instance_quietly(project, id).await?;
    let max = control::catalog::rocketmq_product(&view.doc.product_id)
        .map_or(0, |p| p.max_groups_per_broker * view.doc.broker_num.max(1));
    let count = groups.len();
    let items: Vec<Value> = groups
        .iter()
        .filter(|(g, _)| g.name.contains(filter))
        .map(|(g, online)| render::group(g, *online))
        .collect();
    let (items, total, next, previous) = page(&call, items)?;
    Ok(json(
        200,
        json!({
            "total": total, "groups": items, "max": max,
            "remaining": (max as usize).saturating_sub(count),
            "next_offset": next, "previous_offset": previous,
        }),
    ))
}

/// 5.2.2: creates a group, or with `?action=delete` deletes the groups listed.
pub(crate) async fn create_or_delete(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let body: GroupBody = call.body()?;
    match call.query("action").filter(|a| !a.is_empty()) {
        Some("delete") => {
            let names = body.groups.unwrap_or_default();
            state
                .plane
                .delete_mq_groups(call.project()?, call.instance_id(), &names)
                .await?;
            let params = json!({ "groups": names }).to_string();
            let job = state
                .plane
                .record_job(call.caller()?, call.instance_id(), "deleteGroup", &params)
                .await?;
            Ok(json(200, json!({"job_id": job})))
        }
        Some(other) => Err(ApiError::bad_field(
            "action",
            format!("{other:?}: only delete"),
        )),
        None => {
            let name = state
                .plane
                .create_mq_group(call.project()?, call.instance_id(), &body.request())
                .await?;
            Ok(json(200, json!({"name": name})))
        }
    }
}

/// 5.2.3: changes several groups; every one must exist.
pub(crate) async fn batch_update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: BatchUpdateBody = call.body()?;
    let groups = body.groups.unwrap_or_default();
    if groups.is_empty() {
        return Err(ApiError::bad_field("groups", "a non-empty list of groups"));
    }
    let mut changes = Vec::new();
    for g in &groups {
        let name = g
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_field("groups.name", "every group needs its name"))?;
        changes.push((name, g.request()));
    }
    state
        .plane
        .change_mq_groups(call.project()?, call.instance_id(), &changes)
        .await?;
    let params =
        json!({ "groups": changes.iter().map(|(n, _)| n).collect::<Vec<_>>() }).to_string();
    let job = state
        .plane
        .record_job(call.caller()?, call.instance_id(), "updateGroup", &params)
        .await?;
    Ok(json(200, json!({"job_id": job})))
}

pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    state
        .plane
        .delete_mq_groups(
            call.project()?,
            call.instance_id(),
            &[call.param("group").to_string()],
        )
        .await?;
    Ok(no_content())
}

/// 5.2.5.
pub(crate) async fn show(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let (project, id, name) = (call.project()?, call.instance_id(), call.param("group"));
    let (g, online) = state.plane.mq_group(project, id, name).await?;
    let mut out = render::group(&g, online);
    if let Some(o) = out.as_object_mut() {
        // Table 5-36: no from_beginning here; app_id and app_name (null) instead.
        o.remove("from_beginning");
        o.insert("app_id".into(), Value::Null);
        o.insert("app_name".into(), Value::Null);
    }
    Ok(json(200, out))
}

/// 5.2.6.
pub(crate) async fn update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: GroupBody = call.body()?;
    let name = call.param("group").to_string();
    state
        .plane
        .change_mq_groups(
            call.project()?,
            call.instance_id(),
            &[(name, body.request())],
        )
        .await?;
    Ok(no_content())
}

/// 5.2.7: the topics a group consumes, or with `?topic=` where it stands in each queue.
pub(crate) async fn topics(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let (project, id, group) = (call.project()?, call.instance_id(), call.param("group"));
    match call.query("topic").filter(|t| !t.is_empty()) {
        None => {
            let topics = state.plane.mq_group_topics(project, id, group).await?;
            let items: Vec<Value> = topics.into_iter().map(Value::from).collect();
            let (items, total, _, _) = page(&call, items)?;
            Ok(json(200, json!({"topics": items, "total": total})))
        }
        Some(topic) => {
            let lag = state.plane.mq_group_lag(project, id, group, topic).await?;
            let brokers = render::by_broker(lag.iter().map(|q| (&q.broker, render::lag_queue(q))));
            Ok(json(
                200,
                json!({
                    "topics": [topic], "total": 1, "brokers": brokers,
                    "lag": lag.iter().map(|q| q.lag()).sum::<i64>(),
                    "max_offset": lag.iter().map(|q| q.broker_offset).sum::<i64>(),
                    "consumer_offset": lag.iter().map(|q| q.consumer_offset).sum::<i64>(),
                }),
            ))
        }
    }
}

/// The SDK's `show_consumer_connections`: the group's online clients.
pub(crate) async fn clients(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let group = call.param("group").to_string();
    let clients = state
        .plane
        .mq_group_clients(call.project()?, call.instance_id(), &group)
        .await?;
    let online = !clients.is_empty();
    // Every client subscribes to the same topics and expressions.
    let consistent = clients
        .windows(2)
        .all(|w| w[0].subscriptions == w[1].subscriptions);
    let detail = call.flag("is_detail");
    let items: Vec<Value> = clients
        .iter()
        .map(|c| {
            let mut v = render::client(c);
            if !detail {
                if let Some(o) = v.as_object_mut() {
                    o.remove("subscriptions");
                }
            }
            v
        })
        .collect();
    let (items, total, next, previous) = page(&call, items)?;
    Ok(json(
        200,
        json!({
            "group_name": group, "online": online, "subscription_consistency": consistent,
            "total": total, "next_offset": next, "previous_offset": previous, "clients": items,
        }),
    ))
}

/// 5.2.8: resets a group's offsets on a topic to a time; online clients move at once.
pub(crate) async fn reset_offset(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: ResetBody = call.body()?;
    let timestamp = body
        .timestamp
        .ok_or_else(|| ApiError::bad_field("timestamp", "the time to reset to, in milliseconds"))?;
    let group = call.param("group");
    let queues = state
        .plane
        .reset_mq_offsets(
            call.project()?,
            call.instance_id(),
            group,
            body.topic.as_deref(),
            timestamp,
        )
        .await?;
    let queues: Vec<Value> = queues
        .iter()
        .map(|q| json!({"broker_name": q.broker, "queue_id": q.queue_id, "timestamp_offset": q.offset}))
        .collect();
    Ok(json(200, json!({ "queues": queues })))
}

/// 5.5.7: the users with a permission of their own on the group.
pub(crate) async fn access_policy(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let group = call.param("group").to_string();
    let policies = state
        .plane
        .access_policies(call.project()?, call.instance_id(), &group, true)
        .await?;
    super::users::policies(&call, &group, &policies)
}
