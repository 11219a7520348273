//! Kafka-compatible broker of OpenDMS.
//!
//! One [`KafkaInstance`] is a cluster of N brokers that share one in-process state: a
//! [`msglog::LogStore`] for the partitions, a topic registry, the group coordinator, users
//! and ACLs. Each broker has its own listen address and leads its share of the partitions,
//! so clients see an ordinary multi-broker cluster.

pub mod config;
mod connection;
mod dispatch;
pub mod group;
mod handlers;
mod instance;
mod meta;
mod response;
pub mod security;
mod topics;
mod versions;

pub use config::KafkaConfig;
pub use connection::{parse_request, FrameError, ParsedRequest};
pub use instance::{
    BrokerAddress, GroupDeleteError, InstanceError, KafkaAdmin, KafkaInstance, PartitionOffsets,
};
pub use topics::{TopicError, TopicSummary};
