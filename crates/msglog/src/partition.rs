//! One partition: its segments, log start offset and idempotent producer state.
//!
//! Locking: `writer` (a mutex) serialises everything that changes the partition (appends,
//! rolls, retention, record deletion, config). `state` (a read-write lock) holds what readers
//! see; only a `writer` holder takes it for writing, and only for short in-memory updates.
//! An appender writes its bytes past the published segment size while holding just a read
//! lock, then publishes the new size and index entries under a brief write lock, so readers
//! never wait for disk writes or fsyncs and appenders never wait for reads.

use std::fs;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tracing::{debug, info, warn};

use crate::batch::{split_batches, BatchHeader, SplitBatch};
use crate::producer::{ProducerState, SequenceCheck};
use crate::sealed_sync::{self, SealedSync};
use crate::segment::{
    self, read_batches, read_batches_cached, remove_if_exists, seek_timestamp, BatchPlacement,
    ReadPlan, ScanError, Scanner, Segment, MAX_REL_OFFSET, MAX_SEGMENT_BYTES,
};
use crate::store::Usage;
use crate::{LogConfig, LogError};

const LOG_START_FILE: &str = "log-start-offset";
/// Chunk size for the producer-state rebuild scan at start-up.
const REBUILD_CHUNK: usize = 1 << 20;

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

/// Where a read lands: at the high watermark (nothing to read), or in a segment: its read
/// plan, the high watermark and the log start.
enum Located {
    AtEnd(FetchedData),
    In(ReadPlan, i64, i64),
}

/// Store-wide settings a partition applies to its segments.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartitionIo {
    pub flush_every_append: bool,
    pub direct: bool,
}

pub struct Partition {
    topic: String,
    id: i32,
    dir: PathBuf,
    usage: Arc<Usage>,
    flush_every_append: bool,
    /// Segments use direct I/O where the file system allows (`LogIo::Direct`).
    direct: bool,
    writer: Mutex<Writer>,
    state: RwLock<State>,
    /// Set once the partition's files are deleted; every later call fails.
    removed: AtomicBool,
    /// Bytes ever appended, and how many of them are known to be on stable storage: lets
    /// `flush` skip the fdatasync of a partition with nothing new.
    appended: AtomicU64,
    synced: AtomicU64,
    /// Rolled segments whose sync (see `sealed_sync`) may not have run yet, oldest first.
    sealed_unsynced: Mutex<Vec<Arc<SealedSync>>>,
}

/// Owned by the `writer` mutex.
struct Writer {
    producers: ProducerState,
    /// Producer state changed since the last snapshot.
    producers_dirty: bool,
}

/// What readers see.
struct State {
    /// Ascending by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    config: LogConfig,
    log_start: i64,
    last_append_ms: i64,
}

impl State {
    fn active(&self) -> &Segment {
        // `segments` is never empty: every removal keeps or first adds an active segment.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn high_watermark(&self) -> i64 {
        self.active().next_offset
    }

    fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// The segment holding `offset`, or the first one after a gap; `offset` < hw.
    fn segment_for(&self, offset: i64) -> &Segment {
        let mut i = self
            .segments
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1);
        while i + 1 < self.segments.len() && self.segments[i].next_offset <= offset {
            i += 1;
        }
        &self.segments[i]
    }

    fn segment_bytes(&self) -> u64 {
        self.config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES)
    }
}

fn list_segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Ok(base) = stem.parse::<i64>() else {
            if ext.ends_with("tmp") {
                remove_if_exists(&path)?;
            }
            continue;
        };
        match ext {
            "log" if base >= 0 => bases.push(base),
            "index" | "timeindex" => index_files.push((base, path)),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            // Left behind when a crash interrupted a segment deletion.
            debug!(file = %path.display(), "removing orphaned index file");
            remove_if_exists(&path)?;
        }
    }
    Ok(bases)
}

fn read_log_start(dir: &Path) -> i64 {
    let path = dir.join(LOG_START_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => match s.trim().parse::<i64>() {
            Ok(v) => v.max(0),
            Err(_) => {
                warn!(file = %path.display(), "ignoring unreadable log start offset");
                0
            }
        },
        Err(_) => 0,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn write_log_start(dir: &Path, offset: i64) -> Result<(), LogError> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    fs::write(&tmp, offset.to_string())?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(LOG_START_FILE))?;
    sync_dir(dir)?;
    Ok(())
}

/// One batch of an append with its assigned offsets.
struct Assigned<'a> {
    header: &'a BatchHeader,
    range: std::ops::Range<usize>,
    base_offset: i64,
}

impl Partition {
    pub(crate) fn open(
        dir: PathBuf,
        topic: &str,
        id: i32,
        config: LogConfig,
        usage: Arc<Usage>,
        io: PartitionIo,
    ) -> Result<Partition, LogError> {
        let PartitionIo {
            flush_every_append,
            direct,
        } = io;
        let created = !dir.exists();
        fs::create_dir_all(&dir)?;
        if created {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let interval = config.index_interval_bytes;
        let bases = list_segment_bases(&dir)?;
        let persisted_start = read_log_start(&dir);
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            segments.push(Segment::open(
                &dir,
                base,
                interval,
                i + 1 == bases.len(),
                direct,
            )?);
        }
        // Empty segments before the active one, and segments wholly below a persisted log
        // start (a crash during retention or delete_records_before) are dropped.
        let last = segments.len().saturating_sub(1);
        let mut kept = Vec::with_capacity(segments.len());
        for (i, seg) in segments.into_iter().enumerate() {
            if i < last && (seg.size == 0 || seg.next_offset <= persisted_start) {
                info!(
                    segment = seg.base,
                    topic,
                    partition = id,
                    "removing segment below the log start"
                );
                seg.delete_files()?;
            } else {
                kept.push(seg);
            }
        }
        let mut segments = kept;
        // Consecutive segments always continue each other's offsets. A gap means a crash cut
        // the end off a rolled segment before its background sync ran (see `sealed_sync`);
        // nothing after that point was acknowledged as durable (a flush syncs older segments
        // first), so the log is cut there, as a torn tail is, to stay a prefix of what was
        // appended.
        if let Some(cut) = segments
            .windows(2)
            .position(|pair| pair[0].next_offset != pair[1].base)
        {
            for seg in segments.drain(cut + 1..) {
                warn!(
                    segment = seg.base,
                    topic,
                    partition = id,
                    "removing a segment that follows a cut-off one"
                );
                seg.delete_files()?;
            }
            if let Some(last) = segments.pop() {
                // Reopened as the active segment (with its index files open for appends).
                let base = last.base;
                drop(last);
                segments.push(Segment::open(&dir, base, interval, true, direct)?);
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(&dir, persisted_start, direct)?);
            // Synced data is only durable once its directory entry is.
            sync_dir(&dir)?;
        }
        let mut state = State {
            segments,
            config,
            log_start: 0,
            last_append_ms: 0,
        };
        let hw = state.high_watermark();
        state.log_start = persisted_start.max(state.segments[0].base).min(hw);
        state.last_append_ms = state
            .segments
            .iter()
            .rev()
            .find(|s| s.size > 0)
            .map_or(0, |s| s.mtime_ms());
        let producers = rebuild_producers(&dir, &state)?;
        let size = state.size();
        usage.add(size);
        debug!(
            topic,
            partition = id,
            size,
            segments = state.segments.len(),
            log_start = state.log_start,
            high_watermark = hw,
            producers = producers.len(),
            "partition opened"
        );
        Ok(Partition {
            topic: topic.to_string(),
            id,
            dir,
            usage,
            flush_every_append,
            direct,
            writer: Mutex::new(Writer {
                producers,
                producers_dirty: false,
            }),
            state: RwLock::new(state),
            removed: AtomicBool::new(false),
            appended: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sealed_unsynced: Mutex::new(Vec::new()),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_open(&self) -> Result<(), LogError> {
        if self.removed.load(Ordering::Acquire) {
            return Err(LogError::UnknownPartition);
        }
        Ok(())
    }

    /// Validates, sequence-checks and appends one or more v2 record batches, rewriting only
    /// their base offsets.
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        self.append_split(records, split_batches(records)?, now_ms)
    }

    /// [`Partition::append`] for a batch [`crate::batch::encode_entries`] built, whose CRC
    /// is not computed again.
    pub fn append_entries(
        &self,
        batch: &crate::batch::EntryBatch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_split(batch, crate::batch::split_entry_batch(batch)?, now_ms)
    }

    fn append_split(
        &self,
        records: &[u8],
        batches: Vec<SplitBatch>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut w = self.writer.lock();
        self.check_open()?;
        let (segment_bytes, hw) = {
            let s = self.state.read();
            (s.segment_bytes(), s.high_watermark())
        };
        let mut assigned = Vec::with_capacity(batches.len());
        let mut next = hw;
        for b in &batches {
            let len = b.header.total_len();
            if len as u64 > segment_bytes {
                return Err(LogError::MessageTooLarge {
                    size: len,
                    max: segment_bytes as usize,
                });
            }
            assigned.push(Assigned {
                header: &b.header,
                range: b.range.clone(),
                base_offset: next,
            });
            next = next
                .checked_add(b.header.offset_span())
                .ok_or_else(|| LogError::CorruptBatch("offsets exhausted".into()))?;
        }
        let pairs: Vec<(&BatchHeader, i64)> =
            assigned.iter().map(|a| (a.header, a.base_offset)).collect();
        if let SequenceCheck::Duplicate { base_offset } = w.producers.check_append(&pairs)? {
            return Err(LogError::DuplicateSequence { base_offset });
        }

        let total = records.len() as u64;
        self.usage.reserve(total)?;
        let mut written = 0u64;
        let result = self.write_batches(&mut w, records, &assigned, now_ms, &mut written);
        if written < total {
            self.usage.sub(total - written);
        }
        result?;
        Ok(AppendInfo {
            base_offset: hw,
            last_offset: next - 1,
            max_timestamp: batches
                .iter()
                .map(|b| b.header.max_timestamp)
                .max()
                .unwrap_or(segment::NO_TIMESTAMP),
            log_start_offset: self.state.read().log_start,
            bytes: total,
        })
    }

    /// Writes the batches in runs that fit the active segment, rolling between runs; each
    /// run is one write and is published (made readable) before the next starts.
    fn write_batches(
        &self,
        w: &mut Writer,
        data: &[u8],
        assigned: &[Assigned<'_>],
        now_ms: i64,
        written: &mut u64,
    ) -> Result<(), LogError> {
        let mut i = 0;
        while i < assigned.len() {
            let s = self.state.read();
            let seg = s.active();
            let segment_bytes = s.segment_bytes();
            let mut j = i;
            let mut run_len = 0u64;
            while let Some(a) = assigned.get(j) {
                let len = a.range.len() as u64;
                let last = a.base_offset + a.header.last_offset_delta as i64;
                let fits =
                    seg.size + run_len + len <= segment_bytes && last - seg.base <= MAX_REL_OFFSET;
                // An empty segment always takes the first batch (it is <= segment_bytes).
                if !(fits || (seg.size == 0 && j == i)) {
                    break;
                }
                run_len += len;
                j += 1;
            }
            if j == i {
                drop(s);
                self.roll(w)?;
                continue;
            }
            let run = &assigned[i..j];
            let (Some(first), Some(last)) = (run.first(), run.last()) else {
                break;
            };
            let placements: Vec<BatchPlacement> = run
                .iter()
                .map(|a| BatchPlacement {
                    len: a.range.len() as u64,
                    base_offset: a.base_offset,
                    last_offset: a.base_offset + a.header.last_offset_delta as i64,
                    max_timestamp: a.header.max_timestamp,
                })
                .collect();
            // The producer's bytes as they are, each batch's first 8 bytes (its base offset)
            // replaced by the one assigned here.
            let base_offsets: Vec<[u8; 8]> =
                run.iter().map(|a| a.base_offset.to_be_bytes()).collect();
            let mut pieces = Vec::with_capacity(run.len() * 2);
            for (a, base) in run.iter().zip(&base_offsets) {
                pieces.push(IoSlice::new(base));
                let rest = data.get(a.range.start + 8..a.range.end).unwrap_or_default();
                pieces.push(IoSlice::new(rest));
            }
            let run_bytes = last.range.end - first.range.start;
            let pending = seg.plan_append(seg.size, &placements, s.config.index_interval_bytes);
            seg.write(&pieces, &pending, self.flush_every_append)?;
            drop(s);
            *written += run_bytes as u64;
            let appended =
                self.appended.fetch_add(run_bytes as u64, Ordering::AcqRel) + run_bytes as u64;
            if self.flush_every_append {
                self.synced.fetch_max(appended, Ordering::AcqRel);
            }
            {
                let mut s = self.state.write();
                s.active_mut().publish(pending);
                s.last_append_ms = now_ms;
            }
            for a in run {
                if w.producers.update(a.header, a.base_offset, now_ms) {
                    w.producers_dirty = true;
                }
            }
            i = j;
        }
        Ok(())
    }

    /// Starts a new active segment at the high watermark (no-op when the active one is
    /// empty). The old segment is synced in the background (see `sealed_sync`; inline under
    /// the every-append policy, whose acknowledgements promise it), and the producer state is
    /// saved so start-up only has to scan the new segment.
    fn roll(&self, w: &mut Writer) -> Result<(), LogError> {
        let (hw, final_entry, sealed_file) = {
            let s = self.state.read();
            let seg = s.active();
            if seg.size == 0 {
                return Ok(());
            }
            let entry = seg.final_time_entry();
            if let Some(e) = entry {
                seg.write_final_time_entry(e)?;
            }
            (s.high_watermark(), entry, seg.file.clone())
        };
        let seg = Segment::create(&self.dir, hw, self.direct)?;
        let sync = SealedSync::new(sealed_file, self.dir.clone());
        if self.flush_every_append {
            sync.run()?;
        } else {
            // Listed before the new segment becomes active, so a `flush` that finds the new
            // segment active also finds this one.
            let mut pending = self.sealed_unsynced.lock();
            pending.retain(|p| !p.is_done());
            pending.push(sync.clone());
        }
        {
            let mut s = self.state.write();
            s.active_mut().seal(final_entry);
            s.segments.push(seg);
        }
        if !self.flush_every_append {
            sealed_sync::submit(sync);
        }
        // The snapshot only shortens the start-up scan: failing it must not fail the append.
        if let Err(e) = self.save_producers(w, hw) {
            warn!(topic = %self.topic, partition = self.id, error = %e, "could not write producer snapshot");
        }
        debug!(topic = %self.topic, partition = self.id, base = hw, "rolled segment");
        Ok(())
    }

    fn save_producers(&self, w: &mut Writer, hw: i64) -> Result<(), LogError> {
        w.producers.save(&self.dir, hw)?;
        w.producers_dirty = false;
        Ok(())
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchedData, LogError> {
        match self.locate(offset)? {
            Located::AtEnd(empty) => Ok(empty),
            Located::In(plan, hw, log_start) => Ok(FetchedData {
                records: read_batches(&plan, offset, max_bytes)?,
                high_watermark: hw,
                log_start_offset: log_start,
            }),
        }
    }

    /// [`Partition::read`] that never waits for the disk: `None` when what it would return is
    /// not all in memory or the page cache. An async caller reads with this first and hands
    /// only a miss to a blocking thread.
    pub fn read_cached(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Option<FetchedData>, LogError> {
        match self.locate(offset)? {
            Located::AtEnd(empty) => Ok(Some(empty)),
            Located::In(plan, hw, log_start) => Ok(read_batches_cached(&plan, offset, max_bytes)?
                .map(|records| FetchedData {
                    records,
                    high_watermark: hw,
                    log_start_offset: log_start,
                })),
        }
    }

    /// Where a read at `offset` goes: nothing to read at the high watermark, else the plan of
    /// its segment (the file is immutable below `plan.size`: read it without the lock).
    fn locate(&self, offset: i64) -> Result<Located, LogError> {
        self.check_open()?;
        let s = self.state.read();
        let hw = s.high_watermark();
        let log_start = s.log_start;
        if offset < log_start || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start,
                high_watermark: hw,
            });
        }
        if offset == hw {
            return Ok(Located::AtEnd(FetchedData {
                records: Bytes::new(),
                high_watermark: hw,
                log_start_offset: log_start,
            }));
        }
        Ok(Located::In(
            s.segment_for(offset).read_plan(offset),
            hw,
            log_start,
        ))
    }

    /// The first batch (at or after the log start) whose max timestamp is >= `ts`: its base
    /// offset (raised to the log start if the batch straddles it) and max timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.check_open()?;
        let (plans, log_start) = {
            let s = self.state.read();
            let log_start = s.log_start;
            let plans: Vec<_> = s
                .segments
                .iter()
                .filter(|seg| seg.next_offset > log_start && seg.max_timestamp >= ts)
                .map(|seg| seg.time_plan(ts, log_start))
                .collect();
            (plans, log_start)
        };
        for plan in &plans {
            if let Some((offset, max_ts)) = seek_timestamp(plan, ts, log_start)? {
                return Ok(Some((offset.max(log_start), max_ts)));
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.read().log_start
    }

    /// The next offset to assign.
    pub fn high_watermark(&self) -> i64 {
        self.state.read().high_watermark()
    }

    pub fn size_bytes(&self) -> u64 {
        self.state.read().size()
    }

    pub fn last_append_ms(&self) -> i64 {
        self.state.read().last_append_ms
    }

    /// The offset where the active segment begins: everything below it sits in sealed
    /// segments, which deleting records can drop whole without rolling a new segment.
    pub fn active_segment_base(&self) -> i64 {
        let s = self.state.read();
        s.segments.last().map_or(s.log_start, |seg| seg.base)
    }

    /// Number of segments (including the active one).
    pub fn segment_count(&self) -> usize {
        self.state.read().segments.len()
    }

    /// fdatasync of whatever was appended since the last sync: rolled segments still waiting
    /// for their background sync first, then the active one.
    pub fn flush(&self) -> Result<(), LogError> {
        let target = self.appended.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= target && self.sealed_unsynced.lock().is_empty() {
            return Ok(());
        }
        // The active segment is read before the pending list: a roll lists the old segment
        // before making the new one active, so data up to `target` is in one or the other.
        let active = self.state.read().active().file.clone();
        let pending: Vec<Arc<SealedSync>> = self.sealed_unsynced.lock().clone();
        for sealed in &pending {
            sealed.run()?;
        }
        self.sealed_unsynced.lock().retain(|p| !p.is_done());
        active.sync_data()?;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Flush, and save the producer state if it changed (clean shutdown, interval flushes).
    pub(crate) fn checkpoint(&self) -> Result<(), LogError> {
        if self.removed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.flush()?;
        let mut w = self.writer.lock();
        if w.producers_dirty && !self.removed.load(Ordering::Acquire) {
            let hw = self.state.read().high_watermark();
            self.save_producers(&mut w, hw)?;
        }
        Ok(())
    }

    pub fn set_config(&self, config: LogConfig) {
        let _w = self.writer.lock();
        self.state.write().config = config;
    }

    /// Moves the log start offset to `offset` (clamped to the high watermark), persists it,
    /// and deletes the segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut w = self.writer.lock();
        self.check_open()?;
        let (hw, current) = {
            let s = self.state.read();
            (s.high_watermark(), s.log_start)
        };
        let target = offset.min(hw);
        if target <= current {
            return Ok(current);
        }
        write_log_start(&self.dir, target)?;
        self.state.write().log_start = target;
        loop {
            let (count, first_next, first_size) = {
                let s = self.state.read();
                (
                    s.segments.len(),
                    s.segments[0].next_offset,
                    s.segments[0].size,
                )
            };
            if first_next > target || first_size == 0 {
                break;
            }
            if count == 1 {
                self.roll(&mut w)?;
            }
            self.delete_first_segment(&mut w)?;
        }
        let log_start = self.state.read().log_start;
        if w.producers.expire(log_start, i64::MIN) > 0 {
            w.producers_dirty = true;
        }
        info!(topic = %self.topic, partition = self.id, log_start, "deleted records before offset");
        Ok(log_start)
    }

    /// Deletes the oldest segment (there must be a newer one). Returns the bytes freed.
    fn delete_first_segment(&self, _w: &mut Writer) -> Result<u64, LogError> {
        {
            let s = self.state.read();
            if s.segments.len() < 2 {
                return Ok(0);
            }
            // Unlink before unpublishing: readers use the open file, never the path.
            s.segments[0].delete_files()?;
        }
        let seg = {
            let mut s = self.state.write();
            let seg = s.segments.remove(0);
            s.log_start = s.log_start.max(s.segments[0].base);
            seg
        };
        self.usage.sub(seg.size);
        debug!(topic = %self.topic, partition = self.id, base = seg.base, bytes = seg.size, "deleted segment");
        Ok(seg.size)
    }

    /// Time and size retention. Returns the bytes freed.
    pub(crate) fn enforce_retention(&self, now_ms: i64) -> Result<u64, LogError> {
        let mut w = self.writer.lock();
        if self.removed.load(Ordering::Acquire) {
            return Ok(0);
        }
        let config = self.state.read().config.clone();
        let mut freed = 0;
        if let Some(ms) = config.retention_ms {
            let cutoff = now_ms.saturating_sub(ms);
            loop {
                let (count, first_size, first_newest) = {
                    let s = self.state.read();
                    let first = &s.segments[0];
                    (s.segments.len(), first.size, first.newest_ms())
                };
                if first_size == 0 || first_newest >= cutoff {
                    break;
                }
                if count == 1 {
                    // The whole partition has expired: keep offsets going in a fresh segment.
                    self.roll(&mut w)?;
                }
                freed += self.delete_first_segment(&mut w)?;
            }
        }
        if let Some(limit) = config.retention_bytes {
            loop {
                let over = {
                    let s = self.state.read();
                    s.segments.len() > 1 && s.size() > limit
                };
                if !over {
                    break;
                }
                freed += self.delete_first_segment(&mut w)?;
            }
        }
        let log_start = self.state.read().log_start;
        let expired = w.producers.expire(log_start, now_ms);
        if expired > 0 {
            w.producers_dirty = true;
            debug!(topic = %self.topic, partition = self.id, expired, "forgot expired producers");
        }
        if freed > 0 {
            info!(topic = %self.topic, partition = self.id, freed, log_start, "retention deleted segments");
        }
        Ok(freed)
    }

    /// The newest timestamp of the oldest segment, if it holds data; `only_inactive` skips
    /// a partition whose only data is in its active segment.
    pub(crate) fn oldest_segment_ms(&self, only_inactive: bool) -> Option<i64> {
        let s = self.state.read();
        let first = &s.segments[0];
        let eligible = first.size > 0 && (!only_inactive || s.segments.len() > 1);
        eligible.then(|| first.newest_ms())
    }

    /// Deletes the oldest segment for the store quota, rolling the active segment first if
    /// it is the only one with data. Returns the bytes freed.
    pub(crate) fn evict_oldest_segment(&self) -> Result<u64, LogError> {
        let mut w = self.writer.lock();
        if self.removed.load(Ordering::Acquire) {
            return Ok(0);
        }
        let (count, first_size) = {
            let s = self.state.read();
            (s.segments.len(), s.segments[0].size)
        };
        if first_size == 0 {
            return Ok(0);
        }
        if count == 1 {
            self.roll(&mut w)?;
        }
        let freed = self.delete_first_segment(&mut w)?;
        info!(topic = %self.topic, partition = self.id, freed, "deleted segment to stay within the storage quota");
        Ok(freed)
    }

    /// Marks the partition removed and returns its size; its files are deleted by the caller.
    pub(crate) fn close_for_removal(&self) -> u64 {
        let _w = self.writer.lock();
        if self.removed.swap(true, Ordering::AcqRel) {
            return 0;
        }
        self.state.read().size()
    }
}

/// Producer state as of the log end: the newest usable snapshot plus the batches after it.
fn rebuild_producers(dir: &Path, state: &State) -> Result<ProducerState, LogError> {
    let hw = state.high_watermark();
    let first_base = state.segments[0].base;
    let (mut producers, from) = match ProducerState::load(dir, hw)? {
        Some((p, offset)) => (p, offset.max(first_base)),
        None => (ProducerState::default(), first_base),
    };
    if from >= hw {
        return Ok(producers);
    }
    // Wall time of these writes is unknown; the file time keeps them from expiring early.
    let seen_ms = state.last_append_ms;
    let mut scanned = 0u64;
    for seg in state.segments.iter().filter(|s| s.next_offset > from) {
        let plan = seg.read_plan(from);
        let mut scanner = Scanner::new(&plan.file, plan.start, plan.size, REBUILD_CHUNK, false);
        loop {
            let h = match scanner.next_batch() {
                Ok(Some((_, h))) => h,
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(e.into()),
                Err(ScanError::Damaged(reason)) => {
                    // Damage inside an older segment (the tail was checked already): the
                    // partition stays usable, reads of that part fail.
                    warn!(dir = %dir.display(), segment = seg.base, reason, "skipping damaged batches while rebuilding producer state");
                    break;
                }
            };
            if h.base_offset >= from {
                producers.update(&h, h.base_offset, seen_ms.max(h.max_timestamp));
                scanned += 1;
            }
        }
    }
    info!(dir = %dir.display(), from, batches = scanned, producers = producers.len(), "rebuilt producer state from the log");
    Ok(producers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::{batch, batch_sized, headers, offsets};
    use crate::store::Usage;
    use crate::QuotaPolicy;

    fn cfg(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            index_interval_bytes: 100,
            retention_ms: None,
            retention_bytes: None,
        }
    }

    fn open(dir: &Path, config: LogConfig) -> (Partition, Arc<Usage>) {
        open_with(dir, config, true)
    }

    fn open_with(dir: &Path, config: LogConfig, direct: bool) -> (Partition, Arc<Usage>) {
        let usage = Arc::new(Usage::new(None, QuotaPolicy::TimeBase));
        let io = PartitionIo {
            flush_every_append: false,
            direct,
        };
        let p = Partition::open(dir.join("t-0"), "t", 0, config, usage.clone(), io).unwrap();
        (p, usage)
    }

    fn log_bytes(dir: &Path) -> u64 {
        segment::partition_log_bytes(dir)
    }

    /// Sizes of the `.log` files: the accounted bytes while no direct write has padded the
    /// active segment (right after opening).
    fn log_file_bytes(dir: &Path) -> u64 {
        logs(dir)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }

    fn logs(dir: &Path) -> Vec<PathBuf> {
        segment::log_files(dir)
    }

    /// All batches from `from` to the end, read in steps of `max_bytes`.
    fn read_all(p: &Partition, from: i64, max_bytes: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut next = from;
        while next < p.high_watermark() {
            let r = p.read(next, max_bytes).unwrap();
            let got = headers(&r.records);
            let last = got.last().unwrap_or_else(|| panic!("no data at {next}"));
            next = last.last_offset() + 1;
            out.extend(got.iter().map(|h| h.base_offset));
        }
        out
    }

    #[test]
    fn reads_resumed_from_hints_return_what_a_fresh_reader_gets() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open_with(dir.path(), cfg(1 << 20), false);
        // Batches of 1 to 8 records of varied sizes, so reads end mid-way and on boundaries.
        for i in 0..300i64 {
            let count = (i % 8 + 1) as i32;
            p.append(
                &batch_sized(count, 1_000 + i, None, 20 + (i % 5) as usize * 37),
                1,
            )
            .unwrap();
        }
        let hw = p.high_watermark();
        // What a read must return, worked out from the log file itself: whole batches from the
        // one holding the offset while they fit in max_bytes, the first one always.
        let files = logs(&dir.path().join("t-0"));
        assert_eq!(files.len(), 1);
        let log = fs::read(&files[0]).unwrap();
        let all = headers(&log);
        let expected = |at: i64, max_bytes: usize| {
            let mut pos = 0;
            let mut i = 0;
            while all[i].last_offset() < at {
                pos += all[i].total_len();
                i += 1;
            }
            let start = pos;
            for h in &all[i..] {
                if pos > start && pos + h.total_len() - start > max_bytes {
                    break;
                }
                pos += h.total_len();
            }
            log[start..pos].to_vec()
        };
        // Six readers (more than a segment keeps hints for) interleaved, each resuming at the
        // offset after what it took, sometimes mid-batch.
        let mut next: Vec<i64> = vec![0, 3, 17, 40, 41, 200];
        let mut reads = 0;
        while next.iter().any(|&n| n < hw) {
            for (r, at) in next.iter_mut().enumerate() {
                if *at >= hw {
                    continue;
                }
                let max_bytes = 150 + r * 90;
                let want = expected(*at, max_bytes);
                let got = p.read(*at, max_bytes).unwrap().records;
                assert_eq!(got, want, "reader {r} at {at}");
                let cached = p.read_cached(*at, max_bytes).unwrap().unwrap().records;
                assert_eq!(cached, want, "cached read, reader {r} at {at}");
                let hs = headers(&got);
                let first = hs.first().unwrap();
                assert!(first.base_offset <= *at && *at <= first.last_offset());
                // Take about two thirds of what came back: the next read starts mid-batch.
                let last = hs.last().unwrap().last_offset();
                *at = (*at + (last - *at + 1) * 2 / 3).max(*at + 1);
                reads += 1;
            }
        }
        assert!(reads > 100);
    }

    #[test]
    fn cached_reads_answer_what_blocking_reads_do_once_the_data_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        // Through the page cache (direct-I/O segments are read from the disk, never cached).
        let (p, _) = open_with(dir.path(), cfg(1000), false);
        for i in 0..60 {
            p.append(&batch(3, 1000 + i, None), 5).unwrap();
        }
        // Just written: every segment is in the page cache.
        for (offset, max) in [(0, 1), (0, 1 << 20), (51, 250), (179, 100), (180, 100)] {
            let blocking = p.read(offset, max).unwrap();
            let cached = p
                .read_cached(offset, max)
                .unwrap()
                .unwrap_or_else(|| panic!("{offset}/{max} was not served from the cache"));
            assert_eq!(cached.records, blocking.records, "{offset}/{max}");
            assert_eq!(cached.high_watermark, blocking.high_watermark);
        }
        assert!(matches!(
            p.read_cached(181, 100),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn entry_batches_append_like_any_batch_and_read_back_with_their_crc() {
        let dir = tempfile::tempdir().unwrap();
        let (p, usage) = open(dir.path(), cfg(1000));
        for i in 0..40i64 {
            let body = vec![i as u8; 30];
            let built = crate::batch::encode_entries(&[&body, b"x"], 100 + i);
            let info = p.append_entries(&built, 7).unwrap();
            assert_eq!((info.base_offset, info.last_offset), (i * 2, i * 2 + 1));
            assert_eq!(info.bytes, built.len() as u64);
        }
        assert!(p.segment_count() > 1);
        let r = p.read(10, 1 << 20).unwrap();
        let entries = crate::batch::decode_entries(&r.records).unwrap();
        assert_eq!(entries[0], (10, &[5u8; 30][..]));
        assert_eq!(entries[1], (11, &b"x"[..]));
        // What was skipped on the way in holds on the way out: each stored batch's CRC.
        for b in split_batches(&r.records).unwrap() {
            assert_eq!(b.header.records_count, 2);
        }
        assert_eq!(usage.used(), log_bytes(&p.dir));
    }

    #[test]
    fn append_read_round_trip_across_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let (p, usage) = open(dir.path(), cfg(1000));
        let mut bases = Vec::new();
        for i in 0..60 {
            let info = p.append(&batch(3, 1000 + i, None), 5).unwrap();
            assert_eq!(info.base_offset, i * 3);
            assert_eq!(info.last_offset, i * 3 + 2);
            assert_eq!(info.max_timestamp, 1000 + i);
            bases.push(info.base_offset);
        }
        assert_eq!(p.high_watermark(), 180);
        assert!(p.segment_count() > 5);
        assert_eq!(p.last_append_ms(), 5);
        for max in [1, 100, 250, 1000, 1 << 20] {
            assert_eq!(read_all(&p, 0, max), bases, "max_bytes {max}");
        }
        // the stored bytes are the producer's, only the base offset differs
        let original = batch(3, 1000 + 17, None);
        let r = p.read(51, 1).unwrap();
        assert_eq!(&r.records[8..], &original[8..]);
        assert_eq!(r.high_watermark, 180);
        assert_eq!(usage.used(), log_bytes(&p.dir));
        assert_eq!(p.size_bytes(), log_bytes(&p.dir));
    }

    #[test]
    fn direct_and_buffered_io_share_one_log_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut bases = Vec::new();
        // Alternate the modes across reopens: each continues the other's segments.
        for (round, direct) in [false, true, false, true].into_iter().enumerate() {
            let (p, usage) = open_with(dir.path(), cfg(1000), direct);
            assert_eq!(read_all(&p, 0, 700), bases, "round {round}");
            for i in 0..25 {
                let info = p
                    .append(&batch(1 + i % 3, 1000 + i as i64, None), 5)
                    .unwrap();
                bases.push(info.base_offset);
                // Readable at once, including the batch just appended.
                assert_eq!(read_all(&p, info.base_offset, 1 << 20), [info.base_offset]);
            }
            assert_eq!(read_all(&p, 0, 300), bases, "round {round}");
            assert_eq!(usage.used(), log_bytes(&p.dir));
            let pdir = p.dir.clone();
            drop(p);
            // Closed logs hold exactly their batches, in either mode.
            assert_eq!(usage.used(), log_file_bytes(&pdir));
        }
    }

    #[test]
    fn mid_batch_offsets_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1 << 20));
        for _ in 0..10 {
            p.append(&batch(5, 0, None), 0).unwrap();
        }
        for offset in 0..50 {
            let r = p.read(offset, 1).unwrap();
            assert_eq!(offsets(&r.records), vec![offset - offset % 5]);
        }
        assert!(p.read(50, 100).unwrap().records.is_empty());
        for bad in [51, 1000, -1, i64::MIN, i64::MAX] {
            assert!(matches!(
                p.read(bad, 100),
                Err(LogError::OffsetOutOfRange { requested, log_start: 0, high_watermark: 50 }) if requested == bad
            ));
        }
        // max_bytes smaller than one batch still returns it whole; two fit exactly
        let one = batch(5, 0, None).len();
        assert_eq!(offsets(&p.read(7, 0).unwrap().records), vec![5]);
        assert_eq!(offsets(&p.read(7, 2 * one).unwrap().records), vec![5, 10]);
        assert_eq!(offsets(&p.read(7, 2 * one - 1).unwrap().records), vec![5]);
    }

    #[test]
    fn large_batches_and_multi_batch_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (p, usage) = open(dir.path(), cfg(10_000));
        let big = batch_sized(4, 7, None, 3000);
        assert!(matches!(
            p.append(&big, 0),
            Err(LogError::MessageTooLarge { max: 10_000, .. })
        ));
        let mid = batch_sized(2, 7, None, 2000);
        // five 4 KB batches in one request: split over three segments
        let many: Vec<u8> = (0..5).flat_map(|_| mid.clone()).collect();
        let info = p.append(&many, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 9));
        assert_eq!(p.segment_count(), 3);
        assert_eq!(read_all(&p, 0, 1), vec![0, 2, 4, 6, 8]);
        assert_eq!(offsets(&p.read(9, 100).unwrap().records), vec![8]);
        assert_eq!(usage.used(), log_bytes(&p.dir));
    }

    #[test]
    fn corrupt_input_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (p, usage) = open(dir.path(), cfg(1000));
        let good = batch(2, 0, None);
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let mut magic = good.clone();
        magic[16] = 1;
        for input in [
            Vec::new(),
            good[..30].to_vec(),
            good[..good.len() - 1].to_vec(),
            bad.clone(),
            magic,
            [good.clone(), bad].concat(),
            [good.clone(), vec![0; 3]].concat(),
        ] {
            assert!(matches!(
                p.append(&input, 0),
                Err(LogError::CorruptBatch(_))
            ));
        }
        assert_eq!(p.high_watermark(), 0);
        assert_eq!(usage.used(), 0);
        assert_eq!(log_bytes(&p.dir), 0);
    }

    #[test]
    fn offset_for_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1000));
        assert_eq!(p.offset_for_timestamp(0).unwrap(), None);
        // timestamps 100, 110, ..., with one out-of-order batch
        for i in 0..40 {
            let ts = if i == 20 { 50 } else { 100 + i * 10 };
            p.append(&batch(2, ts, None), 0).unwrap();
        }
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some((0, 100)));
        assert_eq!(p.offset_for_timestamp(100).unwrap(), Some((0, 100)));
        assert_eq!(p.offset_for_timestamp(101).unwrap(), Some((2, 110)));
        assert_eq!(p.offset_for_timestamp(295).unwrap(), Some((42, 310)));
        assert_eq!(p.offset_for_timestamp(490).unwrap(), Some((78, 490)));
        assert_eq!(p.offset_for_timestamp(491).unwrap(), None);
        // below the log start: the first batch at or after it
        p.delete_records_before(31).unwrap();
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some((31, 250)));
        drop(p);
        let (p, _) = open(dir.path(), cfg(1000));
        assert_eq!(p.offset_for_timestamp(295).unwrap(), Some((42, 310)));
        assert_eq!(p.offset_for_timestamp(490).unwrap(), Some((78, 490)));
    }

    #[test]
    fn reopen_preserves_offsets_and_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1000));
        for i in 0..30 {
            p.append(&batch(2, i, None), 0).unwrap();
        }
        let before = read_all(&p, 0, 1 << 20);
        drop(p);
        let (p, usage) = open(dir.path(), cfg(1000));
        assert_eq!(p.high_watermark(), 60);
        assert_eq!(read_all(&p, 0, 300), before);
        assert!(p.last_append_ms() > 0, "mtime after recovery");
        assert_eq!(usage.used(), log_bytes(&p.dir));
        assert_eq!(p.append(&batch(1, 0, None), 0).unwrap().base_offset, 60);
    }

    #[test]
    fn recovery_from_torn_write_and_bad_crc() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1 << 20));
        for i in 0..10 {
            p.append(&batch(2, i, None), 0).unwrap();
        }
        let pdir = p.dir.clone();
        drop(p);
        let log = logs(&pdir).pop().unwrap();
        let len = fs::metadata(&log).unwrap().len();
        // torn write: half of the last batch
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let (p, usage) = open(dir.path(), cfg(1 << 20));
        assert_eq!(p.high_watermark(), 18);
        assert_eq!(usage.used(), log_bytes(&pdir));
        assert_eq!(p.append(&batch(2, 50, None), 0).unwrap().base_offset, 18);
        drop(p);
        // one flipped byte in the last batch's records
        let mut raw = fs::read(&log).unwrap();
        let n = raw.len();
        raw[n - 3] ^= 0xff;
        fs::write(&log, raw).unwrap();
        let (p, usage) = open(dir.path(), cfg(1 << 20));
        assert_eq!(p.high_watermark(), 18);
        assert_eq!(offsets(&p.read(17, 1 << 20).unwrap().records), vec![16]);
        assert_eq!(usage.used(), log_bytes(&pdir));
        assert_eq!(p.offset_for_timestamp(9).unwrap(), None);
        assert_eq!(p.offset_for_timestamp(8).unwrap(), Some((16, 8)));
    }

    #[test]
    fn rolled_segments_are_synced_by_flush_or_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1000));
        for i in 0..80 {
            p.append(&batch(3, i, None), 0).unwrap();
        }
        assert!(p.segment_count() > 3);
        // A flush leaves nothing pending: it ran what the background thread had not.
        p.flush().unwrap();
        assert!(p.sealed_unsynced.lock().is_empty());
        assert_eq!(
            p.synced.load(Ordering::Acquire),
            p.appended.load(Ordering::Acquire)
        );
        // Without a flush the background thread gets to them.
        for i in 0..80 {
            p.append(&batch(3, i, None), 0).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.sealed_unsynced.lock().iter().any(|s| !s.is_done()) {
            assert!(
                std::time::Instant::now() < deadline,
                "background sync never ran"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn recovery_cuts_the_log_after_a_cut_off_rolled_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1000));
        for i in 0..40 {
            p.append(&batch(2, 100 + i, None), 0).unwrap();
        }
        let pdir = p.dir.clone();
        assert!(p.segment_count() >= 4);
        drop(p);
        // A power loss took the end of the second segment, but later ones reached the disk.
        let second = logs(&pdir)[1].clone();
        let len = fs::metadata(&second).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&second)
            .unwrap()
            .set_len(len - 30)
            .unwrap();
        let (p, usage) = open(dir.path(), cfg(1000));
        assert_eq!(p.segment_count(), 2);
        assert_eq!(logs(&pdir).len(), 2);
        let hw = p.high_watermark();
        assert_eq!(usage.used(), log_bytes(&pdir));
        // The log continues from there, readable from the start, and keeps working.
        assert_eq!(p.append(&batch(2, 500, None), 0).unwrap().base_offset, hw);
        let all = read_all(&p, 0, 1 << 20);
        assert_eq!(all.last(), Some(&hw));
        assert!(all.windows(2).all(|w| w[1] == w[0] + 2));
        drop(p);
        let (p, _) = open(dir.path(), cfg(1000));
        assert_eq!(p.high_watermark(), hw + 2);
    }

    #[test]
    fn recovery_rebuilds_deleted_and_corrupt_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1000));
        for i in 0..40 {
            p.append(&batch(2, 100 + i, None), 0).unwrap();
        }
        let pdir = p.dir.clone();
        let expected = read_all(&p, 0, 1);
        drop(p);
        let all = logs(&pdir);
        assert!(all.len() > 2);
        fs::remove_file(all[0].with_extension("index")).unwrap();
        fs::remove_file(all[1].with_extension("timeindex")).unwrap();
        let last = all.last().unwrap();
        fs::write(last.with_extension("index"), b"12345").unwrap();
        fs::write(last.with_extension("timeindex"), [0xffu8; 24]).unwrap();
        let (p, usage) = open(dir.path(), cfg(1000));
        assert_eq!(p.high_watermark(), 80);
        assert_eq!(read_all(&p, 0, 1), expected);
        for i in 0..40 {
            assert_eq!(
                p.offset_for_timestamp(100 + i).unwrap(),
                Some((i * 2, 100 + i))
            );
        }
        assert_eq!(usage.used(), log_bytes(&pdir));
        assert!(all[0].with_extension("index").exists());
        // an index entry pointing beyond the file
        let mut idx = fs::read(last.with_extension("index")).unwrap();
        idx.extend_from_slice(&[0, 0, 0, 99, 0, 1, 0, 0]);
        fs::write(last.with_extension("index"), idx).unwrap();
        drop(p);
        let (p, _) = open(dir.path(), cfg(1000));
        assert_eq!(read_all(&p, 0, 1), expected);
    }

    #[test]
    fn idempotence_survives_reopen_with_and_without_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1000));
        p.append(&batch(2, 0, Some((5, 0, 0))), 0).unwrap();
        p.append(&batch(2, 0, Some((5, 0, 2))), 0).unwrap();
        assert!(matches!(
            p.append(&batch(2, 0, Some((5, 0, 2))), 0),
            Err(LogError::DuplicateSequence { base_offset: 2 })
        ));
        assert!(matches!(
            p.append(&batch(1, 0, Some((5, 0, 9))), 0),
            Err(LogError::OutOfOrderSequence {
                expected: 4,
                got: 9
            })
        ));
        assert_eq!(p.high_watermark(), 4);
        drop(p); // no snapshot: like kill -9
        let (p, _) = open(dir.path(), cfg(1000));
        assert!(matches!(
            p.append(&batch(2, 0, Some((5, 0, 2))), 0),
            Err(LogError::DuplicateSequence { base_offset: 2 })
        ));
        assert!(matches!(
            p.append(&batch(1, 0, Some((5, 0, 9))), 0),
            Err(LogError::OutOfOrderSequence {
                expected: 4,
                got: 9
            })
        ));
        // many more batches: segments roll and snapshots are taken
        for i in 0..40 {
            p.append(&batch(1, 0, Some((5, 0, 4 + i))), 0).unwrap();
        }
        assert!(p.segment_count() > 2);
        p.checkpoint().unwrap();
        p.append(&batch(1, 0, Some((5, 0, 44))), 0).unwrap();
        p.append(&batch(1, 0, Some((6, 3, 100))), 0).unwrap();
        drop(p);
        let (p, _) = open(dir.path(), cfg(1000));
        assert!(matches!(
            p.append(&batch(1, 0, Some((5, 0, 44))), 0),
            Err(LogError::DuplicateSequence { base_offset: 44 })
        ));
        assert!(matches!(
            p.append(&batch(1, 0, Some((5, 0, 43))), 0),
            Err(LogError::DuplicateSequence { base_offset: 43 })
        ));
        assert!(matches!(
            p.append(&batch(1, 0, Some((6, 2, 101))), 0),
            Err(LogError::InvalidProducerEpoch { current: 3, got: 2 })
        ));
        assert!(matches!(
            p.append(&batch(1, 0, Some((6, 3, 102))), 0),
            Err(LogError::OutOfOrderSequence {
                expected: 101,
                got: 102
            })
        ));
        assert_eq!(
            p.append(&batch(1, 0, Some((6, 3, 101))), 0)
                .unwrap()
                .base_offset,
            46
        );
        // a damaged snapshot falls back to scanning the log
        drop(p);
        for snap in fs::read_dir(dir.path().join("t-0")).unwrap() {
            let path = snap.unwrap().path();
            if path.extension().is_some_and(|x| x == "snapshot") {
                fs::write(&path, b"junk").unwrap();
            }
        }
        let (p, _) = open(dir.path(), cfg(1000));
        assert!(matches!(
            p.append(&batch(1, 0, Some((6, 3, 101))), 0),
            Err(LogError::DuplicateSequence { base_offset: 46 })
        ));
    }

    #[test]
    fn truncation_below_a_snapshot_discards_it() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(1 << 20));
        p.append(&batch(1, 0, Some((8, 0, 0))), 0).unwrap();
        p.append(&batch(1, 0, Some((8, 0, 1))), 0).unwrap();
        p.checkpoint().unwrap();
        let pdir = p.dir.clone();
        drop(p);
        let log = logs(&pdir).pop().unwrap();
        let len = fs::metadata(&log).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(len - 1).unwrap();
        let (p, _) = open(dir.path(), cfg(1 << 20));
        assert_eq!(p.high_watermark(), 1);
        // sequence 1 was lost with the torn batch: it is new again, not a duplicate
        assert_eq!(
            p.append(&batch(1, 0, Some((8, 0, 1))), 0)
                .unwrap()
                .base_offset,
            1
        );
    }

    #[test]
    fn retention_by_time_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = cfg(1000);
        config.retention_ms = Some(1000);
        let (p, usage) = open(dir.path(), config.clone());
        for i in 0..30 {
            p.append(&batch(2, i * 100, None), 0).unwrap();
        }
        let before = usage.used();
        // now = 2500: segments whose newest record is before 1500 go
        let freed = p.enforce_retention(2500).unwrap();
        assert!(freed > 0);
        assert_eq!(usage.used(), before - freed);
        assert_eq!(usage.used(), log_bytes(&p.dir));
        let start = p.log_start_offset();
        assert!(start > 0 && start <= 30, "{start}");
        assert!(matches!(
            p.read(start - 1, 10),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(offsets(&p.read(start, 1).unwrap().records), vec![start]);
        // nothing else is old enough
        assert_eq!(p.enforce_retention(2500).unwrap(), 0);
        // everything expired: even the active segment goes, offsets continue
        p.enforce_retention(1_000_000).unwrap();
        assert_eq!(p.log_start_offset(), 60);
        assert_eq!(p.high_watermark(), 60);
        assert_eq!(usage.used(), 0);
        assert_eq!(log_bytes(&p.dir), 0);
        assert_eq!(p.segment_count(), 1);
        assert_eq!(p.append(&batch(1, 0, None), 0).unwrap().base_offset, 60);
        drop(p);
        let (p, _) = open(dir.path(), config);
        assert_eq!((p.log_start_offset(), p.high_watermark()), (60, 61));

        let dir = tempfile::tempdir().unwrap();
        let mut config = cfg(1000);
        config.retention_bytes = Some(2500);
        let (q, usage) = open(dir.path(), config);
        for _ in 0..60 {
            q.append(&batch(2, 0, None), 0).unwrap();
        }
        q.enforce_retention(0).unwrap();
        assert!(q.size_bytes() <= 2500, "{}", q.size_bytes());
        assert!(q.size_bytes() > 1500);
        assert_eq!(usage.used(), log_bytes(&q.dir));
        assert_eq!(
            read_all(&q, q.log_start_offset(), 1 << 20).last(),
            Some(&118)
        );
    }

    #[test]
    fn retention_without_timestamps_uses_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = cfg(1000);
        config.retention_ms = Some(60_000);
        let (p, _) = open(dir.path(), config);
        for _ in 0..20 {
            p.append(&batch(1, -1, None), 0).unwrap();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(p.enforce_retention(now).unwrap(), 0);
        assert!(p.enforce_retention(now + 120_000).unwrap() > 0);
        assert_eq!(p.size_bytes(), 0);
    }

    #[test]
    fn delete_records_before_persists() {
        let dir = tempfile::tempdir().unwrap();
        let (p, usage) = open(dir.path(), cfg(1000));
        for _ in 0..30 {
            p.append(&batch(2, 0, None), 0).unwrap();
        }
        let segments = p.segment_count();
        assert_eq!(p.delete_records_before(25).unwrap(), 25);
        assert!(p.segment_count() < segments);
        assert!(matches!(
            p.read(24, 10),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(offsets(&p.read(25, 1).unwrap().records), vec![24]);
        assert_eq!(p.delete_records_before(10).unwrap(), 25, "never moves back");
        assert_eq!(usage.used(), log_bytes(&p.dir));
        drop(p);
        let (p, usage) = open(dir.path(), cfg(1000));
        assert_eq!(p.log_start_offset(), 25);
        assert!(matches!(
            p.read(24, 10),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(p.delete_records_before(1000).unwrap(), 60);
        assert!(p.read(60, 10).unwrap().records.is_empty());
        assert_eq!(usage.used(), 0);
        drop(p);
        let (p, _) = open(dir.path(), cfg(1000));
        assert_eq!((p.log_start_offset(), p.high_watermark()), (60, 60));
    }

    #[test]
    fn flush_policies() {
        let dir = tempfile::tempdir().unwrap();
        let usage = Arc::new(Usage::new(None, QuotaPolicy::TimeBase));
        let io = PartitionIo {
            flush_every_append: true,
            direct: true,
        };
        let p = Partition::open(dir.path().join("x-1"), "x", 1, cfg(1000), usage, io).unwrap();
        p.append(&batch(1, 0, None), 0).unwrap();
        assert_eq!(
            p.synced.load(Ordering::Acquire),
            p.appended.load(Ordering::Acquire)
        );
        p.flush().unwrap();
        let (q, _) = open(dir.path(), cfg(1000));
        q.append(&batch(1, 0, None), 0).unwrap();
        assert!(q.synced.load(Ordering::Acquire) < q.appended.load(Ordering::Acquire));
        q.flush().unwrap();
        assert_eq!(
            q.synced.load(Ordering::Acquire),
            q.appended.load(Ordering::Acquire)
        );
    }

    /// Deterministic xorshift, enough to shake inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mangled_producer_input_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let (p, usage) = open(dir.path(), cfg(2000));
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut input = [batch(2, 5, Some((1, 0, 0))), batch(1, 6, None)].concat();
            match rng.below(4) {
                0 => {
                    let at = rng.below(input.len());
                    input[at] = rng.next() as u8;
                }
                1 => input.truncate(rng.below(input.len())),
                2 => {
                    // a plausible header with a random length field
                    let len = rng.next() as i32;
                    input[8..12].copy_from_slice(&len.to_be_bytes());
                }
                _ => input.extend((0..rng.below(80)).map(|_| rng.next() as u8)),
            }
            if p.append(&input, 0).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted < 3000);
        assert_eq!(usage.used(), log_bytes(&p.dir));
        let all = read_all(&p, 0, 1 << 20);
        assert_eq!(all.len(), 2 * accepted);
    }

    #[test]
    fn garbage_on_disk_never_panics() {
        let mut rng = Rng(42);
        for round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let (p, _) = open(dir.path(), cfg(1500));
            for i in 0..30 {
                p.append(&batch(1 + (i % 3) as i32, i, None), 0).unwrap();
            }
            let pdir = p.dir.clone();
            drop(p);
            let files: Vec<PathBuf> = fs::read_dir(&pdir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let victim = &files[rng.below(files.len())];
            let mut raw = fs::read(victim).unwrap();
            match round % 3 {
                0 if !raw.is_empty() => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(raw.len());
                        raw[at] = rng.next() as u8;
                    }
                }
                1 => raw.truncate(rng.below(raw.len() + 1)),
                _ => raw.extend((0..rng.below(200)).map(|_| rng.next() as u8)),
            }
            fs::write(victim, raw).unwrap();
            let (p, usage) = open(dir.path(), cfg(1500));
            assert!(p.high_watermark() <= 60);
            // Bit rot in the middle of a segment is not found at start-up (only the tail
            // is checked), so the file sizes are what is accounted.
            assert_eq!(usage.used(), log_file_bytes(&pdir));
            // whatever survived reads as whole batches (bit rot inside an older segment
            // is not CRC-checked on the read path: consumers check CRCs)
            let mut next = p.log_start_offset();
            while next < p.high_watermark() {
                match p.read(next, 1 << 20) {
                    Ok(r) => {
                        let mut rest = &r.records[..];
                        let mut last = None;
                        while !rest.is_empty() {
                            let h = BatchHeader::parse(rest).unwrap();
                            rest = &rest[h.total_len()..];
                            last = Some(h);
                        }
                        match last {
                            Some(h) => next = h.last_offset() + 1,
                            None => break,
                        }
                    }
                    Err(LogError::CorruptBatch(_)) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let _ = p.offset_for_timestamp(10);
            p.append(&batch(1, 0, None), 0).unwrap();
        }
    }

    #[test]
    fn reads_race_retention_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = cfg(2000);
        config.retention_bytes = Some(6000);
        let (p, usage) = open(dir.path(), config);
        let p = Arc::new(p);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..2000 {
                    p.append(&batch(2, i, None), i).unwrap();
                }
            })
        };
        let cleaner = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    p.enforce_retention(0).unwrap();
                    std::thread::sleep(std::time::Duration::from_micros(300));
                    n += 1;
                    if n % 50 == 0 {
                        p.delete_records_before(p.high_watermark() - 20).unwrap();
                    }
                }
            })
        };
        let mut next = 0;
        while next < 4000 {
            match p.read(next, 500) {
                Ok(r) => {
                    if let Some(h) = headers(&r.records).last() {
                        assert!(r.records.len() <= 500 || headers(&r.records).len() == 1);
                        next = h.last_offset() + 1;
                    }
                }
                Err(LogError::OffsetOutOfRange { log_start, .. }) => {
                    assert!(log_start > next);
                    next = log_start;
                }
                Err(e) => panic!("{e}"),
            }
        }
        writer.join().unwrap();
        stop.store(true, Ordering::Release);
        cleaner.join().unwrap();
        p.enforce_retention(0).unwrap();
        assert!(p.size_bytes() <= 6000);
        assert_eq!(usage.used(), log_bytes(&p.dir));
    }

    #[test]
    fn concurrent_readers_and_appender() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = open(dir.path(), cfg(20_000));
        let p = Arc::new(p);
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    p.append(&batch(2, i, None), 0).unwrap();
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut next = 0;
                    while next < 1000 {
                        let r = p.read(next, 700).unwrap();
                        let got = offsets(&r.records);
                        if let Some(&first) = got.first() {
                            assert_eq!(first, next);
                            next = got.last().unwrap() + 2;
                        }
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    }
}
