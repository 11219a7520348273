//! The boundary between the control plane and the brokers.
//!
//! The control plane decides what should run; an [`Engine`] runs it. Each broker of OpenDMS
//! (Kafka, AMQP 0-9-1 and RocketMQ) is one implementation: it turns an
//! [`InstancePlan`] into running brokers and answers an engine-neutral [`BrokerAdmin`] for
//! them. Everything broker-specific (Kafka config keys, error codes, principals, where SASL
//! users are stored) stays in that engine's module; nothing above this crate names a type of
//! a broker crate or of `msglog`.
//!
//! [`Engines`] keeps the engines of this build and the instances they run.

mod admin;
mod error;
pub mod kafka;
mod kind;
pub mod mq;
mod plan;
pub mod rabbitmq;
mod registry;
pub mod rocketmq;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use admin::{
    AccessOperation, AccessResource, AccessRule, BindingInfo, BrokerAdmin, ConsumerInfo,
    ExchangeInfo, NamePattern, NewQueue, NewTopic, PartitionLag, PartitionOffsets, QueueInfo,
    TopicChange, TopicInfo, Usage, VhostPermission,
};
pub use error::EngineError;
pub use kind::EngineKind;
pub use plan::{Credentials, DiskFullPolicy, InstancePlan, Limits};
pub use registry::Engines;

/// One kind of broker.
#[async_trait]
pub trait Engine: Send + Sync {
    fn kind(&self) -> EngineKind;

    /// Prepares an instance that has never run: writes its first user (the instance's
    /// `access_user`) into the broker's own store, so that the password is only ever kept as
    /// the broker's hashes.
    async fn provision(
        &self,
        data_dir: &Path,
        first_user: Option<Credentials>,
    ) -> Result<(), EngineError>;

    /// Starts the brokers of an instance and answers once they accept connections. A listen
    /// address held by another process answers [`EngineError::AddressInUse`].
    async fn start(&self, plan: &InstancePlan) -> Result<Box<dyn Broker>, EngineError>;

    /// Deletes every byte a stopped instance stored.
    async fn destroy(&self, data_dir: &Path) -> Result<(), EngineError> {
        remove_dir(data_dir).await
    }
}

/// The running brokers of one instance.
#[async_trait]
pub trait Broker: Send + Sync {
    /// A cheap handle for administration while the brokers run.
    fn admin(&self) -> Arc<dyn BrokerAdmin>;

    /// Stops accepting, closes every connection and makes the data durable.
    async fn stop(self: Box<Self>);
}

/// Checks a list of client networks (`a.b.c.d`, `a.b.c.d/n` and the IPv6 forms) as every
/// engine reads it for [`BrokerAdmin::set_allowed_networks`]. The syntax is the Kafka
/// broker's allow list; the AMQP broker checks clients with the same list. (RocketMQ instances
/// have no allow-list API; their engine refuses one as not supported.)
pub fn check_networks(networks: &[String]) -> Result<(), String> {
    ::kafka::security::AllowList::parse(networks).map(|_| ())
}

/// Removes a directory tree off the async workers; a missing directory is not an error.
pub async fn remove_dir(dir: &Path) -> Result<(), EngineError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EngineError::Storage(format!(
            "cannot remove {}: {e}",
            dir.display()
        ))),
        _ => Ok(()),
    })
    .await
    .map_err(EngineError::task)?
}
