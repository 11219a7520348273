//! How an engine operation can fail, in terms every engine shares. Each engine converts its
//! broker's own errors (Kafka error codes, topic errors, I/O) into these at its edge; the
//! control plane maps them to domain errors.

use std::net::SocketAddr;

use crate::EngineKind;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine is known but this build has no implementation of it.
    #[error("the {0} engine is not available in this build of OpenDMS")]
    Unavailable(EngineKind),
    /// The engine has no such resource or operation (a RabbitMQ instance has no topics).
    #[error("{what} is not supported by {kind} instances")]
    Unsupported {
        kind: EngineKind,
        what: &'static str,
    },
    #[error("instance {0} is not running")]
    NotRunning(String),
    /// Another process holds a listen address of the instance.
    #[error("address {0} is in use by another process")]
    AddressInUse(SocketAddr),
    #[error("cannot start the brokers: {0}")]
    Start(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    /// The resource is in use (a consumer group with active members).
    #[error("{0} is in use")]
    InUse(String),
    /// The broker refused the request by its own rules (an invalid config, too many
    /// partitions, a malformed network list).
    #[error("{0}")]
    Refused(String),
    /// Storage or metadata could not be read or written.
    #[error("storage: {0}")]
    Storage(String),
}

impl EngineError {
    /// A blocking task that did not finish (panicked or was cancelled).
    pub(crate) fn task(e: tokio::task::JoinError) -> EngineError {
        EngineError::Storage(format!("background task failed: {e}"))
    }
}
