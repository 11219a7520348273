//! A queue's ready messages, in delivery order (by priority, then publish order), with
//! their bodies in memory up to a window and paged out beyond it: a paged message is only
//! its place in the queue's log plus what ordering, expiry and limits need (~48 bytes), so a
//! queue of a million messages does not hold a million bodies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::message::{Message, QueuedMessage};

/// Where a ready message is: in memory, or only in the queue's log.
pub(super) enum Held {
    Memory(QueuedMessage),
    Paged,
}

/// One ready message: 48 bytes plus its body while in memory, 48 bytes while paged out.
pub(super) struct Entry {
    /// The message; `None` while it is paged out.
    message: Option<Arc<Message>>,
    pub seq: u64,
    /// Its place in the queue's log; `NO_OFFSET` when it has none.
    offset: i64,
    /// `NEVER` when it does not expire.
    expires_at_ms: i64,
    /// Body bytes (RabbitMQ caps bodies at 512 MiB; ours at 128 MiB).
    size: u32,
    deliveries: u32,
    priority: u8,
    redelivered: bool,
}

const NO_OFFSET: i64 = i64::MIN;
const NEVER: i64 = i64::MAX;

impl Entry {
    pub fn loaded(m: QueuedMessage) -> Entry {
        Entry {
            size: u32::try_from(m.message.size()).unwrap_or(u32::MAX),
            priority: m.message.priority(),
            message: Some(m.message),
            seq: m.seq,
            offset: m.offset.unwrap_or(NO_OFFSET),
            expires_at_ms: m.expires_at_ms.unwrap_or(NEVER),
            deliveries: m.deliveries,
            redelivered: m.redelivered,
        }
    }

    /// A message kept only in the queue's log, at `offset`.
    pub fn paged(
        seq: u64,
        offset: i64,
        priority: u8,
        size: u64,
        expires_at_ms: Option<i64>,
    ) -> Entry {
        Entry {
            message: None,
            seq,
            offset,
            expires_at_ms: expires_at_ms.unwrap_or(NEVER),
            size: u32::try_from(size).unwrap_or(u32::MAX),
            deliveries: 0,
            priority,
            redelivered: false,
        }
    }

    pub fn is_paged(&self) -> bool {
        self.message.is_none()
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn size(&self) -> u64 {
        u64::from(self.size)
    }

    pub fn expires_at_ms(&self) -> Option<i64> {
        (self.expires_at_ms != NEVER).then_some(self.expires_at_ms)
    }

    /// Its entry in the queue's log, if it has one.
    pub fn offset(&self) -> Option<i64> {
        (self.offset != NO_OFFSET).then_some(self.offset)
    }

    /// The message, when it is in memory.
    pub fn held(self) -> Held {
        let (expires_at_ms, offset) = (self.expires_at_ms(), self.offset());
        match self.message {
            Some(message) => Held::Memory(QueuedMessage {
                message,
                redelivered: self.redelivered,
                expires_at_ms,
                deliveries: self.deliveries,
                seq: self.seq,
                offset,
            }),
            None => Held::Paged,
        }
    }
}

pub(super) struct Ready {
    /// One bucket per priority (one in all when the queue has no priorities).
    buckets: Vec<VecDeque<Entry>>,
    pub len: usize,
    /// Body bytes of every ready message (what x-max-length-bytes counts).
    pub bytes: u64,
    /// Messages and body bytes held in memory.
    pub loaded: usize,
    pub loaded_bytes: u64,
    /// Paged messages.
    pub paged: usize,
    /// Body bytes in memory over every queue of the broker.
    global: Arc<AtomicU64>,
}

impl Ready {
    pub fn new(max_priority: Option<u8>, global: Arc<AtomicU64>) -> Ready {
        let n = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            buckets: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
            loaded: 0,
            loaded_bytes: 0,
            paged: 0,
            global,
        }
    }

    fn bucket(&self, e: &Entry) -> usize {
        usize::from(e.priority).min(self.buckets.len() - 1)
    }

    fn added(&mut self, e: &Entry) {
        self.len += 1;
        self.bytes += e.size();
        if e.is_paged() {
            self.paged += 1;
        } else {
            self.loaded += 1;
            self.loaded_bytes += e.size();
            self.global.fetch_add(e.size(), Ordering::Relaxed);
        }
    }

    fn removed(&mut self, e: &Entry) {
        self.len -= 1;
        self.bytes -= e.size();
        if e.is_paged() {
            self.paged -= 1;
        } else {
            self.loaded -= 1;
            self.loaded_bytes -= e.size();
            self.global.fetch_sub(e.size(), Ordering::Relaxed);
        }
    }

    pub fn push_back(&mut self, e: Entry) {
        self.added(&e);
        let b = self.bucket(&e);
        self.buckets[b].push_back(e);
    }

    /// Puts a message back where its sequence number says it was (requeue).
    pub fn insert_in_order(&mut self, m: QueuedMessage) {
        self.insert_entry_in_order(Entry::loaded(m));
    }

    /// Puts a ready message back where its sequence number says it was.
    pub fn insert_entry_in_order(&mut self, e: Entry) {
        self.added(&e);
        let b = self.bucket(&e);
        let bucket = &mut self.buckets[b];
        let at = bucket.partition_point(|x| x.seq() < e.seq());
        bucket.insert(at, e);
    }

    /// The next message to deliver: highest priority first.
    pub fn front(&self) -> Option<&Entry> {
        self.buckets.iter().rev().find_map(|b| b.front())
    }

    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = self.buckets.iter_mut().rev().find_map(|b| b.pop_front())?;
        self.removed(&e);
        Some(e)
    }

    /// The oldest message of the lowest priority (dropped first when the queue is full).
    pub fn pop_oldest_lowest(&mut self) -> Option<Entry> {
        let e = self.buckets.iter_mut().find_map(|b| b.pop_front())?;
        self.removed(&e);
        Some(e)
    }

    pub fn clear(&mut self) -> Vec<Entry> {
        let all: Vec<Entry> = self.buckets.iter_mut().flat_map(|b| b.drain(..)).collect();
        self.global.fetch_sub(self.loaded_bytes, Ordering::Relaxed);
        self.len = 0;
        self.bytes = 0;
        self.loaded = 0;
        self.loaded_bytes = 0;
        self.paged = 0;
        all
    }

    /// Offsets of the first paged messages in delivery order, up to `max_bytes` of bodies and
    /// `max_messages` messages (at least one), oldest first within each priority: what to
    /// page in next.
    pub fn paged_front(&self, max_bytes: u64, max_messages: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for bucket in self.buckets.iter().rev() {
            for e in bucket.iter().filter(|e| e.is_paged()) {
                if !out.is_empty() && (bytes + e.size() > max_bytes || out.len() >= max_messages) {
                    out.sort_unstable();
                    return out;
                }
                bytes += e.size();
                out.push(e.offset);
            }
        }
        out.sort_unstable();
        out
    }

    /// Puts bodies read back from the log into their paged messages; answers how many.
    /// `bodies` are for the front of the paged messages (`paged_front`), so the walk goes in
    /// delivery order and stops once every body is placed: walking every paged message of a
    /// queue per page-in made paging quadratic (a PerfTest consumer 10x behind its producer
    /// got 14,619 msg/s out of a queue with millions paged out).
    pub fn load(&mut self, bodies: &HashMap<i64, Arc<Message>>) -> usize {
        let mut n = 0;
        let mut added = 0u64;
        'buckets: for bucket in self.buckets.iter_mut().rev() {
            for e in bucket.iter_mut().filter(|e| e.is_paged()) {
                if n == bodies.len() {
                    break 'buckets;
                }
                let Some(message) = bodies.get(&e.offset) else {
                    continue;
                };
                // Settling it settles its log entry (persistent or paged out): the offset
                // stays.
                e.message = Some(message.clone());
                added += e.size();
                n += 1;
            }
        }
        self.paged -= n;
        self.loaded += n;
        self.loaded_bytes += added;
        self.global.fetch_add(added, Ordering::Relaxed);
        n
    }

    /// Drops paged messages whose bodies could not be read back; answers their offsets.
    pub fn drop_paged(&mut self, offsets: &[i64]) -> Vec<i64> {
        let mut gone = Vec::new();
        for bucket in &mut self.buckets {
            bucket.retain(|e| {
                if e.is_paged() && offsets.binary_search(&e.offset).is_ok() {
                    gone.push((e.offset, e.size()));
                    false
                } else {
                    true
                }
            });
        }
        for (_, size) in &gone {
            self.len -= 1;
            self.bytes -= size;
            self.paged -= 1;
        }
        gone.into_iter().map(|(o, _)| o).collect()
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        self.global.fetch_sub(self.loaded_bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::BasicProperties;
    use bytes::Bytes;

    use super::*;

    fn message(priority: u8, body: &str) -> Arc<Message> {
        Arc::new(Message {
            exchange: String::new(),
            routing_key: String::new(),
            properties: BasicProperties::default().with_priority(priority),
            raw_properties: Bytes::new(),
            body: Bytes::from(body.to_string()),
            published_ms: 0,
        })
    }

    fn loaded(seq: u64, priority: u8, body: &str) -> Entry {
        Entry::loaded(QueuedMessage {
            message: message(priority, body),
            redelivered: false,
            expires_at_ms: None,
            deliveries: 0,
            seq,
            offset: None,
        })
    }

    #[test]
    fn entries_stay_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 48,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn page_ins_load_the_front_in_delivery_order_whatever_the_priorities() {
        let global = Arc::new(AtomicU64::new(0));
        let mut r = Ready::new(Some(1), global);
        // Low priority: offsets 20, 21; high priority: 10, 11 (delivered first).
        r.push_back(Entry::paged(1, 20, 0, 3, None));
        r.push_back(Entry::paged(2, 10, 1, 3, None));
        r.push_back(Entry::paged(3, 21, 0, 3, None));
        r.push_back(Entry::paged(4, 11, 1, 3, None));
        assert_eq!(r.paged_front(100, 3), vec![10, 11, 20]);
        let bodies: HashMap<i64, Arc<Message>> = [10, 11, 20]
            .into_iter()
            .map(|o| (o, message(0, "abc")))
            .collect();
        assert_eq!(r.load(&bodies), 3);
        assert_eq!((r.loaded, r.paged), (3, 1));
        assert_eq!(
            r.paged_front(100, 10),
            vec![21],
            "only the last one is left paged"
        );
    }

    #[test]
    fn paging_keeps_order_and_counts() {
        let global = Arc::new(AtomicU64::new(0));
        let mut r = Ready::new(None, global.clone());
        r.push_back(loaded(0, 0, "aaaa"));
        r.push_back(Entry::paged(1, 10, 0, 5, None));
        r.push_back(Entry::paged(2, 11, 0, 6, Some(99)));
        assert_eq!((r.len, r.bytes, r.loaded_bytes, r.paged), (3, 15, 4, 2));
        assert_eq!(global.load(Ordering::Relaxed), 4);
        assert_eq!(
            r.paged_front(5, 10),
            vec![10],
            "at least one, then up to the byte budget"
        );
        assert_eq!(r.paged_front(100, 10), vec![10, 11]);
        assert_eq!(r.paged_front(100, 1), vec![10], "at most max_messages");
        assert!(matches!(
            r.pop_front().map(Entry::held),
            Some(Held::Memory(_))
        ));
        assert!(r.front().is_some_and(Entry::is_paged));
        let mut bodies = HashMap::new();
        bodies.insert(10, message(0, "bbbbb"));
        assert_eq!(r.load(&bodies), 1);
        assert_eq!((r.loaded, r.paged, r.loaded_bytes), (1, 1, 5));
        let Some(Held::Memory(m)) = r.pop_front().map(Entry::held) else {
            panic!("loaded")
        };
        assert_eq!(
            (m.seq, m.offset),
            (1, Some(10)),
            "a paged-in message keeps its log entry"
        );
        assert_eq!(r.front().and_then(Entry::expires_at_ms), Some(99));
        assert_eq!(r.drop_paged(&[11]), vec![11]);
        assert_eq!((r.len, r.bytes), (0, 0));
        r.push_back(loaded(3, 0, "cc"));
        drop(r);
        assert_eq!(
            global.load(Ordering::Relaxed),
            0,
            "what a queue held is given back"
        );
    }

    #[test]
    fn priorities_come_first_and_requeues_go_back_in_place() {
        let mut r = Ready::new(Some(5), Arc::new(AtomicU64::new(0)));
        r.push_back(loaded(0, 0, "low"));
        r.push_back(loaded(1, 5, "high"));
        r.push_back(loaded(2, 0, "low2"));
        assert_eq!(r.pop_front().map(|e| e.seq), Some(1));
        let Some(Held::Memory(m)) = r.pop_front().map(Entry::held) else {
            panic!("loaded")
        };
        r.insert_in_order(m);
        assert_eq!(r.front().map(Entry::seq), Some(0));
    }
}
