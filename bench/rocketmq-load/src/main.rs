//! Load for bench/rocketmq-run, spoken straight over RocketMQ's remoting protocol (JSON
//! headers, as the Java client 4.9 sends them), one JSON object of figures on stdout:
//!
//! ```text
//! create-topic BROKER TOPIC QUEUES
//! produce BROKER TOPIC QUEUES CONNECTIONS PRODUCERS MESSAGES SECONDS SIZE
//!     PRODUCERS sync producers per connection, each with one send in flight (a send waits
//!     for its response before the next, as `DefaultMQProducer.send` does); stops after
//!     MESSAGES (0: no limit) or SECONDS (0: no limit); messages round-robin over the queues
//! consume BROKER TOPIC QUEUES GROUP EXPECT SECONDS
//!     PULL_MESSAGE of 32 per queue, one pull in flight per queue, from offset 0 until EXPECT
//!     messages arrived
//! latency BROKER TOPIC QUEUES RATE SECONDS SIZE
//!     one sync producer at RATE messages/s, a long-polling puller per queue; store to receive
//!     time of each message from the send time it carries
//! ```
//!
//! One thread (a current-thread runtime), so the load takes at most one of the two cores and
//! costs the same whichever broker it drives.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

const PULL_MESSAGE: i32 = 11;
const UPDATE_AND_CREATE_TOPIC: i32 = 17;
const SUCCESS: i32 = 0;
const PULL_NOT_FOUND: i32 = 19;
const PULL_RETRY_IMMEDIATELY: i32 = 20;
const RESPONSE_FLAG: i64 = 1;
/// Where a stored message's body length sits for IPv4 born and store hosts (the stored
/// message layout: total size, magic, body CRC, queue id, flag, queue offset, physical
/// offset, sys flag, born time, born host, store time, store host, reconsume times, prepared
/// transaction offset).
const BODY_LENGTH_AT: usize = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8;

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("{what}");
    std::process::exit(1)
}

/// A request frame: length, serialization type 0 (JSON) with the header length, header, body.
fn frame(code: i32, opaque: i32, ext: &Value, body: &[u8]) -> Vec<u8> {
    let header = json!({
        "code": code, "language": "JAVA", "version": 395, "opaque": opaque, "flag": 0,
        "extFields": ext, "serializeTypeCurrentRPC": "JSON",
    })
    .to_string();
    let mut out = Vec::with_capacity(8 + header.len() + body.len());
    out.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

struct Response {
    code: i32,
    opaque: i32,
    /// The extFields JSON, parsed only by the callers that read a field (pulls).
    ext: Option<Box<RawValue>>,
    remark: String,
    body: Bytes,
}

impl Response {
    fn ext(&self, key: &str) -> Option<String> {
        let fields: HashMap<String, Value> = serde_json::from_str(self.ext.as_ref()?.get()).ok()?;
        fields
            .get(key)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
    }
}

/// The response header fields the load reads.
#[derive(serde::Deserialize)]
struct ResponseHeader {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i64,
    #[serde(default)]
    remark: Option<String>,
    #[serde(rename = "extFields", default)]
    ext_fields: Option<Box<RawValue>>,
}

/// Reads frames off one connection, whole frames at a time, straight into one buffer; a
/// response's body is a slice of it (a pull's 32 KiB are not copied again: the load should
/// cost as little as it can per message, whichever broker it drives).
struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
}

impl FrameReader {
    fn new(half: OwnedReadHalf) -> FrameReader {
        FrameReader {
            half,
            buf: BytesMut::with_capacity(1 << 17),
        }
    }

    /// The length of the first frame (its 4-byte length field included), if it is all read.
    fn whole_frame_len(&self) -> Option<usize> {
        let len: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        let total = 4 + u32::from_be_bytes(len) as usize;
        (self.buf.len() >= total).then_some(total)
    }

    /// The next response already read, if whole.
    fn next_buffered(&mut self) -> Option<Response> {
        loop {
            let total = self.whole_frame_len()?;
            let mut frame = self.buf.split_to(total).freeze();
            if frame.len() < 8 {
                fail("a frame too short for its header length");
            }
            let header_len = (u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
                & 0x00ff_ffff) as usize;
            let raw = frame
                .get(8..8 + header_len)
                .unwrap_or_else(|| fail("a header longer than its frame"));
            let header: ResponseHeader = serde_json::from_slice(raw)
                .unwrap_or_else(|e| fail(format!("bad response header: {e}")));
            if header.flag & RESPONSE_FLAG == 0 {
                // A call from the broker (a notification): not ours to answer here.
                continue;
            }
            let body = frame.split_off(8 + header_len);
            return Some(Response {
                code: header.code,
                opaque: header.opaque,
                ext: header.ext_fields,
                remark: header.remark.unwrap_or_default(),
                body,
            });
        }
    }

    async fn next(&mut self) -> io::Result<Response> {
        loop {
            if let Some(r) = self.next_buffered() {
                return Ok(r);
            }
            // Space freed by the frames handed out is reused once their bodies are dropped.
            self.buf.reserve(1 << 16);
            let n = self.half.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection",
                ));
            }
        }
    }
}

async fn connect(broker: &str) -> (FrameReader, OwnedWriteHalf) {
    let stream = TcpStream::connect(broker)
        .await
        .unwrap_or_else(|e| fail(format!("connect {broker}: {e}")));
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    (FrameReader::new(r), w)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn create_topic(broker: &str, topic: &str, queues: u32) -> Value {
    let (mut reader, mut writer) = connect(broker).await;
    let ext = json!({
        "topic": topic, "defaultTopic": "TBW102", "readQueueNums": queues.to_string(),
        "writeQueueNums": queues.to_string(), "perm": "6", "topicFilterType": "SINGLE_TAG",
        "topicSysFlag": "0", "order": "false",
    });
    writer
        .write_all(&frame(UPDATE_AND_CREATE_TOPIC, 1, &ext, &[]))
        .await
        .unwrap_or_else(|e| fail(e));
    let r = reader.next().await.unwrap_or_else(|e| fail(e));
    if r.code != SUCCESS {
        fail(format!("create topic: {} {}", r.code, r.remark));
    }
    json!({"created": topic})
}

/// Appends one SEND_MESSAGE_V2 frame, with the properties the Java client sets (unique key,
/// WAIT, TAGS), its JSON header written directly: the load should cost the same few
/// microseconds whichever broker answers. The topic is a plain name (no JSON escaping).
fn send_frame(out: &mut Vec<u8>, opaque: i32, topic: &str, queue: u32, unique: u64, body: &[u8]) {
    use std::io::Write;
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    let _ = write!(
        out,
        "{{\"code\":310,\"extFields\":{{\"a\":\"bench-producer\",\"b\":\"{topic}\",\"c\":\"TBW102\",\"d\":\"4\",\
         \"e\":\"{queue}\",\"f\":\"0\",\"g\":\"{}\",\"h\":\"0\",\
         \"i\":\"UNIQ_KEY\\u00017F000001BEEF{unique:020X}\\u0002WAIT\\u0001true\\u0002TAGS\\u0001bench\\u0002\",\
         \"j\":\"0\",\"k\":\"false\",\"m\":\"false\"}},\"flag\":0,\"language\":\"JAVA\",\"opaque\":{opaque},\
         \"serializeTypeCurrentRPC\":\"JSON\",\"version\":395}}",
        unix_ms()
    );
    let header_len = out.len() - at - 8;
    out.extend_from_slice(body);
    let total = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&total.to_be_bytes());
    out[at + 4..at + 8].copy_from_slice(&(header_len as u32).to_be_bytes());
}

struct Sent {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

/// What the connections of one produce run share.
struct ProduceRun {
    broker: String,
    topic: String,
    queues: u32,
    producers: usize,
    /// Sends left to start.
    budget: std::cell::Cell<u64>,
    deadline: Option<Instant>,
    body: Vec<u8>,
}

/// One connection with `producers` sync producers on it: each keeps one send in flight.
async fn produce_on(run: std::rc::Rc<ProduceRun>, conn_index: u64) -> Sent {
    let ProduceRun {
        ref broker,
        ref topic,
        queues,
        producers,
        ref budget,
        deadline,
        ref body,
    } = *run;
    let (mut reader, mut writer) = connect(broker).await;
    let mut sent = Sent {
        ok: 0,
        failed: 0,
        latencies_us: Vec::new(),
        first_error: None,
    };
    let mut started: HashMap<i32, Instant> = HashMap::new();
    let mut opaque = 0i32;
    let mut next_queue = conn_index as u32;
    let mut out = Vec::new();
    let take = |budget: &std::cell::Cell<u64>| {
        let left = budget.get();
        if left == 0 {
            return false;
        }
        budget.set(left - 1);
        true
    };
    let mut submit = |out: &mut Vec<u8>, started: &mut HashMap<i32, Instant>| {
        opaque += 1;
        next_queue = (next_queue + 1) % queues;
        let unique = (conn_index << 40) | opaque as u64;
        send_frame(out, opaque, topic, next_queue, unique, body);
        started.insert(opaque, Instant::now());
    };
    for _ in 0..producers {
        if take(budget) {
            submit(&mut out, &mut started);
        }
    }
    while !started.is_empty() {
        writer.write_all(&out).await.unwrap_or_else(|e| fail(e));
        out.clear();
        let r = reader.next().await.unwrap_or_else(|e| fail(e));
        let mut answered = vec![r];
        while let Some(r) = reader.next_buffered() {
            answered.push(r);
        }
        let now = Instant::now();
        let open = deadline.is_none_or(|d| now < d);
        for r in answered {
            let Some(at) = started.remove(&r.opaque) else {
                continue;
            };
            if r.code == SUCCESS {
                sent.ok += 1;
                sent.latencies_us
                    .push(now.duration_since(at).as_micros() as u64);
            } else {
                sent.failed += 1;
                sent.first_error
                    .get_or_insert_with(|| format!("{} {}", r.code, r.remark));
            }
            if open && take(budget) {
                submit(&mut out, &mut started);
            }
        }
    }
    sent
}

/// `produce BROKER TOPIC QUEUES CONNECTIONS PRODUCERS MESSAGES SECONDS SIZE`.
async fn produce(a: &[String]) -> Value {
    let (connections, messages, seconds, size): (usize, u64, u64, usize) =
        (num(a, 5), num(a, 7), num(a, 8), num(a, 9));
    let began = Instant::now();
    let run = std::rc::Rc::new(ProduceRun {
        broker: arg(a, 2).to_string(),
        topic: arg(a, 3).to_string(),
        queues: num(a, 4),
        producers: num(a, 6),
        budget: std::cell::Cell::new(if messages == 0 { u64::MAX } else { messages }),
        deadline: (seconds > 0).then(|| began + Duration::from_secs(seconds)),
        body: vec![b'x'; size],
    });
    let local = tokio::task::LocalSet::new();
    let handles: Vec<_> = (0..connections)
        .map(|c| local.spawn_local(produce_on(run.clone(), c as u64)))
        .collect();
    let results = local
        .run_until(async {
            let mut all = Vec::new();
            for h in handles {
                all.push(h.await.unwrap_or_else(|e| fail(e)));
            }
            all
        })
        .await;
    let elapsed = began.elapsed().as_secs_f64();
    let ok: u64 = results.iter().map(|s| s.ok).sum();
    let failed: u64 = results.iter().map(|s| s.failed).sum();
    let mut lat: Vec<u64> = results
        .iter()
        .flat_map(|s| s.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let error = results.iter().find_map(|s| s.first_error.clone());
    json!({
        "sent": ok, "failed": failed, "firstError": error, "seconds": (elapsed * 1000.0).round() / 1000.0,
        "tps": (ok as f64 / elapsed).round(), "mbps": ((ok as f64 * size as f64 / elapsed / 1e6) * 10.0).round() / 10.0,
        "p50us": percentile(&lat, 0.50), "p99us": percentile(&lat, 0.99),
    })
}

fn pull_ext(group: &str, topic: &str, queue: u32, offset: i64, suspend_ms: u64) -> Value {
    // sysFlag 2 | 4: suspend (long polling) allowed, subscription carried in the request.
    json!({
        "consumerGroup": group, "topic": topic, "queueId": queue.to_string(), "queueOffset": offset.to_string(),
        "maxMsgNums": "32", "sysFlag": "6", "commitOffset": "0", "suspendTimeoutMillis": suspend_ms.to_string(),
        "subscription": "*", "subVersion": "0", "expressionType": "TAG",
    })
}

/// The bodies of the stored messages in a pull response.
fn stored_bodies(mut body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while body.len() >= BODY_LENGTH_AT + 4 {
        let total = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        if total < BODY_LENGTH_AT + 4 || total > body.len() {
            break;
        }
        let len_at = BODY_LENGTH_AT;
        let len = u32::from_be_bytes([
            body[len_at],
            body[len_at + 1],
            body[len_at + 2],
            body[len_at + 3],
        ]) as usize;
        let start = len_at + 4;
        out.push(&body[start..(start + len).min(total)]);
        body = &body[total..];
    }
    out
}

/// One pulling run: every queue from offset 0 (or from its end), one pull in flight per
/// queue, until `expect` messages or `seconds` pass.
struct PullRun<'a> {
    broker: &'a str,
    topic: &'a str,
    queues: u32,
    group: &'a str,
    expect: u64,
    seconds: u64,
    /// Long polling: how long the broker may hold a pull that finds nothing.
    suspend_ms: u64,
    start_at_end: bool,
}

/// Runs `run`; `on_message` sees each body. Returns how many messages arrived.
async fn pull_all(run: PullRun<'_>, mut on_message: impl FnMut(&[u8])) -> u64 {
    let PullRun {
        broker,
        topic,
        queues,
        group,
        expect,
        seconds,
        suspend_ms,
        start_at_end,
    } = run;
    let (mut reader, mut writer) = connect(broker).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut offsets: Vec<i64> = vec![0; queues as usize];
    if start_at_end {
        // GET_MAX_OFFSET (30) per queue: the probe reads only what is sent after it starts.
        for q in 0..queues {
            writer
                .write_all(&frame(
                    30,
                    1_000_000 + q as i32,
                    &json!({"topic": topic, "queueId": q.to_string()}),
                    &[],
                ))
                .await
                .unwrap_or_else(|e| fail(e));
            let r = reader.next().await.unwrap_or_else(|e| fail(e));
            offsets[q as usize] = r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        }
    }
    let mut out = Vec::new();
    for q in 0..queues {
        out.extend_from_slice(&frame(
            PULL_MESSAGE,
            q as i32,
            &pull_ext(group, topic, q, offsets[q as usize], suspend_ms),
            &[],
        ));
    }
    let mut got = 0u64;
    while got < expect && Instant::now() < deadline {
        // The pulls that answered responses already read go out in one write.
        if !out.is_empty() && reader.whole_frame_len().is_none() {
            writer.write_all(&out).await.unwrap_or_else(|e| fail(e));
            out.clear();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(r) = tokio::time::timeout(left, reader.next()).await else {
            break;
        };
        let r = r.unwrap_or_else(|e| fail(e));
        let q = r.opaque as u32;
        if q >= queues {
            continue;
        }
        match r.code {
            SUCCESS => {
                for b in stored_bodies(&r.body) {
                    on_message(b);
                    got += 1;
                }
            }
            PULL_NOT_FOUND | PULL_RETRY_IMMEDIATELY => {}
            other => {
                // OFFSET_MOVED and the like: the next offset the broker names.
                if other != 21 {
                    fail(format!("pull refused: {other} {}", r.remark));
                }
            }
        }
        if let Some(next) = r.ext("nextBeginOffset").and_then(|o| o.parse::<i64>().ok()) {
            offsets[q as usize] = next;
        }
        if r.code == PULL_NOT_FOUND && suspend_ms == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.extend_from_slice(&frame(
            PULL_MESSAGE,
            q as i32,
            &pull_ext(group, topic, q, offsets[q as usize], suspend_ms),
            &[],
        ));
    }
    got
}

async fn consume(
    broker: &str,
    topic: &str,
    queues: u32,
    group: &str,
    expect: u64,
    seconds: u64,
) -> Value {
    let began = Instant::now();
    let mut bytes = 0u64;
    let run = PullRun {
        broker,
        topic,
        queues,
        group,
        expect,
        seconds,
        suspend_ms: 0,
        start_at_end: false,
    };
    let got = pull_all(run, |b| bytes += b.len() as u64).await;
    let elapsed = began.elapsed().as_secs_f64();
    json!({"consumed": got, "seconds": (elapsed * 1000.0).round() / 1000.0, "tps": (got as f64 / elapsed).round(),
           "mbps": ((bytes as f64 / elapsed / 1e6) * 10.0).round() / 10.0})
}

async fn latency(
    broker: &str,
    topic: &str,
    queues: u32,
    rate: u64,
    seconds: u64,
    size: usize,
) -> Value {
    let epoch = Instant::now();
    let total = rate * seconds;
    let local = tokio::task::LocalSet::new();
    let broker_p = broker.to_string();
    let topic_p = topic.to_string();
    let (lat, sent) = local
        .run_until(async move {
            let puller = {
                let (broker, topic) = (broker_p.clone(), topic_p.clone());
                tokio::task::spawn_local(async move {
                    let mut lat = Vec::new();
                    let run = PullRun {
                        broker: &broker,
                        topic: &topic,
                        queues,
                        group: "bench-latency",
                        expect: total,
                        seconds: seconds + 30,
                        suspend_ms: 1000,
                        start_at_end: true,
                    };
                    pull_all(run, |b| {
                        if b.len() >= 8 {
                            let sent_us = u64::from_be_bytes([
                                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                            ]);
                            lat.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent_us));
                        }
                    })
                    .await;
                    lat
                })
            };
            // Let the pulls reach the broker and park before the first send.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (mut reader, mut writer) = connect(&broker_p).await;
            let mut body = vec![b'x'; size.max(8)];
            let mut sent = 0u64;
            let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
            let mut tick = tokio::time::interval(interval);
            for i in 0..total {
                tick.tick().await;
                body[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
                let q = (i % queues as u64) as u32;
                let mut out = Vec::with_capacity(body.len() + 512);
                send_frame(&mut out, i as i32 + 1, &topic_p, q, i, &body);
                writer.write_all(&out).await.unwrap_or_else(|e| fail(e));
                let r = reader.next().await.unwrap_or_else(|e| fail(e));
                if r.code == SUCCESS {
                    sent += 1;
                }
            }
            (puller.await.unwrap_or_else(|e| fail(e)), sent)
        })
        .await;
    let mut lat = lat;
    lat.sort_unstable();
    json!({"sent": sent, "received": lat.len(), "p50us": percentile(&lat, 0.50), "p99us": percentile(&lat, 0.99)})
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i)
        .map(String::as_str)
        .unwrap_or_else(|| fail("usage: see the top of bench/rocketmq-load/src/main.rs"))
}

fn num<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    arg(args, i)
        .parse()
        .unwrap_or_else(|_| fail(format!("argument {i} is not a number")))
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    let out = rt.block_on(async {
        match arg(&a, 1) {
            "create-topic" => create_topic(arg(&a, 2), arg(&a, 3), num(&a, 4)).await,
            "produce" => produce(&a).await,
            "consume" => {
                consume(
                    arg(&a, 2),
                    arg(&a, 3),
                    num(&a, 4),
                    arg(&a, 5),
                    num(&a, 6),
                    num(&a, 7),
                )
                .await
            }
            "latency" => {
                latency(
                    arg(&a, 2),
                    arg(&a, 3),
                    num(&a, 4),
                    num(&a, 5),
                    num(&a, 6),
                    num(&a, 7),
                )
                .await
            }
            other => fail(format!("unknown mode {other}")),
        }
    });
    println!("{out}");
}
