//! The engine-neutral administration handle of a running instance, and the types it speaks.
//!
//! Every engine answers usage and traffic and takes limits; the rest (topics, consumer groups,
//! users, access rules) is answered by the engines that have it. A method an engine does not
//! implement answers `EngineError::Unsupported` naming what is missing, so the control plane
//! can say so instead of guessing.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use crate::mq::{
    AclUser, DirectConsumeResult, MqClient, MqMessage, MqQueueLag, MqQueueOffset, MqQueueOffsets,
    MqSettings, MqTopic, MqTraceRecord, NewMqTopic, OutgoingMessage, SentMessage,
    SubscriptionGroup,
};
use crate::{EngineError, EngineKind, Limits};

/// A topic (Kafka topic; RocketMQ topic) as the APIs show it.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Negative: kept forever.
    pub retention_hours: i64,
    /// Every write must reach more than one replica before it is acknowledged.
    pub sync_replication: bool,
    /// Every message is flushed to disk before it is acknowledged.
    pub sync_flush: bool,
    pub created_ms: i64,
    /// Every setting of the topic in the broker's own names (shown as `topic_other_configs`).
    pub configs: BTreeMap<String, String>,
}

/// A topic to create.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication: i16,
    /// `None`: the instance's default.
    pub retention_hours: Option<i64>,
    pub sync_flush: bool,
    pub sync_replication: bool,
    /// Further settings in the broker's own names.
    pub other_configs: BTreeMap<String, String>,
}

/// Changes to a topic; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicChange {
    pub retention_hours: Option<i64>,
    pub sync_flush: Option<bool>,
    pub sync_replication: Option<bool>,
    pub other_configs: BTreeMap<String, String>,
    /// The new total number of partitions (only grows).
    pub partitions: Option<i32>,
}

/// Earliest and next offsets of one partition, and when it was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub log_start: i64,
    pub log_end: i64,
    pub last_append_ms: i64,
}

/// Where a consumer group stands in one partition it has committed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    pub committed: i64,
    /// `None` when the partition no longer exists.
    pub log_end: Option<i64>,
    pub last_append_ms: i64,
}

impl PartitionLag {
    /// Messages written and not yet consumed.
    pub fn lag(&self) -> i64 {
        self.log_end.map_or(0, |end| (end - self.committed).max(0))
    }
}

/// Bytes stored, produced and consumed since the instance started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// What an access rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessResource {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

/// How an access rule's resource name is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NamePattern {
    Literal,
    Prefixed,
}

/// What an access rule allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

/// One permission of one user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccessRule {
    pub resource: AccessResource,
    pub resource_name: String,
    pub pattern: NamePattern,
    /// A user name, or `*` for every user.
    pub user: String,
    /// A client host, or `*`.
    pub host: String,
    pub operation: AccessOperation,
    pub allow: bool,
}

/// An exchange (AMQP), as the APIs show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeInfo {
    pub vhost: String,
    pub name: String,
    /// `direct`, `fanout`, `topic`, `headers`, or a plug-in's type.
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// The exchange's arguments as JSON (RabbitMQ's management API shape).
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// A binding of an exchange to a queue or another exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingInfo {
    pub source: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    pub destination: String,
    pub routing_key: String,
    /// What names the binding in a delete: the routing key, `~` when it is empty (as
    /// RabbitMQ's management API names bindings without arguments).
    pub properties_key: String,
}

/// A consumer of a queue.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerInfo {
    pub tag: String,
    pub ack_required: bool,
    pub prefetch_count: u32,
}

/// A queue (AMQP), as the APIs show it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueInfo {
    pub vhost: String,
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    /// Ready and unacknowledged.
    pub messages: u64,
    pub consumers: Vec<ConsumerInfo>,
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// Bindings whose destination is the queue.
    pub bindings: Vec<BindingInfo>,
}

/// A queue to declare through the APIs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewQueue {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    /// `x-` arguments (`x-message-ttl`, `x-dead-letter-exchange`, ...).
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// One user's permissions in one vhost (configure, write and read regexes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostPermission {
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// Administration of one running instance. Changes go through the same paths as the
/// broker's own admin requests, so clients and the APIs see one state.
#[async_trait]
pub trait BrokerAdmin: Send + Sync {
    fn kind(&self) -> EngineKind;

    // ---- usage, traffic and limits (every engine) ----------------------------------

    fn usage(&self) -> Usage;
    /// (bytes in, bytes out) per topic or queue since the instance started.
    fn traffic_by_resource(&self) -> HashMap<String, (u64, u64)>;
    /// Changes storage and partition limits without a restart.
    fn apply_limits(&self, limits: &Limits);
    /// Replaces the client networks allowed to connect (`None`: everyone). Open
    /// connections stay open.
    fn set_allowed_networks(&self, networks: Option<Vec<String>>) -> Result<(), EngineError>;

    // ---- topics ----------------------------------------------------------------------

    fn topics(&self) -> Result<Vec<TopicInfo>, EngineError> {
        Err(self.unsupported("topics"))
    }
    fn topic(&self, _name: &str) -> Result<Option<TopicInfo>, EngineError> {
        Err(self.unsupported("topics"))
    }
    async fn create_topic(&self, _topic: NewTopic) -> Result<TopicInfo, EngineError> {
        Err(self.unsupported("topics"))
    }
    async fn delete_topic(&self, _name: &str) -> Result<(), EngineError> {
        Err(self.unsupported("topics"))
    }
    async fn change_topic(&self, _name: &str, _change: TopicChange) -> Result<(), EngineError> {
        Err(self.unsupported("topics"))
    }
    /// Offsets of every partition of a topic, in partition order; `None` if it does not exist.
    fn partition_offsets(
        &self,
        _topic: &str,
    ) -> Result<Option<Vec<PartitionOffsets>>, EngineError> {
        Err(self.unsupported("topics"))
    }

    // ---- consumer groups ---------------------------------------------------------------

    fn groups(&self) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("consumer groups"))
    }
    /// Registers an empty group so it is listed before anyone joins; false if it exists.
    fn declare_group(&self, _group: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("consumer groups"))
    }
    /// Deletes a group without members, with its offsets: `NotFound` or `InUse` otherwise.
    fn delete_group(&self, _group: &str) -> Result<(), EngineError> {
        Err(self.unsupported("consumer groups"))
    }
    /// The committed partitions of a group and how far behind they are, by topic.
    fn group_lag(&self, _group: &str) -> Result<BTreeMap<String, Vec<PartitionLag>>, EngineError> {
        Err(self.unsupported("consumer groups"))
    }

    // ---- users and permissions ---------------------------------------------------------

    fn users(&self) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("users"))
    }
    /// Creates a user or resets its password; the broker keeps only its own hashes.
    async fn set_user_password(&self, _user: &str, _password: &str) -> Result<(), EngineError> {
        Err(self.unsupported("users"))
    }
    /// Deletes a user; false if there was none.
    async fn delete_user(&self, _user: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("users"))
    }
    fn access_rules(&self) -> Result<Vec<AccessRule>, EngineError> {
        Err(self.unsupported("access rules"))
    }
    async fn add_access_rule(&self, _rule: AccessRule) -> Result<(), EngineError> {
        Err(self.unsupported("access rules"))
    }
    /// Removes the rules equal to `rule`; answers how many there were.
    async fn remove_access_rule(&self, _rule: AccessRule) -> Result<usize, EngineError> {
        Err(self.unsupported("access rules"))
    }

    // ---- vhosts, exchanges, queues, bindings (AMQP) -------------------------------------

    fn vhosts(&self) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("vhosts"))
    }
    /// False if it exists.
    async fn create_vhost(&self, _name: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("vhosts"))
    }
    /// False if there was none.
    async fn delete_vhost(&self, _name: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("vhosts"))
    }
    /// `NotFound` when the vhost does not exist.
    fn exchanges(&self, _vhost: &str) -> Result<Vec<ExchangeInfo>, EngineError> {
        Err(self.unsupported("exchanges"))
    }
    /// Declares an exchange (an existing equivalent one is answered as it is).
    async fn create_exchange(&self, _exchange: ExchangeInfo) -> Result<ExchangeInfo, EngineError> {
        Err(self.unsupported("exchanges"))
    }
    async fn delete_exchange(&self, _vhost: &str, _name: &str) -> Result<(), EngineError> {
        Err(self.unsupported("exchanges"))
    }
    fn queues(&self, _vhost: &str) -> Result<Vec<QueueInfo>, EngineError> {
        Err(self.unsupported("queues"))
    }
    fn queue(&self, _vhost: &str, _name: &str) -> Result<Option<QueueInfo>, EngineError> {
        Err(self.unsupported("queues"))
    }
    async fn create_queue(&self, _vhost: &str, _queue: NewQueue) -> Result<QueueInfo, EngineError> {
        Err(self.unsupported("queues"))
    }
    /// Answers how many messages it held; `NotFound` when there is none.
    async fn delete_queue(&self, _vhost: &str, _name: &str) -> Result<u64, EngineError> {
        Err(self.unsupported("queues"))
    }
    /// Drops every ready message; answers how many.
    fn purge_queue(&self, _vhost: &str, _name: &str) -> Result<u64, EngineError> {
        Err(self.unsupported("queues"))
    }
    /// Bindings whose source is `exchange`.
    fn bindings(&self, _vhost: &str, _exchange: &str) -> Result<Vec<BindingInfo>, EngineError> {
        Err(self.unsupported("bindings"))
    }
    async fn bind(&self, _vhost: &str, _binding: BindingInfo) -> Result<BindingInfo, EngineError> {
        Err(self.unsupported("bindings"))
    }
    /// Removes the binding `properties_key` names; false if there was none.
    async fn unbind(&self, _vhost: &str, _binding: BindingInfo) -> Result<bool, EngineError> {
        Err(self.unsupported("bindings"))
    }
    /// Every user's permissions, by user.
    fn user_permissions(&self) -> Result<BTreeMap<String, Vec<VhostPermission>>, EngineError> {
        Err(self.unsupported("user permissions"))
    }
    /// Replaces a user's permissions with `permissions` (vhosts not listed lose theirs).
    async fn set_user_permissions(
        &self,
        _user: &str,
        _permissions: Vec<VhostPermission>,
    ) -> Result<(), EngineError> {
        Err(self.unsupported("user permissions"))
    }

    // ---- message-queue topics, subscription groups, messages, ACL users (RocketMQ) -------

    /// The names of the instance's brokers (`broker-0`, ...), in order.
    fn broker_names(&self) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("brokers"))
    }
    /// User topics (system, retry and dead-letter topics left out unless `internal`).
    fn mq_topics(&self, _internal: bool) -> Result<Vec<MqTopic>, EngineError> {
        Err(self.unsupported("message-queue topics"))
    }
    /// Creates a topic on the brokers it names, or changes it where it is.
    async fn put_mq_topic(&self, _topic: NewMqTopic) -> Result<MqTopic, EngineError> {
        Err(self.unsupported("message-queue topics"))
    }
    /// Deletes a topic with its messages from every broker; false if there was none.
    async fn delete_mq_topic(&self, _name: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("message-queue topics"))
    }
    /// Offsets of every queue of a topic; `None` if no broker has it.
    fn mq_queue_offsets(&self, _topic: &str) -> Result<Option<Vec<MqQueueOffsets>>, EngineError> {
        Err(self.unsupported("message-queue topics"))
    }
    fn subscription_groups(&self) -> Result<Vec<SubscriptionGroup>, EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    async fn put_subscription_group(&self, _group: SubscriptionGroup) -> Result<(), EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    /// Deletes a group with its offsets from every broker; false if there was none.
    async fn delete_subscription_group(&self, _name: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    /// Topics a group consumes (committed offsets or online subscriptions).
    fn group_topics(&self, _group: &str) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    /// Groups that consume a topic.
    fn topic_groups(&self, _topic: &str) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    /// Where a group stands in every queue of a topic; `NotFound` without the topic.
    async fn mq_group_lag(
        &self,
        _group: &str,
        _topic: &str,
    ) -> Result<Vec<MqQueueLag>, EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    /// The online clients of a group.
    fn group_clients(&self, _group: &str) -> Result<Vec<MqClient>, EngineError> {
        Err(self.unsupported("subscription groups"))
    }
    /// Moves a group's offsets on a topic to the first message stored at or after
    /// `timestamp_ms` and tells its online clients; answers the offset of each queue.
    async fn reset_group_offsets(
        &self,
        _group: &str,
        _topic: &str,
        _timestamp_ms: i64,
    ) -> Result<Vec<MqQueueOffset>, EngineError> {
        Err(self.unsupported("offset resets"))
    }
    /// Messages of a topic stored between two times (inclusive), at most `max`.
    async fn messages_between(
        &self,
        _topic: &str,
        _begin_ms: i64,
        _end_ms: i64,
        _max: usize,
    ) -> Result<Vec<MqMessage>, EngineError> {
        Err(self.unsupported("message queries"))
    }
    /// Messages an id names: an offset message id, or a unique key (in `topic`, or any
    /// topic when `None`).
    async fn messages_by_id(
        &self,
        _topic: Option<&str>,
        _id: &str,
    ) -> Result<Vec<MqMessage>, EngineError> {
        Err(self.unsupported("message queries"))
    }
    async fn send_message(&self, _message: OutgoingMessage) -> Result<SentMessage, EngineError> {
        Err(self.unsupported("sending messages"))
    }
    /// Publishes a dead-letter message again to the topic it was first sent to.
    async fn resend_dead_letter(
        &self,
        _dlq_topic: &str,
        _id: &str,
    ) -> Result<SentMessage, EngineError> {
        Err(self.unsupported("dead-letter resends"))
    }
    /// Hands a stored message to one online client of a group and answers its result.
    async fn consume_directly(
        &self,
        _group: &str,
        _client_id: &str,
        _id: &str,
    ) -> Result<DirectConsumeResult, EngineError> {
        Err(self.unsupported("consumption verification"))
    }
    /// The trace records of a message (by its unique key or offset id).
    async fn message_trace(&self, _id: &str) -> Result<Vec<MqTraceRecord>, EngineError> {
        Err(self.unsupported("message traces"))
    }
    fn acl_users(&self) -> Result<Vec<AclUser>, EngineError> {
        Err(self.unsupported("ACL users"))
    }
    /// Creates or replaces an ACL user; effective at once.
    async fn put_acl_user(&self, _user: AclUser) -> Result<(), EngineError> {
        Err(self.unsupported("ACL users"))
    }
    /// False if there was none.
    async fn delete_acl_user(&self, _access_key: &str) -> Result<bool, EngineError> {
        Err(self.unsupported("ACL users"))
    }
    /// Switches ACL enforcement on or off; effective at once.
    async fn set_acl_enabled(&self, _enabled: bool) -> Result<(), EngineError> {
        Err(self.unsupported("ACL"))
    }
    /// The brokers' live settings.
    fn mq_settings(&self) -> Result<MqSettings, EngineError> {
        Err(self.unsupported("broker settings"))
    }
    /// Applies settings to every broker at once.
    async fn apply_mq_settings(&self, _settings: MqSettings) -> Result<(), EngineError> {
        Err(self.unsupported("broker settings"))
    }

    // ---- plug-ins ------------------------------------------------------------------------

    /// The plug-ins switched on in the running broker.
    fn plugins(&self) -> Result<Vec<String>, EngineError> {
        Err(self.unsupported("plug-ins"))
    }
    /// Switches a plug-in the broker implements on or off, at once.
    fn set_plugin(&self, _plugin: &str, _enabled: bool) -> Result<(), EngineError> {
        Err(self.unsupported("plug-ins"))
    }

    /// The error of a method this engine does not implement.
    fn unsupported(&self, what: &'static str) -> EngineError {
        EngineError::Unsupported {
            kind: self.kind(),
            what,
        }
    }
}
