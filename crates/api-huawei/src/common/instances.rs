//! Instances of every engine: list, show, update, delete, batch actions and extension.
//! (Creating one is engine-specific: see each engine's module.)

use std::sync::Arc;

use axum::response::Response;
use control::model::{BatchAction, InstanceChanges, Resize};
use control::{BatchOutcome, ListFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_engine, render};
use crate::call::{engine_named, Call};
use crate::error::{ApiError, ApiGeneration};
use crate::{json, no_content, ApiState};

/// `UpdateInstanceReq`: every field optional.
#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
    maintain_begin: Option<String>,
    maintain_end: Option<String>,
    security_group_id: Option<String>,
    retention_policy: Option<String>,
    enterprise_project_id: Option<String>,
    // Seed 001 5.1.5 (RocketMQ's `UpdateInstanceReq`).
    enable_acl: Option<bool>,
    enable_publicip: Option<bool>,
    publicip_id: Option<String>,
}

/// `BatchRestartOrDeleteInstanceReq`.
#[derive(Deserialize)]
struct BatchBody {
    action: Option<String>,
    instances: Option<Vec<String>>,
    /// Seed 000 spells it `allFailure`, the SDK `all_failure`.
    #[serde(alias = "allFailure")]
    all_failure: Option<String>,
}

/// `ResizeEngineInstanceReq` and seed 000's `new_storage_space` body.
#[derive(Deserialize)]
struct ResizeBody {
    oper_type: Option<String>,
    new_storage_space: Option<i64>,
}

pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let (offset, limit) = match call.generation {
        // Seed 000's example pages with start (1-based page) and limit.
        ApiGeneration::V1 => {
            let limit = call.query_usize("limit")?;
            let start = call.query_usize("start")?.unwrap_or(1).max(1);
            ((start - 1).saturating_mul(limit.unwrap_or(0)), limit)
        }
        ApiGeneration::V2 => (
            call.query_usize("offset")?.unwrap_or(0),
            call.query_usize("limit")?,
        ),
    };
    let engine = match call.query("engine").filter(|e| !e.is_empty()) {
        Some(name) => Some(engine_named(name)?),
        None => None,
    };
    let filter = ListFilter {
        engine,
        name: call.query("name").map(str::to_string),
        instance_id: call
            .query("instance_id")
            .or_else(|| call.query("id"))
            .map(str::to_string),
        status: call.query("status").map(str::to_string),
        // Seed 002 (Table 4-7) spells it `include_failures`; the SDKs `include_failure`;
        // seed 000's V1 `includeFailure`.
        include_failure: call.flag("include_failure")
            || call.flag("include_failures")
            || call.flag("includeFailure"),
        exact_match_name: call.flag("exact_match_name") || call.flag("exactMatchName"),
        offset,
        limit,
        quiet: false,
    };
    let (page, total) = state.plane.list_instances(call.project()?, &filter).await?;
    let instances: Vec<Value> = page
        .iter()
        .map(|v| render::instance(&state.plane, v, call.generation))
        .collect();
    Ok(json(
        200,
        json!({"instances": instances, "instance_num": total}),
    ))
}

pub(crate) async fn show(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let v = state
        .plane
        .show_instance(call.project()?, call.instance_id())
        .await?;
    Ok(json(
        200,
        render::instance(&state.plane, &v, call.generation),
    ))
}

pub(crate) async fn update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: UpdateBody = call.body()?;
    let changes = InstanceChanges {
        name: b.name,
        description: b.description,
        maintain_begin: b.maintain_begin,
        maintain_end: b.maintain_end,
        security_group_id: b.security_group_id,
        retention_policy: b.retention_policy,
        enterprise_project_id: b.enterprise_project_id,
        enable_acl: b.enable_acl,
        enable_publicip: b.enable_publicip,
        publicip_id: b.publicip_id,
    };
    state
        .plane
        .update_instance(call.project()?, call.instance_id(), &changes)
        .await?;
    Ok(no_content())
}

pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    state
        .plane
        .delete_instance(call.caller()?, call.instance_id())
        .await?;
    Ok(no_content())
}

pub(crate) async fn batch_action(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: BatchBody = call.body()?;
    let all_failure = match b.all_failure.as_deref().filter(|e| !e.is_empty()) {
        Some(name) => Some(engine_named(name)?),
        None => None,
    };
    let req = BatchAction {
        action: b.action,
        instances: b.instances,
        all_failure,
    };
    match state.plane.batch_action(call.caller()?, &req).await? {
        BatchOutcome::FailuresDeleted => Ok(no_content()),
        BatchOutcome::Results(results) => {
            let results: Vec<Value> = results
                .into_iter()
                .map(|(id, ok)| json!({"instance": id, "result": if ok { "success" } else { "failed" }}))
                .collect();
            Ok(json(200, json!({"results": results})))
        }
    }
}

/// Extends an instance's storage; the path's engine (if it names one) must be the
/// instance's.
pub(crate) async fn resize(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let b: ResizeBody = call.body()?;
    check_engine(&state, &call).await?;
    let req = Resize {
        oper_type: b.oper_type,
        new_storage_space: b.new_storage_space,
    };
    let job = state
        .plane
        .resize_instance(call.caller()?, call.instance_id(), &req)
        .await?;
    Ok(json(200, json!({"job_id": job})))
}
