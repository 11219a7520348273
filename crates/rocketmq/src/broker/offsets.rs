//! Consumer offsets: `topic@group` → queue id → next offset to consume, as Apache's
//! `ConsumerOffsetManager` keeps them, written to `consumerOffset.json` when changed (the
//! broker's tick, every 5 s as Apache's `flushConsumerOffsetInterval`, and at stop). A crash
//! loses at most those seconds of commits, and consumers see those messages again: the
//! at-least-once delivery RocketMQ documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::topics::{read_json, write_atomically};

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

pub struct ConsumerOffsets {
    path: PathBuf,
    table: Mutex<OffsetFile>,
    dirty: AtomicBool,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl ConsumerOffsets {
    pub fn open(dir: &Path) -> std::io::Result<ConsumerOffsets> {
        let path = dir.join("consumerOffset.json");
        let table: OffsetFile = read_json(&path)?.unwrap_or_default();
        Ok(ConsumerOffsets {
            path,
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
        })
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.table
            .lock()
            .offset_table
            .get(&key(topic, group))
            .and_then(|m| m.get(&queue_id))
            .copied()
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.table
            .lock()
            .offset_table
            .entry(key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Every queue's offset of a group on a topic.
    pub fn of(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.table
            .lock()
            .offset_table
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// The topics a group has offsets on.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        self.table
            .lock()
            .offset_table
            .keys()
            .filter_map(|k| k.split_once('@'))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_string())
            .collect()
    }

    pub fn remove_group(&self, group: &str) {
        let suffix = format!("@{group}");
        self.table
            .lock()
            .offset_table
            .retain(|k, _| !k.ends_with(&suffix));
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}@");
        self.table
            .lock()
            .offset_table
            .retain(|k, _| !k.starts_with(&prefix));
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the table if it changed since the last write (blocking).
    pub fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.table.lock()).unwrap_or_default();
        let r = write_atomically(&self.path, &bytes);
        if r.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_a_reopen_once_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let o = ConsumerOffsets::open(dir.path()).unwrap();
        o.commit("g", "t", 1, 42);
        o.commit("g2", "t", 0, 7);
        o.persist().unwrap();
        let o = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(o.query("g", "t", 1), Some(42));
        assert_eq!(o.query("g", "t", 0), None);
        assert_eq!(o.topics_of_group("g2"), ["t"]);
        o.remove_group("g");
        assert_eq!(o.query("g", "t", 1), None);
        assert_eq!(o.query("g2", "t", 0), Some(7));
    }
}
