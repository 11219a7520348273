//! DMS for RabbitMQ (seed 002): creating RabbitMQ instances, the access user's password and
//! the broker's plug-ins, with the request bodies and renderers that are RabbitMQ's alone.
//! The instance routes every engine shares (show, list, delete, tasks, tags...) are in
//! `common`. Operations of `huaweicloudsdkrabbitmq` not listed here answer 501
//! `DMS.00501001` naming them (from `sdk_operations.tsv`).

mod instances;
mod plugins;
pub(crate) mod render;
mod resources;

use control::model::EngineKind::Rabbitmq;

use crate::operation::{op, Operation};

/// Every operation of `huaweicloudsdkrabbitmq` (the latest and 3.1.184).
pub(crate) const SDK_OPERATIONS: &str = include_str!("sdk_operations.tsv");

pub(crate) static OPERATIONS: &[Operation] = &[
    op!(Post "/v2/{engine}/{project_id}/instances", "create_post_paid_instance_by_engine",
        "Create a RabbitMQ instance (seed 002 4.1.1)", Some(Rabbitmq), instances::create),
    // huaweicloudsdkrabbitmq 3.1.184 and Huawei's Terraform provider create through the
    // engine-less path with the same body.
    op!(Post "/v2/{project_id}/instances", "create_post_paid_instance",
        "Create a RabbitMQ instance (huaweicloudsdkrabbitmq 3.1.184)", Some(Rabbitmq), instances::create),
    op!(Get "/v2/{engine}/{project_id}/instances/{instance_id}/extend", "show_engine_instance_extend_product_info",
        "Products an instance can change to (seed 002 4.3.1)", Some(Rabbitmq), instances::extend_products),
    // SDK 3.1.184's engine-less `show_instance_extend_product_info` answers the old product
    // family's shape (hourly/monthly), which OpenDMS does not serve: it stays "not supported".
    op!(Get "/v2/products", "list_products",
        "Old-flavor products (huaweicloudsdkrabbitmq list_products)", Some(Rabbitmq), instances::list_old_products),
    op!(Post "/v1.0/{project_id}/instances", "create_instance_v1",
        "Create a RabbitMQ instance of an old-flavor product (seed 002 6.1.1.1)", Some(Rabbitmq), instances::create_v1),
    op!(Post "/v2/{project_id}/instances/{instance_id}/password", "reset_password",
        "Reset the access user's password (seed 002 4.2.1)", Some(Rabbitmq), instances::reset_password),
    op!(Get "/v2/{project_id}/instances/{instance_id}/rabbitmq/plugins", "list_plugins",
        "List plug-ins (seed 002 4.2.2)", Some(Rabbitmq), plugins::list),
    op!(Put "/v2/{project_id}/instances/{instance_id}/rabbitmq/plugins", "update_plugins",
        "Enable or disable plug-ins (seed 002 4.2.3)", Some(Rabbitmq), plugins::update),
    // ---- what the broker holds (huaweicloudsdkrabbitmq beyond seed 002) -----------------
    op!(Get "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts", "list_vhosts",
        "List vhosts", Some(Rabbitmq), resources::list_vhosts),
    op!(Put "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts", "create_vhost",
        "Create a vhost", Some(Rabbitmq), resources::create_vhost),
    op!(Post "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts", "batch_delete_vhosts",
        "Delete vhosts", Some(Rabbitmq), resources::delete_vhosts),
    op!(Get "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/exchanges", "list_exchanges",
        "List exchanges", Some(Rabbitmq), resources::list_exchanges),
    op!(Put "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/exchanges", "create_exchange",
        "Create an exchange", Some(Rabbitmq), resources::create_exchange),
    op!(Post "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/exchanges", "batch_delete_exchanges",
        "Delete exchanges", Some(Rabbitmq), resources::delete_exchanges),
    op!(Get "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/exchanges/{exchange}/binding", "list_bindings",
        "List an exchange's bindings", Some(Rabbitmq), resources::list_bindings),
    op!(Post "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/exchanges/{exchange}/binding", "create_binding",
        "Bind an exchange to a queue or exchange", Some(Rabbitmq), resources::create_binding),
    op!(Delete "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/exchanges/{exchange}/destination-type/{destination_type}/destination/{destination}/properties-key/{properties_key}/unbinding", "delete_binding",
        "Delete a binding", Some(Rabbitmq), resources::delete_binding),
    op!(Get "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/queues", "list_queues",
        "List queues", Some(Rabbitmq), resources::list_queues),
    op!(Put "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/queues", "create_queue",
        "Create a queue", Some(Rabbitmq), resources::create_queue),
    op!(Post "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/queues", "batch_delete_queues",
        "Delete queues", Some(Rabbitmq), resources::delete_queues),
    op!(Get "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/queues/{queue}", "show_queue_details",
        "Show a queue", Some(Rabbitmq), resources::show_queue),
    op!(Delete "/v2/rabbitmq/{project_id}/instances/{instance_id}/vhosts/{vhost}/queues/{queue}/contents", "delete_queue_info",
        "Purge a queue", Some(Rabbitmq), resources::purge_queue),
    op!(Get "/v2/{project_id}/instances/{instance_id}/users", "list_user",
        "List the broker's users", Some(Rabbitmq), resources::list_users),
    op!(Post "/v2/{project_id}/instances/{instance_id}/users", "create_user",
        "Create a broker user", Some(Rabbitmq), resources::create_user),
    op!(Put "/v2/{project_id}/instances/{instance_id}/users/{user_name}", "update_user",
        "Change a broker user", Some(Rabbitmq), resources::update_user),
    op!(Delete "/v2/{project_id}/instances/{instance_id}/users/{user_name}", "delete_user",
        "Delete a broker user", Some(Rabbitmq), resources::delete_user),
];
