//! Kafka-style ACL authorizer (StandardAuthorizer semantics, allow.everyone.if.no.acl.found=false).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::{IndexMap, IndexSet};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::{read_json, write_atomic, SecurityError};

/// The only valid name of the CLUSTER resource.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// LITERAL resource name matching every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// Principal matching every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// Host matching every host.
pub const WILDCARD_HOST: &str = "*";

const FORMAT_VERSION: u32 = 1;

// Kafka's wire id for ANY in every filter enum; UNKNOWN (0) maps to no variant and is rejected.
const ID_ANY: i8 = 1;

/// Resource types the broker authorizes (Kafka ids: TOPIC 2, GROUP 3, CLUSTER 4,
/// TRANSACTIONAL_ID 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub fn from_i8(v: i8) -> Option<Self> {
        match v {
            2 => Some(ResourceType::Topic),
            3 => Some(ResourceType::Group),
            4 => Some(ResourceType::Cluster),
            5 => Some(ResourceType::TransactionalId),
            _ => None,
        }
    }

    pub fn to_i8(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }
}

/// ACL operations (Kafka ids: ALL 2 .. IDEMPOTENT_WRITE 12; UNKNOWN 0 and ANY 1 are filter-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    pub fn from_i8(v: i8) -> Option<Self> {
        Some(match v {
            2 => Operation::All,
            3 => Operation::Read,
            4 => Operation::Write,
            5 => Operation::Create,
            6 => Operation::Delete,
            7 => Operation::Alter,
            8 => Operation::Describe,
            9 => Operation::ClusterAction,
            10 => Operation::DescribeConfigs,
            11 => Operation::AlterConfigs,
            12 => Operation::IdempotentWrite,
            _ => return None,
        })
    }

    pub fn to_i8(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
        }
    }

    /// Whether an ALLOW binding for `self` grants `requested` (Kafka's implied operations).
    fn allows(self, requested: Operation) -> bool {
        self == Operation::All
            || self == requested
            || match requested {
                Operation::Describe => matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ),
                Operation::DescribeConfigs => self == Operation::AlterConfigs,
                _ => false,
            }
    }

    /// Whether a DENY binding for `self` blocks `requested`: deny implies nothing but ALL.
    fn denies(self, requested: Operation) -> bool {
        self == Operation::All || self == requested
    }
}

/// Resource pattern types that bindings can have (Kafka ids: LITERAL 3, PREFIXED 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn from_i8(v: i8) -> Option<Self> {
        match v {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }

    pub fn to_i8(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// Permission of a binding (Kafka ids: DENY 2, ALLOW 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    Allow,
    Deny,
}

impl Permission {
    pub fn from_i8(v: i8) -> Option<Self> {
        match v {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }

    pub fn to_i8(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL: resource pattern plus access control entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// "User:name" or "User:*".
    pub principal: String,
    /// Exact host/IP or "*".
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Kafka's create-time validation (AclApis / AclControlManager).
    fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("Invalid empty resource name specified".to_string());
        }
        if self.resource_type == ResourceType::Cluster
            && self.resource_name != CLUSTER_RESOURCE_NAME
        {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Err(format!(
                    "Invalid principal {:?}: expected principalType:principalName",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Err("Invalid empty host".to_string());
        }
        Ok(())
    }

    fn matches_resource(&self, resource: ResourceType, name: &str) -> bool {
        self.resource_type == resource
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD_RESOURCE
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    fn matches_identity(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD_HOST)
    }
}

/// Resource-type part of a filter.
#[derive(Clone, Copy, Debug)]
enum TypeFilter {
    Any,
    Is(ResourceType),
    /// A valid Kafka type we never store bindings for (DELEGATION_TOKEN, USER).
    Unsupported,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternFilter {
    Any,
    Match,
    Is(PatternType),
}

/// Kafka's AclBindingFilter.
#[derive(Debug)]
struct BindingFilter {
    resource_type: TypeFilter,
    name: Option<String>,
    pattern: PatternFilter,
    principal: Option<String>,
    host: Option<String>,
    /// None = ANY; Some(None) = a valid Kafka operation we never store.
    operation: Option<Option<Operation>>,
    permission: Option<Permission>,
}

impl BindingFilter {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        resource_type: i8,
        name: Option<&StrBytes>,
        pattern: i8,
        principal: Option<&StrBytes>,
        host: Option<&StrBytes>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        let resource_type = match resource_type {
            ID_ANY => TypeFilter::Any,
            // DELEGATION_TOKEN, USER.
            6 | 7 => TypeFilter::Unsupported,
            v => TypeFilter::Is(
                ResourceType::from_i8(v).ok_or_else(|| format!("Unknown resource type {v}"))?,
            ),
        };
        let pattern = match pattern {
            ID_ANY => PatternFilter::Any,
            2 => PatternFilter::Match,
            v => PatternFilter::Is(
                PatternType::from_i8(v).ok_or_else(|| format!("Unknown pattern type {v}"))?,
            ),
        };
        let operation = match operation {
            ID_ANY => None,
            // CREATE_TOKENS, DESCRIBE_TOKENS.
            13 | 14 => Some(None),
            v => Some(Some(
                Operation::from_i8(v).ok_or_else(|| format!("Unknown operation {v}"))?,
            )),
        };
        let permission = match permission {
            ID_ANY => None,
            v => {
                Some(Permission::from_i8(v).ok_or_else(|| format!("Unknown permission type {v}"))?)
            }
        };
        Ok(BindingFilter {
            resource_type,
            name: name.map(|s| s.to_string()),
            pattern,
            principal: principal.map(|s| s.to_string()),
            host: host.map(|s| s.to_string()),
            operation,
            permission,
        })
    }

    /// Kafka's ResourcePatternFilter.matches + AccessControlEntryFilter.matches.
    fn matches(&self, b: &AclBinding) -> bool {
        match self.resource_type {
            TypeFilter::Any => {}
            TypeFilter::Is(t) if t == b.resource_type => {}
            _ => return false,
        }
        let pattern_ok = match (self.pattern, &self.name) {
            (PatternFilter::Is(p), _) if p != b.pattern_type => false,
            (_, None) => true,
            (PatternFilter::Any | PatternFilter::Is(_), Some(n)) => *n == b.resource_name,
            (PatternFilter::Match, Some(n)) => match b.pattern_type {
                PatternType::Literal => {
                    *n == b.resource_name || b.resource_name == WILDCARD_RESOURCE
                }
                PatternType::Prefixed => n.starts_with(&b.resource_name),
            },
        };
        pattern_ok
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == Some(b.operation))
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct AclFile {
    version: u32,
    bindings: Vec<AclBinding>,
}

/// ACL bindings with Kafka semantics, persisted as JSON.
pub struct Authorizer {
    path: PathBuf,
    super_users: HashSet<String>,
    /// Insertion-ordered and duplicate-free, like Kafka's ACL set.
    acls: RwLock<IndexSet<AclBinding>>,
    /// Serializes writers so file and memory always move together.
    write_lock: Mutex<()>,
}

impl Authorizer {
    /// Loads bindings from `path` (missing file = no ACLs). `super_users` are principals such as
    /// "User:admin" that bypass all checks.
    pub fn open(path: &Path, super_users: Vec<String>) -> Result<Arc<Self>, SecurityError> {
        let file: AclFile = read_json(path)?.unwrap_or(AclFile {
            version: FORMAT_VERSION,
            bindings: Vec::new(),
        });
        if file.version != FORMAT_VERSION {
            return Err(SecurityError::Corrupt(format!(
                "{}: unsupported acl file version {}",
                path.display(),
                file.version
            )));
        }
        let mut acls = IndexSet::with_capacity(file.bindings.len());
        for b in file.bindings {
            b.validate()
                .map_err(|e| SecurityError::Corrupt(format!("{}: {e}", path.display())))?;
            acls.insert(b);
        }
        tracing::info!(
            path = %path.display(),
            acls = acls.len(),
            super_users = super_users.len(),
            "acl authorizer opened"
        );
        Ok(Arc::new(Authorizer {
            path: path.to_path_buf(),
            super_users: super_users.into_iter().collect(),
            acls: RwLock::new(acls),
            write_lock: Mutex::new(()),
        }))
    }

    /// Kafka's decision: super users pass; any matching DENY wins; otherwise a matching ALLOW
    /// (with implied operations) is required. No matching ACL means denied.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        resource: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let acls = self.acls.read();
        let mut allowed = false;
        for b in acls
            .iter()
            .filter(|b| b.matches_resource(resource, name) && b.matches_identity(principal, host))
        {
            match b.permission {
                Permission::Deny if b.operation.denies(op) => {
                    tracing::debug!(
                        principal,
                        host,
                        operation = ?op,
                        resource_type = ?resource,
                        resource = name,
                        "access denied by deny acl"
                    );
                    return false;
                }
                Permission::Allow if b.operation.allows(op) => allowed = true,
                _ => {}
            }
        }
        // Since Kafka 2.8, WRITE on any topic implies IDEMPOTENT_WRITE on the cluster, so
        // idempotent producers need no extra cluster ACL (a cluster DENY already returned).
        if !allowed && op == Operation::IdempotentWrite && resource == ResourceType::Cluster {
            allowed = acls.iter().any(|b| {
                b.resource_type == ResourceType::Topic
                    && b.permission == Permission::Allow
                    && matches!(b.operation, Operation::Write | Operation::All)
                    && b.matches_identity(principal, host)
            });
        }
        if !allowed {
            tracing::debug!(
                principal,
                host,
                operation = ?op,
                resource_type = ?resource,
                resource = name,
                "access denied: no matching allow acl"
            );
        }
        allowed
    }

    /// CreateAcls: validates each creation; valid ones are added (idempotently) and persisted
    /// together. Results are in request order.
    pub fn create_acls(&self, req: &CreateAclsRequest, _version: i16) -> CreateAclsResponse {
        let parsed: Vec<Result<AclBinding, String>> =
            req.creations.iter().map(binding_from_creation).collect();

        let _guard = self.write_lock.lock();
        let mut next = self.acls.read().clone();
        let mut added = 0usize;
        for b in parsed.iter().flatten() {
            if next.insert(b.clone()) {
                added += 1;
            }
        }
        let persisted = if added > 0 {
            self.persist(&next).map(|()| *self.acls.write() = next)
        } else {
            Ok(())
        };
        drop(_guard);

        let persist_error = persisted.err().map(|e| {
            tracing::error!(error = %e, "failed to persist acls");
            e.to_string()
        });
        if persist_error.is_none() && added > 0 {
            tracing::info!(added, "acls created");
        }
        let results = parsed
            .into_iter()
            .map(|r| match (r, &persist_error) {
                (Ok(_), None) => AclCreationResult::default(),
                (Ok(_), Some(msg)) => error_result(ResponseError::UnknownServerError, msg.clone()),
                (Err(msg), _) => error_result(ResponseError::InvalidRequest, msg),
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    }

    /// DescribeAcls: bindings matching the filter (ANY/MATCH/LITERAL/PREFIXED as Kafka),
    /// grouped by resource pattern.
    pub fn describe_acls(&self, req: &DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
        let filter = match BindingFilter::parse(
            req.resource_type_filter,
            req.resource_name_filter.as_ref(),
            req.pattern_type_filter,
            req.principal_filter.as_ref(),
            req.host_filter.as_ref(),
            req.operation,
            req.permission_type,
        ) {
            Ok(f) => f,
            Err(msg) => {
                return DescribeAclsResponse::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_string(msg)))
            }
        };
        let acls = self.acls.read();
        let mut grouped: IndexMap<(ResourceType, &str, PatternType), Vec<AclDescription>> =
            IndexMap::new();
        for b in acls.iter().filter(|b| filter.matches(b)) {
            grouped
                .entry((b.resource_type, b.resource_name.as_str(), b.pattern_type))
                .or_default()
                .push(
                    AclDescription::default()
                        .with_principal(StrBytes::from_string(b.principal.clone()))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_operation(b.operation.to_i8())
                        .with_permission_type(b.permission.to_i8()),
                );
        }
        let resources = grouped
            .into_iter()
            .map(|((rt, name, pt), descriptions)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt.to_i8())
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_pattern_type(pt.to_i8())
                    .with_acls(descriptions)
            })
            .collect();
        DescribeAclsResponse::default().with_resources(resources)
    }

    /// DeleteAcls: each binding is removed by (and reported under) the first filter matching
    /// it. All removals are persisted with one write.
    pub fn delete_acls(&self, req: &DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
        let _guard = self.write_lock.lock();
        let mut next = self.acls.read().clone();
        let mut per_filter: Vec<Result<Vec<AclBinding>, String>> = Vec::new();
        for f in &req.filters {
            let parsed = BindingFilter::parse(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            );
            per_filter.push(parsed.map(|filter| {
                let removed: Vec<AclBinding> =
                    next.iter().filter(|b| filter.matches(b)).cloned().collect();
                next.retain(|b| !filter.matches(b));
                removed
            }));
        }
        let removed_total: usize = per_filter
            .iter()
            .map(|r| r.as_ref().map_or(0, |v| v.len()))
            .sum();
        let persisted = if removed_total > 0 {
            self.persist(&next).map(|()| *self.acls.write() = next)
        } else {
            Ok(())
        };
        drop(_guard);

        let persist_error = persisted.err().map(|e| {
            tracing::error!(error = %e, "failed to persist acls");
            e.to_string()
        });
        if persist_error.is_none() && removed_total > 0 {
            tracing::info!(removed = removed_total, "acls deleted");
        }
        let filter_results = per_filter
            .into_iter()
            .map(|r| match (r, &persist_error) {
                (Ok(removed), None) => DeleteAclsFilterResult::default()
                    .with_matching_acls(removed.iter().map(matching_acl).collect()),
                (Ok(removed), Some(msg)) if !removed.is_empty() => {
                    DeleteAclsFilterResult::default()
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_error_message(Some(StrBytes::from_string(msg.clone())))
                }
                (Ok(_), Some(_)) => DeleteAclsFilterResult::default(),
                (Err(msg), _) => DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_string(msg))),
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(filter_results)
    }

    /// All bindings, in creation order.
    pub fn bindings(&self) -> Vec<AclBinding> {
        self.acls.read().iter().cloned().collect()
    }

    /// Adds one binding (no-op if present).
    pub fn add_binding(&self, b: AclBinding) -> Result<(), SecurityError> {
        b.validate().map_err(SecurityError::InvalidRequest)?;
        let _guard = self.write_lock.lock();
        let mut next = self.acls.read().clone();
        if next.insert(b) {
            self.persist(&next)?;
            *self.acls.write() = next;
            tracing::info!(added = 1, "acls created");
        }
        Ok(())
    }

    /// Removes the binding equal to `filter`; returns how many were removed (0 or 1).
    pub fn remove_matching(&self, filter: &AclBinding) -> Result<usize, SecurityError> {
        let _guard = self.write_lock.lock();
        let mut next = self.acls.read().clone();
        if !next.shift_remove(filter) {
            return Ok(0);
        }
        self.persist(&next)?;
        *self.acls.write() = next;
        tracing::info!(removed = 1, "acls deleted");
        Ok(1)
    }

    fn persist(&self, acls: &IndexSet<AclBinding>) -> Result<(), SecurityError> {
        let file = AclFile {
            version: FORMAT_VERSION,
            bindings: acls.iter().cloned().collect(),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| SecurityError::Corrupt(format!("cannot serialize acls: {e}")))?;
        write_atomic(&self.path, &json)
    }
}

fn binding_from_creation(c: &AclCreation) -> Result<AclBinding, String> {
    let resource_type = ResourceType::from_i8(c.resource_type)
        .ok_or_else(|| format!("Invalid or unsupported resource type {}", c.resource_type))?;
    let pattern_type = PatternType::from_i8(c.resource_pattern_type)
        .ok_or_else(|| format!("Invalid pattern type {}", c.resource_pattern_type))?;
    let operation = Operation::from_i8(c.operation)
        .ok_or_else(|| format!("Invalid or unsupported operation {}", c.operation))?;
    let permission = Permission::from_i8(c.permission_type)
        .ok_or_else(|| format!("Invalid permission type {}", c.permission_type))?;
    let b = AclBinding {
        resource_type,
        resource_name: c.resource_name.to_string(),
        pattern_type,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation,
        permission,
    };
    b.validate()?;
    Ok(b)
}

fn error_result(err: ResponseError, msg: String) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(err.code())
        .with_error_message(Some(StrBytes::from_string(msg)))
}

fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.to_i8())
        .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
        .with_pattern_type(b.pattern_type.to_i8())
        .with_principal(StrBytes::from_string(b.principal.clone()))
        .with_host(StrBytes::from_string(b.host.clone()))
        .with_operation(b.operation.to_i8())
        .with_permission_type(b.permission.to_i8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;

    use ResourceType::*;

    fn b(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        host: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.to_string(),
            pattern_type: pt,
            principal: principal.to_string(),
            host: host.to_string(),
            operation: op,
            permission: perm,
        }
    }

    fn allow(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        op: Operation,
    ) -> AclBinding {
        b(rt, name, pt, principal, "*", op, Permission::Allow)
    }

    fn deny(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        op: Operation,
    ) -> AclBinding {
        b(rt, name, pt, principal, "*", op, Permission::Deny)
    }

    fn open(dir: &tempfile::TempDir) -> Arc<Authorizer> {
        Authorizer::open(
            &dir.path().join("acls.json"),
            vec!["User:admin".to_string()],
        )
        .expect("open")
    }

    #[test]
    fn id_round_trips() {
        for v in 2..=5 {
            assert_eq!(ResourceType::from_i8(v).map(|r| r.to_i8()), Some(v));
        }
        for v in 2..=12 {
            assert_eq!(Operation::from_i8(v).map(|o| o.to_i8()), Some(v));
        }
        for v in [0, 1, 6, 7, -1] {
            assert!(ResourceType::from_i8(v).is_none());
        }
        for v in [0, 1, 13, -1] {
            assert!(Operation::from_i8(v).is_none());
        }
        assert_eq!(PatternType::from_i8(3), Some(PatternType::Literal));
        assert_eq!(PatternType::from_i8(4), Some(PatternType::Prefixed));
        assert_eq!(Permission::from_i8(2), Some(Permission::Deny));
        assert_eq!(Permission::from_i8(3), Some(Permission::Allow));
    }

    #[test]
    fn authorize_matching_table() {
        use Operation::*;
        use PatternType::*;
        let dir = tempfile::tempdir().expect("tempdir");
        let authz = open(&dir);
        for binding in [
            allow(Topic, "orders", Literal, "User:alice", Read),
            allow(Topic, "logs-", Prefixed, "User:alice", Write),
            deny(Topic, "logs-secret", Literal, "User:alice", Write),
            allow(Topic, "*", Literal, "User:bob", Describe),
            allow(Group, "g1", Literal, "User:*", Read),
            deny(Group, "g1", Literal, "User:mallory", All),
            allow(
                Cluster,
                CLUSTER_RESOURCE_NAME,
                Literal,
                "User:ops",
                AlterConfigs,
            ),
            allow(TransactionalId, "tx", Prefixed, "User:alice", All),
            b(
                Topic,
                "pinned",
                Literal,
                "User:carol",
                "10.0.0.1",
                Read,
                Permission::Allow,
            ),
            allow(Topic, "writer-topic", Literal, "User:producer", Write),
        ] {
            authz.add_binding(binding).expect("add");
        }
        let h = "127.0.0.1";
        let cases: &[(&str, &str, Operation, ResourceType, &str, bool)] = &[
            // literal
            ("User:alice", h, Read, Topic, "orders", true),
            ("User:alice", h, Write, Topic, "orders", false),
            ("User:alice", h, Read, Topic, "orders2", false),
            // implied describe from read / write, not from create
            ("User:alice", h, Describe, Topic, "orders", true),
            ("User:alice", h, Describe, Topic, "logs-x", true),
            ("User:alice", h, Create, Topic, "orders", false),
            // prefixed
            ("User:alice", h, Write, Topic, "logs-app", true),
            ("User:alice", h, Write, Topic, "logs", false),
            ("User:alice", h, Write, Topic, "xlogs-app", false),
            // deny wins over prefixed allow
            ("User:alice", h, Write, Topic, "logs-secret", false),
            ("User:alice", h, Describe, Topic, "logs-secret", true),
            // wildcard resource
            ("User:bob", h, Describe, Topic, "anything", true),
            ("User:bob", h, Read, Topic, "anything", false),
            // wildcard principal and deny ALL
            ("User:zed", h, Read, Group, "g1", true),
            ("User:zed", h, Describe, Group, "g1", true),
            ("User:mallory", h, Read, Group, "g1", false),
            ("User:mallory", h, Describe, Group, "g1", false),
            // describe_configs implied by alter_configs
            (
                "User:ops",
                h,
                DescribeConfigs,
                Cluster,
                CLUSTER_RESOURCE_NAME,
                true,
            ),
            (
                "User:ops",
                h,
                AlterConfigs,
                Cluster,
                CLUSTER_RESOURCE_NAME,
                true,
            ),
            (
                "User:ops",
                h,
                Describe,
                Cluster,
                CLUSTER_RESOURCE_NAME,
                false,
            ),
            // ALL covers everything
            ("User:alice", h, Write, TransactionalId, "tx-1", true),
            ("User:alice", h, Describe, TransactionalId, "tx", true),
            // resource type must match
            ("User:alice", h, Read, Group, "orders", false),
            // host
            ("User:carol", "10.0.0.1", Read, Topic, "pinned", true),
            ("User:carol", "10.0.0.2", Read, Topic, "pinned", false),
            // super user bypasses, no acl means deny
            ("User:admin", h, Delete, Topic, "whatever", true),
            ("User:nobody", h, Read, Topic, "unguarded", false),
            // idempotent write via write on some topic
            (
                "User:producer",
                h,
                IdempotentWrite,
                Cluster,
                CLUSTER_RESOURCE_NAME,
                true,
            ),
            (
                "User:bob",
                h,
                IdempotentWrite,
                Cluster,
                CLUSTER_RESOURCE_NAME,
                false,
            ),
        ];
        for &(principal, host, op, rt, name, expected) in cases {
            assert_eq!(
                authz.authorize(principal, host, op, rt, name),
                expected,
                "{principal} {host} {op:?} {rt:?} {name}"
            );
        }

        // A cluster deny beats the implied idempotent write.
        authz
            .add_binding(deny(
                Cluster,
                CLUSTER_RESOURCE_NAME,
                Literal,
                "User:producer",
                IdempotentWrite,
            ))
            .expect("add");
        assert!(!authz.authorize(
            "User:producer",
            h,
            IdempotentWrite,
            Cluster,
            CLUSTER_RESOURCE_NAME
        ));
    }

    #[test]
    fn add_remove_validate_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let authz = open(&dir);
        let a = allow(Topic, "t", PatternType::Literal, "User:u", Operation::Read);
        authz.add_binding(a.clone()).expect("add");
        authz.add_binding(a.clone()).expect("add twice is a no-op");
        assert_eq!(authz.bindings(), vec![a.clone()]);

        for bad in [
            allow(Topic, "", PatternType::Literal, "User:u", Operation::Read),
            allow(
                Cluster,
                "other",
                PatternType::Literal,
                "User:u",
                Operation::Read,
            ),
            allow(Topic, "t", PatternType::Literal, "alice", Operation::Read),
            allow(Topic, "t", PatternType::Literal, "User:", Operation::Read),
            b(
                Topic,
                "t",
                PatternType::Literal,
                "User:u",
                "",
                Operation::Read,
                Permission::Allow,
            ),
        ] {
            assert!(matches!(
                authz.add_binding(bad),
                Err(SecurityError::InvalidRequest(_))
            ));
        }

        let reopened = open(&dir);
        assert_eq!(reopened.bindings(), vec![a.clone()]);
        assert!(reopened.authorize("User:u", "h", Operation::Read, Topic, "t"));
        assert_eq!(reopened.remove_matching(&a).expect("remove"), 1);
        assert_eq!(reopened.remove_matching(&a).expect("remove"), 0);
        assert!(open(&dir).bindings().is_empty());

        std::fs::write(
            dir.path().join("acls.json"),
            b"{\"version\":1,\"bindings\":[{}]}",
        )
        .expect("write");
        assert!(matches!(
            Authorizer::open(&dir.path().join("acls.json"), vec![]),
            Err(SecurityError::Corrupt(_))
        ));
    }

    fn creation(
        rt: i8,
        name: &str,
        pt: i8,
        principal: &str,
        host: &str,
        op: i8,
        perm: i8,
    ) -> AclCreation {
        AclCreation::default()
            .with_resource_type(rt)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_resource_pattern_type(pt)
            .with_principal(StrBytes::from_string(principal.to_string()))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_operation(op)
            .with_permission_type(perm)
    }

    #[allow(clippy::too_many_arguments)]
    fn describe_req(
        rt: i8,
        name: Option<&str>,
        pt: i8,
        principal: Option<&str>,
        host: Option<&str>,
        op: i8,
        perm: i8,
    ) -> DescribeAclsRequest {
        DescribeAclsRequest::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.map(|s| StrBytes::from_string(s.to_string())))
            .with_pattern_type_filter(pt)
            .with_principal_filter(principal.map(|s| StrBytes::from_string(s.to_string())))
            .with_host_filter(host.map(|s| StrBytes::from_string(s.to_string())))
            .with_operation(op)
            .with_permission_type(perm)
    }

    /// Filter on resource only (principal/host/operation/permission: any). The protocol
    /// type's Default uses "" rather than null for strings, so set every field.
    fn delete_filter(rt: i8, name: Option<&str>, pt: i8) -> DeleteAclsFilter {
        DeleteAclsFilter::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.map(|s| StrBytes::from_string(s.to_string())))
            .with_pattern_type_filter(pt)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1)
    }

    /// Flattens a describe response to (type, name, pattern, principal, op, perm), sorted.
    fn flat(resp: &DescribeAclsResponse) -> Vec<(i8, String, i8, String, i8, i8)> {
        let mut v: Vec<_> = resp
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| {
                    (
                        r.resource_type,
                        r.resource_name.to_string(),
                        r.pattern_type,
                        a.principal.to_string(),
                        a.operation,
                        a.permission_type,
                    )
                })
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn create_describe_delete_through_protocol_types() {
        let dir = tempfile::tempdir().expect("tempdir");
        let authz = open(&dir);
        let req = CreateAclsRequest::default().with_creations(vec![
            creation(2, "orders", 3, "User:alice", "*", 3, 3), // topic literal read allow
            creation(2, "ord", 4, "User:alice", "*", 4, 3),    // topic prefixed write allow
            creation(2, "*", 3, "User:bob", "*", 8, 3),        // topic wildcard describe
            creation(3, "g", 3, "User:alice", "*", 3, 2),      // group deny read
            creation(4, "kafka-cluster", 3, "User:ops", "*", 2, 3),
            creation(2, "orders", 3, "User:alice", "*", 3, 3), // duplicate: ok, stored once
            // invalid ones
            creation(0, "x", 3, "User:a", "*", 3, 3),
            creation(1, "x", 3, "User:a", "*", 3, 3),
            creation(2, "x", 1, "User:a", "*", 3, 3),
            creation(2, "x", 2, "User:a", "*", 3, 3),
            creation(2, "x", 3, "User:a", "*", 1, 3),
            creation(2, "x", 3, "User:a", "*", 0, 3),
            creation(2, "x", 3, "User:a", "*", 3, 1),
            creation(2, "", 3, "User:a", "*", 3, 3),
            creation(4, "x", 3, "User:a", "*", 3, 3),
            creation(2, "x", 3, "nobody", "*", 3, 3),
        ]);
        let resp = authz.create_acls(&req, 3);
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [vec![0; 6], vec![42; 10]].concat());
        assert!(resp.results[6].error_message.is_some());
        assert_eq!(authz.bindings().len(), 5);

        // Everything.
        let all = authz.describe_acls(&describe_req(1, None, 1, None, None, 1, 1), 3);
        assert_eq!(all.error_code, 0);
        assert_eq!(flat(&all).len(), 5);

        // MATCH on a topic name: literal exact, literal wildcard and prefixes of the name.
        let m = authz.describe_acls(&describe_req(2, Some("orders"), 2, None, None, 1, 1), 3);
        assert_eq!(
            flat(&m),
            vec![
                (2, "*".to_string(), 3, "User:bob".to_string(), 8, 3),
                (2, "ord".to_string(), 4, "User:alice".to_string(), 4, 3),
                (2, "orders".to_string(), 3, "User:alice".to_string(), 3, 3),
            ]
        );
        // ANY pattern with a name: exact name only, any pattern type.
        let any = authz.describe_acls(&describe_req(1, Some("ord"), 1, None, None, 1, 1), 3);
        assert_eq!(
            flat(&any),
            vec![(2, "ord".to_string(), 4, "User:alice".to_string(), 4, 3)]
        );
        // LITERAL with "*" matches only the wildcard binding itself.
        let lit = authz.describe_acls(&describe_req(2, Some("*"), 3, None, None, 1, 1), 3);
        assert_eq!(flat(&lit).len(), 1);
        // PREFIXED filter with no name.
        let pre = authz.describe_acls(&describe_req(1, None, 4, None, None, 1, 1), 3);
        assert_eq!(flat(&pre).len(), 1);
        // Principal, operation and permission filters.
        let p = authz.describe_acls(&describe_req(1, None, 1, Some("User:alice"), None, 1, 1), 3);
        assert_eq!(flat(&p).len(), 3);
        let d = authz.describe_acls(&describe_req(1, None, 1, None, Some("*"), 1, 2), 3);
        assert_eq!(
            flat(&d),
            vec![(3, "g".to_string(), 3, "User:alice".to_string(), 3, 2)]
        );
        let op = authz.describe_acls(&describe_req(1, None, 1, None, None, 2, 1), 3);
        assert_eq!(flat(&op).len(), 1);
        let none = authz.describe_acls(&describe_req(1, None, 1, None, Some("10.0.0.1"), 1, 1), 3);
        assert!(none.resources.is_empty());
        // Grouping: one resource entry per pattern.
        assert_eq!(all.resources.len(), 5);
        // Valid but unsupported types/ops match nothing.
        assert!(authz
            .describe_acls(&describe_req(7, None, 1, None, None, 1, 1), 3)
            .resources
            .is_empty());
        assert!(authz
            .describe_acls(&describe_req(1, None, 1, None, None, 13, 1), 3)
            .resources
            .is_empty());
        // UNKNOWN elements are rejected.
        for bad in [
            describe_req(0, None, 1, None, None, 1, 1),
            describe_req(1, None, 0, None, None, 1, 1),
            describe_req(1, None, 1, None, None, 0, 1),
            describe_req(1, None, 1, None, None, 1, 0),
            describe_req(99, None, 1, None, None, 1, 1),
        ] {
            let r = authz.describe_acls(&bad, 3);
            assert_eq!(r.error_code, 42);
            assert!(r.resources.is_empty());
        }

        // Reload from disk sees the same state.
        let reopened = open(&dir);
        assert_eq!(reopened.bindings(), authz.bindings());
        assert!(reopened.authorize("User:alice", "h", Operation::Write, Topic, "orders-eu"));
        assert!(!reopened.authorize("User:alice", "h", Operation::Read, Group, "g"));

        // Delete: first filter takes the orders bindings via MATCH, the second overlaps
        // and gets only what is left; an invalid filter reports an error.
        let del = DeleteAclsRequest::default().with_filters(vec![
            delete_filter(2, Some("orders"), 2),
            delete_filter(2, None, 1),
            delete_filter(0, None, 1),
            delete_filter(3, Some("nope"), 3),
        ]);
        let resp = reopened.delete_acls(&del, 3);
        let summary: Vec<(i16, usize)> = resp
            .filter_results
            .iter()
            .map(|r| (r.error_code, r.matching_acls.len()))
            .collect();
        assert_eq!(summary, vec![(0, 3), (0, 0), (42, 0), (0, 0)]);
        let first = &resp.filter_results[0].matching_acls;
        assert!(first
            .iter()
            .all(|m| m.error_code == 0 && m.resource_type == 2 && m.principal.len() > 5));

        let left = open(&dir).bindings();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|b| b.resource_type != Topic));
    }
}
