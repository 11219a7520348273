//! The instance's own metadata file: cluster id, producer id high-water mark and topics.
//! Small and rarely written, so it is rewritten whole, atomically, on every change.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    /// Leader broker of each partition, indexed by partition id.
    pub leaders: Vec<i32>,
    pub replication_factor: i16,
    /// Topic-level overrides (`retention.ms`, …), as Kafka's DescribeConfigs shows them.
    pub configs: BTreeMap<String, String>,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceMeta {
    pub cluster_id: String,
    /// Producer ids below this may have been handed out; a restart continues above it.
    pub producer_id_limit: i64,
    pub topics: BTreeMap<String, TopicMeta>,
}

impl InstanceMeta {
    fn fresh() -> Self {
        InstanceMeta {
            cluster_id: new_cluster_id(),
            producer_id_limit: 0,
            topics: BTreeMap::new(),
        }
    }
}

/// Kafka cluster ids are 22 characters of URL-safe base64 of a UUID.
fn new_cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

pub struct MetaFile {
    path: PathBuf,
}

impl MetaFile {
    pub fn new(dir: &Path) -> Self {
        MetaFile {
            path: dir.join("instance.json"),
        }
    }

    pub fn load_or_create(&self) -> std::io::Result<InstanceMeta> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = InstanceMeta::fresh();
                self.save(&meta)?;
                Ok(meta)
            }
            Err(e) => Err(e),
        }
    }

    /// Write to a temporary file, fsync, rename over the old one, fsync the directory: a crash
    /// leaves either the old or the new file, never a torn one.
    pub fn save(&self, meta: &InstanceMeta) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        let file = MetaFile::new(dir.path());
        let mut meta = file.load_or_create().unwrap();
        assert_eq!(meta.cluster_id.len(), 22);
        meta.producer_id_limit = 1000;
        file.save(&meta).unwrap();
        assert_eq!(file.load_or_create().unwrap(), meta);
    }
}
