//! One partition: its segments, log start offset and producer state.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use tracing::{debug, info};

use crate::batch::{split_batches, BatchHeader};
use crate::producer::{ProducerState, SequenceCheck};
use crate::segment::{read_batches, read_header, seek_offset, seek_timestamp, Segment};
use crate::store::Usage;
use crate::{LogConfig, LogError, QuotaPolicy};

const LOG_START_FILE: &str = "log-start-offset";
/// Segments at the end that start-up checks batch by batch; a crash can only have torn
/// the newest writes.
const VERIFIED_TAIL_SEGMENTS: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub log_start_offset: i64,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

pub struct Partition {
    topic: String,
    id: i32,
    dir: PathBuf,
    usage: Arc<Usage>,
    flush_every_append: bool,
    inner: RwLock<Inner>,
}

struct Inner {
    /// Ascending by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    config: LogConfig,
    log_start: i64,
    producers: ProducerState,
    last_append_ms: i64,
}

impl Inner {
    fn active(&self) -> &Segment {
        // Invariant: `segments` is never empty.
        &self.segments[self.segments.len() - 1]
    }

    fn high_watermark(&self) -> i64 {
        self.active().next_offset
    }

    fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Index of the segment holding `offset` (skipping a gap left by a truncated segment).
    fn segment_for(&self, offset: i64) -> usize {
        let mut i = self
            .segments
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1);
        while i + 1 < self.segments.len() && self.segments[i].next_offset <= offset {
            i += 1;
        }
        i
    }
}

fn list_segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name
            .strip_suffix(".log")
            .and_then(|b| b.parse::<i64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn read_log_start(dir: &Path) -> i64 {
    fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_log_start(dir: &Path, offset: i64) -> Result<(), LogError> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    fs::write(&tmp, offset.to_string())?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(LOG_START_FILE))?;
    Ok(())
}

impl Partition {
    pub(crate) fn open(
        dir: PathBuf,
        topic: &str,
        id: i32,
        config: LogConfig,
        usage: Arc<Usage>,
        flush_every_append: bool,
    ) -> Result<Partition, LogError> {
        fs::create_dir_all(&dir)?;
        let interval = config.index_interval_bytes;
        let bases = list_segment_bases(&dir)?;
        let mut log_start = read_log_start(&dir);
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let verify_from = bases.len().saturating_sub(VERIFIED_TAIL_SEGMENTS);
        for (i, &base) in bases.iter().enumerate() {
            segments.push(Segment::open(&dir, base, interval, i >= verify_from)?);
        }
        if segments.is_empty() {
            segments.push(Segment::create(&dir, log_start.max(0), interval)?);
        }
        log_start = log_start.max(segments[0].base);
        let mut inner = Inner {
            segments,
            config,
            log_start,
            producers: ProducerState::default(),
            last_append_ms: 0,
        };
        log_start = log_start.min(inner.high_watermark());
        inner.log_start = log_start;
        inner.last_append_ms = inner.active().mtime_ms();
        inner.producers = rebuild_producers(&dir, &inner)?;
        let size = inner.size();
        usage.used.fetch_add(size, Ordering::SeqCst);
        debug!(
            topic,
            partition = id,
            size,
            log_start,
            high_watermark = inner.high_watermark(),
            "partition opened"
        );
        Ok(Partition {
            topic: topic.to_string(),
            id,
            dir,
            usage,
            flush_every_append,
            inner: RwLock::new(inner),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let batches = split_batches(records)?;
        let mut inner = self.inner.write();
        let segment_bytes = inner.config.segment_bytes.clamp(1, u32::MAX as u64);
        for (h, _) in &batches {
            if h.total_len() as u64 > segment_bytes {
                return Err(LogError::MessageTooLarge {
                    size: h.total_len(),
                    max: segment_bytes as usize,
                });
            }
        }
        let (quota, policy) = *self.usage.quota.lock();
        if let (Some(quota), QuotaPolicy::ProduceReject) = (quota, policy) {
            let used = self.usage.used.load(Ordering::SeqCst);
            if used + records.len() as u64 > quota {
                return Err(LogError::QuotaExceeded { used, quota });
            }
        }
        // Check sequences as if the batches were applied one after another.
        let mut scratch: Option<ProducerState> = None;
        for (h, _) in &batches {
            let state = scratch.as_ref().unwrap_or(&inner.producers);
            if let SequenceCheck::Duplicate { base_offset } = state.check(h)? {
                return Err(LogError::DuplicateSequence { base_offset });
            }
            if batches.len() > 1 {
                let s = scratch.get_or_insert_with(|| inner.producers.clone());
                s.update(h, 0);
            }
        }

        let mut data = records.to_vec();
        let first = inner.high_watermark();
        let mut next = first;
        let mut max_ts = -1i64;
        let mut assigned: Vec<(BatchHeader, i64)> = Vec::with_capacity(batches.len());
        for (h, range) in batches {
            data[range.start..range.start + 8].copy_from_slice(&next.to_be_bytes());
            max_ts = max_ts.max(h.max_timestamp);
            assigned.push((h.clone(), next));
            next += h.record_span() as i64;
        }
        if inner.active().size > 0 && inner.active().size + data.len() as u64 > segment_bytes {
            self.roll(&mut inner)?;
        }
        let last = inner.segments.len() - 1;
        inner.segments[last].append(&data, first, next, max_ts)?;
        for (h, base) in &assigned {
            inner.producers.update(h, *base);
        }
        self.usage
            .used
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        inner.last_append_ms = now_ms;
        if self.flush_every_append {
            inner.active().flush()?;
        }
        Ok(AppendInfo {
            base_offset: first,
            last_offset: next - 1,
            max_timestamp: max_ts,
            log_start_offset: inner.log_start,
            bytes: data.len() as u64,
        })
    }

    /// Starts a new active segment at the high watermark. The old one is synced and the
    /// producer state saved, so start-up never has to re-read closed segments.
    fn roll(&self, inner: &mut Inner) -> Result<(), LogError> {
        let hw = inner.high_watermark();
        inner.active().flush()?;
        if inner.active().size == 0 {
            return Ok(());
        }
        let seg = Segment::create(&self.dir, hw, inner.config.index_interval_bytes)?;
        inner.segments.push(seg);
        inner.producers.save(&self.dir, hw)?;
        debug!(topic = %self.topic, partition = self.id, base = hw, "segment rolled");
        Ok(())
    }

    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchedData, LogError> {
        let inner = self.inner.read();
        let hw = inner.high_watermark();
        let log_start = inner.log_start;
        if offset < log_start || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start,
                high_watermark: hw,
            });
        }
        let empty = FetchedData {
            records: Bytes::new(),
            high_watermark: hw,
            log_start_offset: log_start,
        };
        if offset == hw {
            return Ok(empty);
        }
        let start = inner.segments[inner.segment_for(offset)].lookup(offset);
        // The file is append-only below `start.size`: read it without the lock.
        drop(inner);
        let Some(pos) = seek_offset(&start, offset)? else {
            return Ok(empty);
        };
        let data = read_batches(&start.file, pos, start.size, max_bytes)?;
        Ok(FetchedData {
            records: Bytes::from(data),
            ..empty
        })
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let inner = self.inner.read();
        let Some(seg) = inner.segments.iter().find(|s| s.max_timestamp >= ts) else {
            return Ok(None);
        };
        let start = seg.time_lookup(ts);
        let log_start = inner.log_start;
        drop(inner);
        Ok(seek_timestamp(&start, ts)?.map(|(offset, t)| (offset.max(log_start), t)))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.read().log_start
    }

    pub fn high_watermark(&self) -> i64 {
        self.inner.read().high_watermark()
    }

    pub fn size_bytes(&self) -> u64 {
        self.inner.read().size()
    }

    pub fn last_append_ms(&self) -> i64 {
        self.inner.read().last_append_ms
    }

    pub fn flush(&self) -> Result<(), LogError> {
        let file = self.inner.read().active().file.clone();
        file.sync_data()?;
        Ok(())
    }

    /// Flush and save the producer state (clean shutdown, periodic checkpoints).
    pub(crate) fn checkpoint(&self) -> Result<(), LogError> {
        let inner = self.inner.read();
        inner.active().flush()?;
        inner.producers.save(&self.dir, inner.high_watermark())
    }

    pub fn set_config(&self, config: LogConfig) {
        self.inner.write().config = config;
    }

    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut inner = self.inner.write();
        let offset = offset.min(inner.high_watermark());
        if offset <= inner.log_start {
            return Ok(inner.log_start);
        }
        write_log_start(&self.dir, offset)?;
        inner.log_start = offset;
        while inner.segments[0].next_offset <= offset && inner.segments[0].size > 0 {
            self.delete_first_segment(&mut inner)?;
        }
        info!(topic = %self.topic, partition = self.id, log_start = offset, "records deleted");
        Ok(offset)
    }

    /// Deletes the oldest segment, rolling first when it is the active one. Returns the bytes
    /// freed (0 when there was nothing to delete).
    fn delete_first_segment(&self, inner: &mut Inner) -> Result<u64, LogError> {
        if inner.segments[0].size == 0 {
            return Ok(0);
        }
        if inner.segments.len() == 1 {
            self.roll(inner)?;
        }
        let seg = inner.segments.remove(0);
        seg.delete()?;
        self.usage.used.fetch_sub(seg.size, Ordering::SeqCst);
        inner.log_start = inner.log_start.max(inner.segments[0].base);
        debug!(topic = %self.topic, partition = self.id, base = seg.base, bytes = seg.size, "segment deleted");
        Ok(seg.size)
    }

    /// Time and size retention. Returns the bytes freed.
    pub(crate) fn enforce_retention(&self, now_ms: i64) -> Result<u64, LogError> {
        let mut inner = self.inner.write();
        let mut freed = 0;
        if let Some(ms) = inner.config.retention_ms {
            while inner.segments[0].size > 0
                && inner.segments[0].newest_ms() < now_ms.saturating_sub(ms)
            {
                freed += self.delete_first_segment(&mut inner)?;
            }
        }
        if let Some(limit) = inner.config.retention_bytes {
            // Size retention never empties the active segment.
            while inner.segments.len() > 1 && inner.size() > limit {
                freed += self.delete_first_segment(&mut inner)?;
            }
        }
        Ok(freed)
    }

    /// Newest timestamp of the oldest segment, if it holds data (quota eviction order).
    pub(crate) fn oldest_segment_ms(&self) -> Option<i64> {
        let inner = self.inner.read();
        let first = &inner.segments[0];
        (first.size > 0).then(|| first.newest_ms())
    }

    pub(crate) fn delete_oldest_segment(&self) -> Result<u64, LogError> {
        let mut inner = self.inner.write();
        self.delete_first_segment(&mut inner)
    }
}

/// Producer state as of the log end: the saved snapshot plus the batches written after it.
fn rebuild_producers(dir: &Path, inner: &Inner) -> Result<ProducerState, LogError> {
    let hw = inner.high_watermark();
    let (mut state, from) = match ProducerState::load(dir) {
        Some((state, offset)) if offset <= hw && offset >= inner.segments[0].base => {
            (state, offset)
        }
        _ => (ProducerState::default(), inner.segments[0].base),
    };
    if from >= hw {
        return Ok(state);
    }
    let mut scanned = 0u64;
    for seg in inner.segments.iter().filter(|s| s.next_offset > from) {
        let start = seg.lookup(from);
        let mut pos = start.position;
        while pos < start.size {
            let h = read_header(&start.file, pos, start.size)?;
            if h.base_offset >= from {
                state.update(&h, h.base_offset);
                scanned += 1;
            }
            pos += h.total_len() as u64;
        }
    }
    if scanned > 0 {
        info!(dir = %dir.display(), batches = scanned, "producer state rebuilt from the log tail");
    }
    Ok(state)
}
