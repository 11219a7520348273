//! Who a queue delivers to: consumers on channels of connections, with their credit
//! (prefetch) and the deliveries they have not settled yet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::Queue;
use crate::frame;
use crate::message::{short, QueuedMessage};

/// Bytes queued for a connection's socket above which its consumers get nothing more
/// (whatever their prefetch) until the writer is back under [`ROOM_BYTES`].
const CONGESTED_BYTES: u64 = 4 << 20;
const ROOM_BYTES: u64 = 1 << 20;

/// Bytes handed to a connection's writer and not yet written, and the queues waiting for
/// room: shared by the connection's sink and its writer task.
#[derive(Default)]
pub struct Flow {
    pending: AtomicU64,
    waiting: Mutex<Vec<Weak<Queue>>>,
}

impl Flow {
    /// The writer wrote `n` bytes; queues that waited for room deliver again.
    pub fn written(&self, n: u64) {
        let left = self
            .pending
            .fetch_sub(n, Ordering::Relaxed)
            .saturating_sub(n);
        if left < ROOM_BYTES {
            let waiting = std::mem::take(&mut *self.waiting.lock());
            for q in waiting.iter().filter_map(Weak::upgrade) {
                q.drain();
            }
        }
    }

    fn congested(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > CONGESTED_BYTES
    }
}

/// The writing side of a client connection, shared with the queues that deliver to it.
pub struct ConnectionSink {
    pub id: u64,
    tx: mpsc::UnboundedSender<Bytes>,
    flow: Arc<Flow>,
    frame_max: AtomicU32,
    /// The client announced `consumer_cancel_notify`: tell it when a queue cancels its
    /// consumer.
    cancel_notify: AtomicBool,
    /// A queue this connection published to holds its publishers: the connection stops
    /// reading until it lets them go (`Queue::holds_publishers`).
    held_by: Mutex<Option<Arc<Queue>>>,
}

impl ConnectionSink {
    pub fn new(id: u64, tx: mpsc::UnboundedSender<Bytes>, flow: Arc<Flow>) -> Arc<ConnectionSink> {
        Arc::new(ConnectionSink {
            id,
            tx,
            flow,
            frame_max: AtomicU32::new(131_072),
            cancel_notify: AtomicBool::new(false),
            held_by: Mutex::new(None),
        })
    }

    /// `queue` holds its publishers: this connection's reader waits before reading more.
    pub fn hold_reads_for(&self, queue: &Arc<Queue>) {
        *self.held_by.lock() = Some(queue.clone());
    }

    /// The queue holding this connection's reads, if one does.
    pub fn take_hold(&self) -> Option<Arc<Queue>> {
        self.held_by.lock().take()
    }

    /// Hands frames to the connection's writer; false once the connection is gone.
    pub fn send(&self, frames: Bytes) -> bool {
        self.flow
            .pending
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        self.tx.send(frames).is_ok()
    }

    /// The socket is behind: deliveries wait.
    pub fn congested(&self) -> bool {
        self.flow.congested()
    }

    /// `queue` has messages for this connection once its writer catches up.
    pub fn wait_for_room(&self, queue: &Arc<Queue>) {
        let mut waiting = self.flow.waiting.lock();
        if !waiting
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(queue)))
        {
            waiting.push(Arc::downgrade(queue));
        }
    }

    /// Asks the writer to flush what is queued and close the socket.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Bytes::new());
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    pub fn set_frame_max(&self, n: u32) {
        self.frame_max.store(n, Ordering::Relaxed);
    }

    pub fn set_cancel_notify(&self, on: bool) {
        self.cancel_notify.store(on, Ordering::Relaxed);
    }
}

/// A delivery not yet acknowledged, rejected or recovered.
pub struct Unacked {
    pub queue: Arc<Queue>,
    pub message: QueuedMessage,
    /// The consumer it went to (`None` for basic.get).
    pub consumer: Option<Arc<Consumer>>,
}

/// A channel's consumers by tag, with the queue each consumes from.
type ConsumersByTag = std::collections::HashMap<String, (Arc<Queue>, Arc<Consumer>)>;

/// A channel's side of deliveries: tags, unacknowledged deliveries, prefetch and flow.
pub struct ChannelSink {
    pub id: u16,
    pub conn: Arc<ConnectionSink>,
    next_tag: AtomicU64,
    unacked: Mutex<BTreeMap<u64, Unacked>>,
    /// basic.qos with global=true: unacked deliveries of all the channel's consumers.
    global_prefetch: AtomicU32,
    /// Deliveries to consumers (not basic.get) awaiting settlement.
    consumer_unacked: AtomicU32,
    /// channel.flow: false stops deliveries.
    active: AtomicBool,
    closed: AtomicBool,
    /// The channel's consumers by tag, with their queues.
    consumers: Mutex<ConsumersByTag>,
    /// basic.qos with global=false (for consumers started after it).
    consumer_prefetch: AtomicU32,
    /// confirm.select or tx.select seen.
    mode: AtomicU8,
}

/// What a channel has been switched to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelMode {
    Normal = 0,
    Confirm = 1,
    Transactional = 2,
}

impl ChannelSink {
    pub fn new(id: u16, conn: Arc<ConnectionSink>) -> Arc<ChannelSink> {
        Arc::new(ChannelSink {
            id,
            conn,
            next_tag: AtomicU64::new(1),
            unacked: Mutex::new(BTreeMap::new()),
            global_prefetch: AtomicU32::new(0),
            consumer_unacked: AtomicU32::new(0),
            active: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            consumers: Mutex::new(std::collections::HashMap::new()),
            consumer_prefetch: AtomicU32::new(0),
            mode: AtomicU8::new(ChannelMode::Normal as u8),
        })
    }

    pub fn has_consumer(&self, tag: &str) -> bool {
        self.consumers.lock().contains_key(tag)
    }

    pub fn add_consumer(&self, queue: Arc<Queue>, consumer: Arc<Consumer>) {
        self.consumers
            .lock()
            .insert(consumer.tag.clone(), (queue, consumer));
    }

    /// Forgets a consumer the client cancels; answers its queue.
    pub fn remove_consumer(&self, tag: &str) -> Option<Arc<Queue>> {
        self.consumers.lock().remove(tag).map(|(q, _)| q)
    }

    /// Every consumer of the channel (when it closes).
    pub fn take_consumers(&self) -> Vec<(Arc<Queue>, Arc<Consumer>)> {
        self.consumers.lock().drain().map(|(_, v)| v).collect()
    }

    /// The queues the channel consumes from.
    pub fn consumed_queues(&self) -> Vec<Arc<Queue>> {
        self.consumers
            .lock()
            .values()
            .map(|(q, _)| q.clone())
            .collect()
    }

    /// The queue of consumer `tag` went away: forget it and, if the client asked for it,
    /// send basic.cancel.
    pub fn cancelled_by_server(&self, tag: &str) {
        if self.consumers.lock().remove(tag).is_none() {
            return;
        }
        if self.closed.load(Ordering::Relaxed) || !self.conn.cancel_notify.load(Ordering::Relaxed) {
            return;
        }
        let method = AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: short(tag),
            nowait: true,
        }));
        let mut out = BytesMut::new();
        if frame::encode_method(&mut out, self.id, &method).is_ok() {
            self.conn.send(out.freeze());
        }
    }

    pub fn global_prefetch(&self) -> u32 {
        self.global_prefetch.load(Ordering::Relaxed)
    }

    pub fn set_consumer_prefetch(&self, n: u16) {
        self.consumer_prefetch
            .store(u32::from(n), Ordering::Relaxed);
    }

    pub fn consumer_prefetch(&self) -> u32 {
        self.consumer_prefetch.load(Ordering::Relaxed)
    }

    pub fn set_mode(&self, mode: ChannelMode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    pub fn mode(&self) -> ChannelMode {
        match self.mode.load(Ordering::Relaxed) {
            1 => ChannelMode::Confirm,
            2 => ChannelMode::Transactional,
            _ => ChannelMode::Normal,
        }
    }

    /// How many consumers the channel has.
    pub fn consumer_count(&self) -> usize {
        self.consumers.lock().len()
    }

    pub fn set_global_prefetch(&self, n: u16) {
        self.global_prefetch.store(u32::from(n), Ordering::Relaxed);
    }

    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn next_tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    pub fn unacked_count(&self) -> usize {
        self.unacked.lock().len()
    }

    /// Removes the delivery `tag` (and with `multiple` every one up to it). `tag` 0 with
    /// `multiple` means all. An unknown tag is `None` (PRECONDITION_FAILED for the caller).
    pub fn take(&self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        let mut unacked = self.unacked.lock();
        let taken: Vec<Unacked> = if multiple {
            let keep = if tag == 0 {
                BTreeMap::new()
            } else {
                unacked.split_off(&(tag + 1))
            };
            let done = std::mem::replace(&mut *unacked, keep);
            if done.is_empty() && tag != 0 {
                return None;
            }
            done.into_values().collect()
        } else {
            vec![unacked.remove(&tag)?]
        };
        drop(unacked);
        for u in &taken {
            if let Some(c) = &u.consumer {
                c.unacked.fetch_sub(1, Ordering::Relaxed);
                self.consumer_unacked.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Some(taken)
    }

    /// Removes every unacknowledged delivery (channel closed, basic.recover).
    pub fn take_all(&self) -> Vec<Unacked> {
        self.take(0, true).unwrap_or_default()
    }

    /// Records a delivery that awaits settlement.
    pub fn record(&self, tag: u64, u: Unacked) {
        if u.consumer.is_some() {
            self.consumer_unacked.fetch_add(1, Ordering::Relaxed);
        }
        self.unacked.lock().insert(tag, u);
    }

    fn global_credit(&self) -> bool {
        let limit = self.global_prefetch.load(Ordering::Relaxed);
        limit == 0 || self.consumer_unacked.load(Ordering::Relaxed) < limit
    }

    /// Encodes and sends basic.deliver with the content of `m`; answers the delivery tag.
    pub(crate) fn send_deliver(
        &self,
        consumer_tag: &str,
        m: &QueuedMessage,
        extra_header: Option<(&str, AMQPValue)>,
    ) -> u64 {
        let tag = self.next_tag();
        let mut out =
            BytesMut::with_capacity(64 + m.message.raw_properties.len() + m.message.body.len());
        frame::encode_deliver(
            &mut out,
            self.id,
            consumer_tag,
            tag,
            m.redelivered,
            &m.message.exchange,
            &m.message.routing_key,
        );
        self.send_content(out, m, extra_header);
        tag
    }

    /// Encodes and sends basic.get-ok with the content of `m`; answers the delivery tag.
    pub(crate) fn send_get_ok(
        &self,
        m: &QueuedMessage,
        message_count: u32,
        extra_header: Option<(&str, AMQPValue)>,
    ) -> u64 {
        let tag = self.next_tag();
        let method = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered: m.redelivered,
            exchange: short(&m.message.exchange),
            routing_key: short(&m.message.routing_key),
            message_count,
        }));
        let mut out = BytesMut::new();
        if frame::encode_method(&mut out, self.id, &method).is_err() {
            return tag;
        }
        self.send_content(out, m, extra_header);
        tag
    }

    /// Appends the content of `m` to `out` (which holds its method) and sends both.
    fn send_content(
        &self,
        mut out: BytesMut,
        m: &QueuedMessage,
        extra_header: Option<(&str, AMQPValue)>,
    ) {
        let frame_max = self.conn.frame_max();
        match extra_header {
            None => frame::encode_content(
                &mut out,
                self.id,
                &m.message.raw_properties,
                &m.message.body,
                frame_max,
            ),
            Some((key, value)) => {
                let mut headers = m.message.headers().cloned().unwrap_or_default();
                headers.insert(short(key), value);
                let props = m.message.properties.clone().with_headers(headers);
                let raw = frame::encode_properties(&props)
                    .unwrap_or_else(|_| m.message.raw_properties.clone());
                frame::encode_content(&mut out, self.id, &raw, &m.message.body, frame_max);
            }
        }
        self.conn.send(out.freeze());
    }
}

/// A basic.consume on a queue.
pub struct Consumer {
    pub tag: String,
    pub channel: Arc<ChannelSink>,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority`: higher first.
    pub priority: i64,
    /// basic.qos with global=false at the time of the consume; 0 = unlimited.
    pub prefetch: u32,
    pub arguments: FieldTable,
    unacked: AtomicU32,
}

impl Consumer {
    pub fn new(
        tag: String,
        channel: Arc<ChannelSink>,
        no_ack: bool,
        exclusive: bool,
        priority: i64,
        prefetch: u32,
        arguments: FieldTable,
    ) -> Arc<Consumer> {
        Arc::new(Consumer {
            tag,
            channel,
            no_ack,
            exclusive,
            priority,
            prefetch,
            arguments,
            unacked: AtomicU32::new(0),
        })
    }

    /// Whether a delivery may go to this consumer now.
    pub fn has_credit(&self) -> bool {
        let ch = &self.channel;
        if ch.closed.load(Ordering::Relaxed)
            || !ch.active.load(Ordering::Relaxed)
            || ch.conn.congested()
        {
            return false;
        }
        if self.no_ack {
            return true;
        }
        (self.prefetch == 0 || self.unacked.load(Ordering::Relaxed) < self.prefetch)
            && ch.global_credit()
    }

    pub(crate) fn count_delivery(&self) {
        self.unacked.fetch_add(1, Ordering::Relaxed);
    }
}
