//! Definitions: users, vhosts, permissions, durable exchanges, queues and bindings, in
//! RabbitMQ's export format. The broker keeps them in `definitions.json` (rewritten whole,
//! atomically, on every change) and `/api/definitions` exports and imports the same thing.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub const RABBIT_VERSION: &str = "3.8.35";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Definitions {
    pub rabbit_version: String,
    pub rabbitmq_version: String,
    pub product_name: String,
    pub product_version: String,
    pub users: Vec<UserDef>,
    pub vhosts: Vec<VHostDef>,
    pub permissions: Vec<PermissionDef>,
    pub topic_permissions: Vec<Value>,
    pub parameters: Vec<Value>,
    pub global_parameters: Vec<Value>,
    pub policies: Vec<Value>,
    pub queues: Vec<QueueDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub bindings: Vec<BindingDef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserDef {
    pub name: String,
    pub password_hash: String,
    pub hashing_algorithm: String,
    /// RabbitMQ 3.8 writes a comma-separated string; newer versions an array.
    #[serde(deserialize_with = "tags_of")]
    pub tags: String,
    pub limits: Value,
}

fn tags_of<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    })
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VHostDef {
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: Value,
    /// OpenDMS: the storage id of the queue's message log (RabbitMQ ignores it on import).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opendms_log: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    pub routing_key: String,
    pub arguments: Value,
}

/// Reads the definitions file; `None` if there is none yet (blocking).
pub fn load(path: &Path) -> std::io::Result<Option<Definitions>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the definitions file atomically and durably (blocking).
pub fn save(path: &Path, defs: &Definitions) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(defs).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rabbitmq_exports_and_round_trips() {
        let export = r#"{"rabbit_version":"3.10.8","users":[{"name":"guest","password_hash":"h",
            "hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"],"limits":{}}],
            "vhosts":[{"name":"/"}],"queues":[{"name":"q","vhost":"/","durable":true,"auto_delete":false,
            "arguments":{"x-queue-type":"classic"}}],"exchanges":[],"bindings":[],"policies":[]}"#;
        let d: Definitions = serde_json::from_str(export).unwrap();
        assert_eq!(d.users[0].tags, "administrator");
        assert_eq!(d.queues[0].arguments["x-queue-type"], "classic");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("definitions.json");
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &d).unwrap();
        assert_eq!(load(&path).unwrap(), Some(d));
    }
}
