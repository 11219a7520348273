//! The control plane of OpenDMS: domain types, the documented rules, the lifecycle of
//! instances and the reconciler that keeps the brokers in line with the metadata store.
//!
//! The façades call [`ControlPlane`] with domain commands ([`model`]) and render what it
//! answers; it reaches the brokers only through the `engine` crate's neutral boundary.

pub mod catalog;
pub mod error;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod plane;
pub mod validation;

pub use error::ControlError;
pub use plane::{
    now_ms, permission_name, start_date, topic_permission, AccessPolicy, AclUserRequest,
    BatchOutcome, Caller, ConfigValue, ControlPlane, ListFilter, MessageQuery, MigrationKind,
    MqGroupRequest, MqTopicChange, MqTopicRequest, PlaneConfig, UpgradeRequest,
};
