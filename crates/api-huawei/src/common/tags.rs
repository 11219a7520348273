//! Tags of instances, under each engine's path.

use std::sync::Arc;

use axum::response::Response;
use control::model::Tag;
use serde_json::json;

use super::check_engine;
use crate::call::Call;
use crate::error::ApiError;
use crate::{json, no_content, ApiState};

/// `BatchCreateOrDeleteTagReq`.
#[derive(serde::Deserialize)]
struct TagChange {
    action: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub(crate) async fn instance_tags(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    check_engine(&state, &call).await?;
    let tags = state
        .plane
        .tags(call.project()?, call.instance_id())
        .await?;
    Ok(json(
        200,
        json!({"tags": tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>()}),
    ))
}

pub(crate) async fn change_tags(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let req: TagChange = call.body()?;
    check_engine(&state, &call).await?;
    state
        .plane
        .change_tags(call.project()?, call.instance_id(), &req.action, &req.tags)
        .await?;
    Ok(no_content())
}

pub(crate) async fn project_tags(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let tags = state
        .plane
        .project_tags(call.project()?, call.engine()?)
        .await?;
    Ok(json(
        200,
        json!({"tags": tags.into_iter().map(|(k, v)| json!({"key": k, "values": v})).collect::<Vec<_>>()}),
    ))
}
