//! Admin and lookup requests: queue offsets (min, max, by time, earliest store time),
//! VIEW_MESSAGE_BY_ID, topics and subscription groups (create, delete, list), and the stats
//! `mqadmin` and consoles read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{json, Value};
use tracing::info;

use super::header::{field, Header};
use super::send::refuse;
use super::topics::{check_topic_name, system, GroupConfig, TopicConfig};
use super::{now_ms, Broker, QueueStore};
use crate::message::{stored_timestamp, PhysicalOffset};
use crate::remoting::{codes, RemotingCommand};

/// `Version.V4_8_0.ordinal()` and its name: what this broker says it is.
pub const BROKER_VERSION: i32 = 358;
pub const BROKER_VERSION_DESC: &str = "V4_8_0";

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, codes::SUCCESS, None)
}

fn with_body(req: &RemotingCommand, body: String) -> RemotingCommand {
    let mut resp = ok(req);
    resp.body = body.into_bytes().into();
    resp
}

/// A `MessageQueue` as fastjson writes it when it is a map key (`{"brokerName":…}` unquoted
/// as a key, which Java admin tools read back).
fn mq_key(topic: &str, broker: &str, queue_id: i32) -> String {
    format!(
        "{{\"brokerName\":{},\"queueId\":{queue_id},\"topic\":{}}}",
        json!(broker),
        json!(topic)
    )
}

impl Broker {
    fn queue_offsets(&self, topic: &str, queue_id: i32) -> (i64, i64) {
        self.tables
            .topic(topic)
            .map_or((0, 0), |t| self.store.offsets(t.serial, queue_id))
    }

    pub(super) fn max_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic"));
        let queue_id = field!(req, req.int("queueId")) as i32;
        let mut resp = ok(req);
        resp.set_ext("offset", self.queue_offsets(topic, queue_id).1.to_string());
        resp
    }

    pub(super) fn min_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic"));
        let queue_id = field!(req, req.int("queueId")) as i32;
        let mut resp = ok(req);
        resp.set_ext("offset", self.queue_offsets(topic, queue_id).0.to_string());
        resp
    }

    /// The first offset whose store time is at or after the timestamp; the max offset when
    /// every message is older.
    pub(super) async fn search_offset(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic"));
        let queue_id = field!(req, req.int("queueId")) as i32;
        let ts = field!(req, req.int("timestamp"));
        let offset = self.offset_for_time(topic, queue_id, ts).await;
        let mut resp = ok(req);
        resp.set_ext("offset", offset.to_string());
        resp
    }

    pub(crate) async fn offset_for_time(
        self: &Arc<Self>,
        topic: &str,
        queue_id: i32,
        ts: i64,
    ) -> i64 {
        let Some(queue) = self
            .tables
            .topic(topic)
            .and_then(|t| self.store.queue(t.serial, queue_id))
        else {
            return 0;
        };
        let found = tokio::task::spawn_blocking(move || {
            let max = queue.max_offset();
            let Ok(Some((batch_start, _))) = queue.log.offset_for_timestamp(ts) else {
                return max;
            };
            // The log finds the batch; the message is found inside it.
            let mut at = batch_start;
            while at < max {
                let Ok(msgs) = QueueStore::read(&queue, at, 64, 256 * 1024) else {
                    return max;
                };
                if msgs.is_empty() {
                    return max;
                }
                for m in &msgs {
                    if stored_timestamp(&m.bytes).is_some_and(|t| t >= ts) {
                        return m.queue_offset;
                    }
                    at = m.queue_offset + 1;
                }
            }
            max
        })
        .await;
        found.unwrap_or(0)
    }

    pub(super) async fn earliest_store_time(
        self: &Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let topic = field!(req, req.required("topic"));
        let queue_id = field!(req, req.int("queueId")) as i32;
        let queue = self
            .tables
            .topic(topic)
            .and_then(|t| self.store.queue(t.serial, queue_id));
        let ts = match queue {
            Some(q) => tokio::task::spawn_blocking(move || {
                QueueStore::read_one(&q, q.min_offset())
                    .ok()
                    .flatten()
                    .and_then(|m| stored_timestamp(&m.bytes))
            })
            .await
            .ok()
            .flatten(),
            None => None,
        };
        let mut resp = ok(req);
        resp.set_ext("timestamp", ts.unwrap_or(-1).to_string());
        resp
    }

    pub(super) async fn view_message_by_id(
        self: &Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let offset = field!(req, req.int("offset"));
        match self.stored_bytes_at(offset).await {
            Some(bytes) => {
                let mut resp = ok(req);
                resp.body = bytes.into();
                resp
            }
            None => refuse(
                ok(req),
                codes::SYSTEM_ERROR,
                &format!("can not find message by the offset, {offset}"),
            ),
        }
    }

    /// The stored bytes (offsets filled) a physical offset names.
    pub(crate) async fn stored_bytes_at(self: &Arc<Self>, physical: i64) -> Option<Vec<u8>> {
        let po = PhysicalOffset::decode(physical);
        let topic = self.tables.topic_by_serial(po.topic_serial)?;
        let queue = self.store.queue(topic.serial, po.queue_id as i32)?;
        // The id keeps the low 32 bits of the queue offset: find the one it names.
        let max = queue.max_offset();
        let mut offset = (max & !0xffff_ffff) | i64::from(po.queue_offset);
        if offset >= max {
            offset -= 1 << 32;
        }
        tokio::task::spawn_blocking(move || QueueStore::read_one(&queue, offset))
            .await
            .ok()?
            .ok()?
            .map(|m| m.bytes)
    }

    pub(super) async fn update_topic(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic")).to_string();
        let read = field!(req, req.int("readQueueNums")) as i32;
        let write = field!(req, req.int("writeQueueNums")) as i32;
        let perm = field!(req, req.int("perm")) as i32;
        let sys_flag = field!(req, req.opt_int("topicSysFlag")).unwrap_or(0) as i32;
        let filter_type = req.ext("topicFilterType");
        if !matches!(filter_type, Some("SINGLE_TAG" | "MULTI_TAG")) {
            // CreateTopicRequestHeader.checkFields, before anything else is looked at.
            return refuse(
                ok(req),
                codes::SYSTEM_ERROR,
                &format!(
                    "org.apache.rocketmq.remoting.exception.RemotingCommandException: topicFilterType = [{}] value invalid",
                    filter_type.unwrap_or("null")
                ),
            );
        }
        if let Err(remark) = check_topic_name(&topic) {
            return refuse(ok(req), codes::SYSTEM_ERROR, remark);
        }
        if self.is_system_topic(&topic) {
            return refuse(
                ok(req),
                codes::SYSTEM_ERROR,
                &format!("The topic[{topic}] is conflict with system topic."),
            );
        }
        if !(0..=i32::try_from(PhysicalOffset::MAX_QUEUE_ID).unwrap_or(2047) + 1).contains(&read)
            || !(0..=2048).contains(&write)
        {
            return refuse(
                ok(req),
                codes::SYSTEM_ERROR,
                "queue numbers must be between 0 and 2048 on OpenDMS",
            );
        }
        let mut config = TopicConfig::new(&topic, read, perm);
        config.write_queue_nums = write;
        config.topic_sys_flag = sys_flag;
        if let Some(t) = filter_type {
            config.topic_filter_type = t.to_string();
        }
        config.order = req.ext_bool("order").unwrap_or(false);
        if self.create_topic(config).await.is_none() {
            return refuse(
                ok(req),
                codes::SYSTEM_ERROR,
                "the topic could not be created",
            );
        }
        info!(topic, read, write, perm, "topic created or updated");
        ok(req)
    }

    pub(super) fn is_system_topic(&self, topic: &str) -> bool {
        matches!(
            topic,
            system::AUTO_CREATE
                | system::SCHEDULE
                | system::BENCHMARK
                | system::TRANS_HALF
                | system::TRACE
                | system::TRANS_OP_HALF
                | system::TRANS_CHECK_MAX_TIME
                | system::SELF_TEST
                | system::OFFSET_MOVED_EVENT
        ) || topic.starts_with("rmq_sys_")
            || topic == self.config.cluster
            || topic == self.config.broker_name
    }

    pub(super) async fn delete_topic(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic")).to_string();
        self.remove_topic(&topic).await;
        ok(req)
    }

    pub(super) fn all_topic_config(&self, req: &RemotingCommand) -> RemotingCommand {
        with_body(req, self.tables.topic_table_json().to_string())
    }

    pub(super) async fn update_group(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let config: GroupConfig = match serde_json::from_slice(&req.body) {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    ok(req),
                    codes::SYSTEM_ERROR,
                    &format!("the subscription group body cannot be read: {e}"),
                )
            }
        };
        if let Err(remark) = check_topic_name(&config.group_name) {
            return refuse(
                ok(req),
                codes::SYSTEM_ERROR,
                &remark.replace("topic", "group"),
            );
        }
        info!(group = %config.group_name, "subscription group created or updated");
        self.tables.put_group(config);
        self.tables_changed().await;
        ok(req)
    }

    pub(super) async fn delete_group(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("groupName")).to_string();
        if self.tables.remove_group(&group).is_some() {
            if req.ext_bool("removeOffset") != Some(false) {
                self.offsets.remove_group(&group);
            }
            self.tables_changed().await;
            info!(group, "subscription group deleted");
        }
        ok(req)
    }

    pub(super) fn all_group_config(&self, req: &RemotingCommand) -> RemotingCommand {
        with_body(req, self.tables.group_table_json().to_string())
    }

    /// TopicStatsTable: min and max offset and last store time of each queue.
    pub(super) fn topic_stats(&self, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic"));
        let Some(t) = self.tables.topic(topic) else {
            return refuse(
                ok(req),
                codes::TOPIC_NOT_EXIST,
                &format!("topic[{topic}] not exist"),
            );
        };
        let mut table = String::from("{");
        for q in 0..t.write_queue_nums {
            let (min, max, last) = match self.store.queue(t.serial, q) {
                Some(queue) => (
                    queue.min_offset(),
                    queue.max_offset(),
                    queue.log.last_append_ms(),
                ),
                None => (0, 0, 0),
            };
            if q > 0 {
                table.push(',');
            }
            let _ = write!(
                table,
                "{}:{{\"lastUpdateTimestamp\":{last},\"maxOffset\":{max},\"minOffset\":{min}}}",
                mq_key(topic, self.name(), q)
            );
        }
        table.push('}');
        with_body(req, format!("{{\"offsetTable\":{table}}}"))
    }

    /// ConsumeStats: broker and consumer offsets of a group on one topic or all it consumes,
    /// the store time of the last message it consumed in each queue, and its rate.
    pub(super) async fn consume_stats(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup")).to_string();
        let topics: Vec<String> = match req.ext("topic").filter(|t| !t.is_empty()) {
            Some(t) => vec![t.to_string()],
            None => self.offsets.topics_of_group(&group),
        };
        let mut table = String::from("{");
        let mut first = true;
        for topic in topics {
            let Some(lag) = self.consume_lag(&group, &topic).await else {
                continue;
            };
            for q in lag {
                if !first {
                    table.push(',');
                }
                first = false;
                let _ = write!(
                    table,
                    "{}:{{\"brokerOffset\":{},\"consumerOffset\":{},\"lastTimestamp\":{}}}",
                    mq_key(&topic, self.name(), q.queue_id),
                    q.broker_offset,
                    q.consumer_offset,
                    q.last_consumed_ms
                );
            }
        }
        table.push('}');
        let tps = self.stats.group_tps(&group);
        with_body(
            req,
            format!("{{\"consumeTps\":{tps:?},\"offsetTable\":{table}}}"),
        )
    }

    pub(super) fn runtime_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let mut table: BTreeMap<&str, String> = BTreeMap::new();
        table.insert("brokerVersionDesc", BROKER_VERSION_DESC.into());
        table.insert("brokerVersion", BROKER_VERSION.to_string());
        table.insert(
            "bootTimestamp",
            (now_ms() - self.started.elapsed().as_millis() as i64).to_string(),
        );
        table.insert(
            "commitLogDiskUsed",
            self.store.log().used_bytes().to_string(),
        );
        if let Some(q) = self.store.log().config().quota_bytes {
            let ratio = self.store.log().used_bytes() as f64 / q.max(1) as f64;
            table.insert("commitLogDiskRatio", format!("{ratio:.4}"));
        }
        let (put_today, got_today) = self.stats.today();
        table.insert("msgPutTotalTodayNow", put_today.to_string());
        table.insert("msgGetTotalTodayNow", got_today.to_string());
        table.insert("putTps", self.stats.tps_line(false));
        table.insert("getTransferedTps", self.stats.tps_line(true));
        table.insert("brokerName", self.config.broker_name.clone());
        with_body(req, json!({ "table": table }).to_string())
    }

    pub(super) fn all_consumer_offsets(&self, req: &RemotingCommand) -> RemotingCommand {
        let mut table = serde_json::Map::new();
        for g in self.clients.consumer_groups() {
            for topic in self.offsets.topics_of_group(&g) {
                let offsets: BTreeMap<String, i64> = self
                    .offsets
                    .of(&g, &topic)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                table.insert(format!("{topic}@{g}"), json!(offsets));
            }
        }
        with_body(
            req,
            json!({ "offsetTable": Value::Object(table) }).to_string(),
        )
    }

    pub(super) fn all_delay_offsets(&self, req: &RemotingCommand) -> RemotingCommand {
        with_body(req, self.schedule.offsets_json())
    }
}
