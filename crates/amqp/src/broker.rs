//! The broker: vhosts, users and permissions, the operations that change definitions (and
//! make durable ones durable before answering), start-up recovery and the connection
//! registry. The AMQP connections and the management API both act through it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use base64::Engine;
use msglog::{LogIo, LogStore, StoreConfig};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::auth::{Access, Permission, Permissions, User, HASHING_ALGORITHM};
use crate::core::Core;
use crate::definitions::{
    self, BindingDef, Definitions, ExchangeDef, PermissionDef, QueueDef, UserDef, VHostDef,
};
use crate::error::AmqpError;
use crate::exchange::{Binding, Destination, ExchangeKind, PLUGINS};
use crate::json::{json_to_table, table_to_json};
use crate::queue::settings::{QueueKind, QueueSettings};
use crate::queue::store::{LogWriter, QueueLog, Recovered};
use crate::queue::{ChannelSink, Queue};
use crate::timers::Timers;
use crate::vhost::VHost;

/// Message bodies a recovered queue reads into memory at start-up; the rest stay paged
/// out (the queue window).
const RECOVER_IN_MEMORY_BYTES: u64 = 4 << 20;

/// Settings of one broker.
#[derive(Clone, Debug)]
pub struct AmqpConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The user created at first start (RabbitMQ's guest/guest), with full rights on "/".
    pub default_user: Option<(String, String)>,
    /// Users that may only connect from loopback addresses (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat the server proposes, in seconds.
    pub heartbeat: u16,
    /// Largest message body accepted (RabbitMQ 3.8: 128 MiB).
    pub max_message_size: u64,
    /// Shown as `cluster_name` in the server properties.
    pub cluster_name: String,
    pub log_io: LogIo,
    /// Storage quota of the instance's messages: at it, publishers are blocked
    /// (connection.blocked "low on disk") until consumers make room.
    pub quota_bytes: Option<u64>,
    /// Plug-ins switched on (of [`crate::exchange::PLUGINS`]).
    pub plugins: Vec<String>,
    /// Memory the broker's queued messages may take (bodies in memory plus per-message
    /// bookkeeping): at it, publishers are blocked ("low on memory").
    pub memory_limit_bytes: Option<u64>,
}

impl AmqpConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> AmqpConfig {
        AmqpConfig {
            listen,
            data_dir,
            default_user: Some(("guest".into(), "guest".into())),
            loopback_users: vec!["guest".into()],
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 << 20,
            cluster_name: "rabbit@opendms".into(),
            log_io: LogIo::Direct,
            quota_bytes: None,
            memory_limit_bytes: default_memory_limit(),
            plugins: PLUGINS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// What the management API shows of a connection.
#[derive(Clone)]
pub struct ConnectionInfo {
    pub id: u64,
    /// `PEER -> LOCAL`, as RabbitMQ names connections.
    pub name: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    pub auth_mechanism: String,
    pub connected_at_ms: i64,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    /// Its open channels.
    pub channels: Vec<Arc<ChannelSink>>,
    pub client_properties: serde_json::Value,
}

/// A queue.declare.
pub struct QueueDeclare<'a> {
    pub name: &'a str,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// The declaring connection (exclusive queues belong to it).
    pub connection: Option<u64>,
}

/// An exchange.declare.
pub struct ExchangeDeclare {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// Decides whether a client address may connect.
pub type ConnectionFilter = Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>;

pub struct Broker {
    pub config: AmqpConfig,
    pub(crate) core: Arc<Core>,
    vhosts: RwLock<BTreeMap<String, Arc<VHost>>>,
    users: RwLock<BTreeMap<String, User>>,
    permissions: RwLock<Permissions>,
    connections: Mutex<BTreeMap<u64, ConnectionInfo>>,
    closers: Mutex<HashMap<u64, watch::Sender<Option<String>>>>,
    /// A resource alarm and its reason (`low on disk`, `low on memory`): publishers wait.
    alarm: watch::Sender<Option<&'static str>>,
    /// The storage quota now (it starts as `config.quota_bytes`; 0 = none).
    quota_bytes: AtomicU64,
    /// Which client addresses may connect (`None`: every one).
    connection_filter: RwLock<Option<ConnectionFilter>>,
    /// Plug-ins switched on.
    plugins: RwLock<std::collections::BTreeSet<String>>,
    /// Bytes read from and written to clients since the broker started.
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    next_connection: AtomicU64,
    save_lock: tokio::sync::Mutex<()>,
    definitions_path: PathBuf,
}

/// 16 random bytes as RabbitMQ's generated names write them (`amq.gen-…`, `amq.ctag-…`).
pub fn generated_name(prefix: &str) -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// RabbitMQ's default memory high watermark: 40% of the machine's memory (`MemTotal` of
/// /proc/meminfo); no limit where that cannot be read.
fn default_memory_limit() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024 / 10 * 4)
}

/// What a queued message costs in memory besides its body (its place in a queue's
/// ready list or unacknowledged map), for the memory alarm.
const PER_MESSAGE_BYTES: u64 = 96;

/// Checks disk and memory against their limits four times a second and raises or clears
/// the alarm (RabbitMQ's resource alarms); every ten seconds, frees the log's idle buffers.
async fn watch_resources(broker: std::sync::Weak<Broker>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let Some(b) = broker.upgrade() else { return };
        if n.is_multiple_of(40) {
            // The log's read and staging buffers a burst of load left in its pools go back
            // once ten seconds pass without one being taken.
            let _ = tokio::task::spawn_blocking(msglog::release_idle_buffers).await;
        }
        let disk = b.quota_bytes().is_some_and(|q| b.used_bytes() >= q);
        let memory = b
            .config
            .memory_limit_bytes
            .is_some_and(|m| b.queued_memory_bytes() >= m);
        let reason = if disk {
            Some("low on disk")
        } else if memory {
            Some("low on memory")
        } else {
            None
        };
        b.alarm.send_if_modified(|current| {
            if *current == reason {
                return false;
            }
            match reason {
                Some(r) => warn!(reason = r, "resource alarm: publishers are blocked"),
                None => info!("resource alarm cleared: publishers may go on"),
            }
            *current = reason;
            true
        });
    }
}

/// A fresh storage id for a queue's log: `prefix` and 16 hex digits.
pub(crate) fn generated_storage_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

impl Broker {
    /// Opens the data directory, recovering definitions and persistent messages. Spawns
    /// the timer task and the definitions saver on the current runtime.
    pub async fn open(config: AmqpConfig) -> Result<Arc<Broker>, std::io::Error> {
        let dir = config.data_dir.clone();
        let store_config = StoreConfig {
            // The quota is the broker's to enforce (publishers blocked, nothing deleted):
            // msglog's own quota would delete queued messages.
            quota_bytes: None,
            io: config.log_io,
            ..StoreConfig::default()
        };
        let (store, defs) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let store = LogStore::open(&dir.join("messages"), store_config)
                .map_err(std::io::Error::other)?;
            // Logs non-durable queues paged out to belong to the run that wrote them.
            for (topic, _) in store.partitions_on_disk().map_err(std::io::Error::other)? {
                if topic.starts_with("spill-") {
                    store.remove_topic(&topic).map_err(std::io::Error::other)?;
                    let _ = std::fs::remove_file(dir.join("acks").join(&topic));
                }
            }
            let defs = definitions::load(&dir.join("definitions.json"))?;
            Ok::<_, std::io::Error>((store, defs))
        })
        .await
        .map_err(std::io::Error::other)??;
        let (timers, _timer_task) = Timers::start();
        let (save_tx, mut save_rx) = mpsc::unbounded_channel();
        let core = Core::new(
            timers,
            Arc::new(store),
            config.data_dir.join("acks"),
            LogWriter::start(),
            save_tx,
        );
        let config_quota = config.quota_bytes.unwrap_or(0);
        let config_plugins = config.plugins.iter().cloned().collect();
        let broker = Arc::new(Broker {
            definitions_path: config.data_dir.join("definitions.json"),
            config,
            core,
            vhosts: RwLock::new(BTreeMap::new()),
            users: RwLock::new(BTreeMap::new()),
            permissions: RwLock::new(Permissions::default()),
            connections: Mutex::new(BTreeMap::new()),
            closers: Mutex::new(HashMap::new()),
            alarm: watch::Sender::new(None),
            quota_bytes: AtomicU64::new(config_quota),
            connection_filter: RwLock::new(None),
            plugins: RwLock::new(config_plugins),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            next_connection: AtomicU64::new(1),
            save_lock: tokio::sync::Mutex::new(()),
        });
        let first_start = defs.is_none();
        match defs {
            Some(d) => broker.restore(d).await?,
            None => broker.first_start().await?,
        }
        if first_start {
            broker.save().await?;
        }
        tokio::spawn(watch_resources(Arc::downgrade(&broker)));
        // Saves asked for by changes the broker makes on its own.
        let weak = Arc::downgrade(&broker);
        tokio::spawn(async move {
            while save_rx.recv().await.is_some() {
                while save_rx.try_recv().is_ok() {}
                let Some(b) = weak.upgrade() else { return };
                if let Err(e) = b.save().await {
                    warn!(error = %e, "cannot save the definitions");
                }
            }
        });
        Ok(broker)
    }

    async fn first_start(&self) -> Result<(), std::io::Error> {
        let (root, _) = self.open_vhost("/").await?;
        self.vhosts.write().insert("/".into(), root);
        if let Some((user, password)) = &self.config.default_user {
            self.users.write().insert(
                user.clone(),
                User::new(user, password, vec!["administrator".into()]),
            );
            self.permissions.write().set(Permission {
                user: user.clone(),
                vhost: "/".into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            });
        }
        info!("amqp broker initialised: vhost '/' and the default user");
        Ok(())
    }

    /// A vhost with its delayed-message log opened; answers the delayed messages the log
    /// still holds (re-armed once the vhost's exchanges and bindings are back).
    async fn open_vhost(&self, name: &str) -> Result<(Arc<VHost>, Recovered), std::io::Error> {
        let (store, acks, writer) = (
            self.core.store.clone(),
            self.core.acks_dir.clone(),
            self.core.writer.clone(),
        );
        let id = delayed_log_id(name);
        let (log, recovered) = tokio::task::spawn_blocking(move || {
            QueueLog::open(&store, &acks, &id, writer, u64::MAX)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok((VHost::new(name, self.core.clone(), Some(log)), recovered))
    }

    /// Rebuilds the broker from its definitions and queue logs.
    async fn restore(self: &Arc<Self>, d: Definitions) -> Result<(), std::io::Error> {
        let mut delayed = Vec::new();
        for v in &d.vhosts {
            let (vhost, recovered) = self.open_vhost(&v.name).await?;
            self.vhosts.write().insert(v.name.clone(), vhost.clone());
            delayed.push((vhost, recovered));
        }
        for u in &d.users {
            self.users.write().insert(
                u.name.clone(),
                User {
                    name: u.name.clone(),
                    password_hash: u.password_hash.clone(),
                    tags: split_tags(&u.tags),
                },
            );
        }
        for p in &d.permissions {
            self.permissions.write().set(Permission {
                user: p.user.clone(),
                vhost: p.vhost.clone(),
                configure: p.configure.clone(),
                write: p.write.clone(),
                read: p.read.clone(),
            });
        }
        for e in &d.exchanges {
            let (Some(v), Some(kind)) = (self.vhost(&e.vhost), ExchangeKind::parse(&e.kind)) else {
                continue;
            };
            let _ = v.declare_exchange(
                &e.name,
                kind,
                e.durable,
                e.auto_delete,
                e.internal,
                json_to_table(&e.arguments),
            );
        }
        let mut messages = 0usize;
        for q in &d.queues {
            let Some(v) = self.vhost(&q.vhost) else {
                continue;
            };
            let arguments = json_to_table(&q.arguments);
            let settings = match QueueSettings::parse(&arguments, &q.name, &q.vhost) {
                Ok(s) => s,
                Err(e) => {
                    warn!(queue = %q.name, error = %e, "stored queue has bad arguments; skipped");
                    continue;
                }
            };
            let (log, restored) = match &q.opendms_log {
                Some(id) => {
                    let (store, acks, writer, id) = (
                        self.core.store.clone(),
                        self.core.acks_dir.clone(),
                        self.core.writer.clone(),
                        id.clone(),
                    );
                    let opened = tokio::task::spawn_blocking(move || {
                        QueueLog::open(&store, &acks, &id, writer, RECOVER_IN_MEMORY_BYTES)
                    })
                    .await
                    .map_err(std::io::Error::other)??;
                    (Some(opened.0), opened.1)
                }
                None => (None, Vec::new()),
            };
            let queue = Queue::new(
                &q.name,
                &q.vhost,
                q.durable,
                q.auto_delete,
                None,
                arguments,
                settings,
                v.hooks(),
                log,
            );
            messages += restored.len();
            queue.restore(restored);
            let _ = v.insert_queue(queue.clone());
            queue.drain();
        }
        for b in &d.bindings {
            let Some(v) = self.vhost(&b.vhost) else {
                continue;
            };
            let destination = if b.destination_type == "exchange" {
                Destination::Exchange(b.destination.clone())
            } else {
                Destination::Queue(b.destination.clone())
            };
            let _ = v.bind(
                &b.source,
                Binding {
                    destination,
                    routing_key: b.routing_key.clone(),
                    arguments: json_to_table(&b.arguments),
                },
            );
        }
        let mut delayed_messages = 0;
        for (vhost, recovered) in delayed {
            delayed_messages += recovered.len();
            vhost.restore_delayed(recovered);
        }
        info!(
            vhosts = d.vhosts.len(),
            queues = d.queues.len(),
            messages,
            delayed_messages,
            "amqp definitions and messages recovered"
        );
        Ok(())
    }

    /// What the definitions file holds now.
    pub fn snapshot(&self) -> Definitions {
        let mut d = Definitions {
            rabbit_version: definitions::RABBIT_VERSION.into(),
            rabbitmq_version: definitions::RABBIT_VERSION.into(),
            product_name: "RabbitMQ".into(),
            product_version: definitions::RABBIT_VERSION.into(),
            ..Definitions::default()
        };
        d.users = self
            .users
            .read()
            .values()
            .map(|u| UserDef {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
                hashing_algorithm: HASHING_ALGORITHM.into(),
                tags: u.tags.join(","),
                limits: serde_json::json!({}),
            })
            .collect();
        d.permissions = self
            .permissions
            .read()
            .all()
            .into_iter()
            .map(|p| PermissionDef {
                user: p.user,
                vhost: p.vhost,
                configure: p.configure,
                write: p.write,
                read: p.read,
            })
            .collect();
        for v in self.vhosts() {
            d.vhosts.push(VHostDef {
                name: v.name.clone(),
            });
            for e in v
                .exchanges()
                .iter()
                .filter(|e| e.durable && !e.name.starts_with("amq."))
            {
                d.exchanges.push(ExchangeDef {
                    name: e.name.clone(),
                    vhost: v.name.clone(),
                    kind: e.kind.as_str().into(),
                    durable: true,
                    auto_delete: e.auto_delete,
                    internal: e.internal,
                    arguments: table_to_json(&e.arguments),
                });
            }
            for q in v.queues().iter().filter(|q| q.durable) {
                d.queues.push(QueueDef {
                    name: q.name.clone(),
                    vhost: v.name.clone(),
                    durable: true,
                    auto_delete: q.auto_delete,
                    arguments: table_to_json(&q.arguments),
                    opendms_log: q.log().map(|l| l.id.clone()),
                });
            }
            for (source, b) in v.bindings() {
                if source.is_empty() {
                    continue;
                }
                if v.binding_is_durable(&source, &b) {
                    d.bindings.push(BindingDef {
                        source,
                        vhost: v.name.clone(),
                        destination: b.destination.name().to_string(),
                        destination_type: b.destination.kind().into(),
                        routing_key: b.routing_key.clone(),
                        arguments: table_to_json(&b.arguments),
                    });
                }
            }
        }
        d
    }

    /// Writes the definitions as they are now; answers once they are on disk.
    pub async fn save(&self) -> Result<(), std::io::Error> {
        let _one_at_a_time = self.save_lock.lock().await;
        let snapshot = self.snapshot();
        let path = self.definitions_path.clone();
        tokio::task::spawn_blocking(move || definitions::save(&path, &snapshot))
            .await
            .map_err(std::io::Error::other)?
    }

    async fn save_or_internal(&self) -> Result<(), AmqpError> {
        self.save()
            .await
            .map_err(|e| AmqpError::internal(format!("cannot store definitions: {e}")))
    }

    // ---- vhosts, users, permissions --------------------------------------------------

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    pub async fn add_vhost(&self, name: &str) -> Result<bool, AmqpError> {
        if self.vhosts.read().contains_key(name) {
            return Ok(false);
        }
        let (vhost, _) = self
            .open_vhost(name)
            .await
            .map_err(|e| AmqpError::internal(format!("cannot create the vhost's storage: {e}")))?;
        let created = {
            let mut v = self.vhosts.write();
            if v.contains_key(name) {
                false
            } else {
                v.insert(name.to_string(), vhost.clone());
                true
            }
        };
        if created {
            self.save_or_internal().await?;
        } else {
            vhost.remove_delayed_log();
        }
        Ok(created)
    }

    pub async fn delete_vhost(&self, name: &str) -> Result<bool, AmqpError> {
        let Some(v) = self.vhosts.write().remove(name) else {
            return Ok(false);
        };
        for q in v.queues() {
            if let Some(q) = v.remove_queue(&q.name) {
                v.forget(q);
            }
        }
        v.remove_delayed_log();
        self.permissions.write().remove_vhost(name);
        self.close_connections(|c| c.vhost == name, "vhost deleted");
        self.save_or_internal().await?;
        Ok(true)
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    pub fn users(&self) -> Vec<User> {
        self.users.read().values().cloned().collect()
    }

    pub async fn put_user(&self, user: User) -> Result<(), AmqpError> {
        self.users.write().insert(user.name.clone(), user);
        self.save_or_internal().await
    }

    pub async fn delete_user(&self, name: &str) -> Result<bool, AmqpError> {
        let existed = self.users.write().remove(name).is_some();
        if existed {
            self.permissions.write().remove_user(name);
            self.close_connections(|c| c.user == name, "user deleted");
            self.save_or_internal().await?;
        }
        Ok(existed)
    }

    pub fn permissions(&self) -> Vec<Permission> {
        self.permissions.read().all()
    }

    pub async fn set_permission(&self, p: Permission) -> Result<(), AmqpError> {
        self.permissions.write().set(p);
        self.save_or_internal().await
    }

    pub async fn clear_permission(&self, user: &str, vhost: &str) -> Result<bool, AmqpError> {
        let removed = self.permissions.write().remove(user, vhost);
        if removed {
            self.save_or_internal().await?;
        }
        Ok(removed)
    }

    pub fn may_access_vhost(&self, user: &str, vhost: &str) -> bool {
        self.permissions.read().has_vhost(user, vhost)
    }

    /// Checks `access` to a resource, as RabbitMQ refuses it.
    pub fn check(
        &self,
        user: &str,
        vhost: &str,
        access: Access,
        kind: &str,
        name: &str,
    ) -> Result<(), AmqpError> {
        if self.permissions.read().allows(user, vhost, access, name) {
            return Ok(());
        }
        // RabbitMQ names the resource, not the kind of access.
        let _ = access;
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
        )))
    }

    // ---- queues ----------------------------------------------------------------------

    /// queue.declare: the queue, and whether it was created.
    pub async fn declare_queue(
        &self,
        vhost: &Arc<VHost>,
        d: QueueDeclare<'_>,
    ) -> Result<(Arc<Queue>, bool), AmqpError> {
        let locked = |q: &Queue| {
            AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                q.name, vhost.name
            ))
        };
        if let Some(q) = vhost.queue(d.name) {
            if q.exclusive_owner.is_some() && q.exclusive_owner != d.connection {
                return Err(locked(&q));
            }
            if !d.passive {
                let settings = QueueSettings::parse(&d.arguments, d.name, &vhost.name)?;
                vhost.check_equivalent(&q, d.durable, d.auto_delete, &settings)?;
                if d.exclusive != q.exclusive_owner.is_some() {
                    return Err(locked(&q));
                }
            }
            q.touch();
            return Ok((q, false));
        }
        if d.passive {
            return Err(vhost.no_queue(d.name));
        }
        let settings = QueueSettings::parse(&d.arguments, d.name, &vhost.name)?;
        if settings.kind == QueueKind::Quorum {
            let bad = |what: &str| {
                AmqpError::precondition(format!(
                    "invalid property '{what}' for queue '{}' in vhost '{}'",
                    d.name, vhost.name
                ))
            };
            if !d.durable {
                return Err(bad("non-durable"));
            }
            if d.exclusive {
                return Err(bad("exclusive-owner"));
            }
            if d.auto_delete {
                return Err(bad("auto-delete"));
            }
        }
        let log = if d.durable {
            let (store, acks, writer, id) = (
                self.core.store.clone(),
                self.core.acks_dir.clone(),
                self.core.writer.clone(),
                generated_storage_id("q-"),
            );
            let (log, _) =
                tokio::task::spawn_blocking(move || QueueLog::open(&store, &acks, &id, writer, 0))
                    .await
                    .map_err(|e| AmqpError::internal(e.to_string()))?
                    .map_err(|e| {
                        AmqpError::internal(format!("cannot create the queue's storage: {e}"))
                    })?;
            Some(log)
        } else {
            None
        };
        let queue = Queue::new(
            d.name,
            &vhost.name,
            d.durable,
            d.auto_delete,
            d.exclusive.then_some(d.connection).flatten(),
            d.arguments,
            settings,
            vhost.hooks(),
            log.clone(),
        );
        match vhost.insert_queue(queue) {
            Ok(q) => {
                if q.durable {
                    self.save_or_internal().await?;
                }
                q.touch();
                Ok((q, true))
            }
            // Another connection declared it meanwhile: theirs stands.
            Err(existing) => {
                if let Some(log) = log {
                    self.core.remove_log(log);
                }
                Ok((existing, false))
            }
        }
    }

    /// queue.delete: answers how many messages the queue held.
    pub async fn delete_queue(
        &self,
        vhost: &Arc<VHost>,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection: Option<u64>,
    ) -> Result<usize, AmqpError> {
        let Some(q) = vhost.queue(name) else {
            return Ok(0);
        };
        if q.exclusive_owner.is_some() && connection.is_some() && q.exclusive_owner != connection {
            return Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{name}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                vhost.name
            )));
        }
        let (ready, _, consumers) = q.counts();
        if if_unused && consumers > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{}' in use",
                vhost.name
            )));
        }
        if if_empty && ready > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{}' not empty",
                vhost.name
            )));
        }
        let Some(q) = vhost.remove_queue(name) else {
            return Ok(0);
        };
        let durable = q.durable;
        let n = vhost.forget(q);
        if durable {
            self.save_or_internal().await?;
        }
        Ok(n)
    }

    /// exchange.declare (not passive): answers whether it was created.
    pub async fn declare_exchange(
        &self,
        vhost: &Arc<VHost>,
        d: ExchangeDeclare,
    ) -> Result<bool, AmqpError> {
        let created = vhost.declare_exchange(
            &d.name,
            d.kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments,
        )?;
        if created && d.durable {
            self.save_or_internal().await?;
        }
        Ok(created)
    }

    pub async fn delete_exchange(
        &self,
        vhost: &Arc<VHost>,
        name: &str,
        if_unused: bool,
    ) -> Result<(), AmqpError> {
        if let Some(ex) = vhost.delete_exchange(name, if_unused)? {
            if ex.durable {
                self.save_or_internal().await?;
            }
        }
        Ok(())
    }

    pub async fn bind(
        &self,
        vhost: &Arc<VHost>,
        source: &str,
        b: Binding,
    ) -> Result<(), AmqpError> {
        // Only bindings between durable ends are stored (RabbitMQ's rule): a transient one
        // does not rewrite the definitions (20,000 transient exchange bindings took 212 s,
        // a definitions write and fsync each).
        let durable = vhost.binding_is_durable(source, &b);
        vhost.bind(source, b)?;
        if durable {
            self.save_or_internal().await?;
        }
        Ok(())
    }

    pub async fn unbind(
        &self,
        vhost: &Arc<VHost>,
        source: &str,
        b: &Binding,
    ) -> Result<bool, AmqpError> {
        let durable = vhost.binding_is_durable(source, b);
        let removed = vhost.unbind(source, b)?;
        // The last unbind deletes an auto-delete exchange, durable or not.
        if removed && (durable || vhost.exchange(source).is_none()) {
            self.save_or_internal().await?;
        }
        Ok(removed)
    }

    // ---- definitions ------------------------------------------------------------------

    /// Imports definitions (the management API's POST /api/definitions): what they name
    /// is created or updated; nothing is deleted. Users keep the password hash given.
    pub async fn import(&self, d: Definitions) -> Result<(), AmqpError> {
        for v in &d.vhosts {
            self.add_vhost(&v.name).await?;
        }
        for u in &d.users {
            self.users.write().insert(
                u.name.clone(),
                User {
                    name: u.name.clone(),
                    password_hash: u.password_hash.clone(),
                    tags: split_tags(&u.tags),
                },
            );
        }
        for p in &d.permissions {
            self.permissions.write().set(Permission {
                user: p.user.clone(),
                vhost: p.vhost.clone(),
                configure: p.configure.clone(),
                write: p.write.clone(),
                read: p.read.clone(),
            });
        }
        let vhost = |name: &str| {
            self.vhost(name)
                .ok_or_else(|| AmqpError::not_found(format!("no vhost '{name}'")))
        };
        for e in &d.exchanges {
            let kind = ExchangeKind::parse(&e.kind).ok_or_else(|| {
                AmqpError::command_invalid(format!("unknown exchange type '{}'", e.kind))
            })?;
            self.declare_exchange(
                &vhost(&e.vhost)?,
                ExchangeDeclare {
                    name: e.name.clone(),
                    kind,
                    durable: e.durable,
                    auto_delete: e.auto_delete,
                    internal: e.internal,
                    arguments: json_to_table(&e.arguments),
                },
            )
            .await?;
        }
        for q in &d.queues {
            self.declare_queue(
                &vhost(&q.vhost)?,
                QueueDeclare {
                    name: &q.name,
                    passive: false,
                    durable: q.durable,
                    exclusive: false,
                    auto_delete: q.auto_delete,
                    arguments: json_to_table(&q.arguments),
                    connection: None,
                },
            )
            .await?;
        }
        for b in &d.bindings {
            let destination = if b.destination_type == "exchange" {
                Destination::Exchange(b.destination.clone())
            } else {
                Destination::Queue(b.destination.clone())
            };
            self.bind(
                &vhost(&b.vhost)?,
                &b.source,
                Binding {
                    destination,
                    routing_key: b.routing_key.clone(),
                    arguments: json_to_table(&b.arguments),
                },
            )
            .await?;
        }
        self.save_or_internal().await
    }

    // ---- connections -----------------------------------------------------------------

    pub(crate) fn register(&self, info: ConnectionInfo) -> watch::Receiver<Option<String>> {
        let (tx, rx) = watch::channel(None);
        self.closers.lock().insert(info.id, tx);
        self.connections.lock().insert(info.id, info);
        rx
    }

    pub(crate) fn update_connection(&self, id: u64, f: impl FnOnce(&mut ConnectionInfo)) {
        if let Some(c) = self.connections.lock().get_mut(&id) {
            f(c);
        }
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.connections.lock().remove(&id);
        self.closers.lock().remove(&id);
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.connections.lock().values().cloned().collect()
    }

    /// Closes connections (connection.close 320 CONNECTION_FORCED with `reason`).
    pub fn close_connections(
        &self,
        which: impl Fn(&ConnectionInfo) -> bool,
        reason: &str,
    ) -> usize {
        let ids: Vec<u64> = self
            .connections
            .lock()
            .values()
            .filter(|c| which(c))
            .map(|c| c.id)
            .collect();
        let closers = self.closers.lock();
        for id in &ids {
            if let Some(tx) = closers.get(id) {
                let _ = tx.send(Some(reason.to_string()));
            }
        }
        ids.len()
    }

    /// Whether a plug-in is switched on.
    pub fn plugin_enabled(&self, plugin: &str) -> bool {
        self.plugins.read().contains(plugin)
    }

    /// Whether exchanges of `kind` can be declared now: the built-in types always, a
    /// plug-in's type while its plug-in is on (off, RabbitMQ does not know the type).
    pub fn exchange_kind_enabled(&self, kind: ExchangeKind) -> bool {
        kind.plugin().is_none_or(|p| self.plugin_enabled(p))
    }

    /// The exchange type a declare names, if it can be declared now.
    pub fn exchange_kind(&self, name: &str) -> Option<ExchangeKind> {
        ExchangeKind::parse(name).filter(|k| self.exchange_kind_enabled(*k))
    }

    /// The plug-ins switched on.
    pub fn plugins(&self) -> Vec<String> {
        self.plugins.read().iter().cloned().collect()
    }

    /// Switches a plug-in on or off. Switched off, its exchange type can no longer be
    /// declared (existing exchanges of the type keep routing). An unknown name is refused.
    pub fn set_plugin(&self, plugin: &str, enabled: bool) -> Result<(), AmqpError> {
        if !PLUGINS.contains(&plugin) {
            return Err(AmqpError::not_found(format!("no plugin '{plugin}'")));
        }
        let mut plugins = self.plugins.write();
        if enabled {
            plugins.insert(plugin.to_string());
        } else {
            plugins.remove(plugin);
        }
        Ok(())
    }

    /// The storage quota now.
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.quota_bytes.load(Ordering::Relaxed) {
            0 => None,
            q => Some(q),
        }
    }

    /// Changes the storage quota of a running broker (`None`: no quota).
    pub fn set_quota_bytes(&self, quota: Option<u64>) {
        self.quota_bytes
            .store(quota.unwrap_or(0), Ordering::Relaxed);
    }

    /// Decides which client addresses may connect (`None`: every one). Open connections
    /// stay open.
    pub fn set_connection_filter(&self, filter: Option<ConnectionFilter>) {
        *self.connection_filter.write() = filter;
    }

    /// Whether a client at `ip` may connect.
    pub fn admits(&self, ip: std::net::IpAddr) -> bool {
        self.connection_filter.read().as_ref().is_none_or(|f| f(ip))
    }

    /// (bytes read from clients, bytes written to them) since the broker started.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// Prepares the data directory of a broker that has never run with `user` as its
    /// administrator (full rights on vhost "/") instead of guest/guest; on a directory that
    /// has definitions, creates or resets that user. Blocking (hashing, fsync).
    pub fn provision_user(
        data_dir: &std::path::Path,
        user: &str,
        password: &str,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("definitions.json");
        let mut defs = definitions::load(&path)?.unwrap_or_else(|| Definitions {
            rabbit_version: definitions::RABBIT_VERSION.into(),
            rabbitmq_version: definitions::RABBIT_VERSION.into(),
            product_name: "RabbitMQ".into(),
            product_version: definitions::RABBIT_VERSION.into(),
            vhosts: vec![VHostDef { name: "/".into() }],
            ..Definitions::default()
        });
        let hashed = User::new(user, password, vec!["administrator".into()]);
        defs.users.retain(|u| u.name != user);
        defs.users.push(UserDef {
            name: user.to_string(),
            password_hash: hashed.password_hash,
            hashing_algorithm: HASHING_ALGORITHM.into(),
            tags: "administrator".into(),
            limits: serde_json::json!({}),
        });
        if !defs
            .permissions
            .iter()
            .any(|p| p.user == user && p.vhost == "/")
        {
            defs.permissions.push(PermissionDef {
                user: user.to_string(),
                vhost: "/".into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            });
        }
        definitions::save(&path, &defs)
    }

    /// The resource alarm connections watch (publishing waits while it is set).
    pub(crate) fn alarm(&self) -> watch::Receiver<Option<&'static str>> {
        self.alarm.subscribe()
    }

    /// The alarm now: `Some(reason)` while publishers are blocked.
    pub fn alarm_reason(&self) -> Option<&'static str> {
        *self.alarm.borrow()
    }

    /// Memory taken by queued messages: bodies in memory plus bookkeeping per message.
    pub fn queued_memory_bytes(&self) -> u64 {
        let messages: u64 = self
            .vhosts()
            .iter()
            .flat_map(|v| v.queues())
            .map(|q| {
                let (ready, unacked, _) = q.counts();
                (ready + unacked) as u64
            })
            .sum();
        self.core.memory.load(std::sync::atomic::Ordering::Relaxed) + messages * PER_MESSAGE_BYTES
    }

    /// Bytes of persistent messages on disk.
    pub fn used_bytes(&self) -> u64 {
        self.core.store.used_bytes()
    }

    /// Stops writing: queued disk writes finish first.
    pub fn stop(&self) {
        self.close_connections(|_| true, "broker shutdown");
        self.core.writer.stop();
        if let Err(e) = self.core.store.flush_all() {
            warn!(error = %e, "flushing queue logs at shutdown failed");
        }
    }
}

/// The storage id of a vhost's delayed-message log (vhost names may hold any character).
fn delayed_log_id(vhost: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(vhost.as_bytes());
    format!(
        "delayed-{}",
        digest
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}
