//! IAM: `POST /v3/auth/tokens` (the password method with a project scope, seed 000 §1.4)
//! and `GET /v3/projects` (the SDK looks a region's project up there).

use std::sync::Arc;

use axum::response::Response;
use serde_json::{json, Value};

use crate::call::Call;
use crate::error::ApiError;
use crate::operation::{op, Operation};
use crate::{json, ApiState};

pub(crate) static OPERATIONS: &[Operation] = &[
    op!(public Post "/v3/auth/tokens", "keystone_create_user_token_by_password",
        "Obtain an IAM token (password method, project scope)", create_token),
    op!(Get "/v3/projects", "keystone_list_projects",
        "List the projects of the caller's account", None, list_projects),
];

/// `GET /v3/projects`, filtered by `name`.
pub(crate) async fn list_projects(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let name = call.query("name").filter(|n| !n.is_empty());
    let projects = state
        .store
        .projects(&call.identity()?.user.domain_id)
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

/// `POST /v3/auth/tokens`.
pub(crate) async fn create_token(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
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
    let req: Req = match call.body() {
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
    let now = auth::now_secs();
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
}
