//! JSON of what only RocketMQ instances have: their instance fields (seed 001 Table 5-7),
//! products, topics, groups, messages, traces and users.

use base64::Engine as _;
use control::catalog::{self, Zone};
use control::model::InstanceView;
use control::model::{
    AclUser, MqClient, MqMessage, MqQueueLag, MqTopic, MqTraceRecord, ResourcePerm,
    SubscriptionGroup,
};
use control::permission_name;
use serde_json::{json, Map, Value};

use crate::error::ApiGeneration;

/// Seed 001's `engine` value.
pub(crate) const ENGINE_NAME: &str = "reliability";

/// The `support_features` of an instance: the features of seed 001's example that OpenDMS's
/// brokers have (ACL, message trace).
const SUPPORT_FEATURES: &str = "rocketmq.acl,message_trace_enable,route";

/// The fields of a RocketMQ instance beyond those every engine has (`common::render`).
/// `namesrv_address` is where clients set `namesrvAddr`; `broker_address` lists every
/// broker, as clients reach them through the name server.
pub(crate) fn instance_fields(out: &mut Map<String, Value>, v: &InstanceView, _g: ApiGeneration) {
    let d = &v.doc;
    let brokers = d.listeners.join(",");
    let mut cross_vpc = Map::new();
    if let Some((ip, port)) = d.namesrv_listener.rsplit_once(':') {
        cross_vpc.insert(
            ip.to_string(),
            json!({"advertised_ip": ip, "namesrv_port": port, "broker_port": "-", "port_id": ""}),
        );
    }
    for l in &d.listeners {
        if let Some((ip, port)) = l.rsplit_once(':') {
            let entry = cross_vpc.entry(ip.to_string()).or_insert_with(
                || json!({"advertised_ip": ip, "namesrv_port": "-", "port_id": ""}),
            );
            entry["broker_port"] = json!(port);
        }
    }
    let fields = json!({
        "engine": ENGINE_NAME,
        "type": "cluster",
        "broker_num": d.broker_num,
        // One name server and the brokers.
        "node_num": d.broker_num + 1,
        "namesrv_address": d.namesrv_listener,
        "broker_address": brokers,
        "public_namesrv_address": "",
        "public_broker_address": "",
        "namesrv_domain_name": "",
        "public_namesrv_domain_name": "",
        "grpc_address": "",
        "public_grpc_address": "",
        "enable_acl": d.acl_enabled,
        "publicip_id": d.publicip_id,
        "publicip_address": "",
        "cross_vpc_info": Value::Object(cross_vpc).to_string(),
        "service_type": "advanced",
        "storage_type": "hec",
        "support_features": SUPPORT_FEATURES,
        "ces_version": "linux,v1,v2",
        "new_spec_billing_enable": true,
        "enable_log_collection": false,
        "dns_enable": false,
        "ipv6_broker_address": "",
        "ipv6_namesrv_address": "",
        "dr_enable": false,
        "tls_mode": "PLAINTEXT",
        "arch_type": "X86",
        "enable_elastic_tps": false,
        "auto_volume_expand_enable": false,
    });
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    // Fields of the other engines that a RocketMQ instance has no value for.
    for k in ["connect_address", "port", "access_user"] {
        out.remove(k);
    }
}

/// `GET /v2/reliability/products` (the SDK's `list_engine_products`).
pub(crate) fn products(zones: &[Zone], product_id: Option<&str>) -> Value {
    let az: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    let products: Vec<Value> = catalog::ROCKETMQ_PRODUCTS
        .iter()
        .filter(|p| product_id.is_none_or(|id| id.is_empty() || id == p.product_id))
        .map(|p| {
            let ios: Vec<Value> = catalog::ROCKETMQ_STORAGE_SPEC_CODES
                .iter()
                .map(|c| json!({"io_spec": c, "type": "evs", "available_zones": az, "unavailable_zones": []}))
                .collect();
            json!({
                "type": "cluster",
                "product_id": p.product_id,
                "ecs_flavor_id": p.ecs_flavor_id,
                "billing_code": "dms.platinum.c6",
                "arch_types": ["X86"],
                "charging_mode": ["monthly", "hourly"],
                "ios": ios,
                "support_features": [],
                "properties": {
                    "max_topic_per_broker": p.max_topics_per_broker.to_string(),
                    "max_consumer_per_broker": p.max_groups_per_broker.to_string(),
                    "min_broker": "1",
                    "max_broker": catalog::ROCKETMQ_MAX_BROKERS.to_string(),
                    "min_storage_per_node": catalog::ROCKETMQ_MIN_STORAGE_PER_BROKER_GB.to_string(),
                    "max_storage_per_node": catalog::ROCKETMQ_MAX_STORAGE_PER_BROKER_GB.to_string(),
                    "engine_versions": catalog::ROCKETMQ_ENGINE_VERSIONS.join(";"),
                    "product_alias": p.product_id,
                    "step_length": "1",
                },
            })
        })
        .collect();
    json!({
        "engine": ENGINE_NAME,
        "versions": catalog::ROCKETMQ_ENGINE_VERSIONS,
        "total": products.len(),
        "next_offset": -1,
        "previous_offset": -1,
        "products": products,
    })
}

pub(crate) fn topic(t: &MqTopic) -> Value {
    json!({
        "name": t.name,
        "total_read_queue_num": t.read_queues(),
        "total_write_queue_num": t.write_queues(),
        "permission": permission_name(t.permission),
        "message_type": "NORMAL",
        "brokers": t.brokers.iter().map(|b| json!({
            "broker_name": b.broker,
            "read_queue_num": b.read_queues,
            "write_queue_num": b.write_queues,
        })).collect::<Vec<_>>(),
    })
}

/// Seed 001's ConsumerGroup (5.2.1); `online` from the brokers' client tables.
pub(crate) fn group(g: &SubscriptionGroup, online: bool) -> Value {
    json!({
        "name": g.name,
        "enabled": g.consume_enable,
        "broadcast": g.broadcast,
        "brokers": g.brokers,
        "retry_max_time": g.retry_max_times,
        "from_beginning": g.consume_from_min,
        "group_desc": "",
        "permissions": [],
        "consume_orderly": false,
        "group_online": online,
    })
}

/// Queues as seed 001 lists them: `[{"broker_name", "queues": [...]}]`, brokers in order.
pub(crate) fn by_broker<'a>(queues: impl Iterator<Item = (&'a String, Value)>) -> Vec<Value> {
    let mut grouped: std::collections::BTreeMap<&String, Vec<Value>> = Default::default();
    for (broker, queue) in queues {
        grouped.entry(broker).or_default().push(queue);
    }
    grouped
        .into_iter()
        .map(|(name, queues)| json!({"broker_name": name, "queues": queues}))
        .collect()
}

pub(crate) fn lag_queue(q: &MqQueueLag) -> Value {
    json!({
        "id": q.queue_id,
        "lag": q.lag(),
        "broker_offset": q.broker_offset,
        "consumer_offset": q.consumer_offset,
        "last_message_time": q.last_message_ms,
    })
}

pub(crate) fn client(c: &MqClient) -> Value {
    json!({
        "client_id": c.client_id,
        "client_addr": c.client_addr.to_string(),
        "language": c.language,
        "version": c.version.to_string(),
        "consume_type": c.consume_type,
        "subscriptions": c.subscriptions.iter().map(|(topic, expression)| json!({
            "topic": topic,
            "type": if expression.contains(' ') && !expression.contains("||") { "SQL92" } else { "TAG" },
            "expression": expression,
        })).collect::<Vec<_>>(),
    })
}

/// A message body as text when it is UTF-8, else Base64.
fn body_text(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(s) => s.to_string(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(body),
    }
}

/// Seed 001's Message (Table 5-68).
pub(crate) fn message(instance_id: &str, m: &MqMessage) -> Value {
    json!({
        "msg_id": m.msg_id,
        "instance_id": instance_id,
        "topic": m.topic,
        "store_timestamp": m.store_ms,
        "born_timestamp": m.born_ms,
        "reconsume_times": m.reconsume_times,
        "body": body_text(&m.body),
        "body_crc": m.body_crc,
        "store_size": m.store_size,
        "property_list": m.properties.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "born_host": m.born_host.to_string(),
        "store_host": m.store_host.to_string(),
        "queue_id": m.queue_id,
        "queue_offset": m.queue_offset,
    })
}

/// Seed 001's trace object (Table 5-73).
pub(crate) fn trace(t: &MqTraceRecord) -> Value {
    let opt = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "success": t.success,
        "trace_type": t.trace_type,
        "timestamp": t.timestamp,
        "group_name": t.group_name,
        "cost_time": t.cost_time,
        "request_id": t.request_id,
        "consume_status": t.consume_status,
        "topic": t.topic,
        "msg_id": t.msg_id,
        "offset_msg_id": t.offset_msg_id,
        "tags": t.tags,
        "keys": t.keys,
        "store_host": t.store_host,
        "client_host": t.client_host,
        "retry_times": t.retry_times,
        "body_length": t.body_length,
        "msg_type": t.msg_type,
        "transaction_state": opt(&t.transaction_state),
        "transaction_id": opt(&t.transaction_id),
        "from_transaction_check": t.from_transaction_check,
    })
}

/// Seed 001's User; the secret is always masked.
pub(crate) fn user(u: &AclUser) -> Value {
    let perms = |list: &[ResourcePerm]| -> Vec<Value> {
        list.iter()
            .map(|p| json!({"name": p.name, "perm": p.perm}))
            .collect()
    };
    json!({
        "access_key": u.access_key,
        "secret_key": "*****",
        "white_remote_address": u.white_remote_address,
        "admin": u.admin,
        "default_topic_perm": u.default_topic_perm,
        "default_group_perm": u.default_group_perm,
        "topic_perms": perms(&u.topic_perms),
        "group_perms": perms(&u.group_perms),
    })
}
