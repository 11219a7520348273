//! SASL users, ACLs and allowed IP lists (seed 004 §13–§15), enforced by the brokers.

use std::sync::Arc;

use control::model::{AccessOperation, AccessResource, AccessRule, NamePattern, SaslUserMeta};
use serde_json::{json, Map, Value};

use super::instances::{deploy_type, instance_of};
use super::params::{fields, required, Fields};
use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

pub(super) async fn create_sasl_user(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let user = required(&p, "Username")?;
    let password = required(&p, "Password")?;
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
    let meta = SaslUserMeta { kind, mechanism };
    state
        .plane
        .create_sasl_user(&p.caller.project_id, id, user, password, meta)
        .await?;
    Ok(Map::new())
}

pub(super) async fn delete_sasl_user(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    state
        .plane
        .delete_sasl_user(&p.caller.project_id, id, required(&p, "Username")?)
        .await?;
    Ok(Map::new())
}

pub(super) async fn describe_sasl_users(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let users = state.plane.sasl_users(&p.caller.project_id, id).await?;
    // Passwords are kept only as SCRAM hashes, so none can be shown.
    let list: Vec<Value> = users
        .iter()
        .map(|(u, m)| json!({"Username": u, "Type": m.kind, "Mechanism": m.mechanism, "Password": ""}))
        .collect();
    Ok(fields(json!({"SaslUserList": {"SaslUserVO": list}})))
}

pub(super) async fn create_acl(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    for rule in access_rules(&p)? {
        state
            .plane
            .add_access_rule(&p.caller.project_id, id, rule)
            .await?;
    }
    Ok(Map::new())
}

pub(super) async fn delete_acl(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let mut removed = 0;
    for rule in access_rules(&p)? {
        removed += state
            .plane
            .remove_access_rule(&p.caller.project_id, id, rule)
            .await?;
    }
    if removed == 0 {
        return Err(AliError::new(
            404,
            "InvalidParameter.AclNotFound",
            "no ACL matches the given fields",
        ));
    }
    Ok(Map::new())
}

pub(super) async fn describe_acls(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let user = p.get("Username").filter(|u| !u.is_empty());
    let rtype = p.get("AclResourceType").filter(|u| !u.is_empty());
    let rname = p.get("AclResourceName").filter(|u| !u.is_empty());
    let list: Vec<Value> = state
        .plane
        .access_rules(&p.caller.project_id, id)
        .await?
        .iter()
        .filter(|r| user.is_none_or(|u| r.user == u))
        .filter(|r| rtype.is_none_or(|t| resource_name(r.resource).eq_ignore_ascii_case(t)))
        .filter(|r| rname.is_none_or(|n| r.resource_name == n))
        .map(|r| {
            json!({
                "Username": r.user,
                "AclResourceType": resource_name(r.resource),
                "AclResourceName": r.resource_name,
                "AclResourcePatternType": match r.pattern { NamePattern::Literal => "LITERAL", NamePattern::Prefixed => "PREFIXED" },
                "AclOperationType": format!("{:?}", r.operation),
                "AclPermissionType": if r.allow { "ALLOW" } else { "DENY" },
                "Host": r.host,
            })
        })
        .collect();
    Ok(fields(json!({"KafkaAclList": {"KafkaAclVO": list}})))
}

pub(super) async fn get_allowed_ip_list(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    let v = instance_of(&state, &p).await?;
    let lists = state.plane.allowed_ips(&p.caller.project_id, &v.id).await?;
    let entry = |name: &str, port: &str| -> Vec<Value> {
        match lists.get(name) {
            Some(ips) => vec![json!({"PortRange": port, "AllowedIpList": ips})],
            None => Vec::new(),
        }
    };
    Ok(fields(json!({"AllowedList": {
        "DeployType": deploy_type(&v),
        "VpcList": entry("vpc", "9092/9092"),
        "InternetList": entry("internet", "9093/9093"),
    }})))
}

pub(super) async fn update_allowed_ip(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let id = required(&p, "InstanceId")?;
    let add = match required(&p, "UpdateType")? {
        "add" => true,
        "delete" => false,
        other => {
            return Err(AliError::invalid(
                "UpdateType",
                format!("{other}: add or delete"),
            ))
        }
    };
    let list = required(&p, "AllowedListType")?;
    let port = required(&p, "PortRange")?;
    match (list, port) {
        ("vpc", "9092/9092") | ("internet", "9093/9093") => {}
        _ => {
            return Err(AliError::invalid(
                "PortRange",
                "9092/9092 goes with vpc, 9093/9093 with internet",
            ))
        }
    }
    let ips: Vec<String> = required(&p, "AllowedListIp")?
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
    state
        .plane
        .update_allowed_ips(&p.caller.project_id, id, list, add, &ips)
        .await?;
    Ok(Map::new())
}

fn resource_name(t: AccessResource) -> &'static str {
    match t {
        AccessResource::Topic => "Topic",
        AccessResource::Group => "Group",
        AccessResource::Cluster => "Cluster",
        AccessResource::TransactionalId => "TransactionalId",
    }
}

/// The rules a CreateAcl/DeleteAcl names: one per operation in `AclOperationType` or the
/// comma-separated `AclOperationTypes`.
fn access_rules(p: &Parsed) -> Result<Vec<AccessRule>, AliError> {
    let resource = match required(p, "AclResourceType")?
        .to_ascii_lowercase()
        .as_str()
    {
        "topic" => AccessResource::Topic,
        "group" => AccessResource::Group,
        other => {
            return Err(AliError::invalid(
                "AclResourceType",
                format!("{other}: Topic or Group"),
            ))
        }
    };
    let pattern = match required(p, "AclResourcePatternType")?
        .to_ascii_uppercase()
        .as_str()
    {
        "LITERAL" => NamePattern::Literal,
        "PREFIXED" => NamePattern::Prefixed,
        other => {
            return Err(AliError::invalid(
                "AclResourcePatternType",
                format!("{other}: LITERAL or PREFIXED"),
            ))
        }
    };
    let allow = match p
        .get("AclPermissionType")
        .filter(|v| !v.is_empty())
        .map(|v| v.to_ascii_uppercase())
    {
        None => true,
        Some(v) if v == "ALLOW" => true,
        Some(v) if v == "DENY" => false,
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
            "read" => AccessOperation::Read,
            "write" => AccessOperation::Write,
            "describe" => AccessOperation::Describe,
            "idempotentwrite" => AccessOperation::IdempotentWrite,
            other => {
                return Err(AliError::invalid(
                    "AclOperationType",
                    format!("{other}: Read, Write, Describe or IdempotentWrite"),
                ))
            }
        };
        out.push(AccessRule {
            resource,
            resource_name: name.to_string(),
            pattern,
            user: user.to_string(),
            host: p
                .get("Host")
                .filter(|h| !h.is_empty())
                .unwrap_or("*")
                .to_string(),
            operation,
            allow,
        });
    }
    Ok(out)
}
