//! A write-through cache in front of another [`MetaStore`], for a process that is the only
//! writer of its store (`opendms serve` on its SQLite file).
//!
//! Every API request reads the caller's user, project or credential and, mostly, one
//! instance with its tags. Read from SQLite, each is a hop to sqlx's connection thread and
//! back: measured at ~3,000 GET-instance requests/s on two cores with the hops taking most of
//! the time (bench/control-plane, perf). Kept here, those reads are map lookups.
//!
//! Instances and their tags are loaded once when the cache opens; accounts, users, projects
//! and credentials on first use. Every write runs under one lock: the write goes to the inner
//! store and, when it succeeds, the changed rows are read back from it into the cache, so the
//! cache always holds what the store holds. Tasks, settings and project-wide tag summaries
//! are not cached: nothing reads them on a hot path.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::{
    Credential, Domain, InstanceRecord, MetaStore, Project, StoreError, Tag, TaskRecord, User,
};

pub struct CachedStore<S> {
    inner: S,
    /// Serialises writes with the reads that refresh the cache after them.
    writes: tokio::sync::Mutex<()>,
    instances: RwLock<HashMap<String, InstanceRecord>>,
    tags: RwLock<HashMap<String, Vec<Tag>>>,
    users: RwLock<HashMap<String, User>>,
    credentials: RwLock<HashMap<String, Credential>>,
    projects: RwLock<HashMap<String, Project>>,
}

impl<S: MetaStore> CachedStore<S> {
    /// Opens the cache over `inner`, loading every instance and its tags.
    pub async fn open(inner: S) -> Result<CachedStore<S>, StoreError> {
        let mut instances = HashMap::new();
        let mut tags = HashMap::new();
        for r in inner.instances(None).await? {
            tags.insert(r.id.clone(), inner.tags(&r.id).await?);
            instances.insert(r.id.clone(), r);
        }
        Ok(CachedStore {
            inner,
            writes: tokio::sync::Mutex::new(()),
            instances: RwLock::new(instances),
            tags: RwLock::new(tags),
            users: RwLock::new(HashMap::new()),
            credentials: RwLock::new(HashMap::new()),
            projects: RwLock::new(HashMap::new()),
        })
    }

    /// Reads an instance and its tags back from the inner store (after a write to them).
    async fn refresh_instance(&self, id: &str) -> Result<(), StoreError> {
        match self.inner.instance(id).await? {
            Some(r) => {
                let tags = self.inner.tags(id).await?;
                self.tags.write().insert(id.to_string(), tags);
                self.instances.write().insert(id.to_string(), r);
            }
            None => {
                self.tags.write().remove(id);
                self.instances.write().remove(id);
            }
        }
        Ok(())
    }
}

/// A row read through the cache: from the map, else from the inner store (and kept).
async fn read_through<T: Clone, F>(
    map: &RwLock<HashMap<String, T>>,
    key: &str,
    load: F,
) -> Result<Option<T>, StoreError>
where
    F: std::future::Future<Output = Result<Option<T>, StoreError>>,
{
    if let Some(v) = map.read().get(key) {
        return Ok(Some(v.clone()));
    }
    let loaded = load.await?;
    if let Some(v) = &loaded {
        map.write().insert(key.to_string(), v.clone());
    }
    Ok(loaded)
}

#[async_trait::async_trait]
impl<S: MetaStore> MetaStore for CachedStore<S> {
    async fn bootstrap(
        &self,
        domain: &Domain,
        user: &User,
        project: &Project,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        self.inner
            .bootstrap(domain, user, project, credential)
            .await?;
        // Rows that existed are kept by the inner store: forget what was read of them.
        self.users.write().remove(&user.id);
        self.credentials.write().remove(&credential.access_key);
        self.projects.write().remove(&project.id);
        Ok(())
    }

    async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        self.inner.domain_by_name(name).await
    }

    async fn domain(&self, id: &str) -> Result<Option<Domain>, StoreError> {
        self.inner.domain(id).await
    }

    async fn user_by_name(&self, domain_id: &str, name: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_name(domain_id, name).await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        read_through(&self.users, id, self.inner.user(id)).await
    }

    async fn credential(&self, access_key: &str) -> Result<Option<Credential>, StoreError> {
        read_through(
            &self.credentials,
            access_key,
            self.inner.credential(access_key),
        )
        .await
    }

    async fn project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        read_through(&self.projects, id, self.inner.project(id)).await
    }

    async fn projects(&self, domain_id: &str) -> Result<Vec<Project>, StoreError> {
        self.inner.projects(domain_id).await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.setting(key).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        self.inner.set_setting(key, value).await
    }

    async fn insert_instance(
        &self,
        record: &InstanceRecord,
        tags: &[Tag],
    ) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        self.inner.insert_instance(record, tags).await?;
        self.refresh_instance(&record.id).await
    }

    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        Ok(self.instances.read().get(id).cloned())
    }

    async fn instances(&self, project_id: Option<&str>) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut out: Vec<InstanceRecord> = self
            .instances
            .read()
            .values()
            .filter(|r| project_id.is_none_or(|p| r.project_id == p))
            .cloned()
            .collect();
        // The inner store's order: newest first, then by id.
        out.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    async fn update_instance(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        let res = self.inner.update_instance(record).await;
        self.refresh_instance(&record.id).await?;
        res
    }

    async fn set_instance_status(
        &self,
        id: &str,
        expected: Option<&str>,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let _w = self.writes.lock().await;
        let changed = self
            .inner
            .set_instance_status(id, expected, status, reason, now_ms)
            .await?;
        if changed {
            self.refresh_instance(id).await?;
        }
        Ok(changed)
    }

    async fn delete_instance(&self, id: &str) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        let res = self.inner.delete_instance(id).await;
        self.refresh_instance(id).await?;
        res
    }

    async fn insert_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        self.inner.insert_task(task).await
    }

    async fn update_task(&self, id: &str, status: &str, now_ms: i64) -> Result<(), StoreError> {
        self.inner.update_task(id, status, now_ms).await
    }

    async fn tasks(&self, instance_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        self.inner.tasks(instance_id).await
    }

    async fn task(
        &self,
        instance_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        self.inner.task(instance_id, task_id).await
    }

    async fn delete_task(&self, instance_id: &str, task_id: &str) -> Result<bool, StoreError> {
        self.inner.delete_task(instance_id, task_id).await
    }

    async fn tags(&self, instance_id: &str) -> Result<Vec<Tag>, StoreError> {
        Ok(self
            .tags
            .read()
            .get(instance_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn change_tags(
        &self,
        instance_id: &str,
        create: &[Tag],
        delete: &[Tag],
    ) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        let res = self.inner.change_tags(instance_id, create, delete).await;
        self.refresh_instance(instance_id).await?;
        res
    }

    async fn project_tags(
        &self,
        project_id: &str,
        engine: &str,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.inner.project_tags(project_id, engine).await
    }
}
