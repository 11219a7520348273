//! Consumer group coordinator: the classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), group administration (ListGroups, DescribeGroups,
//! DeleteGroups) and committed offsets (OffsetCommit, OffsetFetch, OffsetDelete).
//!
//! Group membership lives in memory only, as in Kafka a restarted coordinator
//! makes members rejoin. Committed offsets are durable in an append-only journal
//! (see `offsets.rs`).

mod coordinator;
mod offsets;
mod state;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use coordinator::GroupCoordinator;

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("offsets journal i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt offsets journal: {0}")]
    Corrupt(String),
}

/// Tunables of the coordinator. `GroupCoordinator::open` uses `Default`.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Like Kafka's `group.initial.rebalance.delay.ms`: the first rebalance of an
    /// empty group waits this long (extended while members keep arriving) so that
    /// consumers started together land in one generation.
    pub initial_rebalance_delay: Duration,
    /// Upper bound of the extended initial delay.
    pub initial_rebalance_delay_max: Duration,
    /// Accepted session timeout range (`INVALID_SESSION_TIMEOUT` outside it).
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Like Kafka's `offset.metadata.max.bytes`.
    pub max_offset_metadata_bytes: usize,
    /// The journal is not compacted below this size.
    pub compact_min_bytes: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_millis(100),
            initial_rebalance_delay_max: Duration::from_secs(3),
            // Kafka's default minimum is 6 s; being lenient keeps test clients that use
            // short timeouts working, and 0 or negative values are still refused.
            min_session_timeout_ms: 1,
            max_session_timeout_ms: 30 * 60 * 1000,
            max_offset_metadata_bytes: 4096,
            compact_min_bytes: 1 << 20,
        }
    }
}

/// Kafka error codes used by the coordinator.
pub(crate) mod codes {
    pub const NONE: i16 = 0;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}
