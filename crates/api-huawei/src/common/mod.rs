//! The instance routes every engine shares: instances (list, show, update, delete, batch
//! actions, extension), background tasks, tags, quotas, and where instances can live
//! (zones, products, maintenance windows). A path of this module serves every engine; one
//! that names an engine (`/v2/{project_id}/kafka/tags`) serves that engine's instances.

mod catalog;
pub(crate) mod instances;
pub(crate) mod render;
mod tags;
mod tasks;

use control::model::EngineKind::{Kafka, Rabbitmq, Rocketmq};

use crate::operation::{op, Operation};

pub(crate) static OPERATIONS: &[Operation] = &[
    // ---- where instances can live ------------------------------------------------------
    op!(Get "/v1.0/availableZones", "list_available_zones_v1",
        "Query AZ information (seed 000 6.1)", None, catalog::list_zones),
    op!(Get "/v2/available-zones", "list_available_zones",
        "Query AZ information", None, catalog::list_zones),
    op!(Get "/v1.0/products", "list_products_v1",
        "Query product specifications (seed 000 6.2)", None, catalog::list_products),
    op!(Get "/v2/{engine}/products", "list_engine_products",
        "Query product specifications", None, catalog::list_products),
    op!(Get "/v1.0/instances/maintain-windows", "show_maintain_windows_v1",
        "Query maintenance windows (seed 000 6.3)", None, catalog::maintain_windows),
    op!(Get "/v2/instances/maintain-windows", "show_maintain_windows",
        "Query maintenance windows", None, catalog::maintain_windows),
    op!(Get "/v2/{project_id}/quotas", "show_quotas",
        "Query quotas", None, catalog::quotas),
    // ---- instances ---------------------------------------------------------------------
    op!(Get "/v1.0/{project_id}/instances", "list_instances_v1",
        "Query all instances (seed 000 5.6)", None, instances::list),
    op!(Get "/v2/{project_id}/instances", "list_instances",
        "List instances", None, instances::list),
    op!(Post "/v1.0/{project_id}/instances/action", "batch_restart_or_delete_instances_v1",
        "Restart or delete instances in batches (seed 000 5.5)", None, instances::batch_action),
    op!(Post "/v2/{project_id}/instances/action", "batch_restart_or_delete_instances",
        "Restart or delete instances in batches", None, instances::batch_action),
    op!(Get "/v1.0/{project_id}/instances/{instance_id}", "show_instance_v1",
        "Query an instance (seed 000 5.2)", None, instances::show),
    op!(Get "/v2/{project_id}/instances/{instance_id}", "show_instance",
        "Query an instance", None, instances::show),
    op!(Put "/v1.0/{project_id}/instances/{instance_id}", "update_instance_v1",
        "Modify an instance (seed 000 5.3)", None, instances::update),
    op!(Put "/v2/{project_id}/instances/{instance_id}", "update_instance",
        "Modify an instance", None, instances::update),
    op!(Delete "/v1.0/{project_id}/instances/{instance_id}", "delete_instance_v1",
        "Delete an instance (seed 000 5.4)", None, instances::delete),
    op!(Delete "/v2/{project_id}/instances/{instance_id}", "delete_instance",
        "Delete an instance", None, instances::delete),
    op!(Post "/v1.0/{project_id}/instances/{instance_id}/extend", "resize_instance_v1",
        "Modify instance specifications (seed 000 Table 7-1)", None, instances::resize),
    op!(Post "/v2/{project_id}/instances/{instance_id}/extend", "resize_instance",
        "Extend an instance (SDK 3.1.184)", None, instances::resize),
    op!(Post "/v2/{engine}/{project_id}/instances/{instance_id}/extend", "resize_engine_instance",
        "Extend an instance", None, instances::resize),
    op!(Post "/v2/{project_id}/kafka/instances/{instance_id}/extend", "resize_kafka_instance",
        "Extend a Kafka instance", Some(Kafka), instances::resize),
    // ---- background tasks --------------------------------------------------------------
    op!(Get "/v2/{project_id}/instances/{instance_id}/tasks", "list_background_tasks",
        "List background tasks", None, tasks::list),
    op!(Get "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}", "show_background_task",
        "Query a background task", None, tasks::show),
    op!(Delete "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}", "delete_background_task",
        "Delete a background task", None, tasks::delete),
    // ---- tags, under each engine's path ------------------------------------------------
    op!(Get "/v2/{project_id}/kafka/tags", "show_kafka_project_tags",
        "Query the tags of a project's Kafka instances", Some(Kafka), tags::project_tags),
    op!(Get "/v2/{project_id}/kafka/{instance_id}/tags", "show_kafka_tags",
        "Query a Kafka instance's tags", Some(Kafka), tags::instance_tags),
    op!(Post "/v2/{project_id}/kafka/{instance_id}/tags/action", "batch_create_or_delete_kafka_tag",
        "Add or delete a Kafka instance's tags", Some(Kafka), tags::change_tags),
    op!(Get "/v2/{project_id}/rabbitmq/tags", "show_rabbit_mq_project_tags",
        "Query the tags of a project's RabbitMQ instances", Some(Rabbitmq), tags::project_tags),
    op!(Get "/v2/{project_id}/rabbitmq/{instance_id}/tags", "show_rabbit_mq_tags",
        "Query a RabbitMQ instance's tags", Some(Rabbitmq), tags::instance_tags),
    op!(Post "/v2/{project_id}/rabbitmq/{instance_id}/tags/action", "batch_create_or_delete_rabbit_mq_tag",
        "Add or delete a RabbitMQ instance's tags", Some(Rabbitmq), tags::change_tags),
    op!(Get "/v2/{project_id}/rocketmq/tags", "show_rocketmq_project_tags",
        "Query the tags of a project's RocketMQ instances", Some(Rocketmq), tags::project_tags),
    op!(Get "/v2/{project_id}/rocketmq/{instance_id}/tags", "show_rocketmq_tags",
        "Query a RocketMQ instance's tags", Some(Rocketmq), tags::instance_tags),
    op!(Post "/v2/{project_id}/rocketmq/{instance_id}/tags/action", "batch_create_or_delete_rocketmq_tag",
        "Add or delete a RocketMQ instance's tags", Some(Rocketmq), tags::change_tags),
];

/// Checks that the instance a path names belongs to the engine the path names: each
/// engine's API sees only its own instances.
async fn check_engine(
    state: &crate::ApiState,
    call: &crate::call::Call,
) -> Result<(), crate::error::ApiError> {
    let Some(want) = call.engine else {
        return Ok(());
    };
    let have = state
        .plane
        .instance_engine(call.project()?, call.instance_id())
        .await?;
    if have == want {
        Ok(())
    } else {
        Err(control::ControlError::InstanceNotFound(call.instance_id().to_string()).into())
    }
}
