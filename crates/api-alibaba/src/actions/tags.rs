//! Tags of instances (`ResourceType` INSTANCE). Topic and group tags are not kept.

use std::sync::Arc;

use control::model::Tag;
use serde_json::{json, Map};

use super::instances::all_instances;
use super::params::{boolean, fields, repeated, required, tag_params, Fields};
use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

fn check_resource_type(p: &Parsed) -> Result<(), AliError> {
    let resource_type = required(p, "ResourceType")?;
    if resource_type.eq_ignore_ascii_case("instance") {
        return Ok(());
    }
    Err(AliError::new(
        400,
        "UnsupportedOperation",
        format!("tags on {resource_type} resources are not supported by OpenDMS yet; INSTANCE is"),
    ))
}

pub(super) async fn tag_resources(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    check_resource_type(&p)?;
    let ids = repeated(&p, "ResourceId");
    if ids.is_empty() {
        return Err(AliError::missing("ResourceId.1"));
    }
    let tags = tag_params(&p);
    for id in &ids {
        state
            .plane
            .change_tags(&p.caller.project_id, id, "create", &tags)
            .await?;
    }
    Ok(Map::new())
}

pub(super) async fn untag_resources(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    check_resource_type(&p)?;
    let project = &p.caller.project_id;
    let all = boolean(&p, "All")?.unwrap_or(false);
    let keys = repeated(&p, "TagKey");
    for id in &repeated(&p, "ResourceId") {
        let remove: Vec<Tag> = if all {
            state.plane.tags(project, id).await?
        } else {
            keys.iter()
                .map(|k| Tag {
                    key: k.clone(),
                    value: String::new(),
                })
                .collect()
        };
        state
            .plane
            .change_tags(project, id, "delete", &remove)
            .await?;
    }
    Ok(Map::new())
}

pub(super) async fn list_tag_resources(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    check_resource_type(&p)?;
    let ids = repeated(&p, "ResourceId");
    let want = tag_params(&p);
    let mut out = Vec::new();
    for v in all_instances(&state, &p, false)
        .await?
        .iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.id))
    {
        for t in &v.tags {
            if want.is_empty()
                || want
                    .iter()
                    .any(|w| w.key == t.key && (w.value.is_empty() || w.value == t.value))
            {
                out.push(json!({"ResourceId": v.id, "ResourceType": "ALIYUN::ALIKAFKA::INSTANCE", "TagKey": t.key, "TagValue": t.value}));
            }
        }
    }
    Ok(fields(
        json!({"TagResources": {"TagResource": out}, "NextToken": ""}),
    ))
}
