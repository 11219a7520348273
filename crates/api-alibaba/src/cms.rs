//! CloudMonitor's conventions, which the alikafka façade answers beside its own actions: its
//! actions, its API version and the namespace of Kafka's metrics.

/// The metric namespace of Message Queue for Kafka (the document does not name one; this is
/// Alibaba's).
pub const NAMESPACE: &str = "acs_kafka";

/// CloudMonitor's own API version, accepted beside alikafka's for these actions.
pub const CMS_VERSION: &str = "2019-01-01";

/// The six CloudMonitor actions of seed 004 §16 (`monitor.rs`).
pub fn is_monitor_action(action: &str) -> bool {
    matches!(
        action,
        "DescribeMetricMetaList"
            | "DescribeMetricLast"
            | "DescribeMetricList"
            | "DescribeMetricData"
            | "DescribeMetricTop"
            | "DescribeProjectMeta"
    )
}
