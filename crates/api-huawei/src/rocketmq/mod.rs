//! DMS for RocketMQ (seed 001): the operations of `huaweicloudsdkrocketmq`. This build has no
//! RocketMQ broker, so none is implemented yet: every one answers 501 `DMS.00501001` naming it
//! (from `sdk_operations.tsv`), and the shared instance routes (`common`) never see a
//! RocketMQ instance because none can be created. The RocketMQ engine's sub-resources
//! (topics and queues, consumer groups, messages, ACL users) will live here with their
//! request and response types.

use crate::operation::Operation;

/// Every operation of `huaweicloudsdkrocketmq`.
pub(crate) const SDK_OPERATIONS: &str = include_str!("sdk_operations.tsv");

pub(crate) static OPERATIONS: &[Operation] = &[];
