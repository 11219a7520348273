//! One function per action. Each answers the action's own fields; the envelope adds
//! `RequestId`, `Code`, `Message` and `Success`.

use std::collections::BTreeMap;

use control::model::{
    DeployRequest, InstanceStatus, InstanceView, OrderRequest, Tag, UpdateInstanceRequest,
};
use control::ListFilter;
use serde_json::{json, Map, Value};

use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

type Fields = Map<String, Value>;

pub(crate) fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn required<'a>(p: &'a Parsed, key: &str) -> Result<&'a str, AliError> {
    p.get(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AliError::missing(key))
}

fn int(p: &Parsed, key: &str) -> Result<Option<i64>, AliError> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| AliError::invalid(key, "must be an integer")),
    }
}

/// The SDKs send booleans as Python's `True`/`False`.
fn boolean(p: &Parsed, key: &str) -> Result<Option<bool>, AliError> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(AliError::invalid(key, "must be true or false")),
    }
}

/// `Tag.N.Key` / `Tag.N.Value`, in N order.
fn tags(p: &Parsed) -> Vec<Tag> {
    let mut by_n: BTreeMap<u32, Tag> = BTreeMap::new();
    for (k, v) in &p.params {
        let Some(rest) = k.strip_prefix("Tag.") else {
            continue;
        };
        let Some((n, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        let t = by_n.entry(n).or_default();
        match field {
            "Key" => t.key = v.clone(),
            "Value" => t.value = v.clone(),
            _ => {}
        }
    }
    by_n.into_values().filter(|t| !t.key.is_empty()).collect()
}

/// `Name.1`, `Name.2`, … in order.
fn repeated(p: &Parsed, name: &str) -> Vec<String> {
    let mut by_n: BTreeMap<u32, String> = BTreeMap::new();
    for (k, v) in &p.params {
        if let Some(n) = k
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|n| n.parse::<u32>().ok())
        {
            by_n.insert(n, v.clone());
        }
    }
    by_n.into_values().collect()
}

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

fn tag_list(tags: &[Tag]) -> Value {
    json!({"TagVO": tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect::<Vec<_>>()})
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
        "DeployType": if d.ali.deploy_type == 0 { 5 } else { d.ali.deploy_type },
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

async fn instance_of(state: &AliState, p: &Parsed) -> Result<InstanceView, AliError> {
    let id = required(p, "InstanceId")?;
    Ok(state
        .plane
        .show_instance_quietly(&p.caller.project_id, id)
        .await?)
}

pub async fn dispatch(state: &AliState, p: &Parsed) -> Result<Fields, AliError> {
    let plane = &state.plane;
    let project = p.caller.project_id.clone();
    match p.action.as_str() {
        "CreatePostPayOrder" | "CreatePrePayOrder" => {
            let order = OrderRequest {
                region_id: required(p, "RegionId")?.to_string(),
                deploy_type: int(p, "DeployType")?
                    .ok_or_else(|| AliError::missing("DeployType"))?,
                disk_size_gb: int(p, "DiskSize")?.ok_or_else(|| AliError::missing("DiskSize"))?,
                disk_type: required(p, "DiskType")?.to_string(),
                io_max: int(p, "IoMax")?,
                io_max_spec: p.get("IoMaxSpec").map(str::to_string),
                eip_max: int(p, "EipMax")?,
                partition_num: int(p, "PartitionNum")?,
                topic_quota: int(p, "TopicQuota")?,
                spec_type: p.get("SpecType").map(str::to_string),
                paid_type: if p.action == "CreatePrePayOrder" {
                    0
                } else {
                    1
                },
                tags: tags(p),
            };
            if order.io_max.is_none() && order.io_max_spec.is_none() {
                return Err(AliError::missing("IoMax"));
            }
            let (_, order_id) = plane.create_order(&p.caller, &order).await?;
            Ok(fields(json!({"OrderId": order_id})))
        }
        "StartInstance" => {
            let id = required(p, "InstanceId")?;
            let user = p.get("Username").filter(|u| !u.is_empty());
            let sasl_user = match (boolean(p, "IsSetUserAndPassword")?.unwrap_or(false), user) {
                (true, Some(u)) => Some((u.to_string(), required(p, "Password")?.to_string())),
                (true, None) => return Err(AliError::missing("Username")),
                _ => None,
            };
            let req = DeployRequest {
                vpc_id: required(p, "VpcId")?.to_string(),
                vswitch_id: required(p, "VSwitchId")?.to_string(),
                zone_id: p.get("ZoneId").unwrap_or_default().to_string(),
                name: p.get("Name").filter(|n| !n.is_empty()).map(str::to_string),
                sasl_user,
            };
            plane.deploy_instance(&p.caller, id, &req).await?;
            Ok(Map::new())
        }
        "GetInstanceList" => {
            required(p, "RegionId")?;
            let (all, _) = plane
                .list_instances(
                    &project,
                    &ListFilter {
                        include_failure: true,
                        ..ListFilter::default()
                    },
                )
                .await?;
            let ids = repeated(p, "InstanceId");
            let order = p.get("OrderId").filter(|o| !o.is_empty());
            let want_tags = tags(p);
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
        "GetAllInstanceIdList" => {
            let region = required(p, "RegionId")?;
            let (all, _) = plane
                .list_instances(
                    &project,
                    &ListFilter {
                        include_failure: true,
                        ..ListFilter::default()
                    },
                )
                .await?;
            let ids: Vec<&str> = all.iter().map(|v| v.id.as_str()).collect();
            Ok(fields(json!({"InstanceIds": {region: ids}})))
        }
        "ModifyInstanceName" => {
            let id = required(p, "InstanceId")?;
            let name = required(p, "InstanceName")?;
            let req = UpdateInstanceRequest {
                name: Some(name.to_string()),
                ..UpdateInstanceRequest::default()
            };
            plane.update_instance(&project, id, &req).await?;
            Ok(Map::new())
        }
        "ReleaseInstance" | "DeleteInstance" => {
            let id = required(p, "InstanceId")?;
            plane.delete_instance(&p.caller, id).await?;
            Ok(Map::new())
        }
        "CreateTopic" => {
            let id = required(p, "InstanceId")?;
            let topic = required(p, "Topic")?;
            check_name("Topic", topic)?;
            let remark = required(p, "Remark")?;
            let partitions = int(p, "PartitionNum")?.unwrap_or(12);
            if !(1..=MAX_PARTITIONS).contains(&partitions) {
                return Err(AliError::invalid(
                    "PartitionNum",
                    format!("must be within 1-{MAX_PARTITIONS}"),
                ));
            }
            let replication = int(p, "ReplicationFactor")?.unwrap_or(3).clamp(1, 3) as i16;
            let mut configs = BTreeMap::new();
            if boolean(p, "CompactTopic")? == Some(true) {
                return Err(AliError::new(
                    400,
                    "UnsupportedOperation",
                    "compacted topics (CompactTopic=true) are not supported by OpenDMS",
                ));
            }
            if let Some(m) = int(p, "MinInsyncReplicas")? {
                configs.insert("min.insync.replicas".to_string(), m.to_string());
            }
            if let Some(c) = p.get("Config").filter(|c| !c.is_empty()) {
                let extra: BTreeMap<String, Value> =
                    serde_json::from_str(c).map_err(|e| AliError::invalid("Config", e))?;
                for (k, v) in extra {
                    configs.insert(
                        k,
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    );
                }
            }
            let spec = control::TopicSpec {
                name: topic.to_string(),
                partitions: partitions as i32,
                replication,
                configs,
                remark: remark.to_string(),
            };
            plane.create_topic_raw(&project, id, spec).await?;
            Ok(Map::new())
        }
        "DeleteTopic" => {
            let id = required(p, "InstanceId")?;
            let topic = required(p, "Topic")?;
            plane.delete_topic(&project, id, topic).await?;
            Ok(Map::new())
        }
        "GetTopicList" => {
            let v = instance_of(state, p).await?;
            let (_, topics) = plane.topics(&project, &v.id).await?;
            let filter = p.get("Topic").filter(|t| !t.is_empty());
            let (page, size) = page_of(p)?;
            let matching: Vec<_> = topics
                .iter()
                .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
                .collect();
            let list: Vec<Value> = matching
                .iter()
                .skip(page_start(page, size))
                .take(size as usize)
                .map(|t| {
                    json!({
                        "Topic": t.name,
                        "InstanceId": v.id,
                        "RegionId": p.region_id,
                        "CreateTime": t.created_ms,
                        "Remark": v.doc.topic_remarks.get(&t.name).cloned().unwrap_or_default(),
                        "PartitionNum": t.partitions,
                        "CompactTopic": false,
                        "LocalTopic": false,
                        "AutoCreate": !v.doc.topic_remarks.contains_key(&t.name),
                        "Status": 0,
                        "StatusName": "Running",
                        "Tags": {"TagVO": []},
                    })
                })
                .collect();
            Ok(fields(json!({
                "TopicList": {"TopicVO": list},
                "Total": matching.len(),
                "CurrentPage": page,
                "PageSize": size,
            })))
        }
        "GetTopicStatus" => {
            let v = instance_of(state, p).await?;
            let topic = required(p, "Topic")?;
            let (_, admin) = plane.admin_for(&project, &v.id).await?;
            let offsets = admin.partition_offsets(topic).ok_or_else(|| {
                AliError::new(
                    404,
                    "InvalidParameter.TopicNotFound",
                    format!("topic {topic} does not exist"),
                )
            })?;
            let total: i64 = offsets.iter().map(|o| o.log_end - o.log_start).sum();
            let last = offsets.iter().map(|o| o.last_append_ms).max().unwrap_or(0);
            let table: Vec<Value> = offsets
                .iter()
                .map(|o| json!({"Topic": topic, "Partition": o.partition, "MinOffset": o.log_start, "MaxOffset": o.log_end, "LastUpdateTimestamp": o.last_append_ms}))
                .collect();
            Ok(fields(
                json!({"TopicStatus": {"TotalCount": total, "LastTimeStamp": last, "OffsetTable": {"OffsetTable": table}}}),
            ))
        }
        "ModifyPartitionNum" => {
            let v = instance_of(state, p).await?;
            let topic = required(p, "Topic")?;
            let add =
                int(p, "AddPartitionNum")?.ok_or_else(|| AliError::missing("AddPartitionNum"))?;
            let (_, admin) = plane.admin_for(&project, &v.id).await?;
            let current = admin
                .topic(topic)
                .ok_or_else(|| {
                    AliError::new(
                        404,
                        "InvalidParameter.TopicNotFound",
                        format!("topic {topic} does not exist"),
                    )
                })?
                .partitions as i64;
            if add < 1 || current + add > MAX_PARTITIONS {
                return Err(AliError::invalid(
                    "AddPartitionNum",
                    format!("a topic has at most {MAX_PARTITIONS} partitions; it has {current}"),
                ));
            }
            plane
                .set_partitions(&project, &v.id, topic, (current + add) as i32)
                .await?;
            Ok(Map::new())
        }
        "ModifyTopicRemark" => {
            let id = required(p, "InstanceId")?;
            let topic = required(p, "Topic")?;
            plane
                .set_topic_remark(&project, id, topic, p.get("Remark").unwrap_or_default())
                .await?;
            Ok(Map::new())
        }
        "CreateConsumerGroup" => {
            let id = required(p, "InstanceId")?;
            let group = required(p, "ConsumerId")?;
            check_name("ConsumerId", group)?;
            plane
                .declare_group(&project, id, group, p.get("Remark").unwrap_or_default())
                .await?;
            Ok(Map::new())
        }
        "DeleteConsumerGroup" => {
            let id = required(p, "InstanceId")?;
            let group = required(p, "ConsumerId")?;
            plane.delete_group(&project, id, group).await?;
            Ok(Map::new())
        }
        "GetConsumerList" => {
            let v = instance_of(state, p).await?;
            let filter = p.get("ConsumerId").filter(|c| !c.is_empty());
            let groups = plane.groups(&project, &v.id).await?;
            let matching: Vec<_> = groups
                .iter()
                .filter(|g| filter.is_none_or(|f| g.0.contains(f)))
                .collect();
            let (page, size) = page_of(p)?;
            let list: Vec<Value> = matching
                .iter()
                .skip(page_start(page, size))
                .take(size as usize)
                .map(|(name, remark, created, declared)| {
                    json!({
                        "ConsumerId": name, "InstanceId": v.id, "RegionId": p.region_id, "Remark": remark,
                        "CreateTime": created, "AutomaticallyCreatedGroup": !declared, "Tags": {"TagVO": []},
                    })
                })
                .collect();
            Ok(fields(
                json!({"ConsumerList": {"ConsumerVO": list}, "Total": matching.len(), "CurrentPage": page, "PageSize": size}),
            ))
        }
        "GetConsumerProgress" => {
            let v = instance_of(state, p).await?;
            let group = required(p, "ConsumerId")?;
            let (_, admin) = plane.admin_for(&project, &v.id).await?;
            let mut total_diff = 0i64;
            let mut last_all = 0i64;
            let mut topics = Vec::new();
            for (topic, parts) in control::metrics::group_lag(&admin, group) {
                let diff: i64 = parts.iter().map(|l| l.lag()).sum();
                let last_topic = parts.iter().map(|l| l.last_append_ms).max().unwrap_or(0);
                let list: Vec<Value> = parts
                    .iter()
                    .map(|l| {
                        json!({"Partition": l.partition, "BrokerOffset": l.log_end.unwrap_or(0),
                               "ConsumerOffset": l.committed, "LastTimestamp": l.last_append_ms})
                    })
                    .collect();
                total_diff += diff;
                last_all = last_all.max(last_topic);
                topics.push(json!({"Topic": topic, "TotalDiff": diff, "LastTimestamp": last_topic, "OffsetList": {"OffsetList": list}}));
            }
            Ok(fields(json!({"ConsumerProgress": {
                "TotalDiff": total_diff,
                "LastTimestamp": last_all,
                "TopicList": {"TopicList": topics},
            }})))
        }
        "TagResources" | "UntagResources" | "ListTagResources" => tag_action(state, p).await,
        "CreateSaslUser" => {
            let id = required(p, "InstanceId")?;
            let user = required(p, "Username")?;
            let password = required(p, "Password")?;
            let kind = p
                .get("Type")
                .filter(|t| !t.is_empty())
                .unwrap_or("plain")
                .to_ascii_lowercase();
            let mechanism = match (kind.as_str(), p.get("Mechanism").filter(|m| !m.is_empty())) {
                ("plain", _) => "PLAIN".to_string(),
                ("scram", None) => "SCRAM-SHA-256".to_string(),
                ("scram", Some(m @ ("SCRAM-SHA-256" | "SCRAM-SHA-512"))) => m.to_string(),
                ("scram", Some(m)) => {
                    return Err(AliError::invalid(
                        "Mechanism",
                        format!("{m}: SCRAM-SHA-256 or SCRAM-SHA-512"),
                    ))
                }
                (t, _) => return Err(AliError::invalid("Type", format!("{t}: plain or scram"))),
            };
            let meta = control::model::SaslUserMeta { kind, mechanism };
            plane
                .create_sasl_user(&project, id, user, password, meta)
                .await?;
            Ok(Map::new())
        }
        "DeleteSaslUser" => {
            let id = required(p, "InstanceId")?;
            plane
                .delete_sasl_user(&project, id, required(p, "Username")?)
                .await?;
            Ok(Map::new())
        }
        "DescribeSaslUsers" => {
            let id = required(p, "InstanceId")?;
            let users = plane.sasl_users(&project, id).await?;
            // Passwords are kept only as SCRAM hashes, so none can be shown.
            let list: Vec<Value> = users
                .iter()
                .map(|(u, m)| json!({"Username": u, "Type": m.kind, "Mechanism": m.mechanism, "Password": ""}))
                .collect();
            Ok(fields(json!({"SaslUserList": {"SaslUserVO": list}})))
        }
        "CreateAcl" | "DeleteAcl" => {
            let id = required(p, "InstanceId")?;
            let bindings = acl_bindings(p)?;
            let mut removed = 0;
            for b in bindings {
                if p.action == "CreateAcl" {
                    plane.add_acl(&project, id, b).await?;
                } else {
                    removed += plane.remove_acl(&project, id, b).await?;
                }
            }
            if p.action == "DeleteAcl" && removed == 0 {
                return Err(AliError::new(
                    404,
                    "InvalidParameter.AclNotFound",
                    "no ACL matches the given fields",
                ));
            }
            Ok(Map::new())
        }
        "DescribeAcls" => {
            let id = required(p, "InstanceId")?;
            let user = p.get("Username").filter(|u| !u.is_empty());
            let rtype = p.get("AclResourceType").filter(|u| !u.is_empty());
            let rname = p.get("AclResourceName").filter(|u| !u.is_empty());
            let list: Vec<Value> = plane
                .acls(&project, id)
                .await?
                .iter()
                .filter(|b| user.is_none_or(|u| b.principal == format!("User:{u}")))
                .filter(|b| rtype.is_none_or(|t| resource_type_name(b.resource_type).eq_ignore_ascii_case(t)))
                .filter(|b| rname.is_none_or(|n| b.resource_name == n))
                .map(|b| {
                    json!({
                        "Username": b.principal.strip_prefix("User:").unwrap_or(&b.principal),
                        "AclResourceType": resource_type_name(b.resource_type),
                        "AclResourceName": b.resource_name,
                        "AclResourcePatternType": match b.pattern_type { engine::PatternType::Literal => "LITERAL", engine::PatternType::Prefixed => "PREFIXED" },
                        "AclOperationType": format!("{:?}", b.operation),
                        "AclPermissionType": match b.permission { engine::Permission::Allow => "ALLOW", engine::Permission::Deny => "DENY" },
                        "Host": b.host,
                    })
                })
                .collect();
            Ok(fields(json!({"KafkaAclList": {"KafkaAclVO": list}})))
        }
        "GetAllowedIpList" => {
            let v = instance_of(state, p).await?;
            let lists = plane.allowed_ips(&project, &v.id).await?;
            let entry = |name: &str, port: &str| -> Vec<Value> {
                match lists.get(name) {
                    Some(ips) => vec![json!({"PortRange": port, "AllowedIpList": ips})],
                    None => Vec::new(),
                }
            };
            Ok(fields(json!({"AllowedList": {
                "DeployType": if v.doc.ali.deploy_type == 0 { 5 } else { v.doc.ali.deploy_type },
                "VpcList": entry("vpc", "9092/9092"),
                "InternetList": entry("internet", "9093/9093"),
            }})))
        }
        "UpdateAllowedIp" => {
            let id = required(p, "InstanceId")?;
            let add = match required(p, "UpdateType")? {
                "add" => true,
                "delete" => false,
                other => {
                    return Err(AliError::invalid(
                        "UpdateType",
                        format!("{other}: add or delete"),
                    ))
                }
            };
            let list = required(p, "AllowedListType")?;
            let port = required(p, "PortRange")?;
            match (list, port) {
                ("vpc", "9092/9092") | ("internet", "9093/9093") => {}
                _ => {
                    return Err(AliError::invalid(
                        "PortRange",
                        "9092/9092 goes with vpc, 9093/9093 with internet",
                    ))
                }
            }
            let ips: Vec<String> = required(p, "AllowedListIp")?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if !add && ips.len() != 1 {
                return Err(AliError::invalid(
                    "AllowedListIp",
                    "delete takes exactly one address",
                ));
            }
            plane
                .update_allowed_ips(&project, id, list, add, &ips)
                .await?;
            Ok(Map::new())
        }
        "UpgradePrePayOrder" | "UpgradePostPayOrder" => {
            let id = required(p, "InstanceId")?;
            let req = control::UpgradeRequest {
                disk_size_gb: int(p, "DiskSize")?,
                io_max: int(p, "IoMax")?,
                eip_max: int(p, "EipMax")?,
                topic_quota: int(p, "TopicQuota")?,
                partition_num: int(p, "PartitionNum")?,
                spec_type: p
                    .get("SpecType")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            };
            plane.upgrade_order(&p.caller, id, &req).await?;
            Ok(Map::new())
        }
        action if crate::monitor::is_monitor_action(action) => {
            crate::monitor::dispatch(&state.metrics, p)
        }
        other => Err(AliError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api is not found, please check your url and method. ({other})"),
        )),
    }
}

/// `CurrentPage` (1-based, default 1) and `PageSize` (default and at most 10,000) of a
/// list action.
fn page_of(p: &Parsed) -> Result<(i64, i64), AliError> {
    Ok((
        int(p, "CurrentPage")?.unwrap_or(1).max(1),
        int(p, "PageSize")?.unwrap_or(10_000).clamp(1, 10_000),
    ))
}

/// Index of the first item of a page.
fn page_start(page: i64, size: i64) -> usize {
    ((page - 1).saturating_mul(size)) as usize
}

/// Partitions per topic (§11.1: 1 to 48).
const MAX_PARTITIONS: i64 = 48;

/// Topic and group names (§11.1, §12.4): 3–64 letters, digits, `-` and `_`.
fn check_name(param: &str, name: &str) -> Result<(), AliError> {
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(())
        .ok_or_else(|| AliError::invalid(param, "3 to 64 letters, digits, '-' and '_'"))
}

/// Tags of instances (`ResourceType` INSTANCE). Topic and group tags are not kept yet.
async fn tag_action(state: &AliState, p: &Parsed) -> Result<Fields, AliError> {
    let plane = &state.plane;
    let project = &p.caller.project_id;
    let resource_type = required(p, "ResourceType")?;
    if !resource_type.eq_ignore_ascii_case("instance") {
        return Err(AliError::new(
            400,
            "UnsupportedOperation",
            format!(
                "tags on {resource_type} resources are not supported by OpenDMS yet; INSTANCE is"
            ),
        ));
    }
    let ids = repeated(p, "ResourceId");
    match p.action.as_str() {
        "TagResources" => {
            let t = tags(p);
            if ids.is_empty() {
                return Err(AliError::missing("ResourceId.1"));
            }
            for id in &ids {
                plane.change_tags(project, id, "create", &t).await?;
            }
            Ok(Map::new())
        }
        "UntagResources" => {
            let all = boolean(p, "All")?.unwrap_or(false);
            let keys = repeated(p, "TagKey");
            for id in &ids {
                let remove: Vec<Tag> = if all {
                    plane.tags(project, id).await?
                } else {
                    keys.iter()
                        .map(|k| Tag {
                            key: k.clone(),
                            value: String::new(),
                        })
                        .collect()
                };
                plane.change_tags(project, id, "delete", &remove).await?;
            }
            Ok(Map::new())
        }
        _ => {
            let (all, _) = plane
                .list_instances(
                    project,
                    &ListFilter {
                        include_failure: true,
                        ..ListFilter::default()
                    },
                )
                .await?;
            let want = tags(p);
            let mut out = Vec::new();
            for v in all.iter().filter(|v| ids.is_empty() || ids.contains(&v.id)) {
                for t in &v.tags {
                    if want.is_empty()
                        || want
                            .iter()
                            .any(|w| w.key == t.key && (w.value.is_empty() || w.value == t.value))
                    {
                        out.push(json!({"ResourceId": v.id, "ResourceType": "ALIYUN::ALIKAFKA::INSTANCE", "TagKey": t.key, "TagValue": t.value}));
                    }
                }
            }
            Ok(fields(
                json!({"TagResources": {"TagResource": out}, "NextToken": ""}),
            ))
        }
    }
}

fn resource_type_name(t: engine::ResourceType) -> &'static str {
    match t {
        engine::ResourceType::Topic => "Topic",
        engine::ResourceType::Group => "Group",
        engine::ResourceType::Cluster => "Cluster",
        engine::ResourceType::TransactionalId => "TransactionalId",
    }
}

/// The ACL bindings a CreateAcl/DeleteAcl names: one per operation in
/// `AclOperationType` or the comma-separated `AclOperationTypes`.
fn acl_bindings(p: &Parsed) -> Result<Vec<engine::AclBinding>, AliError> {
    let resource_type = match required(p, "AclResourceType")?
        .to_ascii_lowercase()
        .as_str()
    {
        "topic" => engine::ResourceType::Topic,
        "group" => engine::ResourceType::Group,
        other => {
            return Err(AliError::invalid(
                "AclResourceType",
                format!("{other}: Topic or Group"),
            ))
        }
    };
    let pattern_type = match required(p, "AclResourcePatternType")?
        .to_ascii_uppercase()
        .as_str()
    {
        "LITERAL" => engine::PatternType::Literal,
        "PREFIXED" => engine::PatternType::Prefixed,
        other => {
            return Err(AliError::invalid(
                "AclResourcePatternType",
                format!("{other}: LITERAL or PREFIXED"),
            ))
        }
    };
    let permission = match p
        .get("AclPermissionType")
        .filter(|v| !v.is_empty())
        .map(|v| v.to_ascii_uppercase())
    {
        None => engine::Permission::Allow,
        Some(v) if v == "ALLOW" => engine::Permission::Allow,
        Some(v) if v == "DENY" => engine::Permission::Deny,
        Some(v) => {
            return Err(AliError::invalid(
                "AclPermissionType",
                format!("{v}: ALLOW or DENY"),
            ))
        }
    };
    let ops_text = p
        .get("AclOperationTypes")
        .filter(|v| !v.is_empty())
        .or(p.get("AclOperationType").filter(|v| !v.is_empty()))
        .ok_or_else(|| AliError::missing("AclOperationType"))?;
    let user = required(p, "Username")?;
    let name = required(p, "AclResourceName")?;
    let mut out = Vec::new();
    for op in ops_text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let operation = match op.to_ascii_lowercase().as_str() {
            "read" => engine::Operation::Read,
            "write" => engine::Operation::Write,
            "describe" => engine::Operation::Describe,
            "idempotentwrite" => engine::Operation::IdempotentWrite,
            other => {
                return Err(AliError::invalid(
                    "AclOperationType",
                    format!("{other}: Read, Write, Describe or IdempotentWrite"),
                ))
            }
        };
        out.push(engine::AclBinding {
            resource_type,
            resource_name: name.to_string(),
            pattern_type,
            principal: format!("User:{user}"),
            host: p
                .get("Host")
                .filter(|h| !h.is_empty())
                .unwrap_or("*")
                .to_string(),
            operation,
            permission,
        });
    }
    Ok(out)
}
