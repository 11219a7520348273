//! A running Kafka instance: N brokers over one shared state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use msglog::{FlushPolicy, LogStore, Partition};
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::KafkaConfig;
use crate::group::GroupCoordinator;
use crate::meta::{InstanceMeta, MetaFile, TopicMeta};
use crate::security::{Authorizer, UserStore};
use crate::topics::{self, TopicError, TopicSummary};

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no listen address configured")]
    NoListeners,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("message log: {0}")]
    Log(#[from] msglog::LogError),
    #[error("consumer groups: {0}")]
    Groups(#[from] crate::group::GroupError),
    #[error("users and ACLs: {0}")]
    Security(#[from] crate::security::SecurityError),
    #[error("topics: {0}")]
    Topic(#[from] TopicError),
}

/// Where one broker listens and what it tells clients to dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub node_id: i32,
    pub listen: SocketAddr,
    pub host: String,
    pub port: i32,
}

pub(crate) struct Topic {
    pub meta: TopicMeta,
    pub partitions: Vec<Arc<Partition>>,
    pub max_message_bytes: i32,
    pub flush_each_append: bool,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn leader(&self, index: i32) -> Option<i32> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.meta.leaders.get(i).copied())
    }
}

/// Everything the brokers of one instance share.
pub(crate) struct Shared {
    pub config: KafkaConfig,
    pub brokers: Vec<BrokerAddress>,
    pub cluster_id: String,
    pub store: LogStore,
    pub topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    pub groups: Arc<GroupCoordinator>,
    pub users: Arc<UserStore>,
    pub acls: Arc<Authorizer>,
    /// Bumped after every append so that waiting fetches re-check their partitions.
    pub appends: watch::Sender<u64>,
    pub shutdown: watch::Sender<bool>,
    pub traffic: Traffic,
    /// Who may connect (`None`: everyone). Replaced at run time by the control plane.
    pub allowed: RwLock<Option<crate::security::AllowList>>,
    /// Partition budget; starts as `config.max_partitions`, raised by upgrades.
    pub max_partitions: RwLock<Option<u32>>,
    meta_file: MetaFile,
    /// Serialises changes of the metadata file (topic changes, producer id blocks).
    meta_write: Mutex<MetaState>,
}

/// Record bytes in and out since the instance started, for the control plane's metrics.
#[derive(Default)]
pub(crate) struct Traffic {
    bytes_in: std::sync::atomic::AtomicU64,
    bytes_out: std::sync::atomic::AtomicU64,
    /// (in, out) per topic.
    per_topic: Mutex<std::collections::HashMap<String, (u64, u64)>>,
}

impl Traffic {
    pub fn add_in(&self, topic: &str, n: u64) {
        self.bytes_in
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.add_topic(topic, n, 0);
    }

    pub fn add_out(&self, topic: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.bytes_out
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.add_topic(topic, 0, n);
    }

    fn add_topic(&self, topic: &str, i: u64, o: u64) {
        let mut m = self.per_topic.lock();
        match m.get_mut(topic) {
            Some(e) => {
                e.0 += i;
                e.1 += o;
            }
            None => {
                m.insert(topic.to_string(), (i, o));
            }
        }
    }
}

struct MetaState {
    producer_id_next: i64,
    producer_id_limit: i64,
}

/// Where an instance keeps its SASL users (SCRAM hashes only).
const USERS_FILE: &str = "users.json";

const PRODUCER_ID_BLOCK: i64 = 1000;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shared {
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerAddress> {
        usize::try_from(node_id)
            .ok()
            .and_then(|i| self.brokers.get(i))
    }

    /// The broker that coordinates a group: spread over brokers by a stable hash of its id.
    pub fn coordinator_for(&self, key: &str) -> i32 {
        let hash = key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        (hash % self.brokers.len().max(1) as u32) as i32
    }

    pub fn total_partitions(&self) -> u64 {
        self.topics
            .read()
            .values()
            .map(|t| t.partitions.len() as u64)
            .sum()
    }

    fn snapshot_meta(&self, state: &MetaState) -> InstanceMeta {
        InstanceMeta {
            cluster_id: self.cluster_id.clone(),
            producer_id_limit: state.producer_id_limit,
            topics: self
                .topics
                .read()
                .iter()
                .map(|(k, t)| (k.clone(), t.meta.clone()))
                .collect(),
        }
    }

    /// Hands out producer ids in blocks recorded in the metadata file, so an id is never
    /// reused after a restart (the log keeps sequence state per producer id).
    pub fn next_producer_id(&self) -> std::io::Result<i64> {
        let mut state = self.meta_write.lock();
        if state.producer_id_next >= state.producer_id_limit {
            state.producer_id_limit = state.producer_id_next + PRODUCER_ID_BLOCK;
            let snapshot = self.snapshot_meta(&state);
            self.meta_file.save(&snapshot)?;
        }
        let id = state.producer_id_next;
        state.producer_id_next += 1;
        Ok(id)
    }

    fn open_topic(&self, meta: TopicMeta) -> Result<Topic, TopicError> {
        let log = topics::log_config(&meta.configs, &self.config.log);
        let mut partitions = Vec::with_capacity(meta.leaders.len());
        for p in 0..meta.leaders.len() {
            partitions.push(
                self.store
                    .open_partition(&meta.name, p as i32, log.clone())?,
            );
        }
        let max_message_bytes =
            topics::max_message_bytes(&meta.configs, self.config.max_message_bytes);
        let flush_each_append = topics::flush_each_append(&meta.configs);
        Ok(Topic {
            meta,
            partitions,
            max_message_bytes,
            flush_each_append,
        })
    }

    /// Leaders for `count` new partitions starting at partition `first`: round robin from a
    /// per-topic starting broker so that leadership spreads across brokers.
    fn assign_leaders(&self, name: &str, first: usize, count: usize) -> Vec<i32> {
        let n = self.brokers.len().max(1);
        let start = name.bytes().map(|b| b as usize).sum::<usize>() % n;
        (first..first + count)
            .map(|p| ((start + p) % n) as i32)
            .collect()
    }

    fn check_partition_budget(&self, extra: u64) -> Result<(), TopicError> {
        if let Some(max) = *self.max_partitions.read() {
            let total = self.total_partitions();
            if total + extra > max as u64 {
                return Err(TopicError::PolicyViolation(format!(
                    "the instance allows {max} partitions in total; {total} exist and {extra} more were requested"
                )));
            }
        }
        Ok(())
    }

    /// Creates a topic (or only checks that it could be created). Blocking: call from
    /// `spawn_blocking` on async paths.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicSummary, TopicError> {
        topics::validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        let replication_factor = if replication_factor == -1 {
            1
        } else {
            replication_factor
        };
        if replication_factor < 1 || replication_factor as usize > self.brokers.len() {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor must be between 1 and the {} brokers, got {replication_factor}",
                self.brokers.len()
            )));
        }
        for (k, v) in &configs {
            topics::validate_config(k, v)?;
        }
        let state = self.meta_write.lock();
        if self.topics.read().contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        self.check_partition_budget(partitions as u64)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            leaders: self.assign_leaders(name, 0, partitions as usize),
            replication_factor,
            configs,
            created_ms: now_ms(),
        };
        let summary = summarize(&meta);
        if validate_only {
            return Ok(summary);
        }
        let topic = self.open_topic(meta)?;
        self.topics
            .write()
            .insert(name.to_string(), Arc::new(topic));
        if let Err(e) = self.meta_file.save(&self.snapshot_meta(&state)) {
            self.topics.write().remove(name);
            let _ = self.store.remove_topic(name);
            return Err(e.into());
        }
        info!(topic = name, partitions, "topic created");
        Ok(summary)
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let state = self.meta_write.lock();
        let removed = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        // Forget the topic durably before removing files: a crash in between leaves orphan
        // directories, which start-up removes, never a topic without its data.
        if let Err(e) = self.meta_file.save(&self.snapshot_meta(&state)) {
            self.topics.write().insert(name.to_string(), removed);
            return Err(e.into());
        }
        drop(removed);
        self.store.remove_topic(name)?;
        self.groups.remove_topic(name);
        info!(topic = name, "topic deleted");
        Ok(())
    }

    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let state = self.meta_write.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count must be larger, got {total}"
            )));
        }
        self.check_partition_budget((total - current) as u64)?;
        if validate_only {
            return Ok(());
        }
        let mut meta = topic.meta.clone();
        meta.leaders.extend(self.assign_leaders(
            name,
            current as usize,
            (total - current) as usize,
        ));
        self.replace_topic(&state, meta)?;
        info!(topic = name, partitions = total, "partitions added");
        Ok(())
    }

    /// Replaces a topic's config overrides as a whole.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (k, v) in &configs {
            topics::validate_config(k, v)?;
        }
        let state = self.meta_write.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let mut meta = topic.meta.clone();
        meta.configs = configs;
        self.replace_topic(&state, meta)?;
        info!(topic = name, "topic configs changed");
        Ok(())
    }

    fn replace_topic(&self, state: &MetaState, meta: TopicMeta) -> Result<(), TopicError> {
        let name = meta.name.clone();
        let log = topics::log_config(&meta.configs, &self.config.log);
        let topic = self.open_topic(meta)?;
        for p in &topic.partitions {
            p.set_config(log.clone());
        }
        let old = self.topics.write().insert(name.clone(), Arc::new(topic));
        if let Err(e) = self.meta_file.save(&self.snapshot_meta(state)) {
            if let Some(old) = old {
                self.topics.write().insert(name, old);
            }
            return Err(e.into());
        }
        Ok(())
    }

    pub fn notify_append(&self) {
        self.appends.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Administration of a running instance for the control plane: topics, users, quota and
/// the figures the APIs report. Changes go through the same paths as Kafka admin requests.
#[derive(Clone)]
pub struct KafkaAdmin {
    shared: Arc<Shared>,
}

/// Earliest and next offsets of one partition, and when it was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub log_start: i64,
    pub log_end: i64,
    pub last_append_ms: i64,
}

/// Why a consumer group could not be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupDeleteError {
    /// No such group (GROUP_ID_NOT_FOUND).
    NotFound,
    /// The group has members (NON_EMPTY_GROUP).
    NotEmpty,
    /// Another Kafka error code.
    Other(i16),
}

impl KafkaAdmin {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, TopicError> + Send + 'static,
    ) -> Result<T, TopicError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| TopicError::Io(std::io::Error::other(e)))?
    }

    pub fn topics(&self) -> Vec<TopicSummary> {
        self.shared
            .topics
            .read()
            .values()
            .map(|t| summarize(&t.meta))
            .collect()
    }

    pub fn topic(&self, name: &str) -> Option<TopicSummary> {
        self.shared.topic(name).map(|t| summarize(&t.meta))
    }

    pub async fn create_topic(
        &self,
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicSummary, TopicError> {
        self.blocking(move |s| {
            s.create_topic(&name, partitions, replication_factor, configs, false)
        })
        .await
    }

    pub async fn delete_topic(&self, name: String) -> Result<(), TopicError> {
        self.blocking(move |s| s.delete_topic(&name)).await
    }

    pub async fn add_partitions(&self, name: String, total: i32) -> Result<(), TopicError> {
        self.blocking(move |s| s.add_partitions(&name, total, false))
            .await
    }

    /// Replaces the topic's config overrides as a whole.
    pub async fn set_topic_configs(
        &self,
        name: String,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        self.blocking(move |s| s.set_topic_configs(&name, configs, false))
            .await
    }

    /// Per-partition offsets of a topic, in partition order.
    pub fn partition_offsets(&self, topic: &str) -> Option<Vec<PartitionOffsets>> {
        let t = self.shared.topic(topic)?;
        Some(
            t.partitions
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionOffsets {
                    partition: i as i32,
                    log_start: p.log_start_offset(),
                    log_end: p.high_watermark(),
                    last_append_ms: p.last_append_ms(),
                })
                .collect(),
        )
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.shared.groups.group_ids()
    }

    /// Registers an empty consumer group; false if it already exists.
    pub fn declare_group(&self, group: &str) -> bool {
        self.shared.groups.declare_group(group)
    }

    /// (topic, partition, committed offset) of a group.
    pub fn committed_offsets(&self, group: &str) -> Vec<(String, i32, i64)> {
        self.shared.groups.committed_offsets(group)
    }

    /// Deletes an empty group and its offsets, as DeleteGroups does.
    pub fn delete_group(&self, group: &str) -> Result<(), GroupDeleteError> {
        use kafka_protocol::messages::{DeleteGroupsRequest, GroupId};
        use kafka_protocol::ResponseError;
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(kafka_protocol::protocol::StrBytes::from_string(
            group.to_string(),
        ))];
        let resp = self.shared.groups.delete_groups(&req, 2);
        match resp.results.first().map(|r| r.error_code).unwrap_or(0) {
            0 => Ok(()),
            c if c == ResponseError::GroupIdNotFound.code() => Err(GroupDeleteError::NotFound),
            c if c == ResponseError::NonEmptyGroup.code() => Err(GroupDeleteError::NotEmpty),
            c => Err(GroupDeleteError::Other(c)),
        }
    }

    pub fn used_bytes(&self) -> u64 {
        self.shared.store.used_bytes()
    }

    /// Record bytes produced and fetched since the instance started.
    pub fn traffic(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.shared.traffic.bytes_in.load(Relaxed),
            self.shared.traffic.bytes_out.load(Relaxed),
        )
    }

    /// Record bytes produced and fetched per topic since the instance started.
    pub fn topic_traffic(&self) -> std::collections::HashMap<String, (u64, u64)> {
        self.shared.traffic.per_topic.lock().clone()
    }

    /// Changes the storage quota and what happens when it is reached, without a restart.
    pub fn set_quota(&self, quota_bytes: Option<u64>, policy: msglog::QuotaPolicy) {
        self.shared.store.set_quota(quota_bytes, policy);
    }

    /// Changes the partition budget of the instance.
    pub fn set_max_partitions(&self, max: Option<u32>) {
        *self.shared.max_partitions.write() = max;
    }

    /// Replaces the list of client networks allowed to connect (`None`: everyone).
    /// Connections already open stay open.
    pub fn set_allowed_ips(&self, list: Option<Vec<String>>) -> Result<(), String> {
        let parsed = match list {
            None => None,
            Some(l) => Some(crate::security::AllowList::parse(&l)?),
        };
        *self.shared.allowed.write() = parsed;
        Ok(())
    }

    pub fn users(&self) -> Vec<String> {
        self.shared.users.users()
    }

    pub async fn delete_user(&self, user: String) -> Result<bool, InstanceError> {
        let users = self.shared.users.clone();
        tokio::task::spawn_blocking(move || users.delete_user(&user))
            .await
            .map_err(|e| InstanceError::Topic(TopicError::Io(std::io::Error::other(e))))?
            .map_err(InstanceError::from)
    }

    pub fn acls(&self) -> Vec<crate::security::AclBinding> {
        self.shared.acls.bindings()
    }

    pub async fn add_acl(&self, binding: crate::security::AclBinding) -> Result<(), InstanceError> {
        let acls = self.shared.acls.clone();
        tokio::task::spawn_blocking(move || acls.add_binding(binding))
            .await
            .map_err(|e| InstanceError::Topic(TopicError::Io(std::io::Error::other(e))))?
            .map_err(InstanceError::from)
    }

    /// Removes the binding equal to `binding`; answers how many were removed.
    pub async fn remove_acl(
        &self,
        binding: crate::security::AclBinding,
    ) -> Result<usize, InstanceError> {
        let acls = self.shared.acls.clone();
        tokio::task::spawn_blocking(move || acls.remove_matching(&binding))
            .await
            .map_err(|e| InstanceError::Topic(TopicError::Io(std::io::Error::other(e))))?
            .map_err(InstanceError::from)
    }

    /// Creates a SASL user or resets its password (kept as SCRAM hashes).
    pub async fn set_user_password(
        &self,
        user: String,
        password: String,
    ) -> Result<(), InstanceError> {
        let users = self.shared.users.clone();
        tokio::task::spawn_blocking(move || users.set_password(&user, &password))
            .await
            .map_err(|e| InstanceError::Topic(TopicError::Io(std::io::Error::other(e))))?
            .map_err(InstanceError::from)
    }
}

pub(crate) fn summarize(meta: &TopicMeta) -> TopicSummary {
    TopicSummary {
        name: meta.name.clone(),
        partitions: meta.leaders.len() as i32,
        replication_factor: meta.replication_factor,
        configs: meta.configs.clone(),
        created_ms: meta.created_ms,
    }
}

/// A running instance. Dropping it does not stop it: call [`KafkaInstance::shutdown`].
pub struct KafkaInstance {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl KafkaInstance {
    pub async fn start(config: KafkaConfig) -> Result<KafkaInstance, InstanceError> {
        if config.listeners.is_empty() {
            return Err(InstanceError::NoListeners);
        }
        let data_dir = config.data_dir.clone();
        let dir_err = |source| InstanceError::DataDir {
            path: data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&data_dir).map_err(dir_err)?;

        let mut listeners = Vec::new();
        let mut brokers = Vec::new();
        for (i, addr) in config.listeners.iter().enumerate() {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| InstanceError::Bind {
                    addr: *addr,
                    source,
                })?;
            let bound = listener
                .local_addr()
                .map_err(|source| InstanceError::Bind {
                    addr: *addr,
                    source,
                })?;
            brokers.push(BrokerAddress {
                node_id: i as i32,
                listen: bound,
                host: config
                    .advertised_host
                    .clone()
                    .unwrap_or_else(|| bound.ip().to_string()),
                port: bound.port() as i32,
            });
            listeners.push(listener);
        }

        let shared = tokio::task::spawn_blocking({
            let config = config.clone();
            let brokers = brokers.clone();
            move || open_shared(config, brokers)
        })
        .await
        .map_err(|e| dir_err(std::io::Error::other(e)))??;
        let shared = Arc::new(shared);

        let mut tasks = Vec::new();
        for (broker, listener) in brokers.iter().zip(listeners) {
            tasks.push(tokio::spawn(crate::connection::accept_loop(
                shared.clone(),
                broker.node_id,
                listener,
            )));
        }
        tasks.push(tokio::spawn(housekeeping(shared.clone())));
        Ok(KafkaInstance { shared, tasks })
    }

    /// Creates or resets a SASL user of an instance that is not running, in the store the
    /// instance opens at start (blocking: PBKDF2 and an fsync).
    pub fn provision_user(
        data_dir: &std::path::Path,
        user: &str,
        password: &str,
    ) -> Result<(), InstanceError> {
        std::fs::create_dir_all(data_dir).map_err(|source| InstanceError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        UserStore::open(&data_dir.join(USERS_FILE))?.set_password(user, password)?;
        Ok(())
    }

    pub fn brokers(&self) -> &[BrokerAddress] {
        &self.shared.brokers
    }

    pub fn cluster_id(&self) -> &str {
        &self.shared.cluster_id
    }

    /// Bootstrap string for clients: every broker's advertised address.
    pub fn bootstrap_servers(&self) -> String {
        self.shared
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn used_bytes(&self) -> u64 {
        self.shared.store.used_bytes()
    }

    /// A cheap handle for administration while the instance runs (the control plane keeps
    /// it apart from the instance itself, which only [`KafkaInstance::shutdown`] consumes).
    pub fn admin(&self) -> KafkaAdmin {
        KafkaAdmin {
            shared: self.shared.clone(),
        }
    }

    pub fn topics(&self) -> Vec<TopicSummary> {
        self.shared
            .topics
            .read()
            .values()
            .map(|t| summarize(&t.meta))
            .collect()
    }

    /// Stops accepting, closes every connection, and makes logs and offsets durable.
    pub async fn shutdown(self) {
        let _ = self.shared.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let shared = self.shared.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            let logs = shared.store.flush_all();
            let groups = shared.groups.flush();
            (logs, groups)
        })
        .await;
        match flushed {
            Ok((Ok(()), Ok(()))) => info!("kafka instance stopped"),
            Ok((logs, groups)) => {
                warn!(?logs, ?groups, "kafka instance stopped with flush errors")
            }
            Err(e) => warn!(error = %e, "kafka instance flush task failed"),
        }
    }
}

fn open_shared(config: KafkaConfig, brokers: Vec<BrokerAddress>) -> Result<Shared, InstanceError> {
    let dir = config.data_dir.clone();
    let dir_err = |source| InstanceError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    let meta_file = MetaFile::new(&dir);
    let meta = meta_file.load_or_create().map_err(dir_err)?;
    let store = LogStore::open(&dir.join("logs"), config.store.clone())?;
    let groups = GroupCoordinator::open(&dir.join("groups"))?;
    let users = UserStore::open(&dir.join(USERS_FILE))?;
    for (name, password) in &config.users {
        users.set_password(name, password)?;
    }
    let acls = Authorizer::open(&dir.join("acls.json"), config.super_users.clone())?;
    let allowed =
        match &config.allowed_ips {
            None => None,
            Some(list) => Some(crate::security::AllowList::parse(list).map_err(|e| {
                InstanceError::DataDir {
                    path: "allowed_ips".into(),
                    source: std::io::Error::other(e),
                }
            })?),
        };
    let (appends, _) = watch::channel(0u64);
    let (shutdown, _) = watch::channel(false);
    let shared = Shared {
        cluster_id: meta.cluster_id.clone(),
        brokers,
        store,
        topics: RwLock::new(BTreeMap::new()),
        groups,
        users,
        acls,
        appends,
        shutdown,
        traffic: Traffic::default(),
        allowed: RwLock::new(allowed),
        max_partitions: RwLock::new(config.max_partitions),
        meta_file,
        meta_write: Mutex::new(MetaState {
            producer_id_next: meta.producer_id_limit,
            producer_id_limit: meta.producer_id_limit,
        }),
        config,
    };
    for (name, mut topic_meta) in meta.topics {
        // An instance restarted with fewer brokers keeps its partitions reachable.
        let n = shared.brokers.len() as i32;
        for leader in &mut topic_meta.leaders {
            if *leader >= n {
                *leader %= n;
            }
        }
        let topic = shared.open_topic(topic_meta)?;
        shared.topics.write().insert(name, Arc::new(topic));
    }
    let known = shared.topics.read();
    for (topic, partition) in shared.store.partitions_on_disk()? {
        match known.get(&topic) {
            None => {
                // Left by a crash between forgetting a topic and removing its files.
                warn!(topic, "removing the files of a topic not in the metadata");
                shared.store.remove_topic(&topic)?;
            }
            Some(t) if partition as usize >= t.partitions.len() => {
                warn!(
                    topic,
                    partition, "ignoring a partition directory not in the metadata"
                );
            }
            Some(_) => {}
        }
    }
    drop(known);
    info!(
        topics = shared.topics.read().len(),
        used_bytes = shared.store.used_bytes(),
        "kafka instance opened"
    );
    Ok(shared)
}

/// Periodic work: retention and quota, interval flushes, durable group offsets.
async fn housekeeping(shared: Arc<Shared>) {
    let flush_every = match shared.config.store.flush {
        FlushPolicy::Interval(d) => d,
        _ => Duration::from_secs(1),
    };
    let mut flush_tick = tokio::time::interval(flush_every);
    let mut retention_tick = tokio::time::interval(shared.config.retention_check_interval);
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = flush_tick.tick() => {
                let s = shared.clone();
                let res = tokio::task::spawn_blocking(move || {
                    if matches!(s.config.store.flush, FlushPolicy::Interval(_)) {
                        s.store.flush_all()?;
                    }
                    s.groups.flush().map_err(|e| msglog::LogError::Io(std::io::Error::other(e)))
                }).await;
                if let Ok(Err(e)) = res {
                    warn!(error = %e, "periodic flush failed");
                }
            }
            _ = retention_tick.tick() => {
                let s = shared.clone();
                let res = tokio::task::spawn_blocking(move || {
                    msglog::release_idle_buffers();
                    s.store.enforce_retention(now_ms())
                })
                .await;
                match res {
                    Ok(Ok(freed)) if freed > 0 => debug!(freed, "retention freed bytes"),
                    Ok(Err(e)) => warn!(error = %e, "retention failed"),
                    _ => {}
                }
            }
        }
    }
}
