//! One writer task per message queue: appends arrive in the order they were submitted, and
//! whatever is waiting when the writer gets to it goes into the log as one record batch (one
//! write, and with sync flush one fsync: group commit, as Apache's commit log does). A send
//! submits its messages and answers when the writer reports where they landed, so a
//! connection keeps reading while its earlier sends are written, in order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use msglog::LogError;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::{Broker, QueueStore};

/// Most messages one batch carries.
const MAX_BATCH_MESSAGES: usize = 1024;

/// Why an append failed, as the sender needs to know it.
#[derive(Clone, Debug)]
pub enum AppendFailure {
    Quota { used: u64, quota: u64 },
    Other(String),
}

impl From<&LogError> for AppendFailure {
    fn from(e: &LogError) -> Self {
        match e {
            LogError::QuotaExceeded { used, quota } => AppendFailure::Quota {
                used: *used,
                quota: *quota,
            },
            other => AppendFailure::Other(other.to_string()),
        }
    }
}

/// The first queue offset of a job's messages.
pub type AppendResult = Result<i64, AppendFailure>;

struct Job {
    entries: Vec<Vec<u8>>,
    now_ms: i64,
    done: oneshot::Sender<AppendResult>,
}

/// The writers of a broker's queues, started on first use.
#[derive(Default)]
pub struct Writers {
    by_queue: Mutex<HashMap<(u32, i32), mpsc::UnboundedSender<Job>>>,
}

impl Writers {
    /// Submits stored messages for one queue; the receiver answers with the first offset.
    pub fn submit(
        &self,
        broker: &Arc<Broker>,
        serial: u32,
        queue_id: i32,
        entries: Vec<Vec<u8>>,
        now_ms: i64,
    ) -> oneshot::Receiver<AppendResult> {
        let (done, rx) = oneshot::channel();
        let mut job = Job {
            entries,
            now_ms,
            done,
        };
        let mut writers = self.by_queue.lock();
        for _ in 0..2 {
            let tx = writers.entry((serial, queue_id)).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(Arc::downgrade(broker), serial, queue_id, rx));
                tx
            });
            match tx.send(job) {
                Ok(()) => return rx,
                // The writer ended (its queue was deleted): start a new one.
                Err(mpsc::error::SendError(j)) => {
                    job = j;
                    writers.remove(&(serial, queue_id));
                }
            }
        }
        let _ = job
            .done
            .send(Err(AppendFailure::Other("the queue writer is gone".into())));
        rx
    }

    /// Stops the writers of a topic's queues (it is being deleted).
    pub fn forget_topic(&self, serial: u32) {
        self.by_queue.lock().retain(|(s, _), _| *s != serial);
    }
}

async fn run(
    broker: Weak<Broker>,
    serial: u32,
    queue_id: i32,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].entries.len();
        while count < MAX_BATCH_MESSAGES {
            match rx.try_recv() {
                Ok(j) => {
                    count += j.entries.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let Some(b) = broker.upgrade() else { break };
        let now = jobs.iter().map(|j| j.now_ms).max().unwrap_or_default();
        let counts: Vec<usize> = jobs.iter().map(|j| j.entries.len()).collect();
        let entries: Vec<Vec<u8>> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.entries))
            .collect();
        let store = b.clone();
        let written = tokio::task::spawn_blocking(move || {
            let q = store.store.queue_for_write(serial, queue_id)?;
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            let base = QueueStore::append(&q, &refs, now)?;
            Ok::<_, LogError>((q, base))
        })
        .await;
        match written {
            Ok(Ok((queue, base))) => {
                let mut at = base;
                for (job, n) in jobs.into_iter().zip(counts) {
                    let _ = job.done.send(Ok(at));
                    at += n as i64;
                }
                queue.arrived.notify_waiters();
                debug!(serial, queue_id, base, count, "messages stored");
            }
            Ok(Err(e)) => {
                if !matches!(e, LogError::QuotaExceeded { .. }) {
                    warn!(serial, queue_id, error = %e, "append failed");
                }
                let failure = AppendFailure::from(&e);
                for job in jobs {
                    let _ = job.done.send(Err(failure.clone()));
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.done.send(Err(AppendFailure::Other(e.to_string())));
                }
            }
        }
    }
}
