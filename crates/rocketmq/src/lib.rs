//! The RocketMQ 4.x side of OpenDMS: a name server and brokers that RocketMQ clients use over
//! the remoting protocol, keeping messages in `msglog`.
//!
//! Built in layers, protocol first: [`remoting`] is the wire format every request and
//! response travels in (frames, JSON and binary headers, request and response codes), read
//! leniently because every client generation writes it a little differently; [`server`]
//! runs connections; [`namesrv`] keeps routes; [`broker`] keeps topics, messages, offsets
//! and clients; [`message`] is the stored message layout and its ids. [`RocketmqCluster`]
//! starts one name server and N brokers that register with it in-process.

pub mod acl;
pub mod broker;
pub mod filter;
pub mod message;
pub mod namesrv;
pub mod remoting;
pub mod server;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;

pub use broker::{Broker, BrokerConfig, BrokerError, FlushMode};
pub use namesrv::NameServer;
use server::{Listener, Service};

/// A name server and its brokers.
#[derive(Clone, Debug)]
pub struct RocketmqConfig {
    pub namesrv_listen: SocketAddr,
    pub brokers: Vec<BrokerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("broker {name}: {source}")]
    Broker { name: String, source: BrokerError },
}

struct RunningBroker {
    broker: Arc<Broker>,
    listener: Listener,
    background: JoinHandle<()>,
}

/// A running name server and brokers.
pub struct RocketmqCluster {
    namesrv: Arc<NameServer>,
    namesrv_listener: Listener,
    brokers: Vec<RunningBroker>,
}

impl RocketmqCluster {
    /// Opens every broker (recovering its data), registers it, and starts listening.
    pub async fn start(config: RocketmqConfig) -> Result<RocketmqCluster, ClusterError> {
        let namesrv = NameServer::new();
        let namesrv_listener =
            Listener::bind(config.namesrv_listen, Service::NameServer(namesrv.clone()))
                .await
                .map_err(|source| ClusterError::Listen {
                    addr: config.namesrv_listen,
                    source,
                })?;
        let mut brokers = Vec::new();
        for mut bc in config.brokers {
            let socket =
                TcpListener::bind(bc.listen)
                    .await
                    .map_err(|source| ClusterError::Listen {
                        addr: bc.listen,
                        source,
                    })?;
            let local = socket.local_addr().map_err(|source| ClusterError::Listen {
                addr: bc.listen,
                source,
            })?;
            if bc.advertised.port() == 0 {
                bc.advertised.set_port(local.port());
            }
            bc.listen = local;
            let name = bc.broker_name.clone();
            let ns = namesrv.clone();
            let broker = tokio::task::spawn_blocking(move || Broker::open(bc, ns))
                .await
                .map_err(|e| ClusterError::Broker {
                    name: name.clone(),
                    source: BrokerError::Io(std::io::Error::other(e.to_string())),
                })?
                .map_err(|source| ClusterError::Broker {
                    name: name.clone(),
                    source,
                })?;
            let listener =
                Listener::serve(socket, Service::Broker(broker.clone())).map_err(|source| {
                    ClusterError::Listen {
                        addr: local,
                        source,
                    }
                })?;
            let background = broker.start_background();
            info!(broker = %name, addr = %local, "rocketmq broker listening");
            brokers.push(RunningBroker {
                broker,
                listener,
                background,
            });
        }
        info!(addr = %namesrv_listener.local_addr(), brokers = brokers.len(), "rocketmq name server listening");
        Ok(RocketmqCluster {
            namesrv,
            namesrv_listener,
            brokers,
        })
    }

    pub fn namesrv_addr(&self) -> SocketAddr {
        self.namesrv_listener.local_addr()
    }

    pub fn namesrv(&self) -> &Arc<NameServer> {
        &self.namesrv
    }

    pub fn brokers(&self) -> impl Iterator<Item = &Arc<Broker>> {
        self.brokers.iter().map(|b| &b.broker)
    }

    pub fn broker_addrs(&self) -> Vec<SocketAddr> {
        self.brokers
            .iter()
            .map(|b| b.listener.local_addr())
            .collect()
    }

    /// Stops listening, flushes every broker and writes its offsets.
    pub async fn stop(self) {
        self.namesrv_listener.stop().await;
        for b in self.brokers {
            b.listener.stop().await;
            b.background.abort();
            let _ = b.background.await;
            let broker = b.broker;
            let _ = tokio::task::spawn_blocking(move || broker.stop()).await;
        }
    }
}
