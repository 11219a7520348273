//! Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to`): a requester consumes from the
//! pseudo-queue without acks, publishes with `reply_to = amq.rabbitmq.reply-to`, and the
//! broker rewrites that into a name that leads straight back to its channel. Replies
//! published to the default exchange with that name skip queues altogether.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::broker::generated_name;
use crate::message::{Message, QueuedMessage};
use crate::queue::ChannelSink;

/// The pseudo-queue requesters consume from.
pub const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";
/// What the broker turns `reply_to` into: this prefix and the requester's token.
pub const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// A channel consuming from the pseudo-queue.
struct Requester {
    channel: Weak<ChannelSink>,
    consumer_tag: String,
}

/// The requesters of one vhost, by token.
#[derive(Default)]
pub struct ReplyTo {
    requesters: RwLock<HashMap<String, Requester>>,
}

impl ReplyTo {
    /// Registers a requester; answers the name its requests carry in `reply_to`.
    pub fn register(&self, channel: &Arc<ChannelSink>, consumer_tag: &str) -> String {
        let token = generated_name("");
        self.requesters.write().insert(
            token.clone(),
            Requester {
                channel: Arc::downgrade(channel),
                consumer_tag: consumer_tag.to_string(),
            },
        );
        format!("{PREFIX}{token}")
    }

    /// Forgets the requester behind `reply_to` (its consumer was cancelled or its channel
    /// closed).
    pub fn unregister(&self, reply_to: &str) {
        if let Some(token) = reply_to.strip_prefix(PREFIX) {
            self.requesters.write().remove(token);
        }
    }

    /// Delivers a reply published to `routing_key`; false when no requester has that name
    /// (RabbitMQ drops it, or returns it when mandatory).
    pub fn deliver(&self, routing_key: &str, message: &Arc<Message>) -> bool {
        let Some(token) = routing_key.strip_prefix(PREFIX) else {
            return false;
        };
        let (channel, tag) = {
            let requesters = self.requesters.read();
            let Some(r) = requesters.get(token) else {
                return false;
            };
            (r.channel.upgrade(), r.consumer_tag.clone())
        };
        let Some(channel) = channel.filter(|c| !c.is_closed()) else {
            return false;
        };
        let m = QueuedMessage {
            message: message.clone(),
            redelivered: false,
            expires_at_ms: None,
            deliveries: 0,
            seq: 0,
            offset: None,
        };
        channel.send_deliver(&tag, &m, None);
        true
    }
}
