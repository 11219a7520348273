//! A RocketMQ broker on `msglog`: topics of message queues, consumer offsets, online
//! clients, and the request handlers that clients reach over the remoting protocol.
//!
//! Handlers live by family: `send` (SEND_MESSAGE, batches, CONSUMER_SEND_MSG_BACK), `pull`
//! (PULL_MESSAGE and its long polling), `consumer` (heartbeats, offsets, consumer lists,
//! queue locks), `admin` (topics, groups, offsets by time, stats, message lookups),
//! `schedule` (the 18 delay levels).

mod admin;
mod clients;
mod consumer;
mod header;
mod manage;
mod offsets;
mod online;
mod pull;
mod query;
mod schedule;
mod send;
mod settings;
mod stats;
mod store;
pub mod topics;
mod transaction;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use msglog::{FlushPolicy, LogIo, QuotaPolicy, StoreConfig};
use parking_lot::RwLock;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use clients::{ConsumerGroup, Subscription};
pub use manage::{DirectResult, ManageError, OnlineClient, QueueLag, QueueStat};
pub use online::OnlineError;
pub use send::{Placed, PutError};
pub use settings::BrokerSettings;
pub use store::QueueStore;
pub use topics::{GroupConfig, TopicConfig};

use crate::acl::{Acl, AclConfig};
use crate::namesrv::{BrokerRegistration, NameServer, QueueData};
use crate::remoting::{codes, RemotingCommand};
use crate::server::{not_supported, Connection};
use clients::Clients;
use offsets::ConsumerOffsets;
use schedule::Schedule;
use topics::Tables;

/// When a broker forces appended messages to disk (Apache's `flushDiskType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMode {
    /// Every send is on disk before it is acknowledged (`SYNC_FLUSH`).
    Sync,
    /// Written back every 500 ms (`ASYNC_FLUSH`, Apache's `flushIntervalCommitLog`).
    Async,
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub cluster: String,
    pub broker_name: String,
    pub listen: SocketAddr,
    /// The address clients are told to dial (route data) and that message ids carry.
    pub advertised: SocketAddr,
    pub data_dir: PathBuf,
    /// `autoCreateTopicEnable`: producers may send to unknown topics (through `TBW102`).
    /// This and the retention, message size and group settings below are where a broker
    /// starts; they change live through [`Broker::apply_settings`].
    pub auto_create_topics: bool,
    /// `autoCreateSubscriptionGroup`: consumers may use unknown groups.
    pub auto_create_groups: bool,
    pub flush: FlushMode,
    /// The storage quota in bytes; sends are refused beyond it.
    pub quota_bytes: Option<u64>,
    /// Apache's `fileReservedTime` (72 h).
    pub retention: Duration,
    /// Apache's `maxMessageSize` (4 MiB).
    pub max_message_size: usize,
    /// Half messages older than this are checked back (`transactionTimeOut`, 6 s).
    pub transaction_timeout: Duration,
    /// How often undecided half messages are checked (`transactionCheckInterval`, 60 s).
    pub transaction_check_interval: Duration,
    /// Plain ACL (`aclEnable` with `plain_acl.yml`); `None` lets every request through.
    pub acl: Option<AclConfig>,
    /// SQL92 property filters (Apache's `enablePropertyFilter`; off there by default, on here
    /// as in the cloud products).
    pub enable_property_filter: bool,
}

impl BrokerConfig {
    pub fn new(broker_name: &str, listen: SocketAddr, data_dir: PathBuf) -> BrokerConfig {
        BrokerConfig {
            cluster: "DefaultCluster".into(),
            broker_name: broker_name.to_string(),
            listen,
            advertised: listen,
            data_dir,
            auto_create_topics: true,
            auto_create_groups: true,
            flush: FlushMode::Async,
            quota_bytes: None,
            retention: Duration::from_secs(72 * 3600),
            max_message_size: 4 * 1024 * 1024,
            transaction_timeout: Duration::from_secs(6),
            transaction_check_interval: Duration::from_secs(60),
            acl: None,
            enable_property_filter: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("message log: {0}")]
    Log(#[from] msglog::LogError),
    #[error("broker tables: {0}")]
    Tables(#[from] topics::TableError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Broker {
    config: BrokerConfig,
    tables: Tables,
    store: QueueStore,
    offsets: ConsumerOffsets,
    clients: Clients,
    schedule: Schedule,
    locks: consumer::QueueLocks,
    transactions: transaction::Transactions,
    writers: writer::Writers,
    namesrv: Arc<NameServer>,
    acl: RwLock<Option<Arc<Acl>>>,
    started: Instant,
    stats: Arc<stats::BrokerStats>,
    settings: RwLock<BrokerSettings>,
    /// One table write at a time, in order.
    table_writes: tokio::sync::Mutex<()>,
}

impl Broker {
    /// Opens (recovering) the broker's data and registers it with the name server.
    pub fn open(
        config: BrokerConfig,
        namesrv: Arc<NameServer>,
    ) -> Result<Arc<Broker>, BrokerError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)?;
        let tables = Tables::open(
            &dir,
            config.auto_create_topics,
            &config.broker_name,
            &config.cluster,
        )?;
        tables.write(&tables.snapshot())?;
        let store = QueueStore::open(
            &dir.join("log"),
            StoreConfig {
                quota_bytes: config.quota_bytes,
                quota_policy: QuotaPolicy::ProduceReject,
                flush: match config.flush {
                    FlushMode::Sync => FlushPolicy::EveryAppend,
                    FlushMode::Async => FlushPolicy::Interval(Duration::from_millis(500)),
                },
                io: LogIo::Buffered,
            },
            Some(config.retention),
        )?;
        let offsets = ConsumerOffsets::open(&dir)?;
        let acl = RwLock::new(config.acl.clone().map(|c| Arc::new(Acl::new(c))));
        let schedule = Schedule::open(&dir)?;
        let settings = RwLock::new(BrokerSettings::of(&config));
        let broker = Arc::new(Broker {
            config,
            tables,
            store,
            offsets,
            clients: Clients::default(),
            schedule,
            locks: consumer::QueueLocks::default(),
            transactions: transaction::Transactions::default(),
            writers: writer::Writers::default(),
            namesrv,
            acl,
            started: Instant::now(),
            stats: Arc::default(),
            settings,
            table_writes: tokio::sync::Mutex::new(()),
        });
        broker.register();
        info!(broker = %broker.config.broker_name, addr = %broker.config.advertised, "rocketmq broker open");
        Ok(broker)
    }

    pub fn name(&self) -> &str {
        &self.config.broker_name
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn store_host(&self) -> SocketAddr {
        self.config.advertised
    }

    /// Tells the name server which topics this broker serves.
    pub fn register(&self) {
        let topics = self
            .tables
            .all_topics()
            .into_iter()
            .map(|t| {
                (
                    t.topic_name.clone(),
                    QueueData {
                        read_queue_nums: t.read_queue_nums,
                        write_queue_nums: t.write_queue_nums,
                        perm: t.perm,
                        topic_sys_flag: t.topic_sys_flag,
                    },
                )
            })
            .collect();
        self.namesrv.register(BrokerRegistration {
            cluster: self.config.cluster.clone(),
            broker_name: self.config.broker_name.clone(),
            broker_id: 0,
            addr: self.config.advertised.to_string(),
            topics,
        });
    }

    pub fn unregister(&self) {
        self.namesrv.unregister(&self.config.broker_name, 0);
    }

    /// Writes the topic and group tables (after a change) and re-registers.
    async fn tables_changed(&self) {
        self.register();
        let _guard = self.table_writes.lock().await;
        let snapshot = self.tables.snapshot();
        let dir = self.config.data_dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            let t = (snapshot.0, snapshot.1);
            topics::write_atomically(&dir.join("topics.json"), &t.0)
                .and_then(|()| topics::write_atomically(&dir.join("subscriptionGroup.json"), &t.1))
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            warn!(broker = %self.config.broker_name, "writing the topic tables failed");
        }
    }

    /// Starts the broker's periodic work: flushing, offsets, expiry, retention, delays.
    pub fn start_background(self: &Arc<Self>) -> JoinHandle<()> {
        let weak: Weak<Broker> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let mut last_check = Instant::now();
            loop {
                tick.tick().await;
                n += 1;
                let Some(b) = weak.upgrade() else { break };
                b.deliver_due_messages().await;
                if n.is_multiple_of(10) {
                    b.stats.sample(now_ms());
                }
                if last_check.elapsed() >= b.config.transaction_check_interval {
                    last_check = Instant::now();
                    b.check_transactions(b.config.transaction_timeout).await;
                }
                if n.is_multiple_of(5) && b.config.flush == FlushMode::Async {
                    let s = b.clone();
                    let _ = tokio::task::spawn_blocking(move || s.store.log().flush_all()).await;
                }
                if n.is_multiple_of(50) {
                    let s = b.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = s.offsets.persist() {
                            warn!(error = %e, "writing consumer offsets failed");
                        }
                        if let Err(e) = s.schedule.persist() {
                            warn!(error = %e, "writing delay offsets failed");
                        }
                    })
                    .await;
                }
                if n.is_multiple_of(100) {
                    for group in b.clients.expire(Instant::now()) {
                        b.notify_consumers_changed(&group);
                    }
                    // The log's read and staging buffers a burst of pulls or sends left in its
                    // pools go back once ten seconds pass without one being taken.
                    let _ = tokio::task::spawn_blocking(msglog::release_idle_buffers).await;
                }
                if n.is_multiple_of(600) {
                    let s = b.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        let now = now_ms();
                        let _ = s.store.log().enforce_retention(now);
                    })
                    .await;
                }
            }
        })
    }

    /// Flushes everything and writes the offsets (blocking): a clean stop loses nothing.
    pub fn stop(&self) {
        self.unregister();
        if let Err(e) = self.store.log().flush_all() {
            warn!(error = %e, "flushing the message log at stop failed");
        }
        let _ = self.offsets.persist();
        let _ = self.schedule.persist();
    }

    /// A connection has handled every request it read in one go: the sends among them go
    /// to the writer together.
    pub fn requests_handled(self: &Arc<Self>) {
        self.writers.release(self);
    }

    pub fn connection_closed(&self, conn: &Arc<Connection>) {
        for group in self.clients.connection_closed(conn.id) {
            self.notify_consumers_changed(&group);
        }
    }

    /// NOTIFY_CONSUMER_IDS_CHANGED to every member of a group, so they rebalance now
    /// rather than at their next 20 s rebalance.
    fn notify_consumers_changed(&self, group: &str) {
        let notify = self
            .tables
            .group(group)
            .is_none_or(|g| g.notify_consumer_ids_changed_enable);
        if !notify {
            return;
        }
        if let Some(g) = self.clients.consumer_group(group) {
            for c in g.channels.values() {
                let mut req = RemotingCommand::request(codes::NOTIFY_CONSUMER_IDS_CHANGED, 0);
                req.set_ext("consumerGroup", group.to_string());
                c.conn.oneway(req);
            }
        }
    }

    /// Switches ACL on (with these accounts) or off; requests after this call see it.
    pub fn set_acl(&self, config: Option<AclConfig>) {
        *self.acl.write() = config.map(|c| Arc::new(Acl::new(c)));
    }

    pub async fn handle(self: &Arc<Self>, conn: &Arc<Connection>, req: RemotingCommand) -> Reply {
        let acl = self.acl.read().clone();
        if let Some(acl) = acl {
            if let Err(remark) = acl.check(&req, conn.peer.ip()) {
                info!(
                    code = req.code,
                    peer = %conn.peer,
                    access_key = req.ext(crate::acl::ACCESS_KEY).unwrap_or_default(),
                    "request refused by acl"
                );
                return Reply::now(RemotingCommand::response_to(
                    &req,
                    codes::SYSTEM_ERROR,
                    Some(remark),
                ));
            }
        }
        let response = match req.code {
            codes::SEND_MESSAGE | codes::SEND_MESSAGE_V2 | codes::SEND_BATCH_MESSAGE => {
                return self.send_message(conn, &req).await
            }
            codes::CONSUMER_SEND_MSG_BACK => self.consumer_send_back(&req).await,
            codes::END_TRANSACTION => self.end_transaction(&req).await,
            codes::QUERY_MESSAGE => self.query_message(&req).await,
            codes::PULL_MESSAGE => return Reply::Now(self.pull_message(conn, req).await),
            codes::HEART_BEAT => self.heartbeat(conn, &req).await,
            codes::CHECK_CLIENT_CONFIG => self.check_client_config(&req),
            codes::UNREGISTER_CLIENT => self.unregister_client(conn, &req),
            codes::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(&req),
            codes::QUERY_CONSUMER_OFFSET => self.query_consumer_offset(&req),
            codes::UPDATE_CONSUMER_OFFSET => self.update_consumer_offset(&req),
            codes::LOCK_BATCH_MQ => self.lock_batch(&req),
            codes::UNLOCK_BATCH_MQ => self.unlock_batch(&req),
            codes::GET_MAX_OFFSET => self.max_offset(&req),
            codes::GET_MIN_OFFSET => self.min_offset(&req),
            codes::SEARCH_OFFSET_BY_TIMESTAMP => self.search_offset(&req).await,
            codes::GET_EARLIEST_MSG_STORETIME => self.earliest_store_time(&req).await,
            codes::VIEW_MESSAGE_BY_ID => self.view_message_by_id(&req).await,
            codes::UPDATE_AND_CREATE_TOPIC => self.update_topic(&req).await,
            codes::DELETE_TOPIC_IN_BROKER => self.delete_topic(&req).await,
            codes::GET_ALL_TOPIC_CONFIG => self.all_topic_config(&req),
            codes::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => self.update_group(&req).await,
            codes::DELETE_SUBSCRIPTIONGROUP => self.delete_group(&req).await,
            codes::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => self.all_group_config(&req),
            codes::GET_TOPIC_STATS_INFO => self.topic_stats(&req),
            codes::GET_CONSUME_STATS => self.consume_stats(&req).await,
            codes::GET_BROKER_RUNTIME_INFO => self.runtime_info(&req),
            codes::GET_ALL_CONSUMER_OFFSET => self.all_consumer_offsets(&req),
            codes::GET_ALL_DELAY_OFFSET => self.all_delay_offsets(&req),
            codes::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(&req),
            codes::INVOKE_BROKER_TO_RESET_OFFSET => self.invoke_reset_offset(&req).await,
            codes::GET_CONSUMER_RUNNING_INFO => self.consumer_running_info(&req).await,
            codes::CONSUME_MESSAGE_DIRECTLY => self.consume_message_directly(&req).await,
            _ => {
                info!(code = req.code, peer = %conn.peer, "request code not supported");
                not_supported(&req)
            }
        };
        Reply::now(response)
    }
}

/// How a broker answers a request: now (or never, for oneway and deferred ones), or when a
/// future completes; the connection keeps reading meanwhile.
pub enum Reply {
    Now(Option<RemotingCommand>),
    Later(LaterReply),
}

/// The future of a [`Reply::Later`].
pub type LaterReply =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<RemotingCommand>> + Send>>;

impl Reply {
    pub fn now(response: RemotingCommand) -> Reply {
        Reply::Now(Some(response))
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
