//! Segment I/O with `O_DIRECT` (`LogIo::Direct`): appends go from a reused, block-aligned
//! staging buffer to the disk, and fetch reads land in pooled buffers, neither passing
//! through the page cache.
//!
//! Why: a buffered append copies every byte into page-cache pages that the kernel must first
//! allocate, and on machines whose free memory is handed back to a hypervisor (balloon free
//! page reporting) that first touch costs several times the copy. Direct writes touch only
//! the staging buffer, which stays resident.
//!
//! Direct I/O writes whole, aligned blocks, so the writer keeps the last partial block of the
//! file in memory and writes it again, followed by the new data, zero-padded to a block. The
//! file therefore ends with up to one block of zeros past the published size; start-up cuts
//! such padding (see `Segment::open`), and sealing or closing a segment cuts it too.
//!
//! Readers never see the tail being rewritten: the bytes below the published size are the
//! same before and after each write, so any mix of old and new block contents is right.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

pub(crate) use crate::pool::BLOCK;
use crate::pool::{take_read_buf, ReadBuf, Staging, CHUNK};

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// While writes are small, the writer keeps a copy of this much of the end of the log.
const RECENT_MAX: usize = 16 * 1024;

/// A copy of the log's bytes from `pos` to the end of the last write, kept while writes are
/// small: a consumer following the head of the log reads them from here instead of the disk.
/// Bytes of a log never change once written, so a copy stays right whatever was published
/// since; readers still read only below the published size.
#[derive(Clone, Debug)]
pub(crate) struct Recent {
    pub pos: u64,
    pub data: bytes::Bytes,
}

impl Recent {
    /// `[pos, pos + len)` if this copy holds all of it.
    pub fn get(&self, pos: u64, len: usize) -> Option<bytes::Bytes> {
        let from = usize::try_from(pos.checked_sub(self.pos)?).ok()?;
        let to = from.checked_add(len)?;
        (to <= self.data.len()).then(|| self.data.slice(from..to))
    }
}

/// The direct-I/O handle of an active segment and the bytes of its last partial block.
pub(crate) struct DirectWriter {
    file: File,
    /// File position of `tail[0]`: always a block boundary.
    tail_pos: u64,
    tail: Vec<u8>,
    /// The last RECENT_MAX bytes of the log while writes are small.
    recent: Option<Recent>,
}

impl DirectWriter {
    /// Opens `path` for direct writes whose next append lands at `size`. `None` when the
    /// file system does not support direct I/O (tmpfs before Linux 6.6, some network file
    /// systems): the segment then writes through the page cache.
    pub fn open(path: &Path, reader: &File, size: u64) -> io::Result<Option<DirectWriter>> {
        let Some(file) = open_direct(OpenOptions::new().write(true), path)? else {
            return Ok(None);
        };
        let mut w = DirectWriter {
            file,
            tail_pos: 0,
            tail: Vec::new(),
            recent: None,
        };
        w.load_tail(reader, size)?;
        Ok(Some(w))
    }

    /// Reads the partial block before `end` from the file.
    fn load_tail(&mut self, reader: &File, end: u64) -> io::Result<()> {
        self.tail_pos = end / BLOCK * BLOCK;
        self.tail.resize((end - self.tail_pos) as usize, 0);
        reader.read_exact_at(&mut self.tail, self.tail_pos)
    }

    /// Writes the pieces, in order, at `pos`. `reader` is a buffered handle of the same file,
    /// used when `pos` is not where the last write ended (a failed append was cut back).
    /// After a small write, returns a copy of the end of the log (see `Recent`).
    pub fn write(
        &mut self,
        reader: &File,
        pieces: &[IoSlice<'_>],
        pos: u64,
    ) -> io::Result<Option<Recent>> {
        if self.tail_pos + self.tail.len() as u64 != pos {
            self.load_tail(reader, pos)?;
        }
        let mut staging = Staging::take();
        let buf = staging.buf();
        let mut at = self.tail_pos;
        let mut fill = self.tail.len();
        buf[..fill].copy_from_slice(&self.tail);
        for piece in pieces {
            let mut rest: &[u8] = piece;
            while !rest.is_empty() {
                let n = (CHUNK - fill).min(rest.len());
                buf[fill..fill + n].copy_from_slice(&rest[..n]);
                fill += n;
                rest = &rest[n..];
                if fill == CHUNK {
                    write_all_at(&self.file, buf, at)?;
                    at += CHUNK as u64;
                    fill = 0;
                }
            }
        }
        let padded = round_up(fill as u64) as usize;
        buf[fill..padded].fill(0);
        if padded > 0 {
            write_all_at(&self.file, &buf[..padded], at)?;
        }
        // `buf[..fill]` is the log from `at` (the old tail block, then the new data).
        self.recent = (at == self.tail_pos && fill <= RECENT_MAX).then(|| {
            let end = at + fill as u64;
            let mut from = at;
            let mut window = Vec::with_capacity(RECENT_MAX);
            // Keep the end of the previous window that comes before this write.
            if let Some(prev) = &self.recent {
                let keep = end.saturating_sub(RECENT_MAX as u64).max(prev.pos);
                let prev_end = prev.pos + prev.data.len() as u64;
                if keep < at && prev_end >= at {
                    let off = (keep - prev.pos) as usize;
                    window.extend_from_slice(&prev.data[off..off + (at - keep) as usize]);
                    from = keep;
                }
            }
            window.extend_from_slice(&buf[..fill]);
            Recent {
                pos: from,
                data: bytes::Bytes::from(window),
            }
        });
        let whole = fill / BLOCK as usize * BLOCK as usize;
        self.tail.clear();
        self.tail.extend_from_slice(&buf[whole..fill]);
        self.tail_pos = at + whole as u64;
        Ok(self.recent.clone())
    }
}

impl Drop for DirectWriter {
    /// Cuts the padding after the last write, so a closed segment's file is exactly its batches.
    fn drop(&mut self) {
        let end = self.tail_pos + self.tail.len() as u64;
        let padded = self.file.metadata().map_or(0, |m| m.len());
        if padded > end {
            if let Err(e) = self.file.set_len(end) {
                tracing::warn!(error = %e, "could not cut the padding after the last direct write");
            }
        }
    }
}

fn write_all_at(file: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads `[pos, pos + len)` of a file opened with `O_DIRECT` (aligned reads into a pooled
/// buffer). Fails with `UnexpectedEof` if the file ends first.
pub(crate) fn read_direct(file: &File, pos: u64, len: usize) -> io::Result<bytes::Bytes> {
    let from = pos / BLOCK * BLOCK;
    let to = round_up(pos + len as u64);
    let span = (to - from) as usize;
    let mut raw = take_read_buf(span);
    let start = raw.as_ptr().align_offset(BLOCK as usize);
    let mut got = 0usize;
    let want = (pos + len as u64 - from) as usize;
    while got < want {
        let buf = &mut raw[start + got..start + span];
        match file.read_at(buf, from + got as u64) {
            Ok(0) => break,
            // A read that is not whole blocks reached the end of the file.
            Ok(n) if !n.is_multiple_of(BLOCK as usize) => {
                got += n;
                break;
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got < want {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let skip = (pos - from) as usize;
    Ok(bytes::Bytes::from_owner(ReadBuf {
        raw,
        start: start + skip,
        len,
    }))
}

/// Opens `path` for direct reads; `None` where the file system does not support it.
pub(crate) fn open_reader(path: &Path) -> io::Result<Option<File>> {
    open_direct(OpenOptions::new().read(true), path)
}

/// Opens `path` with `O_DIRECT` added to `options`; `None` when the file system refuses
/// direct I/O (EINVAL).
fn open_direct(options: &mut OpenOptions, path: &Path) -> io::Result<Option<File>> {
    match options
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that differ at every position of a 251-byte cycle.
    fn pattern(from: usize, len: usize) -> Vec<u8> {
        (from..from + len).map(|i| (i % 251) as u8).collect()
    }

    fn writer(path: &Path) -> (File, DirectWriter) {
        let reader = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        // Only file systems without direct I/O (tmpfs before 6.6) return None.
        let w = DirectWriter::open(path, &reader, 0)
            .unwrap()
            .expect("direct I/O");
        (reader, w)
    }

    #[test]
    fn appends_of_any_size_and_alignment_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let (reader, mut w) = writer(&path);
        let mut end = 0usize;
        // Sizes around block and chunk boundaries, several pieces per write, empty pieces.
        for (i, len) in [
            1,
            4095,
            1,
            4096,
            0,
            100,
            CHUNK - 3,
            7,
            CHUNK + 4096,
            3 * CHUNK + 5,
        ]
        .into_iter()
        .enumerate()
        {
            let data = pattern(end, len);
            let cut = len / (i + 1);
            let pieces = [
                IoSlice::new(&data[..cut]),
                IoSlice::new(&[]),
                IoSlice::new(&data[cut..]),
            ];
            let recent = w.write(&reader, &pieces, end as u64).unwrap();
            // After small writes, a copy of the end of the log.
            if let Some(r) = recent {
                assert!(len <= RECENT_MAX && r.pos <= end as u64);
                assert!(r.data.len() <= RECENT_MAX);
                let from = r.pos as usize;
                assert_eq!(
                    r.get(r.pos, end + len - from).unwrap(),
                    pattern(from, end + len - from)
                );
                assert!(r.get(end as u64, len + 1).is_none());
            } else {
                assert!(len > RECENT_MAX - 4096);
            }
            end += len;
            // Readable through the page cache right away, padded to a whole block.
            let mut back = vec![0u8; end];
            reader.read_exact_at(&mut back, 0).unwrap();
            assert_eq!(back, pattern(0, end));
            assert_eq!(reader.metadata().unwrap().len(), round_up(end as u64));
        }
        drop(w);
        assert_eq!(reader.metadata().unwrap().len(), end as u64);
        assert_eq!(std::fs::read(&path).unwrap(), pattern(0, end));
    }

    #[test]
    fn small_writes_keep_a_window_of_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let (reader, mut w) = writer(&path);
        let mut end = 0usize;
        for i in 0..40 {
            let r = w
                .write(&reader, &[IoSlice::new(&pattern(end, 1000))], end as u64)
                .unwrap()
                .unwrap();
            end += 1000;
            let from = r.pos as usize;
            assert_eq!(from + r.data.len(), end);
            assert_eq!(r.data, pattern(from, end - from));
            if end >= RECENT_MAX + BLOCK as usize {
                assert_eq!(r.data.len(), RECENT_MAX, "write {i}");
            }
        }
        // A large write drops the window.
        let big = pattern(end, RECENT_MAX + 1);
        assert!(w
            .write(&reader, &[IoSlice::new(&big)], end as u64)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_write_after_a_cut_back_continues_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let (reader, mut w) = writer(&path);
        w.write(&reader, &[IoSlice::new(&pattern(0, 10_000))], 0)
            .unwrap();
        // A failed append is cut back by the segment; the next append starts there.
        reader.set_len(6_000).unwrap();
        w.write(&reader, &[IoSlice::new(&pattern(6_000, 3_000))], 6_000)
            .unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), pattern(0, 9_000));
        // Reopening continues after the last partial block.
        let reader = File::options().read(true).write(true).open(&path).unwrap();
        let mut w = DirectWriter::open(&path, &reader, 9_000).unwrap().unwrap();
        w.write(&reader, &[IoSlice::new(&pattern(9_000, 5))], 9_000)
            .unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), pattern(0, 9_005));
    }

    #[test]
    fn direct_reads_return_exact_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let len = 3 * CHUNK + 777;
        std::fs::write(&path, pattern(0, len)).unwrap();
        let file = open_reader(&path).unwrap().expect("direct I/O");
        for (pos, n) in [
            (0, 1),
            (1, 4095),
            (4095, 2),
            (4096, 4096),
            (12_345, CHUNK + 1),
            (len - 1, 1),
            (len - 5000, 5000),
            (0, len),
        ] {
            let got = read_direct(&file, pos as u64, n).unwrap();
            assert_eq!(&got[..], &pattern(pos, n)[..], "{pos}+{n}");
        }
        let past = read_direct(&file, (len - 10) as u64, 11).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        // Buffers go back to the pool once every reference is gone, and are reused.
        let a = read_direct(&file, 0, 100).unwrap();
        let b = a.slice(10..20);
        drop(a);
        assert_eq!(&b[..], &pattern(10, 10)[..]);
    }
}
