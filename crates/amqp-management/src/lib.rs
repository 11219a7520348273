//! The RabbitMQ management HTTP API (`/api/...`, as the `rabbitmq_management` plug-in of
//! RabbitMQ 3.8+ answers it) for the OpenDMS AMQP broker: what `rabbitmqadmin`, monitoring
//! tools and client libraries' admin helpers talk to.
//!
//! Requests authenticate with HTTP basic credentials of the broker's own users (`auth`).
//! One module per family of resources: `overview` (overview, whoami, nodes, extensions,
//! health checks, aliveness test), `vhosts`, `users`, `permissions`, `exchanges`, `queues`,
//! `bindings`, `connections` (connections, channels, consumers) and `definitions`. Errors
//! become responses in one place (`error`); listings share their query parameters
//! (`list`); message rates come from counters sampled in the background (`stats`).

mod auth;
mod bindings;
mod body;
mod connections;
mod definitions;
mod error;
mod exchanges;
mod format;
pub use format::properties_key;
mod list;
mod overview;
mod permissions;
mod phash2;
mod queues;
mod stats;
mod users;
mod vhosts;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use amqp::Broker;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tracing::{info, warn};

pub use error::ApiError;

/// The largest request body taken (RabbitMQ's default `management.http.max_body_size`).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Settings of the management listener.
#[derive(Clone, Debug)]
pub struct ManagementConfig {
    pub listen: SocketAddr,
    /// Where the broker accepts AMQP connections (listed in the overview).
    pub amqp_listener: Option<SocketAddr>,
    /// How often message counters are sampled for rates (RabbitMQ's
    /// `collect_statistics_interval`, 5 s).
    pub sample_interval: Duration,
}

impl ManagementConfig {
    pub fn new(listen: SocketAddr) -> ManagementConfig {
        ManagementConfig {
            listen,
            amqp_listener: None,
            sample_interval: Duration::from_secs(5),
        }
    }
}

/// What every handler reads.
pub(crate) struct AppState {
    pub broker: Arc<Broker>,
    pub stats: stats::Stats,
    /// The node name (`rabbit@host`): the broker's cluster name.
    pub node: String,
    pub started: Instant,
    /// The management listener's own address.
    pub http_listener: SocketAddr,
    pub amqp_listener: Option<SocketAddr>,
}

/// A running management listener.
pub struct ManagementServer {
    local_addr: SocketAddr,
    serve: JoinHandle<()>,
    sampler: JoinHandle<()>,
}

impl ManagementServer {
    /// Binds `config.listen` and serves the API of `broker`.
    pub async fn start(
        broker: Arc<Broker>,
        config: ManagementConfig,
    ) -> std::io::Result<ManagementServer> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(AppState {
            node: broker.config.cluster_name.clone(),
            broker,
            stats: stats::Stats::default(),
            started: Instant::now(),
            http_listener: local_addr,
            amqp_listener: config.amqp_listener,
        });
        let sampler = tokio::spawn(sample_loop(
            Arc::downgrade(&state),
            config.sample_interval.max(Duration::from_millis(100)),
        ));
        let app = lazy_router(state).into_make_service_with_connect_info::<SocketAddr>();
        let serve = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!(error = %e, "management listener stopped");
            }
        });
        info!(%local_addr, "amqp management api listening");
        Ok(ManagementServer {
            local_addr,
            serve,
            sampler,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving (requests in flight are dropped) and waits until the listener is
    /// closed, so that its address can be bound again at once.
    pub async fn stop(self) {
        self.serve.abort();
        self.sampler.abort();
        let _ = self.serve.await;
        let _ = self.sampler.await;
    }
}

async fn sample_loop(state: std::sync::Weak<AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        state.stats.sample(&state.broker);
    }
}

/// Path parameters, percent-decoded (`%2F` is `/`); a path that does not decode names
/// nothing (404).
pub(crate) struct Segs<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Segs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Segs<T>, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Segs(t))
            .map_err(|_| ApiError::NotFound)
    }
}

/// The API's routes, built by the first request: an idle broker whose management API nobody
/// calls does not page in the code that builds ~60 routes (measured on the idle
/// `opendms rabbitmq`, LTO build: 10.0 -> 9.3 MB RSS, most of it binary pages; 10.7 MB
/// once the API has answered).
fn lazy_router(state: Arc<AppState>) -> Router {
    let routes = Arc::new(OnceLock::<Router>::new());
    Router::new().fallback(move |req: axum::extract::Request| {
        let router = routes.get_or_init(|| router(state.clone())).clone();
        async move {
            match router.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// The routes of the API.
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/extensions", get(overview::extensions))
        .route("/api/healthchecks/node", get(overview::healthcheck))
        .route("/api/healthchecks/node/{node}", get(overview::healthcheck))
        .route("/api/health/checks/alarms", get(overview::alarms))
        .route("/api/health/checks/local-alarms", get(overview::alarms))
        .route(
            "/api/health/checks/virtual-hosts",
            get(overview::healthcheck),
        )
        .route("/api/aliveness-test/{vhost}", get(overview::aliveness_test))
        .route("/api/vhosts", get(vhosts::list))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::show)
                .put(vhosts::declare)
                .delete(vhosts::delete),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::list_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::list_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/channels",
            get(connections::list_vhost_channels),
        )
        .route("/api/users", get(users::list))
        .route(
            "/api/users/{user}",
            get(users::show).put(users::declare).delete(users::delete),
        )
        .route("/api/users/{user}/permissions", get(permissions::list_user))
        .route("/api/permissions", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show)
                .put(permissions::declare)
                .delete(permissions::delete),
        )
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::declare)
                .delete(exchanges::delete),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchanges::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings::list_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings::list_destination),
        )
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show)
                .put(queues::declare)
                .delete(queues::delete),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(queues::purge),
        )
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(bindings::list_queue),
        )
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(bindings::list_between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(bindings::show).delete(bindings::delete),
        )
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::show).delete(connections::close),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::list_of_connection),
        )
        .route("/api/channels", get(connections::list_channels))
        .route("/api/channels/{name}", get(connections::show_channel))
        .route("/api/consumers", get(connections::list_consumers))
        .route(
            "/api/consumers/{vhost}",
            get(connections::list_vhost_consumers),
        )
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
