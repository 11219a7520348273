//! Kafka's v2 record batch header: the only part of a batch the log ever looks at.
//!
//! Layout (big-endian): baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
//! crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
//! producerId i64, producerEpoch i16, baseSequence i32, recordsCount i32, then the records.
//! The CRC32C covers everything from `attributes` to the end of the batch.

use std::ops::Range;

use crate::LogError;

/// Bytes before the records: everything up to and including `records_count`.
pub const HEADER_LEN: usize = 61;
/// baseOffset (8) + batchLength (4): the part of a batch not counted in batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The only record batch format the log stores.
pub const MAGIC: i8 = 2;
/// Where the CRC-covered part starts (attributes).
const CRC_START: usize = 21;

const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn corrupt(msg: String) -> LogError {
    LogError::CorruptBatch(msg)
}

// Fixed-size views: indexing a `[u8; HEADER_LEN]` with constant ranges cannot go out of bounds.
fn i64_at(h: &[u8; HEADER_LEN], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    i64::from_be_bytes(b)
}

fn i32_at(h: &[u8; HEADER_LEN], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&h[at..at + 4]);
    i32::from_be_bytes(b)
}

fn i16_at(h: &[u8; HEADER_LEN], at: usize) -> i16 {
    i16::from_be_bytes([h[at], h[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only what the header itself says
    /// (magic, lengths, counts), not that the whole batch is present or its CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        let Some(raw) = buf.get(..HEADER_LEN) else {
            return Err(corrupt(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        };
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(raw);
        let header = BatchHeader {
            base_offset: i64_at(&h, 0),
            batch_length: i32_at(&h, 8),
            partition_leader_epoch: i32_at(&h, 12),
            magic: h[16] as i8,
            crc: i32_at(&h, 17) as u32,
            attributes: i16_at(&h, 21),
            last_offset_delta: i32_at(&h, 23),
            base_timestamp: i64_at(&h, 27),
            max_timestamp: i64_at(&h, 35),
            producer_id: i64_at(&h, 43),
            producer_epoch: i16_at(&h, 51),
            base_sequence: i32_at(&h, 53),
            records_count: i32_at(&h, 57),
        };
        if header.magic != MAGIC {
            return Err(corrupt(format!(
                "magic {} is not supported (only v2 record batches)",
                header.magic
            )));
        }
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(corrupt(format!(
                "batch length {} is shorter than the batch header",
                header.batch_length
            )));
        }
        if header.last_offset_delta < 0 {
            return Err(corrupt(format!(
                "negative last offset delta {}",
                header.last_offset_delta
            )));
        }
        if header.records_count < 0 {
            return Err(corrupt(format!(
                "negative record count {}",
                header.records_count
            )));
        }
        Ok(header)
    }

    /// Length of the whole batch including the offset and length fields.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record (base offset + last offset delta).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta.max(0) as i64)
    }

    /// How many offsets the batch occupies.
    pub fn offset_span(&self) -> i64 {
        self.last_offset_delta.max(0) as i64 + 1
    }

    /// Sequence number of the last record; sequences wrap from i32::MAX to 0.
    pub fn last_sequence(&self) -> i32 {
        next_sequence(self.base_sequence, self.last_offset_delta)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch carries idempotent-producer metadata.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// `seq + n` in Kafka's sequence space, which wraps from i32::MAX to 0.
pub fn next_sequence(seq: i32, n: i32) -> i32 {
    let sum = seq as i64 + n as i64;
    sum.rem_euclid(i32::MAX as i64 + 1) as i32
}

/// CRC32C of a whole batch as it should appear in its header.
pub fn compute_crc(batch: &[u8]) -> Option<u32> {
    batch.get(CRC_START..).map(crc32c::crc32c)
}

/// Checks the CRC32C of a whole batch (`batch` holds exactly one batch).
pub fn validate_crc(batch: &[u8]) -> Result<(), LogError> {
    let h = BatchHeader::parse(batch)?;
    if batch.len() != h.total_len() {
        return Err(corrupt(format!(
            "batch is {} bytes but its header says {}",
            batch.len(),
            h.total_len()
        )));
    }
    let actual = compute_crc(batch).unwrap_or_default();
    if actual != h.crc {
        return Err(corrupt(format!(
            "crc mismatch: header {:#010x}, computed {actual:#010x}",
            h.crc
        )));
    }
    Ok(())
}

/// One validated batch of an input buffer.
#[derive(Clone, Debug)]
pub struct SplitBatch {
    pub header: BatchHeader,
    /// Where the batch lies in the buffer.
    pub range: Range<usize>,
}

/// Splits a buffer of consecutive batches, checking each completely (length, magic, CRC32C,
/// producer fields). Fails on the first bad batch, and on an empty buffer.
pub fn split_batches(buf: &[u8]) -> Result<Vec<SplitBatch>, LogError> {
    split(buf, true)
}

/// [`split_batches`] for an [`EntryBatch`], built here: its CRC is right by construction.
pub(crate) fn split_entry_batch(batch: &EntryBatch) -> Result<Vec<SplitBatch>, LogError> {
    split(&batch.0, false)
}

fn split(buf: &[u8], check_crc: bool) -> Result<Vec<SplitBatch>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let header = BatchHeader::parse(rest)
            .map_err(|e| corrupt(format!("batch at byte {pos}: {}", strip(&e))))?;
        let len = header.total_len();
        let Some(batch) = rest.get(..len) else {
            return Err(corrupt(format!(
                "batch at byte {pos} needs {len} bytes, {} remain",
                rest.len()
            )));
        };
        if check_crc {
            validate_crc(batch)
                .map_err(|e| corrupt(format!("batch at byte {pos}: {}", strip(&e))))?;
        }
        // Control batches (transaction markers) carry no sequence.
        if header.has_producer_id() && !header.is_control() && header.base_sequence < 0 {
            return Err(corrupt(format!(
                "batch at byte {pos}: producer id {} with negative base sequence {}",
                header.producer_id, header.base_sequence
            )));
        }
        out.push(SplitBatch {
            header,
            range: pos..pos + len,
        });
        pos += len;
    }
    if out.is_empty() {
        return Err(corrupt("no record batch".into()));
    }
    Ok(out)
}

/// The reason inside a `CorruptBatch`, to prefix it with a position without nesting labels.
pub(crate) fn strip(e: &LogError) -> String {
    match e {
        LogError::CorruptBatch(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A batch that [`encode_entries`] built. [`crate::Partition::append_entries`] takes it
/// without computing its CRC again, as `append` does for batches from outside (that second
/// CRC of every byte was ~3% of the RocketMQ broker's instructions per send, callgrind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryBatch(Vec<u8>);

impl EntryBatch {
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for EntryBatch {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A batch of opaque entries, for brokers that keep their own message format (AMQP and
/// RocketMQ): a v2 batch header, so that the log indexes, checks and retains it like any
/// batch, whose records section is `entries.len()` entries, each a u32 length and its bytes.
/// The log gives entry `i` offset `base_offset + i`.
pub fn encode_entries(entries: &[&[u8]], timestamp_ms: i64) -> EntryBatch {
    let body: usize = entries.iter().map(|e| 4 + e.len()).sum();
    let mut b = Vec::with_capacity(HEADER_LEN + body);
    let count = i32::try_from(entries.len()).unwrap_or(i32::MAX);
    let batch_length = i32::try_from(HEADER_LEN - LOG_OVERHEAD + body).unwrap_or(i32::MAX);
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(MAGIC as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    for e in entries {
        b.extend_from_slice(&u32::try_from(e.len()).unwrap_or(u32::MAX).to_be_bytes());
        b.extend_from_slice(e);
    }
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    EntryBatch(b)
}

/// The entries of consecutive batches written by [`encode_entries`] (as a read returns
/// them), with their offsets. A batch that is not such a batch is an error.
pub fn decode_entries(buf: &[u8]) -> Result<Vec<(i64, &[u8])>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let header = BatchHeader::parse(rest)?;
        let batch = rest
            .get(..header.total_len())
            .ok_or_else(|| corrupt(format!("batch at byte {pos} is cut short")))?;
        let mut at = HEADER_LEN;
        for i in 0..header.records_count {
            let len = batch
                .get(at..at + 4)
                .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
                .ok_or_else(|| {
                    corrupt(format!("entry {i} of batch at byte {pos} has no length"))
                })?;
            let entry = batch
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| corrupt(format!("entry {i} of batch at byte {pos} is cut short")))?;
            out.push((header.base_offset + i64::from(i), entry));
            at += 4 + len;
        }
        pos += header.total_len();
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_support {
    /// A valid v2 batch of `count` records (uncompressed; the records are opaque filler of
    /// `record_len` bytes each, the log never parses them).
    pub fn batch_sized(
        count: i32,
        max_ts: i64,
        producer: Option<(i64, i16, i32)>,
        record_len: usize,
    ) -> Vec<u8> {
        let records = vec![0xabu8; record_len * count.max(1) as usize];
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let mut b = Vec::with_capacity(super::HEADER_LEN + records.len());
        b.extend_from_slice(&0i64.to_be_bytes());
        let batch_length = (super::HEADER_LEN - super::LOG_OVERHEAD + records.len()) as i32;
        b.extend_from_slice(&batch_length.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&max_ts.to_be_bytes());
        b.extend_from_slice(&max_ts.to_be_bytes());
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A valid batch of `count` records of 10 bytes each, all with timestamp `ts`.
    pub fn batch(count: i32, ts: i64, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
        batch_sized(count, ts, producer, 10)
    }

    /// Headers of every batch in a read result (checking each batch's CRC and that the
    /// result holds whole batches only).
    pub fn headers(data: &[u8]) -> Vec<super::BatchHeader> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let h = super::BatchHeader::parse(rest).unwrap();
            super::validate_crc(&rest[..h.total_len()]).unwrap();
            rest = &rest[h.total_len()..];
            out.push(h);
        }
        out
    }

    /// Base offsets of every batch in a read result.
    pub fn offsets(data: &[u8]) -> Vec<i64> {
        headers(data).iter().map(|h| h.base_offset).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::batch;
    use super::*;

    #[test]
    fn entries_round_trip_through_a_valid_batch() {
        let a = encode_entries(&[b"one", b"", b"three"], 42);
        let mut b = encode_entries(&[b"four"], 43).into_vec();
        b[..8].copy_from_slice(&3i64.to_be_bytes());
        let split = split_batches(&a).unwrap();
        assert_eq!(split[0].header.records_count, 3);
        assert_eq!(split[0].header.offset_span(), 3);
        // What `append_entries` skips, the CRC, is right.
        assert_eq!(split_entry_batch(&a).unwrap().len(), 1);
        validate_crc(&a).unwrap();
        let mut both = a.to_vec();
        both.extend_from_slice(&b);
        let got = decode_entries(&both).unwrap();
        assert_eq!(
            got,
            vec![
                (0, &b"one"[..]),
                (1, &b""[..]),
                (2, &b"three"[..]),
                (3, &b"four"[..])
            ]
        );
        assert!(decode_entries(&a[..a.len() - 1]).is_err());
    }

    #[test]
    fn parses_all_fields() {
        let b = batch(3, 12, Some((7, 1, 5)));
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.batch_length as usize, b.len() - LOG_OVERHEAD);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.magic, 2);
        assert_eq!(h.attributes, 0);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!((h.base_timestamp, h.max_timestamp), (12, 12));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 5)
        );
        assert_eq!(h.records_count, 3);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.last_sequence(), 7);
        assert_eq!(h.offset_span(), 3);
        assert!(!h.is_transactional() && !h.is_control());
    }

    #[test]
    fn attribute_flags() {
        let mut b = batch(1, 0, None);
        b[22] = 0x30;
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_transactional() && h.is_control());
    }

    #[test]
    fn crc_detects_any_flipped_byte_after_the_crc_field() {
        let b = batch(2, 0, None);
        validate_crc(&b).unwrap();
        for i in CRC_START..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert!(validate_crc(&bad).is_err(), "byte {i}");
        }
        // baseOffset and partitionLeaderEpoch are outside the CRC
        let mut moved = b.clone();
        moved[..8].copy_from_slice(&99i64.to_be_bytes());
        validate_crc(&moved).unwrap();
    }

    #[test]
    fn rejects_malformed_headers() {
        let b = batch(1, 0, None);
        assert!(BatchHeader::parse(&b[..HEADER_LEN - 1]).is_err());
        assert!(BatchHeader::parse(&[]).is_err());
        let mut magic1 = b.clone();
        magic1[16] = 1;
        assert!(BatchHeader::parse(&magic1).is_err());
        let mut short = b.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(BatchHeader::parse(&short).is_err());
        let mut negative = b.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(BatchHeader::parse(&negative).is_err());
        let mut delta = b.clone();
        delta[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(BatchHeader::parse(&delta).is_err());
    }

    #[test]
    fn split_checks_every_batch() {
        let one = batch(1, 0, None);
        let two = batch(2, 5, Some((1, 0, 0)));
        let both = [one.clone(), two.clone()].concat();
        let split = split_batches(&both).unwrap();
        assert_eq!(split.len(), 2);
        assert_eq!(split[1].range, one.len()..both.len());
        assert_eq!(split[1].header.producer_id, 1);

        assert!(split_batches(&[]).is_err());
        assert!(split_batches(&both[..both.len() - 1]).is_err());
        assert!(split_batches(&[both.clone(), vec![0; 5]].concat()).is_err());
        let mut bad = both.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(split_batches(&bad).is_err());
        // an idempotent batch needs a sequence number, a control batch does not
        assert!(split_batches(&batch(1, 0, Some((1, 0, -1)))).is_err());
        let mut control = batch(1, 0, Some((1, 0, -1)));
        control[22] = 0x30;
        let crc = compute_crc(&control).unwrap();
        control[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(split_batches(&control).is_ok());
    }

    #[test]
    fn huge_length_does_not_panic() {
        let mut b = batch(1, 0, None);
        b[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(split_batches(&b).is_err());
        assert!(validate_crc(&b).is_err());
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(5, 0), 5);
        let h = BatchHeader::parse(&batch(3, 0, Some((1, 0, i32::MAX - 1)))).unwrap();
        assert_eq!(h.last_sequence(), 0);
    }
}
