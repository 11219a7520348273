//! All partitions of one instance, their shared storage quota, and retention.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

use crate::partition::Partition;
use crate::partition::PartitionIo;
use crate::{FlushPolicy, LogConfig, LogError, LogIo, QuotaPolicy, StoreConfig};

const NO_QUOTA: u64 = u64::MAX;

/// Bytes used by the log segments of every open partition, and the quota they share.
pub(crate) struct Usage {
    used: AtomicU64,
    quota: AtomicU64,
    reject: AtomicBool,
}

impl Usage {
    pub fn new(quota: Option<u64>, policy: QuotaPolicy) -> Usage {
        let u = Usage {
            used: AtomicU64::new(0),
            quota: AtomicU64::new(NO_QUOTA),
            reject: AtomicBool::new(false),
        };
        u.set(quota, policy);
        u
    }

    pub fn set(&self, quota: Option<u64>, policy: QuotaPolicy) {
        self.quota
            .store(quota.unwrap_or(NO_QUOTA), Ordering::Release);
        self.reject
            .store(policy == QuotaPolicy::ProduceReject, Ordering::Release);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn quota(&self) -> Option<u64> {
        let q = self.quota.load(Ordering::Acquire);
        (q != NO_QUOTA).then_some(q)
    }

    pub fn add(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    pub fn sub(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// Counts `n` bytes about to be written. Under ProduceReject this fails, counting
    /// nothing, when they would take the store over its quota; the check and the count are
    /// one atomic step, so concurrent appends to different partitions cannot overshoot.
    pub fn reserve(&self, n: u64) -> Result<(), LogError> {
        let quota = self.quota.load(Ordering::Acquire);
        if quota == NO_QUOTA || !self.reject.load(Ordering::Acquire) {
            self.add(n);
            return Ok(());
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&after| after <= quota)
            })
            .map(|_| ())
            .map_err(|used| LogError::QuotaExceeded { used, quota })
    }
}

pub struct LogStore {
    root: PathBuf,
    config: Mutex<StoreConfig>,
    usage: Arc<Usage>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Serialises opening and removing partitions (lookups go on meanwhile).
    lifecycle: Mutex<()>,
    /// One retention pass at a time, so concurrent passes do not delete twice for one need.
    retention: Mutex<()>,
}

/// Topic names as Kafka allows them: `[a-zA-Z0-9._-]+`, not `.` or `..`, at most 249 bytes.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `<topic>-<partition>`: topic names may contain '-', partition numbers do not.
fn parse_dir_name(name: &str) -> Option<(String, i32)> {
    let (topic, id) = name.rsplit_once('-')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || !valid_topic_name(topic) {
        return None;
    }
    let id: i32 = id.parse().ok()?;
    Some((topic.to_string(), id))
}

fn remove_dir_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl LogStore {
    /// Opens (creating if missing) the store directory; partitions are opened on demand.
    pub fn open(root: &Path, config: StoreConfig) -> Result<LogStore, LogError> {
        fs::create_dir_all(root)?;
        Ok(LogStore {
            root: root.to_path_buf(),
            usage: Arc::new(Usage::new(config.quota_bytes, config.quota_policy)),
            config: Mutex::new(config),
            partitions: RwLock::new(HashMap::new()),
            lifecycle: Mutex::new(()),
            retention: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.root.join(format!("{topic}-{partition}"))
    }

    /// `(topic, partition)` of every partition directory, sorted.
    pub fn partitions_on_disk(&self) -> Result<Vec<(String, i32)>, LogError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Some(parsed) = entry.file_name().to_str().and_then(parse_dir_name) {
                out.push(parsed);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens a partition, creating or recovering it; returns the open one if it already is.
    pub fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        if let Some(p) = self.partition(topic, partition) {
            return Ok(p);
        }
        if !valid_topic_name(topic) || partition < 0 {
            return Err(LogError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid topic partition {topic:?}/{partition}"),
            )));
        }
        let _guard = self.lifecycle.lock();
        if let Some(p) = self.partition(topic, partition) {
            return Ok(p);
        }
        let io = {
            let cfg = self.config.lock();
            PartitionIo {
                flush_every_append: cfg.flush == FlushPolicy::EveryAppend,
                direct: cfg.io == LogIo::Direct,
            }
        };
        let p = Arc::new(Partition::open(
            self.partition_dir(topic, partition),
            topic,
            partition,
            config,
            self.usage.clone(),
            io,
        )?);
        self.partitions
            .write()
            .insert((topic.to_string(), partition), p.clone());
        Ok(p)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Closes and deletes every partition of `topic`, open or only on disk.
    pub fn remove_topic(&self, topic: &str) -> Result<(), LogError> {
        let _guard = self.lifecycle.lock();
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = self.partitions.write();
            let keys: Vec<_> = partitions
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| partitions.remove(k)).collect()
        };
        for p in &removed {
            let size = p.close_for_removal();
            self.usage.sub(size);
            remove_dir_if_exists(p.dir())?;
        }
        for (t, id) in self.partitions_on_disk()? {
            if t == topic {
                remove_dir_if_exists(&self.partition_dir(&t, id))?;
            }
        }
        info!(topic, open_partitions = removed.len(), "removed topic data");
        Ok(())
    }

    /// Exact sum of the log segment sizes of all open partitions.
    pub fn used_bytes(&self) -> u64 {
        self.usage.used()
    }

    pub fn config(&self) -> StoreConfig {
        self.config.lock().clone()
    }

    pub fn set_quota(&self, quota_bytes: Option<u64>, policy: QuotaPolicy) {
        let mut cfg = self.config.lock();
        cfg.quota_bytes = quota_bytes;
        cfg.quota_policy = policy;
        self.usage.set(quota_bytes, policy);
    }

    pub fn over_quota(&self) -> bool {
        self.usage.quota().is_some_and(|q| self.usage.used() > q)
    }

    fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Time and size retention of every partition, then (under TimeBase) deletion of the
    /// store-wide oldest segments until usage fits the quota. Returns the bytes freed.
    /// A partition that fails is logged and skipped; the first error is returned at the end.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<u64, LogError> {
        let _guard = self.retention.lock();
        let parts = self.all();
        let mut freed = 0;
        let mut first_err = None;
        for p in &parts {
            match p.enforce_retention(now_ms) {
                Ok(n) => freed += n,
                Err(e) => {
                    warn!(topic = p.topic(), partition = p.id(), error = %e, "retention failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        let policy = self.config.lock().quota_policy;
        if let (Some(quota), QuotaPolicy::TimeBase) = (self.usage.quota(), policy) {
            // Closed segments first; active segments only when nothing else is left.
            for only_inactive in [true, false] {
                if self.usage.used() <= quota {
                    break;
                }
                match self.evict_until(&parts, quota, only_inactive) {
                    Ok(n) => freed += n,
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if self.usage.used() > quota {
                warn!(
                    used = self.usage.used(),
                    quota, "storage quota exceeded with nothing left to delete"
                );
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(freed),
        }
    }

    /// Deletes the globally oldest segments (by newest timestamp) until usage <= quota.
    fn evict_until(
        &self,
        parts: &[Arc<Partition>],
        quota: u64,
        only_inactive: bool,
    ) -> Result<u64, LogError> {
        let mut heap: BinaryHeap<Reverse<(i64, usize)>> = parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.oldest_segment_ms(only_inactive).map(|t| Reverse((t, i))))
            .collect();
        let mut freed = 0;
        while self.usage.used() > quota {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            let Some(p) = parts.get(i) else { continue };
            let n = p.evict_oldest_segment()?;
            freed += n;
            if n > 0 {
                if let Some(t) = p.oldest_segment_ms(only_inactive) {
                    heap.push(Reverse((t, i)));
                }
            }
        }
        Ok(freed)
    }

    /// Flushes every partition and saves changed producer state (interval flushes and
    /// clean shutdown). Every partition is tried; the first error is returned.
    pub fn flush_all(&self) -> Result<(), LogError> {
        let mut first_err = None;
        for p in self.all() {
            if let Err(e) = p.checkpoint() {
                warn!(topic = p.topic(), partition = p.id(), error = %e, "flush failed");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::{batch, offsets};

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 1000,
            index_interval_bytes: 100,
            retention_ms: None,
            retention_bytes: None,
        }
    }

    fn store(dir: &Path, quota: Option<u64>, policy: QuotaPolicy) -> LogStore {
        LogStore::open(
            dir,
            StoreConfig {
                quota_bytes: quota,
                quota_policy: policy,
                flush: FlushPolicy::AcksAll,
                io: LogIo::Direct,
            },
        )
        .unwrap()
    }

    /// Bytes of batches in the `.log` files of every partition directory under `dir`.
    fn disk_bytes(dir: &Path) -> u64 {
        let mut total = 0;
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                total += crate::segment::partition_log_bytes(&e.path());
            }
        }
        total
    }

    #[test]
    fn dir_names() {
        assert_eq!(parse_dir_name("a-b-3"), Some(("a-b".into(), 3)));
        assert_eq!(parse_dir_name("t.x_y-0"), Some(("t.x_y".into(), 0)));
        assert_eq!(parse_dir_name("t--1"), Some(("t-".into(), 1)));
        for bad in [
            "t",
            "t-",
            "-1",
            "t-x",
            "t-+1",
            "t-99999999999",
            "a b-1",
            "..-1",
        ] {
            assert_eq!(parse_dir_name(bad), None, "{bad}");
        }
        assert!(valid_topic_name("my-topic.v2_x"));
        assert!(!valid_topic_name("a/b") && !valid_topic_name("") && !valid_topic_name(".."));
    }

    #[test]
    fn open_list_reopen_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        assert!(s.partitions_on_disk().unwrap().is_empty());
        let a = s.open_partition("my-topic", 3, small()).unwrap();
        let again = s.open_partition("my-topic", 3, small()).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        s.open_partition("my-topic", 0, small()).unwrap();
        let other = s.open_partition("other", 1, small()).unwrap();
        assert!(s.open_partition("bad/name", 0, small()).is_err());
        assert!(s.open_partition("t", -1, small()).is_err());
        fs::create_dir(dir.path().join("not a partition")).unwrap();
        fs::write(dir.path().join("file-1"), b"").unwrap();
        for _ in 0..10 {
            a.append(&batch(2, 0, None), 0).unwrap();
            other.append(&batch(2, 0, None), 0).unwrap();
        }
        assert_eq!(
            s.partitions_on_disk().unwrap(),
            vec![
                ("my-topic".to_string(), 0),
                ("my-topic".to_string(), 3),
                ("other".to_string(), 1)
            ]
        );
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        drop((a, again, other));
        drop(s);

        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        assert_eq!(s.used_bytes(), 0, "nothing open yet");
        let a = s.open_partition("my-topic", 3, small()).unwrap();
        assert_eq!(a.high_watermark(), 20);
        s.open_partition("other", 1, small()).unwrap();
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        s.remove_topic("my-topic").unwrap();
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        assert!(s.partition("my-topic", 3).is_none());
        assert_eq!(
            s.partitions_on_disk().unwrap(),
            vec![("other".to_string(), 1)]
        );
        // a handle kept by a caller no longer works
        assert!(matches!(
            a.append(&batch(1, 0, None), 0),
            Err(LogError::UnknownPartition)
        ));
        assert!(matches!(a.read(0, 10), Err(LogError::UnknownPartition)));
        s.remove_topic("other").unwrap();
        assert_eq!(s.used_bytes(), 0);
        // a recreated topic starts from scratch
        let a = s.open_partition("my-topic", 3, small()).unwrap();
        assert_eq!(a.high_watermark(), 0);
    }

    #[test]
    fn quota_produce_reject() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(2, 0, None).len() as u64;
        let s = store(dir.path(), Some(one * 5), QuotaPolicy::ProduceReject);
        let p = s.open_partition("t", 0, small()).unwrap();
        let q = s.open_partition("u", 0, small()).unwrap();
        for _ in 0..3 {
            p.append(&batch(2, 0, None), 0).unwrap();
        }
        for _ in 0..2 {
            q.append(&batch(2, 0, None), 0).unwrap();
        }
        assert!(!s.over_quota());
        for part in [&p, &q] {
            assert!(matches!(
                part.append(&batch(2, 0, None), 0),
                Err(LogError::QuotaExceeded { used, quota }) if used == one * 5 && quota == one * 5
            ));
        }
        assert_eq!(
            (p.high_watermark(), q.high_watermark()),
            (6, 4),
            "nothing written"
        );
        assert_eq!(s.used_bytes(), one * 5);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        // retention does not make room under ProduceReject by itself...
        assert_eq!(s.enforce_retention(i64::MAX).unwrap(), 0);
        // ...but deleting records does
        p.delete_records_before(6).unwrap();
        assert_eq!(s.used_bytes(), one * 2);
        q.append(&batch(2, 0, None), 0).unwrap();
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        s.set_quota(None, QuotaPolicy::ProduceReject);
        for _ in 0..10 {
            p.append(&batch(2, 0, None), 0).unwrap();
        }
        assert!(!s.over_quota());
    }

    #[test]
    fn quota_time_base_deletes_oldest_across_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(2, 0, None).len() as u64;
        let s = store(dir.path(), Some(one * 12), QuotaPolicy::TimeBase);
        let old = s.open_partition("old", 0, small()).unwrap();
        let new = s.open_partition("new", 0, small()).unwrap();
        for i in 0..10 {
            old.append(&batch(2, 1000 + i, None), 0).unwrap();
        }
        for i in 0..10 {
            new.append(&batch(2, 5000 + i, None), 0).unwrap();
        }
        assert!(s.over_quota(), "TimeBase never refuses appends");
        let before = s.used_bytes();
        let freed = s.enforce_retention(0).unwrap();
        assert_eq!(s.used_bytes(), before - freed);
        assert!(s.used_bytes() <= one * 12);
        assert!(!s.over_quota());
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        // the old partition's closed segments went first; the new one is untouched
        assert_eq!(new.log_start_offset(), 0);
        assert!(old.log_start_offset() > 0);
        assert_eq!(offsets(&new.read(0, 1).unwrap().records), vec![0]);

        // only active segments left over quota: they are rolled and deleted, oldest first
        s.set_quota(Some(one * 3), QuotaPolicy::TimeBase);
        s.enforce_retention(0).unwrap();
        assert!(s.used_bytes() <= one * 3);
        assert_eq!(old.size_bytes(), 0);
        assert_eq!(old.log_start_offset(), 20);
        assert_eq!(old.append(&batch(1, 0, None), 0).unwrap().base_offset, 20);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        s.set_quota(Some(0), QuotaPolicy::TimeBase);
        s.enforce_retention(0).unwrap();
        assert_eq!(s.used_bytes(), 0);
        assert_eq!(disk_bytes(dir.path()), 0);
        assert_eq!(new.high_watermark(), 20);
    }

    #[test]
    fn store_retention_and_flush_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let cfg = LogConfig {
            retention_ms: Some(100),
            ..small()
        };
        let p = s.open_partition("t", 0, cfg.clone()).unwrap();
        let keep = s.open_partition("keep", 0, small()).unwrap();
        for i in 0..20 {
            p.append(&batch(2, i, Some((1, 0, 2 * i as i32))), 0)
                .unwrap();
            keep.append(&batch(2, i, None), 0).unwrap();
        }
        s.flush_all().unwrap();
        let freed = s.enforce_retention(10_000).unwrap();
        assert!(freed > 0);
        assert_eq!(p.size_bytes(), 0);
        assert_eq!(keep.log_start_offset(), 0);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        s.flush_all().unwrap();
        drop((p, keep));
        drop(s);
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let p = s.open_partition("t", 0, cfg).unwrap();
        assert_eq!((p.log_start_offset(), p.high_watermark()), (40, 40));
        // the producer is forgotten with its data, so any sequence starts it again
        assert_eq!(
            p.append(&batch(1, 0, Some((1, 0, 77))), 0)
                .unwrap()
                .base_offset,
            40
        );
    }

    #[test]
    fn concurrent_produce_reject_never_overshoots() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(2, 0, None).len() as u64;
        let s = Arc::new(store(
            dir.path(),
            Some(one * 50),
            QuotaPolicy::ProduceReject,
        ));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let p = s.open_partition("t", i, small()).unwrap();
                std::thread::spawn(move || {
                    let mut ok = 0;
                    for _ in 0..40 {
                        if p.append(&batch(2, 0, None), 0).is_ok() {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        let ok: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(ok, 50);
        assert_eq!(s.used_bytes(), one * 50);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
    }
}
