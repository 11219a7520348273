//! The documented request rules (seed 000 Table 5-2, seed 003, Table 5-23, the v2 SDK's
//! model descriptions), each answered with its own [`ControlError`].

use crate::catalog::{self, Zone};
use crate::error::ControlError;
use crate::model::{CreateShape, EngineKind, InstanceDoc, NewInstance, Tag};

/// Instance names: seed 000's Table 5-2 forbids `_`, but its error 111400010 and seed 003
/// allow it; the SDK-era rule (with `_`) is followed.
pub fn check_instance_name(name: &str) -> Result<(), ControlError> {
    let ok = (4..=64).contains(&name.chars().count())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then_some(()).ok_or(ControlError::InvalidName)
}

pub fn check_description(d: &str) -> Result<(), ControlError> {
    (d.chars().count() <= 1024)
        .then_some(())
        .ok_or(ControlError::DescriptionTooLong)
}

/// Passwords: 8–32 characters with at least three character classes (Table 5-2; error
/// 111400012 says two, the stricter table wins).
pub fn check_password(field: &'static str, pw: &str) -> Result<(), ControlError> {
    check_password_classes(field, pw, 3)
}

/// Passwords of 8–32 characters with at least `min_classes` character classes.
pub fn check_password_classes(
    field: &'static str,
    pw: &str,
    min_classes: usize,
) -> Result<(), ControlError> {
    const SPECIALS: &str = "`~!@#$%^&*()-_=+\\|[{}];:'\",<.>/? ";
    let len_ok = (8..=32).contains(&pw.chars().count());
    let classes = [
        pw.chars().any(|c| c.is_ascii_lowercase()),
        pw.chars().any(|c| c.is_ascii_uppercase()),
        pw.chars().any(|c| c.is_ascii_digit()),
        pw.chars().any(|c| SPECIALS.contains(c)),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let only_known = pw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c));
    (len_ok && classes >= min_classes && only_known)
        .then_some(())
        .ok_or(ControlError::WeakPassword(field))
}

/// Seed 002 4.2.1: a new password has 8-32 characters of at least three types and does not
/// start with `-`.
pub fn check_reset_password(pw: &str) -> Result<(), ControlError> {
    if pw.starts_with('-') {
        return Err(ControlError::WeakPassword("new_password"));
    }
    check_password_classes("new_password", pw, 3)
}

/// Usernames of SASL and Kafka Manager users: 4–64 letters, digits, `-` and `_`.
pub fn check_username(field: &'static str, u: &str) -> Result<(), ControlError> {
    let ok = (4..=64).contains(&u.chars().count())
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some(()).ok_or(ControlError::InvalidUsername(field))
}

fn required<'a>(v: &'a Option<String>, field: &'static str) -> Result<&'a str, ControlError> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ControlError::EmptyField(field)),
    }
}

pub fn check_tags(tags: &[Tag]) -> Result<(), ControlError> {
    const FORBIDDEN: &str = "=*<>,|/";
    let bad = |s: &str| s.chars().any(|c| (c as u32) < 32 || FORBIDDEN.contains(c));
    for t in tags {
        if t.key.trim().is_empty() || t.key.chars().count() > 36 || bad(&t.key) {
            return Err(ControlError::InvalidParameter(format!(
                "tag key {:?}",
                t.key
            )));
        }
        if t.value.chars().count() > 43 || bad(&t.value) {
            return Err(ControlError::InvalidParameter(format!(
                "tag value {:?}",
                t.value
            )));
        }
    }
    Ok(())
}

/// Seed 001 topic and group names: 3–64 characters of letters, digits, `%`, `|`, `-`, `_`.
pub fn check_mq_name(kind: &str, name: &str) -> Result<(), ControlError> {
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'-' | b'_'));
    match (ok, kind) {
        (true, _) => Ok(()),
        (false, "group") => Err(ControlError::InvalidGroupName(name.to_string())),
        (false, _) => Err(ControlError::InvalidParameter(format!(
            "{kind} name {name:?}: 3 to 64 characters of letters, digits, '%', '|', '-' and '_'"
        ))),
    }
}

/// Seed 001 5.3.1 `queue_num`: 1–50.
pub fn check_queue_num(field: &str, n: i64) -> Result<(), ControlError> {
    if (1..=50).contains(&n) {
        Ok(())
    } else {
        Err(ControlError::InvalidParameter(format!(
            "{field} {n}: must be within 1-50"
        )))
    }
}

/// Seed 001 5.5.1 `access_key`: starts with a letter; 7–64 letters, digits, `-`, `_`.
pub fn check_access_key(key: &str) -> Result<(), ControlError> {
    let ok = (7..=64).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(()).ok_or_else(|| {
        ControlError::InvalidParameter(format!(
            "access_key {key:?}: 7 to 64 characters of letters, digits, '-' and '_', starting with a letter"
        ))
    })
}

/// Seed 001 5.5.1 `secret_key`: 8–32 characters of at least three types, and neither the
/// user name nor the user name reversed.
pub fn check_secret_key(access_key: &str, secret: &str) -> Result<(), ControlError> {
    check_password_classes("secret_key", secret, 3)?;
    let reversed: String = access_key.chars().rev().collect();
    if secret == access_key || secret == reversed {
        return Err(ControlError::WeakPassword("secret_key"));
    }
    Ok(())
}

/// An ACL permission as plain ACL names it: `DENY`, `PUB`, `SUB` or `PUB|SUB`.
pub fn check_acl_perm(field: &str, perm: &str) -> Result<String, ControlError> {
    match perm.trim().to_ascii_uppercase().as_str() {
        p @ ("DENY" | "PUB" | "SUB" | "PUB|SUB") => Ok(p.to_string()),
        "SUB|PUB" => Ok("PUB|SUB".into()),
        other => Err(ControlError::InvalidParameter(format!(
            "{field} {other:?}: must be DENY, PUB, SUB or PUB|SUB"
        ))),
    }
}

/// Public access needs the EIPs it uses (`publicip_id`, mandatory with `enable_publicip`).
fn check_public_access(req: &NewInstance) -> Result<(), ControlError> {
    if req.enable_publicip == Some(true)
        && req.publicip_id.as_deref().unwrap_or("").trim().is_empty()
    {
        return Err(ControlError::InvalidParameter(
            "publicip_id is required when enable_publicip is true".into(),
        ));
    }
    Ok(())
}

/// How many AZs an engine's instances may be deployed in.
#[derive(Clone, Copy)]
enum ZoneRule {
    /// Kafka and RocketMQ: "1 AZ or at least 3 AZs".
    OneOrAtLeastThree,
    /// RabbitMQ: "must be an array that contains only one AZ ID" (DMS.00400067).
    ExactlyOne,
}

/// Where a new instance lives: its network (VPC, security group, subnet) and AZs.
struct Placement<'a> {
    vpc_id: &'a str,
    security_group_id: &'a str,
    subnet_id: &'a str,
    azs: Vec<String>,
}

/// The network fields every create needs, and AZs that exist in the number the engine takes.
fn placement<'a>(
    req: &'a NewInstance,
    zones: &[Zone],
    rule: ZoneRule,
) -> Result<Placement<'a>, ControlError> {
    let vpc_id = required(&req.vpc_id, "vpc_id")?;
    let security_group_id = required(&req.security_group_id, "security_group_id")?;
    let subnet_id = required(&req.subnet_id, "subnet_id")?;
    let azs = req.available_zones.clone().unwrap_or_default();
    match rule {
        ZoneRule::OneOrAtLeastThree if azs.is_empty() || azs.len() == 2 => {
            return Err(ControlError::ZoneCount(
                "available_zones must list 1 AZ or at least 3 AZs",
            ))
        }
        ZoneRule::ExactlyOne if azs.len() != 1 => {
            return Err(ControlError::ZoneCount(
                "available_zones must be an array that contains only one AZ ID",
            ))
        }
        _ => {}
    }
    if let Some(az) = azs
        .iter()
        .find(|az| !zones.iter().any(|z| &z.id == *az || &z.code == *az))
    {
        return Err(ControlError::UnknownZone(az.clone()));
    }
    Ok(Placement {
        vpc_id,
        security_group_id,
        subnet_id,
        azs,
    })
}

/// A create request that passed every rule.
#[derive(Debug)]
pub struct ValidCreate {
    pub name: String,
    pub engine: EngineKind,
    pub doc: InstanceDoc,
    /// SASL user and password when `ssl_enable`; the password is handed to the broker's
    /// SCRAM store and never kept by the control plane.
    pub sasl_user: Option<(String, String)>,
    pub tags: Vec<Tag>,
}

pub fn validate_create(
    req: &NewInstance,
    shape: CreateShape,
    zones: &[Zone],
) -> Result<ValidCreate, ControlError> {
    let name = required(&req.name, "name").map_err(|_| ControlError::InvalidName)?;
    check_instance_name(name)?;
    let description = req.description.clone().unwrap_or_default();
    check_description(&description)?;
    let engine = req
        .engine
        .ok_or_else(|| ControlError::UnsupportedEngine(String::new()))?;
    match engine {
        EngineKind::Kafka => {}
        EngineKind::Rabbitmq => {
            return validate_rabbitmq_create(req, shape, name, description, zones);
        }
        EngineKind::Rocketmq => {
            return validate_rocketmq_create(req, name, description, zones);
        }
    }
    let engine_version = required(&req.engine_version, "engine_version")
        .map_err(|_| ControlError::UnsupportedVersion(String::new()))?;
    if !catalog::ENGINE_VERSIONS.contains(&engine_version) {
        return Err(ControlError::UnsupportedVersion(engine_version.to_string()));
    }

    let Placement {
        vpc_id,
        security_group_id,
        subnet_id,
        azs,
    } = placement(req, zones, ZoneRule::OneOrAtLeastThree)?;

    let product_id = required(&req.product_id, "product_id")
        .map_err(|_| ControlError::InvalidProduct(String::new()))?;
    let storage_spec_code = required(&req.storage_spec_code, "storage_spec_code")
        .map_err(|_| ControlError::InvalidSpecCode(String::new()))?;
    let storage = req
        .storage_space_gb
        .ok_or_else(|| ControlError::InvalidStorage("storage_space is required".into()))?;

    let mut doc = InstanceDoc {
        description,
        engine_version: engine_version.to_string(),
        product_id: product_id.to_string(),
        storage_spec_code: storage_spec_code.to_string(),
        available_zones: azs,
        vpc_id: vpc_id.to_string(),
        subnet_id: subnet_id.to_string(),
        security_group_id: security_group_id.to_string(),
        enterprise_project_id: req
            .enterprise_project_id
            .clone()
            .unwrap_or_else(|| "0".into()),
        connector_enable: req.kafka.connector_enable.unwrap_or(false),
        enable_publicip: req.enable_publicip.unwrap_or(false),
        public_bandwidth: req.public_bandwidth.unwrap_or(0),
        publicip_id: req.publicip_id.clone().unwrap_or_default(),
        enable_auto_topic: req.kafka.enable_auto_topic.unwrap_or(false),
        ..InstanceDoc::default()
    };

    if let Some(spec) = catalog::bandwidth_spec_by_product(product_id) {
        // Seed 000 / 003: the specification fixes partitions, storage range and disk types.
        let specification = req.specification.as_deref().unwrap_or(spec.specification);
        if specification != spec.specification {
            return Err(ControlError::InvalidProduct(format!(
                "{product_id} is the {} specification, not {specification}",
                spec.specification
            )));
        }
        match req.kafka.partition_num {
            Some(p) if p != i64::from(spec.partition_num) => {
                return Err(ControlError::InvalidParameter(format!(
                    "partition_num must be {} for specification {}",
                    spec.partition_num, spec.specification
                )))
            }
            None if shape == CreateShape::Bandwidth => {
                return Err(ControlError::InvalidParameter(
                    "partition_num is required".into(),
                ))
            }
            _ => {}
        }
        if storage < i64::from(spec.min_storage_gb) || storage > i64::from(spec.max_storage_gb) {
            return Err(ControlError::InvalidStorage(format!(
                "storage_space of specification {} must be within {}-{} GB",
                spec.specification, spec.min_storage_gb, spec.max_storage_gb
            )));
        }
        if !spec.storage_spec_codes.contains(&storage_spec_code) {
            return Err(ControlError::InvalidSpecCode(storage_spec_code.to_string()));
        }
        let brokers = req
            .broker_num
            .unwrap_or(i64::from(catalog::BANDWIDTH_SPEC_BROKERS));
        if brokers != i64::from(catalog::BANDWIDTH_SPEC_BROKERS) {
            return Err(ControlError::InvalidParameter(format!(
                "broker_num must be {} for specification {}",
                catalog::BANDWIDTH_SPEC_BROKERS,
                spec.specification
            )));
        }
        doc.specification = spec.specification.to_string();
        doc.resource_spec_code = spec.resource_spec_code.to_string();
        doc.partition_num = spec.partition_num;
        doc.broker_num = catalog::BANDWIDTH_SPEC_BROKERS;
    } else if let (Some(flavor), CreateShape::Flavor) = (catalog::flavor(product_id), shape) {
        let brokers = req
            .broker_num
            .ok_or_else(|| ControlError::InvalidParameter("broker_num is required".into()))?;
        if brokers < i64::from(flavor.min_broker) || brokers > i64::from(flavor.max_broker) {
            return Err(ControlError::InvalidParameter(format!(
                "broker_num must be within {}-{}",
                flavor.min_broker, flavor.max_broker
            )));
        }
        let brokers = brokers as u32;
        let (min, max) = (
            u64::from(flavor.min_storage_per_node_gb) * u64::from(brokers),
            u64::from(flavor.max_storage_per_node_gb) * u64::from(brokers),
        );
        if storage < min as i64 || storage > max as i64 {
            return Err(ControlError::InvalidStorage(format!(
                "storage_space for {brokers} brokers must be within {min}-{max} GB"
            )));
        }
        if !catalog::FLAVOR_STORAGE_SPEC_CODES.contains(&storage_spec_code) {
            return Err(ControlError::InvalidSpecCode(storage_spec_code.to_string()));
        }
        doc.specification = format!("{} * {brokers} broker", flavor.product_id);
        doc.resource_spec_code = flavor.product_id.to_string();
        doc.partition_num = flavor.max_partition_per_broker * brokers;
        doc.broker_num = brokers;
    } else {
        return Err(ControlError::InvalidProduct(product_id.to_string()));
    }
    doc.storage_space_gb = storage as u64;

    // Kafka Manager exists only for the bandwidth family, where its credentials are mandatory.
    if shape == CreateShape::Bandwidth {
        let user = required(&req.kafka.kafka_manager_user, "kafka_manager_user")
            .map_err(|_| ControlError::InvalidUsername("kafka_manager_user"))?;
        check_username("kafka_manager_user", user)?;
        let pw = req.kafka.kafka_manager_password.as_deref().unwrap_or("");
        check_password("kafka_manager_password", pw)?;
        doc.kafka_manager_user = user.to_string();
    }

    let window = create_window(req)?;
    doc.maintain_begin = window.begin.to_string();
    doc.maintain_end = window.end.to_string();

    let ssl = req.ssl_enable.unwrap_or(false);
    let sasl_user = if ssl {
        let user = required(&req.access_user, "access_user")
            .map_err(|_| ControlError::InvalidUsername("access_user"))?;
        check_username("access_user", user)?;
        let pw = req.password.as_deref().unwrap_or("");
        check_password("password", pw)?;
        doc.access_user = user.to_string();
        Some((user.to_string(), pw.to_string()))
    } else {
        None
    };
    doc.ssl_enable = ssl;

    doc.retention_policy = match req.kafka.retention_policy.as_deref() {
        None | Some("") => "time_base".into(),
        Some(p @ ("time_base" | "produce_reject")) => p.to_string(),
        Some(other) => {
            return Err(ControlError::InvalidParameter(format!(
                "retention_policy {other:?}: must be time_base or produce_reject"
            )))
        }
    };
    let tags = req.tags.clone();
    check_tags(&tags)?;
    Ok(ValidCreate {
        name: name.to_string(),
        engine,
        doc,
        sasl_user,
        tags,
    })
}

/// A create's maintenance window: both ends or neither (then the default window).
fn create_window(req: &NewInstance) -> Result<&'static catalog::MaintainWindow, ControlError> {
    let (begin, end) = (
        req.maintain_begin.as_deref().unwrap_or(""),
        req.maintain_end.as_deref().unwrap_or(""),
    );
    match (begin.is_empty(), end.is_empty()) {
        (true, true) => Ok(catalog::default_maintain_window()),
        (false, false) => {
            catalog::maintain_window(begin, end).ok_or(ControlError::InvalidMaintainWindow)
        }
        _ => Err(ControlError::InvalidMaintainWindow),
    }
}

/// Seed 002 4.1.1 (Table 4-2): a RabbitMQ instance of one documented product, always with its
/// access user, who becomes the broker's administrator.
///
/// `CreateShape::Bandwidth` is the V1 create (6.1.1.1): old-flavor product ids whose node
/// count is part of the product, the old disk codes, an optional engine version (its
/// example sends "3.x.x"), and names and users of letters, digits and hyphens only.
fn validate_rabbitmq_create(
    req: &NewInstance,
    shape: CreateShape,
    name: &str,
    description: String,
    zones: &[Zone],
) -> Result<ValidCreate, ControlError> {
    let v1 = shape == CreateShape::Bandwidth;
    if v1 && name.contains('_') {
        return Err(ControlError::InvalidName);
    }
    let engine_version = match req.engine_version.as_deref().map(str::trim) {
        Some("3.x.x") | None | Some("") if v1 => catalog::RABBITMQ_ENGINE_VERSIONS[0],
        Some(v) if !v.is_empty() => v,
        _ => return Err(ControlError::UnsupportedVersion(String::new())),
    };
    if !catalog::RABBITMQ_ENGINE_VERSIONS.contains(&engine_version) {
        return Err(ControlError::UnsupportedVersion(engine_version.to_string()));
    }
    let Placement {
        vpc_id,
        security_group_id,
        subnet_id,
        azs,
    } = placement(req, zones, ZoneRule::ExactlyOne)?;
    let product_id = required(&req.product_id, "product_id")
        .map_err(|_| ControlError::InvalidProduct(String::new()))?;
    if v1 {
        return validate_rabbitmq_v1_create(
            req,
            name,
            description,
            engine_version,
            product_id,
            azs,
        );
    }
    let product = catalog::rabbitmq_product(product_id)
        .ok_or_else(|| ControlError::InvalidProduct(product_id.to_string()))?;
    // "If the product type is cluster, broker_num is mandatory": 3, 5 or 7. Single: 1.
    let brokers = match (product.kind, req.broker_num) {
        ("cluster", None) => {
            return Err(ControlError::InvalidParameter(
                "broker_num is required for a cluster product".into(),
            ))
        }
        (_, None) => 1,
        (_, Some(n)) => n,
    };
    let step_ok = product.broker_step == 0
        || (brokers - i64::from(product.min_broker)) % i64::from(product.broker_step) == 0;
    if brokers < i64::from(product.min_broker)
        || brokers > i64::from(product.max_broker)
        || !step_ok
    {
        return Err(ControlError::InvalidParameter(format!(
            "broker_num of {} must be {}",
            product.product_id,
            match product.kind {
                "cluster" => "3, 5 or 7",
                _ => "1",
            }
        )));
    }
    let brokers = brokers as u32;
    let storage = req
        .storage_space_gb
        .ok_or_else(|| ControlError::InvalidStorage("storage_space is required".into()))?;
    // 100 GB x nodes up to 90,000 GB (Table 4-2), and no node above its product maximum.
    let min = u64::from(product.min_storage_per_node_gb) * u64::from(brokers);
    let max = (u64::from(product.max_storage_per_node_gb) * u64::from(brokers))
        .min(catalog::RABBITMQ_MAX_STORAGE_GB);
    if storage < min as i64 || storage > max as i64 {
        return Err(ControlError::InvalidStorage(format!(
            "storage_space of {} with {brokers} node(s) must be within {min}-{max} GB",
            product.product_id
        )));
    }
    let storage_spec_code = required(&req.storage_spec_code, "storage_spec_code")
        .map_err(|_| ControlError::InvalidSpecCode(String::new()))?;
    if !catalog::RABBITMQ_STORAGE_SPEC_CODES.contains(&storage_spec_code) {
        return Err(ControlError::InvalidSpecCode(storage_spec_code.to_string()));
    }
    let common = rabbitmq_common(req, false)?;
    let specification = if brokers == 1 {
        product.vm.to_string()
    } else {
        format!("{} * {brokers}", product.vm)
    };
    let doc = InstanceDoc {
        description,
        engine_version: engine_version.to_string(),
        specification,
        product_id: product.product_id.to_string(),
        resource_spec_code: format!("dms.instance.rabbitmq.{}", product.alias),
        broker_num: brokers,
        storage_space_gb: storage as u64,
        storage_spec_code: storage_spec_code.to_string(),
        available_zones: azs,
        vpc_id: vpc_id.to_string(),
        subnet_id: subnet_id.to_string(),
        security_group_id: security_group_id.to_string(),
        product_type: product.kind.to_string(),
        ..common.doc(req)
    };
    Ok(common.into_valid(name, doc))
}

/// Seed 001 5.1.1 (Table 5-2): a RocketMQ instance of one of the four flavors with
/// `broker_num` broker groups (default 1, as the table says despite "Mandatory").
fn validate_rocketmq_create(
    req: &NewInstance,
    name: &str,
    description: String,
    zones: &[Zone],
) -> Result<ValidCreate, ControlError> {
    let engine_version = required(&req.engine_version, "engine_version")
        .map_err(|_| ControlError::UnsupportedVersion(String::new()))?;
    if !catalog::ROCKETMQ_ENGINE_VERSIONS.contains(&engine_version) {
        return Err(ControlError::UnsupportedVersion(engine_version.to_string()));
    }
    // "Deploy in 1 AZ or in at least 3 AZs."
    let Placement {
        vpc_id,
        security_group_id,
        subnet_id,
        azs,
    } = placement(req, zones, ZoneRule::OneOrAtLeastThree)?;
    let product_id = required(&req.product_id, "product_id")
        .map_err(|_| ControlError::InvalidProduct(String::new()))?;
    let product = catalog::rocketmq_product(product_id)
        .ok_or_else(|| ControlError::InvalidProduct(product_id.to_string()))?;
    let brokers = req.broker_num.unwrap_or(1);
    if !(1..=i64::from(catalog::ROCKETMQ_MAX_BROKERS)).contains(&brokers) {
        return Err(ControlError::InvalidParameter(format!(
            "broker_num must be within 1-{}",
            catalog::ROCKETMQ_MAX_BROKERS
        )));
    }
    let brokers = brokers as u32;
    let storage = req
        .storage_space_gb
        .ok_or_else(|| ControlError::InvalidStorage("storage_space is required".into()))?;
    let (min, max) = (
        catalog::ROCKETMQ_MIN_STORAGE_PER_BROKER_GB * u64::from(brokers),
        catalog::ROCKETMQ_MAX_STORAGE_PER_BROKER_GB * u64::from(brokers),
    );
    if storage < min as i64 || storage > max as i64 {
        return Err(ControlError::InvalidStorage(format!(
            "storage_space for {brokers} broker(s) must be within {min}-{max} GB"
        )));
    }
    let storage_spec_code = required(&req.storage_spec_code, "storage_spec_code")
        .map_err(|_| ControlError::InvalidSpecCode(String::new()))?;
    if !catalog::ROCKETMQ_STORAGE_SPEC_CODES.contains(&storage_spec_code) {
        return Err(ControlError::InvalidSpecCode(storage_spec_code.to_string()));
    }
    check_public_access(req)?;
    // The embedded brokers serve plain remoting on IPv4 addresses of the pool: TLS and IPv6
    // are refused by name rather than accepted and not served.
    if req.ssl_enable == Some(true) {
        return Err(ControlError::NotSupported(
            "ssl_enable=true: OpenDMS's RocketMQ instances do not serve TLS; create the instance with ssl_enable=false".into(),
        ));
    }
    if req.ipv6_enable == Some(true) {
        return Err(ControlError::NotSupported(
            "ipv6_enable=true: OpenDMS's RocketMQ instances listen on IPv4 addresses only".into(),
        ));
    }
    let window = create_window(req)?;
    let tags = req.tags.clone();
    check_tags(&tags)?;
    let doc = InstanceDoc {
        description,
        engine_version: engine_version.to_string(),
        specification: format!("{} * {brokers} broker", product.product_id),
        product_id: product.product_id.to_string(),
        resource_spec_code: String::new(),
        broker_num: brokers,
        storage_space_gb: storage as u64,
        storage_spec_code: storage_spec_code.to_string(),
        available_zones: azs,
        vpc_id: vpc_id.to_string(),
        subnet_id: subnet_id.to_string(),
        security_group_id: security_group_id.to_string(),
        maintain_begin: window.begin.to_string(),
        maintain_end: window.end.to_string(),
        enterprise_project_id: req
            .enterprise_project_id
            .clone()
            .unwrap_or_else(|| "0".into()),
        enable_publicip: req.enable_publicip.unwrap_or(false),
        publicip_id: req.publicip_id.clone().unwrap_or_default(),
        acl_enabled: req.enable_acl.unwrap_or(false),
        // Apache's autoCreateTopicEnable default: producers may create topics by sending.
        enable_auto_topic: true,
        product_type: "cluster".into(),
        ..InstanceDoc::default()
    };
    Ok(ValidCreate {
        name: name.to_string(),
        engine: EngineKind::Rocketmq,
        doc,
        sasl_user: None,
        tags,
    })
}

/// What RabbitMQ's V1 and V2 creates check alike: the access user and password, public
/// access, TLS, the maintenance window and tags.
struct RabbitmqCommon {
    user: String,
    password: String,
    begin: &'static str,
    end: &'static str,
    tags: Vec<Tag>,
}

impl RabbitmqCommon {
    /// The fields these rules decide, for the rest of the document to be filled in.
    fn doc(&self, req: &NewInstance) -> InstanceDoc {
        InstanceDoc {
            maintain_begin: self.begin.to_string(),
            maintain_end: self.end.to_string(),
            access_user: self.user.clone(),
            enterprise_project_id: req
                .enterprise_project_id
                .clone()
                .unwrap_or_else(|| "0".into()),
            enable_publicip: req.enable_publicip.unwrap_or(false),
            publicip_id: req.publicip_id.clone().unwrap_or_default(),
            ..InstanceDoc::default()
        }
    }

    fn into_valid(self, name: &str, doc: InstanceDoc) -> ValidCreate {
        ValidCreate {
            name: name.to_string(),
            engine: EngineKind::Rabbitmq,
            doc,
            sasl_user: Some((self.user, self.password)),
            tags: self.tags,
        }
    }
}

fn rabbitmq_common(req: &NewInstance, v1: bool) -> Result<RabbitmqCommon, ControlError> {
    // access_user: starts with a letter; letters, digits, '-' and '_'; 4-64 characters.
    let user = required(&req.access_user, "access_user")
        .map_err(|_| ControlError::InvalidUsername("access_user"))?;
    check_username("access_user", user)?;
    if !user.starts_with(|c: char| c.is_ascii_alphabetic()) || (v1 && user.contains('_')) {
        return Err(ControlError::InvalidUsername("access_user"));
    }
    // Table 4-2: 8-32 characters with at least two character types (error DMS.00400012
    // says two as well).
    let password = req.password.as_deref().unwrap_or("");
    check_password_classes("password", password, 2)?;
    check_public_access(req)?;
    // The embedded broker has no TLS listener: refused by name rather than accepted and
    // served in plain text.
    if req.ssl_enable == Some(true) {
        return Err(ControlError::NotSupported(
            "ssl_enable=true: OpenDMS's RabbitMQ instances do not serve AMQPS (TLS); create the instance with ssl_enable=false".into(),
        ));
    }
    let window = create_window(req)?;
    let tags = req.tags.clone();
    check_tags(&tags)?;
    Ok(RabbitmqCommon {
        user: user.to_string(),
        password: password.to_string(),
        begin: window.begin,
        end: window.end,
        tags,
    })
}

/// Seed 002 6.1.1.1: the V1 create of an old-flavor product.
fn validate_rabbitmq_v1_create(
    req: &NewInstance,
    name: &str,
    description: String,
    engine_version: &str,
    product_id: &str,
    azs: Vec<String>,
) -> Result<ValidCreate, ControlError> {
    let product = catalog::rabbitmq_v1_product(product_id)
        .ok_or_else(|| ControlError::InvalidProduct(product_id.to_string()))?;
    let storage = req
        .storage_space_gb
        .ok_or_else(|| ControlError::InvalidStorage("storage_space is required".into()))?;
    let min = 100 * u64::from(product.nodes);
    let max = catalog::RABBITMQ_MAX_STORAGE_GB;
    if storage < min as i64 || storage > max as i64 {
        return Err(ControlError::InvalidStorage(format!(
            "storage_space of {product_id} must be within {min}-{max} GB"
        )));
    }
    let storage_spec_code = required(&req.storage_spec_code, "storage_spec_code")
        .map_err(|_| ControlError::InvalidSpecCode(String::new()))?;
    if !catalog::RABBITMQ_V1_STORAGE_SPEC_CODES.contains(&storage_spec_code) {
        return Err(ControlError::InvalidSpecCode(storage_spec_code.to_string()));
    }
    let common = rabbitmq_common(req, true)?;
    let doc = InstanceDoc {
        description,
        engine_version: engine_version.to_string(),
        specification: if product.nodes == 1 {
            product.vm.to_string()
        } else {
            format!("{} * {}", product.vm, product.nodes)
        },
        product_id: product_id.to_string(),
        resource_spec_code: product.spec_code.to_string(),
        broker_num: product.nodes,
        storage_space_gb: storage as u64,
        storage_spec_code: storage_spec_code.to_string(),
        available_zones: azs,
        vpc_id: required(&req.vpc_id, "vpc_id")?.to_string(),
        subnet_id: required(&req.subnet_id, "subnet_id")?.to_string(),
        security_group_id: required(&req.security_group_id, "security_group_id")?.to_string(),
        product_type: product.kind.to_string(),
        ..common.doc(req)
    };
    Ok(common.into_valid(name, doc))
}

/// The limits of topics created or changed through one generation of the Huawei API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicRules {
    pub min_name_len: usize,
    pub max_name_len: usize,
    /// Names may contain `.`.
    pub dots: bool,
    /// The rule as the document words it, for the error.
    pub name_rule: &'static str,
    pub max_partitions: i64,
    pub max_retention_hours: i64,
}

impl TopicRules {
    /// Seed 000 Table 5-23 (`/v1.0`): 4–64 characters, 1–20 partitions, 1–168 hours.
    pub const SEED_000: TopicRules = TopicRules {
        min_name_len: 4,
        max_name_len: 64,
        dots: false,
        name_rule: "The name of a Kafka topic must be 4 to 64 characters long and start with a letter. Only letters, digits, underscores (_), and hyphens (-) are allowed.",
        max_partitions: 20,
        max_retention_hours: 168,
    };

    /// The v2 SDK (`CreateInstanceTopicReq` 3.1.219: "长度为3-200，以字母开头且只支持大小写字母、
    /// 中横线、下划线、点以及数字", partitions 1-200, retention 1-720).
    pub const V2: TopicRules = TopicRules {
        min_name_len: 3,
        max_name_len: 200,
        dots: true,
        name_rule: "The name of a Kafka topic must be 3 to 200 characters long and start with a letter. Only letters, digits, periods (.), underscores (_), and hyphens (-) are allowed.",
        max_partitions: 200,
        max_retention_hours: 720,
    };

    /// Names of topics created through the API. Topics that clients auto-created may have any
    /// name Kafka allows; this rule is only for the API.
    pub fn check_name(&self, name: &str) -> Result<(), ControlError> {
        let ok = (self.min_name_len..=self.max_name_len).contains(&name.chars().count())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '_' || c == '-' || (self.dots && c == '.')
            });
        ok.then_some(())
            .ok_or(ControlError::InvalidTopicName(self.name_rule))
    }

    pub fn check_partitions(&self, partitions: i64) -> Result<(), ControlError> {
        (1..=self.max_partitions)
            .contains(&partitions)
            .then_some(())
            .ok_or(ControlError::TopicPartitions(self.max_partitions))
    }

    pub fn check_retention(&self, hours: i64) -> Result<(), ControlError> {
        (1..=self.max_retention_hours)
            .contains(&hours)
            .then_some(())
            .ok_or(ControlError::TopicRetention(self.max_retention_hours))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<Zone> {
        catalog::zones("cn-north-4")
    }

    fn base() -> NewInstance {
        NewInstance {
            name: Some("kafka-test".into()),
            engine: Some(EngineKind::Kafka),
            engine_version: Some("2.3.0".into()),
            specification: Some("100MB".into()),
            storage_space_gb: Some(600),
            vpc_id: Some("vpc".into()),
            security_group_id: Some("sg".into()),
            subnet_id: Some("subnet".into()),
            available_zones: Some(vec![zones()[0].id.clone()]),
            product_id: Some("00300-30308-0--0".into()),
            storage_spec_code: Some(catalog::ULTRA.into()),
            kafka: crate::model::KafkaOptions {
                partition_num: Some(300),
                kafka_manager_user: Some("root-user".into()),
                kafka_manager_password: Some("Secret-123".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_documented_body_is_accepted() {
        let v = validate_create(&base(), CreateShape::Bandwidth, &zones()).unwrap();
        assert_eq!(v.doc.partition_num, 300);
        assert_eq!(v.doc.broker_num, 3);
        assert_eq!(v.doc.maintain_begin, "02:00:00");
        assert_eq!(v.doc.retention_policy, "time_base");
    }

    #[test]
    fn each_rule_has_its_error() {
        let z = zones();
        let check = |f: &dyn Fn(&mut NewInstance), want: &str| {
            let mut r = base();
            f(&mut r);
            let err = validate_create(&r, CreateShape::Bandwidth, &z).unwrap_err();
            assert!(
                format!("{err:?}").starts_with(want),
                "{err:?} is not {want}"
            );
        };
        check(&|r| r.name = Some("abc".into()), "InvalidName");
        check(&|r| r.kafka.partition_num = Some(900), "InvalidParameter");
        check(&|r| r.storage_space_gb = Some(500), "InvalidStorage");
        check(
            &|r| r.storage_spec_code = Some("x".into()),
            "InvalidSpecCode",
        );
        check(
            &|r| r.available_zones = Some(vec![z[0].id.clone(), z[1].id.clone()]),
            "ZoneCount(\"available_zones must list 1 AZ or at least 3 AZs\")",
        );
        check(
            &|r| r.available_zones = Some(vec!["nope".into()]),
            "UnknownZone",
        );
        check(
            &|r| r.maintain_begin = Some("03:00:00".into()),
            "InvalidMaintainWindow",
        );
        check(&|r| r.ssl_enable = Some(true), "InvalidUsername");
        check(
            &|r| {
                r.ssl_enable = Some(true);
                r.access_user = Some("user-1".into());
                r.password = Some("weakpassword".into());
            },
            "WeakPassword",
        );
        check(&|r| r.vpc_id = None, "EmptyField");
        check(&|r| r.engine = None, "UnsupportedEngine");
        check(&|r| r.product_id = Some("nope".into()), "InvalidProduct");
    }

    /// Seed 001 5.1.1's example body.
    fn rocket() -> NewInstance {
        NewInstance {
            name: Some("reliability-1".into()),
            engine: Some(EngineKind::Rocketmq),
            engine_version: Some("4.8.0".into()),
            storage_space_gb: Some(600),
            vpc_id: Some("vpc".into()),
            subnet_id: Some("subnet".into()),
            security_group_id: Some("sg".into()),
            available_zones: Some(vec![zones()[0].id.clone()]),
            product_id: Some("c6.4u8g.cluster".into()),
            storage_spec_code: Some("dms.physical.storage.ultra.v2".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rocketmq_rules_each_have_their_error() {
        let z = zones();
        let v = validate_create(&rocket(), CreateShape::Flavor, &z).unwrap();
        assert_eq!(v.doc.broker_num, 1, "broker_num defaults to 1");
        assert_eq!(v.doc.specification, "c6.4u8g.cluster * 1 broker");
        assert!(v.sasl_user.is_none());
        let check = |f: &dyn Fn(&mut NewInstance), want: &str| {
            let mut r = rocket();
            f(&mut r);
            let err = validate_create(&r, CreateShape::Flavor, &z).unwrap_err();
            assert!(
                format!("{err:?}").starts_with(want),
                "{err:?} is not {want}"
            );
        };
        check(
            &|r| r.engine_version = Some("4.9.7".into()),
            "UnsupportedVersion",
        );
        check(
            &|r| r.product_id = Some("c6.2u4g.cluster".into()),
            "InvalidProduct",
        );
        check(&|r| r.broker_num = Some(11), "InvalidParameter");
        check(&|r| r.broker_num = Some(0), "InvalidParameter");
        check(&|r| r.storage_space_gb = Some(100), "InvalidStorage");
        check(
            &|r| r.storage_spec_code = Some("dms.physical.storage.high".into()),
            "InvalidSpecCode",
        );
        check(
            &|r| r.available_zones = Some(vec![z[0].id.clone(), z[1].id.clone()]),
            "ZoneCount",
        );
        check(&|r| r.ssl_enable = Some(true), "NotSupported");
        check(&|r| r.ipv6_enable = Some(true), "NotSupported");
        check(&|r| r.enable_publicip = Some(true), "InvalidParameter");
        check(&|r| r.subnet_id = None, "EmptyField");
    }

    #[test]
    fn rocketmq_resource_rules() {
        assert!(check_mq_name("topic", "topic-a|b%c_d").is_ok());
        assert!(matches!(
            check_mq_name("group", "ab"),
            Err(ControlError::InvalidGroupName(_))
        ));
        assert!(check_mq_name("topic", "has space").is_err());
        assert!(check_queue_num("queue_num", 50).is_ok());
        assert!(check_queue_num("queue_num", 51).is_err());
        assert!(check_access_key("user_01").is_ok());
        assert!(check_access_key("user01").is_err(), "7 characters at least");
        assert!(
            check_access_key("1user_01").is_err(),
            "starts with a letter"
        );
        assert!(check_secret_key("user_01", "Secret_123").is_ok());
        assert!(
            check_secret_key("user_01", "secret123").is_err(),
            "two classes"
        );
        assert!(
            check_secret_key("Aa1_bb22", "22bb_1aA").is_err(),
            "the name reversed"
        );
        assert_eq!(check_acl_perm("p", "sub|pub").unwrap(), "PUB|SUB");
        assert!(check_acl_perm("p", "ALL").is_err());
    }

    fn rabbit() -> NewInstance {
        NewInstance {
            name: Some("rabbit-1".into()),
            engine: Some(EngineKind::Rabbitmq),
            engine_version: Some("3.8.35".into()),
            product_id: Some("c6.2u4g.single".into()),
            storage_space_gb: Some(100),
            storage_spec_code: Some(catalog::HIGH_V2.into()),
            vpc_id: Some("v".into()),
            subnet_id: Some("s".into()),
            security_group_id: Some("g".into()),
            available_zones: Some(vec![zones()[0].id.clone()]),
            access_user: Some("admin".into()),
            password: Some("passw0rd".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rabbitmq_rules_of_seed_002() {
        let z = zones();
        let v = validate_create(&rabbit(), CreateShape::Flavor, &z).unwrap();
        assert_eq!(v.engine, EngineKind::Rabbitmq);
        assert_eq!(
            (v.doc.broker_num, v.doc.product_type.as_str()),
            (1, "single")
        );
        assert_eq!(v.doc.specification, "2vCPUs 4GB");
        // The access user always becomes the broker's first user.
        assert_eq!(v.sasl_user, Some(("admin".into(), "passw0rd".into())));
        let check = |f: &dyn Fn(&mut NewInstance), want: &str| {
            let mut r = rabbit();
            f(&mut r);
            let err = validate_create(&r, CreateShape::Flavor, &z).unwrap_err();
            assert!(
                format!("{err:?}").starts_with(want),
                "{err:?} is not {want}"
            );
        };
        check(
            &|r| r.engine_version = Some("3.7.17".into()),
            "UnsupportedVersion",
        );
        check(&|r| r.available_zones = Some(Vec::new()), "ZoneCount");
        check(
            &|r| r.product_id = Some("c6.4u8g.cluster".into()),
            "InvalidParameter",
        );
        check(
            &|r| {
                r.product_id = Some("c6.4u8g.cluster".into());
                r.broker_num = Some(4);
                r.storage_space_gb = Some(400);
            },
            "InvalidParameter",
        );
        check(&|r| r.storage_space_gb = Some(99), "InvalidStorage");
        check(&|r| r.storage_space_gb = Some(30_001), "InvalidStorage");
        check(
            &|r| r.storage_spec_code = Some(catalog::HIGH.into()),
            "InvalidSpecCode",
        );
        check(
            &|r| r.access_user = Some("9lives".into()),
            "InvalidUsername",
        );
        check(&|r| r.access_user = None, "InvalidUsername");
        check(&|r| r.password = Some("onlyletters".into()), "WeakPassword");
        check(&|r| r.ssl_enable = Some(true), "NotSupported");
        let mut r = rabbit();
        r.product_id = Some("c6.4u8g.cluster".into());
        r.broker_num = Some(7);
        r.storage_space_gb = Some(700);
        let v = validate_create(&r, CreateShape::Flavor, &z).unwrap();
        assert_eq!(v.doc.specification, "4vCPUs 8GB * 7");
        // V1 (6.1.1.1): old-flavor products, the old disk codes, no '_' in names or users.
        let mut r = rabbit();
        r.product_id = Some("00300-30211-0--0".into());
        r.storage_space_gb = Some(500);
        r.storage_spec_code = Some(catalog::ULTRA.into());
        r.engine_version = Some("3.x.x".into());
        let v = validate_create(&r, CreateShape::Bandwidth, &z).unwrap();
        assert_eq!(
            (v.doc.broker_num, v.doc.resource_spec_code.as_str()),
            (5, "dms.instance.rabbitmq.cluster.c3.4u8g.5")
        );
        assert_eq!(v.doc.engine_version, "3.8.35");
        r.storage_space_gb = Some(400);
        assert!(matches!(
            validate_create(&r, CreateShape::Bandwidth, &z),
            Err(ControlError::InvalidStorage(_))
        ));
        r.storage_space_gb = Some(500);
        r.access_user = Some("v1_user".into());
        assert!(matches!(
            validate_create(&r, CreateShape::Bandwidth, &z),
            Err(ControlError::InvalidUsername(_))
        ));
        assert!(check_reset_password("-Abcdef1").is_err());
        assert!(check_reset_password("passw0rd").is_err());
        assert!(check_reset_password("Passw0rd").is_ok());
    }

    #[test]
    fn flavors_size_partitions_by_brokers() {
        let mut r = base();
        r.product_id = Some("c6.2u4g.cluster".into());
        r.specification = None;
        r.kafka.partition_num = None;
        r.broker_num = Some(3);
        r.storage_space_gb = Some(300);
        r.storage_spec_code = Some(catalog::ULTRA_V2.into());
        let v = validate_create(&r, CreateShape::Flavor, &zones()).unwrap();
        assert_eq!(v.doc.partition_num, 750);
        r.broker_num = Some(2);
        assert!(validate_create(&r, CreateShape::Flavor, &zones()).is_err());
    }

    #[test]
    fn topic_rules_differ_between_the_generations() {
        let (v1, v2) = (TopicRules::SEED_000, TopicRules::V2);
        assert!(v1.check_name("orders.eu").is_err());
        assert!(v2.check_name("orders.eu").is_ok());
        assert!(v1.check_name("abc").is_err() && v2.check_name("abc").is_ok());
        assert!(v2.check_name("ab").is_err() && v2.check_name("1abc").is_err());
        assert!(
            v2.check_name(&"a".repeat(200)).is_ok() && v2.check_name(&"a".repeat(201)).is_err()
        );
        assert!(v1.check_partitions(21).is_err() && v2.check_partitions(200).is_ok());
        assert!(matches!(
            v2.check_partitions(201),
            Err(ControlError::TopicPartitions(200))
        ));
        assert!(v1.check_retention(169).is_err() && v2.check_retention(720).is_ok());
        assert!(matches!(
            v2.check_retention(0),
            Err(ControlError::TopicRetention(720))
        ));
    }

    #[test]
    fn passwords_need_three_classes() {
        assert!(check_password("p", "Abcdefg1").is_ok());
        assert!(check_password("p", "abcdefg1").is_err());
        assert!(check_password("p", "Ab1!").is_err());
    }
}
