//! Dead-lettering: a message that expired, was rejected, overflowed its queue or reached its
//! delivery limit goes to the queue's dead-letter exchange with the `x-death` history
//! RabbitMQ writes.

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};

use crate::frame;
use crate::message::{short, table_str, value_int, Message};

/// Why a message was dead-lettered (the `reason` of `x-death`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    Expired,
    Rejected,
    MaxLen,
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Expired => "expired",
            DeathReason::Rejected => "rejected",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message on its way to a dead-letter exchange.
pub struct DeadLetter {
    pub exchange: String,
    pub routing_key: String,
    pub message: Arc<Message>,
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// The dead-lettered copy of `message`, leaving `queue` for `reason`: `x-death` updated (the
/// entry for this queue and reason counted up and moved first, or a new one first), the
/// `x-first-death-*` headers set once, and a per-message expiration moved into the entry as
/// `original-expiration`.
pub fn dead_letter(
    message: &Message,
    queue: &str,
    reason: DeathReason,
    dlx: &str,
    dl_routing_key: Option<&str>,
    now_ms: i64,
) -> DeadLetter {
    let mut headers = message.headers().cloned().unwrap_or_default();
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let routing_keys = vec![long_string(&message.routing_key)];
    let found = deaths.iter().position(|d| match d {
        AMQPValue::FieldTable(t) => {
            table_str(t, "queue") == Some(queue) && table_str(t, "reason") == Some(reason.as_str())
        }
        _ => false,
    });
    let entry = match found {
        Some(i) => {
            let mut t = match deaths.remove(i) {
                AMQPValue::FieldTable(t) => t,
                _ => FieldTable::default(),
            };
            let count = t.inner().get("count").and_then(value_int).unwrap_or(0) + 1;
            t.insert(short("count"), AMQPValue::LongLongInt(count));
            t.insert(
                short("time"),
                AMQPValue::Timestamp((now_ms / 1000).unsigned_abs()),
            );
            t
        }
        None => {
            let mut t = FieldTable::default();
            t.insert(short("count"), AMQPValue::LongLongInt(1));
            t.insert(short("reason"), long_string(reason.as_str()));
            t.insert(short("queue"), long_string(queue));
            t.insert(
                short("time"),
                AMQPValue::Timestamp((now_ms / 1000).unsigned_abs()),
            );
            t.insert(short("exchange"), long_string(&message.exchange));
            t.insert(
                short("routing-keys"),
                AMQPValue::FieldArray(FieldArray::from(routing_keys)),
            );
            if let Some(e) = message.properties.expiration() {
                t.insert(short("original-expiration"), long_string(e.as_str()));
            }
            t
        }
    };
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert(
        short("x-death"),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    for (key, value) in [
        ("x-first-death-reason", reason.as_str()),
        ("x-first-death-queue", queue),
        ("x-first-death-exchange", message.exchange.as_str()),
    ] {
        if !headers.contains_key(key) {
            headers.insert(short(key), long_string(value));
        }
    }
    let mut properties = message.properties.clone().with_headers(headers);
    if properties.expiration().is_some() {
        // The copy no longer expires on the original per-message TTL.
        properties = without_expiration(properties);
    }
    let raw_properties =
        frame::encode_properties(&properties).unwrap_or_else(|_| message.raw_properties.clone());
    let routing_key = dl_routing_key.unwrap_or(&message.routing_key).to_string();
    DeadLetter {
        exchange: dlx.to_string(),
        routing_key: routing_key.clone(),
        message: Arc::new(Message {
            exchange: dlx.to_string(),
            routing_key,
            properties,
            raw_properties,
            body: message.body.clone(),
            published_ms: now_ms,
        }),
    }
}

/// Copies every property but `expiration` (the generated type has setters only).
fn without_expiration(
    p: amq_protocol::protocol::BasicProperties,
) -> amq_protocol::protocol::BasicProperties {
    let mut out = amq_protocol::protocol::BasicProperties::default();
    if let Some(v) = p.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(v) = p.headers() {
        out = out.with_headers(v.clone());
    }
    if let Some(v) = p.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        out = out.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// Whether a dead-lettered message would go round in a cycle back to `queue`: it already died
/// there, and never because a client rejected it (RabbitMQ drops such messages).
pub fn is_cycle(message: &Message, queue: &str) -> bool {
    let Some(AMQPValue::FieldArray(deaths)) =
        message.headers().and_then(|h| h.inner().get("x-death"))
    else {
        return false;
    };
    let tables: Vec<&FieldTable> = deaths
        .as_slice()
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .collect();
    tables.iter().any(|t| table_str(t, "queue") == Some(queue))
        && tables
            .iter()
            .all(|t| table_str(t, "reason") != Some(DeathReason::Rejected.as_str()))
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::BasicProperties;
    use bytes::Bytes;

    use super::*;

    fn message(props: BasicProperties) -> Message {
        Message {
            exchange: "orders".into(),
            routing_key: "eu".into(),
            raw_properties: frame::encode_properties(&props).unwrap(),
            properties: props,
            body: Bytes::from_static(b"x"),
            published_ms: 0,
        }
    }

    fn deaths(m: &Message) -> Vec<FieldTable> {
        match m.headers().unwrap().inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a
                .as_slice()
                .iter()
                .map(|v| match v {
                    AMQPValue::FieldTable(t) => t.clone(),
                    _ => panic!(),
                })
                .collect(),
            _ => panic!("no x-death"),
        }
    }

    #[test]
    fn x_death_is_written_and_counted_as_rabbitmq_does() {
        let m = message(BasicProperties::default().with_expiration("100".into()));
        let first = dead_letter(&m, "q1", DeathReason::Expired, "dlx", None, 5_000);
        assert_eq!(first.routing_key, "eu");
        let d = deaths(&first.message);
        assert_eq!(d.len(), 1);
        assert_eq!(table_str(&d[0], "reason"), Some("expired"));
        assert_eq!(table_str(&d[0], "queue"), Some("q1"));
        assert_eq!(table_str(&d[0], "exchange"), Some("orders"));
        assert_eq!(table_str(&d[0], "original-expiration"), Some("100"));
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert!(first.message.properties.expiration().is_none());
        let h = first.message.headers().unwrap();
        assert_eq!(table_str(h, "x-first-death-queue"), Some("q1"));

        // Back through q2 (rejected), then q1 again: q1/expired counts 2 and comes first.
        let second = dead_letter(
            &first.message,
            "q2",
            DeathReason::Rejected,
            "dlx2",
            Some("k2"),
            6_000,
        );
        assert_eq!(second.routing_key, "k2");
        let third = dead_letter(
            &second.message,
            "q1",
            DeathReason::Expired,
            "dlx",
            None,
            7_000,
        );
        let d = deaths(&third.message);
        assert_eq!(d.len(), 2);
        assert_eq!(table_str(&d[0], "queue"), Some("q1"));
        assert_eq!(d[0].inner().get("count"), Some(&AMQPValue::LongLongInt(2)));
        assert_eq!(
            table_str(third.message.headers().unwrap(), "x-first-death-queue"),
            Some("q1")
        );
        assert!(
            !is_cycle(&third.message, "q1"),
            "a rejection breaks the cycle rule"
        );
        assert!(is_cycle(&first.message, "q1"));
        assert!(!is_cycle(&first.message, "q9"));
    }
}
