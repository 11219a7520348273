//! SEND_MESSAGE (v1 header), SEND_MESSAGE_V2 (one-letter header names), SEND_BATCH_MESSAGE
//! and CONSUMER_SEND_MSG_BACK; and [`Broker::put_messages`], the one way messages enter a
//! queue (delayed ones go to `SCHEDULE_TOPIC_XXXX` first, as Apache's commit log does).

use std::net::SocketAddr;
use std::sync::Arc;

use compact_str::ToCompactString;
use rand::Rng;
use tracing::{info, warn};

use super::header::{field, Header};
use super::topics::{check_topic_name, perm, system, TopicConfig};
use super::writer::{AppendFailure, AppendResult, Release};
use super::{now_ms, Broker, Reply};
use crate::message::{
    decode_batch, offset_message_id, prop, sys_flag, MessageError, PhysicalOffset, Properties,
    StoredMessage,
};
use crate::namesrv::APPLY_TOPIC_SUGGESTION;
use crate::remoting::{codes, parse_bool, RemotingCommand};
use crate::server::Connection;

/// Apache's 18 delay levels (`messageDelayLevel`), in milliseconds.
pub const DELAY_LEVELS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// Where a put message landed.
pub struct Placed {
    pub queue_offset: i64,
    pub physical_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("topic[{0}] not exist")]
    NoTopic(String),
    #[error("{0}")]
    Illegal(#[from] MessageError),
    #[error("append failed: {0:?}")]
    Append(AppendFailure),
    /// A body over the broker's `maxMessageSize`.
    #[error("the message body of {size} bytes is over the broker's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Messages handed to their queue's writer.
pub struct PendingPut {
    written: Option<tokio::sync::oneshot::Receiver<AppendResult>>,
    serial: u32,
    queue_id: i32,
    count: usize,
    /// Counted into the broker's stats once written: (stats, topic, body bytes).
    counted: Option<(Arc<super::stats::BrokerStats>, String, u64)>,
}

impl PendingPut {
    fn empty() -> PendingPut {
        PendingPut {
            written: None,
            serial: 0,
            queue_id: 0,
            count: 0,
            counted: None,
        }
    }

    /// Where the messages landed, once written.
    pub async fn wait(self) -> Result<Vec<Placed>, PutError> {
        let Some(rx) = self.written else {
            return Ok(Vec::new());
        };
        let base = rx
            .await
            .map_err(|_| PutError::Append(AppendFailure::Other("the queue writer stopped".into())))?
            .map_err(PutError::Append)?;
        if let Some((stats, topic, bytes)) = &self.counted {
            stats.put(topic, self.count as u64, *bytes);
        }
        Ok((0..self.count as i64)
            .map(|i| Placed {
                queue_offset: base + i,
                physical_offset: PhysicalOffset::new(self.serial, self.queue_id, base + i).encode(),
            })
            .collect())
    }
}

/// What a send needs of its topic, read in place (see [`super::topics::Tables::with_topic`]).
#[derive(Clone, Copy)]
struct SendTarget {
    queue_count: i32,
    write_queue_nums: i32,
    perm: i32,
}

impl SendTarget {
    fn of(config: &TopicConfig) -> SendTarget {
        SendTarget {
            queue_count: config.queue_count(),
            write_queue_nums: config.write_queue_nums,
            perm: config.perm,
        }
    }
}

/// `field!` for handlers answering a [`Reply`].
macro_rules! field_reply {
    ($req:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Reply::now(e.into_response($req)),
        }
    };
}

/// The position of a v1 field among SEND_MESSAGE_V2's one-letter names `a`..`m`, in the
/// order of `SendMessageRequestHeaderV2`.
fn v2_index(long: &str) -> Option<usize> {
    Some(match long {
        "producerGroup" => 0,
        "topic" => 1,
        "defaultTopic" => 2,
        "defaultTopicQueueNums" => 3,
        "queueId" => 4,
        "sysFlag" => 5,
        "bornTimestamp" => 6,
        "flag" => 7,
        "properties" => 8,
        "reconsumeTimes" => 9,
        "unitMode" => 10,
        "maxReconsumeTimes" => 11,
        "batch" => 12,
        _ => return None,
    })
}

/// SEND_MESSAGE's header read by its v1 names whatever the request's version: V2 and batch
/// requests carry `SendMessageRequestHeaderV2`'s one-letter names, gathered by letter in one
/// pass over the fields (a search of the fields per lookup, a dozen per send, was 7% of the
/// broker's instructions per send under callgrind; a copy into a renamed header before that,
/// a tenth of its CPU). A refusal names the v1 field, as before.
struct SendHeader<'a> {
    req: &'a RemotingCommand,
    short: Option<[Option<&'a str>; 13]>,
}

impl<'a> SendHeader<'a> {
    fn new(req: &'a RemotingCommand) -> SendHeader<'a> {
        let short = (req.code != codes::SEND_MESSAGE).then(|| {
            let mut by_letter = [None; 13];
            for (name, value) in req.ext_fields.iter() {
                if let [letter @ b'a'..=b'm'] = name.as_bytes() {
                    by_letter[usize::from(letter - b'a')] = Some(value.as_str());
                }
            }
            by_letter
        });
        SendHeader { req, short }
    }
}

impl Header for SendHeader<'_> {
    fn field(&self, long: &str) -> Option<&str> {
        if let Some(short) = &self.short {
            if let Some(v) = v2_index(long).and_then(|i| short[i]) {
                return Some(v);
            }
        }
        self.req.ext(long)
    }
}

impl Broker {
    pub(super) async fn send_message(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        req: &RemotingCommand,
    ) -> Reply {
        let h = &SendHeader::new(req);
        let topic = field_reply!(req, h.required("topic")).to_string();
        let queue_id = field_reply!(req, h.int("queueId")) as i32;
        let sys_flag_in = field_reply!(req, h.int("sysFlag")) as i32;
        let born_timestamp = field_reply!(req, h.int("bornTimestamp"));
        let flag = field_reply!(req, h.int("flag")) as i32;
        let reconsume_times = field_reply!(req, h.opt_int("reconsumeTimes")).unwrap_or(0) as i32;
        let max_reconsume = field_reply!(req, h.opt_int("maxReconsumeTimes"));
        let default_topic = h.field("defaultTopic").unwrap_or(system::AUTO_CREATE);
        let default_queues =
            field_reply!(req, h.opt_int("defaultTopicQueueNums")).unwrap_or(4) as i32;
        // Parsed once and stored as it came but for WAIT and CLUSTER (neither is TRAN_MSG).
        let mut stored_props = Properties::parse(h.field("properties").unwrap_or_default());
        let prepared = stored_props.get(prop::TRANSACTION_PREPARED) == Some("true");
        stored_props.remove(prop::WAIT);
        stored_props.set(prop::CLUSTER, self.config.cluster.as_str());

        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.set_ext("MSG_REGION", "DefaultRegion");
        resp.set_ext("TRACE_ON", "true");

        if let Err(remark) = check_topic_name(&topic) {
            return Reply::now(refuse(resp, codes::SYSTEM_ERROR, remark));
        }
        if system::send_forbidden(&topic) {
            return Reply::now(refuse(
                resp,
                codes::NO_PERMISSION,
                &format!("Sending message to topic[{topic}] is forbidden."),
            ));
        }
        let Some(config) = self
            .topic_for_send(&topic, default_topic, default_queues, conn.peer)
            .await
        else {
            return Reply::now(refuse(
                resp,
                codes::TOPIC_NOT_EXIST,
                &format!("topic[{topic}] not exist, apply first please!{APPLY_TOPIC_SUGGESTION}"),
            ));
        };
        if queue_id >= config.queue_count {
            return Reply::now(refuse(
                resp,
                codes::SYSTEM_ERROR,
                &format!(
                    "request queueId[{queue_id}] is illegal, {} Producer: {}",
                    self.tables
                        .topic(&topic)
                        .map(|c| c.describe())
                        .unwrap_or_default(),
                    conn.peer
                ),
            ));
        }
        if !perm::writable(config.perm) {
            return Reply::now(refuse(
                resp,
                codes::NO_PERMISSION,
                &format!("the topic[{topic}] sending message is forbidden"),
            ));
        }
        let queue_id = if queue_id < 0 {
            rand::thread_rng().gen_range(0..config.write_queue_nums.max(1))
        } else {
            queue_id
        };
        let mut topic = topic;
        let mut queue_id = queue_id;
        // A message sent to a retry topic past its group's retries goes to the dead letters.
        if let Some(group) = topic.strip_prefix(system::RETRY_PREFIX) {
            let Some(g) = self.tables.group(group) else {
                return Reply::now(refuse(
                    resp,
                    codes::SUBSCRIPTION_GROUP_NOT_EXIST,
                    &format!("subscription group not exist, {group} \nSee http://rocketmq.apache.org/docs/faq/ for further details."),
                ));
            };
            let max = max_reconsume.map_or(g.retry_max_times, |m| m as i32);
            if reconsume_times >= max {
                let dlq = system::dlq_topic(group);
                if self
                    .ensure_topic(&dlq, 1, perm::READ | perm::WRITE)
                    .await
                    .is_none()
                {
                    return Reply::now(refuse(
                        resp,
                        codes::SYSTEM_ERROR,
                        &format!("topic[{dlq}] not exist"),
                    ));
                }
                topic = dlq;
                queue_id = 0;
            }
        }

        let base = StoredMessage {
            topic,
            queue_id,
            flag,
            sys_flag: sys_flag_in,
            born_timestamp,
            born_host: conn.peer,
            store_timestamp: 0,
            store_host: self.store_host(),
            reconsume_times,
            prepared_transaction_offset: 0,
            body: req.body.clone(),
            properties: stored_props,
        };
        // Apache decides by the header's batch flag (`m`), not the request code: the C++
        // client sends batches as SEND_MESSAGE_V2 with m=true.
        let batch = h.field("batch").and_then(parse_bool).unwrap_or(false)
            || req.code == codes::SEND_BATCH_MESSAGE;
        let messages = if batch {
            let batch = match decode_batch(&req.body) {
                Ok(b) if !b.is_empty() => b,
                _ => {
                    return Reply::now(refuse(
                        resp,
                        codes::MESSAGE_ILLEGAL,
                        &self.illegal_remark(),
                    ));
                }
            };
            batch
                .into_iter()
                .map(|m| {
                    let mut props = m.properties;
                    props.remove(prop::WAIT);
                    props.set(prop::CLUSTER, self.config.cluster.as_str());
                    StoredMessage {
                        flag: m.flag,
                        body: m.body,
                        properties: props,
                        ..base.clone()
                    }
                })
                .collect()
        } else {
            vec![base]
        };
        let max_size = self.settings.read().max_message_size;
        if messages.iter().any(|m| m.body.len() > max_size) {
            return Reply::now(refuse(resp, codes::MESSAGE_ILLEGAL, &self.illegal_remark()));
        }
        if prepared {
            return Reply::now(self.prepare_transaction(resp, messages).await);
        }
        // Submitted here, in the order the connection sent it; answered when written.
        let pending = match self.submit_put(messages, Release::Held) {
            Ok(p) => p,
            Err(e) => return Reply::now(self.put_error(resp, e)),
        };
        let broker = self.clone();
        Reply::Later(Box::pin(async move {
            Some(match pending.wait().await {
                Ok(placed) => {
                    let host = broker.store_host();
                    let ids = match placed.as_slice() {
                        [one] => offset_message_id(host, one.physical_offset),
                        many => many
                            .iter()
                            .map(|p| offset_message_id(host, p.physical_offset))
                            .collect::<Vec<_>>()
                            .join(","),
                    };
                    resp.set_ext("msgId", ids);
                    resp.set_ext("queueId", queue_id.to_compact_string());
                    let first = placed.first().map_or(0, |p| p.queue_offset);
                    resp.set_ext("queueOffset", first.to_compact_string());
                    resp
                }
                Err(e) => broker.put_error(resp, e),
            })
        }))
    }

    fn illegal_remark(&self) -> String {
        format!(
            "the message is illegal, maybe msg body or properties length not matched. msg body length limit {}B, msg properties length limit 32KB.",
            self.settings.read().max_message_size
        )
    }

    pub(super) fn put_error(&self, resp: RemotingCommand, e: PutError) -> RemotingCommand {
        match e {
            PutError::NoTopic(t) => {
                refuse(resp, codes::SYSTEM_ERROR, &format!("topic[{t}] not exist"))
            }
            PutError::Illegal(_) | PutError::TooLarge { .. } => {
                let remark = self.illegal_remark();
                refuse(resp, codes::MESSAGE_ILLEGAL, &remark)
            }
            PutError::Append(AppendFailure::Quota { used, quota }) => {
                info!(broker = %self.config.broker_name, used, quota, "send refused: storage quota reached");
                refuse(
                    resp,
                    codes::SERVICE_NOT_AVAILABLE,
                    &format!("service not available now. It may be caused by one of the following reasons: the broker's disk is full [{}], messages are put to the slave, message store has been shut down, etc.", used.saturating_mul(100) / quota.max(1)),
                )
            }
            PutError::Append(AppendFailure::Other(e)) => {
                warn!(broker = %self.config.broker_name, error = %e, "append failed");
                refuse(resp, codes::SYSTEM_ERROR, "UNKNOWN_ERROR")
            }
        }
    }

    /// The topic to send to, created from the default topic (`TBW102`) when the broker
    /// allows it, or as a retry topic (`createTopicInSendMessageBackMethod`).
    async fn topic_for_send(
        &self,
        topic: &str,
        default_topic: &str,
        default_queues: i32,
        peer: SocketAddr,
    ) -> Option<SendTarget> {
        if let Some(t) = self.tables.with_topic(topic, SendTarget::of) {
            return Some(t);
        }
        if let Some(def) = self.tables.topic(default_topic) {
            if def.perm & perm::INHERIT != 0 {
                let queues = default_queues.min(def.write_queue_nums).max(0);
                let config = TopicConfig::new(topic, queues, def.perm & !perm::INHERIT);
                let created = self.create_topic(config).await;
                if created.is_some() {
                    info!(topic, default_topic, %peer, "topic created by a producer through the default topic");
                }
                return created.as_ref().map(SendTarget::of);
            }
        }
        if topic.starts_with(system::RETRY_PREFIX) {
            return self
                .ensure_topic(topic, 1, perm::READ | perm::WRITE)
                .await
                .as_ref()
                .map(SendTarget::of);
        }
        None
    }

    /// The topic, created with `queues` and `perm` if missing.
    pub(super) async fn ensure_topic(
        &self,
        topic: &str,
        queues: i32,
        perm: i32,
    ) -> Option<TopicConfig> {
        if let Some(t) = self.tables.topic(topic) {
            return Some(t);
        }
        self.create_topic(TopicConfig::new(topic, queues, perm))
            .await
    }

    pub(super) async fn create_topic(&self, config: TopicConfig) -> Option<TopicConfig> {
        match self.tables.put_topic(config) {
            Ok((c, changed)) => {
                if changed {
                    self.tables_changed().await;
                }
                Some(c)
            }
            Err(e) => {
                warn!(error = %e, "topic creation failed");
                None
            }
        }
    }

    /// Appends messages (all to one queue, as one send or batch gives them) and wakes the
    /// pulls waiting on it. A message with a delay level goes to the schedule topic.
    pub(crate) async fn put_messages(
        self: &Arc<Self>,
        messages: Vec<StoredMessage>,
    ) -> Result<Vec<Placed>, PutError> {
        self.submit_put(messages, Release::Now)?.wait().await
    }

    /// Hands messages to their queue's writer, in call order; `wait` on the result gives
    /// where they landed. [`Release::Held`] only from a connection's request handling, which
    /// releases them once it has handled what it read.
    pub(crate) fn submit_put(
        self: &Arc<Self>,
        mut messages: Vec<StoredMessage>,
        release: Release,
    ) -> Result<PendingPut, PutError> {
        let now = now_ms();
        for m in &mut messages {
            m.store_timestamp = now;
            let tx = m.sys_flag & sys_flag::TRANSACTION_MASK;
            let level = m
                .properties
                .get(prop::DELAY)
                .and_then(|d| d.trim().parse::<i32>().ok())
                .unwrap_or(0);
            if level > 0 && (tx == 0 || tx == sys_flag::TRANSACTION_COMMIT) {
                let level = level.min(DELAY_LEVELS_MS.len() as i32);
                m.properties.set(prop::REAL_TOPIC, m.topic.clone());
                m.properties.set(prop::REAL_QID, m.queue_id.to_string());
                m.topic = system::SCHEDULE.to_string();
                m.queue_id = level - 1;
            }
        }
        let Some(first) = messages.first_mut() else {
            return Ok(PendingPut::empty());
        };
        let queue_id = first.queue_id;
        let Some(serial) = self.tables.with_topic(&first.topic, |c| c.serial) else {
            return Err(PutError::NoTopic(std::mem::take(&mut first.topic)));
        };
        let encoded: Vec<Vec<u8>> = messages
            .iter()
            .map(StoredMessage::encode)
            .collect::<Result<_, _>>()?;
        let count = encoded.len();
        let bytes: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
        // Encoded: the first message's topic is not needed again but for the stats.
        let topic = std::mem::take(&mut messages[0].topic);
        let written = self
            .writers
            .submit(self, serial, queue_id, encoded, now, release);
        Ok(PendingPut {
            written: Some(written),
            serial,
            queue_id,
            count,
            counted: Some((self.stats.clone(), topic, bytes)),
        })
    }

    /// CONSUMER_SEND_MSG_BACK: a consumer failed a message; it goes to the group's retry
    /// topic with the next delay level, or to its dead-letter topic after `retryMaxTimes`.
    pub(super) async fn consumer_send_back(
        self: &Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let offset = field!(req, req.int("offset"));
        let group = field!(req, req.required("group")).to_string();
        let delay_level = field!(req, req.int("delayLevel")) as i32;
        let max_reconsume = field!(req, req.opt_int("maxReconsumeTimes"));
        let resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        let Some(g) = self.group_for_consumer(&group).await else {
            return refuse(
                resp,
                codes::SUBSCRIPTION_GROUP_NOT_EXIST,
                &format!("subscription group not exist, {group} \nSee http://rocketmq.apache.org/docs/faq/ for further details."),
            );
        };
        if g.retry_queue_nums <= 0 {
            return resp;
        }
        let retry = system::retry_topic(&group);
        if self
            .ensure_topic(&retry, g.retry_queue_nums, perm::READ | perm::WRITE)
            .await
            .is_none()
        {
            return refuse(
                resp,
                codes::SYSTEM_ERROR,
                &format!("topic[{retry}] not exist"),
            );
        }
        let Some((mut msg, _, physical)) = self.message_at(offset).await else {
            return refuse(
                resp,
                codes::SYSTEM_ERROR,
                &format!("look message by offset failed, {offset}"),
            );
        };
        if msg.properties.get(prop::RETRY_TOPIC).is_none() {
            msg.properties.set(prop::RETRY_TOPIC, msg.topic.clone());
        }
        msg.properties.remove(prop::WAIT);
        let max = max_reconsume.map_or(g.retry_max_times, |m| m as i32);
        let (topic, queue_id) = if msg.reconsume_times >= max || delay_level < 0 {
            let dlq = system::dlq_topic(&group);
            if self
                .ensure_topic(&dlq, 1, perm::READ | perm::WRITE)
                .await
                .is_none()
            {
                return refuse(
                    resp,
                    codes::SYSTEM_ERROR,
                    &format!("topic[{dlq}] not exist"),
                );
            }
            msg.properties.remove(prop::DELAY);
            (dlq, 0)
        } else {
            let level = if delay_level == 0 {
                3 + msg.reconsume_times
            } else {
                delay_level
            };
            msg.properties.set(prop::DELAY, level.to_string());
            let q = rand::thread_rng().gen_range(0..g.retry_queue_nums.max(1));
            (retry, q)
        };
        if msg.properties.get(prop::ORIGIN_MESSAGE_ID).is_none() {
            let id = offset_message_id(msg.store_host, physical);
            msg.properties.set(prop::ORIGIN_MESSAGE_ID, id);
        }
        let back = StoredMessage {
            topic,
            queue_id,
            reconsume_times: msg.reconsume_times + 1,
            ..msg
        };
        match self.put_messages(vec![back]).await {
            Ok(_) => resp,
            Err(e) => self.put_error(resp, e),
        }
    }

    /// The message a physical offset names, if its queue still has it.
    pub(crate) async fn message_at(
        self: &Arc<Self>,
        physical: i64,
    ) -> Option<(StoredMessage, i64, i64)> {
        let bytes = self.stored_bytes_at(physical).await?;
        let (msg, qo, po) = StoredMessage::decode(&bytes).ok()?;
        Some((msg, qo, po))
    }

    /// A transaction's half message: kept in the half topic until END_TRANSACTION.
    async fn prepare_transaction(
        self: &Arc<Self>,
        resp: RemotingCommand,
        messages: Vec<StoredMessage>,
    ) -> RemotingCommand {
        let Some(msg) = messages.into_iter().next() else {
            return resp;
        };
        let resp = resp;
        let mut half = msg;
        half.properties.set(prop::REAL_TOPIC, half.topic.clone());
        half.properties
            .set(prop::REAL_QID, half.queue_id.to_string());
        half.sys_flag &= !sys_flag::TRANSACTION_MASK;
        let queue_id = half.queue_id;
        half.topic = system::TRANS_HALF.to_string();
        half.queue_id = 0;
        match self.put_messages(vec![half]).await {
            Ok(placed) => {
                let mut resp = resp;
                if let Some(p) = placed.first() {
                    resp.set_ext(
                        "msgId",
                        offset_message_id(self.store_host(), p.physical_offset),
                    );
                    resp.set_ext("queueId", queue_id.to_compact_string());
                    resp.set_ext("queueOffset", p.queue_offset.to_compact_string());
                }
                resp
            }
            Err(e) => self.put_error(resp, e),
        }
    }
}

pub(super) fn refuse(mut resp: RemotingCommand, code: i32, remark: &str) -> RemotingCommand {
    resp.code = code;
    resp.remark = Some(remark.to_string());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut req = RemotingCommand::request(code, 1);
        for (k, v) in fields {
            req.set_ext(k, *v);
        }
        req
    }

    #[test]
    fn send_header_reads_v2_letters_by_their_v1_names_and_falls_back_to_v1_names() {
        let v2 = request(
            codes::SEND_MESSAGE_V2,
            &[
                ("b", "orders"),
                ("e", "3"),
                ("m", "true"),
                ("sysFlag", "7"),
                ("n", "x"),
            ],
        );
        let h = SendHeader::new(&v2);
        assert_eq!(h.field("topic"), Some("orders"));
        assert_eq!(h.int("queueId").ok(), Some(3));
        assert_eq!(h.field("batch"), Some("true"));
        // No letter `f`: the v1 name is read instead, as before.
        assert_eq!(h.int("sysFlag").ok(), Some(7));
        assert_eq!(h.field("producerGroup"), None);
        assert_eq!(h.field("unknown"), None);
        // Every letter maps to its own field.
        let all: Vec<(String, String)> = ('a'..='m')
            .map(|c| (c.to_string(), format!("v{c}")))
            .collect();
        let fields: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let every = request(codes::SEND_BATCH_MESSAGE, &fields);
        let h = SendHeader::new(&every);
        for (long, letter) in [
            ("producerGroup", 'a'),
            ("topic", 'b'),
            ("defaultTopic", 'c'),
            ("defaultTopicQueueNums", 'd'),
            ("queueId", 'e'),
            ("sysFlag", 'f'),
            ("bornTimestamp", 'g'),
            ("flag", 'h'),
            ("properties", 'i'),
            ("reconsumeTimes", 'j'),
            ("unitMode", 'k'),
            ("maxReconsumeTimes", 'l'),
            ("batch", 'm'),
        ] {
            assert_eq!(h.field(long), Some(format!("v{letter}").as_str()), "{long}");
        }
        // A v1 request's one-letter fields are not v2 names.
        let v1 = request(codes::SEND_MESSAGE, &[("b", "orders"), ("topic", "real")]);
        assert_eq!(SendHeader::new(&v1).field("topic"), Some("real"));
        let v1_without = request(codes::SEND_MESSAGE, &[("b", "orders")]);
        assert_eq!(SendHeader::new(&v1_without).field("topic"), None);
    }
}
