//! Where instances can live and how many a project may have: zones, products, maintenance
//! windows, quotas.

use std::sync::Arc;

use axum::response::Response;
use control::model::EngineKind;
use serde_json::{json, Value};

use super::render;
use crate::call::{engine_named, Call};
use crate::error::{ApiError, ApiGeneration};
use crate::{json, ApiState};

pub(crate) async fn list_zones(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let (region, zones) = (&state.plane.config().region, state.plane.zones());
    Ok(json(
        200,
        match call.generation {
            ApiGeneration::V1 => render::zones_v1(region, zones),
            ApiGeneration::V2 => render::zones_v2(region, zones),
        },
    ))
}

pub(crate) async fn maintain_windows(_: Arc<ApiState>, _: Call) -> Result<Response, ApiError> {
    Ok(json(200, render::maintain_windows()))
}

/// The products of the engine the path (or, on `/v1.0`, the `engine` query) names.
pub(crate) async fn list_products(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    // Seed 000's `/v1.0/products` takes the engine as a query parameter (kafka only).
    let engine = match (call.engine, call.query("engine").filter(|e| !e.is_empty())) {
        (Some(e), _) => e,
        (None, Some(name)) => engine_named(name)?,
        (None, None) => EngineKind::Kafka,
    };
    let zones = state.plane.zones();
    match (engine, call.generation) {
        (EngineKind::Kafka, ApiGeneration::V1) => {
            Ok(json(200, crate::kafka::render::products_v1(zones)))
        }
        (EngineKind::Kafka, ApiGeneration::V2) => Ok(json(
            200,
            crate::kafka::render::products_v2(zones, call.query("product_id")),
        )),
        (EngineKind::Rabbitmq, ApiGeneration::V1) => {
            Ok(json(200, crate::rabbitmq::render::products_v1()))
        }
        (EngineKind::Rabbitmq, ApiGeneration::V2) => Ok(json(
            200,
            crate::rabbitmq::render::products_v2(zones, call.query("product_id")),
        )),
        (EngineKind::Rocketmq, ApiGeneration::V2) => Ok(json(
            200,
            crate::rocketmq::render::products(zones, call.query("product_id")),
        )),
        (other, _) => Err(ApiError::not_supported(call.operation, Some(other))),
    }
}

pub(crate) async fn quotas(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let quotas = state.plane.quotas(call.project()?).await?;
    let resources: Vec<Value> = quotas
        .into_iter()
        .map(|(engine, quota, used)| json!({"type": engine.as_str(), "quota": quota, "used": used}))
        .collect();
    Ok(json(200, json!({"quotas": {"resources": resources}})))
}
