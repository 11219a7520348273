//! Message rates. The broker keeps counters per queue (published, delivered or got,
//! acknowledged, redelivered); a task samples them every few seconds, as RabbitMQ's
//! statistics collector does, and a rate is the change between the last two samples per
//! second (RabbitMQ's `basic` rates mode). Counts (messages ready, unacknowledged,
//! consumers) are read live at each request, not sampled.
//!
//! Counters of queues that are gone stay in their vhost's totals, so the totals of a vhost
//! and of the node only grow.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use amqp::message::now_ms;
use amqp::queue::{Queue, QueueStats};
use amqp::Broker;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use crate::format::rate;

/// The counters of a queue, and what they sum to over several queues.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub publish: u64,
    pub deliver_get: u64,
    pub ack: u64,
    pub redeliver: u64,
}

impl Counters {
    fn of(s: QueueStats) -> Counters {
        Counters {
            publish: s.published,
            deliver_get: s.delivered,
            ack: s.acked,
            redeliver: s.redelivered,
        }
    }

    pub fn add(&mut self, o: &Counters) {
        self.publish += o.publish;
        self.deliver_get += o.deliver_get;
        self.ack += o.ack;
        self.redeliver += o.redeliver;
    }
}

/// Per second, between the last two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub publish: f64,
    pub deliver_get: f64,
    pub ack: f64,
    pub redeliver: f64,
    pub messages: f64,
    pub messages_ready: f64,
    pub messages_unacknowledged: f64,
}

impl Rates {
    pub fn add(&mut self, o: &Rates) {
        self.publish += o.publish;
        self.deliver_get += o.deliver_get;
        self.ack += o.ack;
        self.redeliver += o.redeliver;
        self.messages += o.messages;
        self.messages_ready += o.messages_ready;
        self.messages_unacknowledged += o.messages_unacknowledged;
    }
}

/// `message_stats` of a queue, vhost or the node: each counter and its `_details`.
/// `with_publish` is false where RabbitMQ counts publishes per channel (vhost, node): the
/// broker counts them where messages enter queues, so a message routed to two queues would
/// count twice there.
pub fn message_stats(c: &Counters, r: &Rates, with_publish: bool) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: u64, rt: f64| {
        m.insert(k.into(), json!(v));
        m.insert(format!("{k}_details"), rate(rt));
    };
    if with_publish {
        put("publish", c.publish, r.publish);
    }
    put("deliver_get", c.deliver_get, r.deliver_get);
    put("ack", c.ack, r.ack);
    put("redeliver", c.redeliver, r.redeliver);
    Value::Object(m)
}

struct Sample {
    /// Which queue of that name (a queue deleted and declared again starts over); held
    /// until the next sample so that what it counted up to its deletion is not lost.
    queue: Arc<Queue>,
    at_ms: i64,
    counters: Counters,
    depth: (usize, usize),
    rates: Rates,
    /// The last sample that saw the queue change.
    active_ms: i64,
}

/// What the operating system says of the broker's process, sampled like the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gauges {
    /// Resident memory.
    pub mem_used: u64,
    pub fd_used: u64,
    pub fd_total: u64,
    /// AMQP connections.
    pub sockets_used: u64,
    /// Space left where the broker keeps its data.
    pub disk_free: u64,
}

/// How the gauges changed per second between the last two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GaugeRates {
    pub mem_used: f64,
    pub fd_used: f64,
    pub sockets_used: f64,
    pub disk_free: f64,
}

impl Gauges {
    pub fn read(broker: &Broker) -> Gauges {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        let fd_used = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let fd_total = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        let disk_free = rustix::fs::statvfs(&broker.config.data_dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        Gauges {
            mem_used: rss_kb * 1024,
            fd_used,
            fd_total,
            sockets_used: broker.connections().len() as u64,
            disk_free,
        }
    }
}

#[derive(Default)]
struct Inner {
    /// When the last sample was taken.
    last_ms: Option<i64>,
    gauges: Option<Gauges>,
    gauge_rates: GaugeRates,
    queues: HashMap<(String, String), Sample>,
    /// Counters of the queues gone, by vhost.
    retired: HashMap<String, Counters>,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

fn per_second(delta: f64, dt_s: f64) -> f64 {
    if dt_s > 0.0 {
        // Two decimals, as RabbitMQ's rates read.
        (delta / dt_s * 100.0).round() / 100.0
    } else {
        0.0
    }
}

impl Stats {
    /// Takes a sample of every queue and of the process.
    pub fn sample(&self, broker: &Broker) {
        let now = now_ms();
        let vhosts = broker.vhosts();
        let gauges = Gauges::read(broker);
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if let (Some(before), Some(at)) = (inner.gauges, inner.last_ms) {
            let dt = (now - at) as f64 / 1000.0;
            let d = |a: u64, b: u64| per_second(a as f64 - b as f64, dt);
            inner.gauge_rates = GaugeRates {
                mem_used: d(gauges.mem_used, before.mem_used),
                fd_used: d(gauges.fd_used, before.fd_used),
                sockets_used: d(gauges.sockets_used, before.sockets_used),
                disk_free: d(gauges.disk_free, before.disk_free),
            };
        }
        inner.gauges = Some(gauges);
        let mut seen = HashSet::new();
        for v in &vhosts {
            for q in v.queues() {
                let key = (v.name.clone(), q.name.clone());
                let counters = Counters::of(q.stats());
                let (ready, unacked, _) = q.counts();
                let depth = (ready, unacked);
                seen.insert(key.clone());
                // A queue not seen before was created since the last sample: it had
                // nothing then.
                let since = inner.last_ms.unwrap_or(now);
                let fresh = Sample {
                    queue: q.clone(),
                    at_ms: since,
                    counters: Counters::default(),
                    depth: (0, 0),
                    rates: Rates::default(),
                    active_ms: now,
                };
                // The same name, another queue (deleted and declared again): the old
                // one's counters go to the vhost's totals.
                let replaced = match inner.queues.get(&key) {
                    Some(s) if !Arc::ptr_eq(&s.queue, &q) => Some(Counters::of(s.queue.stats())),
                    _ => None,
                };
                if let Some(old) = replaced {
                    inner.retired.entry(key.0.clone()).or_default().add(&old);
                    inner.queues.remove(&key);
                }
                let s = inner.queues.entry(key).or_insert(fresh);
                let dt = (now - s.at_ms) as f64 / 1000.0;
                let d = |a: u64, b: u64| per_second(a.saturating_sub(b) as f64, dt);
                let dd = |a: usize, b: usize| per_second(a as f64 - b as f64, dt);
                s.rates = Rates {
                    publish: d(counters.publish, s.counters.publish),
                    deliver_get: d(counters.deliver_get, s.counters.deliver_get),
                    ack: d(counters.ack, s.counters.ack),
                    redeliver: d(counters.redeliver, s.counters.redeliver),
                    messages: dd(ready + unacked, s.depth.0 + s.depth.1),
                    messages_ready: dd(ready, s.depth.0),
                    messages_unacknowledged: dd(unacked, s.depth.1),
                };
                if counters != s.counters || depth != s.depth {
                    s.active_ms = now;
                }
                s.counters = counters;
                s.depth = depth;
                s.at_ms = now;
            }
        }
        let gone: Vec<(String, String)> = inner
            .queues
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(s) = inner.queues.remove(&key) {
                let last = Counters::of(s.queue.stats());
                inner.retired.entry(key.0).or_default().add(&last);
            }
        }
        let live: HashSet<&str> = vhosts.iter().map(|v| v.name.as_str()).collect();
        inner.retired.retain(|v, _| live.contains(v.as_str()));
        inner.last_ms = Some(now);
    }

    pub fn gauge_rates(&self) -> GaugeRates {
        self.inner.lock().gauge_rates
    }

    /// A queue's counters (live), rates and since when it has been idle.
    pub fn queue(&self, q: &Arc<Queue>) -> (Counters, Rates, i64) {
        let counters = Counters::of(q.stats());
        let inner = self.inner.lock();
        match inner.queues.get(&(q.vhost.clone(), q.name.clone())) {
            Some(s) if Arc::ptr_eq(&s.queue, q) => (counters, s.rates, s.active_ms),
            _ => (counters, Rates::default(), now_ms()),
        }
    }

    /// The counters and rates of a vhost's queues, those gone included (counters only).
    pub fn vhost(&self, broker: &Broker, vhost: &str) -> (Counters, Rates) {
        let live = broker.vhost(vhost).map(|v| v.queues()).unwrap_or_default();
        let mut counters = Counters::default();
        for q in &live {
            counters.add(&Counters::of(q.stats()));
        }
        let inner = self.inner.lock();
        if let Some(r) = inner.retired.get(vhost) {
            counters.add(r);
        }
        let mut rates = Rates::default();
        for ((v, _), s) in &inner.queues {
            if v != vhost {
                continue;
            }
            rates.add(&s.rates);
            // Deleted since the last sample: not retired yet.
            if !live.iter().any(|q| Arc::ptr_eq(q, &s.queue)) {
                counters.add(&Counters::of(s.queue.stats()));
            }
        }
        (counters, rates)
    }
}
