//! Message queues on `msglog`: queue `q` of the topic with serial `s` is the partition
//! `t<s>-<q>`, one record per message, the record offset being the queue offset. Each
//! record is a stored message (`message.rs`) carrying its queue and physical offsets (the
//! writer fills them in; records whose offsets do not match are patched as they are read).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use msglog::{batch, LogConfig, LogError, LogStore, Partition, StoreConfig};
use parking_lot::RwLock;
use tokio::sync::Notify;

use crate::message::{patch_offsets, stored_offsets, PhysicalOffset};

/// One message queue: its log and a wake-up for pulls suspended on it.
pub struct MessageQueue {
    pub serial: u32,
    pub queue_id: i32,
    pub log: Arc<Partition>,
    pub arrived: Notify,
}

impl MessageQueue {
    pub fn min_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn max_offset(&self) -> i64 {
        self.log.high_watermark()
    }

    /// What one message takes in the log on average (with its batch framing); `None` for an
    /// empty queue.
    pub fn stored_bytes_per_message(&self) -> Option<usize> {
        let count = u64::try_from(self.max_offset() - self.min_offset()).ok()?;
        let average = self.log.size_bytes().checked_div(count)?;
        usize::try_from(average).ok().filter(|a| *a > 0)
    }
}

/// A message read back: its queue offset, physical offset and stored bytes (offsets filled).
pub struct ReadMessage {
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub bytes: Vec<u8>,
}

pub struct QueueStore {
    log: LogStore,
    /// What every queue's log keeps (retention), for queues opened later too.
    log_config: RwLock<LogConfig>,
    queues: RwLock<HashMap<(u32, i32), Arc<MessageQueue>>>,
    /// Wakes pulls suspended on a queue that had no log yet when its first message arrives.
    pub created: Notify,
}

fn log_name(serial: u32) -> String {
    format!("t{serial}")
}

/// Walks the stored messages of `records` from `offset` on, each with its queue offset and
/// physical offset, until `max_count` of them counted (`each` says whether one counts) or about
/// `max_bytes` walked (the first always). Returns (messages counted, the offset after the last
/// one walked, bytes walked).
fn walk(
    queue: &MessageQueue,
    records: &[u8],
    offset: i64,
    max_count: usize,
    max_bytes: usize,
    mut each: impl FnMut(i64, i64, &[u8]) -> bool,
) -> Result<(usize, i64, usize), LogError> {
    let (mut counted, mut next, mut walked) = (0usize, offset, 0usize);
    for (o, entry) in batch::decode_entries(records)? {
        if o < offset {
            continue;
        }
        if counted >= max_count || (walked > 0 && walked + entry.len() > max_bytes) {
            break;
        }
        walked += entry.len();
        next = o + 1;
        let physical = PhysicalOffset::new(queue.serial, queue.queue_id, o).encode();
        if each(o, physical, entry) {
            counted += 1;
        }
    }
    Ok((counted, next, walked))
}

impl QueueStore {
    /// Opens the log directory and recovers every queue in it; messages are kept for
    /// `retention` (`None`: until the quota needs the room).
    pub fn open(
        dir: &Path,
        config: StoreConfig,
        retention: Option<std::time::Duration>,
    ) -> Result<QueueStore, LogError> {
        let log = LogStore::open(dir, config)?;
        let s = QueueStore {
            log,
            log_config: RwLock::new(LogConfig {
                retention_ms: retention.map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX)),
                ..LogConfig::default()
            }),
            queues: RwLock::new(HashMap::new()),
            created: Notify::new(),
        };
        for (name, id) in s.log.partitions_on_disk()? {
            if let Some(serial) = name.strip_prefix('t').and_then(|n| n.parse::<u32>().ok()) {
                s.open_queue(serial, id)?;
            }
        }
        Ok(s)
    }

    pub fn log(&self) -> &LogStore {
        &self.log
    }

    fn open_queue(&self, serial: u32, queue_id: i32) -> Result<Arc<MessageQueue>, LogError> {
        if let Some(q) = self.queues.read().get(&(serial, queue_id)) {
            return Ok(q.clone());
        }
        let log =
            self.log
                .open_partition(&log_name(serial), queue_id, self.log_config.read().clone())?;
        let q = Arc::new(MessageQueue {
            serial,
            queue_id,
            log,
            arrived: Notify::new(),
        });
        let q = self
            .queues
            .write()
            .entry((serial, queue_id))
            .or_insert(q)
            .clone();
        self.created.notify_waiters();
        Ok(q)
    }

    /// The queue if it has ever been written (blocking: may create its directory).
    pub fn queue_for_write(
        &self,
        serial: u32,
        queue_id: i32,
    ) -> Result<Arc<MessageQueue>, LogError> {
        self.open_queue(serial, queue_id)
    }

    /// The queue if it exists; a queue never written has no log and is empty.
    pub fn queue(&self, serial: u32, queue_id: i32) -> Option<Arc<MessageQueue>> {
        self.queues.read().get(&(serial, queue_id)).cloned()
    }

    /// (min, max) offsets; (0, 0) for a queue never written.
    pub fn offsets(&self, serial: u32, queue_id: i32) -> (i64, i64) {
        self.queue(serial, queue_id)
            .map_or((0, 0), |q| (q.min_offset(), q.max_offset()))
    }

    /// Appends stored messages (blocking); returns the first queue offset.
    pub fn append(queue: &MessageQueue, messages: &[&[u8]], now_ms: i64) -> Result<i64, LogError> {
        let records = batch::encode_entries(messages, now_ms);
        let info = queue.log.append_entries(&records, now_ms)?;
        Ok(info.base_offset)
    }

    /// Up to `max_count` messages from `offset` within about `max_bytes` (blocking), their
    /// offsets filled in.
    pub fn read(
        queue: &MessageQueue,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<ReadMessage>, LogError> {
        let fetched = queue.log.read(offset, max_bytes)?;
        let mut out = Vec::new();
        walk(
            queue,
            &fetched.records,
            offset,
            max_count,
            max_bytes,
            |o, physical, entry| {
                let mut m = entry.to_vec();
                patch_offsets(&mut m, o, physical);
                out.push(ReadMessage {
                    queue_offset: o,
                    physical_offset: physical,
                    bytes: m,
                });
                true
            },
        )?;
        Ok(out)
    }

    /// Appends to `out` the messages from `offset` on (up to `max_count`, within about
    /// `max_bytes` read) that `accept` takes, each a slice of the log read (copied only when its
    /// stored offsets need patching). Returns (messages taken, the offset after the last
    /// message read, bytes read); no bytes read means the queue has nothing at `offset`
    /// (blocking).
    ///
    /// With `cached_only` it never waits for the disk: `None` when the log would have to.
    pub fn read_into(
        queue: &MessageQueue,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        cached_only: bool,
        out: &mut Vec<Bytes>,
        mut accept: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<(usize, i64, usize)>, LogError> {
        let fetched = if cached_only {
            match queue.log.read_cached(offset, max_bytes)? {
                Some(f) => f,
                None => return Ok(None),
            }
        } else {
            queue.log.read(offset, max_bytes)?
        };
        let records = &fetched.records;
        let taken = walk(
            queue,
            records,
            offset,
            max_count,
            max_bytes,
            |o, physical, entry| {
                if !accept(entry) {
                    return false;
                }
                if stored_offsets(entry) == Some((o, physical)) {
                    // `entry` lies within `records` (decode_entries slices its input).
                    out.push(records.slice_ref(entry));
                } else {
                    let mut m = entry.to_vec();
                    patch_offsets(&mut m, o, physical);
                    out.push(Bytes::from(m));
                }
                true
            },
        )?;
        Ok(Some(taken))
    }

    /// The one message at `offset`, if the queue still has it (blocking).
    pub fn read_one(queue: &MessageQueue, offset: i64) -> Result<Option<ReadMessage>, LogError> {
        if offset < queue.min_offset() || offset >= queue.max_offset() {
            return Ok(None);
        }
        Ok(Self::read(queue, offset, 1, 1)?
            .into_iter()
            .next()
            .filter(|m| m.queue_offset == offset))
    }

    /// Removes every queue of a topic and its logs (blocking).
    pub fn remove_topic(&self, serial: u32) -> Result<(), LogError> {
        self.queues.write().retain(|(s, _), _| *s != serial);
        self.log.remove_topic(&log_name(serial))
    }

    /// Every open queue of a topic.
    /// Keeps messages for `retention` from now on, in every queue.
    pub fn set_retention(&self, retention: Option<std::time::Duration>) {
        let mut c = self.log_config.write();
        c.retention_ms = retention.map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX));
        for q in self.queues.read().values() {
            q.log.set_config(c.clone());
        }
    }

    pub fn queues_of(&self, serial: u32) -> Vec<Arc<MessageQueue>> {
        let mut v: Vec<_> = self
            .queues
            .read()
            .values()
            .filter(|q| q.serial == serial)
            .cloned()
            .collect();
        v.sort_by_key(|q| q.queue_id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in stored message: only its length and offset fields matter here.
    fn message(fill: u8, queue_offset: i64, physical: i64) -> Vec<u8> {
        let mut m = vec![fill; 64];
        m[..4].copy_from_slice(&64i32.to_be_bytes());
        patch_offsets(&mut m, queue_offset, physical);
        m
    }

    #[test]
    fn reads_serve_every_message_with_its_own_offsets_whatever_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = QueueStore::open(dir.path(), StoreConfig::default(), None).unwrap();
        let q = store.queue_for_write(3, 1).unwrap();
        let physical = |o| PhysicalOffset::new(3, 1, o).encode();
        // Offset 0 stored as the writer stores it, 1 with zeroed offsets (as older builds
        // stored every message), 2 with wrong ones.
        let stored = [
            message(7, 0, physical(0)),
            message(8, 0, 0),
            message(9, 5, 5),
        ];
        let refs: Vec<&[u8]> = stored.iter().map(Vec::as_slice).collect();
        assert_eq!(QueueStore::append(&q, &refs, 1_000).unwrap(), 0);

        for cached_only in [false, true] {
            let mut out = Vec::new();
            let (taken, next, read) =
                QueueStore::read_into(&q, 0, 10, 1 << 20, cached_only, &mut out, |_| true)
                    .unwrap()
                    .unwrap();
            assert_eq!((taken, next), (3, 3));
            assert!(read >= 3 * 64);
            for (o, m) in (0..).zip(&out) {
                assert_eq!(stored_offsets(m), Some((o, physical(o))));
                assert_eq!(m[40], [7, 8, 9][o as usize]);
            }
            // The filter sees every message; what it refuses is not served.
            let mut out = Vec::new();
            let (taken, next, _) =
                QueueStore::read_into(&q, 1, 10, 1 << 20, cached_only, &mut out, |m| m[40] != 8)
                    .unwrap()
                    .unwrap();
            assert_eq!((taken, next, out.len()), (1, 3, 1));
            assert_eq!(stored_offsets(&out[0]), Some((2, physical(2))));
        }
    }
}
