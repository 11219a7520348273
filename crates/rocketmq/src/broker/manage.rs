//! Typed administration of a running broker for in-process callers (the control plane's
//! RocketMQ engine): what `mqadmin` reaches through admin request codes, without a
//! connection. Changes go through the same tables, stores and client channels as the
//! requests, so clients and the APIs see one state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use super::send::{Placed, PutError};
use super::topics::{check_topic_name, system, GroupConfig, TopicConfig};
use super::{Broker, OnlineError, QueueStore};
use crate::acl::AclConfig;
use crate::message::{stored_timestamp, StoredMessage};
use crate::remoting::codes;

/// Offsets of one queue of a topic and when it was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStat {
    pub queue_id: i32,
    pub min_offset: i64,
    pub max_offset: i64,
    /// Store time of the newest message; 0 when the queue is empty.
    pub last_store_ms: i64,
}

/// Where a consumer group stands in one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueLag {
    pub queue_id: i32,
    pub broker_offset: i64,
    pub consumer_offset: i64,
    /// Store time of the last message the group consumed; 0 when none.
    pub last_consumed_ms: i64,
}

/// One online client of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlineClient {
    pub client_id: String,
    pub addr: SocketAddr,
    pub language: String,
    pub version: i32,
    pub message_model: String,
    pub consume_type: String,
    pub subscriptions: Vec<(String, String)>,
}

/// A client's `ConsumeMessageDirectlyResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectResult {
    /// `CR_SUCCESS`, `CR_LATER`, `CR_THROW_EXCEPTION`, ...
    pub consume_result: String,
    pub remark: String,
    pub spent_ms: i64,
}

/// Why a management call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManageError {
    #[error("{0}")]
    InvalidName(String),
    #[error("the topic {0} is a system topic")]
    SystemTopic(String),
    #[error("queue numbers must be between 1 and 2048")]
    QueueCount,
    #[error("the topic could not be created")]
    NotCreated,
}

impl Broker {
    /// Every topic of the broker, system topics included, by name.
    pub fn topic_configs(&self) -> Vec<TopicConfig> {
        self.tables.all_topics()
    }

    pub fn topic_config(&self, name: &str) -> Option<TopicConfig> {
        self.tables.topic(name)
    }

    /// Creates or changes a user topic (its serial is the broker's to keep).
    pub async fn put_topic_config(
        self: &Arc<Self>,
        config: TopicConfig,
    ) -> Result<TopicConfig, ManageError> {
        check_topic_name(&config.topic_name).map_err(|r| ManageError::InvalidName(r.into()))?;
        if self.is_system_topic(&config.topic_name) {
            return Err(ManageError::SystemTopic(config.topic_name));
        }
        if !(1..=2048).contains(&config.read_queue_nums)
            || !(1..=2048).contains(&config.write_queue_nums)
        {
            return Err(ManageError::QueueCount);
        }
        self.create_topic(config)
            .await
            .ok_or(ManageError::NotCreated)
    }

    /// Deletes a topic with its messages and offsets; false if there was none.
    pub async fn remove_topic(self: &Arc<Self>, name: &str) -> bool {
        let Some(t) = self.tables.remove_topic(name) else {
            return false;
        };
        self.offsets.remove_topic(name);
        let b = self.clone();
        let _ = tokio::task::spawn_blocking(move || b.store.remove_topic(t.serial)).await;
        self.tables_changed().await;
        tracing::info!(topic = name, "topic deleted");
        true
    }

    pub fn group_configs(&self) -> Vec<GroupConfig> {
        self.tables.all_groups()
    }

    pub fn group_config(&self, name: &str) -> Option<GroupConfig> {
        self.tables.group(name)
    }

    pub async fn put_group_config(&self, config: GroupConfig) -> Result<(), ManageError> {
        check_topic_name(&config.group_name)
            .map_err(|r| ManageError::InvalidName(r.replace("topic", "group")))?;
        tracing::info!(group = %config.group_name, "subscription group created or updated");
        self.tables.put_group(config);
        self.tables_changed().await;
        Ok(())
    }

    /// Deletes a group and its committed offsets; false if there was none.
    pub async fn remove_group(&self, name: &str) -> bool {
        if self.tables.remove_group(name).is_none() {
            return false;
        }
        self.offsets.remove_group(name);
        self.tables_changed().await;
        tracing::info!(group = name, "subscription group deleted");
        true
    }

    /// Offsets of each queue of a topic; `None` if the broker does not have it.
    pub fn queue_stats(&self, topic: &str) -> Option<Vec<QueueStat>> {
        let t = self.tables.topic(topic)?;
        Some(
            (0..t.queue_count())
                .map(|q| match self.store.queue(t.serial, q) {
                    Some(queue) => QueueStat {
                        queue_id: q,
                        min_offset: queue.min_offset(),
                        max_offset: queue.max_offset(),
                        last_store_ms: queue.log.last_append_ms(),
                    },
                    None => QueueStat {
                        queue_id: q,
                        min_offset: 0,
                        max_offset: 0,
                        last_store_ms: 0,
                    },
                })
                .collect(),
        )
    }

    /// Where a group stands in each queue of a topic; `None` if the broker lacks the topic.
    pub async fn consume_lag(self: &Arc<Self>, group: &str, topic: &str) -> Option<Vec<QueueLag>> {
        let t = self.tables.topic(topic)?;
        let committed = self.offsets.of(group, topic);
        let mut out = Vec::new();
        for q in 0..t.queue_count() {
            let (_, max) = self.store.offsets(t.serial, q);
            let consumer = committed.get(&q).copied().unwrap_or(0);
            let last_consumed_ms = match self.store.queue(t.serial, q) {
                Some(queue) if consumer > queue.min_offset() => {
                    let at = consumer - 1;
                    tokio::task::spawn_blocking(move || QueueStore::read_one(&queue, at))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten()
                        .and_then(|m| stored_timestamp(&m.bytes))
                        .unwrap_or(0)
                }
                _ => 0,
            };
            out.push(QueueLag {
                queue_id: q,
                broker_offset: max,
                consumer_offset: consumer,
                last_consumed_ms,
            });
        }
        Some(out)
    }

    /// Topics a group has committed offsets on or that its online members subscribe to
    /// (its retry topic excluded).
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let mut topics: BTreeSet<String> =
            self.offsets.topics_of_group(group).into_iter().collect();
        if let Some(g) = self.clients.consumer_group(group) {
            topics.extend(g.subscriptions.keys().cloned());
        }
        topics.remove(&system::retry_topic(group));
        topics.into_iter().collect()
    }

    /// Groups that have committed offsets on a topic or whose online members subscribe to it.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for g in self.tables.all_groups() {
            if self
                .offsets
                .topics_of_group(&g.group_name)
                .iter()
                .any(|t| t == topic)
            {
                groups.insert(g.group_name);
            }
        }
        for name in self.clients.consumer_groups() {
            let subscribes = self
                .clients
                .consumer_group(&name)
                .is_some_and(|g| g.subscriptions.contains_key(topic));
            if subscribes
                || self
                    .offsets
                    .topics_of_group(&name)
                    .iter()
                    .any(|t| t == topic)
            {
                groups.insert(name);
            }
        }
        groups.into_iter().collect()
    }

    /// Groups with online members.
    pub fn online_groups(&self) -> Vec<String> {
        self.clients
            .consumer_groups()
            .into_iter()
            .filter(|g| {
                self.clients
                    .consumer_group(g)
                    .is_some_and(|c| !c.channels.is_empty())
            })
            .collect()
    }

    /// The online members of a group, one per connection.
    pub fn online_consumers(&self, group: &str) -> Vec<OnlineClient> {
        let Some(g) = self.clients.consumer_group(group) else {
            return Vec::new();
        };
        let subscriptions: Vec<(String, String)> = g
            .subscriptions
            .values()
            .map(|s| (s.topic.clone(), s.sub_string.clone()))
            .collect();
        g.channels
            .values()
            .map(|c| OnlineClient {
                client_id: c.client_id.clone(),
                addr: c.conn.peer,
                language: c.language.clone(),
                version: c.version,
                message_model: g.message_model.clone(),
                consume_type: g.consume_type.clone(),
                subscriptions: subscriptions.clone(),
            })
            .collect()
    }

    /// Stored messages (offsets filled) of a topic stored between `begin` and `end`
    /// (milliseconds, inclusive), queue by queue, at most `max`.
    pub async fn messages_between(
        self: &Arc<Self>,
        topic: &str,
        begin: i64,
        end: i64,
        max: usize,
    ) -> Vec<Vec<u8>> {
        self.walk_topic(topic, begin, end, max, |_| true).await
    }

    /// The stored message (offsets filled) an offset message id's physical offset names.
    pub async fn message_by_offset(self: &Arc<Self>, physical: i64) -> Option<Vec<u8>> {
        self.stored_bytes_at(physical).await
    }

    /// Stored messages (offsets filled) of a topic whose unique key (or, unless
    /// `unique_only`, one of whose keys) is `key`.
    pub async fn messages_by_key(
        self: &Arc<Self>,
        topic: &str,
        key: &str,
        unique_only: bool,
        max: usize,
    ) -> Vec<Vec<u8>> {
        self.find_by_key(topic, key, unique_only, 0, i64::MAX, max)
            .await
    }

    /// Appends one message as a producer's send would (delay levels honoured), creating
    /// its topic if it is a retry topic.
    pub async fn put_message(self: &Arc<Self>, message: StoredMessage) -> Result<Placed, PutError> {
        let limit = self.settings.read().max_message_size;
        if message.body.len() > limit {
            return Err(PutError::TooLarge {
                size: message.body.len(),
                limit,
            });
        }
        if message.topic.starts_with(system::RETRY_PREFIX) {
            self.ensure_topic(
                &message.topic,
                1,
                super::topics::perm::READ | super::topics::perm::WRITE,
            )
            .await;
        }
        let mut placed = self.put_messages(vec![message]).await?;
        placed.pop().ok_or(PutError::NoTopic(String::new()))
    }

    /// Moves a group's offsets on a topic to the first message stored at or after
    /// `timestamp` (-1: the end), forward or back. Online members are told
    /// (RESET_CONSUMER_CLIENT_OFFSET); without any, the committed offsets are rewritten, as
    /// Apache's admin tools fall back to (`resetOffsetByTimestampOld`). `None` without the
    /// topic.
    pub async fn reset_offsets_to_time(
        self: &Arc<Self>,
        topic: &str,
        group: &str,
        timestamp: i64,
    ) -> Option<BTreeMap<i32, i64>> {
        let t = self.tables.topic(topic)?;
        match self.reset_offset(topic, group, timestamp, true).await {
            Ok(table) => Some(table),
            Err(e) if e.code == codes::CONSUMER_NOT_ONLINE => {
                let table = self.offsets_at_time(&t, timestamp).await;
                for (q, o) in &table {
                    self.offsets.commit(group, topic, *q, *o);
                }
                tracing::info!(topic, group, timestamp, "offsets of an offline group reset");
                Some(table)
            }
            Err(_) => None,
        }
    }

    /// A new unique message key (`UNIQ_KEY`) in the Java client's 32-hex-digit form: the
    /// store address, this process, the time and a counter.
    pub fn new_unique_key(&self) -> String {
        static COUNTER: AtomicU16 = AtomicU16::new(0);
        let ip: [u8; 4] = match self.store_host().ip() {
            std::net::IpAddr::V4(ip) => ip.octets(),
            std::net::IpAddr::V6(ip) => ip.octets()[12..16].try_into().unwrap_or([0; 4]),
        };
        let pid = std::process::id() as u16;
        let seed: u32 = rand::random();
        let ms = super::now_ms() as u32;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:02X}{:02X}{:02X}{:02X}{pid:04X}{seed:08X}{ms:08X}{n:04X}",
            ip[0], ip[1], ip[2], ip[3]
        )
    }

    /// CONSUME_MESSAGE_DIRECTLY to one online client of a group with the message stored at
    /// `physical`; answers the client's `ConsumeMessageDirectlyResult`.
    pub async fn consume_directly(
        self: &Arc<Self>,
        group: &str,
        client_id: &str,
        physical: i64,
    ) -> Result<DirectResult, OnlineError> {
        let Some(bytes) = self.stored_bytes_at(physical).await else {
            return Err(OnlineError {
                code: codes::SYSTEM_ERROR,
                remark: format!("can not find message by the offset, {physical}"),
            });
        };
        let msg_id = crate::message::offset_message_id(self.store_host(), physical);
        let ext = crate::remoting::ExtFields::from([
            ("consumerGroup".into(), group.into()),
            ("clientId".into(), client_id.into()),
            ("msgId".into(), msg_id.into()),
            ("brokerName".into(), self.name().into()),
        ]);
        let answer = self
            .call_consumer(
                codes::CONSUME_MESSAGE_DIRECTLY,
                group,
                client_id,
                ext,
                bytes.into(),
            )
            .await?;
        if answer.code != codes::SUCCESS {
            return Err(OnlineError {
                code: answer.code,
                remark: answer.remark.unwrap_or_default(),
            });
        }
        let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        Ok(DirectResult {
            consume_result: v["consumeResult"].as_str().unwrap_or("").to_string(),
            remark: v["remark"].as_str().unwrap_or("").to_string(),
            spent_ms: v["spentTimeMills"].as_i64().unwrap_or(0),
        })
    }

    /// (bytes stored, body bytes put, body bytes got) since the broker started.
    pub fn usage(&self) -> (u64, u64, u64) {
        let (_, bytes_in, _, bytes_out) = self.stats.totals();
        (self.store.log().used_bytes(), bytes_in, bytes_out)
    }

    /// (body bytes put, body bytes got) per topic since the broker started.
    pub fn traffic_by_topic(&self) -> Vec<(String, (u64, u64))> {
        self.stats
            .by_topic()
            .into_iter()
            .map(|(t, (_, bytes_in, _, bytes_out))| (t, (bytes_in, bytes_out)))
            .collect()
    }

    /// Changes the storage quota; sends beyond it are refused from now on.
    pub fn set_quota_bytes(&self, quota: Option<u64>) {
        self.store
            .log()
            .set_quota(quota, msglog::QuotaPolicy::ProduceReject);
    }

    /// The plain ACL the broker enforces now; `None` when ACL is off.
    pub fn acl_config(&self) -> Option<AclConfig> {
        self.acl.read().as_ref().map(|a| a.config().clone())
    }
}
