//! Request bodies as RabbitMQ's management plug-in reads them (`rabbit_mgmt_util`): a JSON
//! object (an empty body is `{}`), required keys reported together
//! (`[{key_missing,payload},{key_missing,properties}]`), booleans and integers that may come
//! as strings (`rabbitmqadmin` sends `"durable": "true"` and `"count": "1"`).

use amq_protocol::types::FieldTable;
use amqp::json::json_to_table;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A request body: a JSON object.
pub struct Body(pub Map<String, Value>);

impl Body {
    /// Parses a body; anything but a JSON object (or nothing) is 400 `not_json`.
    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Body(m)),
            _ => Err(ApiError::bad_request("not_json")),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// Fails with every missing key of `keys`, in that order.
    pub fn require(&self, keys: &[&str]) -> Result<(), ApiError> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !self.0.contains_key(**k))
            .map(|k| format!("{{key_missing,{k}}}"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!("[{}]", missing.join(","))))
        }
    }

    /// A boolean (`true`, `"true"`), `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" => Ok(true),
            Some(Value::String(s)) if s == "false" => Ok(false),
            Some(other) => Err(ApiError::bad_pair("not_boolean", other.clone())),
        }
    }

    /// An integer (`5`, `"5"`), `None` when absent.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => int_of(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_pair("not_integer", v.clone())),
        }
    }

    /// A string, `None` when absent.
    pub fn str(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::bad_pair("not_string", other.clone())),
        }
    }

    /// An argument table (`arguments`): a JSON object, empty when absent.
    pub fn table(&self, key: &str) -> Result<FieldTable, ApiError> {
        match self.get(key) {
            None => Ok(FieldTable::default()),
            Some(v @ Value::Object(_)) => Ok(json_to_table(v)),
            // RabbitMQ's empty property list.
            Some(Value::Array(a)) if a.is_empty() => Ok(FieldTable::default()),
            Some(other) => Err(ApiError::bad_pair("not_object", other.clone())),
        }
    }
}

pub fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_read_as_rabbitmq_reads_them() {
        assert!(Body::parse(b"").unwrap().0.is_empty());
        for bad in [&b"{x"[..], b"[1]", b"5"] {
            assert!(matches!(Body::parse(bad), Err(ApiError::BadRequest(r)) if r == "not_json"));
        }
        let b = Body::parse(br#"{"durable": "true", "count": "3", "x": true}"#).unwrap();
        assert!(b.bool("durable", false).unwrap());
        assert!(!b.bool("auto_delete", false).unwrap());
        assert_eq!(b.int("count").unwrap(), Some(3));
        let e = b.require(&["x", "payload", "properties"]).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(r)
            if r == "[{key_missing,payload},{key_missing,properties}]"));
        let b = Body::parse(br#"{"durable": "yes", "count": "x"}"#).unwrap();
        assert!(
            matches!(b.bool("durable", false), Err(ApiError::BadRequest(r)) if r == json!(["not_boolean", "yes"]))
        );
        assert!(
            matches!(b.int("count"), Err(ApiError::BadRequest(r)) if r == json!(["not_integer", "x"]))
        );
    }
}
