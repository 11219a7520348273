//! The message storage engine shared by the OpenDMS brokers.
//!
//! A [`LogStore`] owns the partitions of one instance and their shared storage quota. Each
//! partition is a directory `<root>/<topic>-<partition>/` holding:
//!
//! - `<20-digit base offset>.log`: Kafka v2 record batches exactly as producers sent them,
//!   only the 8-byte base offset rewritten;
//! - `.index`: sparse (relative offset u32, file position u32) entries, one per
//!   `index_interval_bytes`;
//! - `.timeindex`: (max timestamp i64, relative offset u32) entries, added as the maximum
//!   timestamp grows;
//! - `<offset>.snapshot`: idempotent producer state as of that offset;
//! - `log-start-offset`: the offset set by `delete_records_before`.
//!
//! Start-up checks the tail of every segment (headers and CRC32C from the last index entry),
//! cuts off a torn or corrupt end, and rebuilds missing or damaged index files. Rolled
//! segments are synced in the background (`sealed_sync`); should a crash cut one short, the
//! segments after it are removed so the log stays a prefix of what was appended.
//!
//! Segment data is written and read with direct I/O by default (`LogIo::Direct`, see
//! `direct.rs`: no page cache, reused aligned buffers) or through the page cache
//! (`LogIo::Buffered`); the files are the same either way.
//!
//! Everything here is blocking file I/O and thread-safe; async callers use `spawn_blocking`.
//! Readers never wait for appends (and the other way round): see `partition.rs`.

pub mod batch;
mod config;
mod direct;
mod error;
mod partition;
mod pool;
mod producer;
mod sealed_sync;
mod segment;
mod store;

pub use config::{FlushPolicy, LogConfig, LogIo, QuotaPolicy, StoreConfig};
pub use error::LogError;
pub use partition::{AppendInfo, FetchedData, Partition};
pub use pool::release_idle_buffers;
pub use store::{valid_topic_name, LogStore};
