//! The Huawei Cloud REST façade: IAM (`/v3`), DMS for Kafka `/v1.0` (seed 000) and `/v2`
//! (seed 003 and the paths of `huaweicloudsdkkafka`), OpenDMS's admin endpoint, health,
//! metrics and the OpenAPI document.
//!
//! Every request goes through [`handle`]: route, authenticate, parse, call the control plane,
//! render. Errors are rendered in one place (`error.rs`).

// The instance body is one large json! literal.
#![recursion_limit = "256"]

mod error;
mod handlers;
mod identity;
mod metrics;
mod render;
mod routes;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use control::ControlPlane;
use store::MetaStore;

pub use error::{ApiError, ApiGeneration};
pub use metrics::Metrics;
pub use routes::{openapi, OPERATIONS};

/// AK/SK-signed bodies are limited to 12 MB by Huawei's gateway (seed 000 §3.2).
pub const MAX_BODY_BYTES: usize = 12 * 1024 * 1024;

pub struct ApiState {
    pub plane: Arc<ControlPlane>,
    pub store: Arc<dyn MetaStore>,
    /// Key that signs IAM tokens (kept in the metadata store so tokens survive restarts).
    pub token_key: Vec<u8>,
    pub metrics: Arc<Metrics>,
}

/// The façade as an axum router.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let started = std::time::Instant::now();
    let (op, mut resp) = handlers::handle(&state, req, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    state
        .metrics
        .record_request(op, resp.status().as_u16(), started.elapsed());
    resp
}

/// Lets handlers answer `Result<Response, ApiError>` in one generation.
pub(crate) fn respond(
    result: Result<Response, ApiError>,
    generation: ApiGeneration,
    request_id: &str,
) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(code = %e.code_for(generation), message = %e.message, request_id, "request failed");
            } else {
                tracing::info!(status = e.status.as_u16(), code = %e.code_for(generation), message = %e.message, request_id, "request refused");
            }
            e.render(generation, request_id)
        }
    }
}

pub(crate) fn json(status: u16, body: serde_json::Value) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    (status, axum::Json(body)).into_response()
}
