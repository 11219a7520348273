//! Orders and instances: Alibaba's order-then-deploy lifecycle on the shared instances.

use std::sync::Arc;

use control::model::{
    DeployRequest, InstanceChanges, InstanceStatus, InstanceView, OrderRequest, Tag,
};
use control::ListFilter;
use serde_json::{json, Map, Value};

use super::params::{boolean, fields, int, repeated, required, tag_params, Fields};
use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

/// `ServiceStatus` from the lifecycle: 0 to be deployed (ordered, or a deployment that
/// failed and can be started again), 1 being deployed, 5 running.
fn service_status(s: InstanceStatus) -> i64 {
    match s {
        InstanceStatus::Ordered | InstanceStatus::CreateFailed => 0,
        InstanceStatus::Creating => 1,
        InstanceStatus::Running
        | InstanceStatus::Restarting
        | InstanceStatus::Extending
        | InstanceStatus::Deleting
        | InstanceStatus::Error => 5,
    }
}

pub(super) fn tag_list(tags: &[Tag]) -> Value {
    json!({"TagVO": tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect::<Vec<_>>()})
}

/// `DeployType` of an instance: 5 (VPC) unless ordered otherwise.
pub(super) fn deploy_type(v: &InstanceView) -> i64 {
    if v.doc.ali.deploy_type == 0 {
        5
    } else {
        v.doc.ali.deploy_type
    }
}

fn instance_vo(v: &InstanceView, region: &str) -> Value {
    let d = &v.doc;
    let region = if d.ali.region_id.is_empty() {
        region
    } else {
        &d.ali.region_id
    };
    json!({
        "InstanceId": v.id,
        "Name": v.name,
        "RegionId": region,
        "ServiceStatus": service_status(v.status),
        "VpcId": d.vpc_id,
        "VSwitchId": if d.ali.vswitch_id.is_empty() { &d.subnet_id } else { &d.ali.vswitch_id },
        "ZoneId": d.ali.zone_id,
        "EndPoint": d.listeners.join(","),
        "SslEndPoint": "",
        "CreateTime": v.created_at_ms,
        // Pay-as-you-go instances do not expire; Alibaba shows a date far ahead for them.
        "ExpiredTime": 4_102_444_800_000i64,
        "DeployType": deploy_type(v),
        "IoMax": d.ali.io_max,
        "EipMax": d.ali.eip_max,
        "DiskType": if d.ali.disk_type.is_empty() { 1 } else { d.ali.disk_type.parse::<i64>().unwrap_or(1) },
        "DiskSize": d.storage_space_gb,
        "MsgRetain": 72,
        "TopicNumLimit": if d.ali.topic_quota > 0 { d.ali.topic_quota } else { i64::from(d.partition_num) },
        "PaidType": if d.ali.paid_type == 0 && d.order_id.is_empty() { 1 } else { d.ali.paid_type },
        "SpecType": if d.ali.spec_type.is_empty() { "normal" } else { &d.ali.spec_type },
        "UpgradeServiceDetailInfo": {"Current2OpenSourceVersion": "2.2.0"},
        "Tags": tag_list(&v.tags),
    })
}

/// Every Kafka instance of the caller's project, failed ones included. `shows_status`: the answer
/// shows their statuses, so it counts as a read of each for the lifecycle's `delay_reads`.
pub(super) async fn all_instances(
    state: &AliState,
    p: &Parsed,
    shows_status: bool,
) -> Result<Vec<InstanceView>, AliError> {
    // Message Queue for Kafka lists Kafka instances: the project's RabbitMQ and RocketMQ
    // instances (made through the Huawei API) are not its.
    let filter = ListFilter {
        engine: Some(control::model::EngineKind::Kafka),
        include_failure: true,
        quiet: !shows_status,
        ..ListFilter::default()
    };
    let (all, _) = state
        .plane
        .list_instances(&p.caller.project_id, &filter)
        .await?;
    Ok(all)
}

/// The instance `InstanceId` names, without counting as a read of its status.
pub(super) async fn instance_of(state: &AliState, p: &Parsed) -> Result<InstanceView, AliError> {
    let id = required(p, "InstanceId")?;
    Ok(state
        .plane
        .show_instance_quietly(&p.caller.project_id, id)
        .await?)
}

/// CreatePostPayOrder / CreatePrePayOrder.
pub(super) async fn create_order(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let order = OrderRequest {
        region_id: required(&p, "RegionId")?.to_string(),
        deploy_type: int(&p, "DeployType")?.ok_or_else(|| AliError::missing("DeployType"))?,
        disk_size_gb: int(&p, "DiskSize")?.ok_or_else(|| AliError::missing("DiskSize"))?,
        disk_type: required(&p, "DiskType")?.to_string(),
        io_max: int(&p, "IoMax")?,
        io_max_spec: p.get("IoMaxSpec").map(str::to_string),
        eip_max: int(&p, "EipMax")?,
        partition_num: int(&p, "PartitionNum")?,
        topic_quota: int(&p, "TopicQuota")?,
        spec_type: p.get("SpecType").map(str::to_string),
        paid_type: if p.action == "CreatePrePayOrder" {
            0
        } else {
            1
        },
        tags: tag_params(&p),
    };
    if order.io_max.is_none() && order.io_max_spec.is_none() {
        return Err(AliError::missing("IoMax"));
    }
    let (_, order_id) = state.plane.create_order(&p.caller, &order).await?;
    Ok(fields(json!({"OrderId": order_id})))
}

pub(super) async fn start_instance(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let user = p.get("Username").filter(|u| !u.is_empty());
    let sasl_user = match (boolean(&p, "IsSetUserAndPassword")?.unwrap_or(false), user) {
        (true, Some(u)) => Some((u.to_string(), required(&p, "Password")?.to_string())),
        (true, None) => return Err(AliError::missing("Username")),
        _ => None,
    };
    let req = DeployRequest {
        vpc_id: required(&p, "VpcId")?.to_string(),
        vswitch_id: required(&p, "VSwitchId")?.to_string(),
        zone_id: p.get("ZoneId").unwrap_or_default().to_string(),
        name: p.get("Name").filter(|n| !n.is_empty()).map(str::to_string),
        sasl_user,
    };
    state.plane.deploy_instance(&p.caller, id, &req).await?;
    Ok(Map::new())
}

pub(super) async fn get_instance_list(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    required(&p, "RegionId")?;
    let all = all_instances(&state, &p, true).await?;
    let ids = repeated(&p, "InstanceId");
    let order = p.get("OrderId").filter(|o| !o.is_empty());
    let want_tags = tag_params(&p);
    let list: Vec<Value> = all
        .iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.id))
        .filter(|v| order.is_none_or(|o| v.doc.order_id == o))
        .filter(|v| {
            want_tags.iter().all(|t| {
                v.tags
                    .iter()
                    .any(|x| x.key == t.key && (t.value.is_empty() || x.value == t.value))
            })
        })
        .map(|v| instance_vo(v, &p.region_id))
        .collect();
    Ok(fields(json!({"InstanceList": {"InstanceVO": list}})))
}

pub(super) async fn get_all_instance_id_list(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let region = required(&p, "RegionId")?;
    let all = all_instances(&state, &p, false).await?;
    let ids: Vec<&str> = all.iter().map(|v| v.id.as_str()).collect();
    Ok(fields(json!({"InstanceIds": {region: ids}})))
}

pub(super) async fn modify_instance_name(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let changes = InstanceChanges {
        name: Some(required(&p, "InstanceName")?.to_string()),
        ..InstanceChanges::default()
    };
    state
        .plane
        .update_instance(&p.caller.project_id, id, &changes)
        .await?;
    Ok(Map::new())
}

/// ReleaseInstance / DeleteInstance.
pub(super) async fn release_instance(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    state.plane.delete_instance(&p.caller, id).await?;
    Ok(Map::new())
}

/// UpgradePrePayOrder / UpgradePostPayOrder.
pub(super) async fn upgrade_order(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let req = control::UpgradeRequest {
        disk_size_gb: int(&p, "DiskSize")?,
        io_max: int(&p, "IoMax")?,
        eip_max: int(&p, "EipMax")?,
        topic_quota: int(&p, "TopicQuota")?,
        partition_num: int(&p, "PartitionNum")?,
        spec_type: p
            .get("SpecType")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    state.plane.upgrade_order(&p.caller, id, &req).await?;
    Ok(Map::new())
}
