//! The RocketMQ engine: the embedded name server and brokers of the `rocketmq` crate behind
//! [`Engine`].
//!
//! An instance is one name server (on the plan's name server address) and one broker per
//! listen address, named `broker-0`, `broker-1`, … in cluster `DmsCluster` (the names seed
//! 001's examples show). Each broker keeps its data in `<data dir>/broker-<n>`; the storage
//! quota is shared out equally. ACL users live in the instance's `plain_acl.json` (Apache's
//! plain_acl in JSON form; secrets as the signature check needs them), written by this
//! engine and applied to every broker at once when the plan enforces access rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rocketmq::acl::{Account, AclConfig};
use rocketmq::broker::topics::{perm, system, write_atomically, SYSTEM_GROUPS};
use rocketmq::broker::BrokerSettings;
use rocketmq::message::{
    offset_message_id, parse_offset_message_id, prop, Properties, StoredMessage,
};
use rocketmq::{Broker as RmqBroker, BrokerConfig, FlushMode, RocketmqCluster, RocketmqConfig};

use crate::mq::{
    AclUser, BrokerQueues, DirectConsumeResult, MqClient, MqMessage, MqQueueLag, MqQueueOffset,
    MqQueueOffsets, MqSettings, MqTopic, MqTraceRecord, NewMqTopic, OutgoingMessage, ResourcePerm,
    SentMessage, SubscriptionGroup, TopicPermission,
};
use crate::{
    Broker, BrokerAdmin, Credentials, Engine, EngineError, EngineKind, InstancePlan, Limits, Usage,
};

/// The cluster name every instance's brokers register under (the `CLUSTER` property of
/// seed 001's message examples).
pub const CLUSTER: &str = "DmsCluster";

/// Where an instance keeps its ACL users.
const ACL_FILE: &str = "plain_acl.json";

/// How many messages a key or time query returns at most.
const QUERY_MAX: usize = 2048;

#[derive(Default)]
pub struct RocketmqEngine;

/// The name of broker `i`.
pub fn broker_name(i: usize) -> String {
    format!("broker-{i}")
}

#[async_trait]
impl Engine for RocketmqEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Rocketmq
    }

    /// RocketMQ instances have no first user: ACL users are created through the API.
    async fn provision(
        &self,
        _data_dir: &Path,
        _first_user: Option<Credentials>,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    async fn start(&self, plan: &InstancePlan) -> Result<Box<dyn Broker>, EngineError> {
        if plan.allowed_networks.is_some() {
            return Err(EngineError::Unsupported {
                kind: EngineKind::Rocketmq,
                what: "allowed client networks",
            });
        }
        let namesrv = plan
            .namesrv_listener
            .ok_or_else(|| EngineError::Start("the plan has no name server address".into()))?;
        if plan.listeners.is_empty() {
            return Err(EngineError::Start("the plan has no broker address".into()));
        }
        let acl_path = plan.data_dir.join(ACL_FILE);
        let acl = read_acl(&acl_path).await?;
        let per_broker_quota = plan
            .limits
            .storage_bytes
            .map(|b| b / plan.listeners.len() as u64);
        let advertised_ip: Option<IpAddr> =
            plan.advertised_host.as_deref().and_then(|h| h.parse().ok());
        let mut brokers = Vec::new();
        for (i, listen) in plan.listeners.iter().enumerate() {
            let name = broker_name(i);
            let mut bc = BrokerConfig::new(&name, *listen, plan.data_dir.join(&name));
            if let Some(ip) = advertised_ip {
                bc.advertised = SocketAddr::new(ip, listen.port());
            }
            bc.cluster = CLUSTER.to_string();
            bc.flush = FlushMode::Async;
            bc.auto_create_topics = plan.auto_create_topics;
            bc.quota_bytes = per_broker_quota;
            if plan.retention_hours >= 0 {
                bc.retention = Duration::from_secs(plan.retention_hours as u64 * 3600);
            }
            bc.acl = plan.enforce_access_rules.then(|| acl.clone());
            if let Some(s) = plan.mq_settings {
                bc.retention = Duration::from_secs(u64::from(s.retention_hours) * 3600);
                bc.max_message_size = usize::try_from(s.max_message_bytes).unwrap_or(usize::MAX);
                bc.auto_create_topics = s.auto_create_topics;
                bc.auto_create_groups = s.auto_create_groups;
            }
            brokers.push(bc);
        }
        let cluster = RocketmqCluster::start(RocketmqConfig {
            namesrv_listen: namesrv,
            brokers,
        })
        .await
        .map_err(|e| match e {
            rocketmq::ClusterError::Listen { addr, source }
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                EngineError::AddressInUse(addr)
            }
            other => EngineError::Start(other.to_string()),
        })?;
        tracing::debug!(instance = %plan.instance_id, namesrv = %cluster.namesrv_addr(), brokers = ?cluster.broker_addrs(), "rocketmq cluster listening");
        let brokers: Vec<Arc<RmqBroker>> = cluster.brokers().cloned().collect();
        let admin = Arc::new(RocketmqAdmin {
            brokers,
            acl: Mutex::new(AclState {
                config: acl,
                enabled: plan.enforce_access_rules,
            }),
            acl_path,
            acl_writes: tokio::sync::Mutex::new(()),
        });
        Ok(Box::new(RocketmqInstance { cluster, admin }))
    }
}

async fn read_acl(path: &Path) -> Result<AclConfig, EngineError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Storage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AclConfig::default()),
        Err(e) => Err(EngineError::Storage(format!("{}: {e}", path.display()))),
    }
}

struct RocketmqInstance {
    cluster: RocketmqCluster,
    admin: Arc<RocketmqAdmin>,
}

#[async_trait]
impl Broker for RocketmqInstance {
    fn admin(&self) -> Arc<dyn BrokerAdmin> {
        self.admin.clone()
    }

    async fn stop(self: Box<Self>) {
        self.cluster.stop().await;
    }
}

struct AclState {
    config: AclConfig,
    enabled: bool,
}

struct RocketmqAdmin {
    brokers: Vec<Arc<RmqBroker>>,
    acl: Mutex<AclState>,
    acl_path: PathBuf,
    /// One write of the ACL file at a time, in order.
    acl_writes: tokio::sync::Mutex<()>,
}

/// Topics the APIs do not list (they are still shown and queried by name): Apache's system
/// topics, retry and dead-letter topics, and the topics named after the cluster and its
/// brokers.
fn is_internal_topic(name: &str) -> bool {
    name == system::AUTO_CREATE
        || name == system::SCHEDULE
        || name == system::BENCHMARK
        || name == system::SELF_TEST
        || name == system::OFFSET_MOVED_EVENT
        || name == system::TRANS_CHECK_MAX_TIME
        || name == CLUSTER
        || name.starts_with("broker-")
        || name.starts_with("RMQ_SYS_")
        || name.starts_with("rmq_sys_")
        || name.starts_with(system::RETRY_PREFIX)
        || name.starts_with(system::DLQ_PREFIX)
}

fn permission_of(p: i32) -> TopicPermission {
    match (perm::readable(p), perm::writable(p)) {
        (true, true) => TopicPermission::All,
        (true, false) => TopicPermission::Sub,
        (false, true) => TopicPermission::Pub,
        (false, false) => TopicPermission::Deny,
    }
}

fn perm_bits(p: TopicPermission) -> i32 {
    match p {
        TopicPermission::All => perm::READ | perm::WRITE,
        TopicPermission::Sub => perm::READ,
        TopicPermission::Pub => perm::WRITE,
        TopicPermission::Deny => 0,
    }
}

/// A stored message (offsets filled) as the APIs show it.
fn to_message(bytes: &[u8]) -> Option<MqMessage> {
    let (m, queue_offset, physical) = StoredMessage::decode(bytes).ok()?;
    Some(MqMessage {
        msg_id: offset_message_id(m.store_host, physical),
        topic: m.topic,
        store_ms: m.store_timestamp,
        born_ms: m.born_timestamp,
        reconsume_times: m.reconsume_times,
        body_crc: rocketmq::message::body_crc(&m.body),
        body: m.body.to_vec(),
        store_size: bytes.len(),
        properties: m
            .properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        born_host: m.born_host,
        store_host: m.store_host,
        queue_id: m.queue_id,
        queue_offset,
    })
}

fn account_of(u: &AclUser) -> Account {
    let entries = |perms: &[ResourcePerm]| -> Vec<String> {
        perms
            .iter()
            .map(|p| format!("{}={}", p.name, p.perm))
            .collect()
    };
    Account {
        access_key: u.access_key.clone(),
        secret_key: u.secret_key.clone(),
        white_remote_address: Some(u.white_remote_address.clone()).filter(|w| !w.is_empty()),
        admin: u.admin,
        default_topic_perm: Some(u.default_topic_perm.clone()).filter(|p| !p.is_empty()),
        default_group_perm: Some(u.default_group_perm.clone()).filter(|p| !p.is_empty()),
        topic_perms: entries(&u.topic_perms),
        group_perms: entries(&u.group_perms),
    }
}

fn user_of(a: &Account) -> AclUser {
    let perms = |entries: &[String]| -> Vec<ResourcePerm> {
        entries
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(name, perm)| ResourcePerm {
                name: name.to_string(),
                perm: perm.to_string(),
            })
            .collect()
    };
    AclUser {
        access_key: a.access_key.clone(),
        secret_key: a.secret_key.clone(),
        white_remote_address: a.white_remote_address.clone().unwrap_or_default(),
        admin: a.admin,
        default_topic_perm: a.default_topic_perm.clone().unwrap_or_default(),
        default_group_perm: a.default_group_perm.clone().unwrap_or_default(),
        topic_perms: perms(&a.topic_perms),
        group_perms: perms(&a.group_perms),
    }
}

impl RocketmqAdmin {
    fn broker(&self, name: &str) -> Result<&Arc<RmqBroker>, EngineError> {
        self.brokers
            .iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| EngineError::NotFound(format!("broker {name}")))
    }

    /// The brokers that have a topic.
    fn brokers_with_topic(&self, topic: &str) -> Vec<&Arc<RmqBroker>> {
        self.brokers
            .iter()
            .filter(|b| b.topic_config(topic).is_some())
            .collect()
    }

    fn topic_of(&self, name: &str) -> Option<MqTopic> {
        let mut permission = None;
        let mut brokers = Vec::new();
        for b in &self.brokers {
            if let Some(t) = b.topic_config(name) {
                permission.get_or_insert(permission_of(t.perm));
                brokers.push(BrokerQueues {
                    broker: b.name().to_string(),
                    read_queues: t.read_queue_nums,
                    write_queues: t.write_queue_nums,
                });
            }
        }
        Some(MqTopic {
            name: name.to_string(),
            permission: permission?,
            brokers,
        })
    }

    /// Applies the ACL state to every broker and writes the users to the instance's file.
    async fn save_acl(&self) -> Result<(), EngineError> {
        let _write = self.acl_writes.lock().await;
        let (config, enabled) = {
            let s = self.acl.lock();
            (s.config.clone(), s.enabled)
        };
        let bytes =
            serde_json::to_vec_pretty(&config).map_err(|e| EngineError::Storage(e.to_string()))?;
        let path = self.acl_path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(EngineError::task)?
            .map_err(|e| EngineError::Storage(format!("{}: {e}", self.acl_path.display())))?;
        for b in &self.brokers {
            b.set_acl(enabled.then(|| config.clone()));
        }
        Ok(())
    }

    /// The message an offset message id names, on whichever broker stored it.
    async fn message_by_offset_id(&self, id: &str) -> Option<MqMessage> {
        let (addr, physical) = parse_offset_message_id(id)?;
        for b in &self.brokers {
            if b.store_host() == addr {
                let bytes = b.message_by_offset(physical).await?;
                return to_message(&bytes);
            }
        }
        None
    }

    /// Messages whose unique key is `key`, in one topic or every user topic.
    async fn messages_by_unique_key(&self, topic: Option<&str>, key: &str) -> Vec<MqMessage> {
        let mut out = Vec::new();
        for b in &self.brokers {
            let topics: Vec<String> = match topic {
                Some(t) => vec![t.to_string()],
                None => b
                    .topic_configs()
                    .into_iter()
                    .map(|t| t.topic_name)
                    .filter(|t| !is_internal_topic(t) || t.starts_with(system::DLQ_PREFIX))
                    .collect(),
            };
            for t in topics {
                for bytes in b.messages_by_key(&t, key, true, QUERY_MAX).await {
                    out.extend(to_message(&bytes));
                }
            }
        }
        out
    }

    /// A broker and queue for a message to `topic`, spreading sends over the queues.
    fn place(&self, topic: &str) -> Result<(&Arc<RmqBroker>, i32), EngineError> {
        let writable: Vec<(&Arc<RmqBroker>, i32)> = self
            .brokers
            .iter()
            .filter_map(|b| {
                b.topic_config(topic)
                    .filter(|t| perm::writable(t.perm) && t.write_queue_nums > 0)
                    .map(|t| (b, t.write_queue_nums))
            })
            .collect();
        if writable.is_empty() {
            return Err(EngineError::NotFound(format!("topic {topic}")));
        }
        let total: i32 = writable.iter().map(|(_, n)| n).sum();
        let mut pick = (rand::random::<u32>() % total.max(1) as u32) as i32;
        for (b, n) in writable {
            if pick < n {
                return Ok((b, pick));
            }
            pick -= n;
        }
        Err(EngineError::NotFound(format!("topic {topic}")))
    }

    async fn publish(
        &self,
        topic: &str,
        body: Vec<u8>,
        mut properties: Properties,
    ) -> Result<SentMessage, EngineError> {
        let (broker, queue_id) = self.place(topic)?;
        if properties.get(prop::UNIQ_KEY).is_none() {
            properties.set(prop::UNIQ_KEY, broker.new_unique_key());
        }
        let now = now_ms();
        let message = StoredMessage {
            topic: topic.to_string(),
            queue_id,
            flag: 0,
            sys_flag: 0,
            born_timestamp: now,
            born_host: broker.store_host(),
            store_timestamp: now,
            store_host: broker.store_host(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: body.into(),
            properties,
        };
        let placed = broker
            .put_message(message)
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))?;
        Ok(SentMessage {
            msg_id: offset_message_id(broker.store_host(), placed.physical_offset),
            broker: broker.name().to_string(),
            queue_id,
            queue_offset: placed.queue_offset,
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Properties a message carries only inside the broker (retries, delays, transactions),
/// dropped when a dead letter is published again.
const INTERNAL_PROPERTIES: [&str; 11] = [
    prop::DELAY,
    prop::RETRY_TOPIC,
    prop::REAL_TOPIC,
    prop::REAL_QID,
    prop::ORIGIN_MESSAGE_ID,
    prop::RECONSUME_TIME,
    prop::MAX_RECONSUME_TIMES,
    prop::TRANSACTION_PREPARED,
    prop::PRODUCER_GROUP,
    prop::CLUSTER,
    prop::FIRST_REAL_TOPIC,
];

#[async_trait]
impl BrokerAdmin for RocketmqAdmin {
    fn kind(&self) -> EngineKind {
        EngineKind::Rocketmq
    }

    fn usage(&self) -> Usage {
        let mut u = Usage::default();
        for b in &self.brokers {
            let (used, bytes_in, bytes_out) = b.usage();
            u.used_bytes += used;
            u.bytes_in += bytes_in;
            u.bytes_out += bytes_out;
        }
        u
    }

    fn traffic_by_resource(&self) -> std::collections::HashMap<String, (u64, u64)> {
        let mut out: std::collections::HashMap<String, (u64, u64)> = Default::default();
        for b in &self.brokers {
            for (topic, (i, o)) in b.traffic_by_topic() {
                let e = out.entry(topic).or_default();
                e.0 += i;
                e.1 += o;
            }
        }
        out
    }

    fn apply_limits(&self, limits: &Limits) {
        let share = limits
            .storage_bytes
            .map(|b| b / self.brokers.len().max(1) as u64);
        for b in &self.brokers {
            b.set_quota_bytes(share);
        }
    }

    fn set_allowed_networks(&self, networks: Option<Vec<String>>) -> Result<(), EngineError> {
        match networks {
            None => Ok(()),
            Some(_) => Err(self.unsupported("allowed client networks")),
        }
    }

    fn broker_names(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.brokers.iter().map(|b| b.name().to_string()).collect())
    }

    fn mq_topics(&self, internal: bool) -> Result<Vec<MqTopic>, EngineError> {
        let names: BTreeSet<String> = self
            .brokers
            .iter()
            .flat_map(|b| b.topic_configs())
            .map(|t| t.topic_name)
            .filter(|n| internal || !is_internal_topic(n))
            .collect();
        Ok(names.iter().filter_map(|n| self.topic_of(n)).collect())
    }

    async fn put_mq_topic(&self, topic: NewMqTopic) -> Result<MqTopic, EngineError> {
        let targets: Vec<&Arc<RmqBroker>> = if topic.brokers.is_empty() {
            let having = self.brokers_with_topic(&topic.name);
            if having.is_empty() {
                self.brokers.iter().collect()
            } else {
                having
            }
        } else {
            topic
                .brokers
                .iter()
                .map(|n| self.broker(n))
                .collect::<Result<_, _>>()?
        };
        for b in targets {
            let mut config = b.topic_config(&topic.name).unwrap_or_else(|| {
                rocketmq::broker::TopicConfig::new(&topic.name, topic.write_queues, 0)
            });
            config.read_queue_nums = topic.read_queues;
            config.write_queue_nums = topic.write_queues;
            config.perm = perm_bits(topic.permission);
            b.put_topic_config(config).await.map_err(|e| match e {
                rocketmq::broker::ManageError::NotCreated => EngineError::Storage(e.to_string()),
                other => EngineError::Refused(other.to_string()),
            })?;
        }
        self.topic_of(&topic.name)
            .ok_or_else(|| EngineError::Storage(format!("topic {} was not created", topic.name)))
    }

    async fn delete_mq_topic(&self, name: &str) -> Result<bool, EngineError> {
        let mut found = false;
        for b in &self.brokers {
            found |= b.remove_topic(name).await;
        }
        Ok(found)
    }

    fn mq_queue_offsets(&self, topic: &str) -> Result<Option<Vec<MqQueueOffsets>>, EngineError> {
        let mut out = Vec::new();
        let mut found = false;
        for b in &self.brokers {
            if let Some(stats) = b.queue_stats(topic) {
                found = true;
                out.extend(stats.into_iter().map(|q| MqQueueOffsets {
                    broker: b.name().to_string(),
                    queue_id: q.queue_id,
                    min_offset: q.min_offset,
                    max_offset: q.max_offset,
                    last_message_ms: q.last_store_ms,
                }));
            }
        }
        Ok(found.then_some(out))
    }

    fn subscription_groups(&self) -> Result<Vec<SubscriptionGroup>, EngineError> {
        let mut by_name: BTreeMap<String, SubscriptionGroup> = BTreeMap::new();
        for b in &self.brokers {
            for g in b.group_configs() {
                if SYSTEM_GROUPS.contains(&g.group_name.as_str()) {
                    continue;
                }
                by_name
                    .entry(g.group_name.clone())
                    .or_insert_with(|| SubscriptionGroup {
                        name: g.group_name.clone(),
                        consume_enable: g.consume_enable,
                        broadcast: g.consume_broadcast_enable,
                        retry_max_times: g.retry_max_times,
                        consume_from_min: g.consume_from_min_enable,
                        brokers: Vec::new(),
                    })
                    .brokers
                    .push(b.name().to_string());
            }
        }
        Ok(by_name.into_values().collect())
    }

    async fn put_subscription_group(&self, group: SubscriptionGroup) -> Result<(), EngineError> {
        let targets: Vec<&Arc<RmqBroker>> = if group.brokers.is_empty() {
            self.brokers.iter().collect()
        } else {
            group
                .brokers
                .iter()
                .map(|n| self.broker(n))
                .collect::<Result<_, _>>()?
        };
        for b in targets {
            let mut config = b
                .group_config(&group.name)
                .unwrap_or_else(|| rocketmq::broker::GroupConfig::new(&group.name));
            config.consume_enable = group.consume_enable;
            config.consume_broadcast_enable = group.broadcast;
            config.retry_max_times = group.retry_max_times;
            config.consume_from_min_enable = group.consume_from_min;
            b.put_group_config(config)
                .await
                .map_err(|e| EngineError::Refused(e.to_string()))?;
        }
        Ok(())
    }

    async fn delete_subscription_group(&self, name: &str) -> Result<bool, EngineError> {
        let mut found = false;
        for b in &self.brokers {
            found |= b.remove_group(name).await;
        }
        Ok(found)
    }

    fn group_topics(&self, group: &str) -> Result<Vec<String>, EngineError> {
        let topics: BTreeSet<String> = self
            .brokers
            .iter()
            .flat_map(|b| b.topics_of_group(group))
            .collect();
        Ok(topics.into_iter().collect())
    }

    fn topic_groups(&self, topic: &str) -> Result<Vec<String>, EngineError> {
        let groups: BTreeSet<String> = self
            .brokers
            .iter()
            .flat_map(|b| b.groups_of_topic(topic))
            .filter(|g| !SYSTEM_GROUPS.contains(&g.as_str()))
            .collect();
        Ok(groups.into_iter().collect())
    }

    async fn mq_group_lag(&self, group: &str, topic: &str) -> Result<Vec<MqQueueLag>, EngineError> {
        let mut out = Vec::new();
        let mut found = false;
        for b in &self.brokers {
            if let Some(lag) = b.consume_lag(group, topic).await {
                found = true;
                out.extend(lag.into_iter().map(|q| MqQueueLag {
                    broker: b.name().to_string(),
                    queue_id: q.queue_id,
                    broker_offset: q.broker_offset,
                    consumer_offset: q.consumer_offset,
                    last_message_ms: q.last_consumed_ms,
                }));
            }
        }
        if !found {
            return Err(EngineError::NotFound(format!("topic {topic}")));
        }
        Ok(out)
    }

    fn group_clients(&self, group: &str) -> Result<Vec<MqClient>, EngineError> {
        let mut by_id: BTreeMap<String, MqClient> = BTreeMap::new();
        for b in &self.brokers {
            for c in b.online_consumers(group) {
                by_id.entry(c.client_id.clone()).or_insert(MqClient {
                    client_id: c.client_id,
                    client_addr: c.addr,
                    language: c.language,
                    version: c.version,
                    message_model: c.message_model,
                    consume_type: c.consume_type,
                    subscriptions: c.subscriptions,
                });
            }
        }
        Ok(by_id.into_values().collect())
    }

    async fn reset_group_offsets(
        &self,
        group: &str,
        topic: &str,
        timestamp_ms: i64,
    ) -> Result<Vec<MqQueueOffset>, EngineError> {
        let mut out = Vec::new();
        let mut found = false;
        for b in &self.brokers {
            if let Some(table) = b.reset_offsets_to_time(topic, group, timestamp_ms).await {
                found = true;
                out.extend(table.into_iter().map(|(q, o)| MqQueueOffset {
                    broker: b.name().to_string(),
                    queue_id: q,
                    offset: o,
                }));
            }
        }
        if !found {
            return Err(EngineError::NotFound(format!("topic {topic}")));
        }
        Ok(out)
    }

    async fn messages_between(
        &self,
        topic: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<MqMessage>, EngineError> {
        let mut out = Vec::new();
        for b in self.brokers_with_topic(topic) {
            let want = max.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            for bytes in b.messages_between(topic, begin_ms, end_ms, want).await {
                out.extend(to_message(&bytes));
            }
        }
        Ok(out)
    }

    async fn messages_by_id(
        &self,
        topic: Option<&str>,
        id: &str,
    ) -> Result<Vec<MqMessage>, EngineError> {
        if let Some(m) = self.message_by_offset_id(id).await {
            return Ok(if topic.is_none_or(|t| t == m.topic) {
                vec![m]
            } else {
                Vec::new()
            });
        }
        Ok(self.messages_by_unique_key(topic, id).await)
    }

    async fn send_message(&self, message: OutgoingMessage) -> Result<SentMessage, EngineError> {
        let mut properties = Properties::default();
        for (k, v) in &message.properties {
            properties.set(k, v.clone());
        }
        self.publish(&message.topic, message.body, properties).await
    }

    async fn resend_dead_letter(
        &self,
        dlq_topic: &str,
        id: &str,
    ) -> Result<SentMessage, EngineError> {
        let found = self.messages_by_id(Some(dlq_topic), id).await?;
        let Some(m) = found.into_iter().next() else {
            return Err(EngineError::NotFound(format!(
                "message {id} in {dlq_topic}"
            )));
        };
        let Some(original) = m
            .property(prop::RETRY_TOPIC)
            .map(str::to_string)
            .filter(|t| !t.is_empty())
        else {
            return Err(EngineError::Refused(format!(
                "message {id} does not name the topic it was first sent to"
            )));
        };
        let mut properties = Properties::default();
        for (k, v) in &m.properties {
            if !INTERNAL_PROPERTIES.contains(&k.as_str()) {
                properties.set(k, v.clone());
            }
        }
        let sent = self.publish(&original, m.body, properties).await?;
        tracing::info!(dlq = dlq_topic, id, topic = %original, "dead letter published again");
        Ok(sent)
    }

    async fn consume_directly(
        &self,
        group: &str,
        client_id: &str,
        id: &str,
    ) -> Result<DirectConsumeResult, EngineError> {
        let (addr, physical) = match parse_offset_message_id(id) {
            Some(x) => x,
            None => {
                let m = self
                    .messages_by_unique_key(None, id)
                    .await
                    .into_iter()
                    .next()
                    .ok_or_else(|| EngineError::NotFound(format!("message {id}")))?;
                parse_offset_message_id(&m.msg_id)
                    .ok_or_else(|| EngineError::NotFound(format!("message {id}")))?
            }
        };
        let broker = self
            .brokers
            .iter()
            .find(|b| b.store_host() == addr)
            .ok_or_else(|| EngineError::NotFound(format!("message {id}")))?;
        if broker.online_consumers(group).is_empty() {
            return Err(EngineError::NotRunning(format!("consumer group {group}")));
        }
        let r = broker
            .consume_directly(group, client_id, physical)
            .await
            .map_err(|e| {
                if e.remark.contains("not online") {
                    EngineError::NotFound(format!("client {client_id} of group {group}"))
                } else {
                    EngineError::Refused(e.remark)
                }
            })?;
        Ok(DirectConsumeResult {
            result: r.consume_result,
            remark: r.remark,
            spent_ms: r.spent_ms,
        })
    }

    async fn message_trace(&self, id: &str) -> Result<Vec<MqTraceRecord>, EngineError> {
        // Trace messages are keyed by the traced message's unique key.
        let key = match self.message_by_offset_id(id).await {
            Some(m) => m.property(prop::UNIQ_KEY).unwrap_or(id).to_string(),
            None => id.to_string(),
        };
        let mut out = Vec::new();
        for b in &self.brokers {
            for bytes in b
                .messages_by_key(system::TRACE, &key, false, QUERY_MAX)
                .await
            {
                let Some(m) = to_message(&bytes) else {
                    continue;
                };
                let body = String::from_utf8_lossy(&m.body);
                for r in rocketmq::trace::decode(&body) {
                    if r.msg_id != key && r.offset_msg_id != id {
                        continue;
                    }
                    out.push(MqTraceRecord {
                        trace_type: r.trace_type,
                        timestamp: r.timestamp,
                        group_name: r.group_name,
                        request_id: r.request_id,
                        topic: r.topic,
                        msg_id: r.msg_id,
                        offset_msg_id: r.offset_msg_id,
                        tags: r.tags,
                        keys: r.keys,
                        store_host: r.store_host,
                        client_host: m.born_host.ip().to_string(),
                        body_length: r.body_length,
                        cost_time: r.cost_time,
                        msg_type: r.msg_type,
                        success: r.success,
                        retry_times: r.retry_times,
                        consume_status: r.context_code,
                        transaction_id: r.transaction_id,
                        transaction_state: r.transaction_state,
                        from_transaction_check: r.from_transaction_check,
                    });
                }
            }
        }
        out.sort_by_key(|r| r.timestamp);
        Ok(out)
    }

    fn acl_users(&self) -> Result<Vec<AclUser>, EngineError> {
        Ok(self
            .acl
            .lock()
            .config
            .accounts
            .iter()
            .map(user_of)
            .collect())
    }

    async fn put_acl_user(&self, user: AclUser) -> Result<(), EngineError> {
        let account = account_of(&user);
        rocketmq::acl::check_account(&account).map_err(EngineError::Refused)?;
        {
            let mut s = self.acl.lock();
            match s
                .config
                .accounts
                .iter_mut()
                .find(|a| a.access_key == account.access_key)
            {
                Some(a) => *a = account,
                None => s.config.accounts.push(account),
            }
        }
        self.save_acl().await?;
        tracing::info!(user = %user.access_key, "acl user saved");
        Ok(())
    }

    async fn delete_acl_user(&self, access_key: &str) -> Result<bool, EngineError> {
        let removed = {
            let mut s = self.acl.lock();
            let before = s.config.accounts.len();
            s.config.accounts.retain(|a| a.access_key != access_key);
            before != s.config.accounts.len()
        };
        if removed {
            self.save_acl().await?;
            tracing::info!(user = access_key, "acl user deleted");
        }
        Ok(removed)
    }

    async fn set_acl_enabled(&self, enabled: bool) -> Result<(), EngineError> {
        self.acl.lock().enabled = enabled;
        self.save_acl().await
    }

    fn mq_settings(&self) -> Result<MqSettings, EngineError> {
        let b = self
            .brokers
            .first()
            .ok_or_else(|| EngineError::Storage("the instance has no broker".into()))?;
        let s = b.settings();
        Ok(MqSettings {
            retention_hours: u32::try_from(s.retention.as_secs() / 3600).unwrap_or(u32::MAX),
            max_message_bytes: s.max_message_size as u64,
            auto_create_topics: s.auto_create_topics,
            auto_create_groups: s.auto_create_groups,
        })
    }

    async fn apply_mq_settings(&self, settings: MqSettings) -> Result<(), EngineError> {
        for b in &self.brokers {
            b.apply_settings(BrokerSettings {
                retention: Duration::from_secs(u64::from(settings.retention_hours) * 3600),
                max_message_size: usize::try_from(settings.max_message_bytes).unwrap_or(usize::MAX),
                auto_create_topics: settings.auto_create_topics,
                auto_create_groups: settings.auto_create_groups,
            })
            .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DiskFullPolicy, Limits};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    fn plan(dir: &Path, namesrv: u16, brokers: &[u16], acl: bool) -> InstancePlan {
        InstancePlan {
            instance_id: "i-rmq".into(),
            engine: EngineKind::Rocketmq,
            data_dir: dir.to_path_buf(),
            listeners: brokers
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
            management_listener: None,
            namesrv_listener: Some(SocketAddr::from(([127, 0, 0, 1], namesrv))),
            advertised_host: None,
            limits: Limits {
                storage_bytes: Some(1 << 30),
                when_full: DiskFullPolicy::RejectWrites,
                max_partitions: None,
            },
            auto_create_topics: true,
            require_auth: false,
            enforce_access_rules: acl,
            admin_users: Vec::new(),
            allowed_networks: None,
            declared_groups: Vec::new(),
            retention_hours: 72,
            plugins: None,
            mq_settings: None,
        }
    }

    fn user(name: &str, perm: &str) -> AclUser {
        AclUser {
            access_key: name.into(),
            secret_key: "Secret_123".into(),
            white_remote_address: String::new(),
            admin: false,
            default_topic_perm: "DENY".into(),
            default_group_perm: "DENY".into(),
            topic_perms: vec![ResourcePerm {
                name: "orders".into(),
                perm: perm.into(),
            }],
            group_perms: Vec::new(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn brokers_hold_topics_groups_messages_and_acl_users_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (ns, b0, b1) = (free_port(), free_port(), free_port());
        let engine = RocketmqEngine;
        engine.provision(dir.path(), None).await.unwrap();
        let running = engine
            .start(&plan(dir.path(), ns, &[b0, b1], true))
            .await
            .unwrap();
        let admin = running.admin();
        assert_eq!(admin.broker_names().unwrap(), vec!["broker-0", "broker-1"]);
        let t = admin
            .put_mq_topic(NewMqTopic {
                name: "orders".into(),
                brokers: Vec::new(),
                read_queues: 3,
                write_queues: 3,
                permission: TopicPermission::All,
            })
            .await
            .unwrap();
        assert_eq!((t.read_queues(), t.write_queues()), (6, 6));
        assert!(matches!(
            admin
                .put_mq_topic(NewMqTopic {
                    name: "x".into(),
                    brokers: vec!["broker-9".into()],
                    read_queues: 1,
                    write_queues: 1,
                    permission: TopicPermission::All,
                })
                .await,
            Err(EngineError::NotFound(_))
        ));
        let topics: Vec<String> = admin
            .mq_topics(false)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(topics, vec!["orders"], "system topics are not listed");
        let sent = admin
            .send_message(OutgoingMessage {
                topic: "orders".into(),
                body: b"hello".to_vec(),
                properties: vec![("KEYS".into(), "k1".into())],
            })
            .await
            .unwrap();
        let found = admin.messages_by_id(None, &sent.msg_id).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].body, b"hello");
        let unique = found[0].property("UNIQ_KEY").unwrap().to_string();
        let by_key = admin.messages_by_id(Some("orders"), &unique).await.unwrap();
        assert_eq!(by_key[0].msg_id, sent.msg_id);
        let offsets = admin.mq_queue_offsets("orders").unwrap().unwrap();
        assert_eq!(offsets.len(), 6);
        assert_eq!(offsets.iter().map(|q| q.max_offset).sum::<i64>(), 1);
        assert!(admin.mq_queue_offsets("nothing").unwrap().is_none());

        admin
            .put_subscription_group(SubscriptionGroup {
                name: "billing".into(),
                consume_enable: true,
                broadcast: false,
                retry_max_times: 3,
                consume_from_min: true,
                brokers: vec!["broker-1".into()],
            })
            .await
            .unwrap();
        let groups = admin.subscription_groups().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].brokers, vec!["broker-1"]);
        let reset = admin
            .reset_group_offsets("billing", "orders", 0)
            .await
            .unwrap();
        assert_eq!(
            reset.len(),
            6,
            "an offline group's offsets are written directly"
        );

        admin.put_acl_user(user("app_user1", "PUB")).await.unwrap();
        assert!(matches!(
            admin.put_acl_user(user("bad", "PUB")).await,
            Err(EngineError::Refused(_))
        ));
        running.stop().await;

        // Everything is the brokers' own data: back after a restart.
        let running = engine
            .start(&plan(dir.path(), ns, &[b0, b1], true))
            .await
            .unwrap();
        let admin = running.admin();
        assert_eq!(admin.mq_topics(false).unwrap()[0].name, "orders");
        assert_eq!(admin.subscription_groups().unwrap()[0].retry_max_times, 3);
        let users = admin.acl_users().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].topic_perms[0].perm, "PUB");
        assert_eq!(
            admin.messages_by_id(None, &sent.msg_id).await.unwrap()[0].body,
            b"hello"
        );
        assert!(admin.delete_acl_user("app_user1").await.unwrap());
        assert!(!admin.delete_acl_user("app_user1").await.unwrap());
        assert!(admin.delete_mq_topic("orders").await.unwrap());
        assert!(admin.mq_topics(false).unwrap().is_empty());
        running.stop().await;

        // A name server address held by another process is AddressInUse.
        let holder = std::net::TcpListener::bind(("127.0.0.1", ns)).unwrap();
        assert!(matches!(
            engine.start(&plan(dir.path(), ns, &[b0, b1], false)).await,
            Err(EngineError::AddressInUse(_))
        ));
        drop(holder);
    }
}
