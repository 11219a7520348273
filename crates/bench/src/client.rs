//! A minimal Kafka client: one request at a time, or pipelined produce.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

const METADATA_V: i16 = 7;
const CREATE_TOPICS_V: i16 = 4;
const PRODUCE_V: i16 = 7;
const FETCH_V: i16 = 11;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn frame<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation: i32,
    req: &R,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_u32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("opendms-bench")))
        .encode(&mut buf, R::header_version(version))?;
    req.encode(&mut buf, version)?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

async fn read_frame<R: AsyncReadExt + Unpin>(rd: &mut R) -> anyhow::Result<Bytes> {
    let size = rd.read_u32().await.context("connection closed")? as usize;
    let mut buf = vec![0u8; size];
    rd.read_exact(&mut buf).await?;
    Ok(Bytes::from(buf))
}

fn decode<S: Decodable + HeaderVersion>(mut body: Bytes, version: i16) -> anyhow::Result<S> {
    ResponseHeader::decode(&mut body, S::header_version(version))?;
    S::decode(&mut body, version)
}

pub struct Connection {
    stream: Mutex<TcpStream>,
    correlation: AtomicI32,
}

impl Connection {
    pub async fn connect(addr: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: Mutex::new(stream),
            correlation: AtomicI32::new(0),
        })
    }

    pub async fn call<R: Encodable + HeaderVersion, S: Decodable + HeaderVersion>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> anyhow::Result<S> {
        let c = self.correlation.fetch_add(1, Ordering::SeqCst);
        let bytes = frame(key, version, c, req)?;
        let mut stream = self.stream.lock().await;
        stream.write_all(&bytes).await?;
        let body = read_frame(&mut *stream).await?;
        decode(body, version)
    }

    fn produce_request(
        topic: &str,
        partitions: &[i32],
        batch: &Bytes,
        acks: i16,
    ) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(
                    partitions
                        .iter()
                        .map(|&p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(batch.clone()))
                        })
                        .collect(),
                )])
    }

    pub async fn produce_one(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> anyhow::Result<()> {
        let resp: ProduceResponse = self
            .call(
                ApiKey::Produce,
                PRODUCE_V,
                &Self::produce_request(topic, &[partition], &batch, acks),
            )
            .await?;
        for t in resp.responses {
            for p in t.partition_responses {
                if p.error_code != 0 {
                    bail!("produce error {}", p.error_code);
                }
            }
        }
        Ok(())
    }

    /// Sends the same batch to every partition, `inflight` requests at a time, until `sent`
    /// (shared by all connections) reaches `limit` bytes.
    #[allow(clippy::too_many_arguments)]
    pub async fn produce_loop(
        self,
        topic: &str,
        partitions: &[i32],
        batch: Bytes,
        acks: i16,
        inflight: usize,
        sent: &Arc<AtomicU64>,
        limit: u64,
        errors: &Arc<AtomicU64>,
    ) -> anyhow::Result<()> {
        let req = Self::produce_request(topic, partitions, &batch, acks);
        let request = frame(ApiKey::Produce, PRODUCE_V, 0, &req)?;
        let per_request = (batch.len() * partitions.len()) as u64;
        let (mut rd, mut wr) = self.stream.into_inner().into_split();
        let slots = Arc::new(Semaphore::new(inflight.max(1)));
        let reader_slots = slots.clone();
        let errs = errors.clone();
        let (done_tx, mut done_rx) = tokio::sync::watch::channel(u64::MAX);
        let reader = tokio::spawn(async move {
            let mut received = 0u64;
            loop {
                if received >= *done_rx.borrow() {
                    return anyhow::Ok(());
                }
                tokio::select! {
                    body = read_frame(&mut rd) => {
                        let resp: ProduceResponse = decode(body?, PRODUCE_V)?;
                        for t in resp.responses {
                            for p in t.partition_responses {
                                if p.error_code != 0 {
                                    errs.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        received += 1;
                        reader_slots.add_permits(1);
                    }
                    _ = done_rx.changed() => {}
                }
            }
        });
        let mut requests = 0u64;
        let mut correlation: i32 = 0;
        let mut buf = BytesMut::from(&request[..]);
        loop {
            let permit = slots.acquire().await?;
            if sent.fetch_add(per_request, Ordering::SeqCst) >= limit {
                sent.fetch_sub(per_request, Ordering::SeqCst);
                break;
            }
            permit.forget();
            correlation = correlation.wrapping_add(1);
            buf[8..12].copy_from_slice(&correlation.to_be_bytes());
            wr.write_all(&buf).await?;
            requests += 1;
        }
        let _ = done_tx.send(requests);
        tokio::time::timeout(Duration::from_secs(120), reader).await???;
        Ok(())
    }

    /// One fetch of one partition: (records, high watermark).
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
        max_bytes: i32,
    ) -> anyhow::Result<(Bytes, i64)> {
        let resp: FetchResponse = self
            .call(
                ApiKey::Fetch,
                FETCH_V,
                &fetch_request(
                    topic,
                    &[(partition, offset)],
                    max_wait_ms,
                    min_bytes,
                    max_bytes,
                ),
            )
            .await?;
        let p = resp
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .context("empty fetch response")?;
        if p.error_code != 0 {
            bail!("fetch error {}", p.error_code);
        }
        Ok((p.records.unwrap_or_default(), p.high_watermark))
    }

    /// Reads every partition from offset 0 to its high watermark: (bytes, records).
    pub async fn consume_all(self, topic: &str, partitions: &[i32]) -> anyhow::Result<(u64, u64)> {
        let mut offsets: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, 0)).collect();
        let mut highs: Vec<i64> = vec![i64::MAX; partitions.len()];
        let (mut bytes, mut records) = (0u64, 0u64);
        while offsets.iter().zip(&highs).any(|((_, o), h)| o < h) {
            let resp: FetchResponse = self
                .call(
                    ApiKey::Fetch,
                    FETCH_V,
                    &fetch_request(topic, &offsets, 100, 1, 64 << 20),
                )
                .await?;
            for t in resp.responses {
                for p in t.partitions {
                    if p.error_code != 0 {
                        bail!(
                            "fetch error {} on partition {}",
                            p.error_code,
                            p.partition_index
                        );
                    }
                    let Some(i) = offsets.iter().position(|(q, _)| *q == p.partition_index) else {
                        continue;
                    };
                    highs[i] = p.high_watermark;
                    let data = p.records.unwrap_or_default();
                    bytes += data.len() as u64;
                    let (next, n) = walk_batches(&data);
                    if let Some(next) = next {
                        offsets[i].1 = next;
                    }
                    records += n;
                }
            }
        }
        Ok((bytes, records))
    }
}

/// Offset after the last whole batch in `data`, and the records in them.
fn walk_batches(data: &[u8]) -> (Option<i64>, u64) {
    let mut rest = data;
    let (mut next, mut records) = (None, 0u64);
    while rest.len() >= 61 {
        let mut h = &rest[..61];
        let base = h.get_i64();
        let len = h.get_i32() as usize + 12;
        if len > rest.len() {
            break;
        }
        let mut tail = &rest[23..27];
        let last_delta = tail.get_i32();
        let mut cnt = &rest[57..61];
        records += cnt.get_i32().max(0) as u64;
        next = Some(base + last_delta as i64 + 1);
        rest = &rest[len..];
    }
    (next, records)
}

fn fetch_request(
    topic: &str,
    parts: &[(i32, i64)],
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, o)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(o)
                            .with_partition_max_bytes(16 << 20)
                    })
                    .collect(),
            )])
}

pub struct Cluster {
    bootstrap: Connection,
    /// Leaders per topic, as last seen by `wait_for_leaders`.
    leaders: std::sync::Mutex<std::collections::HashMap<String, Vec<(i32, String)>>>,
}

impl Cluster {
    pub async fn discover(bootstrap: &str) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            bootstrap: Connection::connect(bootstrap).await?,
            leaders: Default::default(),
        })
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let resp: CreateTopicsResponse = self
            .bootstrap
            .call(ApiKey::CreateTopics, CREATE_TOPICS_V, &req)
            .await?;
        for t in resp.topics {
            // 36: the topic is left from an earlier run.
            if t.error_code != 0 && t.error_code != 36 {
                bail!("create topic {topic}: error {}", t.error_code);
            }
        }
        Ok(())
    }

    async fn metadata(&self, topic: &str) -> anyhow::Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        self.bootstrap
            .call(ApiKey::Metadata, METADATA_V, &req)
            .await
    }

    /// (partition, leader address) once every partition has a leader.
    pub async fn wait_for_leaders(
        &self,
        topic: &str,
        partitions: i32,
    ) -> anyhow::Result<Vec<(i32, String)>> {
        for _ in 0..100 {
            let md = self.metadata(topic).await?;
            let leaders = leaders_of(&md, topic);
            if leaders.len() == partitions as usize {
                if let Ok(mut cache) = self.leaders.lock() {
                    cache.insert(topic.to_string(), leaders.clone());
                }
                return Ok(leaders);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("topic {topic} has no leaders")
    }

    pub fn leaders(&self, topic: &str) -> Vec<(i32, String)> {
        self.leaders
            .lock()
            .map(|l| l.get(topic).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

fn leaders_of(md: &MetadataResponse, topic: &str) -> Vec<(i32, String)> {
    let brokers: std::collections::HashMap<i32, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let mut out = Vec::new();
    for t in &md.topics {
        if t.name.as_ref().map(|n| n.0.as_str()) != Some(topic) || t.error_code != 0 {
            continue;
        }
        for p in &t.partitions {
            if let Some(addr) = brokers.get(&p.leader_id.0) {
                out.push((p.partition_index, addr.clone()));
            }
        }
    }
    out.sort();
    out
}
