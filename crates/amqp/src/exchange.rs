//! Exchanges and their bindings: which destinations a message goes to (direct, fanout, topic,
//! headers, and the delayed-message and consistent-hash plug-in types).

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::message::{table_str, value_int};

/// The plug-ins whose features the broker has built in, each switched on or off per
/// broker ([`crate::Broker::set_plugin`]).
pub const PLUGIN_DELAYED_MESSAGE: &str = "rabbitmq_delayed_message_exchange";
pub const PLUGIN_CONSISTENT_HASH: &str = "rabbitmq_consistent_hash_exchange";
pub const PLUGINS: [&str; 2] = [PLUGIN_DELAYED_MESSAGE, PLUGIN_CONSISTENT_HASH];

/// The exchange types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// `x-delayed-message` (rabbitmq_delayed_message_exchange): routes as `x-delayed-type`
    /// once the `x-delay` header's milliseconds have passed.
    Delayed,
    /// `x-consistent-hash` (rabbitmq_consistent_hash_exchange).
    ConsistentHash,
}

impl ExchangeKind {
    pub fn parse(name: &str) -> Option<ExchangeKind> {
        Some(match name {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            "x-delayed-message" => ExchangeKind::Delayed,
            "x-consistent-hash" => ExchangeKind::ConsistentHash,
            _ => return None,
        })
    }

    /// The plug-in that provides this type, for the types that come with one.
    pub fn plugin(self) -> Option<&'static str> {
        match self {
            ExchangeKind::Delayed => Some(PLUGIN_DELAYED_MESSAGE),
            ExchangeKind::ConsistentHash => Some(PLUGIN_CONSISTENT_HASH),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::Delayed => "x-delayed-message",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
        }
    }
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Destination {
    Queue(String),
    Exchange(String),
}

impl Destination {
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(n) | Destination::Exchange(n) => n,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Queue(_) => "queue",
            Destination::Exchange(_) => "exchange",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: FieldTable,
}

/// Points on a consistent-hash ring and the destination each belongs to, by point.
type Ring = std::sync::Arc<Vec<(u32, Destination)>>;

#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// For `x-delayed-message`: the type it routes as.
    pub delayed_kind: ExchangeKind,
    pub bindings: RwLock<Vec<Binding>>,
    /// The hash ring of a consistent-hash exchange, built on first use after a change.
    ring: RwLock<Option<Ring>>,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Exchange {
        let delayed_kind = table_str(&arguments, "x-delayed-type")
            .and_then(ExchangeKind::parse)
            .filter(|k| !matches!(k, ExchangeKind::Delayed))
            .unwrap_or(ExchangeKind::Direct);
        Exchange {
            name: name.to_string(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            delayed_kind,
            bindings: RwLock::new(Vec::new()),
            ring: RwLock::new(None),
        }
    }

    /// The alternate exchange unroutable messages go to.
    pub fn alternate(&self) -> Option<&str> {
        table_str(&self.arguments, "alternate-exchange")
    }

    /// Adds a binding (no-op if the same one exists).
    pub fn bind(&self, b: Binding) {
        let mut bindings = self.bindings.write();
        if !bindings.contains(&b) {
            bindings.push(b);
            *self.ring.write() = None;
        }
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&self, b: &Binding) -> bool {
        let mut bindings = self.bindings.write();
        let before = bindings.len();
        bindings.retain(|x| x != b);
        *self.ring.write() = None;
        bindings.len() != before
    }

    /// Removes every binding to `destination`; answers how many there were.
    pub fn unbind_destination(&self, destination: &Destination) -> usize {
        let mut bindings = self.bindings.write();
        let before = bindings.len();
        bindings.retain(|x| &x.destination != destination);
        *self.ring.write() = None;
        before - bindings.len()
    }

    /// The destinations a message with this routing key and these headers goes to.
    pub fn route(&self, routing_key: &str, headers: Option<&FieldTable>) -> Vec<Destination> {
        let mut out = Vec::new();
        self.route_each(routing_key, headers, &mut |d| out.push(d.clone()));
        out.sort();
        out.dedup();
        out
    }

    /// Calls `found` with each destination of a message (possibly more than once; callers
    /// dedupe), without copying the bindings: the publish path.
    pub fn route_each(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        found: &mut dyn FnMut(&Destination),
    ) {
        let kind = match self.kind {
            ExchangeKind::Delayed => self.delayed_kind,
            k => k,
        };
        let bindings = self.bindings.read();
        match kind {
            ExchangeKind::Direct | ExchangeKind::Delayed => {
                for b in bindings.iter().filter(|b| b.routing_key == routing_key) {
                    found(&b.destination);
                }
            }
            ExchangeKind::Fanout => {
                for b in bindings.iter() {
                    found(&b.destination);
                }
            }
            ExchangeKind::Topic => {
                let key: Vec<&str> = if routing_key.is_empty() {
                    Vec::new()
                } else {
                    routing_key.split('.').collect()
                };
                let mut scratch = Vec::new();
                for b in bindings.iter() {
                    if topic_matches_words(&b.routing_key, &key, &mut scratch) {
                        found(&b.destination);
                    }
                }
            }
            ExchangeKind::Headers => {
                for b in bindings
                    .iter()
                    .filter(|b| headers_match(&b.arguments, headers))
                {
                    found(&b.destination);
                }
            }
            ExchangeKind::ConsistentHash => {
                let ring = self.ring.read().clone();
                let ring = match ring {
                    Some(r) => r,
                    None => {
                        let r = std::sync::Arc::new(hash_ring(&bindings));
                        *self.ring.write() = Some(r.clone());
                        r
                    }
                };
                if let Some(d) = pick_on_ring(&ring, routing_key) {
                    found(&d);
                }
            }
        }
    }
}

/// AMQP topic matching: words split on `.`, `*` matches one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let words: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    topic_matches_words(pattern, &words, &mut Vec::new())
}

/// [`topic_matches`] against a key already split into words, with `scratch` reused between
/// bindings. Dynamic programming over (pattern word, key word): linear in their product,
/// whatever mix of `#` a client binds with.
fn topic_matches_words(pattern: &str, key: &[&str], scratch: &mut Vec<bool>) -> bool {
    if !pattern.contains(['*', '#']) {
        // The common case: a plain key.
        return pattern.split('.').eq(key.iter().copied())
            || (pattern.is_empty() && key.is_empty());
    }
    let n = key.len();
    // can[j]: the pattern words seen so far match the first j key words.
    scratch.clear();
    scratch.resize(2 * (n + 1), false);
    let (can, next) = scratch.split_at_mut(n + 1);
    can[0] = true;
    let words = if pattern.is_empty() {
        None
    } else {
        Some(pattern.split('.'))
    };
    for word in words.into_iter().flatten() {
        next.fill(false);
        if word == "#" {
            let mut any = false;
            for j in 0..=n {
                any |= can[j];
                next[j] = any;
            }
        } else {
            for j in 1..=n {
                next[j] = can[j - 1] && (word == "*" || word == key[j - 1]);
            }
        }
        can.copy_from_slice(next);
    }
    can[n]
}

/// Headers exchange matching: `x-match` `all` (default) or `any` over the binding's
/// arguments that do not start with `x-`. A void argument matches the header's presence.
pub fn headers_match(binding: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let any = table_str(binding, "x-match") == Some("any");
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty).inner();
    let mut wanted = binding
        .inner()
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("x-"))
        .peekable();
    if wanted.peek().is_none() {
        return !any;
    }
    let hit =
        |(k, v): (&amq_protocol::types::ShortString, &AMQPValue)| match headers.get(k.as_str()) {
            None => false,
            Some(_) if matches!(v, AMQPValue::Void) => true,
            Some(h) => values_equal(h, v),
        };
    if any {
        wanted.any(hit)
    } else {
        wanted.all(hit)
    }
}

/// Equality across the integer and string representations clients pick.
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (value_int(a), value_int(b)) {
        return x == y;
    }
    match (a, b) {
        (AMQPValue::LongString(x), AMQPValue::ShortString(y))
        | (AMQPValue::ShortString(y), AMQPValue::LongString(x)) => {
            x.as_bytes() == y.as_str().as_bytes()
        }
        _ => a == b,
    }
}

/// The consistent-hash exchange: each binding's routing key is its weight (points on the
/// ring); the message goes to the binding that owns the hash of its routing key.
/// The ring of a consistent-hash exchange: each binding's routing key is its weight (as in
/// `rabbitmq_consistent_hash_exchange`), the number of points it gets.
fn hash_ring(bindings: &[Binding]) -> Vec<(u32, Destination)> {
    let mut ring = Vec::new();
    for b in bindings {
        let weight = b.routing_key.parse::<u32>().unwrap_or(1).clamp(1, 1000);
        for i in 0..weight {
            let point = hash32(format!("{}/{}", b.destination.name(), i).as_bytes());
            ring.push((point, b.destination.clone()));
        }
    }
    ring.sort_by_key(|(p, _)| *p);
    ring
}

fn pick_on_ring(ring: &[(u32, Destination)], routing_key: &str) -> Option<Destination> {
    if ring.is_empty() {
        return None;
    }
    let h = hash32(routing_key.as_bytes());
    let idx = ring.partition_point(|(p, _)| *p < h) % ring.len();
    Some(ring[idx].1.clone())
}

/// FNV-1a, 32 bits, then murmur3's finaliser (FNV alone clusters similar keys on the ring).
fn hash32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::LongString;

    use super::*;

    #[test]
    fn topic_patterns() {
        for (p, k, want) in [
            ("a.b", "a.b", true),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#", "", true),
            ("#", "a.b", true),
            ("*.b.#", "a.b", true),
            ("*.b.#", "b", false),
            ("#.c", "a.b.c", true),
            ("#.c", "c", true),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.x.y.c", true),
            ("*", "", false),
            ("", "", true),
            ("a", "", false),
        ] {
            assert_eq!(topic_matches(p, k), want, "{p} ~ {k}");
        }
    }

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn headers_all_and_any() {
        let s = |v: &str| AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()));
        let msg = table(&[
            ("format", s("pdf")),
            ("type", s("report")),
            ("n", AMQPValue::LongInt(7)),
        ]);
        let all = table(&[("format", s("pdf")), ("type", s("report"))]);
        assert!(headers_match(&all, Some(&msg)));
        let all_miss = table(&[("format", s("pdf")), ("type", s("log"))]);
        assert!(!headers_match(&all_miss, Some(&msg)));
        let any = table(&[
            ("x-match", s("any")),
            ("format", s("zip")),
            ("type", s("report")),
        ]);
        assert!(headers_match(&any, Some(&msg)));
        let num = table(&[("n", AMQPValue::ShortShortUInt(7))]);
        assert!(
            headers_match(&num, Some(&msg)),
            "integer widths compare by value"
        );
        assert!(
            headers_match(&table(&[]), None),
            "an empty all-binding matches everything"
        );
        assert!(!headers_match(&table(&[("x-match", s("any"))]), Some(&msg)));
    }

    #[test]
    fn consistent_hash_spreads_and_is_stable() {
        let ex = Exchange::new(
            "h",
            ExchangeKind::ConsistentHash,
            false,
            false,
            false,
            FieldTable::default(),
        );
        for q in ["q1", "q2", "q3"] {
            ex.bind(Binding {
                destination: Destination::Queue(q.into()),
                routing_key: "10".into(),
                arguments: FieldTable::default(),
            });
        }
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..3000 {
            let d = ex.route(&format!("key-{i}"), None);
            assert_eq!(d.len(), 1);
            assert_eq!(d, ex.route(&format!("key-{i}"), None));
            *seen.entry(d[0].name().to_string()).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.values().all(|n| *n > 500), "{seen:?}");
    }
}
