//! Instances: create, show, list, update, delete, restart, batch actions and resize. Each
//! records the desired state and a transitional status, then hands the instance to the
//! reconciler.

use std::sync::Arc;

use store::InstanceRecord;
use tracing::info;

use super::{engine_of, now_ms, Caller, ControlPlane, ListFilter};
use crate::catalog;
use crate::error::ControlError;
use crate::lifecycle::Transition;
use crate::model::*;
use crate::validation::{self, ValidCreate};

/// What a batch action answered: per-instance results, or nothing for `all_failure`.
pub enum BatchOutcome {
    Results(Vec<(String, bool)>),
    FailuresDeleted,
}

impl ControlPlane {
    /// Records a new instance as `CREATING` (or `CREATEFAILED` when it cannot be given
    /// addresses) and hands it to the reconciler. Answers with its id at once.
    pub async fn create_instance(
        self: &Arc<Self>,
        caller: &Caller,
        req: &NewInstance,
        shape: CreateShape,
    ) -> Result<String, ControlError> {
        if let Some(kind) = req.engine.filter(|k| !self.engines.is_available(*k)) {
            return Err(ControlError::EngineUnavailable(kind));
        }
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
        let guard = self.create_lock.lock().await;
        let existing = self.store.instances(Some(&caller.project_id)).await?;
        if existing.iter().any(|r| r.name == name) {
            return Err(ControlError::DuplicateName(name));
        }
        let (status, reason) = match self.assign_listeners(engine, &mut doc, &[]).await? {
            true => (InstanceStatus::Creating, None),
            false => (InstanceStatus::CreateFailed, Some(self.pool_exhausted())),
        };
        if let (Some((user, password)), InstanceStatus::Creating) = (sasl_user, status) {
            let first_user = engine::Credentials { user, password };
            self.engines
                .provision(engine, &self.instance_dir(&id), Some(first_user))
                .await?;
        }
        let now = now_ms();
        let record = InstanceRecord {
            id: id.clone(),
            project_id: caller.project_id.clone(),
            engine: engine.as_str().to_string(),
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
        drop(guard);
        self.record_task(&id, caller, Transition::Create, "").await;
        if status == InstanceStatus::CreateFailed {
            self.finish_task(&id, Transition::Create, false).await;
        }
        info!(instance = %id, name = %record.name, engine = %engine, status = %record.status, reason = ?reason, "instance created");
        self.kick(&id);
        Ok(id)
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

    /// One instance, without counting as a read for `delay_reads` (lookups that are not a
    /// read of the instance's status, such as an Alibaba topic list).
    pub async fn show_instance_quietly(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<InstanceView, ControlError> {
        let r = self.record(project_id, id).await?;
        self.view(r).await
    }

    /// The instances of a project that pass the filter, a page of them, and how many passed.
    /// Every listed instance counts as read for `delay_reads`: a client that polls a listing
    /// (Alibaba's `GetInstanceList`, Huawei's `list_instances`) waits as one that polls the
    /// instance does.
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
            if f.engine.is_some_and(|e| engine_of(&r).ok() != Some(e)) {
                continue;
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
        if !f.quiet {
            for v in &page {
                self.note_read(&v.id).await;
            }
        }
        Ok((page, total))
    }

    pub async fn update_instance(
        &self,
        project_id: &str,
        id: &str,
        req: &InstanceChanges,
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
        let mut limits_changed = false;
        if let Some(p) = req.retention_policy.as_deref() {
            if !matches!(p, "time_base" | "produce_reject") {
                return Err(ControlError::InvalidParameter(format!(
                    "retention_policy {p:?}: must be time_base or produce_reject"
                )));
            }
            doc.retention_policy = p.to_string();
            limits_changed = true;
        }
        if let Some(e) = req.enterprise_project_id.as_deref() {
            doc.enterprise_project_id = e.to_string();
        }
        if let Some(on) = req.enable_acl.filter(|on| *on != doc.acl_enabled) {
            // Seed 001 5.1.5: the brokers' ACL switches at once (RocketMQ instances only).
            if engine_of(&r)? != EngineKind::Rocketmq {
                return Err(ControlError::NotSupported(
                    "enable_acl is a RocketMQ instance setting".into(),
                ));
            }
            self.set_rocketmq_acl(&r, on).await?;
            doc.acl_enabled = on;
        }
        if req.enable_publicip == Some(true)
            && req
                .publicip_id
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
            && doc.publicip_id.is_empty()
        {
            return Err(ControlError::InvalidParameter(
                "publicip_id is required when enable_publicip is true".into(),
            ));
        }
        if let Some(on) = req.enable_publicip {
            doc.enable_publicip = on;
        }
        if let Some(p) = req.publicip_id.as_deref() {
            doc.publicip_id = p.to_string();
        }
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        self.save(&r).await?;
        if let (true, Ok(admin)) = (limits_changed, self.engines.admin(id)) {
            admin.apply_limits(&super::limits_of(&doc));
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
        req: &BatchAction,
    ) -> Result<BatchOutcome, ControlError> {
        let action = req.action.as_deref().unwrap_or("");
        if action != "delete" && action != "restart" {
            return Err(ControlError::InvalidAction);
        }
        if let (Some(engine), "delete") = (req.all_failure, action) {
            for r in self.store.instances(Some(&caller.project_id)).await? {
                if r.status == InstanceStatus::CreateFailed.as_str()
                    && engine_of(&r).ok() == Some(engine)
                {
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
        req: &Resize,
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
        let max = match engine_of(&r)? {
            // RabbitMQ's products share ids with Kafka's flavors: its own table decides.
            EngineKind::Rabbitmq => catalog::rabbitmq_product(&doc.product_id).map(|p| {
                (u64::from(p.max_storage_per_node_gb) * u64::from(doc.broker_num))
                    .min(catalog::RABBITMQ_MAX_STORAGE_GB)
            }),
            // So do RocketMQ's (seed 001's four flavors).
            EngineKind::Rocketmq => {
                Some(catalog::ROCKETMQ_MAX_STORAGE_PER_BROKER_GB * u64::from(doc.broker_num.max(1)))
            }
            EngineKind::Kafka => catalog::bandwidth_spec_by_product(&doc.product_id)
                .map(|s| u64::from(s.max_storage_gb))
                .or_else(|| {
                    catalog::flavor(&doc.product_id)
                        .map(|f| u64::from(f.max_storage_per_node_gb) * u64::from(doc.broker_num))
                }),
        }
        .unwrap_or(u64::MAX);
        // Seed 002 4.3.2: a RabbitMQ storage extension grows each node by at least 100 GB.
        let min = match engine_of(&r)? {
            EngineKind::Rabbitmq => doc.storage_space_gb + 100 * u64::from(doc.broker_num.max(1)),
            EngineKind::Kafka | EngineKind::Rocketmq => doc.storage_space_gb + 1,
        };
        let new = u64::try_from(new)
            .ok()
            .filter(|n| *n >= min && *n <= max)
            .ok_or_else(|| {
                ControlError::InvalidStorage(format!(
                    "new_storage_space must be within {min}-{max} GB"
                ))
            })?;
        if doc.extend_times >= 20 {
            return Err(ControlError::ExtendLimit);
        }
        doc.pending_storage_gb = Some(new);
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

    /// Instances by status, and the figures of every running instance (for `/metrics`).
    pub async fn figures(
        &self,
    ) -> Result<(Vec<(String, u64)>, Vec<InstanceFigures>), ControlError> {
        let mut by_status: std::collections::BTreeMap<String, u64> = InstanceStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        let mut running = Vec::new();
        for r in self.store.instances(None).await? {
            *by_status.entry(r.status.clone()).or_default() += 1;
            if let Ok(admin) = self.engines.admin(&r.id) {
                running.push(InstanceFigures {
                    id: r.id,
                    name: r.name,
                    usage: admin.usage(),
                });
            }
        }
        Ok((by_status.into_iter().collect(), running))
    }
}
