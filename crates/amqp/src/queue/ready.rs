//! A queue's ready messages, in delivery order (by priority, then publish order), with
//! their bodies in memory up to a window and paged out beyond it: a paged message is only
//! its place in the queue's log plus what ordering, expiry and limits need (~48 bytes), so a
//! queue of a million messages does not hold a million bodies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::message::{Message, QueuedMessage};

/// A ready message whose body is only in the queue's log.
#[derive(Clone, Debug)]
pub(super) struct Paged {
    pub seq: u64,
    pub offset: i64,
    pub priority: u8,
    pub size: u64,
    pub expires_at_ms: Option<i64>,
    pub redelivered: bool,
    pub deliveries: u32,
}

pub(super) enum Entry {
    Loaded(QueuedMessage),
    Paged(Paged),
}

impl Entry {
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Loaded(m) => m.seq,
            Entry::Paged(p) => p.seq,
        }
    }

    fn priority(&self) -> u8 {
        match self {
            Entry::Loaded(m) => m.message.priority(),
            Entry::Paged(p) => p.priority,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Entry::Loaded(m) => m.message.size(),
            Entry::Paged(p) => p.size,
        }
    }

    pub fn expires_at_ms(&self) -> Option<i64> {
        match self {
            Entry::Loaded(m) => m.expires_at_ms,
            Entry::Paged(p) => p.expires_at_ms,
        }
    }

    /// Its entry in the queue's log, if it has one.
    pub fn offset(&self) -> Option<i64> {
        match self {
            Entry::Loaded(m) => m.offset,
            Entry::Paged(p) => Some(p.offset),
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
        usize::from(e.priority()).min(self.buckets.len() - 1)
    }

    fn added(&mut self, e: &Entry) {
        self.len += 1;
        self.bytes += e.size();
        match e {
            Entry::Loaded(m) => {
                self.loaded += 1;
                self.loaded_bytes += m.message.size();
                self.global.fetch_add(m.message.size(), Ordering::Relaxed);
            }
            Entry::Paged(_) => self.paged += 1,
        }
    }

    fn removed(&mut self, e: &Entry) {
        self.len -= 1;
        self.bytes -= e.size();
        match e {
            Entry::Loaded(m) => {
                self.loaded -= 1;
                self.loaded_bytes -= m.message.size();
                self.global.fetch_sub(m.message.size(), Ordering::Relaxed);
            }
            Entry::Paged(_) => self.paged -= 1,
        }
    }

    pub fn push_back(&mut self, e: Entry) {
        self.added(&e);
        let b = self.bucket(&e);
        self.buckets[b].push_back(e);
    }

    /// Puts a message back where its sequence number says it was (requeue).
    pub fn insert_in_order(&mut self, m: QueuedMessage) {
        self.insert_entry_in_order(Entry::Loaded(m));
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

    /// Offsets of the first paged messages in delivery order, up to `max_bytes` of bodies
    /// (at least one), oldest first within each priority: what to page in next.
    pub fn paged_front(&self, max_bytes: u64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for bucket in self.buckets.iter().rev() {
            for e in bucket {
                if let Entry::Paged(p) = e {
                    if !out.is_empty() && bytes + p.size > max_bytes {
                        out.sort_unstable();
                        return out;
                    }
                    bytes += p.size;
                    out.push(p.offset);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Puts bodies read back from the log into their paged messages; answers how many.
    pub fn load(&mut self, bodies: &HashMap<i64, Arc<Message>>) -> usize {
        let mut n = 0;
        let mut added = 0u64;
        for bucket in &mut self.buckets {
            for e in bucket.iter_mut() {
                let Entry::Paged(p) = e else { continue };
                let Some(message) = bodies.get(&p.offset) else {
                    continue;
                };
                added += message.size();
                *e = Entry::Loaded(QueuedMessage {
                    message: message.clone(),
                    redelivered: p.redelivered,
                    expires_at_ms: p.expires_at_ms,
                    deliveries: p.deliveries,
                    seq: p.seq,
                    // Settling it settles its log entry (persistent or paged out).
                    offset: Some(p.offset),
                });
                n += 1;
            }
        }
        self.paged -= n;
        self.loaded += n;
        self.loaded_bytes += added;
        self.global.fetch_add(added, Ordering::Relaxed);
        n
    }

    /// Drops paged messages whose bodies could not be read back; answers them.
    pub fn drop_paged(&mut self, offsets: &[i64]) -> Vec<Paged> {
        let mut gone = Vec::new();
        for bucket in &mut self.buckets {
            bucket.retain(|e| match e {
                Entry::Paged(p) if offsets.binary_search(&p.offset).is_ok() => {
                    gone.push(p.clone());
                    false
                }
                _ => true,
            });
        }
        for p in &gone {
            self.len -= 1;
            self.bytes -= p.size;
            self.paged -= 1;
        }
        gone
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

    fn loaded(seq: u64, priority: u8, body: &str) -> Entry {
        Entry::Loaded(QueuedMessage {
            message: Arc::new(Message {
                exchange: String::new(),
                routing_key: String::new(),
                properties: BasicProperties::default().with_priority(priority),
                raw_properties: Bytes::new(),
                body: Bytes::from(body.to_string()),
                published_ms: 0,
            }),
            redelivered: false,
            expires_at_ms: None,
            deliveries: 0,
            seq,
            offset: None,
        })
    }

    fn paged(seq: u64, offset: i64, size: u64) -> Entry {
        Entry::Paged(Paged {
            seq,
            offset,
            priority: 0,
            size,
            expires_at_ms: None,
            redelivered: false,
            deliveries: 0,
        })
    }

    #[test]
    fn paging_keeps_order_and_counts() {
        let global = Arc::new(AtomicU64::new(0));
        let mut r = Ready::new(None, global.clone());
        r.push_back(loaded(0, 0, "aaaa"));
        r.push_back(paged(1, 10, 5));
        r.push_back(paged(2, 11, 6));
        assert_eq!((r.len, r.bytes, r.loaded_bytes, r.paged), (3, 15, 4, 2));
        assert_eq!(global.load(Ordering::Relaxed), 4);
        assert_eq!(
            r.paged_front(5),
            vec![10],
            "at least one, then up to the byte budget"
        );
        assert_eq!(r.paged_front(100), vec![10, 11]);
        assert!(matches!(r.pop_front(), Some(Entry::Loaded(_))));
        assert!(matches!(r.front(), Some(Entry::Paged(_))));
        let mut bodies = HashMap::new();
        if let Entry::Loaded(m) = loaded(9, 0, "bbbbb") {
            bodies.insert(10, m.message);
        }
        assert_eq!(r.load(&bodies), 1);
        assert_eq!((r.loaded, r.paged, r.loaded_bytes), (1, 1, 5));
        assert_eq!(r.drop_paged(&[11]).len(), 1);
        assert_eq!((r.len, r.bytes), (1, 5));
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
        let first = r.pop_front();
        assert!(matches!(&first, Some(Entry::Loaded(m)) if m.seq == 1));
        let second = r.pop_front();
        let Some(Entry::Loaded(m)) = second else {
            panic!("loaded")
        };
        r.insert_in_order(m);
        assert_eq!(r.front().map(Entry::seq), Some(0));
    }
}
