//! PULL_MESSAGE: messages of one queue from an offset, filtered by the subscription's tags;
//! with the suspend flag and nothing to return, the request waits (long polling) until a
//! message arrives or its `suspendTimeoutMillis` pass, then is answered as Apache's
//! `PullRequestHoldService` answers it: the same lookup again, without suspending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compact_str::ToCompactString;
use tracing::{info, warn};

use super::clients::Subscription;
use super::header::Header;
use super::send::refuse;
use super::store::MessageQueue;
use super::topics::perm;
use super::{Broker, QueueStore};
use crate::message::stored_properties;
use crate::namesrv::APPLY_TOPIC_SUGGESTION;
use crate::remoting::{codes, RemotingCommand};
use crate::server::Connection;

const FLAG_COMMIT_OFFSET: i64 = 0x1;
const FLAG_SUSPEND: i64 = 0x2;
const FLAG_SUBSCRIPTION: i64 = 0x4;

/// Apache's `maxTransferCountOnMessageInMemory` and `maxTransferBytesOnMessageInMemory`.
const MAX_TRANSFER_COUNT: usize = 32;
const MAX_TRANSFER_BYTES: usize = 256 * 1024;
/// How much a pull scans past messages the tag filter drops before answering.
const MAX_SCAN_BYTES: usize = 4 * 1024 * 1024;
/// What one log read asks for per message wanted when the queue cannot say (see
/// `read_size`).
const READ_BYTES_PER_MESSAGE: usize = 2 * 1024;
/// A suspended pull re-checks at least this often (a queue created while it waits has no
/// wake-up to give it yet).
const RECHECK: Duration = Duration::from_millis(500);
const FAQ_SAME_GROUP: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// A validated pull.
struct PullArgs {
    group: String,
    topic: String,
    serial: u32,
    queue_id: i32,
    offset: i64,
    max_count: usize,
    subscription: Subscription,
}

/// `GetMessageStatus`, whose name Apache puts in the response remark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Found,
    NoMatchedMessage,
    NoMessageInQueue,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Found => "FOUND",
            Status::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            Status::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
            Status::OffsetTooSmall => "OFFSET_TOO_SMALL",
            Status::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            Status::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        }
    }
}

struct Fetched {
    status: Status,
    next_begin: i64,
    min: i64,
    max: i64,
    /// The messages, each as the log read it.
    messages: Vec<Bytes>,
}

impl Fetched {
    fn not_found_at(&self, offset: i64) -> bool {
        match self.status {
            Status::OffsetOverflowOne => true,
            Status::NoMessageInQueue => offset == 0,
            _ => false,
        }
    }
}

impl Broker {
    pub(super) async fn pull_message(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let args = match self.pull_args(conn, &req).await {
            Ok(a) => a,
            Err(resp) => return Some(resp),
        };
        let sys_flag = req.opt_int("sysFlag").ok().flatten().unwrap_or(0);
        if sys_flag & FLAG_COMMIT_OFFSET != 0 {
            if let Ok(Some(commit)) = req.opt_int("commitOffset") {
                if commit >= 0 {
                    self.offsets
                        .commit(&args.group, &args.topic, args.queue_id, commit);
                }
            }
        }
        let fetched = self.fetch(&args).await;
        let resp = match fetched {
            // Apache suspends whatever answers PULL_NOT_FOUND: the end of the queue, or an empty
            // queue asked from offset 0.
            Ok(f) if f.not_found_at(args.offset) && sys_flag & FLAG_SUSPEND != 0 => {
                let timeout = req
                    .opt_int("suspendTimeoutMillis")
                    .ok()
                    .flatten()
                    .unwrap_or(15_000)
                    .clamp(0, 60_000);
                let deadline = Instant::now() + Duration::from_millis(timeout as u64);
                let b = self.clone();
                let conn = conn.clone();
                tokio::spawn(async move {
                    b.wait_for_messages(&args, deadline).await;
                    let resp = match b.fetch(&args).await {
                        Ok(f) => pull_response(&req, f),
                        Err(remark) => {
                            RemotingCommand::response_to(&req, codes::SYSTEM_ERROR, Some(remark))
                        }
                    };
                    conn.send(resp).await;
                });
                return None;
            }
            Ok(f) => pull_response(&req, f),
            Err(remark) => RemotingCommand::response_to(&req, codes::SYSTEM_ERROR, Some(remark)),
        };
        Some(resp)
    }

    async fn pull_args(
        &self,
        conn: &Arc<Connection>,
        req: &RemotingCommand,
    ) -> Result<PullArgs, RemotingCommand> {
        let group = req
            .required("consumerGroup")
            .map_err(|e| e.into_response(req))?
            .to_string();
        let topic = req
            .required("topic")
            .map_err(|e| e.into_response(req))?
            .to_string();
        let queue_id = req.int("queueId").map_err(|e| e.into_response(req))? as i32;
        let offset = req.int("queueOffset").map_err(|e| e.into_response(req))?;
        let max_count = req.int("maxMsgNums").map_err(|e| e.into_response(req))?;
        let sys_flag = req.int("sysFlag").map_err(|e| e.into_response(req))?;
        let resp = || RemotingCommand::response_to(req, codes::SUCCESS, None);
        let Some(g) = self.group_for_consumer(&group).await else {
            return Err(refuse(
                resp(),
                codes::SUBSCRIPTION_GROUP_NOT_EXIST,
                &format!("subscription group [{group}] does not exist, {FAQ_SAME_GROUP}"),
            ));
        };
        if !g.consume_enable {
            return Err(refuse(
                resp(),
                codes::NO_PERMISSION,
                &format!("subscription group no permission, {group}"),
            ));
        }
        let Some(t) = self.tables.topic(&topic) else {
            return Err(refuse(
                resp(),
                codes::TOPIC_NOT_EXIST,
                &format!("topic[{topic}] not exist, apply first please! {APPLY_TOPIC_SUGGESTION}"),
            ));
        };
        if !perm::readable(t.perm) {
            return Err(refuse(
                resp(),
                codes::NO_PERMISSION,
                &format!("the topic[{topic}] pulling message is forbidden"),
            ));
        }
        if queue_id < 0 || queue_id >= t.read_queue_nums {
            return Err(refuse(
                resp(),
                codes::SYSTEM_ERROR,
                &format!(
                    "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}] consumer:[/{}]",
                    t.read_queue_nums, conn.peer
                ),
            ));
        }
        let subscription = if sys_flag & FLAG_SUBSCRIPTION != 0 {
            let expression = req.ext("subscription").unwrap_or("*");
            let kind = req.ext("expressionType").map(str::to_string);
            let mut s = if kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("SQL92"))
            {
                Subscription {
                    topic: topic.clone(),
                    sub_string: expression.to_string(),
                    ..Subscription::default()
                }
            } else {
                Subscription::from_expression(&topic, expression)
            };
            s.expression_type = kind;
            if let Err(e) = s.compile() {
                // Apache 4.9.7 builds no filter data for an expression it cannot parse and
                // then lets every message through (measured); so do we, and say so.
                info!(group = %group, topic = %topic, error = %e, "sql92 expression from a pull cannot be parsed: no filtering");
                s.expression_type = Some("TAG".into());
                s.sub_string = "*".into();
            }
            s
        } else {
            let Some(info) = self.clients.consumer_group(&group) else {
                return Err(refuse(
                    resp(),
                    codes::SUBSCRIPTION_NOT_EXIST,
                    &format!("the consumer's group info not exist{FAQ_SAME_GROUP}"),
                ));
            };
            if !g.consume_broadcast_enable && info.is_broadcasting() {
                return Err(refuse(
                    resp(),
                    codes::NO_PERMISSION,
                    &format!("the consumer group[{group}] can not consume by broadcast way"),
                ));
            }
            let Some(s) = info.subscriptions.get(&topic).cloned() else {
                return Err(refuse(
                    resp(),
                    codes::SUBSCRIPTION_NOT_EXIST,
                    &format!("the consumer's subscription not exist{FAQ_SAME_GROUP}"),
                ));
            };
            s
        };
        if let Some(kind) = subscription
            .expression_type
            .as_deref()
            .filter(|k| !k.eq_ignore_ascii_case("TAG"))
        {
            if !self.config.enable_property_filter || !subscription.is_sql92() {
                // As Apache answers with `enablePropertyFilter=false`.
                return Err(refuse(
                    resp(),
                    codes::SYSTEM_ERROR,
                    &format!("The broker does not support consumer to filter message by {kind}"),
                ));
            }
            if subscription.sql.is_none() {
                return Err(refuse(
                    resp(),
                    codes::FILTER_DATA_NOT_EXIST,
                    "The broker's consumer filter data is not exist!Your expression may be wrong!",
                ));
            }
        }
        Ok(PullArgs {
            group,
            topic,
            serial: t.serial,
            queue_id,
            offset,
            max_count: usize::try_from(max_count)
                .unwrap_or(0)
                .clamp(1, MAX_TRANSFER_COUNT),
            subscription,
        })
    }

    /// `DefaultMessageStore.getMessage`: the status and the messages that pass the filter.
    async fn fetch(self: &Arc<Self>, a: &PullArgs) -> Result<Fetched, String> {
        let Some(queue) = self.store.queue(a.serial, a.queue_id) else {
            return Ok(Fetched {
                status: Status::NoMessageInQueue,
                next_begin: 0,
                min: 0,
                max: 0,
                messages: Vec::new(),
            });
        };
        let (min, max) = (queue.min_offset(), queue.max_offset());
        let at = |status, next_begin| Fetched {
            status,
            next_begin,
            min,
            max,
            messages: Vec::new(),
        };
        if max == 0 {
            return Ok(at(Status::NoMessageInQueue, 0));
        }
        if a.offset < min {
            return Ok(at(Status::OffsetTooSmall, min));
        }
        if a.offset == max {
            return Ok(at(Status::OffsetOverflowOne, a.offset));
        }
        if a.offset > max {
            return Ok(at(Status::OffsetOverflowBadly, max));
        }
        // What memory and the page cache hold is read here at once; a pull that would wait for
        // the disk reads on a blocking thread. (A blocking-thread round trip per pull was most
        // of the broker's CPU per pulled message under bench/rocketmq-run, in wake-ups.)
        let read = match gather(&queue, a.offset, a.max_count, &a.subscription, true) {
            Ok(Some(found)) => Ok(Ok(found)),
            Ok(None) => {
                let (offset, max_count, sub) = (a.offset, a.max_count, a.subscription.clone());
                tokio::task::spawn_blocking(move || {
                    gather(&queue, offset, max_count, &sub, false).map(Option::unwrap_or_default)
                })
                .await
            }
            Err(e) => Ok(Err(e)),
        };
        match read {
            Ok(Ok((messages, next))) => {
                let found = !messages.is_empty();
                if found {
                    let bytes = messages.iter().map(|m| m.len() as u64).sum();
                    self.stats
                        .got(&a.group, &a.topic, messages.len() as u64, bytes);
                }
                Ok(Fetched {
                    status: if found {
                        Status::Found
                    } else {
                        Status::NoMatchedMessage
                    },
                    next_begin: next,
                    min,
                    max,
                    messages,
                })
            }
            Ok(Err(msglog::LogError::OffsetOutOfRange { log_start, .. })) => {
                // Retention removed the segment meanwhile.
                Ok(at(Status::OffsetTooSmall, log_start))
            }
            Ok(Err(e)) => {
                warn!(topic = %a.topic, queue = a.queue_id, error = %e, "pull read failed");
                Err("store getMessage return null".into())
            }
            Err(_) => Err("store getMessage return null".into()),
        }
    }

    /// Waits until the queue has a message at or past the pull's offset, or the deadline.
    async fn wait_for_messages(&self, a: &PullArgs, deadline: Instant) {
        loop {
            // A queue without a log yet: its creation (by the first message) wakes us.
            let mut created = Box::pin(self.store.created.notified());
            created.as_mut().enable();
            let queue = self.store.queue(a.serial, a.queue_id);
            let mut notified = queue.as_ref().map(|q| Box::pin(q.arrived.notified()));
            if let Some(n) = notified.as_mut() {
                n.as_mut().enable();
            }
            let has = queue.as_ref().is_some_and(|q| q.max_offset() > a.offset);
            let now = Instant::now();
            if has || now >= deadline {
                return;
            }
            let wait = (deadline - now).min(RECHECK);
            match notified {
                Some(n) => {
                    let _ = tokio::time::timeout(wait, n).await;
                }
                None => {
                    let _ = tokio::time::timeout(wait, created).await;
                }
            }
        }
    }
}

/// The messages of one pull from `offset` and the next offset to pull. With `cached_only`
/// nothing waits for the disk: `None` when the first read would (what the first reads found
/// is answered if a later one would).
fn gather(
    queue: &MessageQueue,
    offset: i64,
    max_count: usize,
    sub: &Subscription,
    cached_only: bool,
) -> Result<Option<(Vec<Bytes>, i64)>, msglog::LogError> {
    // The messages stay in the log's read buffers until the response is encoded, which copies
    // each once into the frame; properties are parsed only when the subscription filters.
    let everything = sub.accepts_everything();
    let accept = |m: &[u8]| everything || sub.accepts(stored_properties(m).as_ref());
    let mut messages = Vec::with_capacity(max_count);
    let mut bytes = 0usize;
    let mut next = offset;
    let mut scanned = 0usize;
    while messages.len() < max_count && next < queue.max_offset() && scanned < MAX_SCAN_BYTES {
        let want = read_size(queue, max_count - messages.len());
        let before = messages.len();
        let read = QueueStore::read_into(
            queue,
            next,
            max_count - messages.len(),
            want,
            cached_only,
            &mut messages,
            accept,
        )?;
        let Some((_, after, read)) = read else {
            if next == offset {
                return Ok(None);
            }
            break;
        };
        if read == 0 {
            break;
        }
        bytes += messages[before..].iter().map(Bytes::len).sum::<usize>();
        next = after;
        scanned += read;
        if bytes >= MAX_TRANSFER_BYTES {
            break;
        }
    }
    Ok(Some((messages, next)))
}

/// How much one log read asks for to answer `wanted` messages: the queue's average stored
/// message, one more than wanted. Copying from the page cache is most of a pull's cost, and a
/// fixed 2 KiB per message read ~40% more than a pull of 1 KiB messages answers (64 KiB for
/// ~39 KiB); a short read (larger messages than the average) only reads again.
fn read_size(queue: &MessageQueue, wanted: usize) -> usize {
    let per_message = queue
        .stored_bytes_per_message()
        .unwrap_or(READ_BYTES_PER_MESSAGE);
    per_message
        .saturating_mul(wanted.saturating_add(1))
        .min(MAX_TRANSFER_BYTES)
}

fn pull_response(req: &RemotingCommand, f: Fetched) -> RemotingCommand {
    tracing::debug!(
        topic = req.ext("topic").unwrap_or_default(),
        queue = req.ext("queueId").unwrap_or_default(),
        offset = req.ext("queueOffset").unwrap_or_default(),
        status = f.status.name(),
        next = f.next_begin,
        max = f.max,
        messages = f.messages.len(),
        "pull answered"
    );
    let code = match f.status {
        Status::Found => codes::SUCCESS,
        Status::NoMatchedMessage => codes::PULL_RETRY_IMMEDIATELY,
        Status::NoMessageInQueue => {
            if req.ext_i64("queueOffset").unwrap_or(0) != 0 {
                codes::PULL_OFFSET_MOVED
            } else {
                codes::PULL_NOT_FOUND
            }
        }
        Status::OffsetOverflowOne => codes::PULL_NOT_FOUND,
        Status::OffsetTooSmall | Status::OffsetOverflowBadly => codes::PULL_OFFSET_MOVED,
    };
    let mut resp = RemotingCommand::response_to(req, code, Some(f.status.name().to_string()));
    resp.set_ext("suggestWhichBrokerId", "0");
    resp.set_ext("nextBeginOffset", f.next_begin.to_compact_string());
    resp.set_ext("minOffset", f.min.to_compact_string());
    resp.set_ext("maxOffset", f.max.to_compact_string());
    resp.body_parts = f.messages;
    resp
}
