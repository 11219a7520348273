//! The control plane of OpenDMS: domain types, the documented rules, the lifecycle of
//! instances and the reconciler that keeps the brokers in line with the metadata store.

pub mod catalog;
pub mod error;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod plane;
pub mod validation;

pub use error::ControlError;
pub use plane::{
    BatchOutcome, Caller, ControlPlane, ListFilter, PlaneConfig, TopicSpec, UpgradeRequest,
};
