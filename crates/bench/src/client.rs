//! A minimal Kafka client over `kafka-protocol`: API version negotiation, metadata-based
//! routing to partition leaders, topic creation, pipelined produce and fetch.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENT_ID: &str = "opendms-bench";

/// Versions this client can speak, per API: (lowest, highest). The highest version both sides
/// support is used.
const WANTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 7, 9),
    (ApiKey::Fetch, 11, 12),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
];

/// Versions agreed with the cluster (from the bootstrap broker's ApiVersions answer).
#[derive(Clone, Copy, Debug)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub create_topics: i16,
}

impl Versions {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "produce": self.produce,
            "fetch": self.fetch,
            "metadata": self.metadata,
            "create_topics": self.create_topics,
        })
    }
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A whole request frame, size prefix included. The correlation id sits at bytes 8..12.
pub fn frame<R: Encodable + HeaderVersion>(
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
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, R::header_version(version))?;
    req.encode(&mut buf, version)?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one response frame into `buf` (reused between calls, so big fetch responses do not
/// cost a fresh zeroed allocation each) and returns it without its size prefix.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
) -> anyhow::Result<Bytes> {
    let size = rd.read_u32().await.context("connection closed")? as usize;
    ensure!(size < 1 << 30, "response frame of {size} bytes");
    buf.clear();
    buf.reserve(size);
    while buf.len() < size {
        let want = size - buf.len();
        let n = (&mut *rd).take(want as u64).read_buf(buf).await?;
        ensure!(n > 0, "connection closed inside a {size}-byte response");
    }
    Ok(buf.split().freeze())
}

/// Decodes a response body: (correlation id, response).
pub fn decode<S: Decodable + HeaderVersion>(
    mut body: Bytes,
    version: i16,
) -> anyhow::Result<(i32, S)> {
    let header = ResponseHeader::decode(&mut body, S::header_version(version))?;
    Ok((header.correlation_id, S::decode(&mut body, version)?))
}

pub struct Connection {
    pub addr: String,
    stream: TcpStream,
    correlation: i32,
    buf: BytesMut,
}

impl Connection {
    pub async fn connect(addr: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            addr: addr.to_string(),
            stream,
            correlation: 0,
            buf: BytesMut::new(),
        })
    }

    /// One request, one response.
    pub async fn call<R: Encodable + HeaderVersion, S: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> anyhow::Result<S> {
        self.correlation = self.correlation.wrapping_add(1);
        let bytes = frame(key, version, self.correlation, req)?;
        self.stream.write_all(&bytes).await?;
        let body = read_frame(&mut self.stream, &mut self.buf).await?;
        let (corr, resp) = decode::<S>(body, version)
            .with_context(|| format!("decoding {key:?} v{version} response"))?;
        ensure!(
            corr == self.correlation,
            "{key:?}: correlation id {corr}, expected {}",
            self.correlation
        );
        Ok(resp)
    }

    pub fn into_split(
        self,
    ) -> (
        tokio::net::tcp::OwnedReadHalf,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        self.stream.into_split()
    }

    /// The broker's version ranges, per API key.
    pub async fn api_versions(&mut self) -> anyhow::Result<HashMap<i16, (i16, i16)>> {
        // v3 first; a broker that does not know it answers in v0 shape with error 35
        // (KIP-511), and then v0 is asked.
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let first: anyhow::Result<ApiVersionsResponse> =
            self.call(ApiKey::ApiVersions, 3, &req).await;
        let resp = match first {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                // The v3 answer may not decode as v3: reconnect for a clean stream.
                let mut fresh = Connection::connect(&self.addr).await?;
                let r: ApiVersionsResponse = fresh
                    .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                    .await?;
                *self = fresh;
                r
            }
        };
        ensure!(
            resp.error_code == 0,
            "ApiVersions error {}",
            resp.error_code
        );
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    pub async fn negotiate(&mut self) -> anyhow::Result<Versions> {
        let theirs = self.api_versions().await?;
        let mut picked = HashMap::new();
        for &(key, lo, hi) in WANTED {
            let (min, max) = *theirs
                .get(&(key as i16))
                .with_context(|| format!("broker does not offer {key:?}"))?;
            let v = hi.min(max);
            ensure!(
                v >= lo && v >= min,
                "no common {key:?} version: we speak {lo}..={hi}, broker {min}..={max}"
            );
            picked.insert(key as i16, v);
        }
        let v = |k: ApiKey| picked[&(k as i16)];
        Ok(Versions {
            produce: v(ApiKey::Produce),
            fetch: v(ApiKey::Fetch),
            metadata: v(ApiKey::Metadata),
            create_topics: v(ApiKey::CreateTopics),
        })
    }
}

pub fn produce_request(
    topic: &str,
    partitions: &[i32],
    batch: &Bytes,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
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

pub fn fetch_request(
    topic: &str,
    parts: &[(i32, i64)],
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, o)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(o)
                            .with_log_start_offset(-1)
                            .with_current_leader_epoch(-1)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// What a run of whole v2 record batches holds.
#[derive(Default, Debug, Clone, Copy)]
pub struct BatchWalk {
    /// Offset after the last whole batch.
    pub next_offset: Option<i64>,
    pub records: u64,
    /// Bytes of whole batches (a trailing partial batch is not counted).
    pub bytes: u64,
    pub batches: u64,
    pub crc_errors: u64,
}

/// Walks the batch headers of `data`; with `verify`, checks each batch's CRC32C too.
pub fn walk_batches(data: &[u8], verify: bool) -> BatchWalk {
    let mut rest = data;
    let mut w = BatchWalk::default();
    while rest.len() >= 61 {
        let mut h = &rest[..61];
        let base = h.get_i64();
        let len = h.get_i32();
        if len < 49 {
            break;
        }
        let total = len as usize + 12;
        if total > rest.len() {
            break;
        }
        let mut crc = &rest[17..21];
        let crc = crc.get_u32();
        let mut tail = &rest[23..27];
        let last_delta = tail.get_i32();
        let mut cnt = &rest[57..61];
        w.records += cnt.get_i32().max(0) as u64;
        if verify && crc32c::crc32c(&rest[21..total]) != crc {
            w.crc_errors += 1;
        }
        w.next_offset = Some(base + last_delta as i64 + 1);
        w.bytes += total as u64;
        w.batches += 1;
        rest = &rest[total..];
    }
    w
}

pub struct Cluster {
    pub bootstrap: Connection,
    pub versions: Versions,
    /// Node id → address, from the last metadata answer.
    pub brokers: BTreeMap<i32, String>,
}

impl Cluster {
    pub async fn discover(bootstrap: &str) -> anyhow::Result<Cluster> {
        let mut conn = Connection::connect(bootstrap).await?;
        let versions = conn.negotiate().await?;
        Ok(Cluster {
            bootstrap: conn,
            versions,
            brokers: BTreeMap::new(),
        })
    }

    /// Creates the topic; one left from an earlier run is an error unless `reuse`.
    pub async fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        reuse: bool,
    ) -> anyhow::Result<()> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let resp: CreateTopicsResponse = self
            .bootstrap
            .call(ApiKey::CreateTopics, self.versions.create_topics, &req)
            .await?;
        for t in resp.topics {
            // 36: TOPIC_ALREADY_EXISTS
            if t.error_code == 36 && reuse {
                continue;
            }
            if t.error_code != 0 {
                bail!(
                    "create topic {topic}: error {} {}",
                    t.error_code,
                    t.error_message.map(|m| m.to_string()).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    async fn metadata(&mut self, topic: &str) -> anyhow::Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        self.bootstrap
            .call(ApiKey::Metadata, self.versions.metadata, &req)
            .await
    }

    /// Sends one Fetch of `partition` to its leader at the agreed version. A broker whose
    /// answer does not decode at that version (tansu 0.6.0 puts a tagged field that Fetch v12
    /// does not define into its v12 responses) is asked again one version lower, down to the
    /// lowest this client speaks. Returns why the version was lowered, if it was.
    pub async fn probe_fetch(
        &mut self,
        topic: &str,
        partition: i32,
        leader: &str,
    ) -> anyhow::Result<Option<String>> {
        let mut conn = Connection::connect(leader).await?;
        let lowest = WANTED
            .iter()
            .find(|w| w.0 == ApiKey::Fetch)
            .map(|w| w.1)
            .unwrap_or(self.versions.fetch);
        let mut why = None;
        loop {
            let req = fetch_request(topic, &[(partition, 0)], 0, 0, 1 << 20, 1 << 20);
            let v = self.versions.fetch;
            match conn.call::<_, FetchResponse>(ApiKey::Fetch, v, &req).await {
                Ok(_) => return Ok(why),
                Err(e) if v > lowest => {
                    why = Some(format!(
                        "Fetch v{v} answer did not decode ({e:#}); using v{}",
                        v - 1
                    ));
                    self.versions.fetch = v - 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// (partition, leader address) for every partition, once every one has a leader.
    pub async fn wait_for_leaders(
        &mut self,
        topic: &str,
        partitions: i32,
    ) -> anyhow::Result<Vec<(i32, String)>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let md = self.metadata(topic).await?;
            self.brokers = md
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
                    if p.error_code != 0 {
                        continue;
                    }
                    if let Some(addr) = self.brokers.get(&p.leader_id.0) {
                        out.push((p.partition_index, addr.clone()));
                    }
                }
            }
            out.sort();
            if out.len() == partitions as usize {
                return Ok(out);
            }
            if Instant::now() > deadline {
                bail!(
                    "topic {topic}: {} of {partitions} partitions have a leader after 30 s",
                    out.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
