//! One resolved, authenticated request as the handlers see it: path parameters, query, body,
//! who calls, and which engine's operation it is.

use bytes::Bytes;
use control::model::EngineKind;
use control::Caller;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiGeneration};
use crate::identity::Identity;

pub(crate) struct Call {
    pub generation: ApiGeneration,
    /// The operation's name (for errors that name it).
    pub operation: &'static str,
    /// The engine the operation is for: named by the path, the body or the instance.
    pub engine: Option<EngineKind>,
    pub params: Vec<(&'static str, String)>,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    pub identity: Option<Identity>,
    /// The caller acting on the path's project, for operations under `{project_id}`.
    pub caller: Option<Caller>,
}

impl Call {
    /// A path parameter (`instance_id`, `task_id`, ...); empty if the template has none.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn instance_id(&self) -> &str {
        self.param("instance_id")
    }

    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::internal("operation without a project"))
    }

    pub fn project(&self) -> Result<&str, ApiError> {
        Ok(&self.caller()?.project_id)
    }

    pub fn identity(&self) -> Result<&Identity, ApiError> {
        self.identity
            .as_ref()
            .ok_or_else(|| ApiError::internal("operation without authentication"))
    }

    /// The engine the operation is for (every operation under an engine's path has one).
    pub fn engine(&self) -> Result<EngineKind, ApiError> {
        self.engine
            .ok_or_else(|| ApiError::internal("operation without an engine"))
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A query flag: `true` in any case.
    pub fn flag(&self, key: &str) -> bool {
        self.query(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn query_usize(&self, key: &str) -> Result<Option<usize>, ApiError> {
        match self.query(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_field(key, "must be a non-negative integer")),
        }
    }

    /// The JSON body; the error names the field that had the wrong type.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse(&self.body)
    }
}

/// Parses a JSON object body.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::empty_body());
    }
    // serde would also read a struct from a JSON array; every body here is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_json("the body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            ApiError::bad_field(&path, inner)
        } else {
            ApiError::bad_json(inner)
        }
    })
}

/// An engine named by a request (a path segment, a body field, a query filter).
pub(crate) fn engine_named(name: &str) -> Result<EngineKind, ApiError> {
    EngineKind::parse(name)
        .ok_or_else(|| control::ControlError::UnsupportedEngine(name.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        storage_space: Option<i64>,
    }

    #[test]
    fn bodies_name_the_bad_field() {
        let e = parse::<Body>(br#"{"storage_space": "abc"}"#).unwrap_err();
        assert!(e.message.contains("storage_space"), "{}", e.message);
        let e = parse::<Body>(b"{not json").unwrap_err();
        assert_eq!(e.code_for(ApiGeneration::V1), "111400005");
        let e = parse::<Body>(b"").unwrap_err();
        assert_eq!(e.code_for(ApiGeneration::V2), "DMS.00400004");
        let e = parse::<Body>(b"[1]").unwrap_err();
        assert_eq!(e.code_for(ApiGeneration::V2), "DMS.00400005");
    }
}
