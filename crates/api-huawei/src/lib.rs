//! The Huawei Cloud REST façade: IAM (`/v3`), DMS for Kafka `/v1.0` (seed 000) and `/v2`
//! (seed 003 and the paths of `huaweicloudsdkkafka`), the paths of the RabbitMQ and RocketMQ
//! SDKs, OpenDMS's admin endpoint, health, metrics and the OpenAPI document.
//!
//! The modules follow the documents' URL families: `common` has the instance routes every
//! engine shares (list, show, update, delete, batch actions, tasks, tags, quotas, extension,
//! zones, products, maintenance windows); `kafka`, `rabbitmq` and `rocketmq` own their
//! engine's sub-resources with their request and response types; `iam` and `service` are the
//! rest. Every request goes through [`handle`]: resolve the route (`routes`), authenticate
//! (`identity`), pick the operation of the request's engine, call its handler with a
//! [`call::Call`]. Errors are rendered in one place (`error`).

// The instance body is one large json! literal.
#![recursion_limit = "256"]
#![warn(clippy::cast_possible_truncation)]

mod call;
mod common;
mod error;
mod iam;
mod identity;
mod kafka;
mod metrics;
mod operation;
mod rabbitmq;
mod rocketmq;
mod routes;
mod service;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use control::model::EngineKind;
use control::{Caller, ControlPlane};
use store::MetaStore;

use crate::call::Call;
use crate::operation::Verb;
use crate::routes::{Entry, Matched, Resolved, Target};

pub use error::{ApiError, ApiGeneration};
pub use metrics::Metrics;
pub use routes::{not_supported, openapi};

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
    let (parts, body) = req.into_parts();
    let path: Vec<String> = parts
        .uri
        .path()
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let generation = if path.first().is_some_and(|s| s == "v1.0") {
        ApiGeneration::V1
    } else {
        ApiGeneration::V2
    };
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut operation = "not_found";
    let result = match routes::resolve(Verb::parse(parts.method.as_str()), &segs) {
        Matched::NotFound => Err(ApiError::not_found_url()),
        Matched::MethodNotAllowed => {
            operation = "method_not_allowed";
            Err(ApiError::method_not_allowed())
        }
        Matched::Family(resolved) => {
            operation = resolved.entries[0].name;
            match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                Ok(body) => {
                    dispatch(&state, &parts, body, resolved, generation, &mut operation).await
                }
                Err(_) => Err(ApiError::dms(
                    413,
                    "400004",
                    format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
                )),
            }
        }
    };
    let mut resp = respond(result, generation, &request_id);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    state
        .metrics
        .record_request(operation, resp.status().as_u16(), started.elapsed());
    resp
}

/// Authenticates a resolved request, picks the operation of its engine and runs it.
async fn dispatch(
    state: &Arc<ApiState>,
    parts: &Parts,
    body: Bytes,
    resolved: Resolved,
    generation: ApiGeneration,
    operation: &mut &'static str,
) -> Result<Response, ApiError> {
    let raw_query = parts.uri.query().unwrap_or("");
    let public = resolved
        .entries
        .iter()
        .all(|e| e.handler().is_some_and(|op| op.public));
    let identity = if public {
        None
    } else {
        Some(
            identity::authenticate(
                state.store.as_ref(),
                &state.token_key,
                &parts.method,
                parts.uri.path(),
                raw_query,
                &parts.headers,
                &body,
            )
            .await?,
        )
    };
    let caller = match (resolved.param("project_id"), &identity) {
        (Some(project), Some(identity)) => {
            Some(identity::caller_for(state.store.as_ref(), identity, project).await?)
        }
        _ => None,
    };
    let (entry, engine) = pick(state, &resolved, caller.as_ref(), &body).await?;
    *operation = entry.name;
    let op = match entry.target {
        Target::NotSupported => return Err(ApiError::not_supported(entry.name, entry.engine)),
        Target::Handler(op) => op,
    };
    let call = Call {
        generation,
        operation: entry.name,
        engine,
        params: resolved.params,
        query: auth::decode_pairs(raw_query),
        body,
        identity,
        caller,
    };
    (op.handler)(state.clone(), call).await
}

/// The row of a resolved family that answers this request, and the request's engine.
///
/// The engine is the one the path names (`{engine}`, or a literal such as `kafka`), else the
/// body's `engine` (create), else the instance's own. An operation for every engine answers
/// whichever it is.
async fn pick(
    state: &ApiState,
    resolved: &Resolved,
    caller: Option<&Caller>,
    body: &[u8],
) -> Result<(&'static Entry, Option<EngineKind>), ApiError> {
    let entries = &resolved.entries;
    let engine = if let Some(name) = resolved.param("engine") {
        Some(call::engine_named(name)?)
    } else if entries.iter().all(|e| e.engine == entries[0].engine) {
        entries[0].engine
    } else if entries
        .iter()
        .any(|e| e.engine.is_none() && e.handler().is_some())
    {
        // One operation serves every engine: it finds the instance's engine itself if it
        // needs it.
        None
    } else if let (Some(id), Some(caller)) = (resolved.param("instance_id"), caller) {
        Some(state.plane.instance_engine(&caller.project_id, id).await?)
    } else if let Ok(body) = call::parse::<serde_json::Map<String, serde_json::Value>>(body) {
        let named = body.get("engine").and_then(|e| e.as_str()).unwrap_or("");
        Some(call::engine_named(named)?)
    } else {
        // Several engines have the path and the request names none of them.
        None
    };
    let serves = |e: &&&Entry| e.engine.is_none() || engine.is_none() || e.engine == engine;
    let chosen = entries
        .iter()
        .filter(serves)
        .find(|e| e.handler().is_some() && e.engine.is_some())
        .or_else(|| {
            entries
                .iter()
                .filter(serves)
                .find(|e| e.handler().is_some())
        })
        .or_else(|| entries.iter().find(serves))
        .copied();
    match chosen {
        Some(e) => Ok((e, engine.or(e.engine))),
        None => Err(ApiError::not_found_for(engine)),
    }
}

/// Renders a handler's result; refusals and failures are logged once, here.
pub(crate) fn respond(
    result: Result<Response, ApiError>,
    generation: ApiGeneration,
    request_id: &str,
) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() && e.status.as_u16() != 501 {
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

pub(crate) fn no_content() -> Response {
    axum::http::StatusCode::NO_CONTENT.into_response()
}
