//! The route table: every path of the façade, matched by hand so that unknown paths and
//! methods get the documented 404/405 errors, and listed once more as data for the OpenAPI
//! document (a unit test checks that the two agree).

use axum::http::Method;

use crate::error::ApiGeneration;

/// One operation, with the path parameters it was called with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Metrics,
    OpenApi,
    IamTokens,
    IamProjects,
    AdminLifecycleGet,
    AdminLifecyclePut,
    Zones,
    Products {
        engine: Option<String>,
    },
    MaintainWindows,
    CreateInstance {
        project: String,
        shape: CreateVia,
    },
    ListInstances {
        project: String,
    },
    BatchAction {
        project: String,
    },
    ShowInstance {
        project: String,
        id: String,
    },
    UpdateInstance {
        project: String,
        id: String,
    },
    DeleteInstance {
        project: String,
        id: String,
    },
    Extend {
        project: String,
        id: String,
        engine: Option<String>,
    },
    ListTopics {
        project: String,
        id: String,
    },
    CreateTopic {
        project: String,
        id: String,
    },
    UpdateTopics {
        project: String,
        id: String,
    },
    DeleteTopics {
        project: String,
        id: String,
    },
    ListTasks {
        project: String,
        id: String,
    },
    ShowTask {
        project: String,
        id: String,
        task: String,
    },
    DeleteTask {
        project: String,
        id: String,
        task: String,
    },
    InstanceTags {
        project: String,
        id: String,
    },
    ChangeTags {
        project: String,
        id: String,
    },
    ProjectTags {
        project: String,
    },
    Quotas {
        project: String,
    },
}

/// Which create path was used; it decides the request shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateVia {
    /// `/v1.0/{project_id}/instances` and seed 003's `/v2/{project_id}/instances`.
    Bandwidth,
    /// `/v2/{engine}/{project_id}/instances` and `/v2/{project_id}/kafka/instances`.
    Engine(String),
}

pub enum Matched {
    Route(Route, ApiGeneration),
    MethodNotAllowed(ApiGeneration),
    NotFound(ApiGeneration),
}

/// Resolves a method and a path (already split on `/`, percent-decoded segments).
pub fn resolve(method: &Method, segs: &[&str]) -> Matched {
    use Route as R;
    let s = |x: &str| x.to_string();
    let generation = if segs.first() == Some(&"v1.0") {
        ApiGeneration::V1
    } else {
        ApiGeneration::V2
    };
    let m = method.clone();
    let get = m == Method::GET;
    let post = m == Method::POST;
    let put = m == Method::PUT;
    let delete = m == Method::DELETE;
    // (does the path exist, the route for this method if any)
    let (exists, route): (bool, Option<Route>) = match segs {
        ["healthz"] => (true, get.then_some(R::Healthz)),
        ["metrics"] => (true, get.then_some(R::Metrics)),
        ["openapi.json"] => (true, get.then_some(R::OpenApi)),
        ["v3", "auth", "tokens"] => (true, post.then_some(R::IamTokens)),
        ["v3", "projects"] => (true, get.then_some(R::IamProjects)),
        ["opendms", "admin", "lifecycle"] => (
            true,
            if get {
                Some(R::AdminLifecycleGet)
            } else if put {
                Some(R::AdminLifecyclePut)
            } else {
                None
            },
        ),
        ["v1.0", "availableZones"] | ["v2", "available-zones"] => (true, get.then_some(R::Zones)),
        ["v1.0", "products"] => (true, get.then_some(R::Products { engine: None })),
        ["v2", engine, "products"] => (
            true,
            get.then_some(R::Products {
                engine: Some(s(engine)),
            }),
        ),
        ["v1.0" | "v2", "instances", "maintain-windows"] => {
            (true, get.then_some(R::MaintainWindows))
        }
        ["v1.0" | "v2", p, "instances"] => (
            true,
            if post {
                Some(R::CreateInstance {
                    project: s(p),
                    shape: CreateVia::Bandwidth,
                })
            } else if get {
                Some(R::ListInstances { project: s(p) })
            } else {
                None
            },
        ),
        ["v2", p, "kafka", "instances"] => (
            true,
            post.then(|| R::CreateInstance {
                project: s(p),
                shape: CreateVia::Engine(s("kafka")),
            }),
        ),
        ["v2", engine, p, "instances"] => (
            true,
            post.then(|| R::CreateInstance {
                project: s(p),
                shape: CreateVia::Engine(s(engine)),
            }),
        ),
        ["v1.0" | "v2", p, "instances", "action"] => {
            (true, post.then(|| R::BatchAction { project: s(p) }))
        }
        ["v1.0" | "v2", p, "instances", id] => (
            true,
            if get {
                Some(R::ShowInstance {
                    project: s(p),
                    id: s(id),
                })
            } else if put {
                Some(R::UpdateInstance {
                    project: s(p),
                    id: s(id),
                })
            } else if delete {
                Some(R::DeleteInstance {
                    project: s(p),
                    id: s(id),
                })
            } else {
                None
            },
        ),
        ["v1.0", p, "instances", id, "extend"] | ["v2", p, "kafka", "instances", id, "extend"] => (
            true,
            post.then(|| R::Extend {
                project: s(p),
                id: s(id),
                engine: None,
            }),
        ),
        ["v2", engine, p, "instances", id, "extend"] => (
            true,
            post.then(|| R::Extend {
                project: s(p),
                id: s(id),
                engine: Some(s(engine)),
            }),
        ),
        ["v1.0" | "v2", p, "instances", id, "topics"] => (
            true,
            if get {
                Some(R::ListTopics {
                    project: s(p),
                    id: s(id),
                })
            } else if post {
                Some(R::CreateTopic {
                    project: s(p),
                    id: s(id),
                })
            } else if put && generation == ApiGeneration::V2 {
                Some(R::UpdateTopics {
                    project: s(p),
                    id: s(id),
                })
            } else {
                None
            },
        ),
        ["v1.0" | "v2", p, "instances", id, "topics", "delete"] => (
            true,
            post.then(|| R::DeleteTopics {
                project: s(p),
                id: s(id),
            }),
        ),
        ["v2", p, "instances", id, "tasks"] => (
            true,
            get.then(|| R::ListTasks {
                project: s(p),
                id: s(id),
            }),
        ),
        ["v2", p, "instances", id, "tasks", task] => (
            true,
            if get {
                Some(R::ShowTask {
                    project: s(p),
                    id: s(id),
                    task: s(task),
                })
            } else if delete {
                Some(R::DeleteTask {
                    project: s(p),
                    id: s(id),
                    task: s(task),
                })
            } else {
                None
            },
        ),
        ["v2", p, "kafka", "tags"] => (true, get.then(|| R::ProjectTags { project: s(p) })),
        ["v2", p, "kafka", id, "tags"] => (
            true,
            get.then(|| R::InstanceTags {
                project: s(p),
                id: s(id),
            }),
        ),
        ["v2", p, "kafka", id, "tags", "action"] => (
            true,
            post.then(|| R::ChangeTags {
                project: s(p),
                id: s(id),
            }),
        ),
        ["v2", p, "quotas"] => (true, get.then(|| R::Quotas { project: s(p) })),
        _ => (false, None),
    };
    match (exists, route) {
        (_, Some(r)) => Matched::Route(r, generation),
        (true, None) => Matched::MethodNotAllowed(generation),
        (false, None) => Matched::NotFound(generation),
    }
}

/// Every route as (method, path template, operation id, summary), for the OpenAPI document.
pub const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "get",
        "/healthz",
        "healthz",
        "Liveness check (no authentication)",
    ),
    (
        "get",
        "/metrics",
        "metrics",
        "Prometheus metrics (no authentication)",
    ),
    (
        "get",
        "/openapi.json",
        "openapi",
        "This document (no authentication)",
    ),
    (
        "post",
        "/v3/auth/tokens",
        "keystone_create_user_token_by_password",
        "Obtain an IAM token (password method, project scope)",
    ),
    (
        "get",
        "/v3/projects",
        "keystone_list_projects",
        "List the projects of the caller's account",
    ),
    (
        "get",
        "/opendms/admin/lifecycle",
        "show_lifecycle_controls",
        "Show the transition delays and injected failures",
    ),
    (
        "put",
        "/opendms/admin/lifecycle",
        "update_lifecycle_controls",
        "Set transition delays and injected failures",
    ),
    (
        "get",
        "/v1.0/availableZones",
        "list_available_zones_v1",
        "Query AZ information (seed 000 6.1)",
    ),
    (
        "get",
        "/v1.0/products",
        "list_products_v1",
        "Query product specifications (seed 000 6.2)",
    ),
    (
        "get",
        "/v1.0/instances/maintain-windows",
        "show_maintain_windows_v1",
        "Query maintenance windows (seed 000 6.3)",
    ),
    (
        "post",
        "/v1.0/{project_id}/instances",
        "create_instance_v1",
        "Create an instance (seed 000 5.1)",
    ),
    (
        "get",
        "/v1.0/{project_id}/instances",
        "list_instances_v1",
        "Query all instances (seed 000 5.6)",
    ),
    (
        "post",
        "/v1.0/{project_id}/instances/action",
        "batch_restart_or_delete_instances_v1",
        "Restart or delete instances in batches (seed 000 5.5)",
    ),
    (
        "get",
        "/v1.0/{project_id}/instances/{instance_id}",
        "show_instance_v1",
        "Query an instance (seed 000 5.2)",
    ),
    (
        "put",
        "/v1.0/{project_id}/instances/{instance_id}",
        "update_instance_v1",
        "Modify an instance (seed 000 5.3)",
    ),
    (
        "delete",
        "/v1.0/{project_id}/instances/{instance_id}",
        "delete_instance_v1",
        "Delete an instance (seed 000 5.4)",
    ),
    (
        "post",
        "/v1.0/{project_id}/instances/{instance_id}/extend",
        "resize_instance_v1",
        "Modify instance specifications (seed 000 Table 7-1)",
    ),
    (
        "post",
        "/v1.0/{project_id}/instances/{instance_id}/topics",
        "create_topic_v1",
        "Create a topic (seed 000 5.7)",
    ),
    (
        "get",
        "/v1.0/{project_id}/instances/{instance_id}/topics",
        "list_topics_v1",
        "Query topics (seed 000 5.8)",
    ),
    (
        "post",
        "/v1.0/{project_id}/instances/{instance_id}/topics/delete",
        "batch_delete_topics_v1",
        "Delete topics in batches (seed 000 5.9)",
    ),
    (
        "get",
        "/v2/available-zones",
        "list_available_zones",
        "Query AZ information",
    ),
    (
        "get",
        "/v2/{engine}/products",
        "list_engine_products",
        "Query product specifications",
    ),
    (
        "get",
        "/v2/instances/maintain-windows",
        "show_maintain_windows",
        "Query maintenance windows",
    ),
    (
        "post",
        "/v2/{project_id}/instances",
        "create_post_paid_instance",
        "Create a pay-per-use instance (seed 003)",
    ),
    (
        "post",
        "/v2/{engine}/{project_id}/instances",
        "create_instance_by_engine",
        "Create an instance",
    ),
    (
        "post",
        "/v2/{project_id}/kafka/instances",
        "create_post_paid_kafka_instance",
        "Create a Kafka instance",
    ),
    (
        "get",
        "/v2/{project_id}/instances",
        "list_instances",
        "List instances",
    ),
    (
        "post",
        "/v2/{project_id}/instances/action",
        "batch_restart_or_delete_instances",
        "Restart or delete instances in batches",
    ),
    (
        "get",
        "/v2/{project_id}/instances/{instance_id}",
        "show_instance",
        "Query an instance",
    ),
    (
        "put",
        "/v2/{project_id}/instances/{instance_id}",
        "update_instance",
        "Modify an instance",
    ),
    (
        "delete",
        "/v2/{project_id}/instances/{instance_id}",
        "delete_instance",
        "Delete an instance",
    ),
    (
        "post",
        "/v2/{engine}/{project_id}/instances/{instance_id}/extend",
        "resize_engine_instance",
        "Extend an instance",
    ),
    (
        "post",
        "/v2/{project_id}/kafka/instances/{instance_id}/extend",
        "resize_kafka_instance",
        "Extend a Kafka instance",
    ),
    (
        "get",
        "/v2/{project_id}/instances/{instance_id}/topics",
        "list_instance_topics",
        "List topics",
    ),
    (
        "post",
        "/v2/{project_id}/instances/{instance_id}/topics",
        "create_instance_topic",
        "Create a topic",
    ),
    (
        "put",
        "/v2/{project_id}/instances/{instance_id}/topics",
        "update_instance_topic",
        "Modify topics",
    ),
    (
        "post",
        "/v2/{project_id}/instances/{instance_id}/topics/delete",
        "batch_delete_instance_topic",
        "Delete topics in batches",
    ),
    (
        "get",
        "/v2/{project_id}/instances/{instance_id}/tasks",
        "list_background_tasks",
        "List background tasks",
    ),
    (
        "get",
        "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}",
        "show_background_task",
        "Query a background task",
    ),
    (
        "delete",
        "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}",
        "delete_background_task",
        "Delete a background task",
    ),
    (
        "get",
        "/v2/{project_id}/kafka/{instance_id}/tags",
        "show_kafka_tags",
        "Query an instance's tags",
    ),
    (
        "post",
        "/v2/{project_id}/kafka/{instance_id}/tags/action",
        "batch_create_or_delete_kafka_tag",
        "Add or delete instance tags",
    ),
    (
        "get",
        "/v2/{project_id}/kafka/tags",
        "show_kafka_project_tags",
        "Query the tags of a project",
    ),
    (
        "get",
        "/v2/{project_id}/quotas",
        "show_quotas",
        "Query quotas",
    ),
];

/// The OpenAPI 3 document of [`OPERATIONS`].
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (method, path, op, summary) in OPERATIONS {
        let params: Vec<serde_json::Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| serde_json::json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let public = matches!(
            *op,
            "healthz" | "metrics" | "openapi" | "keystone_create_user_token_by_password"
        );
        let mut operation = serde_json::json!({
            "operationId": op,
            "summary": summary,
            "parameters": params,
            "responses": {
                "default": {"description": "Error: {\"error_code\": ..., \"error_msg\": ...}"},
                "200": {"description": "Success"},
            },
        });
        if public {
            operation["security"] = serde_json::json!([]);
        }
        if matches!(*method, "post" | "put") {
            operation["requestBody"] = serde_json::json!({
                "required": true,
                "content": {"application/json": {"schema": {"type": "object"}}},
            });
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        entry[*method] = operation;
    }
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {
            "title": "OpenDMS: Huawei Cloud DMS for Kafka API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Seeds 000 (v1.0) and 003, and the v2 paths of huaweicloudsdkkafka. Errors are {\"error_code\",\"error_msg\"}.",
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

    /// Every documented operation resolves to a route, and no route is left undocumented
    /// by a path the table does not list.
    #[test]
    fn the_document_and_the_router_agree() {
        for (method, path, op, _) in OPERATIONS {
            let concrete = path
                .replace("{project_id}", "0123456789abcdef0123456789abcdef")
                .replace("{instance_id}", "8d2b1f7c-1f0e-4c2a-9d7a-0a1b2c3d4e5f")
                .replace("{task_id}", "t1")
                .replace("{engine}", "kafka");
            let segs: Vec<&str> = concrete.trim_start_matches('/').split('/').collect();
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            assert!(
                matches!(resolve(&m, &segs), Matched::Route(..)),
                "{op}: {method} {path}"
            );
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert!(matches!(
            resolve(&Method::GET, &["v2", "nope"]),
            Matched::NotFound(_)
        ));
        assert!(matches!(
            resolve(&Method::PATCH, &["v2", "p", "instances"]),
            Matched::MethodNotAllowed(_)
        ));
    }
}
