//! Transactional messages: a prepared (half) message waits in `RMQ_SYS_TRANS_HALF_TOPIC`
//! with its real topic in properties; END_TRANSACTION commits it (re-put to its real queue)
//! or rolls it back. Each decision is one message in `RMQ_SYS_TRANS_OP_HALF_TOPIC` whose body
//! is the half message's queue offset, so decisions survive a restart (read back at start).
//! Half messages without a decision after `transaction_timeout` are checked back: the
//! broker sends CHECK_TRANSACTION_STATE to an online producer of the message's group (`PGROUP`),
//! which answers with END_TRANSACTION; after `MAX_CHECKS` unanswered checks the message is
//! dropped, as Apache's `transactionCheckMax` (15).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{debug, info, warn};

use super::header::{field, Header};
use super::topics::system;
use super::{now_ms, Broker, QueueStore};
use crate::message::{patch_offsets, prop, sys_flag, Properties, StoredMessage};
use crate::remoting::{codes, RemotingCommand};

const MAX_CHECKS: u32 = 15;

/// Decisions taken and checks sent, by half-message queue offset.
#[derive(Default)]
pub struct Transactions {
    decided: Mutex<HashSet<i64>>,
    checks: Mutex<HashMap<i64, u32>>,
    /// Half offsets below this are all decided or dropped.
    settled_below: Mutex<i64>,
    loaded: Mutex<bool>,
}

impl Broker {
    /// Reads the decisions of the op topic once (at the first check or decision).
    async fn load_decisions(self: &Arc<Self>) {
        if *self.transactions.loaded.lock() {
            return;
        }
        let Some(op) = self.tables.topic(system::TRANS_OP_HALF) else {
            return;
        };
        let Some(queue) = self.store.queue(op.serial, 0) else {
            *self.transactions.loaded.lock() = true;
            return;
        };
        let read = tokio::task::spawn_blocking(move || {
            let mut offsets = Vec::new();
            let mut at = queue.min_offset();
            while at < queue.max_offset() {
                let Ok(batch) = QueueStore::read(&queue, at, 1024, 1024 * 1024) else {
                    break;
                };
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    at = m.queue_offset + 1;
                    if let Ok((msg, _, _)) = StoredMessage::decode(&m.bytes) {
                        if let Ok(o) = String::from_utf8_lossy(&msg.body).trim().parse::<i64>() {
                            offsets.push(o);
                        }
                    }
                }
            }
            offsets
        })
        .await
        .unwrap_or_default();
        self.transactions.decided.lock().extend(read);
        *self.transactions.loaded.lock() = true;
    }

    /// Records that the half message at `half_offset` is decided.
    async fn record_decision(self: &Arc<Self>, half_offset: i64) {
        self.transactions.decided.lock().insert(half_offset);
        self.transactions.checks.lock().remove(&half_offset);
        let op = StoredMessage {
            topic: system::TRANS_OP_HALF.to_string(),
            queue_id: 0,
            flag: 0,
            sys_flag: 0,
            born_timestamp: now_ms(),
            born_host: self.store_host(),
            store_timestamp: 0,
            store_host: self.store_host(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: half_offset.to_string().into_bytes().into(),
            properties: {
                let mut p = Properties::default();
                p.set(prop::TAGS, "d");
                p
            },
        };
        if let Err(e) = self.put_messages(vec![op]).await {
            warn!(error = %e, half_offset, "recording a transaction decision failed");
        }
    }

    /// END_TRANSACTION (oneway from clients): commit re-puts the half message to its real
    /// queue, rollback only records the decision.
    pub(super) async fn end_transaction(
        self: &Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let physical = field!(req, req.int("commitLogOffset"));
        let decision = field!(req, req.int("commitOrRollback")) as i32;
        let ok = RemotingCommand::response_to(req, codes::SUCCESS, None);
        if decision == 0 {
            // TRANSACTION_NOT_TYPE: the producer does not know yet; wait for a check.
            return ok;
        }
        self.load_decisions().await;
        let Some((mut half, half_offset, _)) = self.message_at(physical).await else {
            return RemotingCommand::response_to(
                req,
                codes::SYSTEM_ERROR,
                Some("Find prepared transaction message failed".into()),
            );
        };
        if half.topic != system::TRANS_HALF {
            return RemotingCommand::response_to(
                req,
                codes::SYSTEM_ERROR,
                Some("Find prepared transaction message failed".into()),
            );
        }
        if self.transactions.decided.lock().contains(&half_offset) {
            return ok;
        }
        if decision == sys_flag::TRANSACTION_COMMIT {
            let (Some(topic), Some(queue_id)) = (
                half.properties.get(prop::REAL_TOPIC).map(str::to_string),
                half.properties
                    .get(prop::REAL_QID)
                    .and_then(|q| q.parse::<i32>().ok()),
            ) else {
                return RemotingCommand::response_to(
                    req,
                    codes::SYSTEM_ERROR,
                    Some("the half message has no real topic".into()),
                );
            };
            half.properties.remove(prop::TRANSACTION_PREPARED);
            half.topic = topic;
            half.queue_id = queue_id;
            half.sys_flag =
                (half.sys_flag & !sys_flag::TRANSACTION_MASK) | sys_flag::TRANSACTION_COMMIT;
            half.prepared_transaction_offset = half_offset;
            if let Err(e) = self.put_messages(vec![half]).await {
                return self.put_error(ok, e);
            }
            info!(half_offset, "transaction committed");
        } else {
            info!(half_offset, "transaction rolled back");
        }
        self.record_decision(half_offset).await;
        ok
    }

    /// Sends CHECK_TRANSACTION_STATE for every undecided half message older than the
    /// timeout, oldest first.
    pub(super) async fn check_transactions(self: &Arc<Self>, timeout: Duration) {
        let Some(half) = self.tables.topic(system::TRANS_HALF) else {
            return;
        };
        let Some(queue) = self.store.queue(half.serial, 0) else {
            return;
        };
        if *self.transactions.settled_below.lock() >= queue.max_offset() {
            return;
        }
        self.load_decisions().await;
        let from = (*self.transactions.settled_below.lock()).max(queue.min_offset());
        let q = queue.clone();
        let Ok(Ok(batch)) =
            tokio::task::spawn_blocking(move || QueueStore::read(&q, from, 256, 4 * 1024 * 1024))
                .await
        else {
            return;
        };
        let now = now_ms();
        let mut settled = true;
        for m in batch {
            let decided = self.transactions.decided.lock().contains(&m.queue_offset);
            if decided {
                if settled {
                    *self.transactions.settled_below.lock() = m.queue_offset + 1;
                }
                continue;
            }
            let Ok((mut msg, _, _)) = StoredMessage::decode(&m.bytes) else {
                continue;
            };
            if now - msg.store_timestamp < timeout.as_millis() as i64 {
                break;
            }
            let checks = {
                let mut c = self.transactions.checks.lock();
                let n = c.entry(m.queue_offset).or_insert(0);
                *n += 1;
                *n
            };
            if checks > MAX_CHECKS {
                info!(
                    half_offset = m.queue_offset,
                    "transaction dropped after {MAX_CHECKS} checks"
                );
                self.record_decision(m.queue_offset).await;
                continue;
            }
            settled = false;
            let group = msg
                .properties
                .get(prop::PRODUCER_GROUP)
                .unwrap_or_default()
                .to_string();
            let Some(producer) = self.clients.producer_channels(&group).into_iter().next() else {
                debug!(group, "no producer online for a transaction check");
                continue;
            };
            let uniq = msg
                .properties
                .get(prop::UNIQ_KEY)
                .unwrap_or_default()
                .to_string();
            if let Some(t) = msg.properties.get(prop::REAL_TOPIC) {
                msg.topic = t.to_string();
            }
            if let Some(q) = msg
                .properties
                .get(prop::REAL_QID)
                .and_then(|q| q.parse().ok())
            {
                msg.queue_id = q;
            }
            let Ok(mut body) = msg.encode() else {
                continue;
            };
            patch_offsets(&mut body, m.queue_offset, m.physical_offset);
            let mut check = RemotingCommand::request(codes::CHECK_TRANSACTION_STATE, 0);
            check.set_ext("tranStateTableOffset", m.queue_offset.to_string());
            check.set_ext("commitLogOffset", m.physical_offset.to_string());
            check.set_ext("msgId", uniq.clone());
            check.set_ext("transactionId", uniq);
            check.set_ext(
                "offsetMsgId",
                crate::message::offset_message_id(self.store_host(), m.physical_offset),
            );
            check.body = body.into();
            debug!(
                half_offset = m.queue_offset,
                group, "checking transaction state"
            );
            producer.conn.oneway(check);
        }
    }
}
