//! The broker address pool: every broker of every instance listens on its own address of
//! the pool, at the same port, as brokers do in the cloud.
//!
//! An address is free when no instance records it and no other process holds it: another
//! `opendms serve`, a broker started by hand, anything listening on the port. The second
//! check is a bind of the address at allocation time; an address taken between the check and
//! the brokers' start is handled by the reconciler, which allocates again.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tracing::debug;

use super::ControlPlane;
use crate::error::ControlError;
use crate::model::{EngineKind, InstanceDoc};

impl ControlPlane {
    /// The ports an instance of `engine` listens on at each of its addresses: the client
    /// (broker) port first, then the second service's if the engine has one: RabbitMQ's
    /// management API, RocketMQ's name server (which runs at the first address only, but
    /// every address is checked for it so any can be first).
    fn ports_of(&self, engine: EngineKind) -> Vec<u16> {
        match engine {
            EngineKind::Rabbitmq => vec![self.config.amqp_port, self.config.amqp_management_port],
            EngineKind::Rocketmq => vec![
                self.config.rocketmq_broker_port,
                self.config.rocketmq_namesrv_port,
            ],
            EngineKind::Kafka => vec![self.config.broker_port],
        }
    }

    /// How many addresses an instance takes: one per Kafka or RocketMQ broker; one for a RabbitMQ
    /// instance whatever its node count (the cloud gives a cluster one connect address,
    /// and the embedded broker serves every node's queues at it).
    pub(crate) fn listener_count(engine: EngineKind, doc: &InstanceDoc) -> u32 {
        match engine {
            EngineKind::Rabbitmq => 1,
            EngineKind::Kafka | EngineKind::Rocketmq => doc.broker_num,
        }
    }

    /// Gives `doc` free addresses of the pool for an instance of `engine` (client
    /// listeners and the management listener); false when the pool has too few. `avoid`
    /// are addresses known to be unusable (the reconciler found them taken).
    pub(crate) async fn assign_listeners(
        &self,
        engine: EngineKind,
        doc: &mut InstanceDoc,
        avoid: &[SocketAddr],
    ) -> Result<bool, ControlError> {
        let ports = self.ports_of(engine);
        let count = Self::listener_count(engine, doc);
        let Some(listeners) = self.allocate_listeners(count, &ports, avoid).await? else {
            return Ok(false);
        };
        doc.listeners = listeners.iter().map(|a| a.to_string()).collect();
        let second = match (ports.get(1), listeners.first()) {
            (Some(port), Some(first)) => SocketAddr::new(first.ip(), *port).to_string(),
            _ => String::new(),
        };
        if engine == EngineKind::Rocketmq {
            doc.namesrv_listener = second;
        } else {
            doc.management_listener = second;
        }
        Ok(true)
    }

    /// Picks `count` free addresses of the pool where every one of `ports` can be bound,
    /// answered at `ports[0]`, or `None` when the pool has too few.
    async fn allocate_listeners(
        &self,
        count: u32,
        ports: &[u16],
        avoid: &[SocketAddr],
    ) -> Result<Option<Vec<SocketAddr>>, ControlError> {
        let mut recorded: HashSet<String> = HashSet::new();
        for r in self.store.instances(None).await? {
            let doc = InstanceDoc::of(&r).unwrap_or_default();
            recorded.extend(doc.broker_ips());
        }
        let first = u32::from(self.config.broker_ip_pool);
        let mut out = Vec::new();
        for i in 0..self.config.broker_ip_pool_size {
            if out.len() == count as usize {
                break;
            }
            let Some(n) = first.checked_add(i) else { break };
            let ip = Ipv4Addr::from(n);
            let ip_addr = IpAddr::from(ip);
            if recorded.contains(&ip.to_string()) || avoid.iter().any(|a| a.ip() == ip_addr) {
                continue;
            }
            let mut free = true;
            for port in ports {
                free = free && bindable(SocketAddr::new(ip_addr, *port)).await;
            }
            if free {
                out.push(SocketAddr::new(ip_addr, ports[0]));
            } else {
                debug!(%ip, "pool address held by another process; skipped");
            }
        }
        Ok((out.len() == count as usize).then_some(out))
    }

    /// Why a create found no addresses.
    pub(crate) fn pool_exhausted(&self) -> String {
        format!(
            "no free broker addresses: the pool of {} addresses from {} is used up by instances or held by other processes",
            self.config.broker_ip_pool_size, self.config.broker_ip_pool
        )
    }
}

/// Whether this process can listen on `addr` now.
async fn bindable(addr: SocketAddr) -> bool {
    tokio::net::TcpListener::bind(addr).await.is_ok()
}
