//! ACL users (seed 001 5.5): the accounts of the brokers' plain ACL. Changes reach every
//! broker at once; secrets are never shown (`*****`).

use std::sync::Arc;

use axum::response::Response;
use control::model::ResourcePerm;
use control::{AccessPolicy, AclUserRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page, render};
use crate::call::Call;
use crate::error::ApiError;
use crate::{json, ApiState};

#[derive(Deserialize)]
struct Perm {
    name: Option<String>,
    perm: Option<String>,
}

/// Seed 001's User in a request.
#[derive(Deserialize)]
struct UserBody {
    access_key: Option<String>,
    secret_key: Option<String>,
    white_remote_address: Option<String>,
    admin: Option<bool>,
    default_topic_perm: Option<String>,
    default_group_perm: Option<String>,
    topic_perms: Option<Vec<Perm>>,
    group_perms: Option<Vec<Perm>>,
}

fn perms(list: Option<Vec<Perm>>) -> Option<Vec<ResourcePerm>> {
    list.map(|l| {
        l.into_iter()
            .map(|p| ResourcePerm {
                name: p.name.unwrap_or_default(),
                perm: p.perm.unwrap_or_default(),
            })
            .collect()
    })
}

impl UserBody {
    fn request(self) -> AclUserRequest {
        AclUserRequest {
            access_key: self.access_key,
            secret_key: self.secret_key,
            white_remote_address: self.white_remote_address,
            admin: self.admin,
            default_topic_perm: self.default_topic_perm,
            default_group_perm: self.default_group_perm,
            topic_perms: perms(self.topic_perms),
            group_perms: perms(self.group_perms),
        }
    }
}

pub(crate) async fn create(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: UserBody = call.body()?;
    let u = state
        .plane
        .create_acl_user(call.project()?, call.instance_id(), &body.request())
        .await?;
    Ok(json(200, render::user(&u)))
}

pub(crate) async fn list(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let users = state
        .plane
        .acl_users(call.project()?, call.instance_id())
        .await?;
    let items: Vec<Value> = users.iter().map(render::user).collect();
    let (items, total, _, _) = page(&call, items)?;
    Ok(json(200, json!({"users": items, "total": total})))
}

pub(crate) async fn show(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let u = state
        .plane
        .acl_user(call.project()?, call.instance_id(), call.param("user_name"))
        .await?;
    Ok(json(200, render::user(&u)))
}

pub(crate) async fn update(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let body: UserBody = call.body()?;
    let u = state
        .plane
        .change_acl_user(
            call.project()?,
            call.instance_id(),
            call.param("user_name"),
            &body.request(),
        )
        .await?;
    Ok(json(200, render::user(&u)))
}

/// 5.5.5: 200 with a message (not 204).
pub(crate) async fn delete(state: Arc<ApiState>, call: Call) -> Result<Response, ApiError> {
    let name = call.param("user_name").to_string();
    state
        .plane
        .delete_acl_user(call.project()?, call.instance_id(), &name)
        .await?;
    Ok(json(
        200,
        json!({"message": format!("user {name} deleted")}),
    ))
}

/// The answer of 5.5.6 and 5.5.7.
pub(crate) fn policies(
    call: &Call,
    name: &str,
    policies: &[AccessPolicy],
) -> Result<Response, ApiError> {
    let items: Vec<Value> = policies
        .iter()
        .map(|p| {
            json!({
                "access_key": p.access_key, "secret_key": "*****",
                "white_remote_address": p.white_remote_address, "admin": p.admin, "perm": p.perm,
            })
        })
        .collect();
    let (items, total, _, _) = page(call, items)?;
    Ok(json(
        200,
        json!({"policies": items, "total": total, "name": name}),
    ))
}
