//! A queue's optional arguments (`x-message-ttl`, `x-max-length`, …), checked as RabbitMQ
//! checks them at declare: a bad value is PRECONDITION_FAILED naming the argument.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::error::{AmqpError, ReplyCode};
use crate::message::value_int;

/// What happens when a queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest messages.
    DropHead,
    /// Refuse new messages (nacked to confirming publishers).
    RejectPublish,
    /// Refuse and dead-letter new messages.
    RejectPublishDlx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    Classic,
    Quorum,
}

impl QueueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Classic => "classic",
            QueueKind::Quorum => "quorum",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub message_ttl: Option<u64>,
    /// Delete the queue when unused this long.
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub kind: QueueKind,
    pub delivery_limit: Option<u64>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            message_ttl: None,
            expires: None,
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            max_priority: None,
            single_active_consumer: false,
            kind: QueueKind::Classic,
            delivery_limit: None,
        }
    }
}

/// RabbitMQ's name of a field type, as its errors print it.
pub fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// The longest TTL or expiry RabbitMQ accepts: ten years, in milliseconds.
const MAX_EXPIRY_MS: u64 = 315_360_000_000;

/// Arguments a queue type refuses (RabbitMQ 3.10: `… of queue type rabbit_classic_queue`).
fn refused_by(kind: QueueKind, key: &str) -> bool {
    match kind {
        QueueKind::Classic => matches!(
            key,
            "x-delivery-limit"
                | "x-quorum-initial-group-size"
                | "x-max-in-memory-length"
                | "x-max-in-memory-bytes"
        ),
        QueueKind::Quorum => matches!(
            key,
            "x-max-priority" | "x-queue-mode" | "x-queue-master-locator" | "x-queue-version"
        ),
    }
}

impl QueueSettings {
    /// Reads a declare's arguments. `queue`/`vhost` name the queue in errors, worded as
    /// RabbitMQ 3.10 words them (checked against it by the conformance suite):
    /// `invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}`.
    pub fn parse(args: &FieldTable, queue: &str, vhost: &str) -> Result<QueueSettings, AmqpError> {
        let bad = |key: &str, why: String| {
            AmqpError::precondition(format!(
                "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
            ))
        };
        // The queue type comes first: it decides which arguments are allowed. A type that
        // is not a string makes RabbitMQ 3.10 fail internally (541, connection closed).
        let kind = match args.inner().get("x-queue-type") {
            None => QueueKind::Classic,
            Some(AMQPValue::LongString(t)) if t.as_bytes() == b"classic" => QueueKind::Classic,
            Some(AMQPValue::LongString(t)) if t.as_bytes() == b"quorum" => QueueKind::Quorum,
            Some(AMQPValue::ShortString(t)) if t.as_str() == "classic" => QueueKind::Classic,
            Some(AMQPValue::ShortString(t)) if t.as_str() == "quorum" => QueueKind::Quorum,
            Some(_) => return Err(AmqpError::bare(ReplyCode::InternalError)),
        };
        for key in args.inner().keys() {
            if refused_by(kind, key.as_str()) {
                let type_module = match kind {
                    QueueKind::Classic => "rabbit_classic_queue",
                    QueueKind::Quorum => "rabbit_quorum_queue",
                };
                return Err(AmqpError::precondition(format!(
                    "invalid arg '{}' for queue '{queue}' in vhost '{vhost}' of queue type {type_module}",
                    key.as_str()
                )));
            }
        }
        let integer = |key: &str, max: Option<u64>| -> Result<Option<u64>, AmqpError> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(v) => match value_int(v) {
                    Some(i) if i < 0 => Err(bad(key, format!("{{value_negative,{i}}}"))),
                    Some(i) if max.is_some_and(|m| i.unsigned_abs() > m) => {
                        let which = if key == "x-max-priority" {
                            "max_value_exceeded"
                        } else {
                            "value_too_large"
                        };
                        Err(bad(key, format!("{{{which},{i}}}")))
                    }
                    Some(i) => Ok(Some(i.unsigned_abs())),
                    None => Err(bad(
                        key,
                        format!("\"expected integer, got {}\"", type_name(v)),
                    )),
                },
            }
        };
        let string = |key: &str| -> Result<Option<String>, AmqpError> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(AMQPValue::LongString(s)) => {
                    Ok(Some(String::from_utf8_lossy(s.as_bytes()).into_owned()))
                }
                Some(AMQPValue::ShortString(s)) => Ok(Some(s.as_str().to_string())),
                Some(v) => Err(bad(key, format!("{{unacceptable_type,{}}}", type_name(v)))),
            }
        };
        let dead_letter_exchange = match args.inner().get("x-dead-letter-exchange") {
            None => None,
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
            Some(v) => {
                return Err(AmqpError::precondition(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{queue}' in vhost '{vhost}'",
                    type_name(v)
                )))
            }
        };
        let mut s = QueueSettings {
            kind,
            message_ttl: integer("x-message-ttl", Some(MAX_EXPIRY_MS))?,
            max_length: integer("x-max-length", None)?,
            max_length_bytes: integer("x-max-length-bytes", None)?,
            dead_letter_exchange,
            dead_letter_routing_key: string("x-dead-letter-routing-key")?,
            ..QueueSettings::default()
        };
        if let Some(e) = integer("x-expires", Some(MAX_EXPIRY_MS))? {
            if e == 0 {
                return Err(bad("x-expires", "{value_zero,0}".to_string()));
            }
            s.expires = Some(e);
        }
        if let Some(p) = integer("x-max-priority", Some(255))? {
            s.max_priority = Some(u8::try_from(p).unwrap_or(u8::MAX));
        }
        s.overflow = match string("x-overflow")?.as_deref() {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some(_) => return Err(bad("x-overflow", "invalid_overflow".to_string())),
        };
        s.single_active_consumer = match args.inner().get("x-single-active-consumer") {
            None => false,
            Some(AMQPValue::Boolean(b)) => *b,
            Some(v) => {
                return Err(bad(
                    "x-single-active-consumer",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                ))
            }
        };
        // Quorum queues read x-delivery-limit without checking its type (a string is
        // ignored), as RabbitMQ 3.10 does.
        s.delivery_limit = args
            .inner()
            .get("x-delivery-limit")
            .and_then(value_int)
            .and_then(|i| u64::try_from(i).ok());
        if s.dead_letter_routing_key.is_some() && s.dead_letter_exchange.is_none() {
            return Err(bad(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".to_string(),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::LongString;

    use super::*;

    fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn arguments_are_read_and_bad_ones_named() {
        let s = QueueSettings::parse(
            &args(&[
                ("x-message-ttl", AMQPValue::LongInt(100)),
                ("x-max-length", AMQPValue::ShortShortUInt(2)),
                (
                    "x-overflow",
                    AMQPValue::LongString(LongString::from(b"reject-publish".to_vec())),
                ),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString(LongString::from(b"dlx".to_vec())),
                ),
                (
                    "x-queue-type",
                    AMQPValue::LongString(LongString::from(b"quorum".to_vec())),
                ),
            ]),
            "q",
            "/",
        )
        .unwrap();
        assert_eq!(s.message_ttl, Some(100));
        assert_eq!(s.max_length, Some(2));
        assert_eq!(s.overflow, Overflow::RejectPublish);
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(s.kind, QueueKind::Quorum);

        let e = QueueSettings::parse(&args(&[("x-max-length", AMQPValue::LongInt(-1))]), "q", "/")
            .unwrap_err();
        assert_eq!(e.code.code(), 406);
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        let e = QueueSettings::parse(
            &args(&[(
                "x-message-ttl",
                AMQPValue::LongString(LongString::from(b"x".to_vec())),
            )]),
            "q",
            "/",
        )
        .unwrap_err();
        assert!(
            e.text.ends_with("\"expected integer, got longstr\""),
            "{}",
            e.text
        );
    }
}
