//! The AMQP client-matrix workload (tests/integration/test_amqp_clients.py) with the `lapin`
//! crate on tokio. Usage: amqp-lapin-workload produce|verify HOST PORT TAG; prints one JSON object.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};

const COUNT: usize = 10_000;
const KEEP: usize = 500;
const KINDS: [&str; 4] = ["direct", "fanout", "topic", "headers"];
const QUEUES: [&str; 8] = [
    "direct-q",
    "fanout-q",
    "topic-q",
    "headers-q",
    "ttl",
    "rejected",
    "dead",
    "keep",
];

struct Names {
    ex: BTreeMap<&'static str, String>,
    q: BTreeMap<&'static str, String>,
}

impl Names {
    fn new(tag: &str) -> Self {
        let ex = KINDS
            .iter()
            .chain(&["dlx"])
            .map(|t| (*t, format!("{tag}-{t}")))
            .collect();
        let q = QUEUES.iter().map(|s| (*s, format!("{tag}-{s}"))).collect();
        Names { ex, q }
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn matching(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut entries = vec![("kind", text("order")), ("region", text("eu"))];
    entries.extend_from_slice(extra);
    table(&entries)
}

fn seq(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn declare(ch: &Channel, n: &Names) -> Result<()> {
    let kinds = [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ];
    let opts = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for (name, kind) in KINDS.iter().zip(kinds) {
        ch.exchange_declare(
            n.ex[name].as_str().into(),
            kind,
            opts,
            FieldTable::default(),
        )
        .await?;
    }
    ch.exchange_declare(
        n.ex["dlx"].as_str().into(),
        ExchangeKind::Fanout,
        opts,
        FieldTable::default(),
    )
    .await?;
    for s in [
        "direct-q",
        "fanout-q",
        "topic-q",
        "headers-q",
        "dead",
        "keep",
    ] {
        ch.queue_declare(n.q[s].as_str().into(), durable(), FieldTable::default())
            .await?;
    }
    let dlx = ("x-dead-letter-exchange", text(&n.ex["dlx"]));
    let ttl = table(&[("x-message-ttl", AMQPValue::LongInt(100)), dlx.clone()]);
    ch.queue_declare(n.q["ttl"].as_str().into(), durable(), ttl)
        .await?;
    ch.queue_declare(n.q["rejected"].as_str().into(), durable(), table(&[dlx]))
        .await?;
    let bindings = [
        ("direct-q", "direct", "work", FieldTable::default()),
        ("fanout-q", "fanout", "", FieldTable::default()),
        ("topic-q", "topic", "*.orders.#", FieldTable::default()),
        (
            "headers-q",
            "headers",
            "",
            matching(&[("x-match", text("all"))]),
        ),
        ("dead", "dlx", "", FieldTable::default()),
    ];
    for (q, ex, key, args) in bindings {
        ch.queue_bind(
            n.q[q].as_str().into(),
            n.ex[ex].as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        )
        .await?;
    }
    Ok(())
}

/// Publishes persistent messages on a confirm channel and waits for every confirm.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    bodies: &[String],
    headers: Option<FieldTable>,
) -> Result<Value> {
    let mut props = BasicProperties::default().with_delivery_mode(2);
    if let Some(h) = headers {
        props = props.with_headers(h);
    }
    let mut confirms = Vec::with_capacity(bodies.len());
    for body in bodies {
        let opts = BasicPublishOptions::default();
        confirms.push(
            ch.basic_publish(
                exchange.into(),
                key.into(),
                opts,
                body.as_bytes(),
                props.clone(),
            )
            .await?,
        );
    }
    let (mut acked, mut nacked) = (0, 0);
    for confirm in confirms {
        if confirm.await?.is_ack() {
            acked += 1;
        } else {
            nacked += 1;
        }
    }
    Ok(json!({"acked": acked, "nacked": nacked}))
}

#[derive(Default)]
struct Consumed {
    acked: HashSet<String>,
    bodies: Vec<String>,
    per_consumer: [usize; 2],
    redelivered: usize,
    nacked: usize,
}

/// Two consumers (a channel each, basic.qos 50); the first delivery of every 1000th message
/// is nacked with requeue, all others acked.
async fn consume(conn: &Connection, queue: &str) -> Result<Value> {
    let state = Arc::new(Mutex::new(Consumed::default()));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut consumers = Vec::new();
    for n in 0..2 {
        let ch = conn.create_channel().await?;
        ch.basic_qos(50, BasicQosOptions::default()).await?;
        let tag = format!("consumer-{n}");
        let mut stream = ch
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (state, done) = (state.clone(), done.clone());
        let task = tokio::spawn(async move {
            while let Some(delivery) = stream.next().await {
                let d = delivery?;
                let body = String::from_utf8(d.data.clone())?;
                let index: usize = body.split('-').nth(1).context("body")?.parse()?;
                let nack = index.is_multiple_of(1000) && !d.redelivered;
                if nack {
                    d.nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await?;
                } else {
                    d.ack(BasicAckOptions::default()).await?;
                }
                let mut s = state.lock().unwrap();
                s.bodies.push(body.clone());
                s.per_consumer[n] += 1;
                s.redelivered += usize::from(d.redelivered);
                if nack {
                    s.nacked += 1;
                } else {
                    s.acked.insert(body);
                    if s.acked.len() == COUNT {
                        done.notify_one();
                    }
                }
            }
            anyhow::Ok(())
        });
        consumers.push((ch, tag, task));
    }
    done.notified().await;
    for (ch, tag, task) in consumers {
        ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        task.await??;
        ch.close(200, "OK".into()).await?;
    }
    let s = state.lock().unwrap();
    let distinct: HashSet<&String> = s.bodies.iter().collect();
    Ok(
        json!({"received": s.bodies.len(), "distinct": distinct.len(), "redelivered": s.redelivered,
              "nacked": s.nacked, "consumers": s.per_consumer.iter().filter(|n| **n > 0).count()}),
    )
}

/// basic.get, polling up to ~10 s for a message to arrive.
async fn poll_get(ch: &Channel, queue: &str) -> Result<lapin::message::BasicGetMessage> {
    for _ in 0..200 {
        if let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await?
        {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no message arrived in {queue}")
}

fn as_text(v: Option<&AMQPValue>) -> Result<String> {
    match v {
        Some(AMQPValue::LongString(s)) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Ok(s.to_string()),
        other => Err(anyhow!("expected a string, found {other:?}")),
    }
}

async fn death(ch: &Channel, queue: &str) -> Result<Value> {
    let m = poll_get(ch, queue).await?;
    m.delivery.ack(BasicAckOptions::default()).await?;
    let headers = m
        .delivery
        .properties
        .headers()
        .clone()
        .context("no headers")?;
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        bail!("no x-death in {headers:?}")
    };
    let Some(AMQPValue::FieldTable(d)) = deaths.as_slice().first() else {
        bail!("empty x-death")
    };
    let count = match d.inner().get("count") {
        Some(AMQPValue::LongLongInt(c)) => *c,
        Some(AMQPValue::LongInt(c)) => i64::from(*c),
        other => bail!("x-death count {other:?}"),
    };
    Ok(
        json!({"body": String::from_utf8(m.delivery.data.clone())?, "reason": as_text(d.inner().get("reason"))?,
              "queue": as_text(d.inner().get("queue"))?, "count": count}),
    )
}

async fn queue_counts(ch: &Channel, n: &Names) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for (s, name) in &n.q {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare(name.as_str().into(), passive, FieldTable::default())
            .await?;
        out.insert((*s).to_string(), json!(q.message_count()));
    }
    Ok(Value::Object(out))
}

async fn produce(conn: &Connection, n: &Names) -> Result<Value> {
    let ch = conn.create_channel().await?;
    declare(&ch, n).await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut out = serde_json::Map::new();
    out.insert(
        "published".into(),
        publish(&ch, &n.ex["direct"], "work", &seq(COUNT, "msg"), None).await?,
    );
    out.insert("consumed".into(), consume(conn, &n.q["direct-q"]).await?);

    publish(&ch, "", &n.q["ttl"], &["expire-me".into()], None).await?;
    out.insert("expired".into(), death(&ch, &n.q["dead"]).await?);
    publish(&ch, "", &n.q["rejected"], &["reject-me".into()], None).await?;
    poll_get(&ch, &n.q["rejected"])
        .await?
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await?;
    out.insert("rejected".into(), death(&ch, &n.q["dead"]).await?);

    out.insert(
        "kept".into(),
        publish(&ch, "", &n.q["keep"], &seq(KEEP, "keep"), None).await?,
    );
    publish(&ch, &n.ex["direct"], "work", &["via-direct".into()], None).await?;
    publish(&ch, &n.ex["fanout"], "", &["via-fanout".into()], None).await?;
    publish(
        &ch,
        &n.ex["topic"],
        "eu.orders.created",
        &["via-topic".into()],
        None,
    )
    .await?;
    publish(
        &ch,
        &n.ex["headers"],
        "",
        &["via-headers".into()],
        Some(matching(&[])),
    )
    .await?;
    out.insert("queues".into(), queue_counts(&ch, n).await?);
    ch.close(200, "OK".into()).await?; // explicitly: dropping a Channel closes it in the background
    Ok(Value::Object(out))
}

/// basic.get (acknowledged) until the queue is empty: (body, delivery_mode) of each message.
async fn drain(ch: &Channel, queue: &str) -> Result<Vec<(String, Option<u8>)>> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
    {
        m.delivery.ack(BasicAckOptions::default()).await?;
        out.push((
            String::from_utf8(m.delivery.data.clone())?,
            *m.delivery.properties.delivery_mode(),
        ));
    }
    Ok(out)
}

async fn verify(conn: &Connection, n: &Names) -> Result<Value> {
    let ch = conn.create_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    for name in n.ex.values() {
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await?;
    }
    let mut out = serde_json::Map::new();
    out.insert("exchanges".into(), json!(n.ex.keys().collect::<Vec<_>>()));
    out.insert("queues".into(), queue_counts(&ch, n).await?);
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    publish(
        &ch,
        &n.ex["topic"],
        "us.orders",
        &["after-topic".into()],
        None,
    )
    .await?;
    let headers = matching(&[("note", text("after restart"))]);
    publish(
        &ch,
        &n.ex["headers"],
        "",
        &["after-headers".into()],
        Some(headers),
    )
    .await?;
    let mut drained = serde_json::Map::new();
    for s in ["direct-q", "fanout-q", "topic-q", "headers-q"] {
        let bodies: Vec<String> = drain(&ch, &n.q[s])
            .await?
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        drained.insert(s.into(), json!(bodies));
    }
    out.insert("drained".into(), Value::Object(drained));
    let kept = drain(&ch, &n.q["keep"]).await?;
    let bodies: Vec<String> = kept.iter().map(|(b, _)| b.clone()).collect();
    out.insert(
        "keep".into(),
        json!({"count": kept.len(), "in_order": bodies == seq(KEEP, "keep"),
                                     "persistent": kept.iter().all(|(_, mode)| *mode == Some(2))}),
    );
    ch.close(200, "OK".into()).await?;
    Ok(Value::Object(out))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, phase, host, port, tag] = args.as_slice() else {
        bail!("usage: amqp-lapin-workload produce|verify HOST PORT TAG")
    };
    let uri = format!("amqp://guest:guest@{host}:{port}/%2f?heartbeat=0");
    let conn = Connection::connect(&uri, ConnectionProperties::default()).await?;
    let names = Names::new(tag);
    let out = match phase.as_str() {
        "produce" => produce(&conn, &names).await?,
        "verify" => verify(&conn, &names).await?,
        other => bail!("unknown phase {other}"),
    };
    conn.close(200, "OK".into()).await?;
    println!("{out}");
    Ok(())
}
