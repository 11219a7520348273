//! How RabbitMQ's management plug-in writes things (`rabbit_mgmt_format`): rates, times,
//! the `properties_key` naming a binding, message properties, and the reverse for
//! properties a client sends with a publish.

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use amqp::json::{json_to_table, table_to_json};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::phash2::{phash2, Term};

/// `{"rate": r}`, as every `*_details` object is in the basic rates mode.
pub fn rate(r: f64) -> Value {
    json!({ "rate": r })
}

/// A time as RabbitMQ writes `idle_since`: `2024-05-01T12:00:00.123+00:00` (UTC).
pub fn iso_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Percent-encoding as `rabbit_http_util:quote_plus`: letters, digits and `.-~_` stay,
/// a space is `+`, every other byte `%XX`.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'~' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The name of a binding among those with the same source and destination, as RabbitMQ
/// makes it (`rabbit_mgmt_format:pack_binding_props`): the routing key percent-encoded
/// (`~` as `%7E`), and with arguments `~` and the base64url of `erlang:phash2` of the
/// argument table; `~` alone for an empty key without arguments.
pub fn properties_key(routing_key: &str, arguments: &FieldTable) -> String {
    let key = quote_plus(routing_key).replace('~', "%7E");
    if arguments.inner().is_empty() {
        return if key.is_empty() { "~".into() } else { key };
    }
    let hash = phash2(&table_term(arguments));
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.to_be_bytes());
    format!("{key}~{encoded}")
}

/// A field table as RabbitMQ holds it: `[{Key, Type, Value}]`, sorted by key (RabbitMQ
/// sorts binding arguments; the table here is ordered by key already).
fn table_term(t: &FieldTable) -> Term {
    Term::List(
        t.inner()
            .iter()
            .map(|(k, v)| {
                let (kind, value) = value_term(v);
                Term::Tuple(vec![
                    Term::Binary(k.as_str().as_bytes().to_vec()),
                    Term::Atom(kind),
                    value,
                ])
            })
            .collect(),
    )
}

/// A field value as RabbitMQ's `{Type, Value}`.
fn value_term(v: &AMQPValue) -> (&'static str, Term) {
    match v {
        AMQPValue::Boolean(b) => ("bool", Term::Atom(if *b { "true" } else { "false" })),
        AMQPValue::ShortShortInt(i) => ("byte", Term::Int(i128::from(*i))),
        AMQPValue::ShortShortUInt(i) => ("unsignedbyte", Term::Int(i128::from(*i))),
        AMQPValue::ShortInt(i) => ("short", Term::Int(i128::from(*i))),
        AMQPValue::ShortUInt(i) => ("unsignedshort", Term::Int(i128::from(*i))),
        AMQPValue::LongInt(i) => ("signedint", Term::Int(i128::from(*i))),
        AMQPValue::LongUInt(i) => ("unsignedint", Term::Int(i128::from(*i))),
        AMQPValue::LongLongInt(i) => ("long", Term::Int(i128::from(*i))),
        AMQPValue::Timestamp(t) => ("timestamp", Term::Int(i128::from(*t))),
        AMQPValue::Float(f) => ("float", Term::Float(f64::from(*f))),
        AMQPValue::Double(f) => ("double", Term::Float(*f)),
        AMQPValue::DecimalValue(d) => (
            "decimal",
            Term::Tuple(vec![
                Term::Int(i128::from(d.scale)),
                Term::Int(i128::from(d.value)),
            ]),
        ),
        AMQPValue::ShortString(s) => ("longstr", Term::Binary(s.as_str().as_bytes().to_vec())),
        AMQPValue::LongString(s) => ("longstr", Term::Binary(s.as_bytes().to_vec())),
        AMQPValue::ByteArray(b) => ("binary", Term::Binary(b.as_slice().to_vec())),
        AMQPValue::FieldArray(a) => (
            "array",
            Term::List(
                a.as_slice()
                    .iter()
                    .map(|v| {
                        let (kind, value) = value_term(v);
                        Term::Tuple(vec![Term::Atom(kind), value])
                    })
                    .collect(),
            ),
        ),
        AMQPValue::FieldTable(t) => ("table", table_term(t)),
        AMQPValue::Void => ("void", Term::Atom("undefined")),
    }
}

/// Message properties as the management API shows them: the ones that are set, or `[]`
/// when none is (RabbitMQ writes its empty property list as a JSON list).
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut text = |key: &str, v: &Option<ShortString>| {
        if let Some(s) = v {
            m.insert(key.into(), Value::String(s.as_str().into()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(h) = p.headers() {
        m.insert("headers".into(), table_to_json(h));
    }
    if let Some(d) = p.delivery_mode() {
        m.insert("delivery_mode".into(), json!(d));
    }
    if let Some(pr) = p.priority() {
        m.insert("priority".into(), json!(pr));
    }
    if let Some(t) = p.timestamp() {
        m.insert("timestamp".into(), json!(t));
    }
    if m.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(m)
    }
}

/// The properties of a publish from its JSON (`rabbit_mgmt_format:to_basic_properties`):
/// unknown keys are ignored; an integer property that is not one is `["not_int", key]`.
pub fn properties_from_json(v: &Value) -> Result<BasicProperties, ApiError> {
    let m = match v {
        Value::Object(m) => m,
        // RabbitMQ's own empty list.
        Value::Array(a) if a.is_empty() => return Ok(BasicProperties::default()),
        other => return Err(ApiError::bad_pair("not_object", other.clone())),
    };
    let mut p = BasicProperties::default();
    for (key, value) in m {
        let text = || -> Result<ShortString, ApiError> {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(ApiError::bad_pair("not_string", key.as_str())),
            };
            ShortString::try_new(s).map_err(|_| ApiError::bad_pair("too_long", key.as_str()))
        };
        let int = |max: i64| -> Result<i64, ApiError> {
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            n.filter(|n| (0..=max).contains(n))
                .ok_or_else(|| ApiError::bad_pair("not_int", key.as_str()))
        };
        p = match key.as_str() {
            "content_type" => p.with_content_type(text()?),
            "content_encoding" => p.with_content_encoding(text()?),
            "correlation_id" => p.with_correlation_id(text()?),
            "reply_to" => p.with_reply_to(text()?),
            "expiration" => p.with_expiration(text()?),
            "message_id" => p.with_message_id(text()?),
            "type" => p.with_type(text()?),
            "user_id" => p.with_user_id(text()?),
            "app_id" => p.with_app_id(text()?),
            "cluster_id" => p.with_cluster_id(text()?),
            "delivery_mode" => p.with_delivery_mode(u8::try_from(int(255)?).unwrap_or(u8::MAX)),
            "priority" => p.with_priority(u8::try_from(int(255)?).unwrap_or(u8::MAX)),
            "timestamp" => p.with_timestamp(int(i64::MAX)?.unsigned_abs()),
            "headers" => match value {
                Value::Object(_) => p.with_headers(json_to_table(value)),
                Value::Null => p,
                Value::Array(a) if a.is_empty() => p,
                _ => return Err(ApiError::bad_pair("not_object", "headers")),
            },
            _ => p,
        };
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn properties_keys_are_rabbitmqs() {
        // Keys and hashes as RabbitMQ 3.10 named these bindings.
        let key = |rk: &str, args: Value| properties_key(rk, &json_to_table(&args));
        assert_eq!(key("", json!({})), "~");
        assert_eq!(key("rk", json!({})), "rk");
        assert_eq!(key("rk 2/~", json!({"a": 1})), "rk+2%2F%7E~Ajat_Q");
        assert_eq!(key("a.b c/d", json!({"k": "v"})), "a.b+c%2Fd~8IXMRA");
        assert_eq!(key("r", json!({"x": true})), "r~TmR75w");
        assert_eq!(
            key("r", json!({"x-match": "any", "a": "b", "n": 1})),
            "r~8P0-Xw"
        );
        assert_eq!(key("r", json!({"n": 1.5})), "r~i6OcSg");
        assert_eq!(key("r", json!({"n": [1, "a"]})), "r~Ai6m3g");
        assert_eq!(key("r", json!({"n": {"a": 1}})), "r~eZpEmA");
        assert_eq!(key("r", json!({"n": -5})), "r~94f54w");
        assert_eq!(key("r", json!({"n": 5_000_000_000i64})), "r~IesN1g");
        assert_eq!(key("r", json!({"n": false})), "r~hcgcaA");
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso_time(1_796_536_895_440), "2026-12-06T06:01:35.440+00:00");
        assert_eq!(iso_time(951_782_400_001), "2000-02-29T00:00:00.001+00:00");
    }

    #[test]
    fn properties_round_trip_and_empty_is_a_list() {
        assert_eq!(properties_to_json(&BasicProperties::default()), json!([]));
        let v = json!({"delivery_mode": 2, "priority": 3, "headers": {"h": 1}, "type": "t",
                       "timestamp": 123, "content_type": "text/plain"});
        let p = properties_from_json(&v).unwrap();
        assert_eq!(properties_to_json(&p), v);
        let e = properties_from_json(&json!({"delivery_mode": "x"})).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(r) if r == json!(["not_int", "delivery_mode"])));
    }
}
