//! Everything an engine needs to run one instance, in the control plane's terms.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::EngineKind;

/// One instance as the control plane wants it to run.
#[derive(Clone, Debug)]
pub struct InstancePlan {
    pub instance_id: String,
    pub engine: EngineKind,
    /// Where the instance keeps its messages and broker-side metadata.
    pub data_dir: PathBuf,
    /// One listen address per broker.
    pub listeners: Vec<SocketAddr>,
    /// Where the broker's management HTTP API listens (RabbitMQ's, at port 15672 in the
    /// cloud); `None` for engines without one.
    pub management_listener: Option<SocketAddr>,
    /// Where the instance's name server listens (RocketMQ); `None` for other engines.
    pub namesrv_listener: Option<SocketAddr>,
    /// Host clients are told to dial instead of the listen addresses.
    pub advertised_host: Option<String>,
    pub limits: Limits,
    /// Create unknown topics when clients ask for them.
    pub auto_create_topics: bool,
    /// Every client must authenticate (SASL for Kafka).
    pub require_auth: bool,
    /// Enforce the instance's access rules (Kafka ACLs).
    pub enforce_access_rules: bool,
    /// Users the access rules do not apply to.
    pub admin_users: Vec<String>,
    /// Client networks allowed to connect (`a.b.c.d` or CIDR); `None` lets everyone in.
    pub allowed_networks: Option<Vec<String>>,
    /// Consumer groups declared through the APIs, registered in the broker at start.
    pub declared_groups: Vec<String>,
    /// How long messages are kept unless a resource says otherwise; negative keeps them.
    pub retention_hours: i64,
    /// Broker plug-ins switched on (RabbitMQ's); `None`: the engine's defaults.
    pub plugins: Option<Vec<String>>,
    /// Live broker settings (RocketMQ's); `None`: from `retention_hours` and
    /// `auto_create_topics` and the engine's defaults.
    pub mq_settings: Option<crate::mq::MqSettings>,
}

/// What an instance may use; changed on a running instance with `BrokerAdmin::apply_limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub storage_bytes: Option<u64>,
    pub when_full: DiskFullPolicy,
    /// Partitions (or queues) over all topics.
    pub max_partitions: Option<u32>,
}

/// What happens when an instance's storage is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DiskFullPolicy {
    /// Delete the oldest messages (Huawei `time_base`).
    #[default]
    DeleteOldest,
    /// Refuse new messages (Huawei `produce_reject`).
    RejectWrites,
}

/// A user and password handed to the broker, which keeps only its own hashes of it.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}
