//! Background tasks: the record of every create, restart, extension and delete.

use std::sync::Arc;

use axum::response::Response;
use serde_json::{json, Value};

use super::render;
use crate::call::Call;
use crate::error::ApiError;
use crate::{json, no_content, ApiState};

/// `start` is 1-based, `limit` the page size.
pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let tasks = state
        .plane
        .tasks(call.project()?, call.instance_id())
        .await?;
    let start = call.query_usize("start")?.unwrap_or(1).max(1);
    let limit = call.query_usize("limit")?.unwrap_or(usize::MAX);
    let page: Vec<Value> = tasks
        .iter()
        .skip((start - 1).saturating_mul(limit.min(tasks.len().max(1))))
        .take(limit)
        .map(render::task)
        .collect();
    Ok(json(
        200,
        json!({"task_count": tasks.len().to_string(), "tasks": page}),
    ))
}

pub(crate) async fn show(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let t = state
        .plane
        .task(call.project()?, call.instance_id(), call.param("task_id"))
        .await?;
    Ok(json(
        200,
        json!({"task_count": "1", "tasks": [render::task(&t)]}),
    ))
}

pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    state
        .plane
        .delete_task(call.project()?, call.instance_id(), call.param("task_id"))
        .await?;
    Ok(no_content())
}
