//! The message storage engine shared by the OpenDMS brokers.
//!
//! Each partition is a directory of segments: `<base offset>.log` holds record batches exactly
//! as producers sent them (only the base offset is rewritten), `.index` maps offsets to file
//! positions sparsely and `.timeindex` maps timestamps to offsets. A [`LogStore`] owns the
//! partitions of one instance and their shared storage quota.
//!
//! Everything here is blocking file I/O; async callers use `spawn_blocking`.

pub mod batch;
mod config;
mod error;
mod partition;
mod producer;
mod segment;
mod store;

pub use config::{FlushPolicy, LogConfig, QuotaPolicy, StoreConfig};
pub use error::LogError;
pub use partition::{AppendInfo, FetchedData, Partition};
pub use store::LogStore;
