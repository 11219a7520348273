//! The node as a whole: `/api/overview`, `/api/whoami`, `/api/nodes`, `/api/extensions`,
//! the health checks and `/api/aliveness-test/{vhost}`.
//!
//! Keys of RabbitMQ's answers left out, because this broker has nothing true to put there:
//! - overview: `erlang_version` and `erlang_full_version` (no Erlang runtime),
//!   `release_series_support_status` (RabbitMQ's own release support calendar),
//!   `churn_rates` (the broker does not count connections, channels and queues opened and
//!   closed);
//! - nodes: the Erlang runtime's (`proc_used`, `proc_total`, `run_queue`, `gc_num`,
//!   `gc_bytes_reclaimed`, `context_switches`, `reductions`, `applications`,
//!   `net_ticktime`, `metrics_gc_queue_length`, `ra_open_file_metrics`) and its
//!   storage's (`io_*`, `mnesia_*`, `msg_store_*`, `queue_index_*`) counters, the churn
//!   counters (`connection_created`, `queue_deleted`, ...), `disk_free_limit` (the disk
//!   alarm is raised at the storage quota, not at a free-space watermark), `mem_limit`
//!   when the broker has no memory limit, `sockets_total` (no socket limit but the file
//!   descriptor limit, shown as `fd_total`) and `log_files` (the log goes to standard
//!   error).

use std::sync::Arc;

use amq_protocol::protocol::BasicProperties;
use amqp::auth::Access;
use amqp::broker::QueueDeclare;
use amqp::definitions::RABBIT_VERSION;
use amqp::exchange::ExchangeKind;
use amqp::message::{now_ms, Message};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::format::rate;
use crate::list::{json_ok, reply_item, reply_list, Params};
use crate::stats::{message_stats, Counters, Gauges, Rates};
use crate::{AppState, Segs};

const EXCHANGE_TYPES: &[(ExchangeKind, &str)] = &[
    (
        ExchangeKind::Direct,
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        ExchangeKind::Fanout,
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        ExchangeKind::Headers,
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        ExchangeKind::Topic,
        "AMQP topic exchange, as per the AMQP specification",
    ),
    (ExchangeKind::ConsistentHash, "Consistent Hashing Exchange"),
    (ExchangeKind::Delayed, "Delayed Message Exchange."),
];

/// The exchange types that may be declared: the plug-in ones while their plug-in is on.
fn exchange_types(state: &AppState) -> Value {
    Value::Array(
        EXCHANGE_TYPES
            .iter()
            .filter(|(k, _)| state.broker.exchange_kind_enabled(*k))
            .map(|(k, d)| json!({"name": k.as_str(), "description": d, "enabled": true}))
            .collect(),
    )
}

fn contexts(state: &AppState) -> Value {
    json!([{
        "ssl_opts": [],
        "node": state.node,
        "description": "RabbitMQ Management",
        "path": "/",
        "ip": state.http_listener.ip().to_string(),
        "port": state.http_listener.port().to_string(),
    }])
}

fn listeners(state: &AppState) -> Value {
    let mut out = Vec::new();
    if let Some(a) = state.amqp_listener {
        out.push(json!({
            "node": state.node, "protocol": "amqp", "ip_address": a.ip().to_string(),
            "port": a.port(), "socket_opts": {},
        }));
    }
    let h = state.http_listener;
    out.push(json!({
        "node": state.node, "protocol": "http", "ip_address": h.ip().to_string(),
        "port": h.port(), "socket_opts": {"ip": h.ip().to_string(), "port": h.port()},
    }));
    Value::Array(out)
}

/// GET /api/overview
pub async fn overview(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let vhosts = caller.visible_vhosts(&state);
    let (mut ready, mut unacked, mut consumers, mut queues, mut exchanges) = (0, 0, 0, 0, 0);
    let mut counters = Counters::default();
    let mut rates = Rates::default();
    for v in &vhosts {
        for q in v.queues() {
            let (r, u, c) = q.counts();
            ready += r;
            unacked += u;
            consumers += c;
            queues += 1;
        }
        // The built-in ones and the default exchange, which the vhost does not list.
        exchanges += v.exchanges().len() + 1;
        let (c, r) = state.stats.vhost(&state.broker, &v.name);
        counters.add(&c);
        rates.add(&r);
    }
    let connections: Vec<_> = state
        .broker
        .connections()
        .into_iter()
        .filter(|c| caller.sees_connection_of(&c.user))
        .collect();
    let channels: usize = connections.iter().map(|c| c.channels.len()).sum();
    let body = json!({
        "management_version": RABBIT_VERSION,
        "rates_mode": "basic",
        // Rates are the change between the last two samples; no history of samples is
        // kept (so `msg_rates_age` and the `samples` of RabbitMQ's details do not apply).
        "sample_retention_policies": {"global": [], "basic": [], "detailed": []},
        "exchange_types": exchange_types(&state),
        "product_version": RABBIT_VERSION,
        "product_name": "RabbitMQ",
        "rabbitmq_version": RABBIT_VERSION,
        "cluster_name": state.broker.config.cluster_name,
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": message_stats(&counters, &rates, false),
        "queue_totals": {
            "messages": ready + unacked,
            "messages_details": rate(rates.messages),
            "messages_ready": ready,
            "messages_ready_details": rate(rates.messages_ready),
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": rate(rates.messages_unacknowledged),
        },
        "object_totals": {
            "channels": channels,
            "connections": connections.len(),
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": state.node,
        "listeners": listeners(&state),
        "contexts": contexts(&state),
    });
    Ok(reply_item(body, &params))
}

/// GET /api/whoami
pub async fn whoami(caller: Caller) -> Response {
    json_ok(json!({"name": caller.user.name, "tags": caller.user.tags}))
}

/// The one node.
fn node_json(state: &AppState) -> Value {
    let g = Gauges::read(&state.broker);
    let r = state.stats.gauge_rates();
    let alarm = state.broker.alarm_reason();
    let mut enabled_plugins = vec!["rabbitmq_management".to_string()];
    enabled_plugins.extend(state.broker.plugins());
    let mut node = json!({
        "name": state.node,
        "type": "disc",
        "running": true,
        "os_pid": std::process::id().to_string(),
        "uptime": u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "partitions": [],
        "cluster_links": [],
        "rates_mode": "basic",
        "exchange_types": exchange_types(state),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "enabled_plugins": enabled_plugins,
        "contexts": contexts(state),
        "config_files": [],
        "db_dir": state.broker.config.data_dir.display().to_string(),
        "mem_used": g.mem_used,
        "mem_used_details": rate(r.mem_used),
        "mem_alarm": alarm == Some("low on memory"),
        "mem_calculation_strategy": "rss",
        "disk_free": g.disk_free,
        "disk_free_details": rate(r.disk_free),
        "disk_free_alarm": alarm == Some("low on disk"),
        "fd_used": g.fd_used,
        "fd_used_details": rate(r.fd_used),
        "fd_total": g.fd_total,
        "sockets_used": g.sockets_used,
        "sockets_used_details": rate(r.sockets_used),
    });
    // The memory queued messages may take before publishers are blocked (`mem_used` is
    // the process's resident memory, RabbitMQ's `rss` strategy).
    if let (Some(limit), Value::Object(m)) = (state.broker.config.memory_limit_bytes, &mut node) {
        m.insert("mem_limit".into(), json!(limit));
    }
    node
}

/// GET /api/nodes
pub async fn nodes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    caller.require_monitor()?;
    reply_list(vec![node_json(&state)], &params, &["name"])
}

/// GET /api/nodes/{node}
pub async fn node(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(name): Segs<String>,
) -> Result<Response, ApiError> {
    caller.require_monitor()?;
    if name != state.node {
        return Err(ApiError::NotFound);
    }
    Ok(reply_item(node_json(&state), &params))
}

/// GET /api/extensions: none (RabbitMQ lists the web UI's plug-in scripts here).
pub async fn extensions(_caller: Caller) -> Response {
    json_ok(json!([]))
}

/// GET /api/healthchecks/node and /api/health/checks/virtual-hosts: the node and every
/// vhost run while the broker answers.
pub async fn healthcheck(_caller: Caller) -> Response {
    json_ok(json!({"status": "ok"}))
}

/// GET /api/health/checks/alarms and /local-alarms: 503 while a resource alarm blocks
/// publishers.
pub async fn alarms(State(state): State<Arc<AppState>>, _caller: Caller) -> Response {
    match state.broker.alarm_reason() {
        None => json_ok(json!({"status": "ok"})),
        Some(reason) => {
            let resource = if reason.contains("disk") {
                "disk"
            } else {
                "memory"
            };
            let body = json!({
                "status": "failed",
                "reason": "resource alarm(s) in effect in the cluster",
                "alarms": [{"node": state.node, "resource": resource}],
            });
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(body),
            )
                .into_response()
        }
    }
}

/// GET /api/aliveness-test/{vhost}: declares `aliveness-test`, publishes a message to it
/// and gets it back, as RabbitMQ does.
pub async fn aliveness_test(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    const QUEUE: &str = "aliveness-test";
    const BODY: &[u8] = b"test_message";
    let v = caller.vhost(&state, &vhost)?;
    let broker = &state.broker;
    for access in [Access::Configure, Access::Write, Access::Read] {
        broker.check(caller.name(), &v.name, access, "queue", QUEUE)?;
    }
    let (q, _) = broker
        .declare_queue(
            &v,
            QueueDeclare {
                name: QUEUE,
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: Default::default(),
                connection: None,
            },
        )
        .await?;
    let properties = BasicProperties::default();
    let message = Message {
        exchange: String::new(),
        routing_key: QUEUE.into(),
        raw_properties: amqp::frame::encode_properties(&properties)?,
        properties,
        body: Bytes::from_static(BODY),
        published_ms: now_ms(),
    };
    v.publish(Arc::new(message))?;
    let (got, _) = q.fetch(1);
    let ok = got.first().is_some_and(|m| m.message.body.as_ref() == BODY);
    q.ack_many(&got);
    if ok {
        Ok(json_ok(json!({"status": "ok"})))
    } else {
        Ok(json_ok(
            json!({"status": "failed", "reason": "the message published was not got back"}),
        ))
    }
}
