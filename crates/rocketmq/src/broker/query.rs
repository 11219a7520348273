//! QUERY_MESSAGE: the messages of a topic whose keys (`KEYS`, or the client's unique key
//! `UNIQ_KEY`) match, stored within a time range.
//!
//! The lookup walks each queue of the topic from the first message stored at or after the
//! range's start (the log's time index finds it) to the range's end, reading message
//! properties only. Apache keeps a hash index file for this; a time-bounded walk needs no
//! extra writes on the send path and gives the same answers, at a cost that grows with the
//! messages inside the range, so a walk stops after [`MAX_SCANNED`] messages per queue.

use std::sync::Arc;

use super::header::{field, Header};
use super::{Broker, QueueStore};
use crate::message::{prop, stored_properties, stored_timestamp};
use crate::remoting::{codes, RemotingCommand};

/// Messages one query reads per queue at most.
const MAX_SCANNED: usize = 1_000_000;
/// Apache's `defaultQueryMaxNum`, used for unique-key queries.
const DEFAULT_QUERY_MAX: usize = 32;

impl Broker {
    pub(super) async fn query_message(self: &Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let topic = field!(req, req.required("topic")).to_string();
        let key = field!(req, req.required("key")).to_string();
        let mut max = field!(req, req.int("maxNum")).clamp(1, 1024) as usize;
        let begin = field!(req, req.int("beginTimestamp"));
        let end = field!(req, req.int("endTimestamp"));
        let unique = req.ext("_UNIQUE_KEY_QUERY") == Some("true");
        if unique {
            max = DEFAULT_QUERY_MAX;
        }
        let body = self
            .find_by_key(&topic, &key, unique, begin, end, max)
            .await;
        if body.is_empty() {
            return RemotingCommand::response_to(
                req,
                codes::QUERY_NOT_FOUND,
                Some("can not find message, maybe time range not correct".into()),
            );
        }
        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.set_ext("indexLastUpdateTimestamp", super::now_ms().to_string());
        resp.set_ext("indexLastUpdatePhyoffset", "0");
        resp.body = body.into_iter().flatten().collect::<Vec<u8>>().into();
        resp
    }

    /// Stored messages (offsets filled) of `topic` whose key or unique key is `key`.
    pub(crate) async fn find_by_key(
        self: &Arc<Self>,
        topic: &str,
        key: &str,
        unique_only: bool,
        begin: i64,
        end: i64,
        max: usize,
    ) -> Vec<Vec<u8>> {
        let key = key.to_string();
        self.walk_topic(topic, begin, end, max, move |bytes| {
            let Some(props) = stored_properties(bytes) else {
                return false;
            };
            props.get(prop::UNIQ_KEY) == Some(key.as_str())
                || (!unique_only && props.keys().any(|k| k == key))
        })
        .await
    }

    /// Stored messages (offsets filled) of `topic` stored between `begin` and `end`
    /// (milliseconds, inclusive) that `keep` accepts, queue by queue, at most `max`: each
    /// queue is walked from the first message at or after `begin` (the log's time index
    /// finds it) until one stored after `end`, at most [`MAX_SCANNED`] messages.
    pub(crate) async fn walk_topic<F>(
        self: &Arc<Self>,
        topic: &str,
        begin: i64,
        end: i64,
        max: usize,
        keep: F,
    ) -> Vec<Vec<u8>>
    where
        F: Fn(&[u8]) -> bool + Clone + Send + 'static,
    {
        let Some(t) = self.tables.topic(topic) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for queue in self.store.queues_of(t.serial) {
            if found.len() >= max {
                break;
            }
            let start = self.offset_for_time(topic, queue.queue_id, begin).await;
            let want = max - found.len();
            let keep = keep.clone();
            let hits = tokio::task::spawn_blocking(move || {
                let mut hits = Vec::new();
                let mut at = start;
                let mut scanned = 0usize;
                while at < queue.max_offset() && scanned < MAX_SCANNED && hits.len() < want {
                    let Ok(batch) = QueueStore::read(&queue, at, 256, 1024 * 1024) else {
                        break;
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for m in batch {
                        scanned += 1;
                        at = m.queue_offset + 1;
                        match stored_timestamp(&m.bytes) {
                            Some(ts) if ts > end => return hits,
                            Some(ts) if ts >= begin && keep(&m.bytes) => hits.push(m.bytes),
                            _ => {}
                        }
                        if hits.len() >= want {
                            break;
                        }
                    }
                }
                hits
            })
            .await
            .unwrap_or_default();
            found.extend(hits);
        }
        found
    }
}
