//! What every vhost of a broker shares: the timer task, the message store and its writer
//! thread, and the request to save definitions.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use msglog::LogStore;
use tokio::sync::mpsc;
use tracing::warn;

use crate::queue::store::{LogWriter, QueueLog};
use crate::timers::Timers;

pub struct Core {
    pub timers: Timers,
    /// Queue logs (one `msglog` partition per durable queue).
    pub store: Arc<LogStore>,
    pub acks_dir: PathBuf,
    pub writer: Arc<LogWriter>,
    /// Ready message bodies held in memory by every queue.
    pub memory: Arc<AtomicU64>,
    save: mpsc::UnboundedSender<()>,
}

impl Core {
    pub fn new(
        timers: Timers,
        store: Arc<LogStore>,
        acks_dir: PathBuf,
        writer: Arc<LogWriter>,
        save: mpsc::UnboundedSender<()>,
    ) -> Arc<Core> {
        Arc::new(Core {
            timers,
            store,
            acks_dir,
            writer,
            memory: Arc::new(AtomicU64::new(0)),
            save,
        })
    }

    /// Asks for the definitions to be saved soon (changes the broker made on its own:
    /// auto-deleted and expired queues).
    pub fn request_save(&self) {
        let _ = self.save.send(());
    }

    /// Deletes the data of a durable queue's log, off the async workers.
    pub fn remove_log(&self, log: Arc<QueueLog>) {
        log.remove();
        let store = self.store.clone();
        let acks = self.acks_dir.join(&log.id);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.remove_topic(&log.id) {
                warn!(queue_log = %log.id, error = %e, "cannot remove a deleted queue's messages");
            }
            let _ = std::fs::remove_file(acks);
        });
    }
}
