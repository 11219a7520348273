//! Request handlers, one module per area. Handlers return complete responses: every error a
//! client can cause is a Kafka error code in the response, never a panic or a dropped
//! connection.

use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;

use crate::instance::Shared;
use crate::security::{Operation, ResourceType};

pub(crate) mod admin;
pub(crate) mod cluster;
pub(crate) mod fetch;
pub(crate) mod groups;
pub(crate) mod produce;
pub(crate) mod security;

/// What a handler knows about the request beyond its body.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub broker_id: i32,
    pub principal: String,
    pub host: String,
    pub version: i16,
}

impl Ctx<'_> {
    /// ACL check; always true when the instance runs without an authorizer.
    pub fn allowed(&self, op: Operation, resource: ResourceType, name: &str) -> bool {
        !self.shared.config.authorizer
            || self
                .shared
                .acls
                .authorize(&self.principal, &self.host, op, resource, name)
    }

    pub fn allowed_cluster(&self, op: Operation) -> bool {
        self.allowed(op, ResourceType::Cluster, "kafka-cluster")
    }
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
