//! DMS for Kafka: creating Kafka instances (seed 000, seed 003 and the SDK's paths) and their
//! topics, with the request bodies and renderers that are Kafka's alone. The instance routes
//! every engine shares are in `common`.

mod instances;
pub(crate) mod render;
mod topics;

use control::model::EngineKind::Kafka;

use crate::operation::{op, Operation};

/// Every operation of `huaweicloudsdkkafka` 3.1.219 and 3.1.184.
pub(crate) const SDK_OPERATIONS: &str = include_str!("sdk_operations.tsv");

pub(crate) static OPERATIONS: &[Operation] = &[
    // ---- create ------------------------------------------------------------------------
    op!(Post "/v1.0/{project_id}/instances", "create_instance_v1",
        "Create an instance (seed 000 5.1)", Some(Kafka), instances::create_by_bandwidth),
    op!(Post "/v2/{project_id}/instances", "create_post_paid_instance",
        "Create a pay-per-use instance (seed 003)", Some(Kafka), instances::create_by_bandwidth),
    op!(Post "/v2/{engine}/{project_id}/instances", "create_instance_by_engine",
        "Create an instance", Some(Kafka), instances::create_by_flavor),
    op!(Post "/v2/{project_id}/kafka/instances", "create_post_paid_kafka_instance",
        "Create a Kafka instance", Some(Kafka), instances::create_by_flavor),
    // ---- topics ------------------------------------------------------------------------
    op!(Post "/v1.0/{project_id}/instances/{instance_id}/topics", "create_topic_v1",
        "Create a topic (seed 000 5.7)", Some(Kafka), topics::create),
    op!(Get "/v1.0/{project_id}/instances/{instance_id}/topics", "list_topics_v1",
        "Query topics (seed 000 5.8)", Some(Kafka), topics::list),
    op!(Post "/v1.0/{project_id}/instances/{instance_id}/topics/delete", "batch_delete_topics_v1",
        "Delete topics in batches (seed 000 5.9)", Some(Kafka), topics::delete),
    op!(Get "/v2/{project_id}/instances/{instance_id}/topics", "list_instance_topics",
        "List topics", Some(Kafka), topics::list),
    op!(Post "/v2/{project_id}/instances/{instance_id}/topics", "create_instance_topic",
        "Create a topic", Some(Kafka), topics::create),
    op!(Put "/v2/{project_id}/instances/{instance_id}/topics", "update_instance_topic",
        "Modify topics", Some(Kafka), topics::update),
    op!(Post "/v2/{project_id}/instances/{instance_id}/topics/delete", "batch_delete_instance_topic",
        "Delete topics in batches", Some(Kafka), topics::delete),
];
