//! Domain types of the control plane: instance statuses, the stored instance document and
//! the requests that change them.

use serde::{Deserialize, Deserializer, Serialize};

/// Where an instance is in its lifecycle. The wire names are the upper-case ones the APIs
/// show (`RUNNING` in seed 000's examples; the others as Huawei's V2 documents spell them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceStatus {
    /// Ordered through the Alibaba API and not deployed yet (`ServiceStatus` 0): no brokers.
    Ordered,
    Creating,
    Running,
    Restarting,
    Extending,
    Deleting,
    CreateFailed,
    /// The brokers could not be brought back (for example at start-up).
    Error,
}

impl InstanceStatus {
    pub const ALL: [InstanceStatus; 8] = [
        InstanceStatus::Ordered,
        InstanceStatus::Creating,
        InstanceStatus::Running,
        InstanceStatus::Restarting,
        InstanceStatus::Extending,
        InstanceStatus::Deleting,
        InstanceStatus::CreateFailed,
        InstanceStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Ordered => "ORDERED",
            InstanceStatus::Creating => "CREATING",
            InstanceStatus::Running => "RUNNING",
            InstanceStatus::Restarting => "RESTARTING",
            InstanceStatus::Extending => "EXTENDING",
            InstanceStatus::Deleting => "DELETING",
            InstanceStatus::CreateFailed => "CREATEFAILED",
            InstanceStatus::Error => "ERROR",
        }
    }

    /// Parses a wire name; seed 000's display names ("Running", "Creating") are accepted too.
    pub fn parse(s: &str) -> Option<InstanceStatus> {
        let upper = s.trim().to_ascii_uppercase().replace([' ', '_'], "");
        InstanceStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == upper)
    }

    /// The status a record holds; an unknown name (from a newer version) reads as `Error`.
    pub fn of(r: &InstanceRecord) -> InstanceStatus {
        InstanceStatus::parse(&r.status).unwrap_or(InstanceStatus::Error)
    }

    /// A status in which another lifecycle operation must wait.
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            InstanceStatus::Creating
                | InstanceStatus::Restarting
                | InstanceStatus::Extending
                | InstanceStatus::Deleting
        )
    }
}

/// Everything about an instance besides its id, project, engine, name and status: the
/// desired state the reconciler converges to and what the APIs show. Stored as the
/// instance record's JSON document, so new fields need no migration (serde defaults).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceDoc {
    pub description: String,
    pub engine_version: String,
    /// `100MB` … for the bandwidth family; `<flavor> * N broker` for flavors.
    pub specification: String,
    pub product_id: String,
    pub resource_spec_code: String,
    pub broker_num: u32,
    pub storage_space_gb: u64,
    pub partition_num: u32,
    pub storage_spec_code: String,
    pub available_zones: Vec<String>,
    pub vpc_id: String,
    pub subnet_id: String,
    pub security_group_id: String,
    pub maintain_begin: String,
    pub maintain_end: String,
    pub ssl_enable: bool,
    pub access_user: String,
    pub retention_policy: String,
    pub enable_auto_topic: bool,
    pub enterprise_project_id: String,
    pub connector_enable: bool,
    pub enable_publicip: bool,
    pub public_bandwidth: i64,
    pub publicip_id: String,
    pub kafka_manager_user: String,
    pub user_id: String,
    pub user_name: String,
    /// Broker listen addresses (`ip:port`), assigned once at creation.
    pub listeners: Vec<String>,
    pub extend_times: u32,
    /// Storage the running extend operation moves to.
    pub pending_storage_gb: Option<u64>,
    /// Alibaba orders: the order id, and what was ordered and deployed.
    pub order_id: String,
    pub ali: AliInstance,
    /// Remarks of topics (Alibaba `Remark`), by topic name.
    pub topic_remarks: std::collections::BTreeMap<String, String>,
    /// Consumer groups declared through the APIs, by name. Kafka has no "create group"
    /// request: groups clients join exist in the broker on their own; these are listed
    /// beside them until deleted.
    pub declared_groups: std::collections::BTreeMap<String, DeclaredGroup>,
    /// Enforce Kafka ACLs (Alibaba instances deployed with `DeployModule=eip`); the
    /// deployment's user is a super user.
    pub acl_enabled: bool,
    /// SASL users created through the APIs: name → (type, mechanism) as given. The
    /// passwords are only in the broker, as SCRAM hashes.
    pub sasl_users: std::collections::BTreeMap<String, SaslUserMeta>,
    /// Client networks allowed to connect, by list (`vpc`, `internet`); empty maps allow
    /// everyone.
    pub allowed_ips: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaslUserMeta {
    pub kind: String,
    pub mechanism: String,
}

impl InstanceDoc {
    /// The allowed networks the brokers enforce: `None` when no list was ever set.
    pub fn allowed_networks(&self) -> Option<Vec<String>> {
        if self.allowed_ips.is_empty() {
            return None;
        }
        let mut all: Vec<String> = self.allowed_ips.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        Some(all)
    }
}

/// What the Alibaba API records about an instance beyond the common fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AliInstance {
    pub region_id: String,
    pub deploy_type: i64,
    pub disk_type: String,
    pub io_max: i64,
    pub io_max_spec: String,
    pub eip_max: i64,
    pub spec_type: String,
    pub paid_type: i64,
    pub topic_quota: i64,
    pub vswitch_id: String,
    pub zone_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeclaredGroup {
    pub remark: String,
    pub created_ms: i64,
}

/// An Alibaba order (CreatePostPayOrder / CreatePrePayOrder).
#[derive(Clone, Debug, Default)]
pub struct OrderRequest {
    pub region_id: String,
    pub deploy_type: i64,
    pub disk_size_gb: i64,
    pub disk_type: String,
    pub io_max: Option<i64>,
    pub io_max_spec: Option<String>,
    pub eip_max: Option<i64>,
    pub partition_num: Option<i64>,
    pub topic_quota: Option<i64>,
    pub spec_type: Option<String>,
    pub paid_type: i64,
    pub tags: Vec<Tag>,
}

/// StartInstance: where and how to deploy an ordered instance.
#[derive(Clone, Debug, Default)]
pub struct DeployRequest {
    pub vpc_id: String,
    pub vswitch_id: String,
    pub zone_id: String,
    pub name: Option<String>,
    /// SASL user and password (DeployModule eip with IsSetUserAndPassword).
    pub sasl_user: Option<(String, String)>,
}

impl InstanceDoc {
    /// The document a record stores.
    pub fn of(r: &InstanceRecord) -> Result<InstanceDoc, crate::ControlError> {
        serde_json::from_value(r.document.clone())
            .map_err(|e| crate::ControlError::Internal(format!("instance document: {e}")))
    }

    /// Puts this document into a record (to be written with `update_instance`).
    pub fn store_in(&self, r: &mut InstanceRecord) -> Result<(), crate::ControlError> {
        r.document = serde_json::to_value(self)
            .map_err(|e| crate::ControlError::Internal(format!("instance document: {e}")))?;
        Ok(())
    }

    pub fn broker_ips(&self) -> Vec<String> {
        self.listeners
            .iter()
            .filter_map(|l| l.rsplit_once(':').map(|(ip, _)| ip.to_string()))
            .collect()
    }

    pub fn port(&self) -> Option<u16> {
        self.listeners
            .first()
            .and_then(|l| l.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
    }
}

/// An integer that some documents send as a string (`"partition_num": "300"` in seed 000's
/// examples, `900` in seed 003's).
pub fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Int(i64),
        Str(String),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Int(i)) => Ok(Some(i)),
        Some(Either::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Either::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// A create request of any of the documented shapes: seed 000 (`/v1.0`), seed 003
/// (`POST /v2/{project_id}/instances`) and the SDK's `CreateInstanceByEngineReq`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CreateInstanceRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub specification: Option<String>,
    pub broker_num: Option<i64>,
    pub storage_space: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    pub partition_num: Option<i64>,
    pub access_user: Option<String>,
    pub password: Option<String>,
    pub vpc_id: Option<String>,
    pub security_group_id: Option<String>,
    pub subnet_id: Option<String>,
    pub available_zones: Option<Vec<String>>,
    pub product_id: Option<String>,
    pub kafka_manager_user: Option<String>,
    pub kafka_manager_password: Option<String>,
    pub maintain_begin: Option<String>,
    pub maintain_end: Option<String>,
    pub enable_publicip: Option<bool>,
    pub public_bandwidth: Option<i64>,
    pub publicip_id: Option<String>,
    pub ssl_enable: Option<bool>,
    pub kafka_security_protocol: Option<String>,
    pub sasl_enabled_mechanisms: Option<Vec<String>>,
    pub retention_policy: Option<String>,
    pub connector_enable: Option<bool>,
    pub enable_auto_topic: Option<bool>,
    pub storage_spec_code: Option<String>,
    pub enterprise_project_id: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub ipv6_enable: Option<bool>,
    pub disk_encrypted_enable: Option<bool>,
    pub arch_type: Option<String>,
    pub vpc_client_plain: Option<bool>,
}

/// Which create path a request came in on: it decides which fields are mandatory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateShape {
    /// Seed 000 `POST /v1.0/{project_id}/instances` and seed 003 `POST /v2/{project_id}/instances`:
    /// bandwidth specifications, Kafka Manager credentials mandatory.
    Bandwidth,
    /// The SDK's `create_instance_by_engine` / `create_post_paid_kafka_instance`: flavor
    /// products with `broker_num`; bandwidth product ids are accepted as well.
    Flavor,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct UpdateInstanceRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub maintain_begin: Option<String>,
    pub maintain_end: Option<String>,
    pub security_group_id: Option<String>,
    pub retention_policy: Option<String>,
    pub enterprise_project_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct BatchActionRequest {
    pub action: Option<String>,
    pub instances: Option<Vec<String>>,
    /// Seed 000 spells it `allFailure`, the SDK `all_failure`.
    #[serde(alias = "allFailure")]
    pub all_failure: Option<String>,
    pub force_delete: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResizeRequest {
    pub oper_type: Option<String>,
    pub new_storage_space: Option<i64>,
    pub new_broker_num: Option<i64>,
    pub new_product_id: Option<String>,
    pub new_specification: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TopicConfigEntry {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CreateTopicRequest {
    pub id: Option<String>,
    pub partition: Option<i64>,
    pub replication: Option<i64>,
    pub sync_replication: Option<bool>,
    pub retention_time: Option<i64>,
    pub sync_message_flush: Option<bool>,
    pub topic_other_configs: Option<Vec<TopicConfigEntry>>,
    pub topic_desc: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct UpdateTopicEntry {
    pub id: Option<String>,
    pub retention_time: Option<i64>,
    pub sync_replication: Option<bool>,
    pub sync_message_flush: Option<bool>,
    pub new_partition_numbers: Option<i64>,
    pub topic_other_configs: Option<Vec<TopicConfigEntry>>,
    pub topic_desc: Option<String>,
}

/// A topic as the APIs show it, read from the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicView {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    pub retention_hours: i64,
    pub sync_replication: bool,
    pub sync_message_flush: bool,
    pub created_ms: i64,
    pub configs: std::collections::BTreeMap<String, String>,
}

pub use store::InstanceRecord;
/// A background task as the APIs show it.
pub use store::TaskRecord;

/// An instance as read: its record, its document, and live figures from the engine.
#[derive(Clone, Debug)]
pub struct InstanceView {
    pub id: String,
    pub project_id: String,
    pub engine: String,
    pub name: String,
    pub status: InstanceStatus,
    pub status_reason: Option<String>,
    pub doc: InstanceDoc,
    pub created_at_ms: i64,
    pub used_bytes: u64,
    pub tags: Vec<Tag>,
}
