//! Answers with JSON, and the query parameters every listing takes (`rabbit_mgmt_util:
//! reply_list`): `columns` (top-level keys to keep; `a.b` keeps `a`, as RabbitMQ does),
//! `sort` and `sort_reverse`, `name` (a substring, or with `use_regex=true` a regular
//! expression) and `page`/`page_size` (the answer is then a page object).

use std::cmp::Ordering;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// The query string of a request.
#[derive(Default)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params, ApiError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("bad query string"))?;
        Ok(Params(map))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    fn columns(&self) -> Option<Vec<String>> {
        let cols = self.get("columns")?;
        Some(
            cols.split(',')
                .map(|c| c.split('.').next().unwrap_or(c).trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        )
    }

    fn pick(&self, item: Value) -> Value {
        match (self.columns(), item) {
            (Some(cols), Value::Object(mut m)) => {
                let picked: Map<String, Value> = cols
                    .iter()
                    .filter_map(|c| m.remove(c).map(|v| (c.clone(), v)))
                    .collect();
                Value::Object(picked)
            }
            (_, item) => item,
        }
    }
}

/// 200 with a JSON body.
pub fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// 201 (created) or 204 (there already), without a body.
pub fn created_or_exists(created: bool) -> Response {
    if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// One object, with `columns` applied.
pub fn reply_item(item: Value, params: &Params) -> Response {
    json_ok(params.pick(item))
}

/// A listing, sorted by `default_sort` unless the query asks otherwise.
pub fn reply_list(
    mut items: Vec<Value>,
    params: &Params,
    default_sort: &[&str],
) -> Result<Response, ApiError> {
    let total = items.len();
    if let Some(name) = params.get("name").filter(|n| !n.is_empty()) {
        let re = if params.flag("use_regex") {
            Some(regex::Regex::new(name).map_err(|e| ApiError::bad_request(e.to_string()))?)
        } else {
            None
        };
        items.retain(|i| {
            let n = i.get("name").and_then(Value::as_str).unwrap_or("");
            match &re {
                Some(re) => re.is_match(n),
                None => n.contains(name),
            }
        });
    }
    let sort: Vec<String> = match params.get("sort").filter(|s| !s.is_empty()) {
        Some(s) => vec![s.to_string()],
        None => default_sort.iter().map(|s| s.to_string()).collect(),
    };
    items.sort_by(|a, b| {
        sort.iter()
            .map(|k| compare(lookup(a, k), lookup(b, k)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    if params.flag("sort_reverse") {
        items.reverse();
    }
    let filtered = items.len();
    let Some(page) = params.get("page") else {
        let items: Vec<Value> = items.into_iter().map(|i| params.pick(i)).collect();
        return Ok(json_ok(Value::Array(items)));
    };
    let page: usize = page
        .parse()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::bad_pair("not_integer", page))?;
    let page_size: usize = match params.get("page_size") {
        None => 100,
        Some(s) => s
            .parse()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::bad_pair("page_size", s))?,
    };
    let page_count = filtered.div_ceil(page_size);
    if page > page_count.max(1) {
        return Err(ApiError::bad_pair("page_out_of_range", page));
    }
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .map(|i| params.pick(i))
        .collect();
    Ok(json_ok(json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    })))
}

/// `a.b.c` in an object.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}
