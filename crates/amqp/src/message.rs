//! Messages: what a publisher sent, shared by every queue it was routed to, and the per-queue
//! facts about one copy (redelivered, expiry, deliveries so far).

use std::sync::Arc;

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use bytes::Bytes;

/// A published message. Immutable once routed; queues hold `Arc`s of it.
#[derive(Debug)]
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    pub properties: BasicProperties,
    /// `properties` as encoded for a content header: re-sent as they are.
    pub raw_properties: Bytes,
    pub body: Bytes,
    /// When it was published (milliseconds since the epoch): TTLs count from here.
    pub published_ms: i64,
}

impl Message {
    /// `delivery_mode` 2.
    pub fn persistent(&self) -> bool {
        self.properties.delivery_mode() == &Some(2)
    }

    pub fn priority(&self) -> u8 {
        self.properties.priority().unwrap_or(0)
    }

    pub fn headers(&self) -> Option<&FieldTable> {
        self.properties.headers().as_ref()
    }

    /// The per-message TTL of the `expiration` property, in milliseconds. RabbitMQ refuses a
    /// publish whose expiration is not a non-negative integer; see `parse_expiration`.
    pub fn expiration_ms(&self) -> Option<u64> {
        self.properties
            .expiration()
            .as_ref()
            .and_then(|e| e.as_str().parse().ok())
    }

    /// Bytes the message takes in a queue (body only, as RabbitMQ counts for
    /// x-max-length-bytes).
    pub fn size(&self) -> u64 {
        self.body.len() as u64
    }
}

/// Validates the `expiration` property as RabbitMQ does: Erlang's `string:to_integer`
/// (an optional sign, then digits, nothing after), not negative.
pub fn parse_expiration(properties: &BasicProperties) -> Result<Option<u64>, String> {
    let Some(e) = properties.expiration() else {
        return Ok(None);
    };
    let text = e.as_str();
    let invalid = |why: String| format!("invalid expiration '{text}': {why}");
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits = unsigned.len()
        - unsigned
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits == 0 {
        return Err(invalid("no_integer".to_string()));
    }
    let sign_len = text.len() - unsigned.len();
    let (number, rest) = text.split_at(sign_len + digits);
    if !rest.is_empty() {
        return Err(invalid(format!("{{leftover_string,\"{rest}\"}}")));
    }
    match number.parse::<i64>() {
        Ok(n) if n < 0 => Err(invalid(format!("{{value_negative,{n}}}"))),
        Ok(n) => Ok(Some(n.unsigned_abs())),
        Err(_) => Err(invalid(format!("{{value_too_large,{number}}}"))),
    }
}

/// One copy of a message in one queue.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub message: Arc<Message>,
    /// Delivered before (and requeued).
    pub redelivered: bool,
    /// When it expires in this queue (queue TTL or per-message expiration, whichever first).
    pub expires_at_ms: Option<i64>,
    /// Deliveries so far (quorum queues show it as `x-delivery-count`).
    pub deliveries: u32,
    /// Position in the queue: requeued messages go back in order of it.
    pub seq: u64,
    /// Position in the queue's log when the copy is stored on disk (persistent message in a
    /// durable queue).
    pub offset: Option<i64>,
}

/// A short string from our own text (names we make, reasons): cut at 255 bytes rather than
/// refused.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&s[..end]).unwrap_or_default()
}

/// A string argument of a table (`x-dead-letter-exchange`, `x-match`, ...).
pub fn table_str<'a>(table: &'a FieldTable, key: &str) -> Option<&'a str> {
    match table.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// An integer argument of a table, of any integer type.
pub fn table_int(table: &FieldTable, key: &str) -> Option<i64> {
    value_int(table.inner().get(key)?)
}

pub fn value_int(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(i) => i64::from(*i),
        AMQPValue::ShortShortUInt(i) => i64::from(*i),
        AMQPValue::ShortInt(i) => i64::from(*i),
        AMQPValue::ShortUInt(i) => i64::from(*i),
        AMQPValue::LongInt(i) => i64::from(*i),
        AMQPValue::LongUInt(i) => i64::from(*i),
        AMQPValue::LongLongInt(i) => *i,
        AMQPValue::Timestamp(i) => i64::try_from(*i).ok()?,
        _ => return None,
    })
}

pub fn table_bool(table: &FieldTable, key: &str) -> Option<bool> {
    match table.inner().get(key)? {
        AMQPValue::Boolean(b) => Some(*b),
        _ => None,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
