//! The broker's plug-ins (seed 002 4.2.2 and 4.2.3).

use std::sync::Arc;

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::call::Call;
use crate::error::ApiError;
use crate::{json, ApiState};

pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let plugins = state
        .plane
        .plugins(call.project()?, call.instance_id())
        .await?;
    Ok(json(
        200,
        json!({
            "plugins": plugins.iter().map(|p| json!({
                "running": p.running,
                "enable": p.enable,
                "name": p.name,
                "version": p.version,
            })).collect::<Vec<_>>(),
            // A change is applied while its request waits: none is ever in progress.
            "plugins_modifying": false,
        }),
    ))
}

/// Table 4-24: `enable` and the comma-separated `plugins`.
#[derive(Deserialize)]
struct UpdateBody {
    enable: Option<bool>,
    plugins: Option<String>,
}

pub(crate) async fn update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: UpdateBody = call.body()?;
    let job_id = state
        .plane
        .update_plugins(
            call.caller()?,
            call.instance_id(),
            body.enable.unwrap_or(true),
            body.plugins.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(json(200, json!({ "job_id": job_id })))
}
