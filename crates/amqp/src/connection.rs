//! One client connection: the protocol header, negotiation (start, tune, open), heartbeats,
//! frame dispatch to channels, channel and connection exceptions, and cleanup.
//!
//! Reading and handling run on the connection's task; writing runs on its own task fed by
//! [`ConnectionSink`], which queues share to deliver without waiting for the reader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::auth::parse_credentials;
use crate::broker::{Broker, ConnectionInfo};
use crate::channel::{Channel, ConnCtx};
use crate::definitions::RABBIT_VERSION;
use crate::error::{AmqpError, ReplyCode};
use crate::frame::{self, Frame, FRAME_MIN_SIZE, PROTOCOL_HEADER};
use crate::json::table_to_json;
use crate::message::{now_ms, short};
use crate::queue::{ChannelSink, ConnectionSink, Flow, Queue};
use crate::vhost::VHost;

/// RabbitMQ's `handshake_timeout`: the whole negotiation must finish within it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection's reads wait, at a time, for a queue holding its publishers:
/// waits end when the queue drains, and this bounds one that does not (connections that
/// each consume what the other publishes).
const MAX_HOLD: Duration = Duration::from_millis(100);
/// How long a closing side waits for close-ok before dropping the socket.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);
/// The writer gathers queued frames up to this many bytes into one write.
const WRITE_BATCH: usize = 256 * 1024;

/// Why a connection ends.
enum End {
    /// The peer went away or the socket failed: nothing more to send.
    Gone,
    /// The client closed it (connection.close answered).
    ClosedByClient,
    /// We close it with this exception.
    Error(AmqpError),
}

/// A channel of the connection and whether we are waiting for its close-ok.
struct Slot {
    channel: Channel,
    closing: bool,
}

/// Reads frames, keeping partial ones in `buf`.
struct Reader {
    socket: OwnedReadHalf,
    buf: BytesMut,
    /// How much room a read gets: small while the connection is quiet, large once a read
    /// fills it (a publisher streaming 1 KiB messages made 4 KiB reads cost 18% of the
    /// broker's CPU in `recv`; 64 KiB reads make it a few percent).
    read_size: usize,
    frame_max: u32,
    /// Counts what is read into the broker's traffic.
    broker: Arc<Broker>,
}

const QUIET_READ: usize = 4 << 10;
const BUSY_READ: usize = 64 << 10;

impl Reader {
    /// The next complete frame already read, if any.
    fn buffered(&mut self) -> Result<Option<Frame>, AmqpError> {
        frame::decode(&mut self.buf, self.frame_max)
    }

    /// Reads more bytes; false when the peer closed the socket.
    async fn fill(&mut self) -> bool {
        if self.buf.capacity() - self.buf.len() < QUIET_READ / 4 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        match self.socket.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.read_size = if n == room { BUSY_READ } else { QUIET_READ };
                self.broker.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                true
            }
        }
    }

    /// The next frame; `Ok(None)` when the peer closed the socket.
    async fn next(&mut self) -> Result<Option<Frame>, AmqpError> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf, self.frame_max)? {
                return Ok(Some(f));
            }
            if !self.fill().await {
                return Ok(None);
            }
        }
    }
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let flow = Arc::new(Flow::default());
    let writer = tokio::spawn(write_frames(write, rx, flow.clone(), broker.clone()));
    let id = broker.next_connection_id();
    let sink = ConnectionSink::new(id, tx, flow);
    let mut reader = Reader {
        socket: read,
        // Grows with the frames a connection sends; idle connections stay small.
        buf: BytesMut::with_capacity(QUIET_READ),
        read_size: QUIET_READ,
        frame_max: broker.config.frame_max,
        broker: broker.clone(),
    };
    let negotiated = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        negotiate(&broker, &sink, &mut reader, peer),
    )
    .await;
    match negotiated {
        Ok(Ok(Some(n))) => {
            let mut conn = Connection::new(broker.clone(), sink.clone(), n, peer, local);
            conn.run(&mut reader).await;
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "amqp handshake refused");
            send_connection_close(&sink, &e);
            wait_close_ok(&mut reader).await;
        }
        Err(_) => warn!(%peer, "amqp handshake timed out"),
    }
    sink.shutdown();
    let _ = writer.await;
}

/// What negotiation settled.
struct Negotiated {
    user: String,
    mechanism: String,
    blocked_notify: bool,
    vhost: Arc<VHost>,
    channel_max: u16,
    heartbeat: u16,
    client_properties: FieldTable,
}

/// Protocol header, start/start-ok, tune/tune-ok, open/open-ok. `None` when the client
/// left (or was told it speaks the wrong protocol) before the connection opened.
async fn negotiate(
    broker: &Arc<Broker>,
    sink: &Arc<ConnectionSink>,
    reader: &mut Reader,
    peer: SocketAddr,
) -> Result<Option<Negotiated>, AmqpError> {
    // The protocol header. Anything else is answered with ours, then the socket closes
    // (AMQP 0-9-1 §4.2.2).
    while reader.buf.len() < PROTOCOL_HEADER.len() {
        if !reader.fill().await {
            return Ok(None);
        }
    }
    let header = reader.buf.split_to(PROTOCOL_HEADER.len());
    if header[..] != PROTOCOL_HEADER {
        debug!(%peer, "not an amqp 0-9-1 protocol header; answered with ours");
        sink.send(Bytes::from_static(&PROTOCOL_HEADER));
        return Ok(None);
    }
    send_method(sink, 0, start_method(broker));

    let Some(start_ok) = expect_connection_method(reader).await? else {
        return Ok(None);
    };
    let connection::AMQPMethod::StartOk(start_ok) = start_ok else {
        return Err(AmqpError::command_invalid("expected connection.start-ok").on(10, 11));
    };
    let client_properties = start_ok.client_properties;
    let capability = |name: &str| {
        matches!(
            client_properties.inner().get("capabilities"),
            Some(AMQPValue::FieldTable(t)) if matches!(t.inner().get(name), Some(AMQPValue::Boolean(true)))
        )
    };
    sink.set_cancel_notify(capability("consumer_cancel_notify"));
    let mechanism = start_ok.mechanism.as_str().to_string();
    let user = match authenticate(broker, &mechanism, start_ok.response.as_bytes(), peer).await {
        Ok(user) => user,
        Err(e) => {
            warn!(%peer, mechanism = %mechanism, error = %e, "amqp login refused");
            if capability("authentication_failure_close") {
                return Err(e.on(10, 11));
            }
            // Clients that do not know the capability get the socket closed (RabbitMQ).
            return Ok(None);
        }
    };

    send_method(
        sink,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: broker.config.channel_max,
            frame_max: broker.config.frame_max,
            heartbeat: broker.config.heartbeat,
        })),
    );
    let Some(tune_ok) = expect_connection_method(reader).await? else {
        return Ok(None);
    };
    let connection::AMQPMethod::TuneOk(tune_ok) = tune_ok else {
        return Err(AmqpError::command_invalid("expected connection.tune-ok").on(10, 31));
    };
    let frame_max = match tune_ok.frame_max {
        0 => broker.config.frame_max,
        n if n < FRAME_MIN_SIZE => {
            return Err(AmqpError::not_allowed(format!(
                "frame_max={n} < {FRAME_MIN_SIZE} min size"
            ))
            .on(10, 31))
        }
        n if n > broker.config.frame_max => {
            return Err(AmqpError::not_allowed(format!(
                "frame_max={n} > {} max size",
                broker.config.frame_max
            ))
            .on(10, 31))
        }
        n => n,
    };
    let channel_max = match tune_ok.channel_max {
        0 => broker.config.channel_max,
        n if n > broker.config.channel_max => {
            return Err(AmqpError::not_allowed(format!(
                "channel_max={n} > {} max size",
                broker.config.channel_max
            ))
            .on(10, 31))
        }
        n => n,
    };
    reader.frame_max = frame_max;
    sink.set_frame_max(frame_max);

    let Some(open) = expect_connection_method(reader).await? else {
        return Ok(None);
    };
    let connection::AMQPMethod::Open(open) = open else {
        return Err(AmqpError::command_invalid("expected connection.open").on(10, 40));
    };
    let vhost_name = open.virtual_host.as_str();
    let vhost = broker.vhost(vhost_name).ok_or_else(|| {
        AmqpError::not_allowed(format!("vhost {vhost_name} not found")).on(10, 40)
    })?;
    if !broker.may_access_vhost(&user, vhost_name) {
        return Err(AmqpError::not_allowed(format!(
            "access to vhost '{vhost_name}' refused for user '{user}'"
        ))
        .on(10, 40));
    }
    send_method(
        sink,
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    Ok(Some(Negotiated {
        user,
        mechanism,
        blocked_notify: capability("connection.blocked"),
        vhost,
        channel_max,
        heartbeat: tune_ok.heartbeat,
        client_properties,
    }))
}

/// connection.start with RabbitMQ's server properties and capabilities.
fn start_method(broker: &Broker) -> AMQPClass {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        capabilities.insert(short(name), AMQPValue::Boolean(true));
    }
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    let mut props = FieldTable::default();
    props.insert(short("capabilities"), AMQPValue::FieldTable(capabilities));
    props.insert(short("cluster_name"), text(&broker.config.cluster_name));
    props.insert(
        short("copyright"),
        text("Copyright (c) OpenDMS contributors"),
    );
    props.insert(
        short("information"),
        text("OpenDMS: an AMQP 0-9-1 broker that answers as RabbitMQ does"),
    );
    props.insert(short("platform"), text("OpenDMS (Rust)"));
    props.insert(short("product"), text("RabbitMQ"));
    props.insert(short("version"), text(RABBIT_VERSION));
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    }))
}

/// Checks the start-ok response; answers the user.
async fn authenticate(
    broker: &Broker,
    mechanism: &str,
    response: &[u8],
    peer: SocketAddr,
) -> Result<String, AmqpError> {
    let refused = || {
        AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ))
    };
    if mechanism != "PLAIN" && mechanism != "AMQPLAIN" {
        return Err(AmqpError::command_invalid(format!(
            "unknown authentication mechanism '{mechanism}'"
        )));
    }
    let (name, password) = parse_credentials(mechanism, response).ok_or_else(refused)?;
    // RabbitMQ's internal backend never accepts an empty password.
    if password.is_empty() {
        return Err(refused());
    }
    let user = broker.user(&name).ok_or_else(refused)?;
    // Hashing goes off the async workers.
    let ok = tokio::task::spawn_blocking(move || user.check_password(&password))
        .await
        .unwrap_or(false);
    if !ok {
        return Err(refused());
    }
    if broker.config.loopback_users.contains(&name) && !peer.ip().is_loopback() {
        return Err(AmqpError::access_refused(format!(
            "user '{name}' can only connect via localhost"
        )));
    }
    Ok(name)
}

/// The next method on channel 0 during negotiation (heartbeats skipped).
async fn expect_connection_method(
    reader: &mut Reader,
) -> Result<Option<connection::AMQPMethod>, AmqpError> {
    loop {
        match reader.next().await? {
            None => return Ok(None),
            Some(Frame::Heartbeat { .. }) => continue,
            Some(Frame::Method {
                channel: 0,
                method,
                class_id,
                method_id,
            }) => match *method {
                AMQPClass::Connection(m) => return Ok(Some(m)),
                _ => {
                    return Err(AmqpError::command_invalid(
                        "expected a connection method during negotiation",
                    )
                    .on(class_id, method_id))
                }
            },
            Some(_) => {
                return Err(AmqpError::unexpected_frame(
                    "expected a connection method frame during negotiation",
                ))
            }
        }
    }
}

struct Connection {
    broker: Arc<Broker>,
    sink: Arc<ConnectionSink>,
    id: u64,
    user: String,
    vhost: Arc<VHost>,
    channel_max: u16,
    heartbeat: u16,
    peer: SocketAddr,
    channels: HashMap<u16, Slot>,
    closer: watch::Receiver<Option<String>>,
    /// The broker's resource alarm: a publish waits while it is set.
    alarm: watch::Receiver<Option<&'static str>>,
    /// The client understands connection.blocked/unblocked.
    blocked_notify: bool,
}

impl Connection {
    fn new(
        broker: Arc<Broker>,
        sink: Arc<ConnectionSink>,
        n: Negotiated,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Connection {
        let id = sink.id;
        let closer = broker.register(ConnectionInfo {
            id,
            name: format!("{peer} -> {local}"),
            peer,
            local,
            user: n.user.clone(),
            vhost: n.vhost.name.clone(),
            auth_mechanism: n.mechanism.clone(),
            connected_at_ms: now_ms(),
            frame_max: sink.frame_max(),
            channel_max: n.channel_max,
            heartbeat: n.heartbeat,
            channels: Vec::new(),
            client_properties: table_to_json(&n.client_properties),
        });
        info!(connection = id, %peer, user = %n.user, vhost = %n.vhost.name, "amqp connection opened");
        let alarm = broker.alarm();
        Connection {
            broker,
            sink,
            id,
            user: n.user,
            vhost: n.vhost,
            channel_max: n.channel_max,
            heartbeat: n.heartbeat,
            peer,
            channels: HashMap::new(),
            closer,
            alarm,
            blocked_notify: n.blocked_notify,
        }
    }

    async fn run(&mut self, reader: &mut Reader) {
        let end = self.read_loop(reader).await;
        match end {
            End::Gone | End::ClosedByClient => {}
            End::Error(e) => {
                warn!(connection = self.id, peer = %self.peer, error = %e, "amqp connection closed with an error");
                send_connection_close(&self.sink, &e);
                wait_close_ok(reader).await;
            }
        }
        self.cleanup().await;
        info!(connection = self.id, peer = %self.peer, "amqp connection closed");
    }

    async fn read_loop(&mut self, reader: &mut Reader) -> End {
        // Heartbeats: we send one every interval/2 and give up on a peer silent for two
        // intervals (RabbitMQ's rule).
        let interval = (self.heartbeat > 0).then(|| Duration::from_secs(u64::from(self.heartbeat)));
        let mut ticker =
            tokio::time::interval(interval.map_or(Duration::from_secs(3600), |i| i / 2));
        ticker.tick().await;
        let mut last_read = Instant::now();
        loop {
            // Every complete frame already read is handled before waiting on anything
            // (a select per frame costs more than the frame).
            loop {
                let frame = match reader.buffered() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return End::Error(e),
                };
                if is_publish(&frame) && self.alarm.borrow().is_some() {
                    if let Some(end) = self.wait_while_blocked(&mut ticker).await {
                        return end;
                    }
                    last_read = Instant::now();
                }
                match self.dispatch(frame).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return end,
                    Err(e) => return End::Error(e),
                }
            }
            if let Some(queue) = self.sink.take_hold() {
                if let Some(end) = self.wait_while_held(&queue, &mut ticker).await {
                    return end;
                }
                last_read = Instant::now();
            }
            tokio::select! {
                biased;
                changed = self.closer.changed() => {
                    return self.forced_close(changed);
                }
                _ = ticker.tick(), if interval.is_some() => {
                    if let Some(i) = interval {
                        if last_read.elapsed() > i * 2 {
                            warn!(connection = self.id, peer = %self.peer, "missed heartbeats from client, timeout: {}s", i.as_secs());
                            return End::Gone;
                        }
                    }
                    self.send_heartbeat();
                }
                read = reader.fill() => {
                    if !read {
                        return End::Gone;
                    }
                    last_read = Instant::now();
                }
            }
        }
    }

    fn send_heartbeat(&self) {
        let mut out = BytesMut::new();
        frame::encode_heartbeat(&mut out);
        self.sink.send(out.freeze());
    }

    /// How the connection ends when its closer fires (a management close or broker shutdown).
    fn forced_close(&self, changed: Result<(), watch::error::RecvError>) -> End {
        let reason = match changed {
            Ok(()) => self.closer.borrow().clone().unwrap_or_default(),
            Err(_) => "broker shutdown".to_string(),
        };
        End::Error(AmqpError::new(ReplyCode::ConnectionForced, reason))
    }

    /// A queue this connection published to holds its publishers (its consumers'
    /// connections are behind): read nothing more until it lets them go, for at most
    /// [`MAX_HOLD`] at a time. A connection whose own writer is behind is not held: it may be
    /// that consumer, and it could not catch up without being read.
    async fn wait_while_held(
        &mut self,
        queue: &Arc<Queue>,
        ticker: &mut tokio::time::Interval,
    ) -> Option<End> {
        if self.sink.congested() {
            return None;
        }
        let deadline = Instant::now() + MAX_HOLD;
        loop {
            let released = queue.publishers_released();
            tokio::pin!(released);
            released.as_mut().enable();
            if !queue.recheck_publisher_hold() {
                return None;
            }
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep_until(deadline) => return None,
                _ = ticker.tick(), if self.heartbeat > 0 => {
                    self.send_heartbeat();
                }
                changed = self.closer.changed() => {
                    return Some(self.forced_close(changed));
                }
            }
        }
    }

    /// A publish arrived during a resource alarm: stop reading this connection (TCP pushes
    /// back on the publisher) until the alarm clears, telling clients that understand
    /// connection.blocked, as RabbitMQ does. Heartbeats and forced closes go on.
    async fn wait_while_blocked(&mut self, ticker: &mut tokio::time::Interval) -> Option<End> {
        let reason = (*self.alarm.borrow()).unwrap_or("low on resources");
        info!(connection = self.id, peer = %self.peer, reason, "publisher blocked by a resource alarm");
        if self.blocked_notify {
            send_method(
                &self.sink,
                0,
                AMQPClass::Connection(connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: short(reason),
                })),
            );
        }
        loop {
            tokio::select! {
                changed = self.alarm.changed() => {
                    if changed.is_err() || self.alarm.borrow().is_none() {
                        break;
                    }
                }
                _ = ticker.tick(), if self.heartbeat > 0 => {
                    self.send_heartbeat();
                }
                changed = self.closer.changed() => {
                    return Some(self.forced_close(changed));
                }
            }
        }
        if self.blocked_notify {
            send_method(
                &self.sink,
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
            );
        }
        info!(connection = self.id, peer = %self.peer, "publisher unblocked");
        None
    }

    /// Handles one frame. `Ok(Some(_))` ends the connection.
    async fn dispatch(&mut self, frame: Frame) -> Result<Option<End>, AmqpError> {
        let ch = frame.channel();
        if ch == 0 {
            return self.connection_frame(frame);
        }
        if let Frame::Method {
            method,
            class_id,
            method_id,
            ..
        } = &frame
        {
            match method.as_ref() {
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                    return self.open_channel(ch).map(|()| None)
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                    if let Some(mut slot) = self.channels.remove(&ch) {
                        debug!(
                            connection = self.id,
                            channel = ch,
                            code = c.reply_code,
                            "channel closed by client"
                        );
                        slot.channel.close();
                        send_method(
                            &self.sink,
                            ch,
                            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                        );
                        self.count_channels();
                        return Ok(None);
                    }
                    return Err(channel_not_open(*class_id, *method_id));
                }
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    if self.channels.get(&ch).is_some_and(|s| s.closing) {
                        self.channels.remove(&ch);
                        self.count_channels();
                        return Ok(None);
                    }
                    return Err(channel_not_open(*class_id, *method_id));
                }
                _ => {}
            }
        }
        let (class_id, method_id) = match &frame {
            Frame::Method {
                class_id,
                method_id,
                ..
            } => (*class_id, *method_id),
            _ => (0, 0),
        };
        let Some(slot) = self.channels.get_mut(&ch) else {
            return Err(channel_not_open(class_id, method_id));
        };
        if slot.closing {
            // After channel.close the peer's frames are dropped until close-ok (§4.2.2).
            return Ok(None);
        }
        let ctx = ConnCtx {
            broker: &self.broker,
            vhost: &self.vhost,
            user: &self.user,
            connection: self.id,
        };
        match slot.channel.handle(&ctx, frame).await {
            Ok(()) => Ok(None),
            Err(e) if e.code.closes_connection() => Err(e),
            Err(e) => {
                debug!(connection = self.id, channel = ch, error = %e, "channel error");
                slot.channel.close();
                slot.closing = true;
                send_method(
                    &self.sink,
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                        reply_code: e.code.code(),
                        reply_text: short(&e.text),
                        class_id: e.class_id,
                        method_id: e.method_id,
                    })),
                );
                Ok(None)
            }
        }
    }

    fn connection_frame(&mut self, frame: Frame) -> Result<Option<End>, AmqpError> {
        match frame {
            Frame::Heartbeat { .. } => Ok(None),
            Frame::Method {
                method,
                class_id,
                method_id,
                ..
            } => match *method {
                AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                    debug!(connection = self.id, code = c.reply_code, text = %c.reply_text.as_str(), "client closes the connection");
                    send_method(
                        &self.sink,
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    Ok(Some(End::ClosedByClient))
                }
                AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(Some(End::Gone)),
                // Clients may tell us they are blocked or not; nothing to do.
                AMQPClass::Connection(
                    connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
                ) => Ok(None),
                AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                    Err(AmqpError::not_implemented(
                        "connection.update-secret is not supported by OpenDMS",
                    )
                    .on(class_id, method_id))
                }
                _ => Err(AmqpError::command_invalid(format!(
                    "unexpected method {class_id}.{method_id} on channel 0"
                ))
                .on(class_id, method_id)),
            },
            Frame::Header {
                class_id,
                body_size,
                raw_properties,
                ..
            } => {
                let mut payload = Vec::with_capacity(12 + raw_properties.len());
                payload.extend_from_slice(&class_id.to_be_bytes());
                payload.extend_from_slice(&[0, 0]);
                payload.extend_from_slice(&body_size.to_be_bytes());
                payload.extend_from_slice(&raw_properties);
                Err(AmqpError::unexpected_frame(format!(
                    "type 2, all octets = {}",
                    frame::erlang_binary(&payload)
                )))
            }
            Frame::Body { data, .. } => Err(AmqpError::unexpected_frame(format!(
                "type 3, all octets = {}",
                frame::erlang_binary(&data)
            ))),
        }
    }

    fn open_channel(&mut self, ch: u16) -> Result<(), AmqpError> {
        if ch > self.channel_max {
            return Err(AmqpError::not_allowed(format!(
                "channel number {ch} exceeds the negotiated channel_max {}",
                self.channel_max
            ))
            .on(20, 10));
        }
        if self.channels.contains_key(&ch) {
            return Err(AmqpError::channel_error("second 'channel.open' seen").on(20, 10));
        }
        let sink = ChannelSink::new(ch, self.sink.clone());
        self.channels.insert(
            ch,
            Slot {
                channel: Channel::new(ch, sink),
                closing: false,
            },
        );
        send_method(
            &self.sink,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        );
        self.count_channels();
        Ok(())
    }

    fn count_channels(&self) {
        let mut open: Vec<Arc<ChannelSink>> = self
            .channels
            .values()
            .filter(|s| !s.closing)
            .map(|s| s.channel.sink.clone())
            .collect();
        open.sort_by_key(|s| s.id);
        self.broker
            .update_connection(self.id, |c| c.channels = open);
    }

    /// The connection is gone: channels close (their deliveries go back), exclusive
    /// queues are deleted.
    async fn cleanup(&mut self) {
        for (_, mut slot) in self.channels.drain() {
            slot.channel.close();
        }
        self.broker.unregister(self.id);
        let mut durable = false;
        for q in self.vhost.exclusive_queues_of(self.id) {
            if let Some(q) = self.vhost.remove_queue(&q.name) {
                durable |= q.durable;
                self.vhost.forget(q);
            }
        }
        if durable {
            if let Err(e) = self.broker.save().await {
                warn!(error = %e, "cannot save the definitions");
            }
        }
    }
}

fn is_publish(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::Method {
            class_id: 60,
            method_id: 40,
            ..
        }
    )
}

fn channel_not_open(class_id: u16, method_id: u16) -> AmqpError {
    AmqpError::channel_error("expected 'channel.open'").on(class_id, method_id)
}

fn send_method(sink: &ConnectionSink, channel: u16, m: AMQPClass) {
    let mut out = BytesMut::new();
    match frame::encode_method(&mut out, channel, &m) {
        Ok(()) => {
            sink.send(out.freeze());
        }
        Err(e) => warn!(error = %e, "cannot encode a method"),
    }
}

fn send_connection_close(sink: &ConnectionSink, e: &AmqpError) {
    send_method(
        sink,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: e.code.code(),
            reply_text: short(&e.text),
            class_id: e.class_id,
            method_id: e.method_id,
        })),
    );
}

/// After sending connection.close: everything but close-ok is dropped (§4.2.2).
async fn wait_close_ok(reader: &mut Reader) {
    let wait = async {
        loop {
            match reader.next().await {
                Ok(Some(Frame::Method { method, .. }))
                    if matches!(
                        *method,
                        AMQPClass::Connection(
                            connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_)
                        )
                    ) =>
                {
                    return
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, wait).await;
}

/// Writes what the connection's sink queues, several frames per write. An empty buffer is
/// the signal to flush and close.
async fn write_frames(
    mut socket: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    flow: Arc<Flow>,
    broker: Arc<Broker>,
) {
    let mut batch = BytesMut::new();
    let mut closing = false;
    while !closing {
        let Some(first) = rx.recv().await else { break };
        if first.is_empty() {
            break;
        }
        // One buffer waiting: written as it is. More: gathered into one write.
        let mut next = match rx.try_recv() {
            Ok(b) if b.is_empty() => {
                closing = true;
                None
            }
            Ok(b) => Some(b),
            Err(_) => None,
        };
        let written = match next.take() {
            None => {
                if socket.write_all(&first).await.is_err() {
                    return;
                }
                first.len()
            }
            Some(second) => {
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(b) if b.is_empty() => {
                            closing = true;
                            break;
                        }
                        Ok(b) => batch.extend_from_slice(&b),
                        Err(_) => break,
                    }
                }
                if socket.write_all(&batch).await.is_err() {
                    return;
                }
                let n = batch.len();
                batch.clear();
                n
            }
        };
        broker
            .bytes_out
            .fetch_add(written as u64, Ordering::Relaxed);
        flow.written(written as u64);
    }
    let _ = socket.shutdown().await;
}
