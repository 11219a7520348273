//! Metadata migration into a RocketMQ instance (seed 001 5.6): a document of topics and
//! subscription groups (`mqadmin`'s export of a RocketMQ broker, or a RabbitMQ definitions
//! export) becomes topics and groups in the brokers. A task runs when it is created; its
//! record (in the instance document) says what it did or why it failed.

use std::collections::BTreeMap;

use engine::mq::{NewMqTopic, SubscriptionGroup, TopicPermission};
use serde::Deserialize;
use serde_json::Value;

use super::{now_ms, Caller, ControlPlane};
use crate::error::ControlError;
use crate::model::MigrationTask;
use crate::validation;

/// Seed 001 5.6.1 `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationKind {
    /// A RocketMQ broker's `topicConfigTable` and `subscriptionGroupTable`.
    Rocketmq,
    /// A RabbitMQ definitions export.
    RabbitToRocket,
}

impl MigrationKind {
    pub fn parse(s: &str) -> Result<MigrationKind, ControlError> {
        match s {
            "rocketmq" => Ok(MigrationKind::Rocketmq),
            "rabbitToRocket" => Ok(MigrationKind::RabbitToRocket),
            other => Err(ControlError::InvalidParameter(format!(
                "type {other:?}: must be rocketmq or rabbitToRocket"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            MigrationKind::Rocketmq => "rocketmq",
            MigrationKind::RabbitToRocket => "rabbitToRocket",
        }
    }
}

/// A topic of the document: (name, read queues, write queues, permission).
type TopicRow = (String, i32, i32, TopicPermission);

/// `TopicConfig` as `mqadmin` exports it (camelCase) or as the SDK sends it (snake_case).
#[derive(Deserialize)]
struct TopicConfigDoc {
    #[serde(alias = "topicName")]
    topic_name: Option<String>,
    #[serde(alias = "readQueueNums")]
    read_queue_nums: Option<i32>,
    #[serde(alias = "writeQueueNums")]
    write_queue_nums: Option<i32>,
    perm: Option<i32>,
}

#[derive(Deserialize)]
struct GroupConfigDoc {
    #[serde(alias = "groupName")]
    group_name: Option<String>,
    #[serde(alias = "consumeEnable")]
    consume_enable: Option<bool>,
    #[serde(alias = "consumeBroadcastEnable")]
    consume_broadcast_enable: Option<bool>,
    #[serde(alias = "consumeFromMinEnable")]
    consume_from_min_enable: Option<bool>,
    #[serde(alias = "retryMaxTimes")]
    retry_max_times: Option<i32>,
}

fn permission_of(perm: i32) -> TopicPermission {
    match (perm & 4 != 0, perm & 2 != 0) {
        (true, true) => TopicPermission::All,
        (true, false) => TopicPermission::Sub,
        (false, true) => TopicPermission::Pub,
        (false, false) => TopicPermission::Deny,
    }
}

/// Reads a RocketMQ metadata document: its topics and groups (system ones left out).
fn rocketmq_document(doc: &Value) -> Result<(Vec<TopicRow>, Vec<SubscriptionGroup>), String> {
    let table = |camel: &str, snake: &str| -> BTreeMap<String, Value> {
        doc.get(camel)
            .or_else(|| doc.get(snake))
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let topics_in = table("topicConfigTable", "topic_config_table");
    let groups_in = table("subscriptionGroupTable", "subscription_group_table");
    if topics_in.is_empty() && groups_in.is_empty() {
        return Err("the document has neither topicConfigTable nor subscriptionGroupTable".into());
    }
    let mut topics = Vec::new();
    for (key, v) in topics_in {
        let t: TopicConfigDoc =
            serde_json::from_value(v).map_err(|e| format!("topic {key}: {e}"))?;
        let name = t.topic_name.unwrap_or(key);
        if is_system_name(&name) {
            continue;
        }
        let read = t.read_queue_nums.unwrap_or(8);
        let write = t.write_queue_nums.unwrap_or(read);
        topics.push((name, read, write, permission_of(t.perm.unwrap_or(6))));
    }
    let mut groups = Vec::new();
    for (key, v) in groups_in {
        let g: GroupConfigDoc =
            serde_json::from_value(v).map_err(|e| format!("group {key}: {e}"))?;
        let name = g.group_name.unwrap_or(key);
        if is_system_name(&name) {
            continue;
        }
        groups.push(SubscriptionGroup {
            name,
            consume_enable: g.consume_enable.unwrap_or(true),
            broadcast: g.consume_broadcast_enable.unwrap_or(false),
            retry_max_times: g.retry_max_times.unwrap_or(16),
            consume_from_min: g.consume_from_min_enable.unwrap_or(false),
            brokers: Vec::new(),
        });
    }
    Ok((topics, groups))
}

/// Apache's own topics and groups, which every broker has already.
fn is_system_name(name: &str) -> bool {
    name.starts_with("RMQ_SYS_")
        || name.starts_with("rmq_sys_")
        || name.starts_with("%RETRY%")
        || name.starts_with("%DLQ%")
        || matches!(
            name,
            "TBW102"
                | "SCHEDULE_TOPIC_XXXX"
                | "BenchmarkTest"
                | "SELF_TEST_TOPIC"
                | "OFFSET_MOVED_EVENT"
                | "TRANS_CHECK_MAX_TIME_TOPIC"
                | "TOOLS_CONSUMER"
                | "FILTERSRV_CONSUMER"
                | "__MONITOR_CONSUMER"
                | "CLIENT_INNER_PRODUCER"
                | "SELF_TEST_P_GROUP"
                | "SELF_TEST_C_GROUP"
                | "CID_ONS-HTTP-PROXY"
        )
}

/// A RabbitMQ name as a RocketMQ topic or group name: characters RocketMQ does not allow
/// become `_`, and a vhost other than `/` is a prefix (`vhost_queue`).
fn rocket_name(vhost: &str, name: &str) -> String {
    let raw = if vhost.is_empty() || vhost == "/" {
        name.to_string()
    } else {
        format!("{vhost}_{name}")
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads a RabbitMQ definitions export. Seed 001 does not document the mapping; OpenDMS
/// makes each queue a topic (its messages) and a consumer group of the same name (its
/// consumers), with 8 queues, as a RabbitMQ queue's consumers share its messages.
fn rabbit_document(doc: &Value) -> Result<(Vec<TopicRow>, Vec<SubscriptionGroup>), String> {
    let queues = doc
        .get("queues")
        .and_then(Value::as_array)
        .ok_or("the document has no queues list")?;
    let mut topics = Vec::new();
    let mut groups = Vec::new();
    for q in queues {
        let name = q.get("name").and_then(Value::as_str).unwrap_or("");
        let vhost = q.get("vhost").and_then(Value::as_str).unwrap_or("/");
        if name.is_empty() || name.starts_with("amq.") {
            continue;
        }
        let n = rocket_name(vhost, name);
        topics.push((n.clone(), 8, 8, TopicPermission::All));
        groups.push(SubscriptionGroup {
            name: n,
            consume_enable: true,
            broadcast: false,
            retry_max_times: 16,
            consume_from_min: true,
            brokers: Vec::new(),
        });
    }
    Ok((topics, groups))
}

/// "yyyy-MM-dd HH:mm:ss.SS" (UTC) as seed 001 5.6.2 shows `start_date`.
pub fn start_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000) / 10
    )
}

impl ControlPlane {
    /// 5.6.1: reads the document, creates its topics and groups in every broker, and
    /// records the task as `finished` or `failed` (with why). With `overwrite` false a
    /// topic or group that exists already fails the task before anything is created.
    pub async fn create_migration_task(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
        overwrite: bool,
        kind: MigrationKind,
        document: &[u8],
    ) -> Result<String, ControlError> {
        validation::check_instance_name(name)?;
        let (_, admin) = self.rocketmq_admin(&caller.project_id, id).await?;
        let doc: Value = serde_json::from_slice(document).map_err(|e| {
            ControlError::InvalidParameter(format!("the metadata document is not JSON: {e}"))
        })?;
        let parsed = match kind {
            MigrationKind::Rocketmq => rocketmq_document(&doc),
            MigrationKind::RabbitToRocket => rabbit_document(&doc),
        };
        let started = now_ms();
        let mut task = MigrationTask {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            started_ms: started,
            status: "finished".into(),
            kind: kind.name().to_string(),
            ..MigrationTask::default()
        };
        let outcome: Result<(), String> = async {
            let (topics, groups) = parsed?;
            for (n, ..) in &topics {
                validation::check_mq_name("topic", n).map_err(|e| e.to_string())?;
            }
            for g in &groups {
                validation::check_mq_name("group", &g.name).map_err(|e| e.to_string())?;
            }
            if !overwrite {
                let existing_topics = admin.mq_topics(true).map_err(|e| e.to_string())?;
                if let Some((n, ..)) = topics
                    .iter()
                    .find(|(n, ..)| existing_topics.iter().any(|t| &t.name == n))
                {
                    return Err(format!("topic {n} already exists (overwrite=false)"));
                }
                let existing_groups = admin.subscription_groups().map_err(|e| e.to_string())?;
                if let Some(g) = groups
                    .iter()
                    .find(|g| existing_groups.iter().any(|e| e.name == g.name))
                {
                    return Err(format!(
                        "consumer group {} already exists (overwrite=false)",
                        g.name
                    ));
                }
            }
            for (n, read, write, permission) in topics {
                admin
                    .put_mq_topic(NewMqTopic {
                        name: n.clone(),
                        brokers: Vec::new(),
                        read_queues: read.clamp(1, 2048),
                        write_queues: write.clamp(1, 2048),
                        permission,
                    })
                    .await
                    .map_err(|e| format!("topic {n}: {e}"))?;
                task.topics.push(n);
            }
            for g in groups {
                let n = g.name.clone();
                admin
                    .put_subscription_group(g)
                    .await
                    .map_err(|e| format!("group {n}: {e}"))?;
                task.groups.push(n);
            }
            Ok(())
        }
        .await;
        if let Err(reason) = outcome {
            task.status = "failed".into();
            task.reason = reason;
        }
        tracing::info!(instance = %id, task = %task.id, status = %task.status, topics = task.topics.len(), groups = task.groups.len(), reason = %task.reason, "metadata migration task ran");
        let task_id = task.id.clone();
        self.edit_doc(&caller.project_id, id, move |d| {
            d.migration_tasks.push(task);
            Ok(())
        })
        .await?;
        Ok(task_id)
    }

    /// 5.6.2: the instance's tasks, oldest first.
    pub async fn migration_tasks(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<MigrationTask>, ControlError> {
        let r = self.rocketmq_record(project_id, id).await?;
        Ok(crate::model::InstanceDoc::of(&r)?.migration_tasks)
    }

    /// 5.6.3: forgets tasks (what they created stays); answers the ids that existed.
    pub async fn delete_migration_tasks(
        &self,
        project_id: &str,
        id: &str,
        task_ids: &[String],
    ) -> Result<Vec<String>, ControlError> {
        self.rocketmq_record(project_id, id).await?;
        let mut deleted = Vec::new();
        let ids = task_ids.to_vec();
        let out = &mut deleted;
        self.edit_doc(project_id, id, move |d| {
            d.migration_tasks.retain(|t| {
                let hit = ids.contains(&t.id);
                if hit {
                    out.push(t.id.clone());
                }
                !hit
            });
            Ok(())
        })
        .await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_document_forms_and_skips_system_names() {
        let mqadmin = serde_json::json!({
            "topicConfigTable": {
                "orders": {"topicName": "orders", "readQueueNums": 4, "writeQueueNums": 4, "perm": 6},
                "TBW102": {"topicName": "TBW102", "readQueueNums": 8, "writeQueueNums": 8, "perm": 7},
                "audit": {"topicName": "audit", "readQueueNums": 2, "writeQueueNums": 2, "perm": 4},
            },
            "subscriptionGroupTable": {
                "billing": {"groupName": "billing", "retryMaxTimes": 3, "consumeBroadcastEnable": true},
                "TOOLS_CONSUMER": {"groupName": "TOOLS_CONSUMER"},
            }
        });
        let (topics, groups) = rocketmq_document(&mqadmin).unwrap();
        assert_eq!(topics.len(), 2);
        assert!(topics.contains(&("audit".into(), 2, 2, TopicPermission::Sub)));
        assert!(topics.contains(&("orders".into(), 4, 4, TopicPermission::All)));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].retry_max_times, 3);
        assert!(groups[0].broadcast);

        let sdk = serde_json::json!({"topic_config_table": {"t1": {"topic_name": "t1", "read_queue_nums": 3, "write_queue_nums": 3, "perm": 6}}});
        let (topics, groups) = rocketmq_document(&sdk).unwrap();
        assert_eq!(topics, vec![("t1".into(), 3, 3, TopicPermission::All)]);
        assert!(groups.is_empty());
        assert!(rocketmq_document(&serde_json::json!({"x": 1})).is_err());

        let rabbit = serde_json::json!({"queues": [
            {"name": "test-001", "vhost": "/"}, {"name": "q.a", "vhost": "v1"}, {"name": "amq.gen-x", "vhost": "/"}
        ]});
        let (topics, groups) = rabbit_document(&rabbit).unwrap();
        let names: Vec<&str> = topics.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, vec!["test-001", "v1_q_a"]);
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn start_dates_are_utc_with_hundredths() {
        assert_eq!(start_date(0), "1970-01-01 00:00:00.00");
        assert_eq!(start_date(1_678_736_612_120), "2023-03-13 19:43:32.12");
    }
}
