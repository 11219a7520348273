//! One function per operation, called by [`handle`] after routing and authentication.

use axum::body::Body;
use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};
use control::model::*;
use control::{BatchOutcome, Caller, ListFilter};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiGeneration};
use crate::identity::{self, Identity};
use crate::routes::{self, CreateVia, Matched, Route};
use crate::{json, render, respond, ApiState, MAX_BODY_BYTES};

fn no_content() -> Response {
    axum::http::StatusCode::NO_CONTENT.into_response()
}

/// Parses a JSON body; the error names the field that had the wrong type.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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

fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn query_usize(q: &[(String, String)], key: &str) -> Result<Option<usize>, ApiError> {
    match query_get(q, key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_field(key, "must be a non-negative integer")),
    }
}

/// Routes, authenticates and answers one request. Returns the operation name for metrics.
pub async fn handle(
    state: &ApiState,
    req: Request<Body>,
    request_id: &str,
) -> (&'static str, Response) {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let decoded: Vec<String> = raw_path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let (route, generation) = match routes::resolve(&parts.method, &segs) {
        Matched::Route(r, g) => (r, g),
        Matched::MethodNotAllowed(g) => {
            return (
                "method_not_allowed",
                respond(Err(ApiError::method_not_allowed()), g, request_id),
            )
        }
        Matched::NotFound(g) => {
            return (
                "not_found",
                respond(Err(ApiError::not_found_url()), g, request_id),
            )
        }
    };
    let op = operation_name(&route);
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::dms(
                413,
                "400004",
                format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
            );
            return (op, respond(Err(e), generation, request_id));
        }
    };
    let result = async {
        match route {
            Route::Healthz => return Ok(json(200, json!({"status": "ok"}))),
            Route::OpenApi => return Ok(json(200, routes::openapi())),
            Route::Metrics => return Ok(metrics(state).await),
            Route::IamTokens => return crate::handlers::iam_tokens(state, &body).await,
            _ => {}
        }
        let identity = identity::authenticate(
            state.store.as_ref(),
            &state.token_key,
            &parts.method,
            &raw_path,
            &raw_query,
            &parts.headers,
            &body,
        )
        .await?;
        let query = auth::decode_pairs(&raw_query);
        dispatch(
            state,
            &identity,
            route,
            generation,
            &query,
            &body,
            &parts.method,
        )
        .await
    }
    .await;
    (op, respond(result, generation, request_id))
}

fn operation_name(r: &Route) -> &'static str {
    match r {
        Route::Healthz => "healthz",
        Route::Metrics => "metrics",
        Route::OpenApi => "openapi",
        Route::IamTokens => "create_token",
        Route::IamProjects => "list_projects",
        Route::AdminLifecycleGet => "show_lifecycle_controls",
        Route::AdminLifecyclePut => "update_lifecycle_controls",
        Route::Zones => "list_available_zones",
        Route::Products { .. } => "list_products",
        Route::MaintainWindows => "show_maintain_windows",
        Route::CreateInstance { .. } => "create_instance",
        Route::ListInstances { .. } => "list_instances",
        Route::BatchAction { .. } => "batch_restart_or_delete_instances",
        Route::ShowInstance { .. } => "show_instance",
        Route::UpdateInstance { .. } => "update_instance",
        Route::DeleteInstance { .. } => "delete_instance",
        Route::Extend { .. } => "resize_instance",
        Route::ListTopics { .. } => "list_instance_topics",
        Route::CreateTopic { .. } => "create_instance_topic",
        Route::UpdateTopics { .. } => "update_instance_topic",
        Route::DeleteTopics { .. } => "batch_delete_instance_topic",
        Route::ListTasks { .. } => "list_background_tasks",
        Route::ShowTask { .. } => "show_background_task",
        Route::DeleteTask { .. } => "delete_background_task",
        Route::InstanceTags { .. } => "show_kafka_tags",
        Route::ChangeTags { .. } => "batch_create_or_delete_kafka_tag",
        Route::ProjectTags { .. } => "show_kafka_project_tags",
        Route::Quotas { .. } => "show_quotas",
    }
}

async fn caller(state: &ApiState, identity: &Identity, project: &str) -> Result<Caller, ApiError> {
    identity::caller_for(state.store.as_ref(), identity, project).await
}

async fn dispatch(
    state: &ApiState,
    identity: &Identity,
    route: Route,
    generation: ApiGeneration,
    query: &[(String, String)],
    body: &[u8],
    _method: &Method,
) -> Result<Response, ApiError> {
    let plane = &state.plane;
    let region = plane.config().region.clone();
    match route {
        Route::Healthz | Route::Metrics | Route::OpenApi | Route::IamTokens => {
            Err(ApiError::not_found_url())
        }
        Route::IamProjects => {
            let name = query_get(query, "name").filter(|n| !n.is_empty());
            let projects = state
                .store
                .projects(&identity.user.domain_id)
                .await
                .map_err(ApiError::internal)?;
            let list: Vec<Value> = projects
                .iter()
                .filter(|p| name.is_none_or(|n| n == p.name))
                .map(|p| {
                    json!({
                        "id": p.id, "name": p.name, "domain_id": p.domain_id, "parent_id": p.domain_id,
                        "is_domain": false, "enabled": true, "description": "",
                        "links": {"self": format!("/v3/projects/{}", p.id), "next": null, "previous": null},
                    })
                })
                .collect();
            Ok(json(
                200,
                json!({"projects": list, "links": {"self": "/v3/projects", "next": null, "previous": null}}),
            ))
        }
        Route::AdminLifecycleGet => Ok(json(
            200,
            serde_json::to_value(plane.controls()).map_err(ApiError::internal)?,
        )),
        Route::AdminLifecyclePut => {
            let controls: control::lifecycle::LifecycleControls = parse(body)?;
            plane.set_controls(controls);
            Ok(json(
                200,
                serde_json::to_value(plane.controls()).map_err(ApiError::internal)?,
            ))
        }
        Route::Zones => Ok(json(
            200,
            match generation {
                ApiGeneration::V1 => render::zones_v1(&region, plane.zones()),
                ApiGeneration::V2 => render::zones_v2(&region, plane.zones()),
            },
        )),
        Route::MaintainWindows => Ok(json(200, render::maintain_windows())),
        Route::Products { engine } => {
            let engine = engine.or_else(|| query_get(query, "engine").map(str::to_string));
            match engine.as_deref() {
                None | Some("") | Some("kafka") => {}
                Some(other) => {
                    return Err(ApiError::from(control::ControlError::UnsupportedEngine(
                        other.into(),
                    )))
                }
            }
            Ok(json(
                200,
                match generation {
                    ApiGeneration::V1 => render::products_v1(plane.zones()),
                    ApiGeneration::V2 => {
                        render::products_v2(plane.zones(), query_get(query, "product_id"))
                    }
                },
            ))
        }
        Route::CreateInstance { project, shape } => {
            let caller = caller(state, identity, &project).await?;
            let mut req: CreateInstanceRequest = parse(body)?;
            let shape = match shape {
                CreateVia::Bandwidth => CreateShape::Bandwidth,
                CreateVia::Engine(engine) => {
                    if engine != "kafka" {
                        return Err(control::ControlError::UnsupportedEngine(engine).into());
                    }
                    if req.engine.is_none() {
                        req.engine = Some(engine);
                    }
                    CreateShape::Flavor
                }
            };
            let id = plane.create_instance(&caller, &req, shape).await?;
            Ok(json(200, json!({"instance_id": id})))
        }
        Route::ListInstances { project } => {
            let caller = caller(state, identity, &project).await?;
            let flag =
                |k: &str| query_get(query, k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let (offset, limit) = match generation {
                // Seed 000's example pages with start (1-based page) and limit.
                ApiGeneration::V1 => {
                    let limit = query_usize(query, "limit")?;
                    let start = query_usize(query, "start")?.unwrap_or(1).max(1);
                    ((start - 1) * limit.unwrap_or(0), limit)
                }
                ApiGeneration::V2 => (
                    query_usize(query, "offset")?.unwrap_or(0),
                    query_usize(query, "limit")?,
                ),
            };
            let filter = ListFilter {
                engine: query_get(query, "engine").map(str::to_string),
                name: query_get(query, "name").map(str::to_string),
                instance_id: query_get(query, "instance_id")
                    .or_else(|| query_get(query, "id"))
                    .map(str::to_string),
                status: query_get(query, "status").map(str::to_string),
                include_failure: flag("include_failure") || flag("includeFailure"),
                exact_match_name: flag("exact_match_name") || flag("exactMatchName"),
                offset,
                limit,
            };
            let (page, total) = plane.list_instances(&caller.project_id, &filter).await?;
            let instances: Vec<Value> = page
                .iter()
                .map(|v| render::instance(v, generation))
                .collect();
            Ok(json(
                200,
                json!({"instances": instances, "instance_num": total}),
            ))
        }
        Route::BatchAction { project } => {
            let caller = caller(state, identity, &project).await?;
            let req: BatchActionRequest = parse(body)?;
            match plane.batch_action(&caller, &req).await? {
                BatchOutcome::FailuresDeleted => Ok(no_content()),
                BatchOutcome::Results(results) => {
                    let results: Vec<Value> = results
                        .into_iter()
                        .map(|(id, ok)| json!({"instance": id, "result": if ok { "success" } else { "failed" }}))
                        .collect();
                    Ok(json(200, json!({"results": results})))
                }
            }
        }
        Route::ShowInstance { project, id } => {
            let caller = caller(state, identity, &project).await?;
            let v = plane.show_instance(&caller.project_id, &id).await?;
            Ok(json(200, render::instance(&v, generation)))
        }
        Route::UpdateInstance { project, id } => {
            let caller = caller(state, identity, &project).await?;
            let req: UpdateInstanceRequest = parse(body)?;
            plane.update_instance(&caller.project_id, &id, &req).await?;
            Ok(no_content())
        }
        Route::DeleteInstance { project, id } => {
            let caller = caller(state, identity, &project).await?;
            plane.delete_instance(&caller, &id).await?;
            Ok(no_content())
        }
        Route::Extend {
            project,
            id,
            engine,
        } => {
            let caller = caller(state, identity, &project).await?;
            if let Some(e) = engine.filter(|e| e != "kafka") {
                return Err(control::ControlError::UnsupportedEngine(e).into());
            }
            let req: ResizeRequest = parse(body)?;
            let job = plane.resize_instance(&caller, &id, &req).await?;
            Ok(json(200, json!({"job_id": job})))
        }
        Route::ListTopics { project, id } => {
            let caller = caller(state, identity, &project).await?;
            let (doc, topics) = plane.topics(&caller.project_id, &id).await?;
            match generation {
                ApiGeneration::V1 => Ok(json(
                    200,
                    json!({"count": topics.len(), "topics": topics.iter().map(render::topic_v1).collect::<Vec<_>>()}),
                )),
                ApiGeneration::V2 => {
                    let used: i64 = topics.iter().map(|t| i64::from(t.partitions)).sum();
                    let offset = query_usize(query, "offset")?.unwrap_or(0);
                    let limit = query_usize(query, "limit")?.unwrap_or(usize::MAX);
                    let page: Vec<Value> = topics
                        .iter()
                        .skip(offset)
                        .take(limit)
                        .map(render::topic_v2)
                        .collect();
                    Ok(json(
                        200,
                        json!({
                            "total": topics.len(),
                            "size": page.len(),
                            "remain_partitions": i64::from(doc.partition_num) - used,
                            "max_partitions": doc.partition_num,
                            "topic_max_partitions": control::plane::MAX_TOPIC_PARTITIONS,
                            "topics": page,
                        }),
                    ))
                }
            }
        }
        Route::CreateTopic { project, id } => {
            let caller = caller(state, identity, &project).await?;
            let req: CreateTopicRequest = parse(body)?;
            let name = plane.create_topic(&caller.project_id, &id, &req).await?;
            Ok(json(
                200,
                match generation {
                    ApiGeneration::V1 => json!({"id": name}),
                    ApiGeneration::V2 => json!({"name": name}),
                },
            ))
        }
        Route::UpdateTopics { project, id } => {
            let caller = caller(state, identity, &project).await?;
            #[derive(serde::Deserialize)]
            struct Body {
                topics: Vec<UpdateTopicEntry>,
            }
            let req: Body = parse(body)?;
            plane
                .update_topics(&caller.project_id, &id, &req.topics)
                .await?;
            Ok(no_content())
        }
        Route::DeleteTopics { project, id } => {
            let caller = caller(state, identity, &project).await?;
            #[derive(serde::Deserialize)]
            struct Body {
                topics: Vec<String>,
            }
            let req: Body = parse(body)?;
            let results = plane
                .delete_topics(&caller.project_id, &id, &req.topics)
                .await?;
            let topics: Vec<Value> = results
                .into_iter()
                .map(|(name, ok)| json!({"id": name, "success": ok}))
                .collect();
            Ok(json(200, json!({"topics": topics})))
        }
        Route::ListTasks { project, id } => {
            let caller = caller(state, identity, &project).await?;
            let tasks = plane.tasks(&caller.project_id, &id).await?;
            let start = query_usize(query, "start")?.unwrap_or(1).max(1);
            let limit = query_usize(query, "limit")?.unwrap_or(usize::MAX);
            let page: Vec<Value> = tasks
                .iter()
                .skip((start - 1).saturating_mul(limit.min(tasks.len().max(1))))
                .take(limit)
                .map(task_json)
                .collect();
            Ok(json(
                200,
                json!({"task_count": tasks.len().to_string(), "tasks": page}),
            ))
        }
        Route::ShowTask { project, id, task } => {
            let caller = caller(state, identity, &project).await?;
            let t = plane.task(&caller.project_id, &id, &task).await?;
            Ok(json(
                200,
                json!({"task_count": "1", "tasks": [task_json(&t)]}),
            ))
        }
        Route::DeleteTask { project, id, task } => {
            let caller = caller(state, identity, &project).await?;
            plane.delete_task(&caller.project_id, &id, &task).await?;
            Ok(no_content())
        }
        Route::InstanceTags { project, id } => {
            let caller = caller(state, identity, &project).await?;
            let tags = plane.tags(&caller.project_id, &id).await?;
            Ok(json(
                200,
                json!({"tags": tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>()}),
            ))
        }
        Route::ChangeTags { project, id } => {
            let caller = caller(state, identity, &project).await?;
            #[derive(serde::Deserialize)]
            struct Body {
                action: String,
                #[serde(default)]
                tags: Vec<Tag>,
            }
            let req: Body = parse(body)?;
            plane
                .change_tags(&caller.project_id, &id, &req.action, &req.tags)
                .await?;
            Ok(no_content())
        }
        Route::ProjectTags { project } => {
            let caller = caller(state, identity, &project).await?;
            let tags = plane.project_tags(&caller.project_id).await?;
            Ok(json(
                200,
                json!({"tags": tags.into_iter().map(|(k, v)| json!({"key": k, "values": v})).collect::<Vec<_>>()}),
            ))
        }
        Route::Quotas { project } => {
            let caller = caller(state, identity, &project).await?;
            let quotas = plane.quotas(&caller.project_id).await?;
            let resources: Vec<Value> = quotas
                .into_iter()
                .map(|(t, quota, used)| json!({"type": t, "quota": quota, "used": used}))
                .collect();
            Ok(json(200, json!({"quotas": {"resources": resources}})))
        }
    }
}

fn task_json(t: &TaskRecord) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "user_name": t.user_name,
        "user_id": t.user_id,
        "params": t.params,
        "status": t.status,
        "created_at": t.created_at_ms.to_string(),
        "updated_at": t.updated_at_ms.to_string(),
    })
}

async fn metrics(state: &ApiState) -> Response {
    let mut by_status: std::collections::BTreeMap<String, u64> =
        control::model::InstanceStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
    let mut per_instance = Vec::new();
    if let Ok(all) = state.store.instances(None).await {
        for r in all {
            *by_status.entry(r.status.clone()).or_default() += 1;
            if let Ok(admin) = state.plane.engines().admin(&r.id) {
                let (bytes_in, bytes_out) = admin.traffic();
                per_instance.push(crate::metrics::InstanceFigures {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    used_bytes: admin.used_bytes(),
                    bytes_in,
                    bytes_out,
                });
            }
        }
    }
    let by_status: Vec<(String, u64)> = by_status.into_iter().collect();
    let text = state.metrics.render(&by_status, &per_instance);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

/// `POST /v3/auth/tokens`: the password method with a project scope (seed 000 §1.4).
pub async fn iam_tokens(state: &ApiState, body: &[u8]) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
        id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct PwUser {
        name: Option<String>,
        id: Option<String>,
        password: String,
        domain: Option<Named>,
    }
    #[derive(serde::Deserialize)]
    struct Password {
        user: PwUser,
    }
    #[derive(serde::Deserialize)]
    struct IdentityReq {
        methods: Vec<String>,
        password: Option<Password>,
    }
    #[derive(serde::Deserialize)]
    struct ProjectScope {
        project: Option<Named>,
    }
    #[derive(serde::Deserialize)]
    struct Auth {
        identity: IdentityReq,
        scope: Option<ProjectScope>,
    }
    #[derive(serde::Deserialize)]
    struct Req {
        auth: Auth,
    }
    let iam_error = |status: u16, message: &str| {
        let title = if status == 401 {
            "Unauthorized"
        } else {
            "Bad Request"
        };
        json(
            status,
            json!({"error": {"code": status, "message": message, "title": title}}),
        )
    };
    let req: Req = match parse(body) {
        Ok(r) => r,
        Err(e) => return Ok(iam_error(400, &e.message)),
    };
    if !req.auth.identity.methods.iter().any(|m| m == "password") {
        return Ok(iam_error(400, "only the password method is supported"));
    }
    let Some(pw) = req.auth.identity.password else {
        return Ok(iam_error(400, "identity.password is required"));
    };
    let store = &state.store;
    let wrong = || iam_error(401, "The username or password is wrong.");
    let user = match (&pw.user.id, &pw.user.name, &pw.user.domain) {
        (Some(id), _, _) => store.user(id).await.map_err(ApiError::internal)?,
        (
            None,
            Some(name),
            Some(Named {
                name: Some(domain), ..
            }),
        ) => {
            match store
                .domain_by_name(domain)
                .await
                .map_err(ApiError::internal)?
            {
                Some(d) => store
                    .user_by_name(&d.id, name)
                    .await
                    .map_err(ApiError::internal)?,
                None => None,
            }
        }
        (
            None,
            Some(name),
            Some(Named {
                id: Some(domain_id),
                ..
            }),
        ) => store
            .user_by_name(domain_id, name)
            .await
            .map_err(ApiError::internal)?,
        _ => {
            return Ok(iam_error(
                400,
                "user.id, or user.name with user.domain, is required",
            ))
        }
    };
    let Some(user) = user else { return Ok(wrong()) };
    // PBKDF2 takes tens of milliseconds on purpose: off the async workers.
    let (password, stored) = (pw.user.password.clone(), user.password_hash.clone());
    let matches =
        tokio::task::spawn_blocking(move || auth::password::verify_password(&password, &stored))
            .await
            .map_err(ApiError::internal)?;
    if !matches {
        tracing::info!(user = %user.name, "token refused: wrong password");
        return Ok(wrong());
    }
    let projects = store
        .projects(&user.domain_id)
        .await
        .map_err(ApiError::internal)?;
    let scope = req.auth.scope.and_then(|s| s.project);
    let project = match scope {
        Some(Named { id: Some(id), .. }) => projects.into_iter().find(|p| p.id == id),
        Some(Named {
            name: Some(name), ..
        }) => projects.into_iter().find(|p| p.name == name),
        _ => {
            return Ok(iam_error(
                400,
                "DMS APIs need a project-scoped token: set auth.scope.project",
            ))
        }
    };
    let Some(project) = project else {
        return Ok(iam_error(
            401,
            "The project in the scope does not exist in the user's account.",
        ));
    };
    let domain_name = store
        .domain(&user.domain_id)
        .await
        .map_err(ApiError::internal)?
        .map(|d| d.name)
        .unwrap_or_default();
    let now = identity::now_secs();
    let claims = auth::token::TokenClaims {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        domain_id: user.domain_id.clone(),
        project_id: project.id.clone(),
        issued_at: now,
        expires_at: now + 24 * 3600,
    };
    let token = auth::token::issue(&state.token_key, &claims);
    let iso = |secs: i64| format_iso8601(secs);
    let body = json!({"token": {
        "methods": ["password"],
        "issued_at": iso(now),
        "expires_at": iso(now + 24 * 3600),
        "user": {"id": user.id, "name": user.name, "domain": {"id": user.domain_id, "name": domain_name}},
        "project": {"id": project.id, "name": project.name, "domain": {"id": user.domain_id, "name": domain_name}},
        "catalog": [],
        "roles": [{"id": "0", "name": "op_service"}],
    }});
    let mut resp = json(201, body);
    if let Ok(v) = axum::http::HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    tracing::info!(user = %user.name, project = %project.id, "token issued");
    Ok(resp)
}

/// `YYYY-MM-DDTHH:MM:SS.000000Z`, as IAM prints token times.
fn format_iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_iso8601(1_700_000_000), "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn bodies_name_the_bad_field() {
        let e = parse::<CreateInstanceRequest>(br#"{"storage_space": "abc"}"#).unwrap_err();
        assert!(e.message.contains("storage_space"), "{}", e.message);
        let e = parse::<CreateInstanceRequest>(b"{not json").unwrap_err();
        assert_eq!(e.code_for(ApiGeneration::V1), "111400005");
        let e = parse::<CreateInstanceRequest>(b"").unwrap_err();
        assert_eq!(e.code_for(ApiGeneration::V2), "DMS.00400004");
    }
}
