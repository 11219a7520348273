//! Who is asking: HTTP basic credentials checked against the broker's own users, and the
//! tags and rights RabbitMQ's management plug-in asks of them (`rabbit_mgmt_util`):
//! any management tag to use the API at all, `administrator` for users, permissions, vhost
//! changes and definitions, `monitoring` (or `administrator`) for nodes and everyone's
//! connections; objects of a vhost need the tag `administrator` or a permission in it.

use std::net::SocketAddr;
use std::sync::Arc;

use amqp::auth::User;
use amqp::vhost::VHost;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;

use crate::error::ApiError;
use crate::AppState;

/// The authenticated user of a request.
pub struct Caller {
    pub user: User,
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.user.name
    }

    pub fn is_admin(&self) -> bool {
        self.user.is_administrator()
    }

    /// `monitoring` or `administrator`: sees every connection, channel and the node.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.user.tags.iter().any(|t| t == "monitoring")
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    pub fn require_monitor(&self) -> Result<(), ApiError> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }

    /// May list the objects of `vhost`: administrators may list every vhost, others the
    /// ones they have a permission in.
    pub fn sees_vhost(&self, state: &AppState, vhost: &str) -> bool {
        self.is_admin() || state.broker.may_access_vhost(self.name(), vhost)
    }

    /// The vhost a path names: 404 when there is none, 401 when the caller may not look
    /// into it (the order RabbitMQ checks them in).
    pub fn vhost(&self, state: &AppState, name: &str) -> Result<Arc<VHost>, ApiError> {
        let v = state.broker.vhost(name).ok_or(ApiError::NotFound)?;
        if !self.sees_vhost(state, name) {
            return Err(ApiError::not_authorised(
                "User not authorised to access virtual host",
            ));
        }
        Ok(v)
    }

    /// The vhost of a declaration (PUT of a queue or exchange, POST of a binding or of
    /// definitions): a missing one is 404 `vhost_not_found`.
    pub fn vhost_to_change(&self, state: &AppState, name: &str) -> Result<Arc<VHost>, ApiError> {
        if state.broker.vhost(name).is_none() {
            return Err(ApiError::NotFoundBecause("vhost_not_found".into()));
        }
        self.vhost(state, name)
    }

    /// The vhost of a publish or get: RabbitMQ opens a channel to it, so a missing one is
    /// 401 `Access refused.`.
    pub fn vhost_to_use(&self, state: &AppState, name: &str) -> Result<Arc<VHost>, ApiError> {
        if state.broker.vhost(name).is_none() {
            return Err(ApiError::Direct(amqp::AmqpError::not_allowed(format!(
                "vhost {name} not found"
            ))));
        }
        self.vhost(state, name)
    }

    /// The vhosts whose objects the caller lists.
    pub fn visible_vhosts(&self, state: &AppState) -> Vec<Arc<VHost>> {
        state
            .broker
            .vhosts()
            .into_iter()
            .filter(|v| self.sees_vhost(state, &v.name))
            .collect()
    }

    /// Whether the caller sees a connection of `user` (its own, or everyone's when it
    /// monitors).
    pub fn sees_connection_of(&self, user: &str) -> bool {
        self.is_monitor() || self.name() == user
    }
}

/// `Authorization: Basic base64(user:password)`.
fn credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Caller, ApiError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::NoCredentials);
        }
        let (name, password) = credentials(parts).ok_or(ApiError::LoginFailed)?;
        // RabbitMQ lets no one in with an empty password.
        if password.is_empty() {
            return Err(ApiError::LoginFailed);
        }
        let user = state.broker.user(&name).ok_or(ApiError::LoginFailed)?;
        // Hashing is quick, but it is CPU work a flood of requests could pile onto the
        // async workers.
        let checked = user.clone();
        let ok = tokio::task::spawn_blocking(move || checked.check_password(&password))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if !ok {
            return Err(ApiError::LoginFailed);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if state.broker.config.loopback_users.contains(&user.name)
            && peer.is_some_and(|p| !p.ip().is_loopback())
        {
            return Err(ApiError::LoginRefused(
                "User can only log in via localhost".into(),
            ));
        }
        if !user.may_manage() {
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(Caller { user })
    }
}
