//! The Kafka engine: the embedded broker of the `kafka` crate behind [`Engine`].
//!
//! Everything Kafka-specific the control plane used to know lives here: which topic configs
//! stand for retention, synchronous flushing and synchronous replication, how Kafka's group
//! and topic errors read in neutral terms, that users are `User:` principals, the quota
//! policy of `msglog`, and where SASL users are stored before the first start.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kafka::security::{AclBinding, Operation, PatternType, Permission, ResourceType};
use kafka::{
    GroupDeleteError, InstanceError, KafkaAdmin, KafkaConfig, KafkaInstance, TopicError,
    TopicSummary,
};
use msglog::QuotaPolicy;

use crate::{
    AccessOperation, AccessResource, AccessRule, Broker, BrokerAdmin, Credentials, DiskFullPolicy,
    Engine, EngineError, EngineKind, InstancePlan, Limits, NamePattern, NewTopic, PartitionLag,
    PartitionOffsets, TopicChange, TopicInfo, Usage,
};

/// Topic configs behind the neutral topic settings.
const RETENTION_MS: &str = "retention.ms";
const FLUSH_MESSAGES: &str = "flush.messages";
const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
const MS_PER_HOUR: i64 = 3_600_000;

/// Retention and quota are enforced this often (Kafka's `log.retention.check.interval.ms`
/// is 5 minutes; instances here are small and tests want quick answers).
const RETENTION_CHECK: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct KafkaEngine;

#[async_trait]
impl Engine for KafkaEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Kafka
    }

    async fn provision(
        &self,
        data_dir: &Path,
        first_user: Option<Credentials>,
    ) -> Result<(), EngineError> {
        let Some(c) = first_user else {
            return Ok(());
        };
        let data_dir = data_dir.to_path_buf();
        // PBKDF2 and an fsync: off the async workers.
        tokio::task::spawn_blocking(move || {
            KafkaInstance::provision_user(&data_dir, &c.user, &c.password)
        })
        .await
        .map_err(EngineError::task)?
        .map_err(instance_error)
    }

    async fn start(&self, plan: &InstancePlan) -> Result<Box<dyn Broker>, EngineError> {
        let instance = KafkaInstance::start(config(plan))
            .await
            .map_err(|e| match e {
                InstanceError::Bind { addr, source }
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    EngineError::AddressInUse(addr)
                }
                other => EngineError::Start(other.to_string()),
            })?;
        let admin = instance.admin();
        for group in &plan.declared_groups {
            admin.declare_group(group);
        }
        tracing::debug!(instance = %plan.instance_id, bootstrap = %instance.bootstrap_servers(), "kafka brokers listening");
        Ok(Box::new(KafkaBroker {
            admin: Arc::new(KafkaBrokerAdmin {
                admin,
                default_retention_hours: plan.retention_hours,
            }),
            instance,
        }))
    }
}

/// The broker settings of an instance plan.
fn config(plan: &InstancePlan) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(plan.data_dir.clone(), plan.listeners.clone());
    cfg.advertised_host = plan.advertised_host.clone();
    cfg.auto_create_topics = plan.auto_create_topics;
    cfg.max_partitions = plan.limits.max_partitions;
    cfg.sasl = plan.require_auth;
    cfg.authorizer = plan.enforce_access_rules;
    cfg.super_users = plan.admin_users.iter().map(|u| principal(u)).collect();
    cfg.allowed_ips = plan.allowed_networks.clone();
    cfg.store.quota_bytes = plan.limits.storage_bytes;
    cfg.store.quota_policy = quota_policy(plan.limits.when_full);
    cfg.log.retention_ms = (plan.retention_hours >= 0).then(|| plan.retention_hours * MS_PER_HOUR);
    cfg.retention_check_interval = RETENTION_CHECK;
    cfg
}

fn quota_policy(p: DiskFullPolicy) -> QuotaPolicy {
    match p {
        DiskFullPolicy::DeleteOldest => QuotaPolicy::TimeBase,
        DiskFullPolicy::RejectWrites => QuotaPolicy::ProduceReject,
    }
}

/// Kafka names users as `User:` principals.
fn principal(user: &str) -> String {
    format!("User:{user}")
}

struct KafkaBroker {
    instance: KafkaInstance,
    admin: Arc<KafkaBrokerAdmin>,
}

#[async_trait]
impl Broker for KafkaBroker {
    fn admin(&self) -> Arc<dyn BrokerAdmin> {
        self.admin.clone()
    }

    async fn stop(self: Box<Self>) {
        self.instance.shutdown().await;
    }
}

struct KafkaBrokerAdmin {
    admin: KafkaAdmin,
    /// Retention of topics that do not set `retention.ms`.
    default_retention_hours: i64,
}

impl KafkaBrokerAdmin {
    fn topic_info(&self, t: TopicSummary) -> TopicInfo {
        let retention_hours = t
            .configs
            .get(RETENTION_MS)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|ms| if ms < 0 { -1 } else { ms / MS_PER_HOUR })
            .unwrap_or(self.default_retention_hours);
        TopicInfo {
            sync_replication: t.configs.get(MIN_INSYNC_REPLICAS).is_some_and(|v| v != "1"),
            sync_flush: t.configs.get(FLUSH_MESSAGES).is_some_and(|v| v == "1"),
            name: t.name,
            partitions: t.partitions,
            replication: i32::from(t.replication_factor),
            retention_hours,
            created_ms: t.created_ms,
            configs: t.configs,
        }
    }
}

#[async_trait]
impl BrokerAdmin for KafkaBrokerAdmin {
    fn kind(&self) -> EngineKind {
        EngineKind::Kafka
    }

    fn usage(&self) -> Usage {
        let (bytes_in, bytes_out) = self.admin.traffic();
        Usage {
            used_bytes: self.admin.used_bytes(),
            bytes_in,
            bytes_out,
        }
    }

    fn traffic_by_resource(&self) -> HashMap<String, (u64, u64)> {
        self.admin.topic_traffic()
    }

    fn apply_limits(&self, limits: &Limits) {
        self.admin
            .set_quota(limits.storage_bytes, quota_policy(limits.when_full));
        self.admin.set_max_partitions(limits.max_partitions);
    }

    fn set_allowed_networks(&self, networks: Option<Vec<String>>) -> Result<(), EngineError> {
        self.admin
            .set_allowed_ips(networks)
            .map_err(EngineError::Refused)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, EngineError> {
        let mut topics: Vec<TopicInfo> = self
            .admin
            .topics()
            .into_iter()
            .map(|t| self.topic_info(t))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    fn topic(&self, name: &str) -> Result<Option<TopicInfo>, EngineError> {
        Ok(self.admin.topic(name).map(|t| self.topic_info(t)))
    }

    async fn create_topic(&self, t: NewTopic) -> Result<TopicInfo, EngineError> {
        let mut configs = BTreeMap::new();
        if let Some(h) = t.retention_hours {
            configs.insert(RETENTION_MS.to_string(), (h * MS_PER_HOUR).to_string());
        }
        if t.sync_flush {
            configs.insert(FLUSH_MESSAGES.into(), "1".into());
        }
        if t.sync_replication {
            configs.insert(MIN_INSYNC_REPLICAS.into(), "2".into());
        }
        configs.extend(t.other_configs);
        let created = self
            .admin
            .create_topic(t.name, t.partitions, t.replication, configs)
            .await
            .map_err(topic_error)?;
        Ok(self.topic_info(created))
    }

    async fn delete_topic(&self, name: &str) -> Result<(), EngineError> {
        self.admin
            .delete_topic(name.to_string())
            .await
            .map_err(topic_error)
    }

    async fn change_topic(&self, name: &str, change: TopicChange) -> Result<(), EngineError> {
        let current = self
            .admin
            .topic(name)
            .ok_or_else(|| EngineError::NotFound(format!("topic {name:?}")))?;
        let mut configs = current.configs;
        if let Some(h) = change.retention_hours {
            configs.insert(RETENTION_MS.into(), (h * MS_PER_HOUR).to_string());
        }
        let mut toggle = |key: &str, on: Option<bool>, value: &str| match on {
            Some(true) => {
                configs.insert(key.to_string(), value.to_string());
            }
            Some(false) => {
                configs.remove(key);
            }
            None => {}
        };
        toggle(FLUSH_MESSAGES, change.sync_flush, "1");
        toggle(MIN_INSYNC_REPLICAS, change.sync_replication, "2");
        configs.extend(change.other_configs);
        self.admin
            .set_topic_configs(name.to_string(), configs)
            .await
            .map_err(topic_error)?;
        if let Some(total) = change.partitions {
            self.admin
                .add_partitions(name.to_string(), total)
                .await
                .map_err(topic_error)?;
        }
        Ok(())
    }

    fn partition_offsets(&self, topic: &str) -> Result<Option<Vec<PartitionOffsets>>, EngineError> {
        Ok(self.admin.partition_offsets(topic).map(|parts| {
            parts
                .into_iter()
                .map(|p| PartitionOffsets {
                    partition: p.partition,
                    log_start: p.log_start,
                    log_end: p.log_end,
                    last_append_ms: p.last_append_ms,
                })
                .collect()
        }))
    }

    fn groups(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.admin.group_ids())
    }

    fn declare_group(&self, group: &str) -> Result<bool, EngineError> {
        Ok(self.admin.declare_group(group))
    }

    fn delete_group(&self, group: &str) -> Result<(), EngineError> {
        self.admin.delete_group(group).map_err(|e| match e {
            GroupDeleteError::NotFound => {
                EngineError::NotFound(format!("consumer group {group:?}"))
            }
            GroupDeleteError::NotEmpty => EngineError::InUse(format!("consumer group {group:?}")),
            GroupDeleteError::Other(code) => {
                EngineError::Refused(format!("deleting group {group:?}: kafka error {code}"))
            }
        })
    }

    fn group_lag(&self, group: &str) -> Result<BTreeMap<String, Vec<PartitionLag>>, EngineError> {
        let mut by_topic: BTreeMap<String, Vec<PartitionLag>> = BTreeMap::new();
        // Each topic's offsets are read once.
        let mut ends: HashMap<String, Vec<kafka::PartitionOffsets>> = HashMap::new();
        for (topic, partition, committed) in self.admin.committed_offsets(group) {
            let offsets = ends
                .entry(topic.clone())
                .or_insert_with(|| self.admin.partition_offsets(&topic).unwrap_or_default());
            let broker = offsets.iter().find(|o| o.partition == partition);
            by_topic.entry(topic).or_default().push(PartitionLag {
                partition,
                committed,
                log_end: broker.map(|o| o.log_end),
                last_append_ms: broker.map_or(0, |o| o.last_append_ms),
            });
        }
        Ok(by_topic)
    }

    fn users(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.admin.users())
    }

    async fn set_user_password(&self, user: &str, password: &str) -> Result<(), EngineError> {
        self.admin
            .set_user_password(user.to_string(), password.to_string())
            .await
            .map_err(instance_error)
    }

    async fn delete_user(&self, user: &str) -> Result<bool, EngineError> {
        self.admin
            .delete_user(user.to_string())
            .await
            .map_err(instance_error)
    }

    fn access_rules(&self) -> Result<Vec<AccessRule>, EngineError> {
        Ok(self.admin.acls().iter().map(rule_of).collect())
    }

    async fn add_access_rule(&self, rule: AccessRule) -> Result<(), EngineError> {
        self.admin
            .add_acl(binding_of(&rule))
            .await
            .map_err(instance_error)
    }

    async fn remove_access_rule(&self, rule: AccessRule) -> Result<usize, EngineError> {
        self.admin
            .remove_acl(binding_of(&rule))
            .await
            .map_err(instance_error)
    }
}

fn topic_error(e: TopicError) -> EngineError {
    match e {
        TopicError::AlreadyExists(n) => EngineError::AlreadyExists(format!("topic {n:?}")),
        TopicError::Unknown(n) => EngineError::NotFound(format!("topic {n:?}")),
        TopicError::Storage(_) | TopicError::Io(_) => EngineError::Storage(e.to_string()),
        other => EngineError::Refused(other.to_string()),
    }
}

fn instance_error(e: InstanceError) -> EngineError {
    match e {
        InstanceError::Security(kafka::security::SecurityError::InvalidRequest(m)) => {
            EngineError::Refused(m)
        }
        InstanceError::Topic(t) => topic_error(t),
        other => EngineError::Storage(other.to_string()),
    }
}

fn rule_of(b: &AclBinding) -> AccessRule {
    AccessRule {
        resource: match b.resource_type {
            ResourceType::Topic => AccessResource::Topic,
            ResourceType::Group => AccessResource::Group,
            ResourceType::Cluster => AccessResource::Cluster,
            ResourceType::TransactionalId => AccessResource::TransactionalId,
        },
        resource_name: b.resource_name.clone(),
        pattern: match b.pattern_type {
            PatternType::Literal => NamePattern::Literal,
            PatternType::Prefixed => NamePattern::Prefixed,
        },
        // Principals of another type than User (none of the APIs create them) keep their
        // whole name.
        user: b
            .principal
            .strip_prefix("User:")
            .unwrap_or(&b.principal)
            .to_string(),
        host: b.host.clone(),
        operation: match b.operation {
            Operation::All => AccessOperation::All,
            Operation::Read => AccessOperation::Read,
            Operation::Write => AccessOperation::Write,
            Operation::Create => AccessOperation::Create,
            Operation::Delete => AccessOperation::Delete,
            Operation::Alter => AccessOperation::Alter,
            Operation::Describe => AccessOperation::Describe,
            Operation::ClusterAction => AccessOperation::ClusterAction,
            Operation::DescribeConfigs => AccessOperation::DescribeConfigs,
            Operation::AlterConfigs => AccessOperation::AlterConfigs,
            Operation::IdempotentWrite => AccessOperation::IdempotentWrite,
        },
        allow: b.permission == Permission::Allow,
    }
}

fn binding_of(r: &AccessRule) -> AclBinding {
    AclBinding {
        resource_type: match r.resource {
            AccessResource::Topic => ResourceType::Topic,
            AccessResource::Group => ResourceType::Group,
            AccessResource::Cluster => ResourceType::Cluster,
            AccessResource::TransactionalId => ResourceType::TransactionalId,
        },
        resource_name: r.resource_name.clone(),
        pattern_type: match r.pattern {
            NamePattern::Literal => PatternType::Literal,
            NamePattern::Prefixed => PatternType::Prefixed,
        },
        principal: principal(&r.user),
        host: r.host.clone(),
        operation: match r.operation {
            AccessOperation::All => Operation::All,
            AccessOperation::Read => Operation::Read,
            AccessOperation::Write => Operation::Write,
            AccessOperation::Create => Operation::Create,
            AccessOperation::Delete => Operation::Delete,
            AccessOperation::Alter => Operation::Alter,
            AccessOperation::Describe => Operation::Describe,
            AccessOperation::ClusterAction => Operation::ClusterAction,
            AccessOperation::DescribeConfigs => Operation::DescribeConfigs,
            AccessOperation::AlterConfigs => Operation::AlterConfigs,
            AccessOperation::IdempotentWrite => Operation::IdempotentWrite,
        },
        permission: if r.allow {
            Permission::Allow
        } else {
            Permission::Deny
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path) -> InstancePlan {
        InstancePlan {
            instance_id: "i1".into(),
            engine: EngineKind::Kafka,
            data_dir: dir.to_path_buf(),
            listeners: vec!["127.0.0.1:0".parse().unwrap()],
            management_listener: None,
            namesrv_listener: None,
            advertised_host: None,
            limits: Limits {
                storage_bytes: Some(1 << 30),
                when_full: DiskFullPolicy::RejectWrites,
                max_partitions: Some(10),
            },
            auto_create_topics: false,
            require_auth: false,
            enforce_access_rules: false,
            admin_users: vec!["admin".into()],
            allowed_networks: None,
            declared_groups: vec!["declared".into()],
            retention_hours: 72,
            plugins: None,
            mq_settings: None,
        }
    }

    #[test]
    fn plans_become_kafka_settings() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&plan(dir.path()));
        assert_eq!(cfg.super_users, vec!["User:admin".to_string()]);
        assert_eq!(cfg.store.quota_policy, QuotaPolicy::ProduceReject);
        assert_eq!(cfg.log.retention_ms, Some(72 * MS_PER_HOUR));
        assert_eq!(cfg.max_partitions, Some(10));
    }

    #[test]
    fn access_rules_round_trip_through_acl_bindings() {
        let rule = AccessRule {
            resource: AccessResource::Group,
            resource_name: "g".into(),
            pattern: NamePattern::Prefixed,
            user: "alice".into(),
            host: "*".into(),
            operation: AccessOperation::IdempotentWrite,
            allow: false,
        };
        let b = binding_of(&rule);
        assert_eq!(b.principal, "User:alice");
        assert_eq!(rule_of(&b), rule);
    }

    #[tokio::test]
    async fn topics_settings_and_errors_in_neutral_terms() {
        let dir = tempfile::tempdir().unwrap();
        let engine = KafkaEngine;
        let broker = engine.start(&plan(dir.path())).await.unwrap();
        let admin = broker.admin();
        assert_eq!(admin.groups().unwrap(), vec!["declared".to_string()]);
        let created = admin
            .create_topic(NewTopic {
                name: "orders".into(),
                partitions: 2,
                replication: 1,
                retention_hours: Some(24),
                sync_flush: true,
                ..NewTopic::default()
            })
            .await
            .unwrap();
        assert_eq!((created.retention_hours, created.sync_flush), (24, true));
        let again = admin
            .create_topic(NewTopic {
                name: "orders".into(),
                partitions: 1,
                replication: 1,
                ..NewTopic::default()
            })
            .await;
        assert!(
            matches!(again, Err(EngineError::AlreadyExists(_))),
            "{again:?}"
        );
        admin
            .change_topic(
                "orders",
                TopicChange {
                    sync_flush: Some(false),
                    sync_replication: Some(true),
                    partitions: Some(3),
                    ..TopicChange::default()
                },
            )
            .await
            .unwrap();
        let t = admin.topic("orders").unwrap().unwrap();
        assert_eq!(
            (t.partitions, t.sync_flush, t.sync_replication),
            (3, false, true)
        );
        assert!(matches!(
            admin.change_topic("nope", TopicChange::default()).await,
            Err(EngineError::NotFound(_))
        ));
        assert!(matches!(
            admin.delete_group("nope"),
            Err(EngineError::NotFound(_))
        ));
        admin.delete_group("declared").unwrap();
        broker.stop().await;
    }

    #[tokio::test]
    async fn a_taken_address_is_reported_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut p = plan(dir.path());
        p.listeners = vec![taken.local_addr().unwrap()];
        match KafkaEngine.start(&p).await {
            Err(EngineError::AddressInUse(a)) => assert_eq!(a, taken.local_addr().unwrap()),
            Err(e) => panic!("expected AddressInUse, got {e}"),
            Ok(_) => panic!("expected AddressInUse, got a running broker"),
        }
    }

    #[tokio::test]
    async fn provisioned_users_exist_at_the_first_start() {
        let dir = tempfile::tempdir().unwrap();
        KafkaEngine
            .provision(
                dir.path(),
                Some(Credentials {
                    user: "app".into(),
                    password: "Secret-123".into(),
                }),
            )
            .await
            .unwrap();
        let broker = KafkaEngine.start(&plan(dir.path())).await.unwrap();
        assert_eq!(broker.admin().users().unwrap(), vec!["app".to_string()]);
        broker.stop().await;
    }
}
