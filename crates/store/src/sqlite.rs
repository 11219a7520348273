//! [`MetaStore`] on SQLite (one file, WAL journal).

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use crate::*;

pub struct SqliteStore {
    pool: SqlitePool,
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn instance_from(row: &SqliteRow) -> Result<InstanceRecord, StoreError> {
    let doc: String = row.try_get("document")?;
    Ok(InstanceRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        engine: row.try_get("engine")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        document: serde_json::from_str(&doc)
            .map_err(|e| StoreError::Corrupt(format!("instance document: {e}")))?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn task_from(row: &SqliteRow) -> Result<TaskRecord, StoreError> {
    Ok(TaskRecord {
        id: row.try_get("id")?,
        instance_id: row.try_get("instance_id")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        params: row.try_get("params")?,
        user_id: row.try_get("user_id")?,
        user_name: row.try_get("user_name")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Self::migrate(pool).await
    }

    /// A private in-memory database, for tests.
    pub async fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One connection: every connection to :memory: is a database of its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Self::migrate(pool).await
    }

    async fn migrate(pool: SqlitePool) -> Result<SqliteStore, StoreError> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

#[async_trait::async_trait]
impl MetaStore for SqliteStore {
    async fn bootstrap(
        &self,
        domain: &Domain,
        user: &User,
        project: &Project,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO domains (id, name) VALUES (?, ?)")
            .bind(&domain.id)
            .bind(&domain.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO users (id, domain_id, name, password_hash) VALUES (?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.domain_id)
        .bind(&user.name)
        .bind(&user.password_hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT OR IGNORE INTO projects (id, domain_id, name) VALUES (?, ?, ?)")
            .bind(&project.id)
            .bind(&project.domain_id)
            .bind(&project.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO credentials (access_key, secret_key, user_id) VALUES (?, ?, ?)",
        )
        .bind(&credential.access_key)
        .bind(&credential.secret_key)
        .bind(&credential.user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        let row = sqlx::query("SELECT id, name FROM domains WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(Domain {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            }),
            None => None,
        })
    }

    async fn domain(&self, id: &str) -> Result<Option<Domain>, StoreError> {
        let row = sqlx::query("SELECT id, name FROM domains WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(Domain {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            }),
            None => None,
        })
    }

    async fn user_by_name(&self, domain_id: &str, name: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, domain_id, name, password_hash FROM users WHERE domain_id = ? AND name = ?",
        )
        .bind(domain_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from(&r)).transpose()
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, domain_id, name, password_hash FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_from(&r)).transpose()
    }

    async fn credential(&self, access_key: &str) -> Result<Option<Credential>, StoreError> {
        let row = sqlx::query(
            "SELECT access_key, secret_key, user_id FROM credentials WHERE access_key = ?",
        )
        .bind(access_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(Credential {
                access_key: r.try_get("access_key")?,
                secret_key: r.try_get("secret_key")?,
                user_id: r.try_get("user_id")?,
            }),
            None => None,
        })
    }

    async fn project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query("SELECT id, domain_id, name FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| project_from(&r)).transpose()
    }

    async fn projects(&self, domain_id: &str) -> Result<Vec<Project>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, domain_id, name FROM projects WHERE domain_id = ? ORDER BY name, id",
        )
        .bind(domain_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_from).collect()
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_instance(&self, r: &InstanceRecord, tags: &[Tag]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO instances (id, project_id, engine, name, status, status_reason, document, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.project_id)
        .bind(&r.engine)
        .bind(&r.name)
        .bind(&r.status)
        .bind(&r.status_reason)
        .bind(r.document.to_string())
        .bind(r.created_at_ms)
        .bind(r.updated_at_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if unique_violation(&e) => return Err(StoreError::DuplicateName),
            other => other?,
        };
        for t in tags {
            sqlx::query("INSERT INTO tags (instance_id, key, value) VALUES (?, ?, ?) ON CONFLICT(instance_id, key) DO UPDATE SET value = excluded.value")
                .bind(&r.id)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM instances WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| instance_from(&r)).transpose()
    }

    async fn instances(&self, project_id: Option<&str>) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows =
            match project_id {
                Some(p) => sqlx::query(
                    "SELECT * FROM instances WHERE project_id = ? ORDER BY created_at_ms DESC, id",
                )
                .bind(p)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query("SELECT * FROM instances ORDER BY created_at_ms DESC, id")
                        .fetch_all(&self.pool)
                        .await?
                }
            };
        rows.iter().map(instance_from).collect()
    }

    async fn update_instance(&self, r: &InstanceRecord) -> Result<(), StoreError> {
        let res = sqlx::query(
            "UPDATE instances SET name = ?, status = ?, status_reason = ?, document = ?, updated_at_ms = ? WHERE id = ?",
        )
        .bind(&r.name)
        .bind(&r.status)
        .bind(&r.status_reason)
        .bind(r.document.to_string())
        .bind(r.updated_at_ms)
        .bind(&r.id)
        .execute(&self.pool)
        .await;
        match res {
            Err(e) if unique_violation(&e) => Err(StoreError::DuplicateName),
            Err(e) => Err(e.into()),
            Ok(done) if done.rows_affected() == 0 => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
        }
    }

    async fn set_instance_status(
        &self,
        id: &str,
        expected: Option<&str>,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = match expected {
            Some(exp) => {
                sqlx::query("UPDATE instances SET status = ?, status_reason = ?, updated_at_ms = ? WHERE id = ? AND status = ?")
                    .bind(status)
                    .bind(reason)
                    .bind(now_ms)
                    .bind(id)
                    .bind(exp)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("UPDATE instances SET status = ?, status_reason = ?, updated_at_ms = ? WHERE id = ?")
                    .bind(status)
                    .bind(reason)
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn delete_instance(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tags WHERE instance_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tasks WHERE instance_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM instances WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_task(&self, t: &TaskRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tasks (id, instance_id, name, status, params, user_id, user_name, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.instance_id)
        .bind(&t.name)
        .bind(&t.status)
        .bind(&t.params)
        .bind(&t.user_id)
        .bind(&t.user_name)
        .bind(t.created_at_ms)
        .bind(t.updated_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_task(&self, id: &str, status: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET status = ?, updated_at_ms = ? WHERE id = ?")
            .bind(status)
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tasks(&self, instance_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM tasks WHERE instance_id = ? ORDER BY created_at_ms DESC, rowid DESC",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from).collect()
    }

    async fn task(
        &self,
        instance_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM tasks WHERE instance_id = ? AND id = ?")
            .bind(instance_id)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| task_from(&r)).transpose()
    }

    async fn delete_task(&self, instance_id: &str, task_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM tasks WHERE instance_id = ? AND id = ?")
            .bind(instance_id)
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn tags(&self, instance_id: &str) -> Result<Vec<Tag>, StoreError> {
        let rows = sqlx::query("SELECT key, value FROM tags WHERE instance_id = ? ORDER BY key")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Tag {
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                })
            })
            .collect()
    }

    async fn change_tags(
        &self,
        instance_id: &str,
        create: &[Tag],
        delete: &[Tag],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for t in delete {
            if t.value.is_empty() {
                sqlx::query("DELETE FROM tags WHERE instance_id = ? AND key = ?")
                    .bind(instance_id)
                    .bind(&t.key)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("DELETE FROM tags WHERE instance_id = ? AND key = ? AND value = ?")
                    .bind(instance_id)
                    .bind(&t.key)
                    .bind(&t.value)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for t in create {
            sqlx::query("INSERT INTO tags (instance_id, key, value) VALUES (?, ?, ?) ON CONFLICT(instance_id, key) DO UPDATE SET value = excluded.value")
                .bind(instance_id)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn project_tags(
        &self,
        project_id: &str,
        engine: &str,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT t.key AS key, t.value AS value FROM tags t JOIN instances i ON i.id = t.instance_id \
             WHERE i.project_id = ? AND i.engine = ? ORDER BY t.key, t.value",
        )
        .bind(project_id)
        .bind(engine)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in rows {
            let key: String = r.try_get("key")?;
            let value: String = r.try_get("value")?;
            match out.last_mut() {
                Some((k, values)) if *k == key => values.push(value),
                _ => out.push((key, vec![value])),
            }
        }
        Ok(out)
    }
}

fn user_from(r: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        domain_id: r.try_get("domain_id")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
    })
}

fn project_from(r: &SqliteRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: r.try_get("id")?,
        domain_id: r.try_get("domain_id")?,
        name: r.try_get("name")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, project: &str, name: &str) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            project_id: project.into(),
            engine: "kafka".into(),
            name: name.into(),
            status: "CREATING".into(),
            status_reason: None,
            document: json!({"storage_space_gb": 600, "listeners": ["127.0.1.1:9092"]}),
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    fn boot() -> (Domain, User, Project, Credential) {
        (
            Domain {
                id: "d1".into(),
                name: "acme".into(),
            },
            User {
                id: "u1".into(),
                domain_id: "d1".into(),
                name: "admin".into(),
                password_hash: "h".into(),
            },
            Project {
                id: "p1".into(),
                domain_id: "d1".into(),
                name: "cn-north-4".into(),
            },
            Credential {
                access_key: "AK".into(),
                secret_key: "SK".into(),
                user_id: "u1".into(),
            },
        )
    }

    #[tokio::test]
    async fn bootstrap_is_idempotent() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        let (d, u, p, c) = boot();
        s.bootstrap(&d, &u, &p, &c).await.unwrap();
        s.bootstrap(&d, &u, &p, &c).await.unwrap();
        assert_eq!(s.domain_by_name("acme").await.unwrap(), Some(d.clone()));
        assert_eq!(s.user_by_name("d1", "admin").await.unwrap(), Some(u));
        assert_eq!(s.credential("AK").await.unwrap(), Some(c));
        assert_eq!(s.projects("d1").await.unwrap(), vec![p]);
    }

    #[tokio::test]
    async fn duplicate_names_are_refused_and_change_nothing() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.insert_instance(
            &record("i1", "p1", "a"),
            &[Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        )
        .await
        .unwrap();
        let err = s
            .insert_instance(
                &record("i2", "p1", "a"),
                &[Tag {
                    key: "k".into(),
                    value: "w".into(),
                }],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DuplicateName));
        assert!(s.instance("i2").await.unwrap().is_none());
        assert_eq!(s.tags("i1").await.unwrap().len(), 1);
        // Another project may reuse the name.
        s.insert_instance(&record("i3", "p2", "a"), &[])
            .await
            .unwrap();
        let mut renamed = record("i3", "p2", "b");
        renamed.status = "RUNNING".into();
        s.update_instance(&renamed).await.unwrap();
        assert_eq!(s.instance("i3").await.unwrap().unwrap().name, "b");
    }

    #[tokio::test]
    async fn status_changes_are_compare_and_set() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.insert_instance(&record("i1", "p1", "a"), &[])
            .await
            .unwrap();
        assert!(!s
            .set_instance_status("i1", Some("RUNNING"), "DELETING", None, 2)
            .await
            .unwrap());
        assert!(s
            .set_instance_status("i1", Some("CREATING"), "RUNNING", None, 2)
            .await
            .unwrap());
        let r = s.instance("i1").await.unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.updated_at_ms), ("RUNNING", 2));
        assert_eq!(r.document, record("i1", "p1", "a").document);
    }

    #[tokio::test]
    async fn deleting_an_instance_removes_its_tags_and_tasks() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.insert_instance(
            &record("i1", "p1", "a"),
            &[Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        )
        .await
        .unwrap();
        let task = TaskRecord {
            id: "t1".into(),
            instance_id: "i1".into(),
            name: "restart".into(),
            status: "EXECUTING".into(),
            params: String::new(),
            user_id: "u".into(),
            user_name: "n".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        s.insert_task(&task).await.unwrap();
        s.update_task("t1", "SUCCESS", 5).await.unwrap();
        assert_eq!(s.task("i1", "t1").await.unwrap().unwrap().status, "SUCCESS");
        assert_eq!(
            s.project_tags("p1", "kafka").await.unwrap(),
            vec![("k".to_string(), vec!["v".to_string()])]
        );
        assert!(s.project_tags("p1", "rabbitmq").await.unwrap().is_empty());
        s.delete_instance("i1").await.unwrap();
        assert!(s.instance("i1").await.unwrap().is_none());
        assert!(s.tasks("i1").await.unwrap().is_empty());
        assert!(s.tags("i1").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn tag_changes() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.insert_instance(&record("i1", "p1", "a"), &[])
            .await
            .unwrap();
        let t = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        s.change_tags("i1", &[t("a", "1"), t("b", "2")], &[])
            .await
            .unwrap();
        s.change_tags("i1", &[t("a", "3")], &[t("b", "nope")])
            .await
            .unwrap();
        assert_eq!(s.tags("i1").await.unwrap(), vec![t("a", "3"), t("b", "2")]);
        s.change_tags("i1", &[], &[t("b", "")]).await.unwrap();
        assert_eq!(s.tags("i1").await.unwrap(), vec![t("a", "3")]);
    }

    #[tokio::test]
    async fn a_file_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta/metadata.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.insert_instance(&record("i1", "p1", "a"), &[])
                .await
                .unwrap();
            s.set_setting("k", "v1").await.unwrap();
            s.set_setting("k", "v2").await.unwrap();
        }
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(s.instances(None).await.unwrap().len(), 1);
        assert_eq!(s.setting("k").await.unwrap().as_deref(), Some("v2"));
    }
}
