//! Reading an action's parameters: required and optional values, integers, the SDKs'
//! booleans, repeated `Name.N` lists, tags and pages; and the fields an action answers.

use std::collections::BTreeMap;

use control::model::Tag;
use serde_json::{Map, Value};

use crate::envelope::AliError;
use crate::request::Parsed;

/// The fields of an action's answer (the envelope adds `RequestId`, `Code`, …).
pub(crate) type Fields = Map<String, Value>;

pub(crate) fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn required<'a>(p: &'a Parsed, key: &str) -> Result<&'a str, AliError> {
    p.get(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AliError::missing(key))
}

pub(crate) fn int(p: &Parsed, key: &str) -> Result<Option<i64>, AliError> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| AliError::invalid(key, "must be an integer")),
    }
}

/// The SDKs send booleans as Python's `True`/`False`.
pub(crate) fn boolean(p: &Parsed, key: &str) -> Result<Option<bool>, AliError> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(AliError::invalid(key, "must be true or false")),
    }
}

/// `Tag.N.Key` / `Tag.N.Value`, in N order.
pub(crate) fn tag_params(p: &Parsed) -> Vec<Tag> {
    let mut by_n: BTreeMap<u32, Tag> = BTreeMap::new();
    for (k, v) in &p.params {
        let Some(rest) = k.strip_prefix("Tag.") else {
            continue;
        };
        let Some((n, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        let t = by_n.entry(n).or_default();
        match field {
            "Key" => t.key = v.clone(),
            "Value" => t.value = v.clone(),
            _ => {}
        }
    }
    by_n.into_values().filter(|t| !t.key.is_empty()).collect()
}

/// `Name.1`, `Name.2`, … in order.
pub(crate) fn repeated(p: &Parsed, name: &str) -> Vec<String> {
    let mut by_n: BTreeMap<u32, String> = BTreeMap::new();
    for (k, v) in &p.params {
        if let Some(n) = k
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|n| n.parse::<u32>().ok())
        {
            by_n.insert(n, v.clone());
        }
    }
    by_n.into_values().collect()
}

/// `CurrentPage` (1-based, default 1) and `PageSize` (default and at most 10,000) of a
/// list action, as (first index, page size).
pub(crate) fn page_of(p: &Parsed) -> Result<(i64, usize, usize), AliError> {
    let page = int(p, "CurrentPage")?.unwrap_or(1).max(1);
    let size = int(p, "PageSize")?.unwrap_or(10_000).clamp(1, 10_000);
    let size = usize::try_from(size).unwrap_or(10_000);
    let first = usize::try_from(page - 1).unwrap_or(0).saturating_mul(size);
    Ok((page, first, size))
}
