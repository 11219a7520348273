//! Protocol-level tests of a running instance: a minimal client speaks raw Kafka frames to
//! it over loopback. Real client libraries are exercised in tests/integration.

// A test file: a failing unwrap is a failing test (helpers outside #[test] functions too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka::{KafkaConfig, KafkaInstance};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            correlation: 0,
        }
    }

    async fn send<R: Encodable + HeaderVersion>(&mut self, key: ApiKey, version: i16, req: &R) {
        self.correlation += 1;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("broker-test")))
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_u32(body.len() as u32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Reads one response frame; None if the broker closed the connection.
    async fn receive<S: Decodable + HeaderVersion>(&mut self, version: i16) -> Option<S> {
        let size = self.stream.read_u32().await.ok()?;
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, S::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Some(S::decode(&mut buf, version).unwrap())
    }

    async fn call<R: Encodable + HeaderVersion, S: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> S {
        self.send(key, version, req).await;
        self.receive(version).await.expect("response")
    }
}

async fn start(dir: &std::path::Path, brokers: usize) -> KafkaInstance {
    let listeners = (0..brokers)
        .map(|_| "127.0.0.1:0".parse().unwrap())
        .collect();
    KafkaInstance::start(KafkaConfig::new(dir.to_path_buf(), listeners))
        .await
        .expect("start instance")
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Records of one batch need offset - sequence to be constant.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn values_of(records: Option<Bytes>) -> Vec<(i64, String)> {
    let mut buf = records.unwrap_or_default();
    let mut out = Vec::new();
    while buf.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        for r in set.records {
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

async fn create_topic(c: &mut Client, name: &str, partitions: i32) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    c.call(ApiKey::CreateTopics, 5, &req).await
}

async fn metadata(c: &mut Client) -> MetadataResponse {
    c.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(None),
    )
    .await
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

fn fetch_req(
    topic: &str,
    partition: i32,
    offset: i64,
    min_bytes: i32,
    max_wait: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

/// The broker that leads `partition` of `topic`, per Metadata.
fn leader_of(md: &MetadataResponse, topic: &str, partition: i32) -> i32 {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .expect("topic in metadata");
    t.partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .expect("partition")
        .leader_id
        .0
}

#[tokio::test]
async fn api_versions_and_kip511() {
    let dir = tempfile::tempdir().unwrap();
    let inst = start(dir.path(), 1).await;
    let mut c = Client::connect(inst.brokers()[0].listen).await;
    let resp: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(resp.error_code, 0);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));

    // Unknown version: answered as v0 with UNSUPPORTED_VERSION and our ranges.
    let mut frame = BytesMut::new();
    frame.put_u32(8);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(42);
    c.stream.write_all(&frame).await.unwrap();
    let size = c.stream.read_u32().await.unwrap();
    let mut buf = vec![0u8; size as usize];
    c.stream.read_exact(&mut buf).await.unwrap();
    let mut buf = Bytes::from(buf);
    assert_eq!(buf.get_i32(), 42);
    let resp = ApiVersionsResponse::decode(&mut buf, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert!(!resp.api_keys.is_empty());
    inst.shutdown().await;
}

#[tokio::test]
async fn produce_fetch_leaders_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let inst = start(dir.path(), 3).await;
    let addrs: Vec<SocketAddr> = inst.brokers().iter().map(|b| b.listen).collect();
    let mut c0 = Client::connect(addrs[0]).await;
    let created = create_topic(&mut c0, "orders", 3).await;
    assert_eq!(created.topics[0].error_code, 0);
    let again = create_topic(&mut c0, "orders", 3).await;
    assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");

    let md = metadata(&mut c0).await;
    assert_eq!(md.brokers.len(), 3);
    let leaders: Vec<i32> = (0..3).map(|p| leader_of(&md, "orders", p)).collect();
    let mut distinct = leaders.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        3,
        "leaders spread over brokers: {leaders:?}"
    );

    let leader = leaders[1] as usize;
    let other = (leader + 1) % 3;
    let mut lc = Client::connect(addrs[leader]).await;
    let mut oc = Client::connect(addrs[other]).await;

    let wrong: ProduceResponse = oc
        .call(
            ApiKey::Produce,
            7,
            &produce_req("orders", 1, batch(&["x"]), 1),
        )
        .await;
    assert_eq!(
        wrong.responses[0].partition_responses[0].error_code, 6,
        "NOT_LEADER_OR_FOLLOWER"
    );

    let first: ProduceResponse = lc
        .call(
            ApiKey::Produce,
            7,
            &produce_req("orders", 1, batch(&["a", "b", "c"]), -1),
        )
        .await;
    let p = &first.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let second: ProduceResponse = lc
        .call(
            ApiKey::Produce,
            7,
            &produce_req("orders", 1, batch(&["d", "e"]), 1),
        )
        .await;
    assert_eq!(second.responses[0].partition_responses[0].base_offset, 3);

    // From the middle of the first batch: the whole batch comes back.
    let f: FetchResponse = lc
        .call(ApiKey::Fetch, 11, &fetch_req("orders", 1, 1, 1, 0))
        .await;
    let pd = &f.responses[0].partitions[0];
    assert_eq!(pd.error_code, 0);
    assert_eq!(pd.high_watermark, 5);
    let got = values_of(pd.records.clone());
    assert_eq!(got.first(), Some(&(0, "a".to_string())), "{got:?}");
    assert_eq!(got.len(), 5);

    // Out of range.
    let f: FetchResponse = lc
        .call(ApiKey::Fetch, 11, &fetch_req("orders", 1, 99, 1, 0))
        .await;
    assert_eq!(
        f.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE"
    );

    // Long poll: waits for data produced after the fetch started.
    let mut waiter = Client::connect(addrs[leader]).await;
    waiter
        .send(ApiKey::Fetch, 11, &fetch_req("orders", 1, 5, 1, 10_000))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: ProduceResponse = lc
        .call(
            ApiKey::Produce,
            7,
            &produce_req("orders", 1, batch(&["f"]), 1),
        )
        .await;
    let f: FetchResponse = waiter.receive(11).await.unwrap();
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.clone()),
        vec![(5, "f".to_string())]
    );

    inst.shutdown().await;

    // Same data dir, new ports: topic, leaders and records are back.
    let inst = start(dir.path(), 3).await;
    let addrs: Vec<SocketAddr> = inst.brokers().iter().map(|b| b.listen).collect();
    let mut c = Client::connect(addrs[leader]).await;
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 11, &fetch_req("orders", 1, 0, 1, 0))
        .await;
    let got = values_of(f.responses[0].partitions[0].records.clone());
    assert_eq!(
        got.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e", "f"]
    );
    inst.shutdown().await;
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = KafkaConfig::new(
        dir.path().to_path_buf(),
        vec!["127.0.0.1:0".parse().unwrap()],
    );
    cfg.max_frame_bytes = 1024;
    let inst = KafkaInstance::start(cfg).await.unwrap();
    let addr = inst.brokers()[0].listen;

    let mut healthy = Client::connect(addr).await;
    let cases: Vec<Vec<u8>> = vec![
        // larger than max_frame_bytes
        [&(1_000_000u32).to_be_bytes()[..], &[0u8; 16]].concat(),
        // negative size
        (-5i32).to_be_bytes().to_vec(),
        // unknown api key
        [&8u32.to_be_bytes()[..], &[0x7f, 0x00, 0, 0, 0, 0, 0, 1]].concat(),
        // Produce v7 with a truncated body
        [
            &12u32.to_be_bytes()[..],
            &[0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0, 1],
        ]
        .concat(),
    ];
    for bytes in cases {
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(&bytes).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), bad.read(&mut buf))
            .await
            .expect("broker closes the bad connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "connection closed without a response");
        let resp: ApiVersionsResponse = healthy
            .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .await;
        assert_eq!(resp.error_code, 0, "other connections keep working");
    }
    inst.shutdown().await;
}
