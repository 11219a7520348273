//! The control plane: every API operation as one function over the metadata store, and the
//! reconciler that makes the brokers match it.
//!
//! A request is validated, recorded in the store (desired state and a transitional status),
//! and answered; the reconciler then does the work through [`Engines`] and records the
//! outcome. Statuses only advance when the brokers did what the status says.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::{Engines, InstancePlan, TopicError};
use msglog::QuotaPolicy;
use parking_lot::Mutex;
use store::{InstanceRecord, MetaStore, TaskRecord};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::catalog::{self, Zone};
use crate::error::ControlError;
use crate::lifecycle::{LifecycleControls, Transition, TransitionControl};
use crate::model::*;
use crate::validation::{self, ValidCreate};

mod orders;
mod security;

pub use orders::{TopicSpec, UpgradeRequest};

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
    /// Every broker listens on this port at its own address, as in the cloud.
    pub broker_port: u16,
    /// Host advertised to clients instead of the listen addresses.
    pub advertised_host: Option<String>,
    /// Instances a project may have (`show_quotas`).
    pub instance_quota: u32,
    pub controls: LifecycleControls,
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
    pub engine: Option<String>,
    pub name: Option<String>,
    pub instance_id: Option<String>,
    pub status: Option<String>,
    pub include_failure: bool,
    pub exact_match_name: bool,
    pub offset: usize,
    pub limit: Option<usize>,
}

/// What a batch action answered: per-instance results, or nothing for `all_failure`.
pub enum BatchOutcome {
    Results(Vec<(String, bool)>),
    FailuresDeleted,
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

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
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

    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    pub fn engines(&self) -> &Arc<Engines> {
        &self.engines
    }

    pub fn controls(&self) -> LifecycleControls {
        self.controls.lock().clone()
    }

    pub fn set_controls(&self, controls: LifecycleControls) {
        info!(?controls, "lifecycle controls changed");
        *self.controls.lock() = controls;
    }

    pub(crate) fn instance_dir(&self, id: &str) -> PathBuf {
        self.config.data_dir.join("instances").join(id)
    }

    // ---- instances ------------------------------------------------------------------

    /// Records a new instance as `CREATING` (or `CREATEFAILED` when it cannot be given
    /// addresses) and hands it to the reconciler. Answers with its id at once.
    pub async fn create_instance(
        self: &Arc<Self>,
        caller: &Caller,
        req: &CreateInstanceRequest,
        shape: CreateShape,
    ) -> Result<String, ControlError> {
        let ValidCreate {
            name,
            engine,
            mut doc,
            sasl_user,
            tags,
        } = validation::validate_create(req, shape, &self.zones)?;
        doc.user_id = caller.user_id.clone();
        doc.user_name = caller.user_name.clone();
        let id = uuid::Uuid::new_v4().to_string();
        let _guard = self.create_lock.lock().await;
        let existing = self.store.instances(Some(&caller.project_id)).await?;
        if existing.iter().any(|r| r.name == name) {
            return Err(ControlError::DuplicateName(name));
        }
        let (status, reason) = match self.allocate_listeners(doc.broker_num).await? {
            Some(listeners) => {
                doc.listeners = listeners.iter().map(|a| a.to_string()).collect();
                (InstanceStatus::Creating, None)
            }
            None => (
                InstanceStatus::CreateFailed,
                Some(format!(
                    "no free broker addresses: the pool of {} addresses from {} is used up",
                    self.config.broker_ip_pool_size, self.config.broker_ip_pool
                )),
            ),
        };
        if let (Some((user, password)), InstanceStatus::Creating) = (sasl_user, status) {
            Engines::prepare_user(self.instance_dir(&id), user, password).await?;
        }
        let now = now_ms();
        let record = InstanceRecord {
            id: id.clone(),
            project_id: caller.project_id.clone(),
            engine,
            name: name.clone(),
            status: status.as_str().to_string(),
            status_reason: reason.clone(),
            document: serde_json::to_value(&doc)
                .map_err(|e| ControlError::Internal(e.to_string()))?,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let tags: Vec<store::Tag> = tags
            .into_iter()
            .map(|t| store::Tag {
                key: t.key,
                value: t.value,
            })
            .collect();
        match self.store.insert_instance(&record, &tags).await {
            Ok(()) => {}
            Err(store::StoreError::DuplicateName) => return Err(ControlError::DuplicateName(name)),
            Err(e) => return Err(e.into()),
        }
        drop(_guard);
        self.record_task(&id, caller, Transition::Create, "").await;
        info!(instance = %id, name = %record.name, status = %record.status, reason = ?reason, "instance created");
        self.kick(&id);
        Ok(id)
    }

    /// Picks `count` free addresses of the pool, or `None` when the pool is used up.
    pub(crate) async fn allocate_listeners(
        &self,
        count: u32,
    ) -> Result<Option<Vec<SocketAddr>>, ControlError> {
        let mut used: HashSet<String> = HashSet::new();
        for r in self.store.instances(None).await? {
            let doc = InstanceDoc::of(&r).unwrap_or_default();
            used.extend(doc.broker_ips());
        }
        let first = u32::from(self.config.broker_ip_pool);
        let mut out = Vec::new();
        for i in 0..self.config.broker_ip_pool_size {
            if out.len() as u32 == count {
                break;
            }
            let Some(n) = first.checked_add(i) else { break };
            let ip = Ipv4Addr::from(n);
            if !used.contains(&ip.to_string()) {
                out.push(SocketAddr::new(ip.into(), self.config.broker_port));
            }
        }
        Ok((out.len() as u32 == count).then_some(out))
    }

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

    pub(crate) async fn view(&self, r: InstanceRecord) -> Result<InstanceView, ControlError> {
        let doc = InstanceDoc::of(&r)?;
        let used_bytes = self
            .engines
            .admin(&r.id)
            .map(|a| a.used_bytes())
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
            id: r.id,
            project_id: r.project_id,
            engine: r.engine,
            name: r.name,
            status_reason: r.status_reason,
            doc,
            created_at_ms: r.created_at_ms,
            used_bytes,
            tags,
        })
    }

    /// One instance, as a GET of it. Counts as a read for `delay_reads`.
    pub async fn show_instance(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<InstanceView, ControlError> {
        let r = self.record(project_id, id).await?;
        let view = self.view(r).await?;
        self.note_read(id).await;
        Ok(view)
    }

    /// One instance, without counting as a read for `delay_reads` (for other façades'
    /// lookups that are not a GET of the instance).
    pub async fn show_instance_quietly(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<InstanceView, ControlError> {
        let r = self.record(project_id, id).await?;
        self.view(r).await
    }

    pub async fn list_instances(
        &self,
        project_id: &str,
        f: &ListFilter,
    ) -> Result<(Vec<InstanceView>, usize), ControlError> {
        let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                InstanceStatus::parse(s)
                    .ok_or_else(|| ControlError::InvalidStatusFilter(s.into()))?,
            ),
        };
        let mut out = Vec::new();
        for r in self.store.instances(Some(project_id)).await? {
            if let Some(e) = f.engine.as_deref().filter(|s| !s.is_empty()) {
                if r.engine != e {
                    continue;
                }
            }
            if let Some(n) = f.name.as_deref().filter(|s| !s.is_empty()) {
                let hit = if f.exact_match_name {
                    r.name == n
                } else {
                    r.name.contains(n)
                };
                if !hit {
                    continue;
                }
            }
            if let Some(i) = f.instance_id.as_deref().filter(|s| !s.is_empty()) {
                if r.id != i {
                    continue;
                }
            }
            let st = InstanceStatus::of(&r);
            if status.is_some_and(|want| want != st) {
                continue;
            }
            if st == InstanceStatus::CreateFailed && !f.include_failure && status.is_none() {
                continue;
            }
            out.push(self.view(r).await?);
        }
        let total = out.len();
        let page: Vec<InstanceView> = out
            .into_iter()
            .skip(f.offset)
            .take(f.limit.unwrap_or(usize::MAX))
            .collect();
        Ok((page, total))
    }

    pub async fn update_instance(
        &self,
        project_id: &str,
        id: &str,
        req: &UpdateInstanceRequest,
    ) -> Result<(), ControlError> {
        let mut r = self.record(project_id, id).await?;
        let status = InstanceStatus::of(&r);
        if status.is_busy() {
            return Err(ControlError::Busy(status.as_str().into()));
        }
        let mut doc = InstanceDoc::of(&r)?;
        if let Some(name) = req.name.as_deref() {
            validation::check_instance_name(name)?;
            r.name = name.to_string();
        }
        if let Some(d) = req.description.as_deref() {
            validation::check_description(d)?;
            doc.description = d.to_string();
        }
        match (req.maintain_begin.as_deref(), req.maintain_end.as_deref()) {
            (None, None) => {}
            (Some(b), Some(e)) => {
                let w =
                    catalog::maintain_window(b, e).ok_or(ControlError::InvalidMaintainWindow)?;
                doc.maintain_begin = w.begin.into();
                doc.maintain_end = w.end.into();
            }
            _ => return Err(ControlError::InvalidMaintainWindow),
        }
        if let Some(sg) = req.security_group_id.as_deref() {
            if sg.trim().is_empty() {
                return Err(ControlError::EmptyField("security_group_id"));
            }
            doc.security_group_id = sg.to_string();
        }
        let mut new_policy = None;
        if let Some(p) = req.retention_policy.as_deref() {
            let policy = match p {
                "time_base" => QuotaPolicy::TimeBase,
                "produce_reject" => QuotaPolicy::ProduceReject,
                _ => {
                    return Err(ControlError::InvalidParameter(format!(
                        "retention_policy {p:?}: must be time_base or produce_reject"
                    )))
                }
            };
            doc.retention_policy = p.to_string();
            new_policy = Some(policy);
        }
        if let Some(e) = req.enterprise_project_id.as_deref() {
            doc.enterprise_project_id = e.to_string();
        }
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        match self.store.update_instance(&r).await {
            Err(store::StoreError::DuplicateName) => {
                return Err(ControlError::DuplicateName(r.name))
            }
            other => other?,
        }
        if let (Some(policy), Ok(admin)) = (new_policy, self.engines.admin(id)) {
            admin.set_quota(Some(doc.storage_space_gb * GIB), policy);
        }
        Ok(())
    }

    /// Moves an instance to `to` when its status allows it, recording a task.
    async fn begin(
        self: &Arc<Self>,
        caller: &Caller,
        r: &InstanceRecord,
        transition: Transition,
        to: InstanceStatus,
        params: &str,
    ) -> Result<(), ControlError> {
        let status = InstanceStatus::of(r);
        let allowed = match transition {
            Transition::Delete => !matches!(
                status,
                InstanceStatus::Creating | InstanceStatus::Restarting | InstanceStatus::Deleting
            ),
            _ => status == InstanceStatus::Running,
        };
        if !allowed {
            return Err(match transition {
                Transition::Delete => ControlError::CannotDelete(r.id.clone()),
                _ => ControlError::Busy(status.as_str().into()),
            });
        }
        let moved = self
            .store
            .set_instance_status(&r.id, Some(&r.status), to.as_str(), None, now_ms())
            .await?;
        if !moved {
            return Err(ControlError::Busy("changing".into()));
        }
        self.record_task(&r.id, caller, transition, params).await;
        self.kick(&r.id);
        Ok(())
    }

    pub async fn delete_instance(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ControlError> {
        let r = self.record(&caller.project_id, id).await?;
        self.begin(caller, &r, Transition::Delete, InstanceStatus::Deleting, "")
            .await
    }

    pub async fn restart_instance(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ControlError> {
        let r = self.record(&caller.project_id, id).await?;
        self.begin(
            caller,
            &r,
            Transition::Restart,
            InstanceStatus::Restarting,
            "",
        )
        .await
    }

    pub async fn batch_action(
        self: &Arc<Self>,
        caller: &Caller,
        req: &BatchActionRequest,
    ) -> Result<BatchOutcome, ControlError> {
        let action = req.action.as_deref().unwrap_or("");
        if action != "delete" && action != "restart" {
            return Err(ControlError::InvalidAction);
        }
        if action == "delete" && req.all_failure.as_deref().is_some_and(|s| !s.is_empty()) {
            let engine = req.all_failure.clone().unwrap_or_default();
            for r in self.store.instances(Some(&caller.project_id)).await? {
                if r.status == InstanceStatus::CreateFailed.as_str() && r.engine == engine {
                    self.begin(caller, &r, Transition::Delete, InstanceStatus::Deleting, "")
                        .await?;
                }
            }
            return Ok(BatchOutcome::FailuresDeleted);
        }
        let ids = req.instances.clone().unwrap_or_default();
        if ids.is_empty() {
            return Err(ControlError::EmptyInstances);
        }
        if ids.len() > 50 {
            return Err(ControlError::TooManyInstances);
        }
        let mut results = Vec::new();
        for id in ids {
            let res = if action == "delete" {
                self.delete_instance(caller, &id).await
            } else {
                self.restart_instance(caller, &id).await
            };
            if let Err(e) = &res {
                info!(instance = %id, action, error = %e, "batch action refused for one instance");
            }
            results.push((id, res.is_ok()));
        }
        Ok(BatchOutcome::Results(results))
    }

    /// Starts an extension; answers the id of the task that does it.
    pub async fn resize_instance(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        req: &ResizeRequest,
    ) -> Result<String, ControlError> {
        let mut r = self.record(&caller.project_id, id).await?;
        let status = InstanceStatus::of(&r);
        if status != InstanceStatus::Running {
            return Err(ControlError::Busy(status.as_str().into()));
        }
        let mut doc = InstanceDoc::of(&r)?;
        match req.oper_type.as_deref().unwrap_or("storage") {
            "storage" => {}
            other => {
                return Err(ControlError::NotSupported(format!(
                    "oper_type {other:?} is not supported by OpenDMS; only storage extension is"
                )))
            }
        }
        let new = req
            .new_storage_space
            .ok_or_else(|| ControlError::InvalidStorage("new_storage_space is required".into()))?;
        let max = catalog::bandwidth_spec_by_product(&doc.product_id)
            .map(|s| u64::from(s.max_storage_gb))
            .or_else(|| {
                catalog::flavor(&doc.product_id)
                    .map(|f| u64::from(f.max_storage_per_node_gb) * u64::from(doc.broker_num))
            })
            .unwrap_or(u64::MAX);
        if new <= doc.storage_space_gb as i64 || new as u64 > max {
            return Err(ControlError::InvalidStorage(format!(
                "new_storage_space must be larger than {} and at most {max} GB",
                doc.storage_space_gb
            )));
        }
        if doc.extend_times >= 20 {
            return Err(ControlError::ExtendLimit);
        }
        doc.pending_storage_gb = Some(new as u64);
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        self.store.update_instance(&r).await?;
        let params = format!("{{\"new_storage_space\":{new}}}");
        self.begin(
            caller,
            &r,
            Transition::Extend,
            InstanceStatus::Extending,
            &params,
        )
        .await?;
        let task = self
            .store
            .tasks(id)
            .await?
            .into_iter()
            .find(|t| t.name == Transition::Extend.task_name())
            .map(|t| t.id)
            .unwrap_or_default();
        Ok(task)
    }

    // ---- tasks, tags, quotas --------------------------------------------------------

    pub(crate) async fn record_task(
        &self,
        instance_id: &str,
        caller: &Caller,
        t: Transition,
        params: &str,
    ) {
        let now = now_ms();
        let task = TaskRecord {
            id: uuid::Uuid::new_v4().to_string(),
            instance_id: instance_id.to_string(),
            name: t.task_name().to_string(),
            status: "EXECUTING".into(),
            params: params.to_string(),
            user_id: caller.user_id.clone(),
            user_name: caller.user_name.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        if let Err(e) = self.store.insert_task(&task).await {
            warn!(instance = %instance_id, error = %e, "cannot record a background task");
        }
    }

    async fn finish_task(&self, instance_id: &str, t: Transition, ok: bool) {
        let Ok(tasks) = self.store.tasks(instance_id).await else {
            return;
        };
        if let Some(task) = tasks
            .into_iter()
            .find(|x| x.name == t.task_name() && x.status == "EXECUTING")
        {
            let status = if ok { "SUCCESS" } else { "FAILED" };
            if let Err(e) = self.store.update_task(&task.id, status, now_ms()).await {
                warn!(instance = %instance_id, error = %e, "cannot update a background task");
            }
        }
    }

    pub async fn tasks(&self, project_id: &str, id: &str) -> Result<Vec<TaskRecord>, ControlError> {
        self.record(project_id, id).await?;
        Ok(self.store.tasks(id).await?)
    }

    pub async fn task(
        &self,
        project_id: &str,
        id: &str,
        task_id: &str,
    ) -> Result<TaskRecord, ControlError> {
        self.record(project_id, id).await?;
        self.store
            .task(id, task_id)
            .await?
            .ok_or_else(|| ControlError::TaskNotFound(task_id.to_string()))
    }

    pub async fn delete_task(
        &self,
        project_id: &str,
        id: &str,
        task_id: &str,
    ) -> Result<(), ControlError> {
        self.record(project_id, id).await?;
        if self.store.delete_task(id, task_id).await? {
            Ok(())
        } else {
            Err(ControlError::TaskNotFound(task_id.to_string()))
        }
    }

    pub async fn tags(&self, project_id: &str, id: &str) -> Result<Vec<Tag>, ControlError> {
        self.record(project_id, id).await?;
        Ok(self
            .store
            .tags(id)
            .await?
            .into_iter()
            .map(|t| Tag {
                key: t.key,
                value: t.value,
            })
            .collect())
    }

    pub async fn change_tags(
        &self,
        project_id: &str,
        id: &str,
        action: &str,
        tags: &[Tag],
    ) -> Result<(), ControlError> {
        self.record(project_id, id).await?;
        let tags: Vec<store::Tag> = tags
            .iter()
            .map(|t| store::Tag {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect();
        match action {
            "create" => {
                let as_model: Vec<Tag> = tags
                    .iter()
                    .map(|t| Tag {
                        key: t.key.clone(),
                        value: t.value.clone(),
                    })
                    .collect();
                validation::check_tags(&as_model)?;
                self.store.change_tags(id, &tags, &[]).await?
            }
            "delete" => self.store.change_tags(id, &[], &tags).await?,
            other => {
                return Err(ControlError::InvalidParameter(format!(
                    "action {other:?}: must be create or delete"
                )))
            }
        }
        Ok(())
    }

    pub async fn project_tags(
        &self,
        project_id: &str,
    ) -> Result<Vec<(String, Vec<String>)>, ControlError> {
        Ok(self.store.project_tags(project_id).await?)
    }

    /// (quota, used) of instances per engine in a project.
    pub async fn quotas(&self, project_id: &str) -> Result<Vec<(String, u32, u32)>, ControlError> {
        let all = self.store.instances(Some(project_id)).await?;
        Ok(["kafka", "rabbitmq", "rocketmq"]
            .iter()
            .map(|e| {
                let used = all.iter().filter(|r| r.engine == *e).count() as u32;
                (e.to_string(), self.config.instance_quota, used)
            })
            .collect())
    }

    // ---- topics ---------------------------------------------------------------------

    pub(crate) async fn running_admin(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<(InstanceDoc, engine::KafkaAdmin), ControlError> {
        let r = self.record(project_id, id).await?;
        let status = InstanceStatus::of(&r);
        if status != InstanceStatus::Running && status != InstanceStatus::Extending {
            return Err(ControlError::Busy(status.as_str().into()));
        }
        let doc = InstanceDoc::of(&r)?;
        let admin = self
            .engines
            .admin(id)
            .map_err(|_| ControlError::Busy(status.as_str().into()))?;
        Ok((doc, admin))
    }

    pub async fn topics(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<(InstanceDoc, Vec<TopicView>), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let mut topics: Vec<TopicView> = admin.topics().into_iter().map(topic_view).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((doc, topics))
    }

    pub async fn create_topic(
        &self,
        project_id: &str,
        id: &str,
        req: &CreateTopicRequest,
    ) -> Result<String, ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let name = req.id.clone().unwrap_or_default();
        validation::check_topic_name(&name)?;
        let partitions = req.partition.unwrap_or(3);
        if !(1..=MAX_TOPIC_PARTITIONS).contains(&partitions) {
            return Err(ControlError::TopicPartitions(MAX_TOPIC_PARTITIONS as i32));
        }
        let max_replicas = i64::from(doc.broker_num.clamp(1, 3));
        let replication = req.replication.unwrap_or(max_replicas);
        if !(1..=max_replicas).contains(&replication) {
            return Err(ControlError::TopicReplicas(max_replicas as i32));
        }
        let retention = req.retention_time.unwrap_or(72);
        if !(1..=168).contains(&retention) {
            return Err(ControlError::TopicRetention);
        }
        let mut configs = BTreeMap::new();
        configs.insert(
            "retention.ms".to_string(),
            (retention * 3_600_000).to_string(),
        );
        if req.sync_message_flush == Some(true) {
            configs.insert("flush.messages".into(), "1".into());
        }
        if req.sync_replication == Some(true) {
            configs.insert("min.insync.replicas".into(), "2".into());
        }
        for c in req.topic_other_configs.iter().flatten() {
            configs.insert(c.name.clone(), c.value.clone());
        }
        match admin
            .create_topic(name.clone(), partitions as i32, replication as i16, configs)
            .await
        {
            Ok(_) => {
                info!(instance = %id, topic = %name, partitions, "topic created through the api");
                Ok(name)
            }
            Err(TopicError::AlreadyExists(_)) => Err(ControlError::TopicExists(name)),
            Err(e) => Err(topic_error(e)),
        }
    }

    /// Deletes topics one by one; answers (name, deleted) for each.
    pub async fn delete_topics(
        &self,
        project_id: &str,
        id: &str,
        names: &[String],
    ) -> Result<Vec<(String, bool)>, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        let mut out = Vec::new();
        for n in names {
            let ok = admin.delete_topic(n.clone()).await;
            if let Err(e) = &ok {
                info!(instance = %id, topic = %n, error = %e, "topic not deleted");
            }
            out.push((n.clone(), ok.is_ok()));
        }
        Ok(out)
    }

    pub async fn update_topics(
        &self,
        project_id: &str,
        id: &str,
        entries: &[UpdateTopicEntry],
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        // Check everything first so that a bad entry changes nothing.
        let mut plans = Vec::new();
        for e in entries {
            let name = e.id.clone().unwrap_or_default();
            let current = admin.topic(&name).ok_or_else(|| {
                ControlError::TopicRejected(format!("topic {name:?} does not exist"))
            })?;
            let mut configs = current.configs.clone();
            if let Some(r) = e.retention_time {
                if !(1..=168).contains(&r) {
                    return Err(ControlError::TopicRetention);
                }
                configs.insert("retention.ms".into(), (r * 3_600_000).to_string());
            }
            match e.sync_message_flush {
                Some(true) => {
                    configs.insert("flush.messages".into(), "1".into());
                }
                Some(false) => {
                    configs.remove("flush.messages");
                }
                None => {}
            }
            match e.sync_replication {
                Some(true) => {
                    configs.insert("min.insync.replicas".into(), "2".into());
                }
                Some(false) => {
                    configs.remove("min.insync.replicas");
                }
                None => {}
            }
            for c in e.topic_other_configs.iter().flatten() {
                configs.insert(c.name.clone(), c.value.clone());
            }
            if let Some(p) = e.new_partition_numbers {
                if p <= i64::from(current.partitions) || p > MAX_TOPIC_PARTITIONS {
                    return Err(ControlError::TopicPartitions(MAX_TOPIC_PARTITIONS as i32));
                }
            }
            plans.push((name, configs, e.new_partition_numbers));
        }
        for (name, configs, partitions) in plans {
            admin
                .set_topic_configs(name.clone(), configs)
                .await
                .map_err(topic_error)?;
            if let Some(p) = partitions {
                admin
                    .add_partitions(name, p as i32)
                    .await
                    .map_err(topic_error)?;
            }
        }
        Ok(())
    }

    // ---- reconciler -----------------------------------------------------------------

    /// Brings every recorded instance to its recorded state; called once at start-up.
    pub async fn reconcile_all(self: &Arc<Self>) -> Result<(), ControlError> {
        for r in self.store.instances(None).await? {
            self.kick(&r.id);
        }
        Ok(())
    }

    /// Schedules a reconciliation of one instance.
    pub fn kick(self: &Arc<Self>, id: &str) {
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let lock = me
                .instance_locks
                .lock()
                .entry(id.clone())
                .or_default()
                .clone();
            let _g = lock.lock().await;
            if let Err(e) = me.reconcile_instance(&id).await {
                warn!(instance = %id, error = %e, "reconciliation failed");
            }
        });
    }

    fn plan(&self, r: &InstanceRecord, doc: &InstanceDoc) -> InstancePlan {
        InstancePlan {
            instance_id: r.id.clone(),
            engine: r.engine.clone(),
            data_dir: self.instance_dir(&r.id),
            listeners: doc
                .listeners
                .iter()
                .filter_map(|l| l.parse().ok())
                .collect(),
            advertised_host: self.config.advertised_host.clone(),
            max_partitions: Some(doc.partition_num),
            quota_bytes: Some(doc.storage_space_gb * GIB),
            quota_policy: if doc.retention_policy == "produce_reject" {
                QuotaPolicy::ProduceReject
            } else {
                QuotaPolicy::TimeBase
            },
            auto_create_topics: doc.enable_auto_topic,
            sasl: doc.ssl_enable,
            authorizer: doc.acl_enabled,
            super_users: if doc.acl_enabled && !doc.access_user.is_empty() {
                vec![format!("User:{}", doc.access_user)]
            } else {
                Vec::new()
            },
            allowed_ips: doc.allowed_networks(),
            declared_groups: doc.declared_groups.keys().cloned().collect(),
            retention_hours: 72,
        }
    }

    async fn reconcile_instance(self: &Arc<Self>, id: &str) -> Result<(), ControlError> {
        let Some(r) = self.store.instance(id).await? else {
            return Ok(());
        };
        let mut doc = InstanceDoc::of(&r)?;
        let status = InstanceStatus::of(&r);
        let plan = self.plan(&r, &doc);
        match status {
            InstanceStatus::Running => {
                if let Err(e) = self.engines.start(&plan).await {
                    warn!(instance = %id, error = %e, "instance cannot be brought back");
                    self.end_transition(id, &r.status, InstanceStatus::Error, &e.to_string(), None)
                        .await?;
                }
            }
            InstanceStatus::Creating => {
                let control = self.controls.lock().take(Transition::Create);
                let started = if control.fail_next {
                    Err("injected failure (fail_next on create)".to_string())
                } else {
                    self.engines.start(&plan).await.map_err(|e| e.to_string())
                };
                match started {
                    Ok(()) => {
                        self.complete(
                            id,
                            Transition::Create,
                            &control,
                            InstanceStatus::Creating,
                            InstanceStatus::Running,
                        )
                        .await?
                    }
                    Err(reason) => {
                        warn!(instance = %id, %reason, "instance creation failed");
                        self.engines.stop(id).await;
                        self.end_transition(
                            id,
                            &r.status,
                            InstanceStatus::CreateFailed,
                            &reason,
                            Some(Transition::Create),
                        )
                        .await?;
                    }
                }
            }
            InstanceStatus::Restarting => {
                let control = self.controls.lock().take(Transition::Restart);
                if control.fail_next {
                    warn!(instance = %id, "restart failed (injected)");
                    self.engines.start(&plan).await?;
                    self.end_transition(
                        id,
                        &r.status,
                        InstanceStatus::Running,
                        "restart failed: injected failure",
                        Some(Transition::Restart),
                    )
                    .await?;
                    return Ok(());
                }
                self.engines.stop(id).await;
                match self.engines.start(&plan).await {
                    Ok(()) => {
                        self.complete(
                            id,
                            Transition::Restart,
                            &control,
                            InstanceStatus::Restarting,
                            InstanceStatus::Running,
                        )
                        .await?
                    }
                    Err(e) => {
                        self.end_transition(
                            id,
                            &r.status,
                            InstanceStatus::Error,
                            &e.to_string(),
                            Some(Transition::Restart),
                        )
                        .await?;
                    }
                }
            }
            InstanceStatus::Extending => {
                let control = self.controls.lock().take(Transition::Extend);
                self.engines.start(&plan).await?;
                let pending = doc.pending_storage_gb.take();
                let Some(new) = pending.filter(|_| !control.fail_next) else {
                    let mut rec = r.clone();
                    doc.store_in(&mut rec)?;
                    self.store.update_instance(&rec).await?;
                    self.end_transition(
                        id,
                        &r.status,
                        InstanceStatus::Running,
                        "extend failed: injected failure",
                        Some(Transition::Extend),
                    )
                    .await?;
                    return Ok(());
                };
                doc.storage_space_gb = new;
                doc.extend_times += 1;
                let admin = self.engines.admin(id)?;
                admin.set_quota(Some(doc.storage_space_gb * GIB), plan.quota_policy);
                let mut rec = r.clone();
                doc.store_in(&mut rec)?;
                rec.updated_at_ms = now_ms();
                self.store.update_instance(&rec).await?;
                self.complete(
                    id,
                    Transition::Extend,
                    &control,
                    InstanceStatus::Extending,
                    InstanceStatus::Running,
                )
                .await?;
            }
            InstanceStatus::Deleting => {
                let control = self.controls.lock().take(Transition::Delete);
                if control.fail_next {
                    warn!(instance = %id, "delete failed (injected)");
                    let back = if self.engines.is_running(id) {
                        InstanceStatus::Running
                    } else {
                        InstanceStatus::CreateFailed
                    };
                    self.end_transition(
                        id,
                        &r.status,
                        back,
                        "delete failed: injected failure",
                        Some(Transition::Delete),
                    )
                    .await?;
                    return Ok(());
                }
                self.wait(id, &control).await;
                self.engines.destroy(id, self.instance_dir(id)).await?;
                self.store.delete_instance(id).await?;
                self.instance_locks.lock().remove(id);
                info!(instance = %id, "instance deleted");
            }
            InstanceStatus::Ordered => {}
            InstanceStatus::CreateFailed | InstanceStatus::Error => {
                self.engines.stop(id).await;
                if status == InstanceStatus::CreateFailed {
                    // A create refused before the reconciler saw it (no free address).
                    self.finish_task(id, Transition::Create, false).await;
                }
            }
        }
        Ok(())
    }

    /// Ends a transition that did not succeed: records `to` with the reason (if the status is
    /// still `from`) and marks the transition's task failed.
    async fn end_transition(
        &self,
        id: &str,
        from: &str,
        to: InstanceStatus,
        reason: &str,
        task: Option<Transition>,
    ) -> Result<(), ControlError> {
        self.store
            .set_instance_status(id, Some(from), to.as_str(), Some(reason), now_ms())
            .await?;
        if let Some(t) = task {
            self.finish_task(id, t, false).await;
        }
        Ok(())
    }

    /// Waits for the transition's delay, then moves `from` → `to` and closes the task.
    async fn complete(
        &self,
        id: &str,
        t: Transition,
        control: &TransitionControl,
        from: InstanceStatus,
        to: InstanceStatus,
    ) -> Result<(), ControlError> {
        let done = self.wait(id, control).await;
        let res = self
            .store
            .set_instance_status(id, Some(from.as_str()), to.as_str(), None, now_ms())
            .await;
        self.finish_task(id, t, true).await;
        if let Some(done) = done {
            let _ = done.send(());
        }
        info!(instance = %id, status = to.as_str(), "transition complete");
        res.map(|_| ())?;
        Ok(())
    }

    /// Applies a delay. For read delays, answers the channel to signal once the transition
    /// is recorded, so that the read that ended the wait returns only after it.
    async fn wait(&self, id: &str, control: &TransitionControl) -> Option<oneshot::Sender<()>> {
        if control.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(control.delay_ms)).await;
        }
        if control.delay_reads == 0 {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.read_gates.lock().insert(
            id.to_string(),
            ReadGate {
                remaining: control.delay_reads,
                reached: Some(tx),
            },
        );
        rx.await.ok()
    }

    /// Counts a read of an instance; when it is the last read a delay waits for, lets the
    /// transition complete and waits until it is recorded.
    async fn note_read(&self, id: &str) {
        let reached = {
            let mut gates = self.read_gates.lock();
            match gates.get_mut(id) {
                Some(g) => {
                    g.remaining = g.remaining.saturating_sub(1);
                    if g.remaining == 0 {
                        gates.remove(id).and_then(|mut g| g.reached.take())
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(reached) = reached {
            let (done_tx, done_rx) = oneshot::channel();
            if reached.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), done_rx).await;
            }
        }
    }

    /// Stops every broker; the recorded state stays as it is for the next start.
    pub async fn shutdown(&self) {
        self.engines.stop_all().await;
    }
}

/// Seed 000 Table 5-23: 1–20 partitions per topic created or grown through the API.
pub const MAX_TOPIC_PARTITIONS: i64 = 20;

fn topic_view(t: engine::TopicSummary) -> TopicView {
    let retention_hours = t
        .configs
        .get("retention.ms")
        .and_then(|v| v.parse::<i64>().ok())
        .map(|ms| if ms < 0 { -1 } else { ms / 3_600_000 })
        .unwrap_or(72);
    TopicView {
        sync_replication: t
            .configs
            .get("min.insync.replicas")
            .is_some_and(|v| v != "1"),
        sync_message_flush: t.configs.get("flush.messages").is_some_and(|v| v == "1"),
        name: t.name,
        partitions: t.partitions,
        replication: i32::from(t.replication_factor),
        retention_hours,
        created_ms: t.created_ms,
        configs: t.configs,
    }
}

fn topic_error(e: TopicError) -> ControlError {
    match e {
        TopicError::AlreadyExists(n) => ControlError::TopicExists(n),
        TopicError::Storage(_) | TopicError::Io(_) => ControlError::Internal(e.to_string()),
        other => ControlError::TopicRejected(other.to_string()),
    }
}
