//! Queues: ready messages in order (by priority when the queue has priorities), consumers
//! with credit, deliveries, expiry, length limits and dead-lettering.
//!
//! A queue's state sits behind one mutex. Whoever changes it (a publisher's enqueue, a
//! consumer's ack, a timer) delivers what became deliverable before letting go, so messages
//! reach consumers without a task per queue. Dead letters and timers go through the queue's
//! [`Hooks`] (its vhost) once the lock is released.

mod consumer;
pub mod dead_letter;
mod ready;
pub mod settings;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tracing::{debug, warn};

pub use consumer::{ChannelMode, ChannelSink, ConnectionSink, Consumer, Flow, Unacked};
use dead_letter::{dead_letter, DeadLetter, DeathReason};
use ready::{Entry, Held, Ready};
use settings::{Overflow, QueueKind, QueueSettings};
use store::{QueueLog, Recovered, Stored};

use crate::message::{now_ms, Message, QueuedMessage};

/// Ready message bodies a queue without consumers keeps in memory; beyond them new messages
/// are paged out (written to the queue's log and kept as ~48 bytes of metadata) and paged
/// back in, this much at a time, as consumers drain the head. It was 4 MiB while a queued
/// message kept the read buffer its header frame arrived in alive (40,000 queued 2 KiB
/// messages then held 59-63 MiB of anonymous memory with a 16 MiB window; 24 MiB since the
/// header's properties are copied out).
const WINDOW_BYTES: u64 = 16 << 20;
/// The window of a queue with consumers, whose backlog is expected to drain: paging a message
/// out and back in costs more than delivering it, and a consumer that fell behind for a
/// moment made the queue page for the rest of the run. PerfTest's 1 KiB auto-ack consumer
/// under bench/amqp-run lags by 16 MiB within seconds (4 MiB: paging was ~20% of the broker's
/// CPU; 16 MiB: 101,000-110,000 msg/s at 6.2 µs of broker CPU per message; 64 MiB: 120,000
/// at 5.6 µs). The message-count window below still bounds small messages, and the broker's
/// window all queues together.
const CONSUMED_WINDOW_BYTES: u64 = 64 << 20;
const WINDOW_MESSAGES: usize = 65_536;
const PAGE_IN_BYTES: u64 = 2 << 20;
const PAGE_IN_MESSAGES: usize = WINDOW_MESSAGES / 8;
/// Ready message bodies every queue of a broker together keeps in memory before all of
/// them page out new messages.
const GLOBAL_WINDOW_BYTES: u64 = 256 << 20;

/// A queue whose consumers' connections are behind holds its publishers once its backlog
/// reaches this part of its window (`Queue::update_publisher_hold`), and lets them go below
/// half of it: near the paging point, not before, since holding on every short lag paused
/// PerfTest's producer whenever its consumer fell behind for a moment (bench/amqp-run's
/// transient rows fell to 75,000-196,000 msg/s with a hold at a quarter of a 16 MiB window).
const HOLD_PUBLISHERS_NUMERATOR: u64 = 3;
const HOLD_PUBLISHERS_DENOMINATOR: u64 = 4;

/// What a queue asks of the vhost it lives in.
pub trait Hooks: Send + Sync {
    /// Publishes dead-lettered messages to their exchanges.
    fn dead_letter(&self, letters: Vec<DeadLetter>);
    /// Calls [`Queue::on_timer`] at `at_ms`.
    fn wake_at(&self, at_ms: i64, queue: Weak<Queue>);
    /// The queue expired (`x-expires`) or its last consumer left (auto-delete): remove it.
    fn remove_queue(&self, queue: &Arc<Queue>);
    /// Ready body bytes held in memory by every queue of the broker.
    fn memory(&self) -> Arc<AtomicU64>;
    /// A non-durable queue needs a log to page out to: open one and hand it to
    /// [`Queue::set_spill`].
    fn open_spill(&self, queue: Weak<Queue>);
}

/// Counters for the management API.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueStats {
    pub published: u64,
    pub delivered: u64,
    pub acked: u64,
    pub redelivered: u64,
    /// Body bytes published into the queue and delivered from it.
    pub published_bytes: u64,
    pub delivered_bytes: u64,
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
    /// A page-in is under way.
    paging_in: bool,
    stats: QueueStats,
}

/// What happened to a published message at one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued; `offset` is its place in the queue's log when it is persistent (a confirm
    /// waits for that write).
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
    /// A durable queue's log: its persistent messages, and the transient ones it paged out.
    log: Option<Arc<QueueLog>>,
    /// A non-durable queue's log, opened the first time it needs to page out.
    spill: OnceLock<Arc<QueueLog>>,
    spill_requested: AtomicBool,
    /// Ready body bytes in memory over the whole broker.
    memory: Arc<AtomicU64>,
    /// The queue cannot deliver (its consumers' connections are behind) and its backlog is
    /// near the paging point: the connections publishing to it stop being read.
    publishers_held: AtomicBool,
    /// Signalled when `publishers_held` clears.
    publishers_released: Notify,
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
        let memory = hooks.upgrade().map(|h| h.memory()).unwrap_or_default();
        Arc::new(Queue {
            name: name.to_string(),
            vhost: vhost.to_string(),
            durable,
            auto_delete,
            exclusive_owner,
            arguments,
            state: Mutex::new(QueueState {
                ready: Ready::new(settings.max_priority, memory.clone()),
                unacked: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                next_seq: 0,
                deleted: false,
                had_consumer: false,
                last_used_ms: now_ms(),
                timer_at: None,
                paging_in: false,
                stats: QueueStats::default(),
            }),
            settings,
            hooks,
            log,
            spill: OnceLock::new(),
            spill_requested: AtomicBool::new(false),
            memory,
            publishers_held: AtomicBool::new(false),
            publishers_released: Notify::new(),
        })
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive_owner.is_some()
    }

    /// The durable queue's log.
    pub fn log(&self) -> Option<&Arc<QueueLog>> {
        self.log.as_ref()
    }

    /// The log a non-durable queue pages out to, if it has needed one.
    pub fn spill_log(&self) -> Option<&Arc<QueueLog>> {
        self.spill.get()
    }

    /// The log every offset this queue holds refers to.
    fn page_log(&self) -> Option<&Arc<QueueLog>> {
        self.log.as_ref().or_else(|| self.spill.get())
    }

    /// Hands a non-durable queue the log it asked for with [`Hooks::open_spill`].
    pub fn set_spill(&self, log: Arc<QueueLog>) -> Result<(), Arc<QueueLog>> {
        self.spill.set(log)
    }

    fn request_spill(self: &Arc<Self>) {
        if self.log.is_some()
            || self.spill.get().is_some()
            || self.spill_requested.swap(true, Ordering::Relaxed)
        {
            return;
        }
        if let Some(hooks) = self.hooks.upgrade() {
            hooks.open_spill(Arc::downgrade(self));
        }
    }

    /// (ready, unacked, consumers).
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.state.lock();
        (s.ready.len, s.unacked, s.consumers.len())
    }

    pub fn ready_bytes(&self) -> u64 {
        self.state.lock().ready.bytes
    }

    /// Ready messages paged out (their bodies only in the queue's log).
    pub fn paged_count(&self) -> usize {
        self.state.lock().ready.paged
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

    /// When a message expires in this queue: the lower of the queue's TTL and the
    /// message's `expiration`, counted from when it was published.
    fn expiry(&self, published_ms: i64, expiration_ms: Option<u64>, now: i64) -> Option<i64> {
        let ttl = match (self.settings.message_ttl, expiration_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(
            published_ms
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

    /// Whether a new message of `size` bytes goes to the log instead of memory: once
    /// paging started (order), past the queue's window, or past the broker's.
    fn should_page(&self, s: &QueueState, size: u64) -> bool {
        s.ready.paged > 0
            || s.ready.loaded_bytes + size > window_bytes(s)
            || s.ready.loaded >= WINDOW_MESSAGES
            || self.memory.load(Ordering::Relaxed) + size > GLOBAL_WINDOW_BYTES
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
                s.stats.published_bytes += message.size();
                let persistent_offset = match (&self.log, message.persistent()) {
                    (Some(log), true) => log.append(&message),
                    _ => None,
                };
                let expires_at_ms = self.expiry(message.published_ms, message.expiration_ms(), now);
                let size = message.size();
                let paged_offset = if self.should_page(&s, size) {
                    match persistent_offset {
                        Some(o) => Some(o),
                        None => match self.page_log() {
                            Some(log) => log.append(&message),
                            None => {
                                self.request_spill();
                                None
                            }
                        },
                    }
                } else {
                    if s.ready.loaded_bytes + size > window_bytes(&s) / 2 {
                        self.request_spill();
                    }
                    None
                };
                match paged_offset {
                    Some(offset) => s.ready.push_back(Entry::paged(
                        seq,
                        offset,
                        message.priority(),
                        size,
                        expires_at_ms,
                    )),
                    None => s.ready.push_back(Entry::loaded(QueuedMessage {
                        expires_at_ms,
                        message,
                        redelivered: false,
                        deliveries: 0,
                        seq,
                        offset: persistent_offset,
                    })),
                }
                // A message that cannot wait (TTL 0) still goes to a consumer ready now.
                self.deliver(&mut s, &mut dead, now);
                while self.over_limits(&s) {
                    match s.ready.pop_oldest_lowest() {
                        Some(old) => self.discard_entry(&mut dead, old, DeathReason::MaxLen, now),
                        None => break,
                    }
                }
                self.expire(&mut s, &mut dead, now);
                self.arm_timer(&mut s);
                Enqueued::Accepted {
                    offset: persistent_offset,
                }
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

    /// Whether [`Queue::pick_consumer`] would find a consumer now.
    fn can_deliver(&self, s: &QueueState) -> bool {
        if self.settings.single_active_consumer {
            return s.consumers.first().is_some_and(|c| c.has_credit());
        }
        s.consumers.iter().any(|c| c.has_credit())
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
        let mut first_pass = true;
        loop {
            let ready_before = s.ready.len;
            while s.ready.len > 0 {
                if s.ready.front().is_some_and(Entry::is_paged) {
                    self.start_page_in(s);
                    break;
                }
                let Some(consumer) = self.pick_consumer(s) else {
                    break;
                };
                let Some(Held::Memory(mut m)) = s.ready.pop_front().map(Entry::held) else {
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
                s.stats.delivered_bytes += m.message.size();
                if m.redelivered {
                    s.stats.redelivered += 1;
                }
                if consumer.no_ack {
                    self.settled(&m);
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
            // Consumers whose sockets are behind get the rest when their writers catch up.
            // Register first, then look again: a writer that caught up in between found no
            // queue waiting and woke nobody, and the queue stalled until its next publish
            // (with its publishers held: 58,650 ready, the consumer idle).
            if s.ready.len == 0 {
                break;
            }
            for c in &s.consumers {
                if c.channel.conn.congested() {
                    c.channel.conn.wait_for_room(self);
                }
            }
            // (A pass that delivered nothing is not repeated: nothing changes between them.)
            let stuck = !first_pass && s.ready.len == ready_before;
            if stuck || s.ready.front().is_some_and(Entry::is_paged) || !self.can_deliver(s) {
                break;
            }
            first_pass = false;
        }
        // Read the next pages before the loaded head runs out (by bytes or, for small
        // messages, by count: bytes alone kept paging in back to back, without bound).
        if s.ready.paged > 0
            && s.ready.loaded_bytes < window_bytes(s) / 2
            && s.ready.loaded < WINDOW_MESSAGES / 2
        {
            self.start_page_in(s);
        }
        self.update_publisher_hold(s);
    }

    /// RabbitMQ's credit flow, as it ends for a queue whose consumers' connections cannot take
    /// more (an auto-ack consumer slower than its publishers): the backlog blocks the
    /// publishing connections, which are not read until the queue drains (RabbitMQ shows them
    /// in the `flow` state). A queue whose consumers wait for acks holds nobody: its messages
    /// wait in it, as in RabbitMQ. Without this, a queue fed faster than its consumer reads
    /// paged its new messages out and back in, which more than doubled the broker's CPU per
    /// message and took it from the consumer sharing the machine, so the consumer never caught
    /// up (bench/amqp-run's (a) 16 B: a round at 50,009 msg/s received of 139,804 sent).
    fn update_publisher_hold(&self, s: &QueueState) {
        let held = self.publishers_held.load(Ordering::Relaxed);
        let behind = s.ready.len > 0 && s.consumers.iter().any(|c| c.channel.conn.congested());
        let (messages, bytes) = (WINDOW_MESSAGES as u64, window_bytes(s));
        let (ready, ready_bytes) = (s.ready.len as u64, s.ready.bytes);
        let hold = behind
            && if held {
                ready > messages / 2 || ready_bytes > bytes / 2
            } else {
                ready * HOLD_PUBLISHERS_DENOMINATOR >= messages * HOLD_PUBLISHERS_NUMERATOR
                    || ready_bytes * HOLD_PUBLISHERS_DENOMINATOR
                        >= bytes * HOLD_PUBLISHERS_NUMERATOR
            };
        if hold != held {
            self.publishers_held.store(hold, Ordering::Relaxed);
            debug!(queue = %self.name, ready = s.ready.len, hold, "queue holds its publishers");
            if !hold {
                self.publishers_released.notify_waiters();
            }
        }
    }

    /// Whether connections publishing to this queue should stop being read for now.
    pub fn holds_publishers(&self) -> bool {
        self.publishers_held.load(Ordering::Relaxed)
    }

    /// Looks again (its consumers may have gone or caught up), then [`Queue::holds_publishers`].
    pub fn recheck_publisher_hold(&self) -> bool {
        let s = self.state.lock();
        self.update_publisher_hold(&s);
        self.holds_publishers()
    }

    /// Resolves when the queue lets its publishers go (enable it before rechecking).
    pub fn publishers_released(&self) -> tokio::sync::futures::Notified<'_> {
        self.publishers_released.notified()
    }

    /// A message whose TTL is 0 may still go to a consumer that is ready right now.
    fn deliverable_now(&self, m: &QueuedMessage, now: i64) -> bool {
        m.expires_at_ms == Some(m.message.published_ms.min(now))
            && m.message.published_ms >= now.saturating_sub(1)
    }

    /// Reads the next paged-out messages back in, off the async workers, then delivers.
    fn start_page_in(self: &Arc<Self>, s: &mut QueueState) {
        if s.paging_in {
            return;
        }
        let Some(log) = self.page_log().cloned() else {
            return;
        };
        let offsets = s.ready.paged_front(PAGE_IN_BYTES, PAGE_IN_MESSAGES);
        let Some(&last) = offsets.last() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime (unit tests): read in place.
            self.load_front_now(s);
            return;
        };
        s.paging_in = true;
        let queue = self.clone();
        runtime.spawn(async move {
            let bodies = if log.written(last).await {
                let reader = log.clone();
                let wanted = offsets.clone();
                tokio::task::spawn_blocking(move || reader.read_messages(&wanted))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
            } else {
                Err(std::io::Error::other("the queue log failed"))
            };
            queue.finish_page_in(&offsets, bodies);
        });
    }

    fn finish_page_in(
        self: &Arc<Self>,
        offsets: &[i64],
        bodies: Result<HashMap<i64, Arc<Message>>, std::io::Error>,
    ) {
        {
            let mut s = self.state.lock();
            s.paging_in = false;
            self.put_back(&mut s, offsets, bodies);
        }
        self.drain();
    }

    /// Puts bodies read back into their messages; what could not be read is lost (logged).
    fn put_back(
        &self,
        s: &mut QueueState,
        offsets: &[i64],
        bodies: Result<HashMap<i64, Arc<Message>>, std::io::Error>,
    ) {
        let bodies = match bodies {
            Ok(b) => b,
            Err(e) => {
                warn!(queue = %self.name, vhost = %self.vhost, error = %e, "cannot read paged-out messages back");
                HashMap::new()
            }
        };
        s.ready.load(&bodies);
        let missing: Vec<i64> = offsets
            .iter()
            .copied()
            .filter(|o| !bodies.contains_key(o))
            .collect();
        if !missing.is_empty() {
            let lost = s.ready.drop_paged(&missing);
            if !lost.is_empty() {
                warn!(queue = %self.name, vhost = %self.vhost, lost = lost.len(), "paged-out messages missing from the queue log were dropped");
                for offset in lost {
                    self.settle_offset(Some(offset));
                }
            }
        }
    }

    /// Pages the head in right now, blocking (basic.get, the management API's get, and
    /// dead-lettering a paged-out message need its body at once).
    fn load_front_now(&self, s: &mut QueueState) {
        let Some(log) = self.page_log().cloned() else {
            return;
        };
        let offsets = s.ready.paged_front(PAGE_IN_BYTES, PAGE_IN_MESSAGES);
        if offsets.is_empty() {
            return;
        }
        let bodies = read_blocking(&log, &offsets);
        self.put_back(s, &offsets, bodies);
    }

    /// basic.get: the next message for `channel`, and how many remain.
    pub fn get(self: &Arc<Self>, channel: &Arc<ChannelSink>, no_ack: bool) -> Option<u64> {
        let now = now_ms();
        let mut dead = Vec::new();
        let tag = {
            let mut s = self.state.lock();
            s.last_used_ms = now;
            self.expire(&mut s, &mut dead, now);
            if s.ready.front().is_some_and(Entry::is_paged) {
                self.load_front_now(&mut s);
            }
            // A head that could not be read back was logged by put_back: empty this time.
            let head = if s.ready.front().is_some_and(Entry::is_paged) {
                None
            } else {
                s.ready.pop_front().map(Entry::held)
            };
            match head {
                Some(Held::Memory(mut m)) => {
                    let remaining = u32::try_from(s.ready.len).unwrap_or(u32::MAX);
                    let tag = channel.send_get_ok(&m, remaining, self.delivery_header(&m));
                    m.deliveries += 1;
                    s.stats.delivered += 1;
                    if m.redelivered {
                        s.stats.redelivered += 1;
                    }
                    s.stats.delivered_bytes += m.message.size();
                    if no_ack {
                        self.settled(&m);
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
                Some(Held::Paged) | None => None,
            }
        };
        self.finish(dead);
        tag
    }

    /// Takes up to `n` ready messages for the management API's get: they count as
    /// unacknowledged until the caller settles them (`ack_many`, `requeue` or `reject`).
    /// Answers them with how many stay ready.
    pub fn fetch(self: &Arc<Self>, n: usize) -> (Vec<QueuedMessage>, usize) {
        let now = now_ms();
        let mut dead = Vec::new();
        let out = {
            let mut s = self.state.lock();
            s.last_used_ms = now;
            self.expire(&mut s, &mut dead, now);
            let mut taken = Vec::new();
            while taken.len() < n {
                if s.ready.front().is_some_and(Entry::is_paged) {
                    self.load_front_now(&mut s);
                }
                if s.ready.front().is_some_and(Entry::is_paged) {
                    break;
                }
                match s.ready.pop_front().map(Entry::held) {
                    Some(Held::Memory(mut m)) => {
                        m.deliveries += 1;
                        s.unacked += 1;
                        s.stats.delivered += 1;
                        if m.redelivered {
                            s.stats.redelivered += 1;
                        }
                        taken.push(m);
                    }
                    Some(Held::Paged) | None => break,
                }
            }
            (taken, s.ready.len)
        };
        self.finish(dead);
        out
    }

    /// A delivery was acknowledged.
    pub fn ack(self: &Arc<Self>, m: &QueuedMessage) {
        {
            let mut s = self.state.lock();
            s.unacked = s.unacked.saturating_sub(1);
            s.stats.acked += 1;
            self.settled(m);
        }
        self.drain();
    }

    /// Fetched messages leave the queue without an acknowledgement counted (the management
    /// API's `ack_requeue_false`, which RabbitMQ counts as a get without ack).
    pub fn drop_fetched(self: &Arc<Self>, messages: &[QueuedMessage]) {
        {
            let mut s = self.state.lock();
            for m in messages {
                s.unacked = s.unacked.saturating_sub(1);
                self.settled(m);
            }
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
                self.settled(m);
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

    /// The message leaves the queue for good: its log entry is settled.
    fn settled(&self, m: &QueuedMessage) {
        self.settle_offset(m.offset);
    }

    fn settle_offset(&self, offset: Option<i64>) {
        if let (Some(log), Some(offset)) = (self.page_log(), offset) {
            log.ack(offset);
        }
    }

    /// Removes a message for `reason`, dead-lettering it when the queue has a DLX.
    fn discard(&self, dead: &mut Vec<DeadLetter>, m: QueuedMessage, reason: DeathReason, now: i64) {
        self.settle_offset(m.offset);
        self.dead_letter_into(dead, &m.message, reason, now);
    }

    /// Removes a ready message for `reason`; a paged-out one is read back first when it
    /// is to be dead-lettered.
    fn discard_entry(&self, dead: &mut Vec<DeadLetter>, e: Entry, reason: DeathReason, now: i64) {
        let offset = e.offset();
        match e.held() {
            Held::Memory(m) => self.discard(dead, m, reason, now),
            Held::Paged => {
                if let (true, Some(log), Some(o)) = (
                    self.settings.dead_letter_exchange.is_some(),
                    self.page_log(),
                    offset,
                ) {
                    match read_blocking(log, &[o]).map(|mut b| b.remove(&o)) {
                        Ok(Some(message)) => self.dead_letter_into(dead, &message, reason, now),
                        Ok(None) | Err(_) => {
                            warn!(queue = %self.name, offset = o, "paged-out message to dead-letter could not be read; dropped")
                        }
                    }
                }
                self.settle_offset(offset);
            }
        }
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
            if front.expires_at_ms().is_none_or(|t| t > now) {
                break;
            }
            if let Some(e) = s.ready.pop_front() {
                self.discard_entry(dead, e, DeathReason::Expired, now);
            }
        }
    }

    /// Asks for a wake-up at the head message's expiry or at the queue's own expiry.
    fn arm_timer(self: &Arc<Self>, s: &mut QueueState) {
        let head = s.ready.front().and_then(Entry::expires_at_ms);
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
        let gone = self.state.lock().ready.clear();
        for e in &gone {
            self.settle_offset(e.offset());
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

    /// Puts the messages recovered from the log back (at start-up), in their order.
    pub fn restore(&self, recovered: Recovered) {
        let now = now_ms();
        let mut s = self.state.lock();
        for (offset, stored) in recovered {
            let seq = s.next_seq;
            s.next_seq += 1;
            let entry = match stored {
                Stored::Message(m) => Entry::loaded(QueuedMessage {
                    expires_at_ms: self.expiry(m.published_ms, m.expiration_ms(), now),
                    message: Arc::from(m),
                    redelivered: false,
                    deliveries: 0,
                    seq,
                    offset: Some(offset),
                }),
                Stored::Paged(meta) => Entry::paged(
                    seq,
                    offset,
                    meta.priority,
                    meta.size,
                    self.expiry(meta.published_ms, meta.expiration_ms, now),
                ),
            };
            s.ready.push_back(entry);
        }
    }
}

/// Reads messages from a log where the caller must wait for them: on a multi-threaded
/// runtime the worker hands its other tasks off first (`block_in_place`).
/// How many ready body bytes the queue keeps in memory before paging new messages out.
fn window_bytes(s: &QueueState) -> u64 {
    if s.consumers.is_empty() {
        WINDOW_BYTES
    } else {
        CONSUMED_WINDOW_BYTES
    }
}

fn read_blocking(
    log: &QueueLog,
    offsets: &[i64],
) -> Result<HashMap<i64, Arc<Message>>, std::io::Error> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| log.read_messages(offsets))
    } else {
        log.read_messages(offsets)
    }
}
