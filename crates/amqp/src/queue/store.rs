//! Persistent messages of durable queues, on the `msglog` storage engine.
//!
//! Each durable queue has a log (a `msglog` partition named after the queue's storage id)
//! of its persistent messages, one entry per message, offset = position in the queue; and an
//! acknowledgement file listing the offsets settled above the log start. When every message
//! below some offset is settled, the log start moves up to it, whole segments are deleted and
//! the file is rewritten with what remains (LavinMQ's design: space comes back a segment at a
//! time). At start-up a queue reads its log and skips what the file lists.
//!
//! All disk writes happen on one writer thread per broker: appends of many messages become one
//! batch per queue, and a publisher waiting for a confirm waits for the queue's `written`
//! watermark, never for the disk on an async worker.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc};

use amq_protocol::protocol::basic::parse_properties;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use msglog::{LogConfig, LogStore, Partition};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::message::{now_ms, Message};

/// A fully settled active segment at least this big is replaced by a new one (so that
/// consuming frees space under a storage quota without waiting for 16 MiB segments).
const ROLL_SETTLED_BYTES: u64 = 4 << 20;

/// How much of a log one read for paging in takes.
const READ_CHUNK: usize = 1 << 20;

/// Rewrite the acknowledgement file once it holds this many more entries than needed.
const COMPACT_AFTER: usize = 4096;

/// Settled offsets at or above the log start, and how many the file holds.
struct Acks {
    set: BTreeSet<i64>,
    /// Every offset below it is settled.
    low: i64,
    file_entries: usize,
}

/// The log configuration of queue logs: nothing is deleted by age or size, only when
/// settled.
pub fn queue_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024 * 1024,
        index_interval_bytes: 4096,
        retention_ms: None,
        retention_bytes: None,
    }
}

/// Encodes a message for the log: exchange, routing key, publish time, properties, body.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        24 + m.exchange.len() + m.routing_key.len() + m.raw_properties.len() + m.body.len(),
    );
    b.push(u8::try_from(m.exchange.len()).unwrap_or(u8::MAX));
    b.extend_from_slice(&m.exchange.as_bytes()[..m.exchange.len().min(255)]);
    b.push(u8::try_from(m.routing_key.len()).unwrap_or(u8::MAX));
    b.extend_from_slice(&m.routing_key.as_bytes()[..m.routing_key.len().min(255)]);
    b.extend_from_slice(&m.published_ms.to_be_bytes());
    b.extend_from_slice(
        &u32::try_from(m.raw_properties.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    b.extend_from_slice(&m.raw_properties);
    b.extend_from_slice(&m.body);
    b
}

/// Reads back what [`encode_message`] wrote.
pub fn decode_message(entry: &[u8]) -> Option<Message> {
    let mut buf = Bytes::copy_from_slice(entry);
    let short = |buf: &mut Bytes| -> Option<String> {
        if buf.remaining() < 1 {
            return None;
        }
        let n = usize::from(buf.get_u8());
        if buf.remaining() < n {
            return None;
        }
        String::from_utf8(buf.split_to(n).to_vec()).ok()
    };
    let exchange = short(&mut buf)?;
    let routing_key = short(&mut buf)?;
    if buf.remaining() < 12 {
        return None;
    }
    let published_ms = buf.get_i64();
    let props_len = buf.get_u32() as usize;
    if buf.remaining() < props_len {
        return None;
    }
    let raw_properties = buf.split_to(props_len);
    let (rest, properties) = parse_properties(&raw_properties[..]).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(Message {
        exchange,
        routing_key,
        properties,
        raw_properties,
        body: buf,
        published_ms,
    })
}

enum Op {
    Append(Arc<QueueLog>, Vec<u8>),
    Ack(Arc<QueueLog>, i64),
    Stop,
}

/// The thread that writes every queue log of one broker.
pub struct LogWriter {
    tx: Mutex<mpsc::Sender<Op>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LogWriter {
    pub fn start() -> Arc<LogWriter> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("amqp-log-writer".into())
            .spawn(move || write_loop(rx))
            .ok();
        Arc::new(LogWriter {
            tx: Mutex::new(tx),
            thread: Mutex::new(thread),
        })
    }

    fn send(&self, op: Op) {
        let _ = self.tx.lock().send(op);
    }

    /// Writes what was queued and stops the thread.
    pub fn stop(&self) {
        self.send(Op::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn write_loop(rx: mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while let Ok(op) = rx.try_recv() {
            ops.push(op);
            if ops.len() >= 4096 {
                break;
            }
        }
        let stop = ops.iter().any(|o| matches!(o, Op::Stop));
        // Appends per log, in order; then acks.
        let mut appends: Vec<(Arc<QueueLog>, Vec<Vec<u8>>)> = Vec::new();
        let mut acks: Vec<(Arc<QueueLog>, Vec<i64>)> = Vec::new();
        for op in ops {
            match op {
                Op::Append(log, entry) => {
                    match appends.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &log)) {
                        Some((_, v)) => v.push(entry),
                        None => appends.push((log, vec![entry])),
                    }
                }
                Op::Ack(log, offset) => match acks.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &log)) {
                    Some((_, v)) => v.push(offset),
                    None => acks.push((log, vec![offset])),
                },
                Op::Stop => {}
            }
        }
        for (log, entries) in appends {
            log.write_entries(&entries);
        }
        for (log, offsets) in acks {
            log.write_acks(&offsets);
        }
        if stop {
            break;
        }
    }
}

/// Unsettled messages found in a log at start-up, with their offsets, oldest first.
pub type Recovered = Vec<(i64, Stored)>;

/// A message found in a log at start-up: whole, or (past the memory budget the caller
/// gave) only what a queue needs to keep it paged out.
pub enum Stored {
    Message(Box<Message>),
    Paged(StoredMeta),
}

pub struct StoredMeta {
    pub priority: u8,
    pub size: u64,
    pub expiration_ms: Option<u64>,
    pub published_ms: i64,
}

/// The log of one durable queue.
pub struct QueueLog {
    pub id: String,
    partition: Arc<Partition>,
    ack_path: PathBuf,
    /// The offset the next append gets.
    next_offset: AtomicI64,
    /// Every offset below this is on disk.
    written: watch::Sender<i64>,
    acks: Mutex<Acks>,
    writer: Arc<LogWriter>,
    broken: AtomicBool,
    removed: AtomicBool,
}

impl QueueLog {
    /// Opens (or creates) the log `id` and answers it with the unsettled messages it holds,
    /// oldest first (blocking: call it off the async workers).
    pub fn open(
        store: &LogStore,
        acks_dir: &Path,
        id: &str,
        writer: Arc<LogWriter>,
        keep_bytes: u64,
    ) -> Result<(Arc<QueueLog>, Recovered), std::io::Error> {
        let mut kept = 0u64;
        let partition = store
            .open_partition(id, 0, queue_log_config())
            .map_err(std::io::Error::other)?;
        fs::create_dir_all(acks_dir)?;
        let ack_path = acks_dir.join(id);
        let mut acked = BTreeSet::new();
        let mut file_entries = 0;
        match fs::read(&ack_path) {
            Ok(bytes) => {
                file_entries = bytes.len() / 8;
                for chunk in bytes.chunks_exact(8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    acked.insert(i64::from_be_bytes(b));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let start = partition.log_start_offset();
        let end = partition.high_watermark();
        acked.retain(|o| *o >= start);
        let mut messages = Vec::new();
        let mut at = start;
        while at < end {
            let data = partition.read(at, 4 << 20).map_err(std::io::Error::other)?;
            if data.records.is_empty() {
                break;
            }
            let entries =
                msglog::batch::decode_entries(&data.records).map_err(std::io::Error::other)?;
            let mut last = at;
            for (offset, entry) in entries {
                last = offset;
                if offset < at || acked.contains(&offset) {
                    continue;
                }
                match decode_message(entry) {
                    Some(m) if m.persistent() => {
                        let size = m.size();
                        if kept + size <= keep_bytes {
                            kept += size;
                            messages.push((offset, Stored::Message(Box::new(m))));
                        } else {
                            messages.push((
                                offset,
                                Stored::Paged(StoredMeta {
                                    priority: m.priority(),
                                    size,
                                    expiration_ms: m.expiration_ms(),
                                    published_ms: m.published_ms,
                                }),
                            ));
                        }
                    }
                    // A transient message paged out to keep memory bounded: gone with the
                    // restart, as RabbitMQ's transient messages are.
                    Some(_) => {
                        acked.insert(offset);
                    }
                    None => warn!(
                        queue_log = id,
                        offset, "unreadable message in queue log skipped"
                    ),
                }
            }
            at = last + 1;
        }
        let (written, _) = watch::channel(end);
        debug!(
            queue_log = id,
            messages = messages.len(),
            start,
            end,
            "queue log opened"
        );
        Ok((
            Arc::new(QueueLog {
                id: id.to_string(),
                partition,
                ack_path,
                next_offset: AtomicI64::new(end),
                written,
                acks: Mutex::new(Acks {
                    set: acked,
                    low: start,
                    file_entries,
                }),
                writer,
                broken: AtomicBool::new(false),
                removed: AtomicBool::new(false),
            }),
            messages,
        ))
    }

    /// Queues a message for writing; answers the offset it will have.
    pub fn append(self: &Arc<Self>, message: &Message) -> Option<i64> {
        if self.broken.load(Ordering::Relaxed) || self.removed.load(Ordering::Relaxed) {
            return None;
        }
        let offset = self.next_offset.fetch_add(1, Ordering::Relaxed);
        self.writer
            .send(Op::Append(self.clone(), encode_message(message)));
        Some(offset)
    }

    /// Settles an offset.
    pub fn ack(self: &Arc<Self>, offset: i64) {
        if !self.removed.load(Ordering::Relaxed) {
            self.writer.send(Op::Ack(self.clone(), offset));
        }
    }

    /// Waits until `offset` is on disk; false if the log failed (or went away) first.
    pub async fn written(&self, offset: i64) -> bool {
        let mut rx = self.written.subscribe();
        let ok = rx.wait_for(|w| *w > offset || *w == i64::MIN).await;
        matches!(ok, Ok(w) if *w != i64::MIN)
    }

    /// Stops writing (the queue was deleted); the caller removes the data.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::Relaxed);
        self.written.send_replace(i64::MIN);
    }

    fn write_entries(&self, entries: &[Vec<u8>]) {
        if self.removed.load(Ordering::Relaxed) || self.broken.load(Ordering::Relaxed) {
            return;
        }
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let batch = msglog::batch::encode_entries(&refs, now_ms());
        match self.partition.append_entries(&batch, now_ms()) {
            Ok(info) => {
                self.written.send_replace(info.last_offset + 1);
            }
            Err(e) => {
                warn!(queue_log = %self.id, error = %e, "queue log append failed; the queue keeps its messages in memory only");
                self.broken.store(true, Ordering::Relaxed);
                self.written.send_replace(i64::MIN);
            }
        }
    }

    fn write_acks(&self, offsets: &[i64]) {
        if self.removed.load(Ordering::Relaxed) {
            return;
        }
        let mut acks = self.acks.lock();
        acks.set.extend(offsets.iter().copied());
        // Everything below `low` is settled (kept between batches: it only grows).
        let start = self.partition.log_start_offset();
        let mut low = acks.low.max(start);
        while acks.set.contains(&low) {
            low += 1;
        }
        acks.low = low;
        // Whole sealed segments whose messages are all settled go. The active segment
        // goes only once everything in it is settled and it is worth a new file (moving
        // the start into it for every ack batch would roll a segment per batch).
        let sealed_end = self.partition.active_segment_base();
        let end = self.partition.high_watermark();
        let target = if low == end && self.partition.size_bytes() >= ROLL_SETTLED_BYTES {
            end
        } else if low >= sealed_end {
            sealed_end
        } else {
            start
        };
        if target > start {
            match self.partition.delete_records_before(target) {
                Ok(new_start) => {
                    while acks.set.first().is_some_and(|o| *o < new_start) {
                        acks.set.pop_first();
                    }
                }
                Err(e) => {
                    warn!(queue_log = %self.id, error = %e, "cannot move the queue log start")
                }
            }
        }
        let result = if acks.file_entries + offsets.len() > acks.set.len() * 2 + COMPACT_AFTER {
            let r = self.rewrite_acks(&acks.set);
            acks.file_entries = acks.set.len();
            r
        } else {
            acks.file_entries += offsets.len();
            self.append_acks(offsets.iter())
        };
        if let Err(e) = result {
            warn!(queue_log = %self.id, error = %e, "cannot record settled messages; they may be redelivered after a restart");
        }
    }

    fn append_acks<'a>(&self, offsets: impl Iterator<Item = &'a i64>) -> std::io::Result<()> {
        let mut buf = BytesMut::new();
        for o in offsets {
            buf.put_i64(*o);
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ack_path)?;
        f.write_all(&buf)
    }

    fn rewrite_acks(&self, acked: &BTreeSet<i64>) -> std::io::Result<()> {
        let mut buf = BytesMut::with_capacity(acked.len() * 8);
        for o in acked {
            buf.put_i64(*o);
        }
        let tmp = self.ack_path.with_extension("tmp");
        fs::write(&tmp, &buf)?;
        fs::rename(&tmp, &self.ack_path)
    }

    /// Reads back the messages at `offsets` (sorted), for paging them in (blocking: call it
    /// off the async workers). Offsets it cannot find are missing from the answer.
    pub fn read_messages(
        &self,
        offsets: &[i64],
    ) -> Result<HashMap<i64, Arc<Message>>, std::io::Error> {
        let mut out = HashMap::with_capacity(offsets.len());
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(out);
        };
        let mut at = first.max(self.partition.log_start_offset());
        while at <= last {
            let data = self
                .partition
                .read(at, READ_CHUNK)
                .map_err(std::io::Error::other)?;
            if data.records.is_empty() {
                break;
            }
            let entries =
                msglog::batch::decode_entries(&data.records).map_err(std::io::Error::other)?;
            let mut next = at;
            for (offset, entry) in entries {
                next = next.max(offset + 1);
                if offset >= at && offsets.binary_search(&offset).is_ok() {
                    if let Some(m) = decode_message(entry) {
                        out.insert(offset, Arc::new(m));
                    }
                }
            }
            if next == at {
                break;
            }
            at = next;
        }
        Ok(out)
    }

    /// Bytes the log takes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.partition.size_bytes()
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::BasicProperties;

    use super::*;
    use crate::frame;

    fn message(body: &str) -> Message {
        let props = BasicProperties::default().with_delivery_mode(2);
        Message {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            raw_properties: frame::encode_properties(&props).unwrap(),
            properties: props,
            body: Bytes::from(body.to_string()),
            published_ms: 7,
        }
    }

    #[test]
    fn messages_round_trip_through_their_encoding() {
        let m = message("hello");
        let back = decode_message(&encode_message(&m)).unwrap();
        assert_eq!(
            (back.exchange.as_str(), back.routing_key.as_str()),
            ("ex", "rk")
        );
        assert_eq!((back.body.as_ref(), back.published_ms), (&b"hello"[..], 7));
        assert_eq!(back.properties, m.properties);
        assert!(decode_message(&encode_message(&m)[..5]).is_none());
    }

    #[tokio::test]
    async fn settled_messages_stay_settled_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LogStore::open(&dir.path().join("messages"), msglog::StoreConfig::default()).unwrap();
        let acks = dir.path().join("acks");
        let writer = LogWriter::start();
        let (log, old) = QueueLog::open(&store, &acks, "q-1", writer.clone(), u64::MAX).unwrap();
        assert!(old.is_empty());
        let offsets: Vec<i64> = (0..5)
            .map(|i| log.append(&message(&format!("m{i}"))).unwrap())
            .collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert!(log.written(4).await);
        log.ack(0);
        log.ack(1);
        log.ack(3);
        writer.stop();
        drop(log);
        drop(store);

        let store =
            LogStore::open(&dir.path().join("messages"), msglog::StoreConfig::default()).unwrap();
        let writer = LogWriter::start();
        let (log, left) = QueueLog::open(&store, &acks, "q-1", writer.clone(), u64::MAX).unwrap();
        let bodies: Vec<(i64, String)> = left
            .iter()
            .map(|(o, m)| match m {
                Stored::Message(m) => (*o, String::from_utf8(m.body.to_vec()).unwrap()),
                Stored::Paged(_) => panic!("the budget keeps every message"),
            })
            .collect();
        assert_eq!(bodies, vec![(2, "m2".to_string()), (4, "m4".to_string())]);
        assert_eq!(log.append(&message("m5")), Some(5));
        writer.stop();
    }
}
