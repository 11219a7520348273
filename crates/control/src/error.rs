//! The closed set of ways a control-plane operation can fail. Each façade maps these to its
//! own wire codes in one place (`api-huawei`'s `error.rs`).

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// An engine name the documents do not know (parsed at the edge).
    #[error("unsupported engine {0:?}")]
    UnsupportedEngine(String),
    /// A documented engine this build of OpenDMS does not run.
    #[error("the {0} engine is not available in this build of OpenDMS")]
    EngineUnavailable(engine::EngineKind),
    #[error("unsupported engine version {0:?}")]
    UnsupportedVersion(String),
    #[error("invalid product_id {0:?}")]
    InvalidProduct(String),
    #[error("invalid instance name: 4 to 64 characters, starting with a letter, of letters, digits, '_' and '-'")]
    InvalidName,
    #[error("the description can contain at most 1024 characters")]
    DescriptionTooLong,
    #[error("{0} does not meet the complexity requirements: 8 to 32 characters with at least three of lowercase letters, uppercase letters, digits and special characters")]
    WeakPassword(&'static str),
    #[error("invalid {0}: 4 to 64 characters of letters, digits, '_' and '-'")]
    InvalidUsername(&'static str),
    #[error("{0} in the request is empty")]
    EmptyField(&'static str),
    #[error("availability zone {0:?} does not exist")]
    UnknownZone(String),
    /// How many AZs the engine's instances take, as the document states it.
    #[error("{0}")]
    ZoneCount(&'static str),
    #[error("instance name {0:?} already exists")]
    DuplicateName(String),
    #[error("invalid instance id {0:?}")]
    InvalidInstanceId(String),
    #[error("invalid status filter {0:?}")]
    InvalidStatusFilter(String),
    #[error("invalid parameter {0}")]
    InvalidParameter(String),
    #[error("the action parameter must be delete or restart")]
    InvalidAction,
    #[error("the instances parameter in the request is empty")]
    EmptyInstances,
    #[error("the instances array can contain at most 50 instance ids")]
    TooManyInstances,
    #[error("this operation is not allowed while the instance is {0}")]
    Busy(String),
    #[error("the following instances in the Creating, Starting, Stopping, or Restarting state cannot be deleted: {0}")]
    CannotDelete(String),
    #[error("invalid maintenance time window")]
    InvalidMaintainWindow,
    #[error("invalid disk space: {0}")]
    InvalidStorage(String),
    #[error("invalid storage_spec_code {0:?}")]
    InvalidSpecCode(String),
    #[error("the maximum number of disk expansion times has been reached")]
    ExtendLimit,
    #[error("instance {0} does not exist")]
    InstanceNotFound(String),
    /// The rule the name broke, as the document states it.
    #[error("{0}")]
    InvalidTopicName(&'static str),
    #[error("the number of partitions of a topic must be within 1-{0}")]
    TopicPartitions(i64),
    #[error("the number of replicas of a topic must be within 1-{0}")]
    TopicReplicas(i64),
    #[error("the message retention period of a topic must be within 1-{0} hours")]
    TopicRetention(i64),
    #[error("duplicate topic name {0:?}")]
    TopicExists(String),
    /// Refused by a rule of the broker or of the documents (a resource that does not exist,
    /// a group with members, an invalid config).
    #[error("{0}")]
    Refused(String),
    #[error("task {0} does not exist")]
    TaskNotFound(String),
    /// A plug-in name the engine's plug-in list does not have (seed 002 DMS.00400970).
    #[error("RabbitMQ plugin {0} does not exist")]
    PluginNotFound(String),
    #[error("consumer group {0} does not exist")]
    GroupNotFound(String),
    #[error("consumer group {0} already exists")]
    GroupExists(String),
    /// No client of the group is connected (seed 001 DMS.50050004).
    #[error("consumer group {0} is offline")]
    GroupOffline(String),
    #[error("invalid consumer group name {0:?}: 3 to 64 characters of letters, digits, '%', '|', '-' and '_'")]
    InvalidGroupName(String),
    #[error("timestamp {0} is invalid")]
    InvalidTimestamp(i64),
    #[error("{0}")]
    NotSupported(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<store::StoreError> for ControlError {
    fn from(e: store::StoreError) -> Self {
        ControlError::Internal(format!("metadata store: {e}"))
    }
}

impl From<engine::EngineError> for ControlError {
    fn from(e: engine::EngineError) -> Self {
        use engine::EngineError as E;
        match e {
            E::Unavailable(kind) => ControlError::EngineUnavailable(kind),
            E::Unsupported { .. } => ControlError::NotSupported(e.to_string()),
            E::NotRunning(_) => ControlError::Busy("not running".into()),
            E::AlreadyExists(_) | E::NotFound(_) | E::InUse(_) | E::Refused(_) => {
                ControlError::Refused(e.to_string())
            }
            E::AddressInUse(_) | E::Start(_) | E::Storage(_) => {
                ControlError::Internal(format!("engine: {e}"))
            }
        }
    }
}
