//! Topic rules: legal names, the topic-level configs this broker understands and how they map
//! onto the message log, and the errors topic operations can end in.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use msglog::LogConfig;

pub const MAX_TOPIC_NAME_LEN: usize = 249;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic name {0:?} is not valid: it must be 1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-', and not '.' or '..'")]
    InvalidName(String),
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    #[error("topic {0:?} does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error("storage: {0}")]
    Storage(#[from] msglog::LogError),
    #[error("metadata file: {0}")]
    Io(#[from] std::io::Error),
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition.code(),
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
            TopicError::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicationFactor.code()
            }
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            TopicError::PolicyViolation(_) => ResponseError::PolicyViolation.code(),
            TopicError::Storage(_) | TopicError::Io(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

/// What the control plane shows of a topic.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub created_ms: i64,
}

pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let legal = !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if legal {
        Ok(())
    } else {
        Err(TopicError::InvalidName(name.to_string()))
    }
}

/// A topic-level config this broker knows: its name, Kafka's documentation line and how to
/// check a value.
pub struct ConfigKey {
    pub name: &'static str,
    pub doc: &'static str,
    kind: ConfigKind,
}

enum ConfigKind {
    /// A long with an inclusive lower bound.
    Long(i64),
    /// An int with an inclusive lower bound.
    Int(i64),
    OneOf(&'static [&'static str]),
}

pub const TOPIC_CONFIGS: &[ConfigKey] = &[
    ConfigKey {
        name: "retention.ms",
        doc: "How long a log segment is kept before it is deleted; -1 keeps it forever.",
        kind: ConfigKind::Long(-1),
    },
    ConfigKey {
        name: "retention.bytes",
        doc: "Largest size a partition may grow to before old segments are deleted; -1 means no limit.",
        kind: ConfigKind::Long(-1),
    },
    ConfigKey {
        name: "segment.bytes",
        doc: "Size of one log segment file.",
        kind: ConfigKind::Int(14),
    },
    ConfigKey {
        name: "max.message.bytes",
        doc: "Largest record batch size the topic accepts.",
        kind: ConfigKind::Int(0),
    },
    ConfigKey {
        name: "cleanup.policy",
        doc: "Retention policy of old segments; only delete is supported.",
        kind: ConfigKind::OneOf(&["delete"]),
    },
    ConfigKey {
        name: "message.timestamp.type",
        doc: "Whether record timestamps are the producer's (CreateTime).",
        kind: ConfigKind::OneOf(&["CreateTime"]),
    },
    ConfigKey {
        name: "min.insync.replicas",
        doc: "Replicas that must acknowledge an acks=all write; every partition has one copy on this host.",
        kind: ConfigKind::Int(1),
    },
    ConfigKey {
        name: "flush.messages",
        doc: "1 forces every append of this topic to disk before it is acknowledged, whatever acks asks for; larger values leave flushing to the instance's flush policy.",
        kind: ConfigKind::Int(1),
    },
    ConfigKey {
        name: "compression.type",
        doc: "Batches are stored as the producer compressed them.",
        kind: ConfigKind::OneOf(&["producer"]),
    },
];

pub fn config_key(name: &str) -> Option<&'static ConfigKey> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

pub fn validate_config(name: &str, value: &str) -> Result<(), TopicError> {
    let key = config_key(name)
        .ok_or_else(|| TopicError::InvalidConfig(format!("unknown topic config {name:?}")))?;
    let bad = || TopicError::InvalidConfig(format!("invalid value {value:?} for {name}"));
    match key.kind {
        ConfigKind::Long(min) => {
            let v: i64 = value.trim().parse().map_err(|_| bad())?;
            if v < min {
                return Err(bad());
            }
        }
        ConfigKind::Int(min) => {
            let v: i32 = value.trim().parse().map_err(|_| bad())?;
            if (v as i64) < min {
                return Err(bad());
            }
        }
        ConfigKind::OneOf(allowed) => {
            if !allowed.contains(&value) {
                return Err(bad());
            }
        }
    }
    Ok(())
}

/// Effective value of every known config: the topic's override or the instance default.
pub fn effective_configs(
    overrides: &BTreeMap<String, String>,
    defaults: &LogConfig,
    default_max_message_bytes: i32,
) -> Vec<(&'static str, String, bool)> {
    TOPIC_CONFIGS
        .iter()
        .map(|k| match overrides.get(k.name) {
            Some(v) => (k.name, v.clone(), false),
            None => (
                k.name,
                default_value(k.name, defaults, default_max_message_bytes),
                true,
            ),
        })
        .collect()
}

fn default_value(name: &str, defaults: &LogConfig, default_max_message_bytes: i32) -> String {
    match name {
        "retention.ms" => defaults.retention_ms.unwrap_or(-1).to_string(),
        "retention.bytes" => defaults
            .retention_bytes
            .map(|b| b as i64)
            .unwrap_or(-1)
            .to_string(),
        "segment.bytes" => defaults.segment_bytes.to_string(),
        "max.message.bytes" => default_max_message_bytes.to_string(),
        "cleanup.policy" => "delete".into(),
        "message.timestamp.type" => "CreateTime".into(),
        "min.insync.replicas" => "1".into(),
        "compression.type" => "producer".into(),
        _ => String::new(),
    }
}

/// The log settings of a topic: instance defaults overridden by the topic's configs
/// (validated before they were stored).
pub fn log_config(overrides: &BTreeMap<String, String>, defaults: &LogConfig) -> LogConfig {
    let mut cfg = defaults.clone();
    if let Some(v) = overrides
        .get("retention.ms")
        .and_then(|v| v.parse::<i64>().ok())
    {
        cfg.retention_ms = (v >= 0).then_some(v);
    }
    if let Some(v) = overrides
        .get("retention.bytes")
        .and_then(|v| v.parse::<i64>().ok())
    {
        cfg.retention_bytes = (v >= 0).then_some(v as u64);
    }
    if let Some(v) = overrides
        .get("segment.bytes")
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.segment_bytes = v;
    }
    cfg
}

/// Whether the topic asks for every append to be flushed before it is acknowledged
/// (Kafka's `flush.messages=1`; Huawei's `sync_message_flush`).
pub fn flush_each_append(overrides: &BTreeMap<String, String>) -> bool {
    overrides.get("flush.messages").map(String::as_str) == Some("1")
}

pub fn max_message_bytes(overrides: &BTreeMap<String, String>, default: i32) -> i32 {
    overrides
        .get("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["a", "orders.v1", "A_b-9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "é", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configs_are_checked_and_applied() {
        assert!(validate_config("retention.ms", "-1").is_ok());
        assert!(validate_config("retention.ms", "-2").is_err());
        assert!(validate_config("retention.ms", "abc").is_err());
        assert!(validate_config("cleanup.policy", "compact").is_err());
        assert!(validate_config("no.such.config", "1").is_err());
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "-1".to_string());
        o.insert("retention.bytes".to_string(), "1000".to_string());
        let cfg = log_config(&o, &LogConfig::default());
        assert_eq!(cfg.retention_ms, None);
        assert_eq!(cfg.retention_bytes, Some(1000));
        let eff = effective_configs(&o, &LogConfig::default(), 10);
        assert!(eff.contains(&("retention.ms", "-1".to_string(), false)));
        assert!(eff.contains(&("max.message.bytes", "10".to_string(), true)));
    }
}
