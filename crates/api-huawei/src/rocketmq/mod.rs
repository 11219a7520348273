//! DMS for RocketMQ (seed 001, engine `reliability`): creating instances, their brokers,
//! topics, consumer groups, messages and ACL users, with the request bodies and renderers
//! that are RocketMQ's alone. Every answer about topics, groups, messages and users comes
//! from the running brokers. The instance routes every engine shares (show, list, delete,
//! tags, tasks...) are in `common`. Operations of `huaweicloudsdkrocketmq` not listed here
//! answer 501 `DMS.00501001` naming them (from `sdk_operations.tsv`).
//!
//! The SDK reaches most operations by two paths, `/v2/{engine}/{project_id}/instances/...`
//! (seed 001's) and `/v2/{project_id}/rocketmq/instances/...` (its `*_for_rocket_mq`
//! twins); both are served by the same handler.

mod groups;
mod instances;
mod messages;
mod migration;
pub(crate) mod render;
mod topics;
mod users;

use control::model::EngineKind::Rocketmq;
use serde_json::Value;

use crate::call::Call;
use crate::error::ApiError;
use crate::operation::{op, Operation};

/// Every operation of `huaweicloudsdkrocketmq`.
pub(crate) const SDK_OPERATIONS: &str = include_str!("sdk_operations.tsv");

/// One page of a list (`offset` from 0, `limit` 1-50, default 10): the items, the total,
/// and the next and previous page's offsets (-1 when there is none, as seed 001 shows).
pub(crate) fn page(
    call: &Call,
    items: Vec<Value>,
) -> Result<(Vec<Value>, usize, i64, i64), ApiError> {
    let offset = call.query_usize("offset")?.unwrap_or(0);
    let limit = call.query_usize("limit")?.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be within 1-50"));
    }
    let total = items.len();
    let next = if offset + limit < total {
        (offset + limit) as i64
    } else {
        -1
    };
    let previous = if offset > 0 {
        offset.saturating_sub(limit) as i64
    } else {
        -1
    };
    let items = items.into_iter().skip(offset).take(limit).collect();
    Ok((items, total, next, previous))
}

pub(crate) static OPERATIONS: &[Operation] = &[
    // ---- instances (5.1) -------------------------------------------------------------------
    op!(Post "/v2/{engine}/{project_id}/instances", "create_instance_by_engine",
        "Create a RocketMQ instance", Some(Rocketmq), instances::create),
    op!(Post "/v2/{project_id}/instances", "create_post_paid_instance",
        "Create a RocketMQ instance (seed 001 5.1.1)", Some(Rocketmq), instances::create),
    op!(Post "/v2/{project_id}/rocketmq/instances", "create_post_paid_instance_for_rocket_mq",
        "Create a RocketMQ instance", Some(Rocketmq), instances::create),
    op!(Get "/v2/{project_id}/instances/{instance_id}/brokers", "list_brokers",
        "List brokers (seed 001 5.1.7)", Some(Rocketmq), instances::list_brokers),
    op!(Get "/v2/{project_id}/{engine}/instances/{instance_id}/nodes", "show_instance_nodes",
        "List broker nodes", Some(Rocketmq), instances::list_nodes),
    op!(Post "/v2/{project_id}/{engine}/instances/{instance_id}/restart", "restart_instance",
        "Restart an instance's brokers", Some(Rocketmq), instances::restart),
    op!(Get "/v2/{engine}/{project_id}/instances/{instance_id}/extend", "show_engine_instance_extend_product_info",
        "Products an instance can change to", Some(Rocketmq), instances::extend_products),
    op!(Get "/v2/{project_id}/rocketmq/instances/{instance_id}/extend", "show_engine_instance_extend_product_info_for_rocket_mq",
        "Products an instance can change to", Some(Rocketmq), instances::extend_products),
    op!(Post "/v2/{project_id}/rocketmq/instances/{instance_id}/extend", "resize_instance_for_rocket_mq",
        "Extend an instance's storage", Some(Rocketmq), crate::common::instances::resize),
    op!(Get "/v2/{project_id}/rocketmq/instances/{instance_id}/configs", "show_rocket_mq_configs",
        "The brokers' live configuration", Some(Rocketmq), instances::show_configs),
    op!(Put "/v2/{project_id}/rocketmq/instances/{instance_id}/configs", "update_rocket_mq_configs",
        "Change the brokers' live configuration", Some(Rocketmq), instances::update_configs),
    // ---- topics (5.3) ----------------------------------------------------------------------
    op!(Get "/v2/{project_id}/instances/{instance_id}/topics", "list_rocket_instance_topics",
        "List topics", Some(Rocketmq), topics::list),
    op!(Post "/v2/{project_id}/instances/{instance_id}/topics", "create_topic_or_batch_delete_topic",
        "Create a topic or delete topics (seed 001 5.3.1)", Some(Rocketmq), topics::create_or_delete),
    op!(Delete "/v2/{project_id}/instances/{instance_id}/topics/{topic}", "delete_topic",
        "Delete a topic (seed 001 5.3.2)", Some(Rocketmq), topics::delete),
    op!(Get "/v2/{project_id}/instances/{instance_id}/topics/{topic}", "show_one_topic",
        "Show a topic (seed 001 5.3.3)", Some(Rocketmq), topics::show),
    op!(Put "/v2/{project_id}/instances/{instance_id}/topics/{topic}", "update_topic",
        "Change a topic (seed 001 5.3.4)", Some(Rocketmq), topics::update),
    op!(Get "/v2/{project_id}/instances/{instance_id}/topics/{topic}/groups", "list_consumer_group_of_topic",
        "Groups consuming a topic (seed 001 5.3.5)", Some(Rocketmq), topics::groups),
    op!(Get "/v2/{project_id}/instances/{instance_id}/topics/{topic}/status", "show_topic_status",
        "Offsets of a topic's queues (seed 001 5.3.6)", Some(Rocketmq), topics::status),
    op!(Get "/v2/{project_id}/instances/{instance_id}/topics/{topic}/accesspolicy", "list_topic_access_policy",
        "Users with permissions on a topic (seed 001 5.5.6)", Some(Rocketmq), topics::access_policy),
    // ---- consumer groups (5.2) -------------------------------------------------------------
    op!(Get "/v2/{project_id}/instances/{instance_id}/groups", "list_instance_consumer_groups",
        "List consumer groups (seed 001 5.2.1)", Some(Rocketmq), groups::list),
    op!(Post "/v2/{project_id}/instances/{instance_id}/groups", "create_consumer_group_or_batch_delete_consumer_group",
        "Create a consumer group or delete groups (seed 001 5.2.2)", Some(Rocketmq), groups::create_or_delete),
    op!(Put "/v2/{project_id}/instances/{instance_id}/groups", "batch_update_consumer_group",
        "Change consumer groups (seed 001 5.2.3)", Some(Rocketmq), groups::batch_update),
    op!(Delete "/v2/{project_id}/instances/{instance_id}/groups/{group}", "delete_consumer_group",
        "Delete a consumer group (seed 001 5.2.4)", Some(Rocketmq), groups::delete),
    op!(Get "/v2/{project_id}/instances/{instance_id}/groups/{group}", "show_group",
        "Show a consumer group (seed 001 5.2.5)", Some(Rocketmq), groups::show),
    op!(Put "/v2/{project_id}/instances/{instance_id}/groups/{group}", "update_consumer_group",
        "Change a consumer group (seed 001 5.2.6)", Some(Rocketmq), groups::update),
    op!(Get "/v2/{project_id}/instances/{instance_id}/groups/{group}/topics", "show_consumer_list_or_details",
        "Topics of a group, or its lag on one (seed 001 5.2.7)", Some(Rocketmq), groups::topics),
    op!(Get "/v2/rocketmq/{project_id}/instances/{instance_id}/groups/{group}/clients", "show_consumer_connections",
        "Online clients of a group", Some(Rocketmq), groups::clients),
    op!(Get "/v2/{project_id}/rocketmq/instances/{instance_id}/groups/{group}/clients", "show_consumer_connections_for_rocket_mq",
        "Online clients of a group", Some(Rocketmq), groups::clients),
    op!(Post "/v2/{engine}/{project_id}/instances/{instance_id}/groups/{group}/reset-message-offset", "reset_consume_offset",
        "Reset a group's offsets to a time (seed 001 5.2.8)", Some(Rocketmq), groups::reset_offset),
    op!(Post "/v2/{project_id}/rocketmq/instances/{instance_id}/groups/{group}/reset-message-offset", "reset_consume_offset_for_rocket_mq",
        "Reset a group's offsets to a time", Some(Rocketmq), groups::reset_offset),
    op!(Get "/v2/{engine}/{project_id}/instances/{instance_id}/groups/{group}/accesspolicy", "list_consume_group_access_policy",
        "Users with permissions on a group (seed 001 5.5.7)", Some(Rocketmq), groups::access_policy),
    op!(Get "/v2/{project_id}/rocketmq/instances/{instance_id}/groups/{group}/accesspolicy", "list_consume_group_access_policy_for_rocket_mq",
        "Users with permissions on a group", Some(Rocketmq), groups::access_policy),
    // ---- messages (5.4) --------------------------------------------------------------------
    op!(Get "/v2/{engine}/{project_id}/instances/{instance_id}/messages", "list_messages",
        "Query messages (seed 001 5.4.1)", Some(Rocketmq), messages::list),
    op!(Get "/v2/{project_id}/rocketmq/instances/{instance_id}/messages", "list_messages_for_rocket_mq",
        "Query messages", Some(Rocketmq), messages::list),
    op!(Post "/v2/{engine}/{project_id}/instances/{instance_id}/messages", "send_message",
        "Send a message", Some(Rocketmq), messages::send),
    op!(Post "/v2/{project_id}/rocketmq/instances/{instance_id}/messages", "send_message_for_rocket_mq",
        "Send a message", Some(Rocketmq), messages::send),
    op!(Get "/v2/{engine}/{project_id}/instances/{instance_id}/trace", "list_message_trace",
        "A message's trace (seed 001 5.4.2)", Some(Rocketmq), messages::trace),
    op!(Get "/v2/{project_id}/rocketmq/instances/{instance_id}/trace", "list_message_trace_for_rocket_mq",
        "A message's trace", Some(Rocketmq), messages::trace),
    op!(Post "/v2/{project_id}/instances/{instance_id}/messages/export", "export_dlq_message",
        "Export dead letters (seed 001 5.4.3)", Some(Rocketmq), messages::export_dead_letters),
    op!(Post "/v2/{engine}/{project_id}/instances/{instance_id}/messages/deadletter-resend", "send_dlq_message",
        "Resend dead letters (seed 001 5.4.4)", Some(Rocketmq), messages::resend_dead_letters),
    op!(Post "/v2/{project_id}/rocketmq/instances/{instance_id}/messages/deadletter-resend", "send_dlq_message_for_rocket_mq",
        "Resend dead letters", Some(Rocketmq), messages::resend_dead_letters),
    op!(Post "/v2/{engine}/{project_id}/instances/{instance_id}/messages/resend", "validate_consumed_message",
        "Verify consumption (seed 001 5.4.5)", Some(Rocketmq), messages::verify),
    op!(Post "/v2/{project_id}/rocketmq/instances/{instance_id}/messages/resend", "validate_consumed_message_for_rocket_mq",
        "Verify consumption", Some(Rocketmq), messages::verify),
    // ---- ACL users (5.5) -------------------------------------------------------------------
    op!(Post "/v2/{project_id}/instances/{instance_id}/users", "create_user",
        "Create an ACL user (seed 001 5.5.1)", Some(Rocketmq), users::create),
    op!(Get "/v2/{project_id}/instances/{instance_id}/users", "list_user",
        "List ACL users (seed 001 5.5.2)", Some(Rocketmq), users::list),
    op!(Put "/v2/{project_id}/instances/{instance_id}/users/{user_name}", "update_user",
        "Change an ACL user (seed 001 5.5.3)", Some(Rocketmq), users::update),
    op!(Get "/v2/{project_id}/instances/{instance_id}/users/{user_name}", "show_user",
        "Show an ACL user (seed 001 5.5.4)", Some(Rocketmq), users::show),
    op!(Delete "/v2/{project_id}/instances/{instance_id}/users/{user_name}", "delete_user",
        "Delete an ACL user (seed 001 5.5.5)", Some(Rocketmq), users::delete),
    // ---- metadata migration (5.6) ----------------------------------------------------------
    op!(Post "/v2/{project_id}/instances/{instance_id}/metadata", "create_rocket_mq_migration_task",
        "Create a metadata migration task (seed 001 5.6.1)", Some(Rocketmq), migration::create),
    op!(Get "/v2/{project_id}/instances/{instance_id}/metadata", "list_rocket_mq_migration_task",
        "List metadata migration tasks (seed 001 5.6.2)", Some(Rocketmq), migration::list),
    op!(Delete "/v2/{project_id}/instances/{instance_id}/metadata", "delete_rocket_mq_migration_task",
        "Delete metadata migration tasks (seed 001 5.6.3)", Some(Rocketmq), migration::delete),
    op!(Post "/v2/{project_id}/instances/{instance_id}/metadata/batch-delete", "batch_delete_rocket_mq_migration_task",
        "Delete metadata migration tasks", Some(Rocketmq), migration::batch_delete),
];
