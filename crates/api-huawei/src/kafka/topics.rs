//! Kafka topics through the API: seed 000's `/v1.0` paths under its rules (Table 5-23), the
//! v2 paths under the v2 SDK's.

use std::sync::Arc;

use axum::response::Response;
use control::model::{TopicRequest, TopicUpdate};
use control::validation::TopicRules;
use serde::Deserialize;
use serde_json::{json, Value};

use super::render;
use crate::call::Call;
use crate::error::{ApiError, ApiGeneration};
use crate::{json, no_content, ApiState};

/// `name`/`value` of `topic_other_configs`.
#[derive(Deserialize)]
struct ConfigEntry {
    name: String,
    value: String,
}

/// `CreateInstanceTopicReq` and seed 000's create body.
#[derive(Deserialize)]
struct CreateBody {
    id: Option<String>,
    partition: Option<i64>,
    replication: Option<i64>,
    sync_replication: Option<bool>,
    retention_time: Option<i64>,
    sync_message_flush: Option<bool>,
    topic_other_configs: Option<Vec<ConfigEntry>>,
    #[serde(rename = "topic_desc")]
    _topic_desc: Option<String>,
}

/// One entry of `UpdateInstanceTopicReq.topics`.
#[derive(Deserialize)]
struct UpdateEntry {
    id: Option<String>,
    retention_time: Option<i64>,
    sync_replication: Option<bool>,
    sync_message_flush: Option<bool>,
    new_partition_numbers: Option<i64>,
    topic_other_configs: Option<Vec<ConfigEntry>>,
    #[serde(rename = "topic_desc")]
    _topic_desc: Option<String>,
}

#[derive(Deserialize)]
struct UpdateBody {
    topics: Vec<UpdateEntry>,
}

#[derive(Deserialize)]
struct DeleteBody {
    topics: Vec<String>,
}

fn configs(entries: Option<Vec<ConfigEntry>>) -> Vec<(String, String)> {
    entries
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect()
}

/// The topic rules of the API generation a request came in on.
fn rules(call: &Call) -> &'static TopicRules {
    match call.generation {
        ApiGeneration::V1 => &TopicRules::SEED_000,
        ApiGeneration::V2 => &TopicRules::V2,
    }
}

pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let (doc, topics) = state
        .plane
        .topics(call.project()?, call.instance_id())
        .await?;
    match call.generation {
        ApiGeneration::V1 => Ok(json(
            200,
            json!({"count": topics.len(), "topics": topics.iter().map(render::topic_v1).collect::<Vec<_>>()}),
        )),
        ApiGeneration::V2 => {
            let used: i64 = topics.iter().map(|t| i64::from(t.partitions)).sum();
            let offset = call.query_usize("offset")?.unwrap_or(0);
            let limit = call.query_usize("limit")?.unwrap_or(usize::MAX);
            let page: Vec<Value> = topics
                .iter()
                .skip(offset)
                .take(limit)
                .map(render::topic_v2)
                .collect();
            Ok(json(
                200,
                json!({
                    "total": topics.len(),
                    "size": page.len(),
                    "remain_partitions": i64::from(doc.partition_num) - used,
                    "max_partitions": doc.partition_num,
                    "topic_max_partitions": TopicRules::V2.max_partitions,
                    "topics": page,
                }),
            ))
        }
    }
}

pub(crate) async fn create(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: CreateBody = call.body()?;
    let req = TopicRequest {
        name: b.id,
        partitions: b.partition,
        replication: b.replication,
        retention_hours: b.retention_time,
        sync_replication: b.sync_replication,
        sync_flush: b.sync_message_flush,
        other_configs: configs(b.topic_other_configs),
    };
    let name = state
        .plane
        .create_topic(call.project()?, call.instance_id(), &req, rules(&call))
        .await?;
    Ok(json(
        200,
        match call.generation {
            ApiGeneration::V1 => json!({"id": name}),
            ApiGeneration::V2 => json!({"name": name}),
        },
    ))
}

pub(crate) async fn update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: UpdateBody = call.body()?;
    let entries: Vec<TopicUpdate> = b
        .topics
        .into_iter()
        .map(|e| TopicUpdate {
            name: e.id,
            retention_hours: e.retention_time,
            sync_replication: e.sync_replication,
            sync_flush: e.sync_message_flush,
            new_partitions: e.new_partition_numbers,
            other_configs: configs(e.topic_other_configs),
        })
        .collect();
    state
        .plane
        .update_topics(call.project()?, call.instance_id(), &entries, rules(&call))
        .await?;
    Ok(no_content())
}

pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: DeleteBody = call.body()?;
    let results = state
        .plane
        .delete_topics(call.project()?, call.instance_id(), &b.topics)
        .await?;
    let topics: Vec<Value> = results
        .into_iter()
        .map(|(name, ok)| json!({"id": name, "success": ok}))
        .collect();
    Ok(json(200, json!({"topics": topics})))
}
