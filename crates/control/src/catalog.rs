//! What can be ordered: Kafka product specifications, availability zones and maintenance
//! windows.
//!
//! Two product families exist. The seed-000 document describes the "old" specifications,
//! chosen by bandwidth (`specification` = `100MB` … `1200MB`), each with a fixed partition
//! limit and a minimum storage. The current SDK (`create_instance_by_engine`,
//! `list_engine_products`) orders by flavor (`product_id` = `c6.2u4g.cluster` …) and
//! `broker_num`. Neither document gives the flavor table, so the flavors below follow the
//! public Huawei Cloud product page's shape (per-broker partition, TPS and storage limits).

/// One bandwidth specification of seed 000 (Table 5-2 and the 6.2 example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandwidthSpec {
    pub specification: &'static str,
    pub product_id: &'static str,
    pub resource_spec_code: &'static str,
    pub partition_num: u32,
    pub min_storage_gb: u32,
    pub max_storage_gb: u32,
    pub storage_spec_codes: &'static [&'static str],
    pub tps: u32,
    pub ecs_flavor_id: &'static str,
}

pub const HIGH: &str = "dms.physical.storage.high";
pub const ULTRA: &str = "dms.physical.storage.ultra";
pub const HIGH_V2: &str = "dms.physical.storage.high.v2";
pub const ULTRA_V2: &str = "dms.physical.storage.ultra.v2";
pub const GENERAL_V2: &str = "dms.physical.storage.general.v2";

/// Brokers of an instance ordered by bandwidth: the documents do not say, and a three-broker
/// cluster is what those specifications ran on.
pub const BANDWIDTH_SPEC_BROKERS: u32 = 3;

pub const BANDWIDTH_SPECS: &[BandwidthSpec] = &[
    BandwidthSpec {
        specification: "100MB",
        product_id: "00300-30308-0--0",
        resource_spec_code: "dms.instance.kafka.cluster.c3.mini",
        partition_num: 300,
        min_storage_gb: 600,
        max_storage_gb: 90_000,
        storage_spec_codes: &[HIGH, ULTRA],
        tps: 50_000,
        ecs_flavor_id: "c4.large.2",
    },
    BandwidthSpec {
        specification: "300MB",
        product_id: "00300-30310-0--0",
        resource_spec_code: "dms.instance.kafka.cluster.c3.small.2",
        partition_num: 900,
        min_storage_gb: 1200,
        max_storage_gb: 90_000,
        storage_spec_codes: &[HIGH, ULTRA],
        tps: 100_000,
        ecs_flavor_id: "c4.xlarge.2",
    },
    BandwidthSpec {
        specification: "600MB",
        product_id: "00300-30312-0--0",
        resource_spec_code: "dms.instance.kafka.cluster.c3.middle.2",
        partition_num: 1800,
        min_storage_gb: 2400,
        max_storage_gb: 90_000,
        storage_spec_codes: &[ULTRA],
        tps: 200_000,
        ecs_flavor_id: "c4.2xlarge.2",
    },
    BandwidthSpec {
        specification: "1200MB",
        product_id: "00300-30314-0--0",
        resource_spec_code: "dms.instance.kafka.cluster.c3.high.2",
        partition_num: 1800,
        min_storage_gb: 4800,
        max_storage_gb: 90_000,
        storage_spec_codes: &[ULTRA],
        tps: 300_000,
        ecs_flavor_id: "c4.2xlarge.2",
    },
];

pub fn bandwidth_spec(specification: &str) -> Option<&'static BandwidthSpec> {
    BANDWIDTH_SPECS
        .iter()
        .find(|s| s.specification == specification)
}

pub fn bandwidth_spec_by_product(product_id: &str) -> Option<&'static BandwidthSpec> {
    BANDWIDTH_SPECS.iter().find(|s| s.product_id == product_id)
}

/// One flavor of the current product family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flavor {
    pub product_id: &'static str,
    pub ecs_flavor_id: &'static str,
    pub max_partition_per_broker: u32,
    pub max_tps_per_broker: u32,
    pub max_bandwidth_per_broker_mb: u32,
    pub max_consumer_per_broker: u32,
    pub min_broker: u32,
    pub max_broker: u32,
    pub min_storage_per_node_gb: u32,
    pub max_storage_per_node_gb: u32,
}

const fn new_flavor(
    product_id: &'static str,
    ecs_flavor_id: &'static str,
    partitions: u32,
    tps: u32,
    bandwidth: u32,
    consumers: u32,
) -> Flavor {
    Flavor {
        product_id,
        ecs_flavor_id,
        max_partition_per_broker: partitions,
        max_tps_per_broker: tps,
        max_bandwidth_per_broker_mb: bandwidth,
        max_consumer_per_broker: consumers,
        min_broker: 3,
        max_broker: 30,
        min_storage_per_node_gb: 100,
        max_storage_per_node_gb: 10_000,
    }
}

pub const FLAVORS: &[Flavor] = &[
    new_flavor("c6.2u4g.cluster", "c6.large.2", 250, 30_000, 100, 4000),
    new_flavor("c6.4u8g.cluster", "c6.xlarge.2", 500, 100_000, 200, 4000),
    new_flavor("c6.8u16g.cluster", "c6.2xlarge.2", 1000, 150_000, 375, 4000),
    new_flavor(
        "c6.12u24g.cluster",
        "c6.3xlarge.2",
        1500,
        200_000,
        625,
        4000,
    ),
    new_flavor(
        "c6.16u32g.cluster",
        "c6.4xlarge.2",
        2000,
        250_000,
        750,
        4000,
    ),
];

pub const FLAVOR_STORAGE_SPEC_CODES: &[&str] = &[HIGH_V2, ULTRA_V2, GENERAL_V2];

pub fn flavor(product_id: &str) -> Option<&'static Flavor> {
    FLAVORS.iter().find(|f| f.product_id == product_id)
}

/// One RabbitMQ product of seed 002 (4.6.3 "Querying Product Specifications" and the
/// 4.3.1 example). Their ids overlap Kafka's flavors (`c6.4u8g.cluster`), so they are a
/// table of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RabbitmqProduct {
    pub product_id: &'static str,
    /// `single` or `cluster`.
    pub kind: &'static str,
    pub ecs_flavor_id: &'static str,
    pub alias: &'static str,
    /// What `show_instance` calls the VM specification (seed 002 example: "2vCPUs 4GB").
    pub vm: &'static str,
    pub max_connection_per_broker: u32,
    pub max_queue_per_broker: u32,
    pub min_broker: u32,
    pub max_broker: u32,
    pub broker_step: u32,
    pub min_storage_per_node_gb: u32,
    pub max_storage_per_node_gb: u32,
}

/// The products seed 002 gives figures for. c6.8u16g.cluster is only named (4.3.2), with no
/// figures, so it is not offered. `min_storage_per_node` is "200" in 4.6.3 and "100" in
/// 4.3.1 for c6.2u4g.single; the create rule ("100 GB x number of nodes") says 100.
pub const RABBITMQ_PRODUCTS: &[RabbitmqProduct] = &[
    RabbitmqProduct {
        product_id: "c6.2u4g.single",
        kind: "single",
        ecs_flavor_id: "c6.large.2",
        alias: "rabbitmq.2u4g.single",
        vm: "2vCPUs 4GB",
        max_connection_per_broker: 2000,
        max_queue_per_broker: 100,
        min_broker: 1,
        max_broker: 1,
        broker_step: 0,
        min_storage_per_node_gb: 100,
        max_storage_per_node_gb: 30_000,
    },
    RabbitmqProduct {
        product_id: "c6.4u8g.single",
        kind: "single",
        ecs_flavor_id: "c6.xlarge.2",
        alias: "rabbitmq.4u8g.single",
        vm: "4vCPUs 8GB",
        max_connection_per_broker: 3000,
        max_queue_per_broker: 200,
        min_broker: 1,
        max_broker: 1,
        broker_step: 0,
        min_storage_per_node_gb: 100,
        max_storage_per_node_gb: 30_000,
    },
    RabbitmqProduct {
        product_id: "c6.4u8g.cluster",
        kind: "cluster",
        ecs_flavor_id: "c6.xlarge.2",
        alias: "rabbitmq.4u8g.cluster",
        vm: "4vCPUs 8GB",
        max_connection_per_broker: 4500,
        max_queue_per_broker: 400,
        min_broker: 3,
        max_broker: 7,
        broker_step: 2,
        min_storage_per_node_gb: 100,
        max_storage_per_node_gb: 30_000,
    },
];

pub fn rabbitmq_product(product_id: &str) -> Option<&'static RabbitmqProduct> {
    RABBITMQ_PRODUCTS
        .iter()
        .find(|p| p.product_id == product_id)
}

/// One old-flavor RabbitMQ product of seed 002's V1 API (6.1.2.2; the full list is the
/// document's product example): a VM size and, for clusters, a node count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RabbitmqV1Product {
    pub hourly_id: &'static str,
    /// The document's example is cut off before the 16 vCPU clusters' monthly ids.
    pub monthly_id: Option<&'static str>,
    pub kind: &'static str,
    pub vm: &'static str,
    pub nodes: u32,
    pub spec_code: &'static str,
}

impl RabbitmqV1Product {
    /// Its id under one billing mode (monthly: none where the document has none).
    pub fn id(&self, monthly: bool) -> Option<&'static str> {
        if monthly {
            self.monthly_id
        } else {
            Some(self.hourly_id)
        }
    }
}

const fn v1(
    hourly_id: &'static str,
    monthly_id: Option<&'static str>,
    kind: &'static str,
    vm: &'static str,
    nodes: u32,
    spec_code: &'static str,
) -> RabbitmqV1Product {
    RabbitmqV1Product {
        hourly_id,
        monthly_id,
        kind,
        vm,
        nodes,
        spec_code,
    }
}

pub const RABBITMQ_V1_PRODUCTS: &[RabbitmqV1Product] = &[
    v1(
        "00300-30109-0--0",
        Some("00300-30110-0--0"),
        "single",
        "2vCPUs 4GB",
        1,
        "dms.instance.rabbitmq.single.c3.2u4g",
    ),
    v1(
        "00300-30111-0--0",
        Some("00300-30112-0--0"),
        "single",
        "4vCPUs 8GB",
        1,
        "dms.instance.rabbitmq.single.c3.4u8g",
    ),
    v1(
        "00300-30113-0--0",
        Some("00300-30114-0--0"),
        "single",
        "8vCPUs 16GB",
        1,
        "dms.instance.rabbitmq.single.c3.8u16g",
    ),
    v1(
        "00300-30115-0--0",
        Some("00300-30116-0--0"),
        "single",
        "16vCPUs 32GB",
        1,
        "dms.instance.rabbitmq.single.c3.16u32g",
    ),
    v1(
        "00300-30209-0--0",
        Some("00300-30210-0--0"),
        "cluster",
        "4vCPUs 8GB",
        3,
        "dms.instance.rabbitmq.cluster.c3.4u8g.3",
    ),
    v1(
        "00300-30211-0--0",
        Some("00300-30212-0--0"),
        "cluster",
        "4vCPUs 8GB",
        5,
        "dms.instance.rabbitmq.cluster.c3.4u8g.5",
    ),
    v1(
        "00300-30213-0--0",
        Some("00300-30214-0--0"),
        "cluster",
        "4vCPUs 8GB",
        7,
        "dms.instance.rabbitmq.cluster.c3.4u8g.7",
    ),
    v1(
        "00300-30215-0--0",
        Some("00300-30216-0--0"),
        "cluster",
        "8vCPUs 16GB",
        3,
        "dms.instance.rabbitmq.cluster.c3.8u16g.3",
    ),
    v1(
        "00300-30217-0--0",
        Some("00300-30218-0--0"),
        "cluster",
        "8vCPUs 16GB",
        5,
        "dms.instance.rabbitmq.cluster.c3.8u16g.5",
    ),
    v1(
        "00300-30219-0--0",
        Some("00300-30220-0--0"),
        "cluster",
        "8vCPUs 16GB",
        7,
        "dms.instance.rabbitmq.cluster.c3.8u16g.7",
    ),
    v1(
        "00300-30221-0--0",
        None,
        "cluster",
        "16vCPUs 32GB",
        3,
        "dms.instance.rabbitmq.cluster.c3.16u32g.3",
    ),
    v1(
        "00300-30223-0--0",
        None,
        "cluster",
        "16vCPUs 32GB",
        5,
        "dms.instance.rabbitmq.cluster.c3.16u32g.5",
    ),
    v1(
        "00300-30225-0--0",
        None,
        "cluster",
        "16vCPUs 32GB",
        7,
        "dms.instance.rabbitmq.cluster.c3.16u32g.7",
    ),
];

/// An old-flavor product by its hourly or monthly id.
pub fn rabbitmq_v1_product(product_id: &str) -> Option<&'static RabbitmqV1Product> {
    RABBITMQ_V1_PRODUCTS
        .iter()
        .find(|p| p.hourly_id == product_id || p.monthly_id == Some(product_id))
}

/// Disk types of the V1 create (Table 6-2).
pub const RABBITMQ_V1_STORAGE_SPEC_CODES: &[&str] = &["dms.physical.storage.normal", HIGH, ULTRA];

/// The one RabbitMQ version seed 002's V2 API accepts ("The RabbitMQ version can be 3.8.35").
pub const RABBITMQ_ENGINE_VERSIONS: &[&str] = &["3.8.35"];

/// Disk types of seed 002's create (Table 4-2): the two `.dss` ones are for dedicated
/// clouds and accepted as written.
pub const RABBITMQ_STORAGE_SPEC_CODES: &[&str] = &[
    HIGH_V2,
    ULTRA_V2,
    "dms.physical.storage.high.dss.v2",
    "dms.physical.storage.ultra.dss.v2",
];

/// Storage of a RabbitMQ instance may not exceed this whatever its node count (Table 4-2).
pub const RABBITMQ_MAX_STORAGE_GB: u64 = 90_000;

/// The plug-ins a DMS for RabbitMQ 3.8.35 instance lists, with their versions (seed 002
/// 4.2.2's example names amqp1_0, delayed_message_exchange 3.8.0 and federation; 4.2.3 names
/// shovel; the rest are those RabbitMQ 3.8.35 ships that DMS exposes). Only the ones the
/// embedded broker implements can be enabled; see `ControlPlane::update_plugins`.
pub const RABBITMQ_PLUGINS: &[(&str, &str)] = &[
    ("rabbitmq_amqp1_0", "3.8.35"),
    ("rabbitmq_consistent_hash_exchange", "3.8.35"),
    ("rabbitmq_delayed_message_exchange", "3.8.0"),
    ("rabbitmq_federation", "3.8.35"),
    ("rabbitmq_federation_management", "3.8.35"),
    ("rabbitmq_management", "3.8.35"),
    ("rabbitmq_mqtt", "3.8.35"),
    ("rabbitmq_sharding", "3.8.35"),
    ("rabbitmq_shovel", "3.8.35"),
    ("rabbitmq_shovel_management", "3.8.35"),
    ("rabbitmq_stomp", "3.8.35"),
    ("rabbitmq_tracing", "3.8.35"),
    ("rabbitmq_web_stomp", "3.8.35"),
];

/// The plug-ins of [`RABBITMQ_PLUGINS`] the embedded broker implements. The management
/// plug-in is always on (every instance has its management API), as in DMS.
pub const RABBITMQ_IMPLEMENTED_PLUGINS: &[&str] = &[
    "rabbitmq_consistent_hash_exchange",
    "rabbitmq_delayed_message_exchange",
    "rabbitmq_management",
];
pub const RABBITMQ_MANAGEMENT_PLUGIN: &str = "rabbitmq_management";

/// One RocketMQ flavor of seed 001 (5.1.1 `product_id`): how many topics and consumer
/// groups each broker may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RocketmqProduct {
    pub product_id: &'static str,
    pub ecs_flavor_id: &'static str,
    pub max_topics_per_broker: u32,
    pub max_groups_per_broker: u32,
}

/// Seed 001 5.1.1's four flavors and their per-broker topic and group limits.
pub const ROCKETMQ_PRODUCTS: &[RocketmqProduct] = &[
    RocketmqProduct {
        product_id: "c6.4u8g.cluster",
        ecs_flavor_id: "c6.xlarge.2",
        max_topics_per_broker: 4000,
        max_groups_per_broker: 4000,
    },
    RocketmqProduct {
        product_id: "c6.8u16g.cluster",
        ecs_flavor_id: "c6.2xlarge.2",
        max_topics_per_broker: 8000,
        max_groups_per_broker: 8000,
    },
    RocketmqProduct {
        product_id: "c6.12u24g.cluster",
        ecs_flavor_id: "c6.3xlarge.2",
        max_topics_per_broker: 12000,
        max_groups_per_broker: 12000,
    },
    RocketmqProduct {
        product_id: "c6.16u32g.cluster",
        ecs_flavor_id: "c6.4xlarge.2",
        max_topics_per_broker: 16000,
        max_groups_per_broker: 16000,
    },
];

pub fn rocketmq_product(product_id: &str) -> Option<&'static RocketmqProduct> {
    ROCKETMQ_PRODUCTS
        .iter()
        .find(|p| p.product_id == product_id)
}

/// The one version seed 001 creates (`engine_version` "Value: 4.8.0").
pub const ROCKETMQ_ENGINE_VERSIONS: &[&str] = &["4.8.0"];
/// Seed 001 5.1.1 `storage_spec_code`.
pub const ROCKETMQ_STORAGE_SPEC_CODES: &[&str] = &[HIGH_V2, ULTRA_V2];
/// Broker groups per instance: the Huawei products offer 1 to 10 (seed 001 gives only
/// "Default: 1").
pub const ROCKETMQ_MAX_BROKERS: u32 = 10;
/// Storage per broker: seed 001 gives no range (its examples order 600 GB for one broker);
/// these are the console's bounds for 4.8.0 instances.
pub const ROCKETMQ_MIN_STORAGE_PER_BROKER_GB: u64 = 300;
pub const ROCKETMQ_MAX_STORAGE_PER_BROKER_GB: u64 = 60_000;

/// One parameter of a RocketMQ instance's configuration (the SDK's `show_rocket_mq_configs`):
/// Apache broker properties that OpenDMS's brokers take without a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RocketmqConfigParam {
    pub name: &'static str,
    pub default: &'static str,
    /// `min~max` for numbers, `true,false` for booleans.
    pub valid_values: &'static str,
    /// `number` or `boolean`.
    pub value_type: &'static str,
    pub min: u64,
    pub max: u64,
}

pub const ROCKETMQ_CONFIGS: &[RocketmqConfigParam] = &[
    // Apache's default retention (72 h), up to 30 days.
    RocketmqConfigParam {
        name: "fileReservedTime",
        default: "72",
        valid_values: "1~720",
        value_type: "number",
        min: 1,
        max: 720,
    },
    // Apache's 4 MiB limit is also the largest a client may set.
    RocketmqConfigParam {
        name: "maxMessageSize",
        default: "4194304",
        valid_values: "1~4194304",
        value_type: "number",
        min: 1,
        max: 4_194_304,
    },
    RocketmqConfigParam {
        name: "autoCreateTopicEnable",
        default: "true",
        valid_values: "true,false",
        value_type: "boolean",
        min: 0,
        max: 1,
    },
    RocketmqConfigParam {
        name: "autoCreateSubscriptionGroup",
        default: "true",
        valid_values: "true,false",
        value_type: "boolean",
        min: 0,
        max: 1,
    },
];

/// Engine versions an instance may be created with. 1.1.0 and 2.3.0 are seed 000's; the
/// current SDK's products list newer ones.
pub const ENGINE_VERSIONS: &[&str] = &["1.1.0", "2.3.0", "2.7", "3.x"];

/// One availability zone of the region this server pretends to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    pub code: String,
    pub name: String,
}

/// The zones of the configured region: three, so that both documented layouts (1 AZ or at
/// least 3) can be ordered. Ids are derived from the region name so they stay the same
/// across restarts and machines.
pub fn zones(region: &str) -> Vec<Zone> {
    (1..=3)
        .map(|i| {
            let code = format!("{region}{}", (b'a' + i as u8 - 1) as char);
            Zone {
                id: stable_hex_id(&code),
                name: format!("AZ{i}"),
                code,
            }
        })
        .collect()
}

/// A 32-hex-character id that depends only on `seed` (FNV-1a, widened): AZ ids look like
/// Huawei's without being random.
pub fn stable_hex_id(seed: &str) -> String {
    let mut out = String::with_capacity(32);
    for salt in 0u64..2 {
        let mut h: u64 = 0xcbf29ce484222325 ^ salt;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// One maintenance window (6.3): four hours, starting at one of six fixed times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintainWindow {
    pub seq: u32,
    pub begin: &'static str,
    pub end: &'static str,
    pub default: bool,
}

pub const MAINTAIN_WINDOWS: &[MaintainWindow] = &[
    MaintainWindow {
        seq: 1,
        begin: "22:00:00",
        end: "02:00:00",
        default: false,
    },
    MaintainWindow {
        seq: 2,
        begin: "02:00:00",
        end: "06:00:00",
        default: true,
    },
    MaintainWindow {
        seq: 3,
        begin: "06:00:00",
        end: "10:00:00",
        default: false,
    },
    MaintainWindow {
        seq: 4,
        begin: "10:00:00",
        end: "14:00:00",
        default: false,
    },
    MaintainWindow {
        seq: 5,
        begin: "14:00:00",
        end: "18:00:00",
        default: false,
    },
    MaintainWindow {
        seq: 6,
        begin: "18:00:00",
        end: "22:00:00",
        default: false,
    },
];

/// Finds the window a begin/end pair names. Seed 000 writes `HH:mm:ss`, seed 003 and the
/// 5.6 example `HH:mm`; both are accepted and the window is stored as `HH:mm:ss`.
pub fn maintain_window(begin: &str, end: &str) -> Option<&'static MaintainWindow> {
    let norm = |t: &str| -> Option<String> {
        match t.len() {
            5 => Some(format!("{t}:00")),
            8 => Some(t.to_string()),
            _ => None,
        }
    };
    let (b, e) = (norm(begin)?, norm(end)?);
    MAINTAIN_WINDOWS.iter().find(|w| w.begin == b && w.end == e)
}

pub fn default_maintain_window() -> &'static MaintainWindow {
    &MAINTAIN_WINDOWS[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_accept_both_time_formats() {
        assert_eq!(maintain_window("22:00", "02:00").map(|w| w.seq), Some(1));
        assert_eq!(
            maintain_window("02:00:00", "06:00:00").map(|w| w.seq),
            Some(2)
        );
        assert!(maintain_window("02:00:00", "07:00:00").is_none());
        assert!(maintain_window("03:00:00", "07:00:00").is_none());
    }

    #[test]
    fn zone_ids_are_stable_and_distinct() {
        let a = zones("cn-north-4");
        let b = zones("cn-north-4");
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert_ne!(a[0].id, a[1].id);
        assert!(a.iter().all(|z| z.id.len() == 32));
    }
}
