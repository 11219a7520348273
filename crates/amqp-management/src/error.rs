//! The one place where failures become responses, worded as RabbitMQ's management plug-in
//! words them (`rabbit_mgmt_util`): 404 `Object Not Found`, 401 `Login failed` with a
//! `WWW-Authenticate` challenge, 401 `not_authorised` for missing tags or rights, 400
//! `bad_request` for bodies it cannot use.
//!
//! Broker errors map as the plug-in maps the AMQP errors of the three ways it talks to the
//! broker:
//! - declarations, deletions and bindings (`direct_request`): NOT_FOUND is 404 `not_found`
//!   with the explanation, ACCESS_REFUSED and NOT_ALLOWED are 401 `Access refused.`, any
//!   other is 400 `bad_request` with the explanation (the reply text without `CODE - `);
//! - publishing: 400 `bad_request` with `CODE TEXT` (`404 NOT_FOUND - no exchange ...`);
//! - getting messages: NOT_FOUND is 404 `not_found` and ACCESS_REFUSED 401 `not_authorised`,
//!   both with the reply text; any other is 400 with `CODE TEXT`.

use amqp::{AmqpError, ReplyCode};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such object (or path): 404 `Object Not Found`.
    #[error("not found")]
    NotFound,
    /// No `Authorization` header: a bare 401 challenge.
    #[error("no credentials")]
    NoCredentials,
    /// Bad credentials: an unknown user or a wrong password.
    #[error("login failed")]
    LoginFailed,
    /// A user that may not log in from where it connects (`loopback_users`).
    #[error("login refused: {0}")]
    LoginRefused(String),
    /// Authenticated, but missing a tag or a right: 401 `not_authorised` with the reason.
    #[error("not authorised: {0}")]
    NotAuthorised(String),
    /// A body or parameter that cannot be used; the reason is a string or, as RabbitMQ
    /// reports some of them, a list (`["not_boolean", "yes"]`).
    #[error("bad request: {0}")]
    BadRequest(Value),
    /// A 404 with RabbitMQ's `not_found` body and a reason (`vhost_not_found`).
    #[error("not found: {0}")]
    NotFoundBecause(String),
    /// An error of a declaration, deletion or binding.
    #[error("{0}")]
    Direct(AmqpError),
    /// An error of a publish.
    #[error("publish: {0}")]
    Publish(AmqpError),
    /// An error of getting messages.
    #[error("get: {0}")]
    Get(AmqpError),
    /// The broker refuses the operation for now (a resource alarm blocks publishers).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The broker failed (a task panicked, the disk refused a write).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest(Value::String(reason.into()))
    }

    /// RabbitMQ's `{Reason, Detail}` pairs, which JSON shows as a two-element list.
    pub fn bad_pair(reason: &str, detail: impl Into<Value>) -> ApiError {
        ApiError::BadRequest(json!([reason, detail.into()]))
    }

    pub fn not_authorised(reason: impl Into<String>) -> ApiError {
        ApiError::NotAuthorised(reason.into())
    }

    fn parts(&self) -> (StatusCode, &'static str, Value) {
        let text = |e: &AmqpError| Value::String(e.text.clone());
        let coded = |e: &AmqpError| Value::String(format!("{} {}", e.code.code(), e.text));
        match self {
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Object Not Found",
                json!("Not Found"),
            ),
            ApiError::NoCredentials | ApiError::LoginFailed => (
                StatusCode::UNAUTHORIZED,
                "not_authorized",
                json!("Login failed"),
            ),
            ApiError::LoginRefused(r) => (StatusCode::UNAUTHORIZED, "not_authorized", json!(r)),
            ApiError::NotAuthorised(r) => (StatusCode::UNAUTHORIZED, "not_authorised", json!(r)),
            ApiError::BadRequest(r) => (StatusCode::BAD_REQUEST, "bad_request", r.clone()),
            ApiError::NotFoundBecause(r) => (StatusCode::NOT_FOUND, "not_found", json!(r)),
            ApiError::Direct(e) => match e.code {
                ReplyCode::NotFound => (StatusCode::NOT_FOUND, "not_found", json!(explanation(e))),
                ReplyCode::AccessRefused | ReplyCode::NotAllowed => (
                    StatusCode::UNAUTHORIZED,
                    "not_authorised",
                    json!("Access refused."),
                ),
                ReplyCode::InternalError => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    json!(explanation(e)),
                ),
                _ => (
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    json!(explanation(e)),
                ),
            },
            ApiError::Publish(e) => (StatusCode::BAD_REQUEST, "bad_request", coded(e)),
            ApiError::Get(e) => match e.code {
                ReplyCode::NotFound => (StatusCode::NOT_FOUND, "not_found", text(e)),
                ReplyCode::AccessRefused => (StatusCode::UNAUTHORIZED, "not_authorised", text(e)),
                _ => (StatusCode::BAD_REQUEST, "bad_request", coded(e)),
            },
            ApiError::Unavailable(r) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                json!(r),
            ),
            ApiError::Internal(r) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                json!(r),
            ),
        }
    }
}

/// An AMQP reply text without its `CODE - ` prefix: what RabbitMQ calls the explanation.
pub fn explanation(e: &AmqpError) -> &str {
    e.text
        .strip_prefix(e.code.name())
        .and_then(|t| t.strip_prefix(" - "))
        .unwrap_or(&e.text)
}

impl From<AmqpError> for ApiError {
    fn from(e: AmqpError) -> ApiError {
        ApiError::Direct(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::NoCredentials) {
            let mut resp = StatusCode::UNAUTHORIZED.into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge());
            return resp;
        }
        let (status, error, reason) = self.parts();
        if status.is_server_error() {
            tracing::warn!(error = %self, "management request failed");
        }
        let mut resp = (
            status,
            axum::Json(json!({"error": error, "reason": reason})),
        )
            .into_response();
        if matches!(self, ApiError::LoginFailed) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge());
        }
        resp
    }
}

fn challenge() -> HeaderValue {
    HeaderValue::from_static("Basic realm=\"RabbitMQ Management\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_map_as_rabbitmq_maps_them() {
        let e = AmqpError::precondition("inequivalent arg 'durable' for queue 'q' in vhost '/'");
        let (status, error, reason) = ApiError::Direct(e.clone()).parts();
        assert_eq!((status.as_u16(), error), (400, "bad_request"));
        assert_eq!(
            reason,
            "inequivalent arg 'durable' for queue 'q' in vhost '/'"
        );
        let (status, _, reason) = ApiError::Publish(e).parts();
        assert_eq!(status.as_u16(), 400);
        assert_eq!(
            reason,
            "406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/'"
        );
        let refused = AmqpError::access_refused("configure access to queue 'q' refused");
        let (status, error, reason) = ApiError::Direct(refused.clone()).parts();
        assert_eq!((status.as_u16(), error), (401, "not_authorised"));
        assert_eq!(reason, "Access refused.");
        let (status, _, reason) = ApiError::Get(refused).parts();
        assert_eq!(status.as_u16(), 401);
        assert_eq!(
            reason,
            "ACCESS_REFUSED - configure access to queue 'q' refused"
        );
        let missing = AmqpError::not_found("no queue 'q' in vhost '/'");
        let (status, error, reason) = ApiError::Direct(missing).parts();
        assert_eq!(
            (status.as_u16(), error, reason),
            (404, "not_found", json!("no queue 'q' in vhost '/'"))
        );
    }
}
