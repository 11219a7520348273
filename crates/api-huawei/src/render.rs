//! JSON bodies as the documents and the SDK models spell them.

use control::catalog::{self, Zone};
use control::model::{InstanceView, TopicView};
use serde_json::{json, Value};

use crate::error::ApiGeneration;

const GIB: u64 = 1 << 30;

/// An instance as `show_instance` / `list_instances` (V2) and seed 000's 5.2 / 5.6 (V1)
/// show it. Fields OpenDMS has no equivalent for (VPC names, Kafka Manager addresses) are
/// left out rather than invented; the SDK turns missing fields into `None`.
pub fn instance(v: &InstanceView, generation: ApiGeneration) -> Value {
    let d = &v.doc;
    let ips = d.broker_ips();
    let port = d.port().unwrap_or(0);
    let addresses = d.listeners.join(",");
    let used_gb = v.used_bytes / GIB;
    let mut out = json!({
        "name": v.name,
        "engine": v.engine,
        "engine_version": d.engine_version,
        "description": d.description,
        "specification": d.specification,
        "storage_space": d.storage_space_gb,
        "total_storage_space": d.storage_space_gb,
        // Seed 000 types it Integer but every example sends a string; the SDK model is str.
        "partition_num": d.partition_num.to_string(),
        "used_storage_space": used_gb,
        "connect_address": ips.join(","),
        "port": port,
        "status": v.status.as_str(),
        "instance_id": v.id,
        "resource_spec_code": d.resource_spec_code,
        "charging_mode": 1,
        "vpc_id": d.vpc_id,
        "created_at": v.created_at_ms.to_string(),
        "user_id": d.user_id,
        "user_name": d.user_name,
        "access_user": d.access_user,
        "maintain_begin": d.maintain_begin,
        "maintain_end": d.maintain_end,
        "enable_publicip": d.enable_publicip,
        "public_bandwidth": d.public_bandwidth,
        "ssl_enable": d.ssl_enable,
        "enterprise_project_id": d.enterprise_project_id,
        "is_logical_volume": true,
        "extend_times": d.extend_times,
        "enable_auto_topic": d.enable_auto_topic,
        "type": "cluster",
        "product_id": d.product_id,
        "security_group_id": d.security_group_id,
        "subnet_id": d.subnet_id,
        "available_zones": d.available_zones,
        "storage_spec_code": d.storage_spec_code,
        "service_type": "advanced",
        "storage_type": "hec",
        "retention_policy": d.retention_policy,
        "connector_enable": d.connector_enable,
        "ipv6_enable": false,
        "disk_encrypted": false,
        "kafka_manager_user": d.kafka_manager_user,
    });
    if let (Some(reason), Some(obj)) = (&v.status_reason, out.as_object_mut()) {
        // Not in the documents: why a create, restart or extension failed. Clients ignore
        // fields they do not know (seed 000 §1.1 asks them to).
        obj.insert("status_reason".into(), json!(reason));
    }
    if let (ApiGeneration::V2, Some(obj)) = (generation, out.as_object_mut()) {
        let protocol = if d.ssl_enable {
            "SASL_PLAINTEXT"
        } else {
            "PLAINTEXT"
        };
        obj.insert("broker_num".into(), json!(d.broker_num));
        obj.insert("node_num".into(), json!(d.broker_num));
        obj.insert("kafka_security_protocol".into(), json!(protocol));
        obj.insert(
            "sasl_enabled_mechanisms".into(),
            if d.ssl_enable {
                json!(["SCRAM-SHA-512", "PLAIN"])
            } else {
                json!([])
            },
        );
        obj.insert("broker_ssl_enable".into(), json!(false));
        obj.insert("kafka_private_connect_address".into(), json!(addresses));
        obj.insert(
            "port_protocols".into(),
            json!({
                "private_plain_enable": !d.ssl_enable,
                "private_plain_address": if d.ssl_enable { String::new() } else { addresses.clone() },
                "private_sasl_plaintext_enable": d.ssl_enable,
                "private_sasl_plaintext_address": if d.ssl_enable { addresses.clone() } else { String::new() },
                "private_sasl_ssl_enable": false,
                "public_plain_enable": false,
                "public_sasl_ssl_enable": false,
                "public_sasl_plaintext_enable": false,
            }),
        );
        obj.insert(
            "tags".into(),
            Value::Array(
                v.tags
                    .iter()
                    .map(|t| json!({"key": t.key, "value": t.value}))
                    .collect(),
            ),
        );
    }
    out
}

pub fn topic_v2(t: &TopicView) -> Value {
    json!({
        "name": t.name,
        "replication": t.replication,
        "partition": t.partitions,
        "retention_time": t.retention_hours,
        "sync_replication": t.sync_replication,
        "sync_message_flush": t.sync_message_flush,
        "policiesOnly": false,
        "topic_type": 0,
        "created_at": t.created_ms,
        "topic_other_configs": t.configs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
    })
}

pub fn topic_v1(t: &TopicView) -> Value {
    json!({
        "id": t.name,
        "replication": t.replication,
        "partition": t.partitions,
        "retention_time": t.retention_hours,
        "sync_replication": t.sync_replication,
        "sync_message_flush": t.sync_message_flush,
    })
}

pub fn zones_v1(region: &str, zones: &[Zone]) -> Value {
    json!({
        "regionId": region,
        "available_zones": zones.iter().map(|z| json!({
            "id": z.id, "code": z.code, "name": z.name, "port": "8002",
            "resource_availability": "true",
        })).collect::<Vec<_>>(),
    })
}

pub fn zones_v2(region: &str, zones: &[Zone]) -> Value {
    json!({
        "region_id": region,
        "available_zones": zones.iter().enumerate().map(|(i, z)| json!({
            "soldOut": false, "id": z.id, "code": z.code, "name": z.name, "port": "8002",
            "resource_availability": "true", "default_az": i == 0, "remain_time": 9223372036854775807i64,
            "ipv6_enable": false,
        })).collect::<Vec<_>>(),
    })
}

pub fn maintain_windows() -> Value {
    json!({
        "maintain_windows": catalog::MAINTAIN_WINDOWS.iter().map(|w| json!({
            "seq": w.seq, "begin": w.begin, "end": w.end, "default": w.default,
        })).collect::<Vec<_>>(),
    })
}

/// Seed 000 6.2: the bandwidth specifications under `Hourly`, once per engine version.
pub fn products_v1(zones: &[Zone]) -> Value {
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
pub fn products_v2(zones: &[Zone], product_id: Option<&str>) -> Value {
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
