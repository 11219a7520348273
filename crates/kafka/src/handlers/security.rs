//! SaslHandshake/SaslAuthenticate, ACL administration and SCRAM credential administration.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::ResponseError;
use tracing::warn;

use super::{str_bytes, Ctx};
use crate::connection::{authenticated, Reply, SaslState, Session};
use crate::instance::Shared;
use crate::security::{Mechanism, Operation, SaslSession, SaslStep, SecurityError};

fn mechanisms() -> Vec<kafka_protocol::protocol::StrBytes> {
    Mechanism::ALL_NAMES.iter().map(|m| str_bytes(m)).collect()
}

pub(crate) fn sasl_handshake(
    shared: &Arc<Shared>,
    session: &mut Session,
    req: SaslHandshakeRequest,
    version: i16,
) -> Reply {
    let resp = SaslHandshakeResponse::default().with_mechanisms(mechanisms());
    if !shared.config.sasl || session.authenticated {
        return Reply::ResponseThenClose(
            resp.with_error_code(ResponseError::IllegalSaslState.code())
                .into(),
        );
    }
    let Some(mechanism) = Mechanism::parse(&req.mechanism) else {
        warn!(peer = %session.peer, mechanism = %req.mechanism.as_str(), "unsupported sasl mechanism");
        return Reply::ResponseThenClose(
            resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .into(),
        );
    };
    session.sasl = SaslState::Started {
        mechanism,
        // After a v0 handshake the exchange continues in raw frames, not SaslAuthenticate.
        raw: version == 0,
        exchange: SaslSession::new(mechanism, shared.users.clone()),
    };
    Reply::Response(resp.into())
}

pub(crate) async fn sasl_authenticate(
    shared: &Arc<Shared>,
    session: &mut Session,
    req: SaslAuthenticateRequest,
) -> Reply {
    let (mechanism, exchange) = match std::mem::replace(&mut session.sasl, SaslState::None) {
        SaslState::Started {
            mechanism,
            raw: false,
            exchange,
        } => (mechanism, exchange),
        other => {
            session.sasl = other;
            return Reply::ResponseThenClose(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(str_bytes("SaslAuthenticate without a SaslHandshake")))
                    .into(),
            );
        }
    };
    let (exchange, step) = match sasl_step(exchange, req.auth_bytes).await {
        Ok(done) => done,
        Err(reason) => return Reply::Close(reason),
    };
    match step {
        Ok(SaslStep::Continue(out)) => {
            session.sasl = SaslState::Started {
                mechanism,
                raw: false,
                exchange,
            };
            Reply::Response(
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(out))
                    .into(),
            )
        }
        Ok(SaslStep::Done { user, response }) => {
            authenticated(shared, session, user);
            Reply::Response(
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(response))
                    .into(),
            )
        }
        Err(e) => {
            // The reason goes to the log only; the client learns nothing about which part failed.
            warn!(peer = %session.peer, mechanism = mechanism.name(), reason = %e, "sasl authentication failed");
            Reply::ResponseThenClose(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Authentication failed: invalid credentials with SASL mechanism {}",
                        mechanism.name()
                    ))))
                    .into(),
            )
        }
    }
}

/// One step of a SASL exchange, on a blocking thread: PLAIN checks the password against the
/// stored SCRAM hash with PBKDF2, which takes milliseconds on purpose. Answers the exchange
/// back with the step's outcome; `Err` if the task died.
pub(crate) async fn sasl_step(
    mut exchange: SaslSession,
    token: Bytes,
) -> Result<(SaslSession, Result<SaslStep, SecurityError>), String> {
    tokio::task::spawn_blocking(move || {
        let step = exchange.step(&token);
        (exchange, step)
    })
    .await
    .map_err(|e| format!("sasl step task failed: {e}"))
}

/// Runs `f` on a blocking thread (ACL and credential changes fsync their file); `failed`
/// builds the answer if the task dies.
async fn off_workers<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
    failed: impl FnOnce() -> T,
) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) => {
            warn!(error = %e, "security admin task failed");
            failed()
        }
    }
}

fn acl_creation_errors(count: usize, error: ResponseError) -> CreateAclsResponse {
    let results = (0..count)
        .map(|_| {
            kafka_protocol::messages::create_acls_response::AclCreationResult::default()
                .with_error_code(error.code())
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub(crate) async fn create_acls(ctx: &Ctx<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    let count = req.creations.len();
    if !ctx.allowed_cluster(Operation::Alter) {
        return acl_creation_errors(count, ResponseError::ClusterAuthorizationFailed);
    }
    let (acls, version) = (ctx.shared.acls.clone(), ctx.version);
    off_workers(
        move || acls.create_acls(&req, version),
        || acl_creation_errors(count, ResponseError::UnknownServerError),
    )
    .await
}

pub(crate) fn describe_acls(ctx: &Ctx<'_>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.allowed_cluster(Operation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    ctx.shared.acls.describe_acls(&req, ctx.version)
}

fn acl_deletion_errors(count: usize, error: ResponseError) -> DeleteAclsResponse {
    let results = (0..count)
        .map(|_| {
            kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult::default()
                .with_error_code(error.code())
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

pub(crate) async fn delete_acls(ctx: &Ctx<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let count = req.filters.len();
    if !ctx.allowed_cluster(Operation::Alter) {
        return acl_deletion_errors(count, ResponseError::ClusterAuthorizationFailed);
    }
    let (acls, version) = (ctx.shared.acls.clone(), ctx.version);
    off_workers(
        move || acls.delete_acls(&req, version),
        || acl_deletion_errors(count, ResponseError::UnknownServerError),
    )
    .await
}

pub(crate) fn describe_scram(
    ctx: &Ctx<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.allowed_cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    ctx.shared.users.describe_scram(&req, ctx.version)
}

fn scram_errors(
    names: Vec<kafka_protocol::protocol::StrBytes>,
    error: ResponseError,
) -> AlterUserScramCredentialsResponse {
    let results = names
        .into_iter()
        .map(|user| {
            kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(user)
                .with_error_code(error.code())
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub(crate) async fn alter_scram(
    ctx: &Ctx<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut names: Vec<_> = req.deletions.iter().map(|d| d.name.clone()).collect();
    names.extend(req.upsertions.iter().map(|u| u.name.clone()));
    if !ctx.allowed_cluster(Operation::Alter) {
        return scram_errors(names, ResponseError::ClusterAuthorizationFailed);
    }
    let (users, version) = (ctx.shared.users.clone(), ctx.version);
    off_workers(
        move || users.alter_scram(&req, version),
        || scram_errors(names, ResponseError::UnknownServerError),
    )
    .await
}
