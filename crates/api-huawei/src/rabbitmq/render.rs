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
    generation: ApiGeneration,
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
    if generation == ApiGeneration::V1 {
        // Seed 002 Table 6-6: `extend_times` is a String in V1, and `error_code` says why
        // an instance failed (null otherwise).
        out.insert("extend_times".into(), json!(d.extend_times.to_string()));
        let failed = matches!(v.status.as_str(), "CREATEFAILED" | "ERROR");
        out.insert(
            "error_code".into(),
            if failed {
                json!("public.00.0024")
            } else {
                Value::Null
            },
        );
    }
}

/// `GET /v1.0/products?engine=rabbitmq` (seed 002 6.1.2.2, in the shape of its example):
/// the old-flavor products under `Hourly` and `Monthly`.
pub(crate) fn products_v1() -> Value {
    let io: Vec<Value> = catalog::RABBITMQ_V1_STORAGE_SPEC_CODES
        .iter()
        .map(|c| json!({"io_type": c.rsplit('.').next().unwrap_or(c), "storage_spec_code": c}))
        .collect();
    let mode = |monthly: bool| -> Value {
        let single: Vec<Value> = catalog::RABBITMQ_V1_PRODUCTS
            .iter()
            .filter(|p| p.kind == "single")
            .filter_map(|p| {
                p.id(monthly).map(|pid| {
                    json!({
                        "storage": "100", "io": io, "vm_specification": p.vm,
                        "product_id": pid, "spec_code": p.spec_code,
                    })
                })
            })
            .collect();
        let mut vms: Vec<&str> = Vec::new();
        for p in catalog::RABBITMQ_V1_PRODUCTS
            .iter()
            .filter(|p| p.kind == "cluster")
        {
            if !vms.contains(&p.vm) {
                vms.push(p.vm);
            }
        }
        let cluster: Vec<Value> = vms
            .iter()
            .map(|vm| {
                let info: Vec<Value> = catalog::RABBITMQ_V1_PRODUCTS
                    .iter()
                    .filter(|p| p.kind == "cluster" && p.vm == *vm)
                    .filter_map(|p| p.id(monthly).map(|pid| json!({
                        "storage": (100 * p.nodes).to_string(), "io": io,
                        "node_num": p.nodes.to_string(), "product_id": pid, "spec_code": p.spec_code,
                    })))
                    .collect();
                json!({"vm_specification": vm, "product_info": info})
            })
            .collect();
        json!([{"name": "RabbitMQ", "version": "3.8.35", "values": [
            {"detail": single, "name": "single"},
            {"detail": cluster, "name": "cluster"},
        ]}])
    };
    json!({"Hourly": mode(false), "Monthly": mode(true)})
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

/// The SDK's `ListProductsResponse`: the old-flavor products by billing mode, each a flat
/// `detail` entry with its disk types and zones.
pub(crate) fn old_products(zones: &[Zone]) -> Value {
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let io: Vec<Value> = catalog::RABBITMQ_V1_STORAGE_SPEC_CODES
        .iter()
        .map(|c| {
            let kind = c.rsplit('.').next().unwrap_or(c);
            json!({"io_type": kind, "storage_spec_code": c, "available_zones": az,
                   "unavailable_zones": [], "volume_type": kind.to_uppercase()})
        })
        .collect();
    let mode = |monthly: bool| -> Value {
        let values: Vec<Value> = ["single", "cluster"]
            .iter()
            .map(|kind| {
                let detail: Vec<Value> = catalog::RABBITMQ_V1_PRODUCTS
                    .iter()
                    .filter(|p| p.kind == *kind)
                    .filter_map(|p| {
                        p.id(monthly).map(|id| {
                            json!({
                                "storage": (100 * p.nodes).to_string(), "product_id": id,
                                "spec_code": p.spec_code, "io": io, "available_zones": az,
                                "unavailable_zones": [], "ecs_flavor_id": "", "arch_type": "X86",
                            })
                        })
                    })
                    .collect();
                json!({"detail": detail, "name": kind, "available_zones": az, "unavailable_zones": []})
            })
            .collect();
        json!([{"name": "rabbitmq", "version": "3.8.35", "values": values}])
    };
    json!({"Hourly": mode(false), "Monthly": mode(true)})
}
