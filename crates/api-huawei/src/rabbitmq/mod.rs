//! DMS for RabbitMQ (seed 002): creating RabbitMQ instances, the access user's password and
//! the broker's plug-ins, with the request bodies and renderers that are RabbitMQ's alone.
//! The instance routes every engine shares (show, list, delete, tasks, tags...) are in
//! `common`. Operations of `huaweicloudsdkrabbitmq` not listed here answer 501
//! `DMS.00501001` naming them (from `sdk_operations.tsv`).

mod instances;
mod plugins;
pub(crate) mod render;

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
    op!(Post "/v2/{project_id}/instances/{instance_id}/password", "reset_password",
        "Reset the access user's password (seed 002 4.2.1)", Some(Rabbitmq), instances::reset_password),
    op!(Get "/v2/{project_id}/instances/{instance_id}/rabbitmq/plugins", "list_plugins",
        "List plug-ins (seed 002 4.2.2)", Some(Rabbitmq), plugins::list),
    op!(Put "/v2/{project_id}/instances/{instance_id}/rabbitmq/plugins", "update_plugins",
        "Enable or disable plug-ins (seed 002 4.2.3)", Some(Rabbitmq), plugins::update),
];
