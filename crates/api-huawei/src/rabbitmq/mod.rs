//! DMS for RabbitMQ (seed 002): the operations of `huaweicloudsdkrabbitmq`. This build has no
//! AMQP broker, so none is implemented yet: every one answers 501 `DMS.00501001` naming it
//! (from `sdk_operations.tsv`), and the shared instance routes (`common`) never see a
//! RabbitMQ instance because none can be created. The AMQP engine's sub-resources (vhosts,
//! exchanges, queues, bindings, users, plug-ins) will live here with their request and
//! response types.

use crate::operation::Operation;

/// Every operation of `huaweicloudsdkrabbitmq` (the latest and 3.1.184).
pub(crate) const SDK_OPERATIONS: &str = include_str!("sdk_operations.tsv");

pub(crate) static OPERATIONS: &[Operation] = &[];
