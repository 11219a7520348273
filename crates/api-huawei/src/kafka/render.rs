//! JSON of what only Kafka instances have: their own instance fields, topics, and the
//! product catalog (seed 000's bandwidth specifications, the SDK's flavors).

use control::catalog::{self, Zone};
use control::model::{InstanceView, TopicInfo};
use serde_json::{json, Map, Value};

use crate::error::ApiGeneration;

/// The fields of a Kafka instance beyond those every engine has (`common::render`). Fields
/// of features OpenDMS does not provide (Kafka Manager, public access, connectors, message
/// query, tracing, DNS) say so: empty addresses, `false`.
pub(crate) fn instance_fields(
    out: &mut Map<String, Value>,
    v: &InstanceView,
    generation: ApiGeneration,
) {
    let d = &v.doc;
    let addresses = d.listeners.join(",");
    let fields = json!({
        // Seed 000 types it Integer but every example sends a string; the SDK model is str.
        "partition_num": d.partition_num.to_string(),
        "kafka_manager_user": d.kafka_manager_user,
        // OpenDMS runs no Kafka Manager.
        "management_connect_address": "",
        "public_bandwidth": d.public_bandwidth,
        "enable_auto_topic": d.enable_auto_topic,
        "service_type": "advanced",
        "storage_type": "hec",
        "retention_policy": d.retention_policy,
        "connector_enable": d.connector_enable,
        "connector_id": "",
        "connect_dn": "",
        "rest_enable": false,
        "rest_connect_address": "",
        "message_query_inst_enable": false,
        "trace_enable": false,
        "agent_enable": false,
        "pod_connect_address": "",
        // Without SASL every client connects in plaintext; with it none does.
        "vpc_client_plain": !d.ssl_enable,
        // The Huawei feature switches (`feature.physerver.kafka.*`) are APIs OpenDMS does
        // not serve.
        "support_features": "",
    });
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    if generation == ApiGeneration::V1 {
        return;
    }
    let protocol = if d.ssl_enable {
        "SASL_PLAINTEXT"
    } else {
        "PLAINTEXT"
    };
    let v2 = json!({
        "broker_num": d.broker_num,
        "node_num": d.broker_num,
        "kafka_security_protocol": protocol,
        "sasl_enabled_mechanisms": if d.ssl_enable { json!(["SCRAM-SHA-512", "PLAIN"]) } else { json!([]) },
        "broker_ssl_enable": false,
        "ssl_two_way_enable": false,
        "enable_acl": d.acl_enabled,
        "dns_enable": false,
        "order_id": d.order_id,
        "kafka_private_connect_address": addresses,
        "kafka_public_status": "closed",
        "public_connect_address": "",
        "public_management_connect_address": "",
        "enable_log_collection": false,
        "port_protocols": {
            "private_plain_enable": !d.ssl_enable,
            "private_plain_address": if d.ssl_enable { String::new() } else { addresses.clone() },
            "private_sasl_plaintext_enable": d.ssl_enable,
            "private_sasl_plaintext_address": if d.ssl_enable { addresses.clone() } else { String::new() },
            "private_sasl_ssl_enable": false,
            "public_plain_enable": false,
            "public_sasl_ssl_enable": false,
            "public_sasl_plaintext_enable": false,
        },
    });
    if let Value::Object(v2) = v2 {
        out.extend(v2);
    }
}

pub(crate) fn topic_v2(t: &TopicInfo) -> Value {
    json!({
        "name": t.name,
        "replication": t.replication,
        "partition": t.partitions,
        "retention_time": t.retention_hours,
        "sync_replication": t.sync_replication,
        "sync_message_flush": t.sync_flush,
        "policiesOnly": false,
        "topic_type": 0,
        "created_at": t.created_ms,
        "topic_other_configs": t.configs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
    })
}

pub(crate) fn topic_v1(t: &TopicInfo) -> Value {
    json!({
        "id": t.name,
        "replication": t.replication,
        "partition": t.partitions,
        "retention_time": t.retention_hours,
        "sync_replication": t.sync_replication,
        "sync_message_flush": t.sync_flush,
    })
}

/// Seed 000 6.2: the bandwidth specifications under `Hourly`, once per engine version.
pub(crate) fn products_v1(zones: &[Zone]) -> Value {
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let details: Vec<Value> = catalog::BANDWIDTH_SPECS
        .iter()
        .map(|s| {
            json!({
                "tps": s.tps.to_string(),
                "storage": s.min_storage_gb.to_string(),
                "partition_num": s.partition_num.to_string(),
                "product_id": s.product_id,
                "spec_code": s.resource_spec_code,
                "io": s.storage_spec_codes.iter().map(|c| {
                    let (io_type, volume) = if *c == catalog::HIGH { ("high", "SAS") } else { ("ultra", "SSD") };
                    json!({"io_type": io_type, "storage_spec_code": c, "available_zones": az, "volume_type": volume})
                }).collect::<Vec<_>>(),
                "bandwidth": s.specification,
                "unavailable_zones": [],
                "available_zones": az,
                "ecs_flavor_id": s.ecs_flavor_id,
                "arch_type": "X86",
            })
        })
        .collect();
    let versions: Vec<Value> = ["1.1.0", "2.3.0"]
        .iter()
        .map(|v| {
            json!({"name": "kafka", "version": v, "values": [{
                "detail": details, "name": "cluster", "unavailable_zones": [], "available_zones": az,
            }]})
        })
        .collect();
    json!({ "Hourly": versions })
}

/// `list_engine_products`: the flavor family.
pub(crate) fn products_v2(zones: &[Zone], product_id: Option<&str>) -> Value {
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let products: Vec<Value> = catalog::FLAVORS
        .iter()
        .filter(|f| product_id.is_none_or(|p| p.is_empty() || p == f.product_id))
        .map(|f| {
            json!({
                "type": "cluster",
                "product_id": f.product_id,
                "ecs_flavor_id": f.ecs_flavor_id,
                "billing_code": format!("dms.platinum.{}", f.product_id),
                "arch_types": ["X86"],
                "charging_mode": ["monthly", "hourly"],
                "ios": catalog::FLAVOR_STORAGE_SPEC_CODES.iter().map(|c| json!({
                    "io_spec": c, "type": if c.contains("high") { "normal" } else { "evs" },
                    "available_zones": az, "unavailable_zones": [],
                })).collect::<Vec<_>>(),
                "support_features": [],
                "properties": {
                    "max_partition_per_broker": f.max_partition_per_broker.to_string(),
                    "max_broker": f.max_broker.to_string(),
                    "max_storage_per_node": f.max_storage_per_node_gb.to_string(),
                    "max_consumer_per_broker": f.max_consumer_per_broker.to_string(),
                    "min_broker": f.min_broker.to_string(),
                    "max_bandwidth_per_broker": f.max_bandwidth_per_broker_mb.to_string(),
                    "min_storage_per_node": f.min_storage_per_node_gb.to_string(),
                    "max_tps_per_broker": f.max_tps_per_broker.to_string(),
                    "engine_versions": "1.1.0;2.3.0;2.7;3.x",
                    "product_alias": f.product_id,
                },
            })
        })
        .collect();
    json!({ "engine": "kafka", "versions": ["1.1.0", "2.3.0", "2.7", "3.x"], "products": products })
}
