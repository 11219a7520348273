//! One channel of a connection: its methods (exchange, queue, basic, confirm and tx classes),
//! content assembly for basic.publish, publisher confirms and transactions.

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::protocol::{
    basic, channel, confirm, exchange, queue, tx, AMQPClass, BasicProperties,
};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::auth::Access;
use crate::broker::{generated_name, Broker, ExchangeDeclare, QueueDeclare};
use crate::error::AmqpError;
use crate::exchange::{Binding, Destination, Exchange};
use crate::frame::{self, Frame, BASIC_CLASS};
use crate::message::{now_ms, parse_expiration, short, Message, QueuedMessage};
use crate::queue::store::QueueLog;
use crate::queue::{ChannelMode, ChannelSink, Consumer, Queue, Unacked};
use crate::reply_to;
use crate::vhost::{consumer_priority, VHost};

/// What a channel needs of its connection.
pub(crate) struct ConnCtx<'a> {
    pub broker: &'a Arc<Broker>,
    pub vhost: &'a Arc<VHost>,
    pub user: &'a str,
    pub connection: u64,
}

/// A basic.publish whose content is being received.
struct Incoming {
    publish: basic::Publish,
    header: Option<(BasicProperties, Bytes, u64)>,
    body: BytesMut,
}

impl Incoming {
    /// The error for a frame that is not the next part of this content (RabbitMQ names
    /// basic.publish as the method at fault).
    fn interrupted(&self) -> AmqpError {
        let text = if self.header.is_none() {
            "expected content header for class 60, got non content header frame instead"
        } else {
            "expected content body, got non content body frame instead"
        };
        AmqpError::unexpected_frame(text).on(60, 40)
    }
}

/// A complete publish.
struct Publish {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    properties: BasicProperties,
    raw_properties: Bytes,
    body: Bytes,
}

enum Settle {
    Ack(u64, bool),
    Nack(u64, bool, bool),
    Reject(u64, bool),
}

/// A confirm to send once the disk writes it waits for are done.
struct PendingConfirm {
    seq: u64,
    nack: bool,
    writes: Vec<(Arc<QueueLog>, i64)>,
}

pub(crate) struct Channel {
    pub id: u16,
    pub sink: Arc<ChannelSink>,
    incoming: Option<Incoming>,
    /// Publisher confirms: the next sequence number and the task that sends them in order.
    confirms: Option<(u64, mpsc::UnboundedSender<PendingConfirm>)>,
    /// tx.select: publishes and settlements held until commit.
    tx: Option<(Vec<Publish>, Vec<Settle>)>,
    /// basic.qos prefetch for consumers started after it (global=false).
    consumer_prefetch: u16,
    /// The last queue declared on the channel: what an empty queue name means.
    last_queue: Option<String>,
    /// This channel's consumer of direct reply-to, if it has one.
    reply: Option<ReplyConsumer>,
}

/// A consumer of `amq.rabbitmq.reply-to`: the name requests carry and its consumer tag.
struct ReplyConsumer {
    vhost: Arc<VHost>,
    name: String,
    tag: String,
}

impl Channel {
    pub fn new(id: u16, sink: Arc<ChannelSink>) -> Channel {
        Channel {
            id,
            sink,
            incoming: None,
            confirms: None,
            tx: None,
            consumer_prefetch: 0,
            last_queue: None,
            reply: None,
        }
    }

    /// Sends a method on this channel.
    pub fn send(&self, m: AMQPClass) -> Result<(), AmqpError> {
        let mut out = BytesMut::new();
        frame::encode_method(&mut out, self.id, &m)?;
        self.sink.conn.send(out.freeze());
        Ok(())
    }

    /// The queue a method names: the last declared one when the name is empty.
    fn queue_name(&self, name: &str, class_id: u16, method_id: u16) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        self.last_queue.clone().ok_or_else(|| {
            AmqpError::not_found("no previously declared queue").on(class_id, method_id)
        })
    }

    fn queue_of(&self, ctx: &ConnCtx<'_>, name: &str) -> Result<Arc<Queue>, AmqpError> {
        let q = ctx
            .vhost
            .queue(name)
            .ok_or_else(|| ctx.vhost.no_queue(name))?;
        if q.exclusive_owner.is_some_and(|o| o != ctx.connection) {
            return Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{name}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                ctx.vhost.name
            )));
        }
        Ok(q)
    }

    /// Handles a frame (other than channel.open/close, which the connection handles).
    pub async fn handle(&mut self, ctx: &ConnCtx<'_>, frame: Frame) -> Result<(), AmqpError> {
        match frame {
            Frame::Method {
                method,
                class_id,
                method_id,
                ..
            } => {
                if let Some(incoming) = &self.incoming {
                    return Err(incoming.interrupted());
                }
                self.method(ctx, *method).await.map_err(|e| {
                    if e.class_id == 0 {
                        e.on(class_id, method_id)
                    } else {
                        e
                    }
                })
            }
            Frame::Header {
                class_id,
                body_size,
                properties,
                raw_properties,
                ..
            } => {
                let Some(incoming) = self.incoming.as_mut() else {
                    return Err(AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    ));
                };
                if incoming.header.is_some() {
                    return Err(incoming.interrupted());
                }
                if class_id != BASIC_CLASS {
                    return Err(AmqpError::unexpected_frame(format!(
                        "expected content header for class 60, got one for class {class_id} instead"
                    )));
                }
                if body_size > ctx.broker.config.max_message_size {
                    return Err(AmqpError::precondition(format!(
                        "message size {body_size} is larger than configured max size {}",
                        ctx.broker.config.max_message_size
                    ))
                    .on(60, 40));
                }
                // A copy of its own: a slice would keep the whole read buffer the frame came
                // in (4-64 KiB, shared with its neighbours) alive while the message is queued;
                // queued 2 KiB messages held ~5.5 KiB each that way.
                let raw_properties = Bytes::copy_from_slice(&raw_properties);
                incoming.header = Some((*properties, raw_properties, body_size));
                incoming.body =
                    BytesMut::with_capacity(usize::try_from(body_size).unwrap_or(0).min(1 << 20));
                if body_size == 0 {
                    return self.content_complete(ctx).await;
                }
                Ok(())
            }
            Frame::Body { data, .. } => {
                let Some(incoming) = self.incoming.as_mut() else {
                    return Err(AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    ));
                };
                let Some((_, _, size)) = &incoming.header else {
                    return Err(incoming.interrupted());
                };
                let size = *size;
                if incoming.body.len() as u64 + data.len() as u64 > size {
                    return Err(AmqpError::frame_error(format!(
                        "content body of {} bytes is longer than the {size} bytes the content header announced",
                        incoming.body.len() + data.len()
                    )));
                }
                incoming.body.extend_from_slice(&data);
                if incoming.body.len() as u64 == size {
                    return self.content_complete(ctx).await;
                }
                Ok(())
            }
            Frame::Heartbeat { .. } => Err(AmqpError::unexpected_frame(
                "heartbeat frame on a non-zero channel",
            )),
        }
    }

    async fn content_complete(&mut self, ctx: &ConnCtx<'_>) -> Result<(), AmqpError> {
        let Some(Incoming {
            publish,
            header: Some((properties, raw_properties, _)),
            body,
        }) = self.incoming.take()
        else {
            return Ok(());
        };
        let p = Publish {
            exchange: publish.exchange.as_str().to_string(),
            routing_key: publish.routing_key.as_str().to_string(),
            mandatory: publish.mandatory,
            properties,
            raw_properties,
            body: body.freeze(),
        };
        if let Some((publishes, _)) = self.tx.as_mut() {
            check_publish(ctx, &p)?;
            publishes.push(p);
            return Ok(());
        }
        self.publish(ctx, p).map_err(|e| e.on(60, 40))
    }

    /// Routes and enqueues a complete message; returns it if unroutable and mandatory;
    /// confirms it when the channel is in confirm mode.
    fn publish(&mut self, ctx: &ConnCtx<'_>, mut p: Publish) -> Result<(), AmqpError> {
        let exchange = check_publish(ctx, &p)?;
        if p.properties
            .reply_to()
            .as_ref()
            .is_some_and(|r| r.as_str() == reply_to::PSEUDO_QUEUE)
        {
            let Some(reply) = &self.reply else {
                return Err(AmqpError::precondition(
                    "fast reply consumer does not exist",
                ));
            };
            p.properties = p.properties.with_reply_to(short(&reply.name));
            p.raw_properties = frame::encode_properties(&p.properties)?;
        }
        let message = Arc::new(Message {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties: p.properties,
            raw_properties: p.raw_properties,
            body: p.body,
            published_ms: now_ms(),
        });
        let delayed = exchange
            .as_ref()
            .and_then(|ex| ctx.vhost.delay(ex, &message));
        let direct_reply =
            message.exchange.is_empty() && message.routing_key.starts_with(reply_to::PREFIX);
        let published = if direct_reply {
            if !ctx.vhost.reply_to.deliver(&message.routing_key, &message) && p.mandatory {
                self.send_return(&message)?;
            }
            Default::default()
        } else if let Some(held) = delayed {
            held
        } else {
            let queues = match &exchange {
                Some(ex) => ctx
                    .vhost
                    .route_via(ex, &message.routing_key, message.headers()),
                None => ctx.vhost.queue(&message.routing_key).into_iter().collect(),
            };
            if queues.is_empty() && p.mandatory {
                self.send_return(&message)?;
            }
            ctx.vhost.enqueue(&queues, &message)
        };
        if let Some(queue) = &published.hold {
            self.sink.conn.hold_reads_for(queue);
        }
        if let Some((seq, tx)) = self.confirms.as_mut() {
            let _ = tx.send(PendingConfirm {
                seq: *seq,
                nack: published.refused,
                writes: published.writes,
            });
            *seq += 1;
        }
        Ok(())
    }

    fn send_return(&self, message: &Message) -> Result<(), AmqpError> {
        let mut out = BytesMut::new();
        frame::encode_method(
            &mut out,
            self.id,
            &AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                reply_code: 312,
                reply_text: short("NO_ROUTE"),
                exchange: short(&message.exchange),
                routing_key: short(&message.routing_key),
            })),
        )?;
        frame::encode_content(
            &mut out,
            self.id,
            &message.raw_properties,
            &message.body,
            self.sink.conn.frame_max(),
        );
        self.sink.conn.send(out.freeze());
        Ok(())
    }

    async fn method(&mut self, ctx: &ConnCtx<'_>, m: AMQPClass) -> Result<(), AmqpError> {
        match m {
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                self.sink.set_active(f.active);
                self.send(AMQPClass::Channel(channel::AMQPMethod::FlowOk(
                    channel::FlowOk { active: f.active },
                )))?;
                if f.active {
                    self.drain_consumed();
                }
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(()),
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            AMQPClass::Access(_) => self.send(AMQPClass::Access(
                amq_protocol::protocol::access::AMQPMethod::RequestOk(
                    amq_protocol::protocol::access::RequestOk {},
                ),
            )),
            AMQPClass::Exchange(m) => self.exchange_method(ctx, m).await,
            AMQPClass::Queue(m) => self.queue_method(ctx, m).await,
            AMQPClass::Basic(m) => self.basic_method(ctx, m).await,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                if self.confirms.is_none() {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(send_confirms(self.sink.clone(), rx));
                    self.confirms = Some((1, tx));
                    self.sink.set_mode(ChannelMode::Confirm);
                }
                if !s.nowait {
                    self.send(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
                        confirm::SelectOk {},
                    )))?;
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.tx_method(ctx, m),
            _ => Err(AmqpError::command_invalid("unexpected method on a channel")),
        }
    }

    async fn exchange_method(
        &mut self,
        ctx: &ConnCtx<'_>,
        m: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let v = ctx.vhost;
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() {
                    return Err(AmqpError::access_refused(
                        "operation not permitted on the default exchange",
                    ));
                }
                if d.passive {
                    if v.exchange(name).is_none() {
                        return Err(AmqpError::not_found(format!(
                            "no exchange '{name}' in vhost '{}'",
                            v.name
                        )));
                    }
                } else {
                    let kind = ctx.broker.exchange_kind(d.kind.as_str()).ok_or_else(|| {
                        AmqpError::command_invalid(format!(
                            "unknown exchange type '{}'",
                            d.kind.as_str()
                        ))
                    })?;
                    if name.starts_with("amq.") && v.exchange(name).is_none() {
                        return Err(AmqpError::access_refused(format!(
                            "exchange name '{name}' contains reserved prefix 'amq.*'"
                        )));
                    }
                    ctx.broker
                        .check(ctx.user, &v.name, Access::Configure, "exchange", name)?;
                    ctx.broker
                        .declare_exchange(
                            v,
                            ExchangeDeclare {
                                name: name.to_string(),
                                kind,
                                durable: d.durable,
                                auto_delete: d.auto_delete,
                                internal: d.internal,
                                arguments: d.arguments,
                            },
                        )
                        .await?;
                }
                if !d.nowait {
                    self.send(AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                        exchange::DeclareOk {},
                    )))?;
                }
                Ok(())
            }
            exchange::AMQPMethod::Delete(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() {
                    return Err(AmqpError::access_refused(
                        "operation not permitted on the default exchange",
                    ));
                }
                if name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "deletion of system exchange '{name}' in vhost '{}' not allowed",
                        v.name
                    )));
                }
                ctx.broker
                    .check(ctx.user, &v.name, Access::Configure, "exchange", name)?;
                ctx.broker.delete_exchange(v, name, d.if_unused).await?;
                if !d.nowait {
                    self.send(AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(
                        exchange::DeleteOk {},
                    )))?;
                }
                Ok(())
            }
            exchange::AMQPMethod::Bind(b) => {
                let binding = Binding {
                    destination: Destination::Exchange(b.destination.as_str().to_string()),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: b.arguments,
                };
                ctx.broker.check(
                    ctx.user,
                    &v.name,
                    Access::Write,
                    "exchange",
                    b.destination.as_str(),
                )?;
                ctx.broker.check(
                    ctx.user,
                    &v.name,
                    Access::Read,
                    "exchange",
                    b.source.as_str(),
                )?;
                ctx.broker.bind(v, b.source.as_str(), binding).await?;
                if !b.nowait {
                    self.send(AMQPClass::Exchange(exchange::AMQPMethod::BindOk(
                        exchange::BindOk {},
                    )))?;
                }
                Ok(())
            }
            exchange::AMQPMethod::Unbind(b) => {
                let binding = Binding {
                    destination: Destination::Exchange(b.destination.as_str().to_string()),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: b.arguments,
                };
                ctx.broker.check(
                    ctx.user,
                    &v.name,
                    Access::Write,
                    "exchange",
                    b.destination.as_str(),
                )?;
                ctx.broker.check(
                    ctx.user,
                    &v.name,
                    Access::Read,
                    "exchange",
                    b.source.as_str(),
                )?;
                ctx.broker.unbind(v, b.source.as_str(), &binding).await?;
                if !b.nowait {
                    self.send(AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(
                        exchange::UnbindOk {},
                    )))?;
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid(
                "unexpected exchange method from a client",
            )),
        }
    }

    async fn queue_method(
        &mut self,
        ctx: &ConnCtx<'_>,
        m: queue::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let v = ctx.vhost;
        match m {
            queue::AMQPMethod::Declare(d) if d.queue.as_str() == reply_to::PSEUDO_QUEUE => {
                // RabbitMQ answers a declare of the pseudo-queue as if it were empty.
                if !d.nowait {
                    self.send(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(
                        queue::DeclareOk {
                            queue: d.queue,
                            message_count: 0,
                            consumer_count: 0,
                        },
                    )))?;
                }
                Ok(())
            }
            queue::AMQPMethod::Declare(d) => {
                // A passive declare of "" looks for a queue named "" (RabbitMQ does not
                // substitute the last declared queue here).
                let name = if d.queue.as_str().is_empty() && !d.passive {
                    generated_name("amq.gen-")
                } else {
                    d.queue.as_str().to_string()
                };
                if !d.passive {
                    if name.starts_with("amq.") && !d.queue.as_str().is_empty() {
                        return Err(AmqpError::access_refused(format!(
                            "queue name '{name}' contains reserved prefix 'amq.*'"
                        )));
                    }
                    ctx.broker
                        .check(ctx.user, &v.name, Access::Configure, "queue", &name)?;
                }
                let (q, _) = ctx
                    .broker
                    .declare_queue(
                        v,
                        QueueDeclare {
                            name: &name,
                            passive: d.passive,
                            durable: d.durable,
                            exclusive: d.exclusive,
                            auto_delete: d.auto_delete,
                            arguments: d.arguments,
                            connection: Some(ctx.connection),
                        },
                    )
                    .await?;
                self.last_queue = Some(name.clone());
                if !d.nowait {
                    let (ready, _, consumers) = q.counts();
                    self.send(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(
                        queue::DeclareOk {
                            queue: short(&name),
                            message_count: u32::try_from(ready).unwrap_or(u32::MAX),
                            consumer_count: u32::try_from(consumers).unwrap_or(u32::MAX),
                        },
                    )))?;
                }
                Ok(())
            }
            queue::AMQPMethod::Bind(b) => {
                let qname = self.queue_name(b.queue.as_str(), 50, 20)?;
                self.queue_of(ctx, &qname)?;
                ctx.broker
                    .check(ctx.user, &v.name, Access::Write, "queue", &qname)?;
                ctx.broker.check(
                    ctx.user,
                    &v.name,
                    Access::Read,
                    "exchange",
                    b.exchange.as_str(),
                )?;
                let binding = Binding {
                    destination: Destination::Queue(qname),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: b.arguments,
                };
                ctx.broker.bind(v, b.exchange.as_str(), binding).await?;
                if !b.nowait {
                    self.send(AMQPClass::Queue(queue::AMQPMethod::BindOk(
                        queue::BindOk {},
                    )))?;
                }
                Ok(())
            }
            queue::AMQPMethod::Unbind(b) => {
                let qname = self.queue_name(b.queue.as_str(), 50, 50)?;
                self.queue_of(ctx, &qname)?;
                ctx.broker
                    .check(ctx.user, &v.name, Access::Write, "queue", &qname)?;
                ctx.broker.check(
                    ctx.user,
                    &v.name,
                    Access::Read,
                    "exchange",
                    b.exchange.as_str(),
                )?;
                let binding = Binding {
                    destination: Destination::Queue(qname),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: b.arguments,
                };
                ctx.broker.unbind(v, b.exchange.as_str(), &binding).await?;
                self.send(AMQPClass::Queue(queue::AMQPMethod::UnbindOk(
                    queue::UnbindOk {},
                )))
            }
            queue::AMQPMethod::Purge(p) => {
                let qname = self.queue_name(p.queue.as_str(), 50, 30)?;
                let q = self.queue_of(ctx, &qname)?;
                ctx.broker
                    .check(ctx.user, &v.name, Access::Read, "queue", &qname)?;
                let n = q.purge();
                if !p.nowait {
                    self.send(AMQPClass::Queue(queue::AMQPMethod::PurgeOk(
                        queue::PurgeOk {
                            message_count: u32::try_from(n).unwrap_or(u32::MAX),
                        },
                    )))?;
                }
                Ok(())
            }
            queue::AMQPMethod::Delete(d) => {
                let qname = self.queue_name(d.queue.as_str(), 50, 40)?;
                ctx.broker
                    .check(ctx.user, &v.name, Access::Configure, "queue", &qname)?;
                let n = ctx
                    .broker
                    .delete_queue(v, &qname, d.if_unused, d.if_empty, Some(ctx.connection))
                    .await?;
                if !d.nowait {
                    self.send(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(
                        queue::DeleteOk {
                            message_count: u32::try_from(n).unwrap_or(u32::MAX),
                        },
                    )))?;
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid(
                "unexpected queue method from a client",
            )),
        }
    }

    async fn basic_method(
        &mut self,
        ctx: &ConnCtx<'_>,
        m: basic::AMQPMethod,
    ) -> Result<(), AmqpError> {
        match m {
            basic::AMQPMethod::Qos(q) => {
                if q.global {
                    self.sink.set_global_prefetch(q.prefetch_count);
                } else {
                    self.consumer_prefetch = q.prefetch_count;
                    self.sink.set_consumer_prefetch(q.prefetch_count);
                }
                self.send(AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})))?;
                self.drain_consumed();
                Ok(())
            }
            basic::AMQPMethod::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::not_implemented("immediate=true").on(60, 40));
                }
                self.incoming = Some(Incoming {
                    publish: p,
                    header: None,
                    body: BytesMut::new(),
                });
                Ok(())
            }
            basic::AMQPMethod::Consume(c) => self.consume(ctx, c),
            basic::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.as_str();
                if self.reply.as_ref().is_some_and(|r| r.tag == tag) {
                    self.stop_reply_consumer();
                }
                if let Some(q) = self.sink.remove_consumer(tag) {
                    q.remove_consumer(&self.sink, tag);
                }
                if !c.nowait {
                    self.send(AMQPClass::Basic(basic::AMQPMethod::CancelOk(
                        basic::CancelOk {
                            consumer_tag: c.consumer_tag,
                        },
                    )))?;
                }
                Ok(())
            }
            basic::AMQPMethod::Get(g) => {
                let qname = self.queue_name(g.queue.as_str(), 60, 70)?;
                let q = self.queue_of(ctx, &qname)?;
                ctx.broker
                    .check(ctx.user, &ctx.vhost.name, Access::Read, "queue", &qname)?;
                if q.get(&self.sink, g.no_ack).is_none() {
                    self.send(AMQPClass::Basic(basic::AMQPMethod::GetEmpty(
                        basic::GetEmpty {},
                    )))?;
                }
                Ok(())
            }
            basic::AMQPMethod::Ack(a) => self.settle(Settle::Ack(a.delivery_tag, a.multiple)),
            basic::AMQPMethod::Nack(n) => {
                self.settle(Settle::Nack(n.delivery_tag, n.multiple, n.requeue))
            }
            basic::AMQPMethod::Reject(r) => self.settle(Settle::Reject(r.delivery_tag, r.requeue)),
            basic::AMQPMethod::Recover(r) => {
                self.recover(r.requeue)?;
                self.send(AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
                    basic::RecoverOk {},
                )))
            }
            basic::AMQPMethod::RecoverAsync(r) => self.recover(r.requeue),
            _ => Err(AmqpError::command_invalid(
                "unexpected basic method from a client",
            )),
        }
    }

    fn consume(&mut self, ctx: &ConnCtx<'_>, c: basic::Consume) -> Result<(), AmqpError> {
        let qname = self.queue_name(c.queue.as_str(), 60, 20)?;
        if qname == reply_to::PSEUDO_QUEUE {
            return self.consume_replies(ctx, c);
        }
        let q = self.queue_of(ctx, &qname)?;
        ctx.broker
            .check(ctx.user, &ctx.vhost.name, Access::Read, "queue", &qname)?;
        let tag = if c.consumer_tag.as_str().is_empty() {
            generated_name("amq.ctag-")
        } else {
            c.consumer_tag.as_str().to_string()
        };
        if self.sink.has_consumer(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if q.has_exclusive_consumer() || (c.exclusive && q.counts().2 > 0) {
            return Err(AmqpError::access_refused(format!(
                "queue '{qname}' in vhost '{}' in exclusive use",
                ctx.vhost.name
            )));
        }
        let priority = consumer_priority(&c.arguments, &qname, &ctx.vhost.name)?;
        let consumer = Consumer::new(
            tag.clone(),
            self.sink.clone(),
            c.no_ack,
            c.exclusive,
            priority,
            u32::from(self.consumer_prefetch),
            c.arguments,
        );
        // consume-ok goes out before the first delivery.
        if !c.nowait {
            self.send(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(
                basic::ConsumeOk {
                    consumer_tag: short(&tag),
                },
            )))?;
        }
        self.sink.add_consumer(q.clone(), consumer.clone());
        q.add_consumer(consumer);
        Ok(())
    }

    fn settle(&mut self, s: Settle) -> Result<(), AmqpError> {
        if let Some((_, settles)) = self.tx.as_mut() {
            settles.push(s);
            return Ok(());
        }
        self.apply_settle(s)
    }

    fn apply_settle(&mut self, s: Settle) -> Result<(), AmqpError> {
        let (tag, multiple) = match &s {
            Settle::Ack(t, m) | Settle::Nack(t, m, _) => (*t, *m),
            Settle::Reject(t, _) => (*t, false),
        };
        let taken = self.sink.take(tag, multiple).ok_or_else(|| {
            let (class_id, method_id) = match s {
                Settle::Ack(..) => (60, 80),
                Settle::Nack(..) => (60, 120),
                Settle::Reject(..) => (60, 90),
            };
            AmqpError::precondition(format!("unknown delivery tag {tag}")).on(class_id, method_id)
        })?;
        let by_queue = group_by_queue(taken);
        for (q, messages) in by_queue {
            match s {
                Settle::Ack(..) => q.ack_many(&messages),
                Settle::Nack(_, _, true) | Settle::Reject(_, true) => q.requeue(messages),
                Settle::Nack(_, _, false) | Settle::Reject(_, false) => q.reject(messages),
            }
        }
        self.drain_consumed();
        Ok(())
    }

    fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false").on(60, 110));
        }
        for (q, messages) in group_by_queue(self.sink.take_all()) {
            q.requeue(messages);
        }
        Ok(())
    }

    /// Lets every queue this channel consumes from deliver what it now can.
    fn drain_consumed(&self) {
        let mut seen: Vec<Arc<Queue>> = Vec::new();
        for q in self.sink.consumed_queues() {
            if !seen.iter().any(|s| Arc::ptr_eq(s, &q)) {
                q.drain();
                seen.push(q);
            }
        }
    }

    fn tx_method(&mut self, ctx: &ConnCtx<'_>, m: tx::AMQPMethod) -> Result<(), AmqpError> {
        match m {
            tx::AMQPMethod::Select(_) => {
                if self.confirms.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                if self.tx.is_none() {
                    self.tx = Some((Vec::new(), Vec::new()));
                    self.sink.set_mode(ChannelMode::Transactional);
                }
                self.send(AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})))
            }
            tx::AMQPMethod::Commit(_) => {
                let Some((publishes, settles)) = self.tx.replace((Vec::new(), Vec::new())) else {
                    return Err(AmqpError::precondition("channel is not transactional"));
                };
                for p in publishes {
                    self.publish(ctx, p)?;
                }
                for s in settles {
                    self.apply_settle(s)?;
                }
                self.send(AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})))
            }
            tx::AMQPMethod::Rollback(_) => {
                if self.tx.replace((Vec::new(), Vec::new())).is_none() {
                    return Err(AmqpError::precondition("channel is not transactional"));
                }
                self.send(AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})))
            }
            _ => Err(AmqpError::command_invalid(
                "unexpected tx method from a client",
            )),
        }
    }

    /// basic.consume from `amq.rabbitmq.reply-to` (direct reply-to).
    fn consume_replies(&mut self, ctx: &ConnCtx<'_>, c: basic::Consume) -> Result<(), AmqpError> {
        if !c.no_ack {
            return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
        }
        if self.reply.is_some() {
            return Err(AmqpError::precondition("reply consumer already set"));
        }
        let tag = if c.consumer_tag.as_str().is_empty() {
            generated_name("amq.ctag-")
        } else {
            c.consumer_tag.as_str().to_string()
        };
        let name = ctx.vhost.reply_to.register(&self.sink, &tag);
        self.reply = Some(ReplyConsumer {
            vhost: ctx.vhost.clone(),
            name,
            tag: tag.clone(),
        });
        if !c.nowait {
            self.send(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(
                basic::ConsumeOk {
                    consumer_tag: short(&tag),
                },
            )))?;
        }
        Ok(())
    }

    fn stop_reply_consumer(&mut self) {
        if let Some(r) = self.reply.take() {
            r.vhost.reply_to.unregister(&r.name);
        }
    }

    /// The channel is closing: its consumers go, its unacknowledged deliveries return to
    /// their queues, marked redelivered.
    pub fn close(&mut self) {
        self.stop_reply_consumer();
        self.sink.close();
        for (q, c) in self.sink.take_consumers() {
            q.remove_consumer(&self.sink, &c.tag);
        }
        for (q, messages) in group_by_queue(self.sink.take_all()) {
            q.requeue(messages);
        }
        self.incoming = None;
        self.confirms = None;
    }
}

/// The checks of a publish RabbitMQ makes before routing.
fn check_publish(ctx: &ConnCtx<'_>, p: &Publish) -> Result<Option<Arc<Exchange>>, AmqpError> {
    let exchange = if p.exchange.is_empty() {
        None
    } else {
        let ex = ctx.vhost.exchange(&p.exchange).ok_or_else(|| {
            AmqpError::not_found(format!(
                "no exchange '{}' in vhost '{}'",
                p.exchange, ctx.vhost.name
            ))
        })?;
        if ex.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                p.exchange, ctx.vhost.name
            )));
        }
        Some(ex)
    };
    let resource = if p.exchange.is_empty() {
        "amq.default"
    } else {
        &p.exchange
    };
    ctx.broker.check(
        ctx.user,
        &ctx.vhost.name,
        Access::Write,
        "exchange",
        resource,
    )?;
    if let Some(uid) = p.properties.user_id() {
        if uid.as_str() != ctx.user {
            return Err(AmqpError::precondition(format!(
                "user_id property set to '{}' but authenticated user was '{}'",
                uid.as_str(),
                ctx.user
            )));
        }
    }
    parse_expiration(&p.properties).map_err(AmqpError::precondition)?;
    Ok(exchange)
}

fn group_by_queue(taken: Vec<Unacked>) -> Vec<(Arc<Queue>, Vec<QueuedMessage>)> {
    let mut out: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    let mut index: HashMap<*const Queue, usize> = HashMap::new();
    for u in taken {
        let key = Arc::as_ptr(&u.queue);
        match index.get(&key) {
            Some(i) => out[*i].1.push(u.message),
            None => {
                index.insert(key, out.len());
                out.push((u.queue, vec![u.message]));
            }
        }
    }
    out
}

/// Sends publisher confirms in order, each once the disk writes of its message are done.
async fn send_confirms(sink: Arc<ChannelSink>, mut rx: mpsc::UnboundedReceiver<PendingConfirm>) {
    while let Some(c) = rx.recv().await {
        let mut nack = c.nack;
        for (log, offset) in &c.writes {
            if !log.written(*offset).await {
                nack = true;
            }
        }
        if sink.is_closed() {
            continue;
        }
        let m = if nack {
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: c.seq,
                multiple: false,
                requeue: false,
            }))
        } else {
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: c.seq,
                multiple: false,
            }))
        };
        let mut out = BytesMut::new();
        if frame::encode_method(&mut out, sink.id, &m).is_ok() {
            sink.conn.send(out.freeze());
        }
    }
}
