//! Requests about online consumers that the broker answers by calling them: the connection
//! list of a group, offset resets pushed to a group's members (INVOKE_BROKER_TO_RESET_OFFSET
//! → RESET_CONSUMER_CLIENT_OFFSET), and calls forwarded to one client
//! (GET_CONSUMER_RUNNING_INFO, CONSUME_MESSAGE_DIRECTLY), as Apache's `AdminBrokerProcessor`
//! and `Broker2Client` do. The in-process forms (`reset_offset`, `call_consumer`) serve the
//! control plane too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::info;

use super::header::{field, Header};
use super::Broker;
use crate::message::parse_offset_message_id;
use crate::remoting::{codes, ExtFields, RemotingCommand};

/// Apache's `Broker2Client.callClient` timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a reset or a call cannot be made: the response code and remark Apache gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineError {
    pub code: i32,
    pub remark: String,
}

impl Broker {
    pub(super) fn consumer_connections(&self, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup"));
        let Some(g) = self
            .clients
            .consumer_group(group)
            .filter(|g| !g.channels.is_empty())
        else {
            return RemotingCommand::response_to(
                req,
                codes::CONSUMER_NOT_ONLINE,
                Some(format!("the consumer group[{group}] not online")),
            );
        };
        let connections: Vec<Value> = g
            .channels
            .values()
            .map(|c| {
                json!({
                    "clientId": c.client_id,
                    "clientAddr": c.conn.peer.to_string(),
                    "language": c.language,
                    "version": c.version,
                })
            })
            .collect();
        let subscriptions: serde_json::Map<String, Value> = g
            .subscriptions
            .values()
            .map(|s| {
                (
                    s.topic.clone(),
                    json!({
                        "topic": s.topic,
                        "subString": s.sub_string,
                        "tagsSet": s.tags_set,
                        "codeSet": s.code_set,
                        "subVersion": s.sub_version,
                        "expressionType": s.expression_type.clone().unwrap_or_else(|| "TAG".into()),
                        "classFilterMode": s.class_filter_mode,
                    }),
                )
            })
            .collect();
        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.body = json!({
            "connectionSet": connections,
            "subscriptionTable": subscriptions,
            "consumeType": g.consume_type,
            "messageModel": g.message_model,
            "consumeFromWhere": g.consume_from_where,
        })
        .to_string()
        .into_bytes()
        .into();
        resp
    }

    /// Resets a group's offsets on a topic to the first message stored at or after
    /// `timestamp` (-1: the end), tells its online members, and commits them here too.
    /// Offsets only move back unless `force`. Returns the offset of each queue.
    pub async fn reset_offset(
        self: &Arc<Self>,
        topic: &str,
        group: &str,
        timestamp: i64,
        force: bool,
    ) -> Result<BTreeMap<i32, i64>, OnlineError> {
        let Some(t) = self.tables.topic(topic) else {
            return Err(OnlineError {
                code: codes::SYSTEM_ERROR,
                remark: format!(
                    "[reset-offset] reset offset failed, no topic in this broker. topic={topic}"
                ),
            });
        };
        let mut table = self.offsets_at_time(&t, timestamp).await;
        for (q, target) in table.iter_mut() {
            match self.offsets.query(group, topic, *q) {
                Some(c) if !force && *target >= c => *target = c,
                _ => {}
            }
        }
        let Some(members) = self
            .clients
            .consumer_group(group)
            .filter(|g| !g.channels.is_empty())
        else {
            return Err(OnlineError {
                code: codes::CONSUMER_NOT_ONLINE,
                remark: format!(
                    "Consumer not online, so can not reset offset, Group: {group} Topic: {topic} Timestamp: {timestamp}"
                ),
            });
        };
        for (q, o) in &table {
            self.offsets.commit(group, topic, *q, *o);
        }
        for c in members.channels.values() {
            let mut call = RemotingCommand::request(codes::RESET_CONSUMER_CLIENT_OFFSET, 0);
            call.set_ext("topic", topic.to_string());
            call.set_ext("group", group.to_string());
            call.set_ext("timestamp", timestamp.to_string());
            call.set_ext("isForce", force.to_string());
            call.body = self
                .reset_body(topic, &table, c.language == "CPP")
                .into_bytes()
                .into();
            c.conn.oneway(call);
            info!(topic, group, client = %c.client_id, "offset reset sent to a consumer");
        }
        Ok(table)
    }

    /// The offset of the first message stored at or after `timestamp` (-1: the end) in
    /// each write queue of a topic.
    pub(super) async fn offsets_at_time(
        self: &Arc<Self>,
        t: &super::TopicConfig,
        timestamp: i64,
    ) -> BTreeMap<i32, i64> {
        let mut table = BTreeMap::new();
        for q in 0..t.write_queue_nums {
            let target = if timestamp == -1 {
                self.store.offsets(t.serial, q).1
            } else {
                self.offset_for_time(&t.topic_name, q, timestamp).await
            };
            table.insert(q, target.max(0));
        }
        table
    }

    /// `ResetOffsetBody` (a map keyed by MessageQueue objects, as fastjson writes it) or, for
    /// C++ clients, `ResetOffsetBodyForC` (a list).
    fn reset_body(&self, topic: &str, table: &BTreeMap<i32, i64>, for_c: bool) -> String {
        if for_c {
            let list: Vec<Value> = table
                .iter()
                .map(|(q, o)| json!({"topic": topic, "brokerName": self.name(), "queueId": q, "offset": o}))
                .collect();
            return json!({ "offsetTable": list }).to_string();
        }
        let mut s = String::from("{\"offsetTable\":{");
        for (i, (q, o)) in table.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"brokerName\":{},\"queueId\":{q},\"topic\":{}}}:{o}",
                json!(self.name()),
                json!(topic)
            );
        }
        s.push_str("}}");
        s
    }

    pub(super) async fn invoke_reset_offset(
        self: &Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let topic = field!(req, req.required("topic")).to_string();
        let group = field!(req, req.required("group")).to_string();
        let timestamp = field!(req, req.int("timestamp"));
        let force = req.ext_bool("isForce").unwrap_or(false);
        let for_c = req.language.name() == "CPP";
        match self.reset_offset(&topic, &group, timestamp, force).await {
            Ok(table) => {
                let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
                resp.body = self.reset_body(&topic, &table, for_c).into_bytes().into();
                resp
            }
            Err(e) => RemotingCommand::response_to(req, e.code, Some(e.remark)),
        }
    }

    /// Forwards a request to one online client of a group and returns its answer.
    pub async fn call_consumer(
        &self,
        code: i32,
        group: &str,
        client_id: &str,
        ext_fields: ExtFields,
        body: bytes::Bytes,
    ) -> Result<RemotingCommand, OnlineError> {
        let channel = self.clients.consumer_group(group).and_then(|g| {
            g.channels
                .values()
                .find(|c| c.client_id == client_id)
                .cloned()
        });
        let Some(channel) = channel else {
            return Err(OnlineError {
                code: codes::SYSTEM_ERROR,
                remark: format!("The Consumer <{group}> <{client_id}> not online"),
            });
        };
        let mut call = RemotingCommand::request(code, 0);
        call.ext_fields = ext_fields;
        call.body = body;
        match channel.conn.request(call, CALL_TIMEOUT).await {
            Some(answer) => Ok(answer),
            None => Err(OnlineError {
                code: codes::CONSUME_MSG_TIMEOUT,
                remark: format!(
                    "consumer <{group}> <{client_id}> Timeout: no answer in {CALL_TIMEOUT:?}"
                ),
            }),
        }
    }

    pub(super) async fn consumer_running_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup")).to_string();
        let client = field!(req, req.required("clientId")).to_string();
        self.forward(
            req,
            codes::GET_CONSUMER_RUNNING_INFO,
            &group,
            &client,
            req.body.clone(),
        )
        .await
    }

    /// CONSUME_MESSAGE_DIRECTLY: the message named by an offset message id, handed to one
    /// client's listener; the client's `ConsumeMessageDirectlyResult` is the answer.
    pub(super) async fn consume_message_directly(
        self: &Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let group = field!(req, req.required("consumerGroup")).to_string();
        let client = field!(req, req.required("clientId")).to_string();
        let msg_id = field!(req, req.required("msgId")).to_string();
        let body = match parse_offset_message_id(&msg_id) {
            Some((_, physical)) => self.stored_bytes_at(physical).await.unwrap_or_default(),
            None => Vec::new(),
        };
        self.forward(
            req,
            codes::CONSUME_MESSAGE_DIRECTLY,
            &group,
            &client,
            body.into(),
        )
        .await
    }

    async fn forward(
        &self,
        req: &RemotingCommand,
        code: i32,
        group: &str,
        client: &str,
        body: bytes::Bytes,
    ) -> RemotingCommand {
        let mut ext = req.ext_fields.clone();
        ext.insert("brokerName".into(), self.name().into());
        match self.call_consumer(code, group, client, ext, body).await {
            Ok(answer) => {
                let mut resp = RemotingCommand::response_to(req, answer.code, answer.remark);
                resp.ext_fields = answer.ext_fields;
                resp.body = answer.body;
                resp
            }
            Err(e) => RemotingCommand::response_to(req, e.code, Some(e.remark)),
        }
    }
}
