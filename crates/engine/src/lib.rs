//! The engines behind OpenDMS instances.
//!
//! The control plane decides what should run; this crate runs it. Today there is one
//! engine, the embedded Kafka broker of the `kafka` crate, so [`Engines`] is a plain struct.
//! When the AMQP and RocketMQ brokers arrive, the per-engine part becomes a trait with one
//! implementation per broker; the control plane already talks to it only through
//! [`InstancePlan`] and [`Engines`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kafka::{KafkaConfig, KafkaInstance};
use msglog::QuotaPolicy;
use parking_lot::Mutex;
use tracing::{info, warn};

pub use kafka::security::{
    AclBinding, AllowList, Operation, PatternType, Permission, ResourceType,
};
pub use kafka::{KafkaAdmin, PartitionOffsets, TopicError, TopicSummary};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("instance {0} is not running")]
    NotRunning(String),
    #[error("cannot start the brokers: {0}")]
    Start(#[from] kafka::InstanceError),
    #[error("cannot remove the data of the instance: {0}")]
    RemoveData(std::io::Error),
    #[error("cannot store the SASL user of the instance: {0}")]
    PrepareUser(std::io::Error),
    #[error("engine {0:?} is not available in this build")]
    UnsupportedEngine(String),
}

/// Everything an engine needs to run one instance.
#[derive(Clone, Debug)]
pub struct InstancePlan {
    pub instance_id: String,
    pub engine: String,
    pub data_dir: PathBuf,
    /// One address per broker.
    pub listeners: Vec<SocketAddr>,
    pub advertised_host: Option<String>,
    pub max_partitions: Option<u32>,
    pub quota_bytes: Option<u64>,
    pub quota_policy: QuotaPolicy,
    pub auto_create_topics: bool,
    /// Require SASL (SCRAM or PLAIN) on every connection.
    pub sasl: bool,
    /// Enforce Kafka ACLs; `super_users` (`User:name`) bypass them.
    pub authorizer: bool,
    pub super_users: Vec<String>,
    /// Client networks allowed to connect; `None` lets everyone in.
    pub allowed_ips: Option<Vec<String>>,
    /// Consumer groups declared through the APIs, registered in the broker at start.
    pub declared_groups: Vec<String>,
    /// Default topic retention in hours.
    pub retention_hours: i64,
}

/// The running brokers of every instance, by instance id.
#[derive(Default)]
pub struct Engines {
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    instance: KafkaInstance,
    admin: KafkaAdmin,
}

impl Engines {
    pub fn new() -> Arc<Engines> {
        Arc::new(Engines::default())
    }

    /// Starts the brokers of an instance; a running instance is left as it is.
    pub async fn start(&self, plan: &InstancePlan) -> Result<(), EngineError> {
        if plan.engine != "kafka" {
            return Err(EngineError::UnsupportedEngine(plan.engine.clone()));
        }
        if self.running.lock().contains_key(&plan.instance_id) {
            return Ok(());
        }
        let mut cfg = KafkaConfig::new(plan.data_dir.clone(), plan.listeners.clone());
        cfg.advertised_host = plan.advertised_host.clone();
        cfg.auto_create_topics = plan.auto_create_topics;
        cfg.max_partitions = plan.max_partitions;
        cfg.sasl = plan.sasl;
        cfg.authorizer = plan.authorizer;
        cfg.super_users = plan.super_users.clone();
        cfg.allowed_ips = plan.allowed_ips.clone();
        cfg.store.quota_bytes = plan.quota_bytes;
        cfg.store.quota_policy = plan.quota_policy;
        cfg.log.retention_ms =
            (plan.retention_hours >= 0).then(|| plan.retention_hours * 3_600_000);
        cfg.retention_check_interval = Duration::from_secs(30);
        let instance = KafkaInstance::start(cfg).await?;
        let admin = instance.admin();
        for group in &plan.declared_groups {
            admin.declare_group(group);
        }
        info!(instance = %plan.instance_id, bootstrap = %instance.bootstrap_servers(), "brokers started");
        let previous = self
            .running
            .lock()
            .insert(plan.instance_id.clone(), Running { instance, admin });
        if let Some(previous) = previous {
            // Two concurrent starts of one instance cannot both bind the same addresses, so
            // this is unreachable in practice; stop the older one rather than leak it.
            warn!(instance = %plan.instance_id, "instance was started twice");
            previous.instance.shutdown().await;
        }
        Ok(())
    }

    /// Stops the brokers of an instance and makes its data durable. Stopping a stopped
    /// instance does nothing.
    pub async fn stop(&self, instance_id: &str) {
        let running = self.running.lock().remove(instance_id);
        if let Some(running) = running {
            running.instance.shutdown().await;
            info!(instance = %instance_id, "brokers stopped");
        }
    }

    /// Stops the brokers and deletes every byte the instance stored.
    pub async fn destroy(&self, instance_id: &str, data_dir: PathBuf) -> Result<(), EngineError> {
        self.stop(instance_id).await;
        let removed =
            tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&data_dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .await
            .map_err(|e| EngineError::RemoveData(std::io::Error::other(e)))?;
        removed.map_err(EngineError::RemoveData)
    }

    pub async fn stop_all(&self) {
        let all: Vec<(String, Running)> = self.running.lock().drain().collect();
        for (id, running) in all {
            running.instance.shutdown().await;
            info!(instance = %id, "brokers stopped");
        }
    }

    pub fn is_running(&self, instance_id: &str) -> bool {
        self.running.lock().contains_key(instance_id)
    }

    /// Administration handle of a running instance.
    pub fn admin(&self, instance_id: &str) -> Result<KafkaAdmin, EngineError> {
        self.running
            .lock()
            .get(instance_id)
            .map(|r| r.admin.clone())
            .ok_or_else(|| EngineError::NotRunning(instance_id.to_string()))
    }

    /// Creates or resets a SASL user of an instance that is not running yet, so that the
    /// password never has to be kept by the control plane: only the broker's SCRAM hashes
    /// are stored.
    pub async fn prepare_user(
        data_dir: PathBuf,
        user: String,
        password: String,
    ) -> Result<(), EngineError> {
        let res = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&data_dir)?;
            kafka::security::UserStore::open(&data_dir.join("users.json"))
                .and_then(|users| users.set_password(&user, &password))
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| EngineError::PrepareUser(std::io::Error::other(e)))?;
        res.map_err(EngineError::PrepareUser)
    }
}
