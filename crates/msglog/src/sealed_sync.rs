//! Syncing rolled segments in the background.
//!
//! When a partition rolls, its old segment still holds up to `segment_bytes` of data that
//! only the flush policy decides about. Syncing it inline stalled the append that rolled
//! (and every partition of the same produce request) behind a disk write of up to 64 MiB;
//! measured, that halved acks=1 produce throughput. Instead the roll hands a
//! [`SealedSync`] to one process-wide thread, and keeps it in the partition's pending list
//! until it is done. `Partition::flush` runs every pending one itself before syncing the
//! active segment, so an acknowledged flush still covers everything before it: acks=all
//! never answers for data that sits behind a segment a power loss could cut short.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tracing::warn;

use crate::LogError;

/// The data sync of one sealed segment, plus the directory sync that makes the segment
/// that replaced it durable. Runs once, whoever gets to it first; a failed run is retried
/// by the next caller.
pub(crate) struct SealedSync {
    file: Arc<File>,
    dir: PathBuf,
    /// Held while syncing, so a second caller waits for the first instead of syncing again.
    running: Mutex<()>,
    /// Read without the lock: a roll pruning finished syncs must not wait for a running one.
    done: AtomicBool,
}

impl SealedSync {
    pub(crate) fn new(file: Arc<File>, dir: PathBuf) -> Arc<SealedSync> {
        Arc::new(SealedSync {
            file,
            dir,
            running: Mutex::new(()),
            done: AtomicBool::new(false),
        })
    }

    /// Syncs unless already done; returns once it is (a concurrent run is waited for).
    pub(crate) fn run(&self) -> Result<(), LogError> {
        if self.is_done() {
            return Ok(());
        }
        let _running = self.running.lock();
        if !self.is_done() {
            self.file.sync_data()?;
            match File::open(&self.dir) {
                Ok(dir) => dir.sync_all()?,
                // The partition was deleted meanwhile: nothing left to make durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.done.store(true, Ordering::Release);
        }
        Ok(())
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// Queues the sync for the background thread (started on first use); runs it inline if the
/// thread cannot be started.
pub(crate) fn submit(job: Arc<SealedSync>) {
    static QUEUE: OnceLock<Option<Sender<Arc<SealedSync>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Arc<SealedSync>>();
        let started = std::thread::Builder::new()
            .name("msglog-sealed-sync".into())
            .spawn(move || {
                for job in rx {
                    if let Err(e) = job.run() {
                        // Left not done: the partition's next flush retries and reports it.
                        warn!(dir = %job.dir.display(), error = %e, "background sync of a sealed segment failed");
                    }
                }
            });
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                warn!(error = %e, "cannot start the sealed-segment sync thread; syncing inline");
                None
            }
        }
    });
    let job = match queue {
        Some(tx) => match tx.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    if let Err(e) = job.run() {
        warn!(dir = %job.dir.display(), error = %e, "sync of a sealed segment failed");
    }
}
