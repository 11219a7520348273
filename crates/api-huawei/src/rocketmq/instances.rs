//! Creating RocketMQ instances (seed 001 5.1.1, the SDK's `create_instance_by_engine` and
//! `create_post_paid_instance`), their brokers (5.1.7) and nodes, and restarting them.

use std::sync::Arc;

use axum::response::Response;
use control::model::{CreateShape, EngineKind, InstanceView, NewInstance, Tag};
use serde::Deserialize;
use serde_json::{json, Value};

use super::page;
use crate::call::{engine_named, Call};
use crate::error::ApiError;
use crate::{json, ApiState};

/// Seed 001 Table 5-2 and the SDK's `CreateInstanceByEngineReq`.
#[derive(Deserialize)]
#[allow(dead_code)] // fields read by serde for their types only
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    engine: Option<String>,
    engine_version: Option<String>,
    storage_space: Option<i64>,
    vpc_id: Option<String>,
    subnet_id: Option<String>,
    security_group_id: Option<String>,
    available_zones: Option<Vec<String>>,
    product_id: Option<String>,
    ssl_enable: Option<bool>,
    storage_spec_code: Option<String>,
    enterprise_project_id: Option<String>,
    enable_acl: Option<bool>,
    ipv6_enable: Option<bool>,
    enable_publicip: Option<bool>,
    publicip_id: Option<String>,
    broker_num: Option<i64>,
    tags: Option<Vec<Tag>>,
    // The SDK's fields beyond the document.
    proxy_enable: Option<bool>,
    disk_encrypted_enable: Option<bool>,
    disk_encrypted_key: Option<String>,
    arch_type: Option<String>,
    tls_mode: Option<String>,
    ipv6_broker_address: Option<String>,
    ipv6_namesrv_address: Option<String>,
    bss_param: Option<serde_json::Value>,
}

pub(crate) async fn create(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: CreateBody = call.body()?;
    let engine = match body.engine.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(name) => engine_named(name)?,
        None => call.engine()?,
    };
    if engine != EngineKind::Rocketmq {
        return Err(control::ControlError::UnsupportedEngine(engine.as_str().into()).into());
    }
    if body.disk_encrypted_enable == Some(true) {
        return Err(control::ControlError::NotSupported(
            "disk_encrypted_enable=true: OpenDMS does not encrypt instance disks".into(),
        )
        .into());
    }
    if body.proxy_enable == Some(true) {
        return Err(control::ControlError::NotSupported(
            "proxy_enable=true: OpenDMS's RocketMQ instances have no gRPC proxy (RocketMQ 5.x clients)".into(),
        )
        .into());
    }
    let req = NewInstance {
        name: body.name,
        description: body.description,
        engine: Some(engine),
        engine_version: body.engine_version,
        product_id: body.product_id,
        broker_num: body.broker_num,
        storage_space_gb: body.storage_space,
        storage_spec_code: body.storage_spec_code,
        vpc_id: body.vpc_id,
        subnet_id: body.subnet_id,
        security_group_id: body.security_group_id,
        available_zones: body.available_zones,
        ssl_enable: body.ssl_enable,
        enterprise_project_id: body.enterprise_project_id,
        enable_publicip: body.enable_publicip,
        publicip_id: body.publicip_id,
        enable_acl: body.enable_acl,
        ipv6_enable: body.ipv6_enable,
        tags: body.tags.unwrap_or_default(),
        ..NewInstance::default()
    };
    let id = state
        .plane
        .create_instance(call.caller()?, &req, CreateShape::Flavor)
        .await?;
    Ok(json(200, json!({"instance_id": id})))
}

/// The instance the path names, which must be a RocketMQ instance (another engine's is not
/// found on RocketMQ's paths, as each engine's API sees only its own instances).
async fn rocketmq_view(state: &ApiState, call: &Call) -> Result<InstanceView, ApiError> {
    let view = state
        .plane
        .show_instance_quietly(call.project()?, call.instance_id())
        .await?;
    if view.engine != EngineKind::Rocketmq {
        return Err(control::ControlError::InstanceNotFound(call.instance_id().into()).into());
    }
    Ok(view)
}

/// 5.1.7: every broker with its ids (one master, id 0, per broker group here).
pub(crate) async fn list_brokers(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let brokers = state
        .plane
        .rocketmq_brokers(call.project()?, call.instance_id())
        .await?;
    let items: Vec<Value> = brokers
        .iter()
        .map(|(name, _)| json!({"broker_name": name, "ids": [0]}))
        .collect();
    let (items, total, next, previous) = page(&call, items)?;
    Ok(json(
        200,
        json!({"brokers": items, "total": total, "next_offset": next, "previous_offset": previous}),
    ))
}

/// The SDK's `show_instance_nodes`: every broker node with its address.
pub(crate) async fn list_nodes(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let brokers = state
        .plane
        .rocketmq_brokers(call.project()?, call.instance_id())
        .await?;
    let nodes: Vec<Value> = brokers
        .iter()
        .map(|(name, addr)| {
            json!({
                "id": control::catalog::stable_hex_id(&format!("{}/{name}", call.instance_id())),
                "broker_name": name, "broker_id": 0, "address": addr, "public_address": "",
            })
        })
        .collect();
    let (nodes, total, _, _) = page(&call, nodes)?;
    Ok(json(200, json!({"nodes": nodes, "total": total})))
}

/// The SDK's `restart_instance`: restarts the brokers (RESTARTING, then RUNNING once they
/// accept connections again).
pub(crate) async fn restart(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let view = rocketmq_view(&state, &call).await?;
    state
        .plane
        .restart_instance(call.caller()?, call.instance_id())
        .await?;
    let nodes: Vec<String> = (0..view.doc.broker_num)
        .map(|i| format!("broker-{i}"))
        .collect();
    Ok(json(
        200,
        json!({"instance_id": call.instance_id(), "nodes": nodes, "result": "success"}),
    ))
}

/// The SDK's `show_engine_instance_extend_product_info`: the flavors the instance can be
/// had in, each with the AZs it can live in. Only storage extension is carried out
/// (`resize_instance` with `oper_type` `storage`); a flavor or broker change answers
/// "not supported".
pub(crate) async fn extend_products(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    rocketmq_view(&state, &call).await?;
    let zones = state.plane.zones();
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let mut out = super::render::products(zones, None);
    if let Some(list) = out.get_mut("products").and_then(Value::as_array_mut) {
        for p in list.iter_mut().filter_map(Value::as_object_mut) {
            p.insert("available_zones".into(), json!(az));
            p.insert("unavailable_zones".into(), json!([]));
        }
    }
    Ok(json(200, out))
}

/// The SDK's `ModifyConfigReq`.
#[derive(Deserialize)]
struct ConfigsBody {
    rocketmq_configs: Option<Vec<ConfigEntry>>,
}

#[derive(Deserialize)]
struct ConfigEntry {
    name: String,
    value: String,
}

/// The SDK's `show_rocket_mq_configs`: the broker settings that change without a restart.
pub(crate) async fn show_configs(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let configs = state
        .plane
        .rocketmq_configs(call.project()?, call.instance_id())
        .await?;
    let items: Vec<Value> = configs
        .iter()
        .map(|c| {
            json!({
                "name": c.param.name, "value": c.value, "config_type": "dynamic",
                "default_value": c.param.default, "valid_values": c.param.valid_values,
                "value_type": c.param.value_type,
            })
        })
        .collect();
    let (items, total, next, previous) = page(&call, items)?;
    Ok(json(
        200,
        json!({"rocketmq_configs": items, "total": total, "next_offset": next, "previous_offset": previous}),
    ))
}

/// The SDK's `update_rocket_mq_configs`: applied to every broker at once; 204.
pub(crate) async fn update_configs(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: ConfigsBody = call.body()?;
    let changes: Vec<(String, String)> = body
        .rocketmq_configs
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect();
    state
        .plane
        .update_rocketmq_configs(call.project()?, call.instance_id(), &changes)
        .await?;
    Ok(crate::no_content())
}
