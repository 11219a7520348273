//! The route table: every operation of the façade as data (method, path template, name, the
//! engine it belongs to, handler), the SDK operations OpenDMS does not implement, and the
//! resolver that finds the family of operations a request path names.
//!
//! Where several templates match a path, the most specific wins: at the first segment where
//! they differ, a literal beats a placeholder (so `/v2/{project_id}/rocketmq/instances` is
//! not read as `/v2/{engine}/{project_id}/instances` with the project id as the engine).
//! The OpenAPI document is generated from the same table, and served here.

use std::sync::{Arc, LazyLock};

use axum::response::Response;
use control::model::EngineKind;

use crate::call::Call;
use crate::error::ApiError;
use crate::operation::{op, Operation, Verb};
use crate::{json, ApiState};

/// The document of this table, served from it.
static OPERATIONS: &[Operation] = &[op!(public Get "/openapi.json", "openapi",
    "This document (no authentication)", serve_openapi)];

async fn serve_openapi(_: Arc<ApiState>, _: Call) -> Result<Response, ApiError> {
    Ok(json(200, openapi()))
}

/// What a path segment of a template is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

fn template(path: &'static str) -> Vec<Seg> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Seg::Param(name),
                None => Seg::Lit(s),
            },
        )
        .collect()
}

/// What a row of the resolved table does.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    Handler(&'static Operation),
    /// An operation of an official SDK that OpenDMS does not implement.
    NotSupported,
}

/// One row: an implemented operation or an SDK operation OpenDMS lacks.
pub(crate) struct Entry {
    pub verb: Verb,
    pub path: &'static str,
    segs: Vec<Seg>,
    pub name: &'static str,
    pub engine: Option<EngineKind>,
    pub target: Target,
}

impl Entry {
    pub fn handler(&self) -> Option<&'static Operation> {
        match self.target {
            Target::Handler(op) => Some(op),
            Target::NotSupported => None,
        }
    }
}

/// The operations of one path template that a request resolved to.
pub(crate) struct Resolved {
    /// The rows of the request's method, one per engine at most.
    pub entries: Vec<&'static Entry>,
    /// Path parameters by name, percent-decoded.
    pub params: Vec<(&'static str, String)>,
}

impl Resolved {
    /// A path parameter, if the template has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) enum Matched {
    Family(Resolved),
    /// The path exists, but no operation of any SDK uses this method on it.
    MethodNotAllowed,
    NotFound,
}

/// Every implemented operation.
pub(crate) fn operations() -> impl Iterator<Item = &'static Operation> {
    OPERATIONS
        .iter()
        .chain(crate::service::OPERATIONS)
        .chain(crate::iam::OPERATIONS)
        .chain(crate::common::OPERATIONS)
        .chain(crate::kafka::OPERATIONS)
        .chain(crate::rabbitmq::OPERATIONS)
        .chain(crate::rocketmq::OPERATIONS)
}

/// (engine, operation, method, path) of every SDK operation, from each engine module's
/// `sdk_operations.tsv`.
fn sdk_operations() -> impl Iterator<Item = (EngineKind, &'static str, &'static str, &'static str)>
{
    [
        (EngineKind::Kafka, crate::kafka::SDK_OPERATIONS),
        (EngineKind::Rabbitmq, crate::rabbitmq::SDK_OPERATIONS),
        (EngineKind::Rocketmq, crate::rocketmq::SDK_OPERATIONS),
    ]
    .into_iter()
    .flat_map(|(engine, text)| {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(move |l| {
                let mut cols = l.split('\t');
                Some((engine, cols.next()?, cols.next()?, cols.next()?))
            })
    })
}

static TABLE: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    let mut table: Vec<Entry> = operations()
        .map(|op| Entry {
            verb: op.verb,
            path: op.path,
            segs: template(op.path),
            name: op.name,
            engine: op.engine,
            target: Target::Handler(op),
        })
        .collect();
    for (engine, name, method, path) in sdk_operations() {
        let Some(verb) = Verb::parse(method) else {
            continue;
        };
        // Implemented for this engine, or for every engine: the handler answers it.
        let covered = table.iter().any(|e| {
            e.verb == verb
                && e.path == path
                && e.handler().is_some()
                && (e.engine.is_none() || e.engine == Some(engine))
        });
        if !covered {
            table.push(Entry {
                verb,
                path,
                segs: template(path),
                name,
                engine: Some(engine),
                target: Target::NotSupported,
            });
        }
    }
    table
});

fn matches(segs: &[Seg], path: &[&str]) -> bool {
    segs.len() == path.len()
        && segs.iter().zip(path).all(|(s, p)| match s {
            Seg::Lit(l) => l == p,
            Seg::Param(_) => !p.is_empty(),
        })
}

/// Orders two templates that match the same path: the one with a literal where the other
/// has a placeholder, at the first segment where they differ, is more specific.
fn more_specific(a: &[Seg], b: &[Seg]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Seg::Lit(_), Seg::Param(_)) => return std::cmp::Ordering::Greater,
            (Seg::Param(_), Seg::Lit(_)) => return std::cmp::Ordering::Less,
            _ => {}
        }
    }
    std::cmp::Ordering::Equal
}

/// Resolves a method and a path (split on `/`, percent-decoded segments).
pub(crate) fn resolve(verb: Option<Verb>, path: &[&str]) -> Matched {
    let candidates: Vec<&'static Entry> = TABLE.iter().filter(|e| matches(&e.segs, path)).collect();
    let Some(best) = candidates
        .iter()
        .copied()
        .max_by(|a, b| more_specific(&a.segs, &b.segs))
    else {
        return Matched::NotFound;
    };
    let family: Vec<&'static Entry> = candidates
        .into_iter()
        .filter(|e| e.path == best.path)
        .collect();
    let entries: Vec<&'static Entry> = family
        .iter()
        .copied()
        .filter(|e| Some(e.verb) == verb)
        .collect();
    if entries.is_empty() {
        return Matched::MethodNotAllowed;
    }
    let params = best
        .segs
        .iter()
        .zip(path)
        .filter_map(|(s, p)| match s {
            Seg::Param(name) => Some((*name, p.to_string())),
            Seg::Lit(_) => None,
        })
        .collect();
    Matched::Family(Resolved { entries, params })
}

/// The SDK operations OpenDMS does not implement, as (engine, method, path, name).
pub fn not_supported() -> Vec<(EngineKind, Verb, &'static str, &'static str)> {
    TABLE
        .iter()
        .filter(|e| e.handler().is_none())
        .filter_map(|e| Some((e.engine?, e.verb, e.path, e.name)))
        .collect()
}

/// The OpenAPI 3 document of every implemented operation.
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for op in operations() {
        let params: Vec<serde_json::Value> = template(op.path)
            .into_iter()
            .filter_map(|s| match s {
                Seg::Param(name) => Some(serde_json::json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})),
                Seg::Lit(_) => None,
            })
            .collect();
        let mut operation = serde_json::json!({
            "operationId": op.name,
            "summary": op.summary,
            "parameters": params,
            "responses": {
                "default": {"description": "Error: {\"error_code\": ..., \"error_msg\": ...}"},
                "200": {"description": "Success"},
            },
        });
        if let Some(e) = op.engine {
            operation["tags"] = serde_json::json!([e.as_str()]);
        }
        if op.public {
            operation["security"] = serde_json::json!([]);
        }
        if matches!(op.verb, Verb::Post | Verb::Put) {
            operation["requestBody"] = serde_json::json!({
                "required": true,
                "content": {"application/json": {"schema": {"type": "object"}}},
            });
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        // A path shared by several engines documents the first row: the others are the
        // same operation dispatched on the instance's engine.
        if entry.get(op.verb.lower()).is_none() {
            entry[op.verb.lower()] = operation;
        }
    }
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {
            "title": "OpenDMS: Huawei Cloud DMS API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Seeds 000 (v1.0) and 003, the v2 paths of huaweicloudsdkkafka, and seed 002's RabbitMQ instances, password and plug-ins. Errors are {\"error_code\",\"error_msg\"}. Every other operation of the official huaweicloudsdkkafka, huaweicloudsdkrabbitmq and huaweicloudsdkrocketmq SDKs answers 501 with error_code DMS.00501001 and the operation's name in error_msg.",
        },
        "components": {"securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
            "aksk": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "SDK-HMAC-SHA256 signature"},
        }},
        "security": [{"token": []}, {"aksk": []}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concrete(path: &str, engine: &str) -> String {
        path.replace("{project_id}", "0123456789abcdef0123456789abcdef")
            .replace("{instance_id}", "8d2b1f7c-1f0e-4c2a-9d7a-0a1b2c3d4e5f")
            .replace("{engine}", engine)
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn resolve_path(verb: Verb, path: &str) -> Matched {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        resolve(Some(verb), &segs)
    }

    /// Every implemented operation resolves to a family that holds it.
    #[test]
    fn every_operation_resolves_to_itself() {
        for op in operations() {
            let engine = op.engine.map_or("kafka", |e| e.as_str());
            match resolve_path(op.verb, &concrete(op.path, engine)) {
                Matched::Family(r) => assert!(
                    r.entries
                        .iter()
                        .any(|e| e.handler().is_some_and(|h| std::ptr::eq(h, op))),
                    "{}: {:?} {} resolved to {:?}",
                    op.name,
                    op.verb,
                    op.path,
                    r.entries.iter().map(|e| e.name).collect::<Vec<_>>()
                ),
                _ => panic!("{}: {:?} {} does not resolve", op.name, op.verb, op.path),
            }
        }
    }

    /// Every operation of the official SDKs resolves: to a handler of its engine or of every
    /// engine, or to a not-supported answer that names it (or names the same engine's
    /// operation of a more specific template that claims the same request: the RocketMQ SDK
    /// has both `/v2/{project_id}/{engine}/instances/...` and
    /// `/v2/{project_id}/rocketmq/instances/...` for one thing).
    #[test]
    fn every_sdk_operation_is_answered() {
        for (engine, name, method, path) in sdk_operations() {
            let verb = Verb::parse(method).unwrap();
            let Matched::Family(r) = resolve_path(verb, &concrete(path, engine.as_str())) else {
                panic!("{engine} {name}: {method} {path} does not resolve");
            };
            let answered = r.entries.iter().any(|e| match e.target {
                Target::Handler(_) => e.engine.is_none() || e.engine == Some(engine),
                Target::NotSupported => {
                    e.engine == Some(engine) && (e.name == name || e.path != path)
                }
            });
            assert!(answered, "{engine} {name}: {method} {path}");
        }
    }

    #[test]
    fn literals_beat_placeholders() {
        let Matched::Family(r) = resolve_path(
            Verb::Post,
            "/v2/0123456789abcdef0123456789abcdef/rocketmq/instances",
        ) else {
            panic!("no match");
        };
        assert_eq!(r.entries[0].name, "create_post_paid_instance_for_rocket_mq");
        assert_eq!(
            r.params,
            vec![("project_id", "0123456789abcdef0123456789abcdef".to_string())]
        );
        let Matched::Family(r) = resolve_path(
            Verb::Post,
            "/v2/kafka/0123456789abcdef0123456789abcdef/instances",
        ) else {
            panic!("no match");
        };
        assert!(r
            .entries
            .iter()
            .any(|e| e.name == "create_instance_by_engine"));
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert!(matches!(
            resolve_path(Verb::Get, "/v2/nope"),
            Matched::NotFound
        ));
        assert!(matches!(
            resolve(None, &["v2", "p", "instances"]),
            Matched::MethodNotAllowed
        ));
        // A GET where the SDK has one that OpenDMS lacks is that operation, not a 405.
        let Matched::Family(r) = resolve_path(
            Verb::Get,
            &concrete(
                "/v2/{project_id}/kafka/instances/{instance_id}/extend",
                "kafka",
            ),
        ) else {
            panic!("no match");
        };
        assert_eq!(r.entries[0].name, "show_kafka_instance_extend_product_info");
        assert!(r.entries[0].handler().is_none());
    }
}
