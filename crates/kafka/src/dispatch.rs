//! Routes each decoded request to its handler.

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::connection::{Reply, Session};
use crate::handlers::{admin, cluster, fetch, groups, produce, security};
use crate::instance::Shared;

pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    session: &mut Session,
    request: RequestKind,
    version: i16,
    client_id: &str,
) -> Reply {
    let ctx = crate::handlers::Ctx {
        shared,
        broker_id: session.broker_id,
        principal: session.principal.clone(),
        host: session.peer.ip().to_string(),
        version,
    };
    let r = |k: ResponseKind| Reply::Response(k);
    match request {
        RequestKind::ApiVersions(_) => r(cluster::api_versions().into()),
        RequestKind::Metadata(req) => r(cluster::metadata(&ctx, req).await.into()),
        RequestKind::DescribeCluster(req) => r(cluster::describe_cluster(&ctx, req).into()),
        RequestKind::FindCoordinator(req) => r(cluster::find_coordinator(&ctx, req).into()),
        RequestKind::Produce(req) => match produce::produce(&ctx, req).await {
            Some(resp) => r(resp.into()),
            None => Reply::Nothing,
        },
        RequestKind::InitProducerId(req) => r(produce::init_producer_id(&ctx, req).await.into()),
        RequestKind::Fetch(req) => r(fetch::fetch(&ctx, req).await.into()),
        RequestKind::ListOffsets(req) => r(fetch::list_offsets(&ctx, req).await.into()),
        RequestKind::OffsetForLeaderEpoch(req) => {
            r(fetch::offset_for_leader_epoch(&ctx, req).into())
        }
        RequestKind::CreateTopics(req) => r(admin::create_topics(&ctx, req).await.into()),
        RequestKind::DeleteTopics(req) => r(admin::delete_topics(&ctx, req).await.into()),
        RequestKind::CreatePartitions(req) => r(admin::create_partitions(&ctx, req).await.into()),
        RequestKind::DescribeConfigs(req) => r(admin::describe_configs(&ctx, req).into()),
        RequestKind::AlterConfigs(req) => r(admin::alter_configs(&ctx, req).await.into()),
        RequestKind::IncrementalAlterConfigs(req) => {
            r(admin::incremental_alter_configs(&ctx, req).await.into())
        }
        RequestKind::DeleteRecords(req) => r(admin::delete_records(&ctx, req).await.into()),
        RequestKind::JoinGroup(req) => r(groups::join_group(&ctx, req, client_id).await.into()),
        RequestKind::SyncGroup(req) => r(groups::sync_group(&ctx, req).await.into()),
        RequestKind::Heartbeat(req) => r(groups::heartbeat(&ctx, req).into()),
        RequestKind::LeaveGroup(req) => r(groups::leave_group(&ctx, req).into()),
        RequestKind::OffsetCommit(req) => r(groups::offset_commit(&ctx, req).into()),
        RequestKind::OffsetFetch(req) => r(groups::offset_fetch(&ctx, req).into()),
        RequestKind::ListGroups(req) => r(groups::list_groups(&ctx, req).into()),
        RequestKind::DescribeGroups(req) => r(groups::describe_groups(&ctx, req).into()),
        RequestKind::DeleteGroups(req) => r(groups::delete_groups(&ctx, req).into()),
        RequestKind::OffsetDelete(req) => r(groups::offset_delete(&ctx, req).into()),
        RequestKind::SaslHandshake(req) => security::sasl_handshake(shared, session, req, version),
        RequestKind::SaslAuthenticate(req) => {
            security::sasl_authenticate(shared, session, req).await
        }
        RequestKind::CreateAcls(req) => r(security::create_acls(&ctx, req).await.into()),
        RequestKind::DescribeAcls(req) => r(security::describe_acls(&ctx, req).into()),
        RequestKind::DeleteAcls(req) => r(security::delete_acls(&ctx, req).await.into()),
        RequestKind::DescribeUserScramCredentials(req) => {
            r(security::describe_scram(&ctx, req).into())
        }
        RequestKind::AlterUserScramCredentials(req) => {
            r(security::alter_scram(&ctx, req).await.into())
        }
        other => Reply::Close(format!(
            "no handler for {:?}",
            std::mem::discriminant(&other)
        )),
    }
}
