//! Fetch (with long polling), ListOffsets and OffsetForLeaderEpoch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::ResponseError;
use msglog::{LogError, Partition};
use tokio::time::Instant;
use tracing::warn;

use super::Ctx;
use crate::security::{Operation, ResourceType};

/// A partition of a fetch request after its checks: readable, or an error code.
struct FetchTarget {
    partition: Result<Arc<Partition>, i16>,
    index: i32,
    offset: i64,
    max_bytes: usize,
}

pub(crate) async fn fetch(ctx: &Ctx<'_>, req: FetchRequest) -> FetchResponse {
    let shared = ctx.shared;
    let mut targets: Vec<(TopicName, Vec<FetchTarget>)> = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = shared.topic(&t.topic);
        let authorized = ctx.allowed(Operation::Read, ResourceType::Topic, &t.topic);
        let parts = t
            .partitions
            .into_iter()
            .map(|p| {
                let partition = if !authorized {
                    Err(ResponseError::TopicAuthorizationFailed.code())
                } else {
                    match topic
                        .as_ref()
                        .and_then(|tp| tp.partition(p.partition).map(|x| (tp, x)))
                    {
                        None => Err(ResponseError::UnknownTopicOrPartition.code()),
                        Some((tp, _)) if tp.leader(p.partition) != Some(ctx.broker_id) => {
                            Err(ResponseError::NotLeaderOrFollower.code())
                        }
                        Some((_, part)) => Ok(part.clone()),
                    }
                };
                FetchTarget {
                    partition,
                    index: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                }
            })
            .collect();
        targets.push((t.topic, parts));
    }
    let targets = Arc::new(targets);
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut appends = shared.appends.subscribe();
    let mut shutdown = shared.shutdown.subscribe();

    loop {
        // Mark the current append count seen before reading, so an append that lands while
        // we read wakes the wait below instead of being missed.
        appends.borrow_and_update();
        let t = targets.clone();
        let read =
            tokio::task::spawn_blocking(move || read_all(&t, max_bytes, read_committed)).await;
        let (responses, bytes, errors) = match read {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "fetch task failed");
                return FetchResponse::default()
                    .with_error_code(ResponseError::UnknownServerError.code());
            }
        };
        if bytes >= min_bytes.max(1) || errors || Instant::now() >= deadline {
            count_out(shared, &responses);
            return FetchResponse::default().with_responses(responses);
        }
        tokio::select! {
            changed = appends.changed() => if changed.is_err() {
                count_out(shared, &responses);
                return FetchResponse::default().with_responses(responses);
            },
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {
                count_out(shared, &responses);
                return FetchResponse::default().with_responses(responses);
            }
        }
    }
}

/// Reads every target once. Returns the responses, the bytes of records in them, and
/// whether any partition has an error (which answers the fetch at once, as Kafka does).
fn read_all(
    targets: &[(TopicName, Vec<FetchTarget>)],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut budget = max_bytes;
    let mut total = 0usize;
    let mut errors = false;
    let mut out = Vec::with_capacity(targets.len());
    for (name, parts) in targets {
        let mut pds = Vec::with_capacity(parts.len());
        for t in parts {
            let pd = PartitionData::default()
                .with_partition_index(t.index)
                .with_aborted_transactions(read_committed.then(Vec::new));
            let pd = match &t.partition {
                Err(code) => {
                    errors = true;
                    error_data(pd, *code)
                }
                Ok(p) => {
                    // Once the response is full, later partitions are reported without data;
                    // the first partition with data always gets at least one whole batch.
                    let limit = t.max_bytes.min(budget);
                    if limit == 0 && total > 0 {
                        pd.with_high_watermark(p.high_watermark())
                            .with_last_stable_offset(p.high_watermark())
                            .with_log_start_offset(p.log_start_offset())
                            .with_records(Some(Bytes::new()))
                    } else {
                        match p.read(t.offset, limit.max(1)) {
                            Ok(data) => {
                                let n = data.records.len();
                                total += n;
                                budget = budget.saturating_sub(n);
                                pd.with_high_watermark(data.high_watermark)
                                    .with_last_stable_offset(data.high_watermark)
                                    .with_log_start_offset(data.log_start_offset)
                                    .with_records(Some(data.records))
                            }
                            Err(e) => {
                                errors = true;
                                let code = match e {
                                    LogError::OffsetOutOfRange { .. } => {
                                        ResponseError::OffsetOutOfRange.code()
                                    }
                                    other => {
                                        warn!(topic = p.topic(), partition = p.id(), error = %other, "read failed");
                                        ResponseError::KafkaStorageError.code()
                                    }
                                };
                                error_data(pd, code)
                                    .with_high_watermark(p.high_watermark())
                                    .with_log_start_offset(p.log_start_offset())
                            }
                        }
                    }
                }
            };
            pds.push(pd);
        }
        out.push(
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_partitions(pds),
        );
    }
    (out, total, errors)
}

fn error_data(pd: PartitionData, code: i16) -> PartitionData {
    pd.with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

pub(crate) async fn list_offsets(ctx: &Ctx<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let shared = ctx.shared.clone();
    let broker = ctx.broker_id;
    // leader_epoch exists from v4; setting it on older versions fails to encode.
    let leader_epoch = if ctx.version >= 4 { 0 } else { -1 };
    let authorized: Vec<bool> = req
        .topics
        .iter()
        .map(|t| ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name))
        .collect();
    let topics = tokio::task::spawn_blocking(move || {
        req.topics
            .into_iter()
            .zip(authorized)
            .map(|(t, ok)| {
                let topic = shared.topic(&t.name);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let resp = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        let fail = |code: i16| resp.clone().with_error_code(code).with_offset(-1).with_timestamp(-1);
                        if !ok {
                            return fail(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let Some((tp, part)) = topic
                            .as_ref()
                            .and_then(|tp| tp.partition(p.partition_index).map(|x| (tp, x)))
                        else {
                            return fail(ResponseError::UnknownTopicOrPartition.code());
                        };
                        if tp.leader(p.partition_index) != Some(broker) {
                            return fail(ResponseError::NotLeaderOrFollower.code());
                        }
                        match offset_for(part, p.timestamp) {
                            Ok((offset, timestamp)) => resp
                                .with_offset(offset)
                                .with_timestamp(timestamp)
                                .with_leader_epoch(leader_epoch),
                            Err(e) => {
                                warn!(topic = part.topic(), partition = part.id(), error = %e, "offset lookup failed");
                                fail(ResponseError::KafkaStorageError.code())
                            }
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect::<Vec<_>>()
    })
    .await;
    match topics {
        Ok(topics) => ListOffsetsResponse::default().with_topics(topics),
        Err(e) => {
            warn!(error = %e, "list offsets task failed");
            ListOffsetsResponse::default()
        }
    }
}

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// (offset, timestamp) for a ListOffsets query: latest, earliest, or the first record whose
/// timestamp is at or after the given one (-1, -1 when there is none).
fn offset_for(p: &Partition, timestamp: i64) -> Result<(i64, i64), LogError> {
    match timestamp {
        LATEST => Ok((p.high_watermark(), -1)),
        EARLIEST => Ok((p.log_start_offset(), -1)),
        ts => match p.offset_for_timestamp(ts)? {
            None => Ok((-1, -1)),
            Some((base, batch_max_ts)) => {
                let data = p.read(base, 1)?;
                Ok(first_record_at_or_after(&data.records, ts)
                    .unwrap_or((base.max(p.log_start_offset()), batch_max_ts)))
            }
        },
    }
}

/// Walks the records of the first batch in `batches` to find the first one whose timestamp
/// is >= `ts`. Only uncompressed batches can be walked; for others the caller falls back to
/// the batch's base offset.
fn first_record_at_or_after(batches: &[u8], ts: i64) -> Option<(i64, i64)> {
    let h = msglog::batch::BatchHeader::parse(batches).ok()?;
    if h.attributes & 0x07 != 0 {
        return None;
    }
    let end = h.total_len().min(batches.len());
    let mut rest = batches.get(msglog::batch::HEADER_LEN..end)?;
    for _ in 0..h.records_count.max(0) {
        let (len, n) = read_varint(rest)?;
        let body = rest.get(n..n + usize::try_from(len).ok()?)?;
        let after_attr = body.get(1..)?;
        let (ts_delta, m) = read_varint(after_attr)?;
        let (off_delta, _) = read_varint(after_attr.get(m..)?)?;
        let record_ts = h.base_timestamp.checked_add(ts_delta)?;
        if record_ts >= ts {
            return Some((h.base_offset + off_delta, record_ts));
        }
        rest = rest.get(n + body.len()..)?;
    }
    None
}

/// Zig-zag varint (Kafka's varint and varlong share the encoding).
fn read_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, b) in buf.iter().enumerate().take(10) {
        value |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((value >> 1) as i64) ^ -((value & 1) as i64), i + 1));
        }
    }
    None
}

/// Every partition has had one leader epoch (0); its end is the high watermark.
pub(crate) fn offset_for_leader_epoch(
    ctx: &Ctx<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.shared.topic(&t.topic);
            let authorized = ctx.allowed(Operation::Describe, ResourceType::Topic, &t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = EpochEndOffset::default().with_partition(p.partition);
                    let fail = |code: i16| {
                        r.clone()
                            .with_error_code(code)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1)
                    };
                    if !authorized {
                        return fail(ResponseError::TopicAuthorizationFailed.code());
                    }
                    match topic
                        .as_ref()
                        .and_then(|tp| tp.partition(p.partition).map(|x| (tp, x)))
                    {
                        None => fail(ResponseError::UnknownTopicOrPartition.code()),
                        Some((tp, _)) if tp.leader(p.partition) != Some(ctx.broker_id) => {
                            fail(ResponseError::NotLeaderOrFollower.code())
                        }
                        Some((_, part)) if p.leader_epoch >= 0 => r
                            .with_leader_epoch(0)
                            .with_end_offset(part.high_watermark()),
                        Some(_) => r.with_leader_epoch(-1).with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// Adds the record bytes of a fetch answer to the instance's and the topics' traffic.
fn count_out(shared: &crate::instance::Shared, responses: &[FetchableTopicResponse]) {
    for t in responses {
        let n: usize = t
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        shared.traffic.add_out(&t.topic, n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(read_varint(&[0x00]), Some((0, 1)));
        assert_eq!(read_varint(&[0x01]), Some((-1, 1)));
        assert_eq!(read_varint(&[0x02]), Some((1, 1)));
        assert_eq!(read_varint(&[0xac, 0x02]), Some((150, 2)));
        assert_eq!(read_varint(&[0x80]), None);
    }
}
