//! Creating RabbitMQ instances (seed 002 4.1.1, `CreateInstanceReq` of
//! huaweicloudsdkrabbitmq) and resetting their access user's password (4.2.1).

use std::sync::Arc;

use axum::response::Response;
use control::model::{CreateShape, EngineKind, NewInstance, Tag};
use serde::Deserialize;
use serde_json::json;

use crate::call::{engine_named, Call};
use crate::error::ApiError;
use crate::{json, ApiState};

/// Seed 002 Table 4-4: billing of the instance. OpenDMS bills nothing; the fields are
/// type-checked so that a malformed body is refused as the cloud refuses it.
#[derive(Deserialize)]
#[allow(dead_code)] // read by serde for their types only
struct BssParam {
    is_auto_renew: Option<bool>,
    charging_mode: Option<String>,
    is_auto_pay: Option<bool>,
    period_type: Option<String>,
    period_num: Option<i64>,
    order_id: Option<String>,
}

/// Seed 002 Table 4-2 and the SDK's `CreateInstanceReq`.
#[derive(Deserialize)]
#[allow(dead_code)] // fields read by serde for their types only
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    engine: Option<String>,
    engine_version: Option<String>,
    storage_space: Option<i64>,
    access_user: Option<String>,
    password: Option<String>,
    vpc_id: Option<String>,
    security_group_id: Option<String>,
    subnet_id: Option<String>,
    available_zones: Option<Vec<String>>,
    product_id: Option<String>,
    broker_num: Option<i64>,
    maintain_begin: Option<String>,
    maintain_end: Option<String>,
    enable_publicip: Option<bool>,
    publicip_id: Option<String>,
    ssl_enable: Option<bool>,
    storage_spec_code: Option<String>,
    enterprise_project_id: Option<String>,
    tags: Option<Vec<Tag>>,
    bss_param: Option<BssParam>,
    // The SDK's fields beyond the document.
    enable_acl: Option<bool>,
    disk_encrypted_enable: Option<bool>,
    disk_encrypted_key: Option<String>,
    arch_type: Option<String>,
}

pub(crate) async fn create(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    create_with(state, call, CreateShape::Flavor).await
}

/// Seed 002 6.1.1.1: the V1 create, of an old-flavor product (`CreateShape::Bandwidth`
/// stands for the old family here, as it does for Kafka's seed 000).
pub(crate) async fn create_v1(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    create_with(state, call, CreateShape::Bandwidth).await
}

async fn create_with(
    state: Arc<ApiState>,
    call: Call,
    shape: CreateShape,
) -> Result<Response, ApiError> {
    let body: CreateBody = call.body()?;
    // The document's examples send "RabbitMQ"; the engine is compared without case.
    let engine = match body.engine.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(name) => engine_named(name)?,
        None => call.engine()?,
    };
    if body.disk_encrypted_enable == Some(true) {
        return Err(control::ControlError::NotSupported(
            "disk_encrypted_enable=true: OpenDMS does not encrypt instance disks".into(),
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
        maintain_begin: body.maintain_begin,
        maintain_end: body.maintain_end,
        ssl_enable: body.ssl_enable,
        access_user: body.access_user,
        password: body.password,
        enterprise_project_id: body.enterprise_project_id,
        enable_publicip: body.enable_publicip,
        publicip_id: body.publicip_id,
        tags: body.tags.unwrap_or_default(),
        ..NewInstance::default()
    };
    if engine != EngineKind::Rabbitmq {
        // A body naming another engine on RabbitMQ's path (seed 002: engine and product
        // do not match, DMS.00400022 in the cloud) is refused as an unknown engine here.
        return Err(control::ControlError::UnsupportedEngine(engine.as_str().into()).into());
    }
    let id = state
        .plane
        .create_instance(call.caller()?, &req, shape)
        .await?;
    Ok(json(200, json!({"instance_id": id})))
}

#[derive(Deserialize)]
struct ResetPasswordBody {
    new_password: Option<String>,
}

pub(crate) async fn reset_password(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: ResetPasswordBody = call.body()?;
    let password = body.new_password.unwrap_or_default();
    state
        .plane
        .reset_access_password(call.project()?, call.instance_id(), &password)
        .await?;
    Ok(crate::no_content())
}

/// Seed 002 4.3.1: the products the instance can change to, which are those of its own type
/// (single or cluster).
pub(crate) async fn extend_products(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    // Not a read of the instance's status: `delay_reads` does not count it.
    let view = state
        .plane
        .show_instance_quietly(call.project()?, call.instance_id())
        .await?;
    if view.engine != EngineKind::Rabbitmq {
        return Err(ApiError::not_supported(call.operation, Some(view.engine)));
    }
    Ok(json(
        200,
        super::render::extend_products(state.plane.zones(), &view.doc.product_type),
    ))
}

/// `GET /v2/products?engine=rabbitmq` (the SDK's `list_products`): the old-flavor products
/// of seed 002's V1 API in the SDK's `ListProductsResponse` shape. The path is shared with
/// the Kafka SDK, which OpenDMS does not serve it for.
pub(crate) async fn list_old_products(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    let engine = match call.query("engine").filter(|e| !e.is_empty()) {
        Some(name) => engine_named(name)?,
        None => EngineKind::Rabbitmq,
    };
    if engine != EngineKind::Rabbitmq {
        return Err(ApiError::not_supported(call.operation, Some(engine)));
    }
    Ok(json(200, super::render::old_products(state.plane.zones())))
}
