//! One segment: a log file of record batches plus its sparse offset and time indexes.
//!
//! The log file is only ever appended to (with positional writes), so bytes below the
//! recorded size never change: readers copy `(file, position, size)` under the partition
//! lock and read without it.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::batch::{validate_crc, BatchHeader, HEADER_LEN};
use crate::LogError;

const INDEX_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;
/// Recovery reads the log in chunks of this size.
const SCAN_CHUNK: usize = 8 * 1024 * 1024;

pub(crate) fn file_name(base: i64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

pub(crate) struct Segment {
    pub base: i64,
    pub file: Arc<File>,
    pub size: u64,
    /// Offset after the last batch (`base` when empty).
    pub next_offset: i64,
    /// Largest batch max timestamp in the segment; -1 when it has none.
    pub max_timestamp: i64,
    log_path: PathBuf,
    /// (offset - base, file position), ascending.
    index: Vec<(u32, u32)>,
    index_file: File,
    /// (running max timestamp, offset - base of the first batch of that append), ascending.
    time_index: Vec<(i64, u32)>,
    time_file: File,
    interval: u64,
    bytes_since_index: u64,
    bytes_since_time: u64,
}

/// Where a reader starts: everything it needs without the partition lock.
#[derive(Clone)]
pub(crate) struct ReadStart {
    pub file: Arc<File>,
    pub position: u64,
    pub size: u64,
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl Segment {
    pub fn create(dir: &Path, base: i64, interval: u64) -> Result<Segment, LogError> {
        let log_path = dir.join(file_name(base, "log"));
        let file = open_rw(&log_path)?;
        file.set_len(0)?;
        let index_file = open_rw(&dir.join(file_name(base, "index")))?;
        index_file.set_len(0)?;
        let time_file = open_rw(&dir.join(file_name(base, "timeindex")))?;
        time_file.set_len(0)?;
        Ok(Segment {
            base,
            file: Arc::new(file),
            size: 0,
            next_offset: base,
            max_timestamp: -1,
            log_path,
            index: Vec::new(),
            index_file,
            time_index: Vec::new(),
            time_file,
            interval: interval.max(1),
            bytes_since_index: 0,
            bytes_since_time: 0,
        })
    }

    /// Opens an existing segment. With `verify`, every batch is checked (CRC, offsets) and a
    /// torn or corrupt tail is cut off; indexes are rebuilt from the log. Without it, the
    /// indexes are trusted when they are consistent and rebuilt otherwise.
    pub fn open(dir: &Path, base: i64, interval: u64, verify: bool) -> Result<Segment, LogError> {
        let log_path = dir.join(file_name(base, "log"));
        let file = open_rw(&log_path)?;
        let size = file.metadata()?.len();
        let index_path = dir.join(file_name(base, "index"));
        let time_path = dir.join(file_name(base, "timeindex"));
        let index_file = open_rw(&index_path)?;
        let time_file = open_rw(&time_path)?;
        let mut seg = Segment {
            base,
            file: Arc::new(file),
            size,
            next_offset: base,
            max_timestamp: -1,
            log_path,
            index: Vec::new(),
            index_file,
            time_index: Vec::new(),
            time_file,
            interval: interval.max(1),
            bytes_since_index: 0,
            bytes_since_time: 0,
        };
        let loaded = if verify { None } else { seg.load_indexes() };
        match loaded {
            Some(()) => seg.recompute_tail()?,
            None => seg.rebuild(verify, dir)?,
        }
        Ok(seg)
    }

    /// Reads both index files; `None` if either is inconsistent.
    fn load_indexes(&mut self) -> Option<()> {
        let raw = read_all(&self.index_file).ok()?;
        if raw.len() % INDEX_ENTRY != 0 {
            return None;
        }
        let mut index = Vec::with_capacity(raw.len() / INDEX_ENTRY);
        for e in raw.chunks_exact(INDEX_ENTRY) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if pos as u64 >= self.size || index.last().is_some_and(|&(r, p)| rel <= r || pos <= p) {
                return None;
            }
            index.push((rel, pos));
        }
        if self.size > 0 && index.first().map(|&(r, p)| (r, p)) != Some((0, 0)) {
            return None;
        }
        let raw = read_all(&self.time_file).ok()?;
        if raw.len() % TIME_ENTRY != 0 {
            return None;
        }
        let mut time_index = Vec::with_capacity(raw.len() / TIME_ENTRY);
        for e in raw.chunks_exact(TIME_ENTRY) {
            let ts = i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if time_index.last().is_some_and(|&(t, r)| ts <= t || rel < r) {
                return None;
            }
            time_index.push((ts, rel));
        }
        self.index = index;
        self.time_index = time_index;
        Some(())
    }

    /// With trusted indexes: finds the end offset and the newest timestamp by walking the
    /// batch headers after the last index entries.
    fn recompute_tail(&mut self) -> Result<(), LogError> {
        let from_index = self.index.last().map(|&(_, p)| p as u64).unwrap_or(0);
        let from_time = match self.time_index.last() {
            Some(&(ts, rel)) => {
                self.max_timestamp = ts;
                self.lookup(self.base + rel as i64).position
            }
            None => 0,
        };
        let mut pos = from_index.min(from_time);
        while pos < self.size {
            let h = read_header(&self.file, pos, self.size)?;
            self.next_offset = h.last_offset() + 1;
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
            pos += h.total_len() as u64;
        }
        if pos != self.size {
            return Err(LogError::CorruptBatch(format!(
                "{}: last batch ends at {pos}, file has {} bytes",
                self.log_path.display(),
                self.size
            )));
        }
        Ok(())
    }

    /// Scans the whole log, optionally checking every CRC, truncates at the first bad batch
    /// and rewrites both indexes.
    fn rebuild(&mut self, verify: bool, dir: &Path) -> Result<(), LogError> {
        self.index.clear();
        self.time_index.clear();
        self.next_offset = self.base;
        self.max_timestamp = -1;
        self.bytes_since_index = 0;
        self.bytes_since_time = 0;
        let mut pos: u64 = 0;
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start: u64 = 0;
        let mut bad: Option<String> = None;
        while pos < self.size {
            let want_end = (pos + HEADER_LEN as u64).min(self.size);
            if want_end > buf_start + buf.len() as u64 || pos < buf_start {
                buf_start = pos;
                let len = ((self.size - pos) as usize).min(SCAN_CHUNK);
                buf = vec![0; len];
                self.file.read_exact_at(&mut buf, pos)?;
            }
            let local = (pos - buf_start) as usize;
            let h = match BatchHeader::parse(&buf[local..]) {
                Ok(h) => h,
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            };
            let end = pos + h.total_len() as u64;
            if end > self.size {
                bad = Some(format!("batch at {pos} runs past the end of the file"));
                break;
            }
            if h.base_offset < self.next_offset {
                bad = Some(format!(
                    "batch at {pos} has offset {} below {}",
                    h.base_offset, self.next_offset
                ));
                break;
            }
            if verify {
                if end > buf_start + buf.len() as u64 {
                    buf_start = pos;
                    let len = ((self.size - pos) as usize).min(SCAN_CHUNK.max(h.total_len()));
                    buf = vec![0; len];
                    self.file.read_exact_at(&mut buf, pos)?;
                }
                let local = (pos - buf_start) as usize;
                if let Err(e) = validate_crc(&buf[local..local + h.total_len()]) {
                    bad = Some(e.to_string());
                    break;
                }
            }
            self.note_append(pos, h.base_offset, h.max_timestamp, h.total_len() as u64);
            self.next_offset = h.last_offset() + 1;
            pos = end;
        }
        if let Some(reason) = bad {
            warn!(segment = %self.log_path.display(), at = pos, dropped = self.size - pos, reason, "truncating damaged log tail");
            self.file.set_len(pos)?;
            self.size = pos;
        }
        self.write_indexes(dir)?;
        info!(segment = %self.log_path.display(), bytes = self.size, "segment indexes rebuilt");
        Ok(())
    }

    fn write_indexes(&mut self, _dir: &Path) -> Result<(), LogError> {
        let mut raw = Vec::with_capacity(self.index.len() * INDEX_ENTRY);
        for &(rel, pos) in &self.index {
            raw.extend_from_slice(&rel.to_be_bytes());
            raw.extend_from_slice(&pos.to_be_bytes());
        }
        self.index_file.set_len(0)?;
        self.index_file.write_all_at(&raw, 0)?;
        let mut raw = Vec::with_capacity(self.time_index.len() * TIME_ENTRY);
        for &(ts, rel) in &self.time_index {
            raw.extend_from_slice(&ts.to_be_bytes());
            raw.extend_from_slice(&rel.to_be_bytes());
        }
        self.time_file.set_len(0)?;
        self.time_file.write_all_at(&raw, 0)?;
        Ok(())
    }

    /// Records index entries for data just placed at `pos` (in memory only).
    fn note_append(&mut self, pos: u64, first_offset: i64, max_ts: i64, len: u64) -> (bool, bool) {
        let rel = (first_offset - self.base) as u32;
        let mut new_index = false;
        if self.index.is_empty() || self.bytes_since_index >= self.interval {
            self.index.push((rel, pos as u32));
            self.bytes_since_index = 0;
            new_index = true;
        }
        self.bytes_since_index += len;
        let mut new_time = false;
        if max_ts > self.max_timestamp {
            self.max_timestamp = max_ts;
            if self.time_index.is_empty() || self.bytes_since_time >= self.interval {
                self.time_index.push((max_ts, rel));
                self.bytes_since_time = 0;
                new_time = true;
            }
        }
        self.bytes_since_time += len;
        (new_index, new_time)
    }

    /// Appends batches whose offsets start at `first_offset` and end before `next_offset`.
    pub fn append(
        &mut self,
        data: &[u8],
        first_offset: i64,
        next_offset: i64,
        max_ts: i64,
    ) -> Result<(), LogError> {
        let pos = self.size;
        self.file.write_all_at(data, pos)?;
        self.size += data.len() as u64;
        self.next_offset = next_offset;
        let (new_index, new_time) = self.note_append(pos, first_offset, max_ts, data.len() as u64);
        // Index writes are not synced: a damaged index is rebuilt at start-up.
        if new_index {
            if let Some(&(rel, p)) = self.index.last() {
                let mut e = [0u8; INDEX_ENTRY];
                e[..4].copy_from_slice(&rel.to_be_bytes());
                e[4..].copy_from_slice(&p.to_be_bytes());
                self.index_file
                    .write_all_at(&e, ((self.index.len() - 1) * INDEX_ENTRY) as u64)?;
            }
        }
        if new_time {
            if let Some(&(ts, rel)) = self.time_index.last() {
                let mut e = [0u8; TIME_ENTRY];
                e[..8].copy_from_slice(&ts.to_be_bytes());
                e[8..].copy_from_slice(&rel.to_be_bytes());
                self.time_file
                    .write_all_at(&e, ((self.time_index.len() - 1) * TIME_ENTRY) as u64)?;
            }
        }
        Ok(())
    }

    /// Position of the last indexed batch at or before `offset`.
    pub fn lookup(&self, offset: i64) -> ReadStart {
        let rel = (offset - self.base).clamp(0, u32::MAX as i64) as u32;
        let i = self.index.partition_point(|&(r, _)| r <= rel);
        let position = if i == 0 {
            0
        } else {
            self.index[i - 1].1 as u64
        };
        ReadStart {
            file: self.file.clone(),
            position,
            size: self.size,
        }
    }

    /// Where to start looking for the first batch with a max timestamp >= `ts`.
    pub fn time_lookup(&self, ts: i64) -> ReadStart {
        let i = self.time_index.partition_point(|&(t, _)| t < ts);
        let offset = if i == 0 {
            self.base
        } else {
            self.base + self.time_index[i - 1].1 as i64
        };
        self.lookup(offset)
    }

    pub fn flush(&self) -> Result<(), LogError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Removes the segment's files. Readers holding the file keep reading it until they drop it.
    pub fn delete(&self) -> Result<(), LogError> {
        for path in [
            self.log_path.clone(),
            self.log_path.with_extension("index"),
            self.log_path.with_extension("timeindex"),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Last modification time, for segments without timestamps.
    pub fn mtime_ms(&self) -> i64 {
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Newest timestamp for retention: the records' own, or the file time without any.
    pub fn newest_ms(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.mtime_ms()
        }
    }
}

fn read_all(file: &File) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len() as usize;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Reads and parses the batch header at `pos`, which must lie within `size`.
pub(crate) fn read_header(file: &File, pos: u64, size: u64) -> Result<BatchHeader, LogError> {
    if pos + HEADER_LEN as u64 > size {
        return Err(LogError::CorruptBatch(format!(
            "batch header at {pos} runs past {size}"
        )));
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, pos)?;
    let h = BatchHeader::parse(&buf)?;
    if pos + h.total_len() as u64 > size {
        return Err(LogError::CorruptBatch(format!(
            "batch at {pos} runs past {size}"
        )));
    }
    Ok(h)
}

/// From `start`, skips batches that end before `offset` and returns the position of the
/// batch containing it (or the first after it); `None` past the end.
pub(crate) fn seek_offset(start: &ReadStart, offset: i64) -> Result<Option<u64>, LogError> {
    let mut pos = start.position;
    while pos < start.size {
        let h = read_header(&start.file, pos, start.size)?;
        if h.last_offset() >= offset {
            return Ok(Some(pos));
        }
        pos += h.total_len() as u64;
    }
    Ok(None)
}

/// From `start`, the first batch whose max timestamp is >= `ts`: (base offset, max ts).
pub(crate) fn seek_timestamp(start: &ReadStart, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
    let mut pos = start.position;
    while pos < start.size {
        let h = read_header(&start.file, pos, start.size)?;
        if h.max_timestamp >= ts {
            return Ok(Some((h.base_offset, h.max_timestamp)));
        }
        pos += h.total_len() as u64;
    }
    Ok(None)
}

/// Reads whole batches from `pos`: as many as fit in `max_bytes`, but at least one.
pub(crate) fn read_batches(
    file: &File,
    pos: u64,
    size: u64,
    max_bytes: usize,
) -> Result<Vec<u8>, LogError> {
    let available = (size - pos.min(size)) as usize;
    if available == 0 {
        return Ok(Vec::new());
    }
    let mut want = available.min(max_bytes.max(HEADER_LEN));
    let mut buf = vec![0u8; want];
    file.read_exact_at(&mut buf, pos)?;
    // Cut at the last complete batch.
    let mut end = 0usize;
    while end + HEADER_LEN <= buf.len() {
        let h = BatchHeader::parse(&buf[end..])?;
        if end + h.total_len() > buf.len() {
            if end == 0 {
                // The first batch alone is larger than max_bytes: return it whole (KIP-74).
                want = h.total_len().min(available);
                buf = vec![0u8; want];
                file.read_exact_at(&mut buf, pos)?;
                end = want;
            }
            break;
        }
        end += h.total_len();
    }
    buf.truncate(end);
    Ok(buf)
}
