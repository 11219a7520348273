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

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use broker::{AmqpConfig, Broker, ConnectionFilter};
pub use error::{AmqpError, ReplyCode};

/// The largest TCP segment the broker sends. On loopback the kernel's is 64 KiB, and a client
/// whose socket's receive buffer is small next to that stops announcing that its window
/// reopened: it only advertises whole segments' worth, so our side learns of the room from its
/// own zero-window probes, 200 ms apart and doubling. PerfTest's consumer (bench/amqp-run's
/// transient rows) then stalled at ~2,260 msg/s with 3.4 MB waiting in our socket and nothing
/// in its own (`ss`: `timer:(persist…)`), in 3 of 14 runs; with 16 KiB segments in none of
/// 20. Segments this size still travel in 64 KiB batches (GSO), so sending costs
/// the same.
const SEND_MSS: u32 = 16 * 1024;

/// Binds the AMQP listener; its connections inherit [`SEND_MSS`].
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted broker rebinds while old connections linger.
    socket.set_reuseaddr(true)?;
    if let Err(e) = socket2::SockRef::from(&socket).set_tcp_mss(SEND_MSS) {
        warn!(error = %e, "could not limit the listener's tcp segment size");
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

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
        let listener = bind(config.listen)?;
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
