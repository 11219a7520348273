//! Idempotent producer state of one partition: the last batches of every producer id, so
//! that retries are recognised and gaps refused, as Kafka does.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::batch::BatchHeader;
use crate::LogError;

/// Kafka keeps the metadata of the last five batches per producer (the most a client may
/// have in flight).
const KEPT_BATCHES: usize = 5;
const SNAPSHOT_FILE: &str = "producers.snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"odmsps01";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// What the sequence check decided for a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Append,
    Duplicate { base_offset: i64 },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32, span: i32) -> i32 {
    // Sequences wrap from i32::MAX to 0.
    ((seq as i64 + span as i64) % (i32::MAX as i64 + 1)) as i32
}

impl ProducerState {
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, LogError> {
        if h.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A producer this log has not seen (new, or its state expired): accept any start.
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
        let last_seq = next_seq(h.base_sequence, h.record_span() - 1);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: b.base_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map(|b| next_seq(b.last_seq, 1))
            .unwrap_or(0);
        if h.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence {
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch written at `base_offset`.
    pub fn update(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: next_seq(h.base_sequence, h.record_span() - 1),
            base_offset,
        });
        while entry.batches.len() > KEPT_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Writes the state as of `offset` (the log end) atomically.
    pub fn save(&self, dir: &Path, offset: i64) -> Result<(), LogError> {
        let mut out = Vec::with_capacity(24 + self.producers.len() * 96);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_data()?;
        fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
        Ok(())
    }

    /// Loads a snapshot: the state and the offset it was taken at. `None` when missing or
    /// unreadable (the caller then rebuilds from the log).
    pub fn load(dir: &Path) -> Option<(ProducerState, i64)> {
        let raw = fs::read(dir.join(SNAPSHOT_FILE)).ok()?;
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
            let n = r.take(1)?[0];
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    base_offset: i64::from_be_bytes(r.array()?),
                });
            }
            state
                .producers
                .insert(pid, ProducerEntry { epoch, batches });
        }
        Some((state, offset))
    }
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
        BatchHeader::parse(&batch(count, 0, 0, Some((pid, epoch, seq)))).unwrap()
    }

    #[test]
    fn sequences() {
        let mut s = ProducerState::default();
        let h = header(1, 0, 0, 3);
        assert_eq!(s.check(&h).unwrap(), SequenceCheck::Append);
        s.update(&h, 100);
        assert_eq!(
            s.check(&h).unwrap(),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert!(matches!(
            s.check(&header(1, 0, 5, 1)),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                got: 5
            })
        ));
        let next = header(1, 0, 3, 2);
        assert_eq!(s.check(&next).unwrap(), SequenceCheck::Append);
        s.update(&next, 103);
        assert!(matches!(
            s.check(&header(1, -1, 5, 1)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(s.check(&header(1, 1, 4, 1)).is_err());
        assert_eq!(s.check(&header(1, 1, 0, 1)).unwrap(), SequenceCheck::Append);
        assert_eq!(next_seq(i32::MAX, 1), 0);
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        for i in 0..7 {
            let h = header(9, 2, i * 2, 2);
            s.update(&h, 10 + i as i64 * 2);
        }
        s.save(dir.path(), 42).unwrap();
        let (loaded, offset) = ProducerState::load(dir.path()).unwrap();
        assert_eq!(offset, 42);
        assert_eq!(
            loaded.check(&header(9, 2, 12, 2)).unwrap(),
            SequenceCheck::Duplicate { base_offset: 22 }
        );
        assert_eq!(
            loaded.check(&header(9, 2, 14, 1)).unwrap(),
            SequenceCheck::Append
        );
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut raw = fs::read(&path).unwrap();
        raw[10] ^= 1;
        fs::write(&path, raw).unwrap();
        assert!(ProducerState::load(dir.path()).is_none());
    }
}
