//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs, DeleteRecords.
//!
//! Topic changes touch the metadata file and partition directories, so they run on the
//! blocking pool.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::warn;

use super::{str_bytes, Ctx};
use crate::instance::Shared;
use crate::security::{Operation, ResourceType};
use crate::topics::{self, TopicError};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// Runs blocking topic work; a panic or cancellation of the task becomes a storage error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TopicError> + Send + 'static,
) -> Result<T, TopicError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(TopicError::Io(std::io::Error::other(e))))
}

fn message(e: &TopicError) -> Option<StrBytes> {
    Some(str_bytes(&e.to_string()))
}

pub(crate) async fn create_topics(ctx: &Ctx<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let validate_only = req.validate_only;
    let may_create_any = ctx.allowed_cluster(Operation::Create);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        if !may_create_any && !ctx.allowed(Operation::Create, ResourceType::Topic, &name) {
            results.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        // Explicit assignments: the first broker of each partition's list leads it.
        let (partitions, replication_factor) = if t.assignments.is_empty() {
            (t.num_partitions, t.replication_factor)
        } else {
            let rf = t
                .assignments
                .first()
                .map(|a| a.broker_ids.len() as i16)
                .unwrap_or(1);
            (t.assignments.len() as i32, rf)
        };
        let shared = ctx.shared.clone();
        let n = name.clone();
        let created = blocking(move || {
            shared.create_topic(&n, partitions, replication_factor, configs, validate_only)
        })
        .await;
        let result = match created {
            Ok(summary) => {
                let topic_id = ctx
                    .shared
                    .topic(&name)
                    .map(|t| t.meta.id)
                    .unwrap_or_default();
                let defaults = topics::effective_configs(
                    &summary.configs,
                    &ctx.shared.config.log,
                    ctx.shared.config.max_message_bytes,
                );
                result
                    .with_topic_id(topic_id)
                    .with_num_partitions(summary.partitions)
                    .with_replication_factor(summary.replication_factor)
                    .with_configs(Some(
                        defaults
                            .into_iter()
                            .map(|(k, v, is_default)| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(&v)))
                                    .with_config_source(if is_default {
                                        SOURCE_DEFAULT
                                    } else {
                                        SOURCE_TOPIC
                                    })
                            })
                            .collect(),
                    ))
            }
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(message(&e))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        };
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub(crate) async fn delete_topics(ctx: &Ctx<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    for t in req.topics {
        wanted.push((t.name.map(|n| n.0.to_string()), t.topic_id));
    }
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = name.or_else(|| {
            ctx.shared
                .topics
                .read()
                .values()
                .find(|t| t.meta.id == id && !id.is_nil())
                .map(|t| t.meta.name.clone())
        });
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        if !ctx.allowed(Operation::Delete, ResourceType::Topic, &name) {
            responses.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let shared = ctx.shared.clone();
        let deleted = blocking(move || shared.delete_topic(&name)).await;
        responses.push(match deleted {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(message(&e)),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(crate) async fn create_partitions(
    ctx: &Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx.allowed(Operation::Alter, ResourceType::Topic, &name) {
            results.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let shared = ctx.shared.clone();
        let validate_only = req.validate_only;
        let count = t.count;
        let done = blocking(move || shared.add_partitions(&name, count, validate_only)).await;
        results.push(match done {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(e.code())
                .with_error_message(message(&e)),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

pub(crate) fn describe_configs(
    ctx: &Ctx<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let shared = ctx.shared;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |k: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|x| x.as_str() == k))
            };
            match r.resource_type {
                RESOURCE_TOPIC => {
                    if !ctx.allowed(
                        Operation::DescribeConfigs,
                        ResourceType::Topic,
                        &r.resource_name,
                    ) {
                        return result
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(topic) = shared.topic(&r.resource_name) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes("unknown topic")));
                    };
                    let configs = topics::effective_configs(
                        &topic.meta.configs,
                        &shared.config.log,
                        shared.config.max_message_bytes,
                    )
                    .into_iter()
                    .filter(|(k, _, _)| wanted(k))
                    .map(|(k, v, is_default)| {
                        let source = if is_default {
                            SOURCE_DEFAULT
                        } else {
                            SOURCE_TOPIC
                        };
                        let mut entry = DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(&v)))
                            .with_config_source(source)
                            .with_is_sensitive(false)
                            .with_read_only(false);
                        if ctx.version == 0 {
                            entry = entry.with_config_source(-1);
                        }
                        if req.include_synonyms {
                            entry = entry.with_synonyms(vec![DescribeConfigsSynonym::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(&v)))
                                .with_source(source)]);
                        }
                        if req.include_documentation {
                            entry = entry.with_documentation(
                                topics::config_key(k).map(|c| str_bytes(c.doc)),
                            );
                        }
                        entry
                    })
                    .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    if !ctx.allowed_cluster(Operation::DescribeConfigs) {
                        return result
                            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
                    }
                    let c = &shared.config;
                    let entries: Vec<(&str, String)> = vec![
                        (
                            "auto.create.topics.enable",
                            c.auto_create_topics.to_string(),
                        ),
                        ("num.partitions", c.default_partitions.to_string()),
                        ("message.max.bytes", c.max_message_bytes.to_string()),
                        ("socket.request.max.bytes", c.max_frame_bytes.to_string()),
                        (
                            "log.retention.ms",
                            c.log.retention_ms.unwrap_or(-1).to_string(),
                        ),
                        ("log.segment.bytes", c.log.segment_bytes.to_string()),
                    ];
                    result.with_configs(
                        entries
                            .into_iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(&v)))
                                    .with_read_only(true)
                                    .with_config_source(if ctx.version == 0 { -1 } else { 4 })
                            })
                            .collect(),
                    )
                }
                _ => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("unsupported resource type"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Common part of AlterConfigs and IncrementalAlterConfigs for one topic resource: check
/// access, compute the new override set from the old one, store it.
async fn alter_topic_configs(
    ctx: &Ctx<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>
        + Send
        + 'static,
) -> (i16, Option<StrBytes>) {
    if resource_type != RESOURCE_TOPIC {
        return (
            ResponseError::InvalidRequest.code(),
            Some(str_bytes(
                "only topic configs can be changed; broker configs are set at start",
            )),
        );
    }
    if !ctx.allowed(Operation::AlterConfigs, ResourceType::Topic, name) {
        return (ResponseError::TopicAuthorizationFailed.code(), None);
    }
    let shared: std::sync::Arc<Shared> = ctx.shared.clone();
    let name = name.to_string();
    let done = blocking(move || {
        let topic = shared
            .topic(&name)
            .ok_or_else(|| TopicError::Unknown(name.clone()))?;
        let new = change(&topic.meta.configs)?;
        shared.set_topic_configs(&name, new, validate_only)
    })
    .await;
    match done {
        Ok(()) => (0, None),
        Err(e) => (e.code(), message(&e)),
    }
}

pub(crate) async fn alter_configs(ctx: &Ctx<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let new: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let (code, msg) = alter_topic_configs(
            ctx,
            r.resource_type,
            &r.resource_name,
            req.validate_only,
            move |_| Ok(new),
        )
        .await;
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(msg),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub(crate) async fn incremental_alter_configs(
    ctx: &Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let ops: Vec<(String, i8, Option<String>)> = r
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let (code, msg) = alter_topic_configs(
            ctx,
            r.resource_type,
            &r.resource_name,
            req.validate_only,
            move |old| {
                let mut new = old.clone();
                for (name, op, value) in ops {
                    match (op, value) {
                        (OP_SET, Some(v)) => {
                            new.insert(name, v);
                        }
                        (OP_DELETE, _) => {
                            new.remove(&name);
                        }
                        // APPEND/SUBTRACT apply to list-valued configs, and none of ours is one.
                        _ => {
                            return Err(TopicError::InvalidConfig(format!(
                                "operation {op} is not valid for {name}"
                            )))
                        }
                    }
                }
                Ok(new)
            },
        )
        .await;
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(msg),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn delete_records(
    ctx: &Ctx<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics_out = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = ctx.shared.topic(&t.name);
        let authorized = ctx.allowed(Operation::Delete, ResourceType::Topic, &t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            if !authorized {
                parts.push(r.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let Some((tp, part)) = topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index).map(|x| (tp, x.clone())))
            else {
                parts.push(r.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            if tp.leader(p.partition_index) != Some(ctx.broker_id) {
                parts.push(r.with_error_code(ResponseError::NotLeaderOrFollower.code()));
                continue;
            }
            let hw = part.high_watermark();
            // -1 means "up to the high watermark"; beyond it is out of range, as in Kafka.
            let offset = if p.offset == -1 { hw } else { p.offset };
            if offset < 0 || offset > hw {
                parts.push(r.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let done =
                tokio::task::spawn_blocking(move || part.delete_records_before(offset)).await;
            parts.push(match done {
                Ok(Ok(low)) => r.with_low_watermark(low),
                Ok(Err(e)) => {
                    warn!(topic = %t.name.as_str(), partition = p.partition_index, error = %e, "delete records failed");
                    r.with_error_code(ResponseError::KafkaStorageError.code())
                }
                Err(_) => r.with_error_code(ResponseError::UnknownServerError.code()),
            });
        }
        topics_out.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics_out)
}
