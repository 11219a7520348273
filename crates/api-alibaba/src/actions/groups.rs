//! Consumer groups (seed 004 §12).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::instances::instance_of;
use super::params::{fields, page_of, required, Fields};
use super::topics::check_name;
use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

pub(super) async fn create_consumer_group(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let group = required(&p, "ConsumerId")?;
    check_name("ConsumerId", group)?;
    state
        .plane
        .declare_group(
            &p.caller.project_id,
            id,
            group,
            p.get("Remark").unwrap_or_default(),
        )
        .await?;
    Ok(Map::new())
}

pub(super) async fn delete_consumer_group(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let group = required(&p, "ConsumerId")?;
    state
        .plane
        .delete_group(&p.caller.project_id, id, group)
        .await?;
    Ok(Map::new())
}

pub(super) async fn get_consumer_list(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let v = instance_of(&state, &p).await?;
    let filter = p.get("ConsumerId").filter(|c| !c.is_empty());
    let groups = state.plane.groups(&p.caller.project_id, &v.id).await?;
    let matching: Vec<_> = groups
        .iter()
        .filter(|g| filter.is_none_or(|f| g.name.contains(f)))
        .collect();
    let (page, first, size) = page_of(&p)?;
    let list: Vec<Value> = matching
        .iter()
        .skip(first)
        .take(size)
        .map(|g| {
            json!({
                "ConsumerId": g.name, "InstanceId": v.id, "RegionId": p.region_id, "Remark": g.remark,
                "CreateTime": g.created_ms, "AutomaticallyCreatedGroup": !g.declared, "Tags": {"TagVO": []},
            })
        })
        .collect();
    Ok(fields(
        json!({"ConsumerList": {"ConsumerVO": list}, "Total": matching.len(), "CurrentPage": page, "PageSize": size}),
    ))
}

pub(super) async fn get_consumer_progress(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let v = instance_of(&state, &p).await?;
    let group = required(&p, "ConsumerId")?;
    let mut total_diff = 0i64;
    let mut last_all = 0i64;
    let mut topics = Vec::new();
    for (topic, parts) in state
        .plane
        .group_lag(&p.caller.project_id, &v.id, group)
        .await?
    {
        let diff: i64 = parts.iter().map(|l| l.lag()).sum();
        let last_topic = parts.iter().map(|l| l.last_append_ms).max().unwrap_or(0);
        let list: Vec<Value> = parts
            .iter()
            .map(|l| {
                json!({"Partition": l.partition, "BrokerOffset": l.log_end.unwrap_or(0),
                       "ConsumerOffset": l.committed, "LastTimestamp": l.last_append_ms})
            })
            .collect();
        total_diff += diff;
        last_all = last_all.max(last_topic);
        topics.push(json!({"Topic": topic, "TotalDiff": diff, "LastTimestamp": last_topic, "OffsetList": {"OffsetList": list}}));
    }
    Ok(fields(json!({"ConsumerProgress": {
        "TotalDiff": total_diff,
        "LastTimestamp": last_all,
        "TopicList": {"TopicList": topics},
    }})))
}
