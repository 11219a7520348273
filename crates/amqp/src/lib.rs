//! The AMQP 0-9-1 broker of OpenDMS: what RabbitMQ clients connect to.
//!
//! [`AmqpServer::start`] opens a [`Broker`] on a data directory and accepts connections.
//! The broker holds vhosts (exchanges, queues, bindings), users and permissions; durable
//! queues keep persistent messages in `msglog` partitions (see `queue::store`).

pub mod auth;
pub mod broker;
mod channel;
mod connection;
mod core;
pub mod definitions;
pub mod error;
pub mod exchange;
pub mod frame;
pub mod json;
pub mod message;
pub mod queue;
mod reply_to;
mod timers;
pub mod vhost;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, info};

pub use broker::{AmqpConfig, Broker, ConnectionFilter};
pub use error::{AmqpError, ReplyCode};

/// A running broker and its listener.
pub struct AmqpServer {
    broker: Arc<Broker>,
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl AmqpServer {
    /// Opens the broker (recovering what its data directory holds) and starts accepting
    /// connections on `config.listen`.
    pub async fn start(config: AmqpConfig) -> std::io::Result<AmqpServer> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let broker = Broker::open(config).await?;
        let accept = tokio::spawn(accept_loop(listener, broker.clone()));
        info!(%local_addr, "amqp broker listening");
        Ok(AmqpServer {
            broker,
            local_addr,
            accept,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, closes every connection and finishes the disk writes.
    pub async fn stop(self) {
        self.accept.abort();
        // Waits until the aborted task is dropped, and the listener with it: a start on the
        // same address right after must find it free.
        let _ = self.accept.await;
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.stop()).await;
    }
}

async fn accept_loop(listener: TcpListener, broker: Arc<Broker>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if !broker.admits(peer.ip()) {
                    info!(%peer, "connection refused: the address is not in the instance's allowed networks");
                    drop(stream);
                    continue;
                }
                let local = stream.local_addr().unwrap_or(peer);
                tokio::spawn(connection::serve(broker.clone(), stream, peer, local));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                debug!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
