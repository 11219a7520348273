//! Topics (seed 004 §11).

use std::collections::BTreeMap;
use std::sync::Arc;

use control::model::NewTopic;
use serde_json::{json, Map, Value};

use super::instances::instance_of;
use super::params::{boolean, fields, int, page_of, required, Fields};
use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

/// Partitions per topic (§11.1: 1 to 48).
const MAX_PARTITIONS: i64 = 48;

/// Topic and group names (§11.1, §12.4): 3–64 letters, digits, `-` and `_`.
pub(super) fn check_name(param: &str, name: &str) -> Result<(), AliError> {
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(())
        .ok_or_else(|| AliError::invalid(param, "3 to 64 letters, digits, '-' and '_'"))
}

fn topic_not_found(topic: &str) -> AliError {
    AliError::new(
        404,
        "InvalidParameter.TopicNotFound",
        format!("topic {topic} does not exist"),
    )
}

pub(super) async fn create_topic(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let topic = required(&p, "Topic")?;
    check_name("Topic", topic)?;
    let remark = required(&p, "Remark")?;
    let partitions = int(&p, "PartitionNum")?.unwrap_or(12);
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(AliError::invalid(
            "PartitionNum",
            format!("must be within 1-{MAX_PARTITIONS}"),
        ));
    }
    let replication = int(&p, "ReplicationFactor")?.unwrap_or(3).clamp(1, 3);
    if boolean(&p, "CompactTopic")? == Some(true) {
        return Err(AliError::new(
            400,
            "UnsupportedOperation",
            "compacted topics (CompactTopic=true) are not supported by OpenDMS",
        ));
    }
    // The alikafka API speaks Kafka topic configs; they pass through as they are.
    let mut configs = BTreeMap::new();
    if let Some(m) = int(&p, "MinInsyncReplicas")? {
        configs.insert("min.insync.replicas".to_string(), m.to_string());
    }
    if let Some(c) = p.get("Config").filter(|c| !c.is_empty()) {
        let extra: BTreeMap<String, Value> =
            serde_json::from_str(c).map_err(|e| AliError::invalid("Config", e))?;
        for (k, v) in extra {
            configs.insert(
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    let new = NewTopic {
        name: topic.to_string(),
        // Checked above: 1-48 partitions, 1-3 replicas.
        partitions: i32::try_from(partitions).unwrap_or(1),
        replication: i16::try_from(replication).unwrap_or(1),
        other_configs: configs,
        ..NewTopic::default()
    };
    state
        .plane
        .create_topic_with_remark(&p.caller.project_id, id, new, remark)
        .await?;
    Ok(Map::new())
}

pub(super) async fn delete_topic(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let topic = required(&p, "Topic")?;
    state
        .plane
        .delete_topic(&p.caller.project_id, id, topic)
        .await?;
    Ok(Map::new())
}

pub(super) async fn get_topic_list(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let v = instance_of(&state, &p).await?;
    let (_, topics) = state.plane.topics(&p.caller.project_id, &v.id).await?;
    let filter = p.get("Topic").filter(|t| !t.is_empty());
    let (page, first, size) = page_of(&p)?;
    let matching: Vec<_> = topics
        .iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect();
    let list: Vec<Value> = matching
        .iter()
        .skip(first)
        .take(size)
        .map(|t| {
            json!({
                "Topic": t.name,
                "InstanceId": v.id,
                "RegionId": p.region_id,
                "CreateTime": t.created_ms,
                "Remark": v.doc.topic_remarks.get(&t.name).cloned().unwrap_or_default(),
                "PartitionNum": t.partitions,
                "CompactTopic": false,
                "LocalTopic": false,
                "AutoCreate": !v.doc.topic_remarks.contains_key(&t.name),
                "Status": 0,
                "StatusName": "Running",
                "Tags": {"TagVO": []},
            })
        })
        .collect();
    Ok(fields(json!({
        "TopicList": {"TopicVO": list},
        "Total": matching.len(),
        "CurrentPage": page,
        "PageSize": size,
    })))
}

pub(super) async fn get_topic_status(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let v = instance_of(&state, &p).await?;
    let topic = required(&p, "Topic")?;
    let offsets = state
        .plane
        .topic_offsets(&p.caller.project_id, &v.id, topic)
        .await?
        .ok_or_else(|| topic_not_found(topic))?;
    let total: i64 = offsets.iter().map(|o| o.log_end - o.log_start).sum();
    let last = offsets.iter().map(|o| o.last_append_ms).max().unwrap_or(0);
    let table: Vec<Value> = offsets
        .iter()
        .map(|o| json!({"Topic": topic, "Partition": o.partition, "MinOffset": o.log_start, "MaxOffset": o.log_end, "LastUpdateTimestamp": o.last_append_ms}))
        .collect();
    Ok(fields(
        json!({"TopicStatus": {"TotalCount": total, "LastTimeStamp": last, "OffsetTable": {"OffsetTable": table}}}),
    ))
}

pub(super) async fn modify_partition_num(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let v = instance_of(&state, &p).await?;
    let topic = required(&p, "Topic")?;
    let add = int(&p, "AddPartitionNum")?.ok_or_else(|| AliError::missing("AddPartitionNum"))?;
    let current = state
        .plane
        .topic(&p.caller.project_id, &v.id, topic)
        .await?
        .ok_or_else(|| topic_not_found(topic))?
        .partitions;
    let total = i64::from(current).saturating_add(add);
    if add < 1 || total > MAX_PARTITIONS {
        return Err(AliError::invalid(
            "AddPartitionNum",
            format!("a topic has at most {MAX_PARTITIONS} partitions; it has {current}"),
        ));
    }
    state
        .plane
        // At most MAX_PARTITIONS, checked above.
        .set_partitions(
            &p.caller.project_id,
            &v.id,
            topic,
            i32::try_from(total).unwrap_or(current),
        )
        .await?;
    Ok(Map::new())
}

pub(super) async fn modify_topic_remark(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let topic = required(&p, "Topic")?;
    state
        .plane
        .set_topic_remark(
            &p.caller.project_id,
            id,
            topic,
            p.get("Remark").unwrap_or_default(),
        )
        .await?;
    Ok(Map::new())
}
