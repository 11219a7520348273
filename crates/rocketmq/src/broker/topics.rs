//! A broker's topics and subscription groups, kept in `topics.json` and
//! `subscriptionGroup.json` beside its log, rewritten atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::message::PhysicalOffset;

/// Topic permission bits (`PermName`).
pub mod perm {
    pub const PRIORITY: i32 = 0x1 << 3;
    pub const READ: i32 = 0x1 << 2;
    pub const WRITE: i32 = 0x1 << 1;
    pub const INHERIT: i32 = 0x1;

    pub fn readable(p: i32) -> bool {
        p & READ != 0
    }
    pub fn writable(p: i32) -> bool {
        p & WRITE != 0
    }
}

/// Names Apache RocketMQ gives its own topics and topic prefixes (`TopicValidator`,
/// `MixAll`).
pub mod system {
    pub const AUTO_CREATE: &str = "TBW102";
    pub const SCHEDULE: &str = "SCHEDULE_TOPIC_XXXX";
    pub const BENCHMARK: &str = "BenchmarkTest";
    pub const TRANS_HALF: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
    pub const TRANS_OP_HALF: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
    pub const TRANS_CHECK_MAX_TIME: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
    pub const TRACE: &str = "RMQ_SYS_TRACE_TOPIC";
    pub const SELF_TEST: &str = "SELF_TEST_TOPIC";
    pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
    pub const RETRY_PREFIX: &str = "%RETRY%";
    pub const DLQ_PREFIX: &str = "%DLQ%";

    /// Topics clients may not send to (`NOT_ALLOWED_SEND_TOPIC_SET`).
    pub fn send_forbidden(topic: &str) -> bool {
        matches!(
            topic,
            SCHEDULE
                | TRANS_HALF
                | TRANS_OP_HALF
                | TRANS_CHECK_MAX_TIME
                | SELF_TEST
                | OFFSET_MOVED_EVENT
        )
    }

    pub fn retry_topic(group: &str) -> String {
        format!("{RETRY_PREFIX}{group}")
    }

    pub fn dlq_topic(group: &str) -> String {
        format!("{DLQ_PREFIX}{group}")
    }
}

/// Why a topic or group name is refused, with Apache's remark.
pub fn check_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.trim().is_empty() {
        return Err("The specified topic is blank.");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(
            "The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
        );
    }
    if topic.len() > 127 {
        return Err("The specified topic is longer than topic max length.");
    }
    Ok(())
}

/// A topic as `TopicConfig` serializes it, plus the serial number our message ids carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    #[serde(default = "single_tag")]
    pub topic_filter_type: String,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default)]
    pub order: bool,
    /// Ours: names the topic's logs (`t<serial>-<queue>`) and sits in its message ids.
    #[serde(default)]
    pub serial: u32,
}

fn single_tag() -> String {
    "SINGLE_TAG".into()
}

impl TopicConfig {
    pub fn new(name: &str, queues: i32, perm: i32) -> TopicConfig {
        TopicConfig {
            topic_name: name.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            topic_filter_type: single_tag(),
            topic_sys_flag: 0,
            order: false,
            serial: 0,
        }
    }

    /// The queue ids a request may name: `max(read, write)` as Apache checks them.
    pub fn queue_count(&self) -> i32 {
        self.read_queue_nums.max(self.write_queue_nums)
    }

    /// `TopicConfig.toString()`, which Apache puts in some remarks.
    pub fn describe(&self) -> String {
        format!(
            "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, topicFilterType={}, topicSysFlag={}, order={}]",
            self.topic_name,
            self.read_queue_nums,
            self.write_queue_nums,
            perm_string(self.perm),
            self.topic_filter_type,
            self.topic_sys_flag,
            self.order
        )
    }
}

/// `PermName.perm2String`.
pub fn perm_string(p: i32) -> String {
    let mut s = String::from("---");
    if perm::readable(p) {
        s.replace_range(0..1, "R");
    }
    if perm::writable(p) {
        s.replace_range(1..2, "W");
    }
    if p & perm::INHERIT != 0 {
        s.replace_range(2..3, "X");
    }
    s
}

/// A subscription group as `SubscriptionGroupConfig` serializes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupConfig {
    pub group_name: String,
    #[serde(default = "yes")]
    pub consume_enable: bool,
    #[serde(default = "yes")]
    pub consume_from_min_enable: bool,
    #[serde(default = "yes")]
    pub consume_broadcast_enable: bool,
    #[serde(default = "one")]
    pub retry_queue_nums: i32,
    #[serde(default = "sixteen")]
    pub retry_max_times: i32,
    #[serde(default)]
    pub broker_id: i64,
    #[serde(default = "one_i64")]
    pub which_broker_when_consume_slowly: i64,
    #[serde(default = "yes")]
    pub notify_consumer_ids_changed_enable: bool,
}

fn yes() -> bool {
    true
}
fn one() -> i32 {
    1
}
fn one_i64() -> i64 {
    1
}
fn sixteen() -> i32 {
    16
}

impl GroupConfig {
    pub fn new(name: &str) -> GroupConfig {
        GroupConfig {
            group_name: name.to_string(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }
}

/// Apache's system groups, present on every broker.
pub const SYSTEM_GROUPS: [&str; 7] = [
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "__MONITOR_CONSUMER",
    "CLIENT_INNER_PRODUCER",
    "SELF_TEST_P_GROUP",
    "SELF_TEST_C_GROUP",
    "CID_ONS-HTTP-PROXY",
];

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicFile {
    topic_config_table: BTreeMap<String, TopicConfig>,
    #[serde(default)]
    next_serial: u32,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupFile {
    subscription_group_table: BTreeMap<String, GroupConfig>,
}

/// The topic and group tables.
pub struct Tables {
    dir: PathBuf,
    topics: RwLock<TopicFile>,
    groups: RwLock<GroupFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("no more topic serial numbers on this broker")]
    Exhausted,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Tables {
    /// Reads the tables (missing files are empty tables) and adds the system topics and
    /// groups Apache brokers always have.
    pub fn open(
        dir: &Path,
        auto_create_topics: bool,
        broker_name: &str,
        cluster: &str,
    ) -> Result<Tables, TableError> {
        let topics: TopicFile = read_json(&dir.join("topics.json"))?.unwrap_or_default();
        let groups: GroupFile = read_json(&dir.join("subscriptionGroup.json"))?.unwrap_or_default();
        let t = Tables {
            dir: dir.to_path_buf(),
            topics: RwLock::new(topics),
            groups: RwLock::new(groups),
        };
        let rw = perm::READ | perm::WRITE;
        let mut system = vec![
            TopicConfig::new(system::SELF_TEST, 1, rw),
            TopicConfig::new(system::OFFSET_MOVED_EVENT, 1, rw),
            TopicConfig::new(system::SCHEDULE, 18, rw),
            TopicConfig::new(system::TRANS_HALF, 1, rw),
            TopicConfig::new(system::TRANS_OP_HALF, 1, rw),
            // Apache creates it with traceTopicEnable; clients with trace on send to it.
            TopicConfig::new(system::TRACE, 1, rw),
            TopicConfig::new(cluster, 16, rw),
            TopicConfig::new(broker_name, 1, rw),
        ];
        if auto_create_topics {
            system.push(TopicConfig::new(system::AUTO_CREATE, 8, perm::INHERIT | rw));
            system.push(TopicConfig::new(system::BENCHMARK, 1024, rw));
        }
        for mut c in system {
            if t.topic(&c.topic_name).is_none() {
                c.serial = t.next_serial()?;
                t.topics
                    .write()
                    .topic_config_table
                    .insert(c.topic_name.clone(), c);
            }
        }
        if !auto_create_topics {
            t.topics
                .write()
                .topic_config_table
                .remove(system::AUTO_CREATE);
        }
        for g in SYSTEM_GROUPS {
            t.groups
                .write()
                .subscription_group_table
                .entry(g.to_string())
                .or_insert_with(|| GroupConfig::new(g));
        }
        Ok(t)
    }

    fn next_serial(&self) -> Result<u32, TableError> {
        let mut f = self.topics.write();
        if f.next_serial == 0 {
            f.next_serial = 1;
        }
        let s = f.next_serial;
        if s > PhysicalOffset::MAX_TOPIC_SERIAL {
            return Err(TableError::Exhausted);
        }
        f.next_serial += 1;
        Ok(s)
    }

    /// Adds `TBW102` (producers may create topics through it) or removes it; true when
    /// that changed something.
    pub fn set_auto_create_topics(&self, on: bool) -> Result<bool, TableError> {
        let present = self.topic(system::AUTO_CREATE).is_some();
        match (on, present) {
            (true, false) => {
                let mut c = TopicConfig::new(
                    system::AUTO_CREATE,
                    8,
                    perm::INHERIT | perm::READ | perm::WRITE,
                );
                c.serial = self.next_serial()?;
                self.topics
                    .write()
                    .topic_config_table
                    .insert(c.topic_name.clone(), c);
                Ok(true)
            }
            (false, true) => Ok(self.remove_topic(system::AUTO_CREATE).is_some()),
            _ => Ok(false),
        }
    }

    pub fn topic(&self, name: &str) -> Option<TopicConfig> {
        self.topics.read().topic_config_table.get(name).cloned()
    }

    /// Reads a topic's config in place: what the send path does, where a clone (two
    /// `String`s) per send showed in its profile.
    pub fn with_topic<R>(&self, name: &str, read: impl FnOnce(&TopicConfig) -> R) -> Option<R> {
        self.topics.read().topic_config_table.get(name).map(read)
    }

    pub fn topic_by_serial(&self, serial: u32) -> Option<TopicConfig> {
        self.topics
            .read()
            .topic_config_table
            .values()
            .find(|t| t.serial == serial)
            .cloned()
    }

    pub fn all_topics(&self) -> Vec<TopicConfig> {
        self.topics
            .read()
            .topic_config_table
            .values()
            .cloned()
            .collect()
    }

    /// Creates or updates a topic (keeping its serial); true when something changed.
    pub fn put_topic(&self, mut config: TopicConfig) -> Result<(TopicConfig, bool), TableError> {
        if let Some(old) = self.topic(&config.topic_name) {
            config.serial = old.serial;
            if old == config {
                return Ok((old, false));
            }
        } else {
            config.serial = self.next_serial()?;
        }
        self.topics
            .write()
            .topic_config_table
            .insert(config.topic_name.clone(), config.clone());
        Ok((config, true))
    }

    pub fn remove_topic(&self, name: &str) -> Option<TopicConfig> {
        self.topics.write().topic_config_table.remove(name)
    }

    pub fn group(&self, name: &str) -> Option<GroupConfig> {
        self.groups
            .read()
            .subscription_group_table
            .get(name)
            .cloned()
    }

    pub fn all_groups(&self) -> Vec<GroupConfig> {
        self.groups
            .read()
            .subscription_group_table
            .values()
            .cloned()
            .collect()
    }

    pub fn put_group(&self, config: GroupConfig) {
        self.groups
            .write()
            .subscription_group_table
            .insert(config.group_name.clone(), config);
    }

    pub fn remove_group(&self, name: &str) -> Option<GroupConfig> {
        self.groups.write().subscription_group_table.remove(name)
    }

    /// The tables as JSON documents, to be written by [`Tables::write`] off the async workers.
    pub fn snapshot(&self) -> (Vec<u8>, Vec<u8>) {
        let topics = serde_json::to_vec_pretty(&*self.topics.read()).unwrap_or_default();
        let groups = serde_json::to_vec_pretty(&*self.groups.read()).unwrap_or_default();
        (topics, groups)
    }

    pub fn write(&self, snapshot: &(Vec<u8>, Vec<u8>)) -> std::io::Result<()> {
        write_atomically(&self.dir.join("topics.json"), &snapshot.0)?;
        write_atomically(&self.dir.join("subscriptionGroup.json"), &snapshot.1)
    }

    /// `topicConfigTable` + `dataVersion` as GET_ALL_TOPIC_CONFIG returns it.
    pub fn topic_table_json(&self) -> serde_json::Value {
        let f = self.topics.read();
        serde_json::json!({
            "topicConfigTable": f.topic_config_table,
            "dataVersion": {"counter": f.next_serial, "timestamp": 0},
        })
    }

    pub fn group_table_json(&self) -> serde_json::Value {
        let f = self.groups.read();
        serde_json::json!({
            "subscriptionGroupTable": f.subscription_group_table,
            "dataVersion": {"counter": 0, "timestamp": 0},
        })
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write to a temporary file, fsync, rename over the old one: a crash leaves one or the other.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_keep_serials_across_updates_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tables::open(dir.path(), true, "broker-a", "DefaultCluster").unwrap();
        assert!(t.topic("TBW102").is_some());
        let (c, changed) = t.put_topic(TopicConfig::new("orders", 4, 6)).unwrap();
        assert!(changed);
        let (c2, changed) = t.put_topic(TopicConfig::new("orders", 8, 6)).unwrap();
        assert!(changed);
        assert_eq!(c.serial, c2.serial);
        t.write(&t.snapshot()).unwrap();
        let t = Tables::open(dir.path(), false, "broker-a", "DefaultCluster").unwrap();
        assert_eq!(t.topic("orders").unwrap().write_queue_nums, 8);
        assert_eq!(t.topic_by_serial(c.serial).unwrap().topic_name, "orders");
        assert!(t.topic("TBW102").is_none());
        assert!(t.group("TOOLS_CONSUMER").is_some());
    }

    #[test]
    fn names_are_checked_as_apache_does() {
        assert!(check_topic_name("%RETRY%g-1|x").is_ok());
        assert_eq!(check_topic_name(" "), Err("The specified topic is blank."));
        assert!(check_topic_name("a.b").is_err());
        assert!(check_topic_name(&"a".repeat(128)).is_err());
        assert_eq!(perm_string(7), "RWX");
    }
}
