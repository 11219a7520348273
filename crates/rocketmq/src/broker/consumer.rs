//! What consumers ask a broker besides messages: HEART_BEAT and UNREGISTER_CLIENT,
//! GET_CONSUMER_LIST_BY_GROUP (for rebalancing), QUERY/UPDATE_CONSUMER_OFFSET, and
//! LOCK/UNLOCK_BATCH_MQ for orderly consumers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, info};

use super::clients::HeartbeatData;
use super::header::{field, Header};
use super::send::refuse;
use super::topics::{perm, system, GroupConfig};
use super::Broker;
use crate::remoting::{codes, RemotingCommand};
use crate::server::Connection;

/// Apache's `REBALANCE_LOCK_MAX_LIVE_TIME`: a queue lock not renewed for this long is free.
const LOCK_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageQueueId {
    topic: String,
    broker_name: String,
    queue_id: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBody {
    consumer_group: String,
    client_id: String,
    #[serde(default)]
    mq_set: Vec<MessageQueueId>,
}

/// Which client holds each queue of each group (orderly consumption).
#[derive(Default)]
pub struct QueueLocks {
    held: Mutex<HashMap<(String, MessageQueueId), (String, Instant)>>,
}

impl Broker {
    /// The group's config, created when unknown and the broker allows it.
    pub(super) async fn group_for_consumer(&self, group: &str) -> Option<GroupConfig> {
        if let Some(g) = self.tables.group(group) {
            return Some(g);
        }
        if !self.settings.read().auto_create_groups {
            return None;
        }
        let g = GroupConfig::new(group);
        self.tables.put_group(g.clone());
        info!(group, "subscription group created by a client");
        self.tables_changed().await;
        Some(g)
    }

    pub(super) async fn heartbeat(
        &self,
        conn: &Arc<Connection>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let hb: HeartbeatData = match serde_json::from_slice(&req.body) {
            Ok(h) => h,
            Err(e) => {
                info!(peer = %conn.peer, error = %e, "heartbeat body is not a heartbeat");
                return RemotingCommand::response_to(
                    req,
                    codes::SYSTEM_ERROR,
                    Some(format!("the heartbeat body cannot be read: {e}")),
                );
            }
        };
        for c in &hb.consumer_data_set {
            if let Some(g) = self.group_for_consumer(&c.group_name).await {
                let retry = system::retry_topic(&c.group_name);
                self.ensure_topic(&retry, g.retry_queue_nums.max(1), perm::READ | perm::WRITE)
                    .await;
            }
        }
        let changed = self
            .clients
            .heartbeat(conn, req.language.name(), req.version, &hb);
        for group in changed {
            debug!(group, client = %hb.client_id, "consumer joined");
            self.notify_consumers_changed(&group);
        }
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }

    /// CHECK_CLIENT_CONFIG: a consumer with a SQL92 subscription asks at start whether the
    /// broker can filter with it.
    pub(super) fn check_client_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let mut sub: super::clients::Subscription =
            serde_json::from_value(body["subscriptionData"].clone()).unwrap_or_default();
        let kind = sub.expression_type.clone().unwrap_or_else(|| "TAG".into());
        if kind.eq_ignore_ascii_case("TAG") {
            return RemotingCommand::response_to(req, codes::SUCCESS, None);
        }
        if !self.config.enable_property_filter || !sub.is_sql92() {
            return RemotingCommand::response_to(
                req,
                codes::SYSTEM_ERROR,
                Some(format!(
                    "The broker does not support consumer to filter message by {kind}"
                )),
            );
        }
        match sub.compile() {
            Ok(()) => RemotingCommand::response_to(req, codes::SUCCESS, None),
            Err(e) => RemotingCommand::response_to(
                req,
                codes::SUBSCRIPTION_PARSE_FAILED,
                Some(e.to_string()),
            ),
        }
    }

    pub(super) fn unregister_client(
        &self,
        conn: &Arc<Connection>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let consumer = req.ext("consumerGroup");
        if self
            .clients
            .unregister(conn, req.ext("producerGroup"), consumer)
        {
            if let Some(g) = consumer {
                self.notify_consumers_changed(g);
            }
        }
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }

    pub(super) fn consumer_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup"));
        match self.clients.consumer_group(group) {
            Some(g) if !g.channels.is_empty() => {
                let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
                resp.body = json!({ "consumerIdList": g.client_ids() })
                    .to_string()
                    .into_bytes()
                    .into();
                resp
            }
            _ => RemotingCommand::response_to(
                req,
                codes::SYSTEM_ERROR,
                Some(format!("no consumer for this group, {group}")),
            ),
        }
    }

    pub(super) fn query_consumer_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup"));
        let topic = field!(req, req.required("topic"));
        let queue_id = field!(req, req.int("queueId")) as i32;
        let found = self.offsets.query(group, topic, queue_id);
        let offset = match found {
            Some(o) => Some(o),
            None => {
                // Apache: a group without an offset starts at 0 while the queue still holds
                // its first message (it has not been cleaned up), so a new group sees the
                // messages sent before it started.
                let (min, _) = self
                    .tables
                    .topic(topic)
                    .map_or((0, 0), |t| self.store.offsets(t.serial, queue_id));
                (min <= 0).then_some(0)
            }
        };
        match offset {
            Some(o) => {
                let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
                resp.set_ext("offset", o.to_string());
                resp
            }
            None => RemotingCommand::response_to(
                req,
                codes::QUERY_NOT_FOUND,
                Some("Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".into()),
            ),
        }
    }

    pub(super) fn update_consumer_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup"));
        let topic = field!(req, req.required("topic"));
        let queue_id = field!(req, req.int("queueId")) as i32;
        let offset = field!(req, req.int("commitOffset"));
        self.offsets.commit(group, topic, queue_id, offset);
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }

    pub(super) fn lock_batch(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: LockBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return refuse_body(req, &e),
        };
        let now = Instant::now();
        let mut locked = Vec::new();
        {
            let mut held = self.locks.held.lock();
            for mq in body.mq_set {
                let key = (body.consumer_group.clone(), mq.clone());
                let free = match held.get(&key) {
                    None => true,
                    Some((client, at)) => {
                        *client == body.client_id || now.duration_since(*at) > LOCK_LIFETIME
                    }
                };
                if free {
                    held.insert(key, (body.client_id.clone(), now));
                    locked.push(mq);
                }
            }
        }
        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.body = json!({ "lockOKMQSet": locked })
            .to_string()
            .into_bytes()
            .into();
        resp
    }

    pub(super) fn unlock_batch(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: LockBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return refuse_body(req, &e),
        };
        let mut held = self.locks.held.lock();
        for mq in body.mq_set {
            let key = (body.consumer_group.clone(), mq);
            if held.get(&key).is_some_and(|(c, _)| *c == body.client_id) {
                held.remove(&key);
            }
        }
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }
}

fn refuse_body(req: &RemotingCommand, e: &serde_json::Error) -> RemotingCommand {
    refuse(
        RemotingCommand::response_to(req, codes::SUCCESS, None),
        codes::SYSTEM_ERROR,
        &format!("the request body cannot be read: {e}"),
    )
}
