//! Types of engines whose topics are sets of message queues spread over several brokers,
//! consumed by subscription groups (RocketMQ), as the APIs show them: topics per broker,
//! queue offsets and lag, online clients, stored messages, trace records and ACL users.

use std::net::SocketAddr;

/// A topic's queues on one broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerQueues {
    pub broker: String,
    pub read_queues: i32,
    pub write_queues: i32,
}

/// Who may do what with a topic: read (subscribe), write (publish), both or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicPermission {
    All,
    Sub,
    Pub,
    Deny,
}

/// A topic and the brokers that have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqTopic {
    pub name: String,
    pub permission: TopicPermission,
    pub brokers: Vec<BrokerQueues>,
}

impl MqTopic {
    pub fn read_queues(&self) -> i32 {
        self.brokers.iter().map(|b| b.read_queues).sum()
    }
    pub fn write_queues(&self) -> i32 {
        self.brokers.iter().map(|b| b.write_queues).sum()
    }
}

/// A topic to create or change. Queue numbers are per broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMqTopic {
    pub name: String,
    /// Brokers to put it on; empty: every broker (a change: the brokers that have it).
    pub brokers: Vec<String>,
    pub read_queues: i32,
    pub write_queues: i32,
    pub permission: TopicPermission,
}

/// A subscription group's settings (`SubscriptionGroupConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionGroup {
    pub name: String,
    pub consume_enable: bool,
    pub broadcast: bool,
    pub retry_max_times: i32,
    pub consume_from_min: bool,
    /// Brokers that have the group; on a put, empty means every broker.
    pub brokers: Vec<String>,
}

/// Offsets of one queue of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqQueueOffsets {
    pub broker: String,
    pub queue_id: i32,
    pub min_offset: i64,
    pub max_offset: i64,
    pub last_message_ms: i64,
}

/// Where a group stands in one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqQueueLag {
    pub broker: String,
    pub queue_id: i32,
    pub broker_offset: i64,
    pub consumer_offset: i64,
    /// Store time of the last message the group consumed; 0 when none.
    pub last_message_ms: i64,
}

impl MqQueueLag {
    pub fn lag(&self) -> i64 {
        (self.broker_offset - self.consumer_offset).max(0)
    }
}

/// The offset a reset chose for one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqQueueOffset {
    pub broker: String,
    pub queue_id: i32,
    pub offset: i64,
}

/// An online client of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqClient {
    pub client_id: String,
    pub client_addr: SocketAddr,
    pub language: String,
    pub version: i32,
    /// `CLUSTERING` or `BROADCASTING`.
    pub message_model: String,
    /// `CONSUME_PASSIVELY` (push) or `CONSUME_ACTIVELY` (pull).
    pub consume_type: String,
    /// (topic, subscription expression).
    pub subscriptions: Vec<(String, String)>,
}

/// A stored message as the message APIs show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqMessage {
    /// The offset message id (store host and physical offset).
    pub msg_id: String,
    pub topic: String,
    pub store_ms: i64,
    pub born_ms: i64,
    pub reconsume_times: i32,
    pub body: Vec<u8>,
    pub body_crc: i32,
    pub store_size: usize,
    pub properties: Vec<(String, String)>,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub queue_id: i32,
    pub queue_offset: i64,
}

impl MqMessage {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A message to publish through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub body: Vec<u8>,
    /// User and system properties (`TAGS`, `KEYS`, ...).
    pub properties: Vec<(String, String)>,
}

/// Where a published message landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub msg_id: String,
    pub broker: String,
    pub queue_id: i32,
    pub queue_offset: i64,
}

/// What a consumer answered when a message was handed to it directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectConsumeResult {
    /// `CR_SUCCESS`, `CR_LATER`, `CR_ROLLBACK`, `CR_COMMIT`, `CR_THROW_EXCEPTION`,
    /// `CR_RETURN_NULL`.
    pub result: String,
    pub remark: String,
    pub spent_ms: i64,
}

/// One record of a message's trace (a send, a delivery, a consume, a transaction end).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqTraceRecord {
    pub trace_type: String,
    pub timestamp: i64,
    pub group_name: String,
    pub request_id: String,
    pub topic: String,
    pub msg_id: String,
    pub offset_msg_id: String,
    pub tags: String,
    pub keys: String,
    pub store_host: String,
    pub client_host: String,
    pub body_length: i64,
    pub cost_time: i64,
    pub msg_type: String,
    pub success: bool,
    pub retry_times: i64,
    pub consume_status: i64,
    pub transaction_id: String,
    pub transaction_state: String,
    pub from_transaction_check: bool,
}

/// A permission of an ACL user on one topic or group: `DENY`, `PUB`, `SUB` or `PUB|SUB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePerm {
    pub name: String,
    pub perm: String,
}

/// A user of the broker's plain ACL. The secret stays in the broker (signatures need it
/// as it is); the APIs never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AclUser {
    pub access_key: String,
    pub secret_key: String,
    pub white_remote_address: String,
    pub admin: bool,
    pub default_topic_perm: String,
    pub default_group_perm: String,
    pub topic_perms: Vec<ResourcePerm>,
    pub group_perms: Vec<ResourcePerm>,
}

impl std::fmt::Debug for AclUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclUser")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .field("white_remote_address", &self.white_remote_address)
            .field("admin", &self.admin)
            .field("default_topic_perm", &self.default_topic_perm)
            .field("default_group_perm", &self.default_group_perm)
            .field("topic_perms", &self.topic_perms)
            .field("group_perms", &self.group_perms)
            .finish()
    }
}

/// Settings every broker of an instance takes at once, without a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqSettings {
    /// How long messages are kept (`fileReservedTime`).
    pub retention_hours: u32,
    /// The largest message body (`maxMessageSize`).
    pub max_message_bytes: u64,
    /// Producers may create topics by sending to them (`autoCreateTopicEnable`).
    pub auto_create_topics: bool,
    /// Consumers may create subscription groups by using them (`autoCreateSubscriptionGroup`).
    pub auto_create_groups: bool,
}
