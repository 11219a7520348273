//! Queues: ready messages in order (by priority when the queue has priorities), consumers
//! with credit, deliveries, expiry, length limits and dead-lettering.
//!
//! A queue's state sits behind one mutex. Whoever changes it (a publisher's enqueue, a
//! consumer's ack, a timer) delivers what became deliverable before letting go, so messages
//! reach consumers without a task per queue. Dead letters and timers go through the queue's
//! [`Hooks`] (its vhost) once the lock is released.

mod consumer;
pub mod dead_letter;
pub mod settings;
pub mod store;

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::Mutex;

pub use consumer::{ChannelSink, ConnectionSink, Consumer, Unacked};
use dead_letter::{dead_letter, DeadLetter, DeathReason};
use settings::{Overflow, QueueKind, QueueSettings};
use store::QueueLog;

use crate::message::{now_ms, Message, QueuedMessage};

/// What a queue asks of the vhost it lives in.
pub trait Hooks: Send + Sync {
    /// Publishes dead-lettered messages to their exchanges.
    fn dead_letter(&self, letters: Vec<DeadLetter>);
    /// Calls [`Queue::on_timer`] at `at_ms`.
    fn wake_at(&self, at_ms: i64, queue: Weak<Queue>);
    /// The queue expired (`x-expires`) or its last consumer left (auto-delete): remove it.
    fn remove_queue(&self, queue: &Arc<Queue>);
}

/// Counters for the management API.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueStats {
    pub published: u64,
    pub delivered: u64,
    pub acked: u64,
    pub redelivered: u64,
}

/// Ready messages, in order within each priority.
struct Ready {
    /// One bucket per priority (one in all when the queue has no priorities).
    buckets: Vec<VecDeque<QueuedMessage>>,
    len: usize,
    bytes: u64,
}

impl Ready {
    fn new(max_priority: Option<u8>) -> Ready {
        let n = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            buckets: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    fn bucket(&self, m: &QueuedMessage) -> usize {
        usize::from(m.message.priority()).min(self.buckets.len() - 1)
    }

    fn push_back(&mut self, m: QueuedMessage) {
        let b = self.bucket(&m);
        self.len += 1;
        self.bytes += m.message.size();
        self.buckets[b].push_back(m);
    }

    /// Puts a message back where its sequence number says it was.
    fn insert_in_order(&mut self, m: QueuedMessage) {
        let b = self.bucket(&m);
        self.len += 1;
        self.bytes += m.message.size();
        let bucket = &mut self.buckets[b];
        let at = bucket.partition_point(|x| x.seq < m.seq);
        bucket.insert(at, m);
    }

    /// The next message to deliver: highest priority first.
    fn front(&self) -> Option<&QueuedMessage> {
        self.buckets.iter().rev().find_map(|b| b.front())
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.buckets.iter_mut().rev().find_map(|b| b.pop_front())?;
        self.len -= 1;
        self.bytes -= m.message.size();
        Some(m)
    }

    /// The oldest message of the lowest priority (dropped first when the queue is full).
    fn pop_oldest_lowest(&mut self) -> Option<QueuedMessage> {
        let m = self.buckets.iter_mut().find_map(|b| b.pop_front())?;
        self.len -= 1;
        self.bytes -= m.message.size();
        Some(m)
    }

    fn clear(&mut self) -> Vec<QueuedMessage> {
        self.len = 0;
        self.bytes = 0;
        self.buckets.iter_mut().flat_map(|b| b.drain(..)).collect()
    }
}

struct QueueState {
    ready: Ready,
    /// Delivered and not settled.
    unacked: usize,
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin position among consumers.
    next_consumer: usize,
    next_seq: u64,
    deleted: bool,
    /// Had a consumer once (auto-delete queues are deleted when the last one leaves).
    had_consumer: bool,
    /// Last consume, get or declare (for `x-expires`).
    last_used_ms: i64,
    /// The earliest time a timer is set for.
    timer_at: Option<i64>,
    stats: QueueStats,
}

/// What happened to a published message at one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued; `offset` is its place in the queue's log when it is written to disk.
    Accepted { offset: Option<i64> },
    /// The queue is full and refuses new messages (reject-publish).
    Refused,
}

pub struct Queue {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub auto_delete: bool,
    /// The connection an exclusive queue belongs to.
    pub exclusive_owner: Option<u64>,
    pub arguments: FieldTable,
    pub settings: QueueSettings,
    hooks: Weak<dyn Hooks>,
    /// Where persistent messages of a durable queue are kept.
    log: Option<Arc<QueueLog>>,
    state: Mutex<QueueState>,
}

impl Queue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        vhost: &str,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: Option<u64>,
        arguments: FieldTable,
        settings: QueueSettings,
        hooks: Weak<dyn Hooks>,
        log: Option<Arc<QueueLog>>,
    ) -> Arc<Queue> {
        Arc::new(Queue {
            name: name.to_string(),
            vhost: vhost.to_string(),
            durable,
            auto_delete,
            exclusive_owner,
            arguments,
            state: Mutex::new(QueueState {
                ready: Ready::new(settings.max_priority),
                unacked: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                next_seq: 0,
                deleted: false,
                had_consumer: false,
                last_used_ms: now_ms(),
                timer_at: None,
                stats: QueueStats::default(),
            }),
            settings,
            hooks,
            log,
        })
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive_owner.is_some()
    }

    pub fn log(&self) -> Option<&Arc<QueueLog>> {
        self.log.as_ref()
    }

    /// (ready, unacked, consumers).
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.state.lock();
        (s.ready.len, s.unacked, s.consumers.len())
    }

    pub fn ready_bytes(&self) -> u64 {
        self.state.lock().ready.bytes
    }

    pub fn stats(&self) -> QueueStats {
        self.state.lock().stats
    }

    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.state.lock().consumers.clone()
    }

    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// Marks a use (declare, consume, get) for `x-expires`.
    pub fn touch(self: &Arc<Self>) {
        let mut s = self.state.lock();
        s.last_used_ms = now_ms();
        self.arm_timer(&mut s);
    }

    fn expiry_of(&self, message: &Message, now: i64) -> Option<i64> {
        let per_message = message.expiration_ms();
        let ttl = match (self.settings.message_ttl, per_message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(
            message
                .published_ms
                .max(0)
                .min(now)
                .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        )
    }

    fn full(&self, s: &QueueState, adding: u64) -> bool {
        let count_full = self
            .settings
            .max_length
            .is_some_and(|max| s.ready.len as u64 + 1 > max);
        let bytes_full = self
            .settings
            .max_length_bytes
            .is_some_and(|max| s.ready.bytes + adding > max);
        count_full || bytes_full
    }

    fn over_limits(&self, s: &QueueState) -> bool {
        self.settings
            .max_length
            .is_some_and(|max| s.ready.len as u64 > max)
            || self
                .settings
                .max_length_bytes
                .is_some_and(|max| s.ready.bytes > max)
    }

    /// Queues a published message and delivers what it can.
    pub fn enqueue(self: &Arc<Self>, message: Arc<Message>) -> Enqueued {
        let now = now_ms();
        let mut dead = Vec::new();
        let outcome = {
            let mut s = self.state.lock();
            if s.deleted {
                return Enqueued::Accepted { offset: None };
            }
            let reject = matches!(
                self.settings.overflow,
                Overflow::RejectPublish | Overflow::RejectPublishDlx
            );
            if reject && self.full(&s, message.size()) {
                if self.settings.overflow == Overflow::RejectPublishDlx {
                    self.dead_letter_into(&mut dead, &message, DeathReason::MaxLen, now);
                }
                Enqueued::Refused
            } else {
                let seq = s.next_seq;
                s.next_seq += 1;
                s.stats.published += 1;
                let offset = match (&self.log, message.persistent()) {
                    (Some(log), true) => log.append(&message),
                    _ => None,
                };
                let m = QueuedMessage {
                    expires_at_ms: self.expiry_of(&message, now),
                    message,
                    redelivered: false,
                    deliveries: 0,
                    seq,
                    offset,
                };
                s.ready.push_back(m);
                // A message that cannot wait (TTL 0) still goes to a consumer ready now.
                self.deliver(&mut s, &mut dead, now);
                while self.over_limits(&s) {
                    match s.ready.pop_oldest_lowest() {
                        Some(old) => self.discard(&mut dead, old, DeathReason::MaxLen, now),
                        None => break,
                    }
                }
                self.expire(&mut s, &mut dead, now);
                self.arm_timer(&mut s);
                Enqueued::Accepted { offset }
            }
        };
        self.finish(dead);
        outcome
    }

    /// Delivers to consumers with credit until none has credit or nothing is ready.
    pub fn drain(self: &Arc<Self>) {
        let now = now_ms();
        let mut dead = Vec::new();
        {
            let mut s = self.state.lock();
            self.expire(&mut s, &mut dead, now);
            self.deliver(&mut s, &mut dead, now);
            self.arm_timer(&mut s);
        }
        self.finish(dead);
    }

    fn pick_consumer(&self, s: &mut QueueState) -> Option<Arc<Consumer>> {
        if self.settings.single_active_consumer {
            let active = s.consumers.first()?;
            return active.has_credit().then(|| active.clone());
        }
        let best = s
            .consumers
            .iter()
            .filter(|c| c.has_credit())
            .map(|c| c.priority)
            .max()?;
        let n = s.consumers.len();
        for i in 0..n {
            let idx = (s.next_consumer + i) % n;
            let c = &s.consumers[idx];
            if c.priority == best && c.has_credit() {
                s.next_consumer = idx + 1;
                return Some(c.clone());
            }
        }
        None
    }

    /// The `x-delivery-count` header a quorum queue adds to every delivery (0 the first time,
    /// as RabbitMQ 3.10 sends it).
    fn delivery_header(&self, m: &QueuedMessage) -> Option<(&'static str, AMQPValue)> {
        (self.settings.kind == QueueKind::Quorum).then(|| {
            (
                "x-delivery-count",
                AMQPValue::LongLongInt(i64::from(m.deliveries)),
            )
        })
    }

    fn deliver(self: &Arc<Self>, s: &mut QueueState, dead: &mut Vec<DeadLetter>, now: i64) {
        while s.ready.len > 0 {
            let Some(consumer) = self.pick_consumer(s) else {
                break;
            };
            let Some(mut m) = s.ready.pop_front() else {
                break;
            };
            if m.expires_at_ms.is_some_and(|t| t <= now) && !self.deliverable_now(&m, now) {
                self.discard(dead, m, DeathReason::Expired, now);
                continue;
            }
            let header = self.delivery_header(&m);
            let tag = consumer.channel.send_deliver(&consumer.tag, &m, header);
            m.deliveries += 1;
            s.stats.delivered += 1;
            if m.redelivered {
                s.stats.redelivered += 1;
            }
            if consumer.no_ack {
                self.settled(s, &m);
            } else {
                s.unacked += 1;
                consumer.count_delivery();
                consumer.channel.record(
                    tag,
                    Unacked {
                        queue: self.clone(),
                        message: m,
                        consumer: Some(consumer.clone()),
                    },
                );
            }
        }
    }

    /// A message whose TTL is 0 may still go to a consumer that is ready right now.
    fn deliverable_now(&self, m: &QueuedMessage, now: i64) -> bool {
        m.expires_at_ms == Some(m.message.published_ms.min(now))
            && m.message.published_ms >= now.saturating_sub(1)
    }

    /// basic.get: the next message for `channel`, and how many remain.
    pub fn get(self: &Arc<Self>, channel: &Arc<ChannelSink>, no_ack: bool) -> Option<u64> {
        let now = now_ms();
        let mut dead = Vec::new();
        let tag = {
            let mut s = self.state.lock();
            s.last_used_ms = now;
            self.expire(&mut s, &mut dead, now);
            match s.ready.pop_front() {
                None => None,
                Some(mut m) => {
                    let remaining = u32::try_from(s.ready.len).unwrap_or(u32::MAX);
                    let tag = channel.send_get_ok(&m, remaining, self.delivery_header(&m));
                    m.deliveries += 1;
                    s.stats.delivered += 1;
                    if no_ack {
                        self.settled(&mut s, &m);
                    } else {
                        s.unacked += 1;
                        channel.record(
                            tag,
                            Unacked {
                                queue: self.clone(),
                                message: m,
                                consumer: None,
                            },
                        );
                    }
                    Some(tag)
                }
            }
        };
        self.finish(dead);
        tag
    }

    /// A delivery was acknowledged.
    pub fn ack(self: &Arc<Self>, m: &QueuedMessage) {
        {
            let mut s = self.state.lock();
            s.unacked = s.unacked.saturating_sub(1);
            s.stats.acked += 1;
            self.settled(&mut s, m);
        }
        self.drain();
    }

    /// Several deliveries were acknowledged at once (basic.ack with multiple).
    pub fn ack_many(self: &Arc<Self>, messages: &[QueuedMessage]) {
        {
            let mut s = self.state.lock();
            for m in messages {
                s.unacked = s.unacked.saturating_sub(1);
                s.stats.acked += 1;
                self.settled(&mut s, m);
            }
        }
        self.drain();
    }

    /// Deliveries go back to the queue (nack/reject with requeue, channel closed, recover),
    /// marked redelivered, where they were.
    pub fn requeue(self: &Arc<Self>, messages: Vec<QueuedMessage>) {
        let now = now_ms();
        let mut dead = Vec::new();
        {
            let mut s = self.state.lock();
            for mut m in messages {
                s.unacked = s.unacked.saturating_sub(1);
                if s.deleted {
                    continue;
                }
                if let Some(limit) = self
                    .settings
                    .delivery_limit
                    .filter(|_| self.settings.kind == QueueKind::Quorum)
                {
                    if u64::from(m.deliveries) > limit {
                        self.discard(&mut dead, m, DeathReason::DeliveryLimit, now);
                        continue;
                    }
                }
                m.redelivered = true;
                s.ready.insert_in_order(m);
            }
            self.expire(&mut s, &mut dead, now);
            self.deliver(&mut s, &mut dead, now);
            self.arm_timer(&mut s);
        }
        self.finish(dead);
    }

    /// Deliveries rejected without requeue: dead-lettered (or dropped).
    pub fn reject(self: &Arc<Self>, messages: Vec<QueuedMessage>) {
        let now = now_ms();
        let mut dead = Vec::new();
        {
            let mut s = self.state.lock();
            for m in messages {
                s.unacked = s.unacked.saturating_sub(1);
                self.discard(&mut dead, m, DeathReason::Rejected, now);
            }
            self.deliver(&mut s, &mut dead, now);
        }
        self.finish(dead);
    }

    /// The message leaves the queue for good: its log entry is acknowledged.
    fn settled(&self, _s: &mut QueueState, m: &QueuedMessage) {
        if let (Some(log), Some(offset)) = (&self.log, m.offset) {
            log.ack(offset);
        }
    }

    /// Removes a message for `reason`, dead-lettering it when the queue has a DLX.
    fn discard(&self, dead: &mut Vec<DeadLetter>, m: QueuedMessage, reason: DeathReason, now: i64) {
        if let (Some(log), Some(offset)) = (&self.log, m.offset) {
            log.ack(offset);
        }
        self.dead_letter_into(dead, &m.message, reason, now);
    }

    fn dead_letter_into(
        &self,
        dead: &mut Vec<DeadLetter>,
        message: &Message,
        reason: DeathReason,
        now: i64,
    ) {
        if let Some(dlx) = &self.settings.dead_letter_exchange {
            dead.push(dead_letter(
                message,
                &self.name,
                reason,
                dlx,
                self.settings.dead_letter_routing_key.as_deref(),
                now,
            ));
        }
    }

    /// Drops expired messages from the head (RabbitMQ expires at the head only).
    fn expire(&self, s: &mut QueueState, dead: &mut Vec<DeadLetter>, now: i64) {
        while let Some(front) = s.ready.front() {
            if front.expires_at_ms.is_none_or(|t| t > now) {
                break;
            }
            if let Some(m) = s.ready.pop_front() {
                self.discard(dead, m, DeathReason::Expired, now);
            }
        }
    }

    /// Asks for a wake-up at the head message's expiry or at the queue's own expiry.
    fn arm_timer(self: &Arc<Self>, s: &mut QueueState) {
        let head = s.ready.front().and_then(|m| m.expires_at_ms);
        let idle = self
            .settings
            .expires
            .filter(|_| s.consumers.is_empty())
            .map(|e| {
                s.last_used_ms
                    .saturating_add(i64::try_from(e).unwrap_or(i64::MAX))
            });
        let want = match (head, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = want {
            if s.timer_at.is_none_or(|t| at < t || t <= now_ms()) {
                s.timer_at = Some(at);
                if let Some(hooks) = self.hooks.upgrade() {
                    hooks.wake_at(at, Arc::downgrade(self));
                }
            }
        }
    }

    /// A timer this queue asked for went off.
    pub fn on_timer(self: &Arc<Self>) {
        let now = now_ms();
        let mut dead = Vec::new();
        let expired_queue = {
            let mut s = self.state.lock();
            if s.deleted {
                return;
            }
            s.timer_at = None;
            self.expire(&mut s, &mut dead, now);
            self.deliver(&mut s, &mut dead, now);
            let idle_for = now - s.last_used_ms;
            let expired = self.settings.expires.is_some_and(|e| {
                s.consumers.is_empty() && idle_for >= i64::try_from(e).unwrap_or(i64::MAX)
            });
            if !expired {
                self.arm_timer(&mut s);
            }
            expired
        };
        self.finish(dead);
        if expired_queue {
            if let Some(hooks) = self.hooks.upgrade() {
                hooks.remove_queue(self);
            }
        }
    }

    fn finish(&self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        if let Some(hooks) = self.hooks.upgrade() {
            hooks.dead_letter(dead);
        }
    }

    /// Adds a consumer and delivers to it.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) {
        {
            let mut s = self.state.lock();
            s.consumers.push(consumer);
            s.had_consumer = true;
            s.last_used_ms = now_ms();
        }
        self.drain();
    }

    /// Removes a consumer; an auto-delete queue whose last consumer left is removed.
    pub fn remove_consumer(self: &Arc<Self>, channel: &ChannelSink, tag: &str) -> bool {
        let (found, now_unused) = {
            let mut s = self.state.lock();
            let before = s.consumers.len();
            s.consumers
                .retain(|c| !(c.tag == tag && std::ptr::eq(c.channel.as_ref(), channel)));
            let found = s.consumers.len() != before;
            s.last_used_ms = now_ms();
            self.arm_timer(&mut s);
            (found, s.consumers.is_empty() && s.had_consumer)
        };
        if found {
            if now_unused && self.auto_delete {
                if let Some(hooks) = self.hooks.upgrade() {
                    hooks.remove_queue(self);
                }
            } else {
                // With single active consumer the next one takes over.
                self.drain();
            }
        }
        found
    }

    pub fn has_exclusive_consumer(&self) -> bool {
        self.state.lock().consumers.iter().any(|c| c.exclusive)
    }

    /// Removes every ready message; answers how many.
    pub fn purge(&self) -> usize {
        let mut s = self.state.lock();
        let gone = s.ready.clear();
        for m in &gone {
            if let (Some(log), Some(offset)) = (&self.log, m.offset) {
                log.ack(offset);
            }
        }
        gone.len()
    }

    /// Marks the queue deleted: answers its consumers (to be told) and its ready count.
    pub fn delete(&self) -> (Vec<Arc<Consumer>>, usize) {
        let mut s = self.state.lock();
        s.deleted = true;
        let n = s.ready.len;
        s.ready.clear();
        (std::mem::take(&mut s.consumers), n)
    }

    /// Puts messages recovered from the log back (at start-up).
    pub fn restore(&self, messages: Vec<QueuedMessage>) {
        let mut s = self.state.lock();
        for m in messages {
            s.next_seq = s.next_seq.max(m.seq + 1);
            s.ready.push_back(m);
        }
    }
}
