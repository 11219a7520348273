#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("offset {requested} is outside {log_start}..={high_watermark}")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        high_watermark: i64,
    },
    #[error("storage quota reached: {used} of {quota} bytes used")]
    QuotaExceeded { used: u64, quota: u64 },
    #[error("duplicate of the batch already written at offset {base_offset}")]
    DuplicateSequence { base_offset: i64 },
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    #[error("producer epoch {got} is older than the current {current}")]
    InvalidProducerEpoch { current: i16, got: i16 },
    #[error("record batch of {size} bytes is larger than the segment size {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("unknown partition")]
    UnknownPartition,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_details() {
        let e = LogError::OffsetOutOfRange {
            requested: 5,
            log_start: 10,
            high_watermark: 20,
        };
        assert_eq!(e.to_string(), "offset 5 is outside 10..=20");
        let e = LogError::from(std::io::Error::other("disk gone"));
        assert!(matches!(e, LogError::Io(_)));
        assert!(e.to_string().contains("disk gone"));
        let e = LogError::QuotaExceeded { used: 7, quota: 5 };
        assert!(e.to_string().contains("7 of 5"));
    }
}
