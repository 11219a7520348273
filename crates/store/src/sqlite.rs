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
    use crate::suite::record;

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
