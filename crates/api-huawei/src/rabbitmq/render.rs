//! JSON of what only RabbitMQ instances have: their own instance fields (seed 002 Table
//! 4-12) and the product catalog (4.6.3).

use control::catalog::{self, Zone};
use control::model::InstanceView;
use serde_json::{json, Map, Value};

use crate::error::ApiGeneration;

/// The fields of a RabbitMQ instance beyond those every engine has (`common::render`).
/// `connect_address` is the instance's address without a port and `port` the AMQP port, as
/// in the document's example (`"192.168.0.74"`, 5672); the management API is a URL.
pub(crate) fn instance_fields(
    out: &mut Map<String, Value>,
    v: &InstanceView,
    _generation: ApiGeneration,
) {
    let d = &v.doc;
    let management = if d.management_listener.is_empty() {
        String::new()
    } else {
        format!("http://{}", d.management_listener)
    };
    let fields = json!({
        "type": if d.product_type.is_empty() { "single" } else { d.product_type.as_str() },
        "broker_num": d.broker_num,
        "connect_address": d.broker_ips().first().cloned().unwrap_or_default(),
        "management_connect_address": management,
        "publicip_address": Value::Null,
        "publicip_id": if d.publicip_id.is_empty() { Value::Null } else { json!(d.publicip_id) },
        "order_id": "",
        "service_type": "advanced",
        "storage_type": "hec",
        "dns_enable": false,
        "connect_domain_name": "",
        "public_connect_address": "",
        "public_connect_domain_name": "",
        "management_connect_domain_name": "",
        "public_management_connect_address": "",
        "public_management_connect_domain_name": "",
    });
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
}

/// `GET /v2/rabbitmq/products` (seed 002 4.6.3).
pub(crate) fn products_v2(zones: &[Zone], product_id: Option<&str>) -> Value {
    products(zones, |p| {
        product_id.is_none_or(|id| id.is_empty() || id == p.product_id)
    })
}

/// `GET .../instances/{instance_id}/extend` (seed 002 4.3.1): the products of the
/// instance's type, each with the AZs it can be had in.
pub(crate) fn extend_products(zones: &[Zone], kind: &str) -> Value {
    let kind = if kind.is_empty() { "single" } else { kind };
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let mut out = products(zones, |p| p.kind == kind);
    if let Some(list) = out.get_mut("products").and_then(Value::as_array_mut) {
        for p in list.iter_mut().filter_map(Value::as_object_mut) {
            p.insert("available_zones".into(), json!(az));
            p.insert("unavailable_zones".into(), json!([]));
        }
    }
    out
}

fn products(zones: &[Zone], keep: impl Fn(&catalog::RabbitmqProduct) -> bool) -> Value {
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let products: Vec<Value> = catalog::RABBITMQ_PRODUCTS
        .iter()
        .filter(|p| keep(p))
        .map(|p| {
            let ios: Vec<Value> = [catalog::ULTRA_V2, catalog::HIGH_V2]
                .iter()
                .map(|c| json!({"io_spec": c, "type": "evs", "available_zones": az, "unavailable_zones": []}))
                .collect();
            json!({
                "type": p.kind,
                "product_id": p.product_id,
                "ecs_flavor_id": p.ecs_flavor_id,
                "billing_code": "dms.platinum.c6",
                "arch_types": ["X86"],
                "charging_mode": ["monthly", "hourly"],
                "ios": ios,
                "support_features": [],
                "properties": {
                    "step_length": p.broker_step.to_string(),
                    "max_queue_per_broker": p.max_queue_per_broker.to_string(),
                    "max_connection_per_broker": p.max_connection_per_broker.to_string(),
                    "max_broker": p.max_broker.to_string(),
                    "max_storage_per_node": p.max_storage_per_node_gb.to_string(),
                    "min_broker": p.min_broker.to_string(),
                    "min_storage_per_node": p.min_storage_per_node_gb.to_string(),
                    "engine_versions": catalog::RABBITMQ_ENGINE_VERSIONS.join(";"),
                    "product_alias": p.alias,
                },
            })
        })
        .collect();
    json!({
        "engine": "rabbitmq",
        "versions": catalog::RABBITMQ_ENGINE_VERSIONS,
        "products": products,
    })
}
