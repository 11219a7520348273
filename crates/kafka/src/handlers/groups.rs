//! Group requests: routing and authorization in front of the group coordinator.
//!
//! Every broker can reach the one in-process coordinator, but each group belongs to the broker
//! FindCoordinator named, and other brokers answer NOT_COORDINATOR as Kafka does, so clients
//! exercise the same paths they take against a real cluster.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::security::{Operation, ResourceType};

/// Error code if this broker may not serve `group` for `op`: not its coordinator, or not
/// allowed by the ACLs.
fn group_check(ctx: &Ctx<'_>, group: &str, op: Operation) -> Option<i16> {
    if ctx.shared.coordinator_for(group) != ctx.broker_id {
        return Some(ResponseError::NotCoordinator.code());
    }
    if !ctx.allowed(op, ResourceType::Group, group) {
        return Some(ResponseError::GroupAuthorizationFailed.code());
    }
    None
}

pub(crate) async fn join_group(
    ctx: &Ctx<'_>,
    req: JoinGroupRequest,
    client_id: &str,
) -> JoinGroupResponse {
    if let Some(code) = group_check(ctx, &req.group_id, Operation::Read) {
        return JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(req.member_id);
    }
    ctx.shared
        .groups
        .join_group(req, ctx.version, client_id, &ctx.host)
        .await
}

pub(crate) async fn sync_group(ctx: &Ctx<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    if let Some(code) = group_check(ctx, &req.group_id, Operation::Read) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    ctx.shared.groups.sync_group(req, ctx.version).await
}

pub(crate) fn heartbeat(ctx: &Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    if let Some(code) = group_check(ctx, &req.group_id, Operation::Read) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    ctx.shared.groups.heartbeat(&req, ctx.version)
}

pub(crate) fn leave_group(ctx: &Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if let Some(code) = group_check(ctx, &req.group_id, Operation::Read) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    ctx.shared.groups.leave_group(&req, ctx.version)
}

pub(crate) fn offset_commit(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    if let Some(code) = group_check(ctx, &req.group_id, Operation::Read) {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetCommitResponse::default().with_topics(topics);
    }
    let shared = ctx.shared;
    let check = |topic: &str, partition: i32| -> Option<i16> {
        if !ctx.allowed(Operation::Read, ResourceType::Topic, topic) {
            return Some(ResponseError::TopicAuthorizationFailed.code());
        }
        match shared.topic(topic) {
            Some(t) if t.partition(partition).is_some() => None,
            _ => Some(ResponseError::UnknownTopicOrPartition.code()),
        }
    };
    shared.groups.commit_offsets(&req, ctx.version, &check)
}

pub(crate) fn offset_fetch(ctx: &Ctx<'_>, mut req: OffsetFetchRequest) -> OffsetFetchResponse {
    let topic_allowed = |t: &str| ctx.allowed(Operation::Describe, ResourceType::Topic, t);
    if ctx.version < 8 {
        if let Some(code) = group_check(ctx, &req.group_id, Operation::Describe) {
            // v1 has no top-level error code; the client then sees no offsets.
            return OffsetFetchResponse::default().with_error_code(code);
        }
        return ctx
            .shared
            .groups
            .fetch_offsets(&req, ctx.version, &topic_allowed);
    }
    let mut refused = Vec::new();
    req.groups.retain(
        |g| match group_check(ctx, &g.group_id, Operation::Describe) {
            Some(code) => {
                refused.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(code),
                );
                false
            }
            None => true,
        },
    );
    let mut resp = if req.groups.is_empty() {
        OffsetFetchResponse::default()
    } else {
        ctx.shared
            .groups
            .fetch_offsets(&req, ctx.version, &topic_allowed)
    };
    resp.groups.extend(refused);
    resp
}

pub(crate) fn list_groups(ctx: &Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut resp = ctx.shared.groups.list_groups(&req, ctx.version);
    let cluster_ok = ctx.allowed_cluster(Operation::Describe);
    resp.groups.retain(|g| {
        ctx.shared.coordinator_for(&g.group_id) == ctx.broker_id
            && (cluster_ok || ctx.allowed(Operation::Describe, ResourceType::Group, &g.group_id))
    });
    resp
}

pub(crate) fn describe_groups(
    ctx: &Ctx<'_>,
    mut req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut refused = Vec::new();
    req.groups
        .retain(|g| match group_check(ctx, g, Operation::Describe) {
            Some(code) => {
                refused.push(
                    DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(code),
                );
                false
            }
            None => true,
        });
    let mut resp = if req.groups.is_empty() {
        DescribeGroupsResponse::default()
    } else {
        ctx.shared.groups.describe_groups(&req, ctx.version)
    };
    resp.groups.extend(refused);
    resp
}

pub(crate) fn delete_groups(ctx: &Ctx<'_>, mut req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut refused = Vec::new();
    req.groups_names
        .retain(|g| match group_check(ctx, g, Operation::Delete) {
            Some(code) => {
                refused.push(
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(code),
                );
                false
            }
            None => true,
        });
    let mut resp = if req.groups_names.is_empty() {
        DeleteGroupsResponse::default()
    } else {
        ctx.shared.groups.delete_groups(&req, ctx.version)
    };
    resp.results.extend(refused);
    resp
}

pub(crate) fn offset_delete(ctx: &Ctx<'_>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if let Some(code) = group_check(ctx, &req.group_id, Operation::Delete) {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    ctx.shared.groups.delete_offsets(&req, ctx.version)
}
