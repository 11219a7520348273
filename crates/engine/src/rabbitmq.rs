//! The RabbitMQ engine: the embedded AMQP 0-9-1 broker of the `amqp` crate behind [`Engine`].
//!
//! An instance is one broker on the plan's first listen address, with RabbitMQ's management
//! HTTP API on the plan's management address. Its first user (the instance's access user) is
//! written into the broker's definitions before the first start, as an administrator of
//! vhost "/", instead of RabbitMQ's guest/guest. The storage quota
//! blocks publishers (RabbitMQ's disk alarm) whatever the plan's disk-full policy: queued
//! messages are never deleted to make room.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use amqp::auth::{Permission, User};
use amqp::broker::{ExchangeDeclare, QueueDeclare};
use amqp::exchange::{Binding, Destination};
use amqp::queue::Queue;
use amqp::vhost::VHost;
use amqp::{AmqpConfig, AmqpError, AmqpServer, ReplyCode};
use amqp_management::{ManagementConfig, ManagementServer};
use async_trait::async_trait;

use crate::{
    BindingInfo, Broker, BrokerAdmin, ConsumerInfo, Credentials, Engine, EngineError, EngineKind,
    ExchangeInfo, InstancePlan, Limits, NewQueue, QueueInfo, Usage, VhostPermission,
};

#[derive(Default)]
pub struct RabbitmqEngine;

#[async_trait]
impl Engine for RabbitmqEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Rabbitmq
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
        // Hashing and an fsync: off the async workers.
        tokio::task::spawn_blocking(move || {
            amqp::Broker::provision_user(&data_dir, &c.user, &c.password)
        })
        .await
        .map_err(EngineError::task)?
        .map_err(|e| EngineError::Storage(e.to_string()))
    }

    async fn start(&self, plan: &InstancePlan) -> Result<Box<dyn Broker>, EngineError> {
        let listen = *plan
            .listeners
            .first()
            .ok_or_else(|| EngineError::Start("the plan has no listen address".into()))?;
        let mut config = AmqpConfig::new(listen, plan.data_dir.clone());
        // The provisioned access user replaces guest/guest; without one (an instance made
        // without a user) guest stays, restricted to loopback as RabbitMQ restricts it.
        let provisioned = tokio::fs::try_exists(plan.data_dir.join("definitions.json"))
            .await
            .unwrap_or(false);
        if provisioned {
            config.default_user = None;
            config.loopback_users.clear();
        }
        config.quota_bytes = plan.limits.storage_bytes;
        config.cluster_name = format!("rabbit@{}", plan.instance_id);
        if let Some(plugins) = &plan.plugins {
            if let Some(unknown) = plugins
                .iter()
                .find(|p| !amqp::exchange::PLUGINS.contains(&p.as_str()))
            {
                return Err(EngineError::Refused(format!(
                    "plug-in {unknown} is not implemented by this broker"
                )));
            }
            config.plugins = plugins.clone();
        }
        let server = AmqpServer::start(config)
            .await
            .map_err(|e| start_error(e, listen))?;
        let management = match plan.management_listener {
            None => None,
            Some(addr) => {
                let mut m = ManagementConfig::new(addr);
                m.amqp_listener = Some(server.local_addr());
                match ManagementServer::start(server.broker().clone(), m).await {
                    Ok(m) => Some(m),
                    Err(e) => {
                        server.stop().await;
                        return Err(start_error(e, addr));
                    }
                }
            }
        };
        let admin = Arc::new(RabbitmqAdmin {
            broker: server.broker().clone(),
        });
        admin.set_allowed_networks(plan.allowed_networks.clone())?;
        tracing::debug!(instance = %plan.instance_id, %listen, management = ?plan.management_listener, "amqp broker listening");
        Ok(Box::new(RabbitmqBroker {
            server,
            management,
            admin,
        }))
    }
}

fn start_error(e: std::io::Error, addr: std::net::SocketAddr) -> EngineError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        EngineError::AddressInUse(addr)
    } else {
        EngineError::Start(format!("{addr}: {e}"))
    }
}

struct RabbitmqBroker {
    server: AmqpServer,
    management: Option<ManagementServer>,
    admin: Arc<RabbitmqAdmin>,
}

#[async_trait]
impl Broker for RabbitmqBroker {
    fn admin(&self) -> Arc<dyn BrokerAdmin> {
        self.admin.clone()
    }

    async fn stop(self: Box<Self>) {
        if let Some(m) = self.management {
            m.stop().await;
        }
        self.server.stop().await;
    }
}

struct RabbitmqAdmin {
    broker: Arc<amqp::Broker>,
}

/// The broker's refusals in the engine's terms; the text is RabbitMQ's.
fn refused(e: AmqpError) -> EngineError {
    match e.code {
        ReplyCode::NotFound => EngineError::NotFound(e.text),
        ReplyCode::InternalError => EngineError::Storage(e.text),
        _ => EngineError::Refused(e.text),
    }
}

fn json_map(t: &amq_protocol::types::FieldTable) -> serde_json::Map<String, serde_json::Value> {
    match amqp::json::table_to_json(t) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn binding_info(source: &str, b: &Binding) -> BindingInfo {
    BindingInfo {
        source: source.to_string(),
        destination_type: b.destination.kind().to_string(),
        destination: b.destination.name().to_string(),
        routing_key: b.routing_key.clone(),
        properties_key: amqp_management::properties_key(&b.routing_key, &b.arguments),
    }
}

impl RabbitmqAdmin {
    fn vhost(&self, name: &str) -> Result<Arc<VHost>, EngineError> {
        self.broker
            .vhost(name)
            .ok_or_else(|| EngineError::NotFound(format!("vhost '{name}'")))
    }

    fn queue_info(&self, v: &VHost, q: &Queue) -> QueueInfo {
        let (ready, unacked, _) = q.counts();
        QueueInfo {
            vhost: v.name.clone(),
            name: q.name.clone(),
            durable: q.durable,
            auto_delete: q.auto_delete,
            messages: (ready + unacked) as u64,
            consumers: q
                .consumers()
                .iter()
                .map(|c| ConsumerInfo {
                    tag: c.tag.clone(),
                    ack_required: !c.no_ack,
                    prefetch_count: c.prefetch,
                })
                .collect(),
            arguments: json_map(&q.arguments),
            bindings: v
                .bindings()
                .iter()
                .filter(|(_, b)| b.destination == Destination::Queue(q.name.clone()))
                .map(|(source, b)| binding_info(source, b))
                .collect(),
        }
    }
}

#[async_trait]
impl BrokerAdmin for RabbitmqAdmin {
    fn kind(&self) -> EngineKind {
        EngineKind::Rabbitmq
    }

    fn usage(&self) -> Usage {
        let (bytes_in, bytes_out) = self.broker.traffic();
        Usage {
            used_bytes: self.broker.used_bytes(),
            bytes_in,
            bytes_out,
        }
    }

    /// Body bytes published into and delivered from each queue: queues of vhost "/" by
    /// name, others as `vhost/queue`.
    fn traffic_by_resource(&self) -> HashMap<String, (u64, u64)> {
        let mut out = HashMap::new();
        for v in self.broker.vhosts() {
            for q in v.queues() {
                let s = q.stats();
                let name = if v.name == "/" {
                    q.name.clone()
                } else {
                    format!("{}/{}", v.name, q.name)
                };
                out.insert(name, (s.published_bytes, s.delivered_bytes));
            }
        }
        out
    }

    fn apply_limits(&self, limits: &Limits) {
        self.broker.set_quota_bytes(limits.storage_bytes);
    }

    fn set_allowed_networks(&self, networks: Option<Vec<String>>) -> Result<(), EngineError> {
        let filter: Option<amqp::ConnectionFilter> = match networks {
            None => None,
            Some(list) => {
                let allow =
                    ::kafka::security::AllowList::parse(&list).map_err(EngineError::Refused)?;
                Some(Arc::new(move |ip| allow.allows(ip)))
            }
        };
        self.broker.set_connection_filter(filter);
        Ok(())
    }

    fn users(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.broker.users().into_iter().map(|u| u.name).collect())
    }

    async fn set_user_password(&self, user: &str, password: &str) -> Result<(), EngineError> {
        let tags = self.broker.user(user).map(|u| u.tags).unwrap_or_default();
        let (name, password) = (user.to_string(), password.to_string());
        let updated = tokio::task::spawn_blocking(move || User::new(&name, &password, tags))
            .await
            .map_err(EngineError::task)?;
        self.broker
            .put_user(updated)
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))
    }

    async fn delete_user(&self, user: &str) -> Result<bool, EngineError> {
        self.broker
            .delete_user(user)
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))
    }

    fn vhosts(&self) -> Result<Vec<String>, EngineError> {
        let mut names: Vec<String> = self
            .broker
            .vhosts()
            .iter()
            .map(|v| v.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn create_vhost(&self, name: &str) -> Result<bool, EngineError> {
        self.broker.add_vhost(name).await.map_err(refused)
    }

    async fn delete_vhost(&self, name: &str) -> Result<bool, EngineError> {
        self.broker.delete_vhost(name).await.map_err(refused)
    }

    fn exchanges(&self, vhost: &str) -> Result<Vec<ExchangeInfo>, EngineError> {
        let v = self.vhost(vhost)?;
        let mut out: Vec<ExchangeInfo> = v
            .exchanges()
            .iter()
            .map(|e| ExchangeInfo {
                vhost: v.name.clone(),
                name: e.name.clone(),
                kind: e.kind.as_str().to_string(),
                durable: e.durable,
                auto_delete: e.auto_delete,
                internal: e.internal,
                arguments: json_map(&e.arguments),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create_exchange(&self, e: ExchangeInfo) -> Result<ExchangeInfo, EngineError> {
        let v = self.vhost(&e.vhost)?;
        let kind = self
            .broker
            .exchange_kind(&e.kind)
            .ok_or_else(|| EngineError::Refused(format!("invalid exchange type '{}'", e.kind)))?;
        if e.name.is_empty() || (e.name.starts_with("amq.") && v.exchange(&e.name).is_none()) {
            return Err(EngineError::Refused(format!(
                "exchange name '{}' is reserved",
                e.name
            )));
        }
        let arguments = amqp::json::json_to_table(&serde_json::Value::Object(e.arguments.clone()));
        self.broker
            .declare_exchange(
                &v,
                ExchangeDeclare {
                    name: e.name.clone(),
                    kind,
                    durable: e.durable,
                    auto_delete: e.auto_delete,
                    internal: e.internal,
                    arguments,
                },
            )
            .await
            .map_err(refused)?;
        Ok(e)
    }

    async fn delete_exchange(&self, vhost: &str, name: &str) -> Result<(), EngineError> {
        let v = self.vhost(vhost)?;
        if name.is_empty() || name.starts_with("amq.") {
            return Err(EngineError::Refused(format!(
                "exchange '{name}' is built in and cannot be deleted"
            )));
        }
        if v.exchange(name).is_none() {
            return Err(EngineError::NotFound(format!("exchange '{name}'")));
        }
        self.broker
            .delete_exchange(&v, name, false)
            .await
            .map_err(refused)
    }

    fn queues(&self, vhost: &str) -> Result<Vec<QueueInfo>, EngineError> {
        let v = self.vhost(vhost)?;
        let mut out: Vec<QueueInfo> = v.queues().iter().map(|q| self.queue_info(&v, q)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn queue(&self, vhost: &str, name: &str) -> Result<Option<QueueInfo>, EngineError> {
        let v = self.vhost(vhost)?;
        Ok(v.queue(name).map(|q| self.queue_info(&v, &q)))
    }

    async fn create_queue(&self, vhost: &str, q: NewQueue) -> Result<QueueInfo, EngineError> {
        let v = self.vhost(vhost)?;
        if q.name.is_empty() || q.name.starts_with("amq.") {
            return Err(EngineError::Refused(format!(
                "queue name '{}' is reserved",
                q.name
            )));
        }
        let arguments = amqp::json::json_to_table(&serde_json::Value::Object(q.arguments));
        let (queue, _) = self
            .broker
            .declare_queue(
                &v,
                QueueDeclare {
                    name: &q.name,
                    passive: false,
                    durable: q.durable,
                    exclusive: false,
                    auto_delete: q.auto_delete,
                    arguments,
                    connection: None,
                },
            )
            .await
            .map_err(refused)?;
        Ok(self.queue_info(&v, &queue))
    }

    async fn delete_queue(&self, vhost: &str, name: &str) -> Result<u64, EngineError> {
        let v = self.vhost(vhost)?;
        if v.queue(name).is_none() {
            return Err(EngineError::NotFound(format!("queue '{name}'")));
        }
        let n = self
            .broker
            .delete_queue(&v, name, false, false, None)
            .await
            .map_err(refused)?;
        Ok(n as u64)
    }

    fn purge_queue(&self, vhost: &str, name: &str) -> Result<u64, EngineError> {
        let v = self.vhost(vhost)?;
        let q = v
            .queue(name)
            .ok_or_else(|| EngineError::NotFound(format!("queue '{name}'")))?;
        Ok(q.purge() as u64)
    }

    fn bindings(&self, vhost: &str, exchange: &str) -> Result<Vec<BindingInfo>, EngineError> {
        let v = self.vhost(vhost)?;
        if v.exchange(exchange).is_none() {
            return Err(EngineError::NotFound(format!("exchange '{exchange}'")));
        }
        Ok(v.bindings()
            .iter()
            .filter(|(source, _)| source == exchange)
            .map(|(source, b)| binding_info(source, b))
            .collect())
    }

    async fn bind(&self, vhost: &str, b: BindingInfo) -> Result<BindingInfo, EngineError> {
        let v = self.vhost(vhost)?;
        let destination = match b.destination_type.as_str() {
            "queue" => Destination::Queue(b.destination.clone()),
            "exchange" => Destination::Exchange(b.destination.clone()),
            other => {
                return Err(EngineError::Refused(format!(
                    "destination_type '{other}': must be queue or exchange"
                )))
            }
        };
        let binding = Binding {
            destination,
            routing_key: b.routing_key.clone(),
            arguments: Default::default(),
        };
        let info = binding_info(&b.source, &binding);
        self.broker
            .bind(&v, &b.source, binding)
            .await
            .map_err(refused)?;
        Ok(info)
    }

    async fn unbind(&self, vhost: &str, b: BindingInfo) -> Result<bool, EngineError> {
        let v = self.vhost(vhost)?;
        let found = v.bindings().into_iter().find(|(source, x)| {
            *source == b.source
                && x.destination.kind() == b.destination_type
                && x.destination.name() == b.destination
                && amqp_management::properties_key(&x.routing_key, &x.arguments) == b.properties_key
        });
        let Some((source, binding)) = found else {
            return Ok(false);
        };
        self.broker
            .unbind(&v, &source, &binding)
            .await
            .map_err(refused)
    }

    fn user_permissions(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<VhostPermission>>, EngineError> {
        let mut out: std::collections::BTreeMap<String, Vec<VhostPermission>> = self
            .broker
            .users()
            .into_iter()
            .map(|u| (u.name, Vec::new()))
            .collect();
        for p in self.broker.permissions() {
            out.entry(p.user).or_default().push(VhostPermission {
                vhost: p.vhost,
                configure: p.configure,
                write: p.write,
                read: p.read,
            });
        }
        Ok(out)
    }

    async fn set_user_permissions(
        &self,
        user: &str,
        permissions: Vec<VhostPermission>,
    ) -> Result<(), EngineError> {
        for p in &permissions {
            self.vhost(&p.vhost)?;
            for re in [&p.configure, &p.write, &p.read] {
                regex::Regex::new(re).map_err(|e| {
                    EngineError::Refused(format!("invalid permission regex {re:?}: {e}"))
                })?;
            }
        }
        for old in self
            .broker
            .permissions()
            .into_iter()
            .filter(|p| p.user == user)
        {
            if !permissions.iter().any(|p| p.vhost == old.vhost) {
                self.broker
                    .clear_permission(user, &old.vhost)
                    .await
                    .map_err(refused)?;
            }
        }
        for p in permissions {
            self.broker
                .set_permission(Permission {
                    user: user.to_string(),
                    vhost: p.vhost,
                    configure: p.configure,
                    write: p.write,
                    read: p.read,
                })
                .await
                .map_err(refused)?;
        }
        Ok(())
    }

    fn plugins(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.broker.plugins())
    }

    fn set_plugin(&self, plugin: &str, enabled: bool) -> Result<(), EngineError> {
        self.broker
            .set_plugin(plugin, enabled)
            .map_err(|e| EngineError::Refused(e.text))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::{DiskFullPolicy, Limits};

    fn plan(dir: &Path, port: u16) -> InstancePlan {
        InstancePlan {
            instance_id: "i-1".into(),
            engine: EngineKind::Rabbitmq,
            data_dir: dir.to_path_buf(),
            listeners: vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))],
            management_listener: None,
            namesrv_listener: None,
            advertised_host: None,
            limits: Limits {
                storage_bytes: Some(1 << 30),
                when_full: DiskFullPolicy::RejectWrites,
                max_partitions: None,
            },
            auto_create_topics: false,
            require_auth: true,
            enforce_access_rules: false,
            admin_users: Vec::new(),
            allowed_networks: None,
            declared_groups: Vec::new(),
            retention_hours: 72,
            plugins: None,
            mq_settings: None,
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    /// Reads what a broker answers to the AMQP protocol header: connection.start.
    fn greets(port: u16) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
        let mut head = [0u8; 11];
        s.read_exact(&mut head).is_ok() && head[0] == 1 && head[7..11] == [0, 10, 0, 10]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn provisioned_instance_runs_with_its_own_user_and_answers_admin() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RabbitmqEngine;
        engine
            .provision(
                dir.path(),
                Some(Credentials {
                    user: "dms".into(),
                    password: "s3cret-pw".into(),
                }),
            )
            .await
            .unwrap();
        let port = free_port();
        let broker = engine.start(&plan(dir.path(), port)).await.unwrap();
        let admin = broker.admin();
        assert_eq!(admin.kind(), EngineKind::Rabbitmq);
        assert_eq!(admin.users().unwrap(), vec!["dms".to_string()], "no guest");
        assert!(tokio::task::spawn_blocking(move || greets(port))
            .await
            .unwrap());

        admin.set_user_password("app", "pw").await.unwrap();
        assert_eq!(
            admin.users().unwrap(),
            vec!["app".to_string(), "dms".to_string()]
        );
        assert!(admin.delete_user("app").await.unwrap());
        assert!(!admin.delete_user("app").await.unwrap());
        assert!(matches!(
            admin.topics(),
            Err(EngineError::Unsupported {
                kind: EngineKind::Rabbitmq,
                ..
            })
        ));
        assert!(matches!(
            admin.set_allowed_networks(Some(vec!["not-a-network".into()])),
            Err(EngineError::Refused(_))
        ));
        // A network list without loopback turns local clients away.
        admin
            .set_allowed_networks(Some(vec!["10.0.0.0/8".into()]))
            .unwrap();
        assert!(!tokio::task::spawn_blocking(move || greets(port))
            .await
            .unwrap());
        admin.set_allowed_networks(None).unwrap();
        assert!(tokio::task::spawn_blocking(move || greets(port))
            .await
            .unwrap());
        broker.stop().await;

        // A second start on the same address answers AddressInUse while it is taken.
        let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        assert!(matches!(
            engine.start(&plan(dir.path(), port)).await,
            Err(EngineError::AddressInUse(_))
        ));
        drop(holder);
    }
}
