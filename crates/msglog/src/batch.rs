//! Kafka's v2 record batch header: the only part of a batch the log reads.

use crate::LogError;

/// Bytes before the records: everything up to and including `records_count`.
pub const HEADER_LEN: usize = 61;
/// baseOffset (8) + batchLength (4): not counted in batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Where the CRC-covered part starts (attributes).
const CRC_START: usize = 21;

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

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only what the header itself says
    /// (length and magic), not that the whole batch is present.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        if buf.len() < HEADER_LEN {
            return Err(LogError::CorruptBatch(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        }
        let h = BatchHeader {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length: i32::from_be_bytes(be(buf, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes(be(buf, 17)),
            attributes: i16::from_be_bytes(be(buf, 21)),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)),
            base_timestamp: i64::from_be_bytes(be(buf, 27)),
            max_timestamp: i64::from_be_bytes(be(buf, 35)),
            producer_id: i64::from_be_bytes(be(buf, 43)),
            producer_epoch: i16::from_be_bytes(be(buf, 51)),
            base_sequence: i32::from_be_bytes(be(buf, 53)),
            records_count: i32::from_be_bytes(be(buf, 57)),
        };
        if h.magic != 2 {
            return Err(LogError::CorruptBatch(format!(
                "magic {} is not supported (only v2 batches)",
                h.magic
            )));
        }
        if (h.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(LogError::CorruptBatch(format!(
                "batch length {} is shorter than its header",
                h.batch_length
            )));
        }
        if h.last_offset_delta < 0 {
            return Err(LogError::CorruptBatch(format!(
                "negative last offset delta {}",
                h.last_offset_delta
            )));
        }
        Ok(h)
    }

    /// Length of the whole batch including the offset and length fields.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Number of sequence numbers the batch uses.
    pub fn record_span(&self) -> i32 {
        self.last_offset_delta + 1
    }
}

/// Checks the CRC32C of a whole batch (`batch` holds exactly one batch).
pub fn validate_crc(batch: &[u8]) -> Result<(), LogError> {
    let h = BatchHeader::parse(batch)?;
    if batch.len() != h.total_len() {
        return Err(LogError::CorruptBatch(format!(
            "batch is {} bytes but its header says {}",
            batch.len(),
            h.total_len()
        )));
    }
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != h.crc {
        return Err(LogError::CorruptBatch(format!(
            "crc mismatch: header {:#010x}, computed {actual:#010x}",
            h.crc
        )));
    }
    Ok(())
}

/// Splits a buffer of consecutive batches into validated (header, range) pairs. Fails on
/// the first batch that is truncated, malformed or has a bad CRC.
pub fn split_batches(buf: &[u8]) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let h = BatchHeader::parse(&buf[pos..])?;
        let end = pos + h.total_len();
        if end > buf.len() {
            return Err(LogError::CorruptBatch(format!(
                "batch at byte {pos} needs {} bytes, {} remain",
                h.total_len(),
                buf.len() - pos
            )));
        }
        validate_crc(&buf[pos..end])?;
        out.push((h, pos..end));
        pos = end;
    }
    if out.is_empty() {
        return Err(LogError::CorruptBatch("no record batch".into()));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_support {
    /// A valid v2 batch of `count` records with the given timestamps (uncompressed; the
    /// records are opaque filler, the log never parses them).
    pub fn batch(
        count: i32,
        base_ts: i64,
        max_ts: i64,
        producer: Option<(i64, i16, i32)>,
    ) -> Vec<u8> {
        let records = vec![0xabu8; 10 * count.max(1) as usize];
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        let batch_length = (super::HEADER_LEN - super::LOG_OVERHEAD + records.len()) as i32;
        b.extend_from_slice(&batch_length.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
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
}

#[cfg(test)]
mod tests {
    use super::test_support::batch;
    use super::*;

    #[test]
    fn parses_and_validates() {
        let b = batch(3, 10, 12, Some((7, 1, 5)));
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            (
                h.records_count,
                h.last_offset_delta,
                h.producer_id,
                h.base_sequence
            ),
            (3, 2, 7, 5)
        );
        assert_eq!(h.total_len(), b.len());
        validate_crc(&b).unwrap();
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(validate_crc(&bad).is_err());
        assert!(split_batches(&b[..b.len() - 1]).is_err());
        assert!(BatchHeader::parse(&b[..10]).is_err());
        let mut two = b.clone();
        two.extend_from_slice(&batch(1, 0, 0, None));
        assert_eq!(split_batches(&two).unwrap().len(), 2);
        let mut magic1 = b;
        magic1[16] = 1;
        assert!(BatchHeader::parse(&magic1).is_err());
    }
}
