//! What OpenDMS serves beside the cloud APIs: health, Prometheus metrics and the lifecycle
//! controls for testing wait and failure logic. (The OpenAPI document is served by `routes`,
//! which owns the table it is made of.)

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::call::Call;
use crate::error::ApiError;
use crate::operation::{op, Operation};
use crate::{json, ApiState};

pub(crate) static OPERATIONS: &[Operation] = &[
    op!(public Get "/healthz", "healthz", "Liveness check (no authentication)", healthz),
    op!(public Get "/metrics", "metrics", "Prometheus metrics (no authentication)", metrics),
    op!(Get "/opendms/admin/lifecycle", "show_lifecycle_controls",
        "Show the transition delays and injected failures", None, show_lifecycle_controls),
    op!(Put "/opendms/admin/lifecycle", "update_lifecycle_controls",
        "Set transition delays and injected failures", None, update_lifecycle_controls),
];

async fn healthz(_: Arc<ApiState>, _: Call) -> Result<Response, ApiError> {
    Ok(json(200, json!({"status": "ok"})))
}

async fn metrics(state: Arc<ApiState>, _: Call) -> Result<Response, ApiError> {
    let (by_status, running) = state.plane.figures().await?;
    let text = state.metrics.render(&by_status, &running);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

async fn show_lifecycle_controls(state: Arc<ApiState>, _: Call) -> Result<Response, ApiError> {
    Ok(json(
        200,
        serde_json::to_value(state.plane.controls()).map_err(ApiError::internal)?,
    ))
}

async fn update_lifecycle_controls(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let controls: control::lifecycle::LifecycleControls = call.body()?;
    state.plane.set_controls(controls);
    show_lifecycle_controls(state, call).await
}
