//! Figures sampled from the brokers on an interval and kept for a bounded time, for the
//! monitoring APIs (Alibaba CloudMonitor): disk use, bytes in and out per instance and per
//! topic, and unconsumed messages per group and per group and topic.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::debug;

use engine::BrokerAdmin;

use crate::model::{InstanceDoc, InstanceStatus, PartitionLag};
use crate::plane::{now_ms, ControlPlane};

/// (name, description, unit, dimensions) of every metric, as seed 004 §16.1 lists them.
pub const METRICS: &[(&str, &str, &str, &str)] = &[
    (
        "instance_disk_capacity",
        "The disk usage of an instance.",
        "%",
        "instanceId",
    ),
    (
        "instance_message_input",
        "The production traffic of an instance.",
        "bytes/s",
        "instanceId",
    ),
    (
        "instance_message_output",
        "The consumption traffic of an instance.",
        "bytes/s",
        "instanceId",
    ),
    (
        "message_accumulation",
        "The number of unconsumed messages for a consumer group.",
        "Count",
        "instanceId,consumerGroup",
    ),
    (
        "message_accumulation_onetopic",
        "The number of unconsumed messages in the topic for a consumer group.",
        "Count",
        "instanceId,consumerGroup,topic",
    ),
    (
        "topic_message_input",
        "The production traffic of a topic.",
        "bytes/s",
        "instanceId,topic",
    ),
    (
        "topic_message_output",
        "The consumption traffic of a topic.",
        "bytes/s",
        "instanceId,topic",
    ),
];

/// One time series: a metric of one object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub metric: &'static str,
    pub project_id: String,
    pub instance_id: String,
    pub consumer_group: Option<String>,
    pub topic: Option<String>,
}

impl SeriesKey {
    /// The dimension value named `key` (`instanceId`, `consumerGroup`, `topic`).
    pub fn dimension(&self, key: &str) -> Option<&str> {
        match key {
            "instanceId" => Some(&self.instance_id),
            "consumerGroup" => self.consumer_group.as_deref(),
            "topic" => self.topic.as_deref(),
            _ => None,
        }
    }
}

pub struct MetricStore {
    /// Samples older than this are dropped.
    pub retention: Duration,
    /// How often the brokers are sampled.
    pub interval: Duration,
    series: Mutex<HashMap<SeriesKey, VecDeque<(i64, f64)>>>,
}

impl MetricStore {
    pub fn new(interval: Duration, retention: Duration) -> Arc<MetricStore> {
        Arc::new(MetricStore {
            retention,
            interval,
            series: Mutex::new(HashMap::new()),
        })
    }

    fn record(&self, key: SeriesKey, at_ms: i64, value: f64) {
        let keep_from = at_ms - self.retention.as_millis() as i64;
        let mut series = self.series.lock();
        let points = series.entry(key).or_default();
        points.push_back((at_ms, value));
        while points.front().is_some_and(|(t, _)| *t < keep_from) {
            points.pop_front();
        }
    }

    /// Series of `metric` in a project whose dimensions match `filter` (every given key
    /// equal), with their points in `(start, end]`.
    pub fn query(
        &self,
        project_id: &str,
        metric: &str,
        filter: &[(String, String)],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<(SeriesKey, Vec<(i64, f64)>)> {
        let series = self.series.lock();
        let mut out: Vec<(SeriesKey, Vec<(i64, f64)>)> = series
            .iter()
            .filter(|(k, _)| k.metric == metric && k.project_id == project_id)
            .filter(|(k, _)| {
                filter
                    .iter()
                    .all(|(dk, dv)| k.dimension(dk) == Some(dv.as_str()))
            })
            .map(|(k, pts)| {
                let pts: Vec<(i64, f64)> = pts
                    .iter()
                    .copied()
                    .filter(|(t, _)| *t > start_ms && *t <= end_ms)
                    .collect();
                (k.clone(), pts)
            })
            .filter(|(_, pts)| !pts.is_empty())
            .collect();
        out.sort_by(|a, b| {
            (&a.0.instance_id, &a.0.consumer_group, &a.0.topic).cmp(&(
                &b.0.instance_id,
                &b.0.consumer_group,
                &b.0.topic,
            ))
        });
        out
    }

    /// Drops every series of an instance (it was deleted).
    pub fn forget_instance(&self, instance_id: &str) {
        self.series
            .lock()
            .retain(|k, _| k.instance_id != instance_id);
    }
}

#[derive(Default)]
struct Previous {
    at_ms: i64,
    bytes_in: u64,
    bytes_out: u64,
    topics: HashMap<String, (u64, u64)>,
}

/// Samples every running instance every `store.interval`, until the runtime stops.
pub fn spawn_sampler(
    plane: Arc<ControlPlane>,
    store: Arc<MetricStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous: HashMap<String, Previous> = HashMap::new();
        let mut tick = tokio::time::interval(store.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let Ok(records) = plane.store().instances(None).await else {
                continue;
            };
            let mut alive = Vec::new();
            for r in records {
                let status = InstanceStatus::of(&r);
                let Ok(admin) = plane.engines().admin(&r.id) else {
                    continue;
                };
                if status == InstanceStatus::Deleting {
                    continue;
                }
                let doc = InstanceDoc::of(&r).unwrap_or_default();
                alive.push(r.id.clone());
                sample_instance(
                    &store,
                    &mut previous,
                    &r.project_id,
                    &r.id,
                    &doc,
                    admin.as_ref(),
                );
            }
            previous.retain(|id, _| alive.contains(id));
            let ids: Vec<String> = store
                .series
                .lock()
                .keys()
                .map(|k| k.instance_id.clone())
                .collect();
            for id in ids {
                if !alive.contains(&id)
                    && plane.store().instance(&id).await.ok().flatten().is_none()
                {
                    store.forget_instance(&id);
                }
            }
        }
    })
}

fn sample_instance(
    store: &MetricStore,
    previous: &mut HashMap<String, Previous>,
    project_id: &str,
    id: &str,
    doc: &InstanceDoc,
    admin: &dyn BrokerAdmin,
) {
    let now = now_ms();
    let key = |metric: &'static str, group: Option<&str>, topic: Option<&str>| SeriesKey {
        metric,
        project_id: project_id.to_string(),
        instance_id: id.to_string(),
        consumer_group: group.map(str::to_string),
        topic: topic.map(str::to_string),
    };
    let usage = admin.usage();
    let capacity = doc.storage_space_gb.max(1) as f64 * (1u64 << 30) as f64;
    store.record(
        key("instance_disk_capacity", None, None),
        now,
        usage.used_bytes as f64 * 100.0 / capacity,
    );

    let (bytes_in, bytes_out) = (usage.bytes_in, usage.bytes_out);
    let topics = admin.traffic_by_resource();
    // Engines without topics or groups (AMQP) have none of these series.
    let topic_names: Vec<String> = admin
        .topics()
        .map(|ts| ts.into_iter().map(|t| t.name).collect())
        .unwrap_or_default();
    if let Some(prev) = previous.get(id) {
        let secs = ((now - prev.at_ms) as f64 / 1000.0).max(0.001);
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        store.record(
            key("instance_message_input", None, None),
            now,
            rate(bytes_in, prev.bytes_in),
        );
        store.record(
            key("instance_message_output", None, None),
            now,
            rate(bytes_out, prev.bytes_out),
        );
        for name in &topic_names {
            let (i, o) = topics.get(name).copied().unwrap_or((0, 0));
            let (pi, po) = prev.topics.get(name).copied().unwrap_or((0, 0));
            store.record(
                key("topic_message_input", None, Some(name)),
                now,
                rate(i, pi),
            );
            store.record(
                key("topic_message_output", None, Some(name)),
                now,
                rate(o, po),
            );
        }
    }
    previous.insert(
        id.to_string(),
        Previous {
            at_ms: now,
            bytes_in,
            bytes_out,
            topics,
        },
    );

    for group in admin.groups().unwrap_or_default() {
        let Ok(by_topic) = admin.group_lag(&group) else {
            continue;
        };
        let mut total = 0i64;
        for (topic, partitions) in &by_topic {
            let lag: i64 = partitions.iter().map(PartitionLag::lag).sum();
            total += lag;
            store.record(
                key("message_accumulation_onetopic", Some(&group), Some(topic)),
                now,
                lag as f64,
            );
        }
        store.record(
            key("message_accumulation", Some(&group), None),
            now,
            total as f64,
        );
    }
    debug!(instance = id, "metrics sampled");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_filter_by_project_metric_dimensions_and_time() {
        let s = MetricStore::new(Duration::from_secs(1), Duration::from_secs(100));
        let k = |p: &str, i: &str, g: Option<&str>| SeriesKey {
            metric: "message_accumulation",
            project_id: p.into(),
            instance_id: i.into(),
            consumer_group: g.map(str::to_string),
            topic: None,
        };
        s.record(k("p", "i1", Some("g1")), 1_000, 1.0);
        s.record(k("p", "i1", Some("g1")), 2_000, 2.0);
        s.record(k("p", "i1", Some("g2")), 2_000, 5.0);
        s.record(k("q", "i9", Some("g1")), 2_000, 9.0);
        let all = s.query("p", "message_accumulation", &[], 0, 10_000);
        assert_eq!(all.len(), 2);
        let g1 = s.query(
            "p",
            "message_accumulation",
            &[("consumerGroup".into(), "g1".into())],
            1_000,
            2_000,
        );
        assert_eq!(g1.len(), 1);
        assert_eq!(g1[0].1, vec![(2_000, 2.0)], "(start, end]");
        // Retention drops old points.
        s.record(k("p", "i1", Some("g1")), 200_000, 3.0);
        assert_eq!(
            s.query(
                "p",
                "message_accumulation",
                &[("consumerGroup".into(), "g1".into())],
                0,
                i64::MAX
            )[0]
            .1
            .len(),
            1
        );
    }
}
