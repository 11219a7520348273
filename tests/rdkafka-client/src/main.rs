//! The `rdkafka` crate's side of the produce / group-consume / resume scenario: the same
//! command line as `tests/integration/clients/scenario.py` without its LIB argument, the
//! same records and the same JSON output.
//!
//! ```text
//! rdkafka-scenario produce BOOTSTRAP TOPIC --count N [--start S] --tag T [--create]
//! rdkafka-scenario consume BOOTSTRAP TOPIC --group G --count N [--members 2] [--timeout SECS]
//! ```
//!
//! `produce` creates the topic with 3 partitions through the admin API if `--create` is
//! given, then sends records `T-i` (key), `value-T-i` (value), headers `idx=i`, `tag=T` for
//! i in S..S+N with acks=all, and prints `{"acked": n, "errors": [first few], "unflushed": n}`.
//!
//! `consume` runs the members of group G on their own threads. Each member commits
//! synchronously (explicit offsets, no auto-commit) after every poll batch and when
//! partitions are revoked. Records only count once every member has had an assignment;
//! before that a member seeks back to the first record of each partition it got. The
//! members stop 2 s after N records arrived (to catch duplicates) or at the timeout, and
//! the program prints `{"members": [records per member], "records": [[partition, offset,
//! key, value, {header: value}], ...]}` (member after member, each in arrival order).
//! A failed commit is reported on stderr and makes the exit status 1.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{json, Value};

const PARTITIONS: i32 = 3;
/// How long members keep polling after the expected count arrived, to catch duplicates.
const LINGER: Duration = Duration::from_secs(2);
/// Records per poll batch and how long the first poll of a batch waits.
const BATCH: usize = 500;
const POLL_WAIT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, ValueEnum)]
enum Phase {
    Produce,
    Consume,
}

/// The scenario of tests/integration/clients/scenario.py for the rdkafka crate.
#[derive(Parser)]
#[command(name = "rdkafka-scenario")]
struct Args {
    #[arg(value_enum)]
    phase: Phase,
    bootstrap: String,
    topic: String,
    #[arg(long, default_value = "scenario")]
    group: String,
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    #[arg(long, default_value_t = 0)]
    start: u64,
    #[arg(long, default_value = "a")]
    tag: String,
    #[arg(long, default_value_t = 2)]
    members: usize,
    /// Create the topic (3 partitions) with the admin API before producing.
    #[arg(long)]
    create: bool,
    /// Seconds: the hang guard of the phase.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------------------ produce

#[derive(Default)]
struct Deliveries {
    acked: u64,
    errors: Vec<String>,
}

struct ProduceContext(Mutex<Deliveries>);

impl ClientContext for ProduceContext {}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut d = lock(&self.0);
        match result {
            Ok(_) => d.acked += 1,
            Err((e, _)) => d.errors.push(e.to_string()),
        }
    }
}

fn create_topic(a: &Args) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .create()
        .context("admin client")?;
    let topic = NewTopic::new(&a.topic, PARTITIONS, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics([&topic], &opts))
        .context("create topics")?;
    for r in results {
        r.map_err(|(name, code)| anyhow!("create topic {name}: {code}"))?;
    }
    Ok(())
}

fn produce(a: &Args) -> Result<Value> {
    if a.create {
        create_topic(a)?;
    }
    let producer: BaseProducer<ProduceContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(ProduceContext(Mutex::new(Deliveries::default())))
        .context("producer")?;
    for i in a.start..a.start + a.count {
        let key = format!("{}-{i}", a.tag);
        let value = format!("value-{}-{i}", a.tag);
        let idx = i.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "idx",
                value: Some(&idx),
            })
            .insert(Header {
                key: "tag",
                value: Some(&a.tag),
            });
        let mut record = BaseRecord::to(&a.topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // serve delivery reports, then try again
                    record = back;
                    producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => bail!("produce {key}: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    let unflushed = match producer.flush(Duration::from_secs(60)) {
        Ok(()) => 0,
        Err(_) => producer.in_flight_count(),
    };
    let d = lock(&producer.context().0);
    Ok(json!({
        "acked": d.acked,
        "errors": d.errors.iter().take(5).collect::<Vec<_>>(),
        "unflushed": unflushed,
    }))
}

// ------------------------------------------------------------------------------ consume

/// [partition, offset, key, value, {header: value}]
type Record = (i32, i64, String, String, BTreeMap<String, Option<String>>);

/// What the members of the group share: the barrier, what each member counted, the commit
/// errors, and how many members finished polling.
struct Shared {
    expected: usize,
    deadline: Instant,
    state: Mutex<SharedState>,
}

struct SharedState {
    assigned: Vec<bool>,
    records: Vec<Vec<Record>>,
    reached_at: Option<Instant>,
    commit_errors: Vec<String>,
    finished: usize,
}

impl Shared {
    /// Every member has had an assignment: records count from now on.
    fn ready(&self) -> bool {
        lock(&self.state).assigned.iter().all(|&a| a)
    }

    fn mark_assigned(&self, member: usize) {
        lock(&self.state).assigned[member] = true;
    }

    fn add(&self, member: usize, records: Vec<Record>) {
        let mut s = lock(&self.state);
        s.records[member].extend(records);
        let total: usize = s.records.iter().map(Vec::len).sum();
        if total >= self.expected && s.reached_at.is_none() {
            s.reached_at = Some(Instant::now());
        }
    }

    fn done(&self) -> bool {
        let s = lock(&self.state);
        matches!(s.reached_at, Some(t) if t.elapsed() > LINGER) || Instant::now() > self.deadline
    }

    fn commit_failed(&self, member: usize, what: &str, err: KafkaError) {
        eprintln!("member {member}: {what} commit failed: {err}");
        lock(&self.state)
            .commit_errors
            .push(format!("member {member}: {what}: {err}"));
    }

    /// Called by each member when it stops polling; waits (at most 30 s) until all have,
    /// so that no member leaves the group, and sets off a rebalance, while another still
    /// polls and commits.
    fn finish(&self, members: usize) {
        lock(&self.state).finished += 1;
        let end = Instant::now() + Duration::from_secs(30);
        while lock(&self.state).finished < members && Instant::now() < end {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

struct MemberContext {
    member: usize,
    topic: String,
    shared: Arc<Shared>,
    /// Per partition this member holds: the offset to commit, one past the last record it
    /// counted. Updated as each record is counted, so a revocation in the middle of a poll
    /// batch commits everything counted so far.
    next: Mutex<HashMap<i32, i64>>,
}

impl MemberContext {
    /// Commits synchronously the offsets counted for `partitions` (all if None); with
    /// `forget`, drops them: those partitions now belong to another member, and a later
    /// commit of this member must not move their committed offsets back.
    fn commit(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: Option<&[i32]>,
        forget: bool,
        what: &str,
    ) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut next = lock(&self.next);
            for (&p, &offset) in next.iter() {
                if partitions.is_none_or(|ps| ps.contains(&p)) {
                    tpl.add_partition_offset(&self.topic, p, Offset::Offset(offset))
                        .expect("a valid offset");
                }
            }
            if forget {
                next.retain(|p, _| !partitions.is_none_or(|ps| ps.contains(p)));
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                self.shared.commit_failed(self.member, what, e);
            }
        }
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.commit(consumer, Some(&partitions), true, "on revocation");
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => eprintln!("member {}: rebalance error: {e}", self.member),
        }
    }
}

fn record_of(m: &BorrowedMessage<'_>) -> Record {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(text)))
                .collect()
        })
        .unwrap_or_default();
    (
        m.partition(),
        m.offset(),
        m.key().map(text).unwrap_or_default(),
        m.payload().map(text).unwrap_or_default(),
        headers,
    )
}

fn member(a: &Args, idx: usize, shared: &Arc<Shared>) -> Result<()> {
    let context = MemberContext {
        member: idx,
        topic: a.topic.clone(),
        shared: shared.clone(),
        next: Mutex::new(HashMap::new()),
    };
    let consumer: BaseConsumer<MemberContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", &a.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "10000")
        .create_with_context(context)
        .context("consumer")?;
    consumer.subscribe(&[&a.topic]).context("subscribe")?;
    while !shared.done() {
        let counting = shared.ready();
        let mut batch = Vec::new();
        // partition -> first offset received, to seek back to while the group is incomplete
        let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
        while batch.len() + firsts.len() < BATCH {
            let wait = if batch.is_empty() && firsts.is_empty() {
                POLL_WAIT
            } else {
                Duration::ZERO
            };
            let m = match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    eprintln!("member {idx}: {e}");
                    break;
                }
                Some(Ok(m)) => m,
            };
            if counting {
                lock(&consumer.context().next).insert(m.partition(), m.offset() + 1);
                batch.push(record_of(&m));
            } else {
                firsts.entry(m.partition()).or_insert(m.offset());
            }
        }
        if !counting {
            if consumer.assignment().context("assignment")?.count() > 0 {
                shared.mark_assigned(idx);
            }
            for (&partition, &offset) in &firsts {
                // fails if the partition was revoked meanwhile: then nothing to undo
                if let Err(e) = consumer.seek(
                    &a.topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(10),
                ) {
                    eprintln!("member {idx}: seek partition {partition} back to {offset}: {e}");
                }
            }
            continue;
        }
        if !batch.is_empty() {
            shared.add(idx, batch);
            consumer
                .context()
                .commit(&consumer, None, false, "after a poll batch");
        }
    }
    consumer
        .context()
        .commit(&consumer, None, false, "at the end");
    shared.finish(a.members);
    Ok(())
}

fn consume(a: Args) -> Result<(Value, Vec<String>)> {
    let shared = Arc::new(Shared {
        expected: a.count as usize,
        deadline: Instant::now() + Duration::from_secs_f64(a.timeout),
        state: Mutex::new(SharedState {
            assigned: vec![false; a.members],
            records: vec![Vec::new(); a.members],
            reached_at: None,
            commit_errors: Vec::new(),
            finished: 0,
        }),
    });
    let a = Arc::new(a);
    let handles: Vec<_> = (0..a.members)
        .map(|i| {
            let (a, shared) = (a.clone(), shared.clone());
            thread::spawn(move || {
                let result = member(&a, i, &shared);
                if result.is_err() {
                    lock(&shared.state).finished += 1; // do not keep the others waiting
                }
                result
            })
        })
        .collect();
    let mut failed = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("member {i}: {e:#}")),
            Err(_) => failed.push(format!("member {i} panicked")),
        }
    }
    if !failed.is_empty() {
        bail!("group member failed: {}", failed.join("; "));
    }
    let s = lock(&shared.state);
    let out = json!({
        "members": s.records.iter().map(Vec::len).collect::<Vec<_>>(),
        "records": s.records.iter().flatten().collect::<Vec<_>>(),
    });
    Ok((out, s.commit_errors.clone()))
}

fn main() -> ExitCode {
    let a = Args::parse();
    let result = match a.phase {
        Phase::Produce => produce(&a).map(|out| (out, Vec::new())),
        Phase::Consume => consume(a),
    };
    match result {
        Ok((out, commit_errors)) => {
            println!("{out}");
            if commit_errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "rdkafka-scenario: {} offset commits failed: {}",
                    commit_errors.len(),
                    commit_errors.join("; ")
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("rdkafka-scenario: {e:#}");
            ExitCode::FAILURE
        }
    }
}
