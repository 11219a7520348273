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
use crate::security::{Mechanism, Operation, SaslSession, SaslStep};

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

pub(crate) fn sasl_authenticate(
    shared: &Arc<Shared>,
    session: &mut Session,
    req: SaslAuthenticateRequest,
) -> Reply {
    let SaslState::Started {
        mechanism,
        raw: false,
        exchange,
    } = &mut session.sasl
    else {
        return Reply::ResponseThenClose(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(str_bytes("SaslAuthenticate without a SaslHandshake")))
                .into(),
        );
    };
    let mechanism = *mechanism;
    match exchange.step(&req.auth_bytes) {
        Ok(SaslStep::Continue(out)) => Reply::Response(
            SaslAuthenticateResponse::default()
                .with_auth_bytes(Bytes::from(out))
                .into(),
        ),
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

pub(crate) fn create_acls(ctx: &Ctx<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    if !ctx.allowed_cluster(Operation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| {
                kafka_protocol::messages::create_acls_response::AclCreationResult::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    ctx.shared.acls.create_acls(&req, ctx.version)
}

pub(crate) fn describe_acls(ctx: &Ctx<'_>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.allowed_cluster(Operation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    ctx.shared.acls.describe_acls(&req, ctx.version)
}

pub(crate) fn delete_acls(ctx: &Ctx<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    if !ctx.allowed_cluster(Operation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| {
                kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    ctx.shared.acls.delete_acls(&req, ctx.version)
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

pub(crate) fn alter_scram(
    ctx: &Ctx<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if !ctx.allowed_cluster(Operation::Alter) {
        let mut names: Vec<_> = req.deletions.iter().map(|d| d.name.clone()).collect();
        names.extend(req.upsertions.iter().map(|u| u.name.clone()));
        let results = names
            .into_iter()
            .map(|user| {
                kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    ctx.shared.users.alter_scram(&req, ctx.version)
}
