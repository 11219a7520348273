//! The Alibaba Cloud RPC façade on `/`: `Action` dispatch for Message Queue for Kafka
//! (version 2019-09-16), RPC HMAC-SHA1 and ACS3-HMAC-SHA256 signatures over the same
//! credentials as the Huawei façade, JSON or XML answers with `RequestId`, `Code`,
//! `Message` and `Success`.
//!
//! `request` turns an HTTP request into an authenticated action call, `actions` is the table
//! of actions (one function each), `monitor` the CloudMonitor actions, `envelope` renders
//! answers and errors.

#![warn(clippy::cast_possible_truncation)]

mod actions;
mod cms;
mod envelope;
mod monitor;
mod request;
mod throttle;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::Response;
use control::ControlPlane;
use parking_lot::Mutex;
use store::MetaStore;

pub use envelope::AliError;
pub use throttle::ThrottleConfig;

pub const API_VERSION: &str = "2019-09-16";
/// A signed request larger than this is refused (the SDKs send parameters in the query).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct AliState {
    pub plane: Arc<ControlPlane>,
    pub store: Arc<dyn MetaStore>,
    /// Region → project id. Regions not listed use the project named after the region, else
    /// the account's first project.
    pub regions: HashMap<String, String>,
    /// Nonces seen in the last 15 minutes, with when they may be forgotten.
    nonces: Mutex<HashMap<String, i64>>,
    throttle: throttle::Throttle,
    /// Sampled broker figures for the CloudMonitor operations.
    pub metrics: Arc<control::metrics::MetricStore>,
}

impl AliState {
    pub fn new(
        plane: Arc<ControlPlane>,
        store: Arc<dyn MetaStore>,
        regions: HashMap<String, String>,
        throttle: ThrottleConfig,
        metrics: Arc<control::metrics::MetricStore>,
    ) -> Arc<Self> {
        Arc::new(AliState {
            plane,
            store,
            regions,
            nonces: Mutex::new(HashMap::new()),
            throttle: throttle::Throttle::new(throttle),
            metrics,
        })
    }

    /// Records a nonce; false if it was already used within the signature window.
    fn fresh_nonce(&self, access_key: &str, nonce: &str, now: i64) -> bool {
        let mut seen = self.nonces.lock();
        if seen.len() > 100_000 {
            seen.retain(|_, until| *until > now);
        }
        let key = format!("{access_key}/{nonce}");
        match seen.get(&key) {
            Some(until) if *until > now => false,
            _ => {
                seen.insert(key, now + 2 * auth::alibaba::MAX_SKEW_SECS);
                true
            }
        }
    }
}

/// The handler for `/` (any method).
pub async fn handle(State(state): State<Arc<AliState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let e = AliError::new(413, "InvalidParameter", "the request body is too large");
            return envelope::error_response(&e, "", true, &request_id);
        }
    };
    let parsed = match request::parse(&state, &parts, &body).await {
        Ok(p) => p,
        Err((e, json)) => {
            tracing::info!(code = %e.code, message = %e.message, request_id, "alibaba request refused");
            return envelope::error_response(&e, "", json, &request_id);
        }
    };
    let action = parsed.action.clone();
    let json = parsed.json;
    let user_id = parsed.caller.user_id.clone();
    if let Err(wait) = state.throttle.admit(&user_id, &action) {
        tracing::info!(action, request_id, "alibaba request throttled");
        let e = AliError::new(
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        );
        let mut resp = envelope::error_response(&e, &action, json, &request_id);
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_millis().max(1).to_string()) {
            resp.headers_mut().insert("x-acs-retry-after", v);
        }
        return resp;
    }
    match actions::run(state.clone(), parsed).await {
        Ok(body) => envelope::success_response(&action, body, json, &request_id),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(action, code = %e.code, message = %e.message, request_id, "alibaba request failed");
            } else {
                tracing::info!(action, code = %e.code, message = %e.message, request_id, "alibaba request refused");
            }
            envelope::error_response(&e, &action, json, &request_id)
        }
    }
}
