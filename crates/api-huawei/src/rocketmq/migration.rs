//! Metadata migration tasks (seed 001 5.6): the request body is the metadata document
//! itself; `overwrite`, `name` and `type` come in the query.

use std::sync::Arc;

use axum::response::Response;
use control::MigrationKind;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::call::Call;
use crate::error::ApiError;
use crate::{json, ApiState};

/// 5.6.3's body (`taskIds`) and the SDK's batch delete (`task_ids`).
#[derive(Deserialize)]
struct DeleteBody {
    #[serde(alias = "taskIds")]
    task_ids: Option<Vec<String>>,
}

fn required<'a>(call: &'a Call, key: &str) -> Result<&'a str, ApiError> {
    call.query(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_field(key, "the query parameter is mandatory"))
}

/// 5.6.1: answers the task's id (the document's example is a bare id; the SDK reads
/// `task_id`, so both are given: an object with `task_id`).
pub(crate) async fn create(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let overwrite = match required(&call, "overwrite")? {
        "true" => true,
        "false" => false,
        other => {
            return Err(ApiError::bad_field(
                "overwrite",
                format!("{other:?}: true or false"),
            ))
        }
    };
    let name = required(&call, "name")?.to_string();
    let kind = MigrationKind::parse(required(&call, "type")?)?;
    if call.body.is_empty() {
        return Err(ApiError::empty_body());
    }
    let id = state
        .plane
        .create_migration_task(
            call.caller()?,
            call.instance_id(),
            &name,
            overwrite,
            kind,
            &call.body,
        )
        .await?;
    Ok(json(200, json!({"task_id": id})))
}

/// 5.6.2: every task, or the one `?id=` names; `offset` is a page number from 1 here.
pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let tasks = state
        .plane
        .migration_tasks(call.project()?, call.instance_id())
        .await?;
    let filter_id = call.query("id").filter(|i| !i.is_empty());
    let filter_type = call.query("type").filter(|t| !t.is_empty());
    let items: Vec<Value> = tasks
        .iter()
        .filter(|t| filter_id.is_none_or(|i| i == t.id))
        .filter(|t| filter_type.is_none_or(|k| k == t.kind))
        .map(|t| {
            json!({
                "id": t.id, "name": t.name, "start_date": control::start_date(t.started_ms),
                "status": t.status, "type": t.kind,
                // Beyond the document: what the task created, or why it failed.
                "topics": t.topics, "groups": t.groups,
                "reason": if t.reason.is_empty() { Value::Null } else { json!(t.reason) },
            })
        })
        .collect();
    let limit = call.query_usize("limit")?.unwrap_or(10).clamp(1, 50);
    let page_no = call.query_usize("offset")?.unwrap_or(1).max(1);
    let total = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .skip((page_no - 1) * limit)
        .take(limit)
        .collect();
    Ok(json(200, json!({"total": total, "task": items})))
}

async fn delete_tasks(state: &ApiState, call: &Call) -> Result<Vec<String>, ApiError> {
    let body: DeleteBody = call.body()?;
    let ids = body.task_ids.unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiError::bad_field(
            "taskIds",
            "a non-empty list of task ids",
        ));
    }
    Ok(state
        .plane
        .delete_migration_tasks(call.project()?, call.instance_id(), &ids)
        .await?)
}

/// 5.6.3: `DELETE` with a body; 200 without response fields.
pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    delete_tasks(&state, &call).await?;
    Ok(json(200, json!({})))
}

/// The SDK's `batch_delete_rocket_mq_migration_task`.
pub(crate) async fn batch_delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let deleted = delete_tasks(&state, &call).await?;
    Ok(json(200, json!({ "success_task_list": deleted })))
}
