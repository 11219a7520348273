//! Metadata of the control plane: accounts, credentials, instances, tasks and tags.
//!
//! [`MetaStore`] is the one interface the rest of OpenDMS uses, so a Postgres implementation
//! can sit beside [`SqliteStore`] without touching callers. Every change that touches more
//! than one row runs in one transaction. [`CachedStore`] keeps what every request reads in
//! memory, in front of a store its process is the only writer of. One test suite
//! (`suite.rs`) runs against every backend.

mod cached;
mod sqlite;
#[cfg(test)]
mod suite;

use serde::{Deserialize, Serialize};

pub use cached::CachedStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("another instance of the project has this name")]
    DuplicateName,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub domain_id: String,
    /// The region name, as Huawei names a region's default project (`cn-north-4`).
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub access_key: String,
    /// Kept as given: verifying an HMAC signature needs the secret itself.
    pub secret_key: String,
    pub user_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: String,
    pub project_id: String,
    pub engine: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// Everything else the APIs show or the reconciler needs, owned by the control plane.
    pub document: serde_json::Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub status: String,
    pub params: String,
    pub user_id: String,
    pub user_name: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Inserts the bootstrap account, user, project and credential, each only if absent.
    async fn bootstrap(
        &self,
        domain: &Domain,
        user: &User,
        project: &Project,
        credential: &Credential,
    ) -> Result<(), StoreError>;
    async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>, StoreError>;
    async fn domain(&self, id: &str) -> Result<Option<Domain>, StoreError>;
    async fn user_by_name(&self, domain_id: &str, name: &str) -> Result<Option<User>, StoreError>;
    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn credential(&self, access_key: &str) -> Result<Option<Credential>, StoreError>;
    async fn project(&self, id: &str) -> Result<Option<Project>, StoreError>;
    async fn projects(&self, domain_id: &str) -> Result<Vec<Project>, StoreError>;

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Fails with [`StoreError::DuplicateName`] when the project has an instance of that name.
    async fn insert_instance(
        &self,
        record: &InstanceRecord,
        tags: &[Tag],
    ) -> Result<(), StoreError>;
    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError>;
    /// Instances of one project (all when `None`), newest first.
    async fn instances(&self, project_id: Option<&str>) -> Result<Vec<InstanceRecord>, StoreError>;
    /// Replaces name, status, reason, document and update time.
    async fn update_instance(&self, record: &InstanceRecord) -> Result<(), StoreError>;
    /// Compare-and-set of the status: changes nothing and answers false when the current
    /// status is not `expected`.
    async fn set_instance_status(
        &self,
        id: &str,
        expected: Option<&str>,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Removes the instance with its tags and tasks.
    async fn delete_instance(&self, id: &str) -> Result<(), StoreError>;

    async fn insert_task(&self, task: &TaskRecord) -> Result<(), StoreError>;
    async fn update_task(&self, id: &str, status: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Tasks of an instance, newest first.
    async fn tasks(&self, instance_id: &str) -> Result<Vec<TaskRecord>, StoreError>;
    async fn task(
        &self,
        instance_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskRecord>, StoreError>;
    async fn delete_task(&self, instance_id: &str, task_id: &str) -> Result<bool, StoreError>;

    /// Tags of an instance, by key.
    async fn tags(&self, instance_id: &str) -> Result<Vec<Tag>, StoreError>;
    /// Adds (or overwrites) `create` and removes `delete` (by key; a non-empty value must
    /// match) in one transaction.
    async fn change_tags(
        &self,
        instance_id: &str,
        create: &[Tag],
        delete: &[Tag],
    ) -> Result<(), StoreError>;
    /// Every tag key used by a project's instances of one engine, with its distinct values.
    async fn project_tags(
        &self,
        project_id: &str,
        engine: &str,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    suite::backend_suite!(sqlite, SqliteStore::open_in_memory().await.unwrap());
    suite::backend_suite!(
        cached_sqlite,
        CachedStore::open(SqliteStore::open_in_memory().await.unwrap())
            .await
            .unwrap()
    );

    /// The cache opens with what the store already has, and what it caches is the store's.
    #[tokio::test]
    async fn a_cache_opens_with_the_stored_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let inner = SqliteStore::open(&path).await.unwrap();
        inner
            .insert_instance(
                &suite::record("i1", "p1", "a"),
                &[Tag {
                    key: "k".into(),
                    value: "v".into(),
                }],
            )
            .await
            .unwrap();
        let cached = CachedStore::open(inner).await.unwrap();
        assert_eq!(cached.instance("i1").await.unwrap().unwrap().name, "a");
        assert_eq!(cached.tags("i1").await.unwrap().len(), 1);
        assert!(cached
            .set_instance_status("i1", Some("CREATING"), "RUNNING", Some("why"), 9)
            .await
            .unwrap());
        let again = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            again.instance("i1").await.unwrap(),
            cached.instance("i1").await.unwrap()
        );
    }
}
