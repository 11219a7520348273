//! Produce and InitProducerId.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::ResponseError;
use msglog::{FlushPolicy, LogError, Partition, QuotaPolicy};
use tracing::{debug, warn};

use super::{str_bytes, Ctx};
use crate::instance::now_ms;
use crate::security::{Operation, ResourceType};

/// One partition's part of a produce request, once the cheap checks passed.
struct Append {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    records: Bytes,
    max_message_bytes: i32,
    flush_each_append: bool,
}

fn partition_error(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(|m| str_bytes(&m)))
}

/// Answers `None` for acks=0, as Kafka sends no response then.
pub(crate) async fn produce(ctx: &Ctx<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let shared = ctx.shared;
    let acks = req.acks;
    let up_front_error = if !matches!(acks, -1..=1) {
        Some((ResponseError::InvalidRequiredAcks.code(), None))
    } else if req.transactional_id.is_some() {
        Some((
            ResponseError::InvalidRequest.code(),
            Some("transactions are not supported by this broker".to_string()),
        ))
    } else {
        None
    };

    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut work: Vec<Append> = Vec::new();
    for (ti, topic_data) in req.topic_data.into_iter().enumerate() {
        let name = topic_data.name.0.clone();
        let topic = shared.topic(&name);
        let authorized = ctx.allowed(Operation::Write, ResourceType::Topic, &name);
        let mut parts = Vec::with_capacity(topic_data.partition_data.len());
        for (slot, pd) in topic_data.partition_data.into_iter().enumerate() {
            let index = pd.index;
            let check = if let Some((code, msg)) = &up_front_error {
                Err((*code, msg.clone()))
            } else if !authorized {
                Err((ResponseError::TopicAuthorizationFailed.code(), None))
            } else {
                match topic
                    .as_ref()
                    .and_then(|t| t.partition(index).map(|p| (t, p)))
                {
                    None => Err((ResponseError::UnknownTopicOrPartition.code(), None)),
                    Some((t, _)) if t.leader(index) != Some(ctx.broker_id) => {
                        Err((ResponseError::NotLeaderOrFollower.code(), None))
                    }
                    Some((t, p)) => match pd.records {
                        None => Err((ResponseError::CorruptMessage.code(), None)),
                        Some(records) => Ok(Append {
                            topic: ti,
                            slot,
                            partition: p.clone(),
                            records,
                            max_message_bytes: t.max_message_bytes,
                            flush_each_append: t.flush_each_append,
                        }),
                    },
                }
            };
            match check {
                Ok(a) => {
                    work.push(a);
                    parts.push(partition_error(index, 0, None));
                }
                Err((code, msg)) => parts.push(partition_error(index, code, msg)),
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(parts),
        );
    }

    if !work.is_empty() {
        let done = append_all(shared, work, acks).await;
        match done {
            Ok(results) => {
                for (ti, slot, resp) in results {
                    if let Some(p) = responses
                        .get_mut(ti)
                        .and_then(|t| t.partition_responses.get_mut(slot))
                    {
                        *p = resp.with_index(p.index);
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "produce task failed");
                for t in &mut responses {
                    for p in &mut t.partition_responses {
                        if p.error_code == 0 {
                            *p = partition_error(
                                p.index,
                                ResponseError::KafkaStorageError.code(),
                                None,
                            );
                        }
                    }
                }
            }
        }
        shared.notify_append();
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Below this many bytes a request's partitions are appended one after the other in one
/// blocking task; above, each partition gets its own, so their disk writes overlap.
const PARALLEL_APPEND_BYTES: usize = 128 * 1024;

/// One partition's append: where its response goes, the response, and the partition if it
/// took the records (for the flush before the acknowledgement).
struct Appended {
    topic: usize,
    slot: usize,
    resp: PartitionProduceResponse,
    flush: Option<(Arc<Partition>, bool)>,
}

/// Appends every partition's batches, then makes them durable if the flush policy asks for
/// it before acknowledging. Partitions are appended in parallel when the request is large:
/// with direct I/O each append waits for the disk, which takes several writes at once.
async fn append_all(
    shared: &Arc<crate::instance::Shared>,
    work: Vec<Append>,
    acks: i16,
) -> Result<Vec<(usize, usize, PartitionProduceResponse)>, tokio::task::JoinError> {
    let now = now_ms();
    let bytes: usize = work.iter().map(|a| a.records.len()).sum();
    if work.len() < 2 || bytes < PARALLEL_APPEND_BYTES {
        let s = shared.clone();
        return tokio::task::spawn_blocking(move || {
            let appended = work.into_iter().map(|a| append_one(&s, a, now)).collect();
            flush_before_ack(&s, appended, acks, now)
        })
        .await;
    }
    let tasks: Vec<_> = work
        .into_iter()
        .map(|a| {
            let s = shared.clone();
            tokio::task::spawn_blocking(move || append_one(&s, a, now))
        })
        .collect();
    let mut appended = Vec::with_capacity(tasks.len());
    for task in tasks {
        appended.push(task.await?);
    }
    let s = shared.clone();
    tokio::task::spawn_blocking(move || flush_before_ack(&s, appended, acks, now)).await
}

fn append_one(shared: &crate::instance::Shared, a: Append, now: i64) -> Appended {
    let mut flush = None;
    let resp = match oversized_batch(&a.records, a.max_message_bytes) {
        Some(size) => partition_error(
            0,
            ResponseError::MessageTooLarge.code(),
            Some(format!(
                "record batch of {size} bytes exceeds max.message.bytes {}",
                a.max_message_bytes
            )),
        ),
        None => match a.partition.append(&a.records, now) {
            Ok(info) => {
                shared
                    .traffic
                    .add_in(a.partition.topic(), a.records.len() as u64);
                flush = Some((a.partition.clone(), a.flush_each_append));
                PartitionProduceResponse::default()
                    .with_base_offset(info.base_offset)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(info.log_start_offset)
            }
            Err(LogError::DuplicateSequence { base_offset }) => {
                debug!(
                    topic = a.partition.topic(),
                    partition = a.partition.id(),
                    base_offset,
                    "duplicate batch acknowledged again"
                );
                PartitionProduceResponse::default()
                    .with_base_offset(base_offset)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(a.partition.log_start_offset())
            }
            Err(e) => {
                let (code, msg) = log_error_code(&e);
                debug!(topic = a.partition.topic(), partition = a.partition.id(), error = %e, "append refused");
                partition_error(0, code, msg)
            }
        },
    };
    Appended {
        topic: a.topic,
        slot: a.slot,
        resp,
        flush,
    }
}

/// Flushes what the policy wants durable before the answer (acks=all under AcksAll, and
/// topics with flush.messages=1 always), and makes room under a time_base quota.
fn flush_before_ack(
    shared: &crate::instance::Shared,
    appended: Vec<Appended>,
    acks: i16,
    now: i64,
) -> Vec<(usize, usize, PartitionProduceResponse)> {
    let flush_all = acks == -1 && shared.config.store.flush == FlushPolicy::AcksAll;
    let flushing: Vec<Arc<Partition>> = appended
        .iter()
        .filter_map(|a| a.flush.as_ref())
        .filter(|(_, each)| flush_all || *each)
        .map(|(p, _)| p.clone())
        .collect();
    let mut out: Vec<_> = appended
        .into_iter()
        .map(|a| (a.topic, a.slot, a.resp))
        .collect();
    if !flushing.is_empty() {
        for p in &flushing {
            if let Err(e) = p.flush() {
                warn!(topic = p.topic(), partition = p.id(), error = %e, "flush before ack failed");
                for (_, _, r) in out.iter_mut() {
                    if r.error_code == 0 {
                        *r = partition_error(0, ResponseError::KafkaStorageError.code(), None);
                    }
                }
                break;
            }
        }
    }
    if shared.config.store.quota_policy == QuotaPolicy::TimeBase && shared.store.over_quota() {
        if let Err(e) = shared.store.enforce_retention(now) {
            warn!(error = %e, "making room under the storage quota failed");
        }
    }
    out
}

/// Size of the first batch larger than the topic allows, if any.
fn oversized_batch(records: &[u8], max: i32) -> Option<usize> {
    let mut rest = records;
    while !rest.is_empty() {
        let Ok(h) = msglog::batch::BatchHeader::parse(rest) else {
            return None; // the log rejects it as corrupt with the precise reason
        };
        let len = h.total_len();
        if len > max.max(0) as usize {
            return Some(len);
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    None
}

pub(crate) fn log_error_code(e: &LogError) -> (i16, Option<String>) {
    match e {
        LogError::CorruptBatch(m) => (ResponseError::CorruptMessage.code(), Some(m.clone())),
        // POLICY_VIOLATION, not a retriable storage error: under produce_reject the quota
        // frees only as retention deletes old data, so retrying producers would stall
        // silently; a permanent error tells the application at once and says why.
        LogError::QuotaExceeded { used, quota } => (
            ResponseError::PolicyViolation.code(),
            Some(format!(
                "instance storage quota reached ({used} of {quota} bytes used, retention_policy=produce_reject)"
            )),
        ),
        LogError::OutOfOrderSequence { expected, got } => (
            ResponseError::OutOfOrderSequenceNumber.code(),
            Some(format!("expected sequence {expected}, got {got}")),
        ),
        LogError::InvalidProducerEpoch { .. } => (ResponseError::InvalidProducerEpoch.code(), None),
        LogError::MessageTooLarge { size, max } => (
            ResponseError::MessageTooLarge.code(),
            Some(format!("batch of {size} bytes exceeds {max}")),
        ),
        LogError::OffsetOutOfRange { .. } => (ResponseError::OffsetOutOfRange.code(), None),
        LogError::UnknownPartition => (ResponseError::UnknownTopicOrPartition.code(), None),
        _ => (ResponseError::KafkaStorageError.code(), None),
    }
}

pub(crate) async fn init_producer_id(
    ctx: &Ctx<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        return fail(ResponseError::InvalidRequest.code());
    }
    if !ctx.allowed_cluster(Operation::IdempotentWrite) {
        return fail(ResponseError::ClusterAuthorizationFailed.code());
    }
    // KIP-360: a producer that lost track of its sequences asks for its own id with a bumped
    // epoch; the log then expects sequence 0 from it.
    let current = req.producer_id.0;
    if current >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(current))
            .with_producer_epoch(req.producer_epoch + 1);
    }
    let s = ctx.shared.clone();
    match tokio::task::spawn_blocking(move || s.next_producer_id()).await {
        Ok(Ok(id)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Ok(Err(e)) => {
            warn!(error = %e, "allocating a producer id failed");
            fail(ResponseError::KafkaStorageError.code())
        }
        Err(e) => {
            warn!(error = %e, "producer id task failed");
            fail(ResponseError::UnknownServerError.code())
        }
    }
}
