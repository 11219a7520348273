//! Scheduled (delay-level) messages, as Apache's `ScheduleMessageService` does them: a
//! message with `DELAY=n` is stored in queue `n-1` of `SCHEDULE_TOPIC_XXXX` with its real
//! topic and queue in properties; every queue holds one delay, so messages come due in
//! queue order, and a cursor per level (`delayOffset.json`) marks how far delivery got.
//! Delivery re-puts the message to its real queue; the cursor is written every 5 s, so a
//! crash may deliver a delayed message twice (at least once, as Apache).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::send::DELAY_LEVELS_MS;
use super::topics::{read_json, system, write_atomically};
use super::{now_ms, Broker, QueueStore};
use crate::message::{prop, StoredMessage};

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayFile {
    offset_table: BTreeMap<i32, i64>,
}

pub struct Schedule {
    path: PathBuf,
    cursors: Mutex<DelayFile>,
    dirty: AtomicBool,
}

impl Schedule {
    pub fn open(dir: &Path) -> std::io::Result<Schedule> {
        let path = dir.join("delayOffset.json");
        let cursors: DelayFile = read_json(&path)?.unwrap_or_default();
        Ok(Schedule {
            path,
            cursors: Mutex::new(cursors),
            dirty: AtomicBool::new(false),
        })
    }

    fn cursor(&self, level: i32) -> i64 {
        self.cursors
            .lock()
            .offset_table
            .get(&level)
            .copied()
            .unwrap_or(0)
    }

    fn advance(&self, level: i32, offset: i64) {
        self.cursors.lock().offset_table.insert(level, offset);
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.cursors.lock()).unwrap_or_default();
        write_atomically(&self.path, &bytes)
    }

    pub fn offsets_json(&self) -> String {
        serde_json::to_string(&*self.cursors.lock()).unwrap_or_default()
    }
}

impl Broker {
    /// Moves every due delayed message to its real queue.
    pub(super) async fn deliver_due_messages(self: &Arc<Self>) {
        let Some(t) = self.tables.topic(system::SCHEDULE) else {
            return;
        };
        for (i, delay) in DELAY_LEVELS_MS.iter().enumerate() {
            let level = i as i32 + 1;
            let Some(queue) = self.store.queue(t.serial, level - 1) else {
                continue;
            };
            let mut next = self.schedule.cursor(level).max(queue.min_offset());
            if next >= queue.max_offset() {
                continue;
            }
            let q = queue.clone();
            let from = next;
            let read =
                tokio::task::spawn_blocking(move || QueueStore::read(&q, from, 256, 1024 * 1024))
                    .await;
            let Ok(Ok(messages)) = read else {
                continue;
            };
            let now = now_ms();
            for m in messages {
                let Ok((mut msg, _, _)) = StoredMessage::decode(&m.bytes) else {
                    next = m.queue_offset + 1;
                    continue;
                };
                if msg.store_timestamp + delay > now {
                    break;
                }
                let real_topic = msg.properties.get(prop::REAL_TOPIC).map(str::to_string);
                let real_queue = msg
                    .properties
                    .get(prop::REAL_QID)
                    .and_then(|q| q.parse::<i32>().ok());
                msg.properties.remove(prop::DELAY);
                if let (Some(topic), Some(queue_id)) = (real_topic, real_queue) {
                    msg.topic = topic;
                    msg.queue_id = queue_id;
                    match self.put_messages(vec![msg]).await {
                        Ok(_) => {
                            debug!(level, offset = m.queue_offset, "delayed message delivered")
                        }
                        Err(e) => {
                            // Its topic may be gone; Apache drops such messages too.
                            warn!(level, offset = m.queue_offset, error = %e, "delayed message dropped");
                        }
                    }
                }
                next = m.queue_offset + 1;
            }
            self.schedule.advance(level, next);
        }
    }
}
