//! `/api/bindings`: list, show, create, delete. In paths a binding is named by its source,
//! its destination (`q/QUEUE` or `e/EXCHANGE`) and its `properties_key` (see
//! `format::properties_key`); the default exchange's implicit bindings (one per queue,
//! by the queue's name) are listed as RabbitMQ lists them, with source `""`.

use std::sync::Arc;

use amqp::auth::Access;
use amqp::exchange::{Binding, Destination};
use amqp::json::table_to_json;
use amqp::vhost::VHost;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::exchanges::exchange_name;
use crate::format::{properties_key, quote_plus};
use crate::list::{no_content, reply_item, reply_list, Params};
use crate::{AppState, Segs};

const SORT: &[&str] = &[
    "vhost",
    "source",
    "destination",
    "routing_key",
    "properties_key",
];

fn binding_json(vhost: &str, source: &str, b: &Binding) -> Value {
    json!({
        "source": source,
        "vhost": vhost,
        "destination": b.destination.name(),
        "destination_type": b.destination.kind(),
        "routing_key": b.routing_key,
        "arguments": table_to_json(&b.arguments),
        "properties_key": properties_key(&b.routing_key, &b.arguments),
    })
}

fn of_vhost(v: &VHost, keep: impl Fn(&str, &Binding) -> bool) -> Vec<Value> {
    v.bindings()
        .iter()
        .filter(|(s, b)| keep(s, b))
        .map(|(s, b)| binding_json(&v.name, s, b))
        .collect()
}

/// GET /api/bindings
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let items = caller
        .visible_vhosts(&state)
        .iter()
        .flat_map(|v| of_vhost(v, |_, _| true))
        .collect();
    reply_list(items, &params, SORT)
}

/// GET /api/bindings/{vhost}
pub async fn list_vhost(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs(vhost): Segs<String>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    reply_list(of_vhost(&v, |_, _| true), &params, SORT)
}

/// GET /api/exchanges/{vhost}/{name}/bindings/source
pub async fn list_source(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let name = exchange_name(&name);
    if !name.is_empty() {
        v.exchange(name).ok_or(ApiError::NotFound)?;
    }
    // As in RabbitMQ, the default exchange's implicit bindings are not listed here.
    let items = of_vhost(&v, |s, _| !s.is_empty() && s == name);
    reply_list(items, &params, SORT)
}

/// GET /api/exchanges/{vhost}/{name}/bindings/destination
pub async fn list_destination(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    v.exchange(&name).ok_or(ApiError::NotFound)?;
    let me = Destination::Exchange(name);
    let items = of_vhost(&v, |_, b| b.destination == me);
    reply_list(items, &params, SORT)
}

/// GET /api/queues/{vhost}/{name}/bindings
pub async fn list_queue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, name)): Segs<(String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    v.queue(&name).ok_or(ApiError::NotFound)?;
    let me = Destination::Queue(name);
    let items = of_vhost(&v, |_, b| b.destination == me);
    reply_list(items, &params, SORT)
}

/// The source and destination a binding path names, both checked to exist.
fn ends(
    v: &VHost,
    source: &str,
    kind: &str,
    destination: String,
) -> Result<(String, Destination), ApiError> {
    let source = exchange_name(source).to_string();
    if !source.is_empty() && v.exchange(&source).is_none() {
        return Err(ApiError::NotFound);
    }
    let destination = match kind {
        "q" => Destination::Queue(destination),
        "e" => Destination::Exchange(destination),
        _ => return Err(ApiError::NotFound),
    };
    let exists = match &destination {
        Destination::Queue(q) => v.queue(q).is_some(),
        Destination::Exchange(e) => v.exchange(e).is_some(),
    };
    if !exists {
        return Err(ApiError::NotFound);
    }
    Ok((source, destination))
}

/// GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}
pub async fn list_between(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, source, kind, destination)): Segs<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, destination)?;
    let items = of_vhost(&v, |s, b| s == source && b.destination == destination);
    reply_list(items, &params, SORT)
}

/// The binding a path names by its `properties_key`.
fn find(
    v: &VHost,
    source: &str,
    destination: &Destination,
    props: &str,
) -> Result<Binding, ApiError> {
    v.bindings()
        .into_iter()
        .find(|(s, b)| {
            s == source
                && &b.destination == destination
                && properties_key(&b.routing_key, &b.arguments) == props
        })
        .map(|(_, b)| b)
        .ok_or(ApiError::NotFound)
}

/// GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
    Segs((vhost, source, kind, destination, props)): Segs<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, destination)?;
    let b = find(&v, &source, &destination, &props)?;
    Ok(reply_item(binding_json(&v.name, &source, &b), &params))
}

/// The rights a queue.bind or exchange.bind needs: write on the destination, read on the
/// source.
fn check_rights(
    state: &AppState,
    caller: &Caller,
    v: &VHost,
    source: &str,
    d: &Destination,
) -> Result<(), ApiError> {
    let b = &state.broker;
    b.check(caller.name(), &v.name, Access::Write, d.kind(), d.name())?;
    b.check(caller.name(), &v.name, Access::Read, "exchange", source)?;
    Ok(())
}

/// POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}: `routing_key` and
/// `arguments`; 201 with the new binding's path in `Location`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    uri: Uri,
    Segs((vhost, source, kind, destination)): Segs<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = caller.vhost_to_change(&state, &vhost)?;
    let body = Body::parse(&body)?;
    let routing_key = body.str("routing_key")?.unwrap_or_default().to_string();
    let arguments = body.table("arguments")?;
    let source = exchange_name(&source).to_string();
    let destination = match kind.as_str() {
        "q" => Destination::Queue(destination),
        "e" => Destination::Exchange(destination),
        _ => return Err(ApiError::NotFound),
    };
    if source.is_empty() {
        return Err(amqp::AmqpError::access_refused(
            "operation not permitted on the default exchange",
        )
        .into());
    }
    check_rights(&state, &caller, &v, &source, &destination)?;
    let key = properties_key(&routing_key, &arguments);
    state
        .broker
        .bind(
            &v,
            &source,
            Binding {
                destination,
                routing_key,
                arguments,
            },
        )
        .await?;
    // Relative to the request's path, as RabbitMQ writes it: `DESTINATION/PROPS`.
    let last = uri.path().rsplit('/').next().unwrap_or_default();
    let location = format!("{last}/{}", quote_plus(&key));
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segs((vhost, source, kind, destination, props)): Segs<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    let v = caller.vhost(&state, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, destination)?;
    let b = find(&v, &source, &destination, &props)?;
    check_rights(&state, &caller, &v, &source, &destination)?;
    state.broker.unbind(&v, &source, &b).await?;
    Ok(no_content())
}
