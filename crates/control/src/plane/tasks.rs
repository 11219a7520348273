//! Background tasks, tags and quotas of instances.

use store::TaskRecord;
use tracing::warn;

use super::{engine_of, now_ms, Caller, ControlPlane};
use crate::error::ControlError;
use crate::lifecycle::Transition;
use crate::model::*;
use crate::validation;

/// Task statuses as the documents spell them.
const EXECUTING: &str = "EXECUTING";

impl ControlPlane {
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
            status: EXECUTING.into(),
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

    /// Records a task that is done as soon as it is recorded (a change the broker applied
    /// while the request waited); answers its id, the `job_id` the APIs return.
    pub(crate) async fn record_done_task(
        &self,
        instance_id: &str,
        caller: &Caller,
        name: &str,
        params: &str,
    ) -> Result<String, ControlError> {
        let now = now_ms();
        let task = TaskRecord {
            id: uuid::Uuid::new_v4().to_string(),
            instance_id: instance_id.to_string(),
            name: name.to_string(),
            status: "SUCCESS".into(),
            params: params.to_string(),
            user_id: caller.user_id.clone(),
            user_name: caller.user_name.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.store.insert_task(&task).await?;
        Ok(task.id)
    }

    pub(crate) async fn finish_task(&self, instance_id: &str, t: Transition, ok: bool) {
        let Ok(tasks) = self.store.tasks(instance_id).await else {
            return;
        };
        if let Some(task) = tasks
            .into_iter()
            .find(|x| x.name == t.task_name() && x.status == EXECUTING)
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

    /// Adds (`create`) or removes (`delete`) tags of an instance.
    pub async fn change_tags(
        &self,
        project_id: &str,
        id: &str,
        action: &str,
        tags: &[Tag],
    ) -> Result<(), ControlError> {
        self.record(project_id, id).await?;
        let stored: Vec<store::Tag> = tags
            .iter()
            .map(|t| store::Tag {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect();
        match action {
            "create" => {
                validation::check_tags(tags)?;
                self.store.change_tags(id, &stored, &[]).await?
            }
            "delete" => self.store.change_tags(id, &[], &stored).await?,
            other => {
                return Err(ControlError::InvalidParameter(format!(
                    "action {other:?}: must be create or delete"
                )))
            }
        }
        Ok(())
    }

    /// Every tag key of a project's instances of one engine, with its values.
    pub async fn project_tags(
        &self,
        project_id: &str,
        engine: EngineKind,
    ) -> Result<Vec<(String, Vec<String>)>, ControlError> {
        Ok(self.store.project_tags(project_id, engine.as_str()).await?)
    }

    /// (engine, quota, used) of instances per engine in a project.
    pub async fn quotas(
        &self,
        project_id: &str,
    ) -> Result<Vec<(EngineKind, u32, u32)>, ControlError> {
        let all = self.store.instances(Some(project_id)).await?;
        Ok(EngineKind::ALL
            .iter()
            .map(|e| {
                let used = all.iter().filter(|r| engine_of(r).ok() == Some(*e)).count();
                (
                    *e,
                    self.config.instance_quota,
                    u32::try_from(used).unwrap_or(u32::MAX),
                )
            })
            .collect())
    }
}
