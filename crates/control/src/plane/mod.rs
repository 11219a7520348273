//! The control plane: every API operation as one function over the metadata store, and the
//! reconciler that makes the brokers match it.
//!
//! A request is validated, recorded in the store (desired state and a transitional status),
//! and answered; the reconciler then does the work through the [`Engines`] and records the
//! outcome. Statuses only advance when the brokers did what the status says.
//!
//! One file per family of operations: `instances` (create, show, list, update, delete,
//! restart, resize), `reconciler` (what happens after), `addresses` (the broker address
//! pool), `tasks` (background tasks, tags, quotas), `topics`, `groups`, `security` (users,
//! access rules, allowed networks) and `orders` (Alibaba's order-then-deploy lifecycle).

mod addresses;
mod groups;
mod instances;
mod migration;
mod orders;
mod rabbitmq;
mod reconciler;
mod rocketmq;
mod security;
mod tasks;
#[cfg(test)]
mod tests;
mod topics;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{BrokerAdmin, Engines};
use parking_lot::Mutex;
use store::{InstanceRecord, MetaStore};
use tokio::sync::oneshot;
use tracing::info;

use crate::catalog::{self, Zone};
use crate::error::ControlError;
use crate::lifecycle::LifecycleControls;
use crate::model::*;

pub use instances::BatchOutcome;
pub use migration::{start_date, MigrationKind};
pub use orders::UpgradeRequest;
pub use rocketmq::{
    permission_name, topic_permission, AccessPolicy, AclUserRequest, ConfigValue, MessageQuery,
    MqGroupRequest, MqTopicChange, MqTopicRequest,
};

const GIB: u64 = 1 << 30;

/// Settings of the control plane (the `[control]` part of the server's configuration).
#[derive(Clone, Debug)]
pub struct PlaneConfig {
    /// Instance data lives in `<data_dir>/instances/<id>`.
    pub data_dir: PathBuf,
    pub region: String,
    /// First address of the pool broker listeners are taken from.
    pub broker_ip_pool: Ipv4Addr,
    /// Number of addresses in the pool.
    pub broker_ip_pool_size: u32,
    /// Every Kafka broker listens on this port at its own address, as in the cloud.
    pub broker_port: u16,
    /// Every RabbitMQ instance's AMQP port (5672 in the cloud) and management API port
    /// (15672), at its own address.
    pub amqp_port: u16,
    pub amqp_management_port: u16,
    /// Every RocketMQ instance's name server port (8100 in the cloud) and broker port
    /// (10100), at their own addresses.
    pub rocketmq_namesrv_port: u16,
    pub rocketmq_broker_port: u16,
    /// Host advertised to clients instead of the listen addresses.
    pub advertised_host: Option<String>,
    /// Instances a project may have (`show_quotas`).
    pub instance_quota: u32,
    pub controls: LifecycleControls,
}

impl PlaneConfig {
    /// The smallest CIDR block that holds the whole broker address pool: the subnet every
    /// instance's brokers live in (`subnet_cidr`).
    pub fn broker_subnet(&self) -> String {
        let first = u32::from(self.broker_ip_pool);
        let last = first.saturating_add(self.broker_ip_pool_size.saturating_sub(1));
        let prefix = (first ^ last).leading_zeros();
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        format!("{}/{prefix}", Ipv4Addr::from(first & mask))
    }
}

/// Who is calling: from the verified credential or token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub engine: Option<EngineKind>,
    pub name: Option<String>,
    pub instance_id: Option<String>,
    pub status: Option<String>,
    pub include_failure: bool,
    pub exact_match_name: bool,
    pub offset: usize,
    pub limit: Option<usize>,
    /// A lookup that does not show the instances' statuses: it does not count as a read for
    /// the lifecycle's `delay_reads`.
    pub quiet: bool,
}

/// Waiting for an instance to be read a number of times before a transition completes.
struct ReadGate {
    remaining: u32,
    reached: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

pub struct ControlPlane {
    store: Arc<dyn MetaStore>,
    engines: Arc<Engines>,
    config: PlaneConfig,
    zones: Vec<Zone>,
    controls: Mutex<LifecycleControls>,
    /// Serialises address allocation with the insert that records it.
    create_lock: tokio::sync::Mutex<()>,
    /// One reconciliation at a time per instance.
    instance_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    read_gates: Mutex<HashMap<String, ReadGate>>,
}

/// Milliseconds since the Unix epoch: the clock of every record and sample.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl ControlPlane {
    pub fn new(store: Arc<dyn MetaStore>, engines: Arc<Engines>, config: PlaneConfig) -> Arc<Self> {
        Arc::new(ControlPlane {
            zones: catalog::zones(&config.region),
            controls: Mutex::new(config.controls.clone()),
            store,
            engines,
            config,
            create_lock: tokio::sync::Mutex::new(()),
            instance_locks: Mutex::new(HashMap::new()),
            read_gates: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &PlaneConfig {
        &self.config
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// Whether this build runs instances of `kind`.
    pub fn engine_available(&self, kind: EngineKind) -> bool {
        self.engines.is_available(kind)
    }

    pub fn controls(&self) -> LifecycleControls {
        self.controls.lock().clone()
    }

    pub fn set_controls(&self, controls: LifecycleControls) {
        info!(?controls, "lifecycle controls changed");
        *self.controls.lock() = controls;
    }

    pub(crate) fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    pub(crate) fn engines(&self) -> &Arc<Engines> {
        &self.engines
    }

    pub(crate) fn instance_dir(&self, id: &str) -> PathBuf {
        self.config.data_dir.join("instances").join(id)
    }

    /// The record of an instance of the caller's project.
    pub(crate) async fn record(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<InstanceRecord, ControlError> {
        if !uuid_like(id) {
            return Err(ControlError::InvalidInstanceId(id.to_string()));
        }
        match self.store.instance(id).await? {
            Some(r) if r.project_id == project_id => Ok(r),
            _ => Err(ControlError::InstanceNotFound(id.to_string())),
        }
    }

    /// The record of an instance of the caller's project that runs `kind`; another engine's
    /// instance is refused as not supported by this operation.
    pub(crate) async fn record_of_engine(
        &self,
        project_id: &str,
        id: &str,
        kind: EngineKind,
    ) -> Result<InstanceRecord, ControlError> {
        let r = self.record(project_id, id).await?;
        let engine = engine_of(&r)?;
        if engine != kind {
            return Err(ControlError::NotSupported(format!(
                "the operation is for {kind} instances; instance {id} is a {engine} instance"
            )));
        }
        Ok(r)
    }

    /// The engine of an instance: what a path shared by several engines is dispatched on.
    pub async fn instance_engine(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<EngineKind, ControlError> {
        engine_of(&self.record(project_id, id).await?)
    }

    pub(crate) async fn view(&self, r: InstanceRecord) -> Result<InstanceView, ControlError> {
        let doc = InstanceDoc::of(&r)?;
        let used_bytes = self
            .engines
            .admin(&r.id)
            .map(|a| a.usage().used_bytes)
            .unwrap_or(0);
        let tags = self
            .store
            .tags(&r.id)
            .await?
            .into_iter()
            .map(|t| Tag {
                key: t.key,
                value: t.value,
            })
            .collect();
        Ok(InstanceView {
            status: InstanceStatus::of(&r),
            engine: engine_of(&r)?,
            id: r.id,
            project_id: r.project_id,
            name: r.name,
            status_reason: r.status_reason,
            doc,
            created_at_ms: r.created_at_ms,
            used_bytes,
            tags,
        })
    }

    /// The document and the admin handle of an instance whose brokers run.
    pub(crate) async fn running_admin(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<(InstanceDoc, Arc<dyn BrokerAdmin>), ControlError> {
        let r = self.record(project_id, id).await?;
        self.admin_of_running(&r)
    }

    /// `running_admin` of a record already read.
    pub(crate) fn admin_of_running(
        &self,
        r: &InstanceRecord,
    ) -> Result<(InstanceDoc, Arc<dyn BrokerAdmin>), ControlError> {
        let status = InstanceStatus::of(r);
        if status != InstanceStatus::Running && status != InstanceStatus::Extending {
            return Err(ControlError::Busy(status.as_str().into()));
        }
        let doc = InstanceDoc::of(r)?;
        let admin = self
            .engines
            .admin(&r.id)
            .map_err(|_| ControlError::Busy(status.as_str().into()))?;
        Ok((doc, admin))
    }

    /// Writes a changed record; a name another instance of the project has is refused.
    pub(crate) async fn save(&self, r: &InstanceRecord) -> Result<(), ControlError> {
        match self.store.update_instance(r).await {
            Err(store::StoreError::DuplicateName) => {
                Err(ControlError::DuplicateName(r.name.clone()))
            }
            other => Ok(other?),
        }
    }

    /// Replaces parts of an instance's document (renames go through `update_instance`).
    pub(crate) async fn edit_doc(
        &self,
        project_id: &str,
        id: &str,
        edit: impl FnOnce(&mut InstanceDoc) -> Result<(), ControlError>,
    ) -> Result<(), ControlError> {
        let mut r = self.record(project_id, id).await?;
        let mut doc = InstanceDoc::of(&r)?;
        edit(&mut doc)?;
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        self.save(&r).await
    }

    /// Stops every broker; the recorded state stays as it is for the next start.
    pub async fn shutdown(&self) {
        self.engines.stop_all().await;
    }
}

/// The engine a record names (records are only written by the control plane, so an unknown
/// name is corruption).
pub(crate) fn engine_of(r: &InstanceRecord) -> Result<EngineKind, ControlError> {
    EngineKind::parse(&r.engine).ok_or_else(|| {
        ControlError::Internal(format!(
            "instance {} names unknown engine {:?}",
            r.id, r.engine
        ))
    })
}

/// What an instance may use, from its document.
pub(crate) fn limits_of(doc: &InstanceDoc) -> engine::Limits {
    engine::Limits {
        storage_bytes: Some(doc.storage_space_gb.saturating_mul(GIB)),
        when_full: disk_full_policy(&doc.retention_policy),
        max_partitions: Some(doc.partition_num),
    }
}

/// Huawei's `retention_policy` names.
pub(crate) fn disk_full_policy(retention_policy: &str) -> engine::DiskFullPolicy {
    if retention_policy == "produce_reject" {
        engine::DiskFullPolicy::RejectWrites
    } else {
        engine::DiskFullPolicy::DeleteOldest
    }
}
