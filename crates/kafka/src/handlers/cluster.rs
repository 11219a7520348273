//! ApiVersions, Metadata, DescribeCluster and FindCoordinator: what clients learn about the
//! cluster before anything else.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::warn;

use super::{str_bytes, Ctx};
use crate::instance::Topic;
use crate::security::{Operation, ResourceType};

pub(crate) fn api_versions() -> ApiVersionsResponse {
    crate::connection::api_versions_response(0)
}

fn topic_metadata(name: &str, topic: &Topic) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_id(topic.meta.id)
        .with_partitions(
            topic
                .meta
                .leaders
                .iter()
                .enumerate()
                .map(|(i, &leader)| {
                    // One copy per partition: its leader. Reporting replicas that do not
                    // hold data would mislead clients and operators.
                    MetadataResponsePartition::default()
                        .with_partition_index(i as i32)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![BrokerId(leader)])
                        .with_isr_nodes(vec![BrokerId(leader)])
                })
                .collect(),
        )
}

fn error_topic(name: StrBytes, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(name)))
        .with_error_code(code)
}

pub(crate) async fn metadata(ctx: &Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let shared = ctx.shared;
    let brokers = shared
        .brokers
        .iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port)
        })
        .collect();
    // v0 asks for every topic with an empty list; later versions with a null one.
    let requested: Option<Vec<StrBytes>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && ctx.version == 0 => None,
        Some(t) => Some(t.into_iter().filter_map(|t| t.name.map(|n| n.0)).collect()),
    };
    let auto_create =
        shared.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);

    let mut topics = Vec::new();
    match requested {
        None => {
            let all: BTreeMap<_, _> = shared.topics.read().clone();
            for (name, topic) in all {
                if ctx.allowed(Operation::Describe, ResourceType::Topic, &name) {
                    topics.push(topic_metadata(&name, &topic));
                }
            }
        }
        Some(names) => {
            for name in names {
                topics.push(requested_topic(ctx, name, auto_create).await);
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&shared.cluster_id)))
        .with_controller_id(BrokerId(0))
        .with_topics(topics)
}

async fn requested_topic(
    ctx: &Ctx<'_>,
    name: StrBytes,
    auto_create: bool,
) -> MetadataResponseTopic {
    let shared = ctx.shared;
    if !ctx.allowed(Operation::Describe, ResourceType::Topic, &name) {
        return error_topic(name, ResponseError::TopicAuthorizationFailed.code());
    }
    if let Some(topic) = shared.topic(&name) {
        return topic_metadata(&name, &topic);
    }
    if crate::topics::validate_topic_name(&name).is_err() {
        return error_topic(name, ResponseError::InvalidTopicException.code());
    }
    let may_create = ctx.allowed_cluster(Operation::Create)
        || ctx.allowed(Operation::Create, ResourceType::Topic, &name);
    if !auto_create || !may_create {
        return error_topic(name, ResponseError::UnknownTopicOrPartition.code());
    }
    let s = shared.clone();
    let n = name.to_string();
    let partitions = shared.config.default_partitions;
    let created = tokio::task::spawn_blocking(move || {
        s.create_topic(&n, partitions, 1, BTreeMap::new(), false)
    })
    .await;
    match created {
        Ok(Ok(_)) | Ok(Err(crate::TopicError::AlreadyExists(_))) => match shared.topic(&name) {
            Some(topic) => topic_metadata(&name, &topic),
            None => error_topic(name, ResponseError::LeaderNotAvailable.code()),
        },
        Ok(Err(e)) => {
            warn!(topic = %name.as_str(), error = %e, "auto-creating topic failed");
            error_topic(name, e.code())
        }
        Err(e) => {
            warn!(topic = %name.as_str(), error = %e, "auto-create task failed");
            error_topic(name, ResponseError::UnknownServerError.code())
        }
    }
}

pub(crate) fn describe_cluster(
    ctx: &Ctx<'_>,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if !ctx.allowed_cluster(Operation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.shared.cluster_id))
        .with_controller_id(BrokerId(0))
        .with_brokers(
            ctx.shared
                .brokers
                .iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.node_id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                })
                .collect(),
        )
}

/// Group coordinators are spread over the brokers; transactions are not supported.
pub(crate) fn find_coordinator(
    ctx: &Ctx<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if ctx.version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let coordinators: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            let c = Coordinator::default().with_key(key.clone());
            if req.key_type != 0 {
                return c
                    .with_node_id(BrokerId(-1))
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(
                        "transactions are not supported by this broker",
                    )));
            }
            if !ctx.allowed(Operation::Describe, ResourceType::Group, &key) {
                return c
                    .with_node_id(BrokerId(-1))
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let node = ctx.shared.coordinator_for(&key);
            match ctx.shared.broker(node) {
                Some(b) => c
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(str_bytes(&b.host))
                    .with_port(b.port),
                None => c
                    .with_node_id(BrokerId(-1))
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            }
        })
        .collect();
    if ctx.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.into_iter().next().unwrap_or_default();
    let mut resp = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if ctx.version >= 1 {
        resp = resp.with_error_message(c.error_message);
    }
    resp
}
