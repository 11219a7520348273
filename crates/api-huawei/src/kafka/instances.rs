//! Creating Kafka instances: by bandwidth specification (seed 000's `/v1.0` path and seed
//! 003's `/v2/{project_id}/instances`) or by flavor and broker count (the SDK's
//! `create_instance_by_engine` and `create_post_paid_kafka_instance`).

use std::sync::Arc;

use axum::response::Response;
use control::model::{CreateShape, EngineKind, KafkaOptions, NewInstance, Tag};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::call::{engine_named, Call};
use crate::error::ApiError;
use crate::{json, ApiState};

/// An integer that some documents send as a string (`"partition_num": "300"` in seed 000's
/// examples, `900` in seed 003's).
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Int(i64),
        Str(String),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Int(i)) => Ok(Some(i)),
        Some(Either::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Either::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

/// A create body of any of the documented shapes: seed 000 (`/v1.0`), seed 003
/// (`POST /v2/{project_id}/instances`) and the SDK's `CreateInstanceByEngineReq`.
#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    engine: Option<String>,
    engine_version: Option<String>,
    specification: Option<String>,
    broker_num: Option<i64>,
    storage_space: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    partition_num: Option<i64>,
    access_user: Option<String>,
    password: Option<String>,
    vpc_id: Option<String>,
    security_group_id: Option<String>,
    subnet_id: Option<String>,
    available_zones: Option<Vec<String>>,
    product_id: Option<String>,
    kafka_manager_user: Option<String>,
    kafka_manager_password: Option<String>,
    maintain_begin: Option<String>,
    maintain_end: Option<String>,
    enable_publicip: Option<bool>,
    public_bandwidth: Option<i64>,
    publicip_id: Option<String>,
    ssl_enable: Option<bool>,
    retention_policy: Option<String>,
    connector_enable: Option<bool>,
    enable_auto_topic: Option<bool>,
    storage_spec_code: Option<String>,
    enterprise_project_id: Option<String>,
    tags: Option<Vec<Tag>>,
    // Fields of the SDK's body that OpenDMS has no use for: their types are still checked,
    // so a malformed body is refused as the cloud refuses it.
    #[serde(rename = "kafka_security_protocol")]
    _kafka_security_protocol: Option<String>,
    #[serde(rename = "sasl_enabled_mechanisms")]
    _sasl_enabled_mechanisms: Option<Vec<String>>,
    #[serde(rename = "ipv6_enable")]
    _ipv6_enable: Option<bool>,
    #[serde(rename = "disk_encrypted_enable")]
    _disk_encrypted_enable: Option<bool>,
    #[serde(rename = "arch_type")]
    _arch_type: Option<String>,
    #[serde(rename = "vpc_client_plain")]
    _vpc_client_plain: Option<bool>,
}

impl CreateBody {
    /// The instance this body describes. `path_engine` is the engine the path names, used
    /// when the body names none.
    fn into_new_instance(self, path_engine: Option<EngineKind>) -> Result<NewInstance, ApiError> {
        let engine = match self.engine.as_deref().filter(|e| !e.trim().is_empty()) {
            Some(name) => Some(engine_named(name)?),
            None => path_engine,
        };
        Ok(NewInstance {
            name: self.name,
            description: self.description,
            engine,
            engine_version: self.engine_version,
            product_id: self.product_id,
            specification: self.specification,
            broker_num: self.broker_num,
            storage_space_gb: self.storage_space,
            storage_spec_code: self.storage_spec_code,
            vpc_id: self.vpc_id,
            subnet_id: self.subnet_id,
            security_group_id: self.security_group_id,
            available_zones: self.available_zones,
            maintain_begin: self.maintain_begin,
            maintain_end: self.maintain_end,
            ssl_enable: self.ssl_enable,
            access_user: self.access_user,
            password: self.password,
            enterprise_project_id: self.enterprise_project_id,
            enable_publicip: self.enable_publicip,
            public_bandwidth: self.public_bandwidth,
            publicip_id: self.publicip_id,
            tags: self.tags.unwrap_or_default(),
            enable_acl: None,
            ipv6_enable: None,
            kafka: KafkaOptions {
                partition_num: self.partition_num,
                kafka_manager_user: self.kafka_manager_user,
                kafka_manager_password: self.kafka_manager_password,
                retention_policy: self.retention_policy,
                enable_auto_topic: self.enable_auto_topic,
                connector_enable: self.connector_enable,
            },
        })
    }
}

async fn create(
    state: Arc<ApiState>,
    call: Call,
    shape: CreateShape,
) -> Result<Response, ApiError> {
    let body: CreateBody = call.body()?;
    // The flavor paths name the engine (`/v2/kafka/...`, `/v2/{project_id}/kafka/...`); the
    // bandwidth paths take it from the body, where seeds 000 and 003 require it.
    let path_engine = (shape == CreateShape::Flavor).then_some(EngineKind::Kafka);
    let req = body.into_new_instance(path_engine)?;
    let id = state
        .plane
        .create_instance(call.caller()?, &req, shape)
        .await?;
    Ok(json(200, json!({"instance_id": id})))
}

pub(crate) async fn create_by_bandwidth(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    create(state, call, CreateShape::Bandwidth).await
}

pub(crate) async fn create_by_flavor(
    state: Arc<ApiState>,
    call: Call,
) -> Result<Response, ApiError> {
    create(state, call, CreateShape::Flavor).await
}
