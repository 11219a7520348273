//! `opendms-bench`: a Kafka load generator that speaks the wire protocol directly, so the
//! same workload can be run against any Kafka-compatible broker. Prints one JSON object per
//! phase. Used by `bench/run`.

mod client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;

use client::{Cluster, Connection};

#[derive(Parser, Clone)]
struct Args {
    /// Any broker of the cluster.
    #[arg(long)]
    bootstrap: String,
    #[arg(long, default_value = "bench")]
    topic: String,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Bytes of record batches to produce in each produce phase.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Size of one record batch.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    inflight: usize,
    /// Connections in total; partitions are spread over them by leader.
    #[arg(long, default_value_t = 3)]
    connections: usize,
    /// Seconds of the end-to-end latency phase.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Records per second in the latency phase.
    #[arg(long, default_value_t = 2000)]
    latency_rate: u64,
    /// Phases to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "produce1,produceall,consume,latency"
    )]
    phases: Vec<String>,
}

fn record_batch(
    count: usize,
    size: usize,
    value: impl Fn(usize) -> Bytes,
) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 0,
            key: None,
            value: Some(if size == 0 {
                value(i)
            } else {
                Bytes::from(vec![b'x'; size])
            }),
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
    )?;
    Ok(buf.freeze())
}

/// Partitions grouped per connection: each connection goes to the partitions' leader.
fn plan(cluster: &Cluster, topic: &str, connections: usize) -> Vec<(String, Vec<i32>)> {
    let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (p, addr) in cluster.leaders(topic) {
        by_leader.entry(addr).or_default().push(p);
    }
    let per_leader = (connections / by_leader.len().max(1)).max(1);
    let mut out = Vec::new();
    for (addr, parts) in by_leader {
        let chunk = parts.len().div_ceil(per_leader);
        for c in parts.chunks(chunk.max(1)) {
            out.push((addr.clone(), c.to_vec()));
        }
    }
    out
}

async fn produce_phase(
    args: &Args,
    cluster: &Cluster,
    acks: i16,
) -> anyhow::Result<serde_json::Value> {
    let per_batch = (args.batch_bytes / args.record_size).max(1);
    let batch = record_batch(per_batch, args.record_size, |_| Bytes::new())?;
    let plan = plan(cluster, &args.topic, args.connections);
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (addr, parts) in plan {
        let (topic, batch, sent, errors) = (
            args.topic.clone(),
            batch.clone(),
            sent.clone(),
            errors.clone(),
        );
        let (limit, inflight) = (args.bytes, args.inflight);
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&addr).await?;
            conn.produce_loop(&topic, &parts, batch, acks, inflight, &sent, limit, &errors)
                .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = sent.load(Ordering::SeqCst);
    Ok(json!({
        "phase": format!("produce_acks_{}", if acks == -1 { "all".to_string() } else { acks.to_string() }),
        "bytes": bytes,
        "records": bytes / batch.len() as u64 * per_batch as u64,
        "secs": secs,
        "mb_per_s": bytes as f64 / secs / 1e6,
        "errors": errors.load(Ordering::SeqCst),
    }))
}

async fn consume_phase(args: &Args, cluster: &Cluster) -> anyhow::Result<serde_json::Value> {
    let plan = plan(cluster, &args.topic, args.connections);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (addr, parts) in plan {
        let topic = args.topic.clone();
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&addr).await?;
            conn.consume_all(&topic, &parts).await
        }));
    }
    let (mut bytes, mut records) = (0u64, 0u64);
    for t in tasks {
        let (b, r) = t.await??;
        bytes += b;
        records += r;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "phase": "consume",
        "bytes": bytes,
        "records": records,
        "secs": secs,
        "mb_per_s": bytes as f64 / secs / 1e6,
    }))
}

/// One producer sends single-record batches at a steady rate; one consumer long-polls.
/// Each value carries its send time, so latency = receive time - send time.
async fn latency_phase(args: &Args, cluster: &Cluster) -> anyhow::Result<serde_json::Value> {
    let topic = format!("{}-latency", args.topic);
    cluster.create_topic(&topic, 1).await?;
    let leaders = cluster.wait_for_leaders(&topic, 1).await?;
    let addr = leaders
        .into_iter()
        .next()
        .map(|(_, a)| a)
        .context("no leader")?;
    let base = Instant::now();
    let consumer = Connection::connect(&addr).await?;
    let total = args.latency_rate * args.latency_secs;
    let t = topic.clone();
    let reader = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(total as usize);
        let mut offset = 0i64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while (lat.len() as u64) < total && Instant::now() < deadline {
            let (records, _) = consumer.fetch(&t, 0, offset, 500, 1, 1 << 20).await?;
            let now = base.elapsed().as_nanos() as u64;
            let mut buf = records;
            while !buf.is_empty() {
                let set = RecordBatchDecoder::decode(&mut buf)?;
                for r in set.records {
                    offset = r.offset + 1;
                    if let Some(v) = r.value {
                        let sent = u64::from_be_bytes(
                            v.get(..8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]),
                        );
                        lat.push(now.saturating_sub(sent));
                    }
                }
            }
        }
        anyhow::Ok(lat)
    });
    let producer = Connection::connect(&addr).await?;
    let interval = Duration::from_nanos(1_000_000_000 / args.latency_rate.max(1));
    let mut tick = tokio::time::interval(interval);
    for _ in 0..total {
        tick.tick().await;
        let sent = base.elapsed().as_nanos() as u64;
        let batch = record_batch(1, 0, |_| {
            let mut v = sent.to_be_bytes().to_vec();
            v.resize(args.record_size.max(8), b'x');
            Bytes::from(v)
        })?;
        producer.produce_one(&topic, 0, batch, 1).await?;
    }
    let mut lat = reader.await??;
    if lat.is_empty() {
        bail!("no record came back in the latency phase");
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    Ok(json!({
        "phase": "latency",
        "records": lat.len(),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": *lat.last().unwrap_or(&0) as f64 / 1000.0,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::discover(&args.bootstrap).await?;
    cluster.create_topic(&args.topic, args.partitions).await?;
    cluster
        .wait_for_leaders(&args.topic, args.partitions)
        .await?;
    for phase in &args.phases {
        let result = match phase.as_str() {
            "produce1" => produce_phase(&args, &cluster, 1).await?,
            "produceall" => produce_phase(&args, &cluster, -1).await?,
            "consume" => consume_phase(&args, &cluster).await?,
            "latency" => latency_phase(&args, &cluster).await?,
            other => bail!("unknown phase {other}"),
        };
        println!("{result}");
    }
    Ok(())
}
