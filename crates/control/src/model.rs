//! Domain types of the control plane: instance statuses, the stored instance document, the
//! commands that change instances, and the engine-neutral broker types the façades render.

use serde::{Deserialize, Serialize};

pub use engine::mq::{
    AclUser, BrokerQueues, DirectConsumeResult, MqClient, MqMessage, MqQueueLag, MqQueueOffset,
    MqQueueOffsets, MqTopic, MqTraceRecord, OutgoingMessage, ResourcePerm, SentMessage,
    SubscriptionGroup, TopicPermission,
};
pub use engine::{
    AccessOperation, AccessResource, AccessRule, BindingInfo, ConsumerInfo, EngineKind,
    ExchangeInfo, NamePattern, NewQueue, NewTopic, PartitionLag, PartitionOffsets, QueueInfo,
    TopicInfo, Usage, VhostPermission,
};

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
    /// `single` or `cluster` (RabbitMQ products).
    pub product_type: String,
    /// Where the broker's management API listens (`ip:port`; RabbitMQ).
    pub management_listener: String,
    /// Where the name server listens (`ip:port`; RocketMQ).
    pub namesrv_listener: String,
    /// Broker plug-ins switched on (RabbitMQ).
    pub plugins: Vec<String>,
    /// Metadata migration tasks (RocketMQ, seed 001 5.6), oldest first.
    pub migration_tasks: Vec<MigrationTask>,
    /// Broker configuration changed through the API (RocketMQ), by Apache property name;
    /// a parameter not here has its default (`catalog::ROCKETMQ_CONFIGS`).
    pub rocketmq_configs: std::collections::BTreeMap<String, String>,
}

/// One metadata migration task (seed 001 5.6.2 MetadataTask). It runs when created; its
/// status says what happened in the brokers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrationTask {
    pub id: String,
    pub name: String,
    pub started_ms: i64,
    /// `finished` or `failed`.
    pub status: String,
    /// `rocketmq` or `rabbitToRocket`.
    pub kind: String,
    pub topics: Vec<String>,
    pub groups: Vec<String>,
    /// Why it failed.
    pub reason: String,
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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// A new instance, as every create path describes it (seed 000, seed 003, the SDK's
/// `create_instance_by_engine`). Which fields are mandatory depends on the [`CreateShape`];
/// the façades fill this from their own request bodies.
#[derive(Clone, Debug, Default)]
pub struct NewInstance {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `None`: the request named no engine (refused as an unsupported engine).
    pub engine: Option<EngineKind>,
    pub engine_version: Option<String>,
    pub product_id: Option<String>,
    pub specification: Option<String>,
    pub broker_num: Option<i64>,
    pub storage_space_gb: Option<i64>,
    pub storage_spec_code: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_id: Option<String>,
    pub available_zones: Option<Vec<String>>,
    pub maintain_begin: Option<String>,
    pub maintain_end: Option<String>,
    /// Clients must authenticate as `access_user` with `password`.
    pub ssl_enable: Option<bool>,
    pub access_user: Option<String>,
    pub password: Option<String>,
    pub enterprise_project_id: Option<String>,
    pub enable_publicip: Option<bool>,
    pub public_bandwidth: Option<i64>,
    pub publicip_id: Option<String>,
    pub tags: Vec<Tag>,
    /// Enforce the broker's ACL (RocketMQ's `enable_acl`).
    pub enable_acl: Option<bool>,
    pub ipv6_enable: Option<bool>,
    pub kafka: KafkaOptions,
}

/// What only a Kafka create request has.
#[derive(Clone, Debug, Default)]
pub struct KafkaOptions {
    pub partition_num: Option<i64>,
    pub kafka_manager_user: Option<String>,
    pub kafka_manager_password: Option<String>,
    /// `time_base` or `produce_reject`.
    pub retention_policy: Option<String>,
    pub enable_auto_topic: Option<bool>,
    pub connector_enable: Option<bool>,
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

/// Changes to an instance (`update_instance`); `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct InstanceChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub maintain_begin: Option<String>,
    pub maintain_end: Option<String>,
    pub security_group_id: Option<String>,
    pub retention_policy: Option<String>,
    pub enterprise_project_id: Option<String>,
    /// Seed 001 5.1.5: switch the brokers' ACL (RocketMQ).
    pub enable_acl: Option<bool>,
    pub enable_publicip: Option<bool>,
    pub publicip_id: Option<String>,
}

/// Restart or delete several instances, or delete every failed one of an engine.
#[derive(Clone, Debug, Default)]
pub struct BatchAction {
    /// `delete` or `restart`.
    pub action: Option<String>,
    pub instances: Option<Vec<String>>,
    /// Delete every instance of this engine whose creation failed.
    pub all_failure: Option<EngineKind>,
}

/// A change of an instance's specification (`resize_*_instance`).
#[derive(Clone, Debug, Default)]
pub struct Resize {
    /// `storage` (the only one OpenDMS does), `horizontal` or `vertical`.
    pub oper_type: Option<String>,
    pub new_storage_space: Option<i64>,
}

/// A topic to create through the Huawei API, checked against [`crate::validation::TopicRules`].
#[derive(Clone, Debug, Default)]
pub struct TopicRequest {
    pub name: Option<String>,
    pub partitions: Option<i64>,
    pub replication: Option<i64>,
    pub retention_hours: Option<i64>,
    pub sync_replication: Option<bool>,
    pub sync_flush: Option<bool>,
    pub other_configs: Vec<(String, String)>,
}

/// Changes to one topic (`update_instance_topic`).
#[derive(Clone, Debug, Default)]
pub struct TopicUpdate {
    pub name: Option<String>,
    pub retention_hours: Option<i64>,
    pub sync_replication: Option<bool>,
    pub sync_flush: Option<bool>,
    pub new_partitions: Option<i64>,
    pub other_configs: Vec<(String, String)>,
}

/// A consumer group as the APIs list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub remark: String,
    pub created_ms: i64,
    /// Declared through an API (else a client created it by joining).
    pub declared: bool,
}

/// One plug-in of a RabbitMQ instance as seed 002 4.2.2 lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginState {
    pub name: &'static str,
    pub version: &'static str,
    /// Switched on for the instance.
    pub enable: bool,
    /// Running in the broker now.
    pub running: bool,
}

/// The figures `/metrics` shows of a running instance.
#[derive(Clone, Debug)]
pub struct InstanceFigures {
    pub id: String,
    pub name: String,
    pub usage: Usage,
}

pub use store::InstanceRecord;
/// A background task as the APIs show it.
pub use store::TaskRecord;

/// An instance as read: its record, its document, and live figures from the engine.
#[derive(Clone, Debug)]
pub struct InstanceView {
    pub id: String,
    pub project_id: String,
    pub engine: EngineKind,
    pub name: String,
    pub status: InstanceStatus,
    pub status_reason: Option<String>,
    pub doc: InstanceDoc,
    pub created_at_ms: i64,
    pub used_bytes: u64,
    pub tags: Vec<Tag>,
}
