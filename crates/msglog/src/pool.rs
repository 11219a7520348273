//! Reused I/O buffers: staging buffers for direct writes and read buffers for fetches.
//!
//! Why: on machines whose freed memory goes back to a hypervisor, every fresh allocation of a
//! large buffer faults in new pages at several times the cost of using them; buffers that
//! stay in a pool stay resident. An idle broker frees the pools (`release_idle_buffers`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// Alignment of direct I/O offsets, lengths and buffers; a multiple of every common logical
/// block size.
pub(crate) const BLOCK: u64 = 4096;
/// Staging buffer size: the largest single write.
pub(crate) const CHUNK: usize = 1 << 20;
/// Staging buffers kept for reuse (each CHUNK + BLOCK bytes).
const POOL_MAX: usize = 4;

static STAGING_POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A CHUNK-sized, BLOCK-aligned window into an over-allocated vector.
pub(crate) struct Staging {
    raw: Vec<u8>,
    start: usize,
}

impl Staging {
    pub fn take() -> Staging {
        TAKEN.fetch_add(1, Ordering::Relaxed);
        let raw = STAGING_POOL
            .lock()
            .pop()
            .unwrap_or_else(|| vec![0u8; CHUNK + BLOCK as usize]);
        let start = raw.as_ptr().align_offset(BLOCK as usize);
        Staging { raw, start }
    }

    pub fn buf(&mut self) -> &mut [u8] {
        let start = self.start;
        &mut self.raw[start..start + CHUNK]
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let mut pool = STAGING_POOL.lock();
        if pool.len() < POOL_MAX {
            pool.push(std::mem::take(&mut self.raw));
        }
    }
}

/// Read buffers kept for reuse, at most this many bytes in all. Reads land in memory that
/// stays resident instead of fresh allocations (which would fault in new pages every time).
const READ_POOL_BYTES: usize = 64 << 20;
/// Read buffer sizes are rounded up to this, so buffers fit later reads of similar size.
const READ_GRAIN: usize = 1 << 20;

static READ_POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Buffers taken from the pools so far, and the count at the last `release_idle_buffers`.
static TAKEN: AtomicU64 = AtomicU64::new(0);
static TAKEN_AT_LAST_CHECK: AtomicU64 = AtomicU64::new(0);

/// Frees the pooled staging and read buffers if none was used since the previous call, so
/// an idle broker gives back the memory a burst of load left in the pools. Call it now and
/// then (the Kafka broker does on its retention check).
pub fn release_idle_buffers() {
    let taken = TAKEN.load(Ordering::Relaxed);
    if TAKEN_AT_LAST_CHECK.swap(taken, Ordering::Relaxed) == taken {
        let staging = std::mem::take(&mut *STAGING_POOL.lock());
        let reads = std::mem::take(&mut *READ_POOL.lock());
        let bytes: usize = staging.iter().chain(&reads).map(Vec::len).sum();
        if bytes > 0 {
            tracing::debug!(bytes, "released idle i/o buffers");
        }
    }
}

/// A region of a pooled buffer holding bytes read from a file; goes back to
/// the pool when the last `Bytes` referring to it is dropped.
pub(crate) struct ReadBuf {
    pub raw: Vec<u8>,
    pub start: usize,
    pub len: usize,
}

impl AsRef<[u8]> for ReadBuf {
    fn as_ref(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        let raw = std::mem::take(&mut self.raw);
        let mut pool = READ_POOL.lock();
        let pooled: usize = pool.iter().map(Vec::len).sum();
        if pooled + raw.len() <= READ_POOL_BYTES {
            pool.push(raw);
        }
    }
}

/// A pooled buffer of at least `len + BLOCK` bytes (room to align a read of `len`).
pub(crate) fn take_read_buf(len: usize) -> Vec<u8> {
    TAKEN.fetch_add(1, Ordering::Relaxed);
    let need = len + BLOCK as usize;
    let mut pool = READ_POOL.lock();
    // The smallest pooled buffer that fits, the most recently returned of those (the one
    // most likely still in the CPU's caches: a pull's read lands there and is sent from it).
    let best = pool
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| b.len() >= need)
        .min_by_key(|(_, b)| b.len())
        .map(|(i, _)| i);
    match best {
        Some(i) => pool.swap_remove(i),
        None => {
            drop(pool);
            vec![0u8; need.div_ceil(READ_GRAIN) * READ_GRAIN]
        }
    }
}

/// Reads `[pos, pos + len)` through the page cache into a pooled buffer.
pub(crate) fn read_pooled(file: &File, pos: u64, len: usize) -> io::Result<Bytes> {
    let mut raw = take_read_buf(len);
    file.read_exact_at(&mut raw[..len], pos)?;
    Ok(Bytes::from_owner(ReadBuf { raw, start: 0, len }))
}

/// Reads `[pos, pos + len)` only if the page cache holds all of it (`preadv2` with
/// `RWF_NOWAIT`): `None` when the read would wait for the disk (or the kernel cannot tell), so
/// an async caller can read at once what is cached and hand the rest to a blocking thread.
pub(crate) fn read_pooled_cached(file: &File, pos: u64, len: usize) -> io::Result<Option<Bytes>> {
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    let mut raw = take_read_buf(len);
    let mut got = 0usize;
    while got < len {
        let mut bufs = [io::IoSliceMut::new(&mut raw[got..len])];
        match preadv2(file, &mut bufs, pos + got as u64, ReadWriteFlags::NOWAIT) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(Bytes::from_owner(ReadBuf { raw, start: 0, len })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_reads_return_exact_ranges_and_outlive_their_buffer_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        for (pos, len) in [
            (0, 0),
            (0, 1),
            (17, 70_000),
            (1 << 20, 1 << 20),
            (2_999_000, 1000),
        ] {
            let got = read_pooled(&file, pos as u64, len).unwrap();
            assert_eq!(&got[..], &data[pos..pos + len]);
            // A slice keeps the buffer out of the pool until it is dropped.
            let part = got.slice(len / 2..);
            drop(got);
            assert_eq!(&part[..], &data[pos + len / 2..pos + len]);
        }
        let past = read_pooled(&file, 2_999_000, 1001).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
