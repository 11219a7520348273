//! JSON of what every engine's API shows the same way: instances (their common fields),
//! availability zones, maintenance windows, background tasks.

use control::catalog::{self, Zone};
use control::model::{EngineKind, InstanceView, TaskRecord};
use control::ControlPlane;
use serde_json::{json, Value};

use crate::error::ApiGeneration;

const GIB: u64 = 1 << 30;

/// An instance as `show_instance` / `list_instances` (V2) and seed 000's 5.2 / 5.6 (V1)
/// show it: the fields every engine has, then the engine's own.
pub(crate) fn instance(plane: &ControlPlane, v: &InstanceView, generation: ApiGeneration) -> Value {
    let mut out = common_fields(plane, v, generation);
    if let Some(obj) = out.as_object_mut() {
        match v.engine {
            EngineKind::Kafka => crate::kafka::render::instance_fields(obj, v, generation),
            EngineKind::Rabbitmq => crate::rabbitmq::render::instance_fields(obj, v, generation),
            EngineKind::Rocketmq => crate::rocketmq::render::instance_fields(obj, v, generation),
        }
    }
    out
}

/// A stable id in UUID form derived from `seed` (for resources OpenDMS has one of per
/// instance, such as its storage).
fn stable_uuid(seed: &str) -> String {
    let hex = catalog::stable_hex_id(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn common_fields(plane: &ControlPlane, v: &InstanceView, generation: ApiGeneration) -> Value {
    let d = &v.doc;
    let zone_names: Vec<&str> = d
        .available_zones
        .iter()
        .filter_map(|az| {
            plane
                .zones()
                .iter()
                .find(|z| &z.id == az || &z.code == az)
                .map(|z| z.name.as_str())
        })
        .collect();
    let mut out = json!({
        "name": v.name,
        "engine": v.engine.as_str(),
        "engine_version": d.engine_version,
        "description": d.description,
        "specification": d.specification,
        "storage_space": d.storage_space_gb,
        "total_storage_space": d.storage_space_gb,
        "used_storage_space": v.used_bytes / GIB,
        "connect_address": d.broker_ips().join(","),
        "port": d.port().unwrap_or(0),
        "status": v.status.as_str(),
        "instance_id": v.id,
        "resource_spec_code": d.resource_spec_code,
        "charging_mode": 1,
        "type": "cluster",
        "product_id": d.product_id,
        "created_at": v.created_at_ms.to_string(),
        "user_id": d.user_id,
        "user_name": d.user_name,
        "access_user": d.access_user,
        "maintain_begin": d.maintain_begin,
        "maintain_end": d.maintain_end,
        "enable_publicip": d.enable_publicip,
        "ssl_enable": d.ssl_enable,
        "enterprise_project_id": d.enterprise_project_id,
        "is_logical_volume": true,
        "extend_times": d.extend_times,
        // OpenDMS has no VPC service: a VPC, subnet or security group is the id the create
        // request named, which is therefore also its name. Every broker address comes from
        // the configured pool, whose network is the subnet's CIDR.
        "vpc_id": d.vpc_id,
        "vpc_name": d.vpc_id,
        "subnet_id": d.subnet_id,
        "subnet_name": d.subnet_id,
        "subnet_cidr": plane.config().broker_subnet(),
        "security_group_id": d.security_group_id,
        "security_group_name": d.security_group_id,
        "available_zones": d.available_zones,
        "available_zone_names": zone_names,
        "storage_spec_code": d.storage_spec_code,
        // An instance's storage is its own directory: one resource per instance.
        "storage_resource_id": stable_uuid(&format!("storage/{}", v.id)),
        "disk_encrypted": false,
        "ipv6_enable": false,
        "ipv6_connect_addresses": [],
    });
    if let (Some(reason), Some(obj)) = (&v.status_reason, out.as_object_mut()) {
        // Not in the documents: why a create, restart or extension failed. Clients ignore
        // fields they do not know (seed 000 §1.1 asks them to).
        obj.insert("status_reason".into(), json!(reason));
    }
    if let (ApiGeneration::V2, Some(obj)) = (generation, out.as_object_mut()) {
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

pub(crate) fn zones_v1(region: &str, zones: &[Zone]) -> Value {
    json!({
        "regionId": region,
        "available_zones": zones.iter().map(|z| json!({
            "id": z.id, "code": z.code, "name": z.name, "port": "8002",
            "resource_availability": "true",
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn zones_v2(region: &str, zones: &[Zone]) -> Value {
    json!({
        "region_id": region,
        "available_zones": zones.iter().enumerate().map(|(i, z)| json!({
            "soldOut": false, "id": z.id, "code": z.code, "name": z.name, "port": "8002",
            "resource_availability": "true", "default_az": i == 0, "remain_time": 9223372036854775807i64,
            "ipv6_enable": false,
        })).collect::<Vec<_>>(),
    })
}

/// The Kafka documents show the windows as `HH:mm:ss`; seed 002 (RabbitMQ) shows two-digit
/// hours ("22", "02"). The path names no engine, so one shape serves both: the Kafka one,
/// which the SDKs (typed `str`) read either way.
pub(crate) fn maintain_windows() -> Value {
    json!({
        "maintain_windows": catalog::MAINTAIN_WINDOWS.iter().map(|w| json!({
            "seq": w.seq, "begin": w.begin, "end": w.end, "default": w.default,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn task(t: &TaskRecord) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "user_name": t.user_name,
        "user_id": t.user_id,
        "params": t.params,
        "status": t.status,
        "created_at": t.created_at_ms.to_string(),
        "updated_at": t.updated_at_ms.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_uuids_look_like_uuids() {
        let a = stable_uuid("storage/x");
        assert_eq!(a, stable_uuid("storage/x"));
        assert_ne!(a, stable_uuid("storage/y"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
