use std::time::Duration;

/// Per-partition settings; topics override the store-wide defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment starts when the active one would grow past this.
    pub segment_bytes: u64,
    /// One sparse offset-index entry per this many bytes of batches.
    pub index_interval_bytes: u64,
    /// Segments whose newest record is older than this are deleted; `None` keeps them.
    pub retention_ms: Option<i64>,
    /// Oldest segments are deleted while the partition is larger than this.
    pub retention_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: Some(72 * 3600 * 1000),
            retention_bytes: None,
        }
    }
}

/// When appended data is forced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fdatasync inside every append.
    EveryAppend,
    /// The broker flushes before acknowledging acks=all produces (the default).
    AcksAll,
    /// The caller flushes everything on this interval.
    Interval(Duration),
    /// Never fsync; the OS writes back the page cache.
    Os,
}

/// What happens when the store reaches its quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaPolicy {
    /// Delete the oldest segments to make room (Huawei `time_base`).
    TimeBase,
    /// Refuse appends (Huawei `produce_reject`).
    ProduceReject,
}

/// How segment data moves between the broker and the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogIo {
    /// Direct I/O (`O_DIRECT`) for appends and fetch reads, bypassing the page cache (the
    /// default; segments fall back to `Buffered` where the file system refuses direct I/O).
    /// Appends cost no page-cache memory and syncs are cheap; every fetch reads the disk.
    Direct,
    /// Everything through the page cache, as Kafka does: fetches of recent data come from
    /// memory, appends fill the page cache and are written back by the kernel.
    Buffered,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub quota_bytes: Option<u64>,
    pub quota_policy: QuotaPolicy,
    pub flush: FlushPolicy,
    pub io: LogIo,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            quota_bytes: None,
            quota_policy: QuotaPolicy::TimeBase,
            flush: FlushPolicy::AcksAll,
            io: LogIo::Direct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let log = LogConfig::default();
        assert_eq!(log.segment_bytes, 64 * 1024 * 1024);
        assert_eq!(log.index_interval_bytes, 4096);
        assert_eq!(log.retention_ms, Some(72 * 3600 * 1000));
        assert_eq!(log.retention_bytes, None);
        let store = StoreConfig::default();
        assert_eq!(store.quota_bytes, None);
        assert_eq!(store.quota_policy, QuotaPolicy::TimeBase);
        assert_eq!(store.flush, FlushPolicy::AcksAll);
        assert_eq!(store.io, LogIo::Direct);
    }
}
