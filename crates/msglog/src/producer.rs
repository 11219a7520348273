//! Idempotent producer state of one partition: per producer id its epoch and the last five
//! batches (sequence range and offsets), so retries are recognised and gaps refused, as
//! Kafka does. Persisted as snapshots `<offset>.snapshot` (the state as of that log offset)
//! and completed at start-up by scanning the batch headers written after the snapshot.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::batch::{next_sequence, BatchHeader};
use crate::segment::remove_if_exists;
use crate::LogError;

/// Kafka keeps the last five batches per producer: the most a client may have in flight.
const KEPT_BATCHES: usize = 5;
/// Snapshots kept on disk; an older one is the fallback when the newest is damaged.
const KEPT_SNAPSHOTS: usize = 2;
const SNAPSHOT_EXT: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"odmsps02";
/// Producers idle this long are forgotten (Kafka's producer.id.expiration.ms default).
pub(crate) const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; never empty.
    batches: VecDeque<BatchMeta>,
    last_seen_ms: i64,
}

/// What the sequence check decided for a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Append,
    Duplicate { base_offset: i64 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

/// Whether a batch takes part in sequence checking: idempotent data batches do, control
/// batches (transaction markers) and plain batches do not.
fn sequenced(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && !h.is_control()
}

fn check_entry(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<SequenceCheck, LogError> {
    if !sequenced(h) {
        return Ok(SequenceCheck::Append);
    }
    let Some(entry) = entry else {
        // A producer unknown to the log (new, or its state expired): any start is fine.
        return Ok(SequenceCheck::Append);
    };
    if h.producer_epoch < entry.epoch {
        return Err(LogError::InvalidProducerEpoch {
            current: entry.epoch,
            got: h.producer_epoch,
        });
    }
    if h.producer_epoch > entry.epoch {
        // A bumped epoch restarts the sequence.
        return if h.base_sequence == 0 {
            Ok(SequenceCheck::Append)
        } else {
            Err(LogError::OutOfOrderSequence {
                expected: 0,
                got: h.base_sequence,
            })
        };
    }
    let last_seq = h.last_sequence();
    if let Some(b) = entry
        .batches
        .iter()
        .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
    {
        return Ok(SequenceCheck::Duplicate {
            base_offset: b.base_offset,
        });
    }
    let Some(last) = entry.batches.back() else {
        return Ok(SequenceCheck::Append);
    };
    let expected = next_sequence(last.last_seq, 1);
    if h.base_sequence != expected {
        return Err(LogError::OutOfOrderSequence {
            expected,
            got: h.base_sequence,
        });
    }
    Ok(SequenceCheck::Append)
}

fn apply(entry: &mut ProducerEntry, h: &BatchHeader, base_offset: i64, now_ms: i64) {
    if h.producer_epoch != entry.epoch {
        entry.epoch = h.producer_epoch;
        entry.batches.clear();
    }
    entry.batches.push_back(BatchMeta {
        first_seq: h.base_sequence,
        last_seq: h.last_sequence(),
        base_offset,
        last_offset: base_offset + h.last_offset_delta.max(0) as i64,
    });
    while entry.batches.len() > KEPT_BATCHES {
        entry.batches.pop_front();
    }
    entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Checks the batches of one append as if applied in order at the given base offsets.
    /// A duplicate is reported only for a single-batch append: a partly duplicate request
    /// cannot be answered with one offset.
    pub fn check_append(&self, batches: &[(&BatchHeader, i64)]) -> Result<SequenceCheck, LogError> {
        if let [(h, _)] = batches {
            return check_entry(self.producers.get(&h.producer_id), h);
        }
        let mut overlay: HashMap<i64, ProducerEntry> = HashMap::new();
        for &(h, base_offset) in batches {
            if !sequenced(h) {
                continue;
            }
            let current = overlay
                .get(&h.producer_id)
                .or_else(|| self.producers.get(&h.producer_id));
            if let SequenceCheck::Duplicate { .. } = check_entry(current, h)? {
                let expected = current
                    .and_then(|e| e.batches.back())
                    .map_or(0, |b| next_sequence(b.last_seq, 1));
                return Err(LogError::OutOfOrderSequence {
                    expected,
                    got: h.base_sequence,
                });
            }
            let mut next = current.cloned().unwrap_or_else(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_seen_ms: 0,
            });
            apply(&mut next, h, base_offset, 0);
            overlay.insert(h.producer_id, next);
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch written at `base_offset`. Returns whether the state changed.
    pub fn update(&mut self, h: &BatchHeader, base_offset: i64, now_ms: i64) -> bool {
        if !sequenced(h) {
            return false;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_seen_ms: now_ms,
            });
        apply(entry, h, base_offset, now_ms);
        true
    }

    /// Forgets producers whose batches all lie below the log start offset (as Kafka does
    /// when the log start moves) and producers idle past the expiration time.
    pub fn expire(&mut self, log_start: i64, now_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            let live = e.batches.back().is_some_and(|b| b.last_offset >= log_start);
            live && now_ms.saturating_sub(e.last_seen_ms) < PRODUCER_EXPIRATION_MS
        });
        before - self.producers.len()
    }

    fn encode(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.producers.len() * 128);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_seen_ms.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// `None` for anything that is not an intact snapshot.
    fn decode(raw: &[u8]) -> Option<(ProducerState, i64)> {
        let (body, crc) = raw.split_at_checked(raw.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != SNAPSHOT_MAGIC {
            return None;
        }
        let offset = i64::from_be_bytes(r.array()?);
        let count = u32::from_be_bytes(r.array()?);
        let mut state = ProducerState::default();
        for _ in 0..count {
            let pid = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let last_seen_ms = i64::from_be_bytes(r.array()?);
            let n = r.take(1)?.first().copied()?;
            let mut batches = VecDeque::with_capacity(n as usize);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    base_offset: i64::from_be_bytes(r.array()?),
                    last_offset: i64::from_be_bytes(r.array()?),
                });
            }
            if batches.is_empty() || pid < 0 {
                return None;
            }
            state.producers.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_seen_ms,
                },
            );
        }
        r.0.is_empty().then_some((state, offset))
    }

    /// Writes the state as of log offset `offset` (everything below it applied) atomically,
    /// then drops all but the newest snapshots.
    pub fn save(&self, dir: &Path, offset: i64) -> Result<(), LogError> {
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&self.encode(offset))?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        let mut all = list_snapshots(dir)?;
        all.sort_unstable();
        let excess = all.len().saturating_sub(KEPT_SNAPSHOTS);
        for (_, old) in all.into_iter().take(excess) {
            remove_if_exists(&old)?;
        }
        debug!(dir = %dir.display(), offset, producers = self.producers.len(), "producer snapshot written");
        Ok(())
    }

    /// The newest intact snapshot taken at or below `max_offset`: the state and its offset.
    /// Snapshots above `max_offset` describe log data that no longer exists and are removed.
    pub fn load(dir: &Path, max_offset: i64) -> Result<Option<(ProducerState, i64)>, LogError> {
        let mut all = list_snapshots(dir)?;
        all.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
        let mut found = None;
        for (offset, path) in all {
            if offset > max_offset {
                warn!(snapshot = %path.display(), max_offset, "removing producer snapshot beyond the log end");
                remove_if_exists(&path)?;
                continue;
            }
            if found.is_some() {
                continue;
            }
            match fs::read(&path).ok().and_then(|raw| Self::decode(&raw)) {
                Some((state, at)) if at == offset => found = Some((state, offset)),
                _ => warn!(snapshot = %path.display(), "ignoring damaged producer snapshot"),
            }
        }
        Ok(found)
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(crate::segment::file_name(offset, SNAPSHOT_EXT))
}

/// (offset, path) of every snapshot in `dir`; leftover temporary files are removed.
fn list_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>, LogError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".snapshot.tmp") {
            remove_if_exists(&path)?;
        } else if let Some(offset) = name
            .strip_suffix(".snapshot")
            .and_then(|b| b.parse::<i64>().ok())
        {
            out.push((offset, path));
        }
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::batch;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader::parse(&batch(count, 0, Some((pid, epoch, seq)))).unwrap()
    }

    fn check(s: &ProducerState, h: &BatchHeader) -> Result<SequenceCheck, LogError> {
        s.check_append(&[(h, 0)])
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = ProducerState::default();
        // a new producer may start anywhere
        let h = header(1, 0, 7, 3);
        assert_eq!(check(&s, &h).unwrap(), SequenceCheck::Append);
        s.update(&h, 100, 0);
        assert_eq!(
            check(&s, &h).unwrap(),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert!(matches!(
            check(&s, &header(1, 0, 12, 1)),
            Err(LogError::OutOfOrderSequence {
                expected: 10,
                got: 12
            })
        ));
        // same first sequence, different length: not the same batch
        assert!(matches!(
            check(&s, &header(1, 0, 7, 2)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        let next = header(1, 0, 10, 2);
        assert_eq!(check(&s, &next).unwrap(), SequenceCheck::Append);
        s.update(&next, 103, 0);
        assert!(matches!(
            check(&s, &header(1, -1, 12, 1)),
            Err(LogError::InvalidProducerEpoch {
                current: 0,
                got: -1
            })
        ));
        assert!(matches!(
            check(&s, &header(1, 1, 12, 1)),
            Err(LogError::OutOfOrderSequence {
                expected: 0,
                got: 12
            })
        ));
        assert_eq!(
            check(&s, &header(1, 1, 0, 1)).unwrap(),
            SequenceCheck::Append
        );
        s.update(&header(1, 1, 0, 1), 105, 0);
        // the old epoch's batches are gone
        assert!(matches!(
            check(&s, &next),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        // non-idempotent batches are never checked
        assert_eq!(
            check(&s, &BatchHeader::parse(&batch(1, 0, None)).unwrap()).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerState::default();
        for i in 0..8 {
            s.update(&header(3, 0, i, 1), 10 + i as i64, 0);
        }
        for i in 3..8 {
            assert_eq!(
                check(&s, &header(3, 0, i, 1)).unwrap(),
                SequenceCheck::Duplicate {
                    base_offset: 10 + i as i64
                }
            );
        }
        assert!(matches!(
            check(&s, &header(3, 0, 2, 1)),
            Err(LogError::OutOfOrderSequence {
                expected: 8,
                got: 2
            })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerState::default();
        let h = header(4, 0, i32::MAX - 1, 2);
        s.update(&h, 0, 0);
        assert_eq!(
            check(&s, &header(4, 0, 0, 1)).unwrap(),
            SequenceCheck::Append
        );
        assert!(check(&s, &header(4, 0, i32::MAX, 1)).is_err());
    }

    #[test]
    fn multi_batch_appends_are_checked_in_order() {
        let mut s = ProducerState::default();
        s.update(&header(1, 0, 0, 2), 0, 0);
        let a = header(1, 0, 2, 2);
        let b = header(1, 0, 4, 1);
        let other = header(2, 0, 9, 1);
        assert_eq!(
            s.check_append(&[(&a, 2), (&other, 4), (&b, 5)]).unwrap(),
            SequenceCheck::Append
        );
        assert!(s.check_append(&[(&b, 2), (&a, 3)]).is_err());
        // a repeated batch inside one request is refused, not reported as written
        assert!(matches!(
            s.check_append(&[(&a, 2), (&a, 4)]),
            Err(LogError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn expiry() {
        let mut s = ProducerState::default();
        s.update(&header(1, 0, 0, 1), 5, 1000);
        s.update(&header(2, 0, 0, 1), 50, 1000);
        s.update(&header(3, 0, 0, 1), 60, 1000 + PRODUCER_EXPIRATION_MS);
        assert_eq!(s.expire(10, 1000), 1);
        assert_eq!(s.expire(10, 1000 + PRODUCER_EXPIRATION_MS), 1);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn snapshots_round_trip_and_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.update(&header(9, 2, i * 2, 2), 10 + i as i64 * 2, 77);
        }
        s.save(dir.path(), 24).unwrap();
        let (loaded, offset) = ProducerState::load(dir.path(), 100).unwrap().unwrap();
        assert_eq!((offset, &loaded), (24, &s));
        assert_eq!(
            check(&loaded, &header(9, 2, 12, 2)).unwrap(),
            SequenceCheck::Duplicate { base_offset: 22 }
        );
        let mut newer = s.clone();
        newer.update(&header(9, 2, 14, 1), 24, 78);
        newer.save(dir.path(), 25).unwrap();
        s.save(dir.path(), 23).unwrap();
        // only the two newest remain
        assert_eq!(list_snapshots(dir.path()).unwrap().len(), 2);
        assert_eq!(ProducerState::load(dir.path(), 100).unwrap().unwrap().1, 25);
        // a damaged newest snapshot falls back to the older one
        let path = snapshot_path(dir.path(), 25);
        let mut raw = fs::read(&path).unwrap();
        raw[20] ^= 1;
        fs::write(&path, raw).unwrap();
        assert_eq!(ProducerState::load(dir.path(), 100).unwrap().unwrap().1, 24);
        // snapshots beyond the log end are dropped
        assert!(ProducerState::load(dir.path(), 20).unwrap().is_none());
        assert!(list_snapshots(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn garbage_snapshots_do_not_panic() {
        for raw in [
            vec![],
            vec![1, 2, 3],
            b"odmsps02".to_vec(),
            [b"odmsps02".as_slice(), &[0xff; 40]].concat(),
        ] {
            assert!(ProducerState::decode(&raw).is_none());
            let mut with_crc = raw.clone();
            with_crc.extend_from_slice(&crc32c::crc32c(&raw).to_be_bytes());
            assert!(ProducerState::decode(&with_crc).is_none());
        }
    }
}
