//! All partitions of one instance, their shared storage quota and retention.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

use crate::partition::Partition;
use crate::{FlushPolicy, LogConfig, LogError, QuotaPolicy, StoreConfig};

/// Bytes used by every partition of the store, and the quota they share.
pub(crate) struct Usage {
    pub used: AtomicU64,
    pub quota: Mutex<(Option<u64>, QuotaPolicy)>,
}

pub struct LogStore {
    root: PathBuf,
    config: Mutex<StoreConfig>,
    usage: Arc<Usage>,
    partitions: RwLock<BTreeMap<(String, i32), Arc<Partition>>>,
}

/// `<topic>-<partition>`: topic names may contain '-', partition ids do not.
fn parse_dir_name(name: &str) -> Option<(String, i32)> {
    let (topic, id) = name.rsplit_once('-')?;
    let id: i32 = id.parse().ok()?;
    (!topic.is_empty() && id >= 0).then(|| (topic.to_string(), id))
}

impl LogStore {
    pub fn open(root: &Path, config: StoreConfig) -> Result<LogStore, LogError> {
        fs::create_dir_all(root)?;
        Ok(LogStore {
            root: root.to_path_buf(),
            usage: Arc::new(Usage {
                used: AtomicU64::new(0),
                quota: Mutex::new((config.quota_bytes, config.quota_policy)),
            }),
            config: Mutex::new(config),
            partitions: RwLock::new(BTreeMap::new()),
        })
    }

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

    pub fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let key = (topic.to_string(), partition);
        if let Some(p) = self.partitions.read().get(&key) {
            return Ok(p.clone());
        }
        let mut partitions = self.partitions.write();
        if let Some(p) = partitions.get(&key) {
            return Ok(p.clone());
        }
        let flush_every_append = self.config.lock().flush == FlushPolicy::EveryAppend;
        let p = Arc::new(Partition::open(
            self.root.join(format!("{topic}-{partition}")),
            topic,
            partition,
            config,
            self.usage.clone(),
            flush_every_append,
        )?);
        partitions.insert(key, p.clone());
        Ok(p)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Deletes every partition of `topic`, open or only on disk.
    pub fn remove_topic(&self, topic: &str) -> Result<(), LogError> {
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
            let size = p.size_bytes();
            fs::remove_dir_all(p.dir())?;
            self.usage.used.fetch_sub(size, Ordering::SeqCst);
        }
        for (t, id) in self.partitions_on_disk()? {
            if t == topic {
                fs::remove_dir_all(self.root.join(format!("{t}-{id}")))?;
            }
        }
        info!(topic, partitions = removed.len(), "topic data removed");
        Ok(())
    }

    pub fn used_bytes(&self) -> u64 {
        self.usage.used.load(Ordering::SeqCst)
    }

    pub fn config(&self) -> StoreConfig {
        self.config.lock().clone()
    }

    pub fn set_quota(&self, quota_bytes: Option<u64>, policy: QuotaPolicy) {
        let mut cfg = self.config.lock();
        cfg.quota_bytes = quota_bytes;
        cfg.quota_policy = policy;
        *self.usage.quota.lock() = (quota_bytes, policy);
    }

    pub fn over_quota(&self) -> bool {
        match self.usage.quota.lock().0 {
            Some(q) => self.used_bytes() > q,
            None => false,
        }
    }

    fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    pub fn enforce_retention(&self, now_ms: i64) -> Result<u64, LogError> {
        let mut freed = 0;
        for p in self.all() {
            freed += p.enforce_retention(now_ms)?;
        }
        let (quota, policy) = *self.usage.quota.lock();
        if let (Some(quota), QuotaPolicy::TimeBase) = (quota, policy) {
            // Delete the globally oldest segments until the store fits its quota.
            while self.used_bytes() > quota {
                let oldest = self
                    .all()
                    .into_iter()
                    .filter_map(|p| p.oldest_segment_ms().map(|t| (t, p)))
                    .min_by_key(|(t, _)| *t);
                let Some((_, p)) = oldest else { break };
                let n = p.delete_oldest_segment()?;
                if n == 0 {
                    break;
                }
                freed += n;
            }
            if self.used_bytes() > quota {
                warn!(
                    used = self.used_bytes(),
                    quota, "storage quota exceeded with nothing left to delete"
                );
            }
        }
        Ok(freed)
    }

    pub fn flush_all(&self) -> Result<(), LogError> {
        for p in self.all() {
            p.checkpoint()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::batch;
    use crate::batch::BatchHeader;

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
            },
        )
        .unwrap()
    }

    /// Offsets of every batch in a read result.
    fn offsets(data: &[u8]) -> Vec<i64> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let h = BatchHeader::parse(rest).unwrap();
            crate::batch::validate_crc(&rest[..h.total_len()]).unwrap();
            out.push(h.base_offset);
            rest = &rest[h.total_len()..];
        }
        out
    }

    fn disk_bytes(dir: &Path) -> u64 {
        let mut total = 0;
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                total += disk_bytes(&e.path());
            } else if e.path().extension().is_some_and(|x| x == "log") {
                total += e.metadata().unwrap().len();
            }
        }
        total
    }

    #[test]
    fn append_read_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let p = s.open_partition("t-1", 0, small()).unwrap();
        let mut bases = Vec::new();
        for i in 0..40 {
            let info = p.append(&batch(3, 1000 + i, 1000 + i, None), 0).unwrap();
            assert_eq!(info.base_offset, i * 3);
            bases.push(info.base_offset);
        }
        assert_eq!(p.high_watermark(), 120);
        assert!(
            fs::read_dir(dir.path().join("t-1-0")).unwrap().count() > 6,
            "segments rolled"
        );
        // mid-batch offset: the whole batch that holds it
        let r = p.read(31, 1 << 20).unwrap();
        assert_eq!(offsets(&r.records)[0], 30);
        // small max_bytes: still one whole batch
        let r = p.read(0, 1).unwrap();
        assert_eq!(offsets(&r.records), vec![0]);
        assert!(p.read(120, 100).unwrap().records.is_empty());
        assert!(matches!(
            p.read(121, 100),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            p.read(-1, 100),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // every batch readable in order by walking
        let mut next = 0;
        let mut seen = Vec::new();
        while next < 120 {
            let r = p.read(next, 250).unwrap();
            let o = offsets(&r.records);
            seen.extend(o.iter().copied());
            next = o.last().unwrap() + 3;
        }
        assert_eq!(seen, bases);
        assert_eq!(p.offset_for_timestamp(1010).unwrap(), Some((30, 1010)));
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
        assert_eq!(p.offset_for_timestamp(5000).unwrap(), None);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        drop(p);
        drop(s);

        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        assert_eq!(
            s.partitions_on_disk().unwrap(),
            vec![("t-1".to_string(), 0)]
        );
        let p = s.open_partition("t-1", 0, small()).unwrap();
        assert_eq!(p.high_watermark(), 120);
        assert_eq!(offsets(&p.read(61, 1 << 20).unwrap().records)[0], 60);
        assert_eq!(p.offset_for_timestamp(1039).unwrap(), Some((117, 1039)));
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        assert_eq!(p.append(&batch(1, 0, 0, None), 0).unwrap().base_offset, 120);
    }

    fn active_log(dir: &Path) -> PathBuf {
        let mut logs: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs.pop().unwrap()
    }

    #[test]
    fn recovery_truncates_torn_and_corrupt_tails_and_rebuilds_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("t-0");
        let cfg = LogConfig {
            segment_bytes: 1 << 20,
            ..small()
        };
        {
            let s = store(dir.path(), None, QuotaPolicy::TimeBase);
            let p = s.open_partition("t", 0, cfg.clone()).unwrap();
            for i in 0..10 {
                p.append(&batch(2, i, i, None), 0).unwrap();
            }
        }
        let log = active_log(&pdir);
        // torn write: half a batch at the end
        let len = fs::metadata(&log).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(len - 20).unwrap();
        drop(f);
        {
            let s = store(dir.path(), None, QuotaPolicy::TimeBase);
            let p = s.open_partition("t", 0, cfg.clone()).unwrap();
            assert_eq!(p.high_watermark(), 18, "last batch dropped");
            assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
            p.append(&batch(2, 50, 50, None), 0).unwrap();
            assert_eq!(p.high_watermark(), 20);
        }
        // flipped byte in the last batch: CRC mismatch
        let mut raw = fs::read(&log).unwrap();
        let n = raw.len();
        raw[n - 3] ^= 0xff;
        fs::write(&log, raw).unwrap();
        // and a missing index plus a garbage time index
        fs::remove_file(log.with_extension("index")).unwrap();
        fs::write(log.with_extension("timeindex"), b"garbage").unwrap();
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let p = s.open_partition("t", 0, cfg).unwrap();
        assert_eq!(p.high_watermark(), 18);
        assert_eq!(offsets(&p.read(17, 1 << 20).unwrap().records), vec![16]);
        assert_eq!(p.offset_for_timestamp(5).unwrap(), Some((10, 5)));
        assert!(fs::metadata(log.with_extension("index")).unwrap().len() > 0);
    }

    #[test]
    fn idempotent_producers_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path(), None, QuotaPolicy::TimeBase);
            let p = s.open_partition("t", 0, small()).unwrap();
            p.append(&batch(2, 0, 0, Some((5, 0, 0))), 0).unwrap();
            p.append(&batch(2, 0, 0, Some((5, 0, 2))), 0).unwrap();
            assert!(matches!(
                p.append(&batch(2, 0, 0, Some((5, 0, 2))), 0),
                Err(LogError::DuplicateSequence { base_offset: 2 })
            ));
            assert!(matches!(
                p.append(&batch(1, 0, 0, Some((5, 0, 9))), 0),
                Err(LogError::OutOfOrderSequence {
                    expected: 4,
                    got: 9
                })
            ));
            assert_eq!(p.high_watermark(), 4);
            // no snapshot written: reopen rebuilds from the log (as after kill -9)
        }
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let p = s.open_partition("t", 0, small()).unwrap();
        assert!(matches!(
            p.append(&batch(2, 0, 0, Some((5, 0, 2))), 0),
            Err(LogError::DuplicateSequence { base_offset: 2 })
        ));
        assert_eq!(
            p.append(&batch(1, 0, 0, Some((5, 0, 4))), 0)
                .unwrap()
                .base_offset,
            4
        );
        s.flush_all().unwrap();
        drop(p);
        drop(s);
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let p = s.open_partition("t", 0, small()).unwrap();
        assert!(matches!(
            p.append(&batch(1, 0, 0, Some((5, 0, 4))), 0),
            Err(LogError::DuplicateSequence { base_offset: 4 })
        ));
        assert!(matches!(
            p.append(&batch(1, 0, 0, Some((5, -1, 5))), 0),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn retention_by_time_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let cfg = LogConfig {
            retention_ms: Some(1000),
            ..small()
        };
        let p = s.open_partition("t", 0, cfg.clone()).unwrap();
        for i in 0..20 {
            p.append(&batch(2, i * 100, i * 100, None), 0).unwrap();
        }
        let before = s.used_bytes();
        // now = 2500: segments whose newest record is before 1500 go
        let freed = s.enforce_retention(2500).unwrap();
        assert!(freed > 0);
        assert_eq!(s.used_bytes(), before - freed);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        let start = p.log_start_offset();
        assert!(start > 0);
        assert!(p.read(start - 1, 10).is_err());
        assert!(p.read(start, 10).is_ok());
        // everything expired: even the active segment goes, offsets continue
        s.enforce_retention(1_000_000).unwrap();
        assert_eq!(p.log_start_offset(), 40);
        assert_eq!(s.used_bytes(), 0);
        assert_eq!(p.append(&batch(1, 0, 0, None), 0).unwrap().base_offset, 40);

        let q = s
            .open_partition(
                "u",
                0,
                LogConfig {
                    retention_bytes: Some(500),
                    ..small()
                },
            )
            .unwrap();
        for _ in 0..30 {
            q.append(&batch(2, 0, 0, None), 0).unwrap();
        }
        s.enforce_retention(0).unwrap();
        assert!(
            q.size_bytes() <= 500 + 1000,
            "at most one segment over the limit"
        );
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
    }

    #[test]
    fn quota_policies() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(2, 0, 0, None).len() as u64;
        let s = store(dir.path(), Some(one * 5), QuotaPolicy::ProduceReject);
        let p = s.open_partition("t", 0, small()).unwrap();
        for _ in 0..5 {
            p.append(&batch(2, 0, 0, None), 0).unwrap();
        }
        assert!(matches!(
            p.append(&batch(2, 0, 0, None), 0),
            Err(LogError::QuotaExceeded { .. })
        ));
        assert_eq!(p.high_watermark(), 10, "nothing written");

        s.set_quota(Some(one * 5), QuotaPolicy::TimeBase);
        let q = s.open_partition("u", 0, small()).unwrap();
        for i in 0..20 {
            q.append(&batch(2, 10_000 + i, 10_000 + i, None), 0)
                .unwrap();
        }
        assert!(s.over_quota());
        s.enforce_retention(0).unwrap();
        assert!(s.used_bytes() <= one * 5);
        assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        // the oldest data (partition t, timestamps 0) went first
        assert_eq!(p.size_bytes(), 0);
    }

    #[test]
    fn delete_records_and_remove_topic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path(), None, QuotaPolicy::TimeBase);
            let p = s.open_partition("my-topic", 3, small()).unwrap();
            for _ in 0..20 {
                p.append(&batch(2, 0, 0, None), 0).unwrap();
            }
            assert_eq!(p.delete_records_before(25).unwrap(), 25);
            assert!(p.read(24, 10).is_err());
            assert_eq!(offsets(&p.read(25, 1 << 20).unwrap().records)[0], 24);
            assert_eq!(s.used_bytes(), disk_bytes(dir.path()));
        }
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        assert_eq!(
            s.partitions_on_disk().unwrap(),
            vec![("my-topic".to_string(), 3)]
        );
        let p = s.open_partition("my-topic", 3, small()).unwrap();
        assert_eq!(p.log_start_offset(), 25);
        assert_eq!(p.delete_records_before(1000).unwrap(), 40);
        assert_eq!(p.read(40, 10).unwrap().records.len(), 0);
        s.remove_topic("my-topic").unwrap();
        assert_eq!(s.used_bytes(), 0);
        assert!(s.partitions_on_disk().unwrap().is_empty());
        assert!(s.partition("my-topic", 3).is_none());
    }

    #[test]
    fn corrupt_input_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), None, QuotaPolicy::TimeBase);
        let p = s.open_partition("t", 0, small()).unwrap();
        let good = batch(2, 0, 0, None);
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        for input in [
            &b""[..],
            &good[..30],
            &bad[..],
            &[good.clone(), bad.clone()].concat()[..],
        ] {
            assert!(matches!(p.append(input, 0), Err(LogError::CorruptBatch(_))));
        }
        assert_eq!(p.high_watermark(), 0);
        assert_eq!(s.used_bytes(), 0);
        let big = batch(200, 0, 0, None);
        assert!(matches!(
            p.append(&big, 0),
            Err(LogError::MessageTooLarge { .. })
        ));
    }
}
