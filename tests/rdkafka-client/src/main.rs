//! The `rdkafka` crate's side of the integration scenario, with the same command line and
//! JSON output as the Python client scripts in `tests/integration/clients/`:
//!
//! ```text
//! rdkafka-client produce BOOTSTRAP TOPIC [--count N] [--start S] [--tag T] [--create]
//! rdkafka-client consume|resume BOOTSTRAP TOPIC [--group G] [--count N] [--members M]
//! ```
//!
//! `produce` sends records `TAG-i` (key), `value-TAG-i` (value), headers `idx=i`, `tag=TAG`
//! for i in START..START+COUNT with acks=all and prints `{"acked", "errors", "unflushed"}`.
//! `consume` and `resume` run M group members on their own threads. Each member keeps its
//! partitions paused until every member has partitions, so all of them take part; it
//! commits the offsets of what it counted after every batch and when partitions are
//! revoked. The members stop once COUNT records arrived (plus a linger that catches
//! duplicates) and print `{"members": [n, ...], "records": [[partition, offset, key,
//! value, {header: value}], ...]}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::exit;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const PARTITIONS: i32 = 3;
const LINGER: Duration = Duration::from_secs(3);

struct Args {
    phase: String,
    bootstrap: String,
    topic: String,
    group: String,
    count: usize,
    start: usize,
    tag: String,
    members: usize,
    create: bool,
    timeout: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("rdkafka-client: {msg}");
    eprintln!("usage: rdkafka-client produce|consume|resume BOOTSTRAP TOPIC [--group G] [--count N] [--start S] [--tag T] [--members M] [--create] [--timeout SECS]");
    exit(2)
}

fn parse_args() -> Args {
    let mut positional = Vec::new();
    let mut args = Args {
        phase: String::new(),
        bootstrap: String::new(),
        topic: String::new(),
        group: "scenario".into(),
        count: 10_000,
        start: 0,
        tag: "a".into(),
        members: 2,
        create: false,
        timeout: Duration::from_secs(180),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match a.as_str() {
            "--group" => args.group = value("--group"),
            "--count" => args.count = value("--count").parse().unwrap_or_else(|_| usage("bad --count")),
            "--start" => args.start = value("--start").parse().unwrap_or_else(|_| usage("bad --start")),
            "--tag" => args.tag = value("--tag"),
            "--members" => args.members = value("--members").parse().unwrap_or_else(|_| usage("bad --members")),
            "--timeout" => {
                let secs: f64 = value("--timeout").parse().unwrap_or_else(|_| usage("bad --timeout"));
                args.timeout = Duration::from_secs_f64(secs);
            }
            "--create" => args.create = true,
            s if s.starts_with("--") => usage(&format!("unknown option {s}")),
            _ => positional.push(a),
        }
    }
    let [phase, bootstrap, topic]: [String; 3] = positional.try_into().unwrap_or_else(|_| usage("three positional arguments"));
    args.phase = phase;
    args.bootstrap = bootstrap;
    args.topic = topic;
    args
}

// ------------------------------------------------------------------------- produce

#[derive(Default)]
struct Deliveries {
    acked: usize,
    errors: Vec<String>,
}

struct ProduceContext(Mutex<Deliveries>);

impl ClientContext for ProduceContext {}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut d = self.0.lock().unwrap();
        match result {
            Ok(_) => d.acked += 1,
            Err((e, _)) => d.errors.push(e.to_string()),
        }
    }
}

fn create_topic(a: &Args) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let topic = NewTopic::new(&a.topic, PARTITIONS, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics([&topic], &opts)).map_err(|e| e.to_string())?;
    for r in results {
        r.map_err(|(name, code)| format!("create topic {name}: {code:?}"))?;
    }
    Ok(())
}

fn produce(a: &Args) -> Value {
    if a.create {
        if let Err(e) = create_topic(a) {
            eprintln!("{e}");
            exit(1);
        }
    }
    let producer: BaseProducer<ProduceContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(ProduceContext(Mutex::new(Deliveries::default())))
        .unwrap_or_else(|e| {
            eprintln!("producer: {e}");
            exit(1)
        });
    for i in a.start..a.start + a.count {
        let key = format!("{}-{i}", a.tag);
        let value = format!("value-{}-{i}", a.tag);
        let idx = i.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "idx", value: Some(idx.as_bytes()) })
            .insert(Header { key: "tag", value: Some(a.tag.as_bytes()) });
        let mut record = BaseRecord::to(&a.topic).key(&key).payload(&value).headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    // queue full: serve delivery reports, then try again
                    record = back;
                    producer.poll(Duration::from_millis(100));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    let unflushed = match producer.flush(Duration::from_secs(60)) {
        Ok(()) => 0,
        Err(_) => producer.in_flight_count(),
    };
    let d = producer.context().0.lock().unwrap();
    json!({
        "acked": d.acked,
        "errors": d.errors.iter().take(5).collect::<Vec<_>>(),
        "unflushed": unflushed,
    })
}

// ------------------------------------------------------------------------- consume

type Record = (i32, i64, String, String, BTreeMap<String, String>);

/// What the members of one group share: their current assignments (for the barrier that
/// keeps partitions paused until every member has some) and what each one counted.
struct Shared {
    expected: usize,
    state: Mutex<SharedState>,
}

struct SharedState {
    assignments: Vec<BTreeSet<i32>>,
    released: bool,
    records: Vec<Vec<Record>>,
    reached_at: Option<Instant>,
}

impl Shared {
    fn set_assignment(&self, member: usize, partitions: BTreeSet<i32>) {
        let mut s = self.state.lock().unwrap();
        s.assignments[member] = partitions;
        let total: usize = s.assignments.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = s.assignments.iter().flatten().copied().collect();
        if s.assignments.iter().all(|p| !p.is_empty()) && total == union.len() && union.len() == PARTITIONS as usize {
            s.released = true;
        }
    }

    fn released(&self) -> bool {
        self.state.lock().unwrap().released
    }

    fn add(&self, member: usize, records: Vec<Record>) {
        let mut s = self.state.lock().unwrap();
        s.records[member].extend(records);
        let total: usize = s.records.iter().map(Vec::len).sum();
        if total >= self.expected && s.reached_at.is_none() {
            s.reached_at = Some(Instant::now());
        }
    }

    fn done(&self) -> bool {
        matches!(self.state.lock().unwrap().reached_at, Some(t) if t.elapsed() > LINGER)
    }
}

struct MemberContext {
    member: usize,
    topic: String,
    shared: Arc<Shared>,
    /// Next offset to commit per partition: one past the last record this member counted.
    next: Mutex<HashMap<i32, i64>>,
}

impl MemberContext {
    fn commit(&self, consumer: &BaseConsumer<Self>, partitions: Option<&BTreeSet<i32>>) -> KafkaResult<()> {
        let next = self.next.lock().unwrap();
        let mut tpl = TopicPartitionList::new();
        for (&p, &offset) in next.iter() {
            if partitions.is_none_or(|set| set.contains(&p)) {
                tpl.add_partition_offset(&self.topic, p, Offset::Offset(offset))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        consumer.commit(&tpl, CommitMode::Sync)
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions_of(tpl);
            if let Err(e) = self.commit(consumer, Some(&revoked)) {
                eprintln!("member {}: commit on revoke failed: {e}", self.member);
            }
            self.shared.set_assignment(self.member, BTreeSet::new());
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.shared.set_assignment(self.member, partitions_of(tpl));
            let result = if self.shared.released() { consumer.resume(tpl) } else { consumer.pause(tpl) };
            if let Err(e) = result {
                eprintln!("member {}: pause/resume failed: {e}", self.member);
            }
        }
    }
}

fn record_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let mut headers = BTreeMap::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            headers.insert(header.key.to_string(), text(header.value));
        }
    }
    (m.partition(), m.offset(), text(m.key()), text(m.payload()), headers)
}

fn member(a: &Args, idx: usize, shared: Arc<Shared>) -> Result<(), String> {
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
        .set("session.timeout.ms", "10000")
        .create_with_context(context)
        .map_err(|e| e.to_string())?;
    consumer.subscribe(&[&a.topic]).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + a.timeout;
    let mut resumed = false;
    while !shared.done() && Instant::now() < deadline {
        if !resumed && shared.released() {
            let assignment = consumer.assignment().map_err(|e| e.to_string())?;
            consumer.resume(&assignment).map_err(|e| e.to_string())?;
            resumed = true;
        }
        let mut batch = Vec::new();
        while batch.len() < 500 {
            match consumer.poll(Duration::from_millis(if batch.is_empty() { 200 } else { 0 })) {
                None => break,
                Some(Err(e)) => {
                    eprintln!("member {idx}: {e}");
                    break;
                }
                Some(Ok(m)) => {
                    if !shared.released() {
                        // Fetched before the pause took hold: read it again once released.
                        let _ = consumer.seek(m.topic(), m.partition(), Offset::Offset(m.offset()), Duration::from_secs(5));
                        continue;
                    }
                    batch.push(record_of(&m));
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        {
            let mut next = consumer.context().next.lock().unwrap();
            for r in &batch {
                next.insert(r.0, r.1 + 1);
            }
        }
        shared.add(idx, batch);
        consumer.context().commit(&consumer, None).map_err(|e| format!("commit: {e}"))?;
    }
    consumer.context().commit(&consumer, None).map_err(|e| format!("final commit: {e}"))?;
    consumer.unsubscribe();
    Ok(())
}

fn consume(a: Args) -> Value {
    let shared = Arc::new(Shared {
        expected: a.count,
        state: Mutex::new(SharedState {
            assignments: vec![BTreeSet::new(); a.members],
            released: false,
            records: vec![Vec::new(); a.members],
            reached_at: None,
        }),
    });
    let a = Arc::new(a);
    let handles: Vec<_> = (0..a.members)
        .map(|i| {
            let (a, shared) = (a.clone(), shared.clone());
            thread::spawn(move || member(&a, i, shared))
        })
        .collect();
    let mut failed = false;
    for h in handles {
        if let Err(e) = h.join().expect("member thread panicked") {
            eprintln!("{e}");
            failed = true;
        }
    }
    if failed {
        exit(1);
    }
    let s = shared.state.lock().unwrap();
    json!({
        "members": s.records.iter().map(Vec::len).collect::<Vec<_>>(),
        "records": s.records.iter().flatten().collect::<Vec<_>>(),
    })
}

fn main() {
    let a = parse_args();
    let out = match a.phase.as_str() {
        "produce" => produce(&a),
        "consume" | "resume" => consume(a),
        other => usage(&format!("unknown phase {other}")),
    };
    println!("{out}");
}
