//! The RocketMQ workload with Apache RocketMQ's Rust client (`rocketmq-client-rust` 1.0.0):
//! one scenario per run, one JSON object on stdout (tests/integration/test_rocketmq.py).
//!
//! ```text
//! produce-consume NS TOPIC N   N messages (a quarter each sync, async, oneway and in batches
//!                              of 10, tags alternating TagA/TagB), a push group of two
//!                              members and a group on TagA only
//! sql-trace NS TOPIC           a SQL92 subscription (a BETWEEN 0 AND 3 AND TAGS = 'sql') over
//!                              ten messages with a = 0..9, sent by a producer with message
//!                              trace on; then the trace records read back from
//!                              RMQ_SYS_TRACE_TOPIC
//! delay NS TOPIC               delay level 2 (5 s)
//! retry-dlq NS TOPIC           a listener that always fails with max reconsume times 1: the
//!                              deliveries, then the message in %DLQ%group
//! broadcast NS TOPIC N         two BROADCASTING members each get every message
//! orderly NS TOPIC STEPS       10 orders sent to a queue by order id, consumed orderly
//! transaction NS TOPIC         committed, rolled-back and undecided (checked back, then
//!                              committed) transactional messages; what a consumer gets
//! query NS TOPIC               QUERY_MESSAGE by key and VIEW_MESSAGE_BY_ID by offset id
//! acl NS TOPIC AK SK RO_TOPIC  a signed send and its consumption; then a wrong secret, and a
//!                              send to RO_TOPIC, which the account may only subscribe to
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq_client_rust::{
    AclClientRPCHook, ClientConfig, ClientResult, ClientRuntime, ClientRuntimeConfig,
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, ConsumeOrderlyContext,
    ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer, LocalTransactionState,
    MQPushConsumer, MessageSelector, SessionCredentials, TransactionListener,
    TransactionMQProducer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::result::SendStatus;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use serde_json::{json, Value};

type Shared<T> = Arc<Mutex<T>>;

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("{what}");
    std::process::exit(1)
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{nanos}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One client per process instance name: two members of a group in one process are two clients
/// only when their instance names differ, as with the Java client.
fn client_config(ns: &str, instance: &str, trace: bool) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set_namesrv_addr(ns.into());
    config.set_instance_name(unique(instance).into());
    config.set_enable_trace(trace);
    config
}

fn message(topic: &str, tag: &str, key: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic)
        .tags(tag)
        .key(key)
        .body_slice(body.as_bytes())
        .build_unchecked()
}

fn numbered(topic: &str, i: usize) -> Message {
    let tag = if i.is_multiple_of(2) { "TagA" } else { "TagB" };
    message(topic, tag, &format!("k{i}"), &format!("m{i}"))
}

fn keys_of(m: &MessageExt) -> String {
    m.get_keys().map(|k| k.to_string()).unwrap_or_default()
}

async fn wait_for(what: impl Fn() -> bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !what() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a concurrent push consumer calls with its messages.
trait Listener:
    Fn(&[&MessageExt], &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus>
    + Send
    + Sync
    + 'static
{
}

impl<F> Listener for F where
    F: Fn(&[&MessageExt], &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus>
        + Send
        + Sync
        + 'static
{
}

struct Client {
    runtime: Arc<ClientRuntime>,
    ns: String,
}

impl Client {
    async fn producer(&self, group: &str, trace: bool) -> DefaultMQProducer {
        self.producer_with(group, trace, None).await
    }

    async fn producer_with(
        &self,
        group: &str,
        trace: bool,
        credentials: Option<(&str, &str)>,
    ) -> DefaultMQProducer {
        let mut builder = DefaultMQProducer::builder(self.runtime.clone())
            .client_config(client_config(&self.ns, group, trace))
            .producer_group(group)
            .send_msg_timeout(10_000)
            .retry_times_when_send_failed(if credentials.is_some() { 0 } else { 2 });
        if let Some((ak, sk)) = credentials {
            builder = builder.rpc_hook(Arc::new(AclClientRPCHook::new(
                SessionCredentials::with_keys(ak, sk),
            )));
        }
        let mut producer = builder.build();
        if let Err(e) = producer.start().await {
            fail(format!("producer {group} did not start: {e}"));
        }
        producer
    }

    async fn push_consumer<L>(
        &self,
        group: &str,
        model: MessageModel,
        subscription: Subscription<'_>,
        listen: L,
    ) -> DefaultMQPushConsumer
    where
        L: Listener,
    {
        self.push_consumer_with(group, model, subscription, None, 16, listen)
            .await
    }

    async fn push_consumer_with<L>(
        &self,
        group: &str,
        model: MessageModel,
        subscription: Subscription<'_>,
        credentials: Option<(&str, &str)>,
        max_reconsume_times: i32,
        listen: L,
    ) -> DefaultMQPushConsumer
    where
        L: Listener,
    {
        let hook = credentials.map(|(ak, sk)| {
            Arc::new(AclClientRPCHook::new(SessionCredentials::with_keys(ak, sk))) as Arc<_>
        });
        let mut consumer = DefaultMQPushConsumer::builder(self.runtime.clone())
            .client_config(client_config(&self.ns, group, false))
            .consumer_group(group)
            .message_model(model)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .max_reconsume_times(max_reconsume_times)
            .rpc_hook(hook)
            .build();
        subscribe(&mut consumer, subscription).await;
        consumer.register_message_listener_concurrently(listen);
        if let Err(e) = consumer.start().await {
            fail(format!("consumer {group} did not start: {e}"));
        }
        consumer
    }

    /// A clustering consumer that records the keys of the messages it gets.
    async fn key_collector(
        &self,
        group: &str,
        subscription: Subscription<'_>,
    ) -> (DefaultMQPushConsumer, Shared<BTreeSet<String>>) {
        let keys: Shared<BTreeSet<String>> = Arc::default();
        let seen = keys.clone();
        let consumer = self
            .push_consumer(
                group,
                MessageModel::Clustering,
                subscription,
                move |msgs, _| {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for m in msgs {
                        seen.insert(keys_of(m));
                    }
                    Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
                },
            )
            .await;
        (consumer, keys)
    }
}

enum Subscription<'a> {
    Tags(&'a str, &'a str),
    Sql(&'a str, &'a str),
}

async fn subscribe(consumer: &mut DefaultMQPushConsumer, subscription: Subscription<'_>) {
    let result = match subscription {
        Subscription::Tags(topic, expression) => consumer.subscribe(topic, expression).await,
        Subscription::Sql(topic, sql) => {
            consumer
                .subscribe_with_selector(topic, Some(MessageSelector::by_sql(sql)))
                .await
        }
    };
    if let Err(e) = result {
        fail(format!("subscribe failed: {e}"));
    }
}

/// One message the consumers ignore: the topic exists (created through the default topic)
/// before a subscription or the counted sends.
async fn warm_up(producer: &DefaultMQProducer, topic: &str) {
    if let Err(e) = producer
        .send(message(topic, "TagA", "warmup", "warmup"))
        .await
    {
        fail(format!("warm-up send failed: {e}"));
    }
}

fn sent_ok(result: &ClientResult<Option<rocketmq_model::result::SendResult>>) -> bool {
    matches!(result, Ok(Some(r)) if r.send_status == SendStatus::SendOk)
}

async fn produce_consume(client: &Client, topic: &str, n: usize) -> Value {
    let producer = client.producer(&format!("pg-{topic}"), false).await;
    warm_up(&producer, topic).await;
    let seen: Shared<HashMap<String, usize>> = Arc::default();
    let members: Shared<BTreeSet<&'static str>> = Arc::default();
    let tag_a: Shared<BTreeSet<String>> = Arc::default();
    let wrong_tag = Arc::new(AtomicU64::new(0));
    let mut consumers = Vec::new();
    for name in ["c1", "c2"] {
        let (seen, members) = (seen.clone(), members.clone());
        consumers.push(
            client
                .push_consumer(
                    &format!("cg-{topic}"),
                    MessageModel::Clustering,
                    Subscription::Tags(topic, "TagA || TagB"),
                    move |msgs, _| {
                        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                        for m in msgs {
                            *seen.entry(keys_of(m)).or_default() += 1;
                        }
                        members
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name);
                        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
                    },
                )
                .await,
        );
    }
    {
        let (tag_a, wrong_tag) = (tag_a.clone(), wrong_tag.clone());
        consumers.push(
            client
                .push_consumer(
                    &format!("cg-taga-{topic}"),
                    MessageModel::Clustering,
                    Subscription::Tags(topic, "TagA"),
                    move |msgs, _| {
                        for m in msgs {
                            if m.get_tags().as_deref() != Some("TagA") {
                                wrong_tag.fetch_add(1, Ordering::Relaxed);
                            }
                            tag_a
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(keys_of(m));
                        }
                        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
                    },
                )
                .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let sent = Arc::new(AtomicU64::new(0));
    let quarter = n / 4;
    let mut i = 0;
    let errors: Shared<BTreeMap<&'static str, String>> = Arc::default();
    let note = |mode: &'static str, e: String| {
        errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(mode)
            .or_insert(e);
    };
    while i < quarter {
        let result = producer.send(numbered(topic, i)).await;
        if sent_ok(&result) {
            sent.fetch_add(1, Ordering::Relaxed);
        } else {
            note("sync", format!("{result:?}"));
        }
        i += 1;
    }
    let sync_sent = sent.load(Ordering::Relaxed);
    let answered = Arc::new(AtomicU64::new(0));
    let mut asked = 0u64;
    let async_failures: Shared<Option<String>> = Arc::default();
    while i < 2 * quarter {
        // At most 128 sends in flight: the client's transport refuses more queued requests
        // than that ("transport.admission.queue_saturated") instead of waiting.
        while asked - answered.load(Ordering::Relaxed) >= 128 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (sent, answered, failures) = (sent.clone(), answered.clone(), async_failures.clone());
        let callback =
            move |result: Option<&rocketmq_model::result::SendResult>,
                  error: Option<&rocketmq_client_rust::ClientError>| {
                if result.is_some_and(|r| r.send_status == SendStatus::SendOk) {
                    sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert_with(|| format!("{result:?} {error:?}"));
                }
                answered.fetch_add(1, Ordering::Relaxed);
            };
        match producer
            .send_with_callback(numbered(topic, i), callback)
            .await
        {
            Ok(()) => asked += 1,
            Err(e) => note("async", e.to_string()),
        }
        i += 1;
    }
    let answered_all = answered.clone();
    wait_for(
        move || answered_all.load(Ordering::Relaxed) >= asked,
        Duration::from_secs(60),
    )
    .await;
    let async_sent = sent.load(Ordering::Relaxed) - sync_sent;
    if let Some(e) = async_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        note("async", e);
    }
    while i < 3 * quarter {
        match producer.send_oneway(numbered(topic, i)).await {
            Ok(()) => {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => note("oneway", e.to_string()),
        }
        i += 1;
    }
    let oneway_sent = sent.load(Ordering::Relaxed) - sync_sent - async_sent;
    while i < n {
        let batch: Vec<Message> = (i..(i + 10).min(n)).map(|j| numbered(topic, j)).collect();
        let len = batch.len() as u64;
        match producer.send_batch(batch).await {
            Ok(r) if r.send_status == SendStatus::SendOk => {
                sent.fetch_add(len, Ordering::Relaxed);
            }
            other => note("batch", format!("{other:?}")),
        }
        i += 10;
    }

    let (seen_w, tag_a_w) = (seen.clone(), tag_a.clone());
    wait_for(
        move || {
            let have = seen_w
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .filter(|k| *k != "warmup")
                .count();
            have >= n && tag_a_w.lock().unwrap_or_else(|e| e.into_inner()).len() > n / 2
        },
        Duration::from_secs(120),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut producer = producer;
    producer.shutdown().await;
    for mut c in consumers {
        c.shutdown().await;
    }
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    seen.remove("warmup");
    let mut tag_a = tag_a.lock().unwrap_or_else(|e| e.into_inner()).clone();
    tag_a.remove("warmup");
    let total: usize = seen.values().sum();
    let duplicates = seen.values().filter(|v| **v > 1).count();
    let members = members.lock().unwrap_or_else(|e| e.into_inner()).len();
    let errors = errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !errors.is_empty() {
        eprintln!("send failures (first of each way): {errors:?}; sent sync {sync_sent}, async {async_sent}, oneway {oneway_sent}");
    }
    json!({"sent": sent.load(Ordering::Relaxed), "distinct": seen.len(), "total": total, "duplicates": duplicates,
           "members": members, "tagA": tag_a.len(), "wrongTag": wrong_tag.load(Ordering::Relaxed)})
}

async fn sql_trace(client: &Client, topic: &str) -> Value {
    // The topic exists before the subscription, as mqadmin would have made it.
    let mut warm = client.producer(&format!("pg-warm-{topic}"), false).await;
    warm_up(&warm, topic).await;
    warm.shutdown().await;
    let (mut consumer, matched) = client
        .key_collector(
            &format!("sql-{topic}"),
            Subscription::Sql(topic, "a BETWEEN 0 AND 3 AND TAGS = 'sql'"),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut producer = client.producer(&format!("pg-trace-{topic}"), true).await;
    for i in 0..10 {
        let m = Message::builder()
            .topic(topic)
            .tags("sql")
            .key(format!("s{i}"))
            .body_slice(format!("v{i}").as_bytes())
            .raw_property("a", i.to_string());
        let m = match m {
            Ok(m) => m.build_unchecked(),
            Err(e) => fail(format!("user property refused: {e}")),
        };
        if let Err(e) = producer.send(m).await {
            fail(format!("send failed: {e}"));
        }
    }
    let got = matched.clone();
    wait_for(
        move || got.lock().unwrap_or_else(|e| e.into_inner()).len() >= 4,
        Duration::from_secs(30),
    )
    .await;
    // The trace dispatcher flushes every 5 s; shutting the producer down flushes the rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    producer.shutdown().await;
    consumer.shutdown().await;

    let traced: Shared<BTreeSet<String>> = Arc::default();
    let seen = traced.clone();
    let mut reader = client
        .push_consumer(
            &format!("trace-reader-{topic}"),
            MessageModel::Clustering,
            Subscription::Tags("RMQ_SYS_TRACE_TOPIC", "*"),
            move |msgs, _| {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                for m in msgs {
                    let body = m
                        .body()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    for i in 0..10 {
                        if body.contains(&format!("s{i}")) {
                            seen.insert(format!("s{i}"));
                        }
                    }
                }
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            },
        )
        .await;
    let seen = traced.clone();
    wait_for(
        move || seen.lock().unwrap_or_else(|e| e.into_inner()).len() >= 10,
        Duration::from_secs(30),
    )
    .await;
    reader.shutdown().await;
    let matched: Vec<String> = matched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    let traced = traced.lock().unwrap_or_else(|e| e.into_inner()).len();
    json!({"matched": matched.join(","), "traced": traced})
}

async fn delay(client: &Client, topic: &str) -> Value {
    let mut producer = client.producer(&format!("pg-{topic}"), false).await;
    warm_up(&producer, topic).await;
    let arrived = Arc::new(AtomicI64::new(0));
    let at = arrived.clone();
    let mut consumer = client
        .push_consumer(
            &format!("dg-{topic}"),
            MessageModel::Clustering,
            Subscription::Tags(topic, "*"),
            move |msgs, _| {
                for m in msgs {
                    if keys_of(m) == "delayed" {
                        let _ =
                            at.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
                    }
                }
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = Message::builder()
        .topic(topic)
        .tags("TagA")
        .key("delayed")
        .body_slice(b"later")
        .delay_level(2)
        .build_unchecked();
    let sent_at = now_ms();
    let status = match producer.send(m).await {
        Ok(Some(r)) => r.send_status == SendStatus::SendOk,
        Ok(None) => false,
        Err(e) => fail(format!("delayed send failed: {e}")),
    };
    let at = arrived.clone();
    wait_for(
        move || at.load(Ordering::Relaxed) != 0,
        Duration::from_secs(60),
    )
    .await;
    producer.shutdown().await;
    consumer.shutdown().await;
    let arrived = arrived.load(Ordering::Relaxed);
    json!({"sendOk": status, "delayMs": if arrived == 0 { -1 } else { arrived - sent_at }})
}

async fn retry_dlq(client: &Client, topic: &str) -> Value {
    let group = format!("rg-{topic}");
    let attempts: Shared<Vec<i32>> = Arc::default();
    let seen = attempts.clone();
    let mut consumer = client
        .push_consumer_with(
            &group,
            MessageModel::Clustering,
            Subscription::Tags(topic, "*"),
            None,
            1,
            move |msgs, _| {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                for m in msgs {
                    if keys_of(m) == "doomed" {
                        seen.push(m.reconsume_times());
                    }
                }
                Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
            },
        )
        .await;
    let mut producer = client.producer(&format!("pg-{topic}"), false).await;
    if let Err(e) = producer
        .send(message(topic, "fail", "doomed", "always fails"))
        .await
    {
        fail(format!("send failed: {e}"));
    }
    producer.shutdown().await;
    let dead: Shared<Option<i32>> = Arc::default();
    let found = dead.clone();
    let mut reader = client
        .push_consumer(
            &format!("dlq-reader-{topic}"),
            MessageModel::Clustering,
            Subscription::Tags(&format!("%DLQ%{group}"), "*"),
            move |msgs, _| {
                for m in msgs {
                    if keys_of(m) == "doomed" {
                        *found.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(m.reconsume_times());
                    }
                }
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            },
        )
        .await;
    let found = dead.clone();
    wait_for(
        move || found.lock().unwrap_or_else(|e| e.into_inner()).is_some(),
        Duration::from_secs(90),
    )
    .await;
    consumer.shutdown().await;
    reader.shutdown().await;
    let attempts = attempts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let dead = *dead.lock().unwrap_or_else(|e| e.into_inner());
    json!({"attempts": attempts, "dlq": dead.is_some(), "dlqReconsumeTimes": dead.unwrap_or(-1)})
}

async fn broadcast(client: &Client, topic: &str, n: usize) -> Value {
    let mut producer = client.producer(&format!("pg-{topic}"), false).await;
    warm_up(&producer, topic).await;
    let got: Shared<BTreeMap<&'static str, BTreeSet<String>>> = Arc::default();
    let mut consumers = Vec::new();
    for name in ["b1", "b2"] {
        let got = got.clone();
        consumers.push(
            client
                .push_consumer(
                    &format!("bg-{topic}"),
                    MessageModel::Broadcasting,
                    Subscription::Tags(topic, "*"),
                    move |msgs, _| {
                        let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
                        for m in msgs {
                            got.entry(name).or_default().insert(keys_of(m));
                        }
                        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
                    },
                )
                .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..n {
        if let Err(e) = producer.send(numbered(topic, i)).await {
            fail(format!("send failed: {e}"));
        }
    }
    let count = move |got: &BTreeMap<&'static str, BTreeSet<String>>, name: &str| {
        got.get(name).map_or(0, |keys| {
            (0..n).filter(|i| keys.contains(&format!("k{i}"))).count()
        })
    };
    let watched = got.clone();
    wait_for(
        move || {
            let got = watched.lock().unwrap_or_else(|e| e.into_inner());
            count(&got, "b1") >= n && count(&got, "b2") >= n
        },
        Duration::from_secs(60),
    )
    .await;
    producer.shutdown().await;
    for mut c in consumers {
        c.shutdown().await;
    }
    let got = got.lock().unwrap_or_else(|e| e.into_inner());
    json!({"b1": count(&got, "b1"), "b2": count(&got, "b2")})
}

async fn orderly(client: &Client, topic: &str, steps: usize) -> Value {
    let mut producer = client.producer(&format!("pg-{topic}"), false).await;
    for step in 0..steps {
        for order in 0..10usize {
            let m = message(
                topic,
                "order",
                &format!("o{order}-{step}"),
                &format!("{order}:{step}"),
            );
            let by_order = |queues: &[MessageQueue], _: &Message, order: &usize| {
                queues.get(order % queues.len().max(1)).cloned()
            };
            if let Err(e) = producer.send_with_selector(m, by_order, order).await {
                fail(format!("ordered send failed: {e}"));
            }
        }
    }
    producer.shutdown().await;
    let state: Shared<(HashMap<u32, u32>, usize, usize)> = Arc::default();
    let seen = state.clone();
    let listener = move |msgs: &[&MessageExt],
                         _: &mut ConsumeOrderlyContext|
          -> ClientResult<ConsumeOrderlyStatus> {
        let mut guard = seen.lock().unwrap_or_else(|e| e.into_inner());
        let (last, received, out_of_order) = &mut *guard;
        for m in msgs {
            let body = m
                .body()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let Some((order, step)) = body.split_once(':') else {
                continue;
            };
            let (Ok(order), Ok(step)) = (order.parse::<u32>(), step.parse::<u32>()) else {
                continue;
            };
            let in_order = match last.get(&order) {
                None => step == 0,
                Some(previous) => previous + 1 == step,
            };
            if !in_order {
                *out_of_order += 1;
            }
            last.insert(order, step);
            *received += 1;
        }
        Ok(ConsumeOrderlyStatus::Success)
    };
    let mut consumer = DefaultMQPushConsumer::builder(client.runtime.clone())
        .client_config(client_config(&client.ns, &format!("og-{topic}"), false))
        .consumer_group(format!("og-{topic}"))
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    subscribe(&mut consumer, Subscription::Tags(topic, "*")).await;
    consumer.register_message_listener_orderly(listener);
    if let Err(e) = consumer.start().await {
        fail(format!("orderly consumer did not start: {e}"));
    }
    let watched = state.clone();
    wait_for(
        move || watched.lock().unwrap_or_else(|e| e.into_inner()).1 >= 10 * steps,
        Duration::from_secs(60),
    )
    .await;
    consumer.shutdown().await;
    let guard = state.lock().unwrap_or_else(|e| e.into_inner());
    json!({"received": guard.1, "outOfOrder": guard.2})
}

/// Decides transactions by key: commit-me commits, rollback-me rolls back, anything else waits
/// for the broker's check-back, which commits.
#[derive(Default)]
struct ByKey {
    checked: Shared<Vec<String>>,
}

impl TransactionListener for ByKey {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        match msg.get_keys().as_deref() {
            Some("commit-me") => LocalTransactionState::CommitMessage,
            Some("rollback-me") => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        self.checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(keys_of(msg));
        LocalTransactionState::CommitMessage
    }
}

async fn transaction(client: &Client, topic: &str) -> Value {
    let listener = ByKey::default();
    let checked = listener.checked.clone();
    let group = format!("tpg-{topic}");
    let mut producer = TransactionMQProducer::builder(client.runtime.clone())
        .client_config(client_config(&client.ns, &group, false))
        .producer_group(group.as_str())
        .send_msg_timeout(10_000)
        .transaction_listener(listener)
        .build();
    if let Err(e) = producer.start().await {
        fail(format!("transactional producer did not start: {e}"));
    }
    for key in ["commit-me", "rollback-me", "ask-me"] {
        if let Err(e) = producer
            .send_message_in_transaction::<(), _>(message(topic, "tx", key, key), None)
            .await
        {
            fail(format!("transactional send failed: {e}"));
        }
    }
    let (mut consumer, got) = client
        .key_collector(&format!("cg-{topic}"), Subscription::Tags(topic, "*"))
        .await;
    let watched = got.clone();
    wait_for(
        move || {
            let got = watched.lock().unwrap_or_else(|e| e.into_inner());
            got.contains("ask-me") && got.contains("commit-me")
        },
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    consumer.shutdown().await;
    producer.shutdown().await;
    let consumed: Vec<String> = got
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    let checked_back = checked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|k| k == "ask-me");
    json!({"consumed": consumed, "checkedBack": checked_back})
}

async fn query(client: &Client, topic: &str) -> Value {
    let mut producer = client.producer(&format!("pg-{topic}"), false).await;
    let sent = match producer
        .send(message(topic, "TagQ", "findme", "look me up"))
        .await
    {
        Ok(Some(r)) => r,
        other => fail(format!("send failed: {other:?}")),
    };
    // The key index is written with the message; a query at once must find it.
    let end = (now_ms() + 60_000) as u64;
    let by_key = match producer.query_message(topic, "findme", 32, 0, end).await {
        Ok(found) => found
            .message_list()
            .iter()
            .filter(|m| keys_of(m) == "findme")
            .count(),
        Err(e) => fail(format!("query by key failed: {e}")),
    };
    let offset_id = sent.offset_msg_id.clone().unwrap_or_default();
    let viewed = match producer.view_message(topic, &offset_id).await {
        Ok(m) => String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned(),
        Err(e) => fail(format!("view by offset id {offset_id} failed: {e}")),
    };
    let missing = producer
        .query_message(topic, "nobody-sent-this", 32, 0, end)
        .await;
    producer.shutdown().await;
    json!({"byKey": by_key, "viewedBody": viewed, "unknownKeyFound": matches!(missing, Ok(r) if !r.message_list().is_empty())})
}

async fn acl(client: &Client, topic: &str, ak: &str, sk: &str, read_only_topic: &str) -> Value {
    // A refusal as (broker response code, error text).
    let send = |to: String, secret: String| async move {
        let mut producer = client
            .producer_with(&format!("acl-pg-{topic}"), false, Some((ak, &secret)))
            .await;
        let result = producer.send(message(&to, "a", "acl-key", "acl")).await;
        producer.shutdown().await;
        result
            .map(|_| ())
            .map_err(|e| (e.broker_response_code(), e.to_string()))
    };
    let sent = send(topic.to_string(), sk.to_string()).await;
    let got = Arc::new(AtomicU64::new(0));
    let seen = got.clone();
    let mut consumer = client
        .push_consumer_with(
            &format!("acl-cg-{topic}"),
            MessageModel::Clustering,
            Subscription::Tags(topic, "*"),
            Some((ak, sk)),
            16,
            move |msgs, _| {
                if msgs.iter().any(|m| keys_of(m) == "acl-key") {
                    seen.store(1, Ordering::Relaxed);
                }
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            },
        )
        .await;
    let watched = got.clone();
    wait_for(
        move || watched.load(Ordering::Relaxed) == 1,
        Duration::from_secs(60),
    )
    .await;
    consumer.shutdown().await;
    let wrong = send(topic.to_string(), format!("{sk}-wrong")).await;
    let denied = send(read_only_topic.to_string(), sk.to_string()).await;
    json!({"sent": sent.is_ok(), "sendError": sent.err().map(|e| e.1), "consumed": got.load(Ordering::Relaxed) == 1,
           "wrongSecretCode": wrong.as_ref().err().map(|e| e.0), "wrongSecret": wrong.err().map(|e| e.1),
           "noPermissionCode": denied.as_ref().err().map(|e| e.0)})
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i)
        .map(String::as_str)
        .unwrap_or_else(|| fail("usage: SCENARIO NAMESRV TOPIC [N | AK SK RO_TOPIC]"))
}

fn number(args: &[String], i: usize) -> usize {
    arg(args, i)
        .parse()
        .unwrap_or_else(|e| fail(format!("argument {i}: {e}")))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (scenario, ns, topic) = (
        arg(&args, 1).to_string(),
        arg(&args, 2).to_string(),
        arg(&args, 3).to_string(),
    );
    // Sized as for 16 cores: with the defaults for this 2-core machine the client's blocking
    // lanes refuse listener calls under the 10,000-message load ("runtime.capacity.exhausted"),
    // and a refused call counts as a failed consumption that comes back as a retry.
    let owner = RuntimeOwner::plan(RuntimeConfig::for_parallelism("rocketmq-workload", 16))
        .unwrap_or_else(|e| fail(format!("runtime plan: {e}")))
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));
    // Logging off: stdout carries the one JSON answer.
    let mut telemetry = rocketmq_observability::TelemetryBootstrapConfig::default();
    telemetry.logging.enabled = std::env::var_os("WORKLOAD_LOG").is_some();
    let guard = rocketmq_observability::install_global(&telemetry)
        .unwrap_or_else(|e| fail(format!("telemetry: {e}")));
    let runtime = ClientRuntime::try_new(
        owner.root_context().component("client"),
        ClientRuntimeConfig::default(),
        guard.handle(),
    )
    .unwrap_or_else(|e| fail(format!("client runtime: {e}")));
    let client = Client { runtime, ns };
    let driver = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    let out = driver.block_on(async {
        match scenario.as_str() {
            "produce-consume" => produce_consume(&client, &topic, number(&args, 4)).await,
            "sql-trace" => sql_trace(&client, &topic).await,
            "delay" => delay(&client, &topic).await,
            "retry-dlq" => retry_dlq(&client, &topic).await,
            "broadcast" => broadcast(&client, &topic, number(&args, 4)).await,
            "orderly" => orderly(&client, &topic, number(&args, 4)).await,
            "transaction" => transaction(&client, &topic).await,
            "query" => query(&client, &topic).await,
            "acl" => acl(&client, &topic, arg(&args, 4), arg(&args, 5), arg(&args, 6)).await,
            other => fail(format!("unknown scenario {other}")),
        }
    });
    println!("{out}");
    // The client's background tasks are not waited for: the answer is out.
    std::process::exit(0)
}
