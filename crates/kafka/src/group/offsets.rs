//! Durable committed offsets: an in-memory map backed by an append-only journal.
//!
//! Journal layout: an 8-byte magic, then records `u32 len | u32 crc32 | payload`
//! (little endian). Every change is one `write` of whole records to a file opened
//! with O_APPEND, so a `kill -9` loses nothing that was acknowledged (the page
//! cache keeps it); `fsync` happens only in `flush`. A power loss can leave a torn
//! tail, which `open` detects by length/CRC and truncates.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::GroupError;

const MAGIC: &[u8; 8] = b"ODMSOFF1";
const JOURNAL: &str = "offsets.journal";
const JOURNAL_TMP: &str = "offsets.journal.tmp";
/// A longer length field can only be garbage: `put_record` refuses such records.
const MAX_PAYLOAD: usize = 4 << 20;

const KIND_COMMIT: u8 = 1;
const KIND_DELETE_PARTITION: u8 = 2;
const KIND_DELETE_GROUP: u8 = 3;
const KIND_DELETE_TOPIC: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// Kept for a future retention policy (Kafka expires offsets of empty groups).
    pub commit_ts_ms: i64,
}

impl Committed {
    fn same_value(&self, other: &Committed) -> bool {
        self.offset == other.offset
            && self.leader_epoch == other.leader_epoch
            && self.metadata == other.metadata
    }
}

pub(crate) type TopicOffsets = BTreeMap<i32, Committed>;
pub(crate) type GroupOffsets = BTreeMap<String, TopicOffsets>;

#[derive(Debug, PartialEq)]
enum Record {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: Committed,
    },
    DeletePartition {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
    DeleteTopic {
        topic: String,
    },
}

pub(crate) struct OffsetStore {
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    /// Length of the valid journal; a failed write is truncated back to it.
    len: u64,
    /// Records in the journal, to decide when compaction pays off.
    records: u64,
    live: HashMap<String, GroupOffsets>,
    live_count: u64,
    dirty: bool,
    compact_min_bytes: u64,
}

impl OffsetStore {
    pub(crate) fn open(dir: &Path, compact_min_bytes: u64) -> Result<Self, GroupError> {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(JOURNAL_TMP);
        if tmp.exists() {
            // a compaction died before its rename: the journal itself is intact
            fs::remove_file(&tmp)?;
        }
        let path = dir.join(JOURNAL);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;

        let mut store = OffsetStore {
            dir: dir.to_path_buf(),
            path,
            file: Arc::new(file),
            len: 0,
            records: 0,
            live: HashMap::new(),
            live_count: 0,
            dirty: false,
            compact_min_bytes,
        };

        if data.len() < MAGIC.len() {
            if !MAGIC.starts_with(&data) {
                return Err(GroupError::Corrupt(format!(
                    "{} does not start with the journal magic",
                    store.path.display()
                )));
            }
            // new file, or a header torn at creation
            store.file.set_len(0)?;
            (&*store.file).write_all(MAGIC)?;
            store.file.sync_all()?;
            sync_dir(&store.dir)?;
            store.len = MAGIC.len() as u64;
            return Ok(store);
        }
        if !data.starts_with(MAGIC) {
            return Err(GroupError::Corrupt(format!(
                "{} does not start with the journal magic",
                store.path.display()
            )));
        }

        let mut pos = MAGIC.len();
        loop {
            match decode_at(&data, pos) {
                Ok(None) => break,
                Ok(Some((record, next))) => {
                    store.apply(record);
                    store.records += 1;
                    pos = next;
                }
                Err(reason) => {
                    warn!(
                        path = %store.path.display(),
                        offset = pos,
                        dropped_bytes = data.len() - pos,
                        reason = %reason,
                        "truncating torn tail of offsets journal"
                    );
                    store.file.set_len(pos as u64)?;
                    store.file.sync_all()?;
                    break;
                }
            }
        }
        store.len = pos as u64;
        info!(
            path = %store.path.display(),
            groups = store.live.len(),
            offsets = store.live_count,
            records = store.records,
            "loaded committed offsets"
        );
        store.maybe_compact()?;
        Ok(store)
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Commit {
                group,
                topic,
                partition,
                value,
            } => {
                let old = self
                    .live
                    .entry(group)
                    .or_default()
                    .entry(topic)
                    .or_default()
                    .insert(partition, value);
                if old.is_none() {
                    self.live_count += 1;
                }
            }
            Record::DeletePartition {
                group,
                topic,
                partition,
            } => {
                if let Some(g) = self.live.get_mut(&group) {
                    if let Some(t) = g.get_mut(&topic) {
                        if t.remove(&partition).is_some() {
                            self.live_count -= 1;
                        }
                        if t.is_empty() {
                            g.remove(&topic);
                        }
                    }
                    if g.is_empty() {
                        self.live.remove(&group);
                    }
                }
            }
            Record::DeleteGroup { group } => {
                if let Some(g) = self.live.remove(&group) {
                    self.live_count -= g.values().map(|t| t.len() as u64).sum::<u64>();
                }
            }
            Record::DeleteTopic { topic } => {
                let mut removed = 0u64;
                self.live.retain(|_, g| {
                    if let Some(t) = g.remove(&topic) {
                        removed += t.len() as u64;
                    }
                    !g.is_empty()
                });
                self.live_count -= removed;
            }
        }
    }

    /// Appends whole records with one write; on failure the file is cut back so a
    /// partial record cannot hide the records written after it.
    fn append(&mut self, buf: &[u8], records: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&*self.file).write_all(buf) {
            if let Err(e2) = self.file.set_len(self.len) {
                warn!(error = %e2, "could not truncate offsets journal after failed write");
            }
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.records += records;
        self.dirty = true;
        Ok(())
    }

    /// Stores commits for one group. Commits that repeat the current value are not
    /// journaled: idle consumers auto-commit the same offsets over and over.
    pub(crate) fn commit(
        &mut self,
        group: &str,
        entries: Vec<(String, i32, Committed)>,
    ) -> io::Result<()> {
        let current = self.live.get(group);
        let changed: Vec<(String, i32, Committed)> = entries
            .into_iter()
            .filter(|(t, p, c)| {
                current
                    .and_then(|g| g.get(t))
                    .and_then(|tp| tp.get(p))
                    .is_none_or(|old| !old.same_value(c))
            })
            .collect();
        let mut buf = Vec::new();
        for (topic, partition, value) in &changed {
            put_record(&mut buf, |p| {
                p.push(KIND_COMMIT);
                put_str(p, group);
                put_str(p, topic);
                p.extend_from_slice(&partition.to_le_bytes());
                put_committed(p, value);
            })?;
        }
        self.append(&buf, changed.len() as u64)?;
        for (topic, partition, value) in changed {
            self.apply(Record::Commit {
                group: group.to_owned(),
                topic,
                partition,
                value,
            });
        }
        Ok(())
    }

    pub(crate) fn delete_group(&mut self, group: &str) -> io::Result<()> {
        if !self.live.contains_key(group) {
            return Ok(());
        }
        let mut buf = Vec::new();
        put_record(&mut buf, |p| {
            p.push(KIND_DELETE_GROUP);
            put_str(p, group);
        })?;
        self.append(&buf, 1)?;
        self.apply(Record::DeleteGroup {
            group: group.to_owned(),
        });
        Ok(())
    }

    pub(crate) fn delete_partitions(
        &mut self,
        group: &str,
        parts: &[(String, i32)],
    ) -> io::Result<()> {
        let Some(g) = self.live.get(group) else {
            return Ok(());
        };
        let existing: Vec<&(String, i32)> = parts
            .iter()
            .filter(|(t, p)| g.get(t).is_some_and(|tp| tp.contains_key(p)))
            .collect();
        let mut buf = Vec::new();
        for (topic, partition) in &existing {
            put_record(&mut buf, |p| {
                p.push(KIND_DELETE_PARTITION);
                put_str(p, group);
                put_str(p, topic);
                p.extend_from_slice(&partition.to_le_bytes());
            })?;
        }
        let n = existing.len() as u64;
        let existing: Vec<(String, i32)> = existing.into_iter().cloned().collect();
        self.append(&buf, n)?;
        for (topic, partition) in existing {
            self.apply(Record::DeletePartition {
                group: group.to_owned(),
                topic,
                partition,
            });
        }
        Ok(())
    }

    /// Returns the groups that had offsets for the topic.
    pub(crate) fn delete_topic(&mut self, topic: &str) -> io::Result<Vec<String>> {
        let affected: Vec<String> = self
            .live
            .iter()
            .filter(|(_, g)| g.contains_key(topic))
            .map(|(id, _)| id.clone())
            .collect();
        if affected.is_empty() {
            return Ok(affected);
        }
        let mut buf = Vec::new();
        put_record(&mut buf, |p| {
            p.push(KIND_DELETE_TOPIC);
            put_str(p, topic);
        })?;
        self.append(&buf, 1)?;
        self.apply(Record::DeleteTopic {
            topic: topic.to_owned(),
        });
        Ok(affected)
    }

    pub(crate) fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.live.get(group)?.get(topic)?.get(&partition)
    }

    pub(crate) fn group(&self, group: &str) -> Option<&GroupOffsets> {
        self.live.get(group)
    }

    pub(crate) fn has_group(&self, group: &str) -> bool {
        self.live.contains_key(group)
    }

    pub(crate) fn group_ids(&self) -> impl Iterator<Item = &String> {
        self.live.keys()
    }

    /// The file to fsync if anything was written since the last call.
    pub(crate) fn take_dirty(&mut self) -> Option<Arc<File>> {
        if std::mem::take(&mut self.dirty) {
            Some(self.file.clone())
        } else {
            None
        }
    }

    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub(crate) fn maybe_compact(&mut self) -> io::Result<()> {
        if self.len >= self.compact_min_bytes && self.records > 2 * self.live_count + 1000 {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the latest value of every key into a new file and renames it over
    /// the journal, so a crash leaves either the old or the new journal.
    pub(crate) fn compact(&mut self) -> io::Result<()> {
        let mut buf = MAGIC.to_vec();
        for (group, topics) in &self.live {
            for (topic, parts) in topics {
                for (partition, value) in parts {
                    put_record(&mut buf, |p| {
                        p.push(KIND_COMMIT);
                        put_str(p, group);
                        put_str(p, topic);
                        p.extend_from_slice(&partition.to_le_bytes());
                        put_committed(p, value);
                    })?;
                }
            }
        }
        let tmp = self.dir.join(JOURNAL_TMP);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        sync_dir(&self.dir)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        info!(
            path = %self.path.display(),
            old_bytes = self.len,
            new_bytes = buf.len(),
            offsets = self.live_count,
            "compacted offsets journal"
        );
        self.file = Arc::new(file);
        self.len = buf.len() as u64;
        self.records = self.live_count;
        self.dirty = false;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn journal_len(&self) -> u64 {
        self.len
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_committed(buf: &mut Vec<u8>, c: &Committed) {
    buf.extend_from_slice(&c.offset.to_le_bytes());
    buf.extend_from_slice(&c.leader_epoch.to_le_bytes());
    put_str(buf, &c.metadata);
    buf.extend_from_slice(&c.commit_ts_ms.to_le_bytes());
}

/// Frames the payload written by `f` as `len | crc | payload`. Refuses records
/// that `open` would take for garbage (only a huge group id can get there).
fn put_record(buf: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 8]);
    f(buf);
    let payload_len = buf.len() - start - 8;
    if payload_len > MAX_PAYLOAD {
        buf.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("journal record of {payload_len} bytes is too large"),
        ));
    }
    let crc = crc32(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes the record at `pos`: `Ok(None)` at a clean end of file, `Err` for a
/// torn or damaged record.
fn decode_at(data: &[u8], pos: usize) -> Result<Option<(Record, usize)>, String> {
    let rest = data.get(pos..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(None);
    }
    let mut r = Reader(rest);
    let len = r.u32().ok_or("short record header")? as usize;
    let crc = r.u32().ok_or("short record header")?;
    if len > MAX_PAYLOAD {
        return Err(format!("record length {len} too large"));
    }
    let payload = r.take(len).ok_or("short record payload")?;
    if crc32(payload) != crc {
        return Err("record checksum mismatch".into());
    }
    let record = decode_payload(payload).ok_or("undecodable record payload")?;
    Ok(Some((record, pos + 8 + len)))
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let record = match r.u8()? {
        KIND_COMMIT => Record::Commit {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
            value: Committed {
                offset: r.i64()?,
                leader_epoch: r.i32()?,
                metadata: r.string()?,
                commit_ts_ms: r.i64()?,
            },
        },
        KIND_DELETE_PARTITION => Record::DeletePartition {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        },
        KIND_DELETE_GROUP => Record::DeleteGroup { group: r.string()? },
        KIND_DELETE_TOPIC => Record::DeleteTopic { topic: r.string()? },
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: i64, meta: &str) -> Committed {
        Committed {
            offset,
            leader_epoch: 3,
            metadata: meta.into(),
            commit_ts_ms: 1,
        }
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn reload_applies_commits_and_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
            s.commit(
                "g1",
                vec![("t".into(), 0, c(5, "a")), ("t".into(), 1, c(6, ""))],
            )
            .unwrap();
            s.commit("g1", vec![("u".into(), 0, c(7, "x"))]).unwrap();
            s.commit("g2", vec![("t".into(), 0, c(8, "b"))]).unwrap();
            s.commit("g3", vec![("v".into(), 0, c(9, ""))]).unwrap();
            s.delete_partitions("g1", &[("t".into(), 1)]).unwrap();
            s.delete_topic("u").unwrap();
            s.delete_group("g3").unwrap();
        }
        let s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.get("g1", "t", 0), Some(&c(5, "a")));
        assert_eq!(s.get("g1", "t", 1), None);
        assert_eq!(s.get("g1", "u", 0), None);
        assert_eq!(s.get("g2", "t", 0), Some(&c(8, "b")));
        assert!(!s.has_group("g3"));
        assert_eq!(s.live_count, 2);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let good_len;
        {
            let mut s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
            s.commit("g", vec![("t".into(), 0, c(1, "m"))]).unwrap();
            good_len = s.journal_len();
            s.commit("g", vec![("t".into(), 0, c(2, "m"))]).unwrap();
        }
        let path = dir.path().join(JOURNAL);
        let full = fs::metadata(&path).unwrap().len();
        // cut the last record in half, as a crash mid-write would
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 5)
            .unwrap();
        {
            let mut s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(s.journal_len(), good_len);
            assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(1));
            s.commit("g", vec![("t".into(), 0, c(3, "m"))]).unwrap();
        }
        // garbage (not a torn write) at the end is dropped the same way
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7])
            .unwrap();
        drop(f);
        let s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(3));
    }

    #[test]
    fn oversized_record_is_refused_without_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
        let huge = "g".repeat(MAX_PAYLOAD + 1);
        assert!(s.commit(&huge, vec![("t".into(), 0, c(1, ""))]).is_err());
        s.commit("g", vec![("t".into(), 0, c(2, ""))]).unwrap();
        drop(s);
        let s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
        assert!(!s.has_group(&huge));
        assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(2));
    }

    #[test]
    fn bad_magic_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(JOURNAL), b"something else entirely").unwrap();
        assert!(matches!(
            OffsetStore::open(dir.path(), 1 << 20),
            Err(GroupError::Corrupt(_))
        ));
    }

    #[test]
    fn identical_commits_are_not_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = OffsetStore::open(dir.path(), 1 << 20).unwrap();
        s.commit("g", vec![("t".into(), 0, c(1, "m"))]).unwrap();
        let len = s.journal_len();
        s.commit("g", vec![("t".into(), 0, c(1, "m"))]).unwrap();
        assert_eq!(s.journal_len(), len);
    }

    #[test]
    fn compaction_keeps_latest_values() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = OffsetStore::open(dir.path(), 0).unwrap();
            for i in 0..3000 {
                s.commit("g", vec![("t".into(), i % 3, c(i as i64, "m"))])
                    .unwrap();
            }
            s.commit("gone", vec![("t".into(), 0, c(1, ""))]).unwrap();
            s.delete_group("gone").unwrap();
        }
        let before = fs::metadata(dir.path().join(JOURNAL)).unwrap().len();
        let s = OffsetStore::open(dir.path(), 0).unwrap();
        let after = fs::metadata(dir.path().join(JOURNAL)).unwrap().len();
        assert!(after < before / 100, "{after} vs {before}");
        assert_eq!(s.records, 3);
        assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(2997));
        assert_eq!(s.get("g", "t", 2).map(|c| c.offset), Some(2999));
        assert!(!s.has_group("gone"));
        drop(s);
        let s = OffsetStore::open(dir.path(), 0).unwrap();
        assert_eq!(s.get("g", "t", 1).map(|c| c.offset), Some(2998));
    }
}
