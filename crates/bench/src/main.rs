//! `opendms-bench`: a Kafka load generator that speaks the wire protocol directly (through
//! `kafka-protocol`), so the same workload runs against any Kafka-compatible broker. Versions
//! are negotiated with ApiVersions; every partition is produced to and fetched from its
//! leader as Metadata names it. Prints one JSON object per phase on stdout. Used by
//! `bench/run`.

mod client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use client::{decode, fetch_request, frame, produce_request, read_frame, Cluster, Connection};

#[derive(Parser, Clone)]
#[command(
    version,
    about = "Kafka load generator: produce, consume and end-to-end latency"
)]
struct Args {
    /// Any broker of the cluster (host:port).
    #[arg(long)]
    bootstrap: String,
    /// Topic of the throughput phases; created, so it must not exist yet (unless
    /// --existing-topic).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Use the topic as it is (e.g. to consume what an earlier run produced); the consume
    /// phase then cannot tell whether it read everything.
    #[arg(long)]
    existing_topic: bool,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Bytes of record batches to produce in each produce phase.
    #[arg(long, default_value_t = 2 << 30)]
    bytes: u64,
    /// Value size of one record.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Target size of one record batch (one per partition per request).
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    inflight: usize,
    /// Connections of the throughput phases. Partitions are grouped by leader, and each
    /// leader gets at least one connection of its own.
    #[arg(long, default_value_t = 3)]
    connections: usize,
    /// Fetch max_bytes of the consume phase.
    #[arg(long, default_value_t = 64 << 20)]
    fetch_max_bytes: i32,
    /// Fetch partition_max_bytes of the consume phase.
    #[arg(long, default_value_t = 16 << 20)]
    partition_max_bytes: i32,
    /// Check the CRC32C of every consumed batch (costs client CPU).
    #[arg(long)]
    verify_crc: bool,
    /// A produce or consume phase stops after this many seconds, reporting what it did.
    #[arg(long, default_value_t = 60)]
    max_phase_secs: u64,
    /// Seconds of the end-to-end latency phase.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Records per second in the latency phase.
    #[arg(long, default_value_t = 2000)]
    latency_rate: u64,
    /// Run `sync` (flush every file system) before each phase, so dirty page cache left by
    /// one phase (or by anything before the run) is not written back during the next. The
    /// load generator and the broker share this machine, so this is the broker's disk too.
    #[arg(long)]
    sync_between_phases: bool,
    /// Phases to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "produce1,produceall,consume,latency"
    )]
    phases: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One v2 record batch (CRC32C computed by the encoder), no compression, no producer id.
fn record_batch(values: impl Iterator<Item = Bytes>) -> anyhow::Result<Bytes> {
    // Real timestamps: brokers apply time retention to them.
    let timestamp = now_ms();
    let records: Vec<Record> = values
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant for the encoder to keep one batch; this
            // also gives base sequence -1, as a producer without an id sends.
            sequence: i as i32 - 1,
            timestamp,
            key: None,
            value: Some(value),
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
    let w = client::walk_batches(&buf, true);
    ensure!(
        w.batches == 1 && w.records == records.len() as u64 && w.bytes == buf.len() as u64,
        "encoded {} records as {:?}",
        records.len(),
        w
    );
    Ok(buf.freeze())
}

/// Partitions grouped per connection, each connection to the partitions' leader.
fn plan(leaders: &[(i32, String)], connections: usize) -> Vec<(String, Vec<i32>)> {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (p, addr) in leaders {
        by_leader.entry(addr).or_default().push(*p);
    }
    let per_leader = (connections / by_leader.len().max(1)).max(1);
    let mut out = Vec::new();
    for (addr, parts) in by_leader {
        let chunk = parts.len().div_ceil(per_leader).max(1);
        for c in parts.chunks(chunk) {
            out.push((addr.to_string(), c.to_vec()));
        }
    }
    out
}

/// Shared counters of a produce phase.
#[derive(Default)]
struct ProduceStats {
    /// Bytes handed to the sockets (reserved from the budget).
    sent: AtomicU64,
    acked_bytes: AtomicU64,
    acked_records: AtomicU64,
    requests: AtomicU64,
    /// Partition-level error responses, by error code.
    errors: Mutex<BTreeMap<i16, u64>>,
}

#[allow(clippy::too_many_arguments)]
async fn produce_connection(
    addr: String,
    topic: String,
    parts: Vec<i32>,
    batch: Bytes,
    records_per_batch: u64,
    acks: i16,
    version: i16,
    inflight: usize,
    limit: u64,
    deadline: Instant,
    stats: Arc<ProduceStats>,
) -> anyhow::Result<()> {
    let conn = Connection::connect(&addr).await?;
    let req = produce_request(&topic, &parts, &batch, acks);
    let template = frame(ApiKey::Produce, version, 0, &req)?;
    let per_request = (batch.len() * parts.len()) as u64;
    let (mut rd, mut wr) = conn.into_split();
    let slots = Arc::new(Semaphore::new(inflight.max(1)));
    let (reader_slots, reader_stats) = (slots.clone(), stats.clone());
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(i32::MAX);
    // Responses come back in request order; each one frees a slot.
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut expected = 1i32;
        loop {
            if expected > *done_rx.borrow() {
                return anyhow::Ok(());
            }
            tokio::select! {
                body = read_frame(&mut rd, &mut buf) => {
                    let (corr, resp): (i32, ProduceResponse) = decode(body?, version)?;
                    ensure!(corr == expected, "produce response {corr}, expected {expected}");
                    expected += 1;
                    for t in resp.responses {
                        for p in t.partition_responses {
                            if p.error_code == 0 {
                                reader_stats.acked_bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
                                reader_stats.acked_records.fetch_add(records_per_batch, Ordering::Relaxed);
                            } else {
                                *reader_stats.errors.lock().unwrap_or_else(|e| e.into_inner()).entry(p.error_code).or_default() += 1;
                            }
                        }
                    }
                    reader_slots.add_permits(1);
                }
                _ = done_rx.changed() => {}
            }
        }
    });
    let mut correlation = 0i32;
    let mut buf = BytesMut::from(&template[..]);
    while Instant::now() < deadline {
        let permit = slots.acquire().await?;
        if stats.sent.fetch_add(per_request, Ordering::SeqCst) >= limit {
            stats.sent.fetch_sub(per_request, Ordering::SeqCst);
            break;
        }
        permit.forget();
        correlation += 1;
        buf[8..12].copy_from_slice(&correlation.to_be_bytes());
        wr.write_all(&buf).await?;
        stats.requests.fetch_add(1, Ordering::Relaxed);
    }
    let _ = done_tx.send(correlation);
    tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .context("produce responses did not arrive within 120 s")???;
    Ok(())
}

async fn produce_phase(
    args: &Args,
    cluster: &Cluster,
    leaders: &[(i32, String)],
    acks: i16,
) -> anyhow::Result<(serde_json::Value, (u64, u64))> {
    let per_batch = (args.batch_bytes / args.record_size).max(1);
    let value = Bytes::from(vec![b'x'; args.record_size]);
    let batch = record_batch(std::iter::repeat_n(value, per_batch))?;
    let plan = plan(leaders, args.connections);
    let stats = Arc::new(ProduceStats::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_phase_secs);
    let mut tasks = Vec::new();
    for (addr, parts) in &plan {
        tasks.push(tokio::spawn(produce_connection(
            addr.clone(),
            args.topic.clone(),
            parts.clone(),
            batch.clone(),
            per_batch as u64,
            acks,
            cluster.versions.produce,
            args.inflight,
            args.bytes,
            deadline,
            stats.clone(),
        )));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let acked = stats.acked_bytes.load(Ordering::SeqCst);
    let records = stats.acked_records.load(Ordering::SeqCst);
    let errors = stats
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let error_count: u64 = errors.values().sum();
    let name = if acks == -1 {
        "produce_acks_all".to_string()
    } else {
        format!("produce_acks_{acks}")
    };
    Ok((
        json!({
            "phase": name,
            "acks": acks,
            "bytes": acked,
            "sent_bytes": stats.sent.load(Ordering::SeqCst),
            "records": records,
            "requests": stats.requests.load(Ordering::SeqCst),
            "batch_bytes": batch.len(),
            "records_per_batch": per_batch,
            "connections": plan.len(),
            "secs": secs,
            "mb_per_s": acked as f64 / secs / 1e6,
            "records_per_s": records as f64 / secs,
            "errors": error_count,
            "errors_by_code": errors.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "timed_out": stats.sent.load(Ordering::SeqCst) < args.bytes,
        }),
        (records, acked),
    ))
}

#[derive(Default, Clone, Copy)]
struct Consumed {
    bytes: u64,
    records: u64,
    batches: u64,
    crc_errors: u64,
    requests: u64,
}

/// Reads every partition from offset 0 to its high watermark, one fetch in flight.
async fn consume_connection(
    args: Args,
    version: i16,
    addr: String,
    parts: Vec<i32>,
    deadline: Instant,
) -> anyhow::Result<Consumed> {
    let mut conn = Connection::connect(&addr).await?;
    let mut offsets: Vec<i64> = vec![0; parts.len()];
    let mut highs: Vec<Option<i64>> = vec![None; parts.len()];
    let mut c = Consumed::default();
    loop {
        let todo: Vec<(i32, i64)> = (0..parts.len())
            .filter(|&i| highs[i].is_none_or(|h| offsets[i] < h))
            .map(|i| (parts[i], offsets[i]))
            .collect();
        if todo.is_empty() || Instant::now() >= deadline {
            break;
        }
        let req = fetch_request(
            &args.topic,
            &todo,
            100,
            1,
            args.fetch_max_bytes,
            args.partition_max_bytes,
        );
        let resp: FetchResponse = conn.call(ApiKey::Fetch, version, &req).await?;
        c.requests += 1;
        ensure!(resp.error_code == 0, "fetch error {}", resp.error_code);
        for t in resp.responses {
            for p in t.partitions {
                ensure!(
                    p.error_code == 0,
                    "fetch error {} on partition {}",
                    p.error_code,
                    p.partition_index
                );
                let Some(i) = parts.iter().position(|&q| q == p.partition_index) else {
                    continue;
                };
                highs[i] = Some(p.high_watermark);
                let data = p.records.unwrap_or_default();
                let w = client::walk_batches(&data, args.verify_crc);
                if let Some(next) = w.next_offset {
                    offsets[i] = offsets[i].max(next);
                }
                c.bytes += w.bytes;
                c.records += w.records;
                c.batches += w.batches;
                c.crc_errors += w.crc_errors;
            }
        }
    }
    Ok(c)
}

async fn consume_phase(
    args: &Args,
    cluster: &Cluster,
    leaders: &[(i32, String)],
    expected: Option<(u64, u64)>,
) -> anyhow::Result<serde_json::Value> {
    let plan = plan(leaders, args.connections);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_phase_secs);
    let mut tasks = Vec::new();
    for (addr, parts) in &plan {
        tasks.push(tokio::spawn(consume_connection(
            args.clone(),
            cluster.versions.fetch,
            addr.clone(),
            parts.clone(),
            deadline,
        )));
    }
    let mut total = Consumed::default();
    for t in tasks {
        let c = t.await??;
        total.bytes += c.bytes;
        total.records += c.records;
        total.batches += c.batches;
        total.crc_errors += c.crc_errors;
        total.requests += c.requests;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "phase": "consume",
        "bytes": total.bytes,
        "records": total.records,
        "batches": total.batches,
        "expected_records": expected.map(|e| e.0),
        "expected_bytes": expected.map(|e| e.1),
        // Every acknowledged record read back, and as many bytes of whole batches as were
        // acknowledged (brokers that re-encode batches may differ in bytes, not in records).
        "complete": expected.map(|e| total.records == e.0),
        "bytes_match": expected.map(|e| total.bytes == e.1),
        "crc_checked": args.verify_crc,
        "crc_errors": total.crc_errors,
        "requests": total.requests,
        "connections": plan.len(),
        "secs": secs,
        "mb_per_s": total.bytes as f64 / secs / 1e6,
        "records_per_s": total.records as f64 / secs,
    }))
}

/// One producer sends single-record batches (acks=1) at a steady rate without waiting for
/// each answer; one consumer long-polls the same partition. Each value carries its send time,
/// so latency = time the consumer got the record - time the producer sent it.
async fn latency_phase(args: &Args, cluster: &mut Cluster) -> anyhow::Result<serde_json::Value> {
    let topic = format!("{}-latency", args.topic);
    cluster.create_topic(&topic, 1, false).await?;
    let leaders = cluster.wait_for_leaders(&topic, 1).await?;
    let addr = leaders
        .first()
        .map(|(_, a)| a.clone())
        .context("no leader")?;
    let versions = cluster.versions;
    let base = Instant::now();
    let total = args.latency_rate * args.latency_secs;
    let producing = Arc::new(AtomicBool::new(true));

    let mut consumer = Connection::connect(&addr).await?;
    let (t, still_producing) = (topic.clone(), producing.clone());
    let reader = tokio::spawn(async move {
        let mut lat: Vec<u64> = Vec::with_capacity(total as usize);
        let mut offset = 0i64;
        let mut fetches = 0u64;
        // Until every record came back, or 2 s after the producer's last answer.
        let mut stop_at: Option<Instant> = None;
        while (lat.len() as u64) < total {
            if still_producing.load(Ordering::SeqCst) {
                stop_at = None;
            } else if let Some(s) = stop_at {
                if Instant::now() > s {
                    break;
                }
            } else {
                stop_at = Some(Instant::now() + Duration::from_secs(2));
            }
            let req = fetch_request(&t, &[(0, offset)], 500, 1, 1 << 20, 1 << 20);
            let resp: FetchResponse = consumer.call(ApiKey::Fetch, versions.fetch, &req).await?;
            let now = base.elapsed().as_nanos() as u64;
            fetches += 1;
            for p in resp.responses.into_iter().flat_map(|t| t.partitions) {
                ensure!(p.error_code == 0, "fetch error {}", p.error_code);
                let mut buf = p.records.unwrap_or_default();
                while buf.len() >= 61 {
                    let set = RecordBatchDecoder::decode(&mut buf)?;
                    for r in set.records {
                        if r.offset < offset {
                            continue;
                        }
                        offset = r.offset + 1;
                        let sent = r
                            .value
                            .as_ref()
                            .and_then(|v| v.get(..8))
                            .and_then(|s| s.try_into().ok())
                            .map(u64::from_be_bytes)
                            .context("latency record without a send time")?;
                        lat.push(now.saturating_sub(sent));
                    }
                }
            }
        }
        anyhow::Ok((lat, fetches))
    });

    let producer = Connection::connect(&addr).await?;
    let (mut rd, mut wr) = producer.into_split();
    let acks_reader = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let (mut ok, mut errors) = (0u64, 0u64);
        for _ in 0..total {
            let body = read_frame(&mut rd, &mut buf).await?;
            let (_, resp): (i32, ProduceResponse) = decode(body, versions.produce)?;
            for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
                if p.error_code == 0 {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
        }
        anyhow::Ok((ok, errors))
    });
    let interval = Duration::from_nanos(1_000_000_000 / args.latency_rate.max(1));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let padding = args.record_size.max(8) - 8;
    let send_start = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let sent = base.elapsed().as_nanos() as u64;
        let mut v = Vec::with_capacity(8 + padding);
        v.extend_from_slice(&sent.to_be_bytes());
        v.resize(8 + padding, b'x');
        let batch = record_batch(std::iter::once(Bytes::from(v)))?;
        let req = produce_request(&topic, &[0], &batch, 1);
        wr.write_all(&frame(
            ApiKey::Produce,
            versions.produce,
            i as i32 + 1,
            &req,
        )?)
        .await?;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    let acked = tokio::time::timeout(Duration::from_secs(30), acks_reader).await;
    producing.store(false, Ordering::SeqCst);
    let (ok, errors) = acked.context("latency produce answers")???;
    let (mut lat, fetches) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .context("latency consumer")???;
    if lat.is_empty() {
        bail!("no record came back in the latency phase");
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    Ok(json!({
        "phase": "latency",
        "sent": total,
        "acked": ok,
        "errors": errors,
        "records": lat.len(),
        "fetches": fetches,
        "rate_per_s": total as f64 / send_secs,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": *lat.last().unwrap_or(&0) as f64 / 1000.0,
    }))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cluster = Cluster::discover(&args.bootstrap).await?;
    cluster
        .create_topic(&args.topic, args.partitions, args.existing_topic)
        .await?;
    let leaders = cluster
        .wait_for_leaders(&args.topic, args.partitions)
        .await?;
    let fetch_note = cluster
        .probe_fetch(&args.topic, leaders[0].0, &leaders[0].1)
        .await?;
    let distinct: std::collections::BTreeSet<&String> = leaders.iter().map(|(_, a)| a).collect();
    println!(
        "{}",
        json!({
            "phase": "setup",
            "versions": cluster.versions.to_json(),
            "version_note": fetch_note,
            "brokers": cluster.brokers,
            "partitions": args.partitions,
            "leader_brokers": distinct.len(),
            "leaders": leaders.iter().map(|(p, a)| (p.to_string(), a.clone())).collect::<BTreeMap<_, _>>(),
        })
    );
    // (records, bytes) acknowledged; None until a produce phase ran. The consume phase then
    // knows what it must read.
    let mut produced: Option<(u64, u64)> = None;
    for phase in &args.phases {
        if args.sync_between_phases {
            let status = std::process::Command::new("sync")
                .status()
                .context("running sync")?;
            ensure!(status.success(), "sync failed: {status}");
        }
        let result = match phase.as_str() {
            "produce1" | "produceall" => {
                let acks = if phase == "produce1" { 1 } else { -1 };
                let (v, (records, bytes)) = produce_phase(&args, &cluster, &leaders, acks).await?;
                let p = produced.get_or_insert((0, 0));
                p.0 += records;
                p.1 += bytes;
                v
            }
            "consume" => consume_phase(&args, &cluster, &leaders, produced).await?,
            "latency" => latency_phase(&args, &mut cluster).await?,
            other => bail!("unknown phase {other}"),
        };
        println!("{result}");
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let result = if args.record_size < 8 {
        Err(anyhow::anyhow!("--record-size must be at least 8"))
    } else if args.partitions < 1 {
        Err(anyhow::anyhow!("--partitions must be at least 1"))
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run(args)))
    };
    if let Err(e) = result {
        eprintln!("opendms-bench: {e:#}");
        std::process::exit(1);
    }
}
